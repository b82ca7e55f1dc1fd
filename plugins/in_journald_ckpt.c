/* in_journald's checkpoint file (load, atomic save), cursor parsing and the position-to-cursor
 * queue. */
#include "plugins/in_journald_ckpt.h"

#include "common/buf.h"
#include "common/daemon_util.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_HEADER    "sluice-journald-checkpoint 1\n"
#define CKPT_MAX_BYTES 4096 /* a header and one cursor; anything bigger is not ours */

/* ---- cursors ------------------------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A hex number of 1 to 16 digits in p[0..n). */
static bool parse_hex64(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval(p[i]);
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

static bool is_id128(const char *p, size_t n)
{
    if (n != 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (hexval(p[i]) < 0)
            return false;
    return true;
}

/* Printable ASCII, no space: what a cursor line may hold. */
static bool cursor_chars_ok(const char *c, size_t n)
{
    if (n == 0 || n > IN_JOURNALD_CURSOR_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] <= 0x20 || (unsigned char)c[i] >= 0x7f)
            return false;
    return true;
}

int in_journald_cursor_parse(const char *c, struct in_journald_cursor *out)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(c);
    if (!cursor_chars_ok(c, len))
        return SL_EPARSE;
    bool has_boot = false, has_mono = false;
    const char *p = c, *end = c + len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        size_t n = (size_t)(stop - p);
        if (n < 2 || p[1] != '=')
            return SL_EPARSE;
        const char *v = p + 2;
        size_t vn = n - 2;
        uint64_t num;
        switch (p[0]) {
        case 's':
            if (!is_id128(v, vn))
                return SL_EPARSE;
            for (size_t i = 0; i < 32; i++)
                out->seqnum_id[i] = (char)(v[i] >= 'A' && v[i] <= 'F' ? v[i] - 'A' + 'a' : v[i]);
            out->seqnum_id[32] = '\0';
            out->has_seqnum_id = true;
            break;
        case 'b':
            if (!is_id128(v, vn))
                return SL_EPARSE;
            has_boot = true;
            break;
        case 'i':
            if (!parse_hex64(v, vn, &out->seqnum))
                return SL_EPARSE;
            out->has_seqnum = true;
            break;
        case 't':
            if (!parse_hex64(v, vn, &out->realtime_us))
                return SL_EPARSE;
            out->has_realtime = true;
            break;
        case 'm':
            if (!parse_hex64(v, vn, &num))
                return SL_EPARSE;
            has_mono = true;
            break;
        case 'x':
            if (!parse_hex64(v, vn, &num))
                return SL_EPARSE;
            break;
        default:
            if (!(p[0] >= 'a' && p[0] <= 'z'))
                return SL_EPARSE;
            break; /* a part a newer sd-journal writes: it reads it, we need not */
        }
        p = semi ? semi + 1 : end;
    }
    bool by_seqnum = out->has_seqnum_id && out->has_seqnum;
    bool by_time = out->has_realtime || (has_boot && has_mono);
    return by_seqnum || by_time ? 0 : SL_EPARSE;
}

/* ---- the checkpoint file ------------------------------------------------------------------ */

