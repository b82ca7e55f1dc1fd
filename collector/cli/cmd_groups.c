/* sluice groups list|describe|reset-offsets: consumer groups, their members, committed offsets
 * and lag. */
#include "collector/cli/cli.h"

#include "collector/cli/kc_admin.h"
#include "collector/cli/kc_group.h"
#include "common/mem.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char groups_help[] =
    "Usage: sluice [-b HOST:PORT] groups list [--json]\n"
    "       sluice [-b HOST:PORT] groups describe GROUP [--json]\n"
    "       sluice [-b HOST:PORT] groups reset-offsets GROUP -t TOPIC [-p N]...\n"
    "                             (--to-earliest | --to-latest | --to-time TIME) [--dry-run]\n"
    "\n"
    "  list           every group: state, protocol, members\n"
    "  describe       the group's state and, per partition, the committed offset, the end\n"
    "                 offset, the lag (end - committed) and the member it is assigned to\n"
    "  reset-offsets  moves the group's committed offsets of TOPIC (every partition, or those\n"
    "                 given with -p) to the oldest record, the end, or the first record at or\n"
    "                 after TIME (2026-11-22T10:00:00Z, @<ms since the epoch>); the group must\n"
    "                 have no active member. --dry-run shows the new offsets without committing.\n"
    "\n"
    "  --json         one JSON document on stdout instead of a table\n";

/* Partition counts and leaders for the offsets we print lag for. */
static int end_offsets(struct cli *c, struct kc_tplist *l, int64_t *ends, struct sl_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < l->len && rc == 0;) {
        size_t j = i;
        while (j < l->len && strcmp(l->items[j].topic, l->items[i].topic) == 0)
            j++;
        struct kc_meta m = {0};
        const struct kc_meta_topic *t;
        int trc = kc_client_topic(&c->cl, l->items[i].topic, &m, &t, err);
        if (trc == KC_ENOTFOUND) {
            for (size_t k = i; k < j; k++)
                ends[k] = -1; /* deleted since: no end, no lag */
        } else if (trc != 0) {
            rc = trc;
        } else {
            struct kc_offset_query *q = sl_calloc(j - i, sizeof(*q));
            if (!q) {
                rc = sl_err_set(err, -ENOMEM, "out of memory");
            } else {
                for (size_t k = i; k < j; k++) {
                    q[k - i] = (struct kc_offset_query){.partition = l->items[k].partition,
                                                        .leader = -1,
                                                        .timestamp = KC_OFFSET_LATEST};
                    for (int32_t p = 0; p < t->nparts; p++)
                        if (t->parts[p].index == l->items[k].partition)
                            q[k - i].leader = t->parts[p].leader;
                }
                rc = kc_list_offsets(&c->cl, l->items[i].topic, q, j - i, err);
                for (size_t k = i; rc == 0 && k < j; k++)
                    ends[k] = q[k - i].error_code == KAFKA_E_NONE ? q[k - i].offset : -1;
                sl_free(q);
            }
        }
        kc_meta_fini(&m);
        i = j;
    }
    return rc;
}

