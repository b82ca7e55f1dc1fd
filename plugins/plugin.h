/* The plugin interface: what an input or output is, the record an input hands to the pipeline,
 * the batches an output ships, and the acknowledgement spans that move checkpoints. */
#ifndef SL_PLUGINS_PLUGIN_H
#define SL_PLUGINS_PLUGIN_H

/*
 * How the pieces meet (plugins/ knows nothing of agent/: the pipeline implements the sink):
 *
 *   input --emit(record)--> sink (agent pipeline) --send(batch)--> output (out_kafka)
 *     ^                       |                                      |
 *     |   on_resume (waiter)  |  <--------- done(batch, status) -----+
 *     +-----------------------+  spans of the batch acked -> owner->on_ack -> checkpoint
 *
 * Acknowledgements. Every record names its owner (an input's file) and the owner's position
 * just after it. The pipeline groups consecutive records of one owner that land in the same
 * batch into a span; spans are chained per owner in emission order. When a batch is
 * acknowledged its spans are marked done, and each owner advances `acked` over the done spans
 * at the head of its chain only, so a checkpoint never passes a record still in flight, even
 * when records of one file go to several partitions and their batches finish out of order:
 *
 *   owner chain:  [A1 end=10 done] -> [B1 end=20 .] -> [A2 end=30 done] -> [B2 end=40 .]
 *   acked = 10; B1's ack then moves it to 30 (A2 is done too); B2's to 40.
 */

#include "common/batch.h"
#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/metrics.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- acknowledgement spans ---------------------------------------------------------------- */

struct plugin_ack_owner;

/* A run of consecutive records of one owner inside one batch. Allocated by the pipeline. */
struct plugin_ack_span {
    struct plugin_ack_span *next;       /* in the owner's chain */
    struct plugin_ack_span *batch_next; /* in the batch's list */
    struct plugin_ack_owner *owner;     /* borrowed; NULL once the owner was finalized */
    uint64_t batch;                     /* id of the batch holding the span; 0: abandoned */
    uint64_t end;                       /* owner position after the span's last record */
    uint64_t records;
    bool done;
    bool in_batch; /* still listed by its batch */
};

/* Something whose position is checkpointed: embedded in its owner (an input's file). */
struct plugin_ack_owner {
    struct plugin_ack_span *head, *tail; /* borrowed: the spans not yet folded into acked */
    uint64_t acked;                      /* every record before this position is acknowledged */
    uint64_t records_acked;
    /* Called after acked moved forward (from the loop thread, in the output's done path). */
    void (*on_ack)(struct plugin_ack_owner *o);
};

/* Prepares an owner whose records start at position `acked`; on_ack may be NULL. */
void plugin_ack_owner_init(struct plugin_ack_owner *o, uint64_t acked,
                           void (*on_ack)(struct plugin_ack_owner *o));

/* Detaches every pending span (those still in a batch are then freed by the batch's
 * done/abandon and ignored otherwise), so the owner may be freed while batches are in flight. */
void plugin_ack_owner_fini(struct plugin_ack_owner *o);

/* True when some record of o is still unacknowledged. */
static inline bool plugin_ack_owner_pending(const struct plugin_ack_owner *o)
{
    return o->head != NULL;
}

/*
 * Accounts one record of owner o ending at position `end` to the batch with id `batch`
 * (never 0, never reused), extending o's tail span when it belongs to the same batch, or else
 * taking *spare (allocated with sl_malloc by the caller) as a new span, linked at the head of
 * *batch_spans, and setting *spare to NULL (the caller then needs a new spare before the next
 * call). end must not go backwards. Spans are freed by plugin_ack_done/abandon or by the
 * owner's fini, whichever lets go last.
 */
void plugin_ack_add(struct plugin_ack_owner *o, uint64_t batch, uint64_t end,
                    struct plugin_ack_span **spare, struct plugin_ack_span **batch_spans);

/* The batch holding s was acknowledged: marks s done, advances its owner over the done spans
 * at the head of its chain (calling on_ack once if acked moved) and frees s once nothing
 * refers to it. The caller must not touch s afterwards. */
void plugin_ack_done(struct plugin_ack_span *s);

