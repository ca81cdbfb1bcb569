/*
 * Events: what one Redis pub/sub message means to jobwire. Built on the Redis thread, handed to
 * the gateway thread through the inbox.
 *
 * Channel rules (prefix configurable, default "ai:job:"):
 *   ai:job:{kind}:{jobId}   kind and job id from the channel (the id may contain ':')
 *   ai:job:{kind}           job id from the payload's "jobId" (string or integer)
 *   {user prefix}{userId}   a user channel (user_channels, e.g. "ai:recommendations:"): no job;
 *                           the user id comes from the channel, the kind from the setting
 * Otherwise the user id comes from the payload's "userId" (string or integer); an event without
 * one is delivered to admins only. Channel segments and ids must be UTF-8 without control bytes
 * and ids 1..JW_ID_MAX bytes; payloads must be one JSON text of at most max_payload_bytes. Every
 * other message is dropped and counted (docs/PROTOCOL.md, "Events from Redis").
 *
 * Each message is parsed once and its frame built once (frame.h):
 *   {"type":"event","kind":K,"jobId":J,"userId":U,"channel":C,"payload":<as published>,
 *    "eventId":"<epoch>-<id>"      + ,"seq":N} per recipient
 * The id is the entry number the Redis thread gives every message it hands over, in the order
 * of the subscription; the epoch is random per process, so ids of two processes never compare.
 *
 * Messages on jobwire's own channel ({prefix}__jobwire__:{rest}) become JW_KIND_INTERNAL events
 * with job_id = rest, no user and no frame, whatever their payload.
 */
#ifndef JOBWIRE_EVENT_H
#define JOBWIRE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobwire/frame.h"
#include "jobwire/inbox.h"

enum jw_kind {
    JW_KIND_STATUS = 0,
    JW_KIND_PROGRESS,
    JW_KIND_COMPLETE,
    JW_KIND_ERROR,
    JW_KIND_OTHER, /* any other kind segment, and user channels; its name stays in the frame */
    JW_KIND__COUNT,
    JW_KIND_INTERNAL = JW_KIND__COUNT, /* jobwire's own channel (markers, probes); never routed */
};

/* The kind segment of jobwire's own channel: {prefix}__jobwire__:{instance}:{what} */
#define JW_INTERNAL_KIND "__jobwire__"
#define JW_KINDS_ALL ((1u << JW_KIND__COUNT) - 1)

#define JW_ID_MAX 128 /* longest job or user id accepted, in bytes */
/* "<8 hex digits>-<decimal uint64>" and its NUL */
#define JW_EVENT_ID_TEXT_MAX 30

enum jw_event_verdict {
    JW_EVENT_OK = 0,
    JW_EVENT_NOT_MATCHED, /* channel outside the prefix and the user channels */
    JW_EVENT_NOT_JSON,
    JW_EVENT_TOO_LARGE,
    JW_EVENT_NO_JOB_ID,
    JW_EVENT_BAD_ID, /* a channel segment or an id that is not UTF-8, has control bytes, or has
                        a bad length */
    JW_EVENT__VERDICT_COUNT
};

struct jw_event {
    struct jw_msg msg; /* first: type JW_MSG_EVENT, the inbox link */
    uint32_t refs;     /* gateway thread only, after the handoff */
    enum jw_kind kind;
    uint64_t id;            /* entry number; see above */
    char *job_id;           /* NULL for a user-channel event */
    char *user_id;          /* NULL when nobody is named: admins only */
    struct jw_frame *frame; /* NULL for internal events */
};

/* A user channel: messages on {prefix}{userId} are events of kind name `kind`. */
struct jw_user_channel {
    const char *prefix;
    const char *kind;
};

struct jw_event_rules {
    const char *prefix; /* "ai:job:" */
    size_t max_payload_bytes;
    const struct jw_user_channel *user_channels;
    size_t nuser_channels;
};

/* Parses one pmessage with entry number `id`. On JW_EVENT_OK, *out is a new event (refs 1). */
enum jw_event_verdict jw_event_parse(const struct jw_event_rules *rules, const char *channel,
                                     size_t channel_len, const char *payload, size_t payload_len,
                                     uint64_t id, struct jw_event **out);
static inline struct jw_event *
jw_event_ref(struct jw_event *ev)
{
    ev->refs++;
    return ev;
}
/* Drops one reference; the last one frees the event and its frame reference. */
void jw_event_unref(struct jw_event *ev);
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
/* 1 when id[0..len) is an acceptable job or user id: 1..JW_ID_MAX bytes of UTF-8 without
 * control bytes. */
int jw_id_valid(const char *id, size_t len);

/* This process's epoch: 8 lowercase hex digits, random, the same for the life of the process. */
const char *jw_event_epoch(void);
/* "<epoch>-<id>" into out (JW_EVENT_ID_TEXT_MAX bytes); returns the length. */
size_t jw_event_id_format(uint64_t id, char *out);
/* Reads an id given back by a client: 0 with *id set when it names this process's epoch,
 * -EXDEV for another epoch (another process), -EINVAL when it is not an event id. */
int jw_event_id_parse(const char *text, uint64_t *id);

#endif
