/* The consumer-group coordinator: Kafka's classic group membership protocol, with no I/O. */
#ifndef SL_COLLECTOR_GROUP_H
#define SL_COLLECTOR_GROUP_H

/*
 * The collector is its own (and only) coordinator. A group's life, as Kafka's GroupCoordinator
 * runs it (the API handlers in api_*_group.c decode requests and encode the answers):
 *
 *            first JoinGroup                 every member rejoined, or the rebalance
 *   +-------+ (after the initial delay) +-------------+ deadline passed (the rest are removed):
 *   | Empty |-------------------------->| Preparing   |--- generation+1, leader chosen, --+
 *   +-------+<--- last member gone -----| Rebalance   |    JoinGroup answers sent          |
 *       ^        (generation+1)         +-------------+                                    v
 *       |                                  ^       ^  join by a new member,      +------------+
 *       |                                  |       |  leave, session expiry      | Completing |
 *       |         join by a new member or  |       +-----------------------------| Rebalance  |
 *       |         by the leader, a changed |                                     +------------+
 *       |         protocol list, a leave,  |                                           |
 *       |         a session expiry     +--------+     the leader's SyncGroup: every      |
 *       +------------------------------| Stable |<--- member gets its assignment -------+
 *          (via Preparing)             +--------+
 *
 * Dead is a group that was removed (no members, no committed offsets); it is never seen outside.
 *
 * Answers that cannot be given at once (JoinGroup in PreparingRebalance, SyncGroup from a
 * follower in CompletingRebalance) park a waiter on the member; the waiter's callback runs
 * exactly once, later, unless the waiter is cancelled first (its connection closed). Timeouts
 * (session expiry, rebalance deadline, the initial delay) act in coll_groups_tick, which the
 * server calls from a timer; tests call it with their own clock.
 *
 * Members joining with JoinGroup v4+ and no member id get one minted and
 * MEMBER_ID_REQUIRED; they are "pending" until they join again with it (or their session
 * timeout passes).
 *
 * Static members (JoinGroup v5 with a group_instance_id) keep their place across restarts: a
 * join with a known instance id and no member id replaces the old incarnation (a new member id;
 * the old one is fenced with FENCED_INSTANCE_ID) and, when nothing else changed, gets the
 * current generation and assignment without a rebalance.
 */

#include "common/base.h"
#include "common/buf.h"
#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocols one member may offer (librdkafka offers two or three). */
#define COLL_GROUP_MAX_PROTOCOLS 64
/* Member ids minted for v4+ joins and not used yet, per group: a bound on what a client can
 * make the coordinator hold without ever becoming a member. */
#define COLL_GROUP_MAX_PENDING 1000

enum coll_group_state {
    COLL_GROUP_EMPTY,
    COLL_GROUP_PREPARING,  /* PreparingRebalance */
    COLL_GROUP_COMPLETING, /* CompletingRebalance */
    COLL_GROUP_STABLE,
    COLL_GROUP_DEAD,
};

/* Kafka's name of a state ("Empty", "PreparingRebalance", ...), as DescribeGroups reports it. */
const char *coll_group_state_name(enum coll_group_state s);

struct coll_gmember;
struct coll_group_waiter;

/* One member as the leader's JoinGroup answer lists it (metadata of the chosen protocol). */
struct coll_join_member {
    const char *member_id;   /* borrowed for the callback */
    const char *instance_id; /* may be NULL */
    struct sl_bytes metadata;
};

/* What a JoinGroup is answered with. Strings are borrowed for the callback only. */
struct coll_join_result {
    int16_t error;
    int32_t generation;    /* -1 with an error */
    const char *protocol;  /* the chosen protocol name ("" with an error) */
    const char *leader;    /* "" with an error */
    const char *member_id; /* the member's id (minted for MEMBER_ID_REQUIRED; "" on errors) */
    const struct coll_join_member *members; /* the leader only; else NULL */
    size_t nmembers;
};

/*
 * A parked answer, embedded in the handler's state. Set the callback for the request kind; the
 * other fields are the coordinator's.
 */
struct coll_group_waiter {
    void (*on_join)(struct coll_group_waiter *w, const struct coll_join_result *res);
    /* error, and the member's assignment (borrowed for the call; empty with an error) */
    void (*on_sync)(struct coll_group_waiter *w, int16_t error, struct sl_bytes assignment);
    struct coll_group_waiter **slot; /* where it is parked; NULL when not */
};

