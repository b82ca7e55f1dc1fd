/* Unit tests for the committed-offsets store: put/get/flush, limits, removals, reopen, torn and
 * corrupt tails cut at every byte, compaction, failed writes rolled back, allocation faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collector/group_offsets.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fx {
    char dir[64];
    char path[128];
    struct coll_goff *g;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(p);
    return 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/sl-goff-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, COLL_GOFF_FILE);
    sl_log_threshold = SL_LOG_ERR; /* the expected warnings stay out of the test output */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    coll_goff_close(f->g);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    sl_log_threshold = SL_LOG_WARNING;
    return 0;
}

static struct coll_goff *open_ok(struct fx *f, uint64_t compact_min)
{
    struct coll_goff_opts o = {.compact_min_bytes = compact_min};
    struct sl_err err = {{0}};
    struct coll_goff *g = NULL;
    int rc = coll_goff_open(f->dir, &o, &g, &err);
    if (rc)
        fail_msg("open %s: %d %s", f->dir, rc, err.msg);
    return g;
}

static void reopen(struct fx *f, uint64_t compact_min)
{
    coll_goff_close(f->g);
    f->g = open_ok(f, compact_min);
}

static void put_ok(struct coll_goff *g, const char *group, const char *topic, int32_t part,
                   int64_t off, const char *meta, int64_t ts)
{
    struct sl_err err = {{0}};
    int rc = coll_goff_put(g, group, topic, part, off, (int32_t)(off % 7) - 1, meta, ts, &err);
    if (rc)
        fail_msg("put %s/%s/%d: %d %s", group, topic, part, rc, err.msg);
}

static void flush_ok(struct coll_goff *g, bool sync)
{
    struct sl_err err = {{0}};
    int rc = coll_goff_flush(g, sync, &err);
    if (rc)
        fail_msg("flush: %d %s", rc, err.msg);
}

/* Asserts (group, topic, part) holds off (and the epoch put_ok derives from it) and meta. */
static void expect(struct coll_goff *g, const char *group, const char *topic, int32_t part,
                   int64_t off, const char *meta)
{
    struct coll_goff_entry e;
    if (!coll_goff_get(g, group, topic, part, &e))
        fail_msg("%s/%s/%d: nothing committed, want %" PRId64, group, topic, part, off);
    assert_int_equal(e.offset, off);
    assert_int_equal(e.leader_epoch, (int32_t)(off % 7) - 1);
    assert_string_equal(e.group, group);
    assert_string_equal(e.topic, topic);
    assert_int_equal(e.partition, part);
    if (meta)
        assert_string_equal(e.metadata, meta);
    else
        assert_null(e.metadata);
}

static void expect_none(struct coll_goff *g, const char *group, const char *topic, int32_t part)
{
    struct coll_goff_entry e;
    if (coll_goff_get(g, group, topic, part, &e))
        fail_msg("%s/%s/%d: committed %" PRId64 ", want nothing", group, topic, part, e.offset);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return p;
}

