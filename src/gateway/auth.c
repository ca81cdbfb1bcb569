/*
 * Token verification (JWT, RFC 7519 with JWS compact serialisation, RFC 7515/7518).
 *
 * libjwt 1.10.2 is trusted with the signature arithmetic only, because it has three pitfalls
 * (ARCHITECTURE.md): it does not check exp/nbf, it verifies an HS256 token with whatever bytes it
 * is given as the key (an RSA public key PEM included: the key-confusion attack), and with a NULL
 * key it skips the signature. So the order here is:
 *
 *   1. size and shape: at most JW_AUTH_TOKEN_MAX bytes, three canonical base64url parts;
 *   2. the JOSE header, parsed here: alg must be HS256, RS256 or ES256 (never `none`), no `crit`;
 *   3. the key, chosen by alg and kid from the configured keys; its algorithm must equal the
 *      header's (the pin), so an HS256 header can only ever meet the HS256 secret;
 *   4. jwt_decode() with that key (never NULL or empty), then jwt_get_alg() must still equal the
 *      key's algorithm;
 *   5. the claims, from the payload bytes that were just verified: exp (required), nbf, iss, aud,
 *      the user claim, the role claim, jti.
 *
 * Keys are loaded once by jw_auth_new(); public keys are parsed with OpenSSL, checked (RSA >= 2048
 * bits, EC on P-256 only) and handed to libjwt re-encoded as SubjectPublicKeyInfo PEM.
 */
#include "auth.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jobwire/alloc.h"
#include "jobwire/config.h"

#define KID_MAX 128
#define MAX_KEYS (JW_CONFIG_MAX_PATTERNS + 1) /* the public keys and the secret */
#define KEY_FILE_MAX 65536

struct key {
    char kid[KID_MAX + 1];   /* "" = unnamed */
    jwt_alg_t alg;           /* JWT_ALG_HS256, JWT_ALG_RS256 or JWT_ALG_ES256 */
    unsigned char *material; /* the secret, or a NUL-terminated public key PEM; never empty */
    size_t len;
    size_t sig_len; /* the only signature length this key can produce */
};

struct jw_auth {
    struct key keys[MAX_KEYS];
    size_t nkeys;
    char *issuer;     /* NULL = not checked */
    char *audience;   /* NULL = not checked */
    char *user_claim; /* never NULL */
    char *role_claim; /* NULL = no admin by token */
    char *admin_role;
    int64_t leeway;
};

static const char *const result_names[JW_AUTH__RESULT_COUNT] = {
    [JW_AUTH_OK] = "ok",
    [JW_AUTH_DISABLED] = "disabled",
    [JW_AUTH_MALFORMED] = "malformed",
    [JW_AUTH_UNKNOWN_KEY] = "unknown_key",
    [JW_AUTH_WRONG_ALG] = "wrong_alg",
    [JW_AUTH_BAD_SIGNATURE] = "bad_signature",
    [JW_AUTH_NO_EXP] = "no_exp",
    [JW_AUTH_EXPIRED] = "expired",
    [JW_AUTH_NOT_YET_VALID] = "not_yet_valid",
    [JW_AUTH_BAD_ISSUER] = "bad_issuer",
    [JW_AUTH_BAD_AUDIENCE] = "bad_audience",
    [JW_AUTH_NO_SUBJECT] = "no_subject",
    [JW_AUTH_BAD_CLAIM] = "bad_claim",
};

const char *
jw_auth_result_name(enum jw_auth_result r)
{
    if ((unsigned)r >= JW_AUTH__RESULT_COUNT)
        return "unknown";
    return result_names[r];
}

__attribute__((format(printf, 4, 5))) static struct jw_auth *
fail(struct jw_auth *a, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    jw_auth_free(a);
    return NULL;
}

static char *
dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? jw_strdup(s) : NULL;
}

/* Reads a whole (small) file; NULL with errno set on failure or when larger than KEY_FILE_MAX. */
static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = jw_malloc(KEY_FILE_MAX + 1);
    n = fread(buf, 1, KEY_FILE_MAX + 1, f);
    fclose(f);
    if (n > KEY_FILE_MAX) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Parses a PEM public key file into k (alg, material, sig_len). Returns a static reason or NULL. */
