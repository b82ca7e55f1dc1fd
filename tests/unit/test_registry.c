/* Unit tests for plugins/registry.c: every compiled-in plugin is complete, uniquely named and
 * documented, and its option table (with every default) passes sl_conf_table_check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/shipper.h"
#include "common/conf.h"
#include "plugins/in_tail.h"
#include "plugins/out_kafka.h"
#include "plugins/plugin.h"

#include <stdio.h>
#include <string.h>

static void check_table(const struct sl_conf_section *sec)
{
    struct sl_conf_errors errs;
    int rc = sl_conf_table_check(sec, &errs);
    if (rc != 0)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
}

static void test_names_unique_and_callbacks_present(void **state)
{
    assert_true(plugin_registry_len >= 2);
    for (size_t i = 0; i < plugin_registry_len; i++) {
        const struct plugin *p = plugin_registry[i];
        assert_non_null(p);
        assert_non_null(p->name);
        assert_true(strlen(p->name) > 0);
        assert_non_null(p->help);
        assert_true(strlen(p->help) > 0);
        assert_true(p->kind == PLUGIN_INPUT || p->kind == PLUGIN_OUTPUT);
        assert_non_null(p->section);
        assert_non_null(p->new);
        assert_non_null(p->start);
        assert_non_null(p->stop);
        assert_non_null(p->free);
        if (p->kind == PLUGIN_OUTPUT) {
            assert_non_null(p->output);
            assert_non_null(p->output->partitions);
            assert_non_null(p->output->send);
            assert_non_null(p->output->queued);
        } else {
            assert_null(p->output);
            /* An input is chosen by `type:`, which matches its section's name. */
            assert_string_equal(p->section->name, p->name);
        }
        for (size_t j = 0; j < i; j++)
            assert_false(plugin_registry[j]->kind == p->kind &&
                         strcmp(plugin_registry[j]->name, p->name) == 0);
        assert_ptr_equal(plugin_find(p->kind, p->name), p);
        assert_ptr_equal(plugin_by_section(p->section), p);
    }
    assert_null(plugin_find(PLUGIN_INPUT, "no-such-plugin"));
    assert_null(plugin_find(PLUGIN_OUTPUT, "tail"));
    assert_ptr_equal(plugin_find(PLUGIN_INPUT, "tail"), &in_tail_plugin);
    assert_ptr_equal(plugin_find(PLUGIN_OUTPUT, "kafka"), &out_kafka_plugin);
}

/* The variants of `type:` are exactly the input plugins' sections, in registry order. */
static void test_input_sections_match_registry(void **state)
{
    size_t k = 0;
    for (size_t i = 0; i < plugin_registry_len; i++) {
        if (plugin_registry[i]->kind != PLUGIN_INPUT)
            continue;
        assert_ptr_equal(plugin_input_sections[k], plugin_registry[i]->section);
        k++;
    }
    assert_null(plugin_input_sections[k]);
    assert_ptr_equal(plugin_source_section.variants, plugin_input_sections);
}

/* Every option documented, every default valid, for each plugin and for the shared tables. */
static void test_tables_check(void **state)
{
    for (size_t i = 0; i < plugin_registry_len; i++)
        check_table(plugin_registry[i]->section);
    check_table(&plugin_source_section);
}

/* The shipper's option entries, placed in a root as agent_conf.c will. */
struct root {
    char *other;
    struct agent_shipper_conf shipper;
};
static const struct sl_conf_opt root_opts[] = {
    {.name = "other",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct root, other),
     .help = "something of the agent's own"},
    AGENT_SHIPPER_OPTS(offsetof(struct root, shipper)),
    {.name = NULL},
};
static const struct sl_conf_section root_section = {
    .name = "agent", .help = "root", .opts = root_opts, .size = sizeof(struct root)};

