/* Unit tests for the command-line parser: every kind of flag with both
 * spellings of a value, every error message, positional arguments, the
 * fallback for flags outside the table, and the --help text the table
 * produces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/flags.h"

/* Runs the parser on the words given (the command name is added). */
#define PARSE(fl, ...) parse_words((fl), (const char *[]){"cmd", __VA_ARGS__, NULL})

static int parse_words(struct ig_flags *fl, const char **words)
{
	int argc = 0;
	while (words[argc])
		argc++;
	return ig_flags_parse(fl, argc, (char **)words);
}

static void expect_error(struct ig_flags *fl, int rc, const char *msg)
{
	assert_int_equal(rc, IG_ERROR);
	assert_string_equal(fl->err, msg);
}

/* Everything one test table writes to. */
struct dest {
	bool on, quiet;
	const char *name;
	int port;
	unsigned workers;
	long blocks;
	uint64_t big;
	size_t count;
	double rate, slack;
	double timeout_ms;
	uint64_t interval_ms;
	int level;
	struct ig_flag_list files, words;
	const char *seen[8];
	size_t nseen;
	const char *pos[4];
	size_t npos;
};

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

/* A custom flag: takes values of the form K=V only. */
static int on_pair(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct dest *d = f->dst;
	if (!strchr(v, '='))
		return IG_DECLINED;
	if (v[0] == '=')
		return ig_flags_error(fl, "%s: '%s' has no key", fl->flag, v);
	if (d->nseen == 8)
		return IG_ERROR; /* without a message: the parser words one */
	d->seen[d->nseen++] = v;
	return IG_OK;
}

/* A custom switch. */
static int on_reset(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct dest *d = f->dst;
	assert_null(v);
	d->nseen = 0;
	return IG_OK;
}

/* Up to two positional arguments; "bad" is refused with a message. */
static int on_positional(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	struct dest *d = fl->ud;
	assert_null(f);
	if (strcmp(v, "bad") == 0)
		return ig_flags_error(fl, "'%s' is not a model", v);
	if (d->npos == 2)
		return IG_DECLINED;
	d->pos[d->npos++] = v;
	return IG_OK;
}

/* Builds the test table in t (room for 24 entries). */
static void make_table(struct ig_flag *t, struct dest *d)
{
	const struct ig_flag table[] = {
	    IG_FLAG_SECTION("general:"),
	    IG_FLAG_BOOL("on", 'o', &d->on, "turn it on"),
	    IG_FLAG_BOOL_OFF("no-on", 0, &d->on, "turn it off"),
	    IG_FLAG_STR("name", 'n', &d->name, "NAME", "a name"),
	    IG_FLAG_UINT("port", 'p', &d->port, 0, 65535, "N", "a port"),
	    IG_FLAG_UINT("workers", 0, &d->workers, 1, 256, "N", "workers"),
	    IG_FLAG_UINT("blocks", 0, &d->blocks, 1, UINT64_MAX, "N", "blocks"),
	    IG_FLAG_UINT("big", 0, &d->big, 0, UINT64_MAX, "N", "anything"),
	    IG_FLAG_UINT("count", 0, &d->count, 2, 5, "N", "a count"),
	    IG_FLAG_UINT("slack", 0, &d->slack, 1, 100, "N", "an integer kept in a double"),
	    IG_FLAG_SECTION("numbers:"),
	    IG_FLAG_DOUBLE("rate", 'r', &d->rate, -1, 1, "F", "a rate\nof change"),
	    IG_FLAG_MS("timeout", 't', &d->timeout_ms, IG_FLAG_BARE_S, "DUR", "seconds when bare"),
	    IG_FLAG_MS("interval", 0, &d->interval_ms, IG_FLAG_BARE_MS, "MS", "ms when bare"),
	    IG_FLAG_ENUM("log-level", 0, &d->level, levels, "LEVEL", "how much to say"),
	    IG_FLAG_LIST("file", 'f', &d->files, "PATH", "a file (repeatable)"),
	    IG_FLAG_LIST_GREEDY("words", 0, &d->words, "W...", "one or more words"),
	    IG_FLAG_FN("pair", 0, on_pair, d, "K=V", "a pair (repeatable)"),
	    IG_FLAG_FN_GREEDY("pairs", 0, on_pair, d, "K=V...", "pairs"),
	    IG_FLAG_FN("reset", 0, on_reset, d, NULL, "forget the pairs"),
	    IG_FLAG_BOOL("secret", 0, &d->quiet, NULL),
	    IG_FLAG_END,
	};
	memcpy(t, table, sizeof table);
}

