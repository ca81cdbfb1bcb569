/*
 * Client protocol: parsing of client messages and building of control frames
 * (docs/PROTOCOL.md). Input is untrusted: every field is type- and bounds-checked, and error
 * messages quote no client bytes beyond the request id.
 */
#include "protocol.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/buf.h"

static const char *const scope_names[] = {
    [JW_SCOPE_JOBS] = "jobs", [JW_SCOPE_USER] = "user", [JW_SCOPE_ALL] = "all"};

static int fail(struct jw_cmd_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct jw_cmd_error *err, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads "id" (string or integer) into `id`; absent is fine. */
static int
read_request_id(json_t *root, char id[JW_REQUEST_ID_MAX + 1], struct jw_cmd_error *err)
{
    json_t *v = json_object_get(root, "id");
    id[0] = '\0';
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        snprintf(id, JW_REQUEST_ID_MAX + 1, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, JW_ERR_BAD_REQUEST, "id must be a string or an integer");
    size_t len = json_string_length(v);
    if (len > JW_REQUEST_ID_MAX || (len && !jw_id_valid(json_string_value(v), len)))
        return fail(err, JW_ERR_BAD_REQUEST,
                    "id must be at most %d bytes without control characters", JW_REQUEST_ID_MAX);
    memcpy(id, json_string_value(v), len + 1);
    return 0;
}

static int
read_kinds(json_t *root, struct jw_cmd *cmd, struct jw_cmd_error *err)
{
    json_t *kinds = json_object_get(root, "kinds");
    cmd->kinds = JW_KINDS_ALL;
    if (!kinds)
        return 0;
    if (!json_is_array(kinds) || json_array_size(kinds) == 0)
        return fail(err, JW_ERR_BAD_REQUEST, "kinds must be a non-empty array of kind names");
    cmd->kinds = 0;
    size_t i;
    json_t *k;
    json_array_foreach(kinds, i, k)
    {
        int kind = json_is_string(k) ? jw_kind_parse_filter_name(json_string_value(k)) : -1;
        if (kind < 0)
            return fail(err, JW_ERR_BAD_KIND,
                        "kinds[%zu] must be one of status, progress, complete, error, other", i);
        cmd->kinds |= 1u << kind;
    }
    return 0;
}

static int
read_target(json_t *root, size_t max_jobs, struct jw_cmd *cmd, struct jw_cmd_error *err)
{
    json_t *jobs = json_object_get(root, "jobs");
    json_t *scope = json_object_get(root, "scope");
    if (jobs && scope)
        return fail(err, JW_ERR_BAD_REQUEST, "give either jobs or scope, not both");
    if (scope) {
        const char *name = json_string_value(scope);
        if (name && strcmp(name, "user") == 0)
            cmd->scope = JW_SCOPE_USER;
        else if (name && strcmp(name, "all") == 0)
            cmd->scope = JW_SCOPE_ALL;
        else
            return fail(err, JW_ERR_BAD_REQUEST, "scope must be \"user\" or \"all\"");
        return 0;
    }
    if (!json_is_array(jobs) || json_array_size(jobs) == 0)
        return fail(err, JW_ERR_BAD_REQUEST, "jobs must be a non-empty array of job ids");
    if (json_array_size(jobs) > max_jobs)
        return fail(err, JW_ERR_TOO_MANY_JOBS, "at most %zu jobs per connection", max_jobs);
    cmd->scope = JW_SCOPE_JOBS;
    cmd->jobs = jw_calloc(json_array_size(jobs), sizeof(*cmd->jobs));
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        if (!json_is_string(j) || !jw_id_valid(json_string_value(j), json_string_length(j)))
            return fail(err, JW_ERR_BAD_JOB_ID,
                        "jobs[%zu] must be a string of 1-%d bytes without control characters", i,
                        JW_ID_MAX);
        cmd->jobs[i] = jw_strndup(json_string_value(j), json_string_length(j));
        cmd->njobs++;
    }
    return 0;
}

static int
parse_object(json_t *root, size_t max_jobs, struct jw_cmd *cmd, struct jw_cmd_error *err)
{
    if (read_request_id(root, cmd->id, err) < 0)
        return -1;
    memcpy(err->id, cmd->id, sizeof(err->id));
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type)
        return fail(err, JW_ERR_BAD_REQUEST, "type must be a string");
    if (strcmp(type, "ping") == 0) {
        cmd->type = JW_CMD_PING;
        return 0;
    }
    if (strcmp(type, "auth") == 0 || strcmp(type, "refresh") == 0) {
        json_t *token = json_object_get(root, "token");
        size_t len = json_string_length(token);
        if (!json_is_string(token) || len == 0)
            return fail(err, JW_ERR_BAD_REQUEST, "token must be a non-empty string");
        if (len > JW_TOKEN_MAX)
            return fail(err, JW_ERR_UNAUTHENTICATED, "token longer than %d bytes", JW_TOKEN_MAX);
        cmd->type = JW_CMD_AUTH;
        cmd->token = jw_strndup(json_string_value(token), len);
        cmd->token_len = len;
        return 0;
    }
    if (strcmp(type, "subscribe") == 0)
        cmd->type = JW_CMD_SUBSCRIBE;
    else if (strcmp(type, "unsubscribe") == 0)
        cmd->type = JW_CMD_UNSUBSCRIBE;
    else
        return fail(err, JW_ERR_UNKNOWN_TYPE,
                    "type must be auth, refresh, subscribe, unsubscribe or ping");
    if (read_target(root, max_jobs, cmd, err) < 0)
        return -1;
    if (cmd->type != JW_CMD_SUBSCRIBE)
        return 0;
    json_t *last = json_object_get(root, "lastEventId");
    if (last) {
        size_t len = json_string_length(last);
        if (!json_is_string(last) || len == 0 || len >= sizeof cmd->last_event_id)
            return fail(err, JW_ERR_BAD_REQUEST, "lastEventId must be an eventId string");
        memcpy(cmd->last_event_id, json_string_value(last), len + 1);
    }
    return read_kinds(root, cmd, err);
}

