/*
 * Job events: what one Redis pub/sub message means to jobwire.
 *
 * Channel rule (prefix configurable, default "ai:job:"):
 *   ai:job:{kind}:{jobId}   kind and job id from the channel (the id may contain ':')
 *   ai:job:{kind}           job id from the payload's "jobId" (string or integer)
 * The user id comes from the payload's "userId" (string or integer). An event without one is
 * delivered to admins only. Payloads must be JSON of at most max_payload_bytes; anything else is
 * dropped and counted (see docs/PROTOCOL.md, "Events from Redis").
 *
 * Each message is parsed once, and its outgoing frame built once:
 *   {"type":"event","kind":K,"jobId":J,"userId":U,"channel":C,"payload":<original JSON>,"seq":N}
 * ("userId" only when known; "seq" stamped per recipient at write time, see frame.h).
 *
 * Messages on jobwire's own channel ({prefix}__jobwire__:{rest}) become JW_KIND_INTERNAL events
 * with job_id = rest, no user and no frame, whatever their payload.
 */
#ifndef JOBWIRE_EVENT_H
#define JOBWIRE_EVENT_H

#include <stddef.h>

#include "jobwire/frame.h"
#include "jobwire/inbox.h"

enum jw_kind {
    JW_KIND_STATUS = 0,
    JW_KIND_PROGRESS,
    JW_KIND_COMPLETE,
    JW_KIND_ERROR,
    JW_KIND_OTHER, /* any other kind segment; its name stays in the frame */
    JW_KIND__COUNT,
    /* Not filterable, not published by job services: */
    JW_KIND_SNAPSHOT = JW_KIND__COUNT, /* a job's state read from Redis; passes every filter */
    JW_KIND_INTERNAL,                  /* jobwire's own channel (markers, probes); never routed */
};

/* The kind segment of jobwire's own channel: {prefix}__jobwire__:{instance}:{what} */
#define JW_INTERNAL_KIND "__jobwire__"
#define JW_KINDS_ALL ((1u << JW_KIND__COUNT) - 1)

#define JW_ID_MAX 128 /* longest job or user id accepted, in bytes */

enum jw_event_verdict {
    JW_EVENT_OK = 0,
    JW_EVENT_NOT_MATCHED, /* channel outside the prefix */
    JW_EVENT_NOT_JSON,
    JW_EVENT_TOO_LARGE,
    JW_EVENT_NO_JOB_ID,
    JW_EVENT_BAD_ID, /* job or user id empty, too long, or with control bytes */
    JW_EVENT__VERDICT_COUNT
};

struct jw_event {
    struct jw_msg msg; /* first: type JW_MSG_EVENT, the inbox link */
    enum jw_kind kind;
    char *job_id;
    char *user_id; /* NULL when the payload names no user */
    struct jw_frame *frame;
};

struct jw_event_rules {
    const char *prefix; /* "ai:job:" */
    size_t max_payload_bytes;
};

/* Parses one pmessage. On JW_EVENT_OK, *out is a new event owned by the caller. */
enum jw_event_verdict jw_event_parse(const struct jw_event_rules *rules, const char *channel,
                                     size_t channel_len, const char *payload, size_t payload_len,
                                     struct jw_event **out);
void jw_event_free(struct jw_event *ev);
/* The event a JW_MSG_EVENT message is embedded in. */
static inline struct jw_event *
jw_event_of(struct jw_msg *msg)
{
    return (struct jw_event *)msg;
}

const char *jw_kind_name(enum jw_kind kind);
/* Maps "status" etc. to a kind; JW_KIND_OTHER for anything else. */
enum jw_kind jw_kind_from_name(const char *name, size_t len);
/* Only the filterable names (status, progress, complete, error, other); -1 when unknown. */
int jw_kind_parse_filter_name(const char *name);
const char *jw_event_verdict_name(enum jw_event_verdict v);
/* Returns 1 when `id` is an acceptable job or user id: 1..JW_ID_MAX bytes, no control bytes. */
int jw_id_valid(const char *id, size_t len);

#endif
