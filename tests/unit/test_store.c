/* Unit tests: store (batches with read-your-writes, savepoints, iterators, prefix deletes, reopen). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/store.h"

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/kith-test-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    kith_store *st;
    char *err = NULL;
    assert_int_equal(store_open(dir, NULL, &st, &err), 0);
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    store_close(*state);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_batch_read_your_writes(void **state)
{
    kith_store *st = *state;
    store_batch *b = store_batch_new(st);
    kith_buf v = {0};
    store_batch_put(b, STORE_CF_META, "k1", 2, "v1", 2);
    assert_int_equal(store_batch_get(st, b, STORE_CF_META, "k1", 2, &v), 0);
    assert_memory_equal(v.data, "v1", 2);
    /* Not visible to committed reads before the commit. */
    assert_int_equal(store_get(st, STORE_CF_META, "k1", 2, &v), KITH_ENOTFOUND);
    /* Another family does not see it. */
    assert_int_equal(store_batch_get(st, b, STORE_CF_IDENT, "k1", 2, &v), KITH_ENOTFOUND);
    assert_int_equal(store_batch_commit(st, b), 0);
    assert_int_equal(store_get(st, STORE_CF_META, "k1", 2, &v), 0);
    assert_int_equal(v.len, 2);
    assert_int_equal(store_batch_count(b), 0);
    kith_buf_free(&v);
    store_batch_free(b);
}

static void test_savepoint_rollback(void **state)
{
    kith_store *st = *state;
    store_batch *b = store_batch_new(st);
    kith_buf v = {0};
    store_batch_put(b, STORE_CF_META, "a", 1, "1", 1);
    store_batch_savepoint(b);
    store_batch_put(b, STORE_CF_META, "b", 1, "2", 1);
    store_batch_rollback(b);
    assert_int_equal(store_batch_commit(st, b), 0);
    assert_int_equal(store_get(st, STORE_CF_META, "a", 1, &v), 0);
    assert_int_equal(store_get(st, STORE_CF_META, "b", 1, &v), KITH_ENOTFOUND);
    kith_buf_free(&v);
    store_batch_free(b);
}

static void test_iterators_and_prefix_delete(void **state)
{
    kith_store *st = *state;
    store_batch *b = store_batch_new(st);
    for (uint32_t sb = 1; sb <= 3; sb++)
        for (uint64_t i = 0; i < 10; i++) {
            store_key k;
            skey_init(&k, sb);
            skey_u64(&k, i);
            store_batch_put(b, STORE_CF_EVENT, k.b, k.n, "x", 1);
        }
    assert_int_equal(store_batch_commit(st, b), 0);
    /* An uncommitted key in the batch shows up when iterating with the batch. */
    store_key k;
    skey_init(&k, 2);
    skey_u64(&k, 100);
    store_batch_put(b, STORE_CF_EVENT, k.b, k.n, "y", 1);
    uint8_t p[4];
    kith_put_be32(p, 2);
    store_iter *it = store_iter_new(st, b, STORE_CF_EVENT, p, 4);
    int n = 0;
    uint64_t last = 0;
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl;
        const uint8_t *key = store_iter_key(it, &kl);
        assert_int_equal(kl, 12);
        assert_int_equal(kith_get_be32(key), 2);
        uint64_t v = kith_get_be64(key + 4);
        if (n) assert_true(v > last);
        last = v;
        n++;
    }
    store_iter_free(it);
    assert_int_equal(n, 11);
    store_batch_clear(b);
    /* Seek for prev (descending scans). */
    it = store_iter_new(st, NULL, STORE_CF_EVENT, p, 4);
    skey_init(&k, 2);
    skey_u64(&k, 5);
    store_iter_seek_for_prev(it, k.b, k.n);
    assert_true(store_iter_valid(it));
    size_t kl;
    assert_int_equal(kith_get_be64(store_iter_key(it, &kl) + 4), 5);
    store_iter_prev(it);
    assert_int_equal(kith_get_be64(store_iter_key(it, &kl) + 4), 4);
    store_iter_free(it);
    /* Delete sandbox 2 only. */
    assert_int_equal(store_delete_prefix(st, STORE_CF_EVENT, p, 4), 0);
    it = store_iter_new(st, NULL, STORE_CF_EVENT, p, 4);
    assert_false(store_iter_valid(it));
    store_iter_free(it);
    for (uint32_t sb = 1; sb <= 3; sb += 2) {
        kith_put_be32(p, sb);
        it = store_iter_new(st, NULL, STORE_CF_EVENT, p, 4);
        n = 0;
        for (; store_iter_valid(it); store_iter_next(it)) n++;
        store_iter_free(it);
        assert_int_equal(n, 10);
    }
    store_batch_free(b);
}

