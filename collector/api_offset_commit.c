/* OffsetCommit (key 8), v2-7: store a group's consumed positions, durably, before answering. */
#include "collector/server_priv.h"

#include "collector/group_offsets.h"
#include "collector/topic_name.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>

/*
 * Request:
 *   group_id STRING, generation_id int32, member_id STRING,
 *   group_instance_id NULLABLE_STRING (v7+), retention_time_ms int64 (v2-4, ignored: the
 *   collector's groups.offsets_retention decides, as Kafka 2.1+ does),
 *   topics ARRAY of [name STRING, partitions ARRAY of
 *     [partition_index int32, committed_offset int64, committed_leader_epoch int32 (v6+),
 *      committed_metadata NULLABLE_STRING]]
 *
 * Response:
 *   throttle_time_ms int32 (v3+),
 *   topics ARRAY of [name STRING, partitions ARRAY of [partition_index int32, error_code int16]]
 *
 * The commits of one request are written with one write and, with groups.commit_sync, one
 * fdatasync before the answer: an acknowledged commit survives a crash.
 */

#define OC_MAX_TOPICS     10000
#define OC_MAX_PARTITIONS 100000
#define OC_MAX_ENTRIES    200000

/* Kafka's offset.metadata.max.bytes. */
#define OC_MAX_METADATA 4096

int coll_api_offset_commit(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    struct sl_bytes group = sl_reader_string(r);
    int32_t generation = sl_reader_i32(r);
    struct sl_bytes member = sl_reader_string(r);
    if (req->version >= 7)
        sl_reader_string(r);
    if (req->version <= 4)
        sl_reader_i64(r);
    int32_t nt = sl_reader_array(r, OC_MAX_TOPICS, 6);
    if (nt < 0 && !r->err)
        return sl_reader_fail(r, SL_EPARSE, "null topics");
    if (r->err)
        return r->err;
    int16_t gerr = coll_groups_commit_check(&srv->groups, group, generation, member);
    char gname[256];
    if (gerr == KAFKA_E_NONE && !coll_str_copy(gname, sizeof(gname), group))
        gerr = KAFKA_E_INVALID_GROUP_ID;

    /* First pass: check and stage every partition, remembering its error. */
    size_t topics_at = r->pos;
    int16_t *errs = NULL;
    size_t nerr = 0, cap = 0;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes raw = sl_reader_string(r);
        char topic[COLL_TOPIC_NAME_MAX + 1];
        bool tok = coll_str_copy(topic, sizeof(topic), raw) &&
                   coll_topic_name_check(topic, raw.len, NULL) == 0;
        int32_t np = sl_reader_array(r, OC_MAX_PARTITIONS, 14);
        if (np < 0 && !r->err)
            sl_reader_fail(r, SL_EPARSE, "null partitions");
        for (int32_t p = 0; p < np && !r->err; p++) {
            int32_t part = sl_reader_i32(r);
            int64_t off = sl_reader_i64(r);
            int32_t epoch = req->version >= 6 ? sl_reader_i32(r) : -1;
            struct sl_bytes meta = sl_reader_string(r);
            if (r->err)
                break;
            if (nerr == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                int16_t *n = ncap <= OC_MAX_ENTRIES ? sl_realloc(errs, ncap * sizeof(*n)) : NULL;
                if (!n) {
                    sl_free(errs);
                    return ncap <= OC_MAX_ENTRIES ? -ENOMEM
                                                  : sl_reader_fail(r, SL_EPARSE,
                                                                   "too many partitions");
                }
                errs = n;
                cap = ncap;
            }
            int16_t e = gerr;
            char mbuf[OC_MAX_METADATA + 1];
            if (e == KAFKA_E_NONE && !tok)
                e = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            if (e == KAFKA_E_NONE && !coll_storage_get(srv->st, topic, part))
                e = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            if (e == KAFKA_E_NONE && meta.p && meta.len > OC_MAX_METADATA)
                e = KAFKA_E_OFFSET_METADATA_TOO_LARGE;
            else if (e == KAFKA_E_NONE && meta.p && !coll_str_copy(mbuf, sizeof(mbuf), meta))
                e = KAFKA_E_INVALID_REQUEST; /* a NUL inside: we keep metadata as C strings */
            if (e == KAFKA_E_NONE) {
                struct sl_err err = {{0}};
                int rc = coll_goff_put(srv->goff, gname, topic, part, off, epoch,
                                       meta.p ? mbuf : NULL, coll_server_wall_ms(), &err);
                if (rc == COLL_GOFF_EMETADATA) {
                    e = KAFKA_E_OFFSET_METADATA_TOO_LARGE;
                } else if (rc != 0) {
                    SL_WARN("group", "commit of '%s' %s-%d: %s", gname, topic, part, err.msg);
                    e = KAFKA_E_UNKNOWN_SERVER_ERROR;
                }
            }
            errs[nerr++] = e;
        }
    }
    if (r->err) {
        sl_free(errs);
        return r->err;
    }
    struct sl_err ferr = {{0}};
    bool flushed = coll_goff_flush(srv->goff, srv->groups_conf.commit_sync, &ferr) == 0;
    if (!flushed)
        SL_ERR("group", "writing the commits of '%.*s' failed: %s", (int)SL_MIN(group.len, 100),
               group.p ? (const char *)group.p : "", ferr.msg);

    /* Second pass: the answer, in request order. */
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 3)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, nt);
    struct sl_reader rr;
    sl_reader_init(&rr, r->p + topics_at, r->len - topics_at);
    size_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        struct sl_bytes raw = sl_reader_string(&rr);
        int32_t np = sl_reader_array(&rr, OC_MAX_PARTITIONS, 14);
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        sl_buf_put_i32(b, np);
        for (int32_t p = 0; p < np; p++) {
            int32_t part = sl_reader_i32(&rr);
            sl_reader_i64(&rr);
            if (req->version >= 6)
                sl_reader_i32(&rr);
            sl_reader_string(&rr);
            int16_t e = errs[k++];
            if (e == KAFKA_E_NONE && !flushed)
                e = KAFKA_E_KAFKA_STORAGE_ERROR;
            sl_buf_put_i32(b, part);
            sl_buf_put_i16(b, e);
        }
    }
    sl_free(errs);
    if (flushed && gerr == KAFKA_E_NONE)
        coll_server_track_group(srv, gname);
    return COLL_API_DONE;
}
