/* One Kafka client connection: framing, in-order responses, output queue, limits, idle timeout. */
#include "collector/server_priv.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * Framing (every request and response):
 *
 *   +--------------+------------------------------------------+
 *   | size: int32  | size bytes: request header + body        |
 *   +--------------+------------------------------------------+
 *
 * The size is checked against max_request_size as soon as its 4 bytes are in, before any of
 * the frame is read; the whole frame is then buffered and decoded from memory.
 *
 * Response slots, one per request in arrival order (head is the oldest):
 *
 *   head                                              tail
 *   [done, partly sent] -> [pending: fetch wait] -> [done] -> [pending: acks=-1]
 *
 * Only the done slots at the head are written, so responses leave in request order even when
 * a later one completed first. A slot's bytes are pieces: memory from its buf and file regions
 * (sendfile), written with sendmsg/writev and sendfile as they come.
 *
 * Reading pauses (backpressure) while `max_inflight` slots wait or `output_buffer` bytes of
 * done responses are queued, and resumes below half of that.
 */

#define CONN_READ_MIN        (64 * 1024)
#define CONN_READ_MAX        (4 * 1024 * 1024)
#define CONN_IOV_MAX         64
#define CONN_READS_PER_EVENT 16
#define CONN_KEEP_IN_CAP     (1024 * 1024)

struct coll_conn {
    struct coll_server *srv; /* borrowed */
    struct coll_conn *prev, *next;
    int fd; /* owned */
    char peer[96];
    ev_io rio, wio;
    ev_timer idle;
    ev_tstamp last_activity;
    struct sl_buf in; /* owned: received bytes; the next frame starts at in_off */
    size_t in_off;
    struct coll_resp *head, *tail; /* owned slots */
    size_t nresp;
    uint64_t queued; /* unsent bytes of done slots */
    size_t piece;    /* send position in head: piece index and offset in it */
    uint64_t piece_off;
    int busy; /* nesting of callbacks using c: closing is deferred until 0 */
    bool dead, draining;
    uint8_t *scratch; /* owned: pread buffer when sendfile is off */
};

static const char *conn_who(const struct coll_conn *c)
{
    return c->peer;
}

void coll_resp_begin(struct coll_resp *resp, int32_t corr_id)
{
    sl_buf_hole(&resp->buf, 4);
    sl_buf_put_i32(&resp->buf, corr_id);
}

int coll_resp_add_file(struct coll_resp *resp, struct coll_region *region)
{
    if (region->len == 0) {
        coll_region_release(region);
        return 0;
    }
    if (resp->nfiles == resp->cap_files) {
        size_t cap = resp->cap_files ? resp->cap_files * 2 : 4;
        struct coll_resp_file *f = sl_realloc(resp->files, cap * sizeof(*f));
        if (!f) {
            coll_region_release(region);
            return -ENOMEM;
        }
        resp->files = f;
        resp->cap_files = cap;
    }
    resp->files[resp->nfiles].at = resp->buf.len;
    resp->files[resp->nfiles].region = *region;
    resp->nfiles++;
    memset(region, 0, sizeof(*region));
    region->fd = -1;
    return 0;
}

void coll_resp_free(struct coll_resp *resp)
{
    if (!resp)
        return;
    for (size_t i = 0; i < resp->nfiles; i++)
        coll_region_release(&resp->files[i].region);
    sl_free(resp->files);
    sl_buf_fini(&resp->buf);
    sl_free(resp);
}

/* Piece k of a slot: even k = 2i is memory, odd k = 2i + 1 is file region i. */
static size_t resp_npieces(const struct coll_resp *r)
{
    return 2 * r->nfiles + 1;
}

static void resp_mem_piece(const struct coll_resp *r, size_t k, size_t *start, size_t *end)
{
    size_t i = k / 2;
    *start = i == 0 ? 0 : r->files[i - 1].at;
    *end = i < r->nfiles ? r->files[i].at : r->buf.len;
}

