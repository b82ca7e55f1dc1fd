/* in_tail's scanner: globs and inotify find files, identity (device, inode, fingerprint) tells
 * rotation, truncation and inode reuse apart, and checkpoints persist acknowledged offsets. */
#include "plugins/in_tail.h"

#include "common/base.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/mem.h"
#include "plugins/in_tail_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * A file's life:
 *
 *   found by a rescan --(checkpoint entry with same dev, ino, fingerprint: resume there;
 *                        first start and read_from tail: its end; else: 0)--> followed
 *   followed --inotify IN_MODIFY / rescan sees growth--> ready --read, split, emit--> followed
 *   followed --size below read position, or first bytes changed--> restarted from 0 (logged)
 *   followed --idle for idle_close--> closed (fd released); reopened when it grows
 *   followed --its path names another inode, or nothing (rename, delete)--> rotated:
 *            read to its end --> released (fd closed) --all acknowledged--> freed
 *
 * Rescans run every rescan_ms and soon after a watched folder changes (IN_CREATE, IN_MOVED_*,
 * IN_DELETE), so folders created later are picked up too. Each open file has its own watch
 * (IN_MODIFY on the inode, which follows renames) so appends are read without polling.
 */

#define WHO(t)           ((t)->ctx.name)
#define READ_BUDGET_FILE (1u << 20) /* bytes per file per turn, so one busy file shares */
#define READ_BUDGET_TURN (8u << 20) /* bytes per turn over all files, so the loop breathes */
#define RESCAN_SOON      0.05
#define BUFFER_KEEP      5.0 /* seconds an idle file keeps its read buffer */

static void tail_schedule(struct in_tail *t);

/* ---- small helpers ---------------------------------------------------------------------- */

static bool excluded(const struct in_tail *t, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < t->conf->exclude.len; i++) {
        const char *pat = t->conf->exclude.items[i];
        if (fnmatch(pat, path, 0) == 0 || fnmatch(pat, base, 0) == 0)
            return true;
    }
    return false;
}

/* CRC-32C of the first n bytes of fd; false when fewer than n bytes could be read. */
static bool fingerprint(int fd, uint32_t n, uint32_t *crc)
{
    uint8_t b[IN_TAIL_FP_MAX];
    if (n > sizeof(b))
        return false;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    *crc = sl_crc32c(0, b, n);
    return true;
}

static void ready_push(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (f->in_ready || f->released)
        return;
    f->in_ready = true;
    f->rnext = NULL;
    if (t->ready_tail)
        t->ready_tail->rnext = f;
    else
        t->ready_head = f;
    t->ready_tail = f;
    tail_schedule(t);
}

static struct tail_file *ready_pop(struct in_tail *t)
{
    struct tail_file *f = t->ready_head;
    if (!f)
        return NULL;
    t->ready_head = f->rnext;
    if (!t->ready_head)
        t->ready_tail = NULL;
    f->rnext = NULL;
    f->in_ready = false;
    return f;
}

static void ready_remove(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (!f->in_ready)
        return;
    struct tail_file *prev = NULL;
    for (struct tail_file *g = t->ready_head; g; prev = g, g = g->rnext) {
        if (g != f)
            continue;
        if (prev)
            prev->rnext = g->rnext;
        else
            t->ready_head = g->rnext;
        if (t->ready_tail == g)
            t->ready_tail = prev;
        break;
    }
    f->in_ready = false;
    f->rnext = NULL;
}

/* ---- inotify watches ---------------------------------------------------------------------- */

static void watch_add(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (t->ino_fd < 0 || f->wd >= 0)
        return;
    f->wd = inotify_add_watch(t->ino_fd, f->path,
                              IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB);
    if (f->wd < 0) {
        /* The periodic rescan still notices growth; only latency suffers. */
        SL_DEBUG(WHO(t), "%s: inotify watch: %s", f->path, strerror(errno));
        return;
    }
    size_t h = (size_t)f->wd % IN_TAIL_WD_BUCKETS;
    f->wnext = t->by_wd[h];
    t->by_wd[h] = f;
}

static void watch_unlink(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (f->wd < 0)
        return;
    for (struct tail_file **pp = &t->by_wd[(size_t)f->wd % IN_TAIL_WD_BUCKETS]; *pp;
         pp = &(*pp)->wnext) {
        if (*pp == f) {
            *pp = f->wnext;
            break;
        }
    }
    f->wnext = NULL;
}

static void watch_remove(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (f->wd < 0)
        return;
    watch_unlink(f);
    /* Another file may share the watch (the same inode under two names is not followed
     * twice, so this is only a race with the kernel's own removal): ignore errors. */
    inotify_rm_watch(t->ino_fd, f->wd);
    f->wd = -1;
}

static struct tail_file *file_by_wd(struct in_tail *t, int wd)
{
    for (struct tail_file *f = t->by_wd[(size_t)wd % IN_TAIL_WD_BUCKETS]; f; f = f->wnext)
        if (f->wd == wd)
            return f;
    return NULL;
}

