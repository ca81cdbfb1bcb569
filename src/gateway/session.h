/*
 * One client, over a WebSocket (/ws) or a Server-Sent Events stream (/events): admission,
 * authentication, its principal, hub membership, outbound queue and sequence numbers. WebSocket
 * sessions live in the lws per-session memory of the ws protocol (lws allocates and frees it);
 * SSE sessions are allocated by the gateway for the HTTP requests to /events only, so that the
 * HTTP protocol's per-session memory stays small. Every function here runs on the gateway
 * thread, from the gateway's lws callback or from the completion of a Redis request.
 *
 * An SSE session has no inbound channel: its subscription comes from the request's query and
 * is applied as if the client had sent it as its first message; a token must come with the
 * request. Everything else (hub, queue, conflation, snapshots, seq, expiry, drain) is shared;
 * only the writer differs (session_sse.c).
 *
 * States:
 *
 *   ESTABLISHED ──(dev_auth, or a token in the handshake)──────────────┐
 *        │                                                             ▼
 *        └──> AWAIT_AUTH ──auth message──> CHECKING (revocation) ──> ACTIVE
 *                  │ (auth_timeout_ms)          │ (revoked)            │ (exp passes, revoked
 *                  ▼                            ▼                      ▼  refresh, limits)
 *              close 4401                   close 4403              close 4401/4403/4429
 *
 * While a Redis request of the session is in flight (revocation check, job owner lookups),
 * further client messages are held in order and applied when it completes, so a client may
 * pipeline requests without seeing them reordered.
 *
 * Lifetime: jw_session_open() on ESTABLISHED, jw_session_closed() on CLOSED. A session is never
 * freed from inside hub routing or a Redis completion: a session that must go is marked
 * (`close_code`) and closes itself on its next WRITEABLE callback by returning -1 to lws
 * (STYLE.md 7). Redis requests name the session by id, never by pointer (rediscmd.h).
 */
#ifndef JOBWIRE_SESSION_H
#define JOBWIRE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "jobwire/config.h"
#include "hub.h"
#include "outq.h"

struct lws;
struct jw_upstream;
struct jw_auth;
struct jw_dict;

/* Close codes of the protocol (docs/PROTOCOL.md). */
#define JW_CLOSE_GOING_AWAY 1001
#define JW_CLOSE_POLICY 1008 /* SSE only: a query the server refused (see the error event) */
#define JW_CLOSE_TRY_AGAIN 1013
#define JW_CLOSE_SLOW_CONSUMER 4008
#define JW_CLOSE_UNAUTHENTICATED 4401
#define JW_CLOSE_FORBIDDEN 4403
#define JW_CLOSE_TOO_MANY 4429

/* State shared by all sessions; owned by the gateway. */
struct jw_session_env {
    const struct jw_config *cfg;
    struct jw_hub *hub;
    struct jw_upstream *upstream; /* where Redis requests go (rediscmd.h) */
    const struct jw_auth *auth;   /* token verifier; disabled when no key is configured */
    struct jw_session *all;       /* every open session, for shutdown */
    struct jw_dict *by_id;        /* "%08x" id -> session, for Redis completions */
    struct jw_counts *per_address;
    struct jw_counts *per_user;
    struct jw_cidr trusted[JW_CONFIG_MAX_PATTERNS];
    size_t ntrusted;
    char marker_prefix[192]; /* {channel_prefix}__jobwire__:{instance}: */
    uint8_t link_up;         /* the Redis subscription is active (markers can come back) */
    uint32_t next_id;
    uint32_t next_op_serial;
    unsigned char *sse_buf; /* where SSE writes are put together (session_sse.c) */
    size_t sse_buf_cap;
};

enum jw_transport { JW_TRANSPORT_WEBSOCKET = 0, JW_TRANSPORT_SSE = 1 };

/* Flags of jw_session_admit(). */
#define JW_ADMIT_SSE 1u   /* no inbound channel: a token must come with the request */
#define JW_ADMIT_ADMIN 2u /* the request needs the admin role (an SSE stream of scope=all) */

struct jw_session_op; /* private: the Redis-backed step in progress */
struct jw_held_input; /* private: client messages held while an op runs */

