/*
 * Sessions (see the state diagram in session.h): the registry, lifecycle, the outbound queue,
 * inbound messages (size, rate, reassembly) and their dispatch, and the op that serialises a
 * session's Redis steps. Writing is in session_write.c, authentication in session_auth.c,
 * subscriptions in session_subscribe.c, the SSE specifics in session_sse.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "jobwire/rand.h"
#include "session_private.h"

#define MOD JW_SESSION_MOD
#define MAX_HELD 32 /* client messages held while a Redis step runs; more is a flood */
#define SSE_CLOSE_TIMEOUT_S 5

struct jw_held_input {
    struct jw_held_input *next;
    size_t len;
    char text[];
};

/* ---- the registry ------------------------------------------------------------------------ */

struct jw_sessions *
jw_sessions_new(const struct jw_session_deps *d)
{
    struct jw_sessions *reg = jw_calloc(1, sizeof *reg);
    reg->cfg = d->cfg;
    reg->loop = d->loop;
    reg->hub = d->hub;
    reg->upstream = d->upstream;
    reg->auth = d->auth;
    reg->sync = d->sync;
    reg->window = d->window;
    reg->by_id = jw_dict_new();
    reg->per_address = jw_counts_new();
    reg->per_user = jw_counts_new();
    reg->rng = jw_random_seed();
    for (size_t i = 0; i < d->cfg->trusted_nproxies; i++)
        if (jw_cidr_parse(d->cfg->trusted_proxies[i], &reg->trusted[reg->ntrusted]) == 0)
            reg->ntrusted++; /* jw_config_finish() validated every entry */
    return reg;
}

void
jw_sessions_free(struct jw_sessions *reg)
{
    if (!reg)
        return;
    jw_dict_free(reg->by_id);
    jw_counts_free(reg->per_address);
    jw_counts_free(reg->per_user);
    jw_sessions_free_wbuf(reg);
    free(reg);
}

size_t
jw_sessions_count(const struct jw_sessions *reg)
{
    return reg->count;
}

static void
id_key(uint64_t id, char key[16])
{
    snprintf(key, 16, "%08x", (unsigned)id);
}

struct jw_session *
jw_session_by_id(struct jw_sessions *reg, uint64_t id)
{
    char key[16];
    id_key(id, key);
    return jw_dict_get(reg->by_id, key);
}

struct jw_session_op *
jw_session_op_of(struct jw_sessions *reg, uint64_t id, uint64_t serial)
{
    struct jw_session *s = jw_session_by_id(reg, id);
    return s && s->op && s->op->serial == serial ? s->op : NULL;
}

/* The loop's time of this turn, shared by every session of the registry. */
static uint64_t
sessions_now_ms(const struct jw_sessions *reg)
{
    return (uint64_t)(ev_now(reg->loop) * 1000.0);
}

uint64_t
jw_session_now_ms(const struct jw_session *s)
{
    return sessions_now_ms(s->reg);
}

static void
conn_name(const struct jw_session *s, char out[16])
{
    snprintf(out, 16, "c%08x", s->id);
}

void
jw_session_log(const struct jw_session *s, enum jw_log_level level, const char *fmt, ...)
{
    char conn[16], msg[256];
    va_list ap;
    if (!jw_log_enabled(level))
        return;
    conn_name(s, conn);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct jw_log_field f[] = {JW_LOG_STR("conn", conn), JW_LOG_STR("user", s->user_id)};
    jw_log_fields(level, MOD, f, 2, "%s", msg);
}

void
jw_session_peer_closed(struct jw_session *s, uint16_t code)
{
    s->peer_code = code;
}

/* ---- keepalive ------------------------------------------------------------------------------
 * A WebSocket gets a PING ws_ping_interval_s after it opened or last answered one, and is hung
 * up when no PONG follows within ws_pong_timeout_s: the rule lws' validity timers applied, kept
 * here because lws 4.1.6 inserts those timers into one sorted list, walked whole per PONG. The
 * 1 Hz tick decides; the PING (2 bytes) goes out with the session's next write, so it costs no
 * POLLOUT round. The first PING comes up to a quarter interval early, at random, so that
 * connections opened together do not all ping in the same tick. */

