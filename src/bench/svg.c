/* An SVG chart of a sweep: TTFT p50 and p90 (top panel) and output tokens/s
 * (bottom panel) against the offered load, one colour per target. Written
 * by hand: two panels of axes, ticks, polylines and a legend are all that
 * is needed, and a plotting library would be a large dependency for it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

#define W 760
#define PANEL_H 300
#define LEFT 80
#define RIGHT 190
#define TOP 40
#define GAP 70

static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
				      "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about five
 * ticks over [0, max]. */
static double nice_step(double max)
{
	if (!(max > 0))
		return 1;
	double raw = max / 5;
	double p = pow(10, floor(log10(raw)));
	double m = raw / p;
	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

struct panel {
	double y0;	   /* top of the plot area */
	double xmax, ymax; /* axis ends (multiples of the steps) */
	double xstep, ystep;
};

static double px(const struct panel *p, double x)
{
	return LEFT + x / p->xmax * (W - LEFT - RIGHT);
}

static double py(const struct panel *p, double y)
{
	return p->y0 + PANEL_H - y / p->ymax * PANEL_H;
}

static void escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static void axes(FILE *f, const struct panel *p, const char *xlabel, const char *ylabel,
		 const char *title)
{
	double x1 = W - RIGHT, y1 = p->y0 + PANEL_H;
	fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-weight=\"bold\">", LEFT, p->y0 - 12);
	escape(f, title);
	fputs("</text>\n", f);
	for (double y = 0; y <= p->ymax * 1.0001; y += p->ystep) {
		fprintf(f,
			"<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
			LEFT, py(p, y), x1, py(p, y), LEFT - 6, py(p, y) + 4, y);
	}
	for (double x = 0; x <= p->xmax * 1.0001; x += p->xstep) {
		fprintf(f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
			px(p, x), y1, px(p, x), y1 + 5, px(p, x), y1 + 18, x);
	}
	fprintf(f,
		"<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>"
		"<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#000\"/>\n",
		LEFT, y1, x1, y1, LEFT, p->y0, LEFT, y1);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (LEFT + x1) / 2, y1 + 36);
	escape(f, xlabel);
	fprintf(f,
		"</text>\n<text transform=\"translate(%d,%.1f) rotate(-90)\" "
		"text-anchor=\"middle\">",
		LEFT - 52, p->y0 + PANEL_H / 2.0);
	escape(f, ylabel);
	fputs("</text>\n", f);
}

typedef double (*getter)(const struct ig_bench_stage_result *s);

static double g_ttft50(const struct ig_bench_stage_result *s)
{
	return s->ttft.n ? s->ttft.p50 : NAN;
}
static double g_ttft90(const struct ig_bench_stage_result *s)
{
	return s->ttft.n ? s->ttft.p90 : NAN;
}
static double g_otps(const struct ig_bench_stage_result *s)
{
	return s->out_tps;
}

/* Stage indices of a target in order of offered load. */
static size_t *by_load(const struct ig_bench_target_result *t)
{
	size_t *ix = malloc((t->n_stages ? t->n_stages : 1) * sizeof *ix);
	if (!ix)
		return NULL;
	for (size_t i = 0; i < t->n_stages; i++) {
		size_t j = i;
		while (j > 0 && t->stages[ix[j - 1]].offered > t->stages[i].offered) {
			ix[j] = ix[j - 1];
			j--;
		}
		ix[j] = i;
	}
	return ix;
}

static void series(FILE *f, const struct panel *p, const struct ig_bench_target_result *t,
		   getter get, const char *colour, const char *dash)
{
	size_t *ix = by_load(t);
	if (!ix)
		return;
	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", colour,
		dash);
	for (size_t k = 0; k < t->n_stages; k++) {
		const struct ig_bench_stage_result *s = &t->stages[ix[k]];
		double v = get(s);
		if (!isnan(v) && !isinf(v))
			fprintf(f, "%.1f,%.1f ", px(p, s->offered), py(p, v));
	}
	fputs("\"/>\n", f);
	for (size_t k = 0; k < t->n_stages; k++) {
		const struct ig_bench_stage_result *s = &t->stages[ix[k]];
		double v = get(s);
		if (!isnan(v) && !isinf(v))
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
				px(p, s->offered), py(p, v), colour);
	}
	free(ix);
}

static void legend_item(FILE *f, double y, const char *colour, const char *dash, const char *name,
			const char *what)
{
	double x = W - RIGHT + 16;
	fprintf(f,
		"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		"stroke-width=\"2\"%s/><text x=\"%.1f\" y=\"%.1f\">",
		x, y, x + 24, y, colour, dash, x + 30, y + 4);
	escape(f, name);
	fprintf(f, " %s</text>\n", what);
}

static double max_of(const struct ig_bench_report *r, getter get)
{
	double m = 0;
	for (size_t t = 0; t < r->n_targets; t++)
		for (size_t i = 0; i < r->targets[t].n_stages; i++) {
			double v = get(&r->targets[t].stages[i]);
			if (!isnan(v) && !isinf(v) && v > m)
				m = v;
		}
	return m;
}

static void fit(struct panel *p, double xmax, double ymax)
{
	p->xstep = nice_step(xmax);
	p->xmax = ceil((xmax > 0 ? xmax : 1) / p->xstep) * p->xstep;
	p->ystep = nice_step(ymax);
	p->ymax = ceil((ymax > 0 ? ymax : 1) / p->ystep) * p->ystep;
}

int ig_bench_write_svg(FILE *f, const struct ig_bench_report *r)
{
	static const char dashed[] = " stroke-dasharray=\"6,4\"";
	bool conc = strcmp(r->load, "concurrency") == 0;
	const char *xlabel = conc ? "offered load (concurrency)" : "offered load (requests/s)";
	double xmax = 0;
	for (size_t t = 0; t < r->n_targets; t++)
		for (size_t i = 0; i < r->targets[t].n_stages; i++)
			if (r->targets[t].stages[i].offered > xmax)
				xmax = r->targets[t].stages[i].offered;
	struct panel top = {.y0 = TOP}, bottom = {.y0 = TOP + PANEL_H + GAP};
	fit(&top, xmax, max_of(r, g_ttft90));
	fit(&bottom, xmax, max_of(r, g_otps));
	int h = (int)(bottom.y0 + PANEL_H + 50);
	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		W, h, W, h);
	axes(f, &top, xlabel, "TTFT (ms)", "Time to first token: p50 (solid), p90 (dashed)");
	axes(f, &bottom, xlabel, "output tokens/s", "Throughput");
	for (size_t t = 0; t < r->n_targets; t++) {
		const struct ig_bench_target_result *tr = &r->targets[t];
		const char *c = colours[t % (sizeof colours / sizeof colours[0])];
		series(f, &top, tr, g_ttft50, c, "");
		series(f, &top, tr, g_ttft90, c, dashed);
		series(f, &bottom, tr, g_otps, c, "");
		legend_item(f, top.y0 + 10 + 36.0 * (double)t, c, "", tr->name, "p50");
		legend_item(f, top.y0 + 26 + 36.0 * (double)t, c, dashed, tr->name, "p90");
		legend_item(f, bottom.y0 + 10 + 18.0 * (double)t, c, "", tr->name, "");
	}
	fputs("</svg>\n", f);
	return ferror(f) ? -1 : 0;
}
