/* Unit tests for the metrics registry: exact exposition text, labels, escaping, histogram
 * buckets, removal, validation and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders reg and compares with want, printing both on a mismatch. */
static void expect_render(const struct sl_metrics *reg, const char *want)
{
    struct sl_buf b;
    sl_buf_init(&b);
    assert_int_equal(sl_metrics_render(reg, &b), 0);
    if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len) != 0)) {
        fprintf(stderr, "--- want\n%s--- got\n%.*s---\n", want, (int)b.len, (const char *)b.data);
        fail();
    }
    sl_buf_fini(&b);
}

static void test_counter(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    assert_non_null(reg);
    struct sl_metric *c = NULL;
    assert_int_equal(
        sl_metrics_add_counter(reg, "sl_requests_total", "Requests served.", NULL, 0, &c, NULL), 0);
    expect_render(reg, "# HELP sl_requests_total Requests served.\n"
                       "# TYPE sl_requests_total counter\n"
                       "sl_requests_total 0\n");
    sl_metric_inc(c);
    sl_metric_add(c, 41);
    assert_int_equal(sl_metric_count(c), 42);
    expect_render(reg, "# HELP sl_requests_total Requests served.\n"
                       "# TYPE sl_requests_total counter\n"
                       "sl_requests_total 42\n");
    /* The full uint64 range is printed exactly, and it wraps like unsigned arithmetic. */
    sl_metric_add(c, UINT64_MAX - 42);
    assert_true(sl_metric_count(c) == UINT64_MAX);
    expect_render(reg, "# HELP sl_requests_total Requests served.\n"
                       "# TYPE sl_requests_total counter\n"
                       "sl_requests_total 18446744073709551615\n");
    sl_metric_inc(c);
    assert_int_equal(sl_metric_count(c), 0);
    sl_metrics_free(reg);
}

static void test_gauge_and_no_help(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *g = NULL;
    assert_int_equal(sl_metrics_add_gauge(reg, "sl_queue_depth", NULL, NULL, 0, &g, NULL), 0);
    expect_render(reg, "# TYPE sl_queue_depth gauge\nsl_queue_depth 0\n");
    sl_metric_set(g, 3);
    sl_metric_gauge_add(g, -4.5);
    assert_true(sl_metric_value(g) == -1.5);
    expect_render(reg, "# TYPE sl_queue_depth gauge\nsl_queue_depth -1.5\n");
    sl_metric_set(g, INFINITY);
    expect_render(reg, "# TYPE sl_queue_depth gauge\nsl_queue_depth +Inf\n");
    sl_metric_set(g, -INFINITY);
    expect_render(reg, "# TYPE sl_queue_depth gauge\nsl_queue_depth -Inf\n");
    sl_metric_set(g, NAN);
    expect_render(reg, "# TYPE sl_queue_depth gauge\nsl_queue_depth NaN\n");
    sl_metric_set(g, 1e21);
    expect_render(reg, "# TYPE sl_queue_depth gauge\nsl_queue_depth 1e+21\n");
    sl_metrics_free(reg);
}

static double fn_read(void *arg)
{
    int *calls = arg;
    (*calls)++;
    return *calls * 1.25;
}

