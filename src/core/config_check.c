/*
 * What can only be checked once every setting is read: redis_url into its parts, files that must
 * exist, settings that must agree with each other, and values derived from others. Each failure
 * names the setting and says what is wrong.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_private.h"
#include "jobwire/alloc.h"
#include "jobwire/cidr.h"
#include "jobwire/event.h"
#include "jobwire/utf8.h"
#include "redisurl.h"

static void
replace(char **dst, char *src)
{
    free(*dst);
    *dst = src;
}

/* jwt_secret_file into jwt_secret: at most 4 KiB, no NUL, trailing CR/LF stripped. */
static int
load_secret_file(struct jw_config *c, char *err, size_t errlen)
{
    char buf[4097];
    size_t n;
    FILE *f;

    if (c->jwt_secret != NULL && c->jwt_secret[0] != '\0')
        return jw_config_fail(err, errlen, "jwt_secret and jwt_secret_file are both set; use one");
    f = fopen(c->jwt_secret_file, "rb");
    if (f == NULL)
        return jw_config_fail(err, errlen, "jwt_secret_file: %.200s: %s", c->jwt_secret_file,
                              strerror(errno));
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == sizeof buf)
        return jw_config_fail(err, errlen, "jwt_secret_file: %.200s: larger than 4096 bytes",
                              c->jwt_secret_file);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (memchr(buf, '\0', n) != NULL)
        return jw_config_fail(err, errlen, "jwt_secret_file: %.200s: contains a NUL byte",
                              c->jwt_secret_file);
    replace(&c->jwt_secret, jw_strndup(buf, n));
    explicit_bzero(buf, sizeof buf);
    c->jwt_secret_from_file = true;
    return 0;
}

/* Checks of the authentication and limit settings (security issue #3). */
static int
finish_auth(struct jw_config *c, char *err, size_t errlen)
{
    if (c->jwt_secret_file != NULL && c->jwt_secret_file[0] != '\0' && !c->jwt_secret_from_file &&
        load_secret_file(c, err, errlen) != 0)
        return -1;
    if (c->jwt_secret != NULL && c->jwt_secret[0] != '\0' && strlen(c->jwt_secret) < 32)
        return jw_config_fail(
            err, errlen,
            "jwt_secret: too short (%zu bytes); an HS256 secret needs at least 32 "
            "random bytes, e.g. `openssl rand -base64 48`",
            strlen(c->jwt_secret));
    if (c->jwt_user_claim == NULL || c->jwt_user_claim[0] == '\0')
        return jw_config_fail(err, errlen, "jwt_user_claim: must not be empty");
    if (c->jwt_role_claim != NULL && c->jwt_role_claim[0] != '\0' &&
        (c->jwt_admin_role == NULL || c->jwt_admin_role[0] == '\0'))
        return jw_config_fail(err, errlen,
                              "jwt_admin_role: must not be empty when jwt_role_claim is set");
    if (strcmp(c->revocation_fail, "closed") != 0 && strcmp(c->revocation_fail, "open") != 0)
        return jw_config_fail(err, errlen,
                              "revocation_fail: invalid value '%.50s': expected closed|open",
                              c->revocation_fail);
    c->revocation_fail_open = strcmp(c->revocation_fail, "open") == 0;
    if (strstr(c->revocation_key_template, "{jti}") == NULL)
        return jw_config_fail(err, errlen, "revocation_key_template: must contain {jti}");
    if (strstr(c->job_owner_key_template, "{jobId}") == NULL)
        return jw_config_fail(err, errlen, "job_owner_key_template: must contain {jobId}");
    if (strstr(c->job_status_key_template, "{jobId}") == NULL)
        return jw_config_fail(err, errlen, "job_status_key_template: must contain {jobId}");
    if (c->job_owner_field[0] == '\0')
        return jw_config_fail(err, errlen, "job_owner_field: must not be empty");
    struct jw_cidr cidr;
    for (size_t i = 0; i < c->trusted_nproxies; i++)
        if (jw_cidr_parse(c->trusted_proxies[i], &cidr) != 0)
            return jw_config_fail(err, errlen,
                                  "trusted_proxies: '%.100s' is not an IPv4/IPv6 address or CIDR",
                                  c->trusted_proxies[i]);
    for (size_t i = 0; i < c->allowed_norigins; i++)
        if (strstr(c->allowed_origins[i], "://") == NULL)
            return jw_config_fail(
                err, errlen, "allowed_origins: '%.100s' is not an origin (scheme://host[:port])",
                c->allowed_origins[i]);
    if (c->dev_auth && ((c->jwt_secret && c->jwt_secret[0]) || c->jwt_npublic_keys))
        return jw_config_fail(err, errlen,
                              "dev_auth: cannot be combined with JWT keys (jwt_secret, "
                              "jwt_public_keys); dev_auth is for development only");
    return 0;
}

