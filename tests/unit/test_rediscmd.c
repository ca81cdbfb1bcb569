/*
 * Tests for the command connection of upstream.c (rediscmd.h requests) against a real
 * redis-server (Debian's /usr/bin/redis-server) on a free port, as test_upstream.c does:
 * HSET/HGET round trip, 100 pipelined requests in order, -ENOTCONN while Redis is down, a frozen
 * (SIGSTOPped) server giving -ETIMEDOUT and then recovering, in-flight requests on a killed
 * server, SIGKILL and restart, idle health PING, the pending bound, stop with requests pending,
 * requirepass, and a NULL on_reply hook. Every wait is a poll with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/config.h"
#include "jobwire/metrics.h"
#include "../../src/redis/request.h"
#include "jobwire/redis.h"

#include "redis_harness.h"

static void
test_config(struct jw_config *cfg, int port, const char *password)
{
    harness_config(cfg, port, password);
}

/* ---- what on_reply handed back (as the gateway would: a list, in arrival order) ---- */

struct replies {
    pthread_mutex_t mu;
    struct jw_msg *head, **tail;
    int n;
    int on_caller_thread; /* handed back on the thread that created `struct replies` */
    pthread_t creator;
    int done_calls; /* counted by req_done via jw_redis_request_complete */
};

static void
on_reply(void *ctx, struct jw_redis_request *req)
{
    struct replies *r = ctx;
    pthread_mutex_lock(&r->mu);
    req->msg.next = NULL;
    *r->tail = &req->msg;
    r->tail = &req->msg.next;
    r->n++;
    if (pthread_equal(pthread_self(), r->creator))
        r->on_caller_thread++;
    pthread_mutex_unlock(&r->mu);
}

static void
replies_init(struct replies *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->tail = &r->head;
    r->creator = pthread_self();
}

static int
replies_count(struct replies *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void
wait_replies(struct replies *r, int want, const char *what)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (replies_count(r) < want) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for %s (%d < %d)", what, replies_count(r), want);
        nap_ms(2);
    }
}

/* Takes the oldest reply out of the list; NULL if none. */
static struct jw_redis_request *
replies_pop(struct replies *r)
{
    pthread_mutex_lock(&r->mu);
    struct jw_msg *msg = r->head;
    if (msg) {
        r->head = msg->next;
        if (!r->head)
            r->tail = &r->head;
        r->n--;
    }
    pthread_mutex_unlock(&r->mu);
    return (struct jw_redis_request *)msg; /* msg is the first member */
}

static void
replies_destroy(struct replies *r)
{
    struct jw_redis_request *req;
    while ((req = replies_pop(r)))
        jw_redis_request_free(req);
    pthread_mutex_destroy(&r->mu);
}

static void
req_done(struct jw_redis_request *req)
{
    struct replies *r = req->ctx;
    r->done_calls++;
}

static struct jw_redis_request *
req_new(struct replies *r, uint64_t tag, int argc, ...)
{
    const char *argv[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 8; i++)
        argv[i] = va_arg(ap, const char *);
    va_end(ap);
    struct jw_redis_request *req = jw_redis_request_new(argc, argv, NULL, req_done, r, tag);
    assert_int_equal(req->msg.type, JW_MSG_REDIS_REPLY);
    return req;
}

/* Submits one request and waits for it to come back; the caller completes or frees it. */
static struct jw_redis_request *
roundtrip(struct jw_upstream *up, struct replies *r, struct jw_redis_request *req)
{
    int before = replies_count(r);
    jw_upstream_submit(up, req);
    wait_replies(r, before + 1, "a reply");
    return replies_pop(r);
}

static void
wait_ready(struct jw_upstream *up, int ready)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (jw_upstream_command_ready(up) != ready) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for the command link to be %s", ready ? "up" : "down");
        nap_ms(5);
    }
}

/* Submits PINGs until one is answered (the link has recovered); bounded by WAIT_MS. */
static void
wait_answered(struct jw_upstream *up, struct replies *r)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        struct jw_redis_request *req = roundtrip(up, r, req_new(r, 0, 1, "PING"));
        int ok = req->status == 0;
        jw_redis_request_free(req);
        if (ok)
            return;
        if (now_ms() > deadline)
            fail_msg("the command link did not recover");
        nap_ms(10);
    }
}

