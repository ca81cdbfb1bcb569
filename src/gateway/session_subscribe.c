/*
 * Subscriptions of one session, with their snapshots, resume and resync.
 *
 * A subscribe (and a resync, its request-less twin) runs as an op in three steps:
 *   1. begin: the subscriptions it adds are registered in the hub at once — an existing job's
 *      kinds widen to cover the old and the new filter, a scope likewise — so no event can fall
 *      between a read and its subscription; from here on, every event delivered to the session
 *      is held by the op, with its entry number;
 *   2. reads: each job's state is fetched (sync.h: one read shared by every session asking for
 *      the job meanwhile); for a scope, once the job index (redis.h) listed the recent jobs.
 *      To resume, only the owners of the jobs it adds are read: the window supplies the events;
 *   3. finish: when a job named by the client belongs to another user (or its state is too
 *      large to tell whose it is, and the client is no admin), everything is undone
 *      (a request is applied whole or not at all), `forbidden` goes out, and of the held events
 *      those the session would have had anyway. Otherwise the new filters take effect and the
 *      ack goes out, then the snapshots and the held events merged in entry-number order: a
 *      job's snapshot goes before the first held event after its position, and always before
 *      any event of its own job; the job's held events before that position are dropped when
 *      the snapshot has a state read exactly (they are in it). Without an exact read (a
 *      cluster, a marker that did not come back, an unavailable read) nothing is dropped:
 *      at-least-once. Every snapshot's eventId is no later than what went out before it, so
 *      a client resuming from the last eventId it saw misses nothing. A resume sends the
 *      window's events after the client's id instead of snapshots, then the held ones.
 * Snapshots that came back unavailable make the session stale: it resyncs when Redis can answer
 * again (sync.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "session_private.h"
#include "sync.h"
#include "window.h"

#define MOD JW_SESSION_MOD

/* ---- the op's jobs ----------------------------------------------------------------------- */

static struct jw_op_job *
find_job(struct jw_session_op *op, const char *id)
{
    for (size_t i = 0; i < op->njobs; i++)
        if (strcmp(op->jobs[i].id, id) == 0)
            return &op->jobs[i];
    return NULL;
}

static struct jw_op_job *
add_job(struct jw_session_op *op, const char *id, bool by_scope)
{
    if (op->njobs == op->jobs_cap) {
        op->jobs_cap = op->jobs_cap ? op->jobs_cap * 2 : 8;
        op->jobs = jw_realloc(op->jobs, op->jobs_cap * sizeof *op->jobs);
    }
    struct jw_op_job *j = &op->jobs[op->njobs++];
    memset(j, 0, sizeof *j);
    j->id = jw_strdup(id);
    j->by_scope = by_scope;
    return j;
}

void
jw_session_free_sync_op(struct jw_session_op *op)
{
    for (size_t i = 0; i < op->nheld; i++)
        jw_event_unref(op->held[i]);
    free(op->held);
    for (size_t i = 0; i < op->njobs; i++) {
        free(op->jobs[i].id);
        free(op->jobs[i].state.owner);
        free(op->jobs[i].state.json);
    }
    free(op->jobs);
}

int
jw_session_hold_event(struct jw_session *s, struct jw_event *ev)
{
    struct jw_session_op *op = s->op;
    if (!op || op->kind == OP_AUTH)
        return 0;
    size_t cost = jw_frame_cost(ev->frame);
    if (op->held_bytes + cost > s->reg->cfg->client_queue_max_bytes) {
        jw_metric_add(JW_M_CLOSED_SLOW, 1);
        jw_session_close_later(s, JW_CLOSE_SLOW_CONSUMER, "slow consumer");
        return 1;
    }
    if (op->nheld == op->held_cap) {
        op->held_cap = op->held_cap ? op->held_cap * 2 : 16;
        op->held = jw_realloc(op->held, op->held_cap * sizeof *op->held);
    }
    op->held[op->nheld++] = jw_event_ref(ev);
    op->held_bytes += cost;
    return 1;
}

/* ---- registration ------------------------------------------------------------------------ */

