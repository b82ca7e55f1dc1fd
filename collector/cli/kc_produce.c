/* The command line's producer: one batch per partition, sent synchronously with acks=all and
 * retried (deduplicated by the broker when it gave us a producer id). */
#include "collector/cli/kc_produce.h"

#include "common/mem.h"
#include "common/murmur2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 *   ProduceRequest v3-7:       transactional_id NULLABLE_STRING, acks int16, timeout_ms int32,
 *                              topic_data ARRAY of [name STRING,
 *                                partition_data ARRAY of [index int32, records NULLABLE_BYTES]]
 *   ProduceResponse v3-7:      responses ARRAY of [name STRING, partitions ARRAY of
 *                                [index int32, error_code int16, base_offset int64,
 *                                 log_append_time_ms int64, log_start_offset int64 (v5+)]],
 *                              throttle_time_ms int32
 *   InitProducerIdRequest v0-1:  transactional_id NULLABLE_STRING, transaction_timeout_ms int32
 *   InitProducerIdResponse v0-1: throttle_time_ms int32, error_code int16, producer_id int64,
 *                                producer_epoch int16
 */

#define MAX_ITEMS 1000000

void kc_produce_req(struct sl_buf *b, int16_t acks, int32_t timeout_ms, const char *topic,
                    int32_t partition, struct sl_bytes batch)
{
    sl_buf_put_string(b, SL_BYTES_NULL);       /* transactional_id */
    sl_buf_put_i16(b, acks);                   /* acks */
    sl_buf_put_i32(b, timeout_ms);             /* timeout_ms */
    sl_buf_put_i32(b, 1);                      /* topic_data */
    sl_buf_put_string(b, SL_BYTES_STR(topic)); /*   name */
    sl_buf_put_i32(b, 1);                      /*   partition_data */
    sl_buf_put_i32(b, partition);              /*     index */
    sl_buf_put_bytes(b, batch);                /*     records */
}

int kc_produce_parse(struct sl_reader *r, int16_t version, const char *topic, int32_t partition,
                     int16_t *code, int64_t *base_offset, struct sl_err *err)
{
    bool found = false;
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes name = sl_reader_string(r);
        int32_t np = sl_reader_array(r, MAX_ITEMS, 22);
        for (int32_t p = 0; p < np && !r->err; p++) {
            int32_t index = sl_reader_i32(r);
            int16_t e = sl_reader_i16(r);
            int64_t base = sl_reader_i64(r);
            sl_reader_i64(r); /* log_append_time_ms */
            if (version >= 5)
                sl_reader_i64(r); /* log_start_offset */
            if (!r->err && index == partition && sl_bytes_eq_str(name, topic)) {
                found = true;
                *code = e;
                *base_offset = base;
            }
        }
    }
    sl_reader_i32(r); /* throttle_time_ms */
    if (r->err)
        return sl_reader_describe(r, err, "Produce answer");
    if (!found)
        return sl_err_set(err, SL_EPARSE, "Produce answer does not mention %s-%d", topic,
                          partition);
    return 0;
}

