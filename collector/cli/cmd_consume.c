/* sluice consume: prints records of a topic, from a chosen start, up to the end or following;
 * with -g it is a consumer-group member that commits what it printed. */
#include "collector/cli/cli.h"

#include "collector/cli/kc_admin.h"
#include "collector/cli/kc_fetch.h"
#include "collector/cli/kc_member.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char consume_help[] =
    "Usage: sluice [-b HOST:PORT] consume -t TOPIC [OPTION]...\n"
    "Prints the records of TOPIC, one per line, up to the end of each partition as it was at\n"
    "the start (or, with -f, as they come).\n"
    "\n"
    "  -t, --topic TOPIC      the topic\n"
    "  -p, --partition N      only partition N (repeatable; default: every partition)\n"
    "  Where to start (default: the beginning):\n"
    "      --from-beginning   the oldest record kept\n"
    "      --offset N         offset N; -N: N records before the end; 'end': only new ones\n"
    "      --since DURATION   records written in the last DURATION (30s, 15m, 1h, 2d)\n"
    "      --at TIME          records from TIME on (2026-11-22T10:00:00Z, '2026-11-22 10:00',\n"
    "                         2026-11-22, @<ms since the epoch>)\n"
    "  -g, --group GROUP      join consumer group GROUP: share the partitions with the other\n"
    "                         members, resume where the group left off (the options above\n"
    "                         apply to partitions it never committed), commit after printing\n"
    "      --assignor NAME    range (default) or roundrobin, with -g\n"
    "      --session-timeout DURATION  with -g: the group drops this member when silent\n"
    "                         this long (default 30s; heartbeats every third of it, at\n"
    "                         most 3s)\n"
    "  -f, --follow           keep waiting for new records (until Ctrl-C or -n)\n"
    "  -n, --count N          stop after N records\n"
    "      --format FORMAT    value (default): the value and a newline; raw: the value bytes\n"
    "                         alone; json: one JSON object per line with topic, partition,\n"
    "                         offset, timestamp, time, key, headers and value\n"
    "  -q, --quiet            no progress line (shown on a terminal when the output is not)\n"
    "\n"
    "JSON strings keep valid UTF-8; other bytes come out as \\u00XX, one per byte.\n";

enum format { FMT_VALUE, FMT_RAW, FMT_JSON };

struct consume {
    struct cli *c;
    const char *topic;
    enum format fmt;
    int64_t limit;     /* -n, -1: none */
    int64_t printed;   /* records written */
    struct sl_buf out; /* pending output, written after each fetch round */
    bool write_failed;
};

/* Appends one record to the output buffer in the chosen format. */
static int on_record(void *arg, struct kc_fetch_part *fp, const struct sl_batch_record *rec)
{
    struct consume *cs = arg;
    struct sl_buf *b = &cs->out;
    if (cs->fmt == FMT_JSON) {
        char t[40];
        cli_format_time(rec->timestamp, t, sizeof(t));
        sl_buf_append_str(b, "{\"topic\":");
        cli_json_str(b, fp->topic, strlen(fp->topic));
        sl_buf_printf(b,
                      ",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"time\":\"%s\","
                      "\"key\":",
                      fp->partition, (long long)rec->offset, (long long)rec->timestamp, t);
        cli_json_key_headers(b, rec);
        sl_buf_append_str(b, ",\"value\":");
        cli_json_str(b, rec->value.p, rec->value.len);
        sl_buf_append_str(b, "}\n");
    } else {
        if (rec->value.p)
            sl_buf_append(b, rec->value.p, rec->value.len);
        if (cs->fmt == FMT_VALUE)
            sl_buf_append(b, "\n", 1);
    }
    if (sl_buf_error(b))
        return -ENOMEM;
    cs->printed++;
    if (cs->limit >= 0 && cs->printed >= cs->limit)
        return 1;
    return 0;
}

/* Writes the buffered records to stdout. */
static int flush_out(struct consume *cs, struct sl_err *err)
{
    size_t off = 0;
    while (off < cs->out.len) {
        ssize_t w = write(STDOUT_FILENO, cs->out.data + off, cs->out.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            cs->write_failed = true;
            return sl_err_set(err, -errno, "writing the records: %s", sl_strerror(-errno));
        }
        off += (size_t)w;
    }
    sl_buf_reset(&cs->out);
    return 0;
}

