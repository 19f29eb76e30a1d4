/*
 * Unit tests of the rule VM (src/rules/vm.c) and the disassembler
 * (src/rules/disasm.c) on a RuleSet assembled by hand: every opcode, null
 * in every operand position, short-circuit evaluation (an aggregate hook
 * that must not run), sets of each kind, regexes with Chinese text, lower()
 * with a small scratch buffer, stack limits, code verification, and the
 * exact disassembly lines.
 *
 * Programs are written as instruction lists whose jump targets are relative
 * to the program's first instruction; add() makes them absolute, computes
 * max_stack as the compiler does, and checks the program with vm_verify().
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "include/riskd/rules.h"
#include "include/riskd/util.h"
#include "src/rules/opcodes.h"
#include "src/rules/vm.h"

#define I(op, arg) INSN(OP_##op, arg)
#define O(op) INSN(OP_##op, 0)
#define ADD(...) add((const uint32_t[]){__VA_ARGS__}, sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

#define H (3600000LL)
#define T0 1740881700000LL /* 2025-03-02T02:15:00Z */

/* slots of the hand-made schema */
enum { S_RESULT, S_TEMP, S_NAME, S_DEVICE, S_HAZARD, S_TIME, S_AMOUNT, S_CODE, NSLOTS };
/* constants */
enum { C_NUM2, C_NUM8, C_STR_FAIL, C_ENUM_FAIL, C_DUR_1H, C_TIME_T0, C_STR_LAB, C_NUM0, C_STR_ABC_UP, C_STR_EMPTY,
       C_ENUM_B, NCONSTS };
/* sets */
enum { SET_STR, SET_NUM, SET_ENUM, SET_EMPTY, NSETS };

static RuleSet rs;
static uint32_t code[4096];
static Program progs[256];
static Value consts[NCONSTS];
static ConstSet sets[NSETS];
static Value set_str_v[3], set_num_v[3];
static uint64_t set_enum_bits[RULES_MAX_ENUM / 64], set_empty_bits[RULES_MAX_ENUM / 64];
static void *regexes[2];
static char *regex_src[2];
static char *slot_path[NSLOTS] = {"result", "temp_c", "name", "device_id", "hazard", "reading.time", "amount", "code"};
static FieldType slot_type[NSLOTS] = {FT_ENUM, FT_NUM, FT_STR, FT_STR, FT_ENUM, FT_TIME, FT_NUM, FT_STR};
static char *result_values[] = {"pass", "fail", "unqualified"};
static EnumDef result_enum = {.name = "sampling.result", .values = result_values, .nvalues = 3};
static char *hazard_values[] = {"microbial", "banned_drug"};
static EnumDef hazard_enum = {.name = "sampling.hazard", .values = hazard_values, .nvalues = 2};
static const EnumDef *slot_enum[NSLOTS] = {&result_enum, NULL, NULL, NULL, &hazard_enum};
static EventType types[2] = {{.name = "sampling", .id = 0}, {.name = "coldchain_reading", .id = 1}};
static char *flags[2] = {"problem_lead", "recall"};
static Aggregate aggs[2];
static GradeBand bands[3] = {{.grade = "A"}, {.grade = "B"}, {.grade = "C"}};
static char *modes[2] = {"routine", "flying_inspection"};

static Value ev[NSLOTS], cur[NSLOTS], prof[NSLOTS];

static void setup(void)
{
        memset(&rs, 0, sizeof(rs));
        rs.code = code;
        rs.progs = progs;
        rs.consts = consts;
        rs.nconsts = NCONSTS;
        consts[C_NUM2] = value_num(2);
        consts[C_NUM8] = value_num(8);
        consts[C_STR_FAIL] = value_str("fail", 4);
        consts[C_ENUM_FAIL] = value_enum(1);
        consts[C_DUR_1H] = value_dur(H);
        consts[C_TIME_T0] = value_time(T0);
        consts[C_STR_LAB] = value_str("lab \"A\"", 7);
        consts[C_NUM0] = value_num(0);
        consts[C_STR_ABC_UP] = value_str("ABC", 3);
        consts[C_STR_EMPTY] = value_str("", 0);
        consts[C_ENUM_B] = value_enum(1);

        /* sorted as compile_set() sorts: bytewise / numerically */
        set_str_v[0] = value_str("a", 1);
        set_str_v[1] = value_str("dev-cal", 7);
        set_str_v[2] = value_str("食品", (uint32_t)strlen("食品"));
        set_num_v[0] = value_num(-1);
        set_num_v[1] = value_num(2.5);
        set_num_v[2] = value_num(8);
        memset(set_enum_bits, 0, sizeof(set_enum_bits));
        set_enum_bits[0] = (1ull << 1) | (1ull << 2) | (1ull << 63); /* fail, unqualified, 63 */
        set_enum_bits[3] = 1ull << 63;                /* 255, the last representable */
        memset(set_empty_bits, 0, sizeof(set_empty_bits));
        sets[SET_STR] = (ConstSet){.tag = VT_STR, .n = 3, .v = set_str_v};
        sets[SET_NUM] = (ConstSet){.tag = VT_NUM, .n = 3, .v = set_num_v};
        sets[SET_ENUM] = (ConstSet){.tag = VT_ENUM, .n = 4, .bits = set_enum_bits};
        sets[SET_EMPTY] = (ConstSet){.tag = VT_STR, .n = 0, .v = NULL};
        rs.sets = sets;
        rs.nsets = NSETS;

        rs.schema.nslots = NSLOTS;
        rs.schema.slot_path = slot_path;
        rs.schema.slot_type = slot_type;
        rs.schema.slot_enum = slot_enum;
        rs.schema.types = types;
        rs.schema.ntypes = 2;
        rs.flags = flags;
        rs.nflags = 2;
        rs.grading.bands = bands;
        rs.grading.nbands = 3;
        rs.grading.modes = modes;
        rs.grading.nmodes = 2;

        aggs[0] = (Aggregate){.kind = AGG_COUNT, .type = 0, .value_slot = -1, .where = PROG_NONE, .window_ms = 30 * 24 * H};
        aggs[1] = (Aggregate){.kind = AGG_ABSENT, .type = 1, .value_slot = -1, .where = PROG_NONE, .window_ms = 2 * H};
        rs.aggs = aggs;
        rs.naggs = 2;

        memset(ev, 0, sizeof(ev));
        memset(cur, 0, sizeof(cur));
        memset(prof, 0, sizeof(prof));
}

static void setup_regexes(void)
{
        static const char *const pats[2] = {"^冷链.*(超标|不合格)$", "^\\p{Han}{2}\\d+$"};
        for (int i = 0; i < 2; i++) {
                char err[256];
                uint32_t off;
                regexes[i] = vm_regex_new(pats[i], strlen(pats[i]), err, sizeof(err), &off);
                cr_assert_not_null(regexes[i], "%s: %s", pats[i], err);
                regex_src[i] = (char *)pats[i];
        }
        rs.regexes = regexes;
        rs.regex_src = regex_src;
        rs.nregexes = 2;
}

static void teardown_regexes(void)
{
        for (int i = 0; i < 2; i++)
                vm_regex_free(regexes[i]);
}

/* Append a program (jump targets relative to its start); returns its index. */
static uint32_t add(const uint32_t *insns, size_t n)
{
        uint32_t start = rs.ncode;
        int depth = 0, max = 0;
        cr_assert(rs.ncode + n <= sizeof(code) / sizeof(code[0]));
        for (size_t i = 0; i < n; i++) {
                uint32_t insn = insns[i];
                Opcode op = INSN_OP(insn);
                if (op == OP_JF_KEEP || op == OP_JT_KEEP)
                        insn = INSN(op, INSN_ARG(insn) + start);
                code[rs.ncode++] = insn;
                depth += opcode_stack_effect(op);
                if (depth > max)
                        max = depth;
        }
        progs[rs.nprogs] = (Program){.start = start, .len = (uint32_t)n, .max_stack = (uint32_t)max, .result = VT_BOOL};
        uint32_t p = rs.nprogs++;
        cr_assert_eq(vm_verify(&rs, p), 0, "program %u does not verify", p);
        return p;
}

static VmFrame frame(void)
{
        return (VmFrame){.event = ev, .cur = ev};
}