static bool is_dir_wd(const struct in_tail *t, int wd)
{
    for (size_t i = 0; i < t->ndir_wds; i++)
        if (t->dir_wds[i] == wd)
            return true;
    return false;
}

static void watch_dir(struct in_tail *t, const char *dir)
{
    if (t->ino_fd < 0)
        return;
    int wd = inotify_add_watch(t->ino_fd, dir,
                               IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR);
    if (wd < 0 || is_dir_wd(t, wd))
        return;
    if (t->ndir_wds == t->cap_dir_wds) {
        size_t cap = t->cap_dir_wds ? t->cap_dir_wds * 2 : 8;
        int *n = sl_realloc(t->dir_wds, cap * sizeof(*n));
        if (!n)
            return;
        t->dir_wds = n;
        t->cap_dir_wds = cap;
    }
    t->dir_wds[t->ndir_wds++] = wd;
}

static void rescan_soon(struct in_tail *t)
{
    if (!t->started)
        return;
    double left = ev_timer_remaining(t->ctx.loop, &t->rescan);
    if (ev_is_active(&t->rescan) && left <= RESCAN_SOON)
        return;
    ev_timer_stop(t->ctx.loop, &t->rescan);
    ev_timer_set(&t->rescan, RESCAN_SOON, (double)t->conf->rescan_ms / 1000.0);
    ev_timer_start(t->ctx.loop, &t->rescan);
}

static void tail_on_inotify(struct ev_loop *loop, ev_io *w, int revents)
{
    struct in_tail *t = sl_container_of(w, struct in_tail, ino_io);
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(t->ino_fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                for (struct tail_file *f = t->files; f; f = f->next)
                    if (f->fd >= 0)
                        ready_push(f);
                rescan_soon(t);
                continue;
            }
            if (is_dir_wd(t, ev->wd)) {
                rescan_soon(t);
                continue;
            }
            struct tail_file *f = file_by_wd(t, ev->wd);
            if (!f)
                continue;
            if (ev->mask & IN_IGNORED) {
                watch_unlink(f);
                f->wd = -1;
                rescan_soon(t);
                continue;
            }
            if (ev->mask & IN_MODIFY)
                ready_push(f);
            if (ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB))
                rescan_soon(t);
        }
    }
}

/* ---- files -------------------------------------------------------------------------------- */

static double file_lag(void *arg)
{
    const struct tail_file *f = arg;
    uint64_t size = SL_MAX(f->size, f->read_pos);
    return size > f->ack.acked ? (double)(size - f->ack.acked) : 0.0;
}

static void file_on_ack(struct plugin_ack_owner *o)
{
    struct tail_file *f = sl_container_of(o, struct tail_file, ack);
    f->t->dirty = true;
}

static void file_close_fd(struct tail_file *f)
{
    struct in_tail *t = f->t;
    watch_remove(f);
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
        t->open_files--;
        if (f->rotated)
            t->rotated_open--;
    }
}

static void file_free(struct tail_file *f)
{
    struct in_tail *t = f->t;
    ready_remove(f);
    file_close_fd(f);
    plugin_ack_owner_fini(&f->ack);
    if (t->ctx.metrics && f->m_lag)
        sl_metrics_remove(t->ctx.metrics, f->m_lag);
    sl_buf_fini(&f->buf);
    sl_buf_fini(&f->ml);
    sl_free(f->path);
    sl_free(f->source);
    sl_free(f);
}

void tail_file_release(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (f->released)
        return;
    ready_remove(f);
    file_close_fd(f);
    sl_buf_fini(&f->buf);
    f->buf_off = 0;
    f->released = true;
    t->dirty = true;
    SL_INFO(WHO(t), "%s: rotated file read to its end (%llu bytes), released", f->path,
            (unsigned long long)f->read_pos);
}

/* Starts f over from offset 0 (truncation, copytruncate, or a new file in the same inode).
 * Records of the old content still in flight no longer move this file's checkpoint. */
void tail_file_restart(struct tail_file *f, const char *why)
{
    struct in_tail *t = f->t;
    SL_NOTICE(WHO(t), "%s: %s; reading again from offset 0 (was at %llu)", f->path, why,
              (unsigned long long)f->read_pos);
    plugin_ack_owner_fini(&f->ack);
    plugin_ack_owner_init(&f->ack, 0, file_on_ack);
    sl_buf_reset(&f->buf);
    sl_buf_reset(&f->ml);
    f->buf_off = 0;
    f->buf_start = 0;
    f->read_pos = 0;
    f->skipping = false;
    f->partial_since = 0;
    f->ml_truncated = false;
    f->fp_len = 0;
    f->fp_crc = 0;
    t->dirty = true;
    ready_push(f);
}

/* Closes the idle file that waited longest, to stay under max_open_files. */
static bool close_one_idle(struct in_tail *t)
{
    struct tail_file *best = NULL;
    for (struct tail_file *f = t->files; f; f = f->next)
        if (f->fd >= 0 && !f->rotated && !f->in_ready && f->buf_off == f->buf.len &&
            f->ml.len == 0 && (!best || f->last_data < best->last_data))
            best = f;
    if (!best)
        return false;
    file_close_fd(best);
    return true;
}

