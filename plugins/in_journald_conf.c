/* in_journald's option table and its validation: matches, units, priority, where the journal
 * is, which fields go into records. */
#include "plugins/in_journald.h"

#include "common/base.h"
#include "common/daemon.h"
#include "plugins/in_journald_rec.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define FIELD_NAME_MAX 64 /* journald's own limit */
#define UNIT_NAME_MAX  256

bool in_journald_field_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > FIELD_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
        return false;
    if (len >= 2 && name[0] == '_' && name[1] == '_')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

int in_journald_match_check(const char *item, struct sl_err *err)
{
    if (strcmp(item, "+") == 0)
        return 0;
    const char *eq = strchr(item, '=');
    if (!eq)
        return sl_err_set(err, SL_ECONFIG, "is not FIELD=value or '+'");
    if (!in_journald_field_name_ok(item, (size_t)(eq - item)))
        return sl_err_set(err, SL_ECONFIG,
                          "has no valid field name before '=' (1 to %d of A-Z, 0-9 and _, not "
                          "starting with a digit or __)",
                          FIELD_NAME_MAX);
    return 0;
}

int in_journald_unit_name(const char *unit, char *out, size_t size)
{
    static const char *const suffixes[] = {".service",   ".socket", ".device", ".mount",
                                           ".automount", ".swap",   ".target", ".path",
                                           ".timer",     ".slice",  ".scope"};
    bool has = false;
    size_t ul = strlen(unit);
    for (size_t i = 0; i < SL_ARRAY_LEN(suffixes) && !has; i++) {
        size_t sl = strlen(suffixes[i]);
        has = ul > sl && strcmp(unit + ul - sl, suffixes[i]) == 0;
    }
    int n = snprintf(out, size, "%s%s", unit, has ? "" : ".service");
    return n < 0 || (size_t)n >= size ? SL_ETOOBIG : 0;
}

/* Unit names: printable ASCII without spaces or '/', like systemd's (checked loosely: a wrong
 * name only matches nothing). */
static bool unit_ok(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > UNIT_NAME_MAX - 9)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f || u[i] == '/')
            return false;
    return true;
}

static void in_journald_check(void *obj, struct sl_conf_check *chk)
{
    struct in_journald_conf *c = obj;
    struct sl_err err;
    for (size_t i = 0; i < c->matches.len; i++) {
        const char *m = c->matches.items[i];
        if (in_journald_match_check(m, &err) != 0)
            sl_conf_check_error(chk, "matches", "'matches' item '%s' %s", m, err.msg);
        bool plus = strcmp(m, "+") == 0;
        if (plus &&
            (i == 0 || i + 1 == c->matches.len || strcmp(c->matches.items[i - 1], "+") == 0))
            sl_conf_check_error(chk, "matches",
                                "'matches': '+' goes between two groups of FIELD=value items "
                                "(item %zu)",
                                i + 1);
    }
    for (size_t i = 0; i < c->units.len; i++)
        if (!unit_ok(c->units.items[i]))
            sl_conf_check_error(chk, "units",
                                "'units' item '%s' is not a unit name (printable, no spaces or "
                                "'/', at most %d bytes)",
                                c->units.items[i], UNIT_NAME_MAX - 9);
    if (c->directory && c->files.len > 0)
        sl_conf_check_error(chk, "files",
                            "'directory' and 'files' exclude each other: set one, or neither "
                            "for the system journal");
    if (c->directory && c->directory[0] != '/')
        sl_conf_check_error(chk, "directory", "'directory' must be absolute (got '%s')",
                            c->directory);
    for (size_t i = 0; i < c->files.len; i++)
        if (c->files.items[i][0] != '/')
            sl_conf_check_error(chk, "files", "'files' must be absolute (got '%s')",
                                c->files.items[i]);
    for (size_t i = 0; i < c->journal_fields.len; i++) {
        const char *f = c->journal_fields.items[i];
        if (strcmp(f, "*") == 0)
            continue;
        if (!in_journald_field_name_ok(f, strlen(f)))
            sl_conf_check_error(chk, "journal_fields",
                                "'journal_fields' item '%s' is not a journal field name (1 to "
                                "%d of A-Z, 0-9 and _, not starting with a digit or __), nor "
                                "'*'",
                                f, FIELD_NAME_MAX);
        else if (in_journald_rec_core_field(f, strlen(f)))
            sl_conf_check_error(chk, "journal_fields",
                                "'journal_fields' item '%s' is in every record already "
                                "(message, priority, pid, syslog_identifier, unit)",
                                f);
    }
}

