/*
 * The upstream → gateway handoff (see inbox.h). The lock is held only to link or swap a list,
 * never while an event is parsed or routed.
 */
#include "jobwire/inbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "jobwire/alloc.h"

struct jw_inbox {
    pthread_mutex_t lock;
    struct jw_event *head, *tail; /* guarded by lock */
    size_t count;                 /* guarded by lock */
    size_t max_events;
};

struct jw_inbox *
jw_inbox_new(size_t max_events)
{
    struct jw_inbox *inbox = jw_calloc(1, sizeof(*inbox));
    pthread_mutex_init(&inbox->lock, NULL);
    inbox->max_events = max_events;
    return inbox;
}

void
jw_inbox_free(struct jw_inbox *inbox)
{
    if (!inbox)
        return;
    struct jw_event *ev = jw_inbox_take_all(inbox);
    while (ev) {
        struct jw_event *next = ev->next;
        jw_event_free(ev);
        ev = next;
    }
    pthread_mutex_destroy(&inbox->lock);
    free(inbox);
}

int
jw_inbox_push(struct jw_inbox *inbox, struct jw_event *ev)
{
    int was_empty;
    ev->next = NULL;
    pthread_mutex_lock(&inbox->lock);
    if (inbox->count >= inbox->max_events) {
        pthread_mutex_unlock(&inbox->lock);
        return -ENOSPC;
    }
    was_empty = inbox->count == 0;
    if (inbox->tail)
        inbox->tail->next = ev;
    else
        inbox->head = ev;
    inbox->tail = ev;
    inbox->count++;
    pthread_mutex_unlock(&inbox->lock);
    return was_empty;
}

struct jw_event *
jw_inbox_take_all(struct jw_inbox *inbox)
{
    pthread_mutex_lock(&inbox->lock);
    struct jw_event *list = inbox->head;
    inbox->head = inbox->tail = NULL;
    inbox->count = 0;
    pthread_mutex_unlock(&inbox->lock);
    return list;
}
