/* Option tables at work: filling caller structs from the merged tree (values, defaults,
 * bounds, variants, did-you-mean), freeing them, checking tables, and --help / Markdown. */
#include "common/conf_priv.h"

#include "common/base.h"
#include "common/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * For each section, with the section's mapping from the merged tree (or none):
 *
 *   variant key ("type")  ->  pick the variant table, allocate its struct
 *   pass 1, keys in document order:
 *       unknown key       ->  error at the key, "did you mean" by edit distance
 *       null value        ->  left to pass 2 (null means "not set")
 *       known key         ->  parse the value into the field (errors at the value)
 *   pass 2, options in table order, those not set:
 *       section           ->  recurse with no mapping (its defaults)
 *       default           ->  parsed by the same code as a value
 *       required          ->  "missing required option" at the section
 *   no new errors         ->  the variant's check hook, then the section's
 *
 * Error contexts: the root has none; an option section adds its key ("output", then
 * "output.tls"); a map element adds "<element section name> '<key>'" ("source 'nginx'").
 */

/* Longest context path; deeper ones are cut, which only shortens messages. */
#define CTX_MAX 256
/* Tables nest far less than this; a deeper walk means a table refers to itself. */
#define TABLE_DEPTH_MAX 16
/* Map entry names go into log prefixes and file names; the longest are topic names (`topics`
 * in collector.yaml), which Kafka allows up to 249 bytes. */
#define ENTRY_NAME_MAX 249

struct apply {
    struct sl_conf_errors *errs;
    bool nomem;
};

struct sl_conf_check {
    struct apply *a;
    const struct sl_conf_node *map; /* may be NULL */
    const struct sl_conf_pos *where;
    const char *ctx;
};

/* snprintf through a wrapper: paths are cut on purpose when they grow past CTX_MAX. */
__attribute__((format(printf, 3, 4))) static void fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, size, f, ap);
    va_end(ap);
}

static void *field_at(void *obj, size_t offset)
{
    return (char *)obj + offset;
}

