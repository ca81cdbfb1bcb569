/*
 * The gateway thread (see gateway.h): the libev loop, the lws context on it, and the one lws
 * callback that serves both protocols — "http" (health, metrics, SSE, static files) and
 * "jobwire.v1" (WebSocket sessions, the vhost default so that clients need not name it).
 *
 * Watchers of the loop, besides lws' own:
 *   wake    ev_async: the Redis thread queued something (router.c takes the inbox);
 *   flush   ev_prepare: before the loop blocks, the sessions write what they queued;
 *   tick    once a second while connections exist: stalled clients, and a wake-up for lws' own
 *           timers (see on_tick); none at all when idle;
 *   signals SIGTERM drains, SIGINT drains faster (no async signal handler touches state).
 *
 * Both protocols have the same per-connection memory (struct jw_conn: a pointer to the session
 * and an HTTP reply), so a WebSocket bound to the "http" protocol — lws 4.1.6 does that for an
 * upgrade accepted before its first loop turn, when the vhost's default protocol is not in force
 * yet — is served all the same, and nothing ever writes past a smaller allocation.
 */
#include "jobwire/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "gateway_private.h"
#include "health.h"
#include "hub.h"
#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "session.h"
#include "sync.h"
#include "window.h"

#define MOD "gateway"
#define TICK_S 1.0
/* lws' receive buffer, allocated for the life of every WebSocket connection. Client messages
 * are small; a longer one (up to client_max_message_bytes) reaches jw_session_receive in pieces,
 * which it reassembles. 256 is also the least client_max_message_bytes allowed. */
#define WS_RX_BUFFER_BYTES 256
/* The most lws sends in one send(): without it lws caps a send at rx_buffer_size + LWS_PRE,
 * which would split every event over 256 bytes in two (session_write.c batches up to 64 KiB). */
#define WS_TX_PACKET_BYTES (256 * 1024)

/* permessage-deflate (RFC 7692), opt-in: each connection's zlib streams are bounded by
 * deflate_mem_level and deflate_window_bits on ESTABLISHED, before the first frame is
 * compressed. */
static const struct lws_extension deflate_extension[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL},
};

static struct jw_gateway *
gateway_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
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

/* The session of a connection ends: lws may free the per-connection memory after this. */
static void
release(struct jw_conn *conn)
{
    if (!conn)
        return;
    free(conn->reply);
    conn->reply = NULL;
    if (conn->session) {
        jw_session_closed(conn->session);
        conn->session = NULL;
    }
}

static int
on_lws_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct jw_conn *conn = user;
    struct jw_gateway *gw;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        gw = gateway_of(wsi);
        return jw_http_request(gw, wsi, conn, lws_get_vhost(wsi) == gw->admin_vhost);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (conn && conn->session)
            return jw_session_writeable(conn->session);
        return conn ? jw_http_writeable(wsi, conn) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: /* lws may free the memory after either */
        release(conn);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        gw = gateway_of(wsi);
        return jw_http_confirm_upgrade(gw, wsi, lws_get_vhost(wsi) == gw->admin_vhost);

    case LWS_CALLBACK_ESTABLISHED: {
        unsigned status;
        gw = gateway_of(wsi);
        if (!conn)
            return -1;
        if (gw->cfg->permessage_deflate)
            bound_deflate(gw->cfg, wsi);
        conn->session = jw_session_open(gw->sessions, wsi, JW_TRANSPORT_WEBSOCKET, &status);
        return conn->session ? 0 : -1;
    }
    case LWS_CALLBACK_RECEIVE:
        return conn && conn->session ? jw_session_receive(conn->session, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return conn && conn->session ? jw_session_writeable(conn->session) : 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (conn && conn->session)
            jw_session_pong(conn->session);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (conn && conn->session && len >= 2)
            jw_session_peer_closed(conn->session, (uint16_t)(((unsigned char *)in)[0] << 8 |
                                                             ((unsigned char *)in)[1]));
        return 0;
    case LWS_CALLBACK_CLOSED:
        release(conn);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        return 0; /* our own wake-ups: the tick (non-zero would close lws' wake pipe) */
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

/* ---- the loop's watchers ---------------------------------------------------------------- */

static void
on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    jw_router_run(w->data);
}