static void
keepalive_start(struct jw_session *s)
{
    const struct jw_config *cfg = s->reg->cfg;
    uint64_t interval = (uint64_t)cfg->ws_ping_interval_s * 1000u;
    if (s->transport != JW_TRANSPORT_WEBSOCKET || !interval)
        return;
    s->keepalive_ms =
        jw_session_now_ms(s) + interval - jw_random_below(&s->reg->rng, interval / 4 + 1);
}

void
jw_session_pong(struct jw_session *s)
{
    const struct jw_config *cfg = s->reg->cfg;
    if (!s->keepalive_ms)
        return;
    s->awaiting_pong = 0;
    s->keepalive_ms = jw_session_now_ms(s) + (uint64_t)cfg->ws_ping_interval_s * 1000u;
}

static void
keepalive_check(struct jw_session *s, uint64_t now)
{
    if (!s->keepalive_ms || now < s->keepalive_ms || s->broken)
        return;
    if (s->awaiting_pong) { /* silent since the PING: hang up (no close frame, as lws did) */
        jw_session_log(s, JW_LOG_INFO, "no PONG for %d s: hanging up",
                       s->reg->cfg->ws_pong_timeout_s);
        s->end_reason = "no pong";
        s->broken = 1;
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        return;
    }
    s->awaiting_pong = 1;
    s->ping_owed = 1;
    s->keepalive_ms = now + (uint64_t)s->reg->cfg->ws_pong_timeout_s * 1000u;
    jw_session_mark_dirty(s);
}

/* ---- queueing and closing ---------------------------------------------------------------- */

void
jw_session_close_later(struct jw_session *s, uint16_t code, const char *reason)
{
    if (s->close_code)
        return;
    jw_session_log(s, JW_LOG_INFO, "closing (%u): %s", code, reason);
    s->close_code = code;
    s->close_reason = reason;
    jw_session_mark_dirty(s);
    /* A WebSocket that never reads again is cut off by the stall check; an SSE stream's last
     * events get a bounded time to go out. */
    if (s->transport == JW_TRANSPORT_SSE)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, SSE_CLOSE_TIMEOUT_S);
}

/* Drops what is queued (the queue_bytes gauge follows). */
static void
clear_queue(struct jw_session *s)
{
    jw_metric_add(JW_M_QUEUE_BYTES, -(int64_t)s->outq.bytes);
    jw_outq_clear(&s->outq);
    s->progress_ms = jw_session_now_ms(s);
}

int
jw_session_queue(struct jw_session *s, struct jw_frame *f, bool force)
{
    if (s->close_code || s->broken)
        return -ENOBUFS;
    const struct jw_config *cfg = s->reg->cfg;
    uint64_t now = jw_session_now_ms(s);
    struct jw_outq_pressure p = {cfg->client_conflate_bytes,
                                 (uint64_t)cfg->client_conflate_after_ms, now};
    size_t before = s->outq.bytes;
    bool was_empty = s->outq.count == 0;
    unsigned conflated = 0;
    uint64_t seq = f->sequenced ? s->seq + 1 : 0;
    int rc = jw_outq_push(&s->outq, f, seq, cfg->client_queue_max_bytes,
                          (uint32_t)cfg->client_queue_max_messages, force, &p, &conflated);
    jw_metric_add(JW_M_QUEUE_BYTES, (int64_t)s->outq.bytes - (int64_t)before);
    if (conflated)
        jw_metric_add(JW_M_CONFLATIONS, conflated);
    if (rc < 0) {
        jw_metric_add(JW_M_CLOSED_SLOW, 1);
        clear_queue(s); /* the close frame must get through */
        jw_session_close_later(s, JW_CLOSE_SLOW_CONSUMER, "slow consumer");
        return -ENOBUFS;
    }
    if (f->sequenced)
        s->seq = seq;
    if (was_empty)
        s->progress_ms = now;
    jw_session_mark_dirty(s);
    return 0;
}

void
jw_session_send(struct jw_session *s, struct jw_frame *f)
{
    (void)jw_session_queue(s, f, true);
    jw_frame_unref(f);
}

