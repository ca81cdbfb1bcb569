/*
 * Topology of the Redis side (topology.h): sentinel discovery and the +switch-master watcher,
 * cluster discovery through CLUSTER SLOTS and the slot map.
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
    if (colon[1] < '0' || colon[1] > '9') /* strtol would skip spaces and take a sign */
        return -EINVAL;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535 || h_end <= h || (size_t)(h_end - h) >= hostlen)
        return -EINVAL;
    memcpy(host, h, (size_t)(h_end - h));
    host[h_end - h] = '\0';
    *port = (int)p;
    return 0;
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
    int free_entry = -1;
    for (size_t i = 0; i < t->nnodes; i++) {
        struct jw_topo_node *n = &t->nodes[i];
        if (!n->used) {
            free_entry = free_entry < 0 ? (int)i : free_entry;
        } else if (n->port == port && strcmp(n->host, host) == 0) {
            n->master |= master;
            return (int)i;
        }
    }
    if (strlen(host) >= sizeof t->nodes[0].host)
        return -1;
    if (free_entry < 0) {
        if (t->nnodes == JW_TOPO_MAX_NODES)
            return -1;
        free_entry = (int)t->nnodes++;
    }
    struct jw_topo_node *n = &t->nodes[free_entry];
    memset(n, 0, sizeof *n);
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->used = true;
    n->master = master;
    return free_entry;
}

void
jw_topo_forget(struct jw_topo *t, int i)
{
    if (i < 0 || (size_t)i >= t->nnodes || t->nodes[i].seed)
        return;
    for (unsigned s = 0; s < JW_CLUSTER_SLOTS; s++)
        if (t->slots[s] == (uint16_t)(i + 1))
            t->slots[s] = 0;
    memset(&t->nodes[i], 0, sizeof t->nodes[i]);
}

