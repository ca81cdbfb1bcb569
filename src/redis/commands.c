/*
 * The command connections (upstream_private.h): every request is written whole on one
 * connection, pipelined, and its replies are collected in FIFO order until the last one is in
 * (request.h). Each request must be answered within redis_read_timeout_ms of its submission.
 *
 * Single node and Sentinel: one connection, `cmd` (after a Sentinel failover it rediscovers the
 * master; a -READONLY reply means we are talking to a demoted master and reconnects at once).
 *
 * Cluster (docs/REDIS.md):
 *   - `cmd` connects to a known node in turn and reads CLUSTER SLOTS (topology.h); it serves
 *     keyless requests (probes). One connection per master serves the requests of its slots.
 *   - The slot map follows the cluster: re-read on every MOVED, when a node's connection fails,
 *     after -CLUSTERDOWN/-TRYAGAIN, and every redis_cluster_refresh_ms. Nodes that are no longer
 *     masters get no new requests and are closed once idle; nodes that left the cluster are
 *     forgotten.
 *   - A request answered -MOVED or -ASK anywhere in its replies (for a transaction: on a queued
 *     command or on EXEC) is sent again whole to the node named (ASKING first for ASK), at most
 *     three times, keeping its deadline. When that node's connection is still opening, the
 *     request waits for it; a redirect never hands the error back while the target can answer.
 *   - A request waits at most until its node's connection is READY or has failed (bounded by
 *     redis_connect_timeout_ms); then it comes back -ENOTCONN.
 *
 * Timeout rule (why a late reply breaks the connection): replies match requests by position
 * only, so everything behind a stalled request is stalled with it and the connection may be
 * half-open for good. The first request past its deadline comes back -ETIMEDOUT, the connection
 * is re-established, and every request behind it comes back -ENOTCONN. Requests are not held
 * while the (main) connection is down: they come back -ENOTCONN at once, and the gateway retries
 * what matters (sync.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "upstream_private.h"

#define MOD "upstream"
#define MAX_REDIRECTS 3
#define PARKED_REFRESH_MS 200 /* the slot map is read this often while requests wait for it */
/* Room for the RESP framing and the field names around a job state's values. */
#define STATE_SLACK (64u * 1024u)

static const char *const R_PING_TIMEOUT = "ping timeout";
static const char *const R_COMMAND_TIMEOUT = "command timeout";
static const char *const R_PROTOCOL = "protocol error";
static const char *const R_SELECT = "SELECT refused";
static const char *const R_DEMOTED = "the master was demoted";

/* ---- queues ---------------------------------------------------------------------------- */

static void
count_in(struct jw_cmdconn *c)
{
    c->queued++;
    c->up->queued++;
}

static void
count_out(struct jw_cmdconn *c)
{
    c->queued--;
    c->up->queued--;
}

static struct jw_request *
fifo_pop(struct jw_cmdconn *c)
{
    struct jw_request *req = c->fifo_head;
    if (req) {
        c->fifo_head = req->next;
        if (!c->fifo_head)
            c->fifo_tail = NULL;
        count_out(c);
    }
    return req;
}

static void
count_failure(int status)
{
    switch (status) {
    case -ENOTCONN:
        jw_metric_add(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED, 1);
        break;
    case -ETIMEDOUT:
        jw_metric_add(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT, 1);
        break;
    case -ECANCELED:
        jw_metric_add(JW_M_REDIS_COMMAND_ERRORS_CANCELED, 1);
        break;
    case -ENOBUFS:
        jw_metric_add(JW_M_REDIS_COMMAND_ERRORS_OVERFLOW, 1);
        break;
    default:
        break;
    }
}

/* Hands `req` to its owner and frees it. */
static void
finish(struct jw_request *req, int status)
{
    if (status < 0)
        jw_request_reset_replies(req);
    count_failure(status);
    req->done(req, status);
    jw_request_free(req);
}

static void
finish_list(struct jw_request *head, int status)
{
    while (head) {
        struct jw_request *next = head->next;
        finish(head, status);
        head = next;
    }
}

