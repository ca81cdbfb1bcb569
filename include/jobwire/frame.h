/*
 * An outgoing message, built once and shared by refcount among every client queue that carries
 * it (nchan msg_reserve, redis shared objects). The text is immutable once built: transports
 * copy it into their write buffer, adding what differs per recipient (the WebSocket header, the
 * SSE lines, the connection's `seq`), so no recipient's bytes can change another's and nothing
 * handed to libwebsockets points into a shared frame.
 *
 * A `sequenced` frame's text is a JSON object without its closing brace; the writer completes it
 * with `,"seq":N}`. Other frames (control messages) are complete JSON objects.
 *
 * Ownership: a frame is created with refs == 1 by one thread; once handed to the gateway thread
 * (through the inbox, whose mutex orders the accesses) only the gateway thread touches `refs`.
 */
#ifndef JOBWIRE_FRAME_H
#define JOBWIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct jw_frame {
    uint32_t refs;
    uint8_t sequenced;     /* 1: the writer appends ,"seq":N} */
    const char *type;      /* static: the message's "type" (SSE `event:` line) */
    size_t len;            /* text length */
    uint64_t event_id;     /* sequenced frames: the entry number of the event it carries, or
                              the snapshot's position (the SSE `id:` line) */
    uint64_t origin_ns;    /* CLOCK_MONOTONIC when the event was read from Redis; 0 = control */
    const char *conflates; /* progress events: the job id; a newer frame of the same job may
                              replace this one in a queue under pressure. NULL = never dropped */
    char text[];           /* len bytes, NUL, then the conflation job id when set */
};

/* A frame holding a copy of text[0..len); refs == 1. `conflates` (may be NULL) is copied too. */
struct jw_frame *jw_frame_new(const char *type, const char *text, size_t len, int sequenced,
                              const char *conflates);

static inline struct jw_frame *
jw_frame_ref(struct jw_frame *f)
{
    f->refs++;
    return f;
}
void jw_frame_unref(struct jw_frame *f);

/* Bytes a frame accounts for in a client's queue (its text and the seq suffix). */
static inline size_t
jw_frame_cost(const struct jw_frame *f)
{
    return f->len + (f->sequenced ? 32 : 0);
}

#endif
