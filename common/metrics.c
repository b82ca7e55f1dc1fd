/* The metrics registry: families of labelled series, updated through handles, rendered as
 * Prometheus text. */
#include "common/metrics.h"

#include "common/base.h"
#include "common/json.h"
#include "common/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Text exposition format 0.0.4, as rendered here (one family shown per type):
 *
 *   # HELP <name> <help, with \ and newline escaped as \\ and \n>
 *   # TYPE <name> counter|gauge|histogram
 *   <name>{<label>="<value>",...} <value>          one line per series; no {} without labels
 *
 *   histogram series expand to cumulative buckets, then sum and count:
 *   <name>_bucket{<labels>,le="<bound>"} <count of observations <= bound>
 *   <name>_bucket{<labels>,le="+Inf"} <count>
 *   <name>_sum{<labels>} <sum>
 *   <name>_count{<labels>} <count>
 *
 *   label values escape \ " and newline as \\ \" \n. Every line ends with \n.
 *
 * Memory layout:
 *
 *   sl_metrics --families--> family --series--> series <-> series <-> ...   (doubly linked)
 *                            family --next----> family ...                   (singly linked)
 *
 * A series caches its label block already escaped (`topic="x",api="Produce"`), so a render
 * allocates nothing beyond the output buffer and two series of a family are equal exactly when
 * their label blocks are (the family fixes the label names and their order).
 */

enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
};

enum series_kind {
    SERIES_COUNTER,
    SERIES_GAUGE,
    SERIES_GAUGE_FN,
    SERIES_HISTOGRAM,
};

struct family {
    struct family *next;    /* owned by the registry's list */
    struct sl_metric *head; /* owned list of series */
    struct sl_metric *tail; /* borrowed */
    char *name;             /* owned */
    char *help;             /* owned, raw (escaped when rendered) */
    char *label_names;      /* owned: "topic,api", "" without labels */
    double *bounds;         /* owned, histograms only */
    size_t nbounds;
    enum metric_type type;
};

struct sl_metric {
    struct family *fam; /* borrowed: the family owns the series */
    struct sl_metric *prev;
    struct sl_metric *next;
    char *labels;  /* owned: escaped label block without braces, "" without labels */
    uint64_t hash; /* of labels, to skip most string compares on registration */
    enum series_kind kind;
    union {
        uint64_t counter;
        double gauge;
        struct {
            sl_metric_gauge_fn fn;
            void *arg; /* borrowed */
        } cb;
        struct {
            double sum;
            uint64_t count;
        } hist;
    } v;
    uint64_t bucket[]; /* histograms: nbounds + 1 non-cumulative counts, +Inf last */
};

struct sl_metrics {
    struct family *families; /* owned list, registration order */
    struct family *tail;     /* borrowed */
};

static const char *const type_names[] = {
    [METRIC_COUNTER] = "counter",
    [METRIC_GAUGE] = "gauge",
    [METRIC_HISTOGRAM] = "histogram",
};

static const char *const hist_suffixes[] = {"_bucket", "_sum", "_count"};

struct sl_metrics *sl_metrics_new(void)
{
    return sl_calloc(1, sizeof(struct sl_metrics));
}

static void series_free(struct sl_metric *s)
{
    if (!s)
        return;
    sl_free(s->labels);
    sl_free(s);
}

static void family_free(struct family *f)
{
    if (!f)
        return;
    struct sl_metric *s = f->head;
    while (s) {
        struct sl_metric *next = s->next;
        series_free(s);
        s = next;
    }
    sl_free(f->name);
    sl_free(f->help);
    sl_free(f->label_names);
    sl_free(f->bounds);
    sl_free(f);
}

void sl_metrics_free(struct sl_metrics *reg)
{
    if (!reg)
        return;
    struct family *f = reg->families;
    while (f) {
        struct family *next = f->next;
        family_free(f);
        f = next;
    }
    sl_free(reg);
}

/* --- validation ------------------------------------------------------------------------ */

