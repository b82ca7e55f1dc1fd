/* The files sink: each topic-partition's records as gzip JSON lines in a Hive-partitioned tree,
 * written so that every record lands in exactly one final file across crashes and rebalances. */
#include "collector/cli/sink.h"
#include "collector/cli/sink_gz.h"
#include "collector/cli/sink_zip.h"

#include "common/log.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The tree (layout `topic={topic}/dt={date}/hour={hour}`, the default):
 *
 *   ROOT/
 *     topic=nginx/dt=2026-11-22/hour=10/part-3-1200.jsonl.gz   final: partition 3, its records
 *     topic=nginx/dt=2026-11-22/hour=11/part-3-1207.jsonl.gz   from offset 1200 (1207) on that
 *     ...                                                      fall in that hour
 *     .sluice/locks/nginx-3.lock        flock()ed by the process that owns partition 3
 *     .sluice/stage/nginx-3/1207.tmp    a file being written (readers skip dot folders)
 *
 * A partition is written in epochs. An epoch starts where the previous one ended, D, which is
 * durable and committed by the time the epoch is finalized (rule 1 below), and sends each
 * record to the file of its time bucket (the record timestamp, UTC); that file is named after
 * the first offset it holds. So in every
 * folder Z the epoch's file is named first_Z(D): the first offset >= D whose record falls in Z.
 * The epoch ends at E when a file reaches roll_size, the epoch reaches roll_age, the
 * partition has max_open_files open, or a drain (rebalance, SIGTERM):
 *
 *   write stage files ─> last chunks compressed, fsync each (both on the compressors) ─>
 *   rename each into its folder (replacing a file of the same name) ─> fsync each folder ─>
 *   commit E to the group ─> next epoch at E
 *
 * The next epoch opens at E as soon as this one closes (its last chunks are handed to the
 * compressors); the closed one is finalized once they are written, so fetching, compressing
 * and the fsyncs overlap. A partition has at most one closed epoch waiting.
 *
 * Lines are compressed in chunks of IN_CHUNK bytes, each a gzip member, by sink_zip's worker
 * thread (sink_zip.h).
 *
 * Why each record ends in exactly one final file, although E depends on timing:
 *
 *   1. A partition never has two finalized epochs without a commit between them: the driver
 *      commits E before it lets this backend finalize again, and finalize refuses to run
 *      while durable != committed (a drain after a failed commit only aborts).
 *   2. So after any crash, the final files not covered by the committed position C are those
 *      of at most one epoch that started at C, each named first_Z(C) in its folder Z.
 *   3. The next owner reads again from C. The records of [C, a) with a = first_Z(C) do not go
 *      to Z, so whichever of its epochs holds offset a writes Z's file under the same name
 *      first_Z(C) and the rename replaces the stale file atomically, whatever either epoch's
 *      end was. A stale file whose folder the new epoch does not reach keeps the invariant of
 *      2 for the next epoch, since first_Z(E') = first_Z(C) when [C, E') has nothing for Z.
 *   4. Stage files are never final: the next owner deletes its partition's stage folder
 *      before it reads, under the lock.
 *   5. The lock is taken before the committed offset is read. A process the group dropped
 *      (a "zombie" stuck in fsync) still holds it until it notices and aborts, so its late
 *      rename cannot land after the new owner's.
 *
 * Limits: the layout must not change while uncommitted files exist (a drain leaves none), and
 * if retention deletes records a stale file still covers, the replay cannot replace it.
 */

struct files_conf {
    char *root;   /* owned */
    char *layout; /* owned */
    int64_t roll_size;
    int64_t roll_age_ms;
    int content; /* FILES_VALUE, FILES_RECORD */
    int64_t level;
    int64_t threads;
    int64_t max_open;
    int grain; /* derived from layout: GRAIN_* */
};

enum { FILES_VALUE, FILES_RECORD };
enum { GRAIN_NONE, GRAIN_YEAR, GRAIN_MONTH, GRAIN_DAY, GRAIN_HOUR, GRAIN_MINUTE };

static const struct {
    const char *name;
    int grain;
} placeholders[] = {
    {"topic", GRAIN_NONE},  {"partition", GRAIN_NONE}, {"year", GRAIN_YEAR},
    {"month", GRAIN_MONTH}, {"day", GRAIN_DAY},        {"date", GRAIN_DAY},
    {"hour", GRAIN_HOUR},   {"minute", GRAIN_MINUTE},
};

