/* Unit tests for in_tail with a fake sink on a temporary folder: line splitting (CRLF, partial
 * last line, overlong lines), multiline, backpressure, rotation by rename, truncation, deletion,
 * checkpoints across restarts and read_from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/mem.h"
#include "plugins/in_tail.h"
#include "plugins/plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RECS 20000

struct rec {
    char *value; /* owned */
    uint64_t end;
    bool truncated;
};

/* The fake sink: keeps every record, accounts spans (one batch per record), and can refuse. */
struct fake_sink {
    struct plugin_sink sink;
    struct rec recs[MAX_RECS];
    struct plugin_ack_span *spans[MAX_RECS];
    int n;
    int refuse; /* refuse this many emits with -EAGAIN */
    struct plugin_waiter *waiter;
    int topic_refs;
};

static struct plugin_topic *fake_topic_get(struct plugin_sink *s, const char *name)
{
    struct fake_sink *f = (struct fake_sink *)s;
    f->topic_refs++;
    return (struct plugin_topic *)(uintptr_t)0x1234;
}

static void fake_topic_put(struct plugin_sink *s, struct plugin_topic *t)
{
    struct fake_sink *f = (struct fake_sink *)s;
    f->topic_refs--;
}

static int fake_emit(struct plugin_sink *s, struct plugin_topic *t, const struct plugin_record *r,
                     struct plugin_waiter *w)
{
    struct fake_sink *f = (struct fake_sink *)s;
    if (f->refuse > 0) {
        f->refuse--;
        f->waiter = w;
        w->queued = true;
        return -EAGAIN;
    }
    assert_true(f->n < MAX_RECS);
    struct rec *x = &f->recs[f->n];
    x->value = sl_strndup((const char *)r->value.p, r->value.len);
    x->end = r->end;
    x->truncated = r->header_count == 3;
    struct plugin_ack_span *spare = sl_malloc(sizeof(*spare));
    struct plugin_ack_span *list = NULL;
    plugin_ack_add(r->owner, (uint64_t)f->n + 1, r->end, &spare, &list);
    sl_free(spare);
    f->spans[f->n] = list;
    f->n++;
    return 0;
}

static void fake_cancel(struct plugin_sink *s, struct plugin_waiter *w)
{
    struct fake_sink *f = (struct fake_sink *)s;
    if (f->waiter == w) {
        f->waiter = NULL;
        w->queued = false;
    }
}

static void ack_all(struct fake_sink *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->spans[i]) {
            plugin_ack_done(f->spans[i]);
            f->spans[i] = NULL;
        }
    }
}

static void abandon_all(struct fake_sink *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->spans[i]) {
            plugin_ack_abandon(f->spans[i]);
            f->spans[i] = NULL;
        }
    }
}

static void clear_recs(struct fake_sink *f)
{
    for (int i = 0; i < f->n; i++)
        SL_FREE(f->recs[i].value);
    f->n = 0;
}

struct fx {
    char dir[64];
    char state[80];
    char pattern[96];
    struct ev_loop *loop;
    struct fake_sink sink;
    struct plugin_source_conf src;
    struct in_tail_conf conf;
    char *paths[1];
    char *excl[1];
    void *t;
};

/* Strings the configuration borrows for the whole test. */
static char src_name[] = "test";
static char src_topic[] = "t";
static char exclude_gz[] = "*.gz";
static char ml_start[] = "^[0-9]";

static struct fx *fx_new(void)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    snprintf(x->dir, sizeof(x->dir), "/tmp/sl-tail-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->state, sizeof(x->state), "%s/state", x->dir);
    assert_int_equal(mkdir(x->state, 0755), 0);
    snprintf(x->pattern, sizeof(x->pattern), "%s/*.log", x->dir);
    x->loop = ev_loop_new(EVFLAG_AUTO);
    x->sink.sink = (struct plugin_sink){fake_topic_get, fake_topic_put, fake_emit, fake_cancel};
    x->src.name = src_name;
    x->src.topic = src_topic;
    x->src.format = PLUGIN_FORMAT_RAW;
    x->paths[0] = x->pattern;
    x->excl[0] = exclude_gz;
    x->conf.paths = (struct sl_conf_list){x->paths, 1};
    x->conf.exclude = (struct sl_conf_list){x->excl, 1};
    x->conf.read_from = IN_TAIL_FROM_HEAD;
    x->conf.multiline_timeout_ms = 100;
    x->conf.max_line_bytes = 256;
    x->conf.partial_timeout_ms = 100;
    x->conf.rescan_ms = 50;
    x->conf.idle_close_ms = 60000;
    x->conf.max_open_files = 100;
    x->conf.max_rotated_open = 10;
    x->conf.read_bytes = 4096;
    x->conf.checkpoint_interval_ms = 50;
    return x;
}

