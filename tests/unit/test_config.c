/*
 * Unit tests for the configuration table: defaults, every value type, file syntax and its
 * file:line errors, environment precedence and aliases, redis_url parsing, the dump (secrets
 * masked) and the shipped conf/jobwire.conf and docs/CONFIGURATION.md staying in step with the
 * table.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobwire/config.h"
#include "../../src/core/config_private.h"

#ifndef JW_SOURCE_DIR
#define JW_SOURCE_DIR "."
#endif

/* Every key of the table, in table order: the dump must list exactly these. */
static const char *const keys[] = {
    "listen_address",
    "listen_port",
    "web_root",
    "admin_listen_address",
    "admin_port",
    "client_queue_max_bytes",
    "client_send_buffer_bytes",
    "client_queue_max_messages",
    "client_conflate_bytes",
    "client_conflate_after_ms",
    "client_stall_timeout_s",
    "resume_window_events",
    "resume_window_bytes",
    "client_max_message_bytes",
    "client_max_subscriptions",
    "dev_auth",
    "jwt_secret",
    "jwt_secret_file",
    "jwt_public_keys",
    "jwt_issuer",
    "jwt_audience",
    "jwt_leeway_seconds",
    "jwt_user_claim",
    "jwt_role_claim",
    "jwt_admin_role",
    "auth_allow_query_token",
    "auth_timeout_ms",
    "revocation_key_template",
    "revocation_fail",
    "job_owner_key_template",
    "job_owner_field",
    "job_status_key_template",
    "max_state_bytes",
    "max_state_fields",
    "job_index_write",
    "job_index_user_key",
    "job_index_all_key",
    "job_index_max_age_s",
    "job_index_max_jobs",
    "job_index_refresh_s",
    "scope_snapshot_max_jobs",
    "user_channels",
    "probe_interval_ms",
    "probe_timeout_ms",
    "permessage_deflate",
    "deflate_mem_level",
    "deflate_window_bits",
    "ws_ping_interval_s",
    "ws_pong_timeout_s",
    "sse_heartbeat_s",
    "drain_window_ms",
    "drain_window_sigint_ms",
    "drain_reconnect_max_ms",
    "allowed_origins",
    "trusted_proxies",
    "max_connections_per_ip",
    "max_connections_per_user",
    "client_max_messages_per_second",
    "client_message_burst",
    "redis_url",
    "redis_host",
    "redis_port",
    "redis_username",
    "redis_password",
    "redis_db",
    "redis_tls",
    "redis_tls_ca_file",
    "redis_tls_ca_dir",
    "redis_tls_server_name",
    "redis_tls_cert_file",
    "redis_tls_key_file",
    "redis_sentinels",
    "redis_sentinel_master",
    "redis_sentinel_password",
    "redis_cluster_nodes",
    "redis_patterns",
    "channel_prefix",
    "redis_cluster_refresh_ms",
    "redis_connect_timeout_ms",
    "redis_read_timeout_ms",
    "redis_ping_interval_ms",
    "reconnect_initial_ms",
    "reconnect_max_ms",
    "reconnect_multiplier",
    "reconnect_reset_after_ms",
    "max_payload_bytes",
    "inbox_max_events",
    "log_level",
    "log_format",
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const aliases[] = {"REDIS_URL",      "REDIS_HOST",     "REDIS_PORT",
                                      "REDIS_USERNAME", "REDIS_PASSWORD", "JWT_SECRET"};

static void
env_var(const char *key, char *buf, size_t len)
{
    snprintf(buf, len, "JOBWIRE_%s", key);
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* The environment of the test runner must not leak into the results (CI may set REDIS_URL). */
static int
clear_env(void **state)
{
    char var[64];

    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        env_var(keys[i], var, sizeof var);
        unsetenv(var);
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        unsetenv(aliases[i]);
    return 0;
}

/* Writes `text` to a fresh temporary file; returns its malloc'd path. */
static char *
write_tmp(const char *text)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    int fd;

    assert_non_null(path);
    snprintf(path, len, "%s/jw-test-config-XXXXXX", dir);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads `text` as a config file on top of the defaults; the error has the path replaced by F. */
static int
load_text(struct jw_config *c, const char *text, char *err, size_t errlen)
{
    char *path = write_tmp(text);
    char raw[512];
    int rc = jw_config_load_file(c, path, raw, sizeof raw);
    size_t plen = strlen(path);

    if (rc != 0) {
        assert_memory_equal(raw, path, plen);
        snprintf(err, errlen, "F%s", raw + plen);
    }
    unlink(path);
    free(path);
    return rc;
}

static char *
dump(const struct jw_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    jw_config_dump(c, f);
    fclose(f);
    return buf;
}

static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

static void
test_defaults(void **state)
{
    struct jw_config c;
    char err[256];

    (void)state;
    jw_config_defaults(&c);
    assert_string_equal(c.listen_address, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.web_root, ""); /* no dashboard unless asked for */
    assert_int_equal(c.client_queue_max_bytes, 1048576);
    assert_int_equal(c.client_max_message_bytes, 4096);
    assert_int_equal(c.client_max_subscriptions, 256);
    assert_false(c.dev_auth);
    assert_string_equal(c.redis_url, "");
    assert_string_equal(c.redis_host, "127.0.0.1");
    assert_int_equal(c.redis_port, 6379);
    assert_string_equal(c.redis_username, "");
    assert_string_equal(c.redis_password, "");
    assert_false(c.redis_tls);
    assert_int_equal(c.redis_npatterns, 1);
    assert_string_equal(c.redis_patterns[0], "ai:job:*");
    assert_string_equal(c.channel_prefix, "ai:job:");
    assert_int_equal(c.redis_connect_timeout_ms, 10000);
    assert_int_equal(c.redis_read_timeout_ms, 5000);
    assert_int_equal(c.redis_ping_interval_ms, 15000);
    assert_int_equal(c.reconnect_initial_ms, 200);
    assert_int_equal(c.reconnect_max_ms, 30000);
    assert_true(c.reconnect_multiplier == 2.0);
    assert_int_equal(c.reconnect_reset_after_ms, 30000);
    assert_int_equal(c.max_payload_bytes, 65536);
    assert_int_equal(c.inbox_max_events, 65536);
    assert_int_equal(c.log_level, JW_LOG_INFO);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    jw_config_free(&c);
    jw_config_free(&c); /* freeing twice is harmless */
    assert_null(c.redis_host);
}

static void
test_dump_lists_keys_in_order(void **state)
{
    struct jw_config c;
    char *out, *line, *save = NULL;
    size_t n = 0;

    (void)state;
    jw_config_defaults(&c);
    out = dump(&c);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        assert_true(n < NKEYS);
        size_t klen = strlen(keys[n]);
        assert_memory_equal(line, keys[n], klen);
        assert_int_equal(line[klen], ' ');
    }
    assert_int_equal(n, NKEYS);
    free(out);
    out = dump(&c);
    assert_contains(out, "\nweb_root \"\"\n");
    assert_contains(out, "\nredis_url \"\"\n");
    assert_contains(out, "\nredis_password \"\"\n");
    assert_contains(out, "\nredis_patterns ai:job:*\n");
    assert_contains(out, "\nreconnect_multiplier 2\n");
    assert_contains(out, "\ndev_auth no\n");
    assert_contains(out, "\nlog_level info\n");
    free(out);
    jw_config_free(&c);
}

static void
test_int(void **state)
{
    struct jw_config c;
    char err[256];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "listen_port", "9000", err, sizeof err), 0);
    assert_int_equal(c.listen_port, 9000);
    assert_int_equal(jw_config_set(&c, "listen_port", "abc", err, sizeof err), -1);
    assert_string_equal(err, "listen_port: invalid value 'abc': expected an integer 1..65535");
    assert_int_equal(jw_config_set(&c, "listen_port", "70000", err, sizeof err), -1);
    assert_string_equal(err, "listen_port: value '70000' is out of range: 1..65535");
    const char *bad[] = {"0", "-1", "", " 80", "80 ", "12x", "8e3", "0x50", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(jw_config_set(&c, "listen_port", bad[i], err, sizeof err), -1);
    assert_int_equal(c.listen_port, 9000); /* errors leave the value alone */
    assert_int_equal(jw_config_set(&c, "reconnect_reset_after_ms", "0", err, sizeof err), 0);
    assert_int_equal(c.reconnect_reset_after_ms, 0);
    jw_config_free(&c);
}