/* Checks the layout and returns its grain, or -1 with a message in why. */
static int layout_grain(const char *s, char *why, size_t size)
{
    int grain = GRAIN_NONE;
    if (s[0] == '/' || s[strlen(s) - 1] == '/') {
        snprintf(why, size, "must be a relative path without a trailing '/'");
        return -1;
    }
    const char *comp = s;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == 0) {
            size_t n = (size_t)(p - comp);
            if (n == 0 || comp[0] == '.' || comp[0] == '_') {
                snprintf(why, size,
                         "'%.*s': folder names must not be empty or start with '.' or '_' "
                         "(readers skip those)",
                         (int)n, comp);
                return -1;
            }
            if (*p == 0)
                break;
            comp = p + 1;
        } else if (*p == '{') {
            const char *e = strchr(p, '}');
            size_t n = e ? (size_t)(e - p - 1) : 0;
            int found = -1;
            for (size_t i = 0; e && i < SL_ARRAY_LEN(placeholders); i++)
                if (strlen(placeholders[i].name) == n && !strncmp(p + 1, placeholders[i].name, n))
                    found = (int)i;
            if (found < 0) {
                snprintf(why, size,
                         "unknown placeholder '%.*s' (allowed: {topic}, {partition}, {year}, "
                         "{month}, {day}, {date}, {hour}, {minute})",
                         e ? (int)(e - p + 1) : (int)strlen(p), p);
                return -1;
            }
            grain = SL_MAX(grain, placeholders[found].grain);
            p = e;
        } else if (*p == '}' || (unsigned char)*p < 0x20 || *p == '\\') {
            snprintf(why, size, "'%c' is not allowed outside a placeholder", *p);
            return -1;
        }
    }
    return grain;
}

static void files_conf_check(void *obj, struct sl_conf_check *chk)
{
    struct files_conf *c = obj;
    char why[256];
    if (c->layout && (c->grain = layout_grain(c->layout, why, sizeof(why))) < 0)
        sl_conf_check_error(chk, "layout", "layout: %s", why);
    if (c->root && c->root[0] != '/')
        sl_conf_check_error(chk, "root", "root must be an absolute path (got '%s')", c->root);
}

static const struct sl_conf_enum content_enums[] = {
    {"value", FILES_VALUE},
    {"record", FILES_RECORD},
    {NULL, 0},
};

static const struct sl_conf_opt files_opts[] = {
    {.name = "root",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct files_conf, root),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 3000,
     .help = "folder of the tree (created if missing); every process of the sink must see the "
             "same folder"},
    {.name = "layout",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct files_conf, layout),
     .def = "topic={topic}/dt={date}/hour={hour}",
     .min = 1,
     .max = 512,
     .help = "folders under root, from the record timestamp in UTC: {topic} {partition} {year} "
             "{month} {day} {date} {hour} {minute}"},
    {.name = "roll_size",
     .type = SL_CONF_SIZE,
     .offset = offsetof(struct files_conf, roll_size),
     .def = "128MiB",
     .min = 1024,
     .max = 16LL << 30,
     .help = "a file closes once it holds this many compressed bytes"},
    {.name = "roll_age",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct files_conf, roll_age_ms),
     .def = "5m",
     .min = 100,
     .max = 86400000,
     .help = "files close this long after their first record at the latest (the delay before "
             "records are visible)"},
    {.name = "content",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct files_conf, content),
     .def = "value",
     .enums = content_enums,
     .help = "value: each line is the record's JSON object (others go to the dead-letter file); "
             "record: {topic, partition, offset, timestamp, key, headers, value}"},
    {.name = "compression_level",
     .type = SL_CONF_INT,
     .offset = offsetof(struct files_conf, level),
     .def = "1",
     .min = SINK_GZ_LEVEL_MIN,
     .max = SINK_GZ_LEVEL_MAX,
     .help = "gzip level: 1 fastest (ISA-L igzip), 2 to 9 smaller files at lower rates "
             "(libdeflate) (a file is a series of gzip members, one per "
             "256 KiB of lines, which every gzip reader takes as one stream)"},
    {.name = "compress_threads",
     .type = SL_CONF_INT,
     .offset = offsetof(struct files_conf, threads),
     .def = "2",
     .min = 1,
     .max = SINK_ZIP_WORKERS_MAX,
     .help = "threads that check values and compress lines, beside the one that fetches; each "
             "busy one takes a core"},
    {.name = "max_open_files",
     .type = SL_CONF_INT,
     .offset = offsetof(struct files_conf, max_open),
     .def = "32",
     .min = 1,
     .max = 1024,
     .help = "time buckets one partition may have open at once; one more closes them all"},
    {.name = NULL},
};

