/*
 * Typed operations (redis.h) as requests, and their replies as parsed results. This is the only
 * place that knows which commands an operation takes and what their replies look like.
 *
 *   SNAPSHOT, single node / Sentinel (one request, one transaction):
 *       MULTI / PUBLISH marker "" / HGETALL hash / GET string / EXEC
 *     The marker is published in the same transaction as the read, so on the subscription every
 *     event before it was published before the state was read (`exact`).
 *   SNAPSHOT and READ_STATE on a cluster (two requests, each on its own slot):
 *       HGETALL hash          GET string
 *     No marker: state and marker would live on different nodes, whose publishes reach the
 *     subscribed node over different cluster-bus links in no fixed order (`exact` false).
 *   READ_STATE elsewhere:  HGETALL hash / GET string  (one request, two replies)
 *   REVOKED:     EXISTS key                     PROBE:  PUBLISH channel ""
 *   RECENT_JOBS: ZREVRANGE index 0 N-1          (newest first)
 *
 * A job's state: the hash when it has fields, else the string; the hash becomes a JSON object of
 * its fields (values are strings, as Redis stores them), the string is embedded as the JSON it
 * holds, or as a JSON string when it is not JSON. Bytes that are not UTF-8 become U+FFFD.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/buf.h"
#include "jobwire/json.h"
#include "upstream_private.h"

/* Which part of an op a request is. */
enum part { PART_ALL = 0, PART_HASH, PART_STRING };

struct part_ctx {
    struct jw_upstream *up;
    struct jw_redis_op *op;
    enum part part;
};

static const struct jw_resp *
at(const struct jw_resp *r, size_t i)
{
    return r && r->type == JW_RESP_ARRAY && i < r->elements ? r->element[i] : NULL;
}

static void
set_owner(struct jw_job_state *st, const char *id, size_t len)
{
    if (len && jw_id_valid(id, len)) /* an owner no user can have: the state is nobody's */
        st->owner = jw_strndup(id, len);
}

/* HGETALL's field list, when it has fields: the state as a JSON object. */
static bool
read_hash(const struct jw_config *cfg, const struct jw_resp *r, struct jw_job_state *st)
{
    if (!r || r->type != JW_RESP_ARRAY || r->elements == 0)
        return false;
    struct jw_buf b;
    jw_buf_init(&b, 256);
    jw_buf_append_str(&b, "{");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const struct jw_resp *k = r->element[i], *v = r->element[i + 1];
        if (!jw_resp_is_str(k) || !jw_resp_is_str(v))
            continue;
        if (b.len > 1)
            jw_buf_append_str(&b, ",");
        jw_buf_append_json_string(&b, k->str, k->len);
        jw_buf_append_str(&b, ":");
        jw_buf_append_json_string(&b, v->str, v->len);
        if (strcmp(k->str, cfg->job_owner_field) == 0)
            set_owner(st, v->str, v->len);
    }
    jw_buf_append_str(&b, "}");
    st->json = jw_strndup(b.data, b.len);
    st->source = "hash";
    jw_buf_free(&b);
    return true;
}

/* GET's value, when there is one: the JSON it holds, verbatim, or a JSON string of it. */
static bool
read_string(const struct jw_config *cfg, const struct jw_resp *r, struct jw_job_state *st)
{
    if (!r || r->type != JW_RESP_STRING)
        return false;
    st->source = "string";
    struct jw_json_member owner = {.name = cfg->job_owner_field};
    if (jw_json_scan(r->str, r->len, &owner, 1)) {
        char id[JW_ID_MAX + 1];
        st->json = jw_strndup(r->str, r->len);
        set_owner(st, id, jw_json_member_id(r->str, &owner, id, sizeof id));
    } else {
        struct jw_buf b;
        jw_buf_init(&b, r->len + 16);
        jw_buf_append_json_string(&b, r->str, r->len);
        st->json = jw_strndup(b.data, b.len);
        jw_buf_free(&b);
    }
    return true;
}

static void
clear_state(struct jw_job_state *st)
{
    free(st->owner);
    free(st->json);
    memset(st, 0, sizeof *st);
}

/* Whether a HGETALL or GET reply is over max_state_bytes or max_state_fields. The link's own
 * bound has slack for framing, so the state's size is checked here, exactly. */
