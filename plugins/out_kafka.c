/* out_kafka: the producer on libev: bootstrap, Metadata, one connection per broker, Produce to
 * each partition's leader, one batch in flight per partition, retries with backoff. */
#include "plugins/out_kafka.h"

#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/resolve.h"
#include "plugins/out_kafka_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * A broker connection:
 *
 *   DOWN --> RESOLVING --addresses--> CONNECTING --writable, SO_ERROR 0--> HANDSHAKE --> READY
 *     ^      (a thread;                  |  refused or timed out: the     ApiVersions    |
 *     |       numeric: at once)          +- next address, if there is one               |
 *     +---- fail: close, requeue every batch in flight, refresh metadata, backoff --------+
 *
 * A partition:
 *
 *   queue (batches in order) --head, leader READY, not_before passed--> in flight (one)
 *       ^                                                                  |
 *       +-- retriable error / connection lost: back at the head, backoff --+--> acked: done(0)
 *
 * Kafka answers the requests of one connection in order, so responses are matched to the
 * oldest request written, and their correlation ids are checked against it.
 */

#define WHO(ok)           ((ok)->ctx.name)
#define OK_READ_CHUNK     (64 * 1024)
#define OK_IOV_MAX        32
#define OK_BACKOFF_JITTER 0.2
#define OK_NO_BROKER_WARN 30.0 /* seconds between "no collector reachable" warnings */

enum ok_state { OK_DOWN, OK_RESOLVING, OK_CONNECTING, OK_HANDSHAKE, OK_READY };

struct out_kafka;
struct ok_part;

/* One request, from encoding until its response (or until written, for acks=0). */
struct ok_req {
    struct ok_req *next;
    int32_t corr;
    int16_t api;
    int16_t version;
    struct sl_buf hdr;  /* owned: the frame, or its start when a batch follows */
    size_t off;         /* bytes of hdr + ref already written */
    const uint8_t *ref; /* borrowed: the batch bytes */
    size_t ref_len;
    bool expect_response;
    double deadline;
    struct ok_part *part;       /* produce */
    struct plugin_batch *batch; /* produce */
};

struct ok_broker {
    struct out_kafka *ok; /* borrowed */
    struct ok_broker *next;
    int32_t id; /* node id; negative for bootstrap addresses */
    char *host; /* owned */
    uint16_t port;
    enum ok_state state;
    int fd;
    ev_io io;
    ev_timer timer;
    struct sl_resolve *resolving; /* the name lookup under way, in RESOLVING */
    struct addrinfo *addrs;       /* owned: the resolved addresses, while connecting */
    struct addrinfo *addr;        /* borrowed from addrs: the one being tried */
    double connect_deadline;
    double reconnect_at;
    int failures;
    struct ok_req *wq_head, *wq_tail; /* not yet fully written */
    struct ok_req *rq_head, *rq_tail; /* written, waiting for their response */
    int inflight;                     /* requests in both queues */
    struct sl_buf rbuf;               /* owned: received bytes */
    int16_t produce_version;
    int16_t metadata_version;
};

struct ok_part {
    struct ok_topic *topic; /* borrowed */
    int32_t index;
    int32_t leader; /* -1: unknown */
    struct plugin_batch *head, *tail;
    struct plugin_batch *inflight;
};

struct ok_topic {
    struct ok_topic *next;
    char *name; /* owned */
    int32_t nparts;
    struct ok_part *parts; /* owned */
    int32_t fatal;         /* a negative code when the topic cannot be produced to */
};

struct out_kafka {
    struct plugin_ctx ctx;             /* copy; its strings borrowed */
    const struct out_kafka_conf *conf; /* borrowed */
    struct ok_broker *brokers;         /* owned: bootstrap addresses, then metadata's */
    struct ok_topic *topics;           /* owned */
    int32_t next_corr;
    bool started;
    bool meta_needed;
    /* Bumped when a topic is added; a Metadata request remembers the value it was sent with,
     * so a topic added while it was in flight is asked for at once rather than at the next
     * periodic refresh. */
    uint64_t topics_gen, meta_sent_gen;
    struct ok_broker *meta_broker; /* the broker with a Metadata request in flight, or NULL */
    double meta_next;              /* not before this (backoff) */
    double meta_refresh_at;        /* periodic refresh */
    int meta_failures;
    double warned_at;
    ev_timer tick;
    size_t queued_bytes;
    size_t queued_batches;
    struct sl_metric *m_retries, *m_acked, *m_failed, *m_connects, *m_queued;
};

