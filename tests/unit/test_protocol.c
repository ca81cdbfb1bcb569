/*
 * Unit tests for protocol.c: every client message form and malformed input (with its error
 * code), lastEventId, the token bound (unauthenticated), and every reply frame: welcome (live,
 * expiresAt, epoch), ack (resumed, snapshots), status, snapshot (sequenced, eventId, tooLarge,
 * unavailable, visibility), error, pong, goaway, close, auth ack. A property test round-trips
 * random subscribe requests and checks that every reply is valid JSON whatever the strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/rand.h"
#include "jobwire/utf8.h"
#include "../../src/gateway/protocol.h"

static int
parse_max(const char *text, size_t max_jobs, struct jw_cmd *cmd, struct jw_cmd_error *err)
{
    /* an exact-size copy: the message is not NUL-terminated on the wire */
    size_t len = strlen(text);
    char *copy = jw_malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = jw_cmd_parse(copy, len, max_jobs, cmd, err);
    free(copy);
    return rc;
}

static int
parse(const char *text, struct jw_cmd *cmd, struct jw_cmd_error *err)
{
    return parse_max(text, 4, cmd, err);
}

static void
expect_error(const char *text, const char *code)
{
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (parse(text, &cmd, &err) != -1)
        fail_msg("accepted: %s", text);
    if (strcmp(err.code, code) != 0)
        fail_msg("%s: code %s, expected %s", text, err.code, code);
    assert_true(strlen(err.message) > 0);
    assert_true(jw_utf8_valid(err.message, strlen(err.message)));
    assert_null(cmd.jobs);
    assert_int_equal(cmd.njobs, 0);
    assert_null(cmd.token);
}

/* A control frame: complete JSON, not sequenced, owned by the caller (refs 1). */
static json_t *
frame_json(struct jw_frame *f, const char *type)
{
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->sequenced, 0);
    assert_string_equal(f->type, type);
    assert_int_equal(f->text[f->len], '\0');
    assert_true(jw_utf8_valid(f->text, f->len));
    json_error_t jerr;
    json_t *root = json_loadb(f->text, f->len, 0, &jerr);
    if (!root)
        fail_msg("not JSON (%s): %s", jerr.text, f->text);
    assert_string_equal(json_string_value(json_object_get(root, "type")), type);
    jw_frame_unref(f);
    return root;
}

