/* Drives collector storage for the SIGKILL and ENOSPC tests: `write` appends batches and prints
 * each acknowledged one; `verify` reopens (recovering) and checks every record that is there. */
#include "collector/partition_log.h"
#include "collector/storage.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Output of `write`, one line per acknowledged batch, flushed at once:
 *   ACK <base offset> <last offset> <segment base> <byte end of the batch in that .log>
 * and `DONE <next offset>` when the target count is reached. `verify <dir> <acked>` prints
 * `OK <next offset> <batches> cut=<bytes recovery cut>` or `FAIL <reason>` (exit 1).
 * `enospc <dir> <filler> [crash]` prints `ACKED <last acknowledged offset>`; with crash it
 * _exits right after the disk filled up, without closing or freeing the filler. */

static struct coll_log_conf g_conf;

static const struct coll_log_conf *conf_cb(void *arg, const char *topic)
{
    return &g_conf;
}

/* The value of the record at `offset`: its offset, then bytes derived from it. */
static size_t record_value(int64_t offset, uint8_t *v)
{
    size_t n = 16 + (size_t)(offset * 2654435761u % 180);
    sl_put_be64(v, (uint64_t)offset);
    for (size_t i = 8; i < n; i++)
        v[i] = (uint8_t)(offset * 31 + (int64_t)i);
    return n;
}

static int make_batch(struct sl_buf *out, int64_t first, int n)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    struct sl_batch_builder b;
    uint8_t v[256];
    if (sl_batch_builder_init(&b, &o))
        return -1;
    for (int i = 0; i < n; i++) {
        size_t len = record_value(first + i, v);
        if (sl_batch_builder_add(&b, 1700000000000 + first + i, SL_BYTES_NULL,
                                 (struct sl_bytes){v, len}, NULL, 0))
            return -1;
    }
    sl_buf_reset(out);
    int rc = sl_batch_builder_finish(&b, out);
    sl_batch_builder_fini(&b);
    return rc;
}

struct pending {
    int64_t base, last;
    int64_t seg;  /* base of the segment the batch went to */
    uint64_t end; /* its byte end in that segment's .log */
    int *outstanding;
};

static void on_durable(void *arg, int status)
{
    struct pending *p = arg;
    if (status == 0) {
        printf("ACK %" PRId64 " %" PRId64 " %" PRId64 " %" PRIu64 "\n", p->base, p->last, p->seg,
               p->end);
        fflush(stdout);
    } else {
        fprintf(stderr, "durable failed: %s\n", sl_strerror(status));
        exit(3);
    }
    (*p->outstanding)--;
    free(p);
}

static struct coll_storage *open_storage(const char *dir, struct ev_loop *loop)
{
    struct coll_storage_opts o = {.data_dir = dir, .loop = loop, .topic_conf = conf_cb};
    struct coll_storage *st;
    struct sl_err err = {{0}};
    if (coll_storage_open(&o, &st, &err)) {
        fprintf(stderr, "open %s: %s\n", dir, err.msg);
        exit(2);
    }
    return st;
}

