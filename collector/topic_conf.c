/* The topic option table and the resolution of defaults and per-topic overrides. */
#include "collector/topic_conf.h"

#include "collector/topic_name.h"
#include "common/base.h"

#include <stddef.h>
#include <string.h>

enum topic_kind { KIND_SIZE, KIND_DURATION, KIND_RETENTION_MS, KIND_RETENTION_BYTES, KIND_FSYNC,
                  KIND_BOOL };

/* How each field is read and where its parsed value goes in struct coll_log_conf. */
static const struct {
    enum topic_kind kind;
    size_t conf_off;
} topic_fields[COLL_TOPIC_NFIELDS] = {
    [COLL_TOPIC_SEGMENT_BYTES] = {KIND_SIZE, offsetof(struct coll_log_conf, segment_bytes)},
    [COLL_TOPIC_SEGMENT_AGE] = {KIND_DURATION, offsetof(struct coll_log_conf, segment_age_ms)},
    [COLL_TOPIC_INDEX_INTERVAL] = {KIND_SIZE, offsetof(struct coll_log_conf, index_interval)},
    [COLL_TOPIC_RETENTION] = {KIND_RETENTION_MS, offsetof(struct coll_log_conf, retention_ms)},
    [COLL_TOPIC_RETENTION_BYTES] = {KIND_RETENTION_BYTES,
                                    offsetof(struct coll_log_conf, retention_bytes)},
    [COLL_TOPIC_FSYNC] = {KIND_FSYNC, offsetof(struct coll_log_conf, fsync)},
    [COLL_TOPIC_FSYNC_INTERVAL] = {KIND_DURATION,
                                   offsetof(struct coll_log_conf, fsync_interval_ms)},
    [COLL_TOPIC_MAX_BATCH_BYTES] = {KIND_SIZE, offsetof(struct coll_log_conf, max_batch_bytes)},
    [COLL_TOPIC_VALIDATE_RECORDS] = {KIND_BOOL, offsetof(struct coll_log_conf, validate_records)},
};

static const struct sl_conf_enum fsync_names[] = {
    {"interval", COLL_FSYNC_INTERVAL},
    {"always", COLL_FSYNC_ALWAYS},
    {"never", COLL_FSYNC_NEVER},
    {NULL, 0},
};

#define TOPIC_OPT(field, key, helptext)                                                            \
    {.name = key,                                                                                  \
     .type = SL_CONF_STRING,                                                                       \
     .offset = offsetof(struct coll_topic_conf, text[field]),                                      \
     .min = 1,                                                                                     \
     .max = 64,                                                                                    \
     .help = helptext}

static const struct sl_conf_opt topic_opts[] = {
    TOPIC_OPT(COLL_TOPIC_SEGMENT_BYTES, "segment_bytes",
              "size: roll the active segment before it passes this (1KiB..2GiB-1; default 1GiB)"),
    TOPIC_OPT(COLL_TOPIC_SEGMENT_AGE, "segment_age",
              "duration: roll a segment this long after its first append (default 7d)"),
    TOPIC_OPT(COLL_TOPIC_INDEX_INTERVAL, "index_interval",
              "size: bytes appended between sparse offset index entries (default 4KiB)"),
    TOPIC_OPT(COLL_TOPIC_RETENTION, "retention",
              "duration, or 'forever': delete segments whose newest record is older (default 7d)"),
    TOPIC_OPT(COLL_TOPIC_RETENTION_BYTES, "retention_bytes",
              "size, or 'unlimited': delete oldest segments past this size per partition "
              "(default unlimited)"),
    TOPIC_OPT(COLL_TOPIC_FSYNC, "fsync",
              "interval, always (acknowledge after fdatasync, group commit) or never (page cache "
              "only; a machine crash loses what the kernel had not written) (default interval)"),
    TOPIC_OPT(COLL_TOPIC_FSYNC_INTERVAL, "fsync_interval",
              "duration: how often `fsync: interval` syncs new data (default 1s)"),
    TOPIC_OPT(COLL_TOPIC_MAX_BATCH_BYTES, "max_batch_bytes",
              "size: largest record batch accepted, at most segment_bytes (default 1048588)"),
    TOPIC_OPT(COLL_TOPIC_VALIDATE_RECORDS, "validate_records",
              "bool: decode every record on append as Kafka does; false checks the header and "
              "CRC only (default true)"),
    {.name = NULL},
};

