/*
 * A request: one RESP blob written whole on one command connection, and the replies it
 * produces, collected whole before anyone looks at them. Every typed operation (redis.h) is one
 * or more requests; a MULTI..EXEC transaction is always one request, so it is admitted, written,
 * redirected and answered as a unit.
 *
 * Life: jw_request_new() + jw_request_add() for each command → jw_commands_send() (commands.h)
 * → `done(req, status)` exactly once (status 0: every reply is in req->reply; else a negative
 * errno and no replies) → freed by the command layer after `done` returns.
 *
 * Redis thread only.
 */
#ifndef JOBWIRE_REDIS_REQUEST_H
#define JOBWIRE_REDIS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"

#define JW_REQUEST_MAX_REPLIES 8

struct jw_request;
typedef void (*jw_request_done_fn)(struct jw_request *req, int status);

struct jw_request {
    struct jw_request *next; /* the command layer's queues */
    jw_request_done_fn done;
    void *ctx;
    int slot; /* cluster: the hash slot of its keys; -1 = any node */
    /* the blob */
    char *blob;
    size_t len, cap;
    unsigned nreplies; /* replies the blob produces */
    /* the answer */
    struct jw_resp *reply[JW_REQUEST_MAX_REPLIES];
    unsigned got;
    /* private to the command layer */
    uint64_t _deadline_ms;
    uint8_t _redirects;
    uint8_t _asking;   /* an ASKING goes before the blob; its +OK is skipped */
    uint8_t _skipping; /* the ASKING reply is still to come */
};

/* A request for `slot` (-1: any node). */
struct jw_request *jw_request_new(int slot, jw_request_done_fn done, void *ctx);
/* Appends one command (argv with lengths; NULL argvlen = C strings) producing one reply. */
void jw_request_add(struct jw_request *req, int argc, const char **argv, const size_t *argvlen);
/* Links `req` at the end of the list head..tail (through ->next). */
void jw_request_append(struct jw_request **head, struct jw_request **tail, struct jw_request *req);
/* Drops the replies collected so far (before the request is written again elsewhere). */
void jw_request_reset_replies(struct jw_request *req);
void jw_request_free(struct jw_request *req);

/* The hash slot of a key (CRC16/XMODEM of the key, or of its first non-empty {hash tag}, mod
 * 16384). */
unsigned jw_key_slot(const char *key, size_t len);
#define JW_CLUSTER_SLOTS 16384

#endif
