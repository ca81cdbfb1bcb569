/*
 * Keeping clients' view live across Redis outages, on the gateway thread:
 *   - clients are told when live updates pause (the subscription is lost) and resume;
 *   - on resume, every subscribed job gets a fresh snapshot, read with a marker exactly as on
 *     subscribe (snapshot.h): events received before the job's marker are routed at once (the
 *     snapshot contains them), events after it are held and routed after the snapshot;
 *   - a delivery probe: every probe_interval_ms jobwire publishes on its own channel and
 *     measures how long the message takes to come back through the subscription
 *     (jobwire_upstream_probe_lag_seconds); a probe unanswered past probe_timeout_ms makes the
 *     process not ready.
 * Every message of jobwire's own channel ({prefix}__jobwire__:{instance}:...) comes here first;
 * those of other replicas are ignored.
 */
#ifndef JOBWIRE_LIVE_H
#define JOBWIRE_LIVE_H

#include "jobwire/event.h"
#include "session.h"
#include "jobwire/redis.h"

struct lws_context;
struct jw_live;

/* `env` and `ctx` must outlive the returned object; `instance` names this process. */
struct jw_live *jw_live_new(struct jw_session_env *env, struct lws_context *ctx,
                            const char *instance);
/* Cancels the timers; call while the lws context is alive (before lws_context_destroy). */
void jw_live_stop(struct jw_live *live);
/* Frees what is left; after jw_live_stop() it may run once the context is gone. */
void jw_live_free(struct jw_live *live);
/* The subscriber link changed state (in order with the events around it). */
void jw_live_link_state(struct jw_live *live, enum jw_link_state state);
/* Sees every event before routing. Returns 1 when it took the event (internal, or held until a
 * resync snapshot), 0 when the caller routes it now. */
int jw_live_take_event(struct jw_live *live, struct jw_event *ev);
/* Routes an event through the hub and frees it. */
void jw_live_route(struct jw_live *live, struct jw_event *ev);
/* 1 while the subscription is up and the probe (when on) comes back in time. */
int jw_live_ready(const struct jw_live *live);

#endif
