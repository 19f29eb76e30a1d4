/*
 * The HTTP server's streams (httpd.h: httpd_stream and the rest), the
 * responses of Server-Sent Events: a bounded buffer the owner fills on the
 * main loop and libmicrohttpd's thread drains through a content reader,
 * which suspends the connection while there is nothing to send.  Apart
 * from httpd.c because a stream outlives its request: two references (the
 * owner's, the server's), its own lock (s->lock, taken after h->lock,
 * never before), the owner's wake once a full buffer is sent.  httpd.c
 * only hands a request's answer to it (send_answer), drops the reference
 * of a request that made no response (on_completed) and ends what the
 * owner left open (httpd_free).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "include/riskd/util.h"
#include "src/daemon/httpd_int.h"

void httpd_stream_unref(HttpStream *s)
{
        pthread_mutex_lock(&s->lock);
        bool last = --s->refs == 0;
        pthread_mutex_unlock(&s->lock);
        if (!last)
                return;
        Httpd *h = s->h;
        pthread_mutex_lock(&h->lock);
        DLIST_UNLINK(h->streams, s);
        if (s->hc)
                s->hc->stream = NULL;
        pthread_mutex_unlock(&h->lock);
        pthread_mutex_destroy(&s->lock);
        buf_free(&s->buf);
        free(s);
}

/* Under s->lock: the reader suspended the connection for want of data;
 * it runs again. */
void httpd_stream_wake(HttpStream *s)
{
        if (s->suspended) {
                s->suspended = false;
                MHD_resume_connection(s->conn);
        }
}

/* The server thread: what is queued, or a suspension until more comes. */
ssize_t httpd_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
        HttpStream *s = cls;
        (void)pos;
        bool wake = false;
        pthread_mutex_lock(&s->lock);
        ssize_t n;
        if (s->dropped)
                n = MHD_CONTENT_READER_END_WITH_ERROR;
        else if (s->off < s->buf.len) {
                size_t k = s->buf.len - s->off < max ? s->buf.len - s->off : max;
                memcpy(out, s->buf.p + s->off, k);
                s->off += k;
                if (s->off == s->buf.len) {
                        s->off = s->buf.len = 0;
                        wake = s->want_room;
                        s->want_room = false;
                }
                n = (ssize_t)k;
        } else if (s->closed)
                n = MHD_CONTENT_READER_END_OF_STREAM;
        else {
                /* nothing to send: no busy loop, resumed by the next send */
                s->suspended = true;
                MHD_suspend_connection(s->conn);
                n = 0;
        }
        pthread_mutex_unlock(&s->lock);
        if (wake && s->h->wake)
                s->h->wake(s->h->ud);
        return n;
}

void httpd_stream_free_cb(void *cls)
{
        HttpStream *s = cls;
        pthread_mutex_lock(&s->lock);
        s->gone = true;
        s->suspended = false;
        pthread_mutex_unlock(&s->lock);
        httpd_stream_unref(s);
}

HttpStream *httpd_stream(HttpReq *r, const char *content_type, size_t max)
{
        Httpd *h = r->h;
        HttpStream *s = xcalloc(1, sizeof(*s));
        pthread_mutex_init(&s->lock, NULL);
        s->h = h;
        s->conn = r->conn;
        s->max = max;
        s->refs = 2;
        httpd_respond(r, 200, content_type, "", 0);
        r->stream = s;
        pthread_mutex_lock(&h->lock);
        DLIST_PUSH(h->streams, s);
        s->hc = r->hc;
        if (s->hc) {
                s->hc->stream = s;
                /* a client that reads nothing fills this and then the
                 * stream's buffer: its memory is bounded */
                int sb = 65536;
                if (s->hc->fd >= 0)
                        setsockopt(s->hc->fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
        }
        pthread_mutex_unlock(&h->lock);
        return s;
}

int httpd_stream_send(HttpStream *s, const char *data, size_t len)
{
        int ret = 0;
        pthread_mutex_lock(&s->lock);
        if (s->gone || s->closed)
                ret = -EPIPE;
        else if (s->buf.len - s->off + len > s->max) {
                ret = -ENOBUFS;
                s->want_room = true;
        }
        else {
                if (s->off && s->off >= s->buf.len / 2) { /* what was sent goes */
                        memmove(s->buf.p, s->buf.p + s->off, s->buf.len - s->off);
                        s->buf.len -= s->off;
                        s->off = 0;
                }
                buf_put(&s->buf, data, len);
                httpd_stream_wake(s);
        }
        pthread_mutex_unlock(&s->lock);
        return ret;
}

bool httpd_stream_gone(HttpStream *s)
{
        pthread_mutex_lock(&s->lock);
        bool gone = s->gone;
        pthread_mutex_unlock(&s->lock);
        return gone;
}

/* Under h->lock: a dropped stream's connection is shut down, so that a
 * client that reads nothing does not hold it until the idle timeout. */
void httpd_stream_cut(HttpStream *s)
{
        if (s->hc && s->hc->fd >= 0 && !s->hc->cut) {
                shutdown(s->hc->fd, SHUT_RDWR);
                s->hc->cut = true;
        }
}

void httpd_stream_close(HttpStream *s, bool dropped)
{
        Httpd *h = s->h;
        if (dropped) {
                pthread_mutex_lock(&h->lock);
                httpd_stream_cut(s);
                pthread_mutex_unlock(&h->lock);
        }
        pthread_mutex_lock(&s->lock);
        s->closed = true;
        s->dropped |= dropped;
        if (!s->gone)
                httpd_stream_wake(s);
        pthread_mutex_unlock(&s->lock);
        httpd_stream_unref(s);
}
