/* in_tail's checkpoint file: load (tolerant of damage), find, atomic save. */
#include "plugins/in_tail_ckpt.h"

#include "common/buf.h"
#include "common/daemon_util.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_HEADER    "sluice-tail-checkpoint 1\n"
#define CKPT_MAX_BYTES (256u << 20) /* a table of millions of files; more is not ours */

void in_tail_ckpt_fini(struct in_tail_ckpt *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->len; i++)
        sl_free(c->items[i].path);
    SL_FREE(c->items);
    c->len = 0;
}

/* Parses one entry line (without its newline). Returns 0 or SL_EPARSE. */
static int parse_line(const char *line, struct in_tail_ckpt_entry *e)
{
    unsigned long long dev, ino, off;
    unsigned fp_len, fp_crc;
    int used = 0;
    if (sscanf(line, "%llu %llu %u %8x %llu %n", &dev, &ino, &fp_len, &fp_crc, &off, &used) != 5 ||
        used == 0 || line[used] == '\0' || fp_len > IN_TAIL_FP_MAX || line[0] < '0' ||
        line[0] > '9')
        return SL_EPARSE;
    e->dev = dev;
    e->ino = ino;
    e->fp_len = fp_len;
    e->fp_crc = fp_crc;
    e->offset = off;
    e->path = sl_strdup(line + used);
    return e->path ? 0 : -ENOMEM;
}

int in_tail_ckpt_load(const char *file, struct in_tail_ckpt *c, size_t *skipped, struct sl_err *err)
{
    size_t bad = 0;
    int rc = 0;
    char *text = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            goto out;
        rc = sl_err_set(err, -errno, "%s: %s", file, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > CKPT_MAX_BYTES) {
        rc = sl_err_set(err, SL_ETOOBIG, "%s: unreadable or over %u bytes", file, CKPT_MAX_BYTES);
        goto out;
    }
    text = sl_malloc((size_t)st.st_size + 1);
    if (!text) {
        rc = sl_err_set(err, -ENOMEM, "%s: out of memory", file);
        goto out;
    }
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t got = read(fd, text + len, (size_t)st.st_size - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = sl_err_set(err, -errno, "%s: %s", file, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    text[len] = '\0';
    if (len < strlen(CKPT_HEADER) || memcmp(text, CKPT_HEADER, strlen(CKPT_HEADER)) != 0) {
        rc = sl_err_set(err, SL_ECORRUPT, "%s: not a checkpoint file (bad header)", file);
        goto out;
    }
    size_t cap = 0;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    c->items = sl_calloc(cap ? cap : 1, sizeof(*c->items));
    if (!c->items) {
        rc = sl_err_set(err, -ENOMEM, "%s: out of memory", file);
        goto out;
    }
    char *p = text + strlen(CKPT_HEADER);
    while (*p) {
        char *nl = strchr(p, '\n');
        if (!nl) {
            bad++; /* a last line without newline was cut mid-write: not ours to trust */
            break;
        }
        *nl = '\0';
        int prc = strlen(p) != (size_t)(nl - p) ? SL_EPARSE : parse_line(p, &c->items[c->len]);
        if (prc == -ENOMEM) {
            rc = sl_err_set(err, -ENOMEM, "%s: out of memory", file);
            goto out;
        }
        if (prc == 0)
            c->len++;
        else
            bad++;
        p = nl + 1;
    }
out:
    if (fd >= 0)
        close(fd);
    sl_free(text);
    if (rc != 0)
        in_tail_ckpt_fini(c);
    if (skipped)
        *skipped = bad;
    return rc;
}

const struct in_tail_ckpt_entry *in_tail_ckpt_find(const struct in_tail_ckpt *c, uint64_t dev,
                                                   uint64_t ino)
{
    for (size_t i = 0; i < c->len; i++)
        if (c->items[i].dev == dev && c->items[i].ino == ino)
            return &c->items[i];
    return NULL;
}

int in_tail_ckpt_save(const char *file, const struct in_tail_ckpt_entry *e, size_t n,
                      struct sl_err *err)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_append_str(&b, CKPT_HEADER);
    for (size_t i = 0; i < n; i++) {
        if (!e[i].path || strchr(e[i].path, '\n') || e[i].path[0] == '\0')
            continue;
        sl_buf_printf(&b, "%" PRIu64 " %" PRIu64 " %u %08x %" PRIu64 " %s\n", e[i].dev, e[i].ino,
                      (unsigned)e[i].fp_len, (unsigned)e[i].fp_crc, e[i].offset, e[i].path);
    }
    if (sl_buf_error(&b)) {
        sl_buf_fini(&b);
        return sl_err_set(err, -ENOMEM, "%s: out of memory", file);
    }
    int rc = sl_file_replace(file, b.data, b.len, err);
    sl_buf_fini(&b);
    return rc;
}
