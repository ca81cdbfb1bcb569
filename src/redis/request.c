/*
 * Requests to Redis from the gateway thread (rediscmd.h). A request carries its command already
 * RESP-encoded, so the upstream thread only writes bytes; it comes back through the gateway's
 * inbox (msg.type JW_MSG_REDIS_REPLY) with a status and, on success, the parsed reply.
 */
#include "request.h"

#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"

struct jw_redis_request *
jw_redis_request_new(int argc, const char **argv, const size_t *argvlen, jw_redis_done_fn done,
                     void *ctx, uint64_t tag)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        /* hiredis fails here only when out of memory; alloc.h's policy is to abort. */
        jw_error("rediscmd", "out of memory formatting a command");
        abort();
    }
    struct jw_redis_request *req = jw_calloc(1, sizeof *req);
    req->msg.type = JW_MSG_REDIS_REPLY;
    req->done = done;
    req->ctx = ctx;
    req->tag = tag;
    req->cmd = cmd;
    req->cmd_len = (size_t)len;
    return req;
}

void
jw_redis_request_complete(struct jw_redis_request *req)
{
    if (req->done)
        req->done(req);
    jw_redis_request_free(req);
}

void
jw_redis_request_free(struct jw_redis_request *req)
{
    if (!req)
        return;
    if (req->reply)
        freeReplyObject(req->reply);
    /* redisFormatCommandArgv allocates with malloc; redisFreeCommand is its matching free. */
    if (req->cmd)
        redisFreeCommand(req->cmd);
    free(req);
}