const struct sl_conf_section sink_files_section = {
    .name = "files",
    .help = "Hive-partitioned gzip JSON lines (ROOT/topic=T/dt=D/hour=H/part-P-OFFSET.jsonl.gz)",
    .opts = files_opts,
    .size = sizeof(struct files_conf),
    .check = files_conf_check,
};

/* ---- State -------------------------------------------------------------------------------- */

/* A gzip member's worth of lines: big enough that the 18 bytes of a member's header and
 * trailer and its fresh dictionary cost nothing that shows, small enough to keep the bytes held
 * per open file (max_open_files per partition) modest. */
#define IN_CHUNK (256u << 10)
/* Chunks per compressor thread waiting before the driver waits too. */
#define ZIP_QUEUE 16

/* One file of the open epoch. */
struct fout {
    char *rel;      /* owned: its folder under root */
    int64_t lo, hi; /* the time bucket it takes, ms since the epoch: [lo, hi) */
    int64_t start;  /* first offset routed here: the stage name, and the final one for content:
                       record (values: zf->first_ok) */
    struct sink_zfile *zf; /* owned: the stage file; on the heap because the compressor's
                              queue points at it, and outs is an array that grows */
    struct sink_zchunk in; /* owned: the next chunk */
    bool none_kept;        /* finalize: every record was refused, the file is not kept */
};

struct fpart {
    int lock_fd;
    char *stage;       /* owned: the stage folder */
    struct fout *outs; /* owned */
    size_t nouts;
    size_t last;      /* index of the file the previous record went to */
    int64_t epoch_ms; /* kc_now_ms() at the epoch's first record; 0: no epoch open */
    int64_t next;     /* offset after the last record taken */
    bool due;         /* a limit was reached: close at the next flush */
    /* The previous epoch, closed: its last chunks are with the compressors while the open one
     * fills; it is finalized once they are written (and its start is committed). */
    struct fout *closing; /* owned */
    size_t nclosing;
    int64_t closing_end; /* the offset after its last record */
    bool renamed;        /* closing's files are in the tree; their folders not fsynced yet */
};

struct files {
    struct sink *s;                /* borrowed */
    const struct files_conf *conf; /* borrowed */
    struct sink_zip *zip;          /* owned */
    struct sl_buf line;            /* owned: the line being built */
    struct sl_buf path;            /* owned: scratch */
    struct sl_buf dirs;            /* owned: folders a flush renamed files into, each once,
                                      NUL-terminated one after the other */
};

/* ---- Files and folders -------------------------------------------------------------------- */

static int fsync_dir(const char *dir, struct sl_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sl_err_set(err, -errno, "%s: %s", dir, sl_strerror(-errno));
    int rc = fsync(fd) == 0 ? 0 : sl_err_set(err, -errno, "fsync %s: %s", dir, sl_strerror(-errno));
    close(fd);
    return rc;
}

/* mkdir -p path; each folder created is made durable in its parent. */
static int mkdirs(const char *path, struct sl_err *err)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return sl_err_set(err, -ENAMETOOLONG, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    struct stat st;
    if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) == 0) {
            char parent[PATH_MAX];
            const char *slash = strrchr(buf, '/');
            size_t plen = slash == buf ? 1 : (size_t)(slash - buf);
            memcpy(parent, buf, plen);
            parent[plen] = 0;
            int rc = fsync_dir(parent, err);
            if (rc != 0)
                return rc;
        } else if (errno != EEXIST) {
            return sl_err_set(err, -errno, "mkdir %s: %s", buf, sl_strerror(-errno));
        }
        buf[i] = c;
    }
    return 0;
}

/* Deletes every file in dir (what a crashed owner left in a stage folder). */
static int empty_dir(const char *who, const char *dir, struct sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sl_err_set(err, -errno, "%s: %s", dir, sl_strerror(-errno));
    struct dirent *e;
    int rc = 0, removed = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT)
            rc = sl_err_set(err, -errno, "%s/%s: %s", dir, e->d_name, sl_strerror(-errno));
        removed++;
    }
    closedir(d);
    if (removed)
        SL_INFO(who, "%s: %d unfinished file%s of a previous owner discarded", dir, removed,
                removed == 1 ? "" : "s");
    return rc;
}

/* ---- Epochs ------------------------------------------------------------------------------- */

static void stage_name(const struct fpart *fp, const struct fout *o, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%lld.tmp", fp->stage, (long long)o->start);
}

/* Closes and deletes the stage files of (*outs)[0..*n) (renamed ones are only closed), and
 * leaves the list empty. */
