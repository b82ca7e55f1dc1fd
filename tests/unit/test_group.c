/* Unit tests for collector/group: the consumer-group state machine on an injected clock. */
#include "collector/group.h"

#include "common/kafka_err.h"
#include "common/mem.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int64_t clock_ms;

static int64_t test_now(void *arg)
{
    (void)arg;
    return clock_ms;
}

/* A client's view: the answers it received. */
struct client {
    struct coll_group_waiter w;
    int joins, syncs;
    int16_t join_error, sync_error;
    int32_t generation;
    char member_id[160];
    char leader[160];
    char protocol[64];
    size_t nmembers;
    char assignment[64];
};

static void on_join(struct coll_group_waiter *w, const struct coll_join_result *res)
{
    struct client *c = (struct client *)w;
    c->joins++;
    c->join_error = res->error;
    c->generation = res->generation;
    if (res->member_id[0])
        snprintf(c->member_id, sizeof(c->member_id), "%s", res->member_id);
    snprintf(c->leader, sizeof(c->leader), "%s", res->leader);
    snprintf(c->protocol, sizeof(c->protocol), "%s", res->protocol);
    c->nmembers = res->nmembers;
}

static void on_sync(struct coll_group_waiter *w, int16_t error, struct sl_bytes a)
{
    struct client *c = (struct client *)w;
    c->syncs++;
    c->sync_error = error;
    snprintf(c->assignment, sizeof(c->assignment), "%.*s", (int)a.len,
             a.p ? (const char *)a.p : "");
}

static void client_init(struct client *c)
{
    memset(c, 0, sizeof(*c));
    c->w.on_join = on_join;
    c->w.on_sync = on_sync;
}

static const struct coll_groups_conf conf = {
    .initial_rebalance_delay_ms = 3000,
    .min_session_timeout_ms = 6000,
    .max_session_timeout_ms = 1800000,
    .max_members = 0,
    .commit_sync = true,
    .offsets_retention_ms = 7 * 86400000LL,
};

static struct coll_join_protocol range_proto[] = {
    {{(const uint8_t *)"range", 5}, {(const uint8_t *)"meta", 4}}};

static struct coll_join_req jreq(const char *group, const char *member, bool v4)
{
    struct coll_join_req jr = {
        .group = SL_BYTES_STR(group),
        .member_id = SL_BYTES_STR(member),
        .instance_id = SL_BYTES_NULL,
        .client_id = SL_BYTES_STR("rdkafka"),
        .client_host = SL_BYTES_STR("/127.0.0.1"),
        .protocol_type = SL_BYTES_STR("consumer"),
        .session_ms = 10000,
        .rebalance_ms = 30000,
        .protocols = range_proto,
        .nprotocols = 1,
        .require_known_member_id = v4,
    };
    return jr;
}

/* Joins c (with its member id so far) and asserts the coordinator took the request. */
static void join(struct coll_groups *gs, struct client *c, const char *group)
{
    struct coll_join_req jr = jreq(group, c->member_id, false);
    assert_int_equal(coll_groups_join(gs, &jr, &c->w), KAFKA_E_NONE);
}

static void sync_as(struct coll_groups *gs, struct client *c, const char *group,
                    const struct coll_sync_assignment *as, size_t n)
{
    assert_int_equal(coll_groups_sync(gs, SL_BYTES_STR(group), c->generation,
                                      SL_BYTES_STR(c->member_id), SL_BYTES_NULL, as, n, &c->w),
                     KAFKA_E_NONE);
}

static struct coll_group *grp(struct coll_groups *gs, const char *name)
{
    return coll_groups_find(gs, SL_BYTES_STR(name));
}

static void setup_gs(struct coll_groups *gs)
{
    clock_ms = 1000000;
    coll_groups_init(gs, &conf, test_now, NULL);
}

