/* Fetch (key 1), v4-11: whole batches from the segment files, with long polling. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>

/*
 * Request:
 *   replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32,
 *   isolation_level int8, session_id int32 (v7+), session_epoch int32 (v7+)
 *   topics ARRAY of
 *     topic STRING
 *     partitions ARRAY of
 *       partition int32, current_leader_epoch int32 (v9+), fetch_offset int64,
 *       log_start_offset int64 (v5+), partition_max_bytes int32
 *   forgotten_topics_data ARRAY of [topic STRING, partitions ARRAY of int32] (v7+)
 *   rack_id STRING (v11+)
 *
 * Response:
 *   throttle_time_ms int32, error_code int16 (v7+), session_id int32 (v7+, always 0: no
 *   fetch sessions, every fetch is a full one)
 *   responses ARRAY of
 *     topic STRING
 *     partitions ARRAY of
 *       partition_index int32, error_code int16, high_watermark int64,
 *       last_stable_offset int64, log_start_offset int64 (v5+),
 *       aborted_transactions NULLABLE ARRAY (null), preferred_read_replica int32 (v11+, -1),
 *       records NULLABLE_BYTES: int32 size, then the batches straight from the .log file
 *
 * The records always start with the whole batch holding fetch_offset (so the first batch may
 * start before it: clients skip the records below their offset). Limits: partition_max_bytes
 * per partition and max_bytes for the response, except that the first batch found is always
 * sent (KIP-74). With fewer than min_bytes available the fetch waits, up to max_wait_ms, for
 * appends to the partitions it asks about.
 */

#define FETCH_MAX_TOPICS     10000
#define FETCH_MAX_PARTITIONS 100000

struct fetch_part {
    int32_t partition;
    int64_t offset;
    int32_t max_bytes;
};

struct fetch_topic {
    char *name; /* owned; NUL-terminated copy of the wire bytes */
    size_t name_len;
    bool name_ok;
    struct fetch_part *parts; /* owned */
    int32_t nparts;
    uint64_t sent;    /* record bytes of the last encoding */
    uint64_t records; /* records in those bytes (whole batches, the skipped head included) */
};

struct coll_fetch_wait {
    struct coll_fetch_wait *prev, *next; /* in srv->waits while waiting */
    struct coll_server *srv;             /* borrowed */
    struct coll_resp *resp;              /* borrowed until completed */
    int16_t version;
    int32_t min_bytes, max_bytes;
    struct fetch_topic *topics; /* owned */
    int32_t ntopics;
    uint64_t got; /* bytes available so far */
    bool waiting, ready;
    ev_timer timer;
};

static void fetch_free(struct coll_fetch_wait *fw)
{
    if (!fw)
        return;
    for (int32_t t = 0; t < fw->ntopics; t++) {
        sl_free(fw->topics[t].name);
        sl_free(fw->topics[t].parts);
    }
    sl_free(fw->topics);
    sl_free(fw);
}

/* Encodes the response body into fw->resp (after its header); returns the record bytes. */
static uint64_t fetch_encode(struct coll_fetch_wait *fw)
{
    struct coll_server *srv = fw->srv;
    struct coll_resp *resp = fw->resp;
    struct sl_buf *b = &resp->buf;
    int16_t v = fw->version;
    uint64_t sent = 0;
    int64_t budget = fw->max_bytes > 0 ? fw->max_bytes : INT32_MAX;
    sl_buf_put_i32(b, 0);
    if (v >= 7) {
        sl_buf_put_i16(b, KAFKA_E_NONE);
        sl_buf_put_i32(b, 0);
    }
    sl_buf_put_i32(b, fw->ntopics);
    for (int32_t t = 0; t < fw->ntopics; t++) {
        struct fetch_topic *ft = &fw->topics[t];
        sl_buf_put_string(b, (struct sl_bytes){(const uint8_t *)ft->name, ft->name_len});
        sl_buf_put_i32(b, ft->nparts);
        ft->sent = 0;
        ft->records = 0;
        for (int32_t p = 0; p < ft->nparts; p++) {
            struct fetch_part *fp = &ft->parts[p];
            struct coll_plog *pl =
                ft->name_ok ? coll_storage_get(srv->st, ft->name, fp->partition) : NULL;
            int16_t e = KAFKA_E_NONE;
            struct coll_region reg = {.fd = -1};
            int64_t hw = -1, start = -1;
            if (!pl) {
                e = ft->name_ok && coll_storage_offline(srv->st, ft->name, fp->partition)
                        ? KAFKA_E_KAFKA_STORAGE_ERROR
                        : KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            } else {
                hw = pl->next_offset;
                start = pl->log_start;
                int64_t limit = SL_MIN((int64_t)fp->max_bytes, budget);
                if (limit > 0 || sent == 0) {
                    struct sl_err err = {{0}};
                    int rc = coll_plog_read(pl, fp->offset, (size_t)SL_MAX(limit, 1), &reg, &err);
                    if (rc == -ERANGE) {
                        e = KAFKA_E_OFFSET_OUT_OF_RANGE;
                    } else if (rc != 0) {
                        SL_WARN("kafka", "fetch %s-%d at %lld: %s", ft->name, fp->partition,
                                (long long)fp->offset, err.msg);
                        e = KAFKA_E_KAFKA_STORAGE_ERROR;
                    }
                    if (rc != 0)
                        memset(&reg, 0, sizeof(reg));
                }
            }
            sl_buf_put_i32(b, fp->partition);
            sl_buf_put_i16(b, e);
            sl_buf_put_i64(b, hw);
            sl_buf_put_i64(b, hw);
            if (v >= 5)
                sl_buf_put_i64(b, start);
            sl_buf_put_i32(b, -1); /* aborted_transactions: null */
            if (v >= 11)
                sl_buf_put_i32(b, -1);
            sl_buf_put_i32(b, (int32_t)reg.len);
            if (reg.len) {
                sent += reg.len;
                budget -= (int64_t)reg.len;
                ft->sent += reg.len;
                ft->records += (uint64_t)(reg.end_offset - reg.first_offset);
                if (coll_resp_add_file(resp, &reg) != 0)
                    sl_buf_reserve(b, (size_t)1 << 41); /* sticky failure: the conn closes */
            }
        }
    }
    return sent;
}

