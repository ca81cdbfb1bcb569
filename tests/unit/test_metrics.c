/*
 * Unit tests for metrics.c: the rendered exposition is valid Prometheus text format (HELP and TYPE
 * exactly once per family and before its samples, families contiguous, every sample line parses,
 * histogram buckets cumulative and ending with +Inf == _count), values move when metrics are
 * updated, the computed gauges are sane, and concurrent observations are all counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobwire/metrics.h"

static char *
render(void)
{
    struct jw_buf b;
    jw_buf_init(&b, 4096);
    jw_metrics_render(&b);
    jw_buf_append(&b, "", 1);
    return b.data; /* jw_buf owns data until freed; free() releases it */
}

#define MAX_FAMILIES 128

struct family {
    char name[128];
    char type[16];
    int helps, types, samples;
};

static struct family fams[MAX_FAMILIES];
static int nfams;

static struct family *
find_family(const char *name)
{
    for (int i = 0; i < nfams; i++)
        if (strcmp(fams[i].name, name) == 0)
            return &fams[i];
    assert_true(nfams < MAX_FAMILIES);
    snprintf(fams[nfams].name, sizeof fams[nfams].name, "%s", name);
    return &fams[nfams++];
}

static const char *
parse_name(const char *p, char *out, size_t len, bool metric)
{
    size_t n = 0;
    if (!(isalpha((unsigned char)*p) || *p == '_' || (metric && *p == ':')))
        return NULL;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || (metric && p[n] == ':'))
        n++;
    assert_true(n < len);
    memcpy(out, p, n);
    out[n] = '\0';
    return p + n;
}

struct sample {
    char name[128];
    char le[32]; /* the le label, "" if none */
    double value;
};

/* name{k="v",...} value — fails the test on any syntax error. */
static void
parse_sample(const char *line, struct sample *s)
{
    const char *p = parse_name(line, s->name, sizeof s->name, true);
    char label[64];

    if (p == NULL)
        fail_msg("bad metric name: %s", line);
    s->le[0] = '\0';
    if (*p == '{') {
        p++;
        while (*p != '}') {
            p = parse_name(p, label, sizeof label, false);
            if (p == NULL || p[0] != '=' || p[1] != '"')
                fail_msg("bad label in: %s", line);
            p += 2;
            const char *v = p;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    fail_msg("unterminated label value: %s", line);
                p += *p == '\\' ? 2 : 1;
            }
            if (strcmp(label, "le") == 0)
                snprintf(s->le, sizeof s->le, "%.*s", (int)(p - v), v);
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                fail_msg("bad label list: %s", line);
        }
        p++;
    }
    if (*p != ' ')
        fail_msg("no space before the value: %s", line);
    p++;
    char *end;
    s->value = strtod(p, &end);
    if (end == p || *end != '\0')
        fail_msg("bad value: %s", line);
}

static bool
has_suffix(const char *s, const char *family, const char *suffix)
{
    size_t n = strlen(family);
    return strncmp(s, family, n) == 0 && strcmp(s + n, suffix) == 0;
}

