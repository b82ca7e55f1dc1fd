/* Unit tests for in_journald's options (plugins/in_journald_conf.c) as the agent's loader
 * applies them: defaults, every validation error with its position, the helpers behind them,
 * and the checks the plugin makes when an instance is created. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/agent_conf.h"
#include "common/conf.h"
#include "plugins/in_journald.h"
#include "plugins/plugin.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(const char *yaml, struct agent_conf *c, struct sl_conf_errors *errs)
{
    memset(c, 0, sizeof(*c));
    return sl_conf_load_string(&agent_conf_section, c, "a.yaml", yaml, strlen(yaml), errs);
}

static const struct plugin_source_conf *source0(const struct agent_conf *c)
{
    assert_int_equal(c->shipper.sources.len, 1);
    return SL_CONF_MAP_AT(&c->shipper.sources, struct plugin_source_conf, 0);
}

/* Fails unless some error line starts with `where` and contains `what`. */
static void expect_error(const struct sl_conf_errors *errs, const char *where, const char *what)
{
    for (int i = 0; i < errs->count; i++)
        if (strncmp(errs->items[i].text, where, strlen(where)) == 0 &&
            strstr(errs->items[i].text, what))
            return;
    for (int i = 0; i < errs->count; i++)
        fprintf(stderr, "  %s\n", errs->items[i].text);
    fail_msg("no error at '%s' with '%s'", where, what);
}

static void test_defaults(void **state)
{
    static const char yaml[] = "sources:\n"
                               "  j:\n"
                               "    type: journald\n"
                               "    topic: logs\n";
    struct agent_conf c;
    struct sl_conf_errors errs;
    int rc = load(yaml, &c, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    const struct plugin_source_conf *s = source0(&c);
    assert_ptr_equal(s->type.section, &in_journald_section);
    const struct in_journald_conf *j = s->type.conf;
    assert_int_equal(j->matches.len, 0);
    assert_int_equal(j->units.len, 0);
    assert_int_equal(j->priority, 7);
    assert_int_equal(j->read_from, IN_JOURNALD_FROM_HEAD);
    assert_null(j->directory);
    assert_int_equal(j->files.len, 0);
    assert_int_equal(j->journal_fields.len, 12);
    assert_string_equal(j->journal_fields.items[0], "_TRANSPORT");
    assert_int_equal(j->max_entry_bytes, 256 * 1024);
    assert_int_equal(j->checkpoint_interval_ms, 1000);
    assert_int_equal(j->reopen_ms, 10000);
    assert_ptr_equal(plugin_find(PLUGIN_INPUT, "journald"), &in_journald_plugin);
    sl_conf_free(&agent_conf_section, &c);
}

static void test_everything_set(void **state)
{
    static const char yaml[] = "sources:\n"
                               "  j:\n"
                               "    type: journald\n"
                               "    topic: logs\n"
                               "    matches: [_SYSTEMD_UNIT=a.service, PRIORITY=3, '+', _UID=0]\n"
                               "    units: [nginx, cron.timer]\n"
                               "    priority: warning\n"
                               "    read_from: tail\n"
                               "    directory: /var/log/journal/remote\n"
                               "    journal_fields: ['*']\n"
                               "    max_entry_bytes: 1MiB\n"
                               "    checkpoint_interval: 50ms\n"
                               "    reopen: 2s\n"
                               "    fields: [dc=eu-1]\n";
    struct agent_conf c;
    struct sl_conf_errors errs;
    int rc = load(yaml, &c, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    const struct plugin_source_conf *s = source0(&c);
    const struct in_journald_conf *j = s->type.conf;
    assert_int_equal(j->matches.len, 4);
    assert_string_equal(j->matches.items[2], "+");
    assert_int_equal(j->priority, 4);
    assert_int_equal(j->read_from, IN_JOURNALD_FROM_TAIL);
    assert_string_equal(j->directory, "/var/log/journal/remote");
    assert_int_equal(j->max_entry_bytes, 1 << 20);
    assert_int_equal(j->reopen_ms, 2000);
    /* The common `fields` stays the source's name=value list. */
    assert_int_equal(s->fields.len, 1);
    sl_conf_free(&agent_conf_section, &c);
}

static void test_bad_values_are_positioned(void **state)
{
    static const char yaml[] = "sources:\n"
                               "  j:\n"
                               "    type: journald\n"
                               "    topic: logs\n"
                               "    matches: [_SYSTEMD_UNIT=a.service, nonsense, lower=x, '+']\n"
                               "    units: [a/b.service]\n"
                               "    directory: relative/dir\n"
                               "    files: [x.journal]\n"
                               "    journal_fields: [__CURSOR, MESSAGE, 9LIVES, OK_FIELD]\n";
    struct agent_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load(yaml, &c, &errs), SL_ECONFIG);
    expect_error(&errs, "a.yaml:5:", "'matches' item 'nonsense' is not FIELD=value or '+'");
    expect_error(&errs, "a.yaml:5:", "'matches' item 'lower=x' has no valid field name");
    expect_error(&errs, "a.yaml:5:", "'+' goes between two groups");
    expect_error(&errs, "a.yaml:6:", "'units' item 'a/b.service' is not a unit name");
    expect_error(&errs, "a.yaml:7:", "'directory' must be absolute (got 'relative/dir')");
    expect_error(&errs, "a.yaml:8:", "'directory' and 'files' exclude each other");
    expect_error(&errs, "a.yaml:8:", "'files' must be absolute (got 'x.journal')");
    expect_error(&errs, "a.yaml:9:", "'journal_fields' item '__CURSOR' is not a journal field");
    expect_error(&errs, "a.yaml:9:", "'journal_fields' item 'MESSAGE' is in every record");
    expect_error(&errs, "a.yaml:9:", "'journal_fields' item '9LIVES' is not a journal field");
    if (errs.count != 10)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(errs.count, 10);
    sl_conf_free(&agent_conf_section, &c);
}

static void test_bad_types_and_names(void **state)
{
    static const char yaml[] = "sources:\n"
                               "  j:\n"
                               "    type: journald\n"
                               "    topic: logs\n"
                               "    priority: loud\n"
                               "    read_from: middle\n"
                               "    max_entry_bytes: 1\n"
                               "    unitz: [a]\n";
    struct agent_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load(yaml, &c, &errs), SL_ECONFIG);
    expect_error(&errs, "a.yaml:5:15: ",
                 "'priority' must be one of emerg, alert, crit, err, "
                 "warning, notice, info, debug (got 'loud')");
    expect_error(&errs, "a.yaml:6:16: ", "'read_from' must be one of head, tail");
    expect_error(&errs, "a.yaml:7:22: ", "max_entry_bytes");
    expect_error(&errs, "a.yaml:8:5: ", "did you mean 'units'");
    sl_conf_free(&agent_conf_section, &c);
}

