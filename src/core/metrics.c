/*
 * Prometheus text exposition (format 0.0.4) of the metrics declared in metrics.h. HELP and TYPE
 * are written once per family, before its first series: labelled series of one family are
 * adjacent rows of JW_METRICS (test_metrics checks it on the rendered text).
 *
 * The latency histogram keeps one plain (non-cumulative) atomic counter per bucket, a count and
 * a sum in nanoseconds; observing costs three relaxed additions and no lock. The renderer makes
 * the buckets cumulative and prints their total as both le="+Inf" and _count, so those two are
 * equal in every scrape even while other threads observe; _sum may be a few observations ahead.
 */
#include "jobwire/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

_Atomic int64_t jw_metric_values[JW_M__COUNT];

struct metric_desc {
    const char *type;
    const char *name;
    const char *labels;
    const char *help;
};

static const struct metric_desc descs[JW_M__COUNT] = {
#define JW_METRIC_DESC(id, type, name, labels, help) [JW_M_##id] = {#type, name, labels, help},
    JW_METRICS(JW_METRIC_DESC)
#undef JW_METRIC_DESC
};

#define JW_BUCKET_NS(le) (uint64_t)((le)*1e9 + 0.5),
#define JW_BUCKET_LABEL(le) #le,
static const uint64_t bucket_ns[] = {JW_LATENCY_BUCKETS(JW_BUCKET_NS)};
static const char *const bucket_le[] = {JW_LATENCY_BUCKETS(JW_BUCKET_LABEL) "+Inf"};
#define NBUCKETS (sizeof bucket_ns / sizeof bucket_ns[0] + 1) /* the last one is +Inf */

static struct {
    _Atomic uint64_t buckets[NBUCKETS];
    _Atomic uint64_t sum_ns;
} latency;

static double start_time; /* seconds since the epoch, set before main() */

__attribute__((constructor)) static void
record_start_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
jw_metrics_observe_delivery_latency(uint64_t nanoseconds)
{
    size_t i = 0;
    while (i < NBUCKETS - 1 && nanoseconds > bucket_ns[i])
        i++;
    atomic_fetch_add_explicit(&latency.buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency.sum_ns, nanoseconds, memory_order_relaxed);
}

/* Field `n` (1-based) of /proc/self/stat after the command name; 0 when unreadable. */
static unsigned long long
stat_field(int n)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    for (int i = 2; p && i < n; i++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static long long
open_fds(void)
{
    long long n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* The value of a computed metric. */
static double
computed(int i)
{
    struct rlimit rl;
    struct rusage ru;
    long page = sysconf(_SC_PAGESIZE);
    switch (i) {
    case JW_M_PROCESS_CPU: /* microseconds, where /proc/self/stat counts 10 ms ticks */
        if (getrusage(RUSAGE_SELF, &ru) != 0)
            return 0;
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    case JW_M_PROCESS_OPEN_FDS:
        return (double)open_fds();
    case JW_M_PROCESS_MAX_FDS:
        return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 0;
    case JW_M_PROCESS_RESIDENT_MEMORY: /* rss in pages, field 24 */
        return (double)stat_field(24) * (double)page;
    case JW_M_PROCESS_VIRTUAL_MEMORY: /* vsize in bytes, field 23 */
        return (double)stat_field(23);
    case JW_M_PROCESS_START_TIME:
        return start_time;
    default: /* build info */
        return 1;
    }
}

/* Fixed-point: Prometheus parses it, and it reads better than %g's exponents. */
static void
append_fixed(struct jw_buf *out, double v, int decimals)
{
    char num[64];
    snprintf(num, sizeof num, "%.*f", decimals, v);
    jw_buf_append_str(out, num);
}

/* name{labels[,extra]} with the given suffix on the name; either label part may be empty. */
static void
append_series(struct jw_buf *out, const struct metric_desc *d, const char *suffix,
              const char *extra)
{
    jw_buf_append_str(out, d->name);
    jw_buf_append_str(out, suffix);
    if (d->labels[0] || extra[0]) {
        jw_buf_append_str(out, "{");
        jw_buf_append_str(out, d->labels);
        jw_buf_append_str(out, d->labels[0] && extra[0] ? "," : "");
        jw_buf_append_str(out, extra);
        jw_buf_append_str(out, "}");
    }
    jw_buf_append_str(out, " ");
}

static void
render_latency(struct jw_buf *out, const struct metric_desc *d)
{
    char le[48];
    uint64_t cumulative = 0;

    for (size_t i = 0; i < NBUCKETS; i++) {
        cumulative += atomic_load_explicit(&latency.buckets[i], memory_order_relaxed);
        snprintf(le, sizeof le, "le=\"%s\"", bucket_le[i]);
        append_series(out, d, "_bucket", le);
        jw_buf_append_u64(out, cumulative);
        jw_buf_append_str(out, "\n");
    }
    append_series(out, d, "_sum", "");
    append_fixed(out, (double)atomic_load_explicit(&latency.sum_ns, memory_order_relaxed) / 1e9, 9);
    jw_buf_append_str(out, "\n");
    append_series(out, d, "_count", "");
    jw_buf_append_u64(out, cumulative);
    jw_buf_append_str(out, "\n");
}

void
jw_metrics_render(struct jw_buf *out)
{
    for (int i = 0; i < JW_M__COUNT; i++) {
        const struct metric_desc *d = &descs[i];
        const char *computed_type = strncmp(d->type, "computed_", 9) == 0 ? d->type + 9 : NULL;
        if (i == 0 || strcmp(descs[i - 1].name, d->name) != 0) {
            const char *type = computed_type ? computed_type : d->type;
            if (strcmp(type, "gauge_ns") == 0)
                type = "gauge";
            jw_buf_append_str(out, "# HELP ");
            jw_buf_append_str(out, d->name);
            jw_buf_append_str(out, " ");
            jw_buf_append_str(out, d->help);
            jw_buf_append_str(out, "\n# TYPE ");
            jw_buf_append_str(out, d->name);
            jw_buf_append_str(out, " ");
            jw_buf_append_str(out, type);
            jw_buf_append_str(out, "\n");
        }
        if (i == JW_M_DELIVERY_LATENCY) {
            render_latency(out, d);
            continue;
        }
        append_series(out, d, "", "");
        int64_t v = jw_metric_get((enum jw_metric_id)i);
        char num[32];
        if (computed_type)
            append_fixed(out, computed(i),
                         i == JW_M_PROCESS_CPU          ? 6
                         : i == JW_M_PROCESS_START_TIME ? 3
                                                        : 0);
        else if (strcmp(d->type, "gauge_ns") == 0)
            append_fixed(out, (double)v / 1e9, 9);
        else { /* signed: a gauge that drifted below zero shows it */
            snprintf(num, sizeof num, "%lld", (long long)v);
            jw_buf_append_str(out, num);
        }
        jw_buf_append_str(out, "\n");
    }
}
