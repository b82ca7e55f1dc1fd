/* in_journald's records: one journal entry's fields, as sd-journal hands them ("FIELD=value"),
 * turned into the JSON value of a record (or the parts a raw record needs). */
#ifndef SL_PLUGINS_IN_JOURNALD_REC_H
#define SL_PLUGINS_IN_JOURNALD_REC_H

#include "common/buf.h"
#include "common/conf.h"
#include "common/json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The JSON value of one entry, members in this order (absent fields are left out):
 *
 *   {"time":"2026-11-22T10:00:00.123456Z",      __REALTIME_TIMESTAMP, UTC, microseconds
 *    "host":"web-1","source":"journald",        the agent's (the caller's `fixed` members,
 *    ...the source's name=value fields...        written as given)
 *    "unit":"nginx.service",                    _SYSTEMD_UNIT
 *    "priority":6,                              PRIORITY, a number 0..7
 *    "pid":1234,                                _PID, a number
 *    "syslog_identifier":"nginx",               SYSLOG_IDENTIFIER
 *    "message":"...",                           MESSAGE ("" when the entry has none)
 *    "message_base64":"...",                    only when MESSAGE is not valid UTF-8
 *    "_COMM":"nginx","CODE_LINE":"42",...       the selected other fields, journal names,
 *    "BLOB_base64":"AAEC...",                    strings; binary ones as NAME_base64
 *    "truncated":true}                          only when a value was cut at max_bytes
 *
 * Strings: a value that is valid UTF-8 is written as a JSON string with '"', '\\' and every
 * control byte escaped (NUL is \u0000), which loses nothing. A value that is not valid UTF-8
 * is binary: it is written base64-encoded (RFC 4648, with padding) under its name with
 * "_base64" appended. The message is always there as text, so a binary MESSAGE also appears as
 * "message" with each invalid byte replaced by U+FFFD, and exactly as "message_base64".
 * A field the entry holds twice is written once, with its first value. A value longer than
 * max_bytes is cut to max_bytes (at a character boundary for text), and the record gets
 * "truncated":true. A PRIORITY or _PID that is not a small decimal number is left out. unit
 * and syslog_identifier are always text (invalid bytes as U+FFFD). Field names are journald's
 * (A-Z, 0-9, '_', at most 64 bytes); an item with another name is left out and counted.
 */

/* Which of an entry's fields (beyond the ones every record names) go into its record. */
struct in_journald_select {
    char **names; /* owned, sorted (strcmp) */
    size_t len;
    bool all; /* "*": every field of the entry */
};

/* Builds s from a `journal_fields` list: names copied and sorted, "*" sets all, and the
 * fields every record has anyway (MESSAGE, PRIORITY, _PID, SYSLOG_IDENTIFIER, _SYSTEMD_UNIT)
 * are skipped. Returns 0 or -ENOMEM (s then empty). */
int in_journald_select_init(struct in_journald_select *s, const struct sl_conf_list *fields);

void in_journald_select_fini(struct in_journald_select *s);

/* True when the field name[0..len) is one every record names (message, unit, ...). */
bool in_journald_rec_core_field(const char *name, size_t len);

/* How a field name is handled, cached per name so the common case costs one hash probe. */
#define IN_JOURNALD_NAME_SLOTS 512 /* a power of two; names beyond 3/4 of it take the slow way */

struct in_journald_name {
    uint32_t hash;
    uint64_t gen;  /* the entry that last wrote it (a field twice in an entry is written once) */
    uint8_t len;   /* 0: free slot */
    uint8_t kind;  /* what the field is: one of rec.c's kinds */
    char name[64]; /* journal field names are at most 64 bytes */
};

/* The entry being built: scratch reused from entry to entry. */
struct in_journald_rec {
    const struct in_journald_select *sel; /* borrowed */
    size_t max_bytes;
    bool raw;                       /* the raw format: only message, unit, priority are kept */
    struct sl_buf msg;              /* owned: MESSAGE (cut), JSON-escaped; raw: its bytes */
    struct sl_buf msg_bin;          /* owned: MESSAGE's bytes when it is not valid UTF-8 */
    struct sl_buf unit, ident;      /* owned: _SYSTEMD_UNIT, SYSLOG_IDENTIFIER (cut); escaped */
    struct sl_buf extra;            /* owned: ,"NAME":"value" members of the selected fields */
    struct sl_buf seen;             /* owned: names written this entry that the cache lacks */
    struct in_journald_name *names; /* owned: IN_JOURNALD_NAME_SLOTS */
    size_t names_used;
    uint64_t gen;      /* this entry's number, for in_journald_name.gen */
    int priority, pid; /* -1: absent */
    bool has_msg, has_unit, has_ident;
    bool msg_binary; /* MESSAGE was not valid UTF-8: msg_bin holds it */
    bool truncated;
    size_t fields_bad; /* items without '=' (damage), this entry */
};

/* Prepares r for entries selected by sel (borrowed, outlives r). max_bytes: the longest value
 * kept. raw: only message, unit, priority are kept (format: raw). Returns 0 or -ENOMEM. */
int in_journald_rec_init(struct in_journald_rec *r, const struct in_journald_select *sel,
                         size_t max_bytes, bool raw);

void in_journald_rec_fini(struct in_journald_rec *r);

/* Begins a new entry. */
void in_journald_rec_reset(struct in_journald_rec *r);

/* Adds one data item of the entry, "FIELD=value" (value may hold any bytes). An item without
 * '=', or whose name is not a journal field name, is counted in fields_bad and skipped. Returns 0,
 * or -ENOMEM (the entry should be tried again later). */
int in_journald_rec_add(struct in_journald_rec *r, const void *data, size_t len);

/* Writes the entry's JSON value (see the diagram) to out, which is reset first. fixed holds
 * the members after "time" (",\"host\":\"...\",..."), written as given. Returns 0 or -ENOMEM
 * (out's sticky error). */
int in_journald_rec_json(struct in_journald_rec *r, struct sl_json_clock *clock,
                         uint64_t realtime_us, struct sl_bytes fixed, struct sl_buf *out);

/* Appends p[0..n) base64-encoded (RFC 4648, padded) to b. Returns b's sticky error. */
int in_journald_base64(struct sl_buf *b, const uint8_t *p, size_t n);

/* The length to keep of a value of n bytes cut to at most max: max itself, or less so that a
 * valid UTF-8 value is not cut inside a character. */
size_t in_journald_cut(const uint8_t *p, size_t n, size_t max);

#endif
