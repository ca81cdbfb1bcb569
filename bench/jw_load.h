/*
 * Shared between the jw-load parent (jw_load.c: options, barrier, publisher, report) and its
 * children (jw_load_client.c: the epoll WebSocket clients). The two talk over pipes: each child
 * writes one ready_msg after its connections are subscribed or failed, then reads the warm-up
 * event count from its control pipe; EOF on that pipe means "report": the child writes one
 * result_msg, its histogram and the indices of the clients that never subscribed, and exits.
 */
#ifndef JW_LOAD_H
#define JW_LOAD_H

#include "bench_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mode { MODE_JOBS, MODE_BROADCAST, MODE_IDLE };

struct opts {
    char host[64];
    int port;
    char path[256];
    uint32_t clients, procs, src_addrs, jobs;
    enum mode mode;
    double rate, duration, warmup, drain, connect_timeout, settle;
    char redis_host[64];
    int redis_port;
    char user_prefix[64];
    uint32_t users;
    size_t payload_bytes;
    uint32_t inflight;
    int pid;
    double max_fail_pct;
    uint64_t max_missing;
};

/* Sent once by each child after the readiness barrier. */
struct ready_msg {
    uint32_t acked, failed;
};

/* Sent once by each child at the end, followed by hist[] and nfail uint32 client indices. */
struct result_msg {
    uint64_t acked, failed, received, warm_received, seq_gaps, closed, closed_4008, bad_frames;
    uint64_t first_recv_ns, last_recv_ns, nfail;
};

void *jw_load_xrealloc(void *p, size_t n);
int jw_load_write_all(int fd, const void *buf, size_t n);
int jw_load_read_all(int fd, void *buf, size_t n);

/* Runs one child: clients [first, first+count); never returns (exits after reporting). */
void jw_load_child_run(const struct opts *o, uint32_t first, uint32_t count, int ctl_fd, int res_fd)
    __attribute__((noreturn));

#endif