static Value run(uint32_t p, const VmFrame *f)
{
        Value v = {.tag = 0xee};
        int rc = vm_run(&rs, p, f, &v);
        cr_assert_eq(rc, VM_OK, "vm_run: %d", rc);
        return v;
}

static void expect_bool(uint32_t p, const VmFrame *f, bool want, const char *what)
{
        Value v = run(p, f);
        cr_assert_eq(v.tag, VT_BOOL, "%s: tag %u, not bool", what, v.tag);
        cr_assert_eq(v.b, want, "%s: %d, want %d", what, v.b, want);
}

static void expect_null(uint32_t p, const VmFrame *f, const char *what)
{
        Value v = run(p, f);
        cr_assert_eq(v.tag, VT_NULL, "%s: tag %u, not null", what, v.tag);
}

/* ---- pushes ---- */

Test(vm, push_constants_and_literals)
{
        setup();
        VmFrame f = frame();
        Value v = run(ADD(I(CONST, C_STR_FAIL), O(RET)), &f);
        cr_assert(v.tag == VT_STR && v.s.len == 4 && memcmp(v.s.p, "fail", 4) == 0);
        v = run(ADD(I(CONST, C_DUR_1H), O(RET)), &f);
        cr_assert(v.tag == VT_DUR && v.ms == H);
        v = run(ADD(I(CONST, C_ENUM_FAIL), O(RET)), &f);
        cr_assert(v.tag == VT_ENUM && v.e == 1);
        expect_null(ADD(O(NULL), O(RET)), &f, "NULL");
        expect_bool(ADD(O(TRUE), O(RET)), &f, true, "TRUE");
        expect_bool(ADD(O(FALSE), O(RET)), &f, false, "FALSE");
}

Test(vm, push_event_cur_profile)
{
        setup();
        VmFrame f = frame();
        uint32_t pf = ADD(I(FIELD, S_TEMP), O(RET)), pc = ADD(I(CUR, S_TEMP), O(RET)), pp = ADD(I(PROFILE, S_TEMP), O(RET));
        ev[S_TEMP] = value_num(9.5);
        cur[S_TEMP] = value_num(-3);
        prof[S_TEMP] = value_num(42);
        cr_assert_eq(run(pf, &f).n, 9.5);
        cr_assert_eq(run(pc, &f).n, 9.5, "cur == event at top level");
        expect_null(pp, &f, "no profile: all null");
        f.cur = cur;
        f.profile = prof;
        cr_assert_eq(run(pf, &f).n, 9.5);
        cr_assert_eq(run(pc, &f).n, -3);
        cr_assert_eq(run(pp, &f).n, 42);
        ev[S_TEMP] = value_null();
        expect_null(pf, &f, "missing field");
}

Test(vm, push_state)
{
        setup();
        VmFrame f = frame();
        uint32_t ps = ADD(O(SCORE), O(RET)), pg = ADD(O(GRADE), O(RET)), pm = ADD(O(MODE), O(RET)),
                 py = ADD(O(PER_YEAR), O(RET)), pl = ADD(I(FLAG, 0), O(RET)), pr = ADD(I(FLAG, 1), O(RET)),
                 pn = ADD(O(NOW), O(RET));
        /* NULL state: the initial one */
        Value v = run(ps, &f);
        cr_assert(v.tag == VT_NUM && v.n == 0);
        expect_null(pg, &f, "grade, no state");
        expect_null(pm, &f, "mode, no state");
        v = run(py, &f);
        cr_assert(v.tag == VT_NUM && v.n == 0);
        expect_bool(pl, &f, false, "flag, no state");

        VmState st = {.score = 17.5, .grade = -1, .mode = -1, .per_year = 2, .flags = 1ull << 1};
        f.state = &st;
        cr_assert_eq(run(ps, &f).n, 17.5);
        expect_null(pg, &f, "grade -1 is null");
        expect_null(pm, &f, "mode -1 is null");
        cr_assert_eq(run(py, &f).n, 2);
        expect_bool(pl, &f, false, "flag 0 clear");
        expect_bool(pr, &f, true, "flag 1 set");
        st.grade = 2;
        st.mode = 1;
        v = run(pg, &f);
        cr_assert(v.tag == VT_ENUM && v.e == 2);
        v = run(pm, &f);
        cr_assert(v.tag == VT_ENUM && v.e == 1);
        st.grade = 0;
        v = run(pg, &f);
        cr_assert(v.tag == VT_ENUM && v.e == 0, "grade 0 is a grade, not null");

        f.now = T0;
        v = run(pn, &f);
        cr_assert(v.tag == VT_TIME && v.ms == T0);
}

/* ---- comparisons ---- */

Test(vm, comparisons)
{
        setup();
        VmFrame f = frame();
        static const Opcode cmp[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
        /* temp_c cmp 8 for temp_c = 2, 8, 9 */
        static const bool want[3][6] = {
                {false, true, true, true, false, false},
                {true, false, false, true, false, true},
                {false, true, false, false, true, true},
        };
        static const double temps[3] = {2, 8, 9};
        for (int k = 0; k < 6; k++) {
                uint32_t p = add((const uint32_t[]){I(FIELD, S_TEMP), I(CONST, C_NUM8), INSN(cmp[k], 0), O(RET)}, 4);
                for (int t = 0; t < 3; t++) {
                        ev[S_TEMP] = value_num(temps[t]);
                        expect_bool(p, &f, want[t][k], opcode_name(cmp[k]));
                }
                ev[S_TEMP] = value_null();
                expect_bool(p, &f, false, "null on the left: every comparison false");
                uint32_t q = add((const uint32_t[]){I(CONST, C_NUM8), I(FIELD, S_TEMP), INSN(cmp[k], 0), O(RET)}, 4);
                expect_bool(q, &f, false, "null on the right");
                uint32_t nn = add((const uint32_t[]){O(NULL), O(NULL), INSN(cmp[k], 0), O(RET)}, 4);
                expect_bool(nn, &f, false, "null with null");
                ev[S_TEMP] = value_str("8", 1);
                expect_bool(p, &f, false, "string with number: not comparable");
        }
        /* strings and enums */
        uint32_t ps = ADD(I(FIELD, S_NAME), I(CONST, C_STR_FAIL), O(EQ), O(RET));
        ev[S_NAME] = value_str("fail", 4);
        expect_bool(ps, &f, true, "str ==");
        ev[S_NAME] = value_str("fai", 3);
        expect_bool(ps, &f, false, "str prefix !=");
        uint32_t pe = ADD(I(FIELD, S_RESULT), I(CONST, C_ENUM_FAIL), O(NE), O(RET));
        ev[S_RESULT] = value_enum(0);
        expect_bool(pe, &f, true, "enum !=");
        ev[S_RESULT] = value_enum(1);
        expect_bool(pe, &f, false, "enum == so != false");
        ev[S_RESULT] = value_str("fail", 4);
        expect_bool(pe, &f, false, "str vs enum: not comparable, even !=");
}

/* A fused comparison with a constant (EQ_C .. GE_C) answers exactly as
 * CONST then the comparison, for every kind of value on the stack. */
Test(vm, fused_comparisons_answer_as_the_pair)
{
        setup();
        VmFrame f = frame();
        static const Opcode cmp[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
        static const Opcode fused[] = {OP_EQ_C, OP_NE_C, OP_LT_C, OP_LE_C, OP_GT_C, OP_GE_C};
        static const uint32_t cs[] = {C_NUM8, C_STR_FAIL, C_ENUM_FAIL};
        Value vals[] = {value_null(), value_num(2), value_num(8), value_num(9), value_num(NAN),
                        value_str("fail", 4), value_str("fai", 3), value_str("pass", 4), value_enum(0),
                        value_enum(1), value_bool(true)};
        for (int k = 0; k < 6; k++)
                for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
                        cr_assert_eq(opcode_unfused(fused[k]), cmp[k]);
                        uint32_t pair = add((const uint32_t[]){I(FIELD, S_TEMP), I(CONST, cs[c]), INSN(cmp[k], 0), O(RET)}, 4);
                        uint32_t one = add((const uint32_t[]){I(FIELD, S_TEMP), INSN(fused[k], cs[c]), O(RET)}, 3);
                        for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
                                ev[S_TEMP] = vals[v];
                                Value a = value_null(), b = value_null();
                                cr_assert_eq(vm_run(&rs, pair, &f, &a), VM_OK);
                                cr_assert_eq(vm_run(&rs, one, &f, &b), VM_OK);
                                cr_assert(a.tag == b.tag && (a.tag != VT_BOOL || a.b == b.b),
                                          "%s with constant %zu, value %zu: %d/%d vs %d/%d", opcode_name(fused[k]), c, v,
                                          a.tag, a.b, b.tag, b.b);
                        }
                }
}

