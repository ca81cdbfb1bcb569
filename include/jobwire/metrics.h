/*
 * Process metrics. Every metric is declared once, in JW_METRICS below, so its name, labels, type
 * and help text cannot drift (twemproxy stats). Counters and gauges are relaxed atomics: any
 * thread may update them; /metrics reads them without locks.
 *
 * Types: counter and gauge hold the int64 value in jw_metric_values; gauge_ns holds nanoseconds
 * and is exposed as a gauge in seconds; computed_gauge and computed_counter are read by
 * jw_metrics_render() itself (build info and the standard process_* metrics of the Prometheus
 * client libraries); histogram has its own storage and is fed by its own function
 * (jw_metrics_observe_delivery_latency). Series of one family (same name) must be
 * adjacent rows: the renderer writes HELP and TYPE once, before the first of them.
 */
#ifndef JOBWIRE_METRICS_H
#define JOBWIRE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "jobwire/buf.h"

#ifndef JW_VERSION
#define JW_VERSION "unknown"
#endif

/* X(id, type, name, labels, help) */
#define JW_METRICS(X)                                                                              \
    X(BUILD_INFO, computed_gauge, "jobwire_build_info", "version=\"" JW_VERSION "\"",              \
      "Always 1; the labels describe the running build")                                           \
    X(PROCESS_CPU, computed_counter, "process_cpu_seconds_total", "",                              \
      "Total user and system CPU time spent in seconds")                                           \
    X(PROCESS_OPEN_FDS, computed_gauge, "process_open_fds", "", "Number of open file descriptors") \
    X(PROCESS_MAX_FDS, computed_gauge, "process_max_fds", "",                                      \
      "Maximum number of open file descriptors")                                                   \
    X(PROCESS_RESIDENT_MEMORY, computed_gauge, "process_resident_memory_bytes", "",                \
      "Resident memory size in bytes")                                                             \
    X(PROCESS_VIRTUAL_MEMORY, computed_gauge, "process_virtual_memory_bytes", "",                  \
      "Virtual memory size in bytes")                                                              \
    X(PROCESS_START_TIME, computed_gauge, "process_start_time_seconds", "",                        \
      "Start time of the process since unix epoch in seconds")                                     \
    X(CONNECTIONS, gauge, "jobwire_connections", "transport=\"websocket\"",                        \
      "Open client connections")                                                                   \
    X(CONNECTIONS_SSE, gauge, "jobwire_connections", "transport=\"sse\"",                          \
      "Open client connections")                                                                   \
    X(CONNECTIONS_ACCEPTED, counter, "jobwire_connections_accepted_total", "",                     \
      "Client connections accepted")                                                               \
    X(REJECTED_UNAUTHENTICATED, counter, "jobwire_connections_rejected_total",                     \
      "reason=\"unauthenticated\"", "Client connections refused at the handshake (401)")           \
    X(REJECTED_FORBIDDEN, counter, "jobwire_connections_rejected_total", "reason=\"forbidden\"",   \
      "Client connections refused at the handshake (403)")                                         \
    X(REJECTED_TOO_MANY, counter, "jobwire_connections_rejected_total", "reason=\"too_many\"",     \
      "Client connections refused at the handshake (429)")                                         \
    X(REJECTED_DRAINING, counter, "jobwire_connections_rejected_total", "reason=\"draining\"",     \
      "Client connections refused at the handshake (503)")                                         \
    X(REJECTED_BAD_REQUEST, counter, "jobwire_connections_rejected_total",                         \
      "reason=\"bad_request\"", "Client connections refused at the handshake (400)")               \
    X(AUTH_FAILURES_MISSING_TOKEN, counter, "jobwire_auth_failures_total",                         \
      "reason=\"missing_token\"", "Authentication failures by reason")                             \
    X(AUTH_FAILURES_BAD_TOKEN, counter, "jobwire_auth_failures_total", "reason=\"bad_token\"",     \
      "Authentication failures by reason")                                                         \
    X(AUTH_FAILURES_EXPIRED, counter, "jobwire_auth_failures_total", "reason=\"expired\"",         \
      "Authentication failures by reason")                                                         \
    X(AUTH_FAILURES_REVOKED, counter, "jobwire_auth_failures_total", "reason=\"revoked\"",         \
      "Authentication failures by reason")                                                         \
    X(AUTH_FAILURES_FORBIDDEN_ORIGIN, counter, "jobwire_auth_failures_total",                      \
      "reason=\"forbidden_origin\"", "Authentication failures by reason")                          \
    X(AUTH_FAILURES_UNAVAILABLE, counter, "jobwire_auth_failures_total",                           \
      "reason=\"revocation_unavailable\"", "Authentication failures by reason")                    \
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
    X(EVENTS_INVALID_TOO_LARGE, counter, "jobwire_events_invalid_total", "reason=\"too_large\"",   \
      "Redis messages dropped before routing")                                                     \
    X(EVENTS_INVALID_NO_JOB_ID, counter, "jobwire_events_invalid_total", "reason=\"no_job_id\"",   \
      "Redis messages dropped before routing")                                                     \
    X(EVENTS_INVALID_BAD_ID, counter, "jobwire_events_invalid_total", "reason=\"bad_id\"",         \
      "Redis messages dropped before routing")                                                     \
    X(DELIVERIES, counter, "jobwire_deliveries_total", "", "Event frames queued to clients")       \
    X(SNAPSHOTS, counter, "jobwire_snapshots_total", "result=\"ok\"",                              \
      "Job snapshots sent to clients after a subscribe")                                           \
    X(SNAPSHOTS_UNAVAILABLE, counter, "jobwire_snapshots_total", "result=\"unavailable\"",         \
      "Job snapshots sent to clients after a subscribe")                                           \
    X(SNAPSHOTS_TOO_LARGE, counter, "jobwire_snapshots_total", "result=\"too_large\"",             \
      "Job snapshots sent to clients after a subscribe")                                           \
    X(RESYNCS, counter, "jobwire_resyncs_total", "",                                               \
      "Fresh snapshots sent without a request: after an outage, or retrying an unavailable one")   \
    X(RESUMES_REPLAYED, counter, "jobwire_resumes_total", "result=\"replayed\"",                   \
      "Subscribes with a lastEventId: missed events replayed, or snapshots instead")               \
    X(RESUMES_SNAPSHOTS, counter, "jobwire_resumes_total", "result=\"snapshots\"",                 \
      "Subscribes with a lastEventId: missed events replayed, or snapshots instead")               \
    X(RESUME_WINDOW_EVENTS, gauge, "jobwire_resume_window_events", "",                             \
      "Events held in memory for resuming clients")                                                \
    X(RESUME_WINDOW_BYTES, gauge, "jobwire_resume_window_bytes", "",                               \
      "Bytes of the events held in memory for resuming clients")                                   \
    X(RESUME_WINDOW_AGE_NS, gauge_ns, "jobwire_resume_window_seconds", "",                         \
      "Age of the oldest event held for resuming clients, in seconds")                             \
    X(DELIVERIES_DENIED, counter, "jobwire_deliveries_denied_total", "",                           \
      "Events withheld from a subscriber because the event belongs to another user")               \
    X(DELIVERY_LATENCY, histogram, "jobwire_delivery_latency_seconds", "",                         \
      "Time from receiving an event from Redis to writing its frame to a client, in seconds")      \
    X(CONFLATIONS, counter, "jobwire_conflations_total", "",                                       \
      "Queued progress frames replaced by a newer frame of the same job")                          \
    X(CLOSED_SLOW, counter, "jobwire_client_closes_total", "reason=\"slow_consumer\"",             \
      "Clients closed by the server")                                                              \
    X(CLOSED_STALLED, counter, "jobwire_client_closes_total", "reason=\"stalled\"",                \
      "Clients closed by the server")                                                              \
    X(CLOSED_PROTOCOL, counter, "jobwire_client_closes_total", "reason=\"protocol\"",              \
      "Clients closed by the server")                                                              \
    X(CLOSED_RATE_LIMITED, counter, "jobwire_client_closes_total", "reason=\"rate_limited\"",      \
      "Clients closed by the server")                                                              \
    X(CLOSED_TOO_MANY_CONNECTIONS, counter, "jobwire_client_closes_total",                         \
      "reason=\"too_many_connections\"", "Clients closed by the server")                           \
    X(CLIENT_ERRORS, counter, "jobwire_client_errors_total", "", "Error replies sent to clients")  \
    X(QUEUE_BYTES, gauge, "jobwire_queue_bytes", "", "Bytes queued to clients, not yet written")   \
    X(UPSTREAM_UP, gauge, "jobwire_upstream_up", "",                                               \
      "1 when the Redis subscription is active, else 0")                                           \
    X(UPSTREAM_PROBE_LAG_NS, gauge_ns, "jobwire_upstream_probe_lag_seconds", "",                   \
      "Round trip of the last probe message through Redis pub/sub, in seconds")                    \
    X(UPSTREAM_RECONNECTS, counter, "jobwire_upstream_reconnects_total", "",                       \
      "Connection attempts to Redis after the first")                                              \
    X(UPSTREAM_PAUSES, counter, "jobwire_upstream_pauses_total", "",                               \
      "Times the Redis subscription stopped being read because the client thread fell behind")     \
    X(UPSTREAM_ERRORS, counter, "jobwire_upstream_errors_total", "",                               \
      "Redis connections lost or refused")                                                         \
    X(REDIS_COMMANDS, counter, "jobwire_redis_commands_total", "",                                 \
      "Commands sent to Redis on the command connection")                                          \
    X(REDIS_COMMAND_ERRORS_NOT_CONNECTED, counter, "jobwire_redis_command_errors_total",           \
      "reason=\"not_connected\"", "Redis commands that came back without a reply, by reason")      \
    X(REDIS_COMMAND_ERRORS_TIMEOUT, counter, "jobwire_redis_command_errors_total",                 \
      "reason=\"timeout\"", "Redis commands that came back without a reply, by reason")            \
    X(REDIS_COMMAND_ERRORS_CANCELED, counter, "jobwire_redis_command_errors_total",                \
      "reason=\"canceled\"", "Redis commands that came back without a reply, by reason")           \
    X(REDIS_COMMAND_ERRORS_OVERFLOW, counter, "jobwire_redis_command_errors_total",                \
      "reason=\"overflow\"", "Redis commands that came back without a reply, by reason")           \
    X(COMMAND_LINK_UP, gauge, "jobwire_command_link_up", "",                                       \
      "1 when the Redis command connection is ready, else 0")                                      \
    X(COMMANDS_READY, gauge, "jobwire_redis_commands_ready", "",                                   \
      "1 when snapshots, owner and revocation checks can be made (on a cluster: every slot has a " \
      "ready master)")                                                                             \
    X(JOB_INDEX_WRITES, counter, "jobwire_job_index_writes_total", "result=\"ok\"",                \
      "Writes of the per-user job index")                                                          \
    X(JOB_INDEX_ERRORS, counter, "jobwire_job_index_writes_total", "result=\"error\"",             \
      "Writes of the per-user job index")

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

/* Upper bounds of jobwire_delivery_latency_seconds, in seconds; +Inf follows the last. */
#define JW_LATENCY_BUCKETS(X)                                                                      \
    X(0.0005) X(0.001) X(0.0025) X(0.005) X(0.01) X(0.025) X(0.05) X(0.1) X(0.25) X(0.5) X(1)

/* Records one delivery latency (receipt from Redis to write to the client socket). Any thread;
 * lock-free: three relaxed atomic additions. */
void jw_metrics_observe_delivery_latency(uint64_t nanoseconds);

/* Appends the Prometheus text exposition (format 0.0.4) of every metric. */
void jw_metrics_render(struct jw_buf *out);

#endif
