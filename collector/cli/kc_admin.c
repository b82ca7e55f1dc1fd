/* Topic administration and offsets on the wire: ListOffsets, CreateTopics, DeleteTopics. */
#include "collector/cli/kc_admin.h"

#include <errno.h>
#include <string.h>

/*
 *   ListOffsetsRequest v1-2:   replica_id int32 (-1), isolation_level int8 (v2+),
 *                              topics ARRAY of [name STRING,
 *                                partitions ARRAY of [partition_index int32, timestamp int64]]
 *   ListOffsetsResponse v1-2:  throttle_time_ms int32 (v2+),
 *                              topics ARRAY of [name STRING, partitions ARRAY of
 *                                [partition_index int32, error_code int16, timestamp int64,
 *                                 offset int64]]
 *
 *   CreateTopicsRequest v0-4:  topics ARRAY of [name STRING, num_partitions int32,
 *                                replication_factor int16,
 *                                assignments ARRAY of [partition_index int32, broker_ids
 *                                                      ARRAY of int32],
 *                                configs ARRAY of [name STRING, value NULLABLE_STRING]],
 *                              timeout_ms int32, validate_only BOOLEAN (v1+)
 *   CreateTopicsResponse v0-4: throttle_time_ms int32 (v2+),
 *                              topics ARRAY of [name STRING, error_code int16,
 *                                               error_message NULLABLE_STRING (v1+)]
 *
 *   DeleteTopicsRequest v0-3:  topic_names ARRAY of STRING, timeout_ms int32
 *   DeleteTopicsResponse v0-3: throttle_time_ms int32 (v1+),
 *                              responses ARRAY of [name STRING, error_code int16]
 */

#define MAX_ITEMS 1000000

void kc_list_offsets_req(struct sl_buf *b, int16_t version, const char *topic,
                         const struct kc_offset_query *q, size_t n, int32_t leader)
{
    sl_buf_put_i32(b, -1); /* replica_id */
    if (version >= 2)
        sl_buf_put_i8(b, 0);                   /* isolation_level: read uncommitted */
    sl_buf_put_i32(b, 1);                      /* topics */
    sl_buf_put_string(b, SL_BYTES_STR(topic)); /*   name */
    size_t count_at = sl_buf_hole(b, 4);       /*   partitions */
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].leader != leader)
            continue;
        sl_buf_put_i32(b, q[i].partition); /* partition_index */
        sl_buf_put_i64(b, q[i].timestamp); /* timestamp */
        k++;
    }
    sl_buf_patch_i32(b, count_at, k);
}

int kc_list_offsets_parse(struct sl_reader *r, int16_t version, const char *topic,
                          struct kc_offset_query *q, size_t n, int32_t leader, struct sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (q[i].leader == leader) {
            q[i].error_code = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            q[i].offset = q[i].found_ts = -1;
        }
    }
    if (version >= 2)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes name = sl_reader_string(r);
        bool ours = sl_bytes_eq_str(name, topic);
        int32_t np = sl_reader_array(r, MAX_ITEMS, 22);
        for (int32_t p = 0; p < np && !r->err; p++) {
            int32_t part = sl_reader_i32(r); /* partition_index */
            int16_t code = sl_reader_i16(r); /* error_code */
            int64_t ts = sl_reader_i64(r);   /* timestamp */
            int64_t off = sl_reader_i64(r);  /* offset */
            for (size_t i = 0; ours && !r->err && i < n; i++) {
                if (q[i].leader == leader && q[i].partition == part) {
                    q[i].error_code = code;
                    q[i].found_ts = ts;
                    q[i].offset = off;
                }
            }
        }
    }
    return r->err ? sl_reader_describe(r, err, "ListOffsets answer") : 0;
}

int kc_list_offsets(struct kc_client *cl, const char *topic, struct kc_offset_query *q, size_t n,
                    struct sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        bool first = true;
        for (size_t j = 0; j < i; j++)
            first = first && q[j].leader != q[i].leader;
        if (!first)
            continue;
        int32_t leader = q[i].leader;
        if (leader < 0) {
            for (size_t j = i; j < n; j++) {
                if (q[j].leader == leader) {
                    q[j].error_code = KAFKA_E_LEADER_NOT_AVAILABLE;
                    q[j].offset = q[j].found_ts = -1;
                }
            }
            continue;
        }
        struct kc_conn *c;
        int rc = kc_client_node(cl, leader, &c, err);
        if (rc != 0)
            return rc;
        int16_t v = kc_conn_version(c, KC_API_LIST_OFFSETS, 1, 2, err);
        if (v < 0)
            return SL_EUNSUP;
        kc_list_offsets_req(kc_conn_begin(c, KC_API_LIST_OFFSETS, v), v, topic, q, n, leader);
        struct sl_reader r;
        if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
            return rc;
        if ((rc = kc_list_offsets_parse(&r, v, topic, q, n, leader, err)) != 0 ||
            (rc = kc_conn_check(c, &r, err)) != 0)
            return rc;
    }
    return 0;
}

