/*
 * A reference JSON validator for tests: RFC 8259 written down as plainly as possible (recursive
 * descent over code points, no shared code with src/core/json.c), used as the oracle of
 * tests/unit/test_json.c and tests/fuzz/fuzz_json.c. It also reports where each top-level
 * member's value is (the last of duplicate keys), and what jw_json_member_id() should return.
 *
 * Header-only (static functions): included by one test or fuzzer each.
 */
#ifndef JOBWIRE_TEST_JSON_REF_H
#define JOBWIRE_TEST_JSON_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Header-only: each user needs only some of these. */
#define REF_FN static __attribute__((unused))

enum ref_type { REF_NONE = 0, REF_STRING, REF_NUMBER, REF_OTHER };

struct ref_member {
    const char *name; /* in */
    enum ref_type type;
    size_t start, len;
};

struct ref {
    const unsigned char *text, *p, *end;
    struct ref_member *members;
    size_t nmembers;
    unsigned depth, max_depth; /* recursion guard; deeper input is reported as unknown */
    bool too_deep;
};

/* One UTF-8 sequence at p: its length and code point, or 0 when ill-formed (RFC 3629). */
REF_FN size_t
ref_utf8(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
    unsigned c = p[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

REF_FN bool
ref_utf8_valid(const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    uint32_t cp;
    while (p < end) {
        size_t n = ref_utf8(p, end, &cp);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

REF_FN void
ref_ws(struct ref *r)
{
    while (r->p < r->end && (*r->p == 0x20 || *r->p == 0x09 || *r->p == 0x0A || *r->p == 0x0D))
        r->p++;
}

REF_FN int
ref_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

REF_FN void
ref_put(unsigned char *out, size_t *n, size_t cap, uint32_t cp, bool *bad)
{
    unsigned char b[4];
    size_t k;
    if (cp >= 0xD800 && cp <= 0xDFFF) { /* a lone surrogate: no UTF-8 for it */
        *bad = true;
        return;
    }
    if (cp < 0x80) {
        b[0] = (unsigned char)cp, k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6)), b[1] = (unsigned char)(0x80 | (cp & 0x3F)), k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12)),
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F)), k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18)),
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (*n + k > cap) {
        *bad = true;
        return;
    }
    memcpy(out + *n, b, k);
    *n += k;
}

/* A string at r->p (the opening quote). With `out`, decodes it into out[0..cap) (length in
 * *outlen; *bad when it does not fit or holds a lone surrogate). */
REF_FN bool
ref_string(struct ref *r, unsigned char *out, size_t cap, size_t *outlen, bool *bad)
{
    size_t n = 0;
    r->p++;
    for (;;) {
        if (r->p >= r->end)
            return false;
        unsigned char c = *r->p;
        if (c == '"') {
            r->p++;
            if (outlen)
                *outlen = n;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c != '\\') {
            uint32_t cp;
            size_t k = ref_utf8(r->p, r->end, &cp);
            if (!k)
                return false;
            if (out)
                ref_put(out, &n, cap, cp, bad);
            r->p += k;
            continue;
        }
        if (r->end - r->p < 2)
            return false;
        unsigned char e = r->p[1];
        r->p += 2;
        uint32_t cp;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            cp = e;
            break;
        case 'b':
            cp = 8;
            break;
        case 'f':
            cp = 12;
            break;
        case 'n':
            cp = 10;
            break;
        case 'r':
            cp = 13;
            break;
        case 't':
            cp = 9;
            break;
        case 'u': {
            if (r->end - r->p < 4)
                return false;
            cp = 0;
            for (int i = 0; i < 4; i++) {
                int d = ref_hex(r->p[i]);
                if (d < 0)
                    return false;
                cp = cp * 16 + (uint32_t)d;
            }
            r->p += 4;
            /* \uD83D\uDE00: one code point; a high surrogate not followed by a low one stays
             * alone (valid JSON, not UTF-8) */
            if (cp >= 0xD800 && cp <= 0xDBFF && r->end - r->p >= 6 && r->p[0] == '\\' &&
                r->p[1] == 'u') {
                uint32_t lo = 0;
                bool ok = true;
                for (int i = 0; i < 4 && ok; i++) {
                    int d = ref_hex(r->p[2 + i]);
                    ok = d >= 0;
                    lo = lo * 16 + (uint32_t)(d < 0 ? 0 : d);
                }
                if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->p += 6;
                }
            }
            break;
        }
        default:
            return false;
        }
        if (out)
            ref_put(out, &n, cap, cp, bad);
    }
}

