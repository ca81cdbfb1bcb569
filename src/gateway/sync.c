/*
 * The marker machine and the subscription's liveness (see sync.h).
 *
 * Invariants:
 * - a fetch is in `sharable` (by job id) only while its read is exact and its marker has not
 *   come back: a waiter that joins later could miss the events between the read and its own
 *   subscription;
 * - a fetch is in `by_serial` (for its marker) from its submission until it ends;
 * - a fetch ends exactly once: when its answer is in and (for an exact read) its marker is back
 *   or MARKER_GRACE has passed since the answer; then every waiter is called, in order, and the
 *   fetch is freed.
 */
#include "sync.h"

#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/dict.h"
#include "jobwire/event.h"
#include "jobwire/log.h"

#define MOD "sync"
#define MARKER_GRACE 1.0 /* seconds: markers normally return within a millisecond */
#define RETRY_FIRST 0.5  /* seconds before an unavailable snapshot is read again, doubling */
#define RETRY_MAX 30.0
#define RESYNC_WAIT 2.0 /* seconds a resync waits for the command side after the subscription */

struct waiter {
    jw_fetch_fn fn;
    void *ctx;
    uint64_t a, b;
};

struct fetch {
    struct jw_sync *sync;
    char *job;
    uint32_t serial;
    bool answered, marker_seen, sharable;
    uint64_t marker_id;
    int status; /* the answer's */
    bool exact;
    struct jw_job_state state; /* taken over from the answer (owned) */
    struct waiter *waiters;
    size_t nwaiters, cap;
    ev_timer grace;
};

struct jw_sync {
    const struct jw_config *cfg;
    struct ev_loop *loop;
    struct jw_upstream *up;
    struct jw_sync_hooks hooks;
    struct jw_dict *sharable;  /* job id -> fetch */
    struct jw_dict *by_serial; /* "%x" serial -> fetch */
    uint32_t next_serial;
    char own_prefix[192]; /* {prefix}__jobwire__:{epoch}: */
    bool live, commands_ready;
    ev_timer retry;     /* hooks.retry, with a growing delay */
    ev_timer resync;    /* the subscription is back: resync once commands can be served too */
    double retry_delay; /* 0: no retry wanted */
};

static void
serial_key(uint32_t serial, char key[12])
{
    snprintf(key, 12, "%x", serial);
}

/* ---- fetches ------------------------------------------------------------------------------ */

static void
free_fetch(struct fetch *f)
{
    ev_timer_stop(f->sync->loop, &f->grace);
    free(f->state.owner);
    free(f->state.json);
    free(f->waiters);
    free(f->job);
    free(f);
}

static void
end_fetch(struct fetch *f)
{
    struct jw_sync *sync = f->sync;
    char key[12];
    serial_key(f->serial, key);
    jw_dict_del(sync->by_serial, key);
    if (f->sharable)
        jw_dict_del(sync->sharable, f->job);
    struct jw_fetch_result r = {
        .state = f->status == 0 ? &f->state : NULL,
        .position = f->status == 0 && f->exact && f->marker_seen ? f->marker_id : 0,
    };
    for (size_t i = 0; i < f->nwaiters; i++)
        f->waiters[i].fn(f->waiters[i].ctx, f->waiters[i].a, f->waiters[i].b, &r);
    free_fetch(f);
}

static void
on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct fetch *f = w->data;
    jw_debug(MOD, "job %s: marker not back in time; its held events are all delivered", f->job);
    end_fetch(f);
}

static void
maybe_end(struct fetch *f)
{
    if (!f->answered)
        return;
    if (f->status < 0 || !f->exact || f->marker_seen) {
        end_fetch(f);
        return;
    }
    /* Exact read, marker still on its way (or lost with the subscription). */
    if (!ev_is_active(&f->grace)) {
        ev_timer_set(&f->grace, f->sync->live ? MARKER_GRACE : 0.0, 0.0);
        ev_timer_start(f->sync->loop, &f->grace);
    }
}

static void
on_answer(struct jw_redis_op *op)
{
    struct jw_sync *sync = op->ctx;
    char key[12];
    serial_key((uint32_t)op->tag, key);
    struct fetch *f = jw_dict_get(sync->by_serial, key);
    if (!f)
        return; /* cannot happen: a fetch waits for its answer */
    f->answered = true;
    f->status = op->status;
    f->exact = op->exact;
    f->state = op->r.state; /* taken over: the op is freed after this returns */
    memset(&op->r.state, 0, sizeof op->r.state);
    maybe_end(f);
}

void
jw_sync_fetch(struct jw_sync *sync, const char *job, jw_fetch_fn fn, void *ctx, uint64_t a,
              uint64_t b)
{
    struct fetch *f = jw_dict_get(sync->sharable, job);
    if (!f) {
        f = jw_calloc(1, sizeof *f);
        f->sync = sync;
        f->job = jw_strdup(job);
        f->serial = ++sync->next_serial;
        ev_init(&f->grace, on_grace);
        f->grace.data = f;
        char key[12], channel[256];
        serial_key(f->serial, key);
        jw_dict_set(sync->by_serial, key, f);
        /* On a cluster no read is exact: nothing to share (see sync.h). */
        f->sharable = sync->cfg->redis_ncluster_nodes == 0;
        if (f->sharable)
            jw_dict_set(sync->sharable, f->job, f);
        snprintf(channel, sizeof channel, "%sm:%x", sync->own_prefix, f->serial);
        jw_upstream_submit(
            sync->up, jw_redis_op_new(JW_OP_SNAPSHOT, job, channel, on_answer, sync, f->serial, 0));
    }
    if (f->nwaiters == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4;
        f->waiters = jw_realloc(f->waiters, f->cap * sizeof *f->waiters);
    }
    f->waiters[f->nwaiters++] = (struct waiter){fn, ctx, a, b};
}

