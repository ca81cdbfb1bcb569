/*
 * Exponential backoff with full jitter (backoff.h). The ceiling of attempt n is
 * min(max, initial * multiplier^n), computed by repeated multiplication that stops as soon as
 * the cap is reached, so a huge attempt count can neither overflow nor loop long. The delay is
 * drawn uniformly from [0, ceiling] with splitmix64, a tiny PRNG whose whole state is one
 * uint64_t seeded by the caller: equal seeds give equal sequences, which the tests rely on.
 */
#include "backoff.h"

#include "jobwire/rand.h"

void
jw_backoff_init(struct jw_backoff *b, uint32_t initial_ms, uint32_t max_ms, double multiplier,
                uint64_t seed)
{
    b->initial_ms = initial_ms;
    b->max_ms = max_ms < initial_ms ? initial_ms : max_ms;
    /* `!(x >= 1.0)` also catches NaN. */
    b->multiplier = !(multiplier >= 1.0) ? 1.0 : multiplier;
    b->attempt = 0;
    b->rng_state = seed;
}

uint32_t
jw_backoff_ceiling(const struct jw_backoff *b)
{
    double ceiling = b->initial_ms;
    /* Invariant: ceiling < max_ms inside the loop, so it stays finite; with multiplier > 1 the
     * loop runs at most log_multiplier(max/initial) times whatever `attempt` is. */
    for (uint32_t i = 0; i < b->attempt && ceiling < b->max_ms; i++) {
        if (b->multiplier <= 1.0)
            break;
        ceiling *= b->multiplier;
    }
    if (ceiling >= b->max_ms)
        return b->max_ms;
    return (uint32_t)ceiling;
}

uint32_t
jw_backoff_next(struct jw_backoff *b)
{
    uint64_t ceiling = jw_backoff_ceiling(b);
    if (b->attempt < UINT32_MAX)
        b->attempt++;
    /* Modulo bias is at most 2^32 / 2^64: negligible. */
    return (uint32_t)(jw_random_next(&b->rng_state) % (ceiling + 1));
}

void
jw_backoff_reset(struct jw_backoff *b)
{
    b->attempt = 0;
}
