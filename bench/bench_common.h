/*
 * Helpers shared by the bench tools: the monotonic clock both sides of a latency measurement
 * read, the WebSocket accept-key computation (RFC 6455 section 4.2.2), and a log-linear latency
 * histogram with microsecond resolution and about 1.5 % relative error (64 sub-buckets per power
 * of two, the HdrHistogram idea in a few lines).
 */
#ifndef JW_BENCH_COMMON_H
#define JW_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
/* 2*SUB exact buckets, then SUB per power of two up to 2^40 us (~12 days). */
#define BENCH_HIST_BUCKETS (2 * BENCH_HIST_SUB + 34 * BENCH_HIST_SUB)

/* CLOCK_MONOTONIC in nanoseconds: the same clock in every process of this machine. */
uint64_t bench_now_ns(void);

/* Writes the 28-character Sec-WebSocket-Accept value for key (NUL-terminated) into out[29].
 * Returns 0, or -1 if the digest failed. */
int bench_ws_accept(const char *key, char out[29]);

/* Bucket index of a value in microseconds, and the highest value a bucket holds. */
size_t bench_hist_index(uint64_t us);
uint64_t bench_hist_value(size_t idx);

/* Value at quantile q (0..1) of a histogram with total count n, in microseconds. */
uint64_t bench_hist_quantile(const uint64_t *hist, uint64_t n, double q);

/* Sleeps for ns nanoseconds (restarted on EINTR). */
void bench_sleep_ns(uint64_t ns);

#endif
