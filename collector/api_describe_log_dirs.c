/* DescribeLogDirs (key 35), v0-1: the one log dir (data_dir) and each partition's size. */
#include "collector/server_priv.h"

#include "collector/storage.h"
#include "common/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Request:
 *   topics NULLABLE ARRAY of [topic STRING, partitions ARRAY of int32]   (null: every partition)
 *
 * Response:
 *   throttle_time_ms int32
 *   results ARRAY of
 *     error_code int16, log_dir STRING,
 *     topics ARRAY of
 *       name STRING,
 *       partitions ARRAY of [partition_index int32, partition_size int64, offset_lag int64,
 *                            is_future_key BOOLEAN]
 *
 * There is one log dir, data_dir, and no replica moves: offset_lag is 0 and is_future_key
 * false. partition_size is the bytes of the partition's segment files (coll_plog_size). A
 * requested partition this broker does not have is left out, as Kafka does. Partitions that
 * are offline (failed to open) are not in the storage's list and are left out too.
 */

#define DL_MAX_TOPICS 10000
#define DL_MAX_PARTS  100000

struct dl_list {
    struct coll_plog **v;
    size_t n, cap;
    bool oom;
};

static void dl_collect(struct coll_plog *pl, void *arg)
{
    struct dl_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct coll_plog **v = sl_realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = pl;
}

static int dl_cmp(const void *a, const void *b)
{
    const struct coll_plog *x = *(struct coll_plog *const *)a, *y = *(struct coll_plog *const *)b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

/* True when (topic, partition) was asked for: nt < 0 asks for everything. The topics array
 * starts at `at` in r's frame and was validated by the first pass. */
static bool dl_wanted(const struct sl_reader *r, size_t at, int32_t nt, const struct coll_plog *pl)
{
    if (nt < 0)
        return true;
    struct sl_reader k;
    sl_reader_init(&k, r->p + at, r->len - at);
    for (int32_t t = 0; t < nt; t++) {
        struct sl_bytes name = sl_reader_string(&k);
        int32_t np = sl_reader_array(&k, DL_MAX_PARTS, 4);
        bool same =
            name.p && name.len == strlen(pl->topic) && memcmp(name.p, pl->topic, name.len) == 0;
        for (int32_t p = 0; p < np; p++)
            if (sl_reader_i32(&k) == pl->partition && same)
                return true;
    }
    return false;
}

int coll_api_describe_log_dirs(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    int32_t nt = sl_reader_array(r, DL_MAX_TOPICS, 6);
    size_t topics_at = r->pos;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        sl_reader_string(r);
        int32_t np = sl_reader_array(r, DL_MAX_PARTS, 4);
        sl_reader_skip(r, (size_t)SL_MAX(np, 0) * 4);
    }
    if (r->err)
        return r->err;

    struct dl_list l = {0};
    coll_storage_foreach(req->srv->st, dl_collect, &l);
    if (l.oom) {
        sl_free(l.v);
        return -ENOMEM;
    }
    if (l.n > 1)
        qsort(l.v, l.n, sizeof(*l.v), dl_cmp);

    /* data_dir is each partition directory's parent. */
    struct sl_bytes dir = SL_BYTES_STR("");
    if (l.n > 0) {
        const char *slash = strrchr(l.v[0]->dir, '/');
        dir = (struct sl_bytes){(const uint8_t *)l.v[0]->dir,
                                slash ? (size_t)(slash - l.v[0]->dir) : 0};
    }

    struct sl_buf *b = &req->resp->buf;
    sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, 1);
    sl_buf_put_i16(b, KAFKA_E_NONE);
    sl_buf_put_string(b, dir);
    size_t ntopics_at = sl_buf_hole(b, 4);
    int32_t ntopics = 0;
    size_t nparts_at = 0;
    int32_t nparts = 0;
    const char *cur = NULL;
    for (size_t i = 0; i < l.n; i++) {
        struct coll_plog *pl = l.v[i];
        if (!dl_wanted(r, topics_at, nt, pl))
            continue;
        if (!cur || strcmp(cur, pl->topic) != 0) {
            if (cur)
                sl_buf_patch_i32(b, nparts_at, nparts);
            sl_buf_put_string(b, SL_BYTES_STR(pl->topic));
            nparts_at = sl_buf_hole(b, 4);
            nparts = 0;
            ntopics++;
            cur = pl->topic;
        }
        sl_buf_put_i32(b, pl->partition);
        sl_buf_put_i64(b, (int64_t)coll_plog_size(pl));
        sl_buf_put_i64(b, 0);
        sl_buf_put_i8(b, 0);
        nparts++;
    }
    if (cur)
        sl_buf_patch_i32(b, nparts_at, nparts);
    sl_buf_patch_i32(b, ntopics_at, ntopics);
    sl_free(l.v);
    return COLL_API_DONE;
}
