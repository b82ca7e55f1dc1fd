/* Fuzz target: arbitrary bytes as a JSON text for common/json_read.c. Checking, member lookup
 * and unescaping must never read outside the text (it is copied to a buffer of its exact size,
 * so ASan sees an overread), and the verdict must not depend on where the text's bytes fall
 * among the checker's 16-byte reads: the text with one space before it gets the same verdict,
 * its error one byte later. A text with raw newlines made one line stays valid. */
#include "common/buf.h"
#include "common/json_read.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The byte offset an error message ends with. */
static size_t err_at(const struct sl_err *e)
{
    const char *at = strstr(e->msg, " at byte ");
    size_t n = 0;
    if (!at || sscanf(at, " at byte %zu", &n) != 1)
        abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *text = malloc(size ? size : 1);
    uint8_t *shifted = malloc(size + 1);
    if (!text || !shifted)
        abort();
    memcpy(text, data, size);
    shifted[0] = ' ';
    memcpy(shifted + 1, data, size);

    enum sl_json_type t1 = SL_JSON_NONE, t2 = SL_JSON_NONE;
    bool newline = false;
    struct sl_err e1 = {{0}}, e2 = {{0}};
    int rc = sl_json_check_nl(text, size, &t1, &newline, &e1);
    if (sl_json_check(shifted, size + 1, &t2, &e2) != rc)
        abort();
    if (rc == 0 && t1 != t2)
        abort();
    if (rc != 0 && err_at(&e2) != err_at(&e1) + 1)
        abort();

    if (rc == 0 && newline) {
        sl_json_one_line(text, size);
        if (memchr(text, '\n', size) || memchr(text, '\r', size))
            abort();
        if (sl_json_check(text, size, NULL, NULL) != 0)
            abort();
    }

    static const char *keys[] = {"message", "a", ""};
    struct sl_buf b;
    sl_buf_init(&b);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        struct sl_json_val v;
        sl_json_get(text, size, keys[k], &v);
        if (v.type == SL_JSON_STRING) {
            sl_buf_reset(&b);
            (void)sl_json_unescape(&v, &b);
            (void)sl_json_has_nul(&v);
        }
    }
    sl_buf_fini(&b);
    free(shifted);
    free(text);
    return 0;
}
