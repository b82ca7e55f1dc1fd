/* Configuration loading: reads the main file and its drop-ins, turns YAML (libfyaml's event
 * parser) into our own positioned tree, merges the layers, and collects the errors. */
#include "common/conf_priv.h"

#include "common/base.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * From files to a filled struct:
 *
 *   agent.yaml ----read----> text --libfyaml events--> tree (positions, no duplicates,
 *   agent.d/10-a.yaml ------> text ------------------> tree  aliases expanded)
 *   agent.d/20-b.yaml ------> text ------------------> tree
 *                                                        |
 *                  merge in order: mappings key by key, everything else replaces
 *                                                        v
 *                                   merged tree --sl_conf_apply(table)--> caller's struct
 *
 * Every node remembers the file, line and column it came from, so an error in a value set by
 * a drop-in names the drop-in. A file that cannot be read or parsed stops before the apply
 * step (its errors are reported; the other files are still read, to report theirs too).
 *
 * Limits keep hostile input (and the fuzzer) cheap: files of at most CONF_MAX_FILE bytes,
 * nesting of at most CONF_MAX_DEPTH levels, at most CONF_MAX_KEYS keys per mapping (duplicate
 * detection and merging compare keys pairwise), at most CONF_MAX_NODES nodes and CONF_MAX_BYTES
 * bytes of scalar text per file counting alias expansions (no billion laughs), at most
 * CONF_MAX_ANCHORS anchors.
 */

#define CONF_MAX_FILE    (4u << 20)
#define CONF_MAX_DEPTH   64
#define CONF_MAX_NODES   100000
#define CONF_MAX_KEYS    2000
#define CONF_MAX_BYTES   (16u << 20)
#define CONF_MAX_ANCHORS 1000
#define CONF_MAX_DROPINS 1000

/* ---- errors ---- */

