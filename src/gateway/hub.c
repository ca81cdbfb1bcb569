/*
 * Routing indices (see the diagram in hub.h).
 *
 * Invariants:
 * - every struct jw_sub is on exactly two lists: its job's `subs` and its member's `_subs`;
 * - a job entry exists in `jobs` exactly while it has at least one sub;
 * - a user entry exists in `users` exactly while some member of that user has the user scope;
 * - `_stamp` of a member equals `serial` only while the event of that serial is being routed
 *   and the member already got it.
 */
#include "hub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/dict.h"

struct job {
    struct jw_sub *subs;
    char id[];
};

struct jw_sub {
    struct jw_member *member;
    struct job *job;
    unsigned kinds;
    struct jw_sub *job_prev, *job_next;
    struct jw_sub *member_prev, *member_next;
};

struct user_scope {
    struct jw_member *head;
};

struct jw_hub {
    struct jw_dict *jobs;  /* job id -> struct job */
    struct jw_dict *users; /* user id -> struct user_scope */
    struct jw_member *all_head;
    uint64_t serial;
};

struct jw_hub *
jw_hub_new(void)
{
    struct jw_hub *hub = jw_calloc(1, sizeof(*hub));
    hub->jobs = jw_dict_new();
    hub->users = jw_dict_new();
    return hub;
}

void
jw_hub_free(struct jw_hub *hub)
{
    if (!hub)
        return;
    jw_dict_free(hub->jobs);
    jw_dict_free(hub->users);
    free(hub);
}

void
jw_hub_join(struct jw_hub *hub, struct jw_member *m)
{
    (void)hub;
    m->_user_kinds = m->_all_kinds = 0;
    m->_subs = NULL;
    m->_nsubs = 0;
    m->_stamp = 0;
    m->_user_prev = m->_user_next = m->_all_prev = m->_all_next = NULL;
}

static struct jw_sub *
find_sub(const struct jw_member *m, const struct job *job)
{
    for (struct jw_sub *s = m->_subs; s; s = s->member_next)
        if (s->job == job)
            return s;
    return NULL;
}

static void
drop_sub(struct jw_hub *hub, struct jw_sub *s)
{
    struct jw_member *m = s->member;
    struct job *job = s->job;
    if (s->job_prev)
        s->job_prev->job_next = s->job_next;
    else
        job->subs = s->job_next;
    if (s->job_next)
        s->job_next->job_prev = s->job_prev;
    if (s->member_prev)
        s->member_prev->member_next = s->member_next;
    else
        m->_subs = s->member_next;
    if (s->member_next)
        s->member_next->member_prev = s->member_prev;
    m->_nsubs--;
    free(s);
    if (!job->subs) {
        jw_dict_del(hub->jobs, job->id);
        free(job);
    }
}

int
jw_hub_subscribe_job(struct jw_hub *hub, struct jw_member *m, const char *job_id, unsigned kinds,
                     size_t max_subs)
{
    struct job *job = jw_dict_get(hub->jobs, job_id);
    struct jw_sub *s = job ? find_sub(m, job) : NULL;
    if (s) {
        s->kinds = kinds;
        return 1;
    }
    if (m->_nsubs >= max_subs)
        return -ENOSPC;
    if (!job) {
        size_t len = strlen(job_id);
        job = jw_malloc(sizeof(*job) + len + 1);
        memcpy(job->id, job_id, len + 1);
        job->subs = NULL;
        jw_dict_set(hub->jobs, job->id, job);
    }
    s = jw_malloc(sizeof(*s));
    s->member = m;
    s->job = job;
    s->kinds = kinds;
    s->job_prev = NULL;
    s->job_next = job->subs;
    if (job->subs)
        job->subs->job_prev = s;
    job->subs = s;
    s->member_prev = NULL;
    s->member_next = m->_subs;
    if (m->_subs)
        m->_subs->member_prev = s;
    m->_subs = s;
    m->_nsubs++;
    return 0;
}

int
jw_hub_is_subscribed(const struct jw_hub *hub, const struct jw_member *m, const char *job_id)
{
    struct job *job = jw_dict_get(hub->jobs, job_id);
    return job && find_sub(m, job);
}

int
jw_hub_unsubscribe_job(struct jw_hub *hub, struct jw_member *m, const char *job_id)
{
    struct job *job = jw_dict_get(hub->jobs, job_id);
    struct jw_sub *s = job ? find_sub(m, job) : NULL;
    if (!s)
        return -ENOENT;
    drop_sub(hub, s);
    return 0;
}

void
jw_hub_set_user_scope(struct jw_hub *hub, struct jw_member *m, unsigned kinds)
{
    int was_on = m->_user_kinds != 0;
    m->_user_kinds = kinds;
    if (was_on == (kinds != 0))
        return;
    struct user_scope *us = jw_dict_get(hub->users, m->user_id);
    if (kinds) {
        if (!us) {
            us = jw_calloc(1, sizeof(*us));
            jw_dict_set(hub->users, m->user_id, us);
        }
        m->_user_prev = NULL;
        m->_user_next = us->head;
        if (us->head)
            us->head->_user_prev = m;
        us->head = m;
        return;
    }
    if (m->_user_prev)
        m->_user_prev->_user_next = m->_user_next;
    else
        us->head = m->_user_next;
    if (m->_user_next)
        m->_user_next->_user_prev = m->_user_prev;
    m->_user_prev = m->_user_next = NULL;
    if (!us->head) {
        jw_dict_del(hub->users, m->user_id);
        free(us);
    }
}

