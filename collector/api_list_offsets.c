/* ListOffsets (key 2), v1-2: earliest, latest, or the first offset at a timestamp. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/batch.h"
#include "common/log.h"

#include <unistd.h>

/*
 * Request:
 *   replica_id int32, isolation_level int8 (v2+)
 *   topics ARRAY of [name STRING, partitions ARRAY of [partition_index int32, timestamp int64]]
 *     timestamp -2: earliest (log start), -1: latest (log end), else the first offset whose
 *     record timestamp is >= it (from the time index), or -1 when none is that recent; the
 *     answer carries that record's own timestamp, as Kafka's does
 *
 * Response:
 *   throttle_time_ms int32 (v2+)
 *   topics ARRAY of [name STRING, partitions ARRAY of
 *     [partition_index int32, error_code int16, timestamp int64, offset int64]]
 */

#define LO_MAX_TOPICS     10000
#define LO_MAX_PARTITIONS 100000

/* Gzip batches inflate; a record batch larger than this is not worth reading for a timestamp. */
#define LIST_OFFSETS_MAX_INFLATE (64u << 20)

/* The timestamp of the record at offset `off` (the first at or after it), read from the batch
 * that holds it; -1 when it cannot be read (the offset is what clients act on, and a damaged
 * batch is reported when it is fetched). */
static int64_t record_timestamp(struct coll_plog *pl, int64_t off)
{
    struct coll_region reg;
    struct sl_err err = {{0}};
    int64_t ts = -1;
    if (coll_plog_read(pl, off, 1, &reg, &err) != 0)
        return -1;
    struct sl_buf batch, scratch;
    sl_buf_init(&batch);
    sl_buf_init(&scratch);
    uint8_t head[SL_BATCH_HEADER_SIZE];
    struct sl_batch_header h;
    if (reg.len < sizeof(head) ||
        pread(reg.fd, head, sizeof(head), (off_t)reg.pos) != (ssize_t)sizeof(head))
        goto out;
    int32_t blen = (int32_t)sl_be32(head + SL_BATCH_OFF_LENGTH);
    if (blen < SL_BATCH_LENGTH_MIN || (size_t)blen + 12 > reg.len ||
        sl_buf_reserve(&batch, (size_t)blen + 12) != 0 ||
        pread(reg.fd, batch.data, (size_t)blen + 12, (off_t)reg.pos) != (ssize_t)blen + 12)
        goto out;
    batch.len = (size_t)blen + 12;
    struct sl_batch_iter it;
    if (sl_batch_parse_header(&h, batch.data, batch.len, 0, &err) != 0 ||
        sl_batch_iter_init(&it, &h, batch.data, &scratch, LIST_OFFSETS_MAX_INFLATE, 0, &err) != 0)
        goto out;
    struct sl_batch_record rec;
    while (sl_batch_iter_next(&it, &rec, &err) == 1) {
        if (rec.offset >= off) {
            ts = rec.timestamp;
            break;
        }
    }
out:
    coll_region_release(&reg);
    sl_buf_fini(&batch);
    sl_buf_fini(&scratch);
    return ts;
}

int coll_api_list_offsets(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    sl_reader_i32(r);
    if (req->version >= 2)
        sl_reader_i8(r);
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 2)
        sl_buf_put_i32(b, 0);
    int32_t nt = sl_reader_array(r, LO_MAX_TOPICS, 6);
    if (nt < 0)
        return sl_reader_fail(r, SL_EPARSE, "null topics");
    sl_buf_put_i32(b, nt);
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes raw = sl_reader_string(r);
        char topic[COLL_TOPIC_NAME_MAX + 1];
        bool ok = coll_str_copy(topic, sizeof(topic), raw) &&
                  coll_topic_name_check(topic, raw.len, NULL) == 0;
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        int32_t np = sl_reader_array(r, LO_MAX_PARTITIONS, 12);
        if (np < 0)
            return sl_reader_fail(r, SL_EPARSE, "null partitions");
        sl_buf_put_i32(b, np);
        for (int32_t p = 0; p < np && !r->err; p++) {
            int32_t part = sl_reader_i32(r);
            int64_t ts = sl_reader_i64(r);
            int16_t e = KAFKA_E_NONE;
            int64_t off = -1, out_ts = -1;
            struct coll_plog *pl = ok ? coll_storage_get(srv->st, topic, part) : NULL;
            if (!pl) {
                e = ok && coll_storage_offline(srv->st, topic, part)
                        ? KAFKA_E_KAFKA_STORAGE_ERROR
                        : KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            } else if (ts == -2) {
                off = pl->log_start;
            } else if (ts == -1) {
                off = pl->next_offset;
            } else if (ts < 0) {
                e = KAFKA_E_INVALID_REQUEST;
            } else {
                struct sl_err err = {{0}};
                if (coll_plog_find_time(pl, ts, &off, &err) != 0) {
                    SL_WARN("kafka", "offset for time %lld in %s-%d: %s", (long long)ts, topic,
                            part, err.msg);
                    e = KAFKA_E_KAFKA_STORAGE_ERROR;
                    off = -1;
                } else if (off >= 0) {
                    out_ts = record_timestamp(pl, off);
                }
            }
            sl_buf_put_i32(b, part);
            sl_buf_put_i16(b, e);
            sl_buf_put_i64(b, out_ts);
            sl_buf_put_i64(b, off);
        }
    }
    return r->err ? r->err : COLL_API_DONE;
}
