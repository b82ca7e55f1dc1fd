/* sd_notify(3) without libsystemd: one AF_UNIX datagram per notification. */
#include "common/sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * The protocol (sd_notify(3)): the payload is the state text itself, no framing, one datagram:
 *
 *   $NOTIFY_SOCKET = "/run/systemd/notify"   -> sun_path "/run/systemd/notify\0"
 *   $NOTIFY_SOCKET = "@/org/x/notify"        -> sun_path "\0/org/x/notify" (abstract; the
 *                                               address length ends the name, no NUL)
 *   payload: "READY=1" | "STOPPING=1" | "WATCHDOG=1" | "STATUS=<one line>"
 *          | "RELOADING=1\nMONOTONIC_USEC=<decimal µs>"
 */

int sl_sdnotify(const char *state)
{
    if (!state || !*state)
        return -EINVAL;
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path)
        return 0;
    if (path[0] != '/' && path[0] != '@')
        return -EAFNOSUPPORT;
    size_t path_len = strlen(path);
    if (path_len < 2)
        return -EINVAL;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (path_len >= sizeof(addr.sun_path)) /* room for the NUL a path needs */
        return -E2BIG;
    memcpy(addr.sun_path, path, path_len);
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    else
        addr_len++;

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ret = 0;
    size_t len = strlen(state);
    ssize_t n;
    do {
        n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&addr, addr_len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        ret = -errno;
    else if ((size_t)n != len)
        ret = -EPROTO; /* a datagram goes whole or not at all; never seen, but not assumed */
    close(fd);
    return ret;
}

int sl_sdnotify_ready(void)
{
    return sl_sdnotify("READY=1");
}

int sl_sdnotify_reloading(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return -errno;
    uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    char msg[64];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, usec);
    return sl_sdnotify(msg);
}

int sl_sdnotify_stopping(void)
{
    return sl_sdnotify("STOPPING=1");
}

int sl_sdnotify_status(const char *fmt, ...)
{
    static const char key[] = "STATUS=";
    /* One byte past the limit, so a cut can see whether it splits a character. */
    char msg[sizeof(key) - 1 + SL_SDNOTIFY_STATUS_MAX + 2];
    memcpy(msg, key, sizeof(key) - 1);
    char *text = msg + sizeof(key) - 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, SL_SDNOTIFY_STATUS_MAX + 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    size_t len = (size_t)n;
    if (len > SL_SDNOTIFY_STATUS_MAX) {
        /* systemd drops a STATUS= that is not valid UTF-8: never cut through a character, i.e.
         * back up while the first byte left out is a continuation byte. */
        len = SL_SDNOTIFY_STATUS_MAX;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--;
        text[len] = '\0';
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            text[i] = ' ';
    }
    return sl_sdnotify(msg);
}

int sl_sdnotify_watchdog(void)
{
    return sl_sdnotify("WATCHDOG=1");
}

/* Decimal digits only, no sign or blanks, at most INT64_MAX. Returns 0 or -1. */
static int sdnotify_parse_i64(const char *s, int64_t *out)
{
    if (!*s)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int64_t sl_sdnotify_watchdog_usec(void)
{
    const char *usec_s = getenv("WATCHDOG_USEC");
    if (!usec_s)
        return 0;
    /* The variable is inherited by children; WATCHDOG_PID says whose watchdog it is. */
    const char *pid_s = getenv("WATCHDOG_PID");
    if (pid_s) {
        int64_t pid;
        if (sdnotify_parse_i64(pid_s, &pid) < 0 || pid != (int64_t)getpid())
            return 0;
    }
    int64_t usec;
    if (sdnotify_parse_i64(usec_s, &usec) < 0 || usec <= 0)
        return 0;
    return usec;
}
