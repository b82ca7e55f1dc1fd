/* A partition's log: the segment list, appends and their durability, reads, roll. */
#include "collector/partition_log.h"

/*
 * data_dir/<topic>-<partition>/
 *   00000000000000000000.log .index .timeindex   the oldest segment
 *   00000000000001048576.log .index .timeindex   ...
 *   00000000000002097152.log .index .timeindex   the active segment: appends go here
 *   log-start-offset    decimal text: the first readable offset (only grows; written by
 *                       retention, temp file + rename)
 *   recovery-point      decimal text: every batch before it is known to be on disk, so an
 *                       unclean start checks only the segments from the one holding it
 *
 * Append path (loop thread): validate -> roll if due -> pwrite at the segment's end -> index in
 * memory -> `written` for the flusher -> policy (always: queue a sync now; interval: arm the
 * timer; never: done at once). The flusher's report completes waiters in offset order.
 */

#include "common/kafka_err.h"
#include "common/base.h"
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

int coll_log_conf_check(const struct coll_log_conf *c, struct sl_err *err)
{
    if (c->segment_bytes < 1024 || c->segment_bytes > INT32_MAX)
        return sl_err_set(err, SL_ECONFIG, "segment_bytes must be 1KiB..2GiB-1 (got %" PRId64 ")",
                          c->segment_bytes);
    if (c->segment_age_ms < 1)
        return sl_err_set(err, SL_ECONFIG, "segment_age must be positive");
    if (c->index_interval < 1 || c->index_interval > c->segment_bytes)
        return sl_err_set(err, SL_ECONFIG, "index_interval must be 1..segment_bytes (got %" PRId64
                          ")", c->index_interval);
    if (c->retention_ms < -1 || c->retention_ms == 0)
        return sl_err_set(err, SL_ECONFIG, "retention must be positive or -1 (unlimited)");
    if (c->retention_bytes < -1 || c->retention_bytes == 0)
        return sl_err_set(err, SL_ECONFIG, "retention_bytes must be positive or -1 (unlimited)");
    if (c->fsync != COLL_FSYNC_INTERVAL && c->fsync != COLL_FSYNC_ALWAYS &&
        c->fsync != COLL_FSYNC_NEVER)
        return sl_err_set(err, SL_ECONFIG, "fsync must be always, interval or never");
    if (c->fsync_interval_ms < 1)
        return sl_err_set(err, SL_ECONFIG, "fsync interval must be positive");
    if (c->max_batch_bytes < SL_BATCH_HEADER_SIZE || c->max_batch_bytes > c->segment_bytes)
        return sl_err_set(err, SL_ECONFIG, "max_batch_bytes must be %d..segment_bytes (got %"
                          PRId64 ")", SL_BATCH_HEADER_SIZE, c->max_batch_bytes);
    return 0;
}

int64_t coll_plog_now(const struct coll_plog *pl)
{
    return pl->env->now_ms(pl->env->clock_arg);
}

static struct coll_segment *active(const struct coll_plog *pl)
{
    return pl->segs[pl->nsegs - 1];
}

uint64_t coll_plog_size(const struct coll_plog *pl)
{
    uint64_t n = 0;
    for (size_t i = 0; i < pl->nsegs; i++)
        n += pl->segs[i]->size;
    return n;
}

int64_t coll_plog_durable_offset(struct coll_plog *pl)
{
    pthread_mutex_lock(&pl->fs.mu);
    int64_t d = pl->fs.durable;
    pthread_mutex_unlock(&pl->fs.mu);
    return d;
}

static void plog_on_flush_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct coll_plog *pl = sl_container_of(w, struct coll_plog, flush_timer);
    coll_flusher_request(pl->env->flusher, &pl->fs);
}

void coll_plog_flush(struct coll_plog *pl)
{
    coll_flusher_request(pl->env->flusher, &pl->fs);
}

/* ---- Waiters --------------------------------------------------------------------------------- */

