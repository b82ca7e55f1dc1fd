/* Fetch sessions (KIP-227): the broker's cache of what each consumer fetches. Pure logic. */
#include "collector/fetch_session.h"

#include "common/mem.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>

/*
 * The session state machine, as Kafka's FetchManager.newContext (FetchMetadata of a request:
 * session_id, session_epoch):
 *
 *   (0, -1)     full fetch, no session (what librdkafka 2.0 and kafka-python 2.0 send)
 *   (0, 0)      full fetch; creates a session if there is room: answered with its id
 *   (id, 0)     full fetch; closes session id, then creates a new one as (0, 0)
 *   (id, -1)    full fetch; closes session id, no new session
 *   (id, e > 0) incremental: id unknown -> FETCH_SESSION_ID_NOT_FOUND; e != the session's
 *               epoch -> INVALID_FETCH_SESSION_EPOCH; else the listed partitions are added or
 *               updated, forgotten_topics_data removed, the epoch moves on and the answer holds
 *               only partitions with records, a changed high watermark or log start, or an
 *               error. A session left empty is closed (the answer is then a full one, id 0).
 *   (0, e > 0)  incremental with no id: FETCH_SESSION_ID_NOT_FOUND
 *
 * Sessions belong to clients, not connections: a session outlives the connection that made it
 * and is dropped only when closed, replaced, or evicted to make room (see coll_fsess_create).
 */

/* ---- per-session index ------------------------------------------------------------------ */

static uint32_t part_hash(const char *topic, size_t len, int32_t partition)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 16777619u;
    h = (h ^ (uint32_t)partition) * 16777619u;
    return h ^ (h >> 15);
}

static bool part_is(const struct coll_fsess_part *p, const char *topic, size_t len,
                    int32_t partition)
{
    return p->partition == partition && p->topic_len == len && memcmp(p->topic, topic, len) == 0;
}

/* Puts parts[i] in the index (which has room). */
static void index_put(struct coll_fsess *s, size_t i)
{
    const struct coll_fsess_part *p = &s->parts[i];
    size_t mask = s->index_cap - 1;
    size_t at = part_hash(p->topic, p->topic_len, p->partition) & mask;
    while (s->index[at])
        at = (at + 1) & mask;
    s->index[at] = (uint32_t)i + 1;
}

/* Rebuilds the index with at least 2 * want slots. Returns 0 or -ENOMEM (s unchanged). */
static int index_rebuild(struct coll_fsess *s, size_t want)
{
    size_t cap = 16;
    while (cap < 2 * want)
        cap *= 2;
    uint32_t *idx = sl_calloc(cap, sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    sl_free(s->index);
    s->index = idx;
    s->index_cap = cap;
    for (size_t i = 0; i < s->nparts; i++)
        index_put(s, i);
    return 0;
}

struct coll_fsess_part *coll_fsess_get(struct coll_fsess *s, const char *topic, size_t topic_len,
                                       int32_t partition)
{
    if (!s->index_cap)
        return NULL;
    size_t mask = s->index_cap - 1;
    for (size_t at = part_hash(topic, topic_len, partition) & mask; s->index[at];
         at = (at + 1) & mask) {
        struct coll_fsess_part *p = &s->parts[s->index[at] - 1];
        if (part_is(p, topic, topic_len, partition))
            return p;
    }
    return NULL;
}

int coll_fsess_upsert(struct coll_fsess *s, const char *topic, size_t topic_len, int32_t partition,
                      int64_t fetch_offset, int32_t max_bytes)
{
    struct coll_fsess_part *p = coll_fsess_get(s, topic, topic_len, partition);
    if (p) {
        p->fetch_offset = fetch_offset;
        p->max_bytes = max_bytes;
        p->forgotten = false;
        return 0;
    }
    if (s->nparts >= COLL_FSESS_MAX_PARTS || *s->total >= COLL_FSESS_MAX_TOTAL_PARTS)
        return -E2BIG;
    if (s->nparts == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct coll_fsess_part *np = sl_realloc(s->parts, cap * sizeof(*np));
        if (!np)
            return -ENOMEM;
        s->parts = np;
        s->cap = cap;
    }
    if (s->index_cap < 2 * s->cap && index_rebuild(s, s->cap) != 0)
        return -ENOMEM;
    char *name = sl_malloc(topic_len + 1);
    if (!name)
        return -ENOMEM;
    if (topic_len)
        memcpy(name, topic, topic_len);
    name[topic_len] = 0;
    s->parts[s->nparts] = (struct coll_fsess_part){
        .topic = name,
        .topic_len = topic_len,
        .partition = partition,
        .fetch_offset = fetch_offset,
        .max_bytes = max_bytes,
        .hw = -1,
        .log_start = -1,
    };
    index_put(s, s->nparts);
    s->nparts++;
    (*s->total)++;
    return 0;
}

void coll_fsess_forget(struct coll_fsess *s, const char *topic, size_t topic_len, int32_t partition)
{
    struct coll_fsess_part *p = coll_fsess_get(s, topic, topic_len, partition);
    if (p)
        p->forgotten = true;
}

/* Re-indexes every part in place (the slot count stays: nothing is allocated). */
static void index_refill(struct coll_fsess *s)
{
    if (!s->index_cap)
        return;
    memset(s->index, 0, s->index_cap * sizeof(*s->index));
    for (size_t i = 0; i < s->nparts; i++)
        index_put(s, i);
}

void coll_fsess_compact(struct coll_fsess *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i].forgotten) {
            sl_free(s->parts[i].topic);
            continue;
        }
        s->parts[kept++] = s->parts[i];
    }
    if (kept == s->nparts)
        return;
    *s->total -= s->nparts - kept;
    s->nparts = kept;
    index_refill(s);
}