void kc_create_topics_req(struct sl_buf *b, int16_t version, const struct kc_new_topic *t, size_t n,
                          int32_t timeout_ms, bool validate_only)
{
    sl_buf_put_i32(b, (int32_t)n); /* topics */
    for (size_t i = 0; i < n; i++) {
        sl_buf_put_string(b, SL_BYTES_STR(t[i].name)); /* name */
        sl_buf_put_i32(b, t[i].partitions);            /* num_partitions */
        sl_buf_put_i16(b, t[i].replication);           /* replication_factor */
        sl_buf_put_i32(b, 0);                          /* assignments */
        sl_buf_put_i32(b, (int32_t)t[i].nconfigs);     /* configs */
        for (size_t c = 0; c < t[i].nconfigs; c++) {
            const char *kv = t[i].configs[c];
            const char *eq = strchr(kv, '=');
            size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
            sl_buf_put_string(b, (struct sl_bytes){(const uint8_t *)kv, klen}); /* name */
            sl_buf_put_string(b, eq ? SL_BYTES_STR(eq + 1) : SL_BYTES_NULL);    /* value */
        }
    }
    sl_buf_put_i32(b, timeout_ms); /* timeout_ms */
    if (version >= 1)
        sl_buf_put_i8(b, validate_only ? 1 : 0); /* validate_only */
}

int kc_create_topics_parse(struct sl_reader *r, int16_t version, struct kc_new_topic *t, size_t n,
                           struct sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        t[i].error_code = KAFKA_E_UNKNOWN_SERVER_ERROR;
        snprintf(t[i].message, sizeof(t[i].message), "not in the broker's answer");
    }
    if (version >= 2)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 4);
    for (int32_t k = 0; k < nt && !r->err; k++) {
        struct sl_bytes name = sl_reader_string(r);
        int16_t code = sl_reader_i16(r);
        struct sl_bytes msg = version >= 1 ? sl_reader_string(r) : SL_BYTES_NULL;
        for (size_t i = 0; !r->err && i < n; i++) {
            if (!sl_bytes_eq_str(name, t[i].name))
                continue;
            t[i].error_code = code;
            snprintf(t[i].message, sizeof(t[i].message), "%.*s", (int)SL_MIN(msg.len, 255),
                     msg.p ? (const char *)msg.p : "");
        }
    }
    return r->err ? sl_reader_describe(r, err, "CreateTopics answer") : 0;
}

/* The controller, which creates and deletes topics; any broker when none is named. */
static int controller(struct kc_client *cl, struct kc_conn **c, struct sl_err *err)
{
    struct kc_meta m = {0};
    int rc = kc_client_metadata(cl, NULL, 0, false, &m, err);
    int32_t id = m.controller_id;
    kc_meta_fini(&m);
    if (rc != 0)
        return rc;
    if (id >= 0 && kc_client_node(cl, id, c, NULL) == 0)
        return 0;
    return kc_client_any(cl, c, err);
}

int kc_create_topics(struct kc_client *cl, struct kc_new_topic *t, size_t n, bool validate_only,
                     struct sl_err *err)
{
    struct kc_conn *c;
    int rc = controller(cl, &c, err);
    if (rc != 0)
        return rc;
    bool want_default = false;
    for (size_t i = 0; i < n; i++)
        want_default = want_default || t[i].partitions < 0;
    int16_t v = kc_conn_version(c, KC_API_CREATE_TOPICS, want_default ? 4 : 0, 4, err);
    if (v < 0)
        return SL_EUNSUP;
    kc_create_topics_req(kc_conn_begin(c, KC_API_CREATE_TOPICS, v), v, t, n,
                         (int32_t)SL_MIN(cl->timeout_ms, INT32_MAX), validate_only);
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
        return rc;
    if ((rc = kc_create_topics_parse(&r, v, t, n, err)) != 0)
        return rc;
    return kc_conn_check(c, &r, err);
}

int kc_delete_topics_parse(struct sl_reader *r, int16_t version, const char *const *topics,
                           size_t n, int16_t *codes, struct sl_err *err)
{
    for (size_t i = 0; i < n; i++)
        codes[i] = KAFKA_E_UNKNOWN_SERVER_ERROR;
    if (version >= 1)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 4);
    for (int32_t k = 0; k < nt && !r->err; k++) {
        struct sl_bytes name = sl_reader_string(r);
        int16_t code = sl_reader_i16(r);
        for (size_t i = 0; !r->err && i < n; i++)
            if (sl_bytes_eq_str(name, topics[i]))
                codes[i] = code;
    }
    return r->err ? sl_reader_describe(r, err, "DeleteTopics answer") : 0;
}

int kc_delete_topics(struct kc_client *cl, const char *const *topics, size_t n, int16_t *codes,
                     struct sl_err *err)
{
    struct kc_conn *c;
    int rc = controller(cl, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_DELETE_TOPICS, 0, 3, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf *b = kc_conn_begin(c, KC_API_DELETE_TOPICS, v);
    sl_buf_put_i32(b, (int32_t)n); /* topic_names */
    for (size_t i = 0; i < n; i++)
        sl_buf_put_string(b, SL_BYTES_STR(topics[i]));
    sl_buf_put_i32(b, (int32_t)SL_MIN(cl->timeout_ms, INT32_MAX)); /* timeout_ms */
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
        return rc;
    if ((rc = kc_delete_topics_parse(&r, v, topics, n, codes, err)) != 0)
        return rc;
    return kc_conn_check(c, &r, err);
}