static void test_shipper_opts_load(void **state)
{
    check_table(&root_section);
    static const char yaml[] = "sources:\n"
                               "  nginx:\n"
                               "    type: tail\n"
                               "    paths: [/var/log/nginx/*.log]\n"
                               "    topic: web\n"
                               "    fields: [env=prod]\n"
                               "output:\n"
                               "  collectors: [c1:9093, c2]\n"
                               "  acks: all\n"
                               "memory_limit: 4MiB\n";
    struct root r;
    memset(&r, 0, sizeof(r));
    struct sl_conf_errors errs;
    int rc = sl_conf_load_string(&root_section, &r, "t.yaml", yaml, strlen(yaml), &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(r.shipper.sources.len, 1);
    struct plugin_source_conf *sc =
        SL_CONF_MAP_AT(&r.shipper.sources, struct plugin_source_conf, 0);
    assert_string_equal(sc->name, "nginx");
    assert_string_equal(sc->topic, "web");
    assert_int_equal(sc->key, PLUGIN_KEY_HOST);
    assert_int_equal(sc->format, PLUGIN_FORMAT_JSON);
    assert_ptr_equal(sc->type.section, &in_tail_section);
    const struct in_tail_conf *tc = sc->type.conf;
    assert_int_equal(tc->paths.len, 1);
    assert_int_equal(tc->max_line_bytes, 256 * 1024);
    assert_int_equal(r.shipper.output.collectors.len, 2);
    assert_int_equal(r.shipper.output.collectors.items[0].port, 9093);
    assert_int_equal(r.shipper.output.collectors.items[1].port, 9092);
    assert_int_equal(r.shipper.output.acks, -1);
    assert_int_equal(r.shipper.memory_limit, 4 << 20);
    sl_conf_free(&root_section, &r);
}

static const char *first_error(const char *yaml)
{
    static char buf[512];
    struct root r;
    memset(&r, 0, sizeof(r));
    struct sl_conf_errors errs;
    int rc = sl_conf_load_string(&root_section, &r, "t.yaml", yaml, strlen(yaml), &errs);
    assert_int_equal(rc, SL_ECONFIG);
    snprintf(buf, sizeof(buf), "%s", errs.items[0].text);
    return buf;
}

/* The check hooks of the shared tables refuse what cannot work. */
static void test_check_hooks(void **state)
{
    const char *e = first_error("sources:\n  a:\n    type: tail\n    paths: [x.log]\n"
                                "    topic: t\n");
    assert_non_null(strstr(e, "'paths' must be absolute"));
    e = first_error("sources:\n  a:\n    type: tail\n    paths: [/x.log]\n    topic: t\n"
                    "    key: const\n");
    assert_non_null(strstr(e, "needs 'key_value'"));
    e = first_error("sources:\n  a:\n    type: tail\n    paths: [/x.log]\n    topic: t\n"
                    "    key: field\n");
    assert_non_null(strstr(e, "'key' field needs 'key_field'"));
    e = first_error("sources:\n  a:\n    type: journald\n    topic: t\n"
                    "    fields: [_COMM, x=y, lower]\n");
    assert_non_null(strstr(e, "'fields' entry 'lower' is neither name=value nor a journal"));
    e = first_error("sources:\n  a:\n    type: journald\n    topic: t\n"
                    "    fields: [MESSAGE]\n");
    assert_non_null(strstr(e, "'fields' entry 'MESSAGE'"));
    e = first_error("sources:\n  a:\n    type: tail\n    paths: [/x.log]\n    topic: t\n"
                    "    key_field: user\n");
    assert_non_null(strstr(e, "'key_field' is only used with 'key: field'"));
    e = first_error("sources:\n  a:\n    type: tail\n    paths: [/x.log]\n    topic: t\n"
                    "    fields: [host=x]\n");
    assert_non_null(strstr(e, "may not set 'host'"));
    e = first_error("sources:\n  a:\n    type: tail\n    paths: [/x.log]\n    topic: t\n"
                    "    fields: [novalue]\n");
    assert_non_null(strstr(e, "name=value"));
    e = first_error("sources:\n  a:\n    type: tail\n    paths: [/x.log]\n    topic: t\n"
                    "    multiline_start: '(['\n");
    assert_non_null(strstr(e, "multiline_start"));
    e = first_error("sources:\n  a:\n    type: nope\n    topic: t\n");
    assert_non_null(strstr(e, "tail"));
    e = first_error("output:\n  retry_backoff: 5s\n  retry_backoff_max: 1s\n");
    assert_non_null(strstr(e, "retry_backoff_max"));
    e = first_error("output:\n  acks: yes\n");
    assert_non_null(strstr(e, "acks"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_unique_and_callbacks_present),
        cmocka_unit_test(test_input_sections_match_registry),
        cmocka_unit_test(test_tables_check),
        cmocka_unit_test(test_shipper_opts_load),
        cmocka_unit_test(test_check_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
