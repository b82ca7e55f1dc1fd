/* ListOffsets (key 2), v1-2: earliest, latest, or the first offset at a timestamp. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/log.h"

/*
 * Request:
 *   replica_id int32, isolation_level int8 (v2+)
 *   topics ARRAY of [name STRING, partitions ARRAY of [partition_index int32, timestamp int64]]
 *     timestamp -2: earliest (log start), -1: latest (log end), else the first offset whose
 *     record timestamp is >= it (from the time index), or -1 when none is that recent
 *
 * Response:
 *   throttle_time_ms int32 (v2+)
 *   topics ARRAY of [name STRING, partitions ARRAY of
 *     [partition_index int32, error_code int16, timestamp int64, offset int64]]
 */

#define LO_MAX_TOPICS     10000
#define LO_MAX_PARTITIONS 100000

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
                    out_ts = ts; /* the asked time: the record's own is not looked up */
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
