/* Consumer groups on the wire: the group APIs' requests and answers, the "consumer" protocol's
 * subscription and assignment, and Kafka's range and roundrobin assignors. */
#include "collector/cli/kc_group.h"

#include "common/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 *   FindCoordinatorRequest v0-2:  key STRING, key_type int8 (v1+, 0: group)
 *   FindCoordinatorResponse:      throttle_time_ms int32 (v1+), error_code int16,
 *                                 error_message NULLABLE_STRING (v1+), node_id int32,
 *                                 host STRING, port int32
 *   JoinGroupRequest v0-5:        group_id STRING, session_timeout_ms int32,
 *                                 rebalance_timeout_ms int32 (v1+), member_id STRING,
 *                                 group_instance_id NULLABLE_STRING (v5+), protocol_type STRING,
 *                                 protocols ARRAY of [name STRING, metadata BYTES]
 *   JoinGroupResponse v0-5:       throttle_time_ms int32 (v2+), error_code int16,
 *                                 generation_id int32, protocol_name STRING, leader STRING,
 *                                 member_id STRING, members ARRAY of [member_id STRING,
 *                                 group_instance_id NULLABLE_STRING (v5+), metadata BYTES]
 *     v4+: a first join with member_id "" is answered MEMBER_ID_REQUIRED with the member_id
 *     to join again with.
 *   SyncGroupRequest v0-3:        group_id STRING, generation_id int32, member_id STRING,
 *                                 group_instance_id NULLABLE_STRING (v3+),
 *                                 assignments ARRAY of [member_id STRING, assignment BYTES]
 *   SyncGroupResponse v0-3:       throttle_time_ms int32 (v1+), error_code int16,
 *                                 assignment BYTES
 *   OffsetCommitRequest v2-7:     group_id STRING, generation_id int32, member_id STRING,
 *                                 group_instance_id NULLABLE_STRING (v7+),
 *                                 retention_time_ms int64 (v2-4),
 *                                 topics ARRAY of [name STRING, partitions ARRAY of
 *                                   [partition_index int32, committed_offset int64,
 *                                    committed_leader_epoch int32 (v6+),
 *                                    committed_metadata NULLABLE_STRING]]
 *   OffsetCommitResponse v2-7:    throttle_time_ms int32 (v3+), topics ARRAY of [name STRING,
 *                                 partitions ARRAY of [partition_index int32, error_code int16]]
 *   OffsetFetchRequest v1-5:      group_id STRING, topics ARRAY (nullable v2+: all) of
 *                                 [name STRING, partition_indexes ARRAY of int32]
 *   OffsetFetchResponse v1-5:     throttle_time_ms int32 (v3+), topics ARRAY of [name STRING,
 *                                 partitions ARRAY of [partition_index int32,
 *                                 committed_offset int64, committed_leader_epoch int32 (v5+),
 *                                 metadata NULLABLE_STRING, error_code int16]],
 *                                 error_code int16 (v2+)
 *   ListGroupsRequest v0-2:       (empty)
 *   ListGroupsResponse v0-2:      throttle_time_ms int32 (v1+), error_code int16,
 *                                 groups ARRAY of [group_id STRING, protocol_type STRING]
 *   DescribeGroupsRequest v0-2:   groups ARRAY of STRING
 *   DescribeGroupsResponse v0-2:  throttle_time_ms int32 (v1+), groups ARRAY of
 *                                 [error_code int16, group_id STRING, group_state STRING,
 *                                  protocol_type STRING, protocol_data STRING,
 *                                  members ARRAY of [member_id STRING, client_id STRING,
 *                                    client_host STRING, member_metadata BYTES,
 *                                    member_assignment BYTES]]
 *
 * The "consumer" protocol's metadata (inside JoinGroup's BYTES) and assignment (SyncGroup's):
 *   Subscription v0:  version int16, topics ARRAY of STRING, user_data NULLABLE_BYTES
 *                     (v1 adds owned_partitions, v2 generation_id, v3 rack_id: ignored here)
 *   Assignment v0:    version int16, assigned_partitions ARRAY of [topic STRING,
 *                     partitions ARRAY of int32], user_data NULLABLE_BYTES
 */

#define MAX_ITEMS 1000000

/* ---- Lists -------------------------------------------------------------------------------- */

int kc_tplist_add(struct kc_tplist *l, const char *topic, size_t topic_len, int32_t partition,
                  int64_t offset)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct kc_tp *n = sl_realloc(l->items, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        l->items = n;
        l->cap = cap;
    }
    char *t = sl_strndup(topic, topic_len);
    if (!t)
        return -ENOMEM;
    l->items[l->len++] =
        (struct kc_tp){.topic = t, .partition = partition, .offset = offset, .error_code = 0};
    return 0;
}

