/*
 * Redis Cluster topology (src/redis/topology.c) and key slots (request.c): the slot function,
 * address parsing, jw_topo_read_slots on crafted CLUSTER SLOTS replies (built by feeding RESP
 * text to a jw_resp reader), the slot map reset on every re-read, node entries reused after
 * jw_topo_forget, seeds never forgotten, jw_topo_complete, the node table bound.
 *
 * The routing test needs a running cluster and is skipped unless JW_TEST_CLUSTER_NODES names
 * seed nodes (tests/integration/test_redis_topologies.py runs it against a 3 + 3 node cluster
 * it starts, after writing the hash ai:job:{k} with userId = its own key for k in a..h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/config.h"
#include "jobwire/rand.h"
#include "jobwire/redis.h"
#include "../../src/redis/request.h"
#include "../../src/redis/resp.h"
#include "../../src/redis/topology.h"

static void
test_keyslot(void **state)
{
    (void)state;
    /* Values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT. */
    assert_int_equal(jw_key_slot("123456789", 9), 12739);
    assert_int_equal(jw_key_slot("foo", 3), 12182);
    assert_int_equal(jw_key_slot("bar", 3), 5061);
    assert_int_equal(jw_key_slot("", 0), 0);
    assert_int_equal(jw_key_slot("{user1000}.following", 20), jw_key_slot("user1000", 8));
    assert_int_equal(jw_key_slot("{user1000}.followers", 20), jw_key_slot("user1000", 8));
    /* "{}" is no tag: the whole key is hashed; the first non-empty tag counts */
    assert_int_not_equal(jw_key_slot("foo{}{bar}", 10), jw_key_slot("bar", 3));
    assert_int_equal(jw_key_slot("foo{{bar}}zap", 13), jw_key_slot("{bar", 4));
    assert_int_equal(jw_key_slot("foo{bar}{zap}", 13), jw_key_slot("bar", 3));
    assert_int_equal(jw_key_slot("{", 1), jw_key_slot("{", 1));
    /* the length is respected (binary keys) */
    assert_int_equal(jw_key_slot("a\0b", 3), jw_key_slot("a\0b", 3));
    assert_int_not_equal(jw_key_slot("a\0b", 3), jw_key_slot("a", 1));
    uint64_t rng = jw_random_seed();
    for (int i = 0; i < 10000; i++) {
        char key[32];
        size_t n = jw_random_below(&rng, sizeof key);
        for (size_t k = 0; k < n; k++)
            key[k] = (char)jw_random_below(&rng, 256);
        assert_true(jw_key_slot(key, n) < JW_CLUSTER_SLOTS);
    }
}

