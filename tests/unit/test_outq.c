/*
 * Unit tests for outq.c (with frame.c and buf.c): FIFO order and the seq kept per slot, byte and
 * frame limits, `force`, conflation ONLY under pressure (bytes or age) and only of an older frame
 * of the same job, non-conflating frames never dropped, hole compaction with the job index
 * surviving it and drains, queue bytes accounting, and a model check: random operation
 * sequences against a plain list, compared after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/buf.h"
#include "jobwire/frame.h"
#include "jobwire/rand.h"
#include "../../src/gateway/outq.h"

#define BIG ((size_t)1 << 30)

/* Everything a test allocates is tracked, so that a test that fails half-way (a bug found)
 * still releases it in the teardown: valgrind then reports the failure, not a leak. */
#define MAX_TRACKED 256
static struct jw_frame *tracked[MAX_TRACKED];
static size_t ntracked;
static struct jw_outq *tracked_q[8];
static size_t ntracked_q;

static struct jw_frame *
new_frame(const char *type, const char *text, size_t len, int sequenced, const char *job)
{
    struct jw_frame *f = jw_frame_new(type, text, len, sequenced, job);
    assert_true(ntracked < MAX_TRACKED);
    tracked[ntracked++] = f;
    return f;
}

/* The test's own reference goes. */
static void
release(struct jw_frame *f)
{
    for (size_t i = 0; i < ntracked; i++) {
        if (tracked[i] == f) {
            tracked[i] = tracked[--ntracked];
            jw_frame_unref(f);
            return;
        }
    }
    fail_msg("released a frame that was not tracked");
}

static struct jw_outq *
queue_new(void)
{
    struct jw_outq *q = calloc(1, sizeof *q);
    assert_non_null(q);
    jw_outq_init(q);
    assert_true(ntracked_q < 8);
    tracked_q[ntracked_q++] = q;
    return q;
}

static void
queue_free(struct jw_outq *q)
{
    jw_outq_clear(q);
    for (size_t i = 0; i < ntracked_q; i++)
        if (tracked_q[i] == q)
            tracked_q[i] = tracked_q[--ntracked_q];
    free(q);
}

struct model;
static struct model *tracked_model;
static void model_free(struct model *m);

static int
teardown(void **state)
{
    (void)state;
    while (ntracked_q)
        queue_free(tracked_q[0]);
    while (ntracked)
        release(tracked[0]);
    if (tracked_model)
        model_free(tracked_model);
    tracked_model = NULL;
    return 0;
}

static const struct jw_outq_pressure no_pressure = {.bytes = BIG, .after_ms = 0, .now_ms = 1000};
static const struct jw_outq_pressure always = {.bytes = 0, .after_ms = 0, .now_ms = 1000};

static struct jw_frame *
frame(const char *text, const char *job)
{
    return new_frame("event", text, strlen(text), 1, job);
}

static int
push(struct jw_outq *q, struct jw_frame *f, uint64_t seq, const struct jw_outq_pressure *p,
     unsigned *conflated)
{
    return jw_outq_push(q, f, seq, BIG, UINT32_MAX, false, p, conflated);
}

/* The head's text; fails cleanly (instead of crashing) when the head is a hole. */
static const struct jw_outq_slot *
head(struct jw_outq *q)
{
    const struct jw_outq_slot *s = jw_outq_peek(q);
    assert_non_null(s);
    if (!s->frame)
        fail_msg("jw_outq_peek returned a hole (frame NULL, seq %llu) with %u frames queued",
                 (unsigned long long)s->seq, q->count);
    return s;
}

static void
expect_pop(struct jw_outq *q, const char *text, uint64_t seq)
{
    const struct jw_outq_slot *s = head(q);
    if (strcmp(s->frame->text, text) != 0 || s->seq != seq)
        fail_msg("head is %s/%llu, expected %s/%llu", s->frame->text, (unsigned long long)s->seq,
                 text, (unsigned long long)seq);
    jw_outq_pop(q);
}