void
jw_session_send_error(struct jw_session *s, const char *id, const char *code, const char *message)
{
    jw_metric_add(JW_M_CLIENT_ERRORS, 1);
    jw_session_log(s, JW_LOG_DEBUG, "error %s: %s", code, message);
    jw_session_send(s, jw_reply_error(id, code, message));
    /* An SSE client cannot send another request: every error answers its query or its token,
     * so the stream ends once the error is out (a close_later() made meanwhile wins). */
    if (s->transport == JW_TRANSPORT_SSE && !s->sse_end_code)
        s->sse_end_code = strcmp(code, JW_ERR_FORBIDDEN) == 0         ? JW_CLOSE_FORBIDDEN
                          : strcmp(code, JW_ERR_UNAVAILABLE) == 0     ? JW_CLOSE_TRY_AGAIN
                          : strcmp(code, JW_ERR_TOO_MANY_JOBS) == 0   ? JW_CLOSE_TOO_MANY
                          : strcmp(code, JW_ERR_UNAUTHENTICATED) == 0 ? JW_CLOSE_UNAUTHENTICATED
                                                                      : JW_CLOSE_POLICY;
}

void
jw_session_deliver(void *ctx, struct jw_member *m, struct jw_event *ev)
{
    (void)ctx;
    struct jw_session *s = m->owner;
    if (jw_session_hold_event(s, ev))
        return;
    if (jw_session_queue(s, ev->frame, false) == 0)
        jw_metric_add(JW_M_DELIVERIES, 1);
}

void
jw_sessions_pause(struct jw_sessions *reg)
{
    struct jw_frame *f = jw_reply_status(false, "redis unavailable", -1, -1);
    for (struct jw_session *s = reg->all; s; s = s->next)
        if (s->state == S_ACTIVE)
            (void)jw_session_queue(s, f, true);
    jw_frame_unref(f);
}

void
jw_sessions_resync(struct jw_sessions *reg)
{
    for (struct jw_session *s = reg->all; s; s = s->next)
        if (s->state == S_ACTIVE && !s->close_code)
            jw_session_start_resync(s);
}

void
jw_sessions_retry(struct jw_sessions *reg)
{
    for (struct jw_session *s = reg->all; s; s = s->next)
        if (s->stale && s->state == S_ACTIVE && !s->close_code)
            jw_session_start_resync(s);
}

size_t
jw_sessions_goaway(struct jw_sessions *reg, size_t n, uint32_t max_delay_ms)
{
    size_t told = 0;
    for (struct jw_session *s = reg->all; s && told < n; s = s->next) {
        if (s->told_goaway)
            continue;
        s->told_goaway = 1;
        jw_session_send(s, jw_reply_goaway((uint32_t)jw_random_below(&reg->rng, max_delay_ms)));
        jw_session_close_later(s, JW_CLOSE_GOING_AWAY, "going away");
        told++;
    }
    return told;
}

/* ---- ops --------------------------------------------------------------------------------- */

struct jw_session_op *
jw_session_op_new(struct jw_session *s, int kind)
{
    struct jw_session_op *op = jw_calloc(1, sizeof(*op));
    op->kind = kind;
    op->s = s;
    op->serial = ++s->reg->next_op_serial;
    op->resumed = -1;
    s->op = op;
    return op;
}

