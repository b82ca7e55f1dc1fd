/* Internals shared by the group_offsets*.c files: the table, the staging area, the codec. */
#ifndef SL_COLLECTOR_GROUP_OFFSETS_PRIV_H
#define SL_COLLECTOR_GROUP_OFFSETS_PRIV_H

#include "collector/group_offsets.h"
#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The prefix of every log line of this store. */
#define GOFF_WHO "group-offsets"

/* ---- open-addressing table (group_offsets_table.c) ---------------------------------------- */

/* One slot; item NULL means empty. The hash is kept so growing and probing never rehash. */
struct goff_slot {
    uint64_t hash;
    void *item; /* borrowed here; the owner of the table owns the items */
};

/* Linear probing, power-of-two capacity, at most 3/4 full, deletion by backward shift (so no
 * tombstones ever slow lookups down). */
struct goff_table {
    struct goff_slot *slots; /* owned */
    size_t cap, count;
};

struct goff_entry {
    char *topic;    /* owned, NUL-terminated */
    char *metadata; /* owned; NULL when committed as null */
    int64_t offset;
    int64_t ts_ms;
    int32_t partition;
    int32_t leader_epoch;
    uint16_t topic_len;
    uint16_t meta_len;
};

struct goff_group {
    char *name; /* owned, NUL-terminated */
    uint16_t name_len;
    struct goff_table entries; /* of struct goff_entry, keyed by (topic, partition) */
};

/* How to take back one staged put when its flush fails. */
enum goff_undo_kind {
    GOFF_UNDO_INSERTED, /* the entry was new: remove it (and its group when that empties) */
    GOFF_UNDO_REPLACED, /* the entry existed: restore the values below */
};

struct goff_undo {
    enum goff_undo_kind kind;
    struct goff_group *grp; /* borrowed from the table */
    struct goff_entry *e;   /* borrowed from the table */
    int64_t offset;
    int64_t ts_ms;
    int32_t leader_epoch;
    uint16_t meta_len;
    char *metadata; /* owned until applied or dropped; NULL for null */
};

struct coll_goff {
    char *dir;      /* owned: data_dir */
    char *path;     /* owned: <dir>/.group-offsets.log */
    char *tmp_path; /* owned: <path>.tmp, the compaction's temp file */
    int fd;
    /* The file's valid length: records are written there with pwrite, so bytes of a failed
     * write that could not be cut off are overwritten by the next one. */
    uint64_t file_bytes;
    uint64_t live_bytes; /* header + one commit record per entry */
    uint64_t compact_min;
    uint64_t compact_retry_at; /* after a failed compaction, not before the file is this long */
    bool unsynced;             /* written since the last fdatasync */
    bool dir_unsynced;         /* a rename's directory fsync failed; retried before next sync */
    struct goff_table groups;  /* of struct goff_group, keyed by name */
    size_t nentries;
    struct sl_buf wbuf;     /* staged records */
    struct goff_undo *undo; /* owned array, one per staged put, oldest first */
    size_t nundo, undo_cap;
    uint64_t compactions;
    uint64_t truncated_bytes;
};

/* Hash of a group name. */
uint64_t coll_goff_hash_name(const char *p, size_t len);
/* Hash of an entry's key. */
uint64_t coll_goff_hash_key(const char *topic, size_t len, int32_t partition);

/* Makes room for `extra` more items, growing to keep the table at most 3/4 full. Returns 0 or
 * -ENOMEM (the table is then unchanged). */
int coll_goff_table_reserve(struct goff_table *t, size_t extra);
/* Inserts item with its hash; room must have been reserved. */
void coll_goff_table_insert(struct goff_table *t, uint64_t hash, void *item);
/* Removes the slot holding item (which must be there). */
void coll_goff_table_remove(struct goff_table *t, uint64_t hash, const void *item);
/* Frees the slots (not the items). NULL-safe on an empty table. */
void coll_goff_table_fini(struct goff_table *t);

