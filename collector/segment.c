/* One log segment: appending batches, the sparse offset and time indexes, lookups, recovery. */
#include "collector/segment.h"

/*
 * A segment is three files named by its base offset (the offset of its first record), as in
 * Kafka:
 *
 *   00000000000000368769.log        record batches, back to back, exactly as produced except for
 *                                   baseOffset and partitionLeaderEpoch (common/batch.h)
 *   00000000000000368769.index      offset index: 8-byte entries, big-endian
 *   00000000000000368769.timeindex  time index: 12-byte entries, big-endian
 *
 *   .index entry                      .timeindex entry
 *   +-------------+-------------+     +---------------------------+-------------+
 *   | relOffset   | position    |     | timestamp                 | relOffset   |
 *   | uint32      | uint32      |     | int64                     | uint32      |
 *   +-------------+-------------+     +---------------------------+-------------+
 *
 *   .index      relOffset  the last offset of a batch minus the segment's base offset
 *               position   the byte position of that batch in the .log
 *   .timeindex  timestamp  the largest maxTimestamp of all batches up to and including the
 *                          batch being indexed (Kafka's maxTimestampSoFar)
 *               relOffset  the last offset of the batch that holds that timestamp, minus the
 *                          base (Kafka's offsetOfMaxTimestampSoFar)
 *
 * Both indexes are sparse: an entry is added for the batch being appended once
 * index_interval bytes were appended since the previous entry (never for the batch at position
 * 0, which needs none). Offsets and positions grow strictly; a time entry is only added when the
 * largest timestamp grew. When a segment is rolled or closed, a last time entry records its
 * largest timestamp, so retention knows it without reading the log.
 *
 * Lookup of offset o: binary search of the .index for the largest relOffset <= o - base gives a
 * position at or before the batch holding o, then batch headers are read forward, at most about
 * index_interval bytes. Lookup of timestamp t (Kafka's): the largest time entry with timestamp
 * <= t names the batch where the largest timestamp first reached its value; every batch before
 * that one only holds older records, so the scan starts at it.
 *
 * The indexes are kept whole in memory (8 and 12 bytes per ~4 KiB of log) and written to their
 * files in chunks; after an unclean stop they are rebuilt from the .log, so they never need an
 * fsync of their own except when the segment is rolled or closed.
 */

#include "common/base.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDX_ENTRY 8
#define TIDX_ENTRY 12
/* Index entries are written to their files once this many are pending (and at roll/close). */
#define IDX_WRITE_BATCH 512
/* The scan window of recovery; grown when a batch is bigger. */
#define SCAN_WINDOW (1u << 20)

int coll_segment_path(char *out, size_t n, const char *dir, int64_t base, const char *ext)
{
    int w = snprintf(out, n, "%s/%020" PRId64 "%s", dir, base, ext);
    if (w < 0 || (size_t)w >= n)
        return SL_ETOOBIG;
    return 0;
}

static int open_file(const char *stem, const char *ext, int flags, int *fd, struct sl_err *err)
{
    char path[PATH_MAX];
    int w = snprintf(path, sizeof(path), "%s%s", stem, ext);
    if (w < 0 || (size_t)w >= sizeof(path))
        return sl_err_set(err, SL_ETOOBIG, "path too long: %s%s", stem, ext);
    *fd = open(path, flags | O_RDWR | O_CLOEXEC, 0644);
    if (*fd < 0)
        return sl_err_set(err, -errno, "open %s: %m", path);
    return 0;
}

