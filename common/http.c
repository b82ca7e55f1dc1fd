/* The /metrics and /health HTTP/1.1 server: accept, parse a bounded request head, answer,
 * keep alive or close. */
#include "common/http.h"

#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * One connection's life:
 *
 *            accept
 *              |
 *              v        request head complete: answer into `out`, try to send
 *   +-----> READING ---------------------------------------------+
 *   |          |  ^                                              |
 *   |          |  | all sent, keep-alive: parse the next          v
 *   |          |  +-------------------------------------------- WRITING (EAGAIN: ev_io EV_WRITE)
 *   |          |                                                 |
 *   |          | EOF with nothing pending, I/O error             | all sent, must close:
 *   |          v                                                 | shutdown(SHUT_WR)
 *   |        closed <------ EOF / idle / 64 KiB discarded ---- LINGERING (read and discard)
 *   |          ^
 *   +----------+ idle timeout in any state
 *
 * LINGERING exists so that a client still sending (an oversized header block) reads our
 * 400/431 before the kernel answers its bytes with a reset. A must-close answer after the
 * peer has already sent EOF closes at once instead.
 *
 * Request head, as accepted (RFC 9112; a lone LF is taken as a line end, as it allows):
 *
 *   *( CRLF )                                   ignored before the request line
 *   method SP request-target SP HTTP/D.D CRLF   method: tchars; target: origin-form "/p?q",
 *                                               absolute-form "http://host/p", or "*"
 *   *( field-name ":" OWS field-value OWS CRLF ) no obs-fold, no space before ":",
 *                                               no control bytes but HTAB in values
 *   CRLF
 *
 * The whole head must fit in `in` (SL_HTTP_MAX_REQUEST). Every request is parsed from the
 * start of `in`, in place: nothing is allocated per request except the answer.
 */

enum conn_state {
    CONN_READING,
    CONN_WRITING,
    CONN_LINGERING,
};

/* Output kept between requests up to this size; a bigger one (a large scrape) is freed. */
#define HTTP_OUT_KEEP (64u * 1024)
/* A lingering close discards at most this much before giving up and closing. */
#define HTTP_LINGER_MAX (64u * 1024)
/* After EMFILE and friends, try accepting again after this many seconds. */
#define HTTP_ACCEPT_RETRY 1.0

struct sl_http_conn {
    struct sl_http *srv; /* borrowed: the server owns the connection */
    struct sl_http_conn *prev;
    struct sl_http_conn *next;
    int fd; /* owned */
    enum conn_state state;
    ev_io rio;
    ev_io wio;
    ev_timer timer;
    ev_tstamp last_activity; /* last byte received or sent */
    ev_tstamp head_start;    /* 0, or when a partial request head (or lingering) began */
    bool peer_eof;
    bool close_after; /* close once `out` is sent */
    size_t in_len;
    size_t out_off;
    size_t discarded;
    struct sl_buf out; /* owned */
    char peer[INET6_ADDRSTRLEN + 8];
    char in[SL_HTTP_MAX_REQUEST];
};

struct sl_http {
    struct ev_loop *loop; /* borrowed */
    int fd;               /* owned listening socket, -1 when none */
    int port;
    bool running;
    ev_io listen_io;
    ev_timer retry;
    struct sl_http_conn *conns; /* owned list */
    unsigned nconns;
    unsigned max_conns;
    double idle_timeout;
    struct sl_metrics *metrics; /* borrowed */
    sl_http_health_fn health;
    void *health_arg;   /* borrowed */
    struct sl_buf body; /* owned scratch for rendering one answer's body */
    char name[64];
};

struct http_req {
    const char *method;
    size_t method_len;
    const char *path; /* the target's path, without query */
    size_t path_len;
    int minor;       /* HTTP/1.<minor> */
    bool conn_close; /* Connection: close */
    bool has_body;   /* Content-Length > 0 or Transfer-Encoding */
};

enum parse_result {
    PARSE_OK,
    PARSE_MORE,        /* the head is incomplete */
    PARSE_MORE_LINE,   /* ... and so is the request line */
    PARSE_BAD,         /* 400 */
    PARSE_BAD_VERSION, /* 505 */
};