static bool
over_limits(const struct jw_config *cfg, const struct jw_resp *r)
{
    if (!r)
        return false;
    if (jw_resp_is_str(r))
        return r->len > cfg->max_state_bytes;
    if (r->type != JW_RESP_ARRAY)
        return false;
    if (r->elements / 2 > (size_t)cfg->max_state_fields)
        return true;
    size_t bytes = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (jw_resp_is_str(r->element[i]))
            bytes += r->element[i]->len;
    return bytes > cfg->max_state_bytes;
}

static bool
any_error(const struct jw_request *req)
{
    for (unsigned i = 0; i < req->got; i++)
        if (req->reply[i] && req->reply[i]->type == JW_RESP_ERROR)
            return true;
    return false;
}

/* Fills op->r from the replies of one request. */
static int
parse(struct jw_upstream *up, struct jw_redis_op *op, enum part part, struct jw_request *req)
{
    const struct jw_config *cfg = up->cfg;
    struct jw_job_state *st = &op->r.state;
    switch (op->kind) {
    case JW_OP_SNAPSHOT:
    case JW_OP_READ_STATE: {
        const struct jw_resp *hash, *string;
        if (any_error(req))
            return -EPROTO;
        if (part == PART_ALL && op->kind == JW_OP_SNAPSHOT) {
            /* MULTI, 3 x QUEUED, EXEC: [publish count, fields, value] */
            const struct jw_resp *exec = req->reply[req->nreplies - 1];
            if (!exec || exec->type != JW_RESP_ARRAY || exec->elements != 3)
                return -EPROTO;
            hash = at(exec, 1);
            string = at(exec, 2);
            /* A command that failed inside the transaction (WRONGTYPE …) answers in EXEC. */
            if ((hash && hash->type == JW_RESP_ERROR) || (string && string->type == JW_RESP_ERROR))
                return -EPROTO;
        } else {
            hash = part != PART_STRING ? req->reply[0] : NULL;
            string = part == PART_ALL ? req->reply[1] : part == PART_STRING ? req->reply[0] : NULL;
        }
        bool too_large = over_limits(cfg, hash) || over_limits(cfg, string);
        for (unsigned i = 0; i < req->got; i++)
            too_large |= req->reply[i] && req->reply[i]->truncated;
        if (too_large) {
            /* Neither the state nor its owner can be told. */
            clear_state(st);
            st->too_large = true;
            return 0;
        }
        if (st->too_large)
            return 0;
        /* The hash wins over the string; on a cluster the parts come in either order. */
        if (hash && (hash->type == JW_RESP_ARRAY && hash->elements > 0)) {
            clear_state(st);
            read_hash(cfg, hash, st);
        } else if (string && !st->source) {
            read_string(cfg, string, st);
        }
        return 0;
    }
    case JW_OP_REVOKED: {
        const struct jw_resp *r = req->reply[0];
        if (!r || r->type != JW_RESP_INTEGER)
            return -EPROTO;
        op->r.revoked = r->integer > 0;
        return 0;
    }
    case JW_OP_PROBE:
        return any_error(req) ? -EPROTO : 0;
    case JW_OP_RECENT_JOBS: {
        const struct jw_resp *r = req->reply[0];
        if (!r || r->type != JW_RESP_ARRAY)
            return -EPROTO;
        op->r.jobs.ids = jw_calloc(r->elements ? r->elements : 1, sizeof(char *));
        for (size_t i = 0; i < r->elements; i++)
            if (jw_resp_is_str(r->element[i]) &&
                jw_id_valid(r->element[i]->str, r->element[i]->len))
                op->r.jobs.ids[op->r.jobs.n++] = jw_strndup(r->element[i]->str, r->element[i]->len);
        return 0;
    }
    }
    return -EPROTO;
}

static void
part_done(struct jw_request *req, int status)
{
    struct part_ctx *pc = req->ctx;
    struct jw_redis_op *op = pc->op;
    if (status == 0)
        status = parse(pc->up, op, pc->part, req);
    if (status < 0 && op->status == 0)
        op->status = status; /* the first failure is the op's */
    if (--op->_parts == 0) {
        if (op->status < 0 && (op->kind == JW_OP_SNAPSHOT || op->kind == JW_OP_READ_STATE))
            clear_state(&op->r.state); /* a half read is no state */
        jw_upstream_finish_op(pc->up, op, op->status);
    }
    free(pc);
}

