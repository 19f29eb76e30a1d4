/*
 * The event decoder: one pass over the JSON bytes of one event, driven by
 * the compiled Schema, filling the event's slots and its envelope.
 *
 * A Decoder is built once per Schema (decoder_new) and then decodes any
 * number of events without allocating.  It borrows the Schema, which must
 * outlive it (the RuleSet holding the Schema is immutable and
 * reference-counted: keep a reference for the Decoder's lifetime).  A
 * Decoder is not thread-safe: one per consuming thread.
 *
 * What decoder_decode() guarantees:
 *
 *  - The whole document is checked against RFC 8259 before anything is
 *    accepted: grammar, numbers, string escapes, UTF-8 (no overlong forms,
 *    no surrogates, nothing above U+10FFFF), no raw control characters in
 *    strings, nesting depth, nothing but whitespace after the top-level
 *    object.  Unknown keys and arrays are validated and skipped.  A
 *    malformed document is rejected whole, never half-read.
 *  - Escaped "\uD800"-style lone surrogates are rejected as malformed (the
 *    decoded text must be valid UTF-8); "\u0000" is accepted (Str has a
 *    length, not a terminator).
 *  - Dotted schema paths ("enterprise.uscc") address members of nested
 *    objects.  Paths never descend into arrays; a field whose value is an
 *    array is wrong_type, except a category (below).  Keys are compared after unescaping.
 *  - A key that the schema reads (a field or envelope path) appearing twice
 *    is malformed_json: parsers disagree on which copy wins, and a rule must
 *    not see a different value than an auditor's tool.  Duplicates among
 *    ignored keys are tolerated.
 *  - The envelope (id, type, enterprise, time) may be anywhere in the
 *    document, also after the fields: values are matched for every event
 *    type that declares their path and the slots of the other types are
 *    nulled once the type is known.
 *  - The reason of a rejection does not depend on key order.  Precedence:
 *    too_large (document length), malformed_json, not_an_object, then the
 *    envelope (type, id, enterprise, time), then the fields of the event's
 *    type in declaration order.
 *
 * Field values by FieldType (anything else is wrong_type; JSON null is
 * VT_NULL for every type):
 *   FT_STR   string                          → VT_STR
 *   FT_NUM   number                          → VT_NUM (a finite double;
 *            beyond the double range is wrong_type)
 *   FT_BOOL  true / false                    → VT_BOOL
 *   FT_ENUM  string naming a value           → VT_ENUM index (an unknown
 *            value is wrong_type, the detail lists the valid ones)
 *   FT_TIME  RFC 3339 string (time_parse)    → VT_TIME (unparsable, or
 *            finer than a millisecond, is bad_timestamp)
 *   FT_DUR   duration string "30m", "12h"    → VT_DUR (duration_parse).
 *            Numbers are NOT accepted: a bare 45 could mean seconds or
 *            minutes ("duration_min": 45), so it is wrong_type; declare
 *            such fields as number instead.
 * A required field that is absent or null is missing_field.
 *
 * A category (Field.format FF_CATEGORY, schema type category) is an FT_STR
 * field that also takes a JSON list of 1 to CATEGORY_MAX_LEVELS non-empty
 * strings, the levels from broad to narrow: the slot gets them joined with
 * '/' ("肉制品/预制肉制品/…"), written to the scratch buffer (a scratch too
 * small is too_large).  A string is the path as written.  An empty list, too
 * many levels, an empty level, a level that is not a string or contains '/'
 * is wrong_type, the detail naming the level.  A path is a category for
 * every type declaring it or for none (decoder_new: -EINVAL).
 *
 * Codes (Field.format, the schema types uscc, license_no, sample_code) are
 * FT_STR fields whose string must also pass ident_check(); one that does
 * not is bad_identifier, the detail naming the field, the value and what
 * is wrong.  They are checked with the other fields, in declaration order,
 * after the whole event has been converted (so a wrong_type earlier in the
 * declaration still wins).  The envelope's enterprise id is checked the same
 * way when Envelope.enterprise_format is set (schema.yaml
 * envelope: enterprise: { path: enterprise.uscc, type: uscc }), right after
 * it is found present.
 *
 * Envelope: the id and the enterprise must be non-empty strings, the type a
 * string naming a schema type (else unknown_type), the time an RFC 3339
 * string (else bad_timestamp).  Absent, null or "" is missing_field; another
 * JSON kind is wrong_type.
 *
 * Strings: a Str points into the input when the JSON string has no escapes,
 * otherwise into the caller's scratch buffer where it was unescaped.  Both
 * must stay alive (and unchanged) while the event's values are used.  An
 * unescaped string that does not fit in the scratch left is too_large
 * (unescaped text is never longer than its JSON form, so a scratch buffer
 * of max_bytes can never overflow).
 */
#ifndef RISKD_DECODE_H
#define RISKD_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "include/riskd/rules.h"
#include "include/riskd/value.h"

/* The outcome of decoding one event; the names are the dead-letter reasons
 * (the engine's own follow them: ENGINE_REJECT_LIST in engine.h).  The one
 * list the enum, decode_reason_str, the engine's names and riskctl test's
 * vocabulary are made from. */
#define DECODE_REASON_LIST(X) \
        X(DECODE_OK, "ok") \
        X(DECODE_MALFORMED_JSON, "malformed_json") \
        X(DECODE_NOT_AN_OBJECT, "not_an_object")    /* valid JSON, not an object */ \
        X(DECODE_MISSING_FIELD, "missing_field")    /* envelope or required field */ \
        X(DECODE_WRONG_TYPE, "wrong_type")          /* wrong JSON kind, unknown enum value */ \
        X(DECODE_UNKNOWN_TYPE, "unknown_type")      /* type not in the schema */ \
        X(DECODE_BAD_TIMESTAMP, "bad_timestamp")    /* not RFC 3339, or finer than 1 ms */ \
        X(DECODE_TOO_LARGE, "too_large")            /* document or scratch */ \
        X(DECODE_BAD_IDENTIFIER, "bad_identifier")  /* a code that is not one (ident_check) */