/* Writes a printable excerpt of p[0..n) (at most 60 bytes, others as '?') into out. */
static void excerpt(const char *p, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size && i < 60; i++)
        out[k++] = (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f ? p[i] : '?';
    if (n > 60 && k + 4 < size) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

int in_journald_ckpt_load(const char *file, char **cursor, struct sl_err *err)
{
    *cursor = NULL;
    char text[CKPT_MAX_BYTES + 1];
    int rc = 0;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return sl_err_set(err, -errno, "%s: %s", file, strerror(errno));
    }
    size_t len = 0;
    while (len < sizeof(text) - 1) {
        ssize_t got = read(fd, text + len, sizeof(text) - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = sl_err_set(err, -errno, "%s: %s", file, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    text[len] = '\0';
    size_t hl = strlen(CKPT_HEADER);
    char ex[80];
    if (len >= sizeof(text) - 1) {
        rc = sl_err_set(err, SL_ECORRUPT, "%s: over %d bytes: not a checkpoint file", file,
                        CKPT_MAX_BYTES);
        goto out;
    }
    if (len < hl || memcmp(text, CKPT_HEADER, hl) != 0) {
        excerpt(text, len, ex, sizeof(ex));
        rc = sl_err_set(err, SL_ECORRUPT, "%s: not a checkpoint file (it starts '%s')", file, ex);
        goto out;
    }
    char *line = text + hl;
    char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    /* Only one line and its newline: a cut write or anything appended is damage. */
    bool whole = nl && (size_t)(nl + 1 - text) == len && memchr(text, '\0', len) == NULL;
    line[ll] = '\0';
    struct in_journald_cursor parsed;
    if (!whole || in_journald_cursor_parse(line, &parsed) != 0) {
        excerpt(line, ll, ex, sizeof(ex));
        rc = sl_err_set(err, SL_ECORRUPT, "%s: '%s' is not a journal cursor", file, ex);
        goto out;
    }
    *cursor = sl_strdup(line);
    if (!*cursor)
        rc = sl_err_set(err, -ENOMEM, "%s: out of memory", file);
out:
    close(fd);
    return rc;
}

int in_journald_ckpt_save(const char *file, const char *cursor, struct sl_err *err)
{
    size_t cl = strlen(cursor);
    if (!cursor_chars_ok(cursor, cl))
        return sl_err_set(err, SL_EPARSE,
                          "%s: refusing to write a cursor of %zu bytes with "
                          "spaces or control bytes",
                          file, cl);
    char body[CKPT_MAX_BYTES];
    int n = snprintf(body, sizeof(body), "%s%s\n", CKPT_HEADER, cursor);
    if (n < 0 || (size_t)n >= sizeof(body))
        return sl_err_set(err, SL_EPARSE, "%s: a cursor of %zu bytes does not fit", file, cl);
    return sl_file_replace(file, body, (size_t)n, err);
}

/* ---- positions to cursors ----------------------------------------------------------------- */

void in_journald_curq_init(struct in_journald_curq *q)
{
    memset(q, 0, sizeof(*q));
}

void in_journald_curq_fini(struct in_journald_curq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->len; i++)
        sl_free(q->items[(q->head + i) % q->cap].cursor);
    SL_FREE(q->items);
    q->head = q->len = q->cap = 0;
}

/* Doubles the ring, unrolling it so head is 0. */
static int curq_grow(struct in_journald_curq *q)
{
    size_t cap = q->cap ? q->cap * 2 : 16;
    struct in_journald_curq_item *n = sl_malloc(cap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        n[i] = q->items[(q->head + i) % q->cap];
    sl_free(q->items);
    q->items = n;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int in_journald_curq_push(struct in_journald_curq *q, uint64_t pos, char *cursor)
{
    if (q->len == q->cap && curq_grow(q) != 0) {
        sl_free(cursor);
        return -ENOMEM;
    }
    q->items[(q->head + q->len) % q->cap] = (struct in_journald_curq_item){pos, cursor};
    q->len++;
    return 0;
}

int in_journald_curq_set_last(struct in_journald_curq *q, uint64_t pos, char *cursor)
{
    if (q->len == 0)
        return in_journald_curq_push(q, pos, cursor);
    struct in_journald_curq_item *last = &q->items[(q->head + q->len - 1) % q->cap];
    sl_free(last->cursor);
    last->pos = pos;
    last->cursor = cursor;
    return 0;
}

char *in_journald_curq_take(struct in_journald_curq *q, uint64_t acked)
{
    char *found = NULL;
    while (q->len > 0 && q->items[q->head].pos <= acked) {
        sl_free(found);
        found = q->items[q->head].cursor;
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    if (q->len == 0)
        q->head = 0;
    return found;
}
