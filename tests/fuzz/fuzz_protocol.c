/* libFuzzer target: the client protocol parser (jw_cmd_parse) and the ack built from its result.
 * The input is one client text message. No global state. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gateway/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the message (it is not NUL-terminated). */
    char *text = malloc(size ? size : 1);
    struct jw_cmd cmd;
    struct jw_cmd_error err;

    memcpy(text, data, size);
    if (jw_cmd_parse(text, size, 64, &cmd, &err) == 0) {
        struct jw_frame *ack = jw_reply_ack(&cmd);
        jw_frame_unref(ack);
        jw_cmd_clear(&cmd);
    } else {
        struct jw_frame *e = jw_reply_error(err.id, err.code, err.message);
        jw_frame_unref(e);
    }
    free(text);
    return 0;
}
