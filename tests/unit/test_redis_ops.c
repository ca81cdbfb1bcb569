/*
 * Typed Redis operations (redis.h, src/redis/ops.c and commands.c) against a real redis-server
 * (Debian's /usr/bin/redis-server on a free port, see redis_harness.h):
 *   SNAPSHOT of a hash job (owner, JSON text, exact, the marker published in the transaction),
 *   of a JSON string job (verbatim, big integers), of an absent job, of a string that is not
 *   JSON, of bytes that are not UTF-8; too large states (fields, bytes) without losing the
 *   connection; READ_STATE (no marker); REVOKED; PROBE; RECENT_JOBS (newest first, capped);
 *   redis_db; error replies; -ENOTCONN while Redis is down; a frozen server (-ETIMEDOUT, then
 *   recovery); kill and restart; stop with ops pending (-ECANCELED, each exactly once);
 *   requirepass; and transaction integrity under a flood of ops far beyond
 *   JW_UPSTREAM_MAX_PENDING (every op back exactly once, no transaction split or left open).
 * Every wait is a poll with a deadline.
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

#include <sys/time.h>

#include <setjmp.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "jobwire/alloc.h"
#include "jobwire/config.h"
#include "jobwire/json.h"
#include "jobwire/metrics.h"
#include "jobwire/redis.h"
#include "jobwire/utf8.h"

#include "redis_harness.h"

/* ---- what on_op handed back ----------------------------------------------------------- */

struct back {
    pthread_mutex_t mu;
    struct jw_msg *head, **tail;
    int n;
    int on_caller_thread;
    pthread_t creator;
    int done_calls;
    /* counting mode (floods): per-tag counts, statuses, checks made on the Redis thread */
    int counting;
    unsigned char *count;
    size_t ntags;
    int ok, enobufs, etimedout, enotconn, eproto, other, wrong_state, total;
    const char *want_owner;
};

static void
on_op(void *ctx, struct jw_redis_op *op)
{
    struct back *b = ctx;
    pthread_mutex_lock(&b->mu);
    if (pthread_equal(pthread_self(), b->creator))
        b->on_caller_thread++;
    if (b->counting) {
        if (op->tag < b->ntags && b->count[op->tag] < 255)
            b->count[op->tag]++;
        switch (op->status) {
        case 0:
            b->ok++;
            if (op->kind == JW_OP_SNAPSHOT &&
                (!op->r.state.owner || strcmp(op->r.state.owner, b->want_owner) != 0 || !op->exact))
                b->wrong_state++;
            break;
        case -ENOBUFS:
            b->enobufs++;
            break;
        case -ETIMEDOUT:
            b->etimedout++;
            break;
        case -ENOTCONN:
            b->enotconn++;
            break;
        case -EPROTO:
            b->eproto++;
            break;
        default:
            b->other++;
        }
        b->total++;
        pthread_mutex_unlock(&b->mu);
        jw_redis_op_free(op);
        return;
    }
    op->msg.next = NULL;
    *b->tail = &op->msg;
    b->tail = &op->msg.next;
    b->n++;
    pthread_mutex_unlock(&b->mu);
}

static void
back_init(struct back *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->tail = &b->head;
    b->creator = pthread_self();
}

static int
back_get(struct back *b, const int *field)
{
    pthread_mutex_lock(&b->mu);
    int v = *field;
    pthread_mutex_unlock(&b->mu);
    return v;
}

static void
wait_back(struct back *b, const int *field, int want, int ms, const char *what)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    while (back_get(b, field) < want) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for %s (%d < %d)", what, back_get(b, field), want);
        nap_ms(2);
    }
}

static struct jw_redis_op *
back_pop(struct back *b)
{
    pthread_mutex_lock(&b->mu);
    struct jw_msg *msg = b->head;
    if (msg) {
        b->head = msg->next;
        if (!b->head)
            b->tail = &b->head;
        b->n--;
    }
    pthread_mutex_unlock(&b->mu);
    return msg ? jw_redis_op_of(msg) : NULL;
}

static void
back_destroy(struct back *b)
{
    struct jw_redis_op *op;
    while ((op = back_pop(b)))
        jw_redis_op_free(op);
    free(b->count);
    pthread_mutex_destroy(&b->mu);
}

static void
op_done(struct jw_redis_op *op)
{
    struct back *b = op->ctx;
    b->done_calls++;
}

static struct jw_redis_op *
op_new(struct back *b, enum jw_op_kind kind, const char *key, const char *channel, uint64_t tag)
{
    struct jw_redis_op *op = jw_redis_op_new(kind, key, channel, op_done, b, tag, 77);
    assert_int_equal(op->msg.type, JW_MSG_REDIS_OP);
    assert_int_equal(op->kind, kind);
    assert_int_equal(op->arg, 77);
    return op;
}

struct fixture {
    struct jw_config cfg;
    struct back b;
    struct jw_upstream *up;
};

static void
fixture_config(struct fixture *f, int port, const char *password)
{
    harness_config(&f->cfg, port, password);
    back_init(&f->b);
}

static void
fixture_start(struct fixture *f)
{
    struct jw_upstream_hooks hooks = {.on_op = on_op, .ctx = &f->b};
    f->up = jw_upstream_new(&f->cfg, &hooks);
    assert_int_equal(jw_upstream_start(f->up), 0);
}

static void
fixture_end(struct fixture *f)
{
    jw_upstream_free(f->up);
    back_destroy(&f->b);
    jw_config_free(&f->cfg);
}

