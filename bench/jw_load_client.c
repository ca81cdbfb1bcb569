/*
 * jw-load's child side: one epoll loop driving this process's share of WebSocket clients.
 * Each client connects non-blocking from its own source address (127.0.0.2 + i mod K, with
 * IP_BIND_ADDRESS_NO_PORT so the port is picked per destination), sends the HTTP upgrade,
 * checks the 101 answer and its Sec-WebSocket-Accept, subscribes to one job and then reads
 * server frames: text messages (fragmented ones are reassembled), ping (answered by a masked
 * pong), close (answered, then the connection is counted as closed; 4008 separately). Event
 * frames are not JSON-parsed: "progress" (the publisher's event number, to skip warm-up events),
 * "ts" (the publish time, CLOCK_MONOTONIC ns) and "seq" (gap check) are found by string scan.
 * At most o->inflight connections are between connect and ack at once, so the daemon's listen
 * backlog is not flooded.
 */
#define _GNU_SOURCE
#include "jw_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_FRAME (16u << 20)
#define SCRATCH (256u << 10)
#define CTL_TAG UINT32_MAX

enum cstate { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_READY, C_DEAD };

struct conn {
    int fd;
    uint32_t idx;
    uint8_t state;
    bool in_frag, want_out, was_ready;
    char *rbuf; /* unparsed input left from the previous read (partial frame or header) */
    size_t rlen, rcap;
    char *msg; /* a fragmented message being reassembled */
    size_t mlen, mcap;
    char *wbuf; /* output the socket did not take yet */
    size_t wlen;
    uint64_t last_seq;
};

struct child {
    const struct opts *o;
    uint32_t first, count; /* global client indices [first, first+count) */
    struct conn *conns;
    int ep, ctl_fd, res_fd;
    uint64_t warm_events;
    bool have_warm, stopping;
    uint32_t started, acked, failed, inflight;
    struct result_msg r;
    uint64_t hist[BENCH_HIST_BUCKETS];
    bool error_logged, ready_sent;
};

/* ---- the WebSocket client, one per connection ------------------------------------------- */

static void
client_key(uint32_t idx, char out[25])
{
    unsigned char raw[16];
    for (int i = 0; i < 16; i++)
        raw[i] = (unsigned char)((idx * 2654435761u) >> (i % 4 * 8)) ^ (unsigned char)(i * 37);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < 16)
            v |= raw[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < 16 ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < 16 ? b64[v & 63] : '=';
    }
    out[24] = '\0';
}

static void
conn_kill(struct child *ch, struct conn *c)
{
    if (c->state == C_DEAD)
        return;
    if (c->state == C_READY) {
        ch->r.closed++;
    } else {
        ch->failed++;
        ch->inflight--;
    }
    c->state = C_DEAD;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->rbuf);
    free(c->msg);
    free(c->wbuf);
    c->rbuf = c->msg = c->wbuf = NULL;
    c->rlen = c->rcap = c->mlen = c->mcap = c->wlen = 0;
}

