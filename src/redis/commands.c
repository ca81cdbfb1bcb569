/*
 * The command connections of the upstream thread (upstream.h has the request rules): requests
 * are written at once, pipelined, answered in FIFO order, each within redis_read_timeout_ms of
 * its submission. Without a cluster there is one connection (`cmd`).
 *
 * In a cluster (docs/REDIS.md):
 *   - `cmd` connects to a known node in turn, reads CLUSTER SLOTS, and stays as the fallback;
 *     then one connection per master is opened (by_node), and each request goes to the owner
 *     of its key's slot (jw_cluster_keyslot of the first argument; keyless commands such as
 *     PING and PUBLISH go to `cmd`). A connection that is not READY falls back to `cmd`.
 *   - A -MOVED or -ASK reply is not handed back: the slot map is updated (MOVED) and the
 *     request is written again on the connection of the node named, with ASKING first for ASK,
 *     at most twice; when that connection is not READY the error reply is handed back.
 *   - MULTI is held until the next keyed command picks the node; the whole transaction then
 *     goes there, up to EXEC or DISCARD (a transaction without keys goes to `cmd`). Commands of
 *     a transaction are never retried alone. Keys of one transaction in different slots get
 *     -CROSSSLOT (same node) or -MOVED (other node) from Redis, and EXEC then -EXECABORT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "request.h"
#include "upstream_private.h"

#define MOD "upstream"

static const char *const R_PING_TIMEOUT = "ping timeout";
static const char *const R_COMMAND_TIMEOUT = "command timeout";
static const char *const R_PROTOCOL = "protocol error";

/* Hands `req` back with `status` (and `reply` when 0). Loop thread, or the submitting thread
 * when the upstream is not running. */
static void
finish(struct jw_upstream *up, struct jw_redis_request *req, int status, redisReply *reply)
{
    req->_next = NULL;
    req->status = status;
    req->reply = reply;
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
    if (up->hooks.on_reply)
        up->hooks.on_reply(up->hooks.ctx, req); /* ownership passes */
    else
        jw_redis_request_free(req);
}

void
jw_upcmd_finish_list(struct jw_upstream *up, struct jw_redis_request *head, int status)
{
    while (head) {
        struct jw_redis_request *next = head->_next;
        finish(up, head, status, NULL);
        head = next;
    }
}

static struct jw_redis_request *
fifo_pop(struct jw_cmdconn *c)
{
    struct jw_redis_request *req = c->fifo_head;
    if (req) {
        c->fifo_head = req->_next;
        if (!c->fifo_head)
            c->fifo_tail = NULL;
        c->inflight--;
        c->up->inflight--;
    }
    return req;
}

static void
fifo_push(struct jw_cmdconn *c, struct jw_redis_request *req)
{
    jw_req_append(&c->fifo_head, &c->fifo_tail, req);
    c->inflight++;
    c->up->inflight++;
}

/* READY only: keeps the deadline on the earliest of the pending PING and the oldest request. */
static void
cmd_rearm(struct jw_cmdconn *c)
{
    struct jw_redislink *l = &c->link;
    uint64_t when = UINT64_MAX;
    if (l->ping_pending)
        when = l->ping_deadline_ms;
    if (c->fifo_head && c->fifo_head->_deadline_ms < when)
        when = c->fifo_head->_deadline_ms;
    if (when == UINT64_MAX) {
        jw_redislink_disarm(l);
        return;
    }
    uint64_t now = jw_redislink_now_ms();
    jw_redislink_arm(l, when > now ? when - now : 0);
}

static bool
ready(const struct jw_cmdconn *c)
{
    return c && jw_redislink_state(&c->link) == JW_LINK_READY;
}

/* Writes `req` on `c` (READY) and queues it for its reply. */
static void
send_on(struct jw_cmdconn *c, struct jw_redis_request *req)
{
    if (req->_asking) {
        const char *argv[1] = {"ASKING"};
        jw_redislink_send(&c->link, 1, argv);
    }
    jw_redislink_write(&c->link, req->cmd, req->cmd_len);
    fifo_push(c, req);
}