/* The group named p[0..len), or NULL. */
struct goff_group *coll_goff_group_find(struct coll_goff *g, const char *p, size_t len);
/* The entry of grp for (topic[0..len), partition), or NULL. */
struct goff_entry *coll_goff_entry_find(struct goff_group *grp, const char *topic, size_t len,
                                        int32_t partition);

/* The bytes one commit record takes in the file, frame included. */
uint64_t coll_goff_commit_size(size_t group_len, size_t topic_len, size_t meta_len);

/* One decoded or to-be-encoded record. Strings are borrowed views (meta.p NULL: null). */
struct goff_rec {
    uint8_t type; /* GOFF_REC_* */
    struct sl_bytes group, topic, meta;
    int32_t partition;
    int32_t leader_epoch;
    int64_t offset;
    int64_t ts_ms;
};

enum {
    GOFF_REC_COMMIT = 1,
    GOFF_REC_DELETE_GROUP = 2,
    GOFF_REC_DELETE_TOPIC = 3,
    GOFF_REC_TOMBSTONE = 4,
};

/*
 * Applies a commit to the table: inserts or replaces (group, topic, partition). With undo
 * non-NULL the replaced values move into *undo (which says how to take the change back);
 * without, they are freed. Every allocation comes first: on -ENOMEM nothing changed.
 */
int coll_goff_upsert(struct coll_goff *g, const struct goff_rec *r, struct goff_undo *undo);
/* Takes back one staged put (the newest first) and releases what undo owns. */
void coll_goff_undo_apply(struct coll_goff *g, struct goff_undo *undo);
/* Removes and frees one entry, and its group when that empties. */
void coll_goff_entry_remove(struct coll_goff *g, struct goff_group *grp, struct goff_entry *e);
/* Removes and frees a group and all its entries. */
void coll_goff_group_remove(struct coll_goff *g, struct goff_group *grp);
/* Removes every entry of topic[0..len) from every group; returns how many went. */
size_t coll_goff_topic_remove(struct coll_goff *g, const char *topic, size_t len);
/* True when some group holds an entry of topic[0..len). */
bool coll_goff_topic_present(struct coll_goff *g, const char *topic, size_t len);
/* Frees every group and entry. */
void coll_goff_table_clear(struct coll_goff *g);

/* ---- records and the file (group_offsets.c) ---------------------------------------------- */

/* The bytes r takes in the file, frame included. */
size_t coll_goff_rec_size(const struct goff_rec *r);
/* Encodes r (frame, body and CRC) at p, which has coll_goff_rec_size(r) bytes. */
void coll_goff_rec_encode(const struct goff_rec *r, uint8_t *p);
/* Appends r to b. Returns 0 or -ENOMEM (b then unchanged and without a sticky error). */
int coll_goff_rec_append(struct sl_buf *b, const struct goff_rec *r);

/* Writes p[0..n) at the file's valid end (n may be 0) and advances file_bytes; with sync, first
 * retries a failed directory sync, then fdatasync()s. On failure cuts the file back and returns
 * -errno with err naming the file; file_bytes is then unchanged. */
int coll_goff_write(struct coll_goff *g, const uint8_t *p, size_t n, bool sync, struct sl_err *err);
/* pwrite()s all of p[0..n) at off. Returns 0 or -errno (-EIO for a write of 0 bytes). */
int coll_goff_pwrite_all(int fd, const void *p, size_t n, uint64_t off);
/* Cuts the file back to file_bytes after a failed write; logs when that fails too. */
void coll_goff_cut_back(struct coll_goff *g);
/* fsync()s the data directory, clearing dir_unsynced. Returns 0 or -errno (err names it). */
int coll_goff_sync_dir(struct coll_goff *g, struct sl_err *err);
/* Rewrites the file as the table (nothing may be staged). Returns 0, or -errno / -ENOMEM with
 * the old file still in use. */
int coll_goff_snapshot(struct coll_goff *g, struct sl_err *err);
/* Compacts when the file has outgrown its live set and threshold; a failure is logged and
 * retried only once the file has grown by another threshold. */
void coll_goff_maybe_compact(struct coll_goff *g);

#endif
