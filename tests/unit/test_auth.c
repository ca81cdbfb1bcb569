/*
 * Unit tests for auth.c. Key material is generated at start (RSA-2048 and EC P-256 with the
 * OpenSSL 3 EVP API, PEMs in a mkdtemp directory); tokens are made with libjwt or by hand for
 * the attacks. Each libjwt pitfall (ARCHITECTURE.md) has a test that fails without its check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../src/gateway/auth.h"
#include "jobwire/config.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"
#define NOW ((int64_t)1700000000)

struct keypair {
    EVP_PKEY *pkey;
    char *priv; /* PEM */
    char *pub;  /* PEM, also written to <dir>/<name>.pub */
    char path[512];
};

static char dir[256];
static struct keypair rsa1, rsa2, rsa_evil, ec1, ec_evil, rsa_small, ec384;

static char *
bio_string(BIO *b)
{
    BUF_MEM *m;
    BIO_get_mem_ptr(b, &m);
    char *s = malloc(m->length + 1);
    memcpy(s, m->data, m->length);
    s[m->length] = '\0';
    return s;
}

static void
make_keypair(struct keypair *k, EVP_PKEY *pkey, const char *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    FILE *f;

    assert_non_null(pkey);
    k->pkey = pkey;
    assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
    k->priv = bio_string(b);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, pkey), 1);
    k->pub = bio_string(b);
    BIO_free(b);
    snprintf(k->path, sizeof k->path, "%s/%s.pub", dir, name);
    f = fopen(k->path, "w");
    assert_non_null(f);
    fputs(k->pub, f);
    fclose(f);
}