static void http_conn_close(struct sl_http_conn *c);
static void http_conn_process(struct sl_http_conn *c);

/* --- small helpers --------------------------------------------------------------------- */

static void watcher_io(struct ev_loop *loop, ev_io *w, bool on)
{
    if (on && !ev_is_active(w))
        ev_io_start(loop, w);
    else if (!on && ev_is_active(w))
        ev_io_stop(loop, w);
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool bytes_ieq(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && strncasecmp(p, s, n) == 0;
}

static bool bytes_eq(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* --- parsing --------------------------------------------------------------------------- */

/* Parses the request line starting at p[*pos], byte by byte, so that garbage is refused as
 * soon as it is seen rather than when a line end finally arrives (or never does). */
static enum parse_result parse_request_line(const char *p, size_t len, size_t *pos,
                                            struct http_req *rq, const char **why)
{
    size_t i = *pos;
    const unsigned char *u = (const unsigned char *)p;

    size_t m0 = i;
    while (i < len && is_tchar(u[i]))
        i++;
    if (i == len)
        return PARSE_MORE_LINE;
    if (i == m0 || p[i] != ' ') {
        *why = "bad method";
        return PARSE_BAD;
    }
    rq->method = p + m0;
    rq->method_len = i - m0;
    i++;

    size_t t0 = i;
    while (i < len && u[i] > 0x20 && u[i] < 0x7f)
        i++;
    if (i == len)
        return PARSE_MORE_LINE;
    if (i == t0 || p[i] != ' ') {
        *why = "bad request target";
        return PARSE_BAD;
    }
    size_t t1 = i;
    i++;

    static const char proto[] = "HTTP/";
    for (size_t k = 0; k < sizeof(proto) - 1; k++, i++) {
        if (i == len)
            return PARSE_MORE_LINE;
        if (p[i] != proto[k]) {
            *why = "bad protocol";
            return PARSE_BAD;
        }
    }
    if ((i < len && !is_digit(u[i])) || (i + 1 < len && p[i + 1] != '.') ||
        (i + 2 < len && !is_digit(u[i + 2]))) {
        *why = "bad version";
        return PARSE_BAD;
    }
    if (len - i < 3)
        return PARSE_MORE_LINE;
    int major = p[i] - '0';
    rq->minor = p[i + 2] - '0';
    i += 3;
    if (i < len && p[i] == '\r')
        i++;
    if (i == len)
        return PARSE_MORE_LINE;
    if (p[i] != '\n') {
        *why = "junk after version";
        return PARSE_BAD;
    }
    i++;

    /* The target: origin-form, absolute-form (drop scheme and authority) or "*". */
    const char *t = p + t0;
    size_t tlen = t1 - t0;
    if (t[0] != '/' && !(tlen == 1 && t[0] == '*')) {
        size_t skip = 0;
        if (tlen > 7 && strncasecmp(t, "http://", 7) == 0)
            skip = 7;
        else if (tlen > 8 && strncasecmp(t, "https://", 8) == 0)
            skip = 8;
        if (!skip) {
            *why = "bad request target";
            return PARSE_BAD;
        }
        const char *slash = memchr(t + skip, '/', tlen - skip);
        if (slash) {
            tlen -= (size_t)(slash - t);
            t = slash;
        } else {
            t = "/";
            tlen = 1;
        }
    }
    const char *q = memchr(t, '?', tlen);
    rq->path = t;
    rq->path_len = q ? (size_t)(q - t) : tlen;

    if (major != 1) {
        *why = "unsupported HTTP version";
        return PARSE_BAD_VERSION;
    }
    *pos = i;
    return PARSE_OK;
}

/* Content-Length: 1*DIGIT; repeated fields must agree. */
static bool parse_content_length(const char *v, size_t n, uint64_t *out, bool *seen)
{
    if (n == 0 || n > 18)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)v[i]))
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (*seen && x != *out)
        return false;
    *seen = true;
    *out = x;
    return true;
}

