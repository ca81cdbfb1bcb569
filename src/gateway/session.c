/*
 * Sessions (see the state diagram in session.h): lifecycle, the outbound queue written several
 * frames per WRITEABLE callback, inbound messages (size, rate, reassembly) and their dispatch,
 * and the op that serialises a session's Redis steps. Authentication is in session_auth.c,
 * subscriptions and snapshots in session_subscribe.c, the SSE writer in session_sse.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/dict.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "session_private.h"

#define MOD JW_SESSION_MOD
#define MAX_HELD 32 /* client messages held while a Redis step runs; more is a flood */
#define SSE_CLOSE_TIMEOUT_S 5

struct jw_held_input {
    struct jw_held_input *next;
    size_t len;
    char text[];
};

uint64_t
jw_session_now_ms(void)
{
    return jw_monotonic_ns() / 1000000u;
}

/* ---- environment ---------------------------------------------------------------------- */

void
jw_session_env_init(struct jw_session_env *env, const struct jw_config *cfg,
                    const struct jw_auth *auth, const char *instance)
{
    memset(env, 0, sizeof(*env));
    snprintf(env->marker_prefix, sizeof(env->marker_prefix), "%s%s:%s:", cfg->channel_prefix,
             JW_INTERNAL_KIND, instance);
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
    jw_session_sse_env_destroy(env);
}

/* ---- queueing and closing ------------------------------------------------------------- */

/* Marks the session to close with `code` on its next write turn. The first reason wins. */
void
jw_session_close_later(struct jw_session *s, uint16_t code, const char *reason)
{
    if (s->close_code)
        return;
    jw_info(MOD, "c%08x: closing (%u): %s", s->id, code, reason);
    s->close_code = code;
    s->close_reason = reason;
    lws_callback_on_writable(s->wsi);
    /* A WebSocket that never reads again is hung up by the keepalive (no PONG); an SSE stream
     * has no such check, so its last events get a bounded time to go out. */
    if (s->transport == JW_TRANSPORT_SSE)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, SSE_CLOSE_TIMEOUT_S);
}

/* Queues a frame; on overflow marks the session as a slow consumer. Returns 0 or -ENOBUFS. */
int
jw_session_enqueue(struct jw_session *s, struct jw_frame *f)
{
    if (s->close_code)
        return -ENOBUFS;
    const struct jw_config *cfg = s->env->cfg;
    size_t before = s->outq.bytes;
    int was_empty = s->outq.count == 0;
    unsigned conflated = 0;
    int rc = jw_outq_push(&s->outq, f, cfg->client_queue_max_bytes,
                          (uint32_t)cfg->client_queue_max_messages, &conflated);
    if (conflated)
        jw_metric_add(JW_M_CONFLATIONS, conflated);
    if (rc < 0) {
        jw_metric_add(JW_M_CLOSED_SLOW, 1);
        jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)s->outq.bytes);
        jw_outq_clear(&s->outq);
        jw_session_close_later(s, JW_CLOSE_SLOW_CONSUMER, "slow consumer");
        return -ENOBUFS;
    }
    jw_metric_add(JW_M_QUEUE_BYTES, (int64_t)s->outq.bytes - (int64_t)before);
    if (was_empty)
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* Queues a control frame this session owns alone. */
void
jw_session_send_owned(struct jw_session *s, struct jw_frame *f)
{
    (void)jw_session_enqueue(s, f);
    jw_frame_unref(f);
}

void
jw_session_send_error(struct jw_session *s, const char *id, const char *code, const char *message)
{
    jw_metric_add(JW_M_CLIENT_ERRORS, 1);
    jw_debug(MOD, "c%08x: error %s: %s", s->id, code, message);
    jw_session_send_owned(s, jw_reply_error(id, code, message));
    /* An SSE client cannot send another request: every error answers its query or its token,
     * so the stream ends once the error is out (a close_later() made meanwhile wins). */
    if (s->transport == JW_TRANSPORT_SSE && !s->sse_end_code)
        s->sse_end_code = strcmp(code, JW_ERR_FORBIDDEN) == 0         ? JW_CLOSE_FORBIDDEN
                          : strcmp(code, JW_ERR_UNAVAILABLE) == 0     ? JW_CLOSE_TRY_AGAIN
                          : strcmp(code, JW_ERR_TOO_MANY_JOBS) == 0   ? JW_CLOSE_TOO_MANY
                          : strcmp(code, JW_ERR_UNAUTHENTICATED) == 0 ? JW_CLOSE_UNAUTHENTICATED
                                                                      : JW_CLOSE_POLICY;
}

