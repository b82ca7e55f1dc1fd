/* The parts of the plugin interface that are code: acknowledgement spans and the option table
 * every source shares. */
#include "plugins/plugin.h"

#include "common/base.h"
#include "common/json.h"
#include "common/json_read.h"
#include "common/mem.h"
#include "plugins/in_journald.h"
#include "plugins/in_journald_rec.h"

#include <stddef.h>
#include <string.h>

void plugin_ack_owner_init(struct plugin_ack_owner *o, uint64_t acked,
                           void (*on_ack)(struct plugin_ack_owner *o))
{
    memset(o, 0, sizeof(*o));
    o->acked = acked;
    o->on_ack = on_ack;
}

void plugin_ack_owner_fini(struct plugin_ack_owner *o)
{
    struct plugin_ack_span *s = o->head;
    while (s) {
        struct plugin_ack_span *next = s->next;
        s->owner = NULL;
        s->next = NULL;
        if (!s->in_batch)
            sl_free(s);
        s = next;
    }
    o->head = o->tail = NULL;
}

void plugin_ack_add(struct plugin_ack_owner *o, uint64_t batch, uint64_t end,
                    struct plugin_ack_span **spare, struct plugin_ack_span **batch_spans)
{
    SL_ASSERT(batch != 0);
    struct plugin_ack_span *t = o->tail;
    if (t && t->batch == batch && !t->done) {
        t->end = end;
        t->records++;
        return;
    }
    struct plugin_ack_span *s = *spare;
    SL_ASSERT(s != NULL);
    *spare = NULL;
    memset(s, 0, sizeof(*s));
    s->owner = o;
    s->batch = batch;
    s->end = end;
    s->records = 1;
    s->in_batch = true;
    s->batch_next = *batch_spans;
    *batch_spans = s;
    if (t)
        t->next = s;
    else
        o->head = s;
    o->tail = s;
}

/* Folds the done spans at the head of o's chain into acked; frees those no batch lists. */
static void ack_fold(struct plugin_ack_owner *o)
{
    bool moved = false;
    while (o->head && o->head->done) {
        struct plugin_ack_span *s = o->head;
        o->head = s->next;
        if (!o->head)
            o->tail = NULL;
        o->acked = s->end;
        o->records_acked += s->records;
        moved = true;
        s->owner = NULL;
        s->next = NULL;
        if (!s->in_batch)
            sl_free(s);
    }
    if (moved && o->on_ack)
        o->on_ack(o);
}

void plugin_ack_done(struct plugin_ack_span *s)
{
    s->in_batch = false;
    s->done = true;
    if (s->owner)
        ack_fold(s->owner); /* frees s when it is folded */
    else
        sl_free(s);
}

void plugin_ack_abandon(struct plugin_ack_span *s)
{
    s->in_batch = false;
    s->batch = 0;
    if (!s->owner)
        sl_free(s);
}

/* ---- the options every source has ---------------------------------------------------------- */

static const struct sl_conf_enum source_formats[] = {
    {"json", PLUGIN_FORMAT_JSON}, {"raw", PLUGIN_FORMAT_RAW}, {NULL, 0}};

static const struct sl_conf_enum source_keys[] = {{"host", PLUGIN_KEY_HOST},
                                                  {"path", PLUGIN_KEY_PATH},
                                                  {"const", PLUGIN_KEY_CONST},
                                                  {"none", PLUGIN_KEY_NONE},
                                                  {"field", PLUGIN_KEY_FIELD},
                                                  {NULL, 0}};

/* A constant key needs its value; "name=value" fields need their '='. */
static void source_check(void *obj, struct sl_conf_check *chk)
{
    struct plugin_source_conf *s = obj;
    if (s->key == PLUGIN_KEY_CONST && !s->key_value)
        sl_conf_check_error(chk, "key", "'key' const needs 'key_value'");
    if (s->key != PLUGIN_KEY_CONST && s->key_value)
        sl_conf_check_error(chk, "key_value", "'key_value' is only used with 'key: const'");
    if (s->key == PLUGIN_KEY_FIELD && !s->key_field)
        sl_conf_check_error(chk, "key", "'key' field needs 'key_field'");
    if (s->key != PLUGIN_KEY_FIELD && s->key_field)
        sl_conf_check_error(chk, "key_field", "'key_field' is only used with 'key: field'");
    bool journald = s->type.section && s->type.section->name &&
                    strcmp(s->type.section->name, "journald") == 0;
    static const char *const reserved[] = {"time", "host", "source", "message", "truncated"};
    for (size_t i = 0; i < s->fields.len; i++) {
        const char *f = s->fields.items[i];
        const char *eq = strchr(f, '=');
        if (!eq && journald) {
            /* A bare NAME selects a journal field, as journal_fields does. */
            if (strcmp(f, "*") != 0 && (!in_journald_field_name_ok(f, strlen(f)) ||
                                        in_journald_rec_core_field(f, strlen(f))))
                sl_conf_check_error(chk, "fields",
                                    "'fields' entry '%s' is neither name=value nor a journal "
                                    "field name a record does not already carry",
                                    f);
            continue;
        }
        if (!eq || eq == f) {
            sl_conf_check_error(chk, "fields", "'fields' entries must be name=value (got '%s')", f);
            continue;
        }
        for (size_t r = 0; r < SL_ARRAY_LEN(reserved); r++)
            if ((size_t)(eq - f) == strlen(reserved[r]) && !strncmp(f, reserved[r], eq - f))
                sl_conf_check_error(chk, "fields", "'fields' may not set '%s': the agent does",
                                    reserved[r]);
    }
}

