/*
 * Address ranges (see cidr.h).
 */
#include "jobwire/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
jw_ip_parse(const char *text, int *family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, text, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, addr) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -EINVAL;
}

int
jw_cidr_parse(const char *text, struct jw_cidr *out)
{
    char ip[64];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, text, len);
    ip[len] = '\0';
    if (jw_ip_parse(ip, &out->family, out->addr) < 0)
        return -EINVAL;
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        char *end;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || p > max)
            return -EINVAL;
        out->prefix = (unsigned)p;
    }
    return 0;
}

static int
cidr_match(const struct jw_cidr *c, int family, const uint8_t addr[16])
{
    if (c->family != family)
        return 0;
    unsigned whole = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, whole) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[whole] & mask) == (addr[whole] & mask);
}

int
jw_cidr_list_contains(const struct jw_cidr *list, size_t n, const char *ip)
{
    int family;
    uint8_t addr[16];
    if (jw_ip_parse(ip, &family, addr) < 0)
        return 0;
    /* An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is matched as IPv4. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && memcmp(addr, mapped, 12) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        family = AF_INET;
    }
    for (size_t i = 0; i < n; i++)
        if (cidr_match(&list[i], family, addr))
            return 1;
    return 0;
}
