/*
 * The event decoder (include/riskd/decode.h): a validating, single-pass
 * JSON reader that stores only what the Schema asks for.
 *
 * Compiled once per Schema (decoder_new):
 *  - a trie of path segments.  Node 0 is the top-level object; a node
 *    lists the slots whose path ends there (several event types may read
 *    the same path with different FieldTypes, hence several slots) and the
 *    envelope roles whose path ends there, and says whether longer paths
 *    go through it;
 *  - one open-addressing hash table, keyed by (parent, bytes), for the trie
 *    edges, the event type names and every enum's values.  It is built from
 *    the schema only, so input cannot lengthen its probe chains; a lookup
 *    costs one multiplication and, per probe, two word comparisons (a
 *    memcmp only for keys longer than 16 bytes);
 *  - per slot, the bitset of event types that read it.
 *
 * Per event (decoder_decode):
 *  - every value whose key path reaches a node with slots is converted for
 *    each slot whose types include the event's type; while the type is not
 *    known yet (the envelope may come last) that is every type declaring
 *    the path.  Slots written are listed (d->written) so that the ones of
 *    other types are nulled when the type is known;
 *  - conversion failures are recorded per slot (SlotState), not raised: a
 *    failure in a slot of another type is no error, and the reason must
 *    not depend on key order.  They are raised after the whole document
 *    has been validated, in field declaration order;
 *  - epochs (one per event) mark which nodes and slots were seen, so
 *    nothing is cleared per event beyond the slots actually filled.
 *
 * Invariant between calls: every slot of d->last_slots is VT_NULL except
 * d->written[0 .. d->nkept), the slots the last call filled when it
 * succeeded.
 *
 * One file, past the ~900 lines of the others, on purpose (issue 15): the
 * per-event path (parse_value, parse_object, parse_array, the string and
 * number scanners, the slot conversions) is one hot loop that the compiler
 * inlines into itself, static and always_inline, which it can do only
 * within one translation unit; decoder_new builds, in the same file, the
 * trie and key table laid out as that loop reads them.
 */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "include/riskd/decode.h"
#include "include/riskd/util.h"

#define NONE UINT32_MAX
#define MS_PER_S 1000LL /* as in value.c */
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)
#define PARENT_TYPES 0x7fffffffu     /* hash parent of event type names */
#define PARENT_ENUM 0x80000000u      /* | enum id: parent of its values */

enum { ENV_ID, ENV_TYPE, ENV_ENTERPRISE, ENV_TIME, ENV_N };
static const char *const env_names[ENV_N] = {"event id", "event type", "enterprise", "event time"};

/* The JSON kind of a value, for messages. */
enum { JK_OBJECT, JK_ARRAY, JK_STRING, JK_NUMBER, JK_BOOL, JK_NULL };
static const char *const kind_names[] = {"an object", "an array", "a string", "a number", "a bool", "null"};

/* Per-slot and per-envelope-role outcome of the current event. */
enum { SS_OK, SS_NULL, SS_ERR };

typedef struct SlotState {
        uint32_t epoch;         /* == d->epoch: seen in this event */
        uint8_t st;             /* SS_* */
        uint8_t reason;         /* DecodeReason when SS_ERR */
        uint8_t got;            /* JK_* of the value */
        uint8_t range;          /* a number beyond the double range */
        uint8_t cat, catn;      /* a category that is not one: CAT_*, and the level (or count) */
        Str val;                /* the offending string, for the message */
} SlotState;

/* What is wrong with a category (FF_CATEGORY): SlotState.cat. */
enum { CAT_OK, CAT_EMPTY_LIST, CAT_KIND, CAT_EMPTY_LEVEL, CAT_SLASH, CAT_TOO_MANY };
/* The conversion of a slot (Decoder.slot_conv): its FieldType, or this for
 * a category, a string read from a list as well. */
#define CONV_CATEGORY (FT_DUR + 1)

typedef struct DecNode {
        uint32_t slot0, nslot;  /* d->node_slots[slot0 .. slot0+nslot) */
        uint8_t env;            /* bit per ENV_* role ending here */
        bool children;
        bool cat;               /* a category slot ends here: a list is read (parse_category) */
        uint8_t klen;           /* length of the key leading here, when predictable */
        uint32_t epoch;         /* == d->epoch: a value was delivered here */
        /* key prediction (parse_object): the child of this node matched
         * first, and the sibling matched after this node, in the last
         * object that had them */
        uint32_t first, next;
} DecNode;

/* A key that can be matched by comparing raw bytes: printable ASCII
 * without '"' and '\\' (so its JSON form has no escapes), and short. */
#define KEY_PRED_MAX 31
/* Keys outside the schema a decoder learns (a node without slots each, so
 * key prediction covers the envelope's other keys too); bounded, so keys
 * made up by a sender only use up the budget. */
#define UNKNOWN_KEYS_MAX 64

typedef struct DecKey {
        uint64_t a, b;          /* KeyWords of the key */
        const char *s;          /* NULL: empty bucket */
        uint32_t len, parent, val;
} DecKey;

struct Decoder {
        const Schema *s;
        uint32_t max_bytes, max_depth;

        DecNode *nodes;
        uint32_t nnodes, cap_nodes;
        uint32_t nunknown;      /* nodes learnt for keys outside the schema */
        uint8_t (*kpat)[KEY_PRED_MAX + 1]; /* [nnodes] the key of the node, '"', zeros */
        uint32_t *node_slots;
        DecKey *keys;
        uint32_t key_mask;
        uint32_t max_key;       /* longest path segment */
        char *keybuf;           /* [max_key]: unescaped keys */

        uint64_t *slot_types;   /* [nslots] bitset of type ids */
        uint64_t *slot_req;     /* [nslots] bitset of the types requiring it */
        uint32_t *type_nreq;    /* [ntypes] slots the type requires */
        uint32_t *type_nfmt;    /* [ntypes] its code fields (format_is_code) */
        uint32_t *slot_node;    /* [nslots] */
        uint32_t *slot_enum;    /* [nslots] enum id, NONE */
        uint8_t *slot_conv;     /* [nslots] FieldType, or CONV_CATEGORY */
        const EnumDef **enums;
        uint32_t nenums;
        uint64_t all_types;

        /* the date of the last time parsed by time_fast() and its day number */
        char tdate[10];
        int64_t tdays;

        /* numbers too long for the stack buffer (strtod_l needs a NUL) */
        char *numbuf;
        uint32_t numbuf_cap;

        /* per event */
        uint32_t epoch;
        SlotState *ss;          /* [nslots] */
        SlotState env[ENV_N];
        uint32_t *written;      /* [nslots] */
        uint32_t nwritten;
        uint32_t nkept;         /* see the invariant */
        uint32_t nerr;          /* slots with SS_ERR in this event */
        uint64_t mask;          /* types whose slots are still converted */
        int32_t type;           /* type index, -1 unknown yet */
        const uint8_t *start, *end;
        DecodedEvent *ev;
        uint32_t scratch_used;

        Value *last_slots;
};

const char *decode_reason_str(DecodeReason r)
{
        static const char *const names[] = {
#define X(e, name) [e] = name,
                DECODE_REASON_LIST(X)
#undef X
        };
        if ((unsigned)r >= ARRAY_SIZE(names))
                return "unknown";
        return names[r];
}

/* ---- codes (ident_check) ---- */

/* The formats ident_check checks, refused as bad_identifier. */
static inline bool format_is_code(FieldFormat f)
{
        return f >= FF_USCC && f <= FF_SAMPLE_CODE;
}

/* GB 32100-2015 character values plus one: 0-9 → 1-10, A-H J-N P-R T-U W-Y
 * → 11-31; 0 (the zero fill) for every other byte: I O S V Z, lower case,
 * anything else. */
static const int8_t uscc_val[256] = {
        ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
        ['8'] = 9,  ['9'] = 10, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
        ['G'] = 17, ['H'] = 18, ['J'] = 19, ['K'] = 20, ['L'] = 21, ['M'] = 22, ['N'] = 23, ['P'] = 24,
        ['Q'] = 25, ['R'] = 26, ['T'] = 27, ['U'] = 28, ['W'] = 29, ['X'] = 30, ['Y'] = 31,
};
static const char uscc_chars[32] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/* 3^(i-1) mod 31, i = 1..17 */
static const uint8_t uscc_w[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};

static bool all_digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if ((uint8_t)(s[i] - '0') > 9)
                        return false;
        return true;
}

/* The 1-based position of the first non-digit of s[0..n), 0 if none. */
static size_t first_non_digit(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if ((uint8_t)(s[i] - '0') > 9)
                        return i + 1;
        return 0;
}

static void char_name(char c, char *out, size_t size)
{
        if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
                snprintf(out, size, "'%c'", c);
        else
                snprintf(out, size, "byte 0x%02x", (unsigned)(uint8_t)c);
}

static int ident_uscc(const char *s, size_t n, char *why, size_t size)
{
        if (n != 18) {
                /* characters, not bytes: "18 characters, not 19" of an
                 * 18-character code with one CJK character would mislead */
                size_t chars = 0, first = n, at = 0;
                for (size_t i = 0; i < n; i++) {
                        if (first == n && (uint8_t)s[i] >= 0x80) {
                                first = i;
                                at = chars + 1;
                        }
                        chars += ((uint8_t)s[i] & 0xc0) != 0x80;
                }
                if (chars == 18) { /* the value is valid UTF-8 (decoded): name the character */
                        size_t k = first + 1;
                        while (k < n && ((uint8_t)s[k] & 0xc0) == 0x80)
                                k++;
                        snprintf(why, size, "character %zu, '%.*s', is not in the USCC alphabet (0-9, A-Z without "
                                 "I O S V Z)", at, (int)(k - first), s + first);
                } else {
                        snprintf(why, size, "a USCC has 18 characters, not %zu", chars);
                }
                return -EINVAL;
        }
        unsigned sum = 0;
        for (size_t i = 0; i < 18; i++) {
                int v = uscc_val[(uint8_t)s[i]] - 1;
                char cn[16];
                if (v < 0) {
                        char_name(s[i], cn, sizeof(cn));
                        snprintf(why, size, "character %zu, %s, is not in the USCC alphabet%s", i + 1, cn,
                                 s[i] >= 'a' && s[i] <= 'z' ? " (letters are upper case)"
                                                            : " (0-9, A-Z without I O S V Z)");
                        return -EINVAL;
                }
                if (i >= 2 && i < 8 && v > 9) {
                        char_name(s[i], cn, sizeof(cn));
                        snprintf(why, size, "character %zu, %s, is in the area code (characters 3-8): digits only",
                                 i + 1, cn);
                        return -EINVAL;
                }
                if (i < 17)
                        sum += (unsigned)v * uscc_w[i];
        }
        unsigned c = (31 - sum % 31) % 31;
        if (s[17] != uscc_chars[c]) {
                snprintf(why, size, "check character should be %c", uscc_chars[c]);
                return -EINVAL;
        }
        return 0;
}

