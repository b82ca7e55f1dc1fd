/* Unit tests for plugins/in_journald_rec.c: the JSON value of an entry (member order, escaping,
 * binary fields in base64, cuts at max_bytes, repeated and unselected fields), base64 and
 * UTF-8 helpers, the exact time, and the raw format's parts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/conf.h"
#include "common/mem.h"
#include "plugins/in_journald_rec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define FIXED ",\"host\":\"h\",\"source\":\"journald\""

struct fx {
    struct in_journald_select sel;
    struct in_journald_rec rec;
    struct sl_json_clock clock;
    struct sl_buf out;
};

/* A configuration list holding copies of items. */
static struct sl_conf_list list_of(const char *const *items, size_t n)
{
    struct sl_conf_list l = {sl_calloc(n ? n : 1, sizeof(char *)), n};
    assert_non_null(l.items);
    for (size_t i = 0; i < n; i++)
        assert_non_null(l.items[i] = sl_strdup(items[i]));
    return l;
}

static void list_free(struct sl_conf_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        sl_free(l->items[i]);
    sl_free(l->items);
}

static void fx_init(struct fx *f, const char *const *fields, size_t n, size_t max, bool raw)
{
    struct sl_conf_list l = list_of(fields, n);
    memset(f, 0, sizeof(*f));
    assert_int_equal(in_journald_select_init(&f->sel, &l), 0);
    list_free(&l);
    assert_int_equal(in_journald_rec_init(&f->rec, &f->sel, max, raw), 0);
    sl_json_clock_init(&f->clock);
    sl_buf_init(&f->out);
}

static void fx_fini(struct fx *f)
{
    in_journald_rec_fini(&f->rec);
    in_journald_select_fini(&f->sel);
    sl_buf_fini(&f->out);
}

static void add(struct fx *f, const char *item)
{
    assert_int_equal(in_journald_rec_add(&f->rec, item, strlen(item)), 0);
}

static void addn(struct fx *f, const void *item, size_t n)
{
    assert_int_equal(in_journald_rec_add(&f->rec, item, n), 0);
}

/* The value built, as a NUL-terminated string (valid until the next call). */
static const char *json(struct fx *f, uint64_t usec)
{
    assert_int_equal(in_journald_rec_json(&f->rec, &f->clock, usec,
                                          (struct sl_bytes){(const uint8_t *)FIXED, strlen(FIXED)},
                                          &f->out),
                     0);
    sl_buf_append(&f->out, "", 1);
    f->out.len--;
    return (const char *)f->out.data;
}

static void test_core_fields_in_order(void **state)
{
    static const char *const sel[] = {"_COMM", "CODE_LINE"};
    struct fx f;
    fx_init(&f, sel, 2, 1024, false);
    in_journald_rec_reset(&f.rec);
    /* The journal's own order does not matter; unselected fields are left out. */
    add(&f, "CODE_LINE=42");
    add(&f, "MESSAGE=hello world");
    add(&f, "_HOSTNAME=not-selected");
    add(&f, "_PID=1234");
    add(&f, "SYSLOG_IDENTIFIER=nginx");
    add(&f, "PRIORITY=3");
    add(&f, "_SYSTEMD_UNIT=nginx.service");
    add(&f, "_COMM=nginx");
    assert_string_equal(json(&f, 1700000000123456ULL),
                        "{\"time\":\"2023-11-14T22:13:20.123456Z\"" FIXED
                        ",\"unit\":\"nginx.service\",\"priority\":3,\"pid\":1234,"
                        "\"syslog_identifier\":\"nginx\",\"message\":\"hello world\","
                        "\"CODE_LINE\":\"42\",\"_COMM\":\"nginx\"}");
    /* The scratch is reused: the next entry starts clean. */
    in_journald_rec_reset(&f.rec);
    add(&f, "MESSAGE=");
    assert_string_equal(json(&f, 0),
                        "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED ",\"message\":\"\"}");
    /* No MESSAGE at all: an empty message, so every record has one. */
    in_journald_rec_reset(&f.rec);
    add(&f, "_COMM=x");
    assert_string_equal(json(&f, 1), "{\"time\":\"1970-01-01T00:00:00.000001Z\"" FIXED
                                     ",\"message\":\"\",\"_COMM\":\"x\"}");
    fx_fini(&f);
}

static void test_escaping_is_lossless_for_text(void **state)
{
    static const char *const sel[] = {"X"};
    struct fx f;
    fx_init(&f, sel, 1, 1024, false);
    in_journald_rec_reset(&f.rec);
    static const char msg[] = "MESSAGE=q\"b\\n\nt\tc\x01z\x7f\0end \xc3\xa9 \xe2\x82\xac";
    addn(&f, msg, sizeof(msg) - 1);
    add(&f, "X=\x1b[31mred\x1b[0m");
    assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                     ",\"message\":\"q\\\"b\\\\n\\nt\\tc\\u0001z\\u007f\\u0000end "
                                     "\xc3\xa9 \xe2\x82\xac\""
                                     ",\"X\":\"\\u001b[31mred\\u001b[0m\"}");
    fx_fini(&f);
}

