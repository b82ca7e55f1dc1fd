/* in_journald's reader: opens the journal (system, folder or files) with its matches, follows
 * it on the event loop (sd_journal_get_fd, get_events, get_timeout, process), emits one record
 * per entry and resumes from the acknowledged cursor. */
#include "plugins/in_journald.h"

#include "common/base.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "plugins/in_journald_ckpt.h"
#include "plugins/in_journald_rec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

/*
 * An instance's life:
 *
 *   start --load the checkpoint (a cursor)--> open the journal
 *   open fails (folder or files missing: ENOENT; no system journal here; EACCES) --> waiting:
 *        logged once per reason (EACCES says to join 'systemd-journal'), tried again every
 *        `reopen`; the agent runs on
 *   opened --matches (conf AND units AND priority)--> positioned:
 *        a checkpoint cursor: sd_journal_seek_cursor, and the first entry read is checked with
 *          sd_journal_test_cursor:
 *            the cursor's own entry ............. skipped: it was shipped (logged, info)
 *            another entry, same sequence id .... the cursor's entry is gone (vacuumed): this
 *                                                 is the oldest entry after it; read from it
 *                                                 (logged with the sequence numbers missed)
 *            another entry, other sequence id ... the cursor is from another journal: sd-journal
 *                                                 placed us at its time; read from there (logged)
 *            no entry at all .................... the cursor is past the end: new entries only
 *        a checkpoint that is not a cursor (garbage, or refused by sd-journal): from the head,
 *          logged as an error (duplicates rather than loss)
 *        no checkpoint (the very first start): read_from head, or tail (the newest entry's
 *          cursor becomes the checkpoint at once, so a restart cannot skip what came after)
 *   reading turns (a zero timer): sd_journal_next, build, emit, TURN_ENTRIES per turn:
 *        no more entries --> idle until the fd (inotify) or sd-journal's timeout wakes us:
 *          sd_journal_process --> APPEND or INVALIDATE (files added or removed: rotation,
 *          vacuuming; logged) --> a reading turn
 *        the sink is full (-EAGAIN) --> blocked: the entry stays current and is offered again
 *          when the waiter resumes (nothing read meanwhile: the journal is the buffer); its
 *          cursor is kept, because a rotation or vacuum meanwhile makes sd-journal close the
 *          entry's file and forget the current entry (-EADDRNOTAVAIL): it is found again by
 *          that cursor (sd_journal_seek_cursor, next, test_cursor), or, vacuumed, reading goes
 *          on at the entry after it (logged)
 *        sd_journal_next fails (a corrupt file sd-journal could not step over) --> logged,
 *          tried again after RETRY_S; an entry whose fields cannot all be read is shipped with
 *          those read, logged; one without time or cursor is skipped, logged; entries
 *          sd-journal stepped over without a word (corrupt data) show as a gap in the
 *          sequence numbers when the source has no filters: logged (check_gap)
 *
 * Positions: each record emitted gets the next number of `seq` as its position; the
 * acknowledgement spans say how far every record is acknowledged, and the cursor queue
 * (in_journald_ckpt.h) turns that position into the cursor of the last acknowledged entry,
 * which is the checkpoint written every checkpoint_interval.
 */

#define WHO(j)       ((j)->ctx.name)
#define TURN_ENTRIES 2048 /* entries per reading turn, so the loop breathes */
#define RETRY_S      1.0  /* after a read error or an allocation failure */
#define POLL_S       1.0  /* without an inotify fd, how often the journal is looked at */
#define RUN_JOURNAL  "/run/log/journal"
#define VAR_JOURNAL  "/var/log/journal"

enum jd_wait { JD_WAIT_NONE, JD_WAIT_ABSENT, JD_WAIT_DENIED, JD_WAIT_OTHER };

struct in_journald {
    struct plugin_ctx ctx;                /* copy; strings borrowed */
    const struct in_journald_conf *conf;  /* borrowed */
    const struct plugin_source_conf *src; /* borrowed */
    struct plugin_topic *topic;           /* the sink's handle */
    sd_journal *jr;                       /* owned; NULL while waiting for the journal */
    int fd;                               /* sd-journal's inotify fd, -1: polling */
    ev_io io;
    ev_timer jtimer; /* sd_journal_get_timeout, or the poll */
    ev_timer kick;   /* zero timer: a reading turn; also RETRY_S after an error */
    ev_timer save;   /* checkpoint writes */
    ev_timer reopen; /* waiting for an absent or unreadable journal */
    struct plugin_waiter waiter;
    struct plugin_ack_owner ack;
    struct in_journald_curq curq;
    struct in_journald_select sel;
    struct in_journald_rec rec;
    struct sl_json_clock clock;
    struct sl_buf value; /* owned: scratch for one record value */
    struct sl_buf fixed; /* owned: ,"host":"...","source":"..." and the source's fields */
    char *source;        /* owned: "journald", "journald:<folder>" or "journald:files" */
    char *ckpt_path;     /* owned */
    char *cursor;        /* owned: the acknowledged cursor (the checkpoint); NULL: none yet */
    char *verify;        /* owned: the checkpoint cursor the first entry read is checked with */
    bool ckpt_bad;       /* the checkpoint file held no cursor: start from the head */
    bool ckpt_missing;   /* no checkpoint file: the very first start (read_from applies) */
    uint64_t seq;        /* positions handed out */
    bool started, blocked, dirty;
    bool current;         /* the journal is on an entry not emitted yet */
    char *held;           /* owned: the current entry's cursor once read (it was offered and
                             refused), to find it again if sd-journal forgets it; or NULL */
    enum jd_wait waiting; /* why the journal is not open (logged once per reason) */
    bool gap_check;       /* no filters and nothing unreadable: a seqnum gap is a loss */
    bool has_prev;        /* prev_sid and prev_seqnum hold the last entry read */
    char prev_sid[32];
    uint64_t prev_seqnum;
    uint64_t entries, errors, truncated;
    struct sl_metric *m_entries, *m_errors, *m_truncated;
};

