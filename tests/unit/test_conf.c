/* Unit tests for the configuration system: value parsers at their boundaries, loading every
 * option type, merging drop-ins, defaults, table checks, help/docs, allocation failures, and
 * the golden bad configs of tests/data/conf/bad (see tests/data/conf/README). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/conf.h"
#include "common/err.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a test-only table shaped like the agent's: sections, a map with variants, checks ---- */

enum { T_ACKS_NONE = 0, T_ACKS_LEADER = 1, T_ACKS_ALL = -1 };
enum { T_FMT_JSON, T_FMT_RAW };
enum { T_LOG_ERR = 3, T_LOG_INFO = 6, T_LOG_DEBUG = 7 };

struct t_tls {
    bool enabled;
    char *ca_file;
};

struct t_output {
    struct sl_conf_hostports brokers;
    int acks;
    int64_t batch_bytes;
    int64_t linger_ms;
    int64_t retries;
    char *client_id;
    struct t_tls tls;
};

struct t_tail {
    struct sl_conf_list paths;
    bool from_start;
    int64_t read_buffer;
};

struct t_journald {
    struct sl_conf_list units;
    char *cursor_dir;
};

struct t_source {
    char *name;
    struct sl_conf_variant kind;
    char *topic;
    int format;
    bool enabled;
};

struct t_conf {
    char *host_name;
    struct sl_conf_hostport listen;
    int log_level;
    int64_t workers;
    struct t_output output;
    struct sl_conf_map sources;
};

static const struct sl_conf_enum t_acks[] = {
    {"0", T_ACKS_NONE}, {"1", T_ACKS_LEADER}, {"all", T_ACKS_ALL}, {NULL, 0}};
static const struct sl_conf_enum t_formats[] = {
    {"json", T_FMT_JSON}, {"raw", T_FMT_RAW}, {NULL, 0}};
static const struct sl_conf_enum t_levels[] = {
    {"err", T_LOG_ERR}, {"info", T_LOG_INFO}, {"debug", T_LOG_DEBUG}, {NULL, 0}};

static const struct sl_conf_opt t_tls_opts[] = {
    {.name = "enabled",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct t_tls, enabled),
     .def = "false",
     .help = "Use TLS"},
    {.name = "ca_file",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct t_tls, ca_file),
     .help = "CA bundle"},
    {.name = NULL},
};
static const struct sl_conf_section t_tls_section = {
    .name = "tls", .help = "TLS settings", .opts = t_tls_opts, .size = sizeof(struct t_tls)};

static const struct sl_conf_opt t_output_opts[] = {
    {.name = "brokers",
     .type = SL_CONF_HOSTPORTS,
     .offset = offsetof(struct t_output, brokers),
     .def = "[localhost]",
     .port = 9092,
     .min = 1,
     .max = 16,
     .help = "Collectors"},
    {.name = "acks",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct t_output, acks),
     .def = "all",
     .enums = t_acks,
     .help = "Acknowledgements to wait for"},
    {.name = "batch_bytes",
     .type = SL_CONF_SIZE,
     .offset = offsetof(struct t_output, batch_bytes),
     .def = "1MiB",
     .min = 1024,
     .max = 64 << 20,
     .help = "Batch size | limit"},
    {.name = "linger",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct t_output, linger_ms),
     .def = "5ms",
     .min = 0,
     .max = 60000,
     .help = "Wait for a fuller batch"},
    {.name = "retries",
     .type = SL_CONF_INT,
     .offset = offsetof(struct t_output, retries),
     .def = "3",
     .min = 0,
     .max = 100,
     .help = "Retries per batch"},
    {.name = "client_id",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct t_output, client_id),
     .def = "sluice",
     .min = 1,
     .max = 16,
     .help = "Kafka client id"},
    {.name = "tls",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct t_output, tls),
     .sub = &t_tls_section,
     .help = "TLS"},
    {.name = NULL},
};
static const struct sl_conf_section t_output_section = {.name = "output",
                                                        .help = "Where records go",
                                                        .opts = t_output_opts,
                                                        .size = sizeof(struct t_output)};

static const struct sl_conf_opt t_tail_opts[] = {
    {.name = "paths",
     .type = SL_CONF_LIST,
     .offset = offsetof(struct t_tail, paths),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 100,
     .help = "Files to follow (globs)"},
    {.name = "from_start",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct t_tail, from_start),
     .def = "no",
     .help = "Read new files from their start"},
    {.name = "read_buffer",
     .type = SL_CONF_SIZE,
     .offset = offsetof(struct t_tail, read_buffer),
     .def = "64KiB",
     .min = 4096,
     .max = INT64_MAX,
     .help = "Read size"},
    {.name = NULL},
};
static const struct sl_conf_section t_tail_section = {
    .name = "tail", .help = "Follow files", .opts = t_tail_opts, .size = sizeof(struct t_tail)};

static const struct sl_conf_opt t_journald_opts[] = {
    {.name = "units",
     .type = SL_CONF_LIST,
     .offset = offsetof(struct t_journald, units),
     .def = "[]",
     .help = "Units to read (all when empty)"},
    {.name = "cursor_dir",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct t_journald, cursor_dir),
     .def = "/var/lib/t",
     .help = "Cursors"},
    {.name = NULL},
};
static const struct sl_conf_section t_journald_section = {.name = "journald",
                                                          .help = "Read the journal",
                                                          .opts = t_journald_opts,
                                                          .size = sizeof(struct t_journald)};

static const struct sl_conf_section *const t_source_kinds[] = {&t_tail_section, &t_journald_section,
                                                               NULL};

/* A cross-field rule, to exercise the check hook. */
static void t_source_check(void *obj, struct sl_conf_check *chk)
{
    struct t_source *s = obj;
    if (s->format == T_FMT_RAW && s->kind.section == &t_journald_section)
        sl_conf_check_error(chk, "format", "'format' raw is not available for journald");
}

static const struct sl_conf_opt t_source_opts[] = {
    {.name = "topic",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct t_source, topic),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 249,
     .help = "Topic"},
    {.name = "format",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct t_source, format),
     .def = "json",
     .enums = t_formats,
     .help = "Record value format"},
    {.name = "enabled",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct t_source, enabled),
     .def = "true",
     .help = "Read this source"},
    {.name = NULL},
};
static const struct sl_conf_section t_source_section = {
    .name = "source",
    .help = "A source of records",
    .opts = t_source_opts,
    .size = sizeof(struct t_source),
    .name_offset = offsetof(struct t_source, name),
    .variant_key = "type",
    .variants = t_source_kinds,
    .variant_offset = offsetof(struct t_source, kind),
    .check = t_source_check,
};

static const struct sl_conf_opt t_root_opts[] = {
    {.name = "host_name",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct t_conf, host_name),
     .help = "Overrides the host name"},
    {.name = "listen",
     .type = SL_CONF_HOSTPORT,
     .offset = offsetof(struct t_conf, listen),
     .def = "127.0.0.1",
     .port = 2020,
     .help = "Metrics address"},
    {.name = "log_level",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct t_conf, log_level),
     .def = "info",
     .enums = t_levels,
     .help = "Log level"},
    {.name = "workers",
     .type = SL_CONF_INT,
     .offset = offsetof(struct t_conf, workers),
     .def = "1",
     .min = 1,
     .max = 64,
     .help = "Worker threads"},
    {.name = "output",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct t_conf, output),
     .sub = &t_output_section,
     .help = "Output"},
    {.name = "sources",
     .type = SL_CONF_MAP,
     .offset = offsetof(struct t_conf, sources),
     .sub = &t_source_section,
     .help = "Sources by name"},
    {.name = NULL},
};
static const struct sl_conf_section t_root = {
    .name = "test agent", .opts = t_root_opts, .size = sizeof(struct t_conf)};