static uint64_t resp_piece_len(const struct coll_resp *r, size_t k)
{
    if (k % 2)
        return r->files[k / 2].region.len;
    size_t s, e;
    resp_mem_piece(r, k, &s, &e);
    return e - s;
}

static void conn_destroy(struct coll_conn *c);
static void conn_update_reading(struct coll_conn *c);

static bool conn_paused(const struct coll_conn *c)
{
    const struct coll_server_conf *cf = c->srv->conf;
    return c->draining || c->dead || c->nresp >= (size_t)cf->max_inflight ||
           c->queued >= (uint64_t)cf->output_buffer;
}

static bool conn_may_resume(const struct coll_conn *c)
{
    const struct coll_server_conf *cf = c->srv->conf;
    return !c->draining && !c->dead && c->nresp < (size_t)cf->max_inflight &&
           c->queued < (uint64_t)cf->output_buffer / 2;
}

/* Pops the fully sent head slot. */
static void conn_pop(struct coll_conn *c)
{
    struct coll_resp *r = c->head;
    c->head = r->next;
    if (!c->head)
        c->tail = NULL;
    c->nresp--;
    c->piece = 0;
    c->piece_off = 0;
    /* Latency as the client sees it: until the last byte left, queueing behind earlier
     * answers and a slow reader included. */
    if (r->api_key >= 0 && r->api_key < COLL_API_KEYS)
        sl_metric_observe(c->srv->m_latency[r->api_key], ev_time() - r->started);
    coll_resp_free(r);
}

/* Consumes n sent bytes from the head of the queue. */
static void conn_advance(struct coll_conn *c, uint64_t n)
{
    c->queued -= n;
    while (c->head && c->head->done) {
        struct coll_resp *r = c->head;
        while (c->piece < resp_npieces(r)) {
            uint64_t left = resp_piece_len(r, c->piece) - c->piece_off;
            if (n < left) {
                c->piece_off += n;
                return;
            }
            n -= left;
            c->piece++;
            c->piece_off = 0;
        }
        conn_pop(c);
    }
}

/* Sends one file piece (sendfile, or pread + send). Returns bytes sent, 0 on EAGAIN, or a
 * negative code on failure. */
static ssize_t conn_send_file(struct coll_conn *c, const struct coll_region *reg, uint64_t off)
{
    size_t len = reg->len - off;
    if (len > (1u << 30))
        len = 1u << 30;
    ssize_t n;
    if (c->srv->conf->sendfile) {
        off_t pos = (off_t)(reg->pos + off);
        n = sendfile(c->fd, reg->fd, &pos, len);
    } else {
        if (!c->scratch && !(c->scratch = sl_malloc(256 * 1024)))
            return -ENOMEM;
        if (len > 256 * 1024)
            len = 256 * 1024;
        ssize_t got = pread(reg->fd, c->scratch, len, (off_t)(reg->pos + off));
        if (got <= 0)
            return got == 0 ? -EIO : -errno;
        n = send(c->fd, c->scratch, (size_t)got, MSG_NOSIGNAL);
    }
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0)
        return -EIO; /* the file is shorter than the region: never spin on it */
    return n;
}

/* Writes as much of the done head slots as the socket takes. Returns 0, or a negative code
 * when the connection must be closed. */
