/*
 * The configuration engine: every setting is one row of the table in config_table.c (name, type,
 * default, bounds, environment alias, flags, help). The file parser, the environment overrides, the
 * dump behind
 * --check-config and --help all walk that table, so a key cannot exist in one and be missing from
 * another. Defaults are written in file syntax and go through the same parser as user values,
 * which keeps the documented default and the effective default identical.
 *
 * Precedence: built-in default < file < environment (JOBWIRE_<KEY>, which beats the plain alias
 * such as REDIS_HOST). jw_config_finish() (config_check.c) then lets the parts of redis_url
 * override redis_host/port/username/password, because a URL is the more specific statement.
 *
 * Secrets (redis_password, the password inside redis_url) are never echoed in error messages and
 * are masked by jw_config_dump().
 */
#include "jobwire/config.h"

#include "config_private.h"
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

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const logfmt_names[] = {"text", "json"};

int
jw_config_fail(char *err, size_t errlen, const char *fmt, ...)
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
    for (size_t i = 0; i < jw_config_nopts; i++)
        if (strcmp(jw_config_opts[i].name, key) == 0)
            return &jw_config_opts[i];
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
                return jw_config_fail(err, errlen,
                                      "%s: empty item in '%.200s' (comma-separated, 1..%d items)",
                                      o->name, s, JW_CONFIG_MAX_PATTERNS);
            return jw_config_fail(err, errlen, "%s: more than %d items in '%.200s'", o->name,
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
        if ((o->flags & O_ADDRESS) && !valid_address(v) && !((o->flags & O_EMPTY_OK) && !v[0]))
            return jw_config_fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name,
                                  shown, range);
        free(*(char **)p);
        *(char **)p = jw_strdup(v);
        return 0;
    case T_INT:
    case T_SIZE:
        rc = parse_integer(v, o->type == T_SIZE, &n);
        if (rc == 1)
            return jw_config_fail(err, errlen, "%s: invalid value '%.200s': expected %s%s", o->name,
                                  shown, o->type == T_SIZE ? "a size " : "an integer ", range);
        if (rc == 2 || !in_bounds(o, (double)n))
            return jw_config_fail(err, errlen, "%s: value '%.200s' is out of range: %s", o->name,
                                  shown, range);
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
            return jw_config_fail(err, errlen, "%s: invalid value '%.200s': expected a number %s",
                                  o->name, shown, range);
        if (errno == ERANGE || !in_bounds(o, d))
            return jw_config_fail(err, errlen, "%s: value '%.200s' is out of range: %s", o->name,
                                  shown, range);
        *(double *)p = d;
        return 0;
    }
    case T_BOOL:
        if (!parse_bool(v, (bool *)p))
            return jw_config_fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name,
                                  shown, range);
        return 0;
    case T_LEVEL:
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(v, level_names[i]) == 0) {
                *(enum jw_log_level *)p = (enum jw_log_level)i;
                return 0;
            }
        }
        return jw_config_fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name,
                              shown, range);
    case T_LOGFMT:
        for (size_t i = 0; i < 2; i++) {
            if (strcasecmp(v, logfmt_names[i]) == 0) {
                *(enum jw_log_format *)p = (enum jw_log_format)i;
                return 0;
            }
        }
        return jw_config_fail(err, errlen, "%s: invalid value '%.200s': expected %s", o->name,
                              shown, range);
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
    return jw_config_fail(err, errlen, "%s: unsupported option type", o->name);
}

void
jw_config_defaults(struct jw_config *c)
{
    char reason[256];

    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < jw_config_nopts; i++) {
        if (set_opt(c, &jw_config_opts[i], jw_config_opts[i].def, reason, sizeof reason) != 0) {
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
        return jw_config_fail(err, errlen, "unknown key '%.100s'", key);
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
        return jw_config_fail(err, errlen, "unknown key '%.100s'%s", s,
                              strchr(s, '=') ? " (the format is `key value`, without '=')" : "");
    idx = (size_t)(o - jw_config_opts);
    if (seen[idx] != 0)
        return jw_config_fail(err, errlen, "duplicate key '%s' (first set on line %d)", o->name,
                              seen[idx]);
    seen[idx] = lineno;
    if (*value == '\0')
        return jw_config_fail(err, errlen, "%s: missing value (write \"\" for an empty string)",
                              o->name);
    n = strlen(value);
    if (value[0] == '"') {
        /* No escapes: everything between the outer quotes is the value. */
        if (n < 2 || value[n - 1] != '"')
            return jw_config_fail(err, errlen, "%s: unterminated double quote", o->name);
        value[n - 1] = '\0';
        value++;
    }
    return set_opt(c, o, value, err, errlen);
}

int
jw_config_load_file(struct jw_config *c, const char *path, char *err, size_t errlen)
{
    int *seen = jw_calloc(jw_config_nopts, sizeof *seen); /* first line of each key; 0 = none */
    char reason[512];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        free(seen);
        return jw_config_fail(err, errlen, "%s: %s", path, strerror(errno));
    }
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        char *s = line;
        lineno++;
        if ((size_t)n != strlen(line)) {
            rc = jw_config_fail(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            break;
        }
        if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3; /* UTF-8 byte order mark from some editors */
        s = trim(s);
        if (*s == '\0' || *s == '#')
            continue;
        if (load_line(c, s, seen, lineno, reason, sizeof reason) != 0)
            rc = jw_config_fail(err, errlen, "%s:%d: %s", path, lineno, reason);
    }
    if (rc == 0 && ferror(f))
        rc = jw_config_fail(err, errlen, "%s: read error: %s", path, strerror(errno));
    free(line);
    free(seen);
    fclose(f);
    return rc;
}

int
jw_config_apply_env(struct jw_config *c, char *err, size_t errlen)
{
    char reason[512], var[64];

    for (size_t i = 0; i < jw_config_nopts; i++) {
        const struct opt *o = &jw_config_opts[i];
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
            return jw_config_fail(err, errlen, "%s: %s%s%s", used, reason,
                                  k8s ? " (looks like a Kubernetes service link variable; set "
                                      : "",
                                  k8s ? "enableServiceLinks: false or the JOBWIRE_ variable)" : "");
        }
    }
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
    for (size_t i = 0; i < jw_config_nopts; i++) {
        const struct opt *o = &jw_config_opts[i];
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
    for (size_t i = 0; i < jw_config_nopts; i++) {
        const struct opt *o = &jw_config_opts[i];
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
    for (size_t i = 0; i < jw_config_nopts; i++) {
        const struct opt *o = &jw_config_opts[i];
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
    jw_config_free_derived(c);
}
