/*
 * One Redis connection and its state machine, shared by every role of the Redis thread (the
 * subscriber, the command connections, the sentinel watcher).
 *
 *   IDLE -> CONNECTING -> AUTHENTICATING -> (role states ... up_state)
 *              ^               |                       |
 *              +--- BACKOFF <--+-----------------------+   (jw_link_fail: any error/timeout)
 *
 * The link owns the transport (bufferevent, plain or TLS; names through evdns), the reply reader
 * (resp.h, bounded by the role's limits), the connect and AUTH phases with their timeouts
 * (AUTHENTICATING is the opening handshake: AUTH, or a PING when the role asks for one and there
 * is no password), the jittered backoff with its retry timer, the health-PING timer and the one
 * `deadline` timer. Once connected and authenticated it hands over to the role (`opened`); from
 * then on every reply goes to the role (`reply`), as do the deadline (`timeout`) and the ping
 * tick (`ping`). A role leaves the link only through jw_link_fail() (→ BACKOFF, `closed` with
 * -ENOTCONN), jw_link_reconnect_now() or jw_link_stop() (→ STOPPED, `closed` with -ECANCELED).
 *
 * Threading: everything runs on the Redis thread, except that `state` is an atomic that any
 * thread may read.
 */
#ifndef JOBWIRE_REDIS_LINK_H
#define JOBWIRE_REDIS_LINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "jobwire/config.h"
#include "jobwire/metrics.h"
#include "jobwire/redis.h"
#include "resp.h"

struct event;
struct event_base;
struct evdns_base;
struct bufferevent;
struct redisReader;
struct ssl_ctx_st;
struct jw_link;

/* What a role supplies. Every callback runs on the Redis thread; `l->owner` is the role's data.
 * Callbacks may call jw_link_fail(); after it they must not touch the transport again. */
struct jw_link_role {
    const char *log_prefix;        /* put before "redis host:port ..." in log lines */
    enum jw_link_state up_state;   /* the role's working state (SUBSCRIBED, READY) */
    enum jw_metric_id m_up;        /* gauge set to 1 in up_state, else 0; JW_M__COUNT: none */
    enum jw_metric_id m_errors;    /* counter of failures; JW_M__COUNT: none */
    enum jw_metric_id m_reconnect; /* counter of reconnect attempts; JW_M__COUNT: none */
    /* Without a password, open with a PING (in AUTHENTICATING) so that the role only takes over
     * once a server has answered, not merely accepted the TCP connection. */
    bool probe;
    /* Before each connection attempt (not after jw_link_redirect): may set host, port,
     * tls_name, username, password. May be NULL (the target stays as it is). */
    void (*prepare)(struct jw_link *l);
    /* Connected and authenticated: send the role's first command or call jw_link_up(). */
    void (*opened)(struct jw_link *l);
    /* One complete reply after AUTH; takes ownership of `r` (jw_resp_free or keep it). */
    void (*reply)(struct jw_link *l, struct jw_resp *r);
    /* The deadline fired in a state after AUTHENTICATING. */
    void (*timeout)(struct jw_link *l);
    /* The ping timer ticked in up_state (only when redis_ping_interval_ms > 0). */
    void (*ping)(struct jw_link *l);
    /* The connection is gone (state already BACKOFF or STOPPED): return work in flight with
     * `err` (-ENOTCONN on failure, -ECANCELED on stop). May be NULL. */
    void (*closed)(struct jw_link *l, int err);
    /* Every state change; `reason` is static or NULL. May be NULL. */
    void (*state)(struct jw_link *l, enum jw_link_state st, const char *reason);
};