/* ---- sets ---- */

Test(vm, in_sets)
{
        setup();
        VmFrame f = frame();
        uint32_t in_s = ADD(I(FIELD, S_DEVICE), I(IN, SET_STR), O(RET)),
                 nin_s = ADD(I(FIELD, S_DEVICE), I(NOT_IN, SET_STR), O(RET)),
                 in_n = ADD(I(FIELD, S_TEMP), I(IN, SET_NUM), O(RET)),
                 nin_n = ADD(I(FIELD, S_TEMP), I(NOT_IN, SET_NUM), O(RET)),
                 in_e = ADD(I(FIELD, S_RESULT), I(IN, SET_ENUM), O(RET)),
                 nin_e = ADD(I(FIELD, S_RESULT), I(NOT_IN, SET_ENUM), O(RET)),
                 in_0 = ADD(I(FIELD, S_DEVICE), I(IN, SET_EMPTY), O(RET)),
                 nin_0 = ADD(I(FIELD, S_DEVICE), I(NOT_IN, SET_EMPTY), O(RET));

        /* strings: every member found, neighbours not */
        static const char *const yes[] = {"a", "dev-cal", "食品"};
        static const char *const no[] = {"", "A", "b", "dev-ca", "dev-cal2", "食", "食品安全", "zzz"};
        for (size_t i = 0; i < 3; i++) {
                ev[S_DEVICE] = value_str(yes[i], (uint32_t)strlen(yes[i]));
                expect_bool(in_s, &f, true, yes[i]);
                expect_bool(nin_s, &f, false, yes[i]);
        }
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
                ev[S_DEVICE] = value_str(no[i], (uint32_t)strlen(no[i]));
                expect_bool(in_s, &f, false, no[i]);
                expect_bool(nin_s, &f, true, no[i]);
                expect_bool(in_0, &f, false, "empty set");
                expect_bool(nin_0, &f, true, "empty set");
        }
        /* numbers */
        static const double ny[] = {-1, 2.5, 8}, nn[] = {-2, 0, 2.4999, 3, 9, 1e300};
        for (size_t i = 0; i < 3; i++) {
                ev[S_TEMP] = value_num(ny[i]);
                expect_bool(in_n, &f, true, "num member");
                expect_bool(nin_n, &f, false, "num member");
        }
        for (size_t i = 0; i < sizeof(nn) / sizeof(nn[0]); i++) {
                ev[S_TEMP] = value_num(nn[i]);
                expect_bool(in_n, &f, false, "num non-member");
                expect_bool(nin_n, &f, true, "num non-member");
        }
        /* enums: bitmap */
        for (int32_t e = 0; e < 3; e++) {
                ev[S_RESULT] = value_enum(e);
                expect_bool(in_e, &f, e != 0, "enum in");
                expect_bool(nin_e, &f, e == 0, "enum not in");
        }
        ev[S_RESULT] = value_enum(63);
        expect_bool(in_e, &f, true, "enum 63 (a word's last bit)");
        ev[S_RESULT] = value_enum(64);
        expect_bool(in_e, &f, false, "enum 64");
        ev[S_RESULT] = value_enum(255);
        expect_bool(in_e, &f, true, "enum 255 (last bit)");
        ev[S_RESULT] = value_enum(-1);
        expect_bool(in_e, &f, false, "unknown enum is in no set");
        expect_bool(nin_e, &f, true, "unknown enum is 'not in'");
        ev[S_RESULT] = value_enum(256);
        expect_bool(in_e, &f, false, "beyond the bitmap");
        expect_bool(nin_e, &f, true, "beyond the bitmap");

        /* null: false both ways */
        ev[S_DEVICE] = value_null();
        ev[S_TEMP] = value_null();
        ev[S_RESULT] = value_null();
        uint32_t all[] = {in_s, nin_s, in_n, nin_n, in_e, nin_e, in_0, nin_0};
        for (size_t i = 0; i < 8; i++)
                expect_bool(all[i], &f, false, "null in/not in");

        /* a tag other than the set's: false both ways */
        ev[S_DEVICE] = value_num(2.5);
        expect_bool(in_s, &f, false, "num in a string set");
        expect_bool(nin_s, &f, false, "num not in a string set");
        ev[S_TEMP] = value_str("8", 1);
        expect_bool(in_n, &f, false, "str in a number set");
        expect_bool(nin_n, &f, false, "str not in a number set");
        ev[S_RESULT] = value_str("fail", 4);
        expect_bool(in_e, &f, false, "str in an enum set");
        expect_bool(nin_e, &f, false, "str not in an enum set");
}

/* ---- strings ---- */

Test(vm, string_predicates)
{
        setup();
        VmFrame f = frame();
        uint32_t pc = ADD(I(FIELD, S_NAME), I(FIELD, S_DEVICE), O(CONTAINS), O(RET)),
                 ps = ADD(I(FIELD, S_NAME), I(FIELD, S_DEVICE), O(STARTSWITH), O(RET)),
                 pe = ADD(I(FIELD, S_NAME), I(FIELD, S_DEVICE), O(ENDSWITH), O(RET));
        ev[S_NAME] = value_str("冷链食品", (uint32_t)strlen("冷链食品"));
        ev[S_DEVICE] = value_str("冷链", (uint32_t)strlen("冷链"));
        expect_bool(pc, &f, true, "contains");
        expect_bool(ps, &f, true, "startswith");
        expect_bool(pe, &f, false, "endswith");
        ev[S_DEVICE] = value_str("食品", (uint32_t)strlen("食品"));
        expect_bool(ps, &f, false, "startswith");
        expect_bool(pe, &f, true, "endswith");
        /* null and non-strings in either position */
        Value bad[] = {value_null(), value_num(1), value_enum(0), value_bool(true)};
        for (size_t i = 0; i < 4; i++) {
                ev[S_NAME] = bad[i];
                expect_bool(pc, &f, false, "bad left contains");
                expect_bool(ps, &f, false, "bad left startswith");
                expect_bool(pe, &f, false, "bad left endswith");
                ev[S_NAME] = value_str("x", 1);
                ev[S_DEVICE] = bad[i];
                expect_bool(pc, &f, false, "bad right contains");
                expect_bool(ps, &f, false, "bad right startswith");
                expect_bool(pe, &f, false, "bad right endswith");
                ev[S_DEVICE] = value_str("x", 1);
        }
}

Test(vm, match_chinese)
{
        setup();
        setup_regexes();
        VmFrame f = frame();
        uint32_t p0 = ADD(I(FIELD, S_NAME), I(MATCH, 0), O(RET)), p1 = ADD(I(FIELD, S_NAME), I(MATCH, 1), O(RET));
        struct {
                const char *s;
                bool m0, m1;
        } c[] = {
                {"冷链温度超标", true, false},
                {"冷链运输不合格", true, false},
                {"冷链温度正常", false, false},
                {"常温超标", false, false},
                {"食品12", false, true},   /* \p{Han}: two Han characters */
                {"食12", false, false},
                {"ab12", false, false},
                {"食品１２", false, false}, /* \d is ASCII: not full-width digits */
                {"", false, false},
        };
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                ev[S_NAME] = value_str(c[i].s, (uint32_t)strlen(c[i].s));
                expect_bool(p0, &f, c[i].m0, c[i].s);
                expect_bool(p1, &f, c[i].m1, c[i].s);
        }
        /* the subject is s[0..len), not NUL-terminated */
        ev[S_NAME] = value_str("冷链温度超标XYZ", (uint32_t)strlen("冷链温度超标"));
        expect_bool(p0, &f, true, "bounded subject");
        ev[S_NAME] = value_str("冷链\xff超标", (uint32_t)strlen("冷链\xff超标"));
        expect_bool(p0, &f, false, "invalid UTF-8 subject: false, no crash");
        cr_assert_eq(vm_regex_errors(regexes[0]), 1, "and counted as an engine error");
        ev[S_NAME] = value_str(NULL, 0);
        expect_bool(p1, &f, false, "empty subject with a NULL pointer");
        ev[S_NAME] = value_null();
        expect_bool(p0, &f, false, "null");
        ev[S_NAME] = value_num(12);
        expect_bool(p1, &f, false, "a number is not a string");
        teardown_regexes();
}

