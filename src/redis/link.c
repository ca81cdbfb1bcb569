/*
 * One Redis connection and its state machine (link.h), shared by the roles of the Redis thread.
 *
 * Transport is a plain bufferevent, or an OpenSSL one when the upstream has a TLS context
 * (tls.h: verification and the error reasons); the bytes it reads are fed to a hiredis
 * redisReader that only parses RESP into bounded trees (resp.h), and commands are built by
 * redisFormatCommandArgv
 * (ARCHITECTURE.md: hiredis' own networking has no timeouts). Three timers drive the state machine:
 *   deadline  one-shot: the current wait (connect, AUTH reply, and whatever the role waits for:
 *             PSUBSCRIBE confirmations, a PONG, the oldest command reply) must end before it
 *             fires, else the role or the link declares the connection dead;
 *   ping      periodic in the role's up state: the role decides whether to send a health PING;
 *   retry     one-shot in BACKOFF: reconnects after a jittered exponential delay.
 * Any error, timeout or EOF goes through jw_link_fail(), the single way into BACKOFF.
 *
 * Memory bound: a reply is parsed as soon as it is complete and kept within the role's limits
 * (resp.h); what the reader buffers for one incomplete reply may not exceed JW_RESP_HARD_LIMIT
 * (hiredis holds a bulk string whole before it hands it over), beyond which the connection is
 * dropped and re-established.
 *
 * The process must ignore SIGPIPE (a write to a reset socket would otherwise kill it).
 */
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "jobwire/rand.h"
#include "tls.h"

#define MOD "upstream"

/* Reasons handed to role->state and logged; static, as upstream.h promises. */
static const char *const R_CONNECT_FAILED = "connect failed";
static const char *const R_CONNECT_TIMEOUT = "connect timeout";
static const char *const R_AUTH_REFUSED = "auth refused";
static const char *const R_AUTH_TIMEOUT = "auth timeout";
static const char *const R_HANDSHAKE_TIMEOUT = "handshake timeout";
static const char *const R_CLOSED = "connection closed by server";
static const char *const R_SOCKET_ERROR = "socket error";
static const char *const R_PROTOCOL = "protocol error";
static const char *const R_TOO_LARGE = "reply too large";

static void
metric_add(enum jw_metric_id id, int64_t delta)
{
    if (id != JW_M__COUNT)
        jw_metric_add(id, delta);
}

static void
metric_set(enum jw_metric_id id, int64_t value)
{
    if (id != JW_M__COUNT)
        jw_metric_set(id, value);
}

static struct timeval
ms_to_tv(uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

enum jw_link_state
jw_link_state(const struct jw_link *l)
{
    return (enum jw_link_state)atomic_load(&((struct jw_link *)l)->state);
}

void
jw_link_set_state(struct jw_link *l, enum jw_link_state st, const char *reason)
{
    atomic_store(&l->state, (int)st);
    if (l->role->state)
        l->role->state(l, st, reason);
}

void
jw_link_arm(struct jw_link *l, uint64_t ms)
{
    struct timeval tv = ms_to_tv(ms);
    evtimer_add(l->_deadline, &tv);
}

void
jw_link_disarm(struct jw_link *l)
{
    evtimer_del(l->_deadline);
}

uint64_t
jw_link_down_ms(const struct jw_link *l)
{
    return jw_now_ms() - l->_down_since_ms;
}

/* Frees the bufferevent (closing the socket) and stops every per-connection timer. Safe inside
 * the bufferevent's own callbacks: libevent holds a reference while a callback runs and
 * finalizes the bufferevent afterwards. The reader stays until the next connect for the same
 * reason. */
static void
link_close(struct jw_link *l)
{
    if (l->_bev) {
        bufferevent_free(l->_bev);
        l->_bev = NULL;
    }
    if (l->_deadline)
        evtimer_del(l->_deadline);
    if (l->_ping)
        evtimer_del(l->_ping);
    l->ping_pending = false;
    l->_probing = false;
    l->_paused = false;
    l->_gen++;
}

void
jw_link_write(struct jw_link *l, const char *data, size_t len)
{
    bufferevent_write(l->_bev, data, len);
}

void
jw_link_send(struct jw_link *l, int argc, const char **argv)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0) {
        /* Only out of memory makes hiredis fail here; alloc.h's policy is to abort. */
        jw_error(MOD, "out of memory formatting a command");
        abort();
    }
    bufferevent_write(l->_bev, cmd, (size_t)len);
    redisFreeCommand(cmd);
}

