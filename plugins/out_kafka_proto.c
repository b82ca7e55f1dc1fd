/* Kafka producer requests and response decoders, each written field by field in the order of
 * Apache Kafka's clients/src/main/resources/common/message/ JSON files (non-flexible versions). */
#include "plugins/out_kafka_proto.h"

#include "common/mem.h"
#include "common/reader.h"

#include <errno.h>
#include <string.h>

/*
 * Every request frame:
 *
 *   +--------+---------+-----------+---------------+----------------+------------------+
 *   | size   | api_key | api_ver   | correlation_id| client_id      | body (per API)   |
 *   | int32  | int16   | int16     | int32         | NULLABLE_STRING|                  |
 *   +--------+---------+-----------+---------------+----------------+------------------+
 *            |<------------------------ size bytes ----------------------------------->|
 *
 * and every response: size int32, correlation_id int32, body (response header v0).
 *
 *   ApiVersionsRequest v0   (empty)
 *   ApiVersionsResponse v0  error_code i16, [api_key i16, min_version i16, max_version i16]
 *   MetadataRequest v1-4    topics [name STRING] (null: all), allow_auto_topic_creation bool v4+
 *   MetadataResponse v1-4   throttle_time_ms i32 v3+,
 *                           brokers [node_id i32, host STRING, port i32, rack NSTRING],
 *                           cluster_id NSTRING v2+, controller_id i32,
 *                           topics [error_code i16, name STRING, is_internal bool,
 *                                   partitions [error_code i16, partition_index i32,
 *                                               leader_id i32, replica_nodes [i32],
 *                                               isr_nodes [i32]]]
 *   ProduceRequest v3-7     transactional_id NSTRING, acks i16, timeout_ms i32,
 *                           topic_data [name STRING, partition_data [index i32, records BYTES]]
 *   ProduceResponse v3-7    responses [name STRING, partitions [index i32, error_code i16,
 *                           base_offset i64, log_append_time_ms i64, log_start_offset i64 v5+]],
 *                           throttle_time_ms i32
 */

/* Bounds on array counts in responses, far above any real cluster. */
#define MAX_BROKERS    100000
#define MAX_TOPICS     1000000
#define MAX_PARTITIONS 1000000
#define MAX_REPLICAS   100000

enum kafka_err_action out_kafka_proto_err_action(int16_t code)
{
    switch (code) {
    case KAFKA_E_NONE:
        return KAFKA_ERR_OK;
    case KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION:
    case KAFKA_E_LEADER_NOT_AVAILABLE:
    case KAFKA_E_NOT_LEADER_FOR_PARTITION:
    case KAFKA_E_NETWORK_EXCEPTION:
    case KAFKA_E_KAFKA_STORAGE_ERROR:
    case KAFKA_E_FENCED_LEADER_EPOCH:
    case KAFKA_E_UNKNOWN_LEADER_EPOCH:
        return KAFKA_ERR_REFRESH;
    case KAFKA_E_MESSAGE_TOO_LARGE:
    case KAFKA_E_INVALID_TOPIC:
    case KAFKA_E_RECORD_LIST_TOO_LARGE:
    case KAFKA_E_INVALID_REQUIRED_ACKS:
    case KAFKA_E_TOPIC_AUTHORIZATION_FAILED:
    case KAFKA_E_INVALID_TIMESTAMP:
    case KAFKA_E_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case KAFKA_E_INVALID_RECORD:
        return KAFKA_ERR_FATAL;
    default:
        return KAFKA_ERR_RETRY;
    }
}

/* Opens a frame: a hole for the size, then the request header v1. Returns the hole. */
static size_t frame_begin(struct sl_buf *b, int16_t api, int16_t version, int32_t corr,
                          const char *client_id)
{
    size_t at = sl_buf_hole(b, 4);
    sl_buf_put_i16(b, api);
    sl_buf_put_i16(b, version);
    sl_buf_put_i32(b, corr);
    sl_buf_put_string(b, client_id ? SL_BYTES_STR(client_id) : SL_BYTES_NULL);
    return at;
}