Test(vm, regex_new_errors)
{
        char err[256] = "";
        uint32_t off = 999;
        cr_assert_null(vm_regex_new("ab(c", 4, err, sizeof(err), &off));
        cr_assert(strlen(err) > 0);
        cr_assert_eq(off, 2, "offset %u: the group's '('", off);
        err[0] = 0;
        cr_assert_null(vm_regex_new("食品[", strlen("食品["), err, sizeof(err), &off));
        cr_assert(strlen(err) > 0);
        cr_assert_eq(off, strlen("食品"), "a byte offset: %u", off);
        char tiny[8];
        cr_assert_null(vm_regex_new("(", 1, tiny, sizeof(tiny), &off));
        cr_assert(strlen(tiny) < sizeof(tiny), "the message is truncated and terminated");
        /* the engine takes a C string: a NUL inside is refused, not cut */
        cr_assert_null(vm_regex_new("ab\0c", 4, err, sizeof(err), &off));
        cr_assert_eq(off, 2);
        cr_assert(strstr(err, "NUL"), "%s", err);
        void *re = vm_regex_new("ab\\x00c", 7, err, sizeof(err), &off);
        cr_assert_not_null(re, "%s", err);
        cr_assert_eq(vm_regex_match(re, "xab\0c", 5), 1);
        cr_assert_eq(vm_regex_match(re, "xab", 3), 0);
        vm_regex_free(re);
        vm_regex_free(NULL);
}

/* What needs backtracking is refused, with the construct named in the
 * message (E022's text in riskctl check). */
Test(vm, regex_refuses_backtracking_constructs)
{
        static const struct {
                const char *pat, *named;
                uint32_t off; /* the construct's byte offset */
        } c[] = {
                {"(a)\\1", "Back-reference", 3},
                {"\\\\1(a)\\1", "Back-reference", 6}, /* \\1 is a backslash and a 1 */
                {"a(?=b)", "Zero-width assertion", 1},
                {"(?<!a)b", "Zero-width assertion", 0},
                {"x(?>a+)b", "Atomic group", 1},
                {"a++b", "Possessive quantifier", 2},
                {"a\\Kb", "\\K", 1},
                {"a$b", "end anchor", 0},
        };
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                char err[256] = "";
                uint32_t off = 999;
                cr_assert_null(vm_regex_new(c[i].pat, strlen(c[i].pat), err, sizeof(err), &off), "%s", c[i].pat);
                cr_assert(strstr(err, c[i].named), "%s: '%s' does not name %s", c[i].pat, err, c[i].named);
                cr_assert_eq(off, c[i].off, "%s: at %u", c[i].pat, off);
        }
}

/* \b \d \w are ASCII (no Unicode-property mode, whose automata took
 * seconds to build), so \b is allowed; Chinese text is matched with
 * \p{Han} or the characters themselves. */
Test(vm, regex_ascii_classes_and_word_boundary)
{
        char err[256];
        uint32_t off;
        void *b = vm_regex_new("\\bPb\\b", 6, err, sizeof(err), &off);
        cr_assert_not_null(b, "%s", err);
        cr_assert_eq(vm_regex_match(b, "铅(Pb)超标", strlen("铅(Pb)超标")), 1);
        cr_assert_eq(vm_regex_match(b, "铅Pb超标", strlen("铅Pb超标")), 1, "Chinese is not a word character");
        cr_assert_eq(vm_regex_match(b, "PbO", 3), 0);
        vm_regex_free(b);
        void *w = vm_regex_new("^\\w{18}$", 8, err, sizeof(err), &off);
        cr_assert_not_null(w, "%s", err);
        cr_assert_eq(vm_regex_match(w, "91410184MAX3GNEK20", 18), 1);
        cr_assert_eq(vm_regex_match(w, "食品", strlen("食品")), 0);
        vm_regex_free(w);
}

/* A pattern whose automaton would take seconds to build is refused before
 * the engine sees it: bounded repeats unroll, Unicode classes cost more
 * (\p{L}{30} took 15 s, (\p{L}|\p{N}){30} 34 s). */
Test(vm, regex_refuses_costly_patterns)
{
        static const char *const costly[] = {
                "\\p{L}{30}", "(\\p{L}|\\p{N}){30}", "\\p{Han}{300}", "(\\w{10}){1000}",
                "a{\\p{L}{30}", /* a '{' that is no repeat is a literal */
                "x\\w{99999999999999999999}", "((((a{10}){10}){10}){10})",
        };
        for (size_t i = 0; i < sizeof(costly) / sizeof(costly[0]); i++) {
                char err[256] = "";
                uint32_t off = 9;
                cr_assert_null(vm_regex_new(costly[i], strlen(costly[i]), err, sizeof(err), &off), "%s", costly[i]);
                cr_assert(strstr(err, "too costly"), "%s: %s", costly[i], err);
                cr_assert_eq(off, 0);
        }
        static const char *const fine[] = {
                "^\\w{18}$", "\\w{1000}", ".{128}", "\\p{L}{8}", "食{1000}", "^[0-9A-HJ-NPQRTUWXY]{2}\\d{6}[0-9A-Z]{10}$",
                "\\p{Han}{2,}", "\\Q\\p{L}{999}\\E",
        };
        for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
                char err[256] = "";
                uint32_t off;
                void *re = vm_regex_new(fine[i], strlen(fine[i]), err, sizeof(err), &off);
                cr_assert_not_null(re, "%s: %s", fine[i], err);
                vm_regex_free(re);
        }
}

/* The patterns that backtracked catastrophically under PCRE2 (issue 13:
 * `(a+)+$` at 273 events/s, `^(a+)+b$|^a*c$` silently false for a^n c
 * from n = 20): right answers at every length, no error. */
Test(vm, regex_catastrophic_patterns_are_exact)
{
        char err[256];
        uint32_t off;
        void *nested = vm_regex_new("(a+)+$", 6, err, sizeof(err), &off);
        void *alt = vm_regex_new("^(a+)+b$|^a*c$", 14, err, sizeof(err), &off);
        cr_assert_not_null(nested);
        cr_assert_not_null(alt);
        static char subj[10002];
        static const size_t ns[] = {1, 19, 20, 21, 30, 31, 100, 1000, 10000};
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                size_t n = ns[i];
                memset(subj, 'a', n);
                subj[n] = 'c';
                cr_assert_eq(vm_regex_match(alt, subj, n + 1), 1, "a^%zu c", n);
                subj[n] = 'b';
                cr_assert_eq(vm_regex_match(alt, subj, n + 1), 1, "a^%zu b", n);
                subj[n] = 'x';
                cr_assert_eq(vm_regex_match(alt, subj, n + 1), 0, "a^%zu x", n);
                cr_assert_eq(vm_regex_match(nested, subj, n + 1), 0, "a^%zu x: no a+ at the end", n);
                cr_assert_eq(vm_regex_match(nested, subj, n), 1, "a^%zu", n);
                subj[0] = 'x';
                cr_assert_eq(vm_regex_match(nested, subj, n), n > 1, "x a^%zu: the a's at the end", n - 1);
        }
        cr_assert_eq(vm_regex_errors(nested), 0);
        cr_assert_eq(vm_regex_errors(alt), 0);
        vm_regex_free(nested);
        vm_regex_free(alt);
}

/* An engine error is counted, never a silent "no match". */
Test(vm, regex_errors_are_counted)
{
        char err[256];
        uint32_t off;
        void *re = vm_regex_new("超标", strlen("超标"), err, sizeof(err), &off);
        cr_assert_not_null(re);
        cr_assert_eq(vm_regex_match(re, "温度超标", strlen("温度超标")), 1);
        cr_assert_eq(vm_regex_errors(re), 0);
        cr_assert_eq(vm_regex_match(re, "超标\xff", strlen("超标\xff")), VM_REGEX_ERROR);
        cr_assert_eq(vm_regex_match(re, "\xe8\xb6", 2), VM_REGEX_ERROR, "a cut sequence");
        cr_assert_eq(vm_regex_errors(re), 2);
        cr_assert_eq(vm_regex_match(re, "", 0), 0);
        cr_assert_eq(vm_regex_errors(re), 2);
        vm_regex_free(re);
        cr_assert_eq(vm_regex_errors(NULL), 0);
}

