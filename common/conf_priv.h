/* Internals shared by conf.c (YAML tree, merging, errors), conf_opt.c (tables) and
 * conf_value.c (value parsers); nothing outside common/conf*.c includes this. */
#ifndef SL_COMMON_CONF_PRIV_H
#define SL_COMMON_CONF_PRIV_H

#include "common/conf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* A position in a config file; file is NULL for defaults written in a table, line 0 when the
 * error concerns a whole file. */
struct sl_conf_pos {
    const char *file; /* borrowed: lives as long as the load */
    int line;         /* 1-based */
    int col;          /* 1-based */
};

enum sl_conf_kind {
    SL_CONF_NODE_SCALAR,
    SL_CONF_NODE_MAP,
    SL_CONF_NODE_SEQ,
};

/* The parsed, merged document: our own tree, so merging and positions are under our control
 * and every allocation goes through sl_malloc (and its failure countdown). */
struct sl_conf_node {
    enum sl_conf_kind kind;
    bool null;                  /* a plain empty/~/null scalar: "not set" */
    char *text;                 /* owned; scalars only, NUL-terminated */
    size_t len;                 /* of text */
    char *key;                  /* owned; the key when this node is a mapping's value */
    struct sl_conf_pos pos;     /* of the value */
    struct sl_conf_pos key_pos; /* of the key, when key is set */
    struct sl_conf_node *first; /* owned children: values of a mapping, items of a sequence */
    struct sl_conf_node *last;  /* borrowed */
    struct sl_conf_node *next;  /* owned by the parent's list */
    size_t count;               /* children */
};

/* Frees a node, its children and its strings; NULL-safe. */
void sl_conf_node_free(struct sl_conf_node *n);

/* The child of mapping m with key `key`, or NULL (also when m is NULL or not a mapping). */
const struct sl_conf_node *sl_conf_node_get(const struct sl_conf_node *m, const char *key);

/* "a scalar", "a mapping", "a sequence" or "null", for "(got ...)". */
const char *sl_conf_node_kind_name(const struct sl_conf_node *n);

/*
 * Parses one YAML text into a tree. *out is NULL for an empty document. Returns 0 (errors such
 * as duplicate keys may still have been added to errs, and the tree is then still usable),
 * SL_ECONFIG when the text could not be parsed (syntax error, reported; *out NULL), or -ENOMEM.
 * file is the display name and must outlive the tree.
 */
int sl_conf_tree_parse(const char *file, const char *text, size_t len, struct sl_conf_node **out,
                       struct sl_conf_errors *errs);

/* Appends "file:line:col: msg" to errs (dropping beyond SL_CONF_MAX_ERRORS). pos may be NULL. */
void sl_conf_error_add(struct sl_conf_errors *errs, const struct sl_conf_pos *pos, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
void sl_conf_error_vadd(struct sl_conf_errors *errs, const struct sl_conf_pos *pos, const char *fmt,
                        va_list ap) __attribute__((format(printf, 3, 0)));

/* Errors found so far, stored or dropped. */
int sl_conf_error_total(const struct sl_conf_errors *errs);

/* Fills dst through the table from the merged tree (NULL: nothing set), applying defaults.
 * `where` positions errors about missing options at the top level. Returns 0 (errors, if
 * any, are in errs) or -ENOMEM. */
int sl_conf_apply(const struct sl_conf_section *root, void *dst, const struct sl_conf_node *tree,
                  const struct sl_conf_pos *where, struct sl_conf_errors *errs);

/* Quotes untrusted text for a message: at most about 60 bytes, non-printable bytes as \xNN,
 * "..." when cut. Returns buf. */
const char *sl_conf_quote(const char *s, size_t len, char *buf, size_t size);
#define SL_CONF_QUOTE_MAX 256

/* Optimal-string-alignment edit distance, capped: returns at most cap + 1. */
size_t sl_conf_edit_distance(const char *a, const char *b, size_t cap);

/* True when `got` is close enough to `name` to suggest it ("did you mean"). */
bool sl_conf_is_close(const char *got, const char *name, size_t *dist);

#endif
