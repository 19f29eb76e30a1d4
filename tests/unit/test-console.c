/*
 * Unit tests of src/daemon/console.c, the web console's static files: the
 * file of each path under the console's root and under the JavaScript
 * root (/javascript/), directories by their index.html, content types by
 * name, and the paths refused: dot segments however they were spelled
 * (the server decodes %2e before), hidden files, backslashes, a symbolic
 * link out of the root, a file past CONSOLE_MAX_FILE.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/daemon/console.h"

static char top[64], root[128], js[128];

static void put(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        fclose(f);
}

static void setup(void)
{
        char p[256];
        snprintf(top, sizeof(top), "/tmp/riskd-console.XXXXXX");
        cr_assert_not_null(mkdtemp(top));
        snprintf(root, sizeof(root), "%s/console", top);
        snprintf(js, sizeof(js), "%s/javascript", top);
        mkdir(root, 0755);
        mkdir(js, 0755);
        snprintf(p, sizeof(p), "%s/index.html", root), put(p, "<h1>风险</h1>");
        snprintf(p, sizeof(p), "%s/app.js", root), put(p, "let a = 1;");
        snprintf(p, sizeof(p), "%s/style.css", root), put(p, "body{}");
        snprintf(p, sizeof(p), "%s/.hidden", root), put(p, "secret");
        snprintf(p, sizeof(p), "%s/sub", root), mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sub/index.html", root), put(p, "sub");
        snprintf(p, sizeof(p), "%s/secret.txt", top), put(p, "outside");
        snprintf(p, sizeof(p), "%s/out", root);
        char target[256];
        snprintf(target, sizeof(target), "%s/secret.txt", top);
        cr_assert_eq(symlink(target, p), 0);
        snprintf(p, sizeof(p), "%s/in.js", root);
        cr_assert_eq(symlink("app.js", p), 0);
        snprintf(p, sizeof(p), "%s/chart.js", js), mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/chart.js/chart.js", js), put(p, "/* chart */");
        snprintf(p, sizeof(p), "%s/chart.js/Chart.js", js);
        cr_assert_eq(symlink("chart.js", p), 0);
}

static void teardown(void)
{
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(console, .init = setup, .fini = teardown);

static void expect_file(const char *path, const char *body, const char *type)
{
        ConsoleFile f;
        int r = console_file(root, js, path, &f);
        cr_assert_eq(r, 0, "%s: %d (%s)", path, r, strerror(-r));
        cr_expect_eq(f.len, strlen(body), "%s", path);
        cr_expect_eq(memcmp(f.body, body, f.len), 0, "%s: %.*s", path, (int)f.len, f.body);
        cr_expect_str_eq(f.type, type, "%s", path);
        free(f.body);
}

static void expect_refused(const char *path, int err)
{
        ConsoleFile f;
        int r = console_file(root, js, path, &f);
        cr_expect_eq(r, err, "%s: %d, expected %d", path, r, err);
        cr_expect_null(f.body, "%s", path);
}

Test(console, files_and_their_types)
{
        expect_file("/", "<h1>风险</h1>", "text/html; charset=utf-8");
        expect_file("/index.html", "<h1>风险</h1>", "text/html; charset=utf-8");
        expect_file("/app.js", "let a = 1;", "text/javascript; charset=utf-8");
        expect_file("/style.css", "body{}", "text/css; charset=utf-8");
        expect_file("/sub/", "sub", "text/html; charset=utf-8");
        expect_file("/sub", "sub", "text/html; charset=utf-8");
        /* a link inside the root, typed by what it points at */
        expect_file("/in.js", "let a = 1;", "text/javascript; charset=utf-8");
        expect_file("/javascript/chart.js/chart.js", "/* chart */", "text/javascript; charset=utf-8");
        expect_file("/javascript/chart.js/Chart.js", "/* chart */", "text/javascript; charset=utf-8");
        cr_expect_str_eq(console_content_type("a/b.svg"), "image/svg+xml");
        cr_expect_str_eq(console_content_type("a.b/noext"), "application/octet-stream");
        cr_expect_str_eq(console_content_type("x.json"), "application/json");
}

Test(console, traversal_refused)
{
        expect_refused("/../secret.txt", -EACCES);
        expect_refused("/sub/../../secret.txt", -EACCES);
        expect_refused("/sub/../index.html", -EACCES);
        expect_refused("/./index.html", -EACCES);
        expect_refused("//etc/passwd", -EACCES);
        expect_refused("/.hidden", -EACCES);
        expect_refused("/sub/.hidden", -EACCES);
        expect_refused("/..\\secret.txt", -EACCES);
        expect_refused("/javascript/../secret.txt", -EACCES);
        expect_refused("/javascript/chart.js/../../console/app.js", -EACCES);
        expect_refused("relative", -EACCES);
        /* a link out of the root */
        expect_refused("/out", -EACCES);
        expect_refused("/missing.js", -ENOENT);
        expect_refused("/app.js/", -ENOENT);
}

Test(console, off_and_too_large)
{
        ConsoleFile f;
        cr_expect_eq(console_file("", js, "/", &f), -ENOENT);
        cr_expect_eq(console_file(root, "", "/javascript/chart.js/chart.js", &f), -ENOENT);
        char p[256];
        snprintf(p, sizeof(p), "%s/big.js", root);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, CONSOLE_MAX_FILE + 1), 0);
        close(fd);
        expect_refused("/big.js", -EFBIG);
}