void kc_tplist_fini(struct kc_tplist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++)
        sl_free(l->items[i].topic);
    SL_FREE(l->items);
    l->len = l->cap = 0;
}

static int cmp_tp(const void *a, const void *b)
{
    const struct kc_tp *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

void kc_tplist_sort(struct kc_tplist *l)
{
    if (l->len > 1)
        qsort(l->items, l->len, sizeof(*l->items), cmp_tp);
}

struct kc_tp *kc_tplist_find(const struct kc_tplist *l, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i].partition == partition && strcmp(l->items[i].topic, topic) == 0)
            return &l->items[i];
    return NULL;
}

void kc_strlist_fini(struct kc_strlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++)
        sl_free(l->items[i]);
    SL_FREE(l->items);
    l->len = 0;
}

static int strlist_add(struct kc_strlist *l, struct sl_bytes s)
{
    char **n = sl_realloc(l->items, (l->len + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    l->items = n;
    if (!(l->items[l->len] = sl_strndup(s.p ? (const char *)s.p : "", s.len)))
        return -ENOMEM;
    l->len++;
    return 0;
}

static char *dup_bytes(struct sl_bytes s)
{
    return sl_strndup(s.p ? (const char *)s.p : "", s.len);
}

/* ---- Consumer protocol -------------------------------------------------------------------- */

void kc_cproto_sub_encode(struct sl_buf *b, const char *const *topics, size_t n)
{
    sl_buf_put_i16(b, 0);          /* version */
    sl_buf_put_i32(b, (int32_t)n); /* topics */
    for (size_t i = 0; i < n; i++)
        sl_buf_put_string(b, SL_BYTES_STR(topics[i]));
    sl_buf_put_bytes(b, SL_BYTES_NULL); /* user_data */
}

int kc_cproto_sub_decode(struct sl_bytes m, struct kc_strlist *topics, struct sl_err *err)
{
    struct sl_reader r;
    sl_reader_init(&r, m.p, m.len);
    int16_t version = sl_reader_i16(&r);
    if (!r.err && version < 0)
        sl_reader_fail(&r, SL_EPARSE, "subscription version");
    int32_t n = sl_reader_array(&r, MAX_ITEMS, 2);
    for (int32_t i = 0; i < n && !r.err; i++) {
        struct sl_bytes t = sl_reader_string(&r);
        if (!r.err && strlist_add(topics, t) != 0)
            return sl_err_set(err, -ENOMEM, "out of memory");
    }
    /* user_data and the fields of later versions follow; nothing here needs them. */
    return r.err ? sl_reader_describe(&r, err, "consumer subscription") : 0;
}

void kc_cproto_assign_encode(struct sl_buf *b, const struct kc_tplist *a)
{
    sl_buf_put_i16(b, 0);                /* version */
    size_t count_at = sl_buf_hole(b, 4); /* assigned_partitions */
    int32_t nt = 0;
    for (size_t i = 0; i < a->len;) {
        size_t j = i;
        while (j < a->len && strcmp(a->items[j].topic, a->items[i].topic) == 0)
            j++;
        sl_buf_put_string(b, SL_BYTES_STR(a->items[i].topic)); /* topic */
        sl_buf_put_i32(b, (int32_t)(j - i));                   /* partitions */
        for (size_t k = i; k < j; k++)
            sl_buf_put_i32(b, a->items[k].partition);
        nt++;
        i = j;
    }
    sl_buf_patch_i32(b, count_at, nt);
    sl_buf_put_bytes(b, SL_BYTES_NULL); /* user_data */
}

int kc_cproto_assign_decode(struct sl_bytes m, struct kc_tplist *out, struct sl_err *err)
{
    if (m.len == 0)
        return 0;
    struct sl_reader r;
    sl_reader_init(&r, m.p, m.len);
    int16_t version = sl_reader_i16(&r);
    if (!r.err && version < 0)
        sl_reader_fail(&r, SL_EPARSE, "assignment version");
    int32_t nt = sl_reader_array(&r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r.err; t++) {
        struct sl_bytes topic = sl_reader_string(&r);
        int32_t np = sl_reader_array(&r, MAX_ITEMS, 4);
        for (int32_t p = 0; p < np && !r.err; p++) {
            int32_t part = sl_reader_i32(&r);
            if (!r.err &&
                kc_tplist_add(out, topic.p ? (const char *)topic.p : "", topic.len, part, -1) != 0)
                return sl_err_set(err, -ENOMEM, "out of memory");
        }
    }
    return r.err ? sl_reader_describe(&r, err, "consumer assignment") : 0;
}

/* ---- Assignors ---------------------------------------------------------------------------- */

const char *kc_assignor_name(enum kc_assignor a)
{
    return a == KC_ASSIGN_ROUNDROBIN ? "roundrobin" : "range";
}

int kc_assignor_parse(const char *s, enum kc_assignor *out)
{
    if (strcmp(s, "range") == 0)
        *out = KC_ASSIGN_RANGE;
    else if (strcmp(s, "roundrobin") == 0)
        *out = KC_ASSIGN_ROUNDROBIN;
    else
        return -EINVAL;
    return 0;
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const struct kc_gmember *)a)->member_id,
                  ((const struct kc_gmember *)b)->member_id);
}

