/*
 * WebSocket sessions (see the state diagram in session.h): admission at the upgrade,
 * authentication by dev_auth or JWT with a revocation check in Redis, client requests applied
 * to the hub (job subscriptions checked against the job's owner in Redis), and the outbound
 * queue written several frames per WRITEABLE callback.
 */
#include "jobwire/session.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/auth.h"
#include "jobwire/dict.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "jobwire/protocol.h"
#include "jobwire/rediscmd.h"
#include "jobwire/upstream.h"

#define MOD "session"
#define MAX_HELD 32 /* client messages held while a Redis step runs; more is a flood */

enum { S_AWAIT_AUTH = 0, S_CHECKING, S_ACTIVE };

/* A step that waits for Redis: a revocation check or the owner lookups of a subscribe. */
struct jw_session_op {
    enum { OP_AUTH, OP_SUBSCRIBE } kind;
    struct jw_cmd cmd;             /* the request being answered */
    struct jw_principal principal; /* OP_AUTH: the verified token's principal */
    unsigned outstanding;          /* requests not yet answered */
    unsigned refused;              /* revoked token, or jobs owned by someone else */
    unsigned unavailable;          /* requests Redis could not answer */
};

struct jw_held_input {
    struct jw_held_input *next;
    size_t len;
    char text[];
};

static void handle_message(struct jw_session *s, const char *text, size_t len);

static uint64_t
now_ms(void)
{
    return jw_monotonic_ns() / 1000000u;
}

static int64_t
wall_seconds(void)
{
    return (int64_t)time(NULL);
}

/* ---- environment ---------------------------------------------------------------------- */

void
jw_session_env_init(struct jw_session_env *env, const struct jw_config *cfg,
                    const struct jw_auth *auth)
{
    memset(env, 0, sizeof(*env));
    env->cfg = cfg;
    env->auth = auth;
    env->hub = jw_hub_new();
    env->by_id = jw_dict_new();
    env->per_address = jw_counts_new();
    env->per_user = jw_counts_new();
    for (size_t i = 0; i < cfg->trusted_nproxies; i++)
        if (jw_cidr_parse(cfg->trusted_proxies[i], &env->trusted[env->ntrusted]) == 0)
            env->ntrusted++; /* jw_config_finish() validated every entry */
}

void
jw_session_env_destroy(struct jw_session_env *env)
{
    jw_hub_free(env->hub);
    jw_dict_free(env->by_id);
    jw_counts_free(env->per_address);
    jw_counts_free(env->per_user);
}

/* ---- queueing and closing ------------------------------------------------------------- */

/* Marks the session to close with `code` on its next write turn. The first reason wins. */
static void
close_later(struct jw_session *s, uint16_t code, const char *reason)
{
    if (s->close_code)
        return;
    jw_info(MOD, "c%08x: closing (%u): %s", s->id, code, reason);
    s->close_code = code;
    s->close_reason = reason;
    lws_callback_on_writable(s->wsi);
}

/* Queues a frame; on overflow marks the session as a slow consumer. Returns 0 or -ENOBUFS. */
static int
enqueue(struct jw_session *s, struct jw_frame *f)
{
    if (s->close_code)
        return -ENOBUFS;
    size_t before = s->outq.bytes;
    if (jw_outq_push(&s->outq, f, s->env->cfg->client_queue_max_bytes) < 0) {
        jw_metric_add(JW_M_CLOSED_SLOW, 1);
        jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)s->outq.bytes);
        jw_outq_clear(&s->outq);
        close_later(s, JW_CLOSE_SLOW_CONSUMER, "slow consumer");
        return -ENOBUFS;
    }
    jw_metric_add(JW_M_QUEUE_BYTES, (int64_t)(s->outq.bytes - before));
    if (s->outq.count == 1)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* Queues a control frame this session owns alone. */
static void
send_owned(struct jw_session *s, struct jw_frame *f)
{
    (void)enqueue(s, f);
    jw_frame_unref(f);
}

static void
send_error(struct jw_session *s, const char *id, const char *code, const char *message)
{
    jw_metric_add(JW_M_CLIENT_ERRORS, 1);
    jw_debug(MOD, "c%08x: error %s: %s", s->id, code, message);
    send_owned(s, jw_reply_error(id, code, message));
}