/* ---- ops ------------------------------------------------------------------------------ */

struct jw_session_op *
jw_session_op_new(struct jw_session *s, int kind)
{
    struct jw_session_op *op = jw_calloc(1, sizeof(*op));
    op->kind = kind;
    op->s = s;
    s->op = op;
    return op;
}

static void
free_op(struct jw_session *s)
{
    struct jw_session_op *op = s->op;
    if (!op)
        return;
    if (op->kind == OP_SUBSCRIBE)
        jw_session_free_subscribe_op(op);
    jw_cmd_clear(&op->cmd);
    explicit_bzero(&op->principal, sizeof(op->principal));
    free(op);
    s->op = NULL;
}

struct jw_session *
jw_session_by_tag(struct jw_session_env *env, uint64_t tag)
{
    char key[16];
    snprintf(key, sizeof(key), "%08x", (unsigned)tag);
    return jw_dict_get(env->by_id, key);
}

static void
hold_input(struct jw_session *s, const char *text, size_t len)
{
    if (s->nheld >= MAX_HELD) {
        jw_metric_add(JW_M_CLOSED_RATE_LIMITED, 1);
        jw_session_close_later(s, JW_CLOSE_TOO_MANY, "too many requests in flight");
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

void
jw_session_end_op(struct jw_session *s)
{
    free_op(s);
    /* Apply held messages in order until one starts a new op. */
    while (s->held && !s->op && !s->close_code) {
        struct jw_held_input *h = s->held;
        s->held = h->next;
        if (!s->held)
            s->held_tail = NULL;
        s->nheld--;
        jw_session_handle_message(s, h->text, h->len);
        free(h);
    }
}

/* ---- client messages ------------------------------------------------------------------ */

void
jw_session_handle_message(struct jw_session *s, const char *text, size_t len)
{
    if (s->op) { /* a Redis step is running: keep the order of requests */
        hold_input(s, text, len);
        return;
    }
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (jw_cmd_parse(text, len, (size_t)s->env->cfg->client_max_subscriptions, &cmd, &err) < 0) {
        jw_session_send_error(s, err.id, err.code, err.message);
        return;
    }
    if (cmd.type == JW_CMD_PING)
        jw_session_send_owned(s, jw_reply_pong(cmd.id));
    else if (cmd.type == JW_CMD_AUTH)
        jw_session_handle_auth(s, &cmd);
    else if (s->state != S_ACTIVE)
        jw_session_send_error(s, cmd.id, JW_ERR_UNAUTHENTICATED, "send an auth message first");
    else if (cmd.type == JW_CMD_SUBSCRIBE)
        jw_session_handle_subscribe(s, &cmd);
    else
        jw_session_handle_unsubscribe(s, &cmd);
    jw_cmd_clear(&cmd);
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
                                 (unsigned)cfg->client_message_burst, jw_session_now_ms())) {
        jw_metric_add(JW_M_CLOSED_RATE_LIMITED, 1);
        jw_session_close_later(s, JW_CLOSE_TOO_MANY, "message rate limit exceeded");
        return 0;
    }
    if (first && last) {
        if (len > max)
            return close_now(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        jw_session_handle_message(s, in, len);
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
        jw_session_handle_message(s, s->partial, s->partial_len);
        free(s->partial);
        s->partial = NULL;
        s->partial_len = 0;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static enum jw_metric_id
connections_gauge(const struct jw_session *s)
{
    return s->transport == JW_TRANSPORT_SSE ? JW_M_CONNECTIONS_SSE : JW_M_CONNECTIONS;
}

int
jw_session_open(struct jw_session_env *env, struct jw_session *s, struct lws *wsi,
                enum jw_transport transport)
{
    const struct jw_config *cfg = env->cfg;
    char address[64], key[16];
    memset(s, 0, sizeof(*s));
    s->env = env;
    s->wsi = wsi;
    s->transport = (uint8_t)transport;
    s->id = ++env->next_id;
    jw_outq_init(&s->outq);
    jw_bucket_init(&s->bucket, (unsigned)cfg->client_message_burst, jw_session_now_ms());
    jw_session_client_address(env, wsi, address, sizeof(address));
    if (jw_counts_acquire(env->per_address, address, (unsigned)cfg->max_connections_per_ip) < 0) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        jw_info(MOD, "refused a connection from %s: too many from this address", address);
        if (transport == JW_TRANSPORT_WEBSOCKET)
            lws_close_reason(wsi, (enum lws_close_status)JW_CLOSE_TOO_MANY,
                             (unsigned char *)"too many connections", 20);
        return -EUSERS;
    }
    s->address = jw_strdup(address);
    snprintf(key, sizeof(key), "%08x", s->id);
    jw_dict_set(env->by_id, key, s);
    s->next = env->all;
    if (env->all)
        env->all->prev = s;
    env->all = s;
    s->open = 1;
    jw_metric_add(connections_gauge(s), 1);
    jw_metric_add(JW_M_CONNECTIONS_ACCEPTED, 1);
    jw_info(MOD, "c%08x: connected from %s%s", s->id, s->address,
            transport == JW_TRANSPORT_SSE ? " (SSE)" : "");
    if (transport == JW_TRANSPORT_SSE) {
        s->sse_resumed = (uint8_t)jw_session_sse_resumed(wsi);
        s->last_write_ms = jw_session_now_ms();
    }

    if (jw_session_begin_auth(s) < 0) {
        jw_session_closed(s);
        return -EACCES;
    }
    if (transport == JW_TRANSPORT_SSE)
        jw_session_rearm(s); /* the heartbeat */
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
    jw_metric_add(connections_gauge(s), -1);
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
    if (s->transport == JW_TRANSPORT_SSE)
        return jw_session_sse_writeable(s);
    /* Frames queued before the close (an error saying why) still go out first. */
    if (s->close_code && !s->outq.count) {
        lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    /* Several frames per turn, until the kernel pushes back (lws then holds the remainder).
     * lws_send_pipe_choked costs a poll() syscall: ask only when another frame waits. */
    struct jw_frame *f = jw_outq_peek(&s->outq);
    size_t written = 0;
    uint64_t now_ns = jw_monotonic_ns();
    while (f) {
        size_t len = f->stamped ? jw_frame_stamp(f, ++s->seq) : f->len;
        if (lws_write(s->wsi, jw_frame_text(f), len, LWS_WRITE_TEXT) < (int)len) {
            jw_info(MOD, "c%08x: write failed", s->id);
            return -1;
        }
        if (f->origin_ns)
            jw_metrics_observe_delivery_latency(now_ns - f->origin_ns);
        written += jw_frame_cost(f);
        jw_outq_pop(&s->outq);
        f = jw_outq_peek(&s->outq);
        if (f && lws_send_pipe_choked(s->wsi))
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
    if (jw_session_hold_event(s, ev))
        return;
    if (jw_session_enqueue(s, ev->frame) == 0)
        jw_metric_add(JW_M_DELIVERIES, 1);
}

void
jw_session_goaway(struct jw_session *s, uint32_t reconnect_after_ms)
{
    char text[64];
    int n = snprintf(text, sizeof(text), "{\"type\":\"goaway\",\"reconnectAfterMs\":%u}",
                     reconnect_after_ms);
    jw_session_send_owned(s, jw_frame_new(text, (size_t)n, 0));
    jw_session_close_later(s, JW_CLOSE_GOING_AWAY, "going away");
}

void
jw_session_broadcast(struct jw_session_env *env, struct jw_frame *f)
{
    for (struct jw_session *s = env->all; s; s = s->next)
        if (s->state == S_ACTIVE)
            (void)jw_session_enqueue(s, f);
}