int ident_check(FieldFormat f, const char *s, size_t n, char *why, size_t size)
{
        switch (f) {
        case FF_NONE:
        case FF_CATEGORY:
                return 0;
        case FF_USCC:
                return ident_uscc(s, n, why, size);
        case FF_LICENSE:
                if (n < 2 || !((s[0] == 'S' && s[1] == 'C') || (s[0] == 'J' && s[1] == 'Y'))) {
                        snprintf(why, size, "a licence number starts with SC (production) or JY (operation)");
                        return -EINVAL;
                }
                if (n != 16 || !all_digits(s + 2, 14)) {
                        snprintf(why, size, "%c%c is followed by 14 digits", s[0], s[1]);
                        return -EINVAL;
                }
                return 0;
        case FF_SAMPLE_CODE: {
                size_t p = n >= 3 && memcmp(s, "NCP", 3) == 0 ? 3 : n >= 2 && memcmp(s, "DC", 2) == 0 ? 2 : 0;
                if (!p) {
                        snprintf(why, size, "a sample code starts with DC (food) or NCP (edible agricultural products)");
                        return -EINVAL;
                }
                if (n != p + 17 || !all_digits(s + p, 17)) {
                        size_t bad = first_non_digit(s + p, n - p);
                        if (bad && bad <= 17)
                                snprintf(why, size, "%.*s is followed by 17 digits (year 2, area code 6, serial 9); character %zu is not a digit",
                                         (int)p, s, p + bad);
                        else
                                snprintf(why, size, "%.*s is followed by 17 digits (year 2, area code 6, serial 9), not %zu",
                                         (int)p, s, n - p);
                        return -EINVAL;
                }
                return 0;
        }
        }
        snprintf(why, size, "unknown format");
        return -EINVAL;
}

/* ---- hashing of short keys ---- */

/*
 * A key is summarised by two words: its first and last 8 bytes (4 for keys
 * of 4..7 bytes, 3 sampled bytes below that).  Up to 16 bytes the words hold
 * every byte, so equal length and words is equality and no memcmp is
 * needed; longer keys compare the rest.
 */
typedef struct KeyWords {
        uint64_t a, b;
} KeyWords;

static inline KeyWords key_words(const uint8_t *s, uint32_t n)
{
        KeyWords w = {0, 0};
        if (n >= 8) {
                memcpy(&w.a, s, 8);
                memcpy(&w.b, s + n - 8, 8);
        } else if (n >= 4) {
                uint32_t x, y;
                memcpy(&x, s, 4);
                memcpy(&y, s + n - 4, 4);
                w.a = x;
                w.b = y;
        } else if (n > 0) {
                w.a = (uint64_t)s[0] << 16 | (uint64_t)s[n >> 1] << 8 | s[n - 1];
        }
        return w;
}

/* One multiplication (the lookup is on the per-key path); the table is
 * built from the schema, so a weak spot can only lengthen schema chains. */
static inline uint32_t key_hash(KeyWords w, uint32_t n, uint32_t parent)
{
        uint64_t x = w.a ^ (w.b << 23 | w.b >> 41) ^ ((uint64_t)(n + parent * 0x9e3779b9u) << 32);
        return (uint32_t)((x * 0x9e3779b97f4a7c15ULL) >> 32);
}

static inline bool key_eq(const DecKey *k, KeyWords w, uint32_t parent, const uint8_t *s, uint32_t n)
{
        return k->a == w.a && k->b == w.b && k->parent == parent && k->len == n &&
               (n <= 16 || memcmp(k->s + 8, s + 8, n - 16) == 0);
}

static inline uint32_t key_find(const Decoder *d, uint32_t parent, const uint8_t *s, uint32_t n)
{
        KeyWords w = key_words(s, n);
        for (uint32_t i = key_hash(w, n, parent) & d->key_mask;; i = (i + 1) & d->key_mask) {
                const DecKey *k = &d->keys[i];
                if (!k->s)
                        return NONE;
                if (key_eq(k, w, parent, s, n))
                        return k->val;
        }
}

/* Insert unless present; returns the value stored under the key. */
static uint32_t key_add(Decoder *d, uint32_t parent, const char *s, uint32_t n, uint32_t val)
{
        KeyWords w = key_words((const uint8_t *)s, n);
        for (uint32_t i = key_hash(w, n, parent) & d->key_mask;; i = (i + 1) & d->key_mask) {
                DecKey *k = &d->keys[i];
                if (!k->s) {
                        *k = (DecKey){.a = w.a, .b = w.b, .s = s, .len = n, .parent = parent, .val = val};
                        return val;
                }
                if (key_eq(k, w, parent, (const uint8_t *)s, n))
                        return k->val;
        }
}

/* ---- compiling the schema ---- */

static uint32_t node_add(Decoder *d)
{
        DecNode *n = &VEC_PUSH(d->nodes, d->nnodes, d->cap_nodes);
        *n = (DecNode){.first = NONE, .next = NONE};
        return d->nnodes - 1;
}

/* The node of a dotted path, created as needed; NONE on an empty segment. */
static uint32_t path_node(Decoder *d, const char *path)
{
        uint32_t node = 0;
        const char *seg = path;
        for (const char *p = path;; p++) {
                if (*p != '.' && *p)
                        continue;
                uint32_t n = (uint32_t)(p - seg);
                if (n == 0)
                        return NONE;
                if (n > d->max_key)
                        d->max_key = n;
                uint32_t child = key_add(d, node, seg, n, d->nnodes);
                if (child == d->nnodes) {
                        node_add(d);
                        bool plain = n <= KEY_PRED_MAX;
                        for (uint32_t i = 0; i < n && plain; i++)
                                plain = seg[i] >= 0x20 && seg[i] < 0x7f && seg[i] != '"' && seg[i] != '\\';
                        d->nodes[child].klen = plain ? (uint8_t)n : 0;
                }
                d->nodes[node].children = true;
                node = child;
                if (!*p)
                        return node;
                seg = p + 1;
        }
}

static uint32_t enum_id(Decoder *d, const EnumDef *en)
{
        for (uint32_t i = 0; i < d->nenums; i++)
                if (d->enums[i] == en)
                        return i;
        d->enums[d->nenums] = en;
        for (uint32_t v = 0; v < en->nvalues; v++)
                key_add(d, PARENT_ENUM | d->nenums, en->values[v], (uint32_t)strlen(en->values[v]), v);
        return d->nenums++;
}

