/* The command line's Kafka client core: blocking request/response over non-blocking sockets
 * bounded by poll() deadlines, ApiVersions on connect, bootstrap, and Metadata. */
#include "collector/cli/kclient.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Every request frame (request header v1; no flexible versions are ever sent):
 *
 *   +-------+---------+-------------+----------------+-----------------+-----------------+
 *   | size  | api_key | api_version | correlation_id | client_id       | body (per API)  |
 *   | int32 | int16   | int16       | int32          | NULLABLE_STRING |                 |
 *   +-------+---------+-------------+----------------+-----------------+-----------------+
 *           |<------------------------------- size bytes ------------------------------>|
 *
 * and every response (header v0): size int32, correlation_id int32, body.
 *
 * A connection carries one request at a time: connect, ApiVersions v0 (every broker answers
 * v0; the answer's ranges pick each later request's version), then request, answer, request.
 *
 *   ApiVersionsResponse v0: error_code int16, api_keys ARRAY of [api_key, min, max int16]
 *
 *   MetadataRequest v1-4:   topics nullable ARRAY of STRING (null: all),
 *                           allow_auto_topic_creation BOOLEAN (v4+)
 *   MetadataResponse v1-4:  throttle_time_ms int32 (v3+),
 *                           brokers ARRAY of [node_id int32, host STRING, port int32,
 *                                             rack NULLABLE_STRING],
 *                           cluster_id NULLABLE_STRING (v2+), controller_id int32,
 *                           topics ARRAY of [error_code int16, name STRING, is_internal BOOLEAN,
 *                             partitions ARRAY of [error_code int16, partition_index int32,
 *                               leader_id int32, replica_nodes ARRAY of int32,
 *                               isr_nodes ARRAY of int32]]
 */

#define MAX_BROKERS    100000
#define MAX_TOPICS     1000000
#define MAX_PARTITIONS 1000000

static const char *const api_names[KC_API_KEYS] = {
    [KC_API_PRODUCE] = "Produce",
    [KC_API_FETCH] = "Fetch",
    [KC_API_LIST_OFFSETS] = "ListOffsets",
    [KC_API_METADATA] = "Metadata",
    [KC_API_OFFSET_COMMIT] = "OffsetCommit",
    [KC_API_OFFSET_FETCH] = "OffsetFetch",
    [KC_API_FIND_COORDINATOR] = "FindCoordinator",
    [KC_API_JOIN_GROUP] = "JoinGroup",
    [KC_API_HEARTBEAT] = "Heartbeat",
    [KC_API_LEAVE_GROUP] = "LeaveGroup",
    [KC_API_SYNC_GROUP] = "SyncGroup",
    [KC_API_DESCRIBE_GROUPS] = "DescribeGroups",
    [KC_API_LIST_GROUPS] = "ListGroups",
    [KC_API_API_VERSIONS] = "ApiVersions",
    [KC_API_CREATE_TOPICS] = "CreateTopics",
    [KC_API_DELETE_TOPICS] = "DeleteTopics",
    [KC_API_INIT_PRODUCER_ID] = "InitProducerId",
    [KC_API_DESCRIBE_CONFIGS] = "DescribeConfigs",
    [KC_API_DESCRIBE_LOG_DIRS] = "DescribeLogDirs",
};

const char *kc_api_name(int16_t api)
{
    if (api >= 0 && api < KC_API_KEYS && api_names[api])
        return api_names[api];
    return "?";
}

