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

#include "jobwire/rand.h"
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
collect_job(void *ctx, const char *job_id)
{
    char *seen = ctx;
    strcat(seen, job_id);
    strcat(seen, ",");
}

static void
test_member_jobs(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member a, b;
    member(hub, &a, "a", 0);
    member(hub, &b, "b", 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j1", JW_KINDS_ALL, 4), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &a, "j2", 1u << JW_KIND_ERROR, 4), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &b, "j2", JW_KINDS_ALL, 4), 0);
    assert_int_equal(jw_hub_job_count(hub), 2);
    assert_int_equal(jw_hub_job_kinds(hub, &a, "j2"), 1u << JW_KIND_ERROR);
    assert_int_equal(jw_hub_job_kinds(hub, &b, "j2"), JW_KINDS_ALL);
    assert_int_equal(jw_hub_job_kinds(hub, &b, "j1"), 0);
    assert_int_equal(jw_hub_job_kinds(hub, &b, "nope"), 0);
    char seen[64] = "";
    jw_hub_member_jobs(&a, collect_job, seen);
    assert_true(strcmp(seen, "j1,j2,") == 0 || strcmp(seen, "j2,j1,") == 0);
    seen[0] = '\0';
    jw_hub_member_jobs(&b, collect_job, seen);
    assert_string_equal(seen, "j2,");
    jw_hub_leave(hub, &a);
    assert_int_equal(jw_hub_job_count(hub), 1);
    seen[0] = '\0';
    jw_hub_member_jobs(&a, collect_job, seen);
    assert_string_equal(seen, "");
    assert_int_equal(jw_hub_subscription_count(&a), 0);
    jw_hub_leave(hub, &b);
    assert_int_equal(jw_hub_job_count(hub), 0);
    jw_hub_free(hub);
}

/* Events of user channels have no job: they reach the user's "user" scope and admins with the
 * "all" scope, never a job subscription. */
static void
test_user_channel_events(void **state)
{
    (void)state;
    struct jw_hub *hub = jw_hub_new();
    struct jw_member alice_scope, alice_jobs, bob_scope, ops_all, ops_jobs;
    struct inbox in;
    size_t denied;
    member(hub, &alice_scope, "alice", 0);
    member(hub, &alice_jobs, "alice", 0);
    member(hub, &bob_scope, "bob", 0);
    member(hub, &ops_all, "ops", 1);
    member(hub, &ops_jobs, "ops", 1);
    jw_hub_set_user_scope(hub, &alice_scope, JW_KINDS_ALL);
    assert_int_equal(jw_hub_subscribe_job(hub, &alice_jobs, "j", JW_KINDS_ALL, 4), 0);
    jw_hub_set_user_scope(hub, &bob_scope, JW_KINDS_ALL);
    assert_int_equal(jw_hub_set_all_scope(hub, &ops_all, JW_KINDS_ALL), 0);
    assert_int_equal(jw_hub_subscribe_job(hub, &ops_jobs, "j", JW_KINDS_ALL, 4), 0);

    struct jw_event ev = event(NULL, "alice", JW_KIND_OTHER);
    assert_int_equal(route(hub, ev, &in, &denied), 2);
    assert_true(received(&in, &alice_scope));
    assert_true(received(&in, &ops_all));
    assert_int_equal(denied, 0);
    struct jw_member *all[] = {&alice_scope, &alice_jobs, &bob_scope, &ops_all, &ops_jobs};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(jw_hub_wants(hub, all[i], &ev), received(&in, all[i]));
    /* the kind filter applies: a user scope without "other" does not get it */
    jw_hub_set_user_scope(hub, &alice_scope, 1u << JW_KIND_STATUS);
    assert_int_equal(route(hub, ev, &in, NULL), 1);
    assert_false(jw_hub_wants(hub, &alice_scope, &ev));
    /* nobody named: admins only */
    ev = event(NULL, NULL, JW_KIND_OTHER);
    assert_int_equal(route(hub, ev, &in, NULL), 1);
    assert_true(received(&in, &ops_all));
    for (size_t i = 0; i < 5; i++)
        jw_hub_leave(hub, all[i]);
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

/* ---- property: jw_hub_wants() and jw_hub_route() take the same decision, and both match an
 * independent statement of the routing rule ------------------------------------------------ */

enum { PM = 24, PJOBS = 6, PUSERS = 4 };
static const char *const p_users[PUSERS] = {"alice", "bob", "carol", "ops"};
static const char *const p_jobs[PJOBS] = {"j0", "j1", "j2", "j3", "j4", "j5"};

struct pmember {
    struct jw_member m;
    int joined;
    unsigned job_kinds[PJOBS]; /* 0 = not subscribed */
    unsigned user_kinds, all_kinds;
    int got; /* deliveries during one route */
};

static void
p_deliver(void *ctx, struct jw_member *m, struct jw_event *ev)
{
    (void)ctx;
    (void)ev;
    ((struct pmember *)m->owner)->got++;
}

/* The rule of hub.h, written out. */
static int
p_expected(const struct pmember *p, const struct jw_event *ev, size_t *denied)
{
    unsigned bit = 1u << ev->kind;
    int may_see = p->m.admin || (ev->user_id && strcmp(p->m.user_id, ev->user_id) == 0);
    int want = 0;
    if (ev->job_id) {
        for (int j = 0; j < PJOBS; j++) {
            if (strcmp(ev->job_id, p_jobs[j]) == 0 && (p->job_kinds[j] & bit)) {
                if (may_see)
                    want = 1;
                else
                    (*denied)++;
            }
        }
    }
    if ((p->user_kinds & bit) && ev->user_id && strcmp(p->m.user_id, ev->user_id) == 0)
        want = 1;
    if (p->all_kinds & bit)
        want = 1;
    return want;
}

static void
test_wants_matches_route(void **state)
{
    (void)state;
    uint64_t rng = jw_random_seed(), seed = rng;
    struct jw_hub *hub = jw_hub_new();
    static struct pmember ps[PM];
    memset(ps, 0, sizeof ps);
    for (int step = 0; step < 20000; step++) {
        struct pmember *p = &ps[jw_random_below(&rng, PM)];
        unsigned op = (unsigned)jw_random_below(&rng, 10);
        if (!p->joined) {
            memset(p, 0, sizeof *p);
            int u = (int)jw_random_below(&rng, PUSERS);
            p->m.user_id = p_users[u];
            p->m.admin = u == 3 || jw_random_below(&rng, 8) == 0;
            p->m.owner = p;
            jw_hub_join(hub, &p->m);
            p->joined = 1;
        } else if (op < 4) {
            int j = (int)jw_random_below(&rng, PJOBS);
            unsigned kinds = (unsigned)jw_random_below(&rng, JW_KINDS_ALL + 1);
            if (kinds) {
                int rc = jw_hub_subscribe_job(hub, &p->m, p_jobs[j], kinds, PJOBS);
                assert_int_equal(rc, p->job_kinds[j] ? 1 : 0);
            } else {
                int rc = jw_hub_unsubscribe_job(hub, &p->m, p_jobs[j]);
                assert_int_equal(rc, p->job_kinds[j] ? 0 : -ENOENT);
            }
            p->job_kinds[j] = kinds;
        } else if (op < 6) {
            p->user_kinds = (unsigned)jw_random_below(&rng, JW_KINDS_ALL + 1);
            jw_hub_set_user_scope(hub, &p->m, p->user_kinds);
        } else if (op < 8) {
            unsigned kinds = (unsigned)jw_random_below(&rng, JW_KINDS_ALL + 1);
            int rc = jw_hub_set_all_scope(hub, &p->m, kinds);
            assert_int_equal(rc, p->m.admin ? 0 : -EPERM);
            if (p->m.admin)
                p->all_kinds = kinds;
        } else if (op == 8) {
            jw_hub_leave(hub, &p->m);
            p->joined = 0;
        }
        /* an event: a job (or none, as on a user channel), a user (or none), a kind */
        int j = (int)jw_random_below(&rng, PJOBS + 2);
        int u = (int)jw_random_below(&rng, PUSERS + 1);
        struct jw_event ev = {.kind = (enum jw_kind)jw_random_below(&rng, JW_KIND__COUNT),
                              .job_id = j < PJOBS    ? (char *)p_jobs[j]
                                        : j == PJOBS ? "zz"
                                                     : NULL,
                              .user_id = u < PUSERS ? (char *)p_users[u] : NULL};
        for (int i = 0; i < PM; i++)
            ps[i].got = 0;
        struct jw_route_stats st;
        jw_hub_route(hub, &ev, p_deliver, NULL, &st);
        size_t delivered = 0, denied = 0;
        for (int i = 0; i < PM; i++) {
            if (!ps[i].joined) {
                assert_int_equal(ps[i].got, 0);
                continue;
            }
            int want = p_expected(&ps[i], &ev, &denied);
            int wants = jw_hub_wants(hub, &ps[i].m, &ev);
            if (ps[i].got > 1 || ps[i].got != want || wants != want)
                fail_msg("seed %llu step %d: member %d (%s%s) got %d, wants() %d, rule %d for "
                         "job %s user %s kind %d",
                         (unsigned long long)seed, step, i, ps[i].m.user_id,
                         ps[i].m.admin ? ", admin" : "", ps[i].got, wants, want,
                         ev.job_id ? ev.job_id : "-", ev.user_id ? ev.user_id : "-", ev.kind);
            delivered += (size_t)ps[i].got;
        }
        assert_int_equal(st.delivered, delivered);
        assert_int_equal(st.denied, denied);
        /* the hub's own view of the subscriptions */
        size_t jobs_held = 0;
        for (int jj = 0; jj < PJOBS; jj++) {
            int held = 0;
            for (int i = 0; i < PM; i++) {
                if (!ps[i].joined)
                    continue;
                assert_int_equal(jw_hub_job_kinds(hub, &ps[i].m, p_jobs[jj]), ps[i].job_kinds[jj]);
                held |= ps[i].job_kinds[jj] != 0;
            }
            jobs_held += (size_t)held;
        }
        assert_int_equal(jw_hub_job_count(hub), jobs_held);
    }
    for (int i = 0; i < PM; i++)
        if (ps[i].joined)
            jw_hub_leave(hub, &ps[i].m);
    assert_int_equal(jw_hub_job_count(hub), 0);
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
        cmocka_unit_test(test_member_jobs),
        cmocka_unit_test(test_user_channel_events),
        cmocka_unit_test(test_wants_matches_route),
        cmocka_unit_test(test_many_members_leave_in_any_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