static void parse_connection(const char *v, size_t n, struct http_req *rq)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i;
        size_t b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (bytes_ieq(v + a, b - a, "close"))
            rq->conn_close = true;
        i = j + 1;
    }
}

/* Parses one request head from the start of p. On PARSE_OK, *used is its length. */
static enum parse_result parse_request(const char *p, size_t len, struct http_req *rq, size_t *used,
                                       const char **why)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    memset(rq, 0, sizeof(*rq));

    while (i < len && (p[i] == '\n' || p[i] == '\r')) {
        if (p[i] == '\r') {
            if (i + 1 == len)
                return PARSE_MORE_LINE;
            if (p[i + 1] != '\n') {
                *why = "stray CR";
                return PARSE_BAD;
            }
            i++;
        }
        i++;
    }
    enum parse_result r = parse_request_line(p, len, &i, rq, why);
    if (r != PARSE_OK)
        return r;

    unsigned hosts = 0;
    bool cl_seen = false;
    uint64_t cl = 0;
    for (;;) {
        const char *lf = memchr(p + i, '\n', len - i);
        if (!lf)
            return PARSE_MORE;
        size_t end = (size_t)(lf - p);
        size_t next = end + 1;
        if (end > i && p[end - 1] == '\r')
            end--;
        if (end == i) {
            i = next;
            break;
        }
        if (p[i] == ' ' || p[i] == '\t') {
            *why = "obsolete line folding";
            return PARSE_BAD;
        }
        size_t n0 = i;
        while (i < end && is_tchar(u[i]))
            i++;
        if (i == n0 || i == end || p[i] != ':') {
            *why = "bad header name";
            return PARSE_BAD;
        }
        const char *name = p + n0;
        size_t name_len = i - n0;
        i++;
        while (i < end && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t v0 = i;
        for (size_t k = v0; k < end; k++) {
            if ((u[k] < 0x20 && u[k] != '\t') || u[k] == 0x7f) {
                *why = "control byte in header value";
                return PARSE_BAD;
            }
        }
        size_t v1 = end;
        while (v1 > v0 && (p[v1 - 1] == ' ' || p[v1 - 1] == '\t'))
            v1--;
        const char *val = p + v0;
        size_t val_len = v1 - v0;

        if (bytes_ieq(name, name_len, "host")) {
            hosts++;
        } else if (bytes_ieq(name, name_len, "content-length")) {
            if (!parse_content_length(val, val_len, &cl, &cl_seen)) {
                *why = "bad Content-Length";
                return PARSE_BAD;
            }
            if (cl > 0)
                rq->has_body = true;
        } else if (bytes_ieq(name, name_len, "transfer-encoding")) {
            rq->has_body = true;
        } else if (bytes_ieq(name, name_len, "connection")) {
            parse_connection(val, val_len, rq);
        }
        i = next;
    }
    if (rq->minor >= 1 && hosts != 1) {
        *why = hosts ? "more than one Host" : "HTTP/1.1 request without Host";
        return PARSE_BAD;
    }
    *used = i;
    return PARSE_OK;
}

