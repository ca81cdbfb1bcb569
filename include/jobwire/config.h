/*
 * Configuration: one declarative table in config.c (name, type, default, bounds, environment
 * variable, help) drives the file parser, the environment overrides, --check-config and the
 * documentation in conf/jobwire.conf. Precedence: built-in default < file < environment.
 *
 * All strings are owned by the struct and freed by jw_config_free(). The struct is filled on the
 * main thread before any other thread starts, and read-only afterwards.
 */
#ifndef JOBWIRE_CONFIG_H
#define JOBWIRE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jobwire/log.h"

#define JW_CONFIG_MAX_PATTERNS 16

struct jw_config {
    /* client side */
    char *listen_address;            /* listen_address, JOBWIRE_LISTEN_ADDRESS; "127.0.0.1" */
    int listen_port;                 /* listen_port, JOBWIRE_LISTEN_PORT; 8080; 1..65535 */
    char *web_root;                  /* web_root; "" (off): the dashboard's directory */
    char *admin_listen_address;      /* ""= listen_address: where admin_port listens */
    int admin_port;                  /* 0 (off): /healthz, /readyz, /metrics on their own port */
    size_t client_queue_max_bytes;   /* 1048576; 4096..1073741824 */
    size_t client_send_buffer_bytes; /* 0 (kernel autotuning) or 4096..64m */
    int client_queue_max_messages;   /* 4096; 1..1000000 */
    size_t client_conflate_bytes;    /* 65536: queued bytes past which progress conflates */
    int client_conflate_after_ms;    /* 1000: or a queue backed up this long; 0 = never */
    int client_stall_timeout_s;      /* 30: a queue without progress this long: 4008; 0 = off */
    int resume_window_events;        /* 10000: events kept for resume; 0 = no resume */
    size_t resume_window_bytes;      /* 16 MiB: their frames' bytes at most */
    size_t client_max_message_bytes; /* inbound message size limit; 4096; 256..1048576 */
    int client_max_subscriptions;    /* job subscriptions per connection; 256; 1..100000 */
    bool dev_auth; /* dev_auth; false. Development only: trust ?user=&admin= on connect */

    /* authentication (JWT, see docs/SECURITY.md; verified by auth.c) */
    char *jwt_secret;      /* jwt_secret, JWT_SECRET; "" (HS256 off). Secret; >= 32 bytes */
    char *jwt_secret_file; /* ""; read by jw_config_finish() into jwt_secret, newline stripped */
    bool jwt_secret_from_file; /* derived: jwt_secret came from jwt_secret_file */
    char *jwt_public_keys[JW_CONFIG_MAX_PATTERNS]; /* "" ; `kid=path` or `path`, RS256/ES256 */
    size_t jwt_npublic_keys;
    char *jwt_issuer;              /* ""; required `iss` when set */
    char *jwt_audience;            /* ""; required in `aud` (string or array) when set */
    int jwt_leeway_seconds;        /* 30; 0..600: clock skew allowed on exp and nbf */
    char *jwt_user_claim;          /* "sub" */
    char *jwt_role_claim;          /* "roles"; "" = no admin by token */
    char *jwt_admin_role;          /* "admin" */
    bool auth_allow_query_token;   /* false: accept ?token= on the upgrade request */
    int auth_timeout_ms;           /* 10000; 100..600000: time to authenticate */
    char *revocation_key_template; /* "token:blacklist:{jti}" */
    char *revocation_fail;         /* "closed"|"open": Redis cannot answer a revocation check */
    bool revocation_fail_open;     /* derived from revocation_fail by jw_config_finish() */
    char *job_owner_key_template;  /* "ai:job:{jobId}" */
    char *job_owner_field;         /* "userId" */
    char *job_status_key_template; /* "ai:job:status:{jobId}": string state, for snapshots */
    size_t max_state_bytes;        /* 262144: a job state larger than this is not sent */
    int max_state_fields;          /* 1024: fields of a job state hash, at most */
    bool job_index_write;          /* yes: keep the per-user job index in Redis */
    char *job_index_user_key;      /* "jobwire:user:{userId}:jobs" (sorted set) */
    char *job_index_all_key;       /* "jobwire:jobs:recent" (sorted set, every user's jobs) */
    int job_index_max_age_s;       /* 3600: entries older than this are trimmed */
    int job_index_max_jobs;        /* 200: entries per index, at most */
    int job_index_refresh_s;       /* 300: one write per job per replica per this long */
    int scope_snapshot_max_jobs;   /* 50: snapshots after a scope subscribe; 0 = none */
    char *user_channel_items[JW_CONFIG_MAX_PATTERNS]; /* user_channels: "prefix=kind" items */
    size_t user_nchannel_items;
    /* derived from user_channels by jw_config_finish() */
    char *user_channel_prefixes[JW_CONFIG_MAX_PATTERNS];
    char *user_channel_kinds[JW_CONFIG_MAX_PATTERNS];
    size_t user_nchannels;
    int probe_interval_ms;      /* 5000; 0 (off) or up to 600000 */
    int probe_timeout_ms;       /* 15000: an unanswered probe older than this fails /readyz */
    bool permessage_deflate;    /* no: offer RFC 7692 compression */
    int deflate_mem_level;      /* 1; 1..9 */
    int deflate_window_bits;    /* 9; 9..15 */
    int ws_ping_interval_s;     /* 25; 0..3600: idle time before a WebSocket PING */
    int ws_pong_timeout_s;      /* 10; 1..3600: silence after it before the hang-up */
    int sse_heartbeat_s;        /* 15; 0..3600: idle time before an SSE comment line */
    int drain_window_ms;        /* 10000; 0..600000: SIGTERM drain */
    int drain_window_sigint_ms; /* 1000; 0..600000: SIGINT drain */
    int drain_reconnect_max_ms; /* 5000; 0..600000: bound of the goaway reconnect delay */
    char *allowed_origins[JW_CONFIG_MAX_PATTERNS]; /* ""; Origin allowlist, none = any */
    size_t allowed_norigins;
    char *trusted_proxies[JW_CONFIG_MAX_PATTERNS]; /* ""; IPv4/IPv6 CIDRs allowed to set XFF */
    size_t trusted_nproxies;
    int max_connections_per_ip;         /* 100; 0 = unlimited */
    int max_connections_per_user;       /* 20; 0 = unlimited */
    int client_max_messages_per_second; /* 20; 1..10000: token bucket rate */
    int client_message_burst;           /* 40; 1..100000: token bucket size */

