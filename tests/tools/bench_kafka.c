/* Load generator for the collector's Kafka port, with same-run baselines: raw loopback TCP copy,
 * raw file write and raw sendfile loopback copy; produce (acks=-1, gzip batches of 200-byte log
 * lines) and fetch throughput, and produce latency percentiles at a fixed rate.
 *
 *   sl-test-bench_kafka raw-tcp MIB
 *   sl-test-bench_kafka raw-file DIR MIB
 *   sl-test-bench_kafka raw-sendfile DIR MIB
 *   sl-test-bench_kafka produce PORT TOPIC MIB BATCH_KIB INFLIGHT
 *   sl-test-bench_kafka latency PORT TOPIC BATCH_KIB RATE_MBPS SECONDS
 *   sl-test-bench_kafka fetch PORT TOPIC
 *
 * Each prints one line `<mode> mbps=<wire MB/s> ...` (MB = 10^6 bytes); latency prints
 * p50/p99/max in ms. Partition 0 only; 127.0.0.1 only. */
#include "common/base.h"
#include "common/batch.h"
#include "common/buf.h"
#include "common/reader.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_kafka: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("listen");
    *port = ntohs(a.sin_port);
    return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        b += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read");
        b += r;
        n -= (size_t)r;
    }
}

/* ---- baselines ------------------------------------------------------------------------------ */

struct sink_arg {
    int lfd;
    uint64_t got;
};

static void *sink_thread(void *arg)
{
    struct sink_arg *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    char *buf = malloc(CHUNK);
    ssize_t r;
    while ((r = read(fd, buf, CHUNK)) > 0)
        s->got += (uint64_t)r;
    free(buf);
    close(fd);
    return NULL;
}

static int raw_tcp(uint64_t mib)
{
    int port;
    struct sink_arg s = {.lfd = listen_any(&port)};
    pthread_t th;
    pthread_create(&th, NULL, sink_thread, &s);
    int fd = connect_port(port);
    char *buf = calloc(1, CHUNK);
    memset(buf, 'x', CHUNK);
    double t0 = now_s();
    for (uint64_t i = 0; i < mib; i++)
        write_all(fd, buf, CHUNK);
    close(fd);
    pthread_join(th, NULL);
    double dt = now_s() - t0;
    printf("raw-tcp mbps=%.1f bytes=%llu\n", (double)s.got / dt / 1e6, (unsigned long long)s.got);
    free(buf);
    close(s.lfd);
    return 0;
}

static int raw_file(const char *dir, uint64_t mib)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/raw-file.bin", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0)
        die("open");
    char *buf = calloc(1, CHUNK);
    memset(buf, 'y', CHUNK);
    double t0 = now_s(), last_sync = t0;
    for (uint64_t i = 0; i < mib; i++) {
        write_all(fd, buf, CHUNK);
        if (now_s() - last_sync >= 1.0) { /* fsync: interval (1s), like the collector's default */
            fdatasync(fd);
            last_sync = now_s();
        }
    }
    fdatasync(fd);
    double dt = now_s() - t0;
    printf("raw-file mbps=%.1f\n", (double)(mib * CHUNK) / dt / 1e6);
    close(fd);
    unlink(path);
    free(buf);
    return 0;
}

static int raw_sendfile(const char *dir, uint64_t mib)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/raw-sendfile.bin", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0)
        die("open");
    char *buf = calloc(1, CHUNK);
    memset(buf, 'z', CHUNK);
    for (uint64_t i = 0; i < mib; i++)
        write_all(fd, buf, CHUNK);
    free(buf);
    int port;
    struct sink_arg s = {.lfd = listen_any(&port)};
    pthread_t th;
    pthread_create(&th, NULL, sink_thread, &s);
    int out = connect_port(port);
    double t0 = now_s();
    off_t pos = 0;
    off_t end = (off_t)(mib * CHUNK);
    while (pos < end) {
        ssize_t n = sendfile(out, fd, &pos, (size_t)SL_MIN(end - pos, (off_t)8 * CHUNK));
        if (n <= 0)
            die("sendfile");
    }
    close(out);
    pthread_join(th, NULL);
    double dt = now_s() - t0;
    printf("raw-sendfile mbps=%.1f\n", (double)s.got / dt / 1e6);
    close(fd);
    close(s.lfd);
    unlink(path);
    return 0;
}

/* ---- Kafka requests ------------------------------------------------------------------------- */

