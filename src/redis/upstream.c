/*
 * The Redis thread (redis.h): its lifecycle, the submission queue through which other threads
 * hand it operations, and the hooks through which it hands back events, states and answers.
 *
 * Threads: the loop thread owns every connection and queue of src/redis. Other threads cross
 * only through (a) event_active() on `stop_ev` and `resume_ev`, (b) jw_upstream_submit(), which
 * appends to the `mu`-protected submission queue and, on empty → non-empty, activates
 * `submit_ev` (libevent makes both safe because evthread_use_pthreads() ran before the base was
 * created), and (c) the atomics behind jw_upstream_state() and jw_upstream_commands_ready().
 * `accepting` (under `mu`) is true from start until on_stop has run: an op submitted outside
 * that window comes back at once, on the caller's thread, with -ECANCELED; one submitted inside
 * it is taken by the loop, so each op comes back exactly once.
 */
#include "jobwire/redis.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "tls.h"
#include "upstream_private.h"

#define MOD "upstream"

static const char *const R_STOPPED = "stopped";
static const char *const R_SWITCH = "master switched";

const char *
jw_link_state_name(enum jw_link_state state)
{
    switch (state) {
    case JW_LINK_IDLE:
        return "idle";
    case JW_LINK_CONNECTING:
        return "connecting";
    case JW_LINK_AUTHENTICATING:
        return "authenticating";
    case JW_LINK_SUBSCRIBING:
        return "subscribing";
    case JW_LINK_SUBSCRIBED:
        return "subscribed";
    case JW_LINK_BACKOFF:
        return "backoff";
    case JW_LINK_READY:
        return "ready";
    case JW_LINK_STOPPED:
        return "stopped";
    }
    return "unknown";
}

/* ---- ops ------------------------------------------------------------------------------ */

struct jw_redis_op *
jw_redis_op_new(enum jw_op_kind kind, const char *key, const char *channel, jw_redis_op_fn done,
                void *ctx, uint64_t tag, uint64_t arg)
{
    struct jw_redis_op *op = jw_calloc(1, sizeof *op);
    op->msg.type = JW_MSG_REDIS_OP;
    op->kind = kind;
    op->done = done;
    op->ctx = ctx;
    op->tag = tag;
    op->arg = arg;
    op->key = key ? jw_strdup(key) : NULL;
    op->channel = channel ? jw_strdup(channel) : NULL;
    return op;
}

void
jw_redis_op_free(struct jw_redis_op *op)
{
    if (!op)
        return;
    switch (op->kind) {
    case JW_OP_SNAPSHOT:
    case JW_OP_READ_STATE:
        free(op->r.state.owner);
        free(op->r.state.json);
        break;
    case JW_OP_RECENT_JOBS:
        for (size_t i = 0; i < op->r.jobs.n; i++)
            free(op->r.jobs.ids[i]);
        free(op->r.jobs.ids);
        break;
    case JW_OP_REVOKED:
    case JW_OP_PROBE:
        break;
    }
    free(op->key);
    free(op->channel);
    free(op);
}

void
jw_redis_op_complete(struct jw_redis_op *op)
{
    if (op->done)
        op->done(op);
    jw_redis_op_free(op);
}

void
jw_upstream_finish_op(struct jw_upstream *up, struct jw_redis_op *op, int status)
{
    op->status = status;
    if (up->hooks.on_op)
        up->hooks.on_op(up->hooks.ctx, op); /* ownership passes */
    else
        jw_redis_op_free(op);
}

static void
finish_queue(struct jw_upstream *up, struct jw_redis_op *head, int status)
{
    while (head) {
        struct jw_redis_op *next = (struct jw_redis_op *)head->msg.next;
        jw_upstream_finish_op(up, head, status);
        head = next;
    }
}

/* ---- state ------------------------------------------------------------------------------ */

enum jw_link_state
jw_upstream_state(const struct jw_upstream *up)
{
    return jw_link_state(&up->sub);
}

