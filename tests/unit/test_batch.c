/* Unit tests for record batch v2: the wire layout, round trips, and every way a batch can be
 * malformed (truncation, bit flips, varints, counts, offsets, timestamps, codecs, memory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/base.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/err.h"
#include "common/gzip.h"
#include "common/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_RECORDS_BYTES ((size_t)64 << 20)

/* A record to build and expect back. */
/* clang-format off */
#define REC(t, k, v) {.ts = (t), .key = (k), .value = (v)}
/* clang-format on */
struct rec {
    int64_t ts;
    struct sl_bytes key;
    struct sl_bytes value;
    size_t nh;
    struct sl_batch_kv h[4];
};

static void build(const struct sl_batch_opts *o, const struct rec *recs, size_t n,
                  struct sl_buf *out)
{
    struct sl_batch_builder b;
    assert_int_equal(sl_batch_builder_init(&b, o), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            sl_batch_builder_add(&b, recs[i].ts, recs[i].key, recs[i].value, recs[i].h, recs[i].nh),
            0);
    assert_int_equal(sl_batch_builder_finish(&b, out), 0);
    sl_batch_builder_fini(&b);
}

/* Recomputes the CRC of a batch in place (for damage that must get past the CRC). */
static void fix_crc(uint8_t *b, size_t size)
{
    sl_put_be32(b + SL_BATCH_OFF_CRC,
                sl_crc32c(0, b + SL_BATCH_OFF_ATTRIBUTES, size - SL_BATCH_OFF_ATTRIBUTES));
}

/* Wraps an arbitrary records section in a header with a correct length and CRC, written field
 * by field here rather than by the builder. */
static void craft(struct sl_buf *out, int16_t attributes, int32_t last_offset_delta,
                  int64_t first_ts, int64_t max_ts, int32_t count, const void *records, size_t n)
{
    sl_buf_reset(out);
    sl_buf_put_i64(out, 100);               /* baseOffset */
    sl_buf_put_i32(out, (int32_t)(49 + n)); /* batchLength */
    sl_buf_put_i32(out, 0);                 /* partitionLeaderEpoch */
    sl_buf_put_i8(out, 2);                  /* magic */
    sl_buf_put_u32(out, 0);                 /* crc, below */
    sl_buf_put_i16(out, attributes);        /* attributes */
    sl_buf_put_i32(out, last_offset_delta); /* lastOffsetDelta */
    sl_buf_put_i64(out, first_ts);          /* firstTimestamp */
    sl_buf_put_i64(out, max_ts);            /* maxTimestamp */
    sl_buf_put_i64(out, -1);                /* producerId */
    sl_buf_put_i16(out, -1);                /* producerEpoch */
    sl_buf_put_i32(out, -1);                /* baseSequence */
    sl_buf_put_i32(out, count);             /* recordCount */
    sl_buf_append(out, records, n);
    assert_int_equal(out->err, 0);
    fix_crc(out->data, out->len);
}

/* Parses and walks a whole batch; returns the first error or 0, and the record count seen. */
static int walk(const void *p, size_t n, unsigned flags, size_t max, int32_t *seen,
                struct sl_err *err)
{
    struct sl_batch_header h;
    struct sl_buf scratch;
    sl_buf_init(&scratch);
    int rc = sl_batch_parse_header(&h, p, n, flags, err);
    int32_t count = 0;
    struct sl_batch_iter it;
    if (rc == 0)
        rc = sl_batch_iter_init(&it, &h, p, &scratch, max, flags, err);
    if (rc == 0) {
        struct sl_batch_record r;
        while ((rc = sl_batch_iter_next(&it, &r, err)) == 1) {
            struct sl_batch_hiter hi;
            struct sl_bytes k, v;
            int32_t nh = 0;
            sl_batch_hiter_init(&hi, &r);
            while (sl_batch_hiter_next(&hi, &k, &v)) {
                assert_non_null(k.p);
                nh++;
            }
            assert_int_equal(nh, r.header_count);
            count++;
        }
        /* The iterator stays where it stopped. */
        assert_int_equal(sl_batch_iter_next(&it, &r, NULL), rc);
    }
    sl_buf_fini(&scratch);
    if (seen)
        *seen = count;
    return rc;
}

