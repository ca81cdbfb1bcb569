/*
 * Unit tests for event.c: channel rules (job channels, payload job ids, user channels, jobwire's
 * own channel), the UTF-8 and control-byte checks on every channel segment and id, the payload
 * rules (valid JSON passes through verbatim, whatever jansson thinks of it; invalid JSON or
 * UTF-8 is not_json), the frame built once per event (eventId, conflation key), and event ids
 * (epoch, format, parse).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/event.h"
#include "jobwire/json.h"
#include "jobwire/rand.h"
#include "jobwire/utf8.h"

static const struct jw_user_channel user_channels[] = {
    {.prefix = "ai:recommendations:", .kind = "recommendation"},
    {.prefix = "notes/", .kind = "note"},
};
static const struct jw_event_rules rules = {.prefix = "ai:job:",
                                            .max_payload_bytes = 256,
                                            .user_channels = user_channels,
                                            .nuser_channels = 2};
/* For payloads larger than 256 bytes (deep nesting). */
static const struct jw_event_rules big_rules = {.prefix = "ai:job:",
                                                .max_payload_bytes = 1 << 20,
                                                .user_channels = user_channels,
                                                .nuser_channels = 2};

static uint64_t next_id = 1;

static enum jw_event_verdict
parse_n(const struct jw_event_rules *r, const char *channel, size_t clen, const char *payload,
        size_t plen, struct jw_event **ev)
{
    /* Exact-size copies: neither part is NUL-terminated on the wire. */
    char *c = jw_malloc(clen ? clen : 1), *p = jw_malloc(plen ? plen : 1);
    memcpy(c, channel, clen);
    memcpy(p, payload, plen);
    enum jw_event_verdict v = jw_event_parse(r, c, clen, p, plen, next_id, ev);
    if (v == JW_EVENT_OK)
        next_id++;
    else
        assert_null(*ev);
    free(c);
    free(p);
    return v;
}

static enum jw_event_verdict
parse(const char *channel, const char *payload, struct jw_event **ev)
{
    *ev = (void *)1; /* must be reset */
    return parse_n(&rules, channel, strlen(channel), payload, strlen(payload), ev);
}

/* The frame completed as the writer completes it. */
static char *
complete_frame(const struct jw_event *ev, size_t *len)
{
    assert_non_null(ev->frame);
    assert_int_equal(ev->frame->sequenced, 1);
    assert_int_equal(ev->frame->text[ev->frame->len], '\0');
    char *out = jw_malloc(ev->frame->len + 16);
    memcpy(out, ev->frame->text, ev->frame->len);
    memcpy(out + ev->frame->len, ",\"seq\":1}", 10);
    *len = ev->frame->len + 9;
    return out;
}

/* The completed frame is UTF-8 and one JSON text (by our scanner, which handles what jansson
 * refuses); returns it parsed by jansson when jansson can, else NULL. */
static json_t *
frame_json(const struct jw_event *ev, int jansson_must_parse)
{
    size_t len;
    char *text = complete_frame(ev, &len);
    assert_true(jw_utf8_valid(text, len));
    assert_true(jw_json_scan(text, len, NULL, 0));
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
    if (jansson_must_parse && !root)
        fail_msg("frame is not JSON to jansson: %s in %.*s", err.text, (int)len, text);
    free(text);
    return root;
}

static const char *
get_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* The payload is embedded byte for byte: `"payload":<payload>,"eventId":` */
static void
assert_payload_verbatim(const struct jw_event *ev, const char *payload, size_t plen)
{
    const char *t = ev->frame->text;
    const char *p = strstr(t, ",\"payload\":");
    assert_non_null(p);
    p += strlen(",\"payload\":");
    assert_true((size_t)(t + ev->frame->len - p) >= plen);
    assert_memory_equal(p, payload, plen);
    char id[JW_EVENT_ID_TEXT_MAX];
    size_t n = jw_event_id_format(ev->id, id);
    char tail[64];
    snprintf(tail, sizeof tail, ",\"eventId\":\"%.*s\"", (int)n, id);
    assert_int_equal((size_t)(t + ev->frame->len - (p + plen)), strlen(tail));
    assert_memory_equal(p + plen, tail, strlen(tail));
}

