/* The Kafka protocol server: listeners, accepting, limits, metrics and graceful stop. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/log.h"
#include "common/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SRV_WHO "kafka"

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                        1,      2.5,     5,      10,    30};

bool coll_str_copy(char *dst, size_t size, struct sl_bytes s)
{
    if (!s.p || s.len >= size || memchr(s.p, 0, s.len))
        return false;
    memcpy(dst, s.p, s.len);
    dst[s.len] = 0;
    return true;
}

/* ---- metrics ---------------------------------------------------------------------------- */

struct coll_topic_stats *coll_server_topic_stats(struct coll_server *srv, const char *topic)
{
    if (!srv->metrics)
        return NULL;
    for (struct coll_topic_stats *t = srv->topics; t; t = t->next)
        if (strcmp(t->topic, topic) == 0)
            return t;
    struct coll_topic_stats *t = sl_calloc(1, sizeof(*t));
    if (!t || !(t->topic = sl_strdup(topic))) {
        sl_free(t);
        return NULL;
    }
    struct sl_metric_label l = {"topic", topic};
    sl_metrics_add_counter(srv->metrics, "sluice_topic_bytes_in_total",
                           "bytes of record batches produced to the topic", &l, 1, &t->bytes_in,
                           NULL);
    sl_metrics_add_counter(srv->metrics, "sluice_topic_records_in_total",
                           "records produced to the topic", &l, 1, &t->records_in, NULL);
    sl_metrics_add_counter(srv->metrics, "sluice_topic_bytes_out_total",
                           "bytes of record batches fetched from the topic", &l, 1, &t->bytes_out,
                           NULL);
    /* Whole batches are sent, so this counts the records of the sent batches, the ones below
     * the asked offset that clients skip included (Kafka has no such metric to copy). */
    sl_metrics_add_counter(srv->metrics, "sluice_topic_records_out_total",
                           "records in the record batches fetched from the topic", &l, 1,
                           &t->records_out, NULL);
    t->next = srv->topics;
    srv->topics = t;
    return t;
}

static double part_gauge(struct coll_part_gauges *g, int what)
{
    struct coll_plog *pl = coll_storage_get(g->srv->st, g->topic, g->partition);
    if (!pl)
        return 0;
    return what == 0   ? (double)pl->next_offset
           : what == 1 ? (double)coll_plog_size(pl)
                       : (double)pl->log_start;
}
static double part_leo(void *arg)
{
    return part_gauge(arg, 0);
}
static double part_size(void *arg)
{
    return part_gauge(arg, 1);
}
static double part_start(void *arg)
{
    return part_gauge(arg, 2);
}

void coll_server_track_partition(struct coll_server *srv, const char *topic, int32_t partition)
{
    if (!srv->metrics)
        return;
    for (struct coll_part_gauges *g = srv->part_gauges; g; g = g->next)
        if (g->partition == partition && strcmp(g->topic, topic) == 0)
            return;
    struct coll_part_gauges *g = sl_calloc(1, sizeof(*g));
    if (!g || !(g->topic = sl_strdup(topic))) {
        sl_free(g);
        return;
    }
    g->srv = srv;
    g->partition = partition;
    char pbuf[16];
    snprintf(pbuf, sizeof(pbuf), "%d", partition);
    struct sl_metric_label l[2] = {{"topic", topic}, {"partition", pbuf}};
    sl_metrics_add_gauge_fn(srv->metrics, "sluice_partition_log_end_offset",
                            "offset the next record of the partition gets", l, 2, part_leo, g,
                            &g->leo, NULL);
    sl_metrics_add_gauge_fn(srv->metrics, "sluice_partition_log_start_offset",
                            "first offset of the partition still kept", l, 2, part_start, g,
                            &g->start, NULL);
    sl_metrics_add_gauge_fn(srv->metrics, "sluice_partition_size_bytes",
                            "bytes of the partition's segment files", l, 2, part_size, g, &g->size,
                            NULL);
    g->next = srv->part_gauges;
    srv->part_gauges = g;
}

static void part_gauges_free(struct coll_server *srv, struct coll_part_gauges *g)
{
    sl_metrics_remove(srv->metrics, g->leo);
    sl_metrics_remove(srv->metrics, g->start);
    sl_metrics_remove(srv->metrics, g->size);
    sl_free(g->topic);
    sl_free(g);
}

void coll_server_untrack_partition(struct coll_server *srv, const char *topic, int32_t partition)
{
    for (struct coll_part_gauges **pp = &srv->part_gauges; *pp; pp = &(*pp)->next) {
        struct coll_part_gauges *g = *pp;
        if (g->partition == partition && strcmp(g->topic, topic) == 0) {
            *pp = g->next;
            part_gauges_free(srv, g);
            return;
        }
    }
}