static void test_plus_placement(void **state)
{
    static const char *const bad[] = {"[ '+', A=1 ]", "[ A=1, '+' ]", "[ A=1, '+', '+', B=2 ]"};
    for (size_t i = 0; i < 3; i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml),
                 "sources:\n  j:\n    type: journald\n    topic: t\n    matches: %s\n", bad[i]);
        struct agent_conf c;
        struct sl_conf_errors errs;
        assert_int_equal(load(yaml, &c, &errs), SL_ECONFIG);
        expect_error(&errs, "a.yaml:5:", "'+' goes between two groups");
        sl_conf_free(&agent_conf_section, &c);
    }
}

static void test_helpers(void **state)
{
    struct sl_err err = {{0}};
    assert_int_equal(in_journald_match_check("+", &err), 0);
    assert_int_equal(in_journald_match_check("_SYSTEMD_UNIT=", &err), 0); /* empty value */
    assert_int_equal(in_journald_match_check("MESSAGE=a=b", &err), 0);
    assert_int_equal(in_journald_match_check("=x", &err), SL_ECONFIG);
    assert_int_equal(in_journald_match_check("A B=x", &err), SL_ECONFIG);
    assert_int_equal(in_journald_match_check("__REALTIME_TIMESTAMP=1", &err), SL_ECONFIG);
    assert_true(in_journald_field_name_ok("_PID", 4));
    assert_true(in_journald_field_name_ok("A", 1));
    assert_false(in_journald_field_name_ok("", 0));
    assert_false(in_journald_field_name_ok("1A", 2));
    assert_false(in_journald_field_name_ok("a", 1));
    char n65[66];
    memset(n65, 'A', 65);
    assert_false(in_journald_field_name_ok(n65, 65));
    assert_true(in_journald_field_name_ok(n65, 64));
    char out[32];
    assert_int_equal(in_journald_unit_name("nginx", out, sizeof(out)), 0);
    assert_string_equal(out, "nginx.service");
    assert_int_equal(in_journald_unit_name("cron.timer", out, sizeof(out)), 0);
    assert_string_equal(out, "cron.timer");
    assert_int_equal(in_journald_unit_name("user@1000.service", out, sizeof(out)), 0);
    assert_string_equal(out, "user@1000.service");
    assert_int_equal(in_journald_unit_name("a.b", out, sizeof(out)), 0);
    assert_string_equal(out, "a.b.service");
    assert_int_equal(in_journald_unit_name("a-very-long-unit-name-indeed", out, sizeof(out)),
                     SL_ETOOBIG);
}