/* A sequenced frame completed with ,"seq":N} as the writer does. */
static json_t *
sequenced_json(struct jw_frame *f, unsigned long long seq)
{
    assert_int_equal(f->sequenced, 1);
    char *text = jw_malloc(f->len + 40);
    int n = snprintf(text, f->len + 40, "%s,\"seq\":%llu}", f->text, seq);
    json_error_t jerr;
    json_t *root = json_loadb(text, (size_t)n, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    free(text);
    assert_true(json_number_value(json_object_get(root, "seq")) == (double)seq);
    return root;
}

static const char *
str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static void
test_subscribe_jobs_with_kinds(void **state)
{
    (void)state;
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse("{\"type\":\"subscribe\",\"id\":\"r1\",\"jobs\":[\"a\",\"b\"],"
                           "\"kinds\":[\"progress\",\"error\",\"progress\"]}",
                           &cmd, &err),
                     0);
    assert_int_equal(cmd.type, JW_CMD_SUBSCRIBE);
    assert_int_equal(cmd.scope, JW_SCOPE_JOBS);
    assert_string_equal(cmd.id, "r1");
    assert_int_equal(cmd.njobs, 2);
    assert_string_equal(cmd.jobs[0], "a");
    assert_string_equal(cmd.jobs[1], "b");
    assert_int_equal(cmd.kinds, (1u << JW_KIND_PROGRESS) | (1u << JW_KIND_ERROR));
    assert_string_equal(cmd.last_event_id, "");

    /* without resume information: neither "resumed" nor "snapshots" */
    json_t *ack = frame_json(jw_reply_ack(&cmd, -1, -1), "ack");
    assert_string_equal(str(ack, "id"), "r1");
    assert_string_equal(str(ack, "op"), "subscribe");
    assert_string_equal(str(ack, "scope"), "jobs");
    assert_int_equal(json_array_size(json_object_get(ack, "jobs")), 2);
    json_t *kinds = json_object_get(ack, "kinds");
    assert_int_equal(json_array_size(kinds), 2);
    assert_string_equal(json_string_value(json_array_get(kinds, 0)), "progress");
    assert_string_equal(json_string_value(json_array_get(kinds, 1)), "error");
    assert_null(json_object_get(ack, "resumed"));
    assert_null(json_object_get(ack, "snapshots"));
    json_decref(ack);

    ack = frame_json(jw_reply_ack(&cmd, 1, 0), "ack");
    assert_true(json_is_true(json_object_get(ack, "resumed")));
    assert_true(json_integer_value(json_object_get(ack, "snapshots")) == 0);
    json_decref(ack);
    ack = frame_json(jw_reply_ack(&cmd, 0, 123456789012L), "ack");
    assert_true(json_is_false(json_object_get(ack, "resumed")));
    assert_true(json_integer_value(json_object_get(ack, "snapshots")) == 123456789012LL);
    json_decref(ack);
    ack = frame_json(jw_reply_ack(&cmd, -1, 3), "ack");
    assert_null(json_object_get(ack, "resumed"));
    assert_true(json_integer_value(json_object_get(ack, "snapshots")) == 3);
    json_decref(ack);
    jw_cmd_clear(&cmd);
    assert_null(cmd.jobs);
    assert_int_equal(cmd.njobs, 0);
    jw_cmd_clear(&cmd); /* twice is harmless */
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
    json_t *ack = frame_json(jw_reply_ack(&cmd, -1, -1), "ack");
    assert_string_equal(str(ack, "scope"), "user");
    assert_int_equal(json_array_size(json_object_get(ack, "kinds")), JW_KIND__COUNT);
    assert_null(json_object_get(ack, "jobs"));
    json_decref(ack);
    jw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"subscribe\",\"scope\":\"all\",\"id\":-7}", &cmd, &err), 0);
    assert_int_equal(cmd.scope, JW_SCOPE_ALL);
    assert_string_equal(cmd.id, "-7");
    jw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"unsubscribe\",\"scope\":\"all\"}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_UNSUBSCRIBE);
    assert_int_equal(cmd.scope, JW_SCOPE_ALL);
    assert_string_equal(cmd.id, "");
    ack = frame_json(jw_reply_ack(&cmd, -1, -1), "ack");
    assert_string_equal(str(ack, "op"), "unsubscribe");
    assert_null(json_object_get(ack, "kinds"));
    assert_null(json_object_get(ack, "jobs"));
    assert_null(json_object_get(ack, "id"));
    json_decref(ack);
    jw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"unsubscribe\",\"jobs\":[\"x\"]}", &cmd, &err), 0);
    ack = frame_json(jw_reply_ack(&cmd, -1, -1), "ack");
    assert_int_equal(json_array_size(json_object_get(ack, "jobs")), 1);
    json_decref(ack);
    jw_cmd_clear(&cmd);
    assert_int_equal(parse("{\"type\":\"ping\",\"id\":\"p\",\"extra\":[1]}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_PING);
    json_t *pong = frame_json(jw_reply_pong(cmd.id), "pong");
    assert_string_equal(str(pong, "id"), "p");
    json_decref(pong);
    jw_cmd_clear(&cmd);
    pong = frame_json(jw_reply_pong(""), "pong");
    assert_null(json_object_get(pong, "id"));
    json_decref(pong);
}

static void
test_last_event_id(void **state)
{
    (void)state;
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    char id[JW_EVENT_ID_TEXT_MAX];
    jw_event_id_format(UINT64_MAX, id); /* the longest an event id gets */
    assert_int_equal(strlen(id), JW_EVENT_ID_TEXT_MAX - 1);
    char text[256];
    snprintf(text, sizeof text, "{\"type\":\"subscribe\",\"jobs\":[\"j\"],\"lastEventId\":\"%s\"}",
             id);
    assert_int_equal(parse(text, &cmd, &err), 0);
    assert_string_equal(cmd.last_event_id, id);
    uint64_t v = 0;
    assert_int_equal(jw_event_id_parse(cmd.last_event_id, &v), 0);
    assert_true(v == UINT64_MAX);
    jw_cmd_clear(&cmd);
    /* Any short string is taken as given (the session judges it); scopes too. */
    assert_int_equal(
        parse("{\"type\":\"subscribe\",\"scope\":\"user\",\"lastEventId\":\"x\"}", &cmd, &err), 0);
    assert_string_equal(cmd.last_event_id, "x");
    jw_cmd_clear(&cmd);
    /* unsubscribe ignores it */
    assert_int_equal(
        parse("{\"type\":\"unsubscribe\",\"jobs\":[\"j\"],\"lastEventId\":5}", &cmd, &err), 0);
    assert_string_equal(cmd.last_event_id, "");
    jw_cmd_clear(&cmd);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"j\"],\"lastEventId\":\"\"}",
                 JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"j\"],\"lastEventId\":17}",
                 JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"j\"],\"lastEventId\":null}",
                 JW_ERR_BAD_REQUEST);
    snprintf(text, sizeof text, "{\"type\":\"subscribe\",\"jobs\":[\"j\"],\"lastEventId\":\"%s0\"}",
             id);
    expect_error(text, JW_ERR_BAD_REQUEST); /* one character too long */
}

