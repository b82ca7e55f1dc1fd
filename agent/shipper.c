/* The shipping core: sources -> pipeline -> output, plus drain, reload and status. */
#include "agent/shipper.h"

#include "agent/pipeline.h"
#include "common/base.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define WHO        "agent"
#define DRAIN_POLL 0.05

/* One running source: its configuration (owned, moved out of a loaded map) and instance. */
struct shipper_input {
    struct shipper_input *next;
    struct plugin_source_conf conf; /* owned */
    const struct plugin *plugin;
    void *self;
    char name[300]; /* log prefix, "in.tail#nginx" */
};

struct agent_shipper {
    struct ev_loop *loop;
    const struct out_kafka_conf *out_conf; /* borrowed */
    int64_t shutdown_timeout_ms;
    const char *hostname;
    const char *state_dir;
    struct sl_metrics *metrics;
    const struct plugin *output;
    void *out;
    struct agent_pipeline *pipe;
    struct shipper_input *inputs;
    ev_timer drain;
    double drain_deadline;
    void (*drain_done)(void *arg);
    void *drain_arg;
    double status_at;
    uint64_t status_in;
};

/* The output learned partition counts: the pipeline may resume inputs waiting for them. */
static void shipper_on_topology(void *arg)
{
    struct agent_shipper *s = arg;
    if (s->pipe)
        agent_pipeline_on_topology(s->pipe);
}

static void input_free(struct shipper_input *in)
{
    if (!in)
        return;
    if (in->self) {
        in->plugin->stop(in->self);
        in->plugin->free(in->self);
    }
    /* A map element's name is freed by its map, not by its section: ours moved out. */
    sl_free(in->conf.name);
    in->conf.name = NULL;
    sl_conf_free(&plugin_source_section, &in->conf);
    sl_free(in);
}

/* Builds (not starts) the inputs of `sources`, moving each element out of the map. On
 * failure nothing is moved and *list is untouched. */
static int inputs_create(struct agent_shipper *s, struct sl_conf_map *sources,
                         struct shipper_input **list, struct sl_err *err)
{
    struct shipper_input *head = NULL, **tail = &head;
    int rc = 0;
    for (size_t i = 0; i < sources->len; i++) {
        struct plugin_source_conf *sc = SL_CONF_MAP_AT(sources, struct plugin_source_conf, i);
        const struct plugin *p = plugin_by_section(sc->type.section);
        if (!p || p->kind != PLUGIN_INPUT) {
            rc = sl_err_set(err, SL_ECONFIG, "source '%s': no input plugin for its type", sc->name);
            goto fail;
        }
        struct shipper_input *in = sl_calloc(1, sizeof(*in));
        if (!in) {
            rc = sl_err_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
        *tail = in;
        tail = &in->next;
        in->plugin = p;
        in->conf = *sc; /* provisional: moved for good only once everything succeeded */
        snprintf(in->name, sizeof(in->name), "in.%s#%s", p->name, sc->name);
        struct plugin_ctx ctx = {
            .loop = s->loop,
            .name = in->name,
            .hostname = s->hostname,
            .state_dir = s->state_dir,
            .metrics = s->metrics,
            .sink = agent_pipeline_sink(s->pipe),
            .source = &in->conf,
        };
        rc = p->new (&ctx, sc->type.conf, &in->self, err);
        if (rc != 0) {
            in->self = NULL;
            sl_err_prefix(err, "source '%s': ", sc->name);
            goto fail;
        }
    }
    for (size_t i = 0; i < sources->len; i++)
        memset(SL_CONF_MAP_AT(sources, struct plugin_source_conf, i), 0,
               sizeof(struct plugin_source_conf));
    *tail = *list;
    *list = head;
    return 0;
fail:
    while (head) {
        struct shipper_input *n = head->next;
        if (head->self) {
            head->plugin->stop(head->self);
            head->plugin->free(head->self);
        }
        sl_free(head); /* its conf still belongs to the map */
        head = n;
    }
    return rc;
}

int agent_shipper_new(struct ev_loop *loop, struct agent_shipper_conf *conf, const char *hostname,
                      const char *state_dir, struct sl_metrics *metrics, struct agent_shipper **out,
                      struct sl_err *err)
{
    struct agent_shipper *s = sl_calloc(1, sizeof(*s));
    if (!s)
        return sl_err_set(err, -ENOMEM, "out of memory");
    int rc;
    s->loop = loop;
    s->out_conf = &conf->output;
    s->shutdown_timeout_ms = conf->shutdown_timeout_ms;
    s->hostname = hostname;
    s->state_dir = state_dir;
    s->metrics = metrics;
    s->output = &out_kafka_plugin;
    ev_timer_init(&s->drain, NULL, 0, 0);
    struct plugin_ctx octx = {
        .loop = loop,
        .name = "out.kafka",
        .hostname = hostname,
        .state_dir = state_dir,
        .metrics = metrics,
        .on_topology = shipper_on_topology,
        .topology_arg = s,
    };
    rc = s->output->new (&octx, &conf->output, &s->out, err);
    if (rc != 0) {
        s->out = NULL;
        goto fail;
    }
    struct agent_pipeline_opts po = {
        .batch_bytes = conf->output.batch_bytes,
        .linger_ms = conf->output.linger_ms,
        .codec = conf->output.compression == OUT_KAFKA_COMPRESS_GZIP ? SL_BATCH_CODEC_GZIP
                                                                     : SL_BATCH_CODEC_NONE,
        .level = (int)conf->output.compression_level,
        .memory_limit = conf->memory_limit,
        .encode_thread = true,
    };
    rc = agent_pipeline_new(loop, &po, s->output, s->out, metrics, &s->pipe, err);
    if (rc != 0)
        goto fail;
    rc = inputs_create(s, &conf->sources, &s->inputs, err);
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    agent_shipper_free(s);
    return rc;
}

int agent_shipper_start(struct agent_shipper *s, struct sl_err *err)
{
    int rc = s->output->start(s->out, err);
    if (rc != 0)
        return rc;
    for (struct shipper_input *in = s->inputs; in; in = in->next) {
        rc = in->plugin->start(in->self, err);
        if (rc != 0) {
            sl_err_prefix(err, "source '%s': ", in->conf.name);
            return rc;
        }
    }
    s->status_at = ev_now(s->loop);
    return 0;
}

static void shipper_on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent_shipper *s = sl_container_of(w, struct agent_shipper, drain);
    bool idle = agent_pipeline_idle(s->pipe);
    if (!idle && ev_now(loop) < s->drain_deadline)
        return;
    ev_timer_stop(loop, w);
    if (!idle) {
        struct agent_pipeline_stats st;
        agent_pipeline_stats(s->pipe, &st);
        SL_WARN(WHO,
                "shutdown: %llu batches (%zu bytes) not acknowledged after %lld ms; they "
                "will be read again at the next start",
                (unsigned long long)st.batches_out, st.memory, (long long)s->shutdown_timeout_ms);
    }
    if (s->drain_done)
        s->drain_done(s->drain_arg);
}

