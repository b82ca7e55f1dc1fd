/* The pipeline: record -> partition -> batch per topic-partition -> encoded once -> output ->
 * acknowledgement -> checkpoint spans; with memory accounting and input backpressure. */
#include "agent/pipeline.h"

#include "agent/encoder.h"

#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/murmur2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * A batch's life:
 *
 *   open (builder, in part->open and the linger list)
 *     --batch_bytes reached / linger passed / flush-->  closed: encoded into pb.data once
 *     (on the encoder thread with encode_thread, batches coming back in closing order),
 *     handed to the output  --done(0)-->  spans acked (checkpoints move), freed
 *                           --done(SL_ECLOSED)--> spans abandoned, freed
 *
 * Memory held = records bytes of open batches + encoded bytes of closed ones not yet done.
 * At memory_limit emit answers -EAGAIN and queues the input's waiter; waiters resume (from a
 * zero timer, never from inside emit or done) once memory is below three quarters of it.
 */

#define WHO "pipeline"
/* Closed batches waiting for the encoder thread before inputs wait too: two keep it busy
 * while the loop fills the next, and bound the raw bytes queued behind it (peak RSS). */
#define ENCODE_QUEUE_MAX 2
/* Room for a record's framing beyond key and value (length, attributes, deltas, counts). */
#define RECORD_OVERHEAD 32

struct plugin_topic {
    struct plugin_topic *next;
    char *name;                /* owned */
    int refs;                  /* topic_get calls and batches */
    int32_t nparts;            /* 0 until the output knows */
    struct agent_batch **open; /* owned array of nparts: the open batch per partition */
    int32_t sticky;            /* partition for null keys */
};

struct agent_batch {
    struct plugin_batch pb;     /* handed to the output */
    struct agent_pipeline *p;   /* borrowed */
    struct plugin_topic *topic; /* counted reference */
    uint64_t id;
    struct sl_batch_builder builder;
    struct plugin_ack_span *spans; /* the batch's list */
    double opened;
    struct agent_batch *lprev, *lnext; /* the linger list, open batches oldest first */
    size_t mem;                        /* bytes counted in p->memory */
    struct agent_encode_job job;       /* while on the encoder thread */
};

struct agent_pipeline {
    struct plugin_sink sink;
    struct ev_loop *loop;
    struct agent_pipeline_opts opts;
    const struct plugin *output;
    void *out;
    struct plugin_topic *topics;
    uint64_t next_id;
    struct agent_batch *lhead, *ltail;
    ev_timer linger;
    ev_timer wake;
    struct plugin_waiter *waiters;
    size_t memory;
    bool paused;
    double paused_since;
    double paused_total;
    uint64_t records_in, records_acked, records_failed, batches_open, batches_out;
    struct agent_encoder *enc; /* owned; NULL: batches are encoded on the loop */
    uint64_t batches_encoding;
    struct sl_metrics *metrics; /* borrowed; may be NULL */
    struct sl_metric *m_in, *m_acked, *m_batches, *m_failed, *m_mem, *m_paused;
};

static double pipeline_paused_seconds(void *arg);
static double pipeline_memory(void *arg);

/* ---- memory and waiters ------------------------------------------------------------------ */

static void pipeline_wake_soon(struct agent_pipeline *p)
{
    if (p->waiters && !ev_is_active(&p->wake)) {
        ev_timer_set(&p->wake, 0, 0);
        ev_timer_start(p->loop, &p->wake);
    }
}

static void pipeline_mem_sub(struct agent_pipeline *p, size_t n)
{
    p->memory -= n;
    if (p->paused && p->memory <= (size_t)p->opts.memory_limit / 4 * 3) {
        p->paused = false;
        p->paused_total += ev_now(p->loop) - p->paused_since;
        pipeline_wake_soon(p);
    }
}

static void pipeline_mem_add(struct agent_pipeline *p, size_t n)
{
    p->memory += n;
    if (!p->paused && p->memory >= (size_t)p->opts.memory_limit) {
        p->paused = true;
        p->paused_since = ev_now(p->loop);
        SL_DEBUG(WHO, "memory limit reached (%zu bytes held): inputs wait", p->memory);
    }
}