static void
write_file(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    (void)state;
    snprintf(dir, sizeof dir, "%s/jw-auth-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    make_keypair(&rsa1, EVP_RSA_gen(2048), "rsa1");
    make_keypair(&rsa2, EVP_RSA_gen(2048), "rsa2");
    make_keypair(&rsa_evil, EVP_RSA_gen(2048), "rsa_evil");
    make_keypair(&ec1, EVP_EC_gen("P-256"), "ec1");
    make_keypair(&ec_evil, EVP_EC_gen("P-256"), "ec_evil");
    make_keypair(&rsa_small, EVP_RSA_gen(1024), "rsa_small");
    make_keypair(&ec384, EVP_EC_gen("P-384"), "ec384");
    return 0;
}

static void
free_keypair(struct keypair *k)
{
    unlink(k->path);
    EVP_PKEY_free(k->pkey);
    free(k->priv);
    free(k->pub);
}

static int
teardown(void **state)
{
    char cmd[300];
    (void)state;
    free_keypair(&rsa1);
    free_keypair(&rsa2);
    free_keypair(&rsa_evil);
    free_keypair(&ec1);
    free_keypair(&ec_evil);
    free_keypair(&rsa_small);
    free_keypair(&ec384);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* A verifier from "key value" pairs on top of the defaults; NULL-terminated. */
static struct jw_auth *
auth_with(const char *first, ...)
{
    struct jw_config c;
    char err[512];
    va_list ap;
    struct jw_auth *a;

    jw_config_defaults(&c);
    va_start(ap, first);
    for (const char *k = first; k != NULL; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (jw_config_set(&c, k, v, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    va_end(ap);
    if (jw_config_finish(&c, err, sizeof err) != 0)
        fail_msg("%s", err);
    a = jw_auth_new(&c, err, sizeof err);
    if (a == NULL)
        fail_msg("%s", err);
    jw_config_free(&c);
    return a;
}

static struct jw_auth *
rsa_auth(void)
{
    char keys[1200];
    snprintf(keys, sizeof keys, "k1=%s,k2=%s", rsa1.path, rsa2.path);
    return auth_with("jwt_public_keys", keys, NULL);
}

/* libjwt-made token. claims is a JSON object text; kid may be NULL. Caller frees. */
static char *
make(jwt_alg_t alg, const char *key, const char *kid, const char *claims)
{
    jwt_t *j;
    char *t;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    if (kid != NULL)
        assert_int_equal(jwt_add_header(j, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static void
b64url(const unsigned char *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* "b64(header).b64(payload)" into out. */
static void
signing_input(const char *header, const char *payload, char *out)
{
    b64url((const unsigned char *)header, strlen(header), out);
    strcat(out, ".");
    b64url((const unsigned char *)payload, strlen(payload), out + strlen(out));
}

/* A hand-made HS256 token, HMAC keyed with key[0..keylen) (the key-confusion attack). */
static char *
hand_hs256(const char *header, const char *payload, const void *key, size_t keylen)
{
    char *t = malloc(16384);
    unsigned char mac[64];
    size_t maclen = 0;
    signing_input(header, payload, t);
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, (unsigned char *)t,
                              strlen(t), mac, sizeof mac, &maclen));
    strcat(t, ".");
    b64url(mac, maclen, t + strlen(t));
    return t;
}

/* ES256 signed with OpenSSL; raw = 1 gives the JOSE R||S form other libraries produce, raw = 0
 * the DER form OpenSSL returns. */
static char *
openssl_es256(EVP_PKEY *pkey, const char *header, const char *payload, int raw)
{
    char *t = malloc(16384);
    unsigned char der[128], rs[64];
    size_t derlen = sizeof der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    signing_input(header, payload, t);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestSign(md, der, &derlen, (unsigned char *)t, strlen(t)), 1);
    EVP_MD_CTX_free(md);
    strcat(t, ".");
    if (raw) {
        const unsigned char *p = der;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
        const BIGNUM *r, *s;
        assert_non_null(sig);
        ECDSA_SIG_get0(sig, &r, &s);
        assert_int_equal(BN_bn2binpad(r, rs, 32), 32);
        assert_int_equal(BN_bn2binpad(s, rs + 32, 32), 32);
        ECDSA_SIG_free(sig);
        b64url(rs, 64, t + strlen(t));
    } else {
        b64url(der, derlen, t + strlen(t));
    }
    return t;
}

static enum jw_auth_result
verify_at(const struct jw_auth *a, const char *token, int64_t now, struct jw_principal *p)
{
    return jw_auth_verify(a, token, strlen(token), now, p);
}

static enum jw_auth_result
verify(const struct jw_auth *a, const char *token)
{
    struct jw_principal p;
    return verify_at(a, token, NOW, &p);
}

/* HS256 token with the test secret and the given claims. */
static enum jw_auth_result
hs_check(const struct jw_auth *a, const char *claims)
{
    char *t = make(JWT_ALG_HS256, SECRET, NULL, claims);
    enum jw_auth_result r = verify(a, t);
    free(t);
    return r;
}

#define EXP_OK "\"exp\":1700003600"

/* ---- tests --------------------------------------------------------------------------------- */

static void
test_hs256_valid(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    struct jw_principal p;
    char *t = make(JWT_ALG_HS256, SECRET, NULL, "{\"sub\":\"alice\"," EXP_OK "}");
    assert_true(jw_auth_enabled(a));
    assert_int_equal(verify_at(a, t, NOW, &p), JW_AUTH_OK);
    assert_string_equal(p.user_id, "alice");
    assert_int_equal(p.admin, 0);
    assert_int_equal(p.expires_at, 1700003600);
    assert_string_equal(p.jti, "");
    free(t);
    jw_auth_free(a);
}

static void
test_expired(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":1699990000}"), JW_AUTH_EXPIRED);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":0}"), JW_AUTH_EXPIRED);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":-9223372036854775807}"), JW_AUTH_EXPIRED);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":1.5e9}"), JW_AUTH_EXPIRED);
    jw_auth_free(a);
}

static void
test_missing_exp(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"}"), JW_AUTH_NO_EXP);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":\"1700003600\"}"), JW_AUTH_NO_EXP);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":null}"), JW_AUTH_NO_EXP);
    jw_auth_free(a);
}

static void
test_nbf_in_future(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"nbf\":1700000100}"),
                     JW_AUTH_NOT_YET_VALID);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"nbf\":\"soon\"}"), JW_AUTH_BAD_CLAIM);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"nbf\":1699999000}"), JW_AUTH_OK);
    jw_auth_free(a);
}

static void
test_leeway(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL); /* leeway 30 s */
    struct jw_auth *z = auth_with("jwt_secret", SECRET, "jwt_leeway_seconds", "0", NULL);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":1699999990}"), JW_AUTH_OK);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":1699999971}"), JW_AUTH_OK);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\",\"exp\":1699999970}"), JW_AUTH_EXPIRED);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"nbf\":1700000030}"), JW_AUTH_OK);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"nbf\":1700000031}"),
                     JW_AUTH_NOT_YET_VALID);
    assert_int_equal(hs_check(z, "{\"sub\":\"a\",\"exp\":1700000000}"), JW_AUTH_EXPIRED);
    assert_int_equal(hs_check(z, "{\"sub\":\"a\",\"exp\":1700000001}"), JW_AUTH_OK);
    assert_int_equal(hs_check(z, "{\"sub\":\"a\"," EXP_OK ",\"nbf\":1700000001}"),
                     JW_AUTH_NOT_YET_VALID);
    jw_auth_free(a);
    jw_auth_free(z);
}

