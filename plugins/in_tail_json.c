/* JSON string escaping with UTF-8 repair, and cached RFC 3339 timestamps. */
#include "plugins/in_tail_json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Bytes copied as they are: printable ASCII but '"' and '\\'. */
static bool plain(uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Length of the valid UTF-8 sequence at p (n bytes left, p[0] >= 0x80), or 0 (RFC 3629). */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && p[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && p[1] >= 0x90)
            return 0; /* over U+10FFFF */
        return 4;
    }
    return 0;
}

int in_tail_json_escape(struct sl_buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    /* Worst case 6 output bytes per input byte; reserve for the common case up front. */
    sl_buf_reserve(b, n + 16);
    while (i < n) {
        size_t run = i;
        while (run < n && plain(p[run]))
            run++;
        if (run > i) {
            sl_buf_append(b, p + i, run - i);
            i = run;
            if (i == n)
                break;
        }
        uint8_t c = p[i];
        if (c >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                sl_buf_append(b, p + i, l);
                i += l;
            } else {
                sl_buf_append(b, "\\ufffd", 6);
                i++;
            }
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        sl_buf_append(b, esc, el);
        i++;
    }
    return sl_buf_error(b);
}

void in_tail_json_clock_init(struct in_tail_json_clock *c)
{
    c->sec = INT64_MIN;
    c->text[0] = '\0';
}

size_t in_tail_json_time(struct in_tail_json_clock *c, double t, char *out)
{
    if (!(t > -1e15 && t < 1e15))
        return 0;
    double fl = floor(t);
    int64_t sec = (int64_t)fl;
    long usec = lround((t - fl) * 1e6);
    if (usec >= 1000000) {
        sec++;
        usec -= 1000000;
    }
    if (sec != c->sec) {
        time_t tt = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
            return 0;
        snprintf(c->text, sizeof(c->text), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        c->sec = sec;
    }
    memcpy(out, c->text, 19);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
    return 27;
}