static int seg_new(const char *dir, int64_t base, uint32_t index_interval, int64_t now_ms,
                   int flags, struct coll_segment **out, struct sl_err *err)
{
    int rc = -ENOMEM;
    struct coll_segment *seg = sl_calloc(1, sizeof(*seg));
    if (!seg) {
        sl_err_set(err, rc, "out of memory");
        goto fail;
    }
    seg->log_fd = seg->idx_fd = seg->tidx_fd = -1;
    seg->base = base;
    seg->next_offset = base;
    seg->max_ts = -1;
    seg->max_ts_offset = -1;
    seg->created_ms = now_ms;
    seg->index_interval = index_interval;
    seg->refs = 1;
    char stem[PATH_MAX];
    int w = snprintf(stem, sizeof(stem), "%s/%020" PRId64, dir, base);
    if (w < 0 || (size_t)w >= sizeof(stem) - 16) {
        rc = sl_err_set(err, SL_ETOOBIG, "segment path too long in %s", dir);
        goto fail;
    }
    seg->path = sl_strdup(stem);
    if (!seg->path) {
        sl_err_set(err, rc, "out of memory");
        goto fail;
    }
    if ((rc = open_file(stem, ".log", flags, &seg->log_fd, err)))
        goto fail;
    const char *exts[2] = {".index", ".timeindex"};
    int *fds[2] = {&seg->idx_fd, &seg->tidx_fd};
    for (int i = 0; i < 2; i++) {
        /* An index that is not there at all must be rebuilt, not read as "no entries". */
        rc = open_file(stem, exts[i], flags, fds[i], NULL);
        if (rc == -ENOENT) {
            seg->index_missing = true;
            rc = open_file(stem, exts[i], O_CREAT, fds[i], err);
        } else if (rc) {
            rc = open_file(stem, exts[i], flags, fds[i], err);
        }
        if (rc)
            goto fail;
    }
    struct stat st;
    if (fstat(seg->log_fd, &st) < 0) {
        rc = sl_err_set(err, -errno, "fstat %s.log: %m", stem);
        goto fail;
    }
    seg->size = (uint64_t)st.st_size;
    *out = seg;
    return 0;
fail:
    if (seg)
        seg->refs = 1;
    coll_segment_unref(seg);
    return rc;
}

int coll_segment_create(const char *dir, int64_t base, uint32_t index_interval, int64_t now_ms,
                        struct coll_segment **out, struct sl_err *err)
{
    return seg_new(dir, base, index_interval, now_ms, O_CREAT | O_TRUNC, out, err);
}

int coll_segment_open(const char *dir, int64_t base, uint32_t index_interval, int64_t now_ms,
                      struct coll_segment **out, struct sl_err *err)
{
    return seg_new(dir, base, index_interval, now_ms, 0, out, err);
}

void coll_segment_ref(struct coll_segment *seg)
{
    seg->refs++;
}

void coll_segment_unref(struct coll_segment *seg)
{
    if (!seg || --seg->refs > 0)
        return;
    if (seg->log_fd >= 0)
        close(seg->log_fd);
    if (seg->idx_fd >= 0)
        close(seg->idx_fd);
    if (seg->tidx_fd >= 0)
        close(seg->tidx_fd);
    sl_free(seg->idx);
    sl_free(seg->tidx);
    sl_free(seg->path);
    sl_free(seg);
}

int coll_segment_remove_files(struct coll_segment *seg)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    int rc = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(exts); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s%s", seg->path, exts[i]);
        if (unlink(path) < 0 && errno != ENOENT && rc == 0)
            rc = -errno;
    }
    seg->removed = true;
    return rc;
}

/* ---- Index memory -------------------------------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = sl_realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int coll_segment_reserve(struct coll_segment *seg)
{
    if (grow((void **)&seg->idx, &seg->idx_cap, seg->idx_n + 1, sizeof(*seg->idx)) ||
        grow((void **)&seg->tidx, &seg->tidx_cap, seg->tidx_n + 1, sizeof(*seg->tidx)))
        return -ENOMEM;
    return 0;
}

static int64_t last_tidx_ts(const struct coll_segment *seg)
{
    return seg->tidx_n ? seg->tidx[seg->tidx_n - 1].ts : -1;
}

/* The time entry for the current maximum (Kafka's maxTimestampSoFar, offsetOfMaxTimestampSoFar). */
static struct coll_tidx_entry max_entry(const struct coll_segment *seg)
{
    return (struct coll_tidx_entry){seg->max_ts, (uint32_t)(seg->max_ts_offset - seg->base)};
}

/* An index write failed: the files on disk now lack entries that memory has. Unlink both at
 * once, so that no later open (a clean one, or an unclean one below the recovery point) loads
 * a short index and trusts it; the next open finds them missing and rebuilds from the .log.
 * The descriptors stay open, so writes to them later are harmless. */
