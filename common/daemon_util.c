/* Address formatting and directory creation for the daemons' start-up. */
#include "common/daemon_util.h"

#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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

int sl_file_replace(const char *path, const void *data, size_t len, struct sl_err *err)
{
    size_t plen = strlen(path);
    char *tmp = sl_malloc(plen + 5);
    char *dir = sl_strdup(path);
    int fd = -1, rc = 0;
    if (!tmp || !dir) {
        rc = sl_err_set(err, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = sl_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    for (const char *p = data; len > 0 && rc == 0;) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0) {
            p += w;
            len -= (size_t)w;
        }
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (rc != 0) {
        sl_err_set(err, rc, "%s: %s", tmp, strerror(-rc));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = sl_err_set(err, -errno, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* The rename is durable once the folder's entry is. */
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    sl_free(tmp);
    sl_free(dir);
    return rc;
}
