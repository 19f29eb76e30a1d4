/*
 * riskd's HTTP endpoint on libmicrohttpd (httpd.h): the listening socket,
 * the checks of a request before it reaches the main loop, the queue the
 * main loop answers, the timer thread.  The server's structs are in
 * httpd_int.h, the streams (Server-Sent Events) in httpd_stream.c.
 *
 * Threads: libmicrohttpd's polling thread runs on_request/on_completed; the
 * timer thread (expire) answers requests that waited too long; the owner's
 * main loop runs httpd_dispatch and httpd_free.  h->lock guards the queue,
 * stopping and nsuspended.  A queued request belongs to whoever takes it off
 * the queue under the lock (dispatch or expire), which answers it and
 * resumes its connection; after the resume it belongs to libmicrohttpd
 * again (on_completed frees it).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "include/riskd/util.h"
#include "src/daemon/httpd_int.h"

/* The body of a chunked request past the limit is drained up to this much
 * (so that the client reads the 413), then the connection is closed. */
#define DRAIN_MAX (1024 * 1024)

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline(struct timespec *ts, int64_t ms)
{
        ts->tv_sec = ms / 1000;
        ts->tv_nsec = (ms % 1000) * 1000000;
}

static void json_error(Buf *b, unsigned status, const char *message)
{
        buf_puts(b, "{\"error\":");
        buf_json_str(b, message, strlen(message));
        buf_printf(b, ",\"status\":%u}\n", status);
}

static void answer(HttpReq *r, unsigned status, const char *ctype, const char *body, size_t len)
{
        free(r->resp);
        free(r->ctype);
        r->status = status;
        r->ctype = xstrdup(ctype);
        r->resp = xmalloc(len + 1);
        memcpy(r->resp, body, len);
        r->resp_len = len;
        r->state = REQ_ANSWERED;
}

static void answer_error(HttpReq *r, unsigned status, const char *message)
{
        Buf b = {0};
        json_error(&b, status, message);
        answer(r, status, "application/json", b.p, b.len);
        buf_free(&b);
}

static enum MHD_Result send_answer(struct MHD_Connection *c, HttpReq *r)
{
        struct MHD_Response *resp;
        if (r->stream) {
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, httpd_stream_read, r->stream,
                                                         httpd_stream_free_cb);
                if (resp) {
                        pthread_mutex_lock(&r->stream->lock);
                        r->stream->started = true;
                        pthread_mutex_unlock(&r->stream->lock);
                }
        } else
                resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", r->ctype);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (r->status == 405)
                MHD_add_response_header(resp, "Allow", "GET, POST");
        if (r->status == 401)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"riskd\"");
        if (r->status == 400 || r->status == 421 || r->status == 501)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* ---- what is checked before a request reaches the main loop ---- */

/* The headers the checks need, counted (a repeated one is refused). */
typedef struct Heads {
        const char *host, *origin, *authorization, *content_length, *transfer_encoding;
        unsigned nhost, norigin, nauthorization, ncontent_length, ntransfer_encoding;
} Heads;

static enum MHD_Result head_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        Heads *hd = cls;
        (void)kind;
        static const struct {
                const char *name;
                size_t v, n;
        } want[] = {
                {MHD_HTTP_HEADER_HOST, offsetof(Heads, host), offsetof(Heads, nhost)},
                {MHD_HTTP_HEADER_ORIGIN, offsetof(Heads, origin), offsetof(Heads, norigin)},
                {MHD_HTTP_HEADER_AUTHORIZATION, offsetof(Heads, authorization), offsetof(Heads, nauthorization)},
                {MHD_HTTP_HEADER_CONTENT_LENGTH, offsetof(Heads, content_length), offsetof(Heads, ncontent_length)},
                {MHD_HTTP_HEADER_TRANSFER_ENCODING, offsetof(Heads, transfer_encoding),
                 offsetof(Heads, ntransfer_encoding)},
        };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                if (strcasecmp(key, want[i].name) == 0) {
                        unsigned *n = (unsigned *)((char *)hd + want[i].n);
                        if (!(*n)++)
                                *(const char **)((char *)hd + want[i].v) = value ? value : "";
                }
        return MHD_YES;
}

