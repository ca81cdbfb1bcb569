/*
 * A client's bounded, conflating outbound ring (see outq.h). The ring starts unallocated, so an
 * idle connection costs no queue memory, and is freed again when a busy one drains.
 *
 * Invariants:
 * - slots [head, head + used) of the ring are in order; `count` of them hold frames, the rest
 *   are holes; the slot at `head` is never a hole (holes are skipped when they reach it);
 * - while `index` exists, it maps every job with a conflating frame in the queue to the
 *   absolute position (popped + offset) + 1 of its newest such frame.
 */
#include "outq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/dict.h"

#define MIN_HOLES_TO_COMPACT 64

void
jw_outq_init(struct jw_outq *q)
{
    memset(q, 0, sizeof *q);
}

static struct jw_outq_slot *
slot(const struct jw_outq *q, uint32_t offset)
{
    return &q->ring[(q->head + offset) & (q->cap - 1)];
}

static void
drop_index(struct jw_outq *q)
{
    jw_dict_free(q->index);
    q->index = NULL;
}

void
jw_outq_clear(struct jw_outq *q)
{
    for (uint32_t i = 0; i < q->used; i++)
        jw_frame_unref(slot(q, i)->frame);
    free(q->ring);
    drop_index(q);
    jw_outq_init(q);
}

static void
index_put(struct jw_outq *q, const char *job, uint64_t abs)
{
    jw_dict_set(q->index, job, (void *)(uintptr_t)(abs + 1));
}

/* Builds the index from what is queued (the queue just came under pressure). */
static void
build_index(struct jw_outq *q)
{
    drop_index(q);
    q->index = jw_dict_new();
    for (uint32_t i = 0; i < q->used; i++) {
        const struct jw_frame *f = slot(q, i)->frame;
        if (f && f->conflates)
            index_put(q, f->conflates, q->popped + i);
    }
}

/* Rewrites the ring without holes (capacity: the next power of two with room to spare). */
static void
compact(struct jw_outq *q, uint32_t room)
{
    uint32_t cap = 4;
    while (cap < q->count + room)
        cap *= 2;
    struct jw_outq_slot *ring = jw_malloc(cap * sizeof *ring);
    uint32_t n = 0;
    for (uint32_t i = 0; i < q->used; i++)
        if (slot(q, i)->frame)
            ring[n++] = *slot(q, i);
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->popped += q->used; /* positions restart above every old one: stale index entries miss */
    q->head = 0;
    q->used = n;
    if (q->index)
        build_index(q);
}

static bool
under_pressure(const struct jw_outq *q, const struct jw_outq_pressure *p)
{
    return q->count &&
           (q->bytes >= p->bytes || (p->after_ms && p->now_ms - q->nonempty_since >= p->after_ms));
}

/* The queued frame of f's job that f replaces, or NULL. */
static struct jw_outq_slot *
conflation_victim(struct jw_outq *q, const struct jw_frame *f)
{
    if (!q->index)
        build_index(q);
    uintptr_t at = (uintptr_t)jw_dict_get(q->index, f->conflates);
    if (!at || at - 1 < q->popped)
        return NULL;
    struct jw_outq_slot *s = slot(q, (uint32_t)(at - 1 - q->popped));
    if (!s->frame || !s->frame->conflates || strcmp(s->frame->conflates, f->conflates) != 0)
        return NULL; /* cannot happen while the invariant holds; never drop the wrong frame */
    return s;
}

/* Keeps the invariant that the head is no hole. */
static void
skip_holes(struct jw_outq *q)
{
    while (q->used && !slot(q, 0)->frame) {
        q->head = (q->head + 1) & (q->cap - 1);
        q->used--;
        q->popped++;
    }
}

int
jw_outq_push(struct jw_outq *q, struct jw_frame *f, uint64_t seq, size_t max_bytes,
             uint32_t max_frames, bool force, const struct jw_outq_pressure *p, unsigned *conflated)
{
    size_t cost = jw_frame_cost(f);
    bool was_empty = q->count == 0;
    struct jw_outq_slot *victim =
        f->conflates && under_pressure(q, p) ? conflation_victim(q, f) : NULL;
    /* The limits apply to the queue as it would be: a refused push changes nothing. */
    size_t bytes = q->bytes - (victim ? jw_frame_cost(victim->frame) : 0);
    uint32_t count = q->count - (victim != NULL);
    if (!force && count && (bytes + cost > max_bytes || count + 1 > max_frames))
        return -ENOBUFS;
    if (victim) {
        jw_frame_unref(victim->frame);
        victim->frame = NULL;
        q->bytes = bytes;
        q->count = count;
        skip_holes(q);
        (*conflated)++;
    }
    uint32_t holes = q->used - q->count;
    if (holes > q->count && holes >= MIN_HOLES_TO_COMPACT)
        compact(q, 1);
    else if (q->used == q->cap)
        compact(q, q->count + 1); /* doubles the capacity as a plain grow would */
    if (was_empty)                /* a replaced frame was waiting too: the age goes on */
        q->nonempty_since = p->now_ms;
    *slot(q, q->used) = (struct jw_outq_slot){jw_frame_ref(f), seq};
    if (q->index && f->conflates)
        index_put(q, f->conflates, q->popped + q->used);
    q->used++;
    q->count++;
    q->bytes += cost;
    return 0;
}

const struct jw_outq_slot *
jw_outq_peek(struct jw_outq *q)
{
    return q->count ? slot(q, 0) : NULL;
}

void
jw_outq_pop(struct jw_outq *q)
{
    struct jw_outq_slot *s = slot(q, 0);
    q->bytes -= jw_frame_cost(s->frame);
    q->count--;
    jw_frame_unref(s->frame);
    s->frame = NULL;
    skip_holes(q);
    if (!q->count) {
        /* Empty: no pressure, and a client that was busy once keeps no large ring. */
        drop_index(q);
        if (q->cap > 64) {
            uint64_t popped = q->popped;
            free(q->ring);
            jw_outq_init(q);
            q->popped = popped;
        }
    }
}