static void write_all(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static struct coll_goff_stats stats(struct coll_goff *g)
{
    struct coll_goff_stats s;
    coll_goff_stats(g, &s);
    return s;
}

static void test_put_get_overwrite(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    assert_int_equal(file_size(f->path), 8); /* created with its header, before any commit */
    expect_none(f->g, "g", "t", 0);
    put_ok(f->g, "g", "t", 0, 10, "m", 1000);
    /* Staged: visible before the flush, not yet in the file. */
    expect(f->g, "g", "t", 0, 10, "m");
    assert_int_equal(file_size(f->path), 8);
    assert_true(stats(f->g).staged_bytes > 0);
    flush_ok(f->g, true);
    assert_int_equal(stats(f->g).staged_bytes, 0);
    assert_int_equal(file_size(f->path), stats(f->g).file_bytes);
    put_ok(f->g, "g", "t", 0, 20, "m2", 2000);
    put_ok(f->g, "g", "t", 1, 5, NULL, 2000);
    put_ok(f->g, "g", "u", 0, 7, NULL, 2000);
    put_ok(f->g, "h", "t", 0, 8, NULL, 2000);
    flush_ok(f->g, false);
    expect(f->g, "g", "t", 0, 20, "m2");
    expect(f->g, "g", "t", 1, 5, NULL);
    expect(f->g, "g", "u", 0, 7, NULL);
    expect(f->g, "h", "t", 0, 8, NULL);
    expect_none(f->g, "g", "t", 2);
    expect_none(f->g, "x", "t", 0);
    expect_none(f->g, "g", "v", 0);
    struct coll_goff_entry e;
    assert_true(coll_goff_get(f->g, "g", "t", 0, &e));
    assert_int_equal(e.commit_ts_ms, 2000);
    assert_int_equal(stats(f->g).entries, 4);
    assert_int_equal(stats(f->g).groups, 2);
    /* A sync with nothing staged still syncs what an unsynced flush wrote; then it is a no-op. */
    flush_ok(f->g, true);
    flush_ok(f->g, true);
    /* Leader epochs and offsets round-trip at their extremes. */
    struct sl_err err;
    assert_int_equal(
        coll_goff_put(f->g, "g", "t", INT32_MAX, INT64_MAX, INT32_MIN, NULL, INT64_MIN, &err), 0);
    assert_int_equal(coll_goff_put(f->g, "", "", 0, -1, -1, "", 0, &err), 0);
    reopen(f, 0);
    assert_true(coll_goff_get(f->g, "g", "t", INT32_MAX, &e));
    assert_int_equal(e.offset, INT64_MAX);
    assert_int_equal(e.leader_epoch, INT32_MIN);
    assert_int_equal(e.commit_ts_ms, INT64_MIN);
    assert_true(coll_goff_get(f->g, "", "", 0, &e));
    assert_int_equal(e.offset, -1);
    assert_string_equal(e.metadata, "");
    expect(f->g, "g", "t", 0, 20, "m2");
    assert_int_equal(stats(f->g).entries, 6);
}

static void test_metadata_and_limits(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    put_ok(f->g, "g", "t", 0, 1, NULL, 1);
    put_ok(f->g, "g", "t", 1, 1, "", 1);
    char *big = malloc(COLL_GOFF_NAME_MAX + 2);
    assert_non_null(big);
    memset(big, 'm', COLL_GOFF_METADATA_MAX);
    big[COLL_GOFF_METADATA_MAX] = '\0';
    put_ok(f->g, "g", "t", 2, 1, big, 1); /* exactly at the limit */
    struct sl_err err = {{0}};
    big[COLL_GOFF_METADATA_MAX] = 'm';
    big[COLL_GOFF_METADATA_MAX + 1] = '\0';
    assert_int_equal(coll_goff_put(f->g, "g", "t", 3, 1, -1, big, 1, &err), COLL_GOFF_EMETADATA);
    assert_non_null(strstr(err.msg, "4096"));
    expect_none(f->g, "g", "t", 3);
    /* Names: 32767 bytes pass, 32768 do not (SL_ETOOBIG, distinct from the metadata code). */
    memset(big, 'n', COLL_GOFF_NAME_MAX);
    big[COLL_GOFF_NAME_MAX] = '\0';
    put_ok(f->g, big, big, 0, 3, NULL, 1);
    big[COLL_GOFF_NAME_MAX] = 'n';
    big[COLL_GOFF_NAME_MAX + 1] = '\0';
    assert_int_equal(coll_goff_put(f->g, big, "t", 0, 1, -1, NULL, 1, &err), SL_ETOOBIG);
    assert_non_null(strstr(err.msg, "group id"));
    assert_int_equal(coll_goff_put(f->g, "g", big, 0, 1, -1, NULL, 1, &err), SL_ETOOBIG);
    assert_non_null(strstr(err.msg, "topic"));
    assert_int_equal(coll_goff_delete_group(f->g, big, &err), SL_ETOOBIG);
    assert_int_equal(coll_goff_put(f->g, "g", "t", -1, 1, -1, NULL, 1, &err), -EINVAL);
    assert_int_equal(coll_goff_put(f->g, NULL, "t", 0, 1, -1, NULL, 1, &err), -EINVAL);
    assert_int_equal(coll_goff_put(f->g, "g", NULL, 0, 1, -1, NULL, 1, &err), -EINVAL);
    assert_int_equal(stats(f->g).entries, 4);
    flush_ok(f->g, true);
    reopen(f, 0);
    expect(f->g, "g", "t", 0, 1, NULL);
    expect(f->g, "g", "t", 1, 1, "");
    big[COLL_GOFF_NAME_MAX] = '\0';
    expect(f->g, big, big, 0, 3, NULL);
    struct coll_goff_entry e;
    assert_true(coll_goff_get(f->g, "g", "t", 2, &e));
    assert_int_equal(strlen(e.metadata), COLL_GOFF_METADATA_MAX);
    assert_int_equal(stats(f->g).entries, 4);
    free(big);
}

struct tally {
    size_t n;
    int64_t sum;
    size_t groups, group_entries;
};

static void count_entry(const struct coll_goff_entry *e, void *arg)
{
    struct tally *t = arg;
    t->n++;
    t->sum += e->offset;
}

static void count_group(const char *group, size_t entries, void *arg)
{
    struct tally *t = arg;
    assert_int_equal(strncmp(group, "group-", 6), 0);
    t->groups++;
    t->group_entries += entries;
}

/* 100 groups x 10 topics x 100 partitions: put, flush per group, read back, reopen, read back. */
static void test_many_entries(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    char group[32], topic[32];
    for (int gi = 0; gi < 100; gi++) {
        snprintf(group, sizeof(group), "group-%d", gi);
        for (int ti = 0; ti < 10; ti++) {
            snprintf(topic, sizeof(topic), "topic-%d", ti);
            for (int p = 0; p < 100; p++)
                put_ok(f->g, group, topic, p, gi * 100000 + ti * 1000 + p, NULL, 1);
        }
        flush_ok(f->g, gi % 10 == 9);
    }
    for (int round = 0; round < 2; round++) {
        assert_int_equal(stats(f->g).entries, 100000);
        assert_int_equal(stats(f->g).groups, 100);
        for (int gi = 0; gi < 100; gi++) {
            snprintf(group, sizeof(group), "group-%d", gi);
            for (int ti = 0; ti < 10; ti++) {
                snprintf(topic, sizeof(topic), "topic-%d", ti);
                for (int p = 0; p < 100; p++) {
                    struct coll_goff_entry e;
                    assert_true(coll_goff_get(f->g, group, topic, p, &e));
                    assert_int_equal(e.offset, gi * 100000 + ti * 1000 + p);
                }
            }
        }
        struct tally t = {0};
        coll_goff_foreach(f->g, NULL, count_entry, &t);
        assert_int_equal(t.n, 100000);
        struct tally one = {0};
        coll_goff_foreach(f->g, "group-42", count_entry, &one);
        assert_int_equal(one.n, 1000);
        int64_t want = 0;
        for (int ti = 0; ti < 10; ti++)
            for (int p = 0; p < 100; p++)
                want += 42 * 100000 + ti * 1000 + p;
        assert_int_equal(one.sum, want);
        coll_goff_foreach_group(f->g, count_group, &t);
        assert_int_equal(t.groups, 100);
        assert_int_equal(t.group_entries, 100000);
        struct tally none = {0};
        coll_goff_foreach(f->g, "nobody", count_entry, &none);
        assert_int_equal(none.n, 0);
        reopen(f, 0);
    }
    /* The file holds exactly the live set: nothing was ever overwritten. */
    assert_int_equal(stats(f->g).file_bytes, stats(f->g).live_bytes);
}

static void test_delete_group_topic_reopen(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    for (int p = 0; p < 3; p++) {
        put_ok(f->g, "a", "t1", p, 1, NULL, 1);
        put_ok(f->g, "a", "t2", p, 2, NULL, 1);
        put_ok(f->g, "b", "t1", p, 3, NULL, 1);
        put_ok(f->g, "c", "t2", p, 4, NULL, 1);
    }
    flush_ok(f->g, true);
    struct sl_err err = {{0}};
    assert_int_equal(coll_goff_delete_group(f->g, "a", &err), 0);
    assert_int_equal(coll_goff_delete_group(f->g, "unknown", &err), 0);
    expect_none(f->g, "a", "t1", 0);
    expect_none(f->g, "a", "t2", 2);
    /* The staged put is flushed by the removal, which then drops the topic from every group;
     * group b had only t1, so it goes entirely. */
    put_ok(f->g, "c", "t1", 9, 5, "x", 1);
    uint64_t before = stats(f->g).file_bytes;
    assert_int_equal(coll_goff_delete_topic(f->g, "t1", &err), 0);
    assert_true(stats(f->g).file_bytes > before);
    assert_int_equal(stats(f->g).staged_bytes, 0);
    expect_none(f->g, "b", "t1", 0);
    expect_none(f->g, "c", "t1", 9);
    before = stats(f->g).file_bytes;
    assert_int_equal(coll_goff_delete_topic(f->g, "t1", &err), 0); /* nothing left: no record */
    assert_int_equal(stats(f->g).file_bytes, before);
    assert_int_equal(stats(f->g).groups, 1);
    assert_int_equal(stats(f->g).entries, 3);
    /* Committing again after a delete works, and the order of records is what replay obeys. */
    put_ok(f->g, "a", "t1", 0, 11, NULL, 1);
    flush_ok(f->g, true);
    for (int round = 0; round < 2; round++) {
        expect(f->g, "a", "t1", 0, 11, NULL);
        expect_none(f->g, "a", "t2", 0);
        expect_none(f->g, "b", "t1", 1);
        for (int p = 0; p < 3; p++)
            expect(f->g, "c", "t2", p, 4, NULL);
        assert_int_equal(stats(f->g).entries, 4);
        assert_int_equal(stats(f->g).groups, 2);
        reopen(f, 0);
    }
}

static void test_expire(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    put_ok(f->g, "a", "t", 0, 1, NULL, 100);
    put_ok(f->g, "a", "t", 1, 1, NULL, 200);
    put_ok(f->g, "a", "t", 2, 1, NULL, 300);
    put_ok(f->g, "b", "t", 0, 1, NULL, 100);
    put_ok(f->g, "c", "t", 0, 1, NULL, 100);
    put_ok(f->g, "c", "t", 1, 1, NULL, 400);
    flush_ok(f->g, true);
    size_t removed = 99;
    struct sl_err err = {{0}};
    assert_int_equal(coll_goff_expire(f->g, "a", 250, &removed, &err), 0);
    assert_int_equal(removed, 2);
    expect_none(f->g, "a", "t", 0);
    expect(f->g, "a", "t", 2, 1, NULL);
    expect(f->g, "b", "t", 0, 1, NULL); /* another group: untouched */
    assert_int_equal(coll_goff_expire(f->g, "nobody", 250, &removed, &err), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(coll_goff_expire(f->g, NULL, 350, &removed, &err), 0);
    assert_int_equal(removed, 3);
    assert_int_equal(coll_goff_expire(f->g, NULL, 350, NULL, &err), 0);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(stats(f->g).entries, 1);
        assert_int_equal(stats(f->g).groups, 1);
        expect(f->g, "c", "t", 1, 1, NULL);
        reopen(f, 0);
    }
}

/* Writes six commits, one record per flush, and returns where the last record starts/ends. */
static void six_commits(struct fx *f, uint64_t *last_start, uint64_t *last_end)
{
    f->g = open_ok(f, 0);
    for (int i = 0; i < 5; i++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        put_ok(f->g, "g", t, i, 100 + i, i % 2 ? "meta" : NULL, i);
        flush_ok(f->g, false);
    }
    *last_start = stats(f->g).file_bytes;
    put_ok(f->g, "g", "t2", 2, 999, "last", 9); /* overwrites an earlier commit */
    flush_ok(f->g, true);
    *last_end = stats(f->g).file_bytes;
    coll_goff_close(f->g);
    f->g = NULL;
}

static void expect_first_five(struct coll_goff *g, bool with_last, size_t more)
{
    for (int i = 0; i < 5; i++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        if (i == 2 && with_last)
            expect(g, "g", t, i, 999, "last");
        else
            expect(g, "g", t, i, 100 + i, i % 2 ? "meta" : NULL);
    }
    assert_int_equal(stats(g).entries, 5 + more);
}

static void test_torn_last_record(void **state)
{
    struct fx *f = *state;
    uint64_t start, end;
    six_commits(f, &start, &end);
    size_t n;
    uint8_t *full = read_all(f->path, &n);
    assert_int_equal(n, end);
    for (uint64_t cut = start; cut <= end; cut++) {
        write_all(f->path, full, (size_t)cut);
        f->g = open_ok(f, 0);
        expect_first_five(f->g, cut == end, 0);
        uint64_t want = cut == end ? end : start;
        assert_int_equal(stats(f->g).file_bytes, want);
        assert_int_equal(stats(f->g).truncated_bytes, cut - want);
        assert_int_equal(file_size(f->path), want);
        /* Commits after the cut land right where the torn record was, and survive. */
        put_ok(f->g, "g", "after", 0, 5, NULL, 1);
        flush_ok(f->g, true);
        reopen(f, 0);
        expect_first_five(f->g, cut == end, 1);
        expect(f->g, "g", "after", 0, 5, NULL);
        assert_int_equal(stats(f->g).truncated_bytes, 0);
        coll_goff_close(f->g);
        f->g = NULL;
    }
    free(full);
}

/* Reads what the log sink got into buf (NUL-terminated). */
static void read_log(int fd, char *buf, size_t cap)
{
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len >= 0 && (size_t)len < cap);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    buf[len] = '\0';
}

