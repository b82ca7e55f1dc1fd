/* Unit tests for common/json_read.c (the sinks' typed columns, the agent's key: field) and for
 * plugin_key_from_json on top of it: RFC 8259 acceptance and refusal with the byte offset in
 * the message, top-level member lookup, string decoding, and the key rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/json_read.h"
#include "plugins/plugin.h"

#include <stdio.h>
#include <string.h>

static int check(const char *s, enum sl_json_type *type, struct sl_err *err)
{
    return sl_json_check(s, strlen(s), type, err);
}

static void test_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum sl_json_type type;
    } ok[] = {
        {"{}", SL_JSON_OBJECT},
        {" {\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}} ", SL_JSON_OBJECT},
        {"[]", SL_JSON_ARRAY},
        {"\"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"", SL_JSON_STRING},
        {"\"caf\xc3\xa9 \xf0\x9f\x99\x82\"", SL_JSON_STRING},
        {"-0", SL_JSON_NUMBER},
        {"12.5e-3", SL_JSON_NUMBER},
        {"1E+9", SL_JSON_NUMBER},
        {"true", SL_JSON_BOOL},
        {"null", SL_JSON_NULL},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        enum sl_json_type t = SL_JSON_NONE;
        struct sl_err err = {{0}};
        if (check(ok[i].text, &t, &err) != 0)
            fail_msg("refused %s: %s", ok[i].text, err.msg);
        assert_int_equal(t, ok[i].type);
    }
}

static void test_refuses_with_offset(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"", "not JSON: unexpected end at byte 0"},
        {"{\"a\":1,}", "not JSON: expected a member name at byte 7"},
        {"{\"a\" 1}", "not JSON: expected ':' at byte 5"},
        {"[1 2]", "not JSON: expected ',' or ']' at byte 3"},
        {"01", "not JSON: bytes after the value at byte 1"},
        {"1.", "not JSON: bad number at byte 2"},
        {"-", "not JSON: bad number at byte 1"},
        {"\"a\\x\"", "not JSON: bad escape at byte 2"},
        {"\"\\u12g4\"", "not JSON: bad \\u escape at byte 1"},
        {"\"tab\there\"", "not JSON: control character in a string at byte 4"},
        {"\"\xc3\x28\"", "not JSON: invalid UTF-8 at byte 1"},
        {"\"open", "not JSON: unterminated string at byte 5"},
        {"tru", "not JSON: unexpected character at byte 0"},
        {"{} {}", "not JSON: bytes after the value at byte 3"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sl_err err = {{0}};
        assert_int_equal(check(bad[i].text, NULL, &err), SL_EPARSE);
        assert_string_equal(err.msg, bad[i].msg);
    }
    /* Nesting is bounded: 64 levels pass, 65 do not. */
    char deep[200];
    for (int depth = 64; depth <= 65; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        deep[2 * depth] = '\0';
        struct sl_err err = {{0}};
        assert_int_equal(check(deep, NULL, &err), depth == 64 ? 0 : SL_EPARSE);
    }
    struct sl_err err = {{0}};
    assert_int_equal(sl_json_check(NULL, 0, NULL, &err), SL_EPARSE);
}

/* Newlines between tokens become spaces; the text is the same JSON value, on one line. */
static void test_one_line(void **state)
{
    (void)state;
    char text[] = "{\"a\":\r\n [1,\n2],\n\"b\":\"x\\ny\"}";
    sl_json_one_line(text, strlen(text));
    assert_string_equal(text, "{\"a\":   [1, 2], \"b\":\"x\\ny\"}");
    enum sl_json_type t = SL_JSON_NONE;
    assert_int_equal(check(text, &t, NULL), 0);
    assert_int_equal(t, SL_JSON_OBJECT);
    char plain[] = "{\"a\":1}";
    sl_json_one_line(plain, strlen(plain));
    assert_string_equal(plain, "{\"a\":1}");
}

/* sl_json_check_nl says whether one_line has work: a raw newline or CR between tokens, at any
 * depth and after the value, but not an escaped one in a string nor one in text that is not
 * JSON; the type and the error are sl_json_check's. */
