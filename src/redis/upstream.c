/*
 * The Redis link (upstream.h): one thread, one libevent loop, two connections that share one
 * state machine (redislink.c) and differ in their role after AUTH:
 *   subscriber  PSUBSCRIBE to every pattern, then parse each pmessage into an event (event.h)
 *               and hand it to on_event; health PING answered ["pong", ""] in subscribed mode;
 *   command     READY once AUTH (or, without a password, a PING) is answered; writes the gateway's
 * requests (rediscmd.h) as they come, pipelined, and hands each back with its reply, in FIFO order;
 * health PING answered +PONG, sent only while no request is in flight.
 *
 * Threads: the loop thread owns both connections and the in-flight FIFO. Other threads cross
 * only through (a) event_active() on `stop_ev`, (b) jw_upstream_submit(), which appends to the
 * `mu`-protected submission queue and, on empty → non-empty, event_active() on `submit_ev`
 * (libevent makes both safe because evthread_use_pthreads() ran before the base was created),
 * and (c) the links' atomic states. `accepting` (under `mu`) is true from start until on_stop
 * has run: a request submitted outside that window is handed back at once, on the caller's
 * thread, with -ECANCELED; one submitted inside it is taken by the loop, so each request comes
 * back exactly once.
 *
 * Command deadlines (the rule is in upstream.h): one deadline per request, redis_read_timeout_ms
 * after submission. The links' single deadline timer is kept armed for the earliest of the
 * oldest in-flight request's deadline and the pending PING's; the FIFO is in submission order,
 * so that is the earliest of all. When it fires, the expired requests come back with
 * -ETIMEDOUT and the connection is failed (the rest come back with -ENOTCONN).
 */
#include "jobwire/redis.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "request.h"
#include "link.h"
#include "tls.h"
#include "upstream_private.h"

#define MOD "upstream"
/* Room for the RESP framing, the pattern and the channel around a pmessage payload (and for
 * the field names around a snapshot's values on the command connection). */
#define REPLY_SLACK (64u * 1024u)

/* Reasons handed to on_state and logged; static, as upstream.h promises. */
static const char *const R_SUBSCRIBE_REFUSED = "subscribe refused";
static const char *const R_SUBSCRIBE_TIMEOUT = "subscribe timeout";
static const char *const R_PING_TIMEOUT = "ping timeout";
static const char *const R_SWITCH = "master switched";
static const char *const R_ERROR_REPLY = "error reply";
static const char *const R_STOPPED = "stopped";

const char *
jw_link_state_name(enum jw_link_state state)
{
    switch (state) {
    case JW_LINK_IDLE:
        return "idle";
    case JW_LINK_CONNECTING:
        return "connecting";
    case JW_LINK_AUTHENTICATING:
        return "authenticating";
    case JW_LINK_SUBSCRIBING:
        return "subscribing";
    case JW_LINK_SUBSCRIBED:
        return "subscribed";
    case JW_LINK_BACKOFF:
        return "backoff";
    case JW_LINK_READY:
        return "ready";
    case JW_LINK_STOPPED:
        return "stopped";
    }
    return "unknown";
}

enum jw_link_state
jw_upstream_state(const struct jw_upstream *up)
{
    return jw_redislink_state(&up->sub);
}

int
jw_upstream_command_ready(const struct jw_upstream *up)
{
    return jw_redislink_state(&up->cmd.link) == JW_LINK_READY;
}

int
jw_upstream_is_cluster(const struct jw_upstream *up)
{
    return up->cfg->redis_ncluster_nodes > 0;
}

/* ---- subscriber role ---- */

static void
send_psubscribe(struct jw_upstream *up)
{
    const char *argv[1 + JW_CONFIG_MAX_PATTERNS];
    size_t n = up->cfg->redis_npatterns;
    argv[0] = "PSUBSCRIBE";
    for (size_t i = 0; i < n; i++)
        argv[1 + i] = up->cfg->redis_patterns[i];
    up->confirms = n;
    jw_redislink_set_state(&up->sub, JW_LINK_SUBSCRIBING, NULL);
    jw_redislink_send(&up->sub, (int)(1 + n), argv);
    jw_redislink_arm(&up->sub, (uint64_t)up->cfg->redis_read_timeout_ms);
}

