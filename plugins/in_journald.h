/* in_journald: reads the systemd journal (or a journal folder or files) through sd-journal, turns
 * each entry into a record, and checkpoints the cursor of the last acknowledged entry. */
#ifndef SL_PLUGINS_IN_JOURNALD_H
#define SL_PLUGINS_IN_JOURNALD_H

#include "common/conf.h"
#include "common/err.h"
#include "plugins/plugin.h"

#include <stdint.h>

enum in_journald_read_from { IN_JOURNALD_FROM_HEAD = 0, IN_JOURNALD_FROM_TAIL = 1 };

/* The journald-specific options of a source (`type: journald`). */
struct in_journald_conf {
    struct sl_conf_list matches; /* owned: "FIELD=value" items, "+" between OR-ed groups */
    struct sl_conf_list units;   /* owned: unit names (".service" added when no suffix) */
    int priority;                /* 0..7: entries of this level or more severe; 7: no filter */
    int read_from;               /* enum in_journald_read_from: the very first start only */
    char *directory;             /* owned; NULL: the system journal (or `files`) */
    struct sl_conf_list files;   /* owned: journal files read instead of the system journal */
    struct sl_conf_list journal_fields; /* owned: journal fields added to records; "*": all */
    int64_t max_entry_bytes;            /* longer field values are cut, record marked */
    int64_t checkpoint_interval_ms;
    int64_t reopen_ms; /* how often an absent or unreadable journal is looked for again */
};

extern const struct sl_conf_section in_journald_section;
extern const struct plugin in_journald_plugin;

/*
 * Checks one `matches` item: "+" (starts a new OR-ed group) or FIELD=value with FIELD a
 * journal field name (see in_journald_field_name_ok). Returns 0, or SL_ECONFIG with err
 * saying what is wrong (the message reads after "'matches' item 'x' ").
 */
int in_journald_match_check(const char *item, struct sl_err *err);

/* True when name[0..len) is a journal data field name: 1 to 64 of A-Z, 0-9 and '_', not
 * starting with a digit, and not starting with "__" (those are cursor and timestamp
 * addresses, not data). */
bool in_journald_field_name_ok(const char *name, size_t len);

/* Writes the unit name journalctl -u would match for `unit` into out (size bytes): unit itself
 * when it has a suffix (".service", ".socket", ...), else unit + ".service". Returns 0, or
 * SL_ETOOBIG when it does not fit. */
int in_journald_unit_name(const char *unit, char *out, size_t size);

#endif
