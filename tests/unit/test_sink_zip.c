/* Unit tests for collector/cli/sink_zip.c, the files sink's compressor threads: members are
 * written in each file's chunk order whatever worker compressed them, values are checked (kept
 * ones made one line, refused ones handed back in order with their key and reason, the first
 * kept offset reported), a chunk with nothing kept writes nothing, a write error is sticky
 * and reported, and a sealed file is fsynced. Files are read back with common/gzip.c, which takes
 * every member. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collector/cli/sink_zip.h"
#include "common/gzip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A temporary file, already unlinked: only its descriptor is left. */
static int temp_fd(void)
{
    char path[] = "/tmp/sl-test-sink-zip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* The decompressed contents of fd, NUL-terminated, in out. */
static void read_back(int fd, struct sl_buf *out)
{
    off_t size = lseek(fd, 0, SEEK_END);
    uint8_t *raw = malloc(size ? (size_t)size : 1);
    assert_non_null(raw);
    assert_int_equal(pread(fd, raw, (size_t)size, 0), size);
    sl_buf_reset(out);
    if (size > 0) {
        struct sl_err err = {{0}};
        assert_int_equal(sl_gzip_decompress(out, raw, (size_t)size, 1 << 26, &err), 0);
    }
    sl_buf_append(out, "", 1);
    free(raw);
}

/* Lines "<file>:<n>\n" in 300 chunks over 3 files and 3 workers: each file reads back in order. */
static void test_order_across_workers(void **state)
{
    (void)state;
    struct sink_zip *z = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(sink_zip_new(1, 3, 4, &z, &err), 0);
    struct sink_zfile f[3];
    for (int i = 0; i < 3; i++)
        sink_zfile_init(&f[i], temp_fd());
    struct sink_zchunk c;
    sink_zchunk_init(&c);
    int next[3] = {0, 0, 0};
    for (int k = 0; k < 300; k++) {
        int i = (k * 7) % 3;
        int lines = 1 + (k * 13) % 200; /* chunks of very different sizes finish out of order */
        for (int l = 0; l < lines; l++)
            sl_buf_printf(&c.lines, "%d:%d\n", i, next[i]++);
        assert_int_equal(sink_zip_put(z, &f[i], &c), 0);
        assert_int_equal(c.lines.len, 0);
    }
    struct sl_buf got, want;
    sl_buf_init(&got);
    sl_buf_init(&want);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sink_zip_wait(z, &f[i]), 0);
        assert_true(sink_zip_out_bytes(z, &f[i]) > 0);
        read_back(f[i].fd, &got);
        sl_buf_reset(&want);
        for (int n = 0; n < next[i]; n++)
            sl_buf_printf(&want, "%d:%d\n", i, n);
        sl_buf_append(&want, "", 1);
        assert_string_equal((const char *)got.data, (const char *)want.data);
        assert_int_equal(f[i].first_ok, -1); /* chunks without records are not checked */
        close(f[i].fd);
    }
    sl_buf_fini(&got);
    sl_buf_fini(&want);
    sink_zchunk_fini(&c);
    sink_zip_free(z);
}

static void add_rec(struct sink_zchunk *c, int64_t offset, const char *value, const char *key)
{
    struct sink_zrec r = {.offset = offset,
                          .timestamp = 1000 + offset,
                          .vlen = (uint32_t)strlen(value),
                          .klen = key ? (int32_t)strlen(key) : -1};
    sl_buf_append(&c->lines, value, strlen(value));
    sl_buf_append(&c->lines, "\n", 1);
    sl_buf_append(&c->recs, &r, sizeof(r));
    if (key)
        sl_buf_append(&c->keys, key, strlen(key));
}

/* Values: objects kept (newlines between tokens made spaces), the rest refused in order. */
static void test_checked_values(void **state)
{
    (void)state;
    struct sink_zip *z = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(sink_zip_new(1, 2, 2, &z, &err), 0);
    struct sink_zfile f;
    sink_zfile_init(&f, temp_fd());
    struct sink_zchunk c;
    sink_zchunk_init(&c);
    /* A first chunk with nothing to keep: no member, no first offset. */
    add_rec(&c, 10, "plain text", "k10");
    add_rec(&c, 11, "[1,2]", NULL);
    assert_int_equal(sink_zip_put(z, &f, &c), 0);
    add_rec(&c, 12, "{\"a\":1,\n \"b\":\"x\"}", "k12");
    add_rec(&c, 13, "{\"a\":", "");
    add_rec(&c, 14, "{}", NULL);
    assert_int_equal(sink_zip_put(z, &f, &c), 0);
    assert_int_equal(sink_zip_wait(z, &f), 0);
    assert_int_equal(f.first_ok, 12);

    struct sl_buf got;
    sl_buf_init(&got);
    read_back(f.fd, &got);
    assert_string_equal((const char *)got.data, "{\"a\":1,  \"b\":\"x\"}\n{}\n");

    static const struct {
        int64_t offset;
        const char *key, *value, *why;
    } want[] = {
        {10, "k10", "plain text", "not JSON"},
        {11, NULL, "[1,2]", "not an object"},
        {13, "", "{\"a\":", "not JSON"},
    };
    const struct sink_zreject *x = f.rejects;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++, x = x->next) {
        assert_non_null(x);
        assert_int_equal(x->offset, want[i].offset);
        assert_int_equal(x->timestamp, 1000 + want[i].offset);
        if (want[i].key) {
            assert_int_equal(x->klen, (int32_t)strlen(want[i].key));
            assert_memory_equal(x->data, want[i].key, strlen(want[i].key));
        } else {
            assert_int_equal(x->klen, -1);
        }
        size_t klen = x->klen > 0 ? (size_t)x->klen : 0;
        assert_int_equal(x->vlen, strlen(want[i].value));
        assert_memory_equal(x->data + klen, want[i].value, x->vlen);
        if (!strstr(x->why, want[i].why))
            fail_msg("reject %lld: '%s' lacks '%s'", (long long)x->offset, x->why, want[i].why);
    }
    assert_null(x);
    sink_zfile_drop_rejects(&f);
    assert_null(f.rejects);
    close(f.fd);
    sl_buf_fini(&got);
    sink_zchunk_fini(&c);
    sink_zip_free(z);
}

