/*
 * Unit tests for json.c (the validating scanner) and utf8.c:
 *   - a table of RFC 8259 corner cases, accepted and rejected;
 *   - member location (type, exact value span, last duplicate wins, nested keys ignored) and
 *     jw_json_member_id (decoding, integer ids of any size, bounds);
 *   - a property test: for many random texts built from JSON fragments and mutations, the
 *     scanner's verdict and member locations equal those of an independent reference
 *     (tests/fuzz/json_ref.h);
 *   - UTF-8: jw_utf8_seq_len against a reference decoder for every 1..3 byte sequence and a
 *     sample of 4 byte ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/json.h"
#include "jobwire/rand.h"
#include "jobwire/utf8.h"

#include "../fuzz/json_ref.h"

#define ID_PROBE 24 /* small enough that long ids hit the bound */

/* Scans an exact-size copy, so that ASan sees a read past the end. */
static bool
scan(const char *text, size_t len, struct jw_json_member *m, size_t nm)
{
    char *copy = jw_malloc(len ? len : 1);
    memcpy(copy, text, len);
    bool ok = jw_json_scan(copy, len, m, nm);
    free(copy);
    return ok;
}

struct jcase {
    const char *text;
    size_t len; /* 0: strlen */
};

static const struct jcase accepted[] = {
    {"[]", 0},
    {"{}", 0},
    {"0", 0},
    {"-0", 0},
    {"-0.0e-0", 0},
    {"1E+2", 0},
    {"1e-2", 0},
    {"123.456e789", 0},
    {"1e1000", 0},
    {"-123456789012345678901234567890", 0},
    {"\"\"", 0},
    {"\"\\u0000\"", 0},
    {"\"\\uDBFF\\uDFFF\"", 0},
    {"\"\\ud800\"", 0},
    {"\"\\udc00\"", 0},
    {"\"\\ud800\\ud800\"", 0},
    {"\"\\ud800\\u0041\"", 0},
    {"\"\\ud800\\\"\"", 0},
    {"\"\\/\\\\\\\"\\b\\f\\n\\r\\t\"", 0},
    {"\"\\u002F\\u00e9\\uABCD\"", 0},
    {"\"\x7f\"", 0},
    {"\"\xc2\x80\xdf\xbf\"", 0},
    {"\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"", 0},
    {"\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"", 0},
    {"true", 0},
    {"false", 0},
    {"null", 0},
    {" \t\n\r1 \t\n\r", 0},
    {"[[[[[]]]]]", 0},
    {"{\"\":0}", 0},
    {"{\"a\":{\"a\":{\"a\":[]}}}", 0},
    {"[1,\"a\",true,false,null,{},[],-1.5e-300]", 0},
    {"{\"a\" : 1 , \"b\" : [ 1 , 2 ] }", 0},
    {"{\"a\":1,\"a\":2}", 0},
};

static const struct jcase rejected[] = {
    {"", 0},
    {" ", 0},
    {"[", 0},
    {"]", 0},
    {"{", 0},
    {"}", 0},
    {"[}", 0},
    {"{]", 0},
    {"[1 2]", 0},
    {"[1,]", 0},
    {"[,]", 0},
    {"[,1]", 0},
    {"[1,,2]", 0},
    {"{\"a\" 1}", 0},
    {"{\"a\":1 \"b\":2}", 0},
    {"{\"a\":1,}", 0},
    {"{,}", 0},
    {"{1:1}", 0},
    {"{a:1}", 0},
    {"{\"a\":}", 0},
    {"{\"a\"}", 0},
    {"{\"a\":1", 0},
    {"[[]", 0},
    {"[]]", 0},
    {"{}}", 0},
    {"-", 0},
    {"--1", 0},
    {"+1", 0},
    {"01", 0},
    {"00", 0},
    {"-01", 0},
    {"1.", 0},
    {".1", 0},
    {"1.e1", 0},
    {"1e", 0},
    {"1e+", 0},
    {"1e-", 0},
    {"1E+-2", 0},
    {"0x1", 0},
    {"1_000", 0},
    {"Infinity", 0},
    {"-Infinity", 0},
    {"NaN", 0},
    {"tru", 0},
    {"True", 0},
    {"nul", 0},
    {"nulll", 0},
    {"truefalse", 0},
    {"\"", 0},
    {"\"abc", 0},
    {"\"\\\"", 0},
    {"\"\\u\"", 0},
    {"\"\\u12\"", 0},
    {"\"\\u00G0\"", 0},
    {"\"\\U0041\"", 0},
    {"\"\\a\"", 0},
    {"\"\\'\"", 0},
    {"\"\\x41\"", 0},
    {"\"\\", 0},
    {"\"\t\"", 0},
    {"\"\n\"", 0},
    {"\"\x1f\"", 0},
    {"\"a\0b\"", 5},
    {"\"\x80\"", 0},
    {"\"\xbf\"", 0},
    {"\"\xc0\x80\"", 0},
    {"\"\xc1\xbf\"", 0},
    {"\"\xe0\x9f\xbf\"", 0},
    {"\"\xed\xa0\x80\"", 0},
    {"\"\xed\xbf\xbf\"", 0},
    {"\"\xf0\x8f\xbf\xbf\"", 0},
    {"\"\xf4\x90\x80\x80\"", 0},
    {"\"\xf5\x80\x80\x80\"", 0},
    {"\"\xff\"", 0},
    {"\"\xe2\x82\"", 0},
    {"\"\xe2\x82", 0},
    {"\"\xc3\"", 0},
    {"[1]x", 0},
    {"[1]]", 0},
    {"1 2", 0},
    {"\0", 1},
    {"{}\0", 3},
    {"\xef\xbb\xbf{}", 0},
    {"/*c*/1", 0},
    {"//c\n1", 0},
    {"'a'", 0},
    {"\f1", 0},
    {"\v1", 0},
    {"\xc2\xa0"
     "1",
     0},
    {"[-]", 0},
    {"[1e1.5]", 0},
    {"[.]", 0},
    {"[\"a\\u0000\"", 0},
    {"\xe9", 0},
    {"[\xff]", 0},
};

static void
test_table_accept(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        const struct jcase *c = &accepted[i];
        size_t len = c->len ? c->len : strlen(c->text);
        if (!scan(c->text, len, NULL, 0))
            fail_msg("rejected valid JSON #%zu: %.*s", i, (int)len, c->text);
        assert_int_equal(ref_json(c->text, len, NULL, 0, 100), 1); /* the oracle agrees */
    }
}

static void
test_table_reject(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        const struct jcase *c = &rejected[i];
        size_t len = c->len ? c->len : strlen(c->text);
        if (scan(c->text, len, NULL, 0))
            fail_msg("accepted invalid JSON #%zu: %.*s", i, (int)len, c->text);
        assert_int_equal(ref_json(c->text, len, NULL, 0, 100), 0);
    }
}

