/* sluice produce: lines from stdin as records, gzip batches, acks=all; non-zero exit on any
 * failure. */
#include "collector/cli/cli.h"

#include "collector/cli/kc_produce.h"
#include "common/mem.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char produce_help[] =
    "Usage: sluice [-b HOST:PORT] produce -t TOPIC [OPTION]...\n"
    "Sends each line of standard input (without its newline) as one record.\n"
    "\n"
    "  -t, --topic TOPIC        the topic (it must exist: see 'sluice topics create')\n"
    "  -k, --key KEY            the key of every record (default: none, and the records of\n"
    "                           one batch go to one partition, the next batch to another)\n"
    "  -K, --key-delimiter C    each line is KEY C VALUE (split at the first C)\n"
    "  -p, --partition N        every record to partition N (default: Kafka's partitioner,\n"
    "                           murmur2 of the key)\n"
    "  -H, --header NAME=VALUE  a header on every record (repeatable)\n"
    "  -z, --compression CODEC  gzip (default) or none\n"
    "      --acks ACKS          all (default: stored before the answer), 1, or 0\n"
    "      --batch-size SIZE    send a partition's batch at this size (default 512KiB)\n"
    "  -q, --quiet              no progress line on a terminal\n"
    "      --json               a JSON summary on stdout at the end\n"
    "\n"
    "Exit status: 0 when every record was acknowledged; otherwise non-zero, and the message\n"
    "says how many records were acknowledged before the failure.\n";

#define LINE_MAX_BYTES (64u << 20)