/* ---- helpers ---- */

static int load_str(struct t_conf *c, const char *yaml, struct sl_conf_errors *errs)
{
    memset(c, 0, sizeof(*c));
    return sl_conf_load_string(&t_root, c, "t.yaml", yaml, strlen(yaml), errs);
}

/* Loads yaml expecting failure, and returns the first error (a static copy). */
static const char *first_error(const char *yaml)
{
    static char buf[512];
    struct t_conf c;
    struct sl_conf_errors errs;
    int rc = load_str(&c, yaml, &errs);
    assert_int_equal(rc, SL_ECONFIG);
    assert_true(errs.count > 0);
    snprintf(buf, sizeof(buf), "%s", errs.items[0].text);
    /* A failed load leaves nothing allocated behind. */
    assert_null(c.host_name);
    assert_null(c.output.brokers.items);
    assert_null(c.sources.items);
    return buf;
}

static struct t_source *source(struct t_conf *c, size_t i)
{
    return SL_CONF_MAP_AT(&c->sources, struct t_source, i);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- value parsers ---- */

static void test_parse_bool(void **state)
{
    const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "ON"};
    const char *no[] = {"false", "False", "no", "NO", "off", "Off"};
    const char *bad[] = {"", "1", "0", "tru", "yes ", " no", "y", "n", "enable"};
    struct sl_err e;
    bool v;
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
        v = false;
        assert_int_equal(sl_conf_parse_bool(yes[i], &v, &e), 0);
        assert_true(v);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++) {
        v = true;
        assert_int_equal(sl_conf_parse_bool(no[i], &v, &e), 0);
        assert_false(v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(sl_conf_parse_bool(bad[i], &v, &e), SL_EPARSE);
    sl_conf_parse_bool("maybe", &v, &e);
    assert_string_equal(e.msg, "must be true or false (or yes/no, on/off) (got 'maybe')");
    assert_int_equal(sl_conf_parse_bool("maybe", &v, NULL), SL_EPARSE);
}

static void test_parse_int(void **state)
{
    struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"+7", 7},
        {"42", 42},
        {"007", 7},
        {"-5", -5},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        int64_t v = 12345;
        struct sl_err e;
        assert_int_equal(sl_conf_parse_int(ok[i].s, &v, &e), 0);
        assert_true(v == ok[i].v);
    }
    const char *bad[] = {"", "-", "+", "1x", "x1", " 5", "5 ", "1.0", "0x10", "1e3", "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int64_t v = 99;
        struct sl_err e;
        assert_int_equal(sl_conf_parse_int(bad[i], &v, &e), SL_EPARSE);
        assert_true(v == 99);
        assert_non_null(strstr(e.msg, "must be an integer"));
    }
    struct sl_err e;
    int64_t v;
    assert_int_equal(sl_conf_parse_int("9223372036854775808", &v, &e), SL_EPARSE);
    assert_string_equal(e.msg, "is out of range for a 64-bit integer (got '9223372036854775808')");
    assert_int_equal(sl_conf_parse_int("-9223372036854775809", &v, &e), SL_EPARSE);
    assert_int_equal(sl_conf_parse_int("99999999999999999999999", &v, &e), SL_EPARSE);
    assert_non_null(strstr(e.msg, "out of range"));
}

static void test_parse_size(void **state)
{
    struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"512", 512},
        {"1B", 1},
        {"4K", 4096},
        {"4k", 4096},
        {"4KiB", 4096},
        {"64MiB", 64 << 20},
        {"64M", 64 << 20},
        {"1GiB", INT64_C(1) << 30},
        {"1G", INT64_C(1) << 30},
        {"2TiB", INT64_C(2) << 40},
        {"1.5KiB", 1536},
        {"0.5MiB", 512 << 10},
        {"1.0000000000000000000000000KiB", 1024}, /* trailing zeros past 18 digits */
        {"0.0009765625KiB", 1},                   /* exact with 10 fraction digits */
        {"8388607TiB", INT64_C(8388607) << 40},
        {"9223372036854775807", INT64_MAX},
        {"9223372036854775807B", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        int64_t v = -1;
        struct sl_err e = {{0}};
        int rc = sl_conf_parse_size(ok[i].s, &v, &e);
        if (rc != 0 || v != ok[i].v)
            fail_msg("%s: rc %d v %" PRId64 " %s", ok[i].s, rc, v, e.msg);
    }
    struct {
        const char *s;
        const char *msg;
    } bad[] = {
        {"99999999999TiB", "is too large"},
        {"8388608TiB", "is too large"},
        {"9223372036854775808", "is too large"},
        {"9223372036854775808B", "is too large"},
        {"-1", "must not be negative"},
        {"-1KiB", "must not be negative"},
        {"0.5B", "must be a whole number of bytes"},
        {"0.5", "must be a whole number of bytes"},
        {"1.3KiB", "must be a whole number of bytes"},
        {"0.00000000000000000001KiB", "must be a whole number of bytes"},
        {"1GB", "ambiguous unit 'GB': write GiB"},
        {"1kB", "ambiguous unit 'kB': write KiB"},
        {"1mb", "ambiguous unit 'mb': write MiB"},
        {"12XB", "unknown unit 'XB'"},
        {"1 MiB", "unknown unit ' MiB'"},
        {"1mib", "unknown unit 'mib'"},
        {"1PiB", "unknown unit 'PiB'"},
        {"", "must be a size such as"},
        {"MiB", "must be a size such as"},
        {".5MiB", "must be a size such as"},
        {"1.MiB", "must be a size such as"},
        {"1..5K", "must be a size such as"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int64_t v = 77;
        struct sl_err e = {{0}};
        int rc = sl_conf_parse_size(bad[i].s, &v, &e);
        if (rc != SL_EPARSE || v != 77 || !strstr(e.msg, bad[i].msg))
            fail_msg("%s: rc %d msg '%s', want '%s'", bad[i].s, rc, e.msg, bad[i].msg);
        /* Every message shows what it got. */
        char got[128];
        snprintf(got, sizeof(got), "(got '%s')", bad[i].s);
        assert_non_null(strstr(e.msg, got));
    }
}

