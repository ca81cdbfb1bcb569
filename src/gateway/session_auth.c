/*
 * Session admission and authentication (see the state diagram in session.h): the checks at the
 * upgrade (Origin, per-address limit, handshake token), the principal from dev_auth or a JWT,
 * the revocation check in Redis, the per-user limit, and the token's expiry and refresh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "../redis/request.h"
#include "session_private.h"
#include "jobwire/redis.h"

#define MOD JW_SESSION_MOD

static int64_t
wall_seconds(void)
{
    return (int64_t)time(NULL);
}

void
jw_session_client_address(const struct jw_session_env *env, struct lws *wsi, char *out, size_t size)
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
jw_session_admit(struct jw_session_env *env, struct lws *wsi, unsigned flags, const char **why)
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
    jw_session_client_address(env, wsi, address, sizeof(address));
    if (cfg->max_connections_per_ip &&
        jw_counts_get(env->per_address, address) >= (unsigned)cfg->max_connections_per_ip) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        *why = "too many connections from this address";
        return 429;
    }
    if (cfg->dev_auth) {
        struct jw_principal p;
        if (dev_principal(wsi, &p, why) < 0)
            return HTTP_STATUS_UNAUTHORIZED;
        if ((flags & JW_ADMIT_ADMIN) && !p.admin) {
            *why = "scope all needs the admin role";
            return HTTP_STATUS_FORBIDDEN;
        }
        return 0;
    }
    if (!jw_auth_enabled(env->auth)) {
        *why = "no authentication method is configured";
        return HTTP_STATUS_UNAUTHORIZED;
    }
    /* A token in the handshake must be good; without one the client authenticates by message. */
    char token[JW_TOKEN_MAX + 16];
    size_t len = handshake_token(env, wsi, token, sizeof(token));
    if (!len && (flags & JW_ADMIT_SSE)) { /* no way to send an auth message later */
        jw_metric_add(JW_M_AUTH_FAILURES_MISSING_TOKEN, 1);
        *why = cfg->auth_allow_query_token ? "missing token (Authorization: Bearer, or ?token=)"
                                           : "missing token (Authorization: Bearer)";
        return HTTP_STATUS_UNAUTHORIZED;
    }
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
    if ((flags & JW_ADMIT_ADMIN) && !p.admin) {
        *why = "scope all needs the admin role";
        return HTTP_STATUS_FORBIDDEN;
    }
    return 0;
}

/* Refuses authentication: an error frame the client can read, then close 4401 or 4403. */
static void
refuse_auth(struct jw_session *s, const char *id, uint16_t code, const char *reason,
            enum jw_metric_id metric)
{
    jw_metric_add(metric, 1);
    jw_session_send_error(
        s, id, code == JW_CLOSE_FORBIDDEN ? JW_ERR_FORBIDDEN : JW_ERR_UNAUTHENTICATED, reason);
    jw_session_close_later(s, code, reason);
}

/* The session's one deadline (auth timeout, then token expiry) and, for SSE, its heartbeat share
 * the wsi's one timer, set to the earlier of the two. lws 4.1 cannot cancel a wsi timer
 * (LWS_SET_TIMER_USEC_CANCEL fires it at once), so a callback that comes with nothing due only
 * re-arms: `deadline_ms` and `last_write_ms` are the truth, the lws timer only a wake-up. */
#define MAX_TIMER_MS (24u * 3600u * 1000u) /* longer waits re-arm when the timer wakes */

/* Wakes the session after `in_ms`, at most a day ahead (a distant exp must not overflow the
 * lws microsecond arithmetic). */
static void
wake_in(struct jw_session *s, uint64_t in_ms)
{
    if (!in_ms)
        in_ms = 1; /* due now: still a real wake-up, never the cancel value */
    lws_set_timer_usecs(s->wsi, (lws_usec_t)(in_ms < MAX_TIMER_MS ? in_ms : MAX_TIMER_MS) * 1000);
}

