/* `infergate gateway`: parses flags, loads the manifests, starts the
 * workers, then runs the control loop on the main thread: metrics
 * scraping, the admin listener, reloads (SIGHUP or a changed file) and the
 * graceful drain on SIGTERM. */
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/arena.h"
#include "gateway/admin.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/runtime.h"
#include "gateway/sessions.h"
#include "gateway/snapshot.h"
#include "gateway/worker.h"

static const char usage_text[] =
    "usage: infergate gateway -f PATH [-f PATH...] [options]\n"
    "\n"
    "Serves the Gateways, HTTPRoutes and InferencePools in the manifests.\n"
    "\n"
    "  -f, --filename PATH        manifest file or directory (repeatable)\n"
    "      --bind ADDR            address the listeners bind (default 0.0.0.0)\n"
    "      --admin HOST:PORT      admin listener: /metrics, /healthz, /pools\n"
    "      --workers N            worker threads (default: one per CPU)\n"
    "      --scrape-interval MS   endpoint /metrics scrape period (default 50)\n"
    "      --drain-timeout MS     grace period for requests on SIGTERM (default 30000)\n"
    "      --max-header-bytes N   request head limit, else 431 (default 65536)\n"
    "      --max-body-bytes N     request body limit, else 413 (default 16777216)\n"
    "      --header-timeout MS    time allowed for a request head, else 408 (default 30000)\n"
    "      --body-timeout MS      silence allowed inside a body, else 408 (default 60000)\n"
    "      --idle-timeout MS      idle keep-alive connections close after (default 75000)\n"
    "      --max-attempts N       endpoints tried when connecting fails (default 3)\n"
    "      --upstream-connect-timeout MS\n"
    "                             connecting to a model server; then the next endpoint\n"
    "                             (default 5000)\n"
    "      --upstream-read-timeout MS\n"
    "                             silence of a model server before and during its answer:\n"
    "                             504 before the first byte, a cut stream after (default\n"
    "                             600000: long prompts under load take minutes)\n"
    "      --upstream-idle-timeout MS\n"
    "                             idle kept-alive upstream connections close after (default\n"
    "                             4000, below uvicorn's 5 s)\n"
    "      --upstream-max-idle N  idle upstream connections kept per endpoint and worker\n"
    "                             (default 32)\n"
    "      --client-send-timeout MS\n"
    "                             a client that takes none of its pending response for this\n"
    "                             long is closed, with its upstream request (default 60000)\n"
    "      --picker-config FILE   EndpointPickerConfig (default: an EndpointPickerConfig among\n"
    "                             the manifests, else GIE's default profile)\n"
    "      --session-header NAME  session affinity header (default x-session-id)\n"
    "      --session-slack N      extra queued requests a session's endpoint may have over\n"
    "                             the pool's best before the session moves (default 4)\n"
    "      --flow-control         queue requests while the pool is saturated (else refuse\n"
    "                             sheddable ones); also featureGates: [flowControl]\n"
    "      --queue-timeout MS     longest wait in that queue, then 503 (default 30000)\n"
    "      --queue-capacity N     requests the queue holds per worker, then 429 (default 1000)\n"
    "      --unhealthy-after N    failed scrapes before an endpoint leaves rotation (default 3)\n"
    "      --watch-interval MS    how often the files are checked for changes (default 1000)\n"
    "      --log-level LEVEL      error, warn, info or debug (default info)\n"
    "  -h, --help                 this text\n"
    "\n"
    "SIGHUP or a change to a file reloads; SIGTERM drains and exits.\n";

/* ---- flags ---- */

static int parse_u64(const char *flag, const char *v, uint64_t min, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end || end == v || x < min || v[0] == '-') {
		fprintf(stderr, "infergate gateway: %s: invalid value '%s'\n", flag, v);
		return -1;
	}
	*out = x;
	return 0;
}

