/*
 * TLS towards Redis (redistls.h). The context is built once on the main thread before the
 * upstream thread starts; after that only the upstream thread creates SSL objects from it.
 *
 * Why the reason matters: under TLS 1.3 a server that refuses the client certificate says so
 * only when the client first reads (the handshake has already "succeeded" on our side), and a
 * killed server gives "unexpected eof while reading". Both surface as BEV_EVENT_ERROR on the
 * bufferevent; the link treats them as a disconnect and logs what OpenSSL queued.
 */
#include "tls.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void
openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(buf, len, "unknown OpenSSL error");
        return;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

static int
ctx_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *key, const char *path)
{
    char why[256];
    openssl_reason(why, sizeof why);
    snprintf(err, errlen, "%s: %s: %s", key, path, why);
    SSL_CTX_free(ctx);
    return -1;
}

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

SSL_CTX *
jw_tls_ctx_new(const struct jw_config *cfg, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "redis_tls: cannot create an SSL context");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        ctx_fail(ctx, err, errlen, "redis_tls", "minimum version TLS 1.2");
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *ca_file = is_set(cfg->redis_tls_ca_file) ? cfg->redis_tls_ca_file : NULL;
    const char *ca_dir = is_set(cfg->redis_tls_ca_dir) ? cfg->redis_tls_ca_dir : NULL;
    if (ca_file || ca_dir) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, ca_dir) != 1) {
            ctx_fail(ctx, err, errlen, ca_file ? "redis_tls_ca_file" : "redis_tls_ca_dir",
                     ca_file ? ca_file : ca_dir);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ctx_fail(ctx, err, errlen, "redis_tls", "system default CA paths");
        return NULL;
    }
    if (is_set(cfg->redis_tls_cert_file)) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->redis_tls_cert_file) != 1) {
            ctx_fail(ctx, err, errlen, "redis_tls_cert_file", cfg->redis_tls_cert_file);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->redis_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            ctx_fail(ctx, err, errlen, "redis_tls_key_file", cfg->redis_tls_key_file);
            return NULL;
        }
    }
    return ctx;
}

void
jw_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

SSL *
jw_tls_ssl_new(SSL_CTX *ctx, const char *name)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    unsigned char addr[16];
    int ok;
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
        /* An address: checked against the certificate's IP SANs; SNI carries no addresses. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) { /* without the name check the peer would be verified against any name */
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

void
jw_tls_describe(struct bufferevent *bev, char *buf, size_t len)
{
    size_t used = 0;
    unsigned long e;
    buf[0] = '\0';
    while ((e = bufferevent_get_openssl_error(bev)) != 0 && used + 8 < len) {
        char one[200];
        if (ERR_GET_LIB(e) == 0)
            continue; /* libevent's copy of errno, not an OpenSSL reason */
        ERR_error_string_n(e, one, sizeof one);
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "; " : "", one);
    }
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK && used + 8 < len)
        used += (size_t)snprintf(buf + used, len - used, "%scertificate: %s", used ? "; " : "",
                                 X509_verify_cert_error_string(vr));
    if (used == 0) {
        int err = EVUTIL_SOCKET_ERROR();
        snprintf(buf, len, "%s",
                 err ? evutil_socket_error_to_string(err)
                     : "connection closed without TLS close_notify");
    }
    ERR_clear_error();
}
