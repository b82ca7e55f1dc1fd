/* Internals shared by the server, its connections and the per-API handlers. */
#ifndef SL_COLLECTOR_SERVER_PRIV_H
#define SL_COLLECTOR_SERVER_PRIV_H

#include "common/base.h"
#include "common/kafka_err.h"
#include "collector/fetch_session.h"
#include "collector/group.h"
#include "collector/producer_state.h"
#include "collector/server.h"
#include "common/buf.h"
#include "common/reader.h"

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

/* The single broker's node id in Metadata. */
#define COLL_NODE_ID 0

/* Per-topic traffic counters (created on first use). */
struct coll_topic_stats {
    char *topic; /* owned */
    struct sl_metric *bytes_in, *records_in, *bytes_out, *records_out;
    struct coll_topic_stats *next;
};

/* A partition's gauges (log end offset, size): looked up by name at scrape time, so a deleted
 * partition never leaves a dangling pointer behind. */
struct coll_part_gauges {
    struct coll_server *srv; /* borrowed */
    char *topic;             /* owned */
    int32_t partition;
    struct sl_metric *leo, *size, *start;
    struct coll_part_gauges *next;
};

struct coll_listener {
    struct coll_server *srv; /* borrowed */
    int fd;
    int port;
    ev_io io;
};

/* A group's gauges, and one per partition it committed (lag): looked up by name at scrape
 * time, like the partition gauges. partition -1: the group's own (members, generation). */
struct coll_group_gauges {
    struct coll_server *srv; /* borrowed */
    char *group;             /* owned */
    char *topic;             /* owned; NULL for the group's own */
    int32_t partition;
    struct sl_metric *a, *b; /* members/generation, or committed/lag */
    struct coll_group_gauges *next;
};

struct coll_conn;
struct coll_fetch_wait;
struct coll_goff;

struct coll_server {
    struct ev_loop *loop;                /* borrowed */
    const struct coll_server_conf *conf; /* borrowed */
    struct coll_storage *st;             /* borrowed */
    struct sl_metrics *metrics;          /* borrowed, may be NULL */
    struct coll_topic_store *topic_store; /* borrowed, may be NULL: CreateTopics refuses configs */
    struct coll_listener *ls;            /* owned */
    size_t nls;
    struct coll_conn *conns; /* owned list */
    size_t nconns;
    struct coll_fetch_wait *waits; /* owned list of long-polling fetches */
    struct coll_pstate producers;
    char adv_host[256];
    int adv_port;
    bool started, stopping;
    void (*stop_done)(void *arg);
    void *stop_arg;
    ev_timer stop_timer;
    ev_idle stop_idle;               /* reports stop_done from the loop, never from inside stop() */
    struct coll_topic_stats *topics; /* owned list */
    struct coll_part_gauges *part_gauges; /* owned list */
    struct coll_groups groups;            /* the group coordinator */
    struct coll_goff *goff; /* owned: committed offsets */
    ev_timer group_timer;   /* session expiries and rebalance deadlines */
    int64_t groups_expired_ms; /* wall clock of the last offset expiry pass */
    struct coll_group_gauges *group_gauges; /* owned list */
    struct sl_metric *m_conns, *m_accepted, *m_refused, *m_bad_requests;
    struct sl_metric *m_latency[64]; /* per api key */
    struct coll_fsess_cache fsess;   /* fetch sessions (KIP-227) */
};

/*
 * A response slot. Every decoded request gets one, in arrival order, and responses leave in
 * that order even when a later request completes first. The bytes are buf (size, correlation
 * id, body) with file regions spliced in at recorded positions of buf:
 *
 *   buf[0, files[0].at) | files[0].region | buf[files[0].at, files[1].at) | ... | buf[.., len)
 */
struct coll_resp_file {
    size_t at; /* offset in buf before which the region goes */
    struct coll_region region;
};