static void
test_parse_addr(void **state)
{
    (void)state;
    char host[16];
    int port = 0;
    assert_int_equal(jw_topo_parse_addr("10.0.0.1:6380", host, sizeof host, &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(jw_topo_parse_addr("[::1]:7000", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
    assert_int_equal(jw_topo_parse_addr("h:1", host, sizeof host, &port), 0);
    assert_int_equal(jw_topo_parse_addr("h:65535", host, sizeof host, &port), 0);
    assert_int_equal(port, 65535);
    static const char *const bad[] = {"h:0",  "h:65536",
                                      "h",    ":1",
                                      "h:",   "h:1a",
                                      "h:-1", "[::1:7000",
                                      "[]:1", "0123456789abcdef:1"}; /* host too long for 16 */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jw_topo_parse_addr(bad[i], host, sizeof host, &port) != -EINVAL)
            fail_msg("\"%s\" was not refused", bad[i]);
    assert_int_equal(jw_topo_parse_addr("0123456789abcde:1", host, sizeof host, &port), 0);
}

/* ---- CLUSTER SLOTS replies ---------------------------------------------------------------- */

static const struct jw_resp_limits limits = {.max_bytes = 1 << 20, .max_elements = 4096};

static struct jw_resp *
resp(const char *text)
{
    struct redisReader *r = jw_resp_reader_new(&limits);
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(r, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(r);
    return reply;
}

/* One range entry: [start, end, [host, port, id], replicas...] as RESP. */
static void
range(char *out, size_t cap, long long lo, long long hi, const char *master, int mport,
      const char *replica, int rport)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "*%d\r\n:%lld\r\n:%lld\r\n*3\r\n$%zu\r\n%s\r\n:%d\r\n$2\r\nid\r\n",
                     replica ? 4 : 3, lo, hi, strlen(master), master, mport);
    if (replica)
        snprintf(buf + n, sizeof buf - (size_t)n, "*3\r\n$%zu\r\n%s\r\n:%d\r\n$2\r\nid\r\n",
                 strlen(replica), replica, rport);
    strncat(out, buf, cap - strlen(out) - 1);
}

static int changed_calls;

static void
on_changed(void *ctx)
{
    (void)ctx;
    changed_calls++;
}

struct topo_fixture {
    struct jw_config cfg;
    struct jw_topo t;
};

static void
topo_start(struct topo_fixture *f, const char *seeds)
{
    char err[256];
    jw_config_defaults(&f->cfg);
    assert_int_equal(jw_config_set(&f->cfg, "redis_cluster_nodes", seeds, err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&f->cfg, err, sizeof err), 0);
    changed_calls = 0;
    jw_topo_init(&f->t, &f->cfg, &(struct jw_topo_hooks){.changed = on_changed, .ctx = NULL});
    assert_int_equal(f->t.mode, JW_TOPO_CLUSTER);
}

static void
topo_end(struct topo_fixture *f)
{
    jw_topo_free(&f->t);
    jw_config_free(&f->cfg);
}

static int
node_of(const struct jw_topo *t, const char *host, int port)
{
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i].used && t->nodes[i].port == port && strcmp(t->nodes[i].host, host) == 0)
            return (int)i;
    return -1;
}

static void
assert_slot(const struct jw_topo *t, unsigned slot, const char *host, int port)
{
    int n = jw_topo_slot_node(t, slot);
    if (!host) {
        if (n != -1)
            fail_msg("slot %u has owner %d, expected none", slot, n);
        return;
    }
    if (n < 0 || strcmp(t->nodes[n].host, host) != 0 || t->nodes[n].port != port)
        fail_msg("slot %u owned by %s:%d, expected %s:%d", slot, n < 0 ? "-" : t->nodes[n].host,
                 n < 0 ? 0 : t->nodes[n].port, host, port);
}