static void
test_fifo_seq_and_refcounts(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    assert_null(jw_outq_peek(q));
    struct jw_frame *frames[100];
    size_t bytes = 0;
    for (int i = 0; i < 100; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        frames[i] = new_frame("event", text, strlen(text), i % 2, NULL);
        assert_int_equal(push(q, frames[i], 1000 + (uint64_t)i, &no_pressure, &conflated), 0);
        assert_int_equal(frames[i]->refs, 2);
        bytes += jw_frame_cost(frames[i]);
        assert_int_equal(q->bytes, bytes);
    }
    assert_int_equal(q->count, 100);
    for (int i = 0; i < 50; i++) {
        const struct jw_outq_slot *s = head(q);
        assert_ptr_equal(s->frame, frames[i]);
        assert_int_equal(s->seq, 1000 + (uint64_t)i);
        jw_outq_pop(q);
        assert_int_equal(frames[i]->refs, 1);
        bytes -= jw_frame_cost(frames[i]);
        assert_int_equal(q->bytes, bytes);
        release(frames[i]);
    }
    /* Wrap around the ring while half full; the same frame may be queued twice. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(push(q, frames[50 + i], 2000 + (uint64_t)i, &no_pressure, &conflated), 0);
    for (int i = 0; i < 100; i++) {
        const struct jw_outq_slot *s = head(q);
        assert_ptr_equal(s->frame, frames[50 + i % 50]);
        assert_int_equal(s->seq, i < 50 ? 1050 + (uint64_t)i : 2000 + (uint64_t)(i - 50));
        jw_outq_pop(q);
    }
    assert_null(jw_outq_peek(q));
    assert_int_equal(q->bytes, 0);
    assert_int_equal(q->count, 0);
    assert_int_equal(conflated, 0);
    for (int i = 50; i < 100; i++) {
        assert_int_equal(frames[i]->refs, 1);
        release(frames[i]);
    }
    jw_outq_clear(q);
}

static void
test_limits_and_force(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    char big[100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct jw_frame *f = new_frame("x", big, 99, 0, NULL); /* cost 99 */
    struct jw_frame *s = new_frame("x", big, 68, 1, NULL); /* cost 68 + 32 */
    assert_int_equal(jw_frame_cost(f), 99);
    assert_int_equal(jw_frame_cost(s), 100);
    /* bytes: 99 + 100 = 199 <= 199; one more byte would not fit */
    assert_int_equal(jw_outq_push(q, f, 1, 199, 10, false, &no_pressure, &conflated), 0);
    assert_int_equal(jw_outq_push(q, s, 2, 199, 10, false, &no_pressure, &conflated), 0);
    assert_int_equal(jw_outq_push(q, f, 3, 297, 10, false, &no_pressure, &conflated), -ENOBUFS);
    assert_int_equal(q->count, 2);
    assert_int_equal(q->bytes, 199);
    assert_int_equal(f->refs, 2); /* nothing queued, no reference taken */
    /* frames: at most 2 */
    assert_int_equal(jw_outq_push(q, f, 3, BIG, 2, false, &no_pressure, &conflated), -ENOBUFS);
    assert_int_equal(jw_outq_push(q, f, 3, BIG, 3, false, &no_pressure, &conflated), 0);
    /* force: past both limits */
    assert_int_equal(jw_outq_push(q, s, 4, 1, 1, true, &no_pressure, &conflated), 0);
    assert_int_equal(q->count, 4);
    assert_int_equal(q->bytes, 398);
    expect_pop(q, big, 1);
    jw_outq_clear(q);
    assert_int_equal(q->count, 0);
    assert_int_equal(q->bytes, 0);
    assert_null(jw_outq_peek(q));
    assert_int_equal(f->refs, 1);
    assert_int_equal(s->refs, 1);
    /* An empty queue always takes one frame, however large; the second is refused. */
    assert_int_equal(jw_outq_push(q, f, 5, 10, 0, false, &no_pressure, &conflated), 0);
    assert_int_equal(jw_outq_push(q, f, 6, 10, 0, false, &no_pressure, &conflated), -ENOBUFS);
    expect_pop(q, f->text, 5);
    jw_outq_clear(q);
    jw_outq_clear(q); /* twice is harmless */
    release(f);
    release(s);
    assert_int_equal(conflated, 0);
}