static void test_gauge_fn(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *g = NULL;
    struct sl_metric *fg = NULL;
    int calls = 0;
    const struct sl_metric_label p0[] = {{"partition", "0"}};
    const struct sl_metric_label p1[] = {{"partition", "1"}};
    assert_int_equal(
        sl_metrics_add_gauge_fn(reg, "sl_log_bytes", "Bytes.", p0, 1, fn_read, &calls, &fg, NULL),
        0);
    /* A plain gauge may join a family of gauge fns: both have type gauge. */
    assert_int_equal(sl_metrics_add_gauge(reg, "sl_log_bytes", "Bytes.", p1, 1, &g, NULL), 0);
    sl_metric_set(g, 7);
    assert_int_equal(calls, 0); /* nothing is computed before a scrape */
    expect_render(reg, "# HELP sl_log_bytes Bytes.\n"
                       "# TYPE sl_log_bytes gauge\n"
                       "sl_log_bytes{partition=\"0\"} 1.25\n"
                       "sl_log_bytes{partition=\"1\"} 7\n");
    assert_int_equal(calls, 1);
    expect_render(reg, "# HELP sl_log_bytes Bytes.\n"
                       "# TYPE sl_log_bytes gauge\n"
                       "sl_log_bytes{partition=\"0\"} 2.5\n"
                       "sl_log_bytes{partition=\"1\"} 7\n");
    assert_int_equal(calls, 2);
    struct sl_metric *bad = (struct sl_metric *)&calls;
    struct sl_err err = {{0}};
    assert_int_equal(sl_metrics_add_gauge_fn(reg, "sl_other", "x", NULL, 0, NULL, NULL, &bad, &err),
                     -EINVAL);
    assert_ptr_equal(bad, (struct sl_metric *)&calls);
    assert_non_null(strstr(err.msg, "NULL"));
    sl_metrics_free(reg);
}

static void test_histogram_buckets(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *h = NULL;
    const double bounds[] = {0.1, 1, 5};
    const struct sl_metric_label api[] = {{"api", "Produce"}};
    assert_int_equal(sl_metrics_add_histogram(reg, "sl_request_seconds", "Latency.", api, 1, bounds,
                                              3, &h, NULL),
                     0);
    expect_render(reg, "# HELP sl_request_seconds Latency.\n"
                       "# TYPE sl_request_seconds histogram\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"0.1\"} 0\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"1\"} 0\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"5\"} 0\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 0\n"
                       "sl_request_seconds_sum{api=\"Produce\"} 0\n"
                       "sl_request_seconds_count{api=\"Produce\"} 0\n");
    /* Values exactly on a bound land in that bound's bucket; just above go to the next. */
    sl_metric_observe(h, -2);                /* le 0.1 */
    sl_metric_observe(h, 0.1);               /* le 0.1 */
    sl_metric_observe(h, nextafter(0.1, 1)); /* le 1 */
    sl_metric_observe(h, 1);                 /* le 1 */
    sl_metric_observe(h, 5);                 /* le 5 */
    sl_metric_observe(h, nextafter(5, 6));   /* +Inf */
    sl_metric_observe(h, 1e300);             /* +Inf */
    assert_int_equal(sl_metric_count(h), 7);
    expect_render(reg, "# HELP sl_request_seconds Latency.\n"
                       "# TYPE sl_request_seconds histogram\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"0.1\"} 2\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"1\"} 4\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"5\"} 5\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 7\n"
                       "sl_request_seconds_sum{api=\"Produce\"} 1e+300\n"
                       "sl_request_seconds_count{api=\"Produce\"} 7\n");
    /* NaN counts only in +Inf and poisons the sum, as Prometheus' own clients do. */
    sl_metric_observe(h, NAN);
    assert_true(isnan(sl_metric_value(h)));
    expect_render(reg, "# HELP sl_request_seconds Latency.\n"
                       "# TYPE sl_request_seconds histogram\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"0.1\"} 2\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"1\"} 4\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"5\"} 5\n"
                       "sl_request_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 8\n"
                       "sl_request_seconds_sum{api=\"Produce\"} NaN\n"
                       "sl_request_seconds_count{api=\"Produce\"} 8\n");
    sl_metrics_free(reg);
}

