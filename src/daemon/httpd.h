/*
 * riskd's HTTP endpoint (libmicrohttpd): requests are accepted, parsed and
 * checked on the server's own thread, then answered on the daemon's main
 * loop, between batches, so that handlers read engine state without locks:
 *
 *   server thread     checks the head (below), method, path length and
 *                     body size (4xx at once, JSON errors), suspends the
 *                     connection, queues
 *                     the request and calls the owner's wake-up function;
 *   main loop         httpd_dispatch() hands each queued request to the
 *                     owner's handler, which answers with httpd_respond();
 *                     the connection is resumed and the answer sent by the
 *                     server thread.
 *
 * The head, before anything else, as nginx refuses it: 400 for HTTP/1.1
 * without Host, two Host or Content-Length headers, a Content-Length that
 * is not digits, Transfer-Encoding with Content-Length, a %00 in the
 * target (it would cut the path short); 501 for a coding other than
 * chunked.  Then the Host: the listen address, any address literal when
 * it listens on every address, or one of opt.hosts (421 otherwise: DNS
 * rebinding).  POST changes state: 403 without opt.token, else 403 for an
 * Origin that is not ours and 401 without "Authorization: Bearer TOKEN".
 *
 * Limits: connections (MHD_OPTION_CONNECTION_LIMIT) and connections per
 * client address (MHD_OPTION_PER_IP_CONNECTION_LIMIT: more are closed at
 * once), an idle timeout, a deadline for the whole request head (the idle
 * timeout is reset by every byte: the timer thread shuts down a
 * connection whose head is not in after head_timeout_ms), memory per
 * connection (headers beyond it: 431/413 by libmicrohttpd), the
 * path length (414), the body (413: at once from Content-Length; a chunked
 * body is read and dropped up to 1 MiB past the limit, then the connection
 * is closed), the queue (503 when full), the wait for the main loop (503
 * from a timer thread when the loop has not taken the request in time: a
 * stuck loop does not hold connections forever).
 */
#ifndef RISKD_DAEMON_HTTPD_H
#define RISKD_DAEMON_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Httpd Httpd;
typedef struct HttpReq HttpReq;

typedef struct HttpdOptions {
        unsigned max_connections;  /* default 1024 */
        unsigned timeout_s;        /* idle connection timeout, default 30 */
        size_t max_body;           /* default 4096 */
        size_t max_path;           /* default 512 */
        unsigned max_queue;        /* requests waiting for the main loop, default 4096 */
        unsigned queue_timeout_ms; /* longest wait for the main loop (then 503), default 10000 */
        unsigned per_ip;           /* connections from one address, default 64 */
        unsigned head_timeout_ms;  /* a request head (or the next one on a kept-alive
                                    * connection) must be in within this, default 10000 */
        /* names a Host (and a POST's Origin) may carry besides the listen
         * address, NULL-terminated; NULL: none */
        const char *const *hosts;
        /* the bearer token of POST requests; NULL: POST is off (403) */
        const char *token;
} HttpdOptions;

typedef void (*HttpdHandler)(void *ud, HttpReq *req);
typedef void (*HttpdWake)(void *ud);

/* listen: "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", ":9464" = every
 * address); port 0 picks a free one (httpd_port).  Returns 0, or < 0 with
 * *ret_msg (malloc'd). */
int httpd_new(Httpd **ret, const char *listen, const HttpdOptions *opt, HttpdHandler handler, HttpdWake wake,
              void *ud, char **ret_msg);
/* Whether httpd_new can use listen as an address (the form, a numeric
 * host, an address of this host; not whether the port is free): 0, or
 * -EINVAL with *ret_msg. */
int httpd_listen_check(const char *listen, char **ret_msg);
/* Answers what is still queued with 503 (waiting up to a second for those
 * answers to be sent), then stops. */
Httpd *httpd_free(Httpd *h);
unsigned httpd_port(const Httpd *h);
/* The connections the server holds now (accepted, not yet closed). */
unsigned httpd_connections(const Httpd *h);