struct fixture {
    struct jw_config cfg;
    struct replies r;
    struct jw_upstream *up;
};

/* The configuration is read-only once the thread runs: timeouts are passed in here. */
static void
fixture_start(struct fixture *f, int port, const char *password, int read_timeout_ms,
              int ping_interval_ms)
{
    test_config(&f->cfg, port, password);
    f->cfg.redis_read_timeout_ms = read_timeout_ms;
    f->cfg.redis_ping_interval_ms = ping_interval_ms;
    replies_init(&f->r);
    struct jw_upstream_hooks hooks = {.on_reply = on_reply, .ctx = &f->r};
    f->up = jw_upstream_new(&f->cfg, &hooks);
    assert_int_equal(jw_upstream_start(f->up), 0);
}

static void
fixture_end(struct fixture *f)
{
    jw_upstream_free(f->up);
    replies_destroy(&f->r);
    jw_config_free(&f->cfg);
}

/* ---- tests ---- */

static void
test_hset_hget(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_start(&f, port, NULL, 2000, 0);
    wait_ready(f.up, 1);
    assert_int_equal(jw_metric_get(JW_M_COMMAND_LINK_UP), 1);
    int64_t sent0 = jw_metric_get(JW_M_REDIS_COMMANDS);

    struct jw_redis_request *req =
        roundtrip(f.up, &f.r, req_new(&f.r, 1, 4, "HSET", "ai:job:j1", "owner", "u_42"));
    assert_int_equal(req->status, 0);
    assert_int_equal(req->reply->type, REDIS_REPLY_INTEGER);
    jw_redis_request_complete(req);
    assert_int_equal(f.r.done_calls, 1);

    req = roundtrip(f.up, &f.r, req_new(&f.r, 2, 3, "HGET", "ai:job:j1", "owner"));
    assert_int_equal(req->status, 0);
    assert_int_equal(req->tag, 2);
    assert_int_equal(req->reply->type, REDIS_REPLY_STRING);
    assert_string_equal(req->reply->str, "u_42");
    jw_redis_request_free(req);

    /* Binary-safe arguments, and a Redis error reply is a reply (status 0). */
    const char *argv[3] = {"SET", "bin", "a\0b"};
    size_t argvlen[3] = {3, 3, 3};
    req = roundtrip(f.up, &f.r, jw_redis_request_new(3, argv, argvlen, NULL, NULL, 3));
    assert_int_equal(req->status, 0);
    jw_redis_request_free(req);
    req = roundtrip(f.up, &f.r, req_new(&f.r, 4, 2, "GET", "bin"));
    assert_int_equal(req->reply->type, REDIS_REPLY_STRING);
    assert_int_equal(req->reply->len, 3);
    assert_memory_equal(req->reply->str, "a\0b", 3);
    jw_redis_request_free(req);
    req = roundtrip(f.up, &f.r, req_new(&f.r, 5, 3, "HGET", "bin", "x"));
    assert_int_equal(req->status, 0);
    assert_int_equal(req->reply->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(req->reply->str, "WRONGTYPE"));
    jw_redis_request_free(req);
    assert_true(jw_upstream_command_ready(f.up)); /* an error reply does not break the link */

    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMANDS), sent0 + 5);
    assert_int_equal(f.r.on_caller_thread, 0); /* on_reply ran on the upstream thread */
    fixture_end(&f);
    assert_int_equal(jw_metric_get(JW_M_COMMAND_LINK_UP), 0);
    redis_kill(pid);
}

