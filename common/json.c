/* JSON string escaping with UTF-8 repair, UTF-8 validation, and cached RFC 3339 timestamps. */
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

size_t sl_utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0; /* overlong, over U+10FFFF */
        return 4;
    }
    return 0;
}

bool sl_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = sl_utf8_len(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* Bytes copied as they are into a JSON string: printable ASCII but '"' and '\\'. */
static const uint8_t plain_tab[256] = {
    ['\x20'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1,
    [')'] = 1,    ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1,  ['0'] = 1,
    ['1'] = 1,    ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,  ['8'] = 1,
    ['9'] = 1,    [':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1, ['?'] = 1,  ['@'] = 1,
    ['A'] = 1,    ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,  ['H'] = 1,
    ['I'] = 1,    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1,  ['P'] = 1,
    ['Q'] = 1,    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,  ['X'] = 1,
    ['Y'] = 1,    ['Z'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1,  ['a'] = 1,
    ['b'] = 1,    ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,  ['i'] = 1,
    ['j'] = 1,    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,  ['q'] = 1,
    ['r'] = 1,    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,  ['y'] = 1,
    ['z'] = 1,    ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1,
};

bool sl_json_escape(struct sl_buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    bool valid = true;
    /* Escapes take at most 6 bytes per input byte; the common case fits n plus a little. */
    if (sl_buf_reserve(b, n + 16) != 0)
        return valid;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && plain_tab[p[run]])
            run++;
        if (run > i) {
            sl_buf_append(b, p + i, run - i);
            i = run;
            if (i == n)
                break;
        }
        uint8_t c = p[i];
        if (c >= 0x80) {
            size_t l = sl_utf8_len(p + i, n - i);
            if (l) {
                sl_buf_append(b, p + i, l);
                i += l;
            } else {
                sl_buf_append(b, "\\ufffd", 6);
                valid = false;
                i++;
            }
            continue;
        }
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
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
            el = 6;
        }
        sl_buf_append(b, esc, el);
        i++;
    }
    return valid;
}

void sl_json_clock_init(struct sl_json_clock *c)
{
    c->sec = INT64_MIN;
    c->text[0] = '\0';
}

size_t sl_json_time(struct sl_json_clock *c, int64_t sec, uint32_t usec, char *out)
{
    if (sec < -62167219200LL || sec > 253402300799LL || usec >= 1000000u)
        return 0; /* outside 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z */
    if (sec != c->sec) {
        time_t tt = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&tt, &tm))
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

size_t sl_json_time_double(struct sl_json_clock *c, double t, char *out)
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
    return sl_json_time(c, sec, (uint32_t)usec, out);
}
