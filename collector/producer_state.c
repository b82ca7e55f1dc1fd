/* Idempotent producers: producer ids and the per producer-partition sequence window. */
#include "collector/producer_state.h"

#include "common/mem.h"

#include <errno.h>
#include <string.h>

/*
 * Sequence numbers are int32 and wrap from INT32_MAX to 0, like Kafka's. A batch carries
 * baseSequence and covers count = lastOffsetDelta + 1 sequences:
 *
 *   window (oldest .. newest)          incoming batch
 *   [0..9] [10..19] [20..29]           [30..39]  expected: last_seq + 1   -> APPEND
 *                                      [10..19]  equals a remembered one  -> DUPLICATE
 *                                      [45..49]  anything else            -> OUT_OF_ORDER
 */

#define PSTATE_MAX_ENTRIES 100000
#define PSTATE_BUCKETS     1024

static int32_t seq_add(int32_t seq, int32_t n)
{
    int64_t v = (int64_t)seq + n;
    if (v > INT32_MAX)
        v -= (int64_t)INT32_MAX + 1;
    return (int32_t)v;
}

static size_t pstate_hash(int64_t id, const char *topic, int32_t partition)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)id;
    for (const char *p = topic; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h = (h ^ (uint32_t)partition) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

int coll_pstate_init(struct coll_pstate *ps, int64_t first_id)
{
    memset(ps, 0, sizeof(*ps));
    ps->buckets = sl_calloc(PSTATE_BUCKETS, sizeof(*ps->buckets));
    if (!ps->buckets)
        return -ENOMEM;
    ps->nbuckets = PSTATE_BUCKETS;
    ps->next_id = first_id > 0 ? first_id : 1;
    return 0;
}

static void entry_free(struct coll_pstate_entry *e)
{
    sl_free(e->topic);
    sl_free(e);
}

void coll_pstate_fini(struct coll_pstate *ps)
{
    if (!ps || !ps->buckets)
        return;
    for (size_t i = 0; i < ps->nbuckets; i++) {
        struct coll_pstate_entry *e = ps->buckets[i];
        while (e) {
            struct coll_pstate_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    SL_FREE(ps->buckets);
    ps->count = 0;
}

int64_t coll_pstate_new_id(struct coll_pstate *ps)
{
    return ps->next_id++;
}

static struct coll_pstate_entry *find(struct coll_pstate *ps, int64_t id, const char *topic,
                                      int32_t partition)
{
    struct coll_pstate_entry *e = ps->buckets[pstate_hash(id, topic, partition) % ps->nbuckets];
    for (; e; e = e->next)
        if (e->producer_id == id && e->partition == partition && strcmp(e->topic, topic) == 0)
            return e;
    return NULL;
}

enum coll_pstate_verdict coll_pstate_check(struct coll_pstate *ps, int64_t producer_id,
                                           int16_t epoch, const char *topic, int32_t partition,
                                           int32_t first_seq, int32_t count, int64_t *dup_offset)
{
    if (producer_id < 0 || first_seq < 0 || count <= 0)
        return COLL_PSTATE_APPEND;
    struct coll_pstate_entry *e = find(ps, producer_id, topic, partition);
    if (!e || e->n == 0 || epoch > e->epoch)
        return COLL_PSTATE_APPEND;
    if (epoch < e->epoch)
        return COLL_PSTATE_FENCED;
    int32_t last_seq = seq_add(first_seq, count - 1);
    for (size_t i = 0; i < e->n; i++) {
        const struct coll_pstate_batch *b = &e->win[(e->head + i) % COLL_PSTATE_WINDOW];
        if (b->first_seq == first_seq && b->last_seq == last_seq) {
            *dup_offset = b->base_offset;
            return COLL_PSTATE_DUPLICATE;
        }
    }
    const struct coll_pstate_batch *newest = &e->win[(e->head + e->n - 1) % COLL_PSTATE_WINDOW];
    if (first_seq != seq_add(newest->last_seq, 1))
        return COLL_PSTATE_OUT_OF_ORDER;
    return COLL_PSTATE_APPEND;
}

int coll_pstate_record(struct coll_pstate *ps, int64_t producer_id, int16_t epoch,
                       const char *topic, int32_t partition, int32_t first_seq, int32_t count,
                       int64_t base_offset)
{
    if (producer_id < 0 || first_seq < 0 || count <= 0)
        return 0;
    struct coll_pstate_entry *e = find(ps, producer_id, topic, partition);
    if (!e) {
        if (ps->count >= PSTATE_MAX_ENTRIES)
            return -ENOMEM;
        e = sl_calloc(1, sizeof(*e));
        if (!e)
            return -ENOMEM;
        e->topic = sl_strdup(topic);
        if (!e->topic) {
            sl_free(e);
            return -ENOMEM;
        }
        e->producer_id = producer_id;
        e->partition = partition;
        size_t b = pstate_hash(producer_id, topic, partition) % ps->nbuckets;
        e->next = ps->buckets[b];
        ps->buckets[b] = e;
        ps->count++;
    }
    if (epoch != e->epoch) {
        e->epoch = epoch;
        e->n = 0;
        e->head = 0;
    }
    struct coll_pstate_batch nb = {first_seq, seq_add(first_seq, count - 1), base_offset};
    if (e->n == COLL_PSTATE_WINDOW) {
        e->win[e->head] = nb;
        e->head = (e->head + 1) % COLL_PSTATE_WINDOW;
    } else {
        e->win[(e->head + e->n) % COLL_PSTATE_WINDOW] = nb;
        e->n++;
    }
    return 0;
}

void coll_pstate_forget_partition(struct coll_pstate *ps, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < ps->nbuckets; i++) {
        struct coll_pstate_entry **pp = &ps->buckets[i];
        while (*pp) {
            struct coll_pstate_entry *e = *pp;
            if (e->partition == partition && strcmp(e->topic, topic) == 0) {
                *pp = e->next;
                entry_free(e);
                ps->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}
