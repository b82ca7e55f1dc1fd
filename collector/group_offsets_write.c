/* The committed-offsets API: staging commits and flushing them with rollback, lookups and
 * iteration, and the durable removals (group, topic, expiry). */
#include "collector/group_offsets_priv.h"

#include "common/mem.h"

#include <errno.h>
#include <string.h>

/*
 * A put changes the table at once and appends its record to wbuf, remembering in undo[] how to
 * take the change back. A flush writes wbuf with one pwrite at the end of the valid file:
 *
 *   put put put       table: new values        wbuf: [c1][c2][c3]   undo: u1 u2 u3
 *   flush ok          file += [c1][c2][c3]     wbuf, undo emptied (old metadata freed)
 *   flush failed      file cut back            undo applied u3, u2, u1: table as before
 *
 * Removals (group, topic, expiry) go the other way round: flush what is staged, write and sync
 * their records, and only then change the table, so they need no undo.
 */

/* After a flush, buffers grown past these by a large request are given back. */
#define WBUF_KEEP ((size_t)1 << 20)
#define UNDO_KEEP 4096

static int check_name(const char *what, const char *s, size_t *len, struct sl_err *err)
{
    if (!s)
        return sl_err_set(err, -EINVAL, "%s is null", what);
    *len = strnlen(s, (size_t)COLL_GOFF_NAME_MAX + 1);
    if (*len > COLL_GOFF_NAME_MAX)
        return sl_err_set(err, SL_ETOOBIG, "%s is longer than %d bytes", what, COLL_GOFF_NAME_MAX);
    return 0;
}

int coll_goff_put(struct coll_goff *g, const char *group, const char *topic, int32_t partition,
                  int64_t offset, int32_t leader_epoch, const char *metadata, int64_t ts_ms,
                  struct sl_err *err)
{
    size_t glen = 0, tlen = 0, mlen = 0;
    int rc;
    if ((rc = check_name("group id", group, &glen, err)) ||
        (rc = check_name("topic", topic, &tlen, err)))
        return rc;
    if (partition < 0)
        return sl_err_set(err, -EINVAL, "partition %d of topic '%s' is negative", (int)partition,
                          topic);
    if (metadata) {
        mlen = strnlen(metadata, (size_t)COLL_GOFF_METADATA_MAX + 1);
        if (mlen > COLL_GOFF_METADATA_MAX)
            return sl_err_set(err, COLL_GOFF_EMETADATA,
                              "metadata of group '%s' for %s-%d is longer than %d bytes", group,
                              topic, (int)partition, COLL_GOFF_METADATA_MAX);
    }
    struct goff_rec r = {
        .type = GOFF_REC_COMMIT,
        .group = {(const uint8_t *)group, glen},
        .topic = {(const uint8_t *)topic, tlen},
        .meta = {(const uint8_t *)metadata, mlen},
        .partition = partition,
        .leader_epoch = leader_epoch,
        .offset = offset,
        .ts_ms = ts_ms,
    };
    if (g->nundo == g->undo_cap) {
        size_t cap = g->undo_cap ? g->undo_cap * 2 : 16;
        struct goff_undo *u = sl_realloc(g->undo, cap * sizeof(*u));
        if (!u)
            return sl_err_set(err, -ENOMEM, "staging a commit: out of memory");
        g->undo = u;
        g->undo_cap = cap;
    }
    /* Room in wbuf first, the table last: the table change is the one step that cannot fail
     * once its allocations are done. */
    size_t size = coll_goff_rec_size(&r);
    if (sl_buf_reserve(&g->wbuf, size)) {
        g->wbuf.err = 0;
        return sl_err_set(err, -ENOMEM, "staging a commit: out of memory");
    }
    if ((rc = coll_goff_upsert(g, &r, &g->undo[g->nundo])))
        return sl_err_set(err, rc, "staging a commit: out of memory");
    g->nundo++;
    coll_goff_rec_encode(&r, g->wbuf.data + g->wbuf.len);
    g->wbuf.len += size;
    return 0;
}

