/*
 * A validating JSON scanner for payloads that jobwire forwards verbatim. It accepts exactly the
 * JSON texts of RFC 8259 (one value, any nesting, numbers of any size, every escape including
 * \u0000 and lone surrogates, strings of well-formed UTF-8) and builds nothing: the payload is
 * embedded in the outgoing frame as published, so every valid JSON value passes through
 * unchanged. (jansson, used elsewhere, rejects integers beyond 64 bits and \u0000 by default.)
 *
 * While scanning, the values of named members of a top-level object are located, so that ids
 * can be read without a second pass.
 */
#ifndef JOBWIRE_JSON_H
#define JOBWIRE_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum jw_json_type {
    JW_JSON_NONE = 0, /* member absent (or the text is not an object) */
    JW_JSON_STRING,
    JW_JSON_NUMBER,
    JW_JSON_OTHER, /* object, array, true, false, null */
};

/* A member of the top-level object to locate: set `name`, read the rest after the scan. With
 * duplicate keys the last one wins (as jansson and JavaScript do). */
struct jw_json_member {
    const char *name;
    enum jw_json_type type;
    size_t start, len; /* the value's text, quotes included for strings */
};

/* true when text[0..len) is one JSON text (whitespace around the value allowed). Fills the
 * members found at the top level of an object. */
bool jw_json_scan(const char *text, size_t len, struct jw_json_member *members, size_t nmembers);

/* The value of a located member as an id: a string's decoded contents, or an integer's digits
 * (any size). Returns the length written to out (NUL-terminated), or 0 when the member is
 * absent, of another type, a number with a fraction or exponent, or longer than size - 1. The
 * result may contain any character, NUL included: validate it as an id afterwards. */
size_t jw_json_member_id(const char *text, const struct jw_json_member *m, char *out, size_t size);

#endif
