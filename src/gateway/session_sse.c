/*
 * What is particular to a Server-Sent Events session (GET /events, docs/PROTOCOL.md): the
 * subscription named by the request's query, and the heartbeat. (Its frames are written by
 * session_write.c: `id:` with the eventId, `event:` with the message's type, `data:` lines.)
 *
 * Heartbeat: a comment line `: hb` goes to a stream idle for sse_heartbeat_s. Besides keeping
 * ingresses from timing the stream out, it is what ends the stream of a client that vanished:
 * libwebsockets 4.1.6 spins its service loop on such a connection until it next writes to it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "jobwire/alloc.h"
#include "session_private.h"

#define SSE_QUERY_MAX 12288 /* no longer than lws' whole header space (gateway.c) */

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

/* The id to resume from: the Last-Event-ID header (EventSource), else ?lastEventId=. */
static void
resume_from(struct lws *wsi, json_t *msg, char *arg)
{
    bool too_long = false;
    char *id = jw_header_custom(wsi, "last-event-id:", JW_EVENT_ID_TEXT_MAX, &too_long);
    const char *q = id ? id : lws_get_urlarg_by_name(wsi, "lastEventId=", arg, SSE_QUERY_MAX);
    /* An id that is no eventId of ours (too long, another format) resumes by snapshots. */
    json_object_set_new(msg, "lastEventId", json_string(too_long || !q || !*q ? "-" : q));
    free(id);
}

unsigned
jw_session_sse_query(const struct jw_sessions *reg, struct lws *wsi, char **text, unsigned *flags,
                     char *why_buf, size_t why_size)
{
    char *arg = jw_malloc(SSE_QUERY_MAX);
    json_t *msg = json_pack("{s:s}", "type", "subscribe");
    unsigned status = 400;
    *text = NULL;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) >= SSE_QUERY_MAX) {
        snprintf(why_buf, why_size, "the query is longer than %d bytes", SSE_QUERY_MAX);
        goto out;
    }
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
        json_t *v = json_string(scope);
        if (!v) {
            snprintf(why_buf, why_size, "scope= must be user or all");
            goto out;
        }
        json_object_set_new(msg, "scope", v);
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
    if (lws_hdr_custom_length(wsi, "last-event-id:", 14) > 0 ||
        lws_get_urlarg_by_name(wsi, "lastEventId=", arg, SSE_QUERY_MAX))
        resume_from(wsi, msg, arg);
    /* Validated exactly as the same message from a WebSocket client would be. */
    char *dumped = json_dumps(msg, JSON_COMPACT);
    if (!dumped)
        abort(); /* jansson fails here only when out of memory: alloc.h's policy */
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (jw_cmd_parse(dumped, strlen(dumped), (size_t)reg->cfg->client_max_subscriptions, &cmd,
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

/* ---- the heartbeat ------------------------------------------------------------------------ */

uint64_t
jw_session_sse_heartbeat_at(const struct jw_session *s, uint64_t now)
{
    uint64_t every = (uint64_t)s->reg->cfg->sse_heartbeat_s * 1000u;
    if (s->transport != JW_TRANSPORT_SSE || !every || s->sse_ended)
        return UINT64_MAX;
    /* Due and not written yet (a choked socket): look again one period later. */
    return (s->sse_hb_due ? now : s->last_write_ms) + every;
}

void
jw_session_sse_timer(struct jw_session *s, uint64_t now)
{
    uint64_t every = (uint64_t)s->reg->cfg->sse_heartbeat_s * 1000u;
    if (s->transport != JW_TRANSPORT_SSE || !every || s->sse_hb_due)
        return;
    if (now - s->last_write_ms >= every) {
        s->sse_hb_due = 1;
        jw_session_mark_dirty(s);
    }
}
