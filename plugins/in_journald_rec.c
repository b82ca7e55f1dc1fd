/* Journal entry -> record value: field dispatch, selection, UTF-8 checks, base64, the time. */
#include "plugins/in_journald_rec.h"

#include "common/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a field is to a record: the fields every record names, a selected other field, or
 * one left out. 0 is kept for "not known yet". */
enum field_kind {
    KIND_NONE = 0,
    KIND_SKIP,
    KIND_MESSAGE,
    KIND_PRIORITY,
    KIND_PID,
    KIND_IDENT,
    KIND_UNIT,
    KIND_EXTRA,
    KIND_BAD, /* not a journal field name */
};

static enum field_kind core_of(const char *name, size_t len)
{
    switch (len) {
    case 4:
        return memcmp(name, "_PID", 4) == 0 ? KIND_PID : KIND_NONE;
    case 7:
        return memcmp(name, "MESSAGE", 7) == 0 ? KIND_MESSAGE : KIND_NONE;
    case 8:
        return memcmp(name, "PRIORITY", 8) == 0 ? KIND_PRIORITY : KIND_NONE;
    case 13:
        return memcmp(name, "_SYSTEMD_UNIT", 13) == 0 ? KIND_UNIT : KIND_NONE;
    case 17:
        return memcmp(name, "SYSLOG_IDENTIFIER", 17) == 0 ? KIND_IDENT : KIND_NONE;
    default:
        return KIND_NONE;
    }
}

bool in_journald_rec_core_field(const char *name, size_t len)
{
    return core_of(name, len) != KIND_NONE;
}

/* ---- selection ---------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int in_journald_select_init(struct in_journald_select *s, const struct sl_conf_list *fields)
{
    memset(s, 0, sizeof(*s));
    s->names = sl_calloc(fields->len ? fields->len : 1, sizeof(*s->names));
    if (!s->names)
        return -ENOMEM;
    for (size_t i = 0; i < fields->len; i++) {
        const char *f = fields->items[i];
        if (strcmp(f, "*") == 0) {
            s->all = true;
            continue;
        }
        if (in_journald_rec_core_field(f, strlen(f)))
            continue;
        bool dup = false;
        for (size_t j = 0; j < s->len && !dup; j++)
            dup = strcmp(s->names[j], f) == 0;
        if (dup)
            continue;
        s->names[s->len] = sl_strdup(f);
        if (!s->names[s->len]) {
            in_journald_select_fini(s);
            return -ENOMEM;
        }
        s->len++;
    }
    qsort(s->names, s->len, sizeof(*s->names), cmp_names);
    return 0;
}

void in_journald_select_fini(struct in_journald_select *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->len; i++)
        sl_free(s->names[i]);
    SL_FREE(s->names);
    s->len = 0;
    s->all = false;
}

/* Index of name[0..len) in the sorted names, or -1. */
static long select_find(const struct in_journald_select *s, const char *name, size_t len)
{
    size_t lo = 0, hi = s->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = s->names[mid];
        int c = strncmp(m, name, len);
        if (c == 0)
            c = m[len] == '\0' ? 0 : 1;
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- bytes -------------------------------------------------------------------------------- */

size_t in_journald_cut(const uint8_t *p, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    /* p[k] is the first byte dropped: when it continues a character, drop that whole
     * character (a lead byte is at most 3 bytes back). */
    for (int back = 0; back < 3 && k > 0 && (p[k] & 0xc0) == 0x80; back++)
        k--;
    if ((p[k] & 0xc0) == 0x80 || p[k] < 0xc0)
        return max; /* not a character boundary problem: binary, cut where asked */
    return k;
}

int in_journald_base64(struct sl_buf *b, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n == 0)
        return sl_buf_error(b); /* b may have no storage yet: no arithmetic on NULL */
    if (sl_buf_reserve(b, (n + 2) / 3 * 4) != 0)
        return sl_buf_error(b);
    uint8_t *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = (uint8_t)tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    return 0;
}

/* ---- the entry ---------------------------------------------------------------------------- */

int in_journald_rec_init(struct in_journald_rec *r, const struct in_journald_select *sel,
                         size_t max_bytes, bool raw)
{
    memset(r, 0, sizeof(*r));
    r->sel = sel;
    r->max_bytes = max_bytes;
    r->raw = raw;
    sl_buf_init(&r->msg);
    sl_buf_init(&r->msg_bin);
    sl_buf_init(&r->unit);
    sl_buf_init(&r->ident);
    sl_buf_init(&r->extra);
    sl_buf_init(&r->seen);
    r->names = sl_calloc(IN_JOURNALD_NAME_SLOTS, sizeof(*r->names));
    if (!r->names)
        return -ENOMEM;
    in_journald_rec_reset(r);
    return 0;
}

