/*
 * Logging: one line per event, safe to call from any thread. Two formats: text for a terminal
 * ("2026-11-23T05:00:00.123Z INFO  session: closed conn=c0000002a code=4008") and JSON for log
 * collectors ({"ts":"…","level":"info","module":"session","msg":"closed","conn":"c0000002a",
 * "code":4008}): structured fields (jw_log_fields) become keys of their own. Secrets
 * (passwords, tokens) must never be passed to these functions.
 */
#ifndef JOBWIRE_LOG_H
#define JOBWIRE_LOG_H

#include <stdio.h>

enum jw_log_level { JW_LOG_DEBUG = 0, JW_LOG_INFO, JW_LOG_WARN, JW_LOG_ERROR };
enum jw_log_format { JW_LOG_FORMAT_TEXT = 0, JW_LOG_FORMAT_JSON };

void jw_log_set_level(enum jw_log_level level);
void jw_log_set_format(enum jw_log_format format);
/* Where lines go; NULL (the default) means stderr. The stream is not owned. Call it before other
 * threads log (start-up, tests): the pointer is not synchronised with jw_log(). */
void jw_log_set_output(FILE *out);
int jw_log_enabled(enum jw_log_level level);
/* `module` is a short tag such as "upstream" or "gateway". The formatted message may contain any
 * bytes: control characters are escaped so that one call is always exactly one line. */
void jw_log(enum jw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A structured field: a string (NULL: the field is left out) or a number. */
struct jw_log_field {
    const char *key;
    const char *str;
    long long num;
    int is_num;
};
#define JW_LOG_STR(k, v) ((struct jw_log_field){.key = (k), .str = (v)})
#define JW_LOG_NUM(k, v) ((struct jw_log_field){.key = (k), .num = (long long)(v), .is_num = 1})

/* jw_log() with fields after the message. */
void jw_log_fields(enum jw_log_level level, const char *module, const struct jw_log_field *fields,
                   size_t nfields, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define jw_debug(mod, ...)                                                                         \
    do {                                                                                           \
        if (jw_log_enabled(JW_LOG_DEBUG))                                                          \
            jw_log(JW_LOG_DEBUG, mod, __VA_ARGS__);                                                \
    } while (0)
#define jw_info(mod, ...) jw_log(JW_LOG_INFO, mod, __VA_ARGS__)
#define jw_warn(mod, ...) jw_log(JW_LOG_WARN, mod, __VA_ARGS__)
#define jw_error(mod, ...) jw_log(JW_LOG_ERROR, mod, __VA_ARGS__)

#endif
