/*
 * The resume window: the most recent events routed by this process, in entry-number order,
 * bounded in count (resume_window_events) and bytes (resume_window_bytes). A client that comes
 * back with the id of the last event it saw gets exactly the events after it that it may see,
 * when they are all still here; otherwise it recovers by snapshots (docs/PROTOCOL.md, "Resume").
 *
 * Gateway thread only. The window holds one reference on each event.
 */
#ifndef JOBWIRE_GATEWAY_WINDOW_H
#define JOBWIRE_GATEWAY_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobwire/event.h"

struct jw_window;

struct jw_window *jw_window_new(size_t max_events, size_t max_bytes);
void jw_window_free(struct jw_window *w);
/* Records a routed job event (also when the window is off: the position moves). */
void jw_window_add(struct jw_window *w, struct jw_event *ev);
/* The entry number of the last event routed; 0 before the first. */
uint64_t jw_window_position(const struct jw_window *w);
/* The subscription was lost: events published meanwhile never reach this process, so nothing
 * before now can be resumed from. */
void jw_window_break(struct jw_window *w);
/* true when every event routed after `after` up to now is still held. */
bool jw_window_covers(const struct jw_window *w, uint64_t after);
/* Calls fn for each held event with after < id <= upto, oldest first. */
void jw_window_replay(const struct jw_window *w, uint64_t after, uint64_t upto,
                      void (*fn)(void *ctx, struct jw_event *ev), void *ctx);

#endif
