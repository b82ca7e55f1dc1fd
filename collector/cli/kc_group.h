/* Consumer groups on the wire: FindCoordinator (v0-2), JoinGroup (v0-5), SyncGroup (v0-3),
 * Heartbeat (v0-3), LeaveGroup (v0-1), OffsetCommit (v2-7), OffsetFetch (v1-5), ListGroups
 * (v0-2), DescribeGroups (v0-2); the "consumer" protocol's subscription and assignment, and the
 * range and roundrobin assignors. */
#ifndef SL_CLI_KC_GROUP_H
#define SL_CLI_KC_GROUP_H

#include "collector/cli/kclient.h"

/* A topic-partition with an offset: an assignment, a commit, or a committed offset. */
struct kc_tp {
    char *topic; /* owned */
    int32_t partition;
    int64_t offset;     /* -1: none */
    int16_t error_code; /* per-partition answer */
};

struct kc_tplist {
    struct kc_tp *items; /* owned */
    size_t len, cap;
};

/* Appends (topic, partition, offset); the topic is copied. Returns 0 or -ENOMEM. */
int kc_tplist_add(struct kc_tplist *l, const char *topic, size_t topic_len, int32_t partition,
                  int64_t offset);
/* Frees the items; the list is then empty and reusable. NULL-safe. */
void kc_tplist_fini(struct kc_tplist *l);
/* Sorts by topic, then partition. */
void kc_tplist_sort(struct kc_tplist *l);
/* The entry for (topic, partition), or NULL. */
struct kc_tp *kc_tplist_find(const struct kc_tplist *l, const char *topic, int32_t partition);

/* A list of owned strings. */
struct kc_strlist {
    char **items; /* owned, each owned */
    size_t len;
};
/* Frees every string and the array; NULL-safe. */
void kc_strlist_fini(struct kc_strlist *l);

/* ---- The "consumer" protocol (ConsumerProtocol v0) ------------------------------------------ */

/* Appends a Subscription v0: version int16 (0), topics ARRAY of STRING, user_data BYTES (null). */
void kc_cproto_sub_encode(struct sl_buf *b, const char *const *topics, size_t n);
/* Decodes a Subscription (v0 or later: later fields are ignored) into topics. Returns 0,
 * -ENOMEM, or SL_EPARSE/SL_ETRUNC with err set. */
int kc_cproto_sub_decode(struct sl_bytes m, struct kc_strlist *topics, struct sl_err *err);
/* Appends an Assignment v0 of a (sorted by topic): version int16 (0), assigned_partitions
 * ARRAY of [topic STRING, partitions ARRAY of int32], user_data BYTES (null). */
void kc_cproto_assign_encode(struct sl_buf *b, const struct kc_tplist *a);
/* Decodes an Assignment (v0 or later) into out (offsets -1). An empty m is no assignment. */
int kc_cproto_assign_decode(struct sl_bytes m, struct kc_tplist *out, struct sl_err *err);

/* ---- Assignors ---------------------------------------------------------------------------- */

enum kc_assignor { KC_ASSIGN_RANGE, KC_ASSIGN_ROUNDROBIN };

/* "range" or "roundrobin": the protocol names Kafka's clients use. */
const char *kc_assignor_name(enum kc_assignor a);
/* Parses a name as above. Returns 0 or -EINVAL. */
int kc_assignor_parse(const char *s, enum kc_assignor *out);

/* A member as the leader sees it in the JoinGroup answer. */
struct kc_gmember {
    char *member_id;           /* owned */
    struct kc_strlist topics;  /* owned: its subscription */
    struct kc_tplist assigned; /* owned: filled by kc_assign */
};

struct kc_topic_parts {
    const char *topic; /* borrowed */
    int32_t nparts;
};

/*
 * Kafka's range or roundrobin assignment of the partitions of t[0..nt) to members m[0..nm)
 * (each gets the partitions of the topics it subscribed to; members are ordered by member id,
 * as Kafka's assignors do, so every leader computes the same answer). Returns 0 or -ENOMEM.
 */
int kc_assign(enum kc_assignor a, struct kc_gmember *m, size_t nm, const struct kc_topic_parts *t,
              size_t nt);

/* ---- Requests ----------------------------------------------------------------------------- */

/* Finds the group's coordinator (retrying while it loads) and connects to it under
 * KC_COORD_NODE. Returns 0, KC_EUNREACH, or a Kafka error. */
int kc_find_coordinator(struct kc_client *cl, const char *group, struct kc_conn **out,
                        struct sl_err *err);

struct kc_join_res {
    int16_t error_code;
    int32_t generation;
    char *protocol;             /* owned */
    char *leader;               /* owned */
    char *member_id;            /* owned */
    struct kc_gmember *members; /* owned: filled for the leader only */
    size_t nmembers;
};
/* Frees what a JoinGroup answer decoded into j; NULL-safe, safe on a half-filled j. */
void kc_join_res_fini(struct kc_join_res *j);