static void fx_start(struct fx *x)
{
    struct plugin_ctx ctx = {.loop = x->loop,
                             .name = "in.tail#test",
                             .hostname = "h1",
                             .state_dir = x->state,
                             .sink = &x->sink.sink,
                             .source = &x->src};
    struct sl_err err = {{0}};
    assert_int_equal(in_tail_plugin.new(&ctx, &x->conf, &x->t, &err), 0);
    assert_int_equal(in_tail_plugin.start(x->t, &err), 0);
}

static void fx_stop(struct fx *x)
{
    in_tail_plugin.stop(x->t);
    in_tail_plugin.free(x->t);
    x->t = NULL;
    assert_int_equal(x->sink.topic_refs, 0);
}

/* Runs the loop for `secs` seconds, or until n records arrived. */
static void run_for(struct fx *x, double secs, int n)
{
    ev_tstamp end = ev_time() + secs;
    while (ev_time() < end && (n <= 0 || x->sink.n < n)) {
        if (x->sink.waiter) {
            struct plugin_waiter *w = x->sink.waiter;
            x->sink.waiter = NULL;
            w->queued = false;
            w->on_resume(w);
        }
        ev_run(x->loop, EVRUN_NOWAIT);
        usleep(2000);
    }
}

static void fx_free(struct fx *x)
{
    if (x->t)
        fx_stop(x);
    abandon_all(&x->sink);
    clear_recs(&x->sink);
    assert_false(ev_run(x->loop, EVRUN_NOWAIT));
    ev_loop_destroy(x->loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
}

static void append(struct fx *x, const char *name, const char *text, size_t n)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", x->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static void appends(struct fx *x, const char *name, const char *text)
{
    append(x, name, text, strlen(text));
}

static char *path_of(struct fx *x, const char *name)
{
    static char path[2][160];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof(path[k]), "%s/%s", x->dir, name);
    return path[k];
}

static void test_lines_crlf_partial(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "one\ntwo\r\n\nthree");
    fx_start(x);
    run_for(x, 1.0, 3);
    assert_int_equal(x->sink.n, 3);
    assert_string_equal(x->sink.recs[0].value, "one");
    assert_int_equal(x->sink.recs[0].end, 4);
    assert_string_equal(x->sink.recs[1].value, "two"); /* CR dropped */
    assert_int_equal(x->sink.recs[1].end, 9);
    assert_string_equal(x->sink.recs[2].value, ""); /* an empty line is a record */
    assert_int_equal(x->sink.recs[2].end, 10);
    /* "three" has no newline: sent only after partial_timeout. */
    run_for(x, 0.05, 0);
    assert_int_equal(x->sink.n, 3);
    run_for(x, 1.0, 4);
    assert_int_equal(x->sink.n, 4);
    assert_string_equal(x->sink.recs[3].value, "three");
    assert_int_equal(x->sink.recs[3].end, 15);
    fx_free(x);
}

static void test_overlong_and_binary(void **state)
{
    struct fx *x = fx_new();
    char big[1001];
    memset(big, 'x', 1000);
    big[1000] = '\n';
    append(x, "a.log", big, sizeof(big));
    append(x, "a.log", "bin\0\xff\x01\n", 7);
    /* An overlong line without a newline yet: cut as soon as max_line_bytes are there. */
    append(x, "a.log", big, 600);
    fx_start(x);
    run_for(x, 1.0, 3);
    assert_int_equal(x->sink.n, 3);
    assert_int_equal(strlen(x->sink.recs[0].value), 256);
    assert_true(x->sink.recs[0].truncated);
    /* Its newline was read with it: the record covers the whole line. */
    assert_int_equal(x->sink.recs[0].end, 1001);
    assert_false(x->sink.recs[1].truncated);
    assert_int_equal(x->sink.recs[1].end, 1008);
    assert_memory_equal(x->sink.recs[1].value, "bin", 4); /* the NUL stops the C string */
    assert_true(x->sink.recs[2].truncated);
    assert_int_equal(x->sink.recs[2].end, 1008 + 256);
    /* The rest of that line is dropped up to its newline; the next line is whole. */
    appends(x, "a.log", "tail of the long one\nnext\n");
    run_for(x, 1.0, 4);
    assert_int_equal(x->sink.n, 4);
    assert_string_equal(x->sink.recs[3].value, "next");
    fx_free(x);
}