/* Refuses authentication: an error frame the client can read, then close 4401 or 4403. */
static void
refuse_auth(struct jw_session *s, const char *id, uint16_t code, const char *reason,
            enum jw_metric_id metric)
{
    jw_metric_add(metric, 1);
    send_error(s, id, code == JW_CLOSE_FORBIDDEN ? JW_ERR_FORBIDDEN : JW_ERR_UNAUTHENTICATED,
               reason);
    close_later(s, code, reason);
}

/* ---- admission ------------------------------------------------------------------------ */

static void
client_address(const struct jw_session_env *env, struct lws *wsi, char *out, size_t size)
{
    char peer[64] = "", xff[512];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    int has_xff = lws_hdr_copy(wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR) > 0;
    jw_client_address(peer, has_xff ? xff : NULL, env->trusted, env->ntrusted, out, size);
}

/* The bearer token of the upgrade request, if any: the Authorization header, or ?token= when
 * allowed. Returns its length (0 = none). */
static size_t
handshake_token(const struct jw_session_env *env, struct lws *wsi, char *buf, size_t size)
{
    int n = lws_hdr_copy(wsi, buf, (int)size, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        memmove(buf, buf + 7, (size_t)n - 6);
        return (size_t)n - 7;
    }
    if (env->cfg->auth_allow_query_token) {
        const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, (int)size);
        if (v && *v) {
            memmove(buf, v, strlen(v) + 1);
            return strlen(buf);
        }
    }
    return 0;
}

/* dev_auth: the principal named by ?user= and ?admin=. Returns 0 or -1 with `why`. */
static int
dev_principal(struct lws *wsi, struct jw_principal *p, const char **why)
{
    char arg[JW_ID_MAX + 16];
    memset(p, 0, sizeof(*p));
    const char *v = lws_get_urlarg_by_name(wsi, "user=", arg, sizeof(arg));
    if (!v || !jw_id_valid(v, strlen(v)) || strlen(v) > JW_ID_MAX) {
        *why = "dev_auth needs ?user=<id> (1-128 bytes, no control characters)";
        return -1;
    }
    snprintf(p->user_id, sizeof(p->user_id), "%s", v);
    v = lws_get_urlarg_by_name(wsi, "admin=", arg, sizeof(arg));
    p->admin = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    return 0;
}

static enum jw_metric_id
auth_failure_metric(enum jw_auth_result r)
{
    return r == JW_AUTH_EXPIRED ? JW_M_AUTH_FAILURES_EXPIRED : JW_M_AUTH_FAILURES_BAD_TOKEN;
}

unsigned
jw_session_admit(struct jw_session_env *env, struct lws *wsi, const char **why)
{
    const struct jw_config *cfg = env->cfg;
    char origin[256], address[64];
    int has_origin = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) > 0;
    if (!jw_origin_allowed(has_origin ? origin : NULL, cfg->allowed_origins,
                           cfg->allowed_norigins)) {
        jw_metric_add(JW_M_AUTH_FAILURES_FORBIDDEN_ORIGIN, 1);
        *why = "origin not allowed";
        return HTTP_STATUS_FORBIDDEN;
    }
    client_address(env, wsi, address, sizeof(address));
    if (cfg->max_connections_per_ip &&
        jw_counts_get(env->per_address, address) >= (unsigned)cfg->max_connections_per_ip) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        *why = "too many connections from this address";
        return 429;
    }
    if (cfg->dev_auth) {
        struct jw_principal p;
        return dev_principal(wsi, &p, why) < 0 ? HTTP_STATUS_UNAUTHORIZED : 0;
    }
    if (!jw_auth_enabled(env->auth)) {
        *why = "no authentication method is configured";
        return HTTP_STATUS_UNAUTHORIZED;
    }
    /* A token in the handshake must be good; without one the client authenticates by message. */
    char token[JW_TOKEN_MAX + 16];
    size_t len = handshake_token(env, wsi, token, sizeof(token));
    if (!len)
        return 0;
    struct jw_principal p;
    enum jw_auth_result r = jw_auth_verify(env->auth, token, len, wall_seconds(), &p);
    explicit_bzero(token, sizeof(token));
    if (r != JW_AUTH_OK) {
        jw_metric_add(auth_failure_metric(r), 1);
        *why = jw_auth_result_name(r);
        return HTTP_STATUS_UNAUTHORIZED;
    }
    return 0;
}

/* ---- authentication ------------------------------------------------------------------- */

static void on_redis_reply(struct jw_redis_request *req);