void
jw_link_send_ping(struct jw_link *l)
{
    const char *argv[1] = {"PING"};
    jw_link_send(l, 1, argv);
    l->ping_pending = true;
    l->ping_deadline_ms = jw_now_ms() + (uint64_t)l->cfg->redis_read_timeout_ms;
    jw_link_arm(l, (uint64_t)l->cfg->redis_read_timeout_ms);
}

void
jw_link_fail(struct jw_link *l, const char *reason, const char *detail)
{
    enum jw_link_state was = jw_link_state(l);
    if (was == JW_LINK_BACKOFF || was == JW_LINK_STOPPED || was == JW_LINK_IDLE)
        return;
    link_close(l);
    l->_redirected = false; /* the next attempt starts over (discovery included) */
    metric_add(l->role->m_errors, 1);

    uint64_t now = jw_now_ms();
    if (was == l->role->up_state) {
        metric_set(l->role->m_up, 0);
        l->_down_since_ms = now;
        /* A link that stayed up long enough earns a fresh, short backoff. */
        if (now - l->_up_since_ms >= (uint64_t)l->cfg->reconnect_reset_after_ms)
            jw_backoff_reset(&l->_backoff);
    }
    uint32_t attempt = l->_backoff.attempt + 1;
    uint32_t delay = jw_backoff_next(&l->_backoff);
    jw_warn(MOD, "%sredis %s:%d %s while %s%s%s; reconnecting in %u ms (attempt %u)",
            l->role->log_prefix, l->host, l->port, reason, jw_link_state_name(was),
            detail ? ": " : "", detail ? detail : "", delay, attempt);
    jw_link_set_state(l, JW_LINK_BACKOFF, reason);
    struct timeval tv = ms_to_tv(delay);
    evtimer_add(l->_retry, &tv);
    if (l->role->closed)
        l->role->closed(l, -ENOTCONN);
}

void
jw_link_reconnect_now(struct jw_link *l, const char *reason, const char *detail)
{
    enum jw_link_state was = jw_link_state(l);
    if (was == JW_LINK_IDLE || was == JW_LINK_STOPPED)
        return;
    if (was != JW_LINK_BACKOFF) {
        link_close(l);
        metric_add(l->role->m_errors, 1);
        if (was == l->role->up_state) {
            metric_set(l->role->m_up, 0);
            l->_down_since_ms = jw_now_ms();
        }
    }
    l->_redirected = false;
    evtimer_del(l->_retry);
    jw_backoff_reset(&l->_backoff);
    jw_warn(MOD, "%sredis %s:%d %s while %s%s%s; reconnecting now", l->role->log_prefix, l->host,
            l->port, reason, jw_link_state_name(was), detail ? ": " : "", detail ? detail : "");
    jw_link_set_state(l, JW_LINK_BACKOFF, reason);
    struct timeval now = {0, 0};
    evtimer_add(l->_retry, &now);
    if (was != JW_LINK_BACKOFF && l->role->closed)
        l->role->closed(l, -ENOTCONN);
}

void
jw_link_up(struct jw_link *l)
{
    evtimer_del(l->_deadline);
    l->_up_since_ms = jw_now_ms();
    metric_set(l->role->m_up, 1);
    jw_link_set_state(l, l->role->up_state, NULL);
    if (l->cfg->redis_ping_interval_ms > 0) {
        struct timeval tv = ms_to_tv((uint64_t)l->cfg->redis_ping_interval_ms);
        evtimer_add(l->_ping, &tv);
    }
}

