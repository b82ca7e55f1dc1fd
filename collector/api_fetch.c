/* Fetch (key 1), v4-11: whole batches from the segment files, with long polling. */
#include "collector/server_priv.h"

#include "collector/topic_name.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <string.h>

/*
 * Request:
 *   replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32,
 *   isolation_level int8, session_id int32 (v7+), session_epoch int32 (v7+)
 *   topics ARRAY of
 *     topic STRING
 *     partitions ARRAY of
 *       partition int32, current_leader_epoch int32 (v9+), fetch_offset int64,
 *       log_start_offset int64 (v5+), partition_max_bytes int32
 *   forgotten_topics_data ARRAY of [topic STRING, partitions ARRAY of int32] (v7+)
 *   rack_id STRING (v11+)
 *
 * Response:
 *   throttle_time_ms int32, error_code int16 (v7+), session_id int32 (v7+)
 *   responses ARRAY of
 *     topic STRING
 *     partitions ARRAY of
 *       partition_index int32, error_code int16, high_watermark int64,
 *       last_stable_offset int64, log_start_offset int64 (v5+),
 *       aborted_transactions NULLABLE ARRAY (null), preferred_read_replica int32 (v11+, -1),
 *       records NULLABLE_BYTES: int32 size, then the batches straight from the .log file
 *
 * The records always start with the whole batch holding fetch_offset (so the first batch may
 * start before it: clients skip the records below their offset). Limits: partition_max_bytes
 * per partition and max_bytes for the response, except that the first batch found is always
 * sent (KIP-74). With fewer than min_bytes available the fetch waits, up to max_wait_ms, for
 * appends to the partitions it asks about.
 *
 * Fetch sessions (v7+, KIP-227; the cache and its state machine are in fetch_session.c): an
 * incremental fetch is served for every partition of its session, in the session's order, and
 * its answer leaves out the partitions with no records, no error and the same high watermark
 * and log start offset as last told. The session is created (full fetch, epoch 0) or its
 * remembered high watermarks updated only by the final encoding of the response, after any
 * long poll, which also moves the partitions that returned records to the end of the session
 * (Kafka's round-robin across responses that max_bytes cuts short).
 */

#define FETCH_MAX_TOPICS     10000
#define FETCH_MAX_PARTITIONS 100000

struct fetch_part {
    int32_t partition;
    int64_t offset;
    int32_t max_bytes;
    int64_t prev_hw, prev_start; /* incremental: what the session last told the client */
    int64_t hw, start;           /* results of the last encoding */
    size_t len;                  /* record bytes sent */
    int16_t err;
};

struct fetch_topic {
    char *name; /* owned; NUL-terminated copy of the wire bytes */
    size_t name_len;
    bool name_ok;
    struct fetch_part *parts; /* owned */
    int32_t nparts;
    uint64_t sent;    /* record bytes of the last encoding */
    uint64_t records; /* records in those bytes (whole batches, the skipped head included) */
};

struct coll_fetch_wait {
    struct coll_fetch_wait *prev, *next; /* in srv->waits while waiting */
    struct coll_server *srv;             /* borrowed */
    struct coll_resp *resp;              /* borrowed until completed */
    int16_t version;
    int32_t min_bytes, max_bytes;
    struct fetch_topic *topics; /* owned */
    int32_t ntopics;
    struct fetch_topic *forgot; /* owned; forgotten_topics_data (partition numbers only) */
    int32_t nforgot;
    int32_t sess_id, sess_epoch; /* the request's FetchMetadata; then, when incremental, the
                                    session's id and the epoch it expects next */
    bool incremental, sess_create;
    int16_t top_err; /* a session error: answered with no partitions */
    uint64_t got;    /* bytes available so far */
    bool waiting, ready;
    ev_timer timer;
};

static void topics_free(struct fetch_topic *topics, int32_t n)
{
    for (int32_t t = 0; t < n; t++) {
        sl_free(topics[t].name);
        sl_free(topics[t].parts);
    }
    sl_free(topics);
}

static void fetch_free(struct coll_fetch_wait *fw)
{
    if (!fw)
        return;
    topics_free(fw->topics, fw->ntopics);
    topics_free(fw->forgot, fw->nforgot);
    sl_free(fw);
}

