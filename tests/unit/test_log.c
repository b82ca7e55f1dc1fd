/* Unit tests for the log sink: threshold, line format, journal detection, cuts, repeat limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The sink is one end of a SOCK_SEQPACKET pair: every write(2) arrives as one record, so each
 * recv returns exactly what one write carried, and "one line, one write" is observable.
 */
static int sink[2] = {-1, -1};
static int64_t fake_now;

static int64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sink) < 0)
        return -1;
    unsetenv("JOURNAL_STREAM");
    sl_log_set_fd(sink[0]);
    sl_log_init();
    fake_now = 1700000000123; /* 2023-11-14T22:13:20.123Z */
    sl_log_set_clock(fake_clock);
    sl_log_threshold = SL_LOG_INFO;
    sl_log_set_rate_limit(0, SL_LOG_INTERVAL_MS); /* off unless a test is about it */
    return 0;
}

static int teardown(void **state)
{
    sl_log_set_fd(STDERR_FILENO);
    sl_log_set_clock(NULL);
    sl_log_set_rate_limit(SL_LOG_BURST, SL_LOG_INTERVAL_MS);
    unsetenv("JOURNAL_STREAM");
    close(sink[0]);
    close(sink[1]);
    return 0;
}

/* The next record written to the sink as a NUL-terminated string, or NULL when there is none. */
static const char *next_line(void)
{
    static char buf[2 * SL_LOG_LINE_MAX];
    ssize_t n = recv(sink[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0) {
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static size_t count_lines(void)
{
    size_t n = 0;
    while (next_line())
        n++;
    return n;
}

static void expect_line(const char *want)
{
    const char *got = next_line();
    assert_non_null(got);
    assert_string_equal(got, want);
}

static int evaluated;

static int side_effect(void)
{
    return ++evaluated;
}

/* Must stay first: it checks the initial value before any other test changes it. */
static void test_default_threshold_is_info(void **state)
{
    assert_int_equal(sl_log_threshold, SL_LOG_INFO);
}

static void test_threshold_skips_arguments(void **state)
{
    evaluated = 0;
    SL_DEBUG(NULL, "n=%d", side_effect());
    assert_int_equal(evaluated, 0);
    assert_null(next_line());

    SL_INFO(NULL, "n=%d", side_effect());
    assert_int_equal(evaluated, 1);
    expect_line("2023-11-14T22:13:20.123Z info n=1\n");

    sl_log_threshold = SL_LOG_WARNING;
    SL_NOTICE(NULL, "n=%d", side_effect());
    SL_INFO(NULL, "n=%d", side_effect());
    assert_int_equal(evaluated, 1);
    assert_null(next_line());
    SL_WARN(NULL, "n=%d", side_effect());
    assert_int_equal(evaluated, 2);
    expect_line("2023-11-14T22:13:20.123Z warning n=2\n");

    sl_log_threshold = SL_LOG_DEBUG;
    SL_DEBUG(NULL, "n=%d", side_effect());
    assert_int_equal(evaluated, 3);
    expect_line("2023-11-14T22:13:20.123Z debug n=3\n");

    /* The function itself also honours the threshold for direct callers. */
    sl_log_threshold = SL_LOG_ERR;
    sl_log_write(SL_LOG_WARNING, NULL, __FILE__, __LINE__, "direct");
    assert_null(next_line());
}

static void test_plain_format(void **state)
{
    SL_ERR("in.tail#nginx", "hello %d", 42);
    expect_line("2023-11-14T22:13:20.123Z err [in.tail#nginx] hello 42\n");
    SL_NOTICE(NULL, "no prefix");
    expect_line("2023-11-14T22:13:20.123Z notice no prefix\n");
    SL_INFO("", "empty who");
    expect_line("2023-11-14T22:13:20.123Z info [] empty who\n");

    /* Milliseconds are zero-padded; the clock is read per line. */
    fake_now = 1700000000007;
    SL_INFO(NULL, "x");
    expect_line("2023-11-14T22:13:20.007Z info x\n");
    fake_now = 0;
    SL_INFO(NULL, "x");
    expect_line("1970-01-01T00:00:00.000Z info x\n");
    fake_now = -1; /* floors, not truncates toward zero */
    SL_INFO(NULL, "x");
    expect_line("1969-12-31T23:59:59.999Z info x\n");
    fake_now = 951782400000 - 1; /* the last ms of 2000-02-28, a leap year */
    SL_INFO(NULL, "x");
    expect_line("2000-02-28T23:59:59.999Z info x\n");

    /* Every level has its syslog name. */
    sl_log_threshold = SL_LOG_DEBUG;
    fake_now = 0;
    for (int level = SL_LOG_EMERG; level <= SL_LOG_DEBUG; level++) {
        SL_LOG(level, "w", "m");
        char want[128];
        snprintf(want, sizeof(want), "1970-01-01T00:00:00.000Z %s [w] m\n",
                 sl_log_level_name(level));
        expect_line(want);
    }
    assert_null(next_line());
}

static void test_newlines_become_spaces(void **state)
{
    SL_INFO("a", "one\ntwo\n");
    expect_line("2023-11-14T22:13:20.123Z info [a] one two \n");
}

static void set_journal_stream(int fd, unsigned long long dev_delta, unsigned long long ino_delta)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char env[64];
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev + dev_delta,
             (unsigned long long)st.st_ino + ino_delta);
    assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
}

static void test_journal_format(void **state)
{
    set_journal_stream(sink[0], 0, 0);
    sl_log_init();
    SL_ERR("out.kafka", "broker down");
    expect_line("<3>[out.kafka] broker down\n");
    SL_INFO(NULL, "plain");
    expect_line("<6>plain\n");
    sl_log_threshold = SL_LOG_DEBUG;
    for (int level = SL_LOG_EMERG; level <= SL_LOG_DEBUG; level++) {
        SL_LOG(level, NULL, "m");
        char want[16];
        snprintf(want, sizeof(want), "<%d>m\n", level);
        expect_line(want);
    }
    /* A level outside syslog's range is clamped, never printed as <9> or <-1>. */
    sl_log_write(-3, NULL, __FILE__, __LINE__, "low");
    expect_line("<0>low\n");

    /* A new sink is not the journal until sl_log_init says so. */
    sl_log_set_fd(sink[0]);
    SL_INFO(NULL, "again");
    expect_line("2023-11-14T22:13:20.123Z info again\n");
}

static void test_journal_detection_is_strict(void **state)
{
    /* Another file's device:inode (a stale variable inherited through a shell) is not ours. */
    set_journal_stream(sink[0], 0, 1);
    sl_log_init();
    SL_INFO(NULL, "x");
    expect_line("2023-11-14T22:13:20.123Z info x\n");
    set_journal_stream(sink[0], 1, 0);
    sl_log_init();
    SL_INFO(NULL, "x");
    expect_line("2023-11-14T22:13:20.123Z info x\n");

    struct stat st;
    assert_int_equal(fstat(sink[0], &st), 0);
    unsigned long long dev = (unsigned long long)st.st_dev;
    unsigned long long ino = (unsigned long long)st.st_ino;
    char bad[8][64];
    snprintf(bad[0], sizeof(bad[0]), "%llu", dev);
    snprintf(bad[1], sizeof(bad[1]), "%llu:", dev);
    snprintf(bad[2], sizeof(bad[2]), ":%llu", ino);
    snprintf(bad[3], sizeof(bad[3]), "%llu:%llux", dev, ino);
    snprintf(bad[4], sizeof(bad[4]), " %llu:%llu", dev, ino);
    snprintf(bad[5], sizeof(bad[5]), "%llu: %llu", dev, ino);
    snprintf(bad[6], sizeof(bad[6]), "+%llu:%llu", dev, ino);
    snprintf(bad[7], sizeof(bad[7]), "%llu:%llu99999999999999999999", dev, ino);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(setenv("JOURNAL_STREAM", bad[i], 1), 0);
        sl_log_init();
        SL_INFO(NULL, "x");
        const char *got = next_line();
        assert_non_null(got);
        if (got[0] == '<')
            fail_msg("JOURNAL_STREAM=\"%s\" was taken for the journal", bad[i]);
    }
    /* Matching, then unset: back to plain. */
    set_journal_stream(sink[0], 0, 0);
    sl_log_init();
    SL_INFO(NULL, "x");
    expect_line("<6>x\n");
    unsetenv("JOURNAL_STREAM");
    sl_log_init();
    SL_INFO(NULL, "x");
    expect_line("2023-11-14T22:13:20.123Z info x\n");
}

