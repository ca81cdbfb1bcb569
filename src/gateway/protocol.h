/*
 * The client protocol (docs/PROTOCOL.md): parsing of client → server messages and building of
 * server → client control frames. Pure functions of their input; no I/O, no global state.
 */
#ifndef JOBWIRE_PROTOCOL_H
#define JOBWIRE_PROTOCOL_H

#include <stddef.h>

#include <stdbool.h>
#include <stdint.h>

#include "jobwire/event.h"
#include "jobwire/frame.h"
#include "jobwire/redis.h"

#define JW_REQUEST_ID_MAX 64
#define JW_PROTOCOL_VERSION 1

enum jw_cmd_type { JW_CMD_SUBSCRIBE = 0, JW_CMD_UNSUBSCRIBE, JW_CMD_PING, JW_CMD_AUTH };
enum jw_scope { JW_SCOPE_JOBS = 0, JW_SCOPE_USER, JW_SCOPE_ALL };

struct jw_cmd {
    enum jw_cmd_type type;
    char id[JW_REQUEST_ID_MAX + 1]; /* client's request id, "" when absent */
    enum jw_scope scope;
    char **jobs; /* JW_SCOPE_JOBS: validated job ids, owned */
    size_t njobs;
    unsigned kinds; /* bit per enum jw_kind; JW_KINDS_ALL when no filter was given */
    char *token;    /* JW_CMD_AUTH ("auth" or "refresh"): the bearer token, owned */
    size_t token_len;
    char last_event_id[JW_EVENT_ID_TEXT_MAX]; /* subscribe: lastEventId; "" when absent */
};

#define JW_TOKEN_MAX 8192 /* longest token accepted in an auth message */

/* Error codes sent in {"type":"error","code":...}; see docs/PROTOCOL.md. */
#define JW_ERR_BAD_JSON "bad_json"
#define JW_ERR_BAD_REQUEST "bad_request"
#define JW_ERR_UNKNOWN_TYPE "unknown_type"
#define JW_ERR_BAD_JOB_ID "bad_job_id"
#define JW_ERR_BAD_KIND "bad_kind"
#define JW_ERR_TOO_MANY_JOBS "too_many_subscriptions"
#define JW_ERR_FORBIDDEN "forbidden"
#define JW_ERR_UNAUTHENTICATED "unauthenticated"
#define JW_ERR_BAD_TOKEN "bad_token"
#define JW_ERR_UNAVAILABLE "unavailable"

struct jw_cmd_error {
    const char *code;  /* one of JW_ERR_* */
    char message[160]; /* human-readable, never echoes more than a short prefix of input */
    char id[JW_REQUEST_ID_MAX + 1]; /* request id when it could be read, else "" */
};

/* Parses one client text message. `max_jobs` bounds the ids in a single request.
 * Returns 0 and fills *cmd (release with jw_cmd_clear), or -1 and fills *err. An auth message
 * whose token is too long fails with JW_ERR_UNAUTHENTICATED (the connection is then refused, as
 * any bad token is). */
int jw_cmd_parse(const char *text, size_t len, size_t max_jobs, struct jw_cmd *cmd,
                 struct jw_cmd_error *err) __attribute__((warn_unused_result));
void jw_cmd_clear(struct jw_cmd *cmd);

/* Control frames (not sequenced, refs == 1, owned by the caller). */
/* {"type":"welcome","protocol":1,"connectionId":..,"userId":..,"admin":..,"live":..,
 *  "expiresAt":.. (when > 0),"epoch":..} */
struct jw_frame *jw_reply_welcome(const char *connection_id, const char *user_id, int admin,
                                  bool live, int64_t expires_at);
/* {"type":"ack","id":..,"op":"subscribe","scope":..,"jobs":[..],"kinds":[..]} and, when >= 0,
 * "resumed":true|false and "snapshots":N */
struct jw_frame *jw_reply_ack(const struct jw_cmd *cmd, int resumed, long snapshots);
/* {"type":"status","live":..} with "reason" when not NULL, "resumed" and "snapshots" (the
 * snapshots that follow) when >= 0 */
struct jw_frame *jw_reply_status(bool live, const char *reason, int resumed, long snapshots);
struct jw_frame *jw_reply_goaway(uint32_t reconnect_after_ms);
/* SSE's last event: {"type":"close","code":..,"reason":..} */
struct jw_frame *jw_reply_close(unsigned code, const char *reason);
/* A sequenced {"type":"snapshot","jobId":..,"userId":..,"source":..,"state":..,"eventId":..}
 * of `st` (NULL: Redis could not be asked, "unavailable":true) at position `event_id`. The
 * state and owner are shown only when `visible`; "tooLarge":true when st->too_large. */
struct jw_frame *jw_reply_snapshot(const char *job_id, const struct jw_job_state *st, bool visible,
                                   uint64_t event_id);
struct jw_frame *jw_reply_error(const char *id, const char *code, const char *message);
struct jw_frame *jw_reply_pong(const char *id);
/* {"type":"ack","id":..,"op":"auth","userId":..,"expiresAt":..} after a token refresh */
struct jw_frame *jw_reply_auth_ack(const char *id, const char *user_id, long long expires_at);

#endif
