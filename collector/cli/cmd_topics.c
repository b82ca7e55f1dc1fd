/* sluice topics list|describe|create|delete: topic administration and offsets at a glance. */
#include "collector/cli/cli.h"

#include "collector/cli/kc_admin.h"
#include "collector/cli/kc_describe.h"
#include "common/mem.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char topics_help[] =
    "Usage: sluice [-b HOST:PORT] topics list [--json]\n"
    "       sluice [-b HOST:PORT] topics describe TOPIC... [--json]\n"
    "       sluice [-b HOST:PORT] topics create TOPIC... [-p PARTITIONS] [-r REPLICAS]\n"
    "                             [--config NAME=VALUE]...\n"
    "       sluice [-b HOST:PORT] topics delete TOPIC...\n"
    "\n"
    "  list       every topic: partitions, records held, earliest and latest record offsets\n"
    "  describe   per partition: leader, start offset (oldest kept), end offset (next to be\n"
    "             written), records held, bytes on disk (DescribeLogDirs); per topic: retention\n"
    "             and segment settings (DescribeConfigs). A broker without those APIs is\n"
    "             named on stderr and the rest is shown\n"
    "  create     new topics; -p defaults to the collector's partitions setting, -r to 1\n"
    "  delete     removes topics and every record in them\n"
    "\n"
    "  --json     one JSON document on stdout instead of a table\n";

/* Start and end offsets of every partition of t; q gets t->nparts entries (owned by caller). */
static int topic_offsets(struct cli *c, const struct kc_meta_topic *t, int64_t *start, int64_t *end,
                         struct sl_err *err)
{
    size_t n = (size_t)t->nparts;
    struct kc_offset_query *q = sl_calloc(n ? n : 1, sizeof(*q));
    if (!q)
        return sl_err_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < n; i++)
            q[i] = (struct kc_offset_query){.partition = t->parts[i].index,
                                            .leader = t->parts[i].leader,
                                            .timestamp =
                                                pass == 0 ? KC_OFFSET_EARLIEST : KC_OFFSET_LATEST};
        rc = kc_list_offsets(&c->cl, t->name, q, n, err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            (pass == 0 ? start : end)[i] = q[i].error_code == KAFKA_E_NONE ? q[i].offset : -1;
    }
    sl_free(q);
    return rc;
}

static int cmp_topic(const void *a, const void *b)
{
    return strcmp(((const struct kc_meta_topic *)a)->name, ((const struct kc_meta_topic *)b)->name);
}

static int topics_list(struct cli *c, struct sl_err *err)
{
    struct kc_meta m = {0};
    int rc = kc_client_metadata(&c->cl, NULL, 0, true, &m, err);
    if (rc != 0) {
        kc_meta_fini(&m);
        return rc;
    }
    if (m.ntopics > 1)
        qsort(m.topics, m.ntopics, sizeof(*m.topics), cmp_topic);
    static const char *const head[] = {"TOPIC", "PARTITIONS", "RECORDS"};
    struct cli_table tab;
    cli_table_init(&tab, head, 3);
    struct sl_buf js;
    sl_buf_init(&js);
    sl_buf_append_str(&js, "[");
    for (size_t i = 0; i < m.ntopics && rc == 0; i++) {
        const struct kc_meta_topic *t = &m.topics[i];
        size_t n = (size_t)t->nparts;
        int64_t *start = sl_calloc(n ? n : 1, sizeof(int64_t));
        int64_t *end = sl_calloc(n ? n : 1, sizeof(int64_t));
        if (!start || !end)
            rc = sl_err_set(err, -ENOMEM, "out of memory");
        if (rc == 0)
            rc = topic_offsets(c, t, start, end, err);
        int64_t records = 0;
        for (size_t p = 0; rc == 0 && p < n; p++)
            if (start[p] >= 0 && end[p] >= start[p])
                records += end[p] - start[p];
        sl_free(start);
        sl_free(end);
        if (rc != 0)
            break;
        char np[16], nr[24];
        snprintf(np, sizeof(np), "%d", t->nparts);
        snprintf(nr, sizeof(nr), "%lld", (long long)records);
        cli_table_row(&tab, (const char *const[]){t->name, np, nr});
        sl_buf_append_str(&js, i ? ",{\"topic\":" : "{\"topic\":");
        cli_json_str(&js, t->name, strlen(t->name));
        sl_buf_printf(&js, ",\"partitions\":%d,\"records\":%lld}", t->nparts, (long long)records);
    }
    sl_buf_append_str(&js, "]\n");
    rc = cli_output(c, &tab, &js, rc, err);
    sl_buf_fini(&js);
    cli_table_fini(&tab);
    kc_meta_fini(&m);
    return rc;
}