struct coll_resp {
    struct coll_resp *next;
    struct coll_conn *conn; /* borrowed; NULL once the connection is gone (orphan) */
    int32_t corr_id;
    int16_t api_key, api_version;
    bool done;
    struct sl_buf buf;            /* owned */
    struct coll_resp_file *files; /* owned */
    size_t nfiles, cap_files;
    uint64_t total; /* bytes to send once done: buf.len + regions */
    ev_tstamp started;
    /* Asynchronous completion: called when the connection closes before done; must release
     * whatever refers to the slot (and then not call coll_resp_done). NULL: the pending work
     * completes later and calls coll_resp_done, which frees an orphan. */
    void (*cancel)(struct coll_resp *resp);
    void *op; /* the handler's state for cancel */
};

/* One decoded request handed to an API handler. */
struct coll_req {
    struct coll_server *srv; /* borrowed */
    struct coll_resp *resp;  /* the slot; buf already holds size and correlation id */
    const char *peer;        /* client address, for logs */
    int16_t api_key, version;
    int32_t corr_id;
    struct sl_bytes client_id;
    struct sl_reader r; /* the body; handlers may modify the frame (produce rewrites batches) */
};

/* What a handler returns besides a negative code (malformed request: the connection closes). */
enum {
    COLL_API_DONE = 0,  /* the body is in resp->buf */
    COLL_API_ASYNC = 1, /* the handler calls coll_resp_done later (or cancel runs) */
    COLL_API_NORESP = 2 /* no response at all (Produce acks=0) */
};

typedef int (*coll_api_fn)(struct coll_req *req);

struct coll_api {
    const char *name;
    int16_t min, max;
    coll_api_fn fn;
};

#define COLL_API_KEYS 64
/* dispatch.c: indexed by api key; a NULL fn is an unknown API. */
extern const struct coll_api coll_apis[COLL_API_KEYS];

/* Handlers, one file each. */
int coll_api_produce(struct coll_req *req);
int coll_api_fetch(struct coll_req *req);
int coll_api_list_offsets(struct coll_req *req);
int coll_api_metadata(struct coll_req *req);
int coll_api_versions(struct coll_req *req);
int coll_api_create_topics(struct coll_req *req);
int coll_api_delete_topics(struct coll_req *req);
int coll_api_init_producer_id(struct coll_req *req);
int coll_api_offset_commit(struct coll_req *req);
int coll_api_offset_fetch(struct coll_req *req);
int coll_api_find_coordinator(struct coll_req *req);
int coll_api_join_group(struct coll_req *req);
int coll_api_heartbeat(struct coll_req *req);
int coll_api_leave_group(struct coll_req *req);
int coll_api_sync_group(struct coll_req *req);
int coll_api_describe_groups(struct coll_req *req);
int coll_api_list_groups(struct coll_req *req);
int coll_api_describe_configs(struct coll_req *req);
int coll_api_describe_log_dirs(struct coll_req *req);

/* api_versions.c: writes the ApiVersions response body of `version` with error. */
void coll_api_versions_encode(struct sl_buf *b, int16_t version, int16_t error);

/*
 * dispatch.c: decodes the request header (v1: api_key, api_version, correlation_id, client_id)
 * of one frame (without its size prefix) into req and runs the handler. Returns a COLL_API_*
 * value, or a negative code with err naming the API, version, offset and bytes left (the
 * connection must then be closed). An unknown API key or unsupported version is an error too,
 * except ApiVersions, which always answers (UNSUPPORTED_VERSION with the v0 body).
 * The frame is modified in place by some handlers.
 */
int coll_dispatch(struct coll_req *req, uint8_t *frame, size_t len, struct sl_err *err);

/* Starts a response in resp->buf: size hole and correlation id. */
void coll_resp_begin(struct coll_resp *resp, int32_t corr_id);

/* Splices a file region in at the current end of resp->buf (takes ownership of the region
 * reference, also on failure). Returns 0 or -ENOMEM. */
