/* The sinks' dead-letter file: records a destination cannot take, as JSON lines, appended and
 * fsynced before the offsets past them are committed (the format is in sink.h).
 *
 * Exactly one line per record, across crashes: a sink that dies after appending a dead letter
 * but before committing the offsets past it reads the record again, after a restart or in
 * another process of the group. So before each append the lines that appeared in the file since
 * it was last looked at (its own and other processes') are read, and their (topic, partition,
 * offset) kept in a set; an entry already in the file is not appended again.
 *
 *   file:  {"time":..,"topic":T,"partition":P,"offset":O,...}\n   <- scanned up to `scanned`
 *          ...                                                     (complete lines only)
 *   set:   "P O T" for every line scanned or written by this process
 *
 * The set grows with the file (dead letters are rare); a reopen after logrotate keeps it, so
 * entries of the rotated-away file are still recognised by this process, and a process that
 * starts also reads the last rotated file, `<path>.1` (logrotate's name for it; with
 * delaycompress it stays uncompressed), since a replay follows the crash that caused it closely.
 * An entry that was rotated further (`.2.gz`) before its record was replayed can be repeated. */
#include "collector/cli/sink.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sink_dead {
    char *path; /* owned */
    int fd;
    bool dirty;        /* appended since the last fsync */
    struct sl_buf out; /* owned: the line being built */
    off_t scanned;     /* bytes of the file whose lines are in the set */
    char **set;        /* owned: open addressing, cap a power of two; NULL: free slot */
    size_t nset, cap;
    struct sl_buf key; /* owned: scratch */
};

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h;
}

/* The slot of k: where it is, or the free one where it would go. */
static size_t set_slot(const struct sink_dead *d, const char *k)
{
    size_t i = key_hash(k) & (d->cap - 1);
    while (d->set[i] && strcmp(d->set[i], k) != 0)
        i = (i + 1) & (d->cap - 1);
    return i;
}

static bool set_has(const struct sink_dead *d, const char *k)
{
    return d->cap && d->set[set_slot(d, k)];
}

/* Adds k (copied). Returns 0 or -ENOMEM. */
static int set_add(struct sink_dead *d, const char *k)
{
    if ((d->nset + 1) * 2 > d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 64;
        char **old = d->set;
        size_t ocap = d->cap;
        if (!(d->set = sl_calloc(ncap, sizeof(*d->set)))) {
            d->set = old;
            return -ENOMEM;
        }
        d->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i])
                d->set[set_slot(d, old[i])] = old[i];
        sl_free(old);
    }
    size_t i = set_slot(d, k);
    if (d->set[i])
        return 0;
    if (!(d->set[i] = sl_strdup(k)))
        return -ENOMEM;
    d->nset++;
    return 0;
}

/* "P O T" of an entry into d->key (NUL-terminated). Returns 0 or -ENOMEM. */
static int make_key(struct sink_dead *d, const char *topic, size_t tlen, long long partition,
                    long long offset)
{
    sl_buf_reset(&d->key);
    sl_buf_printf(&d->key, "%lld %lld ", partition, offset);
    sl_buf_append(&d->key, topic, tlen);
    sl_buf_append(&d->key, "", 1);
    return sl_buf_error(&d->key) ? -ENOMEM : 0;
}

/* A JSON number member of a line as an integer; false when absent or not an integer. */
static bool get_int(const uint8_t *line, size_t n, const char *name, long long *out)
{
    struct sl_json_val v;
    sl_json_get(line, n, name, &v);
    char num[32];
    if (v.type != SL_JSON_NUMBER || v.len == 0 || v.len >= sizeof(num))
        return false;
    memcpy(num, v.p, v.len);
    num[v.len] = 0;
    char *end;
    *out = strtoll(num, &end, 10);
    return *end == 0;
}

/* Adds the (topic, partition, offset) of the lines of rfd (named path) from *scanned to size to
 * the set, moving *scanned past each whole line. A line that is not a dead letter (edited by
 * hand, cut short by a crash) is skipped. */