/* A gzip batch of ~kib KiB of 200-byte JSON log lines (varied, so gzip works like on logs). */
static void build_batch(struct sl_buf *out, size_t kib, unsigned seed)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    o.codec = SL_BATCH_CODEC_GZIP;
    o.level = 1;
    struct sl_batch_builder b;
    if (sl_batch_builder_init(&b, &o))
        exit(1);
    char line[256];
    size_t total = 0;
    static const char *const words[] = {"GET",      "POST",   "/api/v1/items", "/health",
                                        "200",      "404",    "Mozilla/5.0",   "curl/7.88",
                                        "upstream", "timeout"};
    for (unsigned i = 0; total < kib * 1024; i++) {
        unsigned r = seed * 2654435761u + i * 40503u;
        int n =
            snprintf(line, sizeof(line),
                     "{\"time\":\"2026-11-22T10:00:%02u.%06uZ\",\"host\":\"web-%u\",\"message\":"
                     "\"%s %s %s %u %s req=%08x\"}",
                     i % 60, r % 1000000, r % 17, words[r % 10], words[(r >> 4) % 10],
                     words[(r >> 8) % 10], r % 5000, words[(r >> 12) % 10], r);
        while (n < 200)
            line[n++] = ' ';
        if (sl_batch_builder_add(&b, 1795000000000 + i, SL_BYTES_NULL,
                                 (struct sl_bytes){(uint8_t *)line, 200}, NULL, 0))
            exit(1);
        total += 200;
    }
    sl_buf_reset(out);
    if (sl_batch_builder_finish(&b, out))
        exit(1);
    sl_batch_builder_fini(&b);
}

static void build_produce(struct sl_buf *req, const char *topic, const struct sl_buf *batch,
                          int32_t corr)
{
    sl_buf_reset(req);
    size_t size_at = sl_buf_hole(req, 4);
    sl_buf_put_i16(req, 0);
    sl_buf_put_i16(req, 7);
    sl_buf_put_i32(req, corr);
    sl_buf_put_string(req, SL_BYTES_STR("bench"));
    sl_buf_put_string(req, SL_BYTES_NULL);
    sl_buf_put_i16(req, -1);
    sl_buf_put_i32(req, 30000);
    sl_buf_put_i32(req, 1);
    sl_buf_put_string(req, SL_BYTES_STR(topic));
    sl_buf_put_i32(req, 1);
    sl_buf_put_i32(req, 0);
    sl_buf_put_bytes(req, (struct sl_bytes){batch->data, batch->len});
    sl_buf_patch_i32(req, size_at, (int32_t)(req->len - 4));
}

/* Reads one response; returns its body length and checks produce errors. */
static void read_produce_response(int fd, struct sl_buf *tmp)
{
    uint8_t hdr[4];
    read_all(fd, hdr, 4);
    size_t n = sl_be32(hdr);
    sl_buf_reset(tmp);
    sl_buf_reserve(tmp, n);
    read_all(fd, tmp->data, n);
    struct sl_reader r;
    sl_reader_init(&r, tmp->data, n);
    sl_reader_i32(&r);
    sl_reader_i32(&r);
    sl_reader_string(&r);
    sl_reader_i32(&r);
    sl_reader_i32(&r);
    int16_t err = sl_reader_i16(&r);
    if (r.err || err != 0) {
        fprintf(stderr, "bench_kafka: produce error %d\n", err);
        exit(1);
    }
}

static void create_topic(int fd, const char *topic)
{
    /* Metadata v4 with auto-creation. */
    struct sl_buf b;
    sl_buf_init(&b);
    size_t at = sl_buf_hole(&b, 4);
    sl_buf_put_i16(&b, 3);
    sl_buf_put_i16(&b, 4);
    sl_buf_put_i32(&b, 1);
    sl_buf_put_string(&b, SL_BYTES_STR("bench"));
    sl_buf_put_i32(&b, 1);
    sl_buf_put_string(&b, SL_BYTES_STR(topic));
    sl_buf_put_i8(&b, 1);
    sl_buf_patch_i32(&b, at, (int32_t)(b.len - 4));
    write_all(fd, b.data, b.len);
    uint8_t hdr[4];
    read_all(fd, hdr, 4);
    size_t n = sl_be32(hdr);
    sl_buf_reset(&b);
    sl_buf_reserve(&b, n);
    read_all(fd, b.data, n);
    sl_buf_fini(&b);
}

