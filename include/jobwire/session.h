/*
 * One WebSocket client: its principal, hub membership, outbound queue and sequence numbers.
 * Sessions live in the lws per-session memory of the ws protocol (lws allocates and frees it);
 * every function here runs on the gateway thread, from the gateway's lws callback.
 *
 * Lifetime: jw_session_open() on ESTABLISHED, jw_session_closed() on CLOSED. A session is never
 * freed from inside hub routing: a session that must go is marked (`closing`), and closes itself
 * on its next WRITEABLE callback by returning -1 to lws (STYLE.md 7).
 */
#ifndef JOBWIRE_SESSION_H
#define JOBWIRE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/config.h"
#include "jobwire/hub.h"
#include "jobwire/outq.h"

struct lws;

/* State shared by all sessions; owned by the gateway. */
struct jw_session_env {
    const struct jw_config *cfg;
    struct jw_hub *hub;
    struct jw_session *all; /* every open session, for shutdown */
    uint32_t next_id;
};

struct jw_session {
    struct jw_member member; /* hub membership; member.owner == this */
    struct jw_outq outq;
    struct lws *wsi;
    struct jw_session_env *env;
    struct jw_session *prev, *next; /* env->all */
    char *user_id;
    char *partial; /* a fragmented client message being reassembled */
    size_t partial_len;
    uint64_t seq; /* last sequence number stamped on an event frame */
    uint32_t id;
    uint16_t close_code; /* non-zero: close with this code on the next WRITEABLE */
    uint8_t open;        /* between jw_session_open and jw_session_closed */
};

/* The principal of a connection being upgraded, from the handshake. Returns 0 and fills
 * user/admin, or -1 with a reason in `why` (a static string). */
int jw_session_authenticate(const struct jw_session_env *env, struct lws *wsi, char *user,
                            size_t user_size, int *admin, const char **why);
/* Each returns 0, or -1 when lws must close the connection now. */
int jw_session_open(struct jw_session_env *env, struct jw_session *s, struct lws *wsi);
int jw_session_receive(struct jw_session *s, const void *in, size_t len);
int jw_session_writeable(struct jw_session *s);
void jw_session_closed(struct jw_session *s);
/* The hub's deliver callback (ctx unused): queues the event's frame on the session. */
void jw_session_deliver(void *ctx, struct jw_member *m, struct jw_event *ev);
/* Marks every session to close with `code` and asks lws for a write turn on each. */
void jw_session_close_all(struct jw_session_env *env, uint16_t code);

#endif
