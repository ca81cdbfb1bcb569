/*
 * Unit-test support for the tests that need a real redis-server (test_upstream.c,
 * test_rediscmd.c): time helpers, a free port, and redis-server processes started on it and
 * killed by PID (also by the group teardown when a test fails half-way).
 */
#ifndef JOBWIRE_TEST_REDIS_HARNESS_H
#define JOBWIRE_TEST_REDIS_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

#include "jobwire/config.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define WAIT_MS 10000 /* bound of every wait */

uint64_t now_ms(void);
void nap_ms(int ms);
int free_port(void);
/* Starts redis-server on `port` (with requirepass when `password`), waits until it answers. */
pid_t redis_start(int port, const char *password);
void redis_kill(pid_t pid);
/* cmocka group teardown: kills the servers a failed test left running. */
int kill_leftovers(void **state);
void set_str(char **field, const char *value);
/* Defaults, then this server, short timeouts and a fast backoff. */
void harness_config(struct jw_config *cfg, int port, const char *password);

#endif
