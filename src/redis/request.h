/*
 * Commands the gateway thread asks of Redis (job owner lookups, token revocation checks,
 * snapshots), answered asynchronously on the gateway thread.
 *
 * Life of a request:
 *   gateway: jw_redis_request_new() → jw_upstream_submit()      (ownership → upstream thread)
 *   upstream: sends it on the command connection (not the PSUBSCRIBE one), reads the reply or
 *             gives up (link down, timeout), then hands the request back through
 *             hooks->on_reply                                     (ownership → gateway thread)
 *   gateway: jw_redis_request_complete() calls req->done, then frees the request.
 * Every submitted request comes back exactly once, with status 0 and a reply (which may be a
 * Redis error reply, REDIS_REPLY_ERROR), or with a negative errno and no reply: -ENOTCONN (the
 * command link is down), -ETIMEDOUT (no reply within redis_read_timeout_ms), -ECANCELED
 * (jobwire is stopping), -ENOBUFS (JW_UPSTREAM_MAX_PENDING requests already await replies).
 *
 * The requester is named by `tag` (e.g. a session id), never by a pointer: the requester may
 * be gone by the time the answer comes back, and `done` must look it up.
 */
#ifndef JOBWIRE_REDISCMD_H
#define JOBWIRE_REDISCMD_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/inbox.h"

struct redisReply;
struct jw_redis_request;

/* Runs on the gateway thread. Must not free `req` (the caller does, after it returns). */
typedef void (*jw_redis_done_fn)(struct jw_redis_request *req);

struct jw_redis_request {
    struct jw_msg msg; /* first: type JW_MSG_REDIS_REPLY, the inbox link */
    /* set by the requester */
    jw_redis_done_fn done;
    void *ctx;    /* owned by the requester's world, e.g. the gateway; must outlive requests */
    uint64_t tag; /* who asked: looked up again in done() */
    uint64_t arg; /* free for the requester */
    /* filled in before done() runs */
    int status;               /* 0 or a negative errno, see above */
    struct redisReply *reply; /* the reply when status == 0; freed with the request */
    /* private */
    char *cmd; /* RESP-encoded command */
    size_t cmd_len;
    struct jw_redis_request *_next; /* upstream thread's queues */
    uint64_t _deadline_ms;
    unsigned char _redirects; /* cluster: MOVED/ASK retries so far */
    unsigned char _asking;    /* cluster: an ASKING went out before it; skip that reply */
    unsigned char _in_txn;    /* cluster: part of MULTI..EXEC, never retried alone */
};

/* Formats the command from argv (binary safe with argvlen; NULL argvlen = C strings). */
struct jw_redis_request *jw_redis_request_new(int argc, const char **argv, const size_t *argvlen,
                                              jw_redis_done_fn done, void *ctx, uint64_t tag);
/* Calls req->done(req) and frees the request. Gateway thread. */
void jw_redis_request_complete(struct jw_redis_request *req);
void jw_redis_request_free(struct jw_redis_request *req);
/* The request a JW_MSG_REDIS_REPLY message is embedded in. */
static inline struct jw_redis_request *
jw_redis_request_of(struct jw_msg *msg)
{
    return (struct jw_redis_request *)msg;
}

#endif