/* The connect and AUTH phases are the link's; everything after belongs to the role. */
static void
handle_reply(struct jw_link *l, struct jw_resp *r)
{
    if (jw_link_state(l) != JW_LINK_AUTHENTICATING) {
        l->role->reply(l, r); /* ownership passes */
        return;
    }
    if (r->type == JW_RESP_ERROR) {
        /* Redis error texts (WRONGPASS, NOAUTH, NOPERM ...) never echo the password. A NOAUTH
         * answer to the opening PING means the server wants a password we do not have. */
        jw_link_fail(l, R_AUTH_REFUSED, r->str);
    } else if (!jw_resp_str_eq(r, l->_probing ? "PONG" : "OK")) {
        jw_link_fail(l, R_PROTOCOL,
                     l->_probing ? "unexpected reply to PING" : "unexpected reply to AUTH");
    } else {
        l->_probing = false;
        evtimer_del(l->_deadline);
        l->role->opened(l);
    }
    jw_resp_free(r);
}

/* Hands every complete reply the reader holds to the role, until the role pauses or the
 * connection goes. Returns false when the connection was closed meanwhile. */
static bool
drain_reader(struct jw_link *l, uint64_t gen)
{
    while (!l->_paused) {
        void *reply = NULL;
        if (redisReaderGetReply(l->_reader, &reply) != REDIS_OK) {
            jw_link_fail(l, R_PROTOCOL, l->_reader->errstr);
            return false;
        }
        if (reply == NULL)
            return true;
        handle_reply(l, reply);
        if (l->_gen != gen)
            return false; /* closed: the transport and the reader are no longer ours */
    }
    return true;
}

/* Feeds one buffer chunk at a time and takes every complete reply before the next, so the
 * reader never holds more than one incomplete reply plus one chunk. */
static void
on_read(struct bufferevent *bev, void *arg)
{
    struct jw_link *l = arg;
    uint64_t gen = l->_gen;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec vec;

    if (!drain_reader(l, gen))
        return;
    while (!l->_paused && evbuffer_peek(in, -1, NULL, &vec, 1) > 0 && vec.iov_len > 0) {
        int rc = redisReaderFeed(l->_reader, vec.iov_base, vec.iov_len);
        evbuffer_drain(in, vec.iov_len);
        if (rc != REDIS_OK) {
            jw_link_fail(l, R_PROTOCOL, l->_reader->errstr);
            return;
        }
        if (!drain_reader(l, gen))
            return;
        size_t pending = l->_reader->len - l->_reader->pos;
        if (pending > JW_RESP_HARD_LIMIT) {
            char detail[96];
            snprintf(detail, sizeof detail, "%zu bytes buffered for one reply, limit %u", pending,
                     JW_RESP_HARD_LIMIT);
            jw_link_fail(l, R_TOO_LARGE, detail);
            return;
        }
    }
}

void
jw_link_pause(struct jw_link *l)
{
    if (l->_paused)
        return;
    l->_paused = true;
    if (l->_bev)
        bufferevent_disable(l->_bev, EV_READ);
    evtimer_del(l->_deadline);
    evtimer_del(l->_ping);
}

void
jw_link_resume(struct jw_link *l)
{
    if (!l->_paused)
        return;
    l->_paused = false;
    if (!l->_bev)
        return;
    bufferevent_enable(l->_bev, EV_READ);
    if (l->ping_pending) { /* the PONG may be among what was not read: a fresh wait for it */
        l->ping_deadline_ms = jw_now_ms() + (uint64_t)l->cfg->redis_read_timeout_ms;
        jw_link_arm(l, (uint64_t)l->cfg->redis_read_timeout_ms);
    }
    if (jw_link_state(l) == l->role->up_state && l->cfg->redis_ping_interval_ms > 0) {
        struct timeval tv = ms_to_tv((uint64_t)l->cfg->redis_ping_interval_ms);
        evtimer_add(l->_ping, &tv);
    }
    on_read(l->_bev, l); /* what was read before the pause, then what the socket holds */
}

