#include "collector/topic_store.h"

#include "collector/topic_name.h"
#include "common/base.h"
#include "common/daemon_util.h"
#include "common/log.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_DIR  ".topic-configs"
#define STORE_WHO  "topics"
#define FILE_MAX   4096 /* a handful of short lines */
#define VALUE_MAX  32

struct stored {
    struct stored *next;
    struct coll_topic_conf conf; /* owned (coll_topic_section); conf.name NULL */
    char *topic;                 /* owned */
};

struct coll_topic_store {
    char *dir; /* owned: data_dir/.topic-configs */
    struct stored *topics;
};

/* Kafka's config name -> the collector's option, and how the number is written for it. */
enum unit { U_MS, U_BYTES };
static const struct {
    const char *kafka;
    const char *ours;
    enum unit unit;
    const char *minus_one; /* what -1 means, or NULL when it is refused */
} map[] = {
    {"retention.ms", "retention", U_MS, "forever"},
    {"retention.bytes", "retention_bytes", U_BYTES, "unlimited"},
    {"segment.bytes", "segment_bytes", U_BYTES, NULL},
    {"segment.ms", "segment_age", U_MS, NULL},
    {"index.interval.bytes", "index_interval", U_BYTES, NULL},
    {"max.message.bytes", "max_batch_bytes", U_BYTES, NULL},
};

static bool bytes_is(struct sl_bytes b, const char *s)
{
    return b.p && b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

static struct stored *find(const struct coll_topic_store *s, const char *topic)
{
    for (struct stored *t = s->topics; t; t = t->next)
        if (strcmp(t->topic, topic) == 0)
            return t;
    return NULL;
}

static void stored_free(struct stored *t)
{
    sl_conf_free(&coll_topic_section, &t->conf);
    sl_free(t->topic);
    sl_free(t);
}

/* Parses YAML text with the topic option table; on failure msg gets the first error. */
static int parse(const char *name, const char *text, size_t len, struct coll_topic_conf *out,
                 struct sl_err *msg)
{
    struct sl_conf_errors errs;
    memset(out, 0, sizeof(*out));
    int rc = sl_conf_load_string(&coll_topic_section, out, name, text, len, &errs);
    if (rc != 0)
        return sl_err_set(msg, rc, "%s", errs.count ? errs.items[0].text : "invalid");
    return 0;
}

static int put(struct coll_topic_store *s, const char *topic, struct coll_topic_conf *conf)
{
    struct stored *t = sl_calloc(1, sizeof(*t));
    if (!t || !(t->topic = sl_strdup(topic))) {
        sl_free(t);
        return -ENOMEM;
    }
    t->conf = *conf;
    t->next = s->topics;
    s->topics = t;
    return 0;
}

int coll_topic_store_open(const char *data_dir, struct coll_topic_store **out, struct sl_err *err)
{
    *out = NULL;
    struct coll_topic_store *s = sl_calloc(1, sizeof(*s));
    size_t dl = strlen(data_dir) + sizeof(STORE_DIR) + 2;
    if (!s || !(s->dir = sl_malloc(dl))) {
        sl_free(s);
        return sl_err_set(err, -ENOMEM, "out of memory");
    }
    snprintf(s->dir, dl, "%s/%s", data_dir, STORE_DIR);
    if (mkdir(s->dir, 0750) < 0 && errno != EEXIST) {
        int e = -errno;
        sl_err_set(err, e, "%s: %s", s->dir, strerror(-e));
        coll_topic_store_free(s);
        return e;
    }
    DIR *d = opendir(s->dir);
    if (!d) {
        int e = -errno;
        sl_err_set(err, e, "%s: %s", s->dir, strerror(-e));
        coll_topic_store_free(s);
        return e;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl <= 5 || strcmp(de->d_name + nl - 5, ".yaml") != 0)
            continue; /* ".", "..", a leftover .tmp of an interrupted write */
        char topic[COLL_TOPIC_NAME_MAX + 1];
        if (nl - 5 > COLL_TOPIC_NAME_MAX)
            continue;
        memcpy(topic, de->d_name, nl - 5);
        topic[nl - 5] = '\0';
        char path[PATH_MAX], text[FILE_MAX];
        snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
        struct sl_err perr = {{0}};
        struct coll_topic_conf conf;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read(fd, text, sizeof(text)) : -1;
        if (fd >= 0)
            close(fd);
        if (coll_topic_name_check(topic, strlen(topic), &perr) != 0 || got < 0 ||
            (size_t)got == sizeof(text) || parse(path, text, (size_t)got, &conf, &perr) != 0) {
            SL_ERR(STORE_WHO, "%s: ignored (%s); topic %s runs on collector.yaml's settings",
                   path, perr.msg[0] ? perr.msg : got < 0 ? strerror(errno) : "too long", topic);
            continue;
        }
        if (put(s, topic, &conf) != 0) {
            sl_conf_free(&coll_topic_section, &conf);
            closedir(d);
            coll_topic_store_free(s);
            return sl_err_set(err, -ENOMEM, "out of memory");
        }
    }
    closedir(d);
    *out = s;
    return 0;
}

const struct coll_topic_conf *coll_topic_store_get(const struct coll_topic_store *s,
                                                   const char *topic)
{
    const struct stored *t = s ? find(s, topic) : NULL;
    return t ? &t->conf : NULL;
}

/* Appends "ours: value\n" for one Kafka config to yaml; SL_ECONFIG in msg when it is not one
 * we take. */
