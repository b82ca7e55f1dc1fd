/* sluice: the command line. Global options and configuration are handled here; each command
 * has its own file (cmd_topics.c, cmd_produce.c, cmd_consume.c, cmd_groups.c, sink.c). */
#include "collector/cli/cli.h"
#include "collector/cli/sink.h"
#include "common/conf.h"
#include "common/daemon.h"
#include "common/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cli_conf {
    struct sl_conf_hostports bootstrap;
    char *client_id; /* owned */
    int64_t timeout_ms;
};

static const struct sl_conf_opt cli_opts[] = {
    {.name = "bootstrap",
     .type = SL_CONF_HOSTPORTS,
     .offset = offsetof(struct cli_conf, bootstrap),
     .def = "[127.0.0.1:9092]",
     .port = 9092,
     .min = 1,
     .max = 64,
     .help = "collectors (or Kafka brokers) to bootstrap from"},
    {.name = "client_id",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct cli_conf, client_id),
     .def = "sluice",
     .min = 1,
     .max = 255,
     .help = "client id sent with every request"},
    {.name = "timeout",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct cli_conf, timeout_ms),
     .def = "30s",
     .min = 1,
     .max = 3600000,
     .help = "how long to wait for a collector's answer"},
    {.name = NULL},
};

static const struct sl_conf_section cli_section = {
    .name = "sluice",
    .help = "the sluice command line",
    .opts = cli_opts,
    .size = sizeof(struct cli_conf),
};

static const char cli_embedded[] = "bootstrap: [127.0.0.1:9092]\n";

static const struct sl_prog cli_prog = {
    .name = "sluice",
    .summary = "The Sluice command line.",
    .conf_path = "/etc/sluice/sluice.yaml",
    .embedded = cli_embedded,
    .embedded_name = "<embedded sluice.yaml>",
    .root = &cli_section,
};

static void cli_usage(FILE *fp)
{
    fprintf(fp,
            "Usage: sluice [OPTION]... COMMAND [ARG]...\n"
            "The Sluice command line: talks the Kafka protocol to collectors (or Kafka).\n\n"
            "Commands:\n"
            "  topics list|describe|create|delete   topics, partitions, offsets\n"
            "  produce -t TOPIC [-k KEY]            standard input's lines as records (gzip,\n"
            "                                       acks=all)\n"
            "  consume -t TOPIC [-g GROUP] [-f]     print records (value, raw or json)\n"
            "  groups list|describe|reset-offsets   consumer groups, committed offsets, lag\n"
            "  sink CONFIG.yaml                     load topics into files or PostgreSQL\n"
            "'sluice COMMAND --help' describes a command's options; sluice(1) has it all.\n\n"
            "Options:\n"
            "  -b, --bootstrap HOST:PORT[,...]  collectors to contact (default 127.0.0.1:9092,\n"
            "                                   or $SLUICE_BOOTSTRAP)\n"
            "  -c, --config FILE                configuration (default /etc/sluice/sluice.yaml\n"
            "                                   if it exists)\n"
            "      --check-config               validate the configuration and exit 0 or 1\n"
            "      --timeout DURATION           wait this long for an answer (default 30s)\n"
            "      --json                       JSON output instead of tables\n"
            "  -q, --quiet                      no progress lines\n"
            "      --log-level LEVEL            emerg .. debug\n"
            "  -h, --help                       this help\n"
            "  -V, --version                    print the version\n\n"
            "Tables go to a terminal and JSON with --json; progress lines appear only when\n"
            "standard error is a terminal.\n\n"
            "Exit status:\n"
            "  0  success\n"
            "  1  failure: a request refused or failed, bad data, records not acknowledged,\n"
            "     a configuration file rejected\n"
            "  2  usage error on the command line\n"
            "  3  the collector cannot be reached (refused, unresolvable, no answer in time)\n"
            "  4  the topic, partition or group does not exist\n");
}