void
jw_sync_marker(struct jw_sync *sync, const char *what, uint64_t id)
{
    char key[12];
    unsigned serial;
    if (sscanf(what, "%x", &serial) != 1)
        return;
    serial_key(serial, key);
    struct fetch *f = jw_dict_get(sync->by_serial, key);
    if (!f || f->marker_seen)
        return;
    f->marker_seen = true;
    f->marker_id = id;
    if (f->sharable) { /* from here on a new waiter could miss events: no more sharing */
        jw_dict_del(sync->sharable, f->job);
        f->sharable = false;
    }
    maybe_end(f);
}

/* ---- liveness and retries ------------------------------------------------------------------- */

static void
on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_sync *sync = w->data;
    if (!sync->commands_ready)
        return; /* the next readiness starts it again */
    double next = sync->retry_delay * 2;
    sync->retry_delay = 0; /* a resync that fails again asks again (jw_sync_want_retry) */
    sync->hooks.retry(sync->hooks.ctx);
    if (sync->retry_delay) { /* it failed at once: wait longer */
        sync->retry_delay = next < RETRY_MAX ? next : RETRY_MAX;
        ev_timer_stop(sync->loop, &sync->retry);
        ev_timer_set(&sync->retry, sync->retry_delay, 0.0);
        ev_timer_start(sync->loop, &sync->retry);
    }
}

void
jw_sync_want_retry(struct jw_sync *sync)
{
    if (sync->retry_delay)
        return; /* scheduled already */
    sync->retry_delay = RETRY_FIRST;
    if (!sync->commands_ready)
        return; /* started when the command side is ready */
    ev_timer_set(&sync->retry, sync->retry_delay, 0.0);
    ev_timer_start(sync->loop, &sync->retry);
}

/* The resync after the subscription came back: as soon as snapshots can be read as well (a
 * resync without them would only say "unavailable" and retry), or after RESYNC_WAIT anyway. */
static void
on_resync(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_sync *sync = w->data;
    ev_timer_stop(sync->loop, &sync->resync);
    if (sync->live)
        sync->hooks.resync(sync->hooks.ctx); /* each resync says live:true with its count */
}

void
jw_sync_link_state(struct jw_sync *sync, enum jw_link_state subscriber, bool commands_ready)
{
    bool live = subscriber == JW_LINK_SUBSCRIBED;
    bool was_ready = sync->commands_ready;
    sync->commands_ready = commands_ready;
    if (commands_ready && ev_is_active(&sync->resync))
        on_resync(sync->loop, &sync->resync, 0);
    if (commands_ready && !was_ready && sync->retry_delay) {
        ev_timer_stop(sync->loop, &sync->retry);
        ev_timer_set(&sync->retry, 0.0, 0.0); /* at once: Redis can answer again */
        ev_timer_start(sync->loop, &sync->retry);
    }
    if (live == sync->live)
        return;
    sync->live = live;
    if (!live) {
        jw_info(MOD, "subscription lost: clients are told live updates pause");
        sync->hooks.pause(sync->hooks.ctx);
        return;
    }
    /* Back, or up for the first time: clients that connected meanwhile were told live:false in
     * their welcome, so the first subscription is a resume too. */
    jw_info(MOD, "subscription active: fresh snapshots for every client");
    ev_timer_set(&sync->resync, commands_ready ? 0.0 : RESYNC_WAIT, 0.0);
    ev_timer_start(sync->loop, &sync->resync);
}

bool
jw_sync_live(const struct jw_sync *sync)
{
    return sync->live;
}

const char *
jw_sync_own_prefix(const struct jw_sync *sync)
{
    return sync->own_prefix;
}

/* ---- lifetime ----------------------------------------------------------------------------------
 */

struct jw_sync *
jw_sync_new(const struct jw_config *cfg, struct ev_loop *loop, struct jw_upstream *up,
            const struct jw_sync_hooks *hooks)
{
    struct jw_sync *sync = jw_calloc(1, sizeof *sync);
    sync->cfg = cfg;
    sync->loop = loop;
    sync->up = up;
    sync->hooks = *hooks;
    sync->sharable = jw_dict_new();
    sync->by_serial = jw_dict_new();
    snprintf(sync->own_prefix, sizeof sync->own_prefix, "%s%s:%s:", cfg->channel_prefix,
             JW_INTERNAL_KIND, jw_event_epoch());
    ev_init(&sync->retry, on_retry);
    sync->retry.data = sync;
    ev_init(&sync->resync, on_resync);
    sync->resync.data = sync;
    return sync;
}

static void
drop_fetch(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    free_fetch(value);
}

void
jw_sync_free(struct jw_sync *sync)
{
    if (!sync)
        return;
    ev_timer_stop(sync->loop, &sync->retry);
    ev_timer_stop(sync->loop, &sync->resync);
    jw_dict_foreach(sync->by_serial, drop_fetch, sync);
    jw_dict_free(sync->by_serial);
    jw_dict_free(sync->sharable);
    free(sync);
}