/* Checks the whole exposition; returns the number of sample lines. */
static int
check_exposition(char *text)
{
    struct family *cur = NULL;
    double last_bucket = -1, last_le = -INFINITY;
    bool inf_seen = false;
    int samples = 0;
    char *save = NULL;

    nfams = 0;
    memset(fams, 0, sizeof fams);
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], word[16];
        if (strncmp(line, "# HELP ", 7) == 0) {
            const char *p = parse_name(line + 7, name, sizeof name, true);
            assert_non_null(p);
            assert_true(p[0] == ' ' && p[1] != '\0'); /* non-empty help text */
            if (cur)
                assert_true(cur->samples > 0);
            cur = find_family(name);
            cur->helps++;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s %15s", name, word), 2);
            assert_non_null(cur);
            assert_string_equal(name, cur->name); /* TYPE right after its HELP */
            assert_int_equal(cur->samples, 0);
            cur->types++;
            snprintf(cur->type, sizeof cur->type, "%s", word);
            assert_true(strcmp(word, "counter") == 0 || strcmp(word, "gauge") == 0 ||
                        strcmp(word, "histogram") == 0);
            last_bucket = -1;
            last_le = -INFINITY;
            inf_seen = false;
            continue;
        }
        assert_true(line[0] != '#');
        struct sample s;
        parse_sample(line, &s);
        samples++;
        assert_non_null(cur); /* a sample before any HELP/TYPE */
        assert_int_equal(cur->types, 1);
        cur->samples++;
        if (strcmp(cur->type, "histogram") != 0) {
            if (strcmp(s.name, cur->name) != 0)
                fail_msg("sample %s outside its family (current family %s)", s.name, cur->name);
            if (strcmp(cur->type, "counter") == 0 && s.value < 0) /* a gauge may drift below 0 */
                fail_msg("counter sample %s is negative", line);
            continue;
        }
        if (has_suffix(s.name, cur->name, "_bucket")) {
            double le = strcmp(s.le, "+Inf") == 0 ? INFINITY : strtod(s.le, NULL);
            assert_true(s.le[0] != '\0');
            assert_false(inf_seen);
            assert_true(le > last_le);           /* bounds increase */
            assert_true(s.value >= last_bucket); /* counts are cumulative */
            last_le = le;
            last_bucket = s.value;
            inf_seen = isinf(le);
        } else if (has_suffix(s.name, cur->name, "_sum")) {
            assert_true(inf_seen);
            assert_true(s.value >= 0);
        } else if (has_suffix(s.name, cur->name, "_count")) {
            assert_true(inf_seen);
            assert_true(s.value == last_bucket); /* +Inf == _count */
        } else {
            fail_msg("sample %s outside histogram family %s", s.name, cur->name);
        }
    }
    for (int i = 0; i < nfams; i++) {
        if (fams[i].helps != 1 || fams[i].types != 1 || fams[i].samples == 0)
            fail_msg("family %s: %d HELP, %d TYPE, %d samples", fams[i].name, fams[i].helps,
                     fams[i].types, fams[i].samples);
        size_t n = strlen(fams[i].name);
        if (strcmp(fams[i].type, "counter") == 0 &&
            (n < 6 || strcmp(fams[i].name + n - 6, "_total") != 0))
            fail_msg("counter %s does not end in _total", fams[i].name);
    }
    return samples;
}

/* The value of the sample line that starts with `series` (name and labels, then a space). */
static double
value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    fail_msg("series %s not rendered", series);
    return NAN;
}

static void
test_exposition_is_valid(void **state)
{
    (void)state;
    char *text = render();
    int samples = check_exposition(text);
    free(text);
    /* Every row plus the 11 extra bucket lines and _sum/_count of the histogram, minus its row. */
    assert_int_equal(samples, JW_M__COUNT - 1 + 12 + 2);
    assert_non_null(find_family("jobwire_delivery_latency_seconds"));
    assert_string_equal(find_family("jobwire_delivery_latency_seconds")->type, "histogram");
    assert_string_equal(find_family("jobwire_auth_failures_total")->type, "counter");
    assert_string_equal(find_family("jobwire_upstream_probe_lag_seconds")->type, "gauge");
    assert_string_equal(find_family("jobwire_build_info")->type, "gauge");
    assert_int_equal(find_family("jobwire_client_closes_total")->samples, 5);
    assert_int_equal(find_family("jobwire_redis_command_errors_total")->samples, 4);
    assert_int_equal(find_family("jobwire_snapshots_total")->samples, 3);
    assert_int_equal(find_family("jobwire_resumes_total")->samples, 2);
    assert_string_equal(find_family("jobwire_resume_window_seconds")->type, "gauge");
    assert_string_equal(find_family("jobwire_upstream_pauses_total")->type, "counter");
    assert_int_equal(find_family("jobwire_auth_failures_total")->samples, 6);
}