bool
jw_upstream_commands_ready(const struct jw_upstream *up)
{
    return atomic_load(&((struct jw_upstream *)up)->commands_ready);
}

void
jw_upstream_notify(struct jw_upstream *up, const char *reason)
{
    if (up->hooks.on_state)
        up->hooks.on_state(up->hooks.ctx, jw_link_state(&up->sub), atomic_load(&up->commands_ready),
                           reason);
}

/* The topology changed: cluster → the command connections follow the slot map; sentinel → the
 * master moved, so both data connections go there at once, whatever backoff they were in. */
static void
on_topology(void *ctx)
{
    struct jw_upstream *up = ctx;
    if (up->topo.mode == JW_TOPO_SENTINEL) {
        char detail[300];
        snprintf(detail, sizeof detail, "new master %s:%d", up->topo.master_host,
                 up->topo.master_port);
        jw_link_reconnect_now(&up->sub, R_SWITCH, detail);
    }
    jw_commands_topology_changed(up);
}

/* ---- submission ---------------------------------------------------------------------------- */

void
jw_upstream_submit(struct jw_upstream *up, struct jw_redis_op *op)
{
    op->msg.next = NULL;
    pthread_mutex_lock(&up->mu);
    if (!up->accepting) {
        pthread_mutex_unlock(&up->mu);
        jw_upstream_finish_op(up, op, -ECANCELED); /* on this thread, as redis.h says */
        return;
    }
    /* Only the first of a batch wakes the loop; under mu, so on_stop (which takes mu) cannot run
     * between the append and the wake. */
    bool was_empty = up->q_tail == NULL;
    if (was_empty)
        up->q_head = op;
    else
        up->q_tail->msg.next = &op->msg;
    up->q_tail = op;
    if (was_empty)
        event_active(up->submit_ev, EV_READ, 0);
    pthread_mutex_unlock(&up->mu);
}

static struct jw_redis_op *
take_queue(struct jw_upstream *up)
{
    pthread_mutex_lock(&up->mu);
    struct jw_redis_op *head = up->q_head;
    up->q_head = up->q_tail = NULL;
    pthread_mutex_unlock(&up->mu);
    return head;
}

static void
on_submit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct jw_upstream *up = arg;
    struct jw_redis_op *op = take_queue(up);
    while (op) {
        struct jw_redis_op *next = (struct jw_redis_op *)op->msg.next;
        jw_ops_submit(up, op);
        op = next;
    }
}

void
jw_upstream_resume(struct jw_upstream *up)
{
    if (up->resume_ev)
        event_active(up->resume_ev, EV_READ, 0);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct jw_upstream *up = arg;
    jw_link_resume(&up->sub);
}

/* ---- thread ------------------------------------------------------------------------------- */

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct jw_upstream *up = arg;
    pthread_mutex_lock(&up->mu);
    up->accepting = false;
    pthread_mutex_unlock(&up->mu);
    struct jw_redis_op *queued = take_queue(up);

    jw_link_stop(&up->sub, R_STOPPED);
    jw_commands_stop(up); /* in flight: -ECANCELED */
    jw_topo_stop(&up->topo);
    finish_queue(up, queued, -ECANCELED);
    event_base_loopbreak(up->base);
}

static void *
thread_main(void *arg)
{
    struct jw_upstream *up = arg;
    jw_link_connect(&up->sub);
    jw_commands_start(up);
    jw_topo_start(&up->topo);
    /* NO_EXIT_ON_EMPTY: only on_stop ends the loop, whatever is pending. */
    event_base_loop(up->base, EVLOOP_NO_EXIT_ON_EMPTY);
    jw_link_shutdown(&up->sub);
    jw_commands_shutdown(up);
    jw_topo_shutdown(&up->topo);
    return NULL;
}

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void
init_evthread(void)
{
    if (evthread_use_pthreads() != 0) {
        jw_error(MOD, "evthread_use_pthreads failed");
        abort();
    }
}

