/*
 * Growable byte buffer used to build outgoing JSON text. The buffer owns `data`.
 */
#ifndef JOBWIRE_BUF_H
#define JOBWIRE_BUF_H

#include <stddef.h>

struct jw_buf {
    char *data; /* read-only for callers */
    size_t len; /* bytes written */
    size_t cap;
};

void jw_buf_init(struct jw_buf *b, size_t capacity_hint);
void jw_buf_free(struct jw_buf *b);
void jw_buf_reserve(struct jw_buf *b, size_t extra);
void jw_buf_append(struct jw_buf *b, const void *data, size_t len);
void jw_buf_append_str(struct jw_buf *b, const char *s);
/* Appends `s` as a quoted JSON string, escaping quotes, backslashes and control bytes; bytes
 * that are not UTF-8 become U+FFFD, so the result is always valid JSON text. */
void jw_buf_append_json_string(struct jw_buf *b, const char *s, size_t len);
void jw_buf_append_u64(struct jw_buf *b, unsigned long long v);

#endif
