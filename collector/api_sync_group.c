/* SyncGroup (key 14), v0-3: the leader hands out assignments; everyone receives theirs. */
#include "collector/group_op.h"

#include "common/mem.h"

#include <errno.h>

/*
 * Request:
 *   group_id STRING, generation_id int32, member_id STRING,
 *   group_instance_id NULLABLE_STRING (v3+),
 *   assignments ARRAY of [member_id STRING, assignment BYTES] (the leader's; others send none)
 *
 * Response: throttle_time_ms int32 (v1+), error_code int16, assignment BYTES
 */

#define SYNC_MAX_ASSIGNMENTS 10000

static void sync_encode(struct sl_buf *b, int16_t version, int16_t error, struct sl_bytes a)
{
    if (version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b, error);
    sl_buf_put_bytes(b, a.p ? a : SL_BYTES("", 0));
}

static void sync_encode_error(struct sl_buf *b, int16_t version, int16_t code)
{
    sync_encode(b, version, code, SL_BYTES_NULL);
}

static void sync_on_answer(struct coll_group_waiter *w, int16_t error, struct sl_bytes a)
{
    struct coll_group_op *op = sl_container_of(w, struct coll_group_op, w);
    sync_encode(&op->resp->buf, op->version, error, a);
    coll_group_op_answered(op);
}

int coll_api_sync_group(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct sl_bytes group = sl_reader_string(r);
    int32_t generation = sl_reader_i32(r);
    struct sl_bytes member = sl_reader_string(r);
    struct sl_bytes instance = req->version >= 3 ? sl_reader_string(r) : SL_BYTES_NULL;
    int32_t na = sl_reader_array(r, SYNC_MAX_ASSIGNMENTS, 6);
    if (na < 0 && !r->err)
        return sl_reader_fail(r, SL_EPARSE, "null assignments");
    struct coll_sync_assignment *as = NULL;
    if (na > 0 && !(as = sl_calloc((size_t)na, sizeof(*as))))
        return -ENOMEM;
    for (int32_t i = 0; i < na && !r->err; i++) {
        as[i].member_id = sl_reader_string(r);
        as[i].assignment = sl_reader_bytes(r);
    }
    if (r->err) {
        sl_free(as);
        return r->err;
    }
    struct coll_group_op *op = coll_group_op_new(req, NULL, sync_on_answer);
    if (!op) {
        sl_free(as);
        return -ENOMEM;
    }
    int16_t code = coll_groups_sync(&req->srv->groups, group, generation, member, instance, as,
                                    (size_t)(na > 0 ? na : 0), &op->w);
    sl_free(as);
    return coll_group_op_finish(op, code, sync_encode_error);
}