/* --- answers --------------------------------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "OK";
    }
}

/* IMF-fixdate, built by hand: strftime's names follow the locale. */
static void http_date(char out[64])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm)) {
        snprintf(out, 64, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Appends one whole answer to c->out. HEAD gets the headers of the GET answer, no body. */
static void http_answer(struct sl_http_conn *c, int status, const char *ctype, const char *body,
                        size_t body_len, bool head, bool allow)
{
    char date[64];
    http_date(date);
    struct sl_buf *o = &c->out;
    sl_buf_printf(o,
                  "HTTP/1.1 %d %s\r\n"
                  "Date: %s\r\n"
                  "Content-Type: %s\r\n"
                  "Content-Length: %zu\r\n"
                  "%s%s\r\n",
                  status, status_text(status), date, ctype, body_len,
                  allow ? "Allow: GET, HEAD\r\n" : "",
                  c->close_after ? "Connection: close\r\n" : "");
    if (!head)
        sl_buf_append(o, body, body_len);
}

static void http_answer_text(struct sl_http_conn *c, int status, const char *text, bool head)
{
    http_answer(c, status, "text/plain; charset=utf-8", text, strlen(text), head, status == 405);
}

/* Answers a request that parsed; returns 0 or -ENOMEM (then the connection is dropped). */
static int http_route(struct sl_http_conn *c, const struct http_req *rq)
{
    struct sl_http *srv = c->srv;
    bool head = bytes_eq(rq->method, rq->method_len, "HEAD");
    bool get = bytes_eq(rq->method, rq->method_len, "GET");
    bool metrics = srv->metrics && bytes_eq(rq->path, rq->path_len, "/metrics");
    bool health = bytes_eq(rq->path, rq->path_len, "/health");

    /* Bodies are refused, so their bytes cannot be skipped: the connection ends here. */
    c->close_after = rq->minor == 0 || rq->conn_close || rq->has_body;

    if (!metrics && !health) {
        http_answer_text(c, 404, "not found\n", head);
    } else if (!get && !head) {
        http_answer_text(c, 405, "only GET and HEAD\n", false);
    } else if (rq->has_body) {
        http_answer_text(c, 413, "request bodies are not accepted\n", head);
    } else if (metrics) {
        sl_buf_reset(&srv->body);
        if (sl_metrics_render(srv->metrics, &srv->body) < 0) {
            c->close_after = true;
            http_answer_text(c, 500, "out of memory\n", head);
        } else {
            http_answer(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                        (const char *)srv->body.data, srv->body.len, head, false);
        }
    } else {
        int status = 200;
        sl_buf_reset(&srv->body);
        if (srv->health)
            status = srv->health(srv->health_arg, &srv->body);
        if (status < 200 || status > 599 || status == 204 || status == 304)
            status = 500;
        if (sl_buf_error(&srv->body) < 0) {
            sl_buf_reset(&srv->body);
            status = 500;
        }
        if (srv->body.len == 0)
            sl_buf_append_str(&srv->body, status < 300 ? "ok\n" : "unhealthy\n");
        http_answer(c, status, "text/plain; charset=utf-8", (const char *)srv->body.data,
                    srv->body.len, head, false);
    }
    if (srv->body.cap > HTTP_OUT_KEEP)
        sl_buf_fini(&srv->body);
    return sl_buf_error(&c->out);
}

/* --- connections ----------------------------------------------------------------------- */

/* Arms exactly the watchers the state needs. */
static void http_conn_arm(struct sl_http_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    bool rd = (c->state == CONN_READING && !c->peer_eof) || c->state == CONN_LINGERING;
    watcher_io(loop, &c->rio, rd);
    watcher_io(loop, &c->wio, c->state == CONN_WRITING);
}

/* Sends what `out` holds. Returns 0 while the connection lives, -1 once it is closed and freed
 * (the caller must not touch it again). */
static int http_conn_flush(struct sl_http_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_activity = ev_now(loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->state = CONN_WRITING;
            http_conn_arm(c);
            return 0;
        }
        SL_DEBUG(c->srv->name, "%s: send: %s", c->peer, strerror(n < 0 ? errno : EPIPE));
        http_conn_close(c);
        return -1;
    }
    c->out_off = 0;
    if (c->out.cap > HTTP_OUT_KEEP)
        sl_buf_fini(&c->out);
    else
        sl_buf_reset(&c->out);

    if (c->close_after) {
        if (c->peer_eof) {
            http_conn_close(c);
            return -1;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = CONN_LINGERING;
        c->head_start = ev_now(loop);
        c->in_len = 0;
        http_conn_arm(c);
        return 0;
    }
    c->state = CONN_READING;
    c->head_start = c->in_len ? ev_now(loop) : 0;
    return 0;
}

/* Answers every complete request in `in`, one at a time, as long as answers go out at once. */
static void http_conn_process(struct sl_http_conn *c)
{
    while (c->state == CONN_READING) {
        struct http_req rq;
        size_t used = 0;
        const char *why = NULL;
        enum parse_result r = parse_request(c->in, c->in_len, &rq, &used, &why);

        if (r == PARSE_MORE || r == PARSE_MORE_LINE) {
            if (c->in_len < sizeof(c->in)) {
                if (c->peer_eof) {
                    if (c->in_len)
                        SL_DEBUG(c->srv->name, "%s: EOF inside a request head", c->peer);
                    http_conn_close(c);
                    return;
                }
                break;
            }
            SL_DEBUG(c->srv->name, "%s: request %s over %d bytes", c->peer,
                     r == PARSE_MORE_LINE ? "line" : "head", SL_HTTP_MAX_REQUEST);
            c->close_after = true;
            http_answer_text(c, r == PARSE_MORE_LINE ? 414 : 431, "request head too large\n",
                             false);
        } else if (r == PARSE_BAD || r == PARSE_BAD_VERSION) {
            SL_DEBUG(c->srv->name, "%s: bad request: %s", c->peer, why);
            c->close_after = true;
            http_answer_text(c, r == PARSE_BAD ? 400 : 505, "bad request\n", false);
        } else {
            if (http_route(c, &rq) < 0) {
                SL_DEBUG(c->srv->name, "%s: out of memory answering", c->peer);
                http_conn_close(c);
                return;
            }
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        if (sl_buf_error(&c->out) < 0) {
            SL_DEBUG(c->srv->name, "%s: out of memory answering", c->peer);
            http_conn_close(c);
            return;
        }
        if (http_conn_flush(c) < 0)
            return;
    }
    http_conn_arm(c);
}

static void http_conn_linger_read(struct sl_http_conn *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            c->last_activity = ev_now(c->srv->loop);
            c->discarded += (size_t)n;
            if (c->discarded <= HTTP_LINGER_MAX)
                continue;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        http_conn_close(c);
        return;
    }
}

static void http_conn_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sl_http_conn *c = sl_container_of(w, struct sl_http_conn, rio);
    if (c->state == CONN_LINGERING) {
        http_conn_linger_read(c);
        return;
    }
    SL_ASSERT(c->in_len < sizeof(c->in)); /* a full buffer was answered with 414/431 */
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        SL_DEBUG(c->srv->name, "%s: recv: %s", c->peer, strerror(errno));
        http_conn_close(c);
        return;
    }
    if (n == 0) {
        c->peer_eof = true;
    } else {
        if (c->in_len == 0)
            c->head_start = ev_now(loop);
        c->in_len += (size_t)n;
        c->last_activity = ev_now(loop);
    }
    http_conn_process(c);
}