void agent_shipper_drain(struct agent_shipper *s, void (*done)(void *arg), void *arg)
{
    for (struct shipper_input *in = s->inputs; in; in = in->next)
        in->plugin->stop(in->self);
    agent_pipeline_flush(s->pipe);
    s->drain_done = done;
    s->drain_arg = arg;
    s->drain_deadline = ev_now(s->loop) + (double)s->shutdown_timeout_ms / 1000.0;
    ev_timer_stop(s->loop, &s->drain);
    ev_init(&s->drain, shipper_on_drain);
    ev_timer_set(&s->drain, 0, DRAIN_POLL);
    ev_timer_start(s->loop, &s->drain);
}

int agent_shipper_reload(struct agent_shipper *s, struct agent_shipper_conf *fresh,
                         struct sl_err *err)
{
    struct shipper_input *old = s->inputs;
    /* Stop the old ones first so each checkpoint is saved before its successor loads it. */
    for (struct shipper_input *in = old; in; in = in->next)
        in->plugin->stop(in->self);
    struct shipper_input *created = NULL;
    int rc = inputs_create(s, &fresh->sources, &created, err);
    if (rc == 0) {
        for (struct shipper_input *in = created; in && rc == 0; in = in->next)
            rc = in->plugin->start(in->self, err);
    }
    if (rc != 0) {
        while (created) {
            struct shipper_input *n = created->next;
            input_free(created);
            created = n;
        }
        for (struct shipper_input *in = old; in; in = in->next)
            in->plugin->start(in->self, NULL);
        return rc;
    }
    s->inputs = created;
    while (old) {
        struct shipper_input *n = old->next;
        input_free(old);
        old = n;
    }
    size_t n = 0;
    for (struct shipper_input *in = s->inputs; in; in = in->next)
        n++;
    SL_NOTICE(WHO, "sources reloaded: %zu running", n);
    return 0;
}

void agent_shipper_stats(const struct agent_shipper *s, struct agent_pipeline_stats *st)
{
    agent_pipeline_stats(s->pipe, st);
}

void agent_shipper_status(struct agent_shipper *s, struct sl_buf *line)
{
    struct agent_pipeline_stats st;
    agent_pipeline_stats(s->pipe, &st);
    double now = ev_now(s->loop);
    double dt = now - s->status_at;
    double rate = dt > 0 ? (double)(st.records_in - s->status_in) / dt : 0;
    s->status_at = now;
    s->status_in = st.records_in;
    uint64_t lag = 0;
    for (struct shipper_input *in = s->inputs; in; in = in->next)
        if (in->self && in->plugin->lag_bytes)
            lag += in->plugin->lag_bytes(in->self);
    sl_buf_printf(line, "%.0f lines/s, %llu acked, lag %llu bytes, queue %zu bytes%s", rate,
                  (unsigned long long)st.records_acked, (unsigned long long)lag, st.memory,
                  st.paused ? ", paused (memory full)" : "");
}

void agent_shipper_free(struct agent_shipper *s)
{
    if (!s)
        return;
    ev_timer_stop(s->loop, &s->drain);
    for (struct shipper_input *in = s->inputs; in; in = in->next)
        if (in->self)
            in->plugin->stop(in->self);
    /* Order matters: the output hands its batches back (SL_ECLOSED: spans abandoned, so
     * checkpoints stay), then inputs write their final checkpoints and put their topics back
     * into the still living pipeline, which goes last with its open batches. */
    if (s->out) {
        s->output->stop(s->out);
        s->output->free(s->out);
    }
    while (s->inputs) {
        struct shipper_input *n = s->inputs->next;
        input_free(s->inputs);
        s->inputs = n;
    }
    agent_pipeline_free(s->pipe);
    sl_free(s);
}