const char *kc_err_name(int16_t code)
{
    switch (code) {
    case KAFKA_E_UNKNOWN_SERVER_ERROR:
        return "UNKNOWN_SERVER_ERROR";
    case KAFKA_E_NONE:
        return "NONE";
    case KAFKA_E_OFFSET_OUT_OF_RANGE:
        return "OFFSET_OUT_OF_RANGE";
    case KAFKA_E_CORRUPT_MESSAGE:
        return "CORRUPT_MESSAGE";
    case KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION:
        return "UNKNOWN_TOPIC_OR_PARTITION";
    case KAFKA_E_LEADER_NOT_AVAILABLE:
        return "LEADER_NOT_AVAILABLE";
    case KAFKA_E_NOT_LEADER_FOR_PARTITION:
        return "NOT_LEADER_OR_FOLLOWER";
    case KAFKA_E_REQUEST_TIMED_OUT:
        return "REQUEST_TIMED_OUT";
    case KAFKA_E_MESSAGE_TOO_LARGE:
        return "MESSAGE_TOO_LARGE";
    case KAFKA_E_OFFSET_METADATA_TOO_LARGE:
        return "OFFSET_METADATA_TOO_LARGE";
    case KAFKA_E_NETWORK_EXCEPTION:
        return "NETWORK_EXCEPTION";
    case KAFKA_E_COORDINATOR_LOAD_IN_PROGRESS:
        return "COORDINATOR_LOAD_IN_PROGRESS";
    case KAFKA_E_COORDINATOR_NOT_AVAILABLE:
        return "COORDINATOR_NOT_AVAILABLE";
    case KAFKA_E_NOT_COORDINATOR:
        return "NOT_COORDINATOR";
    case KAFKA_E_INVALID_TOPIC:
        return "INVALID_TOPIC_EXCEPTION";
    case KAFKA_E_RECORD_LIST_TOO_LARGE:
        return "RECORD_LIST_TOO_LARGE";
    case KAFKA_E_NOT_ENOUGH_REPLICAS:
        return "NOT_ENOUGH_REPLICAS";
    case KAFKA_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        return "NOT_ENOUGH_REPLICAS_AFTER_APPEND";
    case KAFKA_E_INVALID_REQUIRED_ACKS:
        return "INVALID_REQUIRED_ACKS";
    case KAFKA_E_ILLEGAL_GENERATION:
        return "ILLEGAL_GENERATION";
    case KAFKA_E_INCONSISTENT_GROUP_PROTOCOL:
        return "INCONSISTENT_GROUP_PROTOCOL";
    case KAFKA_E_INVALID_GROUP_ID:
        return "INVALID_GROUP_ID";
    case KAFKA_E_UNKNOWN_MEMBER_ID:
        return "UNKNOWN_MEMBER_ID";
    case KAFKA_E_INVALID_SESSION_TIMEOUT:
        return "INVALID_SESSION_TIMEOUT";
    case KAFKA_E_REBALANCE_IN_PROGRESS:
        return "REBALANCE_IN_PROGRESS";
    case KAFKA_E_INVALID_COMMIT_OFFSET_SIZE:
        return "INVALID_COMMIT_OFFSET_SIZE";
    case KAFKA_E_TOPIC_AUTHORIZATION_FAILED:
        return "TOPIC_AUTHORIZATION_FAILED";
    case KAFKA_E_GROUP_AUTHORIZATION_FAILED:
        return "GROUP_AUTHORIZATION_FAILED";
    case KAFKA_E_INVALID_TIMESTAMP:
        return "INVALID_TIMESTAMP";
    case KAFKA_E_UNSUPPORTED_VERSION:
        return "UNSUPPORTED_VERSION";
    case KAFKA_E_TOPIC_ALREADY_EXISTS:
        return "TOPIC_ALREADY_EXISTS";
    case KAFKA_E_INVALID_PARTITIONS:
        return "INVALID_PARTITIONS";
    case KAFKA_E_INVALID_REPLICATION_FACTOR:
        return "INVALID_REPLICATION_FACTOR";
    case KAFKA_E_INVALID_REQUEST:
        return "INVALID_REQUEST";
    case KAFKA_E_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return "UNSUPPORTED_FOR_MESSAGE_FORMAT";
    case KAFKA_E_POLICY_VIOLATION:
        return "POLICY_VIOLATION";
    case KAFKA_E_OUT_OF_ORDER_SEQUENCE_NUMBER:
        return "OUT_OF_ORDER_SEQUENCE_NUMBER";
    case KAFKA_E_INVALID_PRODUCER_EPOCH:
        return "INVALID_PRODUCER_EPOCH";
    case KAFKA_E_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        return "TRANSACTIONAL_ID_AUTHORIZATION_FAILED";
    case KAFKA_E_KAFKA_STORAGE_ERROR:
        return "KAFKA_STORAGE_ERROR";
    case KAFKA_E_UNKNOWN_PRODUCER_ID:
        return "UNKNOWN_PRODUCER_ID";
    case KAFKA_E_NON_EMPTY_GROUP:
        return "NON_EMPTY_GROUP";
    case KAFKA_E_GROUP_ID_NOT_FOUND:
        return "GROUP_ID_NOT_FOUND";
    case KAFKA_E_FENCED_LEADER_EPOCH:
        return "FENCED_LEADER_EPOCH";
    case KAFKA_E_UNKNOWN_LEADER_EPOCH:
        return "UNKNOWN_LEADER_EPOCH";
    case KAFKA_E_UNSUPPORTED_COMPRESSION_TYPE:
        return "UNSUPPORTED_COMPRESSION_TYPE";
    case KAFKA_E_MEMBER_ID_REQUIRED:
        return "MEMBER_ID_REQUIRED";
    case KAFKA_E_GROUP_MAX_SIZE_REACHED:
        return "GROUP_MAX_SIZE_REACHED";
    case KAFKA_E_FENCED_INSTANCE_ID:
        return "FENCED_INSTANCE_ID";
    case KAFKA_E_INVALID_RECORD:
        return "INVALID_RECORD";
    default:
        return "UNKNOWN";
    }
}

