/*
 * WebSocket sessions (see session.h): the principal from the handshake, client requests applied
 * to the hub, and the outbound queue written several frames per WRITEABLE callback.
 */
#include "jobwire/session.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "jobwire/protocol.h"

#define CLOSE_SLOW_CONSUMER 4008

int
jw_session_authenticate(const struct jw_session_env *env, struct lws *wsi, char *user,
                        size_t user_size, int *admin, const char **why)
{
    char arg[JW_ID_MAX + 16];
    if (!env->cfg->dev_auth) {
        *why = "no authentication method is configured (dev_auth is off)";
        return -1;
    }
    const char *v = lws_get_urlarg_by_name(wsi, "user=", arg, sizeof(arg));
    if (!v || !jw_id_valid(v, strlen(v)) || strlen(v) >= user_size) {
        *why = "dev_auth needs ?user=<id> (1-128 bytes, no control characters)";
        return -1;
    }
    snprintf(user, user_size, "%s", v);
    v = lws_get_urlarg_by_name(wsi, "admin=", arg, sizeof(arg));
    *admin = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    return 0;
}

/* Queues a frame; on overflow marks the session as a slow consumer. Returns 0 or -ENOBUFS. */
static int
enqueue(struct jw_session *s, struct jw_frame *f)
{
    if (s->close_code)
        return -ENOBUFS;
    size_t before = s->outq.bytes;
    if (jw_outq_push(&s->outq, f, s->env->cfg->client_queue_max_bytes) < 0) {
        jw_warn("session", "c%08x: outbound queue over %zu bytes, closing slow consumer", s->id,
                s->env->cfg->client_queue_max_bytes);
        jw_metric_add(JW_M_CLOSED_SLOW, 1);
        jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)s->outq.bytes);
        jw_outq_clear(&s->outq);
        s->close_code = CLOSE_SLOW_CONSUMER;
        lws_callback_on_writable(s->wsi);
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
    jw_debug("session", "c%08x: error %s: %s", s->id, code, message);
    send_owned(s, jw_reply_error(id, code, message));
}

int
jw_session_open(struct jw_session_env *env, struct jw_session *s, struct lws *wsi)
{
    char user[JW_ID_MAX + 1];
    int admin = 0;
    const char *why = NULL;
    memset(s, 0, sizeof(*s));
    /* The upgrade was authenticated already; the headers are still attached here. */
    if (jw_session_authenticate(env, wsi, user, sizeof(user), &admin, &why) < 0)
        return -1;
    s->env = env;
    s->wsi = wsi;
    s->id = ++env->next_id;
    s->user_id = jw_strdup(user);
    jw_outq_init(&s->outq);
    s->member.user_id = s->user_id;
    s->member.admin = admin;
    s->member.owner = s;
    jw_hub_join(env->hub, &s->member);
    s->next = env->all;
    if (env->all)
        env->all->prev = s;
    env->all = s;
    s->open = 1;
    jw_metric_add(JW_M_CONNECTIONS, 1);
    jw_metric_add(JW_M_CONNECTIONS_ACCEPTED, 1);

    char peer[64] = "";
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    jw_info("session", "c%08x: connected from %s as user %s%s", s->id, peer, s->user_id,
            admin ? " (admin)" : "");
    char conn_id[16];
    snprintf(conn_id, sizeof(conn_id), "c%08x", s->id);
    send_owned(s, jw_reply_welcome(conn_id, s->user_id, admin));
    return 0;
}

void
jw_session_closed(struct jw_session *s)
{
    if (!s->open)
        return;
    s->open = 0;
    jw_metric_add(JW_M_SUBSCRIPTIONS, -(int64_t)jw_hub_subscription_count(&s->member));
    jw_hub_leave(s->env->hub, &s->member);
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)s->outq.bytes);
    jw_outq_clear(&s->outq);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->env->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    jw_metric_add(JW_M_CONNECTIONS, -1);
    jw_info("session", "c%08x: closed", s->id);
    free(s->user_id);
    free(s->partial);
    s->user_id = s->partial = NULL;
}

/* Jobs of the request that the session does not hold yet (duplicates in the request count
 * once each time they appear, which can only overestimate). */
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
        /* All or nothing: refuse up front when the new jobs would pass the limit. */
        if (jw_hub_subscription_count(&s->member) + count_new_jobs(s, cmd) > max) {
            char msg[96];
            snprintf(msg, sizeof(msg), "at most %zu job subscriptions per connection", max);
            send_error(s, cmd->id, JW_ERR_TOO_MANY_JOBS, msg);
            return;
        }
        for (size_t i = 0; i < cmd->njobs; i++)
            if (jw_hub_subscribe_job(env->hub, &s->member, cmd->jobs[i], cmd->kinds, max) == 0)
                jw_metric_add(JW_M_SUBSCRIPTIONS, 1);
        break;
    }
    send_owned(s, jw_reply_ack(cmd));
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

static void
handle_message(struct jw_session *s, const char *text, size_t len)
{
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (jw_cmd_parse(text, len, (size_t)s->env->cfg->client_max_subscriptions, &cmd, &err) < 0) {
        send_error(s, err.id, err.code, err.message);
        return;
    }
    switch (cmd.type) {
    case JW_CMD_PING:
        send_owned(s, jw_reply_pong(cmd.id));
        break;
    case JW_CMD_SUBSCRIBE:
        apply_subscribe(s, &cmd);
        break;
    case JW_CMD_UNSUBSCRIBE:
        apply_unsubscribe(s, &cmd);
        break;
    }
    jw_cmd_clear(&cmd);
}

static int
close_now(struct jw_session *s, enum lws_close_status code, const char *reason)
{
    jw_metric_add(JW_M_CLOSED_PROTOCOL, 1);
    jw_info("session", "c%08x: closing (%d): %s", s->id, (int)code, reason);
    lws_close_reason(s->wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

int
jw_session_receive(struct jw_session *s, const void *in, size_t len)
{
    size_t max = s->env->cfg->client_max_message_bytes;
    if (lws_frame_is_binary(s->wsi))
        return close_now(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary messages not supported");
    int first = lws_is_first_fragment(s->wsi);
    int last = lws_is_final_fragment(s->wsi) && lws_remaining_packet_payload(s->wsi) == 0;
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

int
jw_session_writeable(struct jw_session *s)
{
    if (s->close_code) {
        const char *reason = s->close_code == CLOSE_SLOW_CONSUMER ? "slow consumer" : "going away";
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code, (unsigned char *)reason,
                         strlen(reason));
        return -1;
    }
    /* Several frames per turn, until the kernel pushes back (lws then holds the remainder). */
    struct jw_frame *f;
    size_t written = 0;
    uint64_t now_ns = jw_monotonic_ns();
    while ((f = jw_outq_peek(&s->outq))) {
        size_t len = f->stamped ? jw_frame_stamp(f, ++s->seq) : f->len;
        if (lws_write(s->wsi, jw_frame_text(f), len, LWS_WRITE_TEXT) < (int)len) {
            jw_info("session", "c%08x: write failed", s->id);
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
    if (s->outq.count)
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
    for (struct jw_session *s = env->all; s; s = s->next) {
        if (!s->close_code) {
            s->close_code = code;
            lws_callback_on_writable(s->wsi);
        }
    }
}
