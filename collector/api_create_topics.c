/* CreateTopics (key 19), v0-4: makes topics with their partitions on this broker. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "collector/topic_store.h"
#include "common/mem.h"

#include <errno.h>

/*
 * Request:
 *   topics ARRAY of
 *     name STRING, num_partitions int32 (-1: default, v4+), replication_factor int16 (-1 or 1),
 *     assignments ARRAY of [partition_index int32, broker_ids ARRAY of int32],
 *     configs ARRAY of [name STRING, value NULLABLE_STRING]   (kept: topic_store.h)
 *   timeout_ms int32, validate_only BOOLEAN (v1+)
 *
 * Response:
 *   throttle_time_ms int32 (v2+)
 *   topics ARRAY of [name STRING, error_code int16, error_message NULLABLE_STRING (v1+)]
 */

#define CT_MAX_TOPICS 10000
#define CT_MAX_ITEMS  100000

int coll_api_create_topics(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    int32_t nt = sl_reader_array(r, CT_MAX_TOPICS, 14);
    if (nt < 0)
        return sl_reader_fail(r, SL_EPARSE, "null topics");
    size_t topics_at = r->pos;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        sl_reader_string(r);
        sl_reader_i32(r);
        sl_reader_i16(r);
        int32_t na = sl_reader_array(r, CT_MAX_ITEMS, 8);
        for (int32_t a = 0; a < na && !r->err; a++) {
            sl_reader_i32(r);
            int32_t nb = sl_reader_array(r, CT_MAX_ITEMS, 4);
            sl_reader_skip(r, (size_t)SL_MAX(nb, 0) * 4);
        }
        int32_t nc = sl_reader_array(r, CT_MAX_ITEMS, 4);
        for (int32_t c = 0; c < nc && !r->err; c++) {
            sl_reader_string(r);
            sl_reader_string(r);
        }
    }
    sl_reader_i32(r);
    bool validate_only = req->version >= 1 && sl_reader_i8(r) != 0;
    if (r->err)
        return r->err;

    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 2)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, nt);
    struct sl_reader rr;
    sl_reader_init(&rr, r->p + topics_at, r->len - topics_at);
    for (int32_t t = 0; t < nt; t++) {
        struct sl_bytes raw = sl_reader_string(&rr);
        int32_t num = sl_reader_i32(&rr);
        int16_t rf = sl_reader_i16(&rr);
        int32_t na = sl_reader_array(&rr, CT_MAX_ITEMS, 8);
        for (int32_t a = 0; a < na; a++) {
            sl_reader_i32(&rr);
            int32_t nb = sl_reader_array(&rr, CT_MAX_ITEMS, 4);
            sl_reader_skip(&rr, (size_t)SL_MAX(nb, 0) * 4);
        }
        int32_t nc = sl_reader_array(&rr, CT_MAX_ITEMS, 4);
        struct coll_topic_cfg *cfgs = nc > 0 ? sl_calloc((size_t)nc, sizeof(*cfgs)) : NULL;
        if (nc > 0 && !cfgs)
            return -ENOMEM;
        for (int32_t c = 0; c < nc; c++) {
            cfgs[c].name = sl_reader_string(&rr);
            cfgs[c].value = sl_reader_string(&rr);
        }
        if (na > 0)
            num = na;
        char topic[COLL_TOPIC_NAME_MAX + 1];
        struct sl_err msg = {{0}};
        int16_t e = KAFKA_E_NONE;
        if (!coll_str_copy(topic, sizeof(topic), raw) ||
            coll_topic_name_check(topic, raw.len, &msg) != 0) {
            e = KAFKA_E_INVALID_TOPIC;
            if (!msg.msg[0])
                sl_err_set(&msg, -EINVAL, "invalid topic name");
        } else if (rf != -1 && rf != 1) {
            e = KAFKA_E_INVALID_REPLICATION_FACTOR;
            sl_err_set(&msg, -EINVAL, "replication factor %d: this broker keeps one copy", rf);
        } else if (num == 0 || num < -1 || (num == -1 && req->version < 4)) {
            e = KAFKA_E_INVALID_PARTITIONS;
            sl_err_set(&msg, -EINVAL, "invalid partition count %d", num);
        } else if (coll_server_partitions(srv, topic) > 0) {
            e = KAFKA_E_TOPIC_ALREADY_EXISTS;
            sl_err_set(&msg, -EEXIST, "topic '%s' already exists", topic);
        } else if (nc > 0 && !srv->topic_store) {
            e = KAFKA_E_INVALID_CONFIG;
            sl_err_set(&msg, SL_ECONFIG, "this broker takes no topic configs");
        } else if (nc > 0 && coll_topic_store_set(srv->topic_store, topic, cfgs, (size_t)nc,
                                                  validate_only, &msg) != 0) {
            e = KAFKA_E_INVALID_CONFIG; /* msg names the config, or the write that failed */
        } else if (!validate_only) {
            e = coll_server_create_topic(srv, topic, raw.len, num, &msg);
            if (e != KAFKA_E_NONE && nc > 0)
                coll_topic_store_remove(srv->topic_store, topic);
        }
        sl_free(cfgs);
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        sl_buf_put_i16(b, e);
        if (req->version >= 1)
            coll_put_cstr(b, e == KAFKA_E_NONE ? NULL : msg.msg);
    }
    return COLL_API_DONE;
}
