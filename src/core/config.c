/*
 * Configuration: every setting is one row of the `opts` table below (name, type, default, bounds,
 * environment alias, flags, help). The file parser, the environment overrides, the dump behind
 * --check-config and --help all walk that table, so a key cannot exist in one and be missing from
 * another. Defaults are written in file syntax and go through the same parser as user values,
 * which keeps the documented default and the effective default identical.
 *
 * Precedence: built-in default < file < environment (JOBWIRE_<KEY>, which beats the plain alias
 * such as REDIS_HOST). jw_config_finish() then lets the parts of redis_url override
 * redis_host/port/username/password, because a URL is the more specific statement.
 *
 * Secrets (redis_password, the password inside redis_url) are never echoed in error messages and
 * are masked by jw_config_dump().
 */
#include "jobwire/config.h"

#include "../gateway/access.h"
#include "redisurl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include "jobwire/alloc.h"

enum opt_type { T_STRING, T_INT, T_SIZE, T_DOUBLE, T_BOOL, T_LEVEL, T_LIST, T_LOGFMT };

#define O_SECRET 1u   /* never echoed in errors, masked as ******** in dumps */
#define O_ZERO_OFF 2u /* 0 is accepted outside min..max and means "off" */
#define O_ADDRESS 4u  /* an IPv4/IPv6 literal or "localhost": jobwire binds exactly this */
#define O_URL 8u      /* may embed a password: never echoed, password masked in dumps */

#define O_EMPTY_OK 16u /* T_LIST: "" is accepted and means no items */

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;        /* the field in struct jw_config */
    size_t count_off;  /* T_LIST only: its size_t element count */
    const char *def;   /* default in file syntax, parsed like any user value */
    double min, max;   /* T_INT, T_SIZE, T_DOUBLE; exact in a double for every bound used */
    const char *alias; /* environment variable accepted besides JOBWIRE_<NAME>, or NULL */
    unsigned flags;
    const char *help;
};

#define F(field) offsetof(struct jw_config, field)
// clang-format off
#define OPT(type, name, def, lo, hi, alias, flags, help) \
    {#name, type, F(name), 0, def, lo, hi, alias, flags, help}
// clang-format on

static const struct opt opts[] = {
    OPT(T_STRING, listen_address, "127.0.0.1", 0, 0, NULL, O_ADDRESS,
        "Address the HTTP/WebSocket listener binds to: an IPv4 or IPv6 literal (0.0.0.0 or :: "
        "for all interfaces) or localhost."),
    OPT(T_INT, listen_port, "8080", 1, 65535, NULL, 0, "TCP port of the HTTP/WebSocket listener."),
    OPT(T_STRING, web_root, "web", 0, 0, NULL, 0,
        "Directory of static files served over HTTP; \"\" disables static files."),
    OPT(T_SIZE, client_queue_max_bytes, "1048576", 4096, 1073741824, NULL, 0,
        "Outbound bytes queued for one slow client before it is disconnected."),
    OPT(T_INT, client_queue_max_messages, "4096", 1, 1000000, NULL, 0,
        "Frames queued for one slow client (after progress conflation) before it is "
        "disconnected with 4008."),
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
        "File holding the HS256 secret, read at start (one trailing newline stripped); "
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
        "A WebSocket PING goes to a connection idle this long (under common ingress idle "
        "timeouts of 60 s); 0 = never."),
    OPT(T_INT, ws_pong_timeout_s, "10", 1, 3600, NULL, 0,
        "A connection that stays silent this long after the PING is closed."),
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
    OPT(T_INT, redis_connect_timeout_ms, "10000", 100, 600000, NULL, 0,
        "Time allowed to connect (and authenticate) to Redis."),
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
        "Events buffered between the Redis thread and the WebSocket thread."),
    OPT(T_LEVEL, log_level, "info", 0, 0, NULL, 0, "Least severe level logged."),
    OPT(T_LOGFMT, log_format, "text", 0, 0, NULL, 0,
        "Log line format: text for a terminal, json (one object per line) for log collectors."),
};

#define NOPTS (sizeof opts / sizeof opts[0])

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const logfmt_names[] = {"text", "json"};

__attribute__((format(printf, 3, 4))) static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void *
field(const struct jw_config *c, size_t off)
{
    return (char *)c + off;
}

static const struct opt *
find_opt(const char *key)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, key) == 0)
            return &opts[i];
    return NULL;
}