static void
test_issuer(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, "jwt_issuer", "https://id.example", NULL);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"iss\":\"https://id.example\"}"),
                     JW_AUTH_OK);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"iss\":\"https://evil.example\"}"),
                     JW_AUTH_BAD_ISSUER);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"iss\":\"https://id.example/\"}"),
                     JW_AUTH_BAD_ISSUER);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK "}"), JW_AUTH_BAD_ISSUER);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"iss\":[\"https://id.example\"]}"),
                     JW_AUTH_BAD_ISSUER);
    jw_auth_free(a);
}

static void
test_audience(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, "jwt_audience", "jobwire", NULL);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"aud\":\"jobwire\"}"), JW_AUTH_OK);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"aud\":[\"x\",\"jobwire\"]}"),
                     JW_AUTH_OK);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"aud\":\"billing\"}"),
                     JW_AUTH_BAD_AUDIENCE);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"aud\":[\"billing\",\"x\"]}"),
                     JW_AUTH_BAD_AUDIENCE);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"aud\":[]}"), JW_AUTH_BAD_AUDIENCE);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"aud\":\"jobwire2\"}"),
                     JW_AUTH_BAD_AUDIENCE);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK "}"), JW_AUTH_BAD_AUDIENCE);
    jw_auth_free(a);
}

static void
test_alg_none(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    const char *hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                          "{\"alg\":\"none\",\"typ\":\"JWT\"}"};
    char t[1024];
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        signing_input(hdrs[i], "{\"sub\":\"a\"," EXP_OK "}", t);
        strcat(t, ".");
        assert_int_equal(verify(a, t), JW_AUTH_WRONG_ALG);
        strcat(t, "AAAA");
        assert_int_equal(verify(a, t), JW_AUTH_WRONG_ALG);
    }
    /* libjwt itself accepts the unsigned token even with a key given. */
    signing_input("{\"alg\":\"none\"}", "{\"sub\":\"a\"," EXP_OK "}", t);
    strcat(t, ".");
    jwt_t *j = NULL;
    if (jwt_decode(&j, t, (const unsigned char *)SECRET, (int)strlen(SECRET)) == 0)
        print_message("note: libjwt 1.10.2 accepts alg none with a key\n");
    jwt_free(j);
    jw_auth_free(a);
}

/* The attack: the RSA public key is public, so anyone can HMAC a token with its PEM text. */
static void
test_key_confusion(void **state)
{
    (void)state;
    struct jw_auth *a = rsa_auth();
    char path[600], keys[1200];
    const char *payload = "{\"sub\":\"mallory\",\"roles\":[\"admin\"]," EXP_OK "}";
    char *t1 =
        hand_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, rsa1.pub, strlen(rsa1.pub));
    char *t2 =
        hand_hs256("{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload, rsa1.pub, strlen(rsa1.pub));
    jwt_t *j = NULL;

    /* The pitfall is real: libjwt verifies it when handed the PEM. */
    assert_int_equal(jwt_decode(&j, t1, (const unsigned char *)rsa1.pub, (int)strlen(rsa1.pub)), 0);
    assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
    jwt_free(j);

    assert_int_equal(verify(a, t1), JW_AUTH_WRONG_ALG);
    assert_int_equal(verify(a, t2), JW_AUTH_WRONG_ALG);
    jw_auth_free(a);

    /* One RSA key and no kid: still never the HMAC key. */
    a = auth_with("jwt_public_keys", rsa1.path, NULL);
    assert_int_equal(verify(a, t1), JW_AUTH_WRONG_ALG);
    jw_auth_free(a);

    /* With a secret configured as well, the HS256 token meets the secret and fails there. */
    snprintf(keys, sizeof keys, "k1=%s", rsa1.path);
    a = auth_with("jwt_secret", SECRET, "jwt_public_keys", keys, NULL);
    assert_int_equal(verify(a, t1), JW_AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(a, t2), JW_AUTH_WRONG_ALG);
    jw_auth_free(a);

    /* The PEM exactly as the file holds it, with and without its final newline. */
    write_file("dummy", "x", path, sizeof path);
    unlink(path);
    free(t1);
    t1 = hand_hs256("{\"alg\":\"HS256\"}", payload, rsa1.pub, strlen(rsa1.pub) - 1);
    a = rsa_auth();
    assert_int_equal(verify(a, t1), JW_AUTH_WRONG_ALG);
    jw_auth_free(a);
    free(t1);
    free(t2);
}

