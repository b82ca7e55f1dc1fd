/* Group commit: a thread that fdatasyncs partitions off the event loop and reports back. */
#ifndef SL_COLLECTOR_FLUSHER_H
#define SL_COLLECTOR_FLUSHER_H

#include "common/err.h"

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * One partition's durability state, shared by the loop thread and the flusher thread (every
 * field under mu, the list links under the flusher's lock). The loop appends with write() and
 * raises `written`; the flusher takes `written` as its target, fdatasyncs the active .log (and
 * whatever segments were rolled since), then raises `durable` to the target. Appends that
 * arrive while an fdatasync runs queue the partition again, and the next fdatasync covers all
 * of them at once: that is the group commit.
 */
struct coll_flush_state {
    pthread_mutex_t mu;
    int active_fd;     /* owned: a dup of the active segment's .log, or -1 */
    int *sealed;       /* owned fds of rolled segments (.log, .index, .timeindex), to sync+close */
    size_t n_sealed, cap_sealed;
    int64_t sealed_rp; /* the recovery point once the sealed files are synced */
    int64_t rp;        /* the recovery point last persisted */
    int64_t written;   /* offset after the last appended batch (set by the loop) */
    int64_t durable;   /* offset after the last batch known to be on disk (set by the flusher) */
    int error;         /* first fdatasync failure, sticky: nothing is acknowledged after it */
    bool dir_dirty;    /* a segment file was created: fsync the directory before acking */
    char *rp_path;     /* owned: the partition's recovery-point file */
    /* flusher-owned links */
    bool queued, done_queued, pending;
    struct coll_flush_state *next_q, *next_done, *next_pend;
};

struct coll_flusher;

/* Called on the loop thread when a partition's durable offset or error changed. */
typedef void (*coll_flusher_done_cb)(struct coll_flush_state *fs, void *arg);

/*
 * Starts the flusher thread and its ev_async watcher on loop (the loop is borrowed; the
 * watcher is unref'd so an idle flusher does not keep ev_run alive). done_cb runs on the loop
 * thread. Returns 0, -ENOMEM, or -errno from pthread_create.
 */
int coll_flusher_new(struct ev_loop *loop, coll_flusher_done_cb done_cb, void *arg,
                     struct coll_flusher **out, struct sl_err *err);

/* Stops the thread (after the queue empties), stops the watcher and frees. No partition may be
 * attached any more. NULL-safe. */
void coll_flusher_free(struct coll_flusher *f);

/* Test hook: replaces fdatasync (NULL restores it); fn returns 0 or -1 with errno set. */
void coll_flusher_set_sync_fn(struct coll_flusher *f, int (*fn)(int fd));

/* Runs the flusher's fdatasync (the hook when set). Returns 0 or -errno. */
int coll_flusher_sync_fd(struct coll_flusher *f, int fd);

/*
 * Prepares fs: takes ownership of active_fd (a descriptor of the active .log only fs uses),
 * starts durable/written/rp at `offset` (everything before it is on disk) and remembers
 * rp_path (copied). Returns 0 or -ENOMEM (active_fd is then closed).
 */
int coll_flush_state_init(struct coll_flush_state *fs, int active_fd, int64_t offset,
                          const char *rp_path);

/* Closes every fd fs owns and frees it; the caller detached it from the flusher first. */
void coll_flush_state_fini(struct coll_flush_state *fs);

/* Loop thread: the appended end moved to `written`. */
void coll_flush_set_written(struct coll_flush_state *fs, int64_t written);

/* Loop thread, before a roll: makes room to take n more sealed fds, so the roll cannot fail.
 * Returns 0 or -ENOMEM. */
int coll_flush_reserve(struct coll_flush_state *fs, size_t n);

/*
 * Loop thread, at a segment roll (after coll_flush_reserve(fs, n)): the n fds of the sealed
 * segment's files and the old active .log go to the flusher (ownership taken), which syncs and
 * closes them on its next round and then persists `rp`, the new recovery point; new_active_fd
 * (owned) becomes the active .log.
 */
void coll_flush_roll(struct coll_flush_state *fs, int new_active_fd, const int *fds, size_t n,
                     int64_t rp);

/* Queues fs for an fdatasync (no-op when already queued). Loop thread. The request reaches the
 * thread when the loop iteration ends (ev_prepare), so every append made in one iteration (all
 * the produce requests read at once, all the appends that acknowledgements triggered) shares
 * one fdatasync. */
void coll_flusher_request(struct coll_flusher *f, struct coll_flush_state *fs);

/* Schedules done_cb for fs on the loop without syncing (for fsync: never). */
void coll_flusher_notify(struct coll_flusher *f, struct coll_flush_state *fs);

/* Removes fs from the flusher's queues and waits until the thread is not working on it. */
void coll_flusher_detach(struct coll_flusher *f, struct coll_flush_state *fs);

/*
 * Syncs everything fs holds on the calling thread (for a clean close): sealed files, the active
 * .log; persists the recovery point `rp` when all went well. Returns 0 or -errno (also made
 * the sticky error).
 */
int coll_flush_now(struct coll_flusher *f, struct coll_flush_state *fs, int64_t rp);

/*
 * Writes `value` as decimal text to path atomically and durably (temp file, fdatasync,
 * rename, fsync of the directory). Used for the recovery point and the log start offset.
 * Returns 0 or -errno.
 */
int coll_write_offset_file(const char *path, int64_t value);

/* Reads a file written by coll_write_offset_file. Returns 0, -ENOENT when there is none,
 * SL_EPARSE when it is not a number, or -errno. */
int coll_read_offset_file(const char *path, int64_t *value);

#endif
