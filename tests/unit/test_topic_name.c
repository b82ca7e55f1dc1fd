/* Unit tests for collector/topic_name: every rule at its boundary. */
#include "collector/topic_name.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static int check(const char *s)
{
    return coll_topic_name_check(s, strlen(s), NULL);
}

static void test_lengths(void **state)
{
    char name[300];
    memset(name, 'a', sizeof(name));
    assert_int_equal(coll_topic_name_check(name, 0, NULL), -EINVAL);
    assert_int_equal(coll_topic_name_check(NULL, 0, NULL), -EINVAL);
    assert_int_equal(coll_topic_name_check(name, 1, NULL), 0);
    assert_int_equal(coll_topic_name_check(name, 249, NULL), 0);
    struct sl_err err;
    assert_int_equal(coll_topic_name_check(name, 250, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "249"));
}

static void test_dots(void **state)
{
    assert_int_equal(check("."), -EINVAL);
    assert_int_equal(check(".."), -EINVAL);
    assert_int_equal(check("..."), 0);
    assert_int_equal(check(".a"), 0);
    assert_int_equal(check("a."), 0);
}

static void test_chars(void **state)
{
    assert_int_equal(check("abcxyzABCXYZ0189._-"), 0);
    for (int c = 1; c < 256; c++) {
        char s[4] = {'a', (char)c, 'b', 0};
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        assert_int_equal(check(s), ok ? 0 : -EINVAL);
    }
    /* A NUL inside the given length is refused, not a terminator. */
    assert_int_equal(coll_topic_name_check("a\0b", 3, NULL), -EINVAL);
    struct sl_err err;
    assert_int_equal(coll_topic_name_check("x/../y", 6, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "0x2f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_dots),
        cmocka_unit_test(test_chars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