static void test_multiline(void **state)
{
    struct fx *x = fx_new();
    x->conf.multiline_start = ml_start;
    appends(x, "a.log", "1 start\n  at a\n  at b\n2 next\n");
    fx_start(x);
    run_for(x, 1.0, 1);
    assert_int_equal(x->sink.n, 1);
    assert_string_equal(x->sink.recs[0].value, "1 start\n  at a\n  at b");
    assert_int_equal(x->sink.recs[0].end, 22);
    run_for(x, 1.0, 2); /* the last one after multiline_timeout */
    assert_int_equal(x->sink.n, 2);
    assert_string_equal(x->sink.recs[1].value, "2 next");
    assert_int_equal(x->sink.recs[1].end, 29);
    fx_free(x);
}

static void test_backpressure_keeps_order(void **state)
{
    struct fx *x = fx_new();
    char line[32];
    for (int i = 0; i < 500; i++) {
        snprintf(line, sizeof(line), "line %d\n", i);
        appends(x, "a.log", line);
    }
    x->sink.refuse = 3;
    fx_start(x);
    run_for(x, 3.0, 500);
    assert_int_equal(x->sink.n, 500);
    for (int i = 0; i < 500; i++) {
        snprintf(line, sizeof(line), "line %d", i);
        assert_string_equal(x->sink.recs[i].value, line);
    }
    fx_free(x);
}

static void test_rotation_rename(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "old1\nold2\n");
    fx_start(x);
    run_for(x, 1.0, 2);
    assert_int_equal(x->sink.n, 2);
    assert_int_equal(rename(path_of(x, "a.log"), path_of(x, "a.log.1")), 0);
    appends(x, "a.log.1", "late\n"); /* the writer has not reopened yet */
    appends(x, "a.log", "new1\n");
    run_for(x, 2.0, 4);
    assert_int_equal(x->sink.n, 4);
    bool late = false, new1 = false;
    for (int i = 2; i < 4; i++) {
        late |= strcmp(x->sink.recs[i].value, "late") == 0;
        new1 |= strcmp(x->sink.recs[i].value, "new1") == 0;
        if (strcmp(x->sink.recs[i].value, "new1") == 0)
            assert_int_equal(x->sink.recs[i].end, 5); /* the new file from its start */
    }
    assert_true(late);
    assert_true(new1);
    fx_free(x);
}

/* A glob that also matches the rotated name: the renamed file is followed on from where it was,
 * never read again from its start, not even after it was let go or across a restart. */
static void test_glob_matches_rotated_name(void **state)
{
    struct fx *x = fx_new();
    snprintf(x->pattern, sizeof(x->pattern), "%s/*.log*", x->dir);
    appends(x, "a.log", "one\n");
    fx_start(x);
    run_for(x, 1.0, 1);
    ack_all(&x->sink);
    assert_int_equal(rename(path_of(x, "a.log"), path_of(x, "a.log.1")), 0);
    appends(x, "a.log.1", "two\n");
    appends(x, "a.log", "three\n");
    run_for(x, 1.0, 3);
    ack_all(&x->sink);
    run_for(x, 0.5, 0);
    ack_all(&x->sink);
    assert_int_equal(x->sink.n, 3);
    fx_stop(x);
    fx_start(x);
    run_for(x, 0.5, 0);
    assert_int_equal(x->sink.n, 3);
    appends(x, "a.log.1", "four\n");
    run_for(x, 1.0, 4);
    run_for(x, 0.2, 0);
    assert_int_equal(x->sink.n, 4);
    assert_string_equal(x->sink.recs[3].value, "four");
    fx_free(x);
}

/* A symlink matched by the glob is followed to its target, under the link's name. */
static void test_symlink_followed(void **state)
{
    struct fx *x = fx_new();
    char target[160];
    snprintf(target, sizeof(target), "%s/state/real.txt", x->dir);
    int fd = open(target, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "via link\n", 9), 9);
    close(fd);
    assert_int_equal(symlink(target, path_of(x, "link.log")), 0);
    fx_start(x);
    run_for(x, 1.0, 1);
    assert_int_equal(x->sink.n, 1);
    assert_string_equal(x->sink.recs[0].value, "via link");
    fx_free(x);
}

static void test_truncation_restarts(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "aaaa\nbbbb\n");
    fx_start(x);
    run_for(x, 1.0, 2);
    assert_int_equal(truncate(path_of(x, "a.log"), 0), 0);
    appends(x, "a.log", "c\n");
    run_for(x, 2.0, 3);
    assert_int_equal(x->sink.n, 3);
    assert_string_equal(x->sink.recs[2].value, "c");
    assert_int_equal(x->sink.recs[2].end, 2);
    fx_free(x);
}

