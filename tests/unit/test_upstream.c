/*
 * Tests for the subscriber side of the Redis thread (src/redis/subscriber.c, upstream.c, link.c)
 * against a real redis-server (Debian's /usr/bin/redis-server) on a free port: subscribe and
 * receive events with consecutive entry numbers; user channels; the job index written once per
 * job; survive a SIGKILL and restart of Redis; find a frozen (SIGSTOPped) server by PING;
 * back-pressure (JW_REDIS_PAUSE stops delivery until jw_upstream_resume(), nothing lost or
 * reordered); oversized pmessages skipped and counted without a reconnect; refuse a wrong
 * password with a clear log line that never shows the password; a scripted fake server for
 * protocol errors and timeouts; stop while waiting. Every wait is a poll with a deadline.
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
#include "jobwire/event.h"
#include "jobwire/metrics.h"
#include "jobwire/redis.h"

#include "redis_harness.h"

static long long
publish(int port, const char *password, const char *channel, const char *payload)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r;
    if (password) {
        r = redisCommand(c, "AUTH %s", password);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    r = redisCommand(c, "PUBLISH %s %s", channel, payload);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* ---- what the hooks saw (written by the upstream thread) ---- */

struct seen {
    pthread_mutex_t mu;
    struct jw_msg *head, **tail;
    int nevents, ninternal;
    int nstates[JW_LINK_STOPPED + 1];
    int auth_refused, subscribe_refused, ping_timeouts, protocol_errors, subscribe_timeouts,
        too_large;
    int commands_ready_seen; /* on_state said commands_ready at least once */
    int pause_every;         /* > 0: on_event returns JW_REDIS_PAUSE every this many events */
    int pauses_asked;
};

static enum jw_event_flow
on_event(void *ctx, struct jw_event *ev)
{
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (ev->kind == JW_KIND_INTERNAL) { /* markers and probes: counted, not kept */
        s->ninternal++;
        pthread_mutex_unlock(&s->mu);
        jw_event_unref(ev);
        return JW_REDIS_CONTINUE;
    }
    ev->msg.next = NULL;
    *s->tail = &ev->msg;
    s->tail = &ev->msg.next;
    s->nevents++;
    bool pause = s->pause_every > 0 && s->nevents % s->pause_every == 0;
    s->pauses_asked += pause;
    pthread_mutex_unlock(&s->mu);
    return pause ? JW_REDIS_PAUSE : JW_REDIS_CONTINUE;
}

static void
on_state(void *ctx, enum jw_link_state st, bool commands_ready, const char *reason)
{
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->nstates[st]++;
    s->commands_ready_seen |= commands_ready;
    if (reason && strcmp(reason, "auth refused") == 0)
        s->auth_refused++;
    if (reason && strcmp(reason, "subscribe refused") == 0)
        s->subscribe_refused++;
    if (reason && strcmp(reason, "ping timeout") == 0)
        s->ping_timeouts++;
    if (reason && strcmp(reason, "protocol error") == 0)
        s->protocol_errors++;
    if (reason && strcmp(reason, "subscribe timeout") == 0)
        s->subscribe_timeouts++;
    if (reason && strcmp(reason, "reply too large") == 0)
        s->too_large++;
    pthread_mutex_unlock(&s->mu);
}

static void
seen_init(struct seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->tail = &s->head;
}

static void
seen_destroy(struct seen *s)
{
    while (s->head) {
        struct jw_msg *next = s->head->next;
        jw_event_unref(jw_event_of(s->head));
        s->head = next;
    }
    pthread_mutex_destroy(&s->mu);
}

static int
seen_get(struct seen *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Polls until *field >= want; fails the test after WAIT_MS. */
static void
wait_count(struct seen *s, const int *field, int want, const char *what)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (seen_get(s, field) < want) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for %s (%d < %d)", what, seen_get(s, field), want);
        nap_ms(5);
    }
}

static void
wait_state(struct jw_upstream *up, enum jw_link_state st, int equal)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while ((jw_upstream_state(up) == st) != equal) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for state %s%s (now %s)", equal ? "" : "not ",
                     jw_link_state_name(st), jw_link_state_name(jw_upstream_state(up)));
        nap_ms(5);
    }
}

/* Takes the n-th (0-based) event received. */
static struct jw_event *
seen_event(struct seen *s, int n)
{
    pthread_mutex_lock(&s->mu);
    struct jw_msg *msg = s->head;
    while (msg && n-- > 0)
        msg = msg->next;
    pthread_mutex_unlock(&s->mu);
    return msg ? jw_event_of(msg) : NULL;
}

