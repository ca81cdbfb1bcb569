/*
 * The delivery probe and the readiness rule (see health.h).
 */
#include "health.h"

#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/metrics.h"
#include "sync.h"

struct jw_health {
    const struct jw_config *cfg;
    struct ev_loop *loop;
    struct jw_upstream *up;
    struct jw_sync *sync;
    ev_timer probe;
    enum jw_link_state subscriber;
    bool commands_ready, draining;
    uint64_t outstanding_since; /* ns of the oldest unanswered probe; 0 = none */
};

static void
on_probe(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_health *h = w->data;
    if (h->subscriber != JW_LINK_SUBSCRIBED || !h->commands_ready)
        return; /* readiness fails on those already; the probe would only be refused */
    uint64_t now = jw_now_ns();
    char channel[256];
    snprintf(channel, sizeof channel, "%sp:%" PRIu64, jw_sync_own_prefix(h->sync), now);
    jw_upstream_submit(h->up, jw_redis_op_new(JW_OP_PROBE, NULL, channel, NULL, h, 0, 0));
    if (!h->outstanding_since)
        h->outstanding_since = now;
}

struct jw_health *
jw_health_new(const struct jw_config *cfg, struct ev_loop *loop, struct jw_upstream *up,
              struct jw_sync *sync)
{
    struct jw_health *h = jw_calloc(1, sizeof *h);
    h->cfg = cfg;
    h->loop = loop;
    h->up = up;
    h->sync = sync;
    ev_init(&h->probe, on_probe);
    h->probe.data = h;
    if (cfg->probe_interval_ms) {
        h->probe.repeat = cfg->probe_interval_ms / 1000.0;
        ev_timer_again(loop, &h->probe);
    }
    return h;
}

void
jw_health_free(struct jw_health *h)
{
    if (!h)
        return;
    ev_timer_stop(h->loop, &h->probe);
    free(h);
}

void
jw_health_link_state(struct jw_health *h, enum jw_link_state subscriber, bool commands_ready)
{
    if (subscriber != h->subscriber || commands_ready != h->commands_ready)
        h->outstanding_since = 0; /* a new path: judge it by its own probes */
    h->subscriber = subscriber;
    h->commands_ready = commands_ready;
}

void
jw_health_probe_back(struct jw_health *h, const char *what)
{
    uint64_t sent = strtoull(what, NULL, 10), now = jw_now_ns();
    if (!sent || sent > now)
        return;
    jw_metric_set(JW_M_UPSTREAM_PROBE_LAG_NS, (int64_t)(now - sent));
    if (sent >= h->outstanding_since)
        h->outstanding_since = 0;
}

void
jw_health_set_draining(struct jw_health *h)
{
    h->draining = true;
}

bool
jw_health_ready(const struct jw_health *h, const char **why)
{
    if (h->draining)
        *why = "draining";
    else if (h->subscriber != JW_LINK_SUBSCRIBED)
        *why = "redis subscription down";
    else if (!h->commands_ready)
        *why = "redis commands unavailable (snapshots and owner checks cannot be made)";
    else if (h->cfg->probe_interval_ms && h->outstanding_since &&
             jw_now_ns() - h->outstanding_since >= (uint64_t)h->cfg->probe_timeout_ms * 1000000u)
        *why = "delivery probe overdue";
    else
        return true;
    return false;
}
