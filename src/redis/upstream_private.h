/*
 * Internal to the upstream thread (upstream.c: subscriber, thread, lifecycle; upcommand.c:
 * command connections and their routing). Not a public API: the gateway sees upstream.h only.
 */
#ifndef JOBWIRE_UPSTREAM_INT_H
#define JOBWIRE_UPSTREAM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/util.h>

#include "jobwire/event.h"
#include "request.h"
#include "link.h"
#include "topology.h"
#include "jobwire/redis.h"

struct event;
struct event_base;
struct jw_redis_request;

/* One command connection: its link and the FIFO of requests written on it. */
struct jw_cmdconn {
    struct jw_redislink link; /* link.owner is this struct */
    struct jw_upstream *up;
    struct jw_redis_request *fifo_head, *fifo_tail; /* written, reply awaited; oldest first */
    size_t inflight;
    int node; /* cluster: index in topo.nodes; -1 for the main connection */
};

struct jw_upstream {
    const struct jw_config *cfg;
    struct jw_upstream_hooks hooks;

    pthread_t thread;
    bool started, joined;

    struct event_base *base;
    struct event *stop_ev, *submit_ev, *hold_ev;
    struct ssl_ctx_st *tls; /* shared by every connection; NULL = plain */
    struct jw_topo topo;

    /* subscriber connection (loop thread) */
    struct jw_redislink sub;
    size_t confirms; /* psubscribe confirmations still expected */
    struct jw_event_rules rules;

    /* command connections (loop thread): the main one (single node, sentinel's master, or in a
     * cluster the discovery connection and fallback) and, in a cluster, one per master node */
    struct jw_cmdconn cmd;
    struct jw_cmdconn *by_node[JW_TOPO_MAX_NODES];
    size_t inflight; /* over every command connection */
    /* cluster transactions: MULTI waits in `hold` for the first keyed command, which picks the
     * node; the rest of the transaction up to EXEC/DISCARD follows it to `txn` */
    struct jw_cmdconn *txn;
    struct jw_redis_request *hold_head, *hold_tail;

    /* submission queue (any thread, under mu) */
    pthread_mutex_t mu;
    bool accepting;
    struct jw_redis_request *q_head, *q_tail;
};

void jw_upcmd_init(struct jw_upstream *up, size_t reply_limit);
int jw_upcmd_attach(struct jw_upstream *up) __attribute__((warn_unused_result));
void jw_upcmd_start(struct jw_upstream *up);
/* Stops every command connection (in flight and held: -ECANCELED). */
void jw_upcmd_stop(struct jw_upstream *up);
void jw_upcmd_shutdown(struct jw_upstream *up);
void jw_upcmd_free(struct jw_upstream *up);
/* The submit_ev and hold_ev callbacks. */
void jw_upcmd_on_submit(evutil_socket_t fd, short what, void *arg);
void jw_upcmd_on_hold(evutil_socket_t fd, short what, void *arg);
/* Hands every request of a list back with `status`. */
void jw_upcmd_finish_list(struct jw_upstream *up, struct jw_redis_request *head, int status);
/* Cluster: the topology was read; opens a connection to every master not yet connected. */
void jw_upcmd_topology_changed(struct jw_upstream *up);
/* Sentinel: the master moved; every command connection reconnects (and rediscovers). */
void jw_upcmd_kick(struct jw_upstream *up, const char *reason, const char *detail);

/* Appends `req` to the singly linked request list head..tail (through _next); returns 1 when
 * the list was empty before. */
static inline int
jw_req_append(struct jw_redis_request **head, struct jw_redis_request **tail,
              struct jw_redis_request *req)
{
    int was_empty = *tail == NULL;
    req->_next = NULL;
    if (was_empty)
        *head = req;
    else
        (*tail)->_next = req;
    *tail = req;
    return was_empty;
}

#endif