/* Builds recs with o, checks every header field and every record against recs. */
static void check_round_trip(const struct sl_batch_opts *o, const struct rec *recs, size_t n)
{
    struct sl_buf out;
    sl_buf_init(&out);
    build(o, recs, n, &out);

    struct sl_batch_header h;
    struct sl_err err = {{0}};
    assert_int_equal(sl_batch_parse_header(&h, out.data, out.len, 0, &err), 0);
    assert_int_equal(h.size, out.len);
    assert_int_equal(h.batch_length, out.len - 12);
    assert_int_equal(h.base_offset, o->base_offset);
    assert_int_equal(h.partition_leader_epoch, o->partition_leader_epoch);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.attributes, o->attributes | (int16_t)o->codec);
    assert_int_equal(h.last_offset_delta, (int32_t)n - 1);
    assert_int_equal(h.record_count, n);
    assert_int_equal(h.producer_id, o->producer_id);
    assert_int_equal(h.producer_epoch, o->producer_epoch);
    assert_int_equal(h.base_sequence, o->base_sequence);
    int64_t max = n ? recs[0].ts : -1;
    for (size_t i = 0; i < n; i++)
        max = SL_MAX(max, recs[i].ts);
    assert_int_equal(h.first_timestamp, n ? recs[0].ts : -1);
    assert_int_equal(h.max_timestamp, max);
    assert_int_equal(sl_batch_last_offset(&h), o->base_offset + (int64_t)n - 1);
    struct sl_buf scratch;
    sl_buf_init(&scratch);
    if (n) /* a producer's batch passes the strict rules too */
        assert_int_equal(sl_batch_validate(&h, out.data, out.len, &scratch, MAX_RECORDS_BYTES,
                                           SL_BATCH_STRICT, &err),
                         0);
    struct sl_batch_iter it;
    assert_int_equal(sl_batch_iter_init(&it, &h, out.data, &scratch, MAX_RECORDS_BYTES, 0, &err),
                     0);
    for (size_t i = 0; i < n; i++) {
        struct sl_batch_record r;
        assert_int_equal(sl_batch_iter_next(&it, &r, &err), 1);
        assert_int_equal(r.offset, o->base_offset + (int64_t)i);
        assert_int_equal(r.offset_delta, i);
        assert_int_equal(r.timestamp, recs[i].ts);
        assert_int_equal(r.timestamp_delta, recs[i].ts - recs[0].ts);
        assert_int_equal(r.attributes, 0);
        assert_true(sl_bytes_eq(r.key, recs[i].key));
        assert_true(sl_bytes_eq(r.value, recs[i].value));
        assert_int_equal(r.header_count, recs[i].nh);
        struct sl_batch_hiter hi;
        sl_batch_hiter_init(&hi, &r);
        for (size_t j = 0; j < recs[i].nh; j++) {
            struct sl_bytes k, v;
            assert_true(sl_batch_hiter_next(&hi, &k, &v));
            assert_true(sl_bytes_eq(k, recs[i].h[j].key));
            assert_true(sl_bytes_eq(v, recs[i].h[j].value));
        }
        struct sl_bytes k, v;
        assert_false(sl_batch_hiter_next(&hi, &k, &v));
    }
    struct sl_batch_record r;
    assert_int_equal(sl_batch_iter_next(&it, &r, &err), 0);
    assert_int_equal(sl_batch_iter_next(&it, &r, &err), 0);
    assert_int_equal(walk(out.data, out.len, 0, MAX_RECORDS_BYTES, NULL, &err), 0);
    sl_buf_fini(&scratch);
    sl_buf_fini(&out);
}

static void test_layout_matches_the_spec(void **state)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.base_offset = 5;
    o.partition_leader_epoch = 7;
    o.attributes = SL_BATCH_ATTR_TRANSACTIONAL;
    o.producer_id = 1000;
    o.producer_epoch = 3;
    o.base_sequence = 42;
    struct rec r = {.ts = 1700000000000,
                    .key = SL_BYTES_STR("k"),
                    .value = SL_BYTES_STR("v"),
                    .nh = 1,
                    .h = {{SL_BYTES_STR("h"), SL_BYTES_STR("x")}}};
    struct sl_buf out;
    sl_buf_init(&out);
    build(&o, &r, 1, &out);

    /* length 12, attributes, timestampDelta 0, offsetDelta 0, key "k", value "v",
     * 1 header "h" = "x"; lengths are zigzag varints (1 -> 2, 12 -> 24). */
    const uint8_t records[] = {24, 0, 0, 0, 2, 'k', 2, 'v', 2, 2, 'h', 2, 'x'};
    /* clang-format off */
    uint8_t want[61 + sizeof(records)] = {
        0, 0, 0, 0, 0, 0, 0, 5,                     /* baseOffset */
        0, 0, 0, 49 + sizeof(records),              /* batchLength */
        0, 0, 0, 7,                                 /* partitionLeaderEpoch */
        2,                                          /* magic */
        0, 0, 0, 0,                                 /* crc, below */
        0, 0x10,                                    /* attributes: transactional */
        0, 0, 0, 0,                                 /* lastOffsetDelta */
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,   /* firstTimestamp 1700000000000 */
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,   /* maxTimestamp */
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,               /* producerId 1000 */
        0, 3,                                       /* producerEpoch */
        0, 0, 0, 42,                                /* baseSequence */
        0, 0, 0, 1,                                 /* recordCount */
    };
    /* clang-format on */
    memcpy(want + 61, records, sizeof(records));
    fix_crc(want, sizeof(want));
    assert_int_equal(out.len, sizeof(want));
    assert_memory_equal(out.data, want, sizeof(want));
    sl_buf_fini(&out);
}

static void test_round_trip_small(void **state)
{
    struct rec recs[] = {
        REC(1700000000000, SL_BYTES_STR("key"), SL_BYTES_STR("value")),
        REC(1700000000005, SL_BYTES_NULL, SL_BYTES_STR("null key")),
        REC(1699999999990, SL_BYTES_STR("null value"), SL_BYTES_NULL),
        REC(1700000000001, SL_BYTES_STR(""), SL_BYTES_STR("")),
        {.ts = 1700000000002,
         .key = SL_BYTES_NULL,
         .value = SL_BYTES_NULL,
         .nh = 3,
         .h = {{SL_BYTES_STR("host"), SL_BYTES_STR("web-1")},
               {SL_BYTES_STR(""), SL_BYTES_NULL},
               {SL_BYTES_STR("empty"), SL_BYTES_STR("")}}},
    };
    for (int codec = 0; codec <= 1; codec++) {
        struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
        o.codec = codec;
        for (size_t n = 0; n <= SL_ARRAY_LEN(recs); n++)
            check_round_trip(&o, recs, n);
        o.base_offset = 1234567;
        o.partition_leader_epoch = 9;
        o.producer_id = 77;
        o.producer_epoch = 2;
        o.base_sequence = 1000;
        o.attributes = SL_BATCH_ATTR_TRANSACTIONAL;
        o.level = 9;
        check_round_trip(&o, recs, SL_ARRAY_LEN(recs));
    }
}