/* Links or unlinks `m` on the all-jobs list; the caller checked the admin role. */
static void
set_all_kinds(struct jw_hub *hub, struct jw_member *m, unsigned kinds)
{
    int was_on = m->_all_kinds != 0;
    m->_all_kinds = kinds;
    if (was_on == (kinds != 0))
        return;
    if (kinds) {
        m->_all_prev = NULL;
        m->_all_next = hub->all_head;
        if (hub->all_head)
            hub->all_head->_all_prev = m;
        hub->all_head = m;
        return;
    }
    if (m->_all_prev)
        m->_all_prev->_all_next = m->_all_next;
    else
        hub->all_head = m->_all_next;
    if (m->_all_next)
        m->_all_next->_all_prev = m->_all_prev;
    m->_all_prev = m->_all_next = NULL;
}

int
jw_hub_set_all_scope(struct jw_hub *hub, struct jw_member *m, unsigned kinds)
{
    if (!m->admin)
        return -EPERM;
    set_all_kinds(hub, m, kinds);
    return 0;
}

void
jw_hub_leave(struct jw_hub *hub, struct jw_member *m)
{
    while (m->_subs)
        drop_sub(hub, m->_subs);
    jw_hub_set_user_scope(hub, m, 0);
    set_all_kinds(hub, m, 0);
}

size_t
jw_hub_subscription_count(const struct jw_member *m)
{
    return m->_nsubs;
}

size_t
jw_hub_job_count(const struct jw_hub *hub)
{
    return jw_dict_size(hub->jobs);
}

unsigned
jw_hub_job_kinds(const struct jw_hub *hub, const struct jw_member *m, const char *job_id)
{
    struct job *job = jw_dict_get(hub->jobs, job_id);
    struct jw_sub *s = job ? find_sub(m, job) : NULL;
    return s ? s->kinds : 0;
}

unsigned
jw_hub_user_scope(const struct jw_member *m)
{
    return m->_user_kinds;
}

unsigned
jw_hub_all_scope(const struct jw_member *m)
{
    return m->_all_kinds;
}

void
jw_hub_member_jobs(const struct jw_member *m, void (*fn)(void *ctx, const char *job_id), void *ctx)
{
    for (const struct jw_sub *s = m->_subs; s; s = s->member_next)
        fn(ctx, s->job->id);
}

static int
may_see(const struct jw_member *m, const struct jw_event *ev)
{
    return m->admin || (ev->user_id && strcmp(m->user_id, ev->user_id) == 0);
}

static unsigned
kind_bit(const struct jw_event *ev)
{
    return 1u << ev->kind;
}

int
jw_hub_filters_want(const struct jw_member *m, const struct jw_event *ev,
                    const struct jw_filters *f)
{
    unsigned bit = kind_bit(ev);
    if ((f->job_kinds & bit) && may_see(m, ev))
        return 1;
    if ((f->user_kinds & bit) && ev->user_id && strcmp(m->user_id, ev->user_id) == 0)
        return 1;
    return (f->all_kinds & bit) != 0;
}

int
jw_hub_wants(const struct jw_hub *hub, const struct jw_member *m, const struct jw_event *ev)
{
    struct jw_filters now = {ev->job_id ? jw_hub_job_kinds(hub, m, ev->job_id) : 0, m->_user_kinds,
                             m->_all_kinds};
    return jw_hub_filters_want(m, ev, &now);
}

static void
offer(struct jw_hub *hub, struct jw_member *m, struct jw_event *ev, jw_hub_deliver_fn deliver,
      void *ctx, struct jw_route_stats *stats)
{
    if (m->_stamp == hub->serial)
        return;
    m->_stamp = hub->serial;
    deliver(ctx, m, ev);
    stats->delivered++;
}

void
jw_hub_route(struct jw_hub *hub, struct jw_event *ev, jw_hub_deliver_fn deliver, void *ctx,
             struct jw_route_stats *stats)
{
    /* Internal events never get here. */
    unsigned bit = kind_bit(ev);
    stats->delivered = stats->denied = 0;
    hub->serial++;

    struct job *job = ev->job_id ? jw_dict_get(hub->jobs, ev->job_id) : NULL;
    for (struct jw_sub *s = job ? job->subs : NULL; s; s = s->job_next) {
        if (!(s->kinds & bit))
            continue;
        if (!may_see(s->member, ev)) {
            stats->denied++;
            continue;
        }
        offer(hub, s->member, ev, deliver, ctx, stats);
    }
    if (ev->user_id) {
        struct user_scope *us = jw_dict_get(hub->users, ev->user_id);
        for (struct jw_member *m = us ? us->head : NULL; m; m = m->_user_next)
            if (m->_user_kinds & bit)
                offer(hub, m, ev, deliver, ctx, stats);
    }
    for (struct jw_member *m = hub->all_head; m; m = m->_all_next)
        if (m->_all_kinds & bit)
            offer(hub, m, ev, deliver, ctx, stats);
}