static void
test_config(struct jw_config *cfg, int port, const char *password)
{
    harness_config(cfg, port, password);
    for (size_t i = 0; i < cfg->redis_npatterns; i++)
        free(cfg->redis_patterns[i]);
    cfg->redis_patterns[0] = jw_strdup("ai:job:*");
    cfg->redis_patterns[1] = jw_strdup("other:*");
    cfg->redis_patterns[2] = jw_strdup("rec:*");
    cfg->redis_npatterns = 3;
    set_str(&cfg->channel_prefix, "ai:job:");
    /* what jw_config_finish() derives from user_channels "rec:=recommendation" */
    cfg->user_channel_prefixes[0] = jw_strdup("rec:");
    cfg->user_channel_kinds[0] = jw_strdup("recommendation");
    cfg->user_nchannels = 1;
}

/* A plain connection for checks. */
static redisContext *
rc_connect(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

static long long
rc_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long
info_field(redisContext *c, const char *field)
{
    redisReply *r = redisCommand(c, "INFO");
    assert_non_null(r);
    const char *p = strstr(r->str, field);
    assert_non_null(p);
    long long v = strtoll(p + strlen(field) + 1, NULL, 10);
    freeReplyObject(r);
    return v;
}

static void
wait_metric(enum jw_metric_id id, int64_t want, const char *what)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (jw_metric_get(id) < want) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for %s (%lld < %lld)", what, (long long)jw_metric_get(id),
                     (long long)want);
        nap_ms(5);
    }
}

static void
assert_event(struct jw_event *ev, enum jw_kind kind, const char *job, const char *user)
{
    assert_non_null(ev);
    assert_int_equal(ev->kind, kind);
    assert_string_equal(ev->job_id, job);
    assert_non_null(ev->user_id);
    assert_string_equal(ev->user_id, user);
    assert_non_null(ev->frame);
}

/* ---- tests ---- */