static int scan_fd(struct sink_dead *d, int rfd, const char *path, off_t *scanned, off_t size,
                   struct sl_err *err)
{
    struct sl_buf line, topic;
    sl_buf_init(&line);
    sl_buf_init(&topic);
    uint8_t chunk[65536];
    off_t pos = *scanned;
    int rc = 0;
    while (rc == 0 && pos < size) {
        ssize_t r = pread(rfd, chunk, (size_t)SL_MIN((off_t)sizeof(chunk), size - pos), pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = sl_err_set(err, r < 0 ? -errno : -EIO, "dead-letter file %s: read: %s", path,
                            r < 0 ? sl_strerror(-errno) : "cut short");
            break;
        }
        pos += r;
        for (ssize_t i = 0; i < r && rc == 0; i++) {
            if (chunk[i] != '\n') {
                sl_buf_append(&line, &chunk[i], 1);
                continue;
            }
            *scanned += (off_t)line.len + 1;
            long long part, off;
            enum sl_json_type jt = SL_JSON_NONE;
            struct sl_json_val t = {SL_JSON_NONE, NULL, 0};
            if (line.len && sl_json_check(line.data, line.len, &jt, NULL) == 0 &&
                jt == SL_JSON_OBJECT)
                sl_json_get(line.data, line.len, "topic", &t);
            sl_buf_reset(&topic);
            if (t.type == SL_JSON_STRING && get_int(line.data, line.len, "partition", &part) &&
                get_int(line.data, line.len, "offset", &off) && sl_json_unescape(&t, &topic) == 0 &&
                (make_key(d, (const char *)topic.data, topic.len, part, off) != 0 ||
                 set_add(d, (const char *)d->key.data) != 0))
                rc = sl_err_set(err, -ENOMEM, "out of memory");
            sl_buf_reset(&line);
        }
        if (sl_buf_error(&line))
            rc = sl_err_set(err, -ENOMEM, "out of memory");
    }
    sl_buf_fini(&line);
    sl_buf_fini(&topic);
    return rc;
}

/* Adds the lines appended to the file since the last look to the set. */
static int scan(struct sink_dead *d, struct sl_err *err)
{
    struct stat st;
    if (fstat(d->fd, &st) != 0)
        return sl_err_set(err, -errno, "dead-letter file %s: %s", d->path, sl_strerror(-errno));
    if (st.st_size < d->scanned)
        d->scanned = 0; /* truncated by hand */
    if (st.st_size == d->scanned)
        return 0;
    int rfd = open(d->path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0)
        return sl_err_set(err, -errno, "dead-letter file %s: %s", d->path, sl_strerror(-errno));
    int rc = scan_fd(d, rfd, d->path, &d->scanned, st.st_size, err);
    close(rfd);
    return rc;
}

/* Adds the entries of the last rotated file, if there is one; only memory running out is an
 * error (an unreadable old file only weakens the guard against repeats, and is logged). */
static int scan_rotated(struct sink_dead *d, struct sl_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s.1", d->path) >= (int)sizeof(path))
        return 0;
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) {
        if (errno != ENOENT)
            SL_WARN("sink", "dead-letter file %s: %m; its entries may be repeated", path);
        return 0;
    }
    struct stat st;
    off_t at = 0;
    struct sl_err e = {{0}};
    int rc = fstat(rfd, &st) == 0 && S_ISREG(st.st_mode)
                 ? scan_fd(d, rfd, path, &at, st.st_size, &e)
                 : 0;
    close(rfd);
    if (rc == -ENOMEM)
        return sl_err_set(err, rc, "out of memory");
    if (rc != 0)
        SL_WARN("sink", "%s; its entries may be repeated", e.msg);
    return 0;
}

static int open_fd(const char *path, struct sl_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return sl_err_set(err, -errno, "dead-letter file %s: %s", path, sl_strerror(-errno));
    return fd;
}

