/* FindCoordinator (key 10), v0-2: the collector coordinates every group itself. */
#include "collector/server_priv.h"

/*
 * Request:  key STRING (the group id), key_type int8 (v1+: 0 group, 1 transaction)
 * Response: throttle_time_ms int32 (v1+), error_code int16, error_message NULLABLE_STRING (v1+),
 *           node_id int32, host STRING, port int32
 *
 * Transactions are not supported: key type 1 gets COORDINATOR_NOT_AVAILABLE.
 */

int coll_api_find_coordinator(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    sl_reader_string(r);
    int8_t key_type = req->version >= 1 ? sl_reader_i8(r) : 0;
    if (r->err)
        return r->err;
    struct coll_server *srv = req->srv;
    struct sl_buf *b = &req->resp->buf;
    int16_t e = key_type == 0 ? KAFKA_E_NONE : KAFKA_E_COORDINATOR_NOT_AVAILABLE;
    if (req->version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b, e);
    if (req->version >= 1)
        coll_put_cstr(b, e ? "transactions are not supported" : NULL);
    sl_buf_put_i32(b, e ? -1 : COLL_NODE_ID);
    coll_put_cstr(b, e ? "" : srv->adv_host);
    sl_buf_put_i32(b, e ? -1 : srv->adv_port);
    return COLL_API_DONE;
}
