/* Unit tests for the acknowledgement spans of plugins/plugin.h: checkpoints advance only over
 * a contiguous acknowledged prefix, whatever order batches finish in, and spans are freed by
 * whoever lets go last (ASan checks the leaks and double frees). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/mem.h"
#include "plugins/plugin.h"

#include <string.h>

static int acks_seen;

static void on_ack(struct plugin_ack_owner *o)
{
    acks_seen++;
}

/* A batch as the pipeline keeps it: an id and its span list. */
struct fake_batch {
    uint64_t id;
    struct plugin_ack_span *spans;
};

static void add(struct plugin_ack_owner *o, struct fake_batch *b, uint64_t end)
{
    struct plugin_ack_span *spare = sl_malloc(sizeof(*spare));
    assert_non_null(spare);
    plugin_ack_add(o, b->id, end, &spare, &b->spans);
    sl_free(spare); /* NULL when it was used */
}

static void finish(struct fake_batch *b, bool acked)
{
    while (b->spans) {
        struct plugin_ack_span *s = b->spans;
        b->spans = s->batch_next;
        if (acked)
            plugin_ack_done(s);
        else
            plugin_ack_abandon(s);
    }
}

static void test_in_order(void **state)
{
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 100, on_ack);
    acks_seen = 0;
    struct fake_batch a = {.id = 1}, b = {.id = 2};
    add(&o, &a, 110);
    add(&o, &a, 120); /* same batch: extends the span */
    assert_ptr_equal(o.head, o.tail);
    assert_int_equal(o.head->records, 2);
    add(&o, &b, 130);
    assert_true(plugin_ack_owner_pending(&o));
    assert_int_equal(o.acked, 100);
    finish(&a, true);
    assert_int_equal(o.acked, 120);
    assert_int_equal(o.records_acked, 2);
    assert_int_equal(acks_seen, 1);
    finish(&b, true);
    assert_int_equal(o.acked, 130);
    assert_int_equal(acks_seen, 2);
    assert_false(plugin_ack_owner_pending(&o));
    plugin_ack_owner_fini(&o);
}

/* Records of one file alternating between two partitions' batches: A, B, A, B. */
static void test_out_of_order(void **state)
{
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 0, on_ack);
    acks_seen = 0;
    struct fake_batch a = {.id = 7}, b = {.id = 8};
    add(&o, &a, 10);
    add(&o, &b, 20);
    add(&o, &a, 30);
    add(&o, &b, 40);
    finish(&a, true); /* 10 and 30 acknowledged, 20 is not: only 10 counts */
    assert_int_equal(o.acked, 10);
    assert_int_equal(acks_seen, 1);
    finish(&b, true);
    assert_int_equal(o.acked, 40);
    assert_int_equal(o.records_acked, 4);
    assert_int_equal(acks_seen, 2);
    plugin_ack_owner_fini(&o);
}

/* A later batch acknowledged first moves nothing until the earlier one is. */
static void test_later_first(void **state)
{
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 5, NULL);
    struct fake_batch a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    add(&o, &a, 10);
    add(&o, &b, 20);
    add(&o, &c, 30);
    finish(&c, true);
    finish(&b, true);
    assert_int_equal(o.acked, 5);
    finish(&a, true);
    assert_int_equal(o.acked, 30);
    plugin_ack_owner_fini(&o);
}

/* An abandoned batch (shutdown) holds the checkpoint before it forever. */
static void test_abandon(void **state)
{
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 0, NULL);
    struct fake_batch a = {.id = 1}, b = {.id = 2};
    add(&o, &a, 10);
    add(&o, &b, 20);
    finish(&a, false);
    finish(&b, true);
    assert_int_equal(o.acked, 0);
    assert_true(plugin_ack_owner_pending(&o));
    plugin_ack_owner_fini(&o); /* frees the abandoned span and the done one behind it */
}

/* The owner goes first (file freed, truncation restart): its spans still in batches are
 * ignored when those finish, and nothing leaks. */
static void test_owner_fini_first(void **state)
{
    struct plugin_ack_owner o;
    plugin_ack_owner_init(&o, 0, on_ack);
    acks_seen = 0;
    struct fake_batch a = {.id = 1}, b = {.id = 2};
    add(&o, &a, 10);
    add(&o, &b, 20);
    plugin_ack_owner_fini(&o);
    assert_null(o.head);
    finish(&a, true);
    finish(&b, false);
    assert_int_equal(acks_seen, 0);
    assert_int_equal(o.acked, 0);
    /* A new generation of the same owner starts clean. */
    plugin_ack_owner_init(&o, 0, on_ack);
    struct fake_batch c = {.id = 3};
    add(&o, &c, 5);
    finish(&c, true);
    assert_int_equal(o.acked, 5);
    plugin_ack_owner_fini(&o);
}

/* Two owners in one batch each get their own span. */
static void test_two_owners(void **state)
{
    struct plugin_ack_owner x, y;
    plugin_ack_owner_init(&x, 0, NULL);
    plugin_ack_owner_init(&y, 1000, NULL);
    struct fake_batch a = {.id = 1};
    add(&x, &a, 1);
    add(&y, &a, 1001);
    add(&x, &a, 2);
    /* x: [1] then y's span interleaves, but x's tail is still batch 1: extended. */
    assert_int_equal(x.head->records, 2);
    finish(&a, true);
    assert_int_equal(x.acked, 2);
    assert_int_equal(y.acked, 1001);
    plugin_ack_owner_fini(&x);
    plugin_ack_owner_fini(&y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),         cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_later_first),      cmocka_unit_test(test_abandon),
        cmocka_unit_test(test_owner_fini_first), cmocka_unit_test(test_two_owners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
