/* in_journald's checkpoint: the cursor of the last acknowledged entry in a file written
 * atomically, the parts of a cursor the resume logic reads, and the queue that maps record
 * positions to the cursors a checkpoint may name. */
#ifndef SL_PLUGINS_IN_JOURNALD_CKPT_H
#define SL_PLUGINS_IN_JOURNALD_CKPT_H

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The file, text, two lines:
 *
 *   sluice-journald-checkpoint 1
 *   <cursor>
 *
 * The cursor is sd-journal's own string (sd_journal_get_cursor), e.g.
 *   s=c83a48ea6a69480695e6dcbba79cc998;i=1f;b=0123456789abcdef0123456789abcdef;m=3e8;
 *   t=60a24181e4000;x=8b52fc270ed91e88            (one line, no spaces)
 * s: sequence number id of the journal that wrote the entry, i: sequence number (hex),
 * b: boot id, m: monotonic time (us, hex), t: realtime (us since the epoch, hex), x: hash.
 * A cursor is printable ASCII without spaces, 1 to IN_JOURNALD_CURSOR_MAX bytes.
 */

#define IN_JOURNALD_CURSOR_MAX 512

/* What a cursor says; each part only when `has` says so. */
struct in_journald_cursor {
    char seqnum_id[33]; /* 32 lowercase hex digits */
    uint64_t seqnum;
    uint64_t realtime_us;
    bool has_seqnum_id, has_seqnum, has_realtime;
};

/*
 * Parses cursor c: ';'-separated key=value parts with one-letter keys; s and b must be 32 hex
 * digits, i, m, t and x hex numbers; unknown keys are skipped (newer sd-journal may add some).
 * Returns 0 with *out filled when c is a well-formed cursor naming at least a sequence number
 * (s and i) or a time (t, or b and m); SL_EPARSE otherwise.
 */
int in_journald_cursor_parse(const char *c, struct in_journald_cursor *out);

/*
 * Reads the checkpoint `file`. Returns 0 with *cursor set (owned by the caller, free with
 * sl_free) or left NULL when the file does not exist; SL_ECORRUPT when the file is not a
 * checkpoint or its cursor line is not a cursor (err says what was found, as a printable
 * excerpt); -ENOMEM; -errno from reading. err names the file. *cursor is NULL on failure.
 */
int in_journald_ckpt_load(const char *file, char **cursor, struct sl_err *err);

/* Writes cursor to `file` atomically (file.tmp written, fsynced, renamed, folder fsynced): a
 * crash leaves the old or the new checkpoint. Returns 0, SL_EPARSE for a cursor that cannot be
 * written (empty, too long, spaces or control bytes), or -errno with err naming the step. */
int in_journald_ckpt_save(const char *file, const char *cursor, struct sl_err *err);

/*
 * Record positions to cursors. A record's position is its entry's number in emission order;
 * the acknowledgement machinery reports "every record up to position P is acknowledged", and
 * P is always the end of one of the owner's spans. Only span ends can become checkpoints, so
 * the queue holds one cursor per span: a record that starts a span is pushed, one that
 * extends the newest span replaces the last item.
 *
 *   push(1,c1) push(2,c2) set_last(3,c3) push(4,c4)   ->  [1:c1] [3:c3] [4:c4]
 *   take(3) -> c3, queue [4:c4]
 */
struct in_journald_curq_item {
    uint64_t pos;
    char *cursor; /* owned */
};

struct in_journald_curq {
    struct in_journald_curq_item *items; /* owned ring of cap items */
    size_t head, len, cap;
};

/* Makes q empty; nothing to release until something is pushed. */
void in_journald_curq_init(struct in_journald_curq *q);

/* Frees every cursor and the ring; q is empty afterwards. NULL-safe. */
void in_journald_curq_fini(struct in_journald_curq *q);

/* Appends (pos, cursor), taking ownership of cursor (allocated with sl_malloc, or malloc:
 * it is freed with sl_free, which is free) even on failure. pos must be above every queued
 * position. Returns 0 or -ENOMEM (cursor freed). */
int in_journald_curq_push(struct in_journald_curq *q, uint64_t pos, char *cursor);

/* Replaces the newest item by (pos, cursor), or pushes it when q is empty; takes ownership of
 * cursor like push. Returns 0 or -ENOMEM. */
int in_journald_curq_set_last(struct in_journald_curq *q, uint64_t pos, char *cursor);

/* Removes every item with pos <= acked and returns the cursor of the last one removed (owned
 * by the caller), or NULL when none was. */
char *in_journald_curq_take(struct in_journald_curq *q, uint64_t acked);

#endif
