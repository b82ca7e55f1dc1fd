/* The coordinator inside the server: its timer, the committed offsets file, group metrics and
 * offset expiry. */
#include "collector/server_priv.h"

#include "collector/group_offsets.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* The coordinator's timer never sleeps longer, so offset expiry runs about this often. */
#define GROUP_TICK_MAX_S      1.0
#define GROUP_EXPIRY_EVERY_MS 60000

int64_t coll_server_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- metrics --------------------------------------------------------------------------- */

static double gauge_members(void *arg)
{
    struct coll_group_gauges *gg = arg;
    struct coll_group *g = coll_groups_find(&gg->srv->groups, SL_BYTES_STR(gg->group));
    return g ? (double)g->nmembers : 0;
}

static double gauge_generation(void *arg)
{
    struct coll_group_gauges *gg = arg;
    struct coll_group *g = coll_groups_find(&gg->srv->groups, SL_BYTES_STR(gg->group));
    return g ? (double)g->generation : 0;
}

static double gauge_committed(void *arg)
{
    struct coll_group_gauges *gg = arg;
    struct coll_goff_entry e;
    if (!coll_goff_get(gg->srv->goff, gg->group, gg->topic, gg->partition, &e))
        return NAN;
    return (double)e.offset;
}

/* Records between the committed offset and the log end (never negative: a commit past the end
 * is the consumer's business). */
static double gauge_lag(void *arg)
{
    struct coll_group_gauges *gg = arg;
    struct coll_goff_entry e;
    struct coll_plog *pl = coll_storage_get(gg->srv->st, gg->topic, gg->partition);
    if (!pl || !coll_goff_get(gg->srv->goff, gg->group, gg->topic, gg->partition, &e))
        return NAN;
    int64_t from = e.offset < pl->log_start ? pl->log_start : e.offset;
    return from >= pl->next_offset ? 0 : (double)(pl->next_offset - from);
}

static void gauges_free(struct coll_server *srv, struct coll_group_gauges *gg)
{
    sl_metrics_remove(srv->metrics, gg->a);
    sl_metrics_remove(srv->metrics, gg->b);
    sl_free(gg->group);
    sl_free(gg->topic);
    sl_free(gg);
}

static void gauges_add(struct coll_server *srv, const char *group, const char *topic,
                       int32_t partition)
{
    for (struct coll_group_gauges *gg = srv->group_gauges; gg; gg = gg->next)
        if (gg->partition == partition && strcmp(gg->group, group) == 0 &&
            (topic ? gg->topic && strcmp(gg->topic, topic) == 0 : !gg->topic))
            return;
    struct coll_group_gauges *gg = sl_calloc(1, sizeof(*gg));
    if (!gg || !(gg->group = sl_strdup(group)) || (topic && !(gg->topic = sl_strdup(topic)))) {
        if (gg)
            sl_free(gg->group);
        sl_free(gg);
        return;
    }
    gg->srv = srv;
    gg->partition = partition;
    char pbuf[16];
    snprintf(pbuf, sizeof(pbuf), "%d", partition);
    if (!topic) {
        struct sl_metric_label l[] = {{"group", group}};
        sl_metrics_add_gauge_fn(srv->metrics, "sluice_group_members",
                                "members of the consumer group", l, 1, gauge_members, gg, &gg->a,
                                NULL);
        sl_metrics_add_gauge_fn(srv->metrics, "sluice_group_generation",
                                "the group's current generation", l, 1, gauge_generation, gg,
                                &gg->b, NULL);
    } else {
        struct sl_metric_label l[] = {{"group", group}, {"topic", topic}, {"partition", pbuf}};
        sl_metrics_add_gauge_fn(srv->metrics, "sluice_group_committed_offset",
                                "the group's committed offset of the partition", l, 3,
                                gauge_committed, gg, &gg->a, NULL);
        sl_metrics_add_gauge_fn(srv->metrics, "sluice_group_lag",
                                "records between the committed offset and the log end", l, 3,
                                gauge_lag, gg, &gg->b, NULL);
    }
    gg->next = srv->group_gauges;
    srv->group_gauges = gg;
}

static void track_entry(const struct coll_goff_entry *e, void *arg)
{
    gauges_add(arg, e->group, e->topic, e->partition);
}

void coll_server_track_group(struct coll_server *srv, const char *group)
{
    if (!srv->metrics)
        return;
    gauges_add(srv, group, NULL, -1);
    coll_goff_foreach(srv->goff, group, track_entry, srv);
}

void coll_server_track_offset(struct coll_server *srv, const char *group, const char *topic,
                              int32_t partition)
{
    if (!srv->metrics)
        return;
    gauges_add(srv, group, NULL, -1);
    gauges_add(srv, group, topic, partition);
}

void coll_server_untrack_groups(struct coll_server *srv, const char *group, const char *topic)
{
    for (struct coll_group_gauges **pp = &srv->group_gauges; *pp;) {
        struct coll_group_gauges *gg = *pp;
        bool match = topic ? gg->topic && strcmp(gg->topic, topic) == 0
                           : group && strcmp(gg->group, group) == 0;
        if (match) {
            *pp = gg->next;
            gauges_free(srv, gg);
        } else {
            pp = &gg->next;
        }
    }
}

