/*
 * Private to the session files: session.c (lifecycle, queue, input, ops), session_write.c (the
 * writer and the transports' framing), session_auth.c (admission, authentication, expiry),
 * session_subscribe.c (subscriptions, snapshots, resume, resync) and session_sse.c (the SSE
 * query and heartbeat). Nothing else includes this header.
 */
#ifndef JOBWIRE_GATEWAY_SESSION_PRIVATE_H
#define JOBWIRE_GATEWAY_SESSION_PRIVATE_H

#include <ev.h>
#include <libwebsockets.h>

#include "access.h"
#include "auth.h"
#include "jobwire/dict.h"
#include "outq.h"
#include "protocol.h"
#include "session.h"

#define JW_SESSION_MOD "session"

enum { S_AWAIT_AUTH = 0, S_CHECKING, S_ACTIVE };

struct jw_sessions {
    /* borrowed, see struct jw_session_deps */
    const struct jw_config *cfg;
    struct ev_loop *loop;
    struct jw_hub *hub;
    struct jw_upstream *upstream;
    const struct jw_auth *auth;
    struct jw_sync *sync;
    struct jw_window *window;
    /* owned */
    struct jw_session *all; /* every open session */
    size_t count;
    struct jw_dict *by_id; /* "%08x" id -> session, for Redis answers */
    struct jw_counts *per_address, *per_user;
    struct jw_cidr trusted[JW_CONFIG_MAX_PATTERNS];
    size_t ntrusted;
    struct jw_session *dirty; /* queued frames this loop turn, through dirty_next */
    uint32_t next_id, next_op_serial;
    unsigned char *wbuf; /* where writes are put together (one writer thread, one buffer) */
    size_t wbuf_cap;
    uint64_t rng; /* goaway jitter, the first keepalive PINGs spread */
};

/* A job of a subscribe or resync op, and what its read found. */
struct jw_op_job {
    char *id;
    unsigned old_kinds; /* its subscription's kinds before the op; 0 = none */
    uint8_t done;
    uint8_t by_scope;    /* listed by the job index, not named by the client */
    uint8_t contains;    /* an exact read found a state: the job's events before `position`
                            are in it */
    uint8_t refused;     /* the state names another user */
    uint8_t unavailable; /* Redis could not be asked */
    uint8_t visible;     /* the session may see the state */
    uint8_t send;        /* a snapshot goes out for it */
    uint8_t sent;
    uint64_t position;         /* what the snapshot reflects (the marker's entry number, else the
                                  op's start) */
    struct jw_job_state state; /* what the read found (owned), for the snapshot */
};

/* A step that waits for Redis. It owns the session's input until it ends (client messages are
 * held, in order). A subscribe or resync op also holds every event delivered meanwhile: they go
 * out after its snapshots, in entry-number order (session_subscribe.c). */
struct jw_session_op {
    enum { OP_AUTH, OP_SUBSCRIBE, OP_RESYNC } kind;
    uint32_t serial; /* names the op in Redis answers (with the session id) */
    struct jw_session *s;
    struct jw_cmd cmd;             /* the request being answered */
    struct jw_principal principal; /* OP_AUTH: the verified token's principal */
    unsigned outstanding;          /* Redis answers still to come */
    unsigned refused, unavailable;
    /* OP_SUBSCRIBE, OP_RESYNC */
    uint64_t start;       /* the entry number routed last when the op began holding */
    uint64_t resume_from; /* resume: replay from here (0: snapshots) */
    int8_t resumed;       /* the ack's "resumed": -1 absent, 0, 1 */
    uint8_t lookup;       /* the job index of a scope is still to be read */
    unsigned old_user_kinds, old_all_kinds;
    struct jw_op_job *jobs;
    size_t njobs, jobs_cap;
    struct jw_event **held; /* events delivered meanwhile, one reference each */
    size_t nheld, held_cap, held_bytes;
};

struct jw_held_input; /* private to session.c */

