/*
 * Sessions: one client each, over a WebSocket (/ws) or a Server-Sent Events stream (/events),
 * and the registry that holds them all. A session is admitted, authenticated, joins the hub,
 * queues the frames it gets, writes them, and asks Redis (through sync.h and redis.h) for what
 * its requests need. struct jw_session is opaque outside the session files (session*.c); lws
 * per-session memory holds a pointer to it.
 *
 *   ESTABLISHED ──(dev_auth, or a token in the handshake)──────────────┐
 *        │                                                             ▼
 *        └──> AWAIT_AUTH ──auth message──> CHECKING (revocation) ──> ACTIVE
 *                  │ (auth_timeout_ms)          │ (revoked)            │ (exp passes, revoked
 *                  ▼                            ▼                      ▼  refresh, limits)
 *              close 4401                   close 4403              close 4401/4403/4429
 *
 * Lifetime: jw_session_open() on ESTABLISHED (or when an SSE stream starts) allocates;
 * jw_session_closed() on CLOSED frees. A session is never freed from inside routing, a Redis
 * answer or a write: one that must go is marked, and lws closes it from its own callback
 * (STYLE.md 7). Redis answers name sessions by id, never by pointer.
 *
 * Everything here runs on the gateway thread.
 */
#ifndef JOBWIRE_GATEWAY_SESSION_H
#define JOBWIRE_GATEWAY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub.h"
#include "jobwire/config.h"
#include "jobwire/redis.h"

struct lws;
struct ev_loop;
struct jw_auth;
struct jw_sync;
struct jw_window;
struct jw_session;
struct jw_sessions;

/* Close codes of the protocol (docs/PROTOCOL.md). */
#define JW_CLOSE_GOING_AWAY 1001
#define JW_CLOSE_POLICY 1008 /* SSE only: a query the server refused (see the error event) */
#define JW_CLOSE_TRY_AGAIN 1013
#define JW_CLOSE_SLOW_CONSUMER 4008
#define JW_CLOSE_UNAUTHENTICATED 4401
#define JW_CLOSE_FORBIDDEN 4403
#define JW_CLOSE_TOO_MANY 4429

enum jw_transport { JW_TRANSPORT_WEBSOCKET = 0, JW_TRANSPORT_SSE = 1 };

/* Flags of jw_session_admit(). */
#define JW_ADMIT_SSE 1u   /* no inbound channel: a token must come with the request */
#define JW_ADMIT_ADMIN 2u /* the request needs the admin role (an SSE stream of scope=all) */

/* What the registry uses; every pointer must outlive it. */
struct jw_session_deps {
    const struct jw_config *cfg;
    struct ev_loop *loop;
    struct jw_hub *hub;
    struct jw_upstream *upstream;
    const struct jw_auth *auth;
    struct jw_sync *sync;
    struct jw_window *window;
};

struct jw_sessions *jw_sessions_new(const struct jw_session_deps *deps);
/* Every session must have been closed. */
void jw_sessions_free(struct jw_sessions *reg);
size_t jw_sessions_count(const struct jw_sessions *reg);

/* ---- from the lws callbacks ---------------------------------------------------------- */

/* Decides on an upgrade or an SSE request before it is accepted (`flags`: JW_ADMIT_*).
 * Returns 0, or an HTTP status (401, 403, 429) with a static reason in `why`. */
unsigned jw_session_admit(struct jw_sessions *reg, struct lws *wsi, unsigned flags,
                          const char **why);
/* Opens an admitted session while the request headers are still attached; NULL with an HTTP
 * status in *status when it cannot be (429: the address holds max_connections_per_ip; 401: the
 * token expired since admission). A WebSocket is then closed by returning -1 to lws. */
struct jw_session *jw_session_open(struct jw_sessions *reg, struct lws *wsi,
                                   enum jw_transport transport, unsigned *status);
/* A WebSocket message (or a piece of one). 0, or -1 when lws must close the connection. */
int jw_session_receive(struct jw_session *s, const void *in, size_t len);
/* The connection can take bytes. 0, or -1 when lws must close it now. */
int jw_session_writeable(struct jw_session *s);
/* The client sent a close frame with `code` (for the close line of the log). */
void jw_session_peer_closed(struct jw_session *s, uint16_t code);
/* A PONG came: the keepalive starts over (ws_ping_interval_s from now). */
void jw_session_pong(struct jw_session *s);
/* The connection is gone: leaves the hub and the registry, and frees the session. */
void jw_session_closed(struct jw_session *s);

/* ---- SSE (session_sse.c) --------------------------------------------------------------- */

/* The subscribe message an SSE request's query names (jobs=a,b or scope=user|all, optional
 * kinds=, the Last-Event-ID header or ?lastEventId=), validated like a client message: 0 with
 * the text in *text (free() it) and JW_ADMIT_ADMIN added to *flags for scope=all, or 400 with a
 * reason in why_buf. */
unsigned jw_session_sse_query(const struct jw_sessions *reg, struct lws *wsi, char **text,
                              unsigned *flags, char *why_buf, size_t why_size);
/* Applies that subscribe message to an open SSE session, as its first client message. */
void jw_session_sse_subscribe(struct jw_session *s, const char *text);

/* ---- from the loop ----------------------------------------------------------------------- */

/* Writes what the sessions queued during this loop turn (before the loop blocks). */
void jw_sessions_flush(struct jw_sessions *reg);
/* Once a second: closes clients whose queue made no progress for client_stall_timeout_s, sends
 * the keepalive PINGs that are due and hangs up on clients that did not answer the last one. */
void jw_sessions_tick(struct jw_sessions *reg);

/* ---- from the router and sync ------------------------------------------------------------ */

/* The hub's deliver callback (ctx: the registry): queues the event's frame on the session. */
void jw_session_deliver(void *ctx, struct jw_member *m, struct jw_event *ev);
/* Tells every authenticated session that live updates pause (the subscription was lost). */
void jw_sessions_pause(struct jw_sessions *reg);
/* Fresh snapshots of everything each session watches (after an outage). */
void jw_sessions_resync(struct jw_sessions *reg);
/* Fresh snapshots for the sessions that got an unavailable one. */
void jw_sessions_retry(struct jw_sessions *reg);

/* ---- drain ------------------------------------------------------------------------------- */

/* Tells up to `n` sessions not told yet to reconnect elsewhere (goaway with a delay drawn from
 * [0, max_delay_ms)), closing each with 1001 once the goaway is out. Returns how many it told. */
size_t jw_sessions_goaway(struct jw_sessions *reg, size_t n, uint32_t max_delay_ms);

#endif