static void outs_drop(struct files *fs, struct fpart *fp, struct fout **outs, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        struct fout *o = &(*outs)[i];
        char path[PATH_MAX];
        if (o->zf) {
            (void)sink_zip_wait(fs->zip, o->zf); /* the worker may still be writing to it */
            sink_zfile_drop_rejects(o->zf);
            if (o->zf->fd >= 0) {
                close(o->zf->fd);
                stage_name(fp, o, path, sizeof(path));
                unlink(path);
            }
            sl_free(o->zf);
        }
        sink_zchunk_fini(&o->in);
        sl_free(o->rel);
    }
    SL_FREE(*outs);
    *n = 0;
}

/* No epoch open: the next record opens one. */
static void open_reset(struct fpart *fp)
{
    fp->last = 0;
    fp->epoch_ms = 0;
    fp->due = false;
}

/* Closes and deletes the stage files of the open and the closing epoch; nothing stays. */
static void epoch_drop(struct files *fs, struct fpart *fp)
{
    outs_drop(fs, fp, &fp->outs, &fp->nouts);
    outs_drop(fs, fp, &fp->closing, &fp->nclosing);
    fp->renamed = false;
    open_reset(fp);
}

/* Hands o's pending lines to the compressor as one gzip member; `seal`: the file's last, and
 * the compressor fsyncs the file after it. */
static int chunk_out(struct files *fs, struct fpart *fp, struct fout *o, bool seal,
                     struct sl_err *err)
{
    int rc = seal ? sink_zip_seal(fs->zip, o->zf, &o->in) : sink_zip_put(fs->zip, o->zf, &o->in);
    if (rc == -ENOMEM)
        return sl_err_set(err, rc, "out of memory");
    if (rc != 0) {
        char path[PATH_MAX];
        stage_name(fp, o, path, sizeof(path));
        return sl_err_set(err, rc, "write %s: %s", path, sl_strerror(rc));
    }
    return 0;
}

/* Sends the records the compressor refused in o to the dead-letter file. */
static int take_rejects(struct files *fs, struct sink_part *p, struct fout *o, struct sl_err *err)
{
    int rc = 0;
    for (const struct sink_zreject *x = o->zf->rejects; x && rc == 0; x = x->next) {
        struct sl_batch_record rec = {0};
        rec.offset = x->offset;
        rec.timestamp = x->timestamp;
        size_t klen = x->klen > 0 ? (size_t)x->klen : 0;
        if (x->klen >= 0)
            rec.key = (struct sl_bytes){x->data, klen};
        rec.value = (struct sl_bytes){x->data + klen, x->vlen};
        rc = sink_dead_letter(fs->s, p->topic, p->partition, &rec, x->why, err);
    }
    sink_zfile_drop_rejects(o->zf);
    return rc;
}

/* Ends the open epoch: its last chunks go to the compressors and it becomes the closing one,
 * which must not exist yet. A new epoch opens with the next record. */
static int epoch_close(struct files *fs, struct fpart *fp, struct sl_err *err)
{
    for (size_t i = 0; i < fp->nouts; i++) {
        int rc = chunk_out(fs, fp, &fp->outs[i], true, err);
        if (rc != 0)
            return rc;
    }
    fp->closing = fp->outs;
    fp->nclosing = fp->nouts;
    fp->closing_end = fp->next;
    fp->outs = NULL;
    fp->nouts = 0;
    open_reset(fp);
    return 0;
}

/* True when every chunk of the closing epoch is written: finalizing it will not wait. */
static bool closing_written(struct files *fs, const struct fpart *fp)
{
    for (size_t i = 0; i < fp->nclosing; i++)
        if (!sink_zip_idle(fs->zip, fp->closing[i].zf))
            return false;
    return true;
}

/* Adds dir to fs->dirs unless it is there. Returns 0 or -ENOMEM. */
static int dirs_add(struct files *fs, const char *dir)
{
    const char *d = (const char *)fs->dirs.data; /* NULL while empty */
    for (size_t k = 0; k < fs->dirs.len; k += strlen(d + k) + 1)
        if (!strcmp(d + k, dir))
            return 0;
    sl_buf_append(&fs->dirs, dir, strlen(dir) + 1);
    return sl_buf_error(&fs->dirs) ? -ENOMEM : 0;
}

/*
 * Finalizing the closing epoch of p, first half: its stage files completed and fsynced (by the
 * compressors, sealed by epoch_close), renamed into the tree, their folders noted in fs->dirs.
 * files_flush then fsyncs each folder once for every partition it finalized (an epoch's files
 * share folders with the other partitions' epochs, which close together), and only then moves
 * their durable positions (finalize_renamed). On an error the renamed files stay (rule 3 above) and
 * the caller aborts the rest.
 */
