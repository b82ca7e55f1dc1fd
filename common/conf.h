/* Table-driven YAML configuration: option tables parse, validate, document and free typed
 * fields of caller structs, from a main file merged with the sorted *.yaml drop-ins of its .d
 * folder. */
#ifndef SL_COMMON_CONF_H
#define SL_COMMON_CONF_H

#include "common/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Loading `/etc/sluice/agent.yaml`:
 *
 *   agent.yaml  <-  agent.d/10-a.yaml  <-  agent.d/20-b.yaml     (sorted by name, byte order)
 *
 * Each later file merges over what came before: mappings merge key by key, recursively;
 * anything else (scalar, sequence, or a change of kind) replaces. A map of named sections
 * (`sources: {nginx: {...}}`) is a mapping, so a drop-in adds a source or overrides some of
 * its options by name. A plain `~`, `null` or empty value means "not set": the option takes
 * its default again, and a map entry set to null is removed (`sources: {nginx: ~}`).
 * Anchors and aliases work; merge keys (`<<`) do not. Keys must be unique within a mapping.
 * Files are UTF-8 without tabs or control characters (YAML forbids tab indentation anyway).
 * Map entry names are 1 to 64 of [A-Za-z0-9_.-]: they end up in log prefixes.
 *
 * Value syntax (the parsers below, also used for the defaults written in the tables):
 *   bool      true/false, yes/no, on/off (any case)
 *   int       decimal, optional sign: -5, 42
 *   size      bytes, or a number with a binary unit: B, K/KiB, M/MiB, G/GiB, T/TiB
 *             (`64MiB`, `4K`, `1.5GiB` when the result is a whole number of bytes).
 *             KB/MB/GB/TB are refused as ambiguous. Stored in bytes (int64_t).
 *   duration  number+unit groups, largest first: ms, s, m, h, d, w (`500ms`, `1h30m`,
 *             `1.5s`); a bare `0` is allowed. Stored in milliseconds (int64_t).
 *   host:port `host:port`, `1.2.3.4:port`, `[::1]:port`; the port may be left out when the
 *             option has a default port. Port 0..65535.
 *   enum      one of the names in the option's list, exactly.
 */

/* The types an option can have, and the C type of the field its offset points at. */
enum sl_conf_type {
    SL_CONF_STRING = 1, /* char *, owned; min/max bound the length in bytes */
    SL_CONF_BOOL,       /* bool */
    SL_CONF_INT,        /* int64_t; min/max bound the value */
    SL_CONF_SIZE,       /* int64_t bytes; min/max bound the value */
    SL_CONF_DURATION,   /* int64_t milliseconds; min/max bound the value */
    SL_CONF_ENUM,       /* int: the value of the matching entry of `enums` */
    SL_CONF_LIST,       /* struct sl_conf_list; a YAML sequence of scalars; min/max bound len */
    SL_CONF_HOSTPORT,   /* struct sl_conf_hostport; `port` is the default port (0: required) */
    SL_CONF_HOSTPORTS,  /* struct sl_conf_hostports; a sequence of host:port; min/max bound len */
    SL_CONF_SECTION,    /* the struct of `sub`, embedded at offset */
    SL_CONF_MAP,        /* struct sl_conf_map: a mapping of name -> section `sub` */
};

/* Option flags. */
#define SL_CONF_REQUIRED 0x1u /* must be set (has no default); missing is an error */

/* One allowed name of an enum option; a list ends with {NULL, 0}. */
struct sl_conf_enum {
    const char *name;
    int value;
};

struct sl_conf_section;

/*
 * One option of a section. A table is an array of these ending with an entry whose name is
 * NULL. Bounds: min and max both 0 means unbounded (sizes and durations are never negative);
 * otherwise the value (or string length, or list length) must lie in [min, max].
 */