void sl_conf_error_vadd(struct sl_conf_errors *errs, const struct sl_conf_pos *pos, const char *fmt,
                        va_list ap)
{
    if (!errs)
        return;
    if (errs->count >= SL_CONF_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    char *t = errs->items[errs->count++].text;
    size_t size = sizeof(errs->items[0].text);
    int n = 0;
    if (pos && pos->file) {
        if (pos->line > 0)
            n = snprintf(t, size, "%s:%d:%d: ", pos->file, pos->line, pos->col);
        else
            n = snprintf(t, size, "%s: ", pos->file);
    }
    if (n < 0)
        n = 0;
    if ((size_t)n >= size)
        return;
    vsnprintf(t + n, size - (size_t)n, fmt, ap);
}

void sl_conf_error_add(struct sl_conf_errors *errs, const struct sl_conf_pos *pos, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_conf_error_vadd(errs, pos, fmt, ap);
    va_end(ap);
}

int sl_conf_error_total(const struct sl_conf_errors *errs)
{
    return errs->count + errs->dropped;
}

void sl_conf_errors_print(const struct sl_conf_errors *errs, FILE *fp)
{
    for (int i = 0; i < errs->count; i++)
        fprintf(fp, "%s\n", errs->items[i].text);
    if (errs->dropped > 0)
        fprintf(fp, "(%d more error%s not shown)\n", errs->dropped, errs->dropped == 1 ? "" : "s");
}

/* ---- tree ---- */

void sl_conf_node_free(struct sl_conf_node *n)
{
    if (!n)
        return;
    struct sl_conf_node *c = n->first;
    while (c) {
        struct sl_conf_node *next = c->next;
        sl_conf_node_free(c);
        c = next;
    }
    sl_free(n->text);
    sl_free(n->key);
    sl_free(n);
}

const struct sl_conf_node *sl_conf_node_get(const struct sl_conf_node *m, const char *key)
{
    if (!m || m->kind != SL_CONF_NODE_MAP)
        return NULL;
    for (const struct sl_conf_node *c = m->first; c; c = c->next) {
        if (strcmp(c->key, key) == 0)
            return c;
    }
    return NULL;
}

const char *sl_conf_node_kind_name(const struct sl_conf_node *n)
{
    if (n->kind == SL_CONF_NODE_MAP)
        return "a mapping";
    if (n->kind == SL_CONF_NODE_SEQ)
        return "a sequence";
    return n->null ? "null" : "a scalar";
}

static void node_append(struct sl_conf_node *parent, struct sl_conf_node *child)
{
    child->next = NULL;
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->count++;
}

struct anchor {
    char *name;                /* owned */
    struct sl_conf_node *node; /* borrowed from the tree or the discard list */
};

/* One file's conversion from libfyaml events to a tree. */
struct builder {
    struct fy_parser *fyp;
    const char *file;
    const char *text; /* borrowed: the source, for single-quoted scalars */
    size_t len;
    struct sl_conf_errors *errs;
    struct anchor *anchors; /* owned */
    size_t nanchors;
    size_t cap_anchors;
    struct sl_conf_node *discard; /* owned: dropped nodes an anchor may still name */
    size_t nodes;
    size_t bytes;
    int rc;                  /* 0, or what stopped the build: SL_ECONFIG (reported), -ENOMEM */
    bool syntax;             /* libfyaml gave up: its diagnostics hold the reason */
    struct sl_conf_pos last; /* of the last event that had a position */
};

__attribute__((format(printf, 3, 4))) static void
build_fail(struct builder *b, const struct sl_conf_pos *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_conf_error_vadd(b->errs, pos, fmt, ap);
    va_end(ap);
    if (!b->rc)
        b->rc = SL_ECONFIG;
}

static void build_nomem(struct builder *b)
{
    b->rc = -ENOMEM;
}

static void discard(struct builder *b, struct sl_conf_node *n)
{
    n->next = b->discard;
    b->discard = n;
}

static struct fy_event *next_event(struct builder *b)
{
    if (b->rc)
        return NULL;
    struct fy_event *ev = fy_parser_parse(b->fyp);
    if (!ev) {
        b->syntax = true;
        b->rc = SL_ECONFIG;
        return NULL;
    }
    const struct fy_mark *m = fy_event_start_mark(ev);
    if (m) {
        b->last.line = m->line + 1;
        b->last.col = m->column + 1;
    }
    return ev;
}

static struct sl_conf_node *node_new(struct builder *b, enum sl_conf_kind kind,
                                     const struct sl_conf_pos *pos, size_t text_len)
{
    if (++b->nodes > CONF_MAX_NODES) {
        build_fail(b, pos, "too many YAML nodes (over %d, counting alias expansions)",
                   CONF_MAX_NODES);
        return NULL;
    }
    b->bytes += text_len;
    if (b->bytes > CONF_MAX_BYTES) {
        build_fail(b, pos, "too much text (over %u bytes, counting alias expansions)",
                   CONF_MAX_BYTES);
        return NULL;
    }
    struct sl_conf_node *n = sl_calloc(1, sizeof(*n));
    if (!n) {
        build_nomem(b);
        return NULL;
    }
    n->kind = kind;
    n->pos = *pos;
    return n;
}

static bool is_null_text(const char *t, size_t len)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL"};
    if (len == 0)
        return true;
    for (size_t i = 0; i < SL_ARRAY_LEN(nulls); i++) {
        if (len == strlen(nulls[i]) && memcmp(t, nulls[i], len) == 0)
            return true;
    }
    return false;
}

/* The value of a single-quoted scalar from its source between the quotes: '' is a quote,
 * line breaks fold (one break -> space, each empty line -> newline), continuation lines lose
 * their surrounding blanks. We do this ourselves because libfyaml 0.7's text for adjacent ''
 * escapes is wrong and leaks (found by fuzz_config). out must hold n bytes; returns the length. */