/* copytruncate: truncated, then written past the old offset before we looked. */
static void test_copytruncate_grown(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "first line\n");
    fx_start(x);
    run_for(x, 1.0, 1);
    in_tail_plugin.stop(x->t); /* nobody looks while it happens */
    assert_int_equal(truncate(path_of(x, "a.log"), 0), 0);
    appends(x, "a.log", "other content, longer\n");
    struct sl_err err = {{0}};
    assert_int_equal(in_tail_plugin.start(x->t, &err), 0);
    run_for(x, 2.0, 2);
    assert_int_equal(x->sink.n, 2);
    assert_string_equal(x->sink.recs[1].value, "other content, longer");
    fx_free(x);
}

static void test_deleted_read_to_end(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "x1\n");
    fx_start(x);
    run_for(x, 1.0, 1);
    int fd = open(path_of(x, "a.log"), O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(unlink(path_of(x, "a.log")), 0);
    assert_int_equal(write(fd, "x2\n", 3), 3);
    close(fd);
    run_for(x, 2.0, 2);
    assert_int_equal(x->sink.n, 2);
    assert_string_equal(x->sink.recs[1].value, "x2");
    fx_free(x);
}

static void test_checkpoint_resume(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "r1\nr2\nr3\n");
    appends(x, "b.gz", "excluded\n");
    fx_start(x);
    run_for(x, 1.0, 3);
    assert_int_equal(x->sink.n, 3);
    /* Only the first two are acknowledged before the stop. */
    plugin_ack_done(x->sink.spans[0]);
    plugin_ack_done(x->sink.spans[1]);
    x->sink.spans[0] = x->sink.spans[1] = NULL;
    fx_stop(x);
    abandon_all(&x->sink);
    clear_recs(&x->sink);
    appends(x, "a.log", "r4\n");
    fx_start(x);
    run_for(x, 1.0, 2);
    run_for(x, 0.2, 0);
    assert_int_equal(x->sink.n, 2); /* r3 again (never acknowledged), then r4 */
    assert_string_equal(x->sink.recs[0].value, "r3");
    assert_string_equal(x->sink.recs[1].value, "r4");
    ack_all(&x->sink);
    fx_stop(x);
    /* Everything acknowledged: a third start reads nothing. */
    clear_recs(&x->sink);
    fx_start(x);
    run_for(x, 0.3, 0);
    assert_int_equal(x->sink.n, 0);
    fx_free(x);
}

/* Stopped during a rotation: the renamed file's unread lines are still shipped on restart. */
static void test_rotated_while_stopped(void **state)
{
    struct fx *x = fx_new();
    appends(x, "a.log", "a1\n");
    fx_start(x);
    run_for(x, 1.0, 1);
    ack_all(&x->sink);
    fx_stop(x); /* checkpoint: a.log at 3 */
    appends(x, "a.log", "a2\n");
    assert_int_equal(rename(path_of(x, "a.log"), path_of(x, "a.old")), 0);
    appends(x, "a.log", "b1\n");
    fx_start(x);
    run_for(x, 1.0, 3);
    run_for(x, 0.2, 0);
    assert_int_equal(x->sink.n, 3);
    bool a2 = false, b1 = false;
    for (int i = 1; i < 3; i++) {
        a2 |= strcmp(x->sink.recs[i].value, "a2") == 0;
        b1 |= strcmp(x->sink.recs[i].value, "b1") == 0;
    }
    assert_true(a2);
    assert_true(b1);
    fx_free(x);
}

static void test_read_from_tail(void **state)
{
    struct fx *x = fx_new();
    x->conf.read_from = IN_TAIL_FROM_TAIL;
    appends(x, "a.log", "before\n");
    fx_start(x);
    run_for(x, 0.3, 0);
    assert_int_equal(x->sink.n, 0);
    appends(x, "a.log", "after\n");
    appends(x, "new.log", "fresh file\n"); /* found later: from its head */
    run_for(x, 2.0, 2);
    assert_int_equal(x->sink.n, 2);
    fx_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_crlf_partial), cmocka_unit_test(test_overlong_and_binary),
        cmocka_unit_test(test_multiline),          cmocka_unit_test(test_backpressure_keeps_order),
        cmocka_unit_test(test_rotation_rename),    cmocka_unit_test(test_glob_matches_rotated_name),
        cmocka_unit_test(test_symlink_followed),   cmocka_unit_test(test_truncation_restarts),
        cmocka_unit_test(test_copytruncate_grown), cmocka_unit_test(test_deleted_read_to_end),
        cmocka_unit_test(test_checkpoint_resume),  cmocka_unit_test(test_rotated_while_stopped),
        cmocka_unit_test(test_read_from_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