static void test_check_nl(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool json, newline;
    } cases[] = {
        {"{\"a\":1}", true, false},
        {"{\"a\":\"x\\ny\\r\"}", true, false},
        {"{\"a\":\n1}", true, true},
        {"[1,\r2]", true, true},
        {"{\"a\":[{\"b\":\n[]}]}", true, true},
        {"{\"a\":1}\r\n", true, true},
        {"\n\"s\"", true, true},
        {"{\"a\":\n}", false, false},
        {"not\njson", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].text;
        bool nl = !cases[i].newline;
        enum sl_json_type t1 = SL_JSON_NONE, t2 = SL_JSON_NONE;
        struct sl_err e1 = {{0}}, e2 = {{0}};
        int rc = sl_json_check_nl(s, strlen(s), &t1, &nl, &e1);
        assert_int_equal(rc == 0, cases[i].json);
        assert_int_equal(nl, cases[i].newline);
        assert_int_equal(rc, sl_json_check(s, strlen(s), &t2, &e2));
        assert_int_equal(t1, t2);
        assert_string_equal(e1.msg, e2.msg);
    }
}

/* Strings are skipped a word at a time: a byte that needs a closer look must be found at every
 * position of a word, and a good multi-byte character must pass at every position. */
static void test_string_every_position(void **state)
{
    (void)state;
    static const struct {
        const char *bytes; /* put at position k of a 24-byte run of 'a' */
        int ok;
        const char *why;
    } cases[] = {
        {"\x01", 0, "control character"},
        {"\x1f", 0, "control character"},
        {"\x80", 0, "invalid UTF-8"},
        {"\xff", 0, "invalid UTF-8"},
        {"\\q", 0, "bad escape"},
        {"\xc3\xa9", 1, NULL},
        {"\xf0\x9f\x99\x82", 1, NULL},
        {"\\n", 1, NULL},
        {"\\u00e9", 1, NULL},
        {" ", 1, NULL},
        {"\x7f", 1, NULL},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t k = 0; k < 24; k++) {
            char s[64];
            memset(s, 'a', sizeof(s));
            s[0] = '"';
            size_t l = strlen(cases[c].bytes);
            memcpy(s + 1 + k, cases[c].bytes, l);
            s[1 + 24 + l] = '"';
            s[2 + 24 + l] = 0;
            struct sl_err err = {{0}};
            enum sl_json_type t = SL_JSON_NONE;
            int rc = check(s, &t, &err);
            if (cases[c].ok) {
                assert_int_equal(rc, 0);
                assert_int_equal(t, SL_JSON_STRING);
            } else {
                assert_int_not_equal(rc, 0);
                char want[80];
                snprintf(want, sizeof(want), "at byte %zu", 1 + k);
                if (!strstr(err.msg, cases[c].why) || !strstr(err.msg, want))
                    fail_msg("case %zu at %zu: %s", c, k, err.msg);
            }
        }
    }
}

/* Whitespace around a text changes nothing but the byte offsets: the string scan reads 16
 * bytes at a time and the last few of a text as the end of its last 16, so every split of a
 * text between those reads must give the same verdict. */
static void test_padding(void **state)
{
    (void)state;
    static const char *texts[] = {
        "{\"id\": 273937, \"host\": \"web-6\", \"message\": \"GET /item/273937 200\"}",
        "\"caf\xc3\xa9 \xf0\x9f\x99\x82 \\u00e9 \\n\"",
        "[\"0123456789abcdef\", \"0123456789abcde\\\"\", \"x\"]",
        "\"0123456789abcdef0123\\x\"",
        "\"0123456789abcdef012\x01\"",
        "\"0123456789abcdef01\xc3\"",
        "\"0123456789abcdef0123",
        "\"0123456789abcdef0\\u00",
    };
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        struct sl_err base = {{0}};
        enum sl_json_type base_type = SL_JSON_NONE;
        int base_rc = check(texts[t], &base_type, &base);
        size_t base_at = 0;
        if (base_rc != 0)
            assert_int_equal(sscanf(strstr(base.msg, " at byte "), " at byte %zu", &base_at), 1);
        for (size_t lead = 0; lead < 34; lead++) {
            for (size_t trail = 0; trail < 34; trail++) {
                char s[256];
                snprintf(s, sizeof(s), "%*s%s%*s", (int)lead, "", texts[t], (int)trail, "");
                struct sl_err err = {{0}};
                enum sl_json_type type = SL_JSON_NONE;
                int rc = check(s, &type, &err);
                assert_int_equal(rc, base_rc);
                if (rc == 0) {
                    assert_int_equal(type, base_type);
                    continue;
                }
                /* An unterminated string ends where the text does, trailing spaces included. */
                size_t want = base_at + lead + (strstr(base.msg, "unterminated") ? trail : 0);
                char msg[sizeof(err.msg)];
                snprintf(msg, sizeof(msg), "%.*s at byte %zu",
                         (int)(strstr(base.msg, " at byte ") - base.msg), base.msg, want);
                if (strcmp(err.msg, msg) != 0)
                    fail_msg("text %zu, %zu before, %zu after: %s, want %s", t, lead, trail,
                             err.msg, msg);
            }
        }
    }
}

