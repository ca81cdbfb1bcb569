/*
 * The gateway thread (see gateway.h): one lws context with two protocols served by one
 * callback — "http" (/healthz, /readyz, /metrics, Server-Sent Events at /events, static files)
 * and "jobwire.v1" (WebSocket sessions, the vhost default so that clients need not name it). Events
 * from the upstream thread arrive through the inbox; lws_cancel_service() wakes the loop, and the
 * inbox is drained whole on each LWS_CALLBACK_EVENT_WAIT_CANCELLED, in the ws protocol only.
 *
 * lws runs on a libev loop that the gateway owns (an lws "foreign loop"): epoll costs
 * O(ready sockets) per turn where lws' built-in poll() loop costs O(all sockets), and owning
 * the loop is what lets the gateway stop it (lws installs no signal watcher on a foreign loop).
 */
#include "jobwire/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "jobwire/alloc.h"
#include "auth.h"
#include "../redis/backoff.h"
#include "jobwire/buf.h"
#include "hub.h"
#include "jobwire/inbox.h"
#include "sync.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "../redis/request.h"
#include "session.h"

enum { PROTO_HTTP = 0, PROTO_WS, PROTO_COUNT };
enum { MOUNT_HEALTHZ = 0, MOUNT_READYZ, MOUNT_METRICS, MOUNT_EVENTS, MOUNT_WEB, MOUNT_COUNT };

#define WS_PATH "/ws"
#define SSE_PATH "/events"
/* lws' receive buffer, allocated for the life of every WebSocket connection. Client messages
 * are small; a longer one (up to client_max_message_bytes) reaches jw_session_receive in
 * pieces, which it reassembles. 256 is also the least client_max_message_bytes allowed. */
#define WS_RX_BUFFER_BYTES 256

enum { JW_STOP_DRAIN = 1, JW_STOP_FAST = 2 };

struct jw_gateway {
    const struct jw_config *cfg;
    struct lws_context *ctx;
    struct ev_loop *loop;   /* lws' event loop; runs only inside jw_gateway_run */
    void *foreign_loops[1]; /* {loop}, read by lws_create_context */
    ev_timer timer_kick;    /* see on_timer_kick */
    struct jw_inbox *inbox;
    struct jw_session_env env;
    struct jw_auth *auth;
    struct jw_live *live;
    char instance[20];          /* random: names this process on jobwire's own channel */
    _Atomic int stop_requested; /* 0, JW_STOP_DRAIN or JW_STOP_FAST; any thread */
    /* drain state, gateway thread only */
    lws_sorted_usec_list_t drain_tick;
    uint64_t drain_started_ms, drain_window_ms;
    size_t drain_total, drain_told;
    uint64_t rng; /* jitter of the reconnect delays */
    uint8_t draining;
    _Atomic int link_state;
    /* lws keeps pointers to these for the life of the context */
    struct lws_protocols protocols[PROTO_COUNT + 1];
    struct lws_http_mount mounts[MOUNT_COUNT];
    struct lws_protocol_vhost_options pvo, pvo_default;
    lws_retry_bo_t keepalive; /* WebSocket PING when idle, hang up when no PONG */
    char web_root[PATH_MAX];
    char listen_iface[64];
};

/* permessage-deflate (RFC 7692), opt-in: each connection's zlib streams are bounded by
 * deflate_mem_level and deflate_window_bits in on_lws_event(ESTABLISHED), before the first
 * frame is compressed. */
static const struct lws_extension deflate_extension[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL},
};

/* One HTTP request's answer, held until the body can be written. */
struct http_reply {
    char *body;
    size_t len;
};

/* The HTTP protocol's per-session memory: small, because every request has one. An SSE stream
 * allocates its session (some 300 bytes) on the heap, so the WebSocket protocol's memory and
 * the plain requests' stay as they were. */
struct http_pss {
    struct http_reply reply;
    struct jw_session *sse; /* an open SSE stream; freed on CLOSED_HTTP */
};

