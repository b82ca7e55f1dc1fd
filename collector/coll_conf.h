/* The collector's configuration: its option table and the struct it fills. */
#ifndef SL_COLLECTOR_COLL_CONF_H
#define SL_COLLECTOR_COLL_CONF_H

#include "collector/group.h"
#include "collector/partition_log.h"
#include "collector/server.h"
#include "collector/topic_conf.h"
#include "common/conf.h"

#include <stdbool.h>

struct coll_metrics_conf {
    bool enabled;
    struct sl_conf_hostport listen;
};

struct coll_conf {
    int log_level;              /* SL_LOG_* */
    char *data_dir;             /* owned */
    int64_t retention_check_ms; /* how often retention runs */
    struct coll_topic_conf topic_defaults;
    struct sl_conf_map topics; /* of struct coll_topic_conf, by topic name */
    struct coll_server_conf server;
    struct coll_groups_conf groups;
    struct coll_metrics_conf metrics;
};

/* The root of the collector's option table (collector.yaml). */
extern const struct sl_conf_section coll_conf_section;

/* The settings topic `name`'s partitions run with: built-in defaults, then topic_defaults,
 * then `created` (the configs CreateTopics gave it, topic_store.h; may be NULL), then
 * topics.<name>: the operator's file has the last word. */
void coll_conf_log_conf(const struct coll_conf *c, const struct coll_topic_conf *created,
                        const char *name, struct coll_log_conf *out);

/* The shipped conf.d/collector.yaml, compiled in; used when no file is given or installed. */
extern const char coll_conf_embedded[];

#endif
