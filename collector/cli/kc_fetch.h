/* The fetch loop: positions per partition, one Fetch (v4-11) per leader in flight at a time,
 * answers gathered with poll(), records handed to a callback in offset order per partition. */
#ifndef SL_CLI_KC_FETCH_H
#define SL_CLI_KC_FETCH_H

#include "collector/cli/kclient.h"
#include "common/batch.h"

/* One partition being read. */
struct kc_fetch_part {
    char *topic; /* owned */
    int32_t partition;
    int32_t leader;         /* node id, refreshed from metadata after leader errors */
    int64_t offset;         /* next offset to hand out */
    int64_t stop;           /* hand out offsets below this only; -1: no end (follow) */
    int64_t high_watermark; /* from the last answer, -1 before */
    int64_t log_start;      /* from the last answer (v5+), -1 before */
    int32_t max_bytes;      /* partition_max_bytes; grows when a batch does not fit */
    bool done;              /* stop reached */
    int errors;             /* retriable errors in a row */
    /* Prefetch: fetch_offset of the answer being read (-1: not tracked), and of the request
     * sent ahead while it is read (-1: none). An answer whose asked offset is no longer the
     * position (the caller moved it, or stopped early) is dropped for that partition. */
    int64_t asked, ahead;
};

/*
 * Called once per record, in offset order within a partition. rec's views live until the
 * callback returns. Returns 0 to go on, 1 to stop after this record (the position stays just
 * past it), or a negative error that kc_fetcher_poll returns as is.
 */
typedef int (*kc_record_fn)(void *arg, struct kc_fetch_part *fp, const struct sl_batch_record *rec);

/* What to do when a position falls outside the log (retention deleted it). */
enum kc_reset { KC_RESET_EARLIEST, KC_RESET_LATEST, KC_RESET_FAIL };

/* A Fetch sent ahead, whose answer the next kc_fetcher_poll reads first. */
struct kc_fetch_flight {
    struct kc_conn *c; /* borrowed from the client */
    int32_t leader;
    int16_t version;
};

struct kc_fetcher {
    struct kc_client *cl;        /* borrowed */
    struct kc_fetch_part *parts; /* owned */
    size_t nparts;
    int32_t max_wait_ms; /* long poll */
    int32_t min_bytes;
    int32_t max_bytes; /* per answer */
    enum kc_reset reset;
    struct sl_buf scratch; /* owned: decompressed records */
    uint64_t records;      /* handed out so far */
    uint64_t bytes;        /* record batch bytes received */
    /* Send the next Fetch to a leader as soon as its answer arrives, before handing out its
     * records, so the leader prepares the next answer while the caller works through this
     * one (the sink: its files and compressors). Positions are predicted from the answer's
     * batch headers; see kc_fetch_part.asked. */
    bool prefetch;
    struct kc_fetch_flight *flights; /* owned: Fetches sent ahead, one per leader at most */
    size_t nflights;
};

/* Prepares an empty fetcher; allocates nothing. */
void kc_fetcher_init(struct kc_fetcher *f, struct kc_client *cl);

/* Frees the parts and buffers; NULL-safe. */
void kc_fetcher_fini(struct kc_fetcher *f);

/* Forgets every partition (a group member's assignment changed); connections with a Fetch
 * sent ahead are closed, as their answers would come out of step. */
void kc_fetcher_clear(struct kc_fetcher *f);

/* Adds a partition to read from offset up to stop (exclusive; -1: forever). Returns 0 or
 * -ENOMEM. */
int kc_fetcher_add(struct kc_fetcher *f, const char *topic, int32_t partition, int32_t leader,
                   int64_t offset, int64_t stop);

/* True when every partition reached its stop (and there is at least none left to read). */
bool kc_fetcher_done(const struct kc_fetcher *f);

/*
 * One round: sends a Fetch to each leader of the partitions not done, waits (up to the long
 * poll plus the client's timeout) for every answer, and hands each new record to fn. Returns
 * 0; 1 when fn asked to stop; -EINTR when a signal interrupted the wait; or an error (network,
 * protocol, a partition error that retrying did not cure) with err set.
 */
int kc_fetcher_poll(struct kc_fetcher *f, kc_record_fn fn, void *arg, struct sl_err *err);

/* Appends a Fetch v4-11 body asking for the partitions of f led by `leader`. */
void kc_fetch_req(struct sl_buf *b, int16_t version, const struct kc_fetcher *f, int32_t leader);

/*
 * Decodes a Fetch v4-11 answer, hands the records to fn and moves the positions. Partition
 * errors are handled here (out of range: reset; leader moved: refreshed next round). Returns
 * 0, 1 (fn asked to stop), fn's error, or the reader's or a batch's error.
 */
int kc_fetch_parse(struct kc_fetcher *f, struct sl_reader *r, int16_t version, int32_t leader,
                   kc_record_fn fn, void *arg, struct sl_err *err);

#endif