static void test_parse_duration(void **state)
{
    struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"0ms", 0},
        {"0s", 0},
        {"1ms", 1},
        {"500ms", 500},
        {"5s", 5000},
        {"1m", 60000},
        {"2h", 7200000},
        {"7d", INT64_C(7) * 86400000},
        {"1w", INT64_C(7) * 86400000},
        {"1h30m", 5400000},
        {"1w2d3h4m5s6ms", INT64_C(9) * 86400000 + 3 * 3600000 + 4 * 60000 + 5006},
        {"1.5s", 1500},
        {"0.5m", 30000},
        {"1.5h", 5400000},
        {"0.001s", 1},
        {"9223372036854775807ms", INT64_MAX},
        {"15250284452w", INT64_C(15250284452) * 604800000},
        {"9223372036854775s807ms", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        int64_t v = -1;
        struct sl_err e = {{0}};
        int rc = sl_conf_parse_duration(ok[i].s, &v, &e);
        if (rc != 0 || v != ok[i].v)
            fail_msg("%s: rc %d v %" PRId64 " %s", ok[i].s, rc, v, e.msg);
    }
    struct {
        const char *s;
        const char *msg;
    } bad[] = {
        {"5", "needs a unit: ms, s, m, h, d or w"},
        {"1.5", "needs a unit"},
        {"00", "needs a unit"},
        {"-1s", "must not be negative"},
        {"0.5ms", "must be a whole number of milliseconds"},
        {"0.0001s", "must be a whole number of milliseconds"},
        {"1m1h", "from largest to smallest"},
        {"1s1s", "from largest to smallest"},
        {"1x", "unknown unit 'x'"},
        {"1sec", "unknown unit 'sec'"},
        {"1S", "unknown unit 'S'"},
        {"9223372036854775808ms", "is too large"},
        {"99999999999999999w", "is too large"},
        {"15250284453w", "is too large"},
        {"9223372036854775s808ms", "is too large"}, /* each group fits, the sum does not */
        {"", "must be a duration such as"},
        {"ms", "must be a duration such as"},
        {"1h 30m", "must be a duration such as"},
        {"1h-30m", "must be a duration such as"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int64_t v = 77;
        struct sl_err e = {{0}};
        int rc = sl_conf_parse_duration(bad[i].s, &v, &e);
        if (rc != SL_EPARSE || v != 77 || !strstr(e.msg, bad[i].msg))
            fail_msg("%s: rc %d msg '%s', want '%s'", bad[i].s, rc, e.msg, bad[i].msg);
    }
}

static void test_parse_enum(void **state)
{
    int v = 5;
    struct sl_err e;
    assert_int_equal(sl_conf_parse_enum("all", t_acks, &v, &e), 0);
    assert_int_equal(v, T_ACKS_ALL);
    assert_int_equal(sl_conf_parse_enum("0", t_acks, &v, &e), 0);
    assert_int_equal(v, T_ACKS_NONE);
    assert_int_equal(sl_conf_parse_enum("ALL", t_acks, &v, &e), SL_EPARSE);
    assert_string_equal(e.msg, "must be one of 0, 1, all (got 'ALL')");
    assert_int_equal(sl_conf_parse_enum("", t_acks, &v, &e), SL_EPARSE);
    assert_int_equal(v, T_ACKS_NONE);
}