static int waiters_reserve(struct coll_plog *pl)
{
    if (pl->w_len < pl->w_cap)
        return 0;
    size_t ncap = pl->w_cap ? pl->w_cap * 2 : 64;
    struct coll_waiter *n = sl_malloc(ncap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < pl->w_len; i++)
        n[i] = pl->waiters[(pl->w_head + i) % pl->w_cap];
    sl_free(pl->waiters);
    pl->waiters = n;
    pl->w_cap = ncap;
    pl->w_head = 0;
    return 0;
}

/* Completes, in order, the waiters that are durable (or all of them with `fail`). One at a
 * time from the head, because a callback may append (and grow the ring) or flush. */
static void complete_waiters(struct coll_plog *pl, int64_t durable, int fail)
{
    while (pl->w_len) {
        struct coll_waiter w = pl->waiters[pl->w_head];
        if (!fail && w.end > durable)
            break;
        pl->w_head = (pl->w_head + 1) % pl->w_cap;
        pl->w_len--;
        w.cb(w.arg, fail);
    }
}

void coll_plog_on_flushed(struct coll_plog *pl)
{
    pthread_mutex_lock(&pl->fs.mu);
    int64_t durable = pl->fs.durable;
    int error = pl->fs.error;
    pthread_mutex_unlock(&pl->fs.mu);
    complete_waiters(pl, durable, 0);
    if (error)
        complete_waiters(pl, durable, error);
}

/* ---- Open and close ------------------------------------------------------------------------- */

static void plog_free(struct coll_plog *pl)
{
    for (size_t i = 0; i < pl->nsegs; i++)
        coll_segment_unref(pl->segs[i]);
    sl_free(pl->segs);
    if (pl->fs_ready)
        coll_flush_state_fini(&pl->fs);
    sl_free(pl->waiters);
    sl_buf_fini(&pl->scratch);
    sl_free(pl->dir);
    sl_free(pl->name);
    sl_free(pl->topic);
    sl_free(pl);
}

int coll_plog_open(const struct coll_log_env *env, const char *dir, const char *topic,
                   int32_t partition, const struct coll_log_conf *conf, bool create, bool clean,
                   struct coll_plog **out, struct sl_err *err)
{
    int rc = -ENOMEM;
    struct coll_plog *pl = sl_calloc(1, sizeof(*pl));
    if (!pl)
        return sl_err_set(err, rc, "out of memory");
    sl_buf_init(&pl->scratch);
    pl->env = env;
    pl->conf = *conf;
    pl->partition = partition;
    char name[300];
    snprintf(name, sizeof(name), "%s-%" PRId32, topic, partition);
    pl->dir = sl_strdup(dir);
    pl->topic = sl_strdup(topic);
    pl->name = sl_strdup(name);
    if (!pl->dir || !pl->topic || !pl->name) {
        sl_err_set(err, rc, "out of memory");
        goto fail;
    }
    if (create && mkdir(dir, 0755) < 0 && errno != EEXIST) {
        rc = sl_err_set(err, -errno, "mkdir %s: %m", dir);
        goto fail;
    }
    if ((rc = coll_plog_load(pl, clean, err)))
        goto fail;
    char rp_path[PATH_MAX];
    snprintf(rp_path, sizeof(rp_path), "%s/" COLL_FILE_RECOVERY_POINT, dir);
    int afd = dup(active(pl)->log_fd);
    if (afd < 0) {
        rc = sl_err_set(err, -errno, "dup: %m");
        goto fail;
    }
    if ((rc = coll_flush_state_init(&pl->fs, afd, pl->next_offset, rp_path))) {
        sl_err_set(err, rc, "out of memory");
        goto fail;
    }
    pl->fs_ready = true;
    int64_t rp;
    if (coll_read_offset_file(rp_path, &rp) == 0)
        pl->fs.rp = rp;
    double iv = (double)conf->fsync_interval_ms / 1000.0;
    ev_timer_init(&pl->flush_timer, plog_on_flush_timer, iv, 0.0);
    *out = pl;
    return 0;
fail:
    plog_free(pl);
    return rc;
}

