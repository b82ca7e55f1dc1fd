/* One log segment: its .log of record batches, its sparse .index and its .timeindex. */
#ifndef SL_COLLECTOR_SEGMENT_H
#define SL_COLLECTOR_SEGMENT_H

#include "common/batch.h"
#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries as they sit in memory; the files hold them big-endian (see segment.c). */
struct coll_idx_entry {
    uint32_t rel; /* last offset of the indexed batch - segment base */
    uint32_t pos; /* byte position of that batch in the .log */
};

struct coll_tidx_entry {
    int64_t ts;   /* largest maxTimestamp of the segment's batches up to this point */
    uint32_t rel; /* last offset of the batch holding that timestamp - segment base (Kafka's
                     offsetOfMaxTimestampSoFar) */
};

/* A batch header as read back from a trusted .log (no CRC check): the fields lookups need. */
struct coll_seg_batch {
    uint64_t pos;
    uint32_t size;
    int64_t base_offset;
    int64_t last_offset;
    int64_t max_timestamp;
};

/* What a scan of the .log found (recovery and index rebuilds). */
struct coll_seg_scan {
    uint64_t valid_bytes;  /* bytes of whole, valid, contiguous batches from position 0 */
    uint64_t file_bytes;   /* the file's size when scanned */
    int64_t next_offset;   /* offset after the last valid batch */
    uint64_t batches;
    int bad;               /* 0, or why the scan stopped before the end of the file */
    struct sl_err why;     /* detail when bad != 0 */
};

/*
 * One segment. Only the loop thread touches it; fields are read-only outside segment.c,
 * except refs, which partition_log.c manages through coll_segment_ref/unref.
 */
struct coll_segment {
    int64_t base;        /* base offset: the name of the files */
    int64_t next_offset; /* offset after its last batch (base when empty) */
    uint64_t size;       /* bytes of whole batches in the .log: nothing after this is read */
    int64_t max_ts;      /* largest maxTimestamp of its batches; -1 when none has one */
    int64_t max_ts_offset; /* last offset of the (first) batch with max_ts; -1 with it */
    int64_t created_ms;  /* clock time of its first append (or of opening it) */
    uint32_t index_interval;
    int log_fd; /* owned */
    int idx_fd; /* owned */
    int tidx_fd; /* owned */
    char *path; /* owned: "<dir>/<20-digit base>" without the extension */
    struct coll_idx_entry *idx; /* owned */
    size_t idx_n, idx_cap, idx_written;
    struct coll_tidx_entry *tidx; /* owned */
    size_t tidx_n, tidx_cap, tidx_written;
    uint64_t bytes_since_index;
    bool index_write_failed; /* an index write failed: both files were unlinked at once, so
                                the next open rebuilds them from the .log */
    bool index_missing;      /* an index file did not exist when the segment was opened */
    bool removed;            /* the files were unlinked; close the fds at the last unref */
    int refs;
};

/* The file name stem of a segment: 20 decimal digits, zero-padded ("%020lld"). */
#define COLL_SEGMENT_NAME_LEN 20

/*
 * Creates a new empty segment with base offset `base` in dir (existing files of that name are
 * truncated: the caller has made sure nothing valid is there). now_ms stamps its creation.
 * index_interval is the bytes between index entries. On success *out holds one reference.
 * Returns 0, -errno from the file system, or -ENOMEM.
 */
int coll_segment_create(const char *dir, int64_t base, uint32_t index_interval, int64_t now_ms,
                        struct coll_segment **out, struct sl_err *err);

/*
 * Opens an existing segment's files (the indexes are created when missing) without reading
 * anything: size is the file size, nothing is indexed yet. The caller then either loads the
 * indexes (coll_segment_load_indexes) or rebuilds them (coll_segment_recover). Returns 0,
 * -errno or -ENOMEM.
 */
int coll_segment_open(const char *dir, int64_t base, uint32_t index_interval, int64_t now_ms,
                      struct coll_segment **out, struct sl_err *err);

/*
 * Reads the .index and .timeindex files into memory and checks them: whole entries, offsets
 * and positions strictly increasing, positions inside the .log, timestamps never decreasing.
 * next_offset_hint is the base of the following segment (or -1 for the last one, whose end is
 * then found by validating the batches after its last index entry, cutting anything invalid).
 * Returns 0; SL_ECORRUPT when an index is missing, short or inconsistent (the caller rebuilds
 * with coll_segment_recover); -errno on a read error.
 */
int coll_segment_load_indexes(struct coll_segment *seg, int64_t next_offset_hint,
                              struct sl_err *err);

