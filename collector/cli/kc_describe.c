/* DescribeConfigs and DescribeLogDirs on the wire, as `sluice topics describe` uses them. */
#include "collector/cli/kc_describe.h"

#include <stdio.h>
#include <string.h>

/*
 *   DescribeConfigsRequest v0-1:  resources ARRAY of [resource_type int8 (2: topic),
 *                                   resource_name STRING, configuration_keys ARRAY of STRING],
 *                                 include_synonyms BOOLEAN (v1+)
 *   DescribeConfigsResponse v0-1: throttle_time_ms int32,
 *                                 results ARRAY of [error_code int16, error_message
 *                                   NULLABLE_STRING, resource_type int8, resource_name STRING,
 *                                   configs ARRAY of [name STRING, value NULLABLE_STRING,
 *                                     read_only BOOLEAN, is_default BOOLEAN (v0) |
 *                                     config_source int8 (v1), is_sensitive BOOLEAN,
 *                                     synonyms ARRAY of [name STRING, value NULLABLE_STRING,
 *                                                        source int8] (v1)]]
 *
 *   DescribeLogDirsRequest v0-1:  topics NULLABLE ARRAY of [topic STRING,
 *                                                           partitions ARRAY of int32]
 *   DescribeLogDirsResponse v0-1: throttle_time_ms int32,
 *                                 results ARRAY of [error_code int16, log_dir STRING,
 *                                   topics ARRAY of [name STRING, partitions ARRAY of
 *                                     [partition_index int32, partition_size int64,
 *                                      offset_lag int64, is_future_key BOOLEAN]]]
 */

#define MAX_ITEMS      100000
#define RESOURCE_TOPIC 2
#define SOURCE_DEFAULT 5

const char *const kc_topic_config_names[KC_TOPIC_NCONFIGS] = {"retention.ms", "retention.bytes",
                                                              "segment.bytes", "cleanup.policy"};

int kc_describe_configs_parse(struct sl_reader *r, int16_t version, const char *topic,
                              struct kc_topic_config *cfg, struct sl_err *err)
{
    for (size_t i = 0; i < KC_TOPIC_NCONFIGS; i++)
        cfg[i] = (struct kc_topic_config){.found = false};
    sl_reader_i32(r); /* throttle_time_ms */
    int32_t nres = sl_reader_array(r, MAX_ITEMS, 12);
    int16_t code = KAFKA_E_NONE;
    char msg[200] = "";
    for (int32_t k = 0; k < nres && !r->err; k++) {
        int16_t e = sl_reader_i16(r);
        struct sl_bytes m = sl_reader_string(r);
        sl_reader_i8(r);
        struct sl_bytes name = sl_reader_string(r);
        bool ours = sl_bytes_eq_str(name, topic);
        if (ours && e != KAFKA_E_NONE) {
            code = e;
            snprintf(msg, sizeof(msg), "%.*s", (int)SL_MIN(m.len, 199),
                     m.p ? (const char *)m.p : "");
        }
        int32_t nc = sl_reader_array(r, MAX_ITEMS, 9);
        for (int32_t c = 0; c < nc && !r->err; c++) {
            struct sl_bytes cn = sl_reader_string(r);
            struct sl_bytes cv = sl_reader_string(r);
            sl_reader_i8(r); /* read_only */
            int8_t src = sl_reader_i8(r);
            sl_reader_i8(r); /* is_sensitive */
            if (version >= 1) {
                int32_t ns = sl_reader_array(r, MAX_ITEMS, 5);
                for (int32_t s = 0; s < ns && !r->err; s++) {
                    sl_reader_string(r);
                    sl_reader_string(r);
                    sl_reader_i8(r);
                }
            }
            for (size_t i = 0; ours && !r->err && i < KC_TOPIC_NCONFIGS; i++) {
                if (!sl_bytes_eq_str(cn, kc_topic_config_names[i]))
                    continue;
                cfg[i].found = true;
                cfg[i].is_default = version == 0 ? src != 0 : src == SOURCE_DEFAULT;
                snprintf(cfg[i].value, sizeof(cfg[i].value), "%.*s",
                         cv.p ? (int)SL_MIN(cv.len, 63) : 0, cv.p ? (const char *)cv.p : "");
            }
        }
    }
    if (r->err)
        return sl_reader_describe(r, err, "DescribeConfigs answer");
    if (code != KAFKA_E_NONE)
        return kc_err_kafka(err, code, "configs of topic '%s'%s%s", topic, msg[0] ? ": " : "", msg);
    return 0;
}