static void
on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_gateway *gw = w->data;
    jw_sessions_flush(gw->sessions);
    /* The tick runs only while there are connections: an idle bridge does not wake. */
    bool want = jw_sessions_count(gw->sessions) > 0;
    if (want && !ev_is_active(&gw->tick))
        ev_timer_again(gw->loop, &gw->tick);
    else if (!want && ev_is_active(&gw->tick))
        ev_timer_stop(gw->loop, &gw->tick);
}

/* lws 4.1.6's libev plugin arms its one ev_timer only when that timer is idle, so an lws timer
 * due sooner than the armed one (a handshake timeout) waits for it or
 * for unrelated I/O. Waking lws once a second, only while connections exist, bounds that. */
static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_gateway *gw = w->data;
    jw_sessions_tick(gw->sessions);
    lws_cancel_service(gw->ctx);
}

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct jw_gateway *gw = w->data;
    jw_health_set_draining(gw->health);
    jw_drain_begin(&gw->drain, w->signum == SIGINT);
}

static void
on_drained(void *ctx)
{
    struct jw_gateway *gw = ctx;
    ev_break(gw->loop, EVBREAK_ALL); /* jw_gateway_run returns */
}

/* sync's hooks: what it decides, done to every session */
static void
sync_pause(void *ctx)
{
    jw_sessions_pause(((struct jw_gateway *)ctx)->sessions);
}

static void
sync_resync(void *ctx)
{
    jw_sessions_resync(((struct jw_gateway *)ctx)->sessions);
}

static void
sync_retry(void *ctx)
{
    jw_sessions_retry(((struct jw_gateway *)ctx)->sessions);
}

/* ---- lifetime -------------------------------------------------------------------------------- */

struct jw_gateway *
jw_gateway_new(const struct jw_config *cfg)
{
    struct jw_gateway *gw = jw_calloc(1, sizeof(*gw));
    gw->cfg = cfg;
    gw->inbox = jw_inbox_new(cfg->inbox_max_events);
    gw->loop = ev_loop_new(EVFLAG_AUTO);
    if (!gw->loop) {
        jw_error(MOD, "cannot create the event loop");
        jw_gateway_free(gw);
        return NULL;
    }
    ev_async_init(&gw->wake, on_wake);
    gw->wake.data = gw;
    ev_async_start(gw->loop, &gw->wake);
    return gw;
}

static void
setup_mounts(struct jw_gateway *gw, struct lws_http_mount *m, size_t n, const char *root)
{
    static const char *const paths[] = {"/healthz", "/readyz", "/metrics", "/events"};
    for (size_t i = 0; i < n; i++) {
        m[i].mountpoint = paths[i];
        m[i].mountpoint_len = (unsigned char)strlen(paths[i]);
        m[i].origin = "http";
        m[i].origin_protocol = LWSMPRO_CALLBACK;
        m[i].mount_next = i + 1 < n ? &m[i + 1] : NULL;
    }
    if (!root)
        return;
    m[n - 1].mount_next = &m[n];
    m[n].mountpoint = "/";
    m[n].mountpoint_len = 1;
    m[n].origin = root;
    m[n].def = "index.html";
    m[n].origin_protocol = LWSMPRO_FILE;
    (void)gw;
}