static struct jw_gateway *
gateway_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

struct link_msg {
    struct jw_msg msg; /* first: type JW_MSG_LINK_STATE */
    enum jw_link_state state;
};

static void
dispose_msg(struct jw_msg *msg)
{
    switch (msg->type) {
    case JW_MSG_EVENT:
        jw_event_free(jw_event_of(msg));
        break;
    case JW_MSG_REDIS_REPLY:
        jw_redis_request_free(jw_redis_request_of(msg));
        break;
    case JW_MSG_LINK_STATE:
        free(msg);
        break;
    }
}

static void
drain_inbox(struct jw_gateway *gw)
{
    struct jw_msg *msg = jw_inbox_take_all(gw->inbox);
    while (msg) {
        struct jw_msg *next = msg->next;
        switch (msg->type) {
        case JW_MSG_EVENT:
            if (!jw_live_take_event(gw->live, jw_event_of(msg)))
                jw_live_route(gw->live, jw_event_of(msg));
            break;
        case JW_MSG_REDIS_REPLY:
            jw_redis_request_complete(jw_redis_request_of(msg));
            break;
        case JW_MSG_LINK_STATE:
            jw_live_link_state(gw->live, ((struct link_msg *)msg)->state);
            free(msg);
            break;
        }
        msg = next;
    }
}

static int
is_ready(const struct jw_gateway *gw)
{
    return jw_live_ready(gw->live) && !atomic_load(&gw->stop_requested);
}

