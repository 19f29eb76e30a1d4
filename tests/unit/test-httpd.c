/*
 * Unit tests of src/daemon/httpd.c over real sockets on 127.0.0.1: the
 * server on a port the kernel picks, a "main loop" thread that sleeps in
 * poll(2) on a pipe the wake-up callback writes to (as the daemon sleeps in
 * librdkafka until rd_kafka_queue_yield) and calls httpd_dispatch, and a
 * handler that echoes the method and path.  Checked: answers from the
 * handler (200, 404 with JSON), the server's own 4xx (405, 414, 413) and
 * 503s (queue full, loop stuck past the timeout, shutting down), 500
 * concurrent connections from a poll(2) client, listen address errors,
 * and the enterprise id helper.  Every wait is bounded.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "include/riskd/util.h"
#include "src/daemon/httpd.h"

typedef struct Server {
        Httpd *h;
        unsigned port;
        int wake[2];             /* pipe: the wake-up callback writes, the loop polls */
        pthread_t loop;
        atomic_bool stop;
        atomic_bool paused;      /* the loop does not dispatch (a stuck loop) */
        atomic_uint wakes, handled;
        _Atomic(HttpStream *) stream; /* the last /stream answered */
} Server;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_wake(void *ud)
{
        Server *s = ud;
        atomic_fetch_add(&s->wakes, 1);
        char c = 1;
        (void)!write(s->wake[1], &c, 1);
}

static void handler(void *ud, HttpReq *req)
{
        Server *s = ud;
        atomic_fetch_add(&s->handled, 1);
        const char *path = httpd_path(req), *method = httpd_method(req);
        char id[64];
        if (strncmp(path, "/echo", 5) == 0) {
                size_t n;
                const char *body = httpd_body(req, &n);
                char *out = xasprintf("%s %s %zu:%.*s", method, path, n, (int)n, body);
                httpd_respond(req, 200, "text/plain", out, strlen(out));
                free(out);
        } else if (strncmp(path, "/v1/enterprises/", 16) == 0) {
                if (httpd_path_id(path, "/v1/enterprises", id, sizeof(id)) < 0)
                        httpd_error(req, 400, "bad enterprise id");
                else
                        httpd_respond(req, 200, "text/plain", id, strlen(id));
        } else if (strcmp(path, "/stream") == 0) {
                /* answered by a stream the test feeds (buffer 1024) */
                const char *k, *v;
                char *args = xstrdup("");
                for (unsigned i = 0; httpd_arg(req, i, &k, &v); i++) {
                        char *n = xasprintf("%s%s=%s;", args, k, v);
                        free(args);
                        args = n;
                }
                const char *x = httpd_header(req, "X-Test");
                HttpStream *st = httpd_stream(req, "text/plain", 1024);
                httpd_stream_send(st, args, strlen(args));
                httpd_stream_send(st, x ? x : "-", x ? strlen(x) : 1);
                free(args);
                atomic_store(&s->stream, st);
        } else if (strcmp(path, "/silent") == 0) {
                /* no answer: the server says 500 */
        } else
                httpd_error(req, 404, "no such endpoint");
}

static void *loop_main(void *arg)
{
        Server *s = arg;
        while (!atomic_load(&s->stop)) {
                struct pollfd p = {.fd = s->wake[0], .events = POLLIN};
                if (poll(&p, 1, 100) > 0) { /* the daemon's ≤ 100 ms poll */
                        char buf[256];
                        (void)!read(s->wake[0], buf, sizeof(buf));
                }
                if (!atomic_load(&s->paused))
                        httpd_dispatch(s->h);
        }
        return NULL;
}

/* The Host the tests send ("t") is one of the server's names, and POST
 * takes the token TOKEN, unless the options say otherwise. */
#define TOKEN "s3cret-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
static const char *const test_hosts[] = {"t", NULL};

static Server *server_start(const HttpdOptions *opt)
{
        Server *s = xcalloc(1, sizeof(*s));
        cr_assert_eq(pipe2(s->wake, O_CLOEXEC | O_NONBLOCK), 0);
        char *msg = NULL;
        HttpdOptions o = opt ? *opt : (HttpdOptions){0};
        if (!o.hosts)
                o.hosts = test_hosts;
        if (!o.token)
                o.token = TOKEN;
        int r = httpd_new(&s->h, "127.0.0.1:0", &o, handler, on_wake, s, &msg);
        cr_assert_eq(r, 0, "httpd_new: %s", msg ? msg : "?");
        s->port = httpd_port(s->h);
        cr_assert_gt(s->port, 0);
        cr_assert_eq(pthread_create(&s->loop, NULL, loop_main, s), 0);
        return s;
}

