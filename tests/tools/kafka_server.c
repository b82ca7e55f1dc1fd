/* A collector without main.c's daemon parts, for the Kafka protocol tests: storage + server on
 * one loop. Prints "PORT <port>" once listening; SIGTERM/SIGINT stop it gracefully.
 *
 *   sl-test-kafka_server --data-dir DIR [--set key=value]... [--fsync always|interval|never]
 *                        [--segment-bytes N] [--validate-records true|false]
 *                        [--metrics-out FILE] [--sync-delay-ms N]
 *
 * --set takes options of the collector's `server:` section (listeners defaults to
 * 127.0.0.1:0 here); --metrics-out writes the Prometheus text at exit; --sync-delay-ms makes
 * every fdatasync of the flusher take N ms longer (a slow disk, for Produce timeout_ms). */
#include "collector/flusher.h"
#include "collector/server.h"
#include "collector/storage.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct coll_log_conf g_log;
static struct coll_server *g_srv;
static struct ev_loop *g_loop;
static int g_stopping;
static long g_sync_delay_ms;

/* The flusher's sync hook of --sync-delay-ms (runs on the flusher thread). */
static int slow_sync(int fd)
{
    struct timespec ts = {g_sync_delay_ms / 1000, (g_sync_delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return fdatasync(fd);
}

static const struct coll_log_conf *conf_cb(void *arg, const char *topic)
{
    return &g_log;
}

static void on_stopped(void *arg)
{
    ev_break(g_loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (g_stopping++) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    coll_server_stop(g_srv, on_stopped, NULL);
}

int main(int argc, char **argv)
{
    sl_log_init();
    const char *dir = NULL, *metrics_out = NULL;
    struct sl_buf yaml;
    sl_buf_init(&yaml);
    bool have_listeners = false;
    g_log = COLL_LOG_CONF_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "%s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--data-dir") == 0) {
            dir = v;
        } else if (strcmp(a, "--sync-delay-ms") == 0) {
            g_sync_delay_ms = atol(v);
        } else if (strcmp(a, "--metrics-out") == 0) {
            metrics_out = v;
        } else if (strcmp(a, "--log-level") == 0) {
            sl_log_set_level_name(v);
        } else if (strcmp(a, "--validate-records") == 0) {
            g_log.validate_records = strcmp(v, "true") == 0;
        } else if (strcmp(a, "--segment-bytes") == 0) {
            g_log.segment_bytes = atoll(v);
        } else if (strcmp(a, "--fsync") == 0) {
            g_log.fsync = strcmp(v, "always") == 0  ? COLL_FSYNC_ALWAYS
                          : strcmp(v, "never") == 0 ? COLL_FSYNC_NEVER
                                                    : COLL_FSYNC_INTERVAL;
        } else if (strcmp(a, "--set") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq) {
                fprintf(stderr, "--set wants key=value\n");
                return 2;
            }
            if (strncmp(v, "listeners=", 10) == 0)
                have_listeners = true;
            sl_buf_printf(&yaml, "%.*s: %s\n", (int)(eq - v), v, eq + 1);
        } else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "--data-dir is required\n");
        return 2;
    }
    if (!have_listeners)
        sl_buf_append_str(&yaml, "listeners: [\"127.0.0.1:0\"]\n");
    struct coll_server_conf conf;
    memset(&conf, 0, sizeof(conf));
    struct sl_conf_errors errs;
    if (sl_conf_load_string(&coll_server_conf_section, &conf, "--set", (const char *)yaml.data,
                            yaml.len, &errs) != 0) {
        sl_conf_errors_print(&errs, stderr);
        return 2;
    }
    sl_buf_fini(&yaml);

    g_loop = EV_DEFAULT;
    int rc = 1;
    struct sl_err err = {{0}};
    struct sl_metrics *metrics = sl_metrics_new();
    struct coll_storage_opts so = {
        .data_dir = dir, .loop = g_loop, .topic_conf = conf_cb, .retention_check_ms = 60000};
    struct coll_storage *st = NULL;
    if (!metrics || coll_storage_open(&so, &st, &err) != 0) {
        fprintf(stderr, "storage: %s\n", err.msg);
        goto out;
    }
    if (g_sync_delay_ms > 0)
        coll_flusher_set_sync_fn(coll_storage_flusher(st), slow_sync);
    if (coll_server_new(g_loop, &conf, st, metrics, &g_srv, &err) != 0) {
        fprintf(stderr, "server: %s\n", err.msg);
        goto out;
    }
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(g_loop, &sigterm);
    ev_signal_start(g_loop, &sigint);
    coll_server_start(g_srv);
    printf("PORT %d\n", coll_server_port(g_srv, 0));
    fflush(stdout);
    ev_run(g_loop, 0);
    ev_signal_stop(g_loop, &sigterm);
    ev_signal_stop(g_loop, &sigint);
    if (metrics_out) {
        struct sl_buf out;
        sl_buf_init(&out);
        sl_metrics_render(metrics, &out);
        FILE *f = fopen(metrics_out, "w");
        if (f) {
            fwrite(out.data, 1, out.len, f);
            fclose(f);
        }
        sl_buf_fini(&out);
    }
    rc = 0;
out:
    coll_server_free(g_srv);
    coll_storage_close(st);
    sl_metrics_free(metrics);
    sl_conf_free(&coll_server_conf_section, &conf);
    return rc;
}
