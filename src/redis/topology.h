/*
 * Where the Redis thread's connections go (docs/REDIS.md): one fixed node, the master named by
 * Redis Sentinel, or the nodes of a Redis Cluster.
 *
 * Every data connection (subscriber, main command connection) runs the same discovery on each
 * (re)connect:
 *   sentinel  connect to sentinel i (in order; the next one after a failure), ask
 *             SENTINEL get-master-addr-by-name, then jw_link_redirect() to the master;
 *   cluster   connect to known node i (seeds first, then every node learned; round robin, so a
 *             reconnect after a failure moves to the next node), read CLUSTER SLOTS into the
 *             slot map, then stay on that node (classic PUBLISH reaches every node, so the
 *             PSUBSCRIBE can live on any of them).
 * While discovering, the link's `discovering` is true and its state CONNECTING. In sentinel mode
 * a watcher link (this module's own role) subscribes to +switch-master on one sentinel and tells
 * the owner at once when the master moved. In cluster mode the slot map is also re-read while
 * connected (commands.c: on MOVED, on a node's connection failing, periodically) through
 * jw_topo_read_slots().
 *
 * TLS names: redis_tls_server_name when set; else a target given by name is checked against
 * that name, and a target given as an address (what CLUSTER SLOTS and sentinels report)
 * against the configured host name (redis_host or the first seed/sentinel given by name),
 * else against the address itself (IP SAN). That is what Azure's clustered caches need.
 *
 * Redis thread only.
 */
#ifndef JOBWIRE_REDIS_TOPOLOGY_H
#define JOBWIRE_REDIS_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobwire/config.h"
#include "link.h"
#include "request.h"

#define JW_TOPO_MAX_NODES 64

enum jw_topo_mode { JW_TOPO_SINGLE, JW_TOPO_SENTINEL, JW_TOPO_CLUSTER };

struct jw_topo_node {
    char host[256];
    int port;
    bool used;   /* the entry names a node (entries of forgotten nodes are reused) */
    bool seed;   /* configured: kept for discovery even when the cluster does not list it */
    bool master; /* owns slots in the last slot map (or was named by a MOVED since) */
    bool listed; /* named by the last CLUSTER SLOTS (as master or replica) */
};

/* What the owner is told. */
struct jw_topo_hooks {
    /* cluster: the slot map was read (nodes may have appeared, been promoted or demoted, or
     * left); sentinel: the master moved. */
    void (*changed)(void *ctx);
    void *ctx;
};

struct jw_topo {
    const struct jw_config *cfg;
    enum jw_topo_mode mode;
    struct jw_topo_hooks hooks;
    char name_default[256]; /* TLS name for address-only targets; "" = the address */
    /* sentinel: the master the data links were last sent to */
    char master_host[256];
    int master_port;
    /* cluster: known nodes (seeds first) */
    struct jw_topo_node nodes[JW_TOPO_MAX_NODES];
    size_t nnodes;        /* entries in use or used once (the table's high-water mark) */
    uint16_t *slots;      /* JW_CLUSTER_SLOTS entries: node index + 1; 0 = unknown */
    struct jw_link watch; /* sentinel mode: the +switch-master subscriber */
};

/* "host:port" or "[v6]:port" into host (brackets removed) and port; 0 or -EINVAL. */
int jw_topo_parse_addr(const char *s, char *host, size_t hostlen, int *port)
    __attribute__((warn_unused_result));

void jw_topo_init(struct jw_topo *t, const struct jw_config *cfg, const struct jw_topo_hooks *h);
/* Sentinel mode: creates the watcher's timers on `base` and its TLS; 0 or -ENOMEM. */
int jw_topo_attach(struct jw_topo *t, struct event_base *base, struct ssl_ctx_st *tls)
    __attribute__((warn_unused_result));
void jw_topo_start(struct jw_topo *t);
void jw_topo_stop(struct jw_topo *t);
void jw_topo_shutdown(struct jw_topo *t);
void jw_topo_free(struct jw_topo *t);

/* Sets l->tls_name for a target by the rule above. */
void jw_topo_set_tls_name(const struct jw_topo *t, struct jw_link *l);
/* A data link's role->prepare: chooses the sentinel or node of the next attempt. */
void jw_topo_prepare(struct jw_topo *t, struct jw_link *l);
/* A data link's role->opened: true when a discovery command went out (the role waits for
 * jw_topo_reply), false when the role should start at once. */
bool jw_topo_opened(struct jw_topo *t, struct jw_link *l);
enum jw_topo_result { JW_TOPO_CONTINUE, JW_TOPO_WAIT };
/* A reply while l->discovering (not freed here). CONTINUE: discovery is over and the role
 * starts on this connection; WAIT: the link was redirected or failed, nothing to do. */
enum jw_topo_result jw_topo_reply(struct jw_topo *t, struct jw_link *l, const struct jw_resp *r);

/* Cluster: reads a CLUSTER SLOTS reply (given by `asked`, the host it was asked of) into the
 * node table and the slot map and tells hooks.changed. Returns the number of slot ranges, or -1
 * when the reply is not one (nothing changed). */
int jw_topo_read_slots(struct jw_topo *t, const struct jw_resp *r, const char *asked);
/* Cluster: the node that owns `slot`, or -1. */
int jw_topo_slot_node(const struct jw_topo *t, unsigned slot);
/* Cluster: the index of host:port, added when new (marked master when `master`), or -1 when
 * the table is full. */
int jw_topo_node(struct jw_topo *t, const char *host, int port, bool master);
void jw_topo_set_slot(struct jw_topo *t, unsigned slot, int node);
/* Cluster: every slot has an owner in the map. */
bool jw_topo_complete(const struct jw_topo *t);
/* Cluster: forgets node `i` (no longer listed, its connection gone): the entry may be reused. */
void jw_topo_forget(struct jw_topo *t, int i);

#endif
