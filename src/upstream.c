/*
 * The Redis link (upstream.h): one thread, one libevent loop, one PSUBSCRIBE connection.
 *
 * The thread owns everything below except `state`, `stop_ev` and `thread`: every other field is
 * touched only by the loop thread once jw_upstream_start() has returned (and by the caller again
 * after the join). jw_upstream_stop() crosses threads only by event_active() on `stop_ev`, which
 * libevent makes safe because evthread_use_pthreads() ran before the base was created.
 *
 * Transport is a plain bufferevent; the bytes it reads are fed to a hiredis redisReader that
 * only parses RESP, and commands are built by redisFormatCommandArgv (ARCHITECTURE.md: hiredis'
 * own networking has no timeouts). Three timers drive the state machine:
 *   deadline  one-shot: the current wait (connect, AUTH reply, all PSUBSCRIBE confirmations, the
 *             PONG of a health PING) must end before it fires, else the link is declared dead;
 *   ping      periodic while SUBSCRIBED: sends PING and arms `deadline` (finds half-open links);
 *   retry     one-shot in BACKOFF: reconnects after a jittered exponential delay.
 * Any error, timeout or EOF goes through link_fail(), the single way into BACKOFF.
 *
 * Memory bound: a reply is parsed as soon as it is complete, and the bytes the reader holds for
 * an incomplete reply may not exceed max_payload_bytes + REPLY_SLACK; beyond that the link is
 * dropped and re-established (hiredis 0.14's maxbuf only trims idle buffer space, it is no cap).
 * Payloads between max_payload_bytes and that cap are parsed and counted as too large.
 *
 * The process must ignore SIGPIPE (a write to a reset socket would otherwise kill it).
 */
#include "jobwire/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/backoff.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"

#define MOD "upstream"
/* Room for the RESP framing, the pattern and the channel around a pmessage payload. */
#define REPLY_SLACK (64u * 1024u)

/* Reasons handed to on_state and logged; static, as upstream.h promises. */
static const char *const R_CONNECT_FAILED = "connect failed";
static const char *const R_CONNECT_TIMEOUT = "connect timeout";
static const char *const R_AUTH_REFUSED = "auth refused";
static const char *const R_AUTH_TIMEOUT = "auth timeout";
static const char *const R_SUBSCRIBE_REFUSED = "subscribe refused";
static const char *const R_SUBSCRIBE_TIMEOUT = "subscribe timeout";
static const char *const R_PING_TIMEOUT = "ping timeout";
static const char *const R_CLOSED = "connection closed by server";
static const char *const R_SOCKET_ERROR = "socket error";
static const char *const R_PROTOCOL = "protocol error";
static const char *const R_TOO_LARGE = "reply too large";
static const char *const R_ERROR_REPLY = "error reply";
static const char *const R_STOPPED = "stopped";

struct jw_upstream {
    const struct jw_config *cfg;
    struct jw_upstream_hooks hooks;
    _Atomic int state; /* enum jw_link_state; written by the loop thread only */

    pthread_t thread;
    bool started, joined;

    struct event_base *base;
    struct evdns_base *dns; /* created on the first non-numeric redis_host */
    struct event *stop_ev, *deadline, *ping, *retry;

    /* The current link. `gen` grows on every close, so a callback that closed the link can
     * tell that it must not touch it again. */
    struct bufferevent *bev;
    redisReader *reader; /* replaced on each connect; never freed inside on_read */
    uint64_t gen;
    size_t confirms;    /* psubscribe confirmations still expected */
    bool ping_pending;  /* a PING is on the wire, its PONG not yet read */
    size_t reply_limit; /* max bytes buffered for one incomplete reply */