static void jd_schedule(struct in_journald *j);

/* ---- opening --------------------------------------------------------------------------- */

static const char *user_name(void)
{
    struct passwd *pw = getpwuid(geteuid());
    return pw && pw->pw_name ? pw->pw_name : "the agent's user";
}

/* Counts journal files (and folders) under dir, `depth` levels down, that cannot be opened for
 * lack of permission; the first one found goes to example. */
static void count_denied(const char *dir, int depth, char *example, size_t size, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == EACCES || errno == EPERM) {
            if ((*n)++ == 0)
                snprintf(example, size, "%s", dir);
        }
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        int pl = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (pl < 0 || (size_t)pl >= sizeof(path))
            continue;
        size_t nl = strlen(de->d_name);
        bool journal = (nl > 8 && strcmp(de->d_name + nl - 8, ".journal") == 0) ||
                       (nl > 9 && strcmp(de->d_name + nl - 9, ".journal~") == 0);
        if (journal) {
            int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            if (fd >= 0)
                close(fd);
            else if ((errno == EACCES || errno == EPERM) && (*n)++ == 0)
                snprintf(example, size, "%s", path);
        } else if (depth > 0 && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)) {
            struct stat st;
            if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                count_denied(path, depth - 1, example, size, n);
        }
    }
    closedir(d);
}

/* After opening a folder or the system journal (sd-journal skips files it may not read
 * without a word): says which ones it cannot read and what to do about it. */
static void check_readable(struct in_journald *j)
{
    char example[4096] = "";
    size_t n = 0;
    if (j->conf->directory) {
        count_denied(j->conf->directory, 1, example, sizeof(example), &n);
    } else if (j->conf->files.len == 0) {
        count_denied(RUN_JOURNAL, 1, example, sizeof(example), &n);
        count_denied(VAR_JOURNAL, 1, example, sizeof(example), &n);
    }
    j->gap_check =
        n == 0 && j->conf->matches.len == 0 && j->conf->units.len == 0 && j->conf->priority >= 7;
    if (n > 0)
        SL_ERR(WHO(j),
               "%zu journal files or folders are not readable (e.g. %s: permission denied): add "
               "the user %s to the 'systemd-journal' group (usermod -a -G systemd-journal %s) "
               "and restart the agent; reading what is readable meanwhile",
               n, example, user_name(), user_name());
}

/*
 * journald keeps this machine's journal in <folder>/<machine id>/ under /run/log/journal
 * (volatile) or /var/log/journal (persistent); the folders themselves may exist without it
 * (packages create /var/log/journal). Writes the two paths looked for into run and var.
 */
static bool system_journal_present(char *run, char *var, size_t size)
{
    char id[64] = "";
    FILE *f = fopen("/etc/machine-id", "re");
    if (f) {
        if (!fgets(id, sizeof(id), f))
            id[0] = '\0';
        fclose(f);
    }
    id[strcspn(id, "\n")] = '\0';
    if (strlen(id) != 32) {
        snprintf(run, size, "%s", RUN_JOURNAL);
        snprintf(var, size, "%s", VAR_JOURNAL);
    } else {
        snprintf(run, size, "%s/%s", RUN_JOURNAL, id);
        snprintf(var, size, "%s/%s", VAR_JOURNAL, id);
    }
    return access(run, F_OK) == 0 || access(var, F_OK) == 0;
}

/* Logs why the journal cannot be opened, once per reason, and says what comes next. */
static void log_waiting(struct in_journald *j, int rc, const char *what)
{
    enum jd_wait why = rc == -ENOENT                   ? JD_WAIT_ABSENT
                       : rc == -EACCES || rc == -EPERM ? JD_WAIT_DENIED
                                                       : JD_WAIT_OTHER;
    if (why == j->waiting)
        return;
    j->waiting = why;
    char every[32];
    sl_conf_format_duration(j->conf->reopen_ms, every, sizeof(every));
    if (why == JD_WAIT_ABSENT && !j->conf->directory && j->conf->files.len == 0) {
        char run[128], var[128];
        system_journal_present(run, var, sizeof(run));
        SL_WARN(WHO(j),
                "no system journal here: neither %s nor %s exists (is systemd-journald "
                "running?); looking again every %s",
                run, var, every);
    } else if (why == JD_WAIT_ABSENT)
        SL_WARN(WHO(j), "%s: no such file or folder; looking again every %s", what, every);
    else if (why == JD_WAIT_DENIED)
        SL_ERR(WHO(j),
               "%s: permission denied: add the user %s to the 'systemd-journal' group "
               "(usermod -a -G systemd-journal %s) and restart the agent; looking again every %s",
               what, user_name(), user_name(), every);
    else
        SL_ERR(WHO(j), "%s: cannot open the journal: %s; looking again every %s", what,
               strerror(-rc), every);
}

