/* The agent's option table: one entry per key of agent.yaml. */
#include "agent/agent_conf.h"

#include "common/daemon.h"

#include <stddef.h>

static const struct sl_conf_opt metrics_opts[] = {
    {.name = "enabled",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct agent_metrics_conf, enabled),
     .def = "true",
     .help = "serve /metrics and /health over HTTP"},
    {.name = "listen",
     .type = SL_CONF_HOSTPORT,
     .offset = offsetof(struct agent_metrics_conf, listen),
     .def = "127.0.0.1:2020",
     .port = 2020,
     .help = "address of the /metrics and /health endpoint"},
    {.name = NULL},
};

static const struct sl_conf_section metrics_section = {
    .name = "metrics",
    .help = "the Prometheus /metrics and /health HTTP endpoint",
    .opts = metrics_opts,
    .size = sizeof(struct agent_metrics_conf),
};

static const struct sl_conf_opt agent_opts[] = {
    {.name = "log_level",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct agent_conf, log_level),
     .def = "info",
     .enums = sl_daemon_log_levels,
     .help = "most verbose level logged"},
    {.name = "state_dir",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct agent_conf, state_dir),
     .def = "/var/lib/sluice-agent",
     .min = 1,
     .max = 4096,
     .help = "folder for checkpoints (read positions of files and the journal)"},
    {.name = "hostname",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct agent_conf, hostname),
     .min = 1,
     .max = 255,
     .help = "host name put in every record (default: this machine's)"},
    {.name = "metrics",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct agent_conf, metrics),
     .sub = &metrics_section,
     .help = "the metrics endpoint"},
    AGENT_SHIPPER_OPTS(offsetof(struct agent_conf, shipper)),
    {.name = NULL},
};

const struct sl_conf_section agent_conf_section = {
    .name = "agent",
    .help = "sluice-agent",
    .opts = agent_opts,
    .size = sizeof(struct agent_conf),
};
