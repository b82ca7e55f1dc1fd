/* Fetch sessions (KIP-227): the broker's cache of what each consumer fetches. Pure logic. */
#ifndef SL_COLLECTOR_FETCH_SESSION_H
#define SL_COLLECTOR_FETCH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka's FetchMetadata constants. */
#define COLL_FSESS_INVALID_ID    0
#define COLL_FSESS_INITIAL_EPOCH 0
#define COLL_FSESS_FINAL_EPOCH   (-1)

/* Most partitions one session, and all sessions together, may hold (adds beyond are refused):
 * about 100 bytes each, so the cache stays under ~100 MB whatever clients send. */
#define COLL_FSESS_MAX_PARTS       100000
#define COLL_FSESS_MAX_TOTAL_PARTS 1000000

/* One partition of a session: the request parameters last sent for it, and what the last
 * response told the client about it (hw -1: unknown, send it next time). */
struct coll_fsess_part {
    char *topic; /* owned; the wire bytes (may hold NULs), NUL-terminated */
    size_t topic_len;
    int32_t partition;
    int64_t fetch_offset;
    int32_t max_bytes;
    int64_t hw, log_start;
    bool forgotten; /* marked by coll_fsess_forget, dropped by coll_fsess_compact */
    bool to_end;    /* marked by the caller for coll_fsess_move_to_end */
};

struct coll_fsess {
    int32_t id;
    int32_t epoch;                 /* what the next incremental request must carry */
    int64_t last_used_ms;          /* for expiry */
    struct coll_fsess_part *parts; /* owned; insertion order = response order */
    size_t nparts, cap;
    uint32_t *index;  /* owned; open addressing over parts: slot holds index + 1, 0 empty */
    size_t index_cap; /* a power of two >= 2 * cap, or 0 */
    size_t *total;    /* borrowed: the cache's total_parts */
};

struct coll_fsess_cache {
    struct coll_fsess **slots; /* owned; n used */
    size_t n, max;
    int64_t expiry_ms;  /* a session idle this long may be evicted */
    size_t total_parts; /* partitions held by all sessions */
    uint64_t rng;       /* session id generator (xorshift) */
};

/* Initialises an empty cache of at most max sessions (0: sessions disabled; every full fetch
 * is answered without one). seed picks the first ids. Returns 0 or -ENOMEM. */
int coll_fsess_cache_init(struct coll_fsess_cache *c, size_t max, int64_t expiry_ms, uint64_t seed);
/* Frees every session (NULL-safe, idempotent). */
void coll_fsess_cache_fini(struct coll_fsess_cache *c);

/* The session with id, or NULL. */
struct coll_fsess *coll_fsess_find(struct coll_fsess_cache *c, int32_t id);

/*
 * Makes room for and creates an empty session for a full fetch of nparts partitions, as Kafka's
 * FetchSessionCache does for a client: when the cache is full, the least recently used session
 * idle for at least expiry_ms is evicted; else the session with the fewest partitions (the least
 * recently used of those), if it has fewer than nparts; else there is no room. The new session
 * has a random nonzero id, epoch 1 and last_used now_ms. Returns it, or NULL when there is no
 * room (or memory): the fetch is then answered with session id 0.
 */
struct coll_fsess *coll_fsess_create(struct coll_fsess_cache *c, size_t nparts, int64_t now_ms);

/* Removes and frees the session with id; returns whether there was one. */
bool coll_fsess_remove(struct coll_fsess_cache *c, int32_t id);

/* Marks s used at now_ms and moves its epoch on (MAX wraps to 1, as Kafka's nextEpoch). */
void coll_fsess_touch(struct coll_fsess *s, int64_t now_ms);

/* The partition (topic, partition) of s, or NULL. */
struct coll_fsess_part *coll_fsess_get(struct coll_fsess *s, const char *topic, size_t topic_len,
                                       int32_t partition);

/* Adds (topic, partition) at the end of s with hw and log_start -1, or updates its fetch offset
 * and max bytes (a forgotten mark is cleared). Returns 0, -ENOMEM, or -E2BIG past
 * COLL_FSESS_MAX_PARTS in s or COLL_FSESS_MAX_TOTAL_PARTS in its cache (s is unchanged on
 * failure). */
int coll_fsess_upsert(struct coll_fsess *s, const char *topic, size_t topic_len, int32_t partition,
                      int64_t fetch_offset, int32_t max_bytes);

/* Marks (topic, partition) forgotten; unknown ones are ignored. */
void coll_fsess_forget(struct coll_fsess *s, const char *topic, size_t topic_len,
                       int32_t partition);

/* Drops the forgotten partitions, keeping the others' order (allocates nothing). */
void coll_fsess_compact(struct coll_fsess *s);

/* Moves the partitions marked to_end behind the others, both keeping their order, and clears
 * the marks: Kafka's round-robin, so that partitions which just returned records come last
 * in the next responses, after the ones max_bytes cut off. Without memory the order stays. */
void coll_fsess_move_to_end(struct coll_fsess *s);

#endif
