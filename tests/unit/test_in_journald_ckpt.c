/* Unit tests for plugins/in_journald_ckpt.c: cursor parsing, the checkpoint file (round trip,
 * missing, damaged, garbage, atomic replacement) and the position-to-cursor queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/mem.h"
#include "plugins/in_journald_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CUR_A                                                                                      \
    "s=c83a48ea6a69480695e6dcbba79cc998;i=1f;b=0123456789abcdef0123456789abcdef;m=3e8;"            \
    "t=60a24181e4000;x=8b52fc270ed91e88"

static char dir[64];
static char file[128];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sl-jckpt-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/journald-x.cursor", dir);
    return 0;
}

static int teardown(void **state)
{
    char tmp[160];
    unlink(file);
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    unlink(tmp);
    rmdir(dir);
    return 0;
}

static void write_bytes(const char *p, size_t n)
{
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *text)
{
    write_bytes(text, strlen(text));
}

/* ---- cursors ----------------------------------------------------------------------------- */

static void test_cursor_parse_full(void **state)
{
    struct in_journald_cursor c;
    assert_int_equal(in_journald_cursor_parse(CUR_A, &c), 0);
    assert_true(c.has_seqnum_id && c.has_seqnum && c.has_realtime);
    assert_string_equal(c.seqnum_id, "c83a48ea6a69480695e6dcbba79cc998");
    assert_int_equal(c.seqnum, 0x1f);
    assert_int_equal(c.realtime_us, 0x60a24181e4000ULL);
}

static void test_cursor_parse_partial_and_unknown(void **state)
{
    struct in_journald_cursor c;
    /* A time alone places a cursor; upper-case hex is read and the id kept in lower case. */
    assert_int_equal(in_journald_cursor_parse("t=5", &c), 0);
    assert_false(c.has_seqnum_id);
    assert_int_equal(c.realtime_us, 5);
    assert_int_equal(in_journald_cursor_parse("b=0123456789ABCDEF0123456789abcdef;m=1", &c), 0);
    assert_int_equal(
        in_journald_cursor_parse("s=C83A48EA6A69480695E6DCBBA79CC998;i=2;q=future", &c), 0);
    assert_string_equal(c.seqnum_id, "c83a48ea6a69480695e6dcbba79cc998");
    assert_int_equal(c.seqnum, 2);
}

static void test_cursor_parse_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "s=zz;i=5",                           /* id not 32 hex digits */
        "s=c83a48ea6a69480695e6dcbba79cc998", /* a sequence id without a number */
        "i=5",                                /* a number without its id */
        "t=",                                 /* empty value */
        "t=12345678901234567",                /* 17 hex digits: over 64 bits */
        "t=5;;i=1",                           /* empty part */
        "t=5 ",                               /* space */
        "t=5\n",                              /* control byte */
        "T=5",                                /* keys are lower-case letters */
        "m=1",                                /* monotonic time without its boot */
        "t=xyz",
    };
    struct in_journald_cursor c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (in_journald_cursor_parse(bad[i], &c) != SL_EPARSE)
            fail_msg("accepted '%s'", bad[i]);
    }
    char longc[IN_JOURNALD_CURSOR_MAX + 8];
    memset(longc, 'a', sizeof(longc) - 1);
    longc[0] = 't';
    longc[1] = '=';
    longc[sizeof(longc) - 1] = '\0';
    assert_int_equal(in_journald_cursor_parse(longc, &c), SL_EPARSE);
}

/* ---- the file ---------------------------------------------------------------------------- */

static void test_missing_file_is_no_checkpoint(void **state)
{
    char *c = (char *)1;
    struct sl_err err = {{0}};
    assert_int_equal(in_journald_ckpt_load(file, &c, &err), 0);
    assert_null(c);
}

static void test_round_trip_and_replace(void **state)
{
    struct sl_err err = {{0}};
    assert_int_equal(in_journald_ckpt_save(file, CUR_A, &err), 0);
    char *c = NULL;
    assert_int_equal(in_journald_ckpt_load(file, &c, &err), 0);
    assert_string_equal(c, CUR_A);
    sl_free(c);
    assert_int_equal(in_journald_ckpt_save(file, "t=60a24181e4001", &err), 0);
    assert_int_equal(in_journald_ckpt_load(file, &c, &err), 0);
    assert_string_equal(c, "t=60a24181e4001");
    sl_free(c);
    /* The temporary is renamed away, and the file is what the format says. */
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    assert_int_not_equal(access(tmp, F_OK), 0);
    char buf[200] = {0};
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    assert_int_equal(n, strlen("sluice-journald-checkpoint 1\nt=60a24181e4001\n"));
    assert_string_equal(buf, "sluice-journald-checkpoint 1\nt=60a24181e4001\n");
}

static void test_save_refuses_unwritable_cursor(void **state)
{
    struct sl_err err = {{0}};
    assert_int_equal(in_journald_ckpt_save(file, "", &err), SL_EPARSE);
    assert_int_equal(in_journald_ckpt_save(file, "t=1\nsluice", &err), SL_EPARSE);
    assert_int_equal(in_journald_ckpt_save(file, "t=1 2", &err), SL_EPARSE);
    assert_int_not_equal(access(file, F_OK), 0);
    char missing[200];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/x.cursor", dir);
    assert_true(in_journald_ckpt_save(missing, CUR_A, &err) < 0);
    assert_non_null(strstr(err.msg, "no/such/dir"));
}