static void
test_read_slots(void **state)
{
    (void)state;
    struct topo_fixture f;
    topo_start(&f, "10.0.0.1:7000,seed.example:7001");
    struct jw_topo *t = &f.t;
    assert_int_equal(t->nnodes, 2);
    assert_true(t->nodes[0].seed && t->nodes[1].seed);
    assert_false(t->nodes[0].master);
    assert_string_equal(t->name_default, "seed.example");
    assert_false(jw_topo_complete(t)); /* no map yet */
    assert_int_equal(jw_topo_slot_node(t, 0), -1);

    char text[4096] = "*3\r\n";
    range(text, sizeof text, 0, 5460, "10.0.0.1", 7000, "10.0.0.4", 7003);
    range(text, sizeof text, 5461, 10922, "10.0.0.2", 7000, "10.0.0.5", 7003);
    range(text, sizeof text, 10923, 16383, "", 7002, NULL, 0); /* "": the node asked */
    struct jw_resp *r = resp(text);
    assert_int_equal(jw_topo_read_slots(t, r, "10.0.0.3"), 3);
    jw_resp_free(r);
    assert_int_equal(changed_calls, 1);
    assert_true(jw_topo_complete(t));
    assert_slot(t, 0, "10.0.0.1", 7000);
    assert_slot(t, 5460, "10.0.0.1", 7000);
    assert_slot(t, 5461, "10.0.0.2", 7000);
    assert_slot(t, 10922, "10.0.0.2", 7000);
    assert_slot(t, 10923, "10.0.0.3", 7002);
    assert_slot(t, 16383, "10.0.0.3", 7002);
    assert_int_equal(jw_topo_slot_node(t, JW_CLUSTER_SLOTS), -1);
    int m1 = node_of(t, "10.0.0.1", 7000), r1 = node_of(t, "10.0.0.4", 7003);
    int seed2 = node_of(t, "seed.example", 7001);
    assert_int_equal(m1, 0); /* the seed entry itself */
    assert_true(t->nodes[m1].master && t->nodes[m1].listed && t->nodes[m1].seed);
    assert_true(r1 >= 0 && !t->nodes[r1].master && t->nodes[r1].listed);
    assert_true(seed2 >= 0 && !t->nodes[seed2].listed && !t->nodes[seed2].master);
    assert_int_equal(t->nnodes, 6); /* 2 seeds (one a master) + 2 masters + 2 replicas */

    /* "?" also names the node asked; the map is rebuilt from scratch on every read */
    char text2[4096] = "*1\r\n";
    range(text2, sizeof text2, 0, 100, "?", 7009, NULL, 0);
    r = resp(text2);
    assert_int_equal(jw_topo_read_slots(t, r, "10.0.0.9"), 1);
    jw_resp_free(r);
    assert_int_equal(changed_calls, 2);
    assert_slot(t, 0, "10.0.0.9", 7009);
    assert_slot(t, 100, "10.0.0.9", 7009);
    assert_slot(t, 101, NULL, 0); /* not its old owner's any more */
    assert_slot(t, 16383, NULL, 0);
    assert_false(jw_topo_complete(t));
    assert_false(t->nodes[m1].master || t->nodes[m1].listed);
    assert_false(t->nodes[r1].listed);

    /* A reply that is not a map changes nothing (and tells nobody). */
    static const char *const not_maps[] = {"-ERR This instance has cluster support disabled\r\n",
                                           ":1\r\n", "$-1\r\n", "+OK\r\n"};
    for (size_t i = 0; i < sizeof not_maps / sizeof not_maps[0]; i++) {
        r = resp(not_maps[i]);
        assert_int_equal(jw_topo_read_slots(t, r, "x"), -1);
        jw_resp_free(r);
    }
    assert_int_equal(jw_topo_read_slots(t, NULL, "x"), -1);
    /* a truncated map is no map */
    struct jw_resp_limits tiny = {.max_bytes = 1 << 20, .max_elements = 3};
    struct redisReader *rd = jw_resp_reader_new(&tiny);
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    redisReaderFree(rd);
    assert_true(((struct jw_resp *)reply)->truncated);
    assert_int_equal(jw_topo_read_slots(t, reply, "x"), -1);
    jw_resp_free(reply);
    assert_int_equal(changed_calls, 2);
    assert_slot(t, 0, "10.0.0.9", 7009);

    /* An empty map: no ranges, nobody told (discovery fails on it), the map is empty now. */
    r = resp("*0\r\n");
    assert_int_equal(jw_topo_read_slots(t, r, "x"), 0);
    jw_resp_free(r);
    assert_int_equal(changed_calls, 2);
    topo_end(&f);
}