struct fixture {
	struct dest d;
	struct ig_flag table[24];
	struct ig_flags fl;
};

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof *x);
	assert_non_null(x);
	make_table(x->table, &x->d);
	x->d.port = 8000;
	x->d.name = "default";
	x->fl = (struct ig_flags){.prog = "cmd", .table = x->table};
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;
	ig_flag_list_free(&x->d.files);
	ig_flag_list_free(&x->d.words);
	free(x);
	return 0;
}

static void test_defaults_stay(void **state)
{
	struct fixture *x = *state;
	assert_int_equal(PARSE(&x->fl, "--on"), IG_OK);
	assert_true(x->d.on);
	assert_int_equal(x->d.port, 8000);
	assert_string_equal(x->d.name, "default");
	assert_false(ig_flags_given(&x->fl, &x->d.port));
	assert_true(ig_flags_given(&x->fl, &x->d.on));
}

static void test_every_kind_both_spellings(void **state)
{
	struct fixture *x = *state;
	struct dest *d = &x->d;
	assert_int_equal(PARSE(&x->fl, "--name", "a", "--port=9001", "--workers", "256", "--blocks",
			       "7", "--big=18446744073709551615", "--count", "3", "--slack=4",
			       "--rate", "-0.5", "--timeout=1.5", "--interval", "250",
			       "--log-level=debug", "--file", "x", "--file=y", "--pair", "a=1",
			       "--pair=b=2"),
			 IG_OK);
	assert_string_equal(d->name, "a");
	assert_int_equal(d->port, 9001);
	assert_int_equal(d->workers, 256);
	assert_int_equal(d->blocks, 7);
	assert_true(d->big == UINT64_MAX);
	assert_int_equal(d->count, 3);
	assert_true(d->slack == 4.0);
	assert_true(d->rate == -0.5);
	assert_true(d->timeout_ms == 1500.0);
	assert_int_equal(d->interval_ms, 250);
	assert_int_equal(d->level, 3);
	assert_int_equal(d->files.n, 2);
	assert_string_equal(d->files.v[0], "x");
	assert_string_equal(d->files.v[1], "y");
	assert_int_equal(d->nseen, 2);
	assert_string_equal(d->seen[0], "a=1");
	/* "--pair=b=2": the value is everything after the first '='. */
	assert_string_equal(d->seen[1], "b=2");
}

static void test_short_aliases(void **state)
{
	struct fixture *x = *state;
	struct dest *d = &x->d;
	assert_int_equal(
	    PARSE(&x->fl, "-o", "-n", "s", "-p=80", "-r", "1", "-t", "2m", "-f", "a", "-f=b"),
	    IG_OK);
	assert_true(d->on);
	assert_string_equal(d->name, "s");
	assert_int_equal(d->port, 80);
	assert_true(d->rate == 1.0);
	assert_true(d->timeout_ms == 120000.0);
	assert_int_equal(d->files.n, 2);
	assert_string_equal(d->files.v[1], "b");
}