/* Closes a frame whose body goes on for `more` bytes sent separately. */
static int frame_end(struct sl_buf *b, size_t at, size_t more)
{
    if (sl_buf_error(b))
        return sl_buf_error(b);
    size_t size = b->len - at - 4 + more;
    if (size > INT32_MAX) {
        sl_buf_truncate(b, at);
        return SL_ETOOBIG;
    }
    sl_buf_patch_i32(b, at, (int32_t)size);
    return 0;
}

int out_kafka_proto_apiversions_req(struct sl_buf *b, int32_t corr, const char *client_id)
{
    size_t at = frame_begin(b, KAFKA_API_APIVERSIONS, 0, corr, client_id);
    return frame_end(b, at, 0);
}

int out_kafka_proto_metadata_req(struct sl_buf *b, int16_t version, int32_t corr,
                                 const char *client_id, const char *const *topics, size_t n,
                                 bool auto_create)
{
    size_t at = frame_begin(b, KAFKA_API_METADATA, version, corr, client_id);
    sl_buf_put_i32(b, (int32_t)n); /* topics */
    for (size_t i = 0; i < n; i++)
        sl_buf_put_string(b, SL_BYTES_STR(topics[i])); /* name */
    if (version >= 4)
        sl_buf_put_i8(b, auto_create ? 1 : 0); /* allow_auto_topic_creation */
    return frame_end(b, at, 0);
}

int out_kafka_proto_produce_req(struct sl_buf *b, int16_t version, int32_t corr,
                                const char *client_id, int16_t acks, int32_t timeout_ms,
                                const char *topic, int32_t partition, size_t batch_len)
{
    if (batch_len > INT32_MAX)
        return SL_ETOOBIG;
    size_t at = frame_begin(b, KAFKA_API_PRODUCE, version, corr, client_id);
    sl_buf_put_string(b, SL_BYTES_NULL);       /* transactional_id */
    sl_buf_put_i16(b, acks);                   /* acks */
    sl_buf_put_i32(b, timeout_ms);             /* timeout_ms */
    sl_buf_put_i32(b, 1);                      /* topic_data */
    sl_buf_put_string(b, SL_BYTES_STR(topic)); /*   name */
    sl_buf_put_i32(b, 1);                      /*   partition_data */
    sl_buf_put_i32(b, partition);              /*     index */
    sl_buf_put_i32(b, (int32_t)batch_len);     /*     records (bytes follow) */
    return frame_end(b, at, batch_len);
}

int out_kafka_proto_apiversions_parse(const void *p, size_t n, struct kafka_api_versions *v,
                                      struct sl_err *err)
{
    struct sl_reader r;
    sl_reader_init(&r, p, n);
    for (size_t i = 0; i < 64; i++)
        v->min[i] = v->max[i] = -1;
    v->error_code = sl_reader_i16(&r);
    int32_t count = sl_reader_array(&r, 10000, 6);
    for (int32_t i = 0; i < count; i++) {
        int16_t key = sl_reader_i16(&r);
        int16_t lo = sl_reader_i16(&r);
        int16_t hi = sl_reader_i16(&r);
        if (!r.err && key >= 0 && key < 64) {
            v->min[key] = lo;
            v->max[key] = hi;
        }
    }
    /* v0 ends here; a broker answering with a later layout adds throttle_time_ms, ignored. */
    return sl_reader_describe(&r, err, "ApiVersions v0 response");
}

void out_kafka_proto_meta_fini(struct kafka_meta *m)
{
    if (!m)
        return;
    for (int32_t i = 0; m->topics && i < m->ntopics; i++)
        SL_FREE(m->topics[i].partitions);
    SL_FREE(m->topics);
    SL_FREE(m->brokers);
    m->ntopics = m->nbrokers = 0;
}

/* Skips an ARRAY of int32. */
static void skip_i32_array(struct sl_reader *r)
{
    int32_t n = sl_reader_array(r, MAX_REPLICAS, 4);
    if (n > 0)
        sl_reader_skip(r, (size_t)n * 4);
}

