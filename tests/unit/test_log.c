/*
 * Unit tests for log.c: the level filter, the text format, and the JSON format (every line a
 * well-formed object with ts/level/module/msg, checked with jansson), including escaping of
 * quotes, control bytes and invalid UTF-8, long messages, and whole lines from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/log.h"

static FILE *sink;

static int
setup(void **state)
{
    (void)state;
    sink = tmpfile();
    assert_non_null(sink);
    jw_log_set_output(sink);
    jw_log_set_level(JW_LOG_INFO);
    jw_log_set_format(JW_LOG_FORMAT_TEXT);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    jw_log_set_output(NULL);
    fclose(sink);
    return 0;
}

/* Everything logged so far, NUL-terminated; the caller frees it. */
static char *
captured(void)
{
    long n;
    char *text;

    fflush(sink);
    n = ftell(sink);
    assert_true(n >= 0);
    text = calloc(1, (size_t)n + 1);
    rewind(sink);
    assert_int_equal(fread(text, 1, (size_t)n, sink), (size_t)n);
    return text;
}

static size_t
count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* Parses each line as a JSON object; returns an array of them (caller decrefs). */
static json_t *
parse_lines(const char *text)
{
    json_t *all = json_array();
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        json_error_t err;
        assert_non_null(nl); /* every line is terminated */
        json_t *obj = json_loadb(p, (size_t)(nl - p), 0, &err);
        if (obj == NULL)
            fail_msg("not JSON (%s): %.*s", err.text, (int)(nl - p), p);
        assert_true(json_is_object(obj));
        assert_int_equal(json_object_size(obj), 4);
        const char *ts = json_string_value(json_object_get(obj, "ts"));
        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24); /* 2026-11-23T05:00:00.123Z */
        assert_true(ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
        assert_non_null(json_string_value(json_object_get(obj, "level")));
        assert_non_null(json_string_value(json_object_get(obj, "module")));
        assert_non_null(json_string_value(json_object_get(obj, "msg")));
        json_array_append_new(all, obj);
        p = nl + 1;
    }
    return all;
}

static const char *
field(json_t *all, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(all, i), key));
}

static void
test_level_filter(void **state)
{
    (void)state;
    jw_log_set_level(JW_LOG_WARN);
    assert_false(jw_log_enabled(JW_LOG_INFO));
    assert_true(jw_log_enabled(JW_LOG_ERROR));
    jw_debug("t", "debug %d", 1);
    jw_info("t", "info %d", 2);
    jw_warn("t", "warn %d", 3);
    jw_error("t", "error %d", 4);
    jw_log_set_level(JW_LOG_DEBUG);
    jw_debug("t", "debug %d", 5);

    char *text = captured();
    assert_int_equal(count_lines(text), 3);
    assert_null(strstr(text, "info 2"));
    assert_null(strstr(text, "debug 1"));
    assert_non_null(strstr(text, " WARN  t: warn 3\n"));
    assert_non_null(strstr(text, " ERROR t: error 4\n"));
    assert_non_null(strstr(text, " DEBUG t: debug 5\n"));
    free(text);
}

static void
test_text_one_line_per_call(void **state)
{
    (void)state;
    jw_info("gateway", "a\nb\r\tc\x01 \"q\" caf\xc3\xa9");
    char *text = captured();
    assert_int_equal(count_lines(text), 1);
    /* 2026-11-23T05:00:00.123Z INFO  gateway: ... */
    assert_int_equal(text[23], 'Z');
    assert_non_null(strstr(text, "Z INFO  gateway: a\\nb\\r\\tc\\u0001 \"q\" caf\xc3\xa9\n"));
    free(text);
}

static void
test_json_format(void **state)
{
    (void)state;
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';

    jw_log_set_format(JW_LOG_FORMAT_JSON);
    jw_log_set_level(JW_LOG_DEBUG);
    jw_info("session", "client %u connected", 42u);
    jw_warn("upstream", "quote\" backslash\\ nl\n tab\t ctl\x1f del\x7f");
    jw_error("hub",
             "utf8 caf\xc3\xa9 \xed\x95\x9c \xf0\x9f\x98\x80 bad \xff\xc3 surrogate \xed\xa0\x80");
    jw_debug("m\"od", "%s", big);
    jw_log_set_level(JW_LOG_ERROR);
    jw_warn("hidden", "filtered out");

    char *text = captured();
    json_t *all = parse_lines(text);
    assert_int_equal(json_array_size(all), 4);

    assert_string_equal(field(all, 0, "level"), "info");
    assert_string_equal(field(all, 0, "module"), "session");
    assert_string_equal(field(all, 0, "msg"), "client 42 connected");
    assert_string_equal(field(all, 1, "level"), "warn");
    assert_string_equal(field(all, 1, "msg"), "quote\" backslash\\ nl\n tab\t ctl\x1f del\x7f");
    assert_string_equal(field(all, 2, "level"), "error");
    /* Valid UTF-8 passes through; each invalid byte becomes U+FFFD (EF BF BD). */
    assert_string_equal(
        field(all, 2, "msg"),
        "utf8 caf\xc3\xa9 \xed\x95\x9c \xf0\x9f\x98\x80 bad \xef\xbf\xbd\xef\xbf\xbd"
        " surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(field(all, 3, "level"), "debug");
    assert_string_equal(field(all, 3, "module"), "m\"od");
    assert_string_equal(field(all, 3, "msg"), big);
    assert_null(strstr(text, "filtered out"));
    json_decref(all);
    free(text);
}

static void *
log_many(void *arg)
{
    for (int i = 0; i < 300; i++)
        jw_info("thread", "thread %d line %d with some padding to make lines longer", *(int *)arg,
                i);
    return NULL;
}

static void
test_json_lines_from_threads_stay_whole(void **state)
{
    (void)state;
    pthread_t t[4];
    int ids[4] = {0, 1, 2, 3};

    jw_log_set_format(JW_LOG_FORMAT_JSON);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_many, &ids[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = captured();
    json_t *all = parse_lines(text);
    assert_int_equal(json_array_size(all), 1200);
    json_decref(all);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_one_line_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_lines_from_threads_stay_whole, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