/* A numeric IPv4 or IPv6 address (without brackets). */
static bool addr_literal(const char *s, size_t n)
{
        char tmp[64];
        unsigned char out[16];
        if (n == 0 || n >= sizeof(tmp))
                return false;
        memcpy(tmp, s, n);
        tmp[n] = 0;
        return inet_pton(AF_INET, tmp, out) == 1 || inet_pton(AF_INET6, tmp, out) == 1;
}

int httpd_host_allowed(const char *host, const char *listen_host, bool listen_any, const char *const *names)
{
        /* host[:port], [v6][:port]: the port is not checked (a name decides
         * DNS rebinding; riskd may sit behind a port forward) */
        const char *end;
        const char *h = host;
        size_t n;
        if (h[0] == '[') {
                end = strchr(h, ']');
                if (!end || (end[1] && end[1] != ':'))
                        return 0;
                h++;
                n = (size_t)(end - h);
                end++;
        } else {
                end = strchr(h, ':');
                n = end ? (size_t)(end - h) : strlen(h);
                if (!end)
                        end = h + n;
        }
        if (*end == ':') {
                const char *p = end + 1;
                if (!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
                        return 0;
        }
        if (!n)
                return 0;
        if (strlen(listen_host) == n && strncasecmp(h, listen_host, n) == 0)
                return 1;
        if (listen_any && addr_literal(h, n))
                return 1;
        for (size_t i = 0; names && names[i]; i++)
                if (strlen(names[i]) == n && strncasecmp(h, names[i], n) == 0)
                        return 1;
        return 0;
}

/* Constant time in the length of the expected token. */
static bool token_equal(const char *got, const char *want)
{
        size_t gl = strlen(got), wl = strlen(want);
        unsigned char d = gl != wl;
        for (size_t i = 0; i < wl; i++)
                d |= (unsigned char)(want[i] ^ (i < gl ? got[i] : 0));
        return d == 0;
}

/* Whether a Content-Length is digits only, as nginx takes it. */
static bool length_ok(const char *v)
{
        size_t n = strlen(v);
        return n && n <= 19 && strspn(v, "0123456789") == n;
}

/*
 * The request head, as nginx would refuse it (400), then the Host (421), a
 * POST's Origin (403) and token (401; 403 when POST is off).  Returns 0
 * when the request may go on, else the status with *msg.
 */
static unsigned head_check(Httpd *h, HttpReq *r, const char *method, const char *version, const char **msg)
{
        Heads hd = {0};
        MHD_get_connection_values(r->conn, MHD_HEADER_KIND, head_cb, &hd);
        bool http11 = strcmp(version, MHD_HTTP_VERSION_1_0) != 0;
        if (r->hc && r->hc->bad_target)
                return *msg = "%00 in the request target", 400;
        if (!hd.nhost && http11)
                return *msg = "HTTP/1.1 request without a Host header", 400;
        if (hd.nhost > 1)
                return *msg = "more than one Host header", 400;
        if (hd.ncontent_length > 1)
                return *msg = "more than one Content-Length header", 400;
        if (hd.ncontent_length && !length_ok(hd.content_length))
                return *msg = "Content-Length is not a number", 400;
        if (hd.ntransfer_encoding && hd.ncontent_length)
                return *msg = "both Transfer-Encoding and Content-Length", 400;
        if (hd.ntransfer_encoding > 1 || (hd.ntransfer_encoding && strcasecmp(hd.transfer_encoding, "chunked") != 0))
                return *msg = "unsupported Transfer-Encoding (chunked only)", 501;
        if (hd.nhost && !httpd_host_allowed(hd.host, h->listen_host, h->listen_any, h->opt.hosts))
                return *msg = "Host is not this server's address or one of its names (http_hosts)", 421;
        if (strcmp(method, "POST") != 0)
                return 0;
        if (!h->opt.token)
                return *msg = "POST endpoints are off (http_reload: false)", 403;
        if (!hd.nhost)
                return *msg = "a POST needs a Host header", 400;
        if (hd.norigin) {
                /* a browser's cross-origin request: only our own origin */
                const char *o = hd.origin;
                const char *rest = strncasecmp(o, "http://", 7) == 0    ? o + 7
                                   : strncasecmp(o, "https://", 8) == 0 ? o + 8
                                                                        : NULL;
                if (hd.norigin > 1 || !rest || strchr(rest, '/') ||
                    !httpd_host_allowed(rest, h->listen_host, h->listen_any, h->opt.hosts))
                        return *msg = "cross-origin request refused", 403;
        }
        const char *auth = hd.authorization;
        if (hd.nauthorization != 1 || strncasecmp(auth, "Bearer ", 7) != 0 || !token_equal(auth + 7, h->opt.token))
                return *msg = "a bearer token is required (Authorization: Bearer ...)", 401;
        return 0;
}

/* MHD_get_connection_values' iterator: a copy of each pair into r->kv. */
static enum MHD_Result kv_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        HttpReq *r = cls;
        (void)kind;
        if (r->nkv % 8 == 0)
                r->kv = xrealloc(r->kv, (r->nkv + 8) * 2 * sizeof(char *));
        r->kv[2 * r->nkv] = xstrdup(key ? key : "");
        r->kv[2 * r->nkv + 1] = xstrdup(value ? value : "");
        r->nkv++;
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
        Httpd *h = cls;
        HttpReq *r = *con_cls;
        if (!r) {
                r = xcalloc(1, sizeof(*r));
                r->h = h;
                r->conn = c;
                snprintf(r->method, sizeof(r->method), "%s", method);
                r->path = xstrndup(url, strnlen(url, h->opt.max_path + 1));
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                r->hc = ci ? ci->socket_context : NULL;
                *con_cls = r;
                /* copied now: the main loop reads them while the
                 * connection is suspended */
                MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, kv_cb, r);
                r->nargs = r->nkv;
                MHD_get_connection_values(c, MHD_HEADER_KIND, kv_cb, r);
                if (r->hc) { /* the head is in */
                        pthread_mutex_lock(&h->lock);
                        r->hc->in_head = false;
                        pthread_mutex_unlock(&h->lock);
                }
                const char *why = NULL;
                unsigned st = head_check(h, r, method, version, &why);
                if (st) {
                        answer_error(r, st, why);
                        return send_answer(c, r);
                }
                /* a declared body over the limit: 413 before reading it
                 * (libmicrohttpd then closes the connection) */
                const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && strtoull(cl, NULL, 10) > h->opt.max_body) {
                        answer_error(r, 413, "request body too large");
                        return send_answer(c, r);
                }
                return MHD_YES;
        }
        if (r->state == REQ_ANSWERED)
                return send_answer(c, r);
        if (*upload_size) { /* a body: kept up to max_body, the rest dropped */
                if (r->too_big || r->body.len + *upload_size > h->opt.max_body) {
                        r->too_big = true;
                        r->dropped += *upload_size;
                        if (r->dropped > DRAIN_MAX)
                                return MHD_NO; /* closes the connection */
                } else
                        buf_put(&r->body, upload, *upload_size);
                *upload_size = 0;
                return MHD_YES;
        }
        /* the whole request is in: check it here, answer on the main loop */
        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "HEAD") != 0)
                answer_error(r, 405, "method not allowed (GET or POST)");
        else if (strlen(url) > h->opt.max_path)
                answer_error(r, 414, "path too long");
        else if (r->too_big)
                answer_error(r, 413, "request body too large");
        if (r->state == REQ_ANSWERED)
                return send_answer(c, r);
        pthread_mutex_lock(&h->lock);
        if (h->stopping || h->nqueued >= h->opt.max_queue) {
                pthread_mutex_unlock(&h->lock);
                answer_error(r, 503, h->stopping ? "shutting down" : "too many requests waiting");
                return send_answer(c, r);
        }
        MHD_suspend_connection(c);
        r->state = REQ_QUEUED;
        r->suspended = true;
        r->queued_at = mono_ms();
        r->seq = ++h->seq;
        h->nsuspended++;
        if (h->tail)
                h->tail->next = r;
        else
                h->head = r;
        h->tail = r;
        h->nqueued++;
        pthread_mutex_unlock(&h->lock);
        if (h->wake)
                h->wake(h->ud);
        return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code)
{
        Httpd *h = cls;
        (void)c;
        (void)code;
        HttpReq *r = *con_cls;
        if (!r)
                return;
        pthread_mutex_lock(&h->lock);
        if (r->suspended) {
                h->nsuspended--;
                pthread_cond_broadcast(&h->cond);
        }
        if (r->hc) { /* kept alive: the next head has its deadline */
                r->hc->in_head = true;
                r->hc->head_t0 = mono_ms();
                r->hc->bad_target = false;
        }
        pthread_mutex_unlock(&h->lock);
        if (r->stream) {
                /* no response was made: the server's reference is ours */
                HttpStream *st = r->stream;
                pthread_mutex_lock(&st->lock);
                bool started = st->started;
                if (!started)
                        st->gone = true;
                pthread_mutex_unlock(&st->lock);
                if (!started)
                        httpd_stream_unref(st);
        }
        for (unsigned i = 0; i < 2 * r->nkv; i++)
                free(r->kv[i]);
        free(r->kv);
        free(r->path);
        buf_free(&r->body);
        free(r->ctype);
        free(r->resp);
        free(r);
        *con_cls = NULL;
}