/* Whether an incremental response must carry the partition (Kafka's maybeUpdateResponseData). */
static bool part_changed(const struct coll_fetch_wait *fw, const struct fetch_part *fp, size_t len)
{
    return !fw->incremental || len > 0 || fp->err != KAFKA_E_NONE || fp->hw != fp->prev_hw ||
           fp->start != fp->prev_start;
}

/* Encodes the response body into fw->resp (after its header); returns the record bytes. */
static uint64_t fetch_encode(struct coll_fetch_wait *fw)
{
    struct coll_server *srv = fw->srv;
    struct coll_resp *resp = fw->resp;
    struct sl_buf *b = &resp->buf;
    int16_t v = fw->version;
    uint64_t sent = 0;
    int64_t budget = fw->max_bytes > 0 ? fw->max_bytes : INT32_MAX;
    sl_buf_put_i32(b, 0);
    if (v >= 7) {
        sl_buf_put_i16(b, fw->top_err);
        /* The id of a session created by this fetch is patched in by fetch_session_finish. */
        sl_buf_put_i32(b, fw->incremental ? fw->sess_id : COLL_FSESS_INVALID_ID);
    }
    size_t ntopics_at = b->len;
    int32_t ntopics = 0;
    sl_buf_put_i32(b, 0);
    for (int32_t t = 0; t < fw->ntopics && !fw->top_err; t++) {
        struct fetch_topic *ft = &fw->topics[t];
        size_t topic_at = b->len;
        sl_buf_put_string(b, (struct sl_bytes){(const uint8_t *)ft->name, ft->name_len});
        size_t nparts_at = b->len;
        int32_t nparts = 0;
        sl_buf_put_i32(b, 0);
        ft->sent = 0;
        ft->records = 0;
        for (int32_t p = 0; p < ft->nparts; p++) {
            struct fetch_part *fp = &ft->parts[p];
            struct coll_plog *pl =
                ft->name_ok ? coll_storage_get(srv->st, ft->name, fp->partition) : NULL;
            int16_t e = KAFKA_E_NONE;
            struct coll_region reg = {.fd = -1};
            int64_t hw = -1, start = -1;
            if (!pl) {
                e = ft->name_ok && coll_storage_offline(srv->st, ft->name, fp->partition)
                        ? KAFKA_E_KAFKA_STORAGE_ERROR
                        : KAFKA_E_UNKNOWN_TOPIC_OR_PARTITION;
            } else {
                hw = pl->next_offset;
                start = pl->log_start;
                int64_t limit = SL_MIN((int64_t)fp->max_bytes, budget);
                if (limit > 0 || sent == 0) {
                    struct sl_err err = {{0}};
                    int rc = coll_plog_read(pl, fp->offset, (size_t)SL_MAX(limit, 1), &reg, &err);
                    if (rc == -ERANGE) {
                        e = KAFKA_E_OFFSET_OUT_OF_RANGE;
                    } else if (rc != 0) {
                        SL_WARN("kafka", "fetch %s-%d at %lld: %s", ft->name, fp->partition,
                                (long long)fp->offset, err.msg);
                        e = KAFKA_E_KAFKA_STORAGE_ERROR;
                    }
                    if (rc != 0)
                        memset(&reg, 0, sizeof(reg));
                }
            }
            fp->err = e;
            fp->hw = hw;
            fp->start = start;
            fp->len = reg.len;
            if (!part_changed(fw, fp, reg.len)) {
                coll_region_release(&reg);
                continue;
            }
            nparts++;
            sl_buf_put_i32(b, fp->partition);
            sl_buf_put_i16(b, e);
            sl_buf_put_i64(b, hw);
            sl_buf_put_i64(b, hw);
            if (v >= 5)
                sl_buf_put_i64(b, start);
            sl_buf_put_i32(b, -1); /* aborted_transactions: null */
            if (v >= 11)
                sl_buf_put_i32(b, -1);
            sl_buf_put_i32(b, (int32_t)reg.len);
            if (reg.len) {
                sent += reg.len;
                budget -= (int64_t)reg.len;
                ft->sent += reg.len;
                ft->records += (uint64_t)(reg.end_offset - reg.first_offset);
                if (coll_resp_add_file(resp, &reg) != 0)
                    sl_buf_reserve(b, (size_t)1 << 41); /* sticky failure: the conn closes */
            }
        }
        if (nparts == 0 && fw->incremental) {
            sl_buf_truncate(b, topic_at); /* nothing spliced in since: no records here */
            continue;
        }
        sl_buf_patch_i32(b, nparts_at, nparts);
        ntopics++;
    }
    sl_buf_patch_i32(b, ntopics_at, ntopics);
    return sent;
}