/* Sizes of t's partitions from each leader's DescribeLogDirs; -1 where unknown. A broker
 * that does not serve the API is reported once on stderr and leaves its sizes unknown. */
static int topic_sizes(struct cli *c, const struct kc_meta_topic *t, int64_t *sizes, bool *warned,
                       struct sl_err *err)
{
    size_t n = (size_t)t->nparts;
    int32_t *parts = sl_calloc(n ? n : 1, sizeof(*parts));
    int64_t *got = sl_calloc(n ? n : 1, sizeof(*got));
    if (!parts || !got) {
        sl_free(parts);
        sl_free(got);
        return sl_err_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        sizes[i] = -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int32_t leader = t->parts[i].leader;
        bool asked = leader < 0;
        for (size_t j = 0; j < i && !asked; j++)
            asked = t->parts[j].leader == leader;
        if (asked)
            continue;
        size_t np = 0;
        for (size_t j = i; j < n; j++)
            if (t->parts[j].leader == leader)
                parts[np++] = t->parts[j].index;
        for (size_t j = 0; j < np; j++)
            got[j] = -1;
        struct sl_err e = {{0}};
        rc = kc_log_dirs(&c->cl, leader, t->name, parts, np, got, &e);
        if (rc == SL_EUNSUP) {
            if (!*warned)
                fprintf(stderr, "sluice: %s: partition sizes not shown\n", e.msg);
            *warned = true;
            rc = 0;
            continue;
        }
        if (rc != 0) {
            *err = e;
            break;
        }
        for (size_t j = 0, k = 0; j < n && k < np; j++)
            if (t->parts[j].leader == leader)
                sizes[j] = got[k++];
    }
    sl_free(parts);
    sl_free(got);
    return rc;
}

/* t's retention settings into cfg (found false for each when the broker cannot say). */
static int topic_configs(struct cli *c, const char *topic, struct kc_topic_config *cfg,
                         bool *warned, struct sl_err *err)
{
    struct sl_err e = {{0}};
    int rc = kc_describe_configs(&c->cl, topic, cfg, &e);
    if (rc == SL_EUNSUP) {
        if (!*warned)
            fprintf(stderr, "sluice: %s: topic settings not shown\n", e.msg);
        *warned = true;
        for (size_t i = 0; i < KC_TOPIC_NCONFIGS; i++)
            cfg[i] = (struct kc_topic_config){.found = false};
        return 0;
    }
    if (rc != 0)
        *err = e;
    return rc;
}