static void test_repeats_and_switches(void **state)
{
	struct fixture *x = *state;
	struct dest *d = &x->d;
	/* The last of a repeated flag wins; a --no- flag clears. */
	assert_int_equal(PARSE(&x->fl, "--port", "1", "--port", "2", "--on", "--no-on", "--pair",
			       "a=1", "--reset", "--pair", "c=3", "--secret"),
			 IG_OK);
	assert_int_equal(d->port, 2);
	assert_false(d->on);
	assert_int_equal(d->nseen, 1);
	assert_string_equal(d->seen[0], "c=3");
	assert_true(d->quiet);
	assert_int_equal(x->fl.given[4], 2); /* --port, the table's entry 4 */
	/* --on and --no-on share the destination. */
	assert_true(ig_flags_given(&x->fl, &d->on));
}

static void test_greedy(void **state)
{
	struct fixture *x = *state;
	struct dest *d = &x->d;
	assert_int_equal(PARSE(&x->fl, "--words", "a", "b", "-", "--words", "c", "--pairs", "k=1",
			       "l=2", "-p", "1", "--words=d", "e"),
			 IG_ERROR);
	/* Greedy lists take words up to the next flag ("-" is a word) and
	 * append across occurrences; the = form takes one value, so "e" is a
	 * positional argument, which this table does not take. */
	assert_int_equal(d->words.n, 5);
	assert_string_equal(d->words.v[2], "-");
	assert_string_equal(d->words.v[3], "c");
	assert_string_equal(d->words.v[4], "d");
	assert_int_equal(d->nseen, 2);
	assert_string_equal(d->seen[1], "l=2");
	assert_int_equal(d->port, 1);
	assert_string_equal(x->fl.err, "unexpected argument 'e' (see --help)");
	/* A greedy custom flag stops at the first word it refuses. */
	d->nseen = 0;
	expect_error(&x->fl, PARSE(&x->fl, "--pairs", "k=1", "zz"), "--pairs: invalid value 'zz'");
	assert_int_equal(d->nseen, 1);
}

static void test_values_that_look_like_flags(void **state)
{
	struct fixture *x = *state;
	/* Neither "--x" nor a short flag of the table is a value... */
	expect_error(&x->fl, PARSE(&x->fl, "--name", "--port", "1"), "--name needs a value");
	expect_error(&x->fl, PARSE(&x->fl, "--name", "-p", "1"), "--name needs a value");
	expect_error(&x->fl, PARSE(&x->fl, "--name", "-h"), "--name needs a value");
	expect_error(&x->fl, PARSE(&x->fl, "--words", "--on"), "--words needs a value");
	/* ...but other words starting with '-' are, and = takes anything. */
	assert_int_equal(PARSE(&x->fl, "--name", "-z"), IG_OK);
	assert_string_equal(x->d.name, "-z");
	assert_int_equal(PARSE(&x->fl, "--name=--odd"), IG_OK);
	assert_string_equal(x->d.name, "--odd");
	assert_int_equal(PARSE(&x->fl, "--name="), IG_OK);
	assert_string_equal(x->d.name, "");
}

static void test_unknown_and_missing(void **state)
{
	struct fixture *x = *state;
	struct ig_flags *fl = &x->fl;
	expect_error(fl, PARSE(fl, "--bogus"), "unknown flag '--bogus' (see --help)");
	/* The value is not echoed. */
	expect_error(fl, PARSE(fl, "--bogus=secret"), "unknown flag '--bogus' (see --help)");
	expect_error(fl, PARSE(fl, "-z"), "unknown flag '-z' (see --help)");
	expect_error(fl, PARSE(fl, "-on"), "unknown flag '-on' (see --help)");
	expect_error(fl, PARSE(fl, "--"), "unknown flag '--' (see --help)");
	/* Prefixes are not abbreviations. */
	expect_error(fl, PARSE(fl, "--por", "1"), "unknown flag '--por' (see --help)");
	expect_error(fl, PARSE(fl, "--port"), "--port needs a value");
	expect_error(fl, PARSE(fl, "-p"), "-p needs a value");
	expect_error(fl, PARSE(fl, "--words"), "--words needs a value");
	expect_error(fl, PARSE(fl, "--pair"), "--pair needs a value");
	expect_error(fl, PARSE(fl, "--on=yes"), "--on takes no value");
	expect_error(fl, PARSE(fl, "-o=1"), "-o takes no value");
	expect_error(fl, PARSE(fl, "--reset=1"), "--reset takes no value");
	expect_error(fl, PARSE(fl, "--help=1"), "--help takes no value");
	expect_error(fl, PARSE(fl, "model"), "unexpected argument 'model' (see --help)");
	/* The first error stops the parse. */
	expect_error(fl, PARSE(fl, "--port", "x", "--bogus"),
		     "--port: invalid value 'x' (an integer in [0, 65535])");
}

