/*
 * Multi-producer, single-consumer handoff into the gateway thread: a mutex-protected list that
 * the consumer swaps out whole. It carries messages of several types (events from Redis, answers
 * to Redis operations, state changes of the Redis side), each embedding a struct jw_msg as its
 * first member.
 *
 * Nothing is ever refused: a producer that can wait (the subscriber) learns from the push that
 * the inbox holds `max_messages` or more and stops producing until the consumer reports, on a
 * take, that it had been full. That keeps the gateway's backlog bounded without dropping
 * anything in silence; answers to Redis operations are few and always accepted.
 */
#ifndef JOBWIRE_INBOX_H
#define JOBWIRE_INBOX_H

#include <stdbool.h>
#include <stddef.h>

enum jw_msg_type { JW_MSG_EVENT = 0, JW_MSG_REDIS_OP, JW_MSG_LINK_STATE };

/* The link embedded first in every message; owned by whoever holds the message. */
struct jw_msg {
    struct jw_msg *next;
    enum jw_msg_type type;
};

struct jw_inbox;

#define JW_INBOX_WAKE 1u /* the inbox was empty: the consumer needs a wake-up */
#define JW_INBOX_FULL 2u /* it now holds max_messages or more: a producer that can, waits */

struct jw_inbox *jw_inbox_new(size_t max_messages);
/* Frees the inbox; messages still in it are passed to `dispose`. */
void jw_inbox_free(struct jw_inbox *inbox, void (*dispose)(struct jw_msg *msg));
/* Takes ownership of `msg`. Returns JW_INBOX_WAKE and/or JW_INBOX_FULL (or 0). */
unsigned jw_inbox_push(struct jw_inbox *inbox, struct jw_msg *msg);
/* Removes and returns every queued message, oldest first, linked through ->next. *was_full
 * tells whether a push reported JW_INBOX_FULL since the last take (the waiting producer is to be
 * resumed). */
struct jw_msg *jw_inbox_take_all(struct jw_inbox *inbox, bool *was_full);

#endif