static void plog_detach(struct coll_plog *pl)
{
    ev_timer_stop(pl->env->loop, &pl->flush_timer);
    coll_flusher_detach(pl->env->flusher, &pl->fs);
}

int coll_plog_close(struct coll_plog *pl)
{
    if (!pl)
        return 0;
    plog_detach(pl);
    int rc = 0;
    for (size_t i = 0; i < pl->nsegs; i++) {
        struct coll_segment *seg = pl->segs[i];
        bool last = i + 1 == pl->nsegs;
        if (last || seg->index_write_failed || seg->idx_written < seg->idx_n ||
            seg->tidx_written < seg->tidx_n) {
            coll_segment_flush_indexes(seg, true);
            int r = coll_segment_sync(seg);
            if (r && !rc)
                rc = r;
        }
        /* An index whose write failed was unlinked then (segment.c): rebuilt at the next open. */
    }
    int r = coll_flush_now(pl->env->flusher, &pl->fs, rc ? -1 : pl->next_offset);
    if (r && !rc)
        rc = r;
    if (rc)
        SL_ERR(pl->name, "closing: %s; the next start recovers this partition", sl_strerror(rc));
    coll_plog_on_flushed(pl);
    complete_waiters(pl, 0, SL_ECLOSED);
    plog_free(pl);
    return rc;
}

void coll_plog_destroy(struct coll_plog *pl)
{
    if (!pl)
        return;
    plog_detach(pl);
    complete_waiters(pl, 0, SL_ECLOSED);
    plog_free(pl);
}

/* ---- Roll ------------------------------------------------------------------------------------ */

int coll_plog_roll(struct coll_plog *pl, struct sl_err *err)
{
    struct coll_segment *old = active(pl);
    if (old->next_offset == old->base)
        return 0;
    int rc = 0;
    if (pl->nsegs == pl->cap_segs) {
        size_t ncap = pl->cap_segs * 2;
        struct coll_segment **p = sl_realloc(pl->segs, ncap * sizeof(*p));
        if (!p)
            return sl_err_set(err, -ENOMEM, "out of memory");
        pl->segs = p;
        pl->cap_segs = ncap;
    }
    if (coll_flush_reserve(&pl->fs, 2))
        return sl_err_set(err, -ENOMEM, "out of memory");
    struct coll_segment *seg = NULL;
    if ((rc = coll_segment_create(pl->dir, pl->next_offset, (uint32_t)pl->conf.index_interval,
                                  coll_plog_now(pl), &seg, err)))
        return rc;
    int fds[3] = {dup(seg->log_fd), dup(old->idx_fd), dup(old->tidx_fd)};
    if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
        rc = sl_err_set(err, -errno, "dup: %m");
        for (size_t i = 0; i < 3; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        coll_segment_remove_files(seg);
        coll_segment_unref(seg);
        return rc;
    }
    /* A failed append whose cut-back failed too may have left bytes past old->size; appends
     * never go there again, but recovery and readers of the sealed file must not see them. */
    struct stat lst;
    if (fstat(old->log_fd, &lst) < 0 || (uint64_t)lst.st_size != old->size) {
        if (ftruncate(old->log_fd, (off_t)old->size) < 0)
            SL_WARN(pl->name, "%s.log: cannot cut it to %" PRIu64 " bytes before sealing: %m",
                    old->path, old->size);
    }
    coll_segment_flush_indexes(old, true);
    pl->segs[pl->nsegs++] = seg;
    /* The sealed .log itself is the flush state's old active descriptor. */
    coll_flush_roll(&pl->fs, fds[0], fds + 1, 2, seg->base);
    coll_flusher_request(pl->env->flusher, &pl->fs);
    SL_DEBUG(pl->name, "rolled to segment %" PRId64, seg->base);
    return 0;
}

/* ---- Append ---------------------------------------------------------------------------------- */

static int refuse(struct coll_append_res *res, int16_t kerr, int rc)
{
    res->kafka_err = kerr;
    return rc;
}