static void ok_pump(struct out_kafka *ok);
static void broker_fail(struct ok_broker *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- helpers ------------------------------------------------------------------------------- */

/* Exponential backoff from retry_backoff up to retry_backoff_max, with +-20% jitter. */
static double ok_backoff(const struct out_kafka *ok, int attempts)
{
    double base = (double)ok->conf->retry_backoff_ms / 1000.0;
    double cap = (double)ok->conf->retry_backoff_max_ms / 1000.0;
    double d = base * ldexp(1.0, SL_MIN(attempts, 20));
    if (d > cap)
        d = cap;
    double j = 1.0 + OK_BACKOFF_JITTER * (2.0 * ((double)random() / (double)RAND_MAX) - 1.0);
    return d * j;
}

static struct ok_topic *topic_find(struct out_kafka *ok, const char *name, size_t len)
{
    for (struct ok_topic *t = ok->topics; t; t = t->next)
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

static struct ok_broker *broker_by_id(struct out_kafka *ok, int32_t id)
{
    for (struct ok_broker *b = ok->brokers; b; b = b->next)
        if (b->id == id)
            return b;
    return NULL;
}

static void broker_on_io(struct ev_loop *loop, ev_io *w, int revents);
static void broker_on_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* A new DOWN broker at the head of ok's list; takes ownership of host. NULL when out of
 * memory (host is then freed). */
static struct ok_broker *broker_new(struct out_kafka *ok, int32_t id, char *host, uint16_t port)
{
    struct ok_broker *b = sl_calloc(1, sizeof(*b));
    if (!b) {
        sl_free(host);
        return NULL;
    }
    b->ok = ok;
    b->id = id;
    b->host = host;
    b->port = port;
    b->fd = -1;
    sl_buf_init(&b->rbuf);
    ev_io_init(&b->io, broker_on_io, -1, EV_READ);
    ev_timer_init(&b->timer, broker_on_timer, 0, 0);
    b->next = ok->brokers;
    ok->brokers = b;
    return b;
}

static void req_free(struct ok_req *r)
{
    if (!r)
        return;
    sl_buf_fini(&r->hdr);
    sl_free(r);
}

/* Puts b back at the head of its partition's queue, to be sent again after a backoff. */
static void part_requeue(struct out_kafka *ok, struct ok_part *p, struct plugin_batch *b)
{
    if (p->inflight == b)
        p->inflight = NULL;
    b->attempts++;
    b->not_before = ev_now(ok->ctx.loop) + ok_backoff(ok, b->attempts - 1);
    b->next = p->head;
    p->head = b;
    if (!p->tail)
        p->tail = b;
    sl_metric_inc(ok->m_retries);
}

/* Completes b for good (acknowledged or refused). */
static void part_finish(struct out_kafka *ok, struct ok_part *p, struct plugin_batch *b, int status)
{
    if (p->inflight == b)
        p->inflight = NULL;
    ok->queued_bytes -= b->data.len;
    ok->queued_batches--;
    sl_metric_set(ok->m_queued, (double)ok->queued_bytes);
    if (status == 0)
        sl_metric_inc(ok->m_acked);
    else
        sl_metric_inc(ok->m_failed);
    b->next = NULL;
    b->done(b, status);
}

/* ---- connections ---------------------------------------------------------------------------- */

static void broker_arm_timer(struct ok_broker *b)
{
    struct ev_loop *loop = b->ok->ctx.loop;
    double when = 0;
    if (b->state == OK_RESOLVING || b->state == OK_CONNECTING || b->state == OK_HANDSHAKE)
        when = b->connect_deadline;
    if (b->rq_head && (when == 0 || b->rq_head->deadline < when))
        when = b->rq_head->deadline;
    if (b->wq_head && (when == 0 || b->wq_head->deadline < when))
        when = b->wq_head->deadline;
    ev_timer_stop(loop, &b->timer);
    if (when > 0) {
        double after = when - ev_now(loop);
        ev_timer_set(&b->timer, after > 0 ? after : 0, 0);
        ev_timer_start(loop, &b->timer);
    }
}

static void broker_update_io(struct ok_broker *b)
{
    struct ev_loop *loop = b->ok->ctx.loop;
    int events = EV_READ;
    if (b->state == OK_CONNECTING)
        events = EV_WRITE;
    else if (b->wq_head)
        events |= EV_WRITE;
    if (ev_is_active(&b->io) && (b->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, &b->io);
    ev_io_set(&b->io, b->fd, events);
    ev_io_start(loop, &b->io);
}

/* Appends r to b's write queue and wants writability. Takes ownership of r. */
static void broker_enqueue(struct ok_broker *b, struct ok_req *r)
{
    r->deadline = ev_now(b->ok->ctx.loop) + (double)b->ok->conf->request_timeout_ms / 1000.0;
    r->next = NULL;
    if (b->wq_tail)
        b->wq_tail->next = r;
    else
        b->wq_head = r;
    b->wq_tail = r;
    b->inflight++;
    broker_update_io(b);
    broker_arm_timer(b);
}

/* Disposes of a request whose connection is gone: its batch goes back to its partition. */
static void req_abort(struct out_kafka *ok, struct ok_req *r)
{
    if (r->batch)
        part_requeue(ok, r->part, r->batch);
    req_free(r);
}

static void broker_close(struct ok_broker *b)
{
    struct out_kafka *ok = b->ok;
    ev_io_stop(ok->ctx.loop, &b->io);
    ev_timer_stop(ok->ctx.loop, &b->timer);
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    sl_resolve_cancel(b->resolving);
    b->resolving = NULL;
    if (b->addrs)
        freeaddrinfo(b->addrs);
    b->addrs = b->addr = NULL;
    b->state = OK_DOWN;
    for (struct ok_req *q = b->wq_head; q;) {
        struct ok_req *n = q->next;
        req_abort(ok, q);
        q = n;
    }
    for (struct ok_req *q = b->rq_head; q;) {
        struct ok_req *n = q->next;
        req_abort(ok, q);
        q = n;
    }
    b->wq_head = b->wq_tail = b->rq_head = b->rq_tail = NULL;
    b->inflight = 0;
    sl_buf_reset(&b->rbuf);
    if (ok->meta_broker == b) {
        ok->meta_broker = NULL;
        ok->meta_needed = true;
    }
}

static void broker_fail(struct ok_broker *b, const char *fmt, ...)
{
    struct out_kafka *ok = b->ok;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* The first failure is news; repeats while it stays down are not (the backoff grows). */
    if (b->failures == 0)
        SL_WARN(WHO(ok), "broker %d (%s:%u): %s", (int)b->id, b->host, b->port, msg);
    else
        SL_DEBUG(WHO(ok), "broker %d (%s:%u): %s (attempt %d)", (int)b->id, b->host, b->port, msg,
                 b->failures + 1);
    broker_close(b);
    b->reconnect_at = ev_now(ok->ctx.loop) + ok_backoff(ok, b->failures);
    b->failures++;
    ok->meta_needed = true;
    ok_pump(ok);
}

static void broker_send_apiversions(struct ok_broker *b)
{
    struct out_kafka *ok = b->ok;
    struct ok_req *r = sl_calloc(1, sizeof(*r));
    if (!r) {
        broker_fail(b, "out of memory");
        return;
    }
    sl_buf_init(&r->hdr);
    r->api = KAFKA_API_APIVERSIONS;
    r->corr = ok->next_corr++;
    r->expect_response = true;
    if (out_kafka_proto_apiversions_req(&r->hdr, r->corr, ok->conf->client_id) != 0) {
        req_free(r);
        broker_fail(b, "out of memory");
        return;
    }
    broker_enqueue(b, r);
}

static void broker_connect_failed(struct ok_broker *b, const char *what, const char *why);

/* Starts a non-blocking connect to b->addr; a failure goes to broker_connect_failed. */
static void broker_connect_addr(struct ok_broker *b)
{
    struct out_kafka *ok = b->ok;
    const struct addrinfo *ai = b->addr;
    if (b->fd >= 0) {
        ev_io_stop(ok->ctx.loop, &b->io);
        close(b->fd);
        b->fd = -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        broker_connect_failed(b, "socket", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    b->fd = fd;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        broker_connect_failed(b, "connect", strerror(errno));
        return;
    }
    sl_metric_inc(ok->m_connects);
    b->state = OK_CONNECTING;
    b->connect_deadline = ev_now(ok->ctx.loop) + (double)ok->conf->connect_timeout_ms / 1000.0;
    broker_update_io(b);
    broker_arm_timer(b);
}

/* A connect attempt failed: a name with several addresses (IPv6 and IPv4, a round-robin
 * record) goes on to the next one, as Kafka clients do; after the last, b fails. */
static void broker_connect_failed(struct ok_broker *b, const char *what, const char *why)
{
    if (b->addr && b->addr->ai_next) {
        SL_DEBUG(WHO(b->ok), "broker %d (%s:%u): %s: %s; trying its next address", (int)b->id,
                 b->host, b->port, what, why);
        b->addr = b->addr->ai_next;
        broker_connect_addr(b);
        return;
    }
    broker_fail(b, "%s: %s", what, why);
}

static void broker_on_resolved(void *arg, struct addrinfo *ai, int rc)
{
    struct ok_broker *b = arg;
    b->resolving = NULL;
    if (rc != 0) {
        broker_fail(b, "cannot resolve: %s", gai_strerror(rc));
        return;
    }
    b->addrs = b->addr = ai;
    broker_connect_addr(b);
}

static void broker_connect(struct ok_broker *b)
{
    struct out_kafka *ok = b->ok;
    /* The lookup is bounded by the connect timeout too. */
    b->state = OK_RESOLVING;
    b->connect_deadline = ev_now(ok->ctx.loop) + (double)ok->conf->connect_timeout_ms / 1000.0;
    struct sl_resolve *r = NULL;
    int rc = sl_resolve_start(ok->ctx.loop, b->host, b->port, broker_on_resolved, b, &r);
    if (rc != 0) {
        broker_fail(b, "cannot resolve: %s", strerror(-rc));
        return;
    }
    if (r) { /* a name: the answer comes later */
        b->resolving = r;
        broker_arm_timer(b);
    }
}

/* Writes as much of the write queue as the socket takes; finished requests move to the
 * response queue (or complete, for acks=0). Returns 0 or -1 when b failed. */
static int broker_flush(struct ok_broker *b)
{
    struct out_kafka *ok = b->ok;
    while (b->wq_head) {
        struct iovec iov[OK_IOV_MAX];
        int n = 0;
        for (struct ok_req *r = b->wq_head; r && n + 2 <= OK_IOV_MAX; r = r->next) {
            size_t off = r->off;
            if (off < r->hdr.len) {
                iov[n].iov_base = r->hdr.data + off;
                iov[n++].iov_len = r->hdr.len - off;
                off = 0;
            } else {
                off -= r->hdr.len;
            }
            if (r->ref_len > off) {
                iov[n].iov_base = (void *)(uintptr_t)(r->ref + off);
                iov[n++].iov_len = r->ref_len - off;
            }
        }
        ssize_t w = writev(b->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            broker_fail(b, "write: %s", strerror(errno));
            return -1;
        }
        size_t left = (size_t)w;
        while (b->wq_head) {
            struct ok_req *r = b->wq_head;
            size_t total = r->hdr.len + r->ref_len;
            size_t take = SL_MIN(left, total - r->off);
            r->off += take;
            left -= take;
            if (r->off < total)
                break;
            b->wq_head = r->next;
            if (!b->wq_head)
                b->wq_tail = NULL;
            r->next = NULL;
            if (r->expect_response) {
                if (b->rq_tail)
                    b->rq_tail->next = r;
                else
                    b->rq_head = r;
                b->rq_tail = r;
            } else {
                b->inflight--;
                struct ok_part *p = r->part;
                struct plugin_batch *batch = r->batch;
                req_free(r);
                if (batch)
                    part_finish(ok, p, batch, 0);
            }
        }
    }
    broker_update_io(b);
    return 0;
}

/* ---- responses --------------------------------------------------------------------------- */

static void on_apiversions(struct ok_broker *b, const uint8_t *p, size_t n)
{
    struct out_kafka *ok = b->ok;
    struct kafka_api_versions v;
    struct sl_err err = {{0}};
    b->produce_version = KAFKA_PRODUCE_MIN;
    b->metadata_version = KAFKA_METADATA_MIN;
    if (out_kafka_proto_apiversions_parse(p, n, &v, &err) != 0) {
        broker_fail(b, "%s", err.msg);
        return;
    }
    if (v.error_code == 0) {
        int16_t pmax = v.max[KAFKA_API_PRODUCE], mmax = v.max[KAFKA_API_METADATA];
        if (pmax < KAFKA_PRODUCE_MIN || mmax < KAFKA_METADATA_MIN) {
            /* A pre-0.11 broker: no record batch v2. Waiting will not help, but retrying
             * slowly keeps the agent alive for when it is upgraded. */
            broker_fail(b,
                        "broker supports Produce up to v%d and Metadata up to v%d; "
                        "need v%d and v%d (Kafka 0.11+)",
                        pmax, mmax, KAFKA_PRODUCE_MIN, KAFKA_METADATA_MIN);
            return;
        }
        b->produce_version = SL_MIN(pmax, KAFKA_PRODUCE_MAX);
        b->metadata_version = SL_MIN(mmax, KAFKA_METADATA_MAX);
    }
    b->state = OK_READY;
    if (b->failures > 0)
        SL_NOTICE(WHO(ok), "broker %d (%s:%u) reachable again after %d attempts", (int)b->id,
                  b->host, b->port, b->failures);
    b->failures = 0;
    SL_INFO(WHO(ok), "connected to broker %d (%s:%u): Produce v%d, Metadata v%d", (int)b->id,
            b->host, b->port, b->produce_version, b->metadata_version);
    broker_arm_timer(b);
    ok_pump(ok);
}

/* Adds or updates the brokers metadata lists. Returns -ENOMEM or 0. */
static int meta_apply_brokers(struct out_kafka *ok, const struct kafka_meta *m)
{
    for (int32_t i = 0; i < m->nbrokers; i++) {
        const struct kafka_meta_broker *mb = &m->brokers[i];
        if (mb->node_id < 0 || !mb->host.p || mb->host.len == 0 || mb->port <= 0 ||
            mb->port > 65535)
            continue;
        struct ok_broker *b = broker_by_id(ok, mb->node_id);
        if (b && strlen(b->host) == mb->host.len &&
            memcmp(b->host, mb->host.p, mb->host.len) == 0 && b->port == mb->port)
            continue;
        char *host = sl_strndup((const char *)mb->host.p, mb->host.len);
        if (!host)
            return -ENOMEM;
        if (b) {
            /* Moved: the old connection goes to a broker that no longer is this one. */
            broker_close(b);
            sl_free(b->host);
            b->host = host;
            b->port = (uint16_t)mb->port;
            continue;
        }
        if (!broker_new(ok, mb->node_id, host, (uint16_t)mb->port))
            return -ENOMEM;
    }
    return 0;
}

static int meta_apply_topic(struct out_kafka *ok, const struct kafka_meta_topic *mt, bool *changed,
                            bool *incomplete)
{
    struct ok_topic *t = topic_find(ok, (const char *)mt->name.p, mt->name.len);
    if (!t)
        return 0;
    if (mt->error_code != 0) {
        enum kafka_err_action a = out_kafka_proto_err_action(mt->error_code);
        if (a == KAFKA_ERR_FATAL) {
            if (t->fatal == 0)
                SL_ERR(WHO(ok), "topic %s: the cluster refuses it (Kafka error %d)", t->name,
                       (int)mt->error_code);
            t->fatal = -EPERM;
            *changed = true;
        } else {
            SL_INFO(WHO(ok), "topic %s: not available yet (Kafka error %d)", t->name,
                    (int)mt->error_code);
            *incomplete = true;
        }
        return 0;
    }
    int32_t count = 0;
    for (int32_t j = 0; j < mt->npartitions; j++)
        if (mt->partitions[j].index >= count && mt->partitions[j].index < 1000000)
            count = mt->partitions[j].index + 1;
    if (count > t->nparts) {
        struct ok_part *np = sl_realloc(t->parts, (size_t)count * sizeof(*np));
        if (!np)
            return -ENOMEM;
        for (int32_t j = t->nparts; j < count; j++)
            np[j] = (struct ok_part){.topic = t, .index = j, .leader = -1};
        t->parts = np;
        t->nparts = count;
        *changed = true;
    }
    if (count == 0)
        *incomplete = true;
    for (int32_t j = 0; j < mt->npartitions; j++) {
        const struct kafka_meta_partition *mp = &mt->partitions[j];
        if (mp->index < 0 || mp->index >= t->nparts)
            continue;
        int32_t leader = mp->error_code == KAFKA_E_LEADER_NOT_AVAILABLE ? -1 : mp->leader;
        if (leader < 0)
            *incomplete = true;
        if (t->parts[mp->index].leader != leader)
            SL_DEBUG(WHO(ok), "%s/%d: leader %d -> %d", t->name, (int)mp->index,
                     (int)t->parts[mp->index].leader, (int)leader);
        t->parts[mp->index].leader = leader;
    }
    t->fatal = 0;
    return 0;
}

static void on_metadata(struct ok_broker *b, int16_t version, const uint8_t *p, size_t n)
{
    struct out_kafka *ok = b->ok;
    struct kafka_meta m;
    struct sl_err err = {{0}};
    ok->meta_broker = NULL;
    int rc = out_kafka_proto_metadata_parse(p, n, version, &m, &err);
    if (rc != 0) {
        out_kafka_proto_meta_fini(&m);
        broker_fail(b, "%s", err.msg);
        return;
    }
    bool changed = false, incomplete = false;
    rc = meta_apply_brokers(ok, &m);
    for (int32_t i = 0; rc == 0 && i < m.ntopics; i++)
        rc = meta_apply_topic(ok, &m.topics[i], &changed, &incomplete);
    out_kafka_proto_meta_fini(&m);
    double now = ev_now(ok->ctx.loop);
    if (rc != 0 || incomplete) {
        ok->meta_needed = true;
        ok->meta_next = now + ok_backoff(ok, ok->meta_failures++);
    } else {
        ok->meta_needed = false;
        ok->meta_failures = 0;
    }
    if (ok->meta_sent_gen != ok->topics_gen) {
        ok->meta_needed = true;
        ok->meta_next = now;
    }
    ok->meta_refresh_at = now + (double)ok->conf->metadata_refresh_ms / 1000.0;
    if (changed && ok->ctx.on_topology)
        ok->ctx.on_topology(ok->ctx.topology_arg);
    ok_pump(ok);
}

static void on_produce(struct ok_broker *b, struct ok_req *r, const uint8_t *p, size_t n)
{
    struct out_kafka *ok = b->ok;
    struct ok_part *part = r->part;
    struct plugin_batch *batch = r->batch;
    int16_t code = 0;
    int64_t base = -1;
    struct sl_err err = {{0}};
    r->batch = NULL;
    if (out_kafka_proto_produce_parse(p, n, r->version, part->topic->name, part->index, &code,
                                      &base, &err) != 0) {
        part_requeue(ok, part, batch);
        broker_fail(b, "%s", err.msg);
        return;
    }
    switch (out_kafka_proto_err_action(code)) {
    case KAFKA_ERR_OK:
        SL_DEBUG(WHO(ok), "%s/%d: %d records acked at offset %lld", part->topic->name,
                 (int)part->index, (int)batch->records, (long long)base);
        part_finish(ok, part, batch, 0);
        break;
    case KAFKA_ERR_REFRESH:
        ok->meta_needed = true;
        /* fall through */
    case KAFKA_ERR_RETRY:
        SL_WARN(WHO(ok), "%s/%d: Kafka error %d from broker %d; retrying", part->topic->name,
                (int)part->index, (int)code, (int)b->id);
        part_requeue(ok, part, batch);
        break;
    case KAFKA_ERR_FATAL:
        SL_ERR(WHO(ok),
               "%s/%d: broker %d refused a batch of %d records for good (Kafka error "
               "%d); skipping it",
               part->topic->name, (int)part->index, (int)b->id, (int)batch->records, (int)code);
        part_finish(ok, part, batch, -EBADMSG);
        break;
    }
    ok_pump(ok); /* the partition is free for its next batch */
}

/* Handles one whole response frame. Returns 0, or -1 when b failed. */
static int broker_on_frame(struct ok_broker *b, const uint8_t *p, size_t n)
{
    struct ok_req *r = b->rq_head;
    if (n < 4 || !r) {
        broker_fail(b, "unexpected response of %zu bytes", n);
        return -1;
    }
    int32_t corr = (int32_t)sl_be32(p);
    if (corr != r->corr) {
        broker_fail(b, "response correlation id %d, expected %d", (int)corr, (int)r->corr);
        return -1;
    }
    b->rq_head = r->next;
    if (!b->rq_head)
        b->rq_tail = NULL;
    b->inflight--;
    enum ok_state state = b->state;
    switch (r->api) {
    case KAFKA_API_APIVERSIONS:
        on_apiversions(b, p + 4, n - 4);
        break;
    case KAFKA_API_METADATA:
        on_metadata(b, r->version, p + 4, n - 4);
        break;
    case KAFKA_API_PRODUCE:
        on_produce(b, r, p + 4, n - 4);
        break;
    }
    req_free(r);
    /* A handler that failed the broker closed it; a READY broker that is now down or
     * reconnecting is no longer the one whose buffer we were reading. */
    if (b->state == OK_DOWN || (state == OK_READY && b->state != OK_READY))
        return -1;
    broker_arm_timer(b);
    return 0;
}

static void broker_read(struct ok_broker *b)
{
    struct out_kafka *ok = b->ok;
    for (;;) {
        if (sl_buf_reserve(&b->rbuf, OK_READ_CHUNK) != 0) {
            broker_fail(b, "out of memory");
            return;
        }
        ssize_t got = read(b->fd, b->rbuf.data + b->rbuf.len, b->rbuf.cap - b->rbuf.len);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (got <= 0) {
            broker_fail(b, "%s", got == 0 ? "connection closed by the broker" : strerror(errno));
            return;
        }
        b->rbuf.len += (size_t)got;
        size_t pos = 0;
        while (b->rbuf.len - pos >= 4) {
            int32_t size = (int32_t)sl_be32(b->rbuf.data + pos);
            if (size < 4 || size > ok->conf->max_frame_bytes) {
                broker_fail(b, "response frame of %d bytes refused", (int)size);
                return;
            }
            if (b->rbuf.len - pos - 4 < (size_t)size)
                break;
            if (broker_on_frame(b, b->rbuf.data + pos + 4, (size_t)size) != 0)
                return;
            pos += 4 + (size_t)size;
        }
        if (pos > 0) {
            memmove(b->rbuf.data, b->rbuf.data + pos, b->rbuf.len - pos);
            b->rbuf.len -= pos;
        }
        if ((size_t)got < OK_READ_CHUNK)
            break;
    }
}

static void broker_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ok_broker *b = sl_container_of(w, struct ok_broker, io);
    if (b->state == OK_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            soerr = errno;
        if (soerr != 0) {
            broker_connect_failed(b, "connect", strerror(soerr));
            return;
        }
        freeaddrinfo(b->addrs);
        b->addrs = b->addr = NULL;
        b->state = OK_HANDSHAKE;
        broker_send_apiversions(b);
        return;
    }
    if ((revents & EV_WRITE) && broker_flush(b) != 0)
        return;
    if (revents & EV_READ)
        broker_read(b);
}

static void broker_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ok_broker *b = sl_container_of(w, struct ok_broker, timer);
    double now = ev_now(loop);
    if (b->state == OK_RESOLVING && now >= b->connect_deadline) {
        broker_fail(b, "name resolution timed out");
        return;
    }
    if (b->state == OK_CONNECTING && now >= b->connect_deadline) {
        broker_connect_failed(b, "connect", "timed out");
        return;
    }
    if (b->state == OK_HANDSHAKE && now >= b->connect_deadline) {
        broker_fail(b, "connection timed out");
        return;
    }
    if ((b->rq_head && now >= b->rq_head->deadline) ||
        (b->wq_head && now >= b->wq_head->deadline)) {
        broker_fail(b, "request timed out");
        return;
    }
    broker_arm_timer(b);
}

/* ---- the pump: metadata, connections, sends -------------------------------------------- */

static void send_metadata(struct out_kafka *ok, struct ok_broker *b)
{
    size_t n = 0;
    for (struct ok_topic *t = ok->topics; t; t = t->next)
        n++;
    const char **names = sl_calloc(n ? n : 1, sizeof(*names));
    struct ok_req *r = sl_calloc(1, sizeof(*r));
    if (!names || !r) {
        sl_free(names);
        sl_free(r);
        ok->meta_next = ev_now(ok->ctx.loop) + 1.0;
        return;
    }
    n = 0;
    for (struct ok_topic *t = ok->topics; t; t = t->next)
        names[n++] = t->name;
    sl_buf_init(&r->hdr);
    r->api = KAFKA_API_METADATA;
    r->version = b->metadata_version;
    r->corr = ok->next_corr++;
    r->expect_response = true;
    int rc = out_kafka_proto_metadata_req(&r->hdr, r->version, r->corr, ok->conf->client_id, names,
                                          n, ok->conf->auto_create_topics);
    sl_free(names);
    if (rc != 0) {
        req_free(r);
        ok->meta_next = ev_now(ok->ctx.loop) + 1.0;
        return;
    }
    ok->meta_broker = b;
    ok->meta_sent_gen = ok->topics_gen;
    broker_enqueue(b, r);
}

static void send_produce(struct out_kafka *ok, struct ok_broker *b, struct ok_part *p)
{
    struct plugin_batch *batch = p->head;
    struct ok_req *r = sl_calloc(1, sizeof(*r));
    if (!r)
        return;
    sl_buf_init(&r->hdr);
    r->api = KAFKA_API_PRODUCE;
    r->version = b->produce_version;
    r->corr = ok->next_corr++;
    r->expect_response = ok->conf->acks != 0;
    r->part = p;
    r->batch = batch;
    r->ref = batch->data.data;
    r->ref_len = batch->data.len;
    if (out_kafka_proto_produce_req(&r->hdr, r->version, r->corr, ok->conf->client_id,
                                    (int16_t)ok->conf->acks, (int32_t)ok->conf->request_timeout_ms,
                                    p->topic->name, p->index, batch->data.len) != 0) {
        req_free(r);
        return;
    }
    p->head = batch->next;
    if (!p->head)
        p->tail = NULL;
    batch->next = NULL;
    p->inflight = batch;
    SL_DEBUG(WHO(ok), "%s/%d: producing %d records (%zu bytes) to broker %d, corr %d",
             p->topic->name, (int)p->index, (int)batch->records, batch->data.len, (int)b->id,
             (int)r->corr);
    broker_enqueue(b, r);
}

/* Some broker to talk to for metadata: a READY one, else starts connecting to the next one
 * that is due. Returns the READY broker or NULL. */
static struct ok_broker *pick_meta_broker(struct out_kafka *ok, double now, double *wake)
{
    struct ok_broker *due = NULL;
    for (struct ok_broker *b = ok->brokers; b; b = b->next)
        if (b->state == OK_READY)
            return b;
    for (struct ok_broker *b = ok->brokers; b; b = b->next)
        if (b->state != OK_DOWN)
            return NULL; /* one is on its way; its handshake pumps again */
    for (struct ok_broker *b = ok->brokers; b; b = b->next) {
        if (b->reconnect_at <= now) {
            if (!due || b->failures < due->failures)
                due = b;
        } else if (*wake == 0 || b->reconnect_at < *wake) {
            *wake = b->reconnect_at;
        }
    }
    if (due)
        broker_connect(due);
    else if (now - ok->warned_at > OK_NO_BROKER_WARN && ok->queued_batches > 0) {
        ok->warned_at = now;
        SL_WARN(WHO(ok),
                "no collector reachable; holding %zu batches (%zu bytes), reading is "
                "paused when memory is full",
                ok->queued_batches, ok->queued_bytes);
    }
    return NULL;
}

static void ok_pump(struct out_kafka *ok)
{
    if (!ok->started)
        return;
    struct ev_loop *loop = ok->ctx.loop;
    double now = ev_now(loop);
    double wake = 0;
    if (now >= ok->meta_refresh_at && ok->topics)
        ok->meta_needed = true;
    if (ok->meta_needed && !ok->meta_broker && ok->topics) {
        if (now >= ok->meta_next) {
            struct ok_broker *b = pick_meta_broker(ok, now, &wake);
            if (b)
                send_metadata(ok, b);
        } else {
            wake = ok->meta_next;
        }
    }
    for (struct ok_topic *t = ok->topics; t; t = t->next) {
        for (int32_t i = 0; i < t->nparts; i++) {
            struct ok_part *p = &t->parts[i];
            if (p->inflight || !p->head)
                continue;
            if (p->head->not_before > now) {
                if (wake == 0 || p->head->not_before < wake)
                    wake = p->head->not_before;
                continue;
            }
            struct ok_broker *b = p->leader >= 0 ? broker_by_id(ok, p->leader) : NULL;
            if (!b) {
                ok->meta_needed = true;
                continue;
            }
            if (b->state == OK_DOWN) {
                if (b->reconnect_at <= now)
                    broker_connect(b);
                else if (wake == 0 || b->reconnect_at < wake)
                    wake = b->reconnect_at;
                continue;
            }
            if (b->state == OK_READY && b->inflight < ok->conf->max_in_flight)
                send_produce(ok, b, p);
        }
    }
    if (ok->meta_needed && !ok->meta_broker && ok->meta_next > now &&
        (wake == 0 || ok->meta_next < wake))
        wake = ok->meta_next;
    if (ok->meta_needed && !ok->meta_broker && ok->meta_next <= now && wake == 0)
        wake = now + 0.1; /* waiting for a connection: its events pump too; this is a net */
    if (wake == 0 || wake > ok->meta_refresh_at)
        wake = ok->meta_refresh_at;
    ev_timer_stop(loop, &ok->tick);
    ev_timer_set(&ok->tick, wake > now ? wake - now : 0.001, 0);
    ev_timer_start(loop, &ok->tick);
}

static void ok_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct out_kafka *ok = sl_container_of(w, struct out_kafka, tick);
    ok_pump(ok);
}

/* ---- the output interface ----------------------------------------------------------------- */

static int32_t out_kafka_partitions(void *self, const char *topic)
{
    struct out_kafka *ok = self;
    struct ok_topic *t = topic_find(ok, topic, strlen(topic));
    if (t)
        return t->fatal ? t->fatal : t->nparts;
    t = sl_calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->name = sl_strdup(topic);
    if (!t->name) {
        sl_free(t);
        return -ENOMEM;
    }
    t->next = ok->topics;
    ok->topics = t;
    ok->topics_gen++;
    ok->meta_needed = true;
    ok->meta_next = 0;
    ok_pump(ok);
    return 0;
}

static void out_kafka_send(void *self, struct plugin_batch *b)
{
    struct out_kafka *ok = self;
    struct ok_topic *t = topic_find(ok, b->topic, strlen(b->topic));
    SL_ASSERT(t && b->partition >= 0 && b->partition < t->nparts);
    struct ok_part *p = &t->parts[b->partition];
    b->next = NULL;
    b->attempts = 0;
    b->not_before = 0;
    if (p->tail)
        p->tail->next = b;
    else
        p->head = b;
    p->tail = b;
    ok->queued_bytes += b->data.len;
    ok->queued_batches++;
    sl_metric_set(ok->m_queued, (double)ok->queued_bytes);
    if (!p->inflight)
        ok_pump(ok);
}

static size_t out_kafka_queued(const void *self)
{
    const struct out_kafka *ok = self;
    return ok->queued_bytes;
}

static void out_kafka_free(void *self);

static int out_kafka_new(const struct plugin_ctx *ctx, const void *conf, void **self,
                         struct sl_err *err)
{
    const struct out_kafka_conf *c = conf;
    struct out_kafka *ok = sl_calloc(1, sizeof(*ok));
    if (!ok)
        return sl_err_set(err, -ENOMEM, "out of memory");
    ok->ctx = *ctx;
    ok->conf = c;
    ok->next_corr = 1;
    ok->meta_needed = true;
    ev_timer_init(&ok->tick, ok_on_tick, 0, 0);
    for (size_t i = c->collectors.len; i-- > 0;) {
        char *host = sl_strdup(c->collectors.items[i].host);
        if (!host || !broker_new(ok, -1 - (int32_t)i, host, c->collectors.items[i].port)) {
            out_kafka_free(ok);
            return sl_err_set(err, -ENOMEM, "out of memory");
        }
    }
    if (!ok->brokers) {
        out_kafka_free(ok);
        return sl_err_set(err, SL_ECONFIG, "no collector address");
    }
    if (ctx->metrics) {
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_produce_retries_total",
                               "batches sent again after an error or a lost connection", NULL, 0,
                               &ok->m_retries, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_batches_acked_total",
                               "record batches acknowledged by a collector", NULL, 0, &ok->m_acked,
                               NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_batches_refused_total",
                               "record batches a collector refused for good", NULL, 0,
                               &ok->m_failed, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_connects_total",
                               "connections opened to collectors", NULL, 0, &ok->m_connects, NULL);
        sl_metrics_add_gauge(ctx->metrics, "sluice_agent_output_queued_bytes",
                             "encoded bytes handed to the output and not yet acknowledged", NULL, 0,
                             &ok->m_queued, NULL);
    }
    *self = ok;
    return 0;
}