void coll_fsess_move_to_end(struct coll_fsess *s)
{
    size_t m = 0;
    for (size_t i = 0; i < s->nparts; i++)
        m += s->parts[i].to_end;
    if (m == 0 || m == s->nparts) {
        for (size_t i = 0; i < s->nparts; i++)
            s->parts[i].to_end = false;
        return;
    }
    struct coll_fsess_part *moved = sl_malloc(m * sizeof(*moved));
    size_t kept = 0, k = 0;
    for (size_t i = 0; i < s->nparts; i++) {
        struct coll_fsess_part p = s->parts[i];
        p.to_end = false;
        if (moved && s->parts[i].to_end)
            moved[k++] = p;
        else
            s->parts[kept++] = p;
    }
    if (!moved)
        return; /* no memory: the order stays, which only costs fairness */
    memcpy(&s->parts[kept], moved, m * sizeof(*moved));
    sl_free(moved);
    index_refill(s);
}

/* ---- the cache -------------------------------------------------------------------------- */

static void sess_free(struct coll_fsess *s)
{
    if (!s)
        return;
    *s->total -= s->nparts;
    for (size_t i = 0; i < s->nparts; i++)
        sl_free(s->parts[i].topic);
    sl_free(s->parts);
    sl_free(s->index);
    sl_free(s);
}

int coll_fsess_cache_init(struct coll_fsess_cache *c, size_t max, int64_t expiry_ms, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->max = max;
    c->expiry_ms = expiry_ms;
    c->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    if (max && !(c->slots = sl_calloc(max, sizeof(*c->slots))))
        return -ENOMEM;
    return 0;
}

void coll_fsess_cache_fini(struct coll_fsess_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        sess_free(c->slots[i]);
    SL_FREE(c->slots);
    c->n = 0;
}

static ssize_t slot_of(struct coll_fsess_cache *c, int32_t id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i]->id == id)
            return (ssize_t)i;
    return -1;
}

struct coll_fsess *coll_fsess_find(struct coll_fsess_cache *c, int32_t id)
{
    if (id == COLL_FSESS_INVALID_ID)
        return NULL;
    ssize_t i = slot_of(c, id);
    return i < 0 ? NULL : c->slots[i];
}

static void slot_drop(struct coll_fsess_cache *c, size_t i)
{
    sess_free(c->slots[i]);
    c->slots[i] = c->slots[--c->n];
}

bool coll_fsess_remove(struct coll_fsess_cache *c, int32_t id)
{
    if (id == COLL_FSESS_INVALID_ID)
        return false;
    ssize_t i = slot_of(c, id);
    if (i < 0)
        return false;
    slot_drop(c, (size_t)i);
    return true;
}

/* Kafka's eviction for a non-follower client: a stale session first, else a smaller one. */
static bool make_room(struct coll_fsess_cache *c, size_t nparts, int64_t now_ms)
{
    if (c->n < c->max)
        return true;
    ssize_t lru = -1, small = -1;
    for (size_t i = 0; i < c->n; i++) {
        const struct coll_fsess *s = c->slots[i];
        if (lru < 0 || s->last_used_ms < c->slots[lru]->last_used_ms)
            lru = (ssize_t)i;
        if (small < 0 || s->nparts < c->slots[small]->nparts ||
            (s->nparts == c->slots[small]->nparts &&
             s->last_used_ms < c->slots[small]->last_used_ms))
            small = (ssize_t)i;
    }
    if (lru >= 0 && now_ms - c->slots[lru]->last_used_ms >= c->expiry_ms) {
        slot_drop(c, (size_t)lru);
        return true;
    }
    if (small >= 0 && c->slots[small]->nparts < nparts) {
        slot_drop(c, (size_t)small);
        return true;
    }
    return false;
}

static int32_t new_id(struct coll_fsess_cache *c)
{
    for (;;) {
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        int32_t id = (int32_t)(c->rng & 0x7fffffff);
        if (id != COLL_FSESS_INVALID_ID && slot_of(c, id) < 0)
            return id;
    }
}

struct coll_fsess *coll_fsess_create(struct coll_fsess_cache *c, size_t nparts, int64_t now_ms)
{
    if (!c->max || !make_room(c, nparts, now_ms))
        return NULL;
    struct coll_fsess *s = sl_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->id = new_id(c);
    s->total = &c->total_parts;
    s->epoch = 1;
    s->last_used_ms = now_ms;
    c->slots[c->n++] = s;
    return s;
}

void coll_fsess_touch(struct coll_fsess *s, int64_t now_ms)
{
    s->last_used_ms = now_ms;
    s->epoch = s->epoch == INT32_MAX ? 1 : s->epoch + 1;
}