static size_t unquote_single(const char *raw, size_t n, char *out)
{
    size_t o = 0, i = 0;
    size_t empties = 0;
    for (bool first = true;; first = false) {
        size_t e = i;
        while (e < n && raw[e] != '\n')
            e++;
        bool last = e >= n;
        size_t ls = i, le = e;
        if (!last && le > ls && raw[le - 1] == '\r')
            le--;
        if (!first)
            while (ls < le && (raw[ls] == ' ' || raw[ls] == '\t'))
                ls++;
        if (!last)
            while (le > ls && (raw[le - 1] == ' ' || raw[le - 1] == '\t'))
                le--;
        if (!first) {
            if (ls == le && !last) {
                empties++;
                i = e + 1;
                continue;
            }
            if (empties) {
                memset(out + o, '\n', empties);
                o += empties;
                empties = 0;
            } else {
                out[o++] = ' ';
            }
        }
        for (size_t k = ls; k < le; k++) {
            out[o++] = raw[k];
            if (raw[k] == '\'' && k + 1 < le && raw[k + 1] == '\'')
                k++;
        }
        if (last)
            return o;
        i = e + 1;
    }
}

static struct sl_conf_node *build_scalar(struct builder *b, struct fy_event *ev,
                                         const struct sl_conf_pos *pos)
{
    struct fy_token *tok = ev->scalar.value;
    enum fy_scalar_style style = tok ? fy_token_scalar_style(tok) : FYSS_PLAIN;
    const char *t = NULL, *raw = NULL;
    size_t len = 0, raw_len = 0;
    if (style == FYSS_SINGLE_QUOTED) {
        const struct fy_mark *m0 = fy_token_start_mark(tok), *m1 = fy_token_end_mark(tok);
        if (!m0 || !m1 || m0->input_pos > m1->input_pos || m1->input_pos > b->len) {
            build_fail(b, pos, "cannot locate a single-quoted scalar in the text");
            return NULL;
        }
        raw = b->text + m0->input_pos;
        raw_len = m1->input_pos - m0->input_pos;
        len = raw_len; /* an upper bound until unquoted */
    } else if (tok) {
        t = fy_token_get_text(tok, &len);
    }
    if (!t && !raw) {
        t = "";
        len = 0;
    }
    struct sl_conf_node *n = node_new(b, SL_CONF_NODE_SCALAR, pos, len);
    if (!n)
        return NULL;
    n->text = sl_malloc(len + 1);
    if (!n->text) {
        sl_conf_node_free(n);
        build_nomem(b);
        return NULL;
    }
    if (raw) {
        len = unquote_single(raw, raw_len, n->text);
    } else {
        memcpy(n->text, t, len);
    }
    n->text[len] = '\0';
    n->len = len;
    /* Only a plain, untagged scalar can be null; "null" in quotes is a string. */
    n->null = style == FYSS_PLAIN && !ev->scalar.tag && is_null_text(n->text, len);
    if (memchr(n->text, '\0', len))
        sl_conf_error_add(b->errs, pos, "NUL characters are not allowed in values");
    return n;
}

/* A deep copy of src placed at `depth`, for an alias. */
static struct sl_conf_node *node_copy(struct builder *b, const struct sl_conf_node *src, int depth)
{
    if (depth > CONF_MAX_DEPTH) {
        build_fail(b, &src->pos, "nesting deeper than %d levels (through aliases)", CONF_MAX_DEPTH);
        return NULL;
    }
    struct sl_conf_node *n = node_new(b, src->kind, &src->pos, src->len);
    if (!n)
        return NULL;
    n->null = src->null;
    n->len = src->len;
    n->key_pos = src->key_pos;
    if (src->text) {
        n->text = sl_malloc(src->len + 1);
        if (!n->text)
            goto nomem;
        memcpy(n->text, src->text, src->len + 1);
    }
    if (src->key && !(n->key = sl_strdup(src->key)))
        goto nomem;
    for (const struct sl_conf_node *c = src->first; c; c = c->next) {
        struct sl_conf_node *cc = node_copy(b, c, depth + 1);
        if (!cc) {
            sl_conf_node_free(n);
            return NULL;
        }
        node_append(n, cc);
    }
    return n;
nomem:
    sl_conf_node_free(n);
    build_nomem(b);
    return NULL;
}

