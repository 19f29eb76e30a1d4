/*
 * riskd's web console (issue 16 point 4), read-only static files on the
 * HTTP endpoint: GET / and every path no other route takes are files of
 * http_console (meson install: share/riskd/console), and /javascript/...
 * the Debian JavaScript libraries of http_javascript (/usr/share/javascript,
 * where libjs-chart.js puts chart.js; the path Debian's javascript-common
 * gives them on a web server).  The pages read the JSON API.
 *
 * A path is taken segment by segment: an empty, "." or ".." segment, one
 * that starts with a dot (hidden files), or a backslash is refused (403);
 * so is a file whose real path (symbolic links resolved) is outside its
 * root.  Only regular files of at most CONSOLE_MAX_FILE bytes are served, a
 * directory by its index.html.  The content type comes from the name.
 */
#ifndef RISKD_DAEMON_CONSOLE_H
#define RISKD_DAEMON_CONSOLE_H

#include <stddef.h>

#include "src/daemon/httpd.h"

#define CONSOLE_MAX_FILE (16u << 20)

typedef struct ConsoleFile {
        char *body;               /* malloc'd */
        size_t len;
        const char *type;         /* Content-Type */
} ConsoleFile;

/* The file of a request path (decoded, without the query): 0 and *out;
 * -EACCES refused (above), -ENOENT none (or its root is ""), -EFBIG past
 * CONSOLE_MAX_FILE, another -errno when it cannot be read. */
int console_file(const char *root, const char *js_root, const char *path, ConsoleFile *out);
/* The Content-Type of a file name, by its extension. */
const char *console_content_type(const char *name);
/* Answers a GET or HEAD of path from the console's files: the status
 * answered (200, 403, 500), or 404 with nothing answered (no such file:
 * the caller's 404 names the endpoints too). */
unsigned console_http(const char *root, const char *js_root, HttpReq *req, const char *path);

#endif
