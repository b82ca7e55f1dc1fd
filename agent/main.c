/* sluice-agent: loads the configuration, prepares the state folder and runs the shipper's
 * event loop until SIGTERM/SIGINT. */
#include "agent/agent_conf.h"
#include "agent/shipper.h"
#include "common/daemon.h"
#include "common/daemon_util.h"
#include "common/log.h"

#include <ev.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define AGENT_NAME "agent"

static const struct sl_prog agent_prog = {
    .name = "sluice-agent",
    .summary = "The Sluice agent: ships this host's log files and journal to collectors.",
    .conf_path = "/etc/sluice/agent.yaml",
    .embedded = agent_conf_embedded,
    .embedded_name = "<embedded agent.yaml>",
    .root = &agent_conf_section,
    .log_level_offset = offsetof(struct agent_conf, log_level),
};

struct agent_main {
    struct agent_conf *conf;         /* borrowed */
    const struct sl_prog_args *args; /* borrowed */
    char hostname[256];
    struct sl_daemon daemon;
    struct agent_shipper *shipper;
};

static void agent_status(void *arg, struct sl_buf *line)
{
    struct agent_main *m = arg;
    if (m->shipper)
        agent_shipper_status(m->shipper, line);
    else
        sl_buf_printf(line, "running as host %s; state in %s", m->hostname, m->conf->state_dir);
}

/* The drain finished (every batch acknowledged, or shutdown_timeout passed). */
static void agent_on_drained(void *arg)
{
    struct agent_main *m = arg;
    sl_daemon_stop(&m->daemon);
}

/* SIGTERM/SIGINT: stop reading, flush, wait for the last acknowledgements, then stop. */
static void agent_stop(void *arg)
{
    struct agent_main *m = arg;
    SL_NOTICE(AGENT_NAME, "stopping: flushing and waiting for acknowledgements");
    agent_shipper_drain(m->shipper, agent_on_drained, m);
}

/* SIGHUP: reads the configuration again and applies what can change while running (the log
 * level); a rejected file leaves everything as it was. */
static int agent_reload(void *arg)
{
    struct agent_main *m = arg;
    struct agent_conf fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (sl_prog_load_conf(&agent_prog, m->args, &fresh) != 0)
        return -1;
    struct sl_err err = {{0}};
    if (agent_shipper_reload(m->shipper, &fresh.shipper, &err) != 0) {
        SL_ERR(AGENT_NAME, "reload: %s; keeping the running sources", err.msg);
        sl_conf_free(&agent_conf_section, &fresh);
        return -1;
    }
    sl_prog_apply_log_level(&agent_prog, m->args, &fresh);
    m->conf->log_level = fresh.log_level;
    sl_conf_free(&agent_conf_section, &fresh);
    SL_NOTICE(AGENT_NAME, "configuration reloaded; log level %s",
              sl_log_level_name(sl_log_threshold));
    return 0;
}

static const struct sl_daemon_ops agent_ops = {
    .stop = agent_stop,
    .reload = agent_reload,
    .status = agent_status,
};

int main(int argc, char **argv)
{
    sl_log_init();
    struct sl_prog_args args;
    struct agent_conf conf;
    memset(&conf, 0, sizeof(conf));
    int rc = sl_prog_setup(&agent_prog, argc, argv, &args, &conf);
    if (rc >= 0)
        return rc;

    rc = 1;
    struct sl_err err = {{0}};
    struct agent_main m = {.conf = &conf, .args = &args};
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        SL_ERR(AGENT_NAME, "cannot create the event loop");
        goto out;
    }
    if (conf.hostname)
        snprintf(m.hostname, sizeof(m.hostname), "%s", conf.hostname);
    else if (gethostname(m.hostname, sizeof(m.hostname) - 1) != 0)
        snprintf(m.hostname, sizeof(m.hostname), "localhost");
    if (sl_mkdir_p(conf.state_dir, &err) != 0) {
        SL_ERR(AGENT_NAME, "state_dir %s", err.msg);
        goto out;
    }
    char listen[300];
    sl_hostport_format(&conf.metrics.listen, listen, sizeof(listen));
    if (sl_daemon_init(&m.daemon, loop, AGENT_NAME, conf.metrics.enabled ? listen : NULL,
                       &agent_ops, &m, &err) != 0) {
        SL_ERR(AGENT_NAME, "%s", err.msg);
        goto out;
    }
    if (agent_shipper_new(loop, &conf.shipper, m.hostname, conf.state_dir, m.daemon.metrics,
                          &m.shipper, &err) != 0 ||
        agent_shipper_start(m.shipper, &err) != 0) {
        SL_ERR(AGENT_NAME, "%s", err.msg);
        goto out;
    }
    sl_daemon_start(&m.daemon);
    SL_NOTICE(AGENT_NAME, "%s %s started as host %s", agent_prog.name, SL_VERSION, m.hostname);
    ev_run(loop, 0);
    SL_NOTICE(AGENT_NAME, "stopped");
    rc = 0;
out:
    agent_shipper_free(m.shipper); /* writes the final checkpoints */
    sl_daemon_fini(&m.daemon);
    sl_conf_free(&agent_conf_section, &conf);
    if (loop)
        ev_loop_destroy(loop);
    return rc;
}