static void
cmd_up(struct jw_cmdconn *c)
{
    struct jw_redislink *l = &c->link;
    if (c->node < 0)
        jw_info(MOD, "command link ready on redis %s:%d after %llu ms down", l->host, l->port,
                (unsigned long long)jw_redislink_down_ms(l));
    else
        jw_debug(MOD, "command link to cluster node %s:%d ready", l->host, l->port);
    jw_redislink_up(l);
}

static void
cmd_prepare(struct jw_redislink *l)
{
    struct jw_cmdconn *c = l->owner;
    jw_topo_prepare(&c->up->topo, l);
}

static void
cmd_opened(struct jw_redislink *l)
{
    struct jw_cmdconn *c = l->owner;
    if (!jw_topo_opened(&c->up->topo, l))
        cmd_up(c);
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": the node named; -1 if not one. */
static int
redirect_target(struct jw_upstream *up, const redisReply *r, bool *ask, unsigned *slot)
{
    char kind[8], addr[300], host[256];
    int port;
    if (r->type != REDIS_REPLY_ERROR || r->len >= 300 ||
        sscanf(r->str, "%7s %u %299s", kind, slot, addr) != 3)
        return -1;
    *ask = strcmp(kind, "ASK") == 0;
    if ((!*ask && strcmp(kind, "MOVED") != 0) ||
        jw_topo_parse_addr(addr, host, sizeof host, &port) != 0)
        return -1;
    return jw_topo_node(&up->topo, host, port, !*ask);
}

static struct jw_cmdconn *node_conn(struct jw_upstream *up, int node);

/* Cluster: re-sends a request answered by -MOVED/-ASK; false when it cannot (the error reply
 * then goes back to the requester). */
static bool
follow_redirect(struct jw_upstream *up, struct jw_redis_request *req, const redisReply *r)
{
    bool ask = false;
    unsigned slot = 0;
    if (up->topo.mode != JW_TOPO_CLUSTER || req->_in_txn || req->_redirects >= 2)
        return false;
    int node = redirect_target(up, r, &ask, &slot);
    if (node < 0)
        return false;
    if (!ask)
        jw_topo_set_slot(&up->topo, slot, node);
    struct jw_cmdconn *to = node_conn(up, node);
    if (!ready(to))
        return false;
    jw_debug(MOD, "%s slot %u → %s:%d", ask ? "ASK" : "MOVED", slot, to->link.host, to->link.port);
    req->_redirects++;
    req->_asking = ask;
    send_on(to, req);
    cmd_rearm(to);
    return true;
}

static void
cmd_reply(struct jw_redislink *l, redisReply *r)
{
    struct jw_cmdconn *c = l->owner;
    if (l->discovering) {
        enum jw_topo_result res = jw_topo_reply(&c->up->topo, l, r);
        freeReplyObject(r);
        if (res == JW_TOPO_CONTINUE)
            cmd_up(c);
        return;
    }
    if (l->ping_pending) {
        /* The PING went out while nothing was in flight, so its reply comes first. */
        bool pong = jw_reply_str_eq(r, "PONG");
        freeReplyObject(r);
        if (!pong) {
            jw_redislink_fail(l, R_PROTOCOL, "unexpected reply to PING");
            return;
        }
        l->ping_pending = false;
        cmd_rearm(c);
        return;
    }
    if (c->fifo_head && c->fifo_head->_asking) {
        c->fifo_head->_asking = 0; /* the reply to ASKING; the request's own comes next */
        freeReplyObject(r);
        return;
    }
    struct jw_redis_request *req = fifo_pop(c);
    if (!req) {
        freeReplyObject(r);
        jw_redislink_fail(l, R_PROTOCOL, "reply without a request");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && follow_redirect(c->up, req, r)) {
        freeReplyObject(r);
    } else {
        finish(c->up, req, 0, r); /* a Redis error reply is a reply too: status 0 */
    }
    cmd_rearm(c);
}

static void
cmd_timeout(struct jw_redislink *l)
{
    struct jw_cmdconn *c = l->owner;
    uint64_t now = jw_redislink_now_ms();
    size_t expired = 0;
    while (c->fifo_head && c->fifo_head->_deadline_ms <= now) {
        finish(c->up, fifo_pop(c), -ETIMEDOUT, NULL);
        expired++;
    }
    if (expired > 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "%zu request(s) unanswered after %d ms", expired,
                 l->cfg->redis_read_timeout_ms);
        jw_redislink_fail(l, R_COMMAND_TIMEOUT, detail);
    } else if (l->ping_pending && l->ping_deadline_ms <= now) {
        jw_redislink_fail(l, R_PING_TIMEOUT, "no PONG, link presumed dead");
    } else {
        cmd_rearm(c); /* woke early: nothing is due yet */
    }
}

