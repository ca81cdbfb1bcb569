/*
 * Subscriptions and snapshots of one session.
 *
 * A subscribe with jobs runs as an op (session_internal.h):
 *   1. the jobs the session does not hold yet are subscribed in the hub at once, so no live
 *      event can fall between the snapshot and the subscription; their frames are held;
 *   2. each job's snapshot is read in one Redis transaction with a marker (snapshot.h);
 *   3. when the marker of a job comes back, the frames held for it so far are dropped: they were
 *      published before the snapshot was read, so the snapshot contains them;
 *   4. when every snapshot is in (and every marker, or a short grace has passed), the request is
 *      refused whole if a job belongs to another user (its new subscriptions are undone), else
 *      the client gets the ack, one snapshot per job, then the held frames in arrival order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "session_private.h"

#define MOD JW_SESSION_MOD
#define MARKER_GRACE_US (1000 * LWS_US_PER_MS) /* markers normally return within 1 ms */

/* Jobs of the request that the session does not hold yet. */
static size_t
count_new_jobs(const struct jw_session *s, const struct jw_cmd *cmd)
{
    size_t n = 0;
    for (size_t i = 0; i < cmd->njobs; i++)
        n += !jw_hub_is_subscribed(s->env->hub, &s->member, cmd->jobs[i]);
    return n;
}

static void
subscribe_jobs(struct jw_session *s, const struct jw_cmd *cmd, uint8_t *added)
{
    size_t max = (size_t)s->env->cfg->client_max_subscriptions;
    for (size_t i = 0; i < cmd->njobs; i++) {
        if (jw_hub_subscribe_job(s->env->hub, &s->member, cmd->jobs[i], cmd->kinds, max) != 0)
            continue;
        jw_metric_add(JW_M_SUBSCRIPTIONS, 1);
        if (added)
            added[i] = 1;
    }
}

/* Scopes need no snapshot: applied and acknowledged at once. */
static void
apply_scope(struct jw_session *s, const struct jw_cmd *cmd, unsigned kinds)
{
    struct jw_hub *hub = s->env->hub;
    if (cmd->scope == JW_SCOPE_USER) {
        jw_hub_set_user_scope(hub, &s->member, kinds);
    } else if (jw_hub_set_all_scope(hub, &s->member, kinds) < 0) {
        jw_session_send_error(s, cmd->id, JW_ERR_FORBIDDEN, "scope \"all\" needs the admin role");
        return;
    }
    jw_session_send_owned(s, jw_reply_ack(cmd));
}

static void
drop_held(struct jw_session_op *op, size_t job, int all)
{
    size_t kept = 0;
    for (size_t i = 0; i < op->nheld; i++) {
        struct jw_held_frame *h = &op->held[i];
        if (all || h->job == job) {
            op->held_bytes -= jw_frame_cost(h->frame);
            jw_frame_unref(h->frame);
        } else {
            op->held[kept++] = *h;
        }
    }
    op->nheld = kept;
}

void
jw_session_free_subscribe_op(struct jw_session_op *op)
{
    lws_sul_cancel(&op->grace);
    drop_held(op, 0, 1);
    free(op->held);
    if (op->snaps)
        for (size_t i = 0; i < op->cmd.njobs; i++)
            jw_snapshot_clear(&op->snaps[i]);
    free(op->snaps);
    free(op->marker_seen);
    free(op->added);
}

static int
owned_by_other(const struct jw_session *s, const struct jw_snapshot *snap)
{
    return !s->member.admin && snap->owner && strcmp(snap->owner, s->user_id) != 0;
}

static void
finish(struct jw_session *s, struct jw_session_op *op)
{
    const struct jw_cmd *cmd = &op->cmd;
    for (size_t i = 0; i < cmd->njobs; i++)
        op->refused += owned_by_other(s, &op->snaps[i]);
    if (op->refused) {
        for (size_t i = 0; i < cmd->njobs; i++)
            if (op->added[i] && jw_hub_unsubscribe_job(s->env->hub, &s->member, cmd->jobs[i]) == 0)
                jw_metric_add(JW_M_SUBSCRIPTIONS, -1);
        /* Names no owner and no job: the client learns only that it may not have them. */
        jw_session_send_error(s, cmd->id, JW_ERR_FORBIDDEN,
                              "a requested job belongs to another user");
        return;
    }
    subscribe_jobs(s, cmd, NULL); /* the kinds of jobs held before this request */
    jw_session_send_owned(s, jw_reply_ack(cmd));
    for (size_t i = 0; i < cmd->njobs; i++) {
        const struct jw_snapshot *snap = &op->snaps[i];
        int visible = s->member.admin || (snap->owner && strcmp(snap->owner, s->user_id) == 0);
        jw_metric_add(snap->unavailable ? JW_M_SNAPSHOTS_UNAVAILABLE : JW_M_SNAPSHOTS, 1);
        jw_session_send_owned(s, jw_snapshot_frame(cmd->jobs[i], snap, visible));
    }
    for (size_t i = 0; i < op->nheld; i++)
        if (jw_session_enqueue(s, op->held[i].frame) == 0)
            jw_metric_add(JW_M_DELIVERIES, 1);
}

static void on_grace(lws_sorted_usec_list_t *sul);