Test(vm, lower_scratch)
{
        setup();
        char scratch[16];
        memset(scratch, '#', sizeof(scratch));
        VmFrame f = frame();
        f.scratch = scratch;
        f.scratch_size = sizeof(scratch);
        uint32_t p = ADD(I(FIELD, S_NAME), O(LOWER), O(RET));
        ev[S_NAME] = value_str("AbC-食品-Z", (uint32_t)strlen("AbC-食品-Z"));
        Value v = run(p, &f);
        cr_assert_eq(v.tag, VT_STR);
        cr_assert_eq(v.s.len, strlen("abc-食品-z"));
        cr_assert(memcmp(v.s.p, "abc-食品-z", v.s.len) == 0, "ASCII only lowered");
        cr_assert_eq(v.s.p, scratch, "written into the scratch");
        cr_assert_eq(f.scratch_used, 0, "the frame is not modified");
        cr_assert_str_eq(ev[S_NAME].s.p, "AbC-食品-Z", "the input is not modified");

        /* a cursor: starts at scratch_used, and two lower() do not overlap */
        f.scratch_used = 2;
        uint32_t eq = ADD(I(FIELD, S_NAME), O(LOWER), I(CONST, C_STR_ABC_UP), O(LOWER), O(EQ), O(RET));
        ev[S_NAME] = value_str("aBc", 3);
        memset(scratch, '#', sizeof(scratch));
        expect_bool(eq, &f, true, "lower(aBc) == lower(ABC)");
        cr_assert(memcmp(scratch, "##abcabc##", 10) == 0, "%.16s", scratch);

        /* too small: the second lower() has no room and gives null */
        f.scratch_used = 0;
        f.scratch_size = 5;
        expect_bool(eq, &f, false, "no room: null, and null == x is false");
        f.scratch_size = 6;
        expect_bool(eq, &f, true, "exactly enough room");
        f.scratch_size = 2;
        expect_null(p, &f, "no room at all");
        f.scratch_used = 9;
        f.scratch_size = 8;
        expect_null(p, &f, "scratch_used beyond size");
        f.scratch = NULL;
        f.scratch_size = 0;
        f.scratch_used = 0;
        expect_null(p, &f, "no scratch");
        ev[S_NAME] = value_str("", 0);
        v = run(p, &f);
        cr_assert(v.tag == VT_STR && v.s.len == 0, "empty needs no scratch");
        ev[S_NAME] = value_null();
        expect_null(p, &f, "lower(null)");
        ev[S_NAME] = value_num(3);
        expect_null(p, &f, "lower(number)");
}

/* ---- arithmetic and unary ---- */

Test(vm, arithmetic)
{
        setup();
        VmFrame f = frame();
        f.now = T0;
        static const struct {
                Opcode op;
                double want;
        } num[] = {{OP_ADD, 10}, {OP_SUB, 6}, {OP_MUL, 16}, {OP_DIV, 4}, {OP_MOD, 0}};
        ev[S_AMOUNT] = value_num(8);
        for (size_t i = 0; i < 5; i++) {
                uint32_t p = add((const uint32_t[]){I(FIELD, S_AMOUNT), I(CONST, C_NUM2), INSN(num[i].op, 0), O(RET)}, 4);
                Value v = run(p, &f);
                cr_assert(v.tag == VT_NUM && v.n == num[i].want, "%s: %g", opcode_name(num[i].op), v.n);
                uint32_t l = add((const uint32_t[]){O(NULL), I(CONST, C_NUM2), INSN(num[i].op, 0), O(RET)}, 4);
                uint32_t r = add((const uint32_t[]){I(CONST, C_NUM2), O(NULL), INSN(num[i].op, 0), O(RET)}, 4);
                expect_null(l, &f, "null on the left");
                expect_null(r, &f, "null on the right");
        }
        expect_null(ADD(I(CONST, C_NUM8), I(CONST, C_NUM0), O(DIV), O(RET)), &f, "division by zero");
        expect_null(ADD(I(CONST, C_NUM8), I(CONST, C_NUM0), O(MOD), O(RET)), &f, "modulo by zero");
        /* now - reading.time > 1h */
        uint32_t late = ADD(O(NOW), I(FIELD, S_TIME), O(SUB), I(CONST, C_DUR_1H), O(GT), O(RET));
        ev[S_TIME] = value_time(T0 - 2 * H);
        expect_bool(late, &f, true, "2h late");
        ev[S_TIME] = value_time(T0 - H);
        expect_bool(late, &f, false, "exactly 1h");
        ev[S_TIME] = value_null();
        expect_bool(late, &f, false, "missing time");
        Value v = run(ADD(I(CONST, C_TIME_T0), I(CONST, C_DUR_1H), O(ADD), O(RET)), &f);
        cr_assert(v.tag == VT_TIME && v.ms == T0 + H);
        expect_null(ADD(I(CONST, C_STR_FAIL), I(CONST, C_NUM2), O(ADD), O(RET)), &f, "str + num");
}

Test(vm, unary)
{
        setup();
        VmFrame f = frame();
        uint32_t neg = ADD(I(FIELD, S_AMOUNT), O(NEG), O(RET)), abs_ = ADD(I(FIELD, S_AMOUNT), O(ABS), O(RET)),
                 not_ = ADD(I(FIELD, S_AMOUNT), O(NOT), O(RET)), tob = ADD(I(FIELD, S_AMOUNT), O(TOBOOL), O(RET)),
                 ex = ADD(I(FIELD, S_AMOUNT), O(EXISTS), O(RET));
        ev[S_AMOUNT] = value_num(-2.5);
        cr_assert_eq(run(neg, &f).n, 2.5);
        cr_assert_eq(run(abs_, &f).n, 2.5);
        expect_bool(not_, &f, true, "not number: a number is not true");
        expect_bool(tob, &f, false, "tobool number");
        expect_bool(ex, &f, true, "exists number");
        ev[S_AMOUNT] = value_dur(-H);
        Value v = run(abs_, &f);
        cr_assert(v.tag == VT_DUR && v.ms == H);
        v = run(neg, &f);
        cr_assert(v.tag == VT_DUR && v.ms == H);
        ev[S_AMOUNT] = value_null();
        expect_null(neg, &f, "neg null");
        expect_null(abs_, &f, "abs null");
        expect_bool(not_, &f, true, "not null is true");
        expect_bool(tob, &f, false, "tobool null");
        expect_bool(ex, &f, false, "exists null");
        ev[S_AMOUNT] = value_bool(true);
        expect_bool(not_, &f, false, "not true");
        expect_bool(tob, &f, true, "tobool true");
        expect_null(neg, &f, "neg bool");
        ev[S_AMOUNT] = value_bool(false);
        expect_bool(not_, &f, true, "not false");
        expect_bool(tob, &f, false, "tobool false");
        expect_bool(ex, &f, true, "false exists");
        ev[S_AMOUNT] = value_str("", 0);
        expect_bool(ex, &f, true, "empty string exists");
}

/* ---- aggregates and short-circuit ---- */

typedef struct Hook {
        int calls;
        uint32_t last_agg;
        const VmFrame *last_frame;
        Value v;
        int rc;
} Hook;

static int hook(void *ud, const RuleSet *r, uint32_t agg, const VmFrame *f, Value *ret)
{
        Hook *h = ud;
        cr_assert_eq(r, &rs);
        h->calls++;
        h->last_agg = agg;
        h->last_frame = f;
        if (h->rc)
                return h->rc;
        *ret = h->v;
        return 0;
}

