/* Idempotent producers: producer ids and the per producer-partition sequence window. */
#ifndef SL_COLLECTOR_PRODUCER_STATE_H
#define SL_COLLECTOR_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Batches remembered per producer-partition for duplicate detection (Kafka's 5 in flight). */
#define COLL_PSTATE_WINDOW 5

struct coll_pstate_batch {
    int32_t first_seq, last_seq;
    int64_t base_offset;
};

struct coll_pstate_entry {
    int64_t producer_id;
    int16_t epoch;
    char *topic; /* owned */
    int32_t partition;
    struct coll_pstate_batch win[COLL_PSTATE_WINDOW]; /* ring, newest at (head + n - 1) */
    size_t head, n;
    struct coll_pstate_entry *next;
};

/* All producer-partition states, in a chained hash table. */
struct coll_pstate {
    struct coll_pstate_entry **buckets; /* owned */
    size_t nbuckets, count;
    int64_t next_id;
};

/* What a batch is, for its producer. */
enum coll_pstate_verdict {
    COLL_PSTATE_APPEND = 0,   /* new and in sequence (or not idempotent): append it */
    COLL_PSTATE_DUPLICATE,    /* already appended: answer with *dup_offset, do not append */
    COLL_PSTATE_OUT_OF_ORDER, /* a gap or a sequence from the past beyond the window */
    COLL_PSTATE_FENCED,       /* an epoch older than the one seen */
};

/* Initializes with producer ids starting at first_id (> 0). Returns 0 or -ENOMEM. */
int coll_pstate_init(struct coll_pstate *ps, int64_t first_id);
/* Frees every entry. NULL-safe, idempotent. */
void coll_pstate_fini(struct coll_pstate *ps);

/* A fresh producer id. */
int64_t coll_pstate_new_id(struct coll_pstate *ps);

/*
 * Checks a batch (producer_id >= 0, first_seq..first_seq+count-1 with wrap at INT32_MAX)
 * against the state of (producer, topic, partition) without changing it. An unknown producer
 * or a newer epoch accepts any sequence (the state was lost with a restart, or the producer
 * bumped its epoch). On COLL_PSTATE_DUPLICATE *dup_offset is the first offset it got.
 */
enum coll_pstate_verdict coll_pstate_check(struct coll_pstate *ps, int64_t producer_id,
                                           int16_t epoch, const char *topic, int32_t partition,
                                           int32_t first_seq, int32_t count, int64_t *dup_offset);

/* Records an appended batch. Returns 0 or -ENOMEM (the state is then unchanged: a retry of
 * that batch may be appended twice, the price of running out of memory). */
int coll_pstate_record(struct coll_pstate *ps, int64_t producer_id, int16_t epoch,
                       const char *topic, int32_t partition, int32_t first_seq, int32_t count,
                       int64_t base_offset);

/* Forgets every state of a deleted partition. */
void coll_pstate_forget_partition(struct coll_pstate *ps, const char *topic, int32_t partition);

#endif
