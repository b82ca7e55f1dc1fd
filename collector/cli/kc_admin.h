/* Topic administration and offsets: ListOffsets (v1-2), CreateTopics (v0-4), DeleteTopics
 * (v0-3). */
#ifndef SL_CLI_KC_ADMIN_H
#define SL_CLI_KC_ADMIN_H

#include "collector/cli/kclient.h"

/* ListOffsets' special timestamps. */
#define KC_OFFSET_LATEST   (-1)
#define KC_OFFSET_EARLIEST (-2)

/* One partition's question and answer. */
struct kc_offset_query {
    int32_t partition;  /* in */
    int32_t leader;     /* in: node id from metadata */
    int64_t timestamp;  /* in: ms since the epoch, or KC_OFFSET_LATEST / KC_OFFSET_EARLIEST */
    int16_t error_code; /* out */
    int64_t offset;     /* out: -1 when no record is that recent */
    int64_t found_ts;   /* out: the found record's timestamp, -1 when unknown */
};

/* Appends the ListOffsets v1-2 body asking for the queries of q[0..n) led by `leader`. */
void kc_list_offsets_req(struct sl_buf *b, int16_t version, const char *topic,
                         const struct kc_offset_query *q, size_t n, int32_t leader);

/* Decodes a ListOffsets v1-2 answer body into the matching queries of q (by partition; only
 * those led by `leader`, which are first set to UNKNOWN_TOPIC_OR_PARTITION so a partition the
 * answer leaves out is an error). Returns 0 or the reader's error described in err. */
int kc_list_offsets_parse(struct sl_reader *r, int16_t version, const char *topic,
                          struct kc_offset_query *q, size_t n, int32_t leader, struct sl_err *err);

/*
 * Asks each partition's leader for the offsets of q[0..n) of topic. Returns 0 once every leader
 * answered (each query has its own error_code: check them), or the first network or protocol
 * error.
 */
int kc_list_offsets(struct kc_client *cl, const char *topic, struct kc_offset_query *q, size_t n,
                    struct sl_err *err);

/* One topic to create, and its outcome. */
struct kc_new_topic {
    const char *name;           /* borrowed */
    int32_t partitions;         /* -1: the broker's default (v4+) */
    int16_t replication;        /* -1: the broker's default */
    const char *const *configs; /* borrowed "name=value" strings */
    size_t nconfigs;
    int16_t error_code; /* out */
    char message[256];  /* out: the broker's error_message (v1+), or "" */
};

/* Appends the CreateTopics v0-4 body. */
void kc_create_topics_req(struct sl_buf *b, int16_t version, const struct kc_new_topic *t, size_t n,
                          int32_t timeout_ms, bool validate_only);

/* Decodes the CreateTopics answer into t (by name). Returns 0 or the reader's error. */
int kc_create_topics_parse(struct sl_reader *r, int16_t version, struct kc_new_topic *t, size_t n,
                           struct sl_err *err);

/* Creates the topics through the controller (any broker when the controller is unknown).
 * Returns 0 with each error_code set, or a network or protocol error. */
int kc_create_topics(struct kc_client *cl, struct kc_new_topic *t, size_t n, bool validate_only,
                     struct sl_err *err);

/* Deletes the n topics; codes[i] gets topic i's error code. Returns 0 or a network or protocol
 * error. */
int kc_delete_topics(struct kc_client *cl, const char *const *topics, size_t n, int16_t *codes,
                     struct sl_err *err);

/* Decodes a DeleteTopics v0-3 answer into codes (by name; a name the answer omits gets
 * UNKNOWN_SERVER_ERROR). Returns 0 or the reader's error. */
int kc_delete_topics_parse(struct sl_reader *r, int16_t version, const char *const *topics,
                           size_t n, int16_t *codes, struct sl_err *err);

#endif