static void
env_name(const struct opt *o, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "JOBWIRE_%s", o->name);

    for (size_t i = 0; i < n && i < len; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

/* The accepted values of an option in words; used by error messages and by --help. */
static void
describe(const struct opt *o, char *buf, size_t len)
{
    switch (o->type) {
    case T_INT:
    case T_SIZE:
    case T_DOUBLE:
        snprintf(buf, len, "%s%.15g..%.15g%s", (o->flags & O_ZERO_OFF) ? "0 (off) or " : "", o->min,
                 o->max,
                 o->type != T_SIZE           ? ""
                 : strstr(o->name, "_bytes") ? " bytes; suffix k, m or g for KiB, MiB, GiB"
                                             : "; suffix k, m or g multiplies by 1024");
        break;
    case T_BOOL:
        snprintf(buf, len, "yes|no|true|false|on|off|1|0");
        break;
    case T_LEVEL:
        snprintf(buf, len, "debug|info|warn|error");
        break;
    case T_LOGFMT:
        snprintf(buf, len, "text|json");
        break;
    case T_LIST:
        snprintf(buf, len, "comma-separated, %d..%d non-empty items",
                 (o->flags & O_EMPTY_OK) ? 0 : 1, JW_CONFIG_MAX_PATTERNS);
        break;
    case T_STRING:
        snprintf(buf, len, "%s",
                 (o->flags & O_ADDRESS) ? "an IPv4 or IPv6 literal, or localhost" : "any string");
        break;
    }
}

static bool
in_bounds(const struct opt *o, double v)
{
    if ((o->flags & O_ZERO_OFF) && v == 0)
        return true;
    return v >= o->min && v <= o->max; /* false for NaN */
}

/* Decimal integer, optionally with a k/m/g (KiB/MiB/GiB) suffix. 1 = not a number, 2 = range. */
static int
parse_integer(const char *s, bool suffix, long long *out)
{
    char *end;
    long long v;

    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && !suffix && isdigit((unsigned char)s[1])))
        return 1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return 2;
    if (suffix && *end != '\0' && end[1] == '\0') {
        const char *units = "kKmMgG";
        const char *u = strchr(units, *end);
        if (u == NULL)
            return 1;
        for (long i = 0; i <= (u - units) / 2; i++) {
            if (v > LLONG_MAX / 1024)
                return 2;
            v *= 1024;
        }
        end++;
    }
    if (*end != '\0')
        return 1;
    *out = v;
    return 0;
}

static bool
parse_bool(const char *s, bool *out)
{
    static const char *const words[] = {"yes", "no", "true", "false", "on", "off", "1", "0"};

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strcasecmp(s, words[i]) == 0) {
            *out = i % 2 == 0;
            return true;
        }
    }
    return false;
}

static void
free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i]);
        items[i] = NULL;
    }
}