/* Builds the answer of a callback mount; returns the HTTP status. */
static unsigned
http_answer(struct jw_gateway *gw, const char *path, struct jw_buf *body, const char **type)
{
    *type = "text/plain; charset=utf-8";
    if (strcmp(path, "/healthz") == 0) {
        jw_buf_append_str(body, "ok\n");
        return HTTP_STATUS_OK;
    }
    if (strcmp(path, "/readyz") == 0) {
        int ready = is_ready(gw);
        jw_buf_append_str(body, ready ? "ready\n" : "not ready: ");
        if (!ready) {
            enum jw_link_state link = atomic_load(&gw->link_state);
            if (atomic_load(&gw->stop_requested))
                jw_buf_append_str(body, "draining");
            else if (link == JW_LINK_SUBSCRIBED)
                jw_buf_append_str(body, "delivery probe overdue");
            else {
                jw_buf_append_str(body, "redis link ");
                jw_buf_append_str(body, jw_link_state_name(link));
            }
            jw_buf_append_str(body, "\n");
        }
        return ready ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (strcmp(path, "/metrics") == 0) {
        *type = "text/plain; version=0.0.4; charset=utf-8";
        jw_metrics_render(body);
        return HTTP_STATUS_OK;
    }
    jw_buf_append_str(body, "not found\n");
    return HTTP_STATUS_NOT_FOUND;
}

/* Sends the headers of an answer whose body (taken over) goes out on HTTP_WRITEABLE. */
static int
send_reply(struct lws *wsi, struct http_reply *reply, unsigned status, const char *type,
           struct jw_buf body)
{
    unsigned char head[LWS_PRE + 512];
    unsigned char *p = head + LWS_PRE, *end = head + sizeof(head) - 1;
    if (lws_add_http_common_headers(wsi, status, type, body.len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, head + LWS_PRE, &p, end)) {
        jw_buf_free(&body);
        return 1;
    }
    reply->body = body.data; /* the buffer's memory now belongs to the reply */
    reply->len = body.len;
    lws_callback_on_writable(wsi);
    return 0;
}

/* A refusal: the status with a one-line plain-text reason. */
static int
send_refusal(struct lws *wsi, struct http_reply *reply, unsigned status, const char *why)
{
    struct jw_buf body;
    jw_buf_init(&body, 128);
    jw_buf_append_str(&body, why);
    jw_buf_append_str(&body, "\n");
    return send_reply(wsi, reply, status, "text/plain; charset=utf-8", body);
}

/* Counts a handshake refused with an HTTP status, by its reason. */
static void
count_refusal(unsigned status)
{
    switch (status) {
    case HTTP_STATUS_BAD_REQUEST:
        jw_metric_add(JW_M_REJECTED_BAD_REQUEST, 1);
        break;
    case HTTP_STATUS_FORBIDDEN:
        jw_metric_add(JW_M_REJECTED_FORBIDDEN, 1);
        break;
    case 429:
        jw_metric_add(JW_M_REJECTED_TOO_MANY, 1);
        break;
    case HTTP_STATUS_SERVICE_UNAVAILABLE:
        jw_metric_add(JW_M_REJECTED_DRAINING, 1);
        break;
    default:
        jw_metric_add(JW_M_REJECTED_UNAUTHENTICATED, 1);
        break;
    }
}

/* GET /events: admission exactly as for a WebSocket upgrade (plus the subscription the query
 * names), then a session on the heap whose frames go out as SSE events (session_sse.c). */
static int
on_sse(struct lws *wsi, struct http_pss *pss)
{
    struct jw_gateway *gw = gateway_of(wsi);
    char why_buf[224];
    const char *why = why_buf;
    char *subscribe = NULL;
    unsigned flags = JW_ADMIT_SSE, status = 0;
    if (gw->draining) {
        why = "draining";
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (!status)
        status = jw_session_sse_query(&gw->env, wsi, &subscribe, &flags, why_buf, sizeof(why_buf));
    if (!status)
        status = jw_session_admit(&gw->env, wsi, flags, &why);
    struct jw_session *s = NULL;
    if (!status) {
        s = jw_calloc(1, sizeof(*s));
        int rc = jw_session_open(&gw->env, s, wsi, JW_TRANSPORT_SSE);
        if (rc < 0) {
            free(s);
            s = NULL;
            status = rc == -EUSERS ? 429 : HTTP_STATUS_UNAUTHORIZED;
            why = rc == -EUSERS ? "too many connections from this address" : "token expired";
        }
    }
    if (status) {
        free(subscribe);
        count_refusal(status);
        jw_info("gateway", "refused SSE request (%u): %s", status, why);
        return send_refusal(wsi, &pss->reply, status, why);
    }
    pss->sse = s;
    jw_session_sse_subscribe(s, subscribe);
    free(subscribe);

    /* The headers are read for the last time above: lws_http_mark_sse() detaches them. */
    unsigned char head[LWS_PRE + 512];
    unsigned char *p = head + LWS_PRE, *end = head + sizeof(head) - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, head + LWS_PRE, &p, end))
        return -1; /* CLOSED_HTTP closes the session */
    /* lws_http_mark_sse() is for h2 streams (on HTTP/1.1 it logs an error); what it does for
     * HTTP/1.1 is to drop the headers and any pending timeout. */
    if (lws_get_network_wsi(wsi) != wsi) {
        lws_http_mark_sse(wsi);
    } else {
        lws_http_headers_detach(wsi);
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int
on_http(struct lws *wsi, struct http_pss *pss)
{
    struct jw_gateway *gw = gateway_of(wsi);
    char path[64];
    if (pss->sse) /* a request pipelined behind a stream, which never completes: hang up */
        return -1;
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
        return lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL) ||
               lws_http_transaction_completed(wsi);
    if (strcmp(path, SSE_PATH) == 0)
        return on_sse(wsi, pss);

    struct jw_buf body;
    const char *type;
    jw_buf_init(&body, 256);
    unsigned status = http_answer(gw, path, &body, &type);
    return send_reply(wsi, &pss->reply, status, type, body);
}

static int
on_http_writeable(struct lws *wsi, struct http_reply *reply)
{
    if (!reply->body)
        return 0;
    unsigned char *out = jw_malloc(LWS_PRE + reply->len);
    memcpy(out + LWS_PRE, reply->body, reply->len);
    int n = lws_write(wsi, out + LWS_PRE, reply->len, LWS_WRITE_HTTP_FINAL);
    free(out);
    free(reply->body);
    reply->body = NULL;
    if (n < (int)reply->len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Refuses an upgrade that is not to WS_PATH or that admission turns down, with a status. */
static int
on_confirm_upgrade(struct lws *wsi)
{
    struct jw_gateway *gw = gateway_of(wsi);
    char path[64];
    const char *why = NULL;
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(path, WS_PATH) != 0) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "WebSocket endpoint is " WS_PATH);
        return 1;
    }
    unsigned status =
        gw->draining ? HTTP_STATUS_SERVICE_UNAVAILABLE : jw_session_admit(&gw->env, wsi, 0, &why);
    if (status) {
        if (gw->draining)
            why = "draining";
        count_refusal(status);
        jw_info("gateway", "refused WebSocket upgrade (%u): %s", status, why);
        lws_return_http_status(wsi, status, why);
        return 1;
    }
    return 0;
}

