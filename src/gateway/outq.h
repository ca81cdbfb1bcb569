/*
 * A client's outbound queue: a ring of frame references, bounded in bytes and in frames. Owned
 * by one client on the gateway thread. The queue holds one reference on each frame it contains.
 *
 * Conflation: a frame with a non-zero `conflate_key` (progress events, keyed by job) replaces an
 * older unsent frame with the same key: the older one is dropped from its slot (left as a hole
 * that peek/pop skip) and the newer one goes to the tail, so the frames that stay keep their
 * order. Frames with key 0 (status, complete, error, snapshots, control) are never dropped.
 */
#ifndef JOBWIRE_OUTQ_H
#define JOBWIRE_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/frame.h"

struct jw_outq {
    struct jw_frame **ring; /* private; NULL slots are holes left by conflation */
    uint32_t head;          /* private */
    uint32_t slots;         /* private: used slots, holes included */
    uint32_t cap;           /* private */
    uint32_t count;         /* read-only: frames queued */
    size_t bytes;           /* read-only: sum of jw_frame_cost() of the queued frames */
};

void jw_outq_init(struct jw_outq *q);
/* Drops every queued frame. */
void jw_outq_clear(struct jw_outq *q);
/* Takes a new reference on `f`, first dropping an older frame with the same conflate key (that
 * is counted in *conflated). Returns -ENOBUFS (nothing queued) when the queue would then exceed
 * `max_bytes` or `max_frames`; a frame is always accepted into an empty queue. */
int jw_outq_push(struct jw_outq *q, struct jw_frame *f, size_t max_bytes, uint32_t max_frames,
                 unsigned *conflated) __attribute__((warn_unused_result));
/* The oldest frame, still owned by the queue; NULL when empty. */
struct jw_frame *jw_outq_peek(struct jw_outq *q);
/* Removes the oldest frame and drops the queue's reference. */
void jw_outq_pop(struct jw_outq *q);

#endif