static void
test_malformed(void **state)
{
    (void)state;
    expect_error("", JW_ERR_BAD_JSON);
    expect_error("not json", JW_ERR_BAD_JSON);
    expect_error("[1,2]", JW_ERR_BAD_JSON);
    expect_error("\"subscribe\"", JW_ERR_BAD_JSON);
    expect_error("{\"type\":\"ping\"} x", JW_ERR_BAD_JSON);
    expect_error("{\"type\":\"ping\",\"id\":\"a\\u0000\"}", JW_ERR_BAD_JSON);
    expect_error("{\"type\":1}", JW_ERR_BAD_REQUEST);
    expect_error("{}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"shutdown\"}", JW_ERR_UNKNOWN_TYPE);
    expect_error("{\"type\":\"Subscribe\"}", JW_ERR_UNKNOWN_TYPE);
    expect_error("{\"type\":\"subscribe\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[]}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":\"a\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"scope\":\"user\"}",
                 JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"scope\":\"everyone\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"scope\":\"jobs\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"scope\":1}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\",\"\"]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\",7]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\\u0007\"]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\\u007f\"]}", JW_ERR_BAD_JOB_ID);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
                 JW_ERR_TOO_MANY_JOBS);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":[\"bogus\"]}",
                 JW_ERR_BAD_KIND);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":[\"internal\"]}",
                 JW_ERR_BAD_KIND);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":[1]}", JW_ERR_BAD_KIND);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":[]}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"subscribe\",\"jobs\":[\"a\"],\"kinds\":\"status\"}",
                 JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"ping\",\"id\":{}}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"ping\",\"id\":1.5}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"ping\",\"id\":\"a\\u0001\"}", JW_ERR_BAD_REQUEST);

    char text[400];
    int n = snprintf(text, sizeof(text), "{\"type\":\"subscribe\",\"jobs\":[\"");
    memset(text + n, 'j', JW_ID_MAX + 1);
    strcpy(text + n + JW_ID_MAX + 1, "\"]}");
    expect_error(text, JW_ERR_BAD_JOB_ID);
    strcpy(text + n + JW_ID_MAX, "\"]}"); /* exactly JW_ID_MAX */
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    assert_int_equal(parse(text, &cmd, &err), 0);
    assert_int_equal(strlen(cmd.jobs[0]), JW_ID_MAX);
    jw_cmd_clear(&cmd);

    n = snprintf(text, sizeof(text), "{\"type\":\"ping\",\"id\":\"");
    memset(text + n, 'i', JW_REQUEST_ID_MAX + 1);
    strcpy(text + n + JW_REQUEST_ID_MAX + 1, "\"}");
    expect_error(text, JW_ERR_BAD_REQUEST);
    strcpy(text + n + JW_REQUEST_ID_MAX, "\"}");
    assert_int_equal(parse(text, &cmd, &err), 0);
    assert_int_equal(strlen(cmd.id), JW_REQUEST_ID_MAX);
    jw_cmd_clear(&cmd);
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
    json_t *e = frame_json(jw_reply_error(err.id, err.code, err.message), "error");
    assert_string_equal(str(e, "id"), "r9");
    assert_string_equal(str(e, "code"), "bad_job_id");
    assert_string_equal(str(e, "message"), err.message);
    json_decref(e);
    /* the id could not be read: none in the error */
    assert_int_equal(parse("{\"type\":\"ping\",\"id\":[]}", &cmd, &err), -1);
    assert_string_equal(err.id, "");
    /* the message never echoes the client's bytes beyond the id */
    assert_int_equal(
        parse("{\"type\":\"subscribe\",\"id\":\"r\",\"jobs\":[\"SECRET\\u0001\"]}", &cmd, &err),
        -1);
    assert_null(strstr(err.message, "SECRET"));
    assert_int_equal(parse("{\"type\":\"subscribe\",\"scope\":\"SECRET\"}", &cmd, &err), -1);
    assert_null(strstr(err.message, "SECRET"));
    /* a message with bytes that are not UTF-8 still makes valid JSON */
    e = frame_json(jw_reply_error("x\"y", JW_ERR_BAD_REQUEST, "bad \xff byte \"q\""), "error");
    assert_string_equal(str(e, "id"), "x\"y");
    assert_string_equal(str(e, "message"), "bad \xef\xbf\xbd byte \"q\"");
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
    assert_int_equal(cmd.token_len, 0);
    assert_int_equal(parse("{\"type\":\"refresh\",\"token\":\"t\"}", &cmd, &err), 0);
    assert_int_equal(cmd.type, JW_CMD_AUTH);
    jw_cmd_clear(&cmd);
    expect_error("{\"type\":\"auth\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"auth\",\"token\":\"\"}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"auth\",\"token\":42}", JW_ERR_BAD_REQUEST);
    expect_error("{\"type\":\"refresh\",\"token\":null}", JW_ERR_BAD_REQUEST);

    /* JW_TOKEN_MAX bytes: accepted; one more: unauthenticated (the connection is refused). */
    size_t cap = JW_TOKEN_MAX + 64;
    char *text = jw_malloc(cap);
    int n = snprintf(text, cap, "{\"type\":\"auth\",\"id\":\"t\",\"token\":\"");
    memset(text + n, 'k', JW_TOKEN_MAX);
    strcpy(text + n + JW_TOKEN_MAX, "\"}");
    assert_int_equal(parse(text, &cmd, &err), 0);
    assert_int_equal(cmd.token_len, JW_TOKEN_MAX);
    jw_cmd_clear(&cmd);
    memset(text + n, 'k', JW_TOKEN_MAX + 1);
    strcpy(text + n + JW_TOKEN_MAX + 1, "\"}");
    assert_int_equal(parse(text, &cmd, &err), -1);
    assert_string_equal(err.code, JW_ERR_UNAUTHENTICATED);
    assert_string_equal(err.id, "t");
    assert_null(cmd.token);
    assert_null(strstr(err.message, "kkkk")); /* never the token */
    n = snprintf(text, cap, "{\"type\":\"refresh\",\"token\":\"");
    memset(text + n, 'k', JW_TOKEN_MAX + 1);
    strcpy(text + n + JW_TOKEN_MAX + 1, "\"}");
    expect_error(text, JW_ERR_UNAUTHENTICATED);
    free(text);

    json_t *ack = frame_json(jw_reply_auth_ack("a", "alice", 1700000000), "ack");
    assert_string_equal(str(ack, "op"), "auth");
    assert_string_equal(str(ack, "id"), "a");
    assert_string_equal(str(ack, "userId"), "alice");
    assert_true(json_integer_value(json_object_get(ack, "expiresAt")) == 1700000000);
    json_decref(ack);
}

