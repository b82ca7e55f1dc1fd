/* Topic name validation (Kafka's rules), so a name never becomes a path it should not be. */
#include "collector/topic_name.h"

#include <errno.h>
#include <stdbool.h>

static bool legal_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int coll_topic_name_check(const char *name, size_t len, struct sl_err *err)
{
    if (!name || len == 0)
        return sl_err_set(err, -EINVAL, "topic name is empty");
    if (len > COLL_TOPIC_NAME_MAX)
        return sl_err_set(err, -EINVAL, "topic name is %zu bytes long, the limit is %d", len,
                          COLL_TOPIC_NAME_MAX);
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return sl_err_set(err, -EINVAL, "topic name cannot be '.' or '..'");
    for (size_t i = 0; i < len; i++) {
        if (!legal_char(name[i]))
            return sl_err_set(err, -EINVAL,
                              "topic name has an illegal byte 0x%02x at %zu; allowed are "
                              "ASCII letters, digits, '.', '_' and '-'",
                              (unsigned char)name[i], i);
    }
    return 0;
}
