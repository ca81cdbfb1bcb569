/*
 * Pseudo-random numbers for jitter and identifiers that must differ between processes (the
 * event epoch, the marker instance), never for secrets.
 */
#ifndef JOBWIRE_RAND_H
#define JOBWIRE_RAND_H

#include <stdint.h>

/* splitmix64: the next number of `state` (jitter, not cryptography). */
uint64_t jw_random_next(uint64_t *state);
/* A seed from getrandom(), falling back to the clock and the pid. */
uint64_t jw_random_seed(void);
/* Uniform in [0, bound); 0 when bound is 0. */
uint64_t jw_random_below(uint64_t *state, uint64_t bound);

#endif
