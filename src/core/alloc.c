/*
 * Allocation wrappers that abort on out-of-memory (see alloc.h).
 */
#include "jobwire/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t size)
{
    fprintf(stderr, "jobwire: out of memory allocating %zu bytes\n", size);
    abort();
}

void *
jw_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        oom(size);
    return p;
}

void *
jw_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *
jw_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        oom(size);
    return p;
}

char *
jw_strndup(const char *s, size_t len)
{
    char *p = jw_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *
jw_strdup(const char *s)
{
    return jw_strndup(s, strlen(s));
}