static void test_invalid_numbers(void **state)
{
	struct fixture *x = *state;
	struct ig_flags *fl = &x->fl;
	const char *range = "(an integer in [0, 65535])";
	const char *bad_port[] = {"x",	"",	"-1",  "+1",	" 1",
				  "1 ", "0x10", "1.0", "65536", "99999999999999999999999"};
	char want[128];
	for (size_t i = 0; i < sizeof bad_port / sizeof bad_port[0]; i++) {
		snprintf(want, sizeof want, "--port: invalid value '%s' %s", bad_port[i], range);
		expect_error(fl, PARSE(fl, "--port", bad_port[i]), want);
	}
	assert_int_equal(PARSE(fl, "--port", "0"), IG_OK);
	assert_int_equal(PARSE(fl, "--port", "00065535"), IG_OK);
	assert_int_equal(x->d.port, 65535);
	expect_error(fl, PARSE(fl, "--workers", "0"),
		     "--workers: invalid value '0' (an integer in [1, 256])");
	expect_error(fl, PARSE(fl, "--count=6"),
		     "--count: invalid value '6' (an integer in [2, 5])");
	/* Without a maximum of its own, the flag's C type sets it. */
	expect_error(fl, PARSE(fl, "--blocks", "0"),
		     "--blocks: invalid value '0' (an integer >= 1)");
	expect_error(fl, PARSE(fl, "--blocks", "9223372036854775808"),
		     "--blocks: invalid value '9223372036854775808' (an integer >= 1)");
	assert_int_equal(PARSE(fl, "--blocks", "9223372036854775807"), IG_OK);
	assert_true(x->d.blocks == 9223372036854775807L);
	expect_error(fl, PARSE(fl, "--big", "18446744073709551616"),
		     "--big: invalid value '18446744073709551616' (an integer >= 0)");

	const char *bad_rate[] = {"x",	 "",	  "2",	    "-1.5", "nan",
				  "inf", "1e999", "0x1p-1", " 1",   "1s"};
	for (size_t i = 0; i < sizeof bad_rate / sizeof bad_rate[0]; i++) {
		snprintf(want, sizeof want, "--rate: invalid value '%s' (a number in [-1, 1])",
			 bad_rate[i]);
		expect_error(fl, PARSE(fl, "--rate", bad_rate[i]), want);
	}
	assert_int_equal(PARSE(fl, "--rate", ".25"), IG_OK);
	assert_true(x->d.rate == 0.25);
	assert_int_equal(PARSE(fl, "--rate=-1"), IG_OK);
	assert_true(x->d.rate == -1.0);
}

