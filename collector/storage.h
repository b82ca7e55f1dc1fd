/* The collector's data directory: every partition log, the flusher, retention, clean shutdown. */
#ifndef SL_COLLECTOR_STORAGE_H
#define SL_COLLECTOR_STORAGE_H

#include "collector/partition_log.h"
#include "common/err.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

struct coll_storage;

struct coll_storage_opts {
    const char *data_dir; /* borrowed; created when missing */
    struct ev_loop *loop; /* borrowed */
    /* Wall clock in ms since the epoch; NULL: CLOCK_REALTIME. Tests inject their own. */
    int64_t (*now_ms)(void *arg);
    void *clock_arg;
    /* Settings for a topic's partitions found on disk or created; NULL (or a NULL result):
     * defaults. The result is copied. */
    const struct coll_log_conf *(*topic_conf)(void *arg, const char *topic);
    void *conf_arg;
    int64_t retention_check_ms; /* period of the retention timer; 0: no timer */
};

/*
 * Opens data_dir (locking it with flock against a second collector), starts the flusher thread
 * and opens every "<topic>-<partition>" directory in it. Without the clean-shutdown marker the
 * partitions are recovered (see partition_log.h). A partition that fails to open is logged and
 * left offline; the others are served. Removes leftovers of interrupted topic deletions.
 * Returns 0 with *out, or -errno / -ENOMEM (data_dir unusable, locked, thread failure).
 */
int coll_storage_open(const struct coll_storage_opts *opts, struct coll_storage **out,
                      struct sl_err *err);

/*
 * Closes every partition cleanly (sync, recovery points) and, when all of them closed cleanly,
 * writes the clean-shutdown marker. Stops its watchers and thread. NULL-safe.
 */
void coll_storage_close(struct coll_storage *st);

/* The data directory (the committed offsets of consumer groups live there too). */
const char *coll_storage_dir(const struct coll_storage *st);

/* True when the last run ended with a clean shutdown (the marker was found). */
bool coll_storage_was_clean(const struct coll_storage *st);

/* The open partition log, or NULL (unknown or offline). */
struct coll_plog *coll_storage_get(struct coll_storage *st, const char *topic, int32_t partition);

/* True when the partition exists on disk but failed to open (KAFKA_STORAGE_ERROR to clients). */
bool coll_storage_offline(struct coll_storage *st, const char *topic, int32_t partition);

/*
 * Creates the partition's directory and log with conf (NULL: the topic_conf callback's). The
 * topic name is checked first (-EINVAL, never a path otherwise). Returns 0 with *out (may be
 * NULL), -EEXIST when it exists, SL_ECONFIG for bad conf, or -errno.
 */
int coll_storage_create(struct coll_storage *st, const char *topic, int32_t partition,
                        const struct coll_log_conf *conf, struct coll_plog **out,
                        struct sl_err *err);

/* Deletes a partition and its files (renamed away first, so a crash never leaves half a
 * partition behind). Returns 0, -ENOENT, or -errno. */
int coll_storage_delete(struct coll_storage *st, const char *topic, int32_t partition,
                        struct sl_err *err);

/* Runs retention on every partition now (the timer does the same). Returns the segments
 * deleted in all. */
int coll_storage_retain(struct coll_storage *st);

/* Calls fn for each open partition (fn must not create or delete partitions). */
void coll_storage_foreach(struct coll_storage *st, void (*fn)(struct coll_plog *pl, void *arg),
                          void *arg);

/* The flusher (tests use its fault hook). */
struct coll_flusher *coll_storage_flusher(struct coll_storage *st);

#define COLL_CLEAN_SHUTDOWN_FILE ".clean-shutdown"
#define COLL_LOCK_FILE ".lock"

#endif