/* Adds the source's filters: (matches) AND (units) AND (priority), as journalctl does. */
static int add_filters(struct in_journald *j, sd_journal *jr)
{
    const struct in_journald_conf *c = j->conf;
    int r = 0;
    for (size_t i = 0; i < c->matches.len && r >= 0; i++) {
        const char *m = c->matches.items[i];
        r = strcmp(m, "+") == 0 ? sd_journal_add_disjunction(jr) : sd_journal_add_match(jr, m, 0);
    }
    if (r >= 0 && c->matches.len > 0)
        r = sd_journal_add_conjunction(jr);
    for (size_t i = 0; i < c->units.len && r >= 0; i++) {
        char unit[320], match[360];
        if (in_journald_unit_name(c->units.items[i], unit, sizeof(unit)) != 0)
            return -EINVAL;
        snprintf(match, sizeof(match), "_SYSTEMD_UNIT=%s", unit);
        r = sd_journal_add_match(jr, match, 0);
    }
    if (r >= 0 && c->units.len > 0)
        r = sd_journal_add_conjunction(jr);
    /* Values of one field OR together; debug (7) filters nothing, so entries without a
     * PRIORITY field still pass. */
    for (int p = 0; p <= c->priority && c->priority < 7 && r >= 0; p++) {
        char match[24];
        snprintf(match, sizeof(match), "PRIORITY=%d", p);
        r = sd_journal_add_match(jr, match, 0);
    }
    return r < 0 ? r : 0;
}

/* Places the read pointer: checkpoint cursor, or head, or tail (see the diagram). */
static void position(struct in_journald *j)
{
    sd_journal *jr = j->jr;
    if (j->cursor) {
        int r = sd_journal_seek_cursor(jr, j->cursor);
        if (r >= 0) {
            j->verify = sl_strdup(j->cursor);
            if (j->verify)
                return;
            r = -ENOMEM;
        }
        SL_ERR(WHO(j),
               "%s: the journal refuses the checkpoint's cursor '%.120s' (%s); reading from the "
               "head of the journal (entries shipped before are shipped again)",
               j->ckpt_path, j->cursor, strerror(-r));
        sd_journal_seek_head(jr);
        return;
    }
    if (j->ckpt_bad || !j->ckpt_missing || j->conf->read_from == IN_JOURNALD_FROM_HEAD) {
        /* A damaged checkpoint was reported at start; head loses nothing. */
        if (j->ckpt_missing)
            SL_INFO(WHO(j), "first start: reading the journal from its oldest entry");
        sd_journal_seek_head(jr);
        return;
    }
    sd_journal_seek_tail(jr);
    char *c = NULL;
    if (sd_journal_previous(jr) > 0 && sd_journal_get_cursor(jr, &c) >= 0) {
        j->cursor = sl_strdup(c);
        j->dirty = j->cursor != NULL;
    }
    free(c); /* sd-journal's, from malloc */
    SL_INFO(WHO(j), "first start: reading new entries only (read_from: tail)");
}

/* Opens the journal with the filters and positions it. Returns 0, or a negative code (then
 * logged, and j->jr stays NULL). */
static int jd_open(struct in_journald *j)
{
    const struct in_journald_conf *c = j->conf;
    sd_journal *jr = NULL;
    char run[128], var[128];
    const char *what = c->directory ? c->directory : c->files.len ? c->files.items[0] : "journal";
    int r;
    if (c->directory) {
        r = sd_journal_open_directory(&jr, c->directory, 0);
    } else if (c->files.len > 0) {
        const char **paths = sl_calloc(c->files.len + 1, sizeof(*paths));
        if (!paths)
            return -ENOMEM;
        for (size_t i = 0; i < c->files.len; i++)
            paths[i] = c->files.items[i];
        r = sd_journal_open_files(&jr, paths, 0);
        if (r == -ENOENT || r == -EACCES) {
            /* Name the file at fault. */
            for (size_t i = 0; i < c->files.len; i++)
                if (access(c->files.items[i], R_OK) != 0)
                    what = c->files.items[i];
        }
        sl_free(paths);
    } else if (!system_journal_present(run, var, sizeof(run))) {
        r = -ENOENT;
    } else {
        r = sd_journal_open(&jr, SD_JOURNAL_LOCAL_ONLY);
    }
    if (r >= 0 && c->directory) {
        /* sd-journal opens a folder it may not list as an empty journal. */
        DIR *d = opendir(c->directory);
        if (!d)
            r = -errno;
        else
            closedir(d);
    }
    if (r >= 0)
        r = add_filters(j, jr);
    if (r < 0) {
        if (jr)
            sd_journal_close(jr);
        log_waiting(j, r, what);
        return r;
    }
    if (j->waiting != JD_WAIT_NONE)
        SL_NOTICE(WHO(j), "%s is there now; reading it", what);
    j->waiting = JD_WAIT_NONE;
    j->jr = jr;
    /* Room for a field name and '=' beyond the longest value kept, so a cut shows. */
    sd_journal_set_data_threshold(jr, (size_t)c->max_entry_bytes + 66);
    check_readable(j);
    /* The inotify fd must exist before the first read, or changes meanwhile go unnoticed. */
    j->fd = sd_journal_get_fd(jr);
    if (j->fd < 0)
        SL_WARN(WHO(j), "no inotify for the journal (%s): looking for new entries every %.0fs",
                strerror(-j->fd), POLL_S);
    position(j);
    return 0;
}

