/* The in-memory table of committed offsets: groups by name, each with its entries by (topic,
 * partition), in small open-addressing hash tables. */
#include "collector/group_offsets_priv.h"

#include "common/base.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>

/*
 * Two levels, so that what the Kafka APIs ask per group is proportional to the group:
 *
 *   g->groups    name -> struct goff_group       ListGroups, DeleteGroups, expiry
 *     grp->entries  (topic, partition) -> struct goff_entry    OffsetCommit/OffsetFetch
 *
 * A group exists exactly while it holds at least one entry. Deleting a topic visits every
 * group (it is rare). Every table keeps each item's hash in its slot.
 */

/* FNV-1a, then a finalizer (murmur3's fmix64) so that consecutive partitions of one topic
 * spread over the whole table. */
static uint64_t fnv1a(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

static uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t coll_goff_hash_name(const char *p, size_t len)
{
    return fmix64(fnv1a(p, len));
}

uint64_t coll_goff_hash_key(const char *topic, size_t len, int32_t partition)
{
    return fmix64(fnv1a(topic, len) ^ ((uint64_t)(uint32_t)partition * 0x9e3779b97f4a7c15ULL));
}

static void slots_put(struct goff_slot *slots, size_t cap, uint64_t hash, void *item)
{
    size_t mask = cap - 1;
    size_t i = (size_t)hash & mask;
    while (slots[i].item)
        i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].item = item;
}

int coll_goff_table_reserve(struct goff_table *t, size_t extra)
{
    size_t need = t->count + extra;
    if (t->cap && need <= t->cap - t->cap / 4)
        return 0;
    size_t cap = t->cap ? t->cap : 8;
    while (need > cap - cap / 4) {
        if (cap > SIZE_MAX / 2 / sizeof(struct goff_slot))
            return -ENOMEM;
        cap *= 2;
    }
    struct goff_slot *slots = sl_calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].item)
            slots_put(slots, cap, t->slots[i].hash, t->slots[i].item);
    sl_free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

void coll_goff_table_insert(struct goff_table *t, uint64_t hash, void *item)
{
    SL_ASSERT(t->count < t->cap);
    slots_put(t->slots, t->cap, hash, item);
    t->count++;
}

void coll_goff_table_remove(struct goff_table *t, uint64_t hash, const void *item)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)hash & mask;
    while (t->slots[i].item != item) {
        SL_ASSERT(t->slots[i].item);
        i = (i + 1) & mask;
    }
    t->slots[i].item = NULL;
    t->count--;
    /* Backward shift: pull later members of the probe run into the hole when their home slot
     * does not lie cyclically in (hole, j], so every item stays reachable from its home. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j].item)
            break;
        size_t home = (size_t)t->slots[j].hash & mask;
        bool stays = i < j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        t->slots[i] = t->slots[j];
        t->slots[j].item = NULL;
        i = j;
    }
}

void coll_goff_table_fini(struct goff_table *t)
{
    SL_FREE(t->slots);
    t->cap = 0;
    t->count = 0;
}

struct goff_group *coll_goff_group_find(struct coll_goff *g, const char *p, size_t len)
{
    if (!g->groups.cap)
        return NULL;
    uint64_t h = coll_goff_hash_name(p, len);
    size_t mask = g->groups.cap - 1;
    for (size_t i = (size_t)h & mask; g->groups.slots[i].item; i = (i + 1) & mask) {
        struct goff_group *grp = g->groups.slots[i].item;
        if (g->groups.slots[i].hash == h && grp->name_len == len && memcmp(grp->name, p, len) == 0)
            return grp;
    }
    return NULL;
}

struct goff_entry *coll_goff_entry_find(struct goff_group *grp, const char *topic, size_t len,
                                        int32_t partition)
{
    struct goff_table *t = &grp->entries;
    if (!t->cap)
        return NULL;
    uint64_t h = coll_goff_hash_key(topic, len, partition);
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask; t->slots[i].item; i = (i + 1) & mask) {
        struct goff_entry *e = t->slots[i].item;
        if (t->slots[i].hash == h && e->partition == partition && e->topic_len == len &&
            memcmp(e->topic, topic, len) == 0)
            return e;
    }
    return NULL;
}

uint64_t coll_goff_commit_size(size_t group_len, size_t topic_len, size_t meta_len)
{
    struct goff_rec r = {.type = GOFF_REC_COMMIT,
                         .group = {(const uint8_t *)"", group_len},
                         .topic = {(const uint8_t *)"", topic_len},
                         .meta = {(const uint8_t *)"", meta_len}};
    return coll_goff_rec_size(&r);
}

static uint64_t entry_size(const struct goff_group *grp, const struct goff_entry *e)
{
    return coll_goff_commit_size(grp->name_len, e->topic_len, e->meta_len);
}

/* A NUL-terminated copy of a view; "" for an empty one. */
static char *copy_bytes(struct sl_bytes b)
{
    char *s = sl_malloc(b.len + 1);
    if (!s)
        return NULL;
    if (b.len)
        memcpy(s, b.p, b.len);
    s[b.len] = '\0';
    return s;
}

