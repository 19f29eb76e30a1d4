/*
 * riskd's HTTP endpoint on libmicrohttpd (httpd.h).
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
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "include/riskd/util.h"
#include "src/daemon/httpd.h"

typedef enum ReqState { REQ_NEW, REQ_QUEUED, REQ_ANSWERED } ReqState;

struct HttpReq {
        struct MHD_Connection *conn;
        char method[8];
        char *path;
        Buf body;
        bool too_big;
        size_t dropped;          /* body bytes past max_body, read and dropped */
        bool suspended;          /* was queued: counted in nsuspended until completed */
        int64_t queued_at;       /* monotonic ms */
        ReqState state;
        unsigned status;
        char *ctype;
        char *resp;
        size_t resp_len;
        HttpReq *next;
};

struct Httpd {
        struct MHD_Daemon *d;
        int fd;
        unsigned port;
        HttpdOptions opt;
        HttpdHandler handler;
        HttpdWake wake;
        void *ud;
        pthread_mutex_t lock;
        pthread_cond_t cond;     /* monotonic; stopping, nsuspended */
        HttpReq *head, *tail;    /* queued for the main loop, oldest first */
        unsigned nqueued;
        unsigned nsuspended;     /* queued, or resumed but not yet completed */
        bool stopping;
        bool timer_started;
        pthread_t timer;
};

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
        struct MHD_Response *resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", r->ctype);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (r->status == 405)
                MHD_add_response_header(resp, "Allow", "GET, POST");
        enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
        Httpd *h = cls;
        (void)version;
        HttpReq *r = *con_cls;
        if (!r) {
                r = xcalloc(1, sizeof(*r));
                r->conn = c;
                snprintf(r->method, sizeof(r->method), "%s", method);
                r->path = xstrndup(url, strnlen(url, h->opt.max_path + 1));
                *con_cls = r;
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
        if (r->suspended) {
                pthread_mutex_lock(&h->lock);
                h->nsuspended--;
                pthread_cond_broadcast(&h->cond);
                pthread_mutex_unlock(&h->lock);
        }
        free(r->path);
        buf_free(&r->body);
        free(r->ctype);
        free(r->resp);
        free(r);
        *con_cls = NULL;
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
        if (ai)
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

int httpd_new(Httpd **ret, const char *listen, const HttpdOptions *opt, HttpdHandler handler, HttpdWake wake,
              void *ud, char **ret_msg)
{
        Httpd *h = xcalloc(1, sizeof(*h));
        h->opt = opt ? *opt : (HttpdOptions){0};
        if (!h->opt.max_connections)
                h->opt.max_connections = 1024;
        if (!h->opt.timeout_s)
                h->opt.timeout_s = 30;
        if (!h->opt.max_body)
                h->opt.max_body = 4096;
        if (!h->opt.max_path)
                h->opt.max_path = 512;
        if (!h->opt.max_queue)
                h->opt.max_queue = 4096;
        h->handler = handler;
        h->wake = wake;
        h->ud = ud;
        if (!h->opt.queue_timeout_ms)
                h->opt.queue_timeout_ms = 10000;
        h->fd = -1;
        pthread_mutex_init(&h->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&h->cond, &ca);
        pthread_condattr_destroy(&ca);
        int r = listen_socket(listen, &h->fd, &h->port, ret_msg);
        if (r < 0) {
                httpd_free(h);
                return r;
        }
        h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL,
                                NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
                                h->opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, h->opt.timeout_s,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_NOTIFY_COMPLETED,
                                on_completed, h, MHD_OPTION_END);
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

/* The timer thread: answers 503 to what waited longer than
 * queue_timeout_ms (the queue is oldest first). */
static void *expire(void *arg)
{
        Httpd *h = arg;
        pthread_mutex_lock(&h->lock);
        while (!h->stopping) {
                int64_t now = mono_ms();
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
                struct timespec ts;
                deadline(&ts, (h->head ? h->head->queued_at : now) + h->opt.queue_timeout_ms);
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
