/*
 * An outgoing WebSocket text message, built once and shared by refcount among every client
 * queue that carries it (nchan msg_reserve, redis shared objects).
 *
 * Layout of `mem`: [LWS_PRE headroom][text: len bytes][stamp room: JW_FRAME_STAMP_ROOM bytes]
 *
 * A frame with `stamped` set ends its text with `"seq":` and is completed at write time by
 * jw_frame_stamp(), which writes the recipient's sequence number and the closing brace into the
 * stamp room. This is safe without copies because only the gateway thread writes frames, one
 * lws_write() at a time, and lws_write() either sends or copies the bytes before returning.
 *
 * Ownership: a frame is created by one thread with refs == 1; once handed to the gateway thread
 * (through the inbox, whose mutex orders the accesses) only the gateway thread touches `refs`.
 */
#ifndef JOBWIRE_FRAME_H
#define JOBWIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define JW_FRAME_STAMP_ROOM 24 /* 20 digits of uint64 + "}" + slack */

struct jw_frame {
    uint32_t refs;
    uint32_t stamped;      /* 1: text ends with "seq": and needs jw_frame_stamp() */
    size_t len;            /* text length, without the stamp */
    uint64_t origin_ns;    /* CLOCK_MONOTONIC when the event was read from Redis; 0 = control */
    uint64_t conflate_key; /* non-zero: a newer frame with the same key supersedes this one */
    unsigned char mem[];
};

/* Builds a frame holding a copy of `text`; refs == 1, origin_ns == 0. */
struct jw_frame *jw_frame_new(const char *text, size_t len, int stamped);
extern const size_t JW_FRAME_HEAD; /* LWS_PRE, exported so that non-lws code can build frames */

static inline unsigned char *
jw_frame_text(struct jw_frame *f)
{
    return f->mem + JW_FRAME_HEAD;
}
/* Completes a stamped frame for one recipient; returns the length to write. Unstamped frames
 * return their length unchanged. */
size_t jw_frame_stamp(struct jw_frame *f, uint64_t seq);
uint64_t jw_monotonic_ns(void);
/* Bytes this frame accounts for in a client's queue. */
static inline size_t
jw_frame_cost(const struct jw_frame *f)
{
    return f->len + (f->stamped ? JW_FRAME_STAMP_ROOM : 0);
}

static inline struct jw_frame *
jw_frame_ref(struct jw_frame *f)
{
    f->refs++;
    return f;
}
void jw_frame_unref(struct jw_frame *f);

#endif
