/* fork/exec of our own binary with the safety nets that keep a crashed or
 * killed orchestrator from leaving simulators and gateways behind. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo/child.h"

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void exec_child(int logfd, pid_t parent, char *const argv[])
{
	static const char msg[] = "infergate: cannot exec /proc/self/exe\n";
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int devnull;

	/* PDEATHSIG is armed only now; if the parent died before this line
	 * we have been reparented already and must not run. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(127);
	setpgid(0, 0);
	sigaction(SIGINT, &dfl, NULL);
	sigaction(SIGTERM, &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigaction(SIGCHLD, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0)
		dup2(devnull, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	execv("/proc/self/exe", argv);
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(127);
}

int ig_demo_child_start(struct ig_demo_child *c, char *const argv[])
{
	pid_t parent = getpid(), pid;
	int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	pid = fork();
	if (pid == 0)
		exec_child(fd, parent, argv);
	close(fd);
	if (pid < 0)
		return -errno;
	c->pid = pid;
	c->reaped = false;
	c->status = 0;
	return 0;
}

bool ig_demo_child_gone(struct ig_demo_child *c)
{
	pid_t r;

	if (c->pid <= 0 || c->reaped)
		return true;
	do
		r = waitpid(c->pid, &c->status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == c->pid || (r < 0 && errno == ECHILD))
		c->reaped = true;
	return c->reaped;
}

int ig_demo_child_code(const struct ig_demo_child *c)
{
	if (WIFEXITED(c->status))
		return WEXITSTATUS(c->status);
	if (WIFSIGNALED(c->status))
		return 128 + WTERMSIG(c->status);
	return -1;
}

static bool wait_gone(struct ig_demo_child *c, int timeout_ms)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (ig_demo_child_gone(c))
			return true;
		nanosleep(&ts, NULL);
	}
	return ig_demo_child_gone(c);
}

int ig_demo_child_stop(struct ig_demo_child *c, int timeout_ms)
{
	if (c->pid <= 0)
		return -1;
	if (!ig_demo_child_gone(c)) {
		kill(c->pid, SIGTERM);
		if (!wait_gone(c, timeout_ms)) {
			kill(c->pid, SIGKILL);
			wait_gone(c, 5000);
		}
	}
	return ig_demo_child_code(c);
}

void ig_demo_child_tail(const struct ig_demo_child *c, int nlines, FILE *f)
{
	FILE *in = fopen(c->log, "r");
	long size, start;
	char *text;
	int seen = 0;

	if (!in)
		return;
	fseek(in, 0, SEEK_END);
	size = ftell(in);
	/* The last 64 KiB are plenty for 20 lines of log. */
	start = size > 65536 ? size - 65536 : 0;
	text = size > 0 ? malloc((size_t)(size - start) + 1) : NULL;
	if (text) {
		fseek(in, start, SEEK_SET);
		size_t n = fread(text, 1, (size_t)(size - start), in);
		text[n] = '\0';
		size_t i = n;
		if (i && text[i - 1] == '\n')
			i--;
		while (i > 0 && seen < nlines)
			if (text[--i] == '\n')
				seen++;
		fprintf(f, "--- last lines of %s (%s) ---\n", c->name, c->log);
		fprintf(f, "%s%s", text + (i ? i + 1 : 0), n && text[n - 1] != '\n' ? "\n" : "");
		fprintf(f, "---\n");
	}
	if (size <= 0)
		fprintf(f, "--- %s wrote nothing (%s) ---\n", c->name, c->log);
	free(text);
	fclose(in);
}
