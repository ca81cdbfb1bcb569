/*
 * jw-load: WebSocket load generator and end-to-end latency recorder for jobwire.
 *
 * The parent forks --procs children. Each child opens its share of the --clients connections
 * with its own minimal non-blocking WebSocket client on one epoll loop (source addresses
 * 127.0.0.2.. spread the 4-tuples so ephemeral ports do not run out), subscribes each connection
 * to one job (jobs mode: job-<i mod J>; broadcast: job-0; idle: job-<i>) and reports "ready"
 * through a pipe once every connection is acknowledged or has failed. After that barrier the
 * parent PUBLISHes (hiredis, evenly paced, pipelined per 1 ms tick) to ai:job:progress:<job>
 * payloads carrying the CLOCK_MONOTONIC publish time; children take latency = receive time -
 * ts per event frame (a cheap scan, no JSON parse) into a log-linear histogram. When the
 * publishing and the drain time are over the parent closes the control pipes, children send
 * back their counters and histograms, and the parent prints one report. Everything is bounded:
 * connect phase (--connect-timeout), publishing (--warmup + --duration), drain (--drain).
 *
 * Exit status: 0 ok, 1 usage or setup error, 2 too many connect failures, 3 missing deliveries.
 */
#define _GNU_SOURCE
#include "jw_load.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static struct opts O = {
    .port = 0,
    .clients = 1000,
    .procs = 2,
    .src_addrs = 4,
    .jobs = 100,
    .mode = MODE_JOBS,
    .rate = 1000,
    .duration = 10,
    .warmup = 1,
    .drain = 2,
    .connect_timeout = 60,
    .settle = 3,
    .redis_host = "127.0.0.1",
    .redis_port = 6379,
    .user_prefix = "bench",
    .users = 1,
    .inflight = 256,
    .max_fail_pct = 0,
};

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

void *
jw_load_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fputs("jw-load: out of memory\n", stderr);
        abort();
    }
    return q;
}

int
jw_load_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
jw_load_read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- the parent: barrier, publisher, report ------------------------------------------- */

static long
proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static long
proc_cpu_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* Publishes total events at o->rate, evenly paced (1 ms ticks, pipelined within a tick).
 * Event k goes to job k mod J (broadcast: job 0); pub_per_job counts the measured ones. */
static uint64_t
publish(const struct opts *o, redisContext *rc, uint64_t warm, uint64_t total,
        uint64_t *pub_per_job, uint64_t *t_first_measured, uint64_t *zero_receivers)
{
    uint32_t jobs = o->mode == MODE_JOBS ? o->jobs : 1;
    char *pad = NULL;
    if (o->payload_bytes > 0) {
        pad = jw_load_xrealloc(NULL, o->payload_bytes + 1);
        memset(pad, 'x', o->payload_bytes);
        pad[o->payload_bytes] = '\0';
    }
    char *payload = jw_load_xrealloc(NULL, o->payload_bytes + 256);
    uint64_t start = bench_now_ns(), sent = 0;
    while (sent < total) {
        uint64_t now = bench_now_ns();
        uint64_t due = (uint64_t)((double)(now - start) * o->rate / 1e9) + 1;
        if (due > total)
            due = total;
        if (due <= sent) {
            uint64_t next = start + (uint64_t)((double)sent * 1e9 / o->rate);
            bench_sleep_ns(next > now ? (next - now < 1000000 ? next - now : 1000000) : 0);
            continue;
        }
        uint64_t batch = 0;
        for (; sent < due && batch < 2000; sent++, batch++) {
            uint32_t job = (uint32_t)(sent % jobs);
            uint64_t ts = bench_now_ns();
            int n = snprintf(payload, 200,
                             "{\"jobId\":\"job-%u\",\"userId\":\"%s\",\"progress\":%llu,"
                             "\"ts\":%llu",
                             job, o->user_prefix, (unsigned long long)sent, (unsigned long long)ts);
            if (pad && o->payload_bytes > (size_t)n + 10) {
                size_t padn = o->payload_bytes - (size_t)n - 10;
                n += snprintf(payload + n, padn + 10, ",\"pad\":\"%.*s\"", (int)padn, pad);
            }
            payload[n++] = '}';
            char chan[64];
            snprintf(chan, sizeof(chan), "ai:job:progress:job-%u", job);
            redisAppendCommand(rc, "PUBLISH %s %b", chan, payload, (size_t)n);
            if (sent == warm)
                *t_first_measured = ts;
            if (sent >= warm)
                pub_per_job[job]++;
        }
        for (uint64_t i = 0; i < batch; i++) {
            redisReply *rep = NULL;
            if (redisGetReply(rc, (void **)&rep) != REDIS_OK) {
                fprintf(stderr, "jw-load: redis: %s\n", rc->errstr);
                free(payload);
                free(pad);
                return sent;
            }
            if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
                (*zero_receivers)++;
            freeReplyObject(rep);
        }
    }
    free(payload);
    free(pad);
    return sent;
}

