/*
 * The subscriber: one connection that PSUBSCRIBEs to every configured pattern, parses each
 * pmessage into an event (event.h) with the next entry number, and hands it over. A health PING
 * is answered ["pong", ""] while subscribed.
 *
 * Back-pressure: when the consumer says JW_REDIS_PAUSE the connection stops being read (link.h)
 * until jw_upstream_resume(); Redis holds what comes meanwhile, so nothing is dropped here. A
 * message larger than max_payload_bytes is skipped and counted, and the connection stays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "upstream_private.h"

#define MOD "upstream"
/* Room for the RESP framing, the pattern and the channel around a pmessage payload. */
#define MESSAGE_SLACK (64u * 1024u)

static const char *const R_SUBSCRIBE_REFUSED = "subscribe refused";
static const char *const R_SUBSCRIBE_TIMEOUT = "subscribe timeout";
static const char *const R_PING_TIMEOUT = "ping timeout";
static const char *const R_ERROR_REPLY = "error reply";

static void
send_psubscribe(struct jw_upstream *up)
{
    const char *argv[1 + JW_CONFIG_MAX_PATTERNS];
    size_t n = up->cfg->redis_npatterns;
    argv[0] = "PSUBSCRIBE";
    for (size_t i = 0; i < n; i++)
        argv[1 + i] = up->cfg->redis_patterns[i];
    up->confirms = n;
    jw_link_set_state(&up->sub, JW_LINK_SUBSCRIBING, NULL);
    jw_link_send(&up->sub, (int)(1 + n), argv);
    jw_link_arm(&up->sub, (uint64_t)up->cfg->redis_read_timeout_ms);
}

static void
sub_prepare(struct jw_link *l)
{
    struct jw_upstream *up = l->owner;
    jw_topo_prepare(&up->topo, l);
}

static void
sub_opened(struct jw_link *l)
{
    struct jw_upstream *up = l->owner;
    if (!jw_topo_opened(&up->topo, l))
        send_psubscribe(up);
}

static const enum jw_metric_id kind_metric[JW_KIND__COUNT] = {
    [JW_KIND_STATUS] = JW_M_EVENTS_STATUS,     [JW_KIND_PROGRESS] = JW_M_EVENTS_PROGRESS,
    [JW_KIND_COMPLETE] = JW_M_EVENTS_COMPLETE, [JW_KIND_ERROR] = JW_M_EVENTS_ERROR,
    [JW_KIND_OTHER] = JW_M_EVENTS_OTHER,
};
static const enum jw_metric_id verdict_metric[JW_EVENT__VERDICT_COUNT] = {
    [JW_EVENT_OK] = JW_M__COUNT, /* counted by kind instead */
    [JW_EVENT_NOT_MATCHED] = JW_M_EVENTS_INVALID_NOT_MATCHED,
    [JW_EVENT_NOT_JSON] = JW_M_EVENTS_INVALID_NOT_JSON,
    [JW_EVENT_TOO_LARGE] = JW_M_EVENTS_INVALID_TOO_LARGE,
    [JW_EVENT_NO_JOB_ID] = JW_M_EVENTS_INVALID_NO_JOB_ID,
    [JW_EVENT_BAD_ID] = JW_M_EVENTS_INVALID_BAD_ID,
};

static void
drop(enum jw_event_verdict v, const struct jw_resp *channel)
{
    jw_metric_add(verdict_metric[v], 1);
    jw_debug(MOD, "dropped message on %.*s: %s", channel ? (int)channel->len : 1,
             channel ? channel->str : "?", jw_event_verdict_name(v));
}

static void
handle_pmessage(struct jw_upstream *up, const struct jw_resp *r)
{
    const struct jw_resp *channel = r->element[2], *payload = r->element[3];
    if (r->truncated || !jw_resp_is_str(channel) || !jw_resp_is_str(payload)) {
        drop(JW_EVENT_TOO_LARGE, jw_resp_is_str(channel) ? channel : NULL);
        return;
    }
    struct jw_event *ev = NULL;
    enum jw_event_verdict v = jw_event_parse(&up->rules, channel->str, channel->len, payload->str,
                                             payload->len, up->next_event_id + 1, &ev);
    if (v != JW_EVENT_OK) {
        drop(v, channel);
        return;
    }
    up->next_event_id++;
    if (ev->kind < JW_KIND__COUNT) { /* jobwire's own markers and probes are not job events */
        jw_metric_add(kind_metric[ev->kind], 1);
        jw_jobindex_note(up, ev);
    }
    enum jw_event_flow flow = JW_REDIS_CONTINUE;
    if (up->hooks.on_event)
        flow = up->hooks.on_event(up->hooks.ctx, ev); /* ownership passes */
    else
        jw_event_unref(ev);
    if (flow == JW_REDIS_PAUSE) {
        jw_metric_add(JW_M_UPSTREAM_PAUSES, 1);
        jw_link_pause(&up->sub);
    }
}

