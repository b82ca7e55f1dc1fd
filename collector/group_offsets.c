/* The committed-offsets log: its record format, loading and cutting a torn tail at open,
 * compaction into a fresh file, and the low-level writes. */
#include "collector/group_offsets_priv.h"

/*
 * <data_dir>/.group-offsets.log is a header followed by records, back to back. Integers are
 * big-endian; strings are Kafka's STRING / NULLABLE_STRING (int16 length, -1 for null).
 *
 *   header, 8 bytes
 *   +---------------+---------------+
 *   | magic "SLGO"  | version  (1)  |
 *   | 4 bytes       | uint32        |
 *   +---------------+---------------+
 *
 *   record
 *   +---------------+---------------+------+------------------------------------+
 *   | length        | crc           | type | fields of the type                 |
 *   | uint32        | uint32        | int8 |                                    |
 *   +---------------+---------------+------+------------------------------------+
 *   |<- frame, 8 bytes ------------>|<- body: `length` bytes -------------------->|
 *
 *     length   bytes of the body, 1 .. GOFF_BODY_MAX
 *     crc      CRC-32C of the 4 length bytes followed by the body, so a torn or flipped
 *              length is caught as surely as a torn body
 *
 *   type 1  commit        group STRING, topic STRING, partition int32, offset int64,
 *                         leader_epoch int32, commit_ts_ms int64, metadata NULLABLE_STRING
 *   type 2  delete-group  group STRING
 *   type 3  delete-topic  topic STRING
 *   type 4  tombstone     group STRING, topic STRING, partition int32   (an expired offset)
 *
 *   Names are 0 .. 32767 bytes, metadata 0 .. 4096 bytes or null; none holds a NUL byte. A
 *   body with bytes left after its last field is malformed.
 *
 * Replaying the records in order gives the table: a commit sets (group, topic, partition), the
 * others remove what they name. Records are only ever appended (with pwrite at the end of the
 * valid data), so a crash can only leave a torn last record; at open the first record that is
 * short, has a length out of range, fails its CRC or does not decode ends the replay, and the
 * file is cut there (with a warning naming the byte offset), whatever follows it.
 *
 * Compaction writes the header and one commit record per live entry to <file>.tmp, syncs it,
 * renames it over the log and syncs the directory: a crash at any point leaves either the old
 * file or the new one, both holding the same table, and a leftover .tmp is removed at open.
 * It runs when the file is at least compact_min bytes and more than twice the live set: at
 * open, and after a flush or delete that made it so.
 */

#include "common/base.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOFF_MAGIC      "SLGO"
#define GOFF_VERSION    1
#define GOFF_HEADER     8
#define GOFF_FRAME      8
#define GOFF_TMP_SUFFIX ".tmp"
/* The largest body: a commit with both names and the metadata at their limits. */
#define GOFF_BODY_MAX                                                                              \
    (1 + 2 * (2 + COLL_GOFF_NAME_MAX) + 4 + 8 + 4 + 8 + 2 + COLL_GOFF_METADATA_MAX)
/* The loader's read window (holds the largest record many times over) and the compaction's
 * write chunk. */
#define GOFF_IO_CHUNK ((size_t)1 << 20)

/* ---- codec ----------------------------------------------------------------------------- */

static size_t body_size(const struct goff_rec *r)
{
    switch (r->type) {
    case GOFF_REC_COMMIT:
        return 1 + 2 + r->group.len + 2 + r->topic.len + 4 + 8 + 4 + 8 + 2 +
               (r->meta.p ? r->meta.len : 0);
    case GOFF_REC_DELETE_GROUP:
        return 1 + 2 + r->group.len;
    case GOFF_REC_DELETE_TOPIC:
        return 1 + 2 + r->topic.len;
    default:
        SL_ASSERT(r->type == GOFF_REC_TOMBSTONE);
        return 1 + 2 + r->group.len + 2 + r->topic.len + 4;
    }
}

size_t coll_goff_rec_size(const struct goff_rec *r)
{
    return GOFF_FRAME + body_size(r);
}

static uint8_t *put_string(uint8_t *p, struct sl_bytes s)
{
    if (!s.p) {
        sl_put_be16(p, 0xffff);
        return p + 2;
    }
    sl_put_be16(p, (uint16_t)s.len);
    if (s.len)
        memcpy(p + 2, s.p, s.len);
    return p + 2 + s.len;
}

