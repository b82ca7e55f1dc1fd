/* The log sink: one line per call, written atomically, with repeats limited per call site. */
#include "common/log.h"

#include "common/base.h"
#include "common/err.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * One line, at most SL_LOG_LINE_MAX bytes, built in a stack buffer and written with one write(2):
 *
 *   plain:   2026-11-22T10:00:00.123Z err [in.tail#nginx] message text (3 suppressed)\n
 *            <------------------ head -------------------><- message-><---- tail ----->
 *   journal: <3>[in.tail#nginx] message text (3 suppressed)\n
 *            <----- head ------><- message-><---- tail ----->
 *
 * The tail (suppressed note and newline) is sized first, so a cut only shortens the message,
 * which then ends with SL_LOG_CUT_MARK.
 *
 * Repeat limiting: a fixed open-addressed table keyed by (file pointer, line, hash of who's
 * text); a lookup probes LOG_PROBES slots from the key's hash. Each slot holds one window:
 *
 *   first line at t0 ............ t0 + interval ........... next line at t1
 *   | count 1..burst written | rest: suppressed++ |        | new window, line carries
 *                                                          | the " (N suppressed)" note
 *
 * When every probed slot is taken, the slot whose window began longest ago is reused (its
 * pending count is lost): a program with more than a few hundred sites all logging at once has
 * bigger problems than an exact count.
 */

#define LOG_SLOTS     256 /* power of two */
#define LOG_PROBES    8
#define LOG_WHO_MAX   256 /* keeps the head short enough that the message always has room */
#define LOG_STAMP_MAX 64

struct log_site {
    const char *file; /* borrowed (__FILE__); NULL for a free slot */
    int line;
    uint64_t who_hash;
    int64_t window_start; /* ms, the clock's epoch */
    unsigned count;       /* lines seen in this window, written or not */
    unsigned suppressed;  /* lines dropped in this window */
};

_Atomic int sl_log_threshold = SL_LOG_INFO;

static int log_fd = STDERR_FILENO;
static bool log_journal;
static int64_t (*log_clock)(void);
static unsigned log_burst = SL_LOG_BURST;
static int64_t log_interval_ms = SL_LOG_INTERVAL_MS;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_site log_sites[LOG_SLOTS];

static const char *const log_names[] = {
    [SL_LOG_EMERG] = "emerg", [SL_LOG_ALERT] = "alert",     [SL_LOG_CRIT] = "crit",
    [SL_LOG_ERR] = "err",     [SL_LOG_WARNING] = "warning", [SL_LOG_NOTICE] = "notice",
    [SL_LOG_INFO] = "info",   [SL_LOG_DEBUG] = "debug",
};

static int64_t log_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t log_now(void)
{
    return log_clock ? log_clock() : log_realtime_ms();
}

/* FNV-1a; NULL hashes apart from every string, including the empty one. */
static uint64_t log_hash_who(const char *who)
{
    if (!who)
        return 1;
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)who; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3u;
    }
    return h;
}

static size_t log_slot_of(const char *file, int line, uint64_t who_hash)
{
    /* splitmix64's finalizer spreads nearby lines of one file over the whole table. */
    uint64_t x = (uint64_t)(uintptr_t)file ^ ((uint64_t)(unsigned)line << 32) ^ who_hash;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return (size_t)(x & (LOG_SLOTS - 1));
}

/*
 * Decides whether a call site may write now. Returns false to drop the line; otherwise true and
 * *carried is the count suppressed in the site's previous window (to be reported on this line).
 */
static bool log_admit(const char *file, int line, const char *who, int64_t now, unsigned *carried)
{
    *carried = 0;
    if (log_burst == 0)
        return true;
    uint64_t who_hash = log_hash_who(who);
    size_t start = log_slot_of(file, line, who_hash);
    struct log_site *victim = NULL;
    struct log_site *site = NULL;
    for (size_t i = 0; i < LOG_PROBES; i++) {
        struct log_site *s = &log_sites[(start + i) & (LOG_SLOTS - 1)];
        if (s->file == file && s->line == line && s->who_hash == who_hash) {
            site = s;
            break;
        }
        if (!s->file) {
            if (!victim || victim->file)
                victim = s;
        } else if (!victim || (victim->file && s->window_start < victim->window_start)) {
            victim = s;
        }
    }
    if (!site) {
        /* LOG_PROBES >= 1, so some slot was chosen. */
        *victim = (struct log_site){
            .file = file, .line = line, .who_hash = who_hash, .window_start = now, .count = 1};
        return true;
    }
    /* Unsigned difference: defined for any two clock readings once now >= window_start. */
    if (now < site->window_start ||
        (uint64_t)now - (uint64_t)site->window_start >= (uint64_t)log_interval_ms) {
        *carried = site->suppressed;
        site->window_start = now;
        site->count = 1;
        site->suppressed = 0;
        return true;
    }
    if (site->count < log_burst) {
        site->count++;
        return true;
    }
    if (site->suppressed < UINT_MAX)
        site->suppressed++;
    return false;
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 characters until the year 10000) into out. */
static void log_format_time(char out[LOG_STAMP_MAX], int64_t ms)
{
    int64_t sec = ms / 1000;
    int64_t milli = ms % 1000;
    if (milli < 0) { /* floor, for a clock set before 1970 */
        milli += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) { /* a year past int: only a broken clock gets here */
        snprintf(out, LOG_STAMP_MAX, "%s", "0000-00-00T00:00:00.000Z");
        return;
    }
    snprintf(out, LOG_STAMP_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)milli);
}