/* ---- waking up ------------------------------------------------------------------------- */

static uint64_t now_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Arms jtimer for sd-journal's own timeout (or the poll without inotify). */
static void arm_timeout(struct in_journald *j)
{
    ev_timer_stop(j->ctx.loop, &j->jtimer);
    if (!j->jr || !j->started)
        return;
    uint64_t t = UINT64_MAX;
    double after = -1;
    if (sd_journal_get_timeout(j->jr, &t) >= 0 && t != UINT64_MAX) {
        uint64_t now = now_monotonic_us();
        after = t > now ? (double)(t - now) / 1e6 : 0;
    }
    if (j->fd < 0 && (after < 0 || after > POLL_S))
        after = POLL_S;
    if (after < 0)
        return;
    ev_timer_set(&j->jtimer, after, 0);
    ev_timer_start(j->ctx.loop, &j->jtimer);
}

/* Lets sd-journal take in what changed (new entries, files added or removed). */
static void process(struct in_journald *j)
{
    int r = sd_journal_process(j->jr);
    if (r == SD_JOURNAL_INVALIDATE)
        SL_INFO(WHO(j), "journal files were added or removed (rotation or vacuuming); "
                        "reading on");
    else if (r < 0)
        SL_WARN(WHO(j), "sd_journal_process: %s", strerror(-r));
    jd_schedule(j);
    arm_timeout(j);
}

static void jd_on_journal(struct ev_loop *loop, ev_io *w, int revents)
{
    process(sl_container_of(w, struct in_journald, io));
}

static void jd_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    process(sl_container_of(w, struct in_journald, jtimer));
}

static void watch_start(struct in_journald *j)
{
    if (j->fd >= 0) {
        int ev = sd_journal_get_events(j->jr);
        ev_io_set(&j->io, j->fd, (ev & POLLOUT ? EV_WRITE : 0) | (ev & POLLIN ? EV_READ : 0));
        ev_io_start(j->ctx.loop, &j->io);
    }
    arm_timeout(j);
    jd_schedule(j);
}