static void test_round_trip_timestamps(void **state)
{
    /* No timestamp, then real ones: deltas from -1, and the max picks the largest. */
    struct rec recs[] = {
        REC(-1, SL_BYTES_STR("a"), SL_BYTES_NULL),
        REC(0, SL_BYTES_STR("b"), SL_BYTES_NULL),
        REC(INT64_MAX - 1, SL_BYTES_STR("c"), SL_BYTES_NULL), /* delta INT64_MAX */
        REC(5, SL_BYTES_STR("d"), SL_BYTES_NULL),
    };
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    check_round_trip(&o, recs, SL_ARRAY_LEN(recs));
    /* One further and the delta would not fit. */
    struct sl_batch_builder b;
    assert_int_equal(sl_batch_builder_init(&b, &o), 0);
    assert_int_equal(sl_batch_builder_add(&b, -1, SL_BYTES_NULL, SL_BYTES_NULL, NULL, 0), 0);
    assert_int_equal(sl_batch_builder_add(&b, INT64_MAX, SL_BYTES_NULL, SL_BYTES_NULL, NULL, 0),
                     -EINVAL);
    assert_int_equal(b.count, 1);
    sl_batch_builder_fini(&b);
    struct rec late_first[] = {
        REC(INT64_MAX, SL_BYTES_STR("a"), SL_BYTES_NULL),
        REC(-1, SL_BYTES_STR("b"), SL_BYTES_NULL),
    };
    check_round_trip(&o, late_first, SL_ARRAY_LEN(late_first));
}

static void test_round_trip_many_and_big(void **state)
{
    enum { N = 1500 };
    static struct rec recs[N];
    static char keys[N][16];
    static uint8_t blob[1u << 20];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)("log line with some words in it\n"[i % 31] ^ (i / 4096));
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%zu", i);
        recs[i].ts = 1700000000000 + (int64_t)((i * 37) % 101) - 50;
        recs[i].key = i % 7 == 3 ? SL_BYTES_NULL : SL_BYTES_STR(keys[i]);
        recs[i].value = i % 11 == 5 ? SL_BYTES_NULL : (struct sl_bytes){blob + i, (i * 131) % 300};
        recs[i].nh = i % 4;
        for (size_t j = 0; j < recs[i].nh; j++) {
            recs[i].h[j].key = SL_BYTES_STR(keys[(i + j) % N]);
            recs[i].h[j].value = j == 1 ? SL_BYTES_NULL : (struct sl_bytes){blob + j, j * 100};
        }
    }
    /* Values whose lengths need 3-byte varints, up to 1 MiB. */
    recs[10].value = (struct sl_bytes){blob, sizeof(blob)};
    recs[20].value = (struct sl_bytes){blob, 20000};
    recs[30].key = (struct sl_bytes){blob, 70000};
    recs[40].nh = 1;
    recs[40].h[0].key = SL_BYTES_STR("big");
    recs[40].h[0].value = (struct sl_bytes){blob, 65536};
    for (int codec = 0; codec <= 1; codec++) {
        struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
        o.codec = codec;
        check_round_trip(&o, recs, N);
        check_round_trip(&o, recs + 10, 1);
    }
}

static void test_gzip_section_is_the_compressed_records(void **state)
{
    struct rec recs[] = {
        REC(1000, SL_BYTES_STR("k1"), SL_BYTES_STR("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")),
        REC(1001, SL_BYTES_STR("k2"), SL_BYTES_STR("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")),
    };
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    struct sl_buf plain, zipped, d;
    sl_buf_init(&plain);
    sl_buf_init(&zipped);
    sl_buf_init(&d);
    build(&o, recs, 2, &plain);
    o.codec = SL_BATCH_CODEC_GZIP;
    build(&o, recs, 2, &zipped);
    assert_int_equal(zipped.data[0x16] & 7, 1); /* codec bits in the attributes' low byte */
    assert_int_equal(sl_gzip_decompress(&d, zipped.data + 61, zipped.len - 61, 1000, NULL), 0);
    assert_int_equal(d.len, plain.len - 61);
    assert_memory_equal(d.data, plain.data + 61, d.len);
    /* The header is the same outside batchLength, crc and the codec bits. */
    assert_memory_equal(zipped.data, plain.data, 8);
    assert_memory_equal(zipped.data + 12, plain.data + 12, 5);
    assert_int_equal(zipped.data[21], plain.data[21]);
    assert_memory_equal(zipped.data + 23, plain.data + 23, 61 - 23);
    sl_buf_fini(&plain);
    sl_buf_fini(&zipped);
    sl_buf_fini(&d);
}

static void test_finish_appends_and_repeats(void **state)
{
    struct rec r = REC(1, SL_BYTES_STR("k"), SL_BYTES_STR("v"));
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    struct sl_batch_builder b;
    assert_int_equal(sl_batch_builder_init(&b, &o), 0);
    assert_int_equal(sl_batch_builder_size(&b), 61);
    assert_int_equal(sl_batch_builder_add(&b, r.ts, r.key, r.value, NULL, 0), 0);
    assert_int_equal(sl_batch_builder_size(&b), 61 + 9);
    struct sl_buf out;
    sl_buf_init(&out);
    assert_int_equal(sl_batch_builder_finish(&b, &out), 0);
    size_t one = out.len;
    assert_int_equal(one, 61 + 9);
    assert_int_equal(sl_batch_builder_finish(&b, &out), 0);
    assert_int_equal(out.len, 2 * one);
    assert_memory_equal(out.data, out.data + one, one);
    sl_batch_builder_fini(&b);

    /* Batches back to back: each parses on its own, with the rest following. */
    struct sl_batch_header h;
    assert_int_equal(sl_batch_parse_header(&h, out.data, out.len, 0, NULL), 0);
    assert_int_equal(h.size, one);
    assert_int_equal(sl_batch_parse_header(&h, out.data + h.size, out.len - h.size, 0, NULL), 0);
    sl_buf_fini(&out);
}