static void
schedule(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* ---- connections ----------------------------------------------------------------------- */

static bool
ready(const struct jw_cmdconn *c)
{
    return c && jw_link_state(&c->link) == JW_LINK_READY;
}

/* Being opened: a request for it can wait. */
static bool
opening(const struct jw_cmdconn *c)
{
    enum jw_link_state st = jw_link_state(&c->link);
    return st == JW_LINK_CONNECTING || st == JW_LINK_AUTHENTICATING;
}

static bool
is_cluster(const struct jw_upstream *up)
{
    return up->topo.mode == JW_TOPO_CLUSTER;
}

/* Recomputes jw_upstream_commands_ready() and tells the owner when it changed. */
static void
update_ready(struct jw_upstream *up)
{
    bool now = ready(&up->cmd);
    if (is_cluster(up)) {
        now = jw_topo_complete(&up->topo);
        for (size_t i = 0; now && i < up->topo.nnodes; i++)
            if (up->topo.nodes[i].used && up->topo.nodes[i].master && !ready(up->by_node[i]))
                now = false;
    }
    if (atomic_exchange(&up->commands_ready, now) != now) {
        jw_metric_set(JW_M_COMMANDS_READY, now);
        jw_upstream_notify(up, NULL);
    }
}

/* Keeps the deadline on the earliest of the pending PING and the oldest request (the FIFO is in
 * submission order, so that is the earliest of all). READY only. */
static void
rearm(struct jw_cmdconn *c)
{
    struct jw_link *l = &c->link;
    uint64_t when = UINT64_MAX;
    if (l->ping_pending)
        when = l->ping_deadline_ms;
    if (c->fifo_head && c->fifo_head->_deadline_ms < when)
        when = c->fifo_head->_deadline_ms;
    if (when == UINT64_MAX) {
        jw_link_disarm(l);
        return;
    }
    uint64_t now = jw_now_ms();
    jw_link_arm(l, when > now ? when - now : 0);
}

static void
write_req(struct jw_cmdconn *c, struct jw_request *req)
{
    if (req->_asking) {
        const char *argv[1] = {"ASKING"};
        jw_link_send(&c->link, 1, argv);
        req->_skipping = 1;
    }
    jw_link_write(&c->link, req->blob, req->len);
    jw_request_append(&c->fifo_head, &c->fifo_tail, req);
    count_in(c);
    jw_metric_add(JW_M_REDIS_COMMANDS, (int64_t)req->nreplies);
    rearm(c);
}

/* Writes `req` on `c`, or keeps it until `c` is open, or — on a cluster, where the slot's node
 * is down — until the slot map names another node (a failover) or its deadline passes. */
static void
send_on(struct jw_upstream *up, struct jw_cmdconn *c, struct jw_request *req)
{
    if (ready(c)) {
        write_req(c, req);
    } else if (c && c->node >= 0 && !c->retiring && opening(c)) {
        jw_request_append(&c->wait_head, &c->wait_tail, req);
        count_in(c);
    } else if (is_cluster(up) && req->slot >= 0) {
        if (!up->parked_head) /* the first: read the map shortly, and on while any wait */
            schedule(up->refresh_ev, PARKED_REFRESH_MS);
        jw_request_append(&up->parked_head, &up->parked_tail, req);
        up->queued++;
    } else {
        finish(req, -ENOTCONN);
    }
}

static const struct jw_link_role node_role;

/* The connection of cluster node `node`, opened on first use; NULL when it cannot be. */
static struct jw_cmdconn *
node_conn(struct jw_upstream *up, int node)
{
    if (node < 0 || node >= JW_TOPO_MAX_NODES || !up->topo.nodes[node].used)
        return NULL;
    if (up->by_node[node])
        return up->by_node[node];
    struct jw_cmdconn *c = jw_calloc(1, sizeof *c);
    const struct jw_topo_node *n = &up->topo.nodes[node];
    jw_link_init(&c->link, up->cfg, &node_role, c);
    c->link.limits = up->cmd.link.limits;
    jw_link_set_tls(&c->link, up->tls);
    jw_link_set_target(&c->link, n->host, n->port);
    jw_topo_set_tls_name(&up->topo, &c->link);
    c->up = up;
    c->node = node;
    if (jw_link_attach(&c->link, up->base) != 0) {
        jw_link_free(&c->link);
        free(c);
        return NULL;
    }
    up->by_node[node] = c;
    jw_link_connect(&c->link);
    return c;
}

/* Where a request goes: its slot's master, else the main connection. */
static struct jw_cmdconn *
route(struct jw_upstream *up, const struct jw_request *req)
{
    if (!is_cluster(up))
        return &up->cmd;
    if (req->slot < 0) { /* keyless: any node will do */
        if (ready(&up->cmd))
            return &up->cmd;
        for (size_t i = 0; i < up->topo.nnodes; i++)
            if (ready(up->by_node[i]) && !up->by_node[i]->retiring)
                return up->by_node[i];
        return &up->cmd;
    }
    int node = jw_topo_slot_node(&up->topo, (unsigned)req->slot);
    struct jw_cmdconn *c = node_conn(up, node);
    return c ? c : &up->cmd; /* an unknown slot: the node asked answers MOVED */
}

void
jw_commands_send(struct jw_upstream *up, struct jw_request *req)
{
    uint64_t now = jw_now_ms();
    if (!req->_deadline_ms)
        req->_deadline_ms = now + (uint64_t)up->cfg->redis_read_timeout_ms;
    if (req->_deadline_ms <= now)
        finish(req, -ETIMEDOUT); /* this thread was late, not Redis */
    else if (up->queued >= JW_UPSTREAM_MAX_PENDING)
        finish(req, -ENOBUFS);
    else
        send_on(up, route(up, req), req);
}

/* ---- replies ----------------------------------------------------------------------------- */

/* The first -MOVED/-ASK among the replies: its node (added to the table when new), slot and
 * kind; -1 when there is none. */
static int
redirect_of(struct jw_upstream *up, const struct jw_request *req, bool *ask, unsigned *slot)
{
    for (unsigned i = 0; i < req->got; i++) {
        const struct jw_resp *r = req->reply[i];
        char kind[8], addr[300], host[256];
        int port;
        if (!r || r->type != JW_RESP_ERROR || !r->str || r->len >= sizeof addr ||
            sscanf(r->str, "%7s %u %299s", kind, slot, addr) != 3)
            continue;
        *ask = strcmp(kind, "ASK") == 0;
        if ((!*ask && strcmp(kind, "MOVED") != 0) || *slot >= JW_CLUSTER_SLOTS ||
            jw_topo_parse_addr(addr, host, sizeof host, &port) != 0)
            continue;
        return jw_topo_node(&up->topo, host, port, !*ask);
    }
    return -1;
}

static bool
any_error(const struct jw_request *req, const char *code)
{
    for (unsigned i = 0; i < req->got; i++)
        if (jw_resp_error_is(req->reply[i], code))
            return true;
    return false;
}

/* Every reply of `req` is in: redirect it, or hand it back. */
static void
complete(struct jw_cmdconn *c, struct jw_request *req)
{
    struct jw_upstream *up = c->up;
    if (is_cluster(up)) {
        bool ask = false;
        unsigned slot = 0;
        int node = redirect_of(up, req, &ask, &slot);
        if (node >= 0 && req->_redirects < MAX_REDIRECTS) {
            if (!ask) {
                jw_topo_set_slot(&up->topo, slot, node);
                jw_commands_refresh_soon(up); /* one MOVED says the map is old */
            }
            struct jw_cmdconn *to = node_conn(up, node);
            jw_debug(MOD, "%s slot %u → %s:%d", ask ? "ASK" : "MOVED", slot,
                     up->topo.nodes[node].host, up->topo.nodes[node].port);
            req->_redirects++;
            req->_asking = ask;
            jw_request_reset_replies(req);
            send_on(up, to, req);
            return;
        }
        if (any_error(req, "CLUSTERDOWN") || any_error(req, "TRYAGAIN"))
            jw_commands_refresh_soon(up);
    } else if (up->topo.mode == JW_TOPO_SENTINEL && any_error(req, "READONLY")) {
        /* The master we know was demoted and +switch-master did not reach us (yet). */
        finish(req, 0);
        jw_link_reconnect_now(&up->sub, R_DEMOTED, NULL);
        jw_link_reconnect_now(&up->cmd.link, R_DEMOTED, NULL);
        return;
    }
    finish(req, 0);
}

static void
conn_up(struct jw_cmdconn *c)
{
    struct jw_link *l = &c->link;
    if (c->node < 0)
        jw_info(MOD, "command link ready on redis %s:%d after %llu ms down", l->host, l->port,
                (unsigned long long)jw_link_down_ms(l));
    else
        jw_debug(MOD, "command link to cluster node %s:%d ready", l->host, l->port);
    jw_link_up(l);
    struct jw_request *waiting = c->wait_head;
    c->wait_head = c->wait_tail = NULL;
    while (waiting) {
        struct jw_request *next = waiting->next;
        count_out(c);
        write_req(c, waiting);
        waiting = next;
    }
}

/* After AUTH (and discovery): SELECT the configured database, then READY. */
static void
conn_start(struct jw_cmdconn *c)
{
    const struct jw_config *cfg = c->up->cfg;
    if (cfg->redis_db > 0 && !is_cluster(c->up)) {
        char db[16];
        snprintf(db, sizeof db, "%d", cfg->redis_db);
        const char *argv[2] = {"SELECT", db};
        jw_link_send(&c->link, 2, argv);
        c->selecting = true;
        jw_link_set_state(&c->link, JW_LINK_CONNECTING, NULL);
        jw_link_arm(&c->link, (uint64_t)cfg->redis_read_timeout_ms);
        return;
    }
    conn_up(c);
}

static void
cmd_prepare(struct jw_link *l)
{
    struct jw_cmdconn *c = l->owner;
    jw_topo_prepare(&c->up->topo, l);
}

static void
cmd_opened(struct jw_link *l)
{
    struct jw_cmdconn *c = l->owner;
    if (!jw_topo_opened(&c->up->topo, l))
        conn_start(c);
}

static void
cmd_reply(struct jw_link *l, struct jw_resp *r)
{
    struct jw_cmdconn *c = l->owner;
    if (l->discovering) {
        enum jw_topo_result res = jw_topo_reply(&c->up->topo, l, r);
        jw_resp_free(r);
        if (res == JW_TOPO_CONTINUE)
            conn_start(c);
        return;
    }
    if (c->selecting) {
        bool ok = jw_resp_str_eq(r, "OK");
        char detail[160];
        snprintf(detail, sizeof detail, "%s", r->str ? r->str : "unexpected reply");
        jw_resp_free(r);
        c->selecting = false;
        if (ok)
            conn_up(c);
        else
            jw_link_fail(l, R_SELECT, detail);
        return;
    }
    if (l->ping_pending) {
        /* The PING went out while nothing was in flight, so its reply comes first. */
        bool pong = jw_resp_str_eq(r, "PONG");
        jw_resp_free(r);
        if (!pong) {
            jw_link_fail(l, R_PROTOCOL, "unexpected reply to PING");
            return;
        }
        l->ping_pending = false;
        rearm(c);
        return;
    }
    struct jw_request *req = c->fifo_head;
    if (!req) {
        jw_resp_free(r);
        jw_link_fail(l, R_PROTOCOL, "reply without a request");
        return;
    }
    if (req->_skipping) { /* the reply to ASKING; the request's own come next */
        req->_skipping = 0;
        jw_resp_free(r);
        return;
    }
    req->reply[req->got++] = r;
    if (req->got < req->nreplies)
        return;
    fifo_pop(c);
    complete(c, req);
    if (jw_link_state(l) == JW_LINK_READY)
        rearm(c);
    if (c->retiring && !c->queued) /* closed by the reconciliation, outside this callback */
        schedule(c->up->reconcile_ev, 0);
}

static void
cmd_timeout(struct jw_link *l)
{
    struct jw_cmdconn *c = l->owner;
    uint64_t now = jw_now_ms();
    size_t expired = 0;
    if (c->selecting) {
        jw_link_fail(l, R_SELECT, "no reply");
        return;
    }
    while (c->fifo_head && c->fifo_head->_deadline_ms <= now) {
        finish(fifo_pop(c), -ETIMEDOUT);
        expired++;
    }
    if (expired > 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "%zu request(s) unanswered after %d ms", expired,
                 l->cfg->redis_read_timeout_ms);
        jw_link_fail(l, R_COMMAND_TIMEOUT, detail);
    } else if (l->ping_pending && l->ping_deadline_ms <= now) {
        jw_link_fail(l, R_PING_TIMEOUT, "no PONG, link presumed dead");
    } else {
        rearm(c); /* woke early: nothing is due yet */
    }
}

