/* JSON pieces of in_tail's records: string escaping that always yields valid UTF-8, and the
 * RFC 3339 UTC time of the `time` field. */
#ifndef SL_PLUGINS_IN_TAIL_JSON_H
#define SL_PLUGINS_IN_TAIL_JSON_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Appends p[0..n) as the inside of a JSON string (no quotes): '"', '\\' and control bytes
 * escaped, valid UTF-8 copied, and every byte that is not part of a valid UTF-8 sequence
 * (overlongs, surrogates, over U+10FFFF, cut sequences) replaced by \ufffd, so any bytes give
 * a string every JSON parser accepts. Returns b's sticky error. */
int in_tail_json_escape(struct sl_buf *b, const uint8_t *p, size_t n);

/* Caches the formatted second so a time costs a few digits per record. */
struct in_tail_json_clock {
    int64_t sec;   /* the second `text` holds; INT64_MIN: none */
    char text[64]; /* "2026-11-22T10:00:00" */
};

void in_tail_json_clock_init(struct in_tail_json_clock *c);

/* Writes t (seconds since the epoch, microseconds kept) as "2026-11-22T10:00:00.123456Z" into
 * out (at least 32 bytes) and returns its length (27), or 0 for a time gmtime cannot format. */
size_t in_tail_json_time(struct in_tail_json_clock *c, double t, char *out);

#endif