static int conn_flush(struct coll_conn *c)
{
    while (c->head && c->head->done) {
        struct coll_resp *r = c->head;
        ssize_t n;
        if (c->piece % 2) {
            n = conn_send_file(c, &r->files[c->piece / 2].region, c->piece_off);
        } else {
            struct iovec iov[CONN_IOV_MAX];
            int cnt = 0;
            size_t k = c->piece;
            uint64_t off = c->piece_off;
            for (struct coll_resp *s = r; s && s->done && cnt < CONN_IOV_MAX; s = s->next) {
                for (; k < resp_npieces(s) && cnt < CONN_IOV_MAX; k++, off = 0) {
                    if (k % 2)
                        goto gathered;
                    size_t st, en;
                    resp_mem_piece(s, k, &st, &en);
                    if (en - st > off) {
                        iov[cnt].iov_base = s->buf.data + st + off;
                        iov[cnt].iov_len = en - st - off;
                        cnt++;
                    }
                }
                k = 0;
            }
        gathered:
            if (cnt == 0) {
                conn_advance(c, 0); /* only empty pieces before a file: skip them */
                if (c->head == r && c->piece % 2 == 0 && resp_piece_len(r, c->piece) == 0)
                    c->piece++;
                continue;
            }
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
            n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
            if (n < 0)
                n = errno == EAGAIN || errno == EINTR ? 0 : -errno;
        }
        if (n < 0)
            return (int)n;
        if (n == 0) {
            ev_io_start(c->srv->loop, &c->wio);
            return 0;
        }
        c->last_activity = ev_now(c->srv->loop);
        conn_advance(c, (uint64_t)n);
    }
    ev_io_stop(c->srv->loop, &c->wio);
    return 0;
}

static void conn_after_output(struct coll_conn *c)
{
    int rc = conn_flush(c);
    if (rc < 0) {
        SL_DEBUG(conn_who(c), "write failed: %s", sl_strerror(rc));
        coll_conn_close(c, NULL);
        return;
    }
    if (c->draining && c->nresp == 0) {
        coll_conn_close(c, NULL);
        return;
    }
    conn_update_reading(c);
}

static void resp_finish(struct coll_resp *r)
{
    sl_buf_patch_i32(&r->buf, 0, (int32_t)0);
    uint64_t total = r->buf.len;
    for (size_t i = 0; i < r->nfiles; i++)
        total += r->files[i].region.len;
    r->total = total;
    sl_buf_patch_i32(&r->buf, 0, (int32_t)(total - 4));
    r->done = true;
}

void coll_resp_done(struct coll_resp *r)
{
    struct coll_conn *c = r->conn;
    if (!c) {
        coll_resp_free(r);
        return;
    }
    r->cancel = NULL;
    r->op = NULL;
    if (sl_buf_error(&r->buf)) {
        SL_WARN(conn_who(c), "out of memory encoding a response; closing");
        coll_conn_close(c, NULL);
        return;
    }
    resp_finish(r);
    c->queued += r->total;
    if (c->head == r || (c->head && c->head->done))
        conn_after_output(c);
}

/* Unlinks and frees a slot that has no pending work (refused, or acks=0). */
static void conn_drop_slot(struct coll_conn *c, struct coll_resp *r)
{
    struct coll_resp **pp = &c->head;
    struct coll_resp *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = r->next;
    if (c->tail == r)
        c->tail = prev;
    c->nresp--;
    coll_resp_free(r);
}

/* Decodes and runs one frame (without its size). Returns false when the connection closed. */
static bool conn_run_frame(struct coll_conn *c, uint8_t *frame, size_t len)
{
    struct coll_resp *r = sl_calloc(1, sizeof(*r));
    if (!r) {
        SL_WARN(conn_who(c), "out of memory for a request; closing");
        coll_conn_close(c, NULL);
        return false;
    }
    sl_buf_init(&r->buf);
    r->conn = c;
    r->started = ev_time();
    r->api_key = -1;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nresp++;

    struct coll_req req = {.srv = c->srv, .resp = r, .peer = c->peer};
    struct sl_err err = {{0}};
    int rc = coll_dispatch(&req, frame, len, &err);
    if (c->dead) {
        /* Closed while the handler ran (a write failed): the slot was orphaned; only pending
         * work would still complete and free it. */
        if (rc != COLL_API_ASYNC)
            coll_resp_free(r);
        return false;
    }
    if (rc < 0) {
        /* A refused request has no pending work: its slot goes now, not as an orphan. */
        conn_drop_slot(c, r);
        sl_metric_inc(c->srv->m_bad_requests);
        SL_WARN(conn_who(c), "closing: %s", err.msg);
        if (len <= 256) {
            char hex[3 * 256 + 1];
            for (size_t i = 0; i < len; i++)
                snprintf(hex + 3 * i, 4, "%02x ", frame[i]);
            SL_DEBUG(conn_who(c), "frame: %s", hex);
        }
        coll_conn_close(c, NULL);
        return false;
    }
    if (rc == COLL_API_NORESP) {
        conn_drop_slot(c, r);
        if (c->head && c->head->done)
            conn_after_output(c);
        return !c->dead;
    }
    if (rc == COLL_API_DONE)
        coll_resp_done(r);
    return !c->dead;
}