int coll_plog_append(struct coll_plog *pl, void *batch, size_t len, coll_durable_cb cb, void *arg,
                     struct coll_append_res *res, struct sl_err *err)
{
    res->base_offset = res->last_offset = -1;
    res->kafka_err = KAFKA_E_NONE;
    pthread_mutex_lock(&pl->fs.mu);
    int ferr = pl->fs.error;
    pthread_mutex_unlock(&pl->fs.mu);
    if (ferr)
        return refuse(res, KAFKA_E_KAFKA_STORAGE_ERROR,
                      sl_err_set(err, -EIO, "%s: an earlier fdatasync failed (%s); the partition "
                                 "takes no appends until reopened", pl->name, sl_strerror(ferr)));
    if (len > (uint64_t)pl->conf.max_batch_bytes)
        return refuse(res, KAFKA_E_MESSAGE_TOO_LARGE,
                      sl_err_set(err, SL_ETOOBIG, "%s: batch of %zu bytes is over the limit of %"
                                 PRId64, pl->name, len, pl->conf.max_batch_bytes));
    if (len < SL_BATCH_HEADER_SIZE)
        return refuse(res, KAFKA_E_CORRUPT_MESSAGE,
                      sl_err_set(err, SL_ETRUNC, "%s: %zu bytes cannot hold a record batch",
                                 pl->name, len));
    const uint8_t *b = batch;
    if (b[SL_BATCH_OFF_MAGIC] != SL_BATCH_MAGIC)
        return refuse(res, KAFKA_E_INVALID_RECORD,
                      sl_err_set(err, SL_EUNSUP, "%s: record batch magic %d; only 2 is accepted",
                                 pl->name, b[SL_BATCH_OFF_MAGIC]));
    struct sl_batch_header h;
    int rc = pl->conf.validate_records
                 ? sl_batch_validate(&h, batch, len, &pl->scratch,
                                     (size_t)pl->conf.max_batch_bytes * 64, SL_BATCH_STRICT, err)
                 : sl_batch_parse_header(&h, batch, len, SL_BATCH_STRICT, err);
    if (rc == SL_EUNSUP)
        return refuse(res, KAFKA_E_UNSUPPORTED_COMPRESSION_TYPE, rc);
    if (rc == SL_ETOOBIG)
        return refuse(res, KAFKA_E_MESSAGE_TOO_LARGE, rc);
    if (rc == -ENOMEM)
        return refuse(res, KAFKA_E_UNKNOWN_SERVER_ERROR, rc);
    if (rc)
        return refuse(res, KAFKA_E_CORRUPT_MESSAGE, rc);
    if (h.size != len)
        return refuse(res, KAFKA_E_INVALID_RECORD,
                      sl_err_set(err, SL_EPARSE, "%s: %zu bytes after the first batch; one batch "
                                 "per partition is allowed", pl->name, len - h.size));
    if (h.last_offset_delta < 0 || pl->next_offset > INT64_MAX - 1 - h.last_offset_delta)
        return refuse(res, KAFKA_E_INVALID_RECORD,
                      sl_err_set(err, SL_EPARSE, "%s: empty batch or offsets overflow", pl->name));