/* Accept and close: the connection list the head deadline walks.  The
 * list entry goes before libmicrohttpd closes the socket, under the lock
 * the timer thread holds when it shuts one down: it never touches an fd
 * that was closed (and maybe reused). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        Httpd *h = cls;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                HttpConn *hc = xcalloc(1, sizeof(*hc));
                hc->fd = ci ? ci->connect_fd : -1;
                hc->in_head = true;
                hc->head_t0 = mono_ms();
                pthread_mutex_lock(&h->lock);
                DLIST_PUSH(h->conns, hc);
                pthread_cond_broadcast(&h->cond); /* the timer thread: a new deadline */
                pthread_mutex_unlock(&h->lock);
                *socket_context = hc;
                return;
        }
        HttpConn *hc = *socket_context;
        if (!hc)
                return;
        pthread_mutex_lock(&h->lock);
        if (hc->stream)
                hc->stream->hc = NULL;
        DLIST_UNLINK(h->conns, hc);
        pthread_mutex_unlock(&h->lock);
        free(hc);
        *socket_context = NULL;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

size_t httpd_unescape(char *s, bool *nul)
{
        char *w = s;
        for (const char *p = s; *p; p++) {
                int hi, lo;
                if (p[0] == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
                        char ch = (char)(hi * 16 + lo);
                        if (!ch)
                                *nul = true;
                        *w++ = ch;
                        p += 2;
                } else
                        *w++ = *p;
        }
        *w = 0;
        return (size_t)(w - s);
}

