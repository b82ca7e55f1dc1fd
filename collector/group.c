/* The consumer-group state machine (see group.h for the diagram): joins, syncs, heartbeats,
 * leaves and timeouts, as Kafka's GroupCoordinator answers them. */
#include "collector/group.h"

#include "common/kafka_err.h"
#include "common/log.h"
#include "common/mem.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Kafka's limit on group ids is none; ours keeps names printable in logs and metrics. */
#define GROUP_NAME_MAX 255
#define MEMBER_ID_MAX  1024

static const char *const state_names[] = {
    [COLL_GROUP_EMPTY] = "Empty",
    [COLL_GROUP_PREPARING] = "PreparingRebalance",
    [COLL_GROUP_COMPLETING] = "CompletingRebalance",
    [COLL_GROUP_STABLE] = "Stable",
    [COLL_GROUP_DEAD] = "Dead",
};

const char *coll_group_state_name(enum coll_group_state s)
{
    return (unsigned)s <= COLL_GROUP_DEAD ? state_names[s] : "Unknown";
}

static int64_t mono_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now(struct coll_groups *gs)
{
    return gs->now_ms(gs->clock_arg);
}

static bool bytes_eq(struct sl_bytes b, const char *s)
{
    return s && b.p && b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

static char *bytes_dup(struct sl_bytes b)
{
    return sl_strndup(b.p ? (const char *)b.p : "", b.p ? b.len : 0);
}

void coll_groups_init(struct coll_groups *gs, const struct coll_groups_conf *conf,
                      int64_t (*now_ms)(void *arg), void *clock_arg)
{
    memset(gs, 0, sizeof(*gs));
    gs->conf = *conf;
    gs->now_ms = now_ms ? now_ms : mono_ms;
    gs->clock_arg = clock_arg;
}

/* ---- members --------------------------------------------------------------------------- */

static void protocols_free(struct coll_gproto *ps, size_t n)
{
    for (size_t i = 0; ps && i < n; i++) {
        sl_free(ps[i].name);
        sl_free(ps[i].metadata);
    }
    sl_free(ps);
}

/* Copy of a protocol list; NULL on -ENOMEM. */
static struct coll_gproto *protocols_dup(const struct coll_join_protocol *ps, size_t n)
{
    struct coll_gproto *out = sl_calloc(n ? n : 1, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i].name = bytes_dup(ps[i].name);
        out[i].metadata = sl_malloc(ps[i].metadata.len ? ps[i].metadata.len : 1);
        out[i].metadata_len = ps[i].metadata.len;
        if (!out[i].name || !out[i].metadata) {
            protocols_free(out, i + 1);
            return NULL;
        }
        if (ps[i].metadata.len)
            memcpy(out[i].metadata, ps[i].metadata.p, ps[i].metadata.len);
    }
    return out;
}

static bool protocols_same(const struct coll_gproto *a, size_t na,
                           const struct coll_join_protocol *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!bytes_eq(b[i].name, a[i].name) ||
            !sl_bytes_eq(SL_BYTES(a[i].metadata, a[i].metadata_len), b[i].metadata))
            return false;
    return true;
}

static bool member_supports(const struct coll_gmember *m, const char *proto)
{
    for (size_t i = 0; i < m->nprotocols; i++)
        if (strcmp(m->protocols[i].name, proto) == 0)
            return true;
    return false;
}

/* The metadata m offered for proto (empty when it offered none). */
static struct sl_bytes member_metadata(const struct coll_gmember *m, const char *proto)
{
    for (size_t i = 0; i < m->nprotocols; i++)
        if (proto && strcmp(m->protocols[i].name, proto) == 0)
            return SL_BYTES(m->protocols[i].metadata, m->protocols[i].metadata_len);
    return SL_BYTES("", 0);
}

static void member_free(struct coll_gmember *m)
{
    if (!m)
        return;
    sl_free(m->id);
    sl_free(m->instance_id);
    sl_free(m->client_id);
    sl_free(m->client_host);
    protocols_free(m->protocols, m->nprotocols);
    sl_free(m->assignment);
    sl_free(m);
}

struct coll_gmember *coll_group_member(struct coll_group *g, struct sl_bytes id)
{
    for (struct coll_gmember *m = g->members; m; m = m->next)
        if (bytes_eq(id, m->id))
            return m;
    return NULL;
}

/* Takes a waiter off its member (its callback is the caller's to run). */
static struct coll_group_waiter *unpark(struct coll_group_waiter **slot)
{
    struct coll_group_waiter *w = *slot;
    if (w) {
        *slot = NULL;
        w->slot = NULL;
    }
    return w;
}

static void park(struct coll_group_waiter **slot, struct coll_group_waiter *w)
{
    *slot = w;
    w->slot = slot;
}

