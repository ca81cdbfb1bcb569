/*
 * Helpers shared by jw-load and jw-ceiling; see bench_common.h for what each one guarantees.
 */
#include "bench_common.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

uint64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
bench_ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[256];
    size_t klen = strlen(key);
    if (klen + sizeof(guid) > sizeof(buf))
        return -1;
    memcpy(buf, key, klen);
    memcpy(buf + klen, guid, sizeof(guid) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, klen + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -1;
    /* 20 bytes encode to 28 base64 characters plus the NUL EVP_EncodeBlock writes. */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}

size_t
bench_hist_index(uint64_t us)
{
    if (us < 2 * BENCH_HIST_SUB)
        return (size_t)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned shift = msb - BENCH_HIST_SUB_BITS; /* us >> shift lies in [SUB, 2*SUB) */
    size_t idx = 2 * BENCH_HIST_SUB + (size_t)(shift - 1) * BENCH_HIST_SUB +
                 (size_t)((us >> shift) - BENCH_HIST_SUB);
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

uint64_t
bench_hist_value(size_t idx)
{
    if (idx < 2 * BENCH_HIST_SUB)
        return idx;
    size_t rel = idx - 2 * BENCH_HIST_SUB;
    unsigned shift = (unsigned)(rel / BENCH_HIST_SUB) + 1;
    uint64_t mant = BENCH_HIST_SUB + rel % BENCH_HIST_SUB;
    return ((mant + 1) << shift) - 1;
}

uint64_t
bench_hist_quantile(const uint64_t *hist, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)n);
    if (want >= n)
        want = n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return bench_hist_value(i);
    }
    return bench_hist_value(BENCH_HIST_BUCKETS - 1);
}

void
bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
