/* Heartbeat (key 12), v0-3: a member says it is alive and learns of rebalances. */
#include "collector/server_priv.h"

/*
 * Request:  group_id STRING, generation_id int32, member_id STRING,
 *           group_instance_id NULLABLE_STRING (v3+)
 * Response: throttle_time_ms int32 (v1+), error_code int16
 */

int coll_api_heartbeat(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct sl_bytes group = sl_reader_string(r);
    int32_t generation = sl_reader_i32(r);
    struct sl_bytes member = sl_reader_string(r);
    struct sl_bytes instance = req->version >= 3 ? sl_reader_string(r) : SL_BYTES_NULL;
    if (r->err)
        return r->err;
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b,
                   coll_groups_heartbeat(&req->srv->groups, group, generation, member, instance));
    return COLL_API_DONE;
}
