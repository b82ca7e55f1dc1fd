/* Group commit: one thread fdatasyncs partitions queued by the loop and reports via ev_async. */
#include "collector/flusher.h"

#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The group commit, on a timeline (W = write() on the loop, S = fdatasync on the flusher):
 *
 *   loop     W1 W2 ........ W3 W4 W5 ............. W6
 *   flusher     [S covers 1-2]  [S covers 3-5]      [S covers 6]
 *   acks            1, 2             3, 4, 5             6
 *
 * A partition is queued at most once; the flusher dequeues it before syncing, so an append
 * during the sync queues it again and the next sync covers everything that arrived meanwhile.
 */

struct coll_flusher {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work queued, or stop */
    pthread_cond_t idle_cv; /* `current` changed */
    pthread_t thread;
    bool thread_started;
    bool stop;
    struct coll_flush_state *q_head, *q_tail; /* waiting for a sync */
    struct coll_flush_state *done_head;       /* waiting for done_cb */
    struct coll_flush_state *current;         /* being synced */
    int (*sync_fn)(int fd);
    struct ev_loop *loop; /* borrowed */
    ev_async async;
    ev_prepare prepare;
    struct coll_flush_state *pend_head; /* loop thread only: requested this iteration */
    bool async_started;
    coll_flusher_done_cb done_cb;
    void *done_arg;
};

int coll_flusher_sync_fd(struct coll_flusher *f, int fd)
{
    int (*fn)(int) = f ? f->sync_fn : NULL;
    int r = fn ? fn(fd) : fdatasync(fd);
    return r < 0 ? -(errno ? errno : EIO) : 0;
}

void coll_flusher_set_sync_fn(struct coll_flusher *f, int (*fn)(int fd))
{
    pthread_mutex_lock(&f->mu);
    f->sync_fn = fn;
    pthread_mutex_unlock(&f->mu);
}

static int fsync_dir_of(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    int dfd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int rc = fsync(dfd) < 0 ? -errno : 0;
    close(dfd);
    return rc;
}

int coll_write_offset_file(const char *path, int64_t value)
{
    char tmp[PATH_MAX];
    int w = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (w < 0 || (size_t)w >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRId64 "\n", value);
    int rc = 0;
    if (write(fd, text, (size_t)n) != n)
        rc = errno ? -errno : -EIO;
    else if (fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir_of(path);
}

int coll_read_offset_file(const char *path, int64_t *value)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char text[32];
    ssize_t n = read(fd, text, sizeof(text) - 1);
    int saved = errno;
    close(fd);
    if (n < 0)
        return -saved;
    text[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || (*end != '\n' && *end != '\0') || v < 0)
        return SL_EPARSE;
    *value = v;
    return 0;
}

int coll_flush_state_init(struct coll_flush_state *fs, int active_fd, int64_t offset,
                          const char *rp_path)
{
    memset(fs, 0, sizeof(*fs));
    fs->active_fd = active_fd;
    fs->written = fs->durable = fs->rp = fs->sealed_rp = offset;
    fs->rp_path = sl_strdup(rp_path);
    fs->dir_dirty = true; /* the active segment may just have been created */
    pthread_mutex_init(&fs->mu, NULL);
    if (!fs->rp_path) {
        coll_flush_state_fini(fs);
        return -ENOMEM;
    }
    return 0;
}

void coll_flush_state_fini(struct coll_flush_state *fs)
{
    if (fs->active_fd >= 0)
        close(fs->active_fd);
    fs->active_fd = -1;
    for (size_t i = 0; i < fs->n_sealed; i++)
        close(fs->sealed[i]);
    SL_FREE(fs->sealed);
    fs->n_sealed = fs->cap_sealed = 0;
    SL_FREE(fs->rp_path);
    pthread_mutex_destroy(&fs->mu);
}

void coll_flush_set_written(struct coll_flush_state *fs, int64_t written)
{
    pthread_mutex_lock(&fs->mu);
    fs->written = written;
    pthread_mutex_unlock(&fs->mu);
}

/* Syncs and closes fds; returns the first error. */
static int sync_close_all(struct coll_flusher *f, int *fds, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = coll_flusher_sync_fd(f, fds[i]);
        if (r && !rc)
            rc = r;
        close(fds[i]);
    }
    return rc;
}