/* Two members join an empty group: nothing is answered before the initial delay, then both
 * get generation 1, the first is leader and alone sees the member list; the leader's sync
 * hands out the assignments and the group is Stable. */
static void test_first_generation(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a, b;
    client_init(&a);
    client_init(&b);
    join(&gs, &a, "g");
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_PREPARING);
    clock_ms += 1000;
    join(&gs, &b, "g");
    assert_int_equal(a.joins + b.joins, 0);
    clock_ms += 2999; /* the delay slides with each new member */
    coll_groups_tick(&gs);
    assert_int_equal(a.joins, 0);
    clock_ms += 1;
    coll_groups_tick(&gs);
    assert_int_equal(a.joins, 1);
    assert_int_equal(b.joins, 1);
    assert_int_equal(a.generation, 1);
    assert_string_equal(a.leader, a.member_id);
    assert_string_equal(b.leader, a.member_id);
    assert_int_equal(a.nmembers, 2);
    assert_int_equal(b.nmembers, 0);
    assert_string_equal(a.protocol, "range");
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_COMPLETING);

    /* The follower's sync waits for the leader's. */
    sync_as(&gs, &b, "g", NULL, 0);
    assert_int_equal(b.syncs, 0);
    struct coll_sync_assignment as[] = {
        {SL_BYTES_STR(a.member_id), SL_BYTES_STR("p0,p1")},
        {SL_BYTES_STR(b.member_id), SL_BYTES_STR("p2")},
    };
    sync_as(&gs, &a, "g", as, 2);
    assert_int_equal(a.syncs, 1);
    assert_int_equal(b.syncs, 1);
    assert_string_equal(a.assignment, "p0,p1");
    assert_string_equal(b.assignment, "p2");
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_STABLE);
    assert_int_equal(
        coll_groups_heartbeat(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(b.member_id), SL_BYTES_NULL),
        KAFKA_E_NONE);
    coll_groups_fini(&gs);
}

/* Brings a and b to Stable generation 1. */
static void two_stable(struct coll_groups *gs, struct client *a, struct client *b)
{
    join(gs, a, "g");
    join(gs, b, "g");
    clock_ms += 3000;
    coll_groups_tick(gs);
    assert_int_equal(b->joins, 1);
    struct coll_sync_assignment as[] = {
        {SL_BYTES_STR(a->member_id), SL_BYTES_STR("A")},
        {SL_BYTES_STR(b->member_id), SL_BYTES_STR("B")},
    };
    sync_as(gs, b, "g", NULL, 0);
    sync_as(gs, a, "g", as, 2);
    assert_int_equal(grp(gs, "g")->state, COLL_GROUP_STABLE);
}

/* v4+: an empty member id gets MEMBER_ID_REQUIRED and an id; joining with it works; an id the
 * coordinator never minted is UNKNOWN_MEMBER_ID; a minted id unused expires. */
static void test_member_id_required(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a;
    client_init(&a);
    struct coll_join_req jr = jreq("g", "", true);
    assert_int_equal(coll_groups_join(&gs, &jr, &a.w), KAFKA_E_NONE);
    assert_int_equal(a.joins, 1);
    assert_int_equal(a.join_error, KAFKA_E_MEMBER_ID_REQUIRED);
    assert_true(strncmp(a.member_id, "rdkafka-", 8) == 0);
    assert_int_equal(grp(&gs, "g")->nmembers, 0);

    struct client bogus;
    client_init(&bogus);
    jr = jreq("g", "made-up", true);
    assert_int_equal(coll_groups_join(&gs, &jr, &bogus.w), KAFKA_E_UNKNOWN_MEMBER_ID);

    jr = jreq("g", a.member_id, true);
    assert_int_equal(coll_groups_join(&gs, &jr, &a.w), KAFKA_E_NONE);
    assert_int_equal(grp(&gs, "g")->nmembers, 1);
    clock_ms += 3000;
    coll_groups_tick(&gs);
    assert_int_equal(a.joins, 2);
    assert_int_equal(a.join_error, KAFKA_E_NONE);
    assert_int_equal(a.generation, 1);

    /* A second minted id that is never used goes away after the session timeout. */
    struct client c;
    client_init(&c);
    jr = jreq("g", "", true);
    assert_int_equal(coll_groups_join(&gs, &jr, &c.w), KAFKA_E_NONE);
    assert_non_null(grp(&gs, "g")->pending);
    clock_ms += 10001;
    coll_groups_tick(&gs);
    assert_null(grp(&gs, "g")->pending);
    coll_groups_fini(&gs);
}

