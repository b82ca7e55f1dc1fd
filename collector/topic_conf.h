/* Per-topic storage settings from collector.yaml: `topic_defaults` and `topics.<name>`
 * overrides, resolved into the struct coll_log_conf a partition log runs with. */
#ifndef SL_COLLECTOR_TOPIC_CONF_H
#define SL_COLLECTOR_TOPIC_CONF_H

#include "collector/partition_log.h"
#include "common/conf.h"

/* The settings a topic section may give, in the order of the option table. */
enum coll_topic_field {
    COLL_TOPIC_SEGMENT_BYTES,
    COLL_TOPIC_SEGMENT_AGE,
    COLL_TOPIC_INDEX_INTERVAL,
    COLL_TOPIC_RETENTION,
    COLL_TOPIC_RETENTION_BYTES,
    COLL_TOPIC_FSYNC,
    COLL_TOPIC_FSYNC_INTERVAL,
    COLL_TOPIC_MAX_BATCH_BYTES,
    COLL_TOPIC_VALIDATE_RECORDS,
    COLL_TOPIC_NFIELDS,
};

/*
 * One topic section. Every option is optional and kept as text, so "not given" (inherit from
 * topic_defaults, then from the built-in defaults) differs from any value; the section's check
 * hook parses each given value into `parsed` and reports bad ones at their line.
 */
struct coll_topic_conf {
    char *name;                       /* owned; the map key, NULL for topic_defaults */
    char *text[COLL_TOPIC_NFIELDS];   /* owned; NULL when not given */
    unsigned given;                   /* bit f set: text[f] was given and parsed */
    struct coll_log_conf parsed;      /* the given fields, parsed */
};

/* The section for `topic_defaults` and for each entry of `topics`. */
extern const struct sl_conf_section coll_topic_section;

/* Starts from COLL_LOG_CONF_DEFAULT, applies defaults' given fields, then topic's (either may
 * be NULL), into out. Does not check the combination: see coll_log_conf_check(). */
void coll_topic_conf_resolve(const struct coll_topic_conf *defaults,
                             const struct coll_topic_conf *topic, struct coll_log_conf *out);

/* Applies t's given fields over out (t may be NULL). */
void coll_topic_conf_apply(const struct coll_topic_conf *t, struct coll_log_conf *out);

#endif
