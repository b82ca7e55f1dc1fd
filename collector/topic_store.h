/* The configs topics were created with (CreateTopics), kept across restarts. */
#ifndef SL_COLLECTOR_TOPIC_STORE_H
#define SL_COLLECTOR_TOPIC_STORE_H

#include "collector/topic_conf.h"
#include "common/buf.h"
#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * One file per topic created with configs, in the collector's own option syntax so that an
 * operator can read it and the same option table parses it:
 *
 *   data_dir/.topic-configs/<topic>.yaml      (written whole: temp file, fsync, rename)
 *     retention: 3600000ms
 *     segment_bytes: 1048576
 *
 * Kafka's names map onto the collector's topic settings:
 *
 *   retention.ms          -> retention        (-1: forever)
 *   retention.bytes       -> retention_bytes  (-1: unlimited)
 *   segment.bytes         -> segment_bytes
 *   segment.ms            -> segment_age
 *   index.interval.bytes  -> index_interval
 *   max.message.bytes     -> max_batch_bytes
 *   cleanup.policy        -> only "delete" (the one policy there is)
 *
 * Any other name, or a value out of range, is refused with INVALID_CONFIG naming it. A topic's
 * settings resolve as built-in defaults, topic_defaults, these, then topics.<name> from YAML.
 */

/* One config of a CreateTopics request (value NULL: the default, nothing to set). */
struct coll_topic_cfg {
    struct sl_bytes name;
    struct sl_bytes value; /* p NULL: null */
};

struct coll_topic_store;

/* Opens data_dir/.topic-configs (created when missing) and reads every file in it; a file that
 * does not parse is logged and skipped (that topic runs on the other layers). Returns 0 with
 * *out, or -errno / -ENOMEM with err set. */
int coll_topic_store_open(const char *data_dir, struct coll_topic_store **out, struct sl_err *err);

/* The configs topic was created with, or NULL. */
const struct coll_topic_conf *coll_topic_store_get(const struct coll_topic_store *s,
                                                   const char *topic);

/* Translates and checks cfgs for topic. With validate_only, or n 0, nothing is kept.
 * Otherwise they are persisted and used for the topic from now on. Returns 0, SL_ECONFIG
 * (msg names the config and why: answer INVALID_CONFIG), or -errno / -ENOMEM (msg says). */
int coll_topic_store_set(struct coll_topic_store *s, const char *topic,
                         const struct coll_topic_cfg *cfgs, size_t n, bool validate_only,
                         struct sl_err *msg);

/* Forgets topic's configs and removes its file (a deleted topic, or a failed creation). */
void coll_topic_store_remove(struct coll_topic_store *s, const char *topic);

void coll_topic_store_free(struct coll_topic_store *s);

#endif