int decoder_new(Decoder **ret, const Schema *s, const DecoderLimits *lim)
{
        uint32_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : DECODER_MAX_BYTES_DEFAULT;
        uint32_t max_depth = lim && lim->max_depth ? lim->max_depth : DECODER_MAX_DEPTH_DEFAULT;
        if (max_bytes > DECODER_MAX_BYTES_LIMIT || max_depth > DECODER_MAX_DEPTH_LIMIT)
                return -EINVAL;
        if (s->ntypes > RULES_MAX_TYPES || s->nslots > RULES_MAX_SLOTS)
                return -EINVAL;
        const char *env_paths[ENV_N] = {s->env.id, s->env.type, s->env.enterprise, s->env.time};
        for (int r = 0; r < ENV_N; r++)
                if (!env_paths[r])
                        return -EINVAL;

        /* size the hash table: edges ≤ segments, plus type names and enum values */
        size_t nkeys = s->ntypes + ENV_N + UNKNOWN_KEYS_MAX;
        for (int r = 0; r < ENV_N; r++)
                for (const char *p = env_paths[r]; *p; p++)
                        nkeys += *p == '.';
        for (uint32_t t = 0; t < s->ntypes; t++) {
                const EventType *et = &s->types[t];
                if (et->id != t)
                        return -EINVAL;
                for (uint32_t i = 0; i < et->nfields; i++) {
                        const Field *f = &et->fields[i];
                        if (!f->path || f->slot >= s->nslots || s->slot_type[f->slot] != f->type)
                                return -EINVAL;
                        if (f->type == FT_ENUM && (!f->en || !s->slot_enum || s->slot_enum[f->slot] != f->en))
                                return -EINVAL;
                        if (f->format != FF_NONE && (f->type != FT_STR || f->format > FF_CATEGORY))
                                return -EINVAL;
                        nkeys += 1;
                        for (const char *p = f->path; *p; p++)
                                nkeys += *p == '.';
                        if (f->type == FT_ENUM)
                                nkeys += f->en->nvalues;
                }
        }

        Decoder *d = xcalloc(1, sizeof(*d));
        d->s = s;
        d->max_bytes = max_bytes;
        d->max_depth = max_depth;
        uint32_t cap = 16;
        while (cap < 2 * nkeys)
                cap *= 2;
        d->keys = xcalloc(cap, sizeof(*d->keys));
        d->key_mask = cap - 1;
        uint32_t ns = s->nslots;
        d->slot_types = xcalloc(ns, sizeof(*d->slot_types));
        d->slot_node = xcalloc(ns, sizeof(*d->slot_node));
        d->slot_enum = xcalloc(ns, sizeof(*d->slot_enum));
        d->slot_conv = xcalloc(ns, sizeof(*d->slot_conv));
        d->ss = xcalloc(ns, sizeof(*d->ss));
        d->written = xcalloc(ns, sizeof(*d->written));
        d->enums = xcalloc(ns, sizeof(*d->enums));
        d->all_types = s->ntypes == 64 ? ~0ULL : (1ULL << s->ntypes) - 1;
        d->slot_req = xcalloc(ns, sizeof(*d->slot_req));
        d->type_nreq = xcalloc(s->ntypes ? s->ntypes : 1, sizeof(*d->type_nreq));
        d->type_nfmt = xcalloc(s->ntypes ? s->ntypes : 1, sizeof(*d->type_nfmt));
        for (uint32_t i = 0; i < ns; i++) {
                d->slot_node[i] = NONE;
                d->slot_enum[i] = NONE;
                d->slot_conv[i] = (uint8_t)s->slot_type[i];
        }
        node_add(d); /* the top-level object */

        for (int e = 0; e < ENV_N; e++) {
                uint32_t node = path_node(d, env_paths[e]);
                if (node == NONE)
                        goto fail;
                d->nodes[node].env |= (uint8_t)(1u << e);
        }
        for (uint32_t t = 0; t < s->ntypes; t++) {
                const EventType *et = &s->types[t];
                key_add(d, PARENT_TYPES, et->name, (uint32_t)strlen(et->name), t);
                for (uint32_t i = 0; i < et->nfields; i++) {
                        const Field *f = &et->fields[i];
                        uint32_t node = path_node(d, f->path);
                        if (node == NONE)
                                goto fail;
                        /* one slot, one path */
                        if (d->slot_node[f->slot] != NONE && d->slot_node[f->slot] != node)
                                goto fail;
                        d->slot_node[f->slot] = node;
                        d->slot_types[f->slot] |= 1ULL << t;
                        if (f->required && !(d->slot_req[f->slot] & 1ULL << t)) {
                                d->slot_req[f->slot] |= 1ULL << t;
                                d->type_nreq[t]++;
                        }
                        if (f->type == FT_ENUM)
                                d->slot_enum[f->slot] = enum_id(d, f->en);
                        d->type_nfmt[t] += format_is_code(f->format);
                        /* a path is read as a category for every type or for none */
                        bool cat = f->format == FF_CATEGORY;
                        if (d->slot_conv[f->slot] == CONV_CATEGORY ? !cat : cat && d->slot_types[f->slot] != 1ULL << t)
                                goto fail;
                        if (cat) {
                                d->slot_conv[f->slot] = CONV_CATEGORY;
                                d->nodes[node].cat = true;
                        }
                }
        }

        /* the keys as parse_object compares them */
        /* room for the unknown keys, taken while parsing: the nodes must not
         * move then (parse_object holds pointers into them) */
        d->cap_nodes = d->nnodes + UNKNOWN_KEYS_MAX;
        d->nodes = xrealloc(d->nodes, d->cap_nodes * sizeof(*d->nodes));
        d->kpat = xcalloc(d->cap_nodes, sizeof(*d->kpat));
        for (uint32_t i = 0; i < cap; i++) {
                const DecKey *k = &d->keys[i];
                if (k->s && k->parent < d->nnodes && d->nodes[k->val].klen) {
                        memcpy(d->kpat[k->val], k->s, k->len);
                        d->kpat[k->val][k->len] = '"';
                }
        }

        /* group the slots by node (counting sort) */
        d->node_slots = xcalloc(ns, sizeof(*d->node_slots));
        for (uint32_t i = 0; i < ns; i++)
                if (d->slot_node[i] != NONE)
                        d->nodes[d->slot_node[i]].nslot++;
        uint32_t at = 0;
        for (uint32_t n = 0; n < d->nnodes; n++) {
                d->nodes[n].slot0 = at;
                at += d->nodes[n].nslot;
                d->nodes[n].nslot = 0;
        }
        for (uint32_t i = 0; i < ns; i++)
                if (d->slot_node[i] != NONE) {
                        DecNode *n = &d->nodes[d->slot_node[i]];
                        d->node_slots[n->slot0 + n->nslot++] = i;
                }
        d->keybuf = xmalloc(d->max_key + 1);
        *ret = d;
        return 0;
fail:
        decoder_free(d);
        return -EINVAL;
}

Decoder *decoder_free(Decoder *d)
{
        if (!d)
                return NULL;
        free(d->nodes);
        free(d->kpat);
        free(d->node_slots);
        free(d->keys);
        free(d->keybuf);
        free(d->slot_types);
        free(d->slot_req);
        free(d->type_nreq);
        free(d->type_nfmt);
        free(d->slot_node);
        free(d->slot_enum);
        free(d->slot_conv);
        free(d->enums);
        free(d->numbuf);
        free(d->ss);
        free(d->written);
        free(d);
        return NULL;
}

/* ---- numbers ---- */

static _Atomic(locale_t) c_locale;

static locale_t decode_c_locale(void)
{
        locale_t l = atomic_load_explicit(&c_locale, memory_order_acquire);
        if (l)
                return l;
        locale_t n = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (!n)
                abort(); /* only ENOMEM: allocation failure aborts */
        locale_t expected = (locale_t)0;
        if (!atomic_compare_exchange_strong(&c_locale, &expected, n)) {
                freelocale(n);
                return expected;
        }
        return n;
}

static inline bool is_digit(uint8_t c)
{
        return (uint8_t)(c - '0') < 10;
}

/* RFC 8259 number grammar; returns the end, or NULL with *what set. */
static const uint8_t *number_scan(const uint8_t *p, const uint8_t *end, const char **what)
{
        if (*p == '-') {
                p++;
                if (p == end || !is_digit(*p)) {
                        *what = "expected a digit after '-'";
                        return NULL;
                }
        }
        if (!is_digit(*p)) {
                *what = "expected a digit";
                return NULL;
        }
        if (*p == '0') {
                p++;
                if (p < end && is_digit(*p)) {
                        *what = "leading zero in a number";
                        return NULL;
                }
        } else {
                while (p < end && is_digit(*p))
                        p++;
        }
        if (p < end && *p == '.') {
                p++;
                if (p == end || !is_digit(*p)) {
                        *what = "expected a digit after '.'";
                        return NULL;
                }
                while (p < end && is_digit(*p))
                        p++;
        }
        if (p < end && (*p | 0x20) == 'e') {
                p++;
                if (p < end && (*p == '+' || *p == '-'))
                        p++;
                if (p == end || !is_digit(*p)) {
                        *what = "expected a digit in the exponent";
                        return NULL;
                }
                while (p < end && is_digit(*p))
                        p++;
        }
        return p;
}

static const double pow10_dbl[23] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/*
 * Clinger's fast path: m ≤ 2^53 and 10^|e| ≤ 10^22 are exact doubles, so a
 * single IEEE multiplication or division is the correctly rounded result.
 * Needs double arithmetic without excess precision (FLT_EVAL_METHOD 0:
 * x86-64 SSE2, AArch64); elsewhere everything goes to strtod_l.
 */
static bool number_fast(const uint8_t *p, const uint8_t *end, double *ret)
{
#if FLT_EVAL_METHOD == 0
        bool neg = false;
        if (*p == '-') {
                neg = true;
                p++;
        }
        uint64_t m = 0;
        int nd = 0;
        int64_t e10 = 0;
        for (; p < end && is_digit(*p); p++) {
                if (m == 0 && *p == '0')
                        continue;
                if (nd == 19)
                        return false;
                m = m * 10 + (uint64_t)(*p - '0');
                nd++;
        }
        if (p < end && *p == '.')
                for (p++; p < end && is_digit(*p); p++) {
                        e10--;
                        if (m == 0 && *p == '0')
                                continue;
                        if (nd == 19)
                                return false;
                        m = m * 10 + (uint64_t)(*p - '0');
                        nd++;
                }
        if (p < end) { /* exponent */
                p++;
                bool eneg = false;
                if (*p == '+' || *p == '-')
                        eneg = *p++ == '-';
                int64_t x = 0;
                for (; p < end; p++) {
                        if (x > 100000)
                                return false; /* let strtod decide what it rounds to */
                        x = x * 10 + (*p - '0');
                }
                e10 += eneg ? -x : x;
        }
        if (m == 0) {
                *ret = neg ? -0.0 : 0.0;
                return true;
        }
        if (m > (1ULL << 53))
                return false;
        double v = (double)m;
        if (e10 >= 0 && e10 <= 22) {
                v *= pow10_dbl[e10];
        } else if (e10 < 0 && e10 >= -22) {
                v /= pow10_dbl[-e10];
        } else if (e10 > 22 && e10 <= 22 + 15) {
                /* 1.5e30: move the excess power into the mantissa if it stays exact */
                for (int64_t k = e10 - 22; k > 0; k--) {
                        m *= 10;
                        if (m > (1ULL << 53))
                                return false;
                }
                v = (double)m * 1e22;
        } else {
                return false;
        }
        *ret = neg ? -v : v;
        return true;
#else
        (void)p;
        (void)end;
        (void)ret;
        return false;
#endif
}

/* s[0..n) is a validated JSON number.  0, or -ERANGE (overflow). */
static int number_slow(const char *s, size_t n, char *buf, double *ret)
{
        memcpy(buf, s, n);
        buf[n] = 0;
        double v = strtod_l(buf, NULL, decode_c_locale());
        if (isinf(v))
                return -ERANGE;
        *ret = v;
        return 0;
}

int decode_number_parse(const char *s, size_t n, double *ret)
{
        const uint8_t *p = (const uint8_t *)s, *end = p + n;
        const char *what;
        if (n == 0 || number_scan(p, end, &what) != end)
                return -EINVAL;
        if (number_fast(p, end, ret))
                return 0;
        char small[128];
        if (n < sizeof(small))
                return number_slow(s, n, small, ret);
        char *buf = xmalloc(n + 1);
        int r = number_slow(s, n, buf, ret);
        free(buf);
        return r;
}

