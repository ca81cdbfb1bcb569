/*
 * The gateway thread's parts, shared by the files that face lws and the loop: gateway.c (the
 * loop, the lws context and its one callback), http.c (the HTTP endpoints and SSE requests)
 * and router.c (the inbox). Each field says which file writes it; the modules it points to
 * (sessions, sync, health, hub, window) keep their own state behind their own headers.
 *
 *   Redis thread ──> inbox ──> router ──> window, hub ──> sessions ──> writer ──> sockets
 *                                 │                           ▲
 *                                 └─> sync (markers, liveness)┘   health (probe, readiness)
 */
#ifndef JOBWIRE_GATEWAY_PRIVATE_H
#define JOBWIRE_GATEWAY_PRIVATE_H

#include <ev.h>
#include <libwebsockets.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "drain.h"
#include "jobwire/config.h"
#include "jobwire/gateway.h"
#include "jobwire/inbox.h"
#include "jobwire/redis.h"

struct jw_auth;
struct jw_hub;
struct jw_window;
struct jw_sync;
struct jw_health;
struct jw_sessions;

enum { PROTO_HTTP = 0, PROTO_WS, PROTO_COUNT };
enum { MOUNT_HEALTHZ = 0, MOUNT_READYZ, MOUNT_METRICS, MOUNT_EVENTS, MOUNT_WEB, MOUNT_COUNT };

struct jw_gateway {
    const struct jw_config *cfg;
    /* gateway.c */
    struct ev_loop *loop;   /* lws' event loop, owned; runs only inside jw_gateway_run */
    void *foreign_loops[1]; /* {loop}, read by lws_create_context */
    struct lws_context *ctx;
    struct lws_vhost *admin_vhost; /* admin_port's listener; NULL when off */
    ev_async wake;                 /* the inbox is no longer empty (any thread) */
    ev_prepare flush;              /* before the loop blocks: write what was queued */
    ev_timer tick;                 /* once a second while connections exist */
    ev_signal sigterm, sigint;
    struct lws_protocols protocols[PROTO_COUNT + 1];
    struct lws_http_mount mounts[MOUNT_COUNT], admin_mounts[MOUNT_EVENTS];
    struct lws_protocol_vhost_options pvo, pvo_default;
    lws_retry_bo_t no_validity; /* all zero: lws keeps no validity timer (session.c pings) */
    char web_root[PATH_MAX];
    char listen_iface[64], admin_iface[64];
    /* the parts, created by gateway.c */
    struct jw_inbox *inbox; /* router.c takes; the Redis thread pushes (jw_gateway_post_*) */
    struct jw_upstream *upstream;
    struct jw_auth *auth;
    struct jw_hub *hub;
    struct jw_window *window;
    struct jw_sync *sync;
    struct jw_health *health;
    struct jw_sessions *sessions;
    struct jw_drain drain;
};

/* router.c: takes everything in the inbox and hands it on. */
void jw_router_run(struct jw_gateway *gw);
/* Frees a message left in the inbox at shutdown. */
void jw_router_dispose(struct jw_msg *msg);

/* http.c: the per-connection memory of both protocols (a WebSocket's or an SSE stream's
 * session lives on the heap; plain requests keep their reply here until it is written). */
struct jw_conn {
    struct jw_session *session;
    char *reply; /* an HTTP answer's body, until HTTP_WRITEABLE */
    size_t reply_len;
};
int jw_http_request(struct jw_gateway *gw, struct lws *wsi, struct jw_conn *conn, bool admin);
int jw_http_writeable(struct lws *wsi, struct jw_conn *conn);
/* Refuses a WebSocket upgrade that is not to /ws or that admission turns down. */
int jw_http_confirm_upgrade(struct jw_gateway *gw, struct lws *wsi, bool admin);
void jw_http_count_refusal(unsigned status);

#endif