struct jw_session {
    struct jw_member member; /* hub membership, once ACTIVE; member.owner == this */
    struct jw_outq outq;
    struct lws *wsi;
    struct jw_session_env *env;
    struct jw_session *prev, *next; /* env->all */
    char *user_id;                  /* once ACTIVE */
    char *address;                  /* client address, counted in env->per_address */
    struct jw_session_op *op;
    struct jw_held_input *held, *held_tail;
    char *partial; /* a fragmented client message being reassembled */
    size_t partial_len;
    struct jw_bucket bucket; /* inbound message rate */
    int64_t expires_at;      /* token expiry, seconds; 0 = none (dev_auth) */
    uint64_t deadline_ms;    /* monotonic ms of the auth timeout or expiry; 0 = none */
    uint64_t seq;            /* last sequence number stamped on an event frame */
    uint64_t last_write_ms;  /* SSE: monotonic ms of the last write, for the heartbeat */
    uint32_t id;
    uint16_t close_code;      /* non-zero: close with this code on the next WRITEABLE */
    const char *close_reason; /* static string sent with close_code */
    uint8_t open;             /* between jw_session_open and jw_session_closed */
    uint8_t state;            /* enum in session.c */
    uint8_t user_counted;     /* holds a slot in env->per_user */
    uint8_t nheld;
    uint8_t transport;     /* enum jw_transport */
    uint8_t sse_hb_due;    /* SSE: idle for sse_heartbeat_s, a comment line is to go out */
    uint8_t sse_resumed;   /* SSE: the request carried Last-Event-ID */
    uint8_t sse_ended;     /* SSE: the final event is out, the response ends */
    uint16_t sse_end_code; /* SSE: an error was sent; end the stream once it is out */
};

/* `instance` names this process in marker channels (replicas share the channels). */
void jw_session_env_init(struct jw_session_env *env, const struct jw_config *cfg,
                         const struct jw_auth *auth, const char *instance);
void jw_session_env_destroy(struct jw_session_env *env);

/* Decides on an upgrade request, or an SSE request, before it is accepted (`flags`: JW_ADMIT_*).
 * Returns 0, or an HTTP status (401, 403, 429) with a static reason in `why`. */
unsigned jw_session_admit(struct jw_session_env *env, struct lws *wsi, unsigned flags,
                          const char **why);
/* Opens an admitted session while the request headers are still attached. Returns 0,
 * -EUSERS (the address holds max_connections_per_ip) or -EACCES (the token expired since
 * admission); a WebSocket is then closed by returning -1 to lws. */
int jw_session_open(struct jw_session_env *env, struct jw_session *s, struct lws *wsi,
                    enum jw_transport transport) __attribute__((warn_unused_result));
/* Each returns 0, or -1 when lws must close the connection now. */
int jw_session_receive(struct jw_session *s, const void *in, size_t len);
int jw_session_writeable(struct jw_session *s);
/* LWS_CALLBACK_TIMER: the auth deadline, the token expiry or the SSE heartbeat. */
int jw_session_timer(struct jw_session *s);
void jw_session_closed(struct jw_session *s);
/* The hub's deliver callback (ctx unused): queues the event's frame on the session. */
void jw_session_deliver(void *ctx, struct jw_member *m, struct jw_event *ev);
/* A marker of jobwire's own channel came back: `what` is "{session}:{op}:{job}". */
void jw_session_marker(struct jw_session_env *env, const char *what);
/* Queues a control frame for every authenticated session. */
void jw_session_broadcast(struct jw_session_env *env, struct jw_frame *f);
/* Tells the session to reconnect after `reconnect_after_ms` (elsewhere) and closes it with 1001
 * once the goaway frame is out. */
void jw_session_goaway(struct jw_session *s, uint32_t reconnect_after_ms);

/* session_sse.c. The subscribe message an SSE request's query names (jobs=a,b or scope=user|all,
 * optional kinds=progress,complete), validated like a client message: returns 0 with the text
 * in *text (free() it) and JW_ADMIT_ADMIN added to *flags for scope=all, or 400 with a reason in
 * why_buf. */
unsigned jw_session_sse_query(const struct jw_session_env *env, struct lws *wsi, char **text,
                              unsigned *flags, char *why_buf, size_t why_size);
/* Applies that subscribe message to an open SSE session, as its first client message. */
void jw_session_sse_subscribe(struct jw_session *s, const char *text);

#endif