static void option_defaults(struct ig_gw_options *o)
{
	o->bind = "0.0.0.0";
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o->workers = ncpu > 0 ? (uint64_t)ncpu : 1;
	o->scrape_interval_ms = 50;
	o->drain_timeout_ms = 30000;
	o->max_attempts = 3;
	o->upstream_read_timeout_ms = 600000;
	o->upstream.connect_timeout_ms = 5000;
	o->upstream.idle_timeout_ms = 4000;
	o->upstream.max_idle = 32;
	o->session_header = "x-session-id";
	o->session_slack = 4;
	o->queue_timeout_ms = 30000;
	o->queue_capacity = 1000;
	o->scrape_failures_out = 3;
	o->watch_interval_ms = 1000;
	ig_http_server_config_defaults(&o->http);
}

struct uflag {
	const char *name;
	uint64_t min;
	size_t off; /* into struct ig_gw_options, of a uint64_t */
	bool is_size;
};

#define OPT(f) offsetof(struct ig_gw_options, f)
static const struct uflag uflags[] = {
    {"--workers", 1, OPT(workers), false},
    {"--scrape-interval", 1, OPT(scrape_interval_ms), false},
    {"--drain-timeout", 1, OPT(drain_timeout_ms), false},
    {"--max-header-bytes", 1, OPT(http.max_header_bytes), true},
    {"--max-body-bytes", 1, OPT(http.max_body_bytes), true},
    {"--header-timeout", 1, OPT(http.header_timeout_ms), false},
    {"--body-timeout", 1, OPT(http.body_timeout_ms), false},
    {"--idle-timeout", 1, OPT(http.keepalive_timeout_ms), false},
    {"--client-send-timeout", 1, OPT(http.send_timeout_ms), false},
    {"--max-attempts", 1, OPT(max_attempts), false},
    {"--upstream-connect-timeout", 1, OPT(upstream.connect_timeout_ms), false},
    {"--upstream-read-timeout", 1, OPT(upstream_read_timeout_ms), false},
    {"--upstream-idle-timeout", 0, OPT(upstream.idle_timeout_ms), false},
    {"--upstream-max-idle", 0, OPT(upstream.max_idle), true},
    {"--watch-interval", 1, OPT(watch_interval_ms), false},
    {"--queue-timeout", 1, OPT(queue_timeout_ms), false},
    {"--queue-capacity", 1, OPT(queue_capacity), false},
    {"--unhealthy-after", 1, OPT(scrape_failures_out), false},
};
#undef OPT

static const char *const string_flags[] = {
    "-f",	   "--filename",      "--bind",		  "--admin",
    "--log-level", "--picker-config", "--session-header", "--session-slack"};

static int set_string(struct ig_gw_options *o, const char *a, const char *val)
{
	if (!strcmp(a, "-f") || !strcmp(a, "--filename")) {
		o->paths[o->npaths++] = val;
	} else if (!strcmp(a, "--bind")) {
		o->bind = val;
	} else if (!strcmp(a, "--admin")) {
		o->admin = val;
	} else if (!strcmp(a, "--picker-config")) {
		o->picker_config = val;
	} else if (!strcmp(a, "--session-header")) {
		o->session_header = val;
	} else if (!strcmp(a, "--session-slack")) {
		uint64_t u;
		if (parse_u64(a, val, 1, &u) < 0)
			return -1;
		o->session_slack = (double)u;
	} else if (!strcmp(a, "--log-level")) {
		int l = ig_log_parse_level(val);
		if (l < 0) {
			fprintf(stderr, "infergate gateway: --log-level: unknown level '%s'\n",
				val);
			return -1;
		}
		ig_log_level = (enum ig_log_level)l;
	}
	return 0;
}