/* Appends a JoinGroup v0-5 body with one protocol per assignor in prefs[0..n) (the first
 * preferred), each with the subscription `sub` as metadata. */
void kc_join_req(struct sl_buf *b, int16_t version, const char *group, int32_t session_ms,
                 int32_t rebalance_ms, const char *member_id, const enum kc_assignor *prefs,
                 size_t n, struct sl_bytes sub);
/* Decodes a JoinGroup v0-5 answer (members' subscriptions decoded). Returns 0, -ENOMEM or the
 * reader's error. */
int kc_join_parse(struct sl_reader *r, int16_t version, struct kc_join_res *j, struct sl_err *err);

/* Appends a SyncGroup v0-3 body: the leader sends every member's assignment, others none. */
void kc_sync_req(struct sl_buf *b, int16_t version, const char *group, int32_t generation,
                 const char *member_id, const struct kc_gmember *m, size_t nm);
/* Decodes a SyncGroup v0-3 answer: error code and our assignment. */
int kc_sync_parse(struct sl_reader *r, int16_t version, int16_t *code, struct kc_tplist *assigned,
                  struct sl_err *err);

/* Appends an OffsetCommit v2-7 body for l's offsets (generation -1 and member "" for a commit
 * outside the group's generations, as admin tools make). */
void kc_commit_req(struct sl_buf *b, int16_t version, const char *group, int32_t generation,
                   const char *member_id, const struct kc_tplist *l);
/* Decodes an OffsetCommit answer into l's error codes. */
int kc_commit_parse(struct sl_reader *r, int16_t version, struct kc_tplist *l, struct sl_err *err);

/* Appends an OffsetFetch v1-5 body: the partitions of l, or every partition (v2+) when l is
 * NULL. */
void kc_offset_fetch_req(struct sl_buf *b, int16_t version, const char *group,
                         const struct kc_tplist *l);
/* Decodes an OffsetFetch answer: the committed offsets into out (appended; -1 when none), and
 * the group-level error code (v2+, else 0) into *code. */
int kc_offset_fetch_parse(struct sl_reader *r, int16_t version, struct kc_tplist *out,
                          int16_t *code, struct sl_err *err);

/* Commits l's offsets to the group (coordinator found here). Returns 0, a per-partition Kafka
 * error, or a network error. */
int kc_group_commit(struct kc_client *cl, const char *group, int32_t generation,
                    const char *member_id, struct kc_tplist *l, struct sl_err *err);

/* The group's committed offsets for l's partitions, set in place (-1 when none). Returns 0, or
 * an error (KC_ENOTFOUND never: a group without commits has offsets -1). */
int kc_group_committed(struct kc_client *cl, const char *group, struct kc_tplist *l,
                       struct sl_err *err);
/* Every committed offset of the group, appended to out. */
int kc_group_committed_all(struct kc_client *cl, const char *group, struct kc_tplist *out,
                           struct sl_err *err);

/* One group of a ListGroups answer. */
struct kc_group_info {
    char *group_id;      /* owned */
    char *protocol_type; /* owned */
};

/* Lists the groups of every broker metadata names (each coordinates some). Appends to *out
 * (n entries). Returns 0 or an error. */
int kc_list_groups(struct kc_client *cl, struct kc_group_info **out, size_t *n, struct sl_err *err);
/* Decodes a ListGroups v0-2 answer, appending groups not already in *out. Returns 0, the
 * answer's error code as a Kafka error, -ENOMEM, or the reader's error. */
int kc_list_groups_parse(struct sl_reader *r, int16_t version, struct kc_group_info **out,
                         size_t *n, struct sl_err *err);
/* Frees n group infos and the array; g may be NULL. */
void kc_group_infos_free(struct kc_group_info *g, size_t n);

struct kc_dmember {
    char *member_id, *client_id, *client_host; /* owned */
    struct kc_tplist assigned;                 /* owned: decoded "consumer" assignment */
};

struct kc_group_desc {
    int16_t error_code;
    char *group_id, *state, *protocol_type, *protocol; /* owned */
    struct kc_dmember *members;                        /* owned */
    size_t nmembers;
};
/* Frees what d owns; NULL-safe, safe on a half-filled d. */
void kc_group_desc_fini(struct kc_group_desc *d);

/* Describes one group (DescribeGroups v0-2 to its coordinator). Returns 0 with d filled (its
 * error_code may be set), or an error. */
int kc_describe_group(struct kc_client *cl, const char *group, struct kc_group_desc *d,
                      struct sl_err *err);
/* Decodes a DescribeGroups v0-2 answer about one group into d (zeroed by the caller), the
 * members' "consumer" assignments included. Returns 0, -ENOMEM, or the reader's error. */
int kc_describe_groups_parse(struct sl_reader *r, int16_t version, struct kc_group_desc *d,
                             struct sl_err *err);

#endif