int kc_err_kafka(struct sl_err *err, int16_t code, const char *fmt, ...)
{
    if (err) {
        char head[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(head, sizeof(head), fmt, ap);
        va_end(ap);
        snprintf(err->msg, sizeof(err->msg), "%s: %s (%d)", head, kc_err_name(code), code);
    }
    switch (code) {
    case KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION:
    case KAFKA_E_GROUP_ID_NOT_FOUND:
        return KC_ENOTFOUND;
    case KAFKA_E_ILLEGAL_GENERATION:
    case KAFKA_E_UNKNOWN_MEMBER_ID:
    case KAFKA_E_REBALANCE_IN_PROGRESS:
    case KAFKA_E_NOT_COORDINATOR:
    case KAFKA_E_COORDINATOR_NOT_AVAILABLE:
    case KAFKA_E_COORDINATOR_LOAD_IN_PROGRESS:
        return KC_EREJOIN;
    default:
        return KC_EKAFKA;
    }
}

int64_t kc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- One connection ----------------------------------------------------------------------- */

static void conn_close(struct kc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_flight = false;
}

static void conn_free(struct kc_conn *c)
{
    if (!c)
        return;
    conn_close(c);
    sl_buf_fini(&c->tx);
    sl_buf_fini(&c->rx);
    sl_free(c);
}

/* Waits for fd to be ready for events until the deadline. Returns 0 or -ETIMEDOUT/-errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - kc_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)SL_MIN(left, 60000));
        if (n < 0 && errno == EINTR)
            return -EINTR; /* a signal (Ctrl-C) ends the wait: the caller decides */
        if (n < 0)
            return -errno;
        if (n > 0)
            return 0;
    }
}

/* Connects to one resolved address with a deadline. Returns the fd or -errno. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0)
            goto fail;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            rc = -soerr;
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:
    close(fd);
    return rc;
}

static int send_all(struct kc_conn *c, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
    return 0;
}

static int recv_all(struct kc_conn *c, uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (r == 0)
            return SL_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c->fd, POLLIN, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        return -errno;
    }
    return 0;
}

struct sl_buf *kc_conn_begin(struct kc_conn *c, int16_t api, int16_t version)
{
    SL_ASSERT(!c->in_flight);
    sl_buf_reset(&c->tx);
    c->api = api;
    c->version = version;
    c->corr++;
    sl_buf_hole(&c->tx, 4);                                /* size */
    sl_buf_put_i16(&c->tx, api);                           /* api_key */
    sl_buf_put_i16(&c->tx, version);                       /* api_version */
    sl_buf_put_i32(&c->tx, c->corr);                       /* correlation_id */
    sl_buf_put_string(&c->tx, SL_BYTES_STR(c->client_id)); /* client_id */
    return &c->tx;
}