int coll_flush_reserve(struct coll_flush_state *fs, size_t n)
{
    pthread_mutex_lock(&fs->mu);
    int rc = 0;
    if (fs->n_sealed + n + 1 > fs->cap_sealed) {
        size_t ncap = (fs->n_sealed + n + 1) * 2;
        int *p = sl_realloc(fs->sealed, ncap * sizeof(*p));
        if (p) {
            fs->sealed = p;
            fs->cap_sealed = ncap;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

void coll_flush_roll(struct coll_flush_state *fs, int new_active_fd, const int *fds, size_t n,
                     int64_t rp)
{
    pthread_mutex_lock(&fs->mu);
    SL_ASSERT(fs->n_sealed + n + 1 <= fs->cap_sealed);
    memcpy(fs->sealed + fs->n_sealed, fds, n * sizeof(*fds));
    fs->n_sealed += n;
    /* The old active descriptor may be in the flusher's hands right now: it is sealed too, so
     * the flusher closes it after a sync, never under its own feet. */
    if (fs->active_fd >= 0)
        fs->sealed[fs->n_sealed++] = fs->active_fd;
    fs->sealed_rp = rp;
    fs->active_fd = new_active_fd;
    fs->dir_dirty = true;
    pthread_mutex_unlock(&fs->mu);
}

/* One sync of fs on the calling thread; returns 0 or -errno. */
static int flush_one(struct coll_flusher *f, struct coll_flush_state *fs, int64_t final_rp)
{
    pthread_mutex_lock(&fs->mu);
    int64_t target = fs->written;
    int active = fs->active_fd;
    /* Taken out by copy, so the array keeps the room coll_flush_reserve made. */
    int sealed[64];
    size_t n_sealed = SL_MIN(fs->n_sealed, SL_ARRAY_LEN(sealed));
    if (n_sealed) {
        memcpy(sealed, fs->sealed, n_sealed * sizeof(*sealed));
        memmove(fs->sealed, fs->sealed + n_sealed, (fs->n_sealed - n_sealed) * sizeof(*sealed));
        fs->n_sealed -= n_sealed;
    }
    bool more = fs->n_sealed > 0;
    int64_t sealed_rp = more ? -1 : fs->sealed_rp;
    int prev_err = fs->error;
    bool dir_dirty = fs->dir_dirty;
    fs->dir_dirty = false;
    pthread_mutex_unlock(&fs->mu);

    int rc = sync_close_all(f, sealed, n_sealed);
    if (dir_dirty) {
        /* A new segment's name must be durable before anything in it is acknowledged. */
        int r = fsync_dir_of(fs->rp_path);
        if (r && !rc)
            rc = r;
    }
    if (active >= 0) {
        int r = coll_flusher_sync_fd(f, active);
        if (r && !rc)
            rc = r;
    }
    int64_t rp = more ? -1 : final_rp >= 0 ? final_rp : sealed_rp;
    if (rc == 0 && !prev_err && rp > fs->rp) {
        int r = coll_write_offset_file(fs->rp_path, rp);
        if (r)
            SL_WARN("storage", "%s: cannot persist the recovery point: %s", fs->rp_path,
                    sl_strerror(r));
        else
            fs->rp = rp;
    }
    pthread_mutex_lock(&fs->mu);
    if (rc && !fs->error)
        fs->error = rc;
    /* With sealed files still waiting (more than one round's worth of rolls), data up to target
     * may sit in one of them: the round that syncs the last of them raises durable. */
    if (!fs->error && !more && target > fs->durable)
        fs->durable = target;
    pthread_mutex_unlock(&fs->mu);
    if (rc)
        SL_ERR("storage", "fdatasync failed for %s's partition: %s; nothing more is "
               "acknowledged on it", fs->rp_path, sl_strerror(rc));
    return rc;
}

int coll_flush_now(struct coll_flusher *f, struct coll_flush_state *fs, int64_t rp)
{
    int rc, e;
    bool more;
    do {
        rc = flush_one(f, fs, rp);
        pthread_mutex_lock(&fs->mu);
        e = fs->error;
        more = fs->n_sealed > 0;
        pthread_mutex_unlock(&fs->mu);
    } while (more);
    return rc ? rc : e;
}

static void enqueue_locked(struct coll_flusher *f, struct coll_flush_state *fs);
static void flusher_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents);

static void push_done_locked(struct coll_flusher *f, struct coll_flush_state *fs)
{
    if (!fs->done_queued) {
        fs->done_queued = true;
        fs->next_done = f->done_head;
        f->done_head = fs;
    }
}

static void *flusher_main(void *arg)
{
    struct coll_flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->q_head && !f->stop)
            pthread_cond_wait(&f->cv, &f->mu);
        if (!f->q_head)
            break;
        struct coll_flush_state *fs = f->q_head;
        f->q_head = fs->next_q;
        if (!f->q_head)
            f->q_tail = NULL;
        fs->queued = false;
        fs->next_q = NULL;
        f->current = fs;
        pthread_mutex_unlock(&f->mu);
        flush_one(f, fs, -1);
        pthread_mutex_lock(&f->mu);
        pthread_mutex_lock(&fs->mu);
        bool more = fs->n_sealed > 0;
        pthread_mutex_unlock(&fs->mu);
        if (more)
            enqueue_locked(f, fs);
        f->current = NULL;
        push_done_locked(f, fs);
        pthread_cond_broadcast(&f->idle_cv);
        ev_async_send(f->loop, &f->async);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void flusher_on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    struct coll_flusher *f = sl_container_of(w, struct coll_flusher, async);
    /* One at a time: done_cb may close (detach) another partition, which must then vanish
     * from the list before we reach it. */
    for (;;) {
        pthread_mutex_lock(&f->mu);
        struct coll_flush_state *fs = f->done_head;
        if (fs) {
            f->done_head = fs->next_done;
            fs->done_queued = false;
        }
        pthread_mutex_unlock(&f->mu);
        if (!fs)
            break;
        f->done_cb(fs, f->done_arg);
    }
}

int coll_flusher_new(struct ev_loop *loop, coll_flusher_done_cb done_cb, void *arg,
                     struct coll_flusher **out, struct sl_err *err)
{
    struct coll_flusher *f = sl_calloc(1, sizeof(*f));
    if (!f)
        return sl_err_set(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_cond_init(&f->idle_cv, NULL);
    f->loop = loop;
    f->done_cb = done_cb;
    f->done_arg = arg;
    ev_async_init(&f->async, flusher_on_async);
    ev_async_start(loop, &f->async);
    ev_unref(loop);
    ev_prepare_init(&f->prepare, flusher_on_prepare);
    ev_prepare_start(loop, &f->prepare);
    ev_unref(loop);
    f->async_started = true;
    int rc = pthread_create(&f->thread, NULL, flusher_main, f);
    if (rc) {
        coll_flusher_free(f);
        return sl_err_set(err, -rc, "cannot start the flusher thread: %s", strerror(rc));
    }
    f->thread_started = true;
    *out = f;
    return 0;
}

void coll_flusher_free(struct coll_flusher *f)
{
    if (!f)
        return;
    if (f->thread_started) {
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    if (f->async_started) {
        ev_ref(f->loop);
        ev_async_stop(f->loop, &f->async);
        ev_ref(f->loop);
        ev_prepare_stop(f->loop, &f->prepare);
    }
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->idle_cv);
    pthread_mutex_destroy(&f->mu);
    sl_free(f);
}

static void enqueue_locked(struct coll_flusher *f, struct coll_flush_state *fs)
{
    if (!fs->queued) {
        fs->queued = true;
        fs->next_q = NULL;
        if (f->q_tail)
            f->q_tail->next_q = fs;
        else
            f->q_head = fs;
        f->q_tail = fs;
        pthread_cond_signal(&f->cv);
    }
}

void coll_flusher_request(struct coll_flusher *f, struct coll_flush_state *fs)
{
    if (!fs->pending) {
        fs->pending = true;
        fs->next_pend = f->pend_head;
        f->pend_head = fs;
    }
}

static void flusher_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct coll_flusher *f = sl_container_of(w, struct coll_flusher, prepare);
    if (!f->pend_head)
        return;
    pthread_mutex_lock(&f->mu);
    while (f->pend_head) {
        struct coll_flush_state *fs = f->pend_head;
        f->pend_head = fs->next_pend;
        fs->pending = false;
        enqueue_locked(f, fs);
    }
    pthread_mutex_unlock(&f->mu);
}

void coll_flusher_notify(struct coll_flusher *f, struct coll_flush_state *fs)
{
    pthread_mutex_lock(&f->mu);
    push_done_locked(f, fs);
    pthread_mutex_unlock(&f->mu);
    ev_async_send(f->loop, &f->async);
}

void coll_flusher_detach(struct coll_flusher *f, struct coll_flush_state *fs)
{
    if (fs->pending) {
        struct coll_flush_state **pp = &f->pend_head;
        while (*pp && *pp != fs)
            pp = &(*pp)->next_pend;
        if (*pp)
            *pp = fs->next_pend;
        fs->pending = false;
    }
    pthread_mutex_lock(&f->mu);
    /* First let a running flush end: the thread requeues fs when sealed files remain, so
     * unlinking before it is done could leave fs in the queue after we return. */
    while (f->current == fs)
        pthread_cond_wait(&f->idle_cv, &f->mu);
    if (fs->queued) {
        struct coll_flush_state **pp = &f->q_head, *prev = NULL;
        while (*pp && *pp != fs) {
            prev = *pp;
            pp = &(*pp)->next_q;
        }
        if (*pp) {
            *pp = fs->next_q;
            if (f->q_tail == fs)
                f->q_tail = prev;
        }
        fs->queued = false;
        fs->next_q = NULL;
    }
    if (fs->done_queued) {
        struct coll_flush_state **pp = &f->done_head;
        while (*pp && *pp != fs)
            pp = &(*pp)->next_done;
        if (*pp)
            *pp = fs->next_done;
        fs->done_queued = false;
    }
    pthread_mutex_unlock(&f->mu);
}
