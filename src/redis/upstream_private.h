/*
 * The Redis thread's shared state, private to src/redis: upstream.c (the thread, its lifecycle,
 * the submission queue), subscriber.c (the PSUBSCRIBE connection), commands.c (the command
 * connections and their request queues), ops.c (typed operations as requests), jobindex.c (the
 * per-user job index kept in Redis) and topology.c. The rest of jobwire sees redis.h only.
 *
 *   gateway ── jw_upstream_submit(op) ──> submission queue ──> ops.c: op → requests
 *                                                                 │
 *   Redis <── commands.c: route by slot, write whole, collect replies, redirects <──┘
 *     │                        │ replies → ops.c: parse into op → hooks.on_op ──> gateway
 *     └── subscriber.c: pmessage → event (entry number) → hooks.on_event ──────> gateway
 *                                   └─> jobindex.c: a write per new job (not per event)
 */
#ifndef JOBWIRE_REDIS_UPSTREAM_PRIVATE_H
#define JOBWIRE_REDIS_UPSTREAM_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/util.h>

#include "jobwire/event.h"
#include "jobwire/redis.h"
#include "link.h"
#include "request.h"
#include "topology.h"

struct event;
struct event_base;
struct jw_dict;

/* One command connection: its link and the requests on it. */
struct jw_cmdconn {
    struct jw_link link; /* link.owner is this struct */
    struct jw_upstream *up;
    struct jw_request *fifo_head, *fifo_tail; /* written, replies awaited; oldest first */
    struct jw_request *wait_head, *wait_tail; /* for this node, until it is READY */
    size_t queued;                            /* requests in fifo + wait */
    int node;       /* cluster: index in topo.nodes; -1 for the main connection */
    bool selecting; /* SELECT redis_db written, its +OK awaited before READY */
    bool retiring;  /* cluster: the node is no longer a master; closed once idle */
};

struct jw_upstream {
    const struct jw_config *cfg;
    struct jw_upstream_hooks hooks;

    pthread_t thread;
    bool started, joined;

    struct event_base *base;
    struct event *stop_ev, *submit_ev, *resume_ev;
    struct ssl_ctx_st *tls; /* shared by every connection; NULL = plain */
    struct jw_topo topo;

    /* subscriber (subscriber.c) */
    struct jw_link sub;
    size_t confirms; /* psubscribe confirmations still expected */
    struct jw_event_rules rules;
    struct jw_user_channel *user_channels;
    uint64_t next_event_id;

    /* command connections (commands.c): the main one (single node, sentinel's master, or in a
     * cluster the discovery connection, also used for keyless requests) and, in a cluster, one
     * per master node */
    struct jw_cmdconn cmd;
    struct jw_cmdconn *by_node[JW_TOPO_MAX_NODES];
    size_t queued;            /* over every command connection */
    struct event *refresh_ev; /* cluster: re-read the slot map (soon, or periodically) */
    struct jw_request *parked_head, *parked_tail; /* cluster: for a slot whose node is down */
    struct event *reconcile_ev; /* cluster: bring the node connections in line with it */
    bool refresh_in_flight;
    char refresh_host[256];      /* the node the slot map was asked of */
    _Atomic bool commands_ready; /* jw_upstream_commands_ready() */

    /* the job index (jobindex.c) */
    struct jw_dict *indexed; /* job id -> struct indexed_job, what was written lately */
    struct indexed_job *lru_head, *lru_tail;
    size_t nindexed;
    struct jw_request *index_head, *index_tail; /* writes waiting for their batch */
    struct event *index_batch_ev;               /* sends them BATCH_MS after the first */

    /* submission queue (any thread, under mu) */
    pthread_mutex_t mu;
    bool accepting;
    struct jw_redis_op *q_head, *q_tail;
};

/* Tells hooks.on_state the subscriber's state and the command readiness. */
void jw_upstream_notify(struct jw_upstream *up, const char *reason);
/* Hands `op` back through hooks.on_op (or frees it), with `status`. */
void jw_upstream_finish_op(struct jw_upstream *up, struct jw_redis_op *op, int status);

/* subscriber.c */
void jw_subscriber_init(struct jw_upstream *up);
void jw_subscriber_free(struct jw_upstream *up);

/* commands.c */
void jw_commands_init(struct jw_upstream *up);
int jw_commands_attach(struct jw_upstream *up) __attribute__((warn_unused_result));
void jw_commands_start(struct jw_upstream *up);
/* Every request in flight or waiting comes back with -ECANCELED. */
void jw_commands_stop(struct jw_upstream *up);
void jw_commands_shutdown(struct jw_upstream *up);
void jw_commands_free(struct jw_upstream *up);
/* Routes `req` and writes it, or calls req->done at once with -ENOTCONN/-ENOBUFS. Ownership
 * passes; the request is freed after its done() returns. */
void jw_commands_send(struct jw_upstream *up, struct jw_request *req);
/* The topology changed: cluster → connect new masters, retire the others, forget the gone;
 * sentinel → every data connection reconnects at once. */
void jw_commands_topology_changed(struct jw_upstream *up);
/* Cluster: re-read the slot map soon (coalesced). */
void jw_commands_refresh_soon(struct jw_upstream *up);

/* ops.c */
/* Turns `op` into requests and sends them; the op comes back through jw_upstream_finish_op. */
void jw_ops_submit(struct jw_upstream *up, struct jw_redis_op *op);

/* jobindex.c */
void jw_jobindex_init(struct jw_upstream *up);
void jw_jobindex_free(struct jw_upstream *up);
/* Records the job of `ev` in the user's and the global index, at most once per job per
 * job_index_refresh_s (an event of a job written lately costs nothing). */
void jw_jobindex_note(struct jw_upstream *up, const struct jw_event *ev);
/* Sends the writes still waiting for their batch (before a read of the index). */
void jw_jobindex_flush(struct jw_upstream *up);
/* Expands "{name}" in a key template; a new string. */
char *jw_key_expand(const char *template, const char *name, const char *value);

#endif