static void
bound_deflate(const struct jw_config *cfg, struct lws *wsi)
{
    char mem[4], bits[4];
    snprintf(mem, sizeof(mem), "%d", cfg->deflate_mem_level);
    snprintf(bits, sizeof(bits), "%d", cfg->deflate_window_bits);
    /* Fails harmlessly when the client did not negotiate the extension. */
    lws_set_extension_option(wsi, "permessage-deflate", "mem_level", mem);
    lws_set_extension_option(wsi, "permessage-deflate", "server_max_window_bits", bits);
}

static void begin_drain(struct jw_gateway *gw, int fast); /* see "shutdown" below */

static int
on_lws_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct jw_gateway *gw;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* Delivered once per protocol: drain in exactly one of them. */
        gw = gateway_of(wsi);
        /* lws may copy the protocol table per vhost, so compare names, not addresses */
        if (strcmp(lws_get_protocol(wsi)->name, gw->protocols[PROTO_WS].name) == 0) {
            drain_inbox(gw);
            /* jw_gateway_request_stop wakes the loop: the drain starts here, in the loop */
            int stop = atomic_load(&gw->stop_requested);
            if (stop && !gw->draining)
                begin_drain(gw, stop == JW_STOP_FAST);
        }
        return 0; /* non-zero would close lws' wake pipe */

    case LWS_CALLBACK_HTTP:
        return on_http(wsi, user);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (user && ((struct http_pss *)user)->sse)
            return jw_session_writeable(((struct http_pss *)user)->sse);
        return on_http_writeable(wsi, &((struct http_pss *)user)->reply);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: /* lws may free the memory after either */
        if (user) {
            struct http_pss *pss = user;
            free(pss->reply.body);
            pss->reply.body = NULL;
            if (pss->sse) {
                jw_session_closed(pss->sse);
                free(pss->sse);
                pss->sse = NULL;
            }
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(wsi);

    case LWS_CALLBACK_ESTABLISHED:
        gw = gateway_of(wsi);
        if (gw->cfg->permessage_deflate)
            bound_deflate(gw->cfg, wsi);
        return jw_session_open(&gw->env, user, wsi, JW_TRANSPORT_WEBSOCKET) < 0 ? -1 : 0;
    case LWS_CALLBACK_RECEIVE:
        return jw_session_receive(user, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return jw_session_writeable(user);
    case LWS_CALLBACK_TIMER:
        /* Only sessions set wsi timers: a WebSocket's, or an SSE stream's on the HTTP protocol */
        gw = gateway_of(wsi);
        if (strcmp(lws_get_protocol(wsi)->name, gw->protocols[PROTO_WS].name) == 0)
            return jw_session_timer(user);
        return user && ((struct http_pss *)user)->sse
                   ? jw_session_timer(((struct http_pss *)user)->sse)
                   : 0;
    case LWS_CALLBACK_CLOSED:
        jw_session_closed(user);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static void
on_lws_log(int level, const char *line)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    jw_log(level & LLL_ERR ? JW_LOG_ERROR : JW_LOG_WARN, "lws", "%.*s", (int)len, line);
}

static void
setup_mounts(struct jw_gateway *gw)
{
    static const char *const api_paths[] = {"/healthz", "/readyz", "/metrics", SSE_PATH};
    struct lws_http_mount *m = gw->mounts;
    for (int i = MOUNT_HEALTHZ; i <= MOUNT_EVENTS; i++) {
        m[i].mountpoint = api_paths[i];
        m[i].mountpoint_len = (unsigned char)strlen(api_paths[i]);
        m[i].origin = "http";
        m[i].origin_protocol = LWSMPRO_CALLBACK;
        m[i].mount_next = &m[i + 1];
    }
    m[MOUNT_EVENTS].mount_next = NULL;
    if (!gw->web_root[0])
        return;
    m[MOUNT_EVENTS].mount_next = &m[MOUNT_WEB];
    m[MOUNT_WEB].mountpoint = "/";
    m[MOUNT_WEB].mountpoint_len = 1;
    m[MOUNT_WEB].origin = gw->web_root;
    m[MOUNT_WEB].def = "index.html";
    m[MOUNT_WEB].origin_protocol = LWSMPRO_FILE;
}

struct jw_gateway *
jw_gateway_new(const struct jw_config *cfg)
{
    struct jw_gateway *gw = jw_calloc(1, sizeof(*gw));
    gw->cfg = cfg;
    char err[256];
    gw->auth = jw_auth_new(cfg, err, sizeof(err));
    if (!gw->auth) {
        jw_error("gateway", "cannot load the JWT keys: %s", err);
        free(gw);
        return NULL;
    }
    uint64_t rnd;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = jw_monotonic_ns() ^ (uint64_t)getpid() << 32;
    snprintf(gw->instance, sizeof(gw->instance), "%016llx", (unsigned long long)rnd);
    gw->rng = rnd;
    jw_session_env_init(&gw->env, cfg, gw->auth, gw->instance);
    gw->inbox = jw_inbox_new(cfg->inbox_max_events);
    atomic_store(&gw->link_state, JW_LINK_IDLE);
    gw->loop = ev_loop_new(EVFLAG_AUTO);
    if (!gw->loop) {
        jw_error("gateway", "cannot create the event loop");
        jw_gateway_free(gw);
        return NULL;
    }
    gw->foreign_loops[0] = gw->loop;

    if (cfg->web_root[0] && !realpath(cfg->web_root, gw->web_root)) {
        jw_warn("gateway", "web_root %s not found: static files disabled", cfg->web_root);
        gw->web_root[0] = '\0';
    }
    setup_mounts(gw);

    gw->protocols[PROTO_HTTP] = (struct lws_protocols){
        .name = "http", .callback = on_lws_event, .per_session_data_size = sizeof(struct http_pss)};
    gw->protocols[PROTO_WS] =
        (struct lws_protocols){.name = "jobwire.v1",
                               .callback = on_lws_event,
                               .per_session_data_size = sizeof(struct jw_session),
                               .rx_buffer_size = WS_RX_BUFFER_BYTES};
    /* A client that names no sub-protocol is bound to the vhost default. */
    gw->pvo_default = (struct lws_protocol_vhost_options){.name = "default", .value = "1"};
    gw->pvo = (struct lws_protocol_vhost_options){
        .options = &gw->pvo_default, .name = "jobwire.v1", .value = ""};

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    struct in_addr v4;
    const char *iface =
        strcmp(cfg->listen_address, "localhost") == 0 ? "127.0.0.1" : cfg->listen_address;
    snprintf(gw->listen_iface, sizeof(gw->listen_iface), "%s", iface);
    info.iface = gw->listen_iface;
    info.port = cfg->listen_port;
    if (inet_pton(AF_INET, iface, &v4) == 1)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6; /* else lws binds every v6 address */
    info.options |= LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = gw->foreign_loops;
    info.protocols = gw->protocols;
    info.mounts = gw->mounts;
    info.pvo = &gw->pvo;
    info.user = gw;
    info.timeout_secs = 10;
    if (cfg->permessage_deflate)
        info.extensions = deflate_extension;
    if (cfg->ws_ping_interval_s) {
        gw->keepalive.secs_since_valid_ping = (uint16_t)cfg->ws_ping_interval_s;
        gw->keepalive.secs_since_valid_hangup =
            (uint16_t)(cfg->ws_ping_interval_s + cfg->ws_pong_timeout_s);
        info.retry_and_idle_policy = &gw->keepalive;
    }
    info.max_http_header_data = 12288; /* room for an Authorization header with a large JWT */

    lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);
    gw->ctx = lws_create_context(&info);
    if (!gw->ctx) {
        jw_error("gateway", "cannot listen on %s:%d", cfg->listen_address, cfg->listen_port);
        jw_gateway_free(gw);
        return NULL;
    }
    gw->live = jw_live_new(&gw->env, gw->ctx, gw->instance);
    jw_info("gateway", "listening on %s:%d (WebSocket %s, SSE %s%s%s)", cfg->listen_address,
            cfg->listen_port, WS_PATH, SSE_PATH, gw->web_root[0] ? ", web root " : "",
            gw->web_root);
    if (cfg->dev_auth)
        jw_warn("gateway", "dev_auth is on: clients choose their own user id; never use this "
                           "in production");
    else if (!jw_auth_enabled(gw->auth))
        jw_warn("gateway", "no JWT key configured and dev_auth off: every WebSocket client "
                           "will be refused");
    return gw;
}