int
jw_cmd_parse(const char *text, size_t len, size_t max_jobs, struct jw_cmd *cmd,
             struct jw_cmd_error *err)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->kinds = JW_KINDS_ALL;
    err->code = NULL;
    err->message[0] = '\0';
    err->id[0] = '\0';

    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, JW_ERR_BAD_JSON, "message must be a JSON object");
    }
    int rc = parse_object(root, max_jobs, cmd, err);
    json_decref(root);
    if (rc < 0)
        jw_cmd_clear(cmd);
    return rc;
}

void
jw_cmd_clear(struct jw_cmd *cmd)
{
    for (size_t i = 0; i < cmd->njobs; i++)
        free(cmd->jobs[i]);
    free(cmd->jobs);
    cmd->jobs = NULL;
    cmd->njobs = 0;
    if (cmd->token) /* tokens are credentials: wipe the copy before it goes back to malloc */
        explicit_bzero(cmd->token, cmd->token_len);
    free(cmd->token);
    cmd->token = NULL;
    cmd->token_len = 0;
}

static void
begin(struct jw_buf *b, const char *type, const char *id)
{
    jw_buf_init(b, 128);
    jw_buf_append_str(b, "{\"type\":\"");
    jw_buf_append_str(b, type);
    jw_buf_append_str(b, "\"");
    if (id && id[0]) {
        jw_buf_append_str(b, ",\"id\":");
        jw_buf_append_json_string(b, id, strlen(id));
    }
}

static struct jw_frame *
finish(struct jw_buf *b, const char *type)
{
    jw_buf_append_str(b, "}");
    struct jw_frame *f = jw_frame_new(type, b->data, b->len, 0, NULL);
    jw_buf_free(b);
    return f;
}

static void
append_bool(struct jw_buf *b, const char *name, bool v)
{
    jw_buf_append_str(b, ",\"");
    jw_buf_append_str(b, name);
    jw_buf_append_str(b, v ? "\":true" : "\":false");
}

struct jw_frame *
jw_reply_welcome(const char *connection_id, const char *user_id, int admin, bool live,
                 int64_t expires_at)
{
    struct jw_buf b;
    begin(&b, "welcome", NULL);
    jw_buf_append_str(&b, ",\"protocol\":");
    jw_buf_append_u64(&b, JW_PROTOCOL_VERSION);
    jw_buf_append_str(&b, ",\"connectionId\":");
    jw_buf_append_json_string(&b, connection_id, strlen(connection_id));
    jw_buf_append_str(&b, ",\"userId\":");
    jw_buf_append_json_string(&b, user_id, strlen(user_id));
    append_bool(&b, "admin", admin);
    append_bool(&b, "live", live);
    if (expires_at > 0) {
        jw_buf_append_str(&b, ",\"expiresAt\":");
        jw_buf_append_u64(&b, (unsigned long long)expires_at);
    }
    jw_buf_append_str(&b, ",\"epoch\":\"");
    jw_buf_append_str(&b, jw_event_epoch());
    jw_buf_append_str(&b, "\"");
    return finish(&b, "welcome");
}

struct jw_frame *
jw_reply_ack(const struct jw_cmd *cmd, int resumed, long snapshots)
{
    struct jw_buf b;
    begin(&b, "ack", cmd->id);
    jw_buf_append_str(&b, cmd->type == JW_CMD_SUBSCRIBE ? ",\"op\":\"subscribe\""
                                                        : ",\"op\":\"unsubscribe\"");
    jw_buf_append_str(&b, ",\"scope\":\"");
    jw_buf_append_str(&b, scope_names[cmd->scope]);
    jw_buf_append_str(&b, "\"");
    if (cmd->scope == JW_SCOPE_JOBS) {
        jw_buf_append_str(&b, ",\"jobs\":[");
        for (size_t i = 0; i < cmd->njobs; i++) {
            if (i)
                jw_buf_append_str(&b, ",");
            jw_buf_append_json_string(&b, cmd->jobs[i], strlen(cmd->jobs[i]));
        }
        jw_buf_append_str(&b, "]");
    }
    if (cmd->type == JW_CMD_SUBSCRIBE) {
        jw_buf_append_str(&b, ",\"kinds\":[");
        int first = 1;
        for (int k = 0; k < JW_KIND__COUNT; k++) {
            if (!(cmd->kinds & (1u << k)))
                continue;
            jw_buf_append_str(&b, first ? "\"" : ",\"");
            jw_buf_append_str(&b, jw_kind_name((enum jw_kind)k));
            jw_buf_append_str(&b, "\"");
            first = 0;
        }
        jw_buf_append_str(&b, "]");
    }
    if (resumed >= 0)
        append_bool(&b, "resumed", resumed);
    if (snapshots >= 0) {
        jw_buf_append_str(&b, ",\"snapshots\":");
        jw_buf_append_u64(&b, (unsigned long long)snapshots);
    }
    return finish(&b, "ack");
}

