/*
 * String-keyed hash table with chaining and incremental-free resizing. Keys come from clients,
 * so buckets are chosen by SipHash-1-3 under a per-process random key (hash flooding).
 * The table copies keys; values are borrowed pointers.
 */
#ifndef JOBWIRE_DICT_H
#define JOBWIRE_DICT_H

#include <stddef.h>
#include <stdint.h>

struct jw_dict;

struct jw_dict *jw_dict_new(void);
void jw_dict_free(struct jw_dict *d);
void *jw_dict_get(const struct jw_dict *d, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *jw_dict_set(struct jw_dict *d, const char *key, void *value);
/* Removes; returns the removed value or NULL. */
void *jw_dict_del(struct jw_dict *d, const char *key);
size_t jw_dict_size(const struct jw_dict *d);
/* Calls fn for every entry, in no particular order; fn must not change the table. */
void jw_dict_foreach(const struct jw_dict *d, void (*fn)(void *ctx, const char *key, void *value),
                     void *ctx);

/* The table's keyed hash of a string: the same in every thread of one process. */
uint64_t jw_hash_string(const char *s);
/* SipHash-1-3 (as redis and CPython use for hash tables). */
uint64_t jw_siphash(const void *data, size_t len, const uint8_t key[16]);
/* The same core with any round counts; (2, 4) reproduces the reference vectors of the paper. */
uint64_t jw_siphash_rounds(const void *data, size_t len, const uint8_t key[16], int c_rounds,
                           int d_rounds);

#endif
