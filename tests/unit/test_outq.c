/* Unit tests for outq.c, frame.c and buf.c: byte bounds, FIFO order, refcounts and stamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jobwire/buf.h"
#include "../../src/gateway/outq.h"

static unsigned conflations;

/* A push bounded in bytes only. */
static int
push(struct jw_outq *q, struct jw_frame *f, size_t max_bytes)
{
    return jw_outq_push(q, f, max_bytes, UINT32_MAX, &conflations);
}

static struct jw_frame *
keyed(const char *text, uint64_t key)
{
    struct jw_frame *f = jw_frame_new(text, strlen(text), 0);
    f->conflate_key = key;
    return f;
}

static const char *
pop_text(struct jw_outq *q)
{
    static char out[32];
    struct jw_frame *f = jw_outq_peek(q);
    assert_non_null(f);
    snprintf(out, sizeof(out), "%.*s", (int)f->len, (const char *)jw_frame_text(f));
    jw_outq_pop(q);
    return out;
}

static void
test_conflation_keeps_order_and_never_drops_unkeyed(void **state)
{
    (void)state;
    struct jw_outq q;
    jw_outq_init(&q);
    struct jw_frame *p1 = keyed("p1", 7), *s1 = keyed("s1", 0), *p2 = keyed("p2", 7);
    struct jw_frame *o1 = keyed("o1", 9), *p3 = keyed("p3", 7), *c1 = keyed("c1", 0);
    conflations = 0;
    assert_int_equal(push(&q, p1, 1 << 20), 0);
    assert_int_equal(push(&q, s1, 1 << 20), 0);
    assert_int_equal(push(&q, o1, 1 << 20), 0);
    assert_int_equal(push(&q, p2, 1 << 20), 0); /* replaces p1 */
    assert_int_equal(push(&q, c1, 1 << 20), 0);
    assert_int_equal(push(&q, p3, 1 << 20), 0); /* replaces p2 */
    assert_int_equal(conflations, 2);
    assert_int_equal(q.count, 4);
    assert_int_equal(q.bytes, 8);
    assert_int_equal(p1->refs, 1);
    assert_int_equal(p2->refs, 1);
    assert_string_equal(pop_text(&q), "s1");
    assert_string_equal(pop_text(&q), "o1");
    assert_string_equal(pop_text(&q), "c1");
    assert_string_equal(pop_text(&q), "p3");
    assert_null(jw_outq_peek(&q));
    assert_int_equal(q.count, 0);
    jw_outq_clear(&q);
    struct jw_frame *all[] = {p1, s1, p2, o1, p3, c1};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(all[i]->refs, 1);
        jw_frame_unref(all[i]);
    }
}

static void
test_frame_bound_after_conflation(void **state)
{
    (void)state;
    struct jw_outq q;
    jw_outq_init(&q);
    struct jw_frame *a = keyed("a", 0), *p = keyed("p", 5);
    assert_int_equal(jw_outq_push(&q, a, 1 << 20, 2, &conflations), 0);
    assert_int_equal(jw_outq_push(&q, p, 1 << 20, 2, &conflations), 0);
    /* The third frame would pass the bound, unless it supersedes one. */
    assert_int_equal(jw_outq_push(&q, a, 1 << 20, 2, &conflations), -ENOBUFS);
    assert_int_equal(jw_outq_push(&q, p, 1 << 20, 2, &conflations), 0);
    assert_int_equal(q.count, 2);
    jw_outq_clear(&q);
    jw_frame_unref(a);
    jw_frame_unref(p);
}

static void
test_fifo_and_refcounts(void **state)
{
    (void)state;
    struct jw_outq q;
    jw_outq_init(&q);
    struct jw_frame *frames[100];
    for (int i = 0; i < 100; i++) {
        char text[16];
        int n = snprintf(text, sizeof(text), "m%d", i);
        frames[i] = jw_frame_new(text, (size_t)n, 0);
        assert_int_equal(push(&q, frames[i], 1 << 20), 0);
        assert_int_equal(frames[i]->refs, 2);
    }
    assert_int_equal(q.count, 100);
    for (int i = 0; i < 50; i++) {
        assert_ptr_equal(jw_outq_peek(&q), frames[i]);
        jw_outq_pop(&q);
        assert_int_equal(frames[i]->refs, 1);
        jw_frame_unref(frames[i]);
    }
    /* Wrap around the ring while half full. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(push(&q, frames[50 + i], 1 << 20), 0);
    for (int i = 0; i < 100; i++) {
        assert_ptr_equal(jw_outq_peek(&q), frames[50 + i % 50]);
        jw_outq_pop(&q);
    }
    assert_null(jw_outq_peek(&q));
    assert_int_equal(q.bytes, 0);
    for (int i = 50; i < 100; i++) {
        assert_int_equal(frames[i]->refs, 1);
        jw_frame_unref(frames[i]);
    }
    jw_outq_clear(&q);
}

static void
test_byte_bound(void **state)
{
    (void)state;
    struct jw_outq q;
    jw_outq_init(&q);
    char big[100];
    memset(big, 'x', sizeof(big));
    struct jw_frame *f = jw_frame_new(big, sizeof(big), 0);
    assert_int_equal(push(&q, f, 250), 0);
    assert_int_equal(push(&q, f, 250), 0);
    assert_int_equal(push(&q, f, 250), -ENOBUFS);
    assert_int_equal(q.count, 2);
    assert_int_equal(q.bytes, 200);
    assert_int_equal(f->refs, 3);
    jw_outq_clear(&q);
    assert_int_equal(f->refs, 1);
    /* An empty queue always takes one frame, however large. */
    assert_int_equal(push(&q, f, 10), 0);
    jw_outq_clear(&q);
    jw_frame_unref(f);
}

static void
test_stamp(void **state)
{
    (void)state;
    const char *text = "{\"type\":\"event\",\"seq\":";
    struct jw_frame *f = jw_frame_new(text, strlen(text), 1);
    size_t len = jw_frame_stamp(f, 42);
    assert_int_equal(len, strlen(text) + 3);
    assert_memory_equal(jw_frame_text(f), "{\"type\":\"event\",\"seq\":42}", len);
    len = jw_frame_stamp(f, 18446744073709551615ULL);
    assert_memory_equal(jw_frame_text(f) + strlen(text), "18446744073709551615}", 21);
    assert_int_equal(len, strlen(text) + 21);
    assert_int_equal(jw_frame_cost(f), strlen(text) + JW_FRAME_STAMP_ROOM);
    jw_frame_unref(f);
}

static void
test_buf_json_string(void **state)
{
    (void)state;
    struct jw_buf b;
    jw_buf_init(&b, 1);
    jw_buf_append_json_string(&b, "a\"b\\c\n\x01", 7);
    jw_buf_append_u64(&b, 1234567890123ULL);
    const char *want = "\"a\\\"b\\\\c\\u000a\\u0001\"1234567890123";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    jw_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_refcounts),
        cmocka_unit_test(test_conflation_keeps_order_and_never_drops_unkeyed),
        cmocka_unit_test(test_frame_bound_after_conflation),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_stamp),
        cmocka_unit_test(test_buf_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