static int do_write(const char *dir, int64_t total, unsigned seed)
{
    struct ev_loop *loop = EV_DEFAULT;
    struct coll_storage *st = open_storage(dir, loop);
    struct coll_plog *pl = coll_storage_get(st, "t", 0);
    struct sl_err err = {{0}};
    if (!pl && coll_storage_create(st, "t", 0, NULL, &pl, &err)) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 2;
    }
    srand(seed);
    struct sl_buf b;
    sl_buf_init(&b);
    int outstanding = 0;
    while (pl->next_offset < total || outstanding > 0) {
        while (outstanding < 8 && pl->next_offset < total) {
            int n = 1 + rand() % 64;
            if (pl->next_offset + n > total)
                n = (int)(total - pl->next_offset);
            if (make_batch(&b, pl->next_offset, n))
                return 2;
            struct pending *p = malloc(sizeof(*p));
            p->outstanding = &outstanding;
            struct coll_append_res res;
            if (coll_plog_append(pl, b.data, b.len, on_durable, p, &res, &err)) {
                fprintf(stderr, "append: %s\n", err.msg);
                return 2;
            }
            p->base = res.base_offset;
            p->last = res.last_offset;
            p->seg = pl->segs[pl->nsegs - 1]->base;
            p->end = pl->segs[pl->nsegs - 1]->size;
            outstanding++;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    printf("DONE %" PRId64 "\n", pl->next_offset);
    fflush(stdout);
    sl_buf_fini(&b);
    coll_storage_close(st);
    return 0;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return 1;
}

static int do_verify(const char *dir, int64_t acked)
{
    struct ev_loop *loop = EV_DEFAULT;
    struct coll_storage *st = open_storage(dir, loop);
    struct coll_plog *pl = coll_storage_get(st, "t", 0);
    if (!pl)
        return acked < 0 ? (printf("OK 0 0\n"), 0) : fail("partition missing");
    if (pl->next_offset <= acked)
        return fail("acknowledged offset %" PRId64 " lost: log ends at %" PRId64, acked,
                    pl->next_offset);
    struct sl_buf scratch;
    sl_buf_init(&scratch);
    int64_t off = 0, batches = 0;
    uint8_t v[256];
    while (off < pl->next_offset) {
        struct coll_region r;
        struct sl_err err = {{0}};
        if (coll_plog_read(pl, off, 1 << 20, &r, &err))
            return fail("read %" PRId64 ": %s", off, err.msg);
        if (r.len == 0)
            return fail("nothing readable at %" PRId64 " before the end %" PRId64, off,
                        pl->next_offset);
        uint8_t *buf = malloc(r.len);
        if (pread(r.fd, buf, r.len, (off_t)r.pos) != (ssize_t)r.len)
            return fail("pread");
        size_t at = 0;
        while (at < r.len) {
            struct sl_batch_header h;
            if (sl_batch_validate(&h, buf + at, r.len - at, &scratch, 1 << 24, SL_BATCH_STRICT,
                                  &err))
                return fail("batch at offset %" PRId64 ": %s", off, err.msg);
            if (h.base_offset != off)
                return fail("batch base %" PRId64 " where %" PRId64 " expected", h.base_offset,
                            off);
            struct sl_batch_iter it;
            struct sl_batch_record rec;
            if (sl_batch_iter_init(&it, &h, buf + at, &scratch, 1 << 24, 0, &err))
                return fail("iter: %s", err.msg);
            int rc;
            while ((rc = sl_batch_iter_next(&it, &rec, &err)) == 1) {
                size_t n = record_value(rec.offset, v);
                if (rec.value.len != n || memcmp(rec.value.p, v, n) != 0)
                    return fail("record %" PRId64 " has the wrong value", rec.offset);
            }
            if (rc < 0)
                return fail("record: %s", err.msg);
            off = sl_batch_last_offset(&h) + 1;
            at += h.size;
            batches++;
        }
        free(buf);
        coll_region_release(&r);
    }
    struct coll_region r;
    if (coll_plog_read(pl, pl->next_offset, 1 << 20, &r, NULL) || r.len != 0)
        return fail("something readable past the end");
    printf("OK %" PRId64 " %" PRId64 " cut=%" PRIu64 "\n", pl->next_offset, batches,
           pl->cut_bytes);
    fflush(stdout);
    sl_buf_fini(&scratch);
    /* No clean close: the next writer recovers as well. */
    _exit(0);
}

/* Fills the file system until appends fail, frees `filler`, checks that appends resume. */
static int do_enospc(const char *dir, const char *filler, bool crash)
{
    struct ev_loop *loop = EV_DEFAULT;
    struct coll_storage *st = open_storage(dir, loop);
    struct coll_plog *pl = coll_storage_get(st, "t", 0);
    struct sl_err err = {{0}};
    if (!pl && coll_storage_create(st, "t", 0, NULL, &pl, &err))
        return fail("create: %s", err.msg);
    struct sl_buf b;
    sl_buf_init(&b);
    int outstanding = 0, failures = 0;
    int64_t acked_before = -1;
    for (int i = 0; failures < 5; i++) {
        if (i > 1000000)
            return fail("the file system never filled up");
        int n = 1 + i % 40;
        if (make_batch(&b, pl->next_offset, n))
            return fail("make_batch");
        int64_t next = pl->next_offset;
        struct pending *p = malloc(sizeof(*p));
        p->outstanding = &outstanding;
        struct coll_append_res res;
        int rc = coll_plog_append(pl, b.data, b.len, on_durable, p, &res, &err);
        if (rc) {
            free(p);
            if (rc != -ENOSPC || res.kafka_err != 56)
                return fail("append failed with %d (%s), kafka %d, not ENOSPC", rc, err.msg,
                            res.kafka_err);
            if (pl->next_offset != next)
                return fail("a failed append moved the end");
            struct coll_region r;
            if (coll_plog_read(pl, next, 1 << 20, &r, NULL) || r.len != 0)
                return fail("a failed append is readable");
            failures++;
            continue;
        }
        p->base = res.base_offset;
        p->last = res.last_offset;
        p->seg = -1;
        p->end = 0;
        outstanding++;
        acked_before = res.last_offset;
        while (outstanding > 0)
            ev_run(loop, EVRUN_ONCE);
    }
    printf("ACKED %" PRId64 "\n", acked_before);
    fflush(stdout);
    if (crash)
        _exit(0); /* as a crash while the disk is full: no close, the next start recovers */
    fprintf(stderr, "full after offset %" PRId64 "; freeing %s\n", acked_before, filler);
    if (unlink(filler) < 0)
        return fail("unlink %s: %s", filler, strerror(errno));
    for (int i = 0; i < 20; i++) {
        if (make_batch(&b, pl->next_offset, 10))
            return fail("make_batch");
        struct pending *p = malloc(sizeof(*p));
        p->outstanding = &outstanding;
        struct coll_append_res res;
        if (coll_plog_append(pl, b.data, b.len, on_durable, p, &res, &err))
            return fail("append after freeing space: %s", err.msg);
        p->base = res.base_offset;
        p->last = res.last_offset;
        p->seg = -1;
        p->end = 0;
        outstanding++;
        acked_before = res.last_offset;
        while (outstanding > 0)
            ev_run(loop, EVRUN_ONCE);
    }
    printf("ACKED %" PRId64 "\n", acked_before);
    fflush(stdout);
    sl_buf_fini(&b);
    coll_storage_close(st);
    return 0;
}

int main(int argc, char **argv)
{
    sl_log_threshold = SL_LOG_WARNING;
    g_conf = COLL_LOG_CONF_DEFAULT;
    g_conf.segment_bytes = 1 << 20;
    g_conf.max_batch_bytes = 1 << 20;
    g_conf.fsync = COLL_FSYNC_ALWAYS;
    const char *pol = getenv("SL_FSYNC");
    if (pol && strcmp(pol, "interval") == 0) {
        g_conf.fsync = COLL_FSYNC_INTERVAL;
        g_conf.fsync_interval_ms = 5;
    }
    if (argc == 5 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], strtoll(argv[3], NULL, 10), (unsigned)atoi(argv[4]));
    if ((argc == 4 || (argc == 5 && strcmp(argv[4], "crash") == 0)) &&
        strcmp(argv[1], "enospc") == 0)
        return do_enospc(argv[2], argv[3], argc == 5);
    if (argc == 4 && strcmp(argv[1], "verify") == 0)
        return do_verify(argv[2], strtoll(argv[3], NULL, 10));
    fprintf(stderr, "usage: %s write <dir> <records> <seed> | verify <dir> <acked last offset> | "
            "enospc <dir> <filler file> [crash]\n", argv[0]);
    return 2;
}
