/* OffsetCommit (key 8), v2-7: store a group's consumed positions, durably, before answering. */
#include "collector/server_priv.h"

#include "collector/group_offsets.h"
#include "collector/topic_name.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>

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

/* One partition entry of the request, as read. */
struct oc_part {
    int32_t partition;
    int64_t offset;
    int32_t epoch;
    struct sl_bytes meta;
};

static void read_part(struct sl_reader *r, int16_t version, struct oc_part *out)
{
    out->partition = sl_reader_i32(r);
    out->offset = sl_reader_i64(r);
    out->epoch = version >= 6 ? sl_reader_i32(r) : -1;
    out->meta = sl_reader_string(r);
}

/* The error a partition gets before anything is stored (NONE: store it). */
static int16_t check_part(struct coll_server *srv, int16_t gerr, bool topic_ok, const char *topic,
                          const struct oc_part *pt)
{
    if (gerr != KAFKA_E_NONE)
        return gerr;
    if (!topic_ok || !coll_storage_get(srv->st, topic, pt->partition))
        return KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
    if (pt->meta.p && pt->meta.len > OC_MAX_METADATA)
        return KAFKA_E_OFFSET_METADATA_TOO_LARGE;
    if (pt->meta.p && memchr(pt->meta.p, 0, pt->meta.len))
        return KAFKA_E_INVALID_REQUEST; /* metadata is kept as a C string */
    return KAFKA_E_NONE;
}

/* Reads a topic name into topic; false when it cannot be a topic of ours. */
static bool read_topic(struct sl_reader *r, char topic[COLL_TOPIC_NAME_MAX + 1],
                       struct sl_bytes *raw)
{
    *raw = sl_reader_string(r);
    return coll_str_copy(topic, COLL_TOPIC_NAME_MAX + 1, *raw) &&
           coll_topic_name_check(topic, raw->len, NULL) == 0;
}

int coll_api_offset_commit(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    struct sl_bytes group = sl_reader_string(r);
    int32_t generation = sl_reader_i32(r);
    struct sl_bytes member = sl_reader_string(r);
    struct sl_bytes instance = req->version >= 7 ? sl_reader_string(r) : SL_BYTES_NULL;
    if (req->version <= 4)
        sl_reader_i64(r);
    int32_t nt = sl_reader_array(r, OC_MAX_TOPICS, 6);
    if (nt < 0 && !r->err)
        return sl_reader_fail(r, SL_EPARSE, "null topics");
    if (r->err)
        return r->err;
    size_t topics_at = r->pos;

    /* Pass 1: decode the whole request; a malformed one is refused with nothing stored. */
    size_t total = 0;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        sl_reader_string(r);
        int32_t np = sl_reader_array(r, OC_MAX_PARTITIONS, 14);
        if (np < 0 && !r->err)
            return sl_reader_fail(r, SL_EPARSE, "null partitions");
        for (int32_t p = 0; p < np && !r->err; p++) {
            struct oc_part pt;
            read_part(r, req->version, &pt);
        }
        total += np > 0 ? (size_t)np : 0;
        if (total > OC_MAX_ENTRIES)
            return sl_reader_fail(r, SL_EPARSE, "too many partitions");
    }
    if (r->err)
        return r->err;

    int16_t gerr = coll_groups_commit_check(&srv->groups, group, generation, member, instance);
    char gname[256];
    if (gerr == KAFKA_E_NONE && !coll_str_copy(gname, sizeof(gname), group))
        gerr = KAFKA_E_INVALID_GROUP_ID;
    /* Per partition: its answer, and whether the group commits it for the first time (its
     * metrics are registered then, not on every commit). */
    struct oc_result {
        int16_t err;
        bool fresh;
    } *res = sl_calloc(total ? total : 1, sizeof(*res));
    if (!res)
        return -ENOMEM;

    /* Pass 2: stage every valid commit, then write them with one flush. */
    struct sl_reader rr;
    sl_reader_init(&rr, r->p + topics_at, r->len - topics_at);
    size_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        char topic[COLL_TOPIC_NAME_MAX + 1];
        struct sl_bytes raw;
        bool tok = read_topic(&rr, topic, &raw);
        int32_t np = sl_reader_array(&rr, OC_MAX_PARTITIONS, 14);
        for (int32_t p = 0; p < np; p++, k++) {
            struct oc_part pt;
            read_part(&rr, req->version, &pt);
            int16_t e = check_part(srv, gerr, tok, topic, &pt);
            char mbuf[OC_MAX_METADATA + 1];
            if (e == KAFKA_E_NONE && pt.meta.p) {
                memcpy(mbuf, pt.meta.p, pt.meta.len);
                mbuf[pt.meta.len] = 0;
            }
            if (e == KAFKA_E_NONE) {
                struct sl_err err = {{0}};
                struct coll_goff_entry prev;
                res[k].fresh = !coll_goff_get(srv->goff, gname, topic, pt.partition, &prev);
                int rc = coll_goff_put(srv->goff, gname, topic, pt.partition, pt.offset, pt.epoch,
                                       pt.meta.p ? mbuf : NULL, coll_server_wall_ms(), &err);
                if (rc == COLL_GOFF_EMETADATA) {
                    e = KAFKA_E_OFFSET_METADATA_TOO_LARGE;
                } else if (rc != 0) {
                    SL_WARN("group", "commit of '%s' %s-%d: %s", gname, topic, pt.partition,
                            err.msg);
                    e = KAFKA_E_UNKNOWN_SERVER_ERROR;
                }
            }
            res[k].err = e;
        }
    }
    struct sl_err ferr = {{0}};
    bool flushed = coll_goff_flush(srv->goff, srv->groups.conf.commit_sync, &ferr) == 0;
    if (!flushed)
        SL_ERR("group", "writing the commits of '%.*s' failed: %s", (int)SL_MIN(group.len, 100),
               group.p ? (const char *)group.p : "", ferr.msg);

    /* Pass 3: the answer, in request order. */
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 3)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, nt);
    sl_reader_init(&rr, r->p + topics_at, r->len - topics_at);
    k = 0;
    for (int32_t t = 0; t < nt; t++) {
        char topic[COLL_TOPIC_NAME_MAX + 1];
        struct sl_bytes raw;
        read_topic(&rr, topic, &raw);
        int32_t np = sl_reader_array(&rr, OC_MAX_PARTITIONS, 14);
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        sl_buf_put_i32(b, np);
        for (int32_t p = 0; p < np; p++, k++) {
            struct oc_part pt;
            read_part(&rr, req->version, &pt);
            int16_t e = res[k].err;
            if (e == KAFKA_E_NONE && !flushed)
                e = KAFKA_E_KAFKA_STORAGE_ERROR; /* rolled back: the client retries */
            if (e == KAFKA_E_NONE && res[k].fresh)
                coll_server_track_offset(srv, gname, topic, pt.partition);
            sl_buf_put_i32(b, pt.partition);
            sl_buf_put_i16(b, e);
        }
    }
    sl_free(res);
    return COLL_API_DONE;
}
