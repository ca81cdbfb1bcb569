/*
 * Graceful shutdown. SIGTERM drains: readiness turns false at once, new clients are refused
 * with 503, and the sessions are told to go (goaway with a spread-out reconnect delay, then the
 * close 1001) a few at a time over 80 % of drain_window_ms, so that the other replicas see a
 * trickle of reconnects rather than a storm; it ends when the last session is gone or the window
 * is over. SIGINT does the same over drain_window_sigint_ms, and a SIGINT during a SIGTERM drain
 * shortens it to that.
 *
 * The listener stays open while draining: lws 4.1.6's lws_context_deprecate(), the one call
 * that closes listen sockets, frees the listen wsi while still walking it (docs/DESIGN.md).
 */
#ifndef JOBWIRE_GATEWAY_DRAIN_H
#define JOBWIRE_GATEWAY_DRAIN_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "jobwire/config.h"

struct jw_sessions;

struct jw_drain {
    const struct jw_config *cfg;
    struct ev_loop *loop;
    struct jw_sessions *sessions;
    void (*done)(void *ctx); /* the drain is over */
    void *ctx;
    /* private */
    ev_timer _tick;
    uint64_t _started_ms, _window_ms;
    size_t _total, _told;
    bool _active;
};

void jw_drain_init(struct jw_drain *d, const struct jw_config *cfg, struct ev_loop *loop,
                   struct jw_sessions *sessions, void (*done)(void *ctx), void *ctx);
/* Starts the drain, or shortens a running one to the SIGINT window (`fast`). */
void jw_drain_begin(struct jw_drain *d, bool fast);
bool jw_drain_active(const struct jw_drain *d);
void jw_drain_stop(struct jw_drain *d);

#endif