static void
test_int_zero_means_off(void **state)
{
    struct jw_config c;
    char err[256];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "redis_ping_interval_ms", "0", err, sizeof err), 0);
    assert_int_equal(c.redis_ping_interval_ms, 0);
    assert_int_equal(jw_config_set(&c, "redis_ping_interval_ms", "500", err, sizeof err), 0);
    assert_int_equal(c.redis_ping_interval_ms, 500);
    assert_int_equal(jw_config_set(&c, "redis_ping_interval_ms", "100", err, sizeof err), -1);
    assert_string_equal(
        err, "redis_ping_interval_ms: value '100' is out of range: 0 (off) or 500..600000");
    /* 0 is special only where the table says so */
    assert_int_equal(jw_config_set(&c, "redis_read_timeout_ms", "0", err, sizeof err), -1);
    jw_config_free(&c);
}

static void
test_size(void **state)
{
    struct jw_config c;
    char err[256];
    static const struct {
        const char *text;
        size_t value;
    } ok[] = {{"4096", 4096},  {"4k", 4096},       {"4K", 4096},       {"2m", 2097152},
              {"3M", 3145728}, {"1g", 1073741824}, {"1G", 1073741824}, {"1073741824", 1073741824}};

    (void)state;
    jw_config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(jw_config_set(&c, "client_queue_max_bytes", ok[i].text, err, sizeof err),
                         0);
        assert_int_equal(c.client_queue_max_bytes, ok[i].value);
    }
    assert_int_equal(jw_config_set(&c, "client_queue_max_bytes", "2g", err, sizeof err), -1);
    assert_string_equal(err, "client_queue_max_bytes: value '2g' is out of range: 4096..1073741824 "
                             "bytes; suffix k, m or g for KiB, MiB, GiB");
    assert_int_equal(jw_config_set(&c, "client_queue_max_bytes", "1.5m", err, sizeof err), -1);
    assert_contains(err, "invalid value '1.5m': expected a size 4096..1073741824");
    const char *bad[] = {"4095",
                         "-4096",
                         "4kb",
                         "4KiB",
                         "k",
                         "",
                         "4 k",
                         "4t",
                         "9223372036854775807g",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(jw_config_set(&c, "client_queue_max_bytes", bad[i], err, sizeof err), -1);
    assert_int_equal(c.client_queue_max_bytes, 1073741824);
    jw_config_free(&c);
}

static void
test_double(void **state)
{
    struct jw_config c;
    char err[256];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "reconnect_multiplier", "1.5", err, sizeof err), 0);
    assert_true(c.reconnect_multiplier == 1.5);
    assert_int_equal(jw_config_set(&c, "reconnect_multiplier", "10", err, sizeof err), 0);
    assert_true(c.reconnect_multiplier == 10.0);
    assert_int_equal(jw_config_set(&c, "reconnect_multiplier", "0.5", err, sizeof err), -1);
    assert_string_equal(err, "reconnect_multiplier: value '0.5' is out of range: 1..10");
    const char *bad[] = {"abc", "", "2x", "nan", "inf", " 2", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(jw_config_set(&c, "reconnect_multiplier", bad[i], err, sizeof err), -1);
    assert_true(c.reconnect_multiplier == 10.0);
    jw_config_free(&c);
}