static struct sl_conf_node *build_alias(struct builder *b, struct fy_event *ev,
                                        const struct sl_conf_pos *pos, int depth)
{
    size_t len = 0;
    const char *name = ev->alias.anchor ? fy_token_get_text(ev->alias.anchor, &len) : NULL;
    if (!name)
        name = "";
    for (size_t i = b->nanchors; i-- > 0;) {
        const struct anchor *a = &b->anchors[i];
        if (strlen(a->name) == len && memcmp(a->name, name, len) == 0) {
            struct sl_conf_node *n = node_copy(b, a->node, depth);
            if (n) {
                sl_free(n->key);
                n->key = NULL;
                n->pos = *pos;
            }
            return n;
        }
    }
    char q[SL_CONF_QUOTE_MAX];
    build_fail(b, pos, "unknown alias '*%s'", sl_conf_quote(name, len, q, sizeof(q)));
    return NULL;
}

static int anchor_add(struct builder *b, struct fy_token *tok, struct sl_conf_node *n)
{
    size_t len = 0;
    const char *name = fy_token_get_text(tok, &len);
    if (!name)
        return 0;
    if (b->nanchors >= CONF_MAX_ANCHORS) {
        build_fail(b, &n->pos, "too many anchors (over %d)", CONF_MAX_ANCHORS);
        return -1;
    }
    if (b->nanchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 8;
        struct anchor *na = sl_realloc(b->anchors, cap * sizeof(*na));
        if (!na) {
            build_nomem(b);
            return -1;
        }
        b->anchors = na;
        b->cap_anchors = cap;
    }
    char *copy = sl_strndup(name, len);
    if (!copy) {
        build_nomem(b);
        return -1;
    }
    b->anchors[b->nanchors++] = (struct anchor){copy, n};
    return 0;
}

/* Adds key: val to map m, or reports why not and keeps both aside for anchors. */
static void add_pair(struct builder *b, struct sl_conf_node *m, struct sl_conf_node *key,
                     struct sl_conf_node *val)
{
    char q[SL_CONF_QUOTE_MAX];
    if (key->kind != SL_CONF_NODE_SCALAR) {
        sl_conf_error_add(b->errs, &key->pos, "mapping keys must be scalars (got %s)",
                          sl_conf_node_kind_name(key));
        goto drop;
    }
    if (m->count >= CONF_MAX_KEYS) {
        build_fail(b, &key->pos, "too many keys in one mapping (over %d)", CONF_MAX_KEYS);
        goto drop;
    }
    const struct sl_conf_node *dup = sl_conf_node_get(m, key->text);
    if (dup) {
        sl_conf_error_add(b->errs, &key->pos, "duplicate key '%s' (first at line %d)",
                          sl_conf_quote(key->text, key->len, q, sizeof(q)), dup->key_pos.line);
        goto drop;
    }
    /* A copy, not the key's own text: an anchor on the key may still be aliased. */
    val->key = sl_malloc(key->len + 1);
    if (!val->key) {
        build_nomem(b);
        goto drop;
    }
    memcpy(val->key, key->text, key->len + 1);
    val->key_pos = key->pos;
    discard(b, key);
    node_append(m, val);
    return;
drop:
    discard(b, key);
    discard(b, val);
}

static struct sl_conf_node *build(struct builder *b, struct fy_event *ev, int depth);

static struct sl_conf_node *build_collection(struct builder *b, enum sl_conf_kind kind,
                                             enum fy_event_type end, const struct sl_conf_pos *pos,
                                             int depth)
{
    struct sl_conf_node *n = node_new(b, kind, pos, 0);
    if (!n)
        return NULL;
    for (;;) {
        struct fy_event *ev = next_event(b);
        if (!ev)
            goto fail;
        if (ev->type == end) {
            fy_parser_event_free(b->fyp, ev);
            return n;
        }
        struct sl_conf_node *item = build(b, ev, depth + 1);
        if (!item)
            goto fail;
        if (kind == SL_CONF_NODE_SEQ) {
            node_append(n, item);
            continue;
        }
        struct fy_event *vev = next_event(b);
        struct sl_conf_node *val = vev ? build(b, vev, depth + 1) : NULL;
        if (!val) {
            sl_conf_node_free(item);
            goto fail;
        }
        add_pair(b, n, item, val);
    }
fail:
    sl_conf_node_free(n);
    return NULL;
}