struct jw_frame *
jw_reply_error(const char *id, const char *code, const char *message)
{
    struct jw_buf b;
    begin(&b, "error", id);
    jw_buf_append_str(&b, ",\"code\":\"");
    jw_buf_append_str(&b, code);
    jw_buf_append_str(&b, "\",\"message\":");
    jw_buf_append_json_string(&b, message, strlen(message));
    return finish(&b, "error");
}

struct jw_frame *
jw_reply_pong(const char *id)
{
    struct jw_buf b;
    begin(&b, "pong", id);
    return finish(&b, "pong");
}

struct jw_frame *
jw_reply_auth_ack(const char *id, const char *user_id, long long expires_at)
{
    struct jw_buf b;
    begin(&b, "ack", id);
    jw_buf_append_str(&b, ",\"op\":\"auth\",\"userId\":");
    jw_buf_append_json_string(&b, user_id, strlen(user_id));
    jw_buf_append_str(&b, ",\"expiresAt\":");
    jw_buf_append_u64(&b, (unsigned long long)expires_at);
    return finish(&b, "ack");
}

struct jw_frame *
jw_reply_status(bool live, const char *reason, int resumed, long snapshots)
{
    struct jw_buf b;
    begin(&b, "status", NULL);
    append_bool(&b, "live", live);
    if (reason) {
        jw_buf_append_str(&b, ",\"reason\":");
        jw_buf_append_json_string(&b, reason, strlen(reason));
    }
    if (resumed >= 0)
        append_bool(&b, "resumed", resumed);
    if (snapshots >= 0) {
        jw_buf_append_str(&b, ",\"snapshots\":");
        jw_buf_append_u64(&b, (unsigned long long)snapshots);
    }
    return finish(&b, "status");
}

struct jw_frame *
jw_reply_goaway(uint32_t reconnect_after_ms)
{
    struct jw_buf b;
    begin(&b, "goaway", NULL);
    jw_buf_append_str(&b, ",\"reconnectAfterMs\":");
    jw_buf_append_u64(&b, reconnect_after_ms);
    return finish(&b, "goaway");
}

struct jw_frame *
jw_reply_close(unsigned code, const char *reason)
{
    struct jw_buf b;
    begin(&b, "close", NULL);
    jw_buf_append_str(&b, ",\"code\":");
    jw_buf_append_u64(&b, code);
    jw_buf_append_str(&b, ",\"reason\":");
    jw_buf_append_json_string(&b, reason, strlen(reason));
    return finish(&b, "close");
}

struct jw_frame *
jw_reply_snapshot(const char *job_id, const struct jw_job_state *st, bool visible,
                  uint64_t event_id)
{
    struct jw_buf b;
    char id[JW_EVENT_ID_TEXT_MAX];
    bool shown = visible && st && st->json;
    jw_buf_init(&b, 160 + (shown ? strlen(st->json) : 0));
    jw_buf_append_str(&b, "{\"type\":\"snapshot\",\"jobId\":");
    jw_buf_append_json_string(&b, job_id, strlen(job_id));
    if (visible && st && st->owner) {
        jw_buf_append_str(&b, ",\"userId\":");
        jw_buf_append_json_string(&b, st->owner, strlen(st->owner));
    }
    jw_buf_append_str(&b, ",\"source\":");
    if (shown) {
        jw_buf_append_str(&b, "\"");
        jw_buf_append_str(&b, st->source);
        jw_buf_append_str(&b, "\"");
    } else {
        jw_buf_append_str(&b, "null");
    }
    jw_buf_append_str(&b, ",\"state\":");
    jw_buf_append_str(&b, shown ? st->json : "null");
    if (!st)
        jw_buf_append_str(&b, ",\"unavailable\":true");
    else if (st->too_large)
        jw_buf_append_str(&b, ",\"tooLarge\":true");
    jw_buf_append_str(&b, ",\"eventId\":\"");
    jw_buf_append(&b, id, jw_event_id_format(event_id, id));
    jw_buf_append_str(&b, "\"");
    struct jw_frame *f = jw_frame_new("snapshot", b.data, b.len, 1, NULL);
    f->event_id = event_id;
    jw_buf_free(&b);
    return f;
}
