/*
 * Graceful shutdown (see drain.h).
 */
#include "drain.h"

#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "session.h"

#define TICK 0.01 /* seconds between two rounds of goaways */

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_drain *d = w->data;
    uint64_t elapsed = jw_now_ms() - d->_started_ms;
    uint64_t spread = d->_window_ms * 8 / 10;
    size_t due =
        elapsed >= spread ? d->_total : (size_t)(d->_total * elapsed / (spread ? spread : 1));
    if (due > d->_told)
        d->_told += jw_sessions_goaway(d->sessions, due - d->_told,
                                       (uint32_t)d->cfg->drain_reconnect_max_ms);
    if (!jw_sessions_count(d->sessions) || elapsed >= d->_window_ms) {
        ev_timer_stop(d->loop, &d->_tick);
        d->done(d->ctx);
    }
}

void
jw_drain_init(struct jw_drain *d, const struct jw_config *cfg, struct ev_loop *loop,
              struct jw_sessions *sessions, void (*done)(void *ctx), void *ctx)
{
    *d =
        (struct jw_drain){.cfg = cfg, .loop = loop, .sessions = sessions, .done = done, .ctx = ctx};
    ev_init(&d->_tick, on_tick);
    d->_tick.data = d;
}

void
jw_drain_begin(struct jw_drain *d, bool fast)
{
    uint64_t window = (uint64_t)(fast ? d->cfg->drain_window_sigint_ms : d->cfg->drain_window_ms);
    if (d->_active) {
        uint64_t elapsed = jw_now_ms() - d->_started_ms;
        if (!fast || elapsed + window >= d->_window_ms)
            return;
        jw_info("gateway", "SIGINT: the drain ends within %llu ms", (unsigned long long)window);
        d->_window_ms = elapsed + window; /* the rest goes faster */
        return;
    }
    d->_active = true;
    d->_window_ms = window;
    d->_started_ms = jw_now_ms();
    d->_total = jw_sessions_count(d->sessions);
    jw_info("gateway", "draining %zu connection(s) over %llu ms (%s)", d->_total,
            (unsigned long long)window, fast ? "SIGINT" : "SIGTERM");
    d->_tick.repeat = TICK;
    ev_timer_again(d->loop, &d->_tick);
    on_tick(d->loop, &d->_tick, 0);
}

bool
jw_drain_active(const struct jw_drain *d)
{
    return d->_active;
}

void
jw_drain_stop(struct jw_drain *d)
{
    ev_timer_stop(d->loop, &d->_tick);
}