static bool name_valid(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                  (colon && ch == ':') || (i > 0 && ch >= '0' && ch <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* True when `name` and a histogram family `hist` would render a line of the same name. */
static bool hist_clash(const char *hist, const char *name)
{
    size_t hlen = strlen(hist);
    size_t nlen = strlen(name);
    if (nlen <= hlen || memcmp(name, hist, hlen) != 0)
        return false;
    for (size_t i = 0; i < SL_ARRAY_LEN(hist_suffixes); i++) {
        if (strcmp(name + hlen, hist_suffixes[i]) == 0)
            return true;
    }
    return false;
}

static int check_labels(const char *name, const struct sl_metric_label *labels, size_t nlabels,
                        enum metric_type type, struct sl_err *err)
{
    if (nlabels && !labels)
        return sl_err_set(err, -EINVAL, "metric %s: %zu labels but no array", name, nlabels);
    for (size_t i = 0; i < nlabels; i++) {
        const char *ln = labels[i].name;
        if (!name_valid(ln, false) || strncmp(ln, "__", 2) == 0)
            return sl_err_set(err, -EINVAL, "metric %s: invalid label name '%s'", name,
                              ln ? ln : "(null)");
        if (type == METRIC_HISTOGRAM && strcmp(ln, "le") == 0)
            return sl_err_set(err, -EINVAL, "metric %s: label 'le' is reserved in histograms",
                              name);
        if (!labels[i].value)
            return sl_err_set(err, -EINVAL, "metric %s: label '%s' has no value", name, ln);
        if (!sl_utf8_valid((const uint8_t *)labels[i].value, strlen(labels[i].value)))
            return sl_err_set(err, -EINVAL, "metric %s: label '%s' value is not valid UTF-8", name,
                              ln);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[j].name, ln) == 0)
                return sl_err_set(err, -EINVAL, "metric %s: label '%s' given twice", name, ln);
        }
    }
    return 0;
}

/* --- escaping and label blocks --------------------------------------------------------- */

/* Appends s escaped for the format: always \ and newline; " too inside label values. */
static void append_escaped(struct sl_buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (!rep)
            continue;
        sl_buf_append(b, run, (size_t)(s - run));
        sl_buf_append(b, rep, 2);
        run = s + 1;
    }
    sl_buf_append(b, run, (size_t)(s - run));
}

/* Builds a NUL-terminated copy of b's contents; NULL on any failure. Frees b's storage. */
static char *buf_take_str(struct sl_buf *b)
{
    char *s = NULL;
    if (sl_buf_append(b, "", 1) == 0)
        s = sl_strndup((const char *)b->data, b->len);
    sl_buf_fini(b);
    return s;
}

static char *label_block(const struct sl_metric_label *labels, size_t nlabels)
{
    struct sl_buf b;
    sl_buf_init(&b);
    for (size_t i = 0; i < nlabels; i++) {
        sl_buf_printf(&b, "%s%s=\"", i ? "," : "", labels[i].name);
        append_escaped(&b, labels[i].value, true);
        sl_buf_append(&b, "\"", 1);
    }
    return buf_take_str(&b);
}

static char *label_names(const struct sl_metric_label *labels, size_t nlabels)
{
    struct sl_buf b;
    sl_buf_init(&b);
    for (size_t i = 0; i < nlabels; i++)
        sl_buf_printf(&b, "%s%s", i ? "," : "", labels[i].name);
    return buf_take_str(&b);
}

/* FNV-1a, 64 bits. */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return h;
}

/* --- registration ---------------------------------------------------------------------- */

struct add_req {
    const char *name;
    const char *help;
    const struct sl_metric_label *labels;
    size_t nlabels;
    enum metric_type type;
    enum series_kind kind;
    const double *bounds;
    size_t nbounds;
};