static void jd_on_reopen(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct in_journald *j = sl_container_of(w, struct in_journald, reopen);
    if (j->jr || jd_open(j) != 0)
        return;
    ev_timer_stop(loop, w);
    watch_start(j);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void jd_schedule(struct in_journald *j)
{
    if (j->started && j->jr && !j->blocked && !ev_is_active(&j->kick)) {
        ev_timer_set(&j->kick, 0, 0);
        ev_timer_start(j->ctx.loop, &j->kick);
    }
}

static void retry_later(struct in_journald *j)
{
    ev_timer_stop(j->ctx.loop, &j->kick);
    ev_timer_set(&j->kick, RETRY_S, 0);
    ev_timer_start(j->ctx.loop, &j->kick);
}

static void count_error(struct in_journald *j)
{
    j->errors++;
    sl_metric_inc(j->m_errors);
}

/* The first entry read after seeking to the checkpoint's cursor. Returns true when it is the
 * cursor's own entry (shipped already: skip it). */
static bool verify_first(struct in_journald *j)
{
    char *want = j->verify;
    j->verify = NULL;
    if (sd_journal_test_cursor(j->jr, want) > 0) {
        SL_INFO(WHO(j), "resuming after the checkpoint's entry (%.200s)", want);
        sl_free(want);
        return true;
    }
    char *here = NULL;
    struct in_journald_cursor a, b;
    bool pa = in_journald_cursor_parse(want, &a) == 0;
    bool pb = sd_journal_get_cursor(j->jr, &here) >= 0 && in_journald_cursor_parse(here, &b) == 0;
    if (pa && pb && a.has_seqnum_id && b.has_seqnum_id && a.has_seqnum && b.has_seqnum &&
        strcmp(a.seqnum_id, b.seqnum_id) == 0) {
        if (b.seqnum > a.seqnum + 1)
            SL_WARN(WHO(j),
                    "the checkpoint's entry (seqnum %llu) is no longer in the journal "
                    "(vacuumed); resuming at the oldest entry after it (seqnum %llu): entries "
                    "%llu..%llu, those this source matches, were removed before being shipped",
                    (unsigned long long)a.seqnum, (unsigned long long)b.seqnum,
                    (unsigned long long)a.seqnum + 1, (unsigned long long)b.seqnum - 1);
        else
            SL_WARN(WHO(j),
                    "the checkpoint's entry (seqnum %llu) is no longer in the journal "
                    "(vacuumed); resuming at the entry after it (seqnum %llu)",
                    (unsigned long long)a.seqnum, (unsigned long long)b.seqnum);
    } else {
        char when[32] = "unknown";
        if (pa && a.has_realtime)
            sl_json_time(&j->clock, (int64_t)(a.realtime_us / 1000000u),
                         (uint32_t)(a.realtime_us % 1000000u), when);
        SL_WARN(WHO(j),
                "the checkpoint's cursor is from another journal (sequence id %s, this "
                "entry's %s); resuming at the first entry at or after its time, %s",
                pa && a.has_seqnum_id ? a.seqnum_id : "unknown",
                pb && b.has_seqnum_id ? b.seqnum_id : "unknown", when);
    }
    free(here);
    sl_free(want);
    return false;
}

/*
 * Without filters, consecutive entries of one sequence id have consecutive sequence numbers;
 * a gap means entries sd-journal could not read (it steps over corrupt data without a word)
 * or that were vacuumed before being read: said once per gap. Cursors start
 * "s=<32 hex>;i=<hex>;": anything else is not checked.
 */
static void check_gap(struct in_journald *j, const char *cursor)
{
    if (!j->gap_check)
        return;
    uint64_t seq = 0;
    size_t k = 37;
    if (strncmp(cursor, "s=", 2) != 0 || strlen(cursor) < 38 || strncmp(cursor + 34, ";i=", 3))
        goto unknown;
    for (; cursor[k] && cursor[k] != ';' && k < 37 + 16; k++) {
        char c = cursor[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            goto unknown;
        seq = seq << 4 | (uint64_t)d;
    }
    if (j->has_prev && memcmp(j->prev_sid, cursor + 2, 32) == 0 && seq > j->prev_seqnum + 1) {
        count_error(j);
        SL_WARN(WHO(j),
                "journal entries seqnum %llu..%llu could not be read (a corrupt journal file, "
                "or vacuumed before being read); skipped",
                (unsigned long long)j->prev_seqnum + 1, (unsigned long long)seq - 1);
    }
    memcpy(j->prev_sid, cursor + 2, 32);
    j->prev_seqnum = seq;
    j->has_prev = true;
    return;
unknown:
    j->has_prev = false;
}

/* The current entry stays current (the sink refused it, or memory ran out): its cursor, from
 * malloc, is kept for refind. */
static void hold(struct in_journald *j, char *cursor)
{
    sl_free(j->held);
    j->held = cursor;
}

/* sd-journal has no current entry any more (-EADDRNOTAVAIL): the file of the entry held was
 * dropped while it waited (rotated: a new file took its name, and sd-journal closes the one it
 * had under that name, then opens the archived one as another file; or vacuumed). Finds the
 * entry again by its cursor. Returns 1 when the journal is on an
 * entry again (the held one, or the first after it when that one is gone, logged), 0 when there
 * is none, or a negative errno. */
static int refind(struct in_journald *j)
{
    int r = sd_journal_seek_cursor(j->jr, j->held);
    if (r >= 0)
        r = sd_journal_next(j->jr);
    if (r == 0 || (r > 0 && sd_journal_test_cursor(j->jr, j->held) <= 0))
        SL_WARN(WHO(j),
                "entry %.200s was removed from the journal (vacuumed) while waiting to be "
                "shipped; %s",
                j->held, r > 0 ? "reading on from the entry after it" : "no entry after it yet");
    SL_FREE(j->held);
    return r;
}

/* Builds the current entry's record and offers it. Returns 0 when it was taken or skipped
 * (logged), -EAGAIN when the sink is full (the waiter is queued; the entry stays current),
 * -ENOMEM. */
static int emit_entry(struct in_journald *j)
{
    sd_journal *jr = j->jr;
    uint64_t usec = 0;
    char *sdc = NULL;
    int r = sd_journal_get_realtime_usec(jr, &usec);
    if (r == -EADDRNOTAVAIL && j->held) {
        r = refind(j);
        if (r == 0)
            return 0; /* nothing to emit; the next sd_journal_next waits for new entries */
        if (r > 0)
            r = sd_journal_get_realtime_usec(jr, &usec);
    }
    if (r >= 0)
        r = sd_journal_get_cursor(jr, &sdc);
    if (r < 0) {
        count_error(j);
        SL_ERR(WHO(j), "an entry without a readable time or cursor was skipped: %s", strerror(-r));
        free(sdc);
        return 0;
    }
    /* sd-journal's string, from malloc: sl_free is free(), so the queue takes it as it is
     * (one copy and one allocation less per entry). */
    char *cursor = sdc;
    check_gap(j, cursor);
    struct in_journald_rec *rec = &j->rec;
    in_journald_rec_reset(rec);
    const void *d;
    size_t l;
    sd_journal_restart_data(jr);
    while ((r = sd_journal_enumerate_available_data(jr, &d, &l)) > 0) {
        if (in_journald_rec_add(rec, d, l) != 0) {
            hold(j, cursor);
            return -ENOMEM;
        }
    }
    if (r < 0 || rec->fields_bad > 0) {
        count_error(j);
        SL_WARN(WHO(j), "entry %.200s: some fields cannot be read (%s); shipping the others",
                cursor, r < 0 ? strerror(-r) : "an item without '='");
    }

    struct plugin_record pr = {0};
    struct sl_batch_kv headers[5];
    char prio[2] = {0};
    pr.timestamp = (int64_t)(usec / 1000u);
    pr.owner = &j->ack;
    pr.end = j->seq + 1;
    switch (j->src->key) {
    case PLUGIN_KEY_HOST:
        pr.key = SL_BYTES_STR(j->ctx.hostname);
        break;
    case PLUGIN_KEY_PATH:
        /* journald has no path: the unit (else the identifier) names a stream. These are the
         * JSON-escaped texts, the same bytes for any unit name systemd allows. */
        pr.key = rec->has_unit    ? (struct sl_bytes){rec->unit.data, rec->unit.len}
                 : rec->has_ident ? (struct sl_bytes){rec->ident.data, rec->ident.len}
                                  : SL_BYTES_STR(j->ctx.hostname);
        if (!pr.key.p)
            pr.key = SL_BYTES_STR(""); /* an empty unit name: still a key, not null */
        break;
    case PLUGIN_KEY_CONST:
        pr.key = SL_BYTES_STR(j->src->key_value);
        break;
    case PLUGIN_KEY_FIELD: {
        /* sd-journal's "NAME=value"; it stays valid until the next call on jr, after emit. */
        const void *kd;
        size_t kl, fl = strlen(j->src->key_field);
        pr.key = SL_BYTES_NULL;
        if (sd_journal_get_data(jr, j->src->key_field, &kd, &kl) >= 0 && kl > fl &&
            ((const char *)kd)[fl] == '=')
            pr.key = (struct sl_bytes){(const uint8_t *)kd + fl + 1, kl - fl - 1};
        break;
    }
    default:
        pr.key = SL_BYTES_NULL;
    }
    if (j->src->format == PLUGIN_FORMAT_RAW) {
        size_t n = 0;
        pr.value =
            rec->msg.data ? (struct sl_bytes){rec->msg.data, rec->msg.len} : SL_BYTES_STR("");
        headers[n++] = (struct sl_batch_kv){SL_BYTES_STR("host"), SL_BYTES_STR(j->ctx.hostname)};
        headers[n++] = (struct sl_batch_kv){SL_BYTES_STR("source"), SL_BYTES_STR(j->source)};
        if (rec->has_unit)
            headers[n++] = (struct sl_batch_kv){
                SL_BYTES_STR("unit"),
                {rec->unit.data ? rec->unit.data : (const uint8_t *)"", rec->unit.len}};
        if (rec->priority >= 0) {
            prio[0] = (char)('0' + rec->priority);
            headers[n++] = (struct sl_batch_kv){SL_BYTES_STR("priority"), {(uint8_t *)prio, 1}};
        }
        if (rec->truncated)
            headers[n++] = (struct sl_batch_kv){SL_BYTES_STR("truncated"), SL_BYTES_STR("true")};
        pr.headers = headers;
        pr.header_count = n;
    } else {
        if (in_journald_rec_json(rec, &j->clock, usec,
                                 (struct sl_bytes){j->fixed.data, j->fixed.len}, &j->value) != 0) {
            sl_buf_fini(&j->value);
            hold(j, cursor);
            return -ENOMEM;
        }
        pr.value = (struct sl_bytes){j->value.data, j->value.len};
    }
    int rc = j->ctx.sink->emit(j->ctx.sink, j->topic, &pr, &j->waiter);
    if (rc == SL_ETOOBIG) {
        count_error(j);
        SL_ERR(WHO(j),
               "entry %.200s: a record of %zu bytes can never fit a batch; dropped (lower "
               "max_entry_bytes, journal_fields, or raise batch_bytes)",
               cursor, pr.value.len);
        sl_free(cursor);
        return 0;
    }
    if (rc != 0) {
        hold(j, cursor);
        return rc == -EAGAIN ? -EAGAIN : -ENOMEM;
    }
    j->seq++;
    /* One cursor per span: a record that extended the newest span replaces its cursor. */
    const struct plugin_ack_span *tail = j->ack.tail;
    if (tail && tail->records > 1 && tail->end == j->seq)
        in_journald_curq_set_last(&j->curq, j->seq, cursor);
    else
        in_journald_curq_push(&j->curq, j->seq, cursor); /* -ENOMEM: an older cursor serves */
    j->entries++;
    sl_metric_inc(j->m_entries);
    if (rec->truncated) {
        j->truncated++;
        sl_metric_inc(j->m_truncated);
    }
    return 0;
}

static void jd_on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct in_journald *j = sl_container_of(w, struct in_journald, kick);
    if (!j->jr || !j->started || j->blocked)
        return;
    for (int n = 0; n < TURN_ENTRIES; n++) {
        if (!j->current) {
            int r = sd_journal_next(j->jr);
            if (r == 0) {
                if (j->verify) {
                    SL_NOTICE(WHO(j), "no entry at or after the checkpoint's cursor yet; "
                                      "reading new entries as they come");
                    SL_FREE(j->verify);
                }
                return; /* idle until the journal changes */
            }
            if (r < 0) {
                count_error(j);
                SL_ERR(WHO(j), "reading the journal: %s; trying again in %.0fs", strerror(-r),
                       RETRY_S);
                retry_later(j);
                return;
            }
            j->current = true;
            if (j->verify && verify_first(j)) {
                j->current = false;
                continue;
            }
        }
        int rc = emit_entry(j);
        if (rc == -EAGAIN) {
            j->blocked = true;
            return;
        }
        if (rc != 0) {
            SL_ERR(WHO(j), "out of memory building a record; trying again in %.0fs", RETRY_S);
            retry_later(j);
            return;
        }
        j->current = false;
        SL_FREE(j->held);
    }
    jd_schedule(j);
}

static void jd_on_resume(struct plugin_waiter *w)
{
    struct in_journald *j = sl_container_of(w, struct in_journald, waiter);
    j->blocked = false;
    jd_schedule(j);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

static void jd_on_ack(struct plugin_ack_owner *o)
{
    struct in_journald *j = sl_container_of(o, struct in_journald, ack);
    char *c = in_journald_curq_take(&j->curq, o->acked);
    if (!c)
        return;
    sl_free(j->cursor);
    j->cursor = c;
    j->dirty = true;
}

static void jd_save(struct in_journald *j)
{
    if (!j->dirty || !j->cursor)
        return;
    struct sl_err err = {{0}};
    if (in_journald_ckpt_save(j->ckpt_path, j->cursor, &err) != 0)
        SL_ERR(WHO(j), "checkpoint: %s", err.msg);
    else
        j->dirty = false;
}

static void jd_on_save(struct ev_loop *loop, ev_timer *w, int revents)
{
    jd_save(sl_container_of(w, struct in_journald, save));
}

/* ---- the plugin ------------------------------------------------------------------------- */

static void in_journald_free(void *self);

/* The source's name=value fields may not take a name journald records use. */
static int check_source_fields(const struct plugin_source_conf *src, struct sl_err *err)
{
    static const char *const ours[] = {"unit", "priority", "pid", "syslog_identifier",
                                       "message_base64"};
    for (size_t i = 0; i < src->fields.len; i++) {
        const char *f = src->fields.items[i];
        const char *eq = strchr(f, '=');
        for (size_t k = 0; eq && k < SL_ARRAY_LEN(ours); k++)
            if ((size_t)(eq - f) == strlen(ours[k]) && strncmp(f, ours[k], eq - f) == 0)
                return sl_err_set(err, SL_ECONFIG,
                                  "'fields' may not set '%s': journald records have it", ours[k]);
    }
    return 0;
}

/* The journal fields records carry: journal_fields, plus the bare NAMEs among the source's
 * `fields` (the name for the selection; name=value entries there are constants). */
static int select_fields(struct in_journald *j)
{
    const struct sl_conf_list *jf = &j->conf->journal_fields, *sf = &j->src->fields;
    struct sl_conf_list all = {sl_calloc(jf->len + sf->len + 1, sizeof(char *)), 0};
    if (!all.items)
        return -ENOMEM;
    for (size_t i = 0; i < jf->len; i++)
        all.items[all.len++] = jf->items[i];
    for (size_t i = 0; i < sf->len; i++)
        if (!strchr(sf->items[i], '='))
            all.items[all.len++] = sf->items[i];
    int rc = in_journald_select_init(&j->sel, &all);
    sl_free(all.items); /* the strings are borrowed: select_init copies them */
    return rc;
}

static int in_journald_new(const struct plugin_ctx *ctx, const void *conf, void **self,
                           struct sl_err *err)
{
    struct in_journald *j = sl_calloc(1, sizeof(*j));
    if (!j)
        return sl_err_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    j->ctx = *ctx;
    j->conf = conf;
    j->src = ctx->source;
    j->fd = -1;
    sl_buf_init(&j->value);
    sl_buf_init(&j->fixed);
    in_journald_curq_init(&j->curq);
    sl_json_clock_init(&j->clock);
    plugin_ack_owner_init(&j->ack, 0, jd_on_ack);
    j->waiter.on_resume = jd_on_resume;
    ev_io_init(&j->io, jd_on_journal, -1, EV_READ);
    ev_timer_init(&j->jtimer, jd_on_timeout, 0, 0);
    ev_timer_init(&j->kick, jd_on_kick, 0, 0);
    double save = (double)j->conf->checkpoint_interval_ms / 1000.0;
    ev_timer_init(&j->save, jd_on_save, save, save);
    double reopen = (double)j->conf->reopen_ms / 1000.0;
    ev_timer_init(&j->reopen, jd_on_reopen, reopen, reopen);
    if (!ctx->sink || !ctx->source || !ctx->hostname || !ctx->state_dir) {
        rc = sl_err_set(err, -EINVAL,
                        "in_journald needs a sink, a source, a host name and a state_dir");
        goto fail;
    }
    rc = check_source_fields(ctx->source, err);
    if (rc != 0)
        goto fail;
    if (select_fields(j) != 0 ||
        in_journald_rec_init(&j->rec, &j->sel, (size_t)j->conf->max_entry_bytes,
                             ctx->source->format == PLUGIN_FORMAT_RAW) != 0) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    const char *where = j->conf->directory ? j->conf->directory : "";
    size_t need = strlen(where) + 32;
    j->source = sl_malloc(need);
    size_t cneed = strlen(ctx->state_dir) + strlen(ctx->source->name) + 24;
    j->ckpt_path = sl_malloc(cneed);
    if (!j->source || !j->ckpt_path) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (j->conf->directory)
        snprintf(j->source, need, "journald:%s", where);
    else
        snprintf(j->source, need, "%s", j->conf->files.len ? "journald:files" : "journald");
    snprintf(j->ckpt_path, cneed, "%s/journald-%s.cursor", ctx->state_dir, ctx->source->name);
    if (plugin_fixed_members(&j->fixed, j->ctx.hostname, j->source, &j->src->fields) != 0) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    j->topic = ctx->sink->topic_get(ctx->sink, ctx->source->topic);
    if (!j->topic) {
        rc = sl_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (ctx->metrics) {
        struct sl_metric_label l[1] = {{"source", ctx->source->name}};
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_journal_entries_read_total",
                               "journal entries read and handed to the pipeline", l, 1,
                               &j->m_entries, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_journal_read_errors_total",
                               "journal entries or fields that could not be read", l, 1,
                               &j->m_errors, NULL);
        sl_metrics_add_counter(ctx->metrics, "sluice_agent_journal_entries_truncated_total",
                               "journal entries with a value cut at max_entry_bytes", l, 1,
                               &j->m_truncated, NULL);
    }
    *self = j;
    return 0;
fail:
    in_journald_free(j);
    return rc;
}

static int in_journald_start(void *self, struct sl_err *err)
{
    struct in_journald *j = self;
    if (j->started)
        return 0;
    if (!j->jr && !j->cursor) {
        struct sl_err lerr = {{0}};
        int rc = in_journald_ckpt_load(j->ckpt_path, &j->cursor, &lerr);
        j->ckpt_missing = rc == 0 && !j->cursor;
        if (rc == SL_ECORRUPT) {
            j->ckpt_bad = true;
            SL_ERR(WHO(j),
                   "%s; reading the journal from its head (entries shipped before are shipped "
                   "again)",
                   lerr.msg);
        } else if (rc != 0) {
            return sl_err_set(err, rc, "checkpoint %s", lerr.msg);
        }
    }
    j->started = true;
    ev_timer_start(j->ctx.loop, &j->save);
    if (!j->jr && jd_open(j) != 0) {
        ev_timer_start(j->ctx.loop, &j->reopen);
        return 0; /* logged; the agent runs on and the journal is looked for again */
    }
    watch_start(j);
    return 0;
}

static void in_journald_stop(void *self)
{
    struct in_journald *j = self;
    if (!j)
        return;
    bool was = j->started;
    j->started = false;
    ev_io_stop(j->ctx.loop, &j->io);
    ev_timer_stop(j->ctx.loop, &j->jtimer);
    ev_timer_stop(j->ctx.loop, &j->kick);
    ev_timer_stop(j->ctx.loop, &j->save);
    ev_timer_stop(j->ctx.loop, &j->reopen);
    if (j->ctx.sink)
        j->ctx.sink->cancel(j->ctx.sink, &j->waiter);
    j->blocked = false;
    if (was)
        jd_save(j);
}

static void in_journald_free(void *self)
{
    struct in_journald *j = self;
    if (!j)
        return;
    in_journald_stop(j);
    if (j->ckpt_path)
        jd_save(j);
    plugin_ack_owner_fini(&j->ack);
    in_journald_curq_fini(&j->curq);
    if (j->jr)
        sd_journal_close(j->jr);
    if (j->ctx.metrics) {
        sl_metrics_remove(j->ctx.metrics, j->m_entries);
        sl_metrics_remove(j->ctx.metrics, j->m_errors);
        sl_metrics_remove(j->ctx.metrics, j->m_truncated);
    }
    if (j->topic)
        j->ctx.sink->topic_put(j->ctx.sink, j->topic);
    in_journald_rec_fini(&j->rec);
    in_journald_select_fini(&j->sel);
    sl_buf_fini(&j->value);
    sl_buf_fini(&j->fixed);
    sl_free(j->source);
    sl_free(j->ckpt_path);
    sl_free(j->cursor);
    sl_free(j->verify);
    sl_free(j->held);
    sl_free(j);
}

const struct plugin in_journald_plugin = {
    .name = "journald",
    .kind = PLUGIN_INPUT,
    .help = "read the systemd journal (matches, cursor checkpoints, structured fields)",
    .section = &in_journald_section,
    .new = in_journald_new,
    .start = in_journald_start,
    .stop = in_journald_stop,
    .free = in_journald_free,
};