/* libmicrohttpd's own decoding (RFC 3986 %XX; anything else as it is),
 * but a %00, which would cut the path (and an id) short, marks the
 * connection's request for a 400. */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
        (void)cls;
        bool nul = false;
        size_t n = httpd_unescape(s, &nul);
        if (nul) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                HttpConn *hc = ci ? ci->socket_context : NULL;
                if (hc)
                        hc->bad_target = true;
        }
        return n;
}

static void *expire(void *arg);

/* "host:port", "[v6]:port", ":port" with a numeric host: the address, or
 * -EINVAL with *ret_msg.  Nothing is resolved (AI_NUMERICHOST): the check
 * is the same with or without a network. */
static int listen_parse(const char *spec, struct addrinfo **ret_ai, char **ret_msg)
{
        char host[256] = "";
        const char *port;
        if (spec[0] == '[') {
                const char *end = strchr(spec, ']');
                if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host))
                        goto bad;
                memcpy(host, spec + 1, (size_t)(end - spec - 1));
                port = end + 2;
        } else {
                const char *colon = strrchr(spec, ':');
                if (!colon || (size_t)(colon - spec) >= sizeof(host) || memchr(spec, ':', (size_t)(colon - spec)))
                        goto bad;
                memcpy(host, spec, (size_t)(colon - spec));
                port = colon + 1;
        }
        char *end;
        long pn = strtol(port, &end, 10);
        if (!*port || *end || pn < 0 || pn > 65535)
                goto bad;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
        int gr = getaddrinfo(host[0] ? host : NULL, port, &hints, ret_ai);
        if (gr) {
                *ret_msg = xasprintf("http_listen '%s': %s (give a numeric address)", spec, gai_strerror(gr));
                return -EINVAL;
        }
        return 0;