static void test_get_and_unescape(void **state)
{
    (void)state;
    const char *obj = "{\"a\":{\"b\":1},\"s\":\"x\\u00e9\\ud83d\\ude42\\n\",\"n\":-2.5,"
                      "\"s\":\"second\",\"z\":\"\\u0000\"}";
    struct sl_json_val v;
    sl_json_get(obj, strlen(obj), "n", &v);
    assert_int_equal(v.type, SL_JSON_NUMBER);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.p, "-2.5", 4);
    sl_json_get(obj, strlen(obj), "a", &v);
    assert_int_equal(v.type, SL_JSON_OBJECT);
    sl_json_get(obj, strlen(obj), "b", &v); /* nested members are not top-level ones */
    assert_int_equal(v.type, SL_JSON_NONE);
    sl_json_get("[1]", 3, "a", &v);
    assert_int_equal(v.type, SL_JSON_NONE);

    sl_json_get(obj, strlen(obj), "s", &v); /* the first of two */
    assert_int_equal(v.type, SL_JSON_STRING);
    assert_false(sl_json_has_nul(&v));
    struct sl_buf b;
    sl_buf_init(&b);
    assert_int_equal(sl_json_unescape(&v, &b), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "x\xc3\xa9\xf0\x9f\x99\x82\n", 8);

    sl_json_get(obj, strlen(obj), "z", &v);
    assert_true(sl_json_has_nul(&v));
    sl_buf_reset(&b);
    assert_int_equal(sl_json_unescape(&v, &b), 0);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 0);
    sl_buf_fini(&b);
}

static struct sl_bytes key(const char *line, const char *field, struct sl_buf *scratch)
{
    return plugin_key_from_json((const uint8_t *)line, strlen(line), field, scratch);
}

static void test_key_from_json(void **state)
{
    (void)state;
    struct sl_buf s;
    sl_buf_init(&s);
    struct sl_bytes k = key("{\"user\":\"ann\\u00e9\",\"id\":7}", "user", &s);
    assert_int_equal(k.len, 5);
    assert_memory_equal(k.p, "ann\xc3\xa9", 5);
    k = key("  {\"id\":  42 , \"ok\":true}", "id", &s);
    assert_int_equal(k.len, 2);
    assert_memory_equal(k.p, "42", 2);
    k = key("{\"ok\":true}", "ok", &s);
    assert_memory_equal(k.p, "true", 4);
    k = key("{\"user\":\"\"}", "user", &s); /* an empty string is a key, not a null one */
    assert_non_null(k.p);
    assert_int_equal(k.len, 0);
    /* No key: absent, null, object or array values, lines that are not one JSON object. */
    const char *none[][2] = {
        {"{\"id\":1}", "user"},      {"{\"user\":null}", "user"},    {"{\"user\":{}}", "user"},
        {"{\"user\":[1]}", "user"},  {"user=ann", "user"},           {"[\"user\"]", "user"},
        {"{\"user\":\"a\"", "user"}, {"{\"user\":\"a\"} x", "user"}, {"", "user"},
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        k = key(none[i][0], none[i][1], &s);
        if (k.p)
            fail_msg("%s: got a key", none[i][0]);
    }
    sl_buf_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses_with_offset),
        cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_check_nl),
        cmocka_unit_test(test_string_every_position),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_get_and_unescape),
        cmocka_unit_test(test_key_from_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
