/*
 * Unit tests for resp.c, the bounded reply trees: crafted RESP fed to a reader from
 * jw_resp_reader_new(); element and byte budgets (nested arrays, strings of every kind), the
 * truncated flag on the root only, dropped elements as NULL, a root string over the budget, the
 * budget per reply, replies split at every byte, the string helpers, and a model check of random
 * trees against the budget rule. Valgrind/ASan check that the shared placeholder is never freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "jobwire/alloc.h"
#include "jobwire/buf.h"
#include "jobwire/rand.h"
#include "../../src/redis/resp.h"

/* Feeds `text` (in chunks of `chunk` bytes; 0 = whole) and returns the one reply it holds. */
static struct jw_resp *
read_one(const struct jw_resp_limits *lim, const char *text, size_t len, size_t chunk)
{
    struct redisReader *r = jw_resp_reader_new(lim);
    void *reply = NULL;
    size_t off = 0;
    chunk = chunk ? chunk : len;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_int_equal(redisReaderFeed(r, text + off, n), REDIS_OK);
        off += n;
        assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
        if (reply)
            break;
    }
    assert_non_null(reply);
    assert_int_equal(off, len); /* the reply ended with the input */
    void *more = NULL;
    assert_int_equal(redisReaderGetReply(r, &more), REDIS_OK);
    assert_null(more);
    redisReaderFree(r);
    return reply;
}

static struct jw_resp *
read_str(const struct jw_resp_limits *lim, const char *text)
{
    return read_one(lim, text, strlen(text), 0);
}

/* Counts what a tree keeps; checks that only the root may be truncated. */
static void
walk(const struct jw_resp *n, const struct jw_resp *root, size_t *elements, size_t *bytes)
{
    assert_ptr_equal(n->_root, root);
    if (n != root) {
        assert_false(n->truncated);
        (*elements)++;
    }
    if (n->str) {
        assert_int_equal(n->str[n->len], '\0');
        *bytes += n->len;
    }
    if (n->type == JW_RESP_ARRAY) {
        assert_true(n->elements == 0 || n->element != NULL);
        for (size_t i = 0; i < n->elements; i++)
            if (n->element[i])
                walk(n->element[i], root, elements, bytes);
    } else {
        assert_int_equal(n->elements, 0);
    }
}

static void
check_budget(const struct jw_resp *root, const struct jw_resp_limits *lim)
{
    size_t elements = 0, bytes = 0;
    walk(root, root, &elements, &bytes);
    assert_true(elements <= lim->max_elements);
    assert_true(bytes <= lim->max_bytes);
    assert_int_equal(root->_count, elements);
    assert_int_equal(root->_bytes, bytes);
}

static const struct jw_resp_limits roomy = {.max_bytes = 1 << 20, .max_elements = 1000};

static void
test_simple_types(void **state)
{
    (void)state;
    struct jw_resp *r = read_str(&roomy, "+OK\r\n");
    assert_int_equal(r->type, JW_RESP_STATUS);
    assert_string_equal(r->str, "OK");
    assert_true(jw_resp_is_str(r));
    assert_true(jw_resp_str_eq(r, "ok"));
    assert_false(jw_resp_str_eq(r, "OKAY"));
    assert_false(r->truncated);
    jw_resp_free(r);
    r = read_str(&roomy, "-MOVED 3999 127.0.0.1:6381\r\n");
    assert_int_equal(r->type, JW_RESP_ERROR);
    assert_true(jw_resp_error_is(r, "MOVED"));
    assert_false(jw_resp_error_is(r, "MOVE"));
    assert_false(jw_resp_error_is(r, "ASK"));
    assert_false(jw_resp_is_str(r));
    jw_resp_free(r);
    r = read_str(&roomy, "-LOADING\r\n");
    assert_true(jw_resp_error_is(r, "LOADING"));
    jw_resp_free(r);
    r = read_str(&roomy, ":-9223372036854775808\r\n");
    assert_int_equal(r->type, JW_RESP_INTEGER);
    assert_true(r->integer == INT64_MIN);
    assert_false(jw_resp_error_is(r, "X"));
    jw_resp_free(r);
    r = read_one(&roomy, "$5\r\na\0b\r\n\r\n", 11, 0);
    assert_int_equal(r->type, JW_RESP_STRING);
    assert_int_equal(r->len, 5);
    assert_memory_equal(r->str, "a\0b\r\n", 6);
    jw_resp_free(r);
    r = read_str(&roomy, "$0\r\n\r\n");
    assert_int_equal(r->len, 0);
    assert_string_equal(r->str, "");
    assert_true(jw_resp_str_eq(r, ""));
    jw_resp_free(r);
    r = read_str(&roomy, "$-1\r\n");
    assert_int_equal(r->type, JW_RESP_NIL);
    assert_false(jw_resp_is_str(r));
    jw_resp_free(r);
    r = read_str(&roomy, "*-1\r\n");
    assert_int_equal(r->type, JW_RESP_NIL);
    jw_resp_free(r);
    r = read_str(&roomy, "*0\r\n");
    assert_int_equal(r->type, JW_RESP_ARRAY);
    assert_int_equal(r->elements, 0);
    jw_resp_free(r);
    r = read_str(&roomy, "*3\r\n$1\r\na\r\n:7\r\n*2\r\n$-1\r\n+QUEUED\r\n");
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "a");
    assert_int_equal(r->element[1]->integer, 7);
    assert_int_equal(r->element[2]->elements, 2);
    assert_int_equal(r->element[2]->element[0]->type, JW_RESP_NIL);
    assert_true(jw_resp_str_eq(r->element[2]->element[1], "queued"));
    check_budget(r, &roomy);
    assert_false(r->truncated);
    jw_resp_free(r);
    jw_resp_free(NULL);
    assert_false(jw_resp_is_str(NULL));
    assert_false(jw_resp_str_eq(NULL, ""));
    assert_false(jw_resp_error_is(NULL, "ERR"));
}