static void
test_welcome(void **state)
{
    (void)state;
    json_t *w = frame_json(jw_reply_welcome("c00000001", "alice", 1, true, 1763900000), "welcome");
    assert_true(json_integer_value(json_object_get(w, "protocol")) == JW_PROTOCOL_VERSION);
    assert_string_equal(str(w, "connectionId"), "c00000001");
    assert_string_equal(str(w, "userId"), "alice");
    assert_true(json_is_true(json_object_get(w, "admin")));
    assert_true(json_is_true(json_object_get(w, "live")));
    assert_true(json_integer_value(json_object_get(w, "expiresAt")) == 1763900000);
    assert_string_equal(str(w, "epoch"), jw_event_epoch());
    json_decref(w);
    /* no expiry (dev_auth, a token without exp): no expiresAt */
    w = frame_json(jw_reply_welcome("c2", "b\"ob\xff", 0, false, 0), "welcome");
    assert_true(json_is_false(json_object_get(w, "admin")));
    assert_true(json_is_false(json_object_get(w, "live")));
    assert_null(json_object_get(w, "expiresAt"));
    assert_string_equal(str(w, "userId"), "b\"ob\xef\xbf\xbd");
    assert_string_equal(str(w, "epoch"), jw_event_epoch());
    json_decref(w);
    w = frame_json(jw_reply_welcome("c3", "u", 0, true, -5), "welcome");
    assert_null(json_object_get(w, "expiresAt"));
    json_decref(w);
}