static void
wait_ready(struct jw_upstream *up, bool ready)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (jw_upstream_commands_ready(up) != ready) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for commands to be %s", ready ? "ready" : "not ready");
        nap_ms(5);
    }
}

/* Submits one op and waits for it; the caller frees (or completes) what comes back. */
static struct jw_redis_op *
roundtrip(struct fixture *f, struct jw_redis_op *op)
{
    int before = back_get(&f->b, &f->b.n);
    uint64_t tag = op->tag;
    jw_upstream_submit(f->up, op);
    wait_back(&f->b, &f->b.n, before + 1, WAIT_MS, "an op");
    struct jw_redis_op *got = back_pop(&f->b);
    assert_true(got->tag == tag);
    return got;
}

/* Submits probes until one is answered (the connection recovered); bounded by WAIT_MS. */
static void
wait_answered(struct fixture *f)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        struct jw_redis_op *op =
            roundtrip(f, op_new(&f->b, JW_OP_PROBE, NULL, "ai:job:__jobwire__:t:p", 0));
        int ok = op->status == 0;
        jw_redis_op_free(op);
        if (ok)
            return;
        if (now_ms() > deadline)
            fail_msg("the command connection did not recover");
        nap_ms(10);
    }
}

/* ---- a plain hiredis connection for setting up and checking ---------------------------- */

static redisContext *
rc_connect(int port, const char *password)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    if (password) {
        redisReply *r = redisCommand(c, "AUTH %s", password);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    return c;
}

static redisReply *
rc(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("redis command failed: %s", c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis answered %s to %s", r->str, fmt);
    return r;
}

static void
rc_do(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("redis command %s failed: %s", fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
}

static long long
info_field(redisContext *c, const char *field)
{
    redisReply *r = rc(c, "INFO");
    const char *p = strstr(r->str, field);
    assert_non_null(p);
    long long v = strtoll(p + strlen(field) + 1, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* A subscriber on its own connection: SUBSCRIBE or PSUBSCRIBE, then read messages. */
static redisContext *
listener(int port, const char *password, const char *cmd, const char *channel)
{
    redisContext *c = rc_connect(port, password);
    redisReply *r = rc(c, "%s %s", cmd, channel);
    freeReplyObject(r);
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    redisSetTimeout(c, tv);
    return c;
}

/* The next message's channel and payload; fails after WAIT_MS. */
static void
next_message(redisContext *c, char *channel, size_t clen, char *payload, size_t plen)
{
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK || !v)
        fail_msg("no message on the listener: %s", c->errstr);
    redisReply *r = v;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t base = r->elements == 4 ? 2 : 1; /* pmessage has the pattern first */
    snprintf(channel, clen, "%s", r->element[base]->str);
    snprintf(payload, plen, "%.*s", (int)r->element[base + 1]->len, r->element[base + 1]->str);
    freeReplyObject(r);
}

static json_t *
parse_json(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
    if (!j)
        fail_msg("state is not JSON (%s): %s", err.text, text);
    assert_true(jw_utf8_valid(text, strlen(text)));
    return j;
}

/* ---- snapshots -------------------------------------------------------------------------- */

static void
test_snapshot_hash(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "HSET ai:job:j1 userId u_42 status running progress 45 note %b", "a\xff\"b",
          (size_t)4);
    redisContext *sub = listener(port, NULL, "SUBSCRIBE", "ai:job:__jobwire__:test:m1");
    struct fixture f;
    fixture_config(&f, port, NULL);
    fixture_start(&f);
    wait_ready(f.up, true);
    int64_t cmds0 = jw_metric_get(JW_M_REDIS_COMMANDS);

    struct jw_redis_op *op =
        roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "j1", "ai:job:__jobwire__:test:m1", 11));
    assert_int_equal(op->status, 0);
    assert_true(op->exact);
    assert_false(op->r.state.too_large);
    assert_string_equal(op->r.state.source, "hash");
    assert_string_equal(op->r.state.owner, "u_42");
    json_t *j = parse_json(op->r.state.json);
    assert_int_equal(json_object_size(j), 4);
    assert_string_equal(json_string_value(json_object_get(j, "userId")), "u_42");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "running");
    assert_string_equal(json_string_value(json_object_get(j, "progress")), "45"); /* as stored */
    assert_string_equal(json_string_value(json_object_get(j, "note")), "a\xef\xbf\xbd\"b");
    json_decref(j);
    /* MULTI, PUBLISH, HGETALL, GET, EXEC */
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMANDS), cmds0 + 5);
    /* the marker went out, with an empty payload */
    char ch[128], payload[64];
    next_message(sub, ch, sizeof ch, payload, sizeof payload);
    assert_string_equal(ch, "ai:job:__jobwire__:test:m1");
    assert_string_equal(payload, "");
    /* done() runs when the gateway completes the op; the op is freed with it */
    jw_redis_op_complete(op);
    assert_int_equal(f.b.done_calls, 1);
    assert_int_equal(f.b.on_caller_thread, 0); /* on_op ran on the Redis thread */

    /* the hash wins over the string; field names and values of any bytes */
    rc_do(c, "SET ai:job:status:j1 %s", "{\"userId\":\"someone else\"}");
    rc_do(c, "HSET ai:job:j1 %b %b", "k\x01\"", (size_t)3, "", (size_t)0);
    op = roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "j1", "ai:job:__jobwire__:test:m1", 12));
    assert_int_equal(op->status, 0);
    assert_string_equal(op->r.state.source, "hash");
    assert_string_equal(op->r.state.owner, "u_42");
    j = parse_json(op->r.state.json);
    assert_int_equal(json_object_size(j), 5);
    assert_string_equal(json_string_value(json_object_get(j, "k\x01\"")), "");
    json_decref(j);
    jw_redis_op_free(op);
    next_message(sub, ch, sizeof ch, payload, sizeof payload);

    /* an owner no user can have: the state is nobody's */
    rc_do(c, "HSET ai:job:j2 userId %b status x", "u\x01", (size_t)2);
    op = roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "j2", "ai:job:__jobwire__:test:m1", 13));
    assert_int_equal(op->status, 0);
    assert_null(op->r.state.owner);
    assert_non_null(op->r.state.json);
    jw_redis_op_free(op);
    next_message(sub, ch, sizeof ch, payload, sizeof payload);

    fixture_end(&f);
    redisFree(sub);
    redisFree(c);
    redis_kill(pid);
}