static void drop_index_files(struct coll_segment *seg, int why)
{
    if (seg->index_write_failed)
        return;
    seg->index_write_failed = true;
    SL_WARN("storage", "%s: writing index entries: %s; the index files are removed and will be "
            "rebuilt", seg->path, sl_strerror(why));
    static const char *const exts[] = {".index", ".timeindex"};
    for (size_t i = 0; i < SL_ARRAY_LEN(exts); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s%s", seg->path, exts[i]);
        if (unlink(path) < 0 && errno != ENOENT)
            SL_ERR("storage", "%s: cannot remove it after a failed write: %m", path);
    }
    /* The removal must outlive a machine crash as well: the directory is seg->path's. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", seg->path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
            SL_WARN("storage", "%s: fsync of the directory: %m", dir);
        if (dfd >= 0)
            close(dfd);
    }
}

/* Records that a batch now sits at pos: index entries (room reserved by the caller), the
 * segment's end and its largest timestamp. */
static void note_batch(struct coll_segment *seg, uint64_t pos, uint32_t size, int64_t last,
                       int64_t max_ts)
{
    if (max_ts > seg->max_ts) {
        seg->max_ts = max_ts;
        seg->max_ts_offset = last;
    }
    if (seg->bytes_since_index >= seg->index_interval) {
        uint32_t rel = (uint32_t)(last - seg->base);
        SL_ASSERT(seg->idx_n < seg->idx_cap && seg->tidx_n < seg->tidx_cap);
        seg->idx[seg->idx_n++] = (struct coll_idx_entry){rel, (uint32_t)pos};
        if (seg->max_ts > last_tidx_ts(seg))
            seg->tidx[seg->tidx_n++] = max_entry(seg);
        seg->bytes_since_index = 0;
    }
    seg->bytes_since_index += size;
    seg->next_offset = last + 1;
    seg->size = pos + size;
}

static int pwrite_all(int fd, const void *p, size_t n, uint64_t pos)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = pwrite(fd, b, n, (off_t)pos);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        b += w;
        n -= (size_t)w;
        pos += (uint64_t)w;
    }
    return 0;
}