/* A join storm: 50 members join one by one; the delay slides; one generation for all. Then
 * 50 more join a Stable group: one rebalance, and everyone (old members rejoining after their
 * heartbeat says REBALANCE_IN_PROGRESS) lands in generation 2. */
static void test_join_storm(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    enum { N = 50 };
    static struct client cs[2 * N];
    for (int i = 0; i < 2 * N; i++)
        client_init(&cs[i]);
    for (int i = 0; i < N; i++) {
        join(&gs, &cs[i], "storm");
        clock_ms += 100;
        coll_groups_tick(&gs);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(cs[i].joins, 0);
    clock_ms += 3000;
    coll_groups_tick(&gs);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cs[i].joins, 1);
        assert_int_equal(cs[i].generation, 1);
    }
    assert_int_equal(cs[0].nmembers, N);
    sync_as(&gs, &cs[0], "storm", NULL, 0);
    assert_int_equal(grp(&gs, "storm")->state, COLL_GROUP_STABLE);

    for (int i = N; i < 2 * N; i++)
        join(&gs, &cs[i], "storm");
    assert_int_equal(grp(&gs, "storm")->state, COLL_GROUP_PREPARING);
    for (int i = 0; i < N; i++) {
        assert_int_equal(coll_groups_heartbeat(&gs, SL_BYTES_STR("storm"), 1,
                                               SL_BYTES_STR(cs[i].member_id), SL_BYTES_NULL),
                         KAFKA_E_REBALANCE_IN_PROGRESS);
        join(&gs, &cs[i], "storm");
    }
    /* The last old member's rejoin completes the rebalance without waiting for a deadline. */
    for (int i = 0; i < 2 * N; i++) {
        assert_int_equal(cs[i].join_error, KAFKA_E_NONE);
        assert_int_equal(cs[i].generation, 2);
    }
    assert_int_equal(grp(&gs, "storm")->nmembers, 2 * N);
    coll_groups_fini(&gs);
}

/* A member leaving in the middle of a rebalance: the rebalance completes without it; a
 * follower waiting in SyncGroup when the leader leaves gets REBALANCE_IN_PROGRESS. */
static void test_leave_mid_rebalance(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a, b, c;
    client_init(&a);
    client_init(&b);
    client_init(&c);
    two_stable(&gs, &a, &b);
    join(&gs, &c, "g"); /* new member: PreparingRebalance */
    join(&gs, &a, "g");
    assert_int_equal(a.joins, 1);
    /* b leaves instead of rejoining: everyone else has rejoined, so generation 2 starts. */
    assert_int_equal(coll_groups_leave(&gs, SL_BYTES_STR("g"), SL_BYTES_STR(b.member_id)),
                     KAFKA_E_NONE);
    assert_int_equal(a.joins, 2);
    assert_int_equal(c.joins, 1);
    assert_int_equal(a.generation, 2);
    assert_int_equal(grp(&gs, "g")->nmembers, 2);
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_COMPLETING);

    /* c waits in SyncGroup; the leader a leaves: c is told to rejoin. */
    sync_as(&gs, &c, "g", NULL, 0);
    assert_int_equal(c.syncs, 0);
    assert_int_equal(coll_groups_leave(&gs, SL_BYTES_STR("g"), SL_BYTES_STR(a.member_id)),
                     KAFKA_E_NONE);
    assert_int_equal(c.syncs, 1);
    assert_int_equal(c.sync_error, KAFKA_E_REBALANCE_IN_PROGRESS);
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_PREPARING);
    join(&gs, &c, "g");
    assert_int_equal(c.joins, 2);
    assert_int_equal(c.generation, 3);
    assert_string_equal(c.leader, c.member_id);
    /* The last member leaving empties the group (a new generation, as in Kafka). */
    assert_int_equal(coll_groups_leave(&gs, SL_BYTES_STR("g"), SL_BYTES_STR(c.member_id)),
                     KAFKA_E_NONE);
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_EMPTY);
    assert_int_equal(grp(&gs, "g")->generation, 4);
    assert_int_equal(coll_groups_leave(&gs, SL_BYTES_STR("g"), SL_BYTES_STR(c.member_id)),
                     KAFKA_E_UNKNOWN_MEMBER_ID);
    coll_groups_fini(&gs);
}

