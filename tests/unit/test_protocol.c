/* Unit tests for protocol.c: every client message form, malformed input, and reply frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gateway/protocol.h"

static int
parse(const char *text, struct jw_cmd *cmd, struct jw_cmd_error *err)
{
    return jw_cmd_parse(text, strlen(text), 4, cmd, err);
}

static void
expect_error(const char *text, const char *code)
{
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse(text, &cmd, &err), -1);
    assert_string_equal(err.code, code);
    assert_true(strlen(err.message) > 0);
    assert_null(cmd.jobs);
}

static json_t *
frame_json(struct jw_frame *f)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)jw_frame_text(f), f->len, 0, &jerr);
    assert_non_null(root);
    assert_int_equal(f->stamped, 0);
    jw_frame_unref(f);
    return root;
}

static void
test_subscribe_jobs_with_kinds(void **state)
{
    (void)state;
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse("{\"type\":\"subscribe\",\"id\":\"r1\",\"jobs\":[\"a\",\"b\"],"
                           "\"kinds\":[\"progress\",\"error\"]}",
                           &cmd, &err),
                     0);
    assert_int_equal(cmd.type, JW_CMD_SUBSCRIBE);
    assert_int_equal(cmd.scope, JW_SCOPE_JOBS);
    assert_string_equal(cmd.id, "r1");
    assert_int_equal(cmd.njobs, 2);
    assert_string_equal(cmd.jobs[0], "a");
    assert_string_equal(cmd.jobs[1], "b");
    assert_int_equal(cmd.kinds, (1u << JW_KIND_PROGRESS) | (1u << JW_KIND_ERROR));

    json_t *ack = frame_json(jw_reply_ack(&cmd));
    assert_string_equal(json_string_value(json_object_get(ack, "type")), "ack");
    assert_string_equal(json_string_value(json_object_get(ack, "id")), "r1");
    assert_string_equal(json_string_value(json_object_get(ack, "op")), "subscribe");
    assert_string_equal(json_string_value(json_object_get(ack, "scope")), "jobs");
    assert_int_equal(json_array_size(json_object_get(ack, "jobs")), 2);
    json_t *kinds = json_object_get(ack, "kinds");
    assert_int_equal(json_array_size(kinds), 2);
    assert_string_equal(json_string_value(json_array_get(kinds, 0)), "progress");
    assert_string_equal(json_string_value(json_array_get(kinds, 1)), "error");
    json_decref(ack);
    jw_cmd_clear(&cmd);
}

static void
test_scopes_and_defaults(void **state)
{
    (void)state;
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse("{\"type\":\"subscribe\",\"scope\":\"user\",\"id\":12}", &cmd, &err), 0);
    assert_int_equal(cmd.scope, JW_SCOPE_USER);
    assert_int_equal(cmd.kinds, JW_KINDS_ALL);
    assert_string_equal(cmd.id, "12");
    jw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"unsubscribe\",\"scope\":\"all\"}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_UNSUBSCRIBE);
    assert_int_equal(cmd.scope, JW_SCOPE_ALL);
    assert_string_equal(cmd.id, "");
    json_t *ack = frame_json(jw_reply_ack(&cmd));
    assert_string_equal(json_string_value(json_object_get(ack, "op")), "unsubscribe");
    assert_null(json_object_get(ack, "kinds"));
    assert_null(json_object_get(ack, "jobs"));
    json_decref(ack);
    jw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"ping\",\"id\":\"p\",\"extra\":[1]}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_PING);
    json_t *pong = frame_json(jw_reply_pong(cmd.id));
    assert_string_equal(json_string_value(json_object_get(pong, "type")), "pong");
    assert_string_equal(json_string_value(json_object_get(pong, "id")), "p");
    json_decref(pong);
    jw_cmd_clear(&cmd);
}

static void
test_malformed(void **state)
{
    (void)state;
    expect_error("", JW_ERR_BAD_JSON);
    expect_error("not json", JW_ERR_BAD_JSON);
    expect_error("[1,2]", JW_ERR_BAD_JSON);
    expect_error("{\"type\":\"ping\"} x", JW_ERR_BAD_JSON);
    expect_error("{\"type\":1}", JW_ERR_BAD_REQUEST);
    expect_error("{}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"shutdown\"}", JW_ERR_UNKNOWN_TYPE);
    expect_error("{\"type\":\"subscribe\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[]}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":\"a\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"scope\":\"user\"}",
                 JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"scope\":\"everyone\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\",\"\"]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\",7]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\\u0007\"]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
                 JW_ERR_TOO_MANY_JOBS);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":[\"bogus\"]}",
                 JW_ERR_BAD_KIND);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":[]}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"ping\",\"id\":{}}", JW_ERR_BAD_REQUEST);

    char long_job[400];
    int n = snprintf(long_job, sizeof(long_job), "{\"type\":\"subscribe\",\"jobs\":[\"");
    memset(long_job + n, 'j', JW_ID_MAX + 1);
    strcpy(long_job + n + JW_ID_MAX + 1, "\"]}");
    expect_error(long_job, JW_ERR_BAD_JOB_ID);
}

static void
test_error_keeps_request_id(void **state)
{
    (void)state;
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse("{\"type\":\"subscribe\",\"id\":\"r9\",\"jobs\":[\"\"]}", &cmd, &err),
                     -1);
    assert_string_equal(err.id, "r9");
    json_t *e = frame_json(jw_reply_error(err.id, err.code, err.message));
    assert_string_equal(json_string_value(json_object_get(e, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(e, "id")), "r9");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "bad_job_id");
    json_decref(e);
}

static void
test_auth_and_refresh(void **state)
{
    (void)state;
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse("{\"type\":\"auth\",\"id\":\"a\",\"token\":\"x.y.z\"}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_AUTH);
    assert_string_equal(cmd.token, "x.y.z");
    assert_int_equal(cmd.token_len, 5);
    jw_cmd_clear(&cmd);
    assert_null(cmd.token);
    assert_int_equal(parse("{\"type\":\"refresh\",\"token\":\"t\"}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_AUTH);
    jw_cmd_clear(&cmd);
    expect_error("{\"type\":\"auth\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"auth\",\"token\":\"\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"auth\",\"token\":42}", JW_ERR_BAD_REQUEST);
    json_t *ack = frame_json(jw_reply_auth_ack("a", "alice", 1700000000));
    assert_string_equal(json_string_value(json_object_get(ack, "op")), "auth");
    assert_int_equal(json_integer_value(json_object_get(ack, "expiresAt")), 1700000000);
    json_decref(ack);
}

static void
test_welcome(void **state)
{
    (void)state;
    json_t *w = frame_json(jw_reply_welcome("c00000001", "alice", 1));
    assert_string_equal(json_string_value(json_object_get(w, "type")), "welcome");
    assert_int_equal(json_integer_value(json_object_get(w, "protocol")), JW_PROTOCOL_VERSION);
    assert_string_equal(json_string_value(json_object_get(w, "userId")), "alice");
    assert_true(json_is_true(json_object_get(w, "admin")));
    json_decref(w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_jobs_with_kinds),
        cmocka_unit_test(test_scopes_and_defaults),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_keeps_request_id),
        cmocka_unit_test(test_auth_and_refresh),
        cmocka_unit_test(test_welcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