static void
test_element_budget(void **state)
{
    (void)state;
    struct jw_resp_limits lim = {.max_bytes = 1 << 20, .max_elements = 3};
    struct jw_resp *r = read_str(&lim, "*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n");
    assert_true(r->truncated);
    assert_int_equal(r->elements, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r->element[i]->integer, i + 1);
    check_budget(r, &lim);
    jw_resp_free(r);
    /* exactly at the limit: nothing dropped */
    r = read_str(&lim, "*3\r\n:1\r\n:2\r\n:3\r\n");
    assert_false(r->truncated);
    check_budget(r, &lim);
    jw_resp_free(r);
    /* nested: the elements of every level count together */
    lim.max_elements = 4;
    r = read_str(&lim, "*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n:4\r\n:5\r\n");
    assert_true(r->truncated);
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->elements, 3);
    assert_false(r->element[0]->truncated); /* only the root says so */
    assert_null(r->element[1]);             /* dropped whole, its children too */
    check_budget(r, &lim);
    jw_resp_free(r);
    /* a nested array cut short: its late elements are dropped, the sibling after it too */
    lim.max_elements = 3;
    r = read_str(&lim, "*3\r\n*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n");
    assert_true(r->truncated);
    assert_int_equal(r->elements, 3);
    assert_int_equal(r->element[0]->elements, 2);
    assert_int_equal(r->element[0]->element[1]->integer, 2);
    assert_null(r->element[1]);
    assert_null(r->element[2]);
    check_budget(r, &lim);
    jw_resp_free(r);
    /* no elements at all allowed: an array keeps none */
    lim.max_elements = 0;
    r = read_str(&lim, "*2\r\n$1\r\na\r\n*1\r\n:1\r\n");
    assert_true(r->truncated);
    assert_int_equal(r->elements, 0);
    check_budget(r, &lim);
    jw_resp_free(r);
}

