/* The sinks' dead-letter file: records a destination cannot take, as JSON lines, appended and
 * fsynced before the offsets past them are committed (the format is in sink.h). */
#include "collector/cli/sink.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

struct sink_dead {
    char *path; /* owned */
    int fd;
    bool dirty;        /* appended since the last fsync */
    struct sl_buf out; /* owned: the line being built */
};

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
    d->fd = open_fd(path, err);
    if (d->fd < 0) {
        int rc = d->fd;
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