static void
test_rs256_valid_and_other_key(void **state)
{
    (void)state;
    struct jw_auth *a = rsa_auth();
    struct jw_auth *one = auth_with("jwt_public_keys", rsa1.path, NULL);
    const char *c = "{\"sub\":\"bob\"," EXP_OK "}";
    char *good = make(JWT_ALG_RS256, rsa1.priv, "k1", c);
    char *evil = make(JWT_ALG_RS256, rsa_evil.priv, "k1", c);
    char *evil_nokid = make(JWT_ALG_RS256, rsa_evil.priv, NULL, c);
    char *good_nokid = make(JWT_ALG_RS256, rsa1.priv, NULL, c);
    assert_int_equal(verify(a, good), JW_AUTH_OK);
    assert_int_equal(verify(a, evil), JW_AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(one, evil_nokid), JW_AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(one, good_nokid), JW_AUTH_OK);
    /* An unnamed key is the only RS256 key: a token's kid does not matter. */
    assert_int_equal(verify(one, good), JW_AUTH_OK);
    free(good);
    free(evil);
    free(evil_nokid);
    free(good_nokid);
    jw_auth_free(a);
    jw_auth_free(one);
}

static void
test_unknown_kid(void **state)
{
    (void)state;
    struct jw_auth *a = rsa_auth();
    const char *c = "{\"sub\":\"bob\"," EXP_OK "}";
    char *t = make(JWT_ALG_RS256, rsa1.priv, "k9", c);
    char *nokid = make(JWT_ALG_RS256, rsa1.priv, NULL, c);
    char *es = make(JWT_ALG_ES256, ec1.priv, "k1", c);
    assert_int_equal(verify(a, t), JW_AUTH_UNKNOWN_KEY);
    /* Two RS256 keys: a token without kid is ambiguous. */
    assert_int_equal(verify(a, nokid), JW_AUTH_UNKNOWN_KEY);
    /* kid k1 is an RSA key: an ES256 header naming it is refused before any verification. */
    assert_int_equal(verify(a, es), JW_AUTH_WRONG_ALG);
    free(t);
    free(nokid);
    free(es);
    jw_auth_free(a);
}

static void
test_rotation(void **state)
{
    (void)state;
    struct jw_auth *a = rsa_auth();
    struct jw_principal p;
    char *t1 = make(JWT_ALG_RS256, rsa1.priv, "k1", "{\"sub\":\"one\"," EXP_OK "}");
    char *t2 = make(JWT_ALG_RS256, rsa2.priv, "k2", "{\"sub\":\"two\"," EXP_OK "}");
    char *swapped = make(JWT_ALG_RS256, rsa1.priv, "k2", "{\"sub\":\"x\"," EXP_OK "}");
    assert_int_equal(verify_at(a, t1, NOW, &p), JW_AUTH_OK);
    assert_string_equal(p.user_id, "one");
    assert_int_equal(verify_at(a, t2, NOW, &p), JW_AUTH_OK);
    assert_string_equal(p.user_id, "two");
    assert_int_equal(verify(a, swapped), JW_AUTH_BAD_SIGNATURE);
    free(t1);
    free(t2);
    free(swapped);
    jw_auth_free(a);
}

