/*
 * Job snapshots: a job's current state read from Redis (the hash job_owner_key_template, else
 * the string job_status_key_template), in one transaction with a marker that jobwire publishes
 * on its own channel, so that the gateway can tell the live events the snapshot already
 * contains (received before the marker) from the newer ones (received after it).
 *
 *   MULTI / PUBLISH {marker} "" / HGETALL {hash key} / GET {string key} / EXEC
 *
 * Gateway thread only; the requests go through jw_upstream_submit() (rediscmd.h).
 */
#ifndef JOBWIRE_SNAPSHOT_H
#define JOBWIRE_SNAPSHOT_H

#include <stdint.h>

#include "jobwire/config.h"
#include "jobwire/event.h"
#include "request.h"

struct jw_upstream;

struct jw_snapshot {
    char *owner;        /* the state's user id; NULL when it names none */
    char *state_json;   /* the state as JSON text; NULL when Redis holds none */
    const char *source; /* "hash", "string", or NULL */
    int unavailable;    /* Redis could not be asked */
};

/* Submits the transaction. Only the EXEC request calls `done`, with `tag` and `arg`. */
void jw_snapshot_submit(struct jw_upstream *up, const struct jw_config *cfg, const char *job_id,
                        const char *marker_channel, jw_redis_done_fn done, void *ctx, uint64_t tag,
                        uint64_t arg);
/* Reads the EXEC request's outcome into *snap (zeroed first). */
void jw_snapshot_parse(const struct jw_config *cfg, const struct jw_redis_request *exec,
                       struct jw_snapshot *snap);
void jw_snapshot_clear(struct jw_snapshot *snap);
/* {"type":"snapshot","jobId":..,"userId":..,"source":..,"state":..,"seq": (stamped frame). The
 * state and owner are shown only when `visible`; otherwise both are null. */
struct jw_frame *jw_snapshot_frame(const char *job_id, const struct jw_snapshot *snap, int visible);
/* A routable event of kind JW_KIND_SNAPSHOT (user_id = owner) carrying the visible frame. */
struct jw_event *jw_snapshot_event(const char *job_id, const struct jw_snapshot *snap);
/* Expands "{name}" in a key template; a new string. */
char *jw_key_expand(const char *template, const char *name, const char *value);

#endif