__attribute__((format(printf, 4, 5))) static void
opt_error(struct apply *a, const struct sl_conf_pos *pos, const char *ctx, const char *fmt, ...)
{
    char msg[sizeof(a->errs->items[0].text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ctx && *ctx)
        sl_conf_error_add(a->errs, pos, "%s: %s", ctx, msg);
    else
        sl_conf_error_add(a->errs, pos, "%s", msg);
}

/* A value's error: "'opt' <phrase>" at pos, or "default of 'opt' <phrase>" for a default
 * (pos without a file). */
__attribute__((format(printf, 5, 6))) static void
value_error(struct apply *a, const struct sl_conf_pos *pos, const char *ctx,
            const struct sl_conf_opt *opt, const char *fmt, ...)
{
    char phrase[sizeof(a->errs->items[0].text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(phrase, sizeof(phrase), fmt, ap);
    va_end(ap);
    if (pos && pos->file)
        opt_error(a, pos, ctx, "'%s' %s", opt->name, phrase);
    else
        opt_error(a, NULL, ctx, "default of '%s' %s", opt->name, phrase);
}

static void ctx_join(char *out, const char *ctx, const char *part)
{
    if (ctx && *ctx)
        fmt(out, CTX_MAX, "%s.%s", ctx, part);
    else
        fmt(out, CTX_MAX, "%s", part);
}

static bool bounded(const struct sl_conf_opt *opt)
{
    return opt->min != 0 || opt->max != 0;
}

static void format_value(const struct sl_conf_opt *opt, int64_t v, char *buf, size_t size)
{
    if (opt->type == SL_CONF_SIZE)
        sl_conf_format_size(v, buf, size);
    else if (opt->type == SL_CONF_DURATION)
        sl_conf_format_duration(v, buf, size);
    else
        snprintf(buf, size, "%" PRId64, v);
}

/* "between 1KiB and 64MiB", "at least 1", "at most 10". */
static void format_bounds(const struct sl_conf_opt *opt, char *buf, size_t size)
{
    char lo[32], hi[32];
    format_value(opt, opt->min, lo, sizeof(lo));
    format_value(opt, opt->max, hi, sizeof(hi));
    bool no_lo = opt->min == INT64_MIN || (opt->min == 0 && opt->type != SL_CONF_INT);
    if (opt->max == INT64_MAX)
        snprintf(buf, size, "at least %s", lo);
    else if (no_lo)
        snprintf(buf, size, "at most %s", hi);
    else
        snprintf(buf, size, "between %s and %s", lo, hi);
}

static void enum_list(const struct sl_conf_enum *e, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (const struct sl_conf_enum *i = e; i && i->name && o < size; i++) {
        int n = snprintf(buf + o, size - o, "%s%s", i == e ? "" : ", ", i->name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

static void variant_list(const struct sl_conf_section *sec, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; sec->variants && sec->variants[i] && o < size; i++) {
        int n = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", sec->variants[i]->name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* What a value of the option looks like, for "must be <expect>". */
static void expect_text(const struct sl_conf_opt *opt, char *buf, size_t size)
{
    char list[300];
    switch (opt->type) {
    case SL_CONF_STRING:
        snprintf(buf, size, "a string");
        break;
    case SL_CONF_BOOL:
        snprintf(buf, size, "true or false");
        break;
    case SL_CONF_INT:
        snprintf(buf, size, "an integer");
        break;
    case SL_CONF_SIZE:
        snprintf(buf, size, "a size");
        break;
    case SL_CONF_DURATION:
        snprintf(buf, size, "a duration");
        break;
    case SL_CONF_ENUM:
        enum_list(opt->enums, list, sizeof(list));
        snprintf(buf, size, "one of %s", list);
        break;
    case SL_CONF_HOSTPORT:
        snprintf(buf, size, "host:port");
        break;
    case SL_CONF_LIST:
        snprintf(buf, size, "a sequence of strings");
        break;
    case SL_CONF_HOSTPORTS:
        snprintf(buf, size, "a sequence of host:port");
        break;
    case SL_CONF_SECTION:
        snprintf(buf, size, "a mapping of options");
        break;
    case SL_CONF_MAP:
        snprintf(buf, size, "a mapping of names to %s sections",
                 opt->sub && opt->sub->name ? opt->sub->name : "");
        break;
    default:
        snprintf(buf, size, "a value");
        break;
    }
}

/* "'x'" for a scalar, "a mapping" otherwise: what a wrongly typed node was. */
static const char *got_text(const struct sl_conf_node *n, char *buf, size_t size)
{
    if (n->kind != SL_CONF_NODE_SCALAR || n->null)
        return sl_conf_node_kind_name(n);
    char q[SL_CONF_QUOTE_MAX];
    snprintf(buf, size, "'%s'", sl_conf_quote(n->text, n->len, q, sizeof(q)));
    return buf;
}

static void kind_error(struct apply *a, const struct sl_conf_opt *opt, const struct sl_conf_node *n,
                       const char *ctx)
{
    char expect[400], got[SL_CONF_QUOTE_MAX + 2];
    expect_text(opt, expect, sizeof(expect));
    value_error(a, &n->pos, ctx, opt, "must be %s (got %s)", expect, got_text(n, got, sizeof(got)));
}

/* Parses one scalar value of a scalar-typed option into field. pos->file NULL: a default. */
static void apply_scalar(struct apply *a, const struct sl_conf_opt *opt, void *field,
                         const char *text, size_t len, const struct sl_conf_pos *pos,
                         const char *ctx)
{
    struct sl_err e = {{0}};
    int64_t v = 0;
    int rc = 0;
    char b[64], q[SL_CONF_QUOTE_MAX];
    switch (opt->type) {
    case SL_CONF_STRING: {
        if (bounded(opt) && ((int64_t)len < opt->min || (int64_t)len > opt->max)) {
            value_error(a, pos, ctx, opt,
                        "must be %" PRId64 " to %" PRId64 " bytes long (got '%s', %zu bytes)",
                        opt->min, opt->max, sl_conf_quote(text, len, q, sizeof(q)), len);
            return;
        }
        char *s = sl_malloc(len + 1);
        if (!s) {
            a->nomem = true;
            return;
        }
        memcpy(s, text, len);
        s[len] = '\0';
        *(char **)field = s;
        return;
    }
    case SL_CONF_BOOL:
        rc = sl_conf_parse_bool(text, (bool *)field, &e);
        break;
    case SL_CONF_INT:
        rc = sl_conf_parse_int(text, &v, &e);
        break;
    case SL_CONF_SIZE:
        rc = sl_conf_parse_size(text, &v, &e);
        break;
    case SL_CONF_DURATION:
        rc = sl_conf_parse_duration(text, &v, &e);
        break;
    case SL_CONF_ENUM:
        rc = sl_conf_parse_enum(text, opt->enums, (int *)field, &e);
        break;
    case SL_CONF_HOSTPORT: {
        char host[SL_CONF_HOST_MAX + 1];
        uint16_t port;
        rc = sl_conf_parse_hostport(text, opt->port, host, sizeof(host), &port, &e);
        if (rc)
            break;
        struct sl_conf_hostport *hp = field;
        hp->host = sl_strdup(host);
        if (!hp->host)
            a->nomem = true;
        hp->port = port;
        return;
    }
    default:
        return;
    }
    if (rc) {
        value_error(a, pos, ctx, opt, "%s", e.msg);
        return;
    }
    if (opt->type == SL_CONF_INT || opt->type == SL_CONF_SIZE || opt->type == SL_CONF_DURATION) {
        if (bounded(opt) && (v < opt->min || v > opt->max)) {
            format_bounds(opt, b, sizeof(b));
            value_error(a, pos, ctx, opt, "must be %s (got '%s')", b,
                        sl_conf_quote(text, len, q, sizeof(q)));
            return;
        }
        *(int64_t *)field = v;
    }
}

static void apply_section(struct apply *a, const struct sl_conf_section *sec, void *obj,
                          const struct sl_conf_node *map, const struct sl_conf_pos *where,
                          const char *ctx, int depth);

/* A sequence into a struct sl_conf_list or struct sl_conf_hostports. */
static void apply_list(struct apply *a, const struct sl_conf_opt *opt, void *field,
                       const struct sl_conf_node *n, const char *ctx)
{
    if (n->kind != SL_CONF_NODE_SEQ) {
        kind_error(a, opt, n, ctx);
        return;
    }
    if (bounded(opt) && ((int64_t)n->count < opt->min || (int64_t)n->count > opt->max)) {
        value_error(a, &n->pos, ctx, opt, "must have %" PRId64 " to %" PRId64 " items (got %zu)",
                    opt->min, opt->max, n->count);
        return;
    }
    bool hostports = opt->type == SL_CONF_HOSTPORTS;
    struct sl_conf_list *list = field;
    struct sl_conf_hostports *hps = field;
    void *items = n->count
                      ? sl_calloc(n->count, hostports ? sizeof(*hps->items) : sizeof(*list->items))
                      : NULL;
    if (n->count && !items) {
        a->nomem = true;
        return;
    }
    if (hostports)
        hps->items = items;
    else
        list->items = items;
    size_t i = 0;
    char got[SL_CONF_QUOTE_MAX + 2];
    for (const struct sl_conf_node *c = n->first; c && !a->nomem; c = c->next) {
        i++;
        if (c->kind != SL_CONF_NODE_SCALAR || c->null) {
            value_error(a, &c->pos, ctx, opt, "item %zu must be %s (got %s)", i,
                        hostports ? "host:port" : "a string", got_text(c, got, sizeof(got)));
            continue;
        }
        if (!hostports) {
            char *s = sl_malloc(c->len + 1);
            if (!s) {
                a->nomem = true;
                break;
            }
            memcpy(s, c->text, c->len + 1);
            list->items[list->len++] = s;
            continue;
        }
        struct sl_err e;
        char host[SL_CONF_HOST_MAX + 1];
        uint16_t port;
        if (sl_conf_parse_hostport(c->text, opt->port, host, sizeof(host), &port, &e)) {
            value_error(a, &c->pos, ctx, opt, "item %zu %s", i, e.msg);
            continue;
        }
        struct sl_conf_hostport *hp = &hps->items[hps->len];
        if (!(hp->host = sl_strdup(host))) {
            a->nomem = true;
            break;
        }
        hp->port = port;
        hps->len++;
    }
}

static bool entry_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ENTRY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* A mapping of name -> section into a struct sl_conf_map. */
static void apply_map(struct apply *a, const struct sl_conf_opt *opt, void *field,
                      const struct sl_conf_node *n, const char *ctx, int depth)
{
    if (n->kind != SL_CONF_NODE_MAP) {
        kind_error(a, opt, n, ctx);
        return;
    }
    const struct sl_conf_section *sub = opt->sub;
    struct sl_conf_map *map = field;
    size_t want = 0;
    for (const struct sl_conf_node *c = n->first; c; c = c->next)
        want += !c->null;
    if (want == 0)
        return;
    map->items = sl_calloc(want, sub->size);
    if (!map->items) {
        a->nomem = true;
        return;
    }
    char q[SL_CONF_QUOTE_MAX], got[SL_CONF_QUOTE_MAX + 2];
    for (const struct sl_conf_node *c = n->first; c && !a->nomem; c = c->next) {
        if (c->null)
            continue; /* `name: ~` removes an entry an earlier file defined */
        if (!entry_name_ok(c->key)) {
            opt_error(a, &c->key_pos, ctx,
                      "%s name '%s' must be 1 to %d letters, digits, '_', '-' or '.'", sub->name,
                      sl_conf_quote(c->key, strlen(c->key), q, sizeof(q)), ENTRY_NAME_MAX);
            continue;
        }
        void *elem = (char *)map->items + map->len * sub->size;
        map->len++;
        char *name = sl_strdup(c->key);
        if (!name) {
            a->nomem = true;
            break;
        }
        *(char **)field_at(elem, sub->name_offset) = name;
        char part[CTX_MAX], sub_ctx[CTX_MAX];
        fmt(part, sizeof(part), "%s '%s'", sub->name, c->key);
        ctx_join(sub_ctx, ctx, part);
        if (c->kind != SL_CONF_NODE_MAP) {
            opt_error(a, &c->pos, sub_ctx, "must be a mapping of options (got %s)",
                      got_text(c, got, sizeof(got)));
            continue;
        }
        apply_section(a, sub, elem, c, &c->key_pos, sub_ctx, depth + 1);
    }
}

/* A set value (not null) of any type into field. */
static void apply_node(struct apply *a, const struct sl_conf_opt *opt, void *field,
                       const struct sl_conf_node *n, const char *ctx, int depth)
{
    char sub_ctx[CTX_MAX];
    switch (opt->type) {
    case SL_CONF_LIST:
    case SL_CONF_HOSTPORTS:
        apply_list(a, opt, field, n, ctx);
        return;
    case SL_CONF_SECTION:
        if (n->kind != SL_CONF_NODE_MAP) {
            kind_error(a, opt, n, ctx);
            return;
        }
        ctx_join(sub_ctx, ctx, opt->name);
        apply_section(a, opt->sub, field, n, &n->key_pos, sub_ctx, depth + 1);
        return;
    case SL_CONF_MAP:
        apply_map(a, opt, field, n, ctx, depth);
        return;
    default:
        if (n->kind != SL_CONF_NODE_SCALAR) {
            kind_error(a, opt, n, ctx);
            return;
        }
        apply_scalar(a, opt, field, n->text, n->len, &n->pos, ctx);
        return;
    }
}

/* The option's default into field; lists are written as YAML flow sequences. */
static void apply_default(struct apply *a, const struct sl_conf_opt *opt, void *field,
                          const char *ctx)
{
    if (opt->type != SL_CONF_LIST && opt->type != SL_CONF_HOSTPORTS) {
        apply_scalar(a, opt, field, opt->def, strlen(opt->def), NULL, ctx);
        return;
    }
    struct sl_conf_node *tree = NULL;
    int rc = sl_conf_tree_parse(NULL, opt->def, strlen(opt->def), &tree, a->errs);
    if (rc == -ENOMEM) {
        a->nomem = true;
    } else if (rc) {
        opt_error(a, NULL, ctx, "default of '%s' is not valid YAML", opt->name);
    } else if (tree && !tree->null) {
        apply_node(a, opt, field, tree, ctx, 0);
    }
    sl_conf_node_free(tree);
}

/* An option that was not set: its default, its sub-section's defaults, or an error. */
static void apply_unset(struct apply *a, const struct sl_conf_opt *opt, void *field,
                        const struct sl_conf_pos *where, const char *ctx, int depth)
{
    char sub_ctx[CTX_MAX];
    if (opt->type == SL_CONF_SECTION) {
        ctx_join(sub_ctx, ctx, opt->name);
        apply_section(a, opt->sub, field, NULL, where, sub_ctx, depth + 1);
    } else if (opt->def) {
        apply_default(a, opt, field, ctx);
    } else if (opt->flags & SL_CONF_REQUIRED) {
        opt_error(a, where, ctx, "missing required option '%s'", opt->name);
    }
}

static const struct sl_conf_opt *find_opt(const struct sl_conf_section *sec, const char *name)
{
    for (const struct sl_conf_opt *o = sec ? sec->opts : NULL; o && o->name; o++) {
        if (strcmp(o->name, name) == 0)
            return o;
    }
    return NULL;
}

static void consider(const char *got, const char *name, const char **best, size_t *best_d)
{
    size_t d;
    if (sl_conf_is_close(got, name, &d) && d < *best_d) {
        *best = name;
        *best_d = d;
    }
}

static void unknown_key(struct apply *a, const struct sl_conf_section *sec,
                        const struct sl_conf_section *vsec, const struct sl_conf_node *c,
                        const char *ctx)
{
    char q[SL_CONF_QUOTE_MAX];
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    const struct sl_conf_section *secs[2] = {sec, vsec};
    for (int s = 0; s < 2; s++) {
        for (const struct sl_conf_opt *o = secs[s] ? secs[s]->opts : NULL; o && o->name; o++)
            consider(c->key, o->name, &best, &best_d);
    }
    if (sec->variant_key)
        consider(c->key, sec->variant_key, &best, &best_d);
    const char *key = sl_conf_quote(c->key, strlen(c->key), q, sizeof(q));
    if (best) {
        opt_error(a, &c->key_pos, ctx, "unknown option '%s'; did you mean '%s'?", key, best);
        return;
    }
    char list[400];
    size_t o = 0;
    list[0] = '\0';
    if (sec->variant_key)
        o += (size_t)snprintf(list, sizeof(list), "%s", sec->variant_key);
    for (int s = 0; s < 2; s++) {
        for (const struct sl_conf_opt *i = secs[s] ? secs[s]->opts : NULL;
             i && i->name && o < sizeof(list); i++) {
            int n = snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", i->name);
            if (n < 0)
                break;
            o += (size_t)n;
        }
    }
    opt_error(a, &c->key_pos, ctx, "unknown option '%s' (allowed: %s)", key, list);
}

/* Reads the variant key and allocates the chosen variant's struct. Returns the variant
 * section, or NULL when there is none (reported unless absent by design). */
static const struct sl_conf_section *pick_variant(struct apply *a,
                                                  const struct sl_conf_section *sec, void *obj,
                                                  const struct sl_conf_node *map,
                                                  const struct sl_conf_pos *where, const char *ctx)
{
    char list[400], got[SL_CONF_QUOTE_MAX + 2];
    variant_list(sec, list, sizeof(list));
    const struct sl_conf_node *k = sl_conf_node_get(map, sec->variant_key);
    if (!k || k->null) {
        opt_error(a, where, ctx, "missing required option '%s' (one of %s)", sec->variant_key,
                  list);
        return NULL;
    }
    const struct sl_conf_section *v = NULL;
    for (size_t i = 0; k->kind == SL_CONF_NODE_SCALAR && sec->variants[i]; i++) {
        if (strcmp(sec->variants[i]->name, k->text) == 0)
            v = sec->variants[i];
    }
    if (!v) {
        opt_error(a, &k->pos, ctx, "'%s' must be one of %s (got %s)", sec->variant_key, list,
                  got_text(k, got, sizeof(got)));
        return NULL;
    }
    struct sl_conf_variant *var = field_at(obj, sec->variant_offset);
    var->conf = sl_calloc(1, v->size);
    if (!var->conf) {
        a->nomem = true;
        return NULL;
    }
    var->section = v;
    return v;
}

static void apply_section(struct apply *a, const struct sl_conf_section *sec, void *obj,
                          const struct sl_conf_node *map, const struct sl_conf_pos *where,
                          const char *ctx, int depth)
{
    if (depth > TABLE_DEPTH_MAX || a->nomem)
        return;
    int before = sl_conf_error_total(a->errs);
    if (map && map->kind == SL_CONF_NODE_MAP)
        where = map->key ? &map->key_pos : &map->pos;
    else
        map = NULL;
    const struct sl_conf_section *vsec = NULL;
    void *vobj = NULL;
    if (sec->variant_key && sec->variants) {
        vsec = pick_variant(a, sec, obj, map, where, ctx);
        if (a->nomem)
            return;
        if (vsec)
            vobj = ((struct sl_conf_variant *)field_at(obj, sec->variant_offset))->conf;
    }

    for (const struct sl_conf_node *c = map ? map->first : NULL; c && !a->nomem; c = c->next) {
        if (sec->variant_key && strcmp(c->key, sec->variant_key) == 0)
            continue;
        const struct sl_conf_opt *opt = find_opt(sec, c->key);
        void *base = obj;
        if (!opt && vsec) {
            opt = find_opt(vsec, c->key);
            base = vobj;
        }
        if (!opt) {
            /* With an unknown variant, its options cannot be told from typos. */
            if (!sec->variant_key || vsec)
                unknown_key(a, sec, vsec, c, ctx);
            continue;
        }
        if (!c->null)
            apply_node(a, opt, field_at(base, opt->offset), c, ctx, depth);
    }

    const struct sl_conf_section *secs[2] = {sec, vsec};
    void *objs[2] = {obj, vobj};
    for (int s = 0; s < 2 && !a->nomem; s++) {
        for (const struct sl_conf_opt *o = secs[s] ? secs[s]->opts : NULL; o && o->name; o++) {
            const struct sl_conf_node *c = sl_conf_node_get(map, o->name);
            if (!c || c->null)
                apply_unset(a, o, field_at(objs[s], o->offset), where, ctx, depth);
        }
    }

    if (a->nomem || sl_conf_error_total(a->errs) != before)
        return;
    struct sl_conf_check chk = {a, map, where, ctx};
    if (vsec && vsec->check)
        vsec->check(vobj, &chk);
    if (sec->check && sl_conf_error_total(a->errs) == before)
        sec->check(obj, &chk);
}

void sl_conf_check_error(struct sl_conf_check *chk, const char *opt, const char *fmt, ...)
{
    const struct sl_conf_node *n = opt ? sl_conf_node_get(chk->map, opt) : NULL;
    char msg[sizeof(chk->a->errs->items[0].text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    opt_error(chk->a, n ? &n->pos : chk->where, chk->ctx, "%s", msg);
}

int sl_conf_apply(const struct sl_conf_section *root, void *dst, const struct sl_conf_node *tree,
                  const struct sl_conf_pos *where, struct sl_conf_errors *errs)
{
    struct apply a = {.errs = errs};
    apply_section(&a, root, dst, tree, where, "", 0);
    return a.nomem ? -ENOMEM : 0;
}

/* ---- freeing ---- */

static void free_section(const struct sl_conf_section *sec, void *obj, int depth);

static void free_field(const struct sl_conf_opt *opt, void *field, int depth)
{
    switch (opt->type) {
    case SL_CONF_STRING:
        SL_FREE(*(char **)field);
        break;
    case SL_CONF_HOSTPORT: {
        struct sl_conf_hostport *hp = field;
        SL_FREE(hp->host);
        break;
    }
    case SL_CONF_LIST: {
        struct sl_conf_list *l = field;
        for (size_t i = 0; i < l->len; i++)
            sl_free(l->items[i]);
        SL_FREE(l->items);
        l->len = 0;
        break;
    }
    case SL_CONF_HOSTPORTS: {
        struct sl_conf_hostports *l = field;
        for (size_t i = 0; i < l->len; i++)
            sl_free(l->items[i].host);
        SL_FREE(l->items);
        l->len = 0;
        break;
    }
    case SL_CONF_SECTION:
        free_section(opt->sub, field, depth + 1);
        break;
    case SL_CONF_MAP: {
        struct sl_conf_map *m = field;
        for (size_t i = 0; i < m->len; i++) {
            void *elem = (char *)m->items + i * opt->sub->size;
            SL_FREE(*(char **)field_at(elem, opt->sub->name_offset));
            free_section(opt->sub, elem, depth + 1);
        }
        SL_FREE(m->items);
        m->len = 0;
        break;
    }
    default:
        break;
    }
}

static void free_section(const struct sl_conf_section *sec, void *obj, int depth)
{
    if (!sec || depth > TABLE_DEPTH_MAX)
        return;
    for (const struct sl_conf_opt *o = sec->opts; o && o->name; o++)
        free_field(o, field_at(obj, o->offset), depth);
    if (sec->variant_key) {
        struct sl_conf_variant *v = field_at(obj, sec->variant_offset);
        if (v->conf && v->section)
            free_section(v->section, v->conf, depth + 1);
        SL_FREE(v->conf);
        v->section = NULL;
    }
}

void sl_conf_free(const struct sl_conf_section *root, void *dst)
{
    if (dst)
        free_section(root, dst, 0);
}

/* ---- table checks ---- */

static size_t field_size(const struct sl_conf_opt *o)
{
    switch (o->type) {
    case SL_CONF_STRING:
        return sizeof(char *);
    case SL_CONF_BOOL:
        return sizeof(bool);
    case SL_CONF_INT:
    case SL_CONF_SIZE:
    case SL_CONF_DURATION:
        return sizeof(int64_t);
    case SL_CONF_ENUM:
        return sizeof(int);
    case SL_CONF_LIST:
        return sizeof(struct sl_conf_list);
    case SL_CONF_HOSTPORT:
        return sizeof(struct sl_conf_hostport);
    case SL_CONF_HOSTPORTS:
        return sizeof(struct sl_conf_hostports);
    case SL_CONF_SECTION:
        return o->sub ? o->sub->size : 0;
    case SL_CONF_MAP:
        return sizeof(struct sl_conf_map);
    }
    return 0;
}

static bool snake_name_ok(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

static void check_section(struct apply *a, const struct sl_conf_section *sec, const char *path,
                          int depth);

static void check_opt(struct apply *a, const struct sl_conf_section *sec,
                      const struct sl_conf_opt *o, const char *path, int depth)
{
    char p[CTX_MAX];
    ctx_join(p, path, o->name);
    if (!o->help || !*o->help)
        opt_error(a, NULL, p, "no help text");
    if (o->type < SL_CONF_STRING || o->type > SL_CONF_MAP) {
        opt_error(a, NULL, p, "unknown type %d", (int)o->type);
        return;
    }
    if (sec->size && o->offset + field_size(o) > sec->size)
        opt_error(a, NULL, p, "offset %zu + field size %zu exceeds the section's size %zu",
                  o->offset, field_size(o), sec->size);
    if ((o->flags & SL_CONF_REQUIRED) && o->def)
        opt_error(a, NULL, p, "required, yet has a default");
    if (bounded(o) && o->min > o->max)
        opt_error(a, NULL, p, "min %" PRId64 " is above max %" PRId64, o->min, o->max);
    if (o->type == SL_CONF_HOSTPORT || o->type == SL_CONF_HOSTPORTS) {
        if (o->port < 0 || o->port > 65535)
            opt_error(a, NULL, p, "default port %d is not 0..65535", o->port);
    }
    if (o->type == SL_CONF_ENUM) {
        if (!o->enums || !o->enums[0].name)
            opt_error(a, NULL, p, "enum without names");
        for (const struct sl_conf_enum *i = o->enums; i && i->name; i++) {
            for (const struct sl_conf_enum *j = o->enums; j != i; j++) {
                if (strcmp(i->name, j->name) == 0)
                    opt_error(a, NULL, p, "enum name '%s' twice", i->name);
            }
        }
    }
    if (o->type == SL_CONF_SECTION || o->type == SL_CONF_MAP) {
        if (!o->sub) {
            opt_error(a, NULL, p, "section without a sub-table");
            return;
        }
        if (o->def || (o->flags & SL_CONF_REQUIRED))
            opt_error(a, NULL, p, "sections take no default and cannot be required");
        if (o->type == SL_CONF_MAP) {
            if (!o->sub->name || !*o->sub->name)
                opt_error(a, NULL, p, "a map's element section needs a name for messages");
            if (o->sub->name_offset + sizeof(char *) > o->sub->size)
                opt_error(a, NULL, p, "element name_offset %zu outside its size %zu",
                          o->sub->name_offset, o->sub->size);
            char q[CTX_MAX];
            fmt(q, sizeof(q), "%s.<name>", p);
            check_section(a, o->sub, q, depth + 1);
        } else {
            check_section(a, o->sub, p, depth + 1);
        }
        return;
    }
    if (!o->def)
        return;
    /* The default goes through the very code a configured value does, bounds included. */
    union {
        char *s;
        bool b;
        int64_t i;
        int e;
        struct sl_conf_list l;
        struct sl_conf_hostport hp;
        struct sl_conf_hostports hps;
    } tmp;
    memset(&tmp, 0, sizeof(tmp));
    apply_default(a, o, &tmp, path);
    free_field(o, &tmp, 0);
}

static void check_section(struct apply *a, const struct sl_conf_section *sec, const char *path,
                          int depth)
{
    const char *where = *path ? path : "(root)";
    if (depth > TABLE_DEPTH_MAX) {
        opt_error(a, NULL, where, "tables nest deeper than %d (a cycle?)", TABLE_DEPTH_MAX);
        return;
    }
    if (!sec->opts) {
        opt_error(a, NULL, where, "no option table");
        return;
    }
    if (sec->size == 0)
        opt_error(a, NULL, where, "section size is 0 (set .size = sizeof the struct)");
    for (const struct sl_conf_opt *o = sec->opts; o->name; o++) {
        if (!snake_name_ok(o->name))
            opt_error(a, NULL, where, "option name '%s' is not lower_snake", o->name);
        for (const struct sl_conf_opt *q = sec->opts; q != o; q++) {
            if (strcmp(q->name, o->name) == 0)
                opt_error(a, NULL, where, "option '%s' twice", o->name);
        }
        if (sec->variant_key && strcmp(o->name, sec->variant_key) == 0)
            opt_error(a, NULL, where, "option '%s' is also the variant key", o->name);
        check_opt(a, sec, o, path, depth);
    }
    if (!sec->variant_key)
        return;
    if (!sec->variants || !sec->variants[0]) {
        opt_error(a, NULL, where, "variant key '%s' without variants", sec->variant_key);
        return;
    }
    if (sec->variant_offset + sizeof(struct sl_conf_variant) > sec->size)
        opt_error(a, NULL, where, "variant_offset %zu outside the section's size %zu",
                  sec->variant_offset, sec->size);
    for (size_t i = 0; sec->variants[i]; i++) {
        const struct sl_conf_section *v = sec->variants[i];
        char p[CTX_MAX];
        fmt(p, sizeof(p), "%s<%s: %s>", path, sec->variant_key, v->name ? v->name : "?");
        if (!v->name || !*v->name) {
            opt_error(a, NULL, p, "variant without a name");
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(sec->variants[j]->name, v->name) == 0)
                opt_error(a, NULL, p, "variant name twice");
        }
        for (const struct sl_conf_opt *o = v->opts; o && o->name; o++) {
            if (find_opt(sec, o->name) || strcmp(o->name, sec->variant_key) == 0)
                opt_error(a, NULL, p, "option '%s' shadows an option of the section", o->name);
        }
        check_section(a, v, p, depth + 1);
    }
}

int sl_conf_table_check(const struct sl_conf_section *root, struct sl_conf_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
    struct apply a = {.errs = errs};
    check_section(&a, root, "", 0);
    if (a.nomem)
        sl_conf_error_add(errs, NULL, "out of memory while checking tables");
    return sl_conf_error_total(errs) ? SL_ECONFIG : 0;
}

/* ---- help and documentation ---- */

/* "size (between 4KiB and 64MiB)", "one of 0, 1, all", "host:port (default port 9092)". */
static void type_text(const struct sl_conf_opt *o, char *buf, size_t size)
{
    char b[96];
    switch (o->type) {
    case SL_CONF_STRING:
        if (bounded(o))
            snprintf(buf, size, "string (%" PRId64 " to %" PRId64 " bytes)", o->min, o->max);
        else
            snprintf(buf, size, "string");
        return;
    case SL_CONF_BOOL:
        snprintf(buf, size, "bool");
        return;
    case SL_CONF_INT:
    case SL_CONF_SIZE:
    case SL_CONF_DURATION: {
        const char *t = o->type == SL_CONF_INT    ? "int"
                        : o->type == SL_CONF_SIZE ? "size"
                                                  : "duration";
        if (bounded(o)) {
            format_bounds(o, b, sizeof(b));
            snprintf(buf, size, "%s (%s)", t, b);
        } else {
            snprintf(buf, size, "%s", t);
        }
        return;
    }
    case SL_CONF_LIST:
    case SL_CONF_HOSTPORTS: {
        const char *t = o->type == SL_CONF_LIST ? "list of strings" : "list of host:port";
        int n = snprintf(buf, size, "%s", t);
        if (n >= 0 && (size_t)n < size && bounded(o))
            n += snprintf(buf + n, size - (size_t)n, " (%" PRId64 " to %" PRId64 " items)", o->min,
                          o->max);
        if (n >= 0 && (size_t)n < size && o->type == SL_CONF_HOSTPORTS && o->port)
            snprintf(buf + n, size - (size_t)n, " (default port %d)", o->port);
        return;
    }
    case SL_CONF_HOSTPORT:
        if (o->port)
            snprintf(buf, size, "host:port (default port %d)", o->port);
        else
            snprintf(buf, size, "host:port");
        return;
    default:
        expect_text(o, buf, size);
        return;
    }
}

static void help_section(const struct sl_conf_section *sec, const char *prefix, const char *note,
                         FILE *fp, int depth)
{
    if (depth > TABLE_DEPTH_MAX)
        return;
    char path[CTX_MAX], type[512];
    if (sec->variant_key && sec->variants) {
        char list[400];
        variant_list(sec, list, sizeof(list));
        fprintf(fp,
                "  %s%s: one of %s [required]\n      Chooses the kind; each has its own "
                "options, listed with (%s: ...).\n",
                prefix, sec->variant_key, list, sec->variant_key);
    }
    for (const struct sl_conf_opt *o = sec->opts; o && o->name; o++) {
        fmt(path, sizeof(path), "%s%s", prefix, o->name);
        if (o->type == SL_CONF_SECTION && o->sub) {
            char p[CTX_MAX];
            fmt(p, sizeof(p), "%s.", path);
            help_section(o->sub, p, note, fp, depth + 1);
            continue;
        }
        type_text(o, type, sizeof(type));
        fprintf(fp, "  %s%s%s%s: %s", path, note ? " (" : "", note ? note : "", note ? ")" : "",
                type);
        if (o->def)
            fprintf(fp, " [default: %s]", o->def);
        else if (o->flags & SL_CONF_REQUIRED)
            fprintf(fp, " [required]");
        fprintf(fp, "\n      %s\n", o->help ? o->help : "");
        if (o->type == SL_CONF_MAP && o->sub) {
            char p[CTX_MAX];
            fmt(p, sizeof(p), "%s.<name>.", path);
            help_section(o->sub, p, note, fp, depth + 1);
        }
    }
    for (size_t i = 0; sec->variant_key && sec->variants && sec->variants[i]; i++) {
        char n[CTX_MAX];
        fmt(n, sizeof(n), "%s: %s", sec->variant_key, sec->variants[i]->name);
        help_section(sec->variants[i], prefix, n, fp, depth + 1);
    }
}

void sl_conf_help(const struct sl_conf_section *root, FILE *fp)
{
    help_section(root, "", NULL, fp, 0);
}

/* Writes s with Markdown table cell specials escaped. */
static void md_cell(const char *s, FILE *fp)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", fp);
        else if (*s == '\n')
            fputc(' ', fp);
        else
            fputc(*s, fp);
    }
}

static void md_section(const struct sl_conf_section *sec, const char *path, const char *note,
                       int level, FILE *fp, int depth)
{
    if (depth > TABLE_DEPTH_MAX)
        return;
    char type[512];
    fprintf(fp, "%.*s ", SL_MAX(1, SL_MIN(level, 6)), "######");
    if (!*path)
        fprintf(fp, "%s", sec->name && *sec->name ? sec->name : "Configuration");
    else
        fprintf(fp, "`%s`", path);
    if (note)
        fprintf(fp, " with `%s`", note);
    fputs("\n\n", fp);
    if (sec->help && *sec->help) {
        md_cell(sec->help, fp);
        fputs("\n\n", fp);
    }
    fputs("| Option | Type | Default | Description |\n|---|---|---|---|\n", fp);
    if (sec->variant_key && sec->variants) {
        char list[400];
        variant_list(sec, list, sizeof(list));
        fprintf(fp, "| `%s` | one of ", sec->variant_key);
        md_cell(list, fp);
        fputs(" | required | Chooses the kind; each has its own options, below. |\n", fp);
    }
    for (const struct sl_conf_opt *o = sec->opts; o && o->name; o++) {
        type_text(o, type, sizeof(type));
        fprintf(fp, "| `%s` | ", o->name);
        md_cell(type, fp);
        fputs(" | ", fp);
        if (o->def) {
            fputc('`', fp);
            md_cell(o->def, fp);
            fputc('`', fp);
        } else if (o->flags & SL_CONF_REQUIRED) {
            fputs("required", fp);
        } else if (o->type == SL_CONF_SECTION || o->type == SL_CONF_MAP) {
            fputs("see below", fp);
        }
        fputs(" | ", fp);
        md_cell(o->help, fp);
        fputs(" |\n", fp);
    }
    fputc('\n', fp);
    for (const struct sl_conf_opt *o = sec->opts; o && o->name; o++) {
        if ((o->type != SL_CONF_SECTION && o->type != SL_CONF_MAP) || !o->sub)
            continue;
        char p[CTX_MAX];
        fmt(p, sizeof(p), "%s%s%s%s", path, *path ? "." : "", o->name,
            o->type == SL_CONF_MAP ? ".<name>" : "");
        md_section(o->sub, p, NULL, level + 1, fp, depth + 1);
    }
    for (size_t i = 0; sec->variant_key && sec->variants && sec->variants[i]; i++) {
        char n[CTX_MAX];
        fmt(n, sizeof(n), "%s: %s", sec->variant_key, sec->variants[i]->name);
        md_section(sec->variants[i], path, n, level + 1, fp, depth + 1);
    }
}

void sl_conf_markdown(const struct sl_conf_section *root, int level, FILE *fp)
{
    md_section(root, "", NULL, level, fp, 0);
}
