/* The fetch loop: Fetch requests to every leader at once, answers gathered with poll(), records
 * decoded with common/batch.c and handed out in offset order per partition. */
#include "collector/cli/kc_fetch.h"

#include "collector/cli/kc_admin.h"
#include "common/mem.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

/*
 *   FetchRequest v4-11:  replica_id int32 (-1), max_wait_ms int32, min_bytes int32,
 *                        max_bytes int32, isolation_level int8,
 *                        session_id int32 (v7+, 0), session_epoch int32 (v7+, -1: no session),
 *                        topics ARRAY of [topic STRING, partitions ARRAY of
 *                          [partition int32, current_leader_epoch int32 (v9+, -1),
 *                           fetch_offset int64, log_start_offset int64 (v5+, -1),
 *                           partition_max_bytes int32]],
 *                        forgotten_topics_data ARRAY (v7+, empty), rack_id STRING (v11+, "")
 *   FetchResponse v4-11: throttle_time_ms int32, error_code int16 (v7+), session_id int32 (v7+),
 *                        responses ARRAY of [topic STRING, partitions ARRAY of
 *                          [partition_index int32, error_code int16, high_watermark int64,
 *                           last_stable_offset int64, log_start_offset int64 (v5+),
 *                           aborted_transactions nullable ARRAY of [producer_id int64,
 *                                                                  first_offset int64],
 *                           preferred_read_replica int32 (v11+), records NULLABLE_BYTES]]
 *
 * records holds whole batches, except that the last one may be cut by the byte limits (that
 * one is asked again from its offset next time). The first batch may start below the asked
 * offset (brokers send the whole batch holding it): records below the position are skipped.
 */

#define MAX_ITEMS          1000000
#define PART_MAX_BYTES     (1 << 20)
#define PART_MAX_BYTES_CAP (64 << 20)
#define RECORDS_MAX        (256u << 20) /* decompressed bytes of one batch */
#define MAX_RETRIES        10

/* fp->offset while a reset (ListOffsets) is pending. */
#define NEED_RESET (-100)

void kc_fetcher_init(struct kc_fetcher *f, struct kc_client *cl)
{
    memset(f, 0, sizeof(*f));
    f->cl = cl;
    f->max_wait_ms = 500;
    f->min_bytes = 1;
    f->max_bytes = 16 << 20;
    f->reset = KC_RESET_EARLIEST;
    sl_buf_init(&f->scratch);
}

/* Closes the connections with a Fetch sent ahead: their answers will not be read. */
static void drop_flights(struct kc_fetcher *f)
{
    for (size_t k = 0; k < f->nflights; k++)
        kc_client_drop(f->cl, f->flights[k].c->node_id);
    f->nflights = 0;
    for (size_t i = 0; i < f->nparts; i++)
        f->parts[i].asked = f->parts[i].ahead = -1;
}

void kc_fetcher_clear(struct kc_fetcher *f)
{
    drop_flights(f);
    for (size_t i = 0; i < f->nparts; i++)
        sl_free(f->parts[i].topic);
    SL_FREE(f->parts);
    f->nparts = 0;
}

void kc_fetcher_fini(struct kc_fetcher *f)
{
    if (!f)
        return;
    kc_fetcher_clear(f);
    SL_FREE(f->flights);
    sl_buf_fini(&f->scratch);
}