static void
sub_prepare(struct jw_redislink *l)
{
    struct jw_upstream *up = l->owner;
    jw_topo_prepare(&up->topo, l);
}

static void
sub_opened(struct jw_redislink *l)
{
    struct jw_upstream *up = l->owner;
    if (!jw_topo_opened(&up->topo, l))
        send_psubscribe(up);
}

static void
enter_subscribed(struct jw_upstream *up)
{
    jw_info(MOD, "subscribed to %zu pattern(s) on redis %s:%d after %llu ms down",
            up->cfg->redis_npatterns, up->sub.host, up->sub.port,
            (unsigned long long)jw_redislink_down_ms(&up->sub));
    jw_redislink_up(&up->sub);
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
handle_pmessage(struct jw_upstream *up, const redisReply *channel, const redisReply *payload)
{
    struct jw_event *ev = NULL;
    enum jw_event_verdict v =
        jw_event_parse(&up->rules, channel->str, channel->len, payload->str, payload->len, &ev);
    if (v != JW_EVENT_OK) {
        if ((unsigned)v < JW_EVENT__VERDICT_COUNT)
            jw_metric_add(verdict_metric[v], 1);
        jw_debug(MOD, "dropped message on %.*s: %s", (int)channel->len, channel->str,
                 jw_event_verdict_name(v));
        return;
    }
    if (ev->kind < JW_KIND__COUNT) /* jobwire's own markers and probes are not job events */
        jw_metric_add(kind_metric[ev->kind], 1);
    if (up->hooks.on_event)
        up->hooks.on_event(up->hooks.ctx, ev); /* ownership passes */
    else
        jw_event_free(ev);
}

/* Dispatches one complete reply according to the state. May fail the link. */
static void
sub_handle(struct jw_upstream *up, const redisReply *r)
{
    struct jw_redislink *l = &up->sub;
    enum jw_link_state st = jw_redislink_state(l);

    if (r->type == REDIS_REPLY_ERROR) {
        /* Redis error texts (NOAUTH, NOPERM ...) never echo the password. */
        jw_redislink_fail(l, st == JW_LINK_SUBSCRIBING ? R_SUBSCRIBE_REFUSED : R_ERROR_REPLY,
                          r->str);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && jw_reply_is_str(r->element[0])) {
        const redisReply *kind = r->element[0];
        if (jw_reply_str_eq(kind, "pmessage") && r->elements == 4 &&
            jw_reply_is_str(r->element[2]) && jw_reply_is_str(r->element[3])) {
            handle_pmessage(up, r->element[2], r->element[3]);
            return;
        }
        if (jw_reply_str_eq(kind, "psubscribe") && st == JW_LINK_SUBSCRIBING) {
            if (up->confirms > 0 && --up->confirms == 0)
                enter_subscribed(up);
            return;
        }
        if (jw_reply_str_eq(kind, "pong")) { /* RESP2 PING reply when subscribed: ["pong", ""] */
            l->ping_pending = false;
            jw_redislink_disarm(l);
            return;
        }
    } else if (jw_reply_str_eq(r, "PONG")) {
        l->ping_pending = false;
        jw_redislink_disarm(l);
        return;
    }
    jw_debug(MOD, "ignored reply of type %d while %s", r->type, jw_link_state_name(st));
}

static void
sub_reply(struct jw_redislink *l, redisReply *r)
{
    struct jw_upstream *up = l->owner;
    if (l->discovering) {
        if (jw_topo_reply(&up->topo, l, r) == JW_TOPO_CONTINUE)
            send_psubscribe(up);
        freeReplyObject(r);
        return;
    }
    sub_handle(up, r);
    freeReplyObject(r);
}

static void
sub_timeout(struct jw_redislink *l)
{
    switch (jw_redislink_state(l)) {
    case JW_LINK_SUBSCRIBING:
        jw_redislink_fail(l, R_SUBSCRIBE_TIMEOUT, NULL);
        break;
    case JW_LINK_SUBSCRIBED:
        jw_redislink_fail(l, R_PING_TIMEOUT, "no PONG, link presumed dead");
        break;
    default:
        break;
    }
}

static void
sub_ping(struct jw_redislink *l)
{
    /* Invariant: at most one PING in flight; its deadline is already armed. */
    if (!l->ping_pending)
        jw_redislink_send_ping(l);
}

static void
sub_state(struct jw_redislink *l, enum jw_link_state st, const char *reason)
{
    struct jw_upstream *up = l->owner;
    if (up->hooks.on_state)
        up->hooks.on_state(up->hooks.ctx, st, reason);
}

static const struct jw_redislink_role sub_role = {
    .log_prefix = "",
    .up_state = JW_LINK_SUBSCRIBED,
    .m_up = JW_M_UPSTREAM_UP,
    .m_errors = JW_M_UPSTREAM_ERRORS,
    .m_reconnect = JW_M_UPSTREAM_RECONNECTS,
    .m_too_large = JW_M_EVENTS_INVALID_TOO_LARGE,
    .prepare = sub_prepare,
    .opened = sub_opened,
    .reply = sub_reply,
    .timeout = sub_timeout,
    .ping = sub_ping,
    .closed = NULL,
    .state = sub_state,
};

/* ---- topology ---- */

/* The topology changed: cluster → connect the new masters; sentinel → the master moved, so
 * both data links reconnect at once (fresh backoff) and rediscover it. */
static void
on_topology(void *ctx)
{
    struct jw_upstream *up = ctx;
    if (up->topo.mode == JW_TOPO_CLUSTER) {
        jw_upcmd_topology_changed(up);
        return;
    }
    char detail[300];
    snprintf(detail, sizeof detail, "new master %s:%d", up->topo.master_host, up->topo.master_port);
    jw_backoff_reset(&up->sub._backoff);
    jw_redislink_fail(&up->sub, R_SWITCH, detail);
    jw_upcmd_kick(up, R_SWITCH, detail);
}

/* ---- submission ---- */

void
jw_upstream_submit(struct jw_upstream *up, struct jw_redis_request *req)
{
    req->_next = NULL;
    req->_redirects = req->_asking = req->_in_txn = 0;
    req->status = 0;
    req->reply = NULL;
    req->_deadline_ms = jw_redislink_now_ms() + (uint64_t)up->cfg->redis_read_timeout_ms;
    pthread_mutex_lock(&up->mu);
    if (!up->accepting) {
        pthread_mutex_unlock(&up->mu);
        struct jw_redis_request *one = req;
        jw_upcmd_finish_list(up, one, -ECANCELED); /* on this thread, as upstream.h says */
        return;
    }
    /* Only the first of a batch wakes the loop; under mu, so on_stop (which takes mu) cannot run
     * between the append and the wake. */
    if (jw_req_append(&up->q_head, &up->q_tail, req))
        event_active(up->submit_ev, EV_READ, 0);
    pthread_mutex_unlock(&up->mu);
}

/* ---- thread ---- */

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    pthread_mutex_lock(&up->mu);
    up->accepting = false;
    struct jw_redis_request *queued = up->q_head;
    up->q_head = up->q_tail = NULL;
    pthread_mutex_unlock(&up->mu);

    jw_redislink_stop(&up->sub, R_STOPPED);
    jw_upcmd_stop(up); /* in flight: -ECANCELED */
    jw_topo_stop(&up->topo);
    jw_upcmd_finish_list(up, queued, -ECANCELED);
    event_base_loopbreak(up->base);
}