static void
test_status_goaway_close(void **state)
{
    (void)state;
    json_t *s = frame_json(jw_reply_status(false, "redis unavailable", -1, -1), "status");
    assert_true(json_is_false(json_object_get(s, "live")));
    assert_string_equal(str(s, "reason"), "redis unavailable");
    assert_null(json_object_get(s, "resumed"));
    assert_null(json_object_get(s, "snapshots"));
    assert_int_equal(json_object_size(s), 3);
    json_decref(s);
    s = frame_json(jw_reply_status(true, NULL, 1, -1), "status");
    assert_true(json_is_true(json_object_get(s, "live")));
    assert_null(json_object_get(s, "reason"));
    assert_true(json_is_true(json_object_get(s, "resumed")));
    assert_null(json_object_get(s, "snapshots"));
    json_decref(s);
    s = frame_json(jw_reply_status(true, NULL, 0, 12), "status");
    assert_true(json_is_false(json_object_get(s, "resumed")));
    assert_true(json_integer_value(json_object_get(s, "snapshots")) == 12);
    json_decref(s);
    s = frame_json(jw_reply_status(true, NULL, -1, 0), "status");
    assert_null(json_object_get(s, "resumed"));
    assert_true(json_integer_value(json_object_get(s, "snapshots")) == 0);
    json_decref(s);
    s = frame_json(jw_reply_goaway(2350), "goaway");
    assert_true(json_integer_value(json_object_get(s, "reconnectAfterMs")) == 2350);
    json_decref(s);
    s = frame_json(jw_reply_goaway(UINT32_MAX), "goaway");
    assert_true(json_integer_value(json_object_get(s, "reconnectAfterMs")) == UINT32_MAX);
    json_decref(s);
    s = frame_json(jw_reply_close(4008, "slow \"consumer\""), "close");
    assert_true(json_integer_value(json_object_get(s, "code")) == 4008);
    assert_string_equal(str(s, "reason"), "slow \"consumer\"");
    json_decref(s);
}

