/* A consumer-group member's state machine over blocking requests to its coordinator. */
#include "collector/cli/kc_member.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/*
 *   HeartbeatRequest v0-3:    group_id STRING, generation_id int32, member_id STRING,
 *                             group_instance_id NULLABLE_STRING (v3+)
 *   HeartbeatResponse v0-3:   throttle_time_ms int32 (v1+), error_code int16
 *   LeaveGroupRequest v0-1:   group_id STRING, member_id STRING
 *   LeaveGroupResponse v0-1:  throttle_time_ms int32 (v1+), error_code int16
 * (JoinGroup, SyncGroup and OffsetCommit are in kc_group.c.)
 */

#define JOIN_ATTEMPTS 30

int kc_member_init(struct kc_member *m, struct kc_client *cl, const char *group,
                   const char *const *topics, size_t n, const struct kc_member_opts *opts)
{
    memset(m, 0, sizeof(*m));
    m->cl = cl;
    m->opts = *opts;
    m->generation = -1;
    if (!(m->group = sl_strdup(group)) || !(m->member_id = sl_strdup("")))
        return -ENOMEM;
    if (n > 0 && !(m->topics.items = sl_calloc(n, sizeof(char *))))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(m->topics.items[i] = sl_strdup(topics[i])))
            return -ENOMEM;
        m->topics.len++;
    }
    return 0;
}

void kc_member_fini(struct kc_member *m)
{
    if (!m)
        return;
    SL_FREE(m->group);
    SL_FREE(m->member_id);
    SL_FREE(m->protocol);
    kc_strlist_fini(&m->topics);
    kc_tplist_fini(&m->assigned);
}

static void pause_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int set_str(char **dst, const char *s)
{
    char *n = sl_strdup(s);
    if (!n)
        return -ENOMEM;
    sl_free(*dst);
    *dst = n;
    return 0;
}

/* Forgets the coordinator after NOT_COORDINATOR or a network error. */
static void lose_coordinator(struct kc_member *m)
{
    if (m->coord)
        kc_client_drop(m->cl, m->coord->node_id);
    m->coord = NULL;
}

/* The leader's part: every member's subscription, the partition counts, the assignment. */
static int assign(struct kc_member *m, struct kc_join_res *j, enum kc_assignor a,
                  struct sl_err *err)
{
    struct kc_strlist all = {0};
    int rc = 0;
    for (size_t i = 0; i < j->nmembers && rc == 0; i++) {
        for (size_t k = 0; k < j->members[i].topics.len && rc == 0; k++) {
            const char *t = j->members[i].topics.items[k];
            bool seen = false;
            for (size_t q = 0; q < all.len && !seen; q++)
                seen = strcmp(all.items[q], t) == 0;
            if (!seen) {
                char **n = sl_realloc(all.items, (all.len + 1) * sizeof(*n));
                if (!n || !(n[all.len] = sl_strdup(t))) {
                    if (n)
                        all.items = n;
                    rc = sl_err_set(err, -ENOMEM, "out of memory");
                    break;
                }
                all.items = n;
                all.len++;
            }
        }
    }
    struct kc_meta meta = {0};
    struct kc_topic_parts *tp = NULL;
    if (rc == 0)
        rc = kc_client_metadata(m->cl, (const char *const *)all.items, all.len, false, &meta, err);
    if (rc == 0 && !(tp = sl_calloc(all.len ? all.len : 1, sizeof(*tp))))
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    size_t nt = 0;
    for (size_t i = 0; rc == 0 && i < all.len; i++) {
        const struct kc_meta_topic *t = kc_meta_find(&meta, all.items[i]);
        if (!t || t->error_code != KAFKA_E_NONE || t->nparts == 0) {
            SL_WARN("group", "group '%s': topic '%s' does not exist; nothing assigned from it",
                    m->group, all.items[i]);
            continue;
        }
        tp[nt++] = (struct kc_topic_parts){all.items[i], t->nparts};
    }
    if (rc == 0 && kc_assign(a, j->members, j->nmembers, tp, nt) != 0)
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    sl_free(tp);
    kc_meta_fini(&meta);
    kc_strlist_fini(&all);
    return rc;
}