static bool subscribed(const struct kc_gmember *m, const char *topic)
{
    for (size_t i = 0; i < m->topics.len; i++)
        if (strcmp(m->topics.items[i], topic) == 0)
            return true;
    return false;
}

static int cmp_tparts(const void *a, const void *b)
{
    return strcmp(((const struct kc_topic_parts *)a)->topic,
                  ((const struct kc_topic_parts *)b)->topic);
}

int kc_assign(enum kc_assignor a, struct kc_gmember *m, size_t nm, const struct kc_topic_parts *t,
              size_t nt)
{
    if (nm > 1)
        qsort(m, nm, sizeof(*m), cmp_member);
    struct kc_topic_parts *ts = sl_calloc(nt ? nt : 1, sizeof(*ts));
    if (!ts)
        return -ENOMEM;
    memcpy(ts, t, nt * sizeof(*ts));
    if (nt > 1)
        qsort(ts, nt, sizeof(*ts), cmp_tparts);
    int rc = 0;
    size_t next = 0; /* roundrobin: the member after the last one given a partition */
    for (size_t i = 0; i < nt && rc == 0; i++) {
        const char *topic = ts[i].topic;
        size_t k = 0;
        for (size_t j = 0; j < nm; j++)
            k += subscribed(&m[j], topic);
        if (k == 0)
            continue;
        if (a == KC_ASSIGN_RANGE) {
            /* Consecutive ranges, the first (n % k) members one partition more. */
            int32_t per = ts[i].nparts / (int32_t)k, extra = ts[i].nparts % (int32_t)k;
            int32_t p = 0, idx = 0;
            for (size_t j = 0; j < nm && rc == 0; j++) {
                if (!subscribed(&m[j], topic))
                    continue;
                int32_t cnt = per + (idx++ < extra);
                for (int32_t q = 0; q < cnt && rc == 0; q++, p++)
                    rc = kc_tplist_add(&m[j].assigned, topic, strlen(topic), p, -1);
            }
        } else {
            /* Every topic-partition in order, dealt to the members in turn, skipping a member
             * not subscribed to the topic. */
            for (int32_t p = 0; p < ts[i].nparts && rc == 0; p++) {
                while (!subscribed(&m[next % nm], topic))
                    next++;
                rc = kc_tplist_add(&m[next % nm].assigned, topic, strlen(topic), p, -1);
                next++;
            }
        }
    }
    sl_free(ts);
    for (size_t j = 0; j < nm; j++)
        kc_tplist_sort(&m[j].assigned);
    return rc;
}

/* ---- FindCoordinator ---------------------------------------------------------------------- */

