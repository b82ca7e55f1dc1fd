/* ListGroups (key 16), v0-2: every group the collector knows, members or only offsets. */
#include "collector/server_priv.h"

/*
 * Request:  (empty)
 * Response: throttle_time_ms int32 (v1+), error_code int16,
 *           groups ARRAY of [group_id STRING, protocol_type STRING]
 *
 * A group known only by its committed offsets has an empty protocol type until a member joins.
 */

int coll_api_list_groups(struct coll_req *req)
{
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b, KAFKA_E_NONE);
    size_t at = b->len;
    sl_buf_put_i32(b, 0);
    int32_t n = 0;
    for (struct coll_group *g = req->srv->groups.groups; g; g = g->next, n++) {
        coll_put_cstr(b, g->name);
        coll_put_cstr(b, g->protocol_type ? g->protocol_type : "");
    }
    sl_buf_patch_i32(b, at, n);
    return COLL_API_DONE;
}
