/* Small blocks kept per thread (core/smallblock.h): classes, reuse, the
 * bound on what a thread keeps, realloc and calloc's contracts, blocks
 * freed by another thread than the one that took them. */
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/smallblock.h"

static void test_classes_and_alignment(void **state)
{
	(void)state;
	static const size_t sizes[] = {0, 1, 31, 32, 33, 100, 256, 1000, 2047, 2048, 2049, 70000};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		unsigned char *p = ig_smallblock_alloc(sizes[i]);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		size_t usable = ig_smallblock_usable(p);
		assert_true(usable >= sizes[i]);
		if (sizes[i] <= IG_SMALLBLOCK_MAX) /* the next multiple of 16 */
			assert_int_equal(usable, sizes[i] ? (sizes[i] + 15) / 16 * 16 : 16);
		else
			assert_int_equal(usable, sizes[i]);
		memset(p, 0xab, usable);
		ig_smallblock_free(p);
	}
	assert_int_equal(ig_smallblock_usable(NULL), 0);
	ig_smallblock_free(NULL);
	ig_smallblock_thread_cleanup();
}

static void test_reuse_within_a_class(void **state)
{
	(void)state;
	void *a = ig_smallblock_alloc(200);
	void *b = ig_smallblock_alloc(200);
	assert_ptr_not_equal(a, b);
	ig_smallblock_free(a);
	/* The same class (193..208 bytes) gets the block just given back. */
	assert_ptr_equal(ig_smallblock_alloc(193), a);
	/* Another class does not. */
	void *c = ig_smallblock_alloc(100);
	assert_ptr_not_equal(c, b);
	ig_smallblock_free(b);
	void *d = ig_smallblock_alloc(100);
	assert_ptr_not_equal(d, b);
	ig_smallblock_free(a);
	ig_smallblock_free(c);
	ig_smallblock_free(d);
	ig_smallblock_thread_cleanup();
	/* Large blocks are never kept. */
	void *big = ig_smallblock_alloc(IG_SMALLBLOCK_MAX + 1);
	ig_smallblock_free(big);
	void *big2 = ig_smallblock_alloc(IG_SMALLBLOCK_MAX + 1);
	ig_smallblock_free(big2);
}

static void test_kept_is_bounded(void **state)
{
	(void)state;
	enum { N = 1000 };
	static void *p[N];
	for (int i = 0; i < N; i++)
		assert_non_null(p[i] = ig_smallblock_alloc(64));
	for (int i = 0; i < N; i++)
		ig_smallblock_free(p[i]);
	/* The first 256 freed are kept (the bound), the rest went back to malloc. */
	assert_int_equal(ig_smallblock_kept(), 256);
	/* They come back last freed first. */
	for (int i = 0; i < 256; i++)
		assert_ptr_equal(ig_smallblock_alloc(64), p[255 - i]);
	assert_int_equal(ig_smallblock_kept(), 0);
	for (int i = 0; i < 256; i++)
		ig_smallblock_free(p[i]);
	assert_int_equal(ig_smallblock_kept(), 256);
	ig_smallblock_thread_cleanup();
	assert_int_equal(ig_smallblock_kept(), 0);
}

/* The 1 MiB a thread keeps counts the 16-byte heads: 256 blocks of the
 * 2,048-byte class take 528,384 bytes, 254 of the 2,032-byte one the
 * 520,192 left, and none of the 2,016-byte one fits (counting payloads
 * only had kept 256 + 256 + 2). */
static void test_kept_bytes_bounded(void **state)
{
	(void)state;
	enum { N = 256 };
	static void *p[3][N];
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < N; i++)
			assert_non_null(p[c][i] = ig_smallblock_alloc(2048 - 16 * (size_t)c));
	for (int c = 0; c < 3; c++)
		for (int i = 0; i < N; i++)
			ig_smallblock_free(p[c][i]);
	assert_int_equal(ig_smallblock_kept(), 256 + 254);
	ig_smallblock_thread_cleanup();
}

/* A block freed twice stops the program (as glibc's free does), where it
 * would have been handed out to two owners. */
static void test_double_free_aborts(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *q = ig_smallblock_alloc(100);
		ig_smallblock_free(q);
		ig_smallblock_free(q);
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

static void test_realloc_and_calloc(void **state)
{
	(void)state;
	char *p = ig_smallblock_realloc(NULL, 10);
	assert_non_null(p);
	memcpy(p, "0123456789", 10);
	/* Within the class: the same block. */
	assert_ptr_equal(ig_smallblock_realloc(p, 16), p);
	/* Grown past it, and past the largest class: the bytes follow. */
	char *q = ig_smallblock_realloc(p, 3000);
	assert_non_null(q);
	assert_memory_equal(q, "0123456789", 10);
	assert_true(ig_smallblock_usable(q) >= 3000);
	/* A large block shrunk into a class moves into it. */
	char *r = ig_smallblock_realloc(q, 20);
	assert_non_null(r);
	assert_memory_equal(r, "0123456789", 10);
	assert_int_equal(ig_smallblock_usable(r), 32);
	ig_smallblock_free(r);
	unsigned char *z = ig_smallblock_alloc(500);
	memset(z, 0xff, ig_smallblock_usable(z));
	ig_smallblock_free(z);
	z = ig_smallblock_calloc(10, 50); /* the block just dirtied */
	assert_non_null(z);
	for (int i = 0; i < 500; i++)
		assert_int_equal(z[i], 0);
	ig_smallblock_free(z);
	assert_null(ig_smallblock_calloc(SIZE_MAX / 2, 4));
	assert_null(ig_smallblock_alloc(SIZE_MAX - 8));
	ig_smallblock_thread_cleanup();
}

static void *take(void *arg)
{
	(void)arg;
	return ig_smallblock_alloc(300);
}

static void test_freed_by_another_thread(void **state)
{
	(void)state;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, take, NULL), 0);
	void *p = NULL;
	assert_int_equal(pthread_join(t, &p), 0);
	assert_non_null(p);
	/* It joins this thread's cache. */
	ig_smallblock_free(p);
	assert_ptr_equal(ig_smallblock_alloc(300), p);
	ig_smallblock_free(p);
	ig_smallblock_thread_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classes_and_alignment),
	    cmocka_unit_test(test_reuse_within_a_class),
	    cmocka_unit_test(test_kept_is_bounded),
	    cmocka_unit_test(test_kept_bytes_bounded),
	    cmocka_unit_test(test_double_free_aborts),
	    cmocka_unit_test(test_realloc_and_calloc),
	    cmocka_unit_test(test_freed_by_another_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