static int pread_all(int fd, void *p, size_t n, uint64_t pos, size_t *got)
{
    uint8_t *b = p;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, b + done, n - done, (off_t)(pos + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int write_idx_tail(struct coll_segment *seg)
{
    uint8_t chunk[IDX_ENTRY * 256];
    while (seg->idx_written < seg->idx_n) {
        size_t n = SL_MIN(seg->idx_n - seg->idx_written, (size_t)256);
        for (size_t i = 0; i < n; i++) {
            const struct coll_idx_entry *e = &seg->idx[seg->idx_written + i];
            sl_put_be32(chunk + i * IDX_ENTRY, e->rel);
            sl_put_be32(chunk + i * IDX_ENTRY + 4, e->pos);
        }
        int rc = pwrite_all(seg->idx_fd, chunk, n * IDX_ENTRY, seg->idx_written * IDX_ENTRY);
        if (rc)
            return rc;
        seg->idx_written += n;
    }
    uint8_t tchunk[TIDX_ENTRY * 256];
    while (seg->tidx_written < seg->tidx_n) {
        size_t n = SL_MIN(seg->tidx_n - seg->tidx_written, (size_t)256);
        for (size_t i = 0; i < n; i++) {
            const struct coll_tidx_entry *e = &seg->tidx[seg->tidx_written + i];
            sl_put_be64(tchunk + i * TIDX_ENTRY, (uint64_t)e->ts);
            sl_put_be32(tchunk + i * TIDX_ENTRY + 8, e->rel);
        }
        int rc = pwrite_all(seg->tidx_fd, tchunk, n * TIDX_ENTRY,
                            seg->tidx_written * TIDX_ENTRY);
        if (rc)
            return rc;
        seg->tidx_written += n;
    }
    return 0;
}

void coll_segment_flush_indexes(struct coll_segment *seg, bool final)
{
    if (final && seg->max_ts > last_tidx_ts(seg) && seg->next_offset > seg->base) {
        if (grow((void **)&seg->tidx, &seg->tidx_cap, seg->tidx_n + 1, sizeof(*seg->tidx)) == 0)
            seg->tidx[seg->tidx_n++] = max_entry(seg);
        else
            drop_index_files(seg, -ENOMEM);
    }
    if (seg->index_write_failed)
        return;
    int rc = write_idx_tail(seg);
    if (rc)
        drop_index_files(seg, rc);
}

int coll_segment_sync(struct coll_segment *seg)
{
    coll_segment_flush_indexes(seg, false);
    if (fdatasync(seg->log_fd) < 0 || fdatasync(seg->idx_fd) < 0 || fdatasync(seg->tidx_fd) < 0)
        return -errno;
    return 0;
}

/* ---- Append -------------------------------------------------------------------------------- */

int coll_segment_append(struct coll_segment *seg, const void *batch, const struct sl_batch_header *h,
                        int64_t now_ms)
{
    SL_ASSERT(h->size <= UINT32_MAX && seg->idx_n < seg->idx_cap && seg->tidx_n < seg->tidx_cap);
    int rc = pwrite_all(seg->log_fd, batch, h->size, seg->size);
    if (rc) {
        /* Cut what reached the file: appends write at seg->size anyway, but a shorter file keeps
         * recovery from having to judge the leftover. Failing to cut is harmless for readers. */
        if (ftruncate(seg->log_fd, (off_t)seg->size) < 0)
            SL_WARN("storage", "%s.log: cannot cut a failed append back: %m", seg->path);
        return rc;
    }
    if (seg->next_offset == seg->base)
        seg->created_ms = now_ms;
    note_batch(seg, seg->size, (uint32_t)h->size, sl_batch_last_offset(h), h->max_timestamp);
    if (seg->idx_n - seg->idx_written >= IDX_WRITE_BATCH)
        coll_segment_flush_indexes(seg, false);
    return 0;
}

/* ---- Reading batch headers back ------------------------------------------------------------- */

/* Reads the header of the batch at pos of a trusted .log. Returns 1, 0 at or past the end of
 * the segment's valid bytes, or -errno (SL_ECORRUPT when the bytes make no sense). */
static int read_batch_at(struct coll_segment *seg, uint64_t pos, struct coll_seg_batch *b)
{
    if (pos + SL_BATCH_HEADER_SIZE > seg->size)
        return 0;
    uint8_t h[SL_BATCH_HEADER_SIZE];
    size_t got;
    int rc = pread_all(seg->log_fd, h, sizeof(h), pos, &got);
    if (rc)
        return rc;
    if (got < sizeof(h))
        return SL_ECORRUPT;
    int32_t len = (int32_t)sl_be32(h + SL_BATCH_OFF_LENGTH);
    if (len < SL_BATCH_LENGTH_MIN || pos + 12 + (uint64_t)len > seg->size)
        return SL_ECORRUPT;
    b->pos = pos;
    b->size = 12 + (uint32_t)len;
    b->base_offset = (int64_t)sl_be64(h + SL_BATCH_OFF_BASE_OFFSET);
    b->last_offset = b->base_offset + (int32_t)sl_be32(h + SL_BATCH_OFF_LAST_OFFSET_DELTA);
    b->max_timestamp = (int64_t)sl_be64(h + SL_BATCH_OFF_MAX_TIMESTAMP);
    return 1;
}

uint32_t coll_segment_index_lookup(const struct coll_segment *seg, int64_t target)
{
    int64_t rel = target - seg->base;
    if (rel < 0 || seg->idx_n == 0 || (int64_t)seg->idx[0].rel > rel)
        return 0;
    size_t lo = 0, hi = seg->idx_n; /* idx[lo].rel <= rel; answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((int64_t)seg->idx[mid].rel <= rel)
            lo = mid;
        else
            hi = mid;
    }
    return seg->idx[lo].pos;
}

int64_t coll_segment_tindex_lookup(const struct coll_segment *seg, int64_t ts)
{
    if (seg->tidx_n == 0 || seg->tidx[0].ts > ts)
        return seg->base;
    size_t lo = 0, hi = seg->tidx_n; /* tidx[lo].ts <= ts */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->tidx[mid].ts <= ts)
            lo = mid;
        else
            hi = mid;
    }
    return seg->base + (int64_t)seg->tidx[lo].rel;
}