/* Splits a comma-separated list into trimmed, non-empty, newly allocated items. */
static int
parse_list(const struct opt *o, const char *s, char **items, size_t *count, char *err,
           size_t errlen)
{
    size_t n = 0;
    const char *p = s;

    if ((o->flags & O_EMPTY_OK) && s[strspn(s, " \t")] == '\0') {
        *count = 0;
        return 0;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *b = p, *e = comma ? comma : p + strlen(p);
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (b == e || n == JW_CONFIG_MAX_PATTERNS) {
            free_list(items, n);
            if (b == e)
                return fail(err, errlen,
                            "%s: empty item in '%.200s' (comma-separated, 1..%d items)", o->name, s,
                            JW_CONFIG_MAX_PATTERNS);
            return fail(err, errlen, "%s: more than %d items in '%.200s'", o->name,
                        JW_CONFIG_MAX_PATTERNS, s);
        }
        items[n++] = jw_strndup(b, (size_t)(e - b));
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *count = n;
    return 0;
}

static bool
valid_address(const char *s)
{
    unsigned char buf[16];

    return strcmp(s, "localhost") == 0 || inet_pton(AF_INET, s, buf) == 1 ||
           inet_pton(AF_INET6, s, buf) == 1;
}

/* Parses `v` for option `o` and stores it; on error `c` is unchanged. */
static int
set_opt(struct jw_config *c, const struct opt *o, const char *v, char *err, size_t errlen)
{
    const char *shown = (o->flags & (O_SECRET | O_URL)) ? "(hidden)" : v;
    void *p = field(c, o->off);
    char range[128];
    long long n = 0;
    int rc;

    describe(o, range, sizeof range);
    switch (o->type) {
    case T_STRING:
        if ((o->flags & O_ADDRESS) && !valid_address(v))
            return fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name, shown,
                        range);
        free(*(char **)p);
        *(char **)p = jw_strdup(v);
        return 0;
    case T_INT:
    case T_SIZE:
        rc = parse_integer(v, o->type == T_SIZE, &n);
        if (rc == 1)
            return fail(err, errlen, "%s: invalid value '%.200s': expected %s%s", o->name, shown,
                        o->type == T_SIZE ? "a size " : "an integer ", range);
        if (rc == 2 || !in_bounds(o, (double)n))
            return fail(err, errlen, "%s: value '%.200s' is out of range: %s", o->name, shown,
                        range);
        if (o->type == T_INT)
            *(int *)p = (int)n;
        else
            *(size_t *)p = (size_t)n;
        return 0;
    case T_DOUBLE: {
        char *end;
        double d;
        errno = 0;
        d = strtod(v, &end);
        if (end == v || *end != '\0' || isspace((unsigned char)v[0]))
            return fail(err, errlen, "%s: invalid value '%.200s': expected a number %s", o->name,
                        shown, range);
        if (errno == ERANGE || !in_bounds(o, d))
            return fail(err, errlen, "%s: value '%.200s' is out of range: %s", o->name, shown,
                        range);
        *(double *)p = d;
        return 0;
    }
    case T_BOOL:
        if (!parse_bool(v, (bool *)p))
            return fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name, shown,
                        range);
        return 0;
    case T_LEVEL:
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(v, level_names[i]) == 0) {
                *(enum jw_log_level *)p = (enum jw_log_level)i;
                return 0;
            }
        }
        return fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name, shown, range);
    case T_LOGFMT:
        for (size_t i = 0; i < 2; i++) {
            if (strcasecmp(v, logfmt_names[i]) == 0) {
                *(enum jw_log_format *)p = (enum jw_log_format)i;
                return 0;
            }
        }
        return fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name, shown, range);
    case T_LIST: {
        char *items[JW_CONFIG_MAX_PATTERNS];
        size_t count = 0;
        size_t *np = field(c, o->count_off);
        if (parse_list(o, v, items, &count, err, errlen) != 0)
            return -1;
        free_list(p, *np);
        memcpy(p, items, count * sizeof items[0]);
        *np = count;
        return 0;
    }
    }
    return fail(err, errlen, "%s: unsupported option type", o->name);
}

void
jw_config_defaults(struct jw_config *c)
{
    char reason[256];

    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NOPTS; i++) {
        if (set_opt(c, &opts[i], opts[i].def, reason, sizeof reason) != 0) {
            /* A broken row in the table above; the unit tests catch it before a release. */
            fprintf(stderr, "jobwire: bad built-in default: %s\n", reason);
            abort();
        }
    }
}

int
jw_config_set(struct jw_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct opt *o = find_opt(key);

    if (o == NULL)
        return fail(err, errlen, "unknown key '%.100s'", key);
    return set_opt(c, o, value, err, errlen);
}

static char *
trim(char *s)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One "key value" line, already trimmed and known not to be a comment. */
static int
load_line(struct jw_config *c, char *s, int *seen, int lineno, char *err, size_t errlen)
{
    const struct opt *o;
    char *value = s;
    size_t idx, n;

    while (*value != '\0' && !isspace((unsigned char)*value))
        value++;
    if (*value != '\0')
        *value++ = '\0';
    value = trim(value);
    o = find_opt(s);
    if (o == NULL)
        return fail(err, errlen, "unknown key '%.100s'%s", s,
                    strchr(s, '=') ? " (the format is `key value`, without '=')" : "");
    idx = (size_t)(o - opts);
    if (seen[idx] != 0)
        return fail(err, errlen, "duplicate key '%s' (first set on line %d)", o->name, seen[idx]);
    seen[idx] = lineno;
    if (*value == '\0')
        return fail(err, errlen, "%s: missing value (write \"\" for an empty string)", o->name);
    n = strlen(value);
    if (value[0] == '"') {
        /* No escapes: everything between the outer quotes is the value. */
        if (n < 2 || value[n - 1] != '"')
            return fail(err, errlen, "%s: unterminated double quote", o->name);
        value[n - 1] = '\0';
        value++;
    }
    return set_opt(c, o, value, err, errlen);
}

