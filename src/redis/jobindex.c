/*
 * The job index: the publishers keep no list of a user's jobs, so jobwire keeps one in Redis
 * from the events it sees, for the snapshots that follow a scope subscribe (docs/REDIS.md,
 * "The job index"). Per user a sorted set of job ids scored by the time they were last indexed
 * (job_index_user_key), and one for every job (job_index_all_key, for admins' scope "all");
 * entries older than job_index_max_age_s and beyond job_index_max_jobs are trimmed, and the key
 * expires with its newest entry. Every replica writes it, and a restart loses nothing.
 *
 * Cost: one EVAL per index and job, at most once per job_index_refresh_s per replica — never
 * one per event. What was written lately is remembered in a bounded LRU (MAX_REMEMBERED jobs);
 * a job forgotten early only costs one more write. Writes wait up to BATCH_MS to go out
 * together (one write and one reply wake-up for many new jobs), and never behind a read of the
 * index: jw_jobindex_flush() sends them before it, on the same connections, so a read sees every
 * job noted before it.
 *
 * Redis thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "jobwire/alloc.h"
#include "jobwire/clock.h"
#include "jobwire/dict.h"
#include "jobwire/metrics.h"
#include "upstream_private.h"

#define MAX_REMEMBERED 65536
#define BATCH_MS 50

/* KEYS[1] index; ARGV now_ms, job, max_age_ms, max_jobs */
static const char SCRIPT[] = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) "
                             "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3]) "
                             "redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1)) "
                             "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
                             "return 1";

struct indexed_job {
    struct indexed_job *prev, *next; /* LRU: most recent first */
    uint64_t at_ms;                  /* last written; 0 = the write failed, write again */
    bool user_written;               /* the user's index has it (an event named the user) */
    char job[];
};

char *
jw_key_expand(const char *template, const char *name, const char *value)
{
    const char *at = strstr(template, name);
    if (!at)
        return jw_strdup(template);
    size_t nlen = strlen(name), vlen = strlen(value), tlen = strlen(template);
    size_t head = (size_t)(at - template);
    char *key = jw_malloc(tlen - nlen + vlen + 1);
    memcpy(key, template, head);
    memcpy(key + head, value, vlen);
    memcpy(key + head + vlen, at + nlen, tlen - head - nlen + 1);
    return key;
}

static void
lru_unlink(struct jw_upstream *up, struct indexed_job *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        up->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        up->lru_tail = e->prev;
}

static void
lru_push(struct jw_upstream *up, struct indexed_job *e)
{
    e->prev = NULL;
    e->next = up->lru_head;
    if (up->lru_head)
        up->lru_head->prev = e;
    up->lru_head = e;
    if (!up->lru_tail)
        up->lru_tail = e;
}

/* What a write remembers until its reply. */
struct index_write {
    struct jw_upstream *up;
    char job[];
};

static void
written(struct jw_request *req, int status)
{
    struct index_write *w = req->ctx;
    bool ok = status == 0 && req->reply[0] && req->reply[0]->type != JW_RESP_ERROR;
    jw_metric_add(ok ? JW_M_JOB_INDEX_WRITES : JW_M_JOB_INDEX_ERRORS, 1);
    if (!ok) { /* write it again with the job's next event (if it is still remembered) */
        struct indexed_job *e = jw_dict_get(w->up->indexed, w->job);
        if (e)
            e->at_ms = 0;
    }
    free(w);
}

static void
on_batch_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    jw_jobindex_flush(arg);
}

static void
write_index(struct jw_upstream *up, const char *key, const char *job)
{
    const struct jw_config *cfg = up->cfg;
    char now[24], age[24], max[16];
    snprintf(now, sizeof now, "%lld", (long long)jw_wall_ms());
    snprintf(age, sizeof age, "%llu", (unsigned long long)cfg->job_index_max_age_s * 1000u);
    snprintf(max, sizeof max, "%d", cfg->job_index_max_jobs);
    size_t n = strlen(job) + 1;
    struct index_write *w = jw_malloc(sizeof *w + n);
    w->up = up;
    memcpy(w->job, job, n);
    struct jw_request *req = jw_request_new((int)jw_key_slot(key, strlen(key)), written, w);
    const char *argv[] = {"EVAL", SCRIPT, "1", key, now, job, age, max};
    jw_request_add(req, 8, argv, NULL);
    /* Held until the batch goes; `next` is free until jw_commands_send. */
    jw_request_append(&up->index_head, &up->index_tail, req);
    if (!up->index_batch_ev)
        up->index_batch_ev = evtimer_new(up->base, on_batch_due, up);
    static const struct timeval batch = {0, BATCH_MS * 1000};
    if (!evtimer_pending(up->index_batch_ev, NULL))
        evtimer_add(up->index_batch_ev, &batch);
}

void
jw_jobindex_flush(struct jw_upstream *up)
{
    struct jw_request *req = up->index_head;
    up->index_head = up->index_tail = NULL;
    if (up->index_batch_ev)
        evtimer_del(up->index_batch_ev);
    while (req) {
        struct jw_request *next = req->next;
        req->next = NULL;
        jw_commands_send(up, req);
        req = next;
    }
}

void
jw_jobindex_note(struct jw_upstream *up, const struct jw_event *ev)
{
    const struct jw_config *cfg = up->cfg;
    if (!cfg->job_index_write || !ev->job_id)
        return;
    uint64_t now = jw_now_ms();
    struct indexed_job *e = jw_dict_get(up->indexed, ev->job_id);
    bool due = !e || !e->at_ms || now - e->at_ms >= (uint64_t)cfg->job_index_refresh_s * 1000u;
    /* A job first seen without a user id goes into the user's index with the first event
     * that names one, not a refresh period later. */
    bool user_due = ev->user_id && (due || !e->user_written);
    if (!due && !user_due)
        return;
    if (!e) {
        if (up->nindexed == MAX_REMEMBERED) {
            struct indexed_job *old = up->lru_tail;
            lru_unlink(up, old);
            jw_dict_del(up->indexed, old->job);
            free(old);
            up->nindexed--;
        }
        size_t n = strlen(ev->job_id) + 1;
        e = jw_malloc(sizeof *e + n);
        e->user_written = false;
        memcpy(e->job, ev->job_id, n);
        jw_dict_set(up->indexed, e->job, e);
        up->nindexed++;
    } else {
        lru_unlink(up, e);
    }
    lru_push(up, e);
    if (user_due) {
        char *key = jw_key_expand(cfg->job_index_user_key, "{userId}", ev->user_id);
        write_index(up, key, ev->job_id);
        free(key);
        e->user_written = true;
    }
    if (due) {
        e->at_ms = now;
        write_index(up, cfg->job_index_all_key, ev->job_id);
    }
}

void
jw_jobindex_init(struct jw_upstream *up)
{
    up->indexed = jw_dict_new();
}

void
jw_jobindex_free(struct jw_upstream *up)
{
    while (up->index_head) { /* never sent: nobody waits for them */
        struct jw_request *req = up->index_head;
        up->index_head = req->next;
        free(req->ctx);
        jw_request_free(req);
    }
    up->index_tail = NULL;
    if (up->index_batch_ev)
        event_free(up->index_batch_ev);
    up->index_batch_ev = NULL;
    while (up->lru_head) {
        struct indexed_job *e = up->lru_head;
        up->lru_head = e->next;
        free(e);
    }
    up->lru_tail = NULL;
    up->nindexed = 0;
    jw_dict_free(up->indexed);
    up->indexed = NULL;
}