int kc_fetcher_add(struct kc_fetcher *f, const char *topic, int32_t partition, int32_t leader,
                   int64_t offset, int64_t stop)
{
    struct kc_fetch_part *n = sl_realloc(f->parts, (f->nparts + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    f->parts = n;
    struct kc_fetch_part *fp = &f->parts[f->nparts];
    memset(fp, 0, sizeof(*fp));
    if (!(fp->topic = sl_strdup(topic)))
        return -ENOMEM;
    fp->partition = partition;
    fp->leader = leader;
    fp->offset = offset;
    fp->stop = stop;
    fp->high_watermark = fp->log_start = -1;
    fp->asked = fp->ahead = -1;
    fp->max_bytes = PART_MAX_BYTES;
    fp->done = stop >= 0 && offset >= stop;
    f->nparts++;
    return 0;
}

bool kc_fetcher_done(const struct kc_fetcher *f)
{
    for (size_t i = 0; i < f->nparts; i++)
        if (!f->parts[i].done)
            return false;
    return true;
}

/* Where a request asks q to be read from: its position, or for a request sent ahead the
 * position predicted from the answer being read; -1: not asked. */
static int64_t ask_at(const struct kc_fetch_part *q, int32_t leader, bool ahead)
{
    if (q->done || q->leader != leader)
        return -1;
    int64_t at = ahead ? q->ahead : q->offset;
    return at >= 0 ? at : -1;
}

static void fetch_req(struct sl_buf *b, int16_t version, const struct kc_fetcher *f, int32_t leader,
                      bool ahead)
{
    sl_buf_put_i32(b, -1);             /* replica_id */
    sl_buf_put_i32(b, f->max_wait_ms); /* max_wait_ms */
    sl_buf_put_i32(b, f->min_bytes);   /* min_bytes */
    sl_buf_put_i32(b, f->max_bytes);   /* max_bytes */
    sl_buf_put_i8(b, 0);               /* isolation_level */
    if (version >= 7) {
        sl_buf_put_i32(b, 0);  /* session_id */
        sl_buf_put_i32(b, -1); /* session_epoch */
    }
    size_t topics_at = sl_buf_hole(b, 4); /* topics */
    int32_t nt = 0;
    for (size_t i = 0; i < f->nparts; i++) {
        const struct kc_fetch_part *fp = &f->parts[i];
        if (ask_at(fp, leader, ahead) < 0)
            continue;
        /* One entry per topic: skip a topic an earlier partition already opened. */
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = ask_at(&f->parts[j], leader, ahead) >= 0 &&
                   strcmp(f->parts[j].topic, fp->topic) == 0;
        if (seen)
            continue;
        nt++;
        sl_buf_put_string(b, SL_BYTES_STR(fp->topic)); /* topic */
        size_t parts_at = sl_buf_hole(b, 4);           /* partitions */
        int32_t np = 0;
        for (size_t j = i; j < f->nparts; j++) {
            const struct kc_fetch_part *q = &f->parts[j];
            int64_t at = ask_at(q, leader, ahead);
            if (at < 0 || strcmp(q->topic, fp->topic))
                continue;
            np++;
            sl_buf_put_i32(b, q->partition); /* partition */
            if (version >= 9)
                sl_buf_put_i32(b, -1); /* current_leader_epoch */
            sl_buf_put_i64(b, at);     /* fetch_offset */
            if (version >= 5)
                sl_buf_put_i64(b, -1);       /* log_start_offset */
            sl_buf_put_i32(b, q->max_bytes); /* partition_max_bytes */
        }
        sl_buf_patch_i32(b, parts_at, np);
    }
    sl_buf_patch_i32(b, topics_at, nt);
    if (version >= 7)
        sl_buf_put_i32(b, 0); /* forgotten_topics_data */
    if (version >= 11)
        sl_buf_put_string(b, SL_BYTES_STR("")); /* rack_id */
}

void kc_fetch_req(struct sl_buf *b, int16_t version, const struct kc_fetcher *f, int32_t leader)
{
    fetch_req(b, version, f, leader, false);
}

static struct kc_fetch_part *find_part(struct kc_fetcher *f, struct sl_bytes topic,
                                       int32_t partition, int32_t leader)
{
    for (size_t i = 0; i < f->nparts; i++) {
        struct kc_fetch_part *fp = &f->parts[i];
        if (fp->partition == partition && fp->leader == leader && !fp->done &&
            sl_bytes_eq_str(topic, fp->topic))
            return fp;
    }
    return NULL;
}

/* Hands out the records of one partition's answer. Returns 0, 1 (stop) or an error. */
static int deliver(struct kc_fetcher *f, struct kc_fetch_part *fp, struct sl_bytes recs,
                   kc_record_fn fn, void *arg, struct sl_err *err)
{
    size_t pos = 0;
    bool whole = false;
    while (pos < recs.len && !fp->done) {
        struct sl_batch_header h;
        struct sl_err e = {{0}};
        int rc = sl_batch_parse_header(&h, recs.p + pos, recs.len - pos, 0, &e);
        if (rc == SL_ETRUNC)
            break; /* cut by the byte limit: asked again next round */
        if (rc != 0)
            return sl_err_set(err, rc, "%s-%d: batch at byte %zu of the answer: %s", fp->topic,
                              fp->partition, pos, e.msg);
        whole = true;
        int64_t last = sl_batch_last_offset(&h);
        if (last < fp->offset || (h.attributes & SL_BATCH_ATTR_CONTROL)) {
            if (last >= fp->offset)
                fp->offset = last + 1;
            pos += h.size;
            continue;
        }
        struct sl_batch_iter it;
        rc = sl_batch_iter_init(&it, &h, recs.p + pos, &f->scratch, RECORDS_MAX, 0, &e);
        if (rc != 0)
            return sl_err_set(err, rc, "%s-%d: batch at offset %lld: %s", fp->topic, fp->partition,
                              (long long)h.base_offset, e.msg);
        struct sl_batch_record rec;
        while ((rc = sl_batch_iter_next(&it, &rec, &e)) == 1) {
            if (rec.offset < fp->offset)
                continue;
            if (fp->stop >= 0 && rec.offset >= fp->stop) {
                fp->done = true;
                break;
            }
            int cb = fn(arg, fp, &rec);
            fp->offset = rec.offset + 1;
            f->records++;
            if (cb != 0)
                return cb;
        }
        if (rc < 0)
            return sl_err_set(err, rc, "%s-%d: batch at offset %lld: %s", fp->topic, fp->partition,
                              (long long)h.base_offset, e.msg);
        if (!fp->done && last + 1 > fp->offset)
            fp->offset = last + 1; /* offsets compaction removed */
        pos += h.size;
    }
    f->bytes += recs.len;
    if (!whole && recs.len > 0 && fp->max_bytes < PART_MAX_BYTES_CAP)
        fp->max_bytes *= 2; /* a batch larger than we asked for: ask for more */
    if (fp->stop >= 0 && fp->offset >= fp->stop)
        fp->done = true;
    return 0;
}

/* True when fp's answer was asked ahead from a position that has moved since (the caller stopped
 * early or moved it): it is dropped for fp, which is asked again. */
static bool stale(const struct kc_fetch_part *fp)
{
    return fp->asked >= 0 && fp->asked != fp->offset;
}

/* One partition's entry of a Fetch answer. */
struct part_answer {
    int32_t partition;
    int16_t code;
    int64_t high_watermark, log_start; /* log_start -1 before v5 */
    struct sl_bytes records;
};

/* Reads a partition's entry at r (r->err set when it is cut or malformed). */
static void read_part_answer(struct sl_reader *r, int16_t version, struct part_answer *a)
{
    a->partition = sl_reader_i32(r);
    a->code = sl_reader_i16(r);
    a->high_watermark = sl_reader_i64(r);
    sl_reader_i64(r);                                    /* last_stable_offset */
    a->log_start = version >= 5 ? sl_reader_i64(r) : -1; /* log_start_offset */
    int32_t na = sl_reader_array(r, MAX_ITEMS, 16);      /* aborted_transactions */
    sl_reader_skip(r, (size_t)SL_MAX(na, 0) * 16);
    if (version >= 11)
        sl_reader_i32(r); /* preferred_read_replica */
    a->records = sl_reader_bytes(r);
}

int kc_fetch_parse(struct kc_fetcher *f, struct sl_reader *r, int16_t version, int32_t leader,
                   kc_record_fn fn, void *arg, struct sl_err *err)
{
    sl_reader_i32(r); /* throttle_time_ms */
    if (version >= 7) {
        int16_t code = sl_reader_i16(r); /* error_code */
        sl_reader_i32(r);                /* session_id */
        if (!r->err && code != KAFKA_E_NONE)
            return kc_err_kafka(err, code, "Fetch");
    }
    int stop = 0;
    int32_t nt = sl_reader_array(r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct sl_bytes topic = sl_reader_string(r);
        int32_t np = sl_reader_array(r, MAX_ITEMS, 34);
        for (int32_t p = 0; p < np && !r->err; p++) {
            struct part_answer a;
            read_part_answer(r, version, &a);
            if (r->err)
                break;
            struct kc_fetch_part *fp = find_part(f, topic, a.partition, leader);
            if (!fp || stop)
                continue; /* not asked, or the caller stopped: the position stays */
            if (stale(fp))
                continue;
            int16_t code = a.code;
            switch (code) {
            case KAFKA_E_NONE:
                fp->errors = 0;
                fp->high_watermark = a.high_watermark;
                fp->log_start = a.log_start;
                stop = deliver(f, fp, a.records, fn, arg, err);
                if (stop < 0)
                    return stop;
                break;
            case KAFKA_E_OFFSET_OUT_OF_RANGE:
                if (f->reset == KC_RESET_FAIL)
                    return kc_err_kafka(err, code, "%s-%d at offset %lld", fp->topic, fp->partition,
                                        (long long)fp->offset);
                fp->offset = NEED_RESET;
                break;
            case KAFKA_E_NOT_LEADER_FOR_PARTITION:
            case KAFKA_E_LEADER_NOT_AVAILABLE:
            case KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION:
            case KAFKA_E_KAFKA_STORAGE_ERROR:
            case KAFKA_E_FENCED_LEADER_EPOCH:
            case KAFKA_E_UNKNOWN_LEADER_EPOCH:
            case KAFKA_E_REQUEST_TIMED_OUT:
                if (++fp->errors > MAX_RETRIES)
                    return kc_err_kafka(err, code, "fetching %s-%d (%d tries)", fp->topic,
                                        fp->partition, fp->errors);
                fp->leader = -1; /* refreshed before the next round */
                break;
            default:
                return kc_err_kafka(err, code, "fetching %s-%d", fp->topic, fp->partition);
            }
        }
    }
    if (r->err)
        return sl_reader_describe(r, err, "Fetch answer");
    return stop;
}

/* Finds leaders again (metadata) for parts whose leader is unknown. */
static int refresh_leaders(struct kc_fetcher *f, struct sl_err *err)
{
    for (size_t i = 0; i < f->nparts; i++) {
        struct kc_fetch_part *fp = &f->parts[i];
        if (fp->done || fp->leader >= 0)
            continue;
        struct timespec ts = {.tv_nsec = 200 * 1000000L};
        nanosleep(&ts, NULL); /* the cluster needs a moment to elect a leader */
        struct kc_meta m = {0};
        const char *name = fp->topic;
        int rc = kc_client_metadata(f->cl, &name, 1, false, &m, err);
        if (rc != 0) {
            kc_meta_fini(&m);
            return rc;
        }
        const struct kc_meta_topic *t = kc_meta_find(&m, fp->topic);
        for (size_t j = i; j < f->nparts; j++) {
            struct kc_fetch_part *q = &f->parts[j];
            if (q->leader >= 0 || strcmp(q->topic, fp->topic) != 0)
                continue;
            for (int32_t k = 0; t && k < t->nparts; k++)
                if (t->parts[k].index == q->partition)
                    q->leader = t->parts[k].leader;
        }
        kc_meta_fini(&m);
        if (fp->leader < 0 && ++fp->errors > MAX_RETRIES)
            return sl_err_set(err, KC_ENOTFOUND, "%s-%d has no leader", fp->topic, fp->partition);
    }
    return 0;
}

/* Resolves NEED_RESET positions with ListOffsets. */
static int reset_positions(struct kc_fetcher *f, struct sl_err *err)
{
    for (size_t i = 0; i < f->nparts; i++) {
        struct kc_fetch_part *fp = &f->parts[i];
        if (fp->done || fp->offset != NEED_RESET || fp->leader < 0)
            continue;
        struct kc_offset_query q = {.partition = fp->partition,
                                    .leader = fp->leader,
                                    .timestamp = f->reset == KC_RESET_LATEST ? KC_OFFSET_LATEST
                                                                             : KC_OFFSET_EARLIEST};
        int rc = kc_list_offsets(f->cl, fp->topic, &q, 1, err);
        if (rc != 0)
            return rc;
        if (q.error_code != KAFKA_E_NONE)
            return kc_err_kafka(err, q.error_code, "resetting %s-%d", fp->topic, fp->partition);
        fp->offset = q.offset;
        if (fp->stop >= 0 && fp->offset >= fp->stop)
            fp->done = true;
    }
    return 0;
}

/*
 * Predicts where the parts of `leader` stand once the answer in r (a copy: the caller reads it
 * again) is handed out: past its last whole batch for each partition answered without error;
 * where they are now for the others. Sets each part's `ahead`; -1: not to be asked ahead (an
 * error to handle first, or the stop reached). Returns whether any partition moves.
 */
static bool predict(struct kc_fetcher *f, struct sl_reader r, int16_t version, int32_t leader)
{
    bool moved = false;
    for (size_t i = 0; i < f->nparts; i++) {
        struct kc_fetch_part *q = &f->parts[i];
        if (q->leader == leader)
            q->ahead = ask_at(q, leader, false);
    }
    sl_reader_i32(&r); /* throttle_time_ms */
    if (version >= 7) {
        sl_reader_i16(&r); /* error_code: kc_fetch_parse reports it */
        sl_reader_i32(&r); /* session_id */
    }
    int32_t nt = sl_reader_array(&r, MAX_ITEMS, 6);
    for (int32_t t = 0; t < nt && !r.err; t++) {
        struct sl_bytes topic = sl_reader_string(&r);
        int32_t np = sl_reader_array(&r, MAX_ITEMS, 34);
        for (int32_t p = 0; p < np && !r.err; p++) {
            struct part_answer a;
            read_part_answer(&r, version, &a);
            const struct sl_bytes recs = a.records;
            struct kc_fetch_part *fp = find_part(f, topic, a.partition, leader);
            if (r.err || !fp || fp->ahead < 0 || stale(fp))
                continue;
            if (a.code != KAFKA_E_NONE) {
                fp->ahead = -1;
                continue;
            }
            /* Only the header fields that place each batch: its CRC and the rest are checked
             * when it is handed out, and a wrong guess only costs an answer dropped. */
            int64_t at = fp->offset;
            for (size_t pos = 0; recs.len - pos >= SL_BATCH_HEADER_SIZE;) {
                const uint8_t *b = recs.p + pos;
                int32_t len = (int32_t)sl_be32(b + SL_BATCH_OFF_LENGTH);
                if (b[SL_BATCH_OFF_MAGIC] != SL_BATCH_MAGIC || len < SL_BATCH_LENGTH_MIN ||
                    (size_t)len + 12 > recs.len - pos)
                    break; /* cut by the byte limit, or an error kc_fetch_parse reports */
                int64_t last =
                    (int64_t)(sl_be64(b + SL_BATCH_OFF_BASE_OFFSET) +
                              (uint64_t)(int32_t)sl_be32(b + SL_BATCH_OFF_LAST_OFFSET_DELTA));
                if (last >= at)
                    at = last + 1;
                pos += (size_t)len + 12;
            }
            moved |= at > fp->offset;
            fp->ahead = fp->stop >= 0 && at >= fp->stop ? -1 : at;
        }
    }
    return moved;
}

/* Sends the next Fetch to the leader whose answer r is, before it is handed out. A failure
 * only means nothing is in flight: the next round asks as usual. */
static void send_ahead(struct kc_fetcher *f, const struct kc_fetch_flight *from,
                       const struct sl_reader *r)
{
    /* An answer without new records: caught up, nothing to overlap, and the next Fetch's
     * long poll is the caller's to set. */
    bool moved = predict(f, *r, from->version, from->leader);
    bool asks = false;
    for (size_t i = 0; moved && i < f->nparts && !asks; i++)
        asks = ask_at(&f->parts[i], from->leader, true) >= 0;
    struct kc_fetch_flight *n =
        asks ? sl_realloc(f->flights, (f->nflights + 1) * sizeof(*n)) : NULL;
    if (n) {
        f->flights = n;
        fetch_req(kc_conn_begin(from->c, KC_API_FETCH, from->version), from->version, f,
                  from->leader, true);
        if (kc_conn_send(from->c, f->cl->timeout_ms, NULL) == 0) {
            f->flights[f->nflights++] = *from;
            return;
        }
    }
    for (size_t i = 0; i < f->nparts; i++)
        if (f->parts[i].leader == from->leader)
            f->parts[i].ahead = -1;
}

/* The parts of leader are read from the answer to the Fetch sent ahead (or, ahead false, to
 * one sent now from their positions). */
static void mark_asked(struct kc_fetcher *f, int32_t leader, bool ahead)
{
    for (size_t i = 0; i < f->nparts; i++) {
        struct kc_fetch_part *q = &f->parts[i];
        if (q->leader != leader)
            continue;
        q->asked = ask_at(q, leader, ahead);
        q->ahead = -1;
    }
}

int kc_fetcher_poll(struct kc_fetcher *f, kc_record_fn fn, void *arg, struct sl_err *err)
{
    /* Leader lookups and resets talk to the leaders: nothing may be in flight on them. */
    for (size_t i = 0; i < f->nparts && f->nflights; i++) {
        const struct kc_fetch_part *fp = &f->parts[i];
        if (!fp->done && (fp->leader < 0 || fp->offset == NEED_RESET))
            drop_flights(f);
    }
    int rc = refresh_leaders(f, err);
    if (rc == 0)
        rc = reset_positions(f, err);
    if (rc != 0)
        return rc;
    struct kc_fetch_flight *pend = sl_calloc(f->nparts + f->nflights + 1, sizeof(*pend));
    if (!pend)
        return sl_err_set(err, -ENOMEM, "out of memory");
    size_t npend = 0;
    for (size_t k = 0; k < f->nflights; k++) {
        const struct kc_fetch_flight *fl = &f->flights[k];
        bool live = fl->c->fd >= 0 && fl->c->in_flight; /* not closed since */
        mark_asked(f, fl->leader, live);
        if (live)
            pend[npend++] = *fl;
    }
    f->nflights = 0;
    int64_t timeout = f->cl->timeout_ms + f->max_wait_ms;
    for (size_t i = 0; i < f->nparts && rc == 0; i++) {
        struct kc_fetch_part *fp = &f->parts[i];
        if (fp->done || fp->leader < 0 || fp->offset < 0)
            continue;
        bool seen = false;
        for (size_t k = 0; k < npend && !seen; k++)
            seen = pend[k].leader == fp->leader;
        if (seen)
            continue;
        struct kc_conn *c;
        if ((rc = kc_client_node(f->cl, fp->leader, &c, err)) != 0)
            break;
        int16_t v = kc_conn_version(c, KC_API_FETCH, 4, 11, err);
        if (v < 0) {
            rc = SL_EUNSUP;
            break;
        }
        kc_fetch_req(kc_conn_begin(c, KC_API_FETCH, v), v, f, fp->leader);
        if ((rc = kc_conn_send(c, f->cl->timeout_ms, err)) != 0)
            break;
        mark_asked(f, fp->leader, false);
        pend[npend++] = (struct kc_fetch_flight){c, fp->leader, v};
    }
    int stop = 0;
    int64_t deadline = kc_now_ms() + timeout;
    while (npend > 0) {
        struct pollfd pfd[64];
        size_t n = SL_MIN(npend, SL_ARRAY_LEN(pfd));
        for (size_t k = 0; k < n; k++)
            pfd[k] = (struct pollfd){.fd = pend[k].c->fd, .events = POLLIN};
        int64_t left = deadline - kc_now_ms();
        int got = left > 0 ? poll(pfd, n, (int)SL_MIN(left, 60000)) : 0;
        if (got < 0 && errno == EINTR) {
            rc = rc ? rc : sl_err_set(err, -EINTR, "interrupted");
            break;
        }
        if (got <= 0 && left <= 0) {
            rc = rc ? rc
                    : sl_err_set(err, KC_EUNREACH, "%s:%u: no answer to Fetch", pend[0].c->host,
                                 pend[0].c->port);
            break;
        }
        for (size_t k = n; k-- > 0;) {
            if (!pfd[k].revents)
                continue;
            struct sl_reader r;
            struct kc_fetch_flight pk = pend[k];
            pend[k] = pend[--npend];
            int one = kc_conn_recv(pk.c, f->cl->timeout_ms, &r, rc ? NULL : err);
            if (one == 0 && rc == 0 && !stop) {
                if (f->prefetch)
                    send_ahead(f, &pk, &r); /* r stays valid: the answer is read next round */
                one = kc_fetch_parse(f, &r, pk.version, pk.leader, fn, arg, err);
                if (one == 1) {
                    stop = 1;
                    one = 0;
                } else if (one == 0) {
                    one = kc_conn_check(pk.c, &r, err);
                }
            }
            if (one != 0 && rc == 0)
                rc = one;
        }
    }
    /* Answers never read leave their connections out of step: close them. */
    for (size_t k = 0; k < npend; k++)
        kc_client_drop(f->cl, pend[k].c->node_id);
    sl_free(pend);
    if (rc == KC_EUNREACH) {
        /* A leader went away: find the leaders again next round, up to MAX_RETRIES. */
        bool retry = false;
        for (size_t i = 0; i < f->nparts; i++) {
            if (!f->parts[i].done && ++f->parts[i].errors <= MAX_RETRIES) {
                f->parts[i].leader = -1;
                retry = true;
            }
        }
        if (retry)
            return 0;
    }
    return rc ? rc : stop;
}