bad:
        *ret_msg = xasprintf("http_listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT", spec);
        return -EINVAL;
}

int httpd_listen_check(const char *spec, char **ret_msg)
{
        struct addrinfo *ai = NULL;
        int r = listen_parse(spec, &ai, ret_msg);
        if (r < 0) {
                if (ai)
                        freeaddrinfo(ai);
                return r;
        }
        /* An address this host does not have can never be bound: a
         * configuration problem (exit 2), not one a restart cures.  A port
         * in use or a privileged one is left to the start (exit 1): another
         * riskd may hold it now, the service may have the capability. */
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                int one = 1;
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno == EADDRNOTAVAIL) {
                        *ret_msg = xasprintf("http_listen '%s': not an address of this host", spec);
                        r = -EINVAL;
                }
                close(fd);
        }
        freeaddrinfo(ai);
        return r;
}

static int listen_socket(const char *spec, int *ret_fd, unsigned *ret_port, char **ret_msg)
{
        struct addrinfo *ai = NULL;
        int r = listen_parse(spec, &ai, ret_msg);
        if (r < 0)
                return r;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                *ret_msg = xasprintf("http_listen '%s': socket: %s", spec, strerror(errno));
                freeaddrinfo(ai);
                return -errno;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
                int e = errno;
                *ret_msg = xasprintf("http_listen '%s': %s", spec, strerror(e));
                close(fd);
                freeaddrinfo(ai);
                return -e;
        }
        freeaddrinfo(ai);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
        *ret_fd = fd;
        return 0;
}

/* The host of http_listen, as a Host header would carry it: "127.0.0.1",
 * "::1" (without brackets; httpd_host_allowed strips them), "" for every
 * address. */
static void listen_host(Httpd *h, const char *spec)
{
        const char *s = spec, *e;
        if (s[0] == '[') {
                s++;
                e = strchr(s, ']');
        } else
                e = strrchr(s, ':');
        size_t n = e ? (size_t)(e - s) : 0;
        if (n >= sizeof(h->listen_host))
                n = 0;
        for (size_t i = 0; i < n; i++)
                h->listen_host[i] = (char)tolower((unsigned char)s[i]);
        h->listen_host[n] = 0;
        h->listen_any = !n || strcmp(h->listen_host, "0.0.0.0") == 0 || strcmp(h->listen_host, "::") == 0;
}

