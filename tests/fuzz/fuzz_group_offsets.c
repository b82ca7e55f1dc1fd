/* Fuzz target: arbitrary bytes as the committed-offsets log (collector/group_offsets.c), loaded
 * by coll_goff_open. Must never crash or leak; whatever it kept must reopen identically, with
 * nothing left to cut. The first byte picks the mode, the rest is the file:
 *   bit 0  prepend a valid header (so the records themselves get the fuzzing)
 *   bit 1  a tiny compaction threshold (compaction at open and after every write)
 *   bit 2  commit, remove a topic and expire before closing
 *   bit 3  recompute every record's CRC first, so arbitrary bodies reach the decoder */
#include "collector/group_offsets.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    size_t entries;
    size_t bytes;
    char topic[64];
};

/* Touches every byte the store hands out, so ASan checks the strings it built. */
static void visit(const struct coll_goff_entry *e, void *arg)
{
    struct seen *s = arg;
    s->entries++;
    s->bytes += strlen(e->group) + strlen(e->topic) + (e->metadata ? strlen(e->metadata) : 0);
    if (!s->topic[0] && strlen(e->topic) < sizeof(s->topic))
        strcpy(s->topic, e->topic);
}

static void visit_group(const char *group, size_t entries, void *arg)
{
    struct seen *s = arg;
    s->bytes += strlen(group) + entries;
}

/* Walks the frames after the 8-byte header and gives each whole record a matching CRC-32C
 * (of its 4 length bytes, then its body), as the writer would have. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t pos = 8;
    while (pos + 8 <= n) {
        uint32_t len = sl_be32(p + pos);
        if (len == 0 || len > n - pos - 8)
            break;
        sl_put_be32(p + pos + 4, sl_crc32c(sl_crc32c(0, p + pos, 4), p + pos + 8, len));
        pos += 8 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sl_log_threshold = SL_LOG_CRIT; /* every corrupt input warns */
    uint8_t mode = data[0];
    char dir[] = "/tmp/sl-fuzz-goff-XXXXXX";
    if (!mkdtemp(dir))
        return 0;
    char path[64], tmp[80];
    snprintf(path, sizeof(path), "%s/%s", dir, COLL_GOFF_FILE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    size_t head = (mode & 1) ? 8 : 0, n = head + size - 1;
    uint8_t *file = malloc(n + 1);
    if (!file)
        goto cleanup;
    memcpy(file, "SLGO\0\0\0\1", head);
    memcpy(file + head, data + 1, size - 1);
    if (mode & 8)
        fix_crcs(file, n);
    FILE *fp = fopen(path, "wb");
    bool ok = fp && fwrite(file, 1, n, fp) == n;
    ok = fp && fclose(fp) == 0 && ok;
    free(file);
    if (!ok)
        goto cleanup;

    struct coll_goff_opts opts = {.compact_min_bytes = (mode & 2) ? 64 : 0};
    struct coll_goff *g = NULL;
    struct sl_err err;
    if (coll_goff_open(dir, &opts, &g, &err) != 0)
        goto cleanup; /* refused (not ours, newer): fine, as long as nothing leaked */
    struct seen s = {0};
    coll_goff_foreach(g, NULL, visit, &s);
    coll_goff_foreach_group(g, visit_group, &s);
    struct coll_goff_stats before;
    coll_goff_stats(g, &before);
    if (s.entries != before.entries)
        abort();
    if (mode & 4) {
        coll_goff_put(g, "fuzz", "t", 0, 42, -1, NULL, 1, &err);
        coll_goff_put(g, "fuzz", s.topic, 1, 43, 0, "m", 2, &err);
        coll_goff_flush(g, true, &err);
        coll_goff_delete_topic(g, s.topic, &err);
        coll_goff_expire(g, NULL, 2, NULL, &err);
        coll_goff_stats(g, &before);
    }
    coll_goff_close(g);

    /* What the first open kept (and cut) must load again exactly, with nothing to cut. */
    g = NULL;
    if (coll_goff_open(dir, &opts, &g, &err) != 0)
        abort();
    struct coll_goff_stats after;
    coll_goff_stats(g, &after);
    if (after.entries != before.entries || after.groups != before.groups ||
        after.live_bytes != before.live_bytes || after.truncated_bytes != 0)
        abort();
    coll_goff_close(g);

cleanup:
    unlink(tmp);
    unlink(path);
    rmdir(dir);
    return 0;
}