static int translate(const struct coll_topic_cfg *c, struct sl_buf *yaml, struct sl_err *msg)
{
    char name[128];
    snprintf(name, sizeof(name), "%.*s", (int)SL_MIN(c->name.len, 100),
             c->name.p ? (const char *)c->name.p : "");
    if (!c->value.p)
        return 0; /* null: the default */
    char value[VALUE_MAX + 1];
    if (c->value.len > VALUE_MAX)
        return sl_err_set(msg, SL_ECONFIG, "config %s: value too long", name);
    memcpy(value, c->value.p, c->value.len);
    value[c->value.len] = '\0';
    if (bytes_is(c->name, "cleanup.policy")) {
        if (strcmp(value, "delete") == 0)
            return 0;
        return sl_err_set(msg, SL_ECONFIG,
                          "config cleanup.policy=%s: only 'delete' (retention) is supported", value);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(map); i++) {
        if (!bytes_is(c->name, map[i].kafka))
            continue;
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!value[0] || *end || errno)
            return sl_err_set(msg, SL_ECONFIG, "config %s=%s: not an integer", name, value);
        if (v == -1 && map[i].minus_one) {
            sl_buf_printf(yaml, "%s: %s\n", map[i].ours, map[i].minus_one);
            return 0;
        }
        if (v <= 0)
            return sl_err_set(msg, SL_ECONFIG, "config %s=%s: must be positive%s", name, value,
                              map[i].minus_one ? " or -1" : "");
        sl_buf_printf(yaml, "%s: %lld%s\n", map[i].ours, v, map[i].unit == U_MS ? "ms" : "");
        return 0;
    }
    return sl_err_set(msg, SL_ECONFIG,
                      "config %s is not supported by this broker (it takes retention.ms, "
                      "retention.bytes, segment.bytes, segment.ms, index.interval.bytes, "
                      "max.message.bytes, cleanup.policy=delete)",
                      name);
}

int coll_topic_store_set(struct coll_topic_store *s, const char *topic,
                         const struct coll_topic_cfg *cfgs, size_t n, bool validate_only,
                         struct sl_err *msg)
{
    struct sl_buf yaml;
    sl_buf_init(&yaml);
    int rc = 0;
    bool max_given = false;
    long long seg = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = translate(&cfgs[i], &yaml, msg);
        if (bytes_is(cfgs[i].name, "max.message.bytes"))
            max_given = true;
        if (rc == 0 && bytes_is(cfgs[i].name, "segment.bytes") && cfgs[i].value.p) {
            char v[VALUE_MAX + 1]; /* translate checked it: digits, at most VALUE_MAX */
            snprintf(v, sizeof(v), "%.*s", (int)cfgs[i].value.len, cfgs[i].value.p);
            seg = strtoll(v, NULL, 10);
        }
    }
    /* Kafka takes a segment.bytes below max.message.bytes (an oversized batch gets a segment
     * of its own); here a batch must fit a segment, so the batch limit follows it down. */
    if (rc == 0 && !max_given && seg > 0 && seg < COLL_LOG_CONF_DEFAULT.max_batch_bytes)
        sl_buf_printf(&yaml, "max_batch_bytes: %lld\n", seg);
    if (rc == 0 && sl_buf_error(&yaml))
        rc = sl_err_set(msg, -ENOMEM, "out of memory");
    struct coll_topic_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (rc == 0 && yaml.len > 0) {
        char name[COLL_TOPIC_NAME_MAX + 32];
        snprintf(name, sizeof(name), "configs of %s", topic);
        struct sl_err perr = {{0}};
        if (parse(name, (const char *)yaml.data, yaml.len, &conf, &perr) != 0)
            rc = sl_err_set(msg, SL_ECONFIG, "%s", perr.msg);
    }
    if (rc == 0 && yaml.len > 0 && !validate_only) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s.yaml", s->dir, topic);
        struct sl_err werr = {{0}};
        if ((rc = sl_file_replace(path, yaml.data, yaml.len, &werr)) != 0) {
            sl_err_set(msg, rc, "%s", werr.msg);
        } else {
            struct stored *old = find(s, topic);
            if (old) {
                struct stored **pp = &s->topics;
                while (*pp != old)
                    pp = &(*pp)->next;
                *pp = old->next;
                stored_free(old);
            }
            if ((rc = put(s, topic, &conf)) == 0)
                memset(&conf, 0, sizeof(conf)); /* kept */
            else
                sl_err_set(msg, rc, "out of memory");
        }
    }
    sl_conf_free(&coll_topic_section, &conf);
    sl_buf_fini(&yaml);
    return rc;
}

void coll_topic_store_remove(struct coll_topic_store *s, const char *topic)
{
    if (!s)
        return;
    struct stored **pp = &s->topics;
    while (*pp && strcmp((*pp)->topic, topic) != 0)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    struct stored *t = *pp;
    *pp = t->next;
    stored_free(t);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.yaml", s->dir, topic);
    if (unlink(path) < 0 && errno != ENOENT)
        SL_WARN(STORE_WHO, "%s: %s", path, strerror(errno));
}

void coll_topic_store_free(struct coll_topic_store *s)
{
    if (!s)
        return;
    while (s->topics) {
        struct stored *t = s->topics;
        s->topics = t->next;
        stored_free(t);
    }
    sl_free(s->dir);
    sl_free(s);
}
