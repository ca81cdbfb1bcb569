/*
 * The validating JSON scanner (see json.h). Iterative, so nesting depth costs one bit of stack
 * per level instead of a C stack frame: a hostile payload of 64 KiB of '[' cannot overflow it.
 */
#include "jobwire/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/utf8.h"

#define KEY_MAX 64 /* longer keys cannot be one of the members looked for */

struct scan {
    const unsigned char *p, *end;
};

/* Container stack: one bit per open container, 1 = object. Grows on the heap past 512 levels. */
struct nest {
    uint8_t small[64], *bits;
    size_t depth, cap_bits;
};

static bool
nest_push(struct nest *n, bool object)
{
    if (n->depth == n->cap_bits) {
        size_t cap = n->cap_bits * 2;
        uint8_t *bits = jw_malloc(cap / 8);
        memcpy(bits, n->bits, n->cap_bits / 8);
        if (n->bits != n->small)
            free(n->bits);
        n->bits = bits;
        n->cap_bits = cap;
    }
    size_t i = n->depth++;
    if (object)
        n->bits[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        n->bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
    return true;
}

static bool
nest_top_is_object(const struct nest *n)
{
    size_t i = n->depth - 1;
    return (n->bits[i / 8] >> (i % 8)) & 1u;
}

static void
skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller); -1 when not. */
static long
hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends code point cp as UTF-8 to out[*n], if it fits in size; marks *bad otherwise or when it
 * cannot be encoded (a lone surrogate). */
static void
put_utf8(char *out, size_t size, size_t *n, unsigned long cp, bool *bad)
{
    unsigned char b[4];
    size_t k;
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        *bad = true;
        return;
    }
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (*n + k >= size) {
        *bad = true;
        return;
    }
    memcpy(out + *n, b, k);
    *n += k;
}

/* Scans a string at s->p (the opening quote). With `out`, also decodes it into out (at most
 * size - 1 bytes, NUL-terminated) and sets *bad when it does not fit or holds a lone surrogate.
 * Returns false when the text is not a JSON string. */
static bool
scan_string(struct scan *s, char *out, size_t size, size_t *outlen, bool *bad)
{
    size_t n = 0;
    s->p++; /* the opening quote */
    for (;;) {
        if (s->p >= s->end)
            return false;
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            break;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (s->end - s->p < 2)
                return false;
            unsigned char e = s->p[1];
            unsigned long cp;
            s->p += 2;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                cp = e;
                break;
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'n':
                cp = '\n';
                break;
            case 'r':
                cp = '\r';
                break;
            case 't':
                cp = '\t';
                break;
            case 'u': {
                long v = s->end - s->p >= 4 ? hex4(s->p) : -1;
                if (v < 0)
                    return false;
                s->p += 4;
                cp = (unsigned long)v;
                /* A high surrogate followed by an escaped low one is one code point; anything
                 * else is still valid JSON, just not encodable as UTF-8. */
                if (cp >= 0xD800 && cp <= 0xDBFF && s->end - s->p >= 6 && s->p[0] == '\\' &&
                    s->p[1] == 'u') {
                    long lo = hex4(s->p + 2);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
                        s->p += 6;
                    }
                }
                break;
            }
            default:
                return false;
            }
            if (out)
                put_utf8(out, size, &n, cp, bad);
            continue;
        }
        size_t k = 1;
        if (c >= 0x80 && !(k = jw_utf8_seq_len(s->p, s->end)))
            return false;
        if (out) {
            if (n + k >= size)
                *bad = true;
            else
                memcpy(out + n, s->p, k);
            n += *bad ? 0 : k;
        }
        s->p += k;
    }
    if (out) {
        out[*bad ? 0 : n] = '\0';
        *outlen = *bad ? 0 : n;
    }
    return true;
}

static bool
digits(struct scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool
scan_number(struct scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return false;
    if (*s->p == '0')
        s->p++;
    else if (!digits(s))
        return false;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!digits(s))
            return false;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!digits(s))
            return false;
    }
    return true;
}

