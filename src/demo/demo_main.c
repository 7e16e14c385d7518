/* `infergate demo` and `infergate run`: an orchestrator of child
 * processes of this same binary. Model-server Deployments become
 * simulators on loopback addresses, registered as Pods in a temporary
 * manifest; the gateway serves the directory's Gateways; `demo` sends the
 * seed request and prints the answer, `run` serves until Ctrl-C. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/flags.h"
#include "demo/certs.h"
#include "demo/child.h"
#include "demo/demo.h"
#include "demo/fetch.h"
#include "demo/plan.h"
#include "demo/pretty.h"
#include "json/json.h"

#define DEFAULT_DIR "examples/kgateway"
#define MAX_FILES 32
#define START_TIMEOUT_MS 15000
#define REQUEST_TIMEOUT_MS 30000
#define TAIL_LINES 20

struct opts {
	bool run; /* `run` rather than `demo` */
	const char *prog;
	const char *files[MAX_FILES];
	size_t nfiles;
	const char *bind;
	const char *admin;
	int replicas;
	bool keep_logs;
	uint32_t sim_base; /* host order; the first sim gets sim_base + 1 */
};

struct session {
	struct opts o;
	struct ig_config *cfg;
	struct ig_demo_plan plan;
	char dir[64]; /* the temporary directory, "" when not made */
	char exe[PATH_MAX];
	struct ig_demo_child *sims;
	struct ig_demo_child gw;
	char admin_ip[INET_ADDRSTRLEN];
	int admin_port;
	char probe_ip[INET_ADDRSTRLEN]; /* where listeners are reached */
	char secrets[PATH_MAX];		/* Secrets made for HTTPS listeners, "" if none */
	char ca_path[PATH_MAX];		/* their certificates, for clients */
	struct ig_buf ca;
	/* The manifests' warnings, printed once the Secrets made for them
	 * are known (make_secrets): not those the made Secrets answer. */
	struct ig_diags diags;
};

/* Set by SIGINT/SIGTERM; every wait loop looks at it. A signal handler
 * can only talk to the program through such a flag. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* Handlers without SA_RESTART, so that a blocked poll() returns EINTR and
 * the wait loops notice the flag at once. */
static void install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};
	struct sigaction ign = {.sa_handler = SIG_IGN};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGPIPE, &ign, NULL);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- options ------------------------------------------------------------ */

static const char run_usage[] =
    "usage: infergate run -f DIR [--bind ADDR] [--replicas N] [--admin ADDR]\n\n"
    "Runs a directory of manifests on this machine: every Deployment an\n"
    "InferencePool selects becomes simulators on loopback addresses, the\n"
    "Gateways are served by the gateway. Serves until Ctrl-C.\n\n";

static const char demo_usage[] =
    "usage: infergate demo [-f DIR] [--bind ADDR] [--replicas N] [--keep-logs]\n\n"
    "Runs the seed scenario (default -f " DEFAULT_DIR ") on this machine,\n"
    "sends the seed request, prints the answer and stops everything.\n\n";

