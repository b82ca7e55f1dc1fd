/* Fuzz target: every answer decoder of the sluice command line's Kafka client (collector/cli)
 * must refuse any bytes cleanly, with nothing leaked. The first byte picks the decoder (low
 * nibble) and its version (high nibble); the rest is the answer body. */
#include "collector/cli/kc_admin.h"
#include "collector/cli/kc_fetch.h"
#include "collector/cli/kc_group.h"
#include "collector/cli/kc_produce.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_record(void *arg, struct kc_fetch_part *fp, const struct sl_batch_record *rec)
{
    struct sl_batch_hiter hi;
    struct sl_bytes k, v;
    sl_batch_hiter_init(&hi, rec);
    while (sl_batch_hiter_next(&hi, &k, &v))
        (*(size_t *)arg) += k.len + v.len;
    (*(size_t *)arg) += rec->value.len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    int v = sel >> 4;
    struct sl_reader r;
    sl_reader_init(&r, data + 1, size - 1);
    struct sl_err err = {{0}};
    switch (sel & 0x0f) {
    case 0: {
        struct kc_meta m = {0};
        kc_meta_parse(&r, (int16_t)(1 + v % 4), &m, &err);
        kc_meta_fini(&m);
        break;
    }
    case 1: {
        struct kc_offset_query q[2] = {{.partition = 0, .leader = 1},
                                       {.partition = 1, .leader = 1}};
        kc_list_offsets_parse(&r, (int16_t)(1 + v % 2), "t", q, 2, 1, &err);
        break;
    }
    case 2: {
        int16_t code;
        int64_t base;
        kc_produce_parse(&r, (int16_t)(3 + v % 5), "t", 0, &code, &base, &err);
        break;
    }
    case 3: {
        struct kc_fetcher f;
        kc_fetcher_init(&f, NULL);
        size_t seen = 0;
        if (kc_fetcher_add(&f, "t", 0, 1, 0, -1) == 0 && kc_fetcher_add(&f, "t", 1, 1, 5, 50) == 0)
            kc_fetch_parse(&f, &r, (int16_t)(4 + v % 8), 1, count_record, &seen, &err);
        kc_fetcher_fini(&f);
        break;
    }
    case 4: {
        struct kc_join_res j = {0};
        kc_join_parse(&r, (int16_t)(v % 6), &j, &err);
        kc_join_res_fini(&j);
        break;
    }
    case 5: {
        int16_t code;
        struct kc_tplist l = {0};
        kc_sync_parse(&r, (int16_t)(v % 4), &code, &l, &err);
        kc_tplist_fini(&l);
        break;
    }
    case 6: {
        struct kc_tplist l = {0};
        int16_t code;
        kc_offset_fetch_parse(&r, (int16_t)(1 + v % 5), &l, &code, &err);
        kc_tplist_fini(&l);
        break;
    }
    case 7: {
        struct kc_tplist l = {0};
        kc_tplist_add(&l, "t", 1, 0, 5);
        kc_commit_parse(&r, (int16_t)(2 + v % 6), &l, &err);
        kc_tplist_fini(&l);
        break;
    }
    case 8: {
        struct kc_group_desc d = {0};
        kc_describe_groups_parse(&r, (int16_t)(v % 3), &d, &err);
        kc_group_desc_fini(&d);
        break;
    }
    case 9: {
        struct kc_group_info *g = NULL;
        size_t n = 0;
        kc_list_groups_parse(&r, (int16_t)(v % 3), &g, &n, &err);
        kc_group_infos_free(g, n);
        break;
    }
    case 10: {
        struct kc_strlist s = {0};
        kc_cproto_sub_decode((struct sl_bytes){data + 1, size - 1}, &s, &err);
        kc_strlist_fini(&s);
        struct kc_tplist a = {0};
        kc_cproto_assign_decode((struct sl_bytes){data + 1, size - 1}, &a, &err);
        kc_tplist_fini(&a);
        break;
    }
    default: {
        struct kc_new_topic t = {.name = "t"};
        kc_create_topics_parse(&r, (int16_t)(v % 5), &t, 1, &err);
        const char *names[] = {"t"};
        int16_t codes[1];
        sl_reader_init(&r, data + 1, size - 1);
        kc_delete_topics_parse(&r, (int16_t)(v % 4), names, 1, codes, &err);
        break;
    }
    }
    return 0;
}
