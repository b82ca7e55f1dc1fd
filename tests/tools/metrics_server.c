/* Test helper: serves a small fixed metrics registry over HTTP, prints the bound port on stdout,
 * and exits cleanly on SIGTERM or SIGINT.
 *
 *   sl-test-metrics_server [--listen ADDR] [--unhealthy-if PATH]
 *
 * ADDR defaults to 127.0.0.1:0. With --unhealthy-if, /health answers 503 "PATH exists\n" while
 * PATH exists, 200 "ok\n" otherwise, so a test can flip health without signals or sleeps. */
#include "common/err.h"
#include "common/http.h"
#include "common/log.h"
#include "common/metrics.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *unhealthy_path;

static int health(void *arg, struct sl_buf *body)
{
    if (unhealthy_path && access(unhealthy_path, F_OK) == 0) {
        sl_buf_printf(body, "%s exists\n", unhealthy_path);
        return 503;
    }
    return 200;
}

static double fixed_bytes(void *arg)
{
    return 42.5;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static int build(struct sl_metrics *reg, struct sl_err *err)
{
    struct sl_metric *m = NULL;
    const struct sl_metric_label produce[] = {{"api", "Produce"}};
    const struct sl_metric_label fetch[] = {{"api", "Fetch"}};
    const struct sl_metric_label topic[] = {{"topic", "a\"b\\c"}};
    const double bounds[] = {0.01, 0.1, 1};
    int rc;
    if ((rc = sl_metrics_add_counter(reg, "sl_test_requests_total", "Requests by API.", produce, 1,
                                     &m, err)) < 0)
        return rc;
    sl_metric_add(m, 7);
    if ((rc = sl_metrics_add_counter(reg, "sl_test_requests_total", "Requests by API.", fetch, 1,
                                     &m, err)) < 0)
        return rc;
    sl_metric_add(m, 2);
    if ((rc = sl_metrics_add_gauge(reg, "sl_test_connections", "Open connections.", NULL, 0, &m,
                                   err)) < 0)
        return rc;
    sl_metric_set(m, 3);
    if ((rc = sl_metrics_add_gauge_fn(reg, "sl_test_log_bytes", "Bytes in the log.", topic, 1,
                                      fixed_bytes, NULL, &m, err)) < 0)
        return rc;
    if ((rc = sl_metrics_add_histogram(reg, "sl_test_latency_seconds", "Latency.", NULL, 0, bounds,
                                       3, &m, err)) < 0)
        return rc;
    sl_metric_observe(m, 0.01);
    sl_metric_observe(m, 0.5);
    sl_metric_observe(m, 3);
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--unhealthy-if") == 0 && i + 1 < argc) {
            unhealthy_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--listen ADDR] [--unhealthy-if PATH]\n", argv[0]);
            return 2;
        }
    }
    sl_log_init();
    struct ev_loop *loop = ev_default_loop(0);
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_http *srv = NULL;
    struct sl_err err = {{0}};
    int status = 1;
    if (!loop || !reg) {
        fprintf(stderr, "metrics_server: out of memory\n");
        goto out;
    }
    if (build(reg, &err) < 0)
        goto fail;
    struct sl_http_config cfg = {
        .listen = listen,
        .metrics = reg,
        .health = health,
        .idle_timeout = 5,
        .name = "metrics_server",
    };
    if (sl_http_new(loop, &cfg, &srv, &err) < 0)
        goto fail;
    sl_http_start(srv);

    ev_signal sigterm;
    ev_signal sigint;
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);

    printf("%d\n", sl_http_port(srv));
    fflush(stdout);
    ev_run(loop, 0);

    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    status = 0;
    goto out;
fail:
    fprintf(stderr, "metrics_server: %s\n", err.msg);
out:
    sl_http_free(srv);
    sl_metrics_free(reg);
    return status;
}
