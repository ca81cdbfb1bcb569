/*
 * The Redis link: a thread running its own libevent loop that holds one PSUBSCRIBE connection
 * (ARCHITECTURE.md). Transport is a bufferevent; RESP parsing is hiredis' redisReader; commands
 * are formatted with redisFormatCommandArgv. hiredis' own networking is not used (no timeouts,
 * no TLS in 0.14).
 *
 * State machine (STYLE.md 9):
 *
 *   IDLE -> CONNECTING -> AUTHENTICATING -> SUBSCRIBING -> SUBSCRIBED
 *              ^               |                |              |
 *              +--- BACKOFF <--+----------------+--------------+   (any error or timeout)
 *
 * Connect, AUTH and PSUBSCRIBE replies are bounded by timeouts; while subscribed a PING every
 * redis_ping_interval_ms must be answered within redis_read_timeout_ms, so a half-open socket is
 * found. Every reconnect waits a jittered exponential backoff (backoff.h) and resubscribes all
 * patterns.
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
    JW_LINK_STOPPED,
};

struct jw_upstream;

/* Callbacks run on the upstream thread and must not block.
 * - on_event receives ownership of `ev` (a parsed event, see event.h).
 * - on_state is told every state change; `reason` is a static string or NULL. */
struct jw_upstream_hooks {
    void (*on_event)(void *ctx, struct jw_event *ev);
    void (*on_state)(void *ctx, enum jw_link_state state, const char *reason);
    void *ctx;
};

/* `cfg` must outlive the upstream. */
struct jw_upstream *jw_upstream_new(const struct jw_config *cfg,
                                    const struct jw_upstream_hooks *hooks);
/* Starts the thread; returns 0 or a negative errno. */
int jw_upstream_start(struct jw_upstream *up) __attribute__((warn_unused_result));
/* Asks the thread to stop, closes the link and joins the thread. Safe to call twice. */
void jw_upstream_stop(struct jw_upstream *up);
void jw_upstream_free(struct jw_upstream *up);
/* Current state; any thread. */
enum jw_link_state jw_upstream_state(const struct jw_upstream *up);
const char *jw_link_state_name(enum jw_link_state state);

#endif
