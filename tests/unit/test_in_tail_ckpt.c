/* Unit tests for plugins/in_tail_ckpt.c: round trips, damaged files, atomic replacement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "plugins/in_tail_ckpt.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char file[128];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sl-ckpt-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/tail-x.pos", dir);
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

static void write_text(const char *text)
{
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_round_trip(void **state)
{
    struct in_tail_ckpt_entry e[3] = {
        {.dev = 65024,
         .ino = 1234,
         .fp_len = 256,
         .fp_crc = 0xdeadbeef,
         .offset = 99,
         .path = (char[]){"/var/log/a.log"}},
        {.dev = 1,
         .ino = UINT64_MAX,
         .fp_len = 0,
         .fp_crc = 0,
         .offset = UINT64_MAX,
         .path = (char[]){"/var/log/with space.log"}},
        {.dev = 2, .ino = 3, .offset = 4, .path = (char[]){"/bad\nname"}}, /* not written */
    };
    struct sl_err err = {{0}};
    assert_int_equal(in_tail_ckpt_save(file, e, 3, &err), 0);
    struct in_tail_ckpt c = {0};
    size_t skipped = 99;
    assert_int_equal(in_tail_ckpt_load(file, &c, &skipped, &err), 0);
    assert_int_equal(skipped, 0);
    assert_int_equal(c.len, 2);
    const struct in_tail_ckpt_entry *a = in_tail_ckpt_find(&c, 65024, 1234);
    assert_non_null(a);
    assert_int_equal(a->fp_len, 256);
    assert_int_equal(a->fp_crc, 0xdeadbeef);
    assert_int_equal(a->offset, 99);
    assert_string_equal(a->path, "/var/log/a.log");
    const struct in_tail_ckpt_entry *b = in_tail_ckpt_find(&c, 1, UINT64_MAX);
    assert_non_null(b);
    assert_int_equal(b->offset, UINT64_MAX);
    assert_string_equal(b->path, "/var/log/with space.log");
    assert_null(in_tail_ckpt_find(&c, 2, 3));
    in_tail_ckpt_fini(&c);
    /* No temporary file is left behind; saving again replaces the table. */
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(in_tail_ckpt_save(file, e, 1, &err), 0);
    assert_int_equal(in_tail_ckpt_load(file, &c, NULL, &err), 0);
    assert_int_equal(c.len, 1);
    in_tail_ckpt_fini(&c);
}

static void test_missing_is_empty(void **state)
{
    struct in_tail_ckpt c = {0};
    struct sl_err err = {{0}};
    assert_int_equal(in_tail_ckpt_load(file, &c, NULL, &err), 0);
    assert_int_equal(c.len, 0);
    in_tail_ckpt_fini(&c);
}

static void test_damaged_lines_skipped(void **state)
{
    write_text("sluice-tail-checkpoint 1\n"
               "1 2 10 0000000a 5 /ok\n"
               "garbage\n"
               "1 2 999 0000000a 5 /fp too long\n"
               "-1 2 10 0000000a 5 /negative\n"
               "3 4 10 0000000a 5\n" /* no path */
               "5 6 0 00000000 7 /also ok\n"
               "7 8 0 00000000 9 /cut mid-wri"); /* no newline: a torn write */
    struct in_tail_ckpt c = {0};
    size_t skipped = 0;
    struct sl_err err = {{0}};
    assert_int_equal(in_tail_ckpt_load(file, &c, &skipped, &err), 0);
    assert_int_equal(c.len, 2);
    assert_int_equal(skipped, 5);
    assert_non_null(in_tail_ckpt_find(&c, 1, 2));
    assert_non_null(in_tail_ckpt_find(&c, 5, 6));
    assert_null(in_tail_ckpt_find(&c, 7, 8));
    in_tail_ckpt_fini(&c);
}

static void test_bad_header(void **state)
{
    write_text("something else\n1 2 0 00000000 5 /x\n");
    struct in_tail_ckpt c = {0};
    struct sl_err err = {{0}};
    assert_int_equal(in_tail_ckpt_load(file, &c, NULL, &err), SL_ECORRUPT);
    assert_non_null(strstr(err.msg, file));
    assert_int_equal(c.len, 0);
    write_text("");
    assert_int_equal(in_tail_ckpt_load(file, &c, NULL, &err), SL_ECORRUPT);
    in_tail_ckpt_fini(&c);
}

static void test_unwritable_dir(void **state)
{
    struct in_tail_ckpt_entry e = {.dev = 1, .ino = 2, .offset = 3, .path = (char[]){"/x"}};
    struct sl_err err = {{0}};
    int rc = in_tail_ckpt_save("/nonexistent-dir-sl/x.pos", &e, 1, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "nonexistent-dir-sl"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_lines_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