static void
test_es256(void **state)
{
    (void)state;
    char keys[1200];
    snprintf(keys, sizeof keys, "k1=%s,e1=%s", rsa1.path, ec1.path);
    struct jw_auth *a = auth_with("jwt_public_keys", keys, NULL);
    const char *c = "{\"sub\":\"erin\"," EXP_OK "}";
    struct jw_principal p;
    char *lib = make(JWT_ALG_ES256, ec1.priv, "e1", c);
    char *lib_nokid = make(JWT_ALG_ES256, ec1.priv, NULL, c);
    char *raw = openssl_es256(ec1.pkey, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", c, 1);
    char *der = openssl_es256(ec1.pkey, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", c, 0);
    char *evil = openssl_es256(ec_evil.pkey, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", c, 1);
    char *hs = hand_hs256("{\"alg\":\"HS256\",\"kid\":\"e1\"}", c, ec1.pub, strlen(ec1.pub));

    /* libjwt 1.10.2 signs ES256 as R||S: 64 bytes, 86 base64url characters. */
    assert_int_equal(strlen(strrchr(lib, '.') + 1), 86);
    assert_int_equal(verify_at(a, lib, NOW, &p), JW_AUTH_OK);
    assert_string_equal(p.user_id, "erin");
    assert_int_equal(verify(a, lib_nokid), JW_AUTH_OK); /* the only ES256 key */
    assert_int_equal(verify(a, raw), JW_AUTH_OK);       /* as other JOSE libraries sign */
    assert_int_equal(verify(a, der), JW_AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(a, evil), JW_AUTH_BAD_SIGNATURE);
    assert_int_equal(verify(a, hs), JW_AUTH_WRONG_ALG);
    free(lib);
    free(lib_nokid);
    free(raw);
    free(der);
    free(evil);
    free(hs);
    jw_auth_free(a);
}

static void
test_tampered(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    struct jw_auth *r = rsa_auth();
    char *t = make(JWT_ALG_HS256, SECRET, NULL, "{\"sub\":\"alice\"," EXP_OK "}");
    char *rt = make(JWT_ALG_RS256, rsa1.priv, "k1", "{\"sub\":\"alice\"," EXP_OK "}");
    char forged[4096], body[512];
    const char *tokens[] = {t, rt};
    struct jw_auth *auths[] = {a, r};

    for (int i = 0; i < 2; i++) {
        const char *tok = tokens[i];
        const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
        b64url((const unsigned char *)"{\"sub\":\"admin\",\"exp\":1700003600}", 32, body);
        snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, body, d2);
        assert_int_equal(verify(auths[i], forged), JW_AUTH_BAD_SIGNATURE);
        /* one flipped signature character */
        strcpy(forged, tok);
        char *s = strrchr(forged, '.') + 5;
        *s = *s == 'A' ? 'B' : 'A';
        assert_int_equal(verify(auths[i], forged), JW_AUTH_BAD_SIGNATURE);
        /* signature cut short */
        strcpy(forged, tok);
        forged[strlen(forged) - 4] = '\0';
        enum jw_auth_result cut = verify(auths[i], forged);
        assert_true(cut == JW_AUTH_BAD_SIGNATURE || cut == JW_AUTH_MALFORMED);
        /* signature removed */
        strcpy(forged, tok);
        strrchr(forged, '.')[1] = '\0';
        assert_int_equal(verify(auths[i], forged), JW_AUTH_BAD_SIGNATURE);
    }
    free(t);
    free(rt);
    jw_auth_free(a);
    jw_auth_free(r);
}

static void
test_subject(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    struct jw_auth *u = auth_with("jwt_secret", SECRET, "jwt_user_claim", "uid", NULL);
    char claims[512], long_id[200];
    assert_int_equal(hs_check(a, "{" EXP_OK "}"), JW_AUTH_NO_SUBJECT);
    assert_int_equal(hs_check(a, "{\"sub\":\"\"," EXP_OK "}"), JW_AUTH_NO_SUBJECT);
    assert_int_equal(hs_check(a, "{\"sub\":42," EXP_OK "}"), JW_AUTH_NO_SUBJECT);
    assert_int_equal(hs_check(a, "{\"sub\":[\"a\"]," EXP_OK "}"), JW_AUTH_NO_SUBJECT);
    memset(long_id, 'x', 129);
    long_id[129] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\"," EXP_OK "}", long_id);
    assert_int_equal(hs_check(a, claims), JW_AUTH_NO_SUBJECT);
    long_id[128] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\"," EXP_OK "}", long_id);
    assert_int_equal(hs_check(a, claims), JW_AUTH_OK);
    assert_int_equal(hs_check(u, "{\"sub\":\"a\"," EXP_OK "}"), JW_AUTH_NO_SUBJECT);
    assert_int_equal(hs_check(u, "{\"uid\":\"a\"," EXP_OK "}"), JW_AUTH_OK);
    jw_auth_free(a);
    jw_auth_free(u);
}

static void
test_subject_control_bytes(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    const char *bad[] = {"\"al\\u0001ice\"", "\"alice\\n\"", "\"a\\u007fb\"", "\"a\\tb\""};
    char claims[256], *t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(claims, sizeof claims, "{\"sub\":%s," EXP_OK "}", bad[i]);
        t = hand_hs256("{\"alg\":\"HS256\"}", claims, SECRET, strlen(SECRET));
        assert_int_equal(verify(a, t), JW_AUTH_NO_SUBJECT);
        free(t);
    }
    /* \u0000 is refused by the JSON parser before the claim is looked at. */
    t = hand_hs256("{\"alg\":\"HS256\"}", "{\"sub\":\"a\\u0000b\"," EXP_OK "}", SECRET,
                   strlen(SECRET));
    assert_int_equal(verify(a, t), JW_AUTH_MALFORMED);
    free(t);
    jw_auth_free(a);
}

