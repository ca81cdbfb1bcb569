/*
 * A client's bounded outbound ring of frame references (see outq.h). The ring starts empty and
 * unallocated, so an idle connection costs no queue memory.
 */
#include "jobwire/outq.h"

#include <errno.h>
#include <stdlib.h>

#include "jobwire/alloc.h"

void
jw_outq_init(struct jw_outq *q)
{
    q->ring = NULL;
    q->head = q->count = q->cap = 0;
    q->bytes = 0;
}

void
jw_outq_clear(struct jw_outq *q)
{
    while (q->count)
        jw_outq_pop(q);
    free(q->ring);
    jw_outq_init(q);
}

static void
grow(struct jw_outq *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    struct jw_frame **ring = jw_malloc(cap * sizeof(*ring));
    for (uint32_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

int
jw_outq_push(struct jw_outq *q, struct jw_frame *f, size_t max_bytes)
{
    size_t cost = jw_frame_cost(f);
    if (q->count && q->bytes + cost > max_bytes)
        return -ENOBUFS;
    if (q->count == q->cap)
        grow(q);
    q->ring[(q->head + q->count) % q->cap] = jw_frame_ref(f);
    q->count++;
    q->bytes += cost;
    return 0;
}

struct jw_frame *
jw_outq_peek(const struct jw_outq *q)
{
    return q->count ? q->ring[q->head] : NULL;
}

void
jw_outq_pop(struct jw_outq *q)
{
    struct jw_frame *f = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    q->bytes -= jw_frame_cost(f);
    jw_frame_unref(f);
    /* A client that was busy once should not keep a large ring for the rest of its life. */
    if (q->count == 0 && q->cap > 64) {
        free(q->ring);
        jw_outq_init(q);
    }
}