int kc_find_coordinator(struct kc_client *cl, const char *group, struct kc_conn **out,
                        struct sl_err *err)
{
    for (int attempt = 0;; attempt++) {
        struct kc_conn *c;
        int rc = kc_client_any(cl, &c, err);
        if (rc != 0)
            return rc;
        int16_t v = kc_conn_version(c, KC_API_FIND_COORDINATOR, 0, 2, err);
        if (v < 0)
            return SL_EUNSUP;
        struct sl_buf *b = kc_conn_begin(c, KC_API_FIND_COORDINATOR, v);
        sl_buf_put_string(b, SL_BYTES_STR(group)); /* key */
        if (v >= 1)
            sl_buf_put_i8(b, 0); /* key_type: group */
        struct sl_reader r;
        if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0)
            return rc;
        if (v >= 1)
            sl_reader_i32(&r); /* throttle_time_ms */
        int16_t code = sl_reader_i16(&r);
        struct sl_bytes msg = v >= 1 ? sl_reader_string(&r) : SL_BYTES_NULL;
        int32_t node = sl_reader_i32(&r);
        struct sl_bytes host = sl_reader_string(&r);
        int32_t port = sl_reader_i32(&r);
        if ((rc = kc_conn_check(c, &r, err)) != 0)
            return rc;
        if ((code == KAFKA_E_COORDINATOR_NOT_AVAILABLE ||
             code == KAFKA_E_COORDINATOR_LOAD_IN_PROGRESS) &&
            attempt < 20) {
            struct timespec ts = {.tv_nsec = 250 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (code != KAFKA_E_NONE)
            return kc_err_kafka(err, code, "finding the coordinator of group '%s'%s%.*s", group,
                                msg.p ? ": " : "", (int)SL_MIN(msg.len, 200),
                                msg.p ? (const char *)msg.p : "");
        char h[SL_CONF_HOST_MAX + 1];
        if (!host.p || host.len == 0 || host.len > SL_CONF_HOST_MAX || port < 1 || port > 65535)
            return sl_err_set(err, SL_EPARSE, "FindCoordinator answer: bad address");
        memcpy(h, host.p, host.len);
        h[host.len] = 0;
        return kc_client_node_at(cl, KC_COORD_NODE(node), h, (uint16_t)port, out, err);
    }
}

/* ---- JoinGroup / SyncGroup ---------------------------------------------------------------- */

void kc_join_res_fini(struct kc_join_res *j)
{
    if (!j)
        return;
    sl_free(j->protocol);
    sl_free(j->leader);
    sl_free(j->member_id);
    for (size_t i = 0; i < j->nmembers; i++) {
        sl_free(j->members[i].member_id);
        kc_strlist_fini(&j->members[i].topics);
        kc_tplist_fini(&j->members[i].assigned);
    }
    sl_free(j->members);
    memset(j, 0, sizeof(*j));
}

void kc_join_req(struct sl_buf *b, int16_t version, const char *group, int32_t session_ms,
                 int32_t rebalance_ms, const char *member_id, const enum kc_assignor *prefs,
                 size_t n, struct sl_bytes sub)
{
    sl_buf_put_string(b, SL_BYTES_STR(group)); /* group_id */
    sl_buf_put_i32(b, session_ms);             /* session_timeout_ms */
    if (version >= 1)
        sl_buf_put_i32(b, rebalance_ms);           /* rebalance_timeout_ms */
    sl_buf_put_string(b, SL_BYTES_STR(member_id)); /* member_id */
    if (version >= 5)
        sl_buf_put_string(b, SL_BYTES_NULL);        /* group_instance_id */
    sl_buf_put_string(b, SL_BYTES_STR("consumer")); /* protocol_type */
    sl_buf_put_i32(b, (int32_t)n);                  /* protocols */
    for (size_t i = 0; i < n; i++) {
        sl_buf_put_string(b, SL_BYTES_STR(kc_assignor_name(prefs[i]))); /* name */
        sl_buf_put_bytes(b, sub);                                       /* metadata */
    }
}

int kc_join_parse(struct sl_reader *r, int16_t version, struct kc_join_res *j, struct sl_err *err)
{
    if (version >= 2)
        sl_reader_i32(r); /* throttle_time_ms */
    j->error_code = sl_reader_i16(r);
    j->generation = sl_reader_i32(r);
    struct sl_bytes proto = sl_reader_string(r);
    struct sl_bytes leader = sl_reader_string(r);
    struct sl_bytes member = sl_reader_string(r);
    int32_t nm = sl_reader_array(r, MAX_ITEMS, 6);
    if (r->err)
        return sl_reader_describe(r, err, "JoinGroup answer");
    if (!(j->protocol = dup_bytes(proto)) || !(j->leader = dup_bytes(leader)) ||
        !(j->member_id = dup_bytes(member)))
        return sl_err_set(err, -ENOMEM, "out of memory");
    if (nm > 0 && !(j->members = sl_calloc((size_t)nm, sizeof(*j->members))))
        return sl_err_set(err, -ENOMEM, "out of memory");
    for (int32_t i = 0; i < nm && !r->err; i++) {
        struct sl_bytes id = sl_reader_string(r);
        if (version >= 5)
            sl_reader_string(r); /* group_instance_id */
        struct sl_bytes meta = sl_reader_bytes(r);
        if (r->err)
            break;
        struct kc_gmember *m = &j->members[j->nmembers++];
        if (!(m->member_id = dup_bytes(id)))
            return sl_err_set(err, -ENOMEM, "out of memory");
        int rc = kc_cproto_sub_decode(meta, &m->topics, err);
        if (rc != 0) {
            sl_err_prefix(err, "member '%s': ", m->member_id);
            return rc;
        }
    }
    return r->err ? sl_reader_describe(r, err, "JoinGroup answer") : 0;
}

void kc_sync_req(struct sl_buf *b, int16_t version, const char *group, int32_t generation,
                 const char *member_id, const struct kc_gmember *m, size_t nm)
{
    sl_buf_put_string(b, SL_BYTES_STR(group));     /* group_id */
    sl_buf_put_i32(b, generation);                 /* generation_id */
    sl_buf_put_string(b, SL_BYTES_STR(member_id)); /* member_id */
    if (version >= 3)
        sl_buf_put_string(b, SL_BYTES_NULL); /* group_instance_id */
    sl_buf_put_i32(b, (int32_t)nm);          /* assignments */
    for (size_t i = 0; i < nm; i++) {
        sl_buf_put_string(b, SL_BYTES_STR(m[i].member_id)); /* member_id */
        size_t len_at = sl_buf_hole(b, 4);                  /* assignment */
        size_t start = b->len;
        kc_cproto_assign_encode(b, &m[i].assigned);
        sl_buf_patch_i32(b, len_at, (int32_t)(b->len - start));
    }
}

int kc_sync_parse(struct sl_reader *r, int16_t version, int16_t *code, struct kc_tplist *assigned,
                  struct sl_err *err)
{
    if (version >= 1)
        sl_reader_i32(r); /* throttle_time_ms */
    *code = sl_reader_i16(r);
    struct sl_bytes a = sl_reader_bytes(r);
    if (r->err)
        return sl_reader_describe(r, err, "SyncGroup answer");
    if (*code != KAFKA_E_NONE)
        return 0;
    return kc_cproto_assign_decode(a, assigned, err);
}

/* ---- Offsets ------------------------------------------------------------------------------ */

/* Writes l's partitions grouped by topic (l sorted); with_offsets for OffsetCommit. */
static void put_topics(struct sl_buf *b, int16_t version, const struct kc_tplist *l,
                       bool with_offsets)
{
    size_t count_at = sl_buf_hole(b, 4);
    int32_t nt = 0;
    for (size_t i = 0; i < l->len;) {
        size_t j = i;
        while (j < l->len && strcmp(l->items[j].topic, l->items[i].topic) == 0)
            j++;
        sl_buf_put_string(b, SL_BYTES_STR(l->items[i].topic)); /* name */
        sl_buf_put_i32(b, (int32_t)(j - i));                   /* partitions */
        for (size_t k = i; k < j; k++) {
            sl_buf_put_i32(b, l->items[k].partition); /* partition_index */
            if (!with_offsets)
                continue;
            sl_buf_put_i64(b, l->items[k].offset); /* committed_offset */
            if (version >= 6)
                sl_buf_put_i32(b, -1);           /* committed_leader_epoch */
            sl_buf_put_string(b, SL_BYTES_NULL); /* committed_metadata */
        }
        nt++;
        i = j;
    }
    sl_buf_patch_i32(b, count_at, nt);
}

void kc_commit_req(struct sl_buf *b, int16_t version, const char *group, int32_t generation,
                   const char *member_id, const struct kc_tplist *l)
{
    sl_buf_put_string(b, SL_BYTES_STR(group));     /* group_id */
    sl_buf_put_i32(b, generation);                 /* generation_id */
    sl_buf_put_string(b, SL_BYTES_STR(member_id)); /* member_id */
    if (version >= 7)
        sl_buf_put_string(b, SL_BYTES_NULL); /* group_instance_id */
    if (version <= 4)
        sl_buf_put_i64(b, -1); /* retention_time_ms: the broker's */
    put_topics(b, version, l, true);
}

int kc_commit_parse(struct sl_reader *r, int16_t version, struct kc_tplist *l, struct sl_err *err)
{
    for (size_t i = 0; i < l->len; i++)
        l->items[i].error_code = KAFKA_E_UNKNOWN_SERVER_ERROR;
    if (version >= 3)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes name = sl_reader_string(r);
        int32_t np = sl_reader_array(r, MAX_ITEMS, 6);
        for (int32_t p = 0; p < np && !r->err; p++) {
            int32_t part = sl_reader_i32(r);
            int16_t code = sl_reader_i16(r);
            for (size_t i = 0; !r->err && i < l->len; i++)
                if (l->items[i].partition == part && sl_bytes_eq_str(name, l->items[i].topic))
                    l->items[i].error_code = code;
        }
    }
    return r->err ? sl_reader_describe(r, err, "OffsetCommit answer") : 0;
}

