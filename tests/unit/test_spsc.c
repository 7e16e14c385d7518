/* The single-producer single-consumer byte ring of core/: bytes come out
 * as they went in across the end of the ring and across the counters'
 * own wrap, a full ring refuses what does not fit and keeps what it has,
 * and a producer and a consumer on two threads move millions of bytes
 * without losing, mixing or tearing a record. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/spsc.h"

/* The byte at position i of record `seq`: a different stream per record,
 * so a record read at the wrong place or torn does not match. */
static unsigned char pattern(uint32_t seq, size_t i)
{
	uint32_t x = seq * 2654435761u + (uint32_t)i * 40503u;
	return (unsigned char)(x >> 13 ^ x);
}

static void fill(unsigned char *p, uint32_t seq, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(seq, i);
}

static void test_init(void **state)
{
	struct ig_spsc r;
	assert_int_equal(ig_spsc_init(&r, 0), -EINVAL);
	assert_int_equal(ig_spsc_init(&r, SIZE_MAX), -EINVAL);
	assert_int_equal(ig_spsc_init(&r, 1000), 0);
	assert_int_equal(r.cap, 1024);
	assert_int_equal(ig_spsc_readable(&r), 0);
	ig_spsc_free(&r);
	assert_int_equal(ig_spsc_init(&r, 4096), 0);
	assert_int_equal(r.cap, 4096);
	ig_spsc_free(&r);
	ig_spsc_free(&r); /* freed twice: the second is a no-op */
}

static void test_wrap_around(void **state)
{
	struct ig_spsc r;
	assert_int_equal(ig_spsc_init(&r, 16), 0);
	unsigned char in[16], out[16];
	fill(in, 1, 10);
	assert_true(ig_spsc_put(&r, in, 10));
	ig_spsc_read(&r, 0, out, 10);
	assert_memory_equal(out, in, 10);
	ig_spsc_consume(&r, 10);
	assert_int_equal(ig_spsc_readable(&r), 0);
	/* 12 bytes from position 10: 6 at the end, 6 at the start. */
	fill(in, 2, 12);
	assert_true(ig_spsc_put(&r, in, 12));
	assert_int_equal(ig_spsc_readable(&r), 12);
	memset(out, 0, sizeof out);
	ig_spsc_read(&r, 0, out, 12);
	assert_memory_equal(out, in, 12);
	/* A read at an offset that starts before the end and ends past it. */
	memset(out, 0, sizeof out);
	ig_spsc_read(&r, 4, out, 5);
	assert_memory_equal(out, in + 4, 5);
	/* And one that starts past the end. */
	ig_spsc_read(&r, 7, out, 5);
	assert_memory_equal(out, in + 7, 5);
	ig_spsc_consume(&r, 12);
	ig_spsc_free(&r);
}

/* The counters wrap past SIZE_MAX as the positions wrap past the end. */
static void test_counter_wrap(void **state)
{
	struct ig_spsc r;
	assert_int_equal(ig_spsc_init(&r, 16), 0);
	atomic_store(&r.head, SIZE_MAX - 4);
	atomic_store(&r.tail, SIZE_MAX - 4);
	unsigned char in[16], out[16];
	for (uint32_t round = 0; round < 8; round++) {
		fill(in, round, 11);
		assert_true(ig_spsc_put(&r, in, 11));
		assert_int_equal(ig_spsc_readable(&r), 11);
		assert_false(ig_spsc_reserve(&r, 6));
		assert_true(ig_spsc_reserve(&r, 5));
		ig_spsc_read(&r, 0, out, 11);
		assert_memory_equal(out, in, 11);
		ig_spsc_consume(&r, 11);
	}
	assert_true(atomic_load(&r.head) < 100); /* it did wrap */
	ig_spsc_free(&r);
}

static void test_full_ring_refuses(void **state)
{
	struct ig_spsc r;
	assert_int_equal(ig_spsc_init(&r, 16), 0);
	unsigned char a[16], b[17], out[16];
	fill(a, 3, 16);
	fill(b, 4, 17);
	assert_false(ig_spsc_put(&r, b, 17)); /* more than the ring, ever */
	assert_int_equal(ig_spsc_readable(&r), 0);
	assert_true(ig_spsc_put(&r, a, 10));
	assert_false(ig_spsc_reserve(&r, 7));
	assert_false(ig_spsc_put(&r, b, 7));
	/* Refused: nothing published, the bytes there are unchanged. */
	assert_int_equal(ig_spsc_readable(&r), 10);
	ig_spsc_read(&r, 0, out, 10);
	assert_memory_equal(out, a, 10);
	assert_true(ig_spsc_put(&r, b, 6)); /* exactly full */
	assert_false(ig_spsc_reserve(&r, 1));
	assert_true(ig_spsc_reserve(&r, 0));
	assert_int_equal(ig_spsc_readable(&r), 16);
	/* Freed space is room again, and only that much. */
	ig_spsc_consume(&r, 3);
	assert_false(ig_spsc_put(&r, b + 6, 4));
	assert_true(ig_spsc_put(&r, b + 6, 3));
	ig_spsc_read(&r, 0, out, 16);
	assert_memory_equal(out, a + 3, 7);
	assert_memory_equal(out + 7, b, 9);
	ig_spsc_free(&r);
}