int kc_conn_send(struct kc_conn *c, int64_t timeout_ms, struct sl_err *err)
{
    if (sl_buf_error(&c->tx))
        return sl_err_set(err, sl_buf_error(&c->tx), "%s request: %s", kc_api_name(c->api),
                          sl_strerror(sl_buf_error(&c->tx)));
    if (c->tx.len - 4 > INT32_MAX)
        return sl_err_set(err, SL_ETOOBIG, "%s request too large", kc_api_name(c->api));
    if (c->fd < 0)
        return sl_err_set(err, SL_ECLOSED, "%s:%u: connection closed", c->host, c->port);
    sl_buf_patch_i32(&c->tx, 0, (int32_t)(c->tx.len - 4));
    int rc = send_all(c, c->tx.data, c->tx.len, kc_now_ms() + timeout_ms);
    if (rc != 0) {
        conn_close(c);
        return sl_err_set(err, rc == -EINTR ? -EINTR : KC_EUNREACH, "%s:%u: sending %s: %s",
                          c->host, c->port, kc_api_name(c->api), sl_strerror(rc));
    }
    c->in_flight = true;
    SL_DEBUG("kafka", "%s:%u <- %s v%d (correlation id %d, %zu bytes)", c->host, c->port,
             kc_api_name(c->api), c->version, c->corr, c->tx.len);
    return 0;
}

int kc_conn_recv(struct kc_conn *c, int64_t timeout_ms, struct sl_reader *r, struct sl_err *err)
{
    SL_ASSERT(c->in_flight);
    int64_t deadline = kc_now_ms() + timeout_ms;
    uint8_t head[4];
    const char *what = kc_api_name(c->api);
    int rc = recv_all(c, head, 4, deadline);
    if (rc != 0)
        goto net;
    uint32_t size = sl_be32(head);
    if (size < 4 || size > KC_FRAME_MAX) {
        conn_close(c);
        return sl_err_set(err, SL_ETOOBIG, "%s:%u: %s answer of %u bytes (limit %u)", c->host,
                          c->port, what, size, KC_FRAME_MAX);
    }
    sl_buf_reset(&c->rx);
    if ((rc = sl_buf_reserve(&c->rx, size)) != 0) {
        conn_close(c);
        return sl_err_set(err, rc, "%s answer of %u bytes: %s", what, size, sl_strerror(rc));
    }
    if ((rc = recv_all(c, c->rx.data, size, deadline)) != 0)
        goto net;
    c->rx.len = size;
    c->in_flight = false;
    int32_t corr = (int32_t)sl_be32(c->rx.data);
    if (corr != c->corr) {
        conn_close(c);
        return sl_err_set(err, SL_EPARSE, "%s:%u: %s answer has correlation id %d, expected %d",
                          c->host, c->port, what, corr, c->corr);
    }
    sl_reader_init(r, c->rx.data + 4, size - 4);
    SL_DEBUG("kafka", "%s:%u -> %s answer (correlation id %d, %u bytes)", c->host, c->port, what,
             corr, size);
    return 0;
net:
    conn_close(c);
    if (rc == -EINTR)
        return sl_err_set(err, -EINTR, "interrupted");
    if (rc == -ETIMEDOUT)
        return sl_err_set(err, KC_EUNREACH, "%s:%u: no answer to %s within %lld ms", c->host,
                          c->port, what, (long long)timeout_ms);
    return sl_err_set(err, KC_EUNREACH, "%s:%u: reading the answer to %s: %s", c->host, c->port,
                      what, rc == SL_ECLOSED ? "connection closed" : sl_strerror(rc));
}

int kc_conn_call(struct kc_conn *c, int64_t timeout_ms, struct sl_reader *r, struct sl_err *err)
{
    int rc = kc_conn_send(c, timeout_ms, err);
    if (rc == 0)
        rc = kc_conn_recv(c, timeout_ms, r, err);
    return rc;
}