int sink_dead_open(const char *path, struct sink_dead **out, struct sl_err *err)
{
    struct sink_dead *d = sl_calloc(1, sizeof(*d));
    if (!d || !(d->path = sl_strdup(path))) {
        sl_free(d);
        return sl_err_set(err, -ENOMEM, "out of memory");
    }
    sl_buf_init(&d->out);
    sl_buf_init(&d->key);
    d->fd = open_fd(path, err);
    int rc = d->fd < 0 ? d->fd : scan_rotated(d, err);
    if (rc != 0) {
        if (d->fd < 0)
            d->fd = -1;
        sink_dead_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int sink_dead_write(struct sink_dead *d, const char *topic, int32_t partition,
                    const struct sl_batch_record *rec, const char *why, struct sl_err *err)
{
    struct sl_buf *b = &d->out;
    int rc = scan(d, err);
    if (rc != 0)
        return rc;
    if (make_key(d, topic, strlen(topic), partition, (long long)rec->offset) != 0)
        return sl_err_set(err, -ENOMEM, "out of memory");
    if (set_has(d, (const char *)d->key.data)) {
        SL_DEBUG("sink", "%s-%d offset %lld is already in the dead-letter file %s: not repeated",
                 topic, partition, (long long)rec->offset, d->path);
        return 0;
    }
    char now[40];
    sl_buf_reset(b);
    cli_format_time(kc_wall_ms(), now, sizeof(now));
    sl_buf_printf(b, "{\"time\":\"%s\",\"topic\":", now);
    cli_json_str(b, topic, strlen(topic));
    sl_buf_printf(b, ",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"error\":", partition,
                  (long long)rec->offset, (long long)rec->timestamp);
    cli_json_str(b, why, strlen(why));
    sl_buf_append_str(b, ",\"key\":");
    cli_json_str(b, rec->key.p, rec->key.len);
    sl_buf_append_str(b, ",\"value\":");
    cli_json_str(b, rec->value.p, rec->value.len);
    sl_buf_append_str(b, "}\n");
    if (sl_buf_error(b))
        return sl_err_set(err, -ENOMEM, "out of memory");
    /* One write per line: with O_APPEND, lines of several processes do not interleave. */
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(d->fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return sl_err_set(err, -errno, "dead-letter file %s: %s", d->path, sl_strerror(-errno));
        off += (size_t)w;
    }
    d->dirty = true;
    if (set_add(d, (const char *)d->key.data) != 0)
        return sl_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int sink_dead_sync(struct sink_dead *d, struct sl_err *err)
{
    if (!d || !d->dirty)
        return 0;
    if (fsync(d->fd) != 0)
        return sl_err_set(err, -errno, "dead-letter file %s: fsync: %s", d->path,
                          sl_strerror(-errno));
    d->dirty = false;
    return 0;
}

int sink_dead_reopen(struct sink_dead *d, struct sl_err *err)
{
    int rc = sink_dead_sync(d, err);
    if (rc != 0)
        return rc;
    int fd = open_fd(d->path, err);
    if (fd < 0)
        return fd;
    close(d->fd);
    d->fd = fd;
    d->scanned = 0; /* a new file (the set keeps what the old one had) */
    return 0;
}

void sink_dead_free(struct sink_dead *d)
{
    if (!d)
        return;
    if (d->fd >= 0) {
        if (d->dirty && fsync(d->fd) != 0)
            SL_WARN("sink", "dead-letter file %s: fsync: %m", d->path);
        close(d->fd);
    }
    sl_buf_fini(&d->out);
    sl_buf_fini(&d->key);
    for (size_t i = 0; i < d->cap; i++)
        sl_free(d->set[i]);
    sl_free(d->set);
    sl_free(d->path);
    sl_free(d);
}

int sink_dead_letter(struct sink *s, const char *topic, int32_t partition,
                     const struct sl_batch_record *rec, const char *why, struct sl_err *err)
{
    sl_metric_inc(s->m.dead);
    if (!s->dead) {
        SL_WARN(s->name, "%s-%d offset %lld cannot be loaded (%s); no dead_letter file: dropped",
                topic, partition, (long long)rec->offset, why);
        return 0;
    }
    SL_DEBUG(s->name, "%s-%d offset %lld to the dead-letter file: %s", topic, partition,
             (long long)rec->offset, why);
    return sink_dead_write(s->dead, topic, partition, rec, why, err);
}
