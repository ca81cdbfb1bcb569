/*
 * TLS towards Redis (every connection: subscriber, command, sentinel): one SSL_CTX built at
 * start from the redis_tls_* settings, shared by every connection of the upstream thread, and
 * the OpenSSL reason of a failed handshake or read turned into one log line.
 *
 * Policy, whatever the settings: peer verification always on (a CA file/dir, else the system
 * default paths), TLS >= 1.2, SNI + hostname (or IP address) check against the expected name.
 */
#ifndef JOBWIRE_REDISTLS_H
#define JOBWIRE_REDISTLS_H

#include <stddef.h>

#include "jobwire/config.h"

struct ssl_ctx_st;
struct ssl_st;
struct bufferevent;

/* Builds the shared context, or returns NULL with "setting: path: OpenSSL reason" in err. */
struct ssl_ctx_st *jw_tls_ctx_new(const struct jw_config *cfg, char *err, size_t errlen);
void jw_tls_ctx_free(struct ssl_ctx_st *ctx);
/* A new SSL for one connection that expects `name` (host name or IP literal) on the server's
 * certificate; NULL when out of memory or when the name cannot be set (never an SSL that would
 * skip the name check). */
struct ssl_st *jw_tls_ssl_new(struct ssl_ctx_st *ctx, const char *name);
/* The reason a TLS bufferevent failed: queued OpenSSL errors, the certificate verification
 * result, else the socket error. Never empty. */
void jw_tls_describe(struct bufferevent *bev, char *buf, size_t len);

#endif
