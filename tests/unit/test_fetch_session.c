/* Unit tests for collector/fetch_session: the KIP-227 session cache, no I/O. */
#include "collector/fetch_session.h"
#include "common/mem.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int upsert(struct coll_fsess *s, const char *topic, int32_t p, int64_t off)
{
    return coll_fsess_upsert(s, topic, strlen(topic), p, off, 1024);
}

static struct coll_fsess_part *get(struct coll_fsess *s, const char *topic, int32_t p)
{
    return coll_fsess_get(s, topic, strlen(topic), p);
}

static void test_create_find_remove(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 4, 1000, 42), 0);
    struct coll_fsess *a = coll_fsess_create(&c, 1, 0);
    struct coll_fsess *b = coll_fsess_create(&c, 1, 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a->id > 0);
    assert_true(b->id > 0);
    assert_int_not_equal(a->id, b->id);
    assert_int_equal(a->epoch, 1); /* the next request after the creating full fetch */
    assert_ptr_equal(coll_fsess_find(&c, a->id), a);
    assert_ptr_equal(coll_fsess_find(&c, b->id), b);
    assert_null(coll_fsess_find(&c, COLL_FSESS_INVALID_ID));
    int32_t aid = a->id;
    assert_true(coll_fsess_remove(&c, aid));
    assert_false(coll_fsess_remove(&c, aid));
    assert_false(coll_fsess_remove(&c, COLL_FSESS_INVALID_ID));
    assert_null(coll_fsess_find(&c, aid));
    assert_ptr_equal(coll_fsess_find(&c, b->id), b);
    coll_fsess_cache_fini(&c);
    coll_fsess_cache_fini(&c); /* idempotent */
}

static void test_disabled(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 0, 1000, 1), 0);
    assert_null(coll_fsess_create(&c, 5, 0));
    coll_fsess_cache_fini(&c);
}

static void test_epochs(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 1, 1000, 7), 0);
    struct coll_fsess *s = coll_fsess_create(&c, 0, 100);
    coll_fsess_touch(s, 200);
    assert_int_equal(s->epoch, 2);
    assert_int_equal(s->last_used_ms, 200);
    s->epoch = INT32_MAX;
    coll_fsess_touch(s, 300);
    assert_int_equal(s->epoch, 1); /* wraps to 1, never 0 or -1 */
    coll_fsess_cache_fini(&c);
}

static void test_upsert_forget_compact(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 1, 1000, 9), 0);
    struct coll_fsess *s = coll_fsess_create(&c, 3, 0);
    assert_int_equal(upsert(s, "a", 0, 10), 0);
    assert_int_equal(upsert(s, "a", 1, 20), 0);
    assert_int_equal(upsert(s, "b", 0, 30), 0);
    assert_int_equal(s->nparts, 3);
    struct coll_fsess_part *p = get(s, "a", 1);
    assert_non_null(p);
    assert_int_equal(p->fetch_offset, 20);
    assert_int_equal(p->hw, -1); /* a new partition is always sent */
    assert_int_equal(p->log_start, -1);
    p->hw = 99;
    /* An update keeps the cached high watermark and the position. */
    assert_int_equal(coll_fsess_upsert(s, "a", 1, 1, 25, 2048), 0);
    assert_int_equal(s->nparts, 3);
    p = get(s, "a", 1);
    assert_int_equal(p->fetch_offset, 25);
    assert_int_equal(p->max_bytes, 2048);
    assert_int_equal(p->hw, 99);
    assert_ptr_equal(p, &s->parts[1]);
    /* Names are bytes with a length: "a" and "a\0" differ, prefixes differ. */
    assert_null(coll_fsess_get(s, "a\0", 2, 0));
    assert_null(get(s, "", 0));
    assert_null(get(s, "b", 1));
    /* Forget one and an unknown one; compaction keeps the order of the rest. */
    coll_fsess_forget(s, "a", 1, 0);
    coll_fsess_forget(s, "zz", 2, 5);
    coll_fsess_compact(s);
    assert_int_equal(s->nparts, 2);
    assert_string_equal(s->parts[0].topic, "a");
    assert_int_equal(s->parts[0].partition, 1);
    assert_string_equal(s->parts[1].topic, "b");
    assert_null(get(s, "a", 0));
    assert_ptr_equal(get(s, "b", 0), &s->parts[1]);
    /* Forgotten then listed again in the same request: kept (adds run before forgets in
     * Kafka; a later upsert clears the mark). */
    coll_fsess_forget(s, "b", 1, 0);
    assert_int_equal(upsert(s, "b", 0, 31), 0);
    coll_fsess_compact(s);
    assert_int_equal(s->nparts, 2);
    coll_fsess_forget(s, "a", 1, 1);
    coll_fsess_forget(s, "b", 1, 0);
    coll_fsess_compact(s);
    assert_int_equal(s->nparts, 0);
    assert_null(get(s, "b", 0));
    coll_fsess_cache_fini(&c);
}