static void
test_subscribe_receive_and_survive_restart(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct jw_config cfg;
    test_config(&cfg, port, NULL);
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_state(up), JW_LINK_IDLE);
    int64_t reconnects0 = jw_metric_get(JW_M_UPSTREAM_RECONNECTS);
    int64_t progress0 = jw_metric_get(JW_M_EVENTS_PROGRESS);
    int64_t not_json0 = jw_metric_get(JW_M_EVENTS_INVALID_NOT_JSON);
    int64_t writes0 = jw_metric_get(JW_M_JOB_INDEX_WRITES);
    int64_t index_errors0 = jw_metric_get(JW_M_JOB_INDEX_ERRORS);
    assert_int_equal(jw_upstream_start(up), 0);

    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_UP), 1);
    assert_int_equal(
        publish(port, NULL, "ai:job:progress:job_1", "{\"userId\":\"u_42\",\"progress\":10}"), 1);
    wait_count(&s, &s.nevents, 1, "first event");
    assert_event(seen_event(&s, 0), JW_KIND_PROGRESS, "job_1", "u_42");
    assert_int_equal(jw_metric_get(JW_M_EVENTS_PROGRESS), progress0 + 1);
    assert_true(seen_get(&s, &s.commands_ready_seen));
    uint64_t first_id = seen_event(&s, 0)->id;
    assert_true(first_id >= 1);

    /* the job index: written once per job (user's and everybody's), not once per event */
    redisContext *c = rc_connect(port);
    wait_metric(JW_M_JOB_INDEX_WRITES, writes0 + 2, "the job index writes of job_1");
    assert_true(rc_int(c, "ZCARD jobwire:user:u_42:jobs") == 1);
    assert_true(rc_int(c, "ZCARD jobwire:jobs:recent") == 1);
    for (int i = 0; i < 5; i++)
        publish(port, NULL, "ai:job:progress:job_1", "{\"userId\":\"u_42\",\"progress\":11}");
    publish(port, NULL, "ai:job:status", "{\"jobId\":\"job_2\",\"userId\":\"u_42\"}");
    /* one user channel event: no job, so no index write */
    publish(port, NULL, "rec:u_42", "{\"items\":[1,2]}");
    wait_count(&s, &s.nevents, 8, "events 2..8");
    wait_metric(JW_M_JOB_INDEX_WRITES, writes0 + 4, "the job index writes of job_2");
    assert_int_equal(jw_metric_get(JW_M_JOB_INDEX_WRITES), writes0 + 4);
    assert_int_equal(jw_metric_get(JW_M_JOB_INDEX_ERRORS), index_errors0);
    assert_true(rc_int(c, "ZCARD jobwire:user:u_42:jobs") == 2);
    /* consecutive entry numbers, in publishing order */
    for (int i = 0; i < 8; i++)
        assert_true(seen_event(&s, i)->id == first_id + (uint64_t)i);
    struct jw_event *rec = seen_event(&s, 7);
    assert_int_equal(rec->kind, JW_KIND_OTHER);
    assert_null(rec->job_id);
    assert_string_equal(rec->user_id, "u_42");
    assert_non_null(strstr(rec->frame->text, "\"kind\":\"recommendation\""));
    redisFree(c);

    /* An invalid payload is dropped and counted, and the link stays up. */
    publish(port, NULL, "ai:job:status:job_2", "not json {");
    uint64_t deadline = now_ms() + WAIT_MS;
    while (jw_metric_get(JW_M_EVENTS_INVALID_NOT_JSON) == not_json0) {
        if (now_ms() > deadline)
            fail_msg("invalid payload was not counted");
        nap_ms(5);
    }
    assert_int_equal(jw_upstream_state(up), JW_LINK_SUBSCRIBED);

    /* Redis dies: the link must leave SUBSCRIBED ... */
    redis_kill(pid);
    wait_state(up, JW_LINK_SUBSCRIBED, 0);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_UP), 0);
    wait_count(&s, &s.nstates[JW_LINK_BACKOFF], 1, "backoff");

    /* ... and come back, resubscribed, once Redis is back on the same port. */
    pid = redis_start(port, NULL);
    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    assert_true(jw_metric_get(JW_M_UPSTREAM_RECONNECTS) > reconnects0);
    assert_int_equal(publish(port, NULL, "ai:job:complete:job_9", "{\"userId\":7}"), 1);
    wait_count(&s, &s.nevents, 9, "event after restart");
    assert_event(seen_event(&s, 8), JW_KIND_COMPLETE, "job_9", "7");
    assert_true(seen_event(&s, 8)->id > seen_event(&s, 7)->id); /* numbering goes on */

    jw_upstream_stop(up);
    assert_int_equal(jw_upstream_state(up), JW_LINK_STOPPED);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_UP), 0);
    jw_upstream_stop(up); /* twice is fine */
    jw_upstream_free(up);
    redis_kill(pid);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

