/*
 * Token verification: turns a bearer JWT into a principal (user id, admin flag, expiry, jti).
 *
 * libjwt 1.10.2 does the signature arithmetic only; everything it gets wrong or leaves out is
 * done here (see docs/SECURITY.md): the JOSE header is parsed first and the key is chosen by
 * its `alg` and `kid`, the header algorithm must equal the chosen key's algorithm (so an HS256
 * token never meets an RSA or EC public key, and `none` is never accepted), libjwt never sees a
 * NULL or empty key, and exp/nbf/iss/aud are checked here with a bounded clock leeway.
 *
 * A struct jw_auth is immutable after jw_auth_new(): jw_auth_verify() may be called from any
 * thread at once. It holds no per-token state.
 */
#ifndef JOBWIRE_AUTH_H
#define JOBWIRE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/event.h" /* JW_ID_MAX */

struct jw_config;
struct jw_auth;

#define JW_AUTH_TOKEN_MAX 8192 /* longer tokens are malformed before any parsing */

/* Who a verified token speaks for. All fields are public and owned by the caller. */
struct jw_principal {
    char user_id[JW_ID_MAX + 1]; /* the user claim (default `sub`), passed jw_id_valid() */
    int admin;                   /* the role claim contains the admin role */
    int64_t expires_at;          /* `exp`, seconds since the epoch (without the leeway) */
    char jti[JW_ID_MAX + 1];     /* `jti`, "" when absent */
};

enum jw_auth_result {
    JW_AUTH_OK = 0,
    JW_AUTH_DISABLED,      /* no secret and no public key configured */
    JW_AUTH_MALFORMED,     /* not three base64url parts, bad JSON, too long, crit header */
    JW_AUTH_UNKNOWN_KEY,   /* kid names no configured key, or no kid and several candidates */
    JW_AUTH_WRONG_ALG,     /* none, unsupported, or not the algorithm of the selected key */
    JW_AUTH_BAD_SIGNATURE, /* the signature does not verify with the selected key */
    JW_AUTH_NO_EXP,        /* exp missing or not a number */
    JW_AUTH_EXPIRED,       /* now > exp + leeway */
    JW_AUTH_NOT_YET_VALID, /* now + leeway < nbf (or nbf not a number) */
    JW_AUTH_BAD_ISSUER,    /* iss missing or different, when jwt_issuer is set */
    JW_AUTH_BAD_AUDIENCE,  /* aud missing or without jwt_audience, when it is set */
    JW_AUTH_NO_SUBJECT,    /* user claim missing, not a string, or not a valid id */
    JW_AUTH_BAD_CLAIM,     /* jti or role claim of the wrong type or invalid */
    JW_AUTH__RESULT_COUNT
};

/* Loads the secret and the public keys named by cfg (jwt_secret, jwt_public_keys) and copies
 * the claim rules. Returns NULL with a one-line reason in err when a key file is unreadable, not
 * a public key, an RSA key under 2048 bits, an EC key not on P-256, or a kid is repeated. With
 * neither a secret nor keys configured it returns a disabled verifier (jw_auth_enabled() == 0).
 * The reason never contains secret material. */
struct jw_auth *jw_auth_new(const struct jw_config *cfg, char *err, size_t errlen);
int jw_auth_enabled(const struct jw_auth *a);
void jw_auth_free(struct jw_auth *a);

/* Verifies token[0..len) at time `now` (seconds since the epoch). On JW_AUTH_OK fills *out;
 * otherwise *out is zeroed. Never logs; the token is not kept. */
enum jw_auth_result jw_auth_verify(const struct jw_auth *a, const char *token, size_t len,
                                   int64_t now, struct jw_principal *out)
    __attribute__((warn_unused_result));

/* Short snake_case name ("expired", "bad_signature", ...) for logs, metrics and close reasons. */
const char *jw_auth_result_name(enum jw_auth_result r);

#endif