static const struct sl_conf_enum read_from_enum[] = {
    {"head", IN_JOURNALD_FROM_HEAD}, {"tail", IN_JOURNALD_FROM_TAIL}, {NULL, 0}};

#define OPT(field) .offset = offsetof(struct in_journald_conf, field)

static const struct sl_conf_opt in_journald_opts[] = {
    {.name = "matches",
     .type = SL_CONF_LIST,
     OPT(matches),
     .def = "[]",
     .max = 256,
     .help = "journal matches FIELD=value: different fields AND, same field OR, '+' ORs groups"},
    {.name = "units",
     .type = SL_CONF_LIST,
     OPT(units),
     .def = "[]",
     .max = 256,
     .help = "only these units (_SYSTEMD_UNIT; .service added without a suffix), AND matches"},
    {.name = "priority",
     .type = SL_CONF_ENUM,
     OPT(priority),
     .def = "debug",
     .enums = sl_daemon_log_levels, /* syslog's names and numbers, as PRIORITY= */
     .help = "most verbose PRIORITY shipped; debug ships all, entries without one included"},
    {.name = "read_from",
     .type = SL_CONF_ENUM,
     OPT(read_from),
     .def = "head",
     .enums = read_from_enum,
     .help = "where the very first start begins (no checkpoint yet): oldest entry or new ones"},
    {.name = "directory",
     .type = SL_CONF_STRING,
     OPT(directory),
     .min = 1,
     .max = 4096,
     .help = "read the journal files in this folder instead of the system journal"},
    {.name = "files",
     .type = SL_CONF_LIST,
     OPT(files),
     .def = "[]",
     .max = 256,
     .help = "read exactly these journal files instead (rotated successors are not followed)"},
    {.name = "journal_fields",
     .type = SL_CONF_LIST,
     OPT(journal_fields),
     .def = "[_TRANSPORT, _UID, _COMM, _EXE, _BOOT_ID, MESSAGE_ID, SYSLOG_FACILITY, "
            "_SYSTEMD_USER_UNIT, CODE_FILE, CODE_LINE, CODE_FUNC, ERRNO]",
     .max = 256,
     .help = "journal fields added to records by name ('*': all); binary ones as NAME_base64"},
    {.name = "max_entry_bytes",
     .type = SL_CONF_SIZE,
     OPT(max_entry_bytes),
     .def = "256KiB",
     .min = 256,
     .max = 16 << 20,
     .help = "longer field values (the message too) are cut and the record marked truncated"},
    {.name = "checkpoint_interval",
     .type = SL_CONF_DURATION,
     OPT(checkpoint_interval_ms),
     .def = "1s",
     .min = 10,
     .max = 3600000,
     .help = "how often the acknowledged cursor is written to state_dir"},
    {.name = "reopen",
     .type = SL_CONF_DURATION,
     OPT(reopen_ms),
     .def = "10s",
     .min = 50,
     .max = 3600000,
     .help = "how often a journal that is absent or unreadable is looked for again"},
    {.name = NULL},
};

const struct sl_conf_section in_journald_section = {
    .name = "journald",
    .help = "read the systemd journal (key: path keys records by their unit)",
    .opts = in_journald_opts,
    .size = sizeof(struct in_journald_conf),
    .check = in_journald_check,
};
