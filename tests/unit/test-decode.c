/*
 * Unit tests of the event decoder (src/codec/decode.c).
 *
 * The schema compiler is not used: the Schema is built by hand below
 * (schema_setup), the way src/rules/schema.c lays it out: one slot per
 * distinct (path, FieldType, EnumDef), shared by the types declaring it.
 *
 * Test schema (envelope: event_id, event_type, enterprise.uscc, occurred_at):
 *   coldchain   device_id str (required), temp_c num (required), setpoint_c
 *               num, door_open bool, asset_type enum, reading_at time,
 *               window dur, product.name str, note str
 *   sampling    sample_id str (required), result enum (required),
 *               product.name str (shares coldchain's slot), temp_c str (same
 *               path as coldchain's, another FieldType: another slot),
 *               confirmed bool
 *   enterprise  name str, product str (a leaf where coldchain has an
 *               object), category enum
 *   inspection  no fields
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "include/riskd/decode.h"
#include "include/riskd/util.h"

/* ---- a hand-built schema ---- */

typedef struct TField {
        const char *path;
        FieldType type;
        const EnumDef *en;
        bool required;
} TField;

static Arena ar;
static Schema S;
static EnumDef *E_ASSET, *E_RESULT, *E_CATEGORY;
static uint32_t T_COLD, T_SAMPLING, T_ENTERPRISE, T_INSPECTION;

static EnumDef *enum_make(const char *name, const char *const *vals, uint32_t n)
{
        EnumDef *e = arena_alloc(&ar, sizeof(*e));
        e->name = arena_strdup(&ar, name);
        e->values = arena_alloc(&ar, n * sizeof(char *));
        for (uint32_t i = 0; i < n; i++)
                e->values[i] = arena_strdup(&ar, vals[i]);
        e->nvalues = n;
        S.enums[S.nenums++] = e;
        return e;
}

static uint32_t slot_of(const char *path, FieldType t, const EnumDef *en)
{
        for (uint32_t i = 0; i < S.nslots; i++)
                if (S.slot_type[i] == t && S.slot_enum[i] == en && strcmp(S.slot_path[i], path) == 0)
                        return i;
        uint32_t i = S.nslots++;
        S.slot_type[i] = t;
        S.slot_enum[i] = en;
        S.slot_path[i] = arena_strdup(&ar, path);
        return i;
}

static uint32_t type_make(const char *name, const TField *fs, uint32_t n)
{
        EventType *et = &S.types[S.ntypes];
        et->name = arena_strdup(&ar, name);
        et->id = S.ntypes;
        et->fields = arena_alloc(&ar, (n + 1) * sizeof(Field));
        for (uint32_t i = 0; i < n; i++) {
                Field *f = &et->fields[et->nfields++];
                f->path = arena_strdup(&ar, fs[i].path);
                f->type = fs[i].type;
                f->en = fs[i].en;
                f->required = fs[i].required;
                uint32_t nseg = 1;
                for (const char *p = f->path; *p; p++)
                        nseg += *p == '.';
                f->segs = arena_alloc(&ar, nseg * sizeof(char *));
                const char *st = f->path;
                for (const char *p = f->path;; p++)
                        if (*p == '.' || !*p) {
                                f->segs[f->nsegs++] = arena_strndup(&ar, st, (size_t)(p - st));
                                st = p + 1;
                                if (!*p)
                                        break;
                        }
                f->slot = slot_of(f->path, f->type, f->en);
        }
        return S.ntypes++;
}

static void schema_setup(void)
{
        arena_init(&ar);
        memset(&S, 0, sizeof(S));
        S.env.id = "event_id";
        S.env.type = "event_type";
        S.env.enterprise = "enterprise.uscc";
        S.env.time = "occurred_at";
        S.profile_type = -1;
        S.types = arena_alloc(&ar, RULES_MAX_TYPES * sizeof(EventType));
        S.slot_type = arena_alloc(&ar, RULES_MAX_SLOTS * sizeof(FieldType));
        S.slot_enum = arena_alloc(&ar, RULES_MAX_SLOTS * sizeof(EnumDef *));
        S.slot_path = arena_alloc(&ar, RULES_MAX_SLOTS * sizeof(char *));
        S.enums = arena_alloc(&ar, 16 * sizeof(EnumDef *));

        static const char *const asset[] = {"cold_room", "reefer_truck", "display_cabinet", "container"};
        static const char *const result[] = {"pass", "fail"};
        static const char *const category[] = {"dairy", "infant_formula", "meat", "速冻食品", "乳制品", "婴幼儿配方食品",
                                               "肉制品", "白酒", "食用油", "饮料", "保健食品", "餐饮服务", "学校食堂"};
        E_ASSET = enum_make("coldchain.asset_type", asset, 4);
        E_RESULT = enum_make("sampling.result", result, 2);
        E_CATEGORY = enum_make("category", category, ARRAY_SIZE(category));

        const TField cold[] = {
                {"device_id", FT_STR, NULL, true},
                {"temp_c", FT_NUM, NULL, true},
                {"setpoint_c", FT_NUM, NULL, false},
                {"door_open", FT_BOOL, NULL, false},
                {"asset_type", FT_ENUM, E_ASSET, false},
                {"reading_at", FT_TIME, NULL, false},
                {"window", FT_DUR, NULL, false},
                {"product.name", FT_STR, NULL, false},
                {"note", FT_STR, NULL, false},
        };
        const TField sampling[] = {
                {"sample_id", FT_STR, NULL, true},
                {"result", FT_ENUM, E_RESULT, true},
                {"product.name", FT_STR, NULL, false},
                {"temp_c", FT_STR, NULL, false},
                {"confirmed", FT_BOOL, NULL, false},
        };
        const TField enterprise[] = {
                {"name", FT_STR, NULL, false},
                {"product", FT_STR, NULL, false},
                {"category", FT_ENUM, E_CATEGORY, false},
        };
        T_COLD = type_make("coldchain", cold, ARRAY_SIZE(cold));
        T_SAMPLING = type_make("sampling", sampling, ARRAY_SIZE(sampling));
        T_ENTERPRISE = type_make("enterprise", enterprise, ARRAY_SIZE(enterprise));
        T_INSPECTION = type_make("inspection", NULL, 0);
}

/* slot of field path in type t */
static uint32_t SL(uint32_t t, const char *path)
{
        const EventType *et = &S.types[t];
        for (uint32_t i = 0; i < et->nfields; i++)
                if (strcmp(et->fields[i].path, path) == 0)
                        return et->fields[i].slot;
        cr_assert_fail("no field %s in %s", path, et->name);
        return 0;
}

/* ---- fixture ---- */

static Decoder *D;
static Value slots[RULES_MAX_SLOTS];
static char scratch[4096];
static DecodedEvent ev;

static void setup(void)
{
        schema_setup();
        cr_assert_eq(decoder_new(&D, &S, NULL), 0);
        ev = (DecodedEvent){.slots = slots, .scratch = scratch, .scratch_size = sizeof(scratch)};
}

static void teardown(void)
{
        D = decoder_free(D);
        arena_deinit(&ar);
}

static DecodeReason dec(const char *json)
{
        return decoder_decode(D, json, strlen(json), &ev);
}

static bool str_is(Str s, const char *want)
{
        return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static bool in_range(const char *p, const char *base, size_t n)
{
        return p >= base && p < base + n;
}

static void assert_all_null(void)
{
        for (uint32_t i = 0; i < S.nslots; i++)
                cr_assert_eq(slots[i].tag, VT_NULL, "slot %u (%s) is not null", i, S.slot_path[i]);
}

#define ENV_COLD "\"event_id\":\"e-1\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"91410104MA9X\"}," \
                 "\"occurred_at\":\"2025-03-02T10:15:00+08:00\""
#define COLD(fields) "{" ENV_COLD "," fields "}"
#define COLD_MIN(extra) COLD("\"device_id\":\"D1\",\"temp_c\":3.5," extra)

TestSuite(decode, .init = setup, .fini = teardown);

/* ---- the happy path ---- */

Test(decode, coldchain_all_fields)
{
        const char *j = COLD("\"device_id\":\"CR-0042\",\"temp_c\":-15.25,\"setpoint_c\":-18,\"door_open\":false,"
                             "\"asset_type\":\"reefer_truck\",\"reading_at\":\"2025-03-02T09:00:00.250+08:00\","
                             "\"window\":\"30m\",\"product\":{\"name\":\"速冻水饺\",\"batch\":\"B7\"},"
                             "\"note\":null,\"humidity_pct\":80");
        cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
        cr_assert_str_eq(ev.detail, "");
        cr_assert_eq(ev.type, T_COLD);
        cr_assert(str_is(ev.id, "e-1"));
        cr_assert(str_is(ev.enterprise, "91410104MA9X"));
        cr_assert_eq(ev.time_ms, 1740881700000LL);
        Value *v = &slots[SL(T_COLD, "device_id")];
        cr_assert_eq(v->tag, VT_STR);
        cr_assert(str_is(v->s, "CR-0042"));
        cr_assert(in_range(v->s.p, j, strlen(j)), "an unescaped string points into the input");
        v = &slots[SL(T_COLD, "temp_c")];
        cr_assert_eq(v->tag, VT_NUM);
        cr_assert_eq(v->n, -15.25);
        cr_assert_eq(slots[SL(T_COLD, "setpoint_c")].n, -18.0);
        cr_assert_eq(slots[SL(T_COLD, "door_open")].tag, VT_BOOL);
        cr_assert_eq(slots[SL(T_COLD, "door_open")].b, false);
        cr_assert_eq(slots[SL(T_COLD, "asset_type")].tag, VT_ENUM);
        cr_assert_eq(slots[SL(T_COLD, "asset_type")].e, 1);
        cr_assert_eq(slots[SL(T_COLD, "reading_at")].tag, VT_TIME);
        cr_assert_eq(slots[SL(T_COLD, "reading_at")].ms, 1740877200250LL);
        cr_assert_eq(slots[SL(T_COLD, "window")].tag, VT_DUR);
        cr_assert_eq(slots[SL(T_COLD, "window")].ms, 30 * 60 * 1000);
        cr_assert(str_is(slots[SL(T_COLD, "product.name")].s, "速冻水饺"));
        cr_assert_eq(slots[SL(T_COLD, "note")].tag, VT_NULL);
        cr_assert_eq(ev.scratch_used, 0);
        /* sampling-only slots stay null */
        cr_assert_eq(slots[SL(T_SAMPLING, "sample_id")].tag, VT_NULL);
        cr_assert_eq(slots[SL(T_SAMPLING, "temp_c")].tag, VT_NULL);
}

Test(decode, optional_fields_absent_are_null)
{
        cr_assert_eq(dec(COLD_MIN("\"x\":1")), DECODE_OK, "%s", ev.detail);
        for (uint32_t i = 0; i < S.nslots; i++)
                if (i != SL(T_COLD, "device_id") && i != SL(T_COLD, "temp_c"))
                        cr_assert_eq(slots[i].tag, VT_NULL, "slot %s", S.slot_path[i]);
}

Test(decode, type_without_fields)
{
        cr_assert_eq(dec("{\"event_id\":\"i1\",\"event_type\":\"inspection\",\"enterprise\":{\"uscc\":\"E\"},"
                         "\"occurred_at\":\"2025-01-01T00:00:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.type, T_INSPECTION);
        cr_assert_eq(ev.time_ms, 1735689600000LL);
        assert_all_null();
}

Test(decode, whitespace_everywhere)
{
        const char *j = " \t\r\n{ \"event_id\" : \"e\" ,\n\"event_type\"\t:\"coldchain\" , \"enterprise\" : { \"uscc\" : "
                        "\"U\" } , \"occurred_at\":\"2025-03-02T10:15:00+08:00\",\"device_id\" :\"D\", \"temp_c\" : 1e2 ,"
                        "\"door_open\" : true , \"a\" : [ 1 , { } , [ ] , \"x\" , null ] } \r\n\t ";
        cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "temp_c")].n, 100.0);
        cr_assert_eq(slots[SL(T_COLD, "door_open")].b, true);
}

