/*
 * Topology of the Redis side (redistopo.h): sentinel discovery and the +switch-master watcher,
 * cluster discovery through CLUSTER SLOTS, the slot map and the key slot function.
 *
 * Why discovery runs on every reconnect instead of trusting the last answer: after a failover
 * the old address may still accept connections (a demoted master, a restarted pod), so only
 * a fresh answer from a sentinel or from a node of the cluster is trusted.
 */
#include "topology.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"

#define MOD "upstream"

static const char *const R_DISCOVERY = "discovery failed";
static const char *const R_SWITCH_TIMEOUT = "sentinel subscribe timeout";
static const char *const R_ERROR_REPLY = "error reply";

int
jw_topo_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -EINVAL;
    const char *h = s, *h_end = colon;
    if (s[0] == '[') {
        if (colon[-1] != ']')
            return -EINVAL;
        h++;
        h_end--;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535 || h_end <= h || (size_t)(h_end - h) >= hostlen)
        return -EINVAL;
    memcpy(host, h, (size_t)(h_end - h));
    host[h_end - h] = '\0';
    *port = (int)p;
    return 0;
}

static uint16_t
crc16_xmodem(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned
jw_cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) /* "{}" is no tag: the whole key is hashed */
            return crc16_xmodem(open + 1, (size_t)(close - open - 1)) % JW_CLUSTER_SLOTS;
    }
    return crc16_xmodem(key, len) % JW_CLUSTER_SLOTS;
}

