/* gzip (RFC 1952) compression into an sl_buf with zlib: Kafka's compression codec 1. */
#ifndef SL_COMMON_GZIP_H
#define SL_COMMON_GZIP_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>

/*
 * A gzip stream is one or more members, each complete on its own:
 *
 *    0   1   2   3   4       8   9   10
 *   +---+---+---+---+-------+---+---+ - - - - - - - +============+-------+-------+
 *   |1f |8b |CM |FLG| MTIME |XFL|OS | optional      | deflate    | CRC32 | ISIZE |
 *   |   |   |=8 |   | LE32  |   |   | EXTRA, NAME,  | RFC 1951   | LE32, | LE32, |
 *   |   |   |   |   |       |   |   | COMMENT, HCRC |            | data  | len % |
 *   +---+---+---+---+-------+---+---+ - - - - - - - +============+-------+ 2^32 -+
 *
 * zlib writes and checks all of it; we add limits (a decompression bomb is refused before it
 * fills memory) and route zlib's allocations through sl_malloc so tests can fail them.
 */

/* Default level for sl_gzip_compress (zlib's own default, 6). */
#define SL_GZIP_LEVEL_DEFAULT (-1)

/*
 * Appends one gzip member holding p[0..n) to out. level is 0 (stored) to 9 (smallest), or -1
 * for zlib's default. The header has no file name and MTIME 0, so equal input and level give
 * equal bytes. Returns 0, -EINVAL for a bad level, -ENOMEM (out keeps its previous length), or
 * out's sticky error. p may be NULL when n is 0.
 */
int sl_gzip_compress(struct sl_buf *out, const void *p, size_t n, int level);

/*
 * Appends the decompressed contents of the gzip stream p[0..n) to out. Concatenated members are
 * all decompressed, in order; every byte of the input must belong to a member (trailing garbage
 * or an empty input is an error). Refuses to append more than max_out bytes: SL_ETOOBIG, as soon
 * as the output would pass the limit, without inflating the rest. Returns 0; SL_ECORRUPT for bad
 * or truncated data (err says what zlib found and at which input offset); SL_ETOOBIG; -ENOMEM.
 * On any failure out is cut back to its length at entry (its sticky error, if any, stays).
 */
int sl_gzip_decompress(struct sl_buf *out, const void *p, size_t n, size_t max_out,
                       struct sl_err *err);

#endif
