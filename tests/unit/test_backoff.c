/*
 * Unit tests for backoff.c: exponential ceilings capped at max, full jitter in [0, ceiling],
 * a jitter that really varies, reset, no overflow for huge attempt counts, determinism by seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/redis/backoff.h"

static void
test_ceiling_grows_and_caps(void **state)
{
    struct jw_backoff b;
    jw_backoff_init(&b, 100, 30000, 2.0, 1);
    const uint32_t expect[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        assert_int_equal(b.attempt, i);
        assert_int_equal(jw_backoff_ceiling(&b), expect[i]);
        (void)jw_backoff_next(&b);
    }

    jw_backoff_init(&b, 200, 1000, 3.0, 1);
    assert_int_equal(jw_backoff_ceiling(&b), 200);
    (void)jw_backoff_next(&b);
    assert_int_equal(jw_backoff_ceiling(&b), 600);
    (void)jw_backoff_next(&b);
    assert_int_equal(jw_backoff_ceiling(&b), 1000);
}

static void
test_multiplier_one_is_constant(void **state)
{
    struct jw_backoff b;
    jw_backoff_init(&b, 250, 5000, 1.0, 7);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(jw_backoff_ceiling(&b), 250);
        assert_true(jw_backoff_next(&b) <= 250);
    }
}

static void
test_delays_within_ceiling(void **state)
{
    struct jw_backoff b;
    jw_backoff_init(&b, 50, 10000, 1.7, 42);
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 30; i++) {
            uint32_t ceiling = jw_backoff_ceiling(&b);
            uint32_t d = jw_backoff_next(&b);
            assert_true(d <= ceiling);
            assert_true(ceiling <= 10000);
        }
        jw_backoff_reset(&b);
    }
}

static void
test_jitter_varies(void **state)
{
    /* Ceiling pinned at 1000 (initial == max): 10000 draws should spread over the range, with
     * a mean near 500. The bounds are loose (the standard error of the mean is ~3). */
    struct jw_backoff b;
    jw_backoff_init(&b, 1000, 1000, 2.0, 12345);
    enum { N = 10000 };
    static unsigned char seen[1001];
    double sum = 0;
    uint32_t lo = UINT32_MAX, hi = 0;
    size_t distinct = 0;
    for (int i = 0; i < N; i++) {
        uint32_t d = jw_backoff_next(&b);
        assert_true(d <= 1000);
        if (!seen[d]++)
            distinct++;
        sum += d;
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    double mean = sum / N;
    assert_true(mean > 450 && mean < 550);
    assert_true(distinct > 900);
    assert_true(lo < 50);
    assert_true(hi > 950);
}

static void
test_reset(void **state)
{
    struct jw_backoff b;
    jw_backoff_init(&b, 100, 60000, 2.0, 3);
    for (int i = 0; i < 8; i++)
        (void)jw_backoff_next(&b);
    assert_int_equal(b.attempt, 8);
    assert_int_equal(jw_backoff_ceiling(&b), 25600);
    jw_backoff_reset(&b);
    assert_int_equal(b.attempt, 0);
    assert_int_equal(jw_backoff_ceiling(&b), 100);
    assert_true(jw_backoff_next(&b) <= 100);
}

static void
test_no_overflow_at_large_attempts(void **state)
{
    struct jw_backoff b;
    jw_backoff_init(&b, 200, 30000, 10.0, 9);
    for (int i = 0; i < 1000; i++)
        (void)jw_backoff_next(&b);
    assert_int_equal(b.attempt, 1000);
    assert_int_equal(jw_backoff_ceiling(&b), 30000);
    assert_true(jw_backoff_next(&b) <= 30000);

    /* The counter itself saturates instead of wrapping back to small delays. */
    b.attempt = UINT32_MAX - 1;
    (void)jw_backoff_next(&b);
    (void)jw_backoff_next(&b);
    assert_int_equal(b.attempt, UINT32_MAX);
    assert_int_equal(jw_backoff_ceiling(&b), 30000);

    /* Largest configurable max (reconnect_max_ms 3600000) still fits. */
    jw_backoff_init(&b, 1, 3600000, 10.0, 9);
    b.attempt = 1000;
    assert_int_equal(jw_backoff_ceiling(&b), 3600000);
    assert_true(jw_backoff_next(&b) <= 3600000);
}

static void
test_deterministic_for_seed(void **state)
{
    struct jw_backoff a, b, c;
    jw_backoff_init(&a, 100, 30000, 2.0, 0xfeedface);
    jw_backoff_init(&b, 100, 30000, 2.0, 0xfeedface);
    jw_backoff_init(&c, 100, 30000, 2.0, 0xfeedfacf);
    int differ = 0;
    for (int i = 0; i < 40; i++) {
        uint32_t da = jw_backoff_next(&a);
        assert_int_equal(da, jw_backoff_next(&b));
        if (da != jw_backoff_next(&c))
            differ++;
    }
    assert_true(differ > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_grows_and_caps),
        cmocka_unit_test(test_multiplier_one_is_constant),
        cmocka_unit_test(test_delays_within_ceiling),
        cmocka_unit_test(test_jitter_varies),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_no_overflow_at_large_attempts),
        cmocka_unit_test(test_deterministic_for_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
