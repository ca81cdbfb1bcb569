/*
 * Requests: blobs of RESP commands and their collected replies (see request.h).
 */
#include "request.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"

struct jw_request *
jw_request_new(int slot, jw_request_done_fn done, void *ctx)
{
    struct jw_request *req = jw_calloc(1, sizeof(*req));
    req->slot = slot;
    req->done = done;
    req->ctx = ctx;
    return req;
}

void
jw_request_add(struct jw_request *req, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0)
        abort(); /* hiredis fails here only when out of memory: alloc.h's policy */
    if (req->len + (size_t)n > req->cap) {
        req->cap = (req->len + (size_t)n) * 2;
        req->blob = jw_realloc(req->blob, req->cap);
    }
    memcpy(req->blob + req->len, cmd, (size_t)n);
    req->len += (size_t)n;
    redisFreeCommand(cmd);
    if (req->nreplies == JW_REQUEST_MAX_REPLIES)
        abort(); /* a programming error: requests are built from fixed recipes */
    req->nreplies++;
}

void
jw_request_append(struct jw_request **head, struct jw_request **tail, struct jw_request *req)
{
    req->next = NULL;
    if (*tail)
        (*tail)->next = req;
    else
        *head = req;
    *tail = req;
}

void
jw_request_reset_replies(struct jw_request *req)
{
    for (unsigned i = 0; i < req->got; i++)
        jw_resp_free(req->reply[i]);
    req->got = 0;
}

void
jw_request_free(struct jw_request *req)
{
    if (!req)
        return;
    jw_request_reset_replies(req);
    free(req->blob);
    free(req);
}

static uint16_t
crc16_xmodem(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned
jw_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) /* "{}" is no tag: the whole key is hashed */
            return crc16_xmodem(open + 1, (size_t)(close - open - 1)) % JW_CLUSTER_SLOTS;
    }
    return crc16_xmodem(key, len) % JW_CLUSTER_SLOTS;
}
