/* Request header decoding and the API table: [api_key] = {name, min, max, handler}. */
#include "collector/server_priv.h"

#include "common/log.h"

#include <stdio.h>

/*
 * Request header v1 (every non-flexible request; ApiVersions v3+ sends header v2, which only
 * adds tagged fields after client_id, and is answered without reading further):
 *
 *   +---------+-------------+----------------+------------------------+-----------+
 *   | api_key | api_version | correlation_id | client_id              | body ...  |
 *   | int16   | int16       | int32          | NULLABLE_STRING (i16)  |           |
 *   +---------+-------------+----------------+------------------------+-----------+
 *
 * Response header v0: correlation_id int32, then the body.
 *
 * A new API is one line below plus its api_<name>.c file.
 */
const struct coll_api coll_apis[COLL_API_KEYS] = {
    [0] = {"Produce", 3, 7, coll_api_produce},
    [1] = {"Fetch", 4, 11, coll_api_fetch},
    [2] = {"ListOffsets", 1, 2, coll_api_list_offsets},
    [3] = {"Metadata", 0, 4, coll_api_metadata},
    [8] = {"OffsetCommit", 2, 7, coll_api_offset_commit},
    [9] = {"OffsetFetch", 1, 5, coll_api_offset_fetch},
    [10] = {"FindCoordinator", 0, 2, coll_api_find_coordinator},
    [11] = {"JoinGroup", 0, 5, coll_api_join_group},
    [12] = {"Heartbeat", 0, 3, coll_api_heartbeat},
    [13] = {"LeaveGroup", 0, 1, coll_api_leave_group},
    [14] = {"SyncGroup", 0, 3, coll_api_sync_group},
    [15] = {"DescribeGroups", 0, 2, coll_api_describe_groups},
    [16] = {"ListGroups", 0, 2, coll_api_list_groups},
    [18] = {"ApiVersions", 0, 2, coll_api_versions},
    [19] = {"CreateTopics", 0, 4, coll_api_create_topics},
    [20] = {"DeleteTopics", 0, 3, coll_api_delete_topics},
    [22] = {"InitProducerId", 0, 1, coll_api_init_producer_id},
    [32] = {"DescribeConfigs", 0, 3, coll_api_describe_configs},
    [35] = {"DescribeLogDirs", 0, 1, coll_api_describe_log_dirs},
};

#define API_KEY_VERSIONS 18

int coll_dispatch(struct coll_req *req, uint8_t *frame, size_t len, struct sl_err *err)
{
    struct sl_reader *r = &req->r;
    sl_reader_init(r, frame, len);
    req->api_key = sl_reader_i16(r);
    req->version = sl_reader_i16(r);
    req->corr_id = sl_reader_i32(r);
    req->client_id = sl_reader_string(r);
    if (r->err)
        return sl_reader_describe(r, err, "request header");
    struct coll_resp *resp = req->resp;
    resp->corr_id = req->corr_id;
    resp->api_key = req->api_key;
    resp->api_version = req->version;
    coll_resp_begin(resp, req->corr_id);

    const struct coll_api *api = NULL;
    if (req->api_key >= 0 && req->api_key < COLL_API_KEYS && coll_apis[req->api_key].fn)
        api = &coll_apis[req->api_key];
    if (!api)
        return sl_err_set(err, SL_EUNSUP, "unknown api key %d (v%d, correlation id %d)",
                          req->api_key, req->version, req->corr_id);
    if (req->version < api->min || req->version > api->max) {
        if (req->api_key == API_KEY_VERSIONS && req->version > api->max) {
            /* Clients start with their newest ApiVersions; the v0 body tells them ours. */
            coll_api_versions_encode(&resp->buf, 0, KAFKA_E_UNSUPPORTED_VERSION);
            return COLL_API_DONE;
        }
        return sl_err_set(err, SL_EUNSUP, "%s v%d unsupported (supported v%d-v%d)", api->name,
                          req->version, api->min, api->max);
    }
    int rc = api->fn(req);
    if (rc < 0 || r->err) {
        char ctx[160];
        snprintf(ctx, sizeof(ctx), "%s v%d (correlation id %d, client '%.*s')", api->name,
                 req->version, req->corr_id,
                 req->client_id.p ? (int)SL_MIN(req->client_id.len, 40) : 0,
                 req->client_id.p ? (const char *)req->client_id.p : "");
        if (r->err)
            return sl_reader_describe(r, err, ctx);
        return sl_err_set(err, rc, "%s: %s", ctx, sl_strerror(rc));
    }
    return rc;
}