void kc_offset_fetch_req(struct sl_buf *b, int16_t version, const char *group,
                         const struct kc_tplist *l)
{
    sl_buf_put_string(b, SL_BYTES_STR(group)); /* group_id */
    if (!l)
        sl_buf_put_i32(b, -1); /* topics: null, every committed partition (v2+) */
    else
        put_topics(b, version, l, false);
}

int kc_offset_fetch_parse(struct sl_reader *r, int16_t version, struct kc_tplist *out,
                          int16_t *code, struct sl_err *err)
{
    *code = KAFKA_E_NONE;
    if (version >= 3)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes name = sl_reader_string(r);
        int32_t np = sl_reader_array(r, MAX_ITEMS, 16);
        for (int32_t p = 0; p < np && !r->err; p++) {
            int32_t part = sl_reader_i32(r);
            int64_t off = sl_reader_i64(r);
            if (version >= 5)
                sl_reader_i32(r); /* committed_leader_epoch */
            sl_reader_string(r);  /* metadata */
            int16_t e = sl_reader_i16(r);
            if (r->err)
                break;
            if (kc_tplist_add(out, name.p ? (const char *)name.p : "", name.len, part, off) != 0)
                return sl_err_set(err, -ENOMEM, "out of memory");
            out->items[out->len - 1].error_code = e;
        }
    }
    if (version >= 2)
        *code = sl_reader_i16(r); /* error_code */
    return r->err ? sl_reader_describe(r, err, "OffsetFetch answer") : 0;
}