int kc_conn_check(const struct kc_conn *c, const struct sl_reader *r, struct sl_err *err)
{
    char ctx[64];
    snprintf(ctx, sizeof(ctx), "%s v%d answer", kc_api_name(c->api), c->version);
    if (r->err)
        return sl_reader_describe(r, err, ctx);
    if (r->pos != r->len)
        return sl_err_set(err, SL_EPARSE, "%s: %zu unexpected bytes after the end", ctx,
                          r->len - r->pos);
    return 0;
}

int16_t kc_conn_version(const struct kc_conn *c, int16_t api, int16_t ours_min, int16_t ours_max,
                        struct sl_err *err)
{
    int16_t lo = api >= 0 && api < KC_API_KEYS ? c->vmin[api] : -1;
    int16_t hi = api >= 0 && api < KC_API_KEYS ? c->vmax[api] : -1;
    if (hi < 0) {
        sl_err_set(err, SL_EUNSUP, "%s:%u does not support %s (API key %d)", c->host, c->port,
                   kc_api_name(api), api);
        return -1;
    }
    int16_t v = SL_MIN(hi, ours_max);
    if (v < ours_min || v < lo) {
        sl_err_set(err, SL_EUNSUP, "%s:%u speaks %s v%d-%d, this client v%d-%d", c->host, c->port,
                   kc_api_name(api), lo, hi, ours_min, ours_max);
        return -1;
    }
    return v;
}

/* Asks the broker which versions it speaks (v0: every broker answers it). */
static int conn_api_versions(struct kc_conn *c, int64_t timeout_ms, struct sl_err *err)
{
    kc_conn_begin(c, KC_API_API_VERSIONS, 0);
    struct sl_reader r;
    int rc = kc_conn_call(c, timeout_ms, &r, err);
    if (rc != 0)
        return rc;
    for (int i = 0; i < KC_API_KEYS; i++)
        c->vmin[i] = c->vmax[i] = -1;
    int16_t code = sl_reader_i16(&r);
    int32_t n = sl_reader_array(&r, 10000, 6);
    for (int32_t i = 0; i < n && !r.err; i++) {
        int16_t key = sl_reader_i16(&r);
        int16_t lo = sl_reader_i16(&r);
        int16_t hi = sl_reader_i16(&r);
        if (key >= 0 && key < KC_API_KEYS && lo >= 0 && hi >= lo) {
            c->vmin[key] = lo;
            c->vmax[key] = hi;
        }
    }
    if ((rc = kc_conn_check(c, &r, err)) != 0) {
        conn_close(c);
        return rc;
    }
    if (code != KAFKA_E_NONE) {
        conn_close(c);
        return kc_err_kafka(err, code, "%s:%u: ApiVersions", c->host, c->port);
    }
    return 0;
}

/* Opens c (host and port set) with every address the name resolves to, then ApiVersions. */
static int conn_open(struct kc_conn *c, int64_t timeout_ms, struct sl_err *err)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", c->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(c->host, port, &hints, &res);
    if (g != 0)
        return sl_err_set(err, KC_EUNREACH, "%s:%u: %s", c->host, c->port, gai_strerror(g));
    int64_t deadline = kc_now_ms() + timeout_ms;
    int rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_addr(ai, deadline);
        if (rc >= 0)
            break;
    }
    freeaddrinfo(res);
    if (rc < 0)
        return sl_err_set(err, KC_EUNREACH, "%s:%u: %s", c->host, c->port, sl_strerror(rc));
    c->fd = rc;
    c->in_flight = false;
    return conn_api_versions(c, timeout_ms, err);
}

/* ---- The client --------------------------------------------------------------------------- */

void kc_client_init(struct kc_client *cl, const struct sl_conf_hostports *bootstrap,
                    const char *client_id, int64_t timeout_ms)
{
    memset(cl, 0, sizeof(*cl));
    cl->bootstrap = bootstrap;
    cl->client_id = client_id;
    cl->timeout_ms = timeout_ms;
}

static void brokers_free(struct kc_broker *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sl_free(b[i].host);
    sl_free(b);
}