Test(vm, aggregate_hook)
{
        setup();
        Hook h = {.v = value_num(3)};
        VmFrame f = frame();
        uint32_t p = ADD(I(AGG, 1), O(RET));
        expect_null(p, &f, "no hook: null");
        f.agg = hook;
        f.agg_ud = &h;
        Value v = run(p, &f);
        cr_assert(v.tag == VT_NUM && v.n == 3);
        cr_assert_eq(h.calls, 1);
        cr_assert_eq(h.last_agg, 1);
        cr_assert_eq(h.last_frame, &f);
        h.rc = -5;
        cr_assert_eq(vm_run(&rs, p, &f, &v), VM_AGG);
        cr_assert(!vm_test(&rs, p, &f));
        h.rc = 1;
        cr_assert_eq(vm_run(&rs, p, &f, &v), VM_AGG);
        h.rc = 0;
        h.v = value_null();
        expect_null(p, &f, "the hook may answer null");
}

Test(vm, short_circuit)
{
        setup();
        Hook h = {.v = value_num(5)};
        VmFrame f = frame();
        f.agg = hook;
        f.agg_ud = &h;
        /* <a> and agg(0) > 2  /  <a> or agg(0) > 2, a from the event */
        uint32_t and_ = ADD(I(FIELD, S_AMOUNT), I(JF_KEEP, 6), I(AGG, 0), I(CONST, C_NUM2), O(GT), O(TOBOOL), O(RET));
        uint32_t or_ = ADD(I(FIELD, S_AMOUNT), I(JT_KEEP, 6), I(AGG, 0), I(CONST, C_NUM2), O(GT), O(TOBOOL), O(RET));
        struct {
                Value a;
                bool and_calls, and_res, or_calls, or_res;
        } c[] = {
                {value_bool(false), false, false, true, true},
                {value_bool(true), true, true, false, true},
                {value_null(), false, false, true, true},
                {value_num(1), false, false, true, true}, /* not a bool: falsy */
        };
        for (size_t i = 0; i < 4; i++) {
                ev[S_AMOUNT] = c[i].a;
                h.calls = 0;
                expect_bool(and_, &f, c[i].and_res, "and");
                cr_assert_eq(h.calls, c[i].and_calls, "case %zu: aggregate called %d times under and", i, h.calls);
                h.calls = 0;
                expect_bool(or_, &f, c[i].or_res, "or");
                cr_assert_eq(h.calls, c[i].or_calls, "case %zu: aggregate called %d times under or", i, h.calls);
        }
        /* the right side is normalised: true and null -> false, false or null -> false */
        uint32_t tn = ADD(O(TRUE), I(JF_KEEP, 4), O(NULL), O(TOBOOL), O(RET));
        uint32_t fn = ADD(O(FALSE), I(JT_KEEP, 4), O(NULL), O(TOBOOL), O(RET));
        uint32_t nt = ADD(O(NULL), I(JT_KEEP, 4), O(TRUE), O(TOBOOL), O(RET));
        expect_bool(tn, &f, false, "true and null");
        expect_bool(fn, &f, false, "false or null");
        expect_bool(nt, &f, true, "null or true");
        /* nested: (a and b) or c, values on the stack below survive */
        uint32_t nest = ADD(I(FIELD, S_AMOUNT), I(JF_KEEP, 4), I(FIELD, S_TEMP), O(TOBOOL), I(JT_KEEP, 7),
                            I(FIELD, S_NAME), O(TOBOOL), O(RET));
        Value T = value_bool(true), F = value_bool(false);
        for (int m = 0; m < 8; m++) {
                bool a = m & 1, b = m & 2, cc = m & 4;
                ev[S_AMOUNT] = a ? T : F;
                ev[S_TEMP] = b ? T : F;
                ev[S_NAME] = cc ? T : F;
                expect_bool(nest, &f, (a && b) || cc, "(a and b) or c");
        }
        /* the false of a short-circuited and feeds a comparison below it */
        uint32_t below = ADD(O(FALSE), O(NULL), I(JF_KEEP, 5), O(TRUE), O(TOBOOL), O(EQ), O(RET));
        expect_bool(below, &f, true, "false == (null and true)");
}

/* ---- limits, verification, vm_test ---- */

Test(vm, stack_limit)
{
        setup();
        Hook h = {.v = value_num(1)};
        VmFrame f = frame();
        f.agg = hook;
        f.agg_ud = &h;
        /* the deepest accepted program: VM_STACK_MAX constants, then folded */
        uint32_t deep[2 * VM_STACK_MAX + 1];
        size_t n = 0;
        for (int i = 0; i < VM_STACK_MAX; i++)
                deep[n++] = I(CONST, C_NUM2);
        for (int i = 0; i < VM_STACK_MAX - 1; i++)
                deep[n++] = O(ADD);
        deep[n++] = O(RET);
        uint32_t p = add(deep, n);
        cr_assert_eq(progs[p].max_stack, VM_STACK_MAX);
        Value v = run(p, &f);
        cr_assert(v.tag == VT_NUM && v.n == 2 * VM_STACK_MAX);

        /* one deeper: refused before running (the aggregate is not called) */
        uint32_t start = rs.ncode;
        code[rs.ncode++] = I(AGG, 0);
        for (int i = 0; i < VM_STACK_MAX; i++)
                code[rs.ncode++] = I(CONST, C_NUM2);
        for (int i = 0; i < VM_STACK_MAX; i++)
                code[rs.ncode++] = O(ADD);
        code[rs.ncode++] = O(RET);
        progs[rs.nprogs] = (Program){.start = start, .len = rs.ncode - start, .max_stack = VM_STACK_MAX + 1};
        uint32_t q = rs.nprogs++;
        cr_assert_eq(vm_run(&rs, q, &f, &v), VM_STACK);
        cr_assert_eq(h.calls, 0);
        cr_assert_eq(vm_verify(&rs, q), VM_STACK);
        cr_assert(!vm_test(&rs, q, &f));
}

Test(vm, verify_and_bad_code)
{
        setup();
        VmFrame f = frame();
        Value v;
        cr_assert_eq(vm_run(&rs, 7, &f, &v), VM_BADCODE, "no such program");
        cr_assert_eq(vm_verify(&rs, 7), VM_BADCODE);
        struct {
                uint32_t insns[8];
                uint32_t n, max;
                int want;
                const char *what;
        } c[] = {
                {{O(TRUE), O(RET)}, 2, 1, 0, "good"},
                {{O(EQ), O(RET)}, 2, 1, VM_BADCODE, "underflow"},
                {{O(TRUE), O(TRUE), O(RET)}, 3, 2, VM_BADCODE, "two values at RET"},
                {{O(TRUE), O(NOT)}, 2, 1, VM_BADCODE, "falls off the end"},
                {{I(CONST, NCONSTS), O(RET)}, 2, 1, VM_BADCODE, "constant out of range"},
                {{I(FIELD, NSLOTS), O(RET)}, 2, 1, VM_BADCODE, "slot out of range"},
                {{I(FLAG, 2), O(RET)}, 2, 1, VM_BADCODE, "flag out of range"},
                {{I(AGG, 2), O(RET)}, 2, 1, VM_BADCODE, "aggregate out of range"},
                {{O(TRUE), I(IN, NSETS), O(RET)}, 3, 1, VM_BADCODE, "set out of range"},
                {{O(TRUE), I(MATCH, 0), O(RET)}, 3, 1, VM_BADCODE, "no regexes"},
                {{INSN(_OP_MAX, 0), O(RET)}, 2, 1, VM_BADCODE, "unknown opcode"},
                {{I(TRUE, 3), O(RET)}, 2, 1, VM_BADCODE, "argument on a no-argument opcode"},
                {{O(TRUE), O(TRUE), O(EQ), O(RET)}, 4, 1, VM_STACK, "max_stack too small"},
                {{O(TRUE), I(JF_KEEP, 0), O(TRUE), O(TOBOOL), O(RET)}, 5, 1, VM_BADCODE, "backward jump"},
                {{O(TRUE), I(JF_KEEP, 9), O(TRUE), O(TOBOOL), O(RET)}, 5, 1, VM_BADCODE, "jump outside"},
                {{O(TRUE), I(JF_KEEP, 4), O(TRUE), O(TRUE), O(RET)}, 5, 2, VM_BADCODE, "depths disagree at the target"},
                {{O(TRUE), I(JF_KEEP, 4), O(TRUE), O(TOBOOL), O(RET), O(EQ)}, 6, 1, 0, "dead code after RET"},
                {{O(TRUE), O(TRUE), I(JF_KEEP, 6), I(JF_KEEP, 6), O(TRUE), O(TOBOOL), O(RET)}, 7, 2, VM_BADCODE,
                 "two jumps to one target with different depths"},
        };
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                uint32_t start = rs.ncode;
                for (uint32_t k = 0; k < c[i].n; k++) {
                        uint32_t insn = c[i].insns[k];
                        if (INSN_OP(insn) == OP_JF_KEEP)
                                insn = INSN(OP_JF_KEEP, INSN_ARG(insn) + start);
                        code[rs.ncode++] = insn;
                }
                progs[rs.nprogs] = (Program){.start = start, .len = c[i].n, .max_stack = c[i].max};
                uint32_t p = rs.nprogs++;
                cr_assert_eq(vm_verify(&rs, p), c[i].want, "%s: %d", c[i].what, vm_verify(&rs, p));
        }
        /* vm_run refuses an unknown opcode and a RET on an empty stack */
        uint32_t start = rs.ncode;
        code[rs.ncode++] = INSN(_OP_MAX + 3, 0);
        progs[rs.nprogs] = (Program){.start = start, .len = 1, .max_stack = 1};
        cr_assert_eq(vm_run(&rs, rs.nprogs++, &f, &v), VM_BADCODE);
        start = rs.ncode;
        code[rs.ncode++] = O(RET);
        progs[rs.nprogs] = (Program){.start = start, .len = 1, .max_stack = 0};
        cr_assert_eq(vm_run(&rs, rs.nprogs++, &f, &v), VM_BADCODE);
}