REF_FN bool
ref_digit(const struct ref *r)
{
    return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

REF_FN bool
ref_number(struct ref *r)
{
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (!ref_digit(r))
        return false;
    if (*r->p == '0') {
        r->p++;
    } else {
        while (ref_digit(r))
            r->p++;
    }
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!ref_digit(r))
            return false;
        while (ref_digit(r))
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!ref_digit(r))
            return false;
        while (ref_digit(r))
            r->p++;
    }
    return true;
}

REF_FN bool
ref_word(struct ref *r, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return false;
    r->p += n;
    return true;
}

REF_FN bool ref_value(struct ref *r, enum ref_type *type);

REF_FN bool
ref_object(struct ref *r)
{
    bool top = r->depth == 1;
    r->p++;
    ref_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return true;
    }
    for (;;) {
        if (r->p >= r->end || *r->p != '"')
            return false;
        unsigned char key[80];
        size_t klen = 0;
        bool bad = false;
        if (!ref_string(r, top ? key : NULL, sizeof key, &klen, &bad))
            return false;
        ref_ws(r);
        if (r->p >= r->end || *r->p != ':')
            return false;
        r->p++;
        ref_ws(r);
        size_t start = (size_t)(r->p - r->text);
        enum ref_type t;
        if (!ref_value(r, &t))
            return false;
        if (top && !bad) {
            for (size_t i = 0; i < r->nmembers; i++) {
                struct ref_member *m = &r->members[i];
                if (strlen(m->name) == klen && memcmp(m->name, key, klen) == 0) {
                    m->type = t;
                    m->start = start;
                    m->len = (size_t)(r->p - r->text) - start;
                }
            }
        }
        ref_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            ref_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return true;
        }
        return false;
    }
}

REF_FN bool
ref_array(struct ref *r)
{
    r->p++;
    ref_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return true;
    }
    for (;;) {
        enum ref_type t;
        if (!ref_value(r, &t))
            return false;
        ref_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            ref_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return true;
        }
        return false;
    }
}

REF_FN bool
ref_value(struct ref *r, enum ref_type *type)
{
    if (r->p >= r->end)
        return false;
    unsigned char c = *r->p;
    *type = REF_OTHER;
    if (c == '{' || c == '[') {
        if (r->depth >= r->max_depth) {
            r->too_deep = true;
            return false;
        }
        r->depth++;
        bool ok = c == '{' ? ref_object(r) : ref_array(r);
        r->depth--;
        return ok;
    }
    if (c == '"') {
        *type = REF_STRING;
        return ref_string(r, NULL, 0, NULL, NULL);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        *type = REF_NUMBER;
        return ref_number(r);
    }
    return ref_word(r, "true") || ref_word(r, "false") || ref_word(r, "null");
}

/* 1: one JSON text; 0: not; -1: nested deeper than max_depth (no verdict). Fills members. */
REF_FN int
ref_json(const char *text, size_t len, struct ref_member *members, size_t nmembers,
         unsigned max_depth)
{
    struct ref r = {(const unsigned char *)text,
                    (const unsigned char *)text,
                    (const unsigned char *)text + len,
                    members,
                    nmembers,
                    0,
                    max_depth,
                    false};
    for (size_t i = 0; i < nmembers; i++)
        members[i].type = REF_NONE;
    ref_ws(&r);
    enum ref_type t;
    bool ok = ref_value(&r, &t);
    ref_ws(&r);
    ok = ok && r.p == r.end;
    if (!ok)
        for (size_t i = 0; i < nmembers; i++)
            members[i].type = REF_NONE;
    return r.too_deep ? -1 : ok;
}

/* What jw_json_member_id() should give for a member the reference located in `text`. */
REF_FN size_t
ref_member_id(const char *text, const struct ref_member *m, char *out, size_t size)
{
    const char *v = text + m->start;
    if (m->type == REF_STRING) {
        struct ref r = {(const unsigned char *)v,
                        (const unsigned char *)v,
                        (const unsigned char *)v + m->len,
                        NULL,
                        0,
                        0,
                        0,
                        false};
        size_t n = 0;
        bool bad = false;
        if (size == 0 || !ref_string(&r, (unsigned char *)out, size - 1, &n, &bad) || bad)
            return 0;
        out[n] = '\0';
        return n;
    }
    if (m->type != REF_NUMBER || m->len + 1 > size)
        return 0;
    for (size_t i = 0; i < m->len; i++) {
        bool digit = v[i] >= '0' && v[i] <= '9';
        if (!digit && !(i == 0 && v[i] == '-'))
            return 0;
    }
    memcpy(out, v, m->len);
    out[m->len] = '\0';
    return m->len;
}

#endif
