/*
 * jw-ceiling: the baseline jobwire is compared against, "what the kernel allows here".
 *
 * A tiny WebSocket server with the same outside shape as jobwire for what jw-load does: it
 * accepts /ws upgrades (any path, any user), sends a welcome, answers {"type":"subscribe",
 * "jobs":["X"]} with an ack and ping with pong, and forwards Redis events published on
 * ai:job:<kind>:<jobId> to the subscribers of <jobId> as event frames of the same layout and
 * size jobwire sends ({"type":"event",...,"payload":<as published>,"seq":N}, seq per
 * connection). Two threads, like jobwire: a hiredis blocking PSUBSCRIBE thread hands each
 * message to the epoll thread through a mutex-protected list and an eventfd; the epoll thread
 * builds the frame body once and writes it to each subscriber with one plain non-blocking
 * send() per frame (bytes the socket does not take wait in a per-connection buffer; a
 * connection more than --queue-max bytes behind is closed, like jobwire's 4008).
 *
 * What it leaves out, on purpose, so the gap to jobwire is the cost of libwebsockets, JSON
 * parsing/validation, authorization and the hub: no JSON parsing (the job id comes from the
 * channel, userId from a string scan), no auth, no kinds filter, no conflation, no metrics.
 * It serves for at most --lifetime seconds and prints its counters on exit (or SIGTERM/SIGINT).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define TAG_LISTEN UINT32_MAX
#define TAG_WAKE (UINT32_MAX - 1)
#define MAX_IN 65536

struct conn {
    bool used, open;
    uint32_t job; /* job index + 1, 0 = none (one job per connection is all jw-load needs) */
    uint64_t seq;
    char *in;
    size_t inlen;
    char *out;
    size_t outlen, outcap;
};

struct job {
    char *name;
    int *fds;
    size_t n, cap;
};

struct msg {
    struct msg *next;
    char *job;
    char *body; /* frame payload without the closing ",\"seq\":N}" */
    size_t bodylen;
};

static struct {
    const char *listen_addr, *redis_host;
    int port, redis_port;
    double lifetime;
    size_t queue_max;
} O = {"127.0.0.1", "127.0.0.1", 0, 6379, 300, 1u << 20};

static struct conn *conns;
static size_t nconns;
static struct job *jobs; /* open addressing, power-of-two size */
static size_t jobs_cap = 1u << 16, jobs_n;
static int ep, wake_fd;
static pthread_mutex_t inbox_mu = PTHREAD_MUTEX_INITIALIZER;
static struct msg *inbox_head, *inbox_tail;
static volatile sig_atomic_t stop;
static uint64_t n_accepted, n_events, n_frames, n_bytes, n_slow_closed, n_send_calls;

static void *
xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

static uint64_t
hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static struct job *
job_find(const char *name, bool create)
{
    size_t i = hash_str(name) & (jobs_cap - 1);
    while (jobs[i].name) {
        if (strcmp(jobs[i].name, name) == 0)
            return &jobs[i];
        i = (i + 1) & (jobs_cap - 1);
    }
    if (!create || jobs_n * 2 >= jobs_cap)
        return NULL; /* the table does not grow: 32k jobs are plenty for a baseline */
    jobs[i].name = strdup(name);
    jobs_n++;
    return &jobs[i];
}

static void
conn_close(int fd)
{
    struct conn *c = &conns[fd];
    if (!c->used)
        return;
    if (c->job) {
        struct job *j = &jobs[c->job - 1];
        for (size_t i = 0; i < j->n; i++)
            if (j->fds[i] == fd) {
                j->fds[i] = j->fds[--j->n];
                break;
            }
    }
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof(*c));
    close(fd);
}