int
jw_config_load_file(struct jw_config *c, const char *path, char *err, size_t errlen)
{
    int seen[NOPTS] = {0}; /* line of each key's first setting, 0 = not yet */
    char reason[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        char *s = line;
        lineno++;
        if ((size_t)n != strlen(line)) {
            rc = fail(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            break;
        }
        if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3; /* UTF-8 byte order mark from some editors */
        s = trim(s);
        if (*s == '\0' || *s == '#')
            continue;
        if (load_line(c, s, seen, lineno, reason, sizeof reason) != 0)
            rc = fail(err, errlen, "%s:%d: %s", path, lineno, reason);
    }
    if (rc == 0 && ferror(f))
        rc = fail(err, errlen, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

int
jw_config_apply_env(struct jw_config *c, char *err, size_t errlen)
{
    char reason[512], var[64];

    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        const char *used = var, *v;
        env_name(o, var, sizeof var);
        /* JOBWIRE_<KEY> wins over the alias; the alias is then not even parsed. */
        v = getenv(var);
        if (v == NULL && o->alias != NULL) {
            used = o->alias;
            v = getenv(used);
        }
        if (v == NULL)
            continue;
        if (set_opt(c, o, v, reason, sizeof reason) != 0) {
            bool k8s = used == o->alias && strncmp(v, "tcp://", 6) == 0;
            return fail(err, errlen, "%s: %s%s%s", used, reason,
                        k8s ? " (looks like a Kubernetes service link variable; set " : "",
                        k8s ? "enableServiceLinks: false or the JOBWIRE_ variable)" : "");
        }
    }
    return 0;
}

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
        return fail(err, errlen, "jwt_secret and jwt_secret_file are both set; use one");
    f = fopen(c->jwt_secret_file, "rb");
    if (f == NULL)
        return fail(err, errlen, "jwt_secret_file: %.200s: %s", c->jwt_secret_file,
                    strerror(errno));
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == sizeof buf)
        return fail(err, errlen, "jwt_secret_file: %.200s: larger than 4096 bytes",
                    c->jwt_secret_file);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (memchr(buf, '\0', n) != NULL)
        return fail(err, errlen, "jwt_secret_file: %.200s: contains a NUL byte",
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
        return fail(err, errlen,
                    "jwt_secret: too short (%zu bytes); an HS256 secret needs at least 32 "
                    "random bytes, e.g. `openssl rand -base64 48`",
                    strlen(c->jwt_secret));
    if (c->jwt_user_claim == NULL || c->jwt_user_claim[0] == '\0')
        return fail(err, errlen, "jwt_user_claim: must not be empty");
    if (c->jwt_role_claim != NULL && c->jwt_role_claim[0] != '\0' &&
        (c->jwt_admin_role == NULL || c->jwt_admin_role[0] == '\0'))
        return fail(err, errlen, "jwt_admin_role: must not be empty when jwt_role_claim is set");
    if (strcmp(c->revocation_fail, "closed") != 0 && strcmp(c->revocation_fail, "open") != 0)
        return fail(err, errlen, "revocation_fail: invalid value '%.50s': expected closed|open",
                    c->revocation_fail);
    c->revocation_fail_open = strcmp(c->revocation_fail, "open") == 0;
    if (strstr(c->revocation_key_template, "{jti}") == NULL)
        return fail(err, errlen, "revocation_key_template: must contain {jti}");
    if (strstr(c->job_owner_key_template, "{jobId}") == NULL)
        return fail(err, errlen, "job_owner_key_template: must contain {jobId}");
    if (strstr(c->job_status_key_template, "{jobId}") == NULL)
        return fail(err, errlen, "job_status_key_template: must contain {jobId}");
    if (c->job_owner_field[0] == '\0')
        return fail(err, errlen, "job_owner_field: must not be empty");
    struct jw_cidr cidr;
    for (size_t i = 0; i < c->trusted_nproxies; i++)
        if (jw_cidr_parse(c->trusted_proxies[i], &cidr) != 0)
            return fail(err, errlen,
                        "trusted_proxies: '%.100s' is not an IPv4/IPv6 address or CIDR",
                        c->trusted_proxies[i]);
    for (size_t i = 0; i < c->allowed_norigins; i++)
        if (strstr(c->allowed_origins[i], "://") == NULL)
            return fail(err, errlen,
                        "allowed_origins: '%.100s' is not an origin (scheme://host[:port])",
                        c->allowed_origins[i]);
    if (c->dev_auth && ((c->jwt_secret && c->jwt_secret[0]) || c->jwt_npublic_keys))
        return fail(err, errlen,
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
            return fail(err, errlen,
                        "%s: set but redis_tls is off (use rediss:// or redis_tls yes)",
                        files[i].key);
        if (access(files[i].path, R_OK) != 0)
            return fail(err, errlen, "%s: %.200s: %s", files[i].key, files[i].path,
                        strerror(errno));
    }
    if (set_str(c->redis_tls_cert_file) != set_str(c->redis_tls_key_file))
        return fail(err, errlen, "redis_tls_cert_file and redis_tls_key_file must be set together");
    if (c->redis_nsentinels > 0 && c->redis_ncluster_nodes > 0)
        return fail(err, errlen, "redis_sentinels and redis_cluster_nodes are exclusive");
    if (c->redis_nsentinels > 0 && !set_str(c->redis_sentinel_master))
        return fail(err, errlen, "redis_sentinel_master: required with redis_sentinels");
    for (size_t i = 0; i < c->redis_nsentinels; i++)
        if (!valid_host_port(c->redis_sentinels[i]))
            return fail(err, errlen, "redis_sentinels: '%.100s' is not host:port",
                        c->redis_sentinels[i]);
    for (size_t i = 0; i < c->redis_ncluster_nodes; i++)
        if (!valid_host_port(c->redis_cluster_nodes[i]))
            return fail(err, errlen, "redis_cluster_nodes: '%.100s' is not host:port",
                        c->redis_cluster_nodes[i]);
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
    }
    if (finish_redis_topology(c, err, errlen) != 0)
        return -1;
    if (c->redis_host == NULL || c->redis_host[0] == '\0')
        return fail(err, errlen, "redis_host: must not be empty");
    if (c->reconnect_max_ms < c->reconnect_initial_ms)
        return fail(err, errlen, "reconnect_max_ms (%d) must be >= reconnect_initial_ms (%d)",
                    c->reconnect_max_ms, c->reconnect_initial_ms);
    if (c->redis_npatterns == 0)
        return fail(err, errlen, "redis_patterns: at least one pattern is required");
    if (finish_auth(c, err, errlen) != 0)
        return -1;
    return 0;
}