/* Sends one Redis request on behalf of the session's op. */
static void
submit(struct jw_session *s, int argc, const char **argv, uint64_t arg)
{
    struct jw_redis_request *req =
        jw_redis_request_new(argc, argv, NULL, on_redis_reply, s->env, s->id);
    req->arg = arg;
    s->op->outstanding++;
    jw_upstream_submit(s->env->upstream, req);
}

/* Expands "{name}" in a key template with `value`. */
static char *
expand_key(const char *template, const char *name, const char *value)
{
    const char *at = strstr(template, name);
    size_t nlen = strlen(name), vlen = strlen(value), tlen = strlen(template);
    if (!at)
        return jw_strdup(template);
    char *key = jw_malloc(tlen - nlen + vlen + 1);
    size_t head = (size_t)(at - template);
    memcpy(key, template, head);
    memcpy(key + head, value, vlen);
    memcpy(key + head + vlen, at + nlen, tlen - head - nlen + 1);
    return key;
}

/* The session's one deadline (auth timeout, then token expiry). lws 4.1 cannot cancel a wsi
 * timer (LWS_SET_TIMER_USEC_CANCEL fires it at once), so a callback that comes without a
 * deadline due is ignored: `deadline_ms` is the truth, the lws timer only a wake-up. */
static void
arm_deadline(struct jw_session *s, uint64_t in_ms)
{
    s->deadline_ms = now_ms() + in_ms;
    lws_set_timer_usecs(s->wsi, (lws_usec_t)in_ms * 1000);
}

static void
schedule_expiry(struct jw_session *s)
{
    s->deadline_ms = 0;
    if (!s->expires_at)
        return;
    int64_t in = s->expires_at + s->env->cfg->jwt_leeway_seconds - wall_seconds();
    arm_deadline(s, in > 0 ? (uint64_t)in * 1000u : 0);
}

/* The principal is known and not revoked: join the hub and say welcome. */
static void
activate(struct jw_session *s, const struct jw_principal *p)
{
    struct jw_session_env *env = s->env;
    if (jw_counts_acquire(env->per_user, p->user_id, (unsigned)env->cfg->max_connections_per_user) <
        0) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        send_error(s, "", JW_ERR_FORBIDDEN, "too many connections for this user");
        close_later(s, JW_CLOSE_TOO_MANY, "too many connections for this user");
        return;
    }
    s->user_counted = 1;
    s->state = S_ACTIVE;
    s->user_id = jw_strdup(p->user_id);
    s->expires_at = p->expires_at;
    s->member.user_id = s->user_id;
    s->member.admin = p->admin;
    s->member.owner = s;
    jw_hub_join(env->hub, &s->member);
    schedule_expiry(s);
    jw_info(MOD, "c%08x: authenticated as user %s%s", s->id, s->user_id,
            p->admin ? " (admin)" : "");
    char conn_id[16];
    snprintf(conn_id, sizeof(conn_id), "c%08x", s->id);
    send_owned(s, jw_reply_welcome(conn_id, s->user_id, p->admin));
}

/* A verified token: check revocation in Redis (when it has a jti), then activate or refresh. */
static void
start_auth(struct jw_session *s, const struct jw_cmd *cmd, const struct jw_principal *p)
{
    s->op = jw_calloc(1, sizeof(*s->op));
    s->op->kind = OP_AUTH;
    s->op->principal = *p;
    memcpy(s->op->cmd.id, cmd ? cmd->id : "", sizeof(s->op->cmd.id));
    if (s->state != S_ACTIVE)
        s->state = S_CHECKING;
    if (p->jti[0]) {
        char *key = expand_key(s->env->cfg->revocation_key_template, "{jti}", p->jti);
        const char *argv[] = {"EXISTS", key};
        submit(s, 2, argv, 0);
        free(key);
    }
}

/* An auth (first authentication, or refresh) message. */
static void
handle_auth(struct jw_session *s, const struct jw_cmd *cmd)
{
    struct jw_principal p;
    enum jw_auth_result r =
        jw_auth_enabled(s->env->auth)
            ? jw_auth_verify(s->env->auth, cmd->token, cmd->token_len, wall_seconds(), &p)
            : JW_AUTH_DISABLED;
    if (r != JW_AUTH_OK) {
        if (s->state == S_ACTIVE) { /* a bad refresh leaves the current token in force */
            jw_metric_add(auth_failure_metric(r), 1);
            send_error(s, cmd->id, JW_ERR_BAD_TOKEN, jw_auth_result_name(r));
            return;
        }
        refuse_auth(s, cmd->id, JW_CLOSE_UNAUTHENTICATED, jw_auth_result_name(r),
                    auth_failure_metric(r));
        return;
    }
    if (s->state == S_ACTIVE &&
        (strcmp(p.user_id, s->user_id) != 0 || p.admin != s->member.admin)) {
        send_error(s, cmd->id, JW_ERR_FORBIDDEN, "a refresh must keep the same user and role");
        return;
    }
    start_auth(s, cmd, &p);
}

