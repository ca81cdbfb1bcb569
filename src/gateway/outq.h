/*
 * A client's outbound queue: a ring of frame references, each with the `seq` the connection gave
 * it when it was queued. Owned by one session on the gateway thread; it holds one reference on
 * each frame it contains.
 *
 * Conflation, only under pressure (the queue holds `conflate_bytes` or more, or has not been
 * empty for `conflate_after_ms`): a frame that conflates (a progress event, frame.h) replaces
 * the unsent older frame of the same job. The older one leaves a hole in its slot (its seq is
 * then missing on the connection: the client sees the gap) and the newer one goes to the tail,
 * so what stays keeps its order. Frames that do not conflate are never dropped. The job → slot
 * index that makes this O(1) exists only while the queue is under pressure; holes are reclaimed
 * by compaction once they outnumber the frames, so a client that stops reading costs O(1) per
 * event, not a scan of its backlog.
 */
#ifndef JOBWIRE_GATEWAY_OUTQ_H
#define JOBWIRE_GATEWAY_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobwire/frame.h"

struct jw_dict;

struct jw_outq_slot {
    struct jw_frame *frame; /* NULL: a hole left by conflation */
    uint64_t seq;
};

struct jw_outq {
    struct jw_outq_slot *ring; /* private */
    uint32_t head, used, cap;  /* private: used counts holes too */
    uint32_t count;            /* read-only: frames queued */
    size_t bytes;              /* read-only: sum of jw_frame_cost() of the queued frames */
    uint64_t nonempty_since;   /* read-only: ms when it last went from empty to non-empty */
    uint64_t popped;           /* private: slots ever removed from the head (absolute base) */
    struct jw_dict *index;     /* private: job id -> absolute slot + 1, while under pressure */
};

/* When the queue conflates. */
struct jw_outq_pressure {
    size_t bytes;      /* conflate at or above this many queued bytes */
    uint64_t after_ms; /* or once non-empty for this long; 0 = never by age */
    uint64_t now_ms;
};

void jw_outq_init(struct jw_outq *q);
/* Drops every queued frame (and frees the ring). */
void jw_outq_clear(struct jw_outq *q);
/* Queues `f` with `seq` (taking a reference), first dropping the older frame of the same job
 * when under pressure (*conflated is then incremented). Returns -ENOBUFS (nothing queued) when
 * the queue would exceed `max_bytes` or `max_frames` and `force` is false; `force` queues
 * anyway (a subscribe's own answer), and a frame is always accepted into an empty queue. */
int jw_outq_push(struct jw_outq *q, struct jw_frame *f, uint64_t seq, size_t max_bytes,
                 uint32_t max_frames, bool force, const struct jw_outq_pressure *p,
                 unsigned *conflated) __attribute__((warn_unused_result));
/* The oldest slot (never a hole), still owned by the queue; NULL when empty. */
const struct jw_outq_slot *jw_outq_peek(struct jw_outq *q);
/* Removes the oldest frame and drops the queue's reference. */
void jw_outq_pop(struct jw_outq *q);

#endif