int httpd_new(Httpd **ret, const char *listen, const HttpdOptions *opt, HttpdHandler handler, HttpdWake wake,
              void *ud, char **ret_msg)
{
        Httpd *h = xcalloc(1, sizeof(*h));
        h->opt = opt ? *opt : (HttpdOptions){0};
        /* an option left 0 takes its default (httpd.h) */
#define OPT_DEFAULT(f, v) \
        do { \
                if (!h->opt.f) \
                        h->opt.f = (v); \
        } while (0)
        OPT_DEFAULT(max_connections, 1024);
        OPT_DEFAULT(timeout_s, 30);
        OPT_DEFAULT(max_body, 4096);
        OPT_DEFAULT(max_path, 512);
        OPT_DEFAULT(max_queue, 4096);
        OPT_DEFAULT(per_ip, 64);
        OPT_DEFAULT(head_timeout_ms, 10000);
        OPT_DEFAULT(queue_timeout_ms, 10000);
#undef OPT_DEFAULT
        h->handler = handler;
        h->wake = wake;
        h->ud = ud;
        h->fd = -1;
        pthread_mutex_init(&h->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&h->cond, &ca);
        pthread_condattr_destroy(&ca);
        int r = listen_socket(listen, &h->fd, &h->port, ret_msg);
        listen_host(h, listen);
        if (r < 0) {
                httpd_free(h);
                return r;
        }
        h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL,
                                NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
                                h->opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, h->opt.timeout_s,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->opt.per_ip,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_NOTIFY_COMPLETED,
                                on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                                MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, h, MHD_OPTION_END);
        if (!h->d) {
                *ret_msg = xasprintf("http_listen '%s': libmicrohttpd did not start", listen);
                httpd_free(h);
                return -EIO;
        }
        h->fd = -1; /* now owned by libmicrohttpd, which closes it on stop */
        r = -pthread_create(&h->timer, NULL, expire, h);
        if (r < 0) {
                *ret_msg = xasprintf("http_listen '%s': pthread_create: %s", listen, strerror(-r));
                httpd_free(h);
                return r;
        }
        h->timer_started = true;
        *ret = h;
        return 0;
}

/* Under lock: shuts down each connection whose head is late (the server
 * thread then sees the end of its stream and closes it); returns the next
 * head deadline, or INT64_MAX. */
static int64_t cut_slow_heads(Httpd *h, int64_t now)
{
        int64_t next = INT64_MAX;
        for (HttpConn *hc = h->conns; hc; hc = hc->next) {
                if (!hc->in_head || hc->cut || hc->fd < 0)
                        continue;
                int64_t due = hc->head_t0 + h->opt.head_timeout_ms;
                if (now >= due) {
                        shutdown(hc->fd, SHUT_RDWR);
                        hc->cut = true;
                        h->cut_heads++;
                } else if (due < next)
                        next = due;
        }
        return next;
}

/* The timer thread: answers 503 to what waited longer than
 * queue_timeout_ms (the queue is oldest first), and cuts connections whose
 * request head is not in after head_timeout_ms. */
static void *expire(void *arg)
{
        Httpd *h = arg;
        pthread_mutex_lock(&h->lock);
        while (!h->stopping) {
                int64_t now = mono_ms();
                int64_t next_head = cut_slow_heads(h, now);
                HttpReq *late = NULL, **tail = &late;
                while (h->head && now - h->head->queued_at >= h->opt.queue_timeout_ms) {
                        HttpReq *r = h->head;
                        h->head = r->next;
                        if (!h->head)
                                h->tail = NULL;
                        h->nqueued--;
                        r->next = NULL;
                        *tail = r;
                        tail = &r->next;
                }
                if (late) { /* answered and resumed without the lock */
                        pthread_mutex_unlock(&h->lock);
                        for (HttpReq *r = late, *next; r; r = next) {
                                next = r->next;
                                answer_error(r, 503, "the daemon did not answer in time");
                                MHD_resume_connection(r->conn);
                        }
                        pthread_mutex_lock(&h->lock);
                        continue;
                }
                int64_t next = (h->head ? h->head->queued_at : now) + h->opt.queue_timeout_ms;
                struct timespec ts;
                deadline(&ts, next_head < next ? next_head : next);
                pthread_cond_timedwait(&h->cond, &h->lock, &ts);
        }
        pthread_mutex_unlock(&h->lock);
        return NULL;
}

/* Takes the queue; with stop, marks the server stopping first. */
static HttpReq *take(Httpd *h, bool stop)
{
        pthread_mutex_lock(&h->lock);
        if (stop) {
                h->stopping = true;
                pthread_cond_broadcast(&h->cond);
        }
        HttpReq *list = h->head;
        h->head = h->tail = NULL;
        h->nqueued = 0;
        pthread_mutex_unlock(&h->lock);
        return list;
}