int main(int argc, char **argv)
{
    sl_log_init();
    /* A command's own output says what happened: the log is for warnings, and for notes on a
     * terminal (group assignments); --log-level changes that. */
    sl_log_threshold = isatty(STDERR_FILENO) ? SL_LOG_INFO : SL_LOG_WARNING;
    enum { OPT_CHECK = 256, OPT_LOG_LEVEL, OPT_JSON, OPT_TIMEOUT };
    static const struct option longopts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct sl_prog_args args;
    memset(&args, 0, sizeof(args));
    static char bootstrap_set[4096];
    const char *bootstrap = getenv("SLUICE_BOOTSTRAP");
    static char timeout_set[64];
    bool json = false, quiet = false, log_level_set = false;
    int c;
    opterr = 0;
    /* '+': stop at the command, whose own options are its own. */
    while ((c = getopt_long(argc, argv, "+:b:c:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bootstrap = optarg;
            break;
        case 'c':
            args.conf_path = optarg;
            break;
        case OPT_CHECK:
            args.check_config = true;
            break;
        case OPT_LOG_LEVEL:
            log_level_set = true;
            if (sl_log_set_level_name(optarg) != 0) {
                fprintf(stderr, "sluice: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_JSON:
            json = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPT_TIMEOUT: {
            int64_t ms;
            struct sl_err e;
            if (sl_conf_parse_duration(optarg, &ms, &e) != 0 || ms < 1 || ms > 3600000) {
                fprintf(stderr,
                        "sluice: --timeout must be a duration of 1ms to 1h, such as 5s "
                        "(got '%s')\n",
                        optarg);
                return 2;
            }
            /* Through the option table, so it overrides the configuration file's value. */
            snprintf(timeout_set, sizeof(timeout_set), "timeout=%lldms", (long long)ms);
            break;
        }
        case 'h':
            cli_usage(stdout);
            return 0;
        case 'V':
            printf("sluice %s\n", SL_VERSION);
            return 0;
        case ':':
            fprintf(stderr, "sluice: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "sluice: unknown option '%s'; try --help\n", argv[optind - 1]);
            return 2;
        }
    }
    if (bootstrap) {
        /* The flag is a comma-separated list; the option table reads a YAML sequence, and each
         * item is quoted so "[::1]:9092" stays a string. */
        size_t n = (size_t)snprintf(bootstrap_set, sizeof(bootstrap_set), "bootstrap=[");
        for (const char *p = bootstrap; *p && n < sizeof(bootstrap_set) - 8;) {
            size_t len = strcspn(p, ",");
            if (strcspn(p, "\"\\") < len) {
                fprintf(stderr, "sluice: --bootstrap: quotes are not allowed (got '%s')\n",
                        bootstrap);
                return 2;
            }
            n += (size_t)snprintf(bootstrap_set + n, sizeof(bootstrap_set) - n, "%s\"%.*s\"",
                                  p == bootstrap ? "" : ", ", (int)len, p);
            p += len + (p[len] == ',');
        }
        if (n >= sizeof(bootstrap_set) - 8) {
            fprintf(stderr, "sluice: --bootstrap: list too long\n");
            return 2;
        }
        snprintf(bootstrap_set + n, sizeof(bootstrap_set) - n, "]");
        args.sets[args.nsets++] = bootstrap_set;
    }
    if (timeout_set[0])
        args.sets[args.nsets++] = timeout_set;
    struct cli_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (sl_prog_load_conf(&cli_prog, &args, &conf) != 0)
        return 1; /* every error was printed, compiler-style, as the daemons do */
    int rc = 0;
    if (args.check_config) {
        printf("sluice: configuration OK\n");
        sl_conf_free(&cli_section, &conf);
        return 0;
    }
    if (optind >= argc) {
        cli_usage(stderr);
        sl_conf_free(&cli_section, &conf);
        return 2;
    }
    static const struct {
        const char *name;
        int (*fn)(struct cli *c, int argc, char **argv);
    } commands[] = {
        {"topics", cmd_topics},
        {"produce", cmd_produce},
        {"consume", cmd_consume},
        {"groups", cmd_groups},
        {"sink", cmd_sink},
    };
    struct cli cli;
    memset(&cli, 0, sizeof(cli));
    kc_client_init(&cli.cl, &conf.bootstrap, conf.client_id, conf.timeout_ms);
    cli.json = json;
    cli.quiet = quiet;
    if (quiet && !log_level_set && sl_log_threshold > SL_LOG_WARNING)
        sl_log_threshold = SL_LOG_WARNING;
    cli.out_tty = isatty(STDOUT_FILENO);
    cli.err_tty = isatty(STDERR_FILENO);
    cli_signals_init();
    rc = -1;
    for (size_t i = 0; i < SL_ARRAY_LEN(commands); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            rc = commands[i].fn(&cli, argc - optind, argv + optind);
    if (rc == -1) {
        fprintf(stderr,
                "sluice: unknown command '%s' (topics, produce, consume, groups, sink); "
                "try --help\n",
                argv[optind]);
        rc = 2;
    }
    fflush(stdout);
    if (ferror(stdout) && rc == 0) {
        fprintf(stderr, "sluice: writing the output failed\n");
        rc = 1;
    }
    kc_client_fini(&cli.cl);
    sl_conf_free(&cli_section, &conf);
    return rc;
}