static void
want_out(int fd, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.u32 = (uint32_t)fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Writes now what the socket takes; queues the rest. Returns false if the conn was closed. */
static bool
conn_write(int fd, const char *p, size_t n)
{
    struct conn *c = &conns[fd];
    if (c->outlen == 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        n_send_calls++;
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close(fd);
            return false;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            n_bytes += (size_t)w;
        }
        if (n == 0)
            return true;
        want_out(fd, true);
    }
    if (c->outlen + n > O.queue_max) {
        n_slow_closed++;
        conn_close(fd);
        return false;
    }
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = realloc(c->out, c->outcap);
        if (!c->out)
            abort();
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return true;
}

static size_t
frame_header(char *h, size_t len)
{
    h[0] = (char)0x81;
    if (len < 126) {
        h[1] = (char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (char)(len >> 8);
        h[3] = (char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static void
send_text(int fd, const char *s, size_t n)
{
    char h[10];
    size_t hl = frame_header(h, n);
    char *f = xmalloc(hl + n);
    memcpy(f, h, hl);
    memcpy(f + hl, s, n);
    conn_write(fd, f, hl + n);
    free(f);
}

static void
on_client_text(int fd, char *p, size_t n)
{
    struct conn *c = &conns[fd];
    char reply[512];
    if (memmem(p, n, "\"subscribe\"", 11)) {
        char *j = memmem(p, n, "\"jobs\":[\"", 9);
        if (!j)
            return;
        j += 9;
        char *e = memchr(j, '"', (size_t)(p + n - j));
        if (!e || e - j > 128)
            return;
        char name[130];
        memcpy(name, j, (size_t)(e - j));
        name[e - j] = '\0';
        struct job *jb = c->job ? NULL : job_find(name, true);
        if (jb) {
            if (jb->n == jb->cap) {
                jb->cap = jb->cap ? jb->cap * 2 : 4;
                jb->fds = realloc(jb->fds, jb->cap * sizeof(int));
                if (!jb->fds)
                    abort();
            }
            jb->fds[jb->n++] = fd;
            c->job = (uint32_t)(jb - jobs) + 1;
        }
        int rl = snprintf(reply, sizeof(reply),
                          "{\"type\":\"ack\",\"id\":\"1\",\"op\":\"subscribe\",\"scope\":\"jobs\","
                          "\"jobs\":[\"%s\"]}",
                          name);
        send_text(fd, reply, (size_t)rl);
    } else if (memmem(p, n, "\"ping\"", 6)) {
        send_text(fd, "{\"type\":\"pong\",\"id\":\"1\"}", 24);
    }
}

static bool
on_handshake(int fd)
{
    struct conn *c = &conns[fd];
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end)
        return c->inlen < 8192;
    *end = '\0';
    char *k = strcasestr(c->in, "\r\nSec-WebSocket-Key:");
    char key[64], acc[29], resp[256];
    if (!k || sscanf(k + 20, " %63[^\r\n ]", key) != 1 || bench_ws_accept(key, acc) != 0)
        return false;
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    c->open = true;
    if (!conn_write(fd, resp, (size_t)n))
        return true; /* already closed */
    static const char w[] =
        "{\"type\":\"welcome\",\"protocol\":1,\"connectionId\":\"x\",\"userId\":\"bench\","
        "\"admin\":false}";
    send_text(fd, w, sizeof(w) - 1);
    return true;
}

/* Client frames are masked and small; control frames other than close are ignored. */
static bool
on_frames(int fd)
{
    struct conn *c = &conns[fd];
    size_t off = 0;
    while (c->inlen - off >= 6) {
        unsigned char *b = (unsigned char *)c->in + off;
        size_t len = b[1] & 0x7f, h = 2;
        if (len == 126) {
            len = ((size_t)b[2] << 8) | b[3];
            h = 4;
        } else if (len == 127) {
            return false;
        }
        if (!(b[1] & 0x80))
            return false;
        if (c->inlen - off < h + 4 + len)
            break;
        char *pl = (char *)b + h + 4;
        for (size_t i = 0; i < len; i++)
            pl[i] ^= (char)b[h + (i & 3)];
        int op = b[0] & 0x0f;
        off += h + 4 + len;
        if (op == 8)
            return false;
        if (op == 1)
            on_client_text(fd, pl, len);
        if (!conns[fd].used)
            return true;
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
    return true;
}

static void
on_readable(int fd)
{
    struct conn *c = &conns[fd];
    if (!c->in)
        c->in = xmalloc(MAX_IN);
    ssize_t r = recv(fd, c->in + c->inlen, MAX_IN - c->inlen, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(fd);
        return;
    }
    if (r < 0)
        return;
    c->inlen += (size_t)r;
    bool was_open = c->open;
    bool ok = was_open ? on_frames(fd) : on_handshake(fd);
    if (!was_open && ok && conns[fd].used && c->open)
        ok = on_frames(fd); /* frames that came with the handshake */
    if (!ok || (conns[fd].used && conns[fd].inlen == MAX_IN))
        conn_close(fd);
}

static void
on_writable(int fd)
{
    struct conn *c = &conns[fd];
    ssize_t w = send(fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    n_send_calls++;
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(fd);
        return;
    }
    if (w > 0) {
        memmove(c->out, c->out + w, c->outlen - (size_t)w);
        c->outlen -= (size_t)w;
        n_bytes += (size_t)w;
    }
    if (c->outlen == 0)
        want_out(fd, false);
}

/* The fan-out: one frame per subscriber, one send() each. */
static void
drain_inbox(void)
{
    uint64_t v;
    if (read(wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&inbox_mu);
    struct msg *m = inbox_head;
    inbox_head = inbox_tail = NULL;
    pthread_mutex_unlock(&inbox_mu);
    char *frame = NULL;
    size_t fcap = 0;
    while (m) {
        struct msg *next = m->next;
        struct job *j = job_find(m->job, false);
        n_events++;
        if (fcap < m->bodylen + 64) {
            fcap = m->bodylen + 64;
            frame = realloc(frame, fcap);
            if (!frame)
                abort();
        }
        for (size_t i = 0; j && i < j->n; i++) {
            int fd = j->fds[i];
            char tail[32];
            int tl =
                snprintf(tail, sizeof(tail), ",\"seq\":%llu}", (unsigned long long)++conns[fd].seq);
            size_t len = m->bodylen + (size_t)tl, hl = frame_header(frame, len);
            memcpy(frame + hl, m->body, m->bodylen);
            memcpy(frame + hl + m->bodylen, tail, (size_t)tl);
            size_t before = j->n;
            if (conn_write(fd, frame, hl + len))
                n_frames++;
            if (j->n < before) /* closed: the last subscriber moved into slot i */
                i--;
        }
        free(m->job);
        free(m->body);
        free(m);
        m = next;
    }
    free(frame);
}

static void *
redis_thread(void *arg)
{
    redisContext *rc = redisConnect(O.redis_host, O.redis_port);
    if (!rc || rc->err) {
        fprintf(stderr, "jw-ceiling: redis: %s\n", rc ? rc->errstr : "oom");
        exit(1);
    }
    redisReply *rep = redisCommand(rc, "PSUBSCRIBE ai:job:*");
    if (!rep)
        exit(1);
    freeReplyObject(rep);
    while (!stop && redisGetReply(rc, (void **)&rep) == REDIS_OK) {
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
            freeReplyObject(rep);
            continue;
        }
        const char *chan = rep->element[2]->str, *pl = rep->element[3]->str;
        size_t pllen = rep->element[3]->len;
        const char *kind = chan + 7, *colon = strchr(kind, ':'); /* after "ai:job:" */
        if (strncmp(chan, "ai:job:", 7) != 0 || !colon) {
            freeReplyObject(rep);
            continue;
        }
        char user[130] = "";
        const char *u = memmem(pl, pllen, "\"userId\":\"", 10);
        if (u)
            sscanf(u + 10, "%128[^\"]", user);
        struct msg *m = xmalloc(sizeof(*m));
        m->next = NULL;
        m->job = strdup(colon + 1);
        m->body = xmalloc(pllen + strlen(chan) * 2 + 300);
        int n = sprintf(m->body,
                        "{\"type\":\"event\",\"kind\":\"%.*s\",\"jobId\":\"%s\",\"userId\":\"%s\","
                        "\"channel\":\"%s\",\"payload\":",
                        (int)(colon - kind), kind, colon + 1, user, chan);
        memcpy(m->body + n, pl, pllen);
        m->bodylen = (size_t)n + pllen;
        freeReplyObject(rep);
        pthread_mutex_lock(&inbox_mu);
        if (inbox_tail)
            inbox_tail->next = m;
        else
            inbox_head = m;
        inbox_tail = m;
        pthread_mutex_unlock(&inbox_mu);
        uint64_t one = 1;
        if (write(wake_fd, &one, sizeof(one)) < 0) {
            /* the counter cannot overflow in a bench run */
        }
    }
    redisFree(rc);
    return NULL;
}

static void
on_signal(int sig)
{
    stop = 1;
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"listen", 1, 0, 'l'},
                                       {"port", 1, 0, 'p'},
                                       {"redis-host", 1, 0, 'H'},
                                       {"redis-port", 1, 0, 'R'},
                                       {"lifetime", 1, 0, 't'},
                                       {"queue-max", 1, 0, 'q'},
                                       {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'l':
            O.listen_addr = optarg;
            break;
        case 'p':
            O.port = atoi(optarg);
            break;
        case 'H':
            O.redis_host = optarg;
            break;
        case 'R':
            O.redis_port = atoi(optarg);
            break;
        case 't':
            O.lifetime = strtod(optarg, NULL);
            break;
        case 'q':
            O.queue_max = strtoul(optarg, NULL, 10);
            break;
        default:
            fputs("usage: jw-ceiling --port P [--listen 127.0.0.1] [--redis-host H] "
                  "[--redis-port R] [--lifetime S] [--queue-max BYTES]\n",
                  stderr);
            return 1;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.port)};
    if (!O.port || inet_pton(AF_INET, O.listen_addr, &sa.sin_addr) != 1 ||
        (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
        fputs("jw-ceiling: --port is required and --listen must be a loopback address\n", stderr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    nconns = (size_t)rl.rlim_cur + 16;
    conns = calloc(nconns, sizeof(struct conn));
    jobs = calloc(jobs_cap, sizeof(struct job));
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (!conns || !jobs || ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(ls, 4096) != 0) {
        perror("jw-ceiling: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TAG_LISTEN};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.u32 = TAG_WAKE;
    epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev);
    pthread_t th;
    pthread_create(&th, NULL, redis_thread, NULL);
    pthread_detach(th);
    fprintf(stderr, "jw-ceiling: listening on %s:%d\n", O.listen_addr, O.port);
    uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(O.lifetime * 1e9);
    struct epoll_event evs[512];
    while (!stop && bench_now_ns() < deadline) {
        int n = epoll_wait(ep, evs, 512, 200);
        for (int i = 0; i < n; i++) {
            uint32_t tag = evs[i].data.u32;
            if (tag == TAG_LISTEN) {
                for (int k = 0; k < 256; k++) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    if ((size_t)fd >= nconns) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conns[fd].used = true;
                    n_accepted++;
                    struct epoll_event cev = {.events = EPOLLIN, .data.u32 = (uint32_t)fd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
            } else if (tag == TAG_WAKE) {
                drain_inbox();
            } else {
                int fd = (int)tag;
                if (conns[fd].used && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                    on_readable(fd);
                if (conns[fd].used && (evs[i].events & EPOLLOUT))
                    on_writable(fd);
            }
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    printf("jw-ceiling: %.1f s: accepted %llu, events %llu, frames %llu, bytes %llu, "
           "send calls %llu, slow closed %llu\n",
           secs, (unsigned long long)n_accepted, (unsigned long long)n_events,
           (unsigned long long)n_frames, (unsigned long long)n_bytes,
           (unsigned long long)n_send_calls, (unsigned long long)n_slow_closed);
    return 0;
}
