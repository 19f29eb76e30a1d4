/*
 * libFuzzer target for the HTTP endpoint: the input is sent as it is, as
 * the bytes of one connection, to src/daemon/httpd.c on 127.0.0.1 (one
 * server for the whole run, with a token, a name and short timeouts: a
 * head not in after 30 ms is cut, as libmicrohttpd waits out a head the
 * client half-closed), the write side shut, and the answer read to the end
 * while this thread plays the daemon's main loop (httpd_dispatch) with the daemon's routing: the
 * endpoints, the method, the enterprise id.  libmicrohttpd parses the
 * request line and headers, httpd.c checks the head (400, 421, 401, 403,
 * 413...), the id goes through httpd_path_id.  Checked besides crashes,
 * leaks and UB: every answer is an HTTP/1.x status line, a request the
 * handler sees has a path without control characters in its id, and the
 * server still answers a good request afterwards.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "include/riskd/util.h"
#include "src/daemon/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Httpd *fz_h;
static unsigned fz_port;
static unsigned fz_handled;

static int64_t fz_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* loop.c's routing, without the engine behind it. */
static void fz_handler(void *ud, HttpReq *req)
{
        (void)ud;
        fz_handled++;
        const char *path = httpd_path(req), *method = httpd_method(req);
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        size_t blen;
        const char *body = httpd_body(req, &blen);
        if (blen > 4096 || (blen && !body))
                abort();
        char id[256];
        if (strcmp(path, "/metrics") == 0 && get)
                httpd_respond(req, 200, "text/plain", "m 1\n", 4);
        else if ((strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 || strcmp(path, "/v1/rules") == 0) &&
                 get)
                httpd_respond(req, 200, "application/json", "{}\n", 3);
        else if (strcmp(path, "/v1/reload") == 0 && strcmp(method, "POST") == 0)
                httpd_respond(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
        else if (strncmp(path, "/v1/enterprises/", 16) == 0 && get) {
                if (httpd_path_id(path, "/v1/enterprises", id, sizeof(id)) < 0)
                        httpd_error(req, 400, "bad enterprise id");
                else {
                        for (const char *p = id; *p; p++)
                                if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '/')
                                        abort(); /* httpd_path_id let a control character through */
                        httpd_respond(req, 200, "text/plain", id, strlen(id));
                }
        } else
                httpd_error(req, 404, "no such endpoint");
}

static int fz_connect(void)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                abort();
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fz_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
                abort();
        return fd;
}

/* Sends raw on a new connection and reads the answer to the end, serving
 * the queue meanwhile; the bytes received (malloc'd) and their count. */
static char *fz_exchange(const uint8_t *raw, size_t len, size_t *got)
{
        int fd = fz_connect();
        for (size_t off = 0; off < len;) {
                ssize_t w = send(fd, raw + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                        off += (size_t)w;
                        continue;
                }
                if (w < 0 && errno != EAGAIN)
                        break; /* the server closed early (400, 413) */
                httpd_dispatch(fz_h);
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, 5);
        }
        shutdown(fd, SHUT_WR);
        Buf in = {0};
        int64_t t0 = fz_ms();
        for (;;) {
                httpd_dispatch(fz_h);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 2) <= 0) {
                        if (fz_ms() - t0 > 5000)
                                abort(); /* no answer and no close: a hang */
                        continue;
                }
                char buf[4096];
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        break;
                buf_put(&in, buf, (size_t)n);
        }
        close(fd);
        *got = in.len;
        return in.p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!fz_h) {
                static const char *const hosts[] = {"t", NULL};
                HttpdOptions o = {.hosts = hosts, .token = "fuzz-token", .head_timeout_ms = 30, .timeout_s = 1,
                                  .queue_timeout_ms = 1000, .max_body = 4096};
                char *msg = NULL;
                if (httpd_new(&fz_h, "127.0.0.1:0", &o, fz_handler, NULL, NULL, &msg) < 0) {
                        fprintf(stderr, "fuzz-http: %s\n", msg ? msg : "httpd_new failed");
                        abort();
                }
                fz_port = httpd_port(fz_h);
        }
        size_t n;
        char *out = fz_exchange(data, size, &n);
        /* what comes back is libmicrohttpd's answers: status lines */
        if (n && (n < 12 || memcmp(out, "HTTP/1.", 7) != 0))
                abort();
        free(out);
        /* and the server still answers */
        static const char good[] = "GET /v1/enterprises/E1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        out = fz_exchange((const uint8_t *)good, sizeof(good) - 1, &n);
        if (n < 12 || memcmp(out, "HTTP/1.1 200", 12) != 0)
                abort();
        free(out);
        return 0;
}
