/* The allocator wrappers and their test-only failure countdown. */
#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

static long countdown = -1;
static int fail_sticky;
static long failures;

static int should_fail(void)
{
    if (countdown < 0)
        return 0;
    if (countdown == 0) {
        failures++;
        if (!fail_sticky)
            countdown = -1;
        return 1;
    }
    countdown--;
    return 0;
}

void sl_mem_fail_after(long n, int sticky)
{
    countdown = n;
    fail_sticky = sticky;
    failures = 0;
}

long sl_mem_failures(void)
{
    return failures;
}

void *sl_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *sl_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *sl_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *sl_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = sl_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

void sl_free(void *p)
{
    free(p);
}
