/*
 * The writer: frames leave a session's queue as soon as the connection takes them, several per
 * write (docs/DESIGN.md, "Writing").
 *
 * A session that queues a frame is put on the registry's dirty list; before the loop blocks,
 * jw_sessions_flush() writes each dirty session at once, without waiting for POLLOUT: when lws
 * holds nothing unsent for it (lws_partial_buffered), the socket is very likely writable, and a
 * write that does not go through whole is kept by lws (buflist) and finished on POLLOUT, which
 * lws then asks for itself. So an idle connection costs one send() per batch and no epoll_ctl,
 * and a burst of events costs one send() per connection per loop turn, not one per event.
 *
 * Every frame is copied into one write buffer (the gateway thread is the only writer, so one
 * buffer serves every session) with what is particular to this connection around it — the
 * WebSocket header and the `seq` for a WebSocket, the `id:`/`event:`/`data:` lines for SSE — and
 * the buffer goes out with one lws_write(LWS_WRITE_HTTP), which lws passes through unframed on
 * both transports. Nothing lws keeps points into a shared frame.
 *
 * With permessage-deflate, lws must frame and compress each message itself and may go on reading
 * the message's bytes on later turns (ARCHITECTURE.md), so such sessions write one frame per
 * WRITEABLE callback from a private copy that lives until the next one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "session_private.h"

#define MOD JW_SESSION_MOD
#define WRITE_BATCH 65536      /* bytes put together for one write (at least one frame) */
#define WRITE_TURN (4 * 65536) /* bytes one session may write per flush: fairness */
#define SEQ_ROOM 32            /* ,"seq":<20 digits>} */
#define SSE_ROOM 96            /* id, event and data lines around one frame's text */

static unsigned char *
room(struct jw_sessions *reg, size_t used, size_t more)
{
    size_t need = LWS_PRE + used + more;
    if (need > reg->wbuf_cap) {
        size_t cap = reg->wbuf_cap ? reg->wbuf_cap : LWS_PRE + WRITE_BATCH + 1024;
        while (cap < need)
            cap *= 2;
        reg->wbuf = jw_realloc(reg->wbuf, cap);
        reg->wbuf_cap = cap;
    }
    return reg->wbuf + LWS_PRE + used;
}

void
jw_sessions_free_wbuf(struct jw_sessions *reg)
{
    free(reg->wbuf);
    reg->wbuf = NULL;
    reg->wbuf_cap = 0;
}

/* `,"seq":N}` into out (at most SEQ_ROOM bytes); returns the length. Written by hand: this runs
 * once per delivery, and snprintf's format machinery was the largest user-space cost of a burst
 * (issue #14, bench/RESULTS.md). The same bytes as "%" PRIu64 gives. */
static size_t
put_seq(char *out, uint64_t seq)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    memcpy(out, ",\"seq\":", 7);
    for (size_t i = 0; i < n; i++)
        out[7 + i] = digits[n - 1 - i];
    out[7 + n] = '}';
    return 8 + n;
}

/* The frame's text and this connection's seq suffix, into out; returns the length. */
static size_t
put_text(char *out, const struct jw_outq_slot *slot)
{
    const struct jw_frame *f = slot->frame;
    memcpy(out, f->text, f->len);
    if (!f->sequenced)
        return f->len;
    return f->len + put_seq(out + f->len, slot->seq);
}