static void test_parse_hostport(void **state)
{
    struct {
        const char *s;
        int def;
        const char *host;
        int port;
    } ok[] = {
        {"localhost:9092", 0, "localhost", 9092},
        {"127.0.0.1:0", 0, "127.0.0.1", 0},
        {"h:65535", 0, "h", 65535},
        {"[::1]:9092", 0, "::1", 9092},
        {"[::]:1", 0, "::", 1},
        {"[fe80::1%eth0]:7", 0, "fe80::1%eth0", 7},
        {"broker-1.example.com", 9092, "broker-1.example.com", 9092},
        {"[::1]", 9093, "::1", 9093},
        {"h:00080", 0, "h", 80},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        char host[SL_CONF_HOST_MAX + 1];
        uint16_t port = 1;
        struct sl_err e = {{0}};
        int rc = sl_conf_parse_hostport(ok[i].s, ok[i].def, host, sizeof(host), &port, &e);
        if (rc != 0 || strcmp(host, ok[i].host) != 0 || port != ok[i].port)
            fail_msg("%s: rc %d host %s port %u %s", ok[i].s, rc, host, port, e.msg);
    }
    char long_host[300];
    memset(long_host, 'a', 254);
    strcpy(long_host + 254, ":1");
    char max_host[300];
    memset(max_host, 'a', 253);
    strcpy(max_host + 253, ":1");
    struct {
        const char *s;
        int def;
        const char *msg;
    } bad[] = {
        {"localhost", 0, "needs a port"},
        {"[::1]", 0, "needs a port"},
        {"::1:9092", 0, "needs brackets around an IPv6 address"},
        {"::1", 9092, "needs brackets"},
        {"[::1", 0, "with an IPv6 address in brackets"},
        {"[::1]9092", 0, "with an IPv6 address in brackets"},
        {"[zz::1]:1", 0, "invalid IPv6 address"},
        {"[]:1", 0, "invalid IPv6 address"},
        {"[1.2.3.4]:1", 0, "invalid IPv6 address"},
        {"host:", 0, "needs a port after ':'"},
        {"host:65536", 0, "port from 0 to 65535"},
        {"host:-1", 0, "port from 0 to 65535"},
        {"host:99999999999999999999999", 0, "port from 0 to 65535"},
        {"host:80x", 0, "port from 0 to 65535"},
        {":9092", 0, "must be host:port"},
        {"", 9092, "must be host:port"},
        {"a b:1", 0, "invalid host name"},
        {"a/b:1", 0, "invalid host name"},
        {long_host, 0, "invalid host name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char host[SL_CONF_HOST_MAX + 1];
        uint16_t port = 1;
        struct sl_err e = {{0}};
        int rc = sl_conf_parse_hostport(bad[i].s, bad[i].def, host, sizeof(host), &port, &e);
        if (rc != SL_EPARSE || !strstr(e.msg, bad[i].msg))
            fail_msg("%s: rc %d msg '%s', want '%s'", bad[i].s, rc, e.msg, bad[i].msg);
        assert_int_equal(port, 1);
    }
    /* The longest legal name fits exactly; a smaller buffer is refused, not overrun. */
    char host[SL_CONF_HOST_MAX + 1];
    uint16_t port;
    struct sl_err e;
    assert_int_equal(sl_conf_parse_hostport(max_host, 0, host, sizeof(host), &port, &e), 0);
    assert_int_equal(strlen(host), 253);
    char small[4];
    assert_int_equal(sl_conf_parse_hostport("abcd:1", 0, small, sizeof(small), &port, &e),
                     SL_EPARSE);
    assert_int_equal(sl_conf_parse_hostport("abc:1", 0, small, sizeof(small), &port, &e), 0);
    assert_string_equal(small, "abc");
}

static void test_format_round_trips(void **state)
{
    char buf[32];
    sl_conf_format_size(64 << 20, buf, sizeof(buf));
    assert_string_equal(buf, "64MiB");
    sl_conf_format_size(1000, buf, sizeof(buf));
    assert_string_equal(buf, "1000B");
    sl_conf_format_size(0, buf, sizeof(buf));
    assert_string_equal(buf, "0B");
    sl_conf_format_size(INT64_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "9223372036854775807B");
    sl_conf_format_duration(5400000, buf, sizeof(buf));
    assert_string_equal(buf, "1h30m");
    sl_conf_format_duration(0, buf, sizeof(buf));
    assert_string_equal(buf, "0");
    sl_conf_format_duration(1500, buf, sizeof(buf));
    assert_string_equal(buf, "1s500ms");
    const int64_t sizes[] = {0, 1, 1023, 1024, 1025, 3 << 20, INT64_C(5) << 40, INT64_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        int64_t v;
        sl_conf_format_size(sizes[i], buf, sizeof(buf));
        assert_int_equal(sl_conf_parse_size(buf, &v, NULL), 0);
        assert_true(v == sizes[i]);
    }
    const int64_t durs[] = {0,        1, 999, 1000, 61001, 86400000, INT64_C(604800000) * 3 + 7,
                            INT64_MAX};
    for (size_t i = 0; i < sizeof(durs) / sizeof(*durs); i++) {
        int64_t v;
        sl_conf_format_duration(durs[i], buf, sizeof(buf));
        assert_int_equal(sl_conf_parse_duration(buf, &v, NULL), 0);
        assert_true(v == durs[i]);
    }
}

/* ---- loading ---- */

static const char full_yaml[] = "host_name: web-1\n"
                                "listen: '[::1]:9100'\n"
                                "log_level: debug\n"
                                "workers: 64\n"
                                "output:\n"
                                "  brokers: [a:1, '[::1]', b]\n"
                                "  acks: 1\n"
                                "  batch_bytes: 64MiB\n"
                                "  linger: 1m\n"
                                "  retries: 0\n"
                                "  client_id: \"x y\"\n"
                                "  tls: {enabled: on, ca_file: /etc/ca.pem}\n"
                                "sources:\n"
                                "  nginx:\n"
                                "    type: tail\n"
                                "    topic: web\n"
                                "    paths: [/var/log/nginx/*.log, /var/log/b.log]\n"
                                "    from_start: yes\n"
                                "    format: raw\n"
                                "  journal:\n"
                                "    type: journald\n"
                                "    topic: sys\n"
                                "    units: [ssh.service]\n"
                                "    enabled: false\n";

static void test_load_every_type(void **state)
{
    struct t_conf c;
    struct sl_conf_errors errs;
    int rc = load_str(&c, full_yaml, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    assert_string_equal(c.host_name, "web-1");
    assert_string_equal(c.listen.host, "::1");
    assert_int_equal(c.listen.port, 9100);
    assert_int_equal(c.log_level, T_LOG_DEBUG);
    assert_true(c.workers == 64);
    assert_int_equal(c.output.brokers.len, 3);
    assert_string_equal(c.output.brokers.items[0].host, "a");
    assert_int_equal(c.output.brokers.items[0].port, 1);
    assert_string_equal(c.output.brokers.items[1].host, "::1");
    assert_int_equal(c.output.brokers.items[1].port, 9092);
    assert_string_equal(c.output.brokers.items[2].host, "b");
    assert_int_equal(c.output.acks, T_ACKS_LEADER);
    assert_true(c.output.batch_bytes == 64 << 20);
    assert_true(c.output.linger_ms == 60000);
    assert_true(c.output.retries == 0);
    assert_string_equal(c.output.client_id, "x y");
    assert_true(c.output.tls.enabled);
    assert_string_equal(c.output.tls.ca_file, "/etc/ca.pem");

    assert_int_equal(c.sources.len, 2);
    struct t_source *s = source(&c, 0);
    assert_string_equal(s->name, "nginx");
    assert_ptr_equal(s->kind.section, &t_tail_section);
    assert_string_equal(s->topic, "web");
    assert_int_equal(s->format, T_FMT_RAW);
    assert_true(s->enabled);
    struct t_tail *tail = s->kind.conf;
    assert_int_equal(tail->paths.len, 2);
    assert_string_equal(tail->paths.items[0], "/var/log/nginx/*.log");
    assert_string_equal(tail->paths.items[1], "/var/log/b.log");
    assert_true(tail->from_start);
    assert_true(tail->read_buffer == 64 << 10);
    s = source(&c, 1);
    assert_string_equal(s->name, "journal");
    assert_ptr_equal(s->kind.section, &t_journald_section);
    assert_false(s->enabled);
    assert_int_equal(s->format, T_FMT_JSON);
    struct t_journald *j = s->kind.conf;
    assert_int_equal(j->units.len, 1);
    assert_string_equal(j->units.items[0], "ssh.service");
    assert_string_equal(j->cursor_dir, "/var/lib/t");

    sl_conf_free(&t_root, &c);
    assert_null(c.host_name);
    assert_null(c.listen.host);
    assert_null(c.output.brokers.items);
    assert_int_equal(c.output.brokers.len, 0);
    assert_null(c.output.client_id);
    assert_null(c.output.tls.ca_file);
    assert_null(c.sources.items);
    assert_int_equal(c.sources.len, 0);
    sl_conf_free(&t_root, &c); /* twice is harmless */
    sl_conf_free(&t_root, NULL);
}

static void test_defaults(void **state)
{
    /* Empty text, comments only, and an explicit empty document all mean "all defaults". */
    const char *empties[] = {"", "# nothing\n", "---\n", "~\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(*empties); i++) {
        struct t_conf c;
        struct sl_conf_errors errs;
        assert_int_equal(load_str(&c, empties[i], &errs), 0);
        assert_null(c.host_name);
        assert_string_equal(c.listen.host, "127.0.0.1");
        assert_int_equal(c.listen.port, 2020);
        assert_int_equal(c.log_level, T_LOG_INFO);
        assert_true(c.workers == 1);
        assert_int_equal(c.output.brokers.len, 1);
        assert_string_equal(c.output.brokers.items[0].host, "localhost");
        assert_int_equal(c.output.brokers.items[0].port, 9092);
        assert_int_equal(c.output.acks, T_ACKS_ALL);
        assert_true(c.output.batch_bytes == 1 << 20);
        assert_true(c.output.linger_ms == 5);
        assert_true(c.output.retries == 3);
        assert_string_equal(c.output.client_id, "sluice");
        assert_false(c.output.tls.enabled);
        assert_null(c.output.tls.ca_file);
        assert_int_equal(c.sources.len, 0);
        sl_conf_free(&t_root, &c);
    }
    /* Null means "not set": the default comes back, and a null source does not exist. */
    struct t_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(
        load_str(&c, "workers: ~\noutput: {acks: null, tls: }\nsources: {a: ~}\n", &errs), 0);
    assert_true(c.workers == 1);
    assert_int_equal(c.output.acks, T_ACKS_ALL);
    assert_int_equal(c.sources.len, 0);
    sl_conf_free(&t_root, &c);
    /* Quoted "null" is a string, not null. */
    assert_int_equal(load_str(&c, "host_name: 'null'\n", &errs), 0);
    assert_string_equal(c.host_name, "null");
    sl_conf_free(&t_root, &c);
    assert_int_equal(load_str(&c, "host_name: ''\n", &errs), 0);
    assert_string_equal(c.host_name, "");
    sl_conf_free(&t_root, &c);
}

static void test_table_check(void **state)
{
    struct sl_conf_errors errs;
    int rc = sl_conf_table_check(&t_root, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);

    /* A table with one mistake of each kind: each is reported. */
    struct bad {
        int64_t a, b, c, d, e;
        char *f;
        int g;
    };
    static const struct sl_conf_enum dup_enum[] = {{"x", 1}, {"x", 2}, {NULL, 0}};
    static const struct sl_conf_opt bad_opts[] = {
        {.name = "a",
         .type = SL_CONF_SIZE,
         .offset = offsetof(struct bad, a),
         .def = "12XB",
         .help = "h"},
        {.name = "b",
         .type = SL_CONF_INT,
         .offset = offsetof(struct bad, b),
         .def = "200",
         .min = 0,
         .max = 100,
         .help = "h"},
        {.name = "c",
         .type = SL_CONF_INT,
         .offset = offsetof(struct bad, c),
         .def = "1",
         .flags = SL_CONF_REQUIRED,
         .help = "h"},
        {.name = "d",
         .type = SL_CONF_INT,
         .offset = offsetof(struct bad, d),
         .min = 5,
         .max = 1,
         .help = "h"},
        {.name = "e",
         .type = SL_CONF_DURATION,
         .offset = offsetof(struct bad, e),
         .def = "5",
         .help = ""},
        {.name = "f", .type = SL_CONF_STRING, .offset = sizeof(struct bad), .help = "h"},
        {.name = "g",
         .type = SL_CONF_ENUM,
         .offset = offsetof(struct bad, g),
         .enums = dup_enum,
         .help = "h"},
        {.name = "a", .type = SL_CONF_BOOL, .offset = 0, .help = "h"},
        {.name = "Bad-Name", .type = SL_CONF_BOOL, .offset = 0, .help = "h"},
        {.name = NULL},
    };
    static const struct sl_conf_section bad_section = {.opts = bad_opts,
                                                       .size = sizeof(struct bad)};
    assert_int_equal(sl_conf_table_check(&bad_section, &errs), SL_ECONFIG);
    const char *want[] = {
        "default of 'a' has an unknown unit 'XB'",
        "default of 'b' must be between 0 and 100 (got '200')",
        "c: required, yet has a default",
        "d: min 5 is above max 1",
        "e: no help text",
        "default of 'e' needs a unit",
        "f: offset",
        "g: enum name 'x' twice",
        "option 'a' twice",
        "option name 'Bad-Name' is not lower_snake",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        bool found = false;
        for (int k = 0; k < errs.count; k++)
            found |= strstr(errs.items[k].text, want[i]) != NULL;
        if (!found) {
            sl_conf_errors_print(&errs, stderr);
            fail_msg("missing table error: %s", want[i]);
        }
    }
}

static void test_errors_point_at_values(void **state)
{
    assert_string_equal(first_error("output:\n  acks: yes\n"),
                        "t.yaml:2:9: output: 'acks' must be one of 0, 1, all (got 'yes')");
    assert_string_equal(first_error("output:\n  tls:\n    enabled: maybe\n"),
                        "t.yaml:3:14: output.tls: 'enabled' must be true or false (or yes/no, "
                        "on/off) (got 'maybe')");
    assert_string_equal(first_error("workers: 0\n"),
                        "t.yaml:1:10: 'workers' must be between 1 and 64 (got '0')");
    assert_string_equal(first_error("output: {batch_bytes: 1GiB}\n"),
                        "t.yaml:1:23: output: 'batch_bytes' must be between 1KiB and 64MiB "
                        "(got '1GiB')");
    assert_string_equal(first_error("output: {linger: 2m}\n"),
                        "t.yaml:1:18: output: 'linger' must be at most 1m (got '2m')");
    assert_string_equal(first_error("sources: {a: {type: tail, topic: t, paths: [x], "
                                    "read_buffer: 1K}}\n"),
                        "t.yaml:1:62: source 'a': 'read_buffer' must be at least 4KiB (got '1K')");
    assert_string_equal(first_error("output: {client_id: abcdefghijklmnopq}\n"),
                        "t.yaml:1:21: output: 'client_id' must be 1 to 16 bytes long (got "
                        "'abcdefghijklmnopq', 17 bytes)");
    assert_string_equal(first_error("output: {brokers: []}\n"),
                        "t.yaml:1:19: output: 'brokers' must have 1 to 16 items (got 0)");
    assert_string_equal(first_error("output: {brokers: [a, 'b:x']}\n"),
                        "t.yaml:1:23: output: 'brokers' item 2 must have a port from 0 to 65535 "
                        "(got 'b:x')");
    assert_string_equal(first_error("output: {brokers: [a, [b]]}\n"),
                        "t.yaml:1:23: output: 'brokers' item 2 must be host:port (got a "
                        "sequence)");
    assert_string_equal(first_error("host_name: {a: 1}\n"),
                        "t.yaml:1:12: 'host_name' must be a string (got a mapping)");
    assert_string_equal(first_error("output: [1]\n"),
                        "t.yaml:1:9: 'output' must be a mapping of options (got a sequence)");
    assert_string_equal(first_error("sources: [1]\n"),
                        "t.yaml:1:10: 'sources' must be a mapping of names to source sections "
                        "(got a sequence)");
    assert_string_equal(first_error("sources: {a: 5}\n"),
                        "t.yaml:1:14: source 'a': must be a mapping of options (got '5')");
    assert_string_equal(first_error("host_name: \"a\\0b\"\n"),
                        "t.yaml:1:12: NUL characters are not allowed in values");
    /* Structural YAML problems come first, then the options' problems. */
    struct t_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load_str(&c, "a: 1\n? [x]\n: 2\n", &errs), SL_ECONFIG);
    assert_int_equal(errs.count, 2);
    assert_string_equal(errs.items[0].text, "t.yaml:2:3: mapping keys must be scalars (got a "
                                            "sequence)");
    assert_string_equal(errs.items[1].text,
                        "t.yaml:1:1: unknown option 'a' (allowed: host_name, listen, log_level, "
                        "workers, output, sources)");
}

static void test_unknown_keys_and_variants(void **state)
{
    assert_string_equal(first_error("outptu: {}\n"),
                        "t.yaml:1:1: unknown option 'outptu'; did you mean 'output'?");
    assert_string_equal(first_error("sources:\n  n:\n    type: tail\n    topic: t\n"
                                    "    pathh: [x]\n"),
                        "t.yaml:5:5: source 'n': unknown option 'pathh'; did you mean 'paths'?");
    /* An option of the other variant is unknown here. */
    assert_string_equal(first_error("sources:\n  n: {type: tail, topic: t, paths: [x], "
                                    "units: [a]}\n"),
                        "t.yaml:2:41: source 'n': unknown option 'units' (allowed: type, topic, "
                        "format, enabled, paths, from_start, read_buffer)");
    assert_string_equal(first_error("sources:\n  n: {type: tial, topic: t}\n"),
                        "t.yaml:2:13: source 'n': 'type' must be one of tail, journald (got "
                        "'tial')");
    assert_string_equal(first_error("sources:\n  n: {topic: t}\n"),
                        "t.yaml:2:3: source 'n': missing required option 'type' (one of tail, "
                        "journald)");
    assert_string_equal(first_error("sources:\n  n: {type: tail, topic: t}\n"),
                        "t.yaml:2:3: source 'n': missing required option 'paths'");
    assert_string_equal(first_error("sources:\n  n: {type: journald}\n"),
                        "t.yaml:2:3: source 'n': missing required option 'topic'");
    assert_string_equal(first_error("sources:\n  'a b': {type: journald, topic: t}\n"),
                        "t.yaml:2:3: source name 'a b' must be 1 to 249 letters, digits, '_', '-' "
                        "or '.'");
    /* The check hook runs only on a clean section and points at the option it names. */
    assert_string_equal(first_error("sources:\n  j:\n    type: journald\n    topic: t\n"
                                    "    format: raw\n"),
                        "t.yaml:5:13: source 'j': 'format' raw is not available for journald");
    /* With an unknown type, other keys are not judged (they could be that type's). */
    struct t_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load_str(&c, "sources: {n: {type: x, topic: t, whatever: 1}}\n", &errs),
                     SL_ECONFIG);
    assert_int_equal(errs.count, 1);
}

