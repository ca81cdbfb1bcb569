/* Unit tests for dict.c: set/get/del through growth and shrinkage, and SipHash vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "jobwire/dict.h"

static void
test_set_get_del_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    static int values[N];
    struct jw_dict *d = jw_dict_new();
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "job-%d", i);
        assert_null(jw_dict_set(d, key, &values[i]));
    }
    assert_int_equal(jw_dict_size(d), N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "job-%d", i);
        assert_ptr_equal(jw_dict_get(d, key), &values[i]);
    }
    assert_null(jw_dict_get(d, "job-missing"));
    snprintf(key, sizeof(key), "job-%d", 7);
    assert_ptr_equal(jw_dict_set(d, key, &values[0]), &values[7]);
    assert_int_equal(jw_dict_size(d), N);
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof(key), "job-%d", i);
        assert_non_null(jw_dict_del(d, key));
        assert_null(jw_dict_del(d, key));
    }
    assert_int_equal(jw_dict_size(d), N / 2);
    for (int i = 1; i < N; i += 2) {
        snprintf(key, sizeof(key), "job-%d", i);
        assert_non_null(jw_dict_get(d, key));
        assert_non_null(jw_dict_del(d, key));
    }
    assert_int_equal(jw_dict_size(d), 0);
    jw_dict_free(d);
}

static void
test_key_is_copied(void **state)
{
    (void)state;
    int v = 1;
    char key[8] = "abc";
    struct jw_dict *d = jw_dict_new();
    jw_dict_set(d, key, &v);
    strcpy(key, "xyz");
    assert_ptr_equal(jw_dict_get(d, "abc"), &v);
    assert_null(jw_dict_get(d, "xyz"));
    jw_dict_free(d);
}

/* SipHash-2-4 reference vectors (Aumasson and Bernstein): key 00..0f, input 00..(n-1). */
static void
test_siphash_reference_vectors(void **state)
{
    (void)state;
    uint8_t key[16], in[16];
    for (int i = 0; i < 16; i++)
        key[i] = in[i] = (uint8_t)i;
    assert_int_equal(jw_siphash_rounds(in, 0, key, 2, 4), 0x726fdb47dd0e0e31ULL);
    assert_int_equal(jw_siphash_rounds(in, 15, key, 2, 4), 0xa129ca6149be45e5ULL);
    /* The table's hash is the 1-3 variant of the same core, and depends on the key. */
    assert_int_equal(jw_siphash(in, 15, key), jw_siphash_rounds(in, 15, key, 1, 3));
    assert_int_not_equal(jw_siphash(in, 15, key), jw_siphash_rounds(in, 15, key, 2, 4));
    uint8_t key2[16] = {1};
    assert_int_not_equal(jw_siphash("job-1", 5, key), jw_siphash("job-1", 5, key2));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del_many),
        cmocka_unit_test(test_key_is_copied),
        cmocka_unit_test(test_siphash_reference_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