/* Counts what the final encoding sends in the topics' metrics. */
static void fetch_count(struct coll_fetch_wait *fw)
{
    for (int32_t t = 0; t < fw->ntopics; t++) {
        if (!fw->topics[t].sent)
            continue;
        struct coll_topic_stats *ts = coll_server_topic_stats(fw->srv, fw->topics[t].name);
        if (ts) {
            sl_metric_add(ts->bytes_out, fw->topics[t].sent);
            sl_metric_add(ts->records_out, fw->topics[t].records);
        }
    }
}

/* Discards an encoded body (keeps size hole and correlation id). */
static void fetch_unencode(struct coll_resp *resp)
{
    for (size_t i = 0; i < resp->nfiles; i++)
        coll_region_release(&resp->files[i].region);
    resp->nfiles = 0;
    sl_buf_truncate(&resp->buf, 8);
}

static void fetch_unlink(struct coll_fetch_wait *fw)
{
    struct coll_server *srv = fw->srv;
    if (!fw->waiting)
        return;
    fw->waiting = false;
    ev_timer_stop(srv->loop, &fw->timer);
    if (fw->prev)
        fw->prev->next = fw->next;
    else
        srv->waits = fw->next;
    if (fw->next)
        fw->next->prev = fw->prev;
}

static void fetch_session_finish(struct coll_fetch_wait *fw);

static void fetch_complete(struct coll_fetch_wait *fw)
{
    fetch_unlink(fw);
    struct coll_resp *resp = fw->resp;
    fetch_unencode(resp);
    fetch_encode(fw);
    fetch_session_finish(fw);
    fetch_count(fw);
    fetch_free(fw);
    coll_resp_done(resp);
}

static void fetch_cancel(struct coll_resp *resp)
{
    struct coll_fetch_wait *fw = resp->op;
    fetch_unlink(fw);
    fetch_free(fw);
    coll_resp_free(resp);
}

static void fetch_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    fetch_complete(sl_container_of(w, struct coll_fetch_wait, timer));
}

void coll_fetch_on_append(struct coll_server *srv, const char *topic, int32_t partition,
                          size_t bytes)
{
    bool any = false;
    for (struct coll_fetch_wait *fw = srv->waits; fw; fw = fw->next) {
        for (int32_t t = 0; t < fw->ntopics; t++) {
            struct fetch_topic *ft = &fw->topics[t];
            if (!ft->name_ok || strcmp(ft->name, topic) != 0)
                continue;
            for (int32_t p = 0; p < ft->nparts; p++)
                if (ft->parts[p].partition == partition)
                    fw->got += bytes;
        }
        if (fw->got >= (uint64_t)SL_MAX(fw->min_bytes, 1)) {
            fw->ready = true;
            any = true;
        }
    }
    /* Completing may close connections, which cancels other waits: rescan after each. */
    while (any) {
        any = false;
        for (struct coll_fetch_wait *fw = srv->waits; fw; fw = fw->next) {
            if (fw->ready) {
                fetch_complete(fw);
                any = true;
                break;
            }
        }
    }
}

void coll_fetch_flush_all(struct coll_server *srv)
{
    while (srv->waits)
        fetch_complete(srv->waits);
}

