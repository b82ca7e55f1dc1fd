/* DescribeConfigs (key 32), v0-3: a topic's effective storage settings under Kafka's names. */
#include "collector/server_priv.h"

#include "collector/storage.h"
#include "collector/topic_conf.h"
#include "collector/topic_name.h"
#include "collector/topic_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/*
 * Request:
 *   resources ARRAY of
 *     resource_type int8 (2 topic, 4 broker), resource_name STRING,
 *     configuration_keys NULLABLE ARRAY of STRING   (null: every config)
 *   include_synonyms BOOLEAN (v1+), include_documentation BOOLEAN (v3+)
 *
 * Response:
 *   throttle_time_ms int32
 *   results ARRAY of
 *     error_code int16, error_message NULLABLE_STRING, resource_type int8, resource_name STRING,
 *     configs ARRAY of
 *       name STRING, value NULLABLE_STRING, read_only BOOLEAN,
 *       is_default BOOLEAN (v0 only), config_source int8 (v1+), is_sensitive BOOLEAN,
 *       synonyms ARRAY of [name STRING, value NULLABLE_STRING, source int8] (v1+),
 *       config_type int8 (v3+), documentation NULLABLE_STRING (v3+)
 *
 * Mapping of the collector's topic settings (collector.yaml) to Kafka's names:
 *   retention -> retention.ms (forever: -1)      retention_bytes -> retention.bytes
 *   segment_bytes -> segment.bytes               segment_age -> segment.ms
 *   index_interval -> index.interval.bytes       max_batch_bytes -> max.message.bytes
 *   fsync always   -> flush.messages=1, flush.ms=0
 *   fsync interval -> flush.messages=MAX, flush.ms=fsync_interval
 *   fsync never    -> flush.messages=MAX, flush.ms=MAX     (MAX: Kafka's default, Long.MAX_VALUE)
 *   cleanup.policy=delete (read only: this collector never compacts)
 *
 * Source: a setting the topic's CreateTopics gave it is TOPIC_CONFIG; else a value equal to the
 * built-in default is DEFAULT_CONFIG (is_default); any other came from collector.yaml
 * (topic_defaults or topics.<name>: the server does not see which), a static file read at start
 * or reload, so it is STATIC_BROKER_CONFIG. The broker resource has no configs to describe: an
 * empty list.
 */

#define DC_MAX_RESOURCES 1000
#define DC_MAX_KEYS      1000

#define RESOURCE_TOPIC  2
#define RESOURCE_BROKER 4

#define SOURCE_TOPIC         1
#define SOURCE_STATIC_BROKER 4
#define SOURCE_DEFAULT       5

#define TYPE_STRING 2
#define TYPE_INT    3
#define TYPE_LONG   5

#define FLUSH_NEVER INT64_MAX

/* One described config: its Kafka name, value, and whether it is the built-in default. */
struct dc_entry {
    const char *name;
    char value[32];
    bool is_default, read_only;
    bool per_topic; /* set for this topic by CreateTopics: TOPIC_CONFIG */
    int8_t type;
    const char *doc;
};

/* The configs of a topic running with c; created (may be NULL) holds the settings its
 * CreateTopics gave it, whose fields are reported as TOPIC_CONFIG. */
static size_t dc_entries(const struct coll_log_conf *c, const struct coll_topic_conf *created,
                         struct dc_entry *e)
{
    unsigned given = created ? created->given : 0;
    const struct coll_log_conf d = COLL_LOG_CONF_DEFAULT;
    int64_t flush_msgs = c->fsync == COLL_FSYNC_ALWAYS ? 1 : FLUSH_NEVER;
    int64_t flush_ms = c->fsync == COLL_FSYNC_ALWAYS     ? 0
                       : c->fsync == COLL_FSYNC_INTERVAL ? c->fsync_interval_ms
                                                         : FLUSH_NEVER;
    bool fsync_default = c->fsync == d.fsync && (c->fsync != COLL_FSYNC_INTERVAL ||
                                                 c->fsync_interval_ms == d.fsync_interval_ms);
    const struct {
        const char *name;
        int64_t v;
        bool is_default;
        unsigned fields; /* the enum coll_topic_field bits it comes from */
        int8_t type;
        const char *doc;
    } t[] = {
        {"retention.ms", c->retention_ms, c->retention_ms == d.retention_ms,
         1u << COLL_TOPIC_RETENTION, TYPE_LONG,
         "collector.yaml `retention`: delete segments whose newest record is older (-1: never)"},
        {"retention.bytes", c->retention_bytes, c->retention_bytes == d.retention_bytes,
         1u << COLL_TOPIC_RETENTION_BYTES, TYPE_LONG,
         "collector.yaml `retention_bytes`: per-partition size limit (-1: none)"},
        {"segment.bytes", c->segment_bytes, c->segment_bytes == d.segment_bytes,
         1u << COLL_TOPIC_SEGMENT_BYTES, TYPE_INT,
         "collector.yaml `segment_bytes`: roll the active segment before it passes this"},
        {"segment.ms", c->segment_age_ms, c->segment_age_ms == d.segment_age_ms,
         1u << COLL_TOPIC_SEGMENT_AGE, TYPE_LONG,
         "collector.yaml `segment_age`: roll a segment this long after its first append"},
        {"index.interval.bytes", c->index_interval, c->index_interval == d.index_interval,
         1u << COLL_TOPIC_INDEX_INTERVAL, TYPE_INT,
         "collector.yaml `index_interval`: bytes between sparse index entries"},
        {"max.message.bytes", c->max_batch_bytes, c->max_batch_bytes == d.max_batch_bytes,
         1u << COLL_TOPIC_MAX_BATCH_BYTES, TYPE_INT,
         "collector.yaml `max_batch_bytes`: largest record batch accepted"},
        {"flush.messages", flush_msgs, fsync_default, 1u << COLL_TOPIC_FSYNC, TYPE_LONG,
         "collector.yaml `fsync`: always is 1, interval and never are unbounded"},
        {"flush.ms", flush_ms, fsync_default,
         (1u << COLL_TOPIC_FSYNC) | (1u << COLL_TOPIC_FSYNC_INTERVAL), TYPE_LONG,
         "collector.yaml `fsync`/`fsync_interval`: always is 0, never is unbounded"},
    };
    size_t n = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(t); i++, n++) {
        bool per_topic = (given & t[i].fields) != 0;
        e[n] = (struct dc_entry){.name = t[i].name,
                                 .is_default = t[i].is_default && !per_topic,
                                 .per_topic = per_topic,
                                 .type = t[i].type,
                                 .doc = t[i].doc};
        snprintf(e[n].value, sizeof(e[n].value), "%" PRId64, t[i].v);
    }
    e[n] = (struct dc_entry){.name = "cleanup.policy",
                             .is_default = true,
                             .read_only = true,
                             .type = TYPE_STRING,
                             .doc = "only delete: the collector never compacts"};
    snprintf(e[n].value, sizeof(e[n].value), "delete");
    return n + 1;
}