int coll_segment_find_offset(struct coll_segment *seg, int64_t offset, struct coll_seg_batch *b,
                             struct sl_err *err)
{
    if (offset < seg->base || offset >= seg->next_offset)
        return 0;
    uint64_t pos = coll_segment_index_lookup(seg, offset);
    for (;;) {
        int rc = read_batch_at(seg, pos, b);
        if (rc < 0)
            return sl_err_set(err, rc, "%s.log: reading the batch at %" PRIu64 ": %s", seg->path,
                              pos, sl_strerror(rc));
        if (rc == 0)
            return 0;
        if (b->last_offset >= offset)
            return 1;
        pos += b->size;
    }
}

int coll_segment_read_extent(struct coll_segment *seg, const struct coll_seg_batch *first,
                             size_t max_bytes, size_t *len, int64_t *end_offset,
                             struct sl_err *err)
{
    uint64_t end = first->pos + first->size;
    int64_t end_off = first->last_offset + 1; /* -1: not known, the index moved `end` */
    uint64_t limit = first->pos + (uint64_t)SL_MIN(max_bytes, (size_t)(seg->size - first->pos));
    if (end < limit && seg->idx_n) {
        /* Every index entry is a batch start, so everything before one is whole batches. */
        size_t lo = 0, hi = seg->idx_n;
        if (seg->idx[0].pos <= limit) {
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (seg->idx[mid].pos <= limit)
                    lo = mid;
                else
                    hi = mid;
            }
            if (seg->idx[lo].pos > end) {
                end = seg->idx[lo].pos;
                end_off = -1; /* an entry holds its batch's last offset, not its base */
            }
        }
    }
    while (end < limit) {
        struct coll_seg_batch b;
        int rc = read_batch_at(seg, end, &b);
        if (rc < 0)
            return sl_err_set(err, rc, "%s.log: reading the batch at %" PRIu64 ": %s", seg->path,
                              end, sl_strerror(rc));
        if (rc > 0 && end + b.size > limit)
            end_off = b.base_offset;
        if (rc == 0 || end + b.size > limit)
            break;
        end += b.size;
        end_off = b.last_offset + 1;
    }
    if (end_off < 0 && end >= seg->size) {
        end_off = seg->next_offset;
    } else if (end_off < 0) {
        struct coll_seg_batch b;
        int rc = read_batch_at(seg, end, &b);
        if (rc <= 0)
            return sl_err_set(err, rc < 0 ? rc : -EIO,
                              "%s.log: reading the batch at %" PRIu64 ": %s", seg->path, end,
                              rc < 0 ? sl_strerror(rc) : "none where the index says");
        end_off = b.base_offset;
    }
    *len = (size_t)(end - first->pos);
    *end_offset = end_off;
    return 0;
}

/* The offset of the first record of the batch b at or after start with a timestamp >= ts, or -1
 * when none is (from start, or b's base offset, when it cannot be decoded: the batch qualifies
 * as a whole). */
static int64_t first_record_at(struct coll_segment *seg, const struct coll_seg_batch *b, int64_t ts,
                               int64_t start)
{
    int64_t found = SL_MAX(b->base_offset, start);
    struct sl_buf scratch;
    sl_buf_init(&scratch);
    uint8_t *data = sl_malloc(b->size);
    size_t got;
    if (!data || pread_all(seg->log_fd, data, b->size, b->pos, &got) || got != b->size)
        goto out;
    struct sl_batch_header h;
    struct sl_batch_iter it;
    if (sl_batch_parse_header(&h, data, b->size, 0, NULL) ||
        sl_batch_iter_init(&it, &h, data, &scratch, (size_t)64 << 20, 0, NULL))
        goto out;
    struct sl_batch_record rec;
    int rc;
    found = -1;
    while ((rc = sl_batch_iter_next(&it, &rec, NULL)) == 1) {
        if (rec.timestamp >= ts && rec.offset >= start) {
            found = rec.offset;
            break;
        }
    }
    if (rc < 0)
        found = SL_MAX(b->base_offset, start);
out:
    sl_free(data);
    sl_buf_fini(&scratch);
    return found;
}

