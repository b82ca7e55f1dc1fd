/* OffsetFetch (key 9), v1-5: a group's committed positions (-1 where it has none). */
#include "collector/server_priv.h"

#include "collector/group_offsets.h"
#include "collector/topic_name.h"

#include "common/mem.h"

#include <errno.h>
#include <string.h>

/*
 * Request:
 *   group_id STRING,
 *   topics ARRAY of [name STRING, partition_indexes ARRAY of int32]  (null, v2+: every
 *     partition the group committed)
 *
 * Response:
 *   throttle_time_ms int32 (v3+),
 *   topics ARRAY of [name STRING, partitions ARRAY of
 *     [partition_index int32, committed_offset int64, committed_leader_epoch int32 (v5+),
 *      metadata NULLABLE_STRING, error_code int16]],
 *   error_code int16 (v2+)
 *
 * An unknown group or partition answers offset -1, metadata "" and no error, as Kafka does.
 */

#define OF_MAX_TOPICS     10000
#define OF_MAX_PARTITIONS 100000

static void put_partition(struct sl_buf *b, int16_t version, int32_t part,
                          const struct coll_goff_entry *e)
{
    sl_buf_put_i32(b, part);
    sl_buf_put_i64(b, e ? e->offset : -1);
    if (version >= 5)
        sl_buf_put_i32(b, e ? e->leader_epoch : -1);
    coll_put_cstr(b, e ? (e->metadata ? e->metadata : "") : "");
    sl_buf_put_i16(b, KAFKA_E_NONE);
}

/* Every committed partition of one group, grouped by topic (entries arrive in any order). */
struct all_ctx {
    struct sl_buf *b;
    int16_t version;
    const char *topic; /* the topic whose partitions are being written */
    int32_t nparts;
};

static void all_topic(const struct coll_goff_entry *e, void *arg)
{
    struct all_ctx *c = arg;
    if (strcmp(e->topic, c->topic) != 0)
        return;
    put_partition(c->b, c->version, e->partition, e);
    c->nparts++;
}

struct name_list {
    const char **names;
    size_t n, cap;
    bool oom;
};

static void collect_topic(const struct coll_goff_entry *e, void *arg)
{
    struct name_list *nl = arg;
    for (size_t i = 0; i < nl->n; i++)
        if (strcmp(nl->names[i], e->topic) == 0)
            return;
    if (nl->n == nl->cap) {
        size_t ncap = nl->cap ? nl->cap * 2 : 16;
        const char **n = sl_realloc(nl->names, ncap * sizeof(*n));
        if (!n) {
            nl->oom = true;
            return;
        }
        nl->names = n;
        nl->cap = ncap;
    }
    nl->names[nl->n++] = e->topic;
}

static int fetch_all(struct coll_req *req, const char *group)
{
    struct sl_buf *b = &req->resp->buf;
    struct name_list nl = {0};
    coll_goff_foreach(req->srv->goff, group, collect_topic, &nl);
    if (nl.oom) {
        sl_free(nl.names);
        return -ENOMEM;
    }
    sl_buf_put_i32(b, (int32_t)nl.n);
    for (size_t i = 0; i < nl.n; i++) {
        struct all_ctx c = {.b = b, .version = req->version, .topic = nl.names[i]};
        coll_put_cstr(b, nl.names[i]);
        size_t at = b->len;
        sl_buf_put_i32(b, 0);
        coll_goff_foreach(req->srv->goff, group, all_topic, &c);
        sl_buf_patch_i32(b, at, c.nparts);
    }
    sl_free(nl.names);
    return 0;
}

int coll_api_offset_fetch(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_server *srv = req->srv;
    struct sl_bytes raw_group = sl_reader_string(r);
    int32_t nt = sl_reader_array(r, OF_MAX_TOPICS, 6);
    if (r->err)
        return r->err;
    if (nt < 0 && req->version < 2)
        return sl_reader_fail(r, SL_EPARSE, "null topics before v2");
    char group[256];
    bool gok = coll_str_copy(group, sizeof(group), raw_group);
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 3)
        sl_buf_put_i32(b, 0);
    if (nt < 0) {
        if (gok) {
            int rc = fetch_all(req, group);
            if (rc)
                return rc;
        } else {
            sl_buf_put_i32(b, 0);
        }
    } else {
        sl_buf_put_i32(b, nt);
        for (int32_t t = 0; t < nt && !r->err; t++) {
            struct sl_bytes raw = sl_reader_string(r);
            char topic[COLL_TOPIC_NAME_MAX + 1];
            bool tok = coll_str_copy(topic, sizeof(topic), raw);
            sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
            int32_t np = sl_reader_array(r, OF_MAX_PARTITIONS, 4);
            if (np < 0 && !r->err)
                return sl_reader_fail(r, SL_EPARSE, "null partition_indexes");
            sl_buf_put_i32(b, np);
            for (int32_t p = 0; p < np && !r->err; p++) {
                int32_t part = sl_reader_i32(r);
                struct coll_goff_entry e;
                bool have = gok && tok && coll_goff_get(srv->goff, group, topic, part, &e);
                put_partition(b, req->version, part, have ? &e : NULL);
            }
        }
    }
    if (req->version >= 2)
        sl_buf_put_i16(b, KAFKA_E_NONE);
    return r->err ? r->err : COLL_API_DONE;
}