static void entry_free(struct goff_entry *e)
{
    sl_free(e->topic);
    sl_free(e->metadata);
    sl_free(e);
}

static void group_free(struct goff_group *grp)
{
    for (size_t i = 0; i < grp->entries.cap; i++)
        if (grp->entries.slots[i].item)
            entry_free(grp->entries.slots[i].item);
    coll_goff_table_fini(&grp->entries);
    sl_free(grp->name);
    sl_free(grp);
}

int coll_goff_upsert(struct coll_goff *g, const struct goff_rec *r, struct goff_undo *undo)
{
    const char *gname = (const char *)r->group.p;
    const char *topic = (const char *)r->topic.p;
    struct goff_group *grp = coll_goff_group_find(g, gname, r->group.len);
    struct goff_entry *e =
        grp ? coll_goff_entry_find(grp, topic, r->topic.len, r->partition) : NULL;
    char *meta = NULL;
    if (r->meta.p && !(meta = copy_bytes(r->meta)))
        return -ENOMEM;

    if (e) {
        g->live_bytes -= entry_size(grp, e);
        if (undo) {
            *undo = (struct goff_undo){.kind = GOFF_UNDO_REPLACED,
                                       .grp = grp,
                                       .e = e,
                                       .offset = e->offset,
                                       .ts_ms = e->ts_ms,
                                       .leader_epoch = e->leader_epoch,
                                       .meta_len = e->meta_len,
                                       .metadata = e->metadata};
        } else {
            sl_free(e->metadata);
        }
        e->metadata = meta;
        e->meta_len = (uint16_t)r->meta.len;
        e->offset = r->offset;
        e->ts_ms = r->ts_ms;
        e->leader_epoch = r->leader_epoch;
        g->live_bytes += entry_size(grp, e);
        return 0;
    }

    /* A new entry, maybe in a new group: allocate everything before linking anything. */
    struct goff_group *new_grp = NULL;
    e = sl_calloc(1, sizeof(*e));
    if (!e || !(e->topic = copy_bytes(r->topic)))
        goto nomem;
    if (!grp) {
        if (coll_goff_table_reserve(&g->groups, 1))
            goto nomem;
        new_grp = sl_calloc(1, sizeof(*new_grp));
        if (!new_grp || !(new_grp->name = copy_bytes(r->group)))
            goto nomem;
        new_grp->name_len = (uint16_t)r->group.len;
        grp = new_grp;
    }
    if (coll_goff_table_reserve(&grp->entries, 1))
        goto nomem;
    e->topic_len = (uint16_t)r->topic.len;
    e->partition = r->partition;
    e->metadata = meta;
    e->meta_len = (uint16_t)r->meta.len;
    e->offset = r->offset;
    e->ts_ms = r->ts_ms;
    e->leader_epoch = r->leader_epoch;
    if (new_grp)
        coll_goff_table_insert(&g->groups, coll_goff_hash_name(grp->name, grp->name_len), grp);
    coll_goff_table_insert(&grp->entries, coll_goff_hash_key(e->topic, e->topic_len, e->partition),
                           e);
    g->nentries++;
    g->live_bytes += entry_size(grp, e);
    if (undo)
        *undo = (struct goff_undo){.kind = GOFF_UNDO_INSERTED, .grp = grp, .e = e};
    return 0;

nomem:
    if (e) {
        sl_free(e->topic);
        sl_free(e);
    }
    if (new_grp)
        group_free(new_grp);
    sl_free(meta);
    return -ENOMEM;
}