/* The decoder's conversion: reuses its buffer for long numbers. */
static int dec_number(Decoder *d, const uint8_t *p, const uint8_t *end, double *ret)
{
        if (number_fast(p, end, ret))
                return 0;
        size_t n = (size_t)(end - p);
        char small[128];
        if (n < sizeof(small))
                return number_slow((const char *)p, n, small, ret);
        if (n + 1 > d->numbuf_cap) { /* bounded by max_bytes; kept for the next one */
                d->numbuf = xrealloc(d->numbuf, n + 1);
                d->numbuf_cap = (uint32_t)(n + 1);
        }
        return number_slow((const char *)p, n, d->numbuf, ret);
}

/* ---- messages ---- */

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
        if (n <= max)
                return n;
        while (max > 0 && ((uint8_t)s[max] & 0xc0) == 0x80)
                max--;
        return max;
}

static void detail_set(Decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void detail_set(Decoder *d, const char *fmt, ...)
{
        char *out = d->ev->detail;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out, sizeof(d->ev->detail), fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof(d->ev->detail)) {
                /* truncated: drop a UTF-8 sequence cut in half */
                size_t len = strlen(out), i = len;
                while (i > 0 && ((uint8_t)out[i - 1] & 0xc0) == 0x80)
                        i--;
                if (i > 0 && (uint8_t)out[i - 1] >= 0xc0) {
                        uint8_t c = (uint8_t)out[i - 1];
                        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
                        if (len - (i - 1) < need)
                                out[i - 1] = 0;
                }
        }
}

/* A quoted excerpt of an input string for a message: printable, short. */
static const char *excerpt(const Str *v, char *buf, size_t size)
{
        size_t n = utf8_cut(v->p, v->len, size - 4);
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
                uint8_t c = (uint8_t)v->p[i];
                buf[j++] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
        }
        if (n < v->len) {
                memcpy(buf + j, "...", 3);
                j += 3;
        }
        buf[j] = 0;
        return buf;
}

/* What a refused time string needs, after its excerpt in a detail: a
 * valid time finer than the millisecond is told apart from one that is
 * not RFC 3339 (parsed again: a rejection, not the steady state). */
static const char *time_problem(const Str *v)
{
        int64_t ms;
        return time_parse(v->p, v->len, &ms) == -ERANGE
                       ? ": finer than a millisecond (digits after the third decimal must be 0)"
                       : ", expected RFC 3339 like 2025-03-02T10:15:00+08:00";
}

static const char *expected_name(FieldType t)
{
        switch (t) {
        case FT_BOOL:
                return "a bool";
        case FT_NUM:
                return "a number";
        case FT_STR:
                return "a string";
        case FT_ENUM:
                return "an enum string";
        case FT_TIME:
                return "an RFC 3339 time string";
        case FT_DUR:
                return "a duration string like \"30m\"";
        }
        return "?";
}

/* ---- strings ---- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Bytes needing attention in a string: '"', '\\', < 0x20, >= 0x80, as
 * their high bits.  Only the lowest flagged byte is reliable (a borrow may
 * flag the bytes above it), which is all string_scan uses. */
static inline uint64_t string_specials(uint64_t x)
{
        uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
        return (((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | x) & HIGHS;
}

/* string_scan() past its fast path: escapes, UTF-8, errors, the last bytes. */
__attribute__((noinline)) static const uint8_t *string_scan_slow(const uint8_t *p, const uint8_t *end, bool *esc,
                                                                 const char **what, const uint8_t **at)
{
        for (;;) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                while (end - p >= 8) {
                        uint64_t x;
                        memcpy(&x, p, 8);
                        uint64_t m = string_specials(x);
                        if (m) {
                                p += __builtin_ctzll(m) >> 3;
                                break;
                        }
                        p += 8;
                }
#endif
                if (p == end) {
                        *what = "unterminated string";
                        *at = p;
                        return NULL;
                }
                uint8_t c = *p;
                if (c == '"')
                        return p + 1;
                if (c == '\\') {
                        *esc = true;
                        if (end - p < 2) {
                                *what = "unterminated string";
                                *at = end;
                                return NULL;
                        }
                        switch (p[1]) {
                        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                                p += 2;
                                continue;
                        case 'u':
                                break;
                        default:
                                *what = "bad escape in a string";
                                *at = p;
                                return NULL;
                        }
                        int u = end - p >= 6 ? hex4_value(p + 2) : -1;
                        if (u < 0) {
                                *what = "bad \\u escape in a string";
                                *at = p;
                                return NULL;
                        }
                        if (u >= 0xdc00 && u <= 0xdfff) {
                                *what = "lone low surrogate escape in a string";
                                *at = p;
                                return NULL;
                        }
                        if (u >= 0xd800 && u <= 0xdbff) {
                                int lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4_value(p + 8) : -1;
                                if (lo < 0xdc00 || lo > 0xdfff) {
                                        *what = "lone high surrogate escape in a string";
                                        *at = p;
                                        return NULL;
                                }
                                p += 12;
                        } else {
                                p += 6;
                        }
                        continue;
                }
                if (c < 0x20) {
                        *what = "control character in a string";
                        *at = p;
                        return NULL;
                }
                if (c < 0x80) {
                        p++;
                        continue;
                }
                /* UTF-8, Unicode Table 3-7 */
                size_t left = (size_t)(end - p);
                uint8_t lo = 0x80, hi = 0xbf;
                size_t n;
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 2;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 3;
                        if (c == 0xe0)
                                lo = 0xa0;
                        else if (c == 0xed)
                                hi = 0x9f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 4;
                        if (c == 0xf0)
                                lo = 0x90;
                        else if (c == 0xf4)
                                hi = 0x8f;
                } else {
                        *what = "invalid UTF-8 in a string";
                        *at = p;
                        return NULL;
                }
                if (left < n || p[1] < lo || p[1] > hi || (n > 2 && (p[2] & 0xc0) != 0x80) ||
                    (n > 3 && (p[3] & 0xc0) != 0x80)) {
                        *what = "invalid UTF-8 in a string";
                        *at = p;
                        return NULL;
                }
                p += n;
        }
}

#if defined(__SSE2__)
/*
 * string_scan() at a byte >= 0x80 (p, a character boundary): 16 bytes at a
 * time while the text is well-formed UTF-8 of the common kinds, 2-byte
 * sequences with leads C2..DF and 3-byte ones with leads E1..EC, EE, EF
 * (CJK text is the latter).  Everything else (E0, ED and F0..F4 with their
 * narrower second bytes, invalid bytes, escapes, control characters, the
 * last 15 bytes) goes to string_scan_slow() from a character boundary
 * whose prefix is valid, so errors and their positions are its own.
 *
 * Per block, bit i of each mask is byte i: lead (11xxxxxx), cont
 * (10xxxxxx), l3 (111xxxxx).  Well-formed means the continuation bytes
 * are exactly those the leads expect: cont == lead << 1 | l3 << 2 below
 * the first quote, backslash or control character; a sequence may run
 * past the block only when there is none (the next block starts at its
 * lead).
 */
__attribute__((noinline)) static const uint8_t *string_scan_wide(const uint8_t *p, const uint8_t *end, bool *esc,
                                                                 const char **what, const uint8_t **at)
{
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
        const __m128i e0 = _mm_set1_epi8((char)0xe0), ed = _mm_set1_epi8((char)0xed);
        const __m128i fe = _mm_set1_epi8((char)0xfe), c0 = _mm_set1_epi8((char)0xc0);
        while (end - p >= 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
                uint32_t b7 = (uint32_t)_mm_movemask_epi8(v);
                uint32_t lt = (uint32_t)_mm_movemask_epi8(_mm_cmplt_epi8(v, space)); /* also >= 0x80 */
                uint32_t q = (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                                      _mm_cmpeq_epi8(v, bslash))) |
                             (lt & ~b7);
                uint32_t lim = q ? (1u << __builtin_ctz(q)) - 1 : 0xffff;
                uint32_t lead = 0, expect = 0;
                if (b7 & lim) {
                        uint32_t b6 = (uint32_t)_mm_movemask_epi8(_mm_slli_epi16(v, 1));
                        uint32_t b5 = (uint32_t)_mm_movemask_epi8(_mm_slli_epi16(v, 2));
                        uint32_t b4 = (uint32_t)_mm_movemask_epi8(_mm_slli_epi16(v, 3));
                        __m128i r = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, e0), _mm_cmpeq_epi8(v, ed)),
                                                 _mm_cmpeq_epi8(_mm_and_si128(v, fe), c0));
                        lead = b7 & b6;
                        uint32_t cont = b7 & ~b6, l3 = lead & b5;
                        uint32_t rare = (uint32_t)_mm_movemask_epi8(r) | (l3 & b4); /* E0 ED C0 C1 F0..FF */
                        expect = lead << 1 | l3 << 2;
                        if (((rare | (expect ^ cont)) & lim) || (q && (expect & ~lim)))
                                break;
                }
                if (q) {
                        p += __builtin_ctz(q);
                        if (*p == '"')
                                return p + 1;
                        break;
                }
                if (expect >> 16)
                        p += 31 - __builtin_clz(lead); /* the last sequence runs on: restart at its lead */
                else
                        p += 16;
        }
        return string_scan_slow(p, end, esc, what, at);
}
#endif

/*
 * Validate a string; p is past the opening quote.  Returns the position past
 * the closing quote and sets *esc when it contains escapes; NULL with *what
 * on an error (*at: where).  Inline: most strings are short ASCII ending in
 * one of the first 8-byte words.
 */