/* One WebSocket text message (RFC 6455: FIN, opcode 1, unmasked from a server). */
static size_t
put_ws(struct jw_sessions *reg, size_t used, const struct jw_outq_slot *slot)
{
    char text_seq[SEQ_ROOM];
    size_t suffix = 0;
    if (slot->frame->sequenced)
        suffix = put_seq(text_seq, slot->seq);
    size_t len = slot->frame->len + suffix;
    unsigned char *p = room(reg, used, len + 10), *start = p;
    *p++ = 0x81;
    if (len < 126) {
        *p++ = (unsigned char)len;
    } else if (len < 65536) {
        *p++ = 126;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(p, slot->frame->text, slot->frame->len);
    memcpy(p + slot->frame->len, text_seq, suffix);
    return (size_t)(p - start) + len;
}

/* One SSE event: `id:` (events and snapshots), `event:` (the message's type), and the text on
 * `data:` lines (a payload published with line breaks becomes several, which EventSource joins
 * with "\n": still the same JSON). */
static size_t
put_sse(struct jw_sessions *reg, size_t used, const struct jw_outq_slot *slot)
{
    const struct jw_frame *f = slot->frame;
    size_t breaks = 0;
    for (size_t i = 0; i < f->len; i++)
        breaks += f->text[i] == '\n' || f->text[i] == '\r';
    char *out = (char *)room(reg, used, f->len + breaks * 6 + SEQ_ROOM + SSE_ROOM), *p = out;
    if (f->sequenced) { /* events and snapshots: the eventId, from which a client can resume */
        char id[JW_EVENT_ID_TEXT_MAX];
        jw_event_id_format(f->event_id, id);
        p += sprintf(p, "id: %s\n", id);
    }
    p += sprintf(p, "event: %s\ndata: ", f->type);
    char *text = p + breaks * 6; /* the text first, then spread over the data lines in place */
    size_t len = put_text(text, slot);
    if (!breaks) {
        memmove(p, text, len);
        p += len;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (text[i] != '\n' && text[i] != '\r') {
                *p++ = text[i];
                continue;
            }
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
                i++;
            memcpy(p, "\ndata: ", 7);
            p += 7;
        }
    }
    memcpy(p, "\n\n", 2);
    p += 2;
    return (size_t)(p - out);
}

static int
write_out(struct jw_session *s, size_t len)
{
    if (lws_write(s->wsi, s->reg->wbuf + LWS_PRE, len, LWS_WRITE_HTTP) < 0) {
        jw_session_log(s, JW_LOG_INFO, "write failed");
        s->end_reason = "write failed";
        s->broken = 1;
        return -1;
    }
    s->last_write_ms = s->progress_ms = jw_session_now_ms(s);
    s->sse_hb_due = 0;
    return 0;
}

/* Takes frames off the queue into the write buffer, up to WRITE_BATCH bytes; an owed keepalive
 * PING first (FIN, opcode 9, one byte: lws 4.1.6 never reports an empty PONG to the callback). */
static size_t
batch(struct jw_session *s)
{
    struct jw_sessions *reg = s->reg;
    const struct jw_outq_slot *slot;
    size_t used = 0, bytes = 0;
    uint64_t now_ns = jw_now_ns();
    if (s->ping_owed) {
        unsigned char *p = room(reg, 0, 3);
        p[0] = 0x89;
        p[1] = 1;
        p[2] = 'k';
        used = 3;
        s->ping_owed = 0;
    }
    while ((slot = jw_outq_peek(&s->outq)) && (!used || used + slot->frame->len <= WRITE_BATCH)) {
        used +=
            s->transport == JW_TRANSPORT_SSE ? put_sse(reg, used, slot) : put_ws(reg, used, slot);
        if (slot->frame->origin_ns)
            jw_metrics_observe_delivery_latency(now_ns - slot->frame->origin_ns);
        bytes += jw_frame_cost(slot->frame);
        jw_outq_pop(&s->outq);
    }
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)bytes);
    return used;
}

int
jw_session_flush(struct jw_session *s)
{
    size_t turn = 0;
    if (s->broken)
        return -1;
    if (s->deflate) {
        if (s->outq.count || s->close_code || s->ping_owed)
            lws_callback_on_writable(s->wsi);
        return 0;
    }
    while ((s->outq.count || s->ping_owed) && turn < WRITE_TURN && !lws_partial_buffered(s->wsi)) {
        size_t len = batch(s);
        if (write_out(s, len) < 0)
            return -1;
        turn += len;
    }
    if (!s->outq.count) {
        s->progress_ms = jw_session_now_ms(s);
        /* SSE: an error answered the query or the token: the stream ends once it is out. */
        if (s->sse_end_code && !s->close_code)
            jw_session_close_later(s, s->sse_end_code, "request refused");
    }
    /* More to write once lws has sent what it holds; a close once the queue is out. */
    if (s->outq.count || s->close_code || s->sse_hb_due || s->ping_owed)
        lws_callback_on_writable(s->wsi);
    return 0;
}

