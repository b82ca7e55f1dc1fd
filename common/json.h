/* JSON text pieces shared by the agent's inputs and the command line: UTF-8 validation, string
 * escaping that always yields valid UTF-8, and cached RFC 3339 UTC timestamps. */
#ifndef SL_COMMON_JSON_H
#define SL_COMMON_JSON_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the character at p (n > 0 bytes left): 1 for ASCII, 2-4 for a valid UTF-8
 * sequence (RFC 3629: no overlongs, surrogates or values over U+10FFFF), 0 when invalid or cut
 * short. */
size_t sl_utf8_len(const uint8_t *p, size_t n);

/* True when p[0..n) is valid UTF-8 (NUL and control bytes are valid). */
bool sl_utf8_valid(const uint8_t *p, size_t n);

/* Appends p[0..n) as the inside of a JSON string (no quotes): '"', '\\' and control bytes
 * escaped, valid UTF-8 copied, and each byte that is not part of valid UTF-8 replaced by
 * \ufffd, so any bytes give a string every JSON parser accepts. Returns true when nothing was
 * replaced (p was valid UTF-8); b's sticky error says whether memory ran out. */
bool sl_json_escape(struct sl_buf *b, const uint8_t *p, size_t n);

/* Caches the formatted second so a time costs a few digits per record. */
struct sl_json_clock {
    int64_t sec;   /* the second `text` holds; INT64_MIN: none */
    char text[64]; /* "2026-11-22T10:00:00" */
};

void sl_json_clock_init(struct sl_json_clock *c);

/* Writes sec + usec/1e6 (seconds since the epoch, usec < 1000000) as
 * "2026-11-22T10:00:00.123456Z" into out (at least 32 bytes) and returns its length (27), or 0
 * for a time outside the years 0000-9999. */
size_t sl_json_time(struct sl_json_clock *c, int64_t sec, uint32_t usec, char *out);

/* The same for t in seconds, rounded to the nearest microsecond (0 for a non-finite t). */
size_t sl_json_time_double(struct sl_json_clock *c, double t, char *out);

#endif
