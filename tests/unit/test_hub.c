/* Unit tests for hub.c: routing by job, user scope and all scope; authorization; dedupe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gateway/hub.h"

#define MAX_GOT 16

struct inbox {
    struct jw_member *got[MAX_GOT];
    size_t n;
};

static void
collect(void *ctx, struct jw_member *m, struct jw_event *ev)
{
    (void)ev;
    struct inbox *in = ctx;
    assert_true(in->n < MAX_GOT);
    in->got[in->n++] = m;
}

static void
collect_count_only(void *ctx, struct jw_member *m, struct jw_event *ev)
{
    (void)ctx;
    (void)m;
    (void)ev;
}

static struct jw_event
event(const char *job, const char *user, enum jw_kind kind)
{
    struct jw_event ev = {.kind = kind, .job_id = (char *)job, .user_id = (char *)user};
    return ev;
}

static size_t
route(struct jw_hub *hub, struct jw_event ev, struct inbox *in, size_t *denied)
{
    struct jw_route_stats st;
    in->n = 0;
    jw_hub_route(hub, &ev, collect, in, &st);
    assert_int_equal(st.delivered, in->n);
    if (denied)
        *denied = st.denied;
    return in->n;
}

static int
received(const struct inbox *in, const struct jw_member *m)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->got[i] == m)
            return 1;
    return 0;
}

static void
member(struct jw_hub *hub, struct jw_member *m, const char *user, int admin)
{
    memset(m, 0, sizeof(*m));
    m->user_id = user;
    m->admin = admin;
    jw_hub_join(hub, m);
}

static void
test_job_subscription_delivers_to_owner_only(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member alice, bob;
    struct inbox in;
    size_t denied;
    member(hub, &alice, "alice", 0);
    member(hub, &bob, "bob", 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &alice, "j1", JW_KINDS_ALL, 10), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &bob, "j1", JW_KINDS_ALL, 10), 0);
    assert_int_equal(route(hub, event("j1", "alice", JW_KIND_PROGRESS), &in, &denied), 1);
    assert_true(received(&in, &alice));
    assert_int_equal(denied, 1);
    /* No user in the event: nobody but admins. */
    assert_int_equal(route(hub, event("j1", NULL, JW_KIND_PROGRESS), &in, &denied), 0);
    assert_int_equal(denied, 2);
    /* Other jobs reach nobody. */
    assert_int_equal(route(hub, event("j2", "alice", JW_KIND_PROGRESS), &in, NULL), 0);
    jw_hub_leave(hub, &alice);
    jw_hub_leave(hub, &bob);
    assert_int_equal(jw_hub_job_count(hub), 0);
    jw_hub_free(hub);
}

static void
test_kinds_filter_and_resubscribe(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member a;
    struct inbox in;
    member(hub, &a, "a", 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j", 1u << JW_KIND_COMPLETE, 10), 0);
    assert_int_equal(route(hub, event("j", "a", JW_KIND_PROGRESS), &in, NULL), 0);
    assert_int_equal(route(hub, event("j", "a", JW_KIND_COMPLETE), &in, NULL), 1);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j", JW_KINDS_ALL, 10), 1);
    assert_int_equal(jw_hub_subscription_count(&a), 1);
    assert_int_equal(route(hub, event("j", "a", JW_KIND_PROGRESS), &in, NULL), 1);
    jw_hub_leave(hub, &a);
    jw_hub_free(hub);
}

static void
test_limit_and_unsubscribe(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member a;
    struct inbox in;
    member(hub, &a, "a", 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j1", JW_KINDS_ALL, 2), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j2", JW_KINDS_ALL, 2), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j3", JW_KINDS_ALL, 2), -ENOSPC);
    assert_true(jw_hub_is_subscribed(hub, &a, "j2"));
    assert_false(jw_hub_is_subscribed(hub, &a, "j3"));
    assert_int_equal(jw_hub_job_count(hub), 2);
    assert_int_equal(jw_hub_unsubscribe_job(hub, &a, "j1"), 0);
    assert_int_equal(jw_hub_unsubscribe_job(hub, &a, "j1"), -ENOENT);
    assert_int_equal(jw_hub_unsubscribe_job(hub, &a, "never"), -ENOENT);
    assert_int_equal(route(hub, event("j1", "a", JW_KIND_STATUS), &in, NULL), 0);
    assert_int_equal(route(hub, event("j2", "a", JW_KIND_STATUS), &in, NULL), 1);
    assert_int_equal(jw_hub_job_count(hub), 1);
    jw_hub_leave(hub, &a);
    assert_int_equal(jw_hub_job_count(hub), 0);
    jw_hub_free(hub);
}

static void
test_user_scope(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member a1, a2, b;
    struct inbox in;
    member(hub, &a1, "alice", 0);
    member(hub, &a2, "alice", 0);
    member(hub, &b, "bob", 0);
    jw_hub_set_user_scope(hub, &a1, JW_KINDS_ALL);
    jw_hub_set_user_scope(hub, &a2, 1u << JW_KIND_ERROR);
    jw_hub_set_user_scope(hub, &b, JW_KINDS_ALL);
    assert_int_equal(route(hub, event("any", "alice", JW_KIND_PROGRESS), &in, NULL), 1);
    assert_true(received(&in, &a1));
    assert_int_equal(route(hub, event("any", "alice", JW_KIND_ERROR), &in, NULL), 2);
    assert_false(received(&in, &b));
    jw_hub_set_user_scope(hub, &a1, 0);
    assert_int_equal(route(hub, event("any", "alice", JW_KIND_PROGRESS), &in, NULL), 0);
    jw_hub_leave(hub, &a1);
    jw_hub_leave(hub, &a2);
    jw_hub_leave(hub, &b);
    assert_int_equal(route(hub, event("any", "bob", JW_KIND_PROGRESS), &in, NULL), 0);
    jw_hub_free(hub);
}

static void
test_admin_all_scope_and_job_subscription(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member ops, user;
    struct inbox in;
    size_t denied;
    member(hub, &ops, "ops", 1);
    member(hub, &user, "u", 0);
    assert_int_equal(jw_hub_set_all_scope(hub, &user, JW_KINDS_ALL), -EPERM);
    assert_int_equal(jw_hub_set_all_scope(hub, &ops, JW_KINDS_ALL), 0);
    assert_int_equal(route(hub, event("x", "someone", JW_KIND_STATUS), &in, NULL), 1);
    assert_true(received(&in, &ops));
    assert_int_equal(route(hub, event("x", NULL, JW_KIND_STATUS), &in, NULL), 1);
    /* An admin subscribed to a job sees it whoever owns it. */
    assert_int_equal(jw_hub_set_all_scope(hub, &ops, 0), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &ops, "x", JW_KINDS_ALL, 4), 0);
    assert_int_equal(route(hub, event("x", "someone", JW_KIND_STATUS), &in, &denied), 1);
    assert_int_equal(denied, 0);
    jw_hub_leave(hub, &ops);
    jw_hub_leave(hub, &user);
    jw_hub_free(hub);
}

