/* Produce (key 0), v3-7: validates and appends record batches, acks 0 / 1 / -1. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/batch.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>

/*
 * Request:
 *   transactional_id  NULLABLE_STRING
 *   acks              int16 (0: no response, 1: appended, -1: durable under the topic's fsync)
 *   timeout_ms        int32
 *   topic_data        ARRAY of
 *     name            STRING
 *     partition_data  ARRAY of [index int32, records NULLABLE_BYTES (exactly one batch v2)]
 *
 * Response:
 *   responses         ARRAY of
 *     name                 STRING
 *     partition_responses  ARRAY of
 *       index int32, error_code int16, base_offset int64,
 *       log_append_time_ms int64 (-1: create time), log_start_offset int64 (v5+)
 *   throttle_time_ms  int32
 *
 * The request is decoded completely before anything is appended, so a malformed request
 * changes nothing. With acks=-1 on a `fsync: always` topic the response waits for the
 * partition's durability callback (a failed one turns its error_code, patched in place, into
 * KAFKA_STORAGE_ERROR); other policies answer once the batch is in the log. If the fsync has
 * not completed within timeout_ms, the response leaves then with REQUEST_TIMED_OUT for the
 * partitions still waiting (their batches stay appended, as in Kafka, where a timed-out
 * acks=all produce is not undone); the context lives on until every callback has come:
 *
 *   appended --(all durable)--> answered, ctx freed
 *       \--(timeout_ms)--> answered (waiting ones: REQUEST_TIMED_OUT) --(all durable)--> freed
 */

#define PRODUCE_MAX_TOPICS     10000
#define PRODUCE_MAX_PARTITIONS 100000

struct produce_ctx;

struct produce_wait {
    struct produce_ctx *ctx; /* borrowed */
    size_t err_at;           /* offset of the partition's error_code in the response */
    bool waiting;            /* its durability callback is pending */
};

struct produce_ctx {
    struct coll_resp *resp; /* borrowed: freed by coll_resp_done; NULL once answered */
    struct ev_loop *loop;   /* borrowed */
    int pending;            /* durability callbacks still to come */
    size_t nwaits;
    ev_timer timer;              /* timeout_ms */
    struct produce_wait waits[]; /* one per partition */
};

static void produce_answer(struct produce_ctx *ctx)
{
    ev_timer_stop(ctx->loop, &ctx->timer);
    struct coll_resp *resp = ctx->resp;
    ctx->resp = NULL;
    coll_resp_done(resp);
}

static void produce_on_durable(void *arg, int status)
{
    struct produce_wait *w = arg;
    struct produce_ctx *ctx = w->ctx;
    w->waiting = false;
    if (ctx->resp && status != 0)
        sl_buf_patch_i16(&ctx->resp->buf, w->err_at, KAFKA_E_KAFKA_STORAGE_ERROR);
    if (--ctx->pending > 0)
        return;
    if (ctx->resp)
        produce_answer(ctx);
    sl_free(ctx);
}

static void produce_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct produce_ctx *ctx = sl_container_of(t, struct produce_ctx, timer);
    for (size_t i = 0; i < ctx->nwaits; i++)
        if (ctx->waits[i].waiting)
            sl_buf_patch_i16(&ctx->resp->buf, ctx->waits[i].err_at, KAFKA_E_REQUEST_TIMED_OUT);
    produce_answer(ctx); /* ctx stays until the pending callbacks come */
}

/* Appends one partition's records; returns the error code and fills *base. */
static int16_t produce_one(struct coll_req *req, const char *topic, int32_t partition,
                           struct sl_bytes records, struct produce_wait *w, bool wait,
                           int64_t *base, int64_t *log_start)
{
    struct coll_server *srv = req->srv;
    struct coll_plog *pl = coll_storage_get(srv->st, topic, partition);
    if (!pl)
        return coll_storage_offline(srv->st, topic, partition) ? KAFKA_E_KAFKA_STORAGE_ERROR
                                                               : KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
    *log_start = pl->log_start;
    if (!records.p || records.len == 0)
        return KAFKA_E_CORRUPT_MESSAGE;
    struct sl_batch_header h;
    bool parsed = sl_batch_parse_header(&h, records.p, records.len, 0, NULL) == 0;
    int32_t count = parsed ? h.last_offset_delta + 1 : 0;
    if (parsed && h.producer_id >= 0) {
        int64_t dup = -1;
        switch (coll_pstate_check(&srv->producers, h.producer_id, h.producer_epoch, topic,
                                  partition, h.base_sequence, count, &dup)) {
        case COLL_PSTATE_DUPLICATE:
            SL_DEBUG(req->peer, "duplicate batch of producer %lld on %s-%d (seq %d): offset %lld",
                     (long long)h.producer_id, topic, partition, h.base_sequence, (long long)dup);
            *base = dup;
            return KAFKA_E_NONE;
        case COLL_PSTATE_OUT_OF_ORDER:
            return KAFKA_E_OUT_OF_ORDER_SEQUENCE_NUMBER;
        case COLL_PSTATE_FENCED:
            return KAFKA_E_INVALID_PRODUCER_EPOCH;
        case COLL_PSTATE_APPEND:
            break;
        }
    }
    /* acks=-1 means "durable under the topic's policy": only `fsync: always` promises the disk
     * before the answer (group commit); `interval` and `never` answer once the batch is in the
     * log, as Kafka does, and sync in the background. */
    wait = wait && pl->conf.fsync == COLL_FSYNC_ALWAYS;
    struct coll_append_res res = {0};
    struct sl_err err = {{0}};
    /* The frame is ours: the storage rewrites baseOffset and the leader epoch in place. */
    int rc = coll_plog_append(pl, (void *)(uintptr_t)records.p, records.len,
                              wait ? produce_on_durable : NULL, w, &res, &err);
    if (rc != 0 || res.kafka_err != KAFKA_E_NONE) {
        SL_INFO(req->peer, "produce to %s-%d refused: %s", topic, partition,
                err.msg[0] ? err.msg : sl_strerror(rc));
        return res.kafka_err != KAFKA_E_NONE ? res.kafka_err : KAFKA_E_KAFKA_STORAGE_ERROR;
    }
    *base = res.base_offset;
    if (parsed && h.producer_id >= 0)
        coll_pstate_record(&srv->producers, h.producer_id, h.producer_epoch, topic, partition,
                           h.base_sequence, count, res.base_offset);
    struct coll_topic_stats *ts = coll_server_topic_stats(srv, topic);
    if (ts) {
        sl_metric_add(ts->bytes_in, records.len);
        sl_metric_add(ts->records_in, parsed ? (uint64_t)h.record_count : 0);
    }
    coll_fetch_on_append(srv, topic, partition, records.len);
    return wait ? -1000 : KAFKA_E_NONE; /* -1000: a durability callback is pending */
}