int kc_group_commit(struct kc_client *cl, const char *group, int32_t generation,
                    const char *member_id, struct kc_tplist *l, struct sl_err *err)
{
    if (l->len == 0)
        return 0;
    kc_tplist_sort(l);
    struct kc_conn *c;
    int rc = kc_find_coordinator(cl, group, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_OFFSET_COMMIT, 2, 7, err);
    if (v < 0)
        return SL_EUNSUP;
    kc_commit_req(kc_conn_begin(c, KC_API_OFFSET_COMMIT, v), v, group, generation, member_id, l);
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0 ||
        (rc = kc_commit_parse(&r, v, l, err)) != 0 || (rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i].error_code != KAFKA_E_NONE)
            return kc_err_kafka(err, l->items[i].error_code, "committing %s-%d for group '%s'",
                                l->items[i].topic, l->items[i].partition, group);
    return 0;
}

/* OffsetFetch of l's partitions (or all, l NULL) into out. */
static int offset_fetch(struct kc_client *cl, const char *group, const struct kc_tplist *l,
                        struct kc_tplist *out, struct sl_err *err)
{
    struct kc_conn *c;
    int rc = kc_find_coordinator(cl, group, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_OFFSET_FETCH, l ? 1 : 2, 5, err);
    if (v < 0)
        return SL_EUNSUP;
    kc_offset_fetch_req(kc_conn_begin(c, KC_API_OFFSET_FETCH, v), v, group, l);
    struct sl_reader r;
    int16_t code;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0 ||
        (rc = kc_offset_fetch_parse(&r, v, out, &code, err)) != 0 ||
        (rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    if (code != KAFKA_E_NONE)
        return kc_err_kafka(err, code, "committed offsets of group '%s'", group);
    return 0;
}

int kc_group_committed(struct kc_client *cl, const char *group, struct kc_tplist *l,
                       struct sl_err *err)
{
    if (l->len == 0)
        return 0;
    kc_tplist_sort(l);
    struct kc_tplist got = {0};
    int rc = offset_fetch(cl, group, l, &got, err);
    for (size_t i = 0; rc == 0 && i < l->len; i++) {
        struct kc_tp *g = kc_tplist_find(&got, l->items[i].topic, l->items[i].partition);
        l->items[i].offset = g ? g->offset : -1;
        l->items[i].error_code = g ? g->error_code : KAFKA_E_NONE;
        if (g && g->error_code != KAFKA_E_NONE &&
            g->error_code != KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION)
            rc = kc_err_kafka(err, g->error_code, "committed offset of %s-%d", g->topic,
                              g->partition);
    }
    kc_tplist_fini(&got);
    return rc;
}

int kc_group_committed_all(struct kc_client *cl, const char *group, struct kc_tplist *out,
                           struct sl_err *err)
{
    return offset_fetch(cl, group, NULL, out, err);
}

/* ---- ListGroups / DescribeGroups ---------------------------------------------------------- */

void kc_group_infos_free(struct kc_group_info *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sl_free(g[i].group_id);
        sl_free(g[i].protocol_type);
    }
    sl_free(g);
}