static void
set_job(struct jw_session *s, const char *id, unsigned kinds)
{
    size_t max = (size_t)s->reg->cfg->client_max_subscriptions;
    int rc = jw_hub_subscribe_job(s->reg->hub, &s->member, id, kinds, max);
    if (rc == 0)
        jw_metric_add(JW_M_SUBSCRIPTIONS, 1);
}

static void
drop_job(struct jw_session *s, const char *id)
{
    if (jw_hub_unsubscribe_job(s->reg->hub, &s->member, id) == 0)
        jw_metric_add(JW_M_SUBSCRIPTIONS, -1);
}

static int
set_scope(struct jw_session *s, enum jw_scope scope, unsigned kinds)
{
    if (scope == JW_SCOPE_USER) {
        jw_hub_set_user_scope(s->reg->hub, &s->member, kinds);
        return 0;
    }
    return jw_hub_set_all_scope(s->reg->hub, &s->member, kinds);
}

static unsigned
scope_kinds(const struct jw_session *s, enum jw_scope scope)
{
    return scope == JW_SCOPE_USER ? jw_hub_user_scope(&s->member) : jw_hub_all_scope(&s->member);
}

/* Step 1: register what the request adds, widening what exists, and start holding. */
static void
begin(struct jw_session *s, struct jw_session_op *op)
{
    const struct jw_cmd *cmd = &op->cmd;
    op->start = jw_window_position(s->reg->window);
    if (cmd->scope != JW_SCOPE_JOBS) {
        unsigned old = scope_kinds(s, cmd->scope);
        if (cmd->scope == JW_SCOPE_USER)
            op->old_user_kinds = old;
        else
            op->old_all_kinds = old;
        (void)set_scope(s, cmd->scope, old | cmd->kinds);
        return;
    }
    for (size_t i = 0; i < cmd->njobs; i++) {
        struct jw_op_job *j = add_job(op, cmd->jobs[i], false);
        j->old_kinds = jw_hub_job_kinds(s->reg->hub, &s->member, j->id);
        set_job(s, j->id, j->old_kinds | cmd->kinds);
    }
}

/* Step 3, first half: the request takes effect, or is undone whole. */
static void
settle(struct jw_session *s, struct jw_session_op *op, bool accepted)
{
    const struct jw_cmd *cmd = &op->cmd;
    if (cmd->scope != JW_SCOPE_JOBS) {
        unsigned old = cmd->scope == JW_SCOPE_USER ? op->old_user_kinds : op->old_all_kinds;
        (void)set_scope(s, cmd->scope, accepted ? cmd->kinds : old);
        return;
    }
    for (size_t i = 0; i < op->njobs; i++) {
        const struct jw_op_job *j = &op->jobs[i];
        if (j->by_scope)
            continue;
        if (accepted)
            set_job(s, j->id, cmd->kinds);
        else if (j->old_kinds)
            set_job(s, j->id, j->old_kinds);
        else
            drop_job(s, j->id);
    }
}

/* ---- finishing ------------------------------------------------------------------------------ */

static void
queue_wanted(struct jw_session *s, struct jw_event *ev)
{
    if (jw_hub_wants(s->reg->hub, &s->member, ev) && jw_session_queue(s, ev->frame, false) == 0)
        jw_metric_add(JW_M_DELIVERIES, 1);
}

/* A resume replays the window's events the request adds: through the filters the session
 * held before, it has had them live already (a second resume must not repeat them). */
static void
replay_one(void *ctx, struct jw_event *ev)
{
    struct jw_session_op *op = ctx;
    struct jw_session *s = op->s;
    const struct jw_op_job *j = ev->job_id ? find_job(op, ev->job_id) : NULL;
    struct jw_filters before = {
        j && !j->by_scope ? j->old_kinds
        : ev->job_id      ? jw_hub_job_kinds(s->reg->hub, &s->member, ev->job_id)
                          : 0,
        op->cmd.scope == JW_SCOPE_USER ? op->old_user_kinds : jw_hub_user_scope(&s->member),
        op->cmd.scope == JW_SCOPE_ALL ? op->old_all_kinds : jw_hub_all_scope(&s->member)};
    if (!jw_hub_filters_want(&s->member, ev, &before))
        queue_wanted(s, ev);
}

