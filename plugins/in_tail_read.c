/* in_tail's reader: large reads, line splitting without per-line syscalls, overlong lines,
 * partial last lines, multiline joining, and the records handed to the sink. */
#include "plugins/in_tail_priv.h"

#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/*
 * A file's buffer:
 *
 *   file offset:  buf_start                 buf_start+buf_off              read_pos
 *                 |<--- consumed ---------->|<-- lines not yet emitted -->|
 *   buf.data:     [0 ....................... buf_off ..................... buf.len)
 *
 * A line is consumed only once the sink took its record, so a refusal (-EAGAIN) leaves it to
 * be offered again on resume. Before a read the unconsumed tail moves to the front. Every
 * record carries the file offset just after its last byte (its newline included): that is
 * what the checkpoint advances to once the record's batch is acknowledged.
 */

#define WHO(f) ((f)->t->ctx.name)

static void compact(struct tail_file *f);

/* Builds and offers one record for the bytes p[0..n). */
static int emit_record(struct tail_file *f, const uint8_t *p, size_t n, uint64_t end, bool cut)
{
    struct in_tail *t = f->t;
    double now = ev_now(t->ctx.loop);
    struct plugin_record r = {0};
    struct sl_batch_kv headers[3];
    r.timestamp = (int64_t)(now * 1000.0);
    r.owner = &f->ack;
    r.end = end;
    switch (t->src->key) {
    case PLUGIN_KEY_HOST:
        r.key = SL_BYTES_STR(t->ctx.hostname);
        break;
    case PLUGIN_KEY_PATH:
        r.key = SL_BYTES_STR(f->path);
        break;
    case PLUGIN_KEY_CONST:
        r.key = SL_BYTES_STR(t->src->key_value);
        break;
    case PLUGIN_KEY_FIELD:
        r.key = plugin_key_from_json(p, n, t->src->key_field, &t->key);
        break;
    default:
        r.key = SL_BYTES_NULL;
    }
    if (t->src->format == PLUGIN_FORMAT_RAW) {
        r.value = (struct sl_bytes){p, n};
        headers[0] = (struct sl_batch_kv){SL_BYTES_STR("host"), SL_BYTES_STR(t->ctx.hostname)};
        headers[1] = (struct sl_batch_kv){SL_BYTES_STR("source"), SL_BYTES_STR(f->source)};
        headers[2] = (struct sl_batch_kv){SL_BYTES_STR("truncated"), SL_BYTES_STR("true")};
        r.headers = headers;
        r.header_count = cut ? 3 : 2;
    } else {
        struct sl_buf *b = &t->rec;
        char ts[32];
        sl_buf_reset(b);
        sl_buf_append(b, "{\"time\":\"", 9);
        size_t tl = sl_json_time_double(&t->clock, now, ts);
        sl_buf_append(b, ts, tl);
        sl_buf_append(b, "\"", 1);
        sl_buf_append(b, t->fixed.data, t->fixed.len); /* ,"host":"..." */
        sl_buf_append(b, ",\"source\":\"", 11);
        sl_json_escape(b, (const uint8_t *)f->source, strlen(f->source));
        sl_buf_append(b, "\",\"message\":\"", 13);
        sl_json_escape(b, p, n);
        sl_buf_append(b, "\"", 1);
        if (cut)
            sl_buf_append(b, ",\"truncated\":true", 17);
        sl_buf_append(b, "}", 1);
        if (sl_buf_error(b)) {
            sl_buf_fini(b);
            return -ENOMEM;
        }
        r.value = (struct sl_bytes){b->data, b->len};
    }
    int rc = t->ctx.sink->emit(t->ctx.sink, t->topic, &r, &t->waiter);
    if (rc == -EAGAIN)
        return rc;
    if (rc == SL_ETOOBIG) {
        SL_ERR(WHO(f),
               "%s: a record of %zu bytes can never fit a batch; dropped (lower "
               "max_line_bytes or raise batch_bytes)",
               f->path, n);
        return 0;
    }
    if (rc != 0)
        return -EAGAIN; /* out of memory: try again later rather than lose the line */
    t->lines++;
    sl_metric_inc(t->m_lines);
    if (cut) {
        t->truncated++;
        sl_metric_inc(t->m_truncated);
    }
    return 0;
}

int tail_file_flush_multiline(struct tail_file *f, bool force)
{
    if (f->ml.len == 0)
        return 0;
    double timeout = (double)f->t->conf->multiline_timeout_ms / 1000.0;
    if (!force && ev_now(f->t->ctx.loop) - f->ml_last < timeout)
        return 0;
    int rc = emit_record(f, f->ml.data, f->ml.len, f->ml_end, f->ml_truncated);
    if (rc != 0)
        return rc;
    sl_buf_reset(&f->ml);
    f->ml_truncated = false;
    return 0;
}

/* At the end of a turn that reached the end of the file, keeps only the unconsumed bytes (a
 * partial line, usually none), so thousands of idle files hold no read buffers. */
static void trim_buffer(struct tail_file *f)
{
    compact(f);
    if (f->buf.len == 0) {
        sl_buf_fini(&f->buf);
        return;
    }
    if (f->buf.cap > f->buf.len * 2) {
        uint8_t *p = sl_realloc(f->buf.data, f->buf.len);
        if (p) {
            f->buf.data = p;
            f->buf.cap = f->buf.len;
        }
    }
}