int kc_list_groups_parse(struct sl_reader *r, int16_t version, struct kc_group_info **out,
                         size_t *n, struct sl_err *err)
{
    if (version >= 1)
        sl_reader_i32(r); /* throttle_time_ms */
    int16_t code = sl_reader_i16(r);
    int32_t ng = sl_reader_array(r, MAX_ITEMS, 4);
    for (int32_t i = 0; i < ng && !r->err; i++) {
        struct sl_bytes id = sl_reader_string(r);
        struct sl_bytes type = sl_reader_string(r);
        if (r->err)
            break;
        bool dup = false;
        for (size_t k = 0; k < *n && !dup; k++)
            dup = sl_bytes_eq_str(id, (*out)[k].group_id);
        if (dup)
            continue;
        struct kc_group_info *g = sl_realloc(*out, (*n + 1) * sizeof(*g));
        if (!g)
            return sl_err_set(err, -ENOMEM, "out of memory");
        *out = g;
        g[*n].group_id = dup_bytes(id);
        g[*n].protocol_type = dup_bytes(type);
        (*n)++;
        if (!g[*n - 1].group_id || !g[*n - 1].protocol_type)
            return sl_err_set(err, -ENOMEM, "out of memory");
    }
    if (r->err)
        return sl_reader_describe(r, err, "ListGroups answer");
    if (code != KAFKA_E_NONE)
        return kc_err_kafka(err, code, "ListGroups");
    return 0;
}

int kc_list_groups(struct kc_client *cl, struct kc_group_info **out, size_t *n, struct sl_err *err)
{
    struct kc_meta m = {0};
    int rc = kc_client_metadata(cl, NULL, 0, false, &m, err);
    for (size_t i = 0; rc == 0 && i < m.nbrokers; i++) {
        struct kc_conn *c;
        if ((rc = kc_client_node(cl, m.brokers[i].node_id, &c, err)) != 0)
            break;
        int16_t v = kc_conn_version(c, KC_API_LIST_GROUPS, 0, 2, err);
        if (v < 0) {
            rc = SL_EUNSUP;
            break;
        }
        kc_conn_begin(c, KC_API_LIST_GROUPS, v);
        struct sl_reader r;
        if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0 ||
            (rc = kc_list_groups_parse(&r, v, out, n, err)) != 0)
            break;
        rc = kc_conn_check(c, &r, err);
    }
    kc_meta_fini(&m);
    return rc;
}

