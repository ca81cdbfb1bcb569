/*
 * Job snapshots (see snapshot.h): the Redis transaction, its reply, and the snapshot frame.
 */
#include "snapshot.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/buf.h"
#include "jobwire/redis.h"

char *
jw_key_expand(const char *template, const char *name, const char *value)
{
    const char *at = strstr(template, name);
    if (!at)
        return jw_strdup(template);
    size_t nlen = strlen(name), vlen = strlen(value), tlen = strlen(template);
    size_t head = (size_t)(at - template);
    char *key = jw_malloc(tlen - nlen + vlen + 1);
    memcpy(key, template, head);
    memcpy(key + head, value, vlen);
    memcpy(key + head + vlen, at + nlen, tlen - head - nlen + 1);
    return key;
}

static void
ignore_reply(struct jw_redis_request *req)
{
    (void)req; /* MULTI, PUBLISH, HGETALL and GET answer +OK/QUEUED; EXEC carries the data */
}

static void
submit(struct jw_upstream *up, int argc, const char **argv, jw_redis_done_fn done, void *ctx,
       uint64_t tag, uint64_t arg)
{
    struct jw_redis_request *req = jw_redis_request_new(argc, argv, NULL, done, ctx, tag);
    req->arg = arg;
    jw_upstream_submit(up, req);
}

void
jw_snapshot_submit(struct jw_upstream *up, const struct jw_config *cfg, const char *job_id,
                   const char *marker_channel, jw_redis_done_fn done, void *ctx, uint64_t tag,
                   uint64_t arg)
{
    char *hash_key = jw_key_expand(cfg->job_owner_key_template, "{jobId}", job_id);
    char *string_key = jw_key_expand(cfg->job_status_key_template, "{jobId}", job_id);
    const char *multi[] = {"MULTI"};
    const char *publish[] = {"PUBLISH", marker_channel, ""};
    const char *hgetall[] = {"HGETALL", hash_key};
    const char *get[] = {"GET", string_key};
    const char *exec[] = {"EXEC"};
    /* Consecutive submissions from the one gateway thread stay adjacent and in order on the
     * command connection, so nothing else runs inside the transaction. */
    submit(up, 1, multi, ignore_reply, ctx, tag, arg);
    submit(up, 3, publish, ignore_reply, ctx, tag, arg);
    submit(up, 2, hgetall, ignore_reply, ctx, tag, arg);
    /* A transaction may touch one hash slot only: on a cluster the string key (another slot)
     * is not read. */
    if (!jw_upstream_is_cluster(up))
        submit(up, 2, get, ignore_reply, ctx, tag, arg);
    submit(up, 1, exec, done, ctx, tag, arg);
    free(hash_key);
    free(string_key);
}

/* An id field of a JSON object (string or integer); a new string or NULL. */
static char *
json_id(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    char tmp[24];
    if (json_is_string(v))
        return jw_strndup(json_string_value(v), json_string_length(v));
    if (json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return jw_strdup(tmp);
    }
    return NULL;
}

static void
parse_hash(const struct jw_config *cfg, const redisReply *r, struct jw_snapshot *snap)
{
    json_t *obj = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        char *key = jw_strndup(k->str, k->len);
        json_object_set_new(obj, key, json_stringn(v->str, v->len));
        free(key);
    }
    snap->owner = json_id(obj, cfg->job_owner_field);
    snap->state_json = json_dumps(obj, JSON_COMPACT);
    snap->source = "hash";
    json_decref(obj);
}

static void
parse_string(const struct jw_config *cfg, const redisReply *r, struct jw_snapshot *snap)
{
    json_error_t err;
    json_t *value = json_loadb(r->str, r->len, JSON_DECODE_ANY, &err);
    if (!value) /* not JSON: shown as the string it is */
        value = json_stringn(r->str, r->len);
    snap->owner = json_is_object(value) ? json_id(value, cfg->job_owner_field) : NULL;
    snap->state_json = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    snap->source = "string";
    json_decref(value);
}

void
jw_snapshot_parse(const struct jw_config *cfg, const struct jw_redis_request *exec,
                  struct jw_snapshot *snap)
{
    memset(snap, 0, sizeof(*snap));
    const redisReply *r = exec->reply;
    /* [PUBLISH count, HGETALL, GET] — GET only outside a cluster */
    if (exec->status < 0 || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->elements > 3) {
        snap->unavailable = 1;
        return;
    }
    const redisReply *hash = r->element[1], *string = r->elements == 3 ? r->element[2] : NULL;
    if (hash->type == REDIS_REPLY_ARRAY && hash->elements > 0)
        parse_hash(cfg, hash, snap);
    else if (string && string->type == REDIS_REPLY_STRING)
        parse_string(cfg, string, snap);
    if (snap->owner && !jw_id_valid(snap->owner, strlen(snap->owner))) {
        free(snap->owner); /* an owner no user can have: the state is nobody's */
        snap->owner = NULL;
    }
}

void
jw_snapshot_clear(struct jw_snapshot *snap)
{
    free(snap->owner);
    free(snap->state_json);
    memset(snap, 0, sizeof(*snap));
}

struct jw_frame *
jw_snapshot_frame(const char *job_id, const struct jw_snapshot *snap, int visible)
{
    struct jw_buf b;
    jw_buf_init(&b, 128 + (snap->state_json && visible ? strlen(snap->state_json) : 0));
    jw_buf_append_str(&b, "{\"type\":\"snapshot\",\"jobId\":");
    jw_buf_append_json_string(&b, job_id, strlen(job_id));
    if (visible && snap->owner) {
        jw_buf_append_str(&b, ",\"userId\":");
        jw_buf_append_json_string(&b, snap->owner, strlen(snap->owner));
    }
    int shown = visible && snap->state_json;
    jw_buf_append_str(&b, ",\"source\":");
    if (shown) {
        jw_buf_append_str(&b, "\"");
        jw_buf_append_str(&b, snap->source);
        jw_buf_append_str(&b, "\"");
    } else {
        jw_buf_append_str(&b, "null");
    }
    jw_buf_append_str(&b, ",\"state\":");
    jw_buf_append_str(&b, shown ? snap->state_json : "null");
    if (snap->unavailable)
        jw_buf_append_str(&b, ",\"unavailable\":true");
    jw_buf_append_str(&b, ",\"seq\":");
    struct jw_frame *f = jw_frame_new(b.data, b.len, 1);
    jw_buf_free(&b);
    return f;
}

struct jw_event *
jw_snapshot_event(const char *job_id, const struct jw_snapshot *snap)
{
    struct jw_event *ev = jw_calloc(1, sizeof(*ev));
    ev->msg.type = JW_MSG_EVENT;
    ev->kind = JW_KIND_SNAPSHOT;
    ev->job_id = jw_strdup(job_id);
    ev->user_id = snap->owner ? jw_strdup(snap->owner) : NULL;
    ev->frame = jw_snapshot_frame(job_id, snap, 1);
    return ev;
}
