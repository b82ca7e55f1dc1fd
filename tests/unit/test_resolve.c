/* Unit tests for common/resolve.c: numeric addresses answer at once, names answer through the
 * loop, and a cancelled lookup never calls back (ASan checks that nothing leaks or is used
 * after it is freed). Names come from /etc/hosts ("localhost"), never from DNS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/resolve.h"

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

struct answer {
    int calls;
    int rc;
    char first[INET6_ADDRSTRLEN];
    int port;
    int count;
};

static void on_answer(void *arg, struct addrinfo *ai, int rc)
{
    struct answer *a = arg;
    a->calls++;
    a->rc = rc;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        assert_int_equal(p->ai_socktype, SOCK_STREAM);
        if (a->count++ > 0)
            continue;
        if (p->ai_family == AF_INET) {
            const struct sockaddr_in *s = (const void *)p->ai_addr;
            inet_ntop(AF_INET, &s->sin_addr, a->first, sizeof(a->first));
            a->port = ntohs(s->sin_port);
        } else {
            const struct sockaddr_in6 *s = (const void *)p->ai_addr;
            inet_ntop(AF_INET6, &s->sin6_addr, a->first, sizeof(a->first));
            a->port = ntohs(s->sin6_port);
        }
    }
    if (ai)
        freeaddrinfo(ai);
}

static void test_numeric_answers_at_once(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct answer a = {0};
    struct sl_resolve *r = (struct sl_resolve *)1;
    assert_int_equal(sl_resolve_start(loop, "127.0.0.1", 9092, on_answer, &a, &r), 0);
    assert_null(r);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, 0);
    assert_string_equal(a.first, "127.0.0.1");
    assert_int_equal(a.port, 9092);
    assert_int_equal(a.count, 1);

    struct answer b = {0};
    assert_int_equal(sl_resolve_start(loop, "::1", 65535, on_answer, &b, &r), 0);
    assert_null(r);
    assert_int_equal(b.calls, 1);
    if (b.rc == 0) { /* a host without IPv6 may refuse it; it must not hang or crash */
        assert_string_equal(b.first, "::1");
        assert_int_equal(b.port, 65535);
    }
    ev_loop_destroy(loop);
}

static void test_name_answers_through_loop(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct answer a = {0};
    struct sl_resolve *r = NULL;
    assert_int_equal(sl_resolve_start(loop, "localhost", 2020, on_answer, &a, &r), 0);
    assert_non_null(r);
    assert_int_equal(a.calls, 0); /* never before the loop runs */
    for (int i = 0; i < 1000 && a.calls == 0; i++)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, 0);
    assert_true(a.count >= 1);
    assert_int_equal(a.port, 2020);
    assert_true(strcmp(a.first, "127.0.0.1") == 0 || strcmp(a.first, "::1") == 0);
    /* The finished lookup left no watcher behind: the loop has nothing left to wait for. */
    assert_int_equal(ev_run(loop, EVRUN_NOWAIT), 0);
    ev_loop_destroy(loop);
}

static void test_cancel_never_calls_back(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct answer a = {0};
    /* Cancelled at once (the thread is still looking up), and cancelled after the thread has
     * reported but before the loop has run: both free everything, neither calls back. */
    for (int i = 0; i < 20; i++) {
        struct sl_resolve *r = NULL;
        assert_int_equal(sl_resolve_start(loop, "localhost", 1, on_answer, &a, &r), 0);
        assert_non_null(r);
        if (i % 2)
            usleep(20000);
        sl_resolve_cancel(r);
    }
    sl_resolve_cancel(NULL);
    for (int i = 0; i < 10; i++)
        ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(a.calls, 0);
    ev_loop_destroy(loop);
    /* Threads still running after the loop is gone must not touch it: give them time to end
     * under ASan's eye. */
    usleep(200000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_answers_at_once),
        cmocka_unit_test(test_name_answers_through_loop),
        cmocka_unit_test(test_cancel_never_calls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