static int fetch_parse(struct coll_req *req, struct coll_fetch_wait *fw, int32_t *max_wait)
{
    struct sl_reader *r = &req->r;
    int16_t v = req->version;
    sl_reader_i32(r); /* replica_id */
    *max_wait = sl_reader_i32(r);
    fw->min_bytes = sl_reader_i32(r);
    fw->max_bytes = sl_reader_i32(r);
    sl_reader_i8(r); /* isolation_level: no transactions, both levels read the same */
    if (v >= 7) {
        fw->sess_id = sl_reader_i32(r);
        fw->sess_epoch = sl_reader_i32(r);
    }
    int32_t nt = sl_reader_array(r, FETCH_MAX_TOPICS, 6);
    if (nt < 0)
        return sl_reader_fail(r, nt == -1 ? SL_EPARSE : r->err, "topics");
    if (nt > 0 && !(fw->topics = sl_calloc((size_t)nt, sizeof(*fw->topics))))
        return -ENOMEM;
    size_t part_size = 4 + (v >= 9 ? 4 : 0) + 8 + (v >= 5 ? 8 : 0) + 4;
    int64_t total = 0;
    for (int32_t t = 0; t < nt && !r->err; t++) {
        struct fetch_topic *ft = &fw->topics[t];
        fw->ntopics = t + 1;
        struct sl_bytes raw = sl_reader_string(r);
        int32_t np = sl_reader_array(r, FETCH_MAX_PARTITIONS, part_size);
        if (r->err)
            break;
        if (np < 0)
            return sl_reader_fail(r, SL_EPARSE, "null partitions");
        total += np;
        if (total > FETCH_MAX_PARTITIONS)
            return sl_reader_fail(r, SL_ETOOBIG, "partition count");
        /* A copy of every byte (NULs included: the name is echoed back as it came). */
        ft->name_len = raw.p ? raw.len : 0;
        ft->name = sl_malloc(ft->name_len + 1);
        if (!ft->name)
            return -ENOMEM;
        if (ft->name_len)
            memcpy(ft->name, raw.p, ft->name_len);
        ft->name[ft->name_len] = 0;
        char tmp[COLL_TOPIC_NAME_MAX + 1];
        ft->name_ok =
            coll_str_copy(tmp, sizeof(tmp), raw) && coll_topic_name_check(tmp, raw.len, NULL) == 0;
        if (np > 0 && !(ft->parts = sl_calloc((size_t)np, sizeof(*ft->parts))))
            return -ENOMEM;
        ft->nparts = np;
        for (int32_t p = 0; p < np; p++) {
            struct fetch_part *fp = &ft->parts[p];
            fp->partition = sl_reader_i32(r);
            if (v >= 9)
                sl_reader_i32(r);
            fp->offset = sl_reader_i64(r);
            if (v >= 5)
                sl_reader_i64(r);
            fp->max_bytes = sl_reader_i32(r);
        }
    }
    if (v >= 7 && !r->err) {
        int32_t nf = sl_reader_array(r, FETCH_MAX_TOPICS, 6);
        if (nf < 0)
            return sl_reader_fail(r, nf == -1 ? SL_EPARSE : r->err, "forgotten_topics_data");
        if (nf > 0 && !(fw->forgot = sl_calloc((size_t)nf, sizeof(*fw->forgot))))
            return -ENOMEM;
        int64_t ftotal = 0;
        for (int32_t i = 0; i < nf && !r->err; i++) {
            struct fetch_topic *ft = &fw->forgot[i];
            fw->nforgot = i + 1;
            struct sl_bytes raw = sl_reader_string(r);
            int32_t np = sl_reader_array(r, FETCH_MAX_PARTITIONS, 4);
            if (r->err)
                break;
            if (np < 0)
                return sl_reader_fail(r, SL_EPARSE, "null forgotten partitions");
            ftotal += np;
            if (ftotal > FETCH_MAX_PARTITIONS)
                return sl_reader_fail(r, SL_ETOOBIG, "forgotten partition count");
            ft->name_len = raw.p ? raw.len : 0;
            if (!(ft->name = sl_malloc(ft->name_len + 1)))
                return -ENOMEM;
            if (ft->name_len)
                memcpy(ft->name, raw.p, ft->name_len);
            ft->name[ft->name_len] = 0;
            if (np > 0 && !(ft->parts = sl_calloc((size_t)np, sizeof(*ft->parts))))
                return -ENOMEM;
            ft->nparts = np;
            for (int32_t p = 0; p < np; p++)
                ft->parts[p].partition = sl_reader_i32(r);
        }
    }
    if (v >= 11)
        sl_reader_string(r);
    return r->err;
}

