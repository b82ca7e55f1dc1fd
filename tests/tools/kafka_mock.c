/* sl-test-kafka_mock: starts librdkafka's mock Kafka cluster on loopback for the agent's
 * integration tests, prints its bootstrap list, then takes commands on stdin. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * librdkafka is loaded with dlopen so this helper links like every other test tool (only with
 * our own libraries); the prototypes below are those of rdkafka.h and rdkafka_mock.h (2.0).
 *
 * Usage: sl-test-kafka_mock BROKERS
 * Prints "bootstrap <host:port,...>", then answers each stdin line with "ok" or "error ...":
 *   topic NAME PARTITIONS       create a topic (replication 1)
 *   leader TOPIC PARTITION ID   move a partition's leader
 *   down ID / up ID             take a broker's listener down / up
 *   errors APIKEY CODE...       the next requests of that API fail with these error codes
 *   rtt ID MS                   delay every answer of broker ID (-1: all brokers) by MS ms
 *   quit                        destroy the cluster and exit 0 (EOF does the same)
 */

typedef void *(*conf_new_fn)(void);
typedef int (*conf_set_fn)(void *conf, const char *name, const char *value, char *errstr,
                           size_t errstr_size);
typedef void *(*kafka_new_fn)(int type, void *conf, char *errstr, size_t errstr_size);
typedef void (*kafka_destroy_fn)(void *rk);
typedef void *(*mock_new_fn)(void *rk, int broker_cnt);
typedef void (*mock_destroy_fn)(void *mc);
typedef const char *(*mock_bootstraps_fn)(const void *mc);
typedef int (*mock_topic_create_fn)(void *mc, const char *topic, int parts, int rf);
typedef int (*mock_set_leader_fn)(void *mc, const char *topic, int32_t part, int32_t id);
typedef int (*mock_broker_fn)(void *mc, int32_t id);
typedef void (*mock_push_errors_fn)(void *mc, int16_t api, size_t cnt, const int *errors);
typedef int (*mock_set_rtt_fn)(void *mc, int32_t id, int rtt_ms);

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "kafka_mock: %s: %s\n", name, dlerror());
        exit(2);
    }
    return p;
}

int main(int argc, char **argv)
{
    int brokers = argc > 1 ? atoi(argv[1]) : 1;
    if (brokers < 1 || brokers > 16) {
        fprintf(stderr, "usage: sl-test-kafka_mock BROKERS (1..16)\n");
        return 2;
    }
    void *lib = dlopen("librdkafka.so.1", RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "kafka_mock: %s (install librdkafka1)\n", dlerror());
        return 2;
    }
    conf_new_fn conf_new = (conf_new_fn)sym(lib, "rd_kafka_conf_new");
    conf_set_fn conf_set = (conf_set_fn)sym(lib, "rd_kafka_conf_set");
    kafka_new_fn kafka_new = (kafka_new_fn)sym(lib, "rd_kafka_new");
    kafka_destroy_fn kafka_destroy = (kafka_destroy_fn)sym(lib, "rd_kafka_destroy");
    mock_new_fn mock_new = (mock_new_fn)sym(lib, "rd_kafka_mock_cluster_new");
    mock_destroy_fn mock_destroy = (mock_destroy_fn)sym(lib, "rd_kafka_mock_cluster_destroy");
    mock_bootstraps_fn bootstraps =
        (mock_bootstraps_fn)sym(lib, "rd_kafka_mock_cluster_bootstraps");
    mock_topic_create_fn topic_create =
        (mock_topic_create_fn)sym(lib, "rd_kafka_mock_topic_create");
    mock_set_leader_fn set_leader =
        (mock_set_leader_fn)sym(lib, "rd_kafka_mock_partition_set_leader");
    mock_broker_fn set_down = (mock_broker_fn)sym(lib, "rd_kafka_mock_broker_set_down");
    mock_broker_fn set_up = (mock_broker_fn)sym(lib, "rd_kafka_mock_broker_set_up");
    mock_push_errors_fn push_errors =
        (mock_push_errors_fn)sym(lib, "rd_kafka_mock_push_request_errors_array");
    mock_set_rtt_fn set_rtt = (mock_set_rtt_fn)sym(lib, "rd_kafka_mock_broker_set_rtt");

    char errstr[512];
    void *conf = conf_new();
    conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    void *rk = kafka_new(0 /* RD_KAFKA_PRODUCER */, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_mock: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    void *mc = mock_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        return 1;
    }
    printf("bootstrap %s\n", bootstraps(mc));
    fflush(stdout);

    char line[1024];
    while (fgets(line, sizeof(line), stdin)) {
        char a[256], b[256];
        int x, y;
        int rc = 0;
        if (sscanf(line, "topic %255s %d", a, &x) == 2) {
            rc = topic_create(mc, a, x, 1);
        } else if (sscanf(line, "leader %255s %d %d", a, &x, &y) == 3) {
            rc = set_leader(mc, a, x, y);
        } else if (sscanf(line, "down %d", &x) == 1) {
            rc = set_down(mc, x);
        } else if (sscanf(line, "up %d", &x) == 1) {
            rc = set_up(mc, x);
        } else if (sscanf(line, "rtt %d %d", &x, &y) == 2) {
            rc = set_rtt(mc, x, y);
        } else if (sscanf(line, "errors %d %255[-0-9 ]", &x, b) == 2) {
            int codes[64];
            size_t n = 0;
            char *save = NULL;
            for (char *tok = strtok_r(b, " ", &save); tok && n < 64;
                 tok = strtok_r(NULL, " ", &save))
                codes[n++] = atoi(tok);
            push_errors(mc, (int16_t)x, n, codes);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            printf("error unknown command\n");
            fflush(stdout);
            continue;
        }
        if (rc != 0)
            printf("error %d\n", rc);
        else
            printf("ok\n");
        fflush(stdout);
    }
    mock_destroy(mc);
    kafka_destroy(rk);
    dlclose(lib);
    return 0;
}