/* Opens f->path again and checks it is still the same inode. Returns 0 or -1 (then f is
 * rotated, or left closed when the fd limit is reached). */
int tail_file_reopen(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (f->fd >= 0)
        return 0;
    if (f->rotated)
        return -1; /* its name is gone: nothing to reopen */
    if (t->open_files >= (size_t)t->conf->max_open_files && !close_one_idle(t))
        return -1;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_dev != f->dev ||
        (uint64_t)st.st_ino != f->ino) {
        if (fd >= 0)
            close(fd);
        if (f->read_pos < f->size || f->buf_off < f->buf.len)
            SL_WARN(WHO(t), "%s: replaced while closed; %llu bytes of the old file not read",
                    f->path, (unsigned long long)(f->size - f->read_pos));
        f->rotated = true;
        f->released = true;
        t->dirty = true;
        rescan_soon(t);
        return -1;
    }
    f->fd = fd;
    t->open_files++;
    f->size = (uint64_t)st.st_size;
    watch_add(f);
    return 0;
}

static void file_mark_rotated(struct tail_file *f, const char *why)
{
    struct in_tail *t = f->t;
    if (f->rotated)
        return;
    f->rotated = true;
    sl_metric_inc(t->m_rotations);
    if (f->fd < 0) {
        /* Closed only when fully read: nothing is left to drain. */
        f->released = true;
        t->dirty = true;
        return;
    }
    t->rotated_open++;
    SL_INFO(WHO(t), "%s: %s; reading it to its end", f->path, why);
    ready_push(f);
    if (t->rotated_open > (size_t)t->conf->max_rotated_open) {
        struct tail_file *oldest = NULL;
        for (struct tail_file *g = t->files; g; g = g->next)
            if (g->rotated && g->fd >= 0 && g != f && (!oldest || g->last_data < oldest->last_data))
                oldest = g;
        if (oldest) {
            SL_WARN(WHO(t),
                    "%s: more than max_rotated_open (%lld) rotated files held open; "
                    "letting go of this one with %llu bytes not read",
                    oldest->path, (long long)t->conf->max_rotated_open,
                    (unsigned long long)(oldest->size > oldest->read_pos
                                             ? oldest->size - oldest->read_pos
                                             : 0));
            tail_file_release(oldest);
        }
    }
}