static int groups_list(struct cli *c, struct sl_err *err)
{
    struct kc_group_info *g = NULL;
    size_t n = 0;
    int rc = kc_list_groups(&c->cl, &g, &n, err);
    static const char *const head[] = {"GROUP", "STATE", "PROTOCOL", "MEMBERS"};
    struct cli_table tab;
    cli_table_init(&tab, head, 4);
    struct sl_buf js;
    sl_buf_init(&js);
    sl_buf_append_str(&js, "[");
    /* Sorted by name, so the output is stable. */
    for (size_t i = 1; rc == 0 && i < n; i++)
        for (size_t k = i; k > 0 && strcmp(g[k - 1].group_id, g[k].group_id) > 0; k--) {
            struct kc_group_info tmp = g[k];
            g[k] = g[k - 1];
            g[k - 1] = tmp;
        }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct kc_group_desc d = {0};
        rc = kc_describe_group(&c->cl, g[i].group_id, &d, err);
        if (rc == 0) {
            char nm[16];
            snprintf(nm, sizeof(nm), "%zu", d.nmembers);
            cli_table_row(&tab, (const char *const[]){g[i].group_id, d.state,
                                                      d.protocol[0] ? d.protocol : "-", nm});
            sl_buf_append_str(&js, i ? ",{\"group\":" : "{\"group\":");
            cli_json_str(&js, g[i].group_id, strlen(g[i].group_id));
            sl_buf_append_str(&js, ",\"state\":");
            cli_json_str(&js, d.state, strlen(d.state));
            sl_buf_append_str(&js, ",\"protocol_type\":");
            cli_json_str(&js, g[i].protocol_type, strlen(g[i].protocol_type));
            sl_buf_append_str(&js, ",\"protocol\":");
            cli_json_str(&js, d.protocol, strlen(d.protocol));
            sl_buf_printf(&js, ",\"members\":%zu}", d.nmembers);
        }
        kc_group_desc_fini(&d);
    }
    sl_buf_append_str(&js, "]\n");
    rc = cli_output(c, &tab, &js, rc, err);
    sl_buf_fini(&js);
    cli_table_fini(&tab);
    kc_group_infos_free(g, n);
    return rc;
}

static const struct kc_dmember *owner(const struct kc_group_desc *d, const char *topic,
                                      int32_t partition)
{
    for (size_t i = 0; i < d->nmembers; i++)
        if (kc_tplist_find(&d->members[i].assigned, topic, partition))
            return &d->members[i];
    return NULL;
}

/* An offset for a table cell: the number, or "-" when there is none (negative). */
static void cell_off(char *buf, size_t size, int64_t v)
{
    if (v >= 0)
        snprintf(buf, size, "%lld", (long long)v);
    else
        snprintf(buf, size, "-");
}

/* An offset for JSON: the number, or null. */
static void json_off(struct sl_buf *b, int64_t v)
{
    if (v >= 0)
        sl_buf_printf(b, "%lld", (long long)v);
    else
        sl_buf_append_str(b, "null");
}

