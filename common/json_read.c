/* A small JSON reader: validation and top-level member lookup without building a tree. */
#include "common/json_read.h"

#include "common/buf.h"
#include "common/json.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define DEPTH_MAX 64

struct jr {
    const uint8_t *p;
    size_t n, i;
    struct sl_err *err;
    int rc;
    bool newline; /* a '\n' or '\r' was skipped as whitespace */
};

static int fail(struct jr *r, const char *what)
{
    if (r->rc == 0)
        r->rc = sl_err_set(r->err, SL_EPARSE, "not JSON: %s at byte %zu", what, r->i);
    return r->rc;
}

static inline void ws(struct jr *r)
{
    /* most tokens follow no whitespace or one space */
    if (r->i < r->n && r->p[r->i] > ' ')
        return;
    for (; r->i < r->n; r->i++) {
        uint8_t c = r->p[r->i];
        if (c == '\n' || c == '\r')
            r->newline = true;
        else if (c != ' ' && c != '\t')
            break;
    }
}

static int hex4(const uint8_t *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Returns the end of the run of bytes from i that need no closer look inside a string
 * (printable ASCII but '"' and '\\'), found 16 at a time: most strings end within the first 16
 * bytes, most values are mostly such runs, and the byte loop costs a few cycles each. Fewer than
 * 16 bytes before the end are read as the last 16 of the text, so the loop never runs byte by
 * byte once a text is 16 bytes long. */
static inline size_t plain_run(const uint8_t *p, size_t i, size_t n)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    /* signed compare: bytes >= 0x80 are negative, so below 0x20 too */
#define SPECIAL(v)                                                                                 \
    (unsigned)_mm_movemask_epi8(                                                                   \
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),            \
                     _mm_cmplt_epi8(v, space)))
    while (n - i >= 16) {
        unsigned m = SPECIAL(_mm_loadu_si128((const __m128i *)(const void *)(p + i)));
        if (m)
            return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
    if (i < n && n >= 16) {
        unsigned m = SPECIAL(_mm_loadu_si128((const __m128i *)(const void *)(p + n - 16)));
        m >>= 16 - (n - i);
        return m ? i + (size_t)__builtin_ctz(m) : n;
    }
#undef SPECIAL
#endif
    for (; i < n; i++) {
        uint8_t c = p[i];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            break;
    }
    return i;
}

static int string(struct jr *r)
{
    const uint8_t *p = r->p;
    size_t n = r->n, i = r->i + 1; /* past the opening quote */
    const char *bad = "unterminated string";
    while ((i = plain_run(p, i, n)) < n) {
        uint8_t c = p[i];
        if (c == '"') {
            r->i = i + 1;
            return 0;
        }
        if (c < 0x20) {
            bad = "control character in a string";
            break;
        }
        if (c == '\\') {
            if (i + 1 >= n)
                break;
            uint8_t e = p[i + 1];
            if (e == 'u') {
                unsigned v;
                if (i + 6 > n || hex4(p + i + 2, &v) != 0) {
                    bad = "bad \\u escape";
                    break;
                }
                i += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) {
                bad = "bad escape";
                break;
            }
            i += 2;
            continue;
        }
        size_t l = sl_utf8_len(p + i, n - i);
        if (l == 0) {
            bad = "invalid UTF-8";
            break;
        }
        i += l;
    }
    r->i = i < n ? i : n;
    return fail(r, bad);
}

