/* Retention: deleting a partition's oldest whole segments by age and by total size. */
#include "collector/partition_log.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

/* Removes segs[0] after persisting the new log start (so a crash in between leaves a start
 * offset that the next open uses to finish the deletion). */
static int drop_oldest(struct coll_plog *pl, const char *why, struct sl_err *err)
{
    struct coll_segment *seg = pl->segs[0];
    int64_t new_start = pl->segs[1]->base;
    if (new_start > pl->log_start) {
        int64_t old = pl->log_start;
        pl->log_start = new_start;
        int rc = coll_plog_save_start(pl);
        if (rc) {
            pl->log_start = old;
            return sl_err_set(err, rc, "%s: persisting log start offset %" PRId64 ": %s",
                              pl->name, new_start, sl_strerror(rc));
        }
    }
    SL_INFO(pl->name, "retention (%s): deleting segment %" PRId64 " (%" PRIu64 " bytes)", why,
            seg->base, seg->size);
    int rc = coll_segment_remove_files(seg);
    if (rc)
        SL_WARN(pl->name, "removing segment %" PRId64 ": %s", seg->base, sl_strerror(rc));
    memmove(pl->segs, pl->segs + 1, (pl->nsegs - 1) * sizeof(*pl->segs));
    pl->nsegs--;
    coll_segment_unref(seg); /* readers holding a region keep the files open */
    return 0;
}

/* The segment's age reference: its newest record timestamp, or, when none of its batches has
 * one (maxTimestamp -1), the .log's modification time, as Kafka does; -1 when neither is known. */
static int64_t newest_ms(const struct coll_segment *seg)
{
    if (seg->max_ts >= 0)
        return seg->max_ts;
    struct stat st;
    if (fstat(seg->log_fd, &st) < 0)
        return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static bool expired(const struct coll_plog *pl, const struct coll_segment *seg, int64_t now_ms)
{
    if (pl->conf.retention_ms <= 0 || seg->next_offset == seg->base)
        return false;
    int64_t newest = newest_ms(seg);
    return newest >= 0 && newest < now_ms - pl->conf.retention_ms;
}

int coll_plog_retain(struct coll_plog *pl, int64_t now_ms, struct sl_err *err)
{
    int deleted = 0, rc;
    /* An expired active segment is rolled so that it can go too (the new one is empty). */
    if (expired(pl, pl->segs[pl->nsegs - 1], now_ms)) {
        bool all = true;
        for (size_t i = 0; i + 1 < pl->nsegs && all; i++)
            all = expired(pl, pl->segs[i], now_ms);
        if (all && (rc = coll_plog_roll(pl, err)))
            return rc;
    }
    while (pl->nsegs > 1 && expired(pl, pl->segs[0], now_ms)) {
        if ((rc = drop_oldest(pl, "age", err)))
            return rc;
        deleted++;
    }
    if (pl->conf.retention_bytes > 0) {
        uint64_t total = coll_plog_size(pl);
        while (pl->nsegs > 1 && total - pl->segs[0]->size >= (uint64_t)pl->conf.retention_bytes) {
            total -= pl->segs[0]->size;
            if ((rc = drop_oldest(pl, "size", err)))
                return rc;
            deleted++;
        }
    }
    return deleted;
}