static void test_corrupt_middle(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    uint64_t starts[10];
    for (int i = 0; i < 10; i++) {
        starts[i] = stats(f->g).file_bytes;
        char t[16];
        snprintf(t, sizeof(t), "t%d", i);
        put_ok(f->g, "g", t, 0, i, NULL, i);
        flush_ok(f->g, false);
    }
    coll_goff_close(f->g);
    f->g = NULL;
    size_t n;
    uint8_t *full = read_all(f->path, &n);
    /* Three ways to spoil record 5: a flipped body byte, a flipped CRC, a huge length. */
    for (int how = 0; how < 3; how++) {
        uint8_t *bad = malloc(n);
        assert_non_null(bad);
        memcpy(bad, full, n);
        size_t at = (size_t)starts[5];
        if (how == 0)
            bad[at + 12] ^= 0x40;
        else if (how == 1)
            bad[at + 5] ^= 0x01;
        else
            bad[at] = 0x7f;
        write_all(f->path, bad, n);
        free(bad);

        char logpath[160];
        snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
        int logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(logfd >= 0);
        sl_log_set_fd(logfd);
        sl_log_threshold = SL_LOG_WARNING;
        f->g = open_ok(f, 0);
        sl_log_threshold = SL_LOG_ERR;
        sl_log_set_fd(STDERR_FILENO);
        char log[4096];
        read_log(logfd, log, sizeof(log));
        close(logfd);
        char want[64];
        snprintf(want, sizeof(want), "at byte %" PRIu64 ";", starts[5]);
        if (!strstr(log, f->path) || !strstr(log, want))
            fail_msg("warning should name %s and '%s': %s", f->path, want, log);
        const char *why[] = {"CRC mismatch", "CRC mismatch", "record length"};
        if (!strstr(log, why[how]))
            fail_msg("warning should say '%s': %s", why[how], log);

        for (int i = 0; i < 10; i++) {
            char t[16];
            snprintf(t, sizeof(t), "t%d", i);
            if (i < 5)
                expect(f->g, "g", t, 0, i, NULL);
            else
                expect_none(f->g, "g", t, 0);
        }
        assert_int_equal(file_size(f->path), starts[5]);
        assert_int_equal(stats(f->g).truncated_bytes, n - starts[5]);
        coll_goff_close(f->g);
        f->g = NULL;
    }
    free(full);
}