int coll_api_produce(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct sl_bytes txn = sl_reader_string(r);
    int16_t acks = sl_reader_i16(r);
    int32_t timeout_ms = sl_reader_i32(r); /* bounds only the wait for fsync: always */
    size_t topics_at = r->pos;
    /* Pass 1: structure only. */
    int32_t nt = sl_reader_array(r, PRODUCE_MAX_TOPICS, 6);
    size_t total = 0;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        sl_reader_string(r);
        int32_t np = sl_reader_array(r, PRODUCE_MAX_PARTITIONS, 8);
        if (np < 0)
            sl_reader_fail(r, SL_EPARSE, "null partition_data");
        for (int32_t p = 0; p < np && !r->err; p++) {
            sl_reader_i32(r);
            sl_reader_bytes(r);
        }
        total += np > 0 ? (size_t)np : 0;
    }
    if (nt < 0)
        sl_reader_fail(r, SL_EPARSE, "null topic_data");
    if (r->err)
        return r->err;
    if (total > PRODUCE_MAX_PARTITIONS)
        return sl_reader_fail(r, SL_ETOOBIG, "partition count");

    bool wait = acks == -1;
    int16_t all_err = KAFKA_E_NONE;
    if (acks != 0 && acks != 1 && acks != -1)
        all_err = KAFKA_E_INVALID_REQUIRED_ACKS;
    else if (txn.p)
        all_err = KAFKA_E_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    struct produce_ctx *ctx = NULL;
    if (wait && all_err == KAFKA_E_NONE) {
        ctx = sl_calloc(1, sizeof(*ctx) + (total ? total : 1) * sizeof(ctx->waits[0]));
        if (!ctx)
            return -ENOMEM;
        ctx->resp = req->resp;
        ctx->loop = req->srv->loop;
        ctx->nwaits = total;
        /* Kafka's DelayedProduce: a timeout of 0 or less expires at once (here on the next
         * loop iteration, which the fsync of a group commit can hardly beat). */
        ev_timer_init(&ctx->timer, produce_on_timeout, (double)SL_MAX(timeout_ms, 0) / 1000.0, 0.);
    }

    /* Pass 2: act, and encode the response alongside. */
    struct sl_buf *b = &req->resp->buf;
    struct sl_reader rr;
    sl_reader_init(&rr, r->p + topics_at, r->len - topics_at);
    nt = sl_reader_array(&rr, PRODUCE_MAX_TOPICS, 6);
    sl_buf_put_i32(b, nt);
    size_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        struct sl_bytes raw = sl_reader_string(&rr);
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        char topic[COLL_TOPIC_NAME_MAX + 1];
        bool name_ok = coll_str_copy(topic, sizeof(topic), raw) &&
                       coll_topic_name_check(topic, raw.len, NULL) == 0;
        int32_t np = sl_reader_array(&rr, PRODUCE_MAX_PARTITIONS, 8);
        sl_buf_put_i32(b, np);
        for (int32_t p = 0; p < np; p++, k++) {
            int32_t index = sl_reader_i32(&rr);
            struct sl_bytes records = sl_reader_bytes(&rr);
            int64_t base = -1, log_start = -1;
            int16_t e = all_err;
            if (e == KAFKA_E_NONE && !name_ok)
                e = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            struct produce_wait *w = ctx ? &ctx->waits[k] : NULL;
            if (w) {
                w->ctx = ctx;
                w->err_at = b->len + 4;
            }
            if (e == KAFKA_E_NONE) {
                int16_t rc = produce_one(req, topic, index, records, w, wait, &base, &log_start);
                if (rc == -1000) {
                    if (ctx) {
                        ctx->pending++;
                        w->waiting = true;
                    }
                } else {
                    e = rc;
                }
            }
            sl_buf_put_i32(b, index);
            sl_buf_put_i16(b, e);
            sl_buf_put_i64(b, base);
            sl_buf_put_i64(b, -1);
            if (req->version >= 5)
                sl_buf_put_i64(b, log_start);
        }
    }
    sl_buf_put_i32(b, 0);
    if (acks == 0) {
        SL_ASSERT(!ctx);
        return COLL_API_NORESP;
    }
    if (ctx && ctx->pending > 0) {
        ev_timer_start(ctx->loop, &ctx->timer);
        return COLL_API_ASYNC;
    }
    sl_free(ctx);
    return COLL_API_DONE;
}