unsigned httpd_dispatch(Httpd *h)
{
        unsigned n = 0;
        for (HttpReq *r = take(h, false), *next; r; r = next, n++) {
                next = r->next;
                r->next = NULL;
                h->handler(h->ud, r);
                if (r->held) /* httpd_release resumes it */
                        continue;
                if (r->state != REQ_ANSWERED)
                        answer_error(r, 500, "no answer");
                MHD_resume_connection(r->conn);
        }
        return n;
}

Httpd *httpd_free(Httpd *h)
{
        if (!h)
                return NULL;
        if (h->d) {
                HttpReq *list = take(h, true);
                if (h->timer_started)
                        pthread_join(h->timer, NULL);
                for (HttpReq *r = list, *next; r; r = next) {
                        next = r->next;
                        answer_error(r, 503, "shutting down");
                        MHD_resume_connection(r->conn);
                }
                /* streams the owner left open end now; a suspended
                 * connection must be resumed before MHD_stop_daemon */
                pthread_mutex_lock(&h->lock);
                for (HttpStream *s = h->streams; s; s = s->next) {
                        httpd_stream_cut(s);
                        pthread_mutex_lock(&s->lock);
                        s->closed = s->dropped = true;
                        if (!s->gone)
                                httpd_stream_wake(s);
                        pthread_mutex_unlock(&s->lock);
                }
                pthread_mutex_unlock(&h->lock);
                /* let the server thread send what was resumed (bounded: a
                 * client that does not read is cut off) */
                struct timespec ts;
                deadline(&ts, mono_ms() + 1000);
                pthread_mutex_lock(&h->lock);
                while (h->nsuspended && pthread_cond_timedwait(&h->cond, &h->lock, &ts) == 0)
                        ;
                pthread_mutex_unlock(&h->lock);
                MHD_stop_daemon(h->d);
        }
        if (h->fd >= 0)
                close(h->fd);
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
}

unsigned httpd_port(const Httpd *h)
{
        return h->port;
}

unsigned httpd_connections(const Httpd *h)
{
        const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return i ? i->num_connections : 0;
}

uint64_t httpd_seq(Httpd *h)
{
        pthread_mutex_lock(&h->lock);
        uint64_t s = h->seq;
        pthread_mutex_unlock(&h->lock);
        return s;
}

uint64_t httpd_req_seq(const HttpReq *r)
{
        return r->seq;
}

const char *httpd_method(const HttpReq *r)
{
        return r->method;
}

const char *httpd_path(const HttpReq *r)
{
        return r->path;
}

const char *httpd_body(const HttpReq *r, size_t *len)
{
        *len = r->body.len;
        return r->body.p ? r->body.p : "";
}

void httpd_respond(HttpReq *r, unsigned status, const char *content_type, const char *body, size_t len)
{
        answer(r, status, content_type, body, len);
}

void httpd_hold(HttpReq *r)
{
        r->held = true;
}

void httpd_release(HttpReq *r)
{
        if (r->state != REQ_ANSWERED)
                answer_error(r, 500, "no answer");
        MHD_resume_connection(r->conn);
}

void httpd_error(HttpReq *r, unsigned status, const char *message)
{
        answer_error(r, status, message);
}

int httpd_path_id(const char *path, const char *prefix, char *out, size_t size)
{
        size_t pl = strlen(prefix);
        if (strncmp(path, prefix, pl) != 0 || path[pl] != '/')
                return -1;
        const char *id = path + pl + 1;
        size_t n = strlen(id);
        if (!n || n >= size)
                return -1;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)id[i];
                if (ch < 0x20 || ch == 0x7f || ch == '/')
                        return -1;
        }
        memcpy(out, id, n + 1);
        return 0;
}

bool httpd_arg(const HttpReq *r, unsigned i, const char **key, const char **value)
{
        if (i >= r->nargs)
                return false;
        *key = r->kv[2 * i];
        *value = r->kv[2 * i + 1];
        return true;
}

const char *httpd_header(const HttpReq *r, const char *name)
{
        for (unsigned i = r->nargs; i < r->nkv; i++)
                if (strcasecmp(r->kv[2 * i], name) == 0)
                        return r->kv[2 * i + 1];
        return NULL;
}
