/* The sd_notify(3) protocol, written out: readiness, reload, stop, status and watchdog datagrams
 * to the service manager's $NOTIFY_SOCKET. */
#ifndef SL_COMMON_SDNOTIFY_H
#define SL_COMMON_SDNOTIFY_H

#include <stdint.h>

/* Longest STATUS= text sent; sl_sdnotify_status cuts longer text at a UTF-8 boundary. */
#define SL_SDNOTIFY_STATUS_MAX 512

/*
 * Sends `state` (newline-separated VAR=value assignments, e.g. "READY=1") as one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET: an absolute path, or an abstract name when it starts
 * with '@'. The kernel attaches our credentials (systemd asks for them with SO_PASSCRED).
 * Returns 0 when sent; 0 without doing anything when $NOTIFY_SOCKET is unset (not run by a
 * service manager, or not Type=notify), so callers need not check first; otherwise a negative
 * -errno: -EINVAL for a NULL or empty state or an "@" with no name, -EAFNOSUPPORT when the
 * variable is neither an absolute path nor '@' (a relative path, a vsock address, empty),
 * -E2BIG when it does not fit in sun_path, or the failure of socket/sendto (-ENOENT,
 * -ECONNREFUSED, ...). Blocks while the receiver's queue is full, as libsystemd does.
 */
int sl_sdnotify(const char *state);

/* "READY=1": startup (or a reload) finished. Same returns as sl_sdnotify. */
int sl_sdnotify_ready(void);

/* "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>": systemd 253's Type=notify-reload needs
 * the timestamp, older managers ignore it. Send sl_sdnotify_ready when the reload is done. Same
 * returns as sl_sdnotify. */
int sl_sdnotify_reloading(void);

/* "STOPPING=1": shutdown began. Same returns as sl_sdnotify. */
int sl_sdnotify_stopping(void);

/* "STATUS=<text>": a one-line status for `systemctl status`. Newlines in the formatted text
 * become spaces (the protocol is line-based: a newline would start another assignment), and text
 * over SL_SDNOTIFY_STATUS_MAX bytes is cut. Same returns as sl_sdnotify. */
int sl_sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "WATCHDOG=1": keep-alive; send at least every sl_sdnotify_watchdog_usec() / 2. Same returns
 * as sl_sdnotify. */
int sl_sdnotify_watchdog(void);

/* The watchdog interval in µs from $WATCHDOG_USEC, as sd_watchdog_enabled(3) reads it: 0 when
 * there is no watchdog, i.e. the variable is unset, not a positive decimal number (or over
 * INT64_MAX), or $WATCHDOG_PID is set and is not our pid (or not a number). Arm a timer at half
 * of it. */
int64_t sl_sdnotify_watchdog_usec(void);

#endif