/* ---- shutdown ---------------------------------------------------------------------------
 * SIGTERM drains: readiness turns false at once, new WebSockets are refused, and the sessions
 * are told to go (goaway with a spread-out reconnect delay, then close 1001) a few at a time
 * over 80 % of drain_window_ms, so that the other replicas see a trickle of reconnects rather
 * than a storm; the loop ends when the last session is gone or the window is over. SIGINT does
 * the same over drain_window_sigint_ms. */

static uint64_t
now_ms(void)
{
    return jw_monotonic_ns() / 1000000u;
}

static void
on_drain_tick(lws_sorted_usec_list_t *sul)
{
    struct jw_gateway *gw = lws_container_of(sul, struct jw_gateway, drain_tick);
    uint64_t elapsed = now_ms() - gw->drain_started_ms;
    uint64_t spread = gw->drain_window_ms * 8 / 10;
    size_t due = elapsed >= spread ? gw->drain_total
                                   : (size_t)(gw->drain_total * elapsed / (spread ? spread : 1));
    /* Sessions told already have close_code set; the list only shrinks while draining. */
    for (struct jw_session *s = gw->env.all; s && gw->drain_told < due; s = s->next) {
        if (s->close_code)
            continue;
        uint32_t delay =
            gw->cfg->drain_reconnect_max_ms
                ? (uint32_t)(jw_monotonic_ns() % (uint64_t)gw->cfg->drain_reconnect_max_ms)
                : 0;
        jw_session_goaway(s, delay);
        gw->drain_told++;
    }
    if (!gw->env.all || elapsed >= gw->drain_window_ms) {
        ev_break(gw->loop, EVBREAK_ALL); /* jw_gateway_run returns */
        return;
    }
    lws_sul_schedule(gw->ctx, 0, &gw->drain_tick, on_drain_tick, 10 * LWS_US_PER_MS);
}

