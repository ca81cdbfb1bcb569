/*
 * Unit tests for window.c, the resume window: eviction by count and by bytes, covers() (every
 * event after the given id still held), replay ranges (after < id <= upto, oldest first, ids
 * strictly increasing), the window turned off, references and gauges; and a model check of
 * random sequences against a plain list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/event.h"
#include "jobwire/metrics.h"
#include "jobwire/rand.h"
#include "../../src/gateway/window.h"

static const struct jw_event_rules rules = {.prefix = "ai:job:", .max_payload_bytes = 1 << 20};

/* Windows and events a test holds are tracked, so that a test that fails half-way (a bug
 * found) still releases them in the teardown: valgrind then reports the failure, not a leak. */
static struct jw_window *tracked_w[4];
static size_t ntracked_w;
static struct jw_event *tracked_ev[64];
static size_t ntracked_ev;

static struct jw_window *
window_new(size_t max_events, size_t max_bytes)
{
    struct jw_window *w = jw_window_new(max_events, max_bytes);
    assert_true(ntracked_w < 4);
    tracked_w[ntracked_w++] = w;
    return w;
}

static void
window_free(struct jw_window *w)
{
    for (size_t i = 0; i < ntracked_w; i++)
        if (tracked_w[i] == w)
            tracked_w[i] = tracked_w[--ntracked_w];
    jw_window_free(w);
}

/* The test's own reference goes. */
static void
release(struct jw_event *ev)
{
    for (size_t i = 0; i < ntracked_ev; i++)
        if (tracked_ev[i] == ev)
            tracked_ev[i] = tracked_ev[--ntracked_ev];
    jw_event_unref(ev);
}

static int
teardown(void **state)
{
    (void)state;
    while (ntracked_w)
        window_free(tracked_w[0]);
    while (ntracked_ev)
        release(tracked_ev[0]);
    return 0;
}

/* An event with entry number `id` whose frame is about `pad` bytes longer than the minimum. */
static struct jw_event *
event(uint64_t id, size_t pad)
{
    char *payload = jw_malloc(pad + 3);
    payload[0] = '"';
    memset(payload + 1, 'p', pad);
    payload[pad + 1] = '"';
    struct jw_event *ev = NULL;
    const char *ch = "ai:job:status:j";
    assert_int_equal(jw_event_parse(&rules, ch, strlen(ch), payload, pad + 2, id, &ev),
                     JW_EVENT_OK);
    free(payload);
    assert_true(ntracked_ev < 64);
    tracked_ev[ntracked_ev++] = ev;
    return ev;
}

struct seen {
    uint64_t ids[4096];
    size_t n;
};

static void
collect(void *ctx, struct jw_event *ev)
{
    struct seen *s = ctx;
    assert_true(s->n < 4096);
    s->ids[s->n++] = ev->id;
}

static void
test_evict_by_count(void **state)
{
    (void)state;
    struct jw_window *w = window_new(5, 1 << 30);
    assert_int_equal(jw_window_position(w), 0);
    assert_true(jw_window_covers(w, 0)); /* nothing routed yet: nothing missed */
    struct jw_event *evs[12];
    for (uint64_t id = 1; id <= 12; id++) {
        evs[id - 1] = event(id * 10, 0); /* ids with gaps, as routing leaves them */
        jw_window_add(w, evs[id - 1]);
        assert_int_equal(evs[id - 1]->refs, 2);
        assert_int_equal(jw_window_position(w), id * 10);
        assert_int_equal(jw_metric_get(JW_M_RESUME_WINDOW_EVENTS), id < 5 ? id : 5);
    }
    /* held: 80..120; evicted up to 70 */
    for (int i = 0; i < 7; i++)
        assert_int_equal(evs[i]->refs, 1);
    for (int i = 7; i < 12; i++)
        assert_int_equal(evs[i]->refs, 2);
    assert_false(jw_window_covers(w, 0));
    assert_false(jw_window_covers(w, 69));
    assert_true(jw_window_covers(w, 70));
    assert_true(jw_window_covers(w, 75));
    assert_true(jw_window_covers(w, 120));
    assert_false(jw_window_covers(w, 121)); /* an id this process never gave out */
    struct seen s = {.n = 0};
    jw_window_replay(w, 70, 120, collect, &s);
    assert_int_equal(s.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s.ids[i], 80 + 10 * i);
    s.n = 0;
    jw_window_replay(w, 95, 110, collect, &s); /* between ids, and an inclusive upper end */
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], 100);
    assert_int_equal(s.ids[1], 110);
    s.n = 0;
    jw_window_replay(w, 120, 1000, collect, &s);
    assert_int_equal(s.n, 0);
    jw_window_replay(w, 0, 79, collect, &s);
    assert_int_equal(s.n, 0);
    window_free(w);
    assert_int_equal(jw_metric_get(JW_M_RESUME_WINDOW_EVENTS), 5); /* free does not report */
    for (int i = 0; i < 12; i++) {
        assert_int_equal(evs[i]->refs, 1);
        release(evs[i]);
    }
    jw_window_free(NULL);
}