static void test_builder_refuses_bad_input(void **state)
{
    struct sl_batch_builder b;
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.codec = SL_BATCH_CODEC_SNAPPY;
    assert_int_equal(sl_batch_builder_init(&b, &o), -EINVAL);
    sl_batch_builder_fini(&b);
    o = SL_BATCH_OPTS_DEFAULT;
    o.level = 10;
    assert_int_equal(sl_batch_builder_init(&b, &o), -EINVAL);
    o = SL_BATCH_OPTS_DEFAULT;
    o.attributes = SL_BATCH_CODEC_GZIP;
    assert_int_equal(sl_batch_builder_init(&b, &o), -EINVAL);

    o = SL_BATCH_OPTS_DEFAULT;
    assert_int_equal(sl_batch_builder_init(&b, &o), 0);
    assert_int_equal(sl_batch_builder_add(&b, 10, SL_BYTES_NULL, SL_BYTES_STR("v"), NULL, 0), 0);
    size_t before = sl_batch_builder_size(&b);
    assert_int_equal(sl_batch_builder_add(&b, -2, SL_BYTES_NULL, SL_BYTES_NULL, NULL, 0), -EINVAL);
    struct sl_batch_kv bad[] = {{SL_BYTES_STR("ok"), SL_BYTES_NULL},
                                {SL_BYTES_NULL, SL_BYTES_NULL}};
    assert_int_equal(sl_batch_builder_add(&b, 11, SL_BYTES_NULL, SL_BYTES_NULL, bad, 2), -EINVAL);
    struct sl_bytes huge = {(const uint8_t *)"x", (size_t)INT32_MAX + 1};
    assert_int_equal(sl_batch_builder_add(&b, 11, huge, SL_BYTES_NULL, NULL, 0), SL_ETOOBIG);
    assert_int_equal(sl_batch_builder_add(&b, 11, SL_BYTES_NULL, huge, NULL, 0), SL_ETOOBIG);
    assert_int_equal(
        sl_batch_builder_add(&b, 11, SL_BYTES_NULL, SL_BYTES_NULL, bad, (size_t)INT32_MAX + 1),
        SL_ETOOBIG);
    /* Nothing of the refused records was kept. */
    assert_int_equal(b.count, 1);
    assert_int_equal(sl_batch_builder_size(&b), before);
    assert_int_equal(b.max_timestamp, 10);
    sl_batch_builder_fini(&b);
    sl_batch_builder_fini(NULL);
}

static void test_every_truncation_is_an_error(void **state)
{
    struct rec recs[] = {
        {.ts = 100,
         .key = SL_BYTES_STR("key"),
         .value = SL_BYTES_STR("value one"),
         .nh = 1,
         .h = {{SL_BYTES_STR("h"), SL_BYTES_STR("v")}}},
        REC(150, SL_BYTES_NULL, SL_BYTES_STR("value two, a little longer than one")),
        {.ts = 120,
         .key = SL_BYTES_STR("k3"),
         .value = SL_BYTES_NULL,
         .nh = 2,
         .h = {{SL_BYTES_STR("a"), SL_BYTES_NULL}, {SL_BYTES_STR("bb"), SL_BYTES_STR("cc")}}},
    };
    for (int codec = 0; codec <= 1; codec++) {
        struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
        o.codec = codec;
        struct sl_buf out, cut;
        sl_buf_init(&out);
        sl_buf_init(&cut);
        build(&o, recs, SL_ARRAY_LEN(recs), &out);
        for (size_t n = 0; n < out.len; n++) {
            /* Fewer bytes than announced: the caller may be waiting for the rest. */
            uint8_t *copy = malloc(n ? n : 1);
            assert_non_null(copy);
            memcpy(copy, out.data, n);
            struct sl_batch_header h;
            struct sl_err err = {{0}};
            assert_int_equal(sl_batch_parse_header(&h, copy, n, 0, &err), SL_ETRUNC);
            assert_non_null(strstr(err.msg, "record batch"));
            free(copy);
            /* The same cut presented as a whole batch (length and CRC made to agree): the
             * records themselves must then be found short. */
            if (n >= 61) {
                sl_buf_reset(&cut);
                sl_buf_append(&cut, out.data, n);
                sl_put_be32(cut.data + 8, (uint32_t)(n - 12));
                fix_crc(cut.data, n);
                int rc = walk(cut.data, cut.len, 0, MAX_RECORDS_BYTES, NULL, &err);
                assert_int_equal(rc, SL_ECORRUPT);
            }
        }
        sl_buf_fini(&out);
        sl_buf_fini(&cut);
    }
}

static void test_every_bit_flip_is_detected(void **state)
{
    struct rec recs[] = {
        {.ts = 100,
         .key = SL_BYTES_STR("key"),
         .value = SL_BYTES_STR("value one"),
         .nh = 1,
         .h = {{SL_BYTES_STR("h"), SL_BYTES_STR("v")}}},
        REC(150, SL_BYTES_NULL, SL_BYTES_STR("value two")),
    };
    for (int codec = 0; codec <= 1; codec++) {
        struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
        o.codec = codec;
        struct sl_buf out;
        sl_buf_init(&out);
        build(&o, recs, SL_ARRAY_LEN(recs), &out);
        uint8_t *copy = malloc(out.len);
        assert_non_null(copy);
        int accepted_after_crc_fix = 0, rejected_after_crc_fix = 0;
        for (size_t at = 0; at < out.len; at++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(copy, out.data, out.len);
                copy[at] ^= (uint8_t)(1u << bit);
                int rc = walk(copy, out.len, 0, MAX_RECORDS_BYTES, NULL, NULL);
                bool outside_crc = at < 8 || (at >= 12 && at < 16);
                if (outside_crc)
                    assert_int_equal(rc, 0); /* baseOffset/leader epoch: the broker's to set */
                else
                    assert_true(rc < 0);
                /* With the CRC recomputed the damage must be caught by the structure, or be
                 * a batch that parses whole (a changed key byte is still a batch). */
                if (at >= SL_BATCH_OFF_ATTRIBUTES) {
                    fix_crc(copy, out.len);
                    rc = walk(copy, out.len, 0, MAX_RECORDS_BYTES, NULL, NULL);
                    assert_true(rc <= 0);
                    if (rc == 0)
                        accepted_after_crc_fix++;
                    else
                        rejected_after_crc_fix++;
                }
            }
        }
        assert_true(rejected_after_crc_fix > 0);
        assert_true(accepted_after_crc_fix > 0);
        free(copy);
        sl_buf_fini(&out);
    }
}