void coll_group_waiter_cancel(struct coll_group_waiter *w)
{
    if (w && w->slot)
        unpark(w->slot);
}

static void answer_join_error(struct coll_group_waiter *w, int16_t error, const char *member_id)
{
    struct coll_join_result res = {.error = error,
                                   .generation = -1,
                                   .protocol = "",
                                   .leader = "",
                                   .member_id = member_id ? member_id : ""};
    w->on_join(w, &res);
}

/* ---- groups ---------------------------------------------------------------------------- */

struct coll_group *coll_groups_find(struct coll_groups *gs, struct sl_bytes name)
{
    for (struct coll_group *g = gs->groups; g; g = g->next)
        if (bytes_eq(name, g->name))
            return g;
    return NULL;
}

static bool name_ok(struct sl_bytes name)
{
    if (!name.p || name.len == 0 || name.len > GROUP_NAME_MAX)
        return false;
    for (size_t i = 0; i < name.len; i++)
        if (name.p[i] < 0x20 || name.p[i] == 0x7f)
            return false;
    return true;
}

struct coll_group *coll_groups_ensure(struct coll_groups *gs, struct sl_bytes name)
{
    struct coll_group *g = coll_groups_find(gs, name);
    if (g || !name_ok(name))
        return g;
    g = sl_calloc(1, sizeof(*g));
    if (!g || !(g->name = bytes_dup(name))) {
        sl_free(g);
        return NULL;
    }
    g->state = COLL_GROUP_EMPTY;
    g->empty_since_ms = now(gs);
    g->next = gs->groups;
    gs->groups = g;
    gs->ngroups++;
    return g;
}

static void group_free(struct coll_group *g)
{
    while (g->members) {
        struct coll_gmember *m = g->members;
        g->members = m->next;
        if (m->join_w)
            unpark(&m->join_w);
        if (m->sync_w)
            unpark(&m->sync_w);
        member_free(m);
    }
    while (g->pending) {
        struct coll_gpending *p = g->pending;
        g->pending = p->next;
        sl_free(p->id);
        sl_free(p);
    }
    sl_free(g->name);
    sl_free(g->protocol_type);
    sl_free(g->protocol);
    sl_free(g->leader);
    sl_free(g);
}

void coll_groups_fini(struct coll_groups *gs)
{
    while (gs->groups) {
        struct coll_group *g = gs->groups;
        gs->groups = g->next;
        group_free(g);
    }
    gs->ngroups = 0;
}

int16_t coll_groups_delete(struct coll_groups *gs, struct sl_bytes name)
{
    struct coll_group **pp = &gs->groups;
    while (*pp && !bytes_eq(name, (*pp)->name))
        pp = &(*pp)->next;
    if (!*pp)
        return KAFKA_E_GROUP_ID_NOT_FOUND;
    struct coll_group *g = *pp;
    if (g->nmembers || g->state != COLL_GROUP_EMPTY)
        return KAFKA_E_NON_EMPTY_GROUP;
    *pp = g->next;
    gs->ngroups--;
    group_free(g);
    return KAFKA_E_NONE;
}

/* ---- rebalancing ----------------------------------------------------------------------- */

static int32_t max_rebalance_ms(const struct coll_group *g)
{
    int32_t t = 0;
    for (const struct coll_gmember *m = g->members; m; m = m->next)
        t = SL_MAX(t, m->rebalance_ms);
    return t;
}

/* True when every member of g except `except` offers proto. */
static bool all_support(const struct coll_group *g, const struct coll_gmember *except,
                        const char *proto)
{
    for (const struct coll_gmember *m = g->members; m; m = m->next)
        if (m != except && !member_supports(m, proto))
            return false;
    return true;
}

/* Fills g->common: the first member's protocols that every member offers, in its order.
 * O(members x protocols^2), run once after membership changed. */
static void common_compute(struct coll_group *g)
{
    if (g->common_valid)
        return;
    g->ncommon = 0;
    const struct coll_gmember *first = g->members;
    for (size_t c = 0; first && c < first->nprotocols && c < COLL_GROUP_MAX_PROTOCOLS; c++)
        if (all_support(g, first, first->protocols[c].name))
            g->common[g->ncommon++] = first->protocols[c].name;
    g->common_valid = true;
}

static int common_index(const struct coll_group *g, const char *proto)
{
    for (size_t i = 0; i < g->ncommon; i++)
        if (strcmp(g->common[i], proto) == 0)
            return (int)i;
    return -1;
}

/*
 * The common protocol most members prefer (Kafka's selectProtocol: each member votes for its
 * first protocol that everyone offers; ties go to the first member's preference). NULL when
 * none is common, which joins refuse before it can happen.
 */
