/* Small language-level helpers every file may use: container_of, assertions, array sizes. */
#ifndef SL_COMMON_BASE_H
#define SL_COMMON_BASE_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Recovers the owner of an embedded member (libev watchers live inside their owners). */
#define sl_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Programmer invariants only; never for bytes that came from outside the process. */
#define SL_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
