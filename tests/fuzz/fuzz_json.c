/* libFuzzer target: the validating JSON scanner (jw_json_scan, jw_json_member_id), differential.
 *
 * The whole input is one candidate JSON text. Oracles:
 *   - the reference validator of json_ref.h (RFC 8259 as plain recursive descent) must give
 *     the same verdict, locate the top-level members "jobId" and "userId" at the same spans
 *     with the same types, and jw_json_member_id must give the reference's id for them;
 *   - jansson (JSON_DECODE_ANY | JSON_ALLOW_NUL) checks the reference itself wherever jansson
 *     has no documented limitation (numbers it cannot hold, NUL in keys, lone surrogates,
 *     nesting deeper than its limit, a raw NUL byte taken for the end): a text jansson accepts
 *     must be accepted, one it rejects for another reason must be rejected.
 * Disagreement aborts. No global state. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/json.h"
#include "json_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_json: %s on %zu bytes: %.*s\n", what, size,
            (int)(size > 300 ? 300 : size), (const char *)data);
    abort();
}

/* jansson's refusals that are limitations, not a verdict on the text. */
static bool
jansson_limitation(const char *text)
{
    static const char *const limits[] = {"overflow",
                                         "too big",
                                         "NUL byte in object key",
                                         "invalid Unicode",
                                         "maximum parsing depth",
                                         "NUL character"};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        if (strstr(text, limits[i]))
            return true;
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exact size: ASan sees any read past it */
    memcpy(text, data, size);
    struct jw_json_member m[3] = {{.name = "jobId"}, {.name = "userId"}, {.name = ""}};
    struct ref_member rm[3] = {{.name = "jobId"}, {.name = "userId"}, {.name = ""}};
    bool got = jw_json_scan(text, size, m, 3);
    int want = ref_json(text, size, rm, 3, 20000);
    if (want >= 0) {
        if (got != (want == 1))
            fail(got ? "scanner accepts, reference rejects" : "scanner rejects, reference accepts",
                 data, size);
        for (int k = 0; k < 3; k++) {
            if ((int)m[k].type != (int)rm[k].type)
                fail("a member's type differs", data, size);
            if (m[k].type && (m[k].start != rm[k].start || m[k].len != rm[k].len ||
                              m[k].start + m[k].len > size))
                fail("a member's value is located differently", data, size);
            if (!m[k].type)
                continue;
            for (size_t cap = 1; cap <= 200; cap = cap * 3 + 1) {
                char a[200], b[200];
                size_t an = jw_json_member_id(text, &m[k], a, cap);
                size_t bn = ref_member_id(text, &rm[k], b, cap);
                if (an != bn || memcmp(a, b, an) != 0 || (an && a[an] != '\0'))
                    fail("jw_json_member_id differs from the reference", data, size);
            }
        }
    }
    /* the reference, against jansson (which takes a raw NUL byte for the end of the text) */
    if (memchr(text, '\0', size)) {
        free(text);
        return 0;
    }
    json_error_t err;
    json_t *j = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j && want == 0)
        fail("jansson accepts, the reference rejects", data, size);
    if (!j && want == 1 && !jansson_limitation(err.text))
        fail("jansson rejects (not a limitation), the reference accepts", data, size);
    json_decref(j);
    free(text);
    return 0;
}
