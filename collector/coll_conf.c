/* The collector's option table: one entry per key of collector.yaml. */
#include "collector/coll_conf.h"

#include "common/daemon.h"

#include <stddef.h>
#include <string.h>

static const struct sl_conf_opt metrics_opts[] = {
    {.name = "enabled",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct coll_metrics_conf, enabled),
     .def = "true",
     .help = "serve /metrics and /health over HTTP"},
    {.name = "listen",
     .type = SL_CONF_HOSTPORT,
     .offset = offsetof(struct coll_metrics_conf, listen),
     .def = "127.0.0.1:9644",
     .port = 9644,
     .help = "address of the /metrics and /health endpoint"},
    {.name = NULL},
};

static const struct sl_conf_section metrics_section = {
    .name = "metrics",
    .help = "the Prometheus /metrics and /health HTTP endpoint",
    .opts = metrics_opts,
    .size = sizeof(struct coll_metrics_conf),
};

static const struct sl_conf_opt coll_opts[] = {
    {.name = "log_level",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct coll_conf, log_level),
     .def = "info",
     .enums = sl_daemon_log_levels,
     .help = "most verbose level logged"},
    {.name = "data_dir",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct coll_conf, data_dir),
     .def = "/var/lib/sluice",
     .min = 1,
     .max = 4096,
     .help = "folder holding every topic-partition's segments"},
    {.name = "retention_check_interval",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct coll_conf, retention_check_ms),
     .def = "5m",
     .min = 1000,
     .max = 86400000,
     .help = "how often retention looks for segments to delete"},
    {.name = "topic_defaults",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct coll_conf, topic_defaults),
     .sub = &coll_topic_section,
     .help = "storage settings of every topic without its own"},
    {.name = "topics",
     .type = SL_CONF_MAP,
     .offset = offsetof(struct coll_conf, topics),
     .sub = &coll_topic_section,
     .help = "per-topic storage settings, by topic name, over topic_defaults"},
    {.name = "server",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct coll_conf, server),
     .sub = &coll_server_conf_section,
     .help = "the Kafka protocol listeners and client limits"},
    {.name = "groups",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct coll_conf, groups),
     .sub = &coll_groups_conf_section,
     .help = "consumer groups and their committed offsets"},
    {.name = "metrics",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct coll_conf, metrics),
     .sub = &metrics_section,
     .help = "the metrics endpoint"},
    {.name = NULL},
};

/* Checks each topic's settings as they combine with topic_defaults (max_batch_bytes within
 * segment_bytes, and so on): each section parsed cleanly on its own by now. */
static void coll_check(void *obj, struct sl_conf_check *chk)
{
    struct coll_conf *c = obj;
    struct coll_log_conf lc;
    struct sl_err err;
    coll_topic_conf_resolve(&c->topic_defaults, NULL, &lc);
    if (coll_log_conf_check(&lc, &err) != 0)
        sl_conf_check_error(chk, "topic_defaults", "topic_defaults: %s", err.msg);
    for (size_t i = 0; i < c->topics.len; i++) {
        const struct coll_topic_conf *t = SL_CONF_MAP_AT(&c->topics, struct coll_topic_conf, i);
        coll_topic_conf_resolve(&c->topic_defaults, t, &lc);
        if (coll_log_conf_check(&lc, &err) != 0)
            sl_conf_check_error(chk, "topics", "topic '%s': %s", t->name, err.msg);
    }
}

const struct sl_conf_section coll_conf_section = {
    .name = "collector",
    .help = "sluice-collector",
    .opts = coll_opts,
    .size = sizeof(struct coll_conf),
    .check = coll_check,
};

void coll_conf_log_conf(const struct coll_conf *c, const struct coll_topic_conf *created,
                        const char *name, struct coll_log_conf *out)
{
    const struct coll_topic_conf *topic = NULL;
    for (size_t i = 0; i < c->topics.len && !topic; i++) {
        const struct coll_topic_conf *t = SL_CONF_MAP_AT(&c->topics, struct coll_topic_conf, i);
        if (strcmp(t->name, name) == 0)
            topic = t;
    }
    coll_topic_conf_resolve(&c->topic_defaults, created, out);
    coll_topic_conf_apply(topic, out);
}