static const char *select_protocol(struct coll_group *g)
{
    common_compute(g);
    size_t votes[COLL_GROUP_MAX_PROTOCOLS] = {0};
    for (const struct coll_gmember *m = g->members; m; m = m->next) {
        for (size_t i = 0; i < m->nprotocols; i++) {
            int k = common_index(g, m->protocols[i].name);
            if (k >= 0) {
                votes[k]++;
                break;
            }
        }
    }
    size_t best = 0;
    for (size_t i = 1; i < g->ncommon; i++)
        if (votes[i] > votes[best])
            best = i;
    return g->ncommon ? g->common[best] : NULL;
}

/* Would a member offering ps fit with the group's other members? A new member (except NULL)
 * is checked against the cached common set; a member changing its list against the others. */
static bool protocols_fit(struct coll_group *g, const struct coll_gmember *except,
                          const struct coll_join_protocol *ps, size_t n)
{
    char name[256];
    if (!except)
        common_compute(g);
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].name.p || ps[i].name.len >= sizeof(name))
            continue;
        memcpy(name, ps[i].name.p, ps[i].name.len);
        name[ps[i].name.len] = 0;
        if (except ? all_support(g, except, name) : common_index(g, name) >= 0)
            return true;
    }
    return false;
}

static void remove_member(struct coll_groups *gs, struct coll_group *g, struct coll_gmember *m);

static void group_log(const struct coll_group *g, const char *what)
{
    SL_INFO("group", "'%s' %s: generation %d, %zu member%s, state %s", g->name, what, g->generation,
            g->nmembers, g->nmembers == 1 ? "" : "s", coll_group_state_name(g->state));
}

/* Answers parked syncs with error (a new rebalance began or the group emptied). */
static void fail_syncs(struct coll_group *g, int16_t error)
{
    for (struct coll_gmember *m = g->members; m; m = m->next) {
        struct coll_group_waiter *w = unpark(&m->sync_w);
        if (w)
            w->on_sync(w, error, SL_BYTES_NULL);
    }
}

static void prepare_rebalance(struct coll_groups *gs, struct coll_group *g, const char *why)
{
    int64_t t = now(gs);
    if (g->state == COLL_GROUP_COMPLETING)
        fail_syncs(g, KAFKA_E_REBALANCE_IN_PROGRESS);
    g->initial_join = g->state == COLL_GROUP_EMPTY;
    g->state = COLL_GROUP_PREPARING;
    g->rebalance_started_ms = t;
    int64_t rt = max_rebalance_ms(g);
    if (g->initial_join)
        g->rebalance_deadline_ms = t + SL_MIN(gs->conf.initial_rebalance_delay_ms, rt);
    else
        g->rebalance_deadline_ms = t + rt;
    SL_INFO("group", "'%s' rebalancing (generation %d): %s", g->name, g->generation, why);
}

/* Completes PreparingRebalance: the next generation with the members that rejoined. */
static void complete_join(struct coll_groups *gs, struct coll_group *g)
{
    int64_t t = now(gs);
    /* Members that did not rejoin in time are out (Kafka: removed at the deadline). */
    for (struct coll_gmember *m = g->members, *next; m; m = next) {
        next = m->next;
        if (!m->join_w) {
            SL_INFO("group", "'%s': member %s did not rejoin in time; removed", g->name, m->id);
            remove_member(gs, g, m);
        }
    }
    g->generation++;
    SL_FREE(g->protocol);
    for (struct coll_gmember *m = g->members; m; m = m->next) {
        m->last_seen_ms = t;
        SL_FREE(m->assignment);
        m->assignment_len = 0;
    }
    if (!g->members) {
        g->state = COLL_GROUP_EMPTY;
        g->empty_since_ms = t;
        SL_FREE(g->leader);
        group_log(g, "is empty");
        return;
    }
    const char *proto = select_protocol(g);
    g->protocol = sl_strdup(proto ? proto : "");
    if (!g->leader || !coll_group_member(g, SL_BYTES_STR(g->leader))) {
        sl_free(g->leader);
        g->leader = sl_strdup(g->members->id);
    }
    struct coll_join_member *list = sl_calloc(g->nmembers, sizeof(*list));
    if (!g->protocol || !g->leader || !list) {
        /* Out of memory: everyone retries their join. */
        sl_free(list);
        for (struct coll_gmember *m = g->members; m; m = m->next) {
            struct coll_group_waiter *w = unpark(&m->join_w);
            if (w)
                answer_join_error(w, KAFKA_E_UNKNOWN_SERVER_ERROR, m->id);
        }
        prepare_rebalance(gs, g, "out of memory completing the join");
        return;
    }
    size_t n = 0;
    for (struct coll_gmember *m = g->members; m; m = m->next, n++) {
        list[n].member_id = m->id;
        list[n].instance_id = m->instance_id;
        list[n].metadata = member_metadata(m, g->protocol);
    }
    g->state = COLL_GROUP_COMPLETING;
    group_log(g, "joined");
    /* Answer every parked join. A callback may close other connections, which cancels their
     * waiters (unparks them) but never removes members, so walking the list stays safe. */
    for (struct coll_gmember *m = g->members; m; m = m->next) {
        struct coll_group_waiter *w = unpark(&m->join_w);
        if (!w)
            continue;
        bool leader = strcmp(m->id, g->leader) == 0;
        struct coll_join_result res = {.error = KAFKA_E_NONE,
                                       .generation = g->generation,
                                       .protocol = g->protocol,
                                       .leader = g->leader,
                                       .member_id = m->id,
                                       .members = leader ? list : NULL,
                                       .nmembers = leader ? n : 0};
        w->on_join(w, &res);
    }
    sl_free(list);
}

