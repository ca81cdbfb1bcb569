/*
 * The configuration table: every setting jobwire has, one row each (name, type, default, bounds,
 * environment alias, flags, help). conf/jobwire.conf and docs/CONFIGURATION.md document the
 * same rows; `jobwire --help` prints them from here.
 */
#include "config_private.h"

#include <stddef.h>

const struct opt jw_config_opts[] = {
    OPT(T_STRING, listen_address, "127.0.0.1", 0, 0, NULL, O_ADDRESS,
        "Address the HTTP/WebSocket listener binds to: an IPv4 or IPv6 literal (0.0.0.0 or :: "
        "for all interfaces) or localhost."),
    OPT(T_INT, listen_port, "8080", 1, 65535, NULL, 0, "TCP port of the HTTP/WebSocket listener."),
    OPT(T_STRING, web_root, "", 0, 0, NULL, 0,
        "Directory of static files served over HTTP at / (the dashboard: web/ in the source "
        "tree, share/jobwire/web when installed); \"\" serves none."),
    OPT(T_STRING, admin_listen_address, "", 0, 0, NULL, O_ADDRESS | O_EMPTY_OK,
        "Address admin_port binds to; \"\" = listen_address."),
    OPT(T_INT, admin_port, "0", 1, 65535, NULL, O_ZERO_OFF,
        "Serve /healthz, /readyz and /metrics on this port only (for probes and scrapers; keep "
        "it off the ingress); 0 = on listen_port with everything else."),
    OPT(T_SIZE, client_queue_max_bytes, "1048576", 4096, 1073741824, NULL, 0,
        "Outbound bytes queued for one slow client before it is disconnected."),
    OPT(T_SIZE, client_send_buffer_bytes, "0", 4096, 67108864, NULL, O_ZERO_OFF,
        "The kernel's send buffer of each client socket (SO_SNDBUF; Linux doubles it): bounds "
        "what a client that stops reading pins in the kernel, at the price of less slack for "
        "clients that fall behind in bursts; 0 = the kernel's autotuning (up to "
        "net.ipv4.tcp_wmem's maximum, often 4 MiB)."),
    OPT(T_INT, client_queue_max_messages, "4096", 1, 1000000, NULL, 0,
        "Frames queued for one slow client (after progress conflation) before it is "
        "disconnected with 4008."),
    OPT(T_SIZE, client_conflate_bytes, "65536", 0, 1073741824, NULL, 0,
        "Queued bytes past which a progress event replaces the unsent older progress event of "
        "the same job (the newest always follows); below it nothing is conflated."),
    OPT(T_INT, client_conflate_after_ms, "1000", 1, 600000, NULL, O_ZERO_OFF,
        "A queue that has not been empty for this long conflates too, whatever its size; 0 = "
        "only by size."),
    OPT(T_INT, client_stall_timeout_s, "30", 1, 3600, NULL, O_ZERO_OFF,
        "A client whose queue made no progress for this long (it stopped reading) is closed "
        "with 4008; 0 = never."),
    OPT(T_INT, resume_window_events, "10000", 1, 10000000, NULL, O_ZERO_OFF,
        "Recent events kept in memory so that a client reconnecting to this process with "
        "lastEventId (or Last-Event-ID) gets exactly what it missed; 0 = resume by snapshots "
        "only."),
    OPT(T_SIZE, resume_window_bytes, "16m", 65536, 17179869184.0, NULL, 0,
        "Bytes of event frames the resume window may hold; the oldest go first."),
    OPT(T_SIZE, client_max_message_bytes, "4096", 256, 1048576, NULL, 0,
        "Largest message a client may send; larger messages close the connection."),
    OPT(T_INT, client_max_subscriptions, "256", 1, 100000, NULL, 0,
        "Job subscriptions one connection may hold."),
    OPT(T_BOOL, dev_auth, "no", 0, 0, NULL, 0,
        "Development only: trust ?user=&admin= on connect. Never enable in production."),
    OPT(T_STRING, jwt_secret, "", 0, 0, "JWT_SECRET", O_SECRET,
        "HS256 shared secret (at least 32 bytes); \"\" disables HS256. Secret: never logged, "
        "masked in dumps."),
    OPT(T_STRING, jwt_secret_file, "", 0, 0, NULL, 0,
        "File holding the HS256 secret, read at start (trailing CR/LF stripped); "
        "exclusive with jwt_secret."),
    {"jwt_public_keys", T_LIST, F(jwt_public_keys), F(jwt_npublic_keys), "", 0, 0, NULL, O_EMPTY_OK,
     "Comma-separated PEM public key files, each `kid=path` or `path`; an RSA key (>= 2048 "
     "bits) verifies RS256, an EC P-256 key ES256. Several keys allow rotation by `kid`."},
    OPT(T_STRING, jwt_issuer, "", 0, 0, NULL, 0,
        "Required `iss` claim of tokens; \"\" does not check the issuer."),
    OPT(T_STRING, jwt_audience, "", 0, 0, NULL, 0,
        "Value required in the `aud` claim (string or array); \"\" does not check it."),
    OPT(T_INT, jwt_leeway_seconds, "30", 0, 600, NULL, 0,
        "Clock skew allowed when checking `exp` and `nbf`, in seconds."),
    OPT(T_STRING, jwt_user_claim, "sub", 0, 0, NULL, 0, "Claim that holds the user id."),
    OPT(T_STRING, jwt_role_claim, "roles", 0, 0, NULL, 0,
        "Claim (string or array of strings) that may hold jwt_admin_role; \"\" grants no admin."),
    OPT(T_STRING, jwt_admin_role, "admin", 0, 0, NULL, 0,
        "Role in jwt_role_claim that makes a connection an admin (sees every job)."),
    OPT(T_BOOL, auth_allow_query_token, "no", 0, 0, NULL, 0,
        "Accept the token as ?token= on the upgrade request (tokens then reach access logs)."),
    OPT(T_INT, auth_timeout_ms, "10000", 100, 600000, NULL, 0,
        "Time a new connection has to authenticate before it is closed."),
    OPT(T_STRING, revocation_key_template, "token:blacklist:{jti}", 0, 0, NULL, 0,
        "Redis key whose existence revokes a token; {jti} is replaced by the token's jti."),
    OPT(T_STRING, revocation_fail, "closed", 0, 0, NULL, 0,
        "When Redis cannot answer a revocation check: closed refuses the token, open accepts it."),
    OPT(T_STRING, job_owner_key_template, "ai:job:{jobId}", 0, 0, NULL, 0,
        "Redis hash that names a job's owner; {jobId} is replaced by the job id."),
    OPT(T_STRING, job_owner_field, "userId", 0, 0, NULL, 0,
        "Field of that hash holding the owner's user id."),
    OPT(T_STRING, job_status_key_template, "ai:job:status:{jobId}", 0, 0, NULL, 0,
        "Redis string with a job's state as JSON, read for snapshots when the hash is absent."),
    OPT(T_SIZE, max_state_bytes, "256k", 1024, 16777216, NULL, 0,
        "Largest job state (hash or string) sent in a snapshot; a larger one is sent as "
        "tooLarge, and its owner cannot be checked."),
    OPT(T_INT, max_state_fields, "1024", 16, 1000000, NULL, 0,
        "Most fields a job state hash may have to be sent in a snapshot."),
    OPT(T_BOOL, job_index_write, "yes", 0, 0, NULL, 0,
        "Keep the per-user index of recent jobs in Redis (for the snapshots after a scope "
        "subscribe); \"no\" when the services keep one (set job_index_user_key to it)."),
    OPT(T_STRING, job_index_user_key, "jobwire:user:{userId}:jobs", 0, 0, NULL, 0,
        "Sorted set of a user's recent job ids, newest highest; {userId} is replaced."),
    OPT(T_STRING, job_index_all_key, "jobwire:jobs:recent", 0, 0, NULL, 0,
        "Sorted set of every user's recent job ids, for admins' scope \"all\"."),
    OPT(T_INT, job_index_max_age_s, "3600", 60, 2592000, NULL, 0,
        "Index entries older than this are trimmed (match the job state's TTL)."),
    OPT(T_INT, job_index_max_jobs, "200", 1, 100000, NULL, 0, "Entries kept per index."),
    OPT(T_INT, job_index_refresh_s, "300", 1, 86400, NULL, 0,
        "Each replica writes a job into the index at most once per this interval."),
    OPT(T_INT, scope_snapshot_max_jobs, "50", 1, 1000, NULL, O_ZERO_OFF,
        "Snapshots sent after a scope subscribe (the most recent jobs); 0 = none."),
    {"user_channels", T_LIST, F(user_channel_items), F(user_nchannel_items), "", 0, 0, NULL,
     O_EMPTY_OK,
     "Comma-separated prefix=kind: messages on {prefix}{userId} (e.g. "
     "ai:recommendations:=recommendation) are events of that kind for that user's scope "
     "\"user\" connections; redis_patterns must cover them."},
    OPT(T_INT, probe_interval_ms, "5000", 0, 600000, NULL, 0,
        "How often jobwire publishes a probe on its own channel to measure upstream lag; 0 = "
        "off."),
    OPT(T_INT, probe_timeout_ms, "15000", 100, 3600000, NULL, 0,
        "A probe not seen back within this time makes /readyz fail."),
    OPT(T_BOOL, permessage_deflate, "no", 0, 0, NULL, 0,
        "Offer permessage-deflate (RFC 7692) to clients; costs memory per active connection."),
    OPT(T_INT, deflate_mem_level, "1", 1, 9, NULL, 0,
        "zlib memLevel of each connection's compressor (1 = least memory)."),
    OPT(T_INT, deflate_window_bits, "9", 9, 15, NULL, 0,
        "zlib window of each connection's compressor, log2 bytes (9 = 512 B, least memory)."),
    OPT(T_INT, ws_ping_interval_s, "25", 0, 3600, NULL, 0,
        "A WebSocket PING goes to a connection this long after it opened or last answered one "
        "(under common ingress idle timeouts of 60 s); 0 = never."),
    OPT(T_INT, ws_pong_timeout_s, "10", 1, 3600, NULL, 0,
        "A connection that sends no PONG this long after the PING is hung up."),
    OPT(T_INT, sse_heartbeat_s, "15", 0, 3600, NULL, 0,
        "A comment line goes to an SSE stream idle this long (keeps ingresses from timing it "
        "out, and ends a vanished client's stream); 0 = never."),
    OPT(T_INT, drain_window_ms, "10000", 0, 600000, NULL, 0,
        "On SIGTERM: the time over which clients are told to reconnect elsewhere and closed "
        "with 1001, a few at a time; the process exits when the last one is gone."),
    OPT(T_INT, drain_window_sigint_ms, "1000", 0, 600000, NULL, 0,
        "The same for SIGINT (Ctrl-C): a faster drain."),
    OPT(T_INT, drain_reconnect_max_ms, "5000", 0, 600000, NULL, 0,
        "Upper bound of the random reconnect delay each client is given in its goaway."),
    {"allowed_origins", T_LIST, F(allowed_origins), F(allowed_norigins), "", 0, 0, NULL, O_EMPTY_OK,
     "Comma-separated Origin values allowed for browser connections, e.g. "
     "https://app.example.com; \"\" allows any origin."},
    {"trusted_proxies", T_LIST, F(trusted_proxies), F(trusted_nproxies), "", 0, 0, NULL, O_EMPTY_OK,
     "Comma-separated IPv4/IPv6 addresses or CIDRs whose X-Forwarded-For is believed; \"\" "
     "trusts none."},
    OPT(T_INT, max_connections_per_ip, "100", 1, 10000000, NULL, O_ZERO_OFF,
        "Connections one client address may hold; 0 = unlimited."),
    OPT(T_INT, max_connections_per_user, "20", 1, 10000000, NULL, O_ZERO_OFF,
        "Connections one user id may hold; 0 = unlimited."),
    OPT(T_INT, client_max_messages_per_second, "20", 1, 10000, NULL, 0,
        "Sustained rate of messages one connection may send."),
    OPT(T_INT, client_message_burst, "40", 1, 100000, NULL, 0,
        "Messages one connection may send in a burst above that rate."),
    OPT(T_STRING, redis_url, "", 0, 0, "REDIS_URL", O_URL,
        "redis://[[username]:password@]host[:port][/db]; when set, its parts override "
        "redis_host, redis_port, redis_username and redis_password; rediss:// turns redis_tls "
        "on."),
    OPT(T_STRING, redis_host, "127.0.0.1", 0, 0, "REDIS_HOST", 0,
        "Redis host name or address (used when redis_url does not name one)."),
    OPT(T_INT, redis_port, "6379", 1, 65535, "REDIS_PORT", 0, "Redis TCP port."),
    OPT(T_STRING, redis_username, "", 0, 0, "REDIS_USERNAME", 0,
        "Redis ACL user name; \"\" means the default user."),
    OPT(T_STRING, redis_password, "", 0, 0, "REDIS_PASSWORD", O_SECRET,
        "Redis password; \"\" sends no AUTH. Secret: never logged, masked in dumps."),
    OPT(T_INT, redis_db, "0", 0, 65535, NULL, 0,
        "Database of job states, token revocations and the job index (SELECT); redis_url's /N "
        "sets it. A Redis Cluster has only 0."),
    OPT(T_BOOL, redis_tls, "no", 0, 0, NULL, 0,
        "Connect to Redis (and sentinels, cluster nodes) over TLS; a rediss:// URL sets it. "
        "The peer is always verified; TLS >= 1.2."),
    OPT(T_STRING, redis_tls_ca_file, "", 0, 0, NULL, 0,
        "PEM file of CA certificates that sign the Redis server certificate; \"\" with "
        "redis_tls_ca_dir \"\" uses the system's default CA paths."),
    OPT(T_STRING, redis_tls_ca_dir, "", 0, 0, NULL, 0,
        "Directory of hashed CA certificates (openssl rehash) used like redis_tls_ca_file."),
    OPT(T_STRING, redis_tls_server_name, "", 0, 0, NULL, 0,
        "Name sent as SNI and required on the Redis certificate (DNS or IP SAN); \"\" = the host "
        "connected to (for discovered nodes given as addresses: the configured host name)."),
    OPT(T_STRING, redis_tls_cert_file, "", 0, 0, NULL, 0,
        "PEM client certificate (chain) for Redis servers that require one; needs "
        "redis_tls_key_file."),
    OPT(T_STRING, redis_tls_key_file, "", 0, 0, NULL, 0, "PEM private key of redis_tls_cert_file."),
    {"redis_sentinels", T_LIST, F(redis_sentinels), F(redis_nsentinels), "", 0, 0, NULL, O_EMPTY_OK,
     "Comma-separated host:port of Redis Sentinels, tried in order; the master is discovered "
     "(redis_sentinel_master) and followed on failover. Exclusive with redis_cluster_nodes."},
    OPT(T_STRING, redis_sentinel_master, "", 0, 0, NULL, 0,
        "Master name the sentinels monitor (required with redis_sentinels)."),
    OPT(T_STRING, redis_sentinel_password, "", 0, 0, NULL, O_SECRET,
        "Password of the sentinels (AUTH); \"\" sends none. Secret: never logged."),
    {"redis_cluster_nodes", T_LIST, F(redis_cluster_nodes), F(redis_ncluster_nodes), "", 0, 0, NULL,
     O_EMPTY_OK,
     "Comma-separated host:port seed nodes of a Redis Cluster; the topology is discovered from "
     "them. Exclusive with redis_sentinels."},
    {"redis_patterns", T_LIST, F(redis_patterns), F(redis_npatterns), "ai:job:*", 0, 0, NULL, 0,
     "Comma-separated PSUBSCRIBE patterns (at most 16)."},
    OPT(T_STRING, channel_prefix, "ai:job:", 0, 0, NULL, 0,
        "Prefix of job channels; the job id follows it."),
    OPT(T_INT, redis_cluster_refresh_ms, "15000", 1000, 3600000, NULL, 0,
        "A Redis Cluster's slot map is read again at least this often (and at once on MOVED or a "
        "node failing)."),
    OPT(T_INT, redis_connect_timeout_ms, "10000", 100, 600000, NULL, 0,
        "Time allowed to connect to Redis (TCP and TLS); AUTH is timed by "
        "redis_read_timeout_ms."),
    OPT(T_INT, redis_read_timeout_ms, "5000", 100, 600000, NULL, 0,
        "Time to wait for the reply to a command sent to Redis."),
    OPT(T_INT, redis_ping_interval_ms, "15000", 500, 600000, NULL, O_ZERO_OFF,
        "Interval of PINGs that detect a dead Redis link; 0 disables them."),
    OPT(T_INT, reconnect_initial_ms, "200", 1, 600000, NULL, 0,
        "First delay before reconnecting to Redis."),
    OPT(T_INT, reconnect_max_ms, "30000", 1, 3600000, NULL, 0,
        "Largest reconnect delay; must be >= reconnect_initial_ms."),
    OPT(T_DOUBLE, reconnect_multiplier, "2.0", 1.0, 10.0, NULL, 0,
        "Growth factor of the reconnect delay after each failure (the delay is jittered)."),
    OPT(T_INT, reconnect_reset_after_ms, "30000", 0, 3600000, NULL, 0,
        "A Redis link that stayed up this long resets the backoff to reconnect_initial_ms."),
    OPT(T_SIZE, max_payload_bytes, "65536", 64, 16777216, NULL, 0,
        "Largest Redis message forwarded; larger ones are dropped and counted."),
    OPT(T_SIZE, inbox_max_events, "65536", 16, 10000000, NULL, 0,
        "Events buffered between the Redis thread and the client thread; past it the Redis "
        "thread stops reading until the client thread catches up (Redis holds the rest)."),
    OPT(T_LEVEL, log_level, "info", 0, 0, NULL, 0, "Least severe level logged."),
    OPT(T_LOGFMT, log_format, "text", 0, 0, NULL, 0,
        "Log line format: text for a terminal, json (one object per line) for log collectors."),
};

const size_t jw_config_nopts = sizeof jw_config_opts / sizeof jw_config_opts[0];