static void pipeline_on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent_pipeline *p = sl_container_of(w, struct agent_pipeline, wake);
    /* Take the list first: a resumed input that is refused again queues itself anew. */
    struct plugin_waiter *list = p->waiters;
    p->waiters = NULL;
    while (list) {
        struct plugin_waiter *wt = list;
        list = wt->next;
        wt->next = NULL;
        wt->queued = false;
        wt->on_resume(wt);
        if (p->paused) {
            /* Full again: the rest keep waiting, in their order. */
            struct plugin_waiter **tail = &p->waiters;
            while (*tail)
                tail = &(*tail)->next;
            *tail = list;
            return;
        }
    }
}

static void pipeline_wait(struct agent_pipeline *p, struct plugin_waiter *w)
{
    if (!w || w->queued)
        return;
    w->queued = true;
    w->next = NULL;
    struct plugin_waiter **tail = &p->waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
}

/* ---- batches ------------------------------------------------------------------------------ */

static void topic_unref(struct agent_pipeline *p, struct plugin_topic *t)
{
    if (--t->refs > 0)
        return;
    for (struct plugin_topic **pp = &p->topics; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    sl_free(t->open);
    sl_free(t->name);
    sl_free(t);
}

static void batch_unlink_linger(struct agent_pipeline *p, struct agent_batch *b)
{
    if (b->lprev)
        b->lprev->lnext = b->lnext;
    else
        p->lhead = b->lnext;
    if (b->lnext)
        b->lnext->lprev = b->lprev;
    else
        p->ltail = b->lprev;
    b->lprev = b->lnext = NULL;
}

static void pipeline_arm_linger(struct agent_pipeline *p)
{
    ev_timer_stop(p->loop, &p->linger);
    if (!p->lhead)
        return;
    double due = p->lhead->opened + (double)p->opts.linger_ms / 1000.0 - ev_now(p->loop);
    ev_timer_set(&p->linger, due > 0 ? due : 0, 0);
    ev_timer_start(p->loop, &p->linger);
}

/* Frees b; its spans must be gone. */
static void batch_free(struct agent_pipeline *p, struct agent_batch *b)
{
    sl_batch_builder_fini(&b->builder);
    sl_buf_fini(&b->pb.data);
    pipeline_mem_sub(p, b->mem);
    topic_unref(p, b->topic);
    sl_free(b);
}

static void batch_abandon(struct agent_pipeline *p, struct agent_batch *b)
{
    while (b->spans) {
        struct plugin_ack_span *s = b->spans;
        b->spans = s->batch_next;
        plugin_ack_abandon(s);
    }
    batch_free(p, b);
}

static void batch_on_done(struct plugin_batch *pb, int status)
{
    struct agent_batch *b = sl_container_of(pb, struct agent_batch, pb);
    struct agent_pipeline *p = b->p;
    p->batches_out--;
    if (status == SL_ECLOSED) {
        batch_abandon(p, b);
        return;
    }
    if (status == 0) {
        p->records_acked += (uint64_t)pb->records;
        sl_metric_add(p->m_acked, (uint64_t)pb->records);
    } else {
        p->records_failed += (uint64_t)pb->records;
        sl_metric_add(p->m_failed, (uint64_t)pb->records);
    }
    /* The spans list is in reverse emission order; acking in any order is correct, the
     * owners fold their chains themselves. */
    while (b->spans) {
        struct plugin_ack_span *s = b->spans;
        b->spans = s->batch_next;
        plugin_ack_done(s);
    }
    batch_free(p, b);
}

static void batch_encoded(struct agent_pipeline *p, struct agent_batch *b, int rc);

static void batch_on_encoded(struct agent_encode_job *job)
{
    struct agent_batch *b = sl_container_of(job, struct agent_batch, job);
    b->p->batches_encoding--;
    batch_encoded(b->p, b, job->rc);
    pipeline_wake_soon(b->p); /* inputs that waited for the encoder */
}

static void batch_on_abandoned(struct agent_encode_job *job)
{
    struct agent_batch *b = sl_container_of(job, struct agent_batch, job);
    b->p->batches_encoding--;
    batch_abandon(b->p, b);
}

/* Closes b: it is encoded (now, or on the encoder thread) and then handed to the output. */
static void batch_close(struct agent_pipeline *p, struct agent_batch *b)
{
    struct plugin_topic *t = b->topic;
    batch_unlink_linger(p, b);
    if (t->open[b->pb.partition] == b)
        t->open[b->pb.partition] = NULL;
    p->batches_open--;
    if (t->sticky == b->pb.partition && t->nparts > 1)
        t->sticky = (int32_t)(random() % t->nparts);
    sl_buf_init(&b->pb.data);
    if (p->enc) {
        b->job = (struct agent_encode_job){
            .builder = &b->builder, .out = &b->pb.data, .done = batch_on_encoded};
        p->batches_encoding++;
        agent_encoder_submit(p->enc, &b->job);
        return;
    }
    batch_encoded(p, b, sl_batch_builder_finish(&b->builder, &b->pb.data));
}

/* b's encoding finished with rc: account its memory and hand it to the output. */
static void batch_encoded(struct agent_pipeline *p, struct agent_batch *b, int rc)
{
    struct plugin_topic *t = b->topic;
    /* The encoder reserved room for the uncompressed size; a queued batch keeps only what it
     * uses (a gzip batch is often a tenth of that), so memory_limit stays close to the truth. */
    if (rc == 0 && b->pb.data.cap > b->pb.data.len + b->pb.data.len / 8) {
        uint8_t *fit = sl_realloc(b->pb.data.data, b->pb.data.len);
        if (fit) {
            b->pb.data.data = fit;
            b->pb.data.cap = b->pb.data.len;
        }
    }
    size_t held = b->mem;
    b->mem = b->pb.data.len;
    sl_batch_builder_fini(&b->builder);
    p->memory -= held; /* swap the records' bytes for the encoded ones */
    pipeline_mem_add(p, b->mem);
    pipeline_mem_sub(p, 0);
    if (rc != 0) {
        SL_ERR(WHO,
               "cannot encode a batch of %d records for %s/%d: %s; its files' checkpoints "
               "stay before it until restart",
               (int)b->pb.records, t->name, (int)b->pb.partition, sl_strerror(rc));
        batch_abandon(p, b);
        return;
    }
    p->batches_out++;
    sl_metric_inc(p->m_batches);
    p->output->output->send(p->out, &b->pb);
}

static void pipeline_on_linger(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent_pipeline *p = sl_container_of(w, struct agent_pipeline, linger);
    double now = ev_now(loop);
    double linger = (double)p->opts.linger_ms / 1000.0;
    while (p->lhead && p->lhead->opened + linger <= now + 0.0005)
        batch_close(p, p->lhead);
    pipeline_arm_linger(p);
}

static struct agent_batch *batch_open(struct agent_pipeline *p, struct plugin_topic *t,
                                      int32_t partition)
{
    struct agent_batch *b = sl_calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    struct sl_batch_opts bo = SL_BATCH_OPTS_DEFAULT;
    bo.codec = p->opts.codec;
    bo.level = p->opts.level;
    if (sl_batch_builder_init(&b->builder, &bo) != 0) {
        sl_free(b);
        return NULL;
    }
    b->p = p;
    b->topic = t;
    t->refs++;
    b->id = ++p->next_id;
    b->pb.topic = t->name;
    b->pb.partition = partition;
    b->pb.done = batch_on_done;
    b->opened = ev_now(p->loop);
    b->lprev = p->ltail;
    if (p->ltail)
        p->ltail->lnext = b;
    else
        p->lhead = b;
    p->ltail = b;
    t->open[partition] = b;
    p->batches_open++;
    if (!ev_is_active(&p->linger))
        pipeline_arm_linger(p);
    return b;
}

/* ---- the sink ----------------------------------------------------------------------------- */

static struct plugin_topic *pipeline_topic_get(struct plugin_sink *s, const char *name)
{
    struct agent_pipeline *p = sl_container_of(s, struct agent_pipeline, sink);
    for (struct plugin_topic *t = p->topics; t; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            t->refs++;
            return t;
        }
    }
    struct plugin_topic *t = sl_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = sl_strdup(name);
    if (!t->name) {
        sl_free(t);
        return NULL;
    }
    t->refs = 1;
    t->next = p->topics;
    p->topics = t;
    return t;
}

