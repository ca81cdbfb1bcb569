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

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "headers.h"
#include "session_private.h"
#include "sync.h"

#define MOD JW_SESSION_MOD

void
jw_session_client_address(const struct jw_sessions *reg, struct lws *wsi, char *out, size_t size)
{
    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    /* Whole, however long (lws' header space bounds it): a list cut short, or ignored, would
     * count the proxy's own address. Read from the right, it costs only the trusted hops. */
    char *xff = jw_header(wsi, WSI_TOKEN_X_FORWARDED_FOR, SIZE_MAX, NULL);
    jw_client_address(peer, xff, reg->trusted, reg->ntrusted, out, size);
    free(xff);
}

/* The bearer token of the request, if any: the Authorization header, or ?token= when allowed,
 * copied into buf. Returns its length (0 = none), or -1 when it is longer than JW_TOKEN_MAX. */
static long
handshake_token(const struct jw_sessions *reg, struct lws *wsi, char buf[JW_TOKEN_MAX + 1])
{
    bool too_long = false;
    char *auth = jw_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, JW_TOKEN_MAX + 7, &too_long);
    if (too_long)
        return -1;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        size_t n = strlen(auth + 7);
        memcpy(buf, auth + 7, n + 1);
        explicit_bzero(auth, strlen(auth));
        free(auth);
        return (long)n;
    }
    free(auth);
    if (reg->cfg->auth_allow_query_token) {
        char *v = jw_query_arg(wsi, "token=", JW_TOKEN_MAX, &too_long);
        if (too_long)
            return -1;
        if (!v)
            return 0;
        size_t n = strlen(v);
        memcpy(buf, v, n + 1);
        explicit_bzero(v, n);
        free(v);
        return (long)n;
    }
    return 0;
}

/* dev_auth: the principal named by ?user= and ?admin=. Returns 0 or -1 with `why`. */
static int
dev_principal(struct lws *wsi, struct jw_principal *p, const char **why)
{
    memset(p, 0, sizeof(*p));
    char *v = jw_query_arg(wsi, "user=", JW_ID_MAX, NULL);
    if (!v || !jw_id_valid(v, strlen(v))) {
        free(v);
        *why = "dev_auth needs ?user=<id> (1-128 bytes, no control characters)";
        return -1;
    }
    snprintf(p->user_id, sizeof(p->user_id), "%s", v);
    free(v);
    v = jw_query_arg(wsi, "admin=", 8, NULL);
    p->admin = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    free(v);
    return 0;
}

static enum jw_metric_id
auth_failure_metric(enum jw_auth_result r)
{
    return r == JW_AUTH_EXPIRED ? JW_M_AUTH_FAILURES_EXPIRED : JW_M_AUTH_FAILURES_BAD_TOKEN;
}

