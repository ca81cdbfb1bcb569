/*
 * Health of the bridge as a whole, for /readyz and the metrics: the delivery probe and the
 * readiness rule.
 *
 * The probe runs through the whole path (command connection → Redis → subscription → inbox →
 * gateway) on jobwire's own channel every probe_interval_ms, so a subscription that is up but
 * silent (a stalled Redis, a pattern that stopped matching) fails readiness, which a PING cannot
 * see; jobwire_upstream_probe_lag_seconds is its round trip.
 *
 * Ready means: not draining, the subscription is up, snapshots and owner checks can be made
 * (the command side is ready: on a cluster every slot has a ready master), and the last probe
 * came back within probe_timeout_ms. Gateway thread only.
 */
#ifndef JOBWIRE_GATEWAY_HEALTH_H
#define JOBWIRE_GATEWAY_HEALTH_H

#include <stdbool.h>

#include "jobwire/config.h"
#include "jobwire/redis.h"

struct ev_loop;
struct jw_sync;
struct jw_health;

struct jw_health *jw_health_new(const struct jw_config *cfg, struct ev_loop *loop,
                                struct jw_upstream *up, struct jw_sync *sync);
void jw_health_free(struct jw_health *h);
/* The Redis side's state changed. */
void jw_health_link_state(struct jw_health *h, enum jw_link_state subscriber, bool commands_ready);
/* A probe came back: `what` is the text after ":p:". */
void jw_health_probe_back(struct jw_health *h, const char *what);
void jw_health_set_draining(struct jw_health *h);
/* true when ready; otherwise `why` says what is missing (static text). */
bool jw_health_ready(const struct jw_health *h, const char **why);

#endif