/* Counts what the final encoding sends in the topics' metrics. */
static void fetch_count(struct coll_fetch_wait *fw)
{
    for (int32_t t = 0; t < fw->ntopics; t++) {
        if (!fw->topics[t].sent)
            continue;
        struct coll_topic_stats *ts = coll_server_topic_stats(fw->srv, fw->topics[t].name);
        if (ts) {
            sl_metric_add(ts->bytes_out, fw->topics[t].sent);
            sl_metric_add(ts->records_out, fw->topics[t].records);
        }
    }
}

/* Discards an encoded body (keeps size hole and correlation id). */
static void fetch_unencode(struct coll_resp *resp)
{
    for (size_t i = 0; i < resp->nfiles; i++)
        coll_region_release(&resp->files[i].region);
    resp->nfiles = 0;
    sl_buf_truncate(&resp->buf, 8);
}

static void fetch_unlink(struct coll_fetch_wait *fw)
{
    struct coll_server *srv = fw->srv;
    if (!fw->waiting)
        return;
    fw->waiting = false;
    ev_timer_stop(srv->loop, &fw->timer);
    if (fw->prev)
        fw->prev->next = fw->next;
    else
        srv->waits = fw->next;
    if (fw->next)
        fw->next->prev = fw->prev;
}

static void fetch_complete(struct coll_fetch_wait *fw)
{
    fetch_unlink(fw);
    struct coll_resp *resp = fw->resp;
    fetch_unencode(resp);
    fetch_encode(fw);
    fetch_count(fw);
    fetch_free(fw);
    coll_resp_done(resp);
}

static void fetch_cancel(struct coll_resp *resp)
{
    struct coll_fetch_wait *fw = resp->op;
    fetch_unlink(fw);
    fetch_free(fw);
    coll_resp_free(resp);
}

static void fetch_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    fetch_complete(sl_container_of(w, struct coll_fetch_wait, timer));
}

void coll_fetch_on_append(struct coll_server *srv, const char *topic, int32_t partition,
                          size_t bytes)
{
    bool any = false;
    for (struct coll_fetch_wait *fw = srv->waits; fw; fw = fw->next) {
        for (int32_t t = 0; t < fw->ntopics; t++) {
            struct fetch_topic *ft = &fw->topics[t];
            if (!ft->name_ok || strcmp(ft->name, topic) != 0)
                continue;
            for (int32_t p = 0; p < ft->nparts; p++)
                if (ft->parts[p].partition == partition)
                    fw->got += bytes;
        }
        if (fw->got >= (uint64_t)SL_MAX(fw->min_bytes, 1)) {
            fw->ready = true;
            any = true;
        }
    }
    /* Completing may close connections, which cancels other waits: rescan after each. */
    while (any) {
        any = false;
        for (struct coll_fetch_wait *fw = srv->waits; fw; fw = fw->next) {
            if (fw->ready) {
                fetch_complete(fw);
                any = true;
                break;
            }
        }
    }
}

void coll_fetch_flush_all(struct coll_server *srv)
{
    while (srv->waits)
        fetch_complete(srv->waits);
}