/* True when name is among the count keys at keys_at in the frame (count < 0: all wanted). */
static bool dc_wanted(const struct sl_reader *r, size_t keys_at, int32_t count, const char *name)
{
    if (count < 0)
        return true;
    struct sl_reader k;
    sl_reader_init(&k, r->p + keys_at, r->len - keys_at);
    for (int32_t i = 0; i < count; i++) {
        struct sl_bytes s = sl_reader_string(&k);
        if (s.p && s.len == strlen(name) && memcmp(s.p, name, s.len) == 0)
            return true;
    }
    return false;
}

static void dc_put_config(struct sl_buf *b, int16_t version, const struct dc_entry *e,
                          bool synonyms, bool docs)
{
    int8_t source = e->per_topic    ? SOURCE_TOPIC
                    : e->is_default ? SOURCE_DEFAULT
                                    : SOURCE_STATIC_BROKER;
    sl_buf_put_string(b, SL_BYTES_STR(e->name));
    coll_put_cstr(b, e->value);
    sl_buf_put_i8(b, e->read_only);
    if (version == 0)
        sl_buf_put_i8(b, e->is_default);
    else
        sl_buf_put_i8(b, source);
    sl_buf_put_i8(b, 0); /* is_sensitive */
    if (version >= 1) {
        /* Kafka lists the value's own source first; the collector has one per config. */
        sl_buf_put_i32(b, synonyms ? 1 : 0);
        if (synonyms) {
            sl_buf_put_string(b, SL_BYTES_STR(e->name));
            coll_put_cstr(b, e->value);
            sl_buf_put_i8(b, source);
        }
    }
    if (version >= 3) {
        sl_buf_put_i8(b, e->type);
        coll_put_cstr(b, docs ? e->doc : NULL);
    }
}