int out_kafka_proto_metadata_parse(const void *p, size_t n, int16_t version, struct kafka_meta *m,
                                   struct sl_err *err)
{
    memset(m, 0, sizeof(*m));
    struct sl_reader r;
    sl_reader_init(&r, p, n);
    if (version >= 3)
        sl_reader_i32(&r); /* throttle_time_ms */
    int32_t nb = sl_reader_array(&r, MAX_BROKERS, 12);
    if (nb > 0) {
        m->brokers = sl_calloc((size_t)nb, sizeof(*m->brokers));
        if (!m->brokers)
            return sl_err_set(err, -ENOMEM, "Metadata response: out of memory");
        m->nbrokers = nb;
    }
    for (int32_t i = 0; i < nb; i++) {
        struct kafka_meta_broker *b = &m->brokers[i];
        b->node_id = sl_reader_i32(&r); /* node_id */
        b->host = sl_reader_string(&r); /* host */
        b->port = sl_reader_i32(&r);    /* port */
        sl_reader_string(&r);           /* rack */
    }
    if (version >= 2)
        sl_reader_string(&r);             /* cluster_id */
    m->controller_id = sl_reader_i32(&r); /* controller_id */
    int32_t nt = sl_reader_array(&r, MAX_TOPICS, 9);
    if (nt > 0) {
        m->topics = sl_calloc((size_t)nt, sizeof(*m->topics));
        if (!m->topics)
            return sl_err_set(err, -ENOMEM, "Metadata response: out of memory");
        m->ntopics = nt;
    }
    for (int32_t i = 0; i < nt && !r.err; i++) {
        struct kafka_meta_topic *t = &m->topics[i];
        t->error_code = sl_reader_i16(&r); /* error_code */
        t->name = sl_reader_string(&r);    /* name */
        sl_reader_i8(&r);                  /* is_internal */
        int32_t np = sl_reader_array(&r, MAX_PARTITIONS, 18);
        if (np > 0) {
            t->partitions = sl_calloc((size_t)np, sizeof(*t->partitions));
            if (!t->partitions)
                return sl_err_set(err, -ENOMEM, "Metadata response: out of memory");
            t->npartitions = np;
        }
        for (int32_t j = 0; j < np && !r.err; j++) {
            struct kafka_meta_partition *pp = &t->partitions[j];
            pp->error_code = sl_reader_i16(&r); /* error_code */
            pp->index = sl_reader_i32(&r);      /* partition_index */
            pp->leader = sl_reader_i32(&r);     /* leader_id */
            skip_i32_array(&r);                 /* replica_nodes */
            skip_i32_array(&r);                 /* isr_nodes */
        }
    }
    if (!r.err && nb < 0)
        sl_reader_fail(&r, SL_EPARSE, "brokers (null)");
    if (!r.err && nt < 0)
        sl_reader_fail(&r, SL_EPARSE, "topics (null)");
    return sl_reader_describe(&r, err, "Metadata response");
}

int out_kafka_proto_produce_parse(const void *p, size_t n, int16_t version, const char *topic,
                                  int32_t partition, int16_t *code, int64_t *base_offset,
                                  struct sl_err *err)
{
    struct sl_reader r;
    sl_reader_init(&r, p, n);
    bool found = false;
    int32_t nt = sl_reader_array(&r, MAX_TOPICS, 6);
    for (int32_t i = 0; i < nt && !r.err; i++) {
        struct sl_bytes name = sl_reader_string(&r); /* name */
        int32_t np = sl_reader_array(&r, MAX_PARTITIONS, 22);
        for (int32_t j = 0; j < np && !r.err; j++) {
            int32_t index = sl_reader_i32(&r); /* index */
            int16_t ec = sl_reader_i16(&r);    /* error_code */
            int64_t off = sl_reader_i64(&r);   /* base_offset */
            sl_reader_i64(&r);                 /* log_append_time_ms */
            if (version >= 5)
                sl_reader_i64(&r); /* log_start_offset */
            if (!r.err && !found && index == partition && sl_bytes_eq_str(name, topic)) {
                found = true;
                *code = ec;
                *base_offset = off;
            }
        }
    }
    sl_reader_i32(&r); /* throttle_time_ms */
    if (r.err)
        return sl_reader_describe(&r, err, "Produce response");
    if (!found)
        return sl_err_set(err, SL_EPARSE, "Produce response: no result for %s/%d", topic,
                          (int)partition);
    return 0;
}
