/* The agent's shipping core: the sources, the pipeline and the output wired together, with
 * graceful drain on SIGTERM, source reload on SIGHUP and a status line. main.c drives it. */
#ifndef SL_AGENT_SHIPPER_H
#define SL_AGENT_SHIPPER_H

#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/metrics.h"
#include "plugins/out_kafka.h"
#include "plugins/plugin.h"

#include <ev.h>
#include <stdint.h>

/* The configuration the shipper needs; embedded in the agent's conf (see agent_shipper_opts). */
struct agent_shipper_conf {
    struct sl_conf_map sources; /* of struct plugin_source_conf */
    struct out_kafka_conf output;
    int64_t memory_limit;        /* bytes */
    int64_t shutdown_timeout_ms; /* SIGTERM: wait this long for acknowledgements */
};

/* Option entries for the agent's root table, one per key above, with offsets relative to a
 * struct agent_shipper_conf: the caller copies them into its table adding the offset of its
 * embedded struct (AGENT_SHIPPER_OPTS does that). */
#define AGENT_SHIPPER_OPTS(base)                                                                   \
    {.name = "sources",                                                                            \
     .type = SL_CONF_MAP,                                                                          \
     .offset = (base) + offsetof(struct agent_shipper_conf, sources),                              \
     .sub = &plugin_source_section,                                                                \
     .help = "what to read, by name: each has a type (tail, journald) and a topic"},               \
        {.name = "output",                                                                         \
         .type = SL_CONF_SECTION,                                                                  \
         .offset = (base) + offsetof(struct agent_shipper_conf, output),                           \
         .sub = &out_kafka_section,                                                                \
         .help = "the collectors records are produced to, and batching"},                          \
        {.name = "memory_limit",                                                                   \
         .type = SL_CONF_SIZE,                                                                     \
         .offset = (base) + offsetof(struct agent_shipper_conf, memory_limit),                     \
         .def = "8MiB",                                                                            \
         .min = 64 * 1024,                                                                         \
         .max = (int64_t)1 << 40,                                                                  \
         .help = "bytes of records held before reading pauses (files are the buffer)"},            \
    {                                                                                              \
        .name = "shutdown_timeout", .type = SL_CONF_DURATION,                                      \
        .offset = (base) + offsetof(struct agent_shipper_conf, shutdown_timeout_ms), .def = "10s", \
        .min = 0, .max = 3600000,                                                                  \
        .help = "on SIGTERM, how long to wait for the last acknowledgements"                       \
    }

struct agent_shipper;

/*
 * Creates the output, the pipeline and one input per source, without starting anything.
 * Takes ownership of every element of conf->sources (they are moved out: the map is left
 * with zeroed elements, which sl_conf_free accepts); conf->output is borrowed and must outlive
 * the shipper. hostname, state_dir and metrics (may be NULL) are borrowed too. Returns 0 with
 * *out set, or a negative code with err filled (nothing is left allocated).
 */
int agent_shipper_new(struct ev_loop *loop, struct agent_shipper_conf *conf, const char *hostname,
                      const char *state_dir, struct sl_metrics *metrics, struct agent_shipper **out,
                      struct sl_err *err);

/* Starts the output, then every input. Returns 0 or the first error (err filled). */
int agent_shipper_start(struct agent_shipper *s, struct sl_err *err);

/*
 * Graceful stop: stops every input (they save their checkpoints), closes the open batches,
 * and calls done(arg) once every batch is acknowledged or shutdown_timeout passed. The
 * checkpoints are final once agent_shipper_free ran.
 */
void agent_shipper_drain(struct agent_shipper *s, void (*done)(void *arg), void *arg);

/*
 * SIGHUP: replaces the sources with those of fresh->sources (taking ownership of its
 * elements, as agent_shipper_new does): removed ones stop and save their checkpoints, kept
 * and added ones (re)start from theirs, so positions survive (records in flight at that
 * moment may be sent twice). The output is kept as it is; a changed `output:` needs a restart
 * (logged). Returns 0, or a negative code with err filled: then the old sources keep running
 * and fresh's elements are left to the caller.
 */
int agent_shipper_reload(struct agent_shipper *s, struct agent_shipper_conf *fresh,
                         struct sl_err *err);

/* Appends "<lines/s> lines/s, <n> acked, queue <bytes>, lag <bytes>" (rates since the last
 * call) for sd_notify STATUS. */
void agent_shipper_status(struct agent_shipper *s, struct sl_buf *line);

/* The pipeline's counters (tests, status pages). */
struct agent_pipeline_stats;
void agent_shipper_stats(const struct agent_shipper *s, struct agent_pipeline_stats *st);

/* Stops everything and frees it; batches not acknowledged are dropped without moving any
 * checkpoint, then inputs write their final checkpoints. NULL-safe. */
void agent_shipper_free(struct agent_shipper *s);

#endif