/* One listener: the client vhost ("jobwire", every path) or the admin one (health, metrics). */
static struct lws_vhost *
listen_on(struct jw_gateway *gw, const char *name, const char *address, int port, char *iface_buf,
          size_t iface_size, const struct lws_http_mount *mounts, bool clients)
{
    struct lws_context_creation_info info;
    struct in_addr v4;
    memset(&info, 0, sizeof(info));
    const char *iface = strcmp(address, "localhost") == 0 ? "127.0.0.1" : address;
    snprintf(iface_buf, iface_size, "%s", iface);
    info.vhost_name = name;
    info.iface = iface_buf;
    info.port = port;
    if (inet_pton(AF_INET, iface, &v4) == 1)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6; /* else lws binds every v6 address */
    info.options |= LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV;
    info.protocols = gw->protocols;
    info.mounts = mounts;
    info.timeout_secs = 10;
    if (clients) {
        info.pvo = &gw->pvo;
        if (gw->cfg->permessage_deflate)
            info.extensions = deflate_extension;
        /* No lws keepalive: lws 4.1.6 keeps every connection's validity timer in one sorted
         * list that each new connection and each PONG walks whole, O(connections) per PONG
         * (78 % of the CPU of 10,000 idle connections, bench/RESULTS.md). Without a policy lws
         * would still use its context default (PING after 300 s). session.c pings instead. */
        info.retry_and_idle_policy = &gw->no_validity;
    }
    struct lws_vhost *vh = lws_create_vhost(gw->ctx, &info);
    if (!vh)
        jw_error(MOD, "cannot listen on %s:%d", address, port);
    return vh;
}

int
jw_gateway_check(const struct jw_config *cfg, char *err, size_t errlen)
{
    char where[PATH_MAX];
    struct stat st;
    struct jw_auth *auth = jw_auth_new(cfg, err, errlen);
    if (!auth)
        return -1;
    jw_auth_free(auth);
    if (!cfg->web_root[0])
        return 0;
    errno = 0;
    if (!realpath(cfg->web_root, where) || stat(where, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "web_root %s: %s", cfg->web_root,
                 errno ? strerror(errno) : "not a directory");
        return -1;
    }
    return 0;
}