static void
test_ping_finds_frozen_server(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct jw_config cfg;
    test_config(&cfg, port, NULL);
    set_str(&cfg.redis_host, "localhost"); /* also takes the evdns path */
    cfg.redis_ping_interval_ms = 500;
    cfg.redis_read_timeout_ms = 1000;
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_state(up, JW_LINK_SUBSCRIBED, 1);

    /* The socket stays open but nothing answers: only the PING deadline can tell. */
    kill(pid, SIGSTOP);
    wait_count(&s, &s.ping_timeouts, 1, "ping timeout");
    assert_true(jw_upstream_state(up) != JW_LINK_SUBSCRIBED);
    kill(pid, SIGCONT);
    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    assert_int_equal(publish(port, NULL, "ai:job:status:job_3", "{\"userId\":\"u\"}"), 1);
    wait_count(&s, &s.nevents, 1, "event after thaw");
    assert_event(seen_event(&s, 0), JW_KIND_STATUS, "job_3", "u");

    jw_upstream_free(up);
    redis_kill(pid);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

/* Runs an upstream with `password` against a server that wants another one, capturing stderr
 * into `log` (NUL-terminated). Returns after `*counter` reached 2 (it retried). */
static void
run_refused(int port, const char *password, int which, char *log, size_t logsize)
{
    char path[] = "/tmp/jw_test_upstream_XXXXXX";
    int logfd = mkstemp(path);
    assert_true(logfd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(logfd, 2);

    struct jw_config cfg;
    test_config(&cfg, port, password);
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_count(&s, which ? &s.subscribe_refused : &s.auth_refused, 2, "refusals");
    jw_upstream_free(up);
    assert_int_equal(s.nstates[JW_LINK_SUBSCRIBED], 0);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(logfd, log, logsize - 1, 0);
    close(logfd);
    log[n > 0 ? n : 0] = '\0';
    seen_destroy(&s);
    jw_config_free(&cfg);
}

static void
test_auth(void **state)
{
    const char *secret = "s3cret-Pa55";
    const char *wrong = "wrong-Pa55-zz";
    int port = free_port();
    pid_t pid = redis_start(port, secret);
    static char log[65536];

    run_refused(port, wrong, 0, log, sizeof log);
    assert_non_null(strstr(log, "auth refused"));
    assert_non_null(strstr(log, "WRONGPASS"));
    assert_null(strstr(log, wrong));

    /* No password at all: PSUBSCRIBE itself is refused with NOAUTH. */
    run_refused(port, NULL, 1, log, sizeof log);
    assert_non_null(strstr(log, "NOAUTH"));

    struct jw_config cfg;
    test_config(&cfg, port, secret);
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    assert_int_equal(publish(port, secret, "ai:job:error:job_5", "{\"userId\":\"u_5\"}"), 1);
    wait_count(&s, &s.nevents, 1, "event with auth");
    assert_event(seen_event(&s, 0), JW_KIND_ERROR, "job_5", "u_5");
    jw_upstream_free(up);
    redis_kill(pid);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

/* Publishes a payload of `size` bytes: one JSON string. */
static void
publish_big(int port, const char *channel, size_t size)
{
    char *payload = jw_malloc(size + 1);
    memset(payload, 'x', size);
    payload[0] = '"';
    payload[size - 1] = '"';
    payload[size] = '\0';
    publish(port, NULL, channel, payload);
    free(payload);
}

/* A message over max_payload_bytes is skipped and counted; the subscription stays, however
 * large the message (up to Redis' own output buffer limit), and what follows still arrives. */
static void
test_oversized_messages(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port);
    /* a pubsub client may buffer 10 MiB and more on the server side */
    redisReply *r = redisCommand(c, "CONFIG SET client-output-buffer-limit %s", "pubsub 0 0 0");
    assert_non_null(r);
    freeReplyObject(r);
    struct jw_config cfg;
    test_config(&cfg, port, NULL);
    cfg.max_payload_bytes = 1024;
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    int64_t too_large0 = jw_metric_get(JW_M_EVENTS_INVALID_TOO_LARGE);
    int64_t reconnects0 = jw_metric_get(JW_M_UPSTREAM_RECONNECTS);
    int64_t errors0 = jw_metric_get(JW_M_UPSTREAM_ERRORS);
    long long conns0 = info_field(c, "total_connections_received");

    /* exactly the limit: delivered */
    publish_big(port, "ai:job:status:job_1024", 1024);
    wait_count(&s, &s.nevents, 1, "a payload of max_payload_bytes");
    /* just over it, within the reader's slack, 2 MiB and 10 MiB: each skipped and counted */
    static const size_t sizes[] = {1025, 60 * 1024, 2u << 20, 10u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        publish_big(port, "ai:job:status:job_big", sizes[i]);
        assert_int_equal(publish(port, NULL, "ai:job:status:job_ok", "{\"userId\":\"u\",\"n\":1}"),
                         1);
        wait_metric(JW_M_EVENTS_INVALID_TOO_LARGE, too_large0 + (int64_t)i + 1,
                    "the too large message counted");
        wait_count(&s, &s.nevents, 2 + (int)i, "the event after the large one");
        struct jw_event *ev = seen_event(&s, 1 + (int)i);
        assert_event(ev, JW_KIND_STATUS, "job_ok", "u");
        assert_true(ev->id == seen_event(&s, (int)i)->id + 1); /* nothing else numbered */
    }
    assert_int_equal(jw_metric_get(JW_M_EVENTS_INVALID_TOO_LARGE), too_large0 + 4);
    /* the same subscription throughout: no error, no reconnect, no new connection */
    assert_int_equal(seen_get(&s, &s.too_large), 0);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_RECONNECTS), reconnects0);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_ERRORS), errors0);
    assert_int_equal(info_field(c, "total_connections_received"), conns0 + 2 * 4 + 1);
    assert_int_equal(jw_upstream_state(up), JW_LINK_SUBSCRIBED);
    assert_int_equal(seen_get(&s, &s.nstates[JW_LINK_BACKOFF]), 0);

    jw_upstream_free(up);
    redisFree(c);
    redis_kill(pid);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

