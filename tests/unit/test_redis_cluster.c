/*
 * Cluster routing of the command connections (upcommand.c) and the key slot function
 * (redistopo.c). The slot tests always run; the routing test needs a running cluster and is
 * skipped unless JW_TEST_CLUSTER_NODES names seed nodes (tests/integration/
 * test_redis_topologies.py runs it against a 3 + 3 node cluster it starts).
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

#include "jobwire/config.h"
#include "../../src/redis/request.h"
#include "../../src/redis/topology.h"
#include "jobwire/redis.h"

static void
test_keyslot(void **state)
{
    (void)state;
    /* Values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT. */
    assert_int_equal(jw_cluster_keyslot("123456789", 9), 12739);
    assert_int_equal(jw_cluster_keyslot("foo", 3), 12182);
    assert_int_equal(jw_cluster_keyslot("{user1000}.following", 20),
                     jw_cluster_keyslot("user1000", 8));
    assert_int_equal(jw_cluster_keyslot("foo{}{bar}", 10), jw_cluster_keyslot("foo{}{bar}", 10));
    assert_int_not_equal(jw_cluster_keyslot("foo{}{bar}", 10), jw_cluster_keyslot("bar", 3));
    assert_int_equal(jw_cluster_keyslot("foo{{bar}}zap", 13), jw_cluster_keyslot("{bar", 4));
}

static void
test_parse_addr(void **state)
{
    char host[64];
    int port = 0;
    (void)state;
    assert_int_equal(jw_topo_parse_addr("10.0.0.1:6380", host, sizeof host, &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(jw_topo_parse_addr("[::1]:7000", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(jw_topo_parse_addr("h:0", host, sizeof host, &port), -EINVAL);
    assert_int_equal(jw_topo_parse_addr("h", host, sizeof host, &port), -EINVAL);
    assert_int_equal(jw_topo_parse_addr(":1", host, sizeof host, &port), -EINVAL);
}

/* ---- against a running cluster ---- */

struct replies {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct jw_redis_request *got[16];
    size_t n;
};

static void
on_reply(void *ctx, struct jw_redis_request *req)
{
    struct replies *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (r->n < 16)
        r->got[r->n++] = req;
    else
        jw_redis_request_free(req);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void
wait_replies(struct replies *r, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&r->mu);
    while (r->n < n && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(r->n, n);
}

static void
clear(struct replies *r)
{
    for (size_t i = 0; i < r->n; i++)
        jw_redis_request_free(r->got[i]);
    r->n = 0;
}

static void
submit(struct jw_upstream *up, uint64_t tag, int argc, const char **argv)
{
    jw_upstream_submit(up, jw_redis_request_new(argc, argv, NULL, NULL, NULL, tag));
}

/* Replies of different nodes come back in any order; each request's tag names it. */
static struct jw_redis_request *
by_tag(struct replies *r, uint64_t tag)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->got[i]->tag == tag)
            return r->got[i];
    fail_msg("no reply for tag %llu", (unsigned long long)tag);
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
    struct replies r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct jw_upstream_hooks hooks = {.on_reply = on_reply, .ctx = &r};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    assert_int_equal(jw_upstream_is_cluster(up), 1);
    for (int i = 0; i < 200 && !jw_upstream_command_ready(up); i++)
        usleep(20000);
    assert_int_equal(jw_upstream_command_ready(up), 1);

    /* Keys in many slots (the test wrote field userId = the key); MOVED is followed whether or
     * not the per-node connections are up yet. */
    static const char *const keys[] = {"ai:job:a", "ai:job:b", "ai:job:c", "ai:job:d",
                                       "ai:job:e", "ai:job:f", "ai:job:g", "ai:job:h"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 8; i++) {
            const char *argv[3] = {"HGET", keys[i], "userId"};
            submit(up, i, 3, argv);
        }
        wait_replies(&r, 8);
        for (size_t i = 0; i < 8; i++) {
            struct jw_redis_request *q = by_tag(&r, i);
            assert_int_equal(q->status, 0);
            assert_int_equal(q->reply->type, REDIS_REPLY_STRING);
            assert_string_equal(q->reply->str, keys[i]);
        }
        clear(&r);
        usleep(300000); /* second round: every master has its own connection */
    }

    /* A one-key transaction goes to the key's node. */
    const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
    const char *pub[3] = {"PUBLISH", "jw:test", "x"}, *hgetall[2] = {"HGETALL", "ai:job:c"};
    const char *get[2] = {"GET", "ai:job:status:c"};
    submit(up, 0, 1, multi);
    submit(up, 1, 3, pub);
    submit(up, 2, 2, hgetall);
    submit(up, 3, 1, exec);
    wait_replies(&r, 4);
    assert_int_equal(by_tag(&r, 3)->status, 0);
    assert_int_equal(by_tag(&r, 3)->reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(by_tag(&r, 3)->reply->elements, 2);
    assert_int_equal(by_tag(&r, 3)->reply->element[1]->type, REDIS_REPLY_ARRAY);
    clear(&r);

    /* Two keys in different slots: the transaction fails (the gateway must not do this). */
    submit(up, 0, 1, multi);
    submit(up, 1, 3, pub);
    submit(up, 2, 2, hgetall);
    submit(up, 3, 2, get);
    submit(up, 4, 1, exec);
    wait_replies(&r, 5);
    struct jw_redis_request *g = by_tag(&r, 3), *x = by_tag(&r, 4);
    assert_int_equal(x->status, 0);
    assert_int_equal(x->reply->type, REDIS_REPLY_ERROR);
    printf("cross-slot transaction: GET answered '%s', EXEC answered '%s'\n",
           g->reply->type == REDIS_REPLY_ERROR ? g->reply->str : "(not an error)", x->reply->str);
    clear(&r);

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
        cmocka_unit_test(test_cluster_routing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