static int parse_flags(int argc, char **argv, struct ig_gw_options *o)
{
	option_defaults(o);
	o->paths = calloc((size_t)argc + 1, sizeof *o->paths);
	if (!o->paths)
		return -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		char name[64];
		const char *eq = strchr(a, '=');
		if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof name) {
			memcpy(name, a, (size_t)(eq - a));
			name[eq - a] = '\0';
			val = eq + 1;
			a = name;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (!strcmp(a, "--flow-control")) {
			o->flow_control = true;
			continue;
		}
		const struct uflag *uf = NULL;
		for (size_t k = 0; k < sizeof uflags / sizeof uflags[0]; k++)
			if (!strcmp(a, uflags[k].name))
				uf = &uflags[k];
		bool known = uf != NULL;
		for (size_t k = 0; k < sizeof string_flags / sizeof string_flags[0]; k++)
			known |= !strcmp(a, string_flags[k]);
		if (!known) {
			fprintf(stderr, "infergate gateway: unknown flag '%s' (see --help)\n",
				argv[i]);
			return -1;
		}
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(stderr, "infergate gateway: %s needs a value\n", a);
				return -1;
			}
			val = argv[++i];
		}
		if (!uf) {
			if (set_string(o, a, val) < 0)
				return -1;
			continue;
		}
		uint64_t u;
		if (parse_u64(a, val, uf->min, &u) < 0)
			return -1;
		if (uf->is_size)
			*(size_t *)((char *)o + uf->off) = (size_t)u;
		else
			*(uint64_t *)((char *)o + uf->off) = u;
	}
	if (o->workers > 256)
		o->workers = 256;
	if (o->max_attempts > 8)
		o->max_attempts = 8;
	if (o->npaths == 0) {
		fprintf(stderr, "infergate gateway: no manifests: give -f PATH (see --help)\n");
		return -1;
	}
	return 0;
}

/* ---- configuration ---- */

/* Loads the manifests and the picker configuration into a snapshot, or
 * logs every error and returns NULL. */
static struct ig_snapshot *load(struct ig_gateway_rt *G, bool initial)
{
	struct ig_config *cfg = NULL;
	struct ig_picker_config *picker = NULL;
	uint64_t picker_hash = 0;
	struct ig_diags diags = {0};
	int rc = ig_config_load(G->opt.paths, G->opt.npaths, &cfg, &diags);
	if (rc == 0 &&
	    ig_gw_load_picker(cfg, G->opt.picker_config, &picker, &picker_hash, &diags) < 0)
		rc = -1;
	ig_diags_print(&diags, stderr);
	ig_diags_free(&diags);
	if (rc < 0) {
		ig_err("%s: configuration has errors; %s", initial ? "start" : "reload",
		       initial ? "not starting" : "keeping the previous one");
		ig_config_free(cfg);
		ig_picker_config_free(picker);
		return NULL;
	}
	struct ig_snapshot *s =
	    ig_snapshot_build(G->endpoints, cfg, picker, picker_hash, G->snap, ++G->generation);
	if (!s)
		ig_err("%s: out of memory", initial ? "start" : "reload");
	return s;
}

/* Every port must be ours before workers try; binding one socket here
 * turns "address in use" into a clear startup error. */
static int check_ports(struct ig_gateway_rt *G, const struct ig_snapshot *s)
{
	for (size_t i = 0; i < s->nports; i++) {
		bool have = G->snap && ig_snapshot_port(G->snap, s->ports[i].port);
		if (have)
			continue;
		int fd = ig_listen_tcp(G->opt.bind, s->ports[i].port, true, 1);
		if (fd < 0) {
			ig_err("cannot listen on %s:%d: %s", G->opt.bind, s->ports[i].port,
			       strerror(-fd));
			return -1;
		}
		close(fd);
	}
	return 0;
}

static void log_snapshot(struct ig_gateway_rt *G, const struct ig_snapshot *s)
{
	for (size_t i = 0; i < s->nports; i++)
		for (size_t l = 0; l < s->ports[i].nlisteners; l++) {
			const struct ig_listener_rt *li = &s->ports[i].listeners[l];
			ig_info("listener %s/%s %s on %s:%d: %zu route matches", li->gw->meta.name,
				li->listener->name, li->listener->protocol, G->opt.bind,
				s->ports[i].port, ig_routes_count(li->routes));
		}
	for (size_t p = 0; p < s->npools; p++)
		ig_info("pool %s/%s: %zu endpoints", s->pools[p].pool->meta.ns,
			s->pools[p].pool->meta.name, s->pools[p].neps);
}