/* ---- the envelope ---- */

Test(decode, envelope_after_fields)
{
        const char *first = COLD("\"device_id\":\"D9\",\"temp_c\":7.5,\"asset_type\":\"container\",\"product\":{\"name\":\"牛奶\"}");
        const char *last = "{\"product\":{\"name\":\"牛奶\"},\"asset_type\":\"container\",\"temp_c\":7.5,\"device_id\":\"D9\","
                           "\"occurred_at\":\"2025-03-02T10:15:00+08:00\",\"enterprise\":{\"uscc\":\"91410104MA9X\"},"
                           "\"event_id\":\"e-1\",\"event_type\":\"coldchain\"}";
        Value a[RULES_MAX_SLOTS];
        cr_assert_eq(dec(first), DECODE_OK, "%s", ev.detail);
        memcpy(a, slots, S.nslots * sizeof(Value));
        DecodedEvent e1 = ev;
        cr_assert_eq(dec(last), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.type, e1.type);
        cr_assert_eq(ev.time_ms, e1.time_ms);
        cr_assert(str_is(ev.id, "e-1"));
        cr_assert(str_is(ev.enterprise, "91410104MA9X"));
        for (uint32_t i = 0; i < S.nslots; i++) {
                cr_assert_eq(slots[i].tag, a[i].tag, "slot %s", S.slot_path[i]);
                if (a[i].tag == VT_STR)
                        cr_assert(slots[i].s.len == a[i].s.len && memcmp(slots[i].s.p, a[i].s.p, a[i].s.len) == 0);
                else if (a[i].tag != VT_NULL)
                        cr_assert_eq(slots[i].ms, a[i].ms, "slot %s", S.slot_path[i]);
        }
        cr_assert_eq(slots[SL(T_COLD, "asset_type")].e, 3);
}

Test(decode, envelope_nested_deep_paths)
{
        Schema s2 = S;
        s2.env.id = "meta.ids.event";
        s2.env.type = "meta.kind";
        s2.env.enterprise = "subject.enterprise.uscc";
        s2.env.time = "meta.times.occurred";
        Decoder *d2;
        cr_assert_eq(decoder_new(&d2, &s2, NULL), 0);
        const char *j = "{\"device_id\":\"D\",\"temp_c\":2,"
                        "\"subject\":{\"name\":\"x\",\"enterprise\":{\"name\":\"某某乳业\",\"uscc\":\"USCC1\"}},"
                        "\"meta\":{\"times\":{\"recorded\":\"r\",\"occurred\":\"2025-03-02T10:15:00+08:00\"},"
                        "\"ids\":{\"event\":\"EV\"},\"kind\":\"coldchain\"}}";
        cr_assert_eq(decoder_decode(d2, j, strlen(j), &ev), DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(ev.id, "EV"));
        cr_assert(str_is(ev.enterprise, "USCC1"));
        cr_assert_eq(ev.time_ms, 1740881700000LL);
        cr_assert_eq(ev.type, T_COLD);
        /* the old top-level envelope keys mean nothing to this schema */
        const char *k = COLD_MIN("\"z\":0");
        cr_assert_eq(decoder_decode(d2, k, strlen(k), &ev), DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event type (meta.kind)");
        decoder_free(d2);
}

Test(decode, envelope_missing_each)
{
        cr_assert_eq(dec("{\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},\"occurred_at\":\"2025-03-02T10:15:00Z\","
                         "\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event id (event_id)");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"enterprise\":{\"uscc\":\"U\"},\"occurred_at\":\"2025-03-02T10:15:00Z\"}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event type (event_type)");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"name\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing enterprise (enterprise.uscc)");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event time (occurred_at)");
        /* null and "" count as missing */
        cr_assert_eq(dec("{\"event_id\":null,\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event id (event_id)");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing enterprise (enterprise.uscc)");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":null,\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\"}"),
                     DECODE_MISSING_FIELD);
        cr_assert_eq(dec("{}"), DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event type (event_type)");
        assert_all_null();
}

Test(decode, envelope_wrong_kinds)
{
        cr_assert_eq(dec("{\"event_id\":7,\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "event id (event_id): expected a string, got a number");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":[\"coldchain\"],\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\"}"),
                     DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "event type (event_type): expected a string, got an array");
        /* the enterprise path leads through a non-object: absent */
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":\"U\","
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MISSING_FIELD);
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":{\"v\":1}},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "enterprise (enterprise.uscc): expected a string, got an object");
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":1740881700,\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "event time (occurred_at): expected an RFC 3339 time string, got a number");
        assert_all_null();
}

Test(decode, unknown_type)
{
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchian\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_UNKNOWN_TYPE);
        cr_assert_str_eq(ev.detail, "unknown event type \"coldchian\"");
        cr_assert_str_eq(decode_reason_str(DECODE_UNKNOWN_TYPE), "unknown_type");
        /* case matters; an escaped spelling of a real name is that name */
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"Coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\"}"),
                     DECODE_UNKNOWN_TYPE);
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"cold\\u0063hain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.type, T_COLD);
}

Test(decode, bad_timestamp)
{
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-02-30T10:15:00+08:00\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_BAD_TIMESTAMP);
        cr_assert_str_eq(ev.detail, "event time (occurred_at): bad timestamp \"2025-02-30T10:15:00+08:00\", "
                                    "expected RFC 3339 like 2025-03-02T10:15:00+08:00");
        cr_assert_eq(dec(COLD_MIN("\"reading_at\":\"yesterday\"")), DECODE_BAD_TIMESTAMP);
        cr_assert_str_eq(ev.detail, "field reading_at: bad timestamp \"yesterday\", expected RFC 3339 like "
                                    "2025-03-02T10:15:00+08:00");
        cr_assert_eq(dec(COLD_MIN("\"reading_at\":1740881700000")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field reading_at: expected an RFC 3339 time string, got a number");
        assert_all_null();
}

/* Times are whole milliseconds: a finer fraction is refused, not cut (cut,
 * .0004 and .0001 would be the same instant and a window edge would count
 * them wrong); zeros beyond the millisecond are the same time. */
Test(decode, sub_millisecond_times)
{
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00.0004Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_BAD_TIMESTAMP);
        cr_assert_str_eq(ev.detail, "event time (occurred_at): bad timestamp \"2025-03-02T10:15:00.0004Z\": finer "
                                    "than a millisecond (digits after the third decimal must be 0)");
        cr_assert_eq(dec(COLD_MIN("\"reading_at\":\"2025-03-02T10:15:00.123456+08:00\"")), DECODE_BAD_TIMESTAMP);
        cr_assert_str_eq(ev.detail, "field reading_at: bad timestamp \"2025-03-02T10:15:00.123456+08:00\": finer "
                                    "than a millisecond (digits after the third decimal must be 0)");
        assert_all_null();
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00.123000000Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.time_ms, 1740910500123LL);
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00.1230Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.time_ms, 1740910500123LL);
}

/* ---- fields ---- */

