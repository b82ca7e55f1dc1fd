/* Address formatting and directory creation for the daemons' start-up. */
#include "common/daemon_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void sl_hostport_format(const struct sl_conf_hostport *hp, char *buf, size_t size)
{
    const char *h = hp->host ? hp->host : "";
    if (strchr(h, ':'))
        snprintf(buf, size, "[%s]:%u", h, hp->port);
    else
        snprintf(buf, size, "%s:%u", h, hp->port);
}

int sl_mkdir_p(const char *path, struct sl_err *err)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return sl_err_set(err, -ENAMETOOLONG, "%s: path empty or too long", path);
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return sl_err_set(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return sl_err_set(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    struct stat st;
    if (stat(tmp, &st) != 0)
        return sl_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sl_err_set(err, -ENOTDIR, "%s: not a directory", tmp);
    if (access(tmp, W_OK | X_OK) != 0)
        return sl_err_set(err, -errno, "%s: not writable: %s", tmp, strerror(errno));
    return 0;
}
