/* Unit tests for access.c: CIDR ranges, X-Forwarded-For from trusted proxies only, Origin
 * allowlist, connection counts and the token bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "../../src/gateway/access.h"

static void
test_cidr(void **state)
{
    (void)state;
    struct jw_cidr list[3];
    assert_int_equal(jw_cidr_parse("10.0.0.0/8", &list[0]), 0);
    assert_int_equal(jw_cidr_parse("192.168.1.7", &list[1]), 0);
    assert_int_equal(jw_cidr_parse("fd00::/8", &list[2]), 0);
    assert_true(jw_cidr_list_contains(list, 3, "10.200.3.4"));
    assert_false(jw_cidr_list_contains(list, 3, "11.0.0.1"));
    assert_true(jw_cidr_list_contains(list, 3, "192.168.1.7"));
    assert_false(jw_cidr_list_contains(list, 3, "192.168.1.8"));
    assert_true(jw_cidr_list_contains(list, 3, "fd12::1"));
    assert_false(jw_cidr_list_contains(list, 3, "fe80::1"));
    assert_true(jw_cidr_list_contains(list, 3, "::ffff:10.1.2.3"));
    assert_false(jw_cidr_list_contains(list, 3, "not an ip"));
    struct jw_cidr odd;
    assert_int_equal(jw_cidr_parse("172.16.0.0/12", &odd), 0);
    assert_true(jw_cidr_list_contains(&odd, 1, "172.31.255.255"));
    assert_false(jw_cidr_list_contains(&odd, 1, "172.32.0.0"));
    struct jw_cidr bad;
    assert_int_equal(jw_cidr_parse("10.0.0.0/33", &bad), -EINVAL);
    assert_int_equal(jw_cidr_parse("10.0.0.0/", &bad), -EINVAL);
    assert_int_equal(jw_cidr_parse("10.0.0/8", &bad), -EINVAL);
    assert_int_equal(jw_cidr_parse("", &bad), -EINVAL);
    assert_int_equal(jw_cidr_parse("::/129", &bad), -EINVAL);
}

static void
test_forwarded_for(void **state)
{
    (void)state;
    struct jw_cidr proxies[1];
    char out[64];
    assert_int_equal(jw_cidr_parse("10.0.0.0/8", &proxies[0]), 0);
    /* Untrusted peer: the header is ignored, whatever it says. */
    jw_client_address("203.0.113.9", "1.2.3.4", proxies, 1, out, sizeof(out));
    assert_string_equal(out, "203.0.113.9");
    /* Trusted peer: right-most untrusted hop. A client-supplied left part cannot win. */
    jw_client_address("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.1.1.1", proxies, 1, out, sizeof(out));
    assert_string_equal(out, "198.51.100.7");
    /* No proxies configured: the peer. */
    jw_client_address("10.0.0.5", "198.51.100.7", proxies, 0, out, sizeof(out));
    assert_string_equal(out, "10.0.0.5");
    /* No header. */
    jw_client_address("10.0.0.5", NULL, proxies, 1, out, sizeof(out));
    assert_string_equal(out, "10.0.0.5");
    /* Garbage stops the walk at the last good hop. */
    jw_client_address("10.0.0.5", "198.51.100.7, bogus", proxies, 1, out, sizeof(out));
    assert_string_equal(out, "10.0.0.5");
    /* All hops trusted: the left-most. */
    jw_client_address("10.0.0.5", "10.9.9.9,10.8.8.8", proxies, 1, out, sizeof(out));
    assert_string_equal(out, "10.9.9.9");
    jw_client_address("10.0.0.5", "2001:db8::1", proxies, 1, out, sizeof(out));
    assert_string_equal(out, "2001:db8::1");
}

static void
test_origin(void **state)
{
    (void)state;
    char *allowed[] = {"https://app.example.com", "http://127.0.0.1:8080"};
    assert_true(jw_origin_allowed("https://app.example.com", allowed, 2));
    assert_true(jw_origin_allowed("HTTPS://APP.EXAMPLE.COM", allowed, 2));
    assert_false(jw_origin_allowed("https://evil.example.com", allowed, 2));
    assert_false(jw_origin_allowed("https://app.example.com.evil.io", allowed, 2));
    assert_true(jw_origin_allowed(NULL, allowed, 2));
    assert_true(jw_origin_allowed("https://anything", allowed, 0));
}

static void
test_counts(void **state)
{
    (void)state;
    struct jw_counts *c = jw_counts_new();
    assert_int_equal(jw_counts_acquire(c, "1.2.3.4", 2), 0);
    assert_int_equal(jw_counts_acquire(c, "1.2.3.4", 2), 0);
    assert_int_equal(jw_counts_acquire(c, "1.2.3.4", 2), -EBUSY);
    assert_int_equal(jw_counts_acquire(c, "5.6.7.8", 2), 0);
    assert_int_equal(jw_counts_get(c, "1.2.3.4"), 2);
    jw_counts_release(c, "1.2.3.4");
    assert_int_equal(jw_counts_acquire(c, "1.2.3.4", 2), 0);
    jw_counts_release(c, "1.2.3.4");
    jw_counts_release(c, "1.2.3.4");
    assert_int_equal(jw_counts_get(c, "1.2.3.4"), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(jw_counts_acquire(c, "u", 0), 0);
    assert_int_equal(jw_counts_get(c, "u"), 1000);
    jw_counts_free(c);
}

static void
test_bucket(void **state)
{
    (void)state;
    struct jw_bucket b;
    jw_bucket_init(&b, 3, 1000);
    assert_true(jw_bucket_take(&b, 10, 3, 1000));
    assert_true(jw_bucket_take(&b, 10, 3, 1000));
    assert_true(jw_bucket_take(&b, 10, 3, 1000));
    assert_false(jw_bucket_take(&b, 10, 3, 1000));
    /* 10 per second: one token every 100 ms. */
    assert_false(jw_bucket_take(&b, 10, 3, 1050));
    assert_true(jw_bucket_take(&b, 10, 3, 1150));
    assert_false(jw_bucket_take(&b, 10, 3, 1150));
    /* A long pause refills only up to the burst. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += jw_bucket_take(&b, 10, 3, 100000);
    assert_int_equal(allowed, 3);
    /* A clock that goes backwards grants nothing. */
    assert_false(jw_bucket_take(&b, 10, 3, 500));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr),   cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_origin), cmocka_unit_test(test_counts),
        cmocka_unit_test(test_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