static void *
thread_main(void *arg)
{
    struct jw_upstream *up = arg;
    jw_redislink_connect(&up->sub);
    jw_upcmd_start(up);
    jw_topo_start(&up->topo);
    /* NO_EXIT_ON_EMPTY: only on_stop ends the loop, whatever is pending. */
    event_base_loop(up->base, EVLOOP_NO_EXIT_ON_EMPTY);
    jw_redislink_shutdown(&up->sub);
    jw_upcmd_shutdown(up);
    jw_topo_shutdown(&up->topo);
    return NULL;
}

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void
init_evthread(void)
{
    if (evthread_use_pthreads() != 0) {
        jw_error(MOD, "evthread_use_pthreads failed");
        abort();
    }
}

struct jw_upstream *
jw_upstream_new(const struct jw_config *cfg, const struct jw_upstream_hooks *hooks)
{
    pthread_once(&evthread_once, init_evthread);
    struct jw_upstream *up = jw_calloc(1, sizeof *up);
    up->cfg = cfg;
    if (hooks)
        up->hooks = *hooks;
    up->rules.prefix = cfg->channel_prefix;
    up->rules.max_payload_bytes = cfg->max_payload_bytes;
    size_t reply_limit = cfg->max_payload_bytes + REPLY_SLACK;
    jw_redislink_init(&up->sub, cfg, &sub_role, up, reply_limit);
    jw_upcmd_init(up, reply_limit);
    jw_topo_init(&up->topo, cfg);
    up->topo.changed = on_topology;
    up->topo.ctx = up;
    pthread_mutex_init(&up->mu, NULL);
    return up;
}