static int epoch_rename(struct files *fs, struct sink_part *p, struct sl_err *err)
{
    struct fpart *fp = p->priv;
    int rc = 0;
    char from[PATH_MAX], dir[PATH_MAX], to[PATH_MAX + 64];
    for (size_t i = 0; i < fp->nclosing && rc == 0; i++) {
        struct fout *o = &fp->closing[i];
        stage_name(fp, o, from, sizeof(from));
        if ((rc = sink_zip_wait(fs->zip, o->zf)) != 0) {
            rc = sl_err_set(err, rc, "%s %s: %s", o->zf->sync_failed ? "fsync" : "write", from,
                            sl_strerror(rc));
            break;
        }
        if ((rc = take_rejects(fs, p, o, err)) != 0)
            break;
        /* Values are checked by the compressor: a file whose records were all refused is not
         * kept, as if none had come (the name rule counts only records that are written). */
        o->none_kept = fs->conf->content == FILES_VALUE && o->zf->first_ok < 0;
        if (o->none_kept) {
            close(o->zf->fd);
            o->zf->fd = -1;
            unlink(from);
        } else {
            SL_ASSERT(o->zf->synced); /* epoch_close sealed it */
        }
        sl_metric_add(fs->s->m.bytes, o->zf->out_bytes);
    }
    for (size_t i = 0; i < fp->nclosing && rc == 0; i++) {
        struct fout *o = &fp->closing[i];
        if (o->none_kept)
            continue;
        stage_name(fp, o, from, sizeof(from));
        snprintf(dir, sizeof(dir), "%s/%s", fs->conf->root, o->rel);
        /* Named after the first record written, which for values is the first one kept. */
        int64_t first = fs->conf->content == FILES_VALUE ? o->zf->first_ok : o->start;
        snprintf(to, sizeof(to), "%s/part-%d-%lld.jsonl.gz", dir, p->partition, (long long)first);
        if ((rc = mkdirs(dir, err)) != 0)
            break;
        if (rename(from, to) != 0) {
            rc = sl_err_set(err, -errno, "rename %s -> %s: %s", from, to, sl_strerror(-errno));
            break;
        }
        close(o->zf->fd);
        o->zf->fd = -1;
        if (dirs_add(fs, dir) != 0)
            rc = sl_err_set(err, -ENOMEM, "out of memory");
    }
    if (rc == 0)
        fp->renamed = true;
    return rc;
}

/* Second half for every partition epoch_rename took: the folders fsynced, then the epochs are
 * done and their partitions' durable positions move to their ends. */
static int finalize_renamed(struct files *fs, struct sink_part *parts, size_t n, struct sl_err *err)
{
    const char *d = (const char *)fs->dirs.data; /* NULL while empty */
    int rc = 0;
    for (size_t k = 0; k < fs->dirs.len && rc == 0; k += strlen(d + k) + 1)
        rc = fsync_dir(d + k, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct sink_part *p = &parts[i];
        struct fpart *fp = p->priv;
        if (!fp->renamed)
            continue;
        SL_DEBUG(fs->s->name, "%s-%d: %zu file%s for offsets %lld..%lld", p->topic, p->partition,
                 fp->nclosing, fp->nclosing == 1 ? "" : "s", (long long)p->durable,
                 (long long)fp->closing_end - 1);
        outs_drop(fs, fp, &fp->closing, &fp->nclosing); /* renamed: closed, nothing to unlink */
        fp->renamed = false;
        p->durable = fp->closing_end;
    }
    return 0;
}

/* ---- Records ------------------------------------------------------------------------------ */