static void http_conn_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sl_http_conn *c = sl_container_of(w, struct sl_http_conn, wio);
    if (http_conn_flush(c) < 0)
        return;
    http_conn_process(c);
}

/* One timer per connection, re-armed from last_activity (ev.pod, "be smart about timeouts"):
 * progress only stores a time stamp, the timer works out whether it really expired. */
static void http_conn_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sl_http_conn *c = sl_container_of(w, struct sl_http_conn, timer);
    ev_tstamp timeout = c->srv->idle_timeout;
    ev_tstamp deadline = c->last_activity + timeout;
    if (c->state != CONN_WRITING && c->head_start > 0 && c->head_start + timeout < deadline)
        deadline = c->head_start + timeout;
    ev_tstamp now = ev_now(loop);
    if (deadline <= now) {
        SL_DEBUG(c->srv->name, "%s: timed out %s", c->peer,
                 c->state == CONN_WRITING ? "writing"
                 : c->in_len              ? "reading a request"
                                          : "idle");
        http_conn_close(c);
        return;
    }
    w->repeat = deadline - now;
    ev_timer_again(loop, w);
}

static void http_listener_update(struct sl_http *srv)
{
    bool want =
        srv->running && srv->fd >= 0 && srv->nconns < srv->max_conns && !ev_is_active(&srv->retry);
    watcher_io(srv->loop, &srv->listen_io, want);
}