static void
test_snapshot_string_absent_and_not_json(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    redisContext *sub = listener(port, NULL, "PSUBSCRIBE", "ai:job:__jobwire__:*");
    struct fixture f;
    fixture_config(&f, port, NULL);
    fixture_start(&f);
    wait_ready(f.up, true);
    char ch[128], payload[64];
    static const struct {
        const char *job;
        const char *value; /* NULL: absent */
        size_t len;
        const char *json;  /* expected state text; NULL: none */
        const char *owner; /* NULL: none */
    } cases[] = {
        /* verbatim JSON, whatever jansson's defaults think of it */
        {"s1", "{\"userId\":\"u7\",\"n\":123456789012345678901234567890,\"z\":\"\\u0000\"}", 0,
         "{\"userId\":\"u7\",\"n\":123456789012345678901234567890,\"z\":\"\\u0000\"}", "u7"},
        {"s2", "{\"userId\":12345678901234567890123}", 0, "{\"userId\":12345678901234567890123}",
         "12345678901234567890123"},
        {"s3", " [1, 2.5e400, \"\\ud800\"] ", 0, " [1, 2.5e400, \"\\ud800\"] ", NULL},
        {"s4", "{\"userId\":\"\\u0001\"}", 0, "{\"userId\":\"\\u0001\"}", NULL},
        {"s5", "{\"userId\":1.5}", 0, "{\"userId\":1.5}", NULL},
        /* not JSON: a JSON string of it; bytes that are not UTF-8 become U+FFFD */
        {"s6", "plain text", 0, "\"plain text\"", NULL},
        {"s7", "a\xff\"b\n", 0, "\"a\\ufffd\\\"b\\u000a\"", NULL},
        {"s8", "{\"userId\":\"u\"", 0, "\"{\\\"userId\\\":\\\"u\\\"\"", NULL},
        {"s9", "", 0, "\"\"", NULL},
        {"s10", "a\0b", 3, "\"a\\u0000b\"", NULL},
        /* absent */
        {"absent", NULL, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].value) {
            size_t len = cases[i].len ? cases[i].len : strlen(cases[i].value);
            rc_do(c, "SET ai:job:status:%s %b", cases[i].job, cases[i].value, len);
        }
        char marker[64];
        snprintf(marker, sizeof marker, "ai:job:__jobwire__:test:%zu", i);
        for (int kind = 0; kind < 2; kind++) {
            struct jw_redis_op *op =
                roundtrip(&f, op_new(&f.b, kind ? JW_OP_READ_STATE : JW_OP_SNAPSHOT, cases[i].job,
                                     marker, i));
            if (op->status != 0)
                fail_msg("case %zu: status %d", i, op->status);
            assert_int_equal(op->exact, kind == 0);
            assert_false(op->r.state.too_large);
            if (!cases[i].json) {
                assert_null(op->r.state.json);
                assert_null(op->r.state.source);
            } else {
                if (!op->r.state.json || strcmp(op->r.state.json, cases[i].json) != 0)
                    fail_msg("case %zu: state %s, expected %s", i,
                             op->r.state.json ? op->r.state.json : "(none)", cases[i].json);
                assert_string_equal(op->r.state.source, "string");
                assert_true(jw_json_scan(op->r.state.json, strlen(op->r.state.json), NULL, 0));
            }
            if (cases[i].owner)
                assert_string_equal(op->r.state.owner, cases[i].owner);
            else
                assert_null(op->r.state.owner);
            jw_redis_op_free(op);
            if (kind == 0) { /* the snapshot's marker, with or without a state */
                next_message(sub, ch, sizeof ch, payload, sizeof payload);
                assert_string_equal(ch, marker);
            }
        }
    }
    /* READ_STATE published nothing: the next message is this probe's, not a marker */
    struct jw_redis_op *op = roundtrip(
        &f, op_new(&f.b, JW_OP_PROBE, NULL, "ai:job:__jobwire__:test:after-read-state", 99));
    assert_int_equal(op->status, 0);
    jw_redis_op_free(op);
    next_message(sub, ch, sizeof ch, payload, sizeof payload);
    assert_string_equal(ch, "ai:job:__jobwire__:test:after-read-state");
    assert_string_equal(payload, "");

    fixture_end(&f);
    redisFree(sub);
    redisFree(c);
    redis_kill(pid);
}

/* A state over max_state_fields or max_state_bytes is too_large, and costs neither the
 * connection nor an error. */