static void
test_snapshot(void **state)
{
    (void)state;
    char id[JW_EVENT_ID_TEXT_MAX];
    struct jw_job_state st = {.owner = "u_1",
                              .json = "{\"status\":\"done\",\"n\":123456789012345678901234567890}",
                              .source = "hash"};
    /* visible: owner, source and state as read */
    struct jw_frame *f = jw_reply_snapshot("job\"1", &st, true, 42);
    assert_string_equal(f->type, "snapshot");
    assert_true(f->event_id == 42);
    assert_null(f->conflates);                 /* a snapshot is never replaced */
    assert_non_null(strstr(f->text, st.json)); /* embedded verbatim */
    json_t *s = sequenced_json(f, 9);
    jw_frame_unref(f);
    assert_string_equal(str(s, "type"), "snapshot");
    assert_string_equal(str(s, "jobId"), "job\"1");
    assert_string_equal(str(s, "userId"), "u_1");
    assert_string_equal(str(s, "source"), "hash");
    assert_string_equal(json_string_value(json_object_get(json_object_get(s, "state"), "status")),
                        "done");
    jw_event_id_format(42, id);
    assert_string_equal(str(s, "eventId"), id);
    assert_null(json_object_get(s, "tooLarge"));
    assert_null(json_object_get(s, "unavailable"));
    json_decref(s);

    /* not visible (another user's job): no owner, no state */
    f = jw_reply_snapshot("j", &st, false, 0);
    s = sequenced_json(f, 1);
    jw_frame_unref(f);
    assert_null(json_object_get(s, "userId"));
    assert_true(json_is_null(json_object_get(s, "source")));
    assert_true(json_is_null(json_object_get(s, "state")));
    assert_null(json_object_get(s, "tooLarge"));
    jw_event_id_format(0, id);
    assert_string_equal(str(s, "eventId"), id);
    json_decref(s);

    /* no state in Redis */
    struct jw_job_state none = {0};
    f = jw_reply_snapshot("j", &none, true, 7);
    s = sequenced_json(f, 2);
    jw_frame_unref(f);
    assert_true(json_is_null(json_object_get(s, "source")));
    assert_true(json_is_null(json_object_get(s, "state")));
    assert_null(json_object_get(s, "userId"));
    assert_null(json_object_get(s, "unavailable"));
    json_decref(s);

    /* too large */
    struct jw_job_state big = {.too_large = true};
    f = jw_reply_snapshot("j", &big, true, 8);
    s = sequenced_json(f, 3);
    jw_frame_unref(f);
    assert_true(json_is_true(json_object_get(s, "tooLarge")));
    assert_true(json_is_null(json_object_get(s, "state")));
    assert_null(json_object_get(s, "unavailable"));
    json_decref(s);

    /* Redis could not be asked */
    f = jw_reply_snapshot("j", NULL, true, UINT64_MAX);
    s = sequenced_json(f, 4);
    jw_frame_unref(f);
    assert_true(json_is_true(json_object_get(s, "unavailable")));
    assert_true(json_is_null(json_object_get(s, "state")));
    assert_null(json_object_get(s, "tooLarge"));
    jw_event_id_format(UINT64_MAX, id);
    assert_string_equal(str(s, "eventId"), id);
    json_decref(s);

    /* a string state: any JSON value */
    struct jw_job_state sv = {.json = "\"plain text\"", .source = "string"};
    f = jw_reply_snapshot("j", &sv, true, 1);
    s = sequenced_json(f, 5);
    jw_frame_unref(f);
    assert_string_equal(str(s, "source"), "string");
    assert_string_equal(str(s, "state"), "plain text");
    json_decref(s);
}

/* ---- properties ------------------------------------------------------------------------ */

/* A random id of 1..JW_ID_MAX bytes: UTF-8 without control bytes, with JSON's special ones. */
static size_t
random_id(uint64_t *rng, char *out)
{
    static const char *const pieces[] = {
        "a", "Z", "9", "\"", "\\", "/", ":", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "{", "}", "'"};
    size_t n = 0, want = 1 + jw_random_below(rng, 40);
    while (n < want) {
        const char *p = pieces[jw_random_below(rng, sizeof pieces / sizeof pieces[0])];
        if (n + strlen(p) > JW_ID_MAX)
            break;
        memcpy(out + n, p, strlen(p));
        n += strlen(p);
    }
    out[n] = '\0';
    return n;
}

