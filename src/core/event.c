/*
 * From one Redis pmessage (channel, payload) to a routed event with its frame built once
 * (rules in event.h and docs/PROTOCOL.md, "Events from Redis").
 */
#include "jobwire/event.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/buf.h"
#include "jobwire/dict.h"

static const char *const kind_names[JW_KIND__COUNT] = {
    [JW_KIND_STATUS] = "status", [JW_KIND_PROGRESS] = "progress", [JW_KIND_COMPLETE] = "complete",
    [JW_KIND_ERROR] = "error",   [JW_KIND_OTHER] = "other",
};

static const char *const verdict_names[JW_EVENT__VERDICT_COUNT] = {
    [JW_EVENT_OK] = "ok",
    [JW_EVENT_NOT_MATCHED] = "not_matched",
    [JW_EVENT_NOT_JSON] = "not_json",
    [JW_EVENT_TOO_LARGE] = "too_large",
    [JW_EVENT_NO_JOB_ID] = "no_job_id",
    [JW_EVENT_BAD_ID] = "bad_id",
};

const char *
jw_kind_name(enum jw_kind kind)
{
    return kind_names[kind];
}

const char *
jw_event_verdict_name(enum jw_event_verdict v)
{
    return verdict_names[v];
}

enum jw_kind
jw_kind_from_name(const char *name, size_t len)
{
    for (int k = 0; k < JW_KIND_OTHER; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], name, len) == 0)
            return (enum jw_kind)k;
    return JW_KIND_OTHER;
}

int
jw_kind_parse_filter_name(const char *name)
{
    for (int k = 0; k < JW_KIND__COUNT; k++)
        if (strcmp(kind_names[k], name) == 0)
            return k;
    return -1;
}

int
jw_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > JW_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return 0;
    return 1;
}

/* An id field of the payload: a string, or an integer written in decimal. Returns a new string,
 * or NULL when the field is absent or of another type. */
static char *
payload_id(json_t *root, const char *field)
{
    json_t *v = json_object_get(root, field);
    if (json_is_string(v))
        return jw_strndup(json_string_value(v), json_string_length(v));
    if (json_is_integer(v)) {
        char tmp[24];
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return jw_strdup(tmp);
    }
    return NULL;
}

static struct jw_frame *
build_frame(const struct jw_event *ev, const char *kind, size_t kind_len, const char *channel,
            size_t channel_len, const char *payload, size_t payload_len)
{
    struct jw_buf b;
    jw_buf_init(&b, 96 + kind_len + 2 * channel_len + payload_len);
    jw_buf_append_str(&b, "{\"type\":\"event\",\"kind\":");
    jw_buf_append_json_string(&b, kind, kind_len);
    jw_buf_append_str(&b, ",\"jobId\":");
    jw_buf_append_json_string(&b, ev->job_id, strlen(ev->job_id));
    if (ev->user_id) {
        jw_buf_append_str(&b, ",\"userId\":");
        jw_buf_append_json_string(&b, ev->user_id, strlen(ev->user_id));
    }
    jw_buf_append_str(&b, ",\"channel\":");
    jw_buf_append_json_string(&b, channel, channel_len);
    /* The payload was validated as one JSON value, so it is embedded as published. */
    jw_buf_append_str(&b, ",\"payload\":");
    jw_buf_append(&b, payload, payload_len);
    jw_buf_append_str(&b, ",\"seq\":");
    struct jw_frame *f = jw_frame_new(b.data, b.len, 1);
    f->origin_ns = jw_monotonic_ns();
    jw_buf_free(&b);
    return f;
}

static enum jw_event_verdict
parse_internal(const char *rest, size_t len, struct jw_event **out)
{
    if (!jw_id_valid(rest, len))
        return JW_EVENT_BAD_ID;
    struct jw_event *ev = jw_calloc(1, sizeof(*ev));
    ev->msg.type = JW_MSG_EVENT;
    ev->kind = JW_KIND_INTERNAL;
    ev->job_id = jw_strndup(rest, len);
    *out = ev;
    return JW_EVENT_OK;
}

enum jw_event_verdict
jw_event_parse(const struct jw_event_rules *rules, const char *channel, size_t channel_len,
               const char *payload, size_t payload_len, struct jw_event **out)
{
    size_t prefix_len = strlen(rules->prefix);
    *out = NULL;
    if (channel_len <= prefix_len || memcmp(channel, rules->prefix, prefix_len) != 0)
        return JW_EVENT_NOT_MATCHED;
    const char *kind = channel + prefix_len;
    size_t rest = channel_len - prefix_len;
    const char *colon = memchr(kind, ':', rest);
    size_t kind_len = colon ? (size_t)(colon - kind) : rest;
    if (kind_len == 0)
        return JW_EVENT_NOT_MATCHED;
    if (colon && kind_len == strlen(JW_INTERNAL_KIND) &&
        memcmp(kind, JW_INTERNAL_KIND, kind_len) == 0)
        return parse_internal(colon + 1, rest - kind_len - 1, out);
    if (payload_len > rules->max_payload_bytes)
        return JW_EVENT_TOO_LARGE;

    json_error_t jerr;
    json_t *root = json_loadb(payload, payload_len, JSON_DECODE_ANY, &jerr);
    if (!root)
        return JW_EVENT_NOT_JSON;

    enum jw_event_verdict verdict = JW_EVENT_OK;
    char *job_id = colon ? jw_strndup(colon + 1, rest - kind_len - 1) : payload_id(root, "jobId");
    char *user_id = payload_id(root, "userId");
    json_decref(root);

    if (!job_id)
        verdict = JW_EVENT_NO_JOB_ID;
    else if (!jw_id_valid(job_id, strlen(job_id)) ||
             (user_id && !jw_id_valid(user_id, strlen(user_id))))
        verdict = JW_EVENT_BAD_ID;
    if (verdict != JW_EVENT_OK) {
        free(job_id);
        free(user_id);
        return verdict;
    }

    struct jw_event *ev = jw_calloc(1, sizeof(*ev));
    ev->msg.type = JW_MSG_EVENT;
    ev->kind = jw_kind_from_name(kind, kind_len);
    ev->job_id = job_id;
    ev->user_id = user_id;
    ev->frame = build_frame(ev, kind, kind_len, channel, channel_len, payload, payload_len);
    if (ev->kind == JW_KIND_PROGRESS) /* only progress may be superseded in a client's queue */
        ev->frame->conflate_key = jw_hash_string(job_id) | 1;
    *out = ev;
    return JW_EVENT_OK;
}

void
jw_event_free(struct jw_event *ev)
{
    if (!ev)
        return;
    jw_frame_unref(ev->frame);
    free(ev->job_id);
    free(ev->user_id);
    free(ev);
}