/* The batch holding s is dropped without an acknowledgement (shutdown): the owner's checkpoint
 * will never pass it. Frees s once nothing refers to it; the caller must not touch s
 * afterwards. */
void plugin_ack_abandon(struct plugin_ack_span *s);

/* ---- records, the sink and backpressure --------------------------------------------------- */

/* One record offered to the pipeline. Everything is borrowed for the call and copied. */
struct plugin_record {
    struct sl_bytes key; /* p NULL: null key (sticky partition) */
    struct sl_bytes value;
    int64_t timestamp; /* ms since the epoch */
    const struct sl_batch_kv *headers;
    size_t header_count;
    struct plugin_ack_owner *owner; /* NULL: nothing to checkpoint */
    uint64_t end;                   /* owner position after this record */
};

/* An input waiting for room in the pipeline; embedded in the input. */
struct plugin_waiter {
    struct plugin_waiter *next; /* the sink's list */
    bool queued;
    /* Called once, from the loop, when emitting may succeed again. */
    void (*on_resume)(struct plugin_waiter *w);
};

struct plugin_topic; /* the sink's handle for one topic */

/* What inputs emit into: the agent's pipeline implements it. */
struct plugin_sink {
    /* Returns a handle for topic `name` (the same handle for the same name), or NULL when out
     * of memory. The handle stays valid until topic_put is called as often as topic_get. */
    struct plugin_topic *(*topic_get)(struct plugin_sink *s, const char *name);
    void (*topic_put)(struct plugin_sink *s, struct plugin_topic *t);
    /* Offers one record. Returns 0 when taken; -EAGAIN when the pipeline is full or the topic's
     * partitions are not known yet: the record was not taken, w is queued and its on_resume
     * runs once when the input should offer it again; SL_ETOOBIG when the record can never fit
     * a batch (the caller cuts it or drops it loudly); -ENOMEM. */
    int (*emit)(struct plugin_sink *s, struct plugin_topic *t, const struct plugin_record *r,
                struct plugin_waiter *w);
    /* Removes w from the waiting list if queued (an input stopping). */
    void (*cancel)(struct plugin_sink *s, struct plugin_waiter *w);
};

/* ---- batches and outputs ------------------------------------------------------------------ */

/* One encoded record batch for one topic-partition, handed by the pipeline to an output. */
struct plugin_batch {
    const char *topic; /* borrowed from the pipeline; valid until done runs */
    int32_t partition;
    struct sl_buf data; /* owned by the pipeline: the record batch v2, encoded once */
    int32_t records;
    /* Set by the pipeline; the output calls it exactly once per send: status 0 when the batch
     * is acknowledged; SL_ECLOSED when the output is freed before it was (not delivered: the
     * checkpoints must not pass it); another negative code when the cluster refused it for
     * good (a non-retriable error: it is skipped, loudly, so one bad batch cannot stall a
     * file forever). */
    void (*done)(struct plugin_batch *b, int status);
    /* The output's: queue link and retry state, zero when sent. */
    struct plugin_batch *next;
    int attempts;
    double not_before; /* ev_now() before which it is not sent again */
};

struct plugin_output_ops {
    /* Returns the partition count of topic (>= 1); 0 when not known yet (the output asks the
     * cluster and later calls the ctx's on_topology); or a negative code when the topic cannot
     * be produced to at all. */
    int32_t (*partitions)(void *self, const char *topic);
    /* Takes b (until its done callback) and ships it; batches of one partition are shipped in
     * the order they were given, one at a time. */
    void (*send)(void *self, struct plugin_batch *b);
    /* Bytes and batches given but not yet done; for status lines and metrics. */
    size_t (*queued)(const void *self);
};

/* ---- configuration shared by every source ------------------------------------------------- */

enum plugin_format { PLUGIN_FORMAT_JSON = 0, PLUGIN_FORMAT_RAW = 1 };
enum plugin_key {
    PLUGIN_KEY_HOST = 0,
    PLUGIN_KEY_PATH,
    PLUGIN_KEY_CONST,
    PLUGIN_KEY_NONE,
    PLUGIN_KEY_FIELD,
};