static void
test_too_large_keeps_the_connection(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.max_state_fields = 16;
    f.cfg.max_state_bytes = 1024;
    fixture_start(&f);
    wait_ready(f.up, true);

    /* hashes of 16 and 17 fields (short names and values: bytes are no issue) */
    for (int i = 0; i < 17; i++) {
        rc_do(c, "HSET ai:job:f17 k%d v", i);
        if (i < 16)
            rc_do(c, "HSET ai:job:f16 k%d v", i);
    }
    /* strings of max_state_bytes, one byte more, and far more (beyond any slack) */
    char *big = jw_malloc(200000);
    memset(big, 'x', 200000);
    big[0] = '"';
    big[1023] = '"';
    rc_do(c, "SET ai:job:status:b1024 %b", big, (size_t)1024);
    big[1023] = 'x';
    big[1024] = '"';
    rc_do(c, "SET ai:job:status:b1025 %b", big, (size_t)1025);
    big[1024] = 'x';
    big[199999] = '"';
    rc_do(c, "SET ai:job:status:b200000 %b", big, (size_t)200000);
    free(big);

    long long conns0 = info_field(c, "total_connections_received");
    int64_t nc0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED);
    int64_t to0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT);
    int64_t up_err0 = jw_metric_get(JW_M_UPSTREAM_ERRORS);
    static const struct {
        const char *job;
        bool too_large;
    } cases[] = {
        {"f16", false},  {"f17", true},     {"b1024", false},
        {"b1025", true}, {"b200000", true}, {"absent", false},
    };
    int wrong = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct jw_redis_op *op =
                roundtrip(&f, op_new(&f.b, round ? JW_OP_READ_STATE : JW_OP_SNAPSHOT, cases[i].job,
                                     "ai:job:__jobwire__:t:m", i));
            assert_int_equal(op->status, 0); /* not an error: the state is just too large */
            if (op->r.state.too_large != cases[i].too_large) {
                print_error("%s of %s: too_large %d, expected %d (max_state_fields 16, "
                            "max_state_bytes 1024)\n",
                            round ? "READ_STATE" : "SNAPSHOT", cases[i].job, op->r.state.too_large,
                            cases[i].too_large);
                wrong++;
            }
            if (op->r.state.too_large) { /* neither the state nor its owner can be told */
                assert_null(op->r.state.json);
                assert_null(op->r.state.owner);
            }
            jw_redis_op_free(op);
        }
    }
    /* the same connection served every op: no reconnect, no error counted */
    assert_int_equal(info_field(c, "total_connections_received"), conns0);
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED), nc0);
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT), to0);
    assert_int_equal(jw_metric_get(JW_M_UPSTREAM_ERRORS), up_err0);
    assert_int_equal(jw_metric_get(JW_M_COMMAND_LINK_UP), 1);
    assert_true(jw_upstream_commands_ready(f.up));
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
    assert_int_equal(wrong, 0);
}

/* An error reply is -EPROTO, inside a transaction (EXEC's array) as outside it. */
static void
test_error_replies(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "SET ai:job:wt notahash");     /* the hash key holds a string */
    rc_do(c, "HSET ai:job:status:wt2 a b"); /* the string key holds a hash */
    rc_do(c, "SET token:blacklist:x 1");
    rc_do(c, "SET jobwire:user:wt:jobs notazset"); /* the index holds a string */
    struct fixture f;
    fixture_config(&f, port, NULL);
    fixture_start(&f);
    wait_ready(f.up, true);
    int wrong = 0;
    static const struct {
        enum jw_op_kind kind;
        const char *key;
        const char *what;
    } cases[] = {
        {JW_OP_READ_STATE, "wt", "READ_STATE of a hash key holding a string"},
        {JW_OP_SNAPSHOT, "wt", "SNAPSHOT of a hash key holding a string"},
        {JW_OP_READ_STATE, "wt2", "READ_STATE of a string key holding a hash"},
        {JW_OP_SNAPSHOT, "wt2", "SNAPSHOT of a string key holding a hash"},
        {JW_OP_RECENT_JOBS, "wt", "RECENT_JOBS of an index holding a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw_redis_op *op =
            roundtrip(&f, op_new(&f.b, cases[i].kind, cases[i].key, "ai:job:__jobwire__:t:e", i));
        if (op->status != -EPROTO) {
            print_error("%s: status %d, expected -EPROTO (state %s)\n", cases[i].what, op->status,
                        cases[i].kind == JW_OP_RECENT_JOBS
                            ? "-"
                            : (op->r.state.json ? op->r.state.json : "none"));
            wrong++;
        }
        if (cases[i].kind != JW_OP_RECENT_JOBS && op->status < 0) {
            assert_null(op->r.state.json); /* a half read is no state */
            assert_null(op->r.state.owner);
        }
        jw_redis_op_free(op);
    }
    /* and the connection is fine afterwards */
    struct jw_redis_op *op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "x", NULL, 9));
    assert_int_equal(op->status, 0);
    assert_true(op->r.revoked);
    jw_redis_op_free(op);
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
    assert_int_equal(wrong, 0);
}