/* ---- subscriptions -------------------------------------------------------------------- */

/* Jobs of the request that the session does not hold yet. */
static size_t
count_new_jobs(const struct jw_session *s, const struct jw_cmd *cmd)
{
    size_t n = 0;
    for (size_t i = 0; i < cmd->njobs; i++)
        n += !jw_hub_is_subscribed(s->env->hub, &s->member, cmd->jobs[i]);
    return n;
}

static void
apply_subscribe(struct jw_session *s, const struct jw_cmd *cmd)
{
    struct jw_session_env *env = s->env;
    size_t max = (size_t)env->cfg->client_max_subscriptions;
    switch (cmd->scope) {
    case JW_SCOPE_USER:
        jw_hub_set_user_scope(env->hub, &s->member, cmd->kinds);
        break;
    case JW_SCOPE_ALL:
        if (jw_hub_set_all_scope(env->hub, &s->member, cmd->kinds) < 0) {
            send_error(s, cmd->id, JW_ERR_FORBIDDEN, "scope \"all\" needs the admin role");
            return;
        }
        break;
    case JW_SCOPE_JOBS:
        for (size_t i = 0; i < cmd->njobs; i++)
            if (jw_hub_subscribe_job(env->hub, &s->member, cmd->jobs[i], cmd->kinds, max) == 0)
                jw_metric_add(JW_M_SUBSCRIPTIONS, 1);
        break;
    }
    send_owned(s, jw_reply_ack(cmd));
}

/* A subscribe request: checked against limits, then (jobs scope, non-admin) against each job's
 * owner in Redis before it is applied. Takes over `cmd`'s memory when it starts a lookup. */
static void
handle_subscribe(struct jw_session *s, struct jw_cmd *cmd)
{
    size_t max = (size_t)s->env->cfg->client_max_subscriptions;
    if (cmd->scope == JW_SCOPE_JOBS &&
        jw_hub_subscription_count(&s->member) + count_new_jobs(s, cmd) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "at most %zu job subscriptions per connection", max);
        send_error(s, cmd->id, JW_ERR_TOO_MANY_JOBS, msg);
        return;
    }
    if (cmd->scope != JW_SCOPE_JOBS || s->member.admin) {
        apply_subscribe(s, cmd);
        return;
    }
    s->op = jw_calloc(1, sizeof(*s->op));
    s->op->kind = OP_SUBSCRIBE;
    s->op->cmd = *cmd;
    memset(cmd, 0, sizeof(*cmd)); /* the op owns the job ids now */
    const struct jw_config *cfg = s->env->cfg;
    for (size_t i = 0; i < s->op->cmd.njobs; i++) {
        char *key = expand_key(cfg->job_owner_key_template, "{jobId}", s->op->cmd.jobs[i]);
        const char *argv[] = {"HGET", key, cfg->job_owner_field};
        submit(s, 3, argv, i);
        free(key);
    }
}

static void
apply_unsubscribe(struct jw_session *s, const struct jw_cmd *cmd)
{
    struct jw_session_env *env = s->env;
    switch (cmd->scope) {
    case JW_SCOPE_USER:
        jw_hub_set_user_scope(env->hub, &s->member, 0);
        break;
    case JW_SCOPE_ALL:
        if (jw_hub_set_all_scope(env->hub, &s->member, 0) < 0) {
            send_error(s, cmd->id, JW_ERR_FORBIDDEN, "scope \"all\" needs the admin role");
            return;
        }
        break;
    case JW_SCOPE_JOBS:
        for (size_t i = 0; i < cmd->njobs; i++)
            if (jw_hub_unsubscribe_job(env->hub, &s->member, cmd->jobs[i]) == 0)
                jw_metric_add(JW_M_SUBSCRIPTIONS, -1);
        break;
    }
    send_owned(s, jw_reply_ack(cmd));
}