static int topics_describe(struct cli *c, char **names, int n, struct sl_err *err)
{
    static const char *const head[] = {"TOPIC", "PARTITION", "LEADER", "START",
                                       "END",   "RECORDS",   "SIZE"};
    static const char *const chead[] = {"TOPIC", "RETENTION.MS", "RETENTION.BYTES", "SEGMENT.BYTES",
                                        "CLEANUP.POLICY"};
    struct cli_table tab, ctab;
    cli_table_init(&tab, head, 7);
    cli_table_init(&ctab, chead, 1 + KC_TOPIC_NCONFIGS);
    struct sl_buf js;
    sl_buf_init(&js);
    sl_buf_append_str(&js, "[");
    bool warned_sizes = false, warned_configs = false, any_configs = false;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct kc_meta m = {0};
        const struct kc_meta_topic *t;
        rc = kc_client_topic(&c->cl, names[i], &m, &t, err);
        size_t np = rc == 0 ? (size_t)t->nparts : 0;
        int64_t *start = sl_calloc(np ? np : 1, sizeof(int64_t));
        int64_t *end = sl_calloc(np ? np : 1, sizeof(int64_t));
        int64_t *size = sl_calloc(np ? np : 1, sizeof(int64_t));
        struct kc_topic_config cfg[KC_TOPIC_NCONFIGS];
        if (rc == 0 && (!start || !end || !size))
            rc = sl_err_set(err, -ENOMEM, "out of memory");
        if (rc == 0)
            rc = topic_offsets(c, t, start, end, err);
        if (rc == 0)
            rc = topic_sizes(c, t, size, &warned_sizes, err);
        if (rc == 0)
            rc = topic_configs(c, t->name, cfg, &warned_configs, err);
        if (rc == 0) {
            sl_buf_append_str(&js, i ? ",{\"topic\":" : "{\"topic\":");
            cli_json_str(&js, t->name, strlen(t->name));
            sl_buf_append_str(&js, ",\"partitions\":[");
            for (size_t p = 0; p < np; p++) {
                const struct kc_meta_part *mp = &t->parts[p];
                int64_t recs = start[p] >= 0 && end[p] >= start[p] ? end[p] - start[p] : 0;
                char pi[16], ld[16], st[24], en[24], rs[24], sz[24];
                snprintf(pi, sizeof(pi), "%d", mp->index);
                snprintf(ld, sizeof(ld), "%d", mp->leader);
                snprintf(st, sizeof(st), "%lld", (long long)start[p]);
                snprintf(en, sizeof(en), "%lld", (long long)end[p]);
                snprintf(rs, sizeof(rs), "%lld", (long long)recs);
                if (size[p] >= 0)
                    snprintf(sz, sizeof(sz), "%lld", (long long)size[p]);
                else
                    snprintf(sz, sizeof(sz), "-");
                cli_table_row(&tab, (const char *const[]){t->name, pi, ld, st, en, rs, sz});
                sl_buf_printf(&js,
                              "%s{\"partition\":%d,\"leader\":%d,\"start\":%lld,\"end\":%lld,"
                              "\"records\":%lld,\"size\":",
                              p ? "," : "", mp->index, mp->leader, (long long)start[p],
                              (long long)end[p], (long long)recs);
                if (size[p] >= 0)
                    sl_buf_printf(&js, "%lld", (long long)size[p]);
                else
                    sl_buf_append_str(&js, "null");
                sl_buf_append_str(&js, ",\"error\":");
                if (mp->error_code == KAFKA_E_NONE)
                    sl_buf_append_str(&js, "null}");
                else
                    sl_buf_printf(&js, "\"%s\"}", kc_err_name(mp->error_code));
            }
            /* "configs": {name: {"value": "...", "default": bool}}; null when not known. */
            sl_buf_append_str(&js, "],\"configs\":");
            const char *cells[1 + KC_TOPIC_NCONFIGS] = {t->name};
            bool known = false;
            for (size_t k = 0; k < KC_TOPIC_NCONFIGS; k++) {
                cells[1 + k] = cfg[k].found ? cfg[k].value : "-";
                known = known || cfg[k].found;
            }
            if (known) {
                any_configs = true;
                cli_table_row(&ctab, cells);
                sl_buf_append_str(&js, "{");
                bool first = true;
                for (size_t k = 0; k < KC_TOPIC_NCONFIGS; k++) {
                    if (!cfg[k].found)
                        continue;
                    sl_buf_append_str(&js, first ? "" : ",");
                    cli_json_str(&js, kc_topic_config_names[k], strlen(kc_topic_config_names[k]));
                    sl_buf_append_str(&js, ":{\"value\":");
                    cli_json_str(&js, cfg[k].value, strlen(cfg[k].value));
                    sl_buf_printf(&js, ",\"default\":%s}", cfg[k].is_default ? "true" : "false");
                    first = false;
                }
                sl_buf_append_str(&js, "}}");
            } else {
                sl_buf_append_str(&js, "null}");
            }
        }
        sl_free(start);
        sl_free(end);
        sl_free(size);
        kc_meta_fini(&m);
    }
    sl_buf_append_str(&js, "]\n");
    if (rc == 0 && ctab.err)
        rc = sl_err_set(err, -ENOMEM, "out of memory");
    rc = cli_output(c, &tab, &js, rc, err);
    if (rc == 0 && !c->json && any_configs) {
        printf("\n");
        cli_table_print(&ctab, stdout);
    }
    sl_buf_fini(&js);
    cli_table_fini(&tab);
    cli_table_fini(&ctab);
    return rc;
}

