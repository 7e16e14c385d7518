/* Command-line flags. Each command describes its flags once, in a table:
 * long name, optional one-letter alias, kind, destination and help text.
 * ig_flags_parse() reads argv with that table and the same table prints the
 * option list of `--help`, so a flag cannot be accepted and undocumented
 * (or documented and refused).
 *
 * What every command gets:
 *   --name value, --name=value, -n value, -n=value
 *   -h, --help               usage on stdout; ig_flags_parse returns IG_DONE
 *   unknown flag             "unknown flag '--x' (see --help)"
 *   missing value            "--x needs a value"
 *   bad value                "--x: invalid value 'v' (an integer in [1, 256])"
 *   value on a switch        "--x takes no value"
 *   stray word               "unexpected argument 'w' (see --help)", unless the
 *                            command takes positional arguments
 * A word that starts with "--", or is one of the table's short flags, is
 * never taken as a value: `--bind --workers 4` says "--bind needs a value"
 * (give `--bind=--odd` for such a value). Flags are read left to right; a
 * repeated flag overwrites, except lists, which append. -h and --help are
 * the parser's own: a table cannot use them.
 *
 * Example (the destinations hold the defaults before parsing):
 *
 *	static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
 *	struct ig_flag_list paths = {0};
 *	const char *bind = "0.0.0.0";
 *	int workers = 4, level = 2;
 *	uint64_t drain_ms = 30000;
 *	bool flow = false;
 *	struct ig_flag table[] = {
 *		IG_FLAG_LIST("filename", 'f', &paths, "PATH", "manifest file (repeatable)"),
 *		IG_FLAG_STR("bind", 0, &bind, "ADDR", "address to bind (default 0.0.0.0)"),
 *		IG_FLAG_UINT("workers", 0, &workers, 1, 256, "N", "worker threads (default 4)"),
 *		IG_FLAG_MS("drain-timeout", 0, &drain_ms, IG_FLAG_BARE_MS, "DUR",
 *			   "grace period on SIGTERM (default 30s)"),
 *		IG_FLAG_ENUM("log-level", 0, &level, levels, "LEVEL",
 *			     "error, warn, info or debug (default info)"),
 *		IG_FLAG_BOOL("flow-control", 0, &flow, "queue requests instead of refusing"),
 *		IG_FLAG_END,
 *	};
 *	struct ig_flags fl = {
 *		.prog = "infergate gateway",
 *		.usage = "usage: infergate gateway -f PATH [options]\n\n",
 *		.table = table,
 *	};
 *	int rc = ig_flags_parse(&fl, argc, argv);
 *	if (rc == IG_OK && paths.n == 0)
 *		rc = ig_flags_error(&fl, "no manifests: give -f PATH (see --help)");
 *	if (rc != IG_OK) {
 *		ig_flag_list_free(&paths);
 *		return ig_flags_report(&fl, rc); // 0 after --help, else prints, 2
 *	}
 *
 * Values that need more than a kind (a URL, NAME=VALUE, flags that depend
 * on each other) use IG_FLAG_FN: the callback gets the value and the
 * table entry (whose dst it may use as it likes) and returns IG_OK,
 * IG_DECLINED for the standard "invalid value" message, or IG_ERROR after
 * ig_flags_error()/ig_flags_invalid() wrote its own. */
#ifndef IG_CORE_FLAGS_H
#define IG_CORE_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/ret.h"

struct ig_flags;
struct ig_flag;

/* A custom flag or positional argument. value is NULL for a flag that
 * takes none; f is NULL for a positional argument. */
typedef int ig_flag_fn(struct ig_flags *fl, const struct ig_flag *f, const char *value);

enum ig_flag_kind {
	IG_FK_END = 0, /* ends the table */
	IG_FK_SECTION, /* a heading in --help; name is its text */
	IG_FK_BOOL,    /* no value: stores !off in a bool */
	IG_FK_STR,     /* stores the value (it points into argv) */
	IG_FK_UINT,    /* decimal digits only, within [umin, umax] */
	IG_FK_DOUBLE,  /* a finite number within [dmin, dmax] */
	IG_FK_MS,      /* a duration above 0, stored in milliseconds */
	IG_FK_LIST,    /* appends to a struct ig_flag_list */
	IG_FK_ENUM,    /* one of names[]; stores its index in an int */
	IG_FK_FN,      /* calls fn */
};

/* The C type behind dst for numbers, chosen by the macros from the
 * pointer's type. */
enum ig_flag_ctype {
	IG_FT_NONE = 0,
	IG_FT_INT,
	IG_FT_UINT,
	IG_FT_LONG,
	IG_FT_ULONG,
	IG_FT_ULLONG,
	IG_FT_DOUBLE,
};