static void server_stop(Server *s)
{
        atomic_store(&s->stop, true);
        pthread_join(s->loop, NULL);
        s->h = httpd_free(s->h);
        close(s->wake[0]);
        close(s->wake[1]);
        free(s);
}

static int connect_to(unsigned port)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w <= 0)
                        return; /* the server may close early (413) */
                p += w;
                n -= (size_t)w;
        }
}

typedef struct Resp {
        int status;
        char head[4096];
        char *body;
        Buf raw;
} Resp;

/* Reads the answer until the server closes (every request says
 * Connection: close); status -1 when there is none. */
static void read_resp(int fd, Resp *r)
{
        memset(r, 0, sizeof(*r));
        char buf[8192];
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        break;
                buf_put(&r->raw, buf, (size_t)n);
        }
        r->status = -1;
        if (r->raw.len && sscanf(r->raw.p, "HTTP/1.%*c %d", &r->status) != 1)
                r->status = -1;
        char *end = r->raw.p ? strstr(r->raw.p, "\r\n\r\n") : NULL;
        if (end) {
                snprintf(r->head, sizeof(r->head), "%.*s", (int)(end - r->raw.p), r->raw.p);
                r->body = end + 4;
        }
}

static void request(unsigned port, const char *raw, size_t len, Resp *r)
{
        int fd = connect_to(port);
        send_all(fd, raw, len);
        read_resp(fd, r);
        close(fd);
}

static void get(unsigned port, const char *method, const char *path, Resp *r)
{
        char *raw = xasprintf("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", method, path);
        request(port, raw, strlen(raw), r);
        free(raw);
}

Test(httpd, answers_from_the_main_loop, .timeout = 60)
{
        Server *s = server_start(NULL);
        Resp r;
        get(s->port, "GET", "/echo/a?x=1", &r);
        cr_assert_eq(r.status, 200, "%s", r.raw.p);
        cr_assert_str_eq(r.body, "GET /echo/a 0:");
        cr_assert_not_null(strstr(r.head, "Content-Type: text/plain"));
        buf_free(&r.raw);

        const char *post = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                           "Content-Length: 5\r\n\r\nhello";
        request(s->port, post, strlen(post), &r);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "POST /echo 5:hello");
        buf_free(&r.raw);

        get(s->port, "GET", "/nothing", &r);
        cr_assert_eq(r.status, 404);
        cr_assert_not_null(strstr(r.head, "Content-Type: application/json"));
        cr_assert_str_eq(r.body, "{\"error\":\"no such endpoint\",\"status\":404}\n");
        buf_free(&r.raw);

        get(s->port, "GET", "/silent", &r);
        cr_assert_eq(r.status, 500);
        buf_free(&r.raw);

        /* keep-alive: two requests on one connection */
        int fd = connect_to(s->port);
        const char *two = "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n";
        send_all(fd, two, strlen(two));
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        cr_assert_gt(n, 0);
        buf[n] = 0;
        cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
        const char *last = "GET /echo/2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        send_all(fd, last, strlen(last));
        read_resp(fd, &r);
        close(fd);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "GET /echo/2 0:");
        buf_free(&r.raw);

        cr_assert_geq(atomic_load(&s->wakes), 6);
        cr_assert_eq(atomic_load(&s->handled), 6);
        server_stop(s);
}

