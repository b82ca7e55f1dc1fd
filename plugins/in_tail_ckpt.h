/* in_tail's checkpoint file: per followed file its identity and the offset up to which every
 * line was acknowledged, written atomically. */
#ifndef SL_PLUGINS_IN_TAIL_CKPT_H
#define SL_PLUGINS_IN_TAIL_CKPT_H

#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

/*
 * The file, text, one entry per line, fields separated by one space (the path last, so it may
 * hold spaces; paths with a newline are not written):
 *
 *   sluice-tail-checkpoint 1
 *   <dev> <ino> <fp_len> <fp_crc32c, 8 hex digits> <offset> <path>
 *   ...
 *
 * fp_len and fp_crc32c fingerprint the file's first fp_len bytes (0..IN_TAIL_FP_MAX): with
 * dev and ino they tell the same file from a new one that reused the inode.
 */

#define IN_TAIL_FP_MAX 256

struct in_tail_ckpt_entry {
    uint64_t dev;
    uint64_t ino;
    uint32_t fp_len;
    uint32_t fp_crc;
    uint64_t offset;
    char *path; /* owned by the loaded table; borrowed when saving */
};

struct in_tail_ckpt {
    struct in_tail_ckpt_entry *items; /* owned */
    size_t len;
};

/*
 * Reads `file` into c (zeroed by the caller). A missing file is an empty table. Lines that
 * do not parse are skipped and counted in *skipped (may be NULL): a damaged checkpoint costs
 * duplicates, never a refusal to start. Returns 0, -ENOMEM, SL_ECORRUPT for a file without the
 * header line, or -errno from reading; err says which file. c is left empty on failure.
 */
int in_tail_ckpt_load(const char *file, struct in_tail_ckpt *c, size_t *skipped,
                      struct sl_err *err);

/* Releases c's memory; NULL-safe. */
void in_tail_ckpt_fini(struct in_tail_ckpt *c);

/* The entry of c for that device and inode, or NULL; the caller compares its fingerprint. */
const struct in_tail_ckpt_entry *in_tail_ckpt_find(const struct in_tail_ckpt *c, uint64_t dev,
                                                   uint64_t ino);

/*
 * Writes the n entries to `file` atomically: `file.tmp` is written, fsynced and renamed over
 * `file`, then the folder is fsynced, so a crash leaves the old or the new table, never a mix.
 * Returns 0 or -errno with err naming the step.
 */
int in_tail_ckpt_save(const char *file, const struct in_tail_ckpt_entry *e, size_t n,
                      struct sl_err *err);

#endif
