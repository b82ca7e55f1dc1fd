/* A topic's settings (DescribeConfigs v0-1) and its partitions' sizes (DescribeLogDirs v0-1),
 * for `sluice topics describe`. */
#ifndef SL_CLI_KC_DESCRIBE_H
#define SL_CLI_KC_DESCRIBE_H

#include "collector/cli/kclient.h"

/* The configs `sluice topics describe` shows, in this order (kc_topic_config_names). */
#define KC_TOPIC_NCONFIGS 4
extern const char *const kc_topic_config_names[KC_TOPIC_NCONFIGS];

/* One topic config as the broker reported it. */
struct kc_topic_config {
    char value[64];  /* "" with found false */
    bool found;      /* the broker named this config */
    bool is_default; /* v0 is_default, or v1+ config_source DEFAULT_CONFIG (5) */
};

/* Decodes a DescribeConfigs v0-1 answer for one topic resource into cfg[KC_TOPIC_NCONFIGS]
 * (by name). A resource error becomes kc_err_kafka's code with err naming the topic. Returns 0
 * or the reader's error. */
int kc_describe_configs_parse(struct sl_reader *r, int16_t version, const char *topic,
                              struct kc_topic_config *cfg, struct sl_err *err);

/* Asks any broker for topic's kc_topic_config_names. Returns 0; SL_EUNSUP when the broker does
 * not serve DescribeConfigs (err says so); a Kafka error for the topic; or a network error. */
int kc_describe_configs(struct kc_client *cl, const char *topic, struct kc_topic_config *cfg,
                        struct sl_err *err);

/* Decodes a DescribeLogDirs v0-1 answer: sizes[i] gets the bytes of partition parts[i] of
 * topic summed over the log dirs that hold it, untouched when none does. Returns 0 or the
 * reader's error. */
int kc_log_dirs_parse(struct sl_reader *r, const char *topic, const int32_t *parts, size_t n,
                      int64_t *sizes, struct sl_err *err);

/* Asks broker node_id for the sizes of partitions parts[0..n) of topic (the ones it leads);
 * sizes[i] stays as the caller set it for the ones it does not report. Returns 0, SL_EUNSUP
 * when the broker does not serve DescribeLogDirs, or a network or protocol error. */
int kc_log_dirs(struct kc_client *cl, int32_t node_id, const char *topic, const int32_t *parts,
                size_t n, int64_t *sizes, struct sl_err *err);

#endif