/* JW_REDIS_PAUSE stops delivery until jw_upstream_resume(); nothing is lost or reordered. */
static void
test_back_pressure(void **state)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct jw_config cfg;
    test_config(&cfg, port, NULL);
    cfg.redis_ping_interval_ms = 500; /* a paused link must not be judged dead by its PINGs */
    cfg.redis_read_timeout_ms = 500;
    struct seen s;
    seen_init(&s);
    s.pause_every = 1; /* pause after the first event */
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    int64_t pauses0 = jw_metric_get(JW_M_UPSTREAM_PAUSES);
    int64_t errors0 = jw_metric_get(JW_M_UPSTREAM_ERRORS);

    enum { N = 200 };
    char payload[64];
    for (int i = 0; i < N; i++) {
        snprintf(payload, sizeof payload, "{\"userId\":\"u\",\"n\":%d}", i);
        assert_int_equal(publish(port, NULL, "ai:job:progress:job_bp", payload), 1);
    }
    wait_count(&s, &s.nevents, 1, "the first event");
    wait_metric(JW_M_UPSTREAM_PAUSES, pauses0 + 1, "the pause");
    /* Paused: the loop goes on (ops are answered, the ping timer would run) but no event comes.
     * Two ping intervals (the link's PING deadline would have failed it meanwhile). */
    uint64_t until = now_ms() + 2 * 500 + 200;
    while (now_ms() < until) {
        assert_int_equal(seen_get(&s, &s.nevents), 1);
        nap_ms(20);
    }
    assert_int_equal(jw_upstream_state(up), JW_LINK_SUBSCRIBED);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_ERRORS), errors0);

    /* resume from this thread; now pause every 7th event and resume each time */
    pthread_mutex_lock(&s.mu);
    s.pause_every = 7;
    pthread_mutex_unlock(&s.mu);
    int resumed = 0;
    uint64_t deadline = now_ms() + WAIT_MS;
    while (seen_get(&s, &s.nevents) < N) {
        if (seen_get(&s, &s.nevents) % 7 == 0 || resumed == 0) {
            jw_upstream_resume(up);
            resumed++;
        }
        if (now_ms() > deadline)
            fail_msg("only %d of %d events after resuming", seen_get(&s, &s.nevents), N);
        nap_ms(2);
    }
    jw_upstream_resume(up); /* resuming a link that is not paused is harmless */
    assert_int_equal(seen_get(&s, &s.nevents), N);
    uint64_t first = seen_event(&s, 0)->id;
    for (int i = 0; i < N; i++) {
        struct jw_event *ev = seen_event(&s, i);
        snprintf(payload, sizeof payload, "\"payload\":{\"userId\":\"u\",\"n\":%d}", i);
        if (!strstr(ev->frame->text, payload) || ev->id != first + (uint64_t)i)
            fail_msg("event %d out of order or renumbered (id %llu, first %llu)", i,
                     (unsigned long long)ev->id, (unsigned long long)first);
    }
    assert_true(jw_metric_get(JW_M_UPSTREAM_PAUSES) >= pauses0 + 1 + N / 7 - 1);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_ERRORS), errors0);
    assert_int_equal(seen_get(&s, &s.nstates[JW_LINK_BACKOFF]), 0);
    /* a paused link still stops promptly */
    pthread_mutex_lock(&s.mu);
    s.pause_every = 1;
    pthread_mutex_unlock(&s.mu);
    publish(port, NULL, "ai:job:progress:job_bp", "{}");
    publish(port, NULL, "ai:job:progress:job_bp", "{}");
    wait_count(&s, &s.nevents, N + 1, "one more event");
    uint64_t t0 = now_ms();
    jw_upstream_stop(up);
    assert_true(now_ms() - t0 < 2000);
    jw_upstream_free(up);
    redis_kill(pid);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

/* A scripted fake Redis: connection 1 answers with garbage, connection 2 never answers,
 * connection 3 confirms the three patterns and sends one pmessage. The command connection (it opens
 * with PING) is answered and left aside. */
struct fake {
    int lfd;
    int done;
};

