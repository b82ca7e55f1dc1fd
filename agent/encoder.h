/* The batch encoder thread: compresses closed batches off the event loop, in order. */
#ifndef SL_AGENT_ENCODER_H
#define SL_AGENT_ENCODER_H

#include "common/batch.h"
#include "common/buf.h"

#include <ev.h>

/*
 * gzip is most of an agent's CPU (zlib level 1 does about 110-150 MB/s per core on log lines);
 * on the loop it would cap reading at what one core compresses. One worker thread encodes while
 * the loop reads on, and jobs come back in the order they went in, so batches of a partition
 * reach the output in order, as they did when encoded inline.
 *
 *   loop: submit(job) --> queue --> worker: sl_batch_builder_finish(job) --> done list
 *         done(job) <-- ev_async <--------------------------------------------'
 */

struct agent_encode_job {
    struct agent_encode_job *next; /* the encoder's lists */
    const struct sl_batch_builder *builder; /* borrowed; not touched by the loop until done */
    struct sl_buf *out;                     /* borrowed; written by the worker */
    int rc;                                 /* sl_batch_builder_finish's result */
    void (*done)(struct agent_encode_job *job); /* called on the loop thread */
};

struct agent_encoder;

/* Starts the worker and its ev_async on loop (borrowed). Returns 0, -ENOMEM or -errno from
 * pthread_create. */
int agent_encoder_new(struct ev_loop *loop, struct agent_encoder **out);

/* Queues job; job->done runs later on the loop thread, jobs in submission order. */
void agent_encoder_submit(struct agent_encoder *e, struct agent_encode_job *job);

/* Jobs submitted and not yet handed to their done. */
size_t agent_encoder_pending(const struct agent_encoder *e);

/* Stops the worker after the job it is on, joins it, and frees e. Jobs not yet done are
 * handed to `abandon` (on the calling thread), in order, instead of their done. NULL-safe. */
void agent_encoder_free(struct agent_encoder *e, void (*abandon)(struct agent_encode_job *job));

#endif
