/* libFuzzer target: the client protocol parser (jw_cmd_parse) and the replies built from its
 * result. The input is one client text message. Oracle: every reply frame is UTF-8 and one JSON
 * text (json_ref.h's validator), a parsed subscribe names only valid job ids, and a refused
 * message has an error code. No global state. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gateway/protocol.h"
#include "jobwire/utf8.h"
#include "json_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_frame(struct jw_frame *f)
{
    if (!jw_utf8_valid(f->text, f->len) || ref_json(f->text, f->len, NULL, 0, 1000) != 1 ||
        f->sequenced) {
        fprintf(stderr, "fuzz_protocol: reply is not one JSON text: %s\n", f->text);
        abort();
    }
    jw_frame_unref(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so ASan sees any read past the message (it is not NUL-terminated). */
    char *text = malloc(size ? size : 1);
    struct jw_cmd cmd;
    struct jw_cmd_error err;

    memcpy(text, data, size);
    if (jw_cmd_parse(text, size, 64, &cmd, &err) == 0) {
        for (size_t i = 0; i < cmd.njobs; i++)
            if (!jw_id_valid(cmd.jobs[i], strlen(cmd.jobs[i])))
                abort();
        if (cmd.njobs > 64 || (cmd.kinds & ~JW_KINDS_ALL) || !cmd.kinds)
            abort();
        check_frame(jw_reply_ack(&cmd, (int)(size % 3) - 1, (long)size - 1));
        check_frame(jw_reply_pong(cmd.id));
        jw_cmd_clear(&cmd);
    } else {
        if (!err.code || !err.message[0])
            abort();
        check_frame(jw_reply_error(err.id, err.code, err.message));
    }
    free(text);
    return 0;
}