static const char *
load_public_key(const char *path, struct key *k)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    const char *why = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *in, *out = NULL;
    BUF_MEM *mem;

    if (text == NULL)
        return strerror(errno);
    in = BIO_new_mem_buf(text, (int)len);
    if (in != NULL)
        pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    BIO_free(in);
    free(text);
    if (pkey == NULL)
        return "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)";
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048)
            why = "RSA key shorter than 2048 bits";
        k->alg = JWT_ALG_RS256;
        k->sig_len = (size_t)EVP_PKEY_get_size(pkey);
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                           &glen) != 1 ||
            strcmp(group, "prime256v1") != 0)
            why = "EC key not on the P-256 curve (ES256 only)";
        k->alg = JWT_ALG_ES256;
        k->sig_len = 64; /* JOSE: R || S, 32 bytes each */
    } else {
        why = "unsupported key type (RSA or EC P-256 expected)";
    }
    if (why == NULL) {
        out = BIO_new(BIO_s_mem());
        if (out == NULL || PEM_write_bio_PUBKEY(out, pkey) != 1) {
            why = "cannot re-encode the public key";
        } else {
            BIO_get_mem_ptr(out, &mem);
            k->material = jw_malloc(mem->length + 1);
            memcpy(k->material, mem->data, mem->length);
            k->material[mem->length] = '\0';
            k->len = mem->length;
        }
    }
    BIO_free(out);
    EVP_PKEY_free(pkey);
    return why;
}

static int
kid_valid(const char *s, size_t len)
{
    if (len == 0 || len > KID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] == 0x7f)
            return 0;
    return 1;
}

struct jw_auth *
jw_auth_new(const struct jw_config *cfg, char *err, size_t errlen)
{
    struct jw_auth *a = jw_calloc(1, sizeof *a);

    a->issuer = dup_or_null(cfg->jwt_issuer);
    a->audience = dup_or_null(cfg->jwt_audience);
    a->user_claim =
        jw_strdup(cfg->jwt_user_claim && cfg->jwt_user_claim[0] ? cfg->jwt_user_claim : "sub");
    a->role_claim = dup_or_null(cfg->jwt_role_claim);
    a->admin_role = jw_strdup(cfg->jwt_admin_role ? cfg->jwt_admin_role : "");
    a->leeway = cfg->jwt_leeway_seconds;
    if (a->role_claim != NULL && a->admin_role[0] == '\0')
        return fail(a, err, errlen, "jwt_admin_role: must not be empty");

    if (cfg->jwt_secret != NULL && cfg->jwt_secret[0] != '\0') {
        struct key *k = &a->keys[a->nkeys++];
        size_t n = strlen(cfg->jwt_secret);
        if (n < 32)
            return fail(a, err, errlen, "jwt_secret: shorter than 32 bytes");
        k->alg = JWT_ALG_HS256;
        k->material = (unsigned char *)jw_strndup(cfg->jwt_secret, n);
        k->len = n;
        k->sig_len = 32;
    }
    for (size_t i = 0; i < cfg->jwt_npublic_keys; i++) {
        const char *item = cfg->jwt_public_keys[i], *eq = strchr(item, '=');
        const char *path = item, *why;
        struct key *k = &a->keys[a->nkeys];
        /* "kid=path": a '=' before any '/' separates a kid; "/etc/keys/a=b.pem" is a path. */
        if (eq != NULL && memchr(item, '/', (size_t)(eq - item)) == NULL) {
            if (!kid_valid(item, (size_t)(eq - item)))
                return fail(a, err, errlen,
                            "jwt_public_keys: bad kid in '%.200s' (1-%d printable bytes)", item,
                            KID_MAX);
            memcpy(k->kid, item, (size_t)(eq - item));
            path = eq + 1;
        }
        for (size_t j = 0; j < a->nkeys; j++)
            if (k->kid[0] != '\0' && strcmp(a->keys[j].kid, k->kid) == 0)
                return fail(a, err, errlen, "jwt_public_keys: kid '%s' is used twice", k->kid);
        if (*path == '\0')
            return fail(a, err, errlen, "jwt_public_keys: empty path in '%.200s'", item);
        why = load_public_key(path, k);
        if (why != NULL) {
            free(k->material);
            k->material = NULL;
            return fail(a, err, errlen, "jwt_public_keys: %.200s: %s", path, why);
        }
        a->nkeys++;
    }
    return a;
}

int
jw_auth_enabled(const struct jw_auth *a)
{
    return a != NULL && a->nkeys > 0;
}

