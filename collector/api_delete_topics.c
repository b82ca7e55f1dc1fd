/* DeleteTopics (key 20), v0-3: removes topics and every partition's files. */
#include "collector/server_priv.h"

#include "collector/group_offsets.h"
#include "collector/topic_name.h"
#include "collector/topic_store.h"

#include <errno.h>
#include "common/log.h"

/*
 * Request:  topic_names ARRAY of STRING, timeout_ms int32
 * Response: throttle_time_ms int32 (v1+), responses ARRAY of [name STRING, error_code int16]
 */

#define DT_MAX_TOPICS 10000

int coll_api_delete_topics(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    int32_t nt = sl_reader_array(r, DT_MAX_TOPICS, 2);
    if (nt < 0)
        return sl_reader_fail(r, SL_EPARSE, "null topic_names");
    size_t names_at = r->pos;
    for (int32_t t = 0; t < nt; t++)
        sl_reader_string(r);
    sl_reader_i32(r);
    if (r->err)
        return r->err;
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, nt);
    struct sl_reader rr;
    sl_reader_init(&rr, r->p + names_at, r->len - names_at);
    for (int32_t t = 0; t < nt; t++) {
        struct sl_bytes raw = sl_reader_string(&rr);
        char topic[COLL_TOPIC_NAME_MAX + 1];
        int16_t e = KAFKA_E_NONE;
        int32_t np = 0;
        if (!coll_str_copy(topic, sizeof(topic), raw) ||
            coll_topic_name_check(topic, raw.len, NULL) != 0)
            e = KAFKA_E_INVALID_TOPIC;
        else if ((np = coll_server_partitions(srv, topic)) == 0)
            e = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
        for (int32_t p = 0; p < np; p++) {
            struct sl_err err = {{0}};
            int rc = coll_storage_delete(srv->st, topic, p, &err);
            if (rc != 0 && rc != -ENOENT) {
                SL_ERR("kafka", "deleting %s-%d: %s", topic, p, err.msg);
                e = KAFKA_E_KAFKA_STORAGE_ERROR;
            }
            coll_server_untrack_partition(srv, topic, p);
            coll_pstate_forget_partition(&srv->producers, topic, p);
        }
        if (np > 0) {
            /* Kafka removes a deleted topic's committed offsets from every group. */
            struct sl_err gerr = {{0}};
            if (coll_goff_delete_topic(srv->goff, topic, &gerr) != 0 ||
                coll_goff_flush(srv->goff, srv->groups.conf.commit_sync, &gerr) != 0)
                SL_ERR("group", "removing the committed offsets of %s: %s", topic, gerr.msg);
            coll_server_untrack_groups(srv, NULL, topic);
            coll_topic_store_remove(srv->topic_store, topic); /* its CreateTopics configs */
        }
        if (np > 0 && e == KAFKA_E_NONE)
            SL_NOTICE("kafka", "deleted topic %s (%d partition%s)", topic, np, np == 1 ? "" : "s");
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        sl_buf_put_i16(b, e);
    }
    return COLL_API_DONE;
}
