/*
 * Client admission rules (see access.h).
 */
#include "access.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobwire/alloc.h"
#include "jobwire/dict.h"

/* Copies the trimmed entry [start, end) of a comma list into out; 0 when it is not an address. */
static int
xff_entry(const char *start, const char *end, char *out, size_t out_size)
{
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    /* "[v6]:port" and "a.b.c.d:port" (Azure Application Gateway adds the port): the address. */
    if (start < end && *start == '[') {
        const char *close = memchr(start, ']', (size_t)(end - start));
        if (!close)
            return 0;
        start++;
        end = close;
    } else {
        const char *colon = memchr(start, ':', (size_t)(end - start));
        if (colon && !memchr(colon + 1, ':', (size_t)(end - colon - 1)))
            end = colon;
    }
    size_t len = (size_t)(end - start);
    if (len == 0 || len >= out_size)
        return 0;
    memcpy(out, start, len);
    out[len] = '\0';
    int family;
    uint8_t addr[16];
    return jw_ip_parse(out, &family, addr) == 0;
}

void
jw_client_address(const char *peer, const char *xff, const struct jw_cidr *trusted, size_t ntrusted,
                  char *out, size_t out_size)
{
    snprintf(out, out_size, "%s", peer);
    if (!xff || !ntrusted || !jw_cidr_list_contains(trusted, ntrusted, peer))
        return;
    /* Walk right to left: each hop was appended by the proxy in front of it. */
    const char *end = xff + strlen(xff);
    char entry[64];
    while (end > xff) {
        const char *comma = end;
        while (comma > xff && comma[-1] != ',')
            comma--;
        if (!xff_entry(comma, end, entry, sizeof(entry)))
            return;
        snprintf(out, out_size, "%s", entry);
        if (!jw_cidr_list_contains(trusted, ntrusted, entry))
            return;
        end = comma > xff ? comma - 1 : xff;
    }
}

int
jw_origin_allowed(const char *origin, char *const *allowed, size_t nallowed)
{
    if (!nallowed || !origin)
        return 1;
    for (size_t i = 0; i < nallowed; i++)
        if (strcasecmp(origin, allowed[i]) == 0)
            return 1;
    return 0;
}

/* Counts are stored in the dict's value pointer; a key with count 0 is removed. */
struct jw_counts {
    struct jw_dict *d;
};

struct jw_counts *
jw_counts_new(void)
{
    struct jw_counts *c = jw_malloc(sizeof(*c));
    c->d = jw_dict_new();
    return c;
}

void
jw_counts_free(struct jw_counts *c)
{
    if (!c)
        return;
    jw_dict_free(c->d);
    free(c);
}

unsigned
jw_counts_get(const struct jw_counts *c, const char *key)
{
    return (unsigned)(uintptr_t)jw_dict_get(c->d, key);
}

int
jw_counts_acquire(struct jw_counts *c, const char *key, unsigned max)
{
    unsigned n = jw_counts_get(c, key);
    if (max && n >= max)
        return -EBUSY;
    jw_dict_set(c->d, key, (void *)(uintptr_t)(n + 1));
    return 0;
}

void
jw_counts_release(struct jw_counts *c, const char *key)
{
    unsigned n = jw_counts_get(c, key);
    if (n <= 1)
        jw_dict_del(c->d, key);
    else
        jw_dict_set(c->d, key, (void *)(uintptr_t)(n - 1));
}

void
jw_bucket_init(struct jw_bucket *b, unsigned burst, uint64_t now_ms)
{
    b->tokens_milli = burst * 1000u;
    b->last_ms = now_ms;
}

int
jw_bucket_take(struct jw_bucket *b, unsigned rate, unsigned burst, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)burst * 1000u;
    uint64_t elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
    uint64_t tokens = b->tokens_milli + elapsed * rate; /* rate per s = rate milli-tokens per ms */
    b->tokens_milli = (uint32_t)(tokens > cap ? cap : tokens);
    b->last_ms = now_ms;
    if (b->tokens_milli < 1000)
        return 0;
    b->tokens_milli -= 1000;
    return 1;
}

void
jw_address_key(const char *address, char *out, size_t out_size)
{
    int family;
    uint8_t addr[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (jw_ip_parse(address, &family, addr) < 0 || family == AF_INET ||
        memcmp(addr, mapped, 12) == 0) {
        snprintf(out, out_size, "%s", address);
        return;
    }
    /* One subscriber line gets a whole /64: counting its addresses one by one counts nothing. */
    char text[INET6_ADDRSTRLEN];
    memset(addr + 8, 0, 8);
    inet_ntop(AF_INET6, addr, text, sizeof text);
    snprintf(out, out_size, "%s/64", text);
}