static void test_binary_values_base64(void **state)
{
    static const char *const sel[] = {"BLOB", "COREDUMP"};
    struct fx f;
    fx_init(&f, sel, 2, 1024, false);
    in_journald_rec_reset(&f.rec);
    static const char blob[] = "BLOB=\xff\x00\x01";
    static const char msg[] = "MESSAGE=ok \xff\xfe end";
    addn(&f, blob, sizeof(blob) - 1);
    addn(&f, msg, sizeof(msg) - 1);
    add(&f, "COREDUMP=\xed\xa0\x80"); /* a UTF-16 surrogate: not UTF-8 */
    assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                     ",\"message\":\"ok \\ufffd\\ufffd end\""
                                     ",\"message_base64\":\"b2sg//4gZW5k\""
                                     ",\"BLOB_base64\":\"/wAB\",\"COREDUMP_base64\":\"7aCA\"}");
    fx_fini(&f);
}

static void test_cut_at_max_bytes(void **state)
{
    static const char *const sel[] = {"BIG"};
    struct fx f;
    fx_init(&f, sel, 1, 8, false);
    in_journald_rec_reset(&f.rec);
    add(&f, "MESSAGE=1234567\xc3\xa9xyz"); /* the cut would split é: it goes whole */
    add(&f, "BIG=abcdefghij");
    assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                     ",\"message\":\"1234567\",\"BIG\":\"abcdefgh\","
                                     "\"truncated\":true}");
    /* A value of exactly max_bytes is whole. */
    in_journald_rec_reset(&f.rec);
    add(&f, "MESSAGE=12345678");
    assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                     ",\"message\":\"12345678\"}");
    fx_fini(&f);
}

static void test_cut_helper(void **state)
{
    const uint8_t *e = (const uint8_t *)"ab\xe2\x82\xac"; /* ab€ */
    assert_int_equal(in_journald_cut(e, 5, 10), 5);
    assert_int_equal(in_journald_cut(e, 5, 5), 5);
    assert_int_equal(in_journald_cut(e, 5, 4), 2);
    assert_int_equal(in_journald_cut(e, 5, 3), 2);
    assert_int_equal(in_journald_cut(e, 5, 2), 2);
    assert_int_equal(in_journald_cut(e, 5, 1), 1);
    /* Binary (continuation bytes only): cut where asked. */
    const uint8_t *b = (const uint8_t *)"\x80\x80\x80\x80\x80\x80";
    assert_int_equal(in_journald_cut(b, 6, 4), 4);
}

static void test_repeated_and_invalid_fields(void **state)
{
    static const char *const sel[] = {"TAG"};
    struct fx f;
    fx_init(&f, sel, 1, 1024, false);
    in_journald_rec_reset(&f.rec);
    add(&f, "TAG=first");
    add(&f, "TAG=second");
    add(&f, "MESSAGE=one");
    add(&f, "MESSAGE=two");
    add(&f, "PRIORITY=9"); /* not a syslog level: left out */
    add(&f, "_PID=12a");   /* not a number: left out */
    add(&f, "no equals");  /* damage: counted */
    add(&f, "=value");     /* no name */
    add(&f, "lower=case"); /* not a journal field name */
    assert_int_equal(f.rec.fields_bad, 3);
    assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                     ",\"message\":\"one\",\"TAG\":\"first\"}");
    /* The next entry may have the field again. */
    in_journald_rec_reset(&f.rec);
    add(&f, "TAG=again");
    assert_int_equal(f.rec.fields_bad, 0);
    assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                     ",\"message\":\"\",\"TAG\":\"again\"}");
    fx_fini(&f);
}

static void test_all_fields_and_name_cache_overflow(void **state)
{
    static const char *const sel[] = {"*"};
    struct fx f;
    fx_init(&f, sel, 1, 1024, false);
    /* More distinct names than the cache takes: the slow path still writes each once. */
    char item[64];
    for (int round = 0; round < 2; round++) {
        in_journald_rec_reset(&f.rec);
        for (int i = 0; i < 600; i++) {
            snprintf(item, sizeof(item), "F%d=%d", i, i);
            add(&f, item);
            add(&f, item);
        }
        const char *j = json(&f, 0);
        for (int i = 0; i < 600; i += 97) {
            char needle[64];
            snprintf(needle, sizeof(needle), ",\"F%d\":\"%d\"", i, i);
            const char *hit = strstr(j, needle);
            assert_non_null(hit);
            assert_null(strstr(hit + 1, needle));
        }
    }
    assert_true(f.rec.names_used <= IN_JOURNALD_NAME_SLOTS / 4 * 3);
    fx_fini(&f);
}

