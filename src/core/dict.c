/*
 * String-keyed hash table (see dict.h): power-of-two bucket array with chaining, doubled when
 * the load factor passes 1 and halved when it falls under 1/8. Buckets are picked by
 * SipHash-1-3 under a key drawn from the OS once per process, so ids chosen by clients cannot
 * force collisions.
 */
#include "jobwire/dict.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "jobwire/alloc.h"

struct entry {
    struct entry *next;
    void *value;
    uint64_t hash;
    char key[];
};

struct jw_dict {
    struct entry **buckets;
    size_t mask; /* bucket count - 1 */
    size_t size;
};

#define MIN_BUCKETS 8

static uint8_t hash_key[16];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void
init_hash_key(void)
{
    if (getrandom(hash_key, sizeof(hash_key), 0) != (ssize_t)sizeof(hash_key)) {
        /* No entropy source: fall back to a key that still differs per process. */
        uint64_t mix = (uint64_t)(uintptr_t)&mix ^ (uint64_t)getpid();
        memcpy(hash_key, &mix, sizeof(mix));
    }
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t
load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t
jw_siphash_rounds(const void *data, size_t len, const uint8_t key[16], int c_rounds, int d_rounds)
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        for (int r = 0; r < c_rounds; r++)
            SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= last;
    for (int r = 0; r < c_rounds; r++)
        SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < d_rounds; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
jw_siphash(const void *data, size_t len, const uint8_t key[16])
{
    return jw_siphash_rounds(data, len, key, 1, 3);
}

uint64_t
jw_hash_string(const char *key)
{
    pthread_once(&hash_key_once, init_hash_key);
    return jw_siphash(key, strlen(key), hash_key);
}

struct jw_dict *
jw_dict_new(void)
{
    struct jw_dict *d = jw_calloc(1, sizeof(*d));
    d->buckets = jw_calloc(MIN_BUCKETS, sizeof(*d->buckets));
    d->mask = MIN_BUCKETS - 1;
    return d;
}

void
jw_dict_free(struct jw_dict *d)
{
    if (!d)
        return;
    for (size_t i = 0; i <= d->mask; i++) {
        struct entry *e = d->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(d->buckets);
    free(d);
}

static void
rehash(struct jw_dict *d, size_t nbuckets)
{
    struct entry **fresh = jw_calloc(nbuckets, sizeof(*fresh));
    for (size_t i = 0; i <= d->mask; i++) {
        struct entry *e = d->buckets[i];
        while (e) {
            struct entry *next = e->next;
            size_t b = e->hash & (nbuckets - 1);
            e->next = fresh[b];
            fresh[b] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = fresh;
    d->mask = nbuckets - 1;
}

/* The link that points at the entry for `key`, or at the NULL that ends its chain. */
static struct entry **
find_link(const struct jw_dict *d, const char *key, uint64_t hash)
{
    struct entry **link = &d->buckets[hash & d->mask];
    while (*link && ((*link)->hash != hash || strcmp((*link)->key, key) != 0))
        link = &(*link)->next;
    return link;
}

void *
jw_dict_get(const struct jw_dict *d, const char *key)
{
    struct entry *e = *find_link(d, key, jw_hash_string(key));
    return e ? e->value : NULL;
}

void *
jw_dict_set(struct jw_dict *d, const char *key, void *value)
{
    uint64_t hash = jw_hash_string(key);
    struct entry **link = find_link(d, key, hash);
    if (*link) {
        void *old = (*link)->value;
        (*link)->value = value;
        return old;
    }
    size_t klen = strlen(key);
    struct entry *e = jw_malloc(sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen + 1);
    e->hash = hash;
    e->value = value;
    e->next = NULL;
    *link = e;
    if (++d->size > d->mask + 1)
        rehash(d, (d->mask + 1) * 2);
    return NULL;
}

void *
jw_dict_del(struct jw_dict *d, const char *key)
{
    struct entry **link = find_link(d, key, jw_hash_string(key));
    struct entry *e = *link;
    if (!e)
        return NULL;
    void *value = e->value;
    *link = e->next;
    free(e);
    if (--d->size < (d->mask + 1) / 8 && d->mask + 1 > MIN_BUCKETS)
        rehash(d, (d->mask + 1) / 2);
    return value;
}

size_t
jw_dict_size(const struct jw_dict *d)
{
    return d->size;
}

void
jw_dict_foreach(const struct jw_dict *d, void (*fn)(void *ctx, const char *key, void *value),
                void *ctx)
{
    for (size_t i = 0; i <= d->mask; i++)
        for (const struct entry *e = d->buckets[i]; e; e = e->next)
            fn(ctx, e->key, e->value);
}