static void test_long_message_is_cut(void **state)
{
    static const char head[] = "2023-11-14T22:13:20.123Z info [w] ";
    size_t room = SL_LOG_LINE_MAX - (sizeof(head) - 1) - 1; /* newline */
    static char msg[SL_LOG_LINE_MAX * 2];

    /* Exactly fills the line: written whole. */
    memset(msg, 'x', room);
    msg[room] = '\0';
    SL_INFO("w", "%s", msg);
    const char *got = next_line();
    assert_non_null(got);
    assert_int_equal(strlen(got), SL_LOG_LINE_MAX);
    assert_memory_equal(got, head, sizeof(head) - 1);
    assert_memory_equal(got + sizeof(head) - 1, msg, room);
    assert_int_equal(got[SL_LOG_LINE_MAX - 1], '\n');

    /* One byte more: cut to the same length, ending with the marker. */
    memset(msg, 'x', room + 1);
    msg[room + 1] = '\0';
    SL_INFO("w", "%s", msg);
    got = next_line();
    assert_non_null(got);
    size_t mark = sizeof(SL_LOG_CUT_MARK) - 1;
    assert_int_equal(strlen(got), SL_LOG_LINE_MAX);
    assert_memory_equal(got + SL_LOG_LINE_MAX - 1 - mark, SL_LOG_CUT_MARK "\n", mark + 1);
    assert_int_equal(got[SL_LOG_LINE_MAX - 2 - mark], 'x');

    /* Far longer, from a format (not just %s): still one line of the maximum length. */
    SL_INFO("w", "%*d", SL_LOG_LINE_MAX * 2 - 10, 7);
    got = next_line();
    assert_non_null(got);
    assert_int_equal(strlen(got), SL_LOG_LINE_MAX);
    assert_null(next_line());

    /* A two-byte character straddling the cut is dropped whole: no lone lead byte remains. */
    size_t keep = room - mark; /* message bytes before the marker */
    memset(msg, 'x', keep - 1);
    memcpy(msg + keep - 1, "\xc3\xa9", 2); /* U+00E9 across the boundary */
    memset(msg + keep + 1, 'y', 100);
    msg[keep + 101] = '\0';
    SL_INFO("w", "%s", msg);
    got = next_line();
    assert_non_null(got);
    assert_int_equal(strlen(got), SL_LOG_LINE_MAX - 1);
    const char *cut = got + SL_LOG_LINE_MAX - 2 - mark;
    assert_memory_equal(cut, SL_LOG_CUT_MARK "\n", mark + 1);
    assert_int_equal(cut[-1], 'x');

    /* The suppressed note survives a cut (it is sized before the message). */
    sl_log_set_rate_limit(1, 1000);
    for (int i = 0; i < 4; i++) {
        if (i == 3)
            fake_now += 1000;
        SL_INFO("w", "%s", msg);
    }
    assert_non_null(next_line());
    got = next_line();
    assert_non_null(got);
    assert_true(strlen(got) <= SL_LOG_LINE_MAX);
    static const char note[] = SL_LOG_CUT_MARK " (2 suppressed)\n";
    assert_string_equal(got + strlen(got) - (sizeof(note) - 1), note);
    assert_null(next_line());
}

