/*
 * Process metrics. Every metric is declared once, in JW_METRICS below, so its name, labels, type
 * and help text cannot drift (twemproxy stats). Counters and gauges are relaxed atomics: any
 * thread may update them; /metrics reads them without locks.
 */
#ifndef JOBWIRE_METRICS_H
#define JOBWIRE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "jobwire/buf.h"

/* X(id, type, name, labels, help) */
#define JW_METRICS(X)                                                                              \
    X(CONNECTIONS, gauge, "jobwire_connections", "transport=\"websocket\"",                        \
      "Open client connections")                                                                   \
    X(CONNECTIONS_ACCEPTED, counter, "jobwire_connections_accepted_total", "",                     \
      "Client connections accepted")                                                               \
    X(CONNECTIONS_REJECTED_AUTH, counter, "jobwire_connections_rejected_total",                    \
      "reason=\"unauthenticated\"", "Client connections refused at the handshake")                 \
    X(SUBSCRIPTIONS, gauge, "jobwire_subscriptions", "", "Job subscriptions held by clients")      \
    X(EVENTS_STATUS, counter, "jobwire_events_received_total", "kind=\"status\"",                  \
      "Events received from Redis")                                                                \
    X(EVENTS_PROGRESS, counter, "jobwire_events_received_total", "kind=\"progress\"",              \
      "Events received from Redis")                                                                \
    X(EVENTS_COMPLETE, counter, "jobwire_events_received_total", "kind=\"complete\"",              \
      "Events received from Redis")                                                                \
    X(EVENTS_ERROR, counter, "jobwire_events_received_total", "kind=\"error\"",                    \
      "Events received from Redis")                                                                \
    X(EVENTS_OTHER, counter, "jobwire_events_received_total", "kind=\"other\"",                    \
      "Events received from Redis")                                                                \
    X(EVENTS_INVALID_NOT_MATCHED, counter, "jobwire_events_invalid_total",                         \
      "reason=\"not_matched\"", "Redis messages dropped before routing")                           \
    X(EVENTS_INVALID_NOT_JSON, counter, "jobwire_events_invalid_total", "reason=\"not_json\"",     \
      "Redis messages dropped before routing")                                                     \
    X(EVENTS_INVALID_TOO_LARGE, counter, "jobwire_events_invalid_total",                           \
      "reason=\"too_large\"", "Redis messages dropped before routing")                             \
    X(EVENTS_INVALID_NO_JOB_ID, counter, "jobwire_events_invalid_total",                           \
      "reason=\"no_job_id\"", "Redis messages dropped before routing")                             \
    X(EVENTS_INVALID_BAD_ID, counter, "jobwire_events_invalid_total", "reason=\"bad_id\"",         \
      "Redis messages dropped before routing")                                                     \
    X(EVENTS_INBOX_FULL, counter, "jobwire_events_invalid_total", "reason=\"inbox_full\"",         \
      "Redis messages dropped before routing")                                                     \
    X(DELIVERIES, counter, "jobwire_deliveries_total", "", "Event frames queued to clients")      \
    X(DELIVERIES_DENIED, counter, "jobwire_deliveries_denied_total", "",                           \
      "Events withheld from a subscriber because the event belongs to another user")               \
    X(CLOSED_SLOW, counter, "jobwire_client_closes_total", "reason=\"slow_consumer\"",             \
      "Clients closed by the server")                                                              \
    X(CLOSED_PROTOCOL, counter, "jobwire_client_closes_total", "reason=\"protocol\"",              \
      "Clients closed by the server")                                                              \
    X(CLIENT_ERRORS, counter, "jobwire_client_errors_total", "",                                   \
      "Error replies sent to clients")                                                             \
    X(QUEUE_BYTES, gauge, "jobwire_queue_bytes", "", "Bytes queued to clients, not yet written")   \
    X(UPSTREAM_UP, gauge, "jobwire_upstream_up", "",                                               \
      "1 when the Redis subscription is active, else 0")                                          \
    X(UPSTREAM_RECONNECTS, counter, "jobwire_upstream_reconnects_total", "",                       \
      "Connection attempts to Redis after the first")                                              \
    X(UPSTREAM_ERRORS, counter, "jobwire_upstream_errors_total", "",                               \
      "Redis connections lost or refused")

enum jw_metric_id {
#define JW_METRIC_ENUM(id, type, name, labels, help) JW_M_##id,
    JW_METRICS(JW_METRIC_ENUM)
#undef JW_METRIC_ENUM
        JW_M__COUNT
};

extern _Atomic int64_t jw_metric_values[JW_M__COUNT];

static inline void
jw_metric_add(enum jw_metric_id id, int64_t delta)
{
    atomic_fetch_add_explicit(&jw_metric_values[id], delta, memory_order_relaxed);
}
static inline void
jw_metric_set(enum jw_metric_id id, int64_t value)
{
    atomic_store_explicit(&jw_metric_values[id], value, memory_order_relaxed);
}
static inline int64_t
jw_metric_get(enum jw_metric_id id)
{
    return atomic_load_explicit(&jw_metric_values[id], memory_order_relaxed);
}
/* Appends the Prometheus text exposition of every metric. */
void jw_metrics_render(struct jw_buf *out);

#endif