static void
test_bool(void **state)
{
    struct jw_config c;
    char err[256];
    const char *yes[] = {"yes", "true", "on", "1", "YES", "True"};
    const char *no[] = {"no", "false", "off", "0", "NO", "Off"};

    (void)state;
    jw_config_defaults(&c);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(jw_config_set(&c, "dev_auth", yes[i], err, sizeof err), 0);
        assert_true(c.dev_auth);
        assert_int_equal(jw_config_set(&c, "dev_auth", no[i], err, sizeof err), 0);
        assert_false(c.dev_auth);
    }
    assert_int_equal(jw_config_set(&c, "dev_auth", "maybe", err, sizeof err), -1);
    assert_string_equal(err,
                        "dev_auth: invalid value 'maybe': expected yes|no|true|false|on|off|1|0");
    assert_int_equal(jw_config_set(&c, "dev_auth", "", err, sizeof err), -1);
    jw_config_free(&c);
}

static void
test_log_level(void **state)
{
    struct jw_config c;
    char err[256];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "log_level", "debug", err, sizeof err), 0);
    assert_int_equal(c.log_level, JW_LOG_DEBUG);
    assert_int_equal(jw_config_set(&c, "log_level", "WARN", err, sizeof err), 0);
    assert_int_equal(c.log_level, JW_LOG_WARN);
    assert_int_equal(jw_config_set(&c, "log_level", "error", err, sizeof err), 0);
    assert_int_equal(c.log_level, JW_LOG_ERROR);
    assert_int_equal(jw_config_set(&c, "log_level", "verbose", err, sizeof err), -1);
    assert_string_equal(err, "log_level: invalid value 'verbose': expected debug|info|warn|error");
    assert_int_equal(c.log_level, JW_LOG_ERROR);
    jw_config_free(&c);
}

static void
test_patterns(void **state)
{
    struct jw_config c;
    char err[256], many[256] = "";

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "redis_patterns", " a:* , b:job:*,c ", err, sizeof err), 0);
    assert_int_equal(c.redis_npatterns, 3);
    assert_string_equal(c.redis_patterns[0], "a:*");
    assert_string_equal(c.redis_patterns[1], "b:job:*");
    assert_string_equal(c.redis_patterns[2], "c");
    assert_int_equal(jw_config_set(&c, "redis_patterns", "a,,b", err, sizeof err), -1);
    assert_contains(err, "redis_patterns: empty item in 'a,,b'");
    assert_int_equal(jw_config_set(&c, "redis_patterns", "", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "redis_patterns", "a, ", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "redis_patterns", ",a", err, sizeof err), -1);
    assert_int_equal(c.redis_npatterns, 3); /* failed sets leave the old list */
    assert_string_equal(c.redis_patterns[1], "b:job:*");
    for (int i = 0; i < JW_CONFIG_MAX_PATTERNS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sp%d", i ? "," : "", i);
    assert_int_equal(jw_config_set(&c, "redis_patterns", many, err, sizeof err), 0);
    assert_int_equal(c.redis_npatterns, JW_CONFIG_MAX_PATTERNS);
    assert_string_equal(c.redis_patterns[JW_CONFIG_MAX_PATTERNS - 1], "p15");
    strcat(many, ",p16");
    assert_int_equal(jw_config_set(&c, "redis_patterns", many, err, sizeof err), -1);
    assert_contains(err, "more than 16 items");
    assert_int_equal(c.redis_npatterns, JW_CONFIG_MAX_PATTERNS);
    jw_config_free(&c);
}

static void
test_listen_address(void **state)
{
    struct jw_config c;
    char err[256];
    const char *ok[] = {"0.0.0.0", "10.1.2.3", "::", "::1", "fe80::1", "localhost"};
    const char *bad[] = {"example.com", "[::1]", "", "1.2.3", "127.0.0.1:80", "256.0.0.1"};

    (void)state;
    jw_config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(jw_config_set(&c, "listen_address", ok[i], err, sizeof err), 0);
        assert_string_equal(c.listen_address, ok[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(jw_config_set(&c, "listen_address", bad[i], err, sizeof err), -1);
    assert_string_equal(
        err, "listen_address: invalid value '256.0.0.1': expected an IPv4 or IPv6 literal, or "
             "localhost");
    assert_string_equal(c.listen_address, "localhost");
    jw_config_free(&c);
}

static void
test_unknown_key_set(void **state)
{
    struct jw_config c;
    char err[256];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "listen_prot", "80", err, sizeof err), -1);
    assert_string_equal(err, "unknown key 'listen_prot'");
    assert_int_equal(jw_config_set(&c, "LISTEN_PORT", "80", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "redis_tlz", "yes", err, sizeof err), -1);
    jw_config_free(&c);
}

static void
test_file_syntax(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(load_text(&c,
                               "# comment\n"
                               "\n"
                               "   # indented comment\n"
                               "listen_port 9001\r\n"
                               "\tweb_root   \"/srv/my site\"   \n"
                               "channel_prefix \"\"\n"
                               "redis_password p#ss word \"x\n"
                               "redis_username \"\"\"\n"
                               "redis_host\t\tredis.internal\n"
                               "dev_auth yes",
                               err, sizeof err),
                     0);
    assert_int_equal(c.listen_port, 9001);
    assert_string_equal(c.web_root, "/srv/my site");
    assert_string_equal(c.channel_prefix, "");
    assert_string_equal(c.redis_password, "p#ss word \"x"); /* '#' inside a value is literal */
    assert_string_equal(c.redis_username, "\"");
    assert_string_equal(c.redis_host, "redis.internal");
    assert_true(c.dev_auth); /* last line without a newline */
    assert_int_equal(c.redis_port, 6379);
    jw_config_free(&c);
}

static void
expect_file_error(const char *text, const char *want)
{
    struct jw_config c;
    char err[512];

    jw_config_defaults(&c);
    assert_int_equal(load_text(&c, text, err, sizeof err), -1);
    assert_string_equal(err, want);
    jw_config_free(&c);
}