static void
test_byte_budget(void **state)
{
    (void)state;
    struct jw_resp_limits lim = {.max_bytes = 10, .max_elements = 100};
    struct jw_resp *r =
        read_str(&lim, "*4\r\n$4\r\nabcd\r\n$4\r\nefgh\r\n$4\r\nijkl\r\n$2\r\nmn\r\n");
    assert_true(r->truncated);
    assert_int_equal(r->elements, 4);
    assert_string_equal(r->element[0]->str, "abcd");
    assert_string_equal(r->element[1]->str, "efgh");
    assert_null(r->element[2]);                    /* 12 > 10 */
    assert_string_equal(r->element[3]->str, "mn"); /* 10 fits again */
    check_budget(r, &lim);
    jw_resp_free(r);
    /* status and error strings count too */
    r = read_str(&lim, "*3\r\n+123456\r\n-ERR 5\r\n+x\r\n"); /* 6, 6 + 5 > 10, 6 + 1 */
    assert_true(r->truncated);
    assert_non_null(r->element[0]);
    assert_null(r->element[1]);
    assert_non_null(r->element[2]);
    check_budget(r, &lim);
    jw_resp_free(r);
    /* a root string over the budget: kept as a string without its text */
    r = read_str(&lim, "$11\r\nhello world\r\n");
    assert_int_equal(r->type, JW_RESP_STRING);
    assert_true(r->truncated);
    assert_null(r->str);
    assert_false(jw_resp_is_str(r));
    jw_resp_free(r);
    r = read_str(&lim, "-ERR a long error\r\n");
    assert_int_equal(r->type, JW_RESP_ERROR);
    assert_true(r->truncated);
    assert_null(r->str);
    assert_false(jw_resp_error_is(r, "ERR"));
    jw_resp_free(r);
    r = read_str(&lim, "$10\r\n0123456789\r\n"); /* exactly the budget */
    assert_false(r->truncated);
    assert_string_equal(r->str, "0123456789");
    jw_resp_free(r);
}

/* Each reply has its own budget; a truncated one does not affect the next. */
static void
test_budget_per_reply(void **state)
{
    (void)state;
    struct jw_resp_limits lim = {.max_bytes = 4, .max_elements = 2};
    struct redisReader *rd = jw_resp_reader_new(&lim);
    const char *in = "*3\r\n:1\r\n:2\r\n:3\r\n$4\r\nabcd\r\n*2\r\n$2\r\nab\r\n$2\r\ncd\r\n";
    assert_int_equal(redisReaderFeed(rd, in, strlen(in)), REDIS_OK);
    void *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    assert_int_equal(redisReaderGetReply(rd, &a), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &b), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &c), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &d), REDIS_OK);
    assert_null(d);
    struct jw_resp *ra = a, *rb = b, *rc = c;
    assert_true(ra->truncated);
    assert_false(rb->truncated);
    assert_string_equal(rb->str, "abcd");
    assert_false(rc->truncated);
    assert_string_equal(rc->element[1]->str, "cd");
    check_budget(ra, &lim);
    check_budget(rc, &lim);
    jw_resp_free(ra);
    jw_resp_free(rb);
    jw_resp_free(rc);
    /* a protocol error: the reader says so, and frees what it built (valgrind) */
    assert_int_equal(redisReaderFeed(rd, "*2\r\n:1\r\n!x\r\n", 12), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &a), REDIS_ERR);
    redisReaderFree(rd);
}

/* ---- model check ---------------------------------------------------------------------------- */

/* A random reply tree and its RESP text. */
struct gen {
    int type; /* JW_RESP_* */
    long long integer;
    char str[24];
    size_t len;
    struct gen *kids[6];
    size_t nkids;
};

static struct gen *
gen_tree(uint64_t *rng, int depth)
{
    struct gen *g = jw_calloc(1, sizeof *g);
    unsigned pick = (unsigned)jw_random_below(rng, depth < 6 ? 10 : 7);
    if (pick < 2) {
        g->type = JW_RESP_STRING;
    } else if (pick < 3) {
        g->type = JW_RESP_STATUS;
    } else if (pick < 4) {
        g->type = JW_RESP_ERROR;
    } else if (pick < 5) {
        g->type = JW_RESP_INTEGER;
        g->integer = (long long)jw_random_next(rng);
    } else if (pick < 7) {
        g->type = JW_RESP_NIL;
    } else {
        g->type = JW_RESP_ARRAY;
        g->nkids = jw_random_below(rng, 7);
        for (size_t i = 0; i < g->nkids; i++)
            g->kids[i] = gen_tree(rng, depth + 1);
    }
    if (g->type == JW_RESP_STRING || g->type == JW_RESP_STATUS || g->type == JW_RESP_ERROR) {
        g->len = jw_random_below(rng, sizeof g->str);
        for (size_t i = 0; i < g->len; i++)
            g->str[i] = (char)('a' + jw_random_below(rng, 26));
    }
    return g;
}