static void
test_pipeline_in_order(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_start(&f, port, NULL, 2000, 0);
    wait_ready(f.up, 1);

    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        char val[16];
        snprintf(val, sizeof val, "v%d", i);
        /* Odd ones read back what the even one before them wrote. */
        if (i % 2 == 0)
            jw_upstream_submit(f.up, req_new(&f.r, (uint64_t)i, 3, "SET", "pipe", val));
        else
            jw_upstream_submit(f.up, req_new(&f.r, (uint64_t)i, 2, "GET", "pipe"));
    }
    wait_replies(&f.r, N, "100 pipelined replies");
    for (int i = 0; i < N; i++) {
        struct jw_redis_request *req = replies_pop(&f.r);
        assert_non_null(req);
        assert_int_equal(req->tag, (uint64_t)i);
        assert_int_equal(req->status, 0);
        if (i % 2 == 0) {
            assert_int_equal(req->reply->type, REDIS_REPLY_STATUS);
            assert_string_equal(req->reply->str, "OK");
        } else {
            char want[16];
            snprintf(want, sizeof want, "v%d", i - 1);
            assert_int_equal(req->reply->type, REDIS_REPLY_STRING);
            assert_string_equal(req->reply->str, want);
        }
        jw_redis_request_free(req);
    }
    fixture_end(&f);
    redis_kill(pid);
}

static void
test_down_not_connected(void **state)
{
    struct fixture f;
    fixture_start(&f, free_port(), NULL, 2000, 0); /* nothing listens there */
    int64_t nc0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED);
    uint64_t t0 = now_ms();
    for (int i = 0; i < 5; i++)
        jw_upstream_submit(f.up, req_new(&f.r, (uint64_t)i, 2, "GET", "k"));
    wait_replies(&f.r, 5, "-ENOTCONN replies");
    assert_true(now_ms() - t0 < 1000);
    for (int i = 0; i < 5; i++) {
        struct jw_redis_request *req = replies_pop(&f.r);
        assert_int_equal(req->status, -ENOTCONN);
        assert_null(req->reply);
        jw_redis_request_free(req);
    }
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED), nc0 + 5);
    assert_false(jw_upstream_command_ready(f.up));
    fixture_end(&f);
}

static void
test_frozen_server_times_out_then_recovers(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_start(&f, port, NULL, 800, 0);
    wait_ready(f.up, 1);
    wait_answered(f.up, &f.r);
    int64_t to0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT);

    kill(pid, SIGSTOP);
    uint64_t t0 = now_ms();
    struct jw_redis_request *req = roundtrip(f.up, &f.r, req_new(&f.r, 1, 2, "GET", "k"));
    uint64_t took = now_ms() - t0;
    assert_int_equal(req->status, -ETIMEDOUT);
    assert_null(req->reply);
    jw_redis_request_free(req);
    assert_true(took >= 700); /* not before the read timeout ... */
    assert_true(took < 2000); /* ... and not much after it */
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT), to0 + 1);
    /* The connection was dropped; a frozen server never completes the opening PING. */
    wait_ready(f.up, 0);

    kill(pid, SIGCONT);
    wait_answered(f.up, &f.r);
    req = roundtrip(f.up, &f.r, req_new(&f.r, 2, 3, "SET", "k", "thawed"));
    assert_int_equal(req->status, 0);
    jw_redis_request_free(req);
    req = roundtrip(f.up, &f.r, req_new(&f.r, 3, 2, "GET", "k"));
    assert_int_equal(req->status, 0);
    assert_string_equal(req->reply->str, "thawed");
    jw_redis_request_free(req);
    fixture_end(&f);
    redis_kill(pid);
}

static void
test_idle_ping_finds_frozen_server(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_start(&f, port, NULL, 500, 500);
    wait_ready(f.up, 1);

    /* No request at all: only the idle PING can find the frozen server. */
    kill(pid, SIGSTOP);
    wait_ready(f.up, 0);
    assert_int_equal(jw_metric_get(JW_M_COMMAND_LINK_UP), 0);
    kill(pid, SIGCONT);
    wait_ready(f.up, 1);
    wait_answered(f.up, &f.r);
    fixture_end(&f);
    redis_kill(pid);
}

