/* Record batch v2: the builder (encode once, CRC last) and the validating decoder. */
#include "common/batch.h"

#include "common/base.h"
#include "common/crc32c.h"
#include "common/gzip.h"
#include "common/reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

/* The smallest record: length, attributes, timestampDelta, offsetDelta, keyLength,
 * valueLength and headerCount, one byte each. */
#define RECORD_BODY_MIN 6
#define RECORD_MIN      (1 + RECORD_BODY_MIN)
/* The smallest header: an empty key (1-byte length) and a null value. */
#define HEADER_MIN 2

/* ---- Encoder ------------------------------------------------------------------------------ */

/* Bytes of the zigzag varint encoding of v. */
static uint64_t varint_size(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint64_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

/* Bytes of a record key/value/header field: its varint length and contents (-1 for null). */
static uint64_t varbytes_size(struct sl_bytes s)
{
    return s.p ? varint_size((int64_t)s.len) + s.len : 1;
}

int sl_batch_builder_init(struct sl_batch_builder *b, const struct sl_batch_opts *opts)
{
    b->opts = *opts;
    sl_buf_init(&b->records);
    b->count = 0;
    b->first_timestamp = -1;
    b->max_timestamp = -1;
    if (opts->codec != SL_BATCH_CODEC_NONE && opts->codec != SL_BATCH_CODEC_GZIP)
        return -EINVAL;
    if (opts->level < -1 || opts->level > 9)
        return -EINVAL;
    if (opts->attributes & SL_BATCH_ATTR_CODEC_MASK)
        return -EINVAL;
    return 0;
}

void sl_batch_builder_fini(struct sl_batch_builder *b)
{
    if (!b)
        return;
    sl_buf_fini(&b->records);
    b->count = 0;
}

size_t sl_batch_builder_size(const struct sl_batch_builder *b)
{
    return SL_BATCH_HEADER_SIZE + b->records.len;
}

int sl_batch_builder_add(struct sl_batch_builder *b, int64_t timestamp, struct sl_bytes key,
                         struct sl_bytes value, const struct sl_batch_kv *headers,
                         size_t header_count)
{
    if (timestamp < -1)
        return -EINVAL;
    if (b->count == INT32_MAX || header_count > INT32_MAX)
        return SL_ETOOBIG;
    if ((key.p && key.len > INT32_MAX) || (value.p && value.len > INT32_MAX))
        return SL_ETOOBIG;
    if (!key.p)
        key.len = 0;
    if (!value.p)
        value.len = 0;

    int64_t first = b->count ? b->first_timestamp : timestamp;
    int64_t ts_delta;
    if (__builtin_sub_overflow(timestamp, first, &ts_delta))
        return -EINVAL;
    int32_t offset_delta = b->count;

    /* The length comes first, so size the record before writing it. */
    uint64_t body = 1 + varint_size(ts_delta) + varint_size(offset_delta) + varbytes_size(key) +
                    varbytes_size(value) + varint_size((int64_t)header_count);
    for (size_t i = 0; i < header_count; i++) {
        if (!headers[i].key.p)
            return -EINVAL;
        struct sl_bytes hv = headers[i].value;
        if (!hv.p)
            hv.len = 0;
        if (headers[i].key.len > INT32_MAX || hv.len > INT32_MAX)
            return SL_ETOOBIG;
        body += varbytes_size(headers[i].key) + varbytes_size(hv);
        if (body > INT32_MAX)
            return SL_ETOOBIG;
    }
    if (body > INT32_MAX)
        return SL_ETOOBIG;
    uint64_t total = varint_size((int64_t)body) + body;
    if (SL_BATCH_LENGTH_MIN + (uint64_t)b->records.len + total > INT32_MAX)
        return SL_ETOOBIG;

    struct sl_buf *r = &b->records;
    size_t start = r->len;
    sl_buf_put_varint(r, (int32_t)body);
    sl_buf_put_i8(r, 0); /* record attributes: unused */
    sl_buf_put_varlong(r, ts_delta);
    sl_buf_put_varint(r, offset_delta);
    sl_buf_put_varbytes(r, key);
    sl_buf_put_varbytes(r, value);
    sl_buf_put_varint(r, (int32_t)header_count);
    for (size_t i = 0; i < header_count; i++) {
        sl_buf_put_varbytes(r, headers[i].key);
        struct sl_bytes hv = headers[i].value;
        if (!hv.p)
            hv.len = 0;
        sl_buf_put_varbytes(r, hv);
    }
    int rc = sl_buf_error(r);
    if (rc) {
        /* Drop the partial record and the sticky error: the batch so far stays usable. */
        sl_buf_truncate(r, start);
        r->err = 0;
        return rc;
    }
    SL_ASSERT(r->len - start == total);

    if (b->count == 0) {
        b->first_timestamp = timestamp;
        b->max_timestamp = timestamp;
    } else if (timestamp > b->max_timestamp) {
        b->max_timestamp = timestamp;
    }
    b->count++;
    return 0;
}

int sl_batch_builder_finish(const struct sl_batch_builder *b, struct sl_buf *out)
{
    if (out->err)
        return out->err;
    size_t start = out->len;
    int rc = 0;
    sl_buf_hole(out, SL_BATCH_HEADER_SIZE);
    if (b->opts.codec == SL_BATCH_CODEC_GZIP) {
        if (!out->err)
            rc = sl_gzip_compress(out, b->records.data, b->records.len, b->opts.level);
    } else {
        sl_buf_append(out, b->records.data, b->records.len);
    }
    if (!rc)
        rc = sl_buf_error(out);
    if (rc)
        goto fail;
    size_t size = out->len - start;
    if (size - 12 > INT32_MAX) {
        rc = SL_ETOOBIG;
        goto fail;
    }

    /* The fields in wire order; the CRC last, over everything after it. */
    int16_t attributes = (int16_t)(b->opts.attributes | (int16_t)b->opts.codec);
    sl_buf_patch_i64(out, start + SL_BATCH_OFF_BASE_OFFSET, b->opts.base_offset);
    sl_buf_patch_i32(out, start + SL_BATCH_OFF_LENGTH, (int32_t)(size - 12));
    sl_buf_patch_i32(out, start + SL_BATCH_OFF_LEADER_EPOCH, b->opts.partition_leader_epoch);
    out->data[start + SL_BATCH_OFF_MAGIC] = SL_BATCH_MAGIC;
    sl_buf_patch_i16(out, start + SL_BATCH_OFF_ATTRIBUTES, attributes);
    sl_buf_patch_i32(out, start + SL_BATCH_OFF_LAST_OFFSET_DELTA, b->count - 1);
    sl_buf_patch_i64(out, start + SL_BATCH_OFF_FIRST_TIMESTAMP, b->first_timestamp);
    sl_buf_patch_i64(out, start + SL_BATCH_OFF_MAX_TIMESTAMP, b->max_timestamp);
    sl_buf_patch_i64(out, start + SL_BATCH_OFF_PRODUCER_ID, b->opts.producer_id);
    sl_buf_patch_i16(out, start + SL_BATCH_OFF_PRODUCER_EPOCH, b->opts.producer_epoch);
    sl_buf_patch_i32(out, start + SL_BATCH_OFF_BASE_SEQUENCE, b->opts.base_sequence);
    sl_buf_patch_i32(out, start + SL_BATCH_OFF_RECORD_COUNT, b->count);
    uint32_t crc =
        sl_crc32c(0, out->data + start + SL_BATCH_OFF_ATTRIBUTES, size - SL_BATCH_OFF_ATTRIBUTES);
    sl_buf_patch_u32(out, start + SL_BATCH_OFF_CRC, crc);
    return 0;
fail:
    sl_buf_truncate(out, start);
    return rc;
}

/* ---- Decoder ------------------------------------------------------------------------------ */

/* Reports a header problem as "record batch: <field> at byte <off>: <reason>". */
__attribute__((format(printf, 5, 6))) static int
header_fail(struct sl_err *err, int code, const char *field, size_t off, const char *fmt, ...)
{
    if (!err)
        return code;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return sl_err_set(err, code, "record batch: %s at byte %zu: %s", field, off, reason);
}

int sl_batch_parse_header(struct sl_batch_header *h, const void *p, size_t n, unsigned flags,
                          struct sl_err *err)
{
    const uint8_t *b = p;
    /* The magic decides how to read the rest (Kafka reads it first), so it needs 17 bytes. */
    if (n < SL_BATCH_OFF_MAGIC + 1)
        return header_fail(err, SL_ETRUNC, "header", 0, "only %zu bytes, a batch header needs %d",
                           n, SL_BATCH_HEADER_SIZE);
    int8_t magic = (int8_t)b[SL_BATCH_OFF_MAGIC];
    if (magic == 0 || magic == 1)
        return header_fail(err, SL_EUNSUP, "magic", SL_BATCH_OFF_MAGIC,
                           "message format v%d is not supported, only v2", magic);
    if (magic != SL_BATCH_MAGIC)
        return header_fail(err, SL_ECORRUPT, "magic", SL_BATCH_OFF_MAGIC, "unknown magic %d",
                           magic);
    int32_t batch_length = (int32_t)sl_be32(b + SL_BATCH_OFF_LENGTH);
    if (batch_length < SL_BATCH_LENGTH_MIN)
        return header_fail(err, SL_ECORRUPT, "batchLength", SL_BATCH_OFF_LENGTH,
                           "%" PRId32 " is below the minimum %d", batch_length,
                           SL_BATCH_LENGTH_MIN);
    size_t size = 12 + (size_t)batch_length;
    if (n < size)
        return header_fail(err, SL_ETRUNC, "batchLength", SL_BATCH_OFF_LENGTH,
                           "announces a %zu-byte batch, only %zu bytes present", size, n);

    uint32_t crc = sl_be32(b + SL_BATCH_OFF_CRC);
    uint32_t computed = sl_crc32c(0, b + SL_BATCH_OFF_ATTRIBUTES, size - SL_BATCH_OFF_ATTRIBUTES);
    if (crc != computed)
        return header_fail(err, SL_ECORRUPT, "crc", SL_BATCH_OFF_CRC,
                           "stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 " over bytes %d..%zu",
                           crc, computed, SL_BATCH_OFF_ATTRIBUTES, size);

    h->base_offset = (int64_t)sl_be64(b + SL_BATCH_OFF_BASE_OFFSET);
    h->batch_length = batch_length;
    h->partition_leader_epoch = (int32_t)sl_be32(b + SL_BATCH_OFF_LEADER_EPOCH);
    h->magic = magic;
    h->crc = crc;
    h->attributes = (int16_t)sl_be16(b + SL_BATCH_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)sl_be32(b + SL_BATCH_OFF_LAST_OFFSET_DELTA);
    h->first_timestamp = (int64_t)sl_be64(b + SL_BATCH_OFF_FIRST_TIMESTAMP);
    h->max_timestamp = (int64_t)sl_be64(b + SL_BATCH_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)sl_be64(b + SL_BATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)sl_be16(b + SL_BATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)sl_be32(b + SL_BATCH_OFF_BASE_SEQUENCE);
    h->record_count = (int32_t)sl_be32(b + SL_BATCH_OFF_RECORD_COUNT);
    h->size = size;

    int codec = sl_batch_codec(h);
    if (codec >= SL_BATCH_CODEC_SNAPPY && codec <= SL_BATCH_CODEC_ZSTD)
        return header_fail(err, SL_EUNSUP, "attributes", SL_BATCH_OFF_ATTRIBUTES,
                           "compression codec %d (%s) is not supported", codec,
                           codec == SL_BATCH_CODEC_SNAPPY ? "snappy"
                           : codec == SL_BATCH_CODEC_LZ4  ? "lz4"
                                                          : "zstd");
    if (codec > SL_BATCH_CODEC_ZSTD)
        return header_fail(err, SL_ECORRUPT, "attributes", SL_BATCH_OFF_ATTRIBUTES,
                           "unknown compression codec %d", codec);

    int32_t count = h->record_count;
    int32_t lod = h->last_offset_delta;
    if (count < 0)
        return header_fail(err, SL_ECORRUPT, "recordCount", SL_BATCH_OFF_RECORD_COUNT,
                           "negative count %" PRId32, count);
    if ((int64_t)lod < (int64_t)count - 1)
        return header_fail(err, SL_ECORRUPT, "lastOffsetDelta", SL_BATCH_OFF_LAST_OFFSET_DELTA,
                           "%" PRId32 " cannot cover %" PRId32 " records", lod, count);
    if ((flags & SL_BATCH_STRICT) && (count == 0 || lod != count - 1))
        return header_fail(err, SL_ECORRUPT, "lastOffsetDelta", SL_BATCH_OFF_LAST_OFFSET_DELTA,
                           "%" PRId32 " with %" PRId32
                           " records; a producer sends recordCount - 1 and at least one record",
                           lod, count);
    /* Kafka's LogValidator refuses both from clients: control records are the broker's own,
     * and an idempotent batch without a sequence cannot be deduplicated. */
    if ((flags & SL_BATCH_STRICT) && (h->attributes & SL_BATCH_ATTR_CONTROL))
        return header_fail(err, SL_ECORRUPT, "attributes", SL_BATCH_OFF_ATTRIBUTES,
                           "clients may not write control batches");
    if ((flags & SL_BATCH_STRICT) && h->producer_id >= 0 && h->base_sequence < 0)
        return header_fail(err, SL_ECORRUPT, "baseSequence", SL_BATCH_OFF_BASE_SEQUENCE,
                           "%" PRId32 " with producerId %" PRId64, h->base_sequence,
                           h->producer_id);
    int64_t last;
    if (__builtin_add_overflow(h->base_offset, (int64_t)lod, &last))
        return header_fail(err, SL_ECORRUPT, "lastOffsetDelta", SL_BATCH_OFF_LAST_OFFSET_DELTA,
                           "baseOffset %" PRId64 " + %" PRId32 " overflows", h->base_offset, lod);
    if (h->first_timestamp < -1)
        return header_fail(err, SL_ECORRUPT, "firstTimestamp", SL_BATCH_OFF_FIRST_TIMESTAMP,
                           "%" PRId64 " is negative", h->first_timestamp);
    if (h->max_timestamp < -1)
        return header_fail(err, SL_ECORRUPT, "maxTimestamp", SL_BATCH_OFF_MAX_TIMESTAMP,
                           "%" PRId64 " is negative", h->max_timestamp);
    /* Under log append time the broker sets maxTimestamp and with a delete horizon
     * firstTimestamp is no record's time: their order then means nothing. */
    if (count > 0 &&
        !(h->attributes & (SL_BATCH_ATTR_LOG_APPEND_TIME | SL_BATCH_ATTR_DELETE_HORIZON)) &&
        h->max_timestamp < h->first_timestamp)
        return header_fail(err, SL_ECORRUPT, "maxTimestamp", SL_BATCH_OFF_MAX_TIMESTAMP,
                           "%" PRId64 " is before firstTimestamp %" PRId64, h->max_timestamp,
                           h->first_timestamp);
    size_t records_len = size - SL_BATCH_HEADER_SIZE;
    if (codec == SL_BATCH_CODEC_NONE && (size_t)count > records_len / RECORD_MIN)
        return header_fail(err, SL_ECORRUPT, "recordCount", SL_BATCH_OFF_RECORD_COUNT,
                           "%" PRId32 " records cannot fit in %zu bytes", count, records_len);
    return 0;
}

int sl_batch_iter_init(struct sl_batch_iter *it, const struct sl_batch_header *h, const void *batch,
                       struct sl_buf *scratch, size_t max_records_bytes, unsigned flags,
                       struct sl_err *err)
{
    it->hdr = *h;
    it->records = NULL;
    it->records_len = 0;
    it->pos = 0;
    it->index = 0;
    it->last_delta = -1;
    it->flags = flags;
    it->decompressed = false;
    it->err = 0;

    const uint8_t *section = (const uint8_t *)batch + SL_BATCH_HEADER_SIZE;
    size_t section_len = h->size - SL_BATCH_HEADER_SIZE;
    int rc = 0;
    switch (sl_batch_codec(h)) {
    case SL_BATCH_CODEC_NONE:
        it->records = section;
        it->records_len = section_len;
        break;
    case SL_BATCH_CODEC_GZIP:
        if (!scratch) {
            rc = sl_err_set(err, -EINVAL, "record batch: a gzip batch needs a scratch buffer");
            break;
        }
        sl_buf_reset(scratch);
        rc = sl_gzip_decompress(scratch, section, section_len, max_records_bytes, err);
        if (rc == -ENOMEM) {
            sl_err_set(err, rc, "out of memory");
        }
        if (rc) {
            sl_err_prefix(err, "record batch (base offset %" PRId64 "): records: ", h->base_offset);
            break;
        }
        it->records = scratch->data;
        it->records_len = scratch->len;
        it->decompressed = true;
        if ((size_t)h->record_count > it->records_len / RECORD_MIN)
            rc = sl_err_set(err, SL_ECORRUPT,
                            "record batch (base offset %" PRId64 "): recordCount %" PRId32
                            " records cannot fit in %zu decompressed bytes",
                            h->base_offset, h->record_count, it->records_len);
        break;
    default:
        rc = sl_err_set(err, SL_EUNSUP, "record batch: compression codec %d is not supported",
                        sl_batch_codec(h));
        break;
    }
    it->err = rc;
    return rc;
}

/* Reports a record problem with where it sits, and makes it sticky. */
__attribute__((format(printf, 5, 6))) static int record_fail(struct sl_batch_iter *it,
                                                             struct sl_err *err, size_t at,
                                                             const char *field, const char *fmt,
                                                             ...)
{
    it->err = SL_ECORRUPT;
    if (!err)
        return it->err;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return sl_err_set(err, it->err,
                      "record batch (base offset %" PRId64 "): record %" PRId32
                      ": %s at byte %zu of the %srecords: %s",
                      it->hdr.base_offset, it->index, field, at,
                      it->decompressed ? "decompressed " : "", reason);
}

/* Remembers the first field whose read failed. */
static void note_field(const struct sl_reader *r, const char **field, const char *name)
{
    if (r->err && !*field)
        *field = name;
}

static const char *reader_reason(const struct sl_reader *r)
{
    return r->err == SL_ETRUNC ? "runs past the end of the record"
                               : "malformed (varint overflow or a negative length)";
}

int sl_batch_iter_next(struct sl_batch_iter *it, struct sl_batch_record *rec, struct sl_err *err)
{
    if (it->err)
        return it->err;
    int32_t count = it->hdr.record_count;
    size_t left = it->records_len - it->pos;
    if (it->index == count) {
        if (left)
            return record_fail(it, err, it->pos, "end",
                               "%zu bytes after the last of %" PRId32 " records", left, count);
        return 0;
    }
    if (left == 0)
        return record_fail(it, err, it->pos, "length",
                           "recordCount is %" PRId32 " but the records end after %" PRId32, count,
                           it->index);

    struct sl_reader r;
    sl_reader_init(&r, it->records + it->pos, left);
    int32_t length = sl_reader_varint(&r);
    if (r.err)
        return record_fail(it, err, it->pos, "length", "%s",
                           r.err == SL_ETRUNC ? "varint runs past the end of the records"
                                              : "varint overflows 32 bits");
    if (length < RECORD_BODY_MIN)
        return record_fail(it, err, it->pos, "length", "%" PRId32 " is below the minimum %d",
                           length, RECORD_BODY_MIN);
    if ((size_t)length > sl_reader_left(&r))
        return record_fail(it, err, it->pos, "length", "%" PRId32 " is over the %zu bytes left",
                           length, sl_reader_left(&r));

    size_t body_at = it->pos + r.pos;
    sl_reader_init(&r, it->records + body_at, (size_t)length);
    const char *field = NULL;
    int8_t attributes = sl_reader_i8(&r);
    int64_t ts_delta = sl_reader_varlong(&r);
    note_field(&r, &field, "timestampDelta");
    int32_t offset_delta = sl_reader_varint(&r);
    note_field(&r, &field, "offsetDelta");
    struct sl_bytes key = sl_reader_varbytes(&r);
    note_field(&r, &field, "key");
    struct sl_bytes value = sl_reader_varbytes(&r);
    note_field(&r, &field, "value");
    int32_t header_count = sl_reader_varint(&r);
    note_field(&r, &field, "headerCount");
    if (field)
        return record_fail(it, err, body_at + r.err_pos, field, "%s", reader_reason(&r));
    if (header_count < 0 || (size_t)header_count > sl_reader_left(&r) / HEADER_MIN)
        return record_fail(it, err, body_at + r.pos, "headerCount",
                           "%" PRId32 " headers cannot fit in the %zu bytes left", header_count,
                           sl_reader_left(&r));
    size_t headers_at = r.pos;
    for (int32_t i = 0; i < header_count; i++) {
        size_t at = r.pos;
        int32_t key_len = sl_reader_varint(&r);
        note_field(&r, &field, "headerKeyLength");
        if (!r.err && key_len < 0)
            return record_fail(it, err, body_at + at, "headerKeyLength",
                               "header %" PRId32 " has a null or negative key length %" PRId32, i,
                               key_len);
        sl_reader_skip(&r, (size_t)key_len);
        note_field(&r, &field, "headerKey");
        sl_reader_varbytes(&r);
        note_field(&r, &field, "headerValue");
        if (field)
            return record_fail(it, err, body_at + r.err_pos, field, "header %" PRId32 ": %s", i,
                               reader_reason(&r));
    }
    if (sl_reader_left(&r))
        return record_fail(it, err, body_at + r.pos, "length",
                           "%zu bytes left over after the record's fields", sl_reader_left(&r));

    if (offset_delta <= it->last_delta)
        return record_fail(it, err, body_at, "offsetDelta",
                           "%" PRId32 " is not above the previous record's %" PRId32, offset_delta,
                           it->last_delta);
    if (offset_delta > it->hdr.last_offset_delta)
        return record_fail(it, err, body_at, "offsetDelta",
                           "%" PRId32 " is beyond lastOffsetDelta %" PRId32, offset_delta,
                           it->hdr.last_offset_delta);
    if ((it->flags & SL_BATCH_STRICT) && offset_delta != it->index)
        return record_fail(it, err, body_at, "offsetDelta",
                           "%" PRId32 " for record %" PRId32 "; a producer numbers them from 0",
                           offset_delta, it->index);
    int64_t timestamp;
    if (it->hdr.attributes & SL_BATCH_ATTR_LOG_APPEND_TIME)
        timestamp = it->hdr.max_timestamp;
    else if (__builtin_add_overflow(it->hdr.first_timestamp, ts_delta, &timestamp))
        return record_fail(it, err, body_at, "timestampDelta",
                           "firstTimestamp %" PRId64 " + %" PRId64 " overflows",
                           it->hdr.first_timestamp, ts_delta);

    /* The header check made baseOffset + lastOffsetDelta safe, and offset_delta is below it. */
    rec->offset = it->hdr.base_offset + offset_delta;
    rec->timestamp = timestamp;
    rec->timestamp_delta = ts_delta;
    rec->offset_delta = offset_delta;
    rec->attributes = attributes;
    rec->key = key;
    rec->value = value;
    rec->header_count = header_count;
    rec->headers = (struct sl_bytes){r.p + headers_at, r.len - headers_at};
    it->pos = body_at + (size_t)length;
    it->last_delta = offset_delta;
    it->index++;
    return 1;
}

void sl_batch_hiter_init(struct sl_batch_hiter *hi, const struct sl_batch_record *rec)
{
    hi->p = rec->headers.p;
    hi->len = rec->headers.len;
    hi->pos = 0;
    hi->left = rec->header_count;
}

bool sl_batch_hiter_next(struct sl_batch_hiter *hi, struct sl_bytes *key, struct sl_bytes *value)
{
    if (hi->left <= 0 || !hi->p)
        return false;
    struct sl_reader r;
    sl_reader_init(&r, hi->p + hi->pos, hi->len - hi->pos);
    /* A header key is a varint length and bytes like a value, and never -1 once validated. */
    struct sl_bytes k = sl_reader_varbytes(&r);
    struct sl_bytes v = sl_reader_varbytes(&r);
    if (r.err || !k.p) {
        hi->left = 0;
        return false;
    }
    *key = k;
    *value = v;
    hi->pos += r.pos;
    hi->left--;
    return true;
}

int sl_batch_validate(struct sl_batch_header *h, const void *p, size_t n, struct sl_buf *scratch,
                      size_t max_records_bytes, unsigned flags, struct sl_err *err)
{
    struct sl_batch_header hdr;
    int rc = sl_batch_parse_header(&hdr, p, n, flags, err);
    if (rc)
        return rc;
    struct sl_batch_iter it;
    rc = sl_batch_iter_init(&it, &hdr, p, scratch, max_records_bytes, flags, err);
    if (rc)
        return rc;
    struct sl_batch_record rec;
    while ((rc = sl_batch_iter_next(&it, &rec, err)) == 1)
        ; /* each call checks a record and its headers whole */
    if (rc == 0)
        *h = hdr;
    return rc;
}

int sl_batch_rewrite(void *p, size_t n, int64_t base_offset, int32_t partition_leader_epoch)
{
    if (n < SL_BATCH_HEADER_SIZE)
        return SL_ETRUNC;
    uint8_t *b = p;
    sl_put_be64(b + SL_BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
    sl_put_be32(b + SL_BATCH_OFF_LEADER_EPOCH, (uint32_t)partition_leader_epoch);
    return 0;
}