static void
gen_text(const struct gen *g, struct jw_buf *b)
{
    char head[64];
    switch (g->type) {
    case JW_RESP_STRING:
        snprintf(head, sizeof head, "$%zu\r\n", g->len);
        jw_buf_append_str(b, head);
        jw_buf_append(b, g->str, g->len);
        jw_buf_append_str(b, "\r\n");
        break;
    case JW_RESP_STATUS:
    case JW_RESP_ERROR:
        jw_buf_append_str(b, g->type == JW_RESP_STATUS ? "+" : "-");
        jw_buf_append(b, g->str, g->len);
        jw_buf_append_str(b, "\r\n");
        break;
    case JW_RESP_INTEGER:
        snprintf(head, sizeof head, ":%lld\r\n", g->integer);
        jw_buf_append_str(b, head);
        break;
    case JW_RESP_NIL:
        jw_buf_append_str(b, "$-1\r\n");
        break;
    default:
        snprintf(head, sizeof head, "*%zu\r\n", g->nkids);
        jw_buf_append_str(b, head);
        for (size_t i = 0; i < g->nkids; i++)
            gen_text(g->kids[i], b);
    }
}

static void
gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->nkids; i++)
        gen_free(g->kids[i]);
    free(g);
}

struct budget {
    const struct jw_resp_limits *lim;
    size_t count, bytes;
    bool truncated;
};

/* The budget rule, in the order the reader creates nodes (an array before its elements):
 * compares `got` (NULL = dropped) with what the rule keeps of `g`. */
static void
expect_node(const struct gen *g, const struct jw_resp *got, struct budget *bu, bool root, bool keep)
{
    size_t bytes = g->type == JW_RESP_ARRAY || g->type == JW_RESP_INTEGER || g->type == JW_RESP_NIL
                       ? 0
                       : g->len;
    if (!root && keep) {
        if (bu->bytes + bytes > bu->lim->max_bytes || bu->count + 1 > bu->lim->max_elements) {
            keep = false;
            bu->truncated = true;
        } else {
            bu->bytes += bytes;
            bu->count++;
        }
    }
    if (!keep) {
        assert_null(got);
        for (size_t i = 0; i < g->nkids; i++)
            expect_node(g->kids[i], NULL, bu, false, false);
        return;
    }
    assert_non_null(got);
    assert_int_equal(got->type, g->type);
    if (g->type == JW_RESP_INTEGER)
        assert_true(got->integer == g->integer);
    if (bytes || g->type == JW_RESP_STRING || g->type == JW_RESP_STATUS ||
        g->type == JW_RESP_ERROR) {
        if (root && g->len > bu->lim->max_bytes) {
            assert_null(got->str);
            bu->truncated = true;
        } else {
            bu->bytes += root ? g->len : 0;
            assert_int_equal(got->len, g->len);
            assert_memory_equal(got->str, g->str, g->len);
        }
    }
    if (g->type != JW_RESP_ARRAY)
        return;
    size_t room = bu->lim->max_elements > bu->count ? bu->lim->max_elements - bu->count : 0;
    size_t n = g->nkids < room ? g->nkids : room;
    if (n < g->nkids)
        bu->truncated = true;
    assert_int_equal(got->elements, n);
    for (size_t i = 0; i < g->nkids; i++) {
        if (i < n) {
            expect_node(g->kids[i], got->element[i], bu, false, true);
        } else {
            if (g->kids[i]) /* past the elements kept: dropped whatever the budget */
                bu->truncated = true;
            expect_node(g->kids[i], NULL, bu, false, false);
        }
    }
}

static void
test_model(void **state)
{
    (void)state;
    uint64_t seed = jw_random_seed();
    uint64_t rng = seed;
    for (int i = 0; i < 3000; i++) {
        struct gen *g = gen_tree(&rng, 0);
        struct jw_buf b;
        jw_buf_init(&b, 256);
        gen_text(g, &b);
        struct jw_resp_limits lim = {.max_bytes = jw_random_below(&rng, 120),
                                     .max_elements = jw_random_below(&rng, 25)};
        size_t chunk = jw_random_below(&rng, 4) == 0 ? 1 : 0; /* sometimes byte by byte */
        struct jw_resp *r = read_one(&lim, b.data, b.len, chunk);
        struct budget bu = {.lim = &lim};
        expect_node(g, r, &bu, true, true);
        if (r->truncated != bu.truncated)
            fail_msg("seed %llu case %d: truncated %d, the rule says %d", (unsigned long long)seed,
                     i, r->truncated, bu.truncated);
        check_budget(r, &lim);
        jw_resp_free(r);
        jw_buf_free(&b);
        gen_free(g);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_types), cmocka_unit_test(test_element_budget),
        cmocka_unit_test(test_byte_budget),  cmocka_unit_test(test_budget_per_reply),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
