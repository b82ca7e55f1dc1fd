/* JoinGroup (key 11), v0-5: a member asks to (re)join; answered when the rebalance completes. */
#include "collector/group_op.h"

#include "common/log.h"

#include <errno.h>

/*
 * Request:
 *   group_id STRING, session_timeout_ms int32, rebalance_timeout_ms int32 (v1+),
 *   member_id STRING, group_instance_id NULLABLE_STRING (v5+), protocol_type STRING,
 *   protocols ARRAY of [name STRING, metadata BYTES]
 *
 * Response:
 *   throttle_time_ms int32 (v2+), error_code int16, generation_id int32, protocol_name STRING,
 *   leader STRING, member_id STRING,
 *   members ARRAY of [member_id STRING, group_instance_id NULLABLE_STRING (v5+), metadata BYTES]
 *     (the leader's answer only; everyone else gets an empty array)
 *
 * v0 has no rebalance timeout: the session timeout stands in, as in Kafka. v4+ clients with no
 * member id get MEMBER_ID_REQUIRED and an id to join with.
 */

#define JOIN_MAX_PROTOCOLS 64

static void join_encode(struct sl_buf *b, int16_t version, const struct coll_join_result *res)
{
    if (version >= 2)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i16(b, res->error);
    sl_buf_put_i32(b, res->generation);
    coll_put_cstr(b, res->protocol);
    coll_put_cstr(b, res->leader);
    coll_put_cstr(b, res->member_id);
    sl_buf_put_i32(b, (int32_t)res->nmembers);
    for (size_t i = 0; i < res->nmembers; i++) {
        coll_put_cstr(b, res->members[i].member_id);
        if (version >= 5)
            sl_buf_put_string(b, res->members[i].instance_id
                                     ? SL_BYTES_STR(res->members[i].instance_id)
                                     : SL_BYTES_NULL);
        sl_buf_put_bytes(b, res->members[i].metadata);
    }
}

static void join_encode_error(struct sl_buf *b, int16_t version, int16_t code)
{
    struct coll_join_result res = {
        .error = code, .generation = -1, .protocol = "", .leader = "", .member_id = ""};
    join_encode(b, version, &res);
}

static void join_on_answer(struct coll_group_waiter *w, const struct coll_join_result *res)
{
    struct coll_group_op *op = sl_container_of(w, struct coll_group_op, w);
    join_encode(&op->resp->buf, op->version, res);
    coll_group_op_answered(op);
}

int coll_api_join_group(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    struct coll_join_req jr = {0};
    jr.group = sl_reader_string(r);
    jr.session_ms = sl_reader_i32(r);
    jr.rebalance_ms = req->version >= 1 ? sl_reader_i32(r) : jr.session_ms;
    jr.member_id = sl_reader_string(r);
    jr.instance_id = req->version >= 5 ? sl_reader_string(r) : SL_BYTES_NULL;
    jr.protocol_type = sl_reader_string(r);
    int32_t np = sl_reader_array(r, JOIN_MAX_PROTOCOLS, 6);
    if (np < 0 && !r->err)
        return sl_reader_fail(r, SL_EPARSE, "null protocols");
    struct coll_join_protocol protos[JOIN_MAX_PROTOCOLS];
    for (int32_t i = 0; i < np && !r->err; i++) {
        protos[i].name = sl_reader_string(r);
        protos[i].metadata = sl_reader_bytes(r);
    }
    if (r->err)
        return r->err;
    jr.protocols = protos;
    jr.nprotocols = (size_t)np;
    jr.client_id = req->client_id.p ? req->client_id : SL_BYTES_STR("");
    char host[128];
    coll_group_client_host(req->peer, host, sizeof(host));
    jr.client_host = SL_BYTES_STR(host);
    jr.require_known_member_id = req->version >= 4;

    struct coll_group_op *op = coll_group_op_new(req, join_on_answer, NULL);
    if (!op)
        return -ENOMEM;
    int16_t code = coll_groups_join(&req->srv->groups, &jr, &op->w);
    if (code != KAFKA_E_NONE) {
        SL_DEBUG("group", "JoinGroup from %s refused: error %d", req->peer, code);
    } else {
        /* Gauges only for groups with members: a minted id alone registers nothing. */
        struct coll_group *g = coll_groups_find(&req->srv->groups, jr.group);
        if (g && g->nmembers)
            coll_server_track_group(req->srv, g->name);
    }
    return coll_group_op_finish(op, code, join_encode_error);
}