static void
fake_wait_close(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0)
        ; /* until the client closes (or the 10 s receive timeout) */
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    static const char confirm[] = "*3\r\n$10\r\npsubscribe\r\n$8\r\nai:job:*\r\n:1\r\n"
                                  "*3\r\n$10\r\npsubscribe\r\n$7\r\nother:*\r\n:2\r\n"
                                  "*3\r\n$10\r\npsubscribe\r\n$5\r\nrec:*\r\n:3\r\n";
    static const char pmsg[] = "*4\r\n$8\r\npmessage\r\n$8\r\nai:job:*\r\n$18\r\nai:job:status:j_42"
                               "\r\n$15\r\n{\"userId\":\"u1\"}\r\n";
    int extra[64], nextra = 0;
    for (int i = 0; i < 3;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            break;
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[4096];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got <= 0) { /* the PSUBSCRIBE */
            close(fd);
            continue;
        }
        /* The command connection opens with PING: answer it, keep it open, do not count it. */
        if (got >= 14 && memcmp(buf, "*1\r\n$4\r\nPING\r\n", 14) == 0) {
            ssize_t n = write(fd, "+PONG\r\n", 7);
            (void)n;
            if (nextra < 64)
                extra[nextra++] = fd;
            else
                close(fd);
            continue;
        }
        if (i == 0) {
            ssize_t n = write(fd, "!garbage\r\n", 10);
            (void)n;
        } else if (i == 2) {
            ssize_t n = write(fd, confirm, sizeof confirm - 1);
            n = write(fd, pmsg, sizeof pmsg - 1);
            (void)n;
        }
        fake_wait_close(fd);
        close(fd);
        i++;
    }
    while (nextra > 0)
        close(extra[--nextra]);
    f->done = 1;
    return NULL;
}

static void
test_protocol_error_and_timeout(void **state)
{
    struct fake f = {0};
    f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(f.lfd, 8), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fake_main, &f), 0);

    struct jw_config cfg;
    test_config(&cfg, ntohs(a.sin_port), NULL);
    cfg.redis_read_timeout_ms = 300;
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_count(&s, &s.protocol_errors, 1, "protocol error");
    wait_count(&s, &s.subscribe_timeouts, 1, "subscribe timeout");
    wait_state(up, JW_LINK_SUBSCRIBED, 1);
    wait_count(&s, &s.nevents, 1, "event from the fake server");
    assert_event(seen_event(&s, 0), JW_KIND_STATUS, "j_42", "u1");
    jw_upstream_free(up);

    pthread_join(th, NULL);
    close(f.lfd);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

/* jw_upstream_stop from this thread must end the loop at once whatever it waits for. */
static void
stop_promptly(int port, int initial_ms, enum jw_link_state wait_for)
{
    struct jw_config cfg;
    test_config(&cfg, port, NULL);
    cfg.reconnect_initial_ms = initial_ms;
    cfg.reconnect_max_ms = initial_ms;
    cfg.redis_read_timeout_ms = 60000;
    struct seen s;
    seen_init(&s);
    struct jw_upstream_hooks hooks = {.on_event = on_event, .on_state = on_state, .ctx = &s};
    struct jw_upstream *up = jw_upstream_new(&cfg, &hooks);
    assert_int_equal(jw_upstream_start(up), 0);
    wait_state(up, wait_for, 1);
    uint64_t t0 = now_ms();
    jw_upstream_stop(up);
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(jw_upstream_state(up), JW_LINK_STOPPED);
    assert_int_equal(seen_get(&s, &s.nstates[JW_LINK_STOPPED]), 1);
    jw_upstream_free(up);
    seen_destroy(&s);
    jw_config_free(&cfg);
}

static void
test_stop_while_waiting(void **state)
{
    /* Nothing listens: connect is refused, then a long backoff. */
    stop_promptly(free_port(), 600000, JW_LINK_BACKOFF);

    /* Listening but never accepting: the kernel completes the connect, PSUBSCRIBE is never
     * answered. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(lfd, 8), 0);
    stop_promptly(ntohs(a.sin_port), 600000, JW_LINK_SUBSCRIBING);
    close(lfd);

    /* Never started: stop and free still work. */
    struct jw_config cfg;
    test_config(&cfg, 1, NULL);
    struct jw_upstream *up = jw_upstream_new(&cfg, NULL);
    jw_upstream_stop(up);
    assert_int_equal(jw_upstream_state(up), JW_LINK_STOPPED);
    jw_upstream_free(up);
    jw_config_free(&cfg);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as main.c does: a reset socket must not kill the process */
    if (access(REDIS_SERVER, X_OK) != 0) {
        printf("skipping: %s not found\n", REDIS_SERVER);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe_receive_and_survive_restart),
        cmocka_unit_test(test_ping_finds_frozen_server),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_oversized_messages),
        cmocka_unit_test(test_back_pressure),
        cmocka_unit_test(test_protocol_error_and_timeout),
        cmocka_unit_test(test_stop_while_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, kill_leftovers);
}