    struct jw_backoff backoff;
    struct jw_event_rules rules;
    uint64_t up_since_ms; /* when SUBSCRIBED was last entered */
    uint64_t down_since_ms;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval
ms_to_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

const char *
jw_link_state_name(enum jw_link_state state)
{
    switch (state) {
    case JW_LINK_IDLE:
        return "idle";
    case JW_LINK_CONNECTING:
        return "connecting";
    case JW_LINK_AUTHENTICATING:
        return "authenticating";
    case JW_LINK_SUBSCRIBING:
        return "subscribing";
    case JW_LINK_SUBSCRIBED:
        return "subscribed";
    case JW_LINK_BACKOFF:
        return "backoff";
    case JW_LINK_STOPPED:
        return "stopped";
    }
    return "unknown";
}

enum jw_link_state
jw_upstream_state(const struct jw_upstream *up)
{
    return (enum jw_link_state)atomic_load(&((struct jw_upstream *)up)->state);
}

static void
set_state(struct jw_upstream *up, enum jw_link_state state, const char *reason)
{
    atomic_store(&up->state, (int)state);
    if (up->hooks.on_state)
        up->hooks.on_state(up->hooks.ctx, state, reason);
}

static void
arm_deadline(struct jw_upstream *up, int ms)
{
    struct timeval tv = ms_to_tv(ms);
    evtimer_add(up->deadline, &tv);
}

/* Frees the bufferevent (closing the socket) and stops every per-link timer. Safe inside the
 * bufferevent's own callbacks: libevent holds a reference while a callback runs and finalizes
 * the bufferevent afterwards. The reader stays until the next connect for the same reason. */
static void
link_close(struct jw_upstream *up)
{
    if (up->bev) {
        bufferevent_free(up->bev);
        up->bev = NULL;
    }
    evtimer_del(up->deadline);
    evtimer_del(up->ping);
    up->ping_pending = false;
    up->confirms = 0;
    up->gen++;
}

static void
send_command(struct jw_upstream *up, int argc, const char **argv)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) {
        /* Only out of memory makes hiredis fail here; alloc.h's policy is to abort. */
        jw_error(MOD, "out of memory formatting a command");
        abort();
    }
    bufferevent_write(up->bev, cmd, (size_t)len);
    redisFreeCommand(cmd);
}

static void start_connect(struct jw_upstream *up);

/* The only way into BACKOFF: closes the link, logs `reason` (static) and `detail` (may be
 * dynamic, never a secret), picks the next delay and arms `retry`. */
static void
link_fail(struct jw_upstream *up, const char *reason, const char *detail)
{
    enum jw_link_state was = jw_upstream_state(up);
    if (was == JW_LINK_BACKOFF || was == JW_LINK_STOPPED || was == JW_LINK_IDLE)
        return;
    link_close(up);
    jw_metric_add(JW_M_UPSTREAM_ERRORS, 1);

    uint64_t now = now_ms();
    if (was == JW_LINK_SUBSCRIBED) {
        jw_metric_set(JW_M_UPSTREAM_UP, 0);
        up->down_since_ms = now;
        /* A link that stayed up long enough earns a fresh, short backoff. */
        if (now - up->up_since_ms >= (uint64_t)up->cfg->reconnect_reset_after_ms)
            jw_backoff_reset(&up->backoff);
    }
    uint32_t attempt = up->backoff.attempt + 1;
    uint32_t delay = jw_backoff_next(&up->backoff);
    jw_warn(MOD, "redis %s:%d %s while %s%s%s; reconnecting in %u ms (attempt %u)",
            up->cfg->redis_host, up->cfg->redis_port, reason, jw_link_state_name(was),
            detail ? ": " : "", detail ? detail : "", delay, attempt);
    set_state(up, JW_LINK_BACKOFF, reason);
    struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
    evtimer_add(up->retry, &tv);
}

static void
send_psubscribe(struct jw_upstream *up)
{
    const char *argv[1 + JW_CONFIG_MAX_PATTERNS];
    size_t n = up->cfg->redis_npatterns;
    argv[0] = "PSUBSCRIBE";
    for (size_t i = 0; i < n; i++)
        argv[1 + i] = up->cfg->redis_patterns[i];
    up->confirms = n;
    set_state(up, JW_LINK_SUBSCRIBING, NULL);
    send_command(up, (int)(1 + n), argv);
    arm_deadline(up, up->cfg->redis_read_timeout_ms);
}

static void
enter_subscribed(struct jw_upstream *up)
{
    uint64_t now = now_ms();
    evtimer_del(up->deadline);
    up->up_since_ms = now;
    jw_metric_set(JW_M_UPSTREAM_UP, 1);
    jw_info(MOD, "subscribed to %zu pattern(s) on redis %s:%d after %llu ms down",
            up->cfg->redis_npatterns, up->cfg->redis_host, up->cfg->redis_port,
            (unsigned long long)(now - up->down_since_ms));
    set_state(up, JW_LINK_SUBSCRIBED, NULL);
    if (up->cfg->redis_ping_interval_ms > 0) {
        struct timeval tv = ms_to_tv(up->cfg->redis_ping_interval_ms);
        evtimer_add(up->ping, &tv);
    }
}