/* One protocol a member offers (JoinGroup's protocols array). */
struct coll_join_protocol {
    struct sl_bytes name;
    struct sl_bytes metadata;
};

/* A decoded JoinGroup. Everything is borrowed for the call (the coordinator copies). */
struct coll_join_req {
    struct sl_bytes group, member_id, instance_id; /* instance_id: p NULL when null */
    struct sl_bytes client_id, client_host, protocol_type;
    int32_t session_ms, rebalance_ms;
    const struct coll_join_protocol *protocols;
    size_t nprotocols;
    bool require_known_member_id; /* v4+: an empty member id gets MEMBER_ID_REQUIRED */
};

/* A member's copy of one protocol it offers. */
struct coll_gproto {
    char *name;        /* owned */
    uint8_t *metadata; /* owned */
    size_t metadata_len;
};

struct coll_gmember {
    struct coll_gmember *next;
    char *id;          /* owned */
    char *instance_id; /* owned, may be NULL */
    char *client_id;   /* owned */
    char *client_host; /* owned */
    int32_t session_ms, rebalance_ms;
    struct coll_gproto *protocols; /* owned */
    size_t nprotocols;
    uint8_t *assignment; /* owned; from the leader's SyncGroup */
    size_t assignment_len;
    int64_t last_seen_ms; /* last request from it: the session timeout counts from here */
    struct coll_group_waiter *join_w, *sync_w; /* borrowed; parked answers */
};

/* A member id minted by a v4+ JoinGroup and not yet used to join. */
struct coll_gpending {
    struct coll_gpending *next;
    char *id; /* owned */
    int64_t expires_ms;
};

struct coll_group {
    struct coll_group *next;
    char *name; /* owned */
    enum coll_group_state state;
    int32_t generation;
    char *protocol_type;          /* owned; NULL until a member joined */
    char *protocol;               /* owned; the chosen protocol of this generation, NULL in Empty */
    char *leader;                 /* owned; member id, NULL when none */
    struct coll_gmember *members; /* owned list, join order */
    size_t nmembers;
    struct coll_gpending *pending; /* owned list */
    int64_t rebalance_deadline_ms; /* PreparingRebalance: complete at this time at the latest */
    int64_t rebalance_started_ms;
    bool initial_join; /* PreparingRebalance from Empty: complete only at the (sliding) delay */
    int64_t empty_since_ms; /* for offset expiry: when the group became Empty */
    /* The protocol names every member offers (borrowed from the first member), recomputed
     * after membership changes: joins check against it without rescanning every member. */
    const char *common[COLL_GROUP_MAX_PROTOCOLS];
    size_t ncommon;
    bool common_valid;
};

/* Coordinator settings (the collector's `groups:` section). */
struct coll_groups_conf {
    int64_t initial_rebalance_delay_ms; /* Kafka's group.initial.rebalance.delay.ms */
    int64_t min_session_timeout_ms;     /* group.min.session.timeout.ms */
    int64_t max_session_timeout_ms;     /* group.max.session.timeout.ms */
    int64_t max_members;                /* group.max.size; 0: no limit */
    bool commit_sync;                   /* fdatasync the offsets file before answering */
    int64_t offsets_retention_ms;       /* offsets.retention.minutes, after the group emptied */
};

/* The option table of struct coll_groups_conf (group_conf.c), the collector's `groups:`. */
struct sl_conf_section;
extern const struct sl_conf_section coll_groups_conf_section;

struct coll_groups {
    struct coll_groups_conf conf;
    struct coll_group *groups; /* owned list */
    size_t ngroups;
    uint64_t minted; /* member ids minted so far (part of each id) */
    int64_t (*now_ms)(void *arg);
    void *clock_arg;
};

/* Prepares a coordinator with conf (copied) and a clock (now_ms NULL: CLOCK_MONOTONIC). */
void coll_groups_init(struct coll_groups *gs, const struct coll_groups_conf *conf,
                      int64_t (*now_ms)(void *arg), void *clock_arg);

/* Frees every group. Parked waiters are dropped without their callback (cancel them first, or
 * free their owners: the server closes every connection before this). */