static int out_kafka_start(void *self, struct sl_err *err)
{
    struct out_kafka *ok = self;
    ok->started = true;
    ok_pump(ok);
    return 0;
}

static void out_kafka_stop(void *self)
{
    struct out_kafka *ok = self;
    ok->started = false;
    ev_timer_stop(ok->ctx.loop, &ok->tick);
    for (struct ok_broker *b = ok->brokers; b; b = b->next) {
        ev_io_stop(ok->ctx.loop, &b->io);
        ev_timer_stop(ok->ctx.loop, &b->timer);
    }
}

static void out_kafka_free(void *self)
{
    struct out_kafka *ok = self;
    if (!ok)
        return;
    out_kafka_stop(ok);
    if (ok->ctx.metrics) {
        sl_metrics_remove(ok->ctx.metrics, ok->m_retries);
        sl_metrics_remove(ok->ctx.metrics, ok->m_acked);
        sl_metrics_remove(ok->ctx.metrics, ok->m_failed);
        sl_metrics_remove(ok->ctx.metrics, ok->m_connects);
        sl_metrics_remove(ok->ctx.metrics, ok->m_queued);
        ok->m_retries = ok->m_acked = ok->m_failed = ok->m_connects = ok->m_queued = NULL;
    }
    /* Closing requeues what was in flight; then every queued batch is handed back undelivered. */
    for (struct ok_broker *b = ok->brokers; b; b = b->next)
        broker_close(b);
    while (ok->brokers) {
        struct ok_broker *b = ok->brokers;
        ok->brokers = b->next;
        sl_buf_fini(&b->rbuf);
        sl_free(b->host);
        sl_free(b);
    }
    while (ok->topics) {
        struct ok_topic *t = ok->topics;
        ok->topics = t->next;
        for (int32_t i = 0; i < t->nparts; i++) {
            struct ok_part *p = &t->parts[i];
            while (p->head) {
                struct plugin_batch *b = p->head;
                p->head = b->next;
                part_finish(ok, p, b, SL_ECLOSED);
            }
        }
        sl_free(t->parts);
        sl_free(t->name);
        sl_free(t);
    }
    sl_free(ok);
}