struct jw_upstream *
jw_upstream_new(const struct jw_config *cfg, const struct jw_upstream_hooks *hooks)
{
    pthread_once(&evthread_once, init_evthread);
    struct jw_upstream *up = jw_calloc(1, sizeof *up);
    up->cfg = cfg;
    if (hooks)
        up->hooks = *hooks;
    atomic_init(&up->commands_ready, false);
    jw_subscriber_init(up);
    jw_commands_init(up);
    jw_jobindex_init(up);
    jw_topo_init(&up->topo, cfg, &(struct jw_topo_hooks){.changed = on_topology, .ctx = up});
    pthread_mutex_init(&up->mu, NULL);
    return up;
}

int
jw_upstream_check(const struct jw_config *cfg, char *err, size_t errlen)
{
    if (!cfg->redis_tls)
        return 0;
    struct ssl_ctx_st *tls = jw_tls_ctx_new(cfg, err, errlen);
    if (!tls)
        return -1;
    jw_tls_ctx_free(tls);
    return 0;
}

int
jw_upstream_start(struct jw_upstream *up)
{
    if (up->started)
        return -EALREADY;
    if (up->cfg->redis_npatterns == 0 || up->cfg->redis_npatterns > JW_CONFIG_MAX_PATTERNS)
        return -EINVAL;
    if (up->cfg->redis_tls && !up->tls) {
        char err[512];
        up->tls = jw_tls_ctx_new(up->cfg, err, sizeof err);
        if (!up->tls) {
            jw_error(MOD, "TLS to redis: %s", err);
            return -EINVAL;
        }
        jw_link_set_tls(&up->sub, up->tls);
    }
    up->base = event_base_new();
    if (!up->base)
        return -ENOMEM;
    up->stop_ev = event_new(up->base, -1, 0, on_stop, up);
    up->submit_ev = event_new(up->base, -1, 0, on_submit, up);
    up->resume_ev = event_new(up->base, -1, 0, on_resume, up);
    if (!up->stop_ev || !up->submit_ev || !up->resume_ev)
        return -ENOMEM; /* the events are freed by jw_upstream_free */
    int rc = jw_link_attach(&up->sub, up->base);
    if (rc == 0)
        rc = jw_commands_attach(up);
    if (rc == 0)
        rc = jw_topo_attach(&up->topo, up->base, up->tls);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&up->mu);
    up->accepting = true;
    pthread_mutex_unlock(&up->mu);
    rc = pthread_create(&up->thread, NULL, thread_main, up);
    if (rc != 0) {
        pthread_mutex_lock(&up->mu);
        up->accepting = false;
        pthread_mutex_unlock(&up->mu);
        finish_queue(up, take_queue(up), -ECANCELED);
        return -rc;
    }
    up->started = true;
    return 0;
}

void
jw_upstream_stop(struct jw_upstream *up)
{
    if (!up->started || up->joined) {
        /* Nothing runs and nothing is pending: submissions are refused at once. */
        if (jw_link_state(&up->sub) != JW_LINK_STOPPED)
            jw_link_set_state(&up->sub, JW_LINK_STOPPED, R_STOPPED);
        if (jw_link_state(&up->cmd.link) != JW_LINK_STOPPED)
            jw_link_set_state(&up->cmd.link, JW_LINK_STOPPED, R_STOPPED);
        return;
    }
    event_active(up->stop_ev, EV_READ, 0); /* thread-safe: the base has evthread locks */
    pthread_join(up->thread, NULL);
    up->joined = true;
}

void
jw_upstream_free(struct jw_upstream *up)
{
    if (!up)
        return;
    jw_upstream_stop(up);
    struct event *evs[] = {up->stop_ev, up->submit_ev, up->resume_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    jw_subscriber_free(up);
    jw_commands_free(up);
    jw_jobindex_free(up);
    jw_topo_free(&up->topo);
    jw_tls_ctx_free(up->tls);
    if (up->base)
        event_base_free(up->base);
    pthread_mutex_destroy(&up->mu);
    free(up);
}