/* ---- creating an instance ------------------------------------------------------------------ */

static int topic_refs;

static struct plugin_topic *fake_topic_get(struct plugin_sink *s, const char *name)
{
    topic_refs++;
    return (struct plugin_topic *)(uintptr_t)0x1234;
}

static void fake_topic_put(struct plugin_sink *s, struct plugin_topic *t)
{
    topic_refs--;
}

static int fake_emit(struct plugin_sink *s, struct plugin_topic *t, const struct plugin_record *r,
                     struct plugin_waiter *w)
{
    return 0;
}

static void fake_cancel(struct plugin_sink *s, struct plugin_waiter *w)
{
}

static void test_new_checks_source_fields(void **state)
{
    static const char yaml[] = "sources:\n"
                               "  j:\n"
                               "    type: journald\n"
                               "    topic: logs\n"
                               "    directory: /nonexistent/sl-journal-test\n"
                               "    fields: [dc=eu, unit=x]\n";
    struct agent_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load(yaml, &c, &errs), 0);
    const struct plugin_source_conf *s = source0(&c);
    struct plugin_sink sink = {fake_topic_get, fake_topic_put, fake_emit, fake_cancel};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct plugin_ctx ctx = {.loop = loop,
                             .name = "in.journald#j",
                             .hostname = "h",
                             .state_dir = "/tmp",
                             .sink = &sink,
                             .source = s};
    void *self = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(in_journald_plugin.new(&ctx, s->type.conf, &self, &err), SL_ECONFIG);
    assert_null(self);
    assert_non_null(strstr(err.msg, "'fields' may not set 'unit'"));
    assert_int_equal(topic_refs, 0);
    sl_conf_free(&agent_conf_section, &c);
    ev_loop_destroy(loop);
}

static void test_missing_directory_waits(void **state)
{
    static const char yaml[] = "sources:\n"
                               "  j:\n"
                               "    type: journald\n"
                               "    topic: logs\n"
                               "    directory: /nonexistent/sl-journal-test\n";
    struct agent_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load(yaml, &c, &errs), 0);
    const struct plugin_source_conf *s = source0(&c);
    struct plugin_sink sink = {fake_topic_get, fake_topic_put, fake_emit, fake_cancel};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char state_dir[] = "/tmp/sl-jd-XXXXXX";
    assert_non_null(mkdtemp(state_dir));
    struct plugin_ctx ctx = {.loop = loop,
                             .name = "in.journald#j",
                             .hostname = "h",
                             .state_dir = state_dir,
                             .sink = &sink,
                             .source = s};
    void *self = NULL;
    struct sl_err err = {{0}};
    assert_int_equal(in_journald_plugin.new(&ctx, s->type.conf, &self, &err), 0);
    /* A missing journal is not an error: the instance waits for it (a timer is armed). */
    assert_int_equal(in_journald_plugin.start(self, &err), 0);
    assert_true(ev_run(loop, EVRUN_NOWAIT));
    in_journald_plugin.stop(self);
    assert_false(ev_run(loop, EVRUN_NOWAIT)); /* no watcher left */
    in_journald_plugin.free(self);
    assert_int_equal(topic_refs, 0);
    assert_int_equal(rmdir(state_dir), 0); /* nothing was acknowledged: no checkpoint file */
    sl_conf_free(&agent_conf_section, &c);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_everything_set),
        cmocka_unit_test(test_bad_values_are_positioned),
        cmocka_unit_test(test_bad_types_and_names),
        cmocka_unit_test(test_plus_placement),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_new_checks_source_fields),
        cmocka_unit_test(test_missing_directory_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
