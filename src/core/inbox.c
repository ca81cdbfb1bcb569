/*
 * The handoff into the gateway thread (see inbox.h). The lock is held only to link or swap a
 * list, never while an event is parsed or routed.
 */
#include "jobwire/inbox.h"

#include <pthread.h>
#include <stdlib.h>

#include "jobwire/alloc.h"

struct jw_inbox {
    pthread_mutex_t lock;
    struct jw_msg *head, *tail; /* guarded by lock */
    size_t count;               /* guarded by lock */
    bool reported_full;         /* guarded by lock: a push said JW_INBOX_FULL since the take */
    size_t max_messages;
};

struct jw_inbox *
jw_inbox_new(size_t max_messages)
{
    struct jw_inbox *inbox = jw_calloc(1, sizeof(*inbox));
    pthread_mutex_init(&inbox->lock, NULL);
    inbox->max_messages = max_messages;
    return inbox;
}

void
jw_inbox_free(struct jw_inbox *inbox, void (*dispose)(struct jw_msg *msg))
{
    if (!inbox)
        return;
    bool full;
    struct jw_msg *msg = jw_inbox_take_all(inbox, &full);
    while (msg) {
        struct jw_msg *next = msg->next;
        dispose(msg);
        msg = next;
    }
    pthread_mutex_destroy(&inbox->lock);
    free(inbox);
}

unsigned
jw_inbox_push(struct jw_inbox *inbox, struct jw_msg *msg)
{
    unsigned flags = 0;
    msg->next = NULL;
    pthread_mutex_lock(&inbox->lock);
    if (inbox->count == 0)
        flags |= JW_INBOX_WAKE;
    if (inbox->tail)
        inbox->tail->next = msg;
    else
        inbox->head = msg;
    inbox->tail = msg;
    if (++inbox->count >= inbox->max_messages) {
        flags |= JW_INBOX_FULL;
        inbox->reported_full = true;
    }
    pthread_mutex_unlock(&inbox->lock);
    return flags;
}

struct jw_msg *
jw_inbox_take_all(struct jw_inbox *inbox, bool *was_full)
{
    pthread_mutex_lock(&inbox->lock);
    struct jw_msg *list = inbox->head;
    inbox->head = inbox->tail = NULL;
    inbox->count = 0;
    *was_full = inbox->reported_full;
    inbox->reported_full = false;
    pthread_mutex_unlock(&inbox->lock);
    return list;
}