static void
test_no_conflation_without_pressure(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *a1 = frame("a1", "A"), *a2 = frame("a2", "A"), *a3 = frame("a3", "A");
    /* below the byte threshold, and never by age */
    struct jw_outq_pressure p = {.bytes = 1000, .after_ms = 0, .now_ms = 1};
    assert_int_equal(push(q, a1, 1, &p, &conflated), 0);
    p.now_ms = 1000000;
    assert_int_equal(push(q, a2, 2, &p, &conflated), 0);
    assert_int_equal(push(q, a3, 3, &p, &conflated), 0);
    /* by age, not yet old enough */
    p.after_ms = 5000;
    p.now_ms = 1 + 4999;
    assert_int_equal(push(q, a1, 4, &p, &conflated), 0);
    assert_int_equal(conflated, 0);
    assert_int_equal(q->count, 4);
    expect_pop(q, "a1", 1);
    expect_pop(q, "a2", 2);
    expect_pop(q, "a3", 3);
    expect_pop(q, "a1", 4);
    jw_outq_clear(q);
    release(a1);
    release(a2);
    release(a3);
}

static void
test_conflation_by_bytes_keeps_order_and_seq(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *s0 = frame("s0", NULL), *p1 = frame("p1", "A"), *s1 = frame("s1", NULL);
    struct jw_frame *o1 = frame("o1", "B"), *p2 = frame("p2", "A"), *c1 = frame("c1", NULL);
    struct jw_frame *p3 = frame("p3", "A");
    size_t cost = jw_frame_cost(s0); /* every frame costs the same */
    /* pressure from 3 frames on */
    struct jw_outq_pressure p = {.bytes = 3 * cost, .after_ms = 0, .now_ms = 5};
    assert_int_equal(push(q, s0, 1, &p, &conflated), 0);
    assert_int_equal(push(q, p1, 2, &p, &conflated), 0);
    assert_int_equal(push(q, s1, 3, &p, &conflated), 0);
    assert_int_equal(push(q, o1, 4, &p, &conflated), 0); /* at 3 frames: B has none queued */
    assert_int_equal(conflated, 0);
    assert_int_equal(push(q, p2, 5, &p, &conflated), 0); /* replaces p1 */
    assert_int_equal(conflated, 1);
    assert_int_equal(push(q, c1, 6, &p, &conflated), 0); /* never conflates */
    assert_int_equal(push(q, p3, 7, &p, &conflated), 0); /* replaces p2 */
    assert_int_equal(conflated, 2);
    assert_int_equal(q->count, 5);
    assert_int_equal(q->bytes, 5 * cost);
    assert_int_equal(p1->refs, 1);
    assert_int_equal(p2->refs, 1);
    /* What stays keeps its order and its seq; the conflated ones leave gaps (2 and 5). */
    expect_pop(q, "s0", 1);
    expect_pop(q, "s1", 3);
    expect_pop(q, "o1", 4);
    expect_pop(q, "c1", 6);
    expect_pop(q, "p3", 7);
    assert_null(jw_outq_peek(q));
    jw_outq_clear(q);
    struct jw_frame *all[] = {s0, p1, s1, o1, p2, c1, p3};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(all[i]->refs, 1);
        release(all[i]);
    }
}

