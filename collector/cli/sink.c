/* sluice sink: the driver shared by every sink backend: configuration, the group member loop,
 * backpressure, retries with backoff, /metrics, sd_notify, and the SIGTERM drain. */
#include "collector/cli/sink.h"

#include "collector/cli/kc_admin.h"
#include "collector/cli/kc_fetch.h"
#include "collector/cli/kc_member.h"
#include "common/daemon.h"
#include "common/http.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/sdnotify.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Configuration ------------------------------------------------------------------------ */

static const struct sl_conf_enum start_enums[] = {
    {"earliest", SINK_START_EARLIEST},
    {"latest", SINK_START_LATEST},
    {NULL, 0},
};

static const struct sl_conf_enum assignor_enums[] = {
    {"range", KC_ASSIGN_RANGE},
    {"roundrobin", KC_ASSIGN_ROUNDROBIN},
    {NULL, 0},
};

static const struct sl_conf_opt sink_opts[] = {
    {.name = "group",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct sink_conf, group),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 255,
     .help = "consumer group; every process of one sink uses the same group and shares the "
             "partitions"},
    {.name = "topics",
     .type = SL_CONF_LIST,
     .offset = offsetof(struct sink_conf, topics),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 256,
     .help = "topics to load"},
    {.name = "bootstrap",
     .type = SL_CONF_HOSTPORTS,
     .offset = offsetof(struct sink_conf, boot),
     .port = 9092,
     .max = 64,
     .help = "collectors (or Kafka brokers); default: sluice's -b, $SLUICE_BOOTSTRAP or "
             "127.0.0.1:9092"},
    {.name = "client_id",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct sink_conf, client_id),
     .def = "sluice-sink",
     .min = 1,
     .max = 255,
     .help = "client id sent with every request"},
    {.name = "timeout",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct sink_conf, timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .help = "how long to wait for a collector's answer"},
    {.name = "start",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct sink_conf, start),
     .def = "earliest",
     .enums = start_enums,
     .help = "where a partition the sink never loaded starts"},
    {.name = "assignor",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct sink_conf, assignor),
     .def = "range",
     .enums = assignor_enums,
     .help = "how the group shares partitions among the sink processes"},
    {.name = "session_timeout",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct sink_conf, session_ms),
     .def = "10s",
     .min = 1000,
     .max = 3600000,
     .help = "the group drops a process silent this long (heartbeats every third of it, at "
             "most 3s)"},
    {.name = "rebalance_timeout",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct sink_conf, rebalance_ms),
     .def = "30s",
     .min = 1000,
     .max = 3600000,
     .help = "how long a rebalance waits for the other processes to drain and rejoin"},
    {.name = "fetch_max_wait",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct sink_conf, fetch_wait_ms),
     .def = "500ms",
     .min = 10,
     .max = 10000,
     .help = "long poll of a fetch, cut short when files or a batch come due sooner; also "
             "bounds how late /metrics answers"},
    {.name = "fetch_max_bytes",
     .type = SL_CONF_SIZE,
     .offset = offsetof(struct sink_conf, fetch_max_bytes),
     .def = "16MiB",
     .min = 65536,
     .max = 256 << 20,
     .help = "bytes one fetch answer may hold (memory in flight besides the backend's)"},
    {.name = "retry_backoff",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct sink_conf, backoff_ms),
     .def = "1s",
     .min = 10,
     .max = 3600000,
     .help = "first pause after a destination or collector error; doubles on each failure"},
    {.name = "retry_backoff_max",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct sink_conf, backoff_max_ms),
     .def = "30s",
     .min = 10,
     .max = 3600000,
     .help = "longest pause between retries"},
    {.name = "dead_letter",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct sink_conf, dead_letter),
     .min = 1,
     .max = 4096,
     .help = "JSON-lines file for records the destination cannot take, one line per record "
             "even across crashes (an entry whose topic, partition and offset the file already "
             "has is not appended again); default $STATE_DIRECTORY/dead-letter.jsonl under "
             "systemd, else none (logged and dropped)"},
    {.name = "metrics_listen",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct sink_conf, metrics_listen),
     .min = 1,
     .max = 300,
     .help = "address of /metrics and /health (127.0.0.1:9464; port 0 picks one); default none"},
    {.name = "log_level",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct sink_conf, log_level),
     .def = "info",
     .enums = sl_daemon_log_levels,
     .help = "most verbose level logged (sluice sink --log-level overrides it)"},
    {.name = NULL},
};