static void
cmd_ping(struct jw_link *l)
{
    struct jw_cmdconn *c = l->owner;
    /* Only while idle: a request in flight has its own deadline, which proves the link. */
    if (!l->ping_pending && !c->fifo_head) {
        jw_link_send_ping(l);
        rearm(c);
    }
}

static void
cmd_closed(struct jw_link *l, int err)
{
    struct jw_cmdconn *c = l->owner;
    struct jw_request *fifo = c->fifo_head, *waiting = c->wait_head;
    c->up->queued -= c->queued;
    c->queued = 0;
    c->fifo_head = c->fifo_tail = c->wait_head = c->wait_tail = NULL;
    c->selecting = false;
    finish_list(fifo, err);
    finish_list(waiting, err);
    if (is_cluster(c->up) && err == -ENOTCONN)
        jw_commands_refresh_soon(c->up); /* a node failing may be a failover starting */
}

static void
cmd_state(struct jw_link *l, enum jw_link_state st, const char *reason)
{
    (void)st;
    (void)reason;
    struct jw_cmdconn *c = l->owner;
    update_ready(c->up);
}

static const struct jw_link_role cmd_role = {
    .log_prefix = "command link: ",
    .up_state = JW_LINK_READY,
    .m_up = JW_M_COMMAND_LINK_UP,
    .m_errors = JW_M__COUNT,
    .m_reconnect = JW_M__COUNT,
    .probe = true,
    .prepare = cmd_prepare,
    .opened = cmd_opened,
    .reply = cmd_reply,
    .timeout = cmd_timeout,
    .ping = cmd_ping,
    .closed = cmd_closed,
    .state = cmd_state,
};

