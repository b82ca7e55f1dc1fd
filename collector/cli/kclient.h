/* The command line's Kafka client core: connections with timeouts, request framing, version
 * negotiation (ApiVersions), bootstrap, and Metadata. The per-API files (kc_*.c) build on it. */
#ifndef SL_CLI_KCLIENT_H
#define SL_CLI_KCLIENT_H

#include "common/base.h"
#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/kafka_err.h"
#include "common/reader.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Error codes of this client, beside -errno and SL_E*: they let a command pick its exit code
 * (cli.h) without parsing messages.
 */
enum {
    KC_EUNREACH = -20101,  /* no broker of the bootstrap list (or the needed one) answered */
    KC_ENOTFOUND = -20102, /* the topic, partition or group does not exist */
    KC_EKAFKA = -20103,    /* the broker answered with a Kafka error code (err says which) */
    KC_EREJOIN = -20104,   /* group membership lost or rebalancing: join again */
};

/* API keys this client sends. */
enum {
    KC_API_PRODUCE = 0,
    KC_API_FETCH = 1,
    KC_API_LIST_OFFSETS = 2,
    KC_API_METADATA = 3,
    KC_API_OFFSET_COMMIT = 8,
    KC_API_OFFSET_FETCH = 9,
    KC_API_FIND_COORDINATOR = 10,
    KC_API_JOIN_GROUP = 11,
    KC_API_HEARTBEAT = 12,
    KC_API_LEAVE_GROUP = 13,
    KC_API_SYNC_GROUP = 14,
    KC_API_DESCRIBE_GROUPS = 15,
    KC_API_LIST_GROUPS = 16,
    KC_API_API_VERSIONS = 18,
    KC_API_CREATE_TOPICS = 19,
    KC_API_DELETE_TOPICS = 20,
    KC_API_INIT_PRODUCER_ID = 22,
    KC_API_DESCRIBE_CONFIGS = 32,
    KC_API_DESCRIBE_LOG_DIRS = 35,
    KC_API_KEYS = 64, /* keys at or above this are ignored in ApiVersions answers */
};

/* Connections to a group coordinator use their own node ids, so a long-poll fetch on the same
 * broker never delays a heartbeat (Java's client does the same). */
#define KC_COORD_NODE(node_id) ((int32_t)((1 << 30) + (node_id)))

/* The largest response frame accepted: a fetch answer is bounded by the max_bytes we ask. */
#define KC_FRAME_MAX (256u << 20)

/* One connection to one broker. Requests are strictly one at a time on it. */
struct kc_conn {
    int fd;          /* -1 when closed */
    int32_t node_id; /* -1 for a bootstrap address */
    char host[SL_CONF_HOST_MAX + 1];
    uint16_t port;
    int16_t vmin[KC_API_KEYS]; /* the broker's ApiVersions, -1 when absent */
    int16_t vmax[KC_API_KEYS];
    int32_t corr;          /* correlation id of the request in flight or last sent */
    bool in_flight;        /* a request was sent and its answer not read yet */
    int16_t api, version;  /* of the request being built or in flight */
    struct sl_buf tx;      /* owned: the request being built */
    struct sl_buf rx;      /* owned: the last response frame, correlation id first */
    const char *client_id; /* borrowed from the client */
};

struct kc_broker {
    int32_t node_id;
    char *host; /* owned */
    uint16_t port;
};

/* The client: a bootstrap list, the brokers metadata named, and a connection per broker. */
struct kc_client {
    const struct sl_conf_hostports *bootstrap; /* borrowed */
    const char *client_id;                     /* borrowed */
    int64_t timeout_ms;                        /* per request (long polls add their wait) */
    struct kc_broker *brokers;                 /* owned: from the last Metadata answer */
    size_t nbrokers;
    struct kc_conn **conns; /* owned: open connections, by node id (bootstrap: -1) */
    size_t nconns;
};

/* Prepares cl; allocates nothing and connects to nothing until a request needs it. bootstrap
 * and client_id are borrowed and must outlive cl. */
void kc_client_init(struct kc_client *cl, const struct sl_conf_hostports *bootstrap,
                    const char *client_id, int64_t timeout_ms);

/* Closes every connection and frees everything; NULL-safe, and safe twice. */
void kc_client_fini(struct kc_client *cl);

/*
 * Sets *out to a connected broker: an open connection if there is one, else the brokers known
 * from metadata, else the bootstrap addresses, tried in order. Returns 0, or KC_EUNREACH with
 * err listing every address tried and why it failed.
 */
int kc_client_any(struct kc_client *cl, struct kc_conn **out, struct sl_err *err);

/*
 * Sets *out to a connection to broker node_id (known from metadata; refreshed once if not).
 * Returns 0; KC_EUNREACH when it cannot be reached; KC_ENOTFOUND for a node id no metadata
 * names.
 */
int kc_client_node(struct kc_client *cl, int32_t node_id, struct kc_conn **out, struct sl_err *err);

/* Connects to host:port (a coordinator, named by FindCoordinator) under node id node_id, or
 * returns the open connection for that node id. Same results as kc_client_node. */