struct jw_session {
    struct jw_member member; /* hub membership, once ACTIVE; member.owner == this */
    struct jw_outq outq;
    struct lws *wsi;
    struct jw_sessions *reg;
    struct jw_session *prev, *next; /* reg->all */
    struct jw_session *dirty_next;
    char *user_id; /* once ACTIVE */
    char *address; /* what it is counted under in reg->per_address (jw_address_key) */
    struct jw_session_op *op;
    struct jw_held_input *held, *held_tail;
    char *partial; /* a fragmented client message being reassembled */
    size_t partial_len;
    struct jw_bucket bucket;     /* inbound message rate */
    ev_timer timer;              /* the deadline and the SSE heartbeat */
    int64_t expires_at;          /* token expiry, seconds; 0 = none (dev_auth) */
    uint64_t deadline_ms;        /* monotonic ms of the auth timeout or expiry; 0 = none */
    uint64_t seq;                /* the seq given to the last sequenced frame queued */
    uint64_t last_write_ms;      /* the last write (SSE heartbeat) */
    uint64_t progress_ms;        /* the queue was last empty or written from (stall check) */
    uint64_t opened_ms;          /* for the duration in the close line */
    uint64_t keepalive_ms;       /* WebSocket: the next PING, or while awaiting_pong the hang-up;
                                    0 = no keepalive */
    const char *end_reason;      /* why it ended when the server did not say (static) */
    uint16_t peer_code;          /* the close code the client sent, if it did */
    unsigned char *deflate_copy; /* the frame permessage-deflate may still be reading */
    char *resume_id;             /* SSE: Last-Event-ID of the request */
    uint32_t id;
    uint16_t close_code;      /* non-zero: close with this code once the queue is out */
    const char *close_reason; /* static string sent with close_code */
    uint16_t sse_end_code;    /* SSE: an error was sent; end the stream once it is out */
    uint8_t state;            /* S_* */
    uint8_t transport;        /* enum jw_transport */
    uint8_t user_counted;     /* holds a slot in reg->per_user */
    uint8_t nheld;
    uint8_t dirty;         /* on reg->dirty */
    uint8_t broken;        /* a write failed: lws is closing it */
    uint8_t told_goaway;   /* drain: goaway queued */
    uint8_t resync_wanted; /* a resync waits for the op in progress */
    uint8_t stale;         /* a snapshot came back unavailable: a retry is due */
    uint8_t deflate;       /* frames go through lws' permessage-deflate, one per turn */
    uint8_t sse_hb_due;    /* SSE: idle for sse_heartbeat_s, a comment line is to go out */
    uint8_t sse_ended;     /* SSE: the final event is out, the response ends */
    uint8_t ping_owed;     /* a PING goes out with the next write */
    uint8_t awaiting_pong; /* a PING is out and no PONG came since */
};

/* session.c */
uint64_t jw_session_now_ms(const struct jw_session *s);
/* Logs one line about the session, with its id (and user, once known) as fields. */
void jw_session_log(const struct jw_session *s, enum jw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the session to close with `code` once its queue is out. The first reason wins. */
void jw_session_close_later(struct jw_session *s, uint16_t code, const char *reason);
/* Queues a frame (taking a reference); `force` skips the queue limits (a request's own answer).
 * On overflow the session is closed as a slow consumer. 0 or -ENOBUFS. */
int jw_session_queue(struct jw_session *s, struct jw_frame *f, bool force);
/* Queues a control frame this session owns alone (drops the caller's reference). */
void jw_session_send(struct jw_session *s, struct jw_frame *f);
void jw_session_send_error(struct jw_session *s, const char *id, const char *code,
                           const char *message);
/* One client message, as if it had arrived now (held while an op runs). */
void jw_session_handle_message(struct jw_session *s, const char *text, size_t len);
/* A new op of `kind` for the session (which must have none). */
struct jw_session_op *jw_session_op_new(struct jw_session *s, int kind);
/* Ends the session's op, then starts a resync that waited, then applies held client input. */
void jw_session_end_op(struct jw_session *s);
/* The session a Redis answer was asked for, or NULL when it has gone. */
struct jw_session *jw_session_by_id(struct jw_sessions *reg, uint64_t id);
/* The op that `serial` names, if it is still the session's. */
struct jw_session_op *jw_session_op_of(struct jw_sessions *reg, uint64_t id, uint64_t serial);

/* session_write.c */
/* Writes what is queued, as much as the connection takes. 0, or -1 when it broke. */
int jw_session_flush(struct jw_session *s);
/* Marks the session to be flushed before the loop blocks. */
void jw_session_mark_dirty(struct jw_session *s);
void jw_sessions_free_wbuf(struct jw_sessions *reg);

/* session_auth.c */
void jw_session_handle_auth(struct jw_session *s, const struct jw_cmd *cmd);
/* After admission: dev_auth, a handshake token, or wait for an auth message. 0 or -1. */
int jw_session_begin_auth(struct jw_session *s);
void jw_session_client_address(const struct jw_sessions *reg, struct lws *wsi, char *out,
                               size_t size);
/* Refuses authentication: an error frame, then the close. */
void jw_session_refuse_auth(struct jw_session *s, const char *id, uint16_t code,
                            const char *reason);
/* The session's timer: the auth deadline, the token expiry or the SSE heartbeat. */
void jw_session_rearm(struct jw_session *s);
void jw_session_on_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* session_subscribe.c */
void jw_session_handle_subscribe(struct jw_session *s, struct jw_cmd *cmd);
void jw_session_handle_unsubscribe(struct jw_session *s, const struct jw_cmd *cmd);
/* Starts a resync op (fresh snapshots of everything the session watches). */
void jw_session_start_resync(struct jw_session *s);
/* Holds `ev` when the session's op holds deliveries: 1 = held. */
int jw_session_hold_event(struct jw_session *s, struct jw_event *ev);
void jw_session_free_sync_op(struct jw_session_op *op);

/* session_sse.c */
/* When the heartbeat is next due (monotonic ms); UINT64_MAX for none. */
uint64_t jw_session_sse_heartbeat_at(const struct jw_session *s, uint64_t now);
/* On the session's timer: asks for a comment line when the stream has been idle long enough. */
void jw_session_sse_timer(struct jw_session *s, uint64_t now);

#endif