static void
test_read_slots_malformed_entries(void **state)
{
    (void)state;
    struct topo_fixture f;
    topo_start(&f, "127.0.0.1:7000");
    struct jw_topo *t = &f.t;
    char text[4096] = "*9\r\n";
    range(text, sizeof text, 0, 99, "127.0.0.1", 7000, NULL, 0);        /* good */
    strcat(text, "*3\r\n$1\r\n1\r\n:200\r\n*2\r\n$1\r\nh\r\n:1\r\n");   /* start not int */
    strcat(text, "*2\r\n:300\r\n:399\r\n");                             /* no node */
    strcat(text, "*3\r\n:400\r\n:499\r\n*2\r\n$1\r\nh\r\n:0\r\n");      /* port 0 */
    strcat(text, "*3\r\n:500\r\n:599\r\n*2\r\n$1\r\nh\r\n:65536\r\n");  /* port too big */
    strcat(text, "*3\r\n:600\r\n:699\r\n*2\r\n:1\r\n:7000\r\n");        /* host not str */
    strcat(text, ":7\r\n");                                             /* not an entry */
    range(text, sizeof text, 16000, 99999, "127.0.0.2", 7000, NULL, 0); /* clamped to 16383 */
    range(text, sizeof text, -5, 3, "127.0.0.3", 7000, NULL, 0);        /* from 0 */
    struct jw_resp *r = resp(text);
    int ranges = jw_topo_read_slots(t, r, "127.0.0.1");
    jw_resp_free(r);
    /* the bad entries own nothing; the good ones do (what exactly counts as a range is the
     * module's business, but no slot may point at a node that was never named) */
    assert_true(ranges >= 3);
    assert_slot(t, 50, "127.0.0.1", 7000);
    assert_slot(t, 16000, "127.0.0.2", 7000);
    assert_slot(t, 16383, "127.0.0.2", 7000);
    assert_slot(t, 0, "127.0.0.3", 7000);
    assert_slot(t, 3, "127.0.0.3", 7000);
    for (unsigned s = 200; s < 700; s++) {
        int n = jw_topo_slot_node(t, s);
        if (n != -1)
            fail_msg("slot %u owned by node %d (%s:%d) from a malformed entry", s, n,
                     t->nodes[n].host, t->nodes[n].port);
    }
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i].used)
            assert_true(t->nodes[i].port >= 1 && t->nodes[i].port <= 65535);
    topo_end(&f);
}