static inline const uint8_t *string_scan(const uint8_t *p, const uint8_t *end, bool *esc, const char **what,
                                         const uint8_t **at)
{
        *esc = false;
#if defined(__SSE2__)
        /* signed < 0x20 catches both the control characters and bytes >= 0x80 */
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
                __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                          _mm_cmplt_epi8(v, space));
                unsigned m = (unsigned)_mm_movemask_epi8(sp);
                if (m) {
                        p += __builtin_ctz(m);
                        if (*p == '"')
                                return p + 1;
                        if (*p >= 0x80)
                                return string_scan_wide(p, end, esc, what, at);
                        break;
                }
                p += 16;
        }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (end - p >= 8) {
                uint64_t x;
                memcpy(&x, p, 8);
                uint64_t m = string_specials(x);
                if (m) {
                        p += __builtin_ctzll(m) >> 3;
                        if (*p == '"')
                                return p + 1;
                        break;
                }
                p += 8;
        }
#endif
        return string_scan_slow(p, end, esc, what, at);
}

/* Unescape the validated string body s[0..n) into out[0..cap); the length,
 * or -1 when it does not fit. */
static int64_t string_unescape(const uint8_t *s, uint32_t n, uint8_t *out, size_t cap)
{
        const uint8_t *end = s + n;
        uint8_t *o = out, *oend = out + cap;
        while (s < end) {
                const uint8_t *bs = memchr(s, '\\', (size_t)(end - s));
                size_t plain = (size_t)((bs ? bs : end) - s);
                if ((size_t)(oend - o) < plain)
                        return -1;
                memcpy(o, s, plain);
                o += plain;
                s += plain;
                if (!bs)
                        break;
                uint32_t cp;
                switch (s[1]) {
                case 'b': cp = '\b'; break;
                case 'f': cp = '\f'; break;
                case 'n': cp = '\n'; break;
                case 'r': cp = '\r'; break;
                case 't': cp = '\t'; break;
                case 'u':
                        cp = (uint32_t)hex4_value(s + 2);
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4_value(s + 8) - 0xdc00);
                                s += 6;
                        }
                        s += 4;
                        break;
                default: cp = s[1]; break; /* " \ / */
                }
                s += 2;
                if (oend - o < (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4))
                        return -1;
                o = utf8_encode(o, cp);
        }
        return o - out;
}

/* ---- times ---- */

static inline __attribute__((always_inline)) bool digits2(const uint8_t *s, unsigned *ret)
{
        if (!is_digit(s[0]) || !is_digit(s[1]))
                return false;
        *ret = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
        return true;
}

/*
 * time_parse() for the forms upstream systems write:
 * YYYY-MM-DDTHH:MM:SS, optionally .fff (exactly three digits), then Z or
 * +HH:MM / -HH:MM.  True and *ms when s is one of them and valid (the same
 * value time_parse() gives); false for anything else, valid or not, which
 * time_parse() then decides.  Consecutive events mostly share their date:
 * its day number is kept.
 */
static inline bool time_fast(Decoder *d, const char *str, uint32_t n, int64_t *ms)
{
        const uint8_t *s = (const uint8_t *)str;
        unsigned yh, yl, mo, dd, h, mi, sec, frac = 0, oh = 0, om = 0;
        if (n < 20 || n > 29 || s[4] != '-' || s[7] != '-' || (s[10] | 0x20) != 't' || s[13] != ':' ||
            s[16] != ':')
                return false;
        if (!digits2(s, &yh) || !digits2(s + 2, &yl) || !digits2(s + 5, &mo) || !digits2(s + 8, &dd) ||
            !digits2(s + 11, &h) || !digits2(s + 14, &mi) || !digits2(s + 17, &sec))
                return false;
        uint32_t i = 19;
        if (s[i] == '.') {
                unsigned f2;
                if (n < 24 || !digits2(s + 20, &f2) || !is_digit(s[22]))
                        return false;
                frac = f2 * 10 + (unsigned)(s[22] - '0');
                i = 23;
        }
        int64_t off = 0;
        if (i + 1 == n && (s[i] | 0x20) == 'z') {
                /* UTC */
        } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits2(s + i + 1, &oh) && s[i + 3] == ':' &&
                   digits2(s + i + 4, &om) && oh <= 23 && om <= 59) {
                off = (int64_t)oh * MS_PER_H + (int64_t)om * MS_PER_M;
                if (s[i] == '-')
                        off = -off;
        } else {
                return false;
        }
        if (h > 23 || mi > 59 || sec > 59)
                return false;
        int64_t days;
        if (memcmp(s, d->tdate, 10) == 0) {
                days = d->tdays;
        } else {
                static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
                unsigned y = yh * 100 + yl;
                bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
                if (mo < 1 || mo > 12 || dd < 1 || dd > (mo == 2 && leap ? 29u : dim[mo - 1]))
                        return false;
                days = time_days_from_civil(y, mo, dd);
                memcpy(d->tdate, s, 10);
                d->tdays = days;
        }
        *ms = days * MS_PER_D + (int64_t)h * MS_PER_H + (int64_t)mi * MS_PER_M + (int64_t)sec * MS_PER_S + frac - off;
        return true;
}

static inline int dec_time(Decoder *d, const char *s, uint32_t n, int64_t *ms)
{
        if (time_fast(d, s, n, ms))
                return 0;
        return time_parse(s, n, ms);
}

/* ---- delivering values to slots ---- */

/*
 * Store a Value as its three words, exactly the bytes of the compound
 * literal (tag, then the union zero-filled around the member).  Assigning
 * value_bool() & co. made the compiler build the Value on the stack with
 * narrow stores and reload it as one wide load, a store-forwarding stall
 * on every converted field.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
_Static_assert(sizeof(Value) == 24 && offsetof(Value, n) == 8 && offsetof(Value, s.len) == 16 &&
                       offsetof(Value, b) == 8 && offsetof(Value, e) == 8 && offsetof(Value, ms) == 8,
               "value_put() writes Value as three words");
static inline void value_put(Value *o, uint8_t tag, uint64_t w1, uint64_t w2)
{
        uint64_t w0 = tag;
        memcpy((char *)o, &w0, 8);
        memcpy((char *)o + 8, &w1, 8);
        memcpy((char *)o + 16, &w2, 8);
}
#define VALUE_PUT(o, tag, w1, w2, v) value_put(o, tag, w1, w2)
#else
#define VALUE_PUT(o, tag, w1, w2, v) (*(o) = (v))
#endif

static inline void slot_done(Decoder *d, uint32_t slot)
{
        SlotState *st = &d->ss[slot];
        st->epoch = d->epoch;
        st->st = SS_OK;
        d->written[d->nwritten++] = slot;
}

static inline void slot_bool(Decoder *d, uint32_t slot, bool b)
{
        VALUE_PUT(&d->ev->slots[slot], VT_BOOL, b, 0, value_bool(b));
        slot_done(d, slot);
}

static inline void slot_num(Decoder *d, uint32_t slot, double x)
{
        uint64_t w;
        memcpy(&w, &x, 8);
        VALUE_PUT(&d->ev->slots[slot], VT_NUM, w, 0, value_num(x));
        slot_done(d, slot);
}

static inline void slot_str(Decoder *d, uint32_t slot, Str v)
{
        VALUE_PUT(&d->ev->slots[slot], VT_STR, (uint64_t)(uintptr_t)v.p, v.len, value_str(v.p, v.len));
        slot_done(d, slot);
}

static inline void slot_enum(Decoder *d, uint32_t slot, uint32_t e)
{
        VALUE_PUT(&d->ev->slots[slot], VT_ENUM, e, 0, value_enum((int32_t)e));
        slot_done(d, slot);
}

/* VT_TIME, VT_DUR */
static inline void slot_ms(Decoder *d, uint32_t slot, uint8_t tag, int64_t ms)
{
        VALUE_PUT(&d->ev->slots[slot], tag, (uint64_t)ms, 0, ((Value){.tag = tag, .ms = ms}));
        slot_done(d, slot);
}

static inline void slot_state(Decoder *d, uint32_t slot, uint8_t state, uint8_t reason, uint8_t got, Str val)
{
        SlotState *st = &d->ss[slot];
        st->epoch = d->epoch;
        st->st = state;
        st->reason = reason;
        st->got = got;
        st->range = 0;
        st->cat = 0;
        st->val = val;
        d->nerr += state == SS_ERR;
}

static inline void env_state(Decoder *d, int role, uint8_t state, uint8_t reason, uint8_t got, Str val)
{
        SlotState *st = &d->env[role];
        st->epoch = d->epoch;
        st->st = state;
        st->reason = reason;
        st->got = got;
        st->val = val;
}

/*
 * Mark node seen; false (and the message) when it was seen already in this
 * event: a duplicate key the schema reads.
 */
static bool node_enter(Decoder *d, uint32_t node, const uint8_t *key)
{
        DecNode *n = &d->nodes[node];
        if (n->epoch == d->epoch) {
                detail_set(d, "malformed JSON at byte %zu: duplicate key", (size_t)(key - d->start));
                return false;
        }
        n->epoch = d->epoch;
        return true;
}

/* A value of a kind no conversion accepts as is (object, array, null, bool,
 * number) at node; number and bool are converted where they fit. */
static void deliver_kind(Decoder *d, uint32_t node, int kind, bool b, const uint8_t *num, const uint8_t *num_end)
{
        const DecNode *n = &d->nodes[node];
        if (n->env) {
                for (int r = 0; r < ENV_N; r++)
                        if (n->env & (1u << r))
                                env_state(d, r, kind == JK_NULL ? SS_NULL : SS_ERR, DECODE_WRONG_TYPE,
                                          (uint8_t)kind, (Str){0});
                if (n->env & (1u << ENV_TYPE))
                        d->mask = 0; /* no type: convert nothing more */
        }
        bool have_num = false, num_range = false;
        double x = 0;
        for (uint32_t i = 0; i < n->nslot; i++) {
                uint32_t slot = d->node_slots[n->slot0 + i];
                if (!(d->slot_types[slot] & d->mask))
                        continue;
                FieldType t = d->s->slot_type[slot];
                if (kind == JK_NULL) {
                        slot_state(d, slot, SS_NULL, 0, JK_NULL, (Str){0});
                } else if (kind == JK_BOOL && t == FT_BOOL) {
                        slot_bool(d, slot, b);
                } else if (kind == JK_NUMBER && t == FT_NUM) {
                        if (!have_num) {
                                num_range = dec_number(d, num, num_end, &x) < 0;
                                have_num = true;
                        }
                        if (num_range) {
                                slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, JK_NUMBER, (Str){0});
                                d->ss[slot].range = 1;
                        } else {
                                slot_num(d, slot, x);
                        }
                } else {
                        slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, (uint8_t)kind, (Str){0});
                }
        }
}

