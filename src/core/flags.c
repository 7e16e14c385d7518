/* The table-driven command-line parser (flags.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/flags.h"

/* Durations above this (about 31 years) are typing mistakes, and any
 * duration up to it still fits in nanoseconds in a uint64_t. */
#define MAX_MS 1e12

/* The help column: option words wider than this put their help on the
 * next line. */
#define HELP_COLUMN_MAX 32

void ig_flag_list_free(struct ig_flag_list *l)
{
	free(l->v);
	memset(l, 0, sizeof *l);
}

int ig_flags_error(struct ig_flags *fl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fl->err, sizeof fl->err, fmt, ap);
	va_end(ap);
	return IG_ERROR;
}

int ig_flags_invalid(struct ig_flags *fl, const char *value, const char *want)
{
	if (want)
		return ig_flags_error(fl, "%s: invalid value '%s' (%s)", fl->flag, value, want);
	return ig_flags_error(fl, "%s: invalid value '%s'", fl->flag, value);
}

int ig_flags_report(const struct ig_flags *fl, int rc)
{
	if (rc == IG_OK || rc == IG_DONE)
		return 0;
	fprintf(stderr, "%s: %s\n", fl->prog, fl->err[0] ? fl->err : "invalid command line");
	return 2;
}

bool ig_flags_given(const struct ig_flags *fl, const void *dst)
{
	for (size_t i = 0; i < IG_FLAGS_MAX && fl->table[i].kind != IG_FK_END; i++)
		if (fl->table[i].dst == dst && fl->given[i])
			return true;
	return false;
}

/* ---- values ---- */

static bool takes_value(const struct ig_flag *f)
{
	return f->kind != IG_FK_BOOL && (f->kind != IG_FK_FN || f->meta);
}

/* The largest value each destination type holds; doubles count exactly
 * up to 2^53. */
static uint64_t ctype_max(enum ig_flag_ctype t)
{
	switch (t) {
	case IG_FT_INT:
		return INT_MAX;
	case IG_FT_UINT:
		return UINT_MAX;
	case IG_FT_LONG:
		return LONG_MAX;
	case IG_FT_ULONG:
		return ULONG_MAX;
	case IG_FT_DOUBLE:
		return (uint64_t)1 << 53;
	default:
		return ULLONG_MAX;
	}
}

static void store_u64(const struct ig_flag *f, uint64_t v)
{
	switch (f->ctype) {
	case IG_FT_INT:
		*(int *)f->dst = (int)v;
		break;
	case IG_FT_UINT:
		*(unsigned *)f->dst = (unsigned)v;
		break;
	case IG_FT_LONG:
		*(long *)f->dst = (long)v;
		break;
	case IG_FT_ULONG:
		*(unsigned long *)f->dst = (unsigned long)v;
		break;
	case IG_FT_DOUBLE:
		*(double *)f->dst = (double)v;
		break;
	default:
		*(unsigned long long *)f->dst = v;
		break;
	}
}

/* Decimal digits only: no sign, no space, no hexadecimal. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return IG_ERROR;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return IG_ERROR;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return IG_ERROR;
		v = v * 10 + d;
	}
	*out = v;
	return IG_OK;
}

static int set_uint(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	uint64_t max = f->umax < ctype_max(f->ctype) ? f->umax : ctype_max(f->ctype);
	uint64_t x;
	char want[96];
	if (parse_u64(v, &x) == IG_OK && x >= f->umin && x <= max) {
		store_u64(f, x);
		return IG_OK;
	}
	if (max == UINT64_MAX || max == ctype_max(f->ctype))
		snprintf(want, sizeof want, "an integer >= %llu", (unsigned long long)f->umin);
	else
		snprintf(want, sizeof want, "an integer in [%llu, %llu]",
			 (unsigned long long)f->umin, (unsigned long long)max);
	return ig_flags_invalid(fl, v, want);
}

/* strtod without its leniencies: no leading space or '+', no "inf",
 * "nan" or hexadecimal; a '-' only when signed. Returns the end of the
 * number, or NULL. */
