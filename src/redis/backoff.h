/*
 * Exponential backoff with full jitter: attempt n waits a uniform random time in
 * [0, min(max, initial * multiplier^n)] (AWS "full jitter"). There is no floor: spreading
 * reconnects of many replicas over the whole window is what keeps a recovering Redis from being
 * hammered, and the ceiling grows fast. The caller resets the attempt counter once a connection
 * has stayed up long enough (reconnect_reset_after_ms).
 *
 * Not thread-safe: one jw_backoff belongs to one thread (the upstream loop).
 */
#ifndef JOBWIRE_BACKOFF_H
#define JOBWIRE_BACKOFF_H

#include <stdint.h>

struct jw_backoff {
    uint32_t initial_ms;
    uint32_t max_ms;
    double multiplier;
    uint32_t attempt;   /* read-only: delays handed out since the last reset */
    uint64_t rng_state; /* private */
};

/* initial_ms >= 1 and max_ms >= initial_ms are expected (config.c checks them); a multiplier
 * below 1.0 is treated as 1.0. Equal seeds give equal delay sequences. */
void jw_backoff_init(struct jw_backoff *b, uint32_t initial_ms, uint32_t max_ms, double multiplier,
                     uint64_t seed);
/* The ceiling of the next delay, without jitter (for logs and tests). */
uint32_t jw_backoff_ceiling(const struct jw_backoff *b);
/* Returns the next delay in milliseconds and advances the attempt counter. */
uint32_t jw_backoff_next(struct jw_backoff *b);
void jw_backoff_reset(struct jw_backoff *b);

#endif