void
jw_session_rearm(struct jw_session *s)
{
    uint64_t now = jw_session_now_ms();
    uint64_t at = s->deadline_ms ? s->deadline_ms : UINT64_MAX;
    uint64_t hb = jw_session_sse_heartbeat_at(s, now);
    if (hb < at)
        at = hb;
    if (at != UINT64_MAX)
        wake_in(s, at > now ? at - now : 0);
}

static void
arm_deadline(struct jw_session *s, uint64_t in_ms)
{
    uint64_t now = jw_session_now_ms();
    s->deadline_ms = in_ms > UINT64_MAX - now ? UINT64_MAX : now + in_ms;
    jw_session_rearm(s);
}

static void
schedule_expiry(struct jw_session *s)
{
    s->deadline_ms = 0;
    if (!s->expires_at)
        return;
    /* Saturating: exp comes from a token and may be anything up to INT64_MAX. */
    int64_t leeway = s->env->cfg->jwt_leeway_seconds, now = wall_seconds();
    int64_t at = s->expires_at > INT64_MAX - leeway ? INT64_MAX : s->expires_at + leeway;
    uint64_t in_s = at > now ? (uint64_t)(at - now) : 0;
    arm_deadline(s, in_s > UINT64_MAX / 1000u ? UINT64_MAX : in_s * 1000u);
}

int
jw_session_timer(struct jw_session *s)
{
    uint64_t now = jw_session_now_ms();
    if (s->close_code)
        return 0;
    jw_session_sse_timer(s, now);
    if (!s->deadline_ms || now < s->deadline_ms) { /* nothing due, or woken early */
        jw_session_rearm(s);
        return 0;
    }
    s->deadline_ms = 0;
    if (s->state == S_ACTIVE)
        refuse_auth(s, "", JW_CLOSE_UNAUTHENTICATED, "token expired", JW_M_AUTH_FAILURES_EXPIRED);
    else
        refuse_auth(s, "", JW_CLOSE_UNAUTHENTICATED, "authentication timeout",
                    JW_M_AUTH_FAILURES_MISSING_TOKEN);
    return 0;
}

/* The principal is known and not revoked: join the hub and say welcome. */
static void
activate(struct jw_session *s, const struct jw_principal *p)
{
    struct jw_session_env *env = s->env;
    if (jw_counts_acquire(env->per_user, p->user_id, (unsigned)env->cfg->max_connections_per_user) <
        0) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        jw_session_send_error(s, "", JW_ERR_FORBIDDEN, "too many connections for this user");
        jw_session_close_later(s, JW_CLOSE_TOO_MANY, "too many connections for this user");
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
    jw_session_send_owned(s, jw_reply_welcome(conn_id, s->user_id, p->admin));
    if (s->sse_resumed) { /* no history is kept: the snapshots that follow are the recovery */
        char text[64];
        int n = snprintf(text, sizeof(text), "{\"type\":\"status\",\"live\":%s,\"resumed\":true}",
                         env->link_up ? "true" : "false");
        jw_session_send_owned(s, jw_frame_new(text, (size_t)n, 0));
    }
}

static void
finish_auth(struct jw_session *s, struct jw_session_op *op)
{
    const struct jw_config *cfg = s->env->cfg;
    if (op->refused) {
        refuse_auth(s, op->cmd.id, JW_CLOSE_FORBIDDEN, "token revoked", JW_M_AUTH_FAILURES_REVOKED);
        return;
    }
    if (op->unavailable && !cfg->revocation_fail_open) {
        jw_metric_add(JW_M_AUTH_FAILURES_UNAVAILABLE, 1);
        jw_session_send_error(s, op->cmd.id, JW_ERR_UNAVAILABLE,
                              "cannot check the token now, retry later");
        jw_session_close_later(s, JW_CLOSE_TRY_AGAIN, "revocation check unavailable");
        return;
    }
    if (op->unavailable)
        jw_warn(MOD, "c%08x: revocation check unavailable, accepted (revocation_fail open)", s->id);
    if (s->state == S_ACTIVE) { /* refresh */
        s->expires_at = op->principal.expires_at;
        schedule_expiry(s);
        jw_session_send_owned(s,
                              jw_reply_auth_ack(op->cmd.id, s->user_id, (long long)s->expires_at));
        return;
    }
    activate(s, &op->principal);
}

