/* sluice: the command line. Global options and configuration are handled here; each command
 * gets its own file as it lands (topics, produce, consume, groups, sink). */
#include "common/conf.h"
#include "common/daemon.h"
#include "common/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "Options:\n"
            "  -b, --bootstrap HOST:PORT[,...]  collectors to contact (default 127.0.0.1:9092,\n"
            "                                   or $SLUICE_BOOTSTRAP)\n"
            "  -c, --config FILE                configuration (default /etc/sluice/sluice.yaml\n"
            "                                   if it exists)\n"
            "      --check-config               validate the configuration and exit 0 or 1\n"
            "      --log-level LEVEL            emerg .. debug\n"
            "  -h, --help                       this help\n"
            "  -V, --version                    print the version\n\n"
            "Commands: none yet in this build; topics, produce, consume, groups and sink come\n"
            "with the command-line issue.\n\n"
            "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    sl_log_init();
    enum { OPT_CHECK = 256, OPT_LOG_LEVEL };
    static const struct option longopts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct sl_prog_args args;
    memset(&args, 0, sizeof(args));
    static char bootstrap_set[4096];
    const char *bootstrap = getenv("SLUICE_BOOTSTRAP");
    int c;
    opterr = 0;
    /* '+': stop at the command, whose own options are its own. */
    while ((c = getopt_long(argc, argv, "+:b:c:hV", longopts, NULL)) != -1) {
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
            if (sl_log_set_level_name(optarg) != 0) {
                fprintf(stderr, "sluice: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            break;
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
    struct cli_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (sl_prog_load_conf(&cli_prog, &args, &conf) != 0)
        return 1;
    int rc = 0;
    if (args.check_config) {
        printf("sluice: configuration OK\n");
    } else if (optind >= argc) {
        cli_usage(stderr);
        rc = 2;
    } else {
        fprintf(stderr, "sluice: unknown command '%s'; try --help\n", argv[optind]);
        rc = 2;
    }
    sl_conf_free(&cli_section, &conf);
    return rc;
}