/* Converts the node that starts with ev (consumed) and everything inside it. */
static struct sl_conf_node *build(struct builder *b, struct fy_event *ev, int depth)
{
    struct sl_conf_pos pos = b->last;
    struct fy_token *anchor = NULL;
    struct sl_conf_node *n = NULL;
    if (depth > CONF_MAX_DEPTH) {
        build_fail(b, &pos, "nesting deeper than %d levels", CONF_MAX_DEPTH);
        goto out;
    }
    switch (ev->type) {
    case FYET_SCALAR:
        anchor = ev->scalar.anchor;
        if (ev->scalar.value) {
            /* libfyaml marks a quoted scalar's first character; point at the quote. */
            enum fy_scalar_style st = fy_token_scalar_style(ev->scalar.value);
            if (st == FYSS_SINGLE_QUOTED || st == FYSS_DOUBLE_QUOTED)
                pos.col = SL_MAX(pos.col - 1, 1);
        }
        n = build_scalar(b, ev, &pos);
        break;
    case FYET_ALIAS:
        /* libfyaml marks the anchor name; point at the '*' before it. */
        pos.col = SL_MAX(pos.col - 1, 1);
        n = build_alias(b, ev, &pos, depth);
        break;
    case FYET_MAPPING_START:
        anchor = ev->mapping_start.anchor;
        n = build_collection(b, SL_CONF_NODE_MAP, FYET_MAPPING_END, &pos, depth);
        break;
    case FYET_SEQUENCE_START:
        anchor = ev->sequence_start.anchor;
        n = build_collection(b, SL_CONF_NODE_SEQ, FYET_SEQUENCE_END, &pos, depth);
        break;
    default:
        build_fail(b, &pos, "unexpected YAML event %s", fy_event_type_get_text(ev->type));
        break;
    }
    if (n && anchor && anchor_add(b, anchor, n) < 0) {
        sl_conf_node_free(n);
        n = NULL;
    }
out:
    fy_parser_event_free(b->fyp, ev);
    return n;
}

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    /* Errors are collected and reported by us, with our file names; nothing goes to stderr. */
}

/* Copies libfyaml's collected errors into errs with our file name. */
static void report_syntax(struct builder *b, struct fy_diag *diag)
{
    void *it = NULL;
    struct fy_diag_error *de;
    int n = 0;
    while ((de = fy_diag_errors_iterate(diag, &it))) {
        if (de->type < FYET_ERROR || !de->msg)
            continue;
        size_t len = strcspn(de->msg, "\r\n");
        struct sl_conf_pos pos = {b->file, de->line > 0 ? de->line : 0, SL_MAX(de->column, 1)};
        sl_conf_error_add(b->errs, &pos, "invalid YAML: %.*s", (int)len, de->msg);
        n++;
    }
    if (n == 0)
        sl_conf_error_add(b->errs, &b->last, "invalid YAML");
}

/* Decodes the UTF-8 sequence at p into *cp and returns its length (1..4), or 0 when it is
 * not valid: overlong forms, surrogates and code points past U+10FFFF are refused. */