struct sl_conf_opt {
    const char *name; /* the YAML key: lower_snake */
    enum sl_conf_type type;
    size_t offset;    /* offsetof the field in the section's struct */
    const char *def;  /* default, in the YAML syntax of the type ("64MiB", "[a, b]");
                         NULL: none (the field stays zero/NULL/empty) */
    const char *help; /* one line, no trailing period needed */
    unsigned flags;   /* SL_CONF_REQUIRED */
    int64_t min, max;
    const struct sl_conf_enum *enums;  /* SL_CONF_ENUM */
    int port;                          /* SL_CONF_HOSTPORT(S): default port, 0 for none */
    const struct sl_conf_section *sub; /* SL_CONF_SECTION, SL_CONF_MAP */
};

/* Where a section with variants stores the one its `variant_key` chose. */
struct sl_conf_variant {
    const struct sl_conf_section *section; /* borrowed: the chosen entry of `variants` */
    void *conf;                            /* owned: section->size bytes holding its options */
};

struct sl_conf_check;

/*
 * A section: a named table of options over one C struct.
 *
 * Variants serve plugins: a source section with variant_key "type" and variants
 * {&in_tail_section, &in_journald_section, NULL} reads `type: tail`, allocates
 * in_tail_section.size bytes, and accepts in_tail's options beside its own. Unknown keys are
 * checked against both tables.
 */
struct sl_conf_section {
    const char *name; /* messages and docs: a map's element section names one entry ("source"),
                         a variant is chosen by its name ("tail") */
    const char *help; /* one line, for the docs */
    const struct sl_conf_opt *opts; /* ends with {.name = NULL} */
    size_t size;        /* sizeof the struct; needed for map elements, variants, table checks */
    size_t name_offset; /* map elements: offset of the element's `char *name` (owned) */
    const char *variant_key;                       /* NULL: no variants */
    const struct sl_conf_section *const *variants; /* NULL-terminated */
    size_t variant_offset;                         /* of the struct sl_conf_variant */
    /* Optional cross-field validation, run after the section's own options parsed cleanly;
     * reports with sl_conf_check_error(). May fill derived fields of obj. */
    void (*check)(void *obj, struct sl_conf_check *chk);
};

/* Destination types. All memory is owned by the struct and released by sl_conf_free(). */
struct sl_conf_list {
    char **items; /* owned, each owned */
    size_t len;
};

struct sl_conf_hostport {
    char *host; /* owned; without brackets for IPv6 */
    uint16_t port;
};

struct sl_conf_hostports {
    struct sl_conf_hostport *items; /* owned */
    size_t len;
};

struct sl_conf_map {
    void *items; /* owned: len elements of sub->size bytes, in document order */
    size_t len;
};

/* The i-th element of a map whose elements are `type`. */
#define SL_CONF_MAP_AT(map, type, i) ((type *)(map)->items + (i))

/* Errors found by a load, each a full line "file:line:col: message" (line and col 1-based;
 * errors with no position are "file: message" or just the message). */
#define SL_CONF_MAX_ERRORS 20

struct sl_conf_error {
    char text[512];
};

struct sl_conf_errors {
    struct sl_conf_error items[SL_CONF_MAX_ERRORS];
    int count;   /* stored in items */
    int dropped; /* found beyond SL_CONF_MAX_ERRORS */
};

/*
 * Loads `path` and then the `*.yaml` files of its drop-in folder (path with ".yaml" replaced by
 * ".d", or path + ".d"; a missing folder is fine), merges them, and fills dst through root:
 * every option gets its value or its default. dst must be zeroed (or released by
 * sl_conf_free()). Errors are reported with the paths as given here.
 * Returns 0; SL_ECONFIG when errs holds errors (dst is then released); -ENOMEM when memory
 * ran out (also noted in errs; dst released). errs is reset first and must not be NULL.
 * On success dst owns memory that sl_conf_free(root, dst) releases.
 */
int sl_conf_load_file(const struct sl_conf_section *root, void *dst, const char *path,
                      struct sl_conf_errors *errs);

/* Like sl_conf_load_file() for len bytes of YAML in memory (no drop-ins); `name` stands for
 * the file name in errors. text need not be NUL-terminated. */
int sl_conf_load_string(const struct sl_conf_section *root, void *dst, const char *name,
                        const char *text, size_t len, struct sl_conf_errors *errs);

