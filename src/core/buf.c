/*
 * Growable byte buffer for building JSON text (see buf.h).
 */
#include "jobwire/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/utf8.h"

void
jw_buf_init(struct jw_buf *b, size_t capacity_hint)
{
    b->len = 0;
    b->cap = capacity_hint < 64 ? 64 : capacity_hint;
    b->data = jw_malloc(b->cap);
}

void
jw_buf_free(struct jw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void
jw_buf_reserve(struct jw_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t want = b->len + extra;
    while (b->cap < want)
        b->cap *= 2;
    b->data = jw_realloc(b->data, b->cap);
}

void
jw_buf_append(struct jw_buf *b, const void *data, size_t len)
{
    jw_buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void
jw_buf_append_str(struct jw_buf *b, const char *s)
{
    jw_buf_append(b, s, strlen(s));
}

void
jw_buf_append_json_string(struct jw_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    /* Worst case every byte becomes \u00XX. */
    jw_buf_reserve(b, len * 6 + 2);
    char *out = b->data + b->len;
    *out++ = '"';
    while (p < end) {
        unsigned char c = *p;
        if (c >= 0x80) {
            size_t n = jw_utf8_seq_len(p, end);
            if (n) {
                memcpy(out, p, n);
                out += n;
                p += n;
            } else { /* not UTF-8: U+FFFD, as 6 bytes of escape (the room of one byte) */
                memcpy(out, "\\ufffd", 6);
                out += 6;
                p++;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 15];
            out += 6;
        } else {
            *out++ = (char)c;
        }
        p++;
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
}

void
jw_buf_append_u64(struct jw_buf *b, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", v);
    jw_buf_append(b, tmp, (size_t)n);
}