static void
test_kind_and_job_from_channel(void **state)
{
    (void)state;
    struct jw_event *ev;
    uint64_t id = next_id;
    assert_int_equal(parse("ai:job:progress:job_1", "{\"userId\":\"u1\",\"progress\":45}", &ev),
                     JW_EVENT_OK);
    assert_int_equal(ev->msg.type, JW_MSG_EVENT);
    assert_int_equal(ev->refs, 1);
    assert_int_equal(ev->kind, JW_KIND_PROGRESS);
    assert_int_equal(ev->id, id);
    assert_int_equal(ev->frame->event_id, id);
    assert_true(ev->frame->origin_ns > 0);
    assert_string_equal(ev->frame->type, "event");
    assert_string_equal(ev->job_id, "job_1");
    assert_string_equal(ev->user_id, "u1");
    json_t *f = frame_json(ev, 1);
    assert_string_equal(get_str(f, "type"), "event");
    assert_string_equal(get_str(f, "kind"), "progress");
    assert_string_equal(get_str(f, "jobId"), "job_1");
    assert_string_equal(get_str(f, "userId"), "u1");
    assert_string_equal(get_str(f, "channel"), "ai:job:progress:job_1");
    assert_true(json_number_value(json_object_get(json_object_get(f, "payload"), "progress")) ==
                45);
    char want[JW_EVENT_ID_TEXT_MAX];
    jw_event_id_format(id, want);
    assert_string_equal(get_str(f, "eventId"), want);
    assert_true(json_number_value(json_object_get(f, "seq")) == 1);
    assert_int_equal(json_object_size(f), 8);
    json_decref(f);
    jw_event_unref(ev);
}