static void
test_forget_and_reuse(void **state)
{
    (void)state;
    struct topo_fixture f;
    topo_start(&f, "127.0.0.1:7000");
    struct jw_topo *t = &f.t;
    char text[4096] = "*2\r\n";
    range(text, sizeof text, 0, 8191, "127.0.0.1", 7001, NULL, 0);
    range(text, sizeof text, 8192, 16383, "127.0.0.1", 7002, NULL, 0);
    struct jw_resp *r = resp(text);
    assert_int_equal(jw_topo_read_slots(t, r, "x"), 2);
    jw_resp_free(r);
    int a = node_of(t, "127.0.0.1", 7001), b = node_of(t, "127.0.0.1", 7002);
    assert_true(a > 0 && b > 0);
    assert_true(jw_topo_complete(t));
    size_t high = t->nnodes;

    /* forgetting a node drops its slots and frees its entry */
    jw_topo_forget(t, a);
    assert_false(t->nodes[a].used);
    assert_slot(t, 0, NULL, 0);
    assert_slot(t, 8191, NULL, 0);
    assert_slot(t, 8192, "127.0.0.1", 7002);
    assert_false(jw_topo_complete(t));
    /* the next new node takes the free entry; the table does not grow */
    int c = jw_topo_node(t, "127.0.0.1", 7003, true);
    assert_int_equal(c, a);
    assert_int_equal(t->nnodes, high);
    assert_true(t->nodes[c].used && t->nodes[c].master && !t->nodes[c].seed && !t->nodes[c].listed);
    /* and owns nothing until told */
    assert_slot(t, 0, NULL, 0);
    for (unsigned s = 0; s < 8192; s++)
        jw_topo_set_slot(t, s, c);
    assert_true(jw_topo_complete(t));
    assert_slot(t, 5, "127.0.0.1", 7003);

    /* a known node is found again (MOVED names it as a master) */
    assert_false(t->nodes[0].master);
    assert_int_equal(jw_topo_node(t, "127.0.0.1", 7000, true), 0);
    assert_true(t->nodes[0].master);
    assert_int_equal(jw_topo_node(t, "127.0.0.1", 7000, false), 0);
    assert_true(t->nodes[0].master); /* not demoted by a mere mention */

    /* seeds are never forgotten; out-of-range indices are ignored */
    jw_topo_forget(t, 0);
    assert_true(t->nodes[0].used && t->nodes[0].seed);
    jw_topo_forget(t, -1);
    jw_topo_forget(t, JW_TOPO_MAX_NODES + 5);
    jw_topo_set_slot(t, JW_CLUSTER_SLOTS, 0); /* ignored */
    jw_topo_set_slot(t, 0, -1);               /* ignored */
    assert_slot(t, 0, "127.0.0.1", 7003);

    /* the table is bounded */
    int last = 0;
    for (int port = 8000; port < 8000 + JW_TOPO_MAX_NODES + 2 && last >= 0; port++)
        last = jw_topo_node(t, "127.0.0.1", port, false);
    assert_int_equal(last, -1);
    assert_int_equal(t->nnodes, JW_TOPO_MAX_NODES);
    /* a host name too long for an entry is refused, not cut */
    char longhost[300];
    memset(longhost, 'h', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    jw_topo_forget(t, b);
    assert_int_equal(jw_topo_node(t, longhost, 1, true), -1);
    topo_end(&f);
}

/* A slot map re-read many times with random owners: every read replaces the whole map. */
static void
test_reread_property(void **state)
{
    (void)state;
    struct topo_fixture f;
    topo_start(&f, "127.0.0.1:7000");
    struct jw_topo *t = &f.t;
    uint64_t rng = jw_random_seed();
    static int want[JW_CLUSTER_SLOTS];
    for (int round = 0; round < 50; round++) {
        char *text = jw_malloc(65536);
        /* disjoint ranges in random order, with gaps, as a cluster in the middle of a
         * resharding reports them */
        int nranges = 0;
        long long lo_of[16], hi_of[16];
        for (long long s = (long long)jw_random_below(&rng, 50);
             s < JW_CLUSTER_SLOTS && nranges < 16;) {
            lo_of[nranges] = s;
            hi_of[nranges] = s + (long long)jw_random_below(&rng, 3000);
            s = hi_of[nranges] + 1 +
                (jw_random_below(&rng, 3) ? 0 : (long long)jw_random_below(&rng, 100));
            nranges++;
        }
        snprintf(text, 65536, "*%d\r\n", nranges);
        for (unsigned s = 0; s < JW_CLUSTER_SLOTS; s++)
            want[s] = -1;
        int order[16];
        for (int k = 0; k < nranges; k++)
            order[k] = k;
        for (int k = nranges - 1; k > 0; k--) { /* not in slot order */
            int j = (int)jw_random_below(&rng, (uint64_t)k + 1), tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        for (int k = 0; k < nranges; k++) {
            int idx = order[k];
            int port = 7001 + (int)jw_random_below(&rng, 5);
            range(text, 65536, lo_of[idx], hi_of[idx], "127.0.0.1", port, NULL, 0);
            for (long long s = lo_of[idx]; s <= hi_of[idx] && s < JW_CLUSTER_SLOTS; s++)
                want[s] = port;
        }
        struct jw_resp *r = resp(text);
        free(text);
        assert_int_equal(jw_topo_read_slots(t, r, "x"), nranges);
        jw_resp_free(r);
        bool complete = true;
        for (unsigned s = 0; s < JW_CLUSTER_SLOTS; s++) {
            int n = jw_topo_slot_node(t, s);
            int got = n < 0 ? -1 : t->nodes[n].port;
            if (got != want[s])
                fail_msg("round %d slot %u: port %d, expected %d", round, s, got, want[s]);
            complete &= want[s] >= 0;
        }
        assert_int_equal(jw_topo_complete(t), complete);
        /* only the nodes of this map are masters */
        for (size_t i = 0; i < t->nnodes; i++) {
            if (!t->nodes[i].used)
                continue;
            bool owns = false;
            for (unsigned s = 0; s < JW_CLUSTER_SLOTS && !owns; s++)
                owns = jw_topo_slot_node(t, s) == (int)i;
            if (t->nodes[i].master != owns && t->nodes[i].listed)
                fail_msg("round %d: node %d master=%d but owns=%d", round, t->nodes[i].port,
                         t->nodes[i].master, owns);
        }
    }
    topo_end(&f);
}

/* ---- against a running cluster -------------------------------------------------------- */

struct ops {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jw_redis_op *got[32];
    size_t n;
};

static void
on_op(void *ctx, struct jw_redis_op *op)
{
    struct ops *o = ctx;
    pthread_mutex_lock(&o->mu);
    if (o->n < 32)
        o->got[o->n++] = op;
    else
        jw_redis_op_free(op);
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void
wait_ops(struct ops *o, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&o->mu);
    while (o->n < n && pthread_cond_timedwait(&o->cv, &o->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&o->mu);
    assert_int_equal(o->n, n);
}

static void
clear_ops(struct ops *o)
{
    for (size_t i = 0; i < o->n; i++)
        jw_redis_op_free(o->got[i]);
    o->n = 0;
}

/* Ops of different nodes come back in any order; each op's tag names it. */
static struct jw_redis_op *
by_tag(struct ops *o, uint64_t tag)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->got[i]->tag == tag)
            return o->got[i];
    fail_msg("no op back for tag %llu", (unsigned long long)tag);
    return NULL;
}

static void
test_cluster_routing(void **state)
{
    (void)state;
    const char *seeds = getenv("JW_TEST_CLUSTER_NODES");
    if (!seeds || !seeds[0])
        skip();
    struct jw_config cfg;
    char err[256];
    jw_config_defaults(&cfg);
    assert_int_equal(jw_config_set(&cfg, "redis_cluster_nodes", seeds, err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&cfg, err, sizeof err), 0);
    struct ops o = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct jw_upstream_hooks hooks = {.on_op = on_op, .ctx = &o};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    for (int i = 0; i < 500 && !jw_upstream_commands_ready(up); i++)
        usleep(20000);
    assert_true(jw_upstream_commands_ready(up));

    /* Jobs in many slots; MOVED is followed whether or not the node connections are up. */
    static const char *const jobs[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 8; i++)
            jw_upstream_submit(up,
                               jw_redis_op_new(i % 2 ? JW_OP_SNAPSHOT : JW_OP_READ_STATE, jobs[i],
                                               "ai:job:__jobwire__:test:m", NULL, NULL, i, 0));
        wait_ops(&o, 8);
        for (size_t i = 0; i < 8; i++) {
            struct jw_redis_op *op = by_tag(&o, i);
            char want[32];
            snprintf(want, sizeof want, "ai:job:%s", jobs[i]);
            assert_int_equal(op->status, 0);
            assert_false(op->exact); /* no marker transaction on a cluster */
            assert_non_null(op->r.state.owner);
            assert_string_equal(op->r.state.owner, want);
            assert_string_equal(op->r.state.source, "hash");
        }
        clear_ops(&o);
        usleep(300000); /* second round: every master has its own connection */
    }
    jw_upstream_submit(up, jw_redis_op_new(JW_OP_REVOKED, "nope", NULL, NULL, NULL, 1, 0));
    jw_upstream_submit(
        up, jw_redis_op_new(JW_OP_PROBE, NULL, "ai:job:__jobwire__:t:p", NULL, NULL, 2, 0));
    wait_ops(&o, 2);
    assert_int_equal(by_tag(&o, 1)->status, 0);
    assert_false(by_tag(&o, 1)->r.revoked);
    assert_int_equal(by_tag(&o, 2)->status, 0);
    clear_ops(&o);
    printf("cluster routing: %d jobs read through their slots' masters\n", 16);
    jw_upstream_stop(up);
    jw_upstream_free(up);
    jw_config_free(&cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyslot),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_read_slots),
        cmocka_unit_test(test_read_slots_malformed_entries),
        cmocka_unit_test(test_forget_and_reuse),
        cmocka_unit_test(test_reread_property),
        cmocka_unit_test(test_cluster_routing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
