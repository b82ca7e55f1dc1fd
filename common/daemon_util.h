/* Small helpers the daemons' main() functions share. */
#ifndef SL_COMMON_DAEMON_UTIL_H
#define SL_COMMON_DAEMON_UTIL_H

#include "common/conf.h"
#include "common/err.h"

#include <stddef.h>

/* Writes "host:port", or "[host]:port" for an IPv6 literal, into buf (NUL-terminated). */
void sl_hostport_format(const struct sl_conf_hostport *hp, char *buf, size_t size);

/* Creates path and its missing parents with mode 0750 (like mkdir -p), then checks it is a
 * writable directory. Returns 0 or -errno with err naming the path. */
int sl_mkdir_p(const char *path, struct sl_err *err);

/* Replaces path with len bytes of data, so that a crash at any moment leaves either the old
 * file or the whole new one: written to path.tmp (mode 0640), fsynced, renamed over path, and
 * the folder fsynced. Returns 0 or -errno / -ENOMEM with err naming the file; path.tmp is
 * removed on failure. */
int sl_file_replace(const char *path, const void *data, size_t len, struct sl_err *err);

#endif