static int parse_ipv4(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

/* "IPv4:PORT" with a real port: the admin address is probed, so port 0
 * ("any") cannot be used. */
static int parse_hostport(const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[INET_ADDRSTRLEN], *end;
	uint32_t a;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	port = strtol(colon + 1, &end, 10);
	if (parse_ipv4(host, &a) || colon[1] == '\0' || *end || port < 1 || port > 65535)
		return -1;
	return 0;
}

static int add_file(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct opts *o = f->dst;

	if (!*v)
		return IG_DECLINED;
	if (o->nfiles == MAX_FILES)
		return ig_flags_error(fl, "at most %d -f options", MAX_FILES);
	o->files[o->nfiles++] = v;
	return IG_OK;
}

static int set_bind(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	uint32_t a;

	if (parse_ipv4(v, &a))
		return ig_flags_invalid(fl, v, "an IPv4 address");
	*(const char **)f->dst = v;
	return IG_OK;
}

static int set_sim_base(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	uint32_t a;

	if (parse_ipv4(v, &a) || (a >> 24) != 127)
		return ig_flags_invalid(fl, v, "an address in 127.0.0.0/8");
	*(uint32_t *)f->dst = a;
	return IG_OK;
}

static int set_admin(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	if (parse_hostport(v))
		return ig_flags_invalid(fl, v, "IPv4:PORT with a port from 1 to 65535");
	*(const char **)f->dst = v;
	return IG_OK;
}

/* Returns -1 to go on, else the exit code (0 after --help). */
static int parse_opts(struct opts *o, int argc, char **argv)
{
	/* --admin is run's, --keep-logs demo's: the two share one table. */
	const struct ig_flag last =
	    o->run
		? (struct ig_flag)IG_FLAG_FN("admin", 0, set_admin, &o->admin, "HOST:PORT",
					     "the gateway's admin listener (default: a free port)")
		: (struct ig_flag)IG_FLAG_BOOL("keep-logs", 0, &o->keep_logs,
					       "keep the children's logs and print where they are");
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("options:"),
	    IG_FLAG_FN("filename", 'f', add_file, o, "PATH",
		       "manifests: a file or directory (repeatable)"),
	    IG_FLAG_FN("bind", 0, set_bind, &o->bind, "ADDR",
		       "address the Gateway listeners bind (default 127.0.0.1)"),
	    IG_FLAG_UINT("replicas", 0, &o->replicas, 1, 250, "N",
			 "simulators per Deployment (default: its replicas)"),
	    /* Where the simulators' addresses start; for tests, so unlisted. */
	    IG_FLAG_FN("sim-base", 0, set_sim_base, &o->sim_base, "ADDR", NULL),
	    last,
	    IG_FLAG_END,
	};
	struct ig_flags fl = {
	    .prog = o->prog, .usage = o->run ? run_usage : demo_usage, .table = table};
	int rc = ig_flags_parse(&fl, argc, argv);

	if (rc == IG_OK && o->run && !o->nfiles)
		rc = ig_flags_error(&fl, "-f DIR is required");
	if (rc != IG_OK)
		return ig_flags_report(&fl, rc);
	if (!o->nfiles)
		o->files[o->nfiles++] = DEFAULT_DIR;
	if (!o->bind)
		o->bind = "127.0.0.1";
	return -1;
}

/* ---- setup ------------------------------------------------------------- */

static int load_config(struct session *s)
{
	struct ig_diags diags = {0};
	struct stat st;
	int rc;

	for (size_t i = 0; i < s->o.nfiles; i++) {
		if (stat(s->o.files[i], &st) == 0)
			continue;
		if (!strcmp(s->o.files[i], DEFAULT_DIR))
			fprintf(stderr,
				"%s: %s not found: run from the repository root or pass -f DIR\n",
				s->o.prog, DEFAULT_DIR);
		else
			fprintf(stderr, "%s: %s: %s\n", s->o.prog, s->o.files[i], strerror(errno));
		return -1;
	}
	rc = ig_config_load(s->o.files, s->o.nfiles, &s->cfg, &diags);
	if (rc) {
		ig_diags_print(&diags, stderr);
		ig_diags_free(&diags);
		fprintf(stderr, "%s: the manifests have errors\n", s->o.prog);
		return -1;
	}
	s->diags = diags; /* warnings: print_warnings */
	return 0;
}

/* The manifests' warnings, once: without those the Secrets made for
 * HTTPS listeners answer (the manifests say a listener's Secret is missing
 * and that the listener cannot be served, which the demo has just made
 * right). Decided from the configuration: the made keys are not parsed
 * again, which would leave copies of them in freed memory. */
static void print_warnings(struct session *s, bool made)
{
	for (size_t i = 0; i < s->diags.n; i++) {
		struct ig_diags one = {.items = &s->diags.items[i], .n = 1};

		if (!made || !ig_demo_secret_answers(s->cfg, one.items))
			ig_diags_print(&one, stderr);
	}
	ig_diags_free(&s->diags);
}

/* True when something already holds ip:port, so a sim could not bind it. */
static bool addr_taken(const char *ip, int port, void *ud)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd, rc;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return true;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc != 0;
}