/* In PreparingRebalance (not the initial delay): complete once every member rejoined. */
static void maybe_complete_join(struct coll_groups *gs, struct coll_group *g)
{
    if (g->state != COLL_GROUP_PREPARING)
        return;
    if (g->initial_join) {
        if (g->rebalance_deadline_ms <= now(gs))
            complete_join(gs, g);
        return;
    }
    /* Kafka's hasAllMembersJoined: minted ids still on their way back count too. */
    if (g->pending)
        return;
    for (struct coll_gmember *m = g->members; m; m = m->next)
        if (!m->join_w)
            return;
    complete_join(gs, g);
}

/* Unlinks and frees m; the caller decides what happens to the group. Parked answers get
 * UNKNOWN_MEMBER_ID. */
static void remove_member(struct coll_groups *gs, struct coll_group *g, struct coll_gmember *m)
{
    (void)gs;
    struct coll_gmember **pp = &g->members;
    while (*pp && *pp != m)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = m->next;
    g->nmembers--;
    g->common_valid = false;
    struct coll_group_waiter *w = unpark(&m->join_w);
    if (w)
        answer_join_error(w, KAFKA_E_UNKNOWN_MEMBER_ID, m->id);
    w = unpark(&m->sync_w);
    if (w)
        w->on_sync(w, KAFKA_E_UNKNOWN_MEMBER_ID, SL_BYTES_NULL);
    if (g->leader && strcmp(g->leader, m->id) == 0)
        SL_FREE(g->leader);
    member_free(m);
}

/* A member left or expired: the others rebalance. */
static void member_gone(struct coll_groups *gs, struct coll_group *g, struct coll_gmember *m,
                        const char *why)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "member %.100s %s", m->id, why);
    remove_member(gs, g, m);
    switch (g->state) {
    case COLL_GROUP_STABLE:
    case COLL_GROUP_COMPLETING:
        prepare_rebalance(gs, g, msg);
        maybe_complete_join(gs, g);
        break;
    case COLL_GROUP_PREPARING:
        SL_INFO("group", "'%s': %s", g->name, msg);
        if (!g->members)
            g->initial_join = false; /* nobody to wait for */
        maybe_complete_join(gs, g);
        break;
    default:
        break;
    }
}

/* ---- the requests ---------------------------------------------------------------------- */

static struct coll_gpending *pending_find(struct coll_group *g, struct sl_bytes id)
{
    for (struct coll_gpending *p = g->pending; p; p = p->next)
        if (bytes_eq(id, p->id))
            return p;
    return NULL;
}

static void pending_remove(struct coll_group *g, struct coll_gpending *p)
{
    struct coll_gpending **pp = &g->pending;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    sl_free(p->id);
    sl_free(p);
}

/* A fresh member id: the client id, a dash and something unique, as Kafka's look. */
static char *mint_member_id(struct coll_groups *gs, struct sl_bytes client_id)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t n = ++gs->minted;
    char buf[160];
    int len = snprintf(
        buf, sizeof(buf), "%.*s-%08llx-%04llx-%012llx",
        (int)SL_MIN(client_id.p ? client_id.len : 0, 100),
        client_id.p ? (const char *)client_id.p : "", (unsigned long long)(ts.tv_sec & 0xffffffff),
        (unsigned long long)(ts.tv_nsec & 0xffff), (unsigned long long)(n & 0xffffffffffffULL));
    /* Client ids are free text; keep ids printable. */
    for (int i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = '_';
    return sl_strdup(buf);
}

static struct coll_gmember *member_new(struct coll_groups *gs, const struct coll_join_req *jr,
                                       const char *id)
{
    struct coll_gmember *m = sl_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->id = sl_strdup(id);
    m->instance_id = jr->instance_id.p ? bytes_dup(jr->instance_id) : NULL;
    m->client_id = bytes_dup(jr->client_id);
    m->client_host = bytes_dup(jr->client_host);
    m->protocols = protocols_dup(jr->protocols, jr->nprotocols);
    m->nprotocols = jr->nprotocols;
    if (!m->id || (jr->instance_id.p && !m->instance_id) || !m->client_id || !m->client_host ||
        !m->protocols) {
        if (!m->protocols)
            m->nprotocols = 0;
        member_free(m);
        return NULL;
    }
    m->session_ms = jr->session_ms;
    m->rebalance_ms = jr->rebalance_ms;
    m->last_seen_ms = now(gs);
    return m;
}