static void
print_value(FILE *out, const char *s)
{
    if (s[0] == '\0' || s[0] == '"' || strpbrk(s, " \t") != NULL)
        fprintf(out, "\"%s\"", s);
    else
        fputs(s, out);
}

void
jw_config_dump(const struct jw_config *c, FILE *out)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        const void *p = field(c, o->off);
        fprintf(out, "%s ", o->name);
        if (o->type == T_STRING) {
            const char *s = *(char *const *)p ? *(char *const *)p : "";
            char *m = (o->flags & O_URL) ? jw_redis_url_mask(s) : NULL;
            if ((o->flags & O_SECRET) && s[0] != '\0')
                fputs("********", out);
            else
                print_value(out, m ? m : s);
            free(m);
        } else if (o->type == T_LIST) {
            char *const *items = p;
            size_t n = *(const size_t *)field(c, o->count_off), len = 1;
            for (size_t k = 0; k < n; k++)
                len += strlen(items[k]) + 1;
            char *joined = jw_calloc(1, len);
            for (size_t k = 0; k < n; k++)
                strcat(strcat(joined, k > 0 ? "," : ""), items[k]);
            print_value(out, joined);
            free(joined);
        } else if (o->type == T_INT) {
            fprintf(out, "%d", *(const int *)p);
        } else if (o->type == T_SIZE) {
            fprintf(out, "%zu", *(const size_t *)p);
        } else if (o->type == T_DOUBLE) {
            fprintf(out, "%g", *(const double *)p);
        } else if (o->type == T_BOOL) {
            fputs(*(const bool *)p ? "yes" : "no", out);
        } else if (o->type == T_LOGFMT) {
            unsigned f = (unsigned)*(const enum jw_log_format *)p;
            fputs(f < 2 ? logfmt_names[f] : "?", out);
        } else {
            unsigned l = (unsigned)*(const enum jw_log_level *)p;
            fputs(l < 4 ? level_names[l] : "?", out);
        }
        fputc('\n', out);
    }
}

void
jw_config_print_help(FILE *out)
{
    char range[128], var[64];

    fputs("Configuration keys. The file holds `key value` lines; JOBWIRE_<KEY> (or the alias\n"
          "shown) overrides the file; a redis_url overrides redis_host/port/username/password.\n\n",
          out);
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        describe(o, range, sizeof range);
        env_name(o, var, sizeof var);
        const char *q = (o->type == T_STRING || o->type == T_LIST) ? "\"" : "";
        fprintf(out, "  %s (default %s%s%s; %s)\n", o->name, q, o->def, q, range);
        fprintf(out, "      env %s%s%s\n      %s\n", var, o->alias ? ", " : "",
                o->alias ? o->alias : "", o->help);
    }
}

void
jw_config_free(struct jw_config *c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->type == T_STRING) {
            char **s = field(c, o->off);
            free(*s);
            *s = NULL;
        } else if (o->type == T_LIST) {
            size_t *n = field(c, o->count_off);
            free_list(field(c, o->off), *n);
            *n = 0;
        }
    }
}
