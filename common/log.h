/* Logging: syslog levels, a per-component prefix, journal priority prefixes, repeat limiting. */
#ifndef SL_COMMON_LOG_H
#define SL_COMMON_LOG_H

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

/* The most verbose level written; read by the macros before their arguments are evaluated. */
extern int sl_log_threshold;

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

/* Writes one line to the log sink (stderr by default). Called through the macros. */
void sl_log_write(int level, const char *who, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