/* A category written as a string, "L1/L2/L3/L4": CAT_OK, or what is
 * wrong and where (*lvl). */
static uint8_t category_string(Str v, uint8_t *lvl)
{
        uint32_t level = 1, start = 0;
        for (uint32_t i = 0; i <= v.len; i++) {
                if (i < v.len && v.p[i] != '/')
                        continue;
                if (i == start) {
                        *lvl = (uint8_t)(level > 255 ? 255 : level);
                        return CAT_EMPTY_LEVEL;
                }
                if (i < v.len)
                        level++;
                start = i + 1;
        }
        if (level > CATEGORY_MAX_LEVELS) {
                *lvl = (uint8_t)(level > 255 ? 255 : level);
                return CAT_TOO_MANY;
        }
        return CAT_OK;
}

/* A string value (body raw[0..n), escaped or not) at node. */
static void deliver_string(Decoder *d, uint32_t node, const uint8_t *raw, uint32_t n, bool esc)
{
        const DecNode *dn = &d->nodes[node];
        bool any = dn->env != 0;
        for (uint32_t i = 0; i < dn->nslot && !any; i++)
                any = (d->slot_types[d->node_slots[dn->slot0 + i]] & d->mask) != 0;
        if (!any)
                return;
        Str v = {(const char *)raw, n};
        bool big = false;
        if (esc) {
                DecodedEvent *ev = d->ev;
                int64_t len = -1;
                if (ev->scratch)
                        len = string_unescape(raw, n, (uint8_t *)ev->scratch + d->scratch_used,
                                              ev->scratch_size - d->scratch_used);
                if (len < 0) {
                        big = true;
                } else {
                        v.p = ev->scratch + d->scratch_used;
                        v.len = (uint32_t)len;
                        d->scratch_used += (uint32_t)len;
                }
        }
        for (unsigned roles = dn->env; roles; roles &= roles - 1) {
                int r = __builtin_ctz(roles);
                if (big) {
                        env_state(d, r, SS_ERR, DECODE_TOO_LARGE, JK_STRING, (Str){0});
                        if (r == ENV_TYPE)
                                d->mask = 0;
                        continue;
                }
                switch (r) {
                case ENV_ID:
                case ENV_ENTERPRISE:
                        env_state(d, r, v.len ? SS_OK : SS_NULL, 0, JK_STRING, v);
                        break;
                case ENV_TYPE: {
                        uint32_t t = v.len ? key_find(d, PARENT_TYPES, (const uint8_t *)v.p, v.len) : NONE;
                        if (!v.len) {
                                env_state(d, r, SS_NULL, 0, JK_STRING, v);
                                d->mask = 0;
                        } else if (t == NONE) {
                                env_state(d, r, SS_ERR, DECODE_UNKNOWN_TYPE, JK_STRING, v);
                                d->mask = 0;
                        } else {
                                env_state(d, r, SS_OK, 0, JK_STRING, v);
                                d->type = (int32_t)t;
                                d->mask = 1ULL << t;
                        }
                        break;
                }
                case ENV_TIME: {
                        int64_t ms;
                        if (!v.len)
                                env_state(d, r, SS_NULL, 0, JK_STRING, v);
                        else if (dec_time(d, v.p, v.len, &ms) < 0)
                                env_state(d, r, SS_ERR, DECODE_BAD_TIMESTAMP, JK_STRING, v);
                        else {
                                env_state(d, r, SS_OK, 0, JK_STRING, v);
                                d->ev->time_ms = ms;
                        }
                        break;
                }
                }
        }
        for (uint32_t i = 0; i < dn->nslot; i++) {
                uint32_t slot = d->node_slots[dn->slot0 + i];
                if (!(d->slot_types[slot] & d->mask))
                        continue;
                if (big) {
                        slot_state(d, slot, SS_ERR, DECODE_TOO_LARGE, JK_STRING, (Str){0});
                        continue;
                }
                int64_t ms;
                switch (d->slot_conv[slot]) {
                case FT_STR:
                        slot_str(d, slot, v);
                        break;
                case CONV_CATEGORY: {
                        uint8_t lvl, bad = category_string(v, &lvl);
                        if (bad) {
                                slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, JK_STRING, v);
                                d->ss[slot].cat = bad;
                                d->ss[slot].catn = lvl;
                        } else {
                                slot_str(d, slot, v);
                        }
                        break;
                }
                case FT_ENUM: {
                        uint32_t e = key_find(d, PARENT_ENUM | d->slot_enum[slot], (const uint8_t *)v.p, v.len);
                        if (e == NONE)
                                slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, JK_STRING, v);
                        else
                                slot_enum(d, slot, e);
                        break;
                }
                case FT_TIME:
                        if (dec_time(d, v.p, v.len, &ms) < 0)
                                slot_state(d, slot, SS_ERR, DECODE_BAD_TIMESTAMP, JK_STRING, v);
                        else
                                slot_ms(d, slot, VT_TIME, ms);
                        break;
                case FT_DUR:
                        if (duration_parse(v.p, v.len, &ms) < 0)
                                slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, JK_STRING, v);
                        else
                                slot_ms(d, slot, VT_DUR, ms);
                        break;
                default:
                        slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, JK_STRING, v);
                        break;
                }
        }
}

/* ---- the parser ---- */

__attribute__((noinline)) static const uint8_t *ws_skip_slow(const uint8_t *p, const uint8_t *end)
{
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
                p++;
        return p;
}

/* Events are mostly compact: test for "no whitespace" first. */
static inline const uint8_t *ws_skip(const uint8_t *p, const uint8_t *end)
{
        if (p < end && *p > ' ')
                return p;
        return ws_skip_slow(p, end);
}

static const uint8_t *syntax_error(Decoder *d, const uint8_t *at, const char *what)
{
        if (at >= d->end)
                detail_set(d, "malformed JSON at byte %zu: %s (truncated?)", (size_t)(d->end - d->start), what);
        else
                detail_set(d, "malformed JSON at byte %zu: %s", (size_t)(at - d->start), what);
        return NULL;
}

static const uint8_t *parse_object(Decoder *d, const uint8_t *p, uint32_t node, uint32_t depth);
static const uint8_t *parse_array(Decoder *d, const uint8_t *p, uint32_t depth);
static const uint8_t *parse_category(Decoder *d, const uint8_t *p, uint32_t node, uint32_t depth);

/* The literal word (true, false or null: n bytes) at p, delivered as kind
 * and b when take.  Inlined with its constants into parse_value. */
static inline __attribute__((always_inline)) const uint8_t *parse_word(Decoder *d, const uint8_t *p, uint32_t node,
                                                                      bool take, const char *word, size_t n,
                                                                      int kind, bool b)
{
        if ((size_t)(d->end - p) < n || memcmp(p, word, n) != 0)
                return syntax_error(d, p, "bad literal");
        if (take)
                deliver_kind(d, node, kind, b, NULL, NULL);
        return p + n;
}

/* A value at p (whitespace skipped); node is where its key path leads, or
 * NONE.  Nodes with slots or envelope roles get the value delivered.
 * Inlined into the container loops (the recursion goes through them). */
static inline __attribute__((always_inline)) const uint8_t *parse_value(Decoder *d, const uint8_t *p, uint32_t node, uint32_t depth)
{
        const uint8_t *end = d->end;
        if (p == end)
                return syntax_error(d, p, "expected a value");
        bool take = node != NONE && (d->nodes[node].nslot || d->nodes[node].env);
        const char *what;
        const uint8_t *at, *q;
        bool esc;
        switch (*p) {
        case '{':
                if (take)
                        deliver_kind(d, node, JK_OBJECT, false, NULL, NULL);
                return parse_object(d, p + 1, node, depth + 1);
        case '[':
                if (take && d->nodes[node].cat)
                        return parse_category(d, p + 1, node, depth + 1);
                if (take)
                        deliver_kind(d, node, JK_ARRAY, false, NULL, NULL);
                return parse_array(d, p + 1, depth + 1);
        case '"':
                q = string_scan(p + 1, end, &esc, &what, &at);
                if (!q)
                        return syntax_error(d, at, what);
                if (take)
                        deliver_string(d, node, p + 1, (uint32_t)(q - 1 - (p + 1)), esc);
                return q;
        case 't':
                return parse_word(d, p, node, take, "true", 4, JK_BOOL, true);
        case 'f':
                return parse_word(d, p, node, take, "false", 5, JK_BOOL, false);
        case 'n':
                return parse_word(d, p, node, take, "null", 4, JK_NULL, false);
        default:
                if (*p != '-' && !is_digit(*p))
                        return syntax_error(d, p, "expected a value");
                q = number_scan(p, end, &what);
                if (!q)
                        return syntax_error(d, p, what);
                if (take)
                        deliver_kind(d, node, JK_NUMBER, false, p, q);
                return q;
        }
}

/*
 * Is the key at p (past its opening quote) the one of node pred, closing
 * quote included?  Such a key is plain ASCII without escapes, so equal
 * bytes are the whole validation.  Events of one source repeat their key
 * order, so the next key is mostly the one after the last key matched
 * last time; this replaces scanning the key and hashing it.
 */
static inline bool key_predicted(const Decoder *d, uint32_t pred, const uint8_t *p, const uint8_t *end)
{
        uint32_t n = (uint32_t)d->nodes[pred].klen + 1; /* with the quote */
        const uint8_t *pat = d->kpat[pred];
        if (n == 1 || end - p < 32)
                return false;
#if defined(__SSE2__)
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)pat);
        unsigned eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, b));
        if (n <= 16)
                return ((eq + 1) & ((1u << n) - 1)) == 0; /* the first n bytes equal */
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16));
        __m128i e = _mm_loadu_si128((const __m128i *)(const void *)(pat + n - 16));
        return (eq & (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(c, e))) == 0xffff;