static void
begin_drain(struct jw_gateway *gw, int fast)
{
    const struct jw_config *cfg = gw->cfg;
    gw->draining = 1;
    gw->drain_window_ms = (uint64_t)(fast ? cfg->drain_window_sigint_ms : cfg->drain_window_ms);
    gw->drain_started_ms = now_ms();
    gw->drain_total = 0;
    for (struct jw_session *s = gw->env.all; s; s = s->next)
        gw->drain_total++;
    jw_info("gateway", "draining %zu connection(s) over %llu ms (%s)", gw->drain_total,
            (unsigned long long)gw->drain_window_ms, fast ? "SIGINT" : "SIGTERM");
    /* The listener stays open, refusing every new WebSocket with 503 (on_confirm_upgrade):
     * lws 4.1.6's lws_context_deprecate(), which would close it, frees the listen wsi while
     * still walking it (valgrind), see docs/DESIGN.md. */
    on_drain_tick(&gw->drain_tick);
}

/* lws 4.1.6's libev plugin arms its one ev_timer only when idle after I/O, and re-arming it
 * while it is active does nothing: an lws timer (lws_sul_schedule, lws_set_timer_usecs) due
 * sooner than the armed one waits for it, or for unrelated I/O. A wake-up every
 * TIMER_KICK_S bounds that lateness: any wake-up makes lws run its due timers. */
