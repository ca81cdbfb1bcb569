/* libFuzzer target: token verification (jw_auth_verify) against an HS256 and an RS256 verifier.
 * Both verifiers are built once in LLVMFuzzerInitialize (the RSA key is generated then and its
 * PEM written to a temporary file that is removed at once) and never change afterwards.
 * The HS256 secret and the fixed clock match the seed corpus (tests/fuzz/make_corpus.py), so
 * seeds pass the signature check and the fuzzer explores the claim checks too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../src/gateway/auth.h"
#include "jobwire/config.h"

#define FUZZ_SECRET "jobwire-fuzz-secret-0123456789abcdef"
#define FUZZ_NOW ((int64_t)1700000000)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jw_auth *hs, *rs;

static struct jw_auth *
make_auth(const char *key, const char *value)
{
    struct jw_config c;
    char err[512];
    struct jw_auth *a;

    jw_config_defaults(&c);
    if (jw_config_set(&c, key, value, err, sizeof err) != 0 ||
        jw_config_set(&c, "jwt_audience", "jobwire", err, sizeof err) != 0 ||
        jw_config_finish(&c, err, sizeof err) != 0 ||
        (a = jw_auth_new(&c, err, sizeof err)) == NULL) {
        fprintf(stderr, "fuzz_token: %s\n", err);
        abort();
    }
    jw_config_free(&c);
    return a;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[] = "/tmp/jw-fuzz-rsa-XXXXXX", keys[64];
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

    if (pkey == NULL || f == NULL || PEM_write_PUBKEY(f, pkey) != 1)
        abort();
    fclose(f);
    EVP_PKEY_free(pkey);
    snprintf(keys, sizeof keys, "k1=%s", path);
    rs = make_auth("jwt_public_keys", keys);
    unlink(path);
    hs = make_auth("jwt_secret", FUZZ_SECRET);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = malloc(size ? size : 1); /* exact size: not NUL-terminated */
    struct jw_principal p;

    memcpy(token, data, size);
    if (jw_auth_verify(hs, token, size, FUZZ_NOW, &p) == JW_AUTH_OK &&
        (p.user_id[0] == '\0' || strlen(p.user_id) > JW_ID_MAX))
        abort(); /* an accepted token always names a valid user */
    (void)jw_auth_verify(rs, token, size, FUZZ_NOW, &p);
    free(token);
    return 0;
}