static void
test_revoked_probe_recent_jobs(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "SET token:blacklist:jti-1 1");
    rc_do(c, "SET %s 1", "token:blacklist:odd id/\xc3\xa9");
    /* u1's index: scores are times, newest highest; entries no id can be are skipped */
    for (int i = 1; i <= 8; i++)
        rc_do(c, "ZADD jobwire:user:u1:jobs %d job_%d", 1000 + i, i);
    rc_do(c, "ZADD jobwire:user:u1:jobs 1010 %b", "bad\x01", (size_t)4);
    rc_do(c, "ZADD jobwire:jobs:recent 5 a 7 b 6 c");
    redisContext *sub = listener(port, NULL, "SUBSCRIBE", "ai:job:__jobwire__:t:probe");
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.scope_snapshot_max_jobs = 4;
    fixture_start(&f);
    wait_ready(f.up, true);

    struct jw_redis_op *op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "jti-1", NULL, 1));
    assert_int_equal(op->status, 0);
    assert_true(op->r.revoked);
    jw_redis_op_free(op);
    op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "jti-2", NULL, 2));
    assert_int_equal(op->status, 0);
    assert_false(op->r.revoked);
    jw_redis_op_free(op);
    op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "odd id/\xc3\xa9", NULL, 3));
    assert_true(op->r.revoked);
    jw_redis_op_free(op);

    op = roundtrip(&f, op_new(&f.b, JW_OP_PROBE, NULL, "ai:job:__jobwire__:t:probe", 4));
    assert_int_equal(op->status, 0);
    jw_redis_op_free(op);
    char ch[128], payload[64];
    next_message(sub, ch, sizeof ch, payload, sizeof payload);
    assert_string_equal(ch, "ai:job:__jobwire__:t:probe");
    assert_string_equal(payload, "");

    /* newest first, capped by scope_snapshot_max_jobs (the bad entry is dropped after it) */
    op = roundtrip(&f, op_new(&f.b, JW_OP_RECENT_JOBS, "u1", NULL, 5));
    assert_int_equal(op->status, 0);
    assert_true(op->r.jobs.n <= 4);
    assert_int_equal(op->r.jobs.n, 3); /* bad\x01 (newest), job_8, job_7, job_6 */
    assert_string_equal(op->r.jobs.ids[0], "job_8");
    assert_string_equal(op->r.jobs.ids[1], "job_7");
    assert_string_equal(op->r.jobs.ids[2], "job_6");
    jw_redis_op_free(op);
    op = roundtrip(&f, op_new(&f.b, JW_OP_RECENT_JOBS, NULL, NULL, 6)); /* everybody's */
    assert_int_equal(op->status, 0);
    assert_int_equal(op->r.jobs.n, 3);
    assert_string_equal(op->r.jobs.ids[0], "b");
    assert_string_equal(op->r.jobs.ids[1], "c");
    assert_string_equal(op->r.jobs.ids[2], "a");
    jw_redis_op_free(op);
    op = roundtrip(&f, op_new(&f.b, JW_OP_RECENT_JOBS, "nobody", NULL, 7));
    assert_int_equal(op->status, 0);
    assert_int_equal(op->r.jobs.n, 0);
    jw_redis_op_free(op);
    fixture_end(&f);
    redisFree(sub);
    redisFree(c);
    redis_kill(pid);
}

/* scope_snapshot_max_jobs 0 means none: the op must not turn it into "all". */
static void
test_recent_jobs_cap_zero(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "ZADD jobwire:user:u1:jobs 1 a 2 b");
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.scope_snapshot_max_jobs = 0;
    fixture_start(&f);
    wait_ready(f.up, true);
    struct jw_redis_op *op = roundtrip(&f, op_new(&f.b, JW_OP_RECENT_JOBS, "u1", NULL, 1));
    assert_int_equal(op->status, 0);
    size_t n = op->r.jobs.n;
    jw_redis_op_free(op);
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
    if (n != 0)
        fail_msg("RECENT_JOBS with scope_snapshot_max_jobs 0 returned %zu ids (ZREVRANGE 0 -1)", n);
}

static void
test_redis_db(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "HSET ai:job:jdb userId in_db0");
    rc_do(c, "SELECT 3");
    rc_do(c, "HSET ai:job:jdb userId in_db3");
    rc_do(c, "SET token:blacklist:only3 1");
    rc_do(c, "SELECT 0");
    redisContext *sub = listener(port, NULL, "SUBSCRIBE", "ai:job:__jobwire__:t:db");
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.redis_db = 3;
    fixture_start(&f);
    wait_ready(f.up, true);
    struct jw_redis_op *op =
        roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "jdb", "ai:job:__jobwire__:t:db", 1));
    assert_int_equal(op->status, 0);
    assert_string_equal(op->r.state.owner, "in_db3");
    assert_true(op->exact);
    jw_redis_op_free(op);
    char ch[128], payload[16]; /* publishing is not per database */
    next_message(sub, ch, sizeof ch, payload, sizeof payload);
    assert_string_equal(ch, "ai:job:__jobwire__:t:db");
    op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "only3", NULL, 2));
    assert_true(op->r.revoked);
    jw_redis_op_free(op);
    op = roundtrip(&f, op_new(&f.b, JW_OP_READ_STATE, "jdb", NULL, 3));
    assert_string_equal(op->r.state.owner, "in_db3");
    jw_redis_op_free(op);
    /* after a reconnect, the database is selected again */
    rc_do(c, "CLIENT KILL TYPE normal SKIPME yes");
    redisFree(sub);
    wait_answered(&f);
    op = roundtrip(&f, op_new(&f.b, JW_OP_READ_STATE, "jdb", NULL, 4));
    assert_int_equal(op->status, 0);
    assert_string_equal(op->r.state.owner, "in_db3");
    jw_redis_op_free(op);
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
}

