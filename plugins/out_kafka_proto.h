/* The Kafka client side of the wire: the requests a producer sends (ApiVersions v0, Metadata
 * v1-4, Produce v3-7) and the decoders for their responses. */
#ifndef SL_PLUGINS_OUT_KAFKA_PROTO_H
#define SL_PLUGINS_OUT_KAFKA_PROTO_H

#include "common/buf.h"
#include "common/err.h"
#include "common/kafka_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KAFKA_API_PRODUCE     0
#define KAFKA_API_METADATA    3
#define KAFKA_API_APIVERSIONS 18

/* The versions this client speaks; ApiVersions picks the highest both sides know. */
#define KAFKA_PRODUCE_MIN  3
#define KAFKA_PRODUCE_MAX  7
#define KAFKA_METADATA_MIN 1
#define KAFKA_METADATA_MAX 4

/* How the producer reacts to a partition-level error code. */
enum kafka_err_action {
    KAFKA_ERR_OK,      /* acknowledged */
    KAFKA_ERR_RETRY,   /* retry after backoff */
    KAFKA_ERR_REFRESH, /* retry after backoff and refresh metadata: the leader moved */
    KAFKA_ERR_FATAL,   /* this batch can never be accepted */
};

/* The reaction to code: unknown codes are retried, since giving up loses records. */
enum kafka_err_action out_kafka_proto_err_action(int16_t code);

/*
 * Each request encoder appends one whole frame to b: the int32 size, the request header v1
 * (api_key, api_version, correlation_id, client_id) and the body in spec order. Returns 0 or
 * b's sticky error (-ENOMEM).
 */
int out_kafka_proto_apiversions_req(struct sl_buf *b, int32_t corr, const char *client_id);

/* Metadata v1-4 for the given topics (n of them; NULL topics with n 0 asks for none, not all);
 * v4 carries allow_auto_topic_creation. */
int out_kafka_proto_metadata_req(struct sl_buf *b, int16_t version, int32_t corr,
                                 const char *client_id, const char *const *topics, size_t n,
                                 bool auto_create);

/*
 * Produce v3-7 for one partition: everything up to and including the records' int32 length;
 * the caller sends the batch_len bytes of the record batch right after, and the frame size
 * already counts them (so the batch is never copied into the request).
 */
int out_kafka_proto_produce_req(struct sl_buf *b, int16_t version, int32_t corr,
                                const char *client_id, int16_t acks, int32_t timeout_ms,
                                const char *topic, int32_t partition, size_t batch_len);

/* The ApiVersions answer: [min, max] per api key below 64; -1 where the key is absent. */
struct kafka_api_versions {
    int16_t error_code;
    int16_t min[64];
    int16_t max[64];
};

/* Decodes an ApiVersions v0 response body (after the correlation id). Returns 0, or the
 * reader's error with err describing it. */
int out_kafka_proto_apiversions_parse(const void *p, size_t n, struct kafka_api_versions *v,
                                      struct sl_err *err);

struct kafka_meta_broker {
    int32_t node_id;
    struct sl_bytes host; /* borrowed from the response */
    int32_t port;
};

struct kafka_meta_partition {
    int16_t error_code;
    int32_t index;
    int32_t leader; /* -1: none */
};

struct kafka_meta_topic {
    int16_t error_code;
    struct sl_bytes name; /* borrowed */
    int32_t npartitions;
    struct kafka_meta_partition *partitions; /* owned */
};

struct kafka_meta {
    int32_t nbrokers;
    struct kafka_meta_broker *brokers; /* owned */
    int32_t controller_id;
    int32_t ntopics;
    struct kafka_meta_topic *topics; /* owned */
};

/* Decodes a Metadata v1-4 response body into m (views into p, arrays allocated; release with
 * out_kafka_proto_meta_fini even on failure). Returns 0, -ENOMEM, or the reader's error
 * (SL_ETRUNC, SL_EPARSE, SL_ETOOBIG) with err naming the field and offset. */
int out_kafka_proto_metadata_parse(const void *p, size_t n, int16_t version, struct kafka_meta *m,
                                   struct sl_err *err);

void out_kafka_proto_meta_fini(struct kafka_meta *m);

/* Decodes a Produce v3-7 response body and finds (topic, partition) in it: *code gets its error
 * code and *base_offset its base offset. Returns 0; SL_EPARSE when the response does not
 * mention that partition; or the reader's error. */
int out_kafka_proto_produce_parse(const void *p, size_t n, int16_t version, const char *topic,
                                  int32_t partition, int16_t *code, int64_t *base_offset,
                                  struct sl_err *err);

#endif
