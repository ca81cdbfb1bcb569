/*
 * Logging: one line per event on stderr, safe to call from any thread. Secrets (passwords,
 * tokens) must never be passed to these functions.
 */
#ifndef JOBWIRE_LOG_H
#define JOBWIRE_LOG_H

enum jw_log_level { JW_LOG_DEBUG = 0, JW_LOG_INFO, JW_LOG_WARN, JW_LOG_ERROR };

void jw_log_set_level(enum jw_log_level level);
int jw_log_enabled(enum jw_log_level level);
/* `module` is a short tag such as "upstream" or "gateway". */
void jw_log(enum jw_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define jw_debug(mod, ...)                                                                         \
    do {                                                                                           \
        if (jw_log_enabled(JW_LOG_DEBUG))                                                          \
            jw_log(JW_LOG_DEBUG, mod, __VA_ARGS__);                                                \
    } while (0)
#define jw_info(mod, ...) jw_log(JW_LOG_INFO, mod, __VA_ARGS__)
#define jw_warn(mod, ...) jw_log(JW_LOG_WARN, mod, __VA_ARGS__)
#define jw_error(mod, ...) jw_log(JW_LOG_ERROR, mod, __VA_ARGS__)

#endif