/* Builds fw->topics from the session's partitions (runs of one topic each, in order). */
static int fetch_from_session(struct coll_fetch_wait *fw, const struct coll_fsess *s)
{
    topics_free(fw->topics, fw->ntopics);
    fw->topics = NULL;
    fw->ntopics = 0;
    if (!s->nparts)
        return 0;
    /* At most one topic per partition. */
    if (!(fw->topics = sl_calloc(s->nparts, sizeof(*fw->topics))))
        return -ENOMEM;
    for (size_t i = 0; i < s->nparts;) {
        const struct coll_fsess_part *sp = &s->parts[i];
        size_t j = i + 1;
        while (j < s->nparts && s->parts[j].topic_len == sp->topic_len &&
               memcmp(s->parts[j].topic, sp->topic, sp->topic_len) == 0)
            j++;
        struct fetch_topic *ft = &fw->topics[fw->ntopics++];
        ft->name_len = sp->topic_len;
        if (!(ft->name = sl_malloc(sp->topic_len + 1)) ||
            !(ft->parts = sl_calloc(j - i, sizeof(*ft->parts))))
            return -ENOMEM;
        memcpy(ft->name, sp->topic, sp->topic_len + 1);
        char tmp[COLL_TOPIC_NAME_MAX + 1];
        struct sl_bytes raw = {(const uint8_t *)sp->topic, sp->topic_len};
        ft->name_ok =
            coll_str_copy(tmp, sizeof(tmp), raw) && coll_topic_name_check(tmp, raw.len, NULL) == 0;
        for (size_t k = i; k < j; k++) {
            struct fetch_part *fp = &ft->parts[ft->nparts++];
            fp->partition = s->parts[k].partition;
            fp->offset = s->parts[k].fetch_offset;
            fp->max_bytes = s->parts[k].max_bytes;
            fp->prev_hw = s->parts[k].hw;
            fp->prev_start = s->parts[k].log_start;
        }
        i = j;
    }
    return 0;
}

/* Applies the request's FetchMetadata to the session cache (the state machine at the top of
 * fetch_session.c). Returns 0 (fw->top_err may be set) or -ENOMEM. */
static int fetch_session_begin(struct coll_fetch_wait *fw, int64_t now_ms)
{
    struct coll_fsess_cache *c = &fw->srv->fsess;
    if (fw->sess_epoch == COLL_FSESS_INITIAL_EPOCH || fw->sess_epoch == COLL_FSESS_FINAL_EPOCH) {
        coll_fsess_remove(c, fw->sess_id); /* a full fetch closes the session it names */
        fw->sess_create = fw->sess_epoch == COLL_FSESS_INITIAL_EPOCH && c->max > 0;
        return 0;
    }
    struct coll_fsess *s = coll_fsess_find(c, fw->sess_id);
    if (!s) {
        fw->top_err = KAFKA_E_FETCH_SESSION_ID_NOT_FOUND;
        return 0;
    }
    if (s->epoch != fw->sess_epoch) {
        fw->top_err = KAFKA_E_INVALID_FETCH_SESSION_EPOCH;
        return 0;
    }
    int rc = 0;
    for (int32_t t = 0; t < fw->ntopics && rc == 0; t++) {
        const struct fetch_topic *ft = &fw->topics[t];
        for (int32_t p = 0; p < ft->nparts && rc == 0; p++)
            rc = coll_fsess_upsert(s, ft->name, ft->name_len, ft->parts[p].partition,
                                   ft->parts[p].offset, ft->parts[p].max_bytes);
    }
    for (int32_t t = 0; t < fw->nforgot && rc == 0; t++) {
        const struct fetch_topic *ft = &fw->forgot[t];
        for (int32_t p = 0; p < ft->nparts; p++)
            coll_fsess_forget(s, ft->name, ft->name_len, ft->parts[p].partition);
    }
    if (rc == 0)
        coll_fsess_compact(s);
    if (rc == -E2BIG) {
        /* More partitions than a session holds: the client starts over with a full fetch. */
        SL_WARN("kafka",
                "fetch session %d: more than %d partitions, or %d in all sessions; closed",
                (int)fw->sess_id, COLL_FSESS_MAX_PARTS, COLL_FSESS_MAX_TOTAL_PARTS);
        coll_fsess_remove(c, fw->sess_id);
        fw->top_err = KAFKA_E_INVALID_REQUEST;
        return 0;
    }
    if (rc != 0) {
        coll_fsess_remove(c, fw->sess_id); /* half updated: the client must start over */
        return rc;                         /* -ENOMEM: the connection closes */
    }
    if (s->nparts == 0) {
        /* Emptied: closed, answered as a sessionless full fetch of what the request lists (as
         * Kafka does; that is nothing, since everything listed stays in the session). */
        coll_fsess_remove(c, fw->sess_id);
        return 0;
    }
    coll_fsess_touch(s, now_ms);
    fw->incremental = true;
    fw->sess_epoch = s->epoch;
    return fetch_from_session(fw, s);
}