static void
test_each_kind(void **state)
{
    (void)state;
    static const struct {
        const char *channel;
        enum jw_kind kind;
        const char *name;
    } cases[] = {{"ai:job:status:j", JW_KIND_STATUS, "status"},
                 {"ai:job:progress:j", JW_KIND_PROGRESS, "progress"},
                 {"ai:job:complete:j", JW_KIND_COMPLETE, "complete"},
                 {"ai:job:error:j", JW_KIND_ERROR, "error"},
                 {"ai:job:result:j", JW_KIND_OTHER, "result"},
                 {"ai:job:Status:j", JW_KIND_OTHER, "Status"},
                 {"ai:job:other:j", JW_KIND_OTHER, "other"},
                 {"ai:job:\xc3\xa9tat:j", JW_KIND_OTHER, "\xc3\xa9tat"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct jw_event *ev;
        assert_int_equal(parse(cases[i].channel, "{}", &ev), JW_EVENT_OK);
        assert_int_equal(ev->kind, cases[i].kind);
        assert_null(ev->user_id);
        json_t *f = frame_json(ev, 1);
        assert_string_equal(get_str(f, "kind"), cases[i].name); /* the name as published */
        assert_null(json_object_get(f, "userId"));
        json_decref(f);
        jw_event_unref(ev);
    }
}

static void
test_job_id_from_payload(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        const char *job, *user;
    } cases[] = {
        {"{\"jobId\":\"123\",\"status\":\"completed\"}", "123", NULL},
        {"{\"jobId\":42,\"userId\":7}", "42", "7"},
        {"{\"jobId\":-3,\"userId\":-0}", "-3", "-0"},
        /* integers beyond 64 bits are ids as written, not numbers */
        {"{\"jobId\":123456789012345678901234567890,\"userId\":99999999999999999999999}",
         "123456789012345678901234567890", "99999999999999999999999"},
        {"{\"jobId\":\"a\\u00e9\\ud83d\\ude00\"}", "a\xc3\xa9\xf0\x9f\x98\x80", NULL},
        {"{\"jobId\":\"q\\\"\\\\/\"}", "q\"\\/", NULL},
        /* duplicate keys: the last one wins, as in jansson and JavaScript */
        {"{\"jobId\":\"first\",\"jobId\":\"second\",\"userId\":\"a\",\"userId\":\"b\"}", "second",
         "b"},
        /* nested members named like ids do not count */
        {"{\"x\":{\"jobId\":\"inner\",\"userId\":\"inner\"},\"jobId\":\"outer\"}", "outer", NULL},
        /* a userId with a fraction names nobody */
        {"{\"jobId\":\"j\",\"userId\":1.5}", "j", NULL},
        {"{\"jobId\":\"j\",\"userId\":null}", "j", NULL},
        {"{\"jobId\":\"j\",\"userId\":{}}", "j", NULL},
        {" \t\r\n{ \"jobId\" : \"ws\" } \n", "ws", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw_event *ev;
        enum jw_event_verdict v = parse("ai:job:status", cases[i].payload, &ev);
        if (v != JW_EVENT_OK)
            fail_msg("case %zu (%s): %s", i, cases[i].payload, jw_event_verdict_name(v));
        assert_int_equal(ev->kind, JW_KIND_STATUS);
        assert_string_equal(ev->job_id, cases[i].job);
        if (cases[i].user)
            assert_string_equal(ev->user_id, cases[i].user);
        else
            assert_null(ev->user_id);
        json_t *f = frame_json(ev, 1);
        assert_string_equal(get_str(f, "jobId"), cases[i].job);
        json_decref(f);
        assert_payload_verbatim(ev, cases[i].payload, strlen(cases[i].payload));
        jw_event_unref(ev);
    }
}

static void
test_longest_ids(void **state)
{
    (void)state;
    char payload[512], channel[256];
    struct jw_event *ev;
    int bad = 0;
    /* JW_ID_MAX digits: an id; one more: a bad id, whether written as a string or a number. */
    for (int quoted = 0; quoted < 2; quoted++) {
        for (int extra = 0; extra < 2; extra++) {
            int n = JW_ID_MAX + extra;
            char digits[JW_ID_MAX + 2];
            memset(digits, '7', (size_t)n);
            digits[n] = '\0';
            snprintf(payload, sizeof payload, "{\"jobId\":%s%s%s}", quoted ? "\"" : "", digits,
                     quoted ? "\"" : "");
            struct jw_event_rules r = rules;
            r.max_payload_bytes = sizeof payload;
            ev = (void *)1;
            enum jw_event_verdict v = parse_n(&r, "ai:job:status", strlen("ai:job:status"), payload,
                                              strlen(payload), &ev);
            if (!extra) {
                assert_int_equal(v, JW_EVENT_OK);
                assert_int_equal(strlen(ev->job_id), JW_ID_MAX);
            } else if (v != JW_EVENT_BAD_ID) {
                print_error("jobId of %d digits (%s): %s, expected bad_id\n", n,
                            quoted ? "string" : "integer", jw_event_verdict_name(v));
                bad++;
            }
            if (v == JW_EVENT_OK)
                jw_event_unref(ev);
            snprintf(payload, sizeof payload, "{\"userId\":%s%s%s}", quoted ? "\"" : "", digits,
                     quoted ? "\"" : "");
            ev = (void *)1;
            v = parse_n(&r, "ai:job:status:j", strlen("ai:job:status:j"), payload, strlen(payload),
                        &ev);
            if (!extra) {
                assert_int_equal(v, JW_EVENT_OK);
                assert_int_equal(strlen(ev->user_id), JW_ID_MAX);
            } else if (v != JW_EVENT_BAD_ID) {
                /* delivering it to nobody but admins would hide a publisher's mistake */
                print_error("userId of %d digits (%s): %s (user %s), expected bad_id\n", n,
                            quoted ? "string" : "integer", jw_event_verdict_name(v),
                            v == JW_EVENT_OK && ev->user_id ? ev->user_id : "none");
                bad++;
            }
            if (v == JW_EVENT_OK)
                jw_event_unref(ev);
        }
    }
    /* The same bound on the channel's job segment. */
    int n = snprintf(channel, sizeof channel, "ai:job:status:");
    memset(channel + n, 'x', JW_ID_MAX);
    channel[n + JW_ID_MAX] = '\0';
    assert_int_equal(parse(channel, "{}", &ev), JW_EVENT_OK);
    jw_event_unref(ev);
    channel[n + JW_ID_MAX] = 'x';
    channel[n + JW_ID_MAX + 1] = '\0';
    assert_int_equal(parse(channel, "{}", &ev), JW_EVENT_BAD_ID);
    assert_int_equal(bad, 0);
}

static void
test_channel_job_id_wins_and_may_hold_colons(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status:a:b", "{\"jobId\":\"other\"}", &ev), JW_EVENT_OK);
    assert_string_equal(ev->job_id, "a:b");
    jw_event_unref(ev);
    /* the payload's jobId is not even read: a bad one does not matter */
    assert_int_equal(parse("ai:job:status:a", "{\"jobId\":\"\\u0000\"}", &ev), JW_EVENT_OK);
    assert_string_equal(ev->job_id, "a");
    jw_event_unref(ev);
}

