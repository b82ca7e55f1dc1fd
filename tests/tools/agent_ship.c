/* sl-test-agent_ship: runs the agent's shipping core (agent/shipper.c) from a YAML file, for
 * integration tests that need it before or beside sluice-agent: SIGTERM drains and exits 0,
 * SIGHUP reloads the sources, and "ready" on stdout says it runs. */
#include "agent/pipeline.h"
#include "agent/shipper.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/metrics.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Usage: sl-test-agent_ship CONFIG.yaml
 * CONFIG has hostname, state_dir, log_level (a syslog name) and the shipper's keys
 * (sources, output, memory_limit, shutdown_timeout), as agent.yaml will. */

struct ship_conf {
    char *hostname;
    char *state_dir;
    char *log_level;
    struct agent_shipper_conf shipper;
};

static const struct sl_conf_opt ship_opts[] = {
    {.name = "hostname",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct ship_conf, hostname),
     .def = "test-host",
     .min = 1,
     .max = 255,
     .help = "host name in records"},
    {.name = "state_dir",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct ship_conf, state_dir),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 4096,
     .help = "checkpoints"},
    {.name = "log_level",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct ship_conf, log_level),
     .def = "info",
     .min = 1,
     .max = 16,
     .help = "log level"},
    AGENT_SHIPPER_OPTS(offsetof(struct ship_conf, shipper)),
    {.name = NULL},
};

static const struct sl_conf_section ship_section = {.name = "agent_ship",
                                                    .help = "test shipper",
                                                    .opts = ship_opts,
                                                    .size = sizeof(struct ship_conf)};

struct ship {
    const char *path;
    struct ship_conf conf;
    struct agent_shipper *s;
    struct ev_loop *loop;
    ev_signal sigterm, sigint, sighup, sigusr1;
};

static void on_drained(void *arg)
{
    struct ship *sh = arg;
    ev_break(sh->loop, EVBREAK_ALL);
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct ship *sh = w->data;
    ev_signal_stop(loop, &sh->sigterm);
    ev_signal_stop(loop, &sh->sigint);
    agent_shipper_drain(sh->s, on_drained, sh);
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct ship *sh = w->data;
    struct ship_conf fresh;
    struct sl_conf_errors errs;
    struct sl_err err = {{0}};
    memset(&fresh, 0, sizeof(fresh));
    if (sl_conf_load_file(&ship_section, &fresh, sh->path, &errs) != 0) {
        sl_conf_errors_print(&errs, stderr);
        return;
    }
    if (agent_shipper_reload(sh->s, &fresh.shipper, &err) != 0)
        fprintf(stderr, "reload: %s\n", err.msg);
    sl_conf_free(&ship_section, &fresh);
    printf("reloaded\n");
    fflush(stdout);
}

static void on_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct ship *sh = w->data;
    struct agent_pipeline_stats st;
    agent_shipper_stats(sh->s, &st);
    printf("stats in=%llu acked=%llu failed=%llu memory=%zu open=%llu out=%llu\n",
           (unsigned long long)st.records_in, (unsigned long long)st.records_acked,
           (unsigned long long)st.records_failed, st.memory, (unsigned long long)st.batches_open,
           (unsigned long long)st.batches_out);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sl-test-agent_ship CONFIG.yaml\n");
        return 2;
    }
    sl_log_init();
    struct ship sh = {.path = argv[1]};
    struct sl_conf_errors errs;
    if (sl_conf_load_file(&ship_section, &sh.conf, sh.path, &errs) != 0) {
        sl_conf_errors_print(&errs, stderr);
        return 1;
    }
    sl_log_set_level_name(sh.conf.log_level);
    sh.loop = ev_default_loop(0);
    struct sl_metrics *metrics = sl_metrics_new();
    struct sl_err err = {{0}};
    int rc = 1;
    if (agent_shipper_new(sh.loop, &sh.conf.shipper, sh.conf.hostname, sh.conf.state_dir, metrics,
                          &sh.s, &err) != 0 ||
        agent_shipper_start(sh.s, &err) != 0) {
        fprintf(stderr, "agent_ship: %s\n", err.msg);
        goto out;
    }
    ev_signal_init(&sh.sigterm, on_term, SIGTERM);
    ev_signal_init(&sh.sigint, on_term, SIGINT);
    ev_signal_init(&sh.sighup, on_hup, SIGHUP);
    ev_signal_init(&sh.sigusr1, on_usr1, SIGUSR1);
    sh.sigterm.data = sh.sigint.data = sh.sighup.data = sh.sigusr1.data = &sh;
    ev_signal_start(sh.loop, &sh.sigterm);
    ev_signal_start(sh.loop, &sh.sigint);
    ev_signal_start(sh.loop, &sh.sighup);
    ev_signal_start(sh.loop, &sh.sigusr1);
    printf("ready\n");
    fflush(stdout);
    ev_run(sh.loop, 0);
    ev_signal_stop(sh.loop, &sh.sighup);
    ev_signal_stop(sh.loop, &sh.sigusr1);
    rc = 0;
out:
    agent_shipper_free(sh.s);
    sl_metrics_free(metrics);
    sl_conf_free(&ship_section, &sh.conf);
    return rc;
}
