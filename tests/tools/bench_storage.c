/* Benchmark of collector storage against same-run baselines: append throughput (plain write()
 * loop; write + fdatasync per batch; group commit with 4 writers), read-by-offset lookups on a
 * big log, and recovery time per GB. Prints `RESULT <name> <value> <unit>` lines that
 * tests/bench/storage.sh turns into medians and ratios. */
#include "collector/partition_log.h"
#include "collector/storage.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct coll_log_conf g_conf;

static const struct coll_log_conf *conf_cb(void *arg, const char *topic)
{
    return &g_conf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_storage: %s\n", what);
    exit(1);
}

static void rm_rf(const char *path)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        die("rm -rf");
}

/* A valid batch of about `size` bytes: records with 1000-byte values. */
static void make_batch(struct sl_buf *out, size_t size)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    struct sl_batch_builder b;
    static uint8_t v[1000];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (uint8_t)(i * 13);
    if (sl_batch_builder_init(&b, &o))
        die("builder");
    while (sl_batch_builder_size(&b) + 1020 <= size)
        if (sl_batch_builder_add(&b, 1700000000000, SL_BYTES_NULL, (struct sl_bytes){v, 1000}, NULL,
                                 0))
            die("add");
    sl_buf_reset(out);
    if (sl_batch_builder_finish(&b, out))
        die("finish");
    sl_batch_builder_fini(&b);
}

