/* `sluice sink CONFIG.yaml`: a consumer-group member that loads its partitions into a warehouse
 * through a backend (sink_files.c: Hive-partitioned gzip JSON lines; sink_pg.c: PostgreSQL),
 * and what the driver (sink.c) shares with the backends: configuration, per-partition state,
 * and the dead-letter file (sink_dead.c). Values are read with common/json_read.h. */
#ifndef SL_CLI_SINK_H
#define SL_CLI_SINK_H

#include "collector/cli/cli.h"
#include "common/batch.h"
#include "common/conf.h"
#include "common/json_read.h"
#include "common/metrics.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * How the driver and a backend divide the work (one thread, blocking calls):
 *
 *   join group ─> assign(p) for each partition ──> start = backend's own position, or the
 *        ^          (fence, discard leftovers)       group's committed offset, or `start`
 *        |                         |
 *        |     ┌───────────────────v──────────────────────────────────────────────┐
 *        |     │ fetch round (long poll) ─> write(p, record) for each record       │
 *        |     │ flush(force=false): the backend makes what is due durable and     │
 *        |     │   moves p->durable; the driver then commits p->durable to the     │
 *        |     │   group, and retries that commit before calling flush again       │
 *        |     │ destination error: abort(p) all, rewind to p->durable, back off   │
 *        |     └──────────────────────────────────────────────────────────────────┘
 *        |                         | heartbeat/commit says rebalance, or SIGTERM
 *        +── revoke(p) all <── flush(force=true) + commit (a drain)
 *
 * Backpressure is the single thread: nothing is fetched while a flush, a retry or a backoff
 * runs, so memory stays bounded by one fetch answer plus what the backend buffers.
 */

struct sink;

/* One assigned partition, owned by the driver; the backend keeps its state in priv. */
struct sink_part {
    char *topic; /* owned */
    int32_t partition;
    int64_t durable;   /* next offset not yet durable at the destination */
    int64_t committed; /* last position committed to the group (at assignment: the start) */
    int64_t refetch;   /* set by the driver when write said SINK_FULL, else -1 */
    void *priv;        /* the backend's, set by assign and freed by revoke */
};

/* What each backend provides. Every call happens on the driver's thread. */
struct sink_backend {
    const char *name;                      /* the `type:` value */
    const struct sl_conf_section *section; /* its options, beside the common ones */
    /* Prepares the backend for the process. Returns 0 or an error with err set. */
    int (*open)(struct sink *s, void *conf, void **state, struct sl_err *err);
    /* Releases what open made (after every partition was revoked). NULL-safe state. */
    void (*close)(void *state);
    /* Takes partition p: fences other writers, discards what a crashed owner left, and sets
     * *start to where reading must resume, or -1 to use the group's committed offset. Returns
     * 0; -EAGAIN when another process still holds p (the driver retries); or an error. */
    int (*assign)(void *state, struct sink_part *p, int64_t *start, struct sl_err *err);
    /* Discards what was written for p but is not durable (p->durable is where it resumes). */
    void (*abort)(void *state, struct sink_part *p);
    /* abort, then gives p up (fence released, p->priv freed). */
    void (*revoke)(void *state, struct sink_part *p);
    /* One record of p (offset order). Records the destination cannot take go to the dead-letter
     * file (sink_dead_letter). Returns 0; SINK_FULL when p must be flushed before it can take
     * this record (not written: the driver ends the fetch round, flushes and fetches it again);
     * or a destination error: the driver aborts and retries. */
    int (*write)(void *state, struct sink_part *p, const struct sl_batch_record *rec,
                 struct sl_err *err);
    /* Makes due data durable (all open data when force is set), and for each partition of
     * parts[0..n) sets p->durable past what became durable. Returns 0 or a destination error
     * (partitions may then be partly advanced; the rest is aborted by the driver). */
    int (*flush)(void *state, struct sink_part *parts, size_t n, bool force, struct sl_err *err);
    /* Milliseconds from now until flush has something due (0: already), or -1 when nothing
     * is waiting: the driver's long poll lasts no longer, so data is durable on time even
     * when the topic goes quiet. */
    int64_t (*due_in)(void *state, const struct sink_part *parts, size_t n, int64_t now);
    /* True when durability depends on the group commit (files: a partition's next files may
     * not be renamed before the previous ones are committed); false when the destination
     * stores its own positions (postgres: the group commit only feeds lag tools). */
    bool commit_gates_flush;
};

/* write's answer for "flush first" (a positive code, never an error). */
#define SINK_FULL 1