static void
on_revocation_reply(struct jw_redis_request *req)
{
    struct jw_session *s = jw_session_by_tag(req->ctx, req->tag);
    if (!s || !s->op || s->op->kind != OP_AUTH)
        return; /* the client left meanwhile */
    const redisReply *r = req->reply;
    if (req->status < 0 || !r || r->type != REDIS_REPLY_INTEGER)
        s->op->unavailable++;
    else
        s->op->refused += r->integer > 0;
    if (--s->op->outstanding)
        return;
    finish_auth(s, s->op);
    jw_session_end_op(s);
}

/* A verified token: check revocation in Redis when it has a jti, then activate or refresh. A
 * token without jti cannot be revoked and is accepted at once. */
static void
start_auth(struct jw_session *s, const char *request_id, const struct jw_principal *p)
{
    struct jw_session_op *op = jw_session_op_new(s, OP_AUTH);
    op->principal = *p;
    snprintf(op->cmd.id, sizeof(op->cmd.id), "%s", request_id);
    if (s->state != S_ACTIVE)
        s->state = S_CHECKING;
    if (!p->jti[0]) {
        finish_auth(s, op);
        jw_session_end_op(s);
        return;
    }
    char *key = jw_key_expand(s->env->cfg->revocation_key_template, "{jti}", p->jti);
    const char *argv[] = {"EXISTS", key};
    struct jw_redis_request *req =
        jw_redis_request_new(2, argv, NULL, on_revocation_reply, s->env, s->id);
    free(key);
    op->outstanding++;
    jw_upstream_submit(s->env->upstream, req);
}

void
jw_session_handle_auth(struct jw_session *s, const struct jw_cmd *cmd)
{
    struct jw_principal p;
    enum jw_auth_result r =
        jw_auth_enabled(s->env->auth)
            ? jw_auth_verify(s->env->auth, cmd->token, cmd->token_len, wall_seconds(), &p)
            : JW_AUTH_DISABLED;
    if (r != JW_AUTH_OK) {
        if (s->state == S_ACTIVE) { /* a bad refresh leaves the current token in force */
            jw_metric_add(auth_failure_metric(r), 1);
            jw_session_send_error(s, cmd->id, JW_ERR_BAD_TOKEN, jw_auth_result_name(r));
            return;
        }
        refuse_auth(s, cmd->id, JW_CLOSE_UNAUTHENTICATED, jw_auth_result_name(r),
                    auth_failure_metric(r));
        return;
    }
    if (s->state == S_ACTIVE &&
        (strcmp(p.user_id, s->user_id) != 0 || p.admin != s->member.admin)) {
        jw_session_send_error(s, cmd->id, JW_ERR_FORBIDDEN,
                              "a refresh must keep the same user and role");
        return;
    }
    start_auth(s, cmd->id, &p);
}

int
jw_session_begin_auth(struct jw_session *s)
{
    struct jw_session_env *env = s->env;
    struct jw_principal p;
    const char *why;
    /* The upgrade was admitted already; the headers are still attached here. */
    if (env->cfg->dev_auth) {
        if (dev_principal(s->wsi, &p, &why) < 0)
            return -1;
        activate(s, &p);
        return 0;
    }
    s->state = S_AWAIT_AUTH;
    arm_deadline(s, (uint64_t)env->cfg->auth_timeout_ms);
    char token[JW_TOKEN_MAX + 16];
    size_t len = handshake_token(env, s->wsi, token, sizeof(token));
    if (!len)
        return 0;
    enum jw_auth_result r = jw_auth_verify(env->auth, token, len, wall_seconds(), &p);
    explicit_bzero(token, sizeof(token));
    if (r != JW_AUTH_OK)
        return -1; /* admitted a moment ago; expired since */
    start_auth(s, "", &p);
    return 0;
}