/* Headers: a torn or empty one is started anew; a foreign or newer file is refused, untouched. */
static void test_headers(void **state)
{
    struct fx *f = *state;
    struct sl_err err = {{0}};
    struct coll_goff *g = NULL;
    write_all(f->path, "SLG", 3);
    f->g = open_ok(f, 0);
    assert_int_equal(file_size(f->path), 8);
    coll_goff_close(f->g);
    write_all(f->path, "", 0);
    f->g = open_ok(f, 0);
    assert_int_equal(file_size(f->path), 8);
    coll_goff_close(f->g);
    f->g = NULL;

    write_all(f->path, "PK\x03\x04 something else entirely", 29);
    assert_int_equal(coll_goff_open(f->dir, NULL, &g, &err), SL_ECORRUPT);
    assert_null(g);
    assert_non_null(strstr(err.msg, f->path));
    assert_int_equal(file_size(f->path), 29);
    write_all(f->path, "XY", 2);
    assert_int_equal(coll_goff_open(f->dir, NULL, &g, &err), SL_ECORRUPT);
    assert_int_equal(file_size(f->path), 2);
    write_all(f->path, "SLGO\0\0\0\2rest", 12);
    assert_int_equal(coll_goff_open(f->dir, NULL, &g, &err), SL_EUNSUP);
    assert_non_null(strstr(err.msg, "version 2"));
    assert_int_equal(file_size(f->path), 12);
}

