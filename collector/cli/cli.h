/* What the sluice commands share: the client, output mode, exit codes, signals, and the
 * output helpers of cli_out.c (JSON strings, tables, times, progress lines). */
#ifndef SL_CLI_CLI_H
#define SL_CLI_CLI_H

#include "collector/cli/kclient.h"

#include <signal.h>
#include <stdio.h>

/* Exit codes, as `sluice --help` and sluice(1) document them. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,     /* a request failed or was refused, bad data, a partial produce */
    CLI_EXIT_USAGE = 2,    /* bad command line or configuration */
    CLI_EXIT_UNREACH = 3,  /* no collector (or Kafka broker) could be reached */
    CLI_EXIT_NOTFOUND = 4, /* the topic, partition or group does not exist */
};

struct cli {
    struct kc_client cl; /* the connections */
    bool json;           /* --json: machine-readable output */
    bool out_tty;        /* stdout is a terminal */
    bool err_tty;        /* stderr is a terminal */
    bool quiet;          /* -q: no progress lines */
};

/* Set by SIGINT/SIGTERM (installed without SA_RESTART, so blocking waits end with EINTR). */
extern volatile sig_atomic_t cli_stop;

/* Installs the SIGINT/SIGTERM handlers that set cli_stop. */
void cli_signals_init(void);

/* The exit code for an error code: KC_EUNREACH 3, KC_ENOTFOUND 4, else 1 (0 for 0). */
int cli_exit_code(int rc);

/* Prints "sluice: <err>" (or the code's description when err is empty) to stderr and returns
 * cli_exit_code(rc). */
int cli_fail(int rc, const struct sl_err *err);

/* Prints "sluice <cmd>: <message>" and a hint to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The commands (cmd_<name>.c): argv[0] is the command's name, the rest its own options and
 * arguments; c is set up by main(). Each prints its output and errors and returns the exit
 * code. */
int cmd_topics(struct cli *c, int argc, char **argv);
int cmd_produce(struct cli *c, int argc, char **argv);
int cmd_consume(struct cli *c, int argc, char **argv);
int cmd_groups(struct cli *c, int argc, char **argv);

/* ---- Output helpers (cli_out.c) ----------------------------------------------------------- */

/* Appends p[0..n) as a JSON string with quotes. Valid UTF-8 is kept; control characters are
 * escaped; each byte of invalid UTF-8 becomes \u00XX (its Latin-1 reading), so any bytes give
 * valid JSON. p NULL appends null. */
void cli_json_str(struct sl_buf *b, const void *p, size_t n);

struct sl_batch_record;
/* Appends a record's key and headers as JSON text: KEY,"headers":[[K,V],...] (the caller has
 * written "key": before it), each with cli_json_str. */
void cli_json_key_headers(struct sl_buf *b, const struct sl_batch_record *rec);

/* A table printed with aligned columns (the header in capitals), or collected for JSON by the
 * caller. Cells are copied. */
struct cli_table {
    size_t ncols;
    const char *const *head; /* borrowed: ncols names */
    char **cells;            /* owned: nrows * ncols */
    size_t nrows, cap;
    int err; /* sticky -ENOMEM */
};

/* Starts an empty table with ncols columns named by head (borrowed; outlives t). */
void cli_table_init(struct cli_table *t, const char *const *head, size_t ncols);
/* Adds a row of ncols cells (printf-formatted strings, in order). Returns 0 or -ENOMEM. */
int cli_table_row(struct cli_table *t, const char *const *cells);
/* Writes the table: columns two spaces apart; numeric-looking columns right-aligned. */
void cli_table_print(const struct cli_table *t, FILE *fp);
/* Frees the cells; t may be initialised again. */
void cli_table_fini(struct cli_table *t);

/* Ends a listing command: when rc is 0, prints js (--json) or the table, or returns -ENOMEM
 * with err set when either ran out of memory. Returns rc otherwise; frees nothing. */
int cli_output(const struct cli *c, const struct cli_table *tab, const struct sl_buf *js, int rc,
               struct sl_err *err);

/* Writes ms since the epoch as "2026-11-22T10:00:00.123Z" (buf of at least 32 bytes); "-" for
 * a negative value. */
void cli_format_time(int64_t ms, char *buf, size_t size);

/*
 * Parses a point in time: RFC 3339 / ISO 8601 ("2026-11-22T10:00:00Z", with optional .fraction
 * and a Z or +hh:mm offset; without one, and for "2026-11-22 10:00" or "2026-11-22", UTC), or
 * "@<ms since the epoch>". Returns 0 with *ms set, or SL_EPARSE with err saying what is
 * accepted.
 */
int cli_parse_time(const char *s, int64_t *ms, struct sl_err *err);

/* A progress line on stderr, redrawn at most 5 times a second; nothing when disabled. */
struct cli_progress {
    bool on;
    int64_t start_ms, last_ms;
    bool drawn;
};

/* Starts the clock of a progress line; with on false, nothing is ever drawn. */
void cli_progress_init(struct cli_progress *p, bool on);
/* Redraws the line with the formatted text when due (or when force is set). */
void cli_progress_show(struct cli_progress *p, bool force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Erases the line (the final figures are the caller's to print). */
void cli_progress_end(struct cli_progress *p);

#endif