static void test_durations(void **state)
{
	struct fixture *x = *state;
	struct ig_flags *fl = &x->fl;
	struct dest *d = &x->d;
	const struct {
		const char *in;
		double seconds_bare, ms_bare;
	} ok[] = {{"1", 1000, 1},	    {"1.5", 1500, 1.5},	  {"250ms", 250, 250},
		  {"2s", 2000, 2000},	    {"1.5s", 1500, 1500}, {"2m", 120000, 120000},
		  {"1h", 3600000, 3600000}, {"500us", 0.5, 0.5}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		double ms = -1;
		assert_int_equal(ig_flags_parse_ms(ok[i].in, IG_FLAG_BARE_S, &ms), IG_OK);
		assert_true(fabs(ms - ok[i].seconds_bare) < 1e-9);
		assert_int_equal(ig_flags_parse_ms(ok[i].in, IG_FLAG_BARE_MS, &ms), IG_OK);
		assert_true(fabs(ms - ok[i].ms_bare) < 1e-9);
	}
	const char *bad[] = {"", "s", "-1s", "+1s", "1 s", " 1s", "1sec", "1h30m", "inf", "1x"};
	double ms;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(ig_flags_parse_ms(bad[i], 1, &ms), IG_ERROR);

	assert_int_equal(PARSE(fl, "--timeout", "0.25", "--interval", "1s"), IG_OK);
	assert_true(d->timeout_ms == 250.0);
	assert_int_equal(d->interval_ms, 1000);
	expect_error(fl, PARSE(fl, "--timeout", "0"),
		     "--timeout: invalid value '0' (a duration such as 250ms, 1.5s or 2m; a bare "
		     "number is seconds)");
	expect_error(fl, PARSE(fl, "--timeout", "20000000h"),
		     "--timeout: invalid value '20000000h' (a duration such as 250ms, 1.5s or 2m; "
		     "a bare number is seconds)");
	/* An integer destination takes whole milliseconds. */
	expect_error(fl, PARSE(fl, "--interval", "1.5"),
		     "--interval: invalid value '1.5' (a duration such as 250ms, 1.5s or 2m; a "
		     "bare number is milliseconds)");
	assert_int_equal(PARSE(fl, "--interval", "1.5s"), IG_OK);
	assert_int_equal(d->interval_ms, 1500);
}

static void test_enum_and_custom_errors(void **state)
{
	struct fixture *x = *state;
	struct ig_flags *fl = &x->fl;
	struct dest *d = &x->d;
	expect_error(fl, PARSE(fl, "--log-level", "loud"),
		     "--log-level: invalid value 'loud' (error, warn, info or debug)");
	expect_error(fl, PARSE(fl, "--log-level", "Info"),
		     "--log-level: invalid value 'Info' (error, warn, info or debug)");
	assert_int_equal(PARSE(fl, "--log-level", "error"), IG_OK);
	assert_int_equal(d->level, 0);
	/* IG_DECLINED: the standard message. */
	expect_error(fl, PARSE(fl, "--pair", "novalue"), "--pair: invalid value 'novalue'");
	/* IG_ERROR with the callback's own message. */
	expect_error(fl, PARSE(fl, "--pair", "=1"), "--pair: '=1' has no key");
	/* IG_ERROR without one: the standard message. */
	d->nseen = 8;
	expect_error(fl, PARSE(fl, "--pair", "a=1"), "--pair: invalid value 'a=1'");
}

static void test_positional(void **state)
{
	struct fixture *x = *state;
	struct ig_flags *fl = &x->fl;
	struct dest *d = &x->d;
	fl->positional = on_positional;
	fl->ud = d;
	assert_int_equal(PARSE(fl, "m1", "--port", "1", "-"), IG_OK);
	assert_int_equal(d->npos, 2);
	assert_string_equal(d->pos[0], "m1");
	assert_string_equal(d->pos[1], "-");
	d->npos = 0;
	expect_error(fl, PARSE(fl, "a", "b", "c"), "unexpected argument 'c' (see --help)");
	d->npos = 0;
	expect_error(fl, PARSE(fl, "bad"), "'bad' is not a model");
	/* A positional callback never sees a word that looks like a flag. */
	d->npos = 0;
	expect_error(fl, PARSE(fl, "-x"), "unknown flag '-x' (see --help)");
	assert_int_equal(d->npos, 0);
}

/* The fallback: vLLM-style flags accepted without being in the table. */
static int ignore_flag(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	int *count = fl->ud;
	(*count)++;
	return IG_OK;
}