static struct family *family_find(const struct sl_metrics *reg, const char *name)
{
    for (struct family *f = reg->families; f; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static bool bounds_equal(const struct family *f, const double *bounds, size_t nbounds)
{
    if (f->nbounds != nbounds)
        return false;
    for (size_t i = 0; i < nbounds; i++) {
        if (f->bounds[i] != bounds[i])
            return false;
    }
    return true;
}

/* Checks that a new series fits the existing family f. */
static int family_match(const struct family *f, const struct add_req *rq, const char *names,
                        struct sl_err *err)
{
    const char *help = rq->help ? rq->help : "";
    if (f->type != rq->type)
        return sl_err_set(err, -EINVAL, "metric %s: registered as %s, now as %s", rq->name,
                          type_names[f->type], type_names[rq->type]);
    if (strcmp(f->help, help) != 0)
        return sl_err_set(err, -EINVAL, "metric %s: help text differs from the first series",
                          rq->name);
    if (strcmp(f->label_names, names) != 0)
        return sl_err_set(err, -EINVAL, "metric %s: label names (%s) differ from the family's (%s)",
                          rq->name, names, f->label_names);
    if (rq->type == METRIC_HISTOGRAM && !bounds_equal(f, rq->bounds, rq->nbounds))
        return sl_err_set(err, -EINVAL, "metric %s: bucket bounds differ from the family's",
                          rq->name);
    return 0;
}

static int family_create(struct sl_metrics *reg, const struct add_req *rq, char **names,
                         struct family **out, struct sl_err *err)
{
    for (struct family *f = reg->families; f; f = f->next) {
        bool clash = (f->type == METRIC_HISTOGRAM && hist_clash(f->name, rq->name)) ||
                     (rq->type == METRIC_HISTOGRAM && hist_clash(rq->name, f->name));
        if (clash)
            return sl_err_set(err, -EINVAL, "metric %s: name collides with histogram series of %s",
                              rq->name, f->name);
    }
    struct family *f = sl_calloc(1, sizeof(*f));
    if (!f)
        goto nomem;
    f->type = rq->type;
    f->name = sl_strdup(rq->name);
    f->help = sl_strdup(rq->help ? rq->help : "");
    if (!f->name || !f->help)
        goto nomem;
    if (rq->type == METRIC_HISTOGRAM) {
        f->bounds = sl_malloc(sizeof(double) * (rq->nbounds ? rq->nbounds : 1));
        if (!f->bounds)
            goto nomem;
        if (rq->nbounds)
            memcpy(f->bounds, rq->bounds, sizeof(double) * rq->nbounds);
        f->nbounds = rq->nbounds;
    }
    f->label_names = *names; /* taken only once nothing else can fail */
    *names = NULL;
    *out = f;
    return 0;
nomem:
    family_free(f);
    return sl_err_set(err, -ENOMEM, "metric %s: out of memory", rq->name);
}

static int metrics_add(struct sl_metrics *reg, const struct add_req *rq, struct sl_metric **out,
                       struct sl_err *err)
{
    int rc = 0;
    char *names = NULL;
    struct sl_metric *s = NULL;
    struct family *created = NULL;

    SL_ASSERT(reg && out);
    if (!name_valid(rq->name, true))
        return sl_err_set(err, -EINVAL, "invalid metric name '%s'", rq->name ? rq->name : "(null)");
    if (rq->help && !sl_utf8_valid((const uint8_t *)rq->help, strlen(rq->help)))
        return sl_err_set(err, -EINVAL, "metric %s: help text is not valid UTF-8", rq->name);
    rc = check_labels(rq->name, rq->labels, rq->nlabels, rq->type, err);
    if (rc < 0)
        return rc;
    if (rq->type == METRIC_HISTOGRAM) {
        if (rq->nbounds && !rq->bounds)
            return sl_err_set(err, -EINVAL, "metric %s: %zu bounds but no array", rq->name,
                              rq->nbounds);
        for (size_t i = 0; i < rq->nbounds; i++) {
            if (!isfinite(rq->bounds[i]) || (i > 0 && !(rq->bounds[i] > rq->bounds[i - 1])))
                return sl_err_set(err, -EINVAL,
                                  "metric %s: bounds must be finite and strictly increasing "
                                  "(bound %zu)",
                                  rq->name, i);
        }
    }

    names = label_names(rq->labels, rq->nlabels);
    size_t nbuckets = rq->type == METRIC_HISTOGRAM ? rq->nbounds + 1 : 0;
    s = sl_calloc(1, sizeof(*s) + nbuckets * sizeof(uint64_t));
    if (s)
        s->labels = label_block(rq->labels, rq->nlabels);
    if (!names || !s || !s->labels) {
        rc = sl_err_set(err, -ENOMEM, "metric %s: out of memory", rq->name);
        goto out;
    }
    s->kind = rq->kind;
    s->hash = hash_str(s->labels);

    struct family *f = family_find(reg, rq->name);
    if (f) {
        rc = family_match(f, rq, names, err);
        if (rc < 0)
            goto out;
        for (struct sl_metric *o = f->head; o; o = o->next) {
            if (o->hash == s->hash && strcmp(o->labels, s->labels) == 0) {
                rc = sl_err_set(err, -EEXIST, "metric %s{%s} already registered", rq->name,
                                s->labels);
                goto out;
            }
        }
    } else {
        rc = family_create(reg, rq, &names, &created, err);
        if (rc < 0)
            goto out;
        f = created;
        if (reg->tail)
            reg->tail->next = f;
        else
            reg->families = f;
        reg->tail = f;
    }

    s->fam = f;
    s->prev = f->tail;
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    *out = s;
    s = NULL;
out:
    series_free(s);
    sl_free(names);
    return rc;
}

int sl_metrics_add_counter(struct sl_metrics *reg, const char *name, const char *help,
                           const struct sl_metric_label *labels, size_t nlabels,
                           struct sl_metric **out, struct sl_err *err)
{
    struct add_req rq = {.name = name,
                         .help = help,
                         .labels = labels,
                         .nlabels = nlabels,
                         .type = METRIC_COUNTER,
                         .kind = SERIES_COUNTER};
    return metrics_add(reg, &rq, out, err);
}

int sl_metrics_add_gauge(struct sl_metrics *reg, const char *name, const char *help,
                         const struct sl_metric_label *labels, size_t nlabels,
                         struct sl_metric **out, struct sl_err *err)
{
    struct add_req rq = {.name = name,
                         .help = help,
                         .labels = labels,
                         .nlabels = nlabels,
                         .type = METRIC_GAUGE,
                         .kind = SERIES_GAUGE};
    return metrics_add(reg, &rq, out, err);
}

int sl_metrics_add_gauge_fn(struct sl_metrics *reg, const char *name, const char *help,
                            const struct sl_metric_label *labels, size_t nlabels,
                            sl_metric_gauge_fn fn, void *arg, struct sl_metric **out,
                            struct sl_err *err)
{
    if (!fn)
        return sl_err_set(err, -EINVAL, "metric %s: gauge fn is NULL", name ? name : "(null)");
    struct add_req rq = {.name = name,
                         .help = help,
                         .labels = labels,
                         .nlabels = nlabels,
                         .type = METRIC_GAUGE,
                         .kind = SERIES_GAUGE_FN};
    struct sl_metric *s = NULL;
    int rc = metrics_add(reg, &rq, &s, err);
    if (rc < 0)
        return rc;
    s->v.cb.fn = fn;
    s->v.cb.arg = arg;
    *out = s;
    return 0;
}

int sl_metrics_add_histogram(struct sl_metrics *reg, const char *name, const char *help,
                             const struct sl_metric_label *labels, size_t nlabels,
                             const double *bounds, size_t nbounds, struct sl_metric **out,
                             struct sl_err *err)
{
    struct add_req rq = {.name = name,
                         .help = help,
                         .labels = labels,
                         .nlabels = nlabels,
                         .type = METRIC_HISTOGRAM,
                         .kind = SERIES_HISTOGRAM,
                         .bounds = bounds,
                         .nbounds = nbounds};
    return metrics_add(reg, &rq, out, err);
}

void sl_metrics_remove(struct sl_metrics *reg, struct sl_metric *m)
{
    if (!m)
        return;
    struct family *f = m->fam;
    if (m->prev)
        m->prev->next = m->next;
    else
        f->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        f->tail = m->prev;
    series_free(m);
    if (f->head)
        return;

    struct family *prev = NULL;
    for (struct family *it = reg->families; it != f; it = it->next)
        prev = it;
    if (prev)
        prev->next = f->next;
    else
        reg->families = f->next;
    if (reg->tail == f)
        reg->tail = prev;
    family_free(f);
}

/* --- hot path -------------------------------------------------------------------------- */

void sl_metric_inc(struct sl_metric *c)
{
    if (!c)
        return;
    SL_ASSERT(c->kind == SERIES_COUNTER);
    c->v.counter++;
}

void sl_metric_add(struct sl_metric *c, uint64_t n)
{
    if (!c)
        return;
    SL_ASSERT(c->kind == SERIES_COUNTER);
    c->v.counter += n;
}

void sl_metric_set(struct sl_metric *g, double v)
{
    if (!g)
        return;
    SL_ASSERT(g->kind == SERIES_GAUGE);
    g->v.gauge = v;
}

void sl_metric_gauge_add(struct sl_metric *g, double delta)
{
    if (!g)
        return;
    SL_ASSERT(g->kind == SERIES_GAUGE);
    g->v.gauge += delta;
}

void sl_metric_observe(struct sl_metric *h, double v)
{
    if (!h)
        return;
    SL_ASSERT(h->kind == SERIES_HISTOGRAM);
    const double *b = h->fam->bounds;
    /* Lower bound: the first bucket with v <= bound; NaN compares false and ends in +Inf. */
    size_t lo = 0;
    size_t hi = h->fam->nbounds;
    if (isnan(v))
        lo = hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    h->bucket[lo]++;
    h->v.hist.count++;
    h->v.hist.sum += v;
}

uint64_t sl_metric_count(const struct sl_metric *m)
{
    if (!m)
        return 0;
    if (m->kind == SERIES_COUNTER)
        return m->v.counter;
    if (m->kind == SERIES_HISTOGRAM)
        return m->v.hist.count;
    return 0;
}

double sl_metric_value(const struct sl_metric *m)
{
    if (!m)
        return 0;
    switch (m->kind) {
    case SERIES_COUNTER:
        return (double)m->v.counter;
    case SERIES_GAUGE:
        return m->v.gauge;
    case SERIES_GAUGE_FN:
        return m->v.cb.fn(m->v.cb.arg);
    case SERIES_HISTOGRAM:
        return m->v.hist.sum;
    }
    return 0;
}

/* --- rendering ------------------------------------------------------------------------- */

char *sl_metrics_format_double(double v, char buf[32])
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
    } else if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, 32, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    return buf;
}

