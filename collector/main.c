/* sluice-collector: loads the configuration, prepares the data folder and runs the broker's
 * event loop until SIGTERM/SIGINT. */
#include "collector/coll_conf.h"
#include "collector/storage.h"
#include "common/daemon.h"
#include "common/daemon_util.h"
#include "common/log.h"

#include <ev.h>
#include <stdio.h>
#include <string.h>

#define COLL_NAME "collector"

static const struct sl_prog coll_prog = {
    .name = "sluice-collector",
    .summary = "The Sluice broker: keeps partitioned topics on disk for Kafka clients.",
    .conf_path = "/etc/sluice/collector.yaml",
    .embedded = coll_conf_embedded,
    .embedded_name = "<embedded collector.yaml>",
    .root = &coll_conf_section,
};

struct coll_main {
    struct coll_conf *conf;          /* borrowed */
    const struct sl_prog_args *args; /* borrowed */
    struct coll_storage *storage;    /* owned */
    struct coll_log_conf topic_conf; /* scratch for coll_topic_conf_for() */
    struct sl_daemon daemon;
};

/* The storage asks for a topic's settings when it opens or creates its partitions. */
static const struct coll_log_conf *coll_topic_conf_for(void *arg, const char *topic)
{
    struct coll_main *m = arg;
    coll_conf_log_conf(m->conf, topic, &m->topic_conf);
    return &m->topic_conf;
}

static void count_partition(struct coll_plog *pl, void *arg)
{
    (*(size_t *)arg)++;
}

static void coll_status(void *arg, struct sl_buf *line)
{
    struct coll_main *m = arg;
    size_t n = 0;
    coll_storage_foreach(m->storage, count_partition, &n);
    sl_buf_printf(line, "serving %zu partitions; data in %s", n, m->conf->data_dir);
}

/* SIGHUP: reads the configuration again and applies what can change while running (the log
 * level); a rejected file leaves everything as it was. */
static int coll_reload(void *arg)
{
    struct coll_main *m = arg;
    struct coll_conf fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (sl_prog_load_conf(&coll_prog, m->args, &fresh) != 0)
        return -1;
    sl_log_threshold = fresh.log_level;
    if (m->args->log_level)
        sl_log_set_level_name(m->args->log_level);
    m->conf->log_level = fresh.log_level;
    sl_conf_free(&coll_conf_section, &fresh);
    SL_NOTICE(COLL_NAME, "configuration reloaded; log level %s",
              sl_log_level_name(sl_log_threshold));
    return 0;
}

static const struct sl_daemon_ops coll_ops = {
    .reload = coll_reload,
    .status = coll_status,
};

int main(int argc, char **argv)
{
    sl_log_init();
    struct sl_prog_args args;
    int rc = sl_prog_parse_args(&coll_prog, argc, argv, &args);
    if (rc >= 0)
        return rc;
    struct coll_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (sl_prog_load_conf(&coll_prog, &args, &conf) != 0)
        return 1;
    if (args.check_config) {
        printf("%s: configuration OK\n", coll_prog.name);
        sl_conf_free(&coll_conf_section, &conf);
        return 0;
    }
    sl_log_threshold = conf.log_level;
    if (args.log_level)
        sl_log_set_level_name(args.log_level);

    rc = 1;
    struct sl_err err = {{0}};
    struct coll_main m = {.conf = &conf, .args = &args};
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        SL_ERR(COLL_NAME, "cannot create the event loop");
        goto out;
    }
    if (sl_mkdir_p(conf.data_dir, &err) != 0) {
        SL_ERR(COLL_NAME, "data_dir %s", err.msg);
        goto out;
    }
    struct coll_storage_opts so = {
        .data_dir = conf.data_dir,
        .loop = loop,
        .topic_conf = coll_topic_conf_for,
        .conf_arg = &m,
        .retention_check_ms = conf.retention_check_ms,
    };
    if (coll_storage_open(&so, &m.storage, &err) != 0) {
        SL_ERR(COLL_NAME, "data_dir %s: %s", conf.data_dir, err.msg);
        goto out;
    }
    char listen[300];
    sl_hostport_format(&conf.metrics.listen, listen, sizeof(listen));
    if (sl_daemon_init(&m.daemon, loop, COLL_NAME, conf.metrics.enabled ? listen : NULL, &coll_ops,
                       &m, &err) != 0) {
        SL_ERR(COLL_NAME, "%s", err.msg);
        goto out;
    }
    sl_daemon_start(&m.daemon);
    SL_NOTICE(COLL_NAME, "%s %s started; data in %s", coll_prog.name, SL_VERSION, conf.data_dir);
    ev_run(loop, 0);
    rc = 0;
out:
    if (m.storage) {
        coll_storage_close(m.storage);
        SL_NOTICE(COLL_NAME, "stopped");
    }
    sl_daemon_fini(&m.daemon);
    sl_conf_free(&coll_conf_section, &conf);
    if (loop)
        ev_loop_destroy(loop);
    return rc;
}
