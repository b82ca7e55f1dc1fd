/* Kafka record batch v2 (magic 2): a builder that encodes one batch into an sl_buf, and a
 * validating decoder that checks a batch and walks its records. */
#ifndef SL_COMMON_BATCH_H
#define SL_COMMON_BATCH_H

/*
 * A record batch, as Kafka's producers send it, its brokers store it and its consumers fetch it
 * (all integers big-endian):
 *
 *  0          8      12     16  17     21   23     27          35          43      51  53   57
 *  +----------+------+------+---+------+----+------+-----------+-----------+-------+---+----+
 *  |baseOffset|batch |leader|mag|crc   |attr|last  |first      |max        |produc-|ep.|base|
 *  |int64     |Length|Epoch |ic |uint32|int |Offset|Timestamp  |Timestamp  |erId   |i16|Seq |
 *  |          |int32 |int32 |i8 |      |16  |Delta |int64      |int64      |int64  |   |i32 |
 *  +----------+------+------+---+------+----+------+-----------+-----------+-------+---+----+
 *     57     61
 *     +------+---------------------------------------------------------------+
 *     |record| records: recordCount records back to back; with a codec, the   |
 *     |Count | same bytes as one compressed stream (gzip: RFC 1952 members)   |
 *     |int32 |                                                                |
 *     +------+---------------------------------------------------------------+
 *                                  |<-- crc: CRC-32C of byte 21 to the end --->|
 *
 *   baseOffset            offset of the first record; the broker assigns it (producers send 0)
 *   batchLength           bytes after this field: the batch is 12 + batchLength bytes, >= 61
 *   partitionLeaderEpoch  the broker's; producers send -1. With baseOffset, outside the CRC so
 *                         a broker rewrites both in place (sl_batch_rewrite)
 *   magic                 2; 0 and 1 are the older message sets, not supported here
 *   attributes            bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
 *                         bit 3 timestamp type (1 = log append time), bit 4 transactional,
 *                         bit 5 control batch, bit 6 firstTimestamp holds the delete horizon
 *   lastOffsetDelta       offset of the last record - baseOffset (kept when compaction drops
 *                         records, so it may exceed recordCount - 1)
 *   firstTimestamp        timestamp of the first record, ms since the epoch (-1: none)
 *   maxTimestamp          largest record timestamp (the broker's time with log append time)
 *   producerId/Epoch      idempotent producer identity, -1/-1 when not idempotent
 *   baseSequence          sequence number of the first record, -1 when not idempotent
 *
 * Each record (varints zigzag-encoded as in protobuf; varint 32 bits, varlong 64):
 *
 *  +--------+-----+---------+-------+------+-----+--------+-------+-------+----------------+
 *  |length  |attr |timestamp|offset |key   |key  |value   |value  |header | headers...     |
 *  |varint  |int8 |Delta    |Delta  |Length|     |Length  |       |Count  |                |
 *  |        |(0)  |varlong  |varint |varint|     |varint  |       |varint |                |
 *  +--------+-----+---------+-------+------+-----+--------+-------+-------+----------------+
 *            |<------------------- length bytes ---------------------------------------->|
 *
 *   each header: headerKeyLength varint (never null), headerKey (UTF-8),
 *                headerValueLength varint (-1: null), headerValue
 *
 *   A length of -1 is a null key/value. offset = baseOffset + offsetDelta;
 *   timestamp = firstTimestamp + timestampDelta (maxTimestamp under log append time).
 *
 * What the decoder accepts (Kafka's own rules, plus bounds and one rule of ours: the timestamp
 * order below, which no producer breaks): batchLength >= 49 and within the
 * bytes given; magic 2; the CRC; codec none or gzip (snappy/lz4/zstd: SL_EUNSUP, 5-7 corrupt);
 * recordCount >= 0; lastOffsetDelta >= recordCount - 1 (-1 for an empty batch), with
 * baseOffset + lastOffsetDelta not overflowing; timestamps >= -1 and, for a non-empty batch
 * with create time and no delete horizon, maxTimestamp >= firstTimestamp. Records: every
 * varint well-formed, every length within its record, each record's length exactly what its
 * fields use, offsetDeltas strictly increasing from >= 0 and <= lastOffsetDelta (gaps are what
 * compaction leaves), exactly recordCount records and no byte after the last. SL_BATCH_STRICT
 * asks for a batch as a producer sends it: at least one record, lastOffsetDelta ==
 * recordCount - 1, offsetDelta == the record's index, not a control batch, and a baseSequence
 * >= 0 whenever producerId >= 0.
 */

