/* Committed consumer-group offsets: an in-memory table kept durable in a log file of its own
 * (<data_dir>/.group-offsets.log), restored at start and compacted as it grows. */
#ifndef SL_COLLECTOR_GROUP_OFFSETS_H
#define SL_COLLECTOR_GROUP_OFFSETS_H

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What is stored per (group, topic, partition) is what Kafka's OffsetCommit carries: the
 * offset, the leader epoch (-1: none), a nullable metadata string and the commit timestamp.
 *
 * Usage on the loop thread (nothing here is thread-safe; one thread owns a store):
 *
 *   OffsetCommit request:  coll_goff_put() per partition    staged, visible to get() at once
 *                          coll_goff_flush(g, sync)         one write() (+ fdatasync) per request
 *                          answer                           only after flush returned 0
 *   OffsetFetch:           coll_goff_get() / coll_goff_foreach()
 *   DeleteTopics:          coll_goff_delete_topic()         durable before it returns
 *   group expiry:          coll_goff_delete_group() / coll_goff_expire()
 *
 * When a flush fails, every put staged since the previous flush is rolled back: the table then
 * holds exactly what the file holds, and the caller answers those partitions with an error
 * (KAFKA_STORAGE_ERROR or UNKNOWN_SERVER_ERROR); the client retries its commit.
 */

/* The file's name inside data_dir; the storage scanner skips names that start with '.'. */
#define COLL_GOFF_FILE ".group-offsets.log"
/* Longest group id and topic name accepted, in bytes (Kafka's STRING length is an int16). */
#define COLL_GOFF_NAME_MAX 32767
/* Longest metadata accepted, in bytes: Kafka's offset.metadata.max.bytes default. */
#define COLL_GOFF_METADATA_MAX 4096
/* The file is compacted once it is at least this large and twice the live set (default). */
#define COLL_GOFF_COMPACT_MIN_DEFAULT ((uint64_t)8 << 20)

/* Returned by coll_goff_put for metadata over COLL_GOFF_METADATA_MAX: the caller answers that
 * partition with Kafka's OFFSET_METADATA_TOO_LARGE (12). Outside -errno and the SL_E* range. */
#define COLL_GOFF_EMETADATA (-20101)

struct coll_goff;

struct coll_goff_opts {
    /* Compact only once the file reaches this size (and is over twice the live set);
     * 0: COLL_GOFF_COMPACT_MIN_DEFAULT. Tests set it small. */
    uint64_t compact_min_bytes;
};

/* One committed offset, as get() and foreach() hand it out. The strings are borrowed from the
 * store and stay valid until the next call that changes it (put, flush, delete_*, expire,
 * compact, close). */
struct coll_goff_entry {
    const char *group; /* borrowed */
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch; /* -1: none */
    const char *metadata; /* borrowed; NULL when committed as null ("" is kept apart) */
    int64_t commit_ts_ms;
};

struct coll_goff_stats {
    size_t entries;           /* committed offsets held, staged ones included */
    size_t groups;            /* distinct groups with at least one committed offset */
    uint64_t file_bytes;      /* the file's length (staged records not yet written excluded) */
    uint64_t live_bytes;      /* what a compacted file holding the table would measure */
    uint64_t staged_bytes;    /* records put but not flushed yet */
    uint64_t compactions;     /* since open, the one at open included */
    uint64_t truncated_bytes; /* dropped at open after a torn or corrupt record (0: none) */
};

/*
 * Opens (creating it when missing) <data_dir>/.group-offsets.log and loads every record into
 * the table. The first torn or corrupt record (short, bad length, bad CRC, malformed body) ends
 * the load: a warning names the file and the byte offset, and the file is cut there, so a crash
 * in the middle of a write never loses earlier commits nor prevents startup. A leftover
 * compaction temp file is removed; a file much larger than its live set is compacted. opts may
 * be NULL (defaults). Returns 0 with *out (free it with coll_goff_close), or -ENOMEM, -errno
 * from the file system (err names the path), SL_ECORRUPT when the file is not a group-offsets
 * file at all (left untouched), SL_EUNSUP for a file of a newer format version.
 */