static int groups_describe(struct cli *c, const char *group, struct sl_err *err)
{
    struct kc_group_desc d = {0};
    struct kc_tplist offs = {0};
    int64_t *ends = NULL;
    int rc = kc_describe_group(&c->cl, group, &d, err);
    if (rc == 0 && d.error_code != KAFKA_E_NONE)
        rc = kc_err_kafka(err, d.error_code, "describing group '%s'", group);
    if (rc == 0)
        rc = kc_group_committed_all(&c->cl, group, &offs, err);
    /* Partitions assigned but never committed are shown too. */
    for (size_t i = 0; rc == 0 && i < d.nmembers; i++) {
        const struct kc_tplist *a = &d.members[i].assigned;
        for (size_t k = 0; rc == 0 && k < a->len; k++)
            if (!kc_tplist_find(&offs, a->items[k].topic, a->items[k].partition) &&
                kc_tplist_add(&offs, a->items[k].topic, strlen(a->items[k].topic),
                              a->items[k].partition, -1) != 0)
                rc = sl_err_set(err, -ENOMEM, "out of memory");
    }
    if (rc == 0 && (!strcmp(d.state, "Dead") || !d.state[0]) && offs.len == 0)
        rc = sl_err_set(err, KC_ENOTFOUND, "group '%s' does not exist", group);
    kc_tplist_sort(&offs);
    if (rc == 0 && !(ends = sl_calloc(offs.len ? offs.len : 1, sizeof(int64_t))))
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = end_offsets(c, &offs, ends, err);
    if (rc != 0)
        goto out;

    struct sl_buf js;
    sl_buf_init(&js);
    sl_buf_append_str(&js, "{\"group\":");
    cli_json_str(&js, group, strlen(group));
    sl_buf_append_str(&js, ",\"state\":");
    cli_json_str(&js, d.state, strlen(d.state));
    sl_buf_append_str(&js, ",\"protocol_type\":");
    cli_json_str(&js, d.protocol_type, strlen(d.protocol_type));
    sl_buf_append_str(&js, ",\"protocol\":");
    cli_json_str(&js, d.protocol, strlen(d.protocol));
    sl_buf_append_str(&js, ",\"members\":[");
    for (size_t i = 0; i < d.nmembers; i++) {
        const struct kc_dmember *mb = &d.members[i];
        sl_buf_append_str(&js, i ? ",{\"member_id\":" : "{\"member_id\":");
        cli_json_str(&js, mb->member_id, strlen(mb->member_id));
        sl_buf_append_str(&js, ",\"client_id\":");
        cli_json_str(&js, mb->client_id, strlen(mb->client_id));
        sl_buf_append_str(&js, ",\"client_host\":");
        cli_json_str(&js, mb->client_host, strlen(mb->client_host));
        sl_buf_append_str(&js, ",\"assignment\":[");
        for (size_t k = 0; k < mb->assigned.len; k++) {
            sl_buf_append_str(&js, k ? ",{\"topic\":" : "{\"topic\":");
            cli_json_str(&js, mb->assigned.items[k].topic, strlen(mb->assigned.items[k].topic));
            sl_buf_printf(&js, ",\"partition\":%d}", mb->assigned.items[k].partition);
        }
        sl_buf_append_str(&js, "]}");
    }
    sl_buf_append_str(&js, "],\"offsets\":[");
    static const char *const head[] = {"TOPIC", "PARTITION", "COMMITTED", "END",
                                       "LAG",   "MEMBER",    "CLIENT",    "HOST"};
    struct cli_table tab;
    cli_table_init(&tab, head, 8);
    int64_t total = 0;
    for (size_t i = 0; i < offs.len; i++) {
        const struct kc_tp *tp = &offs.items[i];
        const struct kc_dmember *mb = owner(&d, tp->topic, tp->partition);
        int64_t lag = -1;
        if (ends[i] >= 0)
            lag = tp->offset >= 0 ? SL_MAX(ends[i] - tp->offset, 0) : ends[i];
        if (lag > 0)
            total += lag;
        char pi[16], co[24], en[24], lg[24];
        snprintf(pi, sizeof(pi), "%d", tp->partition);
        cell_off(co, sizeof(co), tp->offset);
        cell_off(en, sizeof(en), ends[i]);
        cell_off(lg, sizeof(lg), lag);
        cli_table_row(&tab,
                      (const char *const[]){tp->topic, pi, co, en, lg, mb ? mb->member_id : "-",
                                            mb ? mb->client_id : "-", mb ? mb->client_host : "-"});
        sl_buf_append_str(&js, i ? ",{\"topic\":" : "{\"topic\":");
        cli_json_str(&js, tp->topic, strlen(tp->topic));
        sl_buf_printf(&js, ",\"partition\":%d,\"committed\":", tp->partition);
        json_off(&js, tp->offset);
        sl_buf_append_str(&js, ",\"end\":");
        json_off(&js, ends[i]);
        sl_buf_append_str(&js, ",\"lag\":");
        json_off(&js, lag);
        sl_buf_append_str(&js, ",\"member_id\":");
        if (mb)
            cli_json_str(&js, mb->member_id, strlen(mb->member_id));
        else
            sl_buf_append_str(&js, "null");
        sl_buf_append_str(&js, "}");
    }
    sl_buf_printf(&js, "],\"lag\":%lld}\n", (long long)total);
    if (tab.err || sl_buf_error(&js)) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    } else if (c->json) {
        fwrite(js.data, 1, js.len, stdout);
    } else {
        printf("group %s: %s, %zu member%s, protocol %s, total lag %lld\n\n", group, d.state,
               d.nmembers, d.nmembers == 1 ? "" : "s", d.protocol[0] ? d.protocol : "-",
               (long long)total);
        cli_table_print(&tab, stdout);
    }
    cli_table_fini(&tab);
    sl_buf_fini(&js);
out:
    sl_free(ends);
    kc_tplist_fini(&offs);
    kc_group_desc_fini(&d);
    return rc;
}

enum reset_to { RESET_NONE, RESET_EARLIEST, RESET_LATEST, RESET_TIME };