#ifndef NDEBUG
/* Debug and sanitizer builds assert what vm_verify guarantees: a program
 * that leaves two values at RET (refused by vm_verify) stops there. */
Test(vm, unverified_two_values_at_ret_asserts, .signal = SIGABRT)
{
        setup();
        VmFrame f = frame();
        Value v;
        uint32_t start = rs.ncode;
        code[rs.ncode++] = O(TRUE);
        code[rs.ncode++] = O(TRUE);
        code[rs.ncode++] = O(RET);
        progs[rs.nprogs] = (Program){.start = start, .len = 3, .max_stack = 2};
        uint32_t p = rs.nprogs++;
        cr_assert_eq(vm_verify(&rs, p), VM_BADCODE);
        vm_run(&rs, p, &f, &v);
}
#endif

Test(vm, vm_test_truth)
{
        setup();
        VmFrame f = frame();
        cr_assert(vm_test(&rs, ADD(O(TRUE), O(RET)), &f));
        cr_assert(!vm_test(&rs, ADD(O(FALSE), O(RET)), &f));
        cr_assert(!vm_test(&rs, ADD(O(NULL), O(RET)), &f));
        cr_assert(!vm_test(&rs, ADD(I(CONST, C_NUM2), O(RET)), &f), "a number is not true");
        cr_assert(!vm_test(&rs, 99, &f), "bad program");
}

/* ---- disassembly ---- */

Test(vm, opcode_tables)
{
        cr_assert_str_eq(opcode_name(OP_CONST), "CONST");
        cr_assert_str_eq(opcode_name(OP_JF_KEEP), "JF_KEEP");
        cr_assert_str_eq(opcode_name(OP_RET), "RET");
        cr_assert_str_eq(opcode_name(OP_NOT_IN), "NOT_IN");
        cr_assert_str_eq(opcode_name(_OP_MAX), "???");
        cr_assert_eq(opcode_has_arg(OP_CONST), 1);
        cr_assert_eq(opcode_has_arg(OP_MATCH), 1);
        cr_assert_eq(opcode_has_arg(OP_EQ), 0);
        cr_assert_eq(opcode_has_arg(_OP_MAX), 0);
        cr_assert_eq(opcode_stack_effect(OP_FIELD), 1);
        cr_assert_eq(opcode_stack_effect(OP_EQ), -1);
        cr_assert_eq(opcode_stack_effect(OP_IN), 0);
        cr_assert_eq(opcode_stack_effect(OP_JT_KEEP), -1);
}

Test(vm, disasm_program)
{
        setup();
        setup_regexes();
        /* (result == "fail" and $name matches /…/) or not (enterprise.hazard in {…}) */
        uint32_t p = ADD(I(FIELD, S_RESULT), I(CONST, C_ENUM_FAIL), O(EQ), I(JF_KEEP, 7), I(CUR, S_NAME), I(MATCH, 0),
                         O(TOBOOL), I(JT_KEEP, 12), I(PROFILE, S_HAZARD), I(IN, SET_ENUM), O(NOT), O(TOBOOL), O(RET));
        Buf b = {0};
        rules_disasm_prog(&rs, p, &b);
        const char *want =
                "  0000  FIELD      0        ; result\n"
                "  0001  CONST      3        ; enum#1 (fail)\n"
                "  0002  EQ\n"
                "  0003  JF_KEEP    7        ; -> 0007\n"
                "  0004  CUR        2        ; $name\n"
                "  0005  MATCH      0        ; \"^冷链.*(超标|不合格)$\"\n"
                "  0006  TOBOOL\n"
                "  0007  JT_KEEP    12       ; -> 0012\n"
                "  0008  PROFILE    4        ; enterprise.hazard\n"
                "  0009  IN         2        ; {banned_drug, enum#2, enum#63, enum#255}\n"
                "  0010  NOT\n"
                "  0011  TOBOOL\n"
                "  0012  RET\n";
        cr_assert_str_eq(b.p, want);
        buf_free(&b);

        /* enum names from the other side of a comparison: grades and modes */
        uint32_t q = ADD(I(CONST, C_ENUM_B), O(GRADE), O(LT), I(JF_KEEP, 8), O(MODE), I(CONST, C_ENUM_B), O(EQ),
                         O(TOBOOL), I(JF_KEEP, 12), I(FIELD, S_DEVICE), I(NOT_IN, SET_STR), O(TOBOOL), O(RET));
        rules_disasm_prog(&rs, q, &b);
        want = "  0013  CONST      10       ; enum#1 (B)\n"
               "  0014  GRADE\n"
               "  0015  LT\n"
               "  0016  JF_KEEP    21       ; -> 0021\n"
               "  0017  MODE\n"
               "  0018  CONST      10       ; enum#1 (flying_inspection)\n"
               "  0019  EQ\n"
               "  0020  TOBOOL\n"
               "  0021  JF_KEEP    25       ; -> 0025\n"
               "  0022  FIELD      3        ; device_id\n"
               "  0023  NOT_IN     0        ; {\"a\", \"dev-cal\", \"食品\"}\n"
               "  0024  TOBOOL\n"
               "  0025  RET\n";
        cr_assert_str_eq(b.p, want);
        buf_free(&b);
        teardown_regexes();
}

static uint32_t nconst_extra;

/* Disassemble one instruction (with a RET after it, unverified). */
static char *dis1(uint32_t insn)
{
        uint32_t start = rs.ncode;
        code[rs.ncode++] = insn;
        code[rs.ncode++] = O(RET);
        progs[rs.nprogs] = (Program){.start = start, .len = 2, .max_stack = 1};
        Buf b = {0};
        rules_disasm_prog(&rs, rs.nprogs++, &b);
        char *nl = strchr(b.p, '\n'); /* keep the first line, without its address */
        *nl = 0;
        char *line = xstrdup(b.p + 8);
        buf_free(&b);
        rs.ncode = start;
        rs.nprogs--;
        return line;
}

#define DIS_EQ(insn, text)                                  \
        do {                                                \
                char *l_ = dis1(insn);                      \
                cr_assert_str_eq(l_, text);                 \
                free(l_);                                   \
        } while (0)