static void check_model(struct coll_goff *g, int nkeys, const int64_t *model)
{
    size_t live = 0;
    for (int k = 0; k < nkeys; k++) {
        char t[16];
        snprintf(t, sizeof(t), "t%d", k);
        if (model[k] < 0) {
            expect_none(g, "g", t, k % 3);
        } else {
            expect(g, "g", t, k % 3, model[k], k % 2 ? "meta" : NULL);
            live++;
        }
    }
    assert_int_equal(stats(g).entries, live);
}

static void test_compaction(void **state)
{
    struct fx *f = *state;
    enum { KEYS = 10 };
    int64_t model[KEYS];
    for (int k = 0; k < KEYS; k++)
        model[k] = -1;
    /* Runtime: overwrites grow the file; compaction keeps it within its bounds. */
    f->g = open_ok(f, 4096);
    for (int i = 0; i < 3000; i++) {
        int k = (i * 7) % KEYS;
        char t[16];
        snprintf(t, sizeof(t), "t%d", k);
        put_ok(f->g, "g", t, k % 3, i, k % 2 ? "meta" : NULL, i);
        model[k] = i;
        flush_ok(f->g, i % 50 == 0);
        struct coll_goff_stats s = stats(f->g);
        assert_true(s.file_bytes < 4096 || s.file_bytes <= 2 * s.live_bytes);
    }
    struct coll_goff_stats s = stats(f->g);
    assert_true(s.compactions > 10);
    assert_int_equal(file_size(f->path), s.file_bytes);
    check_model(f->g, KEYS, model);
    /* Removals count in the live set too: drop some keys, compact by hand to exactly it. */
    struct sl_err err = {{0}};
    assert_int_equal(coll_goff_expire(f->g, "g", 2990, NULL, &err), 0);
    for (int k = 0; k < KEYS; k++)
        if (model[k] < 2990)
            model[k] = -1;
    assert_int_equal(coll_goff_compact(f->g, &err), 0);
    assert_int_equal(stats(f->g).file_bytes, stats(f->g).live_bytes);
    assert_int_equal(file_size(f->path), stats(f->g).live_bytes);
    reopen(f, 4096);
    check_model(f->g, KEYS, model);
    assert_int_equal(stats(f->g).file_bytes, stats(f->g).live_bytes);

    /* At open: a file grown under a large threshold is compacted when reopened with a small
     * one, and a leftover temp file of an interrupted compaction is removed. */
    reopen(f, 1 << 30);
    for (int i = 0; i < 500; i++) {
        int k = i % KEYS;
        char t[16];
        snprintf(t, sizeof(t), "t%d", k);
        put_ok(f->g, "g", t, k % 3, 5000 + i, k % 2 ? "meta" : NULL, i);
        model[k] = 5000 + i;
        flush_ok(f->g, false);
    }
    uint64_t grown = stats(f->g).file_bytes;
    assert_int_equal(stats(f->g).compactions, 0);
    coll_goff_close(f->g);
    f->g = NULL;
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    write_all(tmp, "half a compaction", 17);
    f->g = open_ok(f, 4096);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(stats(f->g).compactions, 1);
    assert_true(stats(f->g).file_bytes < grown);
    assert_int_equal(stats(f->g).file_bytes, stats(f->g).live_bytes);
    check_model(f->g, KEYS, model);
    reopen(f, 4096);
    check_model(f->g, KEYS, model);

    /* A compaction that cannot write its temp file fails cleanly: the log goes on as it was. */
    assert_int_equal(mkdir(tmp, 0755), 0);
    assert_int_equal(coll_goff_compact(f->g, &err), -EISDIR);
    assert_non_null(strstr(err.msg, tmp));
    for (int i = 0; i < 200; i++) {
        put_ok(f->g, "g", "t0", 0, 9000 + i, NULL, i);
        model[0] = 9000 + i;
        flush_ok(f->g, false);
    }
    check_model(f->g, KEYS, model);
    assert_int_equal(rmdir(tmp), 0);
    reopen(f, 4096);
    check_model(f->g, KEYS, model);
}

