/*
 * Admission rules for client connections, as pure functions and small counters so that they are
 * testable without sockets: which address a client has (X-Forwarded-For only from trusted
 * proxies), whether its browser Origin is allowed, how many connections one address or one user
 * holds, and an inbound message rate limit (token bucket). Gateway thread only.
 */
#ifndef JOBWIRE_ACCESS_H
#define JOBWIRE_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/cidr.h"

/* The client's address: `peer`, unless `peer` is a trusted proxy; then the right-most address of
 * `xff` (X-Forwarded-For, may be NULL) that is not a trusted proxy, the left-most when all are.
 * Malformed entries stop the walk at the last good address. Writes at most out_size bytes. */
void jw_client_address(const char *peer, const char *xff, const struct jw_cidr *trusted,
                       size_t ntrusted, char *out, size_t out_size);

/* The key a client address is counted under for max_connections_per_ip: the address itself,
 * or for IPv6 its /64 (what one subscriber line or host is given). */
void jw_address_key(const char *address, char *out, size_t out_size);

/* 1 when `origin` (the Origin header, NULL when absent) may open a WebSocket: no list, no Origin
 * (not a browser), or an exact, case-insensitive match with one of `allowed`. */
int jw_origin_allowed(const char *origin, char *const *allowed, size_t nallowed);

/* Connection counts per key (an address, a user id). */
struct jw_counts;
struct jw_counts *jw_counts_new(void);
void jw_counts_free(struct jw_counts *c);
/* Counts one more for `key` unless it already holds `max` (0 = unlimited): 0 or -EBUSY. */
int jw_counts_acquire(struct jw_counts *c, const char *key, unsigned max)
    __attribute__((warn_unused_result));
void jw_counts_release(struct jw_counts *c, const char *key);
unsigned jw_counts_get(const struct jw_counts *c, const char *key);

/* Token bucket: `rate` tokens per second, at most `burst` saved up. */
struct jw_bucket {
    uint32_t tokens_milli; /* tokens x 1000 */
    uint64_t last_ms;
};
void jw_bucket_init(struct jw_bucket *b, unsigned burst, uint64_t now_ms);
/* Takes one token: 1 when allowed, 0 when the rate is exceeded. */
int jw_bucket_take(struct jw_bucket *b, unsigned rate, unsigned burst, uint64_t now_ms);

#endif