static void
test_values_move(void **state)
{
    (void)state;
    char *before = render();
    jw_metric_add(JW_M_DELIVERIES, 5);
    jw_metric_add(JW_M_AUTH_FAILURES_EXPIRED, 2);
    jw_metric_add(JW_M_CLOSED_RATE_LIMITED, 1);
    jw_metric_set(JW_M_CONNECTIONS, 7);
    jw_metric_set(JW_M_UPSTREAM_PROBE_LAG_NS, 1500000); /* 1.5 ms */
    jw_metric_set(JW_M_QUEUE_BYTES, -3); /* a gauge that drifted below zero shows it */
    char *after = render();

    assert_true(value_of(after, "jobwire_deliveries_total") ==
                value_of(before, "jobwire_deliveries_total") + 5);
    assert_true(value_of(after, "jobwire_auth_failures_total{reason=\"expired\"}") == 2);
    assert_true(value_of(after, "jobwire_client_closes_total{reason=\"rate_limited\"}") == 1);
    assert_true(value_of(after, "jobwire_connections{transport=\"websocket\"}") == 7);
    assert_true(value_of(after, "jobwire_connections{transport=\"sse\"}") == 0);
    assert_true(fabs(value_of(after, "jobwire_upstream_probe_lag_seconds") - 0.0015) < 1e-12);
    assert_true(value_of(after, "jobwire_queue_bytes") == -3);
    jw_metric_set(JW_M_QUEUE_BYTES, 0);

    assert_true(value_of(after, "jobwire_build_info{version=\"" JW_VERSION "\"}") == 1);
    double rss = value_of(after, "process_resident_memory_bytes");
    assert_true(rss > 100 * 1024 && rss < 1e12);
    double fds = value_of(after, "process_open_fds");
    assert_true(fds >= 3 && fds <= value_of(after, "process_max_fds"));
    assert_true(value_of(after, "process_cpu_seconds_total") >= 0);
    assert_true(value_of(after, "process_virtual_memory_bytes") >= rss);
    double start = value_of(after, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start > now - 600 && start <= now + 1);
    free(before);
    free(after);
}

static void
test_latency_histogram(void **state)
{
    (void)state;
    jw_metrics_observe_delivery_latency(300000);     /* 0.3 ms: first bucket */
    jw_metrics_observe_delivery_latency(1000000);    /* exactly 1 ms: le="0.001" (inclusive) */
    jw_metrics_observe_delivery_latency(1000001);    /* just above: le="0.0025" */
    jw_metrics_observe_delivery_latency(2000000000); /* 2 s: only +Inf */
    char *text = render();
    const char *h = "jobwire_delivery_latency_seconds";
    char series[128];
    static const struct {
        const char *le;
        double count;
    } want[] = {{"0.0005", 1}, {"0.001", 2}, {"0.0025", 3}, {"0.5", 3}, {"1", 3}, {"+Inf", 4}};

    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(series, sizeof series, "%s_bucket{le=\"%s\"}", h, want[i].le);
        assert_true(value_of(text, series) == want[i].count);
    }
    snprintf(series, sizeof series, "%s_count", h);
    assert_true(value_of(text, series) == 4);
    snprintf(series, sizeof series, "%s_sum", h);
    assert_true(fabs(value_of(text, series) - 2.002300001) < 1e-9);
    check_exposition(text);
    free(text);
}

static void *
observe_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        jw_metrics_observe_delivery_latency((uint64_t)(i % 2000) * 1000000u);
    return NULL;
}

static void
test_concurrent_observations(void **state)
{
    (void)state;
    pthread_t t[4];
    char *text = render();
    double before = value_of(text, "jobwire_delivery_latency_seconds_count");
    free(text);

    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observe_many, NULL), 0);
    for (int i = 0; i < 3; i++) { /* scrapes while observing stay consistent */
        text = render();
        check_exposition(text);
        free(text);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    text = render();
    assert_true(value_of(text, "jobwire_delivery_latency_seconds_count") == before + 400000);
    check_exposition(text);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_is_valid),
        cmocka_unit_test(test_values_move),
        cmocka_unit_test(test_latency_histogram),
        cmocka_unit_test(test_concurrent_observations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
