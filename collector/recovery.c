/* Opening a partition's directory: the segment list, index checks, and recovery after a crash. */
#include "collector/partition_log.h"

/*
 * What a start does with a partition directory:
 *
 *   1. remove leftovers: *.tmp (half-written offset files), .index/.timeindex without a .log
 *   2. read log-start-offset; delete segments wholly below it (a retention that was cut short)
 *   3. clean start:   load each segment's indexes; a missing/short/inconsistent one is rebuilt
 *                     from its .log; the active segment's batches after its last index entry
 *                     are validated
 *      unclean start: every segment from the one holding the recovery point on is scanned
 *                     batch by batch (batchLength, CRC-32C, magic, offsets continuing), its
 *                     indexes rebuilt, and the log is cut at the first bad byte: that segment is
 *                     truncated and every later one deleted; what was cut is logged with the
 *                     partition and offset. The result is synced and becomes the new recovery
 *                     point.
 *   4. an empty directory gets its first segment at the log start offset
 */

#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int coll_plog_save_start(struct coll_plog *pl)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" COLL_FILE_LOG_START, pl->dir);
    return coll_write_offset_file(path, pl->log_start);
}

/* Parses "<20 digits><ext>"; returns the base or -1. */
static int64_t parse_seg_name(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    if (n != COLL_SEGMENT_NAME_LEN + e || strcmp(name + COLL_SEGMENT_NAME_LEN, ext) != 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < COLL_SEGMENT_NAME_LEN; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static bool has_base(const int64_t *bases, size_t n, int64_t b)
{
    return n > 0 && bsearch(&b, bases, n, sizeof(*bases), cmp_i64) != NULL;
}

/* Lists segment bases (sorted) and removes leftovers. */
static int list_dir(struct coll_plog *pl, int64_t **out, size_t *nout, struct sl_err *err)
{
    DIR *d = opendir(pl->dir);
    if (!d)
        return sl_err_set(err, -errno, "opendir %s: %m", pl->dir);
    int64_t *bases = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t b = parse_seg_name(de->d_name, ".log");
        size_t len = strlen(de->d_name);
        if (b < 0) {
            if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
                SL_INFO(pl->name, "removing leftover %s", de->d_name);
                unlinkat(dirfd(d), de->d_name, 0);
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *p = sl_realloc(bases, cap * sizeof(*p));
            if (!p) {
                rc = sl_err_set(err, -ENOMEM, "out of memory");
                goto out;
            }
            bases = p;
        }
        bases[n++] = b;
    }
    if (n > 1)
        qsort(bases, n, sizeof(*bases), cmp_i64);
    rewinddir(d);
    while ((de = readdir(d))) {
        int64_t b = parse_seg_name(de->d_name, ".index");
        if (b < 0)
            b = parse_seg_name(de->d_name, ".timeindex");
        if (b >= 0 && !has_base(bases, n, b)) {
            SL_INFO(pl->name, "removing orphan index %s", de->d_name);
            unlinkat(dirfd(d), de->d_name, 0);
        }
    }
out:
    closedir(d);
    if (rc) {
        sl_free(bases);
        return rc;
    }
    *out = bases;
    *nout = n;
    return 0;
}

static int push_seg(struct coll_plog *pl, struct coll_segment *seg)
{
    if (pl->nsegs == pl->cap_segs) {
        size_t ncap = pl->cap_segs ? pl->cap_segs * 2 : 8;
        struct coll_segment **p = sl_realloc(pl->segs, ncap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        pl->segs = p;
        pl->cap_segs = ncap;
    }
    pl->segs[pl->nsegs++] = seg;
    return 0;
}

/* Deletes the files of segments bases[from..n) that were never opened. */
static void delete_bases(struct coll_plog *pl, const int64_t *bases, size_t from, size_t n)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    for (size_t i = from; i < n; i++) {
        for (size_t e = 0; e < SL_ARRAY_LEN(exts); e++) {
            char path[PATH_MAX];
            if (coll_segment_path(path, sizeof(path), pl->dir, bases[i], exts[e]) == 0)
                unlink(path);
        }
    }
}

static void log_cut(struct coll_plog *pl, struct coll_segment *seg, const struct coll_seg_scan *sc,
                    uint64_t later_bytes)
{
    pl->cut_bytes += sc->file_bytes - sc->valid_bytes + later_bytes;
    SL_WARN(pl->name, "recovery cut the log at offset %" PRId64 " (segment %" PRId64
            ", byte %" PRIu64 "): %" PRIu64 " bytes dropped from it%s: %s", sc->next_offset,
            seg->base, sc->valid_bytes, sc->file_bytes - sc->valid_bytes,
            later_bytes ? ", and the later segments" : "", sc->why.msg);
}

static uint64_t file_bytes_of(struct coll_plog *pl, const int64_t *bases, size_t from, size_t n)
{
    uint64_t total = 0;
    for (size_t i = from; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        if (coll_segment_path(path, sizeof(path), pl->dir, bases[i], ".log") == 0 &&
            stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    return total;
}

int coll_plog_load(struct coll_plog *pl, bool clean, struct sl_err *err)
{
    int64_t *bases = NULL;
    size_t n = 0;
    int rc = list_dir(pl, &bases, &n, err);
    if (rc)
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" COLL_FILE_LOG_START, pl->dir);
    int64_t start = 0;
    int r = coll_read_offset_file(path, &start);
    if (r == SL_EPARSE) {
        SL_WARN(pl->name, "%s is damaged; using the first segment's base", path);
        start = 0;
    } else if (r && r != -ENOENT) {
        rc = sl_err_set(err, r, "%s: %s", path, sl_strerror(r));
        goto out;
    }
    pl->log_start = start;
    snprintf(path, sizeof(path), "%s/" COLL_FILE_RECOVERY_POINT, pl->dir);
    int64_t rp = 0;
    if (coll_read_offset_file(path, &rp) != 0)
        rp = 0;

    /* Segments wholly below the log start: finish the retention that removed them. */
    size_t first = 0;
    while (first + 1 < n && bases[first + 1] <= start)
        first++;
    delete_bases(pl, bases, 0, first);

    int64_t now = coll_plog_now(pl);
    bool recovered = false;
    for (size_t i = first; i < n; i++) {
        bool last = i + 1 == n;
        struct coll_segment *seg;
        if ((rc = coll_segment_open(pl->dir, bases[i], (uint32_t)pl->conf.index_interval, now,
                                    &seg, err)))
            goto out;
        if ((rc = push_seg(pl, seg))) {
            coll_segment_unref(seg);
            sl_err_set(err, rc, "out of memory");
            goto out;
        }
        bool check = !clean && (last || bases[i + 1] > rp);
        if (!check) {
            struct sl_err lerr = {{0}};
            uint64_t file_size = seg->size;
            r = coll_segment_load_indexes(seg, last ? -1 : bases[i + 1], &lerr);
            if (r == 0) {
                pl->cut_bytes += file_size - seg->size; /* the last one's tail may be cut */
                continue;
            }
            if (r != SL_ECORRUPT) {
                rc = sl_err_set(err, r, "%s", lerr.msg);
                goto out;
            }
            SL_WARN(pl->name, "rebuilding indexes: %s", lerr.msg);
        }
        struct coll_seg_scan sc;
        if ((rc = coll_segment_recover(seg, true, &sc))) {
            sl_err_set(err, rc, "%s: recovering %s.log: %s", pl->name, seg->path,
                       sl_strerror(rc));
            goto out;
        }
        /* Rebuilt indexes (and a cut .log) must reach the disk before anything relies on them:
         * on a clean start nothing else would sync them, and a crash could leave short index
         * files below the next recovery point, which a later start would trust. */
        if ((rc = coll_segment_sync(seg))) {
            sl_err_set(err, rc, "%s: sync of %s after rebuilding: %s", pl->name, seg->path,
                       sl_strerror(rc));
            goto out;
        }
        recovered = recovered || check;
        bool gap = !last && sc.next_offset != bases[i + 1];
        if (sc.bad || gap) {
            if (!sc.bad)
                sl_err_set(&sc.why, SL_ECORRUPT, "the next segment starts at %" PRId64
                           ", not at %" PRId64, bases[i + 1], sc.next_offset);
            log_cut(pl, seg, &sc, last ? 0 : file_bytes_of(pl, bases, i + 1, n));
            delete_bases(pl, bases, i + 1, n);
            break;
        }
    }
    if (pl->nsegs > 0 && pl->log_start < pl->segs[0]->base)
        pl->log_start = pl->segs[0]->base;
    int64_t end = pl->nsegs ? pl->segs[pl->nsegs - 1]->next_offset : 0;
    if (pl->log_start > end) {
        /* Everything readable was lost or removed: start over at the persisted start. */
        SL_WARN(pl->name, "log start offset %" PRId64 " is past the data (%" PRId64 ")",
                pl->log_start, end);
        for (size_t i = 0; i < pl->nsegs; i++) {
            coll_segment_remove_files(pl->segs[i]);
            coll_segment_unref(pl->segs[i]);
        }
        pl->nsegs = 0;
    }
    if (pl->nsegs == 0) {
        struct coll_segment *seg;
        if ((rc = coll_segment_create(pl->dir, pl->log_start, (uint32_t)pl->conf.index_interval,
                                      now, &seg, err)))
            goto out;
        if ((rc = push_seg(pl, seg))) {
            coll_segment_unref(seg);
            sl_err_set(err, rc, "out of memory");
            goto out;
        }
    }
    pl->next_offset = pl->segs[pl->nsegs - 1]->next_offset;
    if (recovered) {
        /* Every checked segment was synced above; a new empty one (everything lost) holds
         * nothing. The recovery point write also fsyncs the directory, which makes the cuts and
         * deleted later segments durable. */
        snprintf(path, sizeof(path), "%s/" COLL_FILE_RECOVERY_POINT, pl->dir);
        if ((r = coll_write_offset_file(path, pl->next_offset)))
            SL_WARN(pl->name, "cannot persist the recovery point: %s", sl_strerror(r));
        SL_NOTICE(pl->name, "recovered: offsets %" PRId64 "..%" PRId64 " in %zu segments",
                  pl->log_start, pl->next_offset, pl->nsegs);
    }
out:
    sl_free(bases);
    return rc;
}
