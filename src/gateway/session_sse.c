/*
 * The Server-Sent Events transport of a session (GET /events, docs/PROTOCOL.md): the
 * subscription named by the request's query, the writer that turns the session's queued frames
 * into SSE events, and the heartbeat.
 *
 * Every frame is the same shared JSON text a WebSocket client gets, with the same seq stamp:
 *
 *   id: <seq>          (stamped frames only: events and snapshots)
 *   event: <type>      (the frame's "type": event, snapshot, welcome, ack, status, goaway, error)
 *   data: <json>
 *   <blank line>
 *
 * Several frames go out in one lws_write(), put together in one buffer the environment owns
 * (the gateway thread is the only writer, so one buffer serves every session). When the queue
 * is empty and a close is due, one last `event: close` names the code a WebSocket would have
 * been closed with, and the response ends on the following WRITEABLE callback.
 *
 * Heartbeat: a comment line `: hb` goes to a stream idle for sse_heartbeat_s. Besides keeping
 * ingresses from timing the stream out, it is what ends the stream of a client that vanished:
 * libwebsockets 4.1.6 spins its service loop on such a connection until it next writes to it.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "session_private.h"

#define MOD JW_SESSION_MOD
#define SSE_BATCH 16384     /* bytes put together for one lws_write(), at least one frame */
#define SSE_OVERHEAD 96     /* id, event and data lines around one frame's text */
#define SSE_QUERY_MAX 12288 /* no longer than lws' whole header space (gateway.c) */

/* ---- the query ------------------------------------------------------------------------ */

/* Appends the comma-separated items of `list` to `arr` as strings; -1 when one is not UTF-8. */
static int
append_items(json_t *arr, const char *list)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (json_array_append_new(arr, json_stringn(p, n)) < 0)
            return -1;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

unsigned
jw_session_sse_query(const struct jw_session_env *env, struct lws *wsi, char **text,
                     unsigned *flags, char *why_buf, size_t why_size)
{
    char *arg = jw_malloc(SSE_QUERY_MAX);
    json_t *msg = json_pack("{s:s}", "type", "subscribe");
    unsigned status = 400;
    *text = NULL;
    const char *jobs = lws_get_urlarg_by_name(wsi, "jobs=", arg, SSE_QUERY_MAX);
    if (jobs) {
        json_t *arr = json_array();
        json_object_set_new(msg, "jobs", arr);
        if (append_items(arr, jobs) < 0) {
            snprintf(why_buf, why_size, "jobs= must be UTF-8 job ids separated by commas");
            goto out;
        }
    }
    const char *scope = lws_get_urlarg_by_name(wsi, "scope=", arg, SSE_QUERY_MAX);
    if (scope) {
        if (jobs) {
            snprintf(why_buf, why_size, "name jobs= or scope=, not both");
            goto out;
        }
        json_object_set_new(msg, "scope", json_string(scope));
    }
    if (!jobs && !scope) {
        snprintf(why_buf, why_size, "name the subscription: jobs=<id>,<id> or scope=user|all");
        goto out;
    }
    const char *kinds = lws_get_urlarg_by_name(wsi, "kinds=", arg, SSE_QUERY_MAX);
    if (kinds) {
        json_t *arr = json_array();
        json_object_set_new(msg, "kinds", arr);
        if (append_items(arr, kinds) < 0) {
            snprintf(why_buf, why_size, "kinds= must be kinds separated by commas");
            goto out;
        }
    }
    if (!json_object_get(msg, "scope") && scope) {
        snprintf(why_buf, why_size, "scope= must be user or all");
        goto out;
    }
    /* Validated exactly as the same message from a WebSocket client would be. */
    char *dumped = json_dumps(msg, JSON_COMPACT);
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (jw_cmd_parse(dumped, strlen(dumped), (size_t)env->cfg->client_max_subscriptions, &cmd,
                     &err) < 0) {
        snprintf(why_buf, why_size, "%s: %s", err.code, err.message);
        free(dumped);
        goto out;
    }
    if (cmd.scope == JW_SCOPE_ALL)
        *flags |= JW_ADMIT_ADMIN;
    jw_cmd_clear(&cmd);
    *text = dumped;
    status = 0;
out:
    json_decref(msg);
    free(arg);
    return status;
}

void
jw_session_sse_subscribe(struct jw_session *s, const char *text)
{
    /* Held behind a revocation check in progress, like a WebSocket client's early request. */
    jw_session_handle_message(s, text, strlen(text));
}

int
jw_session_sse_resumed(struct lws *wsi)
{
    char id[32];
    return lws_hdr_custom_copy(wsi, id, sizeof(id), "last-event-id:", 14) > 0;
}

/* ---- the writer ----------------------------------------------------------------------- */

static unsigned char *
room(struct jw_session_env *env, size_t used, size_t more)
{
    size_t need = LWS_PRE + used + more;
    if (need > env->sse_buf_cap) {
        size_t cap = env->sse_buf_cap ? env->sse_buf_cap : LWS_PRE + SSE_BATCH + SSE_OVERHEAD;
        while (cap < need)
            cap *= 2;
        env->sse_buf = jw_realloc(env->sse_buf, cap);
        env->sse_buf_cap = cap;
    }
    return env->sse_buf + LWS_PRE + used;
}

void
jw_session_sse_env_destroy(struct jw_session_env *env)
{
    free(env->sse_buf);
    env->sse_buf = NULL;
    env->sse_buf_cap = 0;
}