/* After the final encoding: creates the session a full fetch asked for (patching its id into
 * the response) or records what an incremental answer told the client. */
static void fetch_session_finish(struct coll_fetch_wait *fw)
{
    struct coll_fsess_cache *c = &fw->srv->fsess;
    struct sl_buf *b = &fw->resp->buf;
    if (fw->top_err || sl_buf_error(b))
        return;
    if (fw->incremental) {
        struct coll_fsess *s = coll_fsess_find(c, fw->sess_id);
        if (!s || s->epoch != fw->sess_epoch)
            return; /* closed or moved on while this fetch waited */
        for (int32_t t = 0; t < fw->ntopics; t++) {
            const struct fetch_topic *ft = &fw->topics[t];
            for (int32_t p = 0; p < ft->nparts; p++) {
                const struct fetch_part *fp = &ft->parts[p];
                struct coll_fsess_part *sp =
                    coll_fsess_get(s, ft->name, ft->name_len, fp->partition);
                if (!sp)
                    continue;
                /* An error is sent again until it clears (Kafka sets the cached hw to -1). */
                sp->hw = fp->err ? -1 : fp->hw;
                sp->log_start = fp->start;
                sp->to_end = fp->len > 0;
            }
        }
        coll_fsess_move_to_end(s);
        return;
    }
    if (!fw->sess_create)
        return;
    size_t n = 0;
    for (int32_t t = 0; t < fw->ntopics; t++)
        n += (size_t)fw->topics[t].nparts;
    struct coll_fsess *s = coll_fsess_create(c, n, (int64_t)(ev_now(fw->srv->loop) * 1000.0));
    if (!s)
        return; /* no room: answered without a session (id 0), as Kafka */
    for (int32_t t = 0; t < fw->ntopics; t++) {
        const struct fetch_topic *ft = &fw->topics[t];
        for (int32_t p = 0; p < ft->nparts; p++) {
            const struct fetch_part *fp = &ft->parts[p];
            if (coll_fsess_upsert(s, ft->name, ft->name_len, fp->partition, fp->offset,
                                  fp->max_bytes) != 0) {
                coll_fsess_remove(c, s->id);
                return;
            }
            struct coll_fsess_part *sp = coll_fsess_get(s, ft->name, ft->name_len, fp->partition);
            sp->hw = fp->err ? -1 : fp->hw;
            sp->log_start = fp->start;
        }
    }
    sl_buf_patch_i32(b, 8 + 4 + 2, s->id); /* size, correlation id, throttle, error_code */
}

int coll_api_fetch(struct coll_req *req)
{
    struct coll_server *srv = req->srv;
    struct coll_fetch_wait *fw = sl_calloc(1, sizeof(*fw));
    if (!fw)
        return -ENOMEM;
    fw->srv = srv;
    fw->resp = req->resp;
    fw->version = req->version;
    int32_t max_wait = 0;
    int rc = fetch_parse(req, fw, &max_wait);
    if (rc == 0 && req->version >= 7)
        rc = fetch_session_begin(fw, (int64_t)(ev_now(srv->loop) * 1000.0));
    if (rc != 0) {
        fetch_free(fw);
        return rc;
    }
    fw->got = fetch_encode(fw);
    int64_t wait_ms = SL_MIN((int64_t)max_wait, srv->conf->max_fetch_wait_ms);
    if (fw->got >= (uint64_t)SL_MAX(fw->min_bytes, 1) || wait_ms <= 0 || srv->stopping ||
        fw->top_err || sl_buf_error(&req->resp->buf)) {
        fetch_session_finish(fw);
        fetch_count(fw);
        fetch_free(fw);
        return COLL_API_DONE;
    }
    /* Not enough yet: drop the encoded body and wait for appends or the deadline. */
    fetch_unencode(req->resp);
    fw->waiting = true;
    fw->next = srv->waits;
    if (srv->waits)
        srv->waits->prev = fw;
    srv->waits = fw;
    ev_timer_init(&fw->timer, fetch_on_timeout, (double)wait_ms / 1000.0, 0.);
    ev_timer_start(srv->loop, &fw->timer);
    req->resp->cancel = fetch_cancel;
    req->resp->op = fw;
    return COLL_API_ASYNC;
}