static void test_long_who_is_bounded(void **state)
{
    static char who[3 * SL_LOG_LINE_MAX];
    memset(who, 'w', sizeof(who) - 1);
    SL_ERR(who, "the message");
    const char *got = next_line();
    assert_non_null(got);
    assert_true(strlen(got) < SL_LOG_LINE_MAX);
    static const char tail[] = "] the message\n";
    assert_string_equal(got + strlen(got) - (sizeof(tail) - 1), tail);
}

static void test_errno_preserved_and_percent_m(void **state)
{
    errno = ENOENT;
    SL_ERR(NULL, "open: %m");
    assert_int_equal(errno, ENOENT);
    char want[256];
    snprintf(want, sizeof(want), "2023-11-14T22:13:20.123Z err open: %s\n", strerror(ENOENT));
    expect_line(want);

    /* Also when the line is suppressed. */
    sl_log_set_rate_limit(1, 1000);
    for (int i = 0; i < 2; i++) {
        errno = EPIPE;
        SL_ERR(NULL, "again");
        assert_int_equal(errno, EPIPE);
    }
    assert_int_equal(count_lines(), 1);
}

static int64_t clobbering_clock(void)
{
    errno = EIO;
    return fake_now;
}

static void test_errno_survives_failures_inside(void **state)
{
    /* A clock that touches errno runs before the message is formatted: %m still sees ours. */
    sl_log_set_clock(clobbering_clock);
    errno = ENOENT;
    SL_ERR(NULL, "%m");
    assert_int_equal(errno, ENOENT);
    char want[256];
    snprintf(want, sizeof(want), "2023-11-14T22:13:20.123Z err %s\n", strerror(ENOENT));
    expect_line(want);

    sl_log_set_rate_limit(1, 1000);
    for (int i = 0; i < 2; i++) {
        errno = ENOENT;
        SL_ERR(NULL, "limited");
        assert_int_equal(errno, ENOENT);
    }
    assert_int_equal(count_lines(), 1);

    /* A failing write (a closed sink) is silent and leaves errno alone too. */
    sl_log_set_fd(-1);
    errno = ENOENT;
    SL_ERR(NULL, "nowhere");
    assert_int_equal(errno, ENOENT);
}