/*
 * Validates every batch from the start of the .log (size, CRC-32C, magic, offsets continuing
 * from the segment base), rebuilds both indexes from what is valid, and, when truncate is set,
 * cuts the .log after the last valid batch (the caller logs what was cut, from scan). Returns
 * 0 (scan says whether anything was invalid), or -errno / -ENOMEM when the files cannot be
 * read or rewritten.
 */
int coll_segment_recover(struct coll_segment *seg, bool truncate, struct coll_seg_scan *scan);

/*
 * Makes room for one more index entry of each kind, so that coll_segment_append cannot fail
 * after its write reached the file. Returns 0 or -ENOMEM.
 */
int coll_segment_reserve(struct coll_segment *seg);

/*
 * Appends one validated batch (h describes it, its baseOffset already rewritten to
 * seg->next_offset) at seg->size, then indexes it. A failed or short write is cut back off the
 * file and nothing changes in memory, so nothing partial is ever readable. Call
 * coll_segment_reserve first. Returns 0 or -errno (-ENOSPC, -EIO, ...).
 */
int coll_segment_append(struct coll_segment *seg, const void *batch, const struct sl_batch_header *h,
                        int64_t now_ms);

/*
 * Writes index entries still held only in memory to the .index/.timeindex files; when final is
 * set, first adds a last time-index entry carrying the segment's max timestamp and the offset of
 * its batch (as Kafka does when a segment is rolled or closed). A failure is logged, both index
 * files are unlinked at once (so that no open, clean or not, ever trusts a short index) and
 * they are rebuilt from the log when next opened. Never fails.
 */
void coll_segment_flush_indexes(struct coll_segment *seg, bool final);

/*
 * Finds the batch holding `offset`: the largest index entry at or below it, then a short scan
 * of batch headers. Returns 1 with *b filled, 0 when no batch of this segment holds offset
 * (it is at or past next_offset), or -errno on a read error.
 */
int coll_segment_find_offset(struct coll_segment *seg, int64_t offset, struct coll_seg_batch *b,
                             struct sl_err *err);

/*
 * The byte range to serve starting at batch `first` (from coll_segment_find_offset): whole
 * batches, at most max_bytes, but always at least the first one. Returns 0 with *len set and
 * *end_offset the offset just after the range's last batch (so the range holds
 * *end_offset - first->base_offset records: offsets are dense), or -errno.
 */
int coll_segment_read_extent(struct coll_segment *seg, const struct coll_seg_batch *first,
                             size_t max_bytes, size_t *len, int64_t *end_offset,
                             struct sl_err *err);

/*
 * Kafka's LogSegment.findOffsetByTimestamp: the first record, in offset order and at or after
 * start_offset, with a timestamp >= ts: *offset is its offset, or -1 when there is none. The
 * time index gives the offset of the batch where the largest timestamp first reached a value
 * <= ts (every record before that batch is older than ts), the offset index a position at or
 * before it, and batches are scanned from there; the record inside a batch is found by decoding
 * it (gzip included; an undecodable batch counts as a whole). Returns 0 or -errno.
 */
int coll_segment_find_time(struct coll_segment *seg, int64_t ts, int64_t start_offset,
                           int64_t *offset, struct sl_err *err);

/* Index math, exposed for tests: the position of the largest offset-index entry whose
 * offset is <= target (0 when none), and the offset of the largest time-index entry whose
 * timestamp is <= ts (the segment base when none), as Kafka's TimeIndex.lookup. */
uint32_t coll_segment_index_lookup(const struct coll_segment *seg, int64_t target);
int64_t coll_segment_tindex_lookup(const struct coll_segment *seg, int64_t ts);

/* fdatasync of the .log, then both index files (after writing their tails). Returns 0 or
 * -errno. */
int coll_segment_sync(struct coll_segment *seg);

/* Adds a reference (loop thread only). */
void coll_segment_ref(struct coll_segment *seg);

/* Drops a reference; the last one closes the files and frees the segment. NULL-safe. */
void coll_segment_unref(struct coll_segment *seg);

/* Unlinks the segment's three files (they stay readable through open descriptors until the last
 * unref). Returns 0 or the first -errno (ENOENT is ignored). */
int coll_segment_remove_files(struct coll_segment *seg);

/* Formats "<dir>/<20-digit base><ext>" into out (size n). Returns 0, or SL_ETOOBIG. */
int coll_segment_path(char *out, size_t n, const char *dir, int64_t base, const char *ext);

#endif
