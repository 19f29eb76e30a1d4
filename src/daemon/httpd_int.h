/*
 * The HTTP server's parts (httpd.c has the threads and the locks): the
 * server, its connections, requests and streams, and what httpd.c and
 * httpd_stream.c call of each other.  Internal to src/daemon/ httpd.c and
 * httpd_stream.c.
 */
#ifndef RISKD_DAEMON_HTTPD_INT_H
#define RISKD_DAEMON_HTTPD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "include/riskd/util.h"
#include "src/daemon/httpd.h"

typedef enum ReqState { REQ_NEW, REQ_QUEUED, REQ_ANSWERED } ReqState;

/* A connection, from accept to close (MHD_OPTION_NOTIFY_CONNECTION): the
 * timer thread closes one whose request head took longer than
 * head_timeout_ms (libmicrohttpd's own timeout is reset by every byte). */
typedef struct HttpConn {
        int fd;
        bool in_head;            /* waiting for (the rest of) a request head */
        bool bad_target;         /* the target had a %00 (unescape) */
        bool cut;                /* shut down by the timer thread */
        struct HttpStream *stream; /* its response is this stream (under lock) */
        int64_t head_t0;         /* monotonic ms: accepted, or the last request done */
        struct HttpConn *prev, *next;
} HttpConn;

struct HttpReq {
        struct Httpd *h;
        struct MHD_Connection *conn;
        HttpConn *hc;
        char method[8];
        char *path;
        Buf body;
        bool too_big;
        size_t dropped;          /* body bytes past max_body, read and dropped */
        bool suspended;          /* was queued: counted in nsuspended until completed */
        uint64_t seq;            /* the order it was queued in, from 1 */
        int64_t queued_at;       /* monotonic ms */
        ReqState state;
        bool held;               /* the handler answers it later (httpd_hold) */
        unsigned status;
        char *ctype;
        char *resp;
        size_t resp_len;
        char **kv;               /* the query's arguments then the headers, key and value each */
        unsigned nargs, nkv;     /* pairs: arguments, all */
        struct HttpStream *stream; /* answered with a stream (httpd_stream) */
        HttpReq *next;
};

/* A stream (httpd.h).  Two references: the owner's (httpd_stream_close)
 * and the server's (the response's free callback, or on_completed when no
 * response was made).  s->lock guards the buffer and the flags; the
 * connection is suspended by the content reader when the buffer is empty
 * and resumed by a send or the close. */
struct HttpStream {
        Httpd *h;
        struct MHD_Connection *conn;
        pthread_mutex_t lock;
        Buf buf;
        size_t off;              /* sent up to here */
        size_t max;
        unsigned refs;
        bool started;            /* its response was made (the server's reference is its) */
        bool suspended;          /* by the reader, waiting for data */
        bool closed, dropped, gone;
        bool want_room;          /* a send did not fit: wake the owner once it is empty */
        HttpConn *hc;            /* under h->lock: NULL once the connection closed */
        struct HttpStream *prev, *next; /* h->streams, under h->lock */
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
        uint64_t seq;            /* of the last request queued */
        bool stopping;
        bool timer_started;
        pthread_t timer;
        HttpConn *conns;         /* under lock: every open connection */
        char listen_host[256];   /* of http_listen, lower case; "" for every address */
        bool listen_any;         /* 0.0.0.0, ::, or no host: any address literal is ours */
        uint64_t cut_heads;      /* connections closed for a slow head */
        HttpStream *streams;     /* under lock: every stream not yet freed */
};

/* The server's lists (connections, streams), doubly linked through prev
 * and next, newest first; under h->lock. */
#define DLIST_PUSH(head, x) \
        do { \
                (x)->next = (head); \
                if (head) \
                        (head)->prev = (x); \
                (head) = (x); \
        } while (0)
#define DLIST_UNLINK(head, x) \
        do { \
                if ((x)->prev) \
                        (x)->prev->next = (x)->next; \
                else \
                        (head) = (x)->next; \
                if ((x)->next) \
                        (x)->next->prev = (x)->prev; \
        } while (0)

/* httpd_stream.c, for httpd.c: a response's content reader and its free
 * callback (send_answer), the reference a request that made no response
 * drops (on_completed), and at the stop the connection cut and the resume
 * (httpd_free). */
ssize_t httpd_stream_read(void *cls, uint64_t pos, char *out, size_t max);
void httpd_stream_free_cb(void *cls);
void httpd_stream_unref(HttpStream *s);
void httpd_stream_wake(HttpStream *s);
void httpd_stream_cut(HttpStream *s);

#endif
