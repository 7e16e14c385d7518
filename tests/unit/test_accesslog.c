/* The access log's rings and lines: a full ring drops and counts, every
 * line is valid JSON whatever bytes the client sent, and a worker writing
 * while the control thread drains loses or mixes nothing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "gateway/accesslog.h"
#include "json/json.h"
#include "metrics/registry.h"

static struct ig_str S(const char *s) {
	return ig_str_from(s);
}

static struct ig_alog_entry
entry(void)
{
	return (struct ig_alog_entry){
	    .request_id = S("id-1"),
	    .client = S("127.0.0.1:5000"),
	    .method = S("POST"),
	    .path = S("/v1/completions"),
	    .model = S("m"),
	    .target = S("m-1"),
	    .pool = S("pool"),
	    .endpoint = S("10.0.0.1:8000"),
	    .reason = S(""),
	    .status = 200,
	    .attempts = 1,
	    .duration_ns = 1234567,
	    .ttft_ns = 1000000,
	    .prompt_tokens = 10,
	    .completion_tokens = 20,
	    .bytes_in = 100,
	    .bytes_out = 200,
	};
}

struct fixture {
	char path[64];
	struct ig_registry *reg;
	struct ig_series *dropped;
};

static void setup(struct fixture *f)
{
	snprintf(f->path, sizeof f->path, "/tmp/ig-alog-test-%d.log", (int)getpid());
	unlink(f->path);
	f->reg = ig_registry_new();
	struct ig_metric_family *fam = ig_metrics_counter(f->reg, "dropped", "d", NULL, 0);
	f->dropped = ig_metrics_series(fam, NULL);
}

static void teardown(struct fixture *f)
{
	unlink(f->path);
	ig_registry_free(f->reg);
}

/* The file's lines, each checked to be one JSON object; their count. */
static size_t check_lines(const char *path, void (*each)(struct ig_json_value v, void *ud),
			  void *ud)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, fp)) > 0) {
		assert_int_equal(line[len - 1], '\n');
		struct ig_json_value v;
		assert_int_equal(ig_json_parse(line, (size_t)len - 1, &v), 0);
		assert_int_equal(v.type, IG_JSON_OBJECT);
		if (each)
			each(v, ud);
		n++;
	}
	free(line);
	fclose(fp);
	return n;
}

static void test_full_ring_drops_and_counts(void **state)
{
	struct fixture f;
	setup(&f);
	struct ig_access_log *l = ig_access_log_open(f.path, IG_ALOG_JSON, 1, f.dropped);
	assert_non_null(l);
	struct ig_alog_ring *r = ig_access_log_ring(l, 0);
	struct ig_alog_entry e = entry();
	size_t n = 10000; /* ~3 MB of lines into a 1 MiB ring, nobody draining */
	for (size_t i = 0; i < n; i++)
		ig_alog_write(r, &e);
	double dropped = ig_series_value(f.dropped);
	assert_true(dropped > 0 && dropped < (double)n);
	ig_access_log_flush(l);
	/* Drained, the ring takes lines again. */
	ig_alog_write(r, &e);
	ig_access_log_close(l);
	assert_true(ig_series_value(f.dropped) == dropped);
	size_t kept = check_lines(f.path, NULL, NULL);
	assert_int_equal(kept + (size_t)dropped, n + 1);
	teardown(&f);
}

static void check_escapes(struct ig_json_value v, void *ud)
{
	struct ig_json_value path, reason, ttft;
	struct ig_buf b = {0};
	assert_int_equal(ig_json_get(v, "path", &path), 0);
	assert_int_equal(ig_json_string(path, &b), 0);
	/* Quote, backslash and control bytes kept; invalid UTF-8 as U+FFFD. */
	assert_string_equal(ig_buf_cstr(&b), "/a\"b\\c\x01\n\xc3\xa9\xef\xbf\xbd");
	ig_buf_reset(&b);
	assert_int_equal(ig_json_get(v, "reason", &reason), 0);
	assert_int_equal(ig_json_string(reason, &b), 0);
	assert_int_equal(b.len, 512); /* cut to its limit */
	assert_int_equal(ig_json_get(v, "ttft_ms", &ttft), 0);
	assert_int_equal(ttft.type, IG_JSON_NULL);
	ig_buf_free(&b);
	(*(int *)ud)++;
}

static void test_lines_are_json_whatever_the_bytes(void **state)
{
	struct fixture f;
	setup(&f);
	struct ig_access_log *l = ig_access_log_open(f.path, IG_ALOG_JSON, 1, f.dropped);
	assert_non_null(l);
	static char reason[5000];
	memset(reason, 'r', sizeof reason - 1);
	struct ig_alog_entry e = entry();
	e.path = S("/a\"b\\c\x01\n\xc3\xa9\xff");
	e.reason = S(reason);
	e.ttft_ns = 0;
	ig_alog_write(ig_access_log_ring(l, 0), &e);
	ig_access_log_close(l);
	int seen = 0;
	assert_int_equal(check_lines(f.path, check_escapes, &seen), 1);
	assert_int_equal(seen, 1);
	teardown(&f);
}