static void test_move_to_end(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 1, 1000, 9), 0);
    struct coll_fsess *s = coll_fsess_create(&c, 5, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(upsert(s, "t", i, i), 0);
    s->parts[0].to_end = s->parts[2].to_end = true;
    coll_fsess_move_to_end(s);
    const int32_t want[] = {1, 3, 4, 0, 2};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s->parts[i].partition, want[i]);
        assert_false(s->parts[i].to_end);
        assert_ptr_equal(get(s, "t", want[i]), &s->parts[i]);
    }
    /* All or none marked: the order stays. */
    for (int i = 0; i < 5; i++)
        s->parts[i].to_end = true;
    coll_fsess_move_to_end(s);
    coll_fsess_move_to_end(s);
    for (int i = 0; i < 5; i++)
        assert_int_equal(s->parts[i].partition, want[i]);
    coll_fsess_cache_fini(&c);
}

static void test_many_partitions(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 1, 1000, 3), 0);
    struct coll_fsess *s = coll_fsess_create(&c, 0, 0);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "t%d", i % 50);
        assert_int_equal(upsert(s, name, i / 50, i), 0);
    }
    assert_int_equal(s->nparts, 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(name, sizeof(name), "t%d", i % 50);
        coll_fsess_forget(s, name, strlen(name), i / 50);
    }
    coll_fsess_compact(s);
    assert_int_equal(s->nparts, 2500);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "t%d", i % 50);
        struct coll_fsess_part *p = get(s, name, i / 50);
        if (i % 2) {
            assert_non_null(p);
            assert_int_equal(p->fetch_offset, i);
        } else {
            assert_null(p);
        }
    }
    coll_fsess_cache_fini(&c);
}

static void test_partition_limit(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 11, 1000, 3), 0);
    struct coll_fsess *s = coll_fsess_create(&c, 0, 0);
    for (int32_t i = 0; i < COLL_FSESS_MAX_PARTS; i++)
        assert_int_equal(upsert(s, "t", i, 0), 0);
    assert_int_equal(upsert(s, "t", COLL_FSESS_MAX_PARTS, 0), -E2BIG);
    assert_int_equal(s->nparts, COLL_FSESS_MAX_PARTS);
    assert_int_equal(upsert(s, "t", 7, 70), 0); /* an update still works */
    assert_int_equal(get(s, "t", 7)->fetch_offset, 70);
    assert_int_equal(c.total_parts, COLL_FSESS_MAX_PARTS);
    /* The cache's total: nine more full sessions fill it, then adds fail anywhere. */
    for (int k = 0; k < 9; k++) {
        struct coll_fsess *o = coll_fsess_create(&c, COLL_FSESS_MAX_PARTS, k + 1);
        assert_non_null(o);
        for (int32_t i = 0; i < COLL_FSESS_MAX_PARTS; i++)
            assert_int_equal(upsert(o, "u", i, 0), 0);
    }
    assert_int_equal(c.total_parts, COLL_FSESS_MAX_TOTAL_PARTS);
    struct coll_fsess *last = coll_fsess_create(&c, 1, 100);
    assert_non_null(last);
    assert_int_equal(upsert(last, "v", 0, 0), -E2BIG);
    coll_fsess_forget(s, "t", 1, 3);
    coll_fsess_compact(s);
    assert_int_equal(c.total_parts, COLL_FSESS_MAX_TOTAL_PARTS - 1);
    assert_int_equal(upsert(last, "v", 0, 0), 0);
    assert_true(coll_fsess_remove(&c, s->id));
    assert_int_equal(c.total_parts, COLL_FSESS_MAX_TOTAL_PARTS - COLL_FSESS_MAX_PARTS + 1);
    coll_fsess_cache_fini(&c);
    assert_int_equal(c.total_parts, 0);
}