/* One call site for the rate-limit tests, so only `who` and the clock vary. */
static void log_from_one_site(const char *who, int i)
{
    SL_WARN(who, "tick %d", i);
}

static void test_rate_limit_window(void **state)
{
    sl_log_set_rate_limit(SL_LOG_BURST, SL_LOG_INTERVAL_MS);
    int64_t t0 = fake_now;
    for (int i = 0; i < 25; i++)
        log_from_one_site("a", i);
    for (int i = 0; i < SL_LOG_BURST; i++) {
        char want[128];
        snprintf(want, sizeof(want), "2023-11-14T22:13:20.123Z warning [a] tick %d\n", i);
        expect_line(want);
    }
    assert_null(next_line());

    /* The last millisecond of the window still suppresses. */
    fake_now = t0 + SL_LOG_INTERVAL_MS - 1;
    log_from_one_site("a", 25);
    assert_null(next_line());

    /* Another who at the same site has its own window. */
    log_from_one_site("b", 0);
    expect_line("2023-11-14T22:13:25.122Z warning [b] tick 0\n");

    /* who is keyed by its text, not its address. */
    char copy[] = "a";
    log_from_one_site(copy, 26);
    assert_null(next_line());

    /* The window ends: the next line reports what was dropped, then the count starts over. */
    fake_now = t0 + SL_LOG_INTERVAL_MS;
    log_from_one_site("a", 27);
    expect_line("2023-11-14T22:13:25.123Z warning [a] tick 27 (17 suppressed)\n");
    log_from_one_site("a", 28);
    expect_line("2023-11-14T22:13:25.123Z warning [a] tick 28\n");
    for (int i = 0; i < 20; i++)
        log_from_one_site("a", 100 + i);
    assert_int_equal(count_lines(), SL_LOG_BURST - 2);

    /* A window with nothing suppressed adds no note. */
    fake_now += 2 * SL_LOG_INTERVAL_MS;
    log_from_one_site("b", 1);
    expect_line("2023-11-14T22:13:35.123Z warning [b] tick 1\n");
}