void coll_goff_undo_apply(struct coll_goff *g, struct goff_undo *u)
{
    if (u->kind == GOFF_UNDO_INSERTED) {
        coll_goff_entry_remove(g, u->grp, u->e);
        return;
    }
    struct goff_entry *e = u->e;
    g->live_bytes -= entry_size(u->grp, e);
    sl_free(e->metadata);
    e->metadata = u->metadata;
    e->meta_len = u->meta_len;
    e->offset = u->offset;
    e->ts_ms = u->ts_ms;
    e->leader_epoch = u->leader_epoch;
    g->live_bytes += entry_size(u->grp, e);
    u->metadata = NULL;
}

static void group_unlink(struct coll_goff *g, struct goff_group *grp)
{
    coll_goff_table_remove(&g->groups, coll_goff_hash_name(grp->name, grp->name_len), grp);
}

void coll_goff_entry_remove(struct coll_goff *g, struct goff_group *grp, struct goff_entry *e)
{
    g->live_bytes -= entry_size(grp, e);
    g->nentries--;
    coll_goff_table_remove(&grp->entries, coll_goff_hash_key(e->topic, e->topic_len, e->partition),
                           e);
    entry_free(e);
    if (grp->entries.count == 0) {
        group_unlink(g, grp);
        group_free(grp);
    }
}

void coll_goff_group_remove(struct coll_goff *g, struct goff_group *grp)
{
    for (size_t i = 0; i < grp->entries.cap; i++) {
        struct goff_entry *e = grp->entries.slots[i].item;
        if (e) {
            g->live_bytes -= entry_size(grp, e);
            g->nentries--;
        }
    }
    group_unlink(g, grp);
    group_free(grp);
}

size_t coll_goff_topic_remove(struct coll_goff *g, const char *topic, size_t len)
{
    size_t removed = 0;
    /* A removal shifts later members of its probe run back into the hole: an item not seen yet
     * only ever moves to the hole's slot or past it (one that wraps around from the table's
     * start was seen already), so re-examining that slot (j--, i--) misses nothing. */
    for (size_t i = 0; i < g->groups.cap; i++) {
        struct goff_group *grp = g->groups.slots[i].item;
        if (!grp)
            continue;
        bool gone = false;
        for (size_t j = 0; !gone && j < grp->entries.cap; j++) {
            struct goff_entry *e = grp->entries.slots[j].item;
            if (e && e->topic_len == len && memcmp(e->topic, topic, len) == 0) {
                gone = grp->entries.count == 1; /* then the group goes with it */
                coll_goff_entry_remove(g, grp, e);
                removed++;
                j--; /* unsigned wrap at 0 is undone by the loop's j++ */
            }
        }
        if (gone)
            i--;
    }
    return removed;
}

bool coll_goff_topic_present(struct coll_goff *g, const char *topic, size_t len)
{
    for (size_t i = 0; i < g->groups.cap; i++) {
        struct goff_group *grp = g->groups.slots[i].item;
        for (size_t j = 0; grp && j < grp->entries.cap; j++) {
            struct goff_entry *e = grp->entries.slots[j].item;
            if (e && e->topic_len == len && memcmp(e->topic, topic, len) == 0)
                return true;
        }
    }
    return false;
}

void coll_goff_table_clear(struct coll_goff *g)
{
    for (size_t i = 0; i < g->groups.cap; i++)
        if (g->groups.slots[i].item)
            group_free(g->groups.slots[i].item);
    coll_goff_table_fini(&g->groups);
    g->nentries = 0;
}
