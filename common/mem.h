/* Checked allocation with a failure countdown, so tests can fail the Nth allocation. */
#ifndef SL_COMMON_MEM_H
#define SL_COMMON_MEM_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup/free, but each may be made to fail by the countdown below.
 * They return NULL on failure; every caller checks. sl_realloc leaves p untouched on failure. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
void sl_free(void *p);

/* Frees and sets the pointer to NULL. */
#define SL_FREE(p)                                                                                 \
    do {                                                                                           \
        sl_free(p);                                                                                \
        (p) = NULL;                                                                                \
    } while (0)

/* Test hook (SQLite's fault simulation): the allocation after n more successful ones fails,
 * and all after it too when sticky is set. n < 0 disarms. Returns nothing; not thread-safe by
 * design, tests arm it from one thread. */
void sl_mem_fail_after(long n, int sticky);

/* How many allocations failed on purpose since the countdown was last armed. */
long sl_mem_failures(void);

#endif
