/*
 * Live-update continuity across Redis outages: pause/resume notices, resync snapshots and the
 * delivery probe (see live.h).
 *
 * Invariants:
 * - a job has at most one resync fetch in flight (`fetches`, by job id);
 * - a fetch is freed only after its EXEC request came back, so the request's `arg` pointing at
 *   it is always valid when the reply is handled;
 * - held events are owned by their fetch and routed, in arrival order, right after its
 *   snapshot.
 */
#include "sync.h"

#include <inttypes.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/dict.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "../redis/request.h"
#include "../redis/snapshot.h"

#define MOD "live"
#define MARKER_GRACE_US (1000 * LWS_US_PER_MS)
#define FETCH_RETRY_US (500 * LWS_US_PER_MS) /* the command link may come back after the other */

struct fetch {
    struct jw_live *live;
    char *job_id;
    uint32_t serial;
    uint8_t marker_seen, replied, grace_over;
    struct jw_snapshot snap;
    struct jw_msg *held, **held_tail; /* events after the marker, owned */
    lws_sorted_usec_list_t grace;
};

struct jw_live {
    struct jw_session_env *env;
    struct lws_context *ctx;
    char instance[40];
    struct jw_dict *fetches; /* job id -> struct fetch */
    uint32_t next_serial;
    uint8_t was_up; /* the subscription has been up before: a new SUBSCRIBED is a resume */
    lws_sorted_usec_list_t probe_timer;
    uint8_t stopped; /* jw_live_stop() ran: timers are cancelled and may not be touched */
    uint64_t probe_outstanding_since; /* ns of the oldest unanswered probe; 0 = none */
};

static uint64_t
ms_to_ns(uint64_t ms)
{
    return ms * 1000000u;
}

/* ---- routing ------------------------------------------------------------------------- */

void
jw_live_route(struct jw_live *live, struct jw_event *ev)
{
    struct jw_route_stats stats;
    jw_hub_route(live->env->hub, ev, jw_session_deliver, NULL, &stats);
    if (stats.denied)
        jw_metric_add(JW_M_DELIVERIES_DENIED, (int64_t)stats.denied);
    jw_event_free(ev);
}

/* ---- resync ---------------------------------------------------------------------------- */

static void
free_fetch(struct fetch *f)
{
    if (!f->live->stopped)
        lws_sul_cancel(&f->grace);
    while (f->held) {
        struct jw_msg *next = f->held->next;
        jw_event_free(jw_event_of(f->held));
        f->held = next;
    }
    jw_snapshot_clear(&f->snap);
    free(f->job_id);
    free(f);
}

static void on_fetch_grace(lws_sorted_usec_list_t *sul);
static void on_fetch_retry(lws_sorted_usec_list_t *sul);

static void
route_held(struct fetch *f)
{
    while (f->held) {
        struct jw_msg *next = f->held->next;
        jw_live_route(f->live, jw_event_of(f->held));
        f->held = next;
    }
    f->held_tail = &f->held;
}

/* Routes the snapshot, then the events held after the marker, and drops the fetch. */
static void
maybe_finish_fetch(struct fetch *f)
{
    struct jw_live *live = f->live;
    if (!f->replied)
        return;
    if (f->snap.unavailable && live->env->link_up && !live->stopped) {
        /* The subscription is back but the command link is not (yet): try again shortly. The
         * events held so far predate the next snapshot, so they go out now. */
        route_held(f);
        jw_snapshot_clear(&f->snap);
        f->replied = f->marker_seen = f->grace_over = 0;
        lws_sul_schedule(live->ctx, 0, &f->grace, on_fetch_retry, FETCH_RETRY_US);
        return;
    }
    if (!f->marker_seen && !f->grace_over && !f->snap.unavailable && live->env->link_up &&
        !live->stopped) {
        if (!f->grace.list.owner)
            lws_sul_schedule(live->ctx, 0, &f->grace, on_fetch_grace, MARKER_GRACE_US);
        return;
    }
    jw_dict_del(live->fetches, f->job_id);
    if (!f->snap.unavailable) {
        jw_metric_add(JW_M_RESYNCS, 1);
        jw_live_route(live, jw_snapshot_event(f->job_id, &f->snap));
    }
    route_held(f);
    free_fetch(f);
}

