/* libFuzzer target: the Redis event parser (jw_event_parse). The first byte splits the input:
 * channel = the next data[0] bytes (bounded by the input), payload = the rest. No global state. */
#include <stddef.h>
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct jw_event_rules rules = {.prefix = "ai:job:", .max_payload_bytes = 4096};
    struct jw_event *ev = NULL;
    size_t clen, plen;
    char *channel, *payload;

    if (size < 1)
        return 0;
    clen = data[0] < size - 1 ? data[0] : size - 1;
    plen = size - 1 - clen;
    /* exact-size copies: neither part is NUL-terminated on the wire */
    channel = malloc(clen ? clen : 1);
    payload = malloc(plen ? plen : 1);
    memcpy(channel, data + 1, clen);
    memcpy(payload, data + 1 + clen, plen);
    if (jw_event_parse(&rules, channel, clen, payload, plen, &ev) == JW_EVENT_OK) {
        /* jobwire's own channel (markers, probes) yields an event without a frame */
        if (ev->kind == JW_KIND_INTERNAL)
            assert(ev->frame == NULL && ev->user_id == NULL);
        else
            (void)jw_frame_stamp(ev->frame, 1);
        jw_event_free(ev);
    }
    free(channel);
    free(payload);
    return 0;
}