void
jw_session_mark_dirty(struct jw_session *s)
{
    if (s->dirty)
        return;
    s->dirty = 1;
    s->dirty_next = s->reg->dirty;
    s->reg->dirty = s;
}

void
jw_sessions_flush(struct jw_sessions *reg)
{
    while (reg->dirty) {
        struct jw_session *s = reg->dirty;
        reg->dirty = s->dirty_next;
        s->dirty = 0;
        if (jw_session_flush(s) < 0) /* lws closes it (not from here: not its callback) */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    }
}

/* permessage-deflate: an owed PING through lws' framing (control frames are not compressed). */
static int
write_framed_ping(struct jw_session *s)
{
    unsigned char buf[LWS_PRE + 1];
    buf[LWS_PRE] = 'k'; /* not empty: see batch() */
    s->ping_owed = 0;
    if (lws_write(s->wsi, buf + LWS_PRE, 1, LWS_WRITE_PING) < 0) {
        s->end_reason = "write failed";
        return -1;
    }
    if (s->outq.count || s->close_code)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* permessage-deflate: one message per turn, through lws' framing, from a private copy. */
static int
write_deflated(struct jw_session *s)
{
    free(s->deflate_copy); /* lws calls WRITEABLE only once it has finished the last one */
    s->deflate_copy = NULL;
    const struct jw_outq_slot *slot = jw_outq_peek(&s->outq);
    if (!slot)
        return 0;
    s->deflate_copy = jw_malloc(LWS_PRE + slot->frame->len + SEQ_ROOM);
    size_t len = put_text((char *)s->deflate_copy + LWS_PRE, slot);
    if (slot->frame->origin_ns)
        jw_metrics_observe_delivery_latency(jw_now_ns() - slot->frame->origin_ns);
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)jw_frame_cost(slot->frame));
    jw_outq_pop(&s->outq);
    if (lws_write(s->wsi, s->deflate_copy + LWS_PRE, len, LWS_WRITE_TEXT) < 0) {
        jw_session_log(s, JW_LOG_INFO, "write failed");
        s->end_reason = "write failed";
        return -1;
    }
    s->last_write_ms = s->progress_ms = jw_session_now_ms(s);
    if (s->outq.count || s->close_code)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* The last event of a stream the server ends: the close code a WebSocket would get. */
static int
write_sse_close(struct jw_session *s)
{
    struct jw_frame *f = jw_reply_close(s->close_code, s->close_reason);
    struct jw_outq_slot slot = {f, 0};
    size_t len = put_sse(s->reg, 0, &slot);
    jw_frame_unref(f);
    s->sse_ended = 1;
    if (write_out(s, len) < 0)
        return -1;
    lws_callback_on_writable(s->wsi); /* after lws has flushed it: end the response */
    return 0;
}

int
jw_session_writeable(struct jw_session *s)
{
    if (s->broken)
        return -1;
    if (s->transport == JW_TRANSPORT_SSE) {
        if (s->sse_ended)
            return -1; /* closing the connection ends the response (no length was announced) */
        if (s->close_code && !s->outq.count)
            return write_sse_close(s);
        if (!s->outq.count && s->sse_hb_due) {
            memcpy(room(s->reg, 0, 6), ": hb\n\n", 6);
            return write_out(s, 6);
        }
        return jw_session_flush(s);
    }
    /* Frames queued before the close (an error saying why) still go out first. */
    if (s->close_code && !s->outq.count) {
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    if (s->deflate)
        return s->ping_owed ? write_framed_ping(s) : write_deflated(s);
    return jw_session_flush(s);
}
