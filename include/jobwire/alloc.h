/*
 * Allocation wrappers. Out of memory is not a condition jobwire can serve through, so every
 * wrapper aborts with a message instead of returning NULL (as redis zmalloc does). Sizes that
 * come from clients or from Redis must still be bounds-checked before they reach these.
 */
#ifndef JOBWIRE_ALLOC_H
#define JOBWIRE_ALLOC_H

#include <stddef.h>

void *jw_malloc(size_t size);
void *jw_calloc(size_t count, size_t size);
void *jw_realloc(void *ptr, size_t size);
char *jw_strdup(const char *s);
char *jw_strndup(const char *s, size_t len);

#endif
