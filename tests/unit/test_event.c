/* Unit tests for event.c: channel rules, payload rules and the frame built once per event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/event.h"

static const struct jw_event_rules rules = {.prefix = "ai:job:", .max_payload_bytes = 256};

static enum jw_event_verdict
parse(const char *channel, const char *payload, struct jw_event **ev)
{
    return jw_event_parse(&rules, channel, strlen(channel), payload, strlen(payload), ev);
}

/* Completes the frame with `seq` and parses it back as JSON. */
static json_t *
frame_json(struct jw_event *ev, uint64_t seq)
{
    size_t len = jw_frame_stamp(ev->frame, seq);
    json_error_t err;
    json_t *root = json_loadb((const char *)jw_frame_text(ev->frame), len, 0, &err);
    assert_non_null(root);
    return root;
}

static void
test_kind_and_job_from_channel(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:progress:job_1", "{\"userId\":\"u1\",\"progress\":45}", &ev),
                     JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_PROGRESS);
    assert_string_equal(ev->job_id, "job_1");
    assert_string_equal(ev->user_id, "u1");
    json_t *f = frame_json(ev, 7);
    assert_string_equal(json_string_value(json_object_get(f, "type")), "event");
    assert_string_equal(json_string_value(json_object_get(f, "kind")), "progress");
    assert_string_equal(json_string_value(json_object_get(f, "jobId")), "job_1");
    assert_string_equal(json_string_value(json_object_get(f, "userId")), "u1");
    assert_string_equal(json_string_value(json_object_get(f, "channel")), "ai:job:progress:job_1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(f, "payload"), "progress")),
                     45);
    assert_int_equal(json_integer_value(json_object_get(f, "seq")), 7);
    json_decref(f);
    jw_event_free(ev);
}

static void
test_each_kind(void **state)
{
    (void)state;
    static const struct {
        const char *channel;
        enum jw_kind kind;
    } cases[] = {{"ai:job:status:j", JW_KIND_STATUS},
                 {"ai:job:progress:j", JW_KIND_PROGRESS},
                 {"ai:job:complete:j", JW_KIND_COMPLETE},
                 {"ai:job:error:j", JW_KIND_ERROR},
                 {"ai:job:result:j", JW_KIND_OTHER}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct jw_event *ev;
        assert_int_equal(parse(cases[i].channel, "{}", &ev), JW_EVENT_OK);
        assert_int_equal(ev->kind, cases[i].kind);
        assert_null(ev->user_id);
        jw_event_free(ev);
    }
}

static void
test_other_kind_keeps_its_name_in_frame(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:result:j9", "{}", &ev), JW_EVENT_OK);
    json_t *f = frame_json(ev, 1);
    assert_string_equal(json_string_value(json_object_get(f, "kind")), "result");
    json_decref(f);
    jw_event_free(ev);
}

static void
test_job_id_from_payload(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status", "{\"jobId\":\"123\",\"status\":\"completed\"}", &ev),
                     JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_STATUS);
    assert_string_equal(ev->job_id, "123");
    jw_event_free(ev);
    assert_int_equal(parse("ai:job:status", "{\"jobId\":42,\"userId\":7}", &ev), JW_EVENT_OK);
    assert_string_equal(ev->job_id, "42");
    assert_string_equal(ev->user_id, "7");
    jw_event_free(ev);
}

static void
test_channel_job_id_wins_and_may_hold_colons(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status:a:b", "{\"jobId\":\"other\"}", &ev), JW_EVENT_OK);
    assert_string_equal(ev->job_id, "a:b");
    jw_event_free(ev);
}

