/* LeaveGroup (key 13), v0-1: a member leaves at once instead of timing out. */
#include "collector/server_priv.h"

/*
 * Request:  group_id STRING, member_id STRING
 * Response: throttle_time_ms int32 (v1+), error_code int16
 */

int coll_api_leave_group(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct sl_bytes group = sl_reader_string(r);
    struct sl_bytes member = sl_reader_string(r);
    if (r->err)
        return r->err;
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b, coll_groups_leave(&req->srv->groups, group, member));
    return COLL_API_DONE;
}