static size_t utf8_seq(const unsigned char *p, size_t left, uint32_t *cp)
{
    unsigned char c = p[0];
    *cp = c;
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/*
 * Configuration is UTF-8 text without control characters, and without tabs: YAML forbids tabs
 * for indentation anyway, and refusing them up front keeps us clear of libfyaml 0.7's error
 * paths for misplaced tabs, which crash (a double free found by fuzz_config; upstream issue
 * pantoniou/libfyaml#57). Checking UTF-8 also avoids its scanner hanging on invalid bytes in a
 * directive (also found by fuzz_config). In a double-quoted string, write a tab as \t.
 */
static int check_text(const char *file, const char *text, size_t len, struct sl_conf_errors *errs)
{
    const unsigned char *p = (const unsigned char *)text;
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        struct sl_conf_pos pos = {file, line, (int)SL_MIN(i - line_start + 1, (size_t)INT_MAX)};
        if (n == 0) {
            sl_conf_error_add(errs, &pos, "invalid UTF-8 (byte 0x%02x)", p[i]);
            return SL_ECONFIG;
        }
        if (cp == '\t') {
            sl_conf_error_add(errs, &pos,
                              "tab character; indent and separate with spaces "
                              "(write \\t in double quotes for a tab)");
            return SL_ECONFIG;
        }
        if ((cp < 0x20 && cp != '\n' && cp != '\r') || (cp >= 0x7f && cp <= 0x9f)) {
            sl_conf_error_add(errs, &pos, "control character U+%04X", (unsigned)cp);
            return SL_ECONFIG;
        }
        if (cp == '\n') {
            line = line < INT_MAX ? line + 1 : line;
            line_start = i + 1;
        }
        i += n;
    }
    return 0;
}

int sl_conf_tree_parse(const char *file, const char *text, size_t len, struct sl_conf_node **out,
                       struct sl_conf_errors *errs)
{
    struct builder b = {.file = file, .text = len ? text : "", .len = len, .errs = errs};
    b.last = (struct sl_conf_pos){file, 1, 1};
    struct sl_conf_node *root = NULL;
    struct fy_diag *diag = NULL;
    *out = NULL;
    if (check_text(file, text, len, errs))
        return SL_ECONFIG;

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_discard;
    dcfg.colorize = false;
    diag = fy_diag_create(&dcfg);
    if (!diag) {
        b.rc = -ENOMEM;
        goto out;
    }
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {
        .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_AUTO | FYPCF_DISABLE_MMAP_OPT,
        .diag = diag,
    };
    b.fyp = fy_parser_create(&pcfg);
    if (!b.fyp || fy_parser_set_string(b.fyp, len ? text : "", len) != 0) {
        b.rc = -ENOMEM;
        goto out;
    }
    int docs = 0;
    for (;;) {
        struct fy_event *ev = next_event(&b);
        if (!ev)
            break;
        enum fy_event_type type = ev->type;
        if (type == FYET_STREAM_START || type == FYET_DOCUMENT_END) {
            fy_parser_event_free(b.fyp, ev);
            continue;
        }
        if (type == FYET_STREAM_END) {
            fy_parser_event_free(b.fyp, ev);
            break;
        }
        if (type == FYET_DOCUMENT_START) {
            fy_parser_event_free(b.fyp, ev);
            if (++docs > 1) {
                build_fail(&b, &b.last, "only one YAML document per file is allowed");
                break;
            }
            continue;
        }
        struct sl_conf_node *n = build(&b, ev, 1);
        if (!n)
            break;
        if (root) {
            /* libfyaml gives one root per document; a second one would be its bug. */
            discard(&b, n);
            build_fail(&b, &n->pos, "unexpected second root node");
            break;
        }
        root = n;
    }
    if (b.syntax && b.rc == SL_ECONFIG)
        report_syntax(&b, diag);
out:
    for (size_t i = 0; i < b.nanchors; i++)
        sl_free(b.anchors[i].name);
    sl_free(b.anchors);
    while (b.discard) {
        struct sl_conf_node *next = b.discard->next;
        sl_conf_node_free(b.discard);
        b.discard = next;
    }
    if (b.fyp)
        fy_parser_destroy(b.fyp);
    if (diag)
        fy_diag_destroy(diag);
    if (b.rc) {
        sl_conf_node_free(root);
        return b.rc;
    }
    *out = root;
    return 0;
}

/* ---- merging ---- */