int coll_goff_open(const char *data_dir, const struct coll_goff_opts *opts, struct coll_goff **out,
                   struct sl_err *err);

/* Flushes and syncs what is staged (a failure is logged, and those puts are lost as a failed
 * flush loses them), then frees the store. NULL-safe. */
void coll_goff_close(struct coll_goff *g);

/*
 * Stages one commit: the table changes at once (get() sees it) and its record is appended to
 * the write buffer; nothing reaches the file until coll_goff_flush. metadata may be NULL (kept
 * apart from ""). Returns 0; -EINVAL for a NULL name or a negative partition; SL_ETOOBIG for a
 * group or topic over COLL_GOFF_NAME_MAX bytes; COLL_GOFF_EMETADATA for metadata over
 * COLL_GOFF_METADATA_MAX bytes; -ENOMEM. On any error nothing changed.
 */
int coll_goff_put(struct coll_goff *g, const char *group, const char *topic, int32_t partition,
                  int64_t offset, int32_t leader_epoch, const char *metadata, int64_t ts_ms,
                  struct sl_err *err);

/*
 * Writes every staged record with one write (at the end of the valid file), then fdatasync()s
 * when sync is true (also covering earlier flushes made without sync). Meant once per request.
 * Returns 0, or -errno (EIO, ENOSPC, EFBIG, ...; err names the file): the partial write is cut
 * off the file again and every put staged since the previous flush is rolled back, so the
 * table holds exactly the committed state before them.
 */
int coll_goff_flush(struct coll_goff *g, bool sync, struct sl_err *err);

/* Looks up one committed offset (staged ones included). Returns true and fills *out (strings
 * borrowed, see struct coll_goff_entry), or false when nothing is committed (OffsetFetch then
 * answers offset -1). */
bool coll_goff_get(struct coll_goff *g, const char *group, const char *topic, int32_t partition,
                   struct coll_goff_entry *out);

/* Calls fn once per committed offset of group (NULL: of every group), in no particular order.
 * The entry is valid during the call only; fn must not change the store. */
void coll_goff_foreach(struct coll_goff *g, const char *group,
                       void (*fn)(const struct coll_goff_entry *e, void *arg), void *arg);

/* Calls fn once per group with at least one committed offset, with its number of entries
 * (ListGroups). name is valid during the call only; fn must not change the store. */
void coll_goff_foreach_group(struct coll_goff *g,
                             void (*fn)(const char *group, size_t entries, void *arg), void *arg);

/*
 * Removes every committed offset of group, durably: staged puts are flushed first, then a
 * delete-group record is written and synced, and only then is the table changed. Returns 0
 * (also when the group has nothing committed), SL_ETOOBIG for an overlong name, or the error
 * of the flush or the write (the table then still holds the group; what was staged before is
 * rolled back as coll_goff_flush describes).
 */
int coll_goff_delete_group(struct coll_goff *g, const char *group, struct sl_err *err);

/* Removes the committed offsets of topic from every group (the topic was deleted), durably and
 * with the same error behaviour as coll_goff_delete_group. */
int coll_goff_delete_topic(struct coll_goff *g, const char *topic, struct sl_err *err);

/*
 * Removes the committed offsets of group (NULL: every group) whose commit timestamp is before
 * before_ms (Kafka's offsets.retention.minutes; the caller computes the cutoff, e.g. from when
 * the group became empty), durably: one tombstone record per offset, written and synced before
 * the table changes. *removed (may be NULL) gets how many went. Errors as for delete_group.
 */
int coll_goff_expire(struct coll_goff *g, const char *group, int64_t before_ms, size_t *removed,
                     struct sl_err *err);

/*
 * Rewrites the file as the live set now (flushing staged puts first): a temp file is written,
 * synced and renamed over the log, and the directory synced. The store does this by itself at
 * open and after a flush once the file outgrows its threshold; this is for tests and tools.
 * Returns 0 or -errno / -ENOMEM (the old file is then still in use and complete).
 */
int coll_goff_compact(struct coll_goff *g, struct sl_err *err);

/* Fills *out with the current counters. */
void coll_goff_stats(const struct coll_goff *g, struct coll_goff_stats *out);

#endif
