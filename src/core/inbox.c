/*
 * The handoff into the gateway thread (see inbox.h). The lock is held only to link or swap a list,
 * never while an event is parsed or routed.
 */
#include "jobwire/inbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "jobwire/alloc.h"

struct jw_inbox {
    pthread_mutex_t lock;
    struct jw_msg *head, *tail; /* guarded by lock */
    size_t count;               /* guarded by lock */
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
    struct jw_msg *msg = jw_inbox_take_all(inbox);
    while (msg) {
        struct jw_msg *next = msg->next;
        dispose(msg);
        msg = next;
    }
    pthread_mutex_destroy(&inbox->lock);
    free(inbox);
}

int
jw_inbox_push(struct jw_inbox *inbox, struct jw_msg *msg, int bounded)
{
    int was_empty;
    msg->next = NULL;
    pthread_mutex_lock(&inbox->lock);
    if (bounded && inbox->count >= inbox->max_messages) {
        pthread_mutex_unlock(&inbox->lock);
        return -ENOSPC;
    }
    was_empty = inbox->count == 0;
    if (inbox->tail)
        inbox->tail->next = msg;
    else
        inbox->head = msg;
    inbox->tail = msg;
    inbox->count++;
    pthread_mutex_unlock(&inbox->lock);
    return was_empty;
}

struct jw_msg *
jw_inbox_take_all(struct jw_inbox *inbox)
{
    pthread_mutex_lock(&inbox->lock);
    struct jw_msg *list = inbox->head;
    inbox->head = inbox->tail = NULL;
    inbox->count = 0;
    pthread_mutex_unlock(&inbox->lock);
    return list;
}