static int fetch_parse(struct coll_req *req, struct coll_fetch_wait *fw, int32_t *max_wait)
{
    struct sl_reader *r = &req->r;
    int16_t v = req->version;
    sl_reader_i32(r); /* replica_id */
    *max_wait = sl_reader_i32(r);
    fw->min_bytes = sl_reader_i32(r);
    fw->max_bytes = sl_reader_i32(r);
    sl_reader_i8(r); /* isolation_level: no transactions, both levels read the same */
    if (v >= 7) {
        sl_reader_i32(r);
        sl_reader_i32(r);
    }
    int32_t nt = sl_reader_array(r, FETCH_MAX_TOPICS, 6);
    if (nt < 0)
        return sl_reader_fail(r, nt == -1 ? SL_EPARSE : r->err, "topics");
    if (nt > 0 && !(fw->topics = sl_calloc((size_t)nt, sizeof(*fw->topics))))
        return -ENOMEM;
    size_t part_size = 4 + (v >= 9 ? 4 : 0) + 8 + (v >= 5 ? 8 : 0) + 4;
    int64_t total = 0;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct fetch_topic *ft = &fw->topics[t];
        fw->ntopics = t + 1;
        struct sl_bytes raw = sl_reader_string(r);
        int32_t np = sl_reader_array(r, FETCH_MAX_PARTITIONS, part_size);
        if (r->err)
            break;
        if (np < 0)
            return sl_reader_fail(r, SL_EPARSE, "null partitions");
        total += np;
        if (total > FETCH_MAX_PARTITIONS)
            return sl_reader_fail(r, SL_ETOOBIG, "partition count");
        /* A copy of every byte (NULs included: the name is echoed back as it came). */
        ft->name_len = raw.p ? raw.len : 0;
        ft->name = sl_malloc(ft->name_len + 1);
        if (!ft->name)
            return -ENOMEM;
        if (ft->name_len)
            memcpy(ft->name, raw.p, ft->name_len);
        ft->name[ft->name_len] = 0;
        char tmp[COLL_TOPIC_NAME_MAX + 1];
        ft->name_ok =
            coll_str_copy(tmp, sizeof(tmp), raw) && coll_topic_name_check(tmp, raw.len, NULL) == 0;
        if (np > 0 && !(ft->parts = sl_calloc((size_t)np, sizeof(*ft->parts))))
            return -ENOMEM;
        ft->nparts = np;
        for (int32_t p = 0; p < np; p++) {
            struct fetch_part *fp = &ft->parts[p];
            fp->partition = sl_reader_i32(r);
            if (v >= 9)
                sl_reader_i32(r);
            fp->offset = sl_reader_i64(r);
            if (v >= 5)
                sl_reader_i64(r);
            fp->max_bytes = sl_reader_i32(r);
        }
    }
    if (v >= 7) {
        int32_t nf = sl_reader_array(r, FETCH_MAX_TOPICS, 6);
        for (int32_t i = 0; i < nf && !r->err; i++) {
            sl_reader_string(r);
            int32_t np = sl_reader_array(r, FETCH_MAX_PARTITIONS, 4);
            sl_reader_skip(r, (size_t)SL_MAX(np, 0) * 4);
        }
    }
    if (v >= 11)
        sl_reader_string(r);
    return r->err;
}

int coll_api_fetch(struct coll_req *req)
{
    struct coll_server *srv = req->srv;
    struct coll_fetch_wait *fw = sl_calloc(1, sizeof(*fw));
    if (!fw)
        return -ENOMEM;
    fw->srv = srv;
    fw->resp = req->resp;
    fw->version = req->version;
    int32_t max_wait = 0;
    int rc = fetch_parse(req, fw, &max_wait);
    if (rc != 0) {
        fetch_free(fw);
        return rc;
    }
    fw->got = fetch_encode(fw);
    int64_t wait_ms = SL_MIN((int64_t)max_wait, srv->conf->max_fetch_wait_ms);
    if (fw->got >= (uint64_t)SL_MAX(fw->min_bytes, 1) || wait_ms <= 0 || srv->stopping ||
        sl_buf_error(&req->resp->buf)) {
        fetch_count(fw);
        fetch_free(fw);
        return COLL_API_DONE;
    }
    /* Not enough yet: drop the encoded body and wait for appends or the deadline. */
    fetch_unencode(req->resp);
    fw->waiting = true;
    fw->next = srv->waits;
    if (srv->waits)
        srv->waits->prev = fw;
    srv->waits = fw;
    ev_timer_init(&fw->timer, fetch_on_timeout, (double)wait_ms / 1000.0, 0.);
    ev_timer_start(srv->loop, &fw->timer);
    req->resp->cancel = fetch_cancel;
    req->resp->op = fw;
    return COLL_API_ASYNC;
}