/* Write tables with the IG_FLAG_* macros below; the fields are what they
 * fill in. */
struct ig_flag {
	const char *name; /* long name without "--"; a section's heading */
	char short_name;  /* 'f' for -f, or 0 */
	enum ig_flag_kind kind;
	enum ig_flag_ctype ctype;
	void *dst;
	uint64_t umin, umax;	  /* IG_FK_UINT */
	double dmin, dmax;	  /* IG_FK_DOUBLE */
	double unit;		  /* IG_FK_MS: milliseconds in a number without unit */
	const char *const *names; /* IG_FK_ENUM, NULL-terminated */
	ig_flag_fn *fn;		  /* IG_FK_FN */
	bool off;		  /* IG_FK_BOOL: the flag stores false */
	bool greedy;		  /* takes every following value word, at least one */
	const char *meta;	  /* the value in --help ("N", "PATH"); NULL: no value */
	const char *help;	  /* NULL: accepted but not listed by --help */
};

/* A repeatable flag's values, in order. They point into argv. */
struct ig_flag_list {
	const char **v;
	size_t n, cap;
};

void ig_flag_list_free(struct ig_flag_list *l);

/* Most entries a table may have, sections included. */
#define IG_FLAGS_MAX 128

struct ig_flags {
	/* Set by the caller. */
	const char *prog;	     /* "infergate sim": starts every message */
	const char *usage;	     /* printed before the option list; end it with "\n\n" */
	const char *footer;	     /* printed after it, or NULL */
	const struct ig_flag *table; /* ends with IG_FLAG_END */
	/* Positional arguments, or NULL when the command takes none. */
	ig_flag_fn *positional;
	/* Asked about a --name that is not in the table (name without the
	 * dashes and without "=value"): an entry to use for it, or NULL for
	 * "unknown flag". The entry must outlive the parse. */
	const struct ig_flag *(*fallback)(struct ig_flags *fl, const char *name, size_t len);
	void *ud; /* for callbacks */

	/* Set by ig_flags_parse. */
	char flag[64]; /* the flag being read as written ("--port", "-f"); "" for a positional */
	char err[512]; /* the message after IG_ERROR, without the prog prefix */
	uint8_t given[IG_FLAGS_MAX]; /* times each table entry was given (at most 255) */
};

/* Parses argv[1..argc-1]. IG_OK; IG_DONE after printing --help to stdout;
 * IG_ERROR with the message in fl->err. */
int ig_flags_parse(struct ig_flags *fl, int argc, char **argv);

/* Prints usage, the option list and the footer. */
void ig_flags_usage(const struct ig_flags *fl, FILE *f);

/* What a command returns after ig_flags_parse did not give IG_OK: 0 after
 * IG_DONE; after IG_ERROR, prints "prog: message" on stderr and gives 2. */
int ig_flags_report(const struct ig_flags *fl, int rc);

/* Sets fl->err (for callbacks, and for checks after parsing) and returns
 * IG_ERROR. */
int ig_flags_error(struct ig_flags *fl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "--flag: invalid value 'value' (want)" for the flag being read; want may
 * be NULL. Returns IG_ERROR. */
int ig_flags_invalid(struct ig_flags *fl, const char *value, const char *want);

/* True when a table entry writing to dst was given on the command line
 * (during or after ig_flags_parse). */
bool ig_flags_given(const struct ig_flags *fl, const void *dst);

/* The duration grammar of IG_FK_MS: a number (digits, optional fraction)
 * and a unit, us, ms, s, m or h; without a unit the number counts bare_ms
 * milliseconds. 0 and the milliseconds, or IG_ERROR. */
int ig_flags_parse_ms(const char *s, double bare_ms, double *out_ms);

/* ---- table entries ---- */

/* Type checks: each macro accepts only the destination type it writes. */
#define IG_FLAG_PTR_(type, p) _Generic((p), type : (p))
#define IG_FLAG_CTYPE_(p)                                                                          \
	_Generic((p),                                                                              \
	    int *: IG_FT_INT,                                                                      \
	    unsigned *: IG_FT_UINT,                                                                \
	    long *: IG_FT_LONG,                                                                    \
	    unsigned long *: IG_FT_ULONG,                                                          \
	    unsigned long long *: IG_FT_ULLONG,                                                    \
	    double *: IG_FT_DOUBLE)

/* Bare numbers of IG_FLAG_MS: milliseconds, or seconds. */
#define IG_FLAG_BARE_MS 1.0
#define IG_FLAG_BARE_S 1000.0

/* --name: *ptr = true (IG_FLAG_BOOL) or false (IG_FLAG_BOOL_OFF, for
 * "--no-x" flags); ptr is a bool *. */
#define IG_FLAG_BOOL(lname, sname, ptr, helptext)                                                  \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_BOOL,                        \
		.dst = IG_FLAG_PTR_(bool *, ptr), .help = (helptext)                               \
	}
