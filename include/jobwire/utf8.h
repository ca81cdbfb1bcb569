/*
 * UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing above U+10FFFF.
 * Everything jobwire copies into a WebSocket text frame or a JSON log line from outside
 * (channel names, ids, payloads) is checked with these first.
 */
#ifndef JOBWIRE_UTF8_H
#define JOBWIRE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed multi-byte sequence at p (p[0] >= 0x80), or 0 when it is not one. */
size_t jw_utf8_seq_len(const unsigned char *p, const unsigned char *end);
/* true when s[0..len) is well-formed UTF-8. */
bool jw_utf8_valid(const char *s, size_t len);

#endif