struct jw_link {
    /* set by jw_link_init; read-only afterwards */
    const struct jw_config *cfg;
    const struct jw_link_role *role;
    void *owner;
    _Atomic int state; /* enum jw_link_state; written by the Redis thread only */
    /* role-visible, Redis thread only */
    char host[256]; /* the connection target: redis_host/redis_port unless prepare() says */
    int port;
    char tls_name[256];   /* name expected on the server certificate; "" = host */
    const char *username; /* AUTH for this target (config strings, not owned); NULL = none */
    const char *password;
    struct jw_resp_limits limits; /* what one reply may hold (resp.h); 64 KiB, 64 elements
                                     unless the role sets more before connecting */
    bool discovering;  /* topology: this connection asks a sentinel or seed node (topology.h) */
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
    bool _redirected;            /* the next attempt keeps host/port: jw_link_redirect */
    bool _paused;                /* the role stopped reading (back-pressure) */
    struct ssl_ctx_st *_ssl_ctx; /* shared, not owned; NULL = plain TCP */
    uint64_t _gen;               /* grows on every close, see on_read */
    struct jw_backoff _backoff;
    uint64_t _up_since_ms, _down_since_ms;
};

void jw_link_init(struct jw_link *l, const struct jw_config *cfg, const struct jw_link_role *role,
                  void *owner);
/* Creates the timers on `base`; 0 or -ENOMEM. Before the loop runs. */
int jw_link_attach(struct jw_link *l, struct event_base *base) __attribute__((warn_unused_result));
/* Makes every connection of this link use TLS with `ctx` (shared, must outlive the link). */
void jw_link_set_tls(struct jw_link *l, struct ssl_ctx_st *ctx);
/* Starts the first connection attempt. */
void jw_link_connect(struct jw_link *l);
/* Leaves for STOPPED: closes the connection, cancels the retry, calls closed(-ECANCELED). */
void jw_link_stop(struct jw_link *l, const char *reason);
/* After the loop has ended (still on the Redis thread): closes and frees the resolver. */
void jw_link_shutdown(struct jw_link *l);
/* Frees the timers and the reader; after the thread has been joined (or never started). */
void jw_link_free(struct jw_link *l);

enum jw_link_state jw_link_state(const struct jw_link *l);
/* Records a state change (also for STOPPED outside the loop) and tells role->state. */
void jw_link_set_state(struct jw_link *l, enum jw_link_state st, const char *reason);
/* The only way into BACKOFF: closes the connection, logs `reason` (static) and `detail` (may be
 * dynamic, never a secret), calls closed(-ENOTCONN) and arms the retry. Ignored unless the link
 * is connecting, authenticating or in a role state. */
void jw_link_fail(struct jw_link *l, const char *reason, const char *detail);
/* A topology signal (the master moved, the node is gone): whatever the state — a pending backoff
 * included — close and connect again on the next loop turn with a fresh backoff. Ignored when
 * IDLE or STOPPED. */
void jw_link_reconnect_now(struct jw_link *l, const char *reason, const char *detail);
/* Closes the connection and connects to host:port on the next loop turn, without backoff and
 * without prepare() (topology: from a sentinel or seed to the node it named). The state stays
 * CONNECTING; a failure of the new attempt is an ordinary one. Safe inside role->reply. */
void jw_link_redirect(struct jw_link *l, const char *host, int port, const char *username,
                      const char *password);
/* Sets the target (host is copied, truncated to fit). */
void jw_link_set_target(struct jw_link *l, const char *host, int port);
/* Enters role->up_state: sets the gauge, resets the deadline, starts the ping timer. */
void jw_link_up(struct jw_link *l);
/* Milliseconds since the link was last up (or since start). */
uint64_t jw_link_down_ms(const struct jw_link *l);

/* Back-pressure: stop handing replies to the role (the socket is no longer read, the deadline
 * and pings are suspended: a peer we do not read cannot be judged), and start again. Replies
 * already read are handed over first on resume. */
void jw_link_pause(struct jw_link *l);
void jw_link_resume(struct jw_link *l);

/* Formats argv and writes it (aborts when out of memory, as alloc.h does). */
void jw_link_send(struct jw_link *l, int argc, const char **argv);
/* Writes bytes already RESP-encoded. */
void jw_link_write(struct jw_link *l, const char *data, size_t len);
/* Sends PING, sets ping_pending and ping_deadline_ms, and arms the deadline for it. */
void jw_link_send_ping(struct jw_link *l);
/* Arms the deadline `ms` from now (replacing any earlier one); disarm cancels it. */
void jw_link_arm(struct jw_link *l, uint64_t ms);
void jw_link_disarm(struct jw_link *l);

#endif