/* Heartbeats: a member silent past its session timeout is removed and the others rebalance;
 * its late heartbeat is UNKNOWN_MEMBER_ID; an old generation is ILLEGAL_GENERATION. */
static void test_heartbeat_expiry(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a, b;
    client_init(&a);
    client_init(&b);
    two_stable(&gs, &a, &b);
    for (int i = 0; i < 4; i++) {
        clock_ms += 3000;
        assert_int_equal(coll_groups_heartbeat(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(a.member_id),
                                               SL_BYTES_NULL),
                         KAFKA_E_NONE);
        coll_groups_tick(&gs);
    }
    /* b said nothing for 12 s (> its 10 s session): gone. */
    assert_int_equal(grp(&gs, "g")->nmembers, 1);
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_PREPARING);
    assert_int_equal(
        coll_groups_heartbeat(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(b.member_id), SL_BYTES_NULL),
        KAFKA_E_UNKNOWN_MEMBER_ID);
    assert_int_equal(
        coll_groups_heartbeat(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(a.member_id), SL_BYTES_NULL),
        KAFKA_E_REBALANCE_IN_PROGRESS);
    join(&gs, &a, "g");
    assert_int_equal(a.generation, 2);
    assert_int_equal(
        coll_groups_heartbeat(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(a.member_id), SL_BYTES_NULL),
        KAFKA_E_ILLEGAL_GENERATION);
    assert_int_equal(coll_groups_sync(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(a.member_id),
                                      SL_BYTES_NULL, NULL, 0, &a.w),
                     KAFKA_E_ILLEGAL_GENERATION);
    /* A member parked in JoinGroup is never expired; one that stops rejoining is removed at
     * the rebalance deadline. */
    struct client c;
    client_init(&c);
    join(&gs, &c, "g");
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_PREPARING);
    clock_ms += 9000;
    coll_groups_tick(&gs); /* a (not rejoined) is still within its session */
    assert_int_equal(grp(&gs, "g")->nmembers, 2);
    clock_ms += 2000;
    coll_groups_tick(&gs); /* a expired; c, parked, completes generation 3 alone */
    assert_int_equal(c.joins, 1);
    assert_int_equal(c.generation, 3);
    assert_int_equal(grp(&gs, "g")->nmembers, 1);
    coll_groups_fini(&gs);
}

/* Protocols: the common protocol most members prefer wins; a member sharing none with the
 * group is refused; a wrong protocol type too. */