/* One iterator re-aimed at many prefixes over a snapshot: it sees only its prefix's keys as of the
 * snapshot, never keys written later (which fill the key space between the prefixes). */
static void test_iterator_reset_over_snapshot(void **state)
{
    kith_store *st = *state;
    store_batch *b = store_batch_new(st);
    for (uint8_t p = 0; p < 20; p += 2)
        for (uint8_t k = 0; k < 3; k++) {
            uint8_t key[3] = {'r', p, k};
            store_batch_put(b, STORE_CF_SEGIDX, key, 3, "old", 3);
        }
    assert_int_equal(store_batch_commit(st, b), 0);
    store_snapshot *snap = store_snapshot_new(st);
    for (uint8_t p = 0; p < 20; p++)
        for (uint8_t k = 0; k < 50; k++) {
            uint8_t key[3] = {'r', p, (uint8_t)(k + 3)};
            store_batch_put(b, STORE_CF_SEGIDX, key, 3, "new", 3);
        }
    assert_int_equal(store_batch_commit(st, b), 0);
    store_snapshot_use(snap);
    uint8_t first[2] = {'r', 0};
    store_iter *it = store_iter_new(st, NULL, STORE_CF_SEGIDX, first, 2);
    for (uint8_t p = 0; p < 20; p++) {
        uint8_t prefix[2] = {'r', p};
        store_iter_reset(it, prefix, 2);
        int n = 0;
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t vl;
            const uint8_t *v = store_iter_value(it, &vl);
            assert_memory_equal(v, "old", 3);
            n++;
        }
        assert_int_equal(n, p % 2 == 0 ? 3 : 0);
    }
    /* a prefix of another length, then back */
    store_iter_reset(it, "r", 1);
    int n = 0;
    for (; store_iter_valid(it); store_iter_next(it)) n++;
    assert_int_equal(n, 30);
    store_iter_reset(it, first, 2);
    n = 0;
    for (; store_iter_valid(it); store_iter_next(it)) n++;
    assert_int_equal(n, 3);
    store_iter_free(it);
    store_snapshot_use(NULL);
    it = store_iter_new(st, NULL, STORE_CF_SEGIDX, first, 2);
    n = 0;
    for (; store_iter_valid(it); store_iter_next(it)) n++;
    assert_int_equal(n, 53); /* without the snapshot: everything */
    store_iter_free(it);
    store_snapshot_free(snap);
    store_batch_free(b);
}

static void test_reopen_keeps_data(void **state)
{
    kith_store *st = *state;
    store_batch *b = store_batch_new(st);
    store_batch_put(b, STORE_CF_PROFILE, "durable", 7, "yes", 3);
    assert_int_equal(store_batch_commit(st, b), 0);
    store_batch_free(b);
    store_close(st);
    char *err = NULL;
    assert_int_equal(store_open(dir, NULL, &st, &err), 0);
    *state = st;
    kith_buf v = {0};
    assert_int_equal(store_get(st, STORE_CF_PROFILE, "durable", 7, &v), 0);
    assert_memory_equal(v.data, "yes", 3);
    kith_buf_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_read_your_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_savepoint_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterators_and_prefix_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_reset_over_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
