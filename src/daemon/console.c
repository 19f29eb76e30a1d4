/* The web console's static files (console.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/riskd/util.h"
#include "src/daemon/console.h"

const char *console_content_type(const char *name)
{
        /* extension, type */
        static const char *const types[][2] = {
                {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
                {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
                {".json", "application/json"}, {".map", "application/json"},
                {".svg", "image/svg+xml"}, {".png", "image/png"},
                {".ico", "image/x-icon"}, {".woff2", "font/woff2"},
                {".txt", "text/plain; charset=utf-8"},
        };
        const char *slash = strrchr(name, '/'), *dot = strrchr(slash ? slash : name, '.');
        for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
                if (strcmp(dot, types[i][0]) == 0)
                        return types[i][1];
        return "application/octet-stream";
}

/* The path below its root, "" for the root itself; -EACCES for a segment
 * that is empty (but a final one: a directory), ".", "..", hidden, or has
 * a backslash or a control character. */
static int relative(const char *path, char *out, size_t size)
{
        if (path[0] != '/')
                return -EACCES;
        const char *p = path + 1;
        size_t n = strlen(p);
        if (n >= size)
                return -ENAMETOOLONG;
        while (*p) {
                const char *end = strchr(p, '/');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                if (!len || p[0] == '.')
                        return -EACCES; /* "//", ".", "..", ".hidden" */
                for (size_t i = 0; i < len; i++)
                        if (p[i] == '\\' || (unsigned char)p[i] < 0x20 || p[i] == 0x7f)
                                return -EACCES;
                if (!end)
                        break;
                p = end + 1; /* a final '/' ends the loop at "" */
        }
        memcpy(out, path + 1, n + 1);
        return 0;
}

int console_file(const char *root, const char *js_root, const char *path, ConsoleFile *out)
{
        memset(out, 0, sizeof(*out));
        if (strncmp(path, "/javascript/", 12) == 0) {
                root = js_root;
                path += 11;
        }
        if (!root || !*root)
                return -ENOENT;
        char rel[PATH_MAX], full[PATH_MAX + 16], real[PATH_MAX], realroot[PATH_MAX];
        int r = relative(path, rel, sizeof(rel));
        if (r < 0)
                return r;
        size_t rl = strlen(rel);
        if (snprintf(full, sizeof(full), "%s/%s%s", root, rel, !rl || rel[rl - 1] == '/' ? "index.html" : "") >=
            (int)sizeof(full))
                return -ENAMETOOLONG;
        if (!realpath(root, realroot))
                return -ENOENT;
        size_t n = strlen(realroot);
        struct stat st;
        for (int dir = 0;; dir++) {
                if (!realpath(full, real))
                        return -ENOENT;
                /* a symbolic link inside the root may point elsewhere in
                 * it, not out */
                if (strncmp(real, realroot, n) != 0 || (real[n] != '/' && !(n == 1 && realroot[0] == '/')))
                        return -EACCES;
                if (stat(real, &st) < 0)
                        return -errno;
                if (!S_ISDIR(st.st_mode))
                        break;
                /* a directory named without its final '/': its index */
                if (dir || strlen(full) + sizeof("/index.html") > sizeof(full))
                        return -ENOENT;
                strcat(full, "/index.html");
        }
        int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ELOOP ? -EACCES : -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return -ENOENT;
        }
        if ((uint64_t)st.st_size > CONSOLE_MAX_FILE) {
                close(fd);
                return -EFBIG;
        }
        out->body = xmalloc((size_t)st.st_size + 1);
        size_t got = 0;
        while (got < (size_t)st.st_size) {
                ssize_t k = read(fd, out->body + got, (size_t)st.st_size - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                got += (size_t)k;
        }
        close(fd);
        out->len = got;
        out->type = console_content_type(real);
        return 0;
}

unsigned console_http(const char *root, const char *js_root, HttpReq *req, const char *path)
{
        ConsoleFile f;
        int r = console_file(root, js_root, path, &f);
        if (r == 0) {
                httpd_respond(req, 200, f.type, f.body, f.len);
                free(f.body);
                return 200;
        }
        if (r == -EACCES) {
                httpd_error(req, 403, "path refused (a dot segment, a hidden file, or outside the console)");
                return 403;
        }
        if (r == -ENOENT || r == -ENOTDIR || r == -ENAMETOOLONG)
                return 404; /* unanswered: the caller names what exists */
        httpd_error(req, 500, "console file unreadable");
        return 500;
}