/* Ops on one connection come back in the order they were submitted, each with its own answer. */
static void
test_pipeline_in_order(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    enum { N = 300 };
    for (int i = 0; i < N; i += 3) {
        rc_do(c, "HSET ai:job:p%d userId u%d", i, i);
        rc_do(c, "SET token:blacklist:t%d 1", i + 1);
    }
    struct fixture f;
    fixture_config(&f, port, NULL);
    fixture_start(&f);
    wait_ready(f.up, true);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, i % 3 == 0 ? "p%d" : "t%d", i);
        enum jw_op_kind kind = i % 3 == 0   ? JW_OP_SNAPSHOT
                               : i % 3 == 1 ? JW_OP_REVOKED
                                            : JW_OP_READ_STATE;
        jw_upstream_submit(f.up, op_new(&f.b, kind, key, "ai:job:__jobwire__:t:o", (uint64_t)i));
    }
    wait_back(&f.b, &f.b.n, N, WAIT_MS, "the pipelined ops");
    for (int i = 0; i < N; i++) {
        struct jw_redis_op *op = back_pop(&f.b);
        assert_int_equal(op->tag, (uint64_t)i);
        assert_int_equal(op->status, 0);
        if (i % 3 == 0) {
            char want[16];
            snprintf(want, sizeof want, "u%d", i);
            assert_string_equal(op->r.state.owner, want);
        } else if (i % 3 == 1) {
            assert_true(op->r.revoked);
        } else {
            assert_null(op->r.state.json); /* t%d has no job state */
        }
        jw_redis_op_free(op);
    }
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
}

/* No op at all: only the idle health PING can find a frozen server. */
static void
test_idle_ping_finds_frozen_server(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.redis_read_timeout_ms = 500;
    f.cfg.redis_ping_interval_ms = 500;
    fixture_start(&f);
    wait_ready(f.up, true);
    kill(pid, SIGSTOP);
    wait_ready(f.up, false);
    assert_int_equal(jw_metric_get(JW_M_COMMAND_LINK_UP), 0);
    kill(pid, SIGCONT);
    wait_ready(f.up, true);
    wait_answered(&f);
    fixture_end(&f);
    redis_kill(pid);
}

/* ---- failures --------------------------------------------------------------------------- */

static void
test_down_not_connected(void **state)
{
    (void)state;
    struct fixture f;
    fixture_config(&f, free_port(), NULL); /* nothing listens there */
    fixture_start(&f);
    int64_t nc0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED);
    uint64_t t0 = now_ms();
    enum jw_op_kind kinds[] = {JW_OP_SNAPSHOT, JW_OP_READ_STATE, JW_OP_REVOKED, JW_OP_PROBE,
                               JW_OP_RECENT_JOBS};
    for (int i = 0; i < 5; i++)
        jw_upstream_submit(f.up, op_new(&f.b, kinds[i], "k", "ai:job:__jobwire__:t:x", i));
    wait_back(&f.b, &f.b.n, 5, WAIT_MS, "-ENOTCONN ops");
    assert_true(now_ms() - t0 < 1000); /* not held until a timeout */
    for (int i = 0; i < 5; i++) {
        struct jw_redis_op *op = back_pop(&f.b);
        assert_int_equal(op->status, -ENOTCONN);
        if (op->kind == JW_OP_SNAPSHOT || op->kind == JW_OP_READ_STATE) {
            assert_null(op->r.state.json);
            assert_null(op->r.state.source);
        }
        jw_redis_op_free(op);
    }
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_NOT_CONNECTED), nc0 + 5);
    assert_false(jw_upstream_commands_ready(f.up));
    fixture_end(&f);
}

static void
test_frozen_server_times_out_then_recovers(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "HSET ai:job:jf userId u");
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.redis_read_timeout_ms = 800;
    fixture_start(&f);
    wait_ready(f.up, true);
    wait_answered(&f);
    int64_t to0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT);

    kill(pid, SIGSTOP);
    uint64_t t0 = now_ms();
    struct jw_redis_op *op =
        roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "jf", "ai:job:__jobwire__:t:f", 1));
    uint64_t took = now_ms() - t0;
    assert_int_equal(op->status, -ETIMEDOUT);
    assert_null(op->r.state.json);
    jw_redis_op_free(op);
    assert_true(took >= 700); /* not before the read timeout ... */
    assert_true(took < 3000); /* ... and not much after it */
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_TIMEOUT), to0 + 1);
    wait_ready(f.up, false); /* the connection was dropped */

    kill(pid, SIGCONT);
    wait_ready(f.up, true);
    wait_answered(&f);
    op = roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "jf", "ai:job:__jobwire__:t:f", 2));
    assert_int_equal(op->status, 0);
    assert_string_equal(op->r.state.owner, "u");
    jw_redis_op_free(op);
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
}

static void
test_kill_and_restart(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.redis_read_timeout_ms = 30000;
    fixture_start(&f);
    wait_ready(f.up, true);
    wait_answered(&f);

    /* ops in flight when the server dies come back -ENOTCONN, long before the timeout */
    kill(pid, SIGSTOP);
    for (int i = 0; i < 3; i++)
        jw_upstream_submit(
            f.up, op_new(&f.b, JW_OP_SNAPSHOT, "k", "ai:job:__jobwire__:t:k", (uint64_t)i));
    uint64_t t0 = now_ms();
    redis_kill(pid);
    wait_back(&f.b, &f.b.n, 3, WAIT_MS, "in-flight ops after kill");
    assert_true(now_ms() - t0 < 5000);
    for (int i = 0; i < 3; i++) {
        struct jw_redis_op *op = back_pop(&f.b);
        assert_int_equal(op->tag, (uint64_t)i); /* in order */
        assert_int_equal(op->status, -ENOTCONN);
        jw_redis_op_free(op);
    }
    wait_ready(f.up, false);
    struct jw_redis_op *op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "x", NULL, 9));
    assert_int_equal(op->status, -ENOTCONN);
    jw_redis_op_free(op);

    pid = redis_start(port, NULL);
    wait_ready(f.up, true);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "SET token:blacklist:after 1");
    op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "after", NULL, 10));
    assert_int_equal(op->status, 0);
    assert_true(op->r.revoked);
    jw_redis_op_free(op);
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
}

