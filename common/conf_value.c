/* Value parsers and formatters for configuration options (bool, int, size, duration, enum,
 * host:port), and the small text helpers their messages need. */
#include "common/conf_priv.h"

#include "common/base.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/*
 * Grammar (whole string, no spaces):
 *
 *   number    = digit+ [ "." digit+ ]
 *   size      = number [ "B" | "K" | "k" | "KiB" | "M" | "MiB" | "G" | "GiB" | "T" | "TiB" ]
 *   duration  = "0" | ( number ( "ms" | "s" | "m" | "h" | "d" | "w" ) )+   units decreasing
 *   host:port = host [ ":" port ] | "[" ipv6 [ "%" zone ] "]" [ ":" port ]
 *
 * Fractions are exact: the value must come out a whole number of bytes or milliseconds.
 */

#define KIB      ((int64_t)1 << 10)
#define MS_PER_S INT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)
#define MS_PER_W (7 * MS_PER_D)

/* Fractions past this many digits cannot matter for bytes or milliseconds unless they are
 * zeros; 18 keeps 10^digits inside uint64_t. */
#define FRAC_DIGITS_MAX 18

const char *sl_conf_quote(const char *s, size_t len, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    const size_t shown = 60;
    if (size == 0)
        return buf;
    for (size_t i = 0; i < len && i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= size)
            break;
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else if (c >= 0x80) {
            /* UTF-8 passes through so names in other scripts stay readable. */
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    if (len > shown && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

size_t sl_conf_edit_distance(const char *a, const char *b, size_t cap)
{
    enum { N = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > N || lb > N)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    /* Three rows of the optimal-string-alignment matrix (adjacent swaps cost 1). */
    size_t rows[3][N + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t d = SL_MIN(prev[j] + 1, cur[j - 1] + 1);
            d = SL_MIN(d, prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d = SL_MIN(d, pp[j - 2] + 1);
            cur[j] = d;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return SL_MIN(prev[lb], cap + 1);
}

bool sl_conf_is_close(const char *got, const char *name, size_t *dist)
{
    /* One edit for short names, two otherwise: "pathh" -> "path", but "ab" is not "xy". */
    size_t n = strlen(name);
    size_t cap = n <= 3 ? 1 : 2;
    size_t d = sl_conf_edit_distance(got, name, cap);
    if (dist)
        *dist = d;
    return d <= cap && d < n;
}

/* Reports "<phrase> (got '<s>')" into err and returns SL_EPARSE. */
__attribute__((format(printf, 3, 4))) static int value_fail(struct sl_err *err, const char *s,
                                                            const char *fmt, ...)
{
    if (!err)
        return SL_EPARSE;
    char phrase[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(phrase, sizeof(phrase), fmt, ap);
    va_end(ap);
    char q[SL_CONF_QUOTE_MAX];
    return sl_err_set(err, SL_EPARSE, "%s (got '%s')", phrase,
                      sl_conf_quote(s, strlen(s), q, sizeof(q)));
}

int sl_conf_parse_bool(const char *s, bool *out, struct sl_err *err)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return value_fail(err, s, "must be true or false (or yes/no, on/off)");
}

int sl_conf_parse_int(const char *s, int64_t *out, struct sl_err *err)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return value_fail(err, s, "must be an integer");
    /* Accumulate as a negative number: its range reaches INT64_MIN. */
    int64_t v = 0;
    bool overflow = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (v < (INT64_MIN + d) / 10)
            overflow = true;
        else
            v = v * 10 - d;
    }
    if (*p)
        return value_fail(err, s, "must be an integer");
    if (overflow || (!neg && v == INT64_MIN))
        return value_fail(err, s, "is out of range for a 64-bit integer");
    *out = neg ? v : -v;
    return 0;
}

/* A decimal number with an optional fraction. Returns false when there is no digit. */
struct decimal {
    uint64_t ip;   /* integer part, valid unless too_big */
    uint64_t frac; /* fraction digits as an integer, trailing zeros removed */
    int fdigits;   /* digits in frac */
    bool too_big;  /* integer part over INT64_MAX */
    bool too_fine; /* a non-zero fraction digit past FRAC_DIGITS_MAX */
};

static bool parse_decimal(const char **pp, struct decimal *d)
{
    const char *p = *pp;
    memset(d, 0, sizeof(*d));
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (d->ip > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
            d->too_big = true;
        else
            d->ip = d->ip * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return false;
        p++;
        int zeros = 0; /* pending zeros, kept only if a non-zero digit follows */
        for (; *p >= '0' && *p <= '9'; p++) {
            if (*p == '0') {
                zeros++;
                continue;
            }
            if (d->fdigits + zeros + 1 > FRAC_DIGITS_MAX) {
                d->too_fine = true;
                continue;
            }
            for (; zeros > 0; zeros--) {
                d->frac *= 10;
                d->fdigits++;
            }
            d->frac = d->frac * 10 + (uint64_t)(*p - '0');
            d->fdigits++;
        }
    }
    *pp = p;
    return true;
}

/* d * mult into *out. Returns 0, 1 when it is not a whole number, 2 on overflow. */
static int decimal_scale(const struct decimal *d, int64_t mult, int64_t *out)
{
    if (d->too_fine)
        return 1;
    if (d->too_big)
        return 2;
    uint64_t pow10 = 1;
    for (int i = 0; i < d->fdigits; i++)
        pow10 *= 10;
    /* frac < pow10 <= 10^18 and mult < 2^50: the product needs up to ~110 bits. */
    unsigned __int128 f = (unsigned __int128)d->frac * (uint64_t)mult;
    if (f % pow10 != 0)
        return 1;
    uint64_t fpart = (uint64_t)(f / pow10); /* < mult */
    int64_t whole;
    if (__builtin_mul_overflow((int64_t)d->ip, mult, &whole))
        return 2;
    if (__builtin_add_overflow(whole, (int64_t)fpart, out))
        return 2;
    return 0;
}

int sl_conf_parse_size(const char *s, int64_t *out, struct sl_err *err)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"K", KIB},
        {"k", KIB},
        {"KiB", KIB},
        {"M", KIB << 10},
        {"MiB", KIB << 10},
        {"G", KIB << 20},
        {"GiB", KIB << 20},
        {"T", KIB << 30},
        {"TiB", KIB << 30},
    };
    static const char *const ambiguous[] = {"KB", "kB", "MB", "GB", "TB", "kb", "mb", "gb", "tb"};
    const char *p = s;
    if (*p == '-')
        return value_fail(err, s, "must not be negative");
    struct decimal d;
    if (!parse_decimal(&p, &d))
        return value_fail(err, s, "must be a size such as 512, 4KiB, 64MiB or 1GiB");
    for (size_t i = 0; i < SL_ARRAY_LEN(ambiguous); i++) {
        if (strcmp(p, ambiguous[i]) == 0)
            return value_fail(err, s,
                              "uses the ambiguous unit '%s': write %ciB for 1024-based "
                              "units, or the number of bytes",
                              p, toupper((unsigned char)ambiguous[i][0]));
    }
    int64_t mult = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            mult = units[i].mult;
            break;
        }
    }
    if (!mult) {
        char q[SL_CONF_QUOTE_MAX];
        return value_fail(err, s, "has an unknown unit '%s'; use B, KiB, MiB, GiB or TiB",
                          sl_conf_quote(p, strlen(p), q, sizeof(q)));
    }
    int rc = decimal_scale(&d, mult, out);
    if (rc == 1)
        return value_fail(err, s, "must be a whole number of bytes");
    if (rc == 2)
        return value_fail(err, s, "is too large (the largest size is %" PRId64 " bytes)",
                          INT64_MAX);
    return 0;
}

