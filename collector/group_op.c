/* The glue between the coordinator's waiters and the server's response slots. */
#include "collector/group_op.h"

#include "common/mem.h"

#include <stdio.h>
#include <string.h>

static void op_cancel(struct coll_resp *resp)
{
    struct coll_group_op *op = resp->op;
    coll_group_waiter_cancel(&op->w);
    sl_free(op);
    coll_resp_free(resp);
}

struct coll_group_op *
coll_group_op_new(struct coll_req *req,
                  void (*on_join)(struct coll_group_waiter *, const struct coll_join_result *),
                  void (*on_sync)(struct coll_group_waiter *, int16_t, struct sl_bytes))
{
    struct coll_group_op *op = sl_calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->w.on_join = on_join;
    op->w.on_sync = on_sync;
    op->resp = req->resp;
    op->version = req->version;
    op->in_handler = true;
    return op;
}

void coll_group_op_answered(struct coll_group_op *op)
{
    op->answered = true;
    if (op->in_handler)
        return; /* coll_group_op_finish completes it */
    struct coll_resp *resp = op->resp;
    sl_free(op);
    coll_resp_done(resp);
}

int coll_group_op_finish(struct coll_group_op *op, int16_t code,
                         void (*encode_error)(struct sl_buf *b, int16_t version, int16_t code))
{
    op->in_handler = false;
    if (!op->resp->conn && code == KAFKA_E_NONE && !op->answered) {
        /* The connection closed while the handler ran (its slot is an orphan nobody will
         * cancel): take the waiter back, or a dead member would stay parked and alive. */
        coll_group_waiter_cancel(&op->w);
        sl_free(op);
        return COLL_API_DONE;
    }
    if (code != KAFKA_E_NONE || op->answered) {
        if (code != KAFKA_E_NONE)
            encode_error(&op->resp->buf, op->version, code);
        sl_free(op);
        return COLL_API_DONE;
    }
    op->resp->cancel = op_cancel;
    op->resp->op = op;
    return COLL_API_ASYNC;
}

void coll_group_client_host(const char *peer, char *out, size_t size)
{
    /* peer is "kafka ADDR:PORT" or "kafka [ADDR]:PORT"; Kafka reports "/ADDR". */
    const char *p = strncmp(peer, "kafka ", 6) == 0 ? peer + 6 : peer;
    size_t len = strlen(p);
    const char *colon = strrchr(p, ':');
    if (colon)
        len = (size_t)(colon - p);
    if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
        p++;
        len -= 2;
    }
    snprintf(out, size, "/%.*s", (int)len, p);
}
