/*
 * Multi-producer, single-consumer handoff into the gateway thread: a mutex-protected list that
 * the consumer swaps out whole. It carries messages of several types (events from Redis, replies
 * to Redis commands), each embedding a struct jw_msg as its first member. Bounded in messages,
 * so a stalled gateway cannot make the producers grow memory without limit.
 */
#ifndef JOBWIRE_INBOX_H
#define JOBWIRE_INBOX_H

#include <stddef.h>

enum jw_msg_type { JW_MSG_EVENT = 0, JW_MSG_REDIS_REPLY, JW_MSG_LINK_STATE };

/* The link embedded first in every message; owned by whoever holds the message. */
struct jw_msg {
    struct jw_msg *next;
    enum jw_msg_type type;
};

struct jw_inbox;

struct jw_inbox *jw_inbox_new(size_t max_messages);
/* Frees the inbox; messages still in it are passed to `dispose`. */
void jw_inbox_free(struct jw_inbox *inbox, void (*dispose)(struct jw_msg *msg));
/* Takes ownership of `msg` on success. Returns -ENOSPC (ownership stays with the caller) when
 * the inbox is full and `bounded`; replies are pushed unbounded, since each answers a request
 * the gateway made and is expecting. Returns 1 when the inbox was empty before, i.e. the
 * consumer needs a wake, else 0. */
int jw_inbox_push(struct jw_inbox *inbox, struct jw_msg *msg, int bounded)
    __attribute__((warn_unused_result));
/* Removes and returns every queued message, oldest first, linked through ->next. */
struct jw_msg *jw_inbox_take_all(struct jw_inbox *inbox);

#endif
