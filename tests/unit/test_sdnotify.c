/* Unit tests for sd_notify: payloads on path and abstract sockets, errors, the watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

/* A bound datagram socket standing in for the service manager, in a fresh temp dir. */
struct fixture {
    char dir[64];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int fd;
};

static int bind_path(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, strlen(path) + 1);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Binds the abstract name `name` (without its leading NUL). */
static int bind_abstract(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(addr.sun_path + 1, name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    if (bind(fd, (struct sockaddr *)&addr, alen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int setup(void **state)
{
    static struct fixture f;
    snprintf(f.dir, sizeof(f.dir), "/tmp/sl-sdnotify-XXXXXX");
    if (!mkdtemp(f.dir))
        return -1;
    snprintf(f.path, sizeof(f.path), "%s/notify", f.dir);
    f.fd = bind_path(f.path);
    if (f.fd < 0)
        return -1;
    setenv("NOTIFY_SOCKET", f.path, 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close(f->fd);
    unlink(f->path);
    rmdir(f->dir);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return 0;
}

/* The next datagram on fd as a string, or NULL when none is queued. A datagram is queued by the
 * time sendto returns, so no waiting is needed. */
static const char *recv_payload(int fd)
{
    static char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0) {
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return NULL;
    }
    buf[n] = '\0';
    assert_int_equal(strlen(buf), (size_t)n); /* no NUL inside the payload */
    return buf;
}

static void expect_payload(int fd, const char *want)
{
    const char *got = recv_payload(fd);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_null(recv_payload(fd));
}

static uint64_t monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void check_every_message(int fd)
{
    assert_int_equal(sl_sdnotify_ready(), 0);
    expect_payload(fd, "READY=1");
    assert_int_equal(sl_sdnotify_stopping(), 0);
    expect_payload(fd, "STOPPING=1");
    assert_int_equal(sl_sdnotify_watchdog(), 0);
    expect_payload(fd, "WATCHDOG=1");
    assert_int_equal(sl_sdnotify_status("serving %d topics on %s", 3, ":9092"), 0);
    expect_payload(fd, "STATUS=serving 3 topics on :9092");
    assert_int_equal(sl_sdnotify("STATUS=x\nERRNO=2"), 0);
    expect_payload(fd, "STATUS=x\nERRNO=2");

    uint64_t before = monotonic_usec();
    assert_int_equal(sl_sdnotify_reloading(), 0);
    uint64_t after = monotonic_usec();
    const char *got = recv_payload(fd);
    assert_non_null(got);
    static const char head[] = "RELOADING=1\nMONOTONIC_USEC=";
    assert_memory_equal(got, head, sizeof(head) - 1);
    const char *num = got + sizeof(head) - 1;
    assert_true(num[0] >= '1' && num[0] <= '9');
    char *end;
    uint64_t usec = strtoull(num, &end, 10);
    assert_int_equal(*end, '\0');
    assert_in_range(usec, before, after);
}

static void test_path_socket(void **state)
{
    struct fixture *f = *state;
    check_every_message(f->fd);
}

static void test_abstract_socket(void **state)
{
    char name[64];
    snprintf(name, sizeof(name), "sl-sdnotify-test/%d/%ld", (int)getpid(), (long)time(NULL));
    int fd = bind_abstract(name);
    assert_true(fd >= 0);
    char env[80];
    snprintf(env, sizeof(env), "@%s", name);
    setenv("NOTIFY_SOCKET", env, 1);
    check_every_message(fd);

    /* The name is exact: no trailing NUL was sent as part of it, or this would not arrive. */
    struct fixture *f = *state;
    assert_null(recv_payload(f->fd));
    close(fd);
}

static void test_status_is_one_line_and_bounded(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sl_sdnotify_status("a\nREADY=1\n"), 0);
    expect_payload(f->fd, "STATUS=a READY=1 ");

    char text[SL_SDNOTIFY_STATUS_MAX + 64];
    char want[sizeof(text) + 16];

    /* Exactly the maximum: whole. */
    memset(text, 's', SL_SDNOTIFY_STATUS_MAX);
    text[SL_SDNOTIFY_STATUS_MAX] = '\0';
    assert_int_equal(sl_sdnotify_status("%s", text), 0);
    snprintf(want, sizeof(want), "STATUS=%s", text);
    expect_payload(f->fd, want);

    /* One more byte: cut to the maximum. */
    text[SL_SDNOTIFY_STATUS_MAX] = 't';
    text[SL_SDNOTIFY_STATUS_MAX + 1] = '\0';
    assert_int_equal(sl_sdnotify_status("%s", text), 0);
    text[SL_SDNOTIFY_STATUS_MAX] = '\0';
    snprintf(want, sizeof(want), "STATUS=%s", text);
    expect_payload(f->fd, want);

    /* A 3-byte character across the limit goes whole: the status stays valid UTF-8. */
    memset(text, 's', SL_SDNOTIFY_STATUS_MAX - 1);
    memcpy(text + SL_SDNOTIFY_STATUS_MAX - 1, "\xe2\x82\xac", 3); /* U+20AC */
    text[SL_SDNOTIFY_STATUS_MAX + 2] = '\0';
    assert_int_equal(sl_sdnotify_status("%s", text), 0);
    text[SL_SDNOTIFY_STATUS_MAX - 1] = '\0';
    snprintf(want, sizeof(want), "STATUS=%s", text);
    expect_payload(f->fd, want);

    assert_int_equal(sl_sdnotify_status("%s", ""), 0);
    expect_payload(f->fd, "STATUS=");
}

static void test_unset_sends_nothing(void **state)
{
    struct fixture *f = *state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sl_sdnotify_ready(), 0);
    assert_int_equal(sl_sdnotify_reloading(), 0);
    assert_int_equal(sl_sdnotify_stopping(), 0);
    assert_int_equal(sl_sdnotify_status("x"), 0);
    assert_int_equal(sl_sdnotify_watchdog(), 0);
    assert_null(recv_payload(f->fd));

    /* A bad state is a programming error, reported even without a manager. */
    assert_int_equal(sl_sdnotify(NULL), -EINVAL);
    assert_int_equal(sl_sdnotify(""), -EINVAL);
}

static void test_bad_notify_socket(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *env;
        int want;
    } cases[] = {
        {"", -EAFNOSUPPORT},
        {"notify", -EAFNOSUPPORT},
        {"run/systemd/notify", -EAFNOSUPPORT},
        {"vsock:2:1234", -EAFNOSUPPORT},
        {"@", -EINVAL},
        {"/", -EINVAL},
        {"/tmp", -ECONNREFUSED}, /* a directory, not a socket */
        {"/nonexistent-sl-dir/notify", -ENOENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv("NOTIFY_SOCKET", cases[i].env, 1);
        int r = sl_sdnotify_ready();
        if (r != cases[i].want)
            fail_msg("NOTIFY_SOCKET=\"%s\": got %d, want %d", cases[i].env, r, cases[i].want);
    }

    /* A regular file is not a socket. */
    char file[96];
    snprintf(file, sizeof(file), "%s/plain", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    setenv("NOTIFY_SOCKET", file, 1);
    assert_int_equal(sl_sdnotify_ready(), -ECONNREFUSED);
    unlink(file);

    assert_null(recv_payload(f->fd));
}

static void test_path_length_limits(void **state)
{
    struct fixture *f = *state;
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1; /* a NUL must fit */

    /* The longest path that fits works end to end. */
    char path[256];
    size_t dir_len = strlen(f->dir);
    assert_true(dir_len + 2 < max);
    memcpy(path, f->dir, dir_len);
    path[dir_len] = '/';
    memset(path + dir_len + 1, 'n', max - dir_len - 1);
    path[max] = '\0';
    int fd = bind_path(path);
    assert_true(fd >= 0);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sl_sdnotify_ready(), 0);
    expect_payload(fd, "READY=1");
    close(fd);
    unlink(path);

    /* One more byte does not fit. */
    path[max] = 'n';
    path[max + 1] = '\0';
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sl_sdnotify_ready(), -E2BIG);

    /* Abstract: '@' plus max - 1 bytes fits, one more does not (the same bound as systemd's). */
    char name[256];
    memset(name, 'a', max - 1);
    name[max - 1] = '\0';
    fd = bind_abstract(name);
    assert_true(fd >= 0);
    char env[260];
    snprintf(env, sizeof(env), "@%s", name);
    setenv("NOTIFY_SOCKET", env, 1);
    assert_int_equal(sl_sdnotify_watchdog(), 0);
    expect_payload(fd, "WATCHDOG=1");
    close(fd);
    snprintf(env, sizeof(env), "@%sa", name);
    setenv("NOTIFY_SOCKET", env, 1);
    assert_int_equal(sl_sdnotify_watchdog(), -E2BIG);
}

static void set_watchdog(const char *usec, const char *pid)
{
    if (usec)
        setenv("WATCHDOG_USEC", usec, 1);
    else
        unsetenv("WATCHDOG_USEC");
    if (pid)
        setenv("WATCHDOG_PID", pid, 1);
    else
        unsetenv("WATCHDOG_PID");
}

static void test_watchdog_env(void **state)
{
    char self[32], other[32];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
    static const char *const garbage = "3000000x";
    const struct {
        const char *usec;
        const char *pid;
        int64_t want;
    } cases[] = {
        {NULL, NULL, 0},
        {NULL, self, 0},
        {"3000000", NULL, 3000000},
        {"3000000", self, 3000000},
        {"1", self, 1},
        {"3000000", other, 0},
        {"3000000", "abc", 0},
        {"3000000", "", 0},
        {"3000000", "-1", 0},
        {"0", NULL, 0},
        {"", NULL, 0},
        {garbage, NULL, 0},
        {"abc", self, 0},
        {"-5", NULL, 0},
        {"+5", NULL, 0},
        {"5 ", NULL, 0},
        {"9223372036854775807", NULL, INT64_MAX},
        {"9223372036854775808", NULL, 0},
        {"99999999999999999999999", NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        set_watchdog(cases[i].usec, cases[i].pid);
        int64_t got = sl_sdnotify_watchdog_usec();
        if (got != cases[i].want)
            fail_msg("WATCHDOG_USEC=%s WATCHDOG_PID=%s: got %" PRId64 ", want %" PRId64,
                     cases[i].usec ? cases[i].usec : "(unset)",
                     cases[i].pid ? cases[i].pid : "(unset)", got, cases[i].want);
    }
}

/* Where the reading is unambiguous, libsystemd's own sd_watchdog_enabled agrees with ours. */
static void test_watchdog_matches_libsystemd(void **state)
{
    char self[32], other[32];
    snprintf(self, sizeof(self), "%d", (int)getpid());
    snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
    const struct {
        const char *usec;
        const char *pid;
    } cases[] = {
        {NULL, NULL},  {"3000000", NULL}, {"3000000", self}, {"3000000", other}, {"0", NULL},
        {"abc", NULL}, {"20000000", "x"}, {NULL, self},      {"12x", self},      {"-1", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        set_watchdog(cases[i].usec, cases[i].pid);
        uint64_t sd_usec = 0;
        int r = sd_watchdog_enabled(0, &sd_usec);
        int64_t want = r > 0 ? (int64_t)sd_usec : 0;
        assert_int_equal(sl_sdnotify_watchdog_usec(), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_path_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abstract_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_is_one_line_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unset_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_notify_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_length_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_matches_libsystemd, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