/* Reserve, write in pieces, commit: nothing is seen before the commit. */
static void test_reserve_commit(void **state)
{
	struct ig_spsc r;
	assert_int_equal(ig_spsc_init(&r, 32), 0);
	unsigned char rec[20], out[24];
	fill(rec, 5, sizeof rec);
	for (int round = 0; round < 5; round++) {
		uint32_t len = sizeof rec;
		assert_true(ig_spsc_reserve(&r, 4 + len));
		ig_spsc_write(&r, 4, rec, len); /* the body first, then its length */
		ig_spsc_write(&r, 0, &len, 4);
		assert_int_equal(ig_spsc_readable(&r), 0);
		ig_spsc_commit(&r, 4 + len);
		assert_int_equal(ig_spsc_readable(&r), 24);
		uint32_t got;
		ig_spsc_read(&r, 0, &got, 4);
		assert_int_equal(got, len);
		ig_spsc_read(&r, 4, out, got);
		assert_memory_equal(out, rec, len);
		ig_spsc_consume(&r, 4 + got);
	}
	ig_spsc_free(&r);
}

/* Length-prefixed records of every size from 0 to 50 through a 64-byte
 * ring, the consumer taking one, two or three at a time. */
static void test_records_intact(void **state)
{
	struct ig_spsc r;
	assert_int_equal(ig_spsc_init(&r, 64), 0);
	unsigned char buf[64];
	uint32_t sent = 0, got = 0, refused = 0;
	while (got < 2000) {
		uint32_t len = sent % 51;
		if (ig_spsc_reserve(&r, 4 + len)) {
			fill(buf, sent, len);
			ig_spsc_write(&r, 0, &len, 4);
			ig_spsc_write(&r, 4, buf, len);
			ig_spsc_commit(&r, 4 + len);
			sent++;
			continue;
		}
		refused++;
		size_t avail = ig_spsc_readable(&r), off = 0;
		for (uint32_t k = 0; k <= got % 3 && avail - off >= 4; k++) {
			uint32_t n;
			ig_spsc_read(&r, off, &n, 4);
			assert_int_equal(n, got % 51);
			assert_true(avail - off >= 4 + n);
			ig_spsc_read(&r, off + 4, buf, n);
			for (uint32_t i = 0; i < n; i++)
				assert_int_equal(buf[i], pattern(got, i));
			off += 4 + n;
			got++;
		}
		ig_spsc_consume(&r, off);
	}
	assert_true(refused > 0);
	assert_true(sent >= got);
	ig_spsc_free(&r);
}

/* ---- two threads ---- */

#define TOTAL_BYTES (6u << 20)
#define MAX_RECORD 1500

struct flow {
	struct ig_spsc r;
	uint32_t records; /* the producer's count, read after the join */
};

static uint32_t record_len(uint32_t seq)
{
	return (seq * 7919u) % MAX_RECORD;
}

static void *produce(void *arg)
{
	struct flow *f = arg;
	unsigned char rec[MAX_RECORD];
	size_t bytes = 0;
	uint32_t seq = 0;
	while (bytes < TOTAL_BYTES) {
		uint32_t len = record_len(seq);
		fill(rec, seq, len);
		while (!ig_spsc_reserve(&f->r, 4 + len))
			sched_yield();
		ig_spsc_write(&f->r, 0, &len, 4);
		ig_spsc_write(&f->r, 4, rec, len);
		ig_spsc_commit(&f->r, 4 + len);
		bytes += 4 + len;
		seq++;
	}
	/* A zero-length record with the largest length ends the flow. */
	uint32_t end = UINT32_MAX;
	while (!ig_spsc_put(&f->r, &end, 4))
		sched_yield();
	f->records = seq;
	return NULL;
}

static void test_two_threads(void **state)
{
	struct flow f = {0};
	/* A small ring, so the two sides meet at its end often. */
	assert_int_equal(ig_spsc_init(&f.r, 4096), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, produce, &f), 0);
	unsigned char rec[MAX_RECORD];
	uint32_t seq = 0;
	size_t bytes = 0;
	for (;;) {
		size_t avail = ig_spsc_readable(&f.r), off = 0;
		if (!avail) {
			sched_yield();
			continue;
		}
		uint32_t len = 0;
		while (avail - off >= 4) {
			ig_spsc_read(&f.r, off, &len, 4);
			if (len == UINT32_MAX)
				break;
			assert_int_equal(len, record_len(seq));
			/* Whole records only: the producer publishes none in part. */
			assert_true(avail - off >= 4 + len);
			ig_spsc_read(&f.r, off + 4, rec, len);
			for (uint32_t i = 0; i < len; i++)
				if (rec[i] != pattern(seq, i))
					fail_msg("record %u byte %u: %u, not %u", seq, i, rec[i],
						 pattern(seq, i));
			off += 4 + len;
			bytes += 4 + len;
			seq++;
		}
		ig_spsc_consume(&f.r, off);
		if (len == UINT32_MAX)
			break;
	}
	pthread_join(t, NULL);
	assert_int_equal(seq, f.records);
	assert_true(bytes >= TOTAL_BYTES);
	ig_spsc_free(&f.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init),	   cmocka_unit_test(test_wrap_around),
	    cmocka_unit_test(test_counter_wrap),   cmocka_unit_test(test_full_ring_refuses),
	    cmocka_unit_test(test_reserve_commit), cmocka_unit_test(test_records_intact),
	    cmocka_unit_test(test_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
