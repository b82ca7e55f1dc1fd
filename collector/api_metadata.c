/* Metadata (key 3), v0-4: the single broker, and topics with their partitions. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/mem.h"

#include <string.h>

/*
 * Request:
 *   topics                     v0: ARRAY of STRING (empty: all topics)
 *                              v1+: nullable ARRAY of STRING (null: all, empty: none)
 *   allow_auto_topic_creation  BOOLEAN (v4+)
 *
 * Response:
 *   throttle_time_ms   int32 (v3+)
 *   brokers            ARRAY of [node_id int32, host STRING, port int32, rack NULLABLE (v1+)]
 *   cluster_id         NULLABLE_STRING (v2+)
 *   controller_id      int32 (v1+)
 *   topics             ARRAY of
 *     error_code int16, name STRING, is_internal BOOLEAN (v1+),
 *     partitions ARRAY of
 *       error_code int16, partition_index int32, leader_id int32,
 *       replica_nodes ARRAY of int32, isr_nodes ARRAY of int32
 */

#define MD_MAX_TOPICS 100000

struct name_list {
    char **items; /* owned */
    size_t len, cap;
    int err;
};

static void collect_name(struct coll_plog *pl, void *arg)
{
    struct name_list *nl = arg;
    for (size_t i = 0; i < nl->len; i++)
        if (strcmp(nl->items[i], pl->topic) == 0)
            return;
    if (nl->err)
        return;
    if (nl->len == nl->cap) {
        size_t cap = nl->cap ? nl->cap * 2 : 16;
        char **n = sl_realloc(nl->items, cap * sizeof(*n));
        if (!n) {
            nl->err = -1;
            return;
        }
        nl->items = n;
        nl->cap = cap;
    }
    if (!(nl->items[nl->len] = sl_strdup(pl->topic))) {
        nl->err = -1;
        return;
    }
    nl->len++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_topic(struct coll_req *req, const char *name, struct sl_bytes raw, int16_t error)
{
    struct sl_buf *b = &req->resp->buf;
    struct coll_server *srv = req->srv;
    int32_t np = error == KAFKA_E_NONE ? coll_server_partitions(srv, name) : 0;
    if (error == KAFKA_E_NONE && np == 0)
        error = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
    sl_buf_put_i16(b, error);
    sl_buf_put_string(b, name ? SL_BYTES_STR(name) : raw);
    if (req->version >= 1)
        sl_buf_put_i8(b, 0);
    sl_buf_put_i32(b, np);
    for (int32_t p = 0; p < np; p++) {
        int16_t perr = KAFKA_E_NONE;
        if (!coll_storage_get(srv->st, name, p))
            perr = coll_storage_offline(srv->st, name, p) ? KAFKA_E_KAFKA_STORAGE_ERROR
                                                          : KAFKA_E_LEADER_NOT_AVAILABLE;
        sl_buf_put_i16(b, perr);
        sl_buf_put_i32(b, p);
        sl_buf_put_i32(b, perr == KAFKA_E_LEADER_NOT_AVAILABLE ? -1 : COLL_NODE_ID);
        sl_buf_put_i32(b, 1);
        sl_buf_put_i32(b, COLL_NODE_ID);
        sl_buf_put_i32(b, 1);
        sl_buf_put_i32(b, COLL_NODE_ID);
    }
}

int coll_api_metadata(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    int32_t n = sl_reader_array(r, MD_MAX_TOPICS, 2);
    size_t names_at = r->pos;
    for (int32_t i = 0; i < n; i++)
        sl_reader_string(r);
    bool allow_create = srv->conf->auto_create_topics;
    if (req->version >= 4)
        allow_create = allow_create && sl_reader_i8(r) != 0;
    if (r->err)
        return r->err;
    bool all = n == -1 || (req->version == 0 && n == 0);

    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 3)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, 1);
    sl_buf_put_i32(b, COLL_NODE_ID);
    coll_put_cstr(b, srv->adv_host);
    sl_buf_put_i32(b, srv->adv_port);
    if (req->version >= 1)
        coll_put_cstr(b, NULL);
    if (req->version >= 2)
        coll_put_cstr(b, "sluice");
    if (req->version >= 1)
        sl_buf_put_i32(b, COLL_NODE_ID);

    if (all) {
        struct name_list nl = {0};
        coll_storage_foreach(srv->st, collect_name, &nl);
        if (nl.len > 1)
            qsort(nl.items, nl.len, sizeof(*nl.items), cmp_str);
        sl_buf_put_i32(b, (int32_t)nl.len);
        for (size_t i = 0; i < nl.len; i++) {
            put_topic(req, nl.items[i], SL_BYTES_NULL, KAFKA_E_NONE);
            sl_free(nl.items[i]);
        }
        sl_free(nl.items);
        if (nl.err)
            sl_buf_reserve(b, (size_t)1 << 41); /* makes the out-of-memory sticky */
        return COLL_API_DONE;
    }
    struct sl_reader names;
    sl_reader_init(&names, r->p + names_at, r->len - names_at);
    sl_buf_put_i32(b, n);
    for (int32_t i = 0; i < n; i++) {
        struct sl_bytes raw = sl_reader_string(&names);
        char name[COLL_TOPIC_NAME_MAX + 1];
        if (!coll_str_copy(name, sizeof(name), raw) ||
            coll_topic_name_check(name, raw.len, NULL) != 0) {
            put_topic(req, NULL, raw.p ? raw : SL_BYTES_STR(""), KAFKA_E_INVALID_TOPIC);
            continue;
        }
        if (coll_server_partitions(srv, name) == 0 && allow_create)
            coll_server_create_topic(srv, name, raw.len, 0, NULL);
        put_topic(req, name, raw, KAFKA_E_NONE);
    }
    return COLL_API_DONE;
}