static void
cmd_ping(struct jw_redislink *l)
{
    struct jw_cmdconn *c = l->owner;
    /* Only while idle: a request in flight has its own deadline, which proves the link. */
    if (!l->ping_pending && !c->fifo_head)
        jw_redislink_send_ping(l);
}

static void
cmd_closed(struct jw_redislink *l, int err)
{
    struct jw_cmdconn *c = l->owner;
    struct jw_redis_request *head = c->fifo_head;
    c->up->inflight -= c->inflight;
    c->fifo_head = c->fifo_tail = NULL;
    c->inflight = 0;
    if (c->up->txn == c)
        c->up->txn = NULL; /* the transaction died with the connection */
    jw_upcmd_finish_list(c->up, head, err);
}

static const struct jw_redislink_role cmd_role = {
    .log_prefix = "command link: ",
    .up_state = JW_LINK_READY,
    .m_up = JW_M_COMMAND_LINK_UP,
    .m_errors = JW_M__COUNT,
    .m_reconnect = JW_M__COUNT,
    .m_too_large = JW_M__COUNT,
    .probe = true,
    .prepare = cmd_prepare,
    .opened = cmd_opened,
    .reply = cmd_reply,
    .timeout = cmd_timeout,
    .ping = cmd_ping,
    .closed = cmd_closed,
    .state = NULL,
};

/* A cluster node's own connection: fixed target, no discovery, no gauge. */
static const struct jw_redislink_role node_role = {
    .log_prefix = "command link (cluster node): ",
    .up_state = JW_LINK_READY,
    .m_up = JW_M__COUNT,
    .m_errors = JW_M__COUNT,
    .m_reconnect = JW_M__COUNT,
    .m_too_large = JW_M__COUNT,
    .probe = true,
    .prepare = NULL,
    .opened = cmd_opened,
    .reply = cmd_reply,
    .timeout = cmd_timeout,
    .ping = cmd_ping,
    .closed = cmd_closed,
    .state = NULL,
};

/* The connection of cluster node `node`, opened on first use; NULL when it cannot be. */
static struct jw_cmdconn *
node_conn(struct jw_upstream *up, int node)
{
    if (node < 0 || node >= JW_TOPO_MAX_NODES)
        return NULL;
    if (up->by_node[node])
        return up->by_node[node];
    struct jw_cmdconn *c = jw_calloc(1, sizeof *c);
    const struct jw_topo_node *n = &up->topo.nodes[node];
    jw_redislink_init(&c->link, up->cfg, &node_role, c, up->cmd.link._reply_limit);
    jw_redislink_set_tls(&c->link, up->tls);
    jw_redislink_set_target(&c->link, n->host, n->port);
    jw_topo_set_tls_name(&up->topo, &c->link);
    c->up = up;
    c->node = node;
    if (jw_redislink_attach(&c->link, up->base) != 0) {
        jw_redislink_free(&c->link);
        free(c);
        return NULL;
    }
    up->by_node[node] = c;
    jw_redislink_connect(&c->link);
    return c;
}

void
jw_upcmd_topology_changed(struct jw_upstream *up)
{
    if (up->topo.mode != JW_TOPO_CLUSTER || !up->base)
        return;
    for (size_t i = 0; i < up->topo.nnodes; i++)
        if (up->topo.nodes[i].master)
            (void)node_conn(up, (int)i);
}

void
jw_upcmd_kick(struct jw_upstream *up, const char *reason, const char *detail)
{
    jw_backoff_reset(&up->cmd.link._backoff);
    jw_redislink_fail(&up->cmd.link, reason, detail);
}