Test(httpd, server_side_errors, .timeout = 60)
{
        HttpdOptions opt = {.max_path = 100, .max_body = 64};
        Server *s = server_start(&opt);
        Resp r;
        get(s->port, "PUT", "/echo", &r);
        cr_assert_eq(r.status, 405);
        cr_assert_not_null(strstr(r.head, "Allow: GET, POST"));
        cr_assert_str_eq(r.body, "{\"error\":\"method not allowed (GET or POST)\",\"status\":405}\n");
        buf_free(&r.raw);
        get(s->port, "DELETE", "/echo", &r);
        cr_assert_eq(r.status, 405);
        buf_free(&r.raw);

        char path[40000];
        path[0] = '/';
        memset(path + 1, 'a', 200);
        path[201] = 0;
        get(s->port, "GET", path, &r);
        cr_assert_eq(r.status, 414);
        cr_assert_not_null(strstr(r.body, "\"status\":414"));
        buf_free(&r.raw);
        /* beyond the connection's memory: libmicrohttpd's own answer */
        memset(path + 1, 'a', sizeof(path) - 2);
        path[sizeof(path) - 1] = 0;
        get(s->port, "GET", path, &r);
        cr_assert(r.status == 414 || r.status == 431 || r.status == 400, "status %d", r.status);
        buf_free(&r.raw);

        /* a declared body over the limit: 413 without reading it */
        const char *big = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                          "Content-Length: 100000000\r\n\r\n";
        request(s->port, big, strlen(big), &r);
        cr_assert_eq(r.status, 413);
        cr_assert_not_null(strstr(r.body, "\"status\":413"));
        buf_free(&r.raw);
        /* a chunked one: read, dropped, 413 */
        Buf ch = {0};
        buf_puts(&ch, "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                          "Transfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 10; i++)
                buf_puts(&ch, "10\r\n0123456789abcdef\r\n");
        buf_puts(&ch, "0\r\n\r\n");
        request(s->port, ch.p, ch.len, &r);
        cr_assert_eq(r.status, 413, "%s", r.raw.p);
        buf_free(&r.raw);
        buf_free(&ch);
        /* a chunked one that never ends: cut off after 1 MiB past the limit */
        int fd = connect_to(s->port);
        const char *head = "POST /echo HTTP/1.1\r\nHost: t\r\n" AUTH "Transfer-Encoding: chunked\r\n\r\n";
        send_all(fd, head, strlen(head));
        char chunk[4096 + 16];
        int hl = snprintf(chunk, sizeof(chunk), "1000\r\n");
        memset(chunk + hl, 'x', 4096);
        memcpy(chunk + hl + 4096, "\r\n", 2);
        size_t sent = 0;
        while (sent < 8 * 1024 * 1024) {
                ssize_t w = send(fd, chunk, (size_t)hl + 4098, MSG_NOSIGNAL);
                if (w <= 0)
                        break;
                sent += (size_t)w;
        }
        cr_assert_lt(sent, 8 * 1024 * 1024, "the server read an endless body");
        close(fd);

        /* the id helper through the server (libmicrohttpd decodes %XX) */
        get(s->port, "GET", "/v1/enterprises/91310000%E4%B8%AD", &r);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "91310000中");
        buf_free(&r.raw);
        get(s->port, "GET", "/v1/enterprises/a%2Fb", &r);
        cr_assert_eq(r.status, 400);
        buf_free(&r.raw);
        get(s->port, "GET", "/v1/enterprises/a%0Ab", &r);
        cr_assert_eq(r.status, 400);
        buf_free(&r.raw);

        cr_assert_eq(atomic_load(&s->handled), 3);
        server_stop(s);
}

Test(httpd, stuck_loop_gets_503, .timeout = 60)
{
        HttpdOptions opt = {.queue_timeout_ms = 300};
        Server *s = server_start(&opt);
        atomic_store(&s->paused, true);
        int64_t t0 = now_ms();
        Resp r;
        get(s->port, "GET", "/echo", &r);
        int64_t took = now_ms() - t0;
        cr_assert_eq(r.status, 503);
        cr_assert_str_eq(r.body, "{\"error\":\"the daemon did not answer in time\",\"status\":503}\n");
        cr_assert(took >= 250 && took < 5000, "answered after %lld ms", (long long)took);
        buf_free(&r.raw);
        cr_assert_eq(atomic_load(&s->handled), 0);
        /* the loop comes back: answers again */
        atomic_store(&s->paused, false);
        get(s->port, "GET", "/echo", &r);
        cr_assert_eq(r.status, 200);
        buf_free(&r.raw);
        server_stop(s);
}