bool
jw_topo_complete(const struct jw_topo *t)
{
    if (!t->slots)
        return true;
    for (unsigned s = 0; s < JW_CLUSTER_SLOTS; s++)
        if (!t->slots[s])
            return false;
    return true;
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
jw_topo_init(struct jw_topo *t, const struct jw_config *cfg, const struct jw_topo_hooks *h)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->hooks = *h;
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
                int n = jw_topo_node(t, host, port, false);
                if (n >= 0)
                    t->nodes[n].seed = true;
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
jw_topo_set_tls_name(const struct jw_topo *t, struct jw_link *l)
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
prepare_sentinel(struct jw_topo *t, struct jw_link *l)
{
    const struct jw_config *c = t->cfg;
    if (l->discovering)
        l->seed_idx++; /* the previous attempt never got an answer from its sentinel */
    char host[256];
    int port = 0;
    const char *s = c->redis_sentinels[l->seed_idx % c->redis_nsentinels];
    if (jw_topo_parse_addr(s, host, sizeof host, &port) != 0)
        snprintf(host, sizeof host, "%s", s); /* config.c validated it; defensive */
    jw_link_set_target(l, host, port);
    l->username = NULL;
    l->password = c->redis_sentinel_password;
    l->discovering = true;
    jw_topo_set_tls_name(t, l);
}

void
jw_topo_prepare(struct jw_topo *t, struct jw_link *l)
{
    switch (t->mode) {
    case JW_TOPO_SENTINEL:
        prepare_sentinel(t, l);
        break;
    case JW_TOPO_CLUSTER: {
        /* Round robin: every new attempt goes to the next known node, so a node that died
         * (or a link that failed for any reason) is left for another one. Entry 0 is a seed
         * and seeds are never forgotten, so the walk always finds one. */
        const struct jw_topo_node *n;
        do
            n = &t->nodes[l->seed_idx++ % t->nnodes];
        while (!n->used);
        jw_link_set_target(l, n->host, n->port);
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
jw_topo_opened(struct jw_topo *t, struct jw_link *l)
{
    if (!l->discovering)
        return false;
    if (t->mode == JW_TOPO_SENTINEL) {
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
                               t->cfg->redis_sentinel_master};
        jw_link_send(l, 3, argv);
    } else {
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        jw_link_send(l, 2, argv);
    }
    jw_link_set_state(l, JW_LINK_CONNECTING, NULL);
    jw_link_arm(l, (uint64_t)t->cfg->redis_read_timeout_ms);
    return true;
}

static const struct jw_resp *
at(const struct jw_resp *r, size_t i)
{
    return r && r->type == JW_RESP_ARRAY && i < r->elements ? r->element[i] : NULL;
}

static bool
is_int(const struct jw_resp *r)
{
    return r && r->type == JW_RESP_INTEGER;
}

/* [ip, port] from SENTINEL get-master-addr-by-name; false when it is anything else. */
static bool
master_addr(const struct jw_resp *r, char *host, size_t hostlen, int *port)
{
    if (r->type != JW_RESP_ARRAY || r->elements != 2 || !jw_resp_is_str(at(r, 0)) ||
        !jw_resp_is_str(at(r, 1)) || r->element[0]->len == 0 || r->element[0]->len >= hostlen)
        return false;
    memcpy(host, r->element[0]->str, r->element[0]->len);
    host[r->element[0]->len] = '\0';
    long p = strtol(r->element[1]->str, NULL, 10);
    *port = (int)p;
    return p >= 1 && p <= 65535;
}

/* One node of a CLUSTER SLOTS range: [endpoint, port, id, ...]; "" or "?" = the host asked. */
static int
slots_node(struct jw_topo *t, const struct jw_resp *n, const char *asked, bool master)
{
    const struct jw_resp *h = at(n, 0), *p = at(n, 1);
    if (!jw_resp_is_str(h) || !is_int(p) || p->integer < 1 || p->integer > 65535)
        return -1;
    char host[256];
    for (size_t i = 0; i < h->len; i++)
        if (h->str[i] <= ' ' || h->str[i] > '~')
            return -1; /* no host name or address has NUL, spaces or controls: a broken reply */
    if (h->len == 0 || (h->len == 1 && h->str[0] == '?') || h->len >= sizeof host)
        snprintf(host, sizeof host, "%s", asked);
    else
        snprintf(host, sizeof host, "%.*s", (int)h->len, h->str);
    int i = jw_topo_node(t, host, (int)p->integer, master);
    if (i >= 0)
        t->nodes[i].listed = true;
    return i;
}

int
jw_topo_read_slots(struct jw_topo *t, const struct jw_resp *r, const char *asked)
{
    if (!r || r->type != JW_RESP_ARRAY || r->truncated)
        return -1;
    for (size_t i = 0; i < t->nnodes; i++)
        t->nodes[i].master = t->nodes[i].listed = false;
    /* A fresh map: slots the reply does not name are unknown, not their old owner's. */
    memset(t->slots, 0, JW_CLUSTER_SLOTS * sizeof t->slots[0]);
    int ranges = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const struct jw_resp *e = r->element[i];
        if (!is_int(at(e, 0)) || !is_int(at(e, 1)) || !at(e, 2))
            continue;
        int master = slots_node(t, at(e, 2), asked, true);
        for (size_t k = 3; k < e->elements; k++)
            (void)slots_node(t, at(e, k), asked, false);
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        for (long long s = lo < 0 ? 0 : lo; s <= hi && s < JW_CLUSTER_SLOTS; s++)
            jw_topo_set_slot(t, (unsigned)s, master);
        ranges++;
    }
    if (ranges > 0 && t->hooks.changed)
        t->hooks.changed(t->hooks.ctx);
    return ranges;
}

enum jw_topo_result
jw_topo_reply(struct jw_topo *t, struct jw_link *l, const struct jw_resp *r)
{
    char detail[320];
    if (r->type == JW_RESP_ERROR) {
        jw_link_fail(l, R_DISCOVERY, r->str);
        return JW_TOPO_WAIT;
    }
    if (t->mode == JW_TOPO_SENTINEL) {
        char host[256];
        int port;
        if (!master_addr(r, host, sizeof host, &port)) {
            snprintf(detail, sizeof detail, "the sentinel does not know master '%.100s'",
                     t->cfg->redis_sentinel_master);
            jw_link_fail(l, R_DISCOVERY, detail);
            return JW_TOPO_WAIT;
        }
        if (strcmp(host, t->master_host) != 0 || port != t->master_port) {
            jw_info(MOD, "sentinel %s:%d: master '%s' is at %s:%d", l->host, l->port,
                    t->cfg->redis_sentinel_master, host, port);
            snprintf(t->master_host, sizeof t->master_host, "%s", host);
            t->master_port = port;
        }
        l->discovering = false;
        jw_link_redirect(l, host, port, t->cfg->redis_username, t->cfg->redis_password);
        jw_topo_set_tls_name(t, l);
        return JW_TOPO_WAIT;
    }
    l->discovering = false; /* before the hooks run: they may look at this link */
    int ranges = jw_topo_read_slots(t, r, l->host);
    if (ranges <= 0) {
        l->discovering = true;
        jw_link_fail(l, R_DISCOVERY,
                     ranges < 0 ? "unexpected reply to CLUSTER SLOTS"
                                : "the cluster has no slots assigned");
        return JW_TOPO_WAIT;
    }
    jw_debug(MOD, "cluster node %s:%d: %d slot range(s), %zu known node(s)", l->host, l->port,
             ranges, t->nnodes);
    return JW_TOPO_CONTINUE;
}

/* ---- sentinel watcher: SUBSCRIBE +switch-master on one sentinel ---- */

static void
watch_opened(struct jw_link *l)
{
    /* Ask first: a switch may have happened while no sentinel was watched. */
    l->discovering = true;
    (void)jw_topo_opened(l->owner, l);
}

static void
watch_subscribe(struct jw_link *l)
{
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
    jw_link_send(l, 2, argv);
    jw_link_set_state(l, JW_LINK_SUBSCRIBING, NULL);
    jw_link_arm(l, (uint64_t)l->cfg->redis_read_timeout_ms);
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
    if (t->hooks.changed)
        t->hooks.changed(t->hooks.ctx);
}

static void
watch_message(struct jw_topo *t, const struct jw_resp *payload)
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
watch_reply(struct jw_link *l, struct jw_resp *r)
{
    struct jw_topo *t = l->owner;
    if (l->discovering) {
        char host[256];
        int port;
        l->discovering = false;
        if (r->type == JW_RESP_ERROR) {
            jw_link_fail(l, R_ERROR_REPLY, r->str);
        } else {
            if (master_addr(r, host, sizeof host, &port) && t->master_host[0])
                moved_to(t, host, port, "sentinel answer");
            watch_subscribe(l);
        }
        jw_resp_free(r);
        return;
    }
    if (r->type == JW_RESP_ERROR) {
        jw_link_fail(l, R_ERROR_REPLY, r->str);
    } else if (jw_resp_is_str(at(r, 0))) {
        const struct jw_resp *k = r->element[0];
        if (jw_resp_str_eq(k, "subscribe") && jw_link_state(l) == JW_LINK_SUBSCRIBING) {
            jw_info(MOD, "sentinel %s:%d: watching +switch-master", l->host, l->port);
            jw_link_up(l);
        } else if (jw_resp_str_eq(k, "message") && r->elements == 3 && jw_resp_is_str(at(r, 2))) {
            watch_message(t, r->element[2]);
        } else if (jw_resp_str_eq(k, "pong")) {
            l->ping_pending = false;
            jw_link_disarm(l);
        }
    }
    jw_resp_free(r);
}

static void
watch_timeout(struct jw_link *l)
{
    jw_link_fail(l, R_SWITCH_TIMEOUT, l->ping_pending ? "no PONG" : NULL);
}

static void
watch_ping(struct jw_link *l)
{
    if (!l->ping_pending)
        jw_link_send_ping(l);
}

static void
watch_prepare(struct jw_link *l)
{
    struct jw_topo *t = l->owner;
    prepare_sentinel(t, l);
    l->discovering = false; /* set again in watch_opened; a failed attempt advances anyway */
    l->seed_idx++;
}

static const struct jw_link_role watch_role = {
    .log_prefix = "sentinel watch: ",
    .up_state = JW_LINK_SUBSCRIBED,
    .m_up = JW_M__COUNT,
    .m_errors = JW_M__COUNT,
    .m_reconnect = JW_M__COUNT,
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
    jw_link_init(&t->watch, t->cfg, &watch_role, t);
    jw_link_set_tls(&t->watch, tls);
    return jw_link_attach(&t->watch, base);
}

void
jw_topo_start(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_link_connect(&t->watch);
}

void
jw_topo_stop(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_link_stop(&t->watch, "stopped");
}

void
jw_topo_shutdown(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_link_shutdown(&t->watch);
}

void
jw_topo_free(struct jw_topo *t)
{
    if (t->mode == JW_TOPO_SENTINEL)
        jw_link_free(&t->watch);
    free(t->slots);
    t->slots = NULL;
}
