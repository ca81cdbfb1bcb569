/*
 * The gateway: the client side of jobwire, on the main thread. One libev loop, owned by the
 * gateway, runs libwebsockets (Debian's evlib-ev plugin, as a foreign loop), the inbox wake-up,
 * the session timers and the signals. It serves /ws, /events, /healthz, /readyz, /metrics and
 * the static web/ files, and holds every session, the hub and the resume window.
 *
 * The Redis thread talks to it only through jw_gateway_post_*(), which queue into the inbox and
 * wake the loop with ev_async_send(), safe from any thread.
 */
#ifndef JOBWIRE_GATEWAY_H
#define JOBWIRE_GATEWAY_H

#include <stdbool.h>

#include "jobwire/config.h"
#include "jobwire/event.h"
#include "jobwire/redis.h"

struct jw_gateway;

/* What --check-config checks beyond the settings: the JWT keys load, web_root is a directory.
 * 0, or -1 with the reason in err. */
int jw_gateway_check(const struct jw_config *cfg, char *err, size_t errlen);
/* The loop and the inbox; `cfg` must outlive the gateway. NULL (after logging why) on failure. */
struct jw_gateway *jw_gateway_new(const struct jw_config *cfg);
/* Creates the parts that talk to Redis and starts listening: no connection is accepted before
 * this returns. 0, or -1 (after logging why) when the listener cannot be set up. */
int jw_gateway_start(struct jw_gateway *gw, struct jw_upstream *up)
    __attribute__((warn_unused_result));
/* Runs the loop until SIGTERM or SIGINT and the drain that follows (docs/DESIGN.md). */
int jw_gateway_run(struct jw_gateway *gw);
void jw_gateway_free(struct jw_gateway *gw);

/* Any thread (the Redis side's hooks). Each takes ownership of what it is given. */
enum jw_event_flow jw_gateway_post_event(struct jw_gateway *gw, struct jw_event *ev);
void jw_gateway_post_op(struct jw_gateway *gw, struct jw_redis_op *op);
void jw_gateway_post_link_state(struct jw_gateway *gw, enum jw_link_state subscriber,
                                bool commands_ready);

#endif