static void test_protocol_selection(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct coll_join_protocol p_rr_range[] = {
        {SL_BYTES_STR("roundrobin"), SL_BYTES_STR("m")},
        {SL_BYTES_STR("range"), SL_BYTES_STR("m")},
    };
    struct coll_join_protocol p_range_rr[] = {
        {SL_BYTES_STR("range"), SL_BYTES_STR("m")},
        {SL_BYTES_STR("roundrobin"), SL_BYTES_STR("m")},
    };
    struct coll_join_protocol p_sticky[] = {{SL_BYTES_STR("sticky"), SL_BYTES_STR("m")}};
    struct client a, b, c, d;
    client_init(&a);
    client_init(&b);
    client_init(&c);
    client_init(&d);
    struct coll_join_req jr = jreq("g", "", false);
    jr.protocols = p_range_rr;
    jr.nprotocols = 2;
    assert_int_equal(coll_groups_join(&gs, &jr, &a.w), KAFKA_E_NONE);
    jr.protocols = p_rr_range;
    assert_int_equal(coll_groups_join(&gs, &jr, &b.w), KAFKA_E_NONE);
    assert_int_equal(coll_groups_join(&gs, &jr, &c.w), KAFKA_E_NONE);
    jr.protocols = p_sticky;
    jr.nprotocols = 1;
    assert_int_equal(coll_groups_join(&gs, &jr, &d.w), KAFKA_E_INCONSISTENT_GROUP_PROTOCOL);
    jr = jreq("g", "", false);
    jr.protocol_type = SL_BYTES_STR("connect");
    assert_int_equal(coll_groups_join(&gs, &jr, &d.w), KAFKA_E_INCONSISTENT_GROUP_PROTOCOL);
    jr = jreq("g", "", false);
    jr.session_ms = 1000;
    assert_int_equal(coll_groups_join(&gs, &jr, &d.w), KAFKA_E_INVALID_SESSION_TIMEOUT);
    jr = jreq("", "", false);
    assert_int_equal(coll_groups_join(&gs, &jr, &d.w), KAFKA_E_INVALID_GROUP_ID);
    clock_ms += 3000;
    coll_groups_tick(&gs);
    assert_string_equal(a.protocol, "roundrobin");
    assert_string_equal(c.protocol, "roundrobin");
    coll_groups_fini(&gs);
}

/* Commits: standalone commits only without members; members commit with their generation;
 * during CompletingRebalance commits wait. */
static void test_commit_check(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    assert_int_equal(
        coll_groups_commit_check(&gs, SL_BYTES_STR("solo"), -1, SL_BYTES_STR(""), SL_BYTES_NULL),
        KAFKA_E_NONE);
    assert_non_null(grp(&gs, "solo"));
    assert_int_equal(
        coll_groups_commit_check(&gs, SL_BYTES_STR("nope"), 3, SL_BYTES_STR("x"), SL_BYTES_NULL),
        KAFKA_E_ILLEGAL_GENERATION);
    struct client a, b;
    client_init(&a);
    client_init(&b);
    join(&gs, &a, "g");
    join(&gs, &b, "g");
    clock_ms += 3000;
    coll_groups_tick(&gs);
    assert_int_equal(coll_groups_commit_check(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(a.member_id),
                                              SL_BYTES_NULL),
                     KAFKA_E_REBALANCE_IN_PROGRESS);
    sync_as(&gs, &a, "g", NULL, 0);
    assert_int_equal(coll_groups_commit_check(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(a.member_id),
                                              SL_BYTES_NULL),
                     KAFKA_E_NONE);
    assert_int_equal(coll_groups_commit_check(&gs, SL_BYTES_STR("g"), 0, SL_BYTES_STR(a.member_id),
                                              SL_BYTES_NULL),
                     KAFKA_E_ILLEGAL_GENERATION);
    assert_int_equal(
        coll_groups_commit_check(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR("who"), SL_BYTES_NULL),
        KAFKA_E_UNKNOWN_MEMBER_ID);
    assert_int_equal(
        coll_groups_commit_check(&gs, SL_BYTES_STR("g"), -1, SL_BYTES_STR(""), SL_BYTES_NULL),
        KAFKA_E_UNKNOWN_MEMBER_ID);
    assert_int_equal(coll_groups_delete(&gs, SL_BYTES_STR("g")), KAFKA_E_NON_EMPTY_GROUP);
    assert_int_equal(coll_groups_delete(&gs, SL_BYTES_STR("solo")), KAFKA_E_NONE);
    assert_int_equal(coll_groups_delete(&gs, SL_BYTES_STR("solo")), KAFKA_E_GROUP_ID_NOT_FOUND);
    coll_groups_fini(&gs);
}