static void test_histogram_edges(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *h0 = NULL;
    struct sl_metric *h1 = NULL;
    /* No bounds: only +Inf; no labels: le alone in braces, none on sum and count. */
    assert_int_equal(sl_metrics_add_histogram(reg, "a", NULL, NULL, 0, NULL, 0, &h0, NULL), 0);
    sl_metric_observe(h0, 2.5);
    sl_metric_observe(h0, -0.5);
    /* One bound, negative, and many observations to exercise the search on every side. */
    const double one[] = {-1};
    assert_int_equal(sl_metrics_add_histogram(reg, "b", NULL, NULL, 0, one, 1, &h1, NULL), 0);
    sl_metric_observe(h1, -1);
    sl_metric_observe(h1, -0.999);
    sl_metric_observe(h1, -INFINITY);
    expect_render(reg, "# TYPE a histogram\n"
                       "a_bucket{le=\"+Inf\"} 2\n"
                       "a_sum 2\n"
                       "a_count 2\n"
                       "# TYPE b histogram\n"
                       "b_bucket{le=\"-1\"} 2\n"
                       "b_bucket{le=\"+Inf\"} 3\n"
                       "b_sum -Inf\n"
                       "b_count 3\n");
    sl_metrics_free(reg);

    /* Many bounds: every bound value itself must land in its own bucket. */
    reg = sl_metrics_new();
    double many[37];
    for (size_t i = 0; i < 37; i++)
        many[i] = (double)i * 0.5 - 3;
    struct sl_metric *h = NULL;
    assert_int_equal(sl_metrics_add_histogram(reg, "c", NULL, NULL, 0, many, 37, &h, NULL), 0);
    for (size_t i = 0; i < 37; i++)
        sl_metric_observe(h, many[i]);
    struct sl_buf b;
    sl_buf_init(&b);
    assert_int_equal(sl_metrics_render(reg, &b), 0);
    assert_int_equal(sl_buf_append(&b, "", 1), 0);
    for (size_t i = 0; i < 37; i++) {
        char num[32];
        char line[96];
        snprintf(line, sizeof(line), "c_bucket{le=\"%s\"} %zu\n",
                 sl_metrics_format_double(many[i], num), i + 1);
        assert_non_null(strstr((const char *)b.data, line));
    }
    assert_non_null(strstr((const char *)b.data, "c_bucket{le=\"+Inf\"} 37\n"));
    sl_buf_fini(&b);
    sl_metrics_free(reg);
}

static void test_families_group_series(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *produce = NULL;
    struct sl_metric *fetch = NULL;
    struct sl_metric *conns = NULL;
    const struct sl_metric_label lp[] = {{"api", "Produce"}, {"topic", "nginx"}};
    const struct sl_metric_label lf[] = {{"api", "Fetch"}, {"topic", "nginx"}};
    assert_int_equal(sl_metrics_add_counter(reg, "sl_api_requests_total", "Requests by API.", lp, 2,
                                            &produce, NULL),
                     0);
    assert_int_equal(
        sl_metrics_add_gauge(reg, "sl_connections", "Open connections.", NULL, 0, &conns, NULL), 0);
    assert_int_equal(sl_metrics_add_counter(reg, "sl_api_requests_total", "Requests by API.", lf, 2,
                                            &fetch, NULL),
                     0);
    sl_metric_add(produce, 3);
    sl_metric_inc(fetch);
    sl_metric_set(conns, 2);
    expect_render(reg, "# HELP sl_api_requests_total Requests by API.\n"
                       "# TYPE sl_api_requests_total counter\n"
                       "sl_api_requests_total{api=\"Produce\",topic=\"nginx\"} 3\n"
                       "sl_api_requests_total{api=\"Fetch\",topic=\"nginx\"} 1\n"
                       "# HELP sl_connections Open connections.\n"
                       "# TYPE sl_connections gauge\n"
                       "sl_connections 2\n");
    sl_metrics_free(reg);
}

