/* Unit tests for the /metrics and /health server, driven by raw sockets from the test's own
 * libev loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/http.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long any single wait may take before the test gives up; nothing here needs more than a
 * fraction of it. */
#define WAIT_MAX 5.0

struct fx {
    struct ev_loop *loop;
    struct sl_metrics *reg;
    struct sl_metric *requests;
    struct sl_http *srv;
    int health_status;
    const char *health_text;
    int health_calls;
};

struct client {
    int fd;
    char *buf; /* received, not yet taken as a response */
    size_t len;
    size_t cap;
    bool eof;   /* EOF or reset seen */
    bool reset; /* ... and it was a reset (the server closed with our bytes unread) */
};

struct resp {
    int status;
    char head[2048]; /* status line and headers, NUL-terminated */
    char *body;      /* malloc'd, NUL-terminated */
    size_t body_len;
};

/* --- fixture --------------------------------------------------------------------------- */

static int fx_health(void *arg, struct sl_buf *body)
{
    struct fx *f = arg;
    f->health_calls++;
    if (f->health_text)
        sl_buf_append_str(body, f->health_text);
    return f->health_status;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    f->reg = sl_metrics_new();
    assert_non_null(f->reg);
    const struct sl_metric_label l[] = {{"api", "Produce"}};
    assert_int_equal(
        sl_metrics_add_counter(f->reg, "sl_requests_total", "Requests.", l, 1, &f->requests, NULL),
        0);
    sl_metric_add(f->requests, 3);
    f->health_status = 200;
    *state = f;
    return 0;
}

/* Every watcher the server armed must be gone once it is freed. */
static int teardown(void **state)
{
    struct fx *f = *state;
    sl_http_free(f->srv);
    assert_int_equal(ev_run(f->loop, EVRUN_NOWAIT), 0);
    sl_metrics_free(f->reg);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static int fx_new(struct fx *f, const char *listen, double idle, unsigned max_conns,
                  struct sl_err *err)
{
    struct sl_http_config cfg = {
        .listen = listen,
        .metrics = f->reg,
        .health = fx_health,
        .health_arg = f,
        .idle_timeout = idle,
        .max_conns = max_conns,
        .name = "test.http",
    };
    return sl_http_new(f->loop, &cfg, &f->srv, err);
}

static void fx_start(struct fx *f, double idle, unsigned max_conns)
{
    struct sl_err err = {{0}};
    int rc = fx_new(f, "127.0.0.1:0", idle, max_conns, &err);
    if (rc != 0)
        fprintf(stderr, "sl_http_new: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(sl_http_port(f->srv) > 0);
    sl_http_start(f->srv);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/* One loop iteration, blocking at most max_wait seconds. */
static void pump(struct fx *f, double max_wait)
{
    ev_timer t;
    ev_timer_init(&t, on_tick, max_wait, 0.);
    ev_timer_start(f->loop, &t);
    ev_run(f->loop, EVRUN_ONCE);
    ev_timer_stop(f->loop, &t);
}

static void pump_for(struct fx *f, double seconds)
{
    ev_tstamp end = ev_time() + seconds;
    while (ev_time() < end)
        pump(f, 0.005);
}

/* --- raw client ------------------------------------------------------------------------ */

static struct client *client_new_at(int family, int port, int rcvbuf)
{
    struct client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    if (rcvbuf > 0)
        assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)port),
                                 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        rc = connect(c->fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(c->fd, (struct sockaddr *)&a, sizeof(a));
    }
    /* The kernel completes the handshake from the listen backlog: no accept needed yet. */
    assert_int_equal(rc, 0);
    assert_int_equal(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK), 0);
    return c;
}

static struct client *client_new(struct fx *f)
{
    return client_new_at(AF_INET, sl_http_port(f->srv), 0);
}

static void client_free(struct client *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

/* Reads whatever has arrived. */
static void client_fill(struct client *c)
{
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap + 1);
            assert_non_null(c->buf);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            c->eof = true;
            c->reset = c->reset || n < 0;
        } else {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        }
        return;
    }
}