static void
test_file_errors(void **state)
{
    (void)state;
    expect_file_error("# x\n\nbogus 1\n", "F:3: unknown key 'bogus'");
    expect_file_error("listen_port=80\n",
                      "F:1: unknown key 'listen_port=80' (the format is `key value`, without '=')");
    expect_file_error("listen_port 80\nweb_root x\nlisten_port 81\n",
                      "F:3: duplicate key 'listen_port' (first set on line 1)");
    expect_file_error("\nlisten_port 0\n", "F:2: listen_port: value '0' is out of range: 1..65535");
    expect_file_error("max_payload_bytes 32\n",
                      "F:1: max_payload_bytes: value '32' is out of range: 64..16777216 bytes; "
                      "suffix k, m or g for KiB, MiB, GiB");
    expect_file_error("log_level loud\n",
                      "F:1: log_level: invalid value 'loud': expected debug|info|warn|error");
    expect_file_error("web_root\n",
                      "F:1: web_root: missing value (write \"\" for an empty string)");
    expect_file_error("web_root \"abc\n", "F:1: web_root: unterminated double quote");
    expect_file_error("web_root \"\n", "F:1: web_root: unterminated double quote");
    expect_file_error("listen_port \"80\" x\n", "F:1: listen_port: unterminated double quote");
    expect_file_error("listen_port \"80\"\n\nlisten_address \"\"\n",
                      "F:3: listen_address: invalid value '': expected an IPv4 or IPv6 literal, "
                      "or localhost");
}

static void
test_file_missing(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_load_file(&c, "/nonexistent/jobwire.conf", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/jobwire.conf: No such file or directory");
    jw_config_free(&c);
}

static void
test_env_precedence(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(
        load_text(&c, "listen_port 9000\nredis_host file-host\nweb_root w\n", err, sizeof err), 0);
    setenv("JOBWIRE_LISTEN_PORT", "9100", 1);
    setenv("REDIS_HOST", "alias-host", 1);
    setenv("REDIS_PASSWORD", "s3cret", 1);
    setenv("JOBWIRE_REDIS_PATTERNS", "x:*,y:*", 1);
    setenv("JOBWIRE_DEV_AUTH", "on", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(c.listen_port, 9100); /* environment beats the file */
    assert_string_equal(c.redis_host, "alias-host");
    assert_string_equal(c.web_root, "w"); /* untouched keys keep the file value */
    assert_string_equal(c.redis_password, "s3cret");
    assert_int_equal(c.redis_npatterns, 2);
    assert_true(c.dev_auth);

    /* JOBWIRE_<KEY> beats the plain alias */
    setenv("JOBWIRE_REDIS_HOST", "prefixed-host", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), 0);
    assert_string_equal(c.redis_host, "prefixed-host");

    /* an empty variable is a value, not "unset" */
    setenv("JOBWIRE_WEB_ROOT", "", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), 0);
    assert_string_equal(c.web_root, "");
    jw_config_free(&c);
}

static void
test_env_errors(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    setenv("JOBWIRE_LISTEN_PORT", "http", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), -1);
    assert_string_equal(err, "JOBWIRE_LISTEN_PORT: listen_port: invalid value 'http': expected an "
                             "integer 1..65535");
    unsetenv("JOBWIRE_LISTEN_PORT");

    /* Kubernetes service links set REDIS_PORT=tcp://...; say so instead of a bare parse error */
    setenv("REDIS_PORT", "tcp://10.0.0.7:6379", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), -1);
    assert_contains(err, "REDIS_PORT: redis_port: invalid value 'tcp://10.0.0.7:6379'");
    assert_contains(err, "Kubernetes");
    /* ...and the JOBWIRE_ variable takes over without the alias being parsed */
    setenv("JOBWIRE_REDIS_PORT", "6380", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 6380);
    jw_config_free(&c);
}

