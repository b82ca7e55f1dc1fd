/* DescribeGroups (key 15), v0-2: state, protocol and members of groups, for lag tools. */
#include "collector/server_priv.h"

#include <string.h>

/*
 * Request:  groups ARRAY of STRING
 * Response: throttle_time_ms int32 (v1+),
 *           groups ARRAY of [error_code int16, group_id STRING, group_state STRING,
 *             protocol_type STRING, protocol_data STRING,
 *             members ARRAY of [member_id STRING, client_id STRING, client_host STRING,
 *               member_metadata BYTES, member_assignment BYTES]]
 *
 * As in Kafka: an unknown group is "Dead" with no error; metadata and assignments are shown
 * only when the group is Stable (they are in flux otherwise), and so is the protocol.
 */

#define DG_MAX_GROUPS 10000

int coll_api_describe_groups(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    int32_t n = sl_reader_array(r, DG_MAX_GROUPS, 2);
    if (n < 0 && !r->err)
        return sl_reader_fail(r, SL_EPARSE, "null groups");
    struct sl_buf *b = &req->resp->buf;
    if (req->version >= 1)
        sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, n);
    for (int32_t i = 0; i < n && !r->err; i++) {
        struct sl_bytes name = sl_reader_string(r);
        struct coll_group *g = r->err ? NULL : coll_groups_find(&req->srv->groups, name);
        bool stable = g && g->state == COLL_GROUP_STABLE;
        sl_buf_put_i16(b, name.p && name.len ? KAFKA_E_NONE : KAFKA_E_INVALID_GROUP_ID);
        sl_buf_put_string(b, name.p ? name : SL_BYTES_STR(""));
        coll_put_cstr(b, coll_group_state_name(g ? g->state : COLL_GROUP_DEAD));
        coll_put_cstr(b, g && g->protocol_type ? g->protocol_type : "");
        coll_put_cstr(b, stable && g->protocol ? g->protocol : "");
        sl_buf_put_i32(b, g ? (int32_t)g->nmembers : 0);
        for (struct coll_gmember *m = g ? g->members : NULL; m; m = m->next) {
            coll_put_cstr(b, m->id);
            coll_put_cstr(b, m->client_id);
            coll_put_cstr(b, m->client_host);
            struct sl_bytes meta = SL_BYTES("", 0);
            for (size_t k = 0; stable && k < m->nprotocols; k++)
                if (strcmp(m->protocols[k].name, g->protocol) == 0)
                    meta = SL_BYTES(m->protocols[k].metadata, m->protocols[k].metadata_len);
            sl_buf_put_bytes(b, meta);
            sl_buf_put_bytes(b, stable && m->assignment ? SL_BYTES(m->assignment, m->assignment_len)
                                                        : SL_BYTES("", 0));
        }
    }
    return r->err ? r->err : COLL_API_DONE;
}
