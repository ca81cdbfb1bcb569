/*
 * The hub: who receives which event. Pure data structure (no I/O, no lws), owned and used by the
 * gateway thread only.
 *
 *   event(jobId, userId, kind)
 *      |
 *      +--> jobs[jobId]      -> subs of members that asked for this job  --+
 *      +--> users[userId]    -> members with the "all my jobs" scope       +--> deliver(member)
 *      +--> admins_all       -> admin members with the "all jobs" scope  --+    (once per event)
 *
 * Events of user channels have no job: they reach the user scope and admins only.
 * Cost per event is O(subscribers of that job + user-scope members of that user + admins with
 * the all scope), never O(all clients). A job subscriber whose user is not the event's userId
 * receives nothing unless it is an admin; that refusal is counted in jw_route_stats.denied.
 */
#ifndef JOBWIRE_HUB_H
#define JOBWIRE_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "jobwire/event.h"

struct jw_hub;
struct jw_sub; /* private: one (member, job) pair */

/* A subscriber, embedded in the owner's connection state. */
struct jw_member {
    /* public, set before jw_hub_join() and constant while joined */
    const char *user_id; /* borrowed: must outlive the membership */
    int admin;
    void *owner;
    /* private to the hub */
    unsigned _user_kinds; /* "all my jobs" scope: kinds, 0 = off */
    unsigned _all_kinds;  /* "all jobs" scope (admins): kinds, 0 = off */
    struct jw_sub *_subs;
    size_t _nsubs;
    uint64_t _stamp; /* serial of the last event delivered: dedupes across indices */
    struct jw_member *_user_prev, *_user_next;
    struct jw_member *_all_prev, *_all_next;
};

struct jw_route_stats {
    size_t delivered;
    size_t denied;
};

/* Called once per recipient during jw_hub_route(). It must not join, leave or change
 * subscriptions; to drop a member it marks its owner and does that after routing. */
typedef void (*jw_hub_deliver_fn)(void *ctx, struct jw_member *m, struct jw_event *ev);

struct jw_hub *jw_hub_new(void);
/* Every member must have left. */
void jw_hub_free(struct jw_hub *hub);
void jw_hub_join(struct jw_hub *hub, struct jw_member *m);
/* Drops every subscription and scope of `m`. */
void jw_hub_leave(struct jw_hub *hub, struct jw_member *m);
/* Returns 0 when added, 1 when it existed (its kinds are replaced), -ENOSPC past `max_subs`. */
int jw_hub_subscribe_job(struct jw_hub *hub, struct jw_member *m, const char *job_id,
                         unsigned kinds, size_t max_subs) __attribute__((warn_unused_result));
/* 1 when `m` holds a subscription to the job. */
int jw_hub_is_subscribed(const struct jw_hub *hub, const struct jw_member *m, const char *job_id);
/* Returns 0, or -ENOENT when `m` was not subscribed to the job. */
int jw_hub_unsubscribe_job(struct jw_hub *hub, struct jw_member *m, const char *job_id);
/* kinds == 0 turns the scope off. */
void jw_hub_set_user_scope(struct jw_hub *hub, struct jw_member *m, unsigned kinds);
/* Returns -EPERM unless m->admin. */
int jw_hub_set_all_scope(struct jw_hub *hub, struct jw_member *m, unsigned kinds)
    __attribute__((warn_unused_result));
size_t jw_hub_subscription_count(const struct jw_member *m);
/* Jobs that have at least one subscriber. */
size_t jw_hub_job_count(const struct jw_hub *hub);
/* The kinds of m's subscription to the job; 0 when it holds none. */
unsigned jw_hub_job_kinds(const struct jw_hub *hub, const struct jw_member *m, const char *job_id);
unsigned jw_hub_user_scope(const struct jw_member *m);
unsigned jw_hub_all_scope(const struct jw_member *m);
/* Calls fn with the id of every job m subscribed to; fn must not change the hub. */
void jw_hub_member_jobs(const struct jw_member *m, void (*fn)(void *ctx, const char *job_id),
                        void *ctx);
/* What a member asks for, as far as one event is concerned: the kinds of its subscription to
 * the event's job, of its user scope and of its "all" scope. */
struct jw_filters {
    unsigned job_kinds, user_kinds, all_kinds;
};
/* 1 when `ev` would reach `m` with filters `f`: the routing rule of jw_hub_route(). */
int jw_hub_filters_want(const struct jw_member *m, const struct jw_event *ev,
                        const struct jw_filters *f);
/* jw_hub_filters_want() with m's filters now. */
int jw_hub_wants(const struct jw_hub *hub, const struct jw_member *m, const struct jw_event *ev);
void jw_hub_route(struct jw_hub *hub, struct jw_event *ev, jw_hub_deliver_fn deliver, void *ctx,
                  struct jw_route_stats *stats);

#endif
