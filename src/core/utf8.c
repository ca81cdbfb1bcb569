/*
 * UTF-8 validation (see utf8.h).
 */
#include "jobwire/utf8.h"

size_t
jw_utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        lo = p[0] == 0xE0 ? 0xA0 : lo; /* no overlong forms */
        hi = p[0] == 0xED ? 0x9F : hi; /* no surrogates */
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        lo = p[0] == 0xF0 ? 0x90 : lo;
        hi = p[0] == 0xF4 ? 0x8F : hi; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

bool
jw_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = jw_utf8_seq_len(p, end);
        if (!n)
            return false;
        p += n;
    }
    return true;
}