static void track_one(struct coll_plog *pl, void *arg)
{
    coll_server_track_partition(arg, pl->topic, pl->partition);
}

void coll_server_refresh(struct coll_server *srv)
{
    coll_storage_foreach(srv->st, track_one, srv);
}

/* ---- topics ----------------------------------------------------------------------------- */

struct count_ctx {
    const char *topic;
    int32_t max;
};

static void count_one(struct coll_plog *pl, void *arg)
{
    struct count_ctx *cc = arg;
    if (strcmp(pl->topic, cc->topic) == 0 && pl->partition + 1 > cc->max)
        cc->max = pl->partition + 1;
}

int32_t coll_server_partitions(struct coll_server *srv, const char *topic)
{
    struct count_ctx cc = {topic, 0};
    coll_storage_foreach(srv->st, count_one, &cc);
    /* Offline partitions are not iterated: probe a little past the highest open one. */
    for (int32_t p = cc.max; p < cc.max + 64; p++)
        if (coll_storage_offline(srv->st, topic, p))
            cc.max = p + 1;
    if (cc.max == 0 && coll_storage_offline(srv->st, topic, 0))
        cc.max = 1;
    return cc.max;
}

void coll_server_set_topic_store(struct coll_server *srv, struct coll_topic_store *store)
{
    srv->topic_store = store;
}

int16_t coll_server_create_topic(struct coll_server *srv, const char *topic, size_t len, int32_t n,
                                 struct sl_err *msg)
{
    if (coll_topic_name_check(topic, len, msg) != 0)
        return KAFKA_E_INVALID_TOPIC;
    if (n <= 0)
        n = (int32_t)srv->conf->default_partitions;
    if (n > 10000) {
        sl_err_set(msg, SL_ECONFIG, "at most 10000 partitions");
        return KAFKA_E_INVALID_PARTITIONS;
    }
    if (coll_server_partitions(srv, topic) > 0) {
        sl_err_set(msg, -EEXIST, "topic '%s' already exists", topic);
        return KAFKA_E_TOPIC_ALREADY_EXISTS;
    }
    for (int32_t p = 0; p < n; p++) {
        struct coll_plog *pl = NULL;
        struct sl_err err = {{0}};
        int rc = coll_storage_create(srv->st, topic, p, NULL, &pl, &err);
        if (rc != 0 && rc != -EEXIST) {
            SL_ERR(SRV_WHO, "cannot create %s-%d: %s", topic, p, err.msg);
            sl_err_set(msg, rc, "%s", err.msg);
            return rc == -EINVAL      ? KAFKA_E_INVALID_TOPIC
                   : rc == SL_ECONFIG ? KAFKA_E_INVALID_CONFIG /* settings that do not fit */
                                      : KAFKA_E_KAFKA_STORAGE_ERROR;
        }
        coll_server_track_partition(srv, topic, p);
    }
    SL_NOTICE(SRV_WHO, "created topic %s with %d partition%s", topic, n, n == 1 ? "" : "s");
    return KAFKA_E_NONE;
}

/* ---- listeners -------------------------------------------------------------------------- */

static void srv_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct coll_listener *l = sl_container_of(w, struct coll_listener, io);
    struct coll_server *srv = l->srv;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                SL_WARN(SRV_WHO, "accept: %m");
            return;
        }
        char host[INET6_ADDRSTRLEN] = "?", peer[INET6_ADDRSTRLEN + 16];
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
            snprintf(peer, sizeof(peer), "%s:%d", host, port);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
            snprintf(peer, sizeof(peer), "[%s]:%d", host, port);
        }
        if (srv->nconns >= (size_t)srv->conf->max_connections) {
            sl_metric_inc(srv->m_refused);
            SL_WARN(SRV_WHO, "refusing %s: max_connections (%lld) reached", peer,
                    (long long)srv->conf->max_connections);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        sl_metric_inc(srv->m_accepted);
        if (coll_conn_new(srv, fd, peer) != 0)
            SL_WARN(SRV_WHO, "out of memory accepting %s", peer);
    }
}

static int listener_open(struct coll_listener *l, const struct sl_conf_hostport *hp,
                         struct sl_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", hp->port);
    const char *host = hp->host && hp->host[0] ? hp->host : NULL;
    int grc = getaddrinfo(host, port, &hints, &ai);
    if (grc != 0)
        return sl_err_set(err, -EINVAL, "listener %s:%s: %s", host ? host : "*", port,
                          gai_strerror(grc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        rc = -errno;
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    l->port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                      : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    l->fd = fd;
    freeaddrinfo(ai);
    return 0;
fail:
    sl_err_set(err, rc, "listener %s:%s: %s", host ? host : "*", port, sl_strerror(rc));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

/* The first non-loopback IPv4 address, else 127.0.0.1. */
static void default_host(char *buf, size_t size)
{
    snprintf(buf, size, "127.0.0.1");
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, (socklen_t)size);
        break;
    }
    freeifaddrs(ifa);
}

static void srv_on_stop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct coll_server *srv = sl_container_of(w, struct coll_server, stop_timer);
    SL_WARN(SRV_WHO, "shutdown_timeout reached; closing %zu connection(s)", srv->nconns);
    while (srv->conns)
        coll_conn_close(srv->conns, "shutting down");
}

