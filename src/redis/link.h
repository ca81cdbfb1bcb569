/*
 * Internal to upstream.c: one Redis connection and its state machine, shared by the two roles
 * the upstream thread runs (the PSUBSCRIBE link and the command link). Not a public API.
 *
 *   IDLE -> CONNECTING -> AUTHENTICATING -> (role states ... up_state)
 *              ^               |                       |
 *              +--- BACKOFF <--+-----------------------+   (jw_redislink_fail: any error/timeout)
 *
 * The link owns the transport (bufferevent, connect through evdns for names), the redisReader,
 * the connect and AUTH phases with their timeouts (AUTHENTICATING is the opening handshake:
 * AUTH, or a PING for a role that asks for it when there is no password), the jittered backoff and
 * the retry timer, the health-PING timer and the one `deadline` timer. Once connected and
 * authenticated it hands over to the role (`opened`), and from then on every complete reply goes to
 * the role (`reply`), as does the deadline (`timeout`) and the ping tick (`ping`). A role leaves
 * the link only through jw_redislink_fail() (→ BACKOFF, `closed` with -ENOTCONN) or
 * jw_redislink_stop() (→ STOPPED, `closed` with -ECANCELED).
 *
 * Threading: everything runs on the upstream loop thread, except that `state` is an atomic any
 * thread may read.
 */
#ifndef JOBWIRE_REDISLINK_H
#define JOBWIRE_REDISLINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "jobwire/config.h"
#include "jobwire/metrics.h"
#include "jobwire/redis.h"

struct event;
struct event_base;
struct evdns_base;
struct bufferevent;
struct redisReader;
struct redisReply;
struct ssl_ctx_st;
struct jw_redislink;

/* What a role supplies. Every callback runs on the loop thread; `l->owner` is the role's data.
 * Callbacks may call jw_redislink_fail(); after it they must not touch the transport again. */
struct jw_redislink_role {
    const char *log_prefix;        /* put before "redis host:port ..." in log lines; "" or text */
    enum jw_link_state up_state;   /* the role's working state (SUBSCRIBED, READY) */
    enum jw_metric_id m_up;        /* gauge set to 1 in up_state, else 0 */
    enum jw_metric_id m_errors;    /* counter of failures; JW_M__COUNT for none */
    enum jw_metric_id m_reconnect; /* counter of reconnect attempts; JW_M__COUNT for none */
    enum jw_metric_id m_too_large; /* counter of replies over the reader cap; JW_M__COUNT: none */
    /* Without a password, open with a PING (in AUTHENTICATING) so that the role only takes over
     * once a server has answered, not merely accepted the TCP connection. */
    bool probe;
    /* Before each connection attempt (not after jw_redislink_redirect): may set host, port,
     * tls_name, username, password. May be NULL (the target stays as it is). */
    void (*prepare)(struct jw_redislink *l);
    /* Connected and authenticated: send the role's first command or call jw_redislink_up(). */
    void (*opened)(struct jw_redislink *l);
    /* One complete reply after AUTH; takes ownership of `r` (freeReplyObject or keep it). */
    void (*reply)(struct jw_redislink *l, struct redisReply *r);
    /* The deadline fired in a state after AUTHENTICATING. */
    void (*timeout)(struct jw_redislink *l);
    /* The ping timer ticked in up_state (only when redis_ping_interval_ms > 0). */
    void (*ping)(struct jw_redislink *l);
    /* The connection is gone (state already BACKOFF or STOPPED): return work in flight with
     * `err` (-ENOTCONN on failure, -ECANCELED on stop). May be NULL. */
    void (*closed)(struct jw_redislink *l, int err);
    /* Every state change; `reason` is static or NULL. May be NULL. */
    void (*state)(struct jw_redislink *l, enum jw_link_state st, const char *reason);
};

