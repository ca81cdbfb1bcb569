/*
 * From one Redis pmessage (channel, payload) to an event with its frame built once (rules in
 * event.h and docs/PROTOCOL.md, "Events from Redis").
 */
#include "jobwire/event.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/buf.h"
#include "jobwire/clock.h"
#include "jobwire/json.h"
#include "jobwire/rand.h"
#include "jobwire/utf8.h"

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
    return kind < JW_KIND__COUNT ? kind_names[kind] : "internal";
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

/* UTF-8 without C0 control bytes or DEL (NUL included): safe in a channel segment or an id. */
static int
text_clean(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return jw_utf8_valid(s, len);
}

int
jw_id_valid(const char *id, size_t len)
{
    return len > 0 && len <= JW_ID_MAX && text_clean(id, len);
}

/* ---- epoch and ids ------------------------------------------------------------------- */

static char epoch[9];
static pthread_once_t epoch_once = PTHREAD_ONCE_INIT;

static void
init_epoch(void)
{
    uint64_t r = jw_random_seed();
    snprintf(epoch, sizeof epoch, "%08x", (unsigned)(r ^ (r >> 32)));
}

const char *
jw_event_epoch(void)
{
    pthread_once(&epoch_once, init_epoch);
    return epoch;
}

size_t
jw_event_id_format(uint64_t id, char *out)
{
    return (size_t)snprintf(out, JW_EVENT_ID_TEXT_MAX, "%s-%" PRIu64, jw_event_epoch(), id);
}