/* `<name><suffix>{<labels>[,<extra>]} ` -- braces only when there is a label at all. */
static void render_head(struct sl_buf *out, const struct sl_metric *s, const char *suffix,
                        const char *extra)
{
    sl_buf_append_str(out, s->fam->name);
    sl_buf_append_str(out, suffix);
    bool have = s->labels[0] != '\0';
    if (have || extra) {
        sl_buf_append(out, "{", 1);
        sl_buf_append_str(out, s->labels);
        if (extra) {
            if (have)
                sl_buf_append(out, ",", 1);
            sl_buf_append_str(out, extra);
        }
        sl_buf_append(out, "}", 1);
    }
    sl_buf_append(out, " ", 1);
}

static void render_histogram(struct sl_buf *out, const struct sl_metric *s)
{
    const struct family *f = s->fam;
    char num[32];
    char le[48];
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        cum += s->bucket[i];
        if (i < f->nbounds)
            snprintf(le, sizeof(le), "le=\"%s\"", sl_metrics_format_double(f->bounds[i], num));
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        render_head(out, s, "_bucket", le);
        sl_buf_printf(out, "%" PRIu64 "\n", cum);
    }
    render_head(out, s, "_sum", NULL);
    sl_buf_printf(out, "%s\n", sl_metrics_format_double(s->v.hist.sum, num));
    render_head(out, s, "_count", NULL);
    sl_buf_printf(out, "%" PRIu64 "\n", s->v.hist.count);
}

int sl_metrics_render(const struct sl_metrics *reg, struct sl_buf *out)
{
    char num[32];
    for (const struct family *f = reg->families; f; f = f->next) {
        if (f->help[0]) {
            sl_buf_printf(out, "# HELP %s ", f->name);
            append_escaped(out, f->help, false);
            sl_buf_append(out, "\n", 1);
        }
        sl_buf_printf(out, "# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const struct sl_metric *s = f->head; s; s = s->next) {
            switch (s->kind) {
            case SERIES_COUNTER:
                render_head(out, s, "", NULL);
                sl_buf_printf(out, "%" PRIu64 "\n", s->v.counter);
                break;
            case SERIES_GAUGE:
            case SERIES_GAUGE_FN:
                render_head(out, s, "", NULL);
                sl_buf_printf(out, "%s\n", sl_metrics_format_double(sl_metric_value(s), num));
                break;
            case SERIES_HISTOGRAM:
                render_histogram(out, s);
                break;
            }
        }
    }
    return sl_buf_error(out);
}