/* The frame's "type" (every frame starts with {"type":"...). */
static size_t
frame_type(const char *text, size_t len, const char **type)
{
    static const char head[] = "{\"type\":\"";
    size_t h = sizeof(head) - 1;
    if (len > h && memcmp(text, head, h) == 0) {
        const char *end = memchr(text + h, '"', len - h < 32 ? len - h : 32);
        if (end) {
            *type = text + h;
            return (size_t)(end - *type);
        }
    }
    *type = "message";
    return 7;
}

/* Appends one event; returns the bytes used. A payload published with line breaks (JSON
 * allows them between tokens) becomes several data lines, which the client joins with "\n". */
static size_t
append_event(struct jw_session_env *env, size_t used, const char *id, const char *text, size_t len)
{
    const char *type;
    size_t tlen = frame_type(text, len, &type), breaks = 0;
    int one_line = !memchr(text, '\n', len) && !memchr(text, '\r', len);
    for (size_t i = 0; !one_line && i < len; i++)
        breaks += text[i] == '\n' || text[i] == '\r';
    char *out = (char *)room(env, used, len + breaks * 6 + tlen + SSE_OVERHEAD);
    char *p = out;
    if (id)
        p += sprintf(p, "id: %s\n", id);
    memcpy(p, "event: ", 7);
    memcpy(p + 7, type, tlen);
    p += 7 + tlen;
    memcpy(p, "\ndata: ", 7);
    p += 7;
    if (one_line) {
        memcpy(p, text, len);
        p += len;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (text[i] != '\n' && text[i] != '\r') {
                *p++ = text[i];
                continue;
            }
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
                i++;
            memcpy(p, "\ndata: ", 7);
            p += 7;
        }
    }
    memcpy(p, "\n\n", 2);
    p += 2;
    return (size_t)(p - out);
}

static int
write_out(struct jw_session *s, size_t len)
{
    if (lws_write(s->wsi, s->env->sse_buf + LWS_PRE, len, LWS_WRITE_HTTP) < (int)len) {
        jw_info(MOD, "c%08x: write failed", s->id);
        return -1;
    }
    s->last_write_ms = jw_session_now_ms();
    s->sse_hb_due = 0;
    return 0;
}

/* The last event of a stream the server ends: the close code and reason a WebSocket would get. */
static int
write_close(struct jw_session *s)
{
    char text[160];
    int n = snprintf(text, sizeof(text), "{\"type\":\"close\",\"code\":%u,\"reason\":\"%s\"}",
                     (unsigned)s->close_code, s->close_reason);
    s->sse_ended = 1;
    if (write_out(s, append_event(s->env, 0, NULL, text, (size_t)n)) < 0)
        return -1;
    lws_callback_on_writable(s->wsi); /* after lws has flushed it: end the response */
    return 0;
}

int
jw_session_sse_writeable(struct jw_session *s)
{
    struct jw_session_env *env = s->env;
    if (s->sse_ended)
        return -1; /* closing the connection ends the response (no length was announced) */
    if (s->close_code && !s->outq.count)
        return write_close(s);
    struct jw_frame *f;
    size_t written = 0;
    uint64_t now_ns = jw_monotonic_ns();
    do {
        size_t used = 0;
        while ((f = jw_outq_peek(&s->outq)) && (!used || used + f->len <= SSE_BATCH)) {
            char id[24];
            size_t len = f->len;
            if (f->stamped) {
                len = jw_frame_stamp(f, ++s->seq);
                snprintf(id, sizeof(id), "%" PRIu64, s->seq);
            }
            used += append_event(env, used, f->stamped ? id : NULL, (const char *)jw_frame_text(f),
                                 len);
            if (f->origin_ns)
                jw_metrics_observe_delivery_latency(now_ns - f->origin_ns);
            written += jw_frame_cost(f);
            jw_outq_pop(&s->outq);
        }
        if (!used && s->sse_hb_due) {
            memcpy(room(env, 0, 6), ": hb\n\n", 6);
            used = 6;
        }
        if (used && write_out(s, used) < 0)
            return -1;
    } while (s->outq.count && !lws_send_pipe_choked(s->wsi));
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)written);
    /* An error answered the query or the token: the stream ends once it is out. */
    if (!s->outq.count && s->sse_end_code && !s->close_code)
        jw_session_close_later(s, s->sse_end_code, "request refused");
    if (s->outq.count || s->close_code)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* ---- the heartbeat -------------------------------------------------------------------- */

uint64_t
jw_session_sse_heartbeat_at(const struct jw_session *s, uint64_t now)
{
    uint64_t every = (uint64_t)s->env->cfg->sse_heartbeat_s * 1000u;
    if (s->transport != JW_TRANSPORT_SSE || !every || s->sse_ended)
        return UINT64_MAX;
    /* Due and not written yet (a choked socket): look again one period later. */
    return (s->sse_hb_due ? now : s->last_write_ms) + every;
}

void
jw_session_sse_timer(struct jw_session *s, uint64_t now)
{
    uint64_t every = (uint64_t)s->env->cfg->sse_heartbeat_s * 1000u;
    if (s->transport != JW_TRANSPORT_SSE || !every || s->sse_hb_due)
        return;
    if (now - s->last_write_ms >= every) {
        s->sse_hb_due = 1;
        lws_callback_on_writable(s->wsi);
    }
}
