/*
 * Private to the session modules: session.c (lifecycle, I/O, dispatch), session_auth.c
 * (admission, authentication, expiry, the session's timer), session_subscribe.c (subscriptions
 * and snapshots) and session_sse.c (the Server-Sent Events transport). Nothing outside these
 * files includes this header.
 */
#ifndef JOBWIRE_SESSION_INTERNAL_H
#define JOBWIRE_SESSION_INTERNAL_H

#include <libwebsockets.h>

#include "auth.h"
#include "protocol.h"
#include "session.h"
#include "../redis/snapshot.h"

#define JW_SESSION_MOD "session"

enum { S_AWAIT_AUTH = 0, S_CHECKING, S_ACTIVE };

/* A live event frame held back while a subscribe waits for its snapshots. */
struct jw_held_frame {
    struct jw_frame *frame; /* one reference */
    size_t job;             /* index into the op's cmd.jobs */
};

/* A step that waits for Redis: a revocation check, or the snapshots of a subscribe. It owns the
 * session's input until it ends (further messages are held, in order). */
struct jw_session_op {
    enum { OP_AUTH, OP_SUBSCRIBE } kind;
    struct jw_session *s;
    struct jw_cmd cmd;             /* the request being answered */
    struct jw_principal principal; /* OP_AUTH: the verified token's principal */
    unsigned outstanding;          /* requests not yet answered */
    unsigned refused;              /* revoked token, or jobs owned by someone else */
    unsigned unavailable;          /* requests Redis could not answer */
    /* OP_SUBSCRIBE, one entry per job of cmd */
    uint32_t serial;            /* names the op in its marker channels */
    struct jw_snapshot *snaps;  /* filled as the EXEC replies come */
    uint8_t *marker_seen;       /* the job's marker came back on the subscription */
    uint8_t *added;             /* this op created the job's subscription */
    struct jw_held_frame *held; /* live frames of the op's jobs, in arrival order */
    size_t nheld, held_cap, held_bytes;
    lws_sorted_usec_list_t grace; /* how long to wait for markers after the last reply */
    uint8_t grace_over;
};

uint64_t jw_session_now_ms(void);
void jw_session_close_later(struct jw_session *s, uint16_t code, const char *reason);
int jw_session_enqueue(struct jw_session *s, struct jw_frame *f);
void jw_session_send_owned(struct jw_session *s, struct jw_frame *f);
void jw_session_send_error(struct jw_session *s, const char *id, const char *code,
                           const char *message);
/* One client message, as if it had arrived now (held while an op runs). */
void jw_session_handle_message(struct jw_session *s, const char *text, size_t len);
/* A new op of `kind` for the session (which must have none). */
struct jw_session_op *jw_session_op_new(struct jw_session *s, int kind);
/* Ends the session's op and applies the client messages held meanwhile. */
void jw_session_end_op(struct jw_session *s);
/* The session a Redis request was made for, or NULL when it has gone. */
struct jw_session *jw_session_by_tag(struct jw_session_env *env, uint64_t tag);

/* session_auth.c */
void jw_session_handle_auth(struct jw_session *s, const struct jw_cmd *cmd);
/* On ESTABLISHED, after admission: dev_auth, a handshake token, or wait for an auth message.
 * Returns 0 or -1 (close now). */
int jw_session_begin_auth(struct jw_session *s);
void jw_session_client_address(const struct jw_session_env *env, struct lws *wsi, char *out,
                               size_t size);
/* Sets the wsi timer to the earliest of the session's deadline and its SSE heartbeat. */
void jw_session_rearm(struct jw_session *s);

/* session_subscribe.c */
void jw_session_handle_subscribe(struct jw_session *s, struct jw_cmd *cmd);
void jw_session_handle_unsubscribe(struct jw_session *s, const struct jw_cmd *cmd);
/* Holds `ev` when the session's subscribe op is waiting for its job's snapshot: 1 = held. */
int jw_session_hold_event(struct jw_session *s, const struct jw_event *ev);
void jw_session_free_subscribe_op(struct jw_session_op *op);

/* session_sse.c */
int jw_session_sse_writeable(struct jw_session *s);
/* When the heartbeat is next due (monotonic ms); UINT64_MAX for none. */
uint64_t jw_session_sse_heartbeat_at(const struct jw_session *s, uint64_t now);
/* On the session's timer: asks for a comment line when the stream has been idle long enough. */
void jw_session_sse_timer(struct jw_session *s, uint64_t now);
/* 1 when the request carries a Last-Event-ID (a reconnecting EventSource). */
int jw_session_sse_resumed(struct lws *wsi);
/* Frees the environment's SSE write buffer. */
void jw_session_sse_env_destroy(struct jw_session_env *env);

#endif