Test(vm, disasm_annotations)
{
        setup();
        /* more constants than the fixed pool: use a bigger one */
        static Value pool[NCONSTS + 8];
        memcpy(pool, consts, sizeof(consts));
        rs.consts = pool;
        nconst_extra = NCONSTS;
        pool[nconst_extra++] = value_num(0.1);
        pool[nconst_extra++] = value_num(-1e21);
        pool[nconst_extra++] = value_bool(true);
        pool[nconst_extra++] = value_null();
        const char *longs = "x冷链食品冷链食品冷链食品冷链食品冷链食品冷链食品"; /* 73 bytes, cut inside a character */
        pool[nconst_extra++] = value_str(longs, (uint32_t)strlen(longs));
        pool[nconst_extra++] = value_time(T0 + 5);
        pool[nconst_extra++] = value_dur(14 * 24 * H);
        pool[nconst_extra++] = value_str("a\tb\n", 4);
        rs.nconsts = nconst_extra;

        DIS_EQ(I(CONST, C_STR_LAB), "CONST      6        ; \"lab \\\"A\\\"\"");
        DIS_EQ(I(CONST, C_NUM2), "CONST      0        ; 2");
        DIS_EQ(I(CONST, C_ENUM_FAIL), "CONST      3        ; enum#1");
        DIS_EQ(I(CONST, C_DUR_1H), "CONST      4        ; 1h");
        DIS_EQ(I(CONST, C_TIME_T0), "CONST      5        ; 2025-03-02T02:15:00Z");
        DIS_EQ(I(CONST, C_STR_EMPTY), "CONST      9        ; \"\"");
        DIS_EQ(I(CONST, NCONSTS + 0), "CONST      11       ; 0.1");
        DIS_EQ(I(CONST, NCONSTS + 1), "CONST      12       ; -1e+21");
        DIS_EQ(I(CONST, NCONSTS + 2), "CONST      13       ; true");
        DIS_EQ(I(CONST, NCONSTS + 3), "CONST      14       ; null");
        DIS_EQ(I(CONST, NCONSTS + 4), "CONST      15       ; \"x冷链食品冷链食品冷链食品冷链食\"...");
        DIS_EQ(I(CONST, NCONSTS + 5), "CONST      16       ; 2025-03-02T02:15:00.005Z");
        DIS_EQ(I(CONST, NCONSTS + 6), "CONST      17       ; 14d");
        DIS_EQ(I(CONST, NCONSTS + 7), "CONST      18       ; \"a\\tb\\n\"");
        DIS_EQ(I(CONST, 500), "CONST      500      ; <bad constant>");
        DIS_EQ(I(FIELD, S_TIME), "FIELD      5        ; reading.time");
        DIS_EQ(I(CUR, S_DEVICE), "CUR        3        ; $device_id");
        DIS_EQ(I(PROFILE, S_CODE), "PROFILE    7        ; enterprise.code");
        DIS_EQ(I(FIELD, NSLOTS), "FIELD      8        ; <bad slot>");
        DIS_EQ(I(FLAG, 1), "FLAG       1        ; recall");
        DIS_EQ(I(FLAG, 2), "FLAG       2        ; <bad flag>");
        DIS_EQ(I(AGG, 0), "AGG        0        ; count(sampling within 30d)");
        DIS_EQ(I(AGG, 1), "AGG        1        ; absent(coldchain_reading for 2h)");
        DIS_EQ(I(AGG, 2), "AGG        2        ; <bad aggregate 2>");
        aggs[0] = (Aggregate){.kind = AGG_DISTINCT, .type = 0, .value_slot = S_CODE, .where = 3, .window_ms = 90 * 24 * H};
        DIS_EQ(I(AGG, 0), "AGG        0        ; distinct(sampling.code where <prog 3> within 90d)");
        DIS_EQ(I(IN, SET_NUM), "IN         1        ; {-1, 2.5, 8}");
        DIS_EQ(I(NOT_IN, SET_EMPTY), "NOT_IN     3        ; {}");
        DIS_EQ(I(IN, SET_ENUM), "IN         2        ; {enum#1, enum#2, enum#63, enum#255}");
        DIS_EQ(I(IN, NSETS), "IN         4        ; <bad set>");
        DIS_EQ(I(MATCH, 0), "MATCH      0        ; <bad regex>");
        DIS_EQ(I(JT_KEEP, 1234), "JT_KEEP    1234     ; -> 1234");
        DIS_EQ(O(NOW), "NOW");
        DIS_EQ(I(EQ, 5), "EQ         5        ; unused argument");
        char unknown[32];
        snprintf(unknown, sizeof(unknown), "<op %u>    7", (unsigned)_OP_MAX);
        DIS_EQ(INSN(_OP_MAX, 7), unknown);

        /* a long set is cut after 8 members */
        static Value many[12];
        static const char *const names[12] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k",
                                              "a-very-long-member-name-over-24-bytes"};
        for (int i = 0; i < 12; i++)
                many[i] = value_str(names[i], (uint32_t)strlen(names[i]));
        sets[SET_EMPTY] = (ConstSet){.tag = VT_STR, .n = 12, .v = many};
        DIS_EQ(I(IN, SET_EMPTY), "IN         3        ; {\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", ... 4 more}");
        many[0] = many[11];
        sets[SET_EMPTY].n = 1;
        DIS_EQ(I(IN, SET_EMPTY), "IN         3        ; {\"a-very-long-member-name-\"...}");

        Buf b = {0};
        rules_disasm_prog(&rs, PROG_NONE, &b);
        cr_assert_str_eq(b.p, "  (no program 4294967295)\n");
        buf_free(&b);
        progs[rs.nprogs] = (Program){.start = 4000, .len = 200};
        rules_disasm_prog(&rs, rs.nprogs++, &b);
        cr_assert_str_eq(b.p, "  (program 0 outside the code)\n");
        buf_free(&b);
}

Test(vm, disasm_rule)
{
        setup();
        uint32_t where = ADD(I(FIELD, S_RESULT), I(CUR, S_RESULT), O(EQ), O(RET));
        uint32_t when = ADD(I(AGG, 0), I(CONST, C_NUM2), O(GE), I(JT_KEEP, 5), I(AGG, 1), O(TOBOOL), O(RET));
        aggs[0] = (Aggregate){.kind = AGG_SUM, .type = 0, .value_slot = S_AMOUNT, .where = where, .window_ms = 90 * 24 * H};
        RuleFlag rf[2] = {{.flag = 0, .lifetime_ms = 30 * 24 * H}, {.flag = 1}};
        char *actions[2] = {"notify", "recall"};
        uint32_t raggs[2] = {0, 1};
        Rule r = {.id = "sampling.toxic", .on = 3, .when = when, .severity = SEV_CRITICAL, .status = RULE_SHADOW,
                  .score = 20, .max_score = 60.5, .expires_ms = 365 * 24 * H, .cooldown_ms = 24 * H, .for_ms = 30 * 60000,
                  .per_slot = S_DEVICE, .flags = rf, .nflags = 2, .actions = actions, .nactions = 2,
                  .message = {.src = "Sample {code} \"failed\""}, .timer_driven = true, .aggs = raggs, .naggs = 2};
        Buf b = {0};
        rules_disasm_rule(&rs, &r, &b);
        const char *want =
                "rule sampling.toxic  on: sampling,coldchain_reading  severity: critical  status: shadow  score: 20  "
                "max_score: 60.5  expires: 365d  cooldown: 1d  for: 30m  per: device_id  flags: problem_lead(30d),recall  "
                "actions: notify,recall  timer\n"
                "message: \"Sample {code} \\\"failed\\\"\"\n"
                "when (prog 1):\n"
                "  0004  AGG        0        ; sum(sampling.amount where <prog 0> within 90d)\n"
                "  0005  CONST      0        ; 2\n"
                "  0006  GE\n"
                "  0007  JT_KEEP    9        ; -> 0009\n"
                "  0008  AGG        1        ; absent(coldchain_reading for 2h)\n"
                "  0009  TOBOOL\n"
                "  0010  RET\n"
                "aggregate 0: sum(sampling.amount where <prog 0> within 90d)\n"
                "where (prog 0):\n"
                "  0000  FIELD      0        ; result\n"
                "  0001  CUR        0        ; $result\n"
                "  0002  EQ\n"
                "  0003  RET\n"
                "aggregate 1: absent(coldchain_reading for 2h)\n";
        cr_assert_str_eq(b.p, want);
        buf_free(&b);

        /* the minimal rule: only what is set */
        Rule m = {.id = "x", .on = 0, .when = where, .severity = SEV_INFO, .per_slot = -1, .is_static = true};
        rules_disasm_rule(&rs, &m, &b);
        cr_assert_str_eq(b.p, "rule x  on: -  severity: info  static\n"
                              "when (prog 0):\n"
                              "  0000  FIELD      0        ; result\n"
                              "  0001  CUR        0        ; $result\n"
                              "  0002  EQ\n"
                              "  0003  RET\n");
        buf_free(&b);
}