static void
free_op(struct jw_session *s)
{
    struct jw_session_op *op = s->op;
    if (!op)
        return;
    if (op->kind != OP_AUTH)
        jw_session_free_sync_op(op);
    jw_cmd_clear(&op->cmd);
    explicit_bzero(&op->principal, sizeof(op->principal));
    free(op);
    s->op = NULL;
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
    if (s->resync_wanted && !s->close_code) {
        s->resync_wanted = 0;
        jw_session_start_resync(s);
    }
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

/* ---- client messages ---------------------------------------------------------------------- */

void
jw_session_handle_message(struct jw_session *s, const char *text, size_t len)
{
    if (s->op) { /* a Redis step is running: keep the order of requests */
        hold_input(s, text, len);
        return;
    }
    struct jw_cmd cmd;
    struct jw_cmd_error err;
    if (jw_cmd_parse(text, len, (size_t)s->reg->cfg->client_max_subscriptions, &cmd, &err) < 0) {
        if (strcmp(err.code, JW_ERR_UNAUTHENTICATED) == 0 && s->state != S_ACTIVE) {
            jw_metric_add(JW_M_AUTH_FAILURES_BAD_TOKEN, 1);
            jw_session_refuse_auth(s, err.id, JW_CLOSE_UNAUTHENTICATED, "token too large");
        } else {
            jw_session_send_error(s, err.id,
                                  strcmp(err.code, JW_ERR_UNAUTHENTICATED) == 0 ? JW_ERR_BAD_TOKEN
                                                                                : err.code,
                                  err.message);
        }
        return;
    }
    if (cmd.type == JW_CMD_PING)
        jw_session_send(s, jw_reply_pong(cmd.id));
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
    jw_session_log(s, JW_LOG_INFO, "closing (%d): %s", (int)code, reason);
    s->close_code = (uint16_t)code;
    s->close_reason = reason;
    lws_close_reason(s->wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

int
jw_session_receive(struct jw_session *s, const void *in, size_t len)
{
    const struct jw_config *cfg = s->reg->cfg;
    size_t max = cfg->client_max_message_bytes;
    if (s->close_code)
        return 0; /* closing: the rest of what the client says does not matter */
    if (lws_frame_is_binary(s->wsi))
        return close_now(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary messages not supported");
    int first = lws_is_first_fragment(s->wsi);
    int last = lws_is_final_fragment(s->wsi) && lws_remaining_packet_payload(s->wsi) == 0;
    if (first && !jw_bucket_take(&s->bucket, (unsigned)cfg->client_max_messages_per_second,
                                 (unsigned)cfg->client_message_burst, jw_session_now_ms(s))) {
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

/* ---- lifecycle ---------------------------------------------------------------------------- */

static enum jw_metric_id
connections_gauge(const struct jw_session *s)
{
    return s->transport == JW_TRANSPORT_SSE ? JW_M_CONNECTIONS_SSE : JW_M_CONNECTIONS;
}

struct jw_session *
jw_session_open(struct jw_sessions *reg, struct lws *wsi, enum jw_transport transport,
                unsigned *status)
{
    const struct jw_config *cfg = reg->cfg;
    char address[64], counted[80], key[16];
    jw_session_client_address(reg, wsi, address, sizeof address);
    jw_address_key(address, counted, sizeof counted);
    if (jw_counts_acquire(reg->per_address, counted, (unsigned)cfg->max_connections_per_ip) < 0) {
        jw_metric_add(JW_M_CLOSED_TOO_MANY_CONNECTIONS, 1);
        jw_info(MOD, "refused a connection from %s: too many from this address", address);
        if (transport == JW_TRANSPORT_WEBSOCKET)
            lws_close_reason(wsi, (enum lws_close_status)JW_CLOSE_TOO_MANY,
                             (unsigned char *)"too many connections", 20);
        *status = 429;
        return NULL;
    }
    if (cfg->client_send_buffer_bytes) {
        /* Bounds what a client that stops reading pins in the kernel (autotuning lets a send
         * buffer grow to megabytes), and what lies before the close frame it is owed. */
        int fd = lws_get_socket_fd(wsi), bytes = (int)cfg->client_send_buffer_bytes;
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) != 0)
            jw_warn(MOD, "SO_SNDBUF %d: %s", bytes, strerror(errno));
    }
    struct jw_session *s = jw_calloc(1, sizeof *s);
    s->reg = reg;
    s->wsi = wsi;
    s->transport = (uint8_t)transport;
    s->id = ++reg->next_id;
    s->address = jw_strdup(counted);
    s->deflate = transport == JW_TRANSPORT_WEBSOCKET && cfg->permessage_deflate;
    jw_outq_init(&s->outq);
    s->last_write_ms = s->progress_ms = jw_session_now_ms(s);
    s->opened_ms = jw_now_ms();
    jw_bucket_init(&s->bucket, (unsigned)cfg->client_message_burst, s->last_write_ms);
    ev_init(&s->timer, jw_session_on_timer);
    s->timer.data = s;
    id_key(s->id, key);
    jw_dict_set(reg->by_id, key, s);
    s->next = reg->all;
    if (reg->all)
        reg->all->prev = s;
    reg->all = s;
    reg->count++;
    jw_metric_add(connections_gauge(s), 1);
    jw_metric_add(JW_M_CONNECTIONS_ACCEPTED, 1);
    char conn[16];
    conn_name(s, conn);
    struct jw_log_field f[] = {
        JW_LOG_STR("conn", conn), JW_LOG_STR("address", address),
        JW_LOG_STR("transport", transport == JW_TRANSPORT_SSE ? "sse" : "websocket")};
    jw_log_fields(JW_LOG_INFO, MOD, f, 3, "connected from %s", address);
    if (jw_session_begin_auth(s) < 0) {
        jw_session_closed(s);
        *status = 401;
        return NULL;
    }
    jw_session_rearm(s); /* the SSE heartbeat */
    keepalive_start(s);
    return s;
}

/* The one line per connection that says how it ended. */
static void
log_close(const struct jw_session *s)
{
    char conn[16];
    conn_name(s, conn);
    const char *reason = s->close_code   ? s->close_reason
                         : s->end_reason ? s->end_reason
                         : s->peer_code  ? "closed by the client"
                                         : "disconnected";
    struct jw_log_field f[] = {
        JW_LOG_STR("conn", conn),
        JW_LOG_STR("user", s->user_id),
        JW_LOG_STR("address", s->address),
        JW_LOG_STR("transport", s->transport == JW_TRANSPORT_SSE ? "sse" : "websocket"),
        s->close_code  ? JW_LOG_NUM("code", s->close_code)
        : s->peer_code ? JW_LOG_NUM("code", s->peer_code)
                       : JW_LOG_STR("code", NULL),
        JW_LOG_STR("reason", reason),
        JW_LOG_NUM("duration_ms", jw_now_ms() - s->opened_ms),
    };
    jw_log_fields(JW_LOG_INFO, MOD, f, sizeof f / sizeof f[0], "closed");
}

void
jw_session_closed(struct jw_session *s)
{
    struct jw_sessions *reg = s->reg;
    char key[16];
    if (s->state == S_ACTIVE) {
        jw_metric_add(JW_M_SUBSCRIPTIONS, -(int64_t)jw_hub_subscription_count(&s->member));
        jw_hub_leave(reg->hub, &s->member);
    }
    if (s->user_counted)
        jw_counts_release(reg->per_user, s->user_id);
    jw_counts_release(reg->per_address, s->address);
    id_key(s->id, key);
    jw_dict_del(reg->by_id, key);
    clear_queue(s);
    ev_timer_stop(reg->loop, &s->timer);
    if (s->prev)
        s->prev->next = s->next;
    else
        reg->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->dirty) { /* unlink from this turn's flush list */
        struct jw_session **p = &reg->dirty;
        while (*p != s)
            p = &(*p)->dirty_next;
        *p = s->dirty_next;
    }
    reg->count--;
    jw_metric_add(connections_gauge(s), -1);
    log_close(s);
    free_op(s);
    while (s->held) {
        struct jw_held_input *h = s->held;
        s->held = h->next;
        free(h);
    }
    free(s->user_id);
    free(s->address);
    free(s->partial);
    free(s->deflate_copy);
    free(s);
}

void
jw_sessions_tick(struct jw_sessions *reg)
{
    const struct jw_config *cfg = reg->cfg;
    uint64_t limit = (uint64_t)cfg->client_stall_timeout_s * 1000u, now = sessions_now_ms(reg);
    for (struct jw_session *s = reg->all; s; s = s->next) {
        keepalive_check(s, now);
        if (!limit || !s->outq.count || s->broken || now - s->progress_ms < limit)
            continue;
        /* It stopped reading: nothing more can reach it, not even a close frame. */
        jw_metric_add(JW_M_CLOSED_STALLED, 1);
        jw_session_log(s, JW_LOG_INFO, "closing (%u): no write progress for %d s",
                       JW_CLOSE_SLOW_CONSUMER, cfg->client_stall_timeout_s);
        s->close_code = JW_CLOSE_SLOW_CONSUMER;
        s->close_reason = "stalled";
        s->broken = 1;
        clear_queue(s);
        if (s->transport == JW_TRANSPORT_WEBSOCKET)
            lws_close_reason(s->wsi, (enum lws_close_status)JW_CLOSE_SLOW_CONSUMER,
                             (unsigned char *)"stalled", 7);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    }
}
