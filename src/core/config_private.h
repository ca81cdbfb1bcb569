/*
 * Private to the configuration module: the option table's row type (config_table.c holds the
 * rows), shared by the engine that parses, dumps and documents them (config.c) and the
 * cross-field checks that run once everything is read (config_check.c).
 */
#ifndef JOBWIRE_CORE_CONFIG_PRIVATE_H
#define JOBWIRE_CORE_CONFIG_PRIVATE_H

#include <stddef.h>

#include "jobwire/config.h"

enum opt_type { T_STRING, T_INT, T_SIZE, T_DOUBLE, T_BOOL, T_LEVEL, T_LIST, T_LOGFMT };

#define O_SECRET 1u   /* never echoed in errors, masked as ******** in dumps */
#define O_ZERO_OFF 2u /* 0 is accepted outside min..max and means "off" */
#define O_ADDRESS 4u  /* an IPv4/IPv6 literal or "localhost": jobwire binds exactly this */
#define O_URL 8u      /* may embed a password: never echoed, password masked in dumps */

#define O_EMPTY_OK 16u /* T_LIST: "" means no items; T_STRING with O_ADDRESS: "" is accepted */

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

extern const struct opt jw_config_opts[];
extern const size_t jw_config_nopts;

/* Writes a reason into err (when not NULL) and returns -1. */
int jw_config_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees what jw_config_finish() derived (config_check.c). */
void jw_config_free_derived(struct jw_config *c);

#endif