static void
test_conflation_by_age(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *s = frame("s", NULL), *a1 = frame("a1", "A"), *a2 = frame("a2", "A");
    struct jw_outq_pressure p = {.bytes = BIG, .after_ms = 100, .now_ms = 1000};
    assert_int_equal(push(q, s, 1, &p, &conflated), 0); /* non-empty since 1000 */
    assert_int_equal(q->nonempty_since, 1000);
    p.now_ms = 1050;
    assert_int_equal(push(q, a1, 2, &p, &conflated), 0);
    p.now_ms = 1099;
    assert_int_equal(push(q, a2, 3, &p, &conflated), 0); /* 99 ms: not yet */
    assert_int_equal(conflated, 0);
    assert_int_equal(q->count, 3);
    p.now_ms = 1100;
    assert_int_equal(push(q, a1, 4, &p, &conflated), 0); /* 100 ms: replaces a2 (seq 3) */
    assert_int_equal(conflated, 1);
    expect_pop(q, "s", 1);
    expect_pop(q, "a1", 2);
    expect_pop(q, "a1", 4);
    assert_null(jw_outq_peek(q));
    /* Empty again: the age starts over with the next frame. */
    p.now_ms = 5000;
    assert_int_equal(push(q, s, 5, &p, &conflated), 0);
    assert_int_equal(q->nonempty_since, 5000);
    p.now_ms = 5099;
    assert_int_equal(push(q, a1, 6, &p, &conflated), 0);
    assert_int_equal(push(q, a2, 7, &p, &conflated), 0);
    assert_int_equal(conflated, 1);
    assert_int_equal(q->count, 3);
    jw_outq_clear(q);
    release(s);
    release(a1);
    release(a2);
}

/* The oldest queued frame may be the one a newer frame of its job replaces: what is left must
 * still start with a frame (outq.h: the oldest slot is never a hole). */
static void
test_conflating_the_oldest_frame(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *a1 = frame("a1", "A"), *a2 = frame("a2", "A"), *s = frame("s", NULL);
    /* [a1, s] + a2 under pressure → [s, a2] */
    assert_int_equal(push(q, a1, 1, &always, &conflated), 0);
    assert_int_equal(push(q, s, 2, &always, &conflated), 0);
    assert_int_equal(push(q, a2, 3, &always, &conflated), 0);
    assert_int_equal(conflated, 1);
    assert_int_equal(q->count, 2);
    expect_pop(q, "s", 2);
    expect_pop(q, "a2", 3);
    assert_null(jw_outq_peek(q));
    jw_outq_clear(q);
    /* [a1] + a2 under age pressure → [a2] */
    struct jw_outq_pressure p = {.bytes = BIG, .after_ms = 10, .now_ms = 100};
    assert_int_equal(push(q, a1, 1, &p, &conflated), 0);
    p.now_ms = 200;
    assert_int_equal(push(q, a2, 2, &p, &conflated), 0);
    assert_int_equal(conflated, 2);
    assert_int_equal(q->count, 1);
    expect_pop(q, "a2", 2);
    jw_outq_clear(q);
    release(a1);
    release(a2);
    release(s);
}

static void
test_only_same_job_and_only_older(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *h = frame("h", NULL), *a = frame("a", "A"), *b = frame("b", "B");
    struct jw_frame *ab = frame("ab", "AB"), *a2 = frame("a2", "A");
    assert_int_equal(push(q, h, 1, &always, &conflated), 0);
    assert_int_equal(push(q, a, 2, &always, &conflated), 0);
    assert_int_equal(push(q, b, 3, &always, &conflated), 0);  /* another job: stays */
    assert_int_equal(push(q, ab, 4, &always, &conflated), 0); /* "AB" is not "A" */
    assert_int_equal(conflated, 0);
    /* a popped frame is no longer there to replace */
    expect_pop(q, "h", 1);
    expect_pop(q, "a", 2);
    assert_int_equal(push(q, a2, 5, &always, &conflated), 0);
    assert_int_equal(conflated, 0);
    assert_int_equal(q->count, 3);
    expect_pop(q, "b", 3);
    expect_pop(q, "ab", 4);
    expect_pop(q, "a2", 5);
    jw_outq_clear(q);
    struct jw_frame *all[] = {h, a, b, ab, a2};
    for (size_t i = 0; i < 5; i++)
        release(all[i]);
}

