/*
 * A client's outbound queue: a ring of frame references, bounded in bytes. Owned by one client
 * on the gateway thread. The queue holds one reference on each frame it contains.
 */
#ifndef JOBWIRE_OUTQ_H
#define JOBWIRE_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/frame.h"

struct jw_outq {
    struct jw_frame **ring; /* private */
    uint32_t head;          /* private */
    uint32_t count;         /* read-only */
    uint32_t cap;           /* private */
    size_t bytes;           /* read-only: sum of jw_frame_cost() of the queued frames */
};

void jw_outq_init(struct jw_outq *q);
/* Drops every queued frame. */
void jw_outq_clear(struct jw_outq *q);
/* Takes a new reference on `f`. Returns -ENOBUFS (nothing queued) when the queue would exceed
 * `max_bytes`; a frame is always accepted into an empty queue. */
int jw_outq_push(struct jw_outq *q, struct jw_frame *f, size_t max_bytes)
    __attribute__((warn_unused_result));
/* The oldest frame, still owned by the queue; NULL when empty. */
struct jw_frame *jw_outq_peek(const struct jw_outq *q);
/* Removes the oldest frame and drops the queue's reference. */
void jw_outq_pop(struct jw_outq *q);

#endif