static const enum jw_metric_id kind_metric[JW_KIND__COUNT] = {
    [JW_KIND_STATUS] = JW_M_EVENTS_STATUS,     [JW_KIND_PROGRESS] = JW_M_EVENTS_PROGRESS,
    [JW_KIND_COMPLETE] = JW_M_EVENTS_COMPLETE, [JW_KIND_ERROR] = JW_M_EVENTS_ERROR,
    [JW_KIND_OTHER] = JW_M_EVENTS_OTHER,
};
static const enum jw_metric_id verdict_metric[JW_EVENT__VERDICT_COUNT] = {
    [JW_EVENT_OK] = JW_M__COUNT, /* counted by kind instead */
    [JW_EVENT_NOT_MATCHED] = JW_M_EVENTS_INVALID_NOT_MATCHED,
    [JW_EVENT_NOT_JSON] = JW_M_EVENTS_INVALID_NOT_JSON,
    [JW_EVENT_TOO_LARGE] = JW_M_EVENTS_INVALID_TOO_LARGE,
    [JW_EVENT_NO_JOB_ID] = JW_M_EVENTS_INVALID_NO_JOB_ID,
    [JW_EVENT_BAD_ID] = JW_M_EVENTS_INVALID_BAD_ID,
};

static void
handle_pmessage(struct jw_upstream *up, const redisReply *channel, const redisReply *payload)
{
    struct jw_event *ev = NULL;
    enum jw_event_verdict v =
        jw_event_parse(&up->rules, channel->str, channel->len, payload->str, payload->len, &ev);
    if (v != JW_EVENT_OK) {
        if ((unsigned)v < JW_EVENT__VERDICT_COUNT)
            jw_metric_add(verdict_metric[v], 1);
        jw_debug(MOD, "dropped message on %.*s: %s", (int)channel->len, channel->str,
                 jw_event_verdict_name(v));
        return;
    }
    jw_metric_add(kind_metric[ev->kind < JW_KIND__COUNT ? ev->kind : JW_KIND_OTHER], 1);
    if (up->hooks.on_event)
        up->hooks.on_event(up->hooks.ctx, ev); /* ownership passes */
    else
        jw_event_free(ev);
}

static bool
is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

static bool
str_eq(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return is_str(r) && r->len == n && strncasecmp(r->str, s, n) == 0;
}

/* Dispatches one complete reply according to the state. May close the link (link_fail). */
static void
handle_reply(struct jw_upstream *up, const redisReply *r)
{
    enum jw_link_state st = jw_upstream_state(up);

    if (r->type == REDIS_REPLY_ERROR) {
        /* Redis error texts (WRONGPASS, NOAUTH, NOPERM ...) never echo the password. */
        const char *reason = st == JW_LINK_AUTHENTICATING ? R_AUTH_REFUSED
                             : st == JW_LINK_SUBSCRIBING  ? R_SUBSCRIBE_REFUSED
                                                          : R_ERROR_REPLY;
        link_fail(up, reason, r->str);
        return;
    }
    if (st == JW_LINK_AUTHENTICATING) {
        if (!str_eq(r, "OK")) {
            link_fail(up, R_PROTOCOL, "unexpected reply to AUTH");
            return;
        }
        send_psubscribe(up);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && is_str(r->element[0])) {
        const redisReply *kind = r->element[0];
        if (str_eq(kind, "pmessage") && r->elements == 4 && is_str(r->element[2]) &&
            is_str(r->element[3])) {
            handle_pmessage(up, r->element[2], r->element[3]);
            return;
        }
        if (str_eq(kind, "psubscribe") && st == JW_LINK_SUBSCRIBING) {
            if (up->confirms > 0 && --up->confirms == 0)
                enter_subscribed(up);
            return;
        }
        if (str_eq(kind, "pong")) { /* RESP2 PING reply in subscribed mode: ["pong", ""] */
            up->ping_pending = false;
            evtimer_del(up->deadline);
            return;
        }
    } else if (str_eq(r, "PONG")) {
        up->ping_pending = false;
        evtimer_del(up->deadline);
        return;
    }
    jw_debug(MOD, "ignored reply of type %d while %s", r->type, jw_link_state_name(st));
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct jw_upstream *up = arg;
    uint64_t gen = up->gen;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec vec;

    /* Feed one buffer chunk at a time and take every complete reply before the next, so the
     * reader never holds more than one incomplete reply plus one chunk. */
    while (evbuffer_peek(in, -1, NULL, &vec, 1) > 0 && vec.iov_len > 0) {
        int rc = redisReaderFeed(up->reader, vec.iov_base, vec.iov_len);
        evbuffer_drain(in, vec.iov_len);
        if (rc != REDIS_OK) {
            link_fail(up, R_PROTOCOL, up->reader->errstr);
            return;
        }
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(up->reader, &reply) != REDIS_OK) {
                link_fail(up, R_PROTOCOL, up->reader->errstr);
                return;
            }
            if (reply == NULL)
                break;
            handle_reply(up, reply);
            freeReplyObject(reply);
            if (up->gen != gen)
                return; /* the link was closed; `bev` and `in` are no longer ours */
        }
        size_t pending = up->reader->len - up->reader->pos;
        if (pending > up->reply_limit) {
            char detail[96];
            snprintf(detail, sizeof detail, "%zu bytes buffered, limit %zu", pending,
                     up->reply_limit);
            jw_metric_add(JW_M_EVENTS_INVALID_TOO_LARGE, 1);
            link_fail(up, R_TOO_LARGE, detail);
            return;
        }
    }
}

