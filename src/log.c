/*
 * Logging to stderr: "2026-11-23T05:00:00.123Z INFO  upstream: message". One fprintf per line
 * under the stdio lock, so lines from the two threads never interleave.
 */
#include "jobwire/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static _Atomic int min_level = JW_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
jw_log_set_level(enum jw_log_level level)
{
    atomic_store(&min_level, (int)level);
}

int
jw_log_enabled(enum jw_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void
jw_log(enum jw_log_level level, const char *module, const char *fmt, ...)
{
    if (!jw_log_enabled(level))
        return;
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    fprintf(stderr, "%s.%03ldZ %-5s %s: ", stamp, ts.tv_nsec / 1000000L, level_names[level],
            module);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}