static const struct {
    const char *unit;
    int64_t ms;
} duration_units[] = {
    /* Largest first: also the order sl_conf_format_duration() writes. */
    {"w", MS_PER_W}, {"d", MS_PER_D}, {"h", MS_PER_H}, {"m", MS_PER_M}, {"s", MS_PER_S}, {"ms", 1},
};

int sl_conf_parse_duration(const char *s, int64_t *out_ms, struct sl_err *err)
{
    static const char expect[] = "must be a duration such as 500ms, 5s, 1m, 2h or 7d";
    const char *p = s;
    if (*p == '-')
        return value_fail(err, s, "must not be negative");
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    int64_t total = 0;
    int64_t last = INT64_MAX;
    do {
        struct decimal d;
        if (!parse_decimal(&p, &d))
            return value_fail(err, s, "%s", expect);
        if (*p == '\0')
            return value_fail(err, s, "needs a unit: ms, s, m, h, d or w");
        /* The unit is the whole run of letters: "1sec" is an unknown unit, not "1s" + "ec". */
        size_t ulen = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        if (ulen == 0)
            return value_fail(err, s, "%s", expect);
        int64_t mult = 0;
        for (size_t i = 0; i < SL_ARRAY_LEN(duration_units); i++) {
            if (strlen(duration_units[i].unit) == ulen &&
                strncmp(p, duration_units[i].unit, ulen) == 0)
                mult = duration_units[i].ms;
        }
        if (!mult) {
            char q[SL_CONF_QUOTE_MAX];
            return value_fail(err, s, "has an unknown unit '%s'; use ms, s, m, h, d or w",
                              sl_conf_quote(p, ulen, q, sizeof(q)));
        }
        p += ulen;
        if (mult >= last)
            return value_fail(err, s, "must list its units from largest to smallest, each once");
        last = mult;
        int64_t v;
        int rc = decimal_scale(&d, mult, &v);
        if (rc == 1)
            return value_fail(err, s, "must be a whole number of milliseconds");
        if (rc == 2 || __builtin_add_overflow(total, v, &total))
            return value_fail(err, s, "is too large");
    } while (*p);
    *out_ms = total;
    return 0;
}