static bool
set_str(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* host:port, [v6]:port; the port 1..65535. */
static bool
valid_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0')
        return false;
    if (s[0] == '[' ? colon[-1] != ']' : memchr(s, ':', (size_t)(colon - s)) != NULL)
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}

/* TLS files, Sentinel and Cluster settings (issue #4; docs/REDIS.md). */
static int
finish_redis_topology(struct jw_config *c, char *err, size_t errlen)
{
    const struct {
        const char *key, *path;
    } files[] = {{"redis_tls_ca_file", c->redis_tls_ca_file},
                 {"redis_tls_ca_dir", c->redis_tls_ca_dir},
                 {"redis_tls_cert_file", c->redis_tls_cert_file},
                 {"redis_tls_key_file", c->redis_tls_key_file}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!set_str(files[i].path))
            continue;
        if (!c->redis_tls)
            return jw_config_fail(err, errlen,
                                  "%s: set but redis_tls is off (use rediss:// or redis_tls yes)",
                                  files[i].key);
        if (access(files[i].path, R_OK) != 0)
            return jw_config_fail(err, errlen, "%s: %.200s: %s", files[i].key, files[i].path,
                                  strerror(errno));
    }
    if (set_str(c->redis_tls_cert_file) != set_str(c->redis_tls_key_file))
        return jw_config_fail(err, errlen,
                              "redis_tls_cert_file and redis_tls_key_file must be set together");
    if (c->redis_nsentinels > 0 && c->redis_ncluster_nodes > 0)
        return jw_config_fail(err, errlen, "redis_sentinels and redis_cluster_nodes are exclusive");
    if (c->redis_nsentinels > 0 && !set_str(c->redis_sentinel_master))
        return jw_config_fail(err, errlen, "redis_sentinel_master: required with redis_sentinels");
    for (size_t i = 0; i < c->redis_nsentinels; i++)
        if (!valid_host_port(c->redis_sentinels[i]))
            return jw_config_fail(err, errlen, "redis_sentinels: '%.100s' is not host:port",
                                  c->redis_sentinels[i]);
    for (size_t i = 0; i < c->redis_ncluster_nodes; i++)
        if (!valid_host_port(c->redis_cluster_nodes[i]))
            return jw_config_fail(err, errlen, "redis_cluster_nodes: '%.100s' is not host:port",
                                  c->redis_cluster_nodes[i]);
    return 0;
}

/* user_channels items "prefix=kind" into the two derived arrays. */
static int
finish_user_channels(struct jw_config *c, char *err, size_t errlen)
{
    jw_config_free_derived(c);
    for (size_t i = 0; i < c->user_nchannel_items; i++) {
        const char *item = c->user_channel_items[i];
        const char *eq = strrchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return jw_config_fail(err, errlen,
                                  "user_channels: '%.100s' is not prefix=kind (e.g. "
                                  "ai:recommendations:=recommendation)",
                                  item);
        char *prefix = jw_strndup(item, (size_t)(eq - item));
        if (strncmp(prefix, c->channel_prefix, strlen(c->channel_prefix)) == 0 ||
            strncmp(c->channel_prefix, prefix, strlen(prefix)) == 0) {
            free(prefix);
            return jw_config_fail(err, errlen,
                                  "user_channels: '%.100s' overlaps channel_prefix '%.100s'", item,
                                  c->channel_prefix);
        }
        if (!jw_utf8_valid(eq + 1, strlen(eq + 1)) || strpbrk(eq + 1, "\"\\") ||
            jw_kind_from_name(eq + 1, strlen(eq + 1)) != JW_KIND_OTHER) {
            free(prefix);
            return jw_config_fail(err, errlen,
                                  "user_channels: kind '%.50s' must be a new word (not status, "
                                  "progress, complete or error; no quotes)",
                                  eq + 1);
        }
        c->user_channel_prefixes[i] = prefix;
        c->user_channel_kinds[i] = jw_strdup(eq + 1);
        c->user_nchannels = i + 1;
    }
    return 0;
}

