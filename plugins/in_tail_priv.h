/* in_tail's internals, shared by its files: the instance, one followed file, and the calls
 * between the scanner (in_tail.c) and the reader (in_tail_read.c). */
#ifndef SL_PLUGINS_IN_TAIL_PRIV_H
#define SL_PLUGINS_IN_TAIL_PRIV_H

#include "common/buf.h"
#include "common/metrics.h"
#include "plugins/in_tail.h"
#include "plugins/in_tail_ckpt.h"
#include "common/json.h"
#include "plugins/plugin.h"

#include <ev.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#define IN_TAIL_WD_BUCKETS 256
/* Files read to their end and let go, remembered (and checkpointed) so that a rotated name a
 * glob also matches (app.log.1 under app.log*) is not read again from its start. */
#define IN_TAIL_GONE_MAX 1024

/* One followed file (an inode), from discovery until it is released and fully acknowledged. */
struct tail_file {
    struct in_tail *t;       /* borrowed */
    struct tail_file *next;  /* t->files */
    struct tail_file *rnext; /* t's ready list */
    struct tail_file *wnext; /* t's watch hash chain */
    bool in_ready;
    char *path;   /* owned: the name it was found under */
    char *source; /* owned: "file:<path>" */
    uint64_t dev, ino;
    uint32_t fp_len, fp_crc; /* fingerprint of the first fp_len bytes */
    int fd;                  /* -1: closed (idle, or released) */
    int wd;                  /* inotify watch, -1: none */
    uint64_t read_pos;       /* file offset after the bytes read so far */
    uint64_t size;           /* last size seen */
    struct sl_buf buf;       /* owned: bytes read, not yet consumed from buf_off on */
    size_t buf_off;
    uint64_t buf_start; /* file offset of buf.data[0] */
    struct plugin_ack_owner ack;
    bool rotated;         /* its path names another file or nothing: drain, then release */
    bool released;        /* drained and closed; freed once nothing is in flight */
    bool seen;            /* found by the current rescan */
    bool skipping;        /* dropping the rest of an overlong line */
    double last_data;     /* when bytes were last read */
    double partial_since; /* when an unterminated last line was first seen at EOF; 0 none */
    struct sl_buf ml;     /* owned: the multiline record being joined */
    uint64_t ml_end;
    double ml_last;
    bool ml_truncated;
    struct sl_metric *m_lag; /* per-file lag gauge; NULL without metrics */
};

struct in_tail {
    struct plugin_ctx ctx;                /* copy; strings borrowed */
    const struct in_tail_conf *conf;      /* borrowed */
    const struct plugin_source_conf *src; /* borrowed */
    struct plugin_topic *topic;           /* the sink's handle */
    struct tail_file *files;
    struct tail_file *ready_head, *ready_tail;
    struct tail_file *by_wd[IN_TAIL_WD_BUCKETS];
    int *dir_wds; /* owned: watched folders */
    size_t ndir_wds, cap_dir_wds;
    int ino_fd;
    ev_io ino_io;
    ev_timer rescan; /* periodic, and soon after a folder changed */
    ev_timer kick;   /* zero timer: read the ready files */
    ev_timer house;  /* partial lines, multiline timeouts, idle files */
    ev_timer save;   /* checkpoint writes */
    struct plugin_waiter waiter;
    bool blocked; /* the sink said -EAGAIN; waiting for on_resume */
    bool started;
    bool first_scan;
    bool dirty;                 /* checkpoint changed since the last save */
    char *ckpt_path;            /* owned */
    struct in_tail_ckpt loaded; /* owned: the table read at start */
    struct in_tail_ckpt gone;   /* owned: released files, newest last, IN_TAIL_GONE_MAX */
    bool has_re;
    regex_t ml_re;
    struct sl_buf rec;   /* owned: scratch for one record value */
    struct sl_buf key;   /* owned: scratch for a key decoded from a JSON line (key: field) */
    struct sl_buf line;  /* owned: scratch for a line matched against multiline_start */
    struct sl_buf fixed; /* owned: ,"host":"..." and the extra fields, as JSON */
    struct sl_json_clock clock;
    size_t open_files;
    size_t rotated_open;
    uint64_t lines, bytes, truncated;
    struct sl_metric *m_lines, *m_bytes, *m_truncated, *m_rotations;
};

/* Reading (in_tail_read.c). */

enum tail_read_result { TAIL_IDLE, TAIL_MORE, TAIL_BLOCKED };

/* Reads and emits up to `budget` bytes of f. Returns TAIL_IDLE at its end (nothing more now),
 * TAIL_MORE when the budget ran out, TAIL_BLOCKED when the sink refused a record (the waiter is
 * queued). May release f (rotated and drained). */
enum tail_read_result tail_file_read(struct tail_file *f, size_t budget);

/* Emits the pending multiline record if its timeout passed (or `force`). Returns 0 or -EAGAIN. */
int tail_file_flush_multiline(struct tail_file *f, bool force);

/* Scanner calls the reader uses (in_tail.c). */
void tail_file_release(struct tail_file *f);
int tail_file_reopen(struct tail_file *f);
void tail_file_restart(struct tail_file *f, const char *why);
/* Checks that f (open) is still the file we read: a size below the read position (truncated)
 * or changed first bytes (copytruncate, rewrite) restart it from 0. Returns 1 when restarted,
 * else 0. Called before each reading turn and by every rescan. */
int tail_file_verify(struct tail_file *f);

#endif