static void test_header_field_errors(void **state)
{
    struct sl_buf b;
    sl_buf_init(&b);
    struct sl_batch_header h;
    struct sl_err err = {{0}};
    struct sl_buf base;
    sl_buf_init(&base);
    /* The smallest record: length 6 (zigzag 12), attributes, timestampDelta 0, offsetDelta 0,
     * null key and value (zigzag -1 = 1), no headers. */
    const uint8_t rec6[] = {12, 0, 0, 0, 1, 1, 0};
    craft(&base, 0, 0, 5, 5, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_validate(&h, base.data, base.len, NULL, 0, SL_BATCH_STRICT, &err), 0);

    /* magic */
    const int8_t magics[] = {0, 1, 3, -1, 127};
    const int codes[] = {SL_EUNSUP, SL_EUNSUP, SL_ECORRUPT, SL_ECORRUPT, SL_ECORRUPT};
    for (size_t i = 0; i < SL_ARRAY_LEN(magics); i++) {
        sl_buf_reset(&b);
        sl_buf_append(&b, base.data, base.len);
        b.data[16] = (uint8_t)magics[i];
        assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), codes[i]);
        assert_non_null(strstr(err.msg, "magic"));
        assert_non_null(strstr(err.msg, "byte 16"));
    }

    /* batchLength too small, negative, and too large for the bytes present */
    const int32_t lens[] = {48, 0, -1, INT32_MIN};
    for (size_t i = 0; i < SL_ARRAY_LEN(lens); i++) {
        sl_buf_reset(&b);
        sl_buf_append(&b, base.data, base.len);
        sl_put_be32(b.data + 8, (uint32_t)lens[i]);
        assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
        assert_non_null(strstr(err.msg, "batchLength at byte 8"));
    }
    sl_buf_reset(&b);
    sl_buf_append(&b, base.data, base.len);
    sl_put_be32(b.data + 8, (uint32_t)(b.len - 12 + 1));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ETRUNC);
    sl_put_be32(b.data + 8, INT32_MAX);
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ETRUNC);
    /* Extra bytes after the batch are the next batch's, not this one's. */
    sl_buf_reset(&b);
    sl_buf_append(&b, base.data, base.len);
    sl_buf_append(&b, "junk", 4);
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);
    assert_int_equal(h.size, base.len);

    /* CRC */
    sl_buf_reset(&b);
    sl_buf_append(&b, base.data, base.len);
    b.data[SL_BATCH_OFF_CRC] ^= 1;
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "crc at byte 17"));

    /* codecs */
    for (int16_t codec = 2; codec <= 7; codec++) {
        craft(&b, codec, 0, 5, 5, 1, rec6, sizeof(rec6));
        int want = codec <= 4 ? SL_EUNSUP : SL_ECORRUPT;
        assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), want);
        assert_non_null(strstr(err.msg, "attributes at byte 21"));
    }
    /* Unused and informational attribute bits are accepted. */
    craft(&b, (int16_t)(0x7f80 | SL_BATCH_ATTR_TRANSACTIONAL | SL_BATCH_ATTR_CONTROL), 0, 5, 5, 1,
          rec6, sizeof(rec6));
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);

    /* recordCount */
    craft(&b, 0, 0, 5, 5, -1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "recordCount at byte 57"));
    craft(&b, 0, 1, 5, 5, 2, rec6, sizeof(rec6)); /* 2 records cannot fit in 7 bytes */
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "cannot fit"));
    craft(&b, 0, INT32_MAX, 5, 5, INT32_MAX, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);

    /* lastOffsetDelta */
    craft(&b, 0, -1, 5, 5, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "lastOffsetDelta at byte 23"));
    craft(&b, 0, -2, -1, -1, 0, NULL, 0);
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    craft(&b, 0, -1, -1, -1, 0, NULL, 0); /* empty, as the builder writes it */
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, SL_BATCH_STRICT, &err), SL_ECORRUPT);
    craft(&b, 0, 41, -1, -1, 0, NULL, 0); /* emptied by compaction, offsets kept */
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);
    craft(&b, 0, 3, 5, 5, 1, rec6, sizeof(rec6)); /* gap after the record: compaction */
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, SL_BATCH_STRICT, &err), SL_ECORRUPT);
    craft(&b, 0, 1, 5, 5, 1, rec6, sizeof(rec6));
    sl_put_be64(b.data, (uint64_t)INT64_MAX); /* baseOffset + 1 overflows */
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "overflows"));
    sl_put_be64(b.data, (uint64_t)INT64_MAX - 1); /* baseOffset is not ours to judge */
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);

    /* timestamps */
    craft(&b, 0, 0, -2, 5, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "firstTimestamp at byte 27"));
    craft(&b, 0, 0, 5, -2, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "maxTimestamp at byte 35"));
    craft(&b, 0, 0, 5, 4, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "before firstTimestamp"));
    craft(&b, SL_BATCH_ATTR_DELETE_HORIZON, 0, 5, 4, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);
    /* Log append time: every record carries maxTimestamp. */
    craft(&b, SL_BATCH_ATTR_LOG_APPEND_TIME, 0, 5, 4, 1, rec6, sizeof(rec6));
    assert_int_equal(sl_batch_parse_header(&h, b.data, b.len, 0, &err), 0);
    struct sl_batch_iter it;
    struct sl_batch_record r;
    assert_int_equal(sl_batch_iter_init(&it, &h, b.data, NULL, 0, 0, &err), 0);
    assert_int_equal(sl_batch_iter_next(&it, &r, &err), 1);
    assert_int_equal(r.timestamp, 4);
    assert_int_equal(sl_batch_iter_next(&it, &r, &err), 0);

    /* Too short for even the magic, and NULL err everywhere. */
    assert_int_equal(sl_batch_parse_header(&h, base.data, 16, 0, NULL), SL_ETRUNC);
    assert_int_equal(sl_batch_parse_header(&h, NULL, 0, 0, NULL), SL_ETRUNC);
    sl_buf_fini(&b);
    sl_buf_fini(&base);
}

