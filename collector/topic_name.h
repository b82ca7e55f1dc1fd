/* Topic name validation: the only gate between a name from the network and a directory name. */
#ifndef SL_COLLECTOR_TOPIC_NAME_H
#define SL_COLLECTOR_TOPIC_NAME_H

#include "common/err.h"

#include <stddef.h>

/* Kafka's limit: 249 bytes, so "<topic>-<partition>" still fits a 255-byte file name. */
#define COLL_TOPIC_NAME_MAX 249

/*
 * Checks a topic name of len bytes (it need not be NUL-terminated and may contain NULs, which
 * are refused): 1..249 bytes of [a-zA-Z0-9._-], and neither "." nor "..". Returns 0, or
 * -EINVAL with err saying what is wrong (Kafka's INVALID_TOPIC_EXCEPTION to a client).
 */
int coll_topic_name_check(const char *name, size_t len, struct sl_err *err);

#endif