int coll_resp_add_file(struct coll_resp *resp, struct coll_region *region);

/* conn.c: marks an asynchronous response complete (patches its size) and sends it when its
 * turn comes; frees it when its connection is gone. */
void coll_resp_done(struct coll_resp *resp);

/* Frees a slot and its file references (not for a slot still queued on a connection). */
void coll_resp_free(struct coll_resp *resp);

/* conn.c: accepts fd (takes ownership; closes it on failure). */
int coll_conn_new(struct coll_server *srv, int fd, const char *peer);
/* Closes and frees (pending asynchronous slots are cancelled or orphaned). */
void coll_conn_close(struct coll_conn *c, const char *why);
/* Fills out with up to n open connections (to act on them while they unlink themselves). */
void coll_conn_snapshot(struct coll_server *srv, struct coll_conn **out, size_t n);
/* Stops reading requests; closes once every queued response is sent (graceful stop). */
void coll_conn_drain(struct coll_conn *c);

/* api_fetch.c: a batch was appended to (topic, partition): wake fetches waiting on it. */
void coll_fetch_on_append(struct coll_server *srv, const char *topic, int32_t partition,
                          size_t bytes);
/* Answers every waiting fetch now (graceful stop). */
void coll_fetch_flush_all(struct coll_server *srv);

/* server.c helpers for handlers. */
struct coll_topic_stats *coll_server_topic_stats(struct coll_server *srv, const char *topic);
/* The partition count of topic: 1 + the highest partition open or offline, or 0 when unknown. */
int32_t coll_server_partitions(struct coll_server *srv, const char *topic);
/* Creates topic with n partitions (n <= 0: default). Returns a KAFKA_E_* code; msg (may be
 * NULL) gets the reason. */
int16_t coll_server_create_topic(struct coll_server *srv, const char *topic, size_t len, int32_t n,
                                 struct sl_err *msg);
/* Copies a wire string into a NUL-terminated buffer of size bytes; false when it does not fit
 * or holds a NUL (callers answer INVALID_TOPIC / UNKNOWN_TOPIC). */
bool coll_str_copy(char *dst, size_t size, struct sl_bytes s);
/* Registers the gauges of a partition (idempotent). */
void coll_server_track_partition(struct coll_server *srv, const char *topic, int32_t partition);
/* Drops the gauges of a deleted partition. */
void coll_server_untrack_partition(struct coll_server *srv, const char *topic, int32_t partition);

/* Wall clock in ms since the epoch (commit timestamps). */
int64_t coll_server_wall_ms(void);

/* group_server.c: sets up the coordinator (conf->groups or defaults), opens the committed
 * offsets in data_dir and arms the coordinator's timer. Returns 0 or -errno with err set. */
int coll_server_groups_init(struct coll_server *srv, const char *data_dir, struct sl_err *err);
/* Stops the timer, frees the groups and closes the offsets file (connections closed first). */
void coll_server_groups_fini(struct coll_server *srv);

/* group_server.c: registers the gauges of group and of every partition it committed
 * (idempotent; after a commit or a join). */
void coll_server_track_group(struct coll_server *srv, const char *group);
/* Registers the gauges of one committed partition of group, and the group's own (after its
 * first commit there; idempotent). */
void coll_server_track_offset(struct coll_server *srv, const char *group, const char *topic,
                              int32_t partition);
/* Drops the lag gauges of a deleted topic (every group), or of a removed group (topic NULL
 * and group set: everything of that group). */
void coll_server_untrack_groups(struct coll_server *srv, const char *group, const char *topic);

/* Writes a NULLABLE_STRING from a C string (NULL writes null). */
static inline void coll_put_cstr(struct sl_buf *b, const char *s)
{
    sl_buf_put_string(b, s ? SL_BYTES_STR(s) : SL_BYTES_NULL);
}

#endif
