/* out_kafka: the Kafka producer that ships the pipeline's batches to sluice-collector or any
 * Kafka broker 0.11+ (record batch v2), with acks, ordering and retries. */
#ifndef SL_PLUGINS_OUT_KAFKA_H
#define SL_PLUGINS_OUT_KAFKA_H

#include "common/conf.h"
#include "plugins/plugin.h"

#include <stdbool.h>
#include <stdint.h>

enum out_kafka_compression { OUT_KAFKA_COMPRESS_NONE = 0, OUT_KAFKA_COMPRESS_GZIP = 1 };

/* The `output:` section. The pipeline reads the batching options (batch_bytes, linger,
 * compression, compression_level); the producer the rest. */
struct out_kafka_conf {
    struct sl_conf_hostports collectors; /* owned: bootstrap addresses */
    int acks;                            /* -1, 0 or 1 */
    int compression;                     /* enum out_kafka_compression */
    int64_t compression_level;           /* -1 (zlib default) .. 9 */
    int64_t batch_bytes;
    int64_t linger_ms;
    int64_t max_in_flight; /* requests per connection */
    int64_t request_timeout_ms;
    int64_t connect_timeout_ms;
    int64_t retry_backoff_ms;
    int64_t retry_backoff_max_ms;
    int64_t metadata_refresh_ms;
    int64_t max_frame_bytes; /* largest response accepted */
    char *client_id;         /* owned */
    bool auto_create_topics;
};

/* The `output:` option table (also the registry entry's section). */
extern const struct sl_conf_section out_kafka_section;

/* The registry entry. */
extern const struct plugin out_kafka_plugin;

#endif