void coll_goff_rec_encode(const struct goff_rec *r, uint8_t *p)
{
    size_t len = body_size(r);
    sl_put_be32(p, (uint32_t)len);
    uint8_t *q = p + GOFF_FRAME;
    *q++ = r->type;
    if (r->type != GOFF_REC_DELETE_TOPIC)
        q = put_string(q, r->group);
    if (r->type != GOFF_REC_DELETE_GROUP)
        q = put_string(q, r->topic);
    if (r->type == GOFF_REC_COMMIT || r->type == GOFF_REC_TOMBSTONE) {
        sl_put_be32(q, (uint32_t)r->partition);
        q += 4;
    }
    if (r->type == GOFF_REC_COMMIT) {
        sl_put_be64(q, (uint64_t)r->offset);
        sl_put_be32(q + 8, (uint32_t)r->leader_epoch);
        sl_put_be64(q + 12, (uint64_t)r->ts_ms);
        q = put_string(q + 20, r->meta);
    }
    SL_ASSERT((size_t)(q - p) == GOFF_FRAME + len);
    sl_put_be32(p + 4, sl_crc32c(sl_crc32c(0, p, 4), p + GOFF_FRAME, len));
}

int coll_goff_rec_append(struct sl_buf *b, const struct goff_rec *r)
{
    size_t n = coll_goff_rec_size(r);
    if (sl_buf_reserve(b, n)) {
        b->err = 0; /* a failed reservation changed nothing else; the buffer stays usable */
        return -ENOMEM;
    }
    coll_goff_rec_encode(r, b->data + b->len);
    b->len += n;
    return 0;
}

static bool has_nul(struct sl_bytes s)
{
    return s.p && s.len && memchr(s.p, '\0', s.len);
}

/* Decodes a body whose CRC matched. Returns NULL, or what is wrong with it. */
static const char *rec_decode(const uint8_t *body, size_t len, struct goff_rec *r)
{
    struct sl_reader rd;
    sl_reader_init(&rd, body, len);
    memset(r, 0, sizeof(*r));
    r->type = (uint8_t)sl_reader_i8(&rd);
    switch (r->type) {
    case GOFF_REC_COMMIT:
        r->group = sl_reader_string(&rd);
        r->topic = sl_reader_string(&rd);
        r->partition = sl_reader_i32(&rd);
        r->offset = sl_reader_i64(&rd);
        r->leader_epoch = sl_reader_i32(&rd);
        r->ts_ms = sl_reader_i64(&rd);
        r->meta = sl_reader_string(&rd);
        break;
    case GOFF_REC_DELETE_GROUP:
        r->group = sl_reader_string(&rd);
        break;
    case GOFF_REC_DELETE_TOPIC:
        r->topic = sl_reader_string(&rd);
        break;
    case GOFF_REC_TOMBSTONE:
        r->group = sl_reader_string(&rd);
        r->topic = sl_reader_string(&rd);
        r->partition = sl_reader_i32(&rd);
        break;
    default:
        return "unknown record type";
    }
    if (rd.err)
        return "a field runs past the end of the record";
    if (sl_reader_left(&rd))
        return "bytes left after the last field";
    bool want_group = r->type != GOFF_REC_DELETE_TOPIC;
    bool want_topic = r->type != GOFF_REC_DELETE_GROUP;
    if ((want_group && !r->group.p) || (want_topic && !r->topic.p))
        return "a null group or topic";
    if (has_nul(r->group) || has_nul(r->topic) || has_nul(r->meta))
        return "a NUL byte inside a string";
    if (r->partition < 0)
        return "a negative partition";
    if (r->meta.len > COLL_GOFF_METADATA_MAX)
        return "metadata over its limit";
    return NULL;
}

/* ---- low-level writes ---------------------------------------------------------------------- */

