/*
 * The router: everything the Redis thread hands over arrives here, in the order it happened.
 *
 *   event          → the resume window, then the hub: every session that may see it
 *   own channel    → sync (a snapshot's marker) or health (a probe), this process's only
 *   Redis answer   → the requester's callback (jw_redis_op_complete)
 *   link state     → sync (pause, resume, resync) and health (readiness)
 *
 * One wake-up takes the whole inbox: a burst of events is routed in one go, and the sessions
 * write once per turn (session_write.c), and also every ROUTE_FLUSH_BYTES of routed frames
 * within a long burst. When the inbox had filled up, the subscriber stopped reading (redis.h);
 * it is told to go on once the inbox is taken.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway_private.h"
#include "health.h"
#include "hub.h"
#include "jobwire/frame.h"
#include "jobwire/metrics.h"
#include "session.h"
#include "sync.h"
#include "window.h"

/* Within one take of the inbox, the sessions write after this many bytes of routed frames, not
 * only once the whole take is routed: else a reader that keeps up has its whole share of a burst
 * queued before the first write, and is closed as a slow consumer when that share is over
 * client_queue_max_bytes (1,000 clients, 1,000 x 1 KiB events published in 83 ms: all closed,
 * bench/RESULTS.md). 64 KiB is one full write batch per session (session_write.c WRITE_BATCH),
 * so writes stay as large as before. */
#define ROUTE_FLUSH_BYTES 65536

struct link_msg {
    struct jw_msg msg; /* first: type JW_MSG_LINK_STATE */
    enum jw_link_state subscriber;
    bool commands_ready;
};

void
jw_gateway_post_link_state(struct jw_gateway *gw, enum jw_link_state subscriber,
                           bool commands_ready)
{
    struct link_msg *m = malloc(sizeof *m);
    if (!m)
        abort(); /* alloc.h's policy */
    m->msg.type = JW_MSG_LINK_STATE;
    m->subscriber = subscriber;
    m->commands_ready = commands_ready;
    if (jw_inbox_push(gw->inbox, &m->msg) & JW_INBOX_WAKE)
        ev_async_send(gw->loop, &gw->wake);
}

enum jw_event_flow
jw_gateway_post_event(struct jw_gateway *gw, struct jw_event *ev)
{
    unsigned flags = jw_inbox_push(gw->inbox, &ev->msg);
    if (flags & JW_INBOX_WAKE)
        ev_async_send(gw->loop, &gw->wake);
    return flags & JW_INBOX_FULL ? JW_REDIS_PAUSE : JW_REDIS_CONTINUE;
}

void
jw_gateway_post_op(struct jw_gateway *gw, struct jw_redis_op *op)
{
    if (jw_inbox_push(gw->inbox, &op->msg) & JW_INBOX_WAKE)
        ev_async_send(gw->loop, &gw->wake);
}

void
jw_router_dispose(struct jw_msg *msg)
{
    switch (msg->type) {
    case JW_MSG_EVENT:
        jw_event_unref(jw_event_of(msg));
        break;
    case JW_MSG_REDIS_OP:
        jw_redis_op_free(jw_redis_op_of(msg));
        break;
    case JW_MSG_LINK_STATE:
        free(msg);
        break;
    }
}

/* jobwire's own channel: {prefix}__jobwire__:{epoch}:{m|p}:{rest}; other replicas' are not
 * ours. */
static void
own_message(struct jw_gateway *gw, const struct jw_event *ev)
{
    const char *epoch = jw_event_epoch();
    size_t n = strlen(epoch);
    const char *id = ev->job_id;
    if (strncmp(id, epoch, n) != 0 || id[n] != ':')
        return;
    const char *what = id + n + 1;
    if (strncmp(what, "m:", 2) == 0)
        jw_sync_marker(gw->sync, what + 2, ev->id);
    else if (strncmp(what, "p:", 2) == 0)
        jw_health_probe_back(gw->health, what + 2);
}

static void
route(struct jw_gateway *gw, struct jw_event *ev)
{
    struct jw_route_stats stats;
    jw_window_add(gw->window, ev);
    jw_hub_route(gw->hub, ev, jw_session_deliver, gw->sessions, &stats);
    if (stats.denied)
        jw_metric_add(JW_M_DELIVERIES_DENIED, (int64_t)stats.denied);
}

void
jw_router_run(struct jw_gateway *gw)
{
    bool was_full;
    size_t routed = 0; /* bytes of frames routed since the sessions last wrote */
    struct jw_msg *msg = jw_inbox_take_all(gw->inbox, &was_full);
    if (was_full)
        jw_upstream_resume(gw->upstream);
    while (msg) {
        struct jw_msg *next = msg->next;
        switch (msg->type) {
        case JW_MSG_EVENT: {
            struct jw_event *ev = jw_event_of(msg);
            if (ev->kind == JW_KIND_INTERNAL) {
                own_message(gw, ev);
            } else {
                route(gw, ev);
                routed += jw_frame_cost(ev->frame);
            }
            jw_event_unref(ev);
            if (routed >= ROUTE_FLUSH_BYTES) { /* not from an lws callback: as in on_flush */
                jw_sessions_flush(gw->sessions);
                routed = 0;
            }
            break;
        }
        case JW_MSG_REDIS_OP:
            jw_redis_op_complete(jw_redis_op_of(msg));
            break;
        case JW_MSG_LINK_STATE: {
            struct link_msg *m = (struct link_msg *)msg;
            if (m->subscriber != JW_LINK_SUBSCRIBED)
                jw_window_break(gw->window);
            jw_health_link_state(gw->health, m->subscriber, m->commands_ready);
            jw_sync_link_state(gw->sync, m->subscriber, m->commands_ready);
            free(m);
            break;
        }
        }
        msg = next;
    }
}