/* The time bucket [lo, hi) holding ts at the layout's grain, and its folder name in b. */
static void bucket(const struct files *fs, const struct sink_part *p, int64_t ts, int64_t *lo,
                   int64_t *hi, struct sl_buf *b)
{
    if (ts < 0)
        ts = 0; /* no timestamp: the epoch's first bucket */
    time_t secs = (time_t)(ts / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    struct tm a = tm;
    a.tm_sec = 0;
    switch (fs->conf->grain) {
    case GRAIN_NONE:
        *lo = 0;
        *hi = INT64_MAX;
        break;
    case GRAIN_MINUTE:
        *lo = ts - ts % 60000;
        *hi = *lo + 60000;
        break;
    case GRAIN_HOUR:
        *lo = ts - ts % 3600000;
        *hi = *lo + 3600000;
        break;
    case GRAIN_DAY:
        *lo = ts - ts % 86400000;
        *hi = *lo + 86400000;
        break;
    case GRAIN_MONTH:
    case GRAIN_YEAR:
        a.tm_min = a.tm_hour = 0;
        a.tm_mday = 1;
        if (fs->conf->grain == GRAIN_YEAR)
            a.tm_mon = 0;
        *lo = (int64_t)timegm(&a) * 1000;
        if (fs->conf->grain == GRAIN_YEAR)
            a.tm_year++;
        else
            a.tm_mon++;
        *hi = (int64_t)timegm(&a) * 1000;
        break;
    }
    sl_buf_reset(b);
    for (const char *s = fs->conf->layout; *s; s++) {
        if (*s != '{') {
            sl_buf_append(b, s, 1);
            continue;
        }
        const char *e = strchr(s, '}');
        size_t n = (size_t)(e - s - 1);
        const char *k = s + 1;
        if (n == 5 && !strncmp(k, "topic", n))
            sl_buf_append_str(b, p->topic);
        else if (n == 9 && !strncmp(k, "partition", n))
            sl_buf_printf(b, "%d", p->partition);
        else if (n == 4 && !strncmp(k, "year", n))
            sl_buf_printf(b, "%04d", tm.tm_year + 1900);
        else if (n == 5 && !strncmp(k, "month", n))
            sl_buf_printf(b, "%02d", tm.tm_mon + 1);
        else if (n == 3 && !strncmp(k, "day", n))
            sl_buf_printf(b, "%02d", tm.tm_mday);
        else if (n == 4 && !strncmp(k, "date", n))
            sl_buf_printf(b, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        else if (n == 4 && !strncmp(k, "hour", n))
            sl_buf_printf(b, "%02d", tm.tm_hour);
        else if (n == 6 && !strncmp(k, "minute", n))
            sl_buf_printf(b, "%02d", tm.tm_min);
        s = e;
    }
    sl_buf_append(b, "", 1);
}

/* Appends a JSON text with its whitespace newlines, when it has some, made spaces (JSON
 * strings hold none raw), so it stays one line. */
static void append_one_line(struct sl_buf *b, const uint8_t *p, size_t n, bool newline)
{
    size_t at = b->len;
    sl_buf_append(b, p, n);
    if (newline && !sl_buf_error(b))
        sl_json_one_line(b->data + at, n);
}

/* Builds the `content: record` line for rec in fs->line: the value embedded as JSON when it is
 * JSON, else as a string. Returns 0 or -ENOMEM. */
static int build_line(struct files *fs, const struct sink_part *p,
                      const struct sl_batch_record *rec)
{
    struct sl_buf *b = &fs->line;
    sl_buf_reset(b);
    bool newline = false;
    bool json =
        rec->value.p && sl_json_check_nl(rec->value.p, rec->value.len, NULL, &newline, NULL) == 0;
    sl_buf_append_str(b, "{\"topic\":");
    cli_json_str(b, p->topic, strlen(p->topic));
    sl_buf_printf(b, ",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"key\":", p->partition,
                  (long long)rec->offset, (long long)rec->timestamp);
    cli_json_key_headers(b, rec);
    sl_buf_append_str(b, ",\"value\":");
    if (json)
        append_one_line(b, rec->value.p, rec->value.len, newline);
    else
        cli_json_str(b, rec->value.p, rec->value.len);
    sl_buf_append_str(b, "}\n");
    return sl_buf_error(b) ? -ENOMEM : 0;
}

/* Opens a new stage file for the bucket of the record at offset `start`. */
static int open_out(struct files *fs, struct sink_part *p, const char *rel, int64_t lo, int64_t hi,
                    int64_t start, struct sl_err *err)
{
    struct fpart *fp = p->priv;
    struct fout *n = sl_realloc(fp->outs, (fp->nouts + 1) * sizeof(*n));
    if (!n)
        return sl_err_set(err, -ENOMEM, "out of memory");
    fp->outs = n;
    struct fout *o = &fp->outs[fp->nouts];
    memset(o, 0, sizeof(*o));
    o->lo = lo;
    o->hi = hi;
    o->start = start;
    sink_zchunk_init(&o->in);
    if (!(o->rel = sl_strdup(rel)))
        return sl_err_set(err, -ENOMEM, "out of memory");
    fp->nouts++; /* from here on epoch_drop releases it */
    if (!(o->zf = sl_malloc(sizeof(*o->zf))))
        return sl_err_set(err, -ENOMEM, "out of memory");
    sink_zfile_init(o->zf, -1);
    char path[PATH_MAX];
    stage_name(fp, o, path, sizeof(path));
    o->zf->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->zf->fd < 0)
        return sl_err_set(err, -errno, "%s: %s", path, sl_strerror(-errno));
    if (sl_buf_reserve(&o->in.lines, IN_CHUNK) != 0)
        return sl_err_set(err, -ENOMEM, "out of memory");
    fp->last = fp->nouts - 1;
    return 0;
}

static int files_write(void *state, struct sink_part *p, const struct sl_batch_record *rec,
                       struct sl_err *err)
{
    struct files *fs = state;
    struct fpart *fp = p->priv;
    int rc;
    bool values = fs->conf->content == FILES_VALUE;
    if (values && !rec->value.p) {
        if ((rc = sink_dead_letter(fs->s, p->topic, p->partition, rec, "null value", err)) != 0)
            return rc;
        fp->next = rec->offset + 1;
        return 0;
    }
    if (!values && (rc = build_line(fs, p, rec)) != 0)
        return sl_err_set(err, rc, "out of memory");
    int64_t ts = rec->timestamp < 0 ? 0 : rec->timestamp;
    struct fout *o = fp->nouts ? &fp->outs[fp->last] : NULL;
    if (!o || ts < o->lo || ts >= o->hi) {
        int64_t lo = 0, hi = INT64_MAX;
        bucket(fs, p, ts, &lo, &hi, &fs->path);
        if (sl_buf_error(&fs->path))
            return sl_err_set(err, -ENOMEM, "out of memory");
        o = NULL;
        for (size_t i = 0; i < fp->nouts && !o; i++) {
            if (!strcmp(fp->outs[i].rel, (const char *)fs->path.data)) {
                o = &fp->outs[i];
                fp->last = i;
            }
        }
        if (!o) {
            if ((int64_t)fp->nouts >= fs->conf->max_open) {
                fp->due = true;
                return SINK_FULL;
            }
            if (fp->nouts == 0)
                fp->epoch_ms = kc_now_ms();
            if ((rc = open_out(fs, p, (const char *)fs->path.data, lo, hi, rec->offset, err)) != 0)
                return rc;
            o = &fp->outs[fp->last];
        }
    }
    if (values) {
        /* Checked by the compressor thread (sink_zip.c), which also refuses what is not a JSON
         * object. */
        struct sink_zrec zr = {.offset = rec->offset,
                               .timestamp = rec->timestamp,
                               .vlen = (uint32_t)rec->value.len,
                               .klen = rec->key.p ? (int32_t)rec->key.len : -1};
        sl_buf_append(&o->in.lines, rec->value.p, rec->value.len);
        sl_buf_append(&o->in.lines, "\n", 1);
        sl_buf_append(&o->in.recs, &zr, sizeof(zr));
        if (rec->key.p)
            sl_buf_append(&o->in.keys, rec->key.p, rec->key.len);
    } else {
        sl_buf_append(&o->in.lines, fs->line.data, fs->line.len);
    }
    if (sl_buf_error(&o->in.lines) || sl_buf_error(&o->in.recs) || sl_buf_error(&o->in.keys))
        return sl_err_set(err, -ENOMEM, "out of memory");
    if (o->in.lines.len >= IN_CHUNK) {
        if ((rc = chunk_out(fs, fp, o, false, err)) != 0)
            return rc;
        if ((int64_t)sink_zip_out_bytes(fs->zip, o->zf) >= fs->conf->roll_size)
            fp->due = true;
    }
    fp->next = rec->offset + 1;
    return 0;
}

static int files_flush(void *state, struct sink_part *parts, size_t n, bool force,
                       struct sl_err *err)
{
    struct files *fs = state;
    int64_t now = kc_now_ms();
    sl_buf_reset(&fs->dirs); /* also what a flush that failed before its fsyncs noted */
    for (size_t i = 0; i < n; i++) {
        struct sink_part *p = &parts[i];
        struct fpart *fp = p->priv;
        /* Rule 1: never a second finalized epoch before the first is committed. */
        bool may_finalize = p->durable == p->committed;
        if (fp->nclosing > 0) {
            /* Finalized once its chunks are written, so the driver goes on fetching while the
             * compressors finish them; at once (waiting) when nothing else came in, when the
             * open epoch is due already, or in a drain. */
            if (!may_finalize ||
                (!force && !fp->due && fp->next != fp->closing_end && !closing_written(fs, fp)))
                continue;
            int rc = epoch_rename(fs, p, err);
            if (rc != 0)
                return rc;
            continue; /* the open epoch closes after this one's commit */
        }
        if (fp->nouts == 0) {
            /* Only dead letters or skipped offsets: nothing to write, the position moves. */
            if (may_finalize && fp->next > p->durable)
                p->durable = fp->next;
            continue;
        }
        if (!force && !fp->due && now - fp->epoch_ms < fs->conf->roll_age_ms)
            continue;
        int rc = epoch_close(fs, fp, err);
        if (rc == 0 && may_finalize && (force || closing_written(fs, fp)))
            rc = epoch_rename(fs, p, err);
        if (rc != 0)
            return rc;
    }
    return finalize_renamed(fs, parts, n, err);
}

static int64_t files_due_in(void *state, const struct sink_part *parts, size_t n, int64_t now)
{
    const struct files *fs = state;
    int64_t due = -1;
    for (size_t i = 0; i < n; i++) {
        const struct fpart *fp = parts[i].priv;
        int64_t d = -1;
        /* A closing epoch is finalized once the compressors are done: look again soon; but
         * not while it waits for the previous commit (rule 1), which no fetch hastens. */
        if (fp->nclosing > 0)
            d = parts[i].durable == parts[i].committed ? 1 : -1;
        else if (fp->nouts > 0)
            d = fp->due ? 0 : SL_MAX(fp->epoch_ms + fs->conf->roll_age_ms - now, 0);
        if (d >= 0 && (due < 0 || d < due))
            due = d;
    }
    return due;
}

static void files_abort(void *state, struct sink_part *p)
{
    struct fpart *fp = p->priv;
    if (!fp)
        return;
    epoch_drop(state, fp);
    fp->next = p->durable;
}

static void files_revoke(void *state, struct sink_part *p)
{
    struct fpart *fp = p->priv;
    if (!fp)
        return;
    files_abort(state, p);
    if (fp->lock_fd >= 0)
        close(fp->lock_fd); /* releases the flock */
    sl_free(fp->stage);
    sl_free(fp);
    p->priv = NULL;
}

static int files_assign(void *state, struct sink_part *p, int64_t *start, struct sl_err *err)
{
    struct files *fs = state;
    char path[PATH_MAX];
    int rc;
    struct fpart *fp = p->priv;
    if (!fp) {
        if (!(fp = sl_calloc(1, sizeof(*fp))))
            return sl_err_set(err, -ENOMEM, "out of memory");
        fp->lock_fd = -1;
        p->priv = fp;
    }
    *start = -1; /* the group's committed offset */
    if (fp->lock_fd < 0) {
        snprintf(path, sizeof(path), "%s/.sluice/locks", fs->conf->root);
        if ((rc = mkdirs(path, err)) != 0)
            return rc;
        snprintf(path, sizeof(path), "%s/.sluice/locks/%s-%d.lock", fs->conf->root, p->topic,
                 p->partition);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return sl_err_set(err, -errno, "%s: %s", path, sl_strerror(-errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return -EAGAIN;
            return sl_err_set(err, -e, "flock %s: %s", path, sl_strerror(-e));
        }
        fp->lock_fd = fd;
    }
    snprintf(path, sizeof(path), "%s/.sluice/stage/%s-%d", fs->conf->root, p->topic, p->partition);
    if (!fp->stage && !(fp->stage = sl_strdup(path)))
        return sl_err_set(err, -ENOMEM, "out of memory");
    if ((rc = mkdirs(path, err)) != 0)
        return rc;
    return empty_dir(fs->s->name, path, err); /* rule 4 */
}

static int files_open(struct sink *s, void *conf, void **state, struct sl_err *err)
{
    struct files *fs = sl_calloc(1, sizeof(*fs));
    if (!fs)
        return sl_err_set(err, -ENOMEM, "out of memory");
    fs->s = s;
    fs->conf = conf;
    sl_buf_init(&fs->line);
    sl_buf_init(&fs->path);
    sl_buf_init(&fs->dirs);
    int rc = mkdirs(fs->conf->root, err);
    if (rc == 0)
        rc = sink_zip_new((int)fs->conf->level, (unsigned)fs->conf->threads,
                          ZIP_QUEUE * (unsigned)fs->conf->threads, &fs->zip, err);
    if (rc != 0) {
        sl_free(fs);
        return rc;
    }
    *state = fs;
    return 0;
}

static void files_close(void *state)
{
    struct files *fs = state;
    if (!fs)
        return;
    sl_buf_fini(&fs->line);
    sl_buf_fini(&fs->path);
    sl_buf_fini(&fs->dirs);
    sink_zip_free(fs->zip);
    sl_free(fs);
}

const struct sink_backend sink_files_backend = {
    .name = "files",
    .section = &sink_files_section,
    .open = files_open,
    .close = files_close,
    .assign = files_assign,
    .abort = files_abort,
    .revoke = files_revoke,
    .write = files_write,
    .flush = files_flush,
    .due_in = files_due_in,
    .commit_gates_flush = true,
};