void
jw_auth_free(struct jw_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nkeys; i++) {
        if (a->keys[i].alg == JWT_ALG_HS256)
            OPENSSL_cleanse(a->keys[i].material, a->keys[i].len);
        free(a->keys[i].material);
    }
    free(a->issuer);
    free(a->audience);
    free(a->user_claim);
    free(a->role_claim);
    free(a->admin_role);
    free(a);
}

/* ---- verification ---------------------------------------------------------------------------- */

static int
b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict, unpadded base64url (RFC 7515 section 2): no '=', no whitespace, no stray bits.
 * out must hold len * 3 / 4 bytes. Returns the decoded length, or -1. */
static long
b64url_decode(const char *s, size_t len, unsigned char *out)
{
    unsigned acc = 0, bits = 0;
    size_t n = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical: the unused low bits of the last character must be 0 */
        return -1;
    return (long)n;
}

/* Decodes one part and parses it as a JSON object (duplicate names are refused: two "alg" or two
 * "exp" must not mean different things to different readers). */
static json_t *
decode_object(const char *s, size_t len, unsigned char *scratch)
{
    long n = b64url_decode(s, len, scratch);
    json_t *j;

    if (n <= 0)
        return NULL;
    j = json_loadb((const char *)scratch, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static jwt_alg_t
supported_alg(const char *name)
{
    if (strcmp(name, "HS256") == 0)
        return JWT_ALG_HS256;
    if (strcmp(name, "RS256") == 0)
        return JWT_ALG_RS256;
    if (strcmp(name, "ES256") == 0)
        return JWT_ALG_ES256;
    return JWT_ALG_INVAL; /* "none", HS384, PS256, ... */
}

/* The key for (alg, kid). A kid names a key; a named key of another algorithm is the confusion
 * attack (wrong_alg). An unknown kid falls back to the one unnamed key of the algorithm, if it is
 * the only key of that algorithm. Without a kid, exactly one key of the algorithm must exist. */
static enum jw_auth_result
select_key(const struct jw_auth *a, jwt_alg_t alg, const char *kid, const struct key **out)
{
    const struct key *only = NULL;
    size_t of_alg = 0;

    if (kid != NULL) {
        for (size_t i = 0; i < a->nkeys; i++) {
            if (a->keys[i].kid[0] != '\0' && strcmp(a->keys[i].kid, kid) == 0) {
                if (a->keys[i].alg != alg)
                    return JW_AUTH_WRONG_ALG;
                *out = &a->keys[i];
                return JW_AUTH_OK;
            }
        }
    }
    for (size_t i = 0; i < a->nkeys; i++) {
        if (a->keys[i].alg == alg) {
            of_alg++;
            only = &a->keys[i];
        }
    }
    if (of_alg == 0)
        return kid != NULL ? JW_AUTH_UNKNOWN_KEY : JW_AUTH_WRONG_ALG;
    if (of_alg > 1 || (kid != NULL && only->kid[0] != '\0'))
        return JW_AUTH_UNKNOWN_KEY;
    *out = only;
    return JW_AUTH_OK;
}

/* A NumericDate as whole seconds, saturated to the int64 range. 0 = not a number. */
static int
numeric_date(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        *out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
        return 1;
    }
    return 0;
}

static int
string_is(const json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           strcmp(json_string_value(v), want) == 0;
}

/* A string equal to `want`, or an array holding such a string. */
static int
contains(const json_t *v, const char *want)
{
    size_t i;
    json_t *e;

    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (string_is(e, want))
                return 1;
        }
        return 0;
    }
    return string_is(v, want);
}