/* Sends everything, running the loop while the socket is full. A server that closes first
 * (it answered early and gave up draining) ends the sending, marked as a reset. */
static void client_send(struct fx *f, struct client *c, const void *p, size_t n)
{
    const char *s = p;
    ev_tstamp end = ev_time() + WAIT_MAX;
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            c->reset = true;
            return;
        }
        assert_true(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        assert_true(ev_time() < end);
        pump(f, 0.01);
    }
}

static void client_send_str(struct fx *f, struct client *c, const char *s)
{
    client_send(f, c, s, strlen(s));
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* A header's value from r->head, or NULL. */
static const char *resp_header(const struct resp *r, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            h += nlen + 1;
            while (*h == ' ')
                h++;
            const char *e = strstr(h, "\r\n");
            size_t vlen = e ? (size_t)(e - h) : strlen(h);
            snprintf(out, size, "%.*s", (int)vlen, h);
            return out;
        }
    }
    return NULL;
}

/* Takes one complete response off the front of c->buf. */
static bool resp_take(struct client *c, bool head_req, struct resp *r)
{
    if (!c->buf)
        return false;
    c->buf[c->len] = '\0';
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return false;
    size_t head_len = (size_t)(end - c->buf) + 2;
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    char v[64];
    assert_non_null(resp_header(r, "Content-Length", v, sizeof(v)));
    size_t cl = strtoul(v, NULL, 10);
    size_t body_len = head_req ? 0 : cl;
    size_t total = head_len + 2 + body_len;
    if (c->len < total)
        return false;
    r->body = malloc(body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, c->buf + head_len + 2, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    return true;
}

/* Runs the loop until one whole response is in; false on EOF or timeout first. */
static bool read_resp(struct fx *f, struct client *c, bool head_req, struct resp *r)
{
    ev_tstamp end = ev_time() + WAIT_MAX;
    memset(r, 0, sizeof(*r));
    for (;;) {
        client_fill(c);
        if (resp_take(c, head_req, r))
            return true;
        if (c->eof || ev_time() > end)
            return false;
        pump(f, 0.01);
    }
}

/* Runs the loop until the server closes the connection; false on timeout. */
static bool wait_eof(struct fx *f, struct client *c, double max)
{
    ev_tstamp end = ev_time() + max;
    for (;;) {
        client_fill(c);
        if (c->eof)
            return true;
        if (ev_time() > end)
            return false;
        pump(f, 0.01);
    }
}

/* Sends one request on a fresh connection and expects status, then (if must_close) the
 * server's EOF: an orderly one, unless may_reset (the server is allowed to give up draining). */
static void expect_one_ex(struct fx *f, const char *req, size_t req_len, int status,
                          bool must_close, bool may_reset)
{
    struct client *c = client_new(f);
    client_send(f, c, req, req_len);
    struct resp r;
    if (!read_resp(f, c, false, &r)) {
        fprintf(stderr, "no response to %.60s\n", req);
        fail();
    }
    if (r.status != status)
        fprintf(stderr, "request %.60s\n", req);
    assert_int_equal(r.status, status);
    char v[64];
    if (must_close) {
        assert_non_null(resp_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        assert_true(wait_eof(f, c, WAIT_MAX));
        assert_int_equal(c->len, 0); /* nothing after the answer */
        if (!may_reset)
            assert_false(c->reset);
    } else {
        assert_null(resp_header(&r, "Connection", v, sizeof(v)));
    }
    resp_free(&r);
    client_free(c);
}

static void expect_one(struct fx *f, const char *req, size_t req_len, int status, bool must_close)
{
    expect_one_ex(f, req, req_len, status, must_close, false);
}

static void render(struct fx *f, struct sl_buf *b)
{
    sl_buf_init(b);
    assert_int_equal(sl_metrics_render(f->reg, b), 0);
}

/* --- tests ----------------------------------------------------------------------------- */

static void test_get_metrics(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *c = client_new(f);
    struct sl_buf want;
    char v[128];

    for (int round = 0; round < 2; round++) {
        render(f, &want);
        client_send_str(f, c, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        struct resp r;
        assert_true(read_resp(f, c, false, &r));
        assert_int_equal(r.status, 200);
        assert_non_null(resp_header(&r, "Content-Type", v, sizeof(v)));
        assert_string_equal(v, "text/plain; version=0.0.4; charset=utf-8");
        assert_non_null(resp_header(&r, "Date", v, sizeof(v)));
        assert_int_equal(strlen(v), 29); /* IMF-fixdate */
        assert_memory_equal(v + 25, " GMT", 4);
        assert_int_equal(r.body_len, want.len);
        assert_memory_equal(r.body, want.data, want.len);
        assert_non_null(strstr(r.body, round == 0 ? "sl_requests_total{api=\"Produce\"} 3\n"
                                                  : "sl_requests_total{api=\"Produce\"} 4\n"));
        resp_free(&r);
        sl_buf_fini(&want);
        sl_metric_inc(f->requests); /* the next scrape on the same connection sees it */
    }
    assert_int_equal(sl_http_conn_count(f->srv), 1);
    client_free(c);
}

static void test_head(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *c = client_new(f);
    struct sl_buf want;
    render(f, &want);
    char v[64];

    /* HEAD answers the GET's headers and no body: the next answer starts right after. */
    client_send_str(f, c,
                    "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                    "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_true(read_resp(f, c, true, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(resp_header(&r, "Content-Length", v, sizeof(v)));
    assert_int_equal(strtoul(v, NULL, 10), want.len);
    resp_free(&r);
    assert_true(read_resp(f, c, true, &r));
    assert_int_equal(r.status, 404);
    resp_free(&r);
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    sl_buf_fini(&want);
    client_free(c);
}

static void test_not_found_and_targets(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    const char *missing[] = {"/",         "/nope",     "/metrics/", "/Metrics",
                             "/metricsx", "/health/x", "*",         "/%6detrics"};
    char req[256];
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", missing[i]);
        expect_one(f, req, (size_t)n, 404, false);
    }
    const char *found[] = {"/metrics?name[]=x", "/health?", "http://localhost:9/metrics",
                           "HTTP://h/health?x=1", "https://h/metrics"};
    for (size_t i = 0; i < sizeof(found) / sizeof(found[0]); i++) {
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", found[i]);
        expect_one(f, req, (size_t)n, 200, false);
    }
    /* A 404 keeps the connection: the next request on it is served. */
    struct client *c = client_new(f);
    client_send_str(f, c,
                    "GET /x HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "not found\n");
    resp_free(&r);
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);
}

static void test_method_not_allowed(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *c = client_new(f);
    char v[64];
    client_send_str(f, c,
                    "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                    "get /health HTTP/1.1\r\nHost: x\r\n\r\n"
                    "DELETE /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        struct resp r;
        assert_true(read_resp(f, c, false, &r));
        assert_int_equal(r.status, 405);
        assert_non_null(resp_header(&r, "Allow", v, sizeof(v)));
        assert_string_equal(v, "GET, HEAD");
        assert_null(resp_header(&r, "Connection", v, sizeof(v)));
        resp_free(&r);
    }
    struct resp r;
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);

    /* With a body the answer is the same, but the body is not read: the connection ends. */
    const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    expect_one(f, post, sizeof(post) - 1, 405, true);
}

static void test_bodies_refused(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    const char *reqs[] = {
        "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HEAD /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz",
    };
    for (size_t i = 0; i < 2; i++)
        expect_one(f, reqs[i], strlen(reqs[i]), 413, true);
    struct client *c = client_new(f);
    client_send_str(f, c, reqs[2]);
    struct resp r;
    assert_true(read_resp(f, c, true, &r));
    assert_int_equal(r.status, 413);
    assert_true(wait_eof(f, c, WAIT_MAX));
    assert_int_equal(c->len, 0);
    resp_free(&r);
    client_free(c);
    /* Content-Length: 0 is no body at all. */
    const char zero[] = "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    expect_one(f, zero, sizeof(zero) - 1, 200, false);
}

static void test_bad_requests(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    static const struct {
        const char *req;
        size_t len; /* 0: strlen */
        int status;
    } cases[] = {
        {"GARBAGE\r\n\r\n", 0, 400},
        {"\x16\x03\x01\x00\xa5\x01\x00", 0, 400}, /* a TLS ClientHello: refused at once */
        {"GET /metrics\r\n\r\n", 0, 400},         /* HTTP/0.9 */
        {"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
        {"GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
        {"GET /met rics HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
        {"GET /m\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1 \r\nHost: x\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\rHost: x\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.x\r\n\r\n", 0, 400},
        {"GET /metrics HTTPS/1.1\r\n\r\n", 0, 400},
        {"GET /metrics http/1.1\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/11\r\n\r\n", 0, 400},
        {"\rGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\n\r\n", 0, 400}, /* no Host */
        {"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nHost-less\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\0z\r\n\r\n", 44, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x7fz\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 0, 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0,
         400},
        {"GET /metrics HTTP/2.0\r\n\r\n", 0, 505},
        {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 505},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].req);
        expect_one(f, cases[i].req, len, cases[i].status, true);
    }
    /* Accepted on the edges: CRLFs before the request line, bare LF line ends, HTTP/1.0
     * without Host, a value with a tab and high bytes, repeated equal Content-Length 0. */
    const char *ok[] = {
        "\r\n\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /health HTTP/1.1\nHost: x\n\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nX-A:\tv\xc3\xa9 \t\r\nX-B:\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\ncontent-length: 000\r\n\r\n",
        "GET /health HTTP/1.9\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        expect_one(f, ok[i], strlen(ok[i]), 200, false);
    const char v10[] = "GET /health HTTP/1.0\r\n\r\n";
    expect_one(f, v10, sizeof(v10) - 1, 200, true);
    pump_for(f, 0.02);
    assert_int_equal(sl_http_conn_count(f->srv), 0);
}

/* Bad requests are logged, and at debug level only. */
static void test_bad_requests_log_at_debug(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    FILE *log = tmpfile();
    assert_non_null(log);
    int saved = sl_log_threshold;
    sl_log_set_fd(fileno(log));

    sl_log_threshold = SL_LOG_INFO;
    const char bad[] = "BAD\x01 / HTTP/1.1\r\n\r\n";
    expect_one(f, bad, sizeof(bad) - 1, 400, true);
    assert_int_equal(lseek(fileno(log), 0, SEEK_END), 0);

    sl_log_threshold = SL_LOG_DEBUG;
    expect_one(f, bad, sizeof(bad) - 1, 400, true);
    sl_log_threshold = saved;
    sl_log_set_fd(STDERR_FILENO);

    char text[4096] = {0};
    assert_true(pread(fileno(log), text, sizeof(text) - 1, 0) > 0);
    assert_non_null(strstr(text, "[test.http]"));
    assert_non_null(strstr(text, "bad request: bad method"));
    fclose(log);
}

/* Builds "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: aaa...\r\n\r\n" of exactly total bytes. */
static char *padded_request(size_t total)
{
    const char *pre = "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t pad = total - strlen(pre) - 4;
    char *s = malloc(total + 1);
    assert_non_null(s);
    strcpy(s, pre);
    memset(s + strlen(pre), 'a', pad);
    strcpy(s + strlen(pre) + pad, "\r\n\r\n");
    assert_int_equal(strlen(s), total);
    return s;
}

static void test_oversized_head(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    /* Exactly the limit is served; one byte more is 431. */
    char *req = padded_request(SL_HTTP_MAX_REQUEST);
    expect_one(f, req, SL_HTTP_MAX_REQUEST, 200, false);
    free(req);
    req = padded_request(SL_HTTP_MAX_REQUEST + 1);
    expect_one(f, req, SL_HTTP_MAX_REQUEST + 1, 431, true);
    free(req);
    /* Well over: the server answers after 8 KiB while the rest is still coming; it drains what
     * follows (lingering close) so that the client reads the 431 and an orderly EOF, not a
     * reset that may destroy the answer. */
    req = padded_request(40 * 1024);
    expect_one(f, req, 40 * 1024, 431, true);
    free(req);
    /* Far over: draining gives up after 64 KiB; the 431 still arrives first. */
    req = padded_request(1024 * 1024);
    expect_one_ex(f, req, 1024 * 1024, 431, true, true);
    free(req);
    /* A request line that alone fills the buffer is 414. */
    size_t n = SL_HTTP_MAX_REQUEST + 100;
    req = malloc(n);
    assert_non_null(req);
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', n - 5);
    expect_one(f, req, n, 414, true);
    free(req);
    /* A head that is complete in a full buffer, followed by more: served, then the rest. */
    req = padded_request(SL_HTTP_MAX_REQUEST);
    struct client *c = client_new(f);
    client_send(f, c, req, SL_HTTP_MAX_REQUEST);
    client_send_str(f, c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "sl_requests_total"));
    resp_free(&r);
    client_free(c);
    free(req);
}

static void test_pipelined_and_split(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *c = client_new(f);
    struct sl_buf want;
    render(f, &want);
    client_send_str(f, c,
                    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                    "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /he");
    struct resp r;
    int want_status[] = {200, 200, 200, 404};
    for (int i = 0; i < 4; i++) {
        assert_true(read_resp(f, c, i == 2, &r));
        assert_int_equal(r.status, want_status[i]);
        if (i == 1) {
            assert_int_equal(r.body_len, want.len);
            assert_memory_equal(r.body, want.data, want.len);
        }
        resp_free(&r);
    }
    /* The fifth request arrives a byte at a time. */
    const char *rest = "alth HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t i = 0; rest[i]; i++) {
        pump_for(f, 0.001);
        client_fill(c);
        assert_int_equal(c->len, 0);
        client_send(f, c, rest + i, 1);
    }
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    assert_int_equal(sl_http_conn_count(f->srv), 1);
    sl_buf_fini(&want);
    client_free(c);
}

static void test_keep_alive_and_close(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    const char close11[] =
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n";
    expect_one(f, close11, sizeof(close11) - 1, 200, true);
    const char v10[] = "GET /metrics HTTP/1.0\r\n\r\n";
    expect_one(f, v10, sizeof(v10) - 1, 200, true);
    const char v10ka[] = "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    expect_one(f, v10ka, sizeof(v10ka) - 1, 200, true);

    /* Keep-alive: several sequential requests over one connection. */
    struct client *c = client_new(f);
    for (int i = 0; i < 3; i++) {
        client_send_str(f, c, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        struct resp r;
        assert_true(read_resp(f, c, false, &r));
        assert_int_equal(r.status, 200);
        resp_free(&r);
        assert_int_equal(sl_http_conn_count(f->srv), 1);
    }
    /* The client half-closes after a pipelined pair: both are answered, then EOF. */
    client_send_str(
        f, c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    for (int i = 0; i < 2; i++) {
        struct resp r;
        assert_true(read_resp(f, c, false, &r));
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    assert_true(wait_eof(f, c, WAIT_MAX));
    client_free(c);
    /* A client that sends half a request and closes is simply dropped. */
    c = client_new(f);
    client_send_str(f, c, "GET /hea");
    shutdown(c->fd, SHUT_WR);
    assert_true(wait_eof(f, c, WAIT_MAX));
    assert_int_equal(c->len, 0);
    client_free(c);
    pump_for(f, 0.02);
    assert_int_equal(sl_http_conn_count(f->srv), 0);
}

static void test_idle_timeout(void **state)
{
    struct fx *f = *state;
    const double idle = 0.1;
    fx_start(f, idle, 0);

    /* Never says a word. */
    struct client *c = client_new(f);
    ev_tstamp t0 = ev_time();
    assert_true(wait_eof(f, c, WAIT_MAX));
    ev_tstamp took = ev_time() - t0;
    assert_true(took >= idle * 0.9);
    assert_true(took < idle + 1.0);
    assert_int_equal(c->len, 0);
    client_free(c);

    /* Idle after an answer on a kept-alive connection; activity pushes the deadline. */
    c = client_new(f);
    for (int i = 0; i < 4; i++) {
        pump_for(f, idle * 0.6);
        client_send_str(f, c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        struct resp r;
        assert_true(read_resp(f, c, false, &r));
        resp_free(&r);
    }
    t0 = ev_time();
    assert_true(wait_eof(f, c, WAIT_MAX));
    took = ev_time() - t0;
    assert_true(took >= idle * 0.9);
    assert_true(took < idle + 1.0);
    client_free(c);

    /* A head trickled a byte at a time never completes: it must still end within the timeout
     * of its first byte, however active the client is. */
    c = client_new(f);
    client_send_str(f, c, "GET /health HTTP/1.1\r\n");
    t0 = ev_time();
    bool closed = false;
    for (int i = 0; i < 200 && !closed; i++) {
        pump_for(f, idle / 10);
        client_fill(c);
        closed = c->eof;
        if (!closed)
            send(c->fd, "X", 1, MSG_NOSIGNAL);
    }
    assert_true(closed);
    assert_true(ev_time() - t0 < idle * 5);
    client_free(c);
    pump_for(f, 0.01);
    assert_int_equal(sl_http_conn_count(f->srv), 0);
}

static void test_connection_cap(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 2);
    struct client *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = client_new(f);
        client_send_str(f, c[i], "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    struct resp r;
    for (int i = 0; i < 2; i++) {
        assert_true(read_resp(f, c[i], false, &r));
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    /* The third waits in the backlog, unanswered, while two are open. */
    pump_for(f, 0.05);
    client_fill(c[2]);
    assert_int_equal(c[2]->len, 0);
    assert_false(c[2]->eof);
    assert_int_equal(sl_http_conn_count(f->srv), 2);
    /* One leaves: the third is accepted and served. */
    client_free(c[0]);
    assert_true(read_resp(f, c[2], false, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(sl_http_conn_count(f->srv), 2);
    client_free(c[1]);
    client_free(c[2]);
    pump_for(f, 0.02);
    assert_int_equal(sl_http_conn_count(f->srv), 0);
}

static void test_health(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *c = client_new(f);
    static const struct {
        int status;
        const char *text;
        int want_status;
        const char *want_body;
    } cases[] = {
        {200, NULL, 200, "ok\n"},
        {503, "disk full\n", 503, "disk full\n"},
        {503, NULL, 503, "unhealthy\n"},
        {200, "fine\n", 200, "fine\n"},
        {42, NULL, 500, "unhealthy\n"},
        {204, NULL, 500, "unhealthy\n"},
        {600, "x", 500, "x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f->health_status = cases[i].status;
        f->health_text = cases[i].text;
        client_send_str(f, c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        struct resp r;
        assert_true(read_resp(f, c, false, &r));
        assert_int_equal(r.status, cases[i].want_status);
        assert_string_equal(r.body, cases[i].want_body);
        resp_free(&r);
    }
    /* HEAD asks the callback too, and gets its length without the body. */
    f->health_status = 503;
    f->health_text = "disk full\n";
    int calls = f->health_calls;
    client_send_str(f, c, "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    char v[32];
    assert_true(read_resp(f, c, true, &r));
    assert_int_equal(r.status, 503);
    assert_non_null(resp_header(&r, "Content-Length", v, sizeof(v)));
    assert_string_equal(v, "10");
    assert_int_equal(f->health_calls, calls + 1);
    resp_free(&r);
    client_free(c);
}

static void test_no_metrics_no_health(void **state)
{
    struct fx *f = *state;
    struct sl_http_config cfg = {.listen = "127.0.0.1:0"};
    assert_int_equal(sl_http_new(f->loop, &cfg, &f->srv, NULL), 0);
    sl_http_start(f->srv);
    const char m[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_one(f, m, sizeof(m) - 1, 404, false);
    const char h[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_one(f, h, sizeof(h) - 1, 200, false);
}

static void test_ipv6_loopback(void **state)
{
    struct fx *f = *state;
    struct sl_err err = {{0}};
    int rc = fx_new(f, "[::1]:0", 0, 0, &err);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        printf("skipping the ::1 part: this host has no IPv6 loopback (%s)\n", err.msg);
        return;
    }
    if (rc != 0)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    sl_http_start(f->srv);
    struct client *c = client_new_at(AF_INET6, sl_http_port(f->srv), 0);
    client_send_str(f, c, "GET /metrics HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    struct resp r;
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "sl_requests_total{api=\"Produce\"} 3\n"));
    resp_free(&r);
    client_free(c);
}

static void test_partial_writes(void **state)
{
    struct fx *f = *state;
    /* A 4 MiB help text makes one answer far bigger than the socket buffers. */
    size_t big = 4u << 20;
    char *help = malloc(big + 1);
    assert_non_null(help);
    for (size_t i = 0; i < big; i++)
        help[i] = (char)('a' + i % 26);
    help[big] = '\0';
    struct sl_metric *g = NULL;
    assert_int_equal(sl_metrics_add_gauge(f->reg, "big", help, NULL, 0, &g, NULL), 0);
    free(help);
    fx_start(f, 0, 0);
    struct sl_buf want;
    render(f, &want);

    struct client *c = client_new_at(AF_INET, sl_http_port(f->srv), 4096);
    client_send_str(f, c,
                    "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Without a reader the server fills the socket and must wait for EV_WRITE. */
    pump_for(f, 0.05);
    int queued = 0;
    assert_int_equal(ioctl(c->fd, FIONREAD, &queued), 0);
    assert_true(queued > 0);
    assert_true((size_t)queued < want.len);
    struct resp r;
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, want.len);
    assert_memory_equal(r.body, want.data, want.len);
    resp_free(&r);
    /* The pipelined request behind it waited its turn. */
    assert_true(read_resp(f, c, false, &r));
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    sl_buf_fini(&want);
    client_free(c);
}

static void test_listen_addresses(void **state)
{
    struct fx *f = *state;
    static const char *bad[] = {"nope",
                                "127.0.0.1",
                                "127.0.0.1:",
                                "127.0.0.1:65536",
                                "127.0.0.1:123456",
                                "127.0.0.1:-1",
                                "127.0.0.1:8a",
                                "::1:80",
                                "[::1]80",
                                "[::1",
                                "[]:80",
                                "[127.0.0.1]:0",
                                "no-such-host.invalid:0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sl_err err = {{0}};
        struct sl_http *srv = (struct sl_http *)f; /* must stay untouched */
        struct sl_http_config cfg = {.listen = bad[i]};
        int rc = sl_http_new(f->loop, &cfg, &srv, &err);
        if (rc != SL_ECONFIG)
            fprintf(stderr, "%s: %d %s\n", bad[i], rc, err.msg);
        assert_int_equal(rc, SL_ECONFIG);
        assert_ptr_equal(srv, (struct sl_http *)f);
        assert_non_null(strstr(err.msg, bad[i]));
    }
    struct sl_http_config none = {0};
    assert_int_equal(sl_http_new(f->loop, &none, &f->srv, NULL), SL_ECONFIG);
    assert_null(f->srv);

    /* Other forms that bind: the wildcard, a name, a fixed port already taken. */
    static const char *good[] = {":0", "*:0", "localhost:0", "0.0.0.0:0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct sl_err err = {{0}};
        assert_int_equal(fx_new(f, good[i], 0, 0, &err), 0);
        sl_http_start(f->srv);
        if (strcmp(good[i], "localhost:0") != 0) {
            /* Every interface includes IPv4 loopback, even for the dual-stack socket. */
            const char h[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
            expect_one(f, h, sizeof(h) - 1, 200, false);
        }
        sl_http_free(f->srv);
        f->srv = NULL;
    }
    fx_start(f, 0, 0);
    char taken[32];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", sl_http_port(f->srv));
    struct sl_http *second = NULL;
    struct sl_err err = {{0}};
    struct sl_http_config cfg = {.listen = taken};
    assert_int_equal(sl_http_new(f->loop, &cfg, &second, &err), -EADDRINUSE);
    assert_null(second);
    assert_non_null(strstr(err.msg, "bind"));
}

static void test_stop_start(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *c = client_new(f);
    client_send_str(f, c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_true(read_resp(f, c, false, &r));
    resp_free(&r);
    /* Stop closes what is open and leaves no watcher running. */
    sl_http_stop(f->srv);
    sl_http_stop(f->srv);
    assert_int_equal(ev_run(f->loop, EVRUN_NOWAIT), 0);
    assert_true(wait_eof(f, c, WAIT_MAX));
    client_free(c);
    assert_int_equal(sl_http_conn_count(f->srv), 0);
    /* A client arriving meanwhile waits in the backlog and is served after start. */
    c = client_new(f);
    client_send_str(f, c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    pump_for(f, 0.02);
    client_fill(c);
    assert_int_equal(c->len, 0);
    sl_http_start(f->srv);
    sl_http_start(f->srv);
    assert_true(read_resp(f, c, false, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);
}

static void test_free_with_open_connections(void **state)
{
    struct fx *f = *state;
    fx_start(f, 0, 0);
    struct client *a = client_new(f);
    struct client *b = client_new(f);
    client_send_str(f, a, "GET /he");
    client_send_str(f, b, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_true(read_resp(f, b, false, &r));
    resp_free(&r);
    pump_for(f, 0.01);
    assert_int_equal(sl_http_conn_count(f->srv), 2);
    sl_http_free(f->srv);
    f->srv = NULL;
    /* The teardown checks no watcher is left; the clients see their connections end. */
    client_fill(a);
    client_fill(b);
    assert_true(a->eof);
    assert_true(b->eof);
    client_free(a);
    client_free(b);
}

/* Fails the Nth allocation of a whole exchange, N = 0, 1, 2, ...: each run either answers in
 * full or fails cleanly (no response and a closed connection, or a 500), never leaks. */
static void test_allocation_failure_sweep(void **state)
{
    struct fx *f = *state;
    struct sl_buf want;
    render(f, &want);
    long n = 0;
    int served_500 = 0;
    for (;; n++) {
        sl_mem_fail_after(n, 0);
        int rc = fx_new(f, "127.0.0.1:0", 0, 0, NULL);
        if (rc < 0) {
            sl_mem_fail_after(-1, 0);
            assert_int_equal(rc, -ENOMEM);
            assert_null(f->srv);
            continue;
        }
        sl_http_start(f->srv);
        struct client *c = client_new(f);
        client_send_str(f, c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        struct resp r;
        bool got = read_resp(f, c, false, &r);
        long failures = sl_mem_failures();
        sl_mem_fail_after(-1, 0);
        client_free(c);
        sl_http_free(f->srv);
        f->srv = NULL;
        assert_int_equal(ev_run(f->loop, EVRUN_NOWAIT), 0);
        if (got && r.status == 500) {
            assert_true(failures > 0);
            assert_string_equal(r.body, "out of memory\n");
            served_500++;
        } else if (got) {
            assert_int_equal(r.status, 200);
            assert_int_equal(r.body_len, want.len);
            assert_memory_equal(r.body, want.data, want.len);
        } else {
            assert_true(failures > 0);
        }
        if (got)
            resp_free(&r);
        if (failures == 0)
            break;
    }
    assert_true(n > 3);
    assert_true(served_500 > 0);
    sl_buf_fini(&want);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get_metrics),
        T(test_head),
        T(test_not_found_and_targets),
        T(test_method_not_allowed),
        T(test_bodies_refused),
        T(test_bad_requests),
        T(test_bad_requests_log_at_debug),
        T(test_oversized_head),
        T(test_pipelined_and_split),
        T(test_keep_alive_and_close),
        T(test_idle_timeout),
        T(test_connection_cap),
        T(test_health),
        T(test_no_metrics_no_health),
        T(test_ipv6_loopback),
        T(test_partial_writes),
        T(test_listen_addresses),
        T(test_stop_start),
        T(test_free_with_open_connections),
        T(test_allocation_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