static void
on_connected(struct jw_upstream *up)
{
    evtimer_del(up->deadline);
    int fd = bufferevent_getfd(up->bev);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one); /* a backstop to our PINGs */

    const struct jw_config *c = up->cfg;
    if (c->redis_password && c->redis_password[0]) {
        const char *argv[3] = {"AUTH", NULL, NULL};
        int argc = 1;
        if (c->redis_username && c->redis_username[0])
            argv[argc++] = c->redis_username;
        argv[argc++] = c->redis_password;
        set_state(up, JW_LINK_AUTHENTICATING, NULL);
        send_command(up, argc, argv);
        arm_deadline(up, c->redis_read_timeout_ms);
    } else {
        send_psubscribe(up);
    }
}

static void
on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    struct jw_upstream *up = arg;
    char detail[160];

    if (what & BEV_EVENT_CONNECTED) {
        on_connected(up);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        link_fail(up, R_CLOSED, NULL);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        int dns_err = bufferevent_socket_get_dns_error(bev);
        int err = EVUTIL_SOCKET_ERROR();
        if (dns_err)
            snprintf(detail, sizeof detail, "resolving: %s", evutil_gai_strerror(dns_err));
        else
            snprintf(detail, sizeof detail, "%s", evutil_socket_error_to_string(err));
        link_fail(up,
                  jw_upstream_state(up) == JW_LINK_CONNECTING ? R_CONNECT_FAILED : R_SOCKET_ERROR,
                  detail);
    }
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    switch (jw_upstream_state(up)) {
    case JW_LINK_CONNECTING:
        link_fail(up, R_CONNECT_TIMEOUT, NULL);
        break;
    case JW_LINK_AUTHENTICATING:
        link_fail(up, R_AUTH_TIMEOUT, NULL);
        break;
    case JW_LINK_SUBSCRIBING:
        link_fail(up, R_SUBSCRIBE_TIMEOUT, NULL);
        break;
    case JW_LINK_SUBSCRIBED:
        link_fail(up, R_PING_TIMEOUT, "no PONG, link presumed dead");
        break;
    default:
        break;
    }
}

static void
on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    /* Invariant: at most one PING in flight; its deadline is already armed. */
    if (jw_upstream_state(up) != JW_LINK_SUBSCRIBED || up->ping_pending)
        return;
    const char *argv[1] = {"PING"};
    send_command(up, 1, argv);
    up->ping_pending = true;
    arm_deadline(up, up->cfg->redis_read_timeout_ms);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    jw_metric_add(JW_M_UPSTREAM_RECONNECTS, 1);
    start_connect(up);
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct jw_upstream *up = arg;
    link_close(up);
    evtimer_del(up->retry);
    if (jw_upstream_state(up) == JW_LINK_SUBSCRIBED)
        jw_metric_set(JW_M_UPSTREAM_UP, 0);
    set_state(up, JW_LINK_STOPPED, R_STOPPED);
    event_base_loopbreak(up->base);
}

/* Starts one connection attempt: numeric addresses connect directly, names go through evdns.
 * The whole attempt (resolution included) is bounded by redis_connect_timeout_ms. */