extern const struct sink_backend sink_files_backend;
extern const struct sink_backend sink_pg_backend;
/* Their option tables, the variants of `type:`. */
extern const struct sl_conf_section sink_files_section;
extern const struct sl_conf_section sink_pg_section;

/* The common options of a sink configuration; the backend's follow in `backend`. */
struct sink_conf {
    char *group;                   /* owned */
    struct sl_conf_list topics;    /* owned */
    struct sl_conf_hostports boot; /* owned; empty: sluice's -b / $SLUICE_BOOTSTRAP */
    char *client_id;               /* owned */
    int64_t timeout_ms;
    int start;    /* SINK_START_* */
    int assignor; /* enum kc_assignor */
    int64_t session_ms, rebalance_ms;
    int64_t fetch_wait_ms, fetch_max_bytes;
    int64_t backoff_ms, backoff_max_ms;
    char *dead_letter;    /* owned; NULL: $STATE_DIRECTORY/dead-letter.jsonl, or none */
    char *metrics_listen; /* owned; NULL: no /metrics */
    int log_level;
    struct sl_conf_variant backend; /* the `type:` chosen and its options */
};

enum { SINK_START_EARLIEST, SINK_START_LATEST };

/* The root option table of a sink configuration (type: files | postgres). */
extern const struct sl_conf_section sink_conf_section;

/* The metrics every backend updates (NULL-safe handles: a sink without /metrics has NULLs). */
struct sink_metrics {
    struct sl_metric *records;    /* records written to the destination (before durability) */
    struct sl_metric *durable;    /* records made durable */
    struct sl_metric *bytes;      /* bytes written to the destination */
    struct sl_metric *dead;       /* records sent to the dead-letter file */
    struct sl_metric *errors;     /* destination errors (each followed by a retry) */
    struct sl_metric *flushes;    /* flushes that made something durable (files, transactions) */
    struct sl_metric *flush_secs; /* histogram: time a flush took */
    struct sl_metric *commits;    /* group commits */
    struct sl_metric *rebalances; /* joins after the first */
    struct sl_metric *backoff;    /* seconds spent backing off */
};

/* Set by sink.c for the backends. */
struct sink {
    const struct sink_conf *conf; /* borrowed */
    const char *name;             /* log prefix: "sink#NAME", NAME from the config file */
    struct sink_metrics m;
    struct sink_dead *dead; /* owned; NULL: bad records are only counted and logged */
};

/* Runs `sluice sink [--log-level L] CONFIG.yaml`; returns the exit code. */
int cmd_sink(struct cli *c, int argc, char **argv);

/* ---- Dead letters (sink_dead.c) ----------------------------------------------------------- */

/*
 * A JSON-lines file of records a destination could not take, one object per record:
 *   {"time":"<when>","topic":"t","partition":0,"offset":42,"timestamp":<ms>,
 *    "error":"<why>","key":<string|null>,"value":<string|null>}
 * Appended with O_APPEND (several sink processes may share it) and fsynced before the offsets
 * past the records are committed, so a dead letter is never lost. A crash before that commit
 * replays the record, but before appending the file's new lines are read and an entry whose
 * (topic, partition, offset) is already there is not appended again: one line per record (see
 * sink_dead.c for the limits).
 */
struct sink_dead;

/* Opens (creating, mode 0640) path for appending. Returns 0 and *out, or -errno with err. */
int sink_dead_open(const char *path, struct sink_dead **out, struct sl_err *err);
/* Appends one record with the reason. Returns 0 or -errno / -ENOMEM (err set). */
int sink_dead_write(struct sink_dead *d, const char *topic, int32_t partition,
                    const struct sl_batch_record *rec, const char *why, struct sl_err *err);
/* fsyncs what was appended since the last sync. Returns 0 or -errno. NULL-safe (0). */
int sink_dead_sync(struct sink_dead *d, struct sl_err *err);
/* Reopens the file by name (after logrotate moved it). Returns 0 or -errno. */
int sink_dead_reopen(struct sink_dead *d, struct sl_err *err);
/* Syncs, closes and frees; NULL-safe. */
void sink_dead_free(struct sink_dead *d);

/* Sends rec to the sink's dead-letter file (or, without one, logs it) and counts it. Returns
 * 0, or the file's error (a destination error: the driver retries). */
int sink_dead_letter(struct sink *s, const char *topic, int32_t partition,
                     const struct sl_batch_record *rec, const char *why, struct sl_err *err);

#endif