unsigned
jw_session_admit(struct jw_sessions *reg, struct lws *wsi, unsigned flags, const char **why)
{
    const struct jw_config *cfg = reg->cfg;
    char address[64];
    bool too_long = false;
    /* An Origin of any length is read whole: a long one is not "absent". */
    char *origin = jw_header(wsi, WSI_TOKEN_ORIGIN, 4096, &too_long);
    int allowed =
        !too_long && jw_origin_allowed(origin, cfg->allowed_origins, cfg->allowed_norigins);
    free(origin);
    if (!allowed) {
        jw_metric_add(JW_M_AUTH_FAILURES_FORBIDDEN_ORIGIN, 1);
        *why = "origin not allowed";
        return HTTP_STATUS_FORBIDDEN;
    }
    char counted[80];
    jw_session_client_address(reg, wsi, address, sizeof(address));
    jw_address_key(address, counted, sizeof counted);
    if (cfg->max_connections_per_ip &&
        jw_counts_get(reg->per_address, counted) >= (unsigned)cfg->max_connections_per_ip) {
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
    if (!jw_auth_enabled(reg->auth)) {
        *why = "no authentication method is configured";
        return HTTP_STATUS_UNAUTHORIZED;
    }
    /* A token in the handshake must be good; without one the client authenticates by message. */
    char token[JW_TOKEN_MAX + 16];
    long len = handshake_token(reg, wsi, token);
    if (len < 0) {
        jw_metric_add(JW_M_AUTH_FAILURES_BAD_TOKEN, 1);
        *why = "token too large";
        return HTTP_STATUS_UNAUTHORIZED;
    }
    if (!len && (flags & JW_ADMIT_SSE)) { /* no way to send an auth message later */
        jw_metric_add(JW_M_AUTH_FAILURES_MISSING_TOKEN, 1);
        *why = cfg->auth_allow_query_token ? "missing token (Authorization: Bearer, or ?token=)"
                                           : "missing token (Authorization: Bearer)";
        return HTTP_STATUS_UNAUTHORIZED;
    }
    if (!len)
        return 0;
    struct jw_principal p;
    enum jw_auth_result r = jw_auth_verify(reg->auth, token, (size_t)len, jw_wall_seconds(), &p);
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

void
jw_session_refuse_auth(struct jw_session *s, const char *id, uint16_t code, const char *reason)
{
    jw_session_send_error(
        s, id, code == JW_CLOSE_FORBIDDEN ? JW_ERR_FORBIDDEN : JW_ERR_UNAUTHENTICATED, reason);
    jw_session_close_later(s, code, reason);
}

static void
refuse(struct jw_session *s, const char *id, uint16_t code, const char *reason,
       enum jw_metric_id metric)
{
    jw_metric_add(metric, 1);
    jw_session_refuse_auth(s, id, code, reason);
}

/* ---- the session's timer -------------------------------------------------------------------
 * One ev_timer per session serves its one deadline (auth timeout, then token expiry) and, for
 * SSE, its heartbeat: it is set to the earlier of the two. Writes only update last_write_ms; a
 * timer that fires with nothing due re-arms. */

void
jw_session_rearm(struct jw_session *s)
{
    uint64_t now = jw_session_now_ms(s);
    uint64_t at = s->deadline_ms ? s->deadline_ms : UINT64_MAX;
    uint64_t hb = jw_session_sse_heartbeat_at(s, now);
    if (hb < at)
        at = hb;
    ev_timer_stop(s->reg->loop, &s->timer);
    if (at == UINT64_MAX)
        return;
    ev_timer_set(&s->timer, at > now ? (double)(at - now) / 1000.0 : 0.0, 0.0);
    ev_timer_start(s->reg->loop, &s->timer);
}

static void
arm_deadline(struct jw_session *s, uint64_t in_ms)
{
    s->deadline_ms = jw_add_sat(jw_session_now_ms(s), in_ms);
    jw_session_rearm(s);
}

static void
schedule_expiry(struct jw_session *s)
{
    s->deadline_ms = 0;
    if (!s->expires_at) {
        jw_session_rearm(s);
        return;
    }
    /* Saturating: exp comes from a token and may be anything up to INT64_MAX. */
    int64_t leeway = s->reg->cfg->jwt_leeway_seconds, now = jw_wall_seconds();
    int64_t at = s->expires_at > INT64_MAX - leeway ? INT64_MAX : s->expires_at + leeway;
    uint64_t in_s = at > now ? (uint64_t)(at - now) : 0;
    arm_deadline(s, in_s > UINT64_MAX / 1000u ? UINT64_MAX : in_s * 1000u);
}

void
jw_session_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_session *s = w->data;
    uint64_t now = jw_session_now_ms(s);
    if (s->close_code || s->broken)
        return;
    jw_session_sse_timer(s, now);
    if (!s->deadline_ms || now < s->deadline_ms) { /* nothing due, or woken early */
        jw_session_rearm(s);
        return;
    }
    s->deadline_ms = 0;
    if (s->state == S_ACTIVE)
        refuse(s, "", JW_CLOSE_UNAUTHENTICATED, "token expired", JW_M_AUTH_FAILURES_EXPIRED);
    else
        refuse(s, "", JW_CLOSE_UNAUTHENTICATED, "authentication timeout",
               JW_M_AUTH_FAILURES_MISSING_TOKEN);
}

/* ---- authentication ------------------------------------------------------------------------- */

/* The principal is known and not revoked: join the hub and say welcome. */
static void
activate(struct jw_session *s, const struct jw_principal *p)
{
    struct jw_sessions *reg = s->reg;
    if (jw_counts_acquire(reg->per_user, p->user_id, (unsigned)reg->cfg->max_connections_per_user) <
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
    jw_hub_join(reg->hub, &s->member);
    schedule_expiry(s);
    jw_session_log(s, JW_LOG_INFO, "authenticated%s", p->admin ? " (admin)" : "");
    char conn_id[16];
    snprintf(conn_id, sizeof(conn_id), "c%08x", s->id);
    bool live = jw_sync_live(reg->sync);
    jw_session_send(s, jw_reply_welcome(conn_id, s->user_id, p->admin, live, s->expires_at));
}

static void
finish_auth(struct jw_session *s, struct jw_session_op *op)
{
    const struct jw_config *cfg = s->reg->cfg;
    if (op->refused) {
        refuse(s, op->cmd.id, JW_CLOSE_FORBIDDEN, "token revoked", JW_M_AUTH_FAILURES_REVOKED);
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
        jw_session_log(s, JW_LOG_WARN,
                       "revocation check unavailable, accepted (revocation_fail "
                       "open)");
    if (s->state == S_ACTIVE) { /* refresh */
        s->expires_at = op->principal.expires_at;
        schedule_expiry(s);
        jw_session_send(s, jw_reply_auth_ack(op->cmd.id, s->user_id, (long long)s->expires_at));
        return;
    }
    activate(s, &op->principal);
}

static void
on_revocation(struct jw_redis_op *rop)
{
    struct jw_session_op *op = jw_session_op_of(rop->ctx, rop->tag, rop->arg);
    if (!op || op->kind != OP_AUTH)
        return; /* the client left meanwhile */
    if (rop->status < 0)
        op->unavailable++;
    else
        op->refused += rop->r.revoked;
    if (--op->outstanding)
        return;
    struct jw_session *s = op->s;
    finish_auth(s, op);
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
    op->outstanding++;
    jw_upstream_submit(s->reg->upstream, jw_redis_op_new(JW_OP_REVOKED, p->jti, NULL, on_revocation,
                                                         s->reg, s->id, op->serial));
}

void
jw_session_handle_auth(struct jw_session *s, const struct jw_cmd *cmd)
{
    struct jw_principal p;
    enum jw_auth_result r =
        jw_auth_enabled(s->reg->auth)
            ? jw_auth_verify(s->reg->auth, cmd->token, cmd->token_len, jw_wall_seconds(), &p)
            : JW_AUTH_DISABLED;
    if (r != JW_AUTH_OK) {
        if (s->state == S_ACTIVE) { /* a bad refresh leaves the current token in force */
            jw_metric_add(auth_failure_metric(r), 1);
            jw_session_send_error(s, cmd->id, JW_ERR_BAD_TOKEN, jw_auth_result_name(r));
            return;
        }
        refuse(s, cmd->id, JW_CLOSE_UNAUTHENTICATED, jw_auth_result_name(r),
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
    struct jw_sessions *reg = s->reg;
    struct jw_principal p;
    const char *why;
    /* The request was admitted already; the headers are still attached here. */
    if (reg->cfg->dev_auth) {
        if (dev_principal(s->wsi, &p, &why) < 0)
            return -1;
        activate(s, &p);
        return 0;
    }
    s->state = S_AWAIT_AUTH;
    arm_deadline(s, (uint64_t)reg->cfg->auth_timeout_ms);
    char token[JW_TOKEN_MAX + 16];
    long len = handshake_token(reg, s->wsi, token);
    if (len <= 0)
        return len < 0 ? -1 : 0;
    enum jw_auth_result r = jw_auth_verify(reg->auth, token, (size_t)len, jw_wall_seconds(), &p);
    explicit_bzero(token, sizeof(token));
    if (r != JW_AUTH_OK)
        return -1; /* admitted a moment ago; expired since */
    start_auth(s, "", &p);
    return 0;
}