static int free_port(const char *ip)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int plan_session(struct session *s)
{
	char err[256];

	if (ig_demo_plan_build(s->cfg, s->o.replicas, &s->plan, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", s->o.prog, err);
		return -1;
	}
	if (!s->plan.nsims)
		fprintf(stderr,
			"%s: warning: no Deployment is selected by an InferencePool; "
			"starting no simulators\n",
			s->o.prog);
	if (ig_demo_assign_addrs(&s->plan, s->o.sim_base, addr_taken, NULL)) {
		fprintf(stderr, "%s: ran out of loopback addresses for the simulators\n",
			s->o.prog);
		return -1;
	}
	s->sims = calloc(s->plan.nsims ? s->plan.nsims : 1, sizeof(*s->sims));
	if (!s->sims)
		return -1;
	return 0;
}

static int make_dir(struct session *s)
{
	ssize_t n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);

	s->exe[n > 0 ? n : 0] = '\0';
	snprintf(s->dir, sizeof(s->dir), "/tmp/infergate-%s-XXXXXX", s->o.run ? "run" : "demo");
	if (!mkdtemp(s->dir)) {
		fprintf(stderr, "%s: mkdtemp: %s\n", s->o.prog, strerror(errno));
		s->dir[0] = '\0';
		return -1;
	}
	return 0;
}

static int write_file(const char *path, const struct ig_buf *b)
{
	FILE *f = fopen(path, "w");
	int rc = -1;

	if (f) {
		rc = fwrite(b->ptr, 1, b->len, f) == b->len ? 0 : -1;
		rc |= fclose(f);
	}
	return rc;
}

/* HTTPS listeners whose certificate Secret is not in the manifests get a
 * self-signed one (demo/certs.h), written next to the logs. */
