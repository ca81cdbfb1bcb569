/*
 * The Redis link: a thread running its own libevent loop that holds two connections
 * (ARCHITECTURE.md): the PSUBSCRIBE connection that receives events, and the command connection
 * that serves the gateway's requests (rediscmd.h: owner lookups, token revocation, snapshots).
 * Transport is a bufferevent; RESP parsing is hiredis' redisReader; commands are formatted with
 * redisFormatCommandArgv. hiredis' own networking is not used (no timeouts, no TLS in 0.14).
 *
 * Both connections run the same state machine (STYLE.md 9; redislink.h), each with its own
 * timers and backoff; they differ only after AUTH:
 *
 *   IDLE -> CONNECTING -> AUTHENTICATING -> SUBSCRIBING -> SUBSCRIBED     (subscriber)
 *                                       \-> READY                         (command)
 *              ^               |                |              |
 *              +--- BACKOFF <--+----------------+--------------+   (any error or timeout)
 *
 * Connect, AUTH and PSUBSCRIBE replies are bounded by timeouts; in SUBSCRIBED a PING every
 * redis_ping_interval_ms must be answered within redis_read_timeout_ms, so a half-open socket is
 * found. Every reconnect waits a jittered exponential backoff (backoff.h) and resubscribes all
 * patterns.
 *
 * The command connection: READY once connected and authenticated (it never subscribes);
 * without a password it sends a PING instead of AUTH, so READY always means a server answered.
 * Requests are written at once, pipelined, and answered in FIFO order. While idle it sends a
 * PING every redis_ping_interval_ms, answered within redis_read_timeout_ms.
 * Timeout rule: each request must be answered within redis_read_timeout_ms of its submission.
 * The first one that is not comes back with -ETIMEDOUT and the connection is declared dead and
 * re-established; every request behind it comes back with -ENOTCONN. Why not keep the expired
 * request in the FIFO and discard its late reply instead: replies are matched to requests by
 * position only, so every request behind a stalled one is stalled too and would time out in
 * turn, while the connection may be half-open for good. Reconnecting is one rule with no
 * bookkeeping of abandoned slots, and it is what a missed PONG already does. read_timeout must
 * therefore exceed the slowest command's normal latency (O(1) lookups, one-hash snapshots).
 * Requests are not queued while the connection is down: they come back with -ENOTCONN at once.
 * A reply larger than max_payload_bytes + 64 KiB fails the connection as well (reader cap).
 */
#ifndef JOBWIRE_UPSTREAM_H
#define JOBWIRE_UPSTREAM_H

#include "jobwire/config.h"
#include "jobwire/event.h"

enum jw_link_state {
    JW_LINK_IDLE = 0,
    JW_LINK_CONNECTING,
    JW_LINK_AUTHENTICATING,
    JW_LINK_SUBSCRIBING,
    JW_LINK_SUBSCRIBED,
    JW_LINK_BACKOFF,
    JW_LINK_READY, /* command connection only: connected, authenticated, serving requests */
    JW_LINK_STOPPED,
};

struct jw_upstream;
struct jw_redis_request;

/* Callbacks run on the upstream thread and must not block, nor call jw_upstream_stop/free.
 * - on_event receives ownership of `ev` (a parsed event, see event.h).
 * - on_state is told every state change of the subscriber connection (the command
 *   connection's is jw_upstream_command_ready()); `reason` is a static string or NULL.
 * - on_reply hands a submitted request back (ownership passes; status and reply are filled in,
 *   see rediscmd.h). Exactly once per request. It runs on the upstream thread, except when
 *   jw_upstream_submit() is called while the upstream is not running (never started, stopping
 *   or stopped): then it runs at once on the submitting thread, with -ECANCELED. It may call
 *   jw_upstream_submit(). When NULL, requests are freed instead of handed back. */
struct jw_upstream_hooks {
    void (*on_event)(void *ctx, struct jw_event *ev);
    void (*on_state)(void *ctx, enum jw_link_state state, const char *reason);
    void (*on_reply)(void *ctx, struct jw_redis_request *req);
    void *ctx;
};

/* Requests accepted on the command connection and not yet answered; one more comes back with
 * -ENOBUFS. */
#define JW_UPSTREAM_MAX_PENDING 10000

/* `cfg` must outlive the upstream. */
struct jw_upstream *jw_upstream_new(const struct jw_config *cfg,
                                    const struct jw_upstream_hooks *hooks);
/* Starts the thread; returns 0 or a negative errno. */
int jw_upstream_start(struct jw_upstream *up) __attribute__((warn_unused_result));
/* Asks the thread to stop, closes both connections and joins the thread. Every request not yet
 * answered comes back through on_reply with -ECANCELED before the thread exits. Safe to call
 * twice. */
void jw_upstream_stop(struct jw_upstream *up);
void jw_upstream_free(struct jw_upstream *up);
/* Current state of the subscriber connection; any thread. */
enum jw_link_state jw_upstream_state(const struct jw_upstream *up);
/* Sends `req` on the command connection; ownership passes until on_reply hands it back. Any
 * thread. Comes back with -ENOTCONN when the connection is not READY, -ENOBUFS beyond
 * JW_UPSTREAM_MAX_PENDING, -ETIMEDOUT, -ECANCELED as described above. */
void jw_upstream_submit(struct jw_upstream *up, struct jw_redis_request *req);
/* 1 when the command connection is READY, else 0; any thread. */
int jw_upstream_command_ready(const struct jw_upstream *up);
/* 1 when jobwire talks to a Redis Cluster (redis_cluster_nodes), else 0; any thread. In a
 * cluster each single-key command goes to its slot's master (MOVED/ASK are followed), and a
 * MULTI..EXEC goes to the node of its first key: keys in other slots fail the transaction
 * (-CROSSSLOT or -MOVED, then EXEC answers -EXECABORT). See docs/REDIS.md. */
int jw_upstream_is_cluster(const struct jw_upstream *up);
const char *jw_link_state_name(enum jw_link_state state);

#endif