struct jw_redislink {
    /* set by jw_redislink_init; read-only afterwards */
    const struct jw_config *cfg;
    const struct jw_redislink_role *role;
    void *owner;
    _Atomic int state; /* enum jw_link_state; written by the loop thread only */
    /* role-visible, loop thread only */
    char host[256]; /* the connection target: redis_host/redis_port unless prepare() says */
    int port;
    char tls_name[256];   /* name expected on the server certificate; "" = host */
    const char *username; /* AUTH for this target (config strings, not owned); NULL = none */
    const char *password;
    bool discovering;  /* topology: this connection asks a sentinel or seed node, see redistopo.h */
    unsigned seed_idx; /* topology: which sentinel or node the next attempt tries */
    bool ping_pending; /* a health PING is on the wire, its reply not yet read */
    uint64_t ping_deadline_ms; /* when that reply is due (monotonic ms) */
    /* private */
    struct event_base *_base;
    struct evdns_base *_dns;
    struct event *_deadline, *_ping, *_retry;
    struct bufferevent *_bev;
    struct redisReader *_reader; /* replaced on each connect; never freed inside on_read */
    bool _probing;               /* AUTHENTICATING with the opening PING instead of AUTH */
    bool _redirected;            /* the next attempt keeps host/port: jw_redislink_redirect */
    struct ssl_ctx_st *_ssl_ctx; /* shared, not owned; NULL = plain TCP */
    uint64_t _gen;               /* grows on every close, see on_read */
    size_t _reply_limit;
    struct jw_backoff _backoff;
    uint64_t _up_since_ms, _down_since_ms;
};

uint64_t jw_redislink_now_ms(void);

void jw_redislink_init(struct jw_redislink *l, const struct jw_config *cfg,
                       const struct jw_redislink_role *role, void *owner, size_t reply_limit);
/* Creates the timers on `base`; returns 0 or -ENOMEM. Caller thread, before the loop runs. */
int jw_redislink_attach(struct jw_redislink *l, struct event_base *base)
    __attribute__((warn_unused_result));
/* Makes every connection of this link use TLS with `ctx` (shared, must outlive the link). */
void jw_redislink_set_tls(struct jw_redislink *l, struct ssl_ctx_st *ctx);
/* Starts the first connection attempt. Loop thread. */
void jw_redislink_connect(struct jw_redislink *l);
/* Leaves for STOPPED: closes the connection, cancels the retry, calls closed(-ECANCELED). */
void jw_redislink_stop(struct jw_redislink *l, const char *reason);
/* After the loop has ended (still on the loop thread): closes and frees the resolver. */
void jw_redislink_shutdown(struct jw_redislink *l);
/* Frees the timers and the reader; after the thread has been joined (or never started). */
void jw_redislink_free(struct jw_redislink *l);

enum jw_link_state jw_redislink_state(const struct jw_redislink *l);
/* Records a state change (also for STOPPED outside the loop) and tells role->state. */
void jw_redislink_set_state(struct jw_redislink *l, enum jw_link_state st, const char *reason);
/* The only way into BACKOFF: closes the connection, logs `reason` (static) and `detail` (may be
 * dynamic, never a secret), calls closed(-ENOTCONN) and arms the retry. Ignored unless the link
 * is connecting, authenticating or in a role state. */
void jw_redislink_fail(struct jw_redislink *l, const char *reason, const char *detail);
/* Closes the connection and connects to host:port on the next loop turn, without backoff and
 * without prepare() (topology: from a sentinel or seed to the node it named). The state stays
 * CONNECTING; a failure of the new attempt is an ordinary one. Safe inside role->reply. */
void jw_redislink_redirect(struct jw_redislink *l, const char *host, int port, const char *username,
                           const char *password);
/* Sets the target (host is copied, truncated to fit). */
void jw_redislink_set_target(struct jw_redislink *l, const char *host, int port);
/* Enters role->up_state: sets the gauge, resets the deadline, starts the ping timer. */
void jw_redislink_up(struct jw_redislink *l);
/* Milliseconds since the link was last up (or since start). */
uint64_t jw_redislink_down_ms(const struct jw_redislink *l);

/* Formats argv and writes it (aborts when out of memory, as alloc.h does). */
void jw_redislink_send(struct jw_redislink *l, int argc, const char **argv);
/* Writes bytes already RESP-encoded. */
void jw_redislink_write(struct jw_redislink *l, const char *data, size_t len);
/* Sends PING, sets ping_pending and ping_deadline_ms, and arms the deadline for it. */
void jw_redislink_send_ping(struct jw_redislink *l);
/* Arms the deadline `ms` from now (replacing any earlier one); disarm cancels it. */
void jw_redislink_arm(struct jw_redislink *l, uint64_t ms);
void jw_redislink_disarm(struct jw_redislink *l);

/* Reply helpers: a simple or bulk string, and a case-insensitive comparison with `s`. */
bool jw_reply_is_str(const struct redisReply *r);
bool jw_reply_str_eq(const struct redisReply *r, const char *s);

#endif