static void
test_one_delivery_per_member_per_event(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member ops;
    struct inbox in;
    member(hub, &ops, "ops", 1);
    assert_int_equal(jw_hub_subscribe_job(hub, &ops, "j", JW_KINDS_ALL, 4), 0);
    jw_hub_set_user_scope(hub, &ops, JW_KINDS_ALL);
    assert_int_equal(jw_hub_set_all_scope(hub, &ops, JW_KINDS_ALL), 0);
    assert_int_equal(route(hub, event("j", "ops", JW_KIND_STATUS), &in, NULL), 1);
    assert_int_equal(route(hub, event("j", "ops", JW_KIND_STATUS), &in, NULL), 1);
    jw_hub_leave(hub, &ops);
    jw_hub_free(hub);
}

static void
count_job(void *ctx, const char *job_id)
{
    (void)job_id;
    (*(int *)ctx)++;
}

static void
test_foreach_job(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member a, b;
    member(hub, &a, "a", 0);
    member(hub, &b, "b", 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j1", JW_KINDS_ALL, 4), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j2", JW_KINDS_ALL, 4), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &b, "j2", JW_KINDS_ALL, 4), 0);
    int n = 0;
    jw_hub_foreach_job(hub, count_job, &n);
    assert_int_equal(n, 2);
    jw_hub_leave(hub, &a);
    n = 0;
    jw_hub_foreach_job(hub, count_job, &n);
    assert_int_equal(n, 1);
    jw_hub_leave(hub, &b);
    jw_hub_free(hub);
}

static void
test_many_members_leave_in_any_order(void **state)
{
    (void)state;
    enum { N = 200 };
    struct jw_hub *hub = jw_hub_new();
    struct jw_member *ms = calloc(N, sizeof(*ms));
    struct inbox in;
    for (int i = 0; i < N; i++) {
        member(hub, &ms[i], i % 2 ? "odd" : "even", 0);
        char job[16];
        for (int j = 0; j < 3; j++) {
            snprintf(job, sizeof(job), "j%d", (i + j) % 7);
            assert_int_equal(jw_hub_subscribe_job(hub, &ms[i], job, JW_KINDS_ALL, 8), 0);
        }
    }
    assert_int_equal(jw_hub_job_count(hub), 7);
    for (int i = 0; i < N; i += 3)
        jw_hub_leave(hub, &ms[i]);
    struct jw_route_stats st;
    struct jw_event ev = event("j0", "even", JW_KIND_STATUS);
    in.n = 0;
    size_t expected = 0;
    for (int i = 0; i < N; i++) {
        int subscribed = ((i % 7) == 0 || ((i + 1) % 7) == 0 || ((i + 2) % 7) == 0);
        if (i % 3 != 0 && subscribed && i % 2 == 0)
            expected++;
    }
    jw_hub_route(hub, &ev, collect_count_only, &in, &st);
    assert_int_equal(st.delivered, expected);
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            jw_hub_leave(hub, &ms[i]);
    assert_int_equal(jw_hub_job_count(hub), 0);
    free(ms);
    jw_hub_free(hub);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_subscription_delivers_to_owner_only),
        cmocka_unit_test(test_kinds_filter_and_resubscribe),
        cmocka_unit_test(test_limit_and_unsubscribe),
        cmocka_unit_test(test_user_scope),
        cmocka_unit_test(test_admin_all_scope_and_job_subscription),
        cmocka_unit_test(test_one_delivery_per_member_per_event),
        cmocka_unit_test(test_foreach_job),
        cmocka_unit_test(test_many_members_leave_in_any_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