static bool
scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* Scans a scalar at s->p; *type tells which kind it was. */
static bool
scan_scalar(struct scan *s, enum jw_json_type *type)
{
    unsigned char c = *s->p;
    *type = JW_JSON_OTHER;
    if (c == '"') {
        *type = JW_JSON_STRING;
        return scan_string(s, NULL, 0, NULL, NULL);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        *type = JW_JSON_NUMBER;
        return scan_number(s);
    }
    if (c == 't')
        return scan_literal(s, "true");
    if (c == 'f')
        return scan_literal(s, "false");
    if (c == 'n')
        return scan_literal(s, "null");
    return false;
}

bool
jw_json_scan(const char *text, size_t len, struct jw_json_member *members, size_t nmembers)
{
    struct scan s = {(const unsigned char *)text, (const unsigned char *)text + len};
    struct nest n = {.depth = 0, .cap_bits = sizeof n.small * 8};
    n.bits = n.small;
    struct jw_json_member *cur = NULL; /* the top-level member whose value is being scanned */
    size_t cur_start = 0;
    bool ok = false;

    for (size_t i = 0; i < nmembers; i++)
        members[i].type = JW_JSON_NONE;

    skip_ws(&s);
    for (;;) {
        /* A value starts here. */
        if (s.p >= s.end)
            goto out;
        if (*s.p == '{' || *s.p == '[') {
            bool object = *s.p == '{';
            s.p++;
            nest_push(&n, object);
            skip_ws(&s);
            if (s.p < s.end && *s.p == (object ? '}' : ']')) {
                s.p++;
                n.depth--;
                goto value_done;
            }
            if (object)
                goto member_key;
            continue;
        }
        enum jw_json_type type;
        if (!scan_scalar(&s, &type))
            goto out;
        if (cur && n.depth == 1) {
            cur->type = type;
            cur->start = cur_start;
            cur->len = (size_t)(s.p - (const unsigned char *)text) - cur_start;
            cur = NULL;
        }

    value_done:
        if (cur && n.depth == 1) { /* a container value of a top-level member just closed */
            cur->type = JW_JSON_OTHER;
            cur->start = cur_start;
            cur->len = (size_t)(s.p - (const unsigned char *)text) - cur_start;
            cur = NULL;
        }
        skip_ws(&s);
        if (n.depth == 0) {
            ok = s.p == s.end;
            goto out;
        }
        if (s.p >= s.end)
            goto out;
        if (*s.p == ',') {
            s.p++;
            skip_ws(&s);
            if (nest_top_is_object(&n))
                goto member_key;
            continue;
        }
        if (*s.p != (nest_top_is_object(&n) ? '}' : ']'))
            goto out;
        s.p++;
        n.depth--;
        goto value_done;

    member_key:
        if (s.p >= s.end || *s.p != '"')
            goto out;
        {
            char key[KEY_MAX + 1];
            size_t klen = 0;
            bool too_long = false;
            bool top = n.depth == 1;
            if (!scan_string(&s, top ? key : NULL, sizeof key, &klen, &too_long))
                goto out;
            if (top) { /* nested keys never change which top-level member is being read */
                cur = NULL;
                for (size_t i = 0; !too_long && i < nmembers; i++)
                    if (strlen(members[i].name) == klen && memcmp(members[i].name, key, klen) == 0)
                        cur = &members[i];
            }
        }
        skip_ws(&s);
        if (s.p >= s.end || *s.p != ':')
            goto out;
        s.p++;
        skip_ws(&s);
        if (n.depth == 1) /* where a top-level member's value starts */
            cur_start = (size_t)(s.p - (const unsigned char *)text);
    }
out:
    if (n.bits != n.small)
        free(n.bits);
    if (!ok)
        for (size_t i = 0; i < nmembers; i++)
            members[i].type = JW_JSON_NONE;
    return ok;
}

size_t
jw_json_member_id(const char *text, const struct jw_json_member *m, char *out, size_t size)
{
    const char *v = text + m->start;
    if (m->type == JW_JSON_STRING) {
        struct scan s = {(const unsigned char *)v, (const unsigned char *)v + m->len};
        size_t len = 0;
        bool bad = false;
        if (!scan_string(&s, out, size, &len, &bad) || bad)
            return 0;
        return len;
    }
    if (m->type != JW_JSON_NUMBER || m->len >= size)
        return 0;
    for (size_t i = 0; i < m->len; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (i == 0 && v[i] == '-')))
            return 0; /* a fraction or an exponent: not an id */
    memcpy(out, v, m->len);
    out[m->len] = '\0';
    return m->len;
}