/* Every rejected message has the verdict of its defect class. */
static void
test_rejections(void **state)
{
    (void)state;
    static const struct {
        const char *channel;
        size_t clen; /* 0: strlen */
        const char *payload;
        size_t plen; /* 0: strlen */
        enum jw_event_verdict want;
    } cases[] = {
        {"other:progress:j", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        {"ai:job:", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        {"ai:job", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        {"ai:job::j", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        {"AI:JOB:status:j", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        {"ai:recommendations:", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        {"ai:recommendations", 0, "{}", 0, JW_EVENT_NOT_MATCHED},
        /* channel segments: UTF-8 without control bytes */
        {"ai:job:st\xffus:j", 0, "{}", 0, JW_EVENT_BAD_ID},
        {"ai:job:\xc0\xaf:j", 0, "{}", 0, JW_EVENT_BAD_ID},               /* overlong '/' */
        {"ai:job:status:j\xed\xa0\x80", 0, "{}", 0, JW_EVENT_BAD_ID},     /* a surrogate */
        {"ai:job:status:j\xf4\x90\x80\x80", 0, "{}", 0, JW_EVENT_BAD_ID}, /* > U+10FFFF */
        {"ai:job:status:j\xe2\x82", 0, "{}", 0, JW_EVENT_BAD_ID},         /* truncated */
        {"ai:job:status:j\x01", 0, "{}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status:j\x7f", 0, "{}", 0, JW_EVENT_BAD_ID},
        {"ai:job:sta\ttus:j", 0, "{}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status:j\0x", 16, "{}", 0, JW_EVENT_BAD_ID}, /* NUL in the job id */
        {"ai:job:sta\0tus:j", 16, "{}", 0, JW_EVENT_BAD_ID},  /* NUL in the kind */
        {"ai:job:status\0", 14, "{\"jobId\":\"j\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status:", 0, "{}", 0, JW_EVENT_BAD_ID}, /* empty job id */
        {"ai:recommendations:u\xff", 0, "{}", 0, JW_EVENT_BAD_ID},
        {"ai:recommendations:u\0", 21, "{}", 0, JW_EVENT_BAD_ID},
        {"notes/\x1b[31m", 0, "{}", 0, JW_EVENT_BAD_ID},
        /* ids in the payload */
        {"ai:job:status", 0, "{\"jobId\":\"\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status", 0, "{\"jobId\":\"a\\u0000b\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status", 0, "{\"jobId\":\"a\\u001fb\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status", 0, "{\"jobId\":\"a\\u007fb\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status", 0, "{\"jobId\":\"\\ud800\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status", 0, "{\"jobId\":\"\\udc00x\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status:j", 0, "{\"userId\":\"a\\u0001b\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status:j", 0, "{\"userId\":\"\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status:j", 0, "{\"userId\":\"\\ud83d\"}", 0, JW_EVENT_BAD_ID},
        {"ai:job:status", 0, "{\"status\":\"x\"}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "[1,2]", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "\"jobId\"", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"jobId\":null}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"jobId\":true}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"jobId\":[\"j\"]}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"jobId\":{\"id\":\"j\"}}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"jobId\":1.5}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"jobId\":1e3}", 0, JW_EVENT_NO_JOB_ID},
        {"ai:job:status", 0, "{\"x\":{\"jobId\":\"j\"}}", 0, JW_EVENT_NO_JOB_ID},
        /* payloads that are not one JSON text of UTF-8 */
        {"ai:job:progress:j", 0, "not json", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "{\"a\":1} trailing", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "{}{}", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "   ", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\"\xff\xfe\"", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\"\xed\xa0\x80\"", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\"\xc1\x81\"", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "{\"\xe2\x82\":1}", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\xef\xbb\xbf{}", 0, JW_EVENT_NOT_JSON}, /* a BOM */
        {"ai:job:progress:j", 0, "\"a\nb\"", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\"a\0b\"", 5, JW_EVENT_NOT_JSON}, /* raw NUL */
        {"ai:job:progress:j", 0, "{}\0", 3, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\"\\x41\"", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "\"\\u12\"", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "'a'", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "01", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "NaN", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "[1,]", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "{\"a\":1,}", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "{\"a\"}", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "[[[]]", 0, JW_EVENT_NOT_JSON},
        {"ai:job:progress:j", 0, "{\"userId\":\"u\"", 0, JW_EVENT_NOT_JSON},
        {"ai:recommendations:u1", 0, "{", 0, JW_EVENT_NOT_JSON},
        {"ai:job:status", 0, "{\"jobId\":\"j\",}", 0, JW_EVENT_NOT_JSON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw_event *ev = (void *)1;
        size_t clen = cases[i].clen ? cases[i].clen : strlen(cases[i].channel);
        size_t plen = cases[i].plen ? cases[i].plen : strlen(cases[i].payload);
        enum jw_event_verdict v =
            parse_n(&rules, cases[i].channel, clen, cases[i].payload, plen, &ev);
        if (v != cases[i].want)
            fail_msg("case %zu (channel %.*s): %s, expected %s", i, (int)clen, cases[i].channel,
                     jw_event_verdict_name(v), jw_event_verdict_name(cases[i].want));
    }
}

static void
test_too_large(void **state)
{
    (void)state;
    /* Exactly max_payload_bytes: accepted; one more: too_large, even when valid JSON. */
    char big[258];
    struct jw_event *ev;
    memset(big, ' ', sizeof big);
    big[0] = '1';
    assert_int_equal(parse_n(&rules, "ai:job:status:j", 15, big, 256, &ev), JW_EVENT_OK);
    jw_event_unref(ev);
    assert_int_equal(parse_n(&rules, "ai:job:status:j", 15, big, 257, &ev), JW_EVENT_TOO_LARGE);
    assert_int_equal(parse_n(&rules, "ai:recommendations:u", 20, big, 257, &ev),
                     JW_EVENT_TOO_LARGE);
}

/* Valid JSON is forwarded byte for byte, including what jansson's defaults refuse. */
static void
test_valid_json_passes_verbatim(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        size_t len;       /* 0: strlen */
        int jansson_safe; /* jansson (ALLOW_NUL, INT_AS_REAL) parses the frame */
    } cases[] = {
        {"123456789012345678901234567890", 0, 1},
        {"-123456789012345678901234567890123", 0, 1},
        {"{\"n\":18446744073709551616,\"m\":-9223372036854775809}", 0, 1},
        {"1e400", 0, 0}, /* a real beyond a double: JSON all the same */
        {"[0,-0,0.5,1E+2,1e-2,-1.25E-7]", 0, 1},
        {"\"a\\u0000b\"", 0, 1},
        {"{\"\\u0000\":\"\\u0000\"}", 0, 0}, /* jansson: no NUL in keys */
        {"\"\\ud800\"", 0, 0},               /* lone surrogates: valid JSON text, not encodable */
        {"\"\\udc00\\ud800\"", 0, 0},
        {"\"\\ud83d\\ude00\"", 0, 1},
        {"\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \x7f\"", 0, 1},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0, 1},
        {"true", 0, 1},
        {"false", 0, 1},
        {"null", 0, 1},
        {"\"\"", 0, 1},
        {"[]", 0, 1},
        {"{}", 0, 1},
        {" \n\t\r[ 1 , { \"a\" : [ ] } ] \r\n", 0, 1},
        {"{\"userId\":\"u\",\"userId\":\"u\"}", 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw_event *ev;
        size_t plen = cases[i].len ? cases[i].len : strlen(cases[i].payload);
        enum jw_event_verdict v =
            parse_n(&rules, "ai:job:progress:j", 17, cases[i].payload, plen, &ev);
        if (v != JW_EVENT_OK)
            fail_msg("case %zu (%s): %s", i, cases[i].payload, jw_event_verdict_name(v));
        assert_payload_verbatim(ev, cases[i].payload, plen);
        json_t *f = frame_json(ev, cases[i].jansson_safe);
        json_decref(f);
        jw_event_unref(ev);
    }

    /* Deep nesting: far deeper than jansson's limit, and iterative in the scanner. */
    enum { DEPTH = 100000 };
    char *deep = jw_malloc(2 * DEPTH + 16);
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"d\":", 4);
    n += 4;
    for (int i = 0; i < DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < DEPTH; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    struct jw_event *ev;
    assert_int_equal(parse_n(&big_rules, "ai:job:progress:j", 17, deep, n, &ev), JW_EVENT_OK);
    assert_payload_verbatim(ev, deep, n);
    json_decref(frame_json(ev, 0));
    jw_event_unref(ev);
    /* one bracket short: not JSON */
    assert_int_equal(parse_n(&big_rules, "ai:job:progress:j", 17, deep, n - 2, &ev),
                     JW_EVENT_NOT_JSON);
    deep[n - 2] = '}'; /* mismatched closer */
    assert_int_equal(parse_n(&big_rules, "ai:job:progress:j", 17, deep, n, &ev), JW_EVENT_NOT_JSON);
    free(deep);
}

static void
test_user_channels(void **state)
{
    (void)state;
    struct jw_event *ev;
    uint64_t id = next_id;
    const char *payload = "{\"userId\":\"someone_else\",\"jobId\":\"j9\",\"items\":[1,2]}";
    assert_int_equal(parse("ai:recommendations:u_42", payload, &ev), JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_OTHER);
    assert_int_equal(ev->id, id);
    assert_null(ev->job_id);                  /* no job, whatever the payload says */
    assert_string_equal(ev->user_id, "u_42"); /* the channel names the user */
    assert_null(ev->frame->conflates);
    json_t *f = frame_json(ev, 1);
    assert_string_equal(get_str(f, "kind"), "recommendation");
    assert_string_equal(get_str(f, "userId"), "u_42");
    assert_string_equal(get_str(f, "channel"), "ai:recommendations:u_42");
    assert_null(json_object_get(f, "jobId"));
    json_decref(f);
    assert_payload_verbatim(ev, payload, strlen(payload));
    jw_event_unref(ev);

    /* The second prefix, a user id with ':' and UTF-8. */
    assert_int_equal(parse("notes/\xc3\xa9:x", "{\"userId\":7}", &ev), JW_EVENT_OK);
    assert_string_equal(ev->user_id, "\xc3\xa9:x");
    f = frame_json(ev, 1);
    assert_string_equal(get_str(f, "kind"), "note");
    json_decref(f);
    jw_event_unref(ev);

    /* A job channel is never a user channel, and the other way round. */
    assert_int_equal(parse("ai:job:progress:notes/u", "{}", &ev), JW_EVENT_OK);
    assert_string_equal(ev->job_id, "notes/u");
    assert_null(ev->user_id);
    jw_event_unref(ev);

    /* The user id is bounded like any id. */
    char channel[256];
    int n = snprintf(channel, sizeof channel, "notes/");
    memset(channel + n, 'u', JW_ID_MAX + 1);
    channel[n + JW_ID_MAX + 1] = '\0';
    assert_int_equal(parse(channel, "{}", &ev), JW_EVENT_BAD_ID);
    channel[n + JW_ID_MAX] = '\0';
    assert_int_equal(parse(channel, "{}", &ev), JW_EVENT_OK);
    jw_event_unref(ev);

    /* Without user channels the same channel matches nothing. */
    struct jw_event_rules none = rules;
    none.nuser_channels = 0;
    ev = (void *)1;
    assert_int_equal(parse_n(&none, "ai:recommendations:u_42", 23, "{}", 2, &ev),
                     JW_EVENT_NOT_MATCHED);
}

/* On a user channel the channel names the user and the payload's userId is not read (as the
 * payload's jobId is not read on a job channel): a malformed one must not drop the event. */
static void
test_user_channel_ignores_payload_user_id(void **state)
{
    (void)state;
    static const char *const payloads[] = {"{\"userId\":\"\\u0000\"}", "{\"userId\":\"\"}",
                                           "{\"userId\":\"\\ud800\"}"};
    int bad = 0;
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        struct jw_event *ev;
        enum jw_event_verdict v = parse("notes/u1", payloads[i], &ev);
        if (v != JW_EVENT_OK) {
            print_error("user channel, payload %s: %s, expected ok\n", payloads[i],
                        jw_event_verdict_name(v));
            bad++;
            continue;
        }
        assert_string_equal(ev->user_id, "u1");
        jw_event_unref(ev);
    }
    /* the job-channel counterpart, which holds */
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status:j", "{\"jobId\":\"\\u0000\"}", &ev), JW_EVENT_OK);
    jw_event_unref(ev);
    assert_int_equal(bad, 0);
}

static void
test_frame_escapes_ids(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status:q\"uote\\", "{\"userId\":\"u\\\"x\\u2028\"}", &ev),
                     JW_EVENT_OK);
    assert_string_equal(ev->user_id, "u\"x\xe2\x80\xa8");
    json_t *f = frame_json(ev, 1);
    assert_string_equal(get_str(f, "jobId"), "q\"uote\\");
    assert_string_equal(get_str(f, "userId"), "u\"x\xe2\x80\xa8");
    assert_string_equal(get_str(f, "channel"), "ai:job:status:q\"uote\\");
    json_decref(f);
    jw_event_unref(ev);
}

static void
test_only_progress_conflates_per_job(void **state)
{
    (void)state;
    struct jw_event *a, *b, *c, *d, *e;
    assert_int_equal(parse("ai:job:progress:j1", "{}", &a), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:progress:j1", "{\"progress\":2}", &b), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:progress:j2", "{}", &c), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:complete:j1", "{}", &d), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:progress", "{\"jobId\":\"j1\"}", &e), JW_EVENT_OK);
    assert_non_null(a->frame->conflates);
    assert_string_equal(a->frame->conflates, "j1");
    assert_string_equal(b->frame->conflates, "j1");
    assert_string_equal(c->frame->conflates, "j2");
    assert_string_equal(e->frame->conflates, "j1");
    assert_null(d->frame->conflates);
    /* the key is the frame's own copy */
    assert_true(a->frame->conflates != a->job_id);
    struct jw_event *evs[] = {a, b, c, d, e};
    for (size_t i = 0; i < 5; i++)
        jw_event_unref(evs[i]);
}

static void
test_internal_channel(void **state)
{
    (void)state;
    struct jw_event *ev;
    uint64_t id = next_id;
    assert_int_equal(parse("ai:job:__jobwire__:abc:p:123", "not even json", &ev), JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_INTERNAL);
    assert_int_equal(ev->id, id); /* markers take an entry number like any event */
    assert_string_equal(ev->job_id, "abc:p:123");
    assert_null(ev->frame);
    assert_null(ev->user_id);
    assert_string_equal(jw_kind_name(ev->kind), "internal");
    jw_event_unref(ev);
    /* Its rest is still a checked segment. */
    assert_int_equal(parse("ai:job:__jobwire__:a\xff", "", &ev), JW_EVENT_BAD_ID);
    /* Only the exact kind segment is internal. */
    assert_int_equal(parse("ai:job:__jobwire__x:j", "{}", &ev), JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_OTHER);
    assert_non_null(ev->frame);
    jw_event_unref(ev);
}

static void
test_refcount(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status:j", "{}", &ev), JW_EVENT_OK);
    assert_ptr_equal(jw_event_ref(ev), ev);
    assert_int_equal(ev->refs, 2);
    assert_ptr_equal(jw_event_of(&ev->msg), ev);
    struct jw_frame *f = jw_frame_ref(ev->frame);
    jw_event_unref(ev);
    assert_int_equal(ev->refs, 1);
    jw_event_unref(ev);
    /* the frame outlives its event while referenced (valgrind checks the rest) */
    assert_int_equal(f->refs, 1);
    assert_memory_equal(f->text, "{\"type\":\"event\"", 15);
    jw_frame_unref(f);
    jw_event_unref(NULL);
}

static void
test_kind_filter_names(void **state)
{
    (void)state;
    static const char *const names[] = {"status", "progress", "complete", "error", "other"};
    for (int k = 0; k < JW_KIND__COUNT; k++) {
        assert_string_equal(jw_kind_name((enum jw_kind)k), names[k]);
        assert_int_equal(jw_kind_parse_filter_name(names[k]), k);
        if (k < JW_KIND_OTHER)
            assert_int_equal(jw_kind_from_name(names[k], strlen(names[k])), k);
    }
    assert_int_equal(jw_kind_parse_filter_name("bogus"), -1);
    assert_int_equal(jw_kind_parse_filter_name("internal"), -1);
    assert_int_equal(jw_kind_parse_filter_name(""), -1);
    assert_int_equal(jw_kind_from_name("error", 5), JW_KIND_ERROR);
    assert_int_equal(jw_kind_from_name("errors", 6), JW_KIND_OTHER);
    assert_int_equal(jw_kind_from_name("erro", 4), JW_KIND_OTHER);
    assert_int_equal(jw_kind_from_name("", 0), JW_KIND_OTHER);
    static const char *const verdicts[] = {"ok",        "not_matched", "not_json",
                                           "too_large", "no_job_id",   "bad_id"};
    for (int v = 0; v < JW_EVENT__VERDICT_COUNT; v++)
        assert_string_equal(jw_event_verdict_name((enum jw_event_verdict)v), verdicts[v]);
}

static void
test_id_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"a", 1, 1},
        {"job:1/2 x", 9, 1},
        {"\xc3\xa9", 2, 1},
        {"\xf0\x9f\x98\x80", 4, 1},
        {"", 0, 0},
        {"a\0", 2, 0},
        {"\x1f", 1, 0},
        {"\x7f", 1, 0},
        {"\x80", 1, 0},
        {"\xc3", 1, 0},
        {"\xe0\x80\x80", 3, 0},
        {"\xed\xbf\xbf", 3, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (jw_id_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("jw_id_valid case %zu: expected %d", i, cases[i].ok);
    char id[JW_ID_MAX + 1];
    memset(id, 'i', sizeof id);
    assert_true(jw_id_valid(id, JW_ID_MAX));
    assert_false(jw_id_valid(id, JW_ID_MAX + 1));
}

/* ---- event ids ----------------------------------------------------------------------- */

static void
test_epoch(void **state)
{
    (void)state;
    const char *e = jw_event_epoch();
    assert_int_equal(strlen(e), 8);
    for (int i = 0; i < 8; i++)
        assert_true((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f'));
    assert_ptr_equal(jw_event_epoch(), e); /* the same for the life of the process */
    assert_string_equal(jw_event_epoch(), e);
}

static void
test_event_id_round_trip(void **state)
{
    (void)state;
    uint64_t rng = jw_random_seed();
    char text[JW_EVENT_ID_TEXT_MAX], want[64];
    for (int i = 0; i < 20000; i++) {
        uint64_t id;
        switch (i) {
        case 0:
            id = 0;
            break;
        case 1:
            id = UINT64_MAX;
            break;
        case 2:
            id = UINT64_MAX - 1;
            break;
        default: /* every magnitude */
            id = jw_random_next(&rng) >> jw_random_below(&rng, 64);
        }
        size_t n = jw_event_id_format(id, text);
        snprintf(want, sizeof want, "%s-%" PRIu64, jw_event_epoch(), id);
        assert_string_equal(text, want);
        assert_int_equal(n, strlen(want));
        assert_true(n < JW_EVENT_ID_TEXT_MAX);
        uint64_t back = ~id;
        assert_int_equal(jw_event_id_parse(text, &back), 0);
        assert_true(back == id);
        /* the same id from another process: another epoch */
        char other[64];
        snprintf(other, sizeof other, "%08x-%" PRIu64,
                 (unsigned)strtoul(jw_event_epoch(), NULL, 16) ^ (1u + (unsigned)(i % 7)), id);
        back = 12345;
        assert_int_equal(jw_event_id_parse(other, &back), -EXDEV);
        assert_true(back == 12345); /* untouched */
    }
}

static void
test_event_id_parse_rejects(void **state)
{
    (void)state;
    const char *e = jw_event_epoch();
    char upper[16];
    for (int i = 0; i < 8; i++)
        upper[i] = (char)(e[i] >= 'a' ? e[i] - 32 : e[i]);
    upper[8] = '\0';
    const char *const suffixes[] = {
        "",
        "-",
        "-a",
        "-1a",
        "-+1",
        "- 1",
        "-1 ",
        "--1",
        "-1-2",
        "-18446744073709551616",
        "-99999999999999999999",
        "-000000000000000000001", /* 21 characters */
        "1",
        "x1",
    };
    char text[64];
    uint64_t id = 777;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(text, sizeof text, "%s%s", e, suffixes[i]);
        if (jw_event_id_parse(text, &id) != -EINVAL)
            fail_msg("\"%s\" was not rejected as -EINVAL", text);
    }
    static const char *const others[] = {"",           "-1",         "1234567-1",   "123456789-1",
                                         "gggggggg-1", "1234567 -1", " 12345678-1", "12345678"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (jw_event_id_parse(others[i], &id) != -EINVAL)
            fail_msg("\"%s\" was not rejected as -EINVAL", others[i]);
    /* Uppercase hex is not what this process writes. */
    snprintf(text, sizeof text, "%s-5", upper);
    int rc = jw_event_id_parse(text, &id);
    if (strcmp(upper, e) == 0)
        assert_int_equal(rc, 0); /* an epoch of digits only */
    else
        assert_int_equal(rc, -EINVAL);
    assert_true(id == 777 || strcmp(upper, e) == 0);
    /* The largest id and leading zeros. */
    snprintf(text, sizeof text, "%s-18446744073709551615", e);
    assert_int_equal(jw_event_id_parse(text, &id), 0);
    assert_true(id == UINT64_MAX);
    snprintf(text, sizeof text, "%s-007", e);
    assert_int_equal(jw_event_id_parse(text, &id), 0);
    assert_true(id == 7);
}

/* Events parsed in a row carry consecutive ids in their frames (the subscriber numbers them). */
static void
test_ids_in_frames(void **state)
{
    (void)state;
    for (uint64_t id = UINT64_MAX - 3; id != 0; id++) {
        struct jw_event *ev = NULL;
        const char *ch = "ai:job:status:j";
        assert_int_equal(jw_event_parse(&rules, ch, strlen(ch), "{}", 2, id, &ev), JW_EVENT_OK);
        assert_true(ev->id == id);
        json_t *f = frame_json(ev, 1);
        uint64_t back = 0;
        assert_int_equal(jw_event_id_parse(get_str(f, "eventId"), &back), 0);
        assert_true(back == id);
        json_decref(f);
        jw_event_unref(ev);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_and_job_from_channel),
        cmocka_unit_test(test_each_kind),
        cmocka_unit_test(test_job_id_from_payload),
        cmocka_unit_test(test_longest_ids),
        cmocka_unit_test(test_channel_job_id_wins_and_may_hold_colons),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_valid_json_passes_verbatim),
        cmocka_unit_test(test_user_channels),
        cmocka_unit_test(test_user_channel_ignores_payload_user_id),
        cmocka_unit_test(test_frame_escapes_ids),
        cmocka_unit_test(test_only_progress_conflates_per_job),
        cmocka_unit_test(test_internal_channel),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_kind_filter_names),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_event_id_round_trip),
        cmocka_unit_test(test_event_id_parse_rejects),
        cmocka_unit_test(test_ids_in_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
