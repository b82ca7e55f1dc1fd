/* Fuzz target: one Kafka request frame (header and body, without the size prefix) through the
 * collector's dispatch table and API handlers, against a real storage in a temporary folder.
 * Must never crash, leak or read out of bounds; a malformed frame must come back as an error. */
#include "collector/server_priv.h"
#include "collector/storage.h"
#include "common/log.h"
#include "common/mem.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bounds the frames the harness copies (the server's own limit is max_request_size). */
#define FUZZ_MAX_FRAME ((size_t)4 << 20)

static struct {
    struct ev_loop *loop;
    struct coll_storage *st;
    struct coll_server *srv;
    struct coll_server_conf conf;
    struct coll_log_conf log;
    size_t listeners;
    char dir[64];
    bool ready;
} g;

static const struct coll_log_conf *fuzz_topic_conf(void *arg, const char *topic)
{
    return &g.log;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void fuzz_teardown(void)
{
    coll_server_free(g.srv);
    coll_storage_close(g.st);
    g.conf.listeners.len = g.listeners;
    sl_conf_free(&coll_server_conf_section, &g.conf);
    nftw(g.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int fuzz_setup(void)
{
    sl_log_threshold = getenv("SL_FUZZ_LOG") ? SL_LOG_DEBUG : SL_LOG_CRIT;
    snprintf(g.dir, sizeof(g.dir), "/tmp/sl-fuzz-request-XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    /* Every default, small segments so appends roll too. */
    static const char yaml[] = "default_partitions: 2\n";
    struct sl_conf_errors errs;
    if (sl_conf_load_string(&coll_server_conf_section, &g.conf, "fuzz", yaml, sizeof(yaml) - 1,
                            &errs) != 0) {
        sl_conf_errors_print(&errs, stderr);
        return -1;
    }
    /* No listeners (the table wants one): hide them from the server, give them back to free. */
    g.listeners = g.conf.listeners.len;
    g.conf.listeners.len = 0;
    g.log = COLL_LOG_CONF_DEFAULT;
    g.log.segment_bytes = 64 * 1024;
    g.log.max_batch_bytes = 60 * 1024;
    g.log.fsync = COLL_FSYNC_NEVER;
    g.loop = ev_loop_new(EVFLAG_AUTO);
    struct coll_storage_opts so = {
        .data_dir = g.dir, .loop = g.loop, .topic_conf = fuzz_topic_conf};
    struct sl_err err = {{0}};
    if (!g.loop || coll_storage_open(&so, &g.st, &err) != 0 ||
        coll_server_new(g.loop, &g.conf, g.st, NULL, &g.srv, &err) != 0) {
        fprintf(stderr, "fuzz_request: setup: %s\n", err.msg);
        return -1;
    }
    /* The topics the captured corpus talks to, so produce and fetch reach the storage. */
    static const char *const topics[] = {"cap", "cap2", "cap4"};
    for (size_t i = 0; i < SL_ARRAY_LEN(topics); i++)
        coll_server_create_topic(g.srv, topics[i], strlen(topics[i]), 2, NULL);
    atexit(fuzz_teardown);
    g.ready = true;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready && fuzz_setup() != 0)
        abort();
    if (size > FUZZ_MAX_FRAME)
        return 0;
    /* Handlers rewrite batches in place: give them a private copy of exactly size bytes. */
    uint8_t *frame = malloc(size ? size : 1);
    struct coll_resp *resp = sl_calloc(1, sizeof(*resp));
    if (!frame || !resp) {
        free(frame);
        sl_free(resp);
        return 0;
    }
    memcpy(frame, data, size);
    sl_buf_init(&resp->buf);
    resp->api_key = -1;
    struct coll_req req = {.srv = g.srv, .resp = resp, .peer = "fuzz"};
    struct sl_err err = {{0}};
    int rc = coll_dispatch(&req, frame, size, &err);
    if (rc < 0) {
        if (!err.msg[0])
            abort(); /* every refusal names what was wrong */
        coll_resp_free(resp);
    } else if (rc == COLL_API_ASYNC) {
        /* No connection here: a parked answer (a long-polling fetch, a JoinGroup waiting for
         * its rebalance) is cancelled as a closing connection would; anything else is an
         * orphan that completing frees. */
        if (resp->cancel)
            resp->cancel(resp);
        else
            coll_fetch_flush_all(g.srv);
    } else {
        if (rc == COLL_API_DONE && (resp->buf.len < 8 || sl_buf_error(&resp->buf)))
            abort(); /* an answer always holds at least the correlation id */
        coll_resp_free(resp);
    }
    ev_run(g.loop, EVRUN_NOWAIT);
    free(frame);
    return 0;
}