static void publish(struct ig_gateway_rt *G, struct ig_snapshot *s)
{
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_set_snapshot(&G->workers[i], s);
	struct ig_snapshot *old = G->snap;
	G->snap = s;
	size_t n;
	struct ig_endpoint **eps = ig_snapshot_endpoints(s, &n);
	if (G->scraper && ig_scraper_set(G->scraper, eps, n) < 0)
		ig_err("scraper: out of memory; endpoints of the new configuration not scraped");
	free(eps);
	ig_snapshot_unref(old);
	log_snapshot(G, s);
}

static void reload(struct ig_gateway_rt *G, const char *why)
{
	ig_info("reloading configuration (%s)", why);
	struct ig_snapshot *s = load(G, false);
	if (!s)
		return;
	if (check_ports(G, s) < 0) {
		ig_err("reload refused; keeping the previous configuration");
		ig_snapshot_unref(s);
		return;
	}
	publish(G, s);
}

/* A cheap fingerprint of the files: names, sizes and modification times.
 * Polling it is simple and works for editors that replace files. */
static void fold(uint64_t *h, uint64_t v)
{
	*h = (*h ^ v) * 0x100000001b3u;
}

static void fingerprint(const char *path, uint64_t *h, int depth)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fold(h, 0xdead);
		return;
	}
	for (const char *c = path; *c; c++)
		fold(h, (unsigned char)*c);
	fold(h, (uint64_t)st.st_size);
	fold(h, (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec);
	if (!S_ISDIR(st.st_mode) || depth > 8)
		return;
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char sub[4096];
			snprintf(sub, sizeof sub, "%s/%s", path, names[i]->d_name);
			fingerprint(sub, h, depth + 1);
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static uint64_t signature(const struct ig_gateway_rt *G)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < G->opt.npaths; i++)
		fingerprint(G->opt.paths[i], &h, 0);
	if (G->opt.picker_config)
		fingerprint(G->opt.picker_config, &h, 0);
	return h;
}

static void on_watch(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *G = t->data;
	uint64_t sig = signature(G);
	if (sig != G->watch_signature) {
		G->watch_signature = sig;
		reload(G, "files changed");
	}
	ig_timer_start(loop, t, G->opt.watch_interval_ms, on_watch, G);
}

/* ---- shutdown ---- */

static void on_drain_poll(struct ig_loop *loop, struct ig_timer *t)
{
	struct ig_gateway_rt *G = t->data;
	if (atomic_load(&G->workers_done) >= G->nworkers || ig_now_ns() >= G->drain_deadline_ns) {
		if (atomic_load(&G->workers_done) < G->nworkers)
			ig_warn("drain: grace period over; closing the remaining requests");
		ig_loop_stop(loop);
		return;
	}
	ig_timer_start(loop, t, 20, on_drain_poll, G);
}

static void start_drain(struct ig_gateway_rt *G)
{
	if (atomic_exchange(&G->draining, true))
		return;
	ig_info("draining: listeners closed, waiting for requests in flight");
	ig_timer_stop(&G->ctl, &G->watch_timer);
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_drain(&G->workers[i]);
	G->drain_deadline_ns = ig_now_ns() + G->opt.drain_timeout_ms * 1000000u;
	ig_timer_start(&G->ctl, &G->drain_poll, 0, on_drain_poll, G);
}

static void on_signal(struct ig_loop *loop, struct ig_io *io, unsigned events)
{
	struct ig_gateway_rt *G = io->data;
	struct signalfd_siginfo si;
	while (read(io->fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP)
			reload(G, "SIGHUP");
		else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (G->draining) {
				ig_warn("second signal: stopping now");
				ig_loop_stop(loop);
			}
			start_drain(G);
		}
	}
}

/* ---- life ---- */

