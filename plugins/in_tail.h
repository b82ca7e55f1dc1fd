/* in_tail: follows files matched by globs (inotify plus a periodic rescan), turns lines into
 * records, and checkpoints per file what the collectors acknowledged. */
#ifndef SL_PLUGINS_IN_TAIL_H
#define SL_PLUGINS_IN_TAIL_H

#include "common/conf.h"
#include "plugins/plugin.h"

#include <stdint.h>

enum in_tail_read_from { IN_TAIL_FROM_HEAD = 0, IN_TAIL_FROM_TAIL = 1 };

/* The tail-specific options of a source (`type: tail`). */
struct in_tail_conf {
    struct sl_conf_list paths;   /* owned: globs */
    struct sl_conf_list exclude; /* owned: globs matched against the full path */
    int read_from;               /* enum in_tail_read_from: files found at the first start */
    char *multiline_start;       /* owned; NULL: one record per line */
    int64_t multiline_timeout_ms;
    int64_t max_line_bytes;
    int64_t partial_timeout_ms; /* a last line without newline is sent after this */
    int64_t rescan_ms;
    int64_t idle_close_ms; /* close a file unchanged this long (reopened when it grows) */
    int64_t max_open_files;
    int64_t max_rotated_open; /* rotated/deleted files held open until shipped */
    int64_t read_bytes;       /* read(2) size */
    int64_t checkpoint_interval_ms;
};

extern const struct sl_conf_section in_tail_section;
extern const struct plugin in_tail_plugin;

#endif