static void
test_kill_and_restart(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_start(&f, port, NULL, 30000, 0);
    wait_ready(f.up, 1);
    wait_answered(f.up, &f.r);

    /* Requests in flight when the server dies come back -ENOTCONN, long before the timeout:
     * freeze it so they stay unanswered, then kill it. */
    kill(pid, SIGSTOP);
    for (int i = 0; i < 3; i++)
        jw_upstream_submit(f.up, req_new(&f.r, (uint64_t)i, 2, "GET", "k"));
    uint64_t t0 = now_ms();
    redis_kill(pid);
    wait_replies(&f.r, 3, "in-flight requests after kill");
    assert_true(now_ms() - t0 < 5000);
    for (int i = 0; i < 3; i++) {
        struct jw_redis_request *req = replies_pop(&f.r);
        assert_int_equal(req->tag, (uint64_t)i);
        assert_int_equal(req->status, -ENOTCONN);
        jw_redis_request_free(req);
    }
    wait_ready(f.up, 0);
    struct jw_redis_request *req = roundtrip(f.up, &f.r, req_new(&f.r, 9, 1, "PING"));
    assert_int_equal(req->status, -ENOTCONN);
    jw_redis_request_free(req);

    pid = redis_start(port, NULL);
    wait_ready(f.up, 1);
    req = roundtrip(f.up, &f.r, req_new(&f.r, 10, 3, "SET", "after", "restart"));
    assert_int_equal(req->status, 0);
    jw_redis_request_free(req);
    fixture_end(&f);
    redis_kill(pid);
}

static void
test_stop_cancels_pending(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_start(&f, port, NULL, 60000, 0);
    wait_ready(f.up, 1);
    wait_answered(f.up, &f.r);
    int64_t canceled0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_CANCELED);
    int64_t overflow0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_OVERFLOW);

    /* Frozen server: everything stays in flight. One more than the bound overflows. */
    kill(pid, SIGSTOP);
    enum { N = JW_UPSTREAM_MAX_PENDING + 1 };
    for (int i = 0; i < N; i++)
        jw_upstream_submit(f.up, req_new(&f.r, (uint64_t)i, 2, "GET", "k"));
    wait_replies(&f.r, 1, "the overflow");
    struct jw_redis_request *req = replies_pop(&f.r);
    assert_int_equal(req->status, -ENOBUFS);
    assert_int_equal(req->tag, (uint64_t)(N - 1));
    jw_redis_request_free(req);
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_OVERFLOW), overflow0 + 1);

    /* A few more that may still sit in the submission queue when the stop arrives. */
    for (int i = 0; i < 10; i++)
        jw_upstream_submit(f.up, req_new(&f.r, (uint64_t)(N + i), 1, "PING"));
    jw_upstream_stop(f.up);
    /* Every one is back, before stop returned: the ones in flight canceled, the late ones
     * canceled or (if the loop took them before the stop) over the bound. */
    assert_int_equal(replies_count(&f.r), N - 1 + 10);
    for (int i = 0; i < N - 1 + 10; i++) {
        req = replies_pop(&f.r);
        if (req->tag < (uint64_t)(N - 1))
            assert_int_equal(req->status, -ECANCELED);
        else
            assert_true(req->status == -ECANCELED || req->status == -ENOBUFS);
        assert_null(req->reply);
        jw_redis_request_free(req);
    }
    assert_true(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_CANCELED) >= canceled0 + N - 1);
    assert_int_equal(f.r.on_caller_thread, 0);

    /* After stop: back at once, on this thread. */
    req = roundtrip(f.up, &f.r, req_new(&f.r, 1, 1, "PING"));
    assert_int_equal(req->status, -ECANCELED);
    assert_int_equal(f.r.on_caller_thread, 1);
    jw_redis_request_free(req);
    kill(pid, SIGCONT);
    fixture_end(&f);
    redis_kill(pid);

    /* Never started: the same. */
    struct jw_config cfg;
    test_config(&cfg, 1, NULL);
    struct replies r;
    replies_init(&r);
    struct jw_upstream_hooks hooks = {.on_reply = on_reply, .ctx = &r};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    jw_upstream_submit(up, req_new(&r, 1, 1, "PING"));
    assert_int_equal(replies_count(&r), 1);
    assert_int_equal(r.on_caller_thread, 1);
    req = replies_pop(&r);
    assert_int_equal(req->status, -ECANCELED);
    jw_redis_request_free(req);
    jw_upstream_free(up);
    replies_destroy(&r);
    jw_config_free(&cfg);
}