static bool topic_name_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249 || !strcmp(t, ".") || !strcmp(t, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", t[i]))
            return false;
    return true;
}

static void sink_conf_check(void *obj, struct sl_conf_check *chk)
{
    struct sink_conf *c = obj;
    for (size_t i = 0; i < c->topics.len; i++)
        if (!topic_name_ok(c->topics.items[i]))
            sl_conf_check_error(chk, "topics",
                                "'%s' is not a topic name (1 to 249 of [A-Za-z0-9._-], not . "
                                "or ..)",
                                c->topics.items[i]);
    if (c->backoff_max_ms < c->backoff_ms)
        sl_conf_check_error(chk, "retry_backoff_max", "retry_backoff_max is below retry_backoff");
}

static const struct sl_conf_section *const sink_variants[] = {
    &sink_files_section,
    &sink_pg_section,
    NULL,
};

const struct sl_conf_section sink_conf_section = {
    .name = "sink",
    .help = "a sluice sink (sluice sink CONFIG.yaml)",
    .opts = sink_opts,
    .size = sizeof(struct sink_conf),
    .variant_key = "type",
    .variants = sink_variants,
    .variant_offset = offsetof(struct sink_conf, backend),
    .check = sink_conf_check,
};

static const struct sink_backend *const sink_backends[] = {&sink_files_backend, &sink_pg_backend};

/* ---- The run ------------------------------------------------------------------------------ */

struct sink_run {
    struct sink s;
    struct sink_conf *conf;
    const struct sink_backend *be;
    void *bstate;
    struct kc_client cl;
    struct kc_member m;
    struct kc_fetcher f;
    struct sink_part *parts; /* owned: parallel to f.parts */
    size_t nparts;
    bool joined;
    bool dest_failed;       /* the last error came from the destination */
    bool commit_pending;    /* durable positions wait for a group commit */
    int64_t backoff_ms;     /* next pause */
    struct ev_loop *loop;   /* owned: serves /metrics between rounds */
    struct sl_metrics *reg; /* owned */
    struct sl_http *http;   /* owned */
    int64_t watchdog_every_ms, last_watchdog, last_status;
    uint64_t status_records;
    struct sl_err rec_err;   /* a write error inside a fetch round */
    long kill_before_commit; /* tests: SIGKILL self before the N-th commit of new data */
};

static volatile sig_atomic_t sink_hup;

static void sink_on_hup(int sig)
{
    (void)sig;
    sink_hup = 1;
}

/* Serves pending /metrics requests, pings the watchdog and refreshes the status line. */
static void housekeeping(struct sink_run *r)
{
    if (r->loop)
        ev_run(r->loop, EVRUN_NOWAIT);
    int64_t now = kc_now_ms();
    if (r->watchdog_every_ms > 0 && now - r->last_watchdog >= r->watchdog_every_ms) {
        sl_sdnotify_watchdog();
        r->last_watchdog = now;
    }
    if (now - r->last_status >= 5000) {
        uint64_t n = sl_metric_count(r->s.m.durable);
        double secs = r->last_status ? (double)(now - r->last_status) / 1000.0 : 0;
        sl_sdnotify_status("%zu partitions; %llu records loaded, %.0f/s", r->nparts,
                           (unsigned long long)n,
                           secs > 0 ? (double)(n - r->status_records) / secs : 0.0);
        r->status_records = n;
        r->last_status = now;
    }
    if (sink_hup) {
        sink_hup = 0;
        struct sl_err e = {{0}};
        if (r->s.dead && sink_dead_reopen(r->s.dead, &e) != 0)
            SL_ERR(r->s.name, "SIGHUP: %s", e.msg);
        SL_NOTICE(r->s.name, "SIGHUP: dead-letter file reopened; other configuration changes "
                             "take a restart");
    }
}

