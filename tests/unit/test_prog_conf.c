/* The programs' option tables: each passes the table checker, and the shipped configuration
 * (embedded in the binaries) loads cleanly with the documented defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/agent_conf.h"
#include "collector/coll_conf.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static void expect_table_ok(const struct sl_conf_section *root)
{
    struct sl_conf_errors errs;
    int rc = sl_conf_table_check(root, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
}

static void test_tables_pass_the_checker(void **state)
{
    expect_table_ok(&coll_conf_section);
    expect_table_ok(&agent_conf_section);
}

static void test_embedded_collector_conf_loads(void **state)
{
    struct coll_conf c;
    memset(&c, 0, sizeof(c));
    struct sl_conf_errors errs;
    int rc = sl_conf_load_string(&coll_conf_section, &c, "collector.yaml", coll_conf_embedded,
                                 strlen(coll_conf_embedded), &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_string_equal(c.data_dir, "/var/lib/sluice");
    assert_int_equal(c.log_level, SL_LOG_INFO);
    assert_true(c.metrics.enabled);
    assert_string_equal(c.metrics.listen.host, "127.0.0.1");
    assert_int_equal(c.metrics.listen.port, 9644);
    sl_conf_free(&coll_conf_section, &c);
}

static void test_embedded_agent_conf_loads(void **state)
{
    struct agent_conf c;
    memset(&c, 0, sizeof(c));
    struct sl_conf_errors errs;
    int rc = sl_conf_load_string(&agent_conf_section, &c, "agent.yaml", agent_conf_embedded,
                                 strlen(agent_conf_embedded), &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_string_equal(c.state_dir, "/var/lib/sluice-agent");
    assert_null(c.hostname);
    assert_int_equal(c.metrics.listen.port, 2020);
    sl_conf_free(&agent_conf_section, &c);
}

static void test_collector_rejects_bad_values(void **state)
{
    static const char bad[] = "log_level: loud\ndata_dir: ''\nmetrics:\n  listen: 1.2.3.4:70000\n";
    struct coll_conf c;
    memset(&c, 0, sizeof(c));
    struct sl_conf_errors errs;
    assert_int_equal(sl_conf_load_string(&coll_conf_section, &c, "c.yaml", bad, strlen(bad), &errs),
                     SL_ECONFIG);
    assert_int_equal(errs.count, 3);
    assert_non_null(strstr(errs.items[0].text, "c.yaml:1:12: "));
    assert_non_null(strstr(errs.items[0].text, "log_level"));
    assert_non_null(strstr(errs.items[1].text, "c.yaml:2:11: "));
    assert_non_null(strstr(errs.items[2].text, "c.yaml:4:11: "));
    assert_null(c.data_dir);
}

static int load_coll(const char *yaml, struct coll_conf *c, struct sl_conf_errors *errs)
{
    memset(c, 0, sizeof(*c));
    int rc = sl_conf_load_string(&coll_conf_section, c, "c.yaml", yaml, strlen(yaml), errs);
    if (rc && rc != SL_ECONFIG)
        fail_msg("unexpected load result %d", rc);
    return rc;
}

static void test_topic_settings_resolve_defaults_then_topic(void **state)
{
    static const char yaml[] = "topic_defaults:\n"
                               "  retention: 3d\n"
                               "  segment_bytes: 64MiB\n"
                               "topics:\n"
                               "  audit:\n"
                               "    retention: forever\n"
                               "    retention_bytes: 50GiB\n"
                               "    fsync: always\n"
                               "    validate_records: false\n";
    struct coll_conf c;
    struct sl_conf_errors errs;
    int rc = load_coll(yaml, &c, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    struct coll_log_conf lc;
    coll_conf_log_conf(&c, NULL, "audit", &lc);
    assert_true(lc.retention_ms == -1);
    assert_true(lc.retention_bytes == 50LL << 30);
    assert_int_equal(lc.fsync, COLL_FSYNC_ALWAYS);
    assert_false(lc.validate_records);
    assert_true(lc.segment_bytes == 64LL << 20); /* from topic_defaults */
    assert_true(lc.index_interval == 4096);      /* built in */
    coll_conf_log_conf(&c, NULL, "other", &lc);
    assert_true(lc.retention_ms == 3LL * 86400 * 1000);
    assert_true(lc.retention_bytes == -1);
    assert_int_equal(lc.fsync, COLL_FSYNC_INTERVAL);
    assert_true(lc.validate_records);
    sl_conf_free(&coll_conf_section, &c);

    /* Nothing configured: exactly the built-in defaults. */
    assert_int_equal(load_coll("{}\n", &c, &errs), 0);
    coll_conf_log_conf(&c, NULL, "x", &lc);
    struct coll_log_conf def = COLL_LOG_CONF_DEFAULT;
    assert_true(lc.segment_bytes == def.segment_bytes);
    assert_true(lc.segment_age_ms == def.segment_age_ms);
    assert_true(lc.index_interval == def.index_interval);
    assert_true(lc.retention_ms == def.retention_ms);
    assert_true(lc.retention_bytes == def.retention_bytes);
    assert_int_equal(lc.fsync, def.fsync);
    assert_true(lc.fsync_interval_ms == def.fsync_interval_ms);
    assert_true(lc.max_batch_bytes == def.max_batch_bytes);
    assert_int_equal(lc.validate_records, def.validate_records);
    sl_conf_free(&coll_conf_section, &c);
}

/* True when one error starts with `at` and mentions `what`. */
static bool has_error(const struct sl_conf_errors *errs, const char *at, const char *what)
{
    for (int i = 0; i < errs->count; i++)
        if (strncmp(errs->items[i].text, at, strlen(at)) == 0 && strstr(errs->items[i].text, what))
            return true;
    return false;
}

static void test_topic_settings_errors_are_positioned(void **state)
{
    static const char yaml[] = "topics:\n"
                               "  audit:\n"
                               "    retention: 0\n"
                               "    fsync: sometimes\n"
                               "    segment_bytes: 10XB\n"
                               "  ../x:\n"
                               "    retention: 1d\n";
    struct coll_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load_coll(yaml, &c, &errs), SL_ECONFIG);
    sl_conf_errors_print(&errs, stderr);
    assert_int_equal(errs.count, 4);
    assert_true(has_error(&errs, "c.yaml:3:16: ", "forever"));
    assert_true(has_error(&errs, "c.yaml:4:12: ", "always"));
    assert_true(has_error(&errs, "c.yaml:5:20: ", "segment_bytes"));
    assert_true(has_error(&errs, "c.yaml:6:", "../x"));
}

static void test_topic_settings_checked_in_combination(void **state)
{
    /* Each value fine alone; a batch larger than a segment is not. */
    static const char yaml[] = "topic_defaults:\n"
                               "  max_batch_bytes: 8MiB\n"
                               "topics:\n"
                               "  small:\n"
                               "    segment_bytes: 4MiB\n";
    struct coll_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load_coll(yaml, &c, &errs), SL_ECONFIG);
    sl_conf_errors_print(&errs, stderr);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.items[0].text, "topic 'small'"));
    assert_non_null(strstr(errs.items[0].text, "max_batch_bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_pass_the_checker),
        cmocka_unit_test(test_embedded_collector_conf_loads),
        cmocka_unit_test(test_embedded_agent_conf_loads),
        cmocka_unit_test(test_collector_rejects_bad_values),
        cmocka_unit_test(test_topic_settings_resolve_defaults_then_topic),
        cmocka_unit_test(test_topic_settings_errors_are_positioned),
        cmocka_unit_test(test_topic_settings_checked_in_combination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
