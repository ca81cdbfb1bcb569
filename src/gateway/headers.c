/*
 * Request headers of any length (see headers.h).
 */
#include "headers.h"

#include <stdlib.h>
#include <string.h>

#include "jobwire/alloc.h"

static char *
sized(int n, size_t max, bool *too_long)
{
    if (n <= 0)
        return NULL;
    if ((size_t)n > max) {
        if (too_long)
            *too_long = true;
        return NULL;
    }
    return jw_malloc((size_t)n + 1);
}

char *
jw_header(struct lws *wsi, enum lws_token_indexes token, size_t max, bool *too_long)
{
    int n = lws_hdr_total_length(wsi, token);
    char *v = sized(n, max, too_long);
    if (v && lws_hdr_copy(wsi, v, n + 1, token) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

char *
jw_header_custom(struct lws *wsi, const char *name, size_t max, bool *too_long)
{
    int len = (int)strlen(name);
    int n = lws_hdr_custom_length(wsi, name, len);
    char *v = sized(n, max, too_long);
    if (v && lws_hdr_custom_copy(wsi, v, n + 1, name, len) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

char *
jw_query_arg(struct lws *wsi, const char *name, size_t max, bool *too_long)
{
    size_t nlen = strlen(name);
    for (int i = 0;; i++) {
        int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        char *arg = jw_malloc((size_t)len + 1);
        if (lws_hdr_copy_fragment(wsi, arg, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) {
            free(arg);
            return NULL; /* no more arguments */
        }
        if ((size_t)len >= nlen && memcmp(arg, name, nlen) == 0) {
            if ((size_t)len - nlen > max) {
                if (too_long)
                    *too_long = true;
                explicit_bzero(arg, (size_t)len); /* it may be a token */
                free(arg);
                return NULL;
            }
            memmove(arg, arg + nlen, (size_t)len - nlen + 1);
            return arg;
        }
        free(arg);
    }
}