/* Appends m at the end (join order decides the default leader). The common protocol set is
 * narrowed in place, so a join storm costs O(protocols^2) per join, not a rescan. */
static void member_add(struct coll_group *g, struct coll_gmember *m)
{
    bool narrow = g->common_valid && g->members;
    struct coll_gmember **pp = &g->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    g->nmembers++;
    if (!narrow) {
        g->common_valid = false;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < g->ncommon; i++)
        if (member_supports(m, g->common[i]))
            g->common[n++] = g->common[i];
    g->ncommon = n;
}

static struct coll_gmember *member_by_instance(struct coll_group *g, struct sl_bytes instance)
{
    if (!instance.p || instance.len == 0)
        return NULL;
    for (struct coll_gmember *m = g->members; m; m = m->next)
        if (bytes_eq(instance, m->instance_id))
            return m;
    return NULL;
}

/* FENCED_INSTANCE_ID when instance names a static member that member_id no longer is. */
static int16_t fenced(struct coll_group *g, struct sl_bytes member_id, struct sl_bytes instance)
{
    struct coll_gmember *o = member_by_instance(g, instance);
    return o && !bytes_eq(member_id, o->id) ? KAFKA_E_FENCED_INSTANCE_ID : KAFKA_E_NONE;
}

/* A known member's JoinGroup, by state. */
static int16_t join_known(struct coll_groups *gs, struct coll_group *g, struct coll_gmember *m,
                          const struct coll_join_req *jr, struct coll_group_waiter *w)
{
    m->last_seen_ms = now(gs);
    bool same = protocols_same(m->protocols, m->nprotocols, jr->protocols, jr->nprotocols);
    if (!same) {
        struct coll_gproto *ps = protocols_dup(jr->protocols, jr->nprotocols);
        if (!ps)
            return KAFKA_E_UNKNOWN_SERVER_ERROR;
        protocols_free(m->protocols, m->nprotocols);
        m->protocols = ps;
        m->nprotocols = jr->nprotocols;
        g->common_valid = false;
    }
    m->session_ms = jr->session_ms;
    m->rebalance_ms = jr->rebalance_ms;
    switch (g->state) {
    case COLL_GROUP_PREPARING: {
        struct coll_group_waiter *old = unpark(&m->join_w);
        if (old) /* a retried join replaces the older one; the old one just retries */
            answer_join_error(old, KAFKA_E_REBALANCE_IN_PROGRESS, m->id);
        park(&m->join_w, w);
        maybe_complete_join(gs, g);
        return KAFKA_E_NONE;
    }
    case COLL_GROUP_COMPLETING:
    case COLL_GROUP_STABLE: {
        bool leader = g->leader && strcmp(g->leader, m->id) == 0;
        if (same && (g->state == COLL_GROUP_COMPLETING || !leader)) {
            /* Nothing changed (a lost response): answer with the current generation. The
             * leader in Stable rejoins to force a rebalance, so it falls through below. */
            size_t n = 0;
            struct coll_join_member *list = NULL;
            if (leader) {
                list = sl_calloc(g->nmembers, sizeof(*list));
                if (!list)
                    return KAFKA_E_UNKNOWN_SERVER_ERROR;
                for (struct coll_gmember *o = g->members; o; o = o->next, n++) {
                    list[n].member_id = o->id;
                    list[n].instance_id = o->instance_id;
                    list[n].metadata = member_metadata(o, g->protocol);
                }
            }
            struct coll_join_result res = {.error = KAFKA_E_NONE,
                                           .generation = g->generation,
                                           .protocol = g->protocol ? g->protocol : "",
                                           .leader = g->leader ? g->leader : "",
                                           .member_id = m->id,
                                           .members = list,
                                           .nmembers = n};
            w->on_join(w, &res);
            sl_free(list);
            return KAFKA_E_NONE;
        }
        char why[160];
        snprintf(why, sizeof(why), "member %.100s rejoined%s", m->id,
                 same ? " (leader)" : " with new protocols");
        prepare_rebalance(gs, g, why);
        park(&m->join_w, w);
        maybe_complete_join(gs, g);
        return KAFKA_E_NONE;
    }
    default:
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    }
}

/* A static member restarted (same instance id, no member id): it gets a new member id, the
 * old incarnation's parked answers are fenced, and it rejoins in the old one's place. */