static void
test_admin_roles(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    struct jw_auth *g =
        auth_with("jwt_secret", SECRET, "jwt_role_claim", "groups", "jwt_admin_role", "ops", NULL);
    struct jw_auth *none = auth_with("jwt_secret", SECRET, "jwt_role_claim", "", NULL);
    struct {
        struct jw_auth *a;
        const char *claims;
        int admin;
    } cases[] = {
        {a, "{\"sub\":\"a\"," EXP_OK ",\"roles\":[\"user\",\"admin\"]}", 1},
        {a, "{\"sub\":\"a\"," EXP_OK ",\"roles\":\"admin\"}", 1},
        {a, "{\"sub\":\"a\"," EXP_OK ",\"roles\":[\"user\"]}", 0},
        {a, "{\"sub\":\"a\"," EXP_OK ",\"roles\":\"administrator\"}", 0},
        {a, "{\"sub\":\"a\"," EXP_OK ",\"roles\":[[\"admin\"]]}", 0},
        {a, "{\"sub\":\"a\"," EXP_OK ",\"roles\":{\"admin\":true}}", 0},
        {a, "{\"sub\":\"a\"," EXP_OK ",\"role\":\"admin\"}", 0},
        {a, "{\"sub\":\"a\"," EXP_OK "}", 0},
        {g, "{\"sub\":\"a\"," EXP_OK ",\"groups\":[\"ops\"]}", 1},
        {g, "{\"sub\":\"a\"," EXP_OK ",\"roles\":[\"admin\"]}", 0},
        {none, "{\"sub\":\"a\"," EXP_OK ",\"roles\":[\"admin\"]}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw_principal p;
        char *t = make(JWT_ALG_HS256, SECRET, NULL, cases[i].claims);
        assert_int_equal(verify_at(cases[i].a, t, NOW, &p), JW_AUTH_OK);
        if (p.admin != cases[i].admin)
            fail_msg("case %zu: admin %d, expected %d", i, p.admin, cases[i].admin);
        free(t);
    }
    jw_auth_free(a);
    jw_auth_free(g);
    jw_auth_free(none);
}

static void
test_jti(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    struct jw_principal p;
    char *t = make(JWT_ALG_HS256, SECRET, NULL, "{\"sub\":\"a\"," EXP_OK ",\"jti\":\"t-42\"}");
    assert_int_equal(verify_at(a, t, NOW, &p), JW_AUTH_OK);
    assert_string_equal(p.jti, "t-42");
    free(t);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"jti\":42}"), JW_AUTH_BAD_CLAIM);
    assert_int_equal(hs_check(a, "{\"sub\":\"a\"," EXP_OK ",\"jti\":\"\"}"), JW_AUTH_BAD_CLAIM);
    jw_auth_free(a);
}

static void
test_overlong(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    char *claims = malloc(9000), *t;
    struct jw_principal p;
    snprintf(claims, 9000, "{\"sub\":\"a\"," EXP_OK ",\"pad\":\"%07000d\"}", 0);
    t = make(JWT_ALG_HS256, SECRET, NULL, claims);
    assert_true(strlen(t) > JW_AUTH_TOKEN_MAX);
    assert_int_equal(verify(a, t), JW_AUTH_MALFORMED);
    free(t);
    /* just under the limit still verifies */
    snprintf(claims, 9000, "{\"sub\":\"a\"," EXP_OK ",\"pad\":\"%05900d\"}", 0);
    t = make(JWT_ALG_HS256, SECRET, NULL, claims);
    assert_true(strlen(t) <= JW_AUTH_TOKEN_MAX);
    assert_int_equal(verify_at(a, t, NOW, &p), JW_AUTH_OK);
    /* the length is what the caller says, not strlen */
    assert_int_equal(jw_auth_verify(a, t, JW_AUTH_TOKEN_MAX + 1, NOW, &p), JW_AUTH_MALFORMED);
    free(t);
    free(claims);
    jw_auth_free(a);
}

