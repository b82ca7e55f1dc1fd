/* A synchronous producer for one topic: record batches v2 per partition, gzip, acks=all,
 * Kafka's default partitioner, idempotent when the broker offers InitProducerId. */
#ifndef SL_CLI_KC_PRODUCE_H
#define SL_CLI_KC_PRODUCE_H

#include "collector/cli/kclient.h"
#include "common/batch.h"

struct kc_producer_opts {
    int16_t acks;              /* -1 (all), 1 or 0 */
    enum sl_batch_codec codec; /* NONE or GZIP */
    int level;                 /* gzip level, -1 for zlib's default */
    size_t batch_bytes;        /* a partition's batch is sent once it holds this much */
    int retries;               /* attempts after the first for a retriable error */
};

#define KC_PRODUCER_OPTS_DEFAULT                                                                   \
    ((struct kc_producer_opts){.acks = -1,                                                         \
                               .codec = SL_BATCH_CODEC_GZIP,                                       \
                               .level = -1,                                                        \
                               .batch_bytes = 512 * 1024,                                          \
                               .retries = 5})

struct kc_producer {
    struct kc_client *cl; /* borrowed */
    char *topic;          /* owned */
    struct kc_producer_opts opts;
    struct kc_meta meta;              /* owned: the topic's metadata */
    const struct kc_meta_topic *t;    /* borrowed from meta */
    struct sl_batch_builder *batches; /* owned: one per partition */
    int32_t *seq;                     /* owned: next sequence per partition (idempotence) */
    int32_t nparts;
    int32_t sticky; /* partition for null keys until its batch is sent */
    int64_t producer_id;
    int16_t producer_epoch;
    struct sl_buf enc;       /* owned: the encoded batch being sent */
    uint64_t records, bytes; /* acknowledged so far */
};

/*
 * Looks the topic up (KC_ENOTFOUND when it does not exist; it is never auto-created) and gets a
 * producer id when the broker offers one, so a retried batch is not stored twice. Returns 0 or
 * an error; pr is safe to fini either way.
 */
int kc_producer_init(struct kc_producer *pr, struct kc_client *cl, const char *topic,
                     const struct kc_producer_opts *opts, struct sl_err *err);

/* Frees pr, dropping records not yet sent (call kc_producer_flush first); NULL-safe. */
void kc_producer_fini(struct kc_producer *pr);

/* The partition Kafka's default partitioner picks: murmur2 of a non-null key, else the sticky
 * partition. */
int32_t kc_producer_partition(const struct kc_producer *pr, struct sl_bytes key);

/*
 * Adds one record (bytes copied) to partition `partition` (-1: the partitioner's choice) and
 * sends that partition's batch once it reaches batch_bytes. Returns 0; -EINVAL for a partition
 * the topic lacks; or the send's error (the records of the failed batch were not stored, or
 * were, when the error says the answer was lost).
 */
int kc_producer_add(struct kc_producer *pr, int32_t partition, int64_t timestamp,
                    struct sl_bytes key, struct sl_bytes value, const struct sl_batch_kv *headers,
                    size_t nheaders, struct sl_err *err);

/* Sends every partition's pending batch and waits for the answers. Returns 0 or the first
 * error. */
int kc_producer_flush(struct kc_producer *pr, struct sl_err *err);

/* Appends a Produce v3-7 body for one partition's encoded batch. */
void kc_produce_req(struct sl_buf *b, int16_t acks, int32_t timeout_ms, const char *topic,
                    int32_t partition, struct sl_bytes batch);

/* Decodes a Produce v3-7 answer and finds the partition's error code and base offset. Returns
 * 0, SL_EPARSE when the answer does not mention the partition, or the reader's error. */
int kc_produce_parse(struct sl_reader *r, int16_t version, const char *topic, int32_t partition,
                     int16_t *code, int64_t *base_offset, struct sl_err *err);

#endif