static void test_yaml_errors(void **state)
{
    const char *e = first_error("a: 1\na: 2\n");
    assert_string_equal(e, "t.yaml:2:1: duplicate key 'a' (first at line 1)");
    e = first_error("output:\n  acks: 1\n  acks: 0\n");
    assert_string_equal(e, "t.yaml:3:3: duplicate key 'acks' (first at line 2)");
    e = first_error("a: [1, 2\n");
    assert_non_null(strstr(e, "t.yaml:2:1: invalid YAML: "));
    e = first_error("a: 1\n---\nb: 2\n");
    assert_string_equal(e, "t.yaml:2:1: only one YAML document per file is allowed");
    e = first_error("- a\n- b\n");
    assert_string_equal(e, "t.yaml:1:1: the top level must be a mapping of options (got a "
                           "sequence)");
    /* Text must be UTF-8 (libfyaml 0.7 hangs on some invalid bytes). */
    e = first_error("d: 1\n%YAML\xb3"
                    "1.1\n");
    assert_string_equal(e, "t.yaml:2:6: invalid UTF-8 (byte 0xb3)");
    e = first_error("host_name: \xc0\xaf\n"); /* overlong '/' */
    assert_string_equal(e, "t.yaml:1:12: invalid UTF-8 (byte 0xc0)");
    e = first_error("host_name: \xed\xa0\x80\n"); /* a surrogate */
    assert_string_equal(e, "t.yaml:1:12: invalid UTF-8 (byte 0xed)");
    e = first_error("host_name: \xe2\x82\n"); /* cut short */
    assert_string_equal(e, "t.yaml:1:12: invalid UTF-8 (byte 0xe2)");
    struct t_conf c = {0};
    struct sl_conf_errors errs;
    assert_int_equal(sl_conf_load_string(&t_root, &c, "t.yaml", "workers: 1\0\n", 12, &errs),
                     SL_ECONFIG);
    assert_string_equal(errs.items[0].text, "t.yaml:1:11: control character U+0000");
    /* Tabs and control characters are refused before libfyaml sees them (some of its error
     * paths for misplaced tabs crash). */
    e = first_error("? t:\t|");
    assert_string_equal(e, "t.yaml:1:5: tab character; indent and separate with spaces (write "
                           "\\t in double quotes for a tab)");
    e = first_error("workers: 1\nhost_name: a\x1b[0m\n");
    assert_string_equal(e, "t.yaml:2:13: control character U+001B");
    e = first_error("host_name: \xc2\x85\n");
    assert_string_equal(e, "t.yaml:1:12: control character U+0085");
    assert_int_equal(load_str(&c, "host_name: \xe2\x82\xac\xf0\x9f\x98\x80\n", &errs), 0);
    assert_string_equal(c.host_name, "\xe2\x82\xac\xf0\x9f\x98\x80");
    sl_conf_free(&t_root, &c);
    e = first_error("host_name: *nope\n");
    assert_string_equal(e, "t.yaml:1:12: unknown alias '*nope'");
    /* Deep nesting and alias bombs stop with an error, not a crash or a hang. */
    char deep[400];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    char doc[500];
    snprintf(doc, sizeof(doc), "a: %s\n", deep);
    e = first_error(doc);
    assert_non_null(strstr(e, "nesting deeper than 64 levels"));
    e = first_error("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n");
    assert_non_null(strstr(e, "too many YAML nodes"));
    /* Keys per mapping are bounded (duplicates are found by comparing keys pairwise). */
    static char wide[40000];
    size_t o = (size_t)snprintf(wide, sizeof(wide), "a:\n");
    for (int i = 0; i <= 2000; i++)
        o += (size_t)snprintf(wide + o, sizeof(wide) - o, "  k%d: 1\n", i);
    e = first_error(wide);
    assert_string_equal(e, "t.yaml:2002:3: too many keys in one mapping (over 2000)");
}