static int produce(int port, const char *topic, uint64_t mib, size_t kib, int inflight)
{
    int fd = connect_port(port);
    create_topic(fd, topic);
    struct sl_buf batch, req, tmp;
    sl_buf_init(&batch);
    sl_buf_init(&req);
    sl_buf_init(&tmp);
    build_batch(&batch, kib, 1);
    uint64_t target = mib << 20, sent = 0;
    int outstanding = 0;
    int32_t corr = 0;
    double t0 = now_s();
    uint64_t batches = 0;
    while (sent < target || outstanding > 0) {
        if (sent < target && outstanding < inflight) {
            build_produce(&req, topic, &batch, corr++);
            write_all(fd, req.data, req.len);
            sent += req.len;
            outstanding++;
            batches++;
            continue;
        }
        read_produce_response(fd, &tmp);
        outstanding--;
    }
    double dt = now_s() - t0;
    printf("produce mbps=%.1f batch_bytes=%zu batches=%llu raw_mbps=%.1f\n",
           (double)sent / dt / 1e6, batch.len, (unsigned long long)batches,
           (double)batches * (double)kib * 1024 / dt / 1e6);
    close(fd);
    sl_buf_fini(&batch);
    sl_buf_fini(&req);
    sl_buf_fini(&tmp);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int latency(int port, const char *topic, size_t kib, double rate_mbps, double seconds)
{
    int fd = connect_port(port);
    create_topic(fd, topic);
    struct sl_buf batch, req, tmp;
    sl_buf_init(&batch);
    sl_buf_init(&req);
    sl_buf_init(&tmp);
    build_batch(&batch, kib, 2);
    build_produce(&req, topic, &batch, 0);
    double interval = (double)req.len / (rate_mbps * 1e6);
    size_t cap = (size_t)(seconds / interval) + 16, n = 0;
    double *lat = calloc(cap, sizeof(*lat));
    double t0 = now_s(), next = t0;
    while (now_s() - t0 < seconds && n < cap) {
        double t = now_s();
        if (t < next) {
            struct timespec ts = {0, (long)((next - t) * 1e9)};
            nanosleep(&ts, NULL);
        }
        next += interval;
        double s = now_s();
        write_all(fd, req.data, req.len);
        read_produce_response(fd, &tmp);
        lat[n++] = (now_s() - s) * 1000;
    }
    qsort(lat, n, sizeof(*lat), cmp_double);
    printf("latency n=%zu batch_bytes=%zu rate_mbps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", n,
           req.len, rate_mbps, lat[n / 2], lat[(size_t)((double)n * 0.99)], lat[n - 1]);
    free(lat);
    close(fd);
    sl_buf_fini(&batch);
    sl_buf_fini(&req);
    sl_buf_fini(&tmp);
    return 0;
}

/* Fetches partition 0 from offset 0 to the high watermark (v11, 32 MiB per response), counting
 * the wire bytes of the responses. */
static int fetch(int port, const char *topic)
{
    int fd = connect_port(port);
    struct sl_buf req, resp;
    sl_buf_init(&req);
    sl_buf_init(&resp);
    int64_t offset = 0, hw = -1;
    uint64_t wire = 0;
    int32_t corr = 0;
    double t0 = now_s();
    while (hw < 0 || offset < hw) {
        sl_buf_reset(&req);
        size_t at = sl_buf_hole(&req, 4);
        sl_buf_put_i16(&req, 1);
        sl_buf_put_i16(&req, 11);
        sl_buf_put_i32(&req, corr++);
        sl_buf_put_string(&req, SL_BYTES_STR("bench"));
        sl_buf_put_i32(&req, -1);
        sl_buf_put_i32(&req, 100);
        sl_buf_put_i32(&req, 1);
        sl_buf_put_i32(&req, 32 << 20);
        sl_buf_put_i8(&req, 0);
        sl_buf_put_i32(&req, 0);
        sl_buf_put_i32(&req, -1);
        sl_buf_put_i32(&req, 1);
        sl_buf_put_string(&req, SL_BYTES_STR(topic));
        sl_buf_put_i32(&req, 1);
        sl_buf_put_i32(&req, 0);
        sl_buf_put_i32(&req, -1);
        sl_buf_put_i64(&req, offset);
        sl_buf_put_i64(&req, 0);
        sl_buf_put_i32(&req, 32 << 20);
        sl_buf_put_i32(&req, 0);
        sl_buf_put_string(&req, SL_BYTES_STR(""));
        sl_buf_patch_i32(&req, at, (int32_t)(req.len - 4));
        write_all(fd, req.data, req.len);
        uint8_t hdr[4];
        read_all(fd, hdr, 4);
        size_t n = sl_be32(hdr);
        /* The fixed part (one topic, one partition) up to the records size: 55 bytes + name. */
        size_t fixed = 4 + 4 + 2 + 4 + 4 + 2 + strlen(topic) + 4 + 4 + 2 + 8 + 8 + 8 + 4 + 4 + 4;
        if (n < fixed) {
            fprintf(stderr, "bench_kafka: short fetch response\n");
            return 1;
        }
        sl_buf_reset(&resp);
        sl_buf_reserve(&resp, CHUNK);
        read_all(fd, resp.data, fixed);
        wire += n + 4;
        struct sl_reader r;
        sl_reader_init(&r, resp.data, fixed);
        sl_reader_i32(&r); /* correlation id */
        sl_reader_i32(&r);
        sl_reader_i16(&r);
        sl_reader_i32(&r);
        sl_reader_i32(&r);
        sl_reader_string(&r);
        sl_reader_i32(&r);
        sl_reader_i32(&r);
        int16_t err = sl_reader_i16(&r);
        hw = sl_reader_i64(&r);
        sl_reader_i64(&r);
        sl_reader_i64(&r);
        sl_reader_i32(&r);
        sl_reader_i32(&r);
        int32_t rlen = sl_reader_i32(&r);
        if (r.err || err != 0 || rlen < 0 || (size_t)rlen != n - fixed) {
            fprintf(stderr, "bench_kafka: fetch error %d\n", err);
            return 1;
        }
        /* Stream the records through a 1 MiB buffer (like the raw sendfile sink), reading each
         * batch's 27-byte head to find the next offset; the first may start before ours. */
        size_t left = (size_t)rlen, skip = 0;
        uint8_t head[27];
        size_t have = 0;
        while (left) {
            size_t chunk = SL_MIN(left, (size_t)CHUNK);
            read_all(fd, resp.data, chunk);
            left -= chunk;
            size_t pos = 0;
            while (pos < chunk) {
                if (skip) {
                    size_t k = SL_MIN(skip, chunk - pos);
                    skip -= k;
                    pos += k;
                    continue;
                }
                size_t k = SL_MIN(sizeof(head) - have, chunk - pos);
                memcpy(head + have, resp.data + pos, k);
                have += k;
                pos += k;
                if (have < sizeof(head))
                    break;
                int64_t base = (int64_t)sl_be64(head);
                uint32_t blen = sl_be32(head + 8);
                int32_t delta = (int32_t)sl_be32(head + 23);
                if (left + (chunk - pos) + sizeof(head) >= 12 + (size_t)blen)
                    offset = SL_MAX(offset, base + delta + 1); /* whole batch present */
                skip = 12 + (size_t)blen - sizeof(head);
                have = 0;
            }
        }
    }
    double dt = now_s() - t0;
    printf("fetch mbps=%.1f bytes=%llu requests=%d\n", (double)wire / dt / 1e6,
           (unsigned long long)wire, corr);
    close(fd);
    sl_buf_fini(&req);
    sl_buf_fini(&resp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "raw-tcp") == 0)
        return raw_tcp(strtoull(argv[2], NULL, 10));
    if (argc >= 4 && strcmp(argv[1], "raw-file") == 0)
        return raw_file(argv[2], strtoull(argv[3], NULL, 10));
    if (argc >= 4 && strcmp(argv[1], "raw-sendfile") == 0)
        return raw_sendfile(argv[2], strtoull(argv[3], NULL, 10));
    if (argc >= 7 && strcmp(argv[1], "produce") == 0)
        return produce(atoi(argv[2]), argv[3], strtoull(argv[4], NULL, 10),
                       strtoull(argv[5], NULL, 10), atoi(argv[6]));
    if (argc >= 7 && strcmp(argv[1], "latency") == 0)
        return latency(atoi(argv[2]), argv[3], strtoull(argv[4], NULL, 10), atof(argv[5]),
                       atof(argv[6]));
    if (argc >= 4 && strcmp(argv[1], "fetch") == 0)
        return fetch(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: see the comment at the top of tests/tools/bench_kafka.c\n");
    return 2;
}