/* Crafts a batch around one record body, validates it, and returns the code and message. */
static int check_records(const void *recs, size_t n, int32_t count, int32_t lod, struct sl_err *err)
{
    struct sl_buf b;
    sl_buf_init(&b);
    craft(&b, 0, lod, 1000, 2000, count, recs, n);
    struct sl_batch_header h;
    int rc = sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, err);
    sl_buf_fini(&b);
    return rc;
}

static void test_record_errors(void **state)
{
    struct sl_err err = {{0}};
    /* A good record to start from: length 6, attributes, tsDelta, offsetDelta, null key, null
     * value, no headers. */
    const uint8_t good[] = {12, 0, 0, 0, 1, 1, 0};
    assert_int_equal(check_records(good, sizeof(good), 1, 0, &err), 0);

    /* Varint overflow in the length, tsDelta (varlong), offsetDelta and key length. */
    const uint8_t len_over[] = {0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0};
    assert_int_equal(check_records(len_over, sizeof(len_over), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "overflows 32 bits"));
    assert_non_null(strstr(err.msg, "record 0: length at byte 0"));
    const uint8_t ts_over[] = {32,   0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0x01, 0,    1,    1,    0};
    assert_int_equal(check_records(ts_over, sizeof(ts_over), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "timestampDelta at byte 2"));
    const uint8_t off_over[] = {20, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x1f, 1, 1, 0};
    assert_int_equal(check_records(off_over, sizeof(off_over), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "offsetDelta at byte 3"));
    const uint8_t key_over[] = {20, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 1, 0};
    assert_int_equal(check_records(key_over, sizeof(key_over), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "key at byte 4"));

    /* Lengths: below the minimum, past the records, past the record, left over. */
    const uint8_t short_len[] = {10, 0, 0, 0, 1, 1, 0};
    assert_int_equal(check_records(short_len, sizeof(short_len), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "below the minimum"));
    const uint8_t long_len[] = {14, 0, 0, 0, 1, 1, 0};
    assert_int_equal(check_records(long_len, sizeof(long_len), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "over the 6 bytes left"));
    const uint8_t key_past[] = {12, 0, 0, 0, 8, 1, 0}; /* key of 4 bytes in a 6-byte record */
    assert_int_equal(check_records(key_past, sizeof(key_past), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "key"));
    const uint8_t neg_key[] = {12, 0, 0, 0, 3, 1, 0}; /* key length -2 */
    assert_int_equal(check_records(neg_key, sizeof(neg_key), 1, 0, &err), SL_ECORRUPT);
    const uint8_t extra[] = {14, 0, 0, 0, 1, 1, 0, 9};
    assert_int_equal(check_records(extra, sizeof(extra), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "left over"));

    /* Headers: negative count, more than fit, null key, value past the end. */
    const uint8_t h_neg[] = {12, 0, 0, 0, 1, 1, 1};
    assert_int_equal(check_records(h_neg, sizeof(h_neg), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "headerCount"));
    const uint8_t h_many[] = {16, 0, 0, 0, 1, 1, 6, 0, 1};
    assert_int_equal(check_records(h_many, sizeof(h_many), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "headerCount"));
    const uint8_t h_nullkey[] = {16, 0, 0, 0, 1, 1, 2, 1, 1};
    assert_int_equal(check_records(h_nullkey, sizeof(h_nullkey), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "null or negative key"));
    const uint8_t h_val[] = {16, 0, 0, 0, 1, 1, 2, 0, 4};
    assert_int_equal(check_records(h_val, sizeof(h_val), 1, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "headerValue"));
    const uint8_t h_ok[] = {18, 0, 0, 0, 1, 1, 2, 2, 'k', 1};
    assert_int_equal(check_records(h_ok, sizeof(h_ok), 1, 0, &err), 0);

    /* Count against the records present. */
    uint8_t two[14];
    memcpy(two, good, 7);
    memcpy(two + 7, good, 7);
    two[7 + 3] = 2; /* second record's offsetDelta 1 */
    assert_int_equal(check_records(two, sizeof(two), 2, 1, &err), 0);
    assert_int_equal(check_records(two, sizeof(two), 1, 1, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "bytes after the last of 1"));
    assert_int_equal(check_records(two, 7, 1, 0, &err), 0);
    /* Three announced, two present (each larger than the minimum, so the count alone fits). */
    const uint8_t two_big[] = {18, 0, 0, 0, 1, 1, 2, 2, 'k', 1,       /* delta 0, 1 header */
                               20, 0, 0, 2, 1, 1, 2, 4, 'k', 'k', 1}; /* delta 1, 1 header */
    assert_int_equal(check_records(two_big, sizeof(two_big), 2, 1, &err), 0);
    assert_int_equal(check_records(two_big, sizeof(two_big), 3, 2, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "end after 2"));

    /* offsetDelta rules: increasing, within lastOffsetDelta. */
    two[7 + 3] = 0; /* the second record repeats delta 0 */
    assert_int_equal(check_records(two, sizeof(two), 2, 1, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "not above"));
    two[7 + 3] = 6; /* delta 3 */
    assert_int_equal(check_records(two, sizeof(two), 2, 2, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "beyond lastOffsetDelta"));
    assert_int_equal(check_records(two, sizeof(two), 2, 3, &err), 0); /* a compaction gap */
    uint8_t neg_first[7];
    memcpy(neg_first, good, 7);
    neg_first[3] = 1; /* delta -1 */
    assert_int_equal(check_records(neg_first, 7, 1, 0, &err), SL_ECORRUPT);

    /* firstTimestamp + timestampDelta overflowing int64 */
    struct sl_buf b;
    sl_buf_init(&b);
    /* timestampDelta INT64_MAX: zigzag 0xffff_ffff_ffff_fffe in 10 bytes */
    const uint8_t ts_max[] = {30,   0,    0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0x01, 0,    1,    1,    0};
    craft(&b, 0, 0, 5, 5, 1, ts_max, sizeof(ts_max));
    struct sl_batch_header h;
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "overflows"));
    sl_buf_fini(&b);
}

