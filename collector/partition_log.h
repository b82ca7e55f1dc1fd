/* A partition's log: its segments, appends with durability callbacks, reads, time lookups. */
#ifndef SL_COLLECTOR_PARTITION_LOG_H
#define SL_COLLECTOR_PARTITION_LOG_H

#include "collector/flusher.h"
#include "collector/segment.h"
#include "common/buf.h"
#include "common/err.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* When appended data reaches the disk. */
enum coll_fsync_policy {
    COLL_FSYNC_INTERVAL = 0, /* fdatasync every fsync_interval_ms while there is new data */
    COLL_FSYNC_ALWAYS,       /* fdatasync before acknowledging (group commit) */
    COLL_FSYNC_NEVER,        /* page cache only: a crash of the machine (not of the process)
                                loses what the kernel had not written yet. Rolled segments are
                                still synced in the background, as Kafka does. */
};

/* Per-topic settings; the collector fills them from its YAML (defaults, then overrides). */
struct coll_log_conf {
    int64_t segment_bytes;     /* roll when the next batch would pass this; 1 KiB..2 GiB-1 */
    int64_t segment_age_ms;    /* roll a non-empty segment this old (since its first append) */
    int64_t index_interval;    /* bytes appended between sparse index entries; 1..segment_bytes */
    int64_t retention_ms;      /* delete segments whose newest record is older; -1 = never */
    int64_t retention_bytes;   /* delete oldest segments while the rest is at least this; -1 */
    enum coll_fsync_policy fsync;
    int64_t fsync_interval_ms; /* for COLL_FSYNC_INTERVAL; >= 1 */
    int64_t max_batch_bytes;   /* largest batch accepted (Kafka's max.message.bytes) */
    bool validate_records;     /* decode every record (gzip: decompress) on append, as Kafka does;
                                  off: header and CRC only */
};

#define COLL_LOG_CONF_DEFAULT                                                                      \
    ((struct coll_log_conf){.segment_bytes = 1073741824,                                          \
                            .segment_age_ms = 7LL * 24 * 3600 * 1000,                             \
                            .index_interval = 4096,                                               \
                            .retention_ms = 7LL * 24 * 3600 * 1000,                               \
                            .retention_bytes = -1,                                                \
                            .fsync = COLL_FSYNC_INTERVAL,                                         \
                            .fsync_interval_ms = 1000,                                            \
                            .max_batch_bytes = 1048588,                                           \
                            .validate_records = true})

/* Checks every field's bounds. Returns 0, or SL_ECONFIG with err naming the field. */
int coll_log_conf_check(const struct coll_log_conf *c, struct sl_err *err);

/* What the storage lends each partition. */
struct coll_log_env {
    struct ev_loop *loop;         /* borrowed */
    struct coll_flusher *flusher; /* borrowed */
    int64_t (*now_ms)(void *arg); /* wall clock, ms since the epoch (injectable for tests) */
    void *clock_arg;
};

/*
 * Called once per append that asked for it, on the loop thread, never from inside
 * coll_plog_append: status 0 once the batch is durable under the topic's fsync policy (for
 * `never`: written to the page cache), or a negative code when it never will be (fdatasync
 * failed, or the partition was deleted).
 */
typedef void (*coll_durable_cb)(void *arg, int status);

struct coll_append_res {
    int64_t base_offset; /* offset given to the batch's first record */
    int64_t last_offset;
    int16_t kafka_err; /* KAFKA_E_NONE, or the code to answer a producer with */
};

/* A byte range of a .log file to send (sendfile): whole batches. Holds a reference on the
 * segment, so the file stays open even if retention deletes it; release it when sent. */
struct coll_region {
    int fd;           /* borrowed from seg; -1 when len is 0 */
    uint64_t pos;     /* file position of the first batch */
    size_t len;       /* 0 when there is nothing to read at the asked offset (yet) */
    int64_t first_offset; /* base offset of the first batch (<= the asked offset) */
    int64_t end_offset;   /* offset after the last batch: end_offset - first_offset records */
    struct coll_segment *seg; /* owned reference, or NULL */
};

struct coll_waiter {
    int64_t end; /* durable once the durable offset reaches this */
    coll_durable_cb cb;
    void *arg;
};

/* One partition's log. Loop thread only (the flusher touches fs alone). Read-only outside. */
struct coll_plog {
    char *dir;   /* owned: data_dir/<topic>-<partition> */
    char *name;  /* owned: "<topic>-<partition>", the log prefix */
    char *topic; /* owned */
    int32_t partition;
    struct coll_log_conf conf;
    const struct coll_log_env *env; /* borrowed */
    struct coll_segment **segs;     /* owned references, oldest first; the last is active */
    size_t nsegs, cap_segs;
    int64_t log_start;   /* first offset that may be read; only grows; persisted */
    int64_t next_offset; /* offset the next record gets (the log end offset) */
    struct coll_flush_state fs;
    bool fs_ready;
    ev_timer flush_timer; /* fsync: interval */
    struct coll_waiter *waiters; /* owned ring */
    size_t w_head, w_len, w_cap;
    struct sl_buf scratch; /* owned: gzip decompression when validating records */
    uint64_t cut_bytes;    /* bytes recovery cut when the log was opened (for tests/metrics) */
};