static void
set_events(struct child *ch, struct conn *c, bool out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u),
                             .data.u32 = (uint32_t)(c - ch->conns)};
    if (epoll_ctl(ch->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

/* Sends now what the socket takes and keeps the rest for EPOLLOUT. */
static void
conn_send(struct child *ch, struct conn *c, const void *data, size_t n)
{
    const char *p = data;
    if (c->wlen == 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_kill(ch, c);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    if (n == 0)
        return;
    c->wbuf = jw_load_xrealloc(c->wbuf, c->wlen + n);
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
    set_events(ch, c, true);
}

/* Client frames must be masked (RFC 6455 5.3); the mask need not be secret here. */
static void
send_frame(struct child *ch, struct conn *c, int opcode, const char *payload, size_t n)
{
    char f[14 + 256];
    size_t h = 0;
    if (n > 256)
        return;
    f[h++] = (char)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (char)(0x80 | n);
    } else {
        f[h++] = (char)(0x80 | 126);
        f[h++] = (char)(n >> 8);
        f[h++] = (char)(n & 0xff);
    }
    uint32_t m = c->idx * 2246822519u + 0x9e3779b9u;
    unsigned char mask[4] = {(unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 24)};
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        f[h + i] = (char)(payload[i] ^ mask[i & 3]);
    conn_send(ch, c, f, h + n);
}

static void
send_subscribe(struct child *ch, struct conn *c)
{
    char m[256];
    uint32_t job = 0;
    if (ch->o->mode == MODE_JOBS)
        job = c->idx % ch->o->jobs;
    else if (ch->o->mode == MODE_IDLE)
        job = c->idx;
    int n =
        snprintf(m, sizeof(m), "{\"type\":\"subscribe\",\"id\":\"1\",\"jobs\":[\"job-%u\"]}", job);
    send_frame(ch, c, 1, m, (size_t)n);
}

/* Parses the unsigned integer after key (e.g. "\"ts\":") in [p, p+n); false if absent. */
static bool
scan_u64(const char *p, size_t n, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    const char *k = memmem(p, n, key, kl);
    if (!k)
        return false;
    const char *s = k + kl, *end = p + n;
    while (s < end && (*s == ' ' || *s == '"'))
        s++;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    *out = v;
    return true;
}

static void
ctl_read_warm(struct child *ch)
{
    if (ch->have_warm)
        return;
    /* The parent writes the warm-up count before its first PUBLISH, so it is already there. */
    if (jw_load_read_all(ch->ctl_fd, &ch->warm_events, sizeof(ch->warm_events)) != 0)
        ch->warm_events = 0;
    ch->have_warm = true;
}

/* Event and snapshot frames share one per-connection sequence (docs/PROTOCOL.md). */
static void
check_seq(struct child *ch, struct conn *c, const char *p, size_t n)
{
    uint64_t seq;
    if (!scan_u64(p, n, "\"seq\":", &seq))
        return;
    if (seq > c->last_seq + 1)
        ch->r.seq_gaps += seq - c->last_seq - 1;
    c->last_seq = seq;
}

static void
on_message(struct child *ch, struct conn *c, const char *p, size_t n)
{
    const char *t = memmem(p, n, "\"type\":\"", 8);
    if (!t) {
        ch->r.bad_frames++;
        return;
    }
    t += 8;
    size_t rest = (size_t)(p + n - t);
    if (rest >= 6 && memcmp(t, "event\"", 6) == 0) {
        uint64_t now = bench_now_ns(), ts = 0, prog = 0;
        if (!scan_u64(p, n, "\"ts\":", &ts) || !scan_u64(p, n, "\"progress\":", &prog)) {
            ch->r.bad_frames++;
            return;
        }
        check_seq(ch, c, p, n);
        if (!ch->ready_sent) { /* nothing of ours is published before the barrier */
            ch->r.warm_received++;
            return;
        }
        ctl_read_warm(ch);
        if (prog < ch->warm_events) {
            ch->r.warm_received++;
            return;
        }
        ch->r.received++;
        if (!ch->r.first_recv_ns)
            ch->r.first_recv_ns = now;
        ch->r.last_recv_ns = now;
        ch->hist[bench_hist_index(now > ts ? (now - ts) / 1000 : 0)]++;
    } else if (rest >= 9 && memcmp(t, "snapshot\"", 9) == 0) {
        check_seq(ch, c, p, n);
    } else if (rest >= 4 && memcmp(t, "ack\"", 4) == 0) {
        if (c->state == C_OPEN) {
            c->state = C_READY;
            c->was_ready = true;
            ch->acked++;
            ch->inflight--;
        }
    } else if (rest >= 6 && memcmp(t, "error\"", 6) == 0) {
        if (!ch->error_logged) {
            fprintf(stderr, "jw-load: client %u got: %.*s\n", c->idx, (int)(n > 300 ? 300 : n), p);
            ch->error_logged = true;
        }
        if (c->state == C_OPEN)
            conn_kill(ch, c);
    }
}

/* Consumes complete frames from p[0..n) (unmasking in place); returns the bytes consumed. */
static size_t
parse_frames(struct child *ch, struct conn *c, char *p, size_t n)
{
    size_t off = 0;
    while (c->state != C_DEAD && n - off >= 2) {
        unsigned char *b = (unsigned char *)p + off;
        bool fin = b[0] & 0x80, masked = b[1] & 0x80;
        int op = b[0] & 0x0f;
        uint64_t len = b[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = ((uint64_t)b[2] << 8) | b[3];
            h = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | b[2 + i];
            h = 10;
        }
        if (len > MAX_FRAME) {
            ch->r.bad_frames++;
            conn_kill(ch, c);
            return n;
        }
        size_t mh = masked ? 4 : 0;
        if (n - off < h + mh + len)
            break;
        char *pl = (char *)b + h + mh;
        if (masked)
            for (uint64_t i = 0; i < len; i++)
                pl[i] ^= (char)b[h + (i & 3)];
        off += h + mh + (size_t)len;
        if (op == 8) { /* close: answer it, then the connection is over */
            if (len >= 2 && ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) == 4008)
                ch->r.closed_4008++;
            send_frame(ch, c, 8, pl, len >= 2 ? 2 : 0);
            conn_kill(ch, c);
            return n;
        } else if (op == 9) {
            send_frame(ch, c, 10, pl, (size_t)len);
        } else if (op == 10) {
            /* unsolicited pong: nothing to do */
        } else if (op == 1 || op == 2 || op == 0) {
            if (op != 0 && fin && !c->in_frag) {
                on_message(ch, c, pl, (size_t)len);
                continue;
            }
            if ((op == 0) != c->in_frag) { /* continuation without start, or nested start */
                ch->r.bad_frames++;
                conn_kill(ch, c);
                return n;
            }
            if (c->mlen + len > MAX_FRAME) {
                conn_kill(ch, c);
                return n;
            }
            if (c->mlen + len > c->mcap) {
                c->mcap = c->mlen + (size_t)len + 256;
                c->msg = jw_load_xrealloc(c->msg, c->mcap);
            }
            memcpy(c->msg + c->mlen, pl, (size_t)len);
            c->mlen += (size_t)len;
            c->in_frag = !fin;
            if (fin) {
                on_message(ch, c, c->msg, c->mlen);
                c->mlen = 0;
            }
        } else {
            ch->r.bad_frames++;
            conn_kill(ch, c);
            return n;
        }
    }
    return off;
}

/* Handles the HTTP 101 answer; returns bytes consumed, 0 if incomplete (or the conn died). */
static size_t
parse_handshake(struct child *ch, struct conn *c, char *p, size_t n)
{
    char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > 8192)
            conn_kill(ch, c);
        return 0;
    }
    size_t hl = (size_t)(end - p) + 4;
    char key[25], want[29];
    client_key(c->idx, key);
    if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0 || bench_ws_accept(key, want) != 0 ||
        !memmem(p, hl, want, 28)) {
        if (!ch->error_logged) {
            fprintf(stderr, "jw-load: client %u: bad handshake answer: %.*s\n", c->idx,
                    (int)(hl > 200 ? 200 : hl), p);
            ch->error_logged = true;
        }
        conn_kill(ch, c);
        return 0;
    }
    c->state = C_OPEN;
    send_subscribe(ch, c);
    return hl;
}

