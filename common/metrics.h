/* A registry of counters, gauges and histograms, rendered in Prometheus text format 0.0.4. */
#ifndef SL_COMMON_METRICS_H
#define SL_COMMON_METRICS_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Contract shared by everything below:
 *
 * - Single-threaded. The registry and every handle belong to the thread that runs the libev
 *   loop; nothing here takes a lock or uses atomics.
 * - A metric family is a name with a type, a help text, the names of its labels and (for
 *   histograms) its bucket bounds. A series is one set of constant label values within a family.
 *   Registering the first series of a name creates the family; later series of the same name
 *   must repeat the same type, help, label names (same order) and bounds, or registration fails
 *   with -EINVAL. Registering the same label values twice fails with -EEXIST.
 * - A handle (struct sl_metric *) stays valid until sl_metrics_remove or sl_metrics_free. Hot
 *   path updates through it do no lookup and no allocation; a NULL handle is a no-op, so code
 *   may run without a registry. Using a handle of the wrong kind is a programmer error
 *   (SL_ASSERT).
 * - Names match [a-zA-Z_:][a-zA-Z0-9_:]*; label names match [a-zA-Z_][a-zA-Z0-9_]* and do not
 *   start with "__"; a histogram may not have a label named "le", and no family may take a name
 *   that a histogram's _bucket/_sum/_count series already use (or the reverse). Help texts and
 *   label values must be valid UTF-8 (they may come from configuration: topic names).
 * - Strings passed in are copied; the caller keeps ownership of its own.
 */

struct sl_metrics; /* the registry */
struct sl_metric;  /* one series */

/* One constant label, e.g. {"topic", "nginx"}. Both strings are borrowed for the call. */
struct sl_metric_label {
    const char *name;
    const char *value;
};

/* Computes a gauge's value at scrape time; must not register or remove metrics. */
typedef double (*sl_metric_gauge_fn)(void *arg);

/* Creates an empty registry; NULL when out of memory. */
struct sl_metrics *sl_metrics_new(void);

/* Frees the registry and every series in it (all handles become invalid). NULL-safe. */
void sl_metrics_free(struct sl_metrics *reg);

/*
 * Registers one series and stores its handle in *out (left untouched on failure). help may be
 * NULL (no HELP line); labels may be NULL when nlabels is 0. Returns 0, -EINVAL (bad name,
 * label or UTF-8; family mismatch), -EEXIST (same family and label values already registered)
 * or -ENOMEM; err gets the detail.
 */
int sl_metrics_add_counter(struct sl_metrics *reg, const char *name, const char *help,
                           const struct sl_metric_label *labels, size_t nlabels,
                           struct sl_metric **out, struct sl_err *err);
/* A gauge holding a double, set by the owner (sl_metric_set / sl_metric_gauge_add). A double
 * rather than an int64: Prometheus samples are float64 anyway, gauges carry seconds and ratios,
 * and integers stay exact up to 2^53. */
int sl_metrics_add_gauge(struct sl_metrics *reg, const char *name, const char *help,
                         const struct sl_metric_label *labels, size_t nlabels,
                         struct sl_metric **out, struct sl_err *err);
/* A gauge whose value fn(arg) computes at each render; it belongs to the same "gauge" family
 * type as plain gauges, so both kinds may share a name. fn must not be NULL; arg is borrowed
 * and must outlive the series. */
int sl_metrics_add_gauge_fn(struct sl_metrics *reg, const char *name, const char *help,
                            const struct sl_metric_label *labels, size_t nlabels,
                            sl_metric_gauge_fn fn, void *arg, struct sl_metric **out,
                            struct sl_err *err);
/* A histogram with the given upper bounds (finite, strictly increasing; copied). nbounds may be
 * 0; the +Inf bucket is always added and must not be passed. */
int sl_metrics_add_histogram(struct sl_metrics *reg, const char *name, const char *help,
                             const struct sl_metric_label *labels, size_t nlabels,
                             const double *bounds, size_t nbounds, struct sl_metric **out,
                             struct sl_err *err);

/* Removes and frees one series (a deleted topic); the handle is invalid afterwards. A family
 * left without series disappears from the output and its name may be registered anew.
 * NULL-safe. */
void sl_metrics_remove(struct sl_metrics *reg, struct sl_metric *m);

/* Appends the whole registry to out in the text exposition format 0.0.4: families in
 * registration order, HELP and TYPE once per family, its series in registration order. Calls
 * every gauge fn once. Returns 0, or out's sticky error (-ENOMEM). */
int sl_metrics_render(const struct sl_metrics *reg, struct sl_buf *out);

/* Hot path. Counters: add 1 / add n (wraps at 2^64). */
void sl_metric_inc(struct sl_metric *c);
void sl_metric_add(struct sl_metric *c, uint64_t n);
/* Gauges (not gauge fns): set the value / add a signed delta. */
void sl_metric_set(struct sl_metric *g, double v);
void sl_metric_gauge_add(struct sl_metric *g, double delta);
/* Histograms: counts v in the first bucket whose bound is >= v (a value exactly on a bound goes
 * in that bucket), adds it to the sum. NaN lands in +Inf only and makes the sum NaN. */
void sl_metric_observe(struct sl_metric *h, double v);

/* Readers for tests and status pages. sl_metric_count: a counter's value or a histogram's
 * count (0 for gauges). sl_metric_value: a gauge's value (calling a gauge fn), a counter's value
 * as a double, or a histogram's sum. Both return 0 for NULL. */
uint64_t sl_metric_count(const struct sl_metric *m);
double sl_metric_value(const struct sl_metric *m);

/* Formats v as the exposition format writes sample values and le bounds: "+Inf", "-Inf",
 * "NaN", else the shortest of %.15g..%.17g that reads back exactly. buf must hold 32 bytes;
 * returns buf. Exposed for tests and other renderers. */
char *sl_metrics_format_double(double v, char buf[32]);

#endif
