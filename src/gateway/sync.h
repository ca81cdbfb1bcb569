/*
 * Keeping clients' view true to Redis, on the gateway thread: the one marker machine behind
 * every snapshot (a subscribe, a resync after an outage, a retry of an unavailable snapshot),
 * and the subscription's liveness that decides when a resync is due.
 *
 * A fetch reads one job's state (JW_OP_SNAPSHOT). On a single node or a Sentinel master the read
 * is exact: a marker published in the same transaction comes back through the subscription, and
 * every job event with a smaller entry number was published before the read (the state holds
 * it), every later one after. Requests for a job that arrive while its fetch is in flight and
 * its marker not yet back share the fetch: a reconnect storm of a thousand dashboards on one job
 * reads it once. (Sharing is sound because a waiter joins before the marker: every event after
 * the read reaches it, and every event before the read is in the state.) A marker that does not
 * come back within MARKER_GRACE of the reply (the subscription went away) ends the fetch as not
 * exact; on a cluster fetches are never exact and never shared (see redis.h).
 *
 * Liveness: when the subscription is lost, hooks.pause() tells every client; when it comes
 * back — also the first time, when clients connected meanwhile — hooks.resync() gives every
 * client fresh snapshots, each round announced by a status live:true with its count. A snapshot
 * that came back unavailable is retried (hooks.retry) as soon as the command side is ready again,
 * and then with a growing delay, so "unavailable" never stays the last word while Redis can answer.
 */
#ifndef JOBWIRE_GATEWAY_SYNC_H
#define JOBWIRE_GATEWAY_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "jobwire/config.h"
#include "jobwire/redis.h"

struct ev_loop;
struct jw_sync;

/* What a fetch found: `state` NULL when Redis could not be asked (unavailable). `position`:
 * the entry number up to which job events are reflected (the marker's), or 0 when the read was
 * not exact (the waiter's own start position then applies). */
struct jw_fetch_result {
    const struct jw_job_state *state;
    uint64_t position;
};

/* Called once per waiter when its fetch ends; `a`, `b` as given to jw_sync_fetch. Must not
 * start another fetch of the same job from inside (it would share this one). */
typedef void (*jw_fetch_fn)(void *ctx, uint64_t a, uint64_t b, const struct jw_fetch_result *r);

struct jw_sync_hooks {
    void (*pause)(void *ctx);  /* tell every client live updates pause */
    void (*resync)(void *ctx); /* fresh snapshots for every client */
    void (*retry)(void *ctx);  /* fresh snapshots where one was unavailable */
    void *ctx;
};

struct jw_sync *jw_sync_new(const struct jw_config *cfg, struct ev_loop *loop,
                            struct jw_upstream *up, const struct jw_sync_hooks *hooks);
/* Cancels the timers; fetches still in flight end when their op comes back (or never: their
 * waiters are gone by then). */
void jw_sync_free(struct jw_sync *sync);

/* Reads `job` for a waiter (shared with a fetch in flight when possible). */
void jw_sync_fetch(struct jw_sync *sync, const char *job, jw_fetch_fn fn, void *ctx, uint64_t a,
                   uint64_t b);
/* A marker came back on the subscription: `what` is the text after ":m:", `id` its entry
 * number. */
void jw_sync_marker(struct jw_sync *sync, const char *what, uint64_t id);
/* The Redis side's state changed (in order with the events around it). */
void jw_sync_link_state(struct jw_sync *sync, enum jw_link_state subscriber, bool commands_ready);
/* A snapshot came back unavailable: schedule hooks.retry. */
void jw_sync_want_retry(struct jw_sync *sync);
/* The subscription is up: live events flow. */
bool jw_sync_live(const struct jw_sync *sync);
/* The prefix of jobwire's own channel for this process: {prefix}__jobwire__:{epoch}: */
const char *jw_sync_own_prefix(const struct jw_sync *sync);

#endif
