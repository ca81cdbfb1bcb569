/*
 * IPv4 and IPv6 address ranges: parsed from configuration (trusted_proxies) and matched
 * against client addresses by the gateway.
 */
#ifndef JOBWIRE_CIDR_H
#define JOBWIRE_CIDR_H

#include <stddef.h>
#include <stdint.h>

struct jw_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
};

/* Parses "10.0.0.0/8", "fd00::/8" or a single address (full-length prefix). Returns 0 or -EINVAL.
 */
int jw_cidr_parse(const char *text, struct jw_cidr *out) __attribute__((warn_unused_result));
/* 1 when the textual address `ip` lies in any of the ranges. */
int jw_cidr_list_contains(const struct jw_cidr *list, size_t n, const char *ip);
/* A textual IPv4 or IPv6 address into family (AF_INET/AF_INET6) and 16 bytes; 0 or -EINVAL. */
int jw_ip_parse(const char *text, int *family, uint8_t addr[16]);

#endif
