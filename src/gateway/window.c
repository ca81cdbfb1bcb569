/*
 * The resume window (see window.h): a ring of event references.
 *
 * Invariants: ids in the ring strictly increase from head to tail; `evicted` is the largest id
 * that left it (0 when none did), so every event with a larger id routed so far is in the ring.
 */
#include "window.h"

#include <stdlib.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/metrics.h"

struct jw_window {
    struct jw_event **ring;
    size_t head, count, cap;
    size_t bytes, max_events, max_bytes;
    uint64_t position, evicted;
    uint64_t *added_ns; /* when each entry came, for the age gauge */
};

struct jw_window *
jw_window_new(size_t max_events, size_t max_bytes)
{
    struct jw_window *w = jw_calloc(1, sizeof *w);
    w->max_events = max_events;
    w->max_bytes = max_bytes;
    return w;
}

static struct jw_event **
at(const struct jw_window *w, size_t i)
{
    return &w->ring[(w->head + i) % w->cap];
}

static void
evict_oldest(struct jw_window *w)
{
    struct jw_event *ev = *at(w, 0);
    if (ev->id > w->evicted) /* a break may have moved it past the ring's events */
        w->evicted = ev->id;
    w->bytes -= ev->frame->len;
    jw_event_unref(ev);
    w->head = (w->head + 1) % w->cap;
    w->count--;
}

static void
update_gauges(const struct jw_window *w)
{
    jw_metric_set(JW_M_RESUME_WINDOW_EVENTS, (int64_t)w->count);
    jw_metric_set(JW_M_RESUME_WINDOW_BYTES, (int64_t)w->bytes);
    jw_metric_set(JW_M_RESUME_WINDOW_AGE_NS,
                  w->count ? (int64_t)(jw_now_ns() - w->added_ns[w->head]) : 0);
}

void
jw_window_free(struct jw_window *w)
{
    if (!w)
        return;
    while (w->count)
        evict_oldest(w);
    free(w->ring);
    free(w->added_ns);
    free(w);
}

void
jw_window_add(struct jw_window *w, struct jw_event *ev)
{
    w->position = ev->id;
    if (!w->max_events) {
        w->evicted = ev->id;
        return;
    }
    if (w->count == w->cap && w->cap < w->max_events) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        cap = cap > w->max_events ? w->max_events : cap;
        struct jw_event **ring = jw_malloc(cap * sizeof *ring);
        uint64_t *added = jw_malloc(cap * sizeof *added);
        for (size_t i = 0; i < w->count; i++) {
            ring[i] = *at(w, i);
            added[i] = w->added_ns[(w->head + i) % w->cap];
        }
        free(w->ring);
        free(w->added_ns);
        w->ring = ring;
        w->added_ns = added;
        w->cap = cap;
        w->head = 0;
    }
    while (w->count && (w->count == w->cap || w->bytes + ev->frame->len > w->max_bytes))
        evict_oldest(w);
    size_t tail = (w->head + w->count) % w->cap;
    w->ring[tail] = jw_event_ref(ev);
    w->added_ns[tail] = jw_now_ns();
    w->count++;
    w->bytes += ev->frame->len;
    update_gauges(w);
}

void
jw_window_break(struct jw_window *w)
{
    w->evicted = w->position;
}

uint64_t
jw_window_position(const struct jw_window *w)
{
    return w->position;
}

bool
jw_window_covers(const struct jw_window *w, uint64_t after)
{
    return w->max_events && after >= w->evicted && after <= w->position;
}

void
jw_window_replay(const struct jw_window *w, uint64_t after, uint64_t upto,
                 void (*fn)(void *ctx, struct jw_event *ev), void *ctx)
{
    /* Binary search for the first id > after. */
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((*at(w, mid))->id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < w->count && (*at(w, i))->id <= upto; i++)
        fn(ctx, *at(w, i));
}