void kc_client_fini(struct kc_client *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->nconns; i++)
        conn_free(cl->conns[i]);
    SL_FREE(cl->conns);
    cl->nconns = 0;
    brokers_free(cl->brokers, cl->nbrokers);
    cl->brokers = NULL;
    cl->nbrokers = 0;
}

static struct kc_conn *find_conn(struct kc_client *cl, int32_t node_id)
{
    for (size_t i = 0; i < cl->nconns; i++)
        if (cl->conns[i]->node_id == node_id)
            return cl->conns[i];
    return NULL;
}

/* Returns the slot for node_id, opened to host:port (a new one is added). */
static int open_node(struct kc_client *cl, int32_t node_id, const char *host, uint16_t port,
                     struct kc_conn **out, struct sl_err *err)
{
    struct kc_conn *c = find_conn(cl, node_id);
    if (c && c->fd >= 0 && (strcmp(c->host, host) != 0 || c->port != port))
        conn_close(c); /* the node moved */
    if (!c) {
        struct kc_conn **n = sl_realloc(cl->conns, (cl->nconns + 1) * sizeof(*n));
        if (!n)
            return sl_err_set(err, -ENOMEM, "out of memory");
        cl->conns = n;
        if (!(c = sl_calloc(1, sizeof(*c))))
            return sl_err_set(err, -ENOMEM, "out of memory");
        c->fd = -1;
        c->node_id = node_id;
        c->client_id = cl->client_id;
        sl_buf_init(&c->tx);
        sl_buf_init(&c->rx);
        cl->conns[cl->nconns++] = c;
    }
    if (c->fd < 0) {
        snprintf(c->host, sizeof(c->host), "%s", host);
        c->port = port;
        int rc = conn_open(c, cl->timeout_ms, err);
        if (rc != 0)
            return rc;
    }
    *out = c;
    return 0;
}

int kc_client_any(struct kc_client *cl, struct kc_conn **out, struct sl_err *err)
{
    for (size_t i = 0; i < cl->nconns; i++) {
        if (cl->conns[i]->fd >= 0 && !cl->conns[i]->in_flight &&
            cl->conns[i]->node_id < KC_COORD_NODE(0)) {
            *out = cl->conns[i];
            return 0;
        }
    }
    char tried[sizeof(err->msg)] = "";
    size_t tl = 0;
    struct sl_err e1 = {{0}};
    for (size_t i = 0; i < cl->nbrokers; i++) {
        if (open_node(cl, cl->brokers[i].node_id, cl->brokers[i].host, cl->brokers[i].port, out,
                      &e1) == 0)
            return 0;
        tl += (size_t)snprintf(tried + tl, sizeof(tried) - SL_MIN(tl, sizeof(tried)), "%s%s",
                               tl ? "; " : "", e1.msg);
        tl = SL_MIN(tl, sizeof(tried));
    }
    size_t nb = cl->bootstrap ? cl->bootstrap->len : 0;
    for (size_t i = 0; i < nb; i++) {
        const struct sl_conf_hostport *hp = &cl->bootstrap->items[i];
        bool known = false; /* already tried as a broker metadata named */
        for (size_t k = 0; k < cl->nbrokers && !known; k++)
            known = cl->brokers[k].port == hp->port && strcmp(cl->brokers[k].host, hp->host) == 0;
        if (known)
            continue;
        /* Bootstrap connections get negative node ids of their own. */
        if (open_node(cl, -1 - (int32_t)i, hp->host, hp->port, out, &e1) == 0)
            return 0;
        tl += (size_t)snprintf(tried + tl, sizeof(tried) - SL_MIN(tl, sizeof(tried)), "%s%s",
                               tl ? "; " : "", e1.msg);
        tl = SL_MIN(tl, sizeof(tried));
    }
    if (nb == 0 && cl->nbrokers == 0)
        return sl_err_set(err, KC_EUNREACH, "no bootstrap address");
    return sl_err_set(err, KC_EUNREACH, "cannot reach the collector: %s", tried);
}