static void test_escaping(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *c = NULL;
    /* Label values escape \ " and newline; help escapes \ and newline but not ". */
    const struct sl_metric_label l[] = {{"path", "C:\\logs\\\"a\"\nb"}, {"utf8", "ü€𝄞"}};
    assert_int_equal(
        sl_metrics_add_counter(reg, "esc_total", "say \"hi\"\\ then\nnext", l, 2, &c, NULL), 0);
    expect_render(reg, "# HELP esc_total say \"hi\"\\\\ then\\nnext\n"
                       "# TYPE esc_total counter\n"
                       "esc_total{path=\"C:\\\\logs\\\\\\\"a\\\"\\nb\",utf8=\"ü€𝄞\"} 0\n");
    sl_metrics_free(reg);

    /* An empty label value is legal and still rendered. */
    reg = sl_metrics_new();
    const struct sl_metric_label e[] = {{"topic", ""}};
    assert_int_equal(sl_metrics_add_gauge(reg, "g", "h", e, 1, &c, NULL), 0);
    expect_render(reg, "# HELP g h\n# TYPE g gauge\ng{topic=\"\"} 0\n");
    sl_metrics_free(reg);
}

static void test_remove(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *s[3] = {NULL};
    struct sl_metric *other = NULL;
    const char *topics[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        const struct sl_metric_label l[] = {{"topic", topics[i]}};
        assert_int_equal(sl_metrics_add_counter(reg, "t_total", "T.", l, 1, &s[i], NULL), 0);
        sl_metric_add(s[i], (uint64_t)i + 1);
    }
    assert_int_equal(sl_metrics_add_gauge(reg, "z", "Z.", NULL, 0, &other, NULL), 0);

    sl_metrics_remove(reg, s[1]); /* the middle */
    expect_render(reg, "# HELP t_total T.\n# TYPE t_total counter\n"
                       "t_total{topic=\"a\"} 1\nt_total{topic=\"c\"} 3\n"
                       "# HELP z Z.\n# TYPE z gauge\nz 0\n");
    /* The removed label set can be registered again, and goes to the end of its family. */
    const struct sl_metric_label lb[] = {{"topic", "b"}};
    assert_int_equal(sl_metrics_add_counter(reg, "t_total", "T.", lb, 1, &s[1], NULL), 0);
    sl_metrics_remove(reg, s[0]); /* the head */
    expect_render(reg, "# HELP t_total T.\n# TYPE t_total counter\n"
                       "t_total{topic=\"c\"} 3\nt_total{topic=\"b\"} 0\n"
                       "# HELP z Z.\n# TYPE z gauge\nz 0\n");
    sl_metrics_remove(reg, s[1]); /* the tail */
    sl_metrics_remove(reg, s[2]); /* the last: the family goes away */
    expect_render(reg, "# HELP z Z.\n# TYPE z gauge\nz 0\n");
    /* Its name is free again, even for another type and help. */
    assert_int_equal(sl_metrics_add_gauge(reg, "t_total", "Now a gauge.", NULL, 0, &s[0], NULL), 0);
    expect_render(reg, "# HELP z Z.\n# TYPE z gauge\nz 0\n"
                       "# HELP t_total Now a gauge.\n# TYPE t_total gauge\nt_total 0\n");
    /* Removing the first family keeps the list and its tail consistent. */
    sl_metrics_remove(reg, other);
    struct sl_metric *y = NULL;
    assert_int_equal(sl_metrics_add_counter(reg, "y", NULL, NULL, 0, &y, NULL), 0);
    expect_render(reg, "# HELP t_total Now a gauge.\n# TYPE t_total gauge\nt_total 0\n"
                       "# TYPE y counter\ny 0\n");
    sl_metrics_remove(reg, y);
    sl_metrics_remove(reg, s[0]);
    expect_render(reg, "");
    sl_metrics_remove(reg, NULL);
    sl_metrics_free(reg);
    sl_metrics_free(NULL);
}

static void expect_add_fails(struct sl_metrics *reg, int want, const char *name,
                             const struct sl_metric_label *l, size_t n)
{
    struct sl_metric *m = (struct sl_metric *)reg; /* must stay untouched */
    struct sl_err err = {{0}};
    assert_int_equal(sl_metrics_add_counter(reg, name, "h", l, n, &m, &err), want);
    assert_ptr_equal(m, (struct sl_metric *)reg);
    assert_true(err.msg[0] != '\0');
}