/* Argument `idx` of a RESP-encoded command (*N\r\n$len\r\narg\r\n...); false if absent. */
static bool
resp_arg(const char *cmd, size_t len, int idx, const char **arg, size_t *arglen)
{
    const char *p = cmd, *end = cmd + len;
    if (p >= end || *p != '*')
        return false;
    long n = strtol(p + 1, NULL, 10);
    if (idx >= n)
        return false;
    p = memchr(p, '\n', (size_t)(end - p));
    for (int i = 0; p && p + 1 < end; i++) {
        p++;
        if (*p != '$')
            return false;
        long alen = strtol(p + 1, NULL, 10);
        const char *data = memchr(p, '\n', (size_t)(end - p));
        if (!data || alen < 0 || data + 1 + alen > end)
            return false;
        data++;
        if (i == idx) {
            *arg = data;
            *arglen = (size_t)alen;
            return true;
        }
        p = data + alen + 1; /* at the \n after the argument */
    }
    return false;
}

static bool
name_is(const char *name, size_t len, const char *s)
{
    return len == strlen(s) && strncasecmp(name, s, len) == 0;
}

/* Commands whose first argument is not a key (the gateway's and the health ones). */
static bool
keyless(const char *name, size_t len)
{
    static const char *const names[] = {"PING",    "PUBLISH", "ECHO",   "INFO",
                                        "CLUSTER", "TIME",    "MULTI",  "EXEC",
                                        "DISCARD", "SELECT",  "CLIENT", "SCRIPT"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name_is(name, len, names[i]))
            return true;
    return false;
}

/* The connection of the slot owner of the request's key, else `cmd`. */
static struct jw_cmdconn *
route_key(struct jw_upstream *up, const struct jw_redis_request *req, bool *has_key)
{
    const char *name, *key;
    size_t nlen, klen;
    *has_key = false;
    if (!resp_arg(req->cmd, req->cmd_len, 0, &name, &nlen) || keyless(name, nlen) ||
        !resp_arg(req->cmd, req->cmd_len, 1, &key, &klen))
        return &up->cmd;
    *has_key = true;
    struct jw_cmdconn *c =
        node_conn(up, jw_topo_slot_node(&up->topo, jw_cluster_keyslot(key, klen)));
    return ready(c) ? c : &up->cmd; /* `cmd` may be answered MOVED, then followed */
}

static bool
is_txn_end(const struct jw_redis_request *req)
{
    const char *name;
    size_t nlen;
    return resp_arg(req->cmd, req->cmd_len, 0, &name, &nlen) &&
           (name_is(name, nlen, "EXEC") || name_is(name, nlen, "DISCARD"));
}

static bool
is_multi(const struct jw_redis_request *req)
{
    const char *name;
    size_t nlen;
    return resp_arg(req->cmd, req->cmd_len, 0, &name, &nlen) && name_is(name, nlen, "MULTI");
}

static void
hold_push(struct jw_upstream *up, struct jw_redis_request *req)
{
    jw_req_append(&up->hold_head, &up->hold_tail, req);
    struct timeval tv = {(time_t)(up->cfg->redis_read_timeout_ms / 1000),
                         (suseconds_t)(up->cfg->redis_read_timeout_ms % 1000) * 1000};
    if (!evtimer_pending(up->hold_ev, NULL))
        evtimer_add(up->hold_ev, &tv);
}

/* Writes the held transaction start on `c`, or hands it back with `status` when c is down. */
static void
hold_flush(struct jw_upstream *up, struct jw_cmdconn *c)
{
    struct jw_redis_request *req = up->hold_head;
    up->hold_head = up->hold_tail = NULL;
    evtimer_del(up->hold_ev);
    while (req) {
        struct jw_redis_request *next = req->_next;
        if (ready(c))
            send_on(c, req);
        else
            finish(up, req, -ENOTCONN, NULL);
        req = next;
    }
}

void
jw_upcmd_on_hold(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    struct jw_redis_request *req = up->hold_head;
    up->hold_head = up->hold_tail = NULL;
    jw_upcmd_finish_list(up, req, -ETIMEDOUT); /* MULTI never followed by a command */
}

