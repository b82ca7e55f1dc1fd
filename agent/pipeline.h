/* The agent's pipeline: takes records from inputs, partitions them like Kafka's default
 * partitioner, batches them per topic-partition, encodes each batch once, hands it to the
 * output, and moves the inputs' checkpoints when it is acknowledged. */
#ifndef SL_AGENT_PIPELINE_H
#define SL_AGENT_PIPELINE_H

#include "common/batch.h"
#include "common/err.h"
#include "common/metrics.h"
#include "plugins/plugin.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agent_pipeline_opts {
    int64_t batch_bytes;       /* a batch closes once its records reach this size */
    int64_t linger_ms;         /* ... or this long after its first record */
    enum sl_batch_codec codec; /* NONE or GZIP */
    int level;                 /* gzip level, -1..9 */
    int64_t memory_limit;      /* bytes held (open batches + encoded, unacknowledged): inputs pause
                                  at this, and resume below three quarters of it */
    bool encode_thread;        /* gzip closed batches on a worker thread (agent/encoder.h)
                                  rather than on the loop */
};

struct agent_pipeline_stats {
    uint64_t records_in;     /* records taken from inputs */
    uint64_t records_acked;  /* records in acknowledged batches */
    uint64_t records_failed; /* records in batches refused for good */
    uint64_t batches_open;   /* batches still collecting records */
    uint64_t batches_out;    /* batches closed (being encoded, or with the output), not done */
    size_t memory;           /* bytes held, as counted against memory_limit */
    double paused_seconds;   /* total time inputs were told to wait because memory was full */
    bool paused;
};

struct agent_pipeline;

/*
 * Creates a pipeline on loop that ships through `output` (an output plugin and its instance,
 * both borrowed; the instance must outlive the pipeline's batches: free the pipeline after
 * the output). metrics may be NULL. Returns 0 with *out set, or -EINVAL (bad opts), -ENOMEM,
 * with err filled. Arms no watcher until records arrive.
 */
int agent_pipeline_new(struct ev_loop *loop, const struct agent_pipeline_opts *opts,
                       const struct plugin *output, void *output_self, struct sl_metrics *metrics,
                       struct agent_pipeline **out, struct sl_err *err);

/* The sink inputs emit into (valid while the pipeline lives). */
struct plugin_sink *agent_pipeline_sink(struct agent_pipeline *p);

/* For the output's ctx.on_topology (arg: the pipeline): partition counts may have become
 * known; waiting inputs are resumed. */
void agent_pipeline_on_topology(void *arg);

/* Closes every open batch now and hands it to the output (graceful stop, tests). */
void agent_pipeline_flush(struct agent_pipeline *p);

/* Fills st. */
void agent_pipeline_stats(const struct agent_pipeline *p, struct agent_pipeline_stats *st);

/* True when nothing is open or waiting for an acknowledgement (a graceful stop may end). */
bool agent_pipeline_idle(const struct agent_pipeline *p);

/*
 * Stops the pipeline's watchers and frees it. Open batches are dropped without being sent
 * (their records' checkpoints do not move). Batches still with the output must have been
 * handed back first (free the output before the pipeline: it calls their done with
 * SL_ECLOSED). Every input must have been stopped, and its waiters cancelled. NULL-safe.
 */
void agent_pipeline_free(struct agent_pipeline *p);

#endif
