/* libFuzzer target: a client's outbound queue (src/gateway/outq.c), stateful, against a model.
 *
 * The input is a program: each byte picks an operation, some take the next byte as argument.
 *   push a frame of a pool of 12 (4 jobs x 2 progress frames that conflate, 4 that never do;
 *   sizes and sequencing vary), with or without `force`; pop; clear; let time pass; change the
 *   pressure thresholds (bytes, age) and the limits (bytes, frames).
 * The model is a plain list with the rules of outq.h: under pressure (queued bytes >= the
 * threshold, or non-empty for after_ms) a conflating frame replaces the newest older frame of its
 * job; the limits apply to the queue as it is after that; a refused push changes nothing; an
 * empty queue takes any frame; frames that do not conflate are never dropped. After every step
 * the queue's count, bytes, order, seq of each slot and the age origin must equal the model's,
 * the oldest slot must hold a frame, and every frame's refcount must equal 1 + its copies in
 * the queue. ASan checks leaks. No global state. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gateway/outq.h"
#include "jobwire/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define POOL 12
#define MAXM 4096

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_outq: step %zu: %s (line %d)\n", step, #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct mslot {
    struct jw_frame *f;
    uint64_t seq;
};

struct model {
    struct mslot v[MAXM];
    size_t n, bytes;
    uint64_t nonempty_since;
};

static void
model_remove(struct model *m, size_t i)
{
    m->bytes -= jw_frame_cost(m->v[i].f);
    memmove(m->v + i, m->v + i + 1, (m->n - i - 1) * sizeof m->v[0]);
    m->n--;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const jobs[] = {"A", "B", "job:C", "D"};
    struct jw_frame *pool[POOL];
    char text[300];
    for (int i = 0; i < POOL; i++) {
        size_t len = 1 + (size_t)(i * 37 % 250);
        memset(text, 'a' + i, len);
        pool[i] = jw_frame_new("event", text, len, i % 3 != 2, i < 8 ? jobs[i % 4] : NULL);
    }
    struct model *m = calloc(1, sizeof *m);
    struct jw_outq q;
    jw_outq_init(&q);
    size_t press = 1 << 30, max_bytes = 4096;
    uint64_t after = 0, now = 1000, seq = 0;
    uint32_t max_frames = 64;
    unsigned conflated = 0;
    size_t step = 0;
    for (size_t i = 0; i < size; i++, step++) {
        uint8_t op = data[i], arg = i + 1 < size ? data[i + 1] : 0;
        switch (op % 8) {
        case 0:
        case 1:
        case 2:
        case 3: { /* push */
            i++;
            struct jw_frame *f = pool[arg % POOL];
            bool force = (arg / POOL) % 8 == 0;
            if (m->n >= MAXM - 1)
                break; /* keep the model bounded */
            struct jw_outq_pressure p = {press, after, now};
            bool under = m->n && (m->bytes >= press || (after && now - m->nonempty_since >= after));
            size_t victim = SIZE_MAX;
            if (f->conflates && under)
                for (size_t k = m->n; k-- > 0 && victim == SIZE_MAX;)
                    if (m->v[k].f->conflates && strcmp(m->v[k].f->conflates, f->conflates) == 0)
                        victim = k;
            size_t n_after = m->n - (victim != SIZE_MAX);
            size_t bytes_after =
                m->bytes - (victim != SIZE_MAX ? jw_frame_cost(m->v[victim].f) : 0);
            size_t cost = jw_frame_cost(f);
            bool refuse =
                !force && n_after && (bytes_after + cost > max_bytes || n_after + 1 > max_frames);
            unsigned before = conflated;
            int rc = jw_outq_push(&q, f, ++seq, max_bytes, max_frames, force, &p, &conflated);
            CHECK(rc == (refuse ? -ENOBUFS : 0));
            CHECK(conflated - before == (!refuse && victim != SIZE_MAX ? 1u : 0u));
            if (refuse)
                break;
            if (m->n == 0) /* a replaced frame was waiting too: the age goes on */
                m->nonempty_since = now;
            if (victim != SIZE_MAX)
                model_remove(m, victim);
            m->v[m->n++] = (struct mslot){f, seq};
            m->bytes += cost;
            break;
        }
        case 4:
        case 5: { /* pop */
            const struct jw_outq_slot *s = jw_outq_peek(&q);
            if (!m->n) {
                CHECK(s == NULL);
                break;
            }
            CHECK(s != NULL && s->frame != NULL);
            CHECK(s->frame == m->v[0].f && s->seq == m->v[0].seq);
            jw_outq_pop(&q);
            model_remove(m, 0);
            break;
        }
        case 6: /* time passes, or the queue is dropped */
            i++;
            if (arg == 0) {
                jw_outq_clear(&q);
                m->n = m->bytes = 0;
            } else {
                now += (uint64_t)arg * 4;
            }
            break;
        default: /* thresholds and limits */
            i++;
            switch (arg % 4) {
            case 0:
                press = arg < 128 ? (size_t)arg * 8 : (size_t)1 << 30;
                break;
            case 1:
                after = arg < 128 ? (uint64_t)arg * 4 : 0;
                break;
            case 2:
                max_bytes = 64 + (size_t)arg * 16;
                break;
            default:
                max_frames = 1 + arg / 4;
            }
        }
        /* the queue equals the model */
        CHECK(q.count == m->n && q.bytes == m->bytes);
        if (m->n)
            CHECK(q.nonempty_since == m->nonempty_since);
        size_t k = 0;
        for (uint32_t u = 0; u < q.used; u++) {
            const struct jw_outq_slot *s = &q.ring[(q.head + u) & (q.cap - 1)];
            CHECK(u != 0 || s->frame != NULL); /* the oldest slot is never a hole */
            if (!s->frame)
                continue;
            CHECK(k < m->n && s->frame == m->v[k].f && s->seq == m->v[k].seq);
            k++;
        }
        CHECK(k == m->n);
        CHECK(q.used <= q.cap);
        for (int f = 0; f < POOL; f++) {
            uint32_t copies = 0;
            for (size_t c = 0; c < m->n; c++)
                copies += m->v[c].f == pool[f];
            CHECK(pool[f]->refs == 1 + copies);
        }
    }
    jw_outq_clear(&q);
    for (int f = 0; f < POOL; f++) {
        if (pool[f]->refs != 1) {
            fprintf(stderr, "fuzz_outq: frame %d keeps %u references after clear\n", f,
                    pool[f]->refs);
            abort();
        }
        jw_frame_unref(pool[f]);
    }
    free(m);
    return 0;
}
