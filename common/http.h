/* A small HTTP/1.1 server on libev that serves /metrics and /health to scrapers and probes. */
#ifndef SL_COMMON_HTTP_H
#define SL_COMMON_HTTP_H

#include "common/buf.h"
#include "common/err.h"
#include "common/metrics.h"

#include <ev.h>

/* The whole request head (request line, headers, final empty line) must fit in this many
 * bytes: a longer request line gets 414, a longer header block 431, then the connection closes. */
#define SL_HTTP_MAX_REQUEST          8192
#define SL_HTTP_DEFAULT_IDLE_TIMEOUT 30.0 /* seconds */
#define SL_HTTP_DEFAULT_MAX_CONNS    32

/* Reports the daemon's health for /health: appends a short text/plain body to `body` and
 * returns an HTTP status, 200 when healthy, 503 (or another 4xx/5xx) when not. A status outside
 * 200..599, or 204/304, is answered as 500. An empty body becomes "ok\n" for 2xx and
 * "unhealthy\n" otherwise. Called once per GET/HEAD /health, from the loop; it must not stop or
 * free the server. */
typedef int (*sl_http_health_fn)(void *arg, struct sl_buf *body);

struct sl_http_config {
    /* "127.0.0.1:9100", "[::1]:0", "localhost:9100", or ":9100" / "*:9100" for every
     * interface (IPv6 dual-stack, IPv4 when the host has no IPv6). Port 0 picks a free port. */
    const char *listen;
    struct sl_metrics *metrics; /* borrowed; NULL: /metrics answers 404 */
    sl_http_health_fn health;   /* NULL: /health always answers 200 "ok\n" */
    void *health_arg;           /* borrowed, passed to health */
    double idle_timeout;        /* seconds; <= 0: SL_HTTP_DEFAULT_IDLE_TIMEOUT */
    unsigned max_conns;         /* 0: SL_HTTP_DEFAULT_MAX_CONNS */
    const char *name;           /* log prefix; NULL: "http" (copied, at most 63 bytes kept) */
};

struct sl_http;

/*
 * Creates a server on `loop` (borrowed; must outlive the server) and binds and listens on
 * cfg->listen right away, so address errors and the port are known before _start. Nothing is
 * served until sl_http_start. cfg is read during the call only; cfg->metrics and health_arg are
 * borrowed for the server's life. Returns 0 and *out, or -errno from the socket calls
 * (-EADDRINUSE, -EADDRNOTAVAIL, -EAFNOSUPPORT, ...), SL_ECONFIG for an unparsable address or
 * an unknown host, -ENOMEM; err gets the detail.
 *
 * Behaviour: GET and HEAD on /metrics (text/plain; version=0.0.4) and /health; any other path
 * 404, another method 405, a request with a body (Content-Length > 0, Transfer-Encoding) is
 * answered (404/405/413) and the connection closed; malformed requests 400, HTTP/2+ 505, and
 * close. HTTP/1.1 keeps the connection alive (pipelining works) unless "Connection: close";
 * HTTP/1.0 always closes. A connection closes after idle_timeout without progress, and a
 * request head must arrive within idle_timeout of its first byte. At max_conns open
 * connections the server stops accepting (new clients wait in the listen backlog) until one
 * closes. Bad requests are logged at debug level only.
 */
int sl_http_new(struct ev_loop *loop, const struct sl_http_config *cfg, struct sl_http **out,
                struct sl_err *err);

/* Starts accepting connections. Idempotent. */
void sl_http_start(struct sl_http *srv);

/* Stops accepting and closes every open connection; no watcher of the server stays active.
 * The listening socket stays bound, so sl_http_start may resume. Idempotent. */
void sl_http_stop(struct sl_http *srv);

/* Stops, closes the listening socket and frees. NULL-safe. */
void sl_http_free(struct sl_http *srv);

/* The bound port (the real one when 0 was asked for). */
int sl_http_port(const struct sl_http *srv);

/* How many client connections are open now (for tests and status). */
unsigned sl_http_conn_count(const struct sl_http *srv);

#endif
