/* What sluice-collector and sluice-agent share around their own work: command-line options,
 * configuration loading with drop-ins and --set overrides, signals, sd_notify, the watchdog,
 * and the /metrics + /health endpoint with process metrics. */
#ifndef SL_COMMON_DAEMON_H
#define SL_COMMON_DAEMON_H

#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/http.h"
#include "common/metrics.h"

#include <ev.h>
#include <stdbool.h>

/* The log levels as a config enum (emerg .. debug), for every program's `log_level`. */
extern const struct sl_conf_enum sl_daemon_log_levels[];

/* What a program tells the argument parser about itself. */
struct sl_prog {
    const char *name;                   /* "sluice-collector" */
    const char *summary;                /* one line for --help */
    const char *conf_path;              /* default config file, e.g. "/etc/sluice/collector.yaml" */
    const char *embedded;               /* the embedded default configuration (YAML text) */
    const char *embedded_name;          /* how errors name it, e.g. "<embedded collector.yaml>" */
    const struct sl_conf_section *root; /* the program's option table */
    size_t log_level_offset;            /* offsetof the root struct's `int log_level` */
};

#define SL_PROG_MAX_SETS 32

/* The parsed command line. */
struct sl_prog_args {
    const char *conf_path; /* borrowed from argv; NULL: conf_path if it exists, else embedded */
    bool check_config;
    const char *sets[SL_PROG_MAX_SETS]; /* borrowed "key=value" strings, in order */
    size_t nsets;
    const char *log_level; /* borrowed; NULL: the config's */
};

/*
 * Parses argv: -c/--config FILE, --check-config, --set KEY=VALUE (repeatable; KEY dotted for
 * nested sections, VALUE is YAML), --log-level LEVEL, -h/--help, -V/--version.
 * Returns -1 to go on; otherwise the process exit code to use right away: 0 after printing
 * help or the version, 2 after printing a usage error to stderr.
 */
int sl_prog_parse_args(const struct sl_prog *prog, int argc, char **argv,
                       struct sl_prog_args *args);

/*
 * Loads the configuration into conf (zeroed by the caller) through prog->root: the file given
 * with -c (or prog->conf_path when it exists, or the embedded default) with its drop-ins, then
 * each --set in order. Prints every error compiler-style to stderr. Returns 0, or 1 (the exit
 * code) when the configuration was rejected; conf then holds nothing.
 */
int sl_prog_load_conf(const struct sl_prog *prog, const struct sl_prog_args *args, void *conf);

/*
 * What every program's main() does first: parses argv, loads the configuration into conf
 * (zeroed by the caller), answers --check-config, and applies the log level (--log-level over
 * the configuration's). Returns -1 when the program should go on (conf then owns memory that
 * sl_conf_free() releases), or the exit code to return right away (conf holds nothing).
 */
int sl_prog_setup(const struct sl_prog *prog, int argc, char **argv, struct sl_prog_args *args,
                  void *conf);

/* Sets the log level from a (re)loaded configuration, unless --log-level pinned it. */
void sl_prog_apply_log_level(const struct sl_prog *prog, const struct sl_prog_args *args,
                             const void *conf);

/* Called by struct sl_daemon on signals. Each is optional. */
struct sl_daemon_ops {
    /* SIGTERM/SIGINT: begin a graceful stop, then call sl_daemon_stop(). NULL: stop at once. */
    void (*stop)(void *arg);
    /* SIGHUP: reload what can be reloaded; returns 0 or an error already logged. */
    int (*reload)(void *arg);
    /* Appends a one-line status (sd_notify STATUS=, every few seconds). */
    void (*status)(void *arg, struct sl_buf *line);
};

struct sl_daemon {
    struct ev_loop *loop;            /* borrowed */
    const char *name;                /* borrowed, log prefix */
    struct sl_metrics *metrics;      /* owned */
    struct sl_http *http;            /* owned; NULL when metrics are disabled */
    const struct sl_daemon_ops *ops; /* borrowed */
    void *arg;                       /* borrowed, passed to ops */
    ev_signal sigint, sigterm, sighup;
    ev_timer watchdog; /* WATCHDOG=1 at half of WATCHDOG_USEC */
    ev_timer status;   /* STATUS= refresh */
    double started;    /* wall clock, seconds */
    bool stopping;
};

/*
 * Initializes d on loop: creates the metrics registry with the process metrics
 * (sluice_build_info, sluice_process_start_time_seconds, sluice_process_resident_memory_bytes,
 * sluice_process_open_fds) and, when metrics_listen is non-NULL, binds the HTTP endpoint there
 * (so a bad address fails here, before anything runs). Returns 0 or a negative code with err
 * set; d is then safe to sl_daemon_fini().
 */
int sl_daemon_init(struct sl_daemon *d, struct ev_loop *loop, const char *name,
                   const char *metrics_listen, const struct sl_daemon_ops *ops, void *arg,
                   struct sl_err *err);

/* Arms the signal watchers, the watchdog and status timers and the HTTP endpoint, then tells
 * systemd READY=1. Call once the program's own work is set up. */
void sl_daemon_start(struct sl_daemon *d);

/* Ends the run: sends STOPPING=1 (once), stops d's timers and HTTP endpoint and breaks the
 * loop. Signals stay caught (and ignored) until sl_daemon_fini(), so call that last. */
void sl_daemon_stop(struct sl_daemon *d);

/* Stops and releases everything d owns, and from then on ignores SIGINT, SIGTERM and SIGHUP:
 * call it last, on the way out. NULL-safe, and safe after a failed init. */
void sl_daemon_fini(struct sl_daemon *d);

/* The port the HTTP endpoint is bound to, or 0 when disabled. */
int sl_daemon_http_port(const struct sl_daemon *d);

#endif