typedef enum DecodeReason {
#define X(e, name) e,
        DECODE_REASON_LIST(X)
#undef X
        DECODE_NREASON
} DecodeReason;

#define DECODE_REASON_MAX (DECODE_NREASON - 1)

/* "ok", "malformed_json", ...; "unknown" for a value out of range. */
const char *decode_reason_str(DecodeReason r);

#define DECODER_MAX_BYTES_DEFAULT (1u << 20)
#define DECODER_MAX_BYTES_LIMIT (1u << 30)
#define DECODER_MAX_DEPTH_DEFAULT 64u
#define DECODER_MAX_DEPTH_LIMIT 512u

/* A zero member takes its default. */
typedef struct DecoderLimits {
        uint32_t max_bytes;    /* longest accepted document, ≤ DECODER_MAX_BYTES_LIMIT */
        uint32_t max_depth;    /* deepest nesting of objects and arrays (the
                                * top-level object is 1), ≤ DECODER_MAX_DEPTH_LIMIT */
} DecoderLimits;

typedef struct Decoder Decoder;

/*
 * Compile the path lookup for s.  lim may be NULL (defaults).  Returns 0
 * and sets *ret; -EINVAL when the limits are out of range or the schema is
 * inconsistent (a field's slot out of range or of another FieldType, an
 * enum field without its EnumDef, an empty path segment, a missing envelope
 * path, more than RULES_MAX_TYPES types, type ids not 0..ntypes-1).
 */
int decoder_new(Decoder **ret, const Schema *s, const DecoderLimits *lim);
/* Accepts NULL; returns NULL. */
Decoder *decoder_free(Decoder *d);

/*
 * One event.  The caller sets the first three members; decoder_decode sets
 * the rest.
 */
typedef struct DecodedEvent {
        /* in */
        Value *slots;          /* [schema->nslots]: see decoder_decode() */
        char *scratch;         /* unescaped strings go here; may be NULL */
        uint32_t scratch_size;

        /* out, valid on DECODE_OK */
        uint32_t type;         /* EventType.id */
        Str id;
        Str enterprise;
        int64_t time_ms;       /* event time, ms since the epoch, UTC */
        uint32_t scratch_used; /* bytes of scratch holding this event's strings */

        /* out, on a rejection: a one-line human reason naming the field,
         * e.g. "field temp_c: expected a number, got a string"; valid UTF-8,
         * "" on DECODE_OK */
        char detail[160];
} DecodedEvent;

/*
 * Decode json[0..len) (no terminator needed) into ev.
 *
 * On DECODE_OK every slot of the event's type holds its value or VT_NULL,
 * and every other slot is VT_NULL.  On a rejection every slot is VT_NULL
 * and ev->detail says why.
 *
 * The slot array is the caller's and meant to be reused: the decoder
 * remembers which slots it filled in the array of its last call and clears
 * only those when it gets the same array again (any other array is cleared
 * whole).  So the caller must not store into the array between calls, and
 * one array belongs to one Decoder at a time.
 *
 * Never allocates; never fails other than with a DecodeReason.
 */
DecodeReason decoder_decode(Decoder *d, const char *json, size_t len, DecodedEvent *ev);

/*
 * Is s[0..n) a valid code of format f?  0 when it is (always for FF_NONE
 * and FF_CATEGORY, which the decoder checks while reading the value);
 * -EINVAL when not, with what is wrong written to why[0..size) (one short
 * English phrase, e.g. "check character should be 2").  Never allocates;
 * a few table lookups per character.
 *
 *  FF_USCC         18 characters of 0-9 A-H J-N P-R T-U W-Y (GB 32100-2015:
 *                  no I, O, S, V, Z; upper case only), characters 3-8 digits
 *                  (the administrative division code), character 18 the
 *                  check character: the weights 3^(i-1) mod 31 over the
 *                  first 17 values, C18 = 31 - (sum mod 31), 31 giving 0.
 *                  The organisation code's own GB 11714 check (character
 *                  17) is not checked: C18 covers all 17 characters and
 *                  catches every single-character error and every swap of
 *                  neighbours, and the code as registered is what counts.
 *  FF_LICENSE      "SC" + 14 digits (食品生产许可证) or "JY" + 14 digits
 *                  (食品经营许可证).  The licence's last digit is a check
 *                  digit whose rule is not published: not checked.
 *  FF_SAMPLE_CODE  "DC" (食品) or "NCP" (食用农产品) + 2-digit year + 6-digit
 *                  area code + 9-digit serial, digits only (19 or 20
 *                  characters), as the national sampling system prints them.
 */
int ident_check(FieldFormat f, const char *s, size_t n, char *why, size_t size);

/*
 * The decoder's number conversion, usable on its own: s[0..n) must be
 * exactly one JSON number (RFC 8259 grammar).  Correctly rounded (the same
 * double as strtod in the C locale, whatever the process locale): a fast
 * exact path when the significant digits form an integer ≤ 2^53 and the
 * power of ten is within ±22 (Clinger), strtod_l in the C locale otherwise.
 * Returns 0 and sets *ret; -EINVAL for anything that is not a JSON number;
 * -ERANGE when it is beyond the double range (underflow rounds to 0).
 */
int decode_number_parse(const char *s, size_t n, double *ret);

#endif