/*
 * Opens (create: makes the directory first) the partition log in dir. Without `clean`, the
 * previous run stopped uncleanly: every batch since the persisted recovery point is checked
 * (size, CRC-32C, offset continuity) and the log is cut at the first bad byte; damaged or
 * missing indexes are rebuilt either way; leftover temp files are removed. conf is copied and
 * must have passed coll_log_conf_check; env is borrowed and outlives the log. Returns 0 with
 * *out, or -errno / -ENOMEM / SL_ECORRUPT with err saying which file.
 */
int coll_plog_open(const struct coll_log_env *env, const char *dir, const char *topic,
                   int32_t partition, const struct coll_log_conf *conf, bool create, bool clean,
                   struct coll_plog **out, struct sl_err *err);

/*
 * Closes cleanly: writes the indexes, fdatasyncs every file, persists the recovery point,
 * completes the waiting callbacks (status 0 when all of that worked) and frees. Returns 0 when
 * everything is on disk, or the first -errno. NULL-safe (returns 0).
 */
int coll_plog_close(struct coll_plog *pl);

/* Closes without syncing or touching the files (the caller deletes them): waiting callbacks
 * get SL_ECLOSED. NULL-safe. */
void coll_plog_destroy(struct coll_plog *pl);

/*
 * Validates one record batch (exactly one, as Kafka's produce v3+ requires) of len bytes,
 * rewrites its baseOffset and partitionLeaderEpoch in place (batch is modified; both are
 * outside the CRC), rolls the segment when due, and appends it. O(1) in the log's size.
 * On success returns 0 with res filled, and cb (if not NULL) is called later exactly once, as
 * coll_durable_cb says. On failure nothing was appended, cb is never called, and res->kafka_err
 * holds the code for the producer: CORRUPT_MESSAGE (bad sizes or CRC), INVALID_RECORD (not one
 * magic 2 batch, or records breaking the rules), UNSUPPORTED_COMPRESSION_TYPE,
 * MESSAGE_TOO_LARGE (over max_batch_bytes, which is at most segment_bytes), or
 * KAFKA_STORAGE_ERROR for an I/O error (the return value is then -errno: -ENOSPC when the disk
 * is full; appends work again once there is space) or after a failed fdatasync (-EIO, until
 * the partition is reopened).
 */
int coll_plog_append(struct coll_plog *pl, void *batch, size_t len, coll_durable_cb cb, void *arg,
                     struct coll_append_res *res, struct sl_err *err);

/*
 * The bytes to serve for a fetch at `offset`: whole batches from the one holding offset, at most
 * max_bytes but always at least that one batch, all from one segment. Every appended batch is
 * readable, durable or not (Kafka's high watermark with a single replica); a caller that wants
 * only durable data bounds itself with coll_plog_durable_offset. Returns 0 with *r filled
 * (r->len 0 when offset is the log end); -ERANGE when offset is below the log start or past the
 * end (Kafka's OFFSET_OUT_OF_RANGE); -errno on a read error. Release *r after use.
 */
int coll_plog_read(struct coll_plog *pl, int64_t offset, size_t max_bytes, struct coll_region *r,
                   struct sl_err *err);

/* Drops the region's segment reference; NULL-safe and idempotent. */
void coll_region_release(struct coll_region *r);

/*
 * The earliest offset whose record timestamp is >= ts (ListOffsets by time): *offset, or -1
 * when no record is that recent. Returns 0 or -errno.
 */
int coll_plog_find_time(struct coll_plog *pl, int64_t ts, int64_t *offset, struct sl_err *err);

/* The offset after the last batch known to be on disk (or in the page cache for `never`). */
int64_t coll_plog_durable_offset(struct coll_plog *pl);

/* Bytes of all segments' .log files. */
uint64_t coll_plog_size(const struct coll_plog *pl);

/* Seals the active segment and starts a new one at the log end (a no-op when the active
 * segment is empty). Returns 0 or -errno / -ENOMEM. */
int coll_plog_roll(struct coll_plog *pl, struct sl_err *err);

/* Asks the flusher for an fdatasync now, whatever the policy. */
void coll_plog_flush(struct coll_plog *pl);

/*
 * Applies retention at time now_ms: whole segments, oldest first, by age (newest record older
 * than retention_ms; for a segment without timestamps, its .log's modification time, as in
 * Kafka) and by size (while the partition without that segment is still at least
 * retention_bytes). An expired active segment is rolled first. The new log start offset is
 * persisted before any file is removed. Returns the number of segments deleted, or -errno.
 * (retention.c)
 */
int coll_plog_retain(struct coll_plog *pl, int64_t now_ms, struct sl_err *err);

/* Loop thread: the flusher reported on pl (completes waiters). Called by the storage. */
void coll_plog_on_flushed(struct coll_plog *pl);

/* Internal to partition_log.c and recovery.c: the clock. */
int64_t coll_plog_now(const struct coll_plog *pl);

/*
 * recovery.c: fills pl->segs, log_start and next_offset from pl->dir (see coll_plog_open).
 * Returns 0 or -errno / -ENOMEM / SL_ECORRUPT.
 */
int coll_plog_load(struct coll_plog *pl, bool clean, struct sl_err *err);

/* Persists pl->log_start. Returns 0 or -errno. (retention.c uses it; recovery too.) */
int coll_plog_save_start(struct coll_plog *pl);

#define COLL_FILE_LOG_START "log-start-offset"
#define COLL_FILE_RECOVERY_POINT "recovery-point"

#endif