/* A cluster node's own connection: fixed target, no discovery, no gauge. */
static const struct jw_link_role node_role = {
    .log_prefix = "command link (cluster node): ",
    .up_state = JW_LINK_READY,
    .m_up = JW_M__COUNT,
    .m_errors = JW_M__COUNT,
    .m_reconnect = JW_M__COUNT,
    .probe = true,
    .prepare = NULL,
    .opened = cmd_opened,
    .reply = cmd_reply,
    .timeout = cmd_timeout,
    .ping = cmd_ping,
    .closed = cmd_closed,
    .state = cmd_state,
};

/* ---- cluster topology -------------------------------------------------------------------- */

static void
free_node_conn(struct jw_upstream *up, int i)
{
    struct jw_cmdconn *c = up->by_node[i];
    jw_link_stop(&c->link, "no longer a master"); /* nothing queued: nothing comes back */
    jw_link_shutdown(&c->link);
    jw_link_free(&c->link);
    free(c);
    up->by_node[i] = NULL;
}

/* Brings the node connections in line with the slot map. Never inside a link callback (it
 * frees connections): it runs from the refresh timer or the topology hook of another link. */
static void
reconcile(struct jw_upstream *up)
{
    for (size_t i = 0; i < up->topo.nnodes; i++) {
        const struct jw_topo_node *n = &up->topo.nodes[i];
        struct jw_cmdconn *c = up->by_node[i];
        if (n->used && n->master) {
            if (c) {
                c->retiring = false;
            } else {
                jw_info(MOD, "cluster node %s:%d serves slots: connecting", n->host, n->port);
                (void)node_conn(up, (int)i);
            }
            continue;
        }
        if (c && c->queued) {
            c->retiring = true; /* its requests will be answered, or MOVED elsewhere */
            continue;
        }
        if (c) {
            jw_info(MOD, "cluster node %s:%d no longer serves slots: disconnected", n->host,
                    n->port);
            free_node_conn(up, (int)i);
        }
        if (n->used && !n->listed && !n->seed) {
            jw_info(MOD, "cluster node %s:%d left the slot map: forgotten", n->host, n->port);
            jw_topo_forget(&up->topo, (int)i);
        }
    }
    update_ready(up);
}