static void pipeline_topic_put(struct plugin_sink *s, struct plugin_topic *t)
{
    struct agent_pipeline *p = sl_container_of(s, struct agent_pipeline, sink);
    if (t)
        topic_unref(p, t);
}

/* Learns or updates t's partition count from the output. Returns > 0 when usable. */
static int32_t topic_refresh(struct agent_pipeline *p, struct plugin_topic *t)
{
    int32_t n = p->output->output->partitions(p->out, t->name);
    if (n <= t->nparts)
        return t->nparts; /* unknown yet, refused, or unchanged: keep what we had */
    struct agent_batch **open = sl_realloc(t->open, (size_t)n * sizeof(*open));
    if (!open)
        return t->nparts;
    memset(open + t->nparts, 0, (size_t)(n - t->nparts) * sizeof(*open));
    t->open = open;
    if (t->nparts == 0)
        t->sticky = (int32_t)(random() % n);
    t->nparts = n;
    return n;
}

static int pipeline_emit(struct plugin_sink *s, struct plugin_topic *t,
                         const struct plugin_record *r, struct plugin_waiter *w)
{
    struct agent_pipeline *p = sl_container_of(s, struct agent_pipeline, sink);
    if (p->paused || p->batches_encoding >= ENCODE_QUEUE_MAX ||
        (t->nparts == 0 && topic_refresh(p, t) <= 0)) {
        pipeline_wait(p, w);
        return -EAGAIN;
    }
    size_t need = r->key.len + r->value.len + RECORD_OVERHEAD;
    for (size_t i = 0; i < r->header_count; i++)
        need += r->headers[i].key.len + r->headers[i].value.len + 10;
    if (need > (size_t)p->opts.batch_bytes * 4 && need > (size_t)p->opts.memory_limit / 2)
        return SL_ETOOBIG;
    int32_t part = r->key.p ? sl_murmur2_partition(r->key.p, r->key.len, t->nparts) : t->sticky;
    struct agent_batch *b = t->open[part];
    if (b && b->pb.records > 0 &&
        sl_batch_builder_size(&b->builder) + need > (size_t)p->opts.batch_bytes) {
        batch_close(p, b);
        b = NULL;
        if (!r->key.p)
            part = t->sticky;
        b = t->open[part];
    }
    if (!b) {
        b = batch_open(p, t, part);
        if (!b)
            return -ENOMEM;
    }
    struct plugin_ack_span *spare = NULL;
    if (r->owner && (!r->owner->tail || r->owner->tail->batch != b->id)) {
        spare = sl_malloc(sizeof(*spare));
        if (!spare)
            return -ENOMEM;
    }
    size_t before = b->builder.records.len;
    int rc = sl_batch_builder_add(&b->builder, r->timestamp, r->key, r->value, r->headers,
                                  r->header_count);
    if (rc != 0) {
        sl_free(spare);
        return rc;
    }
    if (r->owner)
        plugin_ack_add(r->owner, b->id, r->end, &spare, &b->spans);
    sl_free(spare); /* unused when the owner's tail span took the record */
    size_t grew = b->builder.records.len - before;
    b->mem += grew;
    b->pb.records++;
    p->records_in++;
    sl_metric_inc(p->m_in);
    pipeline_mem_add(p, grew);
    if (sl_batch_builder_size(&b->builder) >= (size_t)p->opts.batch_bytes)
        batch_close(p, b);
    return 0;
}