static void expect_corrupt(const char *what, const char *needle)
{
    char *c = (char *)1;
    struct sl_err err = {{0}};
    int rc = in_journald_ckpt_load(file, &c, &err);
    if (rc != SL_ECORRUPT)
        fail_msg("%s: rc %d", what, rc);
    assert_null(c);
    assert_non_null(strstr(err.msg, file));
    if (needle && !strstr(err.msg, needle))
        fail_msg("%s: '%s' lacks '%s'", what, err.msg, needle);
}

static void test_damaged_files(void **state)
{
    write_text("");
    expect_corrupt("empty", "not a checkpoint file");
    write_text("sluice-tail-checkpoint 1\n1 2 3 00000000 4 /x\n");
    expect_corrupt("another format", "sluice-tail-checkpoint");
    write_text("sluice-journald-checkpoint 1\ngarbage\n");
    expect_corrupt("garbage cursor", "'garbage' is not a journal cursor");
    write_text("sluice-journald-checkpoint 1\n" CUR_A);
    expect_corrupt("cut write (no newline)", "is not a journal cursor");
    write_text("sluice-journald-checkpoint 1\n" CUR_A "\nmore\n");
    expect_corrupt("a second line", NULL);
    write_text("sluice-journald-checkpoint 1\n\n");
    expect_corrupt("empty cursor", NULL);
    write_bytes("sluice-journald-checkpoint 1\nt=5\0\n", 34);
    expect_corrupt("a NUL byte", NULL);
    char big[5000];
    memset(big, 'x', sizeof(big));
    write_bytes(big, sizeof(big));
    expect_corrupt("oversized", "over");
    /* Binary junk is reported as printable text. */
    write_bytes("\x01\x02\xff", 3);
    expect_corrupt("binary", "'\x3f\x3f\x3f'");
}

/* ---- the queue ---------------------------------------------------------------------------- */

static char *xdup(const char *s)
{
    char *c = sl_strdup(s);
    assert_non_null(c);
    return c;
}

static void test_queue_spans(void **state)
{
    struct in_journald_curq q;
    in_journald_curq_init(&q);
    assert_null(in_journald_curq_take(&q, 100));
    assert_int_equal(in_journald_curq_push(&q, 1, xdup("c1")), 0);
    assert_int_equal(in_journald_curq_push(&q, 2, xdup("c2")), 0);
    assert_int_equal(in_journald_curq_set_last(&q, 3, xdup("c3")), 0);
    assert_int_equal(in_journald_curq_push(&q, 4, xdup("c4")), 0);
    assert_int_equal(q.len, 3);
    /* Nothing acknowledged yet. */
    assert_null(in_journald_curq_take(&q, 0));
    char *c = in_journald_curq_take(&q, 3);
    assert_string_equal(c, "c3");
    sl_free(c);
    assert_int_equal(q.len, 1);
    /* A position between items (cannot happen with spans) gives the older cursor: duplicates
     * after a restart, never a skipped entry. */
    assert_int_equal(in_journald_curq_push(&q, 9, xdup("c9")), 0);
    c = in_journald_curq_take(&q, 7);
    assert_string_equal(c, "c4");
    sl_free(c);
    assert_null(in_journald_curq_take(&q, 8));
    c = in_journald_curq_take(&q, 9);
    assert_string_equal(c, "c9");
    sl_free(c);
    assert_int_equal(q.len, 0);
    /* set_last on an empty queue pushes. */
    assert_int_equal(in_journald_curq_set_last(&q, 10, xdup("c10")), 0);
    assert_int_equal(q.len, 1);
    in_journald_curq_fini(&q);
    assert_int_equal(q.len, 0);
    in_journald_curq_fini(NULL);
}

static void test_queue_wraps_and_grows(void **state)
{
    struct in_journald_curq q;
    in_journald_curq_init(&q);
    uint64_t pos = 0, taken = 0;
    char name[32];
    /* Push and take in uneven steps so the ring wraps, then grows while wrapped. */
    for (int round = 0; round < 50; round++) {
        int pushes = 7 + round % 13;
        for (int i = 0; i < pushes; i++) {
            snprintf(name, sizeof(name), "c%llu", (unsigned long long)++pos);
            assert_int_equal(in_journald_curq_push(&q, pos, xdup(name)), 0);
        }
        uint64_t upto = taken + (uint64_t)(pushes - round % 5);
        char *c = in_journald_curq_take(&q, upto);
        snprintf(name, sizeof(name), "c%llu", (unsigned long long)upto);
        assert_string_equal(c, name);
        sl_free(c);
        taken = upto;
        assert_int_equal(q.len, pos - taken);
    }
    in_journald_curq_fini(&q);
}

static void test_queue_push_fails_cleanly(void **state)
{
    struct in_journald_curq q;
    in_journald_curq_init(&q);
    char *c = xdup("c1");
    sl_mem_fail_after(0, 0);
    assert_int_equal(in_journald_curq_push(&q, 1, c), -ENOMEM); /* c freed: ASan would say */
    assert_int_equal(q.len, 0);
    assert_int_equal(in_journald_curq_push(&q, 1, xdup("c1")), 0);
    in_journald_curq_fini(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_parse_full),
        cmocka_unit_test(test_cursor_parse_partial_and_unknown),
        cmocka_unit_test(test_cursor_parse_garbage),
        cmocka_unit_test_setup_teardown(test_missing_file_is_no_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_unwritable_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_files, setup, teardown),
        cmocka_unit_test(test_queue_spans),
        cmocka_unit_test(test_queue_wraps_and_grows),
        cmocka_unit_test(test_queue_push_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
