/* A small JSON reader: validates a text and picks top-level members of an object without
 * building a tree (a value is read once, straight from the buffer it arrived in). Used by the
 * sinks for typed columns and by the agent's inputs for a record key taken from a field. */
#ifndef SL_COMMON_JSON_READ_H
#define SL_COMMON_JSON_READ_H

#include "common/buf.h"
#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JSON value types. */
enum sl_json_type {
    SL_JSON_NONE = 0, /* absent */
    SL_JSON_NULL,
    SL_JSON_BOOL,
    SL_JSON_NUMBER,
    SL_JSON_STRING,
    SL_JSON_ARRAY,
    SL_JSON_OBJECT,
};

/* A view of one value inside a JSON text. */
struct sl_json_val {
    enum sl_json_type type;
    const uint8_t *p; /* borrowed: the value's bytes (strings with their quotes) */
    size_t len;
};

/*
 * Checks that p[0..n) is exactly one JSON value (RFC 8259, UTF-8, surrounding whitespace
 * allowed, nesting at most 64 deep) and sets *type to its type. Returns 0, or SL_EPARSE with
 * err naming the byte offset and what was expected.
 */
int sl_json_check(const void *p, size_t n, enum sl_json_type *type, struct sl_err *err);

/* sl_json_check that also sets *newline when the checked text holds a '\n' or '\r' (in JSON
 * only whitespace between tokens), so a caller calls sl_json_one_line only then: the check sees
 * every such byte, and most values have none. */
int sl_json_check_nl(const void *p, size_t n, enum sl_json_type *type, bool *newline,
                     struct sl_err *err);

/* In a checked JSON object text, finds the top-level member named key (the first, when
 * repeated) and sets *out; out->type is SL_JSON_NONE when absent. */
void sl_json_get(const void *obj, size_t n, const char *key, struct sl_json_val *out);

/* Appends the decoded contents of a JSON string value (v->type SL_JSON_STRING, checked) to
 * b: escapes resolved, \u0000 kept as a NUL byte. Returns 0 or b's sticky error. */
int sl_json_unescape(const struct sl_json_val *v, struct sl_buf *b);

/* Makes the checked JSON text p[0..n) one line: its newlines can only be whitespace between
 * tokens (strings hold none raw), so each becomes a space; the value is unchanged. */
void sl_json_one_line(void *p, size_t n);

/* True when the checked JSON text v (a string, or any value) holds a \\u0000 escape: text
 * with a NUL character, which PostgreSQL text and jsonb refuse. */
bool sl_json_has_nul(const struct sl_json_val *v);

#endif