/* Runs every complete frame buffered, as long as the connection is not paused. Returns false
 * when the connection closed. */
static bool conn_process(struct coll_conn *c)
{
    int64_t max = c->srv->conf->max_request_size;
    while (!conn_paused(c)) {
        size_t avail = c->in.len - c->in_off;
        if (avail < 4)
            break;
        int32_t size = (int32_t)sl_be32(c->in.data + c->in_off);
        if (size < 0 || size > max) {
            sl_metric_inc(c->srv->m_bad_requests);
            SL_WARN(conn_who(c), "closing: request size %d outside 0..%lld (max_request_size)",
                    size, (long long)max);
            coll_conn_close(c, NULL);
            return false;
        }
        if (avail - 4 < (size_t)size)
            break;
        uint8_t *frame = c->in.data + c->in_off + 4;
        c->in_off += 4 + (size_t)size;
        if (!conn_run_frame(c, frame, (size_t)size))
            return false;
    }
    /* Compact: keep only the unprocessed tail, and give back a large buffer once empty. A
     * partial frame is moved to the front only when the room behind it runs short, so a big
     * read buffer holding several frames is not copied after each one. */
    size_t rest = c->in.len - c->in_off;
    if (rest == 0) {
        if (c->in.cap > CONN_KEEP_IN_CAP) {
            sl_buf_fini(&c->in);
            sl_buf_init(&c->in);
        }
        c->in.len = 0;
        c->in_off = 0;
    } else if (c->in_off && c->in.cap - c->in.len < CONN_READ_MIN) {
        memmove(c->in.data, c->in.data + c->in_off, rest);
        c->in.len = rest;
        c->in_off = 0;
    }
    return true;
}

static void conn_update_reading(struct coll_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    if (c->dead)
        return;
    if (conn_paused(c)) {
        ev_io_stop(loop, &c->rio);
    } else if (!ev_is_active(&c->rio) && conn_may_resume(c)) {
        ev_io_start(loop, &c->rio);
        /* Frames may already be buffered: handle them without waiting for more bytes. */
        if (c->in.len - c->in_off >= 4)
            ev_feed_event(loop, &c->rio, EV_READ);
    }
}

static void conn_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct coll_conn *c = sl_container_of(w, struct coll_conn, rio);
    c->busy++;
    for (int i = 0; i < CONN_READS_PER_EVENT && !c->dead; i++) {
        if (!conn_process(c) || conn_paused(c))
            break;
        size_t want = CONN_READ_MIN;
        size_t avail = c->in.len - c->in_off;
        if (avail >= 4) {
            size_t frame = 4 + (size_t)sl_be32(c->in.data + c->in_off);
            if (frame > avail)
                want = SL_MAX(want, SL_MIN(frame - avail, (size_t)CONN_READ_MAX));
        }
        if (c->in_off && c->in.cap - c->in.len < want) {
            memmove(c->in.data, c->in.data + c->in_off, avail);
            c->in.len = avail;
            c->in_off = 0;
        }
        if (sl_buf_reserve(&c->in, want) != 0) {
            SL_WARN(conn_who(c), "out of memory for input; closing");
            coll_conn_close(c, NULL);
            break;
        }
        ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
        if (n == 0) {
            coll_conn_close(c, NULL);
            break;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                SL_DEBUG(conn_who(c), "read failed: %m");
                coll_conn_close(c, NULL);
            }
            if (!c->dead)
                conn_process(c);
            break;
        }
        c->in.len += (size_t)n;
        c->last_activity = ev_now(loop);
        if ((size_t)n < c->in.cap - c->in.len + (size_t)n) {
            conn_process(c);
            break; /* the socket is drained for now */
        }
    }
    if (!c->dead)
        conn_update_reading(c);
    if (--c->busy == 0 && c->dead)
        conn_destroy(c);
}