/* Merges mapping s into mapping d key by key; takes ownership of s. */
static void merge_map(struct sl_conf_node *d, struct sl_conf_node *s)
{
    struct sl_conf_node *c = s->first;
    s->first = s->last = NULL;
    s->count = 0;
    while (c) {
        struct sl_conf_node *next = c->next;
        c->next = NULL;
        struct sl_conf_node **link = &d->first;
        while (*link && strcmp((*link)->key, c->key) != 0)
            link = &(*link)->next;
        struct sl_conf_node *old = *link;
        if (!old) {
            node_append(d, c);
        } else if (old->kind == SL_CONF_NODE_MAP && c->kind == SL_CONF_NODE_MAP) {
            merge_map(old, c);
        } else {
            /* Replace in place, so the option keeps its place in document order. */
            c->next = old->next;
            *link = c;
            if (d->last == old)
                d->last = c;
            old->next = NULL;
            sl_conf_node_free(old);
        }
        c = next;
    }
    sl_conf_node_free(s);
}

/* ---- files and drop-ins ---- */

struct loader {
    struct sl_conf_errors *errs;
    char **names; /* owned: drop-in paths, which nodes and positions borrow */
    size_t nnames;
    size_t cap_names;
    struct sl_conf_node *tree; /* owned: the merge so far */
    bool failed;               /* a file could not be read or parsed: do not apply */
};

static char *loader_keep(struct loader *l, char *name)
{
    if (l->nnames == l->cap_names) {
        size_t cap = l->cap_names ? l->cap_names * 2 : 8;
        char **nn = sl_realloc(l->names, cap * sizeof(*nn));
        if (!nn) {
            sl_free(name);
            return NULL;
        }
        l->names = nn;
        l->cap_names = cap;
    }
    l->names[l->nnames++] = name;
    return name;
}

static int load_text(struct loader *l, const char *name, const char *text, size_t len)
{
    struct sl_conf_node *root = NULL;
    int rc = sl_conf_tree_parse(name, text, len, &root, l->errs);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        l->failed = true;
        return 0;
    }
    if (!root || (root->kind == SL_CONF_NODE_SCALAR && root->null)) {
        /* An empty file (or one with only comments) sets nothing. */
        sl_conf_node_free(root);
        return 0;
    }
    if (root->kind != SL_CONF_NODE_MAP) {
        sl_conf_error_add(l->errs, &root->pos,
                          "the top level must be a mapping of options (got %s)",
                          sl_conf_node_kind_name(root));
        sl_conf_node_free(root);
        l->failed = true;
        return 0;
    }
    if (!l->tree)
        l->tree = root;
    else
        merge_map(l->tree, root);
    return 0;
}

/* Reads a whole regular file. Returns 0, -ENOMEM, or SL_ECONFIG after reporting why. */
static int read_file(struct loader *l, const char *path, char **out, size_t *len)
{
    struct sl_conf_pos pos = {path, 0, 0};
    char *data = NULL;
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO named like a drop-in must not hang the load. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        sl_conf_error_add(l->errs, &pos, "cannot open: %s", strerror(errno));
        return SL_ECONFIG;
    }
    int rc = SL_ECONFIG;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sl_conf_error_add(l->errs, &pos, "cannot read: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        sl_conf_error_add(l->errs, &pos, "cannot read: not a regular file");
        goto out;
    }
    if (st.st_size > (off_t)CONF_MAX_FILE) {
        sl_conf_error_add(l->errs, &pos, "cannot read: larger than %u bytes", CONF_MAX_FILE);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    data = sl_malloc(size + 1);
    if (!data) {
        rc = -ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sl_conf_error_add(l->errs, &pos, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break; /* shrank while we read: take what is there */
        got += (size_t)n;
    }
    data[got] = '\0';
    *out = data;
    *len = got;
    data = NULL;
    rc = 0;
out:
    sl_free(data);
    close(fd);
    return rc;
}

static int load_file(struct loader *l, const char *path)
{
    char *text;
    size_t len;
    int rc = read_file(l, path, &text, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        l->failed = true;
        return 0;
    }
    rc = load_text(l, path, text, len);
    sl_free(text);
    return rc;
}

/* "/etc/sluice/agent.yaml" -> "/etc/sluice/agent.d"; other names get ".d" appended. */
static char *dropin_dir(const char *path)
{
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".yaml") == 0)
        n -= 5;
    char *d = sl_malloc(n + 3);
    if (!d)
        return NULL;
    memcpy(d, path, n);
    memcpy(d + n, ".d", 3);
    return d;
}

