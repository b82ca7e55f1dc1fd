/* A consumer-group member: join (with the v4+ MEMBER_ID_REQUIRED round trip), assign as the
 * leader, sync, heartbeat, commit and leave, blocking, for the command line and the sinks. */
#ifndef SL_CLI_KC_MEMBER_H
#define SL_CLI_KC_MEMBER_H

#include "collector/cli/kc_group.h"

/*
 * The life of a member:
 *
 *   init --> join --------------------------> stable --(fetch, commit, heartbeat)--> leave
 *            |  FindCoordinator                 ^   |
 *            |  JoinGroup ("" -> MEMBER_ID_      |   | heartbeat or commit says
 *            |    REQUIRED -> JoinGroup again)   |   | REBALANCE_IN_PROGRESS,
 *            |  leader: Metadata, assign         |   | ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID
 *            |  SyncGroup -> assignment ---------+   v   or NOT_COORDINATOR: KC_EREJOIN
 *            +<-------------------------------------join again (commit first if possible)
 */

struct kc_member_opts {
    int32_t session_ms;        /* the coordinator drops a member silent this long */
    int32_t rebalance_ms;      /* how long a rebalance waits for members to rejoin */
    int32_t heartbeat_ms;      /* interval between heartbeats (well under session_ms) */
    enum kc_assignor prefs[2]; /* assignors offered, preferred first */
    size_t nprefs;
};

#define KC_MEMBER_OPTS_DEFAULT                                                                     \
    ((struct kc_member_opts){.session_ms = 30000,                                                  \
                             .rebalance_ms = 60000,                                                \
                             .heartbeat_ms = 3000,                                                 \
                             .prefs = {KC_ASSIGN_RANGE, KC_ASSIGN_ROUNDROBIN},                     \
                             .nprefs = 2})

struct kc_member {
    struct kc_client *cl;     /* borrowed */
    char *group;              /* owned */
    struct kc_strlist topics; /* owned: the subscription */
    struct kc_member_opts opts;
    struct kc_conn *coord; /* borrowed from cl; NULL until found */
    char *member_id;       /* owned; "" before the first join */
    int32_t generation;    /* -1 outside a generation */
    char *protocol;        /* owned: the assignor the group chose */
    bool leader;
    struct kc_tplist assigned; /* owned, sorted */
    int64_t last_heartbeat;    /* kc_now_ms() */
};

/* Prepares a member of group subscribing to topics[0..n). Returns 0 or -ENOMEM (m is safe to
 * fini either way). */
int kc_member_init(struct kc_member *m, struct kc_client *cl, const char *group,
                   const char *const *topics, size_t n, const struct kc_member_opts *opts);

/* Frees what m owns (the coordinator connection belongs to the client); NULL-safe. It does
 * not leave the group: call kc_member_leave first. */
void kc_member_fini(struct kc_member *m);

/*
 * Joins (or rejoins) the group and waits for this generation's assignment, in m->assigned.
 * Returns 0; KC_EUNREACH; a Kafka error that joining again cannot cure (err says which);
 * -EINTR.
 */
int kc_member_join(struct kc_member *m, struct sl_err *err);

/* Sends a heartbeat when heartbeat_ms passed since the last one. Returns 0, KC_EREJOIN when
 * the group rebalances or forgot us (call kc_member_join), or another error. */
int kc_member_heartbeat(struct kc_member *m, struct sl_err *err);

/* Commits offsets (the next offset to read, per partition) in this generation. Returns 0,
 * KC_EREJOIN, or another error. */
int kc_member_commit(struct kc_member *m, struct kc_tplist *offsets, struct sl_err *err);

/* The committed offsets of the assignment: a copy of m->assigned with offsets (-1: none). */
int kc_member_committed(struct kc_member *m, struct kc_tplist *out, struct sl_err *err);

/* Leaves the group so the others rebalance at once instead of after session_ms. Returns 0 or
 * an error (callers on their way out only report it). */
int kc_member_leave(struct kc_member *m, struct sl_err *err);

#endif
