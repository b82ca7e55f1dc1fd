/* The agent's configuration: its option table and the struct it fills. */
#ifndef SL_AGENT_AGENT_CONF_H
#define SL_AGENT_AGENT_CONF_H

#include "agent/shipper.h"
#include "common/conf.h"

#include <stdbool.h>

struct agent_metrics_conf {
    bool enabled;
    struct sl_conf_hostport listen;
};

struct agent_conf {
    int log_level;   /* SL_LOG_* */
    char *state_dir; /* owned */
    char *hostname;  /* owned; NULL: the machine's host name */
    struct agent_metrics_conf metrics;
    struct agent_shipper_conf shipper; /* sources, output, memory_limit, shutdown_timeout */
};

/* The root of the agent's option table (agent.yaml). */
extern const struct sl_conf_section agent_conf_section;

/* The shipped conf.d/agent.yaml, compiled in; used when no file is given or installed. */
extern const char agent_conf_embedded[];

#endif
