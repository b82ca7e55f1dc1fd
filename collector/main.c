/* sluice-collector: loads the configuration, opens the data folder, serves the Kafka protocol
 * on its listeners and runs the event loop until SIGTERM/SIGINT, then drains and closes. */
#include "collector/coll_conf.h"
#include "collector/server.h"
#include "collector/storage.h"
#include "collector/topic_store.h"
#include "common/daemon.h"
#include "common/daemon_util.h"
#include "common/log.h"

#include <ev.h>
#include <stddef.h>
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
    .log_level_offset = offsetof(struct coll_conf, log_level),
};

struct coll_main {
    struct coll_conf *conf;          /* borrowed */
    const struct sl_prog_args *args; /* borrowed */
    struct coll_storage *storage;    /* owned */
    struct coll_server *server;      /* owned */
    struct coll_topic_store *topics; /* owned: the configs CreateTopics gave */
    struct coll_log_conf topic_conf; /* scratch for coll_topic_conf_for() */
    struct sl_daemon daemon;
};

/* The storage asks for a topic's settings when it opens or creates its partitions. */
static const struct coll_log_conf *coll_topic_conf_for(void *arg, const char *topic)
{
    struct coll_main *m = arg;
    coll_conf_log_conf(m->conf, coll_topic_store_get(m->topics, topic), topic, &m->topic_conf);
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
    sl_buf_printf(line, "serving %zu partitions to %zu connections; data in %s", n,
                  m->server ? coll_server_connections(m->server) : 0, m->conf->data_dir);
}

static void coll_on_drained(void *arg)
{
    struct coll_main *m = arg;
    sl_daemon_stop(&m->daemon);
}

/* SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded by
 * server.shutdown_timeout), then leave the loop; main() closes the storage cleanly. */
static void coll_stop(void *arg)
{
    struct coll_main *m = arg;
    coll_server_stop(m->server, coll_on_drained, m);
}

/* Applies a topic's reloaded settings to an open partition. Segment, retention and batch
 * limits act from the next append or retention run; fsync and fsync_interval keep their
 * running values until the collector restarts. */
static void coll_apply_topic_conf(struct coll_plog *pl, void *arg)
{
    struct coll_main *m = arg;
    struct coll_log_conf next;
    coll_conf_log_conf(m->conf, coll_topic_store_get(m->topics, pl->topic), pl->topic, &next);
    next.fsync = pl->conf.fsync;
    next.fsync_interval_ms = pl->conf.fsync_interval_ms;
    pl->conf = next;
}

/* SIGHUP: reads the configuration again and applies what can change while running: the log
 * level and the topics' storage settings. A rejected file leaves everything as it was. */
static int coll_reload(void *arg)
{
    struct coll_main *m = arg;
    struct coll_conf fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (sl_prog_load_conf(&coll_prog, m->args, &fresh) != 0)
        return -1;
    sl_prog_apply_log_level(&coll_prog, m->args, &fresh);
    m->conf->log_level = fresh.log_level;
    /* Swap the topic settings in; fresh then holds the old ones and is released with them. */
    struct coll_topic_conf defaults = m->conf->topic_defaults;
    struct sl_conf_map topics = m->conf->topics;
    m->conf->topic_defaults = fresh.topic_defaults;
    m->conf->topics = fresh.topics;
    fresh.topic_defaults = defaults;
    fresh.topics = topics;
    sl_conf_free(&coll_conf_section, &fresh);
    coll_storage_foreach(m->storage, coll_apply_topic_conf, m);
    coll_server_refresh(m->server);
    SL_NOTICE(COLL_NAME, "configuration reloaded; log level %s",
              sl_log_level_name(sl_log_threshold));
    return 0;
}

static const struct sl_daemon_ops coll_ops = {
    .stop = coll_stop,
    .reload = coll_reload,
    .status = coll_status,
};

int main(int argc, char **argv)
{
    sl_log_init();
    struct sl_prog_args args;
    struct coll_conf conf;
    memset(&conf, 0, sizeof(conf));
    int rc = sl_prog_setup(&coll_prog, argc, argv, &args, &conf);
    if (rc >= 0)
        return rc;

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
    if (coll_topic_store_open(conf.data_dir, &m.topics, &err) != 0) {
        SL_ERR(COLL_NAME, "topic configs: %s", err.msg);
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
    conf.server.groups = &conf.groups;
    if (coll_server_new(loop, &conf.server, m.storage, m.daemon.metrics, &m.server, &err) != 0) {
        SL_ERR(COLL_NAME, "server: %s", err.msg);
        goto out;
    }
    coll_server_set_topic_store(m.server, m.topics);
    coll_server_start(m.server);
    /* READY=1 only once the listeners accept. */
    sl_daemon_start(&m.daemon);
    SL_NOTICE(COLL_NAME, "%s %s started; data in %s", coll_prog.name, SL_VERSION, conf.data_dir);
    ev_run(loop, 0);
    rc = 0;
out:
    coll_server_free(m.server);
    if (m.storage) {
        coll_storage_close(m.storage);
        SL_NOTICE(COLL_NAME, "stopped");
    }
    coll_topic_store_free(m.topics);
    sl_daemon_fini(&m.daemon);
    sl_conf_free(&coll_conf_section, &conf);
    if (loop)
        ev_loop_destroy(loop);
    return rc;
}
