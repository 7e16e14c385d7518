/* Child processes of `demo` and `run`: this same binary started with
 * another command, output to a log file, never outliving us. */
#ifndef IG_DEMO_CHILD_H
#define IG_DEMO_CHILD_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

struct ig_demo_child {
	char name[128];	    /* for messages: "sim qwen-pool-0", "gateway" */
	char log[PATH_MAX]; /* stdout and stderr go here */
	pid_t pid;	    /* 0 when never started */
	bool reaped;
	int status; /* wait status once reaped */
};

/* Starts /proc/self/exe with argv (argv[0] is only what ps shows). The
 * child gets SIGTERM when we die, runs in its own process group (so a
 * terminal's Ctrl-C reaches only us and we stop children in order), and
 * has default signal handling. 0, or -errno. */
int ig_demo_child_start(struct ig_demo_child *c, char *const argv[]);
/* Reaps the child if it has exited; true when it is gone. */
bool ig_demo_child_gone(struct ig_demo_child *c);
/* SIGTERM, up to timeout_ms for it to exit, then SIGKILL. Returns the exit
 * code (128 + signal when killed by one), or -1 if it never started. */
int ig_demo_child_stop(struct ig_demo_child *c, int timeout_ms);
/* The exit code of a reaped child, as ig_demo_child_stop returns it. */
int ig_demo_child_code(const struct ig_demo_child *c);
/* Prints the last nlines lines of the child's log, indented. */
void ig_demo_child_tail(const struct ig_demo_child *c, int nlines, FILE *f);

#endif
