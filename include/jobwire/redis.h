/*
 * The Redis side, as the rest of jobwire sees it: a thread with its own libevent loop that holds
 * the PSUBSCRIBE connection (events in) and the command connections (typed operations), for a
 * single node, a Sentinel-managed master or a Redis Cluster, plain or TLS (docs/REDIS.md).
 *
 * Nothing outside src/redis sees RESP or a hiredis reply. The gateway asks for typed operations
 * (struct jw_redis_op: a job's state with or without a marker, a token's revocation, a probe, a
 * user's recent jobs) and gets each back once, parsed, through hooks->on_op. Each operation is
 * written as one or more requests, each request one RESP blob on one connection whose replies
 * are collected whole: a transaction is admitted, written and answered whole, or refused whole;
 * no cap, timeout or cluster redirect can split it.
 *
 * Events: every pmessage is parsed on the Redis thread into a struct jw_event (event.h) with
 * its entry number and handed to hooks->on_event. When the consumer falls behind (on_event
 * returns JW_REDIS_PAUSE), the subscriber stops reading until jw_upstream_resume(): Redis then
 * buffers (its client-output-buffer-limit decides how long), nothing is dropped in silence.
 */
#ifndef JOBWIRE_REDIS_H
#define JOBWIRE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobwire/config.h"
#include "jobwire/event.h"
#include "jobwire/inbox.h"

enum jw_link_state {
    JW_LINK_IDLE = 0,
    JW_LINK_CONNECTING,
    JW_LINK_AUTHENTICATING,
    JW_LINK_SUBSCRIBING,
    JW_LINK_SUBSCRIBED,
    JW_LINK_BACKOFF,
    JW_LINK_READY, /* command connection: connected, authenticated, serving requests */
    JW_LINK_STOPPED,
};
const char *jw_link_state_name(enum jw_link_state state);

/* ---- typed operations ----------------------------------------------------------------- */

enum jw_op_kind {
    /* A job's state (the hash, else the JSON string), read in the same transaction as a
     * PUBLISH of `channel` (the marker) when the topology allows it: see `exact`. */
    JW_OP_SNAPSHOT = 0,
    JW_OP_READ_STATE,  /* the same read without a marker (owner checks) */
    JW_OP_REVOKED,     /* does the revocation key of jti `key` exist */
    JW_OP_PROBE,       /* PUBLISH `channel` "" */
    JW_OP_RECENT_JOBS, /* the ids of the recent jobs of user `key` (NULL: of everybody) */
};

/* A job's state as read from Redis. Strings are owned by the op. */
struct jw_job_state {
    char *owner;        /* the state's user id (job_owner_field); NULL when it names none */
    char *json;         /* the state as JSON text; NULL when Redis holds none */
    const char *source; /* "hash", "string", or NULL */
    bool too_large;     /* the state exceeded max_state_bytes/fields: json and owner NULL */
};

struct jw_redis_op;
/* Runs on the gateway thread when the op comes back. It must not free `op` (the caller does). */
typedef void (*jw_redis_op_fn)(struct jw_redis_op *op);

struct jw_redis_op {
    struct jw_msg msg; /* first: type JW_MSG_REDIS_OP, the inbox link */
    enum jw_op_kind kind;
    /* set by the requester */
    jw_redis_op_fn done;
    void *ctx;    /* the requester's world (e.g. the gateway); must outlive the op */
    uint64_t tag; /* who asked, looked up again in done(): never a pointer to something that
                     may go away meanwhile */
    uint64_t arg;
    char *key;     /* job id, jti or user id (owned) */
    char *channel; /* SNAPSHOT: the marker channel; PROBE: the channel (owned) */
    /* filled in before done() runs */
    int status; /* 0; -ENOTCONN (no connection for it), -ETIMEDOUT, -ECANCELED (stopping),
                   -ENOBUFS (too many requests in flight), -EPROTO (Redis answered an error:
                   LOADING, CLUSTERDOWN, a refused command …) */
    bool exact; /* SNAPSHOT: the marker was published in the transaction that read the state;
                   false on a cluster, where state and marker live on different nodes */
    union {
        struct jw_job_state state; /* SNAPSHOT, READ_STATE */
        bool revoked;              /* REVOKED */
        struct {
            char **ids; /* newest first, owned */
            size_t n;
        } jobs; /* RECENT_JOBS */
    } r;
    /* private to the Redis side */
    unsigned _parts; /* requests not yet answered */
};