static const struct kc_broker *find_broker(const struct kc_client *cl, int32_t node_id)
{
    for (size_t i = 0; i < cl->nbrokers; i++)
        if (cl->brokers[i].node_id == node_id)
            return &cl->brokers[i];
    return NULL;
}

int kc_client_node(struct kc_client *cl, int32_t node_id, struct kc_conn **out, struct sl_err *err)
{
    const struct kc_broker *b = find_broker(cl, node_id);
    if (!b) {
        struct kc_meta m = {0};
        int rc = kc_client_metadata(cl, NULL, 0, false, &m, err);
        kc_meta_fini(&m);
        if (rc != 0)
            return rc;
        if (!(b = find_broker(cl, node_id)))
            return sl_err_set(err, KC_ENOTFOUND, "no broker with node id %d", node_id);
    }
    return open_node(cl, node_id, b->host, b->port, out, err);
}

int kc_client_node_at(struct kc_client *cl, int32_t node_id, const char *host, uint16_t port,
                      struct kc_conn **out, struct sl_err *err)
{
    return open_node(cl, node_id, host, port, out, err);
}

void kc_client_drop(struct kc_client *cl, int32_t node_id)
{
    struct kc_conn *c = find_conn(cl, node_id);
    if (c)
        conn_close(c);
}

/* ---- Metadata ----------------------------------------------------------------------------- */

void kc_meta_req(struct sl_buf *b, int16_t version, const char *const *topics, size_t n, bool all)
{
    if (all) {
        sl_buf_put_i32(b, -1); /* topics: null, every topic */
    } else {
        sl_buf_put_i32(b, (int32_t)n); /* topics */
        for (size_t i = 0; i < n; i++)
            sl_buf_put_string(b, SL_BYTES_STR(topics[i])); /* name */
    }
    if (version >= 4)
        sl_buf_put_i8(b, 0); /* allow_auto_topic_creation */
}

void kc_meta_fini(struct kc_meta *m)
{
    if (!m)
        return;
    brokers_free(m->brokers, m->nbrokers);
    for (size_t i = 0; i < m->ntopics; i++) {
        sl_free(m->topics[i].name);
        sl_free(m->topics[i].parts);
    }
    sl_free(m->topics);
    memset(m, 0, sizeof(*m));
}

static char *dup_bytes(struct sl_bytes s)
{
    return sl_strndup(s.p ? (const char *)s.p : "", s.len);
}

