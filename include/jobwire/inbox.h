/*
 * Multi-producer, single-consumer handoff from the upstream thread to the gateway thread: a
 * mutex-protected list that the consumer swaps out whole. Bounded in events, so a stalled
 * gateway cannot make the upstream thread grow memory without limit.
 */
#ifndef JOBWIRE_INBOX_H
#define JOBWIRE_INBOX_H

#include <stddef.h>

#include "jobwire/event.h"

struct jw_inbox;

struct jw_inbox *jw_inbox_new(size_t max_events);
/* Frees the inbox and any events still in it. */
void jw_inbox_free(struct jw_inbox *inbox);
/* Takes ownership of `ev` on success; returns -ENOSPC (ownership stays with the caller) when
 * the inbox is full. Returns 1 when the inbox was empty before, i.e. the consumer needs a wake. */
int jw_inbox_push(struct jw_inbox *inbox, struct jw_event *ev) __attribute__((warn_unused_result));
/* Removes and returns every queued event, oldest first, linked through ->next. */
struct jw_event *jw_inbox_take_all(struct jw_inbox *inbox);

#endif
