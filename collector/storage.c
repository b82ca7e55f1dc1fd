/* The data directory: opening every partition, creating and deleting them, clean shutdown. */
#include "collector/storage.h"

/*
 * data_dir/
 *   .lock                 flock'ed while a collector runs
 *   .clean-shutdown       present only between a clean stop and the next start; a start
 *                         without it recovers every partition
 *   <topic>-<partition>/  one partition log each (partition_log.c); partition is decimal
 *   <...>.deleted/        a partition being deleted: renamed first, then emptied and removed
 *                         (finished by the next start when interrupted)
 */

#include "collector/topic_name.h"
#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct part_slot {
    char *topic; /* owned */
    int32_t partition;
    struct coll_plog *pl; /* owned; NULL when offline */
};

struct coll_storage {
    char *data_dir; /* owned */
    int lock_fd;
    bool was_clean;
    bool opened; /* every partition was opened (recovered): only then may close be clean */
    unsigned deletions; /* makes the names of partitions being deleted unique */
    struct coll_log_env env;
    struct coll_storage_opts opts; /* data_dir points at ours */
    struct part_slot *parts;       /* owned */
    size_t nparts, cap_parts;
    ev_timer retention_timer;
    bool retention_started;
};

static int64_t realtime_ms(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void storage_on_flushed(struct coll_flush_state *fs, void *arg)
{
    coll_plog_on_flushed(sl_container_of(fs, struct coll_plog, fs));
}

static struct coll_log_conf conf_for(const struct coll_storage *st, const char *topic)
{
    const struct coll_log_conf *c = st->opts.topic_conf
                                        ? st->opts.topic_conf(st->opts.conf_arg, topic)
                                        : NULL;
    return c ? *c : COLL_LOG_CONF_DEFAULT;
}

static struct part_slot *find_slot(struct coll_storage *st, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < st->nparts; i++)
        if (st->parts[i].partition == partition && strcmp(st->parts[i].topic, topic) == 0)
            return &st->parts[i];
    return NULL;
}

static int add_slot(struct coll_storage *st, const char *topic, int32_t partition,
                    struct coll_plog *pl)
{
    if (st->nparts == st->cap_parts) {
        size_t ncap = st->cap_parts ? st->cap_parts * 2 : 16;
        struct part_slot *p = sl_realloc(st->parts, ncap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        st->parts = p;
        st->cap_parts = ncap;
    }
    char *t = sl_strdup(topic);
    if (!t)
        return -ENOMEM;
    st->parts[st->nparts++] = (struct part_slot){t, partition, pl};
    return 0;
}

/* Splits "<topic>-<partition>"; false for anything else. */
static bool parse_part_dir(const char *name, char *topic, size_t tcap, int32_t *partition)
{
    const char *dash = strrchr(name, '-');
    if (!dash || dash == name || dash[1] == '\0')
        return false;
    int64_t p = 0;
    for (const char *c = dash + 1; *c; c++) {
        if (*c < '0' || *c > '9' || p > INT32_MAX / 10)
            return false;
        p = p * 10 + (*c - '0');
    }
    size_t tlen = (size_t)(dash - name);
    if (p > INT32_MAX || tlen >= tcap || coll_topic_name_check(name, tlen, NULL))
        return false;
    memcpy(topic, name, tlen);
    topic[tlen] = '\0';
    *partition = (int32_t)p;
    return true;
}

static int remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    return rmdir(path) < 0 ? -errno : 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static void storage_on_retention(struct ev_loop *loop, ev_timer *w, int revents)
{
    coll_storage_retain(sl_container_of(w, struct coll_storage, retention_timer));
}

static int open_partitions(struct coll_storage *st, struct sl_err *err)
{
    DIR *d = opendir(st->data_dir);
    if (!d)
        return sl_err_set(err, -errno, "opendir %s: %m", st->data_dir);
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (name[0] == '.' || de->d_type == DT_REG)
            continue;
        char path[PATH_MAX];
        int w = snprintf(path, sizeof(path), "%s/%s", st->data_dir, name);
        if (w < 0 || (size_t)w >= sizeof(path))
            continue;
        size_t len = strlen(name);
        if (len > 8 && strcmp(name + len - 8, ".deleted") == 0) {
            SL_INFO("storage", "finishing the deletion of %s", name);
            remove_tree(path);
            continue;
        }
        char topic[COLL_TOPIC_NAME_MAX + 1];
        int32_t partition;
        if (!parse_part_dir(name, topic, sizeof(topic), &partition)) {
            SL_WARN("storage", "%s: not a partition directory; ignored", path);
            continue;
        }
        struct coll_log_conf conf = conf_for(st, topic);
        struct sl_err perr = {{0}};
        struct coll_plog *pl = NULL;
        int r = coll_log_conf_check(&conf, &perr);
        if (r == 0)
            r = coll_plog_open(&st->env, path, topic, partition, &conf, false, st->was_clean, &pl,
                               &perr);
        if (r) {
            SL_ERR(name, "cannot open the partition, it stays offline: %s", perr.msg);
            pl = NULL;
        }
        if ((rc = add_slot(st, topic, partition, pl))) {
            coll_plog_close(pl);
            sl_err_set(err, rc, "out of memory");
            break;
        }
    }
    closedir(d);
    return rc;
}