static int cmp_part(const void *a, const void *b)
{
    const struct kc_meta_part *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

int kc_meta_parse(struct sl_reader *r, int16_t version, struct kc_meta *m, struct sl_err *err)
{
    if (version >= 3)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t nb = sl_reader_array(r, MAX_BROKERS, 14);
    if (nb > 0 && !(m->brokers = sl_calloc((size_t)nb, sizeof(*m->brokers))))
        return sl_err_set(err, -ENOMEM, "out of memory");
    for (int32_t i = 0; i < nb && !r->err; i++) {
        struct kc_broker *b = &m->brokers[i];
        b->node_id = sl_reader_i32(r);              /* node_id */
        struct sl_bytes host = sl_reader_string(r); /* host */
        int32_t port = sl_reader_i32(r);            /* port */
        sl_reader_string(r);                        /* rack */
        if (r->err)
            break;
        if (port < 1 || port > 65535 || !host.p || host.len == 0 || host.len > SL_CONF_HOST_MAX)
            return sl_err_set(err, SL_EPARSE,
                              "Metadata answer: broker %d at '%.*s:%d' is not "
                              "an address",
                              b->node_id, (int)SL_MIN(host.len, 64),
                              host.p ? (const char *)host.p : "", port);
        b->port = (uint16_t)port;
        if (!(b->host = dup_bytes(host)))
            return sl_err_set(err, -ENOMEM, "out of memory");
        m->nbrokers++;
    }
    if (version >= 2)
        sl_reader_string(r); /* cluster_id */
    m->controller_id = sl_reader_i32(r);
    int32_t nt = sl_reader_array(r, MAX_TOPICS, 9);
    if (nt > 0 && !(m->topics = sl_calloc((size_t)nt, sizeof(*m->topics))))
        return sl_err_set(err, -ENOMEM, "out of memory");
    for (int32_t i = 0; i < nt && !r->err; i++) {
        struct kc_meta_topic *t = &m->topics[i];
        t->error_code = sl_reader_i16(r);           /* error_code */
        struct sl_bytes name = sl_reader_string(r); /* name */
        t->internal = sl_reader_i8(r) != 0;         /* is_internal */
        int32_t np = sl_reader_array(r, MAX_PARTITIONS, 18);
        if (r->err)
            break;
        if (!(t->name = dup_bytes(name)))
            return sl_err_set(err, -ENOMEM, "out of memory");
        m->ntopics++;
        if (np > 0 && !(t->parts = sl_calloc((size_t)np, sizeof(*t->parts))))
            return sl_err_set(err, -ENOMEM, "out of memory");
        for (int32_t p = 0; p < np && !r->err; p++) {
            struct kc_meta_part *mp = &t->parts[p];
            mp->error_code = sl_reader_i16(r);               /* error_code */
            mp->index = sl_reader_i32(r);                    /* partition_index */
            mp->leader = sl_reader_i32(r);                   /* leader_id */
            int32_t nr = sl_reader_array(r, MAX_BROKERS, 4); /* replica_nodes */
            sl_reader_skip(r, (size_t)SL_MAX(nr, 0) * 4);
            int32_t ni = sl_reader_array(r, MAX_BROKERS, 4); /* isr_nodes */
            sl_reader_skip(r, (size_t)SL_MAX(ni, 0) * 4);
            if (!r->err)
                t->nparts = p + 1;
        }
        if (t->nparts > 1)
            qsort(t->parts, (size_t)t->nparts, sizeof(*t->parts), cmp_part);
    }
    if (r->err)
        return sl_reader_describe(r, err, "Metadata answer");
    return 0;
}

const struct kc_meta_topic *kc_meta_find(const struct kc_meta *m, const char *name)
{
    for (size_t i = 0; i < m->ntopics; i++)
        if (strcmp(m->topics[i].name, name) == 0)
            return &m->topics[i];
    return NULL;
}

/* Replaces the client's broker list with a copy of m's. */
static int remember_brokers(struct kc_client *cl, const struct kc_meta *m)
{
    if (m->nbrokers == 0)
        return 0;
    struct kc_broker *b = sl_calloc(m->nbrokers, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->nbrokers; i++) {
        b[i] = m->brokers[i];
        if (!(b[i].host = sl_strdup(m->brokers[i].host))) {
            brokers_free(b, i);
            return -ENOMEM;
        }
    }
    brokers_free(cl->brokers, cl->nbrokers);
    cl->brokers = b;
    cl->nbrokers = m->nbrokers;
    return 0;
}

int kc_client_metadata(struct kc_client *cl, const char *const *topics, size_t n, bool all,
                       struct kc_meta *m, struct sl_err *err)
{
    struct kc_conn *c;
    int rc = kc_client_any(cl, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_METADATA, 1, 4, err);
    if (v < 0)
        return SL_EUNSUP;
    kc_meta_req(kc_conn_begin(c, KC_API_METADATA, v), v, topics, n, all);
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
        return rc;
    if ((rc = kc_meta_parse(&r, v, m, err)) != 0 || (rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    if (remember_brokers(cl, m) != 0)
        return sl_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int kc_client_topic(struct kc_client *cl, const char *topic, struct kc_meta *m,
                    const struct kc_meta_topic **out, struct sl_err *err)
{
    int rc = kc_client_metadata(cl, &topic, 1, false, m, err);
    if (rc != 0)
        return rc;
    const struct kc_meta_topic *t = kc_meta_find(m, topic);
    if (!t || t->error_code == KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION ||
        (t->error_code == KAFKA_E_NONE && t->nparts == 0))
        return sl_err_set(err, KC_ENOTFOUND, "topic '%s' does not exist", topic);
    if (t->error_code != KAFKA_E_NONE)
        return kc_err_kafka(err, t->error_code, "topic '%s'", topic);
    *out = t;
    return 0;
}