static void
test_subscribe_round_trip(void **state)
{
    (void)state;
    uint64_t rng = jw_random_seed();
    for (int i = 0; i < 2000; i++) {
        json_t *req = json_object();
        json_object_set_new(req, "type", json_string(i % 2 ? "subscribe" : "unsubscribe"));
        char rid[JW_ID_MAX + 1];
        random_id(&rng, rid);
        if (strlen(rid) <= JW_REQUEST_ID_MAX)
            json_object_set_new(req, "id", json_string(rid));
        else
            rid[0] = '\0';
        size_t njobs = 1 + jw_random_below(&rng, 8);
        char jobs[8][JW_ID_MAX + 1];
        json_t *arr = json_array();
        for (size_t k = 0; k < njobs; k++) {
            random_id(&rng, jobs[k]);
            json_array_append_new(arr, json_string(jobs[k]));
        }
        json_object_set_new(req, "jobs", arr);
        unsigned kinds = (unsigned)jw_random_below(&rng, JW_KINDS_ALL) + 1;
        json_t *karr = json_array();
        for (int k = 0; k < JW_KIND__COUNT; k++)
            if (kinds & (1u << k))
                json_array_append_new(karr, json_string(jw_kind_name((enum jw_kind)k)));
        json_object_set_new(req, "kinds", karr);
        char *text = json_dumps(req, JSON_COMPACT);
        json_decref(req);

        struct jw_cmd cmd;
        struct jw_cmd_error err;
        assert_int_equal(parse_max(text, 8, &cmd, &err), 0);
        free(text);
        assert_string_equal(cmd.id, rid);
        assert_int_equal(cmd.njobs, njobs);
        for (size_t k = 0; k < njobs; k++)
            assert_string_equal(cmd.jobs[k], jobs[k]);
        assert_int_equal(cmd.kinds, i % 2 ? kinds : JW_KINDS_ALL); /* unsubscribe: no filter */
        json_t *ack = frame_json(jw_reply_ack(&cmd, (int)jw_random_below(&rng, 3) - 1,
                                              (long)jw_random_below(&rng, 100) - 1),
                                 "ack");
        json_t *ajobs = json_object_get(ack, "jobs");
        assert_int_equal(json_array_size(ajobs), njobs);
        for (size_t k = 0; k < njobs; k++)
            assert_string_equal(json_string_value(json_array_get(ajobs, k)), jobs[k]);
        if (rid[0])
            assert_string_equal(str(ack, "id"), rid);
        json_decref(ack);
        jw_cmd_clear(&cmd);
    }
}

/* Whatever bytes a reply is given, it is valid JSON text of UTF-8. */
static void
test_replies_always_valid(void **state)
{
    (void)state;
    uint64_t rng = jw_random_seed();
    for (int i = 0; i < 3000; i++) {
        char junk[64];
        size_t n = jw_random_below(&rng, sizeof junk);
        for (size_t k = 0; k < n; k++)
            junk[k] = (char)(1 + jw_random_below(&rng, 255));
        junk[n] = '\0';
        json_decref(frame_json(jw_reply_error(junk, JW_ERR_BAD_REQUEST, junk), "error"));
        json_decref(frame_json(jw_reply_pong(junk), "pong"));
        json_decref(frame_json(jw_reply_status(i % 2, junk, i % 3 - 1, i % 4 - 1), "status"));
        json_decref(frame_json(jw_reply_close(1000 + (unsigned)i, junk), "close"));
        json_decref(frame_json(jw_reply_welcome(junk, junk, i % 2, i % 3, i), "welcome"));
        json_decref(frame_json(jw_reply_auth_ack(junk, junk, i), "ack"));
        struct jw_job_state st = {.owner = junk, .json = "[1]", .source = "string"};
        struct jw_frame *f = jw_reply_snapshot(junk, &st, i % 2, (uint64_t)i);
        json_decref(sequenced_json(f, (unsigned long long)i));
        jw_frame_unref(f);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_jobs_with_kinds),
        cmocka_unit_test(test_scopes_and_defaults),
        cmocka_unit_test(test_last_event_id),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_keeps_request_id),
        cmocka_unit_test(test_auth_and_refresh),
        cmocka_unit_test(test_welcome),
        cmocka_unit_test(test_status_goaway_close),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_subscribe_round_trip),
        cmocka_unit_test(test_replies_always_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
