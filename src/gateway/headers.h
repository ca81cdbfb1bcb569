/*
 * Request headers of any length: lws copies a header only into a buffer that holds it whole,
 * so every header jobwire reads is sized first (a long Origin, URI or Last-Event-ID must never
 * read as absent).
 */
#ifndef JOBWIRE_GATEWAY_HEADERS_H
#define JOBWIRE_GATEWAY_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

/* The header's value in a new string; NULL when absent, or when longer than `max` (then
 * *too_long is set, when not NULL). */
char *jw_header(struct lws *wsi, enum lws_token_indexes token, size_t max, bool *too_long);
/* The same for a header lws has no token for; `name` lowercase with its colon ("last-event-id:").
 */
char *jw_header_custom(struct lws *wsi, const char *name, size_t max, bool *too_long);
/* The value of the query argument `name` ("token=", as lws keeps it: decoded) in a new string;
 * NULL when absent, or when longer than `max` (*too_long set). Other arguments, however long,
 * never hide it (lws_get_urlarg_by_name stops at the first one that does not fit its buffer). */
char *jw_query_arg(struct lws *wsi, const char *name, size_t max, bool *too_long);

#endif