void
jw_commands_topology_changed(struct jw_upstream *up)
{
    if (!up->base)
        return;
    if (is_cluster(up))
        schedule(up->reconcile_ev, 0); /* called inside a link's callback: not here */
    else
        jw_link_reconnect_now(&up->cmd.link, "master switched", NULL);
}

static void unpark(struct jw_upstream *up);

static void
on_reconcile(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reconcile(arg);
    unpark(arg);
}

/* Routes the parked requests again (after a slot map read): each goes to its slot's node now,
 * or parks again, or comes back -ETIMEDOUT when its deadline passed. */
static void
unpark(struct jw_upstream *up)
{
    struct jw_request *req = up->parked_head;
    uint64_t now = jw_now_ms();
    up->parked_head = up->parked_tail = NULL;
    while (req) {
        struct jw_request *next = req->next;
        up->queued--;
        if (req->_deadline_ms <= now)
            finish(req, -ETIMEDOUT);
        else
            send_on(up, route(up, req), req);
        req = next;
    }
}

static void
refresh_done(struct jw_request *req, int status)
{
    struct jw_upstream *up = req->ctx;
    up->refresh_in_flight = false;
    /* A good map tells hooks.changed, which reconciles the connections. */
    int ranges = status == 0 ? jw_topo_read_slots(&up->topo, req->reply[0], up->refresh_host) : 0;
    if (status == 0 && ranges < 0)
        jw_warn(MOD, "cluster: unexpected reply to CLUSTER SLOTS from %s", up->refresh_host);

    jw_debug(MOD, "cluster: slot map read from %s: %d range(s) (status %d)", up->refresh_host,
             ranges, status);
    schedule(up->refresh_ev,
             up->parked_head ? PARKED_REFRESH_MS : (uint64_t)up->cfg->redis_cluster_refresh_ms);
}