static void
test_garbage(void **state)
{
    (void)state;
    struct jw_auth *a = auth_with("jwt_secret", SECRET, NULL);
    char *good = make(JWT_ALG_HS256, SECRET, NULL, "{\"sub\":\"a\"," EXP_OK "}");
    char t[2048], *h;
    const char *junk[] = {"",
                          "abc",
                          "a.b",
                          "a.b.c.d",
                          "..",
                          "a..c",
                          ".b.c",
                          "!!!.###.$$$",
                          "eyJ.eyJ.AAA",
                          "e30.e30.AAAA",
                          "W10.e30.AAAA",
                          "Bearer x.y.z",
                          "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA"};
    struct jw_principal p;

    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        if (verify(a, junk[i]) != JW_AUTH_MALFORMED)
            fail_msg("'%s': %s", junk[i], jw_auth_result_name(verify(a, junk[i])));
    }
    assert_int_equal(jw_auth_verify(a, NULL, 0, NOW, &p), JW_AUTH_MALFORMED);
    /* an embedded NUL, whitespace, padding */
    memcpy(t, good, strlen(good) + 1);
    assert_int_equal(jw_auth_verify(a, t, strlen(t) + 1, NOW, &p), JW_AUTH_MALFORMED);
    snprintf(t, sizeof t, " %s", good);
    assert_int_equal(verify(a, t), JW_AUTH_MALFORMED);
    snprintf(t, sizeof t, "%s=", good);
    assert_int_equal(verify(a, t), JW_AUTH_MALFORMED);
    /* payload not JSON, not an object */
    h = hand_hs256("{\"alg\":\"HS256\"}", "not json", SECRET, strlen(SECRET));
    assert_int_equal(verify(a, h), JW_AUTH_MALFORMED);
    free(h);
    h = hand_hs256("{\"alg\":\"HS256\"}", "[1]", SECRET, strlen(SECRET));
    assert_int_equal(verify(a, h), JW_AUTH_MALFORMED);
    free(h);
    /* duplicate names, crit, alg of the wrong type, bad kid */
    const char *bad_headers[] = {"{\"alg\":\"HS256\",\"alg\":\"none\"}",
                                 "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                                 "{\"alg\":256}",
                                 "{\"typ\":\"JWT\"}",
                                 "{\"alg\":\"HS256\",\"kid\":7}",
                                 "{\"alg\":\"HS256\",\"kid\":\"\"}"};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        h = hand_hs256(bad_headers[i], "{\"sub\":\"a\"," EXP_OK "}", SECRET, strlen(SECRET));
        if (verify(a, h) != JW_AUTH_MALFORMED)
            fail_msg("header %s: %s", bad_headers[i], jw_auth_result_name(verify(a, h)));
        free(h);
    }
    h = hand_hs256("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1,\"exp\":1700003600}", SECRET,
                   strlen(SECRET));
    assert_int_equal(verify(a, h), JW_AUTH_MALFORMED);
    free(h);
    /* other algorithms are refused whatever their signature */
    const char *algs[] = {"HS384", "HS512", "RS512", "PS256", "ES384", "EdDSA", "hs256"};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"}", algs[i]);
        h = hand_hs256(hdr, "{\"sub\":\"a\"," EXP_OK "}", SECRET, strlen(SECRET));
        assert_int_equal(verify(a, h), JW_AUTH_WRONG_ALG);
        free(h);
    }
    /* a non-canonical last base64url character of the signature ('A' vs 'B' differ in unused
     * bits only for a 32-byte MAC: 43 characters, the last carries 2 unused bits) */
    strcpy(t, good);
    char *last = t + strlen(t) - 1;
    int v = (*last >= 'A' && *last <= 'Z') ? *last - 'A' : -1;
    if (v >= 0 && v + 1 <= 25 && (v & 3) == 0) {
        *last = (char)('A' + v + 1);
        assert_int_equal(verify(a, t), JW_AUTH_MALFORMED);
    }
    free(good);
    jw_auth_free(a);
}