int coll_api_describe_configs(struct coll_req *req)
{
    struct sl_reader *r = &req->r;
    int32_t nr = sl_reader_array(r, DC_MAX_RESOURCES, 7);
    if (nr < 0)
        return sl_reader_fail(r, SL_EPARSE, "null resources");
    size_t res_at = r->pos;
    for (int32_t i = 0; i < nr && !r->err; i++) {
        sl_reader_i8(r);
        sl_reader_string(r);
        int32_t nk = sl_reader_array(r, DC_MAX_KEYS, 2);
        for (int32_t k = 0; k < nk && !r->err; k++)
            sl_reader_string(r);
    }
    bool synonyms = req->version >= 1 && sl_reader_i8(r) != 0;
    bool docs = req->version >= 3 && sl_reader_i8(r) != 0;
    if (r->err)
        return r->err;

    struct sl_buf *b = &req->resp->buf;
    sl_buf_put_i32(b, 0);
    sl_buf_put_i32(b, nr);
    struct sl_reader rr;
    sl_reader_init(&rr, r->p + res_at, r->len - res_at);
    for (int32_t i = 0; i < nr; i++) {
        int8_t type = sl_reader_i8(&rr);
        struct sl_bytes raw = sl_reader_string(&rr);
        int32_t nk = sl_reader_array(&rr, DC_MAX_KEYS, 2);
        size_t keys_at = rr.pos;
        for (int32_t k = 0; k < nk; k++)
            sl_reader_string(&rr);

        char name[COLL_TOPIC_NAME_MAX + 1];
        char msg[COLL_TOPIC_NAME_MAX + 96];
        int16_t e = KAFKA_E_NONE;
        msg[0] = 0;
        struct coll_plog *pl = NULL;
        if (type == RESOURCE_TOPIC) {
            if (!coll_str_copy(name, sizeof(name), raw) ||
                coll_topic_name_check(name, raw.len, NULL) != 0) {
                e = KAFKA_E_INVALID_TOPIC;
                snprintf(msg, sizeof(msg), "invalid topic name");
            } else if ((pl = coll_storage_get(req->srv->st, name, 0)) == NULL) {
                /* Partition 0 carries the topic's settings: every partition has the same. */
                e = KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
                snprintf(msg, sizeof(msg), "topic '%s' does not exist or partition 0 is offline",
                         name);
            }
        } else if (type != RESOURCE_BROKER) {
            e = KAFKA_E_INVALID_REQUEST;
            snprintf(msg, sizeof(msg), "resource type %d: only topics (2) and the broker (4)",
                     type);
        }
        sl_buf_put_i16(b, e);
        coll_put_cstr(b, e == KAFKA_E_NONE ? NULL : msg);
        sl_buf_put_i8(b, type);
        sl_buf_put_string(b, raw.p ? raw : SL_BYTES_STR(""));
        size_t count_at = sl_buf_hole(b, 4);
        int32_t n = 0;
        if (pl) {
            struct dc_entry ent[16];
            /* What CreateTopics set is the topic's own config (TOPIC_CONFIG). */
            size_t ne =
                dc_entries(&pl->conf, coll_topic_store_get(req->srv->topic_store, name), ent);
            for (size_t j = 0; j < ne; j++) {
                if (!dc_wanted(&rr, keys_at, nk, ent[j].name))
                    continue;
                dc_put_config(b, req->version, &ent[j], synonyms, docs);
                n++;
            }
        }
        sl_buf_patch_i32(b, count_at, n);
    }
    return COLL_API_DONE;
}