static void
test_deep_nesting(void **state)
{
    (void)state;
    /* 200000 levels: the container stack grows on the heap; no recursion. */
    enum { DEPTH = 200000 };
    char *t = jw_malloc(4 * DEPTH + 8);
    size_t n = 0;
    for (int i = 0; i < DEPTH; i++) {
        if (i % 3 == 2) {
            memcpy(t + n, "{\"k\":", 5);
            n += 5;
        } else {
            t[n++] = '[';
        }
    }
    size_t open = n;
    for (int i = DEPTH - 1; i >= 0; i--)
        t[n++] = i % 3 == 2 ? '}' : ']';
    assert_true(scan(t, n, NULL, 0));
    assert_false(scan(t, n - 1, NULL, 0));  /* one closer short */
    assert_false(scan(t, open, NULL, 0));   /* none closed */
    t[n - 1] = t[n - 1] == ']' ? '}' : ']'; /* the outermost closer of the wrong kind */
    assert_false(scan(t, n, NULL, 0));
    free(t);
}

struct mcase {
    const char *text;
    const char *name;
    enum jw_json_type type;
    const char *value; /* the exact span; NULL when absent */
};

static void
test_member_location(void **state)
{
    (void)state;
    static const struct mcase cases[] = {
        {"{\"jobId\":\"j1\"}", "jobId", JW_JSON_STRING, "\"j1\""},
        {"{\"jobId\" :  42 }", "jobId", JW_JSON_NUMBER, "42"},
        {"{\"jobId\":-1.5e3,\"x\":1}", "jobId", JW_JSON_NUMBER, "-1.5e3"},
        {"{\"jobId\":true}", "jobId", JW_JSON_OTHER, "true"},
        {"{\"jobId\":null}", "jobId", JW_JSON_OTHER, "null"},
        {"{\"jobId\":{\"a\":[1,{}]}}", "jobId", JW_JSON_OTHER, "{\"a\":[1,{}]}"},
        {"{\"jobId\":[[],[[]]] , \"b\":2}", "jobId", JW_JSON_OTHER, "[[],[[]]]"},
        {"{\"jobId\":{}}", "jobId", JW_JSON_OTHER, "{}"},
        {"{\"jobId\":\"a\",\"jobId\":\"b\"}", "jobId", JW_JSON_STRING, "\"b\""},
        {"{\"jobId\":\"a\",\"jobId\":7}", "jobId", JW_JSON_NUMBER, "7"},
        {"{\"x\":{\"jobId\":\"inner\"}}", "jobId", JW_JSON_NONE, NULL},
        {"{\"x\":[{\"jobId\":1}],\"jobId\":2}", "jobId", JW_JSON_NUMBER, "2"},
        {"{\"jobId\":{\"jobId\":1}}", "jobId", JW_JSON_OTHER, "{\"jobId\":1}"},
        {"[{\"jobId\":1}]", "jobId", JW_JSON_NONE, NULL},
        {"\"jobId\"", "jobId", JW_JSON_NONE, NULL},
        {"{\"job\\u0049d\":\"escaped key\"}", "jobId", JW_JSON_STRING, "\"escaped key\""},
        {"{\"jobid\":1}", "jobId", JW_JSON_NONE, NULL},
        {"{\"jobIdx\":1}", "jobId", JW_JSON_NONE, NULL},
        {"{\"\":1}", "", JW_JSON_NUMBER, "1"},
        /* an invalid text locates nothing, even what came before the error */
        {"{\"jobId\":\"j1\",}", "jobId", JW_JSON_NONE, NULL},
        {"{\"jobId\":\"j1\"} x", "jobId", JW_JSON_NONE, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct mcase *c = &cases[i];
        struct jw_json_member m[2] = {{.name = c->name}, {.name = "other"}};
        m[0].type = m[1].type = (enum jw_json_type)99; /* must be set */
        scan(c->text, strlen(c->text), m, 2);
        if (m[0].type != c->type)
            fail_msg("case %zu (%s): type %d, expected %d", i, c->text, m[0].type, c->type);
        assert_int_equal(m[1].type, JW_JSON_NONE);
        if (c->value &&
            (m[0].len != strlen(c->value) || memcmp(c->text + m[0].start, c->value, m[0].len) != 0))
            fail_msg("case %zu (%s): value located at \"%.*s\", expected \"%s\"", i, c->text,
                     (int)m[0].len, c->text + m[0].start, c->value);
    }
}

static void
test_member_id(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t size;
        const char *want; /* NULL: 0 */
        size_t want_len;
    } cases[] = {
        {"{\"id\":\"abc\"}", 64, "abc", 3},
        {"{\"id\":\"a\\u0000b\"}", 64, "a\0b", 3}, /* NUL decoded: the caller validates */
        {"{\"id\":\"\\u00e9\\ud83d\\ude00\"}", 64, "\xc3\xa9\xf0\x9f\x98\x80", 6},
        {"{\"id\":\"\\ud83d\"}", 64, NULL, 0},
        {"{\"id\":\"x\\udc00\"}", 64, NULL, 0},
        {"{\"id\":\"\\\"\\\\\\/\\n\"}", 64, "\"\\/\n", 4},
        {"{\"id\":\"\"}", 64, "", 0},
        {"{\"id\":\"abcd\"}", 5, "abcd", 4},     /* fits exactly, with its NUL */
        {"{\"id\":\"abcde\"}", 5, NULL, 0},      /* one byte too long */
        {"{\"id\":\"abc\\u00e9\"}", 5, NULL, 0}, /* the escape does not fit */
        {"{\"id\":\"ab\xc3\xa9\"}", 5, "ab\xc3\xa9", 4},
        {"{\"id\":\"abc\xc3\xa9\"}", 5, NULL, 0},
        {"{\"id\":42}", 64, "42", 2},
        {"{\"id\":-42}", 64, "-42", 3},
        {"{\"id\":0}", 64, "0", 1},
        {"{\"id\":123456789012345678901234567890}", 64, "123456789012345678901234567890", 30},
        {"{\"id\":1234}", 5, "1234", 4},
        {"{\"id\":12345}", 5, NULL, 0},
        {"{\"id\":1.0}", 64, NULL, 0},
        {"{\"id\":1e3}", 64, NULL, 0},
        {"{\"id\":-0.5}", 64, NULL, 0},
        {"{\"id\":true}", 64, NULL, 0},
        {"{\"id\":[\"a\"]}", 64, NULL, 0},
        {"{\"other\":\"a\"}", 64, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw_json_member m = {.name = "id"};
        struct ref_member rm = {.name = "id"};
        const char *t = cases[i].text;
        assert_true(scan(t, strlen(t), &m, 1));
        assert_int_equal(ref_json(t, strlen(t), &rm, 1, 100), 1);
        char out[64], ref_out[64];
        memset(out, 'Z', sizeof out);
        size_t n = jw_json_member_id(t, &m, out, cases[i].size);
        size_t rn = ref_member_id(t, &rm, ref_out, cases[i].size);
        if (!cases[i].want) {
            if (n != 0)
                fail_msg("case %zu (%s, size %zu): %zu bytes, expected none", i, t, cases[i].size,
                         n);
            assert_int_equal(rn, 0);
            continue;
        }
        if (n != cases[i].want_len)
            fail_msg("case %zu (%s): %zu bytes, expected %zu", i, t, n, cases[i].want_len);
        assert_memory_equal(out, cases[i].want, n);
        assert_int_equal(out[n], '\0');
        assert_int_equal(rn, n);
        assert_memory_equal(ref_out, out, n);
        for (size_t k = n + 1; k < sizeof out; k++) /* nothing written past the NUL */
            if (k >= cases[i].size)
                assert_int_equal(out[k], 'Z');
    }
}

/* ---- property test against the reference ------------------------------------------------ */

static const char *const fragments[] = {
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"jobId\"",
    "\"userId\"",
    "\"a\"",
    "0",
    "-",
    "1",
    "23",
    ".",
    "e",
    "E",
    "+",
    "true",
    "false",
    "null",
    "tru",
    " ",
    "\n",
    "\t",
    "\r",
    "\\",
    "\\u",
    "00e9",
    "d83d",
    "\\ud83d",
    "\\ude00",
    "\\n",
    "\\\"",
    "\x7f",
    "\xc3\xa9",
    "\xc3",
    "\xa9",
    "\xed\xa0\x80",
    "\xf0\x9f\x98\x80",
    "\xff",
    "\x01",
    "\0",
    "x",
    "\"x\":",
    "1e400",
    "{\"jobId\":",
    "[{\"jobId\":1}]",
};
#define NFRAG (sizeof fragments / sizeof fragments[0])

/* A random text: fragments, sometimes a valid document with one byte changed. */
static size_t
random_text(uint64_t *rng, char *out, size_t cap)
{
    static const char *const docs[] = {
        "{\"jobId\":\"j\\u00e9\",\"userId\":42,\"p\":[1,2.5e-3,{\"x\":null}],\"s\":\"\\ud83d\"}",
        "[true,false,null,\"\",{},[],-0,\"\\\\\\/\"]",
        "{\"userId\":\"u\",\"userId\":\"v\",\"jobId\":{\"jobId\":1}}",
        " {\"a\" : [ 1 , 2 ] , \"jobId\" : -12345678901234567890 } ",
    };
    size_t n = 0;
    if (jw_random_below(rng, 3) == 0) {
        const char *d = docs[jw_random_below(rng, sizeof docs / sizeof docs[0])];
        n = strlen(d);
        memcpy(out, d, n);
        int edits = (int)jw_random_below(rng, 3);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = jw_random_below(rng, n);
            switch (jw_random_below(rng, 3)) {
            case 0: /* replace */
                out[at] = (char)jw_random_below(rng, 256);
                break;
            case 1: /* delete */
                memmove(out + at, out + at + 1, n - at - 1);
                n--;
                break;
            default: /* duplicate */
                if (n + 1 < cap) {
                    memmove(out + at + 1, out + at, n - at);
                    n++;
                }
            }
        }
        return n;
    }
    int k = 1 + (int)jw_random_below(rng, 12);
    for (int i = 0; i < k; i++) {
        const char *f = fragments[jw_random_below(rng, NFRAG)];
        size_t fl = f[0] ? strlen(f) : 1; /* "\0" is one NUL byte */
        if (n + fl > cap)
            break;
        memcpy(out + n, f, fl);
        n += fl;
    }
    return n;
}