static void
test_evict_by_bytes(void **state)
{
    (void)state;
    /* ids of three digits: every frame below has the same length */
    struct jw_event *probe = event(100, 100);
    size_t len = probe->frame->len;
    release(probe);
    struct jw_window *w = window_new(1000, 3 * len);
    for (uint64_t id = 101; id <= 110; id++) {
        struct jw_event *ev = event(id, 100);
        assert_int_equal(ev->frame->len, len);
        jw_window_add(w, ev);
        release(ev); /* the window keeps its own reference */
        size_t held = id - 100 < 3 ? id - 100 : 3;
        assert_int_equal(jw_metric_get(JW_M_RESUME_WINDOW_BYTES), (int64_t)(held * len));
        assert_int_equal(jw_metric_get(JW_M_RESUME_WINDOW_EVENTS), (int64_t)held);
        assert_true(jw_metric_get(JW_M_RESUME_WINDOW_AGE_NS) >= 0);
    }
    assert_true(jw_window_covers(w, 107));
    assert_false(jw_window_covers(w, 106));
    /* a larger event pushes out as many as it needs */
    struct jw_event *big = event(111, 100 + len + len / 2);
    jw_window_add(w, big);
    release(big);
    assert_int_equal(jw_metric_get(JW_M_RESUME_WINDOW_EVENTS), 1);
    assert_true(jw_window_covers(w, 110));
    assert_false(jw_window_covers(w, 109));
    struct seen s = {.n = 0};
    jw_window_replay(w, 0, UINT64_MAX, collect, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 111);
    window_free(w);
}

/* A lost subscription: nothing before now can be resumed from, what is held stays held. */
static void
test_break(void **state)
{
    (void)state;
    struct jw_window *w = window_new(100, 1 << 20);
    for (uint64_t id = 1; id <= 5; id++) {
        struct jw_event *ev = event(id, 0);
        jw_window_add(w, ev);
        release(ev);
    }
    assert_true(jw_window_covers(w, 0));
    assert_true(jw_window_covers(w, 3));
    jw_window_break(w);
    assert_false(jw_window_covers(w, 0));
    assert_false(jw_window_covers(w, 4));
    assert_true(jw_window_covers(w, 5)); /* nothing after now was missed */
    assert_int_equal(jw_window_position(w), 5);
    struct jw_event *ev = event(9, 0);
    jw_window_add(w, ev);
    release(ev);
    assert_false(jw_window_covers(w, 4));
    assert_true(jw_window_covers(w, 5));
    struct seen s = {.n = 0};
    jw_window_replay(w, 5, 9, collect, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 9);
    window_free(w);

    /* Evicting events older than the break must not make the outage resumable again. */
    w = window_new(3, 1 << 20);
    for (uint64_t id = 1; id <= 3; id++) {
        ev = event(id, 0);
        jw_window_add(w, ev);
        release(ev);
    }
    jw_window_break(w); /* at 3: events 4..6 are published during the outage, never seen */
    ev = event(7, 0);   /* the first after the reconnect evicts event 1 */
    jw_window_add(w, ev);
    release(ev);
    if (jw_window_covers(w, 2))
        fail_msg("covers(2) after a break at 3: events 4..6 were never received");
    assert_true(jw_window_covers(w, 3));
    window_free(w);
}