int coll_segment_find_time(struct coll_segment *seg, int64_t ts, int64_t start_offset,
                           int64_t *offset, struct sl_err *err)
{
    *offset = -1;
    if (seg->max_ts < ts || seg->next_offset == seg->base || start_offset >= seg->next_offset)
        return 0;
    int64_t from = SL_MAX(coll_segment_tindex_lookup(seg, ts), start_offset);
    uint64_t pos = coll_segment_index_lookup(seg, from);
    for (;;) {
        struct coll_seg_batch b;
        int rc = read_batch_at(seg, pos, &b);
        if (rc < 0)
            return sl_err_set(err, rc, "%s.log: reading the batch at %" PRIu64 ": %s", seg->path,
                              pos, sl_strerror(rc));
        if (rc == 0)
            return 0;
        if (b.last_offset >= start_offset && b.max_timestamp >= ts) {
            *offset = first_record_at(seg, &b, ts, start_offset);
            if (*offset >= 0)
                return 0;
        }
        pos += b.size;
    }
}

/* ---- Loading and rebuilding ------------------------------------------------------------------ */

struct scan_window {
    uint8_t *buf; /* owned */
    size_t cap;
    uint64_t at; /* file position of buf[0] */
    size_t len;
};

/* Makes [pos, pos + n) of the file available in the window; n fits in the file. */
static int window_get(struct scan_window *w, int fd, uint64_t pos, size_t n, uint64_t file_size,
                      const uint8_t **p)
{
    if (pos < w->at || pos + n > w->at + w->len) {
        if (n > w->cap) {
            uint8_t *nb = sl_realloc(w->buf, n);
            if (!nb)
                return -ENOMEM;
            w->buf = nb;
            w->cap = n;
        }
        size_t want = (size_t)SL_MIN((uint64_t)w->cap, file_size - pos);
        size_t got;
        int rc = pread_all(fd, w->buf, want, pos, &got);
        if (rc)
            return rc;
        w->at = pos;
        w->len = got;
        if (got < n)
            return -EIO; /* the file shrank under us */
    }
    *p = w->buf + (pos - w->at);
    return 0;
}

/* Validates batches from pos (expecting offset `expect` there) to the end of the file, indexing
 * each valid one. Stops at the first invalid byte and says why in sc. */
static int scan_from(struct coll_segment *seg, uint64_t pos, int64_t expect,
                     struct coll_seg_scan *sc)
{
    struct stat st;
    if (fstat(seg->log_fd, &st) < 0)
        return -errno;
    uint64_t file_size = (uint64_t)st.st_size;
    struct scan_window w = {0};
    w.cap = SCAN_WINDOW;
    w.buf = sl_malloc(w.cap);
    if (!w.buf)
        return -ENOMEM;
    int rc = 0;
    sc->file_bytes = file_size;
    sc->bad = 0;
    seg->size = pos; /* so note_batch and the reads agree while we go */
    while (pos < file_size) {
        const uint8_t *p;
        if (file_size - pos < SL_BATCH_HEADER_SIZE) {
            sc->bad = sl_err_set(&sc->why, SL_ETRUNC, "%" PRIu64 " bytes at the end are not a "
                                 "whole batch header", file_size - pos);
            break;
        }
        if ((rc = window_get(&w, seg->log_fd, pos, SL_BATCH_HEADER_SIZE, file_size, &p)))
            break;
        int32_t len = (int32_t)sl_be32(p + SL_BATCH_OFF_LENGTH);
        if (len < SL_BATCH_LENGTH_MIN) {
            sc->bad = sl_err_set(&sc->why, SL_ECORRUPT, "batchLength %" PRId32 " is impossible%s",
                                 len, len == 0 ? " (zero fill)" : "");
            break;
        }
        uint64_t size = 12 + (uint64_t)len;
        if (size > file_size - pos) {
            sc->bad = sl_err_set(&sc->why, SL_ETRUNC, "a batch of %" PRIu64 " bytes is torn: only "
                                 "%" PRIu64 " are there", size, file_size - pos);
            break;
        }
        if ((rc = window_get(&w, seg->log_fd, pos, (size_t)size, file_size, &p)))
            break;
        struct sl_batch_header h;
        int prc = sl_batch_parse_header(&h, p, (size_t)size, 0, &sc->why);
        if (prc) {
            sc->bad = prc;
            break;
        }
        if (h.base_offset != expect) {
            sc->bad = sl_err_set(&sc->why, SL_ECORRUPT, "batch baseOffset %" PRId64
                                 " where %" PRId64 " was expected", h.base_offset, expect);
            break;
        }
        if (sl_batch_last_offset(&h) - seg->base > (int64_t)INT32_MAX ||
            pos > (uint64_t)UINT32_MAX) {
            sc->bad = sl_err_set(&sc->why, SL_ECORRUPT, "batch lies outside what a segment "
                                 "can index");
            break;
        }
        if ((rc = coll_segment_reserve(seg)))
            break;
        note_batch(seg, pos, (uint32_t)size, sl_batch_last_offset(&h), h.max_timestamp);
        if (sl_batch_last_offset(&h) >= expect)
            expect = sl_batch_last_offset(&h) + 1;
        seg->next_offset = expect;
        sc->batches++;
        pos += size;
    }
    sc->valid_bytes = pos;
    sc->next_offset = expect;
    seg->size = pos;
    seg->next_offset = expect;
    sl_free(w.buf);
    return rc;
}