static void
on_readable(struct child *ch, struct conn *c, char *scratch)
{
    for (int rounds = 0; rounds < 4 && c->state != C_DEAD; rounds++) {
        ssize_t r = recv(c->fd, scratch, SCRATCH, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_kill(ch, c);
            return;
        }
        if (r < 0)
            return;
        char *p = scratch;
        size_t n = (size_t)r;
        if (c->rlen > 0) { /* leftover from last time: append and parse from the conn buffer */
            if (c->rlen + n > c->rcap) {
                c->rcap = c->rlen + n;
                c->rbuf = jw_load_xrealloc(c->rbuf, c->rcap);
            }
            memcpy(c->rbuf + c->rlen, scratch, n);
            c->rlen += n;
            p = c->rbuf;
            n = c->rlen;
        }
        size_t off = 0;
        if (c->state == C_HANDSHAKE)
            off = parse_handshake(ch, c, p, n);
        if (c->state == C_OPEN || c->state == C_READY)
            off += parse_frames(ch, c, p + off, n - off);
        if (c->state == C_DEAD)
            return;
        size_t left = n - off;
        if (left > 0 && p != c->rbuf) {
            if (left > c->rcap) {
                c->rcap = left;
                c->rbuf = jw_load_xrealloc(c->rbuf, c->rcap);
            }
            memcpy(c->rbuf, p + off, left);
        } else if (left > 0) {
            memmove(c->rbuf, c->rbuf + off, left);
        }
        c->rlen = left;
        if (c->rlen == 0 && c->rcap > 65536) { /* keep idle connections small */
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
        if ((size_t)r < SCRATCH)
            return;
    }
}

static void
on_writable(struct child *ch, struct conn *c)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t sl = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 || err != 0) {
            conn_kill(ch, c);
            return;
        }
        char key[25], req[512];
        client_key(c->idx, key);
        char sep = strchr(ch->o->path, '?') ? '&' : '?';
        int n =
            snprintf(req, sizeof(req),
                     "GET %s%cuser=%s%u HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     ch->o->path, sep, ch->o->user_prefix,
                     ch->o->users > 1 ? c->idx % ch->o->users : 0u, ch->o->host, ch->o->port, key);
        if (ch->o->users <= 1) /* one user for all: no numeric suffix */
            n = snprintf(req, sizeof(req),
                         "GET %s%cuser=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         ch->o->path, sep, ch->o->user_prefix, ch->o->host, ch->o->port, key);
        c->state = C_HANDSHAKE;
        c->want_out = true;
        set_events(ch, c, false);
        conn_send(ch, c, req, (size_t)n);
        return;
    }
    if (c->wlen == 0) {
        set_events(ch, c, false);
        return;
    }
    ssize_t w = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        conn_kill(ch, c);
        return;
    }
    if (w > 0) {
        memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t)w);
        c->wlen -= (size_t)w;
    }
    if (c->wlen == 0)
        set_events(ch, c, false);
}