static void test_invalid_names_and_labels(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *m = NULL;
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "a.b", "é", "a\n", "abc{"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        expect_add_fails(reg, -EINVAL, bad_names[i], NULL, 0);
    expect_add_fails(reg, -EINVAL, NULL, NULL, 0);
    const char *good_names[] = {"a", "_a", ":a", "a:b_c9", "A_Z", "x1"};
    for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++)
        assert_int_equal(sl_metrics_add_counter(reg, good_names[i], "h", NULL, 0, &m, NULL), 0);

    const char *bad_label_names[] = {"", "1a", "__x", "a:b", "a-b", "é"};
    for (size_t i = 0; i < sizeof(bad_label_names) / sizeof(bad_label_names[0]); i++) {
        const struct sl_metric_label l[] = {{bad_label_names[i], "v"}};
        expect_add_fails(reg, -EINVAL, "lbl", l, 1);
    }
    const struct sl_metric_label nul_name[] = {{NULL, "v"}};
    expect_add_fails(reg, -EINVAL, "lbl", nul_name, 1);
    const struct sl_metric_label nul_value[] = {{"a", NULL}};
    expect_add_fails(reg, -EINVAL, "lbl", nul_value, 1);
    const struct sl_metric_label dup[] = {{"a", "1"}, {"a", "2"}};
    expect_add_fails(reg, -EINVAL, "lbl", dup, 2);
    expect_add_fails(reg, -EINVAL, "lbl", NULL, 1);

    /* Label values and help must be UTF-8: truncated, overlong, surrogate, above U+10FFFF,
     * a stray continuation byte. */
    const char *bad_utf8[] = {"\xe2\x82",         "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                              "\xf4\x90\x80\x80", "\x80",     "ok\xff"};
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        const struct sl_metric_label l[] = {{"a", bad_utf8[i]}};
        expect_add_fails(reg, -EINVAL, "lbl", l, 1);
        assert_int_equal(sl_metrics_add_gauge(reg, "lbl", bad_utf8[i], NULL, 0, &m, NULL), -EINVAL);
    }
    const struct sl_metric_label max_cp[] = {{"a", "\xf4\x8f\xbf\xbf\xef\xbf\xbd"}};
    assert_int_equal(sl_metrics_add_counter(reg, "lbl", "h", max_cp, 1, &m, NULL), 0);

    /* "le" belongs to histograms only. */
    const struct sl_metric_label le[] = {{"le", "1"}};
    assert_int_equal(sl_metrics_add_counter(reg, "with_le", "h", le, 1, &m, NULL), 0);
    assert_int_equal(sl_metrics_add_histogram(reg, "hist_le", "h", le, 1, NULL, 0, &m, NULL),
                     -EINVAL);

    /* Bounds: finite and strictly increasing. */
    const double dup_b[] = {1, 1};
    const double down[] = {2, 1};
    const double inf[] = {1, INFINITY};
    const double nan[] = {NAN};
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "h", NULL, 0, dup_b, 2, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "h", NULL, 0, down, 2, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "h", NULL, 0, inf, 2, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "h", NULL, 0, nan, 1, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "h", NULL, 0, NULL, 2, &m, NULL), -EINVAL);

    /* Nothing above left a trace in the output. */
    expect_render(reg,
                  "# HELP a h\n# TYPE a counter\na 0\n"
                  "# HELP _a h\n# TYPE _a counter\n_a 0\n"
                  "# HELP :a h\n# TYPE :a counter\n:a 0\n"
                  "# HELP a:b_c9 h\n# TYPE a:b_c9 counter\na:b_c9 0\n"
                  "# HELP A_Z h\n# TYPE A_Z counter\nA_Z 0\n"
                  "# HELP x1 h\n# TYPE x1 counter\nx1 0\n"
                  "# HELP lbl h\n# TYPE lbl counter\nlbl{a=\"\xf4\x8f\xbf\xbf\xef\xbf\xbd\"} 0\n"
                  "# HELP with_le h\n# TYPE with_le counter\nwith_le{le=\"1\"} 0\n");
    sl_metrics_free(reg);
}