static void
on_fetch_grace(lws_sorted_usec_list_t *sul)
{
    struct fetch *f = lws_container_of(sul, struct fetch, grace);
    f->grace_over = 1;
    maybe_finish_fetch(f);
}

static void
on_fetch_reply(struct jw_redis_request *req)
{
    struct fetch *f = (struct fetch *)(uintptr_t)req->arg;
    jw_snapshot_parse(f->live->env->cfg, req, &f->snap);
    f->replied = 1;
    maybe_finish_fetch(f);
}

static void
submit_fetch(struct fetch *f)
{
    struct jw_live *live = f->live;
    char marker[384];
    snprintf(marker, sizeof(marker), "%sr:%x:%s", live->env->marker_prefix, f->serial, f->job_id);
    jw_snapshot_submit(live->env->upstream, live->env->cfg, f->job_id, marker, on_fetch_reply, live,
                       f->serial, (uint64_t)(uintptr_t)f);
}

static void
on_fetch_retry(lws_sorted_usec_list_t *sul)
{
    struct fetch *f = lws_container_of(sul, struct fetch, grace);
    f->serial = ++f->live->next_serial; /* markers of the failed attempt no longer count */
    submit_fetch(f);
}

static void
start_fetch(void *ctx, const char *job_id)
{
    struct jw_live *live = ctx;
    if (jw_dict_get(live->fetches, job_id))
        return; /* one in flight already */
    struct fetch *f = jw_calloc(1, sizeof(*f));
    f->live = live;
    f->job_id = jw_strdup(job_id);
    f->serial = ++live->next_serial;
    f->held_tail = &f->held;
    jw_dict_set(live->fetches, job_id, f);
    submit_fetch(f);
}

static void
resync_marker(struct jw_live *live, const char *what)
{
    unsigned serial;
    int consumed = 0;
    if (sscanf(what, "%x:%n", &serial, &consumed) != 1 || !consumed)
        return;
    struct fetch *f = jw_dict_get(live->fetches, what + consumed);
    if (!f || f->serial != serial)
        return;
    f->marker_seen = 1;
    maybe_finish_fetch(f);
}

/* ---- probe ------------------------------------------------------------------------------ */

static void
ignore_reply(struct jw_redis_request *req)
{
    (void)req;
}

static void
on_probe_timer(lws_sorted_usec_list_t *sul)
{
    struct jw_live *live = lws_container_of(sul, struct jw_live, probe_timer);
    const struct jw_config *cfg = live->env->cfg;
    if (live->env->link_up && jw_upstream_command_ready(live->env->upstream)) {
        uint64_t now = jw_monotonic_ns();
        char channel[256];
        snprintf(channel, sizeof(channel), "%sp:%" PRIu64, live->env->marker_prefix, now);
        const char *argv[] = {"PUBLISH", channel, ""};
        jw_upstream_submit(live->env->upstream,
                           jw_redis_request_new(3, argv, NULL, ignore_reply, live, 0));
        if (!live->probe_outstanding_since)
            live->probe_outstanding_since = now;
    }
    lws_sul_schedule(live->ctx, 0, &live->probe_timer, on_probe_timer,
                     (lws_usec_t)cfg->probe_interval_ms * LWS_US_PER_MS);
}

static void
probe_back(struct jw_live *live, const char *what)
{
    uint64_t sent = strtoull(what, NULL, 10), now = jw_monotonic_ns();
    if (!sent || sent > now)
        return;
    jw_metric_set(JW_M_UPSTREAM_PROBE_LAG_NS, (int64_t)(now - sent));
    if (sent >= live->probe_outstanding_since)
        live->probe_outstanding_since = 0;
}