/* A write that fails makes the file's error sticky: later puts and the wait report it. */
static void test_write_error(void **state)
{
    (void)state;
    struct sink_zip *z = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(sink_zip_new(1, 2, 2, &z, &err), 0);
    struct sink_zfile f;
    int fd = open("/dev/null", O_RDONLY); /* writes fail with EBADF */
    assert_true(fd >= 0);
    sink_zfile_init(&f, fd);
    struct sink_zchunk c;
    sink_zchunk_init(&c);
    sl_buf_printf(&c.lines, "line\n");
    assert_int_equal(sink_zip_put(z, &f, &c), 0);
    assert_int_equal(sink_zip_wait(z, &f), -EBADF);
    sl_buf_printf(&c.lines, "more\n");
    assert_int_equal(sink_zip_put(z, &f, &c), -EBADF);
    assert_int_equal(sink_zip_out_bytes(z, &f), 0);
    close(fd);
    sink_zchunk_fini(&c);
    sink_zip_free(z);
}

/* A sealed file is fsynced after its last chunk, also an empty one; a failed fsync is the
 * file's error, told apart from a write's. */
static void test_seal(void **state)
{
    (void)state;
    struct sink_zip *z = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(sink_zip_new(1, 2, 4, &z, &err), 0);
    struct sink_zchunk c;
    sink_zchunk_init(&c);
    struct sl_buf got;
    sl_buf_init(&got);

    struct sink_zfile f;
    sink_zfile_init(&f, temp_fd());
    sl_buf_printf(&c.lines, "first\n");
    assert_int_equal(sink_zip_put(z, &f, &c), 0);
    sl_buf_printf(&c.lines, "last\n");
    assert_int_equal(sink_zip_seal(z, &f, &c), 0);
    assert_int_equal(sink_zip_wait(z, &f), 0);
    assert_true(f.synced);
    read_back(f.fd, &got);
    assert_string_equal((const char *)got.data, "first\nlast\n");
    close(f.fd);

    sink_zfile_init(&f, temp_fd());
    sl_buf_printf(&c.lines, "only\n");
    assert_int_equal(sink_zip_put(z, &f, &c), 0);
    assert_int_equal(sink_zip_wait(z, &f), 0);
    assert_false(f.synced);
    assert_int_equal(sink_zip_seal(z, &f, &c), 0); /* nothing left to write */
    assert_int_equal(sink_zip_wait(z, &f), 0);
    assert_true(f.synced);
    read_back(f.fd, &got);
    assert_string_equal((const char *)got.data, "only\n");
    close(f.fd);

    int pipefd[2]; /* a small write goes through, fsync fails with EINVAL */
    assert_int_equal(pipe(pipefd), 0);
    sink_zfile_init(&f, pipefd[1]);
    sl_buf_printf(&c.lines, "line\n");
    assert_int_equal(sink_zip_seal(z, &f, &c), 0);
    assert_int_equal(sink_zip_wait(z, &f), -EINVAL);
    assert_true(f.sync_failed);
    assert_false(f.synced);
    uint8_t magic[2];
    assert_int_equal(read(pipefd[0], magic, 2), 2); /* the member went out before the fsync */
    assert_int_equal(magic[0], 0x1f);
    assert_int_equal(magic[1], 0x8b);
    close(pipefd[0]);
    close(pipefd[1]);

    sl_buf_fini(&got);
    sink_zchunk_fini(&c);
    sink_zip_free(z);
}

/* Freeing with chunks still queued waits for them. */
static void test_free_waits(void **state)
{
    (void)state;
    struct sink_zip *z = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(sink_zip_new(9, 1, 8, &z, &err), 0);
    struct sink_zfile f;
    sink_zfile_init(&f, temp_fd());
    struct sink_zchunk c;
    sink_zchunk_init(&c);
    for (int k = 0; k < 8; k++) {
        for (int l = 0; l < 2000; l++)
            sl_buf_printf(&c.lines, "%d %d\n", k, l);
        assert_int_equal(sink_zip_put(z, &f, &c), 0);
    }
    sink_zip_free(z);
    assert_int_equal(f.pending, 0);
    struct sl_buf got;
    sl_buf_init(&got);
    read_back(f.fd, &got);
    /* 8 x 2000 lines "k l\n"; l has 4 digits but for the first 10, 90 and 900 */
    assert_int_equal(got.len, 1 + 8 * (2000 * 7 - (10 * 3 + 90 * 2 + 900 * 1)));
    close(f.fd);
    sl_buf_fini(&got);
    sink_zchunk_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_across_workers), cmocka_unit_test(test_checked_values),
        cmocka_unit_test(test_write_error),          cmocka_unit_test(test_seal),
        cmocka_unit_test(test_free_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
