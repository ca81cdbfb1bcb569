/*
 * redis-server processes for unit tests (see redis_harness.h).
 */
#include "redis_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <cmocka.h>

#include "jobwire/alloc.h"

uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
nap_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* 1 when something answers a RESP PING on the port (+PONG, or -NOAUTH with requirepass). */
static int
redis_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int ok = 0;
    char buf[64];
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, "*1\r\n$4\r\nPING\r\n", 14) == 14 && read(fd, buf, sizeof buf) > 0)
        ok = buf[0] == '+' || buf[0] == '-';
    close(fd);
    return ok;
}

/* Servers still running, killed by the group teardown if a test fails half-way. */
static pid_t live_pids[8];

static void
track_pid(pid_t old, pid_t new_pid)
{
    for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++) {
        if (live_pids[i] == old) {
            live_pids[i] = new_pid;
            return;
        }
    }
}

int
kill_leftovers(void **state)
{
    for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++) {
        if (live_pids[i] > 0) {
            kill(live_pids[i], SIGKILL);
            waitpid(live_pids[i], NULL, 0);
            live_pids[i] = 0;
        }
    }
    return 0;
}

void
redis_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    track_pid(pid, 0);
}

pid_t
redis_start(int port, const char *password)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        if (password)
            execl(REDIS_SERVER, "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save",
                  "", "--appendonly", "no", "--daemonize", "no", "--requirepass", password,
                  (char *)NULL);
        else
            execl(REDIS_SERVER, "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save",
                  "", "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    track_pid(0, pid);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (!redis_answers(port)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            track_pid(pid, 0);
            fail_msg("redis-server exited before answering on port %d", port);
        }
        if (now_ms() > deadline) {
            redis_kill(pid);
            fail_msg("redis-server did not answer on port %d within %d ms", port, WAIT_MS);
        }
        nap_ms(20);
    }
    return pid;
}

void
set_str(char **field, const char *value)
{
    free(*field);
    *field = jw_strdup(value);
}

void
harness_config(struct jw_config *cfg, int port, const char *password)
{
    jw_config_defaults(cfg);
    set_str(&cfg->redis_host, "127.0.0.1");
    cfg->redis_port = port;
    set_str(&cfg->redis_password, password ? password : "");
    cfg->redis_connect_timeout_ms = 2000;
    cfg->redis_read_timeout_ms = 2000;
    cfg->redis_ping_interval_ms = 0;
    cfg->reconnect_initial_ms = 20;
    cfg->reconnect_max_ms = 200;
    cfg->reconnect_multiplier = 2.0;
    cfg->reconnect_reset_after_ms = 1000;
}