int coll_goff_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const uint8_t *q = p;
    while (n) {
        ssize_t w = pwrite(fd, q, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        q += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

void coll_goff_cut_back(struct coll_goff *g)
{
    /* Should this fail too, the next write goes to file_bytes anyway and overwrites the torn
     * bytes; anything left past the end is a torn tail that the next open cuts. */
    if (ftruncate(g->fd, (off_t)g->file_bytes) < 0)
        SL_WARN(GOFF_WHO, "%s: cutting a failed write back to %" PRIu64 " bytes: %m", g->path,
                g->file_bytes);
}

int coll_goff_sync_dir(struct coll_goff *g, struct sl_err *err)
{
    int fd = open(g->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sl_err_set(err, -errno, "open %s: %m", g->dir);
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    if (rc)
        return sl_err_set(err, rc, "fsync %s: %s", g->dir, sl_strerror(rc));
    g->dir_unsynced = false;
    return 0;
}

int coll_goff_write(struct coll_goff *g, const uint8_t *p, size_t n, bool sync, struct sl_err *err)
{
    int rc;
    if (sync && g->dir_unsynced && (rc = coll_goff_sync_dir(g, err)))
        return rc;
    if (n && (rc = coll_goff_pwrite_all(g->fd, p, n, g->file_bytes))) {
        coll_goff_cut_back(g);
        return sl_err_set(err, rc, "write %s: %s", g->path, sl_strerror(rc));
    }
    if (sync && fdatasync(g->fd) < 0) {
        rc = -errno;
        coll_goff_cut_back(g);
        return sl_err_set(err, rc, "fdatasync %s: %s", g->path, sl_strerror(rc));
    }
    g->file_bytes += n;
    g->unsynced = sync ? false : (g->unsynced || n > 0);
    return 0;
}

/* ---- compaction ---------------------------------------------------------------------------- */

static void header_encode(uint8_t *p)
{
    memcpy(p, GOFF_MAGIC, 4);
    sl_put_be32(p + 4, GOFF_VERSION);
}

/* Writes b at *off of the compaction's temp file and empties it. Returns 0 or -errno (err
 * filled). */
static int write_chunk(struct coll_goff *g, int fd, struct sl_buf *b, uint64_t *off,
                       struct sl_err *err)
{
    int rc = coll_goff_pwrite_all(fd, b->data, b->len, *off);
    if (rc)
        return sl_err_set(err, rc, "write %s: %s", g->tmp_path, sl_strerror(rc));
    *off += b->len;
    sl_buf_reset(b);
    return 0;
}

/* Writes the header and one commit record per entry to fd from offset 0, in chunks, and syncs
 * it. Returns 0 with *len the bytes written, or -ENOMEM / -errno with err filled. */
static int write_live_set(struct coll_goff *g, int fd, uint64_t *len, struct sl_err *err)
{
    struct sl_buf b;
    sl_buf_init(&b);
    *len = 0;
    uint8_t header[GOFF_HEADER];
    header_encode(header);
    int rc = sl_buf_append(&b, header, sizeof(header));
    if (rc)
        sl_err_set(err, rc, "compacting %s: out of memory", g->path);
    for (size_t i = 0; rc == 0 && i < g->groups.cap; i++) {
        struct goff_group *grp = g->groups.slots[i].item;
        for (size_t j = 0; rc == 0 && grp && j < grp->entries.cap; j++) {
            struct goff_entry *e = grp->entries.slots[j].item;
            if (!e)
                continue;
            struct goff_rec r = {
                .type = GOFF_REC_COMMIT,
                .group = {(const uint8_t *)grp->name, grp->name_len},
                .topic = {(const uint8_t *)e->topic, e->topic_len},
                .meta = {(const uint8_t *)e->metadata, e->metadata ? e->meta_len : 0},
                .partition = e->partition,
                .leader_epoch = e->leader_epoch,
                .offset = e->offset,
                .ts_ms = e->ts_ms,
            };
            rc = coll_goff_rec_append(&b, &r);
            if (rc == 0 && b.len >= GOFF_IO_CHUNK)
                rc = write_chunk(g, fd, &b, len, err);
            else if (rc)
                sl_err_set(err, rc, "compacting %s: out of memory", g->path);
        }
    }
    if (rc == 0)
        rc = write_chunk(g, fd, &b, len, err);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = sl_err_set(err, -errno, "fdatasync %s: %m", g->tmp_path);
    sl_buf_fini(&b);
    return rc;
}

int coll_goff_snapshot(struct coll_goff *g, struct sl_err *err)
{
    SL_ASSERT(g->nundo == 0 && g->wbuf.len == 0);
    int fd = open(g->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_err_set(err, -errno, "create %s: %m", g->tmp_path);
    uint64_t len;
    int rc = write_live_set(g, fd, &len, err);
    if (rc)
        goto fail;
    SL_ASSERT(len == g->live_bytes);
    if (rename(g->tmp_path, g->path) < 0) {
        rc = sl_err_set(err, -errno, "rename %s to %s: %m", g->tmp_path, g->path);
        goto fail;
    }
    /* From here on the new file is the log, whatever else happens. */
    if (g->fd >= 0)
        close(g->fd);
    g->fd = fd;
    g->file_bytes = len;
    g->unsynced = false;
    g->compactions++;
    g->compact_retry_at = 0;
    struct sl_err derr;
    if (coll_goff_sync_dir(g, &derr)) {
        /* The rename may not survive a power loss yet; the old file holds the same table, and
         * the next synced write retries the directory before it writes. */
        g->dir_unsynced = true;
        SL_WARN(GOFF_WHO, "%s", derr.msg);
    }
    return 0;

fail:
    close(fd);
    unlink(g->tmp_path);
    return rc;
}

void coll_goff_maybe_compact(struct coll_goff *g)
{
    if (g->nundo || g->wbuf.len || g->file_bytes < g->compact_min ||
        g->file_bytes < g->compact_retry_at || g->file_bytes <= 2 * g->live_bytes)
        return;
    struct sl_err err;
    uint64_t before = g->file_bytes;
    if (coll_goff_snapshot(g, &err)) {
        SL_WARN(GOFF_WHO, "compaction failed, the file keeps growing for now: %s", err.msg);
        g->compact_retry_at = g->file_bytes + g->compact_min;
        return;
    }
    SL_INFO(GOFF_WHO, "%s: compacted from %" PRIu64 " to %" PRIu64 " bytes (%zu offsets)", g->path,
            before, g->file_bytes, g->nentries);
}

int coll_goff_compact(struct coll_goff *g, struct sl_err *err)
{
    int rc = coll_goff_flush(g, false, err);
    if (rc)
        return rc;
    return coll_goff_snapshot(g, err);
}

/* ---- loading ------------------------------------------------------------------------------- */

/* A window over the file, refilled with pread as the replay moves on. */
struct goff_loader {
    int fd;
    uint8_t *buf;    /* owned, GOFF_IO_CHUNK bytes */
    size_t off, end; /* unread bytes are buf[off, end) */
    uint64_t next;   /* file offset of buf[end] */
    bool eof;
};

/* Makes at least `need` (<= GOFF_IO_CHUNK) bytes available unless the file ends first.
 * Returns how many are available, or -errno. */
static ssize_t loader_fill(struct goff_loader *ld, size_t need)
{
    size_t have = ld->end - ld->off;
    if (have >= need || ld->eof)
        return (ssize_t)have;
    memmove(ld->buf, ld->buf + ld->off, have);
    ld->off = 0;
    ld->end = have;
    while (ld->end < need && !ld->eof) {
        ssize_t n = pread(ld->fd, ld->buf + ld->end, GOFF_IO_CHUNK - ld->end, (off_t)ld->next);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        ld->eof = n == 0;
        ld->end += (size_t)n;
        ld->next += (uint64_t)n;
    }
    return (ssize_t)(ld->end - ld->off);
}

static int apply(struct coll_goff *g, const struct goff_rec *r)
{
    struct goff_group *grp;
    struct goff_entry *e;
    switch (r->type) {
    case GOFF_REC_COMMIT:
        return coll_goff_upsert(g, r, NULL);
    case GOFF_REC_DELETE_GROUP:
        if ((grp = coll_goff_group_find(g, (const char *)r->group.p, r->group.len)))
            coll_goff_group_remove(g, grp);
        return 0;
    case GOFF_REC_DELETE_TOPIC:
        coll_goff_topic_remove(g, (const char *)r->topic.p, r->topic.len);
        return 0;
    default:
        grp = coll_goff_group_find(g, (const char *)r->group.p, r->group.len);
        e = grp ? coll_goff_entry_find(grp, (const char *)r->topic.p, r->topic.len, r->partition)
                : NULL;
        if (e)
            coll_goff_entry_remove(g, grp, e);
        return 0;
    }
}

/*
 * Replays every record after the header into the table and returns where the valid data ends
 * in *valid_end; *why is NULL when the file ended cleanly there, otherwise what was wrong at
 * that offset. Returns 0, -ENOMEM or -errno from reading.
 */
static int replay(struct coll_goff *g, uint64_t *valid_end, char *why, size_t why_len,
                  struct sl_err *err)
{
    struct goff_loader ld = {.fd = g->fd, .next = GOFF_HEADER};
    ld.buf = sl_malloc(GOFF_IO_CHUNK);
    if (!ld.buf)
        return sl_err_set(err, -ENOMEM, "loading %s: out of memory", g->path);
    uint64_t pos = GOFF_HEADER;
    int rc = 0;
    why[0] = '\0';
    for (;;) {
        ssize_t have = loader_fill(&ld, GOFF_FRAME);
        if (have < 0) {
            rc = sl_err_set(err, (int)have, "read %s: %s", g->path, sl_strerror((int)have));
            goto out;
        }
        if (have == 0)
            break;
        if (have < GOFF_FRAME) {
            snprintf(why, why_len, "a record frame cut short (%zd of %d bytes)", have, GOFF_FRAME);
            break;
        }
        uint32_t len = sl_be32(ld.buf + ld.off);
        if (len < 1 || len > GOFF_BODY_MAX) {
            snprintf(why, why_len, "a record length of %" PRIu32 " (allowed: 1 to %d)", len,
                     GOFF_BODY_MAX);
            break;
        }
        have = loader_fill(&ld, GOFF_FRAME + len);
        if (have < 0) {
            rc = sl_err_set(err, (int)have, "read %s: %s", g->path, sl_strerror((int)have));
            goto out;
        }
        if ((size_t)have < GOFF_FRAME + len) {
            snprintf(why, why_len, "a record cut short (%zd of %" PRIu32 " bytes)", have,
                     GOFF_FRAME + len);
            break;
        }
        const uint8_t *p = ld.buf + ld.off;
        uint32_t crc = sl_crc32c(sl_crc32c(0, p, 4), p + GOFF_FRAME, len);
        if (crc != sl_be32(p + 4)) {
            snprintf(why, why_len, "a CRC mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")",
                     sl_be32(p + 4), crc);
            break;
        }
        struct goff_rec r;
        const char *bad = rec_decode(p + GOFF_FRAME, len, &r);
        if (bad) {
            snprintf(why, why_len, "a malformed record: %s", bad);
            break;
        }
        if ((rc = apply(g, &r))) {
            sl_err_set(err, rc, "loading %s: out of memory", g->path);
            goto out;
        }
        ld.off += GOFF_FRAME + len;
        pos += GOFF_FRAME + len;
    }
    *valid_end = pos;
out:
    sl_free(ld.buf);
    return rc;
}

/* Loads an existing file: the header, then every record; cuts a torn or corrupt tail. */
static int load(struct coll_goff *g, bool *recreate, struct sl_err *err)
{
    struct stat st;
    if (fstat(g->fd, &st) < 0)
        return sl_err_set(err, -errno, "stat %s: %m", g->path);
    uint8_t want[GOFF_HEADER], got[GOFF_HEADER];
    header_encode(want);
    size_t n = st.st_size < GOFF_HEADER ? (size_t)st.st_size : GOFF_HEADER;
    ssize_t r = pread(g->fd, got, n, 0);
    if (r < 0)
        return sl_err_set(err, -errno, "read %s: %m", g->path);
    if ((size_t)r < GOFF_HEADER) {
        /* Compaction creates the file whole with rename, so a short header is a file system
         * that lost what it had been told to keep; if what is there is ours, start anew. */
        if (memcmp(got, want, (size_t)r) != 0)
            return sl_err_set(err, SL_ECORRUPT,
                              "%s: not a group offsets file (%zd bytes, bad magic); move it away "
                              "to start with no committed offsets",
                              g->path, r);
        if (r > 0)
            SL_WARN(GOFF_WHO, "%s: header cut short at byte %zd; starting it anew", g->path, r);
        *recreate = true;
        return 0;
    }
    if (memcmp(got, want, 4) != 0)
        return sl_err_set(err, SL_ECORRUPT,
                          "%s: not a group offsets file (bad magic); move it away to start with "
                          "no committed offsets",
                          g->path);
    if (sl_be32(got + 4) != GOFF_VERSION)
        return sl_err_set(err, SL_EUNSUP,
                          "%s: format version %" PRIu32 ", this collector reads version %d",
                          g->path, sl_be32(got + 4), GOFF_VERSION);
    uint64_t end = GOFF_HEADER;
    char why[160];
    int rc = replay(g, &end, why, sizeof(why), err);
    if (rc)
        return rc;
    g->file_bytes = end;
    if (why[0] || end < (uint64_t)st.st_size) {
        g->truncated_bytes = (uint64_t)st.st_size - end;
        SL_WARN(GOFF_WHO,
                "%s: %s at byte %" PRIu64 "; cutting the file there (%" PRIu64
                " bytes dropped, every commit before it kept)",
                g->path, why[0] ? why : "unexpected bytes", end, g->truncated_bytes);
        if (ftruncate(g->fd, (off_t)end) < 0 || fsync(g->fd) < 0)
            return sl_err_set(err, -errno, "cutting %s at byte %" PRIu64 ": %m", g->path, end);
    }
    return 0;
}

static void goff_free(struct coll_goff *g)
{
    if (!g)
        return;
    if (g->fd >= 0)
        close(g->fd);
    for (size_t i = 0; i < g->nundo; i++)
        sl_free(g->undo[i].metadata);
    sl_free(g->undo);
    sl_buf_fini(&g->wbuf);
    coll_goff_table_clear(g);
    sl_free(g->dir);
    sl_free(g->path);
    sl_free(g->tmp_path);
    sl_free(g);
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = sl_malloc(la + lb + lc + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

int coll_goff_open(const char *data_dir, const struct coll_goff_opts *opts, struct coll_goff **out,
                   struct sl_err *err)
{
    *out = NULL;
    int rc;
    struct coll_goff *g = sl_calloc(1, sizeof(*g));
    if (!g)
        return sl_err_set(err, -ENOMEM, "opening group offsets in %s: out of memory", data_dir);
    g->fd = -1;
    sl_buf_init(&g->wbuf);
    g->live_bytes = GOFF_HEADER;
    g->compact_min =
        opts && opts->compact_min_bytes ? opts->compact_min_bytes : COLL_GOFF_COMPACT_MIN_DEFAULT;
    g->dir = sl_strdup(data_dir);
    g->path = join(data_dir, "/", COLL_GOFF_FILE);
    g->tmp_path = g->path ? join(g->path, GOFF_TMP_SUFFIX, "") : NULL;
    if (!g->dir || !g->path || !g->tmp_path) {
        rc = sl_err_set(err, -ENOMEM, "opening group offsets in %s: out of memory", data_dir);
        goto fail;
    }
    if (unlink(g->tmp_path) < 0 && errno != ENOENT)
        SL_WARN(GOFF_WHO, "removing the leftover %s: %m", g->tmp_path);

    bool recreate = false;
    g->fd = open(g->path, O_RDWR | O_CLOEXEC);
    if (g->fd < 0) {
        if (errno != ENOENT) {
            rc = sl_err_set(err, -errno, "open %s: %m", g->path);
            goto fail;
        }
        recreate = true;
    } else if ((rc = load(g, &recreate, err))) {
        goto fail;
    }
    if (recreate) {
        /* A new file is made as compaction makes one, so it never exists without its header;
         * and it must really be there before anything is committed into it. */
        if ((rc = coll_goff_snapshot(g, err)) ||
            (g->dir_unsynced && (rc = coll_goff_sync_dir(g, err))))
            goto fail;
    } else {
        coll_goff_maybe_compact(g);
    }
    *out = g;
    return 0;

fail:
    goff_free(g);
    return rc;
}

void coll_goff_close(struct coll_goff *g)
{
    if (!g)
        return;
    struct sl_err err;
    if (coll_goff_flush(g, true, &err))
        SL_ERR(GOFF_WHO, "closing: %s (the commits staged since the last flush are lost)", err.msg);
    goff_free(g);
}

void coll_goff_stats(const struct coll_goff *g, struct coll_goff_stats *out)
{
    *out = (struct coll_goff_stats){
        .entries = g->nentries,
        .groups = g->groups.count,
        .file_bytes = g->file_bytes,
        .live_bytes = g->live_bytes,
        .staged_bytes = g->wbuf.len,
        .compactions = g->compactions,
        .truncated_bytes = g->truncated_bytes,
    };
}