static void
test_property_against_reference(void **state)
{
    (void)state;
    uint64_t rng = jw_random_seed();
    uint64_t seed = rng;
    char text[512];
    size_t accepted_n = 0, bad_spans = 0;
    for (int i = 0; i < 100000; i++) {
        size_t n = random_text(&rng, text, sizeof text);
        struct jw_json_member m[2] = {{.name = "jobId"}, {.name = "userId"}};
        struct ref_member rm[2] = {{.name = "jobId"}, {.name = "userId"}};
        bool got = scan(text, n, m, 2);
        int want = ref_json(text, n, rm, 2, 1000);
        if (want < 0)
            continue;
        if (got != (want == 1))
            fail_msg("seed %llu case %d: scanner %s, reference %s: %.*s", (unsigned long long)seed,
                     i, got ? "accepts" : "rejects", want ? "accepts" : "rejects", (int)n, text);
        accepted_n += got;
        for (int k = 0; k < 2; k++) {
            if ((int)m[k].type != (int)rm[k].type)
                fail_msg("seed %llu case %d: member %s typed differently: %.*s",
                         (unsigned long long)seed, i, m[k].name, (int)n, text);
            if (m[k].type && (m[k].start != rm[k].start || m[k].len != rm[k].len)) {
                /* a wrong span of a container value does not change any id (they are never
                 * ids): counted and reported at the end, so that verdicts keep being checked */
                if (m[k].type != JW_JSON_OTHER)
                    fail_msg("seed %llu case %d: member %s located differently: %.*s",
                             (unsigned long long)seed, i, m[k].name, (int)n, text);
                if (!bad_spans++)
                    print_error("member %s: span [%zu,+%zu), reference [%zu,+%zu) in %.*s\n",
                                m[k].name, m[k].start, m[k].len, rm[k].start, rm[k].len, (int)n,
                                text);
            }
            if (!m[k].type)
                continue;
            char a[ID_PROBE], b[ID_PROBE];
            size_t an = jw_json_member_id(text, &m[k], a, sizeof a);
            size_t bn = ref_member_id(text, &rm[k], b, sizeof b);
            if (an != bn || memcmp(a, b, an) != 0)
                fail_msg("seed %llu case %d: member id of %s differs: %.*s",
                         (unsigned long long)seed, i, m[k].name, (int)n, text);
        }
    }
    assert_true(accepted_n > 1000); /* the generator reaches valid texts too */
    if (bad_spans)
        fail_msg("%zu container member values located at a wrong span", bad_spans);
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

static void
test_utf8_exhaustive(void **state)
{
    (void)state;
    unsigned char b[4];
    uint32_t cp;
    /* every 1- and 2-byte sequence, and every 3-byte one with a 3-byte lead */
    for (uint32_t v = 0; v < (1u << 16) + (16u << 16); v++) {
        size_t len = v < (1u << 16) ? 2 : 3;
        if (len == 2) {
            b[0] = (unsigned char)(v >> 8), b[1] = (unsigned char)v;
        } else {
            uint32_t w = v - (1u << 16);
            b[0] = (unsigned char)(0xE0 + (w >> 16)), b[1] = (unsigned char)(w >> 8);
            b[2] = (unsigned char)w;
        }
        for (size_t l = len == 2 ? 1 : 3; l <= len; l++) {
            if (l == 1 && b[1] != 0)
                continue; /* one byte: once per lead */
            size_t want = ref_utf8(b, b + l, &cp);
            if (b[0] >= 0x80 && jw_utf8_seq_len(b, b + l) != want)
                fail_msg("jw_utf8_seq_len(%02x %02x %02x, len %zu) != %zu", b[0], b[1], b[2], l,
                         want);
            if (jw_utf8_valid((const char *)b, l) != ref_utf8_valid(b, l))
                fail_msg("jw_utf8_valid(%02x %02x %02x, len %zu) disagrees", b[0], b[1], b[2], l);
        }
    }
    /* 4-byte sequences: every lead byte with a sample of continuations, and the edges */
    uint64_t rng = jw_random_seed();
    for (int i = 0; i < 200000; i++) {
        b[0] = (unsigned char)(0xE0 + jw_random_below(&rng, 32));
        for (int k = 1; k < 4; k++)
            b[k] = (unsigned char)(jw_random_below(&rng, 4) ? 0x80 + jw_random_below(&rng, 64)
                                                            : jw_random_below(&rng, 256));
        size_t want = ref_utf8(b, b + 4, &cp);
        if (jw_utf8_seq_len(b, b + 4) != want)
            fail_msg("jw_utf8_seq_len(%02x %02x %02x %02x) != %zu", b[0], b[1], b[2], b[3], want);
        if (jw_utf8_valid((const char *)b, 4) != ref_utf8_valid(b, 4))
            fail_msg("jw_utf8_valid(%02x %02x %02x %02x) disagrees", b[0], b[1], b[2], b[3]);
    }
    assert_true(jw_utf8_valid("", 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_accept),    cmocka_unit_test(test_table_reject),
        cmocka_unit_test(test_deep_nesting),    cmocka_unit_test(test_member_location),
        cmocka_unit_test(test_member_id),       cmocka_unit_test(test_property_against_reference),
        cmocka_unit_test(test_utf8_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
