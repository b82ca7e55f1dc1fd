/* Fuzz target: arbitrary bytes as YAML configuration layers, against a table with every
 * option type; the load must never crash or leak, whatever it reports. */
#include "common/conf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct f_sub {
    bool flag;
    char *text;
};

struct f_var_a {
    struct sl_conf_list items;
    int64_t n;
};

struct f_var_b {
    struct sl_conf_hostport addr;
};

struct f_entry {
    char *name;
    struct sl_conf_variant kind;
    char *label;
    int64_t wait;
};

struct f_conf {
    char *s;
    bool b;
    int64_t i;
    int64_t sz;
    int64_t dur;
    int e;
    struct sl_conf_list list;
    struct sl_conf_hostport hp;
    struct sl_conf_hostports hps;
    struct f_sub sub;
    struct sl_conf_map entries;
};

static const struct sl_conf_enum f_enum[] = {{"0", 0}, {"1", 1}, {"all", -1}, {NULL, 0}};

static const struct sl_conf_opt f_sub_opts[] = {
    {.name = "flag",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct f_sub, flag),
     .def = "on",
     .help = "h"},
    {.name = "text",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct f_sub, text),
     .max = 8,
     .min = 0,
     .help = "h"},
    {.name = NULL},
};
static const struct sl_conf_section f_sub = {
    .name = "sub", .opts = f_sub_opts, .size = sizeof(struct f_sub)};

static const struct sl_conf_opt f_var_a_opts[] = {
    {.name = "items",
     .type = SL_CONF_LIST,
     .offset = offsetof(struct f_var_a, items),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 4,
     .help = "h"},
    {.name = "n",
     .type = SL_CONF_INT,
     .offset = offsetof(struct f_var_a, n),
     .def = "-3",
     .min = -10,
     .max = 10,
     .help = "h"},
    {.name = NULL},
};
static const struct sl_conf_section f_var_a = {
    .name = "a", .opts = f_var_a_opts, .size = sizeof(struct f_var_a)};

static const struct sl_conf_opt f_var_b_opts[] = {
    {.name = "addr",
     .type = SL_CONF_HOSTPORT,
     .offset = offsetof(struct f_var_b, addr),
     .def = "[::1]",
     .port = 1,
     .help = "h"},
    {.name = NULL},
};
static const struct sl_conf_section f_var_b = {
    .name = "b", .opts = f_var_b_opts, .size = sizeof(struct f_var_b)};

static const struct sl_conf_section *const f_variants[] = {&f_var_a, &f_var_b, NULL};

static void f_entry_check(void *obj, struct sl_conf_check *chk)
{
    const struct f_entry *e = obj;
    if (e->label && strcmp(e->label, "bad") == 0)
        sl_conf_check_error(chk, "label", "'label' may not be bad");
}

static const struct sl_conf_opt f_entry_opts[] = {
    {.name = "label",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct f_entry, label),
     .help = "h"},
    {.name = "wait",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct f_entry, wait),
     .def = "1h30m",
     .help = "h"},
    {.name = NULL},
};
static const struct sl_conf_section f_entry = {
    .name = "entry",
    .opts = f_entry_opts,
    .size = sizeof(struct f_entry),
    .name_offset = offsetof(struct f_entry, name),
    .variant_key = "type",
    .variants = f_variants,
    .variant_offset = offsetof(struct f_entry, kind),
    .check = f_entry_check,
};

static const struct sl_conf_opt f_opts[] = {
    {.name = "s",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct f_conf, s),
     .def = "x",
     .help = "h"},
    {.name = "b", .type = SL_CONF_BOOL, .offset = offsetof(struct f_conf, b), .help = "h"},
    {.name = "i",
     .type = SL_CONF_INT,
     .offset = offsetof(struct f_conf, i),
     .def = "0",
     .help = "h"},
    {.name = "sz",
     .type = SL_CONF_SIZE,
     .offset = offsetof(struct f_conf, sz),
     .def = "4KiB",
     .min = 1,
     .max = INT64_MAX,
     .help = "h"},
    {.name = "dur",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct f_conf, dur),
     .flags = SL_CONF_REQUIRED,
     .help = "h"},
    {.name = "e",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct f_conf, e),
     .def = "all",
     .enums = f_enum,
     .help = "h"},
    {.name = "list",
     .type = SL_CONF_LIST,
     .offset = offsetof(struct f_conf, list),
     .def = "[a, 'b', \"c\"]",
     .help = "h"},
    {.name = "hp", .type = SL_CONF_HOSTPORT, .offset = offsetof(struct f_conf, hp), .help = "h"},
    {.name = "hps",
     .type = SL_CONF_HOSTPORTS,
     .offset = offsetof(struct f_conf, hps),
     .def = "[h:1, '[::1]:2']",
     .port = 9092,
     .help = "h"},
    {.name = "sub",
     .type = SL_CONF_SECTION,
     .offset = offsetof(struct f_conf, sub),
     .sub = &f_sub,
     .help = "h"},
    {.name = "entries",
     .type = SL_CONF_MAP,
     .offset = offsetof(struct f_conf, entries),
     .sub = &f_entry,
     .help = "h"},
    {.name = NULL},
};
static const struct sl_conf_section f_root = {
    .name = "fuzz", .opts = f_opts, .size = sizeof(struct f_conf)};

/* Inputs may hold up to three layers separated by this line, so merging is fuzzed too. */
static const char layer_sep[] = "\n#--\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_conf_source layers[3];
    size_t n = 0;
    const char *p = (const char *)data;
    size_t left = size;
    while (n < 2) {
        const char *sep = memmem(p, left, layer_sep, sizeof(layer_sep) - 1);
        if (!sep)
            break;
        layers[n++] = (struct sl_conf_source){.name = "layer", .text = p, .len = (size_t)(sep - p)};
        left -= (size_t)(sep - p) + sizeof(layer_sep) - 1;
        p = sep + sizeof(layer_sep) - 1;
    }
    layers[n++] = (struct sl_conf_source){.name = "fuzz.yaml", .text = p, .len = left};

    struct f_conf c;
    memset(&c, 0, sizeof(c));
    struct sl_conf_errors errs;
    int rc = sl_conf_load(&f_root, &c, layers, n, &errs);
    if (rc == 0) {
        /* Touch what the load built so ASan sees any bad pointer. */
        size_t total = c.s ? strlen(c.s) : 0;
        for (size_t i = 0; i < c.list.len; i++)
            total += strlen(c.list.items[i]);
        for (size_t i = 0; i < c.entries.len; i++)
            total += strlen(SL_CONF_MAP_AT(&c.entries, struct f_entry, i)->name);
        (void)total;
    }
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        sl_conf_errors_print(&errs, null);
        fclose(null);
    }
    sl_conf_free(&f_root, &c);
    return 0;
}
