/* Error codes shared by the whole tree, and the optional human-readable detail buffer. */
#ifndef SL_COMMON_ERR_H
#define SL_COMMON_ERR_H

#include <stddef.h>

/*
 * Functions return 0 on success and a negative code on failure: either -errno from the system,
 * or one of the SL_E* codes below, which sit far outside errno's range so both can coexist.
 * Kafka error codes are a separate domain (int16_t, KAFKA_E_*) and never travel through these.
 */
enum {
    SL_EPARSE = -20001,   /* malformed input: bytes, YAML, a value */
    SL_ETRUNC = -20002,   /* input ended before a complete item */
    SL_ETOOBIG = -20003,  /* a length or count over its limit */
    SL_ECORRUPT = -20004, /* checksum or internal consistency failure */
    SL_ECONFIG = -20005,  /* configuration rejected */
    SL_EUNSUP = -20006,   /* valid but not supported (codec, version) */
    SL_ECLOSED = -20007,  /* peer or object already closed */
};

/* Human detail for the caller; a fixed buffer so reporting an error never allocates. */
struct sl_err {
    char msg[512];
};

/* Formats into err->msg (truncating); a no-op when err is NULL. Returns code, so callers can
 * write `return sl_err_set(err, SL_EPARSE, "...")`. */
int sl_err_set(struct sl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with the formatted text (for adding context on the way up); NULL-safe. */
void sl_err_prefix(struct sl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A static description of an SL_E* or -errno code; never NULL. */
const char *sl_strerror(int code);

#endif