Test(decode, wrong_type_messages)
{
        cr_assert_eq(dec(COLD("\"device_id\":\"D\",\"temp_c\":\"5\"")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field temp_c: expected a number, got a string");
        cr_assert_eq(dec(COLD_MIN("\"door_open\":1")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field door_open: expected a bool, got a number");
        cr_assert_eq(dec(COLD_MIN("\"door_open\":\"false\"")), DECODE_WRONG_TYPE);
        cr_assert_eq(dec(COLD("\"device_id\":42,\"temp_c\":1")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field device_id: expected a string, got a number");
        cr_assert_eq(dec(COLD_MIN("\"note\":[\"a\"]")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field note: expected a string, got an array");
        cr_assert_eq(dec(COLD_MIN("\"note\":{\"a\":1}")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field note: expected a string, got an object");
        cr_assert_eq(dec(COLD_MIN("\"note\":true")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field note: expected a string, got a bool");
        cr_assert_eq(dec(COLD_MIN("\"asset_type\":3")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field asset_type: expected an enum string, got a number");
        /* the path product.name reaches through a non-object: absent, not wrong */
        cr_assert_eq(dec(COLD_MIN("\"product\":\"x\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "product.name")].tag, VT_NULL);
}

Test(decode, first_error_in_declaration_order)
{
        /* device_id is declared before temp_c: its error wins in any key order */
        const char *a = COLD("\"temp_c\":\"x\",\"device_id\":1");
        const char *b = COLD("\"device_id\":1,\"temp_c\":\"x\"");
        cr_assert_eq(dec(a), DECODE_WRONG_TYPE);
        char da[160];
        strcpy(da, ev.detail);
        cr_assert_eq(dec(b), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, da);
        cr_assert_str_eq(da, "field device_id: expected a string, got a number");
        /* envelope problems come before field problems, whatever the order */
        cr_assert_eq(dec("{\"temp_c\":\"x\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\"}"),
                     DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing event id (event_id)");
        /* syntax beats everything */
        cr_assert_eq(dec("{\"temp_c\":\"x\",\"event_type\":\"nope\",\"a\":01}"), DECODE_MALFORMED_JSON);
}

Test(decode, required_fields)
{
        cr_assert_eq(dec(COLD("\"temp_c\":1")), DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing required field device_id");
        cr_assert_eq(dec(COLD("\"device_id\":null,\"temp_c\":1")), DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "required field device_id is null");
        cr_assert_eq(dec(COLD("\"device_id\":\"D\"")), DECODE_MISSING_FIELD);
        cr_assert_str_eq(ev.detail, "missing required field temp_c");
        /* an empty string is a value */
        cr_assert_eq(dec(COLD("\"device_id\":\"\",\"temp_c\":0")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "device_id")].tag, VT_STR);
        cr_assert_eq(slots[SL(T_COLD, "device_id")].s.len, 0);
        /* required fields of other types do not matter */
        cr_assert_eq(dec(COLD_MIN("\"sample_id\":null")), DECODE_OK, "%s", ev.detail);
}

Test(decode, enums)
{
        static const char *const names[] = {"cold_room", "reefer_truck", "display_cabinet", "container"};
        for (int i = 0; i < 4; i++) {
                char j[512];
                snprintf(j, sizeof(j), COLD_MIN("\"asset_type\":\"%s\""), names[i]);
                cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
                cr_assert_eq(slots[SL(T_COLD, "asset_type")].tag, VT_ENUM);
                cr_assert_eq(slots[SL(T_COLD, "asset_type")].e, i);
        }
        cr_assert_eq(dec(COLD_MIN("\"asset_type\":\"freezer\"")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field asset_type: \"freezer\" is not one of cold_room, reefer_truck, "
                                    "display_cabinet, container");
        /* prefixes and case do not match */
        cr_assert_eq(dec(COLD_MIN("\"asset_type\":\"cold\"")), DECODE_WRONG_TYPE);
        cr_assert_eq(dec(COLD_MIN("\"asset_type\":\"Cold_room\"")), DECODE_WRONG_TYPE);
        cr_assert_eq(dec(COLD_MIN("\"asset_type\":\"\"")), DECODE_WRONG_TYPE);
        /* an escaped spelling is unescaped first */
        cr_assert_eq(dec(COLD_MIN("\"asset_type\":\"cold\\u005froom\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "asset_type")].e, 0);
        /* Chinese enum values */
        const char *e = "{\"event_id\":\"e\",\"event_type\":\"enterprise\",\"enterprise\":{\"uscc\":\"U\"},"
                        "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"category\":\"速冻食品\"}";
        cr_assert_eq(dec(e), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_ENTERPRISE, "category")].e, 3);
        /* sampling.result and asset_type are different enums */
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"sample_id\":\"S\",\"result\":\"cold_room\"}"),
                     DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field result: \"cold_room\" is not one of pass, fail");
}

Test(decode, enum_detail_truncated_on_utf8_boundary)
{
        /* a long Chinese value: the excerpt is cut and marked; the list of valid
         * values overflows the detail, which stays valid UTF-8 */
        char j[1024];
        snprintf(j, sizeof(j),
                 "{\"event_id\":\"e\",\"event_type\":\"enterprise\",\"enterprise\":{\"uscc\":\"U\"},"
                 "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"category\":\"%s\"}",
                 "冷冻冷藏食品速冻米面制品速冻调制食品速冻肉制品");
        cr_assert_eq(dec(j), DECODE_WRONG_TYPE);
        cr_assert(strstr(ev.detail, "...\" is not one of dairy"), "%s", ev.detail);
        cr_assert_eq(utf8_len(ev.detail, strlen(ev.detail)) > 0, true);
        /* every multi-byte sequence in the detail is complete */
        const unsigned char *p = (const unsigned char *)ev.detail;
        for (size_t i = 0; p[i];) {
                size_t n = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : 2;
                for (size_t k = 1; k < n; k++)
                        cr_assert_eq(p[i + k] & 0xc0, 0x80, "broken UTF-8 at %zu in %s", i, ev.detail);
                i += n;
        }
        cr_assert_geq(strlen(ev.detail), sizeof(ev.detail) - 4, "the detail was truncated: %s", ev.detail);
}

Test(decode, durations)
{
        cr_assert_eq(dec(COLD_MIN("\"window\":\"12h\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "window")].ms, 12 * 3600 * 1000LL);
        cr_assert_eq(dec(COLD_MIN("\"window\":\"500ms\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "window")].ms, 500);
        cr_assert_eq(dec(COLD_MIN("\"window\":30")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field window: expected a duration string like \"30m\", got a number");
        cr_assert_eq(dec(COLD_MIN("\"window\":\"3x\"")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field window: \"3x\" is not a duration (like \"30m\", \"12h\", \"500ms\")");
}

Test(decode, numbers_in_fields)
{
        static const struct {
                const char *txt;
                double want;
        } cases[] = {
                {"0", 0.0}, {"-0", -0.0}, {"3", 3.0}, {"-3.75", -3.75}, {"1e2", 100.0}, {"1E+2", 100.0},
                {"25e-1", 2.5}, {"0.1", 0.1}, {"123456789012345678", 123456789012345678.0},
                {"9007199254740993", 9007199254740992.0}, {"1.7976931348623157e308", 1.7976931348623157e308},
                {"5e-324", 5e-324}, {"1e-400", 0.0}, {"0.000000000000000000000000001", 1e-27},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char j[512];
                snprintf(j, sizeof(j), COLD("\"device_id\":\"D\",\"temp_c\":%s"), cases[i].txt);
                cr_assert_eq(dec(j), DECODE_OK, "%s: %s", cases[i].txt, ev.detail);
                double got = slots[SL(T_COLD, "temp_c")].n;
                cr_assert(memcmp(&got, &cases[i].want, sizeof(double)) == 0, "%s: got %.17g", cases[i].txt, got);
        }
        cr_assert_eq(dec(COLD("\"device_id\":\"D\",\"temp_c\":1e400")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field temp_c: number out of range");
        cr_assert_eq(dec(COLD("\"device_id\":\"D\",\"temp_c\":-1e309")), DECODE_WRONG_TYPE);
        /* a huge number in an ignored key is valid JSON */
        cr_assert_eq(dec(COLD_MIN("\"big\":1e99999")), DECODE_OK, "%s", ev.detail);
        /* a very long number takes the slow path through the decoder's buffer */
        char j[2048], num[1200];
        memset(num, '1', 1000);
        strcpy(num + 1000, ".5e-990");
        snprintf(j, sizeof(j), COLD("\"device_id\":\"D\",\"temp_c\":%s"), num);
        cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
        double want = strtod(num, NULL);
        cr_assert_eq(slots[SL(T_COLD, "temp_c")].n, want);
}

/* ---- strings ---- */

Test(decode, escapes_unescaped)
{
        const char *j = COLD_MIN("\"note\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\\u0000f\\u00e9\\u901f\\ud83d\\ude00\"");
        cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
        Str s = slots[SL(T_COLD, "note")].s;
        static const char want[] = "a\"b\\c/d\b\f\n\r\te\0f\xc3\xa9\xe9\x80\x9f\xf0\x9f\x98\x80";
        cr_assert_eq(s.len, sizeof(want) - 1);
        cr_assert(memcmp(s.p, want, s.len) == 0);
        cr_assert(in_range(s.p, scratch, sizeof(scratch)), "an escaped string is unescaped into the scratch");
        cr_assert_eq(ev.scratch_used, s.len);
        /* an unescaped neighbour still points into the input */
        cr_assert(in_range(slots[SL(T_COLD, "device_id")].s.p, j, strlen(j)));
}

Test(decode, chinese_text)
{
        const char *j = COLD_MIN("\"note\":\"冷库门未关闭，温度超过-18℃ 😀\",\"product\":{\"name\":\"\\u901f\\u51bb\\u6c34\\u997a\"}");
        cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(slots[SL(T_COLD, "note")].s, "冷库门未关闭，温度超过-18℃ 😀"));
        cr_assert(str_is(slots[SL(T_COLD, "product.name")].s, "速冻水饺"));
        cr_assert_eq(ev.scratch_used, strlen("速冻水饺"));
        /* keys in Chinese are fine too (ignored) */
        cr_assert_eq(dec(COLD_MIN("\"备注\":\"无\"")), DECODE_OK, "%s", ev.detail);
}

Test(decode, escaped_keys_match)
{
        cr_assert_eq(dec(COLD("\"device\\u005fid\":\"D\",\"temp\\u005Fc\":4.5")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(slots[SL(T_COLD, "temp_c")].n, 4.5);
        cr_assert(str_is(slots[SL(T_COLD, "device_id")].s, "D"));
        /* an escaped key longer than any schema segment is simply unknown */
        cr_assert_eq(dec(COLD_MIN("\"\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
                                  "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\":1")),
                     DECODE_OK, "%s", ev.detail);
}

Test(decode, scratch_overflow_is_too_large)
{
        char small[8];
        ev.scratch = small;
        ev.scratch_size = sizeof(small);
        cr_assert_eq(dec(COLD_MIN("\"note\":\"\\u00e9\\u00e9\\u00e9\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.scratch_used, 6);
        cr_assert_eq(dec(COLD_MIN("\"note\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"")), DECODE_TOO_LARGE);
        cr_assert_str_eq(ev.detail, "field note: unescaped strings exceed the 8-byte scratch buffer");
        assert_all_null();
        /* the scratch is shared by the event's strings */
        cr_assert_eq(dec(COLD("\"device_id\":\"\\u00e9\\u00e9\\u00e9\",\"temp_c\":1,\"note\":\"\\u00e9\\u00e9\"")),
                     DECODE_TOO_LARGE);
        /* with the type known first, other types' strings are not unescaped */
        ev.scratch = scratch;
        ev.scratch_size = sizeof(scratch);
        cr_assert_eq(dec(COLD_MIN("\"sample_id\":\"\\u00e9\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.scratch_used, 0);
        /* escaped strings nobody reads need no scratch */
        ev.scratch = NULL;
        ev.scratch_size = 0;
        cr_assert_eq(dec(COLD_MIN("\"other\":\"\\u00e9\\n\"")), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(dec(COLD_MIN("\"note\":\"\\n\"")), DECODE_TOO_LARGE);
        cr_assert_eq(dec("{\"event_id\":\"\\u0041\"}"), DECODE_MISSING_FIELD, "envelope precedence: type first");
        cr_assert_str_eq(ev.detail, "missing event type (event_type)");
        cr_assert_eq(dec("{\"event_id\":\"\\u0041\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_TOO_LARGE);
        cr_assert_str_eq(ev.detail, "event id (event_id): unescaped strings exceed the 0-byte scratch buffer");
}

/* ---- malformed documents ---- */

static void expect_malformed(const char *frag, size_t fraglen)
{
        /* inside an ignored key of an otherwise valid event: validation only */
        char j[1024];
        const char *pre = "{" ENV_COLD ",\"device_id\":\"D\",\"temp_c\":1,\"junk\":";
        size_t n = strlen(pre);
        memcpy(j, pre, n);
        memcpy(j + n, frag, fraglen);
        n += fraglen;
        j[n++] = '}';
        DecodeReason r = decoder_decode(D, j, n, &ev);
        cr_assert_eq(r, DECODE_MALFORMED_JSON, "accepted (%s): %.*s", decode_reason_str(r), (int)fraglen, frag);
        cr_assert(strncmp(ev.detail, "malformed JSON", 14) == 0, "%s", ev.detail);
        assert_all_null();
}

#define MALFORMED(lit) expect_malformed(lit, sizeof(lit) - 1)

Test(decode, malformed_values)
{
        /* numbers */
        MALFORMED("01");
        MALFORMED("-01");
        MALFORMED("00");
        MALFORMED("1.");
        MALFORMED(".5");
        MALFORMED("-");
        MALFORMED("+1");
        MALFORMED("1e");
        MALFORMED("1e+");
        MALFORMED("1.e5");
        MALFORMED("0x10");
        MALFORMED("1_000");
        MALFORMED("NaN");
        MALFORMED("Infinity");
        MALFORMED("-Infinity");
        /* literals */
        MALFORMED("tru");
        MALFORMED("True");
        MALFORMED("nul");
        MALFORMED("falsey");
        MALFORMED("undefined");
        /* strings: escapes */
        MALFORMED("\"\\x\"");
        MALFORMED("\"\\u12\"");
        MALFORMED("\"\\u12G4\"");
        MALFORMED("\"\\U0041\"");
        MALFORMED("\"\\'\"");
        MALFORMED("\"abc\\\"");
        MALFORMED("'single'");
        /* lone surrogates */
        MALFORMED("\"\\ud800\"");
        MALFORMED("\"\\udc00\"");
        MALFORMED("\"\\ud800\\u0041\"");
        MALFORMED("\"\\ud800x\"");
        MALFORMED("\"\\ud800\\ud800\"");
        MALFORMED("\"\\ude00\\ud83d\"");
        /* raw control characters */
        MALFORMED("\"a\nb\"");
        MALFORMED("\"a\tb\"");
        expect_malformed("\"a\0b\"", 5);
        MALFORMED("\"\x1f\"");
        /* invalid UTF-8 */
        MALFORMED("\"\x80\"");
        MALFORMED("\"\xbf\"");
        MALFORMED("\"\xc0\xaf\"");                /* overlong '/' */
        MALFORMED("\"\xc1\xbf\"");
        MALFORMED("\"\xe0\x80\xaf\"");            /* overlong */
        MALFORMED("\"\xe0\x9f\xbf\"");
        MALFORMED("\"\xed\xa0\x80\"");            /* UTF-8 encoded surrogate */
        MALFORMED("\"\xed\xbf\xbf\"");
        MALFORMED("\"\xf0\x80\x80\xaf\"");        /* overlong */
        MALFORMED("\"\xf0\x8f\xbf\xbf\"");
        MALFORMED("\"\xf4\x90\x80\x80\"");        /* above U+10FFFF */
        MALFORMED("\"\xf5\x80\x80\x80\"");
        MALFORMED("\"\xff\"");
        MALFORMED("\"\xe4\xb8\"");                /* truncated 中 */
        MALFORMED("\"\xe4\"");
        MALFORMED("\"\xe4\xb8\x41\"");
        MALFORMED("\"\xf0\x9f\x98\"");
        MALFORMED("\"abcdefgh\xe4\xb8\"");        /* past the 8-byte fast loop */
        /* structure */
        MALFORMED("[1,]");
        MALFORMED("[,1]");
        MALFORMED("[1 2]");
        MALFORMED("[");
        MALFORMED("]");
        MALFORMED("{\"a\":1,}");
        MALFORMED("{,}");
        MALFORMED("{\"a\"}");
        MALFORMED("{\"a\" 1}");
        MALFORMED("{a:1}");
        MALFORMED("{\"a\":1 \"b\":2}");
        MALFORMED("{1:2}");
        MALFORMED("/* c */ 1");
        MALFORMED("");
}

Test(decode, malformed_keys)
{
        /* a bad key at the top level, where keys are looked up */
        static const char *const docs[] = {
                "{\"a\x80\":1}", "{\"a\\x\":1}", "{\"\\ud800\":1}", "{\"a\nb\":1}", "{\"device_id\" \"D\"}",
                "{\"temp_c\":1,,\"x\":2}", "{\"temp_c\":}", "{\"temp_c\":1}}", "{\"temp_c\":1]",
        };
        for (size_t i = 0; i < ARRAY_SIZE(docs); i++)
                cr_assert_eq(dec(docs[i]), DECODE_MALFORMED_JSON, "%s", docs[i]);
}

Test(decode, accepted_edge_values)
{
        static const char *const frags[] = {
                "\"\\u00e9\\/\\b\"", "\"\x7f\"", "\"\xf4\x8f\xbf\xbf\"", "\"\xef\xbf\xbf\"", "\"\xee\x80\x80\"",
                "\"\xed\x9f\xbf\"", "\"\\ud83d\\ude00\"", "\"\\uDBFF\\uDFFF\"", "\"\\u0000\"", "{\"\":1}",
                "[[],{},[{}]]", "-0", "0.0e-0", "1E+2", "-1.5e-3", "123456789012345678901234567890", "\"\"",
                "[true,false,null]", "{\"a\":{\"a\":{\"a\":1}},\"a\":2}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(frags); i++) {
                char j[512];
                snprintf(j, sizeof(j), COLD_MIN("\"junk\":%s"), frags[i]);
                cr_assert_eq(dec(j), DECODE_OK, "%s: %s", frags[i], ev.detail);
        }
}

Test(decode, every_truncation_is_malformed)
{
        const char *j = COLD("\"device_id\":\"CR-42\",\"temp_c\":-15.25,\"door_open\":false,\"note\":\"\\u901f冻\","
                             "\"arr\":[1,{\"k\":null},true],\"product\":{\"name\":\"x\"}");
        size_t n = strlen(j);
        cr_assert_eq(decoder_decode(D, j, n, &ev), DECODE_OK, "%s", ev.detail);
        for (size_t k = 0; k < n; k++) {
                DecodeReason r = decoder_decode(D, j, k, &ev);
                cr_assert_eq(r, DECODE_MALFORMED_JSON, "prefix of %zu bytes: %s", k, decode_reason_str(r));
                assert_all_null();
        }
}

Test(decode, malformed_detail_has_offset)
{
        cr_assert_eq(dec("{\"a\":01}"), DECODE_MALFORMED_JSON);
        cr_assert_str_eq(ev.detail, "malformed JSON at byte 5: leading zero in a number");
        cr_assert_eq(dec("{\"a\":1,}"), DECODE_MALFORMED_JSON);
        cr_assert_str_eq(ev.detail, "malformed JSON at byte 7: expected a key string");
        cr_assert_eq(dec("{\"a\":\"x"), DECODE_MALFORMED_JSON);
        cr_assert_str_eq(ev.detail, "malformed JSON at byte 7: unterminated string (truncated?)");
        cr_assert_eq(dec("{} x"), DECODE_MALFORMED_JSON);
        cr_assert_str_eq(ev.detail, "malformed JSON at byte 3: trailing characters after the document");
        cr_assert_eq(dec("  "), DECODE_MALFORMED_JSON);
        cr_assert_str_eq(ev.detail, "malformed JSON: empty document");
        cr_assert_eq(decoder_decode(D, NULL, 0, &ev), DECODE_MALFORMED_JSON);
}

Test(decode, trailing_garbage)
{
        cr_assert_eq(dec(COLD_MIN("\"x\":1") " "), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(dec(COLD_MIN("\"x\":1") "x"), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec(COLD_MIN("\"x\":1") "{}"), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec(COLD_MIN("\"x\":1") "}"), DECODE_MALFORMED_JSON);
        const char *j = COLD_MIN("\"x\":1");
        char buf[512];
        size_t n = strlen(j);
        memcpy(buf, j, n);
        buf[n] = 0; /* an embedded NUL after the object is garbage too */
        cr_assert_eq(decoder_decode(D, buf, n + 1, &ev), DECODE_MALFORMED_JSON);
}

/* An event whose deepest nesting is depth (the top-level object is 1). */
static char *nest(uint32_t depth, bool objects)
{
        Buf b = {0};
        buf_puts(&b, "{" ENV_COLD ",\"device_id\":\"D\",\"temp_c\":1,\"deep\":");
        uint32_t inner = depth - 1; /* containers below the top-level object */
        for (uint32_t i = 0; i < inner; i++)
                buf_puts(&b, objects ? (i + 1 < inner ? "{\"k\":" : "{") : "[");
        for (uint32_t i = 0; i < inner; i++)
                buf_putc(&b, objects ? '}' : ']');
        buf_putc(&b, '}');
        return b.p;
}

Test(decode, nesting_depth)
{
        for (int k = 0; k < 2; k++) {
                char *ok = nest(64, k), *deep = nest(65, k);
                cr_assert_eq(dec(ok), DECODE_OK, "%s depth 64: %s", k ? "objects" : "arrays", ev.detail);
                cr_assert_eq(dec(deep), DECODE_MALFORMED_JSON, "%s depth 65", k ? "objects" : "arrays");
                cr_assert(strstr(ev.detail, "nesting too deep"), "%s", ev.detail);
                free(ok);
                free(deep);
        }
        /* a configured limit */
        Decoder *d2;
        cr_assert_eq(decoder_new(&d2, &S, &(DecoderLimits){.max_depth = 3}), 0);
        const char *j3 = COLD_MIN("\"a\":[[1]]");
        const char *j4 = COLD_MIN("\"a\":[[[1]]]");
        cr_assert_eq(decoder_decode(d2, j3, strlen(j3), &ev), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(decoder_decode(d2, j4, strlen(j4), &ev), DECODE_MALFORMED_JSON);
        decoder_free(d2);
        /* very deep input does not recurse past the limit */
        Buf b = {0};
        for (int i = 0; i < 100000; i++)
                buf_putc(&b, '[');
        cr_assert_eq(decoder_decode(D, b.p, b.len, &ev), DECODE_MALFORMED_JSON);
        buf_free(&b);
}

Test(decode, duplicate_keys)
{
        cr_assert_eq(dec(COLD("\"device_id\":\"D\",\"temp_c\":3,\"temp_c\":30")), DECODE_MALFORMED_JSON);
        cr_assert(strstr(ev.detail, "duplicate key"), "%s", ev.detail);
        cr_assert_eq(dec(COLD("\"device_id\":\"D\",\"temp_c\":3,\"temp\\u005fc\":30")), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec(COLD_MIN("\"event_type\":\"sampling\"")), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"coldchain\",\"enterprise\":{\"uscc\":\"U\",\"uscc\":\"V\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1}"),
                     DECODE_MALFORMED_JSON);
        /* a duplicate of a key the schema reads for another type only: still ambiguous */
        cr_assert_eq(dec(COLD_MIN("\"sample_id\":\"a\",\"sample_id\":\"b\"")), DECODE_MALFORMED_JSON);
        assert_all_null();
        /* duplicates of ignored keys are tolerated */
        cr_assert_eq(dec(COLD_MIN("\"x\":1,\"x\":2,\"y\":{\"a\":1,\"a\":2}")), DECODE_OK, "%s", ev.detail);
        /* an intermediate object may repeat when no leaf repeats */
        cr_assert_eq(dec("{\"enterprise\":{\"name\":\"x\"},\"event_id\":\"e\",\"event_type\":\"coldchain\","
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"device_id\":\"D\",\"temp_c\":1,"
                         "\"enterprise\":{\"uscc\":\"U\"}}"),
                     DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(ev.enterprise, "U"));
        /* ...but product is itself a leaf (enterprise.product), so it may not */
        cr_assert_eq(dec(COLD_MIN("\"product\":{\"batch\":1},\"product\":{\"name\":\"n\"}")),
                     DECODE_MALFORMED_JSON);
        /* the same key in different objects is no duplicate */
        cr_assert_eq(dec(COLD_MIN("\"x\":{\"temp_c\":1,\"device_id\":2}")), DECODE_OK, "%s", ev.detail);
}

Test(decode, arrays_not_descended)
{
        cr_assert_eq(dec(COLD("\"items\":[{\"device_id\":\"ZZ\",\"temp_c\":99}],\"device_id\":\"D\",\"temp_c\":1")),
                     DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(slots[SL(T_COLD, "device_id")].s, "D"));
        cr_assert_eq(slots[SL(T_COLD, "temp_c")].n, 1.0);
        cr_assert_eq(dec(COLD("\"items\":[{\"device_id\":\"ZZ\",\"temp_c\":99}]")), DECODE_MISSING_FIELD);
        /* nested objects at unknown keys are not matched either */
        cr_assert_eq(dec(COLD("\"x\":{\"device_id\":\"ZZ\",\"temp_c\":99}")), DECODE_MISSING_FIELD);
}

/* ---- types sharing the document ---- */

Test(decode, not_an_object)
{
        static const char *const docs[] = {"[1,2]", "\"x\"", "42", "null", "true", " [] ", "[{\"event_id\":\"e\"}]"};
        for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
                cr_assert_eq(dec(docs[i]), DECODE_NOT_AN_OBJECT, "%s", docs[i]);
                cr_assert_str_eq(ev.detail, "the event is not a JSON object");
        }
        /* malformed beats not-an-object */
        cr_assert_eq(dec("[1,"), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec("42 x"), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec("[01]"), DECODE_MALFORMED_JSON);
}

Test(decode, too_large)
{
        Decoder *d2;
        cr_assert_eq(decoder_new(&d2, &S, &(DecoderLimits){.max_bytes = 180}), 0);
        const char *j = COLD_MIN("\"n\":\"");
        char buf[512];
        size_t n = strlen(j) - 1; /* without the closing brace */
        memcpy(buf, j, n);
        while (n < 178)
                buf[n++] = 'x';
        buf[n++] = '"';
        buf[n++] = '}';
        cr_assert_eq(n, 180);
        cr_assert_eq(decoder_decode(d2, buf, n, &ev), DECODE_OK, "%s", ev.detail);
        buf[n - 1] = ' ';
        buf[n++] = '}';
        cr_assert_eq(decoder_decode(d2, buf, n, &ev), DECODE_TOO_LARGE);
        cr_assert_str_eq(ev.detail, "event is 181 bytes; the limit is 180");
        /* even when malformed: the length is checked first */
        memset(buf, '[', 200);
        cr_assert_eq(decoder_decode(d2, buf, 200, &ev), DECODE_TOO_LARGE);
        cr_assert_eq(decoder_decode(d2, buf, 180, &ev), DECODE_MALFORMED_JSON);
        cr_assert_str_eq(decode_reason_str(DECODE_TOO_LARGE), "too_large");
        decoder_free(d2);
}

Test(decode, shared_path_different_types)
{
        /* temp_c: a number for coldchain, a string for sampling */
        const char *samp_first = "{\"event_type\":\"sampling\",\"event_id\":\"s\",\"enterprise\":{\"uscc\":\"U\"},"
                                 "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"sample_id\":\"S1\",\"result\":\"fail\","
                                 "\"temp_c\":\"ambient\",\"product\":{\"name\":\"奶粉\"},\"device_id\":\"D\"}";
        const char *samp_last = "{\"temp_c\":\"ambient\",\"product\":{\"name\":\"奶粉\"},\"device_id\":\"D\","
                                "\"sample_id\":\"S1\",\"result\":\"fail\",\"event_id\":\"s\",\"enterprise\":{\"uscc\":\"U\"},"
                                "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"event_type\":\"sampling\"}";
        const char *docs[] = {samp_first, samp_last};
        for (int i = 0; i < 2; i++) {
                cr_assert_eq(dec(docs[i]), DECODE_OK, "%d: %s", i, ev.detail);
                cr_assert_eq(ev.type, T_SAMPLING);
                cr_assert(str_is(slots[SL(T_SAMPLING, "temp_c")].s, "ambient"));
                cr_assert_eq(slots[SL(T_SAMPLING, "result")].e, 1);
                cr_assert(str_is(slots[SL(T_SAMPLING, "product.name")].s, "奶粉"));
                cr_assert_eq(SL(T_SAMPLING, "product.name"), SL(T_COLD, "product.name"), "one shared slot");
                cr_assert_neq(SL(T_SAMPLING, "temp_c"), SL(T_COLD, "temp_c"));
                /* coldchain's slots did not keep what they matched */
                cr_assert_eq(slots[SL(T_COLD, "temp_c")].tag, VT_NULL, "%d", i);
                cr_assert_eq(slots[SL(T_COLD, "device_id")].tag, VT_NULL, "%d", i);
        }
        /* and the other way round: a coldchain number is wrong for nobody but coldchain */
        cr_assert_eq(dec("{\"temp_c\":\"ambient\",\"device_id\":\"D\",\"event_id\":\"c\",\"enterprise\":{\"uscc\":\"U\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"event_type\":\"coldchain\"}"),
                     DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field temp_c: expected a number, got a string");
        assert_all_null();
}

Test(decode, leaf_and_object_on_one_path)
{
        /* enterprise.product is a string; coldchain's product is an object with name */
#define ENT_PRODUCT(v) "{\"event_id\":\"e\",\"event_type\":\"enterprise\",\"enterprise\":{\"uscc\":\"U\"}," \
                          "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"product\":" v "}"
        cr_assert_eq(dec(ENT_PRODUCT("\"乳制品\"")), DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(slots[SL(T_ENTERPRISE, "product")].s, "乳制品"));
        cr_assert_eq(dec(ENT_PRODUCT("{\"name\":\"x\"}")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field product: expected a string, got an object");
        /* for coldchain the object is right, and enterprise's error is none of its business */
        cr_assert_eq(dec("{\"product\":{\"name\":\"x\"},\"device_id\":\"D\",\"temp_c\":1,\"event_id\":\"c\","
                         "\"enterprise\":{\"uscc\":\"U\"},\"occurred_at\":\"2025-03-02T10:15:00Z\",\"event_type\":\"coldchain\"}"),
                     DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(slots[SL(T_COLD, "product.name")].s, "x"));
        cr_assert_eq(slots[SL(T_ENTERPRISE, "product")].tag, VT_NULL);
}

Test(decode, no_leak_between_events)
{
        const char *cold = COLD("\"device_id\":\"D\",\"temp_c\":-20,\"door_open\":true,\"asset_type\":\"container\","
                                "\"note\":\"n\",\"product\":{\"name\":\"p\"}");
        const char *samp = "{\"event_id\":\"s\",\"event_type\":\"sampling\",\"enterprise\":{\"uscc\":\"U\"},"
                           "\"occurred_at\":\"2025-03-02T10:15:00Z\",\"sample_id\":\"S1\",\"result\":\"pass\"}";
        const char *insp = "{\"event_id\":\"i\",\"event_type\":\"inspection\",\"enterprise\":{\"uscc\":\"U\"},"
                           "\"occurred_at\":\"2025-03-02T10:15:00Z\"}";
        for (int round = 0; round < 3; round++) {
                cr_assert_eq(dec(cold), DECODE_OK, "%s", ev.detail);
                cr_assert_eq(slots[SL(T_COLD, "door_open")].tag, VT_BOOL);
                cr_assert_eq(dec(samp), DECODE_OK, "%s", ev.detail);
                /* nothing of the coldchain event survives in the reused array */
                for (uint32_t i = 0; i < S.nslots; i++)
                        if (i != SL(T_SAMPLING, "sample_id") && i != SL(T_SAMPLING, "result"))
                                cr_assert_eq(slots[i].tag, VT_NULL, "round %d slot %s", round, S.slot_path[i]);
                cr_assert_eq(dec(cold), DECODE_OK);
                cr_assert_eq(dec(insp), DECODE_OK, "%s", ev.detail);
                assert_all_null();
                cr_assert_eq(dec(cold), DECODE_OK);
                cr_assert_eq(dec("{\"bad\":"), DECODE_MALFORMED_JSON);
                assert_all_null();
        }
        /* a fresh array full of garbage is cleared */
        Value other[RULES_MAX_SLOTS];
        memset(other, 0x5a, sizeof(other));
        ev.slots = other;
        cr_assert_eq(dec(samp), DECODE_OK, "%s", ev.detail);
        for (uint32_t i = 0; i < S.nslots; i++)
                if (i != SL(T_SAMPLING, "sample_id") && i != SL(T_SAMPLING, "result"))
                        cr_assert_eq(other[i].tag, VT_NULL, "slot %s", S.slot_path[i]);
        /* and back to the first array, which still holds the inspection's (nothing) */
        ev.slots = slots;
        cr_assert_eq(dec(cold), DECODE_OK);
        cr_assert_eq(slots[SL(T_SAMPLING, "sample_id")].tag, VT_NULL);
        cr_assert_eq(slots[SL(T_COLD, "note")].tag, VT_STR);
}

Test(decode, many_events_stable)
{
        /* the per-event marks (epochs) must not confuse consecutive events */
        const char *a = COLD_MIN("\"note\":\"x\"");
        const char *b = COLD_MIN("\"setpoint_c\":2");
        for (int i = 0; i < 20000; i++) {
                cr_assert_eq(dec(i & 1 ? a : b), DECODE_OK);
                cr_assert_eq(slots[SL(T_COLD, "note")].tag, i & 1 ? VT_STR : VT_NULL);
                cr_assert_eq(slots[SL(T_COLD, "setpoint_c")].tag, i & 1 ? VT_NULL : VT_NUM);
        }
}

/* ---- the API ---- */

Test(decode, reason_names)
{
        static const char *const want[] = {"ok", "malformed_json", "not_an_object", "missing_field", "wrong_type",
                                           "unknown_type", "bad_timestamp", "too_large", "bad_identifier"};
        for (int r = 0; r <= DECODE_REASON_MAX; r++)
                cr_assert_str_eq(decode_reason_str((DecodeReason)r), want[r]);
        cr_assert_str_eq(decode_reason_str((DecodeReason)99), "unknown");
        cr_assert_str_eq(decode_reason_str((DecodeReason)-1), "unknown");
}

Test(decode, new_rejects_bad_schemas)
{
        Decoder *d2 = (Decoder *)0x1;
        cr_assert_eq(decoder_new(&d2, &S, &(DecoderLimits){.max_depth = DECODER_MAX_DEPTH_LIMIT + 1}), -EINVAL);
        cr_assert_eq(decoder_new(&d2, &S, &(DecoderLimits){.max_bytes = DECODER_MAX_BYTES_LIMIT + 1}), -EINVAL);
        cr_assert_eq(d2, (Decoder *)0x1, "*ret untouched on failure");

        Schema s2 = S;
        s2.env.time = NULL;
        cr_assert_eq(decoder_new(&d2, &s2, NULL), -EINVAL);
        s2 = S;
        s2.env.enterprise = "enterprise..uscc";
        cr_assert_eq(decoder_new(&d2, &s2, NULL), -EINVAL);

        Field *f = &S.types[T_COLD].fields[0];
        uint32_t slot = f->slot;
        f->slot = S.nslots;
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL, "slot out of range");
        f->slot = SL(T_COLD, "temp_c");
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL, "slot of another FieldType");
        f->slot = SL(T_SAMPLING, "sample_id");
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL, "one slot, two paths");
        f->slot = slot;
        char *path = f->path;
        f->path = (char *)"a.";
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL);
        f->path = path;
        S.types[1].id = 7;
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL);
        S.types[1].id = 1;
        cr_assert_eq(decoder_new(&d2, &S, NULL), 0);
        decoder_free(d2);
        cr_assert_null(decoder_free(NULL));
}

/* ---- number conversion vs strtod ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static size_t rnd_number(char *out)
{
        size_t n = 0;
        if (rnd() & 1)
                out[n++] = '-';
        unsigned form = rnd() % 6;
        if (form == 0) { /* printed doubles: the round trip must be exact */
                union {
                        uint64_t u;
                        double d;
                } x;
                do
                        x.u = rnd();
                while (!isfinite(x.d));
                double v = fabs(x.d);
                switch (rnd() % 6) { /* %.6f of 1e308: 316 bytes */
                case 0: snprintf(out + n, 400, "%.17g", v); break;
                case 1: snprintf(out + n, 400, "%.15g", v); break;
                case 2: snprintf(out + n, 400, "%.6f", v); break;
                case 3: snprintf(out + n, 400, "%.3e", v); break;
                case 4: snprintf(out + n, 400, "%.1f", v); break;
                default: snprintf(out + n, 400, "%.20g", v); break;
                }
                return strlen(out);
        }
        unsigned nint = 1 + rnd() % (form == 1 ? 25 : 10);
        for (unsigned i = 0; i < nint; i++)
                out[n++] = (char)('0' + (i == 0 && nint > 1 ? 1 + rnd() % 9 : rnd() % 10));
        if (nint == 1 && rnd() % 3 == 0)
                out[n - 1] = '0';
        if (form >= 2) {
                out[n++] = '.';
                unsigned nfrac = 1 + rnd() % (form == 5 ? 30 : 12);
                for (unsigned i = 0; i < nfrac; i++)
                        out[n++] = (char)('0' + rnd() % 10);
        }
        if (form >= 3) {
                out[n++] = rnd() & 1 ? 'e' : 'E';
                unsigned s = rnd() % 3;
                if (s)
                        out[n++] = s == 1 ? '+' : '-';
                n += (size_t)snprintf(out + n, 8, "%u", (unsigned)(rnd() % (form == 4 ? 30 : 340)));
        }
        out[n] = 0;
        return n;
}

Test(decode, number_parse_matches_strtod)
{
        locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        cr_assert_not_null(c);
        unsigned bad = 0, n_ok = 0;
        char first[1200] = "";
        for (int i = 0; i < 300000; i++) {
                char s[512];
                size_t n = rnd_number(s);
                double want = strtod_l(s, NULL, c), got;
                int r = decode_number_parse(s, n, &got);
                if (isinf(want)) {
                        if (r != -ERANGE && !bad++)
                                snprintf(first, sizeof(first), "%s: r=%d, want -ERANGE", s, r);
                        continue;
                }
                if (r != 0 || memcmp(&got, &want, sizeof(double)) != 0) {
                        if (!bad++)
                                snprintf(first, sizeof(first), "%s: r=%d got %.17g want %.17g", s, r, got, want);
                } else {
                        n_ok++;
                }
        }
        freelocale(c);
        cr_assert_eq(bad, 0, "%u mismatches, first %s", bad, first);
        cr_assert_gt(n_ok, 250000);
}

Test(decode, number_parse_cases)
{
        static const struct {
                const char *s;
                double want;
        } ok[] = {
                {"0", 0.0}, {"-0", -0.0}, {"0.1", 0.1}, {"1e23", 1e23}, {"8.98846567431158e307", 8.98846567431158e307},
                {"9007199254740993", 9007199254740992.0}, {"9007199254740995", 9007199254740996.0},
                {"18446744073709551616", 18446744073709551616.0}, {"2.2250738585072011e-308", 2.2250738585072011e-308},
                {"4.9406564584124654e-324", 5e-324}, {"1e-400", 0.0}, {"-1e-400", -0.0}, {"1.5e30", 1.5e30},
                {"123456789e22", 123456789e22}, {"0.30000000000000004", 0.30000000000000004},
                {"100000000000000000000000", 1e23}, {"1.7976931348623157e308", 1.7976931348623157e308},
                {"0.000001e6", 1.0}, {"1000000e-6", 1.0},
        };
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
                double got = 42;
                cr_assert_eq(decode_number_parse(ok[i].s, strlen(ok[i].s), &got), 0, "%s", ok[i].s);
                cr_assert(memcmp(&got, &ok[i].want, sizeof(double)) == 0, "%s: got %.17g", ok[i].s, got);
        }
        double x;
        cr_assert_eq(decode_number_parse("1e309", 5, &x), -ERANGE);
        cr_assert_eq(decode_number_parse("-1.8e308", 8, &x), -ERANGE);
        static const char *const bad[] = {"", "-", "01", "1.", ".1", "+1", "1e", "1e+", " 1", "1 ", "0x10", "inf",
                                          "nan", "1,5", "--1", "1e5.5"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                cr_assert_eq(decode_number_parse(bad[i], strlen(bad[i]), &x), -EINVAL, "'%s'", bad[i]);
        /* the length bounds the number: no terminator is read */
        cr_assert_eq(decode_number_parse("12345", 2, &x), 0);
        cr_assert_eq(x, 12.0);
}

Test(decode, number_parse_ignores_locale)
{
        /* strtod in a comma-decimal locale would stop at '.'; ours must not */
        if (!setlocale(LC_NUMERIC, "de_DE.UTF-8") && !setlocale(LC_NUMERIC, "fr_FR.UTF-8"))
                cr_skip_test("no comma-decimal locale installed");
        double x;
        cr_assert_eq(decode_number_parse("1.25", 4, &x), 0);
        cr_assert_eq(x, 1.25);
        cr_assert_eq(decode_number_parse("3.14159265358979323846264338327950288", 37, &x), 0, "slow path");
        cr_assert_eq(x, 3.141592653589793);
        setlocale(LC_NUMERIC, "C");
}

/* ---- keys outside the schema ---- */

/* A decoder learns keys outside the schema (nodes without slots, up to a
 * budget) so that key prediction covers them; what it decodes must not
 * change.  Events whose keys come in shifting orders, with unknown keys
 * (more of them than the budget, some repeated, nested, escaped, or not
 * ASCII) decode as a fresh decoder decodes each one. */
Test(decode, unknown_keys_learnt_change_nothing)
{
        static const char *const parts[] = {
                "\"device_id\":\"CR-7\"", "\"temp_c\":-3.5", "\"door_open\":true", "\"asset_type\":\"cold_room\"",
                "\"schema_version\":\"1.0\"", "\"recorded_at\":\"2025-03-02T10:15:01+08:00\"",
                "\"source_system\":{\"name\":\"iot\",\"site\":[1,2,{\"x\":null}]}", "\"x\\u0041y\":1",
                "\"温度\":\"二号库\"", "\"device_id\":\"dup\"", "\"note\":\"a\"", "\"note\":\"b\"",
        };
        Decoder *fresh = NULL;
        uint64_t seed = 9;
        for (int i = 0; i < 400; i++) {
                char j[2048];
                size_t n = (size_t)snprintf(j, sizeof(j), "{" ENV_COLD);
                for (int k = 0; k < 6; k++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        uint32_t r = (uint32_t)(seed >> 33);
                        if (r % 5 == 0) /* a key never seen before: beyond the budget soon */
                                n += (size_t)snprintf(j + n, sizeof(j) - n, ",\"k%d_%d\":%d", i, k, k);
                        else
                                n += (size_t)snprintf(j + n, sizeof(j) - n, ",%s",
                                                      parts[r % (sizeof(parts) / sizeof(parts[0]))]);
                }
                snprintf(j + n, sizeof(j) - n, "}");
                DecodeReason want_rc;
                Value want[RULES_MAX_SLOTS];
                char want_scratch[4096];
                DecodedEvent want_ev = {.slots = want, .scratch = want_scratch, .scratch_size = sizeof(want_scratch)};
                cr_assert_eq(decoder_new(&fresh, &S, NULL), 0);
                want_rc = decoder_decode(fresh, j, strlen(j), &want_ev);
                DecodeReason rc = dec(j);
                cr_assert_eq(rc, want_rc, "event %d: %s", i, j);
                for (uint32_t s = 0; s < S.nslots; s++) {
                        int c = 0;
                        bool same = slots[s].tag == want[s].tag &&
                                    (slots[s].tag == VT_NULL || (value_cmp(&slots[s], &want[s], &c) && c == 0));
                        cr_assert(same, "event %d, slot %s differs: %s", i, S.slot_path[s], j);
                }
                fresh = decoder_free(fresh);
        }
}

/* ---- codes: uscc, license_no, sample_code (ident_check, bad_identifier) ---- */

static const char *why_of(FieldFormat f, const char *v)
{
        static char why[112];
        why[0] = 0;
        return ident_check(f, v, strlen(v), why, sizeof(why)) == 0 ? NULL : why;
}

Test(decode, uscc_check_character)
{
        /* valid: the example story's enterprises and the two the issue
         * corrects (…3X → …32, …5Q → …5W), a check character of value 0 (31 - 0 → 0) */
        static const char *const good[] = {"91410184MAX3GNEK20", "91410122MAP528JT85", "91410106MAH6JRP26H",
                                           "91410105MA9F8K2L32", "91410122MA9G7H6J5W", "91350100M000100Y43",
                                           "92410100MA00000220"};
        for (size_t i = 0; i < ARRAY_SIZE(good); i++)
                cr_assert_null(why_of(FF_USCC, good[i]), "%s: %s", good[i], why_of(FF_USCC, good[i]));
        cr_assert_str_eq(why_of(FF_USCC, "91410105MA9F8K2L3X"), "check character should be 2");
        cr_assert_str_eq(why_of(FF_USCC, "91410122MA9G7H6J5Q"), "check character should be W");
        /* every single-character change of a valid code is caught */
        char c[19] = "91410184MAX3GNEK20";
        static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
        for (int i = 0; i < 18; i++)
                for (const char *a = alphabet; *a; a++) {
                        char keep = c[i];
                        if (*a == keep)
                                continue;
                        c[i] = *a;
                        cr_assert_not_null(why_of(FF_USCC, c), "%s passed", c);
                        c[i] = keep;
                }
        /* and every swap of two different neighbours */
        for (int i = 0; i < 17; i++) {
                if (c[i] == c[i + 1])
                        continue;
                char t = c[i];
                c[i] = c[i + 1];
                c[i + 1] = t;
                cr_assert_not_null(why_of(FF_USCC, c), "%s passed", c);
                c[i + 1] = c[i];
                c[i] = t;
        }
}

Test(decode, uscc_malformed)
{
        cr_assert_str_eq(why_of(FF_USCC, "91410184MAX3GNEK2"), "a USCC has 18 characters, not 17");
        cr_assert_str_eq(why_of(FF_USCC, "91410184MAX3GNEK200"), "a USCC has 18 characters, not 19");
        cr_assert_str_eq(why_of(FF_USCC, ""), "a USCC has 18 characters, not 0");
        cr_assert_str_eq(why_of(FF_USCC, "E1"), "a USCC has 18 characters, not 2");
        /* characters, not bytes */
        cr_assert_str_eq(why_of(FF_USCC, "91410184MAX3GNEK2\xc3\xa9"),
                         "character 18, '\xc3\xa9', is not in the USCC alphabet (0-9, A-Z without I O S V Z)");
        cr_assert_str_eq(why_of(FF_USCC, "\xe7\xbb\x9f\xe4\xb8\x80"), "a USCC has 18 characters, not 2");
        cr_assert_str_eq(why_of(FF_USCC, "91410184maX3GNEK20"),
                         "character 9, 'm', is not in the USCC alphabet (letters are upper case)");
        cr_assert_str_eq(why_of(FF_USCC, "91410184MAX3GNEKI0"),
                         "character 17, 'I', is not in the USCC alphabet (0-9, A-Z without I O S V Z)");
        for (const char *x = "IOSVZ"; *x; x++) {
                char c[19] = "91410184MAX3GNEK20";
                c[12] = *x;
                cr_assert_not_null(strstr(why_of(FF_USCC, c), "is not in the USCC alphabet"), "%s", c);
        }
        cr_assert_str_eq(why_of(FF_USCC, "9141A184MAX3GNEK20"),
                         "character 5, 'A', is in the area code (characters 3-8): digits only");
        cr_assert_str_eq(why_of(FF_USCC, "91410184MAX3GNEK2 "),
                         "character 18, byte 0x20, is not in the USCC alphabet (0-9, A-Z without I O S V Z)");
        cr_assert_str_eq(why_of(FF_USCC, "91410184\xe4\xb8\x80X3GNEK2"),
                         "character 9, byte 0xe4, is not in the USCC alphabet (0-9, A-Z without I O S V Z)");
}

Test(decode, license_and_sample_codes)
{
        cr_assert_null(why_of(FF_LICENSE, "SC10541018400375"));
        cr_assert_null(why_of(FF_LICENSE, "JY14101220045678"));
        cr_assert_null(why_of(FF_NONE, "anything"));
        cr_assert_str_eq(why_of(FF_LICENSE, "JY141"), "JY is followed by 14 digits");
        cr_assert_str_eq(why_of(FF_LICENSE, "SC1054101840037X"), "SC is followed by 14 digits");
        cr_assert_str_eq(why_of(FF_LICENSE, "SC105410184003751"), "SC is followed by 14 digits");
        cr_assert_str_eq(why_of(FF_LICENSE, "sc10541018400375"),
                         "a licence number starts with SC (production) or JY (operation)");
        cr_assert_str_eq(why_of(FF_LICENSE, "XK10541018400375"),
                         "a licence number starts with SC (production) or JY (operation)");
        cr_assert_str_eq(why_of(FF_LICENSE, ""), "a licence number starts with SC (production) or JY (operation)");

        cr_assert_null(why_of(FF_SAMPLE_CODE, "DC19130400463233437"));
        cr_assert_null(why_of(FF_SAMPLE_CODE, "DC25000000000000044"));
        cr_assert_null(why_of(FF_SAMPLE_CODE, "NCP25410100410105003"));
        cr_assert_str_eq(why_of(FF_SAMPLE_CODE, "DC001"),
                         "DC is followed by 17 digits (year 2, area code 6, serial 9), not 3");
        cr_assert_str_eq(why_of(FF_SAMPLE_CODE, "NCP2541010041010500"),
                         "NCP is followed by 17 digits (year 2, area code 6, serial 9), not 16");
        cr_assert_str_eq(why_of(FF_SAMPLE_CODE, "DC2541010041010500A"),
                         "DC is followed by 17 digits (year 2, area code 6, serial 9); character 19 is not a digit");
        cr_assert_str_eq(why_of(FF_SAMPLE_CODE, "JC25410100410105003"),
                         "a sample code starts with DC (food) or NCP (edible agricultural products)");
        cr_assert_str_eq(why_of(FF_SAMPLE_CODE, "N"),
                         "a sample code starts with DC (food) or NCP (edible agricultural products)");
}

/* A type with code fields, decoded with a decoder of its own. */
static uint32_t codes_type(void)
{
        const TField f[] = {
                {"licence", FT_STR, NULL, false},
                {"count", FT_NUM, NULL, false},
                {"sample_code", FT_STR, NULL, true},
                {"holder.uscc", FT_STR, NULL, false},
        };
        uint32_t t = type_make("codes", f, ARRAY_SIZE(f));
        S.types[t].fields[0].format = FF_LICENSE;
        S.types[t].fields[2].format = FF_SAMPLE_CODE;
        S.types[t].fields[3].format = FF_USCC;
        return t;
}

#define ENV_CODES(ent) "\"event_id\":\"c-1\",\"event_type\":\"codes\",\"enterprise\":{\"uscc\":\"" ent "\"}," \
                       "\"occurred_at\":\"2025-03-02T10:15:00+08:00\""
#define CODES(fields) "{" ENV_CODES("91410184MAX3GNEK20") "," fields "}"

Test(decode, code_fields_are_bad_identifier)
{
        uint32_t t = codes_type();
        Decoder *d2;
        cr_assert_eq(decoder_new(&d2, &S, NULL), 0);
        D = decoder_free(D);
        D = d2;
        const char *ok = CODES("\"licence\":\"SC10541018400375\",\"sample_code\":\"NCP25410100410105003\","
                               "\"holder\":{\"uscc\":\"91410122MA9G7H6J5W\"}");
        cr_assert_eq(dec(ok), DECODE_OK, "%s", ev.detail);
        cr_assert_eq(ev.type, t);
        cr_assert(str_is(slots[SL(t, "licence")].s, "SC10541018400375"), "a code stays a string");
        cr_assert(str_is(slots[SL(t, "holder.uscc")].s, "91410122MA9G7H6J5W"));

        cr_assert_eq(dec(CODES("\"sample_code\":\"DC25410000410105007\",\"holder\":{\"uscc\":\"91410105MA9F8K2L3X\"}")),
                     DECODE_BAD_IDENTIFIER);
        cr_assert_str_eq(ev.detail, "field holder.uscc \"91410105MA9F8K2L3X\": check character should be 2");
        assert_all_null();
        cr_assert_eq(dec(CODES("\"sample_code\":\"DC001\"")), DECODE_BAD_IDENTIFIER);
        cr_assert_str_eq(ev.detail,
                         "field sample_code \"DC001\": DC is followed by 17 digits (year 2, area code 6, serial 9), not 3");
        /* escaped text is checked as unescaped */
        cr_assert_eq(dec(CODES("\"sample_code\":\"\\u0044C25410000410105007\"")), DECODE_OK, "%s", ev.detail);
        /* null and absent optional codes are fine; a required one is missing_field */
        cr_assert_eq(dec(CODES("\"sample_code\":\"DC25410000410105007\",\"licence\":null")), DECODE_OK);
        cr_assert_eq(dec(CODES("\"licence\":\"SC10541018400375\"")), DECODE_MISSING_FIELD);
        cr_assert_eq(dec(CODES("\"licence\":\"SC1\"")), DECODE_BAD_IDENTIFIER, "licence is declared first");
        /* declaration order decides between reasons: licence (bad code)
         * before count (wrong type), count before sample_code */
        cr_assert_eq(dec(CODES("\"count\":\"x\",\"licence\":\"SC1\",\"sample_code\":\"DC1\"")), DECODE_BAD_IDENTIFIER);
        cr_assert_str_eq(ev.detail, "field licence \"SC1\": SC is followed by 14 digits");
        cr_assert_eq(dec(CODES("\"sample_code\":\"DC1\",\"count\":\"x\"")), DECODE_WRONG_TYPE);
        /* a code of the wrong JSON kind is wrong_type, as for any string */
        cr_assert_eq(dec(CODES("\"sample_code\":19130400463233437")), DECODE_WRONG_TYPE);
        /* the other types are not affected: the envelope's id is a plain string here */
        cr_assert_eq(dec(COLD("\"device_id\":\"D1\",\"temp_c\":3.5")), DECODE_OK, "%s", ev.detail);
}

Test(decode, enterprise_id_as_uscc)
{
        S.env.enterprise_format = FF_USCC;
        Decoder *d2;
        cr_assert_eq(decoder_new(&d2, &S, NULL), 0);
        D = decoder_free(D);
        D = d2;
        static const struct {
                const char *ent, *detail;
        } bad[] = {
                {"91410105MA9F8K2L3X", "enterprise (enterprise.uscc) \"91410105MA9F8K2L3X\": check character should be 2"},
                {"91410122MA9G7H6J5Q", "enterprise (enterprise.uscc) \"91410122MA9G7H6J5Q\": check character should be W"},
                {"91410184MAX3GNEKI0", "enterprise (enterprise.uscc) \"91410184MAX3GNEKI0\": character 17, 'I', is not "
                                       "in the USCC alphabet (0-9, A-Z without I O S V Z)"},
                {"91410184max3gnek20", "enterprise (enterprise.uscc) \"91410184max3gnek20\": character 9, 'm', is not "
                                       "in the USCC alphabet (letters are upper case)"},
                {"E1", "enterprise (enterprise.uscc) \"E1\": a USCC has 18 characters, not 2"},
        };
        char buf[512];
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                snprintf(buf, sizeof(buf),
                         "{\"event_id\":\"e\",\"event_type\":\"inspection\",\"enterprise\":{\"uscc\":\"%s\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00+08:00\"}", bad[i].ent);
                cr_assert_eq(dec(buf), DECODE_BAD_IDENTIFIER, "%s", bad[i].ent);
                cr_assert_str_eq(ev.detail, bad[i].detail);
                cr_assert_eq(ev.enterprise.len, 0);
        }
        snprintf(buf, sizeof(buf), "{\"event_id\":\"e\",\"event_type\":\"inspection\",\"enterprise\":{\"uscc\":"
                                   "\"91410184MAX3GNEK20\"},\"occurred_at\":\"2025-03-02T10:15:00+08:00\"}");
        cr_assert_eq(dec(buf), DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(ev.enterprise, "91410184MAX3GNEK20"));
        /* the envelope's order: a bad enterprise before a bad time, after a missing id */
        cr_assert_eq(dec("{\"event_id\":\"e\",\"event_type\":\"inspection\",\"enterprise\":{\"uscc\":\"E1\"},"
                         "\"occurred_at\":\"yesterday\"}"), DECODE_BAD_IDENTIFIER);
        cr_assert_eq(dec("{\"event_type\":\"inspection\",\"enterprise\":{\"uscc\":\"E1\"},"
                         "\"occurred_at\":\"2025-03-02T10:15:00+08:00\"}"), DECODE_MISSING_FIELD);
}

Test(decode, code_formats_only_on_strings)
{
        uint32_t t = codes_type();
        S.types[t].fields[1].format = FF_USCC; /* count is a number */
        Decoder *d2 = (Decoder *)0x1;
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL);
        S.types[t].fields[1].format = (FieldFormat)99;
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL);
}

/* ---- category: a list of 1 to 4 levels, read as "L1/L2/L3/L4" ---- */

static uint32_t category_type(void)
{
        const TField f[] = {
                {"count", FT_NUM, NULL, false},
                {"food_category", FT_STR, NULL, false},
                {"sample_code", FT_STR, NULL, false},
        };
        uint32_t t = type_make("cat", f, ARRAY_SIZE(f));
        S.types[t].fields[1].format = FF_CATEGORY;
        S.types[t].fields[2].format = FF_SAMPLE_CODE;
        Decoder *d2;
        cr_assert_eq(decoder_new(&d2, &S, NULL), 0);
        D = decoder_free(D);
        D = d2;
        return t;
}

#define CAT(fields) "{\"event_id\":\"k\",\"event_type\":\"cat\",\"enterprise\":{\"uscc\":\"E\"}," \
                    "\"occurred_at\":\"2025-03-02T10:15:00+08:00\"," fields "}"

Test(decode, category_levels)
{
        uint32_t t = category_type();
        const char *j = CAT("\"food_category\":[\"肉制品\",\"预制肉制品\",\"调理肉制品\",\"调理肉制品(非速冻)\"]");
        cr_assert_eq(dec(j), DECODE_OK, "%s", ev.detail);
        Value *v = &slots[SL(t, "food_category")];
        cr_assert_eq(v->tag, VT_STR);
        cr_assert(str_is(v->s, "肉制品/预制肉制品/调理肉制品/调理肉制品(非速冻)"));
        cr_assert(in_range(v->s.p, scratch, sizeof(scratch)), "joined in the scratch buffer");
        cr_assert_eq(ev.scratch_used, v->s.len);
        /* fewer levels, whitespace, escapes */
        cr_assert_eq(dec(CAT("\"food_category\": [ \"\\u8089\\u5236\\u54c1\" , \"x\" ]")), DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(slots[SL(t, "food_category")].s, "肉制品/x"));
        cr_assert_eq(dec(CAT("\"food_category\":[\"乳制品\"]")), DECODE_OK);
        cr_assert(str_is(slots[SL(t, "food_category")].s, "乳制品"));
        /* a string is the path as written */
        cr_assert_eq(dec(CAT("\"food_category\":\"乳制品/液体乳\"")), DECODE_OK);
        cr_assert(str_is(slots[SL(t, "food_category")].s, "乳制品/液体乳"));
        cr_assert_eq(dec(CAT("\"food_category\":null")), DECODE_OK);
        cr_assert_eq(slots[SL(t, "food_category")].tag, VT_NULL);
}

Test(decode, category_not_one)
{
        category_type();
        static const struct {
                const char *json, *detail;
                DecodeReason r;
        } bad[] = {
                {"[]", "field food_category: an empty list; a category has 1 to 4 levels", DECODE_WRONG_TYPE},
                {"[\"a\",\"b\",\"c\",\"d\",\"e\"]", "field food_category: 5 levels; a category has at most 4",
                 DECODE_WRONG_TYPE},
                {"[\"a\",\"\"]", "field food_category: level 2 is empty", DECODE_WRONG_TYPE},
                {"[\"a\",\"b/c\"]", "field food_category: level 2 contains '/', which separates levels",
                 DECODE_WRONG_TYPE},
                {"[\"a\",1,{\"x\":[2]}]", "field food_category: level 2 is a number, not a string", DECODE_WRONG_TYPE},
                {"[null]", "field food_category: level 1 is null, not a string", DECODE_WRONG_TYPE},
                {"\"a//b\"", "field food_category: level 2 is empty", DECODE_WRONG_TYPE},
                {"\"\"", "field food_category: level 1 is empty", DECODE_WRONG_TYPE},
                {"\"a/b/c/d/e\"", "field food_category: 5 levels; a category has at most 4", DECODE_WRONG_TYPE},
                {"{\"l1\":\"a\"}", "field food_category: expected a list of 1 to 4 category levels (strings), got an object",
                 DECODE_WRONG_TYPE},
                {"7", "field food_category: expected a list of 1 to 4 category levels (strings), got a number",
                 DECODE_WRONG_TYPE},
        };
        char buf[512];
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                snprintf(buf, sizeof(buf), CAT("\"food_category\":%s"), bad[i].json);
                cr_assert_eq(dec(buf), bad[i].r, "%s: %s", bad[i].json, ev.detail);
                cr_assert_str_eq(ev.detail, bad[i].detail, "%s", bad[i].json);
                assert_all_null();
        }
        /* the list is validated as JSON whatever else is wrong */
        cr_assert_eq(dec(CAT("\"food_category\":[\"a\",\"b\",\"c\",\"d\",\"e\",tru]")), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec(CAT("\"food_category\":[1,\"\\q\"]")), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec(CAT("\"food_category\":[\"a\",]")), DECODE_MALFORMED_JSON);
        cr_assert_eq(dec(CAT("\"food_category\":[\"a\"")), DECODE_MALFORMED_JSON);
        /* declaration order: count (wrong type) before food_category, food_category before sample_code */
        cr_assert_eq(dec(CAT("\"food_category\":[],\"count\":\"x\"")), DECODE_WRONG_TYPE);
        cr_assert_str_eq(ev.detail, "field count: expected a number, got a string");
        cr_assert_eq(dec(CAT("\"sample_code\":\"DC1\",\"food_category\":[]")), DECODE_WRONG_TYPE);
        cr_assert_eq(dec(CAT("\"sample_code\":\"DC1\",\"food_category\":[\"a\"]")), DECODE_BAD_IDENTIFIER);
}

Test(decode, category_scratch)
{
        uint32_t t = category_type();
        /* no scratch: the joined text has nowhere to go */
        ev.scratch = NULL;
        ev.scratch_size = 0;
        cr_assert_eq(dec(CAT("\"food_category\":[\"a\",\"b\"]")), DECODE_TOO_LARGE);
        /* a scratch of the list's own length always holds it */
        const char *list = "[\"ab\",\"\\u00e9\",\"c\"]";
        char small[32];
        ev.scratch = small;
        ev.scratch_size = (uint32_t)strlen(list);
        char buf[256];
        snprintf(buf, sizeof(buf), CAT("\"food_category\":%s"), list);
        cr_assert_eq(dec(buf), DECODE_OK, "%s", ev.detail);
        cr_assert(str_is(slots[SL(t, "food_category")].s, "ab/\xc3\xa9/c"));
        ev.scratch_size = 4;
        cr_assert_eq(dec(buf), DECODE_TOO_LARGE);
}

Test(decode, category_shares_no_path_with_a_string)
{
        const TField a[] = {{"food_category", FT_STR, NULL, false}};
        uint32_t t1 = type_make("cat_a", a, 1);
        uint32_t t2 = type_make("cat_b", a, 1);
        S.types[t1].fields[0].format = FF_CATEGORY;
        Decoder *d2 = (Decoder *)0x1;
        cr_assert_eq(decoder_new(&d2, &S, NULL), -EINVAL);
        S.types[t2].fields[0].format = FF_CATEGORY;
        cr_assert_eq(decoder_new(&d2, &S, NULL), 0);
        decoder_free(d2);
}