struct producer {
	struct ig_alog_ring *r;
	size_t n;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct ig_alog_entry e = entry();
	for (size_t i = 0; i < p->n; i++) {
		e.status = (int)i;
		ig_alog_write(p->r, &e);
	}
	return NULL;
}

static void test_concurrent_drain(void **state)
{
	struct fixture f;
	setup(&f);
	struct ig_access_log *l = ig_access_log_open(f.path, IG_ALOG_JSON, 2, f.dropped);
	assert_non_null(l);
	struct producer p[2] = {{ig_access_log_ring(l, 0), 50000},
				{ig_access_log_ring(l, 1), 50000}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
	for (int k = 0; k < 2000; k++) {
		ig_access_log_flush(l);
		usleep(100);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ig_access_log_close(l);
	size_t lines = check_lines(f.path, NULL, NULL);
	assert_int_equal(lines + (size_t)ig_series_value(f.dropped), 100000);
	teardown(&f);
}

/* A reader that takes nothing (a FIFO nobody reads): the pipe fills, then
 * the pending buffer, then the ring keeps the rest; at close every line
 * the pipe did not take is counted, those still in the ring included. */
static void test_close_counts_what_is_left(void **state)
{
	struct fixture f;
	setup(&f);
	assert_int_equal(mkfifo(f.path, 0600), 0);
	int rd = open(f.path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	struct ig_access_log *l = ig_access_log_open(f.path, IG_ALOG_JSON, 1, f.dropped);
	assert_non_null(l);
	struct ig_alog_entry e = entry();
	size_t n = 5000; /* ~1.7 MB: more than the pipe and pending hold */
	for (size_t i = 0; i < n; i++) {
		ig_alog_write(ig_access_log_ring(l, 0), &e);
		if (i % 500 == 499)
			ig_access_log_flush(l);
	}
	assert_true(ig_series_value(f.dropped) == 0); /* the ring never filled */
	ig_access_log_close(l);
	static char got[1 << 20];
	size_t len = 0;
	ssize_t k;
	while ((k = read(rd, got + len, sizeof got - len)) > 0)
		len += (size_t)k;
	close(rd);
	size_t lines = 0, line_len = 0;
	for (size_t i = 0; i < len; i++)
		if (got[i] == '\n' && !lines++)
			line_len = i + 1;
	assert_true(lines > 0 && line_len > 0);
	size_t dropped = (size_t)ig_series_value(f.dropped);
	assert_int_equal(lines + dropped, n);
	/* More than the 1 MiB pending buffer holds: ring lines were counted. */
	assert_true(dropped * line_len > (1u << 20));
	teardown(&f);
}

/* grpc_status is written for a gRPC call only, after the other fields,
 * in both formats. */
static void test_grpc_status_when_there_is_one(void **state)
{
	for (int text = 0; text < 2; text++) {
		struct fixture f;
		setup(&f);
		struct ig_access_log *l =
		    ig_access_log_open(f.path, text ? IG_ALOG_TEXT : IG_ALOG_JSON, 1, f.dropped);
		assert_non_null(l);
		struct ig_alog_entry e = entry();
		ig_alog_write(ig_access_log_ring(l, 0), &e);
		e.has_grpc_status = true;
		e.grpc_status = 0;
		ig_alog_write(ig_access_log_ring(l, 0), &e);
		e.grpc_status = 14;
		ig_alog_write(ig_access_log_ring(l, 0), &e);
		ig_access_log_close(l);
		FILE *fp = fopen(f.path, "r");
		assert_non_null(fp);
		char line[3][1024];
		for (int i = 0; i < 3; i++)
			assert_non_null(fgets(line[i], sizeof line[i], fp));
		fclose(fp);
		assert_null(strstr(line[0], "grpc_status"));
		const char *want0 = text ? " grpc_status=0\n" : ",\"grpc_status\":0}\n";
		const char *want14 = text ? " grpc_status=14\n" : ",\"grpc_status\":14}\n";
		size_t n0 = strlen(line[1]), w0 = strlen(want0);
		size_t n14 = strlen(line[2]), w14 = strlen(want14);
		assert_true(n0 > w0 && !strcmp(line[1] + n0 - w0, want0));
		assert_true(n14 > w14 && !strcmp(line[2] + n14 - w14, want14));
		teardown(&f);
	}
}

static void test_unopenable_path(void **state)
{
	assert_null(ig_access_log_open("/nonexistent-dir/x.log", IG_ALOG_JSON, 1, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_ring_drops_and_counts),
	    cmocka_unit_test(test_lines_are_json_whatever_the_bytes),
	    cmocka_unit_test(test_concurrent_drain),
	    cmocka_unit_test(test_close_counts_what_is_left),
	    cmocka_unit_test(test_grpc_status_when_there_is_one),
	    cmocka_unit_test(test_unopenable_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