static double
ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void
usage(void)
{
    fputs("usage: jw-load --url ws://127.0.0.1:PORT/ws --clients N --procs P --src-addrs K\n"
          "  --mode jobs|broadcast|idle --jobs J --rate EV_PER_S --duration S\n"
          "  --redis-host H --redis-port R [--warmup S] [--drain S] [--connect-timeout S]\n"
          "  [--settle S] [--user-prefix u] [--users U] [--payload-bytes B] [--inflight N]\n"
          "  [--pid JOBWIRE_PID] [--max-fail-pct X] [--max-missing N] [--idle]\n",
          stderr);
    exit(1);
}

static void
parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", 1, 0, 'u'},         {"clients", 1, 0, 'c'},       {"procs", 1, 0, 'P'},
        {"src-addrs", 1, 0, 'k'},   {"mode", 1, 0, 'm'},          {"jobs", 1, 0, 'J'},
        {"rate", 1, 0, 'r'},        {"duration", 1, 0, 'd'},      {"redis-host", 1, 0, 'H'},
        {"redis-port", 1, 0, 'R'},  {"warmup", 1, 0, 'w'},        {"user-prefix", 1, 0, 'U'},
        {"users", 1, 0, 'n'},       {"payload-bytes", 1, 0, 'b'}, {"pid", 1, 0, 'p'},
        {"idle", 0, 0, 'i'},        {"drain", 1, 0, 'D'},         {"connect-timeout", 1, 0, 'T'},
        {"settle", 1, 0, 's'},      {"inflight", 1, 0, 'I'},      {"max-fail-pct", 1, 0, 'F'},
        {"max-missing", 1, 0, 'M'}, {"help", 0, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (sscanf(optarg, "ws://%63[0-9.]:%d%255s", O.host, &O.port, O.path) != 3)
                usage();
            break;
        case 'c':
            O.clients = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'P':
            O.procs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            O.src_addrs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            if (strcmp(optarg, "jobs") == 0)
                O.mode = MODE_JOBS;
            else if (strcmp(optarg, "broadcast") == 0)
                O.mode = MODE_BROADCAST;
            else if (strcmp(optarg, "idle") == 0)
                O.mode = MODE_IDLE;
            else
                usage();
            break;
        case 'i':
            O.mode = MODE_IDLE;
            break;
        case 'J':
            O.jobs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            O.rate = strtod(optarg, NULL);
            break;
        case 'd':
            O.duration = strtod(optarg, NULL);
            break;
        case 'w':
            O.warmup = strtod(optarg, NULL);
            break;
        case 'D':
            O.drain = strtod(optarg, NULL);
            break;
        case 'T':
            O.connect_timeout = strtod(optarg, NULL);
            break;
        case 's':
            O.settle = strtod(optarg, NULL);
            break;
        case 'H':
            snprintf(O.redis_host, sizeof(O.redis_host), "%s", optarg);
            break;
        case 'R':
            O.redis_port = atoi(optarg);
            break;
        case 'U':
            snprintf(O.user_prefix, sizeof(O.user_prefix), "%s", optarg);
            break;
        case 'n':
            O.users = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'b':
            O.payload_bytes = strtoul(optarg, NULL, 10);
            break;
        case 'p':
            O.pid = atoi(optarg);
            break;
        case 'I':
            O.inflight = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'F':
            O.max_fail_pct = strtod(optarg, NULL);
            break;
        case 'M':
            O.max_missing = strtoull(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    struct in_addr a;
    if (!O.port || inet_pton(AF_INET, O.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fputs("jw-load: --url must be ws://127.x.y.z:PORT/path (loopback only)\n", stderr);
        exit(1);
    }
    if (!O.clients || !O.procs || !O.src_addrs || O.src_addrs > 250 || !O.jobs || O.rate <= 0 ||
        O.duration <= 0 || O.duration > 600 || O.warmup < 0 || O.warmup > 60 || !O.inflight ||
        O.clients > 1000000 || O.procs > 64)
        usage();
    if (O.users > 1 && O.mode != MODE_IDLE)
        fputs("jw-load: note: --users > 1 means events (userId bench) reach only user 0\n", stderr);
}

int
main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uint32_t share = (O.clients + O.procs - 1) / O.procs;
    if (share + 64 > rl.rlim_cur) {
        fprintf(stderr, "jw-load: %u clients per process exceed the fd limit %llu: raise --procs\n",
                share, (unsigned long long)rl.rlim_cur);
        return 1;
    }
    uint32_t jobs = O.mode == MODE_JOBS ? O.jobs : O.mode == MODE_BROADCAST ? 1 : O.clients;
    long rss0 = O.pid ? proc_rss_kb(O.pid) : -1;

    pid_t *pids = calloc(O.procs, sizeof(pid_t));
    int *ctl = calloc(O.procs, sizeof(int)), *res = calloc(O.procs, sizeof(int));
    uint64_t t_conn0 = bench_now_ns();
    for (uint32_t p = 0; p < O.procs; p++) {
        int cp[2], rp[2];
        if (pipe2(cp, O_CLOEXEC) != 0 || pipe2(rp, O_CLOEXEC) != 0)
            die("pipe");
        uint32_t first = p * share, count = 0;
        if (first < O.clients)
            count = O.clients - first < share ? O.clients - first : share;
        pids[p] = fork();
        if (pids[p] < 0)
            die("fork");
        if (pids[p] == 0) {
            close(cp[1]);
            close(rp[0]);
            for (uint32_t q = 0; q < p; q++) { /* siblings' pipe ends are not ours */
                close(ctl[q]);
                close(res[q]);
            }
            jw_load_child_run(&O, first, count, cp[0], rp[1]);
        }
        close(cp[0]);
        close(rp[1]);
        ctl[p] = cp[1];
        res[p] = rp[0];
    }
    uint64_t acked = 0, failed = 0;
    for (uint32_t p = 0; p < O.procs; p++) {
        struct ready_msg rm;
        if (jw_load_read_all(res[p], &rm, sizeof(rm)) != 0) {
            fprintf(stderr, "jw-load: child %u died before the barrier\n", p);
            return 1;
        }
        acked += rm.acked;
        failed += rm.failed;
    }
    double conn_s = (double)(bench_now_ns() - t_conn0) / 1e9;
    printf("clients connected+subscribed: %llu of %u in %.1f s (connect failures: %llu)\n",
           (unsigned long long)acked, O.clients, conn_s, (unsigned long long)failed);
    fflush(stdout);

    uint64_t *pub = calloc(jobs, sizeof(uint64_t));
    uint64_t warm = 0, total = 0, published = 0, t_first = 0, zero_recv = 0;
    long cpu0 = O.pid ? proc_cpu_ticks(O.pid) : -1;
    uint64_t t_pub0 = bench_now_ns(), t_pub1 = t_pub0;
    if (O.mode == MODE_IDLE) {
        bench_sleep_ns((uint64_t)(O.settle * 1e9));
        long rss1 = O.pid ? proc_rss_kb(O.pid) : -1;
        if (O.pid)
            printf("jobwire RSS: %ld kB before, %ld kB with %llu idle subscribed clients: "
                   "%.2f kB per connection\n",
                   rss0, rss1, (unsigned long long)acked,
                   acked ? (double)(rss1 - rss0) / (double)acked : 0.0);
    } else {
        redisContext *rc =
            redisConnectWithTimeout(O.redis_host, O.redis_port, (struct timeval){.tv_sec = 5});
        if (!rc || rc->err) {
            fprintf(stderr, "jw-load: redis connect failed: %s\n", rc ? rc->errstr : "oom");
            return 1;
        }
        redisSetTimeout(rc, (struct timeval){.tv_sec = 5}); /* a stuck Redis ends the run */
        warm = (uint64_t)(O.rate * O.warmup);
        total = warm + (uint64_t)(O.rate * O.duration);
        for (uint32_t p = 0; p < O.procs; p++)
            if (jw_load_write_all(ctl[p], &warm, sizeof(warm)) != 0)
                fprintf(stderr, "jw-load: child %u gone\n", p);
        published = publish(&O, rc, warm, total, pub, &t_first, &zero_recv);
        t_pub1 = bench_now_ns();
        redisFree(rc);
        bench_sleep_ns((uint64_t)(O.drain * 1e9));
    }
    long cpu1 = O.pid ? proc_cpu_ticks(O.pid) : -1;
    long rss_end = O.pid ? proc_rss_kb(O.pid) : -1;
    uint64_t t_end = bench_now_ns();
    for (uint32_t p = 0; p < O.procs; p++)
        close(ctl[p]); /* EOF tells the children to report */

    /* Subscribers per job: everyone acked, minus the failed indices the children send. */
    uint64_t *subs = calloc(jobs, sizeof(uint64_t));
    for (uint32_t i = 0; i < O.clients; i++)
        subs[O.mode == MODE_JOBS ? i % jobs : O.mode == MODE_BROADCAST ? 0 : i]++;
    struct result_msg tot = {0};
    static uint64_t hist[BENCH_HIST_BUCKETS], h[BENCH_HIST_BUCKETS];
    for (uint32_t p = 0; p < O.procs; p++) {
        struct result_msg r;
        if (jw_load_read_all(res[p], &r, sizeof(r)) != 0 ||
            jw_load_read_all(res[p], h, sizeof(h)) != 0) {
            fprintf(stderr, "jw-load: child %u sent no result\n", p);
            return 1;
        }
        for (uint64_t i = 0; i < r.nfail; i++) {
            uint32_t idx;
            if (jw_load_read_all(res[p], &idx, sizeof(idx)) != 0)
                return 1;
            subs[O.mode == MODE_JOBS ? idx % jobs : O.mode == MODE_BROADCAST ? 0 : idx]--;
        }
        for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
            hist[i] += h[i];
        tot.received += r.received;
        tot.warm_received += r.warm_received;
        tot.seq_gaps += r.seq_gaps;
        tot.closed += r.closed;
        tot.closed_4008 += r.closed_4008;
        tot.bad_frames += r.bad_frames;
        if (r.last_recv_ns > tot.last_recv_ns)
            tot.last_recv_ns = r.last_recv_ns;
    }
    for (uint32_t p = 0; p < O.procs; p++)
        waitpid(pids[p], NULL, 0);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double load_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                      (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;

    int rc_exit = 0;
    double fail_pct = 100.0 * (double)failed / (double)O.clients;
    if (fail_pct > O.max_fail_pct) {
        printf("FAIL: %llu connect failures (%.2f %% > --max-fail-pct %.2f)\n",
               (unsigned long long)failed, fail_pct, O.max_fail_pct);
        rc_exit = 2;
    }
    if (O.mode != MODE_IDLE) {
        uint64_t expected = 0;
        for (uint32_t j = 0; j < jobs; j++)
            expected += pub[j] * subs[j];
        double span = tot.last_recv_ns > t_first ? (double)(tot.last_recv_ns - t_first) / 1e9 : 0;
        double pub_s = (double)(t_pub1 - t_pub0) / 1e9;
        printf("events published: %llu (+%llu warm-up) in %.2f s = %.0f ev/s; PUBLISH with 0 "
               "receivers: %llu\n",
               (unsigned long long)(published - warm), (unsigned long long)warm, pub_s,
               (double)published / pub_s, (unsigned long long)zero_recv);
        printf("deliveries received: %llu of %llu expected (missing %lld; seq gaps %llu; "
               "closed mid-run %llu, of which 4008 %llu; bad frames %llu)\n",
               (unsigned long long)tot.received, (unsigned long long)expected,
               (long long)(expected - tot.received), (unsigned long long)tot.seq_gaps,
               (unsigned long long)tot.closed, (unsigned long long)tot.closed_4008,
               (unsigned long long)tot.bad_frames);
        printf("deliveries/s: %.0f (first measured publish to last delivery, %.2f s)\n",
               span > 0 ? (double)tot.received / span : 0.0, span);
        printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
               ms(bench_hist_quantile(hist, tot.received, 0.50)),
               ms(bench_hist_quantile(hist, tot.received, 0.90)),
               ms(bench_hist_quantile(hist, tot.received, 0.99)),
               ms(bench_hist_quantile(hist, tot.received, 0.999)),
               ms(bench_hist_quantile(hist, tot.received, 1.0)));
        if (expected > tot.received && expected - tot.received > O.max_missing) {
            printf("FAIL: %llu deliveries missing\n",
                   (unsigned long long)(expected - tot.received));
            if (!rc_exit)
                rc_exit = 3;
        }
        if (O.pid) {
            double wall = (double)(t_end - t_pub0) / 1e9;
            printf("jobwire pid %d: RSS %ld kB before connects, %ld kB at end; CPU %.0f %% of one "
                   "core over %.1f s of publishing+drain\n",
                   O.pid, rss0, rss_end,
                   100.0 * (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) / wall, wall);
        }
    }
    printf("load tool children CPU: %.1f s total over %.1f s wall\n", load_cpu,
           (double)(t_end - t_conn0) / 1e9);
    return rc_exit;
}