static int16_t join_replace_static(struct coll_groups *gs, struct coll_group *g,
                                   struct coll_gmember *m, const struct coll_join_req *jr,
                                   struct coll_group_waiter *w)
{
    char *id = mint_member_id(gs, jr->client_id);
    if (!id)
        return KAFKA_E_UNKNOWN_SERVER_ERROR;
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        char *l = sl_strdup(id);
        if (!l) {
            sl_free(id);
            return KAFKA_E_UNKNOWN_SERVER_ERROR;
        }
        sl_free(g->leader);
        g->leader = l;
    }
    SL_INFO("group", "'%s': static member %s is now %s", g->name, m->instance_id, id);
    char *old = m->id;
    m->id = id;
    struct coll_group_waiter *ow = unpark(&m->join_w);
    if (ow)
        answer_join_error(ow, KAFKA_E_FENCED_INSTANCE_ID, old);
    ow = unpark(&m->sync_w);
    if (ow)
        ow->on_sync(ow, KAFKA_E_FENCED_INSTANCE_ID, SL_BYTES_NULL);
    sl_free(old);
    return join_known(gs, g, m, jr, w);
}

int16_t coll_groups_join(struct coll_groups *gs, const struct coll_join_req *jr,
                         struct coll_group_waiter *w)
{
    if (!name_ok(jr->group))
        return KAFKA_E_INVALID_GROUP_ID;
    if (jr->session_ms < gs->conf.min_session_timeout_ms ||
        jr->session_ms > gs->conf.max_session_timeout_ms)
        return KAFKA_E_INVALID_SESSION_TIMEOUT;
    if (!jr->protocol_type.p || jr->protocol_type.len == 0 || jr->nprotocols == 0)
        return KAFKA_E_INCONSISTENT_GROUP_PROTOCOL;
    if (jr->member_id.p && jr->member_id.len > MEMBER_ID_MAX)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    bool new_member = !jr->member_id.p || jr->member_id.len == 0;
    struct coll_group *g = coll_groups_find(gs, jr->group);
    if (!g) {
        if (!new_member)
            return KAFKA_E_UNKNOWN_MEMBER_ID;
        if (!(g = coll_groups_ensure(gs, jr->group)))
            return KAFKA_E_UNKNOWN_SERVER_ERROR;
    }
    if (g->state == COLL_GROUP_DEAD)
        return KAFKA_E_COORDINATOR_NOT_AVAILABLE;
    bool empty = g->nmembers == 0;
    if (!empty && g->protocol_type && !bytes_eq(jr->protocol_type, g->protocol_type))
        return KAFKA_E_INCONSISTENT_GROUP_PROTOCOL;
    if (jr->nprotocols > COLL_GROUP_MAX_PROTOCOLS)
        return KAFKA_E_INCONSISTENT_GROUP_PROTOCOL;
    struct coll_gmember *m = new_member ? NULL : coll_group_member(g, jr->member_id);
    struct coll_gmember *st = member_by_instance(g, jr->instance_id);
    if (st && !new_member && st != m)
        return KAFKA_E_FENCED_INSTANCE_ID;
    if (st && new_member)
        m = st; /* a static member's new incarnation takes the old one's place */
    if (!empty && !protocols_fit(g, m, jr->protocols, jr->nprotocols))
        return KAFKA_E_INCONSISTENT_GROUP_PROTOCOL;
    if (m && new_member)
        return join_replace_static(gs, g, m, jr, w);
    if (m)
        return join_known(gs, g, m, jr, w);

    struct coll_gpending *pend = new_member ? NULL : pending_find(g, jr->member_id);
    if (!new_member && !pend)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    if (gs->conf.max_members > 0 && (int64_t)g->nmembers >= gs->conf.max_members)
        return KAFKA_E_GROUP_MAX_SIZE_REACHED;
    if (new_member && jr->require_known_member_id && !jr->instance_id.p) {
        size_t npend = 0;
        for (struct coll_gpending *p = g->pending; p; p = p->next)
            npend++;
        if (npend >= COLL_GROUP_MAX_PENDING)
            return KAFKA_E_GROUP_MAX_SIZE_REACHED;
        char *id = mint_member_id(gs, jr->client_id);
        struct coll_gpending *p = sl_calloc(1, sizeof(*p));
        if (!id || !p) {
            sl_free(id);
            sl_free(p);
            return KAFKA_E_UNKNOWN_SERVER_ERROR;
        }
        p->id = id;
        p->expires_ms = now(gs) + jr->session_ms;
        p->next = g->pending;
        g->pending = p;
        answer_join_error(w, KAFKA_E_MEMBER_ID_REQUIRED, id);
        return KAFKA_E_NONE;
    }
    char *id = pend ? sl_strdup(pend->id) : mint_member_id(gs, jr->client_id);
    if (!id)
        return KAFKA_E_UNKNOWN_SERVER_ERROR;
    m = member_new(gs, jr, id);
    sl_free(id);
    if (!m)
        return KAFKA_E_UNKNOWN_SERVER_ERROR;
    if (empty) {
        char *pt = bytes_dup(jr->protocol_type);
        if (!pt) {
            member_free(m);
            return KAFKA_E_UNKNOWN_SERVER_ERROR;
        }
        sl_free(g->protocol_type);
        g->protocol_type = pt;
    }
    if (pend)
        pending_remove(g, pend);
    member_add(g, m);
    park(&m->join_w, w);
    switch (g->state) {
    case COLL_GROUP_PREPARING:
        if (g->initial_join) {
            int64_t t = now(gs);
            g->rebalance_deadline_ms = SL_MIN(t + gs->conf.initial_rebalance_delay_ms,
                                              g->rebalance_started_ms + max_rebalance_ms(g));
        }
        maybe_complete_join(gs, g);
        break;
    default: {
        char why[160];
        snprintf(why, sizeof(why), "new member %.100s", m->id);
        prepare_rebalance(gs, g, why);
        maybe_complete_join(gs, g);
        break;
    }
    }
    return KAFKA_E_NONE;
}