int coll_segment_recover(struct coll_segment *seg, bool truncate, struct coll_seg_scan *scan)
{
    memset(scan, 0, sizeof(*scan));
    seg->idx_n = seg->idx_written = 0;
    seg->tidx_n = seg->tidx_written = 0;
    seg->bytes_since_index = 0;
    seg->max_ts = -1;
    seg->max_ts_offset = -1;
    seg->next_offset = seg->base;
    int rc = scan_from(seg, 0, seg->base, scan);
    if (rc)
        return rc;
    if (truncate && scan->valid_bytes < scan->file_bytes &&
        ftruncate(seg->log_fd, (off_t)scan->valid_bytes) < 0)
        return -errno;
    if (ftruncate(seg->idx_fd, 0) < 0 || ftruncate(seg->tidx_fd, 0) < 0)
        return -errno;
    seg->index_write_failed = false;
    seg->index_missing = false;
    rc = write_idx_tail(seg);
    return rc;
}

/* Reads a whole index file; *n is its size. */
static int read_file(int fd, uint8_t **out, size_t *n)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *n = (size_t)st.st_size;
    *out = sl_malloc(*n ? *n : 1);
    if (!*out)
        return -ENOMEM;
    size_t got;
    int rc = pread_all(fd, *out, *n, 0, &got);
    if (rc == 0 && got != *n)
        rc = -EIO;
    if (rc)
        SL_FREE(*out);
    return rc;
}