static const struct ig_flag ignored_value = IG_FLAG_FN("ignored", 0, ignore_flag, NULL, "X", NULL);
static const struct ig_flag ignored_switch =
    IG_FLAG_FN("ignored", 0, ignore_flag, NULL, NULL, NULL);

static const struct ig_flag *fallback(struct ig_flags *fl, const char *name, size_t len)
{
	if (len == 5 && memcmp(name, "dtype", 5) == 0)
		return &ignored_value;
	if (len == 13 && memcmp(name, "enforce-eager", 13) == 0)
		return &ignored_switch;
	return NULL;
}

static void test_fallback(void **state)
{
	struct fixture *x = *state;
	struct ig_flags *fl = &x->fl;
	int count = 0;
	fl->fallback = fallback;
	fl->ud = &count;
	assert_int_equal(
	    PARSE(fl, "--dtype", "bf16", "--enforce-eager", "--dtype=x", "--port", "1"), IG_OK);
	assert_int_equal(count, 3);
	assert_int_equal(x->d.port, 1);
	/* Messages name the flag as written, not the entry's name. */
	expect_error(fl, PARSE(fl, "--dtype"), "--dtype needs a value");
	expect_error(fl, PARSE(fl, "--enforce-eager=1"), "--enforce-eager takes no value");
	expect_error(fl, PARSE(fl, "--other"), "unknown flag '--other' (see --help)");
	/* Table entries come first; the fallback is for long flags only. */
	expect_error(fl, PARSE(fl, "-d"), "unknown flag '-d' (see --help)");
}

static void test_table_too_long(void **state)
{
	struct ig_flag *t = calloc(IG_FLAGS_MAX + 2, sizeof *t);
	bool b = false;
	assert_non_null(t);
	for (size_t i = 0; i <= IG_FLAGS_MAX; i++)
		t[i] = (struct ig_flag)IG_FLAG_BOOL("b", 0, &b, "b");
	struct ig_flags fl = {.prog = "cmd", .table = t};
	assert_int_equal(PARSE(&fl, "--b"), IG_ERROR);
	assert_non_null(strstr(fl.err, "IG_FLAGS_MAX"));
	assert_false(b);
	/* Exactly IG_FLAGS_MAX entries is fine, and the last one is counted. */
	t[IG_FLAGS_MAX] = (struct ig_flag)IG_FLAG_END;
	t[IG_FLAGS_MAX - 1] = (struct ig_flag)IG_FLAG_BOOL("last", 0, &b, "b");
	assert_int_equal(PARSE(&fl, "--last"), IG_OK);
	assert_true(b);
	assert_int_equal(fl.given[IG_FLAGS_MAX - 1], 1);
	free(t);
}

/* ---- --help ---- */

static char *usage_text(const struct ig_flags *fl)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	ig_flags_usage(fl, f);
	fclose(f);
	return text;
}

static void test_help_text(void **state)
{
	struct fixture *x = *state;
	x->fl.usage = "usage: cmd [options]\n\n";
	x->fl.footer = "Exit status: 0 or 2.\n";
	char *text = usage_text(&x->fl);
	assert_string_equal(text, "usage: cmd [options]\n"
				  "\n"
				  "general:\n"
				  "  -o, --on               turn it on\n"
				  "      --no-on            turn it off\n"
				  "  -n, --name NAME        a name\n"
				  "  -p, --port N           a port\n"
				  "      --workers N        workers\n"
				  "      --blocks N         blocks\n"
				  "      --big N            anything\n"
				  "      --count N          a count\n"
				  "      --slack N          an integer kept in a double\n"
				  "\n"
				  "numbers:\n"
				  "  -r, --rate F           a rate\n"
				  "                         of change\n"
				  "  -t, --timeout DUR      seconds when bare\n"
				  "      --interval MS      ms when bare\n"
				  "      --log-level LEVEL  how much to say\n"
				  "  -f, --file PATH        a file (repeatable)\n"
				  "      --words W...       one or more words\n"
				  "      --pair K=V         a pair (repeatable)\n"
				  "      --pairs K=V...     pairs\n"
				  "      --reset            forget the pairs\n"
				  "  -h, --help             this text\n"
				  "\n"
				  "Exit status: 0 or 2.\n");
	free(text);
}