static const struct sl_conf_opt source_opts[] = {
    {.name = "topic",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct plugin_source_conf, topic),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 249,
     .help = "topic the records go to"},
    {.name = "key",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct plugin_source_conf, key),
     .def = "host",
     .enums = source_keys,
     .help = "record key: host name, file path, a constant (key_value), a field of the record "
             "(key_field) or none (sticky)"},
    {.name = "key_value",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct plugin_source_conf, key_value),
     .min = 1,
     .max = 1024,
     .help = "the constant key, with key: const"},
    {.name = "key_field",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct plugin_source_conf, key_field),
     .min = 1,
     .max = 255,
     .help = "with key: field, the key's field: a top-level member of a line that is a JSON "
             "object (tail; strings decoded, numbers and booleans as written) or a journal "
             "field (journald); a record without it gets a null key (sticky partition)"},
    {.name = "format",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct plugin_source_conf, format),
     .def = "json",
     .enums = source_formats,
     .help = "record value: a JSON object (time, host, source, message) or the raw line"},
    {.name = "fields",
     .type = SL_CONF_LIST,
     .offset = offsetof(struct plugin_source_conf, fields),
     .def = "[]",
     .max = 64,
     .help = "extra name=value string fields added to every JSON record; for journald, a "
             "bare NAME also selects that journal field, as journal_fields does"},
    {.name = NULL},
};

const struct sl_conf_section plugin_source_section = {
    .name = "source",
    .help = "a source of records, its type chosen by `type`",
    .opts = source_opts,
    .size = sizeof(struct plugin_source_conf),
    .name_offset = offsetof(struct plugin_source_conf, name),
    .variant_key = "type",
    .variants = plugin_input_sections,
    .variant_offset = offsetof(struct plugin_source_conf, type),
    .check = source_check,
};

struct sl_bytes plugin_key_from_json(const uint8_t *p, size_t n, const char *field,
                                     struct sl_buf *scratch)
{
    enum sl_json_type type;
    struct sl_json_val v;
    /* Cheap refusal first: most lines of a plain-text log are not objects at all. */
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == n || p[i] != '{' || sl_json_check(p, n, &type, NULL) != 0)
        return SL_BYTES_NULL;
    sl_json_get(p, n, field, &v);
    switch (v.type) {
    case SL_JSON_STRING:
        sl_buf_reset(scratch);
        if (sl_json_unescape(&v, scratch) != 0)
            return SL_BYTES_NULL;
        return (struct sl_bytes){scratch->data ? scratch->data : (const uint8_t *)"",
                                 scratch->len};
    case SL_JSON_NUMBER:
    case SL_JSON_BOOL:
        return (struct sl_bytes){v.p, v.len};
    default:
        return SL_BYTES_NULL;
    }
}

static void put_member(struct sl_buf *b, const char *name, size_t name_len, const char *value)
{
    sl_buf_append_str(b, ",\"");
    sl_json_escape(b, (const uint8_t *)name, name_len);
    sl_buf_append_str(b, "\":\"");
    sl_json_escape(b, (const uint8_t *)value, strlen(value));
    sl_buf_append_str(b, "\"");
}

int plugin_fixed_members(struct sl_buf *b, const char *hostname, const char *source,
                         const struct sl_conf_list *fields)
{
    put_member(b, "host", 4, hostname);
    if (source)
        put_member(b, "source", 6, source);
    for (size_t i = 0; i < fields->len; i++) {
        const char *f = fields->items[i];
        const char *eq = strchr(f, '=');
        if (eq)
            put_member(b, f, (size_t)(eq - f), eq + 1);
    }
    return sl_buf_error(b);
}