static struct coll_storage *open_st(const char *dir, struct ev_loop *loop)
{
    struct coll_storage_opts o = {.data_dir = dir, .loop = loop, .topic_conf = conf_cb};
    struct coll_storage *st;
    struct sl_err err = {{0}};
    if (coll_storage_open(&o, &st, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        die("open");
    }
    return st;
}

static struct coll_plog *get_or_create(struct coll_storage *st)
{
    struct coll_plog *pl = coll_storage_get(st, "t", 0);
    struct sl_err err = {{0}};
    if (!pl && coll_storage_create(st, "t", 0, NULL, &pl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        die("create");
    }
    return pl;
}

/* ---- Append throughput ----------------------------------------------------------------------- */

/* A write() loop; with sync_every > 0 an fdatasync after every sync_every writes (1: per batch,
 * the baseline of fsync: always; 4: what the disk allows four writers sharing each fdatasync);
 * with check CHECK_CRC the header is parsed and the CRC-32C verified, as the storage must (the
 * cost no append can avoid), with CHECK_RECORDS every record is decoded too. */
enum { CHECK_NONE, CHECK_CRC, CHECK_RECORDS };

static double plain_write_v(const char *dir, const struct sl_buf *b, long n, int sync_every,
                            int check)
{
    struct sl_buf scratch;
    sl_buf_init(&scratch);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/plain.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open plain");
    sync(); /* start each measurement with no dirty pages of the previous one */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        struct sl_batch_header h;
        if (check == CHECK_CRC && sl_batch_parse_header(&h, b->data, b->len, SL_BATCH_STRICT, NULL))
            die("parse");
        if (check == CHECK_RECORDS &&
            sl_batch_validate(&h, b->data, b->len, &scratch, 64 << 20, SL_BATCH_STRICT, NULL))
            die("validate");
        if (write(fd, b->data, b->len) != (ssize_t)b->len)
            die("write");
        if (sync_every > 0 && ((i + 1) % sync_every == 0 || i + 1 == n) && fdatasync(fd) < 0)
            die("fdatasync");
    }
    double t = now_s() - t0;
    close(fd);
    unlink(path);
    sl_buf_fini(&scratch);
    return (double)b->len * (double)n / t / 1e6;
}

static double plain_write(const char *dir, const struct sl_buf *b, long n, int sync_every)
{
    return plain_write_v(dir, b, n, sync_every, CHECK_NONE);
}

struct writer {
    struct coll_plog *pl;
    struct sl_buf *batch;
    long *left;
    int *busy;
};

static void writer_next(struct writer *w);

static void writer_on_durable(void *arg, int status)
{
    struct writer *w = arg;
    if (status)
        die("durable failed");
    (*w->busy)--;
    writer_next(w);
}

static void writer_next(struct writer *w)
{
    if (*w->left <= 0)
        return;
    (*w->left)--;
    (*w->busy)++;
    struct coll_append_res res;
    struct sl_err err = {{0}};
    if (coll_plog_append(w->pl, w->batch->data, w->batch->len, writer_on_durable, w, &res, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        die("append");
    }
}

/* Appends n batches; with `writers` > 0, that many writers each wait for their batch to be
 * durable before sending the next (acks=all); with 0, fire and forget. */
static bool g_validate_records = true;

static void keep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
}

static double storage_append(const char *dir, struct sl_buf *b, long n, enum coll_fsync_policy pol,
                             int writers)
{
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/store", dir);
    rm_rf(d);
    g_conf = COLL_LOG_CONF_DEFAULT;
    g_conf.fsync = pol;
    g_conf.max_batch_bytes = 2 << 20;
    g_conf.validate_records = g_validate_records;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct coll_storage *st = open_st(d, loop);
    struct coll_plog *pl = get_or_create(st);
    sync();
    double t0 = now_s();
    if (writers == 0) {
        for (long i = 0; i < n; i++) {
            struct coll_append_res res;
            struct sl_err err = {{0}};
            if (coll_plog_append(pl, b->data, b->len, NULL, NULL, &res, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                die("append");
            }
        }
    } else {
        long left = n;
        int busy = 0;
        struct writer ws[8];
        /* The flusher's watcher does not keep a loop alive, so a loop with nothing else would
         * poll without sleeping, taking a core from the flusher; a server's loop always has its
         * listening sockets. This timer stands for them. */
        ev_timer keep;
        ev_timer_init(&keep, keep_cb, 3600.0, 0.0);
        ev_timer_start(loop, &keep);
        for (int i = 0; i < writers; i++) {
            ws[i] = (struct writer){pl, b, &left, &busy};
            writer_next(&ws[i]);
        }
        while (busy > 0)
            ev_run(loop, EVRUN_ONCE);
        ev_timer_stop(loop, &keep);
    }
    double t = now_s() - t0;
    coll_storage_close(st);
    ev_loop_destroy(loop);
    rm_rf(d);
    return (double)b->len * (double)n / t / 1e6;
}

/*
 * Each storage figure is printed with a baseline measured beside it (`<name>.baseline`: just
 * before it, or around it for never, interval and crc_floor), because page-cache throughput on
 * a shared machine drifts by 2x within a minute: a ratio to an adjacent run says more than one
 * to a baseline taken once. never and interval run with the
 * shipped `validate_records: false` (header and CRC-32C checked); crc_floor is the plain loop
 * checking the header and CRC the same way: the most any append that checks them can reach.
 * never_records also decodes every record, against a baseline loop that validates the same way.
 */
enum subject { PLAIN, NEVER, INTERVAL, CRC_FLOOR };

static double measure(enum subject what, const char *dir, struct sl_buf *b, long n)
{
    switch (what) {
    case NEVER:
        return storage_append(dir, b, n, COLL_FSYNC_NEVER, 0);
    case INTERVAL:
        return storage_append(dir, b, n, COLL_FSYNC_INTERVAL, 0);
    case CRC_FLOOR:
        return plain_write_v(dir, b, n, 0, CHECK_CRC);
    case PLAIN:
        break;
    }
    return plain_write(dir, b, n, 0);
}

/* Measures `what` and its baseline (the plain loop) in the order baseline, what, what,
 * baseline, half the batches each time, and prints both as total bytes over total time: a
 * drift of the page cache's speed during the four runs hits both alike. */
static void abba(const char *tag, const char *name, enum subject what, const char *dir,
                 struct sl_buf *b, long n)
{
    double t_base = 0, t_what = 0, bytes = (double)b->len * (double)(n / 2) / 1e6;
    t_base += bytes / measure(PLAIN, dir, b, n / 2);
    t_what += bytes / measure(what, dir, b, n / 2);
    t_what += bytes / measure(what, dir, b, n / 2);
    t_base += bytes / measure(PLAIN, dir, b, n / 2);
    printf("RESULT %s.%s.baseline %.1f MB/s\n", tag, name, 2 * bytes / t_base);
    printf("RESULT %s.%s %.1f MB/s\n", tag, name, 2 * bytes / t_what);
}

static void bench_append(const char *dir, long total_mb, long sync_batches_64k)
{
    static const size_t sizes[] = {64 << 10, 1 << 20};
    struct sl_buf b;
    sl_buf_init(&b);
    for (size_t s = 0; s < 2; s++) {
        make_batch(&b, sizes[s]);
        const char *tag = s == 0 ? "64k" : "1m";
        long n = (long)(((long long)total_mb << 20) / (long long)b.len);
        long ns = s == 0 ? sync_batches_64k : sync_batches_64k / 8;
        plain_write(dir, &b, n / 4, 0); /* warm-up: page cache, file system */
        g_validate_records = false;
        abba(tag, "never", NEVER, dir, &b, n);
        abba(tag, "interval", INTERVAL, dir, &b, n);
        abba(tag, "crc_floor", CRC_FLOOR, dir, &b, n);
        g_validate_records = true;
        printf("RESULT %s.never_records.baseline %.1f MB/s\n", tag,
               plain_write_v(dir, &b, n, 0, CHECK_RECORDS));
        printf("RESULT %s.never_records %.1f MB/s\n", tag,
               storage_append(dir, &b, n, COLL_FSYNC_NEVER, 0));
        g_validate_records = false;
        printf("RESULT %s.always_1writer.baseline %.1f MB/s\n", tag, plain_write(dir, &b, ns, 1));
        printf("RESULT %s.always_1writer %.1f MB/s\n", tag,
               storage_append(dir, &b, ns, COLL_FSYNC_ALWAYS, 1));
        printf("RESULT %s.always_4writers.baseline %.1f MB/s\n", tag, plain_write(dir, &b, ns, 1));
        printf("RESULT %s.always_4writers.disk_limit %.1f MB/s\n", tag,
               plain_write(dir, &b, ns, 4));
        printf("RESULT %s.always_4writers %.1f MB/s\n", tag,
               storage_append(dir, &b, ns, COLL_FSYNC_ALWAYS, 4));
        fflush(stdout);
    }
    sl_buf_fini(&b);
}

/* ---- Big log: lookups and recovery ----------------------------------------------------------- */

static void build_log(const char *dir, long gb)
{
    g_conf = COLL_LOG_CONF_DEFAULT;
    g_conf.fsync = COLL_FSYNC_NEVER;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct coll_storage *st = open_st(dir, loop);
    struct coll_plog *pl = get_or_create(st);
    struct sl_buf b;
    sl_buf_init(&b);
    make_batch(&b, 16 << 10);
    uint64_t want = (uint64_t)gb << 30;
    double t0 = now_s();
    while (coll_plog_size(pl) < want) {
        struct coll_append_res res;
        struct sl_err err = {{0}};
        if (coll_plog_append(pl, b.data, b.len, NULL, NULL, &res, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            die("append");
        }
    }
    fprintf(stderr, "built %" PRIu64 " bytes, %zu segments, %" PRId64 " records in %.1fs\n",
            coll_plog_size(pl), pl->nsegs, pl->next_offset, now_s() - t0);
    sl_buf_fini(&b);
    coll_storage_close(st);
    ev_loop_destroy(loop);
}

static void bench_lookups(const char *dir, double seconds)
{
    g_conf = COLL_LOG_CONF_DEFAULT;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct coll_storage *st = open_st(dir, loop);
    struct coll_plog *pl = coll_storage_get(st, "t", 0);
    if (!pl)
        die("no log: run build first");
    uint64_t x = 88172645463325252ull;
    long n = 0;
    uint64_t bytes = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 1000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int64_t span = pl->next_offset - pl->log_start;
            int64_t off = pl->log_start + (int64_t)(x % (uint64_t)span);
            struct coll_region r;
            struct sl_err err = {{0}};
            if (coll_plog_read(pl, off, 1 << 20, &r, &err) || r.len == 0) {
                fprintf(stderr, "%s\n", err.msg);
                die("read");
            }
            bytes += r.len;
            coll_region_release(&r);
            n++;
        }
        t = now_s() - t0;
    } while (t < seconds);
    printf("RESULT lookup.read_by_offset %.0f lookups/s\n", (double)n / t);
    printf("RESULT lookup.log_size %.2f GB\n", (double)coll_plog_size(pl) / 1e9);
    fprintf(stderr, "average region %.0f bytes\n", (double)bytes / (double)n);
    coll_storage_close(st);
    ev_loop_destroy(loop);
}

static void bench_recovery(const char *dir, bool cold)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/" COLL_CLEAN_SHUTDOWN_FILE, dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/t-0/" COLL_FILE_RECOVERY_POINT, dir);
    unlink(path);
    if (cold) {
        sync();
        int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
        if (fd < 0 || write(fd, "3", 1) != 1)
            die("drop_caches (needs root)");
        close(fd);
    }
    g_conf = COLL_LOG_CONF_DEFAULT;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    double t0 = now_s();
    struct coll_storage *st = open_st(dir, loop);
    double t = now_s() - t0;
    struct coll_plog *pl = coll_storage_get(st, "t", 0);
    if (!pl || pl->cut_bytes)
        die("recovery lost data");
    double gb = (double)coll_plog_size(pl) / 1e9;
    printf("RESULT recovery.%s %.3f s/GB\n", cold ? "cold" : "warm", t / gb);
    coll_storage_close(st);
    ev_loop_destroy(loop);
}