static void http_conn_close(struct sl_http_conn *c)
{
    struct sl_http *srv = c->srv;
    ev_io_stop(srv->loop, &c->rio);
    ev_io_stop(srv->loop, &c->wio);
    ev_timer_stop(srv->loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    sl_buf_fini(&c->out);
    sl_free(c);
    http_listener_update(srv);
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, size, "[%s]:%d", host, port);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, size, "%s:%d", host, port);
    } else {
        snprintf(out, size, "?");
    }
}

static void http_conn_new(struct sl_http *srv, int fd, const struct sockaddr_storage *ss)
{
    struct sl_http_conn *c = sl_calloc(1, sizeof(*c));
    if (!c) {
        SL_WARN(srv->name, "out of memory accepting a connection");
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->state = CONN_READING;
    sl_buf_init(&c->out);
    format_peer(ss, c->peer, sizeof(c->peer));
    ev_io_init(&c->rio, http_conn_on_read, fd, EV_READ);
    ev_io_init(&c->wio, http_conn_on_write, fd, EV_WRITE);
    ev_init(&c->timer, http_conn_on_timer);
    c->last_activity = ev_now(srv->loop);
    c->timer.repeat = srv->idle_timeout;
    ev_timer_again(srv->loop, &c->timer);
    ev_io_start(srv->loop, &c->rio);

    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
}

static void http_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sl_http *srv = sl_container_of(w, struct sl_http, listen_io);
    while (srv->nconns < srv->max_conns) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(srv->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            http_conn_new(srv, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The pending connection stays queued: pause rather than spin on it. */
            SL_WARN(srv->name, "accept: %s; pausing for %.0fs", strerror(errno), HTTP_ACCEPT_RETRY);
            ev_timer_set(&srv->retry, HTTP_ACCEPT_RETRY, 0.);
            ev_timer_start(loop, &srv->retry);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            SL_DEBUG(srv->name, "accept: %s", strerror(errno));
        }
        break;
    }
    http_listener_update(srv);
}

static void http_on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sl_http *srv = sl_container_of(w, struct sl_http, retry);
    http_listener_update(srv);
}

/* --- binding --------------------------------------------------------------------------- */

/* Opens, binds and listens on one address; returns the fd or -errno (with err set). */
static int http_listen_on(const struct sockaddr *sa, socklen_t salen, bool v6only, const char *addr,
                          struct sl_err *err)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sl_err_set(err, -errno, "listen %s: socket: %s", addr, strerror(errno));
    int one = 1;
    int v6 = v6only ? 1 : 0;
    const char *what = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6)) < 0)
        goto fail;
    what = "bind";
    if (bind(fd, sa, salen) < 0)
        goto fail;
    what = "listen";
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:;
    int rc = -errno;
    sl_err_set(err, rc, "listen %s: %s: %s", addr, what, strerror(-rc));
    close(fd);
    return rc;
}

/* Splits "host:port", "[v6]:port", ":port"; host is empty for every interface. */
static int split_listen(const char *addr, char *host, size_t host_size, char *port,
                        size_t port_size, bool *bracketed, struct sl_err *err)
{
    const char *h = addr;
    size_t hlen;
    const char *colon;
    *bracketed = false;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return sl_err_set(err, SL_ECONFIG, "listen '%s': expected [address]:port", addr);
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        *bracketed = true;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return sl_err_set(err, SL_ECONFIG, "listen '%s': expected host:port", addr);
        hlen = (size_t)(colon - addr);
        if (memchr(addr, ':', hlen))
            return sl_err_set(err, SL_ECONFIG,
                              "listen '%s': an IPv6 address goes in brackets: [addr]:port", addr);
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 5 || strspn(p, "0123456789") != plen || strtoul(p, NULL, 10) > 65535)
        return sl_err_set(err, SL_ECONFIG, "listen '%s': port must be 0..65535", addr);
    if (hlen >= host_size || (*bracketed && hlen == 0))
        return sl_err_set(err, SL_ECONFIG, "listen '%s': bad host", addr);
    if (hlen == 1 && h[0] == '*')
        hlen = 0;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, port_size, "%lu", strtoul(p, NULL, 10));
    return 0;
}