void coll_groups_fini(struct coll_groups *gs);

/* The group named name, or NULL. */
struct coll_group *coll_groups_find(struct coll_groups *gs, struct sl_bytes name);

/* A member of g by id, or NULL. */
struct coll_gmember *coll_group_member(struct coll_group *g, struct sl_bytes id);

/*
 * JoinGroup. Returns 0 when w->on_join runs (now, before this returns, or later), or a KAFKA_E_*
 * code to answer at once without calling it (INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT,
 * INCONSISTENT_GROUP_PROTOCOL, UNKNOWN_MEMBER_ID, GROUP_MAX_SIZE_REACHED, or -ENOMEM as
 * KAFKA_E_UNKNOWN_SERVER_ERROR). MEMBER_ID_REQUIRED goes through the callback, since it
 * carries the minted member id.
 */
int16_t coll_groups_join(struct coll_groups *gs, const struct coll_join_req *jr,
                         struct coll_group_waiter *w);

/*
 * SyncGroup. assignments (member id, bytes) count only from the leader. Returns 0 when
 * w->on_sync runs (now or later), or an error code to answer at once (UNKNOWN_MEMBER_ID,
 * ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, ...).
 */
struct coll_sync_assignment {
    struct sl_bytes member_id;
    struct sl_bytes assignment;
};
int16_t coll_groups_sync(struct coll_groups *gs, struct sl_bytes group, int32_t generation,
                         struct sl_bytes member_id, struct sl_bytes instance_id,
                         const struct coll_sync_assignment *as, size_t nas,
                         struct coll_group_waiter *w);

/* Heartbeat: the error to answer (NONE, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
 * UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, COORDINATOR_NOT_AVAILABLE). instance_id: p NULL when
 * the request has none (before v3, or a dynamic member). */
int16_t coll_groups_heartbeat(struct coll_groups *gs, struct sl_bytes group, int32_t generation,
                              struct sl_bytes member_id, struct sl_bytes instance_id);

/* LeaveGroup: removes the member (answering its parked join with UNKNOWN_MEMBER_ID) and
 * rebalances the rest. Returns the error to answer. */
int16_t coll_groups_leave(struct coll_groups *gs, struct sl_bytes group, struct sl_bytes member_id);

/*
 * May (group, generation, member) commit offsets now? NONE, or the error Kafka gives:
 * a commit with a negative generation is a standalone commit, allowed when the group has no
 * members (the group is created, Empty, when it did not exist); otherwise an unknown member is
 * UNKNOWN_MEMBER_ID (FENCED_INSTANCE_ID for a replaced static member), another generation
 * ILLEGAL_GENERATION, and a commit during CompletingRebalance REBALANCE_IN_PROGRESS. A
 * member's commit also counts as a sign of life.
 */
int16_t coll_groups_commit_check(struct coll_groups *gs, struct sl_bytes group, int32_t generation,
                                 struct sl_bytes member_id, struct sl_bytes instance_id);

/* Creates the group (Empty) if it does not exist (committed offsets loaded at start make
 * their groups exist). Returns it, or NULL on -ENOMEM or a bad name. */
struct coll_group *coll_groups_ensure(struct coll_groups *gs, struct sl_bytes name);

/* At a graceful stop: answers every parked JoinGroup and SyncGroup with NOT_COORDINATOR
 * (clients look for the coordinator again and rejoin), as Kafka does when it unloads a group. */
void coll_groups_unload(struct coll_groups *gs);

/* Removes group (Empty only; DeleteGroups and offset expiry). Returns NONE, GROUP_ID_NOT_FOUND
 * or NON_EMPTY_GROUP. */
int16_t coll_groups_delete(struct coll_groups *gs, struct sl_bytes name);

/* Unparks a waiter whose request went away (its callback will not run). Safe on a waiter
 * that is not parked. */
void coll_group_waiter_cancel(struct coll_group_waiter *w);

/*
 * Acts on time: completes rebalances whose deadline passed, removes members whose session
 * timed out (rebalancing the rest) and expired pending member ids. Returns the milliseconds
 * until the next deadline (-1: none), for the caller's timer.
 */
int64_t coll_groups_tick(struct coll_groups *gs);

#endif