/* A push that is refused changes nothing: the older frame of the job it would have replaced
 * stays (else the job's latest progress is lost), and the index still finds it afterwards. */
static void
test_refused_push_changes_nothing(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *s = frame("s", NULL), *a1 = frame("a1", "A"), *a2 = frame("a2", "A");
    struct jw_frame *big = frame("a3-is-much-longer-than-the-others", "A");
    size_t limit = jw_frame_cost(s) + jw_frame_cost(a1) + jw_frame_cost(a2);
    assert_int_equal(jw_outq_push(q, s, 1, limit, 100, false, &no_pressure, &conflated), 0);
    assert_int_equal(jw_outq_push(q, a1, 2, limit, 100, false, &no_pressure, &conflated), 0);
    assert_int_equal(jw_outq_push(q, a2, 3, limit, 100, false, &no_pressure, &conflated), 0);
    /* Under pressure `big` would replace a2, but even then it does not fit. */
    assert_int_equal(jw_outq_push(q, big, 4, limit, 100, false, &always, &conflated), -ENOBUFS);
    unsigned refused_conflations = conflated;
    unsigned count = q->count;
    size_t bytes = q->bytes;
    /* a replacement that fits: the newest A is replaced, whatever happened before */
    assert_int_equal(jw_outq_push(q, a1, 5, limit, 100, false, &always, &conflated), 0);
    jw_outq_clear(q);
    release(s);
    release(a1);
    release(a2);
    release(big);
    assert_int_equal(refused_conflations, 0);
    assert_int_equal(count, 3);
    assert_int_equal(bytes, limit);
    assert_int_equal(conflated, 1);
}

/* Replacing a frame makes room: a push at the frame limit that replaces one is accepted. */
static void
test_limits_count_after_conflation(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    struct jw_frame *s = frame("s", NULL), *p = frame("p", "P");
    assert_int_equal(jw_outq_push(q, s, 1, BIG, 2, false, &always, &conflated), 0);
    assert_int_equal(jw_outq_push(q, p, 2, BIG, 2, false, &always, &conflated), 0);
    assert_int_equal(jw_outq_push(q, s, 3, BIG, 2, false, &always, &conflated), -ENOBUFS);
    assert_int_equal(jw_outq_push(q, p, 4, BIG, 2, false, &always, &conflated), 0);
    assert_int_equal(conflated, 1);
    assert_int_equal(q->count, 2);
    expect_pop(q, "s", 1);
    expect_pop(q, "p", 4);
    jw_outq_clear(q);
    release(s);
    release(p);
}

/* Thousands of replacements make holes; compaction reclaims them and the job index keeps
 * pointing at the right frames across it and across partial drains. */