static void test_select_skips_core_and_duplicates(void **state)
{
    static const char *const sel[] = {"B", "MESSAGE", "A", "B", "_PID"};
    struct sl_conf_list l = list_of(sel, 5);
    struct in_journald_select s;
    assert_int_equal(in_journald_select_init(&s, &l), 0);
    list_free(&l);
    assert_int_equal(s.len, 2);
    assert_false(s.all);
    assert_string_equal(s.names[0], "A");
    assert_string_equal(s.names[1], "B");
    in_journald_select_fini(&s);
    in_journald_select_fini(NULL);
    assert_true(in_journald_rec_core_field("SYSLOG_IDENTIFIER", 17));
    assert_false(in_journald_rec_core_field("SYSLOG_FACILITY", 15));
}

static void test_raw_keeps_message_bytes(void **state)
{
    static const char *const sel[] = {"*"};
    struct fx f;
    fx_init(&f, sel, 1, 1024, true);
    in_journald_rec_reset(&f.rec);
    static const char msg[] = "MESSAGE=a\"b\xff";
    addn(&f, msg, sizeof(msg) - 1);
    add(&f, "_SYSTEMD_UNIT=x.service");
    add(&f, "PRIORITY=4");
    add(&f, "OTHER=skipped");
    assert_int_equal(f.rec.msg.len, 4);
    assert_memory_equal(f.rec.msg.data, "a\"b\xff", 4);
    assert_memory_equal(f.rec.unit.data, "x.service", 9);
    assert_int_equal(f.rec.priority, 4);
    assert_int_equal(f.rec.extra.len, 0);
    fx_fini(&f);
}

static void test_base64_vectors(void **state)
{
    /* RFC 4648, section 10. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        struct sl_buf b;
        sl_buf_init(&b);
        assert_int_equal(in_journald_base64(&b, (const uint8_t *)in[i], strlen(in[i])), 0);
        assert_int_equal(b.len, strlen(out[i]));
        if (b.len)
            assert_memory_equal(b.data, out[i], b.len);
        sl_buf_fini(&b);
    }
}

static void test_utf8_validity(void **state)
{
    assert_true(sl_utf8_valid((const uint8_t *)"", 0));
    assert_true(sl_utf8_valid((const uint8_t *)"a\0b", 3));
    assert_true(sl_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
    assert_false(sl_utf8_valid((const uint8_t *)"\xc0\xaf", 2));     /* overlong */
    assert_false(sl_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
    assert_false(sl_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
    assert_false(sl_utf8_valid((const uint8_t *)"\xe2\x82", 2)); /* cut */
}

static void test_time_is_exact(void **state)
{
    struct sl_json_clock c;
    sl_json_clock_init(&c);
    char out[32];
    assert_int_equal(sl_json_time(&c, 1700000000, 999999, out), 27);
    assert_string_equal(out, "2023-11-14T22:13:20.999999Z");
    /* The cached second is reused, and replaced when it changes. */
    assert_int_equal(sl_json_time(&c, 1700000000, 1, out), 27);
    assert_string_equal(out, "2023-11-14T22:13:20.000001Z");
    assert_int_equal(sl_json_time(&c, 1700000001, 0, out), 27);
    assert_string_equal(out, "2023-11-14T22:13:21.000000Z");
    assert_int_equal(sl_json_time(&c, 253402300799, 999999, out), 27);
    assert_string_equal(out, "9999-12-31T23:59:59.999999Z");
    assert_int_equal(sl_json_time(&c, 253402300800, 0, out), 0);
}

static void test_out_of_memory_is_retriable(void **state)
{
    static const char *const sel[] = {"*"};
    struct fx f;
    fx_init(&f, sel, 1, 1024, false);
    for (long n = 0; n < 20; n++) {
        in_journald_rec_reset(&f.rec);
        sl_mem_fail_after(n, 0);
        int rc = in_journald_rec_add(&f.rec, "MESSAGE=hello", 13);
        if (rc == 0)
            rc = in_journald_rec_add(&f.rec, "OTHER=x", 7);
        sl_mem_fail_after(-1, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        if (rc != 0) {
            /* The same entry is built again from the start and comes out whole. */
            in_journald_rec_reset(&f.rec);
            add(&f, "MESSAGE=hello");
            add(&f, "OTHER=x");
        }
        assert_string_equal(json(&f, 0), "{\"time\":\"1970-01-01T00:00:00.000000Z\"" FIXED
                                         ",\"message\":\"hello\",\"OTHER\":\"x\"}");
    }
    fx_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_fields_in_order),
        cmocka_unit_test(test_escaping_is_lossless_for_text),
        cmocka_unit_test(test_binary_values_base64),
        cmocka_unit_test(test_cut_at_max_bytes),
        cmocka_unit_test(test_cut_helper),
        cmocka_unit_test(test_repeated_and_invalid_fields),
        cmocka_unit_test(test_all_fields_and_name_cache_overflow),
        cmocka_unit_test(test_select_skips_core_and_duplicates),
        cmocka_unit_test(test_raw_keeps_message_bytes),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_utf8_validity),
        cmocka_unit_test(test_time_is_exact),
        cmocka_unit_test(test_out_of_memory_is_retriable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