int coll_segment_load_indexes(struct coll_segment *seg, int64_t next_offset_hint,
                              struct sl_err *err)
{
    uint8_t *raw = NULL;
    size_t n = 0;
    if (seg->index_missing && seg->size > 0)
        return sl_err_set(err, SL_ECORRUPT, "%s: an index file is missing", seg->path);
    int rc = read_file(seg->idx_fd, &raw, &n);
    if (rc)
        return sl_err_set(err, rc, "%s.index: %s", seg->path, sl_strerror(rc));
    if (n % IDX_ENTRY) {
        rc = sl_err_set(err, SL_ECORRUPT, "%s.index: %zu bytes is not whole entries", seg->path, n);
        goto out;
    }
    seg->idx_n = seg->idx_written = 0;
    if ((rc = grow((void **)&seg->idx, &seg->idx_cap, n / IDX_ENTRY + 1, sizeof(*seg->idx))))
        goto out;
    for (size_t i = 0; i < n / IDX_ENTRY; i++) {
        struct coll_idx_entry e = {sl_be32(raw + i * IDX_ENTRY), sl_be32(raw + i * IDX_ENTRY + 4)};
        bool bad = e.pos >= seg->size || (next_offset_hint >= 0 &&
                                          seg->base + (int64_t)e.rel >= next_offset_hint);
        if (i > 0)
            bad = bad || e.rel <= seg->idx[i - 1].rel || e.pos <= seg->idx[i - 1].pos;
        if (bad) {
            rc = sl_err_set(err, SL_ECORRUPT, "%s.index: entry %zu (%" PRIu32 ", %" PRIu32
                            ") is out of order or past the log", seg->path, i, e.rel, e.pos);
            goto out;
        }
        seg->idx[seg->idx_n++] = e;
    }
    seg->idx_written = seg->idx_n;
    SL_FREE(raw);
    if ((rc = read_file(seg->tidx_fd, &raw, &n)))
        return sl_err_set(err, rc, "%s.timeindex: %s", seg->path, sl_strerror(rc));
    if (n % TIDX_ENTRY || (n == 0 && seg->size > 0 && next_offset_hint >= 0)) {
        /* A closed non-empty segment always has its final time entry. */
        rc = sl_err_set(err, SL_ECORRUPT, "%s.timeindex: %zu bytes is not whole entries or "
                        "lacks the final entry", seg->path, n);
        goto out;
    }
    seg->tidx_n = seg->tidx_written = 0;
    if ((rc = grow((void **)&seg->tidx, &seg->tidx_cap, n / TIDX_ENTRY + 1, sizeof(*seg->tidx))))
        goto out;
    for (size_t i = 0; i < n / TIDX_ENTRY; i++) {
        struct coll_tidx_entry e = {(int64_t)sl_be64(raw + i * TIDX_ENTRY),
                                    sl_be32(raw + i * TIDX_ENTRY + 8)};
        bool bad = next_offset_hint >= 0 && seg->base + (int64_t)e.rel >= next_offset_hint;
        if (i > 0)
            bad = bad || e.ts < seg->tidx[i - 1].ts || e.rel < seg->tidx[i - 1].rel;
        if (bad) {
            rc = sl_err_set(err, SL_ECORRUPT, "%s.timeindex: entry %zu is out of order or past "
                            "the log", seg->path, i);
            goto out;
        }
        seg->tidx[seg->tidx_n++] = e;
    }
    seg->tidx_written = seg->tidx_n;
    seg->max_ts = last_tidx_ts(seg);
    seg->max_ts_offset = seg->tidx_n ? seg->base + (int64_t)seg->tidx[seg->tidx_n - 1].rel : -1;
    if (next_offset_hint >= 0) {
        seg->next_offset = next_offset_hint;
        goto out;
    }
    /* The last segment: validate what follows the last index entry to find its end. */
    uint64_t from = seg->idx_n ? seg->idx[seg->idx_n - 1].pos : 0;
    int64_t expect = seg->base;
    if (from > 0) {
        struct coll_seg_batch b;
        uint64_t saved = seg->size;
        int r = read_batch_at(seg, from, &b);
        seg->size = saved;
        if (r <= 0 || b.last_offset != seg->base + (int64_t)seg->idx[seg->idx_n - 1].rel) {
            rc = sl_err_set(err, SL_ECORRUPT, "%s.index: last entry points at no batch or at "
                            "another one", seg->path);
            goto out;
        }
        expect = b.base_offset;
        /* That batch is re-noted by the scan without a second index entry. */
        seg->bytes_since_index = 0;
    }
    struct coll_seg_scan sc = {0};
    if ((rc = scan_from(seg, from, expect, &sc)))
        goto out;
    /* An entry at or past the end of what is valid (the batch at the last index entry is itself
     * damaged, or the time index names an offset that is not there) would survive into the
     * files and mislead lookups and later loads; and max_ts came from such entries. Rebuild
     * the whole segment from its .log instead: the caller does that on SL_ECORRUPT, cutting
     * the same bytes. */
    bool stale = seg->idx_n && seg->idx[seg->idx_n - 1].pos >= sc.valid_bytes;
    stale = stale || (seg->tidx_n &&
                      seg->base + (int64_t)seg->tidx[seg->tidx_n - 1].rel >= seg->next_offset);
    if (stale) {
        rc = sl_err_set(err, SL_ECORRUPT, "%s: index entries point past the valid end of the log "
                        "(%" PRIu64 " bytes, offset %" PRId64 ")", seg->path, sc.valid_bytes,
                        sc.next_offset);
        goto out;
    }
    if (sc.bad) {
        SL_WARN("storage", "%s.log: cutting %" PRIu64 " bytes at position %" PRIu64
                " (offset %" PRId64 "): %s", seg->path, sc.file_bytes - sc.valid_bytes,
                sc.valid_bytes, sc.next_offset, sc.why.msg);
        if (ftruncate(seg->log_fd, (off_t)sc.valid_bytes) < 0)
            rc = sl_err_set(err, -errno, "%s.log: truncate: %m", seg->path);
    }
out:
    sl_free(raw);
    if (rc == -ENOMEM)
        sl_err_set(err, rc, "out of memory loading %s indexes", seg->path);
    return rc;
}