/* Main loop: answers every queued request; returns how many. */
unsigned httpd_dispatch(Httpd *h);
/* Requests are numbered from 1 as they are queued: the number of the
 * last one queued so far (any thread), and a request's own.  A request
 * whose number is at most httpd_seq() read at some moment was made before
 * that moment (what the daemon uses to answer the reloads that waited
 * while one ran with that one's result). */
uint64_t httpd_seq(Httpd *h);
uint64_t httpd_req_seq(const HttpReq *r);

const char *httpd_method(const HttpReq *r);  /* "GET", "POST" */
const char *httpd_path(const HttpReq *r);    /* as sent, without the query */
const char *httpd_body(const HttpReq *r, size_t *len);
/* Answers (once); body is copied. */
void httpd_respond(HttpReq *r, unsigned status, const char *content_type, const char *body, size_t len);
/* Main loop, in the handler: the handler keeps r and answers it later
 * (httpd_respond), then hands it back with httpd_release, on the main loop,
 * before httpd_free; meanwhile the connection stays suspended (neither the
 * queue's wait limit nor the idle timeout applies). */
void httpd_hold(HttpReq *r);
void httpd_release(HttpReq *r);
/* {"error": message, "status": status} */
void httpd_error(HttpReq *r, unsigned status, const char *message);

/* The query's arguments (?k=v&...), percent-decoded, in the order sent:
 * argument i's key and value (a key without '=' has value ""); false past
 * the last one. */
bool httpd_arg(const HttpReq *r, unsigned i, const char **key, const char **value);
/* The value of header name (the first one), NULL none. */
const char *httpd_header(const HttpReq *r, const char *name);

/*
 * Streams (text/event-stream and the like): the handler answers r with
 * httpd_stream instead of httpd_respond; the server sends the status and
 * headers, then whatever the owner queues with httpd_stream_send, as it
 * comes, until either side ends it.  Each stream has a bounded buffer
 * (max bytes): httpd_stream_send never blocks and never waits for the
 * client; a send that does not fit returns -ENOBUFS, and the owner then
 * ends the stream (a client that does not read is dropped, the daemon
 * never slowed).  The socket's send buffer is set to 64 KiB, so a client
 * that reads nothing holds at most max + 64 KiB (and the kernel's share on
 * its side) before its stream is full.
 *
 * Owner's side, on the main loop: httpd_stream returns the handle (the
 * owner's reference); httpd_stream_send queues (after an -ENOBUFS the
 * server calls the wake-up function once the buffer has emptied, for an
 * owner that rather waits for room than drops the client); httpd_stream_gone says the
 * client went away (the server's side is over: only httpd_stream_close is
 * left to do); httpd_stream_close ends the stream (what was queued is
 * still sent when dropped is false; dropped: the connection is closed at
 * once) and drops the owner's reference.  The owner closes every stream
 * before httpd_free (which cuts the connections of any left so that
 * libmicrohttpd can stop; their handles must not be used after it).
 */
typedef struct HttpStream HttpStream;
HttpStream *httpd_stream(HttpReq *r, const char *content_type, size_t max);
int httpd_stream_send(HttpStream *s, const char *data, size_t len);
bool httpd_stream_gone(HttpStream *s);
void httpd_stream_close(HttpStream *s, bool dropped);

/* The id of "/PREFIX/ID" percent-decoded into out (NUL-terminated): 0, or
 * -1 when the path is not PREFIX/something, the id is empty, too long,
 * badly encoded, or has '/' or control characters. */
int httpd_path_id(const char *path, const char *prefix, char *out, size_t size);

/* Whether a Host header value (host[:port], [v6][:port]) names this server:
 * its listen host, any address literal when it listens on every address
 * (listen_any), or one of names (NULL-terminated, may be NULL); the port is
 * not compared.  1 or 0. */
int httpd_host_allowed(const char *host, const char *listen_host, bool listen_any, const char *const *names);
/* Percent-decodes s in place as libmicrohttpd does (%XX; anything else
 * kept); sets *nul when a %00 was decoded.  Returns the new length. */
size_t httpd_unescape(char *s, bool *nul);

#endif