static void srv_on_stop_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct coll_server *srv = sl_container_of(w, struct coll_server, stop_idle);
    ev_idle_stop(loop, w);
    ev_timer_stop(loop, &srv->stop_timer);
    void (*done)(void *) = srv->stop_done;
    srv->stop_done = NULL;
    if (done)
        done(srv->stop_arg);
}

int coll_server_new(struct ev_loop *loop, const struct coll_server_conf *conf,
                    struct coll_storage *st, struct sl_metrics *metrics, struct coll_server **out,
                    struct sl_err *err)
{
    int rc = -ENOMEM;
    struct coll_server *srv = sl_calloc(1, sizeof(*srv));
    if (!srv)
        return sl_err_set(err, -ENOMEM, "out of memory");
    srv->loop = loop;
    srv->conf = conf;
    srv->st = st;
    srv->metrics = metrics;
    ev_timer_init(&srv->stop_timer, srv_on_stop_timer, 0., 0.);
    ev_idle_init(&srv->stop_idle, srv_on_stop_idle);
    /* Producer ids must not repeat across restarts: start from the clock. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (coll_pstate_init(&srv->producers, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) != 0) {
        sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    /* Session ids are random: seeded from the clock too. */
    if (coll_fsess_cache_init(&srv->fsess, (size_t)SL_MAX(conf->fetch_session_slots, 0),
                              conf->fetch_session_eviction_ms,
                              (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec) != 0) {
        sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    rc = coll_server_groups_init(srv, coll_storage_dir(st), err);
    if (rc != 0)
        goto fail;
    /* A client vanishing mid-write must be an EPIPE, not a signal (sendfile has no flag). */
    signal(SIGPIPE, SIG_IGN);

    srv->ls = sl_calloc(conf->listeners.len ? conf->listeners.len : 1, sizeof(*srv->ls));
    if (!srv->ls) {
        sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < conf->listeners.len; i++) {
        const struct sl_conf_hostport *hp = &conf->listeners.items[i];
        struct coll_listener *l = &srv->ls[srv->nls];
        struct sl_err lerr = {{0}};
        rc = listener_open(l, hp, &lerr);
        if (rc != 0) {
            bool v6_any = hp->host && strcmp(hp->host, "::") == 0;
            if (v6_any && (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL)) {
                SL_WARN(SRV_WHO, "%s; skipped (no IPv6 here)", lerr.msg);
                continue;
            }
            sl_err_set(err, rc, "%s", lerr.msg);
            goto fail;
        }
        l->srv = srv;
        ev_io_init(&l->io, srv_on_accept, l->fd, EV_READ);
        srv->nls++;
    }
    if (srv->nls == 0 && conf->listeners.len > 0) {
        rc = sl_err_set(err, -EADDRNOTAVAIL, "no listener could be bound");
        goto fail;
    }
    const char *h0 = conf->listeners.len ? conf->listeners.items[0].host : NULL;
    if (conf->advertised.host && conf->advertised.host[0])
        snprintf(srv->adv_host, sizeof(srv->adv_host), "%s", conf->advertised.host);
    else if (h0 && h0[0] && strcmp(h0, "0.0.0.0") != 0 && strcmp(h0, "::") != 0)
        snprintf(srv->adv_host, sizeof(srv->adv_host), "%s", h0); /* bound to one address */
    else
        default_host(srv->adv_host, sizeof(srv->adv_host));
    srv->adv_port = conf->advertised.port ? conf->advertised.port
                    : srv->nls            ? srv->ls[0].port
                                          : 9092;

    if (metrics) {
        sl_metrics_add_gauge(metrics, "sluice_kafka_connections", "open Kafka client connections",
                             NULL, 0, &srv->m_conns, NULL);
        sl_metrics_add_counter(metrics, "sluice_kafka_connections_accepted_total",
                               "Kafka client connections accepted", NULL, 0, &srv->m_accepted,
                               NULL);
        sl_metrics_add_counter(metrics, "sluice_kafka_connections_refused_total",
                               "connections closed at once because of max_connections", NULL, 0,
                               &srv->m_refused, NULL);
        sl_metrics_add_counter(metrics, "sluice_kafka_bad_requests_total",
                               "malformed or unsupported requests (the connection was closed)",
                               NULL, 0, &srv->m_bad_requests, NULL);
        for (int k = 0; k < COLL_API_KEYS; k++) {
            if (!coll_apis[k].fn)
                continue;
            struct sl_metric_label l = {"api", coll_apis[k].name};
            sl_metrics_add_histogram(metrics, "sluice_kafka_request_duration_seconds",
                                     "time from a request's arrival until its response "
                                     "was sent",
                                     &l, 1, latency_bounds, SL_ARRAY_LEN(latency_bounds),
                                     &srv->m_latency[k], NULL);
        }
        coll_server_refresh(srv);
    }
    *out = srv;
    return 0;
fail:
    coll_server_free(srv);
    return rc;
}

void coll_server_start(struct coll_server *srv)
{
    srv->started = true;
    for (size_t i = 0; i < srv->nls; i++) {
        ev_io_start(srv->loop, &srv->ls[i].io);
        SL_NOTICE(SRV_WHO, "listening on port %d; advertising %s:%d", srv->ls[i].port,
                  srv->adv_host, srv->adv_port);
    }
}

void coll_server_stop(struct coll_server *srv, void (*done)(void *arg), void *arg)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->stop_done = done;
    srv->stop_arg = arg;
    for (size_t i = 0; i < srv->nls; i++) {
        ev_io_stop(srv->loop, &srv->ls[i].io);
        close(srv->ls[i].fd);
        srv->ls[i].fd = -1;
    }
    srv->nls = 0;
    coll_fetch_flush_all(srv);
    coll_groups_unload(&srv->groups);
    /* Drain each connection; a drained one closes and unlinks itself, so walk a snapshot. */
    size_t n = srv->nconns;
    struct coll_conn **snap = n ? sl_calloc(n, sizeof(*snap)) : NULL;
    if (n && !snap) {
        while (srv->conns)
            coll_conn_close(srv->conns, "shutting down");
    } else {
        coll_conn_snapshot(srv, snap, n);
        for (size_t i = 0; i < n; i++)
            coll_conn_drain(snap[i]);
        sl_free(snap);
    }
    if (srv->nconns == 0) {
        if (done)
            ev_idle_start(srv->loop, &srv->stop_idle);
        return;
    }
    SL_NOTICE(SRV_WHO, "stopping: waiting for %zu connection(s) to finish", srv->nconns);
    ev_timer_set(&srv->stop_timer, (double)srv->conf->shutdown_timeout_ms / 1000.0, 0.);
    ev_timer_start(srv->loop, &srv->stop_timer);
}

void coll_server_free(struct coll_server *srv)
{
    if (!srv)
        return;
    coll_fetch_flush_all(srv);
    while (srv->conns)
        coll_conn_close(srv->conns, NULL);
    for (size_t i = 0; i < srv->nls; i++) {
        ev_io_stop(srv->loop, &srv->ls[i].io);
        if (srv->ls[i].fd >= 0)
            close(srv->ls[i].fd);
    }
    sl_free(srv->ls);
    coll_server_groups_fini(srv);
    ev_timer_stop(srv->loop, &srv->stop_timer);
    ev_idle_stop(srv->loop, &srv->stop_idle);
    while (srv->topics) {
        struct coll_topic_stats *t = srv->topics;
        srv->topics = t->next;
        sl_metrics_remove(srv->metrics, t->bytes_in);
        sl_metrics_remove(srv->metrics, t->records_in);
        sl_metrics_remove(srv->metrics, t->bytes_out);
        sl_metrics_remove(srv->metrics, t->records_out);
        sl_free(t->topic);
        sl_free(t);
    }
    while (srv->part_gauges) {
        struct coll_part_gauges *g = srv->part_gauges;
        srv->part_gauges = g->next;
        part_gauges_free(srv, g);
    }
    if (srv->metrics) {
        sl_metrics_remove(srv->metrics, srv->m_conns);
        sl_metrics_remove(srv->metrics, srv->m_accepted);
        sl_metrics_remove(srv->metrics, srv->m_refused);
        sl_metrics_remove(srv->metrics, srv->m_bad_requests);
        for (int k = 0; k < COLL_API_KEYS; k++)
            sl_metrics_remove(srv->metrics, srv->m_latency[k]);
    }
    coll_pstate_fini(&srv->producers);
    coll_fsess_cache_fini(&srv->fsess);
    sl_free(srv);
}

int coll_server_port(const struct coll_server *srv, size_t i)
{
    return i < srv->nls ? srv->ls[i].port : -1;
}

const char *coll_server_advertised_host(const struct coll_server *srv)
{
    return srv->adv_host;
}

int coll_server_advertised_port(const struct coll_server *srv)
{
    return srv->adv_port;
}

size_t coll_server_connections(const struct coll_server *srv)
{
    return srv->nconns;
}
