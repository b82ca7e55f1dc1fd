/* The collector's Kafka protocol server: listeners, connections and the API dispatch. */
#ifndef SL_COLLECTOR_SERVER_H
#define SL_COLLECTOR_SERVER_H

#include "collector/group.h"
#include "collector/storage.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/metrics.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

/* The `server:` section of collector.yaml (server_conf.c holds its option table). */
struct coll_server_conf {
    struct sl_conf_hostports listeners; /* addresses to accept Kafka clients on */
    struct sl_conf_hostport advertised; /* host NULL: first non-loopback IPv4 or 127.0.0.1;
                                           port 0: the first listener's bound port */
    int64_t max_request_size;           /* bytes; a larger frame closes the connection */
    int64_t max_connections;            /* more are accepted and closed at once */
    int64_t output_buffer;              /* bytes queued for a client before we stop reading */
    int64_t max_inflight;               /* requests per connection awaiting their response */
    int64_t idle_timeout_ms;            /* close connections silent this long; 0: never */
    int64_t max_fetch_wait_ms;          /* cap on a fetch's max_wait_ms */
    int64_t shutdown_timeout_ms;        /* graceful stop gives in-flight requests this long */
    bool auto_create_topics;            /* Metadata creates unknown topics */
    int64_t default_partitions;         /* partitions of auto-created topics (and num -1) */
    bool sendfile;                      /* serve fetches with sendfile(2) (else pread+write) */
    int64_t fetch_session_slots;        /* fetch sessions kept (KIP-227); 0: none */
    int64_t fetch_session_eviction_ms;  /* idle time after which a session may be evicted */
    /* Not an option of this section: the collector's top-level `groups:`, which main points
     * here; NULL: the option table's defaults. */
    const struct coll_groups_conf *groups;
};

/* The option table of struct coll_server_conf, to embed as a SL_CONF_SECTION. */
extern const struct sl_conf_section coll_server_conf_section;

struct coll_server;

/*
 * Creates the server on loop and binds every listener (a wildcard IPv6 listener the host cannot
 * bind is skipped with a warning when another one bound; an empty list, which the option table
 * refuses, makes a server without listeners for tests and fuzzing) and opens the committed
 * offsets kept in the storage's folder. conf, storage and metrics are
 * borrowed and must outlive the server; metrics may be NULL. Nothing is accepted before
 * coll_server_start. Returns 0 with *out, or -errno / -ENOMEM / SL_ECONFIG with err set.
 */
int coll_server_new(struct ev_loop *loop, const struct coll_server_conf *conf,
                    struct coll_storage *st, struct sl_metrics *metrics, struct coll_server **out,
                    struct sl_err *err);

struct coll_topic_store;

/* Where CreateTopics keeps the configs topics are created with (topic_store.h; borrowed, must
 * outlive the server). Without one, a CreateTopics with configs is refused (INVALID_CONFIG). */
void coll_server_set_topic_store(struct coll_server *srv, struct coll_topic_store *store);

/* Starts accepting connections. */
void coll_server_start(struct coll_server *srv);

/*
 * Graceful stop: closes the listeners, stops reading requests, answers waiting fetches now and
 * lets every in-flight request finish (bounded by shutdown_timeout_ms, then connections are
 * closed). done(arg) is called exactly once, from the loop, when no connection is left; the
 * caller then frees the server and closes the storage. Calling it twice keeps the first done.
 */
void coll_server_stop(struct coll_server *srv, void (*done)(void *arg), void *arg);

/* Closes every connection and listener at once and frees. Responses still waiting for the
 * storage are released when the storage completes them (close the storage after this).
 * NULL-safe. */
void coll_server_free(struct coll_server *srv);

/* The port the i-th listener is bound to (after an ephemeral bind), or -1. */
int coll_server_port(const struct coll_server *srv, size_t i);

/* The host:port Metadata advertises. */
const char *coll_server_advertised_host(const struct coll_server *srv);
int coll_server_advertised_port(const struct coll_server *srv);

/* Open connections. */
size_t coll_server_connections(const struct coll_server *srv);

/* SIGHUP hook: the partitions' settings come from the storage's topic_conf callback; this
 * only re-registers metrics of partitions that appeared. */
void coll_server_refresh(struct coll_server *srv);

#endif