#include "common/buf.h"
#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Byte positions of the header fields. */
#define SL_BATCH_OFF_BASE_OFFSET       0
#define SL_BATCH_OFF_LENGTH            8
#define SL_BATCH_OFF_LEADER_EPOCH      12
#define SL_BATCH_OFF_MAGIC             16
#define SL_BATCH_OFF_CRC               17
#define SL_BATCH_OFF_ATTRIBUTES        21
#define SL_BATCH_OFF_LAST_OFFSET_DELTA 23
#define SL_BATCH_OFF_FIRST_TIMESTAMP   27
#define SL_BATCH_OFF_MAX_TIMESTAMP     35
#define SL_BATCH_OFF_PRODUCER_ID       43
#define SL_BATCH_OFF_PRODUCER_EPOCH    51
#define SL_BATCH_OFF_BASE_SEQUENCE     53
#define SL_BATCH_OFF_RECORD_COUNT      57
#define SL_BATCH_HEADER_SIZE           61
/* The batchLength of a batch with no record bytes: the header minus baseOffset and itself. */
#define SL_BATCH_LENGTH_MIN (SL_BATCH_HEADER_SIZE - 12)
#define SL_BATCH_MAGIC      2

enum sl_batch_codec {
    SL_BATCH_CODEC_NONE = 0,
    SL_BATCH_CODEC_GZIP = 1,
    SL_BATCH_CODEC_SNAPPY = 2,
    SL_BATCH_CODEC_LZ4 = 3,
    SL_BATCH_CODEC_ZSTD = 4,
};

#define SL_BATCH_ATTR_CODEC_MASK      0x0007
#define SL_BATCH_ATTR_LOG_APPEND_TIME 0x0008
#define SL_BATCH_ATTR_TRANSACTIONAL   0x0010
#define SL_BATCH_ATTR_CONTROL         0x0020
#define SL_BATCH_ATTR_DELETE_HORIZON  0x0040

/* Decoder flags. */
#define SL_BATCH_STRICT 0x1u /* a batch as a producer sends it (see the top of this file) */

/* ---- Encoder ------------------------------------------------------------------------------ */

/* How a batch is built. Start from SL_BATCH_OPTS_DEFAULT and change what differs. */
struct sl_batch_opts {
    int64_t base_offset;
    int32_t partition_leader_epoch;
    int16_t attributes; /* timestamp type, transactional, control bits; no codec bits */
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    enum sl_batch_codec codec; /* NONE or GZIP */
    int level;                 /* gzip level 0-9, -1 for zlib's default */
};

/* What a Java producer sends for a non-idempotent batch, uncompressed. */
#define SL_BATCH_OPTS_DEFAULT                                                                      \
    ((struct sl_batch_opts){.base_offset = 0,                                                      \
                            .partition_leader_epoch = -1,                                          \
                            .attributes = 0,                                                       \
                            .producer_id = -1,                                                     \
                            .producer_epoch = -1,                                                  \
                            .base_sequence = -1,                                                   \
                            .codec = SL_BATCH_CODEC_NONE,                                          \
                            .level = -1})

/* A record header to encode: key is never null (a null key is refused), value may be. */
struct sl_batch_kv {
    struct sl_bytes key;   /* borrowed */
    struct sl_bytes value; /* borrowed */
};