/* The job's snapshot, at position `at` (what a client resuming from its eventId is owed). */
static void
send_snapshot(struct jw_session *s, struct jw_session_op *op, struct jw_op_job *j, uint64_t at)
{
    if (!j->send || j->sent)
        return;
    j->sent = 1;
    jw_metric_add(op->kind == OP_RESYNC ? JW_M_RESYNCS
                  : j->unavailable      ? JW_M_SNAPSHOTS_UNAVAILABLE
                  : j->state.too_large  ? JW_M_SNAPSHOTS_TOO_LARGE
                                        : JW_M_SNAPSHOTS,
                  1);
    struct jw_frame *f =
        jw_reply_snapshot(j->id, j->unavailable ? NULL : &j->state, j->visible, at);
    (void)jw_session_queue(s, f, true);
    jw_frame_unref(f);
}

static int
by_position(const void *a, const void *b)
{
    const struct jw_op_job *x = *(const struct jw_op_job *const *)a;
    const struct jw_op_job *y = *(const struct jw_op_job *const *)b;
    return x->position < y->position ? -1 : x->position > y->position;
}

/* The snapshots and the held events, in entry-number order, with each job's snapshot before
 * every event of that job that goes out (the rule at the top). A snapshot that must go early —
 * the job's events before its read are kept, because the read found no state or was not
 * exact — says the position of what went out last, so that a client resuming from it misses
 * nothing (it may see an event twice). */
static void
merge(struct jw_session *s, struct jw_session_op *op)
{
    struct jw_op_job **order = jw_malloc((op->njobs ? op->njobs : 1) * sizeof *order);
    for (size_t i = 0; i < op->njobs; i++)
        order[i] = &op->jobs[i];
    qsort(order, op->njobs, sizeof *order, by_position);
    size_t next = 0;
    uint64_t last = op->start;
    for (size_t i = 0; i < op->nheld; i++) {
        struct jw_event *ev = op->held[i];
        while (next < op->njobs && order[next]->position < ev->id) {
            send_snapshot(s, op, order[next], order[next]->position);
            next++;
        }
        struct jw_op_job *j = ev->job_id ? find_job(op, ev->job_id) : NULL;
        if (j && j->contains && ev->id < j->position)
            continue; /* published before the exact read: the snapshot holds it */
        if (!jw_hub_wants(s->reg->hub, &s->member, ev))
            continue;
        if (j)
            send_snapshot(s, op, j, j->position < last ? j->position : last);
        if (jw_session_queue(s, ev->frame, false) == 0)
            jw_metric_add(JW_M_DELIVERIES, 1);
        last = ev->id;
    }
    for (; next < op->njobs; next++)
        send_snapshot(s, op, order[next], order[next]->position);
    free(order);
}

static void
finish(struct jw_session *s, struct jw_session_op *op)
{
    const struct jw_cmd *cmd = &op->cmd;
    bool refused = false;
    long snapshots = 0;
    for (size_t i = 0; i < op->njobs; i++) {
        refused |= op->jobs[i].refused && !op->jobs[i].by_scope;
        snapshots += op->jobs[i].send;
    }
    if (op->unavailable) {
        s->stale = 1;
        jw_sync_want_retry(s->reg->sync);
    } else if (op->kind == OP_RESYNC) {
        s->stale = 0;
    }
    if (op->kind == OP_SUBSCRIBE) {
        settle(s, op, !refused);
        if (refused) {
            /* Names no owner and no job: the client learns only that it may not have them. */
            jw_session_send_error(s, cmd->id, JW_ERR_FORBIDDEN,
                                  "a requested job is another user's, or its owner cannot be "
                                  "checked");
            for (size_t i = 0; i < op->nheld; i++)
                queue_wanted(s, op->held[i]);
            return;
        }
        jw_session_send(
            s, jw_reply_ack(cmd, op->resumed, cmd->scope != JW_SCOPE_JOBS ? snapshots : -1));
    } else { /* a resync round: how many fresh snapshots follow */
        jw_session_send(s, jw_reply_status(jw_sync_live(s->reg->sync), NULL, -1, snapshots));
    }
    if (op->resume_from)
        jw_window_replay(s->reg->window, op->resume_from, op->start, replay_one, op);
    merge(s, op);
}