static void
test_env_alias_port_and_user(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    setenv("REDIS_PORT", "6390", 1);
    setenv("REDIS_USERNAME", "worker", 1);
    assert_int_equal(jw_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(c.redis_port, 6390);
    assert_string_equal(c.redis_username, "worker");
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    jw_config_free(&c);
}

/* Applies url via the REDIS_URL alias and runs finish; returns finish's result. */
static int
with_url(struct jw_config *c, const char *url, char *err, size_t errlen)
{
    jw_config_defaults(c);
    setenv("REDIS_URL", url, 1);
    assert_int_equal(jw_config_apply_env(c, err, errlen), 0);
    return jw_config_finish(c, err, errlen);
}

static void
test_url_host_port(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    assert_int_equal(with_url(&c, "redis://cache.internal:6380/0", err, sizeof err), 0);
    assert_string_equal(c.redis_host, "cache.internal");
    assert_int_equal(c.redis_port, 6380);
    assert_string_equal(c.redis_username, "");
    assert_string_equal(c.redis_password, "");
    assert_false(c.redis_tls);
    jw_config_free(&c);

    /* no port in the URL: redis_port stays; an environment host loses to the URL */
    setenv("REDIS_HOST", "other", 1);
    setenv("REDIS_PASSWORD", "from-env", 1);
    setenv("REDIS_PORT", "7001", 1);
    assert_int_equal(with_url(&c, "REDIS://cache", err, sizeof err), 0);
    assert_string_equal(c.redis_host, "cache");
    assert_int_equal(c.redis_port, 7001);
    assert_string_equal(c.redis_password, "from-env"); /* the URL named no password */
    jw_config_free(&c);
}

static void
test_url_credentials(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    assert_int_equal(with_url(&c, "redis://al%69ce:p%40ss%3Aw%2f@h:1", err, sizeof err), 0);
    assert_string_equal(c.redis_username, "alice");
    assert_string_equal(c.redis_password, "p@ss:w/");
    assert_string_equal(c.redis_host, "h");
    assert_int_equal(c.redis_port, 1);
    jw_config_free(&c);

    setenv("REDIS_USERNAME", "env-user", 1);
    assert_int_equal(with_url(&c, "redis://:only-pass@h", err, sizeof err), 0);
    assert_string_equal(c.redis_username, ""); /* the URL says: default user */
    assert_string_equal(c.redis_password, "only-pass");
    jw_config_free(&c);

    assert_int_equal(with_url(&c, "redis://u:p@ss@h/3", err, sizeof err), 0);
    assert_string_equal(c.redis_password, "p@ss"); /* the last '@' ends the credentials */
    assert_string_equal(c.redis_host, "h");
    jw_config_free(&c);
}

static void
test_url_ipv6(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    assert_int_equal(with_url(&c, "redis://[::1]:7000", err, sizeof err), 0);
    assert_string_equal(c.redis_host, "::1");
    assert_int_equal(c.redis_port, 7000);
    jw_config_free(&c);
    assert_int_equal(with_url(&c, "redis://u:p@[2001:db8::5]/0", err, sizeof err), 0);
    assert_string_equal(c.redis_host, "2001:db8::5");
    assert_int_equal(c.redis_port, 6379);
    jw_config_free(&c);
}

#define URL_PATH_ERROR                                                                             \
    "redis_url: the path must be a database number such as /0 (a password with '/', '?' or '#' "   \
    "must be percent-encoded, or given in REDIS_PASSWORD)"

static void
expect_url_error(const char *url, const char *want)
{
    struct jw_config c;
    char err[512];

    assert_int_equal(with_url(&c, url, err, sizeof err), -1);
    assert_string_equal(err, want);
    jw_config_free(&c);
}

static void
test_url_errors(void **state)
{
    (void)state;
    expect_url_error("rediss://u:p@h:6380/x", URL_PATH_ERROR);
    expect_url_error("redis://h:0", "redis_url: bad port '0' (expected 1..65535)");
    expect_url_error("redis://h:65536", "redis_url: bad port '65536' (expected 1..65535)");
    expect_url_error("redis://h:abc/0", "redis_url: bad port 'abc' (expected 1..65535)");
    expect_url_error("redis://h:", "redis_url: bad port '' (expected 1..65535)");
    expect_url_error("redis://[::1]:x", "redis_url: bad port 'x' (expected 1..65535)");
    expect_url_error("http://h", "redis_url: the scheme must be redis:// or rediss://");
    expect_url_error("h:6379", "redis_url: the scheme must be redis:// or rediss://");
    expect_url_error("redis://", "redis_url: missing host");
    expect_url_error("redis://u:p@:6379", "redis_url: missing host");
    expect_url_error("redis://secret@h",
                     "redis_url: credentials must be written [username]:password@");
    expect_url_error("redis://u:%zz@h", "redis_url: bad percent-encoding in the credentials");
    expect_url_error("redis://u:%4@h", "redis_url: bad percent-encoding in the credentials");
    expect_url_error("redis://u:%00@h", "redis_url: bad percent-encoding in the credentials");
    expect_url_error("redis://::1:6379",
                     "redis_url: an IPv6 host must be written in brackets, [::1]");
    expect_url_error("redis://[::1", "redis_url: malformed [IPv6] host");
    expect_url_error("redis://[::1]6379", "redis_url: malformed [IPv6] host");
    expect_url_error("redis://[nothost]", "redis_url: malformed [IPv6] host");
    expect_url_error("redis://h/db1", URL_PATH_ERROR);
    expect_url_error("redis://h/65536", URL_PATH_ERROR);
    expect_url_error("redis://h/000001", URL_PATH_ERROR);
    expect_url_error("redis://h/1/2", URL_PATH_ERROR);
    expect_url_error("redis://h?timeout=1",
                     "redis_url: query strings and fragments are not supported");
}

static void
test_url_error_hides_password(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    assert_int_equal(with_url(&c, "redis://u:hunter2@h:99999", err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
    jw_config_free(&c);
}

/* Sets key=value pairs on the defaults and runs finish; returns finish's result. */
static int
finish_with(struct jw_config *c, char *err, size_t errlen, const char *const *kv, size_t n)
{
    jw_config_defaults(c);
    for (size_t i = 0; i + 1 < n; i += 2)
        if (jw_config_set(c, kv[i], kv[i + 1], err, errlen) != 0)
            fail_msg("%s=%s: %s", kv[i], kv[i + 1], err);
    return jw_config_finish(c, err, errlen);
}

#define FINISH(c, err, ...)                                                                        \
    finish_with(c, err, sizeof err, (const char *const[]){__VA_ARGS__},                            \
                sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void
expect_finish_error(const char *want, const char *const *kv, size_t n)
{
    struct jw_config c;
    char err[512];
    if (finish_with(&c, err, sizeof err, kv, n) != -1)
        fail_msg("accepted (expected \"%s\")", want);
    assert_contains(err, want);
    jw_config_free(&c);
}

#define EXPECT_FINISH_ERROR(want, ...)                                                             \
    expect_finish_error(want, (const char *const[]){__VA_ARGS__},                                  \
                        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void
test_user_channels(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_int_equal(c.user_nchannels, 0);
    jw_config_free(&c);

    assert_int_equal(
        FINISH(&c, err, "user_channels", "ai:recommendations:=recommendation, notes/=note,a=b=c"),
        0);
    assert_int_equal(c.user_nchannel_items, 3);
    assert_int_equal(c.user_nchannels, 3);
    assert_string_equal(c.user_channel_prefixes[0], "ai:recommendations:");
    assert_string_equal(c.user_channel_kinds[0], "recommendation");
    assert_string_equal(c.user_channel_prefixes[1], "notes/");
    assert_string_equal(c.user_channel_kinds[1], "note");
    assert_string_equal(c.user_channel_prefixes[2], "a=b"); /* the last '=' splits */
    assert_string_equal(c.user_channel_kinds[2], "c");
    /* finish twice: the derived lists are rebuilt, not appended to (valgrind: no leak) */
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    assert_int_equal(c.user_nchannels, 3);
    char *out = dump(&c);
    assert_contains(out, "\nuser_channels ");
    assert_contains(out, "ai:recommendations:=recommendation");
    free(out);
    jw_config_free(&c);
    assert_int_equal(c.user_nchannels, 0);

    EXPECT_FINISH_ERROR("is not prefix=kind", "user_channels", "ai:recommendations:");
    EXPECT_FINISH_ERROR("is not prefix=kind", "user_channels", "=kind");
    EXPECT_FINISH_ERROR("is not prefix=kind", "user_channels", "p:=");
    EXPECT_FINISH_ERROR("overlaps channel_prefix", "user_channels", "ai:job:x:=k");
    EXPECT_FINISH_ERROR("overlaps channel_prefix", "user_channels", "ai:=k");
    EXPECT_FINISH_ERROR("overlaps channel_prefix", "user_channels", "ai:job:=k");
    EXPECT_FINISH_ERROR("overlaps channel_prefix", "channel_prefix", "u:", "user_channels",
                        "u:x:=k");
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=status");
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=progress");
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=error");
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=a\"b");
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=a\\b");
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=\xff");
    /* the second item is checked too */
    EXPECT_FINISH_ERROR("must be a new word", "user_channels", "p:=ok,q:=complete");
    /* "other" is no kind of its own: it is what clients filter unknown kinds by */
    assert_int_equal(FINISH(&c, err, "user_channels", "p:=other"), 0);
    jw_config_free(&c);
}

static void
test_url_db_and_slash_password(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    /* An Azure-style key with '/' needs no escaping: the credentials end at the last '@'. */
    assert_int_equal(with_url(&c, "rediss://:ab/cd@host:6380", err, sizeof err), 0);
    assert_string_equal(c.redis_password, "ab/cd");
    assert_string_equal(c.redis_username, "");
    assert_string_equal(c.redis_host, "host");
    assert_int_equal(c.redis_port, 6380);
    assert_true(c.redis_tls);
    assert_int_equal(c.redis_db, 0);
    jw_config_free(&c);
    assert_int_equal(with_url(&c, "rediss://:a/b+c/d==@host:6380/7", err, sizeof err), 0);
    assert_string_equal(c.redis_password, "a/b+c/d==");
    assert_int_equal(c.redis_db, 7);
    jw_config_free(&c);
    assert_int_equal(with_url(&c, "redis://u:p@[::1]:7000/65535", err, sizeof err), 0);
    assert_int_equal(c.redis_db, 65535);
    jw_config_free(&c);
    /* /N sets redis_db; no /N leaves it; "/" alone names none */
    assert_int_equal(with_url(&c, "redis://h/3", err, sizeof err), 0);
    assert_int_equal(c.redis_db, 3);
    assert_string_equal(c.redis_host, "h");
    jw_config_free(&c);
    setenv("JOBWIRE_REDIS_DB", "4", 1);
    assert_int_equal(with_url(&c, "redis://h", err, sizeof err), 0);
    assert_int_equal(c.redis_db, 4);
    jw_config_free(&c);
    assert_int_equal(with_url(&c, "redis://h/", err, sizeof err), 0);
    assert_int_equal(c.redis_db, 4);
    jw_config_free(&c);
    assert_int_equal(with_url(&c, "redis://h:1/0", err, sizeof err), 0);
    assert_int_equal(c.redis_db, 0); /* the URL wins over the setting */
    jw_config_free(&c);
    unsetenv("JOBWIRE_REDIS_DB");
    /* the password never shows in a dump, '/' or not */
    assert_int_equal(with_url(&c, "rediss://:ab/cd@host:6380/2", err, sizeof err), 0);
    char *out = dump(&c);
    assert_null(strstr(out, "ab/cd"));
    assert_contains(out, "\nredis_url rediss://:********@host:6380/2\n");
    assert_contains(out, "\nredis_db 2\n");
    free(out);
    jw_config_free(&c);
}

static void
test_cluster_refuses_db(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    EXPECT_FINISH_ERROR("redis_db: a Redis Cluster has only database 0", "redis_cluster_nodes",
                        "127.0.0.1:7000", "redis_db", "1");
    EXPECT_FINISH_ERROR("redis_db: a Redis Cluster has only database 0", "redis_cluster_nodes",
                        "127.0.0.1:7000", "redis_url", "redis://127.0.0.1:7000/2");
    assert_int_equal(FINISH(&c, err, "redis_cluster_nodes", "127.0.0.1:7000", "redis_url",
                            "redis://127.0.0.1:7000/0"),
                     0);
    jw_config_free(&c);
    assert_int_equal(FINISH(&c, err, "redis_sentinels", "127.0.0.1:26379", "redis_sentinel_master",
                            "m", "redis_db", "3"),
                     0); /* a sentinel-managed master has databases */
    jw_config_free(&c);
    EXPECT_FINISH_ERROR("exclusive", "redis_cluster_nodes", "127.0.0.1:7000", "redis_sentinels",
                        "127.0.0.1:26379", "redis_sentinel_master", "m");
    EXPECT_FINISH_ERROR("is not host:port", "redis_cluster_nodes", "127.0.0.1");
    EXPECT_FINISH_ERROR("is not host:port", "redis_cluster_nodes", "::1:7000");
    EXPECT_FINISH_ERROR("required with redis_sentinels", "redis_sentinels", "h:1");
}

static void
test_limits_consistency(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    /* a subscribe's own answer (ack + one snapshot per job) must fit in the queue */
    EXPECT_FINISH_ERROR("client_queue_max_messages (271) must exceed client_max_subscriptions",
                        "client_queue_max_messages", "271");
    assert_int_equal(FINISH(&c, err, "client_queue_max_messages", "272"), 0); /* 256 + 16 */
    jw_config_free(&c);
    EXPECT_FINISH_ERROR("client_queue_max_messages (100) must exceed", "client_queue_max_messages",
                        "100", "client_max_subscriptions", "10", "scope_snapshot_max_jobs", "90");
    assert_int_equal(FINISH(&c, err, "client_queue_max_messages", "106", "client_max_subscriptions",
                            "10", "scope_snapshot_max_jobs", "90"),
                     0);
    jw_config_free(&c);
    EXPECT_FINISH_ERROR("client_conflate_bytes (2097152) must not exceed client_queue_max_bytes",
                        "client_conflate_bytes", "2m");
    assert_int_equal(FINISH(&c, err, "client_conflate_bytes", "1m"), 0); /* equal is fine */
    jw_config_free(&c);
    EXPECT_FINISH_ERROR("probe_timeout_ms (5000) must be longer than probe_interval_ms (5000)",
                        "probe_timeout_ms", "5000");
    assert_int_equal(FINISH(&c, err, "probe_timeout_ms", "5000", "probe_interval_ms", "0"), 0);
    jw_config_free(&c);
    EXPECT_FINISH_ERROR("job_index_user_key: must contain {userId}", "job_index_user_key",
                        "jobs:of:user");
    EXPECT_FINISH_ERROR("job_index_all_key: must not be empty", "job_index_all_key", "");
    EXPECT_FINISH_ERROR("job_status_key_template: must contain {jobId}", "job_status_key_template",
                        "status");
    EXPECT_FINISH_ERROR("reconnect_max_ms (100) must be >= reconnect_initial_ms (200)",
                        "reconnect_max_ms", "100");
    /* table bounds of the new keys */
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "max_state_bytes", "1023", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "max_state_fields", "15", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "resume_window_bytes", "65535", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "resume_window_events", "0", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "scope_snapshot_max_jobs", "1001", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "scope_snapshot_max_jobs", "0", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "client_conflate_after_ms", "0", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "redis_db", "65536", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "redis_cluster_refresh_ms", "999", err, sizeof err), -1);
    assert_int_equal(jw_config_set(&c, "max_state_bytes", "16m", err, sizeof err), 0);
    assert_int_equal(c.max_state_bytes, 16777216);
    jw_config_free(&c);
}

static void
test_admin_port(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    EXPECT_FINISH_ERROR("admin_port: must differ from listen_port", "admin_port", "8080");
    EXPECT_FINISH_ERROR("admin_port: must differ from listen_port", "listen_port", "9000",
                        "admin_port", "9000", "admin_listen_address", "127.0.0.1");
    assert_int_equal(FINISH(&c, err, "admin_port", "9090"), 0);
    assert_int_equal(c.admin_port, 9090);
    jw_config_free(&c);
    /* the same port on another address is another socket */
    assert_int_equal(FINISH(&c, err, "admin_port", "8080", "admin_listen_address", "::1"), 0);
    jw_config_free(&c);
    assert_int_equal(FINISH(&c, err, "admin_port", "0"), 0); /* off */
    assert_int_equal(c.admin_port, 0);
    jw_config_free(&c);
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "admin_listen_address", "example.com", err, sizeof err), -1);
    jw_config_free(&c);
}