static const char *parse_number(const char *s, bool sign, double *out)
{
	char *end;
	const char *digits = sign && *s == '-' ? s + 1 : s;
	if (!((*digits >= '0' && *digits <= '9') || *digits == '.'))
		return NULL;
	for (const char *p = s; *p; p++)
		if (*p == 'x' || *p == 'X')
			return NULL;
	errno = 0;
	*out = strtod(s, &end);
	if (end == s || errno || !isfinite(*out))
		return NULL;
	return end;
}

static int set_double(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	double x;
	const char *end = parse_number(v, true, &x);
	char want[96];
	if (end && !*end && x >= f->dmin && x <= f->dmax) {
		*(double *)f->dst = x;
		return IG_OK;
	}
	snprintf(want, sizeof want, "a number in [%g, %g]", f->dmin, f->dmax);
	return ig_flags_invalid(fl, v, want);
}

int ig_flags_parse_ms(const char *s, double bare_ms, double *out_ms)
{
	static const struct {
		const char *name;
		double ms;
	} units[] = {{"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	double x;
	const char *end = parse_number(s, false, &x);
	if (!end)
		return IG_ERROR;
	if (!*end) {
		*out_ms = x * bare_ms;
		return IG_OK;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(end, units[i].name) == 0) {
			*out_ms = x * units[i].ms;
			return IG_OK;
		}
	return IG_ERROR;
}

static int set_ms(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	double ms;
	bool integer = f->ctype != IG_FT_DOUBLE;
	char want[128];
	if (ig_flags_parse_ms(v, f->unit, &ms) == IG_OK && ms > 0 && ms <= MAX_MS &&
	    (!integer || (ms == floor(ms) && (uint64_t)ms <= ctype_max(f->ctype)))) {
		if (integer)
			store_u64(f, (uint64_t)ms);
		else
			*(double *)f->dst = ms;
		return IG_OK;
	}
	snprintf(want, sizeof want, "a duration such as 250ms, 1.5s or 2m; a bare number is %s",
		 f->unit == IG_FLAG_BARE_S ? "seconds" : "milliseconds");
	return ig_flags_invalid(fl, v, want);
}

static int add_to_list(struct ig_flags *fl, struct ig_flag_list *l, const char *v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		const char **a = realloc(l->v, cap * sizeof *a);
		if (!a)
			return ig_flags_error(fl, "out of memory");
		l->v = a;
		l->cap = cap;
	}
	l->v[l->n++] = v;
	return IG_OK;
}

/* "a, b or c" */
static void list_names(const char *const *names, char *out, size_t len)
{
	size_t n = 0, used = 0;
	while (names[n])
		n++;
	out[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
		int w = snprintf(out + used, len - used, "%s%s", sep, names[i]);
		used += w > 0 ? (size_t)w : 0;
	}
}

static int set_enum(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	char want[256];
	for (int i = 0; f->names[i]; i++)
		if (strcmp(f->names[i], v) == 0) {
			*(int *)f->dst = i;
			return IG_OK;
		}
	list_names(f->names, want, sizeof want);
	return ig_flags_invalid(fl, v, want);
}

static int call_fn(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	fl->err[0] = '\0';
	int rc = f->fn(fl, f, v);
	if (rc == IG_OK)
		return IG_OK;
	if (rc == IG_DECLINED || !fl->err[0])
		return ig_flags_invalid(fl, v ? v : "", NULL);
	return IG_ERROR;
}

/* Stores one value (NULL for a flag without one). */
static int apply(struct ig_flags *fl, const struct ig_flag *f, const char *v)
{
	switch (f->kind) {
	case IG_FK_BOOL:
		*(bool *)f->dst = !f->off;
		return IG_OK;
	case IG_FK_STR:
		*(const char **)f->dst = v;
		return IG_OK;
	case IG_FK_UINT:
		return set_uint(fl, f, v);
	case IG_FK_DOUBLE:
		return set_double(fl, f, v);
	case IG_FK_MS:
		return set_ms(fl, f, v);
	case IG_FK_LIST:
		return add_to_list(fl, f->dst, v);
	case IG_FK_ENUM:
		return set_enum(fl, f, v);
	case IG_FK_FN:
		return call_fn(fl, f, v);
	default:
		return ig_flags_error(fl, "%s: bad table entry", fl->flag);
	}
}

/* ---- words ---- */

static const struct ig_flag *find_short(const struct ig_flags *fl, char c)
{
	for (const struct ig_flag *f = fl->table; f->kind != IG_FK_END; f++)
		if (f->kind != IG_FK_SECTION && f->short_name == c)
			return f;
	return NULL;
}

static const struct ig_flag *find_long(const struct ig_flags *fl, const char *name, size_t len)
{
	for (const struct ig_flag *f = fl->table; f->kind != IG_FK_END; f++)
		if (f->kind != IG_FK_SECTION && strlen(f->name) == len &&
		    memcmp(f->name, name, len) == 0)
			return f;
	return NULL;
}

/* A flag, as opposed to a value: "--anything", or one of the short
 * flags ("-h" included), alone or with "=value". */
static bool is_flag_word(const struct ig_flags *fl, const char *w)
{
	if (w[0] != '-')
		return false;
	if (w[1] == '-')
		return true;
	return w[1] && (w[2] == '\0' || w[2] == '=') && (w[1] == 'h' || find_short(fl, w[1]));
}

/* Entries from the fallback are not the table's and are not counted. */
static void count_given(struct ig_flags *fl, const struct ig_flag *f)
{
	for (size_t i = 0; fl->table[i].kind != IG_FK_END; i++)
		if (&fl->table[i] == f && fl->given[i] < UINT8_MAX)
			fl->given[i]++;
}

/* The value words of f after argv[*i], advancing *i past them. */
static int take_values(struct ig_flags *fl, const struct ig_flag *f, int argc, char **argv, int *i)
{
	int n = 0;
	while (*i + 1 < argc && !is_flag_word(fl, argv[*i + 1])) {
		int rc = apply(fl, f, argv[++*i]);
		if (rc != IG_OK)
			return rc;
		n++;
		if (!f->greedy)
			break;
	}
	if (n == 0)
		return ig_flags_error(fl, "%s needs a value", fl->flag);
	return IG_OK;
}

static int parse_flag(struct ig_flags *fl, int argc, char **argv, int *i)
{
	const char *word = argv[*i];
	bool is_long = word[1] == '-';
	const char *name = word + (is_long ? 2 : 1);
	const char *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct ig_flag *f;
	snprintf(fl->flag, sizeof fl->flag, "%.*s", (int)(name - word + len), word);
	if ((is_long && len == 4 && memcmp(name, "help", 4) == 0) ||
	    (!is_long && len == 1 && name[0] == 'h')) {
		if (eq)
			return ig_flags_error(fl, "%s takes no value", fl->flag);
		ig_flags_usage(fl, stdout);
		return IG_DONE;
	}
	if (is_long)
		f = find_long(fl, name, len);
	else
		f = len == 1 ? find_short(fl, name[0]) : NULL;
	if (!f && is_long && fl->fallback)
		f = fl->fallback(fl, name, len);
	if (!f)
		return ig_flags_error(fl, "unknown flag '%.*s' (see --help)",
				      (int)(name - word + len), word);
	int rc;
	if (!takes_value(f))
		rc = eq ? ig_flags_error(fl, "%s takes no value", fl->flag) : apply(fl, f, NULL);
	else if (eq)
		rc = apply(fl, f, eq + 1);
	else
		rc = take_values(fl, f, argc, argv, i);
	if (rc == IG_OK)
		count_given(fl, f);
	return rc;
}

static int parse_positional(struct ig_flags *fl, const char *word)
{
	int rc = IG_DECLINED;
	fl->flag[0] = '\0';
	fl->err[0] = '\0';
	if (fl->positional)
		rc = fl->positional(fl, NULL, word);
	if (rc == IG_DECLINED || (rc != IG_OK && !fl->err[0]))
		return ig_flags_error(fl, "unexpected argument '%s' (see --help)", word);
	return rc == IG_OK ? IG_OK : IG_ERROR;
}

int ig_flags_parse(struct ig_flags *fl, int argc, char **argv)
{
	size_t n = 0;
	while (fl->table[n].kind != IG_FK_END)
		n++;
	memset(fl->given, 0, sizeof fl->given);
	fl->err[0] = '\0';
	if (n > IG_FLAGS_MAX)
		return ig_flags_error(fl, "%zu table entries; raise IG_FLAGS_MAX", n);
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		/* "-" alone is a value by custom (standard input). */
		int rc =
		    w[0] == '-' && w[1] ? parse_flag(fl, argc, argv, &i) : parse_positional(fl, w);
		if (rc != IG_OK)
			return rc;
	}
	return IG_OK;
}