Test(httpd, full_queue_and_shutdown_get_503, .timeout = 60)
{
        HttpdOptions opt = {.max_queue = 2, .queue_timeout_ms = 60000};
        Server *s = server_start(&opt);
        atomic_store(&s->paused, true);
        const char *req = "GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        int fd[2];
        for (int i = 0; i < 2; i++) {
                fd[i] = connect_to(s->port);
                send_all(fd[i], req, strlen(req));
        }
        /* both queued: each woke the loop */
        for (int64_t t = now_ms(); atomic_load(&s->wakes) < 2 && now_ms() - t < 5000;)
                usleep(1000);
        cr_assert_eq(atomic_load(&s->wakes), 2);
        Resp r;
        get(s->port, "GET", "/echo", &r);
        cr_assert_eq(r.status, 503);
        cr_assert_not_null(strstr(r.body, "too many requests waiting"));
        buf_free(&r.raw);
        /* httpd_free answers the queued ones */
        atomic_store(&s->stop, true);
        pthread_join(s->loop, NULL);
        s->h = httpd_free(s->h);
        for (int i = 0; i < 2; i++) {
                read_resp(fd[i], &r);
                close(fd[i]);
                cr_assert_eq(r.status, 503);
                cr_assert_not_null(strstr(r.body, "shutting down"));
                buf_free(&r.raw);
        }
        cr_assert_eq(atomic_load(&s->handled), 0);
        close(s->wake[0]);
        close(s->wake[1]);
        free(s);
}