/* A write that fails (RLIMIT_FSIZE stands in for ENOSPC) rolls back every staged put, cuts the
 * file back, names the file; the store goes on once there is room. */
static void test_write_failure(void **state)
{
    struct fx *f = *state;
    f->g = open_ok(f, 0);
    put_ok(f->g, "g", "t", 0, 1, "old", 1);
    put_ok(f->g, "g", "t", 1, 2, NULL, 1);
    flush_ok(f->g, true);
    uint64_t size = stats(f->g).file_bytes;

    put_ok(f->g, "g", "t", 0, 10, "new", 2); /* replaces */
    put_ok(f->g, "g", "t", 0, 11, NULL, 2);  /* replaces the staged one */
    put_ok(f->g, "g", "t", 5, 12, NULL, 2);  /* new entry */
    put_ok(f->g, "n", "t", 0, 13, "x", 2);   /* new group */
    put_ok(f->g, "n", "t", 0, 14, "y", 2);   /* replaces a staged new entry */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = size + 20; /* the write gets torn at 20 bytes */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    struct sl_err err = {{0}};
    int rc = coll_goff_flush(f->g, true, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(rc, -EFBIG);
    if (!strstr(err.msg, f->path))
        fail_msg("error should name %s: %s", f->path, err.msg);
    expect(f->g, "g", "t", 0, 1, "old");
    expect(f->g, "g", "t", 1, 2, NULL);
    expect_none(f->g, "g", "t", 5);
    expect_none(f->g, "n", "t", 0);
    assert_int_equal(stats(f->g).entries, 2);
    assert_int_equal(stats(f->g).groups, 1);
    assert_int_equal(stats(f->g).staged_bytes, 0);
    assert_int_equal(file_size(f->path), size);

    /* A removal whose write fails leaves the table alone. */
    lim.rlim_cur = size; /* no room at all */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = coll_goff_delete_group(f->g, "g", &err);
    int rc2 = coll_goff_delete_topic(f->g, "t", &err);
    size_t removed = 7;
    int rc3 = coll_goff_expire(f->g, NULL, 100, &removed, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(rc2, -EFBIG);
    assert_int_equal(rc3, -EFBIG);
    assert_int_equal(removed, 0);
    assert_int_equal(stats(f->g).entries, 2);
    assert_int_equal(file_size(f->path), size);

    put_ok(f->g, "g", "t", 0, 20, "again", 3);
    flush_ok(f->g, true);
    reopen(f, 0);
    expect(f->g, "g", "t", 0, 20, "again");
    expect(f->g, "g", "t", 1, 2, NULL);
    expect_none(f->g, "n", "t", 0);
    assert_int_equal(stats(f->g).truncated_bytes, 0);
}

static void test_unusable_dir(void **state)
{
    struct fx *f = *state;
    struct sl_err err = {{0}};
    struct coll_goff *g = NULL;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no/such/dir", f->dir);
    assert_int_equal(coll_goff_open(missing, NULL, &g, &err), -ENOENT);
    assert_null(g);
    if (!strstr(err.msg, missing))
        fail_msg("error should name %s: %s", missing, err.msg);
    char file[160];
    snprintf(file, sizeof(file), "%s/plain", f->dir);
    write_all(file, "x", 1);
    assert_int_equal(coll_goff_open(file, NULL, &g, &err), -ENOTDIR);
    assert_non_null(strstr(err.msg, file));
    /* The log's name taken by a directory. */
    assert_int_equal(mkdir(f->path, 0755), 0);
    int rc = coll_goff_open(f->dir, NULL, &g, &err);
    assert_true(rc == -EISDIR);
    assert_non_null(strstr(err.msg, f->path));
    assert_int_equal(rmdir(f->path), 0);
    /* A directory the process may not write to (meaningful only without root's override). */
    if (geteuid() != 0) {
        char ro[160];
        snprintf(ro, sizeof(ro), "%s/ro", f->dir);
        assert_int_equal(mkdir(ro, 0555), 0);
        assert_int_equal(coll_goff_open(ro, NULL, &g, &err), -EACCES);
        assert_non_null(strstr(err.msg, ro));
        chmod(ro, 0755);
    }
}

/* A real SIGKILL while a child commits in a loop: every commit the child saw flushed is there
 * after the reopen, and the file opens whatever the moment of the kill. */
static void test_sigkill(void **state)
{
    struct fx *f = *state;
    for (int round = 0; round < 3; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            struct coll_goff_opts o = {.compact_min_bytes = 2048}; /* compactions race too */
            struct coll_goff *g = NULL;
            if (coll_goff_open(f->dir, &o, &g, NULL))
                _exit(1);
            for (int32_t i = 0;; i++) {
                char meta[32];
                snprintf(meta, sizeof(meta), "m%d", (int)i);
                if (coll_goff_put(g, "g", "t", i % 50, 100000 * round + i, -1, meta, i, NULL) ||
                    coll_goff_flush(g, i % 3 == 0, NULL))
                    _exit(1);
                if (write(fds[1], &i, sizeof(i)) != sizeof(i))
                    _exit(1);
            }
        }
        close(fds[1]);
        int32_t last = -1, got;
        while (last < 300 + 97 * round && read(fds[0], &got, sizeof(got)) == sizeof(got))
            last = got;
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        close(fds[0]);
        assert_true(last >= 300);
        f->g = open_ok(f, 2048);
        /* Each partition holds at least the newest commit the child saw flushed to it. */
        for (int32_t p = 0; p < 50; p++) {
            int32_t want = last - ((last - p) % 50 + 50) % 50;
            struct coll_goff_entry e;
            assert_true(coll_goff_get(f->g, "g", "t", p, &e));
            assert_true(e.offset >= 100000 * round + want);
            char meta[32];
            snprintf(meta, sizeof(meta), "m%d", (int)(e.offset - 100000 * round));
            assert_string_equal(e.metadata, meta);
        }
        coll_goff_close(f->g);
        f->g = NULL;
    }
}

/* ---- allocation-failure sweep -------------------------------------------------------------- */

enum { SWEEP_KEYS = 12 };

struct sweep_model {
    int64_t off[SWEEP_KEYS]; /* -1: nothing */
};

static void sweep_key(int k, char *group, char *topic)
{
    sprintf(group, "g%d", k % 3);
    sprintf(topic, "t%d", k % 2);
}

static void sweep_check(struct coll_goff *g, const struct sweep_model *m)
{
    size_t live = 0;
    for (int k = 0; k < SWEEP_KEYS; k++) {
        char group[16], topic[16];
        sweep_key(k, group, topic);
        struct coll_goff_entry e;
        bool got = coll_goff_get(g, group, topic, k, &e);
        if (m->off[k] < 0) {
            assert_false(got);
            continue;
        }
        live++;
        assert_true(got);
        assert_int_equal(e.offset, m->off[k]);
        if (m->off[k] % 2)
            assert_null(e.metadata);
        else
            assert_string_equal(e.metadata, "meta");
    }
    assert_int_equal(stats(g).entries, live);
}

static int sweep_put(struct coll_goff *g, struct sweep_model *m, int k, int64_t off)
{
    char group[16], topic[16];
    sweep_key(k, group, topic);
    int rc = coll_goff_put(g, group, topic, k, off, -1, off % 2 ? NULL : "meta", off, NULL);
    if (rc == 0)
        m->off[k] = off;
    return rc;
}

/*
 * One pass: open the seeded file, stage and flush commits, delete a topic, expire a group,
 * compact, close. Every step either succeeds or fails with -ENOMEM and changes nothing; the
 * model follows what succeeded. Returns the first error (0 when none).
 */
static int sweep_once(const char *dir, struct sweep_model *m)
{
    struct coll_goff_opts o = {.compact_min_bytes = 256};
    struct coll_goff *g = NULL;
    int first = coll_goff_open(dir, &o, &g, NULL);
    if (first)
        return first;
    sweep_check(g, m);
    for (int k = 0; k < SWEEP_KEYS; k++) {
        int rc = sweep_put(g, m, k, 1000 + k);
        if (rc) {
            assert_int_equal(rc, -ENOMEM);
            first = first ? first : rc;
        }
    }
    sweep_check(g, m);
    assert_int_equal(coll_goff_flush(g, false, NULL), 0);
    int rc = coll_goff_delete_topic(g, "t1", NULL);
    if (rc == 0) {
        for (int k = 1; k < SWEEP_KEYS; k += 2)
            m->off[k] = -1;
    } else {
        assert_int_equal(rc, -ENOMEM);
        first = first ? first : rc;
    }
    sweep_check(g, m);
    rc = coll_goff_expire(g, "g0", 1003, NULL, NULL);
    if (rc == 0) {
        for (int k = 0; k < SWEEP_KEYS; k += 3)
            if (m->off[k] >= 0 && m->off[k] < 1003)
                m->off[k] = -1;
    } else {
        assert_int_equal(rc, -ENOMEM);
        first = first ? first : rc;
    }
    sweep_check(g, m);
    rc = coll_goff_compact(g, NULL);
    if (rc) {
        assert_int_equal(rc, -ENOMEM);
        first = first ? first : rc;
    }
    sweep_check(g, m);
    coll_goff_close(g);
    return first;
}

static void test_alloc_failures(void **state)
{
    struct fx *f = *state;
    /* The seed: a file with some commits, overwrites and a removal to replay. */
    struct sweep_model seed_model;
    f->g = open_ok(f, 0);
    for (int k = 0; k < SWEEP_KEYS; k++)
        seed_model.off[k] = -1;
    for (int k = 0; k < SWEEP_KEYS; k++)
        assert_int_equal(sweep_put(f->g, &seed_model, k, k), 0);
    assert_int_equal(sweep_put(f->g, &seed_model, 4, 44), 0);
    flush_ok(f->g, true);
    struct sl_err err;
    assert_int_equal(coll_goff_delete_group(f->g, "g2", &err), 0);
    for (int k = 2; k < SWEEP_KEYS; k += 3)
        seed_model.off[k] = -1;
    coll_goff_close(f->g);
    f->g = NULL;
    size_t seed_len;
    uint8_t *seed = read_all(f->path, &seed_len);

    sl_log_threshold = SL_LOG_CRIT; /* failed compactions warn on every pass */
    for (int sticky = 0; sticky <= 1; sticky++) {
        long n = 0;
        for (;; n++) {
            write_all(f->path, seed, seed_len);
            struct sweep_model m = seed_model;
            sl_mem_fail_after(n, sticky);
            int rc = sweep_once(f->dir, &m);
            long failures = sl_mem_failures();
            sl_mem_fail_after(-1, 0);
            if (failures == 0) {
                assert_int_equal(rc, 0);
                break;
            }
            if (rc != 0)
                assert_int_equal(rc, -ENOMEM);
            /* Whatever failed, what the model says succeeded is on disk, and only that (an
             * open that failed changed nothing: the model is the seed's). */
            struct coll_goff *g = open_ok(f, 0);
            sweep_check(g, &m);
            coll_goff_close(g);
        }
        assert_true(n > 50); /* the sweep really went through the allocations */
    }
    sl_log_threshold = SL_LOG_ERR;
    free(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_group_topic_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