/* Collects records, then encodes the batch. Fields are read-only for callers. */
struct sl_batch_builder {
    struct sl_batch_opts opts;
    struct sl_buf records;   /* owned: the encoded records, uncompressed */
    int32_t count;           /* records added */
    int64_t first_timestamp; /* -1 until the first record */
    int64_t max_timestamp;
};

/*
 * Prepares an empty builder; allocates nothing. Returns 0, or -EINVAL when opts asks for a
 * codec other than none/gzip, a gzip level outside -1..9, or sets codec bits in attributes
 * (the builder is then still safe to fini).
 */
int sl_batch_builder_init(struct sl_batch_builder *b, const struct sl_batch_opts *opts);

/* Frees the builder's memory; NULL-safe. It may be initialised again afterwards. */
void sl_batch_builder_fini(struct sl_batch_builder *b);

/*
 * Encodes one record into the builder (key, value and header bytes are copied; the caller
 * keeps its own). timestamp is in ms since the epoch, or -1 for none. key/value with p == NULL
 * are null. Returns 0; -EINVAL for a timestamp below -1, one whose distance from the first
 * record's does not fit the int64 delta, or a null header key; SL_ETOOBIG when
 * the record or the batch would pass what batchLength and the record length varints can express
 * (INT32_MAX), or when the count would; -ENOMEM. On failure the builder is exactly as before the
 * call, so the batch so far can still be finished.
 */
int sl_batch_builder_add(struct sl_batch_builder *b, int64_t timestamp, struct sl_bytes key,
                         struct sl_bytes value, const struct sl_batch_kv *headers,
                         size_t header_count);

/* The size the batch would have if finished now without compression (the header included);
 * what a caller compares with its batch-size limit. */
size_t sl_batch_builder_size(const struct sl_batch_builder *b);

/*
 * Appends the encoded batch to out: the header with batchLength, counts, timestamps,
 * lastOffsetDelta and the CRC-32C filled in, then the records, gzip-compressed when the codec
 * says so. A batch without records is encoded with recordCount 0, lastOffsetDelta -1 and
 * timestamps -1 (brokers refuse those from producers; they are for tests). The builder is not
 * changed, so finishing twice appends the same bytes twice. Returns 0, -ENOMEM, SL_ETOOBIG
 * (compressed output over INT32_MAX), or out's sticky error; on failure out is cut back to its
 * length at entry.
 */
int sl_batch_builder_finish(const struct sl_batch_builder *b, struct sl_buf *out);

/* ---- Decoder ------------------------------------------------------------------------------ */

/* A parsed batch header, fields named and ordered as on the wire. */
struct sl_batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    size_t size; /* bytes of the whole batch: 12 + batch_length */
};

static inline enum sl_batch_codec sl_batch_codec(const struct sl_batch_header *h)
{
    return (enum sl_batch_codec)(h->attributes & SL_BATCH_ATTR_CODEC_MASK);
}

/* Offset of the last record the batch covers (baseOffset + lastOffsetDelta; baseOffset - 1 for
 * an empty batch written by the builder). sl_batch_parse_header guarantees no overflow. */
static inline int64_t sl_batch_last_offset(const struct sl_batch_header *h)
{
    return h->base_offset + h->last_offset_delta;
}

/*
 * Validates the batch header at p, where n bytes are available (the batch may be followed by
 * others: only h->size bytes are looked at). Checks everything listed at the top of this file
 * that the header alone can show, the CRC included, and fills h. Returns 0; SL_ETRUNC when n
 * is less than the 61-byte header or than the size batchLength announces (more bytes may be
 * on the way); SL_EUNSUP for magic 0/1 or a snappy/lz4/zstd codec; SL_ECORRUPT for anything
 * else wrong. err names the field and its byte offset. flags: 0 or SL_BATCH_STRICT.
 */
int sl_batch_parse_header(struct sl_batch_header *h, const void *p, size_t n, unsigned flags,
                          struct sl_err *err);