int
jw_event_id_parse(const char *text, uint64_t *id)
{
    const char *dash = strchr(text, '-');
    if (!dash || dash - text != 8 || !dash[1] || strlen(dash + 1) > 20)
        return -EINVAL;
    for (const char *p = text; p < dash; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return -EINVAL;
    uint64_t v = 0;
    for (const char *p = dash + 1; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (memcmp(text, jw_event_epoch(), 8) != 0)
        return -EXDEV;
    *id = v;
    return 0;
}

/* ---- parsing ------------------------------------------------------------------------- */

static struct jw_event *
event_new(enum jw_kind kind, uint64_t id, char *job_id, char *user_id)
{
    struct jw_event *ev = jw_calloc(1, sizeof(*ev));
    ev->msg.type = JW_MSG_EVENT;
    ev->refs = 1;
    ev->kind = kind;
    ev->id = id;
    ev->job_id = job_id;
    ev->user_id = user_id;
    return ev;
}

static void
build_frame(struct jw_event *ev, const char *kind, size_t kind_len, const char *channel,
            size_t channel_len, const char *payload, size_t payload_len)
{
    struct jw_buf b;
    char id[JW_EVENT_ID_TEXT_MAX];
    jw_buf_init(&b, 128 + kind_len + 2 * channel_len + payload_len);
    jw_buf_append_str(&b, "{\"type\":\"event\",\"kind\":");
    jw_buf_append_json_string(&b, kind, kind_len);
    if (ev->job_id) {
        jw_buf_append_str(&b, ",\"jobId\":");
        jw_buf_append_json_string(&b, ev->job_id, strlen(ev->job_id));
    }
    if (ev->user_id) {
        jw_buf_append_str(&b, ",\"userId\":");
        jw_buf_append_json_string(&b, ev->user_id, strlen(ev->user_id));
    }
    jw_buf_append_str(&b, ",\"channel\":");
    jw_buf_append_json_string(&b, channel, channel_len);
    /* The payload was validated as one JSON text, so it is embedded as published. */
    jw_buf_append_str(&b, ",\"payload\":");
    jw_buf_append(&b, payload, payload_len);
    jw_buf_append_str(&b, ",\"eventId\":\"");
    jw_buf_append(&b, id, jw_event_id_format(ev->id, id));
    jw_buf_append_str(&b, "\"");
    /* Only progress may be superseded in a client's queue, and only by its own job's. */
    const char *conflates = ev->kind == JW_KIND_PROGRESS ? ev->job_id : NULL;
    ev->frame = jw_frame_new("event", b.data, b.len, 1, conflates);
    ev->frame->event_id = ev->id;
    ev->frame->origin_ns = jw_now_ns();
    jw_buf_free(&b);
}

enum id_read { ID_NONE, ID_OK, ID_BAD };

/* A payload member as an id. A string must be a valid id, an integer short enough; a number
 * with a fraction or an exponent, an object, an array, true, false or null names nothing. */
static enum id_read
read_id(const char *payload, const struct jw_json_member *m, char *buf, size_t *len)
{
    if (m->type != JW_JSON_STRING && m->type != JW_JSON_NUMBER)
        return ID_NONE;
    *len = jw_json_member_id(payload, m, buf, JW_ID_MAX + 1);
    if (m->type == JW_JSON_NUMBER && !*len) {
        const char *v = payload + m->start;
        bool integer =
            !memchr(v, '.', m->len) && !memchr(v, 'e', m->len) && !memchr(v, 'E', m->len);
        return integer ? ID_BAD : ID_NONE;
    }
    return jw_id_valid(buf, *len) ? ID_OK : ID_BAD;
}

/* The payload checks every event shares: size, JSON, and the ids asked for (job_id, user_id
 * may be NULL: not read, and then not checked either — the channel names it). On JW_EVENT_OK
 * *job_id is a new string and *user_id a new string or NULL (the payload names nobody). */
static enum jw_event_verdict
read_payload(const struct jw_event_rules *rules, const char *payload, size_t payload_len,
             char **job_id, char **user_id)
{
    char buf[JW_ID_MAX + 1];
    size_t n = 0;
    struct jw_json_member m[2] = {{.name = "jobId"}, {.name = "userId"}};
    if (payload_len > rules->max_payload_bytes)
        return JW_EVENT_TOO_LARGE;
    if (!jw_json_scan(payload, payload_len, m, 2))
        return JW_EVENT_NOT_JSON;
    if (user_id) {
        enum id_read r = read_id(payload, &m[1], buf, &n);
        if (r == ID_BAD)
            return JW_EVENT_BAD_ID;
        *user_id = r == ID_OK ? jw_strndup(buf, n) : NULL;
    }
    if (job_id) {
        enum id_read r = read_id(payload, &m[0], buf, &n);
        if (r != ID_OK) {
            if (user_id) {
                free(*user_id);
                *user_id = NULL;
            }
            return r == ID_NONE ? JW_EVENT_NO_JOB_ID : JW_EVENT_BAD_ID;
        }
        *job_id = jw_strndup(buf, n);
    }
    return JW_EVENT_OK;
}

static enum jw_event_verdict
parse_user_channel(const struct jw_event_rules *rules, const struct jw_user_channel *uc,
                   const char *channel, size_t channel_len, const char *payload, size_t payload_len,
                   uint64_t id, struct jw_event **out)
{
    size_t plen = strlen(uc->prefix);
    const char *user = channel + plen;
    size_t user_len = channel_len - plen;
    if (!jw_id_valid(user, user_len))
        return JW_EVENT_BAD_ID;
    /* The channel names the user: the payload's userId is neither read nor checked. */
    enum jw_event_verdict v = read_payload(rules, payload, payload_len, NULL, NULL);
    if (v != JW_EVENT_OK)
        return v;
    struct jw_event *ev = event_new(JW_KIND_OTHER, id, NULL, jw_strndup(user, user_len));
    build_frame(ev, uc->kind, strlen(uc->kind), channel, channel_len, payload, payload_len);
    *out = ev;
    return JW_EVENT_OK;
}

enum jw_event_verdict
jw_event_parse(const struct jw_event_rules *rules, const char *channel, size_t channel_len,
               const char *payload, size_t payload_len, uint64_t id, struct jw_event **out)
{
    size_t prefix_len = strlen(rules->prefix);
    *out = NULL;
    if (channel_len <= prefix_len || memcmp(channel, rules->prefix, prefix_len) != 0) {
        for (size_t i = 0; i < rules->nuser_channels; i++) {
            const struct jw_user_channel *uc = &rules->user_channels[i];
            size_t n = strlen(uc->prefix);
            if (channel_len > n && memcmp(channel, uc->prefix, n) == 0)
                return parse_user_channel(rules, uc, channel, channel_len, payload, payload_len, id,
                                          out);
        }
        return JW_EVENT_NOT_MATCHED;
    }
    const char *kind = channel + prefix_len;
    size_t rest = channel_len - prefix_len;
    const char *colon = memchr(kind, ':', rest);
    size_t kind_len = colon ? (size_t)(colon - kind) : rest;
    if (kind_len == 0)
        return JW_EVENT_NOT_MATCHED;
    if (!text_clean(kind, kind_len))
        return JW_EVENT_BAD_ID;
    const char *job = colon ? colon + 1 : NULL;
    size_t job_len = colon ? rest - kind_len - 1 : 0;
    if (colon && !jw_id_valid(job, job_len))
        return JW_EVENT_BAD_ID;
    if (colon && kind_len == strlen(JW_INTERNAL_KIND) &&
        memcmp(kind, JW_INTERNAL_KIND, kind_len) == 0) {
        *out = event_new(JW_KIND_INTERNAL, id, jw_strndup(job, job_len), NULL);
        return JW_EVENT_OK;
    }

    char *job_id = NULL, *user_id = NULL;
    enum jw_event_verdict v =
        read_payload(rules, payload, payload_len, colon ? NULL : &job_id, &user_id);
    if (v != JW_EVENT_OK)
        return v;
    if (colon) /* the channel names the job; a jobId in the payload does not matter */
        job_id = jw_strndup(job, job_len);
    struct jw_event *ev = event_new(jw_kind_from_name(kind, kind_len), id, job_id, user_id);
    build_frame(ev, kind, kind_len, channel, channel_len, payload, payload_len);
    *out = ev;
    return JW_EVENT_OK;
}

void
jw_event_unref(struct jw_event *ev)
{
    if (!ev || --ev->refs > 0)
        return;
    jw_frame_unref(ev->frame);
    free(ev->job_id);
    free(ev->user_id);
    free(ev);
}