void in_journald_rec_fini(struct in_journald_rec *r)
{
    if (!r)
        return;
    sl_buf_fini(&r->msg);
    sl_buf_fini(&r->msg_bin);
    sl_buf_fini(&r->unit);
    sl_buf_fini(&r->ident);
    sl_buf_fini(&r->extra);
    sl_buf_fini(&r->seen);
    SL_FREE(r->names);
}

void in_journald_rec_reset(struct in_journald_rec *r)
{
    sl_buf_reset(&r->msg);
    sl_buf_reset(&r->msg_bin);
    sl_buf_reset(&r->unit);
    sl_buf_reset(&r->ident);
    sl_buf_reset(&r->extra);
    sl_buf_reset(&r->seen);
    r->gen++;
    r->priority = -1;
    r->pid = -1;
    r->has_msg = r->has_unit = r->has_ident = r->msg_binary = false;
    r->truncated = false;
    r->fields_bad = 0;
}

/* A small decimal number of at most `digits` digits, or -1. */
static int small_number(const uint8_t *v, size_t n, size_t digits)
{
    if (n == 0 || n > digits)
        return -1;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* The kind of a field not in the cache. */
static enum field_kind classify(const struct in_journald_rec *r, const char *name, size_t len)
{
    enum field_kind k = core_of(name, len);
    if (k != KIND_NONE)
        return k;
    if (r->raw)
        return KIND_SKIP;
    return r->sel->all || select_find(r->sel, name, len) >= 0 ? KIND_EXTRA : KIND_SKIP;
}

/* For a name the cache could not take: true when it was written already this entry;
 * remembers it otherwise. */
static bool seen_before(struct in_journald_rec *r, const char *name, size_t len)
{
    const uint8_t *p = r->seen.data;
    size_t off = 0;
    while (off < r->seen.len) {
        size_t l = p[off];
        if (l == len && memcmp(p + off + 1, name, len) == 0)
            return true;
        off += 1 + l;
    }
    uint8_t l8 = (uint8_t)len;
    sl_buf_append(&r->seen, &l8, 1);
    sl_buf_append(&r->seen, name, len);
    return false;
}

/* Bytes of field names journald accepts: A-Z, 0-9, '_'. */
static const uint8_t name_tab[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['_'] = 1,
};

/* Journal field names (journald's rules). A name that breaks them is damage, or a writer that
 * does not check: it is left out rather than written as a key nobody can query. */
static bool name_ok(const char *n, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!name_tab[(uint8_t)n[i]])
            return false;
    return true;
}

/* A hash of a field name from its length and first and last 8 bytes: names differ there. */
static uint32_t name_hash(const char *p, size_t n)
{
    uint64_t a = 0, b = 0;
    memcpy(&a, p, n < 8 ? n : 8);
    if (n > 8)
        memcpy(&b, p + n - 8, 8);
    uint64_t x = (a ^ (b * 0x9e3779b97f4a7c15ULL) ^ n) * 0xff51afd7ed558ccdULL;
    return (uint32_t)(x >> 32);
}

/* The kind of the field name[0..len) (len <= 64, hash h), and whether the entry had it
 * already. */
static enum field_kind lookup(struct in_journald_rec *r, const char *name, size_t len, uint32_t h,
                              bool *dup)
{
    size_t mask = IN_JOURNALD_NAME_SLOTS - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct in_journald_name *s = &r->names[i];
        if (s->len == 0) {
            if (!name_ok(name, len))
                return KIND_BAD;
            enum field_kind k = classify(r, name, len);
            if (r->names_used >= IN_JOURNALD_NAME_SLOTS / 4 * 3) {
                *dup = seen_before(r, name, len);
                return k;
            }
            s->hash = h;
            s->len = (uint8_t)len;
            s->kind = (uint8_t)k;
            s->gen = r->gen;
            memcpy(s->name, name, len);
            r->names_used++;
            *dup = false;
            return k;
        }
        if (s->hash == h && s->len == len && memcmp(s->name, name, len) == 0) {
            *dup = s->gen == r->gen;
            s->gen = r->gen;
            return (enum field_kind)s->kind;
        }
    }
}

/* Cuts v to max_bytes (marking the entry truncated) and returns the length kept. */
static size_t cut(struct in_journald_rec *r, const uint8_t *v, size_t n)
{
    size_t k = in_journald_cut(v, n, r->max_bytes);
    if (k < n)
        r->truncated = true;
    return k;
}

static void add_extra(struct in_journald_rec *r, const char *name, size_t nl, const uint8_t *v,
                      size_t vl)
{
    size_t k = cut(r, v, vl);
    struct sl_buf *b = &r->extra;
    size_t mark = b->len;
    sl_buf_append(b, ",\"", 2);
    sl_buf_append(b, name, nl); /* A-Z, 0-9 and '_': checked by the caller */
    sl_buf_append(b, "\":\"", 3);
    if (!sl_json_escape(b, v, k)) {
        /* Binary: written again, exactly, in base64 under NAME_base64. */
        sl_buf_truncate(b, mark);
        sl_buf_append(b, ",\"", 2);
        sl_buf_append(b, name, nl);
        sl_buf_append(b, "_base64\":\"", 10);
        in_journald_base64(b, v, k);
    }
    sl_buf_append(b, "\"", 1);
}