static void
maybe_finish(struct jw_session *s, struct jw_session_op *op)
{
    if (op->outstanding || op->lookup)
        return;
    finish(s, op);
    jw_session_end_op(s);
}

/* ---- reads ------------------------------------------------------------------------------------
 */

static bool
may_see(const struct jw_session *s, const char *owner)
{
    return s->member.admin || (owner && strcmp(owner, s->user_id) == 0);
}

/* Whether a state read refuses a subscribe by job id: it names another owner, or it is too
 * large to tell its owner (only admins may have such a job by id). No state, or none read,
 * refuses nothing: events are still checked one by one. */
static bool
owner_refuses(const struct jw_session *s, const struct jw_job_state *st)
{
    return st && (st->owner || st->too_large) && !may_see(s, st->owner);
}

static void
on_fetched(void *ctx, uint64_t session, uint64_t arg, const struct jw_fetch_result *r)
{
    struct jw_session_op *op = jw_session_op_of(ctx, session, arg >> 32);
    if (!op)
        return; /* the client left, or this answers an op that is over */
    struct jw_session *s = op->s;
    struct jw_op_job *j = &op->jobs[arg & 0xffffffffu];
    const struct jw_job_state *st = r->state;
    j->done = 1;
    j->unavailable = !st;
    op->unavailable += !st;
    j->contains = st && st->json && r->position; /* exact reads only drop events */
    j->position = r->position ? r->position : op->start;
    j->refused = owner_refuses(s, st);
    j->visible = st && may_see(s, st->owner);
    if (st) {
        j->state = *st;
        j->state.owner = st->owner ? jw_strdup(st->owner) : NULL;
        j->state.json = st->json ? jw_strdup(st->json) : NULL;
    }
    /* A job the index listed is shown only when it still has a state the user may see; a
     * resync sends no unavailable snapshot (the client has one already): it retries. */
    j->send = (!j->by_scope || (j->visible && (st->json || st->too_large))) &&
              (st || op->kind != OP_RESYNC);
    op->outstanding--;
    maybe_finish(s, op);
}

static void
fetch(struct jw_session *s, struct jw_session_op *op, size_t i)
{
    op->outstanding++;
    jw_sync_fetch(s->reg->sync, op->jobs[i].id, on_fetched, s->reg, s->id,
                  ((uint64_t)op->serial << 32) | i);
}

/* Resume: the owner of a job the request adds (the window supplies its events). */
static void
on_owner(struct jw_redis_op *rop)
{
    struct jw_session_op *op = jw_session_op_of(rop->ctx, rop->tag, rop->arg >> 32);
    if (!op)
        return;
    struct jw_op_job *j = &op->jobs[rop->arg & 0xffffffffu];
    const struct jw_job_state *st = rop->status < 0 ? NULL : &rop->r.state;
    j->done = 1;
    j->refused = owner_refuses(op->s, st);
    op->outstanding--;
    maybe_finish(op->s, op);
}

static void
on_recent(struct jw_redis_op *rop)
{
    struct jw_session_op *op = jw_session_op_of(rop->ctx, rop->tag, rop->arg);
    if (!op)
        return;
    struct jw_session *s = op->s;
    op->lookup = 0;
    if (rop->status < 0) {
        op->unavailable++;
    } else {
        for (size_t i = 0; i < rop->r.jobs.n; i++) {
            if (find_job(op, rop->r.jobs.ids[i]))
                continue; /* named by the client (or listed twice): one snapshot */
            add_job(op, rop->r.jobs.ids[i], true);
            fetch(s, op, op->njobs - 1);
        }
    }
    maybe_finish(s, op);
}

/* Reads the job index of the session's scope (the user's, or everybody's for "all"). */
static void
lookup_scope(struct jw_session *s, struct jw_session_op *op, bool all)
{
    if (!s->reg->cfg->scope_snapshot_max_jobs)
        return;
    op->lookup = 1;
    jw_upstream_submit(s->reg->upstream,
                       jw_redis_op_new(JW_OP_RECENT_JOBS, all ? NULL : s->user_id, NULL, on_recent,
                                       s->reg, s->id, op->serial));
}

/* ---- requests -----------------------------------------------------------------------------------
 */

