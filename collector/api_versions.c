/* ApiVersions (key 18), v0-2: the APIs and versions this collector serves. */
#include "collector/server_priv.h"

/*
 * Request v0-2: empty body.
 *
 * Response:
 *   +------------+------------------------------------------+------------------+
 *   | error_code | api_keys: [api_key i16, min i16, max i16] | throttle_time_ms |
 *   | int16      | ARRAY (int32 count)                       | int32 (v1+)      |
 *   +------------+------------------------------------------+------------------+
 *
 * A v3+ request (flexible) is answered by dispatch.c with UNSUPPORTED_VERSION and this v0
 * body; the client then retries with the highest version listed for key 18.
 */

void coll_api_versions_encode(struct sl_buf *b, int16_t version, int16_t error)
{
    sl_buf_put_i16(b, error);
    size_t count_at = sl_buf_hole(b, 4);
    int32_t n = 0;
    for (int16_t k = 0; k < COLL_API_KEYS; k++) {
        if (!coll_apis[k].fn)
            continue;
        sl_buf_put_i16(b, k);
        sl_buf_put_i16(b, coll_apis[k].min);
        sl_buf_put_i16(b, coll_apis[k].max);
        n++;
    }
    sl_buf_patch_i32(b, count_at, n);
    if (version >= 1)
        sl_buf_put_i32(b, 0);
}

int coll_api_versions(struct coll_req *req)
{
    coll_api_versions_encode(&req->resp->buf, req->version, KAFKA_E_NONE);
    return COLL_API_DONE;
}