void
jw_config_free_derived(struct jw_config *c)
{
    for (size_t i = 0; i < c->user_nchannels; i++) {
        free(c->user_channel_prefixes[i]);
        free(c->user_channel_kinds[i]);
        c->user_channel_prefixes[i] = c->user_channel_kinds[i] = NULL;
    }
    c->user_nchannels = 0;
}

/* Limits that must agree with each other, and the job index keys. */
static int
finish_limits(struct jw_config *c, char *err, size_t errlen)
{
    /* A subscribe's own answer (ack + snapshots) must fit in the frame limit of the queue, or a
     * client allowed to subscribe would be cut off by its own subscribe. */
    int answer = c->client_max_subscriptions > c->scope_snapshot_max_jobs
                     ? c->client_max_subscriptions
                     : c->scope_snapshot_max_jobs;
    if (c->client_queue_max_messages < answer + 16)
        return jw_config_fail(err, errlen,
                              "client_queue_max_messages (%d) must exceed client_max_subscriptions "
                              "and scope_snapshot_max_jobs (%d) by at least 16",
                              c->client_queue_max_messages, answer);
    if (c->client_conflate_bytes > c->client_queue_max_bytes)
        return jw_config_fail(err, errlen,
                              "client_conflate_bytes (%zu) must not exceed client_queue_max_bytes "
                              "(%zu)",
                              c->client_conflate_bytes, c->client_queue_max_bytes);
    if (strstr(c->job_index_user_key, "{userId}") == NULL)
        return jw_config_fail(err, errlen, "job_index_user_key: must contain {userId}");
    if (c->job_index_all_key[0] == '\0')
        return jw_config_fail(err, errlen, "job_index_all_key: must not be empty");
    if (c->probe_interval_ms && c->probe_timeout_ms <= c->probe_interval_ms)
        return jw_config_fail(err, errlen,
                              "probe_timeout_ms (%d) must be longer than probe_interval_ms (%d)",
                              c->probe_timeout_ms, c->probe_interval_ms);
    if (c->admin_port && c->admin_port == c->listen_port &&
        (!c->admin_listen_address[0] || strcmp(c->admin_listen_address, c->listen_address) == 0))
        return jw_config_fail(err, errlen, "admin_port: must differ from listen_port");
    return 0;
}

int
jw_config_finish(struct jw_config *c, char *err, size_t errlen)
{
    if (c->redis_url != NULL && c->redis_url[0] != '\0') {
        struct jw_redis_url u;
        if (jw_redis_url_parse(c->redis_url, &u, err, errlen) != 0)
            return -1;
        replace(&c->redis_host, u.host);
        if (u.port != 0)
            c->redis_port = u.port;
        if (u.has_auth) {
            replace(&c->redis_username, u.user);
            replace(&c->redis_password, u.pass);
        }
        if (u.tls)
            c->redis_tls = true;
        if (u.db >= 0)
            c->redis_db = u.db;
    }
    if (c->redis_db > 0 && c->redis_ncluster_nodes > 0)
        return jw_config_fail(err, errlen,
                              "redis_db: a Redis Cluster has only database 0, not %d (set by "
                              "redis_db or by redis_url's /N)",
                              c->redis_db);
    if (finish_user_channels(c, err, errlen) != 0 || finish_limits(c, err, errlen) != 0)
        return -1;
    if (finish_redis_topology(c, err, errlen) != 0)
        return -1;
    if (c->redis_host == NULL || c->redis_host[0] == '\0')
        return jw_config_fail(err, errlen, "redis_host: must not be empty");
    if (c->reconnect_max_ms < c->reconnect_initial_ms)
        return jw_config_fail(err, errlen,
                              "reconnect_max_ms (%d) must be >= reconnect_initial_ms (%d)",
                              c->reconnect_max_ms, c->reconnect_initial_ms);
    if (c->redis_npatterns == 0)
        return jw_config_fail(err, errlen, "redis_patterns: at least one pattern is required");
    if (finish_auth(c, err, errlen) != 0)
        return -1;
    return 0;
}