/* Where each partition of `parts` starts (when it has no committed offset) and, unless
 * following, where it ends. */
struct start_opts {
    enum { START_BEGIN, START_OFFSET, START_END_MINUS, START_END, START_TIME } how;
    int64_t value; /* offset, count before the end, or time */
};

/* Resolves start and stop offsets for the partitions in q (which carry partition and leader). */
static int resolve(struct cli *c, const char *topic, struct kc_offset_query *q, size_t n,
                   const struct start_opts *so, int64_t *start, int64_t *end, struct sl_err *err)
{
    for (size_t i = 0; i < n; i++)
        q[i].timestamp = KC_OFFSET_LATEST;
    int rc = kc_list_offsets(&c->cl, topic, q, n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (q[i].error_code != KAFKA_E_NONE)
            return kc_err_kafka(err, q[i].error_code, "end offset of %s-%d", topic, q[i].partition);
        end[i] = q[i].offset;
    }
    if (rc != 0)
        return rc;
    int64_t ts = so->how == START_TIME  ? so->value
                 : so->how == START_END ? KC_OFFSET_LATEST
                                        : KC_OFFSET_EARLIEST;
    for (size_t i = 0; i < n; i++)
        q[i].timestamp = ts;
    if ((rc = kc_list_offsets(&c->cl, topic, q, n, err)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (q[i].error_code != KAFKA_E_NONE)
            return kc_err_kafka(err, q[i].error_code, "offsets of %s-%d", topic, q[i].partition);
        int64_t first = q[i].offset;
        switch (so->how) {
        case START_BEGIN:
        case START_END:
            start[i] = first;
            break;
        case START_TIME:
            start[i] = first >= 0 ? first : end[i]; /* -1: nothing that recent */
            break;
        case START_OFFSET:
            start[i] = so->value < first ? first : SL_MIN(so->value, end[i]);
            break;
        case START_END_MINUS:
            start[i] = SL_MAX(first, end[i] - so->value);
            break;
        }
    }
    return 0;
}

/* Fills the fetcher for the partitions (topic, parts) starting at start[], stopping at
 * end[] unless following. */
static int fill(struct kc_fetcher *f, const char *topic, const struct kc_offset_query *q, size_t n,
                const int64_t *start, const int64_t *end, bool follow)
{
    for (size_t i = 0; i < n; i++)
        if (kc_fetcher_add(f, topic, q[i].partition, q[i].leader, start[i], follow ? -1 : end[i]) !=
            0)
            return -ENOMEM;
    return 0;
}

static int64_t lag_of(const struct kc_fetcher *f)
{
    int64_t lag = 0;
    for (size_t i = 0; i < f->nparts; i++) {
        const struct kc_fetch_part *fp = &f->parts[i];
        if (fp->high_watermark > fp->offset && fp->offset >= 0)
            lag += fp->high_watermark - fp->offset;
    }
    return lag;
}

/* The group's positions to commit: the fetcher's next offsets. */
static int positions(const struct kc_fetcher *f, struct kc_tplist *l)
{
    for (size_t i = 0; i < f->nparts; i++) {
        const struct kc_fetch_part *fp = &f->parts[i];
        if (fp->offset >= 0 &&
            kc_tplist_add(l, fp->topic, strlen(fp->topic), fp->partition, fp->offset) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* Joins (again) and points the fetcher at the assignment: committed offsets, else the start
 * options. */
static int group_assign(struct consume *cs, struct kc_member *m, struct kc_fetcher *f,
                        const struct start_opts *so, bool follow, struct sl_err *err)
{
    /* Positions past what the group committed (a commit refused during the rebalance) were
     * printed already: a partition that stays ours resumes there, not at the commit. */
    struct kc_tplist printed = {0};
    if (positions(f, &printed) != 0)
        return sl_err_set(err, -ENOMEM, "out of memory");
    kc_fetcher_clear(f);
    struct kc_tplist committed = {0};
    int rc = kc_member_join(m, err);
    if (rc != 0)
        goto out;
    if ((rc = kc_member_committed(m, &committed, err)) != 0)
        goto out;
    struct kc_meta meta = {0};
    const struct kc_meta_topic *t;
    if ((rc = kc_client_topic(&cs->c->cl, cs->topic, &meta, &t, err)) != 0) {
        kc_meta_fini(&meta);
        goto out;
    }
    size_t n = committed.len;
    struct kc_offset_query *q = sl_calloc(n ? n : 1, sizeof(*q));
    int64_t *start = sl_calloc(n ? n : 1, sizeof(int64_t));
    int64_t *end = sl_calloc(n ? n : 1, sizeof(int64_t));
    if (!q || !start || !end) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            q[i].partition = committed.items[i].partition;
            q[i].leader = -1;
            for (int32_t k = 0; k < t->nparts; k++)
                if (t->parts[k].index == q[i].partition)
                    q[i].leader = t->parts[k].leader;
        }
        rc = n ? resolve(cs->c, cs->topic, q, n, so, start, end, err) : 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const struct kc_tp *tp = &committed.items[i];
            const struct kc_tp *mine = kc_tplist_find(&printed, tp->topic, tp->partition);
            if (tp->offset >= 0)
                start[i] = tp->offset;
            if (mine && mine->offset > start[i])
                start[i] = mine->offset;
        }
        if (rc == 0 && fill(f, cs->topic, q, n, start, end, follow) != 0)
            rc = sl_err_set(err, -ENOMEM, "out of memory");
    }
    if (rc == 0) {
        char parts[256] = "";
        for (size_t i = 0, len = 0; i < n && len < sizeof(parts) - 16; i++)
            len += (size_t)snprintf(parts + len, sizeof(parts) - len, "%s%d", i ? "," : "",
                                    q[i].partition);
        SL_INFO("group", "group '%s' generation %d: %zu partition%s of %s assigned [%s]%s",
                m->group, m->generation, n, n == 1 ? "" : "s", cs->topic, parts,
                m->leader ? " (leader)" : "");
    }
    sl_free(q);
    sl_free(start);
    sl_free(end);
    kc_meta_fini(&meta);
out:
    kc_tplist_fini(&committed);
    kc_tplist_fini(&printed);
    return rc;
}

static int parse_start(const char *opt, const char *arg, struct start_opts *so, int *nstart)
{
    struct sl_err e;
    char *end;
    (*nstart)++;
    if (!strcmp(opt, "offset")) {
        if (!strcmp(arg, "end")) {
            so->how = START_END;
            return 0;
        }
        if (!strcmp(arg, "beginning")) {
            so->how = START_BEGIN;
            return 0;
        }
        errno = 0;
        long long v = strtoll(arg, &end, 10);
        if (errno || *end || end == arg)
            return cli_usage_error("consume", "--offset wants N, -N, beginning or end (got '%s')",
                                   arg);
        so->how = v < 0 || arg[0] == '-' ? START_END_MINUS : START_OFFSET;
        so->value = v < 0 ? -v : v;
        return 0;
    }
    if (!strcmp(opt, "since")) {
        int64_t ms;
        if (sl_conf_parse_duration(arg, &ms, &e) != 0)
            return cli_usage_error("consume", "--since %s", e.msg);
        so->how = START_TIME;
        so->value = kc_wall_ms() - ms;
        return 0;
    }
    int64_t ms;
    if (cli_parse_time(arg, &ms, &e) != 0)
        return cli_usage_error("consume", "--at %s", e.msg);
    so->how = START_TIME;
    so->value = ms;
    return 0;
}

int cmd_consume(struct cli *c, int argc, char **argv)
{
    enum {
        OPT_FROM_BEGINNING = 256,
        OPT_OFFSET,
        OPT_SINCE,
        OPT_AT,
        OPT_FORMAT,
        OPT_ASSIGNOR,
        OPT_JSON,
        OPT_SESSION
    };
    static const struct option longopts[] = {
        {"topic", required_argument, NULL, 't'},
        {"partition", required_argument, NULL, 'p'},
        {"from-beginning", no_argument, NULL, OPT_FROM_BEGINNING},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {"since", required_argument, NULL, OPT_SINCE},
        {"at", required_argument, NULL, OPT_AT},
        {"group", required_argument, NULL, 'g'},
        {"assignor", required_argument, NULL, OPT_ASSIGNOR},
        {"session-timeout", required_argument, NULL, OPT_SESSION},
        {"follow", no_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct consume cs = {.c = c, .fmt = FMT_VALUE, .limit = -1};
    struct start_opts so = {.how = START_BEGIN};
    int nstart = 0;
    const char *group = NULL;
    bool follow = false;
    int32_t only[256];
    size_t nonly = 0;
    struct kc_member_opts mo = KC_MEMBER_OPTS_DEFAULT;
    int ch, urc;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":t:p:g:fn:qh", longopts, NULL)) != -1) {
        char *end;
        long long v;
        switch (ch) {
        case 't':
            cs.topic = optarg;
            break;
        case 'p':
            v = strtoll(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > INT32_MAX)
                return cli_usage_error("consume", "-p: not a partition number: '%s'", optarg);
            if (nonly == SL_ARRAY_LEN(only))
                return cli_usage_error("consume", "at most %zu -p", SL_ARRAY_LEN(only));
            only[nonly++] = (int32_t)v;
            break;
        case OPT_FROM_BEGINNING:
            so.how = START_BEGIN;
            nstart++;
            break;
        case OPT_OFFSET:
        case OPT_SINCE:
        case OPT_AT:
            urc = parse_start(ch == OPT_OFFSET  ? "offset"
                              : ch == OPT_SINCE ? "since"
                                                : "at",
                              optarg, &so, &nstart);
            if (urc != 0)
                return urc;
            break;
        case 'g':
            group = optarg;
            break;
        case OPT_ASSIGNOR: {
            enum kc_assignor a;
            if (kc_assignor_parse(optarg, &a) != 0)
                return cli_usage_error("consume",
                                       "--assignor must be range or roundrobin "
                                       "(got '%s')",
                                       optarg);
            mo.prefs[0] = a;
            mo.prefs[1] = a == KC_ASSIGN_RANGE ? KC_ASSIGN_ROUNDROBIN : KC_ASSIGN_RANGE;
            break;
        }
        case OPT_SESSION: {
            int64_t ms;
            struct sl_err e;
            if (sl_conf_parse_duration(optarg, &ms, &e) != 0 || ms < 1000 || ms > 3600000)
                return cli_usage_error("consume", "--session-timeout must be 1s to 1h (got '%s')",
                                       optarg);
            mo.session_ms = (int32_t)ms;
            mo.heartbeat_ms = (int32_t)SL_MIN(ms / 3, 3000);
            break;
        }
        case 'f':
            follow = true;
            break;
        case 'n':
            v = strtoll(optarg, &end, 10);
            if (*end || end == optarg || v < 1)
                return cli_usage_error("consume", "-n wants a count of 1 or more (got '%s')",
                                       optarg);
            cs.limit = v;
            break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "value"))
                cs.fmt = FMT_VALUE;
            else if (!strcmp(optarg, "raw"))
                cs.fmt = FMT_RAW;
            else if (!strcmp(optarg, "json"))
                cs.fmt = FMT_JSON;
            else
                return cli_usage_error("consume", "--format must be value, raw or json (got '%s')",
                                       optarg);
            break;
        case OPT_JSON:
            cs.fmt = FMT_JSON;
            break;
        case 'q':
            c->quiet = true;
            break;
        case 'h':
            fputs(consume_help, stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_error("consume", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("consume", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!cs.topic)
        return cli_usage_error("consume", "which topic? (-t TOPIC)");
    if (optind < argc)
        return cli_usage_error("consume", "unexpected argument '%s'", argv[optind]);
    if (nstart > 1)
        return cli_usage_error("consume", "--from-beginning, --offset, --since and --at exclude "
                                          "each other");
    if (group && nonly)
        return cli_usage_error("consume", "-p and -g exclude each other: the group assigns the "
                                          "partitions");
    if (c->json)
        cs.fmt = FMT_JSON;

    struct sl_err err = {{0}};
    struct kc_meta meta = {0};
    const struct kc_meta_topic *t;
    struct kc_fetcher f;
    kc_fetcher_init(&f, &c->cl);
    struct kc_member m;
    bool in_group = false;
    memset(&m, 0, sizeof(m));
    sl_buf_init(&cs.out);
    struct kc_offset_query *q = NULL;
    int64_t *start = NULL, *end = NULL;
    int64_t committed_at = 0; /* records printed at the last commit */
    struct cli_progress prog;
    cli_progress_init(&prog, false);
    int rc = kc_client_topic(&c->cl, cs.topic, &meta, &t, &err);
    if (rc != 0)
        goto out;
    if (group) {
        if (kc_member_init(&m, &c->cl, group, &cs.topic, 1, &mo) != 0) {
            rc = sl_err_set(&err, -ENOMEM, "out of memory");
            goto out;
        }
        in_group = true;
        if ((rc = group_assign(&cs, &m, &f, &so, follow, &err)) != 0)
            goto out;
    } else {
        size_t n = nonly ? nonly : (size_t)t->nparts;
        q = sl_calloc(n, sizeof(*q));
        start = sl_calloc(n, sizeof(int64_t));
        end = sl_calloc(n, sizeof(int64_t));
        if (!q || !start || !end) {
            rc = sl_err_set(&err, -ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            int32_t p = nonly ? only[i] : t->parts[i].index;
            q[i].partition = p;
            q[i].leader = -2;
            for (int32_t k = 0; k < t->nparts; k++)
                if (t->parts[k].index == p)
                    q[i].leader = t->parts[k].leader;
            if (q[i].leader == -2) {
                rc = sl_err_set(&err, KC_ENOTFOUND, "topic '%s' has no partition %d (it has %d)",
                                cs.topic, p, t->nparts);
                goto out;
            }
        }
        if ((rc = resolve(c, cs.topic, q, n, &so, start, end, &err)) != 0)
            goto out;
        if (fill(&f, cs.topic, q, n, start, end, follow) != 0) {
            rc = sl_err_set(&err, -ENOMEM, "out of memory");
            goto out;
        }
    }

    cli_progress_init(&prog, c->err_tty && !c->out_tty && !c->quiet);
    while (!cli_stop) {
        if (!follow && kc_fetcher_done(&f) && !in_group)
            break;
        if (!follow && in_group && kc_fetcher_done(&f))
            break;
        int polled = kc_fetcher_poll(&f, on_record, &cs, &err);
        if (polled < 0 && polled != -EINTR) {
            rc = polled;
            break;
        }
        if ((rc = flush_out(&cs, &err)) != 0)
            break;
        if (in_group && cs.printed != committed_at) {
            /* Commit what was printed (and flushed): the next member resumes after it. */
            struct kc_tplist pos = {0};
            rc = positions(&f, &pos) ? sl_err_set(&err, -ENOMEM, "out of memory")
                                     : kc_member_commit(&m, &pos, &err);
            kc_tplist_fini(&pos);
            if (rc == 0)
                committed_at = cs.printed;
        }
        if (in_group && rc == 0)
            rc = kc_member_heartbeat(&m, &err);
        if (in_group && rc == KC_EREJOIN) {
            rc = group_assign(&cs, &m, &f, &so, follow, &err);
            committed_at = -1; /* commit the new generation's positions next round */
        }
        if (rc != 0)
            break;
        double secs = (double)(kc_now_ms() - prog.start_ms) / 1000.0;
        cli_progress_show(&prog, false, "%s: %lld records, %.0f records/s, lag %lld", cs.topic,
                          (long long)cs.printed, secs > 0 ? (double)cs.printed / secs : 0,
                          (long long)lag_of(&f));
        if (polled == 1 || polled == -EINTR)
            break; /* -n reached, or a signal */
    }
    if (rc == -EINTR && cli_stop)
        rc = 0; /* Ctrl-C or SIGTERM during a rejoin: a normal end (everything printed was
                 * committed after its round) */
    cli_progress_end(&prog);
    if (rc == 0 && prog.on)
        fprintf(stderr, "%s: %lld records\n", cs.topic, (long long)cs.printed);
out:
    if (in_group) {
        struct sl_err e2 = {{0}};
        if (m.generation >= 0 && !cs.write_failed && rc != KC_EREJOIN &&
            cs.printed != committed_at) {
            struct kc_tplist pos = {0};
            int crc = positions(&f, &pos) ? -ENOMEM : kc_member_commit(&m, &pos, &e2);
            kc_tplist_fini(&pos);
            if (crc != 0 && rc == 0) {
                rc = crc;
                err = e2;
            }
        }
        if (kc_member_leave(&m, &e2) != 0)
            fprintf(stderr, "sluice: leaving group '%s': %s\n", group, e2.msg);
        kc_member_fini(&m);
    }
    sl_free(q);
    sl_free(start);
    sl_free(end);
    kc_fetcher_fini(&f);
    kc_meta_fini(&meta);
    sl_buf_fini(&cs.out);
    return rc ? cli_fail(rc, &err) : CLI_EXIT_OK;
}