int in_journald_rec_add(struct in_journald_rec *r, const void *data, size_t len)
{
    const uint8_t *p = data;
    const uint8_t *eq = memchr(p, '=', len < 65 ? len : 65);
    if (!eq || eq == p) {
        r->fields_bad++;
        return 0;
    }
    size_t nl = (size_t)(eq - p);
    const char *name = (const char *)p;
    const uint8_t *v = p + nl + 1;
    size_t vl = len - nl - 1;
    bool dup = false;
    enum field_kind kind = lookup(r, name, nl, name_hash(name, nl), &dup);
    if (kind == KIND_BAD) {
        r->fields_bad++;
        return 0;
    }
    if (dup)
        return 0; /* the first value of a repeated field is the one kept */
    size_t k;
    switch (kind) {
    case KIND_MESSAGE:
        r->has_msg = true;
        k = cut(r, v, vl);
        if (r->raw) {
            sl_buf_append(&r->msg, v, k);
        } else if (!sl_json_escape(&r->msg, v, k)) {
            r->msg_binary = true;
            sl_buf_append(&r->msg_bin, v, k);
        }
        break;
    case KIND_PRIORITY: {
        int x = small_number(v, vl, 1);
        r->priority = x <= 7 ? x : -1;
        break;
    }
    case KIND_PID:
        r->pid = small_number(v, vl, 9);
        break;
    case KIND_IDENT:
        r->has_ident = true;
        sl_json_escape(&r->ident, v, cut(r, v, vl));
        break;
    case KIND_UNIT:
        r->has_unit = true;
        k = cut(r, v, vl);
        if (r->raw)
            sl_buf_append(&r->unit, v, k);
        else
            sl_json_escape(&r->unit, v, k);
        break;
    case KIND_EXTRA:
        add_extra(r, name, nl, v, vl);
        break;
    default:
        break;
    }
    if (r->msg.err | r->msg_bin.err | r->unit.err | r->ident.err | r->extra.err | r->seen.err) {
        /* Drop the storage (and the sticky error) so the entry can be built again. */
        sl_buf_fini(&r->msg);
        sl_buf_fini(&r->msg_bin);
        sl_buf_fini(&r->unit);
        sl_buf_fini(&r->ident);
        sl_buf_fini(&r->extra);
        sl_buf_fini(&r->seen);
        return -ENOMEM;
    }
    return 0;
}

/* Appends ,"name":v (v a small number). */
static void put_number(struct sl_buf *b, const char *member, int v)
{
    char d[12];
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < sizeof(d));
    sl_buf_append_str(b, member);
    if (sl_buf_reserve(b, n) != 0)
        return;
    while (n > 0)
        b->data[b->len++] = (uint8_t)d[--n];
}

/* Appends member (,"name":") , the escaped value and the closing quote. */
static void put_escaped(struct sl_buf *b, const char *member, const struct sl_buf *v)
{
    sl_buf_append_str(b, member);
    sl_buf_append(b, v->data, v->len);
    sl_buf_append(b, "\"", 1);
}

int in_journald_rec_json(struct in_journald_rec *r, struct sl_json_clock *clock,
                         uint64_t realtime_us, struct sl_bytes fixed, struct sl_buf *out)
{
    char ts[32];
    sl_buf_reset(out);
    sl_buf_reserve(out, 160 + fixed.len + r->msg.len + r->unit.len + r->ident.len + r->extra.len +
                            (r->msg_bin.len + 2) / 3 * 4);
    size_t tl = sl_json_time(clock, (int64_t)(realtime_us / 1000000u),
                             (uint32_t)(realtime_us % 1000000u), ts);
    sl_buf_append(out, "{\"time\":\"", 9);
    sl_buf_append(out, ts, tl);
    sl_buf_append(out, "\"", 1);
    sl_buf_append(out, fixed.p, fixed.len);
    if (r->has_unit)
        put_escaped(out, ",\"unit\":\"", &r->unit);
    if (r->priority >= 0)
        put_number(out, ",\"priority\":", r->priority);
    if (r->pid >= 0)
        put_number(out, ",\"pid\":", r->pid);
    if (r->has_ident)
        put_escaped(out, ",\"syslog_identifier\":\"", &r->ident);
    put_escaped(out, ",\"message\":\"", &r->msg);
    if (r->msg_binary) {
        sl_buf_append_str(out, ",\"message_base64\":\"");
        in_journald_base64(out, r->msg_bin.data, r->msg_bin.len);
        sl_buf_append(out, "\"", 1);
    }
    sl_buf_append(out, r->extra.data, r->extra.len);
    if (r->truncated)
        sl_buf_append_str(out, ",\"truncated\":true");
    sl_buf_append(out, "}", 1);
    return sl_buf_error(out);
}