static void test_strict_offsets(void **state)
{
    const uint8_t good[] = {12, 0, 0, 0, 1, 1, 0};
    uint8_t two[14];
    memcpy(two, good, 7);
    memcpy(two + 7, good, 7);
    two[3] = 2;     /* first record delta 1: gap at the start */
    two[7 + 3] = 4; /* second delta 2 */
    struct sl_buf b;
    sl_buf_init(&b);
    craft(&b, 0, 1, 5, 5, 2, two, sizeof(two));
    struct sl_batch_header h;
    struct sl_err err = {{0}};
    /* lastOffsetDelta 1 < delta 2 */
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), SL_ECORRUPT);
    /* lastOffsetDelta 2: fine for a compacted batch, not from a producer */
    craft(&b, 0, 2, 5, 5, 2, two, sizeof(two));
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, 0, &err), 0);
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, SL_BATCH_STRICT, &err),
                     SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "lastOffsetDelta"));
    /* Strictly increasing deltas within lastOffsetDelta == count - 1 leave no room for a gap:
     * the header rule alone makes a producer's numbering 0..count-1. */
    two[3] = 0;
    two[7 + 3] = 2;
    craft(&b, 0, 1, 5, 5, 2, two, sizeof(two));
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, NULL, 0, SL_BATCH_STRICT, &err), 0);
    sl_buf_fini(&b);
}

static void test_strict_refuses_what_brokers_refuse_from_clients(void **state)
{
    struct rec recs[] = {REC(1, SL_BYTES_STR("k"), SL_BYTES_STR("v"))};
    struct sl_buf out;
    sl_buf_init(&out);
    struct sl_batch_header h;
    struct sl_err err = {{0}};

    /* A control batch is the broker's own; a stored one is fine, a produced one is not. */
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.attributes = SL_BATCH_ATTR_CONTROL;
    build(&o, recs, 1, &out);
    assert_int_equal(sl_batch_validate(&h, out.data, out.len, NULL, 0, 0, &err), 0);
    assert_int_equal(sl_batch_validate(&h, out.data, out.len, NULL, 0, SL_BATCH_STRICT, &err),
                     SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "control"));

    /* An idempotent producer's batch must carry a sequence. */
    sl_buf_reset(&out);
    o = SL_BATCH_OPTS_DEFAULT;
    o.producer_id = 7;
    o.producer_epoch = 0;
    o.base_sequence = -1;
    build(&o, recs, 1, &out);
    assert_int_equal(sl_batch_validate(&h, out.data, out.len, NULL, 0, SL_BATCH_STRICT, &err),
                     SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "baseSequence"));
    sl_buf_reset(&out);
    o.base_sequence = 0;
    build(&o, recs, 1, &out);
    assert_int_equal(sl_batch_validate(&h, out.data, out.len, NULL, 0, SL_BATCH_STRICT, &err), 0);
    sl_buf_fini(&out);
}

static void test_gzip_records_limits_and_damage(void **state)
{
    struct rec recs[] = {
        REC(1, SL_BYTES_STR("k"), SL_BYTES_STR("a value that is long enough to matter here")),
    };
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.codec = SL_BATCH_CODEC_GZIP;
    struct sl_buf out, scratch;
    sl_buf_init(&out);
    sl_buf_init(&scratch);
    build(&o, recs, 1, &out);
    struct sl_batch_header h;
    struct sl_err err = {{0}};
    assert_int_equal(sl_batch_parse_header(&h, out.data, out.len, 0, &err), 0);
    struct sl_batch_iter it;
    struct sl_buf plain;
    sl_buf_init(&plain);
    o.codec = SL_BATCH_CODEC_NONE;
    build(&o, recs, 1, &plain);
    size_t records_len = plain.len - 61;
    sl_buf_fini(&plain);
    /* The limit applies to the decompressed records section: exact fits, one less does not. */
    assert_int_equal(sl_batch_iter_init(&it, &h, out.data, &scratch, records_len, 0, &err), 0);
    assert_int_equal(sl_batch_iter_init(&it, &h, out.data, &scratch, records_len - 1, 0, &err),
                     SL_ETOOBIG);
    assert_non_null(strstr(err.msg, "records"));
    struct sl_batch_record r;
    assert_int_equal(sl_batch_iter_next(&it, &r, &err), SL_ETOOBIG);
    assert_int_equal(sl_batch_iter_init(&it, &h, out.data, NULL, records_len, 0, &err), -EINVAL);

    /* Garbage for a compressed section, CRC made right: the gzip layer rejects it. */
    struct sl_buf b;
    sl_buf_init(&b);
    craft(&b, SL_BATCH_CODEC_GZIP, 0, 1, 1, 1, "not gzip at all", 15);
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, &scratch, 1000, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "gzip"));
    /* Decompresses fine, but holds fewer bytes than the count needs. */
    sl_buf_reset(&scratch);
    assert_int_equal(sl_gzip_compress(&scratch, "\x0c\0\0\0\1\1\0", 7, -1), 0);
    craft(&b, SL_BATCH_CODEC_GZIP, 1, 1, 1, 2, scratch.data, scratch.len);
    assert_int_equal(sl_batch_validate(&h, b.data, b.len, &scratch, 1000, 0, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, "cannot fit"));
    sl_buf_fini(&b);
    sl_buf_fini(&out);
    sl_buf_fini(&scratch);
}