static void
test_holes_compaction_and_index(void **state)
{
    (void)state;
    struct jw_outq *q = queue_new();
    unsigned conflated = 0;
    enum { JOBS = 5, ROUNDS = 3000 };
    struct jw_frame *hold = frame("hold", NULL), *hold2 = frame("hold", NULL);
    struct jw_frame *p[JOBS];
    char name[JOBS][4];
    for (int j = 0; j < JOBS; j++) {
        snprintf(name[j], sizeof name[j], "J%d", j);
        p[j] = frame(name[j], name[j]);
    }
    uint64_t seq = 0, last_seq[JOBS] = {0};
    /* Two frames that never conflate ahead of the jobs' (the oldest is never replaced here). */
    assert_int_equal(push(q, hold, ++seq, &always, &conflated), 0);
    assert_int_equal(push(q, hold2, ++seq, &always, &conflated), 0);
    uint32_t max_cap = 0;
    unsigned holds = 2;
    for (int r = 0; r < ROUNDS; r++) {
        int j = r % JOBS;
        unsigned before = conflated;
        assert_int_equal(push(q, p[j], ++seq, &always, &conflated), 0);
        assert_int_equal(conflated - before, r >= JOBS ? 1u : 0u);
        last_seq[j] = seq;
        assert_int_equal(q->count, holds + (r < JOBS ? r + 1 : JOBS));
        max_cap = q->cap > max_cap ? q->cap : max_cap;
        if (r == ROUNDS / 2) { /* a partial drain in the middle */
            expect_pop(q, "hold", 1);
            holds = 1;
        }
    }
    /* Holes were reclaimed: the ring never grew with the number of replacements. */
    assert_true(max_cap <= 256);
    assert_int_equal(q->bytes, jw_frame_cost(hold2) + JOBS * jw_frame_cost(p[0]));
    /* The newest frame of each job survived, in push order, with its own seq. */
    int order[JOBS];
    for (int k = 0; k < JOBS; k++)
        order[k] = (ROUNDS + k) % JOBS;
    const struct jw_outq_slot *s = head(q);
    assert_ptr_equal(s->frame, hold2);
    assert_int_equal(s->seq, 2);
    jw_outq_pop(q);
    for (int k = 0; k < JOBS; k++) {
        int j = order[k];
        s = head(q);
        assert_string_equal(s->frame->text, name[j]);
        assert_int_equal(s->seq, last_seq[j]);
        jw_outq_pop(q);
    }
    assert_null(jw_outq_peek(q));
    assert_int_equal(q->bytes, 0);
    jw_outq_clear(q);
    assert_int_equal(hold->refs, 1);
    assert_int_equal(hold2->refs, 1);
    release(hold);
    release(hold2);
    for (int j = 0; j < JOBS; j++) {
        assert_int_equal(p[j]->refs, 1);
        release(p[j]);
    }
}

/* ---- model check -------------------------------------------------------------------- */

struct mslot {
    struct jw_frame *f;
    uint64_t seq;
};

struct model {
    struct mslot *v;
    size_t n, cap;
    size_t bytes;
    uint64_t nonempty_since;
};

static void
model_free(struct model *m)
{
    free(m->v);
    free(m);
}

static void
model_push(struct model *m, struct jw_frame *f, uint64_t seq, uint64_t now)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        assert_non_null(m->v);
    }
    if (m->n == 0)
        m->nonempty_since = now;
    m->v[m->n++] = (struct mslot){f, seq};
    m->bytes += jw_frame_cost(f);
}

static void
model_remove(struct model *m, size_t i)
{
    m->bytes -= jw_frame_cost(m->v[i].f);
    memmove(m->v + i, m->v + i + 1, (m->n - i - 1) * sizeof *m->v);
    m->n--;
}

/* The queue's frames in order (a white-box walk of the ring, holes skipped). */
static void
compare(const struct jw_outq *q, const struct model *m, uint64_t seed, int step)
{
    if (q->count != m->n || q->bytes != m->bytes)
        fail_msg("seed %llu step %d: count %u bytes %zu, model %zu %zu", (unsigned long long)seed,
                 step, q->count, q->bytes, m->n, m->bytes);
    size_t k = 0;
    for (uint32_t i = 0; i < q->used; i++) {
        const struct jw_outq_slot *s = &q->ring[(q->head + i) & (q->cap - 1)];
        if (i == 0 && !s->frame)
            fail_msg("seed %llu step %d: the oldest slot is a hole", (unsigned long long)seed,
                     step);
        if (!s->frame)
            continue;
        if (k >= m->n || s->frame != m->v[k].f || s->seq != m->v[k].seq)
            fail_msg("seed %llu step %d: slot %u differs from the model (position %zu)",
                     (unsigned long long)seed, step, i, k);
        k++;
    }
    assert_int_equal(k, m->n);
    if (m->n)
        assert_int_equal(q->nonempty_since, m->nonempty_since);
}

