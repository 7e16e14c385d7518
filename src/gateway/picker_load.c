/* Which picker configuration the gateway runs: --picker-config FILE, else
 * a named one (--picker NAME), else an EndpointPickerConfig document among
 * the manifests, else infergate's default (the "infergate" preset). The hash of its text tells a
 * reload whether the schedulers (and their prefix indexes) can be kept. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/buf.h"
#include "gateway/snapshot.h"

static int read_file(const char *path, struct ig_buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if ((rc = ig_buf_append(out, chunk, n)) < 0)
			break;
	fclose(f);
	/* The buffer's ceiling is the file's fault, not a want of memory
	 * that a reload could wait out. */
	return rc == -ENOBUFS ? -EFBIG : rc;
}

/* ig_diags_add keeps no diag with a NULL field (out of memory), which
 * ig_diags_print could not write. */
static void add_diag(struct ig_diags *d, const char *file, int line, const char *path,
		     const char *msg, bool warning)
{
	ig_diags_add(d, warning, file, line, path, "%s", msg);
}

/* GIE reads flowControl only with the flowControl feature gate; so does
 * the gateway, unless --flow-control turns the queue on regardless. */
static void check_flow(const struct ig_picker_config *c, const char *file, bool flow_control,
		       struct ig_diags *diags)
{
	const struct ig_flow_control_config *f = ig_picker_config_flow_control(c);
	if (!f->present || flow_control || ig_picker_config_feature(c, "flowControl"))
		return;
	add_diag(diags, file, f->line, "flowControl",
		 "is not used: flow control is off; add flowControl to featureGates (or run the "
		 "gateway with --flow-control)",
		 true);
}

static int parse(const char *file, const char *text, size_t len, bool flow_control,
		 struct ig_picker_config **out, struct ig_diags *diags)
{
	if (ig_picker_config_parse(file, text, len, out, diags) < 0)
		return -1;
	check_flow(*out, file, flow_control, diags);
	return 0;
}

static int load_preset(const char *name, bool flow_control, struct ig_picker_config **out,
		       uint64_t *hash, struct ig_diags *diags)
{
	const char *text = ig_picker_preset(name);
	if (!text) {
		struct ig_buf msg = {0};
		ig_buf_printf(&msg, "unknown picker configuration \"%s\" (known:", name);
		for (size_t i = 0; ig_picker_preset_name(i); i++)
			ig_buf_printf(&msg, " %s", ig_picker_preset_name(i));
		ig_buf_append_cstr(&msg, ")");
		add_diag(diags, "--picker", 0, "", ig_buf_cstr(&msg), false);
		ig_buf_free(&msg);
		return -1;
	}
	char file[64];
	snprintf(file, sizeof file, "<picker %s>", name);
	*hash = XXH64(text, strlen(text), 1);
	return parse(file, text, strlen(text), flow_control, out, diags);
}

int ig_gw_load_picker(const struct ig_config *cfg, const char *file, const char *preset,
		      bool flow_control, struct ig_picker_config **out, uint64_t *hash,
		      struct ig_diags *diags)
{
	*out = NULL;
	if (preset && !file)
		return load_preset(preset, flow_control, out, hash, diags);
	if (file) {
		struct ig_buf text;
		ig_buf_init(&text, 16u << 20);
		int rc = read_file(file, &text);
		if (rc < 0) {
			char msg[256];
			snprintf(msg, sizeof msg, "cannot read the picker configuration: %s",
				 strerror(-rc));
			add_diag(diags, file, 0, "", msg, false);
			ig_diags_resource(diags, rc); /* a reload tries again */
			ig_buf_free(&text);
			return -1;
		}
		*hash = XXH64(text.ptr ? text.ptr : "", text.len, 1);
		rc = parse(file, text.ptr ? text.ptr : "", text.len, flow_control, out, diags);
		ig_buf_free(&text);
		return rc < 0 ? -1 : 0;
	}
	if (cfg->npicker_docs > 1) {
		const struct ig_raw_doc *d = &cfg->picker_docs[1];
		char msg[256];
		snprintf(msg, sizeof msg,
			 "a second EndpointPickerConfig (line %d): only one is allowed", d->line);
		add_diag(diags, d->file, 0, "", msg, false);
		return -1;
	}
	if (cfg->npicker_docs == 1) {
		const struct ig_raw_doc *d = &cfg->picker_docs[0];
		*hash = XXH64(d->text, d->len, 1);
		return parse(d->file, d->text, d->len, flow_control, out, diags);
	}
	return load_preset("infergate", flow_control, out, hash, diags);
}

int ig_gw_load_picker_text(const char *text, bool flow_control, struct ig_picker_config **out,
			   uint64_t *hash, struct ig_diags *diags)
{
	*out = NULL;
	*hash = XXH64(text, strlen(text), 1);
	return parse("--config-text", text, strlen(text), flow_control, out, diags) < 0 ? -1 : 0;
}