/* ---- options ------------------------------------------------------------------------------ */

static const struct sl_conf_enum acks_enum[] = {
    {"0", 0}, {"1", 1}, {"all", -1}, {"-1", -1}, {NULL, 0}};
static const struct sl_conf_enum compression_enum[] = {
    {"none", OUT_KAFKA_COMPRESS_NONE}, {"gzip", OUT_KAFKA_COMPRESS_GZIP}, {NULL, 0}};

static void out_kafka_check(void *obj, struct sl_conf_check *chk)
{
    struct out_kafka_conf *c = obj;
    if (c->retry_backoff_max_ms < c->retry_backoff_ms)
        sl_conf_check_error(chk, "retry_backoff_max",
                            "'retry_backoff_max' must be at least 'retry_backoff'");
}

#define OPT(field) .offset = offsetof(struct out_kafka_conf, field)

static const struct sl_conf_opt out_kafka_opts[] = {
    {.name = "collectors",
     .type = SL_CONF_HOSTPORTS,
     OPT(collectors),
     .def = "[localhost]",
     .port = 9092,
     .min = 1,
     .max = 64,
     .help = "bootstrap addresses of collectors or Kafka brokers (host:port); a name is "
             "resolved off the event loop and each of its addresses tried in turn"},
    {.name = "acks",
     .type = SL_CONF_ENUM,
     OPT(acks),
     .def = "all",
     .enums = acks_enum,
     .help = "acknowledgements to wait for: all replicas, the leader, or none (0)"},
    {.name = "compression",
     .type = SL_CONF_ENUM,
     OPT(compression),
     .def = "gzip",
     .enums = compression_enum,
     .help = "record batch compression codec"},
    {.name = "compression_level",
     .type = SL_CONF_INT,
     OPT(compression_level),
     .def = "1",
     .min = -1,
     .max = 9,
     .help = "gzip level, 1 fastest to 9 smallest, -1 for zlib's default"},
    {.name = "batch_bytes",
     .type = SL_CONF_SIZE,
     OPT(batch_bytes),
     .def = "512KiB",
     .min = 1024,
     .max = 64 << 20,
     .help = "a batch closes once its records reach this size"},
    {.name = "linger",
     .type = SL_CONF_DURATION,
     OPT(linger_ms),
     .def = "200ms",
     .min = 0,
     .max = 60000,
     .help = "a batch closes at the latest this long after its first record"},
    {.name = "max_in_flight",
     .type = SL_CONF_INT,
     OPT(max_in_flight),
     .def = "5",
     .min = 1,
     .max = 1000,
     .help = "requests awaiting a response per connection"},
    {.name = "request_timeout",
     .type = SL_CONF_DURATION,
     OPT(request_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .help = "time to wait for a response before reconnecting"},
    {.name = "connect_timeout",
     .type = SL_CONF_DURATION,
     OPT(connect_timeout_ms),
     .def = "10s",
     .min = 100,
     .max = 3600000,
     .help = "time to wait for a connection and its handshake"},
    {.name = "retry_backoff",
     .type = SL_CONF_DURATION,
     OPT(retry_backoff_ms),
     .def = "100ms",
     .min = 1,
     .max = 3600000,
     .help = "first wait before a retry; doubles per attempt"},
    {.name = "retry_backoff_max",
     .type = SL_CONF_DURATION,
     OPT(retry_backoff_max_ms),
     .def = "10s",
     .min = 1,
     .max = 3600000,
     .help = "longest wait between retries"},
    {.name = "metadata_refresh",
     .type = SL_CONF_DURATION,
     OPT(metadata_refresh_ms),
     .def = "5m",
     .min = 1000,
     .max = 86400000,
     .help = "period of the metadata refresh"},
    {.name = "max_response_bytes",
     .type = SL_CONF_SIZE,
     OPT(max_frame_bytes),
     .def = "64MiB",
     .min = 1024,
     .max = 1 << 30,
     .help = "largest response frame accepted from a broker"},
    {.name = "client_id",
     .type = SL_CONF_STRING,
     OPT(client_id),
     .def = "sluice-agent",
     .min = 1,
     .max = 255,
     .help = "client id sent with every request"},
    {.name = "auto_create_topics",
     .type = SL_CONF_BOOL,
     OPT(auto_create_topics),
     .def = "true",
     .help = "ask brokers to create missing topics (Metadata v4+)"},
    {.name = NULL},
};

const struct sl_conf_section out_kafka_section = {
    .name = "kafka",
    .help = "where batches go: collectors, or any Kafka 0.11+ cluster",
    .opts = out_kafka_opts,
    .size = sizeof(struct out_kafka_conf),
    .check = out_kafka_check,
};

static const struct plugin_output_ops out_kafka_ops = {
    .partitions = out_kafka_partitions,
    .send = out_kafka_send,
    .queued = out_kafka_queued,
};

const struct plugin out_kafka_plugin = {
    .name = "kafka",
    .kind = PLUGIN_OUTPUT,
    .help = "the Kafka producer (acks, one batch in flight per partition, retries)",
    .section = &out_kafka_section,
    .new = out_kafka_new,
    .start = out_kafka_start,
    .stop = out_kafka_stop,
    .free = out_kafka_free,
    .output = &out_kafka_ops,
};
