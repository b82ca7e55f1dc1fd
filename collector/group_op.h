/* A JoinGroup or SyncGroup answer in flight: ties a coordinator waiter to a response slot. */
#ifndef SL_COLLECTOR_GROUP_OP_H
#define SL_COLLECTOR_GROUP_OP_H

#include "collector/group.h"
#include "collector/server_priv.h"

/*
 * The coordinator may answer while the handler is still running (a rejoin in Stable) or later
 * (when the rebalance completes). In the first case the handler returns COLL_API_DONE; in the
 * second the callback completes the slot with coll_resp_done. A closed connection cancels the
 * waiter through resp->cancel.
 */
struct coll_group_op {
    struct coll_group_waiter w; /* first: the callbacks recover the op from it */
    struct coll_resp *resp;     /* borrowed: the slot the answer goes into */
    int16_t version;
    bool in_handler; /* the handler has not returned yet */
    bool answered;
};

/* Allocates an op for req with the given callbacks (one of them NULL); NULL on -ENOMEM. */
struct coll_group_op *
coll_group_op_new(struct coll_req *req,
                  void (*on_join)(struct coll_group_waiter *, const struct coll_join_result *),
                  void (*on_sync)(struct coll_group_waiter *, int16_t, struct sl_bytes));

/* After the callback encoded the answer into op->resp->buf: completes the slot when the handler
 * already returned, and frees the op (or leaves that to coll_group_op_finish). */
void coll_group_op_answered(struct coll_group_op *op);

/*
 * Ends the handler's part: `code` is what the coordinator returned. A nonzero code was not
 * answered through the callback: encode_error(buf, version, code) writes that answer. Returns
 * the COLL_API_* value for the dispatcher.
 */
int coll_group_op_finish(struct coll_group_op *op, int16_t code,
                         void (*encode_error)(struct sl_buf *b, int16_t version, int16_t code));

/* The client host as Kafka reports it ("/127.0.0.1") from a connection's peer name. */
void coll_group_client_host(const char *peer, char *out, size_t size);

#endif
