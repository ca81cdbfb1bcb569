/*
 * Logging, text or JSON, one line per call. The message is formatted into memory first and
 * written with one flockfile() section, so lines from the two threads never interleave. Control
 * bytes are escaped in both formats (a message can never forge a second line); JSON output also
 * escapes quotes and backslashes and replaces bytes that are not UTF-8 with U+FFFD, so every line
 * is a valid JSON object whatever a client or Redis sent.
 */
#include "jobwire/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobwire/alloc.h"
#include "jobwire/utf8.h"

static _Atomic int min_level = JW_LOG_INFO;
static _Atomic int format = JW_LOG_FORMAT_TEXT;
static FILE *output; /* NULL = stderr */

static const char *const text_levels[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const json_levels[] = {"debug", "info", "warn", "error"};

void
jw_log_set_level(enum jw_log_level level)
{
    atomic_store(&min_level, (int)level);
}

void
jw_log_set_format(enum jw_log_format f)
{
    atomic_store(&format, (int)f);
}

void
jw_log_set_output(FILE *out)
{
    output = out;
}

int
jw_log_enabled(enum jw_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

/* Called with f locked. */
static void
put_escaped(FILE *f, const char *s, size_t len, bool json)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        unsigned c = *p;
        size_t n = 1;
        if (c >= 0x80 && json) {
            n = jw_utf8_seq_len(p, end);
            if (n == 0) {
                fputs("\\ufffd", f);
                n = 1;
            } else {
                fwrite(p, 1, n, f);
            }
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(f, "\\u%04x", c);
        } else {
            if (json && (c == '"' || c == '\\'))
                putc_unlocked('\\', f);
            putc_unlocked((int)c, f);
        }
        p += n;
    }
}

/* Writes the fields: ` key=value` in text, `,"key":value` in JSON. Called with f locked. */
static void
put_fields(FILE *f, const struct jw_log_field *fields, size_t n, bool json)
{
    for (size_t i = 0; i < n; i++) {
        const struct jw_log_field *fl = &fields[i];
        if (!fl->str && !fl->is_num)
            continue; /* absent: an optional field not known here */
        fputs(json ? ",\"" : " ", f);
        fputs(fl->key, f);
        fputs(json ? "\":" : "=", f);
        if (fl->is_num) {
            fprintf(f, "%lld", fl->num);
            continue;
        }
        bool quote = json || strpbrk(fl->str, " \"=") || !fl->str[0];
        if (quote)
            putc_unlocked('"', f);
        put_escaped(f, fl->str, strlen(fl->str), true);
        if (quote)
            putc_unlocked('"', f);
    }
}

static void
vlog(enum jw_log_level level, const char *module, const struct jw_log_field *fields, size_t nfields,
     const char *fmt, va_list ap)
{
    char stack[512], *msg = stack, stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list again;
    int n;

    va_copy(again, ap);
    n = vsnprintf(stack, sizeof stack, fmt, ap);
    if (n < 0) {
        n = snprintf(stack, sizeof stack, "(unformattable log message: %s)", fmt);
        n = n < (int)sizeof stack ? n : (int)sizeof stack - 1;
    } else if ((size_t)n >= sizeof stack) {
        msg = jw_malloc((size_t)n + 1);
        vsnprintf(msg, (size_t)n + 1, fmt, again);
    }
    va_end(again);

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    FILE *f = output ? output : stderr;
    bool json = atomic_load_explicit(&format, memory_order_relaxed) == JW_LOG_FORMAT_JSON;
    flockfile(f);
    if (json) {
        fprintf(f, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":\"", stamp,
                ts.tv_nsec / 1000000L, json_levels[level]);
        put_escaped(f, module, strlen(module), true);
        fputs("\",\"msg\":\"", f);
        put_escaped(f, msg, (size_t)n, true);
        putc_unlocked('"', f);
        put_fields(f, fields, nfields, true);
        fputs("}\n", f);
    } else {
        fprintf(f, "%s.%03ldZ %-5s ", stamp, ts.tv_nsec / 1000000L, text_levels[level]);
        put_escaped(f, module, strlen(module), false);
        fputs(": ", f);
        put_escaped(f, msg, (size_t)n, false);
        put_fields(f, fields, nfields, false);
        putc_unlocked('\n', f);
    }
    funlockfile(f);
    if (msg != stack)
        free(msg);
}

void
jw_log(enum jw_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    if (!jw_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, module, NULL, 0, fmt, ap);
    va_end(ap);
}

void
jw_log_fields(enum jw_log_level level, const char *module, const struct jw_log_field *fields,
              size_t nfields, const char *fmt, ...)
{
    va_list ap;
    if (!jw_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, module, fields, nfields, fmt, ap);
    va_end(ap);
}
