/*
 * Refcounted, immutable outgoing frames (see frame.h).
 */
#include "jobwire/frame.h"

#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"

struct jw_frame *
jw_frame_new(const char *type, const char *text, size_t len, int sequenced, const char *conflates)
{
    size_t clen = conflates ? strlen(conflates) + 1 : 0;
    struct jw_frame *f = jw_malloc(sizeof(*f) + len + 1 + clen);
    f->refs = 1;
    f->sequenced = sequenced ? 1 : 0;
    f->type = type;
    f->len = len;
    f->event_id = 0;
    f->origin_ns = 0;
    memcpy(f->text, text, len);
    f->text[len] = '\0';
    f->conflates = NULL;
    if (conflates) {
        memcpy(f->text + len + 1, conflates, clen);
        f->conflates = f->text + len + 1;
    }
    return f;
}

void
jw_frame_unref(struct jw_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}
