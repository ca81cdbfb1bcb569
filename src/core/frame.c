/*
 * Refcounted outgoing frames with LWS_PRE headroom and a per-recipient sequence stamp
 * (see frame.h for the layout and the ownership rule).
 */
#include "jobwire/frame.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobwire/alloc.h"

const size_t JW_FRAME_HEAD = LWS_PRE;

static struct jw_frame *
frame_alloc(size_t len, int stamped)
{
    struct jw_frame *f = jw_malloc(sizeof(*f) + LWS_PRE + len + JW_FRAME_STAMP_ROOM);
    f->refs = 1;
    f->stamped = stamped ? 1 : 0;
    f->len = len;
    f->origin_ns = 0;
    f->conflate_key = 0;
    return f;
}

struct jw_frame *
jw_frame_new(const char *text, size_t len, int stamped)
{
    struct jw_frame *f = frame_alloc(len, stamped);
    memcpy(jw_frame_text(f), text, len);
    return f;
}

size_t
jw_frame_stamp(struct jw_frame *f, uint64_t seq)
{
    if (!f->stamped)
        return f->len;
    char *tail = (char *)jw_frame_text(f) + f->len;
    int n = snprintf(tail, JW_FRAME_STAMP_ROOM, "%llu}", (unsigned long long)seq);
    return f->len + (size_t)n;
}

void
jw_frame_unref(struct jw_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

uint64_t
jw_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
