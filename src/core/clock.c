/*
 * Clocks (see clock.h).
 */
#include "jobwire/clock.h"

#include <time.h>

static uint64_t
read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
jw_now_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}

uint64_t
jw_now_ms(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000000u;
}

int64_t
jw_wall_seconds(void)
{
    return (int64_t)(read_ns(CLOCK_REALTIME) / 1000000000u);
}

int64_t
jw_wall_ms(void)
{
    return (int64_t)(read_ns(CLOCK_REALTIME) / 1000000u);
}
