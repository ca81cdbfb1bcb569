/*
 * redis:// and rediss:// URLs: [rediss|redis]://[[username]:password@]host[:port][/db], with
 * percent-encoded credentials and [IPv6] hosts. The credentials end at the URL's last '@', so a
 * password with an unescaped '@' or '/' is read as meant.
 */
#ifndef JOBWIRE_REDISURL_H
#define JOBWIRE_REDISURL_H

#include <stdbool.h>
#include <stddef.h>

struct jw_redis_url {
    bool tls;      /* rediss:// */
    char *host;    /* always set on success */
    int port;      /* 0 = not given */
    bool has_auth; /* user and pass set */
    char *user;
    char *pass;
    int db; /* /N; -1 = not given */
};

/* Returns 0, or -1 with a reason in err that never quotes the URL (it may hold a password).
 * On success the strings belong to *u; release them with jw_redis_url_clear(). */
int jw_redis_url_parse(const char *url, struct jw_redis_url *u, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void jw_redis_url_clear(struct jw_redis_url *u);
/* The URL with its password (or a userinfo without ':') replaced by ********; a new string. */
char *jw_redis_url_mask(const char *url);

#endif
