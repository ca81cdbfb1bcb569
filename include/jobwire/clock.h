/*
 * The one clock module. Monotonic time for every timeout, deadline and latency (both threads),
 * wall-clock seconds only where a value from outside is a calendar time (JWT exp/nbf, metrics'
 * start time, the job index scores).
 */
#ifndef JOBWIRE_CLOCK_H
#define JOBWIRE_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds and milliseconds. */
uint64_t jw_now_ns(void);
uint64_t jw_now_ms(void);
/* Seconds since the Unix epoch (CLOCK_REALTIME). */
int64_t jw_wall_seconds(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t jw_wall_ms(void);

/* a + b without wrapping: UINT64_MAX when the sum does not fit (deadlines from far-future
 * token expiries must not overflow). */
static inline uint64_t
jw_add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

#endif