#define TIMER_KICK_S 0.01

static void
on_timer_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    lws_cancel_service(lws_container_of(w, struct jw_gateway, timer_kick)->ctx);
}

int
jw_gateway_run(struct jw_gateway *gw)
{
    ev_timer_init(&gw->timer_kick, on_timer_kick, TIMER_KICK_S, TIMER_KICK_S);
    ev_timer_start(gw->loop, &gw->timer_kick);
    ev_run(gw->loop, 0); /* until the drain ends: ev_break in on_drain_tick */
    ev_timer_stop(gw->loop, &gw->timer_kick);
    lws_sul_cancel(&gw->drain_tick);
    jw_live_stop(gw->live);
    return 0;
}

void
jw_gateway_request_stop(struct jw_gateway *gw, int fast)
{
    /* The first request decides the window, except that SIGINT may shorten a SIGTERM drain
     * before it starts. */
    int expected = 0;
    if (!atomic_compare_exchange_strong(&gw->stop_requested, &expected,
                                        fast ? JW_STOP_FAST : JW_STOP_DRAIN) &&
        fast)
        atomic_store(&gw->stop_requested, JW_STOP_FAST);
    lws_cancel_service(gw->ctx);
}

void
jw_gateway_free(struct jw_gateway *gw)
{
    if (!gw)
        return;
    if (gw->ctx)
        lws_context_destroy(gw->ctx); /* closes what is left; sessions leave the hub */
    if (gw->loop)
        ev_loop_destroy(gw->loop); /* after lws, which stops its watchers on destroy */
    jw_inbox_free(gw->inbox, dispose_msg);
    jw_live_free(gw->live);
    jw_session_env_destroy(&gw->env);
    jw_auth_free(gw->auth);
    free(gw);
}

void
jw_gateway_post_event(struct jw_gateway *gw, struct jw_event *ev)
{
    int rc = jw_inbox_push(gw->inbox, &ev->msg, 1);
    if (rc < 0) {
        jw_metric_add(JW_M_EVENTS_INBOX_FULL, 1);
        jw_event_free(ev);
        return;
    }
    if (rc == 1)
        lws_cancel_service(gw->ctx);
}

void
jw_gateway_post_reply(struct jw_gateway *gw, struct jw_redis_request *req)
{
    /* Unbounded: every reply answers a request the gateway made and is waiting for. */
    if (jw_inbox_push(gw->inbox, &req->msg, 0) == 1)
        lws_cancel_service(gw->ctx);
}

void
jw_gateway_attach_upstream(struct jw_gateway *gw, struct jw_upstream *up)
{
    gw->env.upstream = up;
}

void
jw_gateway_post_link_state(struct jw_gateway *gw, enum jw_link_state state)
{
    atomic_store(&gw->link_state, (int)state);
    /* Also in order with the events, for the clients' pause/resume and the resync. */
    struct link_msg *m = jw_calloc(1, sizeof(*m));
    m->msg.type = JW_MSG_LINK_STATE;
    m->state = state;
    if (jw_inbox_push(gw->inbox, &m->msg, 0) == 1)
        lws_cancel_service(gw->ctx);
}