static void
start_connect(struct jw_upstream *up)
{
    const struct jw_config *c = up->cfg;
    if (up->reader)
        redisReaderFree(up->reader);
    up->reader = redisReaderCreate();
    if (!up->reader) {
        jw_error(MOD, "out of memory creating a reader");
        abort();
    }
    up->bev = bufferevent_socket_new(up->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!up->bev) {
        jw_error(MOD, "cannot create a bufferevent");
        abort();
    }
    bufferevent_setcb(up->bev, on_read, NULL, on_bev_event, up);
    bufferevent_enable(up->bev, EV_READ | EV_WRITE);
    set_state(up, JW_LINK_CONNECTING, NULL);
    arm_deadline(up, c->redis_connect_timeout_ms);

    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    memset(&addr, 0, sizeof addr);
    int rc;
    if (inet_pton(AF_INET, c->redis_host, &addr.in4.sin_addr) == 1) {
        addr.in4.sin_family = AF_INET;
        addr.in4.sin_port = htons((uint16_t)c->redis_port);
        rc = bufferevent_socket_connect(up->bev, &addr.sa, sizeof addr.in4);
    } else if (inet_pton(AF_INET6, c->redis_host, &addr.in6.sin6_addr) == 1) {
        addr.in6.sin6_family = AF_INET6;
        addr.in6.sin6_port = htons((uint16_t)c->redis_port);
        rc = bufferevent_socket_connect(up->bev, &addr.sa, sizeof addr.in6);
    } else {
        if (!up->dns)
            up->dns = evdns_base_new(up->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!up->dns) {
            link_fail(up, R_CONNECT_FAILED, "cannot initialise the DNS resolver");
            return;
        }
        rc = bufferevent_socket_connect_hostname(up->bev, up->dns, AF_UNSPEC, c->redis_host,
                                                 c->redis_port);
    }
    /* An immediate failure has usually been reported through on_bev_event already; link_fail
     * ignores the second report. */
    if (rc < 0)
        link_fail(up, R_CONNECT_FAILED, "connect() failed at once");
}

static void *
thread_main(void *arg)
{
    struct jw_upstream *up = arg;
    start_connect(up);
    /* NO_EXIT_ON_EMPTY: only on_stop ends the loop, whatever is pending. */
    event_base_loop(up->base, EVLOOP_NO_EXIT_ON_EMPTY);
    link_close(up);
    if (up->dns) {
        evdns_base_free(up->dns, 0);
        up->dns = NULL;
    }
    return NULL;
}

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void
init_evthread(void)
{
    if (evthread_use_pthreads() != 0) {
        jw_error(MOD, "evthread_use_pthreads failed");
        abort();
    }
}

struct jw_upstream *
jw_upstream_new(const struct jw_config *cfg, const struct jw_upstream_hooks *hooks)
{
    pthread_once(&evthread_once, init_evthread);
    struct jw_upstream *up = jw_calloc(1, sizeof *up);
    up->cfg = cfg;
    if (hooks)
        up->hooks = *hooks;
    atomic_init(&up->state, JW_LINK_IDLE);
    up->rules.prefix = cfg->channel_prefix;
    up->rules.max_payload_bytes = cfg->max_payload_bytes;
    up->reply_limit = cfg->max_payload_bytes + REPLY_SLACK;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)up;
    jw_backoff_init(&up->backoff, (uint32_t)cfg->reconnect_initial_ms,
                    (uint32_t)cfg->reconnect_max_ms, cfg->reconnect_multiplier, seed);
    return up;
}

int
jw_upstream_start(struct jw_upstream *up)
{
    if (up->started)
        return -EALREADY;
    if (up->cfg->redis_npatterns == 0 || up->cfg->redis_npatterns > JW_CONFIG_MAX_PATTERNS)
        return -EINVAL;
    up->base = event_base_new();
    if (!up->base)
        return -ENOMEM;
    up->stop_ev = event_new(up->base, -1, 0, on_stop, up);
    up->deadline = evtimer_new(up->base, on_deadline, up);
    up->ping = event_new(up->base, -1, EV_PERSIST, on_ping, up);
    up->retry = evtimer_new(up->base, on_retry, up);
    if (!up->stop_ev || !up->deadline || !up->ping || !up->retry)
        return -ENOMEM; /* the events are freed by jw_upstream_free */
    up->down_since_ms = now_ms();
    int rc = pthread_create(&up->thread, NULL, thread_main, up);
    if (rc != 0)
        return -rc;
    up->started = true;
    return 0;
}

void
jw_upstream_stop(struct jw_upstream *up)
{
    if (!up->started || up->joined) {
        if (jw_upstream_state(up) != JW_LINK_STOPPED)
            set_state(up, JW_LINK_STOPPED, R_STOPPED);
        return;
    }
    event_active(up->stop_ev, EV_READ, 0); /* thread-safe: the base has evthread locks */
    pthread_join(up->thread, NULL);
    up->joined = true;
}

void
jw_upstream_free(struct jw_upstream *up)
{
    if (!up)
        return;
    jw_upstream_stop(up);
    struct event *evs[] = {up->stop_ev, up->deadline, up->ping, up->retry};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (up->reader)
        redisReaderFree(up->reader);
    if (up->base)
        event_base_free(up->base);
    free(up);
}