/* Rejoins without change: a follower in Stable gets the current generation at once; the
 * leader's rejoin starts a rebalance (that is how a leader asks for one). A cancelled waiter
 * (its connection closed) is never called. */
static void test_rejoin_and_cancel(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a, b;
    client_init(&a);
    client_init(&b);
    two_stable(&gs, &a, &b);
    join(&gs, &b, "g");
    assert_int_equal(b.joins, 2);
    assert_int_equal(b.generation, 1);
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_STABLE);
    join(&gs, &a, "g");
    assert_int_equal(grp(&gs, "g")->state, COLL_GROUP_PREPARING);
    assert_int_equal(a.joins, 1); /* parked */
    coll_group_waiter_cancel(&a.w);
    coll_group_waiter_cancel(&a.w); /* twice is harmless */
    join(&gs, &b, "g");
    /* a's waiter is gone, so a counts as not rejoined; after its session it is removed and
     * b completes alone. */
    clock_ms += 10001;
    coll_groups_tick(&gs);
    assert_int_equal(a.joins, 1);
    assert_int_equal(b.joins, 3);
    assert_int_equal(b.generation, 2);
    assert_string_equal(b.leader, b.member_id);
    coll_groups_fini(&gs);
}

/* Static membership: a restarted static member (same instance id, no member id) takes its old
 * place without a rebalance; the old incarnation is fenced everywhere. */
static void test_static_member(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a, b;
    client_init(&a);
    client_init(&b);
    struct coll_join_req jr = jreq("g", "", true);
    jr.instance_id = SL_BYTES_STR("host-a");
    assert_int_equal(coll_groups_join(&gs, &jr, &a.w), KAFKA_E_NONE);
    assert_int_equal(a.joins, 0); /* static members skip MEMBER_ID_REQUIRED */
    join(&gs, &b, "g");
    clock_ms += 3000;
    coll_groups_tick(&gs);
    assert_int_equal(a.generation, 1);
    struct coll_sync_assignment as[] = {
        {SL_BYTES_STR(a.member_id), SL_BYTES_STR("A")},
        {SL_BYTES_STR(b.member_id), SL_BYTES_STR("B")},
    };
    sync_as(&gs, &b, "g", NULL, 0);
    sync_as(&gs, &a, "g", as, 2);
    char old_id[160];
    snprintf(old_id, sizeof(old_id), "%s", a.member_id);

    /* a restarts: same instance id, no member id. */
    struct client a2;
    client_init(&a2);
    jr = jreq("g", "", true);
    jr.instance_id = SL_BYTES_STR("host-a");
    assert_int_equal(coll_groups_join(&gs, &jr, &a2.w), KAFKA_E_NONE);
    /* a was the leader: its new incarnation's rejoin rebalances (it must assign again). */
    assert_string_not_equal(a2.member_id, old_id);
    assert_int_equal(coll_groups_heartbeat(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(old_id),
                                           SL_BYTES_STR("host-a")),
                     KAFKA_E_FENCED_INSTANCE_ID);
    assert_int_equal(coll_groups_commit_check(&gs, SL_BYTES_STR("g"), 1, SL_BYTES_STR(old_id),
                                              SL_BYTES_STR("host-a")),
                     KAFKA_E_FENCED_INSTANCE_ID);
    jr = jreq("g", old_id, true);
    jr.instance_id = SL_BYTES_STR("host-a");
    assert_int_equal(coll_groups_join(&gs, &jr, &a.w), KAFKA_E_FENCED_INSTANCE_ID);
    assert_int_equal(grp(&gs, "g")->nmembers, 2);
    coll_groups_fini(&gs);
}