int16_t coll_groups_sync(struct coll_groups *gs, struct sl_bytes group, int32_t generation,
                         struct sl_bytes member_id, struct sl_bytes instance_id,
                         const struct coll_sync_assignment *as, size_t nas,
                         struct coll_group_waiter *w)
{
    struct coll_group *g = coll_groups_find(gs, group);
    if (!g)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    int16_t f = fenced(g, member_id, instance_id);
    if (f)
        return f;
    struct coll_gmember *m = coll_group_member(g, member_id);
    if (!m)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    if (generation != g->generation)
        return KAFKA_E_ILLEGAL_GENERATION;
    m->last_seen_ms = now(gs);
    switch (g->state) {
    case COLL_GROUP_PREPARING:
        return KAFKA_E_REBALANCE_IN_PROGRESS;
    case COLL_GROUP_STABLE:
        w->on_sync(w, KAFKA_E_NONE, SL_BYTES(m->assignment, m->assignment_len));
        return KAFKA_E_NONE;
    case COLL_GROUP_COMPLETING:
        break;
    default:
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    }
    struct coll_group_waiter *old = unpark(&m->sync_w);
    if (old)
        old->on_sync(old, KAFKA_E_REBALANCE_IN_PROGRESS, SL_BYTES_NULL);
    if (!g->leader || strcmp(g->leader, m->id) != 0) {
        park(&m->sync_w, w);
        return KAFKA_E_NONE;
    }
    /* The leader: store every assignment, answer everyone, Stable. Copy first so that an
     * allocation failure changes nothing. */
    uint8_t **copies = sl_calloc(g->nmembers ? g->nmembers : 1, sizeof(*copies));
    size_t *lens = sl_calloc(g->nmembers ? g->nmembers : 1, sizeof(*lens));
    bool ok = copies && lens;
    size_t i = 0;
    for (struct coll_gmember *o = g->members; o && ok; o = o->next, i++) {
        for (size_t k = 0; k < nas; k++) {
            if (!bytes_eq(as[k].member_id, o->id))
                continue;
            size_t len = as[k].assignment.p ? as[k].assignment.len : 0;
            copies[i] = sl_malloc(len ? len : 1);
            ok = copies[i] != NULL;
            if (ok && len)
                memcpy(copies[i], as[k].assignment.p, len);
            lens[i] = len;
            break;
        }
    }
    if (!ok) {
        for (size_t k = 0; copies && k < g->nmembers; k++)
            sl_free(copies[k]);
        sl_free(copies);
        sl_free(lens);
        return KAFKA_E_UNKNOWN_SERVER_ERROR;
    }
    i = 0;
    for (struct coll_gmember *o = g->members; o; o = o->next, i++) {
        sl_free(o->assignment);
        o->assignment = copies[i]; /* NULL for a member the leader left out: empty */
        o->assignment_len = lens[i];
    }
    sl_free(copies);
    sl_free(lens);
    g->state = COLL_GROUP_STABLE;
    group_log(g, "is stable");
    park(&m->sync_w, w);
    for (struct coll_gmember *o = g->members; o; o = o->next) {
        struct coll_group_waiter *ow = unpark(&o->sync_w);
        if (ow)
            ow->on_sync(ow, KAFKA_E_NONE, SL_BYTES(o->assignment, o->assignment_len));
    }
    return KAFKA_E_NONE;
}