static void test_help_layout(void **state)
{
	bool b;
	const char *s;
	/* Without short flags nothing is indented for them; option words
	 * too wide for the column put their help on the next line. */
	const struct ig_flag table[] = {
	    IG_FLAG_BOOL("quiet", 0, &b, "no table"),
	    IG_FLAG_STR("load", 0, &s, "constant|poisson|concurrency",
			"the kind of load\nfor stages"),
	    IG_FLAG_STR("model", 0, &s, "NAME", ""),
	    IG_FLAG_END,
	};
	struct ig_flags fl = {.prog = "cmd", .table = table};
	char *text = usage_text(&fl);
	assert_string_equal(text, "  --quiet       no table\n"
				  "  --load constant|poisson|concurrency\n"
				  "                the kind of load\n"
				  "                for stages\n"
				  "  --model NAME\n"
				  "  -h, --help    this text\n");
	free(text);
}

/* Runs a parse with stdout and stderr going to files; returns rc. */
static int parse_captured(struct ig_flags *fl, const char **words, char *out, char *errout,
			  int *report)
{
	FILE *o = tmpfile(), *e = tmpfile();
	int saved_out = dup(1), saved_err = dup(2), argc = 0;
	assert_non_null(o);
	assert_non_null(e);
	while (words[argc])
		argc++;
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	int rc = ig_flags_parse(fl, argc, (char **)words);
	*report = ig_flags_report(fl, rc);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	rewind(o);
	rewind(e);
	out[fread(out, 1, 4095, o)] = '\0';
	errout[fread(errout, 1, 4095, e)] = '\0';
	fclose(o);
	fclose(e);
	return rc;
}

static void test_help_and_report(void **state)
{
	struct fixture *x = *state;
	static char out[4096], err[4096];
	int code;
	x->fl.usage = "usage: cmd\n\n";
	char *text = usage_text(&x->fl);
	const char *long_help[] = {"cmd", "--help", NULL};
	const char *short_help[] = {"cmd", "-h", NULL};
	const char *late_help[] = {"cmd", "--port", "1", "-h", "--bogus", NULL};
	const char **help_words[] = {long_help, short_help, late_help};
	for (size_t i = 0; i < 3; i++) {
		const char **words = help_words[i];
		assert_int_equal(parse_captured(&x->fl, words, out, err, &code), IG_DONE);
		assert_int_equal(code, 0);
		assert_string_equal(out, text);
		assert_string_equal(err, "");
	}
	/* A value that comes before --help is still checked. */
	const char *bad[] = {"cmd", "--port", "x", "--help", NULL};
	assert_int_equal(parse_captured(&x->fl, bad, out, err, &code), IG_ERROR);
	assert_int_equal(code, 2);
	assert_string_equal(out, "");
	assert_string_equal(err, "cmd: --port: invalid value 'x' (an integer in [0, 65535])\n");
	const char *fine[] = {"cmd", "--port", "1", NULL};
	assert_int_equal(parse_captured(&x->fl, fine, out, err, &code), IG_OK);
	assert_int_equal(code, 0);
	assert_string_equal(out, "");
	assert_string_equal(err, "");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults_stay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_kind_both_spellings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_short_aliases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_repeats_and_switches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_greedy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_values_that_look_like_flags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_and_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_numbers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enum_and_custom_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_positional, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fallback, setup, teardown),
	    cmocka_unit_test(test_table_too_long),
	    cmocka_unit_test(test_help_layout),
	    cmocka_unit_test_setup_teardown(test_help_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_help_and_report, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