/* Sleeps ms, heartbeating and serving /metrics. Returns 0, KC_EREJOIN, -EINTR on a stop
 * signal, or a heartbeat error. */
static int pause_ms(struct sink_run *r, int64_t ms)
{
    int64_t until = kc_now_ms() + ms;
    for (;;) {
        housekeeping(r);
        if (cli_stop)
            return -EINTR;
        if (r->joined) {
            struct sl_err e = {{0}};
            int rc = kc_member_heartbeat(&r->m, &e);
            if (rc != 0) {
                if (rc != KC_EREJOIN)
                    SL_WARN(r->s.name, "heartbeat: %s", e.msg);
                return rc;
            }
        }
        int64_t left = until - kc_now_ms();
        if (left <= 0)
            return 0;
        int64_t step = SL_MIN(left, 100);
        struct timespec ts = {.tv_sec = step / 1000, .tv_nsec = (step % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Pauses after an error for the current backoff (doubling it for the next). */
static int backoff(struct sink_run *r)
{
    int64_t ms = r->backoff_ms;
    r->backoff_ms = SL_MIN(r->backoff_ms * 2, r->conf->backoff_max_ms);
    sl_metric_gauge_add(r->s.m.backoff, (double)ms / 1000.0);
    return pause_ms(r, ms);
}

static struct sink_part *part_of(struct sink_run *r, const struct kc_fetch_part *fp)
{
    return &r->parts[fp - r->f.parts];
}

static int on_record(void *arg, struct kc_fetch_part *fp, const struct sl_batch_record *rec)
{
    struct sink_run *r = arg;
    struct sink_part *p = part_of(r, fp);
    int rc = r->be->write(r->bstate, p, rec, &r->rec_err);
    if (rc == SINK_FULL) {
        /* Not written: end the round, flush, and fetch it again. */
        p->refetch = rec->offset;
        return 1;
    }
    if (rc != 0) {
        r->dest_failed = true;
        return rc;
    }
    sl_metric_inc(r->s.m.records);
    return 0;
}

/* Forgets every partition, the backend giving each up first. */
static void revoke_all(struct sink_run *r)
{
    for (size_t i = 0; i < r->nparts; i++) {
        r->be->revoke(r->bstate, &r->parts[i]);
        sl_free(r->parts[i].topic);
    }
    SL_FREE(r->parts);
    r->nparts = 0;
    kc_fetcher_clear(&r->f);
    r->commit_pending = false;
}

/* Commits the durable positions that moved. Returns 0, KC_EREJOIN or another error. */
static int commit(struct sink_run *r, struct sl_err *err)
{
    struct kc_tplist l = {0};
    for (size_t i = 0; i < r->nparts; i++) {
        struct sink_part *p = &r->parts[i];
        if (p->durable >= 0 && p->durable != p->committed &&
            kc_tplist_add(&l, p->topic, strlen(p->topic), p->partition, p->durable) != 0) {
            kc_tplist_fini(&l);
            return sl_err_set(err, -ENOMEM, "out of memory");
        }
    }
    int rc = 0;
    if (l.len > 0) {
        /* Dead letters must be on disk before the offsets that skip their records. */
        rc = sink_dead_sync(r->s.dead, err);
        if (rc == 0)
            rc = kc_member_commit(&r->m, &l, err);
        if (rc == 0) {
            sl_metric_inc(r->s.m.commits);
            for (size_t i = 0; i < r->nparts; i++)
                r->parts[i].committed = r->parts[i].durable;
        }
    }
    kc_tplist_fini(&l);
    r->commit_pending = rc != 0 && r->be->commit_gates_flush;
    return rc;
}

/* Makes due data durable and commits it. force: everything (a drain). */
static int flush(struct sink_run *r, bool force, struct sl_err *err)
{
    int64_t t0 = kc_now_ms();
    uint64_t before = 0;
    for (size_t i = 0; i < r->nparts; i++)
        before += (uint64_t)SL_MAX(r->parts[i].durable, 0);
    int rc = r->be->flush(r->bstate, r->parts, r->nparts, force, err);
    uint64_t after = 0;
    for (size_t i = 0; i < r->nparts; i++)
        after += (uint64_t)SL_MAX(r->parts[i].durable, 0);
    if (after > before) {
        sl_metric_add(r->s.m.durable, after - before);
        sl_metric_inc(r->s.m.flushes);
        sl_metric_observe(r->s.m.flush_secs, (double)(kc_now_ms() - t0) / 1000.0);
    }
    if (rc != 0) {
        r->dest_failed = true;
        return rc;
    }
    if (after > before && r->kill_before_commit > 0 && --r->kill_before_commit == 0) {
        /* Tests: die in the window between durable files and their commit. */
        SL_NOTICE(r->s.name, "SLUICE_SINK_TEST_KILL_BEFORE_COMMIT: SIGKILL before committing");
        raise(SIGKILL);
    }
    return commit(r, err);
}

/* After a destination error: drop what is not durable and read it again from the collector. */
static void rewind_all(struct sink_run *r)
{
    for (size_t i = 0; i < r->nparts; i++) {
        r->be->abort(r->bstate, &r->parts[i]);
        r->f.parts[i].offset = r->parts[i].durable;
        r->f.parts[i].done = false;
    }
}

/* The leader of each assigned partition, and where each starts. */
static int resolve_starts(struct sink_run *r, const int64_t *own, struct sl_err *err)
{
    struct kc_meta meta = {0};
    int rc = kc_client_metadata(&r->cl, (const char *const *)r->conf->topics.items,
                                r->conf->topics.len, false, &meta, err);
    struct kc_tplist committed = {0};
    if (rc == 0)
        rc = kc_member_committed(&r->m, &committed, err);
    for (size_t i = 0; rc == 0 && i < r->nparts; i++) {
        struct sink_part *p = &r->parts[i];
        const struct kc_meta_topic *t = kc_meta_find(&meta, p->topic);
        int32_t leader = -1;
        for (int32_t k = 0; t && k < t->nparts; k++)
            if (t->parts[k].index == p->partition)
                leader = t->parts[k].leader;
        struct kc_tp *c = kc_tplist_find(&committed, p->topic, p->partition);
        int64_t start = own[i] >= 0 ? own[i] : c ? c->offset : -1;
        if (start < 0) {
            struct kc_offset_query q = {.partition = p->partition,
                                        .leader = leader,
                                        .timestamp = r->conf->start == SINK_START_LATEST
                                                         ? KC_OFFSET_LATEST
                                                         : KC_OFFSET_EARLIEST};
            if ((rc = kc_list_offsets(&r->cl, p->topic, &q, 1, err)) != 0)
                break;
            if (q.error_code != KAFKA_E_NONE) {
                rc = kc_err_kafka(err, q.error_code, "offsets of %s-%d", p->topic, p->partition);
                break;
            }
            start = q.offset;
        }
        p->durable = start;
        /* Where the backend may build on: what the group has, or where reading starts when it
         * has nothing (the files backend finalizes only when durable == committed). */
        p->committed = start;
        if (kc_fetcher_add(&r->f, p->topic, p->partition, leader, start, -1) != 0)
            rc = sl_err_set(err, -ENOMEM, "out of memory");
    }
    kc_tplist_fini(&committed);
    kc_meta_fini(&meta);
    return rc;
}

/*
 * Joins the group and takes the assignment: the backend fences and cleans each partition,
 * then the start positions are read (after the fence, so a previous owner's last commit is
 * seen). Retries until it works or a stop signal arrives. Returns 0 or -EINTR.
 */
static int join_and_assign(struct sink_run *r)
{
    for (;;) {
        revoke_all(r);
        if (cli_stop)
            return -EINTR;
        housekeeping(r);
        struct sl_err err = {{0}};
        int rc = kc_member_join(&r->m, &err);
        if (rc == 0) {
            r->joined = true;
            if (sl_metric_count(r->s.m.commits) || r->m.generation > 1)
                sl_metric_inc(r->s.m.rebalances);
            size_t n = r->m.assigned.len;
            r->parts = sl_calloc(n ? n : 1, sizeof(*r->parts));
            int64_t *own = sl_calloc(n ? n : 1, sizeof(int64_t));
            if (!r->parts || !own) {
                sl_free(own);
                return sl_err_set(&err, -ENOMEM, "out of memory");
            }
            for (size_t i = 0; rc == 0 && i < n; i++) {
                struct sink_part *p = &r->parts[i];
                p->partition = r->m.assigned.items[i].partition;
                p->durable = p->committed = p->refetch = -1;
                if (!(p->topic = sl_strdup(r->m.assigned.items[i].topic))) {
                    rc = sl_err_set(&err, -ENOMEM, "out of memory");
                    break;
                }
                r->nparts++;
                own[i] = -1;
                /* Another process may still be finishing with it (a drain, a zombie): wait. */
                while ((rc = r->be->assign(r->bstate, p, &own[i], &err)) == -EAGAIN) {
                    SL_DEBUG(r->s.name, "%s-%d: still held by another process; waiting", p->topic,
                             p->partition);
                    if ((rc = pause_ms(r, 100)) != 0)
                        break;
                }
                if (rc != 0) {
                    r->nparts--;
                    sl_free(p->topic);
                    p->topic = NULL;
                }
            }
            if (rc == 0)
                rc = resolve_starts(r, own, &err);
            sl_free(own);
            if (rc == 0) {
                char list[512] = "";
                for (size_t i = 0, len = 0; i < r->nparts && len < sizeof(list) - 64; i++)
                    len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s-%d@%lld",
                                            i ? " " : "", r->parts[i].topic, r->parts[i].partition,
                                            (long long)r->parts[i].durable);
                SL_INFO(r->s.name, "group '%s' generation %d: %zu partitions [%s]%s", r->m.group,
                        r->m.generation, r->nparts, list, r->m.leader ? " (leader)" : "");
                r->backoff_ms = r->conf->backoff_ms;
                return 0;
            }
        }
        if (rc == -EINTR || cli_stop)
            return -EINTR;
        if (rc != KC_EREJOIN)
            SL_WARN(r->s.name, "joining group '%s': %s; retrying", r->m.group, err.msg);
        r->joined = false;
        revoke_all(r);
        if (backoff(r) == -EINTR)
            return -EINTR;
    }
}

/* A drain: everything written becomes durable and committed, as far as possible. */
static void drain(struct sink_run *r, const char *why)
{
    struct sl_err err = {{0}};
    if (!r->joined || r->nparts == 0)
        return;
    /* Twice: the files sink may hold a closed epoch and an open one, and finalizes the second
     * only after the first is committed. */
    int rc = flush(r, true, &err);
    if (rc == 0)
        rc = flush(r, true, &err);
    if (rc != 0)
        SL_WARN(r->s.name,
                "%s: could not finish: %s (uncommitted data is loaded again by the "
                "next owner)",
                why, err.msg);
}

static int setup_metrics(struct sink_run *r, struct sl_err *err)
{
    if (!r->conf->metrics_listen)
        return 0;
    if (!(r->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK)) || !(r->reg = sl_metrics_new()))
        return sl_err_set(err, -ENOMEM, "out of memory");
    static const double secs[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};
    struct sink_metrics *m = &r->s.m;
    int rc = 0;
    struct sl_metric_label lb = {"type", r->be->name};
#define COUNTER(field, name, help)                                                                 \
    if (rc == 0)                                                                                   \
    rc = sl_metrics_add_counter(r->reg, name, help, &lb, 1, &m->field, err)
    COUNTER(records, "sluice_sink_records_total", "records handed to the destination");
    COUNTER(durable, "sluice_sink_records_durable_total", "records made durable");
    COUNTER(bytes, "sluice_sink_bytes_total", "bytes written to the destination");
    COUNTER(dead, "sluice_sink_dead_letters_total", "records sent to the dead-letter file");
    COUNTER(errors, "sluice_sink_destination_errors_total",
            "destination errors (each followed by a retry)");
    COUNTER(flushes, "sluice_sink_flushes_total", "flushes that made records durable");
    COUNTER(commits, "sluice_sink_commits_total", "offset commits to the group");
    COUNTER(rebalances, "sluice_sink_rebalances_total", "group joins after the first");
#undef COUNTER
    if (rc == 0)
        rc = sl_metrics_add_gauge(r->reg, "sluice_sink_backoff_seconds",
                                  "seconds spent backing off after errors, in total", &lb, 1,
                                  &m->backoff, err);
    if (rc == 0)
        rc = sl_metrics_add_histogram(r->reg, "sluice_sink_flush_seconds",
                                      "time a flush that made records durable took", &lb, 1, secs,
                                      SL_ARRAY_LEN(secs), &m->flush_secs, err);
    if (rc != 0)
        return rc;
    struct sl_http_config hc = {
        .listen = r->conf->metrics_listen, .metrics = r->reg, .name = r->s.name};
    if ((rc = sl_http_new(r->loop, &hc, &r->http, err)) != 0) {
        sl_err_prefix(err, "metrics_listen %s: ", r->conf->metrics_listen);
        return rc;
    }
    sl_http_start(r->http);
    SL_INFO(r->s.name, "metrics and health on port %d", sl_http_port(r->http));
    return 0;
}

static double lag_fn(void *arg)
{
    const struct sink_run *r = arg;
    int64_t lag = 0;
    for (size_t i = 0; i < r->f.nparts; i++) {
        const struct kc_fetch_part *fp = &r->f.parts[i];
        if (fp->high_watermark >= 0 && i < r->nparts && r->parts[i].durable >= 0)
            lag += SL_MAX(fp->high_watermark - r->parts[i].durable, 0);
    }
    return (double)lag;
}

static double parts_fn(void *arg)
{
    return (double)((const struct sink_run *)arg)->nparts;
}

/* The main loop: fetch, write, flush, commit, heartbeat; until a stop signal. */
static int run(struct sink_run *r)
{
    struct sl_err err = {{0}};
    int rc = join_and_assign(r);
    while (rc == 0 && !cli_stop) {
        housekeeping(r);
        err.msg[0] = 0;
        r->dest_failed = false;
        if (r->commit_pending) {
            /* Nothing more may become durable before this commit: the files sink's rule. */
            rc = commit(r, &err);
        } else if (r->nparts == 0) {
            rc = pause_ms(r, 200);
        } else {
            r->rec_err.msg[0] = 0;
            int64_t due = r->be->due_in(r->bstate, r->parts, r->nparts, kc_now_ms());
            r->f.max_wait_ms =
                (int32_t)(due < 0 ? r->conf->fetch_wait_ms : SL_MIN(due, r->conf->fetch_wait_ms));
            rc = kc_fetcher_poll(&r->f, on_record, r, &err);
            if (rc < 0 && r->dest_failed)
                err = r->rec_err;
            if (rc == -EINTR || rc == 1)
                rc = 0;
            for (size_t i = 0; i < r->nparts; i++) {
                if (r->parts[i].refetch >= 0) {
                    r->f.parts[i].offset = r->parts[i].refetch;
                    r->parts[i].refetch = -1;
                }
            }
            if (rc == 0)
                rc = flush(r, false, &err);
            if (rc == 0)
                rc = kc_member_heartbeat(&r->m, &err);
        }
        if (rc == 0) {
            if (!r->dest_failed)
                r->backoff_ms = r->conf->backoff_ms;
            continue;
        }
        if (rc == KC_EREJOIN) {
            SL_INFO(r->s.name, "group '%s' rebalances: draining, then joining again", r->m.group);
            drain(r, "rebalance");
            rc = join_and_assign(r);
            continue;
        }
        if (rc == -EINTR)
            break;
        if (r->dest_failed) {
            sl_metric_inc(r->s.m.errors);
            SL_WARN(r->s.name, "destination error: %s; retrying in %lld ms", err.msg,
                    (long long)r->backoff_ms);
            rewind_all(r);
        } else if (r->commit_pending) {
            SL_WARN(r->s.name, "commit: %s; retrying in %lld ms", err.msg,
                    (long long)r->backoff_ms);
        } else {
            SL_WARN(r->s.name, "%s; retrying in %lld ms", err.msg, (long long)r->backoff_ms);
        }
        rc = backoff(r);
        if (rc == KC_EREJOIN) {
            drain(r, "rebalance");
            rc = join_and_assign(r);
        } else if (rc != -EINTR) {
            rc = 0; /* a heartbeat that failed too: the next round tries everything again */
        }
    }
    if (cli_stop) {
        SL_NOTICE(r->s.name, "stopping: draining");
        sl_sdnotify_stopping();
        drain(r, "drain");
        rc = 0;
    }
    return rc == -EINTR ? 0 : rc;
}

static const char sink_help[] =
    "Usage: sluice [-b HOST:PORT] sink [--log-level LEVEL] [--check-config] CONFIG.yaml\n"
    "Loads topics into a warehouse as a member of a consumer group: start more processes\n"
    "with the same configuration to share the partitions. CONFIG.yaml names the group, the\n"
    "topics and a type:\n"
    "  files     Hive-partitioned gzip JSON lines:\n"
    "            ROOT/topic=T/dt=YYYY-MM-DD/hour=HH/part-<partition>-<start offset>.jsonl.gz\n"
    "  postgres  COPY into a PostgreSQL table, offsets kept in the same transaction\n"
    "Each record lands exactly once, across crashes. SIGTERM drains and commits; SIGHUP\n"
    "reopens the dead-letter file. --config-reference prints every option.\n";

int cmd_sink(struct cli *c, int argc, char **argv)
{
    enum { OPT_LOG_LEVEL = 256, OPT_CHECK, OPT_REFERENCE };
    static const struct option longopts[] = {
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"config-reference", no_argument, NULL, OPT_REFERENCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *level = NULL;
    bool check = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_LOG_LEVEL:
            if (sl_log_level_parse(optarg) < 0)
                return cli_usage_error("sink", "--log-level: unknown level '%s'", optarg);
            level = optarg;
            break;
        case OPT_CHECK:
            check = true;
            break;
        case OPT_REFERENCE:
            sl_conf_markdown(&sink_conf_section, 1, stdout);
            return CLI_EXIT_OK;
        case 'h':
            fputs(sink_help, stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_error("sink", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("sink", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("sink", optind >= argc ? "which configuration file?"
                                                      : "one configuration file only");
    const char *path = argv[optind];
    struct sink_run *r = sl_calloc(1, sizeof(*r));
    if (!r)
        return cli_fail(-ENOMEM, NULL);
    struct sink_conf *conf = sl_calloc(1, sizeof(*conf));
    struct sl_conf_errors *errs = sl_calloc(1, sizeof(*errs));
    if (!conf || !errs) {
        sl_free(conf);
        sl_free(errs);
        sl_free(r);
        return cli_fail(-ENOMEM, NULL);
    }
    int rc = sl_conf_load_file(&sink_conf_section, conf, path, errs);
    if (rc != 0) {
        sl_conf_errors_print(errs, stderr);
        sl_free(errs);
        sl_free(conf);
        sl_free(r);
        return CLI_EXIT_FAIL;
    }
    sl_free(errs);
    if (check) {
        printf("sluice sink: %s: configuration OK\n", path);
        sl_conf_free(&sink_conf_section, conf);
        sl_free(conf);
        sl_free(r);
        return CLI_EXIT_OK;
    }
    sl_log_threshold = level ? sl_log_level_parse(level) : conf->log_level;

    /* The instance name in log lines: the file's base name without .yaml. */
    char name[96];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int blen = (int)strcspn(base, ".");
    snprintf(name, sizeof(name), "sink#%.*s", SL_MIN(blen, 80), base);
    r->conf = conf;
    r->s.conf = conf;
    r->s.name = name;
    for (size_t i = 0; i < SL_ARRAY_LEN(sink_backends); i++)
        if (sink_backends[i]->section == conf->backend.section)
            r->be = sink_backends[i];
    SL_ASSERT(r->be);
    struct sl_err err = {{0}};
    kc_client_init(&r->cl, conf->boot.len ? &conf->boot : c->cl.bootstrap, conf->client_id,
                   conf->timeout_ms);
    kc_fetcher_init(&r->f, &r->cl);
    r->f.max_wait_ms = (int32_t)conf->fetch_wait_ms;
    r->f.max_bytes = (int32_t)conf->fetch_max_bytes;
    r->f.reset = KC_RESET_EARLIEST;
    r->f.prefetch = true; /* the next answer comes while this one is written */
    r->backoff_ms = conf->backoff_ms;
    struct kc_member_opts mo = KC_MEMBER_OPTS_DEFAULT;
    mo.session_ms = (int32_t)conf->session_ms;
    mo.rebalance_ms = (int32_t)conf->rebalance_ms;
    mo.heartbeat_ms = (int32_t)SL_MIN(conf->session_ms / 3, 3000);
    mo.prefs[0] = (enum kc_assignor)conf->assignor;
    mo.prefs[1] = mo.prefs[0] == KC_ASSIGN_RANGE ? KC_ASSIGN_ROUNDROBIN : KC_ASSIGN_RANGE;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sink_on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);

    const char *dead = conf->dead_letter;
    char dead_default[4200];
    if (!dead && getenv("STATE_DIRECTORY") && getenv("STATE_DIRECTORY")[0]) {
        /* systemd may list several folders, separated by ':'; the first is the instance's. */
        const char *sd = getenv("STATE_DIRECTORY");
        snprintf(dead_default, sizeof(dead_default), "%.*s/dead-letter.jsonl",
                 (int)SL_MIN(strcspn(sd, ":"), 4096), sd);
        dead = dead_default;
    }
    if ((rc = kc_member_init(&r->m, &r->cl, conf->group, (const char *const *)conf->topics.items,
                             conf->topics.len, &mo)) != 0) {
        rc = sl_err_set(&err, rc, "out of memory");
        goto out;
    }
    if ((rc = setup_metrics(r, &err)) != 0)
        goto out;
    if (r->reg) {
        struct sl_metric_label lb = {"type", r->be->name};
        struct sl_metric *unused;
        if ((rc = sl_metrics_add_gauge_fn(r->reg, "sluice_sink_lag_records",
                                          "records in the assigned partitions not yet durable", &lb,
                                          1, lag_fn, r, &unused, &err)) != 0 ||
            (rc = sl_metrics_add_gauge_fn(r->reg, "sluice_sink_assigned_partitions",
                                          "partitions this process loads", &lb, 1, parts_fn, r,
                                          &unused, &err)) != 0)
            goto out;
    }
    if (dead && (rc = sink_dead_open(dead, &r->s.dead, &err)) != 0)
        goto out;
    if ((rc = r->be->open(&r->s, conf->backend.conf, &r->bstate, &err)) != 0)
        goto out;
    const char *kbc = getenv("SLUICE_SINK_TEST_KILL_BEFORE_COMMIT");
    r->kill_before_commit = kbc ? strtol(kbc, NULL, 10) : 0;
    int64_t wd = sl_sdnotify_watchdog_usec();
    r->watchdog_every_ms = wd > 0 ? SL_MAX(wd / 1000 / 4, 100) : 0;
    sl_sdnotify_ready();
    SL_INFO(name, "%s sink of %zu topic%s for group '%s' started", r->be->name, conf->topics.len,
            conf->topics.len == 1 ? "" : "s", conf->group);
    rc = run(r);
out:
    if (r->joined) {
        struct sl_err e2 = {{0}};
        revoke_all(r);
        if (kc_member_leave(&r->m, &e2) != 0)
            SL_WARN(name, "leaving group '%s': %s", conf->group, e2.msg);
    } else {
        revoke_all(r);
    }
    if (r->be && r->bstate)
        r->be->close(r->bstate);
    sink_dead_free(r->s.dead);
    kc_member_fini(&r->m);
    kc_fetcher_fini(&r->f);
    kc_client_fini(&r->cl);
    sl_http_free(r->http);
    sl_metrics_free(r->reg);
    if (r->loop)
        ev_loop_destroy(r->loop);
    sl_conf_free(&sink_conf_section, conf);
    sl_free(conf);
    sl_free(r);
    if (rc != 0) {
        SL_ERR(name, "%s", err.msg[0] ? err.msg : sl_strerror(rc));
        return cli_exit_code(rc);
    }
    SL_NOTICE(name, "stopped");
    return CLI_EXIT_OK;
}