int kc_describe_configs(struct kc_client *cl, const char *topic, struct kc_topic_config *cfg,
                        struct sl_err *err)
{
    struct kc_conn *c;
    int rc = kc_client_any(cl, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_DESCRIBE_CONFIGS, 0, 1, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf *b = kc_conn_begin(c, KC_API_DESCRIBE_CONFIGS, v);
    sl_buf_put_i32(b, 1);
    sl_buf_put_i8(b, RESOURCE_TOPIC);
    sl_buf_put_string(b, SL_BYTES_STR(topic));
    sl_buf_put_i32(b, KC_TOPIC_NCONFIGS);
    for (size_t i = 0; i < KC_TOPIC_NCONFIGS; i++)
        sl_buf_put_string(b, SL_BYTES_STR(kc_topic_config_names[i]));
    if (v >= 1)
        sl_buf_put_i8(b, 0); /* include_synonyms */
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
        return rc;
    if ((rc = kc_describe_configs_parse(&r, v, topic, cfg, err)) != 0)
        return rc;
    return kc_conn_check(c, &r, err);
}

int kc_log_dirs_parse(struct sl_reader *r, const char *topic, const int32_t *parts, size_t n,
                      int64_t *sizes, struct sl_err *err)
{
    sl_reader_i32(r); /* throttle_time_ms */
    int32_t nd = sl_reader_array(r, MAX_ITEMS, 10);
    for (int32_t d = 0; d < nd && !r->err; d++) {
        sl_reader_i16(r); /* error_code: a failed dir lists no partitions */
        sl_reader_string(r);
        int32_t nt = sl_reader_array(r, MAX_ITEMS, 6);
        for (int32_t t = 0; t < nt && !r->err; t++) {
            bool ours = sl_bytes_eq_str(sl_reader_string(r), topic);
            int32_t np = sl_reader_array(r, MAX_ITEMS, 21);
            for (int32_t p = 0; p < np && !r->err; p++) {
                int32_t idx = sl_reader_i32(r);
                int64_t size = sl_reader_i64(r);
                sl_reader_i64(r); /* offset_lag */
                sl_reader_i8(r);  /* is_future_key: a replica being moved, counted too */
                for (size_t i = 0; ours && !r->err && i < n; i++)
                    if (parts[i] == idx)
                        sizes[i] = (sizes[i] < 0 ? 0 : sizes[i]) + size;
            }
        }
    }
    return r->err ? sl_reader_describe(r, err, "DescribeLogDirs answer") : 0;
}

int kc_log_dirs(struct kc_client *cl, int32_t node_id, const char *topic, const int32_t *parts,
                size_t n, int64_t *sizes, struct sl_err *err)
{
    struct kc_conn *c;
    int rc = kc_client_node(cl, node_id, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_DESCRIBE_LOG_DIRS, 0, 1, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf *b = kc_conn_begin(c, KC_API_DESCRIBE_LOG_DIRS, v);
    sl_buf_put_i32(b, 1);
    sl_buf_put_string(b, SL_BYTES_STR(topic));
    sl_buf_put_i32(b, (int32_t)n);
    for (size_t i = 0; i < n; i++)
        sl_buf_put_i32(b, parts[i]);
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
        return rc;
    if ((rc = kc_log_dirs_parse(&r, topic, parts, n, sizes, err)) != 0)
        return rc;
    return kc_conn_check(c, &r, err);
}