int sl_conf_parse_enum(const char *s, const struct sl_conf_enum *e, int *out, struct sl_err *err)
{
    for (const struct sl_conf_enum *i = e; i && i->name; i++) {
        if (strcmp(s, i->name) == 0) {
            *out = i->value;
            return 0;
        }
    }
    char list[400];
    size_t o = 0;
    list[0] = '\0';
    for (const struct sl_conf_enum *i = e; i && i->name && o < sizeof(list); i++) {
        int n = snprintf(list + o, sizeof(list) - o, "%s%s", i == e ? "" : ", ", i->name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    return value_fail(err, s, "must be one of %s", list);
}

static bool host_name_ok(const char *h, size_t n)
{
    if (n == 0 || n > SL_CONF_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}

static bool ipv6_ok(const char *h, size_t n)
{
    /* Zones ("fe80::1%eth0") are the interface's business; validate the address part. */
    const char *pct = memchr(h, '%', n);
    size_t alen = pct ? (size_t)(pct - h) : n;
    if (pct && !host_name_ok(pct + 1, n - alen - 1))
        return false;
    char a[64];
    if (alen == 0 || alen >= sizeof(a))
        return false;
    memcpy(a, h, alen);
    a[alen] = '\0';
    unsigned char bin[16];
    return inet_pton(AF_INET6, a, bin) == 1;
}

int sl_conf_parse_hostport(const char *s, int default_port, char *host, size_t host_size,
                           uint16_t *port, struct sl_err *err)
{
    const char *h, *rest;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return value_fail(err, s,
                              "must be host:port, with an IPv6 address in brackets as "
                              "[::1]:9092");
        h = s + 1;
        hlen = (size_t)(close - h);
        rest = close + 1;
        if (!ipv6_ok(h, hlen))
            return value_fail(err, s, "has an invalid IPv6 address");
        if (*rest != '\0' && *rest != ':')
            return value_fail(err, s,
                              "must be host:port, with an IPv6 address in brackets as "
                              "[::1]:9092");
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return value_fail(err, s, "needs brackets around an IPv6 address, as [::1]:9092");
        h = s;
        hlen = colon ? (size_t)(colon - s) : strlen(s);
        rest = s + hlen;
        if (hlen == 0)
            return value_fail(err, s, "must be host:port, as localhost:9092");
        if (!host_name_ok(h, hlen))
            return value_fail(err, s, "has an invalid host name");
    }
    long p;
    if (*rest == '\0') {
        if (default_port <= 0 || default_port > 65535)
            return value_fail(err, s, "needs a port, as host:9092");
        p = default_port;
    } else {
        const char *d = rest + 1;
        if (*d == '\0')
            return value_fail(err, s, "needs a port after ':'");
        p = 0;
        for (; *d; d++) {
            if (*d < '0' || *d > '9' || p > 65535)
                return value_fail(err, s, "must have a port from 0 to 65535");
            p = p * 10 + (*d - '0');
        }
        if (p > 65535)
            return value_fail(err, s, "must have a port from 0 to 65535");
    }
    if (hlen + 1 > host_size)
        return value_fail(err, s, "has a host name over %zu bytes", host_size - 1);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

void sl_conf_format_size(int64_t bytes, char *buf, size_t size)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        int64_t unit = KIB << (10 * (SL_ARRAY_LEN(names) - 1 - i));
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(buf, size, "%" PRId64 "%s", bytes / unit, names[i]);
            return;
        }
    }
    snprintf(buf, size, "%" PRId64 "B", bytes);
}

void sl_conf_format_duration(int64_t ms, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    if (ms <= 0) {
        snprintf(buf, size, "%" PRId64, ms);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(duration_units) && ms > 0; i++) {
        int64_t n = ms / duration_units[i].ms;
        if (n == 0)
            continue;
        ms -= n * duration_units[i].ms;
        int w = snprintf(buf + o, size - o, "%" PRId64 "%s", n, duration_units[i].unit);
        if (w < 0 || (size_t)w >= size - o)
            return;
        o += (size_t)w;
    }
}