static bool
is_address(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int
jw_topo_node(struct jw_topo *t, const char *host, int port, bool master)
{
    for (size_t i = 0; i < t->nnodes; i++) {
        if (t->nodes[i].port == port && strcmp(t->nodes[i].host, host) == 0) {
            if (master)
                t->nodes[i].master = true;
            return (int)i;
        }
    }
    if (t->nnodes == JW_TOPO_MAX_NODES || strlen(host) >= sizeof t->nodes[0].host)
        return -1;
    struct jw_topo_node *n = &t->nodes[t->nnodes];
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->master = master;
    return (int)t->nnodes++;
}

int
jw_topo_slot_node(const struct jw_topo *t, unsigned slot)
{
    if (!t->slots || slot >= JW_CLUSTER_SLOTS)
        return -1;
    return (int)t->slots[slot] - 1;
}

void
jw_topo_set_slot(struct jw_topo *t, unsigned slot, int node)
{
    if (t->slots && slot < JW_CLUSTER_SLOTS && node >= 0)
        t->slots[slot] = (uint16_t)(node + 1);
}

static void
remember_name(struct jw_topo *t, const char *host)
{
    if (!t->name_default[0] && !is_address(host))
        snprintf(t->name_default, sizeof t->name_default, "%s", host);
}

void
jw_topo_init(struct jw_topo *t, const struct jw_config *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->mode = cfg->redis_ncluster_nodes > 0 ? JW_TOPO_CLUSTER
              : cfg->redis_nsentinels > 0   ? JW_TOPO_SENTINEL
                                            : JW_TOPO_SINGLE;
    char host[256];
    int port;
    if (t->mode == JW_TOPO_CLUSTER) {
        t->slots = jw_calloc(JW_CLUSTER_SLOTS, sizeof t->slots[0]);
        for (size_t i = 0; i < cfg->redis_ncluster_nodes; i++) {
            if (jw_topo_parse_addr(cfg->redis_cluster_nodes[i], host, sizeof host, &port) == 0) {
                remember_name(t, host);
                (void)jw_topo_node(t, host, port, false);
            }
        }
    } else if (t->mode == JW_TOPO_SENTINEL) {
        for (size_t i = 0; i < cfg->redis_nsentinels; i++)
            if (jw_topo_parse_addr(cfg->redis_sentinels[i], host, sizeof host, &port) == 0)
                remember_name(t, host);
    }
    /* A rediss:// URL or redis_host names the service even when the nodes are addresses. */
    if (cfg->redis_host && !is_address(cfg->redis_host) && strcmp(cfg->redis_host, "localhost"))
        snprintf(t->name_default, sizeof t->name_default, "%s", cfg->redis_host);
}

void
jw_topo_set_tls_name(const struct jw_topo *t, struct jw_redislink *l)
{
    const char *n = t->cfg->redis_tls_server_name;
    if (n && n[0])
        snprintf(l->tls_name, sizeof l->tls_name, "%s", n);
    else if (is_address(l->host) && t->name_default[0])
        snprintf(l->tls_name, sizeof l->tls_name, "%s", t->name_default);
    else
        l->tls_name[0] = '\0'; /* the host itself */
}

/* The sentinel of the next attempt: the next one when the last discovery failed. */
static void
prepare_sentinel(struct jw_topo *t, struct jw_redislink *l)
{
    const struct jw_config *c = t->cfg;
    if (l->discovering)
        l->seed_idx++; /* the previous attempt never got an answer from its sentinel */
    char host[256];
    int port = 0;
    const char *s = c->redis_sentinels[l->seed_idx % c->redis_nsentinels];
    if (jw_topo_parse_addr(s, host, sizeof host, &port) != 0)
        snprintf(host, sizeof host, "%s", s); /* config.c validated it; defensive */
    jw_redislink_set_target(l, host, port);
    l->username = NULL;
    l->password = c->redis_sentinel_password;
    l->discovering = true;
    jw_topo_set_tls_name(t, l);
}

void
jw_topo_prepare(struct jw_topo *t, struct jw_redislink *l)
{
    switch (t->mode) {
    case JW_TOPO_SENTINEL:
        prepare_sentinel(t, l);
        break;
    case JW_TOPO_CLUSTER: {
        /* Round robin: every new attempt goes to the next known node, so a node that died
         * (or a link that failed for any reason) is left for another one. */
        const struct jw_topo_node *n = &t->nodes[l->seed_idx++ % t->nnodes];
        jw_redislink_set_target(l, n->host, n->port);
        l->username = t->cfg->redis_username;
        l->password = t->cfg->redis_password;
        l->discovering = true;
        jw_topo_set_tls_name(t, l);
        break;
    }
    case JW_TOPO_SINGLE:
        jw_topo_set_tls_name(t, l);
        break;
    }
}

bool
jw_topo_opened(struct jw_topo *t, struct jw_redislink *l)
{
    if (!l->discovering)
        return false;
    if (t->mode == JW_TOPO_SENTINEL) {
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
                               t->cfg->redis_sentinel_master};
        jw_redislink_send(l, 3, argv);
    } else {
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        jw_redislink_send(l, 2, argv);
    }
    jw_redislink_set_state(l, JW_LINK_CONNECTING, NULL);
    jw_redislink_arm(l, (uint64_t)t->cfg->redis_read_timeout_ms);
    return true;
}

/* [ip, port] from SENTINEL get-master-addr-by-name; false when it is anything else. */
static bool
master_addr(const redisReply *r, char *host, size_t hostlen, int *port)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !jw_reply_is_str(r->element[0]) ||
        !jw_reply_is_str(r->element[1]) || r->element[0]->len == 0 || r->element[0]->len >= hostlen)
        return false;
    memcpy(host, r->element[0]->str, r->element[0]->len);
    host[r->element[0]->len] = '\0';
    long p = strtol(r->element[1]->str, NULL, 10);
    *port = (int)p;
    return p >= 1 && p <= 65535;
}

/* One node of a CLUSTER SLOTS range: [endpoint, port, id, ...]; "" or "?" = the host asked. */
static int
slots_node(struct jw_topo *t, const redisReply *n, const char *asked, bool master)
{
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 || !jw_reply_is_str(n->element[0]) ||
        n->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    char host[256];
    const redisReply *h = n->element[0];
    if (h->len == 0 || (h->len == 1 && h->str[0] == '?') || h->len >= sizeof host)
        snprintf(host, sizeof host, "%s", asked);
    else
        snprintf(host, sizeof host, "%.*s", (int)h->len, h->str);
    return jw_topo_node(t, host, (int)n->element[1]->integer, master);
}

