/*
 * The gateway: the libwebsockets service loop on the main thread. It owns the clients, the hub
 * and the HTTP endpoints (/ws, /healthz, /readyz, /metrics, static web/). Other threads talk to
 * it only through jw_gateway_post_*(), which queue into the inbox and wake the loop with
 * lws_cancel_service(), the one lws call that is safe from another thread.
 */
#ifndef JOBWIRE_GATEWAY_H
#define JOBWIRE_GATEWAY_H

#include "jobwire/config.h"
#include "jobwire/event.h"
#include "../../src/redis/request.h"
#include "jobwire/redis.h"

struct jw_gateway;

/* Creates the lws context and starts listening. `cfg` must outlive the gateway.
 * Returns NULL (after logging why) when the listener cannot be set up. */
struct jw_gateway *jw_gateway_new(const struct jw_config *cfg);
/* Runs the service loop until jw_gateway_request_stop(). Returns 0 on a clean stop. */
int jw_gateway_run(struct jw_gateway *gw);
/* Any thread, and async-signal-safe: asks the loop to drain the clients (over
 * drain_window_ms, or drain_window_sigint_ms when `fast`) and return. */
void jw_gateway_request_stop(struct jw_gateway *gw, int fast);
void jw_gateway_free(struct jw_gateway *gw);

/* Any thread. Takes ownership of `ev`. */
void jw_gateway_post_event(struct jw_gateway *gw, struct jw_event *ev);
/* Any thread. Hands back a Redis request the gateway submitted (see rediscmd.h). */
void jw_gateway_post_reply(struct jw_gateway *gw, struct jw_redis_request *req);
/* Before jw_gateway_run(): where sessions send their Redis requests. */
void jw_gateway_attach_upstream(struct jw_gateway *gw, struct jw_upstream *up);
/* Any thread. Records the Redis link state for /readyz and for clients. */
void jw_gateway_post_link_state(struct jw_gateway *gw, enum jw_link_state state);

#endif