int cmd_produce(struct cli *c, int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_ACKS, OPT_BATCH };
    static const struct option longopts[] = {
        {"topic", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"key-delimiter", required_argument, NULL, 'K'},
        {"partition", required_argument, NULL, 'p'},
        {"header", required_argument, NULL, 'H'},
        {"compression", required_argument, NULL, 'z'},
        {"acks", required_argument, NULL, OPT_ACKS},
        {"batch-size", required_argument, NULL, OPT_BATCH},
        {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *topic = NULL, *key = NULL;
    int key_delim = -1;
    int32_t partition = -1;
    struct sl_batch_kv headers[32];
    size_t nheaders = 0;
    struct kc_producer_opts po = KC_PRODUCER_OPTS_DEFAULT;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":t:k:K:p:H:z:qh", longopts, NULL)) != -1) {
        char *end;
        long v;
        struct sl_err e;
        int64_t size;
        switch (ch) {
        case 't':
            topic = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'K':
            if (strlen(optarg) != 1)
                return cli_usage_error("produce", "-K: the delimiter is one byte (got '%s')",
                                       optarg);
            key_delim = (unsigned char)optarg[0];
            break;
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > INT32_MAX)
                return cli_usage_error("produce", "-p: not a partition number: '%s'", optarg);
            partition = (int32_t)v;
            break;
        case 'H': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cli_usage_error("produce", "-H wants NAME=VALUE (got '%s')", optarg);
            if (nheaders == SL_ARRAY_LEN(headers))
                return cli_usage_error("produce", "at most %zu headers", SL_ARRAY_LEN(headers));
            headers[nheaders++] = (struct sl_batch_kv){
                {(const uint8_t *)optarg, (size_t)(eq - optarg)}, SL_BYTES_STR(eq + 1)};
            break;
        }
        case 'z':
            if (!strcmp(optarg, "gzip"))
                po.codec = SL_BATCH_CODEC_GZIP;
            else if (!strcmp(optarg, "none"))
                po.codec = SL_BATCH_CODEC_NONE;
            else
                return cli_usage_error("produce", "-z must be gzip or none (got '%s')", optarg);
            break;
        case OPT_ACKS:
            if (!strcmp(optarg, "all") || !strcmp(optarg, "-1"))
                po.acks = -1;
            else if (!strcmp(optarg, "1"))
                po.acks = 1;
            else if (!strcmp(optarg, "0"))
                po.acks = 0;
            else
                return cli_usage_error("produce", "--acks must be all, 1 or 0 (got '%s')", optarg);
            break;
        case OPT_BATCH:
            if (sl_conf_parse_size(optarg, &size, &e) != 0 || size < 1024 || size > (64 << 20))
                return cli_usage_error("produce", "--batch-size must be 1KiB to 64MiB (got '%s')",
                                       optarg);
            po.batch_bytes = (size_t)size;
            break;
        case 'q':
            c->quiet = true;
            break;
        case OPT_JSON:
            c->json = true;
            break;
        case 'h':
            fputs(produce_help, stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_error("produce", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("produce", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!topic)
        return cli_usage_error("produce", "which topic? (-t TOPIC)");
    if (optind < argc)
        return cli_usage_error("produce", "unexpected argument '%s'", argv[optind]);
    if (key && key_delim >= 0)
        return cli_usage_error("produce", "-k and -K exclude each other");

    struct sl_err err = {{0}};
    struct kc_producer pr;
    int rc = kc_producer_init(&pr, &c->cl, topic, &po, &err);
    char *line = NULL;
    size_t cap = 0;
    uint64_t lines = 0;
    struct cli_progress prog;
    cli_progress_init(&prog, c->err_tty && !c->quiet);
    while (rc == 0 && !cli_stop) {
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (ferror(stdin))
                rc = sl_err_set(&err, -errno, "reading standard input: %s", sl_strerror(-errno));
            break;
        }
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if ((size_t)n > LINE_MAX_BYTES) {
            rc = sl_err_set(&err, SL_ETOOBIG, "line %llu: %zd bytes (limit %u)",
                            (unsigned long long)lines + 1, n, LINE_MAX_BYTES);
            break;
        }
        struct sl_bytes k = key ? SL_BYTES_STR(key) : SL_BYTES_NULL;
        struct sl_bytes v = {(const uint8_t *)line, (size_t)n};
        if (key_delim >= 0) {
            char *d = memchr(line, key_delim, (size_t)n);
            if (d) {
                k = (struct sl_bytes){(const uint8_t *)line, (size_t)(d - line)};
                v = (struct sl_bytes){(const uint8_t *)d + 1, (size_t)(n - (d - line) - 1)};
            }
        }
        rc = kc_producer_add(&pr, partition, kc_wall_ms(), k, v, headers, nheaders, &err);
        lines++;
        double secs = (double)(kc_now_ms() - prog.start_ms) / 1000.0;
        cli_progress_show(&prog, false, "%s: %llu records sent, %.0f records/s", topic,
                          (unsigned long long)pr.records, secs > 0 ? (double)pr.records / secs : 0);
    }
    if (rc == 0)
        rc = kc_producer_flush(&pr, &err);
    cli_progress_end(&prog);
    free(line);
    double secs = (double)(kc_now_ms() - prog.start_ms) / 1000.0;
    if (rc == 0 && cli_stop)
        rc = sl_err_set(&err, -EINTR, "interrupted after %llu acknowledged records",
                        (unsigned long long)pr.records);
    else if (rc != 0 && pr.nparts > 0)
        sl_err_prefix(&err, "%llu of %llu records acknowledged; ", (unsigned long long)pr.records,
                      (unsigned long long)lines);
    if (rc == 0 && c->json)
        printf("{\"topic\":\"%s\",\"records\":%llu,\"bytes\":%llu,\"seconds\":%.3f}\n", topic,
               (unsigned long long)pr.records, (unsigned long long)pr.bytes, secs);
    else if (rc == 0 && c->err_tty && !c->quiet)
        fprintf(stderr, "%s: %llu records in %.1f s\n", topic, (unsigned long long)pr.records,
                secs);
    kc_producer_fini(&pr);
    return rc ? cli_fail(rc, &err) : CLI_EXIT_OK;
}