static void
test_model(void **state)
{
    (void)state;
    uint64_t seed =
        getenv("JW_TEST_SEED") ? strtoull(getenv("JW_TEST_SEED"), NULL, 10) : jw_random_seed();
    for (int run = 0; run < 40; run++) {
        uint64_t rng = seed + (uint64_t)run;
        struct jw_outq *q = queue_new();
        struct model *m = calloc(1, sizeof *m);
        assert_non_null(m);
        tracked_model = m;
        static const char *const jobs[] = {"A", "B", "C", "D"};
        struct jw_frame *pool[16];
        for (int i = 0; i < 16; i++) {
            char text[48];
            size_t len = 1 + jw_random_below(&rng, 40);
            memset(text, 'a' + i, len);
            text[len] = '\0';
            pool[i] = new_frame("event", text, len, (int)jw_random_below(&rng, 2),
                                i < 8 ? jobs[i % 4] : NULL);
        }
        size_t press = 200, max_bytes = 400;
        uint32_t max_frames = 12;
        uint64_t after = 0, now = 1000, seq = 0;
        unsigned conflated = 0;
        for (int step = 0; step < 2000; step++) {
            unsigned op = (unsigned)jw_random_below(&rng, 100);
            if (op < 55) {
                struct jw_frame *f = pool[jw_random_below(&rng, 16)];
                bool force = jw_random_below(&rng, 10) == 0;
                struct jw_outq_pressure p = {press, after, now};
                unsigned before = conflated;
                /* the model: under pressure a conflating frame replaces the newest older frame
                 * of its job; the limits apply to the queue as it is after that replacement;
                 * a refused push changes nothing (outq.h: "nothing queued") */
                bool under =
                    m->n && (m->bytes >= press || (after && now - m->nonempty_since >= after));
                size_t victim = SIZE_MAX;
                if (f->conflates && under)
                    for (size_t i = m->n; i-- > 0 && victim == SIZE_MAX;)
                        if (m->v[i].f->conflates && strcmp(m->v[i].f->conflates, f->conflates) == 0)
                            victim = i;
                size_t cost = jw_frame_cost(f);
                size_t n_after = m->n - (victim != SIZE_MAX);
                size_t bytes_after =
                    m->bytes - (victim != SIZE_MAX ? jw_frame_cost(m->v[victim].f) : 0);
                bool refuse = !force && n_after &&
                              (bytes_after + cost > max_bytes || n_after + 1 > max_frames);
                unsigned want_conf = !refuse && victim != SIZE_MAX;
                int rc = jw_outq_push(q, f, ++seq, max_bytes, max_frames, force, &p, &conflated);
                if (rc != (refuse ? -ENOBUFS : 0))
                    fail_msg("seed %llu step %d: push returned %d",
                             (unsigned long long)(seed + run), step, rc);
                if (conflated - before != want_conf)
                    fail_msg("seed %llu step %d: push %s conflated %u frame(s), the model %u",
                             (unsigned long long)(seed + run), step, refuse ? "(refused)" : "",
                             conflated - before, want_conf);
                /* a replaced frame was waiting: the queue was never empty, its age goes on */
                uint64_t since = m->nonempty_since;
                if (want_conf)
                    model_remove(m, victim);
                if (!refuse)
                    model_push(m, f, seq, now);
                if (want_conf)
                    m->nonempty_since = since;
            } else if (op < 85) {
                const struct jw_outq_slot *s = jw_outq_peek(q);
                if (!m->n) {
                    assert_null(s);
                    continue;
                }
                assert_non_null(s);
                if (s->frame != m->v[0].f || s->seq != m->v[0].seq)
                    fail_msg("seed %llu step %d: peek differs from the model (frame %p)",
                             (unsigned long long)(seed + run), step, (void *)s->frame);
                jw_outq_pop(q);
                model_remove(m, 0);
            } else if (op < 87) {
                jw_outq_clear(q);
                m->n = 0;
                m->bytes = 0;
            } else if (op < 93) {
                now += jw_random_below(&rng, 300);
            } else if (op < 96) {
                press = jw_random_below(&rng, 2) ? (size_t)jw_random_below(&rng, 500) : BIG;
                after = jw_random_below(&rng, 2) ? jw_random_below(&rng, 500) : 0;
            } else {
                max_bytes = 50 + (size_t)jw_random_below(&rng, 800);
                max_frames = 1 + (uint32_t)jw_random_below(&rng, 30);
            }
            compare(q, m, seed + (uint64_t)run, step);
        }
        queue_free(q);
        for (int i = 0; i < 16; i++) {
            assert_int_equal(pool[i]->refs, 1);
            release(pool[i]);
        }
        model_free(m);
        tracked_model = NULL;
    }
}

