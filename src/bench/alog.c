/* Bench's side of the gateway's access log: read its JSON lines, keep the
 * ones whose request id bench sent, and sum them up per bench stage. The
 * ids are `bench-<run id>-<n>` with n dense from 0, so the join is an
 * array indexed by n, not a hash table. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "json/json.h"

/* A decoded string member, cut to cap - 1 bytes; "" when absent or not a
 * string. */
static void copy_string(struct ig_json_value v, char *dst, size_t cap)
{
	dst[0] = '\0';
	if (v.type != IG_JSON_STRING)
		return;
	struct ig_buf b;
	ig_buf_init(&b, 16384);
	if (ig_json_string(v, &b) == 0 && b.len) {
		size_t n = b.len < cap - 1 ? b.len : cap - 1;
		memcpy(dst, b.ptr, n);
		dst[n] = '\0';
	}
	ig_buf_free(&b);
}

static bool is_text_line(const char *line, size_t len)
{
	return len >= 5 && memcmp(line, "time=", 5) == 0;
}

int ig_bench_alog_parse(const char *line, size_t len, char *id, size_t idcap,
			struct ig_bench_gw_rec *out)
{
	static const char *const keys[] = {"request_id", "status",	"endpoint", "queue_ms",
					   "ttft_ms",	 "duration_ms", "attempts", "reason"};
	enum { K_ID, K_STATUS, K_EP, K_QUEUE, K_TTFT, K_DUR, K_ATTEMPTS, K_REASON, K_N };
	struct ig_json_value v[K_N], root;
	memset(out, 0, sizeof *out);
	id[0] = '\0';
	if (is_text_line(line, len))
		return 1;
	if (ig_json_parse_members(line, len, keys, K_N, v, &root) < 0 ||
	    root.type != IG_JSON_OBJECT || v[K_ID].type != IG_JSON_STRING)
		return -1;
	int64_t status, attempts;
	if (ig_json_int64(v[K_STATUS], &status) < 0 ||
	    ig_json_int64(v[K_ATTEMPTS], &attempts) < 0 ||
	    ig_json_double(v[K_QUEUE], &out->queue_ms) < 0 ||
	    ig_json_double(v[K_DUR], &out->duration_ms) < 0)
		return -1;
	if (v[K_TTFT].type == IG_JSON_NULL)
		out->ttft_ms = NAN;
	else if (ig_json_double(v[K_TTFT], &out->ttft_ms) < 0)
		return -1;
	out->status = (int)status;
	out->attempts = (int)attempts;
	copy_string(v[K_ID], id, idcap);
	copy_string(v[K_EP], out->endpoint, sizeof out->endpoint);
	copy_string(v[K_REASON], out->reason, sizeof out->reason);
	return 0;
}

int ig_bench_join_init(struct ig_bench_join *j, const char *run_id, uint64_t n_ids)
{
	memset(j, 0, sizeof *j);
	int w = snprintf(j->prefix, sizeof j->prefix, "bench-%s-", run_id);
	if (w < 0 || (size_t)w >= sizeof j->prefix)
		return -1;
	j->prefix_len = (size_t)w;
	j->n_ids = n_ids;
	j->rec = calloc(n_ids ? n_ids : 1, sizeof *j->rec);
	return j->rec ? 0 : -1;
}

void ig_bench_join_free(struct ig_bench_join *j)
{
	free(j->rec);
	j->rec = NULL;
}

/* n of an id of this run, or -1. */
static int64_t id_number(const struct ig_bench_join *j, const char *id)
{
	if (strncmp(id, j->prefix, j->prefix_len) != 0)
		return -1;
	const char *d = id + j->prefix_len;
	if (*d < '0' || *d > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(d, &end, 10);
	if (*end || errno || n >= j->n_ids)
		return -1;
	return (int64_t)n;
}

static void feed_line(struct ig_bench_join *j, const char *line, size_t len)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	char id[160];
	struct ig_bench_gw_rec rec;
	int rc = ig_bench_alog_parse(line, len, id, sizeof id, &rec);
	if (rc == 1) {
		j->text++;
		return;
	}
	if (rc < 0) {
		j->bad++;
		return;
	}
	int64_t n = id_number(j, id);
	if (n < 0) {
		j->other++;
		return;
	}
	/* The first line of an id wins: a second one is a retry bench did
	 * not make, or the same log read twice. */
	if (j->rec[n].seen) {
		j->duplicates++;
		return;
	}
	rec.seen = true;
	j->rec[n] = rec;
}

size_t ig_bench_join_feed(struct ig_bench_join *j, const char *buf, size_t len)
{
	size_t done = 0;
	const char *nl;
	while ((nl = memchr(buf + done, '\n', len - done)) != NULL) {
		feed_line(j, buf + done, (size_t)(nl - (buf + done)));
		done = (size_t)(nl - buf) + 1;
	}
	return done;
}

void ig_bench_tally_add(struct ig_bench_tally *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->e[i].name, name) == 0) {
			t->e[i].count++;
			return;
		}
	size_t i = t->n;
	if (i >= IG_BENCH_MAX_TALLY - 1) {
		i = IG_BENCH_MAX_TALLY - 1;
		name = "other";
		t->n = IG_BENCH_MAX_TALLY;
	} else {
		t->n++;
	}
	snprintf(t->e[i].name, sizeof t->e[i].name, "%s", name);
	t->e[i].count++;
}

enum { D_QUEUE, D_TTFT, D_TTFT_DELTA, D_E2E, D_E2E_DELTA, D_N };

static void add_matched(struct ig_bench_gw_stages *out, const struct ig_bench_sample *s,
			const struct ig_bench_gw_rec *g, double **v, size_t *k)
{
	out->matched++;
	if (g->attempts > 1)
		out->retried++;
	if (g->endpoint[0])
		ig_bench_tally_add(&out->endpoints, g->endpoint);
	if (g->reason[0])
		ig_bench_tally_add(&out->reasons, g->reason);
	if (s->error)
		return;
	v[D_QUEUE][k[D_QUEUE]++] = g->queue_ms;
	v[D_E2E][k[D_E2E]++] = g->duration_ms;
	v[D_E2E_DELTA][k[D_E2E_DELTA]++] = s->e2e_ms - g->duration_ms;
	if (!isnan(g->ttft_ms)) {
		v[D_TTFT][k[D_TTFT]++] = g->ttft_ms;
		if (!isnan(s->ttft_ms))
			v[D_TTFT_DELTA][k[D_TTFT_DELTA]++] = s->ttft_ms - g->ttft_ms;
	}
}

int ig_bench_gw_summarise(const struct ig_bench_join *j, const struct ig_bench_sample *s, size_t n,
			  struct ig_bench_gw_stages *out)
{
	memset(out, 0, sizeof *out);
	double *v[D_N];
	size_t k[D_N] = {0};
	double *all = malloc(D_N * (n ? n : 1) * sizeof *all);
	if (!all)
		return -1;
	for (size_t d = 0; d < D_N; d++)
		v[d] = all + d * (n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i].id < j->n_ids && j->rec[s[i].id].seen)
			add_matched(out, &s[i], &j->rec[s[i].id], v, k);
		else
			out->unmatched++;
	}
	struct ig_bench_dist *dst[D_N] = {&out->queue, &out->gw_ttft, &out->ttft_delta,
					  &out->gw_e2e, &out->e2e_delta};
	for (size_t d = 0; d < D_N; d++)
		ig_bench_dist_of(v[d], k[d], dst[d]);
	free(all);
	return 0;
}
