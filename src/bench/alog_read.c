/* --access-log: read what the gateway logged of this run's requests,
 * waiting a little for it (the gateway writes its log every 100 ms), and
 * sum it up per stage (alog.c does the parsing and the join). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "core/clock.h"

#define WAIT_MS 2000
#define POLL_MS 50
#define READ_BYTES (1u << 20)

long long bench_access_log_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* Requests recorded in the report whose line has not been read yet. */
static size_t missing(const struct ig_bench_join *j, const struct bench_run *runs, size_t n)
{
	size_t k = 0;
	for (size_t t = 0; t < n; t++)
		for (size_t i = 0; i < runs[t].n_samples; i++) {
			uint64_t id = runs[t].samples[i].id;
			k += !(id < j->n_ids && j->rec[id].seen);
		}
	return k;
}

/* Feeds what the file holds from *off on, whole lines only. A file
 * smaller than *off was truncated or rotated: read it from the start.
 * 0, 1 when the file does not exist (yet), -1 (errno). */
static int read_more(const char *path, struct ig_bench_join *j, long long *off, char *buf)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	struct stat st;
	if (fstat(fd, &st) == 0 && (long long)st.st_size < *off)
		*off = 0;
	size_t have = 0;
	for (;;) {
		ssize_t r =
		    pread(fd, buf + have, READ_BYTES - have, (off_t)(*off + (long long)have));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return r < 0 ? -1 : 0;
		}
		have += (size_t)r;
		size_t used = ig_bench_join_feed(j, buf, have);
		/* A line longer than the buffer is not the gateway's (they are
		 * under 16 KiB): skip it whole. */
		if (used == 0 && have == READ_BYTES) {
			j->bad++;
			used = have;
		}
		memmove(buf, buf + used, have - used);
		have -= used;
		*off += (long long)used;
	}
}

static int summarise(const struct ig_bench_join *j, struct bench_run *runs, size_t n_runs)
{
	for (size_t t = 0; t < n_runs; t++) {
		struct bench_run *run = &runs[t];
		size_t first = 0;
		for (size_t st = 0; st < run->n_stages; st++) {
			size_t end = first;
			while (end < run->n_samples && run->samples[end].stage == st)
				end++;
			struct ig_bench_gw_stages *g = calloc(1, sizeof *g);
			if (!g ||
			    ig_bench_gw_summarise(j, run->samples + first, end - first, g) < 0) {
				free(g);
				return -1;
			}
			run->stages[st].gw = g;
			first = end;
		}
	}
	return 0;
}

int bench_access_log(const struct bench_opts *o, struct bench_run *runs, size_t n_runs,
		     long long start)
{
	uint64_t n_ids = 0;
	for (size_t t = 0; t < n_runs; t++)
		if (runs[t].first_id + runs[t].n_ids > n_ids)
			n_ids = runs[t].first_id + runs[t].n_ids;
	struct ig_bench_join j;
	char *buf = malloc(READ_BYTES);
	if (!buf || ig_bench_join_init(&j, o->run_id, n_ids) < 0) {
		free(buf);
		fprintf(stderr, "infergate bench: out of memory reading the access log\n");
		return -1;
	}
	int rc = 0;
	long long off = start;
	uint64_t deadline = ig_now_ns() + (uint64_t)WAIT_MS * 1000000;
	for (;;) {
		int got = read_more(o->access_log, &j, &off, buf);
		if (got < 0 || (got == 1 && ig_now_ns() >= deadline)) {
			errno = got == 1 ? ENOENT : errno;
			fprintf(stderr, "infergate bench: %s: %s\n", o->access_log,
				strerror(errno));
			rc = -1;
			break;
		}
		if (j.text) {
			fprintf(stderr,
				"infergate bench: %s: a text-format access log; run the gateway "
				"with --access-log-format json\n",
				o->access_log);
			rc = -1;
			break;
		}
		if (missing(&j, runs, n_runs) == 0 || ig_now_ns() >= deadline)
			break;
		nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
	}
	if (rc == 0 && summarise(&j, runs, n_runs) < 0) {
		bench_access_log_free(runs, n_runs);
		fprintf(stderr, "infergate bench: out of memory summarising the access log\n");
		rc = -1;
	}
	if (rc == 0 && j.bad)
		fprintf(stderr, "infergate bench: %s: %llu lines that are not access-log JSON\n",
			o->access_log, (unsigned long long)j.bad);
	ig_bench_join_free(&j);
	free(buf);
	return rc;
}

void bench_access_log_free(struct bench_run *runs, size_t n_runs)
{
	for (size_t t = 0; t < n_runs; t++)
		for (size_t st = 0; st < runs[t].n_stages; st++) {
			free(runs[t].stages[st].gw);
			runs[t].stages[st].gw = NULL;
		}
}
