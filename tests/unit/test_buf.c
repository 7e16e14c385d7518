/* Growable buffers (core/buf.h): the ceiling, and the blocks of the read
 * sizes that a thread keeps for reuse when buffers give them back. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void test_ceiling(void **state)
{
	(void)state;
	struct ig_buf b;
	ig_buf_init(&b, 10);
	assert_int_equal(ig_buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(ig_buf_append(&b, "x", 1), -ENOBUFS);
	assert_int_equal(b.len, 10);
	assert_string_equal(ig_buf_cstr(&b), "0123456789");
	ig_buf_free(&b);
	assert_null(b.ptr);
	assert_int_equal(b.max, 10); /* kept for the next use */
}

/* A 16 KiB block given back is the next 16 KiB buffer's; other sizes go
 * to their own buffers; what a buffer holds is its own. */
static void test_blocks_reused(void **state)
{
	(void)state;
	ig_buf_cache_drain();
	assert_int_equal(ig_buf_cache_held(), 0);
	struct ig_buf a = {0}, b = {0}, c = {0};
	assert_int_equal(ig_buf_reserve(&a, 16384), 0);
	assert_int_equal(a.cap, 16384);
	char *block = a.ptr;
	memset(a.ptr, 'a', 16384);
	ig_buf_free(&a);
	assert_int_equal(ig_buf_cache_held(), 1);
	assert_int_equal(ig_buf_reserve(&c, 65536), 0); /* another size */
	assert_ptr_not_equal(c.ptr, block);
	assert_int_equal(ig_buf_reserve(&b, 10000), 0); /* rounds up to 16 KiB */
	assert_ptr_equal(b.ptr, block);
	assert_int_equal(b.len, 0);
	assert_int_equal(ig_buf_append(&b, "hello", 5), 0);
	assert_memory_equal(b.ptr, "hello", 5);
	/* Growing moves it out, as realloc does. */
	assert_int_equal(ig_buf_reserve(&b, 20000), 0);
	assert_int_equal(b.cap, 32768);
	assert_memory_equal(b.ptr, "hello", 5);
	ig_buf_free(&b);
	ig_buf_free(&c);
	ig_buf_cache_drain();
}

/* At most a few blocks a size are kept: the rest go back to malloc. */
static void test_cache_bounded(void **state)
{
	(void)state;
	ig_buf_cache_drain();
	enum { N = 32 };
	struct ig_buf v[N];
	char *ptrs[N];
	for (int i = 0; i < N; i++) {
		v[i] = (struct ig_buf){0};
		assert_int_equal(ig_buf_reserve(&v[i], 16384), 0);
		ptrs[i] = v[i].ptr;
	}
	for (int i = 0; i < N; i++)
		ig_buf_free(&v[i]);
	assert_int_equal(ig_buf_cache_held(), 8);
	/* Taken again, the kept ones come back first, the last given back
	 * first, then malloc's. */
	for (int i = 0; i < N; i++) {
		assert_int_equal(ig_buf_reserve(&v[i], 16384), 0);
		if (i < 8)
			assert_ptr_equal(v[i].ptr, ptrs[7 - i]);
	}
	assert_int_equal(ig_buf_cache_held(), 0);
	for (int i = 0; i < N; i++)
		ig_buf_free(&v[i]);
	ig_buf_cache_drain();
}

/* A thread's kept blocks are freed when it exits (the ASan build's leak
 * check fails this test otherwise). */
static void *worker(void *arg)
{
	(void)arg;
	struct ig_buf b = {0};
	if (ig_buf_reserve(&b, 32768) == 0)
		ig_buf_free(&b);
	return (void *)ig_buf_cache_held();
}

static void test_thread_exit_frees(void **state)
{
	(void)state;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, worker, NULL), 0);
	void *held = NULL;
	assert_int_equal(pthread_join(t, &held), 0);
	assert_int_equal((size_t)held, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ceiling),
	    cmocka_unit_test(test_blocks_reused),
	    cmocka_unit_test(test_cache_bounded),
	    cmocka_unit_test(test_thread_exit_frees),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
