/* Logging: syslog levels, a per-component prefix, journal priority prefixes, repeat limiting. */
#ifndef SL_COMMON_LOG_H
#define SL_COMMON_LOG_H

#include <stdint.h>

/* syslog(3)'s levels; lower is more severe. */
enum sl_log_level {
    SL_LOG_EMERG = 0,
    SL_LOG_ALERT = 1,
    SL_LOG_CRIT = 2,
    SL_LOG_ERR = 3,
    SL_LOG_WARNING = 4,
    SL_LOG_NOTICE = 5,
    SL_LOG_INFO = 6,
    SL_LOG_DEBUG = 7,
};

/* The most verbose level written; read by the macros before their arguments are evaluated.
 * Atomic because a reload on the loop thread may change it while other threads log. */
extern _Atomic int sl_log_threshold;

/* The macros are the API: the level test comes first, so arguments of a suppressed message
 * are never evaluated. `who` is the instance prefix without brackets ("in.tail#nginx"), or
 * NULL. Messages carry no trailing newline. */
#define SL_LOG(level, who, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= sl_log_threshold)                                                           \
            sl_log_write((level), (who), __FILE__, __LINE__, __VA_ARGS__);                         \
    } while (0)
#define SL_ERR(who, ...) SL_LOG(SL_LOG_ERR, who, __VA_ARGS__)
#define SL_WARN(who, ...) SL_LOG(SL_LOG_WARNING, who, __VA_ARGS__)
#define SL_NOTICE(who, ...) SL_LOG(SL_LOG_NOTICE, who, __VA_ARGS__)
#define SL_INFO(who, ...) SL_LOG(SL_LOG_INFO, who, __VA_ARGS__)
#define SL_DEBUG(who, ...) SL_LOG(SL_LOG_DEBUG, who, __VA_ARGS__)

/* Writes one line to the log sink (stderr by default) with a single write(2). Called through
 * the macros; `file` must outlive the process (it is __FILE__, and keys the repeat limiter).
 * The line is `<N>[who] message` when the sink is the journal, otherwise
 * `2026-11-22T10:00:00.123Z err [who] message` (UTC). Newlines inside the message become spaces
 * so one call is one line (and one journal entry at the right priority). A line longer than
 * SL_LOG_LINE_MAX is cut and ends with SL_LOG_CUT_MARK. Repeats are limited per call site (file,
 * line and who's text): after SL_LOG_BURST lines within SL_LOG_INTERVAL_MS the rest of that window
 * is dropped, and the site's first line of a later window ends with " (N suppressed)". Debug lines
 * are never limited: whoever turns debug on wants every line. errno is preserved, so `%m` and a
 * following `return -errno` both work. Thread-safe; not async-signal-safe. */
void sl_log_write(int level, const char *who, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The longest line written, newline included: PIPE_BUF, so a line is atomic on a pipe. */
#define SL_LOG_LINE_MAX 4096
/* Ends a message that was cut to fit SL_LOG_LINE_MAX. */
#define SL_LOG_CUT_MARK "...[cut]"
/* Default repeat limit: SL_LOG_BURST lines per call site per SL_LOG_INTERVAL_MS. */
#define SL_LOG_BURST       10
#define SL_LOG_INTERVAL_MS 5000

/* The setup functions below are for startup and tests: call them before other threads log. */

/* Detects whether the sink is the journal: true when $JOURNAL_STREAM is "<dev>:<ino>" (decimal,
 * as systemd.exec(5) documents) and equals fstat() of the current sink fd. Call it once at
 * startup, and again after sl_log_set_fd. Never fails; an unparsable variable means "not the
 * journal". */
void sl_log_init(void);

/* Points the sink at fd (borrowed; the caller keeps it open while logging) and leaves journal
 * mode until sl_log_init runs again. For tests and for daemons that reopen their stderr. */
void sl_log_set_fd(int fd);

/* Replaces the clock (milliseconds since the Unix epoch) that stamps lines and times the repeat
 * windows; NULL restores CLOCK_REALTIME. A clock that steps back starts a new window. */
void sl_log_set_clock(int64_t (*now_ms)(void));

/* Sets the repeat limit (burst 0 disables it; an interval <= 0 makes every window end at once)
 * and forgets every call site's history. */
void sl_log_set_rate_limit(unsigned burst, int64_t interval_ms);

/* Parses a level name, case-insensitively: emerg, alert, crit, err, warning, notice, info,
 * debug, plus "error", "warn" and a single digit 0-7. Returns the level, or SL_EPARSE. */
int sl_log_level_parse(const char *name);

/* Sets sl_log_threshold from a name as sl_log_level_parse reads it. Returns 0, or SL_EPARSE
 * (and leaves the threshold alone). */
int sl_log_set_level_name(const char *name);

/* syslog's name for a level ("err", "warning", ...); "invalid" outside 0-7. Never NULL. */
const char *sl_log_level_name(int level);

#endif