static void
on_connected(struct jw_link *l)
{
    evtimer_del(l->_deadline);
    int fd = bufferevent_getfd(l->_bev);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one); /* a backstop to our PINGs */

    const struct jw_config *c = l->cfg;
    if (l->password && l->password[0]) {
        const char *argv[3] = {"AUTH", NULL, NULL};
        int argc = 1;
        if (l->username && l->username[0])
            argv[argc++] = l->username;
        argv[argc++] = l->password;
        jw_link_set_state(l, JW_LINK_AUTHENTICATING, NULL);
        jw_link_send(l, argc, argv);
        jw_link_arm(l, (uint64_t)c->redis_read_timeout_ms);
    } else if (l->role->probe) {
        /* No AUTH to prove that a server answers: a PING does, before the role takes over. */
        const char *argv[1] = {"PING"};
        l->_probing = true;
        jw_link_set_state(l, JW_LINK_AUTHENTICATING, NULL);
        jw_link_send(l, 1, argv);
        jw_link_arm(l, (uint64_t)c->redis_read_timeout_ms);
    } else {
        l->role->opened(l);
    }
}

static void
on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    struct jw_link *l = arg;
    char detail[320];

    if (what & BEV_EVENT_CONNECTED) {
        on_connected(l);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        jw_link_fail(l, R_CLOSED, NULL);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        int dns_err = bufferevent_socket_get_dns_error(bev);
        int err = EVUTIL_SOCKET_ERROR();
        if (dns_err)
            snprintf(detail, sizeof detail, "resolving: %s", evutil_gai_strerror(dns_err));
        else if (l->_ssl_ctx)
            jw_tls_describe(bev, detail, sizeof detail); /* OpenSSL's reason, see there */
        else
            snprintf(detail, sizeof detail, "%s", evutil_socket_error_to_string(err));
        jw_link_fail(l, jw_link_state(l) == JW_LINK_CONNECTING ? R_CONNECT_FAILED : R_SOCKET_ERROR,
                     detail);
    }
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct jw_link *l = arg;
    switch (jw_link_state(l)) {
    case JW_LINK_CONNECTING:
        jw_link_fail(l, R_CONNECT_TIMEOUT, NULL);
        break;
    case JW_LINK_AUTHENTICATING:
        jw_link_fail(l, l->_probing ? R_HANDSHAKE_TIMEOUT : R_AUTH_TIMEOUT, NULL);
        break;
    case JW_LINK_IDLE:
    case JW_LINK_BACKOFF:
    case JW_LINK_STOPPED:
        break;
    default:
        l->role->timeout(l);
        break;
    }
}

static void
on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct jw_link *l = arg;
    if (jw_link_state(l) == l->role->up_state)
        l->role->ping(l);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct jw_link *l = arg;
    if (!l->_redirected)
        metric_add(l->role->m_reconnect, 1);
    jw_link_connect(l);
}

void
jw_link_set_target(struct jw_link *l, const char *host, int port)
{
    snprintf(l->host, sizeof l->host, "%s", host);
    l->port = port;
}

void
jw_link_set_tls(struct jw_link *l, struct ssl_ctx_st *ctx)
{
    l->_ssl_ctx = ctx;
}

void
jw_link_redirect(struct jw_link *l, const char *host, int port, const char *username,
                 const char *password)
{
    link_close(l);
    jw_link_set_target(l, host, port);
    l->username = username;
    l->password = password;
    l->_redirected = true;
    /* On the next loop turn: the reader may be in use by on_read right now. */
    struct timeval tv = {0, 0};
    evtimer_add(l->_retry, &tv);
}

