/*
 * jobwire: bridges Redis pub/sub job events to WebSocket and SSE clients.
 *
 * main() loads the configuration, creates the gateway (the client side, on this thread) and the
 * upstream (the Redis thread), wires the upstream's hooks into the gateway's inbox, and runs the
 * gateway's loop until SIGTERM or SIGINT and the drain that follows; then it stops the Redis
 * thread and joins it before the lws context is destroyed (ARCHITECTURE.md).
 */
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "jobwire/config.h"
#include "jobwire/gateway.h"
#include "jobwire/log.h"
#include "jobwire/redis.h"

static enum jw_event_flow
on_upstream_event(void *ctx, struct jw_event *ev)
{
    return jw_gateway_post_event(ctx, ev);
}

static void
on_upstream_op(void *ctx, struct jw_redis_op *op)
{
    jw_gateway_post_op(ctx, op);
}

static void
on_upstream_state(void *ctx, enum jw_link_state subscriber, bool commands_ready, const char *reason)
{
    (void)reason;
    jw_gateway_post_link_state(ctx, subscriber, commands_ready);
}

static void
usage(FILE *out)
{
    fprintf(out, "usage: jobwire [--config FILE] [--check-config] [--health URL] [--version] "
                 "[--help]\n\n"
                 "  --config FILE    read settings from FILE (see conf/jobwire.conf)\n"
                 "  --check-config   validate the settings, print them (secrets masked), exit\n"
                 "  --health URL     GET URL (e.g. http://127.0.0.1:9090/readyz): exit 0 on 200\n"
                 "  --version        print the version and exit\n"
                 "  --help           print this help and every setting\n\n"
                 "Settings (file key, environment variable, default):\n");
}

/* Lets one process hold as many client sockets as the hard limit allows. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            jw_warn("main", "cannot raise the open-file limit: %s", strerror(errno));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        jw_info("main", "open-file limit %llu", (unsigned long long)rl.rlim_cur);
}

/* --health URL: GET http://host:port/path (the admin port's /readyz, say) and exit 0 on a 200,
 * 1 with the reason otherwise; for container health checks in images without curl. At most
 * HEALTH_TIMEOUT_S in all. */
#define HEALTH_TIMEOUT_S 5

static int
health_check(const char *url)
{
    char host[256], port[8] = "80", path[1024] = "/";
    if (sscanf(url, "http://%255[^:/]:%7[0-9]%1023s", host, port, path) < 2 &&
        sscanf(url, "http://%255[^:/]%1023s", host, path) < 1) {
        fprintf(stderr, "jobwire: --health: expected http://host[:port][/path], got '%s'\n", url);
        return 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "jobwire: --health: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    struct timeval tv = {HEALTH_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char buf[512];
    int n = -1;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        int len = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
        if (write(fd, buf, (size_t)len) == len)
            n = (int)read(fd, buf, sizeof buf - 1);
    }
    freeaddrinfo(ai);
    if (n <= 0) {
        fprintf(stderr, "jobwire: --health: %s: %s\n", url, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    buf[n] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) == 1 && status == 200)
        return 0;
    char *eol = strpbrk(buf, "\r\n");
    if (eol)
        *eol = '\0';
    fprintf(stderr, "jobwire: --health: %s: %s\n", url, buf);
    return 1;
}

static int
load_config(struct jw_config *cfg, const char *path)
{
    char err[512];
    jw_config_defaults(cfg);
    if ((path && jw_config_load_file(cfg, path, err, sizeof(err)) < 0) ||
        jw_config_apply_env(cfg, err, sizeof(err)) < 0 ||
        jw_config_finish(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "jobwire: configuration error: %s\n", err);
        return -1;
    }
    return 0;
}

static int
run(const struct jw_config *cfg)
{
    struct jw_gateway *gw = jw_gateway_new(cfg);
    if (!gw)
        return 1;
    struct jw_upstream_hooks hooks = {.on_event = on_upstream_event,
                                      .on_op = on_upstream_op,
                                      .on_state = on_upstream_state,
                                      .ctx = gw};
    struct jw_upstream *up = jw_upstream_new(cfg, &hooks);
    /* The Redis thread must not take SIGTERM/SIGINT: the gateway's loop watches them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int started = jw_gateway_start(gw, up) == 0 ? jw_upstream_start(up) : -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < 0) {
        jw_error("main", "cannot start");
        jw_upstream_free(up);
        jw_gateway_free(gw);
        return 1;
    }

    int rc = jw_gateway_run(gw);
    jw_info("main", "shutting down");
    jw_upstream_stop(up); /* joined before the lws context goes away */
    jw_upstream_free(up);
    jw_gateway_free(gw);
    jw_info("main", "stopped");
    return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = 1;
        } else if (strcmp(argv[i], "--health") == 0 && i + 1 < argc) {
            return health_check(argv[i + 1]);
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("jobwire %s\n", JW_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            jw_config_print_help(stdout);
            return 0;
        } else {
            fprintf(stderr, "jobwire: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    struct jw_config cfg;
    if (load_config(&cfg, config_path) < 0) {
        jw_config_free(&cfg);
        return 1;
    }
    if (check_only) {
        char err[512];
        if (jw_gateway_check(&cfg, err, sizeof err) < 0 ||
            jw_upstream_check(&cfg, err, sizeof err) < 0) {
            fprintf(stderr, "jobwire: %s\n", err);
            jw_config_free(&cfg);
            return 1;
        }
        jw_config_dump(&cfg, stdout);
        printf("configuration ok\n");
        jw_config_free(&cfg);
        return 0;
    }
    jw_log_set_level(cfg.log_level);
    jw_log_set_format(cfg.log_format);
    jw_info("main", "jobwire %s starting", JW_VERSION);
    raise_fd_limit();
    int rc = run(&cfg);
    jw_config_free(&cfg);
    return rc;
}