/* Ends the op once every snapshot is in and every marker is back (or cannot come). */
static void
maybe_finish(struct jw_session *s, struct jw_session_op *op)
{
    if (op->outstanding)
        return;
    int markers_missing = 0;
    for (size_t i = 0; i < op->cmd.njobs; i++)
        markers_missing += !op->marker_seen[i] && !op->snaps[i].unavailable;
    if (markers_missing && !op->grace_over && s->env->link_up) {
        if (!op->grace.list.owner) /* not scheduled yet */
            lws_sul_schedule(lws_get_context(s->wsi), 0, &op->grace, on_grace, MARKER_GRACE_US);
        return;
    }
    /* Without its marker, a job's held frames may predate the snapshot: sent all the same
     * (at-least-once), rather than risking a loss. */
    finish(s, op);
    jw_session_end_op(s);
}

static void
on_grace(lws_sorted_usec_list_t *sul)
{
    struct jw_session_op *op = lws_container_of(sul, struct jw_session_op, grace);
    op->grace_over = 1;
    maybe_finish(op->s, op);
}

static void
on_snapshot_reply(struct jw_redis_request *req)
{
    struct jw_session *s = jw_session_by_tag(req->ctx, req->tag);
    struct jw_session_op *op = s ? s->op : NULL;
    if (!op || op->kind != OP_SUBSCRIBE || (uint32_t)(req->arg >> 32) != op->serial)
        return; /* the client left, or this answers an op that is over */
    size_t job = (size_t)(req->arg & 0xffffffffu);
    jw_snapshot_parse(s->env->cfg, req, &op->snaps[job]);
    op->outstanding--;
    maybe_finish(s, op);
}

void
jw_session_handle_subscribe(struct jw_session *s, struct jw_cmd *cmd)
{
    struct jw_session_env *env = s->env;
    size_t max = (size_t)env->cfg->client_max_subscriptions;
    if (cmd->scope != JW_SCOPE_JOBS) {
        apply_scope(s, cmd, cmd->kinds);
        return;
    }
    if (jw_hub_subscription_count(&s->member) + count_new_jobs(s, cmd) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "at most %zu job subscriptions per connection", max);
        jw_session_send_error(s, cmd->id, JW_ERR_TOO_MANY_JOBS, msg);
        return;
    }
    struct jw_session_op *op = jw_session_op_new(s, OP_SUBSCRIBE);
    op->cmd = *cmd;
    memset(cmd, 0, sizeof(*cmd)); /* the op owns the job ids now */
    size_t n = op->cmd.njobs;
    op->serial = ++env->next_op_serial;
    op->snaps = jw_calloc(n, sizeof(*op->snaps));
    op->marker_seen = jw_calloc(n, 1);
    op->added = jw_calloc(n, 1);
    subscribe_jobs(s, &op->cmd, op->added);
    char marker[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(marker, sizeof(marker), "%sm:%08x:%x:%zu", env->marker_prefix, s->id, op->serial,
                 i);
        op->outstanding++;
        jw_snapshot_submit(env->upstream, env->cfg, op->cmd.jobs[i], marker, on_snapshot_reply, env,
                           s->id, ((uint64_t)op->serial << 32) | i);
    }
}

void
jw_session_handle_unsubscribe(struct jw_session *s, const struct jw_cmd *cmd)
{
    if (cmd->scope != JW_SCOPE_JOBS) {
        apply_scope(s, cmd, 0);
        return;
    }
    for (size_t i = 0; i < cmd->njobs; i++)
        if (jw_hub_unsubscribe_job(s->env->hub, &s->member, cmd->jobs[i]) == 0)
            jw_metric_add(JW_M_SUBSCRIPTIONS, -1);
    jw_session_send_owned(s, jw_reply_ack(cmd));
}

int
jw_session_hold_event(struct jw_session *s, const struct jw_event *ev)
{
    struct jw_session_op *op = s->op;
    if (!op || op->kind != OP_SUBSCRIBE)
        return 0;
    size_t job = 0;
    while (job < op->cmd.njobs && strcmp(op->cmd.jobs[job], ev->job_id) != 0)
        job++;
    if (job == op->cmd.njobs)
        return 0;
    if (op->held_bytes + jw_frame_cost(ev->frame) > s->env->cfg->client_queue_max_bytes) {
        jw_metric_add(JW_M_CLOSED_SLOW, 1);
        jw_session_close_later(s, JW_CLOSE_SLOW_CONSUMER, "slow consumer");
        return 1;
    }
    if (op->nheld == op->held_cap) {
        op->held_cap = op->held_cap ? op->held_cap * 2 : 8;
        op->held = jw_realloc(op->held, op->held_cap * sizeof(*op->held));
    }
    op->held[op->nheld++] = (struct jw_held_frame){jw_frame_ref(ev->frame), job};
    op->held_bytes += jw_frame_cost(ev->frame);
    return 1;
}

void
jw_session_marker(struct jw_session_env *env, const char *what)
{
    unsigned id, serial;
    size_t job;
    if (sscanf(what, "%8x:%x:%zu", &id, &serial, &job) != 3)
        return;
    struct jw_session *s = jw_session_by_tag(env, id);
    struct jw_session_op *op = s ? s->op : NULL;
    if (!op || op->kind != OP_SUBSCRIBE || op->serial != serial || job >= op->cmd.njobs)
        return;
    op->marker_seen[job] = 1;
    drop_held(op, job, 0); /* published before the snapshot was read: it contains them */
    maybe_finish(s, op);
}