static void
test_window_off(void **state)
{
    (void)state;
    struct jw_window *w = window_new(0, 1 << 20);
    struct jw_event *ev = event(5, 0);
    jw_window_add(w, ev);
    assert_int_equal(ev->refs, 1); /* not held */
    assert_int_equal(jw_window_position(w), 5);
    assert_false(jw_window_covers(w, 5));
    assert_false(jw_window_covers(w, 0));
    struct seen s = {.n = 0};
    jw_window_replay(w, 0, 10, collect, &s);
    assert_int_equal(s.n, 0);
    window_free(w);
    release(ev);
}

/* ---- model ------------------------------------------------------------------------------ */

static void
test_model(void **state)
{
    (void)state;
    uint64_t seed = jw_random_seed();
    for (int run = 0; run < 30; run++) {
        uint64_t rng = seed + (uint64_t)run;
        size_t max_events = 1 + jw_random_below(&rng, 300);
        size_t max_bytes = 200 + jw_random_below(&rng, 20000);
        struct jw_window *w = window_new(max_events, max_bytes);
        uint64_t ids[2000], id = 0, evicted = 0;
        size_t lens[2000], head = 0, n = 0, bytes = 0;
        for (int step = 0; step < 2000; step++) {
            if (jw_random_below(&rng, 50) == 0) { /* the subscription was lost */
                jw_window_break(w);
                evicted = id;
            }
            id += 1 + jw_random_below(&rng, 3);
            struct jw_event *ev = event(id, jw_random_below(&rng, 400));
            size_t len = ev->frame->len;
            jw_window_add(w, ev);
            release(ev);
            /* the rule: the oldest go while the window is full or the new one does not fit */
            while (n && (n == max_events || bytes + len > max_bytes)) {
                /* a break (evicted at the position) stays in force */
                evicted = ids[head] > evicted ? ids[head] : evicted;
                bytes -= lens[head];
                head++;
                n--;
            }
            ids[head + n] = id;
            lens[head + n] = len;
            n++;
            bytes += len;
            if (jw_metric_get(JW_M_RESUME_WINDOW_EVENTS) != (int64_t)n ||
                jw_metric_get(JW_M_RESUME_WINDOW_BYTES) != (int64_t)bytes)
                fail_msg("seed %llu step %d: window holds %lld events / %lld bytes, model %zu / "
                         "%zu",
                         (unsigned long long)(seed + run), step,
                         (long long)jw_metric_get(JW_M_RESUME_WINDOW_EVENTS),
                         (long long)jw_metric_get(JW_M_RESUME_WINDOW_BYTES), n, bytes);
            assert_int_equal(jw_window_position(w), id);
            /* covers: every id in (after, position] is held */
            for (int k = 0; k < 4; k++) {
                uint64_t after = jw_random_below(&rng, id + 3);
                bool want = after >= evicted && after <= id;
                if (jw_window_covers(w, after) != want)
                    fail_msg("seed %llu step %d: covers(%llu) != %d (evicted %llu, position "
                             "%llu)",
                             (unsigned long long)(seed + run), step, (unsigned long long)after,
                             want, (unsigned long long)evicted, (unsigned long long)id);
                uint64_t upto = after + jw_random_below(&rng, 50);
                struct seen s = {.n = 0};
                jw_window_replay(w, after, upto, collect, &s);
                size_t k2 = 0;
                for (size_t i = head; i < head + n; i++) {
                    if (ids[i] <= after || ids[i] > upto)
                        continue;
                    if (k2 >= s.n || s.ids[k2] != ids[i])
                        fail_msg("seed %llu step %d: replay(%llu, %llu) differs at %zu",
                                 (unsigned long long)(seed + run), step, (unsigned long long)after,
                                 (unsigned long long)upto, k2);
                    k2++;
                }
                assert_int_equal(k2, s.n);
                for (size_t i = 1; i < s.n; i++)
                    assert_true(s.ids[i] > s.ids[i - 1]);
            }
        }
        window_free(w);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_evict_by_count, teardown),
        cmocka_unit_test_teardown(test_evict_by_bytes, teardown),
        cmocka_unit_test_teardown(test_break, teardown),
        cmocka_unit_test_teardown(test_window_off, teardown),
        cmocka_unit_test_teardown(test_model, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