/* 500 connections opened first, then a request on each, all answered. */
Test(httpd, five_hundred_concurrent, .timeout = 120)
{
        enum { N = 500 };
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 2 * N + 64 && rl.rlim_max >= 2 * N + 64) {
                rl.rlim_cur = 2 * N + 64;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        /* one client address: the per-address limit raised for it */
        HttpdOptions opt = {.per_ip = N};
        Server *s = server_start(&opt);
        struct pollfd pfd[N];
        Buf in[N];
        size_t out[N];
        char req[N][64];
        memset(in, 0, sizeof(in));
        for (int i = 0; i < N; i++) {
                pfd[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                cr_assert_geq(pfd[i].fd, 0, "socket: %s", strerror(errno));
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                int r = connect(pfd[i].fd, (struct sockaddr *)&a, sizeof(a));
                cr_assert(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
                pfd[i].events = POLLOUT;
                snprintf(req[i], sizeof(req[i]), "GET /echo/%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", i);
                out[i] = 0;
        }
        int done = 0, ok = 0;
        int64_t t0 = now_ms();
        while (done < N && now_ms() - t0 < 60000) {
                int n = poll(pfd, N, 1000);
                cr_assert_geq(n, 0);
                for (int i = 0; i < N && n > 0; i++) {
                        if (pfd[i].fd < 0 || !pfd[i].revents)
                                continue;
                        if (pfd[i].events == POLLOUT) {
                                size_t len = strlen(req[i]);
                                ssize_t w = send(pfd[i].fd, req[i] + out[i], len - out[i], MSG_NOSIGNAL);
                                if (w > 0)
                                        out[i] += (size_t)w;
                                else if (w < 0 && errno != EAGAIN)
                                        goto closed;
                                if (out[i] == len)
                                        pfd[i].events = POLLIN;
                                continue;
                        }
                        char buf[1024];
                        ssize_t r = recv(pfd[i].fd, buf, sizeof(buf), 0);
                        if (r > 0) {
                                buf_put(&in[i], buf, (size_t)r);
                                continue;
                        }
                        if (r < 0 && errno == EAGAIN)
                                continue;
                closed:
                        close(pfd[i].fd);
                        pfd[i].fd = -1;
                        done++;
                        char want[64];
                        snprintf(want, sizeof(want), "GET /echo/%d 0:", i);
                        if (in[i].p && strncmp(in[i].p, "HTTP/1.1 200", 12) == 0 && strstr(in[i].p, want))
                                ok++;
                }
        }
        for (int i = 0; i < N; i++) {
                if (pfd[i].fd >= 0)
                        close(pfd[i].fd);
                buf_free(&in[i]);
        }
        cr_assert_eq(done, N, "%d of %d connections finished in time", done, N);
        cr_assert_eq(ok, N, "%d of %d answered 200", ok, N);
        cr_assert_eq(atomic_load(&s->handled), N);
        server_stop(s);
}

Test(httpd, listen_errors)
{
        static const char *const bad[] = {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:70000", "[::1:9464",
                                          "::1:9464", "1.2.3.4.5:80", "127.0.0.1:x"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                Httpd *h = NULL;
                char *msg = NULL;
                int r = httpd_new(&h, bad[i], NULL, handler, NULL, NULL, &msg);
                cr_assert_eq(r, -EINVAL, "%s: %d", bad[i], r);
                cr_assert_null(h);
                cr_assert_not_null(msg);
                cr_assert_not_null(strstr(msg, bad[i]), "%s", msg);
                free(msg);
        }
        Server *s = server_start(NULL);
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", s->port);
        Httpd *h = NULL;
        char *msg = NULL;
        int r = httpd_new(&h, addr, NULL, handler, NULL, NULL, &msg);
        cr_assert_eq(r, -EADDRINUSE);
        cr_assert_not_null(strstr(msg, "in use"), "%s", msg);
        free(msg);
        server_stop(s);

        /* IPv6 loopback and every address, when the host has them */
        static const char *const good[] = {"[::1]:0", ":0"};
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                msg = NULL;
                r = httpd_new(&h, good[i], NULL, handler, NULL, NULL, &msg);
                if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
                        free(msg);
                        continue;
                }
                cr_assert_eq(r, 0, "%s: %s", good[i], msg ? msg : "?");
                cr_assert_gt(httpd_port(h), 0);
                h = httpd_free(h);
        }
}

Test(httpd, path_id)
{
        char id[8];
        cr_assert_eq(httpd_path_id("/v1/enterprises/E1", "/v1/enterprises", id, sizeof(id)), 0);
        cr_assert_str_eq(id, "E1");
        cr_assert_eq(httpd_path_id("/v1/enterprises/1234567", "/v1/enterprises", id, sizeof(id)), 0);
        cr_assert_eq(httpd_path_id("/v1/enterprises/12345678", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v1/enterprises/", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v1/enterprises", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v1/enterprisesX/a", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v1/enterprises/a/b", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v1/enterprises/a\tb", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v1/enterprises/a\x7f", "/v1/enterprises", id, sizeof(id)), -1);
        cr_assert_eq(httpd_path_id("/v2/enterprises/a", "/v1/enterprises", id, sizeof(id)), -1);
}

/* Each malformed head nginx refuses gets a 400 (501 for a transfer coding
 * it does not know) before the main loop sees it. */
Test(httpd, malformed_heads_400, .timeout = 60)
{
        Server *s = server_start(NULL);
        static const struct {
                const char *raw;
                int status;
                const char *why;
        } cases[] = {
                {"GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "without a Host"},
                {"GET /echo HTTP/1.1\r\nHost: t\r\nHost: t\r\nConnection: close\r\n\r\n", 400, "more than one Host"},
                {"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                 "Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
                 400, "more than one Content-Length"},
                {"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                 "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                 400, "more than one Content-Length"},
                {"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                 400, "both Transfer-Encoding and Content-Length"},
                {"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH
                 "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                 501, "Transfer-Encoding"},
                {"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" AUTH "Content-Length: +5\r\n\r\nhello", 400,
                 NULL},
                {"GET /v1/enterprises/ID%00junk HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400, "%00"},
                {"GET /echo%00 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400, "%00"},
                {"GET /echo?x=%00 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400, "%00"},
        };
        Resp r;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                request(s->port, cases[i].raw, strlen(cases[i].raw), &r);
                cr_assert_eq(r.status, cases[i].status, "case %zu: %s", i, r.raw.p ? r.raw.p : "(nothing)");
                if (cases[i].why)
                        cr_assert_not_null(strstr(r.body, cases[i].why), "case %zu: %s", i, r.body);
                buf_free(&r.raw);
        }
        cr_assert_eq(atomic_load(&s->handled), 0);
        /* HTTP/1.0 needs no Host; a good id still passes */
        const char *ok10 = "GET /echo HTTP/1.0\r\n\r\n";
        request(s->port, ok10, strlen(ok10), &r);
        cr_assert_eq(r.status, 200, "%s", r.raw.p);
        buf_free(&r.raw);
        get(s->port, "GET", "/v1/enterprises/ID%41", &r);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "IDA");
        buf_free(&r.raw);
        cr_assert_eq(atomic_load(&s->handled), 2);
        server_stop(s);
}

static void get_host(unsigned port, const char *host, Resp *r)
{
        char *raw = xasprintf("GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host);
        request(port, raw, strlen(raw), r);
        free(raw);
}

/* DNS rebinding: a name that is not the server's gets 421; the listen
 * address and the configured names (any case, any port) pass. */
Test(httpd, host_names, .timeout = 60)
{
        Server *s = server_start(NULL);
        static const char *const good[] = {"t", "T", "t:9464", "127.0.0.1", "127.0.0.1:1"};
        static const char *const bad[] = {"evil.example", "evil.example:9464", "t.evil", "127.0.0.2", "[::1]",
                                          "t:x", "t:", "", "localhost"};
        Resp r;
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                get_host(s->port, good[i], &r);
                cr_assert_eq(r.status, 200, "Host: %s: %s", good[i], r.raw.p);
                buf_free(&r.raw);
        }
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                get_host(s->port, bad[i], &r);
                cr_assert(r.status == 421 || r.status == 400, "Host: %s: %d", bad[i], r.status);
                buf_free(&r.raw);
        }
        cr_assert_eq(atomic_load(&s->handled), ARRAY_SIZE(good));
        server_stop(s);

        /* every address: any address literal, names only as configured */
        static const char *const names[] = {"riskd.internal", NULL};
        cr_assert(httpd_host_allowed("10.1.2.3:9464", "", true, NULL));
        cr_assert(httpd_host_allowed("[fe80::1]:9464", "::", true, NULL));
        cr_assert(httpd_host_allowed("RISKD.internal", "0.0.0.0", true, names));
        cr_assert_not(httpd_host_allowed("evil.example", "0.0.0.0", true, names));
        cr_assert_not(httpd_host_allowed("[::1", "::", true, NULL));
        cr_assert_not(httpd_host_allowed("[::1]x", "::", true, NULL));
        cr_assert(httpd_host_allowed("[::1]", "::1", false, NULL));
        cr_assert_not(httpd_host_allowed("10.1.2.3", "127.0.0.1", false, names));
}

static void post(unsigned port, const char *extra, Resp *r)
{
        char *raw = xasprintf("POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%sContent-Length: 2\r\n\r\nhi",
                              extra);
        request(port, raw, strlen(raw), r);
        free(raw);
}

/* POST: off without a token (403); with one, the bearer token (401
 * otherwise, with WWW-Authenticate) and no foreign Origin (403). */
Test(httpd, post_token_and_origin, .timeout = 60)
{
        Server *s = server_start(NULL);
        Resp r;
        post(s->port, AUTH, &r);
        cr_assert_eq(r.status, 200, "%s", r.raw.p);
        cr_assert_str_eq(r.body, "POST /echo 2:hi");
        buf_free(&r.raw);
        post(s->port, "Authorization: bearer " TOKEN "\r\nOrigin: http://t:9464\r\n", &r);
        cr_assert_eq(r.status, 200, "%s", r.raw.p);
        buf_free(&r.raw);
        static const char *const unauth[] = {"", "Authorization: Bearer wrong\r\n",
                                             "Authorization: Bearer " TOKEN "x\r\n",
                                             "Authorization: Bearer s3cret\r\n", "Authorization: Basic dDp0\r\n",
                                             "Authorization: Bearer \r\n",
                                             AUTH AUTH};
        for (size_t i = 0; i < ARRAY_SIZE(unauth); i++) {
                post(s->port, unauth[i], &r);
                cr_assert_eq(r.status, 401, "case %zu: %s", i, r.raw.p);
                cr_assert_not_null(strstr(r.head, "WWW-Authenticate: Bearer"), "%s", r.head);
                buf_free(&r.raw);
        }
        /* a browser page elsewhere: its text/plain POST carries its Origin */
        static const char *const foreign[] = {"Origin: http://evil.example\r\n", "Origin: null\r\n",
                                              "Origin: http://t.evil\r\n", "Origin: file://\r\n",
                                              "Origin: http://t/x\r\n",
                                              "Origin: http://t\r\nOrigin: http://t\r\n"};
        for (size_t i = 0; i < ARRAY_SIZE(foreign); i++) {
                char *extra = xasprintf(AUTH "Content-Type: text/plain\r\n%s", foreign[i]);
                post(s->port, extra, &r);
                free(extra);
                cr_assert_eq(r.status, 403, "case %zu: %s", i, r.raw.p);
                cr_assert_not_null(strstr(r.body, "cross-origin"));
                buf_free(&r.raw);
        }
        cr_assert_eq(atomic_load(&s->handled), 2);
        server_stop(s);

        /* no token: POST is off; GET goes on */
        s = xcalloc(1, sizeof(*s));
        cr_assert_eq(pipe2(s->wake, O_CLOEXEC | O_NONBLOCK), 0);
        char *msg = NULL;
        HttpdOptions o = {.hosts = test_hosts};
        cr_assert_eq(httpd_new(&s->h, "127.0.0.1:0", &o, handler, on_wake, s, &msg), 0);
        s->port = httpd_port(s->h);
        cr_assert_eq(pthread_create(&s->loop, NULL, loop_main, s), 0);
        post(s->port, AUTH, &r);
        cr_assert_eq(r.status, 403);
        cr_assert_not_null(strstr(r.body, "http_reload: false"), "%s", r.body);
        buf_free(&r.raw);
        get(s->port, "GET", "/echo", &r);
        cr_assert_eq(r.status, 200);
        buf_free(&r.raw);
        cr_assert_eq(atomic_load(&s->handled), 1);
        server_stop(s);
}

/* Until the server holds n connections (bounded: 10 s). */
static void wait_connections(Server *s, unsigned n)
{
        int64_t end = now_ms() + 10000;
        while (httpd_connections(s->h) != n) {
                cr_assert_lt(now_ms(), end, "the server holds %u connections, not %u", httpd_connections(s->h), n);
                usleep(10 * 1000); /* pacing the poll */
        }
}

/* Connections from one address beyond per_ip are closed at once; the
 * others go on being answered. */
Test(httpd, per_address_limit, .timeout = 60)
{
        HttpdOptions opt = {.per_ip = 4};
        Server *s = server_start(&opt);
        int idle[4];
        for (int i = 0; i < 4; i++)
                idle[i] = connect_to(s->port);
        wait_connections(s, 4); /* accepted by the server thread */
        Resp r;
        get(s->port, "GET", "/echo", &r);
        cr_assert_eq(r.status, -1, "a fifth connection was answered: %s", r.raw.p);
        buf_free(&r.raw);
        close(idle[0]);
        wait_connections(s, 3);
        get(s->port, "GET", "/echo", &r);
        cr_assert_eq(r.status, 200);
        buf_free(&r.raw);
        for (int i = 1; i < 4; i++)
                close(idle[i]);
        server_stop(s);
}

/* A head sent a byte at a time is cut at head_timeout_ms, however often
 * the bytes come (the idle timeout alone would wait forever); a kept-alive
 * connection has the same deadline for its next head. */
Test(httpd, head_deadline, .timeout = 60)
{
        HttpdOptions opt = {.head_timeout_ms = 400, .timeout_s = 30};
        Server *s = server_start(&opt);
        int fd = connect_to(s->port);
        const char *slow = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: "
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        int64_t t0 = now_ms();
        bool cut = false;
        size_t sent = 0;
        /* 50 ms a byte: the whole head takes over 3 s, eight deadlines */
        for (size_t i = 0; slow[i] && now_ms() - t0 < 5000; i++) {
                if (send(fd, slow + i, 1, MSG_NOSIGNAL) != 1) {
                        cut = true;
                        break;
                }
                sent++;
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 50) > 0) {
                        char c;
                        if (recv(fd, &c, 1, 0) <= 0) {
                                cut = true;
                                break;
                        }
                }
        }
        close(fd);
        cr_assert(cut, "the slow head was not cut: all %zu bytes sent", sent);
        cr_assert_gt(sent, 1, "the connection was cut at once, not at the deadline");
        /* a whole head in time is answered */
        Resp r;
        get(s->port, "GET", "/echo", &r);
        cr_assert_eq(r.status, 200);
        buf_free(&r.raw);
        /* kept alive, then silent: closed at the deadline */
        fd = connect_to(s->port);
        const char *one = "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n";
        send_all(fd, one, strlen(one));
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        cr_assert_gt(n, 0);
        /* the idle timeout (timeout_s, 30 s) would close it too: the
         * receive gives up before that, so only the deadline passes */
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
                ;
        close(fd);
        cr_assert_eq(n, 0, "a silent kept-alive connection was not closed at the head deadline");
        server_stop(s);
}

/* httpd_unescape: what libmicrohttpd's decoding does, and the %00 mark. */
Test(httpd, unescape)
{
        char a[] = "/a%41%2f%zz%4";
        bool nul = false;
        cr_assert_eq(httpd_unescape(a, &nul), strlen("/aA/%zz%4"));
        cr_assert_str_eq(a, "/aA/%zz%4");
        cr_assert_not(nul);
        char b[] = "/v1/enterprises/ID%00junk";
        cr_assert_eq(httpd_unescape(b, &nul), strlen("/v1/enterprises/ID") + 5);
        cr_assert(nul);
}

/* Every input fuzz/fuzz-http found, and the malformed requests of issue
 * 13, through the fuzzer's own entry point (a server of its own, the
 * answers checked, a good request answered after each). */
#include "fuzz/fuzz-http.c"

Test(httpd, fuzz_regressions, .timeout = 120)
{
        const char *dir = SRCDIR "/tests/fuzz-regressions/http";
        DIR *d = opendir(dir);
        cr_assert_not_null(d);
        struct dirent *de;
        unsigned n = 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char *p = xasprintf("%s/%s", dir, de->d_name);
                char *text;
                size_t len;
                cr_assert_eq(file_read_all(p, &text, &len), 0);
                cr_assert_eq(LLVMFuzzerTestOneInput((const uint8_t *)text, len), 0, "%s", p);
                free(text);
                free(p);
                n++;
        }
        closedir(d);
        cr_assert_geq(n, 5);
        fz_h = httpd_free(fz_h);
}

/* Reads from fd until want is among what came (or the server closed):
 * whether it came. */
static bool read_until(int fd, Buf *got, const char *want)
{
        char buf[4096];
        for (;;) {
                if (got->len && memmem(got->p, got->len, want, strlen(want)))
                        return true;
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        return false;
                buf_put(got, buf, (size_t)n);
        }
}

static HttpStream *stream_wait(Server *s)
{
        int64_t end = now_ms() + 10000;
        HttpStream *st;
        while (!(st = atomic_exchange(&s->stream, NULL)) && now_ms() < end) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL); /* polled: the loop thread answers it */
        }
        cr_assert_not_null(st, "no stream");
        return st;
}