/* ---- --help ---- */

static bool any_short(const struct ig_flag *t)
{
	for (; t->kind != IG_FK_END; t++)
		if (t->kind != IG_FK_SECTION && t->short_name)
			return true;
	return false;
}

/* The option words of one line: "  -f, --filename PATH". */
static int option_words(const struct ig_flag *f, bool indent, char *out, size_t len)
{
	char alias[8] = "";
	if (f->short_name)
		snprintf(alias, sizeof alias, "-%c, ", f->short_name);
	else if (indent)
		snprintf(alias, sizeof alias, "    ");
	return snprintf(out, len, "  %s--%s%s%s", alias, f->name, takes_value(f) ? " " : "",
			takes_value(f) ? f->meta : "");
}

/* The help text at column col, its continuation lines too; used is the
 * width already printed on the line. */
/* Help lines wrap to fit this many columns. */
#define HELP_WIDTH 100

static void print_help_text(FILE *out, int used, int col, const char *help)
{
	if (used > col - 2) {
		fputc('\n', out);
		used = 0;
	}
	if (!*help)
		fputc('\n', out);
	/* Lines longer than the terminal width are wrapped at spaces. */
	int width = HELP_WIDTH - col > 30 ? HELP_WIDTH - col : 30;
	while (*help) {
		size_t n = strcspn(help, "\n");
		if ((int)n > width) {
			size_t cut = (size_t)width;
			while (cut > 0 && help[cut] != ' ')
				cut--;
			if (cut > 0)
				n = cut;
		}
		fprintf(out, "%*s%.*s\n", col - used, "", (int)n, help);
		help += n;
		if (*help == '\n' || *help == ' ')
			help++;
		used = 0;
	}
}

void ig_flags_usage(const struct ig_flags *fl, FILE *out)
{
	static const char help_words[] = "  -h, --help";
	bool indent = any_short(fl->table);
	char words[256];
	int col = (int)strlen(help_words);
	for (const struct ig_flag *f = fl->table; f->kind != IG_FK_END; f++) {
		int w = option_words(f, indent, words, sizeof words);
		if (f->kind != IG_FK_SECTION && f->help && w <= HELP_COLUMN_MAX && w > col)
			col = w;
	}
	col += 2;
	if (fl->usage)
		fputs(fl->usage, out);
	for (const struct ig_flag *f = fl->table; f->kind != IG_FK_END; f++) {
		if (f->kind == IG_FK_SECTION) {
			fprintf(out, "%s%s\n", f == fl->table ? "" : "\n", f->name);
			continue;
		}
		if (!f->help)
			continue;
		int w = option_words(f, indent, words, sizeof words);
		fputs(words, out);
		print_help_text(out, w, col, f->help);
	}
	fputs(help_words, out);
	print_help_text(out, (int)strlen(help_words), col, "this text");
	if (fl->footer)
		fprintf(out, "\n%s", fl->footer);
}