/* One layer for sl_conf_load(): YAML in memory (text != NULL), or the file `name` followed by
 * its drop-ins when dropins is set. */
struct sl_conf_source {
    const char *name; /* the file to read, or the display name of text */
    const char *text; /* NULL: read the file */
    size_t len;
    bool dropins;
};

/* The general form of the two above: merges the sources in order (e.g. embedded defaults,
 * then /etc/sluice/agent.yaml with its drop-ins) and fills dst. Same contract. */
int sl_conf_load(const struct sl_conf_section *root, void *dst, const struct sl_conf_source *srcs,
                 size_t n, struct sl_conf_errors *errs);

/* Releases everything the table says dst owns (strings, lists, map elements, variants) and
 * zeroes those fields; accepts a half-filled or already released dst. NULL dst is a no-op. */
void sl_conf_free(const struct sl_conf_section *root, void *dst);

/* Writes every stored error, one per line, then "(N more errors not shown)" when some were
 * dropped. */
void sl_conf_errors_print(const struct sl_conf_errors *errs, FILE *fp);

/* In a section's check hook: reports an error positioned at option `opt` of this section
 * when it was set (else at the section), prefixed with the section's path like every other
 * error. opt may be NULL. */
void sl_conf_check_error(struct sl_conf_check *chk, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Checks a table tree for programmer mistakes, for a unit test over every table: names are
 * unique lower_snake, help is present, every default parses and lies within the bounds,
 * enums/sub/size/offsets are consistent, REQUIRED options have no default. Returns 0 or
 * SL_ECONFIG with the problems in errs (reset first).
 */
int sl_conf_table_check(const struct sl_conf_section *root, struct sl_conf_errors *errs);

/* Prints every option (dotted path, type with bounds, default, help) for --help. */
void sl_conf_help(const struct sl_conf_section *root, FILE *fp);

/* Emits Markdown reference documentation: one heading and one table per section and variant,
 * headings starting at `level` (1 = "#"). */
void sl_conf_markdown(const struct sl_conf_section *root, int level, FILE *fp);

/*
 * Value parsers, shared by the loader, the defaults and command-line flags. Each takes a
 * NUL-terminated string, returns 0 with the value stored, or SL_EPARSE with err set to a
 * phrase that reads after the option's name, ending in "(got '<text>')":
 * "must be a size such as 512, 4KiB, 64MiB or 1GiB (got '12XB')". Nothing is allocated.
 */
int sl_conf_parse_bool(const char *s, bool *out, struct sl_err *err);
/* Any int64_t; bounds are the caller's. */
int sl_conf_parse_int(const char *s, int64_t *out, struct sl_err *err);
/* Bytes, 0..INT64_MAX. */
int sl_conf_parse_size(const char *s, int64_t *out, struct sl_err *err);
/* Milliseconds, 0..INT64_MAX. */
int sl_conf_parse_duration(const char *s, int64_t *out_ms, struct sl_err *err);
/* The value of the entry named s in the {NULL}-terminated list e. */
int sl_conf_parse_enum(const char *s, const struct sl_conf_enum *e, int *out, struct sl_err *err);

/* Longest host sl_conf_parse_hostport() accepts (DNS names are at most 253 bytes). */
#define SL_CONF_HOST_MAX 253

/* Splits "host:port", "[v6]:port" or "host" (then default_port, which must be 1..65535; 0
 * means a port is required) into host (NUL-terminated, brackets removed; host_size must be at
 * least SL_CONF_HOST_MAX + 1) and port. */
int sl_conf_parse_hostport(const char *s, int default_port, char *host, size_t host_size,
                           uint16_t *port, struct sl_err *err);

/* Format values so the parsers read them back exactly. Sizes use the largest unit that divides
 * the value: 67108864 -> "64MiB", 1000 -> "1000B". Durations are unit groups, largest first:
 * 90000 -> "1m30s", 5400000 -> "1h30m", 0 -> "0". A buf of 32 bytes always suffices. */
void sl_conf_format_size(int64_t bytes, char *buf, size_t size);
void sl_conf_format_duration(int64_t ms, char *buf, size_t size);

#endif