/* One line (without its newline) ending at file offset `end`. Returns 0 or -EAGAIN. */
static int on_line(struct tail_file *f, const uint8_t *p, size_t n, uint64_t end, bool cut)
{
    struct in_tail *t = f->t;
    if (!cut && n > 0 && p[n - 1] == '\r')
        n--;
    if (!t->has_re)
        return emit_record(f, p, n, end, cut);
    /* regexec wants a C string: the line is copied (not matched in place with REG_STARTEND,
     * which sanitizers' interceptors do not understand); a NUL byte ends what is matched. */
    sl_buf_reset(&t->line);
    sl_buf_append(&t->line, p, n);
    sl_buf_append(&t->line, "", 1);
    if (sl_buf_error(&t->line)) {
        sl_buf_fini(&t->line);
        return -EAGAIN;
    }
    bool start = regexec(&t->ml_re, (const char *)t->line.data, 0, NULL, 0) == 0;
    if (start && f->ml.len > 0) {
        int rc = tail_file_flush_multiline(f, true);
        if (rc != 0)
            return rc;
    }
    size_t max = (size_t)t->conf->max_line_bytes;
    size_t room = max > f->ml.len ? max - f->ml.len : 0;
    if (f->ml.len > 0 && room > 0) {
        sl_buf_append(&f->ml, "\n", 1);
        room--;
    }
    if (n > room) {
        n = room;
        cut = true;
    }
    sl_buf_append(&f->ml, p, n);
    if (sl_buf_error(&f->ml)) {
        sl_buf_fini(&f->ml);
        return -EAGAIN;
    }
    f->ml_truncated |= cut;
    f->ml_end = end;
    f->ml_last = ev_now(t->ctx.loop);
    return 0;
}

/* Moves the unconsumed bytes to the front of the buffer. */
static void compact(struct tail_file *f)
{
    if (f->buf_off == 0)
        return;
    size_t left = f->buf.len - f->buf_off;
    memmove(f->buf.data, f->buf.data + f->buf_off, left);
    f->buf.len = left;
    f->buf_start += f->buf_off;
    f->buf_off = 0;
}

enum tail_read_result tail_file_read(struct tail_file *f, size_t budget)
{
    struct in_tail *t = f->t;
    size_t max = (size_t)t->conf->max_line_bytes;
    size_t chunk = (size_t)t->conf->read_bytes;
    size_t done = 0;
    if (f->released)
        return TAIL_IDLE;
    if (f->fd < 0 && tail_file_reopen(f) != 0)
        return TAIL_IDLE;
    /* Before reading on from where we stopped, make sure it is still the same content: a
     * copytruncate followed by writes past our offset would otherwise read mid-file. */
    if (f->buf_off == f->buf.len)
        tail_file_verify(f);
    for (;;) {
        uint8_t *base = f->buf.data;
        size_t avail = f->buf.len - f->buf_off;
        /* An empty buffer may have no storage yet: no arithmetic on a null pointer. */
        uint8_t *start = base ? base + f->buf_off : base;
        uint8_t *nl = avail ? memchr(start, '\n', avail) : NULL;
        if (f->skipping) {
            if (nl) {
                f->buf_off = (size_t)(nl + 1 - base);
                f->skipping = false;
            } else {
                f->buf_off = f->buf.len;
            }
            if (nl)
                continue;
        } else if (nl) {
            size_t n = (size_t)(nl - start);
            bool cut = n > max;
            uint64_t end = f->buf_start + (size_t)(nl + 1 - base);
            if (on_line(f, start, cut ? max : n, end, cut) != 0)
                return TAIL_BLOCKED;
            if (cut)
                SL_WARN(WHO(f), "%s: a line of %zu bytes was cut to max_line_bytes (%zu)", f->path,
                        n, max);
            f->buf_off = (size_t)(nl + 1 - base);
            continue;
        } else if (avail >= max) {
            /* No newline within max_line_bytes: send the first part marked, drop the rest. */
            uint64_t end = f->buf_start + f->buf_off + max;
            if (on_line(f, start, max, end, true) != 0)
                return TAIL_BLOCKED;
            SL_WARN(WHO(f), "%s: a line longer than max_line_bytes (%zu) was cut", f->path, max);
            f->buf_off += max;
            f->skipping = true;
            continue;
        }
        if (done >= budget)
            return TAIL_MORE;
        compact(f);
        if (sl_buf_reserve(&f->buf, chunk) != 0) {
            sl_buf_reset(&f->buf); /* clears the sticky error; the bytes are read again */
            f->read_pos = f->buf_start + f->buf_off;
            return TAIL_MORE;
        }
        ssize_t got = pread(f->fd, f->buf.data + f->buf.len, chunk, (off_t)f->read_pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            SL_ERR(WHO(f), "%s: read: %s", f->path, strerror(errno));
            return TAIL_IDLE;
        }
        if (got > 0) {
            f->buf.len += (size_t)got;
            f->read_pos += (uint64_t)got;
            if (f->read_pos > f->size)
                f->size = f->read_pos;
            f->last_data = ev_now(t->ctx.loop);
            f->partial_since = 0;
            done += (size_t)got;
            t->bytes += (uint64_t)got;
            sl_metric_add(t->m_bytes, (uint64_t)got);
            continue;
        }
        /* End of file. */
        avail = f->buf.len - f->buf_off;
        if (avail > 0 && !f->skipping) {
            double now = ev_now(t->ctx.loop);
            if (f->partial_since == 0)
                f->partial_since = now;
            if (f->rotated ||
                now - f->partial_since >= (double)t->conf->partial_timeout_ms / 1000.0) {
                if (on_line(f, f->buf.data + f->buf_off, avail, f->read_pos, false) != 0)
                    return TAIL_BLOCKED;
                f->buf_off = f->buf.len;
                f->partial_since = 0;
            }
        }
        if (f->rotated) {
            if (tail_file_flush_multiline(f, true) != 0)
                return TAIL_BLOCKED;
            tail_file_release(f);
            return TAIL_IDLE;
        }
        trim_buffer(f);
        return TAIL_IDLE;
    }
}
