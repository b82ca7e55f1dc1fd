/* InitProducerId (key 22), v0-1: hands idempotent producers their id (no transactions). */
#include "collector/server_priv.h"

/*
 * Request:  transactional_id NULLABLE_STRING, transaction_timeout_ms int32
 * Response: throttle_time_ms int32, error_code int16, producer_id int64, producer_epoch int16
 *
 * A transactional id is refused (TRANSACTIONAL_ID_AUTHORIZATION_FAILED): there is no
 * transaction coordinator. Ids come from a counter seeded with the clock at startup, so they
 * do not repeat after a restart; every id starts at epoch 0.
 */

int coll_api_init_producer_id(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct sl_bytes txn = sl_reader_string(r);
    sl_reader_i32(r);
    if (r->err)
        return r->err;
    struct sl_buf *b = &req->resp->buf;
    sl_buf_put_i32(b, 0);
    if (txn.p) {
        sl_buf_put_i16(b, KAFKA_E_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        sl_buf_put_i64(b, -1);
        sl_buf_put_i16(b, -1);
        return COLL_API_DONE;
    }
    sl_buf_put_i16(b, KAFKA_E_NONE);
    sl_buf_put_i64(b, coll_pstate_new_id(&req->srv->producers));
    sl_buf_put_i16(b, 0);
    return COLL_API_DONE;
}