static int groups_reset(struct cli *c, const char *group, const char *topic, const int32_t *only,
                        size_t nonly, enum reset_to to, int64_t when, bool dry_run,
                        struct sl_err *err)
{
    struct kc_group_desc d = {0};
    struct kc_meta m = {0};
    struct kc_tplist now = {0}, want = {0};
    struct kc_offset_query *q = NULL;
    const struct kc_meta_topic *t;
    int rc = kc_describe_group(&c->cl, group, &d, err);
    if (rc == 0 && d.error_code != KAFKA_E_NONE && d.error_code != KAFKA_E_GROUP_ID_NOT_FOUND)
        rc = kc_err_kafka(err, d.error_code, "describing group '%s'", group);
    if (rc == 0 && d.nmembers > 0)
        rc = sl_err_set(err, KC_EKAFKA,
                        "group '%s' has %zu active member%s (state %s): stop "
                        "them first, offsets are only reset in an empty group",
                        group, d.nmembers, d.nmembers == 1 ? "" : "s", d.state);
    if (rc == 0)
        rc = kc_client_topic(&c->cl, topic, &m, &t, err);
    if (rc != 0)
        goto out;
    size_t n = nonly ? nonly : (size_t)t->nparts;
    if (!(q = sl_calloc(n, sizeof(*q)))) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        q[i].partition = nonly ? only[i] : t->parts[i].index;
        q[i].leader = -2;
        for (int32_t k = 0; k < t->nparts; k++)
            if (t->parts[k].index == q[i].partition)
                q[i].leader = t->parts[k].leader;
        if (q[i].leader == -2) {
            rc = sl_err_set(err, KC_ENOTFOUND, "topic '%s' has no partition %d (it has %d)", topic,
                            q[i].partition, t->nparts);
            goto out;
        }
        q[i].timestamp = to == RESET_EARLIEST ? KC_OFFSET_EARLIEST
                         : to == RESET_LATEST ? KC_OFFSET_LATEST
                                              : when;
        if (kc_tplist_add(&now, topic, strlen(topic), q[i].partition, -1) != 0) {
            rc = sl_err_set(err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = kc_list_offsets(&c->cl, topic, q, n, err)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (q[i].error_code != KAFKA_E_NONE) {
            rc = kc_err_kafka(err, q[i].error_code, "offsets of %s-%d", topic, q[i].partition);
            goto out;
        }
        if (q[i].offset < 0) {
            /* Nothing at or after that time: the end, as Kafka's tool does. */
            struct kc_offset_query e = q[i];
            e.timestamp = KC_OFFSET_LATEST;
            if ((rc = kc_list_offsets(&c->cl, topic, &e, 1, err)) != 0)
                goto out;
            q[i].offset = e.offset;
        }
        if (kc_tplist_add(&want, topic, strlen(topic), q[i].partition, q[i].offset) != 0) {
            rc = sl_err_set(err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = kc_group_committed(&c->cl, group, &now, err)) != 0)
        goto out;
    if (!dry_run && (rc = kc_group_commit(&c->cl, group, -1, "", &want, err)) != 0)
        goto out;
    kc_tplist_sort(&want);
    static const char *const head[] = {"TOPIC", "PARTITION", "OLD", "NEW"};
    struct cli_table tab;
    cli_table_init(&tab, head, 4);
    struct sl_buf js;
    sl_buf_init(&js);
    sl_buf_append_str(&js, "{\"group\":");
    cli_json_str(&js, group, strlen(group));
    sl_buf_printf(&js, ",\"dry_run\":%s,\"offsets\":[", dry_run ? "true" : "false");
    for (size_t i = 0; i < want.len; i++) {
        const struct kc_tp *w = &want.items[i];
        const struct kc_tp *o = kc_tplist_find(&now, w->topic, w->partition);
        int64_t old = o ? o->offset : -1;
        char pi[16], os[24], ns[24];
        snprintf(pi, sizeof(pi), "%d", w->partition);
        cell_off(os, sizeof(os), old);
        snprintf(ns, sizeof(ns), "%lld", (long long)w->offset);
        cli_table_row(&tab, (const char *const[]){w->topic, pi, os, ns});
        sl_buf_append_str(&js, i ? ",{\"topic\":" : "{\"topic\":");
        cli_json_str(&js, w->topic, strlen(w->topic));
        sl_buf_printf(&js, ",\"partition\":%d,\"old\":", w->partition);
        json_off(&js, old);
        sl_buf_printf(&js, ",\"new\":%lld}", (long long)w->offset);
    }
    sl_buf_append_str(&js, "]}\n");
    if (tab.err || sl_buf_error(&js)) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    } else if (c->json) {
        fwrite(js.data, 1, js.len, stdout);
    } else {
        cli_table_print(&tab, stdout);
        if (dry_run)
            printf("(dry run: nothing committed)\n");
    }
    cli_table_fini(&tab);
    sl_buf_fini(&js);
out:
    sl_free(q);
    kc_tplist_fini(&now);
    kc_tplist_fini(&want);
    kc_meta_fini(&m);
    kc_group_desc_fini(&d);
    return rc;
}

int cmd_groups(struct cli *c, int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_EARLIEST, OPT_LATEST, OPT_TIME, OPT_DRY };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"topic", required_argument, NULL, 't'},
        {"partition", required_argument, NULL, 'p'},
        {"to-earliest", no_argument, NULL, OPT_EARLIEST},
        {"to-latest", no_argument, NULL, OPT_LATEST},
        {"to-time", required_argument, NULL, OPT_TIME},
        {"dry-run", no_argument, NULL, OPT_DRY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *topic = NULL;
    int32_t only[256];
    size_t nonly = 0;
    enum reset_to to = RESET_NONE;
    int nto = 0;
    int64_t when = 0;
    bool dry_run = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":t:p:h", longopts, NULL)) != -1) {
        char *end;
        long v;
        struct sl_err e;
        switch (ch) {
        case OPT_JSON:
            c->json = true;
            break;
        case 't':
            topic = optarg;
            break;
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > INT32_MAX)
                return cli_usage_error("groups", "-p: not a partition number: '%s'", optarg);
            if (nonly == SL_ARRAY_LEN(only))
                return cli_usage_error("groups", "at most %zu -p", SL_ARRAY_LEN(only));
            only[nonly++] = (int32_t)v;
            break;
        case OPT_EARLIEST:
            to = RESET_EARLIEST;
            nto++;
            break;
        case OPT_LATEST:
            to = RESET_LATEST;
            nto++;
            break;
        case OPT_TIME:
            if (cli_parse_time(optarg, &when, &e) != 0)
                return cli_usage_error("groups", "--to-time %s", e.msg);
            to = RESET_TIME;
            nto++;
            break;
        case OPT_DRY:
            dry_run = true;
            break;
        case 'h':
            fputs(groups_help, stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_error("groups", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("groups", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("groups", "which action: list, describe or reset-offsets?");
    const char *action = argv[optind++];
    int nargs = argc - optind;
    struct sl_err err = {{0}};
    int rc;
    bool reset = !strcmp(action, "reset-offsets");
    if (!reset && (topic || nonly || nto || dry_run))
        return cli_usage_error("groups", "-t, -p, --to-* and --dry-run are for reset-offsets");
    if (!strcmp(action, "list")) {
        if (nargs)
            return cli_usage_error("groups", "list takes no argument");
        rc = groups_list(c, &err);
    } else if (!strcmp(action, "describe")) {
        if (nargs != 1)
            return cli_usage_error("groups", "describe takes one GROUP");
        rc = groups_describe(c, argv[optind], &err);
    } else if (reset) {
        if (nargs != 1)
            return cli_usage_error("groups", "reset-offsets takes one GROUP");
        if (!topic)
            return cli_usage_error("groups", "reset-offsets needs -t TOPIC");
        if (nto != 1)
            return cli_usage_error("groups", "reset-offsets needs one of --to-earliest, "
                                             "--to-latest, --to-time TIME");
        rc = groups_reset(c, argv[optind], topic, only, nonly, to, when, dry_run, &err);
    } else {
        return cli_usage_error("groups", "unknown action '%s' (list, describe, reset-offsets)",
                               action);
    }
    return rc ? cli_fail(rc, &err) : CLI_EXIT_OK;
}