    /* Redis side */
    char *redis_url;      /* redis_url, REDIS_URL; "" (then host/port below).
                             redis://[user:pass@]host:port */
    char *redis_host;     /* redis_host, REDIS_HOST; "127.0.0.1" */
    int redis_port;       /* redis_port, REDIS_PORT; 6379; 1..65535 */
    char *redis_username; /* redis_username, REDIS_USERNAME; "" (ACL user; empty = default user) */
    char *redis_password; /* redis_password, REDIS_PASSWORD; "" (secret: never logged) */
    int redis_db;         /* redis_db; 0; also the /N of redis_url; not on a cluster */
    bool redis_tls;       /* redis_tls; no; also set by a rediss:// URL */
    char *redis_tls_ca_file;     /* ""; PEM CA bundle (else redis_tls_ca_dir, else system paths) */
    char *redis_tls_ca_dir;      /* ""; hashed CA directory (c_rehash) */
    char *redis_tls_server_name; /* ""; SNI + name checked on the certificate; "" = the host */
    char *redis_tls_cert_file;   /* ""; client certificate (PEM chain), with redis_tls_key_file */
    char *redis_tls_key_file;    /* ""; its private key (PEM) */
    char *redis_sentinels[JW_CONFIG_MAX_PATTERNS]; /* ""; host:port of sentinels, tried in order */
    size_t redis_nsentinels;
    char *redis_sentinel_master;                       /* ""; master name the sentinels monitor */
    char *redis_sentinel_password;                     /* ""; AUTH for the sentinels (secret) */
    char *redis_cluster_nodes[JW_CONFIG_MAX_PATTERNS]; /* ""; host:port seeds of a cluster */
    size_t redis_ncluster_nodes;
    char *redis_patterns[JW_CONFIG_MAX_PATTERNS]; /* redis_patterns; "ai:job:*"; comma separated */
    size_t redis_npatterns;
    char *channel_prefix;         /* channel_prefix; "ai:job:" */
    int redis_connect_timeout_ms; /* 10000; 100..600000 */
    int redis_cluster_refresh_ms; /* 15000: the slot map is re-read at least this often */
    int redis_read_timeout_ms;    /* 5000; 100..600000: wait for a reply to a command */
    int redis_ping_interval_ms;   /* 15000; 0 (off) or 500..600000 */
    int reconnect_initial_ms;     /* 200; 1..600000 */
    int reconnect_max_ms;         /* 30000; 1..3600000; >= reconnect_initial_ms */
    double reconnect_multiplier;  /* 2.0; 1.0..10.0 */
    int reconnect_reset_after_ms; /* 30000; 0..3600000: uptime after which backoff resets */
    size_t max_payload_bytes;     /* 65536; 64..16777216 */
    size_t inbox_max_events;      /* 65536; 16..10000000 */

    enum jw_log_level log_level;   /* log_level, JOBWIRE_LOG_LEVEL; info; debug|info|warn|error */
    enum jw_log_format log_format; /* log_format, JOBWIRE_LOG_FORMAT; text; text|json */
};

void jw_config_defaults(struct jw_config *c);
/* Each function below returns 0, or -1 with a one-line reason in err ("file:line: reason" for
 * files, "VARIABLE: reason" for the environment). */
int jw_config_set(struct jw_config *c, const char *key, const char *value, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int jw_config_load_file(struct jw_config *c, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Reads JOBWIRE_<KEY> for every key, and the aliases named above (REDIS_URL, ...). */
int jw_config_apply_env(struct jw_config *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Cross-field checks and derived values (redis_url into host/port/user/password/tls). */
int jw_config_finish(struct jw_config *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Writes every effective setting as "key value" lines, secrets masked. */
void jw_config_dump(const struct jw_config *c, FILE *out);
/* Lists every key with its default, accepted values, environment variables and help (--help). */
void jw_config_print_help(FILE *out);
void jw_config_free(struct jw_config *c);

#endif
