/*
 * The query API's own types (api.c, api_stream.c; loop.c has the map): the
 * view of every enterprise and the event stream's history and clients,
 * which one struct Api holds, and the request helpers both files use.
 */
#ifndef RISKD_DAEMON_API_INT_H
#define RISKD_DAEMON_API_INT_H

#include "src/daemon/loop_int.h"

#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 1000
/* rows a page request looks at, at most (filters that match few rows give
 * short pages, each with a cursor to go on from) */
#define API_SCAN 20000
/* committed documents kept for Last-Event-ID, at most this many and bytes */
#define API_HISTORY 4096
#define API_HISTORY_BYTES (16u << 20)
#define API_REGION_DIGITS_MAX 12
#define API_NAMES 64

typedef struct ApiRow {
        uint32_t id, id_len;      /* bytes in the view's arena */
        uint32_t grade, mode;     /* NUL-terminated in the arena, UINT32_MAX none */
        uint32_t region, region_len; /* region UINT32_MAX: none */
        uint32_t category, category_label; /* NUL-terminated, UINT32_MAX none */
        uint32_t flags;           /* ",name,name," in the arena ("," none) */
        uint32_t open_alerts;     /* open or escalated */
        uint32_t escalated_alerts;
        int32_t part;             /* the partition number */
        double score, per_year;
} ApiRow;

typedef struct ApiEvent {
        uint64_t seq;
        uint32_t kind;
        char *data;               /* the SSE frame, whole */
        size_t len;
} ApiEvent;

typedef struct ApiClient {
        HttpStream *s;
        uint32_t kinds;           /* bit per api_kinds index */
        /* resuming (Last-Event-ID): the next event of the history to send,
         * as the buffer has room (api_pump); 0: caught up, sent live */
        uint64_t next;
} ApiClient;

typedef struct NameCache {
        uint32_t off[API_NAMES];
        uint32_t n;
} NameCache;

struct Api {
        /* the view */
        bool valid;
        uint64_t key[6];
        ApiRow *rows;
        uint32_t n, cap;
        uint32_t *by_score;       /* row indexes by score, then id */
        Buf arena;
        int64_t built_at, build_ms; /* when the view was built, and in how long */
        /* arena_name's strings: grades, modes and sets of flags; food
         * categories and their labels (so many they have their own) */
        NameCache names, categories, labels;
        Buf summary[API_REGION_DIGITS_MAX + 1]; /* by region digits, built on demand */
        /* the stream */
        ApiClient *clients;
        uint32_t nclients, cclients;
        uint64_t boot;            /* this process's stream: ids are BOOT-SEQ */
        uint64_t seq;             /* of the last event */
        ApiEvent *hist;           /* ring of API_HISTORY */
        uint32_t hhead, hn;
        size_t hbytes;
        /* metrics */
        PromFamily *requests;
        PromSeries *view_builds, *clients_g, *sent, *dropped, *reset;
        LogLimit ll_drop;
};

/* v is one of known (NULL-terminated); else 400 answered: "WHAT 'v' is
 * not known (known: ...)". */
int api_known_or_400(HttpReq *req, const char *what, const char *v, const char *const *known);
/* A query's arguments are all known: 0, or 400 answered naming them. */
int api_args_check(HttpReq *req, const char *const *known, const char *route);
/* The value of the query's argument name, NULL none. */
const char *api_arg(HttpReq *req, const char *name);
/* v is one of the comma-separated names of list. */
bool api_in_list(const char *list, const char *v);
/* GET /v1/events (api_stream.c): the stream opened, or 400. */
unsigned api_events_get(Loop *l, HttpReq *req);

#endif