static void test_eviction(void **state)
{
    struct coll_fsess_cache c;
    assert_int_equal(coll_fsess_cache_init(&c, 2, 1000, 5), 0);
    struct coll_fsess *a = coll_fsess_create(&c, 2, 0);
    assert_int_equal(upsert(a, "t", 0, 0), 0);
    assert_int_equal(upsert(a, "t", 1, 0), 0);
    struct coll_fsess *b = coll_fsess_create(&c, 3, 10);
    for (int i = 0; i < 3; i++)
        assert_int_equal(upsert(b, "t", i, 0), 0);
    int32_t aid = a->id, bid = b->id;
    /* Full, nobody stale, nobody smaller than 2 partitions: no room. */
    assert_null(coll_fsess_create(&c, 2, 500));
    assert_null(coll_fsess_create(&c, 1, 500));
    /* A bigger session evicts the smallest one (a, 2 partitions). */
    struct coll_fsess *d = coll_fsess_create(&c, 3, 600);
    assert_non_null(d);
    for (int i = 0; i < 3; i++)
        assert_int_equal(upsert(d, "u", i, 0), 0);
    assert_null(coll_fsess_find(&c, aid));
    assert_non_null(coll_fsess_find(&c, bid));
    int32_t did = d->id;
    /* b idle since 10: at 1010 it is stale and goes first, whatever the sizes. */
    assert_null(coll_fsess_create(&c, 1, 1009));
    struct coll_fsess *e = coll_fsess_create(&c, 1, 1010);
    assert_non_null(e);
    assert_null(coll_fsess_find(&c, bid));
    assert_non_null(coll_fsess_find(&c, did));
    /* A touched session is not stale: d (used at 600, touched at 1500) stays. */
    coll_fsess_touch(coll_fsess_find(&c, did), 1500);
    coll_fsess_touch(e, 1500);
    assert_null(coll_fsess_create(&c, 0, 2000));
    coll_fsess_cache_fini(&c);
}

/* Allocation failures at every step leave the cache consistent and leak nothing (ASan). */
static void test_alloc_failures(void **state)
{
    for (long n = 0; n < 40; n++) {
        struct coll_fsess_cache c;
        sl_mem_fail_after(n, 1);
        int rc = coll_fsess_cache_init(&c, 2, 1000, 11);
        if (rc == 0) {
            struct coll_fsess *s = coll_fsess_create(&c, 2, 0);
            for (int i = 0; s && i < 20; i++) {
                rc = upsert(s, i % 2 ? "x" : "y", i, i);
                if (rc != 0) {
                    assert_int_equal(rc, -ENOMEM);
                    break;
                }
            }
            if (s) {
                coll_fsess_forget(s, "x", 1, 1);
                coll_fsess_compact(s);
                for (size_t i = 0; i < s->nparts; i++)
                    s->parts[i].to_end = i % 2 == 0;
                coll_fsess_move_to_end(s);
                for (size_t i = 0; i < s->nparts; i++)
                    assert_ptr_equal(coll_fsess_get(s, s->parts[i].topic, 1, s->parts[i].partition),
                                     &s->parts[i]);
            }
        } else {
            assert_int_equal(rc, -ENOMEM);
        }
        sl_mem_fail_after(-1, 0);
        coll_fsess_cache_fini(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_find_remove),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_upsert_forget_compact),
        cmocka_unit_test(test_move_to_end),
        cmocka_unit_test(test_many_partitions),
        cmocka_unit_test(test_partition_limit),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
