/*
 * Replies from Redis as a bounded tree. hiredis' redisReader parses RESP; its object functions
 * are ours, so that no reply can make the Redis thread allocate without limit: past a reply's
 * byte or element budget, strings and elements are dropped (replaced by a shared placeholder)
 * and the reply is marked `truncated`. The link stays up; the role decides what a truncated
 * reply means (a pmessage too large to forward, a job state too large to snapshot).
 *
 * hiredis still holds one bulk string whole in its input buffer before it calls us, so a single
 * huge string costs its size transiently; link.c caps that (JW_RESP_HARD_LIMIT).
 *
 * Redis thread only.
 */
#ifndef JOBWIRE_RESP_H
#define JOBWIRE_RESP_H

#include <stdbool.h>
#include <stddef.h>

struct redisReader;

/* hiredis' reply type numbers (REDIS_REPLY_*), so that callers need not include hiredis. */
enum jw_resp_type {
    JW_RESP_STRING = 1,
    JW_RESP_ARRAY = 2,
    JW_RESP_INTEGER = 3,
    JW_RESP_NIL = 4,
    JW_RESP_STATUS = 5,
    JW_RESP_ERROR = 6,
};

/* Input buffered for one incomplete reply beyond which a connection is given up. */
#define JW_RESP_HARD_LIMIT (64u * 1024u * 1024u)

struct jw_resp {
    enum jw_resp_type type;
    bool truncated;           /* root only: a part was over the budget and dropped */
    long long integer;        /* JW_RESP_INTEGER */
    char *str;                /* strings, status, errors: NUL-terminated; NULL when dropped */
    size_t len;               /* its length */
    struct jw_resp **element; /* arrays: `elements` children; NULL entries were dropped */
    size_t elements;
    /* private */
    struct jw_resp *_root;
    size_t _bytes, _count; /* root: budget used */
};

struct jw_resp_limits {
    size_t max_bytes;    /* string bytes kept per reply */
    size_t max_elements; /* array elements kept per reply (all levels together) */
};

/* A reader building jw_resp trees within `limits` (which must outlive it). */
struct redisReader *jw_resp_reader_new(const struct jw_resp_limits *limits);
void jw_resp_free(struct jw_resp *r);

/* A string (bulk or status) that was kept. */
bool jw_resp_is_str(const struct jw_resp *r);
/* A kept string equal to `s`, case-insensitively. */
bool jw_resp_str_eq(const struct jw_resp *r, const char *s);
/* A kept string that starts with `prefix` (case-sensitive: error codes like MOVED). */
bool jw_resp_error_is(const struct jw_resp *r, const char *code);

#endif