static struct jw_request *
new_part(struct jw_upstream *up, struct jw_redis_op *op, enum part part, const char *key)
{
    struct part_ctx *pc = jw_malloc(sizeof *pc);
    *pc = (struct part_ctx){up, op, part};
    op->_parts++;
    return jw_request_new(key ? (int)jw_key_slot(key, strlen(key)) : -1, part_done, pc);
}

static void
add(struct jw_request *req, const char *a, const char *b, const char *c)
{
    const char *argv[3] = {a, b, c};
    jw_request_add(req, c ? 3 : b ? 2 : 1, argv, NULL);
}

/* The requests of a state read; 1 or 2. */
static int
state_requests(struct jw_upstream *up, struct jw_redis_op *op, struct jw_request **reqs)
{
    const struct jw_config *cfg = up->cfg;
    char *hash = jw_key_expand(cfg->job_owner_key_template, "{jobId}", op->key);
    char *string = jw_key_expand(cfg->job_status_key_template, "{jobId}", op->key);
    int n;
    if (up->topo.mode == JW_TOPO_CLUSTER) {
        reqs[0] = new_part(up, op, PART_HASH, hash);
        add(reqs[0], "HGETALL", hash, NULL);
        reqs[1] = new_part(up, op, PART_STRING, string);
        add(reqs[1], "GET", string, NULL);
        n = 2;
    } else if (op->kind == JW_OP_SNAPSHOT) {
        reqs[0] = new_part(up, op, PART_ALL, hash);
        add(reqs[0], "MULTI", NULL, NULL);
        add(reqs[0], "PUBLISH", op->channel, "");
        add(reqs[0], "HGETALL", hash, NULL);
        add(reqs[0], "GET", string, NULL);
        add(reqs[0], "EXEC", NULL, NULL);
        op->exact = true;
        n = 1;
    } else {
        reqs[0] = new_part(up, op, PART_ALL, hash);
        add(reqs[0], "HGETALL", hash, NULL);
        add(reqs[0], "GET", string, NULL);
        n = 1;
    }
    free(hash);
    free(string);
    return n;
}

void
jw_ops_submit(struct jw_upstream *up, struct jw_redis_op *op)
{
    const struct jw_config *cfg = up->cfg;
    struct jw_request *reqs[2];
    int n = 1;
    op->status = 0;
    op->_parts = 0;
    switch (op->kind) {
    case JW_OP_SNAPSHOT:
    case JW_OP_READ_STATE:
        n = state_requests(up, op, reqs);
        break;
    case JW_OP_REVOKED: {
        char *key = jw_key_expand(cfg->revocation_key_template, "{jti}", op->key);
        reqs[0] = new_part(up, op, PART_ALL, key);
        add(reqs[0], "EXISTS", key, NULL);
        free(key);
        break;
    }
    case JW_OP_PROBE:
        reqs[0] = new_part(up, op, PART_ALL, NULL);
        add(reqs[0], "PUBLISH", op->channel, "");
        break;
    case JW_OP_RECENT_JOBS: {
        if (!cfg->scope_snapshot_max_jobs) { /* off: no list (ZREVRANGE 0 -1 would be all) */
            jw_upstream_finish_op(up, op, 0);
            return;
        }
        jw_jobindex_flush(up); /* the read sees every job noted before it */
        char *key = op->key ? jw_key_expand(cfg->job_index_user_key, "{userId}", op->key)
                            : jw_strdup(cfg->job_index_all_key);
        char last[16];
        snprintf(last, sizeof last, "%d", cfg->scope_snapshot_max_jobs - 1);
        reqs[0] = new_part(up, op, PART_ALL, key);
        const char *argv[4] = {"ZREVRANGE", key, "0", last};
        jw_request_add(reqs[0], 4, argv, NULL);
        free(key);
        break;
    }
    }
    /* Every part is counted before any is sent: a part that fails at once must not finish the
     * op while another is still to go. */
    for (int i = 0; i < n; i++)
        jw_commands_send(up, reqs[i]);
}