/* Clamps snprintf's would-be length to what landed in a buffer of `room` bytes. */
static size_t log_landed(int n, size_t room)
{
    if (n < 0 || room == 0)
        return 0;
    return (size_t)n < room ? (size_t)n : room - 1;
}

static void log_emit(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(log_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere left to complain to */
        p += n;
        len -= (size_t)n;
    }
}

void sl_log_write(int level, const char *who, const char *file, int line, const char *fmt, ...)
{
    int saved_errno = errno;
    if (level > sl_log_threshold)
        return;
    level = SL_MIN(SL_MAX(level, SL_LOG_EMERG), SL_LOG_DEBUG);

    int64_t now = log_now();
    unsigned carried = 0;
    if (level != SL_LOG_DEBUG) {
        pthread_mutex_lock(&log_lock);
        bool admit = log_admit(file, line, who, now, &carried);
        pthread_mutex_unlock(&log_lock);
        if (!admit) {
            errno = saved_errno;
            return;
        }
    }

    /* One spare byte so vsnprintf's NUL may land just past a full line. */
    char buf[SL_LOG_LINE_MAX + 1];
    size_t n = 0;
    if (log_journal) {
        n = log_landed(snprintf(buf, sizeof(buf), "<%d>", level), sizeof(buf));
    } else {
        char stamp[LOG_STAMP_MAX];
        log_format_time(stamp, now);
        n = log_landed(snprintf(buf, sizeof(buf), "%s %s ", stamp, log_names[level]), sizeof(buf));
    }
    if (who)
        n += log_landed(snprintf(buf + n, sizeof(buf) - n, "[%.*s] ", LOG_WHO_MAX, who),
                        sizeof(buf) - n);

    char tail[32];
    size_t tail_len = 0;
    if (carried > 0)
        tail_len =
            log_landed(snprintf(tail, sizeof(tail), " (%u suppressed)", carried), sizeof(tail));
    tail[tail_len++] = '\n';

    size_t msg_start = n;
    size_t room = SL_LOG_LINE_MAX - tail_len - n; /* head <= ~300 bytes, so this is large */
    errno = saved_errno;                          /* for %m */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, room + 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    if ((size_t)m <= room) {
        n += (size_t)m;
    } else {
        /* Back up while the first byte cut away is a UTF-8 continuation byte: no character is
         * split, so the journal and JSON-minded readers still see valid UTF-8. */
        size_t cut = msg_start + room - (sizeof(SL_LOG_CUT_MARK) - 1);
        while (cut > msg_start && ((unsigned char)buf[cut] & 0xC0) == 0x80)
            cut--;
        memcpy(buf + cut, SL_LOG_CUT_MARK, sizeof(SL_LOG_CUT_MARK) - 1);
        n = cut + sizeof(SL_LOG_CUT_MARK) - 1;
    }
    for (size_t i = msg_start; i < n; i++) {
        if (buf[i] == '\n')
            buf[i] = ' ';
    }
    memcpy(buf + n, tail, tail_len);
    n += tail_len;

    log_emit(buf, n);
    errno = saved_errno;
}

/* Reads decimal digits only (no sign, no blanks). Returns the end, or NULL when there are none
 * or they overflow. */
static const char *log_parse_ull(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

void sl_log_init(void)
{
    log_journal = false;
    const char *env = getenv("JOURNAL_STREAM");
    if (!env || !*env)
        return;
    unsigned long long dev, ino;
    const char *p = log_parse_ull(env, &dev);
    if (!p || *p != ':')
        return;
    p = log_parse_ull(p + 1, &ino);
    if (!p || *p != '\0')
        return;
    struct stat st;
    if (fstat(log_fd, &st) < 0)
        return;
    log_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void sl_log_set_fd(int fd)
{
    log_fd = fd;
    log_journal = false;
}

void sl_log_set_clock(int64_t (*now_ms)(void))
{
    log_clock = now_ms;
}

void sl_log_set_rate_limit(unsigned burst, int64_t interval_ms)
{
    pthread_mutex_lock(&log_lock);
    log_burst = burst;
    log_interval_ms = interval_ms > 0 ? interval_ms : 0;
    memset(log_sites, 0, sizeof(log_sites));
    pthread_mutex_unlock(&log_lock);
}

int sl_log_level_parse(const char *name)
{
    if (!name)
        return SL_EPARSE;
    if (name[0] >= '0' && name[0] <= '7' && name[1] == '\0')
        return name[0] - '0';
    for (int i = 0; i < (int)SL_ARRAY_LEN(log_names); i++) {
        if (strcasecmp(name, log_names[i]) == 0)
            return i;
    }
    if (strcasecmp(name, "error") == 0)
        return SL_LOG_ERR;
    if (strcasecmp(name, "warn") == 0)
        return SL_LOG_WARNING;
    return SL_EPARSE;
}

int sl_log_set_level_name(const char *name)
{
    int level = sl_log_level_parse(name);
    if (level < 0)
        return level;
    sl_log_threshold = level;
    return 0;
}

const char *sl_log_level_name(int level)
{
    if (level < 0 || level >= (int)SL_ARRAY_LEN(log_names))
        return "invalid";
    return log_names[level];
}