static int start(struct ig_gateway_rt *G)
{
	G->endpoints = ig_endpoints_new((size_t)G->opt.workers);
	G->sessions = ig_sessions_new();
	G->metrics = ig_gw_metrics_new();
	if (!G->endpoints || !G->sessions || !G->metrics) {
		ig_err("out of memory");
		return -1;
	}
	struct ig_snapshot *snap = load(G, true);
	if (!snap)
		return -1;
	if (snap->nports == 0)
		ig_warn("no HTTP listeners in the manifests: nothing to serve");
	if (check_ports(G, snap) < 0) {
		ig_snapshot_unref(snap);
		return -1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	/* Blocked before the workers start, so they inherit the mask and only
	 * the control loop sees these signals. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	G->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ig_loop_init(&G->ctl) < 0 || G->sigfd < 0) {
		ig_err("event loop: %s", strerror(errno));
		ig_snapshot_unref(snap);
		return -1;
	}
	struct ig_scraper_config sc = {.interval_ms = G->opt.scrape_interval_ms,
				       .timeout_ms = 5000,
				       .failures_out = (unsigned)G->opt.scrape_failures_out};
	G->scraper = ig_scraper_new(&G->ctl, &sc);
	G->nworkers = (int)G->opt.workers;
	G->workers = calloc((size_t)G->nworkers, sizeof *G->workers);
	if (!G->scraper || !G->workers) {
		ig_snapshot_unref(snap);
		return -1;
	}
	for (int i = 0; i < G->nworkers; i++) {
		if (ig_worker_init(&G->workers[i], G, i) < 0 ||
		    ig_worker_start(&G->workers[i]) < 0) {
			ig_err("cannot start worker %d", i);
			G->nworkers = i;
			ig_snapshot_unref(snap);
			return -1;
		}
	}
	publish(G, snap);
	ig_io_start(&G->ctl, &G->sig_io, G->sigfd, IG_EV_READ, on_signal, G);
	if (G->opt.admin && ig_admin_start(G, G->opt.admin) < 0)
		return -1;
	ig_scraper_start(G->scraper);
	G->watch_signature = signature(G);
	ig_timer_start(&G->ctl, &G->watch_timer, G->opt.watch_interval_ms, on_watch, G);
	ig_info("gateway: %d workers, scraping every %llu ms", G->nworkers,
		(unsigned long long)G->opt.scrape_interval_ms);
	return 0;
}

static void stop(struct ig_gateway_rt *G)
{
	for (int i = 0; i < G->nworkers; i++)
		ig_loop_stop(&G->workers[i].loop);
	for (int i = 0; i < G->nworkers; i++)
		pthread_join(G->workers[i].thread, NULL);
	ig_scraper_free(G->scraper);
	ig_admin_stop(G);
	for (int i = 0; i < G->nworkers; i++)
		ig_worker_free(&G->workers[i]);
	free(G->workers);
	ig_snapshot_unref(G->snap);
	if (G->sigfd >= 0) {
		ig_io_stop(&G->ctl, &G->sig_io);
		close(G->sigfd);
	}
	ig_timer_stop(&G->ctl, &G->watch_timer);
	ig_timer_stop(&G->ctl, &G->drain_poll);
	if (G->ctl.epfd > 0)
		ig_loop_free(&G->ctl);
	ig_sessions_free(G->sessions);
	ig_gw_metrics_free(G->metrics);
	ig_endpoints_free(G->endpoints);
	free(G->opt.paths);
	ig_arena_thread_cleanup();
}

int ig_gateway_main(int argc, char **argv)
{
	struct ig_gateway_rt *G = calloc(1, sizeof *G);
	if (!G)
		return 1;
	G->sigfd = -1;
	if (parse_flags(argc, argv, &G->opt) < 0) {
		free(G->opt.paths);
		free(G);
		return 2;
	}
	int rc = start(G);
	if (rc == 0) {
		ig_loop_run(&G->ctl);
		ig_info("gateway stopped");
	}
	stop(G);
	free(G);
	return rc == 0 ? 0 : 1;
}