/* A graceful stop answers parked joins and syncs with NOT_COORDINATOR. */
static void test_unload(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    struct client a, b;
    client_init(&a);
    client_init(&b);
    join(&gs, &a, "g");
    join(&gs, &b, "g");
    coll_groups_unload(&gs);
    assert_int_equal(a.joins, 1);
    assert_int_equal(a.join_error, KAFKA_E_NOT_COORDINATOR);
    assert_int_equal(b.join_error, KAFKA_E_NOT_COORDINATOR);
    coll_groups_fini(&gs);
}

/* Protocol bookkeeping stays linear: 2,000 members offering 64 protocols each join and one
 * generation forms (the common set is narrowed per join, not recomputed). */
static void test_many_protocols(void **state)
{
    (void)state;
    struct coll_groups gs;
    setup_gs(&gs);
    enum { M = 2000, P = COLL_GROUP_MAX_PROTOCOLS };
    static struct coll_join_protocol ps[P];
    static char names[P][16];
    for (int i = 0; i < P; i++) {
        snprintf(names[i], sizeof(names[i]), "p%02d", i);
        ps[i].name = SL_BYTES_STR(names[i]);
        ps[i].metadata = SL_BYTES_STR("m");
    }
    static struct client cs[M];
    for (int i = 0; i < M; i++) {
        client_init(&cs[i]);
        struct coll_join_req jr = jreq("big", "", false);
        jr.protocols = ps;
        jr.nprotocols = P;
        assert_int_equal(coll_groups_join(&gs, &jr, &cs[i].w), KAFKA_E_NONE);
    }
    clock_ms += 3000;
    coll_groups_tick(&gs);
    assert_int_equal(cs[M - 1].generation, 1);
    assert_string_equal(cs[0].protocol, "p00");
    coll_groups_fini(&gs);
}

/* Allocation failures anywhere in a join/sync cycle give errors, never crashes or leaks. */
static void test_alloc_failures(void **state)
{
    (void)state;
    for (long n = 0; n < 40; n++) {
        struct coll_groups gs;
        setup_gs(&gs);
        struct client a, b;
        client_init(&a);
        client_init(&b);
        sl_mem_fail_after(n, 0);
        struct coll_join_req jr = jreq("g", "", true);
        int16_t e = coll_groups_join(&gs, &jr, &a.w);
        if (e == KAFKA_E_NONE && a.join_error == KAFKA_E_MEMBER_ID_REQUIRED) {
            jr = jreq("g", a.member_id, true);
            e = coll_groups_join(&gs, &jr, &a.w);
        }
        jr = jreq("g", "", false);
        coll_groups_join(&gs, &jr, &b.w);
        clock_ms += 3000;
        coll_groups_tick(&gs);
        if (a.generation > 0) {
            struct coll_sync_assignment as[] = {{SL_BYTES_STR(a.member_id), SL_BYTES_STR("x")}};
            coll_groups_sync(&gs, SL_BYTES_STR("g"), a.generation, SL_BYTES_STR(a.member_id),
                             SL_BYTES_NULL, as, 1, &a.w);
        }
        sl_mem_fail_after(-1, 0);
        assert_true(e == KAFKA_E_NONE || e == KAFKA_E_UNKNOWN_SERVER_ERROR);
        coll_groups_fini(&gs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_generation), cmocka_unit_test(test_member_id_required),
        cmocka_unit_test(test_join_storm),       cmocka_unit_test(test_leave_mid_rebalance),
        cmocka_unit_test(test_heartbeat_expiry), cmocka_unit_test(test_protocol_selection),
        cmocka_unit_test(test_commit_check),     cmocka_unit_test(test_rejoin_and_cancel),
        cmocka_unit_test(test_alloc_failures),   cmocka_unit_test(test_static_member),
        cmocka_unit_test(test_unload),           cmocka_unit_test(test_many_protocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
