/*
 * Bounded reply trees through hiredis' object functions (see resp.h).
 *
 * Invariant: every object handed to hiredis is either a tree node owned by its parent (or, for
 * the root, by hiredis until redisReaderGetReply returns it) or the shared placeholder, which
 * is never freed.
 */
#include "resp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"

_Static_assert(JW_RESP_STRING == REDIS_REPLY_STRING && JW_RESP_ARRAY == REDIS_REPLY_ARRAY &&
                   JW_RESP_INTEGER == REDIS_REPLY_INTEGER && JW_RESP_NIL == REDIS_REPLY_NIL &&
                   JW_RESP_STATUS == REDIS_REPLY_STATUS && JW_RESP_ERROR == REDIS_REPLY_ERROR,
               "jw_resp_type mirrors hiredis' reply types");

static struct jw_resp dropped; /* the placeholder for what was over the budget */

/* A new node in `task`'s place, or the placeholder when the budget is spent. `bytes` and
 * `count` are what it would take from the root's budget. */
static struct jw_resp *
node_new(const redisReadTask *task, enum jw_resp_type type, size_t bytes)
{
    struct jw_resp *parent = task->parent ? task->parent->obj : NULL;
    if (parent == &dropped)
        return &dropped; /* inside a dropped array */
    struct jw_resp *root = parent ? parent->_root : NULL;
    if (root) {
        const struct jw_resp_limits *lim = task->privdata;
        if (root->_bytes + bytes > lim->max_bytes || root->_count + 1 > lim->max_elements ||
            (size_t)task->idx >= parent->elements) {
            root->truncated = true;
            return &dropped;
        }
        root->_bytes += bytes;
        root->_count++;
    }
    struct jw_resp *r = jw_calloc(1, sizeof(*r));
    r->type = type;
    r->_root = root ? root : r;
    if (parent)
        parent->element[task->idx] = r;
    return r;
}

static void *
create_string(const redisReadTask *task, char *str, size_t len)
{
    const struct jw_resp_limits *lim = task->privdata;
    struct jw_resp *r = node_new(task, (enum jw_resp_type)task->type, len);
    if (r == &dropped)
        return r;
    if (r->_root == r && len > lim->max_bytes) { /* a root string over the budget */
        r->truncated = true;
        return r;
    }
    r->_root->_bytes += r->_root == r ? len : 0;
    r->str = jw_malloc(len + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *
create_array(const redisReadTask *task, int elements)
{
    const struct jw_resp_limits *lim = task->privdata;
    struct jw_resp *r = node_new(task, JW_RESP_ARRAY, 0);
    if (r == &dropped)
        return r;
    size_t n = elements > 0 ? (size_t)elements : 0;
    size_t room = lim->max_elements > r->_root->_count ? lim->max_elements - r->_root->_count : 0;
    if (n > room) {
        n = room;
        r->_root->truncated = true;
    }
    r->elements = n;
    r->element = n ? jw_calloc(n, sizeof(*r->element)) : NULL;
    return r;
}

static void *
create_integer(const redisReadTask *task, long long value)
{
    struct jw_resp *r = node_new(task, JW_RESP_INTEGER, 0);
    if (r != &dropped)
        r->integer = value;
    return r;
}

static void *
create_nil(const redisReadTask *task)
{
    return node_new(task, JW_RESP_NIL, 0);
}

void
jw_resp_free(struct jw_resp *r)
{
    if (!r || r == &dropped)
        return;
    for (size_t i = 0; i < r->elements; i++)
        jw_resp_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static void
free_object(void *obj)
{
    jw_resp_free(obj);
}

static redisReplyObjectFunctions functions = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createNil = create_nil,
    .freeObject = free_object,
};

struct redisReader *
jw_resp_reader_new(const struct jw_resp_limits *limits)
{
    redisReader *r = redisReaderCreateWithFunctions(&functions);
    if (!r)
        abort(); /* out of memory: alloc.h's policy */
    r->privdata = (void *)limits;
    return r;
}

bool
jw_resp_is_str(const struct jw_resp *r)
{
    return r && r != &dropped && (r->type == JW_RESP_STRING || r->type == JW_RESP_STATUS) && r->str;
}

bool
jw_resp_str_eq(const struct jw_resp *r, const char *s)
{
    size_t n = strlen(s);
    return jw_resp_is_str(r) && r->len == n && strncasecmp(r->str, s, n) == 0;
}

bool
jw_resp_error_is(const struct jw_resp *r, const char *code)
{
    size_t n = strlen(code);
    return r && r != &dropped && r->type == JW_RESP_ERROR && r->str && r->len >= n &&
           memcmp(r->str, code, n) == 0 && (r->len == n || r->str[n] == ' ');
}