static void test_rate_limit_clock_steps_back(void **state)
{
    sl_log_set_rate_limit(2, 1000);
    for (int i = 0; i < 5; i++)
        log_from_one_site("a", i);
    assert_int_equal(count_lines(), 2);
    fake_now -= 1; /* e.g. NTP stepped the clock */
    log_from_one_site("a", 5);
    expect_line("2023-11-14T22:13:20.122Z warning [a] tick 5 (3 suppressed)\n");
}

static void test_rate_limit_spares_debug_and_can_be_off(void **state)
{
    sl_log_set_rate_limit(SL_LOG_BURST, SL_LOG_INTERVAL_MS);
    sl_log_threshold = SL_LOG_DEBUG;
    for (int i = 0; i < 3 * SL_LOG_BURST; i++)
        SL_DEBUG(NULL, "hexdump row %d", i);
    assert_int_equal(count_lines(), 3 * SL_LOG_BURST);

    sl_log_set_rate_limit(0, SL_LOG_INTERVAL_MS);
    for (int i = 0; i < 3 * SL_LOG_BURST; i++)
        log_from_one_site("a", i);
    assert_int_equal(count_lines(), 3 * SL_LOG_BURST);

    /* Setting the limit forgets history: a saturated site writes again at once. */
    sl_log_set_rate_limit(1, 1000);
    log_from_one_site("a", 0);
    log_from_one_site("a", 1);
    assert_int_equal(count_lines(), 1);
    sl_log_set_rate_limit(1, 1000);
    log_from_one_site("a", 2);
    expect_line("2023-11-14T22:13:20.123Z warning [a] tick 2\n");
}

static void test_rate_limit_many_sites(void **state)
{
    /* Far more sites than the table holds: every site's first line is written, and a full
     * table gives up the sites whose windows began longest ago, so the newest are still limited
     * (a full table that dropped its newest entries instead would lose several of these). */
    sl_log_set_rate_limit(1, INT64_C(1) << 40);
    char who[32];
    size_t lines = 0;
    enum { SITES = 5000, RECENT = 20 };
    for (int i = 0; i < SITES; i++) {
        fake_now++;
        snprintf(who, sizeof(who), "w%d", i);
        log_from_one_site(who, i);
        if (i % 64 == 0)
            lines += count_lines(); /* drain before the socket's buffer fills and blocks */
    }
    lines += count_lines();
    assert_int_equal(lines, SITES);
    for (int i = SITES - RECENT; i < SITES; i++) {
        snprintf(who, sizeof(who), "w%d", i);
        log_from_one_site(who, -1);
    }
    assert_int_equal(count_lines(), 0);
}

static void test_rate_limit_sites_do_not_evict_each_other(void **state)
{
    /* While the table has room, distinct sites keep their own history. With 20 sites in 256
     * slots a probe run overflows about once in 10^7 rounds, while sites that shared a start
     * slot and evicted each other would show in half of the rounds. */
    char who[32];
    for (int round = 0; round < 16; round++) {
        sl_log_set_rate_limit(1, 1000);
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < 20; i++) {
                snprintf(who, sizeof(who), "r%d-s%d", round, i);
                log_from_one_site(who, pass);
            }
            assert_int_equal(count_lines(), pass == 0 ? 20 : 0);
        }
    }
}

static void *log_from_thread(void *arg)
{
    for (int i = 0; i < 1000; i++)
        log_from_one_site("shared", i);
    return NULL;
}

static void test_rate_limit_counts_across_threads(void **state)
{
    /* Four threads on one site: the window admits exactly the burst and counts every drop. */
    sl_log_set_rate_limit(100, 1000);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, log_from_thread, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(count_lines(), 100);
    fake_now += 1000;
    log_from_one_site("shared", 0);
    expect_line("2023-11-14T22:13:21.123Z warning [shared] tick 0 (3900 suppressed)\n");
}

