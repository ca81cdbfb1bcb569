/* libFuzzer target: Redis replies as bounded trees (src/redis/resp.c), and the cluster slot map
 * read from them (topology.c's jw_topo_read_slots, the one reply parser outside ops.c that is
 * reachable without a live connection).
 *
 * Input: byte 0 and 1 choose the budget (max_bytes 0..255 x 16, max_elements 0..63), byte 2
 * the chunk size the rest is fed in (1..256 bytes; as the socket would deliver it). Every reply
 * the reader produces is walked: only the root may be truncated, its budget counters equal what
 * the tree holds, and that is within the limits; every node points at its root; strings are
 * NUL-terminated. Then the reply is read as CLUSTER SLOTS: the map must point only at used
 * nodes with valid ports, jw_topo_complete must agree with the map, and a reply that is not an
 * array must change nothing. ASan checks leaks and that the shared placeholder is never freed.
 *
 * Not fuzzed here: how ops.c parses replies into job states (its parse functions are static and
 * reachable only through a live upstream); tests/unit/test_redis_ops.c covers them against a
 * real server. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../../src/redis/resp.h"
#include "../../src/redis/topology.h"
#include "jobwire/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_resp: %s (line %d)\n", #cond, __LINE__);                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void
walk(const struct jw_resp *n, const struct jw_resp *root, size_t *elements, size_t *bytes,
     int depth)
{
    CHECK(depth < 16);
    CHECK(n->_root == root);
    CHECK(n->type >= JW_RESP_STRING && n->type <= JW_RESP_ERROR);
    if (n != root) {
        CHECK(!n->truncated);
        (*elements)++;
    }
    if (n->str) {
        CHECK(n->str[n->len] == '\0');
        *bytes += n->len;
        CHECK(n->type != JW_RESP_ARRAY && n->type != JW_RESP_INTEGER && n->type != JW_RESP_NIL);
    }
    /* the helpers never read past what they are given */
    (void)jw_resp_is_str(n);
    (void)jw_resp_str_eq(n, "OK");
    (void)jw_resp_error_is(n, "MOVED");
    if (n->type == JW_RESP_ARRAY) {
        CHECK(n->elements == 0 || n->element != NULL);
        for (size_t i = 0; i < n->elements; i++)
            if (n->element[i])
                walk(n->element[i], root, elements, bytes, depth + 1);
    } else {
        CHECK(n->elements == 0 && n->element == NULL);
    }
}

static void
check_topology(struct jw_topo *t, const struct jw_resp *r)
{
    uint16_t before[8];
    for (int k = 0; k < 8; k++)
        before[k] = t->slots[k * 2047];
    int ranges = jw_topo_read_slots(t, r, "10.0.0.1");
    if (r->type != JW_RESP_ARRAY || r->truncated) {
        CHECK(ranges == -1);
        for (int k = 0; k < 8; k++)
            CHECK(t->slots[k * 2047] == before[k]); /* nothing changed */
        return;
    }
    CHECK(ranges >= 0 && (size_t)ranges <= r->elements);
    bool complete = true;
    for (unsigned s = 0; s < JW_CLUSTER_SLOTS; s++) {
        int n = jw_topo_slot_node(t, s);
        if (n < 0) {
            complete = false;
            continue;
        }
        CHECK((size_t)n < t->nnodes && t->nodes[n].used);
        CHECK(t->nodes[n].port >= 1 && t->nodes[n].port <= 65535);
        CHECK(t->nodes[n].host[0] != '\0');
    }
    CHECK(jw_topo_complete(t) == complete);
    CHECK(t->nnodes <= JW_TOPO_MAX_NODES);
    CHECK(t->nodes[0].used && t->nodes[0].seed); /* the seed stays */
    /* nodes no longer listed are forgotten, as commands.c does; their entries are reused */
    for (size_t i = 0; i < t->nnodes; i++)
        if (t->nodes[i].used && !t->nodes[i].listed && !t->nodes[i].seed)
            jw_topo_forget(t, (int)i);
    for (unsigned s = 0; s < JW_CLUSTER_SLOTS; s += 97) {
        int n = jw_topo_slot_node(t, s);
        CHECK(n < 0 || t->nodes[n].used);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    struct jw_resp_limits lim = {.max_bytes = (size_t)data[0] * 16, .max_elements = data[1] % 64};
    size_t chunk = 1 + data[2];
    data += 3;
    size -= 3;

    struct jw_config cfg;
    char err[128];
    jw_config_defaults(&cfg);
    if (jw_config_set(&cfg, "redis_cluster_nodes", "10.0.0.1:7000", err, sizeof err) != 0)
        abort();
    struct jw_topo t;
    jw_topo_init(&t, &cfg, &(struct jw_topo_hooks){0});

    struct redisReader *rd = jw_resp_reader_new(&lim);
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (redisReaderFeed(rd, (const char *)data + off, n) != REDIS_OK)
            break;
        off += n;
        bool broken = false;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
                broken = true; /* a protocol error: the link would reconnect */
                break;
            }
            if (!reply)
                break;
            struct jw_resp *r = reply;
            CHECK(r->_root == r);
            size_t elements = 0, bytes = 0;
            walk(r, r, &elements, &bytes, 0);
            CHECK(elements == r->_count && bytes == r->_bytes);
            CHECK(elements <= lim.max_elements);
            CHECK(bytes <= lim.max_bytes);
            check_topology(&t, r);
            jw_resp_free(r);
        }
        if (broken)
            break;
    }
    redisReaderFree(rd);
    jw_topo_free(&t);
    jw_config_free(&cfg);
    return 0;
}