static int topics_create(struct cli *c, char **names, int n, int32_t partitions,
                         int16_t replication, const char *const *configs, size_t nconfigs,
                         struct sl_err *err)
{
    struct kc_new_topic *t = sl_calloc((size_t)n, sizeof(*t));
    if (!t)
        return sl_err_set(err, -ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        t[i] = (struct kc_new_topic){.name = names[i],
                                     .partitions = partitions,
                                     .replication = replication,
                                     .configs = configs,
                                     .nconfigs = nconfigs};
    int rc = kc_create_topics(&c->cl, t, (size_t)n, false, err);
    int worst = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (t[i].error_code == KAFKA_E_NONE) {
            if (c->json)
                printf("{\"topic\":\"%s\",\"created\":true}\n", names[i]); /* a valid name */
            else
                printf("created topic %s\n", names[i]);
            continue;
        }
        /* The broker's message says it best when there is one ("topic 'x' already exists"). */
        fprintf(stderr, "sluice: creating topic '%s': %s (%s)\n", names[i],
                t[i].message[0] ? t[i].message : kc_err_name(t[i].error_code),
                kc_err_name(t[i].error_code));
        worst = KC_EKAFKA;
    }
    sl_free(t);
    if (rc == 0 && worst)
        return sl_err_set(err, worst, "%s", "");
    return rc;
}

static int topics_delete(struct cli *c, char **names, int n, struct sl_err *err)
{
    int16_t *codes = sl_calloc((size_t)n, sizeof(*codes));
    if (!codes)
        return sl_err_set(err, -ENOMEM, "out of memory");
    int rc = kc_delete_topics(&c->cl, (const char *const *)names, (size_t)n, codes, err);
    int worst = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (codes[i] == KAFKA_E_NONE) {
            printf("deleted topic %s\n", names[i]);
            continue;
        }
        struct sl_err e;
        int k = kc_err_kafka(&e, codes[i], "deleting topic '%s'", names[i]);
        if (codes[i] == KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION)
            snprintf(e.msg, sizeof(e.msg), "topic '%s' does not exist", names[i]);
        fprintf(stderr, "sluice: %s\n", e.msg);
        if (worst != KC_EKAFKA)
            worst = k;
    }
    sl_free(codes);
    if (rc == 0 && worst)
        return sl_err_set(err, worst, "%s", "");
    return rc;
}

int cmd_topics(struct cli *c, int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_CONFIG };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"partitions", required_argument, NULL, 'p'},
        {"replication-factor", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int32_t partitions = -1;
    int16_t replication = -1;
    const char *configs[64];
    size_t nconfigs = 0;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":p:r:h", longopts, NULL)) != -1) {
        char *end;
        long v;
        switch (ch) {
        case OPT_JSON:
            c->json = true;
            break;
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 100000)
                return cli_usage_error("topics", "-p: partitions must be 1 to 100000 (got '%s')",
                                       optarg);
            partitions = (int32_t)v;
            break;
        case 'r':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 32767)
                return cli_usage_error("topics", "-r: replicas must be 1 to 32767 (got '%s')",
                                       optarg);
            replication = (int16_t)v;
            break;
        case OPT_CONFIG:
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return cli_usage_error("topics", "--config wants NAME=VALUE (got '%s')", optarg);
            if (nconfigs == SL_ARRAY_LEN(configs))
                return cli_usage_error("topics", "at most %zu --config", SL_ARRAY_LEN(configs));
            configs[nconfigs++] = optarg;
            break;
        case 'h':
            fputs(topics_help, stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_error("topics", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("topics", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("topics", "which action: list, describe, create or delete?");
    const char *action = argv[optind++];
    char **names = argv + optind;
    int n = argc - optind;
    struct sl_err err = {{0}};
    int rc;
    bool needs_names = strcmp(action, "list") != 0;
    if (!needs_names && n > 0)
        return cli_usage_error("topics", "list takes no topic names");
    if (needs_names && n == 0 &&
        (!strcmp(action, "describe") || !strcmp(action, "create") || !strcmp(action, "delete")))
        return cli_usage_error("topics", "%s needs at least one topic name", action);
    if ((partitions != -1 || replication != -1 || nconfigs) && strcmp(action, "create") != 0)
        return cli_usage_error("topics", "-p, -r and --config are for create");
    if (!strcmp(action, "list"))
        rc = topics_list(c, &err);
    else if (!strcmp(action, "describe"))
        rc = topics_describe(c, names, n, &err);
    else if (!strcmp(action, "create"))
        rc = topics_create(c, names, n, partitions, replication, configs, nconfigs, &err);
    else if (!strcmp(action, "delete"))
        rc = topics_delete(c, names, n, &err);
    else
        return cli_usage_error("topics", "unknown action '%s' (list, describe, create, delete)",
                               action);
    if (rc != 0 && err.msg[0] == 0)
        return cli_exit_code(rc); /* each failure was reported on its own line */
    return rc ? cli_fail(rc, &err) : CLI_EXIT_OK;
}