static enum jw_auth_result
check_claims(const struct jw_auth *a, const json_t *claims, int64_t now, struct jw_principal *out)
{
    const json_t *v;
    int64_t exp, nbf;

    if (!numeric_date(json_object_get(claims, "exp"), &exp))
        return JW_AUTH_NO_EXP;
    if (now - a->leeway >= exp)
        return JW_AUTH_EXPIRED;
    v = json_object_get(claims, "nbf");
    if (v != NULL) {
        if (!numeric_date(v, &nbf))
            return JW_AUTH_BAD_CLAIM;
        if (nbf > now + a->leeway)
            return JW_AUTH_NOT_YET_VALID;
    }
    if (a->issuer != NULL && !string_is(json_object_get(claims, "iss"), a->issuer))
        return JW_AUTH_BAD_ISSUER;
    if (a->audience != NULL && !contains(json_object_get(claims, "aud"), a->audience))
        return JW_AUTH_BAD_AUDIENCE;

    v = json_object_get(claims, a->user_claim);
    if (!json_is_string(v) || json_string_length(v) > JW_ID_MAX ||
        !jw_id_valid(json_string_value(v), json_string_length(v)))
        return JW_AUTH_NO_SUBJECT;
    memcpy(out->user_id, json_string_value(v), json_string_length(v) + 1);

    v = json_object_get(claims, "jti");
    if (v != NULL) {
        /* The revocation check keys on jti: one that cannot be checked is refused. */
        if (!json_is_string(v) || json_string_length(v) > JW_ID_MAX ||
            !jw_id_valid(json_string_value(v), json_string_length(v)))
            return JW_AUTH_BAD_CLAIM;
        memcpy(out->jti, json_string_value(v), json_string_length(v) + 1);
    }
    /* A role claim of another shape grants nothing (fails closed on privilege). */
    out->admin =
        a->role_claim != NULL && contains(json_object_get(claims, a->role_claim), a->admin_role);
    out->expires_at = exp;
    return JW_AUTH_OK;
}

enum jw_auth_result
jw_auth_verify(const struct jw_auth *a, const char *token, size_t len, int64_t now,
               struct jw_principal *out)
{
    /* Decoded parts and the NUL-terminated copy libjwt needs; bounded by JW_AUTH_TOKEN_MAX. */
    unsigned char scratch[JW_AUTH_TOKEN_MAX];
    char copy[JW_AUTH_TOKEN_MAX + 1];
    const char *dot1 = NULL, *dot2 = NULL, *name;
    const struct key *key = NULL;
    json_t *header = NULL, *claims = NULL, *v;
    const char *kid = NULL;
    jwt_t *jwt = NULL;
    jwt_alg_t alg;
    enum jw_auth_result r;
    long siglen;

    memset(out, 0, sizeof *out);
    if (!jw_auth_enabled(a))
        return JW_AUTH_DISABLED;
    if (token == NULL || len == 0 || len > JW_AUTH_TOKEN_MAX)
        return JW_AUTH_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        if (token[i] != '.')
            continue;
        if (dot2 != NULL)
            return JW_AUTH_MALFORMED; /* JWE (five parts) and junk */
        *(dot1 == NULL ? &dot1 : &dot2) = token + i;
    }
    if (dot2 == NULL || dot1 == token || dot2 == dot1 + 1)
        return JW_AUTH_MALFORMED;

    header = decode_object(token, (size_t)(dot1 - token), scratch);
    if (header == NULL)
        return JW_AUTH_MALFORMED;
    r = JW_AUTH_MALFORMED;
    v = json_object_get(header, "alg");
    if (!json_is_string(v) || json_object_get(header, "crit") != NULL)
        goto out; /* no extension is understood, so none may be critical (RFC 7515 4.1.11) */
    name = json_string_value(v);
    v = json_object_get(header, "kid");
    if (v != NULL) {
        if (!json_is_string(v) || !kid_valid(json_string_value(v), json_string_length(v)))
            goto out;
        kid = json_string_value(v);
    }
    r = JW_AUTH_WRONG_ALG;
    alg = supported_alg(name);
    if (alg == JWT_ALG_INVAL)
        goto out;
    r = select_key(a, alg, kid, &key);
    if (r != JW_AUTH_OK)
        goto out;

    r = JW_AUTH_MALFORMED;
    claims = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), scratch);
    if (claims == NULL)
        goto out;
    siglen = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), scratch);
    if (siglen < 0)
        goto out;
    /* An ES256 signature is R || S (64 bytes), not DER; an RSA one is as long as the modulus. */
    r = JW_AUTH_BAD_SIGNATURE;
    if ((size_t)siglen != key->sig_len)
        goto out;

    /* The pinned key, never NULL nor empty: libjwt would skip the signature. */
    memcpy(copy, token, len);
    copy[len] = '\0';
    if (key->material == NULL || key->len == 0 || key->len > INT_MAX ||
        jwt_decode(&jwt, copy, key->material, (int)key->len) != 0 || jwt == NULL)
        goto out;
    r = JW_AUTH_WRONG_ALG;
    if (jwt_get_alg(jwt) != key->alg)
        goto out;
    r = check_claims(a, claims, now, out);
out:
    jwt_free(jwt);
    json_decref(header);
    json_decref(claims);
    if (r != JW_AUTH_OK)
        memset(out, 0, sizeof *out);
    return r;
}
