/* The files sink's `layout` (the folder template under root), checked the way a user meets it:
 * through the sink's option table (sink_conf_section), so the parser in sink_files.c is tested
 * without exposing it. Every placeholder and combination is accepted; each kind of bad template
 * is refused with an error that names the option, the line, and what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "collector/cli/sink.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* Loads a files-sink configuration with this layout line (YAML-quoted by the caller). Returns
 * the load's result; errs holds the errors. */
static int load_layout(const char *layout_yaml, struct sl_conf_errors *errs)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "type: files\n"
             "group: g\n"
             "topics: [t]\n"
             "root: /tmp/sl-sink-layout\n"
             "layout: %s\n",
             layout_yaml);
    struct sink_conf c;
    memset(&c, 0, sizeof(c));
    int rc = sl_conf_load_string(&sink_conf_section, &c, "sink.yaml", text, strlen(text), errs);
    if (rc == 0)
        sl_conf_free(&sink_conf_section, &c);
    return rc;
}

static void expect_ok(const char *layout_yaml)
{
    struct sl_conf_errors errs;
    int rc = load_layout(layout_yaml, &errs);
    if (rc != 0) {
        fprintf(stderr, "layout %s refused:\n", layout_yaml);
        sl_conf_errors_print(&errs, stderr);
    }
    assert_int_equal(rc, 0);
}

/* The load fails with one error, on the layout line (line 5), containing every needle. */
static void expect_bad(const char *layout_yaml, const char *needle1, const char *needle2)
{
    struct sl_conf_errors errs;
    int rc = load_layout(layout_yaml, &errs);
    assert_int_equal(rc, SL_ECONFIG);
    assert_int_equal(errs.count, 1);
    const char *t = errs.items[0].text;
    if (!strstr(t, "sink.yaml:5:") || !strstr(t, "layout") || !strstr(t, needle1) ||
        (needle2 && !strstr(t, needle2)))
        fail_msg("layout %s: unexpected error '%s' (wanted '%s'%s%s)", layout_yaml, t, needle1,
                 needle2 ? " and " : "", needle2 ? needle2 : "");
}

static void test_default_and_every_placeholder(void **state)
{
    (void)state;
    expect_ok("'topic={topic}/dt={date}/hour={hour}'");
    static const char *const each[] = {"{topic}", "{partition}", "{year}", "{month}",
                                       "{day}",   "{date}",      "{hour}", "{minute}"};
    for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++) {
        char y[64];
        snprintf(y, sizeof(y), "'x={%s'", each[i] + 1); /* x={name} */
        expect_ok(y);
    }
    expect_ok("'topic={topic}/partition={partition}/year={year}/month={month}/day={day}/"
              "hour={hour}/minute={minute}'");
    /* Several placeholders in one folder name, and text around them. */
    expect_ok("'{topic}-p{partition}/{year}{month}{day}/h{hour}m{minute}'");
    /* Folders without placeholders are plain names. */
    expect_ok("'warehouse/raw/{topic}'");
    expect_ok("static");
}

static void test_unknown_placeholders(void **state)
{
    (void)state;
    expect_bad("'topic={topic}/dt={dat}'", "unknown placeholder '{dat}'", "allowed: {topic}");
    expect_bad("'{Topic}'", "unknown placeholder '{Topic}'", NULL);
    expect_bad("'x={}'", "unknown placeholder '{}'", NULL);
    /* An unclosed brace: quoted up to the end. */
    expect_bad("'topic={topic'", "unknown placeholder '{topic'", NULL);
    expect_bad("'a/{hour'", "unknown placeholder '{hour'", NULL);
    /* No nesting. */
    expect_bad("'{{topic}}'", "unknown placeholder '{{topic}'", NULL);
}

static void test_bad_folders(void **state)
{
    (void)state;
    expect_bad("'/abs/{topic}'", "relative path", NULL);
    expect_bad("'{topic}/'", "trailing '/'", NULL);
    expect_bad("'a//{topic}'", "must not be empty", NULL);
    expect_bad("'.hidden/{topic}'", "'.hidden'", "start with '.' or '_'");
    expect_bad("'{topic}/_tmp'", "'_tmp'", "start with '.' or '_'");
    expect_bad("'..'", "'..'", "start with '.' or '_'");
}

static void test_bad_characters(void **state)
{
    (void)state;
    expect_bad("'topic}'", "'}' is not allowed outside a placeholder", NULL);
    expect_bad("'a\\\\b'", "'\\' is not allowed outside a placeholder", NULL);
    expect_bad("\"a\\tb\"", "is not allowed outside a placeholder", NULL);
}

static void test_length_limits(void **state)
{
    (void)state;
    expect_bad("''", "layout", NULL);
    char y[700];
    memset(y, 'a', sizeof(y));
    y[0] = '\'';
    y[600] = '\'';
    y[601] = 0;
    expect_bad(y, "layout", NULL);
}

int main(void)
{
    sl_log_set_level_name("err");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_and_every_placeholder),
        cmocka_unit_test(test_unknown_placeholders),
        cmocka_unit_test(test_bad_folders),
        cmocka_unit_test(test_bad_characters),
        cmocka_unit_test(test_length_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