/* Polls the captured log until `needle` appears `times` times. */
static void
wait_log(int logfd, const char *needle, int times)
{
    static char log[65536];
    uint64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        fflush(stderr);
        ssize_t n = pread(logfd, log, sizeof log - 1, 0);
        log[n > 0 ? n : 0] = '\0';
        int count = 0;
        for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
            count++;
        if (count >= times)
            return;
        if (now_ms() > deadline)
            fail_msg("timed out waiting for \"%s\" x%d in the log", needle, times);
        nap_ms(10);
    }
}

static void
test_requirepass(void **state)
{
    const char *secret = "s3cret-Pa55";
    int port = free_port();
    pid_t pid = redis_start(port, secret);

    /* The right password: READY, and commands work. */
    struct fixture f;
    fixture_start(&f, port, secret, 2000, 0);
    wait_ready(f.up, 1);
    struct jw_redis_request *req =
        roundtrip(f.up, &f.r, req_new(&f.r, 1, 4, "HSET", "ai:job:j7", "owner", "u_7"));
    assert_int_equal(req->status, 0);
    assert_int_equal(req->reply->type, REDIS_REPLY_INTEGER);
    jw_redis_request_free(req);
    req = roundtrip(f.up, &f.r, req_new(&f.r, 2, 3, "HGET", "ai:job:j7", "owner"));
    assert_string_equal(req->reply->str, "u_7");
    jw_redis_request_free(req);
    fixture_end(&f);

    /* No password: the opening PING is refused (NOAUTH); never READY, requests -ENOTCONN. */
    char path[] = "/tmp/jw_test_rediscmd_XXXXXX";
    int logfd = mkstemp(path);
    assert_true(logfd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(logfd, 2);
    fixture_start(&f, port, NULL, 2000, 0);
    wait_log(logfd, "command link: redis", 2);
    assert_false(jw_upstream_command_ready(f.up));
    req = roundtrip(f.up, &f.r, req_new(&f.r, 3, 1, "PING"));
    assert_int_equal(req->status, -ENOTCONN);
    jw_redis_request_free(req);
    fixture_end(&f);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char log[65536];
    ssize_t n = pread(logfd, log, sizeof log - 1, 0);
    close(logfd);
    log[n > 0 ? n : 0] = '\0';
    assert_non_null(strstr(log, "command link: redis"));
    assert_non_null(strstr(log, "auth refused"));
    assert_non_null(strstr(log, "NOAUTH"));
    redis_kill(pid);
}

static void
test_without_on_reply(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct jw_config cfg;
    test_config(&cfg, port, NULL);
    struct jw_upstream *up = jw_upstream_new(&cfg, NULL);
    jw_upstream_submit(up, jw_redis_request_new(1, (const char *[]){"PING"}, NULL, NULL, NULL,
                                                0)); /* not started: freed */
    assert_int_equal(jw_upstream_start(up), 0);
    wait_ready(up, 1);
    int64_t sent0 = jw_metric_get(JW_M_REDIS_COMMANDS);
    for (int i = 0; i < 10; i++)
        jw_upstream_submit(up, jw_redis_request_new(2, (const char *[]){"GET", "k"}, NULL, NULL,
                                                    NULL, 0)); /* answered, then freed */
    uint64_t deadline = now_ms() + WAIT_MS;
    while (jw_metric_get(JW_M_REDIS_COMMANDS) < sent0 + 10) {
        if (now_ms() > deadline)
            fail_msg("requests were not sent");
        nap_ms(5);
    }
    jw_upstream_free(up); /* anything still in flight is freed too (valgrind checks) */
    jw_config_free(&cfg);
    redis_kill(pid);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (access(REDIS_SERVER, X_OK) != 0) {
        printf("skipping: %s not found\n", REDIS_SERVER);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hset_hget),
        cmocka_unit_test(test_pipeline_in_order),
        cmocka_unit_test(test_down_not_connected),
        cmocka_unit_test(test_frozen_server_times_out_then_recovers),
        cmocka_unit_test(test_idle_ping_finds_frozen_server),
        cmocka_unit_test(test_kill_and_restart),
        cmocka_unit_test(test_stop_cancels_pending),
        cmocka_unit_test(test_requirepass),
        cmocka_unit_test(test_without_on_reply),
    };
    return cmocka_run_group_tests(tests, NULL, kill_leftovers);
}