#else
        return memcmp(p, pat, n) == 0;
#endif
}

/* A key of object node parent that the schema does not know (key_find
 * found nothing): a node without slots, so that key prediction covers it
 * next time; NONE when the budget is spent or the key is not plain. */
static uint32_t unknown_key(Decoder *d, uint32_t parent, const uint8_t *key, uint32_t n)
{
        if (d->nunknown >= UNKNOWN_KEYS_MAX || n == 0 || n > KEY_PRED_MAX || d->nnodes >= d->cap_nodes)
                return NONE;
        for (uint32_t i = 0; i < n; i++)
                if (key[i] < 0x20 || key[i] >= 0x7f || key[i] == '"' || key[i] == '\\')
                        return NONE;
        uint32_t c = d->nnodes++;
        assert(c < d->cap_nodes); /* room made by decoder_new: the nodes never move while parsing */
        d->nodes[c] = (DecNode){.first = NONE, .next = NONE, .klen = (uint8_t)n};
        memcpy(d->kpat[c], key, n);
        d->kpat[c][n] = '"';
        key_add(d, parent, (const char *)d->kpat[c], n, c);
        d->nunknown++;
        return c;
}

/* p is past '{'; node is the trie node of the object, or NONE. */
static const uint8_t *parse_object(Decoder *d, const uint8_t *p, uint32_t node, uint32_t depth)
{
        const uint8_t *end = d->end;
        if (depth > d->max_depth)
                return syntax_error(d, p - 1, "nesting too deep");
        bool lookup = node != NONE && d->nodes[node].children;
        uint32_t *pred = lookup ? &d->nodes[node].first : NULL; /* where the prediction of the next key is */
        p = ws_skip(p, end);
        if (p < end && *p == '}')
                return p + 1;
        for (;;) {
                if (p == end || *p != '"')
                        return syntax_error(d, p, "expected a key string");
                const uint8_t *key = p + 1;
                uint32_t child = NONE;
                if (lookup && *pred != NONE && key_predicted(d, *pred, key, end)) {
                        child = *pred;
                        p = key + d->nodes[child].klen + 1;
                        pred = &d->nodes[child].next;
                } else {
                        bool esc;
                        const char *what;
                        const uint8_t *at;
                        p = string_scan(key, end, &esc, &what, &at);
                        if (!p)
                                return syntax_error(d, at, what);
                        if (lookup) {
                                uint32_t n = (uint32_t)(p - 1 - key);
                                if (!esc) {
                                        child = key_find(d, node, key, n);
                                        if (child == NONE)
                                                child = unknown_key(d, node, key, n);
                                } else {
                                        int64_t len = string_unescape(key, n, (uint8_t *)d->keybuf, d->max_key);
                                        if (len >= 0)
                                                child = key_find(d, node, (const uint8_t *)d->keybuf,
                                                                 (uint32_t)len);
                                }
                                if (child != NONE) { /* learn: this key follows the last one matched */
                                        *pred = child;
                                        pred = &d->nodes[child].next;
                                }
                        }
                }
                p = ws_skip(p, end);
                if (p == end || *p != ':')
                        return syntax_error(d, p, "expected ':' after a key");
                p = ws_skip(p + 1, end);
                if (child != NONE && (d->nodes[child].nslot || d->nodes[child].env) && !node_enter(d, child, key - 1))
                        return NULL;
                p = parse_value(d, p, child, depth);
                if (!p)
                        return NULL;
                p = ws_skip(p, end);
                if (p < end && *p == ',') {
                        p = ws_skip(p + 1, end);
                        continue;
                }
                if (p < end && *p == '}')
                        return p + 1;
                return syntax_error(d, p, "expected ',' or '}' in an object");
        }
}

/* p is past '['; elements are validated, never stored. */
static const uint8_t *parse_array(Decoder *d, const uint8_t *p, uint32_t depth)
{
        const uint8_t *end = d->end;
        if (depth > d->max_depth)
                return syntax_error(d, p - 1, "nesting too deep");
        p = ws_skip(p, end);
        if (p < end && *p == ']')
                return p + 1;
        for (;;) {
                p = parse_value(d, p, NONE, depth);
                if (!p)
                        return NULL;
                p = ws_skip(p, end);
                if (p < end && *p == ',') {
                        p = ws_skip(p + 1, end);
                        continue;
                }
                if (p < end && *p == ']')
                        return p + 1;
                return syntax_error(d, p, "expected ',' or ']' in an array");
        }
}

/*
 * A list at a node where a category slot ends (FF_CATEGORY); p is past
 * '['.  Its strings are the levels, broad to narrow, joined with '/' in the
 * scratch buffer (never longer than the list's JSON text); every element is
 * validated as JSON whatever else is wrong.  The node's other slots get the
 * list as a list: wrong_type.
 */
__attribute__((noinline)) static const uint8_t *parse_category(Decoder *d, const uint8_t *p, uint32_t node,
                                                               uint32_t depth)
{
        const uint8_t *end = d->end;
        if (depth > d->max_depth)
                return syntax_error(d, p - 1, "nesting too deep");
        DecodedEvent *ev = d->ev;
        uint8_t *out = ev->scratch ? (uint8_t *)ev->scratch + d->scratch_used : NULL;
        size_t cap = ev->scratch ? ev->scratch_size - d->scratch_used : 0, len = 0;
        uint8_t bad = CAT_OK, lvl = 0, got = JK_STRING;
        bool big = false;
        uint32_t n = 0;
        p = ws_skip(p, end);
        if (p < end && *p == ']') {
                p++;
                bad = CAT_EMPTY_LIST;
        } else {
                for (;;) {
                        if (p == end)
                                return syntax_error(d, p, "expected a value");
                        n++;
                        if (*p == '"') {
                                bool esc;
                                const char *what;
                                const uint8_t *at, *q = string_scan(p + 1, end, &esc, &what, &at);
                                if (!q)
                                        return syntax_error(d, at, what);
                                uint32_t sn = (uint32_t)(q - 1 - (p + 1));
                                if (!bad && !big && n <= CATEGORY_MAX_LEVELS) {
                                        int64_t l = -1;
                                        size_t at0 = len + (n > 1);
                                        if (out && at0 <= cap) {
                                                if (esc)
                                                        l = string_unescape(p + 1, sn, out + at0, cap - at0);
                                                else if (sn <= cap - at0)
                                                        l = (int64_t)sn;
                                                if (l >= 0 && !esc)
                                                        memcpy(out + at0, p + 1, sn);
                                        }
                                        if (l < 0) {
                                                big = true;
                                        } else if (l == 0 || memchr(out + at0, '/', (size_t)l)) {
                                                bad = l == 0 ? CAT_EMPTY_LEVEL : CAT_SLASH;
                                                lvl = (uint8_t)n;
                                        } else {
                                                if (n > 1)
                                                        out[len] = '/';
                                                len = at0 + (size_t)l;
                                        }
                                }
                                p = q;
                        } else {
                                if (!bad) {
                                        bad = CAT_KIND;
                                        lvl = (uint8_t)(n > 255 ? 255 : n);
                                        got = *p == '{' ? JK_OBJECT : *p == '[' ? JK_ARRAY : *p == 'n' ? JK_NULL
                                              : (*p == 't' || *p == 'f') ? JK_BOOL : JK_NUMBER;
                                }
                                p = parse_value(d, p, NONE, depth);
                                if (!p)
                                        return NULL;
                        }
                        p = ws_skip(p, end);
                        if (p < end && *p == ',') {
                                p = ws_skip(p + 1, end);
                                continue;
                        }
                        if (p < end && *p == ']') {
                                p++;
                                break;
                        }
                        return syntax_error(d, p, "expected ',' or ']' in an array");
                }
                if (!bad && n > CATEGORY_MAX_LEVELS) {
                        bad = CAT_TOO_MANY;
                        lvl = (uint8_t)(n > 255 ? 255 : n);
                }
        }

        const DecNode *dn = &d->nodes[node];
        for (unsigned roles = dn->env; roles; roles &= roles - 1) {
                int r = __builtin_ctz(roles);
                env_state(d, r, SS_ERR, DECODE_WRONG_TYPE, JK_ARRAY, (Str){0});
                if (r == ENV_TYPE)
                        d->mask = 0;
        }
        bool used = false;
        for (uint32_t i = 0; i < dn->nslot; i++) {
                uint32_t slot = d->node_slots[dn->slot0 + i];
                if (!(d->slot_types[slot] & d->mask))
                        continue;
                if (d->slot_conv[slot] != CONV_CATEGORY) {
                        slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, JK_ARRAY, (Str){0});
                } else if (big) {
                        slot_state(d, slot, SS_ERR, DECODE_TOO_LARGE, JK_ARRAY, (Str){0});
                } else if (bad) {
                        slot_state(d, slot, SS_ERR, DECODE_WRONG_TYPE, got, (Str){0});
                        d->ss[slot].cat = bad;
                        d->ss[slot].catn = lvl;
                } else {
                        slot_str(d, slot, (Str){(const char *)out, (uint32_t)len});
                        used = true;
                }
        }
        /* the levels were joined inside the scratch left to this event */
        assert(!used || len <= cap);
        if (used)
                d->scratch_used += (uint32_t)len;
        return p;
}

/* ---- after the document ---- */