int16_t coll_groups_heartbeat(struct coll_groups *gs, struct sl_bytes group, int32_t generation,
                              struct sl_bytes member_id, struct sl_bytes instance_id)
{
    struct coll_group *g = coll_groups_find(gs, group);
    if (!g)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    int16_t f = fenced(g, member_id, instance_id);
    if (f)
        return f;
    struct coll_gmember *m = coll_group_member(g, member_id);
    if (g->state == COLL_GROUP_DEAD)
        return KAFKA_E_COORDINATOR_NOT_AVAILABLE;
    if (!m || g->state == COLL_GROUP_EMPTY)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    if (generation != g->generation)
        return KAFKA_E_ILLEGAL_GENERATION;
    m->last_seen_ms = now(gs);
    return g->state == COLL_GROUP_PREPARING ? KAFKA_E_REBALANCE_IN_PROGRESS : KAFKA_E_NONE;
}

int16_t coll_groups_leave(struct coll_groups *gs, struct sl_bytes group, struct sl_bytes member_id)
{
    struct coll_group *g = coll_groups_find(gs, group);
    if (!g)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    struct coll_gmember *m = coll_group_member(g, member_id);
    if (!m) {
        struct coll_gpending *p = pending_find(g, member_id);
        if (!p)
            return KAFKA_E_UNKNOWN_MEMBER_ID;
        pending_remove(g, p);
        return KAFKA_E_NONE;
    }
    member_gone(gs, g, m, "left the group");
    return KAFKA_E_NONE;
}

int16_t coll_groups_commit_check(struct coll_groups *gs, struct sl_bytes group, int32_t generation,
                                 struct sl_bytes member_id, struct sl_bytes instance_id)
{
    if (!name_ok(group))
        return KAFKA_E_INVALID_GROUP_ID;
    struct coll_group *g = coll_groups_find(gs, group);
    if (!g) {
        if (generation >= 0)
            return KAFKA_E_ILLEGAL_GENERATION;
        return coll_groups_ensure(gs, group) ? KAFKA_E_NONE : KAFKA_E_UNKNOWN_SERVER_ERROR;
    }
    if (generation < 0 && g->nmembers == 0)
        return KAFKA_E_NONE; /* a standalone (or admin) commit to a group without members */
    int16_t f = fenced(g, member_id, instance_id);
    if (f)
        return f;
    struct coll_gmember *m = coll_group_member(g, member_id);
    if (!m)
        return KAFKA_E_UNKNOWN_MEMBER_ID;
    if (generation != g->generation)
        return KAFKA_E_ILLEGAL_GENERATION;
    if (g->state == COLL_GROUP_COMPLETING)
        return KAFKA_E_REBALANCE_IN_PROGRESS;
    m->last_seen_ms = now(gs);
    return KAFKA_E_NONE;
}

void coll_groups_unload(struct coll_groups *gs)
{
    for (struct coll_group *g = gs->groups; g; g = g->next) {
        for (struct coll_gmember *m = g->members; m; m = m->next) {
            struct coll_group_waiter *w = unpark(&m->join_w);
            if (w)
                answer_join_error(w, KAFKA_E_NOT_COORDINATOR, m->id);
            w = unpark(&m->sync_w);
            if (w)
                w->on_sync(w, KAFKA_E_NOT_COORDINATOR, SL_BYTES_NULL);
        }
    }
}

/* ---- time ------------------------------------------------------------------------------ */

static int64_t next_deadline(int64_t cur, int64_t at, int64_t t)
{
    int64_t in = SL_MAX(at - t, 0);
    return cur < 0 ? in : SL_MIN(cur, in);
}

int64_t coll_groups_tick(struct coll_groups *gs)
{
    int64_t t = now(gs);
    int64_t next = -1;
    for (struct coll_group *g = gs->groups; g; g = g->next) {
        for (struct coll_gpending *p = g->pending, *pn; p; p = pn) {
            pn = p->next;
            if (p->expires_ms <= t) {
                pending_remove(g, p);
                maybe_complete_join(gs, g);
            } else
                next = next_deadline(next, p->expires_ms, t);
        }
        /* Members parked on an answer are alive by definition (Kafka's shouldKeepAlive). */
        for (struct coll_gmember *m = g->members, *mn; m; m = mn) {
            mn = m->next;
            if (m->join_w || m->sync_w)
                continue;
            int64_t at = m->last_seen_ms + m->session_ms;
            if (at <= t) {
                SL_NOTICE("group", "'%s': member %s (%s) sent nothing for %d ms; removed", g->name,
                          m->id, m->client_host, m->session_ms);
                member_gone(gs, g, m, "session timed out");
                /* The list changed under us; deadlines are rescanned on the next tick. */
                next = next_deadline(next, t, t);
                break;
            }
            next = next_deadline(next, at, t);
        }
        if (g->state == COLL_GROUP_PREPARING) {
            if (g->rebalance_deadline_ms <= t)
                complete_join(gs, g);
            else
                next = next_deadline(next, g->rebalance_deadline_ms, t);
        }
    }
    return next;
}