static void
test_disabled_and_bad_keys(void **state)
{
    (void)state;
    struct jw_config c;
    char err[512], v[1200], path[600];
    struct jw_principal p;
    struct jw_auth *a;

    jw_config_defaults(&c);
    a = jw_auth_new(&c, err, sizeof err);
    assert_non_null(a);
    assert_false(jw_auth_enabled(a));
    assert_int_equal(jw_auth_verify(a, "a.b.c", 5, NOW, &p), JW_AUTH_DISABLED);
    jw_auth_free(a);

    write_file("priv.pem", rsa1.priv, path, sizeof path);
    struct {
        const char *keys;
        const char *why;
    } bad[] = {
        {"/nonexistent/key.pem", "No such file"},
        {path, "not a PEM public key"},
        {rsa_small.path, "2048"},
        {ec384.path, "P-256"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(jw_config_set(&c, "jwt_public_keys", bad[i].keys, err, sizeof err), 0);
        a = jw_auth_new(&c, err, sizeof err);
        assert_null(a);
        if (strstr(err, bad[i].why) == NULL)
            fail_msg("'%s' not in '%s'", bad[i].why, err);
    }
    snprintf(v, sizeof v, "k1=%s,k1=%s", rsa1.path, rsa2.path);
    assert_int_equal(jw_config_set(&c, "jwt_public_keys", v, err, sizeof err), 0);
    assert_null(jw_auth_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    unlink(path);
    jw_config_free(&c);
}

static void
test_config_keys(void **state)
{
    (void)state;
    struct jw_config c;
    char err[512], path[600];

    jw_config_defaults(&c);
    assert_string_equal(c.jwt_secret, "");
    assert_int_equal(c.jwt_npublic_keys, 0);
    assert_int_equal(c.jwt_leeway_seconds, 30);
    assert_string_equal(c.jwt_user_claim, "sub");
    assert_string_equal(c.jwt_role_claim, "roles");
    assert_string_equal(c.jwt_admin_role, "admin");
    assert_false(c.auth_allow_query_token);
    assert_int_equal(c.auth_timeout_ms, 10000);
    assert_string_equal(c.revocation_key_template, "token:blacklist:{jti}");
    assert_string_equal(c.job_owner_key_template, "ai:job:{jobId}");
    assert_string_equal(c.job_owner_field, "userId");
    assert_int_equal(c.allowed_norigins, 0);
    assert_int_equal(c.trusted_nproxies, 0);
    assert_int_equal(c.max_connections_per_ip, 100);
    assert_int_equal(c.max_connections_per_user, 20);
    assert_int_equal(c.client_max_messages_per_second, 20);
    assert_int_equal(c.client_message_burst, 40);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_false(c.revocation_fail_open);

    /* a short secret is refused with a clear reason that does not quote it */
    assert_int_equal(jw_config_set(&c, "jwt_secret", "short-secret-xyz", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 32"));
    assert_null(strstr(err, "short-secret-xyz"));

    /* secret file: newline stripped; exclusive with jwt_secret */
    write_file("secret", SECRET "\n", path, sizeof path);
    assert_int_equal(jw_config_set(&c, "jwt_secret_file", path, err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "both"));
    assert_int_equal(jw_config_set(&c, "jwt_secret", "", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_string_equal(c.jwt_secret, SECRET);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0); /* idempotent */
    unlink(path);

    assert_int_equal(jw_config_set(&c, "revocation_fail", "open", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_true(c.revocation_fail_open);
    assert_int_equal(jw_config_set(&c, "revocation_fail", "maybe", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "revocation_fail", "closed", err, sizeof err), 0);

    assert_int_equal(
        jw_config_set(&c, "trusted_proxies", "10.0.0.0/8, ::1, fd00::/8", err, sizeof err), 0);
    assert_int_equal(c.trusted_nproxies, 3);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "trusted_proxies", "10.0.0.0/33", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "trusted_proxies", "", err, sizeof err), 0);
    assert_int_equal(c.trusted_nproxies, 0);
    assert_int_equal(jw_config_set(&c, "allowed_origins", "example.com", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_int_equal(
        jw_config_set(&c, "allowed_origins", "https://a.example,http://b:8080", err, sizeof err),
        0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "revocation_key_template", "revoked", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "jwt_leeway_seconds", "601", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "max_connections_per_ip", "0", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "client_max_messages_per_second", "0", err, sizeof err), -1);
    jw_config_free(&c);
}

static void
test_result_names(void **state)
{
    (void)state;
    for (int i = 0; i < JW_AUTH__RESULT_COUNT; i++) {
        const char *n = jw_auth_result_name((enum jw_auth_result)i);
        assert_non_null(n);
        assert_true(strspn(n, "abcdefghijklmnopqrstuvwxyz_") == strlen(n));
        for (int k = 0; k < i; k++)
            assert_string_not_equal(n, jw_auth_result_name((enum jw_auth_result)k));
    }
    assert_string_equal(jw_auth_result_name(JW_AUTH_EXPIRED), "expired");
    assert_string_equal(jw_auth_result_name(JW_AUTH__RESULT_COUNT), "unknown");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_valid),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_missing_exp),
        cmocka_unit_test(test_nbf_in_future),
        cmocka_unit_test(test_leeway),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_key_confusion),
        cmocka_unit_test(test_rs256_valid_and_other_key),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_es256),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_subject_control_bytes),
        cmocka_unit_test(test_admin_roles),
        cmocka_unit_test(test_jti),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_disabled_and_bad_keys),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_result_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