/* A new op; `key` and `channel` are copied (either may be NULL). */
struct jw_redis_op *jw_redis_op_new(enum jw_op_kind kind, const char *key, const char *channel,
                                    jw_redis_op_fn done, void *ctx, uint64_t tag, uint64_t arg);
/* Calls op->done (when set) and frees the op. Gateway thread. */
void jw_redis_op_complete(struct jw_redis_op *op);
void jw_redis_op_free(struct jw_redis_op *op);
static inline struct jw_redis_op *
jw_redis_op_of(struct jw_msg *msg)
{
    return (struct jw_redis_op *)msg;
}

/* ---- the thread ----------------------------------------------------------------------- */

/* What on_event returns: go on reading, or stop until jw_upstream_resume(). */
enum jw_event_flow { JW_REDIS_CONTINUE = 0, JW_REDIS_PAUSE = 1 };

/* Callbacks run on the Redis thread and must not block nor call jw_upstream_stop/free.
 * - on_event receives ownership of `ev`; its return value is the flow control above.
 * - on_state is told every state change of the subscriber connection; `reason` is static or
 *   NULL; and every change of command readiness (jw_upstream_commands_ready()).
 * - on_op hands a submitted op back, exactly once (ownership passes). It runs on the Redis
 *   thread, except when jw_upstream_submit() is called while the thread is not running: then it
 *   runs at once on the submitting thread, with -ECANCELED. When NULL, ops are freed. */
struct jw_upstream_hooks {
    enum jw_event_flow (*on_event)(void *ctx, struct jw_event *ev);
    void (*on_state)(void *ctx, enum jw_link_state subscriber, bool commands_ready,
                     const char *reason);
    void (*on_op)(void *ctx, struct jw_redis_op *op);
    void *ctx;
};

/* Requests accepted on the command connections and not yet answered; one more fails its op
 * with -ENOBUFS. */
#define JW_UPSTREAM_MAX_PENDING 10000

struct jw_upstream;

/* What --check-config checks beyond the settings: the TLS files load (redis_tls). 0, or -1
 * with the reason in err. */
int jw_upstream_check(const struct jw_config *cfg, char *err, size_t errlen);
/* `cfg` must outlive the upstream. */
struct jw_upstream *jw_upstream_new(const struct jw_config *cfg,
                                    const struct jw_upstream_hooks *hooks);
/* Starts the thread; 0 or a negative errno (TLS settings are loaded here). */
int jw_upstream_start(struct jw_upstream *up) __attribute__((warn_unused_result));
/* Asks the thread to stop, closes every connection and joins the thread; ops not yet answered
 * come back with -ECANCELED first. Safe to call twice. */
void jw_upstream_stop(struct jw_upstream *up);
void jw_upstream_free(struct jw_upstream *up);
/* Any thread. Ownership of `op` passes until on_op hands it back. */
void jw_upstream_submit(struct jw_upstream *up, struct jw_redis_op *op);
/* Any thread: the consumer caught up after a JW_REDIS_PAUSE; the subscriber reads again. */
void jw_upstream_resume(struct jw_upstream *up);
/* Any thread. */
enum jw_link_state jw_upstream_state(const struct jw_upstream *up);
/* 1 when every operation can be served now: the command connection is ready (on a cluster:
 * every slot has a master with a ready connection). Any thread. */
bool jw_upstream_commands_ready(const struct jw_upstream *up);

#endif