/* Asks for a producer id; leaves -1 when the broker has no InitProducerId. */
static int init_producer_id(struct kc_producer *pr, struct sl_err *err)
{
    struct kc_conn *c;
    int rc = kc_client_any(pr->cl, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_INIT_PRODUCER_ID, 0, 1, NULL);
    if (v < 0)
        return 0;
    struct sl_buf *b = kc_conn_begin(c, KC_API_INIT_PRODUCER_ID, v);
    sl_buf_put_string(b, SL_BYTES_NULL); /* transactional_id */
    sl_buf_put_i32(b, 60000);            /* transaction_timeout_ms */
    struct sl_reader r;
    if ((rc = kc_conn_call(c, pr->cl->timeout_ms, &r, err)) != 0)
        return rc;
    sl_reader_i32(&r); /* throttle_time_ms */
    int16_t code = sl_reader_i16(&r);
    int64_t id = sl_reader_i64(&r);
    int16_t epoch = sl_reader_i16(&r);
    if ((rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    if (code == KAFKA_E_NONE) {
        pr->producer_id = id;
        pr->producer_epoch = epoch;
    }
    return 0;
}

static int32_t random_partition(int32_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int32_t)((uint64_t)ts.tv_nsec % (uint64_t)n);
}

int kc_producer_init(struct kc_producer *pr, struct kc_client *cl, const char *topic,
                     const struct kc_producer_opts *opts, struct sl_err *err)
{
    memset(pr, 0, sizeof(*pr));
    pr->cl = cl;
    pr->opts = *opts;
    pr->producer_id = -1;
    pr->producer_epoch = -1;
    sl_buf_init(&pr->enc);
    if (!(pr->topic = sl_strdup(topic)))
        return sl_err_set(err, -ENOMEM, "out of memory");
    int rc = kc_client_topic(cl, topic, &pr->meta, &pr->t, err);
    if (rc != 0)
        return rc;
    pr->nparts = pr->t->nparts;
    pr->batches = sl_calloc((size_t)pr->nparts, sizeof(*pr->batches));
    pr->seq = sl_calloc((size_t)pr->nparts, sizeof(*pr->seq));
    if (!pr->batches || !pr->seq)
        return sl_err_set(err, -ENOMEM, "out of memory");
    struct sl_batch_opts bo = SL_BATCH_OPTS_DEFAULT;
    bo.codec = opts->codec;
    bo.level = opts->level;
    for (int32_t p = 0; p < pr->nparts; p++)
        if (sl_batch_builder_init(&pr->batches[p], &bo) != 0)
            return sl_err_set(err, -EINVAL, "bad compression settings");
    pr->sticky = random_partition(pr->nparts);
    return init_producer_id(pr, err);
}

void kc_producer_fini(struct kc_producer *pr)
{
    if (!pr)
        return;
    for (int32_t p = 0; pr->batches && p < pr->nparts; p++)
        sl_batch_builder_fini(&pr->batches[p]);
    SL_FREE(pr->batches);
    SL_FREE(pr->seq);
    SL_FREE(pr->topic);
    kc_meta_fini(&pr->meta);
    sl_buf_fini(&pr->enc);
}

int32_t kc_producer_partition(const struct kc_producer *pr, struct sl_bytes key)
{
    if (key.p)
        return sl_murmur2_partition(key.p, key.len, pr->nparts);
    return pr->sticky;
}

static bool retriable(int16_t code)
{
    switch (code) {
    case KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION:
    case KAFKA_E_LEADER_NOT_AVAILABLE:
    case KAFKA_E_NOT_LEADER_FOR_PARTITION:
    case KAFKA_E_REQUEST_TIMED_OUT:
    case KAFKA_E_NETWORK_EXCEPTION:
    case KAFKA_E_NOT_ENOUGH_REPLICAS:
    case KAFKA_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case KAFKA_E_KAFKA_STORAGE_ERROR:
    case KAFKA_E_FENCED_LEADER_EPOCH:
    case KAFKA_E_UNKNOWN_LEADER_EPOCH:
        return true;
    default:
        return false;
    }
}

static void backoff(int attempt)
{
    int64_t ms = SL_MIN((int64_t)100 << SL_MIN(attempt, 5), 2000);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Refreshes the topic's leaders after a retriable error. */
static int refresh(struct kc_producer *pr, struct sl_err *err)
{
    struct kc_meta m = {0};
    const struct kc_meta_topic *t;
    int rc = kc_client_topic(pr->cl, pr->topic, &m, &t, err);
    if (rc == 0 && t->nparts < pr->nparts)
        rc = sl_err_set(err, SL_EPARSE, "topic '%s' shrank from %d to %d partitions", pr->topic,
                        pr->nparts, t->nparts);
    if (rc != 0) {
        kc_meta_fini(&m);
        return rc;
    }
    kc_meta_fini(&pr->meta);
    pr->meta = m;
    pr->t = kc_meta_find(&pr->meta, pr->topic);
    return 0;
}

static int32_t leader_of(const struct kc_producer *pr, int32_t partition)
{
    for (int32_t i = 0; i < pr->t->nparts; i++)
        if (pr->t->parts[i].index == partition)
            return pr->t->parts[i].leader;
    return -1;
}

/* Sends partition p's batch (if any) and waits for its answer, retrying what can be. */
static int send_batch(struct kc_producer *pr, int32_t p, struct sl_err *err)
{
    struct sl_batch_builder *bb = &pr->batches[p];
    if (bb->count == 0)
        return 0;
    bb->opts.producer_id = pr->producer_id;
    bb->opts.producer_epoch = pr->producer_epoch;
    bb->opts.base_sequence = pr->producer_id >= 0 ? pr->seq[p] : -1;
    sl_buf_reset(&pr->enc);
    int rc = sl_batch_builder_finish(bb, &pr->enc);
    if (rc != 0)
        return sl_err_set(err, rc, "encoding a batch for %s-%d: %s", pr->topic, p, sl_strerror(rc));
    int16_t code = KAFKA_E_NONE;
    for (int attempt = 0;; attempt++) {
        struct kc_conn *c = NULL;
        int32_t leader = leader_of(pr, p);
        rc = leader < 0 ? sl_err_set(err, KC_EKAFKA, "%s-%d has no leader", pr->topic, p)
                        : kc_client_node(pr->cl, leader, &c, err);
        int16_t v = -1;
        if (rc == 0 && (v = kc_conn_version(c, KC_API_PRODUCE, 3, 7, err)) < 0)
            return SL_EUNSUP;
        struct sl_reader r;
        int64_t base = -1;
        if (rc == 0) {
            kc_produce_req(kc_conn_begin(c, KC_API_PRODUCE, v), pr->opts.acks,
                           (int32_t)SL_MIN(pr->cl->timeout_ms, INT32_MAX), pr->topic, p,
                           sl_buf_view(&pr->enc, 0, pr->enc.len));
            if (pr->opts.acks == 0) {
                rc = kc_conn_send(c, pr->cl->timeout_ms, err);
                if (rc == 0)
                    c->in_flight = false; /* acks=0: the broker never answers */
                code = KAFKA_E_NONE;
            } else if ((rc = kc_conn_call(c, pr->cl->timeout_ms, &r, err)) == 0 &&
                       (rc = kc_produce_parse(&r, v, pr->topic, p, &code, &base, err)) == 0) {
                rc = kc_conn_check(c, &r, err);
            }
        }
        if (rc == -EINTR)
            return rc;
        if (rc == 0 && code == KAFKA_E_NONE)
            break;
        if (rc == 0 && !retriable(code))
            return kc_err_kafka(err, code, "producing to %s-%d", pr->topic, p);
        if (attempt >= pr->opts.retries) {
            if (rc == 0)
                return kc_err_kafka(err, code, "producing to %s-%d (after %d attempts)", pr->topic,
                                    p, attempt + 1);
            sl_err_prefix(err, "producing to %s-%d (after %d attempts): ", pr->topic, p,
                          attempt + 1);
            return rc;
        }
        backoff(attempt);
        if (refresh(pr, NULL) != 0)
            continue; /* the next attempt reports what is wrong */
    }
    pr->seq[p] += bb->count;
    pr->records += (uint64_t)bb->count;
    pr->bytes += pr->enc.len;
    struct sl_batch_opts bo = bb->opts;
    sl_batch_builder_fini(bb);
    sl_batch_builder_init(bb, &bo);
    if (p == pr->sticky && pr->nparts > 1)
        pr->sticky = (pr->sticky + 1 + random_partition(pr->nparts - 1)) % pr->nparts;
    return 0;
}

int kc_producer_add(struct kc_producer *pr, int32_t partition, int64_t timestamp,
                    struct sl_bytes key, struct sl_bytes value, const struct sl_batch_kv *headers,
                    size_t nheaders, struct sl_err *err)
{
    int32_t p = partition >= 0 ? partition : kc_producer_partition(pr, key);
    if (p < 0 || p >= pr->nparts)
        return sl_err_set(err, -EINVAL, "topic '%s' has no partition %d (it has %d)", pr->topic, p,
                          pr->nparts);
    struct sl_batch_builder *bb = &pr->batches[p];
    int rc = sl_batch_builder_add(bb, timestamp, key, value, headers, nheaders);
    if (rc != 0)
        return sl_err_set(err, rc, "record for %s-%d: %s", pr->topic, p, sl_strerror(rc));
    if (sl_batch_builder_size(bb) >= pr->opts.batch_bytes)
        return send_batch(pr, p, err);
    return 0;
}

int kc_producer_flush(struct kc_producer *pr, struct sl_err *err)
{
    for (int32_t p = 0; p < pr->nparts; p++) {
        int rc = send_batch(pr, p, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}