int coll_goff_flush(struct coll_goff *g, bool sync, struct sl_err *err)
{
    bool need_sync = sync && (g->unsynced || g->dir_unsynced);
    if (g->wbuf.len == 0 && !need_sync)
        return 0;
    int rc = coll_goff_write(g, g->wbuf.data, g->wbuf.len, sync, err);
    if (rc) {
        for (size_t i = g->nundo; i-- > 0;)
            coll_goff_undo_apply(g, &g->undo[i]);
    } else {
        for (size_t i = 0; i < g->nundo; i++)
            sl_free(g->undo[i].metadata);
    }
    g->nundo = 0;
    sl_buf_reset(&g->wbuf);
    if (g->wbuf.cap > WBUF_KEEP)
        sl_buf_fini(&g->wbuf);
    if (g->undo_cap > UNDO_KEEP) {
        SL_FREE(g->undo);
        g->undo_cap = 0;
    }
    if (rc == 0)
        coll_goff_maybe_compact(g);
    return rc;
}

static void fill_entry(const struct goff_group *grp, const struct goff_entry *e,
                       struct coll_goff_entry *out)
{
    *out = (struct coll_goff_entry){
        .group = grp->name,
        .topic = e->topic,
        .partition = e->partition,
        .offset = e->offset,
        .leader_epoch = e->leader_epoch,
        .metadata = e->metadata,
        .commit_ts_ms = e->ts_ms,
    };
}

bool coll_goff_get(struct coll_goff *g, const char *group, const char *topic, int32_t partition,
                   struct coll_goff_entry *out)
{
    if (!group || !topic)
        return false;
    struct goff_group *grp = coll_goff_group_find(g, group, strlen(group));
    struct goff_entry *e = grp ? coll_goff_entry_find(grp, topic, strlen(topic), partition) : NULL;
    if (!e)
        return false;
    fill_entry(grp, e, out);
    return true;
}

static void foreach_in(const struct goff_group *grp,
                       void (*fn)(const struct coll_goff_entry *e, void *arg), void *arg)
{
    for (size_t j = 0; j < grp->entries.cap; j++) {
        const struct goff_entry *e = grp->entries.slots[j].item;
        if (e) {
            struct coll_goff_entry out;
            fill_entry(grp, e, &out);
            fn(&out, arg);
        }
    }
}

void coll_goff_foreach(struct coll_goff *g, const char *group,
                       void (*fn)(const struct coll_goff_entry *e, void *arg), void *arg)
{
    if (group) {
        struct goff_group *grp = coll_goff_group_find(g, group, strlen(group));
        if (grp)
            foreach_in(grp, fn, arg);
        return;
    }
    for (size_t i = 0; i < g->groups.cap; i++)
        if (g->groups.slots[i].item)
            foreach_in(g->groups.slots[i].item, fn, arg);
}

void coll_goff_foreach_group(struct coll_goff *g,
                             void (*fn)(const char *group, size_t entries, void *arg), void *arg)
{
    for (size_t i = 0; i < g->groups.cap; i++) {
        const struct goff_group *grp = g->groups.slots[i].item;
        if (grp)
            fn(grp->name, grp->entries.count, arg);
    }
}

/* Encodes n records, writes and syncs them. Returns 0 or an error with err filled. */
static int write_records(struct coll_goff *g, const struct goff_rec *recs, size_t n,
                         struct sl_err *err)
{
    struct sl_buf b;
    sl_buf_init(&b);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = coll_goff_rec_append(&b, &recs[i]);
    if (rc)
        sl_err_set(err, rc, "writing to %s: out of memory", g->path);
    else
        rc = coll_goff_write(g, b.data, b.len, true, err);
    sl_buf_fini(&b);
    return rc;
}

