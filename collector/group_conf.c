/* The option table of the collector's `groups:` section (the consumer-group coordinator). */
#include "collector/group.h"

#include "common/conf.h"

#include <stddef.h>

static const struct sl_conf_opt groups_opts[] = {
    {.name = "initial_rebalance_delay",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct coll_groups_conf, initial_rebalance_delay_ms),
     .def = "3s",
     .min = 0,
     .max = 300000,
     .help = "how long an empty group waits for more members before its first generation "
             "(Kafka's group.initial.rebalance.delay.ms); each new member extends it"},
    {.name = "min_session_timeout",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct coll_groups_conf, min_session_timeout_ms),
     .def = "6s",
     .min = 1,
     .max = 3600000,
     .help = "shortest session timeout a member may ask for (group.min.session.timeout.ms)"},
    {.name = "max_session_timeout",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct coll_groups_conf, max_session_timeout_ms),
     .def = "30m",
     .min = 1,
     .max = 86400000,
     .help = "longest session timeout a member may ask for (group.max.session.timeout.ms)"},
    {.name = "max_members",
     .type = SL_CONF_INT,
     .offset = offsetof(struct coll_groups_conf, max_members),
     .def = "0",
     .min = 0,
     .max = 1000000,
     .help = "members per group (group.max.size); 0: no limit"},
    {.name = "commit_sync",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct coll_groups_conf, commit_sync),
     .def = "true",
     .help = "fdatasync committed offsets before acknowledging the commit (survives power loss; "
             "without it they survive a crash of the collector, not of the machine)"},
    {.name = "offsets_retention",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct coll_groups_conf, offsets_retention_ms),
     .def = "7d",
     .min = 60000,
     .max = 3153600000000LL,
     .help = "committed offsets of a group without members are forgotten this long after its "
             "last commit (offsets.retention.minutes)"},
    {.name = NULL},
};

static void groups_check(void *obj, struct sl_conf_check *chk)
{
    const struct coll_groups_conf *c = obj;
    if (c->min_session_timeout_ms > c->max_session_timeout_ms)
        sl_conf_check_error(chk, "min_session_timeout",
                            "min_session_timeout (%lld ms) is above max_session_timeout (%lld ms)",
                            (long long)c->min_session_timeout_ms,
                            (long long)c->max_session_timeout_ms);
}

const struct sl_conf_section coll_groups_conf_section = {
    .name = "groups",
    .help = "the consumer-group coordinator and committed offsets",
    .opts = groups_opts,
    .size = sizeof(struct coll_groups_conf),
    .check = groups_check,
};