/* A bufferevent for the next attempt: plain, or TLS expecting tls_name (default: the host). */
static struct bufferevent *
new_bev(struct jw_link *l)
{
    if (!l->_ssl_ctx)
        return bufferevent_socket_new(l->_base, -1, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = jw_tls_ssl_new(l->_ssl_ctx, l->tls_name[0] ? l->tls_name : l->host);
    if (!ssl)
        return NULL;
    /* CLOSE_ON_FREE frees the SSL with the bufferevent (and the SSL on failure here). */
    return bufferevent_openssl_socket_new(l->_base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

/* Starts one connection attempt: numeric addresses connect directly, names go through evdns.
 * The whole attempt (resolution included) is bounded by redis_connect_timeout_ms. */
void
jw_link_connect(struct jw_link *l)
{
    const struct jw_config *c = l->cfg;
    if (!l->_redirected && l->role->prepare)
        l->role->prepare(l);
    l->_redirected = false;
    if (l->_reader)
        redisReaderFree(l->_reader);
    l->_reader = jw_resp_reader_new(&l->limits);
    l->_bev = new_bev(l);
    jw_link_set_state(l, JW_LINK_CONNECTING, NULL);
    if (!l->_bev) {
        jw_link_fail(l, R_CONNECT_FAILED,
                     l->_ssl_ctx ? "cannot set up TLS for this name" : "no bufferevent");
        return;
    }
    bufferevent_setcb(l->_bev, on_read, NULL, on_bev_event, l);
    bufferevent_enable(l->_bev, EV_READ | EV_WRITE);
    jw_link_arm(l, (uint64_t)c->redis_connect_timeout_ms);

    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    memset(&addr, 0, sizeof addr);
    int rc;
    if (inet_pton(AF_INET, l->host, &addr.in4.sin_addr) == 1) {
        addr.in4.sin_family = AF_INET;
        addr.in4.sin_port = htons((uint16_t)l->port);
        rc = bufferevent_socket_connect(l->_bev, &addr.sa, sizeof addr.in4);
    } else if (inet_pton(AF_INET6, l->host, &addr.in6.sin6_addr) == 1) {
        addr.in6.sin6_family = AF_INET6;
        addr.in6.sin6_port = htons((uint16_t)l->port);
        rc = bufferevent_socket_connect(l->_bev, &addr.sa, sizeof addr.in6);
    } else {
        if (!l->_dns)
            l->_dns = evdns_base_new(l->_base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!l->_dns) {
            jw_link_fail(l, R_CONNECT_FAILED, "cannot initialise the DNS resolver");
            return;
        }
        rc = bufferevent_socket_connect_hostname(l->_bev, l->_dns, AF_UNSPEC, l->host, l->port);
    }
    /* An immediate failure has usually been reported through on_bev_event already; fail
     * ignores the second report. */
    if (rc < 0)
        jw_link_fail(l, R_CONNECT_FAILED, "connect() failed at once");
}

void
jw_link_stop(struct jw_link *l, const char *reason)
{
    enum jw_link_state was = jw_link_state(l);
    link_close(l);
    l->_redirected = false;
    if (l->_retry)
        evtimer_del(l->_retry);
    if (was == l->role->up_state)
        metric_set(l->role->m_up, 0);
    jw_link_set_state(l, JW_LINK_STOPPED, reason);
    if (l->role->closed)
        l->role->closed(l, -ECANCELED);
}

void
jw_link_shutdown(struct jw_link *l)
{
    link_close(l);
    if (l->_dns) {
        evdns_base_free(l->_dns, 0);
        l->_dns = NULL;
    }
}

void
jw_link_init(struct jw_link *l, const struct jw_config *cfg, const struct jw_link_role *role,
             void *owner)
{
    memset(l, 0, sizeof *l);
    l->cfg = cfg;
    l->role = role;
    l->owner = owner;
    atomic_init(&l->state, JW_LINK_IDLE);
    jw_link_set_target(l, cfg->redis_host, cfg->redis_port);
    l->username = cfg->redis_username;
    l->password = cfg->redis_password;
    l->limits = (struct jw_resp_limits){.max_bytes = 64u * 1024u, .max_elements = 64};
    jw_backoff_init(&l->_backoff, (uint32_t)cfg->reconnect_initial_ms,
                    (uint32_t)cfg->reconnect_max_ms, cfg->reconnect_multiplier,
                    jw_random_seed() ^ (uint64_t)(uintptr_t)l);
}

int
jw_link_attach(struct jw_link *l, struct event_base *base)
{
    l->_base = base;
    l->_deadline = evtimer_new(base, on_deadline, l);
    l->_ping = event_new(base, -1, EV_PERSIST, on_ping, l);
    l->_retry = evtimer_new(base, on_retry, l);
    if (!l->_deadline || !l->_ping || !l->_retry)
        return -ENOMEM; /* freed by jw_link_free */
    l->_down_since_ms = jw_now_ms();
    return 0;
}

void
jw_link_free(struct jw_link *l)
{
    struct event *evs[] = {l->_deadline, l->_ping, l->_retry};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    l->_deadline = l->_ping = l->_retry = NULL;
    if (l->_reader) {
        redisReaderFree(l->_reader);
        l->_reader = NULL;
    }
}