int
jw_gateway_start(struct jw_gateway *gw, struct jw_upstream *up)
{
    const struct jw_config *cfg = gw->cfg;
    char err[256];
    gw->upstream = up;
    gw->auth = jw_auth_new(cfg, err, sizeof(err));
    if (!gw->auth) {
        jw_error(MOD, "cannot load the JWT keys: %s", err);
        return -1;
    }
    gw->hub = jw_hub_new();
    gw->window = jw_window_new((size_t)cfg->resume_window_events, cfg->resume_window_bytes);
    struct jw_sync_hooks hooks = {
        .pause = sync_pause, .resync = sync_resync, .retry = sync_retry, .ctx = gw};
    gw->sync = jw_sync_new(cfg, gw->loop, up, &hooks);
    gw->health = jw_health_new(cfg, gw->loop, up, gw->sync);
    struct jw_session_deps deps = {cfg, gw->loop, gw->hub, up, gw->auth, gw->sync, gw->window};
    gw->sessions = jw_sessions_new(&deps);
    jw_drain_init(&gw->drain, cfg, gw->loop, gw->sessions, on_drained, gw);

    if (cfg->web_root[0] && !realpath(cfg->web_root, gw->web_root)) {
        jw_error(MOD, "web_root %s: %s", cfg->web_root, strerror(errno));
        return -1;
    }
    setup_mounts(gw, gw->mounts, MOUNT_EVENTS + 1, gw->web_root[0] ? gw->web_root : NULL);
    setup_mounts(gw, gw->admin_mounts, MOUNT_EVENTS, NULL);
    gw->protocols[PROTO_HTTP] = (struct lws_protocols){
        .name = "http", .callback = on_lws_event, .per_session_data_size = sizeof(struct jw_conn)};
    gw->protocols[PROTO_WS] =
        (struct lws_protocols){.name = "jobwire.v1",
                               .callback = on_lws_event,
                               .per_session_data_size = sizeof(struct jw_conn),
                               .rx_buffer_size = WS_RX_BUFFER_BYTES,
                               .tx_packet_size = WS_TX_PACKET_BYTES};
    /* A client that names no sub-protocol is bound to the vhost default. */
    gw->pvo_default = (struct lws_protocol_vhost_options){.name = "default", .value = "1"};
    gw->pvo = (struct lws_protocol_vhost_options){
        .options = &gw->pvo_default, .name = "jobwire.v1", .value = ""};

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    gw->foreign_loops[0] = gw->loop;
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = gw->foreign_loops;
    /* Room for an Authorization header with a large JWT, or a long SSE query: longer ones are
     * refused with a status of ours (401, 400, 414), not dropped by lws. */
    info.max_http_header_data = 24576;
    info.user = gw;
    lws_set_log_level(LLL_ERR | LLL_WARN, on_lws_log);
    gw->ctx = lws_create_context(&info);
    if (!gw->ctx) {
        jw_error(MOD, "cannot create the libwebsockets context (is Debian's "
                      "libwebsockets-evlib-ev installed? lws needs its libev plugin)");
        return -1;
    }
    if (!listen_on(gw, "jobwire", cfg->listen_address, cfg->listen_port, gw->listen_iface,
                   sizeof gw->listen_iface, gw->mounts, true))
        return -1;
    if (cfg->admin_port) {
        gw->admin_vhost = listen_on(
            gw, "admin",
            cfg->admin_listen_address[0] ? cfg->admin_listen_address : cfg->listen_address,
            cfg->admin_port, gw->admin_iface, sizeof gw->admin_iface, gw->admin_mounts, false);
        if (!gw->admin_vhost)
            return -1;
    }

    ev_prepare_init(&gw->flush, on_flush);
    gw->flush.data = gw;
    ev_prepare_start(gw->loop, &gw->flush);
    ev_init(&gw->tick, on_tick);
    gw->tick.repeat = TICK_S;
    gw->tick.data = gw;
    ev_signal_init(&gw->sigterm, on_signal, SIGTERM);
    ev_signal_init(&gw->sigint, on_signal, SIGINT);
    gw->sigterm.data = gw->sigint.data = gw;
    ev_signal_start(gw->loop, &gw->sigterm);
    ev_signal_start(gw->loop, &gw->sigint);

    jw_info(MOD, "listening on %s:%d (WebSocket /ws, SSE /events%s%s)%s", cfg->listen_address,
            cfg->listen_port, gw->web_root[0] ? ", web root " : "", gw->web_root,
            cfg->admin_port ? "; health and metrics on the admin port" : "");
    if (cfg->dev_auth)
        jw_warn(MOD, "dev_auth is on: clients choose their own user id; never use this "
                     "in production");
    else if (!jw_auth_enabled(gw->auth))
        jw_warn(MOD, "no JWT key configured and dev_auth off: every client will be refused");
    return 0;
}

int
jw_gateway_run(struct jw_gateway *gw)
{
    ev_run(gw->loop, 0); /* until the drain ends */
    ev_timer_stop(gw->loop, &gw->tick);
    ev_prepare_stop(gw->loop, &gw->flush);
    ev_signal_stop(gw->loop, &gw->sigterm);
    ev_signal_stop(gw->loop, &gw->sigint);
    jw_drain_stop(&gw->drain);
    return 0;
}

void
jw_gateway_free(struct jw_gateway *gw)
{
    if (!gw)
        return;
    if (gw->ctx)
        lws_context_destroy(gw->ctx); /* closes what is left: sessions leave the hub */
    /* The parts stop their watchers: the loop goes last (lws stopped its own on destroy). */
    jw_inbox_free(gw->inbox, jw_router_dispose);
    jw_health_free(gw->health);
    jw_sync_free(gw->sync);
    jw_sessions_free(gw->sessions);
    jw_window_free(gw->window);
    jw_hub_free(gw->hub);
    jw_auth_free(gw->auth);
    if (gw->loop) {
        ev_async_stop(gw->loop, &gw->wake);
        ev_loop_destroy(gw->loop);
    }
    free(gw);
}