static DecodeReason env_check(Decoder *d, int r)
{
        const SlotState *st = &d->env[r];
        const char *const paths[ENV_N] = {d->s->env.id, d->s->env.type, d->s->env.enterprise, d->s->env.time};
        char ex[48];
        if (st->epoch == d->epoch && st->st == SS_OK) {
                char why[112];
                if (r != ENV_ENTERPRISE || !d->s->env.enterprise_format ||
                    ident_check(d->s->env.enterprise_format, st->val.p, st->val.len, why, sizeof(why)) == 0)
                        return DECODE_OK;
                detail_set(d, "%s (%s) \"%s\": %s", env_names[r], paths[r], excerpt(&st->val, ex, sizeof(ex)),
                           why);
                return DECODE_BAD_IDENTIFIER;
        }
        if (st->epoch != d->epoch || st->st == SS_NULL) {
                detail_set(d, "missing %s (%s)", env_names[r], paths[r]);
                return DECODE_MISSING_FIELD;
        }
        switch (st->reason) {
        case DECODE_UNKNOWN_TYPE:
                detail_set(d, "unknown event type \"%s\"", excerpt(&st->val, ex, sizeof(ex)));
                break;
        case DECODE_BAD_TIMESTAMP:
                detail_set(d, "%s (%s): bad timestamp \"%s\"%s", env_names[r], paths[r],
                           excerpt(&st->val, ex, sizeof(ex)), time_problem(&st->val));
                break;
        case DECODE_TOO_LARGE:
                detail_set(d, "%s (%s): unescaped strings exceed the %u-byte scratch buffer", env_names[r],
                           paths[r], d->ev->scratch_size);
                break;
        default:
                detail_set(d, "%s (%s): expected %s, got %s", env_names[r], paths[r],
                           r == ENV_TIME ? "an RFC 3339 time string" : "a string", kind_names[st->got]);
                break;
        }
        return (DecodeReason)st->reason;
}

/* A converted code field (SS_OK) against its format. */
static DecodeReason format_check(Decoder *d, const Field *f)
{
        const Value *v = &d->ev->slots[f->slot];
        char why[112], ex[48];
        if (v->tag != VT_STR || ident_check(f->format, v->s.p, v->s.len, why, sizeof(why)) == 0)
                return DECODE_OK;
        detail_set(d, "field %s \"%s\": %s", f->path, excerpt(&v->s, ex, sizeof(ex)), why);
        return DECODE_BAD_IDENTIFIER;
}

static void category_detail(Decoder *d, const Field *f, const SlotState *st)
{
        switch (st->cat) {
        case CAT_EMPTY_LIST:
                detail_set(d, "field %s: an empty list; a category has 1 to %d levels", f->path, CATEGORY_MAX_LEVELS);
                break;
        case CAT_KIND:
                detail_set(d, "field %s: level %u is %s, not a string", f->path, st->catn, kind_names[st->got]);
                break;
        case CAT_EMPTY_LEVEL:
                detail_set(d, "field %s: level %u is empty", f->path, st->catn);
                break;
        case CAT_SLASH:
                detail_set(d, "field %s: level %u contains '/', which separates levels", f->path, st->catn);
                break;
        default:
                detail_set(d, "field %s: %u levels; a category has at most %d", f->path, st->catn,
                           CATEGORY_MAX_LEVELS);
                break;
        }
}

static DecodeReason field_check(Decoder *d, const Field *f)
{
        const SlotState *st = &d->ss[f->slot];
        bool seen = st->epoch == d->epoch;
        char ex[48];
        if (!seen || st->st == SS_NULL) {
                if (!f->required)
                        return DECODE_OK;
                detail_set(d, seen ? "required field %s is null" : "missing required field %s", f->path);
                return DECODE_MISSING_FIELD;
        }
        if (st->st == SS_OK)
                return format_is_code(f->format) ? format_check(d, f) : DECODE_OK;
        switch (st->reason) {
        case DECODE_BAD_TIMESTAMP:
                detail_set(d, "field %s: bad timestamp \"%s\"%s", f->path, excerpt(&st->val, ex, sizeof(ex)),
                           time_problem(&st->val));
                break;
        case DECODE_TOO_LARGE:
                detail_set(d, "field %s: unescaped strings exceed the %u-byte scratch buffer", f->path,
                           d->ev->scratch_size);
                break;
        default:
                if (st->cat) {
                        category_detail(d, f, st);
                } else if (st->range) {
                        detail_set(d, "field %s: number out of range", f->path);
                } else if (st->got == JK_STRING && f->type == FT_ENUM) {
                        Buf b = {0}; /* a rejection, not the steady state */
                        for (uint32_t i = 0; i < f->en->nvalues; i++)
                                buf_printf(&b, "%s%s", i ? ", " : "", f->en->values[i]);
                        detail_set(d, "field %s: \"%s\" is not one of %s", f->path,
                                   excerpt(&st->val, ex, sizeof(ex)), b.p ? b.p : "");
                        buf_free(&b);
                } else if (st->got == JK_STRING && f->type == FT_DUR) {
                        detail_set(d, "field %s: \"%s\" is not a duration (like \"30m\", \"12h\", \"500ms\")",
                                   f->path, excerpt(&st->val, ex, sizeof(ex)));
                } else {
                        detail_set(d, "field %s: expected %s, got %s", f->path,
                                   f->format == FF_CATEGORY ? "a list of 1 to 4 category levels (strings)"
                                                            : expected_name(f->type),
                                   kind_names[st->got]);
                }
                break;
        }
        return (DecodeReason)st->reason;
}

/* Also nulls the slots of other types and leaves the event's own at the
 * front of d->written (d->nkept of them). */
static DecodeReason decode_finish(Decoder *d)
{
        static const int order[ENV_N] = {ENV_TYPE, ENV_ID, ENV_ENTERPRISE, ENV_TIME};
        for (int i = 0; i < ENV_N; i++) {
                DecodeReason r = env_check(d, order[i]);
                if (r != DECODE_OK)
                        return r;
        }
        /* null what other types' slots received before the type was known */
        uint64_t bit = 1ULL << d->type;
        uint32_t kept = 0, nreq = 0;
        for (uint32_t i = 0; i < d->nwritten; i++) {
                uint32_t slot = d->written[i];
                if (d->slot_types[slot] & bit) {
                        d->written[kept++] = slot;
                        nreq += (d->slot_req[slot] & bit) != 0;
                } else {
                        d->ev->slots[slot] = value_null();
                }
        }
        d->nwritten = kept;
        /* no conversion failed and every required slot was filled: only
         * the codes are left to check */
        const EventType *et = &d->s->types[d->type];
        if (d->nerr == 0 && nreq == d->type_nreq[d->type]) {
                for (uint32_t i = 0, left = d->type_nfmt[d->type]; left; i++) {
                        const Field *f = &et->fields[i];
                        if (!format_is_code(f->format))
                                continue;
                        left--;
                        DecodeReason r = format_check(d, f);
                        if (r != DECODE_OK)
                                return r;
                }
                return DECODE_OK;
        }
        for (uint32_t i = 0; i < et->nfields; i++) {
                DecodeReason r = field_check(d, &et->fields[i]);
                if (r != DECODE_OK)
                        return r;
        }
        return DECODE_OK;
}

DecodeReason decoder_decode(Decoder *d, const char *json, size_t len, DecodedEvent *ev)
{
        const Schema *s = d->s;
        Value *slots = ev->slots;

        /* restore the invariant: the array is all null */
        if (slots != d->last_slots) {
                if (s->nslots)
                        memset(slots, 0, (size_t)s->nslots * sizeof(*slots));
                d->last_slots = slots;
        } else {
                for (uint32_t i = 0; i < d->nkept; i++)
                        slots[d->written[i]] = value_null();
        }
        d->nkept = 0;

        if (++d->epoch == 0) { /* wrapped: forget every old mark */
                for (uint32_t i = 0; i < d->nnodes; i++)
                        d->nodes[i].epoch = 0;
                for (uint32_t i = 0; i < s->nslots; i++)
                        d->ss[i].epoch = 0;
                for (int r = 0; r < ENV_N; r++)
                        d->env[r].epoch = 0;
                d->epoch = 1;
        }
        d->ev = ev;
        d->nwritten = 0;
        d->nerr = 0;
        d->mask = d->all_types;
        d->type = -1;
        d->scratch_used = 0;
        ev->detail[0] = 0;
        ev->type = 0;
        ev->id = ev->enterprise = (Str){0};
        ev->time_ms = 0;
        ev->scratch_used = 0;

        DecodeReason r;
        if (len > d->max_bytes) {
                detail_set(d, "event is %zu bytes; the limit is %u", len, d->max_bytes);
                r = DECODE_TOO_LARGE;
                goto reject;
        }
        const uint8_t *p = (const uint8_t *)json, *end = p + len;
        d->start = p;
        d->end = end;
        p = ws_skip(p, end);
        if (p == end) {
                detail_set(d, "malformed JSON: empty document");
                r = DECODE_MALFORMED_JSON;
                goto reject;
        }
        bool object = *p == '{';
        if (object) {
                d->nodes[0].epoch = d->epoch;
                p = parse_object(d, p + 1, 0, 1);
        } else {
                p = parse_value(d, p, NONE, 0);
        }
        if (p) {
                p = ws_skip(p, end);
                if (p != end)
                        p = syntax_error(d, p, "trailing characters after the document");
        }
        if (!p) {
                r = DECODE_MALFORMED_JSON;
                goto reject;
        }
        if (!object) {
                detail_set(d, "the event is not a JSON object");
                r = DECODE_NOT_AN_OBJECT;
                goto reject;
        }
        r = decode_finish(d);
        if (r != DECODE_OK)
                goto reject;
        ev->type = (uint32_t)d->type;
        ev->id = d->env[ENV_ID].val;
        ev->enterprise = d->env[ENV_ENTERPRISE].val;
        ev->scratch_used = d->scratch_used;
        /* the invariant between calls: written[] lists each slot once at most */
        assert(d->nwritten <= s->nslots);
        assert(!ev->scratch || d->scratch_used <= ev->scratch_size);
        d->nkept = d->nwritten;
        return DECODE_OK;

reject:
        for (uint32_t i = 0; i < d->nwritten; i++)
                slots[d->written[i]] = value_null();
        ev->time_ms = 0;
        return r;
}