int coll_goff_delete_group(struct coll_goff *g, const char *group, struct sl_err *err)
{
    size_t len = 0;
    int rc;
    if ((rc = check_name("group id", group, &len, err)) || (rc = coll_goff_flush(g, false, err)))
        return rc;
    struct goff_group *grp = coll_goff_group_find(g, group, len);
    if (!grp)
        return 0;
    struct goff_rec r = {.type = GOFF_REC_DELETE_GROUP, .group = {(const uint8_t *)group, len}};
    if ((rc = write_records(g, &r, 1, err)))
        return rc;
    coll_goff_group_remove(g, grp);
    coll_goff_maybe_compact(g);
    return 0;
}

int coll_goff_delete_topic(struct coll_goff *g, const char *topic, struct sl_err *err)
{
    size_t len = 0;
    int rc;
    if ((rc = check_name("topic", topic, &len, err)) || (rc = coll_goff_flush(g, false, err)))
        return rc;
    /* Nothing live means nothing in the file comes back at the next open either. */
    if (!coll_goff_topic_present(g, topic, len))
        return 0;
    struct goff_rec r = {.type = GOFF_REC_DELETE_TOPIC, .topic = {(const uint8_t *)topic, len}};
    if ((rc = write_records(g, &r, 1, err)))
        return rc;
    coll_goff_topic_remove(g, topic, len);
    coll_goff_maybe_compact(g);
    return 0;
}

struct expired {
    struct goff_group *grp; /* borrowed */
    struct goff_entry *e;   /* borrowed */
};

/* Appends the entries of grp committed before before_ms to v (sized by the caller's count). */
static size_t collect_expired(struct goff_group *grp, int64_t before_ms, struct expired *v,
                              size_t n)
{
    for (size_t j = 0; j < grp->entries.cap; j++) {
        struct goff_entry *e = grp->entries.slots[j].item;
        if (e && e->ts_ms < before_ms) {
            if (v)
                v[n] = (struct expired){grp, e};
            n++;
        }
    }
    return n;
}

int coll_goff_expire(struct coll_goff *g, const char *group, int64_t before_ms, size_t *removed,
                     struct sl_err *err)
{
    size_t len = 0;
    int rc;
    if (removed)
        *removed = 0;
    if ((group && (rc = check_name("group id", group, &len, err))) ||
        (rc = coll_goff_flush(g, false, err)))
        return rc;
    struct goff_group *only = group ? coll_goff_group_find(g, group, len) : NULL;
    if (group && !only)
        return 0;
    /* Count, then collect, so the records and the removals cover exactly the same entries. */
    size_t n = 0;
    for (size_t i = 0; i < g->groups.cap; i++) {
        struct goff_group *grp = g->groups.slots[i].item;
        if (grp && (!only || grp == only))
            n = collect_expired(grp, before_ms, NULL, n);
    }
    if (n == 0)
        return 0;
    struct expired *v = sl_calloc(n, sizeof(*v));
    struct goff_rec *recs = sl_calloc(n, sizeof(*recs));
    if (!v || !recs) {
        rc = sl_err_set(err, -ENOMEM, "expiring offsets: out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->groups.cap; i++) {
        struct goff_group *grp = g->groups.slots[i].item;
        if (grp && (!only || grp == only))
            k = collect_expired(grp, before_ms, v, k);
    }
    for (size_t i = 0; i < n; i++)
        recs[i] = (struct goff_rec){
            .type = GOFF_REC_TOMBSTONE,
            .group = {(const uint8_t *)v[i].grp->name, v[i].grp->name_len},
            .topic = {(const uint8_t *)v[i].e->topic, v[i].e->topic_len},
            .partition = v[i].e->partition,
        };
    if ((rc = write_records(g, recs, n, err)))
        goto out;
    /* A group goes with its last entry, which is also the last of its entries in v. */
    for (size_t i = 0; i < n; i++)
        coll_goff_entry_remove(g, v[i].grp, v[i].e);
    if (removed)
        *removed = n;
    coll_goff_maybe_compact(g);
out:
    sl_free(v);
    sl_free(recs);
    return rc;
}
