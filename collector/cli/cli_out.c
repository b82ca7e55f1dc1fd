/* Output helpers of the sluice commands: JSON strings, aligned tables, times, progress. */
#include "collector/cli/cli.h"

#include "common/batch.h"
#include "common/json.h"
#include "common/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop;

static void cli_on_signal(int sig)
{
    cli_stop = sig;
}

void cli_signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll() returns EINTR and the command winds down */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_exit_code(int rc)
{
    switch (rc) {
    case 0:
        return CLI_EXIT_OK;
    case KC_EUNREACH:
        return CLI_EXIT_UNREACH;
    case KC_ENOTFOUND:
        return CLI_EXIT_NOTFOUND;
    default:
        return CLI_EXIT_FAIL;
    }
}

int cli_fail(int rc, const struct sl_err *err)
{
    fprintf(stderr, "sluice: %s\n", err && err->msg[0] ? err->msg : sl_strerror(rc));
    return cli_exit_code(rc);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'sluice %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

void cli_json_str(struct sl_buf *b, const void *vp, size_t n)
{
    if (!vp) {
        sl_buf_append_str(b, "null");
        return;
    }
    const uint8_t *p = vp;
    sl_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes at p[i - run .. i) to copy as they are */
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t u = c >= 0x20 && c != '"' && c != '\\' ? sl_utf8_len(p + i, n - i) : 0;
        if (u > 0 && c != 0x7f) {
            i += u;
            run += u;
            continue;
        }
        sl_buf_append(b, p + i - run, run);
        run = 0;
        switch (c) {
        case '"':
            sl_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            sl_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            sl_buf_append(b, "\\n", 2);
            break;
        case '\r':
            sl_buf_append(b, "\\r", 2);
            break;
        case '\t':
            sl_buf_append(b, "\\t", 2);
            break;
        default:
            sl_buf_printf(b, "\\u%04x", c);
            break;
        }
        i++;
    }
    sl_buf_append(b, p + n - run, run);
    sl_buf_append(b, "\"", 1);
}

void cli_table_init(struct cli_table *t, const char *const *head, size_t ncols)
{
    memset(t, 0, sizeof(*t));
    t->head = head;
    t->ncols = ncols;
}

int cli_table_row(struct cli_table *t, const char *const *cells)
{
    if (t->err)
        return t->err;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **n = sl_realloc(t->cells, cap * t->ncols * sizeof(*n));
        if (!n)
            return t->err = -ENOMEM;
        t->cells = n;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        if (!(row[i] = sl_strdup(cells[i] ? cells[i] : ""))) {
            for (size_t k = 0; k < i; k++)
                sl_free(row[k]);
            return t->err = -ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

static bool numeric(const char *s)
{
    if (*s == '-' && s[1] == 0)
        return true; /* "-": no value, in a numeric column */
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if ((*s < '0' || *s > '9') && *s != '.')
            return false;
    return true;
}

void cli_table_print(const struct cli_table *t, FILE *fp)
{
    size_t width[16] = {0};
    bool right[16];
    size_t nc = SL_MIN(t->ncols, SL_ARRAY_LEN(width));
    for (size_t c = 0; c < nc; c++) {
        width[c] = strlen(t->head[c]);
        right[c] = t->nrows > 0;
        for (size_t r = 0; r < t->nrows; r++) {
            const char *s = t->cells[r * t->ncols + c];
            width[c] = SL_MAX(width[c], strlen(s));
            right[c] = right[c] && numeric(s);
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < nc; c++) {
            const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
            bool last = c + 1 == nc;
            if (right[c])
                fprintf(fp, "%*s%s", (int)width[c], s, last ? "" : "  ");
            else if (last)
                fputs(s, fp);
            else
                fprintf(fp, "%-*s  ", (int)width[c], s);
        }
        fputc('\n', fp);
    }
}

void cli_table_fini(struct cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        sl_free(t->cells[i]);
    SL_FREE(t->cells);
    t->nrows = t->cap = 0;
}

void cli_format_time(int64_t ms, char *buf, size_t size)
{
    if (ms < 0) {
        snprintf(buf, size, "-");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(buf, size, "@%lld", (long long)ms);
        return;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Reads exactly n digits at *p into *out. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int cli_parse_time(const char *s, int64_t *ms, struct sl_err *err)
{
    const char *p = s;
    if (*p == '@') {
        char *end;
        errno = 0;
        long long v = strtoll(p + 1, &end, 10);
        if (errno || end == p + 1 || *end || v < 0)
            goto bad;
        *ms = v;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        goto bad;
    int64_t offset_s = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            goto bad;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                goto bad;
            if (*p == '.') {
                p++;
                int scale = 100, nd = 0;
                while (*p >= '0' && *p <= '9') {
                    frac_ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                    nd++;
                }
                if (nd == 0)
                    goto bad;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!digits(&p, 2, &oh))
                goto bad;
            if (*p == ':')
                p++;
            if (!digits(&p, 2, &om) || oh > 23 || om > 59)
                goto bad;
            offset_s = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        goto bad;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t < 0)
        goto bad;
    *ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
bad:
    return sl_err_set(err, SL_EPARSE,
                      "must be a time such as 2026-11-22T10:00:00Z, 2026-11-22T11:00:00+01:00, "
                      "'2026-11-22 10:00', 2026-11-22 or @1795340400000 (ms since the epoch) "
                      "(got '%s')",
                      s);
}

void cli_progress_init(struct cli_progress *p, bool on)
{
    memset(p, 0, sizeof(*p));
    p->on = on;
    p->start_ms = p->last_ms = kc_now_ms();
}

void cli_progress_show(struct cli_progress *p, bool force, const char *fmt, ...)
{
    if (!p->on)
        return;
    int64_t now = kc_now_ms();
    if (!force && now - p->last_ms < 200)
        return;
    p->last_ms = now;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* \r and "erase to end of line": the line is redrawn in place. */
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_end(struct cli_progress *p)
{
    if (p->on && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = false;
}

int cli_output(const struct cli *c, const struct cli_table *tab, const struct sl_buf *js, int rc,
               struct sl_err *err)
{
    if (rc != 0)
        return rc;
    if (tab->err || sl_buf_error(js))
        return sl_err_set(err, -ENOMEM, "out of memory");
    if (c->json)
        fwrite(js->data, 1, js->len, stdout);
    else
        cli_table_print(tab, stdout);
    return 0;
}

void cli_json_key_headers(struct sl_buf *b, const struct sl_batch_record *rec)
{
    cli_json_str(b, rec->key.p, rec->key.len);
    sl_buf_append_str(b, ",\"headers\":[");
    struct sl_batch_hiter hi;
    struct sl_bytes hk, hv;
    sl_batch_hiter_init(&hi, rec);
    for (int i = 0; sl_batch_hiter_next(&hi, &hk, &hv); i++) {
        sl_buf_append_str(b, i ? ",[" : "[");
        cli_json_str(b, hk.p, hk.len);
        sl_buf_append_str(b, ",");
        cli_json_str(b, hv.p, hv.len);
        sl_buf_append_str(b, "]");
    }
    sl_buf_append_str(b, "]");
}