int kc_client_node_at(struct kc_client *cl, int32_t node_id, const char *host, uint16_t port,
                      struct kc_conn **out, struct sl_err *err);

/* Closes the connection to node_id (after a network error); the next use reconnects. */
void kc_client_drop(struct kc_client *cl, int32_t node_id);

/*
 * The highest version of api both this client (ours_min..ours_max) and the broker speak, or -1
 * (with err naming the API and both ranges) when there is none.
 */
int16_t kc_conn_version(const struct kc_conn *c, int16_t api, int16_t ours_min, int16_t ours_max,
                        struct sl_err *err);

/*
 * Starts a request on c: empties c->tx and writes the size hole and the request header v1
 * (api_key, api_version, correlation_id, client_id). Returns c->tx for the caller to append the
 * body to, in spec order. The connection must not have a request in flight.
 */
struct sl_buf *kc_conn_begin(struct kc_conn *c, int16_t api, int16_t version);

/* Sends the request built since kc_conn_begin (size patched). Returns 0; -ENOMEM when
 * building failed; or a network error (the connection is then closed) with err saying so. */
int kc_conn_send(struct kc_conn *c, int64_t timeout_ms, struct sl_err *err);

/*
 * Reads the answer to the request in flight, waiting up to timeout_ms, and points r at its
 * body (after the correlation id; r borrows c->rx until the next request on c). Returns 0; a
 * network error or timeout (the connection is then closed); SL_ETOOBIG for a frame over
 * KC_FRAME_MAX; SL_EPARSE for a wrong correlation id.
 */
int kc_conn_recv(struct kc_conn *c, int64_t timeout_ms, struct sl_reader *r, struct sl_err *err);

/* kc_conn_send then kc_conn_recv, each bounded by timeout_ms. Same results as those. */
int kc_conn_call(struct kc_conn *c, int64_t timeout_ms, struct sl_reader *r, struct sl_err *err);

/* Checks that a response was decoded completely: returns 0, or the reader's error described
 * with the API name and version, or SL_EPARSE when bytes are left over. */
int kc_conn_check(const struct kc_conn *c, const struct sl_reader *r, struct sl_err *err);

/* The name of an API key ("Fetch"), "?" when unknown. */
const char *kc_api_name(int16_t api);

/* Kafka's name for an error code ("UNKNOWN_TOPIC_OR_PARTITION"); "UNKNOWN" for a code this
 * table lacks. Never NULL. */
const char *kc_err_name(int16_t code);

/* Sets err to "<what>: <NAME> (<code>)" and returns KC_ENOTFOUND for the not-found codes
 * (unknown topic, group id not found), KC_EREJOIN for the membership codes, KC_EKAFKA else. */
int kc_err_kafka(struct sl_err *err, int16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Metadata (key 3), v1-4 -------------------------------------------------------------- */

struct kc_meta_part {
    int16_t error_code;
    int32_t index;
    int32_t leader; /* node id, -1: none */
};

struct kc_meta_topic {
    int16_t error_code;
    char *name; /* owned */
    bool internal;
    int32_t nparts;
    struct kc_meta_part *parts; /* owned, sorted by index */
};

struct kc_meta {
    struct kc_broker *brokers; /* owned */
    size_t nbrokers;
    int32_t controller_id;
    struct kc_meta_topic *topics; /* owned, in the answer's order */
    size_t ntopics;
};

/* Appends the Metadata v1-4 body: the topics (NULL with n 0 and all set: every topic), and
 * v4's allow_auto_topic_creation, always false: reading never creates. */
void kc_meta_req(struct sl_buf *b, int16_t version, const char *const *topics, size_t n, bool all);

/* Decodes a Metadata v1-4 response body into m (zeroed by the caller; everything copied, so m
 * outlives the frame). Returns 0, -ENOMEM, or the reader's error with err naming field and
 * offset. m is released with kc_meta_fini even on failure. */
int kc_meta_parse(struct sl_reader *r, int16_t version, struct kc_meta *m, struct sl_err *err);

/* Frees what m owns and zeroes it; NULL-safe. */
void kc_meta_fini(struct kc_meta *m);

/* The topic named name in m, or NULL. */
const struct kc_meta_topic *kc_meta_find(const struct kc_meta *m, const char *name);

/*
 * Asks any broker for metadata about the n topics (or every topic when all is set) and
 * remembers the brokers it names. Returns 0 with m filled (zeroed by the caller; release with
 * kc_meta_fini); KC_EUNREACH; or a protocol error.
 */
int kc_client_metadata(struct kc_client *cl, const char *const *topics, size_t n, bool all,
                       struct kc_meta *m, struct sl_err *err);

/*
 * Metadata for one topic that must exist: KC_ENOTFOUND (err: "topic 'x' does not exist") when
 * the broker says UNKNOWN_TOPIC_OR_PARTITION; KC_EKAFKA for another topic error.
 */
int kc_client_topic(struct kc_client *cl, const char *topic, struct kc_meta *m,
                    const struct kc_meta_topic **out, struct sl_err *err);

/* Milliseconds on the monotonic clock, and since the epoch. */
int64_t kc_now_ms(void);
int64_t kc_wall_ms(void);

#endif