static void
start_connect(struct child *ch, struct conn *c)
{
    const struct opts *o = ch->o;
    ch->inflight++;
    c->state = C_CONNECTING;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_kill(ch, c);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + c->idx % o->src_addrs);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, o->host, &dst.sin_addr);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS)) {
        conn_kill(ch, c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - ch->conns)};
    c->want_out = true;
    if (epoll_ctl(ch->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        conn_kill(ch, c);
}

static void
child_finish(struct child *ch)
{
    uint32_t nfail = 0;
    uint32_t *fails = jw_load_xrealloc(NULL, sizeof(uint32_t) * (ch->count + 1));
    for (uint32_t i = 0; i < ch->count; i++)
        if (!ch->conns[i].was_ready) /* closed mid-run still counts as expected */
            fails[nfail++] = ch->conns[i].idx;
    ch->r.acked = ch->acked;
    ch->r.failed = ch->failed;
    ch->r.nfail = nfail;
    if (jw_load_write_all(ch->res_fd, &ch->r, sizeof(ch->r)) != 0 ||
        jw_load_write_all(ch->res_fd, ch->hist, sizeof(ch->hist)) != 0 ||
        jw_load_write_all(ch->res_fd, fails, sizeof(uint32_t) * nfail) != 0)
        _exit(1);
    _exit(0);
}

void
jw_load_child_run(const struct opts *o, uint32_t first, uint32_t count, int ctl_fd, int res_fd)
{
    static struct child ch;
    ch.o = o;
    ch.first = first;
    ch.count = count;
    ch.ctl_fd = ctl_fd;
    ch.res_fd = res_fd;
    ch.conns = calloc(count ? count : 1, sizeof(struct conn));
    char *scratch = malloc(SCRATCH);
    if (!ch.conns || !scratch)
        _exit(1);
    for (uint32_t i = 0; i < count; i++) {
        ch.conns[i].fd = -1;
        ch.conns[i].idx = first + i;
    }
    ch.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event cev = {.events = EPOLLIN, .data.u32 = CTL_TAG};
    if (ch.ep < 0 || epoll_ctl(ch.ep, EPOLL_CTL_ADD, ctl_fd, &cev) != 0)
        _exit(1);
    uint64_t deadline = bench_now_ns() + (uint64_t)(o->connect_timeout * 1e9);
    struct epoll_event evs[512];
    for (;;) {
        while (ch.started < count && ch.inflight < o->inflight)
            start_connect(&ch, &ch.conns[ch.started++]);
        if (!ch.ready_sent && (ch.acked + ch.failed == count || bench_now_ns() > deadline)) {
            for (uint32_t i = 0; i < count; i++) /* the barrier: whoever is not acked failed */
                if (ch.conns[i].state != C_READY && ch.conns[i].state != C_DEAD)
                    conn_kill(&ch, &ch.conns[i]);
            ch.started = count;
            struct ready_msg rm = {.acked = ch.acked, .failed = count - ch.acked};
            if (jw_load_write_all(res_fd, &rm, sizeof(rm)) != 0)
                _exit(1);
            ch.ready_sent = true;
        }
        int n = epoll_wait(ch.ep, evs, 512, 100);
        if (n < 0 && errno != EINTR)
            _exit(1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u32 == CTL_TAG) {
                if (!ch.have_warm) {
                    ctl_read_warm(&ch);
                    continue; /* EOF (stop) will show as readable again */
                }
                char b;
                if (read(ctl_fd, &b, 1) <= 0)
                    child_finish(&ch);
                continue;
            }
            struct conn *c = &ch.conns[evs[i].data.u32];
            if (c->state == C_DEAD)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(&ch, c, scratch);
            if (c->state != C_DEAD && (evs[i].events & EPOLLOUT))
                on_writable(&ch, c);
        }
    }
}