/* CLUSTER SLOTS: [[start, end, master, replica...], ...] into the slot map; number of ranges,
 * or -1 when the reply is not that. */
static int
read_slots(struct jw_topo *t, const redisReply *r, const char *asked)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < t->nnodes; i++)
        t->nodes[i].master = false;
    int ranges = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        int master = slots_node(t, e->element[2], asked, true);
        for (size_t k = 3; k < e->elements; k++)
            (void)slots_node(t, e->element[k], asked, false);
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        for (long long s = lo; s <= hi && s >= 0 && s < JW_CLUSTER_SLOTS; s++)
            jw_topo_set_slot(t, (unsigned)s, master);
        ranges++;
    }
    return ranges;
}

enum jw_topo_result
jw_topo_reply(struct jw_topo *t, struct jw_redislink *l, const redisReply *r)
{
    char detail[320];
    if (r->type == REDIS_REPLY_ERROR) {
        jw_redislink_fail(l, R_DISCOVERY, r->str);
        return JW_TOPO_WAIT;
    }
    if (t->mode == JW_TOPO_SENTINEL) {
        char host[256];
        int port;
        if (!master_addr(r, host, sizeof host, &port)) {
            snprintf(detail, sizeof detail, "the sentinel does not know master '%.100s'",
                     t->cfg->redis_sentinel_master);
            jw_redislink_fail(l, R_DISCOVERY, detail);
            return JW_TOPO_WAIT;
        }
        if (strcmp(host, t->master_host) != 0 || port != t->master_port) {
            jw_info(MOD, "sentinel %s:%d: master '%s' is at %s:%d", l->host, l->port,
                    t->cfg->redis_sentinel_master, host, port);
            snprintf(t->master_host, sizeof t->master_host, "%s", host);
            t->master_port = port;
        }
        l->discovering = false;
        jw_redislink_redirect(l, host, port, t->cfg->redis_username, t->cfg->redis_password);
        jw_topo_set_tls_name(t, l);
        return JW_TOPO_WAIT;
    }
    int ranges = read_slots(t, r, l->host);
    if (ranges <= 0) {
        jw_redislink_fail(l, R_DISCOVERY,
                          ranges < 0 ? "unexpected reply to CLUSTER SLOTS"
                                     : "the cluster has no slots assigned");
        return JW_TOPO_WAIT;
    }
    jw_debug(MOD, "cluster node %s:%d: %d slot range(s), %zu known node(s)", l->host, l->port,
             ranges, t->nnodes);
    l->discovering = false;
    if (t->changed)
        t->changed(t->ctx);
    return JW_TOPO_CONTINUE;
}

/* ---- sentinel watcher: SUBSCRIBE +switch-master on one sentinel ---- */

static void
watch_opened(struct jw_redislink *l)
{
    /* Ask first: a switch may have happened while no sentinel was watched. */
    l->discovering = true;
    (void)jw_topo_opened(l->owner, l);
}

static void
watch_subscribe(struct jw_redislink *l)
{
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
    jw_redislink_send(l, 2, argv);
    jw_redislink_set_state(l, JW_LINK_SUBSCRIBING, NULL);
    jw_redislink_arm(l, (uint64_t)l->cfg->redis_read_timeout_ms);
}

static void
moved_to(struct jw_topo *t, const char *host, int port, const char *why)
{
    if (strcmp(host, t->master_host) == 0 && port == t->master_port)
        return;
    jw_warn(MOD, "sentinel: master '%s' moved from %s:%d to %s:%d (%s)",
            t->cfg->redis_sentinel_master, t->master_host[0] ? t->master_host : "?", t->master_port,
            host, port, why);
    snprintf(t->master_host, sizeof t->master_host, "%s", host);
    t->master_port = port;
    if (t->changed)
        t->changed(t->ctx);
}