void kc_group_desc_fini(struct kc_group_desc *d)
{
    if (!d)
        return;
    sl_free(d->group_id);
    sl_free(d->state);
    sl_free(d->protocol_type);
    sl_free(d->protocol);
    for (size_t i = 0; i < d->nmembers; i++) {
        sl_free(d->members[i].member_id);
        sl_free(d->members[i].client_id);
        sl_free(d->members[i].client_host);
        kc_tplist_fini(&d->members[i].assigned);
    }
    sl_free(d->members);
    memset(d, 0, sizeof(*d));
}

int kc_describe_groups_parse(struct sl_reader *r, int16_t version, struct kc_group_desc *d,
                             struct sl_err *err)
{
    if (version >= 1)
        sl_reader_i32(r); /* throttle_time_ms */
    int32_t ng = sl_reader_array(r, MAX_ITEMS, 18);
    if (!r->err && ng != 1)
        return sl_err_set(err, SL_EPARSE, "DescribeGroups answer: %d groups for 1 asked", ng);
    d->error_code = sl_reader_i16(r);
    struct sl_bytes id = sl_reader_string(r);
    struct sl_bytes state = sl_reader_string(r);
    struct sl_bytes type = sl_reader_string(r);
    struct sl_bytes proto = sl_reader_string(r);
    int32_t nm = sl_reader_array(r, MAX_ITEMS, 14);
    if (r->err)
        return sl_reader_describe(r, err, "DescribeGroups answer");
    if (!(d->group_id = dup_bytes(id)) || !(d->state = dup_bytes(state)) ||
        !(d->protocol_type = dup_bytes(type)) || !(d->protocol = dup_bytes(proto)))
        return sl_err_set(err, -ENOMEM, "out of memory");
    if (nm > 0 && !(d->members = sl_calloc((size_t)nm, sizeof(*d->members))))
        return sl_err_set(err, -ENOMEM, "out of memory");
    bool consumer = strcmp(d->protocol_type, "consumer") == 0;
    for (int32_t i = 0; i < nm && !r->err; i++) {
        struct sl_bytes mid = sl_reader_string(r);
        struct sl_bytes cid = sl_reader_string(r);
        struct sl_bytes host = sl_reader_string(r);
        sl_reader_bytes(r); /* member_metadata */
        struct sl_bytes assign = sl_reader_bytes(r);
        if (r->err)
            break;
        struct kc_dmember *m = &d->members[d->nmembers++];
        if (!(m->member_id = dup_bytes(mid)) || !(m->client_id = dup_bytes(cid)) ||
            !(m->client_host = dup_bytes(host)))
            return sl_err_set(err, -ENOMEM, "out of memory");
        if (consumer) {
            int rc = kc_cproto_assign_decode(assign, &m->assigned, err);
            if (rc != 0)
                return rc;
            kc_tplist_sort(&m->assigned);
        }
    }
    return r->err ? sl_reader_describe(r, err, "DescribeGroups answer") : 0;
}

int kc_describe_group(struct kc_client *cl, const char *group, struct kc_group_desc *d,
                      struct sl_err *err)
{
    struct kc_conn *c;
    int rc = kc_find_coordinator(cl, group, &c, err);
    if (rc != 0)
        return rc;
    int16_t v = kc_conn_version(c, KC_API_DESCRIBE_GROUPS, 0, 2, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf *b = kc_conn_begin(c, KC_API_DESCRIBE_GROUPS, v);
    sl_buf_put_i32(b, 1); /* groups */
    sl_buf_put_string(b, SL_BYTES_STR(group));
    struct sl_reader r;
    if ((rc = kc_conn_call(c, cl->timeout_ms, &r, err)) != 0 ||
        (rc = kc_describe_groups_parse(&r, v, d, err)) != 0)
        return rc;
    return kc_conn_check(c, &r, err);
}