/* A stream: the query's arguments and headers reach the handler; what the
 * owner queues is sent as it comes (after a wait with nothing to send);
 * a send past the buffer is refused, never waited for; a close ends the
 * chunked body; a client that goes is seen gone; a dropped stream's
 * connection is cut. */
Test(httpd, streams, .timeout = 60)
{
        Server *s = server_start(NULL);
        int fd = connect_to(s->port);
        const char *req = "GET /stream?a=1&b=x%20y HTTP/1.1\r\nHost: t\r\nX-Test: hdr\r\n\r\n";
        send_all(fd, req, strlen(req));
        HttpStream *st = stream_wait(s);
        Buf got = {0};
        cr_assert(read_until(fd, &got, "a=1;b=x y;hdr"), "%.*s", (int)got.len, got.p);
        cr_assert(memmem(got.p, got.len, "HTTP/1.1 200", 12) && memmem(got.p, got.len, "chunked", 7));
        /* the reader suspended the connection: a send resumes it */
        cr_assert_eq(httpd_stream_send(st, "later", 5), 0);
        cr_assert(read_until(fd, &got, "later"));
        char big[2048];
        memset(big, 'x', sizeof(big));
        cr_assert_eq(httpd_stream_send(st, big, sizeof(big)), -ENOBUFS);
        cr_assert_not(httpd_stream_gone(st));
        httpd_stream_close(st, false);
        cr_assert(read_until(fd, &got, "\r\n0\r\n\r\n"), "the chunked body ends");
        close(fd);
        buf_free(&got);

        /* a client that goes: gone (a send finds it so, or fails) */
        fd = connect_to(s->port);
        send_all(fd, req, strlen(req));
        st = stream_wait(s);
        got.len = 0;
        cr_assert(read_until(fd, &got, "hdr"));
        close(fd);
        int64_t end = now_ms() + 10000;
        while (!httpd_stream_gone(st) && now_ms() < end)
                if (httpd_stream_send(st, "ping\n", 5) == -EPIPE)
                        break;
        cr_assert(httpd_stream_gone(st) || httpd_stream_send(st, "x", 1) == -EPIPE);
        httpd_stream_close(st, false);

        /* dropped: the connection is closed at once, what was queued or
         * not (a client that reads nothing would otherwise hold it) */
        fd = connect_to(s->port);
        send_all(fd, req, strlen(req));
        st = stream_wait(s);
        got.len = 0;
        cr_assert(read_until(fd, &got, "hdr"));
        cr_assert_eq(httpd_stream_send(st, "queued", 6), 0);
        httpd_stream_close(st, true);
        cr_assert_not(read_until(fd, &got, "\r\n0\r\n\r\n"), "no regular end: cut");
        close(fd);
        buf_free(&got);
        server_stop(s);
}