static int make_secrets(struct session *s)
{
	struct ig_buf yaml = {0};
	char err[256];
	int n = ig_demo_tls_secrets(s->cfg, s->probe_ip, &yaml, &s->ca, err, sizeof(err));

	if (n > 0)
		snprintf(s->secrets, sizeof(s->secrets), "%s/tls-secrets.yaml", s->dir);
	print_warnings(s, n > 0);
	if (n < 0)
		fprintf(stderr, "%s: %s\n", s->o.prog, err);
	if (n > 0) {
		snprintf(s->ca_path, sizeof(s->ca_path), "%s/ca.crt", s->dir);
		if (write_file(s->secrets, &yaml) || write_file(s->ca_path, &s->ca)) {
			fprintf(stderr, "%s: cannot write %s\n", s->o.prog, s->secrets);
			n = -1;
		} else {
			printf("made %d self-signed certificate%s for HTTPS listeners: %s\n", n,
			       n == 1 ? "" : "s", s->ca_path);
		}
	}
	if (yaml.ptr)
		memset(yaml.ptr, 0, yaml.cap); /* it holds private keys */
	ig_buf_free(&yaml);
	return n < 0 ? -1 : 0;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* ---- simulators ---------------------------------------------------------- */

static int start_sim(struct session *s, size_t i)
{
	const struct ig_demo_sim *sim = &s->plan.sims[i];
	struct ig_demo_child *c = &s->sims[i];
	size_t nargs = sim->ctr->nargs, k = 0;
	char **argv = calloc(nargs + 8, sizeof(*argv));
	char port[16];
	int rc;

	if (!argv)
		return -1;
	snprintf(port, sizeof(port), "%d", sim->port);
	snprintf(c->name, sizeof(c->name), "sim %s", sim->name);
	snprintf(c->log, sizeof(c->log), "%s/sim-%s.log", s->dir, sim->name);
	argv[k++] = s->exe;
	argv[k++] = "sim";
	/* The sim takes the last of a repeated flag, so ours come after the
	 * Deployment's own --port. */
	for (size_t j = 0; j < nargs; j++)
		argv[k++] = sim->ctr->args[j];
	argv[k++] = "--host";
	argv[k++] = (char *)sim->ip;
	argv[k++] = "--port";
	argv[k++] = port;
	rc = ig_demo_child_start(c, argv);
	free(argv);
	if (rc)
		fprintf(stderr, "%s: starting %s: %s\n", s->o.prog, c->name, strerror(-rc));
	return rc ? -1 : 0;
}

/* Polls GET path on ip:port until it answers `want` (0: any status),
 * the child exits, the deadline passes or we are told to stop. */
static int wait_http(struct session *s, struct ig_demo_child *c, const char *ip, int port,
		     const char *path, int want, uint64_t deadline)
{
	char err[256] = "";

	while (!stop_signal) {
		struct ig_demo_response res = {0};
		int rc = ig_demo_http_get(ip, port, path, 1000, &res, err, sizeof(err));
		int status = res.status;
		ig_demo_response_free(&res);
		if (rc == 0 && (!want || status == want))
			return 0;
		if (rc == 0)
			snprintf(err, sizeof(err), "GET %s answered %d", path, status);
		if (ig_demo_child_gone(c)) {
			fprintf(stderr, "%s: %s exited with code %d while starting\n", s->o.prog,
				c->name, ig_demo_child_code(c));
			return -1;
		}
		if (ig_now_ms() >= deadline) {
			fprintf(stderr, "%s: %s did not answer GET http://%s:%d%s in %d s (%s)\n",
				s->o.prog, c->name, ip, port, path, START_TIMEOUT_MS / 1000, err);
			return -1;
		}
		sleep_ms(50);
	}
	return -1;
}

static void print_sim(const struct ig_demo_sim *sim)
{
	const char *model = ig_demo_arg_value(sim->ctr->args, sim->ctr->nargs, "--model");
	struct ig_buf names = {0};

	ig_demo_adapter_names(sim->ctr->args, sim->ctr->nargs, &names);
	printf("sim %s: %s:%d (%s%s%.*s)\n", sim->name, sim->ip, sim->port,
	       model ? model : "no --model", names.len ? ", adapters " : "", (int)names.len,
	       names.ptr ? names.ptr : "");
	ig_buf_free(&names);
}

static int start_sims(struct session *s)
{
	uint64_t deadline;

	for (size_t i = 0; i < s->plan.nsims; i++)
		if (start_sim(s, i))
			return -1;
	deadline = ig_now_ms() + START_TIMEOUT_MS;
	for (size_t i = 0; i < s->plan.nsims; i++) {
		const struct ig_demo_sim *sim = &s->plan.sims[i];
		if (wait_http(s, &s->sims[i], sim->ip, sim->port, "/health", 0, deadline)) {
			/* Interrupted on purpose is not the sim's fault. */
			if (!stop_signal)
				ig_demo_child_tail(&s->sims[i], TAIL_LINES, stderr);
			return -1;
		}
		print_sim(sim);
	}
	return 0;
}

/* ---- gateway ------------------------------------------------------------- */

static int write_pods(struct session *s, char *path, size_t len)
{
	struct ig_buf yaml = {0};
	FILE *f;
	int rc = -1;

	snprintf(path, len, "%s/pods.yaml", s->dir);
	if (ig_demo_pods_yaml(&s->plan, &yaml) == 0 && (f = fopen(path, "w"))) {
		rc = fwrite(yaml.ptr, 1, yaml.len, f) == yaml.len ? 0 : -1;
		rc |= fclose(f);
	}
	ig_buf_free(&yaml);
	if (rc)
		fprintf(stderr, "%s: cannot write %s\n", s->o.prog, path);
	return rc ? -1 : 0;
}

static int choose_admin(struct session *s, char *admin, size_t len)
{
	const char *colon;

	if (!s->o.admin) {
		snprintf(s->admin_ip, sizeof(s->admin_ip), "127.0.0.1");
		s->admin_port = free_port(s->admin_ip);
		snprintf(admin, len, "127.0.0.1:%d", s->admin_port);
		return s->admin_port > 0 ? 0 : -1;
	}
	colon = strrchr(s->o.admin, ':');
	snprintf(s->admin_ip, sizeof(s->admin_ip), "%.*s", (int)(colon - s->o.admin), s->o.admin);
	s->admin_port = atoi(colon + 1);
	/* A wildcard admin address is reached through loopback. */
	if (!strcmp(s->admin_ip, "0.0.0.0") || !s->admin_ip[0])
		snprintf(s->admin_ip, sizeof(s->admin_ip), "127.0.0.1");
	snprintf(admin, len, "%s", s->o.admin);
	return 0;
}

static int start_gateway(struct session *s)
{
	char pods[PATH_MAX], admin[64];
	char *argv[2 * MAX_FILES + 16];
	size_t k = 0;
	int rc;

	if (write_pods(s, pods, sizeof(pods)) || choose_admin(s, admin, sizeof(admin)))
		return -1;
	argv[k++] = s->exe;
	argv[k++] = "gateway";
	for (size_t i = 0; i < s->o.nfiles; i++) {
		argv[k++] = "-f";
		argv[k++] = (char *)s->o.files[i];
	}
	argv[k++] = "-f";
	argv[k++] = pods;
	if (s->secrets[0]) {
		argv[k++] = "-f";
		argv[k++] = s->secrets;
	}
	argv[k++] = "--bind";
	argv[k++] = (char *)s->o.bind;
	argv[k++] = "--admin";
	argv[k++] = admin;
	argv[k++] = "--workers";
	argv[k++] = "2";
	argv[k] = NULL;
	snprintf(s->gw.name, sizeof(s->gw.name), "gateway");
	snprintf(s->gw.log, sizeof(s->gw.log), "%s/gateway.log", s->dir);
	rc = ig_demo_child_start(&s->gw, argv);
	if (rc)
		fprintf(stderr, "%s: starting the gateway: %s\n", s->o.prog, strerror(-rc));
	return rc ? -1 : 0;
}

static int wait_port(struct session *s, int port, uint64_t deadline)
{
	while (!ig_demo_tcp_probe(s->probe_ip, port, 300)) {
		if (stop_signal)
			return -1;
		if (ig_demo_child_gone(&s->gw) || ig_now_ms() >= deadline) {
			fprintf(stderr, "%s: the gateway does not accept connections on %s:%d\n",
				s->o.prog, s->probe_ip, port);
			return -1;
		}
		sleep_ms(50);
	}
	return 0;
}

static int wait_listeners(struct session *s, uint64_t deadline)
{
	for (size_t i = 0; i < s->cfg->ngateways; i++) {
		const struct ig_gateway *g = &s->cfg->gateways[i];
		for (size_t j = 0; j < g->nlisteners; j++)
			if ((!strcmp(g->listeners[j].protocol, "HTTP") ||
			     !strcmp(g->listeners[j].protocol, "HTTPS")) &&
			    wait_port(s, g->listeners[j].port, deadline))
				return -1;
	}
	return 0;
}

static void print_gateways(const struct session *s)
{
	for (size_t i = 0; i < s->cfg->ngateways; i++) {
		const struct ig_gateway *g = &s->cfg->gateways[i];
		printf("gateway %s:", g->meta.name);
		for (size_t j = 0; j < g->nlisteners; j++)
			printf("%s listener %s on %s:%d%s", j ? "," : "", g->listeners[j].name,
			       s->o.bind, g->listeners[j].port,
			       strcmp(g->listeners[j].protocol, "HTTPS") ? "" : " (HTTPS)");
		printf("\n");
	}
}

static int run_gateway(struct session *s)
{
	uint64_t deadline;

	if (start_gateway(s))
		return -1;
	deadline = ig_now_ms() + START_TIMEOUT_MS;
	if (wait_http(s, &s->gw, s->admin_ip, s->admin_port, "/healthz", 200, deadline) ||
	    wait_listeners(s, deadline)) {
		if (!stop_signal)
			ig_demo_child_tail(&s->gw, TAIL_LINES, stderr);
		return -1;
	}
	print_gateways(s);
	return 0;
}

/* ---- the seed request ------------------------------------------------------ */

static void print_json_field(struct ig_json_value v, const char *what)
{
	struct ig_str text = v.type ? v.raw : IG_STR("none");

	printf("%s %.*s", what, IG_STR_FMT(text));
}

/* One line with what a reader checks first: the target model chosen, the
 * tokens generated and why generation stopped. */
static void print_check(const struct ig_demo_response *res)
{
	struct ig_json_value root, v = {0}, choices, c0 = {0}, usage;
	size_t pos = 0;

	printf("check: status %d", res->status);
	if (ig_json_parse(res->body.ptr, res->body.len, &root) == 0) {
		ig_json_get(root, "model", &v);
		print_json_field(v, ", model");
		v = (struct ig_json_value){0};
		if (ig_json_get(root, "usage", &usage) == 0)
			ig_json_get(usage, "completion_tokens", &v);
		print_json_field(v, ", completion_tokens");
		v = (struct ig_json_value){0};
		if (ig_json_get(root, "choices", &choices) == 0 &&
		    ig_json_array_next(choices, &pos, &c0) == 1)
			ig_json_get(c0, "finish_reason", &v);
		print_json_field(v, ", finish_reason");
	}
	printf(": %s\n", res->status == 200 ? "ok" : "FAILED");
}

static void print_response(const struct ig_demo_response *res)
{
	struct ig_json_value root;
	struct ig_buf out = {0};

	printf("HTTP/1.%d %d %s\n", res->minor_version, res->status, res->reason);
	if (ig_json_parse(res->body.ptr, res->body.len, &root) == 0 &&
	    ig_demo_json_pretty(root, &out) == 0)
		printf("%.*s\n", (int)out.len, out.ptr);
	else if (res->body.len)
		printf("%.*s\n", (int)res->body.len, res->body.ptr);
	ig_buf_free(&out);
	print_check(res);
}

static bool is_https(const struct ig_listener *l)
{
	return l->protocol && !strcmp(l->protocol, "HTTPS");
}

/* The seed request's body for `model`, sent to listener l (over TLS when
 * it is an HTTPS listener), printed with its curl line and checked. */
static int send_one(struct session *s, const struct ig_listener *l, const char *model)
{
	struct ig_buf body = {0}, curl = {0}, req = {0};
	struct ig_demo_response res = {0};
	struct ig_demo_tls tls = {s->ca.ptr, s->ca.len, NULL};
	bool https = is_https(l);
	char err[256];
	int rc = -1;

	if (https && !s->ca.len) {
		/* The Secret came with the manifests: we cannot know who
		 * signed it, so the demo does not go there. */
		printf("\n(listener %s: HTTPS with the manifests' own certificate; not tried)\n",
		       l->name);
		return 0;
	}
	if (ig_demo_seed_body(model, &body) ||
	    ig_demo_curl_line(s->probe_ip, l->port, https ? s->ca_path : NULL, ig_buf_cstr(&body),
			      &curl) ||
	    ig_buf_printf(&req,
			  "POST /v1/completions HTTP/1.1\r\nHost: %s:%d\r\n"
			  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\n\r\n%.*s",
			  s->probe_ip, l->port, body.len, (int)body.len, body.ptr))
		goto out;
	printf("\n%.*s\n\n", (int)curl.len, curl.ptr);
	fflush(stdout);
	if (ig_demo_https(s->probe_ip, l->port, https ? &tls : NULL, req.ptr, req.len, "POST",
			  REQUEST_TIMEOUT_MS, &res, err, sizeof(err))) {
		fprintf(stderr, "%s: the request for %s failed: %s\n", s->o.prog, model, err);
		ig_demo_child_tail(&s->gw, TAIL_LINES, stderr);
		goto out;
	}
	print_response(&res);
	rc = res.status == 200 ? 0 : -1;
	if (rc)
		ig_demo_child_tail(&s->gw, TAIL_LINES, stderr);
out:
	ig_demo_response_free(&res);
	ig_buf_free(&body);
	ig_buf_free(&curl);
	ig_buf_free(&req);
	return rc;
}

#define MAX_TOUR 8

/* The seed request; then, where the manifests have them, the same request
 * over the HTTPS listener and one request for every other model that
 * body-based routing sends to a pool of its own. */
static int send_seed(struct session *s)
{
	const struct ig_gateway *g;
	const struct ig_listener *l, *tl;
	const char *seed = ig_demo_seed_model(s->cfg), *tour[MAX_TOUR];
	size_t n = ig_demo_tour_models(s->cfg, seed, tour, MAX_TOUR);
	int rc;

	if (ig_demo_seed_listener(s->cfg, &g, &l)) {
		fprintf(stderr, "%s: no Gateway listener has an HTTPRoute attached\n", s->o.prog);
		return -1;
	}
	rc = send_one(s, l, seed);
	if (rc == 0 && !is_https(l) && ig_demo_https_listener(s->cfg, &g, &tl) == 0)
		rc = send_one(s, tl, seed);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = send_one(s, l, tour[i]);
	return rc;
}

/* ---- run: serve until told to stop ---------------------------------------- */

static struct ig_demo_child *dead_child(struct session *s)
{
	if (ig_demo_child_gone(&s->gw))
		return &s->gw;
	for (size_t i = 0; i < s->plan.nsims; i++)
		if (ig_demo_child_gone(&s->sims[i]))
			return &s->sims[i];
	return NULL;
}

static void print_try(struct session *s, const struct ig_listener *l, const char *model)
{
	struct ig_buf body = {0}, curl = {0};

	if (ig_demo_seed_body(model, &body) == 0 &&
	    ig_demo_curl_line(s->probe_ip, l->port,
			      is_https(l) ? (s->ca.len ? s->ca_path : "CA.crt") : NULL,
			      ig_buf_cstr(&body), &curl) == 0)
		printf("  %.*s\n", (int)curl.len, curl.ptr);
	ig_buf_free(&body);
	ig_buf_free(&curl);
}

static int serve(struct session *s)
{
	struct ig_demo_child *dead;
	const struct ig_gateway *g;
	const struct ig_listener *l, *tl;
	const char *seed = ig_demo_seed_model(s->cfg), *tour[MAX_TOUR];
	size_t n = ig_demo_tour_models(s->cfg, seed, tour, MAX_TOUR);

	if (ig_demo_seed_listener(s->cfg, &g, &l) == 0) {
		printf("\ntry:\n");
		print_try(s, l, seed);
		if (!is_https(l) && ig_demo_https_listener(s->cfg, &g, &tl) == 0)
			print_try(s, tl, seed);
		for (size_t i = 0; i < n; i++)
			print_try(s, l, tour[i]);
		printf("\n");
	}
	printf("logs in %s\nCtrl-C to stop\n", s->dir);
	fflush(stdout);
	while (!stop_signal) {
		if ((dead = dead_child(s))) {
			fprintf(stderr, "%s: %s exited unexpectedly with code %d; stopping\n",
				s->o.prog, dead->name, ig_demo_child_code(dead));
			ig_demo_child_tail(dead, TAIL_LINES, stderr);
			return -1;
		}
		sleep_ms(100);
	}
	printf("stopping\n");
	return 0;
}

/* ---- teardown ---------------------------------------------------------------- */

/* The gateway first, so that it drains requests while its upstreams are
 * still there; then the sims. A child that does not exit cleanly makes
 * the whole run a failure. */
static int stop_all(struct session *s)
{
	int rc = 0, code;

	if (s->gw.pid > 0) {
		bool was_gone = s->gw.reaped;
		code = ig_demo_child_stop(&s->gw, 20000);
		if (code != 0 && !was_gone) {
			fprintf(stderr, "%s: the gateway exited with code %d\n", s->o.prog, code);
			ig_demo_child_tail(&s->gw, TAIL_LINES, stderr);
			rc = -1;
		}
	}
	for (size_t i = 0; s->sims && i < s->plan.nsims; i++) {
		if (s->sims[i].pid <= 0)
			continue;
		bool was_gone = s->sims[i].reaped;
		code = ig_demo_child_stop(&s->sims[i], 5000);
		if (code != 0 && !was_gone) {
			fprintf(stderr, "%s: %s exited with code %d\n", s->o.prog, s->sims[i].name,
				code);
			ig_demo_child_tail(&s->sims[i], TAIL_LINES, stderr);
			rc = -1;
		}
	}
	return rc;
}

static void end_session(struct session *s)
{
	if (s->dir[0] && s->o.keep_logs)
		printf("logs kept in %s\n", s->dir);
	else if (s->dir[0])
		remove_dir(s->dir);
	free(s->sims);
	ig_buf_free(&s->ca);
	ig_demo_plan_free(&s->plan);
	ig_config_free(s->cfg);
}

static int session_main(struct opts *o)
{
	struct session s = {.o = *o};
	int rc = -1;

	/* A wildcard bind is reached through loopback. */
	snprintf(s.probe_ip, sizeof(s.probe_ip), "%s",
		 strcmp(o->bind, "0.0.0.0") ? o->bind : "127.0.0.1");
	if (load_config(&s))
		goto out;
	if (plan_session(&s) || make_dir(&s)) {
		print_warnings(&s, false);
		goto out;
	}
	if (make_secrets(&s))
		goto out;
	install_signals();
	if (start_sims(&s) || run_gateway(&s))
		goto out;
	rc = o->run ? serve(&s) : send_seed(&s);
out:
	if (stop_signal && !o->run)
		fprintf(stderr, "%s: interrupted\n", o->prog);
	if (stop_all(&s))
		rc = -1;
	fflush(stdout);
	end_session(&s);
	return rc ? 1 : 0;
}

static int common_main(int argc, char **argv, bool run)
{
	struct opts o = {.run = run, .prog = run ? "infergate run" : "infergate demo"};
	int rc;

	parse_ipv4("127.0.1.0", &o.sim_base);
	rc = parse_opts(&o, argc, argv);
	if (rc >= 0)
		return rc;
	return session_main(&o);
}

int ig_demo_main(int argc, char **argv)
{
	return common_main(argc, argv, false);
}

int ig_run_main(int argc, char **argv)
{
	return common_main(argc, argv, true);
}