static void
test_finish_checks(void **state)
{
    struct jw_config c;
    char err[512];

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "reconnect_initial_ms", "5000", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "reconnect_max_ms", "4999", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_string_equal(err, "reconnect_max_ms (4999) must be >= reconnect_initial_ms (5000)");
    assert_int_equal(jw_config_set(&c, "reconnect_max_ms", "5000", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);

    assert_int_equal(jw_config_set(&c, "redis_host", "", err, sizeof err), 0);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_string_equal(err, "redis_host: must not be empty");
    assert_int_equal(jw_config_set(&c, "redis_host", "h", err, sizeof err), 0);

    free(c.redis_patterns[0]); /* a struct not filled through the table */
    c.redis_patterns[0] = NULL;
    c.redis_npatterns = 0;
    assert_int_equal(jw_config_finish(&c, err, sizeof err), -1);
    assert_string_equal(err, "redis_patterns: at least one pattern is required");
    jw_config_free(&c);
}

static void
test_dump_masks_secrets(void **state)
{
    struct jw_config c;
    char err[512];
    char *out;

    (void)state;
    assert_int_equal(with_url(&c, "redis://admin:hunter2@h:6390", err, sizeof err), 0);
    out = dump(&c);
    assert_null(strstr(out, "hunter2"));
    assert_contains(out, "\nredis_password ********\n");
    assert_contains(out, "\nredis_url redis://admin:********@h:6390\n");
    assert_contains(out, "\nredis_username admin\n");
    assert_contains(out, "\nredis_host h\n");
    assert_contains(out, "\nredis_port 6390\n");
    free(out);
    jw_config_free(&c);

    /* a userinfo without ':' is masked whole, even before finish() rejects it */
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "redis_url", "redis://hunter2@h", err, sizeof err), 0);
    out = dump(&c);
    assert_null(strstr(out, "hunter2"));
    assert_contains(out, "\nredis_url redis://********@h\n");
    free(out);
    jw_config_free(&c);
}