/* Reads the slot map through any ready connection; without one the main connection reads it
 * when it (re)connects. */
static void
on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct jw_upstream *up = arg;
    if (up->refresh_in_flight)
        return;
    struct jw_cmdconn *via = route(up, &(struct jw_request){.slot = -1});
    if (!ready(via)) {
        unpark(up); /* deadlines still count */
        schedule(up->refresh_ev,
                 up->parked_head ? PARKED_REFRESH_MS : (uint64_t)up->cfg->redis_cluster_refresh_ms);
        return;
    }
    struct jw_request *req = jw_request_new(-1, refresh_done, up);
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    jw_request_add(req, 2, argv, NULL);
    req->_deadline_ms = jw_now_ms() + (uint64_t)up->cfg->redis_read_timeout_ms;
    snprintf(up->refresh_host, sizeof up->refresh_host, "%s", via->link.host);
    up->refresh_in_flight = true;
    write_req(via, req);
}

void
jw_commands_refresh_soon(struct jw_upstream *up)
{
    if (is_cluster(up) && up->refresh_ev && !up->refresh_in_flight)
        schedule(up->refresh_ev, 0);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

void
jw_commands_init(struct jw_upstream *up)
{
    const struct jw_config *cfg = up->cfg;
    jw_link_init(&up->cmd.link, cfg, &cmd_role, &up->cmd);
    up->cmd.link.limits.max_bytes = cfg->max_state_bytes + STATE_SLACK;
    up->cmd.link.limits.max_elements = 2 * (size_t)cfg->max_state_fields + 4096;
    up->cmd.up = up;
    up->cmd.node = -1;
}

int
jw_commands_attach(struct jw_upstream *up)
{
    jw_link_set_tls(&up->cmd.link, up->tls);
    if (is_cluster(up)) {
        up->refresh_ev = evtimer_new(up->base, on_refresh, up);
        up->reconcile_ev = evtimer_new(up->base, on_reconcile, up);
        if (!up->refresh_ev || !up->reconcile_ev)
            return -ENOMEM;
    }
    return jw_link_attach(&up->cmd.link, up->base);
}

void
jw_commands_start(struct jw_upstream *up)
{
    jw_link_connect(&up->cmd.link);
    if (up->refresh_ev)
        schedule(up->refresh_ev, (uint64_t)up->cfg->redis_cluster_refresh_ms);
}

void
jw_commands_stop(struct jw_upstream *up)
{
    if (up->refresh_ev) {
        evtimer_del(up->refresh_ev);
        evtimer_del(up->reconcile_ev);
    }
    jw_link_stop(&up->cmd.link, "stopped"); /* in flight: -ECANCELED */
    struct jw_request *parked = up->parked_head;
    up->parked_head = up->parked_tail = NULL;
    finish_list(parked, -ECANCELED);
    for (size_t i = 0; i < JW_TOPO_MAX_NODES; i++)
        if (up->by_node[i])
            jw_link_stop(&up->by_node[i]->link, "stopped");
}

void
jw_commands_shutdown(struct jw_upstream *up)
{
    jw_link_shutdown(&up->cmd.link);
    for (size_t i = 0; i < JW_TOPO_MAX_NODES; i++)
        if (up->by_node[i])
            jw_link_shutdown(&up->by_node[i]->link);
}

void
jw_commands_free(struct jw_upstream *up)
{
    jw_link_free(&up->cmd.link);
    for (size_t i = 0; i < JW_TOPO_MAX_NODES; i++) {
        if (up->by_node[i]) {
            jw_link_free(&up->by_node[i]->link);
            free(up->by_node[i]);
            up->by_node[i] = NULL;
        }
    }
    if (up->refresh_ev)
        event_free(up->refresh_ev);
    if (up->reconcile_ev)
        event_free(up->reconcile_ev);
    up->refresh_ev = up->reconcile_ev = NULL;
}
