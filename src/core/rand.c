/*
 * splitmix64 and seeding (see rand.h).
 */
#include "jobwire/rand.h"

#include <sys/random.h>
#include <unistd.h>

#include "jobwire/clock.h"

/* splitmix64 (Steele, Lea, Flood 2014): passes BigCrush, any seed (0 included) is fine. */
uint64_t
jw_random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t
jw_random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed)
        return seed;
    return jw_now_ns() ^ ((uint64_t)getpid() << 32);
}

uint64_t
jw_random_below(uint64_t *state, uint64_t bound)
{
    /* The modulo bias is below 2^-32 for every bound jobwire uses (delays in ms). */
    return bound ? jw_random_next(state) % bound : 0;
}