static void conn_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct coll_conn *c = sl_container_of(w, struct coll_conn, wio);
    c->busy++;
    conn_after_output(c);
    if (--c->busy == 0 && c->dead)
        conn_destroy(c);
}

static void conn_on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct coll_conn *c = sl_container_of(w, struct coll_conn, idle);
    double timeout = (double)c->srv->conf->idle_timeout_ms / 1000.0;
    ev_tstamp after = c->last_activity + timeout - ev_now(loop);
    if (after > 0 || c->nresp > 0) {
        w->repeat = after > 0 ? after : timeout;
        ev_timer_again(loop, w);
        return;
    }
    SL_INFO(conn_who(c), "closing: idle for %.0fs", timeout);
    coll_conn_close(c, NULL);
}

int coll_conn_new(struct coll_server *srv, int fd, const char *peer)
{
    struct coll_conn *c = sl_calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->srv = srv;
    c->fd = fd;
    snprintf(c->peer, sizeof(c->peer), "kafka %s", peer);
    sl_buf_init(&c->in);
    ev_io_init(&c->rio, conn_on_read, fd, EV_READ);
    ev_io_init(&c->wio, conn_on_write, fd, EV_WRITE);
    c->last_activity = ev_now(srv->loop);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    sl_metric_set(srv->m_conns, (double)srv->nconns);
    ev_io_start(srv->loop, &c->rio);
    if (srv->conf->idle_timeout_ms > 0) {
        double t = (double)srv->conf->idle_timeout_ms / 1000.0;
        ev_timer_init(&c->idle, conn_on_idle, t, t);
        ev_timer_start(srv->loop, &c->idle);
    } else {
        ev_timer_init(&c->idle, conn_on_idle, 0., 0.);
    }
    SL_DEBUG(conn_who(c), "connected");
    return 0;
}

static void conn_destroy(struct coll_conn *c)
{
    struct coll_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    sl_metric_set(srv->m_conns, (double)srv->nconns);
    sl_buf_fini(&c->in);
    sl_free(c->scratch);
    sl_free(c);
    if (srv->stopping && srv->nconns == 0 && srv->stop_done)
        ev_idle_start(srv->loop, &srv->stop_idle);
}

void coll_conn_close(struct coll_conn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    struct ev_loop *loop = c->srv->loop;
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    ev_timer_stop(loop, &c->idle);
    if (why)
        SL_INFO(conn_who(c), "closing: %s", why);
    else
        SL_DEBUG(conn_who(c), "closed");
    /* Pending slots: cancel what can be, orphan the rest (the storage completes them). */
    struct coll_resp *r = c->head;
    while (r) {
        struct coll_resp *next = r->next;
        r->next = NULL;
        if (r->done) {
            coll_resp_free(r);
        } else if (r->cancel) {
            r->conn = NULL;
            r->cancel(r);
        } else {
            r->conn = NULL;
        }
        r = next;
    }
    c->head = c->tail = NULL;
    c->nresp = 0;
    close(c->fd);
    c->fd = -1;
    if (c->busy == 0)
        conn_destroy(c);
}

void coll_conn_drain(struct coll_conn *c)
{
    if (c->dead)
        return;
    c->draining = true;
    ev_io_stop(c->srv->loop, &c->rio);
    if (c->nresp == 0)
        coll_conn_close(c, NULL);
}

void coll_conn_snapshot(struct coll_server *srv, struct coll_conn **out, size_t n)
{
    size_t i = 0;
    for (struct coll_conn *c = srv->conns; c && i < n; c = c->next)
        out[i++] = c;
}