/* ---- offset expiry --------------------------------------------------------------------- */

struct newest_ctx {
    int64_t newest;
};

static void newest_commit(const struct coll_goff_entry *e, void *arg)
{
    struct newest_ctx *c = arg;
    if (e->commit_ts_ms > c->newest)
        c->newest = e->commit_ts_ms;
}

/* Forgets groups without members whose newest commit is older than offsets_retention (Kafka
 * 2.1+: retention counts once the group is empty). */
static void expire_offsets(struct coll_server *srv)
{
    int64_t now = coll_server_wall_ms();
    for (struct coll_group *g = srv->groups.groups, *next; g; g = next) {
        next = g->next;
        if (g->nmembers || g->pending || g->state != COLL_GROUP_EMPTY)
            continue;
        /* Kafka 2.1+: retention counts from when the group emptied (or from this start, for
         * groups loaded from disk), and from its last commit. */
        int64_t empty_for = srv->groups.now_ms(srv->groups.clock_arg) - g->empty_since_ms;
        if (empty_for < srv->groups.conf.offsets_retention_ms)
            continue;
        struct newest_ctx c = {INT64_MIN};
        coll_goff_foreach(srv->goff, g->name, newest_commit, &c);
        bool has = c.newest != INT64_MIN;
        if (has && now - c.newest < srv->groups.conf.offsets_retention_ms)
            continue;
        struct sl_err err = {{0}};
        if (has && coll_goff_delete_group(srv->goff, g->name, &err) != 0) {
            SL_WARN("group", "expiring the offsets of '%s': %s", g->name, err.msg);
            continue;
        }
        if (has && coll_goff_flush(srv->goff, false, &err) != 0)
            SL_WARN("group", "expiring the offsets of '%s': %s", g->name, err.msg);
        if (has)
            SL_NOTICE("group",
                      "'%s': committed offsets expired (no members, last commit over "
                      "offsets_retention ago)",
                      g->name);
        coll_server_untrack_groups(srv, g->name, NULL);
        coll_groups_delete(&srv->groups, SL_BYTES_STR(g->name));
    }
}

/* ---- the timer ------------------------------------------------------------------------- */

static void group_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct coll_server *srv = sl_container_of(w, struct coll_server, group_timer);
    int64_t next = coll_groups_tick(&srv->groups);
    int64_t now = coll_server_wall_ms();
    if (now - srv->groups_expired_ms >= GROUP_EXPIRY_EVERY_MS) {
        srv->groups_expired_ms = now;
        expire_offsets(srv);
    }
    double in =
        next < 0 ? GROUP_TICK_MAX_S : SL_MIN((double)next / 1000.0 + 0.001, GROUP_TICK_MAX_S);
    w->repeat = in;
    ev_timer_again(loop, w);
}

/* A group in the offsets file exists (Empty) from the start, as Kafka loads them. */
static void load_group(const struct coll_goff_entry *e, void *arg)
{
    struct coll_server *srv = arg;
    if (!coll_groups_find(&srv->groups, SL_BYTES_STR(e->group))) {
        coll_groups_ensure(&srv->groups, SL_BYTES_STR(e->group));
        coll_server_track_group(srv, e->group);
    }
}

int coll_server_groups_init(struct coll_server *srv, const char *data_dir, struct sl_err *err)
{
    struct coll_groups_conf conf;
    if (srv->conf->groups) {
        conf = *srv->conf->groups;
    } else {
        struct sl_conf_errors errs;
        memset(&errs, 0, sizeof(errs));
        if (sl_conf_load_string(&coll_groups_conf_section, &conf, "<defaults>", "{}", 2, &errs) !=
            0)
            return sl_err_set(err, -ENOMEM, "out of memory");
        sl_conf_free(&coll_groups_conf_section, &conf);
    }
    coll_groups_init(&srv->groups, &conf, NULL, NULL);
    int rc = coll_goff_open(data_dir, NULL, &srv->goff, err);
    if (rc != 0)
        return rc;
    coll_goff_foreach(srv->goff, NULL, load_group, srv);
    ev_init(&srv->group_timer, group_on_timer);
    srv->group_timer.repeat = GROUP_TICK_MAX_S;
    srv->groups_expired_ms = coll_server_wall_ms();
    ev_timer_again(srv->loop, &srv->group_timer);
    return 0;
}

void coll_server_groups_fini(struct coll_server *srv)
{
    ev_timer_stop(srv->loop, &srv->group_timer);
    coll_groups_fini(&srv->groups);
    while (srv->group_gauges) {
        struct coll_group_gauges *gg = srv->group_gauges;
        srv->group_gauges = gg->next;
        gauges_free(srv, gg);
    }
    coll_goff_close(srv->goff);
    srv->goff = NULL;
}