static void
test_dump_quotes_and_round_trips(void **state)
{
    struct jw_config c, d;
    char err[512];
    char *first, *second;

    (void)state;
    jw_config_defaults(&c);
    assert_int_equal(jw_config_set(&c, "web_root", "/srv/my site", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "channel_prefix", "\"q", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "redis_patterns", "a b:*, c", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "client_queue_max_bytes", "8k", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "reconnect_multiplier", "1.25", err, sizeof err), 0);
    assert_int_equal(jw_config_set(&c, "log_level", "warn", err, sizeof err), 0);
    first = dump(&c);
    assert_contains(first, "\nweb_root \"/srv/my site\"\n");
    assert_contains(first, "\nchannel_prefix \"\"q\"\n");
    assert_contains(first, "\nredis_patterns \"a b:*,c\"\n");
    assert_contains(first, "\nclient_queue_max_bytes 8192\n");
    assert_contains(first, "\nreconnect_multiplier 1.25\n");
    assert_contains(first, "\nlog_level warn\n");

    jw_config_defaults(&d);
    assert_int_equal(load_text(&d, first, err, sizeof err), 0);
    second = dump(&d);
    assert_string_equal(first, second);
    free(first);
    free(second);
    jw_config_free(&c);
    jw_config_free(&d);
}