/* One entry of `sources:`; the type-specific options live in `type.conf`. */
struct plugin_source_conf {
    char *name;                  /* owned: the map key */
    struct sl_conf_variant type; /* owned: the input's own options */
    char *topic;                 /* owned */
    int key;                     /* enum plugin_key */
    char *key_value;             /* owned; the constant key for key: const */
    char *key_field;             /* owned; the field the key is read from, for key: field */
    int format;                  /* enum plugin_format */
    struct sl_conf_list fields;  /* owned: "name=value" added to every JSON record */
};

/* The option tables of the input plugins, NULL-terminated (registry.c): the variants of
 * plugin_source_section. */
extern const struct sl_conf_section *const plugin_input_sections[];

/* The `sources:` element section: common options, and `type` choosing an input's table. */
extern const struct sl_conf_section plugin_source_section;

/* ---- plugins ------------------------------------------------------------------------------ */

enum plugin_kind { PLUGIN_INPUT = 1, PLUGIN_OUTPUT = 2 };

/* What a plugin instance is given when created; everything borrowed for its lifetime. */
struct plugin_ctx {
    struct ev_loop *loop;
    const char *name;           /* instance log prefix, e.g. "in.tail#nginx" */
    const char *hostname;       /* put in records */
    const char *state_dir;      /* checkpoints */
    struct sl_metrics *metrics; /* may be NULL */
    /* Inputs: */
    struct plugin_sink *sink;
    const struct plugin_source_conf *source;
    /* Outputs: called when partition counts may have become known or changed. */
    void (*on_topology)(void *arg);
    void *topology_arg;
};

struct plugin {
    const char *name; /* the `type:` value for inputs ("tail"); "kafka" for the output */
    enum plugin_kind kind;
    const char *help;
    const struct sl_conf_section *section; /* the plugin's own options */
    /* Creates an instance from its parsed options (conf points at section->size bytes).
     * Binds nothing and arms no watcher. Returns 0 with *self set, or a negative code with
     * err filled (then nothing is left allocated). */
    int (*new)(const struct plugin_ctx *ctx, const void *conf, void **self, struct sl_err *err);
    /* Arms the watchers. Returns 0 or a negative code with err filled. */
    int (*start)(void *self, struct sl_err *err);
    /* Disarms every watcher; inputs stop reading and save their checkpoints. Acks arriving
     * afterwards still move checkpoints. Idempotent. */
    void (*stop)(void *self);
    /* Saves what remains (inputs: their checkpoints), releases everything; NULL-safe; the
     * instance must be stopped. */
    void (*free)(void *self);
    /* Inputs, optional (NULL: not measured): bytes of the sources not yet acknowledged (read
     * or not), summed over the instance's files; the agent's STATUS line shows it as lag. */
    uint64_t (*lag_bytes)(void *self);
    const struct plugin_output_ops *output; /* outputs only */
};

/* Every plugin compiled in, in one explicit array (registry.c), and its length. */
extern const struct plugin *const plugin_registry[];
extern const size_t plugin_registry_len;

/* The plugin of that kind and name, or NULL. */
const struct plugin *plugin_find(enum plugin_kind kind, const char *name);

/* The record key for `key: field` from a line p[0..n): when the line is a JSON object with a
 * top-level member named field, its value: a string decoded into scratch (escapes resolved),
 * a number or boolean as written; otherwise (not JSON, no such member, null, an object or an
 * array) SL_BYTES_NULL. The result may point into p or scratch. */
struct sl_bytes plugin_key_from_json(const uint8_t *p, size_t n, const char *field,
                                     struct sl_buf *scratch);

/* Appends the JSON members every record of a source shares, each escaped:
 * ,"host":"<hostname>" then ,"source":"<source>" (when source is not NULL) then one
 * ,"name":"value" per `fields` entry. Returns b's sticky error. */
int plugin_fixed_members(struct sl_buf *b, const char *hostname, const char *source,
                         const struct sl_conf_list *fields);

/* The registered plugin whose option table is `section` (a source's chosen variant), or NULL. */
const struct plugin *plugin_by_section(const struct sl_conf_section *section);

#endif