static void test_family_conflicts(void **state)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *m = NULL;
    struct sl_err err = {{0}};
    const struct sl_metric_label a1[] = {{"a", "1"}};
    const struct sl_metric_label b1[] = {{"b", "1"}};
    const struct sl_metric_label ab[] = {{"a", "2"}, {"b", "2"}};
    const struct sl_metric_label ba[] = {{"b", "3"}, {"a", "3"}};
    assert_int_equal(sl_metrics_add_counter(reg, "f", "F.", a1, 1, &m, NULL), 0);
    assert_int_equal(sl_metrics_add_counter(reg, "f", "F.", a1, 1, &m, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "a=\"1\""));
    assert_int_equal(sl_metrics_add_gauge(reg, "f", "F.", b1, 1, &m, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "counter"));
    assert_int_equal(sl_metrics_add_counter(reg, "f", "Other.", b1, 1, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_counter(reg, "f", NULL, b1, 1, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_counter(reg, "f", "F.", b1, 1, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_counter(reg, "f", "F.", NULL, 0, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_counter(reg, "f", "F.", ab, 2, &m, NULL), -EINVAL);

    assert_int_equal(sl_metrics_add_counter(reg, "g", "G.", ab, 2, &m, NULL), 0);
    assert_int_equal(sl_metrics_add_counter(reg, "g", "G.", ba, 2, &m, NULL), -EINVAL);

    /* Histograms must agree on bounds. */
    const double b12[] = {1, 2};
    const double b13[] = {1, 3};
    const struct sl_metric_label x1[] = {{"x", "1"}};
    const struct sl_metric_label x2[] = {{"x", "2"}};
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "H.", x1, 1, b12, 2, &m, NULL), 0);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "H.", x2, 1, b13, 2, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "H.", x2, 1, b12, 1, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_histogram(reg, "h", "H.", x2, 1, b12, 2, &m, NULL), 0);

    /* A histogram's derived names are taken, both ways round. */
    assert_int_equal(sl_metrics_add_counter(reg, "h_count", "c", NULL, 0, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_gauge(reg, "h_sum", "c", NULL, 0, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_counter(reg, "h_bucket", "c", NULL, 0, &m, NULL), -EINVAL);
    assert_int_equal(sl_metrics_add_counter(reg, "h_total", "c", NULL, 0, &m, NULL), 0);
    assert_int_equal(sl_metrics_add_counter(reg, "k_sum", "c", NULL, 0, &m, NULL), 0);
    assert_int_equal(sl_metrics_add_histogram(reg, "k", "K.", NULL, 0, b12, 2, &m, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "k_sum"));
    assert_int_equal(sl_metrics_add_histogram(reg, "k_", "K.", NULL, 0, b12, 2, &m, NULL), 0);
    sl_metrics_free(reg);
}

static void test_null_handles_and_readers(void **state)
{
    sl_metric_inc(NULL);
    sl_metric_add(NULL, 5);
    sl_metric_set(NULL, 1);
    sl_metric_gauge_add(NULL, 1);
    sl_metric_observe(NULL, 1);
    assert_int_equal(sl_metric_count(NULL), 0);
    assert_true(sl_metric_value(NULL) == 0);

    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *c = NULL;
    struct sl_metric *g = NULL;
    assert_int_equal(sl_metrics_add_counter(reg, "c", NULL, NULL, 0, &c, NULL), 0);
    assert_int_equal(sl_metrics_add_gauge(reg, "g", NULL, NULL, 0, &g, NULL), 0);
    sl_metric_add(c, 9);
    sl_metric_set(g, 2.5);
    assert_true(sl_metric_value(c) == 9);
    assert_int_equal(sl_metric_count(g), 0);
    sl_metrics_free(reg);
}

static void test_format_double(void **state)
{
    char num[32];
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-0.0, "-0"},
        {1, "1"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e6, "1000000"},
        {123456789012345, "123456789012345"},
        {1e21, "1e+21"},
        {2.5e-7, "2.5e-07"},
        {4.9406564584124654e-324, "4.94065645841247e-324"}, /* reads back: the smallest subnormal */
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(sl_metrics_format_double(cases[i].v, num), cases[i].want);
    /* Whatever the value, the text reads back to it exactly. */
    srand(7);
    for (int i = 0; i < 10000; i++) {
        double v = ((double)rand() / RAND_MAX - 0.5) * pow(10, rand() % 40 - 20);
        assert_true(strtod(sl_metrics_format_double(v, num), NULL) == v);
    }
}

/* Builds a registry of every kind, removes a series, renders; the text is compared by the
 * caller. Returns 0 or the first error, having freed everything. */
static double sweep_fn(void *arg)
{
    return 4;
}

static int sweep_once(struct sl_buf *out)
{
    struct sl_metrics *reg = sl_metrics_new();
    if (!reg)
        return -ENOMEM;
    struct sl_metric *m[6];
    const struct sl_metric_label l1[] = {{"topic", "a\"b"}, {"api", "Produce"}};
    const struct sl_metric_label l2[] = {{"topic", "c"}, {"api", "Fetch"}};
    const double bounds[] = {0.001, 0.01, 0.1, 1};
    int rc;
    if ((rc = sl_metrics_add_counter(reg, "req_total", "Requests.\n", l1, 2, &m[0], NULL)) < 0 ||
        (rc = sl_metrics_add_counter(reg, "req_total", "Requests.\n", l2, 2, &m[1], NULL)) < 0 ||
        (rc = sl_metrics_add_gauge(reg, "conns", "Conns.", NULL, 0, &m[2], NULL)) < 0 ||
        (rc = sl_metrics_add_gauge_fn(reg, "bytes", "Bytes.", l2, 2, sweep_fn, NULL, &m[3], NULL)) <
            0 ||
        (rc = sl_metrics_add_histogram(reg, "lat", "Lat.", l1, 2, bounds, 4, &m[4], NULL)) < 0 ||
        (rc = sl_metrics_add_histogram(reg, "lat", "Lat.", l2, 2, bounds, 4, &m[5], NULL)) < 0)
        goto out;
    sl_metric_add(m[0], 5);
    sl_metric_set(m[2], 3);
    sl_metric_observe(m[4], 0.01);
    sl_metric_observe(m[5], 7);
    sl_metrics_remove(reg, m[1]);
    rc = sl_metrics_render(reg, out);
out:
    sl_metrics_free(reg);
    return rc;
}

static void test_allocation_failure_sweep(void **state)
{
    struct sl_buf want;
    sl_buf_init(&want);
    assert_int_equal(sweep_once(&want), 0);
    const char *line = "lat_bucket{topic=\"c\",api=\"Fetch\",le=\"+Inf\"} 1\n";
    assert_non_null(memmem(want.data, want.len, line, strlen(line)));

    for (int sticky = 0; sticky <= 1; sticky++) {
        long n = 0;
        for (;; n++) {
            struct sl_buf got;
            sl_buf_init(&got);
            sl_mem_fail_after(n, sticky);
            int rc = sweep_once(&got);
            long failures = sl_mem_failures();
            sl_mem_fail_after(-1, 0);
            if (failures == 0) {
                assert_int_equal(rc, 0);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, want.len);
                sl_buf_fini(&got);
                break;
            }
            assert_int_equal(rc, -ENOMEM);
            sl_buf_fini(&got);
        }
        assert_true(n > 10); /* the sweep really went through every allocation */
    }
    sl_buf_fini(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_gauge_and_no_help),
        cmocka_unit_test(test_gauge_fn),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_histogram_edges),
        cmocka_unit_test(test_families_group_series),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_invalid_names_and_labels),
        cmocka_unit_test(test_family_conflicts),
        cmocka_unit_test(test_null_handles_and_readers),
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_allocation_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