static void test_rewrite_keeps_the_crc(void **state)
{
    struct rec recs[] = {
        REC(1, SL_BYTES_STR("a"), SL_BYTES_NULL),
        REC(2, SL_BYTES_STR("b"), SL_BYTES_NULL),
    };
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    struct sl_buf out;
    sl_buf_init(&out);
    build(&o, recs, 2, &out);
    uint32_t crc = sl_be32(out.data + SL_BATCH_OFF_CRC);
    assert_int_equal(sl_batch_rewrite(out.data, out.len, 5000, 12), 0);
    assert_int_equal(sl_be32(out.data + SL_BATCH_OFF_CRC), crc);
    struct sl_batch_header h;
    assert_int_equal(sl_batch_parse_header(&h, out.data, out.len, SL_BATCH_STRICT, NULL), 0);
    assert_int_equal(h.base_offset, 5000);
    assert_int_equal(h.partition_leader_epoch, 12);
    assert_int_equal(sl_batch_last_offset(&h), 5001);
    struct sl_batch_iter it;
    struct sl_batch_record r;
    assert_int_equal(sl_batch_iter_init(&it, &h, out.data, NULL, 0, 0, NULL), 0);
    assert_int_equal(sl_batch_iter_next(&it, &r, NULL), 1);
    assert_int_equal(r.offset, 5000);
    assert_int_equal(sl_batch_iter_next(&it, &r, NULL), 1);
    assert_int_equal(r.offset, 5001);
    assert_int_equal(sl_batch_rewrite(out.data, 60, 1, 1), SL_ETRUNC);
    assert_int_equal(sl_be64(out.data), 5000);
    sl_buf_fini(&out);
}

static void test_allocation_failure_sweep(void **state)
{
    struct rec recs[] = {
        {.ts = 1,
         .key = SL_BYTES_STR("key"),
         .value = SL_BYTES_STR("some value some value some value"),
         .nh = 1,
         .h = {{SL_BYTES_STR("h"), SL_BYTES_STR("v")}}},
        REC(2, SL_BYTES_NULL, SL_BYTES_STR("another value, another value, another")),
    };
    for (int codec = 0; codec <= 1; codec++) {
        struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
        o.codec = codec;
        struct sl_buf want;
        sl_buf_init(&want);
        build(&o, recs, SL_ARRAY_LEN(recs), &want);

        long n;
        int done = 0;
        for (n = 0; n < 200 && !done; n++) {
            struct sl_batch_builder b;
            struct sl_buf out, scratch;
            sl_buf_init(&out);
            sl_buf_init(&scratch);
            assert_int_equal(sl_batch_builder_init(&b, &o), 0);
            sl_mem_fail_after(n, 0);
            int rc = 0;
            size_t added = 0;
            for (size_t i = 0; i < SL_ARRAY_LEN(recs) && rc == 0; i++) {
                rc = sl_batch_builder_add(&b, recs[i].ts, recs[i].key, recs[i].value, recs[i].h,
                                          recs[i].nh);
                if (rc == 0)
                    added++;
            }
            if (rc == 0)
                rc = sl_batch_builder_finish(&b, &out);
            struct sl_batch_header h;
            if (rc == 0)
                rc = sl_batch_validate(&h, out.data, out.len, &scratch, 1000, 0, NULL);
            long failed = sl_mem_failures();
            sl_mem_fail_after(-1, 0);
            if (rc == 0) {
                assert_int_equal(failed, 0);
                assert_int_equal(out.len, want.len);
                assert_memory_equal(out.data, want.data, want.len);
                done = 1;
            } else {
                assert_int_equal(rc, -ENOMEM);
                assert_int_equal(failed, 1);
                /* A failed add left the builder whole: what was added still finishes. */
                assert_int_equal(b.count, added);
                sl_buf_fini(&out);
                assert_int_equal(sl_batch_builder_finish(&b, &out), 0);
                assert_int_equal(walk(out.data, out.len, 0, 1000, NULL, NULL), 0);
            }
            sl_batch_builder_fini(&b);
            sl_buf_fini(&out);
            sl_buf_fini(&scratch);
        }
        assert_true(done);
        assert_true(n > 2);
        sl_buf_fini(&want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_matches_the_spec),
        cmocka_unit_test(test_round_trip_small),
        cmocka_unit_test(test_round_trip_timestamps),
        cmocka_unit_test(test_round_trip_many_and_big),
        cmocka_unit_test(test_gzip_section_is_the_compressed_records),
        cmocka_unit_test(test_finish_appends_and_repeats),
        cmocka_unit_test(test_builder_refuses_bad_input),
        cmocka_unit_test(test_every_truncation_is_an_error),
        cmocka_unit_test(test_every_bit_flip_is_detected),
        cmocka_unit_test(test_header_field_errors),
        cmocka_unit_test(test_record_errors),
        cmocka_unit_test(test_strict_offsets),
        cmocka_unit_test(test_strict_refuses_what_brokers_refuse_from_clients),
        cmocka_unit_test(test_gzip_records_limits_and_damage),
        cmocka_unit_test(test_rewrite_keeps_the_crc),
        cmocka_unit_test(test_allocation_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