static void test_levels_by_name(void **state)
{
    static const struct {
        const char *name;
        int level;
    } good[] = {
        {"emerg", SL_LOG_EMERG},  {"alert", SL_LOG_ALERT},   {"crit", SL_LOG_CRIT},
        {"err", SL_LOG_ERR},      {"error", SL_LOG_ERR},     {"warning", SL_LOG_WARNING},
        {"warn", SL_LOG_WARNING}, {"notice", SL_LOG_NOTICE}, {"info", SL_LOG_INFO},
        {"debug", SL_LOG_DEBUG},  {"DEBUG", SL_LOG_DEBUG},   {"Warn", SL_LOG_WARNING},
        {"0", SL_LOG_EMERG},      {"7", SL_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(sl_log_level_parse(good[i].name), good[i].level);
        sl_log_threshold = -1;
        assert_int_equal(sl_log_set_level_name(good[i].name), 0);
        assert_int_equal(sl_log_threshold, good[i].level);
    }
    static const char *const bad[] = {"",   "inf", "infos",    "debug ", " info",    "8",
                                      "-1", "07",  "warnings", "errors", "critical", "none"};
    sl_log_threshold = SL_LOG_NOTICE;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sl_log_level_parse(bad[i]), SL_EPARSE);
        assert_int_equal(sl_log_set_level_name(bad[i]), SL_EPARSE);
        assert_int_equal(sl_log_threshold, SL_LOG_NOTICE);
    }
    assert_int_equal(sl_log_set_level_name(NULL), SL_EPARSE);

    for (int level = SL_LOG_EMERG; level <= SL_LOG_DEBUG; level++)
        assert_int_equal(sl_log_level_parse(sl_log_level_name(level)), level);
    assert_string_equal(sl_log_level_name(SL_LOG_ERR), "err");
    assert_string_equal(sl_log_level_name(SL_LOG_WARNING), "warning");
    assert_string_equal(sl_log_level_name(-1), "invalid");
    assert_string_equal(sl_log_level_name(8), "invalid");
}

/* Two processes writing maximum-length lines to one pipe: every line read back is whole. */
static void test_processes_do_not_interleave(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    enum { CHILDREN = 2, LINES = 200 };
    pid_t kids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        kids[c] = fork();
        assert_true(kids[c] >= 0);
        if (kids[c] == 0) {
            close(p[0]);
            sl_log_set_fd(p[1]);
            static char msg[SL_LOG_LINE_MAX];
            memset(msg, 'a' + c, sizeof(msg) - 1);
            for (int i = 0; i < LINES; i++)
                SL_INFO(NULL, "%s", msg);
            _exit(0);
        }
    }
    close(p[1]);
    static char all[CHILDREN * LINES * SL_LOG_LINE_MAX + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], all + len, sizeof(all) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(p[0]);
    for (int c = 0; c < CHILDREN; c++) {
        int status;
        assert_int_equal(waitpid(kids[c], &status, 0), kids[c]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(len, (size_t)CHILDREN * LINES * SL_LOG_LINE_MAX);
    static const char head[] = "2023-11-14T22:13:20.123Z info ";
    size_t body = SL_LOG_LINE_MAX - (sizeof(head) - 1) - (sizeof(SL_LOG_CUT_MARK) - 1) - 1;
    int seen[CHILDREN] = {0};
    for (size_t off = 0; off < len; off += SL_LOG_LINE_MAX) {
        const char *line = all + off;
        assert_memory_equal(line, head, sizeof(head) - 1);
        char c = line[sizeof(head) - 1];
        assert_true(c == 'a' || c == 'b');
        for (size_t i = 0; i < body; i++)
            assert_int_equal(line[sizeof(head) - 1 + i], c);
        assert_memory_equal(line + sizeof(head) - 1 + body, SL_LOG_CUT_MARK "\n",
                            sizeof(SL_LOG_CUT_MARK));
        seen[c - 'a']++;
    }
    assert_int_equal(seen[0], LINES);
    assert_int_equal(seen[1], LINES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_threshold_is_info),
        cmocka_unit_test_setup_teardown(test_threshold_skips_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newlines_become_spaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_detection_is_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_who_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved_and_percent_m, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_survives_failures_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_clock_steps_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_spares_debug_and_can_be_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_sites_do_not_evict_each_other, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_many_sites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_counts_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_do_not_interleave, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
