/* Fuzz target: arbitrary bytes as a run of record batches; parse each header, walk every record
 * and header (gzip limited to 1 MiB), and rewrite the offsets of a copy. Must never crash,
 * leak or read out of bounds, whatever the input. */
#include "common/batch.h"
#include "common/buf.h"
#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_RECORDS_BYTES ((size_t)1 << 20)

/* Touches every byte a view claims, so ASan checks the bounds the decoder computed. */
static unsigned sum_bytes(struct sl_bytes b)
{
    unsigned s = 0;
    for (size_t i = 0; b.p && i < b.len; i++)
        s += b.p[i];
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_buf scratch;
    sl_buf_init(&scratch);
    volatile unsigned sink = 0;
    size_t pos = 0;
    /* The first byte picks strict or lenient rules, so both paths get explored. */
    unsigned flags = (size && (data[0] & 1)) ? SL_BATCH_STRICT : 0;
    while (pos < size) {
        struct sl_batch_header h;
        struct sl_err err;
        if (sl_batch_parse_header(&h, data + pos, size - pos, flags, &err))
            break;
        struct sl_batch_iter it;
        if (sl_batch_iter_init(&it, &h, data + pos, &scratch, FUZZ_MAX_RECORDS_BYTES, flags,
                               &err) == 0) {
            struct sl_batch_record r;
            int32_t n = 0;
            int rc;
            while ((rc = sl_batch_iter_next(&it, &r, &err)) == 1) {
                sink += sum_bytes(r.key) + sum_bytes(r.value);
                struct sl_batch_hiter hi;
                struct sl_bytes k, v;
                int32_t nh = 0;
                sl_batch_hiter_init(&hi, &r);
                while (sl_batch_hiter_next(&hi, &k, &v)) {
                    sink += sum_bytes(k) + sum_bytes(v);
                    nh++;
                }
                if (nh != r.header_count || r.offset > sl_batch_last_offset(&h))
                    abort(); /* the iterator promised a validated record */
                n++;
            }
            if (rc == 0 && n != h.record_count)
                abort();
        }
        /* Rewriting the broker's fields keeps the batch valid. */
        uint8_t *copy = malloc(h.size);
        if (copy) {
            memcpy(copy, data + pos, h.size);
            struct sl_batch_header h2;
            if (sl_batch_rewrite(copy, h.size, 42, 7) != 0 ||
                sl_batch_parse_header(&h2, copy, h.size, flags, NULL) != 0 ||
                h2.base_offset != 42 || h2.crc != h.crc)
                abort();
            free(copy);
        }
        pos += h.size;
    }
    sl_buf_fini(&scratch);
    (void)sink;
    return 0;
}