/* ---- Redis completions ---------------------------------------------------------------- */

static void
hold(struct jw_session *s, const char *text, size_t len)
{
    if (s->nheld >= MAX_HELD) {
        jw_metric_add(JW_M_CLOSED_RATE_LIMITED, 1);
        close_later(s, JW_CLOSE_TOO_MANY, "too many requests in flight");
        return;
    }
    struct jw_held_input *h = jw_malloc(sizeof(*h) + len);
    h->next = NULL;
    h->len = len;
    memcpy(h->text, text, len);
    if (s->held_tail)
        s->held_tail->next = h;
    else
        s->held = h;
    s->held_tail = h;
    s->nheld++;
}

static void
free_op(struct jw_session *s)
{
    if (!s->op)
        return;
    jw_cmd_clear(&s->op->cmd);
    explicit_bzero(&s->op->principal, sizeof(s->op->principal));
    free(s->op);
    s->op = NULL;
}

/* Applies held messages in order until one starts a new Redis step. */
static void
release_held(struct jw_session *s)
{
    while (s->held && !s->op && !s->close_code) {
        struct jw_held_input *h = s->held;
        s->held = h->next;
        if (!s->held)
            s->held_tail = NULL;
        s->nheld--;
        handle_message(s, h->text, h->len);
        free(h);
    }
}

static void
finish_auth_op(struct jw_session *s, struct jw_session_op *op)
{
    const struct jw_config *cfg = s->env->cfg;
    if (op->refused) {
        refuse_auth(s, op->cmd.id, JW_CLOSE_FORBIDDEN, "token revoked", JW_M_AUTH_FAILURES_REVOKED);
        return;
    }
    if (op->unavailable && !cfg->revocation_fail_open) {
        send_error(s, op->cmd.id, JW_ERR_UNAVAILABLE, "cannot check the token now, retry later");
        close_later(s, JW_CLOSE_TRY_AGAIN, "revocation check unavailable");
        return;
    }
    if (op->unavailable)
        jw_warn(MOD, "c%08x: revocation check unavailable, accepted (revocation_fail open)", s->id);
    if (s->state == S_ACTIVE) { /* refresh */
        s->expires_at = op->principal.expires_at;
        schedule_expiry(s);
        send_owned(s, jw_reply_auth_ack(op->cmd.id, s->user_id, (long long)s->expires_at));
        return;
    }
    activate(s, &op->principal);
}

static void
finish_subscribe_op(struct jw_session *s, struct jw_session_op *op)
{
    if (op->refused) {
        /* Names no owner and no job: the client learns only that it may not have them. */
        send_error(s, op->cmd.id, JW_ERR_FORBIDDEN, "a requested job belongs to another user");
        return;
    }
    if (op->unavailable) /* routing still checks every event's userId */
        jw_debug(MOD, "c%08x: job owner lookup unavailable, subscribed on event checks only",
                 s->id);
    apply_subscribe(s, &op->cmd);
}

static void
on_redis_reply(struct jw_redis_request *req)
{
    struct jw_session_env *env = req->ctx;
    char key[16];
    snprintf(key, sizeof(key), "%08x", (unsigned)req->tag);
    struct jw_session *s = jw_dict_get(env->by_id, key);
    if (!s || !s->op)
        return; /* the client left meanwhile */
    struct jw_session_op *op = s->op;
    const struct redisReply *r = req->reply;
    if (req->status < 0 || !r || r->type == REDIS_REPLY_ERROR) {
        op->unavailable++;
    } else if (op->kind == OP_AUTH) {
        op->refused += r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    } else if (r->type == REDIS_REPLY_STRING) {
        op->refused += strcmp(r->str, s->member.user_id ? s->member.user_id : "") != 0;
    }
    if (--op->outstanding)
        return;
    if (op->kind == OP_AUTH)
        finish_auth_op(s, op);
    else
        finish_subscribe_op(s, op);
    free_op(s);
    release_held(s);
}

/* ---- client messages ------------------------------------------------------------------ */