int coll_storage_open(const struct coll_storage_opts *opts, struct coll_storage **out,
                      struct sl_err *err)
{
    int rc = -ENOMEM;
    struct coll_storage *st = sl_calloc(1, sizeof(*st));
    if (!st)
        return sl_err_set(err, rc, "out of memory");
    st->lock_fd = -1;
    st->opts = *opts;
    st->data_dir = sl_strdup(opts->data_dir);
    if (!st->data_dir) {
        sl_err_set(err, rc, "out of memory");
        goto fail;
    }
    st->opts.data_dir = st->data_dir;
    st->env.loop = opts->loop;
    st->env.now_ms = opts->now_ms ? opts->now_ms : realtime_ms;
    st->env.clock_arg = opts->clock_arg;
    if (mkdir(st->data_dir, 0755) < 0 && errno != EEXIST) {
        rc = sl_err_set(err, -errno, "mkdir %s: %m", st->data_dir);
        goto fail;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" COLL_LOCK_FILE, st->data_dir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0) {
        rc = sl_err_set(err, -errno, "open %s: %m", path);
        goto fail;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = sl_err_set(err, -errno, "%s is in use by another collector (flock %s: %m)",
                        st->data_dir, path);
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/" COLL_CLEAN_SHUTDOWN_FILE, st->data_dir);
    st->was_clean = access(path, F_OK) == 0;
    if (st->was_clean) {
        /* Gone before the first append: a crash from now on must be seen as unclean. */
        if (unlink(path) < 0 || fsync_dir(st->data_dir) < 0) {
            rc = sl_err_set(err, -errno, "removing %s: %m", path);
            goto fail;
        }
    } else {
        SL_NOTICE("storage", "%s: no clean-shutdown marker; recovering partitions", st->data_dir);
    }
    if ((rc = coll_flusher_new(opts->loop, storage_on_flushed, st, &st->env.flusher, err)))
        goto fail;
    if ((rc = open_partitions(st, err)))
        goto fail;
    st->opened = true;
    if (opts->retention_check_ms > 0) {
        double p = (double)opts->retention_check_ms / 1000.0;
        ev_timer_init(&st->retention_timer, storage_on_retention, p, p);
        ev_timer_start(opts->loop, &st->retention_timer);
        ev_unref(opts->loop); /* housekeeping alone does not keep the loop running */
        st->retention_started = true;
    }
    *out = st;
    return 0;
fail:
    coll_storage_close(st);
    return rc;
}

void coll_storage_close(struct coll_storage *st)
{
    if (!st)
        return;
    if (st->retention_started) {
        ev_ref(st->env.loop);
        ev_timer_stop(st->env.loop, &st->retention_timer);
    }
    /* A failed open never recovered its partitions: no marker, or the next start would trust
     * logs nobody checked. */
    bool clean = st->opened && st->env.flusher != NULL;
    for (size_t i = 0; i < st->nparts; i++) {
        if (!st->parts[i].pl || coll_plog_close(st->parts[i].pl))
            clean = false;
        sl_free(st->parts[i].topic);
    }
    sl_free(st->parts);
    coll_flusher_free(st->env.flusher);
    if (clean && st->lock_fd >= 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/" COLL_CLEAN_SHUTDOWN_FILE, st->data_dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || fsync(fd) < 0 || fsync_dir(st->data_dir) < 0)
            SL_ERR("storage", "cannot write %s: %m; the next start recovers", path);
        if (fd >= 0)
            close(fd);
    }
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    sl_free(st->data_dir);
    sl_free(st);
}

const char *coll_storage_dir(const struct coll_storage *st)
{
    return st->data_dir;
}

bool coll_storage_was_clean(const struct coll_storage *st)
{
    return st->was_clean;
}

struct coll_plog *coll_storage_get(struct coll_storage *st, const char *topic, int32_t partition)
{
    struct part_slot *s = find_slot(st, topic, partition);
    return s ? s->pl : NULL;
}

bool coll_storage_offline(struct coll_storage *st, const char *topic, int32_t partition)
{
    struct part_slot *s = find_slot(st, topic, partition);
    return s && !s->pl;
}

struct coll_flusher *coll_storage_flusher(struct coll_storage *st)
{
    return st->env.flusher;
}

int coll_storage_create(struct coll_storage *st, const char *topic, int32_t partition,
                        const struct coll_log_conf *conf, struct coll_plog **out,
                        struct sl_err *err)
{
    int rc = coll_topic_name_check(topic, strlen(topic), err);
    if (rc)
        return rc;
    if (partition < 0)
        return sl_err_set(err, -EINVAL, "partition %" PRId32 " is negative", partition);
    if (find_slot(st, topic, partition))
        return sl_err_set(err, -EEXIST, "%s-%" PRId32 " exists", topic, partition);
    struct coll_log_conf c = conf ? *conf : conf_for(st, topic);
    if ((rc = coll_log_conf_check(&c, err)))
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s-%" PRId32, st->data_dir, topic, partition);
    if (mkdir(path, 0755) < 0)
        return sl_err_set(err, -errno, "mkdir %s: %m", path);
    struct coll_plog *pl;
    if ((rc = coll_plog_open(&st->env, path, topic, partition, &c, false, true, &pl, err))) {
        remove_tree(path);
        return rc;
    }
    if ((rc = add_slot(st, topic, partition, pl))) {
        coll_plog_destroy(pl);
        remove_tree(path);
        return sl_err_set(err, rc, "out of memory");
    }
    fsync_dir(st->data_dir);
    if (out)
        *out = pl;
    return 0;
}

int coll_storage_delete(struct coll_storage *st, const char *topic, int32_t partition,
                        struct sl_err *err)
{
    struct part_slot *s = find_slot(st, topic, partition);
    if (!s)
        return sl_err_set(err, -ENOENT, "%s-%" PRId32 " does not exist", topic, partition);
    char path[PATH_MAX], gone[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s-%" PRId32, st->data_dir, topic, partition);
    /* "<topic>-<partition>.<pid>.<n>.deleted", the topic cut short when the whole would pass
     * NAME_MAX (a 249-byte topic leaves no room for the suffix); pid and counter keep it
     * unique, and open_partitions only looks at the suffix. */
    char suffix[64];
    int sl = snprintf(suffix, sizeof(suffix), "-%" PRId32 ".%ld.%u.deleted", partition,
                      (long)getpid(), st->deletions++);
    size_t tlen = SL_MIN(strlen(topic), (size_t)NAME_MAX - (size_t)sl);
    snprintf(gone, sizeof(gone), "%s/%.*s%s", st->data_dir, (int)tlen, topic, suffix);
    if (rename(path, gone) < 0)
        return sl_err_set(err, -errno, "rename %s: %m", path);
    fsync_dir(st->data_dir);
    coll_plog_destroy(s->pl);
    sl_free(s->topic);
    *s = st->parts[--st->nparts];
    int rc = remove_tree(gone);
    if (rc)
        SL_WARN("storage", "removing %s: %s (the next start retries)", gone, sl_strerror(rc));
    return 0;
}

int coll_storage_retain(struct coll_storage *st)
{
    int total = 0;
    int64_t now = st->env.now_ms(st->env.clock_arg);
    for (size_t i = 0; i < st->nparts; i++) {
        if (!st->parts[i].pl)
            continue;
        struct sl_err err = {{0}};
        int n = coll_plog_retain(st->parts[i].pl, now, &err);
        if (n < 0)
            SL_ERR(st->parts[i].pl->name, "retention: %s", err.msg);
        else
            total += n;
    }
    return total;
}

void coll_storage_foreach(struct coll_storage *st, void (*fn)(struct coll_plog *pl, void *arg),
                          void *arg)
{
    for (size_t i = 0; i < st->nparts; i++)
        if (st->parts[i].pl)
            fn(st->parts[i].pl, arg);
}