/* One JoinGroup + SyncGroup. Returns 0 (assigned), 1 (try again at once), or an error. */
static int join_once(struct kc_member *m, struct sl_err *err)
{
    int rc;
    if (!m->coord && (rc = kc_find_coordinator(m->cl, m->group, &m->coord, err)) != 0)
        return rc;
    struct kc_conn *c = m->coord;
    int16_t v = kc_conn_version(c, KC_API_JOIN_GROUP, 0, 5, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf sub;
    sl_buf_init(&sub);
    kc_cproto_sub_encode(&sub, (const char *const *)m->topics.items, m->topics.len);
    kc_join_req(kc_conn_begin(c, KC_API_JOIN_GROUP, v), v, m->group, m->opts.session_ms,
                m->opts.rebalance_ms, m->member_id, m->opts.prefs, m->opts.nprefs,
                sl_buf_view(&sub, 0, sub.len));
    rc = sl_buf_error(&sub);
    sl_buf_fini(&sub);
    if (rc != 0)
        return sl_err_set(err, rc, "out of memory");
    /* The coordinator holds the answer until every member joined (up to the rebalance timeout). */
    struct sl_reader r;
    int64_t wait = m->cl->timeout_ms + m->opts.rebalance_ms;
    struct kc_join_res j = {0};
    if ((rc = kc_conn_send(c, m->cl->timeout_ms, err)) != 0 ||
        (rc = kc_conn_recv(c, wait, &r, err)) != 0) {
        lose_coordinator(m);
        return rc;
    }
    if ((rc = kc_join_parse(&r, v, &j, err)) != 0 || (rc = kc_conn_check(c, &r, err)) != 0)
        goto out;
    SL_DEBUG("group",
             "group '%s': JoinGroup v%d: %s, generation %d, member '%s', leader '%s', "
             "%zu members",
             m->group, v, kc_err_name(j.error_code), j.generation, j.member_id, j.leader,
             j.nmembers);
    switch (j.error_code) {
    case KAFKA_E_NONE:
        break;
    case KAFKA_E_MEMBER_ID_REQUIRED:
        /* v4+: the coordinator names us; join again with that id. */
        rc = set_str(&m->member_id, j.member_id) ? sl_err_set(err, -ENOMEM, "out of memory") : 1;
        goto out;
    case KAFKA_E_UNKNOWN_MEMBER_ID:
        rc = set_str(&m->member_id, "") ? sl_err_set(err, -ENOMEM, "out of memory") : 1;
        goto out;
    case KAFKA_E_NOT_COORDINATOR:
    case KAFKA_E_COORDINATOR_NOT_AVAILABLE:
    case KAFKA_E_COORDINATOR_LOAD_IN_PROGRESS:
        lose_coordinator(m);
        pause_ms(200);
        rc = 1;
        goto out;
    case KAFKA_E_REBALANCE_IN_PROGRESS:
        rc = 1;
        goto out;
    default:
        rc = kc_err_kafka(err, j.error_code, "joining group '%s'", m->group);
        if (rc == KC_EREJOIN)
            rc = KC_EKAFKA;
        goto out;
    }
    if (set_str(&m->member_id, j.member_id) != 0 || set_str(&m->protocol, j.protocol) != 0) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    m->generation = j.generation;
    m->leader = strcmp(j.leader, j.member_id) == 0;
    if (m->leader) {
        enum kc_assignor a;
        if (kc_assignor_parse(j.protocol, &a) != 0) {
            rc = sl_err_set(err, SL_EUNSUP,
                            "group '%s' chose assignor '%s', which this client "
                            "does not have",
                            m->group, j.protocol);
            goto out;
        }
        if ((rc = assign(m, &j, a, err)) != 0)
            goto out;
    }
    int16_t sv = kc_conn_version(c, KC_API_SYNC_GROUP, 0, 3, err);
    if (sv < 0) {
        rc = SL_EUNSUP;
        goto out;
    }
    kc_sync_req(kc_conn_begin(c, KC_API_SYNC_GROUP, sv), sv, m->group, m->generation, m->member_id,
                j.members, m->leader ? j.nmembers : 0);
    if ((rc = kc_conn_send(c, m->cl->timeout_ms, err)) != 0 ||
        (rc = kc_conn_recv(c, wait, &r, err)) != 0) {
        lose_coordinator(m);
        goto out;
    }
    int16_t code;
    kc_tplist_fini(&m->assigned);
    if ((rc = kc_sync_parse(&r, sv, &code, &m->assigned, err)) != 0 ||
        (rc = kc_conn_check(c, &r, err)) != 0)
        goto out;
    SL_DEBUG("group", "group '%s': SyncGroup v%d: %s, %zu partitions", m->group, sv,
             kc_err_name(code), m->assigned.len);
    if (code == KAFKA_E_NONE) {
        kc_tplist_sort(&m->assigned);
        m->last_heartbeat = kc_now_ms();
        rc = 0;
    } else if (code == KAFKA_E_UNKNOWN_MEMBER_ID) {
        rc = set_str(&m->member_id, "") ? sl_err_set(err, -ENOMEM, "out of memory") : 1;
    } else if (code == KAFKA_E_GROUP_AUTHORIZATION_FAILED ||
               code == KAFKA_E_INCONSISTENT_GROUP_PROTOCOL) {
        rc = kc_err_kafka(err, code, "syncing group '%s'", m->group);
    } else {
        /* Anything else ends this generation: join again, as librdkafka does. (Its own mock
         * coordinator answers INVALID_REQUEST to a follower whose SyncGroup arrives after the
         * leader's completed the generation.) */
        SL_INFO("group", "group '%s': SyncGroup answered %s; joining again", m->group,
                kc_err_name(code));
        if (code == KAFKA_E_NOT_COORDINATOR || code == KAFKA_E_COORDINATOR_NOT_AVAILABLE)
            lose_coordinator(m);
        rc = 1;
    }
out:
    kc_join_res_fini(&j);
    return rc;
}

int kc_member_join(struct kc_member *m, struct sl_err *err)
{
    m->generation = -1;
    for (int attempt = 0; attempt < JOIN_ATTEMPTS; attempt++) {
        int rc = join_once(m, err);
        if (rc <= 0 && rc != KC_EUNREACH)
            return rc;
        if (rc == KC_EUNREACH && attempt >= 2)
            return rc;
        if (rc == KC_EUNREACH)
            pause_ms(500);
    }
    return sl_err_set(err, KC_EKAFKA, "group '%s': no stable assignment after %d joins", m->group,
                      JOIN_ATTEMPTS);
}

/* Maps a coordinator's answer for heartbeat/commit to 0 / KC_EREJOIN / error. */
static int member_code(struct kc_member *m, int16_t code, const char *what, struct sl_err *err)
{
    if (code == KAFKA_E_NONE)
        return 0;
    int rc = kc_err_kafka(err, code, "%s for group '%s'", what, m->group);
    if (code == KAFKA_E_NOT_COORDINATOR || code == KAFKA_E_COORDINATOR_NOT_AVAILABLE)
        lose_coordinator(m);
    if (code == KAFKA_E_UNKNOWN_MEMBER_ID)
        set_str(&m->member_id, "");
    return rc;
}

int kc_member_heartbeat(struct kc_member *m, struct sl_err *err)
{
    if (kc_now_ms() - m->last_heartbeat < m->opts.heartbeat_ms)
        return 0;
    if (!m->coord)
        return sl_err_set(err, KC_EREJOIN, "group '%s': coordinator lost", m->group);
    struct kc_conn *c = m->coord;
    int16_t v = kc_conn_version(c, KC_API_HEARTBEAT, 0, 3, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf *b = kc_conn_begin(c, KC_API_HEARTBEAT, v);
    sl_buf_put_string(b, SL_BYTES_STR(m->group));     /* group_id */
    sl_buf_put_i32(b, m->generation);                 /* generation_id */
    sl_buf_put_string(b, SL_BYTES_STR(m->member_id)); /* member_id */
    if (v >= 3)
        sl_buf_put_string(b, SL_BYTES_NULL); /* group_instance_id */
    struct sl_reader r;
    int rc = kc_conn_call(c, m->cl->timeout_ms, &r, err);
    if (rc != 0) {
        lose_coordinator(m);
        return rc == -EINTR ? rc : KC_EREJOIN;
    }
    if (v >= 1)
        sl_reader_i32(&r); /* throttle_time_ms */
    int16_t code = sl_reader_i16(&r);
    if ((rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    m->last_heartbeat = kc_now_ms();
    return member_code(m, code, "heartbeat", err);
}

int kc_member_commit(struct kc_member *m, struct kc_tplist *offsets, struct sl_err *err)
{
    if (offsets->len == 0)
        return 0;
    if (!m->coord)
        return sl_err_set(err, KC_EREJOIN, "group '%s': coordinator lost", m->group);
    kc_tplist_sort(offsets);
    struct kc_conn *c = m->coord;
    int16_t v = kc_conn_version(c, KC_API_OFFSET_COMMIT, 2, 7, err);
    if (v < 0)
        return SL_EUNSUP;
    kc_commit_req(kc_conn_begin(c, KC_API_OFFSET_COMMIT, v), v, m->group, m->generation,
                  m->member_id, offsets);
    struct sl_reader r;
    int rc = kc_conn_call(c, m->cl->timeout_ms, &r, err);
    if (rc != 0) {
        lose_coordinator(m);
        return rc;
    }
    if ((rc = kc_commit_parse(&r, v, offsets, err)) != 0 || (rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    /* A commit proves we are alive as well as a heartbeat does. */
    for (size_t i = 0; i < offsets->len; i++)
        if ((rc = member_code(m, offsets->items[i].error_code, "commit", err)) != 0)
            return rc;
    return 0;
}

int kc_member_committed(struct kc_member *m, struct kc_tplist *out, struct sl_err *err)
{
    for (size_t i = 0; i < m->assigned.len; i++) {
        const struct kc_tp *tp = &m->assigned.items[i];
        if (kc_tplist_add(out, tp->topic, strlen(tp->topic), tp->partition, -1) != 0)
            return sl_err_set(err, -ENOMEM, "out of memory");
    }
    return kc_group_committed(m->cl, m->group, out, err);
}

int kc_member_leave(struct kc_member *m, struct sl_err *err)
{
    if (!m->coord || !m->member_id[0])
        return 0;
    struct kc_conn *c = m->coord;
    int16_t v = kc_conn_version(c, KC_API_LEAVE_GROUP, 0, 1, err);
    if (v < 0)
        return SL_EUNSUP;
    struct sl_buf *b = kc_conn_begin(c, KC_API_LEAVE_GROUP, v);
    sl_buf_put_string(b, SL_BYTES_STR(m->group));     /* group_id */
    sl_buf_put_string(b, SL_BYTES_STR(m->member_id)); /* member_id */
    struct sl_reader r;
    int rc = kc_conn_call(c, m->cl->timeout_ms, &r, err);
    if (rc != 0)
        return rc;
    if (v >= 1)
        sl_reader_i32(&r); /* throttle_time_ms */
    int16_t code = sl_reader_i16(&r);
    if ((rc = kc_conn_check(c, &r, err)) != 0)
        return rc;
    m->generation = -1;
    if (code != KAFKA_E_NONE && code != KAFKA_E_UNKNOWN_MEMBER_ID)
        return kc_err_kafka(err, code, "leaving group '%s'", m->group);
    return 0;
}