static void
test_stop_cancels_pending(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.redis_read_timeout_ms = 60000;
    fixture_start(&f);
    wait_ready(f.up, true);
    wait_answered(&f);
    f.b.counting = 1;
    enum { N = 500 };
    f.b.ntags = N + 20;
    f.b.count = jw_calloc(f.b.ntags, 1);
    f.b.want_owner = "";
    int64_t canceled0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_CANCELED);

    /* a frozen server: everything stays in flight (or in the submission queue) */
    kill(pid, SIGSTOP);
    for (int i = 0; i < N; i++)
        jw_upstream_submit(f.up, op_new(&f.b, i % 3 ? JW_OP_SNAPSHOT : JW_OP_REVOKED, "k",
                                        "ai:job:__jobwire__:t:s", (uint64_t)i));
    jw_upstream_stop(f.up);
    /* every one is back, exactly once, before stop returned */
    assert_int_equal(f.b.total, N);
    assert_int_equal(f.b.other, N); /* -ECANCELED is "other" in the histogram */
    for (int i = 0; i < N; i++)
        assert_int_equal(f.b.count[i], 1);
    assert_true(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_CANCELED) >= canceled0 + 1);
    assert_int_equal(f.b.on_caller_thread, 0);

    /* after stop: back at once, on this thread, with -ECANCELED */
    f.b.counting = 0;
    struct jw_redis_op *op = roundtrip(&f, op_new(&f.b, JW_OP_PROBE, NULL, "x", N + 1));
    assert_int_equal(op->status, -ECANCELED);
    assert_int_equal(f.b.on_caller_thread, 1);
    jw_redis_op_free(op);
    jw_upstream_stop(f.up); /* twice is fine */
    kill(pid, SIGCONT);
    fixture_end(&f);
    redis_kill(pid);

    /* never started: the same */
    fixture_config(&f, 1, NULL);
    struct jw_upstream_hooks hooks = {.on_op = on_op, .ctx = &f.b};
    f.up = jw_upstream_new(&f.cfg, &hooks);
    jw_upstream_submit(f.up, op_new(&f.b, JW_OP_SNAPSHOT, "k", "m", 1));
    assert_int_equal(back_get(&f.b, &f.b.n), 1);
    assert_int_equal(f.b.on_caller_thread, 1);
    op = back_pop(&f.b);
    assert_int_equal(op->status, -ECANCELED);
    jw_redis_op_free(op);
    fixture_end(&f);
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
    (void)state;
    const char *secret = "s3cret-Pa55";
    int port = free_port();
    pid_t pid = redis_start(port, secret);
    redisContext *c = rc_connect(port, secret);
    rc_do(c, "HSET ai:job:jp userId u_7");

    struct fixture f;
    fixture_config(&f, port, secret);
    fixture_start(&f);
    wait_ready(f.up, true);
    struct jw_redis_op *op =
        roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "jp", "ai:job:__jobwire__:t:p", 1));
    assert_int_equal(op->status, 0);
    assert_string_equal(op->r.state.owner, "u_7");
    jw_redis_op_free(op);
    fixture_end(&f);

    /* no password: the opening PING is refused (NOAUTH); never ready, ops -ENOTCONN */
    char path[] = "/tmp/jw_test_redis_ops_XXXXXX";
    int logfd = mkstemp(path);
    assert_true(logfd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(logfd, 2);
    fixture_config(&f, port, NULL);
    fixture_start(&f);
    wait_log(logfd, "command link: redis", 2);
    assert_false(jw_upstream_commands_ready(f.up));
    op = roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, "x", NULL, 2));
    assert_int_equal(op->status, -ENOTCONN);
    jw_redis_op_free(op);
    fixture_end(&f);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char log[65536];
    ssize_t n = pread(logfd, log, sizeof log - 1, 0);
    close(logfd);
    log[n > 0 ? n : 0] = '\0';
    assert_non_null(strstr(log, "auth refused"));
    assert_non_null(strstr(log, "NOAUTH"));
    redisFree(c);
    redis_kill(pid);
}

static void
test_without_on_op(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    struct jw_config cfg;
    harness_config(&cfg, port, NULL);
    struct jw_upstream *up = jw_upstream_new(&cfg, NULL);
    jw_upstream_submit(up, jw_redis_op_new(JW_OP_PROBE, NULL, "x", NULL, NULL, 0, 0)); /* freed */
    assert_int_equal(jw_upstream_start(up), 0);
    wait_ready(up, true);
    int64_t sent0 = jw_metric_get(JW_M_REDIS_COMMANDS);
    for (int i = 0; i < 10; i++)
        jw_upstream_submit(up, jw_redis_op_new(JW_OP_SNAPSHOT, "k", "ai:job:__jobwire__:t:n", NULL,
                                               NULL, 0, 0)); /* answered, then freed */
    uint64_t deadline = now_ms() + WAIT_MS;
    while (jw_metric_get(JW_M_REDIS_COMMANDS) < sent0 + 50) {
        if (now_ms() > deadline)
            fail_msg("ops were not sent");
        nap_ms(5);
    }
    jw_upstream_free(up); /* anything still in flight is freed too (valgrind checks) */
    jw_config_free(&cfg);
    redis_kill(pid);
}