static void
handle_message(struct jw_session *s, const char *text, size_t len)
{
    if (s->op) { /* a Redis step is running: keep the order of requests */
        hold(s, text, len);
        return;
    }
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (jw_cmd_parse(text, len, (size_t)s->env->cfg->client_max_subscriptions, &cmd, &err) < 0) {
        send_error(s, err.id, err.code, err.message);
        return;
    }
    if (cmd.type == JW_CMD_PING) {
        send_owned(s, jw_reply_pong(cmd.id));
    } else if (cmd.type == JW_CMD_AUTH) {
        handle_auth(s, &cmd);
    } else if (s->state != S_ACTIVE) {
        send_error(s, cmd.id, JW_ERR_UNAUTHENTICATED, "send an auth message first");
    } else if (cmd.type == JW_CMD_SUBSCRIBE) {
        handle_subscribe(s, &cmd);
    } else {
        apply_unsubscribe(s, &cmd);
    }
    jw_cmd_clear(&cmd);
    if (!s->op)
        return;
    /* The step started above owns the session until Redis answers; one that needed no
     * request (a token without jti) completes at once. */
    if (!s->op->outstanding) {
        struct jw_session_op *op = s->op;
        if (op->kind == OP_AUTH)
            finish_auth_op(s, op);
        else
            finish_subscribe_op(s, op);
        free_op(s);
    }
}