/* One decoded record; views point into the batch or into the iterator's scratch buffer and
 * stay valid while those do. */
struct sl_batch_record {
    int64_t offset;    /* baseOffset + offsetDelta */
    int64_t timestamp; /* firstTimestamp + timestampDelta, or maxTimestamp (log append time) */
    int64_t timestamp_delta;
    int32_t offset_delta;
    int8_t attributes;
    struct sl_bytes key;   /* p NULL for a null key */
    struct sl_bytes value; /* p NULL for a null value */
    int32_t header_count;
    struct sl_bytes headers; /* the encoded headers, already validated: walk them with
                                sl_batch_hiter */
};

/* Walks a batch's records. Fields are private. */
struct sl_batch_iter {
    struct sl_batch_header hdr;
    const uint8_t *records; /* borrowed: the batch's records section, or scratch's data */
    size_t records_len;
    size_t pos;
    int32_t index;      /* records returned so far */
    int32_t last_delta; /* offsetDelta of the previous record; -1 before the first */
    unsigned flags;
    bool decompressed;
    int err; /* sticky: once a call failed, every later one returns this */
};

/*
 * Starts walking the records of the batch at `batch`, whose header h came from
 * sl_batch_parse_header on those same bytes (with the same flags). A gzip batch is decompressed
 * here, into scratch (its content is replaced; the caller owns it and keeps it unchanged while
 * iterating), refusing more than max_records_bytes of output with SL_ETOOBIG; uncompressed
 * records are read in place and need no scratch (it may then be NULL). Returns 0; SL_EUNSUP
 * for a codec without support; SL_ECORRUPT for a bad compressed stream, or a record count
 * that cannot fit in the records' bytes; SL_ETOOBIG; -ENOMEM. err says what went wrong.
 */
int sl_batch_iter_init(struct sl_batch_iter *it, const struct sl_batch_header *h, const void *batch,
                       struct sl_buf *scratch, size_t max_records_bytes, unsigned flags,
                       struct sl_err *err);

/*
 * Decodes the next record into rec. Returns 1 with rec filled; 0 at the end, once exactly
 * recordCount records were read and no byte is left over; or SL_ECORRUPT (with err naming the
 * record, its byte position in the records section and the field) for any record that breaks
 * the rules at the top of this file, a varint overflow included. After an error every call
 * returns the same error.
 */
int sl_batch_iter_next(struct sl_batch_iter *it, struct sl_batch_record *rec, struct sl_err *err);

/* Walks one record's headers. Fields are private. */
struct sl_batch_hiter {
    const uint8_t *p; /* borrowed */
    size_t len;
    size_t pos;
    int32_t left;
};

/* Starts walking rec's headers (validated by sl_batch_iter_next, so walking cannot fail). */
void sl_batch_hiter_init(struct sl_batch_hiter *hi, const struct sl_batch_record *rec);

/* Sets key (never null) and value (p NULL for null) to the next header and returns true, or
 * returns false when no header is left. */
bool sl_batch_hiter_next(struct sl_batch_hiter *hi, struct sl_bytes *key, struct sl_bytes *value);

/*
 * Parses the header at p and walks every record (each with its headers), which is
 * how a broker validates what a producer sent. h is filled from the header on success. Same
 * arguments and results as sl_batch_parse_header and the iterator.
 */
int sl_batch_validate(struct sl_batch_header *h, const void *p, size_t n, struct sl_buf *scratch,
                      size_t max_records_bytes, unsigned flags, struct sl_err *err);

/*
 * Overwrites baseOffset and partitionLeaderEpoch of the batch at p (n bytes available), as a
 * broker does when it appends a batch; both are outside the CRC, which stays valid. The caller
 * has validated the batch and keeps base_offset + lastOffsetDelta within int64. Returns 0, or
 * SL_ETRUNC when n is under the 61-byte header.
 */
int sl_batch_rewrite(void *p, size_t n, int64_t base_offset, int32_t partition_leader_epoch);

#endif