static void
watch_message(struct jw_topo *t, const redisReply *payload)
{
    /* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
    char name[256], oldh[256], newh[256];
    int oldp, newp;
    char text[1024];
    if (payload->len >= sizeof text)
        return;
    memcpy(text, payload->str, payload->len);
    text[payload->len] = '\0';
    if (sscanf(text, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) != 5)
        return;
    if (strcmp(name, t->cfg->redis_sentinel_master) == 0)
        moved_to(t, newh, newp, "+switch-master");
}

static void
watch_reply(struct jw_redislink *l, redisReply *r)
{
    struct jw_topo *t = l->owner;
    if (l->discovering) {
        char host[256];
        int port;
        l->discovering = false;
        if (r->type == REDIS_REPLY_ERROR) {
            jw_redislink_fail(l, R_ERROR_REPLY, r->str);
        } else {
            if (master_addr(r, host, sizeof host, &port) && t->master_host[0])
                moved_to(t, host, port, "sentinel answer");
            watch_subscribe(l);
        }
        freeReplyObject(r);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        jw_redislink_fail(l, R_ERROR_REPLY, r->str);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && jw_reply_is_str(r->element[0])) {
        const redisReply *k = r->element[0];
        if (jw_reply_str_eq(k, "subscribe") && jw_redislink_state(l) == JW_LINK_SUBSCRIBING) {
            jw_info(MOD, "sentinel %s:%d: watching +switch-master", l->host, l->port);
            jw_redislink_up(l);
        } else if (jw_reply_str_eq(k, "message") && r->elements == 3 &&
                   jw_reply_is_str(r->element[2])) {
            watch_message(t, r->element[2]);
        } else if (jw_reply_str_eq(k, "pong")) {
            l->ping_pending = false;
            jw_redislink_disarm(l);
        }
    }
    freeReplyObject(r);
}

static void
watch_timeout(struct jw_redislink *l)
{
    jw_redislink_fail(l, R_SWITCH_TIMEOUT, l->ping_pending ? "no PONG" : NULL);
}

static void
watch_ping(struct jw_redislink *l)
{
    if (!l->ping_pending)
        jw_redislink_send_ping(l);
}

static void
watch_prepare(struct jw_redislink *l)
{
    struct jw_topo *t = l->owner;
    prepare_sentinel(t, l);
    l->discovering = false; /* set again in watch_opened; a failed attempt advances anyway */
    l->seed_idx++;
}

static const struct jw_redislink_role watch_role = {
    .log_prefix = "sentinel watch: ",
    .up_state = JW_LINK_SUBSCRIBED,
    .m_up = JW_M__COUNT,
    .m_errors = JW_M__COUNT,
    .m_reconnect = JW_M__COUNT,
    .m_too_large = JW_M__COUNT,
    .prepare = watch_prepare,
    .opened = watch_opened,
    .reply = watch_reply,
    .timeout = watch_timeout,
    .ping = watch_ping,
};

int
jw_topo_attach(struct jw_topo *t, struct event_base *base, struct ssl_ctx_st *tls)
{
    if (t->mode != JW_TOPO_SENTINEL)
        return 0;
    jw_redislink_init(&t->watch, t->cfg, &watch_role, t, 64u * 1024u);
    jw_redislink_set_tls(&t->watch, tls);
    return jw_redislink_attach(&t->watch, base);
}

void
jw_topo_start(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_redislink_connect(&t->watch);
}

void
jw_topo_stop(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_redislink_stop(&t->watch, "stopped");
}

void
jw_topo_shutdown(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_redislink_shutdown(&t->watch);
}

void
jw_topo_free(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_redislink_free(&t->watch);
    free(t->slots);
    t->slots = NULL;
}