int main(int argc, char **argv)
{
    sl_log_threshold = SL_LOG_WARNING;
    if (argc >= 3 && strcmp(argv[1], "append") == 0) {
        long mb = argc > 3 ? atol(argv[3]) : 1024;
        long sb = argc > 4 ? atol(argv[4]) : 400;
        bench_append(argv[2], mb, sb);
    } else if (argc == 6 && strcmp(argv[1], "sync") == 0) {
        /* just the fsync: always figures, for one batch size (KiB), batches, writers */
        struct sl_buf b;
        sl_buf_init(&b);
        make_batch(&b, (size_t)atol(argv[3]) << 10);
        long n = atol(argv[4]);
        printf("RESULT sync.plain_write_fdatasync %.1f MB/s\n", plain_write(argv[2], &b, n, 1));
        printf("RESULT sync.always_%swriters %.1f MB/s\n", argv[5],
               storage_append(argv[2], &b, n, COLL_FSYNC_ALWAYS, atoi(argv[5])));
        sl_buf_fini(&b);
    } else if (argc == 4 && strcmp(argv[1], "build") == 0) {
        build_log(argv[2], atol(argv[3]));
    } else if (argc >= 3 && strcmp(argv[1], "lookups") == 0) {
        bench_lookups(argv[2], argc > 3 ? atof(argv[3]) : 5.0);
    } else if (argc == 4 && strcmp(argv[1], "recover") == 0) {
        bench_recovery(argv[2], strcmp(argv[3], "cold") == 0);
    } else {
        fprintf(stderr,
                "usage: %s append <dir> [MB per run] [fsync batches of 64k]\n"
                "       %s sync <dir> <KiB per batch> <batches> <writers>\n"
                "       %s build <dir> <GB> | lookups <dir> [s] | recover <dir> warm|cold\n",
                argv[0], argv[0], argv[0]);
        return 2;
    }
    return 0;
}