/* Parses every given field into parsed; reports each bad one at its line. */
static void topic_check(void *obj, struct sl_conf_check *chk)
{
    struct coll_topic_conf *t = obj;
    t->given = 0;
    if (t->name) {
        struct sl_err err;
        if (coll_topic_name_check(t->name, strlen(t->name), &err) != 0)
            sl_conf_check_error(chk, NULL, "%s", err.msg);
    }
    for (int f = 0; f < COLL_TOPIC_NFIELDS; f++) {
        const char *s = t->text[f];
        if (!s)
            continue;
        void *dst = (char *)&t->parsed + topic_fields[f].conf_off;
        struct sl_err err;
        int rc = 0;
        int64_t v = 0;
        switch (topic_fields[f].kind) {
        case KIND_SIZE:
            rc = sl_conf_parse_size(s, &v, &err);
            break;
        case KIND_DURATION:
            rc = sl_conf_parse_duration(s, &v, &err);
            break;
        case KIND_RETENTION_MS:
            if (strcmp(s, "forever") == 0)
                v = -1;
            else if ((rc = sl_conf_parse_duration(s, &v, &err)) == 0 && v == 0)
                rc = sl_err_set(&err, SL_EPARSE, "must be a positive duration or 'forever' (got "
                                                 "'%s')",
                                s);
            break;
        case KIND_RETENTION_BYTES:
            if (strcmp(s, "unlimited") == 0)
                v = -1;
            else if ((rc = sl_conf_parse_size(s, &v, &err)) == 0 && v == 0)
                rc = sl_err_set(&err, SL_EPARSE, "must be a positive size or 'unlimited' (got "
                                                 "'%s')",
                                s);
            break;
        case KIND_FSYNC: {
            int e = 0;
            rc = sl_conf_parse_enum(s, fsync_names, &e, &err);
            if (rc == 0)
                *(enum coll_fsync_policy *)dst = (enum coll_fsync_policy)e;
            break;
        }
        case KIND_BOOL: {
            bool b = false;
            rc = sl_conf_parse_bool(s, &b, &err);
            if (rc == 0)
                *(bool *)dst = b;
            break;
        }
        }
        if (rc) {
            sl_conf_check_error(chk, topic_opts[f].name, "'%s' %s", topic_opts[f].name, err.msg);
            continue;
        }
        if (topic_fields[f].kind != KIND_FSYNC && topic_fields[f].kind != KIND_BOOL)
            *(int64_t *)dst = v;
        t->given |= 1u << f;
    }
}

const struct sl_conf_section coll_topic_section = {
    .name = "topic",
    .help = "storage settings of a topic's partitions",
    .opts = topic_opts,
    .size = sizeof(struct coll_topic_conf),
    .name_offset = offsetof(struct coll_topic_conf, name),
    .check = topic_check,
};

void coll_topic_conf_apply(const struct coll_topic_conf *t, struct coll_log_conf *out)
{
    if (!t)
        return;
    for (int f = 0; f < COLL_TOPIC_NFIELDS; f++) {
        if (!(t->given & (1u << f)))
            continue;
        size_t off = topic_fields[f].conf_off;
        size_t len = topic_fields[f].kind == KIND_FSYNC  ? sizeof(enum coll_fsync_policy)
                     : topic_fields[f].kind == KIND_BOOL ? sizeof(bool)
                                                         : sizeof(int64_t);
        memcpy((char *)out + off, (const char *)&t->parsed + off, len);
    }
}

void coll_topic_conf_resolve(const struct coll_topic_conf *defaults,
                             const struct coll_topic_conf *topic, struct coll_log_conf *out)
{
    *out = COLL_LOG_CONF_DEFAULT;
    coll_topic_conf_apply(defaults, out);
    coll_topic_conf_apply(topic, out);
}