static void
pong(struct jw_link *l)
{
    l->ping_pending = false;
    jw_link_disarm(l);
}

/* Dispatches one reply according to the state. May fail the link. */
static void
sub_handle(struct jw_upstream *up, const struct jw_resp *r)
{
    struct jw_link *l = &up->sub;
    enum jw_link_state st = jw_link_state(l);

    if (r->type == JW_RESP_ERROR) {
        /* Redis error texts (NOAUTH, NOPERM ...) never echo the password. */
        jw_link_fail(l, st == JW_LINK_SUBSCRIBING ? R_SUBSCRIBE_REFUSED : R_ERROR_REPLY,
                     r->str ? r->str : "(too long)");
        return;
    }
    if (r->type == JW_RESP_ARRAY && r->elements >= 1 && jw_resp_is_str(r->element[0])) {
        const struct jw_resp *kind = r->element[0];
        if (jw_resp_str_eq(kind, "pmessage") && r->elements == 4) {
            handle_pmessage(up, r);
            return;
        }
        if (jw_resp_str_eq(kind, "psubscribe") && st == JW_LINK_SUBSCRIBING) {
            if (up->confirms > 0 && --up->confirms == 0) {
                jw_info(MOD, "subscribed to %zu pattern(s) on redis %s:%d after %llu ms down",
                        up->cfg->redis_npatterns, l->host, l->port,
                        (unsigned long long)jw_link_down_ms(l));
                jw_link_up(l);
            }
            return;
        }
        if (jw_resp_str_eq(kind, "pong")) { /* RESP2 PING reply when subscribed: ["pong", ""] */
            pong(l);
            return;
        }
    } else if (jw_resp_str_eq(r, "PONG")) {
        pong(l);
        return;
    }
    jw_debug(MOD, "ignored reply of type %d while %s", r->type, jw_link_state_name(st));
}

static void
sub_reply(struct jw_link *l, struct jw_resp *r)
{
    struct jw_upstream *up = l->owner;
    if (l->discovering) {
        if (jw_topo_reply(&up->topo, l, r) == JW_TOPO_CONTINUE)
            send_psubscribe(up);
    } else {
        sub_handle(up, r);
    }
    jw_resp_free(r);
}

static void
sub_timeout(struct jw_link *l)
{
    switch (jw_link_state(l)) {
    case JW_LINK_SUBSCRIBING:
        jw_link_fail(l, R_SUBSCRIBE_TIMEOUT, NULL);
        break;
    case JW_LINK_SUBSCRIBED:
        jw_link_fail(l, R_PING_TIMEOUT, "no PONG, link presumed dead");
        break;
    default:
        break;
    }
}

static void
sub_ping(struct jw_link *l)
{
    /* Invariant: at most one PING in flight; its deadline is already armed. */
    if (!l->ping_pending)
        jw_link_send_ping(l);
}

static void
sub_state(struct jw_link *l, enum jw_link_state st, const char *reason)
{
    (void)st;
    jw_upstream_notify(l->owner, reason);
}

static const struct jw_link_role sub_role = {
    .log_prefix = "",
    .up_state = JW_LINK_SUBSCRIBED,
    .m_up = JW_M_UPSTREAM_UP,
    .m_errors = JW_M_UPSTREAM_ERRORS,
    .m_reconnect = JW_M_UPSTREAM_RECONNECTS,
    .prepare = sub_prepare,
    .opened = sub_opened,
    .reply = sub_reply,
    .timeout = sub_timeout,
    .ping = sub_ping,
    .closed = NULL,
    .state = sub_state,
};

void
jw_subscriber_init(struct jw_upstream *up)
{
    const struct jw_config *cfg = up->cfg;
    up->rules.prefix = cfg->channel_prefix;
    up->rules.max_payload_bytes = cfg->max_payload_bytes;
    up->user_channels =
        jw_calloc(cfg->user_nchannels ? cfg->user_nchannels : 1, sizeof *up->user_channels);
    for (size_t i = 0; i < cfg->user_nchannels; i++) {
        up->user_channels[i].prefix = cfg->user_channel_prefixes[i];
        up->user_channels[i].kind = cfg->user_channel_kinds[i];
    }
    up->rules.user_channels = up->user_channels;
    up->rules.nuser_channels = cfg->user_nchannels;
    jw_link_init(&up->sub, cfg, &sub_role, up);
    up->sub.limits.max_bytes = cfg->max_payload_bytes + MESSAGE_SLACK;
    up->sub.limits.max_elements = 4096; /* CLUSTER SLOTS while discovering */
}

void
jw_subscriber_free(struct jw_upstream *up)
{
    jw_link_free(&up->sub);
    free(up->user_channels);
    up->user_channels = NULL;
}