    int64_t now = coll_plog_now(pl);
    struct coll_segment *seg = active(pl);
    bool due = seg->size + len > (uint64_t)pl->conf.segment_bytes ||
               now - seg->created_ms >= pl->conf.segment_age_ms ||
               /* Kafka's limit: relative offsets fit a signed 32-bit int */
               pl->next_offset + h.last_offset_delta - seg->base > (int64_t)INT32_MAX;
    if (due && seg->next_offset > seg->base) {
        if ((rc = coll_plog_roll(pl, err)))
            return refuse(res, KAFKA_E_KAFKA_STORAGE_ERROR, rc);
        seg = active(pl);
    }
    if (coll_segment_reserve(seg) || (cb && waiters_reserve(pl)))
        return refuse(res, KAFKA_E_UNKNOWN_SERVER_ERROR, sl_err_set(err, -ENOMEM, "out of memory"));
    h.base_offset = pl->next_offset;
    sl_batch_rewrite(batch, len, h.base_offset, 0);
    if ((rc = coll_segment_append(seg, batch, &h, now))) {
        SL_ERR(pl->name, "append at offset %" PRId64 " failed: %s", h.base_offset,
               sl_strerror(rc));
        return refuse(res, KAFKA_E_KAFKA_STORAGE_ERROR,
                      sl_err_set(err, rc, "%s: writing to %s.log: %s", pl->name, seg->path,
                                 sl_strerror(rc)));
    }
    pl->next_offset = sl_batch_last_offset(&h) + 1;
    res->base_offset = h.base_offset;
    res->last_offset = pl->next_offset - 1;
    coll_flush_set_written(&pl->fs, pl->next_offset);
    if (cb) {
        pl->waiters[(pl->w_head + pl->w_len) % pl->w_cap] =
            (struct coll_waiter){pl->next_offset, cb, arg};
        pl->w_len++;
    }
    switch (pl->conf.fsync) {
    case COLL_FSYNC_ALWAYS:
        coll_flusher_request(pl->env->flusher, &pl->fs);
        break;
    case COLL_FSYNC_INTERVAL:
        if (!ev_is_active(&pl->flush_timer)) {
            ev_timer_set(&pl->flush_timer, (double)pl->conf.fsync_interval_ms / 1000.0, 0.0);
            ev_timer_start(pl->env->loop, &pl->flush_timer);
        }
        break;
    case COLL_FSYNC_NEVER:
        pthread_mutex_lock(&pl->fs.mu);
        if (pl->next_offset > pl->fs.durable)
            pl->fs.durable = pl->next_offset;
        pthread_mutex_unlock(&pl->fs.mu);
        if (cb)
            coll_flusher_notify(pl->env->flusher, &pl->fs);
        break;
    }
    return 0;
}

/* ---- Reads ----------------------------------------------------------------------------------- */

/* Index of the segment whose base is the largest <= offset (0 when offset is below all). */
static size_t seg_for(const struct coll_plog *pl, int64_t offset)
{
    size_t lo = 0, hi = pl->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->segs[mid]->base <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void coll_region_release(struct coll_region *r)
{
    if (r && r->seg) {
        coll_segment_unref(r->seg);
        r->seg = NULL;
    }
}

int coll_plog_read(struct coll_plog *pl, int64_t offset, size_t max_bytes, struct coll_region *r,
                   struct sl_err *err)
{
    *r = (struct coll_region){.fd = -1, .first_offset = offset, .end_offset = offset};
    if (offset < pl->log_start || offset > pl->next_offset)
        return sl_err_set(err, -ERANGE, "%s: offset %" PRId64 " is outside %" PRId64 "..%" PRId64,
                          pl->name, offset, pl->log_start, pl->next_offset);
    for (size_t i = seg_for(pl, offset); i < pl->nsegs; i++) {
        struct coll_segment *seg = pl->segs[i];
        struct coll_seg_batch b;
        int rc = coll_segment_find_offset(seg, SL_MAX(offset, seg->base), &b, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        size_t len;
        int64_t end_offset;
        if ((rc = coll_segment_read_extent(seg, &b, max_bytes, &len, &end_offset, err)))
            return rc;
        coll_segment_ref(seg);
        *r = (struct coll_region){seg->log_fd, b.pos, len, b.base_offset, end_offset, seg};
        return 0;
    }
    return 0;
}

int coll_plog_find_time(struct coll_plog *pl, int64_t ts, int64_t *offset, struct sl_err *err)
{
    *offset = -1;
    for (size_t i = 0; i < pl->nsegs; i++) {
        struct coll_segment *seg = pl->segs[i];
        if (seg->max_ts < ts)
            continue;
        /* Kafka's Log.fetchOffsetsByTimestamp: records below the log start do not count. */
        int rc = coll_segment_find_time(seg, ts, pl->log_start, offset, err);
        if (rc)
            return rc;
        if (*offset >= 0)
            return 0;
    }
    return 0;
}