/* ---- frames and buffers ------------------------------------------------------------------ */

static void
test_frame(void **state)
{
    (void)state;
    struct jw_frame *f = jw_frame_new("event", "{\"a\":1", 6, 1, "job:1");
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->sequenced, 1);
    assert_string_equal(f->type, "event");
    assert_int_equal(f->len, 6);
    assert_memory_equal(f->text, "{\"a\":1", 7); /* NUL-terminated */
    assert_string_equal(f->conflates, "job:1");
    assert_int_equal(f->event_id, 0);
    assert_int_equal(f->origin_ns, 0);
    assert_int_equal(jw_frame_cost(f), 6 + 32);
    assert_ptr_equal(jw_frame_ref(f), f);
    jw_frame_unref(f);
    assert_int_equal(f->refs, 1);
    jw_frame_unref(f);
    f = jw_frame_new("pong", "{}", 2, 0, NULL);
    assert_null(f->conflates);
    assert_int_equal(jw_frame_cost(f), 2);
    jw_frame_unref(f);
    jw_frame_unref(NULL);
}

static void
test_buf_json_string(void **state)
{
    (void)state;
    struct jw_buf b;
    jw_buf_init(&b, 1);
    jw_buf_append_json_string(&b, "a\"b\\c\n\x01\x7f", 8);
    jw_buf_append_u64(&b, 1234567890123ULL);
    const char *want = "\"a\\\"b\\\\c\\u000a\\u0001\x7f\"1234567890123";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    jw_buf_free(&b);
    /* bytes that are not UTF-8 become U+FFFD; valid sequences stay */
    jw_buf_init(&b, 0);
    jw_buf_append_json_string(&b, "\xff\xc3\xa9\xed\xa0\x80\xe2\x82", 8);
    want = "\"\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    jw_buf_free(&b);
    /* worst case: every byte a 6-byte escape, in a buffer grown from nothing */
    char ctl[300];
    memset(ctl, 0x01, sizeof ctl);
    jw_buf_init(&b, 0);
    jw_buf_append_json_string(&b, ctl, sizeof ctl);
    assert_int_equal(b.len, 2 + 6 * sizeof ctl);
    jw_buf_append_u64(&b, 18446744073709551615ULL);
    assert_memory_equal(b.data + b.len - 20, "18446744073709551615", 20);
    jw_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fifo_seq_and_refcounts, teardown),
        cmocka_unit_test_teardown(test_limits_and_force, teardown),
        cmocka_unit_test_teardown(test_no_conflation_without_pressure, teardown),
        cmocka_unit_test_teardown(test_conflation_by_bytes_keeps_order_and_seq, teardown),
        cmocka_unit_test_teardown(test_conflation_by_age, teardown),
        cmocka_unit_test_teardown(test_conflating_the_oldest_frame, teardown),
        cmocka_unit_test_teardown(test_only_same_job_and_only_older, teardown),
        cmocka_unit_test_teardown(test_refused_push_changes_nothing, teardown),
        cmocka_unit_test_teardown(test_limits_count_after_conflation, teardown),
        cmocka_unit_test_teardown(test_holes_compaction_and_index, teardown),
        cmocka_unit_test_teardown(test_model, teardown),
        cmocka_unit_test_teardown(test_frame, teardown),
        cmocka_unit_test_teardown(test_buf_json_string, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