int
jw_upstream_start(struct jw_upstream *up)
{
    if (up->started)
        return -EALREADY;
    if (up->cfg->redis_npatterns == 0 || up->cfg->redis_npatterns > JW_CONFIG_MAX_PATTERNS)
        return -EINVAL;
    if (up->cfg->redis_tls && !up->tls) {
        char err[512];
        up->tls = jw_redistls_ctx_new(up->cfg, err, sizeof err);
        if (!up->tls) {
            jw_error(MOD, "TLS to redis: %s", err);
            return -EINVAL;
        }
        jw_redislink_set_tls(&up->sub, up->tls);
    }
    up->base = event_base_new();
    if (!up->base)
        return -ENOMEM;
    up->stop_ev = event_new(up->base, -1, 0, on_stop, up);
    up->submit_ev = event_new(up->base, -1, 0, jw_upcmd_on_submit, up);
    if (!up->stop_ev || !up->submit_ev)
        return -ENOMEM; /* the events are freed by jw_upstream_free */
    int rc = jw_redislink_attach(&up->sub, up->base);
    if (rc == 0)
        rc = jw_upcmd_attach(up);
    if (rc == 0)
        rc = jw_topo_attach(&up->topo, up->base, up->tls);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&up->mu);
    up->accepting = true;
    pthread_mutex_unlock(&up->mu);
    rc = pthread_create(&up->thread, NULL, thread_main, up);
    if (rc != 0) {
        pthread_mutex_lock(&up->mu);
        up->accepting = false;
        struct jw_redis_request *queued = up->q_head;
        up->q_head = up->q_tail = NULL;
        pthread_mutex_unlock(&up->mu);
        jw_upcmd_finish_list(up, queued, -ECANCELED);
        return -rc;
    }
    up->started = true;
    return 0;
}

void
jw_upstream_stop(struct jw_upstream *up)
{
    if (!up->started || up->joined) {
        /* Nothing runs and nothing is pending: submissions are refused at once. */
        if (jw_redislink_state(&up->sub) != JW_LINK_STOPPED)
            jw_redislink_set_state(&up->sub, JW_LINK_STOPPED, R_STOPPED);
        if (jw_redislink_state(&up->cmd.link) != JW_LINK_STOPPED)
            jw_redislink_set_state(&up->cmd.link, JW_LINK_STOPPED, R_STOPPED);
        return;
    }
    event_active(up->stop_ev, EV_READ, 0); /* thread-safe: the base has evthread locks */
    pthread_join(up->thread, NULL);
    up->joined = true;
}

void
jw_upstream_free(struct jw_upstream *up)
{
    if (!up)
        return;
    jw_upstream_stop(up);
    if (up->stop_ev)
        event_free(up->stop_ev);
    if (up->submit_ev)
        event_free(up->submit_ev);
    jw_redislink_free(&up->sub);
    jw_upcmd_free(up);
    jw_topo_free(&up->topo);
    jw_redistls_ctx_free(up->tls);
    if (up->base)
        event_base_free(up->base);
    pthread_mutex_destroy(&up->mu);
    free(up);
}