static void
test_rejections(void **state)
{
    (void)state;
    struct jw_event *ev = (void *)1;
    assert_int_equal(parse("other:progress:j", "{}", &ev), JW_EVENT_NOT_MATCHED);
    assert_null(ev);
    assert_int_equal(parse("ai:job:", "{}", &ev), JW_EVENT_NOT_MATCHED);
    assert_int_equal(parse("ai:job::j", "{}", &ev), JW_EVENT_NOT_MATCHED);
    assert_int_equal(parse("ai:job:progress:j", "not json", &ev), JW_EVENT_NOT_JSON);
    assert_int_equal(parse("ai:job:progress:j", "{\"a\":1} trailing", &ev), JW_EVENT_NOT_JSON);
    assert_int_equal(parse("ai:job:progress:j", "", &ev), JW_EVENT_NOT_JSON);
    assert_int_equal(parse("ai:job:progress:j", "\"\xff\xfe\"", &ev), JW_EVENT_NOT_JSON);
    assert_int_equal(parse("ai:job:status", "{\"status\":\"x\"}", &ev), JW_EVENT_NO_JOB_ID);
    assert_int_equal(parse("ai:job:status", "[1,2]", &ev), JW_EVENT_NO_JOB_ID);
    assert_int_equal(parse("ai:job:status", "{\"jobId\":\"\"}", &ev), JW_EVENT_BAD_ID);
    assert_int_equal(parse("ai:job:status:j", "{\"userId\":\"a\\u0001b\"}", &ev), JW_EVENT_BAD_ID);
    assert_int_equal(parse("ai:job:status:j\x01", "{}", &ev), JW_EVENT_BAD_ID);
    char big[300];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '1';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(parse("ai:job:status:j", big, &ev), JW_EVENT_TOO_LARGE);
    char long_id[JW_ID_MAX + 20] = "ai:job:status:";
    memset(long_id + strlen(long_id), 'x', JW_ID_MAX + 1);
    long_id[14 + JW_ID_MAX + 1] = '\0';
    assert_int_equal(parse(long_id, "{}", &ev), JW_EVENT_BAD_ID);
}

static void
test_non_object_json_is_delivered_without_user(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:progress:j", "\"plain\"", &ev), JW_EVENT_OK);
    assert_null(ev->user_id);
    json_t *f = frame_json(ev, 1);
    assert_string_equal(json_string_value(json_object_get(f, "payload")), "plain");
    assert_null(json_object_get(f, "userId"));
    json_decref(f);
    jw_event_free(ev);
}

static void
test_frame_escapes_ids(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:status:q\"uote\\", "{\"userId\":\"u\\\"x\"}", &ev), JW_EVENT_OK);
    json_t *f = frame_json(ev, 4294967296123ULL);
    assert_string_equal(json_string_value(json_object_get(f, "jobId")), "q\"uote\\");
    assert_string_equal(json_string_value(json_object_get(f, "userId")), "u\"x");
    json_decref(f);
    jw_event_free(ev);
}

static void
test_only_progress_conflates_per_job(void **state)
{
    (void)state;
    struct jw_event *a, *b, *c, *d;
    assert_int_equal(parse("ai:job:progress:j1", "{}", &a), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:progress:j1", "{\"progress\":2}", &b), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:progress:j2", "{}", &c), JW_EVENT_OK);
    assert_int_equal(parse("ai:job:complete:j1", "{}", &d), JW_EVENT_OK);
    assert_true(a->frame->conflate_key != 0);
    assert_true(a->frame->conflate_key == b->frame->conflate_key);
    assert_true(a->frame->conflate_key != c->frame->conflate_key);
    assert_true(d->frame->conflate_key == 0);
    jw_event_free(a);
    jw_event_free(b);
    jw_event_free(c);
    jw_event_free(d);
}

static void
test_internal_channel(void **state)
{
    (void)state;
    struct jw_event *ev;
    assert_int_equal(parse("ai:job:__jobwire__:abc:p:123", "not even json", &ev), JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_INTERNAL);
    assert_string_equal(ev->job_id, "abc:p:123");
    assert_null(ev->frame);
    assert_null(ev->user_id);
    jw_event_free(ev);
    /* Only the exact kind segment is internal. */
    assert_int_equal(parse("ai:job:__jobwire__x:j", "{}", &ev), JW_EVENT_OK);
    assert_int_equal(ev->kind, JW_KIND_OTHER);
    jw_event_free(ev);
}

static void
test_kind_filter_names(void **state)
{
    (void)state;
    assert_int_equal(jw_kind_parse_filter_name("status"), JW_KIND_STATUS);
    assert_int_equal(jw_kind_parse_filter_name("other"), JW_KIND_OTHER);
    assert_int_equal(jw_kind_parse_filter_name("bogus"), -1);
    assert_int_equal(jw_kind_from_name("error", 5), JW_KIND_ERROR);
    assert_int_equal(jw_kind_from_name("errors", 6), JW_KIND_OTHER);
    assert_string_equal(jw_event_verdict_name(JW_EVENT_NOT_JSON), "not_json");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_and_job_from_channel),
        cmocka_unit_test(test_each_kind),
        cmocka_unit_test(test_other_kind_keeps_its_name_in_frame),
        cmocka_unit_test(test_job_id_from_payload),
        cmocka_unit_test(test_channel_job_id_wins_and_may_hold_colons),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_non_object_json_is_delivered_without_user),
        cmocka_unit_test(test_frame_escapes_ids),
        cmocka_unit_test(test_only_progress_conflates_per_job),
        cmocka_unit_test(test_internal_channel),
        cmocka_unit_test(test_kind_filter_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