static bool is_dropin_name(const char *name)
{
    size_t n = strlen(name);
    /* Hidden files are editors' and package managers' temporaries. */
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".yaml") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dropins(struct loader *l, const char *path)
{
    char *dir = dropin_dir(path);
    if (!dir || !(dir = loader_keep(l, dir)))
        return -ENOMEM;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        struct sl_conf_pos pos = {dir, 0, 0};
        sl_conf_error_add(l->errs, &pos, "cannot open drop-in folder: %s", strerror(errno));
        l->failed = true;
        return 0;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (!is_dropin_name(e->d_name))
            continue;
        if (n == CONF_MAX_DROPINS) {
            struct sl_conf_pos pos = {dir, 0, 0};
            sl_conf_error_add(l->errs, &pos, "more than %d drop-in files", CONF_MAX_DROPINS);
            l->failed = true;
            break;
        }
        if ((n & (n - 1)) == 0) {
            /* Grow at powers of two. */
            char **nn = sl_realloc(names, (n ? n * 2 : 1) * sizeof(*nn));
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            names = nn;
        }
        size_t dl = strlen(dir), fl = strlen(e->d_name);
        char *full = sl_malloc(dl + fl + 2);
        if (!full) {
            rc = -ENOMEM;
            break;
        }
        memcpy(full, dir, dl);
        full[dl] = '/';
        memcpy(full + dl + 1, e->d_name, fl + 1);
        names[n++] = full;
    }
    closedir(d);
    if (rc == 0 && n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    size_t i = 0;
    for (; i < n && rc == 0; i++) {
        /* The loader keeps the name: the merged tree's positions point at it. */
        char *kept = loader_keep(l, names[i]);
        rc = kept ? load_file(l, kept) : -ENOMEM;
    }
    for (; i < n; i++)
        sl_free(names[i]);
    sl_free(names);
    return rc;
}

int sl_conf_load(const struct sl_conf_section *root, void *dst, const struct sl_conf_source *srcs,
                 size_t n, struct sl_conf_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
    struct loader l = {.errs = errs};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct sl_conf_source *s = &srcs[i];
        if (s->text) {
            rc = load_text(&l, s->name, s->text, s->len);
            continue;
        }
        bool failed = l.failed;
        l.failed = false;
        rc = load_file(&l, s->name);
        /* Without its main file a layer's drop-ins would make little sense. */
        if (rc == 0 && !l.failed && s->dropins)
            rc = load_dropins(&l, s->name);
        l.failed |= failed;
    }
    if (rc == 0 && !l.failed) {
        /* Top-level "missing option" errors name the last layer: the operator's own file. */
        struct sl_conf_pos where = {n > 0 ? srcs[n - 1].name : NULL, 0, 0};
        rc = sl_conf_apply(root, dst, l.tree, &where, errs);
    }
    if (rc == -ENOMEM)
        sl_conf_error_add(errs, NULL, "out of memory while loading the configuration");
    else if (sl_conf_error_total(errs) > 0)
        rc = SL_ECONFIG;
    if (rc)
        sl_conf_free(root, dst);
    sl_conf_node_free(l.tree);
    for (size_t i = 0; i < l.nnames; i++)
        sl_free(l.names[i]);
    sl_free(l.names);
    return rc;
}

int sl_conf_load_file(const struct sl_conf_section *root, void *dst, const char *path,
                      struct sl_conf_errors *errs)
{
    struct sl_conf_source src = {.name = path, .dropins = true};
    return sl_conf_load(root, dst, &src, 1, errs);
}

int sl_conf_load_string(const struct sl_conf_section *root, void *dst, const char *name,
                        const char *text, size_t len, struct sl_conf_errors *errs)
{
    /* An empty text still counts as text (not as a file to read). */
    struct sl_conf_source src = {.name = name, .text = text ? text : "", .len = text ? len : 0};
    return sl_conf_load(root, dst, &src, 1, errs);
}
