/*
 * redis:// and rediss:// URLs: parsing into host, port, credentials and TLS, and masking of the
 * password for logs and --check-config (see redisurl.h).
 */
#include "redisurl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobwire/alloc.h"

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int
hexval(char ch)
{
    const char *digits = "0123456789abcdef";
    const char *d = ch != '\0' ? strchr(digits, tolower((unsigned char)ch)) : NULL;

    return d ? (int)(d - digits) : -1;
}

/* Percent-decodes s[0..len) into a new string; NULL on a malformed escape or a %00. */
static char *
pct_decode(const char *s, size_t len)
{
    char *out = jw_malloc(len + 1), *w = out;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] != '%') {
            *w++ = s[i];
            continue;
        }
        hi = i + 2 < len ? hexval(s[i + 1]) : -1;
        lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *w++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *w = '\0';
    return out;
}

void
jw_redis_url_clear(struct jw_redis_url *u)
{
    free(u->host);
    free(u->user);
    free(u->pass);
    memset(u, 0, sizeof *u);
}

/* Messages never quote the URL itself: it may hold a password. */
int
jw_redis_url_parse(const char *url, struct jw_redis_url *u, char *err, size_t errlen)
{
    const char *p, *auth_end, *at = NULL, *h, *h_end, *port = NULL, *why;
    unsigned char addr[16];

    memset(u, 0, sizeof *u);
    u->db = -1;
    u->tls = strncasecmp(url, "rediss://", 9) == 0;
    if (!u->tls && strncasecmp(url, "redis://", 8) != 0)
        return fail(err, errlen, "redis_url: the scheme must be redis:// or rediss://");
    p = url + (u->tls ? 9 : 8);
    /* The credentials end at the last '@' of the URL, so that an unescaped '@' or '/' in a
     * password (Azure access keys are base64: about half contain '/') still works. */
    at = strrchr(p, '@');
    auth_end = (at ? at + 1 : p) + strcspn(at ? at + 1 : p, "/?#");
    h = p;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        why = "credentials must be written [username]:password@";
        if (colon == NULL)
            goto bad;
        u->has_auth = true;
        u->user = pct_decode(p, (size_t)(colon - p));
        u->pass = pct_decode(colon + 1, (size_t)(at - colon - 1));
        why = "bad percent-encoding in the credentials";
        if (u->user == NULL || u->pass == NULL)
            goto bad;
        h = at + 1;
    }
    if (*h == '[') {
        h_end = memchr(h, ']', (size_t)(auth_end - h));
        why = "malformed [IPv6] host";
        if (h_end == NULL || (h_end + 1 < auth_end && h_end[1] != ':'))
            goto bad;
        port = h_end + 1 < auth_end ? h_end + 2 : NULL;
        h++;
    } else if ((h_end = memchr(h, ':', (size_t)(auth_end - h))) != NULL) {
        port = h_end + 1;
        why = "an IPv6 host must be written in brackets, [::1]";
        if (memchr(port, ':', (size_t)(auth_end - port)) != NULL)
            goto bad;
    } else {
        h_end = auth_end;
    }
    why = "missing host";
    if (h_end == h)
        goto bad;
    u->host = jw_strndup(h, (size_t)(h_end - h));
    why = "malformed [IPv6] host";
    if (h[-1] == '[' && inet_pton(AF_INET6, u->host, addr) != 1)
        goto bad;
    if (port != NULL) {
        size_t len = (size_t)(auth_end - port), digits = strspn(port, "0123456789");
        long v = len > 0 && len < 6 && digits >= len ? strtol(port, NULL, 10) : 0;
        if (v < 1 || v > 65535) {
            jw_redis_url_clear(u);
            return fail(err, errlen, "redis_url: bad port '%.*s' (expected 1..65535)",
                        (int)(len > 16 ? 16 : len), port);
        }
        u->port = (int)v;
    }
    /* /db: snapshots, owner checks and revocation read that database (pub/sub is global). */
    why = "the path must be a database number such as /0 (a password with '/', '?' or '#' "
          "must be percent-encoded, or given in REDIS_PASSWORD)";
    if (*auth_end == '/') {
        size_t digits = strspn(auth_end + 1, "0123456789");
        if (auth_end[1 + digits] != '\0' || digits > 5 || (digits && atoi(auth_end + 1) > 65535))
            goto bad;
        u->db = digits ? atoi(auth_end + 1) : -1;
    }
    why = "query strings and fragments are not supported";
    if (*auth_end == '?' || *auth_end == '#')
        goto bad;
    return 0;
bad:
    jw_redis_url_clear(u);
    return fail(err, errlen, "redis_url: %s", why);
}

char *
jw_redis_url_mask(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *p = scheme ? scheme + 3 : url;
    const char *at = strrchr(p, '@'), *colon;
    char *out;

    if (at == NULL)
        return jw_strdup(url);
    colon = memchr(p, ':', (size_t)(at - p));
    out = jw_malloc(strlen(url) + 9);
    sprintf(out, "%.*s********%s", (int)((colon ? colon + 1 : p) - url), url, at);
    return out;
}