static void
test_print_help(void **state)
{
    char *buf = NULL, var[64], line[128];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    jw_config_print_help(f);
    fclose(f);
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(line, sizeof line, "\n  %s (default ", keys[i]);
        assert_contains(buf, line);
        env_var(keys[i], var, sizeof var);
        assert_contains(buf, var);
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        assert_contains(buf, aliases[i]);
    assert_contains(buf, "listen_port (default 8080; 1..65535)");
    assert_contains(buf, "redis_patterns (default \"ai:job:*\";");
    free(buf);
}

static void
test_shipped_conf(void **state)
{
    struct jw_config c, d;
    char err[512], var[64], line[128];
    char *text, *got, *want;
    int missing = 0;

    (void)state;
    jw_config_defaults(&c);
    if (jw_config_load_file(&c, JW_SOURCE_DIR "/conf/jobwire.conf", err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(jw_config_finish(&c, err, sizeof err), 0);
    jw_config_defaults(&d);
    got = dump(&c);
    want = dump(&d);
    /* the shipped file spells out the defaults: name the lines that differ */
    char *gs = NULL, *ws = NULL;
    for (char *g = strtok_r(got, "\n", &gs), *w = strtok_r(want, "\n", &ws); g || w;
         g = strtok_r(NULL, "\n", &gs), w = strtok_r(NULL, "\n", &ws)) {
        if (!g || !w || strcmp(g, w) != 0) {
            print_error("conf/jobwire.conf sets \"%s\", the default is \"%s\"\n", g ? g : "",
                        w ? w : "");
            missing++;
        }
    }

    text = read_file(JW_SOURCE_DIR "/conf/jobwire.conf");
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(line, sizeof line, "\n%s ", keys[i]); /* an active setting line */
        env_var(keys[i], var, sizeof var);
        if (!strstr(text, line) || !strstr(text, var)) {
            print_error("conf/jobwire.conf: no setting line or no %s for %s\n", var, keys[i]);
            missing++;
        }
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        assert_contains(text, aliases[i]);
    free(text);
    free(got);
    free(want);
    jw_config_free(&c);
    jw_config_free(&d);
    assert_int_equal(missing, 0);
}

static void
test_docs_name_every_key(void **state)
{
    char *text = read_file(JW_SOURCE_DIR "/docs/CONFIGURATION.md");
    char cell[128], var[64];
    int missing = 0;

    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        snprintf(cell, sizeof cell, "| `%s` |", keys[i]);
        env_var(keys[i], var, sizeof var);
        if (!strstr(text, cell) || !strstr(text, var)) {
            print_error("docs/CONFIGURATION.md: no table row or no %s for %s\n", var, keys[i]);
            missing++;
        }
    }
    free(text);
    assert_int_equal(missing, 0);
}

/* The list above is the table (config_table.c), in its order. */
static void
test_keys_are_the_table(void **state)
{
    (void)state;
    assert_int_equal(jw_config_nopts, NKEYS);
    for (size_t i = 0; i < NKEYS; i++)
        assert_string_equal(jw_config_opts[i].name, keys[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_dump_lists_keys_in_order, clear_env),
        cmocka_unit_test_setup(test_int, clear_env),
        cmocka_unit_test_setup(test_int_zero_means_off, clear_env),
        cmocka_unit_test_setup(test_size, clear_env),
        cmocka_unit_test_setup(test_double, clear_env),
        cmocka_unit_test_setup(test_bool, clear_env),
        cmocka_unit_test_setup(test_log_level, clear_env),
        cmocka_unit_test_setup(test_patterns, clear_env),
        cmocka_unit_test_setup(test_listen_address, clear_env),
        cmocka_unit_test_setup(test_unknown_key_set, clear_env),
        cmocka_unit_test_setup(test_file_syntax, clear_env),
        cmocka_unit_test_setup(test_file_errors, clear_env),
        cmocka_unit_test_setup(test_file_missing, clear_env),
        cmocka_unit_test_setup(test_env_precedence, clear_env),
        cmocka_unit_test_setup(test_env_errors, clear_env),
        cmocka_unit_test_setup(test_env_alias_port_and_user, clear_env),
        cmocka_unit_test_setup(test_url_host_port, clear_env),
        cmocka_unit_test_setup(test_url_credentials, clear_env),
        cmocka_unit_test_setup(test_url_ipv6, clear_env),
        cmocka_unit_test_setup(test_url_errors, clear_env),
        cmocka_unit_test_setup(test_url_error_hides_password, clear_env),
        cmocka_unit_test_setup(test_finish_checks, clear_env),
        cmocka_unit_test_setup(test_user_channels, clear_env),
        cmocka_unit_test_setup(test_url_db_and_slash_password, clear_env),
        cmocka_unit_test_setup(test_cluster_refuses_db, clear_env),
        cmocka_unit_test_setup(test_limits_consistency, clear_env),
        cmocka_unit_test_setup(test_admin_port, clear_env),
        cmocka_unit_test_setup(test_dump_masks_secrets, clear_env),
        cmocka_unit_test_setup(test_dump_quotes_and_round_trips, clear_env),
        cmocka_unit_test_setup(test_print_help, clear_env),
        cmocka_unit_test_setup(test_shipped_conf, clear_env),
        cmocka_unit_test_setup(test_docs_name_every_key, clear_env),
        cmocka_unit_test_setup(test_keys_are_the_table, clear_env),
    };

    return cmocka_run_group_tests(tests, clear_env, NULL);
}