static void pipeline_cancel(struct plugin_sink *s, struct plugin_waiter *w)
{
    struct agent_pipeline *p = sl_container_of(s, struct agent_pipeline, sink);
    if (!w->queued)
        return;
    for (struct plugin_waiter **pp = &p->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    w->queued = false;
    w->next = NULL;
}

/* ---- public ------------------------------------------------------------------------------- */

int agent_pipeline_new(struct ev_loop *loop, const struct agent_pipeline_opts *opts,
                       const struct plugin *output, void *output_self, struct sl_metrics *metrics,
                       struct agent_pipeline **out, struct sl_err *err)
{
    if (opts->batch_bytes < 1 || opts->linger_ms < 0 || opts->memory_limit < 1 ||
        (opts->codec != SL_BATCH_CODEC_NONE && opts->codec != SL_BATCH_CODEC_GZIP) ||
        opts->level < -1 || opts->level > 9 || !output || !output->output)
        return sl_err_set(err, -EINVAL, "pipeline: invalid options");
    struct agent_pipeline *p = sl_calloc(1, sizeof(*p));
    if (!p)
        return sl_err_set(err, -ENOMEM, "pipeline: out of memory");
    p->loop = loop;
    p->opts = *opts;
    p->output = output;
    p->out = output_self;
    p->sink.topic_get = pipeline_topic_get;
    p->sink.topic_put = pipeline_topic_put;
    p->sink.emit = pipeline_emit;
    p->sink.cancel = pipeline_cancel;
    ev_timer_init(&p->linger, pipeline_on_linger, 0, 0);
    ev_timer_init(&p->wake, pipeline_on_wake, 0, 0);
    if (opts->encode_thread && opts->codec != SL_BATCH_CODEC_NONE) {
        int rc = agent_encoder_new(loop, &p->enc);
        if (rc != 0) {
            sl_free(p);
            return sl_err_set(err, rc, "pipeline: cannot start the encoder thread: %s",
                              sl_strerror(rc));
        }
    }
    if (metrics) {
        sl_metrics_add_counter(metrics, "sluice_agent_records_read_total",
                               "records taken from inputs into batches", NULL, 0, &p->m_in, NULL);
        sl_metrics_add_counter(metrics, "sluice_agent_records_acked_total",
                               "records in batches a collector acknowledged", NULL, 0, &p->m_acked,
                               NULL);
        sl_metrics_add_counter(metrics, "sluice_agent_records_refused_total",
                               "records in batches a collector refused for good", NULL, 0,
                               &p->m_failed, NULL);
        sl_metrics_add_counter(metrics, "sluice_agent_batches_total",
                               "record batches closed and handed to the output", NULL, 0,
                               &p->m_batches, NULL);
        sl_metrics_add_gauge_fn(metrics, "sluice_agent_queue_bytes",
                                "bytes held in batches not yet acknowledged", NULL, 0,
                                pipeline_memory, p, &p->m_mem, NULL);
        sl_metrics_add_gauge_fn(metrics, "sluice_agent_paused_seconds",
                                "total time inputs waited for memory", NULL, 0,
                                pipeline_paused_seconds, p, &p->m_paused, NULL);
        p->metrics = metrics;
    }
    *out = p;
    return 0;
}

struct plugin_sink *agent_pipeline_sink(struct agent_pipeline *p)
{
    return &p->sink;
}

void agent_pipeline_on_topology(void *arg)
{
    struct agent_pipeline *p = arg;
    for (struct plugin_topic *t = p->topics; t; t = t->next)
        topic_refresh(p, t);
    pipeline_wake_soon(p);
}

void agent_pipeline_flush(struct agent_pipeline *p)
{
    while (p->lhead)
        batch_close(p, p->lhead);
    pipeline_arm_linger(p);
}

void agent_pipeline_stats(const struct agent_pipeline *p, struct agent_pipeline_stats *st)
{
    st->records_in = p->records_in;
    st->records_acked = p->records_acked;
    st->records_failed = p->records_failed;
    st->batches_open = p->batches_open;
    st->batches_out = p->batches_out + p->batches_encoding;
    st->memory = p->memory;
    st->paused = p->paused;
    st->paused_seconds = pipeline_paused_seconds((void *)(uintptr_t)p);
}

bool agent_pipeline_idle(const struct agent_pipeline *p)
{
    return p->batches_open == 0 && p->batches_out == 0 && p->batches_encoding == 0;
}

static double pipeline_paused_seconds(void *arg)
{
    const struct agent_pipeline *p = arg;
    return p->paused_total + (p->paused ? ev_now(p->loop) - p->paused_since : 0);
}

static double pipeline_memory(void *arg)
{
    const struct agent_pipeline *p = arg;
    return (double)p->memory;
}

void agent_pipeline_free(struct agent_pipeline *p)
{
    if (!p)
        return;
    /* First: abandoning a batch frees memory, which may arm the wake timer stopped below. */
    agent_encoder_free(p->enc, batch_on_abandoned);
    p->enc = NULL;
    ev_timer_stop(p->loop, &p->linger);
    ev_timer_stop(p->loop, &p->wake);
    if (p->metrics) {
        /* The gauge fns point at p; the counters go too so a new pipeline can register. */
        sl_metrics_remove(p->metrics, p->m_in);
        sl_metrics_remove(p->metrics, p->m_acked);
        sl_metrics_remove(p->metrics, p->m_failed);
        sl_metrics_remove(p->metrics, p->m_batches);
        sl_metrics_remove(p->metrics, p->m_mem);
        sl_metrics_remove(p->metrics, p->m_paused);
    }
    while (p->lhead) {
        struct agent_batch *b = p->lhead;
        batch_unlink_linger(p, b);
        b->topic->open[b->pb.partition] = NULL;
        p->batches_open--;
        batch_abandon(p, b);
    }
    SL_ASSERT(p->batches_out == 0);
    /* Topics whose holders never put them back (a programmer error) go with the pipeline. */
    while (p->topics) {
        struct plugin_topic *t = p->topics;
        p->topics = t->next;
        sl_free(t->open);
        sl_free(t->name);
        sl_free(t);
    }
    sl_free(p);
}