/* Where a request goes; NULL when it was held (a cluster transaction's start). */
static struct jw_cmdconn *
route(struct jw_upstream *up, struct jw_redis_request *req)
{
    if (up->topo.mode != JW_TOPO_CLUSTER)
        return &up->cmd;
    if (up->txn) {
        struct jw_cmdconn *c = up->txn;
        req->_in_txn = 1;
        if (is_txn_end(req))
            up->txn = NULL;
        return c;
    }
    if (is_multi(req) || up->hold_head) {
        req->_in_txn = 1;
        bool has_key = false;
        struct jw_cmdconn *c = is_multi(req) ? NULL : route_key(up, req, &has_key);
        if (c && (has_key || is_txn_end(req))) {
            hold_flush(up, c);
            if (!is_txn_end(req))
                up->txn = c;
            return c;
        }
        hold_push(up, req);
        return NULL;
    }
    bool has_key;
    return route_key(up, req, &has_key);
}

/* Loop thread: writes every newly submitted request, or hands it back at once. */
void
jw_upcmd_on_submit(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    pthread_mutex_lock(&up->mu);
    struct jw_redis_request *req = up->q_head;
    up->q_head = up->q_tail = NULL;
    pthread_mutex_unlock(&up->mu);

    uint64_t now = jw_redislink_now_ms();
    while (req) {
        struct jw_redis_request *next = req->_next;
        req->_next = NULL;
        if (!ready(&up->cmd)) {
            finish(up, req, -ENOTCONN, NULL);
        } else if (req->_deadline_ms <= now) {
            finish(up, req, -ETIMEDOUT, NULL); /* this thread was late, not Redis */
        } else if (up->inflight >= JW_UPSTREAM_MAX_PENDING) {
            finish(up, req, -ENOBUFS, NULL);
        } else {
            struct jw_cmdconn *c = route(up, req);
            if (c && ready(c)) {
                send_on(c, req);
                jw_metric_add(JW_M_REDIS_COMMANDS, 1);
                cmd_rearm(c);
            } else if (c) {
                finish(up, req, -ENOTCONN, NULL);
            }
        }
        req = next;
    }
}

void
jw_upcmd_init(struct jw_upstream *up, size_t reply_limit)
{
    jw_redislink_init(&up->cmd.link, up->cfg, &cmd_role, &up->cmd, reply_limit);
    up->cmd.up = up;
    up->cmd.node = -1;
}

int
jw_upcmd_attach(struct jw_upstream *up)
{
    jw_redislink_set_tls(&up->cmd.link, up->tls);
    up->hold_ev = evtimer_new(up->base, jw_upcmd_on_hold, up);
    if (!up->hold_ev)
        return -ENOMEM;
    return jw_redislink_attach(&up->cmd.link, up->base);
}

void
jw_upcmd_start(struct jw_upstream *up)
{
    jw_redislink_connect(&up->cmd.link);
}

void
jw_upcmd_stop(struct jw_upstream *up)
{
    jw_redislink_stop(&up->cmd.link, "stopped"); /* in flight: -ECANCELED */
    for (size_t i = 0; i < JW_TOPO_MAX_NODES; i++)
        if (up->by_node[i])
            jw_redislink_stop(&up->by_node[i]->link, "stopped");
    struct jw_redis_request *held = up->hold_head;
    up->hold_head = up->hold_tail = NULL;
    if (up->hold_ev)
        evtimer_del(up->hold_ev);
    jw_upcmd_finish_list(up, held, -ECANCELED);
}

void
jw_upcmd_shutdown(struct jw_upstream *up)
{
    jw_redislink_shutdown(&up->cmd.link);
    for (size_t i = 0; i < JW_TOPO_MAX_NODES; i++)
        if (up->by_node[i])
            jw_redislink_shutdown(&up->by_node[i]->link);
}

void
jw_upcmd_free(struct jw_upstream *up)
{
    jw_redislink_free(&up->cmd.link);
    for (size_t i = 0; i < JW_TOPO_MAX_NODES; i++) {
        if (up->by_node[i]) {
            jw_redislink_free(&up->by_node[i]->link);
            free(up->by_node[i]);
            up->by_node[i] = NULL;
        }
    }
    if (up->hold_ev)
        event_free(up->hold_ev);
    up->hold_ev = NULL;
}
