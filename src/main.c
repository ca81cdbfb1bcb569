/*
 * jobwire: bridges Redis pub/sub job events to WebSocket clients.
 *
 * main() loads the configuration, starts the upstream (Redis) thread and runs the gateway
 * (libwebsockets) loop on the main thread until SIGTERM or SIGINT; then it stops the upstream
 * thread and joins it before the lws context is destroyed (ARCHITECTURE.md).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "jobwire/config.h"
#include "jobwire/gateway.h"
#include "jobwire/log.h"
#include "jobwire/redis.h"

static struct jw_gateway *running_gateway;

static void
on_signal(int sig)
{
    if (running_gateway)
        jw_gateway_request_stop(running_gateway, sig == SIGINT);
}

static void
on_upstream_event(void *ctx, struct jw_event *ev)
{
    jw_gateway_post_event(ctx, ev);
}

static void
on_upstream_reply(void *ctx, struct jw_redis_request *req)
{
    jw_gateway_post_reply(ctx, req);
}

static void
on_upstream_state(void *ctx, enum jw_link_state state, const char *reason)
{
    (void)reason;
    jw_gateway_post_link_state(ctx, state);
}

static void
usage(FILE *out)
{
    fprintf(out, "usage: jobwire [--config FILE] [--check-config] [--version] [--help]\n\n"
                 "  --config FILE    read settings from FILE (see conf/jobwire.conf)\n"
                 "  --check-config   validate the settings, print them (secrets masked), exit\n"
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
                                      .on_reply = on_upstream_reply,
                                      .on_state = on_upstream_state,
                                      .ctx = gw};
    struct jw_upstream *up = jw_upstream_new(cfg, &hooks);
    jw_gateway_attach_upstream(gw, up);
    if (jw_upstream_start(up) < 0) {
        jw_error("main", "cannot start the upstream thread");
        jw_upstream_free(up);
        jw_gateway_free(gw);
        return 1;
    }

    running_gateway = gw;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = jw_gateway_run(gw);
    jw_info("main", "shutting down");
    jw_upstream_stop(up); /* joined before the lws context goes away */
    jw_upstream_free(up);
    running_gateway = NULL;
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