static int
close_now(struct jw_session *s, enum lws_close_status code, const char *reason)
{
    jw_metric_add(JW_M_CLOSED_PROTOCOL, 1);
    jw_info(MOD, "c%08x: closing (%d): %s", s->id, (int)code, reason);
    lws_close_reason(s->wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

int
jw_session_receive(struct jw_session *s, const void *in, size_t len)
{
    const struct jw_config *cfg = s->env->cfg;
    size_t max = cfg->client_max_message_bytes;
    if (s->close_code)
        return 0; /* closing: the rest of what the client says does not matter */
    if (lws_frame_is_binary(s->wsi))
        return close_now(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary messages not supported");
    int first = lws_is_first_fragment(s->wsi);
    int last = lws_is_final_fragment(s->wsi) && lws_remaining_packet_payload(s->wsi) == 0;
    if (first && !jw_bucket_take(&s->bucket, (unsigned)cfg->client_max_messages_per_second,
                                 (unsigned)cfg->client_message_burst, now_ms())) {
        jw_metric_add(JW_M_CLOSED_RATE_LIMITED, 1);
        close_later(s, JW_CLOSE_TOO_MANY, "message rate limit exceeded");
        return 0;
    }
    if (first && last) {
        if (len > max)
            return close_now(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        handle_message(s, in, len);
        return 0;
    }
    /* A message that arrives in pieces is reassembled, bounded by the same limit. */
    if (first)
        s->partial_len = 0;
    if (s->partial_len + len > max)
        return close_now(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
    if (!s->partial)
        s->partial = jw_malloc(max);
    memcpy(s->partial + s->partial_len, in, len);
    s->partial_len += len;
    if (last) {
        handle_message(s, s->partial, s->partial_len);
        free(s->partial);
        s->partial = NULL;
        s->partial_len = 0;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int
jw_session_open(struct jw_session_env *env, struct jw_session *s, struct lws *wsi)
{
    const struct jw_config *cfg = env->cfg;
    char address[64], key[16];
    memset(s, 0, sizeof(*s));
    s->env = env;
    s->wsi = wsi;
    s->id = ++env->next_id;
    jw_outq_init(&s->outq);
    jw_bucket_init(&s->bucket, (unsigned)cfg->client_message_burst, now_ms());
    client_address(env, wsi, address, sizeof(address));
    if (jw_counts_acquire(env->per_address, address, (unsigned)cfg->max_connections_per_ip) < 0) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        jw_info(MOD, "refused a connection from %s: too many from this address", address);
        lws_close_reason(wsi, (enum lws_close_status)JW_CLOSE_TOO_MANY,
                         (unsigned char *)"too many connections", 20);
        return -1;
    }
    s->address = jw_strdup(address);
    snprintf(key, sizeof(key), "%08x", s->id);
    jw_dict_set(env->by_id, key, s);
    s->next = env->all;
    if (env->all)
        env->all->prev = s;
    env->all = s;
    s->open = 1;
    jw_metric_add(JW_M_CONNECTIONS, 1);
    jw_metric_add(JW_M_CONNECTIONS_ACCEPTED, 1);
    jw_info(MOD, "c%08x: connected from %s", s->id, s->address);

    /* The upgrade was admitted already; the headers are still attached here. */
    struct jw_principal p;
    const char *why;
    if (cfg->dev_auth) {
        if (dev_principal(wsi, &p, &why) < 0) {
            jw_session_closed(s);
            return -1;
        }
        activate(s, &p);
        return 0;
    }
    char token[JW_TOKEN_MAX + 16];
    size_t len = handshake_token(env, wsi, token, sizeof(token));
    s->state = S_AWAIT_AUTH;
    arm_deadline(s, (uint64_t)cfg->auth_timeout_ms);
    if (len) {
        enum jw_auth_result r = jw_auth_verify(env->auth, token, len, wall_seconds(), &p);
        explicit_bzero(token, sizeof(token));
        if (r != JW_AUTH_OK) { /* admitted a moment ago; expired since */
            jw_session_closed(s);
            return -1;
        }
        start_auth(s, NULL, &p);
        if (!s->op->outstanding) {
            finish_auth_op(s, s->op);
            free_op(s);
        }
    }
    return 0;
}

int
jw_session_timer(struct jw_session *s)
{
    uint64_t now = now_ms();
    if (!s->deadline_ms || s->close_code)
        return 0;
    if (now < s->deadline_ms) { /* woken early: sleep again */
        lws_set_timer_usecs(s->wsi, (lws_usec_t)(s->deadline_ms - now) * 1000);
        return 0;
    }
    s->deadline_ms = 0;
    if (s->state == S_ACTIVE) {
        refuse_auth(s, "", JW_CLOSE_UNAUTHENTICATED, "token expired", JW_M_AUTH_FAILURES_EXPIRED);
        return 0;
    }
    refuse_auth(s, "", JW_CLOSE_UNAUTHENTICATED, "authentication timeout",
                JW_M_AUTH_FAILURES_MISSING_TOKEN);
    return 0;
}

void
jw_session_closed(struct jw_session *s)
{
    if (!s->open)
        return;
    struct jw_session_env *env = s->env;
    char key[16];
    s->open = 0;
    if (s->state == S_ACTIVE) {
        jw_metric_add(JW_M_SUBSCRIPTIONS, -(int64_t)jw_hub_subscription_count(&s->member));
        jw_hub_leave(env->hub, &s->member);
    }
    if (s->user_counted)
        jw_counts_release(env->per_user, s->user_id);
    jw_counts_release(env->per_address, s->address);
    snprintf(key, sizeof(key), "%08x", s->id);
    jw_dict_del(env->by_id, key);
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)s->outq.bytes);
    jw_outq_clear(&s->outq);
    if (s->prev)
        s->prev->next = s->next;
    else
        env->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    jw_metric_add(JW_M_CONNECTIONS, -1);
    jw_info(MOD, "c%08x: closed", s->id);
    free_op(s);
    while (s->held) {
        struct jw_held_input *h = s->held;
        s->held = h->next;
        free(h);
    }
    free(s->user_id);
    free(s->address);
    free(s->partial);
    s->user_id = s->address = s->partial = NULL;
}

int
jw_session_writeable(struct jw_session *s)
{
    /* Frames queued before the close (an error saying why) still go out first. */
    if (s->close_code && !s->outq.count) {
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    /* Several frames per turn, until the kernel pushes back (lws then holds the remainder). */
    struct jw_frame *f;
    size_t written = 0;
    uint64_t now_ns = jw_monotonic_ns();
    while ((f = jw_outq_peek(&s->outq))) {
        size_t len = f->stamped ? jw_frame_stamp(f, ++s->seq) : f->len;
        if (lws_write(s->wsi, jw_frame_text(f), len, LWS_WRITE_TEXT) < (int)len) {
            jw_info(MOD, "c%08x: write failed", s->id);
            return -1;
        }
        if (f->origin_ns)
            jw_metrics_observe_delivery_latency(now_ns - f->origin_ns);
        written += jw_frame_cost(f);
        jw_outq_pop(&s->outq);
        if (lws_send_pipe_choked(s->wsi))
            break;
    }
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)written);
    if (s->outq.count || s->close_code)
        lws_callback_on_writable(s->wsi);
    return 0;
}

void
jw_session_deliver(void *ctx, struct jw_member *m, struct jw_event *ev)
{
    (void)ctx;
    struct jw_session *s = m->owner;
    if (enqueue(s, ev->frame) == 0)
        jw_metric_add(JW_M_DELIVERIES, 1);
}

void
jw_session_close_all(struct jw_session_env *env, uint16_t code)
{
    for (struct jw_session *s = env->all; s; s = s->next)
        close_later(s, code, "going away");
}
