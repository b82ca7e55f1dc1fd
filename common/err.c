/* Error detail formatting and code descriptions. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sl_err_set(struct sl_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void sl_err_prefix(struct sl_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    size_t hlen = strlen(head);
    size_t keep = strnlen(err->msg, sizeof(err->msg) - 1);
    if (hlen + keep > sizeof(err->msg) - 1)
        keep = sizeof(err->msg) - 1 - hlen;
    memmove(err->msg + hlen, err->msg, keep);
    memcpy(err->msg, head, hlen);
    err->msg[hlen + keep] = '\0';
}

const char *sl_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case SL_EPARSE:
        return "malformed input";
    case SL_ETRUNC:
        return "input truncated";
    case SL_ETOOBIG:
        return "length or count over its limit";
    case SL_ECORRUPT:
        return "checksum mismatch or corrupt data";
    case SL_ECONFIG:
        return "configuration rejected";
    case SL_EUNSUP:
        return "not supported";
    case SL_ECLOSED:
        return "closed";
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}