/* Jobs of the request that the session does not hold yet. */
static size_t
count_new_jobs(const struct jw_session *s, const struct jw_cmd *cmd)
{
    size_t n = 0;
    for (size_t i = 0; i < cmd->njobs; i++)
        n += !jw_hub_is_subscribed(s->reg->hub, &s->member, cmd->jobs[i]);
    return n;
}

/* Where a lastEventId lets the session resume from: 0 for snapshots instead. */
static uint64_t
resume_point(struct jw_session *s, const char *last_event_id)
{
    uint64_t id;
    if (!last_event_id[0])
        return 0;
    bool ok = jw_event_id_parse(last_event_id, &id) == 0 && jw_window_covers(s->reg->window, id);
    jw_metric_add(ok ? JW_M_RESUMES_REPLAYED : JW_M_RESUMES_SNAPSHOTS, 1);
    return ok ? id : 0;
}

void
jw_session_handle_subscribe(struct jw_session *s, struct jw_cmd *cmd)
{
    struct jw_sessions *reg = s->reg;
    size_t max = (size_t)reg->cfg->client_max_subscriptions;
    if (cmd->scope == JW_SCOPE_ALL && !s->member.admin) {
        jw_session_send_error(s, cmd->id, JW_ERR_FORBIDDEN, "scope \"all\" needs the admin role");
        return;
    }
    if (cmd->scope == JW_SCOPE_JOBS &&
        jw_hub_subscription_count(&s->member) + count_new_jobs(s, cmd) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "at most %zu job subscriptions per connection", max);
        jw_session_send_error(s, cmd->id, JW_ERR_TOO_MANY_JOBS, msg);
        return;
    }
    struct jw_session_op *op = jw_session_op_new(s, OP_SUBSCRIBE);
    op->cmd = *cmd;
    memset(cmd, 0, sizeof(*cmd)); /* the op owns the job ids now */
    if (op->cmd.last_event_id[0]) {
        op->resume_from = resume_point(s, op->cmd.last_event_id);
        op->resumed = op->resume_from != 0;
        if (s->transport == JW_TRANSPORT_SSE) /* what EventSource's Last-Event-ID led to */
            jw_session_send(s, jw_reply_status(jw_sync_live(reg->sync), NULL, op->resumed, -1));
    }
    begin(s, op);
    if (op->cmd.scope != JW_SCOPE_JOBS) {
        if (!op->resume_from)
            lookup_scope(s, op, op->cmd.scope == JW_SCOPE_ALL);
    } else {
        for (size_t i = 0; i < op->njobs; i++) {
            if (!op->resume_from) {
                fetch(s, op, i);
            } else if (!op->jobs[i].old_kinds) { /* owner checks for what it adds */
                op->outstanding++;
                jw_upstream_submit(reg->upstream,
                                   jw_redis_op_new(JW_OP_READ_STATE, op->jobs[i].id, NULL, on_owner,
                                                   reg, s->id, ((uint64_t)op->serial << 32) | i));
            }
        }
    }
    maybe_finish(s, op);
}

void
jw_session_handle_unsubscribe(struct jw_session *s, const struct jw_cmd *cmd)
{
    if (cmd->scope != JW_SCOPE_JOBS)
        (void)set_scope(s, cmd->scope, 0); /* "all" is off for a non-admin already */
    for (size_t i = 0; i < cmd->njobs; i++)
        drop_job(s, cmd->jobs[i]);
    jw_session_send(s, jw_reply_ack(cmd, -1, -1));
}

static void
add_subscribed(void *ctx, const char *job_id)
{
    add_job(ctx, job_id, false);
}

void
jw_session_start_resync(struct jw_session *s)
{
    if (s->op) {
        s->resync_wanted = 1;
        return;
    }
    struct jw_session_op *op = jw_session_op_new(s, OP_RESYNC);
    op->start = jw_window_position(s->reg->window);
    jw_hub_member_jobs(&s->member, add_subscribed, op);
    for (size_t i = 0; i < op->njobs; i++)
        fetch(s, op, i);
    if (jw_hub_all_scope(&s->member))
        lookup_scope(s, op, true);
    else if (jw_hub_user_scope(&s->member))
        lookup_scope(s, op, false);
    maybe_finish(s, op);
}