static int http_bind(struct sl_http *srv, const char *addr, struct sl_err *err)
{
    char host[256];
    char port[8];
    bool bracketed;
    int rc = split_listen(addr, host, sizeof(host), port, sizeof(port), &bracketed, err);
    if (rc < 0)
        return rc;

    int fd = -1;
    if (host[0] == '\0') {
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
        a6.sin6_port = htons((uint16_t)atoi(port));
        fd = http_listen_on((const struct sockaddr *)&a6, sizeof(a6), false, addr, err);
        if (fd == -EAFNOSUPPORT) {
            struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
            a4.sin_port = a6.sin6_port;
            fd = http_listen_on((const struct sockaddr *)&a4, sizeof(a4), false, addr, err);
        }
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                 .ai_family = bracketed ? AF_INET6 : AF_UNSPEC,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV |
                                             (bracketed ? AI_NUMERICHOST : 0)};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(host, port, &hints, &res);
        if (g != 0) {
            if (g == EAI_SYSTEM) {
                int e = errno ? errno : EIO;
                return sl_err_set(err, -e, "listen '%s': %s", addr, strerror(e));
            }
            if (g == EAI_MEMORY)
                return sl_err_set(err, -ENOMEM, "listen '%s': out of memory", addr);
            return sl_err_set(err, SL_ECONFIG, "listen '%s': %s", addr, gai_strerror(g));
        }
        fd = SL_ECONFIG;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            fd = http_listen_on(ai->ai_addr, ai->ai_addrlen, true, addr, err);
            if (fd >= 0)
                break;
        }
        freeaddrinfo(res);
    }
    if (fd < 0)
        return fd;

    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        rc = sl_err_set(err, -errno, "listen '%s': getsockname: %s", addr, strerror(errno));
        close(fd);
        return rc;
    }
    if (ss.ss_family == AF_INET6)
        srv->port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
    else
        srv->port = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    srv->fd = fd;
    return 0;
}

/* --- lifecycle ------------------------------------------------------------------------- */

int sl_http_new(struct ev_loop *loop, const struct sl_http_config *cfg, struct sl_http **out,
                struct sl_err *err)
{
    SL_ASSERT(loop && cfg && out);
    if (!cfg->listen)
        return sl_err_set(err, SL_ECONFIG, "no listen address");
    struct sl_http *srv = sl_calloc(1, sizeof(*srv));
    if (!srv)
        return sl_err_set(err, -ENOMEM, "out of memory");
    srv->loop = loop;
    srv->fd = -1;
    srv->metrics = cfg->metrics;
    srv->health = cfg->health;
    srv->health_arg = cfg->health_arg;
    srv->idle_timeout = cfg->idle_timeout > 0 ? cfg->idle_timeout : SL_HTTP_DEFAULT_IDLE_TIMEOUT;
    srv->max_conns = cfg->max_conns ? cfg->max_conns : SL_HTTP_DEFAULT_MAX_CONNS;
    snprintf(srv->name, sizeof(srv->name), "%s", cfg->name ? cfg->name : "http");
    sl_buf_init(&srv->body);
    ev_init(&srv->retry, http_on_retry);

    int rc = http_bind(srv, cfg->listen, err);
    if (rc < 0) {
        sl_http_free(srv);
        return rc;
    }
    ev_io_init(&srv->listen_io, http_on_accept, srv->fd, EV_READ);
    *out = srv;
    return 0;
}

void sl_http_start(struct sl_http *srv)
{
    srv->running = true;
    http_listener_update(srv);
}

void sl_http_stop(struct sl_http *srv)
{
    srv->running = false;
    ev_timer_stop(srv->loop, &srv->retry);
    http_listener_update(srv);
    while (srv->conns)
        http_conn_close(srv->conns);
}

void sl_http_free(struct sl_http *srv)
{
    if (!srv)
        return;
    sl_http_stop(srv);
    if (srv->fd >= 0)
        close(srv->fd);
    sl_buf_fini(&srv->body);
    sl_free(srv);
}

int sl_http_port(const struct sl_http *srv)
{
    return srv->port;
}

unsigned sl_http_conn_count(const struct sl_http *srv)
{
    return srv->nconns;
}