static struct tail_file *file_find_path(struct in_tail *t, const char *path)
{
    for (struct tail_file *f = t->files; f; f = f->next)
        if (!f->rotated && strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

static struct tail_file *file_find_id(struct in_tail *t, uint64_t dev, uint64_t ino)
{
    for (struct tail_file *f = t->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino)
            return f;
    return NULL;
}

/* Remembers a released, fully acknowledged file before it is freed. */
static void gone_add(struct in_tail *t, const struct tail_file *f)
{
    struct in_tail_ckpt *g = &t->gone;
    char *path = sl_strdup(f->path);
    if (!path)
        return; /* only costs a re-read if the name is matched again */
    for (size_t i = 0; i < g->len; i++) {
        if (g->items[i].dev == f->dev && g->items[i].ino == f->ino) {
            sl_free(g->items[i].path);
            memmove(&g->items[i], &g->items[i + 1], (g->len - i - 1) * sizeof(g->items[0]));
            g->len--;
            break;
        }
    }
    if (!g->items) {
        g->items = sl_calloc(IN_TAIL_GONE_MAX, sizeof(g->items[0]));
        if (!g->items) {
            sl_free(path);
            return;
        }
    }
    if (g->len == IN_TAIL_GONE_MAX) {
        sl_free(g->items[0].path);
        memmove(&g->items[0], &g->items[1], (g->len - 1) * sizeof(g->items[0]));
        g->len--;
    }
    g->items[g->len++] = (struct in_tail_ckpt_entry){.dev = f->dev,
                                                     .ino = f->ino,
                                                     .fp_len = f->fp_len,
                                                     .fp_crc = f->fp_crc,
                                                     .offset = f->ack.acked,
                                                     .path = path};
}

static void file_register_lag(struct tail_file *f)
{
    struct in_tail *t = f->t;
    if (!t->ctx.metrics)
        return;
    struct sl_metric_label l[2] = {{"source", t->src->name}, {"path", f->path}};
    sl_metrics_add_gauge_fn(t->ctx.metrics, "sluice_agent_file_lag_bytes",
                            "bytes of a followed file not yet acknowledged", l, 2, file_lag, f,
                            &f->m_lag, NULL);
}

/* Starts following the file at path (st: its stat); returns it, or NULL when it could not be
 * opened (logged; a later rescan tries again). */
static struct tail_file *file_add(struct in_tail *t, const char *path, const struct stat *st)
{
    if (t->open_files >= (size_t)t->conf->max_open_files && !close_one_idle(t)) {
        SL_WARN(WHO(t), "%s: max_open_files (%lld) reached; not followed yet", path,
                (long long)t->conf->max_open_files);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        SL_WARN(WHO(t), "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat fst;
    if (fstat(fd, &fst) != 0 || fst.st_dev != st->st_dev || fst.st_ino != st->st_ino) {
        close(fd); /* replaced between stat and open: the next rescan sees the new one */
        rescan_soon(t);
        return NULL;
    }
    struct tail_file *f = sl_calloc(1, sizeof(*f));
    size_t plen = strlen(path);
    char *p = sl_strdup(path);
    char *src = sl_malloc(plen + 6);
    if (!f || !p || !src) {
        sl_free(f);
        sl_free(p);
        sl_free(src);
        close(fd);
        SL_ERR(WHO(t), "%s: out of memory", path);
        return NULL;
    }
    memcpy(src, "file:", 5);
    memcpy(src + 5, path, plen + 1);
    f->t = t;
    f->path = p;
    f->source = src;
    f->fd = fd;
    f->wd = -1;
    f->dev = (uint64_t)fst.st_dev;
    f->ino = (uint64_t)fst.st_ino;
    f->size = (uint64_t)fst.st_size;
    f->last_data = ev_now(t->ctx.loop);
    sl_buf_init(&f->buf);
    sl_buf_init(&f->ml);
    t->open_files++;

    uint64_t start = 0;
    const struct in_tail_ckpt_entry *e = in_tail_ckpt_find(&t->gone, f->dev, f->ino);
    if (!e)
        e = in_tail_ckpt_find(&t->loaded, f->dev, f->ino);
    uint32_t crc = 0;
    if (e && (e->fp_len == 0 || fingerprint(fd, e->fp_len, &crc)) &&
        (e->fp_len == 0 || crc == e->fp_crc)) {
        if (e->offset <= f->size) {
            start = e->offset;
            SL_INFO(WHO(t), "%s: resuming at offset %llu", path, (unsigned long long)start);
        } else {
            SL_NOTICE(WHO(t),
                      "%s: shorter (%llu) than its checkpoint (%llu): truncated while "
                      "stopped; reading from offset 0",
                      path, (unsigned long long)f->size, (unsigned long long)e->offset);
        }
    } else if (t->first_scan && t->conf->read_from == IN_TAIL_FROM_TAIL) {
        start = f->size;
    }
    f->read_pos = f->buf_start = start;
    plugin_ack_owner_init(&f->ack, start, file_on_ack);
    uint32_t fl = (uint32_t)SL_MIN(f->size, (uint64_t)IN_TAIL_FP_MAX);
    if (fl > 0 && fingerprint(fd, fl, &f->fp_crc))
        f->fp_len = fl;
    f->next = t->files;
    t->files = f;
    f->seen = true;
    watch_add(f);
    file_register_lag(f);
    t->dirty = true;
    SL_DEBUG(WHO(t), "%s: following from offset %llu", path, (unsigned long long)start);
    ready_push(f);
    return f;
}

/* A path a glob matched. */
static void consider(struct in_tail *t, const char *path)
{
    if (excluded(t, path))
        return;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    struct tail_file *f = file_find_path(t, path);
    if (f) {
        if (f->dev == (uint64_t)st.st_dev && f->ino == (uint64_t)st.st_ino) {
            f->seen = true;
            return;
        }
        file_mark_rotated(f, "renamed or replaced (its name is a new file now)");
    }
    struct tail_file *g = file_find_id(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    if (g) {
        if (g->rotated) {
            /* Renamed to another name we follow too (app.log -> app.log.1 under app.log*):
             * follow it on under that name, from where it was, even if already let go. */
            char *p = sl_strdup(path);
            if (!p)
                return;
            sl_free(g->path);
            g->path = p;
            g->rotated = false;
            if (g->fd >= 0)
                t->rotated_open--;
            g->released = false;
            SL_INFO(WHO(t), "%s: a rotated file we follow under this name too", path);
            ready_push(g);
        }
        g->seen = true;
        return; /* the same inode under a second name (a symlink) is followed once */
    }
    file_add(t, path, &st);
}

/* Checks a followed file for growth, truncation and a changed beginning. */
static void check_file(struct in_tail *t, struct tail_file *f)
{
    struct stat st;
    if (f->fd < 0) {
        /* Closed while idle: reopen when its name shows it grew. */
        if (!f->rotated && stat(f->path, &st) == 0 && (uint64_t)st.st_ino == f->ino &&
            (uint64_t)st.st_dev == f->dev && (uint64_t)st.st_size != f->read_pos)
            ready_push(f);
        return;
    }
    if (tail_file_verify(f) == 0 && (f->size > f->read_pos || f->rotated))
        ready_push(f);
}

int tail_file_verify(struct tail_file *f)
{
    struct stat st;
    if (f->fd < 0 || fstat(f->fd, &st) != 0)
        return 0;
    uint64_t size = (uint64_t)st.st_size;
    f->size = size;
    if (size < f->read_pos) {
        tail_file_restart(f, "truncated");
        return 1;
    }
    if (f->fp_len > 0 && size >= f->fp_len) {
        uint32_t crc;
        if (fingerprint(f->fd, f->fp_len, &crc) && crc != f->fp_crc) {
            tail_file_restart(f, "its first bytes changed (copytruncate or rewrite)");
            return 1;
        }
    }
    if (f->fp_len < IN_TAIL_FP_MAX && size > f->fp_len) {
        uint32_t fl = (uint32_t)SL_MIN(size, (uint64_t)IN_TAIL_FP_MAX);
        uint32_t crc;
        if (fingerprint(f->fd, fl, &crc)) {
            f->fp_len = fl;
            f->fp_crc = crc;
            f->t->dirty = true;
        }
    }
    return 0;
}

/* Watches the folder part of a glob (each folder it matches when it has wildcards). */
static void watch_pattern_dirs(struct in_tail *t, const char *pattern)
{
    char *copy = sl_strdup(pattern);
    if (!copy)
        return;
    const char *dir = dirname(copy);
    if (strpbrk(dir, "*?[{")) {
        glob_t g;
        if (glob(dir, GLOB_ONLYDIR | GLOB_BRACE, NULL, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++)
                watch_dir(t, g.gl_pathv[i]);
        globfree(&g);
    } else {
        watch_dir(t, dir);
    }
    sl_free(copy);
}

/*
 * First start only: a checkpointed file that no glob matched was renamed, maybe while the agent
 * was stopped (app.log -> app.log.1 outside the globs). When it is still in its folder under
 * another name, with the same device, inode and first bytes, and has bytes after its
 * checkpoint, it is read to its end like any rotated file, so a stop during a rotation loses
 * nothing.
 */
static void recover_rotated(struct in_tail *t)
{
    for (size_t i = 0; i < t->loaded.len; i++) {
        const struct in_tail_ckpt_entry *e = &t->loaded.items[i];
        if (e->fp_len == 0 || file_find_id(t, e->dev, e->ino))
            continue;
        char *copy = sl_strdup(e->path);
        if (!copy)
            continue;
        const char *dir = dirname(copy);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if ((uint64_t)de->d_ino != e->ino)
                continue;
            char path[4096];
            struct stat st;
            uint32_t crc = 0;
            int n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) != 0 ||
                !S_ISREG(st.st_mode) || (uint64_t)st.st_dev != e->dev ||
                (uint64_t)st.st_size <= e->offset)
                break;
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            bool same = fd >= 0 && fingerprint(fd, e->fp_len, &crc) && crc == e->fp_crc;
            if (fd >= 0)
                close(fd);
            if (!same)
                break;
            struct tail_file *f = file_add(t, path, &st);
            if (f)
                file_mark_rotated(f, "renamed while the agent was stopped");
            break;
        }
        if (d)
            closedir(d);
        sl_free(copy);
    }
}

static void tail_rescan(struct in_tail *t)
{
    for (struct tail_file *f = t->files; f; f = f->next)
        f->seen = false;
    for (size_t i = 0; i < t->conf->paths.len; i++) {
        const char *pat = t->conf->paths.items[i];
        watch_pattern_dirs(t, pat);
        glob_t g;
        int rc = glob(pat, GLOB_NOSORT | GLOB_BRACE, NULL, &g);
        if (rc == 0)
            for (size_t j = 0; j < g.gl_pathc; j++)
                consider(t, g.gl_pathv[j]);
        globfree(&g);
    }
    if (t->first_scan)
        recover_rotated(t);
    for (struct tail_file *f = t->files; f; f = f->next) {
        if (f->released)
            continue;
        if (!f->seen && !f->rotated)
            file_mark_rotated(f, "renamed or deleted");
        check_file(t, f);
    }
    t->first_scan = false;
}

static void tail_on_rescan(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct in_tail *t = sl_container_of(w, struct in_tail, rescan);
    tail_rescan(t);
}

/* ---- reading turns ---------------------------------------------------------------------- */

static void tail_schedule(struct in_tail *t)
{
    if (t->started && !t->blocked && t->ready_head && !ev_is_active(&t->kick)) {
        ev_timer_set(&t->kick, 0, 0);
        ev_timer_start(t->ctx.loop, &t->kick);
    }
}

static void tail_on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct in_tail *t = sl_container_of(w, struct in_tail, kick);
    size_t spent = 0;
    while (!t->blocked && spent < READ_BUDGET_TURN) {
        struct tail_file *f = ready_pop(t);
        if (!f)
            break;
        uint64_t before = f->read_pos;
        enum tail_read_result r = tail_file_read(f, READ_BUDGET_FILE);
        spent += (size_t)(f->read_pos > before ? f->read_pos - before : 0) + 4096;
        if (r == TAIL_BLOCKED) {
            t->blocked = true;
            /* It goes first when the sink has room again. */
            f->rnext = t->ready_head;
            f->in_ready = true;
            t->ready_head = f;
            if (!t->ready_tail)
                t->ready_tail = f;
        } else if (r == TAIL_MORE) {
            ready_push(f);
        }
    }
    tail_schedule(t);
}

static void tail_on_resume(struct plugin_waiter *w)
{
    struct in_tail *t = sl_container_of(w, struct in_tail, waiter);
    t->blocked = false;
    tail_schedule(t);
    /* A multiline record or partial line refused from the house timer is retried by it. */
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static void tail_save(struct in_tail *t)
{
    size_t n = t->gone.len;
    for (struct tail_file *f = t->files; f; f = f->next)
        n++;
    struct in_tail_ckpt_entry *e = sl_calloc(n ? n : 1, sizeof(*e));
    if (!e) {
        SL_ERR(WHO(t), "checkpoint: out of memory");
        return;
    }
    n = 0;
    for (struct tail_file *f = t->files; f; f = f->next) {
        /* A released file fully acknowledged is done with; its entry goes. */
        if (f->released && !plugin_ack_owner_pending(&f->ack))
            continue;
        e[n++] = (struct in_tail_ckpt_entry){.dev = f->dev,
                                             .ino = f->ino,
                                             .fp_len = f->fp_len,
                                             .fp_crc = f->fp_crc,
                                             .offset = f->ack.acked,
                                             .path = f->path};
    }
    for (size_t i = 0; i < t->gone.len; i++)
        if (!file_find_id(t, t->gone.items[i].dev, t->gone.items[i].ino))
            e[n++] = t->gone.items[i];
    struct sl_err err = {{0}};
    if (in_tail_ckpt_save(t->ckpt_path, e, n, &err) != 0)
        SL_ERR(WHO(t), "checkpoint: %s", err.msg);
    else
        t->dirty = false;
    sl_free(e);
}

static void tail_on_save(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct in_tail *t = sl_container_of(w, struct in_tail, save);
    if (t->dirty)
        tail_save(t);
}

/* Partial lines and multiline records whose time came, idle files, finished files. */
static void tail_on_house(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct in_tail *t = sl_container_of(w, struct in_tail, house);
    double now = ev_now(loop);
    double partial = (double)t->conf->partial_timeout_ms / 1000.0;
    double idle = (double)t->conf->idle_close_ms / 1000.0;
    struct tail_file **pp = &t->files;
    while (*pp) {
        struct tail_file *f = *pp;
        if (f->released && !plugin_ack_owner_pending(&f->ack)) {
            *pp = f->next;
            t->dirty = true;
            gone_add(t, f);
            file_free(f);
            continue;
        }
        pp = &f->next;
        if (f->released)
            continue;
        if (f->partial_since > 0 && now - f->partial_since >= partial)
            ready_push(f);
        if (f->ml.len > 0 && !t->blocked && tail_file_flush_multiline(f, false) == -EAGAIN)
            t->blocked = true;
        bool drained = f->buf_off == f->buf.len && f->ml.len == 0 && !f->in_ready;
        if (drained && f->buf.cap > 0 && now - f->last_data > BUFFER_KEEP) {
            sl_buf_fini(&f->buf);
            f->buf_start = f->read_pos;
            f->buf_off = 0;
        }
        if (drained && f->fd >= 0 && !f->rotated && now - f->last_data > idle &&
            f->read_pos >= f->size)
            file_close_fd(f);
    }
}

/* ---- the plugin ----------------------------------------------------------------------- */

static void in_tail_free(void *self);

static int in_tail_new(const struct plugin_ctx *ctx, const void *conf, void **self,
                       struct sl_err *err)
{
    struct in_tail *t = sl_calloc(1, sizeof(*t));
    if (!t)
        return sl_err_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    t->ctx = *ctx;
    t->conf = conf;
    t->src = ctx->source;
    t->ino_fd = -1;
    sl_buf_init(&t->rec);
    sl_buf_init(&t->key);
    sl_buf_init(&t->line);
    sl_buf_init(&t->fixed);
    sl_json_clock_init(&t->clock);
    t->waiter.on_resume = tail_on_resume;
    ev_io_init(&t->ino_io, tail_on_inotify, -1, EV_READ);
    ev_timer_init(&t->rescan, tail_on_rescan, 0, (double)t->conf->rescan_ms / 1000.0);
    ev_timer_init(&t->kick, tail_on_kick, 0, 0);
    double house =
        (double)SL_MIN(t->conf->partial_timeout_ms, t->conf->multiline_timeout_ms) / 4000.0;
    house = SL_MAX(0.05, SL_MIN(house, 1.0));
    ev_timer_init(&t->house, tail_on_house, house, house);
    double save = (double)t->conf->checkpoint_interval_ms / 1000.0;
    ev_timer_init(&t->save, tail_on_save, save, save);
    if (!ctx->sink || !ctx->source || !ctx->hostname || !ctx->state_dir) {
        rc = sl_err_set(err, -EINVAL,
                        "in_tail needs a sink, a source, a host name and a "
                        "state_dir");
        goto fail;
    }
    if (t->conf->multiline_start) {
        int rrc = regcomp(&t->ml_re, t->conf->multiline_start, REG_EXTENDED | REG_NOSUB);
        if (rrc != 0) {
            char msg[200];
            regerror(rrc, &t->ml_re, msg, sizeof(msg));
            rc = sl_err_set(err, SL_ECONFIG, "multiline_start: %s", msg);
            goto fail;
        }
        t->has_re = true;
    }
    size_t need = strlen(ctx->state_dir) + strlen(ctx->source->name) + 16;
    t->ckpt_path = sl_malloc(need);
    if (!t->ckpt_path ||
        plugin_fixed_members(&t->fixed, t->ctx.hostname, NULL, &t->src->fields) != 0) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(t->ckpt_path, need, "%s/tail-%s.pos", ctx->state_dir, ctx->source->name);
    t->topic = ctx->sink->topic_get(ctx->sink, ctx->source->topic);
    if (!t->topic) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (ctx->metrics) {
        struct sl_metric_label l[1] = {{"source", ctx->source->name}};
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_lines_read_total",
                               "lines (records) read from files", l, 1, &t->m_lines, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_bytes_read_total",
                               "bytes read from files", l, 1, &t->m_bytes, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_lines_truncated_total",
                               "lines cut at max_line_bytes", l, 1, &t->m_truncated, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_rotations_total",
                               "files seen renamed, replaced or deleted", l, 1, &t->m_rotations,
                               NULL);
    }
    *self = t;
    return 0;
fail:
    in_tail_free(t);
    return rc;
}

static int in_tail_start(void *self, struct sl_err *err)
{
    struct in_tail *t = self;
    if (t->started)
        return 0;
    size_t skipped = 0;
    in_tail_ckpt_fini(&t->loaded);
    int rc = in_tail_ckpt_load(t->ckpt_path, &t->loaded, &skipped, err);
    if (rc == SL_ECORRUPT) {
        SL_ERR(WHO(t), "%s; starting without it", err->msg);
    } else if (rc != 0) {
        return rc;
    }
    if (skipped)
        SL_WARN(WHO(t), "%s: %zu damaged entries skipped", t->ckpt_path, skipped);
    if (t->ino_fd < 0) {
        t->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (t->ino_fd < 0)
            SL_WARN(WHO(t), "inotify: %s; relying on the rescan every %lld ms", strerror(errno),
                    (long long)t->conf->rescan_ms);
    }
    t->started = true;
    t->first_scan = true;
    tail_rescan(t);
    if (t->ino_fd >= 0) {
        ev_io_set(&t->ino_io, t->ino_fd, EV_READ);
        ev_io_start(t->ctx.loop, &t->ino_io);
    }
    ev_timer_set(&t->rescan, (double)t->conf->rescan_ms / 1000.0,
                 (double)t->conf->rescan_ms / 1000.0);
    ev_timer_start(t->ctx.loop, &t->rescan);
    ev_timer_start(t->ctx.loop, &t->house);
    ev_timer_start(t->ctx.loop, &t->save);
    tail_schedule(t);
    return 0;
}

static void in_tail_stop(void *self)
{
    struct in_tail *t = self;
    if (!t)
        return;
    bool was = t->started;
    t->started = false;
    ev_io_stop(t->ctx.loop, &t->ino_io);
    ev_timer_stop(t->ctx.loop, &t->rescan);
    ev_timer_stop(t->ctx.loop, &t->kick);
    ev_timer_stop(t->ctx.loop, &t->house);
    ev_timer_stop(t->ctx.loop, &t->save);
    if (t->ctx.sink)
        t->ctx.sink->cancel(t->ctx.sink, &t->waiter);
    t->blocked = false;
    if (was)
        tail_save(t);
}

static void in_tail_free(void *self)
{
    struct in_tail *t = self;
    if (!t)
        return;
    in_tail_stop(t);
    if (t->ckpt_path && t->files)
        tail_save(t);
    while (t->files) {
        struct tail_file *f = t->files;
        t->files = f->next;
        file_free(f);
    }
    if (t->ino_fd >= 0)
        close(t->ino_fd);
    if (t->ctx.metrics) {
        sl_metrics_remove(t->ctx.metrics, t->m_lines);
        sl_metrics_remove(t->ctx.metrics, t->m_bytes);
        sl_metrics_remove(t->ctx.metrics, t->m_truncated);
        sl_metrics_remove(t->ctx.metrics, t->m_rotations);
    }
    if (t->topic)
        t->ctx.sink->topic_put(t->ctx.sink, t->topic);
    if (t->has_re)
        regfree(&t->ml_re);
    in_tail_ckpt_fini(&t->loaded);
    in_tail_ckpt_fini(&t->gone);
    sl_free(t->dir_wds);
    sl_free(t->ckpt_path);
    sl_buf_fini(&t->rec);
    sl_buf_fini(&t->key);
    sl_buf_fini(&t->line);
    sl_buf_fini(&t->fixed);
    sl_free(t);
}

/* ---- options -------------------------------------------------------------------------- */

static const struct sl_conf_enum read_from_enum[] = {
    {"head", IN_TAIL_FROM_HEAD}, {"tail", IN_TAIL_FROM_TAIL}, {NULL, 0}};

static void in_tail_check(void *obj, struct sl_conf_check *chk)
{
    struct in_tail_conf *c = obj;
    for (size_t i = 0; i < c->paths.len; i++)
        if (c->paths.items[i][0] != '/')
            sl_conf_check_error(chk, "paths", "'paths' must be absolute (got '%s')",
                                c->paths.items[i]);
    if (c->multiline_start) {
        regex_t re;
        int rc = regcomp(&re, c->multiline_start, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[200];
            regerror(rc, &re, msg, sizeof(msg));
            sl_conf_check_error(chk, "multiline_start",
                                "'multiline_start' is not a valid "
                                "extended regular expression: %s",
                                msg);
        } else {
            regfree(&re);
        }
    }
}

#define OPT(field) .offset = offsetof(struct in_tail_conf, field)

static const struct sl_conf_opt in_tail_opts[] = {
    {.name = "paths",
     .type = SL_CONF_LIST,
     OPT(paths),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 256,
     .help = "files to follow: absolute globs (*, ?, [..], {a,b})"},
    {.name = "exclude",
     .type = SL_CONF_LIST,
     OPT(exclude),
     .def = "[]",
     .max = 256,
     .help = "globs of paths (or file names) not to follow, e.g. *.gz"},
    {.name = "read_from",
     .type = SL_CONF_ENUM,
     OPT(read_from),
     .def = "head",
     .enums = read_from_enum,
     .help = "where files found at the very first start begin: their head or their end"},
    {.name = "multiline_start",
     .type = SL_CONF_STRING,
     OPT(multiline_start),
     .min = 1,
     .max = 1024,
     .help = "extended regex of a record's first line; other lines join it"},
    {.name = "multiline_timeout",
     .type = SL_CONF_DURATION,
     OPT(multiline_timeout_ms),
     .def = "1s",
     .min = 10,
     .max = 600000,
     .help = "a joined record is sent after this long without a new line"},
    {.name = "max_line_bytes",
     .type = SL_CONF_SIZE,
     OPT(max_line_bytes),
     .def = "256KiB",
     .min = 256,
     .max = 16 << 20,
     .help = "longer lines are cut and marked truncated"},
    {.name = "partial_timeout",
     .type = SL_CONF_DURATION,
     OPT(partial_timeout_ms),
     .def = "5s",
     .min = 10,
     .max = 3600000,
     .help = "a last line without newline is sent after waiting this long"},
    {.name = "rescan",
     .type = SL_CONF_DURATION,
     OPT(rescan_ms),
     .def = "1s",
     .min = 50,
     .max = 3600000,
     .help = "period of the glob rescan (new files and folders, rotation)"},
    {.name = "idle_close",
     .type = SL_CONF_DURATION,
     OPT(idle_close_ms),
     .def = "5m",
     .min = 1000,
     .max = 86400000,
     .help = "close a fully read file unchanged this long; reopened when it grows"},
    {.name = "max_open_files",
     .type = SL_CONF_INT,
     OPT(max_open_files),
     .def = "512",
     .min = 1,
     .max = 1000000,
     .help = "files held open at once (idle ones close first); keep under RLIMIT_NOFILE"},
    {.name = "max_rotated_open",
     .type = SL_CONF_INT,
     OPT(max_rotated_open),
     .def = "64",
     .min = 1,
     .max = 100000,
     .help = "rotated or deleted files held open until read to their end"},
    {.name = "read_bytes",
     .type = SL_CONF_SIZE,
     OPT(read_bytes),
     .def = "128KiB",
     .min = 4096,
     .max = 16 << 20,
     .help = "size of each read(2)"},
    {.name = "checkpoint_interval",
     .type = SL_CONF_DURATION,
     OPT(checkpoint_interval_ms),
     .def = "1s",
     .min = 10,
     .max = 3600000,
     .help = "how often acknowledged offsets are written to state_dir"},
    {.name = NULL},
};

const struct sl_conf_section in_tail_section = {
    .name = "tail",
    .help = "follow files matched by globs, line by line",
    .opts = in_tail_opts,
    .size = sizeof(struct in_tail_conf),
    .check = in_tail_check,
};

static uint64_t in_tail_lag_bytes(void *self)
{
    const struct in_tail *t = self;
    uint64_t sum = 0;
    for (const struct tail_file *f = t->files; f; f = f->next)
        sum += (uint64_t)file_lag((void *)(uintptr_t)f);
    return sum;
}

const struct plugin in_tail_plugin = {
    .name = "tail",
    .kind = PLUGIN_INPUT,
    .help = "follow log files (inotify, rotation, truncation, checkpoints)",
    .section = &in_tail_section,
    .new = in_tail_new,
    .start = in_tail_start,
    .stop = in_tail_stop,
    .free = in_tail_free,
    .lag_bytes = in_tail_lag_bytes,
};