int
jw_live_ready(const struct jw_live *live)
{
    const struct jw_config *cfg = live->env->cfg;
    if (!live->env->link_up)
        return 0;
    return !cfg->probe_interval_ms || !live->probe_outstanding_since ||
           jw_monotonic_ns() - live->probe_outstanding_since <
               ms_to_ns((uint64_t)cfg->probe_timeout_ms);
}

/* ---- events and link state ------------------------------------------------------------ */

static void
handle_internal(struct jw_live *live, const char *id)
{
    size_t n = strlen(live->instance);
    if (strncmp(id, live->instance, n) != 0 || id[n] != ':')
        return; /* another replica's */
    const char *what = id + n + 1;
    if (strncmp(what, "m:", 2) == 0)
        jw_session_marker(live->env, what + 2);
    else if (strncmp(what, "r:", 2) == 0)
        resync_marker(live, what + 2);
    else if (strncmp(what, "p:", 2) == 0)
        probe_back(live, what + 2);
}

int
jw_live_take_event(struct jw_live *live, struct jw_event *ev)
{
    if (ev->kind == JW_KIND_INTERNAL) {
        handle_internal(live, ev->job_id);
        jw_event_free(ev);
        return 1;
    }
    if (!jw_dict_size(live->fetches))
        return 0; /* no resync under way: the common case, without hashing the job id */
    struct fetch *f = jw_dict_get(live->fetches, ev->job_id);
    if (!f || !f->marker_seen)
        return 0; /* before the marker: older than the snapshot, routed now */
    ev->msg.next = NULL;
    *f->held_tail = &ev->msg;
    f->held_tail = &ev->msg.next;
    return 1;
}

void
jw_live_link_state(struct jw_live *live, enum jw_link_state state)
{
    struct jw_session_env *env = live->env;
    int up = state == JW_LINK_SUBSCRIBED;
    if (up == env->link_up)
        return;
    env->link_up = (uint8_t)up;
    live->probe_outstanding_since = 0;
    if (!up) {
        static const char paused[] = "{\"type\":\"status\",\"live\":false,"
                                     "\"reason\":\"redis unavailable\"}";
        struct jw_frame *f = jw_frame_new(paused, sizeof(paused) - 1, 0);
        jw_session_broadcast(env, f);
        jw_frame_unref(f);
        return;
    }
    if (!live->was_up) {
        live->was_up = 1;
        return;
    }
    static const char resumed[] = "{\"type\":\"status\",\"live\":true}";
    struct jw_frame *f = jw_frame_new(resumed, sizeof(resumed) - 1, 0);
    jw_session_broadcast(env, f);
    jw_frame_unref(f);
    jw_info(MOD, "subscription is back: resyncing %zu subscribed jobs", jw_hub_job_count(env->hub));
    jw_hub_foreach_job(env->hub, start_fetch, live);
}

/* ---- lifetime -------------------------------------------------------------------------- */

struct jw_live *
jw_live_new(struct jw_session_env *env, struct lws_context *ctx, const char *instance)
{
    struct jw_live *live = jw_calloc(1, sizeof(*live));
    live->env = env;
    live->ctx = ctx;
    snprintf(live->instance, sizeof(live->instance), "%s", instance);
    live->fetches = jw_dict_new();
    if (env->cfg->probe_interval_ms)
        lws_sul_schedule(ctx, 0, &live->probe_timer, on_probe_timer,
                         (lws_usec_t)env->cfg->probe_interval_ms * LWS_US_PER_MS);
    return live;
}

static void
free_fetch_entry(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    free_fetch(value);
}

static void
cancel_fetch_grace(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    lws_sul_cancel(&((struct fetch *)value)->grace);
}

void
jw_live_stop(struct jw_live *live)
{
    lws_sul_cancel(&live->probe_timer);
    jw_dict_foreach(live->fetches, cancel_fetch_grace, NULL);
    live->stopped = 1;
}

void
jw_live_free(struct jw_live *live)
{
    if (!live)
        return;
    if (!live->stopped)
        jw_live_stop(live);
    jw_dict_foreach(live->fetches, free_fetch_entry, NULL);
    jw_dict_free(live->fetches);
    free(live);
}