/* Skips a run of digits; returns how many. */
static size_t digits(struct jr *r)
{
    size_t from = r->i;
    while (r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9')
        r->i++;
    return r->i - from;
}

static int number(struct jr *r)
{
    if (r->p[r->i] == '-')
        r->i++;
    if (r->i >= r->n)
        return fail(r, "bad number");
    if (r->p[r->i] == '0') {
        r->i++;
    } else if (r->p[r->i] >= '1' && r->p[r->i] <= '9') {
        digits(r);
    } else {
        return fail(r, "bad number");
    }
    if (r->i < r->n && r->p[r->i] == '.') {
        r->i++;
        if (digits(r) == 0)
            return fail(r, "bad number");
    }
    if (r->i < r->n && (r->p[r->i] == 'e' || r->p[r->i] == 'E')) {
        r->i++;
        if (r->i < r->n && (r->p[r->i] == '+' || r->p[r->i] == '-'))
            r->i++;
        if (digits(r) == 0)
            return fail(r, "bad number");
    }
    return 0;
}

static int word(struct jr *r, const char *w)
{
    size_t l = strlen(w);
    if (r->n - r->i < l || memcmp(r->p + r->i, w, l) != 0)
        return fail(r, "unexpected character");
    r->i += l;
    return 0;
}

/* Reads one value at r->i (whitespace skipped before it). */
static int value(struct jr *r, int depth, enum sl_json_type *type)
{
    ws(r);
    if (r->i >= r->n)
        return fail(r, "unexpected end");
    uint8_t c = r->p[r->i];
    enum sl_json_type t;
    int rc = 0;
    switch (c) {
    case '{':
    case '[': {
        if (depth >= DEPTH_MAX)
            return fail(r, "nested too deep");
        bool obj = c == '{';
        t = obj ? SL_JSON_OBJECT : SL_JSON_ARRAY;
        r->i++;
        ws(r);
        if (r->i < r->n && r->p[r->i] == (obj ? '}' : ']')) {
            r->i++;
            break;
        }
        for (;;) {
            enum sl_json_type sub;
            if (obj) {
                ws(r);
                if (r->i >= r->n || r->p[r->i] != '"')
                    return fail(r, "expected a member name");
                if ((rc = string(r)) != 0)
                    return rc;
                ws(r);
                if (r->i >= r->n || r->p[r->i] != ':')
                    return fail(r, "expected ':'");
                r->i++;
            }
            if ((rc = value(r, depth + 1, &sub)) != 0)
                return rc;
            ws(r);
            if (r->i < r->n && r->p[r->i] == ',') {
                r->i++;
                continue;
            }
            if (r->i < r->n && r->p[r->i] == (obj ? '}' : ']')) {
                r->i++;
                break;
            }
            return fail(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        break;
    }
    case '"':
        t = SL_JSON_STRING;
        rc = string(r);
        break;
    case 't':
        t = SL_JSON_BOOL;
        rc = word(r, "true");
        break;
    case 'f':
        t = SL_JSON_BOOL;
        rc = word(r, "false");
        break;
    case 'n':
        t = SL_JSON_NULL;
        rc = word(r, "null");
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            t = SL_JSON_NUMBER;
            rc = number(r);
        } else {
            return fail(r, "unexpected character");
        }
    }
    if (rc == 0 && type)
        *type = t;
    return rc;
}

static int check(struct jr *r, enum sl_json_type *type)
{
    if (!r->p)
        return sl_err_set(r->err, SL_EPARSE, "not JSON: a null value");
    if (value(r, 0, type) != 0)
        return r->rc;
    ws(r);
    if (r->i != r->n)
        return fail(r, "bytes after the value");
    return 0;
}

int sl_json_check(const void *p, size_t n, enum sl_json_type *type, struct sl_err *err)
{
    struct jr r = {.p = p, .n = n, .err = err};
    return check(&r, type);
}

int sl_json_check_nl(const void *p, size_t n, enum sl_json_type *type, bool *newline,
                     struct sl_err *err)
{
    struct jr r = {.p = p, .n = n, .err = err};
    int rc = check(&r, type);
    *newline = rc == 0 && r.newline;
    return rc;
}

void sl_json_get(const void *obj, size_t n, const char *key, struct sl_json_val *out)
{
    memset(out, 0, sizeof(*out));
    struct jr r = {.p = obj, .n = n};
    size_t klen = strlen(key);
    ws(&r);
    if (r.i >= r.n || r.p[r.i] != '{')
        return;
    r.i++;
    for (;;) {
        ws(&r);
        if (r.i >= r.n || r.p[r.i] != '"')
            return;
        size_t ks = r.i + 1;
        if (string(&r) != 0)
            return;
        size_t ke = r.i - 1;
        ws(&r);
        r.i++; /* ':' */
        ws(&r);
        size_t vs = r.i;
        enum sl_json_type t;
        if (value(&r, 1, &t) != 0)
            return;
        /* Keys with escapes are compared raw: a name written with \u escapes does not match,
         * which only matters for hand-made values. */
        if (ke - ks == klen && memcmp(r.p + ks, key, klen) == 0) {
            *out = (struct sl_json_val){t, r.p + vs, r.i - vs};
            return;
        }
        ws(&r);
        if (r.i >= r.n || r.p[r.i] != ',')
            return;
        r.i++;
    }
}

static void put_utf8(struct sl_buf *b, unsigned cp)
{
    uint8_t u[4];
    size_t l;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        l = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        l = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        l = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        l = 4;
    }
    sl_buf_append(b, u, l);
}

int sl_json_unescape(const struct sl_json_val *v, struct sl_buf *b)
{
    const uint8_t *p = v->p + 1, *end = v->p + v->len - 1;
    while (p < end) {
        const uint8_t *s = p;
        while (p < end && *p != '\\')
            p++;
        sl_buf_append(b, s, (size_t)(p - s));
        if (p >= end)
            break;
        uint8_t e = p[1];
        if (e == 'u') {
            unsigned cp = 0, lo;
            hex4(p + 2, &cp);
            p += 6;
            if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd; /* a lone surrogate has no UTF-8 form */
            }
            put_utf8(b, cp);
            continue;
        }
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = strchr(from, e);
        uint8_t c = k ? (uint8_t)to[k - from] : e;
        sl_buf_append(b, &c, 1);
        p += 2;
    }
    return sl_buf_error(b);
}

void sl_json_one_line(void *text, size_t n)
{
    uint8_t *p = text;
    if (!memchr(p, '\n', n) && !memchr(p, '\r', n))
        return;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n' || p[i] == '\r')
            p[i] = ' ';
}

bool sl_json_has_nul(const struct sl_json_val *v)
{
    for (size_t i = 1; i + 6 <= v->len; i++) {
        if (v->p[i] != '\\')
            continue;
        if (v->p[i + 1] == 'u' && memcmp(v->p + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character */
    }
    return false;
}