#define IG_FLAG_BOOL_OFF(lname, sname, ptr, helptext)                                              \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_BOOL,                        \
		.dst = IG_FLAG_PTR_(bool *, ptr), .off = true, .help = (helptext)                  \
	}

/* --name VALUE: *ptr = VALUE; ptr is a const char **. */
#define IG_FLAG_STR(lname, sname, ptr, metavar, helptext)                                          \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_STR,                         \
		.dst = IG_FLAG_PTR_(const char **, ptr), .meta = (metavar), .help = (helptext)     \
	}

/* --name N with min <= N <= max (and within ptr's type); ptr is a pointer
 * to int, unsigned, long, unsigned long, unsigned long long (uint64_t,
 * size_t) or double. */
#define IG_FLAG_UINT(lname, sname, ptr, min, max, metavar, helptext)                               \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_UINT,                        \
		.ctype = IG_FLAG_CTYPE_(ptr), .dst = (ptr), .umin = (min), .umax = (max),          \
		.meta = (metavar), .help = (helptext)                                              \
	}

/* --name F with min <= F <= max; ptr is a double *. */
#define IG_FLAG_DOUBLE(lname, sname, ptr, min, max, metavar, helptext)                             \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_DOUBLE,                      \
		.ctype = IG_FT_DOUBLE, .dst = IG_FLAG_PTR_(double *, ptr), .dmin = (min),          \
		.dmax = (max), .meta = (metavar), .help = (helptext)                               \
	}

/* --name DUR ("250ms", "1.5s", "2m", or a bare number of bare_ms
 * milliseconds), above 0 and at most 10^12 ms, stored in milliseconds; ptr
 * as for IG_FLAG_UINT (integer types take whole milliseconds only). */
#define IG_FLAG_MS(lname, sname, ptr, bare_ms, metavar, helptext)                                  \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_MS,                          \
		.ctype = IG_FLAG_CTYPE_(ptr), .dst = (ptr), .unit = (bare_ms), .meta = (metavar),  \
		.help = (helptext)                                                                 \
	}

/* --name V, repeatable: appends V to *ptr (a struct ig_flag_list *; free it
 * with ig_flag_list_free). The _GREEDY form also takes the words after V
 * up to the next flag, as argparse's nargs="+": `--names a b c`. */
#define IG_FLAG_LIST(lname, sname, ptr, metavar, helptext)                                         \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_LIST,                        \
		.dst = IG_FLAG_PTR_(struct ig_flag_list *, ptr), .meta = (metavar),                \
		.help = (helptext)                                                                 \
	}
#define IG_FLAG_LIST_GREEDY(lname, sname, ptr, metavar, helptext)                                  \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_LIST,                        \
		.dst = IG_FLAG_PTR_(struct ig_flag_list *, ptr), .greedy = true,                   \
		.meta = (metavar), .help = (helptext)                                              \
	}

/* --name WORD where WORD is one of list (NULL-terminated): *ptr = its
 * index; ptr is an int *. */
#define IG_FLAG_ENUM(lname, sname, ptr, list, metavar, helptext)                                   \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_ENUM,                        \
		.dst = IG_FLAG_PTR_(int *, ptr), .names = (list), .meta = (metavar),               \
		.help = (helptext)                                                                 \
	}

/* --name [VALUE]: calls callback(fl, entry, VALUE); metavar NULL makes a
 * switch (VALUE is NULL). The _GREEDY form calls it once per word. */
#define IG_FLAG_FN(lname, sname, callback, ptr, metavar, helptext)                                 \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_FN, .fn = (callback),        \
		.dst = (ptr), .meta = (metavar), .help = (helptext)                                \
	}
#define IG_FLAG_FN_GREEDY(lname, sname, callback, ptr, metavar, helptext)                          \
	{                                                                                          \
		.name = (lname), .short_name = (sname), .kind = IG_FK_FN, .fn = (callback),        \
		.dst = (ptr), .greedy = true, .meta = (metavar), .help = (helptext)                \
	}

/* A heading in --help before the flags that follow. */
#define IG_FLAG_SECTION(title)                                                                     \
	{                                                                                          \
		.name = (title), .kind = IG_FK_SECTION                                             \
	}

#define IG_FLAG_END                                                                                \
	{                                                                                          \
		.kind = IG_FK_END                                                                  \
	}

#endif