/* ---- transaction integrity ------------------------------------------------------------------ */

/* Far more snapshot ops than JW_UPSTREAM_MAX_PENDING at once: each comes back exactly once,
 * those answered read the right state in an exact transaction, and afterwards the connection
 * answers plain commands (a transaction split or left open would make them answer QUEUED). */
static void
flood(int read_timeout_ms)
{
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    redisContext *c = rc_connect(port, NULL);
    rc_do(c, "HSET ai:job:flood userId flood_owner status x");
    rc_do(c, "SET token:blacklist:yes 1");
    struct fixture f;
    fixture_config(&f, port, NULL);
    f.cfg.redis_read_timeout_ms = read_timeout_ms;
    fixture_start(&f);
    wait_ready(f.up, true);
    wait_answered(&f);
    enum { N = 3 * JW_UPSTREAM_MAX_PENDING };
    f.b.count = jw_calloc(N, 1);
    f.b.ntags = N;
    f.b.want_owner = "flood_owner";
    f.b.counting = 1;
    int64_t overflow0 = jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_OVERFLOW);

    for (int i = 0; i < N; i++)
        jw_upstream_submit(f.up, jw_redis_op_new(JW_OP_SNAPSHOT, "flood", "ai:job:__jobwire__:t:f",
                                                 NULL, &f.b, (uint64_t)i, 0));
    wait_back(&f.b, &f.b.total, N, 60000, "every op of the flood");
    pthread_mutex_lock(&f.b.mu);
    int missing = 0, twice = 0;
    for (int i = 0; i < N; i++) {
        missing += f.b.count[i] == 0;
        twice += f.b.count[i] > 1;
    }
    print_message("flood (read timeout %d ms): %d ok, %d -ENOBUFS, %d -ETIMEDOUT, %d -ENOTCONN, "
                  "%d -EPROTO, %d other\n",
                  read_timeout_ms, f.b.ok, f.b.enobufs, f.b.etimedout, f.b.enotconn, f.b.eproto,
                  f.b.other);
    int eproto = f.b.eproto, wrong = f.b.wrong_state, other = f.b.other, ok = f.b.ok;
    int enobufs = f.b.enobufs;
    pthread_mutex_unlock(&f.b.mu);
    assert_int_equal(missing, 0);
    assert_int_equal(twice, 0);
    assert_int_equal(eproto, 0);
    assert_int_equal(wrong, 0);
    assert_int_equal(other, 0);
    assert_true(enobufs > 0); /* the bound was reached */
    assert_int_equal(jw_metric_get(JW_M_REDIS_COMMAND_ERRORS_OVERFLOW), overflow0 + enobufs);
    if (read_timeout_ms >= 1000)
        assert_true(ok >= JW_UPSTREAM_MAX_PENDING);

    /* afterwards: plain answers, never QUEUED */
    f.b.counting = 0;
    wait_ready(f.up, true);
    uint64_t deadline = now_ms() + WAIT_MS;
    int answered = 0;
    for (int i = 0; answered < 20; i++) {
        struct jw_redis_op *op =
            roundtrip(&f, op_new(&f.b, JW_OP_REVOKED, i % 2 ? "yes" : "no", NULL, (uint64_t)i));
        assert_int_not_equal(op->status, -EPROTO);
        if (op->status == 0) {
            assert_int_equal(op->r.revoked, i % 2);
            answered++;
        }
        jw_redis_op_free(op);
        op = roundtrip(&f, op_new(&f.b, JW_OP_SNAPSHOT, "flood", "ai:job:__jobwire__:t:f", 0));
        assert_int_not_equal(op->status, -EPROTO);
        if (op->status == 0)
            assert_string_equal(op->r.state.owner, "flood_owner");
        jw_redis_op_free(op);
        if (now_ms() > deadline)
            fail_msg("only %d plain answers after the flood", answered);
    }
    fixture_end(&f);
    redisFree(c);
    redis_kill(pid);
}

static void
test_flood_transaction_integrity(void **state)
{
    (void)state;
    flood(10000);
}

static void
test_flood_with_tiny_timeout(void **state)
{
    (void)state;
    flood(20);
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
        cmocka_unit_test(test_snapshot_hash),
        cmocka_unit_test(test_snapshot_string_absent_and_not_json),
        cmocka_unit_test(test_too_large_keeps_the_connection),
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_revoked_probe_recent_jobs),
        cmocka_unit_test(test_recent_jobs_cap_zero),
        cmocka_unit_test(test_redis_db),
        cmocka_unit_test(test_pipeline_in_order),
        cmocka_unit_test(test_down_not_connected),
        cmocka_unit_test(test_idle_ping_finds_frozen_server),
        cmocka_unit_test(test_frozen_server_times_out_then_recovers),
        cmocka_unit_test(test_kill_and_restart),
        cmocka_unit_test(test_stop_cancels_pending),
        cmocka_unit_test(test_requirepass),
        cmocka_unit_test(test_without_on_op),
        cmocka_unit_test(test_flood_transaction_integrity),
        cmocka_unit_test(test_flood_with_tiny_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, kill_leftovers);
}