static void test_quoted_scalars(void **state)
{
    /* Single-quoted text is unescaped by us (libfyaml 0.7 gets adjacent '' wrong): each pair
     * of quotes is one quote, and line breaks fold as YAML says. */
    struct {
        const char *yaml;
        const char *want;
    } cases[] = {
        {"host_name: 'it''s'\n", "it's"},
        {"host_name: 'x''''y'\n", "x''y"},
        {"host_name: ''''''''''''\n", "'''''"},
        {"host_name: ''\n", ""},
        {"host_name: 'a  \n   b\n\n  c '\n", "a b\nc "},
        {"host_name: 'a\n  '\n", "a "},
        {"host_name: 'a\r\n  b'\n", "a b"},
        {"host_name: \"x\\\\y\\ty\"\n", "x\\y\ty"},
        {"host_name: \"a\n  b\"\n", "a b"},
        {"host_name: |\n  l1\n  l2\n", "l1\nl2\n"},
        {"host_name: >-\n  f1\n  f2\n", "f1 f2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct t_conf c;
        struct sl_conf_errors errs;
        int rc = load_str(&c, cases[i].yaml, &errs);
        if (rc != 0 || strcmp(c.host_name, cases[i].want) != 0)
            fail_msg("%s: rc %d got [%s]", cases[i].yaml, rc,
                     rc ? errs.items[0].text : c.host_name);
        sl_conf_free(&t_root, &c);
    }
}

static void test_aliases(void **state)
{
    struct t_conf c;
    struct sl_conf_errors errs;
    int rc = load_str(&c,
                      "output: {brokers: &b [x:1, y:2]}\n"
                      "sources:\n"
                      "  a: &src {type: tail, topic: t, paths: *b}\n"
                      "  b: *src\n",
                      &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(c.sources.len, 2);
    struct t_tail *t = source(&c, 1)->kind.conf;
    assert_string_equal(source(&c, 1)->name, "b");
    assert_int_equal(t->paths.len, 2);
    assert_string_equal(t->paths.items[1], "y:2");
    sl_conf_free(&t_root, &c);
    /* An anchor on a key: the alias is the key's text (and a duplicate when used as a key). */
    rc = load_str(&c, "&k host_name: a\noutput: {client_id: *k}\n", &errs);
    assert_int_equal(rc, 0);
    assert_string_equal(c.output.client_id, "host_name");
    sl_conf_free(&t_root, &c);
    assert_string_equal(first_error("&k workers: 2\n*k : 3\n"),
                        "t.yaml:2:1: duplicate key 'workers' (first at line 1)");
}

static void test_error_limit(void **state)
{
    char yaml[2000];
    size_t o = 0;
    for (int i = 0; i < 25; i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "bad%d: 1\n", i);
    struct t_conf c;
    struct sl_conf_errors errs;
    assert_int_equal(load_str(&c, yaml, &errs), SL_ECONFIG);
    assert_int_equal(errs.count, SL_CONF_MAX_ERRORS);
    assert_int_equal(errs.dropped, 5);
    assert_non_null(strstr(errs.items[19].text, "t.yaml:20:1: unknown option 'bad19'"));
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    assert_non_null(m);
    sl_conf_errors_print(&errs, m);
    fclose(m);
    assert_non_null(strstr(out, "\n(5 more errors not shown)\n"));
    free(out);
}

/* A temp dir with agent.yaml and agent.d/ for merging tests. */
static char *make_tree(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/test_conf.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_dropins_merge(void **state)
{
    char dir[64], p[256];
    make_tree(dir, sizeof(dir));
    snprintf(p, sizeof(p), "%s/agent.yaml", dir);
    write_file(p, "workers: 4\n"
                  "output:\n"
                  "  brokers: [a, b]\n"
                  "  retries: 5\n"
                  "  tls: {enabled: true, ca_file: /x}\n"
                  "sources:\n"
                  "  nginx: {type: tail, topic: web, paths: [/a]}\n"
                  "  syslog: {type: tail, topic: sys, paths: [/var/log/syslog]}\n"
                  "  old: {type: journald, topic: j}\n");
    snprintf(p, sizeof(p), "%s/agent.d", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    /* Sorted by name: 20 wins over 10; hidden and non-.yaml files are ignored. */
    snprintf(p, sizeof(p), "%s/agent.d/20-nginx.yaml", dir);
    write_file(p, "workers: 8\n"
                  "sources:\n"
                  "  nginx: {paths: [/b, /c]}\n"
                  "  old: ~\n");
    snprintf(p, sizeof(p), "%s/agent.d/10-base.yaml", dir);
    write_file(p, "workers: 6\n"
                  "output: {brokers: [c], tls: {ca_file: /y}, retries: ~}\n"
                  "sources:\n"
                  "  app: {type: journald, topic: app}\n"
                  "  nginx: {topic: nginx}\n");
    snprintf(p, sizeof(p), "%s/agent.d/.hidden.yaml", dir);
    write_file(p, "not: [valid\n");
    snprintf(p, sizeof(p), "%s/agent.d/30-x.yaml.disabled", dir);
    write_file(p, "not: [valid\n");

    struct t_conf c = {0};
    struct sl_conf_errors errs;
    snprintf(p, sizeof(p), "%s/agent.yaml", dir);
    int rc = sl_conf_load_file(&t_root, &c, p, &errs);
    if (rc)
        sl_conf_errors_print(&errs, stderr);
    assert_int_equal(rc, 0);
    assert_true(c.workers == 8);
    assert_int_equal(c.output.brokers.len, 1); /* sequences replace */
    assert_string_equal(c.output.brokers.items[0].host, "c");
    assert_true(c.output.retries == 3); /* null restored the default */
    assert_true(c.output.tls.enabled);  /* mappings merge key by key */
    assert_string_equal(c.output.tls.ca_file, "/y");
    /* Order: the main file's entries, then new ones; "old" removed by null. */
    assert_int_equal(c.sources.len, 3);
    assert_string_equal(source(&c, 0)->name, "nginx");
    assert_string_equal(source(&c, 1)->name, "syslog");
    assert_string_equal(source(&c, 2)->name, "app");
    struct t_source *ng = source(&c, 0);
    assert_string_equal(ng->topic, "nginx");
    struct t_tail *t = ng->kind.conf;
    assert_int_equal(t->paths.len, 2);
    assert_string_equal(t->paths.items[0], "/b");
    sl_conf_free(&t_root, &c);

    /* An error in a drop-in names the drop-in; several files' errors are all reported. */
    snprintf(p, sizeof(p), "%s/agent.d/20-nginx.yaml", dir);
    write_file(p, "sources:\n  nginx:\n    pathh: [x]\n");
    snprintf(p, sizeof(p), "%s/agent.d/40-bad.yaml", dir);
    write_file(p, "output: {acks: yes}\n");
    snprintf(p, sizeof(p), "%s/agent.yaml", dir);
    assert_int_equal(sl_conf_load_file(&t_root, &c, p, &errs), SL_ECONFIG);
    assert_int_equal(errs.count, 2);
    char want[400];
    snprintf(want, sizeof(want),
             "%s/agent.d/40-bad.yaml:1:16: output: 'acks' must be one of 0, "
             "1, all (got 'yes')",
             dir);
    assert_string_equal(errs.items[0].text, want);
    snprintf(want, sizeof(want),
             "%s/agent.d/20-nginx.yaml:3:5: source 'nginx': unknown option "
             "'pathh'; did you mean 'paths'?",
             dir);
    assert_string_equal(errs.items[1].text, want);

    /* A name without .yaml gets ".d" appended. */
    snprintf(p, sizeof(p), "%s/plain.conf", dir);
    write_file(p, "workers: 2\n");
    snprintf(p, sizeof(p), "%s/plain.conf.d", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/plain.conf.d/a.yaml", dir);
    write_file(p, "workers: 3\n");
    snprintf(p, sizeof(p), "%s/plain.conf", dir);
    assert_int_equal(sl_conf_load_file(&t_root, &c, p, &errs), 0);
    assert_true(c.workers == 3);
    sl_conf_free(&t_root, &c);

    /* An empty drop-in folder, or one without *.yaml files, adds nothing. */
    snprintf(p, sizeof(p), "%s/empty.yaml", dir);
    write_file(p, "workers: 5\n");
    snprintf(p, sizeof(p), "%s/empty.d", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/empty.yaml", dir);
    assert_int_equal(sl_conf_load_file(&t_root, &c, p, &errs), 0);
    assert_true(c.workers == 5);
    sl_conf_free(&t_root, &c);
    snprintf(p, sizeof(p), "%s/empty.d/README", dir);
    write_file(p, "workers: [\n");
    snprintf(p, sizeof(p), "%s/empty.yaml", dir);
    assert_int_equal(sl_conf_load_file(&t_root, &c, p, &errs), 0);
    sl_conf_free(&t_root, &c);
    /* A file where the folder should be is reported. */
    snprintf(p, sizeof(p), "%s/clash.yaml", dir);
    write_file(p, "workers: 5\n");
    snprintf(p, sizeof(p), "%s/clash.d", dir);
    write_file(p, "x\n");
    snprintf(p, sizeof(p), "%s/clash.yaml", dir);
    assert_int_equal(sl_conf_load_file(&t_root, &c, p, &errs), SL_ECONFIG);
    snprintf(want, sizeof(want), "%s/clash.d: cannot open drop-in folder: Not a directory", dir);
    assert_string_equal(errs.items[0].text, want);

    /* Layers: embedded defaults, then a file without drop-ins. */
    snprintf(p, sizeof(p), "%s/plain.conf", dir);
    static const char embedded[] = "workers: 9\nhost_name: emb\n";
    struct sl_conf_source layers[] = {
        {.name = "(built-in)", .text = embedded, .len = sizeof(embedded) - 1},
        {.name = p},
    };
    assert_int_equal(sl_conf_load(&t_root, &c, layers, 2, &errs), 0);
    assert_true(c.workers == 2);
    assert_string_equal(c.host_name, "emb");
    sl_conf_free(&t_root, &c);

    /* A missing main file, and a missing drop-in folder (fine). */
    snprintf(p, sizeof(p), "%s/none.yaml", dir);
    assert_int_equal(sl_conf_load_file(&t_root, &c, p, &errs), SL_ECONFIG);
    snprintf(want, sizeof(want), "%s/none.yaml: cannot open: No such file or directory", dir);
    assert_string_equal(errs.items[0].text, want);
    rm_tree(dir);
}

/* The allocation-failure sweep of a whole load: each failure point gives -ENOMEM, leaves dst
 * released and leaks nothing (ASan checks the last part). */
static void test_allocation_failure_sweep(void **state)
{
    for (int sticky = 0; sticky <= 1; sticky++) {
        long n;
        for (n = 0; n < 5000; n++) {
            struct t_conf c;
            struct sl_conf_errors errs;
            memset(&c, 0, sizeof(c));
            sl_mem_fail_after(n, sticky);
            int rc =
                sl_conf_load_string(&t_root, &c, "t.yaml", full_yaml, strlen(full_yaml), &errs);
            long failed = sl_mem_failures();
            sl_mem_fail_after(-1, 0);
            if (!failed) {
                assert_int_equal(rc, 0);
                assert_int_equal(c.sources.len, 2);
                sl_conf_free(&t_root, &c);
                break;
            }
            assert_int_equal(rc, -ENOMEM);
            assert_non_null(strstr(errs.items[errs.count - 1].text, "out of memory"));
            assert_null(c.host_name);
            assert_null(c.output.brokers.items);
            assert_null(c.sources.items);
            sl_conf_free(&t_root, &c);
        }
        assert_true(n > 50); /* the sweep really went through the load */
        assert_true(n < 5000);
    }

    /* The same through files: reading, listing and sorting drop-ins, keeping their names. */
    char dir[64], p[256];
    make_tree(dir, sizeof(dir));
    snprintf(p, sizeof(p), "%s/agent.yaml", dir);
    write_file(p, full_yaml);
    snprintf(p, sizeof(p), "%s/agent.d", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof(p), "%s/agent.d/%02d.yaml", dir, 50 - i);
        write_file(p, "output: {retries: 7}\nsources: {extra: {type: journald, topic: x}}\n");
    }
    snprintf(p, sizeof(p), "%s/agent.yaml", dir);
    long n;
    for (n = 0; n < 5000; n++) {
        struct t_conf c = {0};
        struct sl_conf_errors errs;
        sl_mem_fail_after(n, 0);
        int rc = sl_conf_load_file(&t_root, &c, p, &errs);
        long failed = sl_mem_failures();
        sl_mem_fail_after(-1, 0);
        if (!failed) {
            assert_int_equal(rc, 0);
            assert_int_equal(c.sources.len, 3);
            assert_true(c.output.retries == 7);
            sl_conf_free(&t_root, &c);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(c.sources.items);
        sl_conf_free(&t_root, &c);
    }
    assert_true(n > 50 && n < 5000);
    rm_tree(dir);
}

static void test_help_and_markdown(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    assert_non_null(m);
    sl_conf_help(&t_root, m);
    fclose(m);
    const char *want[] = {
        "  output.acks: one of 0, 1, all [default: all]\n      Acknowledgements to wait for\n",
        "  output.batch_bytes: size (between 1KiB and 64MiB) [default: 1MiB]\n",
        "  output.linger: duration (at most 1m) [default: 5ms]\n",
        ("  output.brokers: list of host:port (1 to 16 items) (default port 9092) "
         "[default: [localhost]]\n"),
        "  output.tls.enabled: bool [default: false]\n",
        "  sources.<name>.type: one of tail, journald [required]\n",
        "  sources.<name>.topic: string (1 to 249 bytes) [required]\n",
        "  sources.<name>.paths (type: tail): list of strings (1 to 100 items) [required]\n",
        "  sources.<name>.units (type: journald): list of strings [default: []]\n",
        "  listen: host:port (default port 2020) [default: 127.0.0.1]\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        if (!strstr(out, want[i]))
            fail_msg("help lacks:\n%s\nin:\n%s", want[i], out);
    }
    free(out);

    m = open_memstream(&out, &len);
    assert_non_null(m);
    sl_conf_markdown(&t_root, 2, m);
    fclose(m);
    const char *md[] = {
        "## test agent\n",
        "### `output`\n\nWhere records go\n\n| Option | Type | Default | Description |\n",
        "| `batch_bytes` | size (between 1KiB and 64MiB) | `1MiB` | Batch size \\| limit |\n",
        "#### `output.tls`\n",
        "### `sources.<name>`\n",
        "| `type` | one of tail, journald | required |",
        "#### `sources.<name>` with `type: tail`\n",
        "| `paths` | list of strings (1 to 100 items) | required | Files to follow (globs) |\n",
    };
    for (size_t i = 0; i < sizeof(md) / sizeof(*md); i++) {
        if (!strstr(out, md[i]))
            fail_msg("markdown lacks:\n%s\nin:\n%s", md[i], out);
    }
    free(out);
}

/* ---- golden bad configs ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* Each expected line must equal the printed line, except that an expected line ending in
 * "..." only needs to be a prefix (for libfyaml's own wording, which may change). */
static bool golden_match(const char *want, const char *got)
{
    for (;;) {
        const char *wn = strchr(want, '\n'), *gn = strchr(got, '\n');
        if (!wn || !gn)
            return !*want && !*got;
        size_t wl = (size_t)(wn - want), gl = (size_t)(gn - got);
        if (wl >= 3 && memcmp(wn - 3, "...", 3) == 0) {
            if (gl < wl - 3 || memcmp(want, got, wl - 3) != 0)
                return false;
        } else if (wl != gl || memcmp(want, got, wl) != 0) {
            return false;
        }
        want = wn + 1;
        got = gn + 1;
    }
}

static void test_golden_bad_configs(void **state)
{
    const char *data = getenv("SL_TEST_DATA");
    assert_non_null(data);
    char cwd[PATH_MAX], dir[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(dir, sizeof(dir), "%s/conf", data);
    /* Run from tests/data/conf so the printed paths are "bad/<case>.yaml" on every machine. */
    assert_int_equal(chdir(dir), 0);
    DIR *d = opendir("bad");
    assert_non_null(d);
    char *cases[200];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 200) {
        size_t l = strlen(e->d_name);
        if (l > 9 && strcmp(e->d_name + l - 9, ".expected") == 0)
            cases[n++] = strndup(e->d_name, l - 9);
    }
    closedir(d);
    qsort(cases, n, sizeof(*cases), cmp_str);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX], exp_path[PATH_MAX];
        snprintf(path, sizeof(path), "bad/%s.yaml", cases[i]);
        snprintf(exp_path, sizeof(exp_path), "bad/%s.expected", cases[i]);
        struct t_conf c = {0};
        struct sl_conf_errors errs;
        int rc = sl_conf_load_file(&t_root, &c, path, &errs);
        char *out = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);
        assert_non_null(m);
        sl_conf_errors_print(&errs, m);
        fclose(m);
        char *want = slurp(exp_path);
        assert_non_null(want);
        if (rc != SL_ECONFIG || !golden_match(want, out)) {
            fprintf(stderr, "golden %s: rc %d\n--- expected\n%s--- got\n%s", cases[i], rc, want,
                    out);
            failures++;
        }
        assert_null(c.output.brokers.items);
        assert_null(c.sources.items);
        free(want);
        free(out);
        free(cases[i]);
    }
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(failures, 0);
    assert_true(n >= 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_enum),
        cmocka_unit_test(test_parse_hostport),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_load_every_type),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_table_check),
        cmocka_unit_test(test_errors_point_at_values),
        cmocka_unit_test(test_unknown_keys_and_variants),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_quoted_scalars),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_dropins_merge),
        cmocka_unit_test(test_allocation_failure_sweep),
        cmocka_unit_test(test_help_and_markdown),
        cmocka_unit_test(test_golden_bad_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
