/*
 * A client's bounded, conflating outbound ring of frame references (see outq.h). The ring starts
 * empty and unallocated, so an idle connection costs no queue memory.
 */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>

#include "jobwire/alloc.h"

void
jw_outq_init(struct jw_outq *q)
{
    q->ring = NULL;
    q->head = q->slots = q->cap = q->count = 0;
    q->bytes = 0;
}

static struct jw_frame **
slot(const struct jw_outq *q, uint32_t i)
{
    return &q->ring[(q->head + i) % q->cap];
}

void
jw_outq_clear(struct jw_outq *q)
{
    for (uint32_t i = 0; i < q->slots; i++)
        jw_frame_unref(*slot(q, i));
    free(q->ring);
    jw_outq_init(q);
}

static void
grow(struct jw_outq *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    struct jw_frame **ring = jw_malloc(cap * sizeof(*ring));
    for (uint32_t i = 0; i < q->slots; i++)
        ring[i] = *slot(q, i);
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

/* Drops the queued frame with `key`, if any: at most one can be queued, by induction. */
static unsigned
conflate(struct jw_outq *q, uint64_t key)
{
    for (uint32_t i = 0; i < q->slots; i++) {
        struct jw_frame **s = slot(q, i);
        if (*s && (*s)->conflate_key == key) {
            q->bytes -= jw_frame_cost(*s);
            q->count--;
            jw_frame_unref(*s);
            *s = NULL;
            return 1;
        }
    }
    return 0;
}

int
jw_outq_push(struct jw_outq *q, struct jw_frame *f, size_t max_bytes, uint32_t max_frames,
             unsigned *conflated)
{
    size_t cost = jw_frame_cost(f);
    if (f->conflate_key && q->count)
        *conflated += conflate(q, f->conflate_key);
    if (q->count && (q->bytes + cost > max_bytes || q->count + 1 > max_frames))
        return -ENOBUFS;
    if (q->slots == q->cap)
        grow(q);
    *slot(q, q->slots) = jw_frame_ref(f);
    q->slots++;
    q->count++;
    q->bytes += cost;
    return 0;
}

/* Steps the head over holes. */
static void
skip_holes(struct jw_outq *q)
{
    while (q->slots && !q->ring[q->head]) {
        q->head = (q->head + 1) % q->cap;
        q->slots--;
    }
}

struct jw_frame *
jw_outq_peek(struct jw_outq *q)
{
    skip_holes(q);
    return q->slots ? q->ring[q->head] : NULL;
}

void
jw_outq_pop(struct jw_outq *q)
{
    skip_holes(q);
    struct jw_frame *f = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->slots--;
    q->count--;
    q->bytes -= jw_frame_cost(f);
    jw_frame_unref(f);
    skip_holes(q);
    /* A client that was busy once should not keep a large ring for the rest of its life. */
    if (q->slots == 0 && q->cap > 64) {
        free(q->ring);
        jw_outq_init(q);
    }
}
