/* gRPC's message framing inside HTTP/2 DATA (a compressed flag, a 32-bit
 * big-endian length, the message), its reassembly under a ceiling, and the
 * small text formats of its headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_int.h"

static bool deliver(grpc_msg_fn fn, void *arg, const uint8_t *p, size_t len)
{
	static const uint8_t empty[1];
	return fn(arg, p ? p : empty, len);
}

/* Reads the 5-byte prefix once complete: the error code, or 0. */
static int start_message(struct grpc_reasm *r)
{
	if (r->hdr[0] != 0)
		return IG_GRPC_INTERNAL;
	uint32_t n = (uint32_t)r->hdr[1] << 24 | (uint32_t)r->hdr[2] << 16 |
		     (uint32_t)r->hdr[3] << 8 | r->hdr[4];
	if (n > r->max && !r->on_oversize)
		return IG_GRPC_RESOURCE_EXHAUSTED;
	r->need = n;
	r->in_body = true;
	r->msg.len = 0;
	return 0;
}

int grpc_reasm_feed(struct grpc_reasm *r, const uint8_t *p, size_t len, grpc_msg_fn fn, void *arg)
{
	while (len || (r->in_body && r->need == 0)) {
		if (r->skip) {
			size_t n = r->skip < len ? r->skip : len;
			r->skip -= n;
			p += n;
			len -= n;
			continue;
		}
		if (!r->in_body) {
			size_t take = GRPC_FRAME_HEADER - r->hdr_len;
			if (take > len)
				take = len;
			memcpy(r->hdr + r->hdr_len, p, take);
			r->hdr_len += take;
			p += take;
			len -= take;
			if (r->hdr_len < GRPC_FRAME_HEADER)
				return 0;
			int rc = start_message(r);
			if (rc)
				return rc;
			if (r->need > r->max) {
				r->skip = r->need;
				r->need = 0;
				r->in_body = false;
				r->hdr_len = 0;
				if (!r->on_oversize(arg, r->skip))
					return -1;
			}
			continue;
		}
		/* A whole message in the caller's bytes goes out without a copy. */
		if (r->msg.len == 0 && len >= r->need) {
			size_t n = r->need;
			r->in_body = false;
			r->hdr_len = 0;
			const uint8_t *m = p;
			p += n;
			len -= n;
			if (!deliver(fn, arg, m, n))
				return -1;
			continue;
		}
		size_t take = r->need < len ? r->need : len;
		if (r->msg.max == 0)
			r->msg.max = r->max ? r->max : 1;
		if (ig_buf_append(&r->msg, p, take) < 0)
			return IG_GRPC_RESOURCE_EXHAUSTED;
		r->need -= take;
		p += take;
		len -= take;
		if (r->need)
			return 0;
		r->in_body = false;
		r->hdr_len = 0;
		size_t n = r->msg.len;
		r->msg.len = 0; /* the bytes stay valid until the next append */
		if (!deliver(fn, arg, (const uint8_t *)r->msg.ptr, n))
			return -1;
	}
	return 0;
}

bool grpc_reasm_partial(const struct grpc_reasm *r)
{
	return r->in_body || r->hdr_len > 0 || r->skip > 0;
}

void grpc_reasm_free(struct grpc_reasm *r)
{
	ig_buf_free(&r->msg);
}

struct grpc_outq_block {
	struct grpc_outq_block *next;
	size_t off, len, cap; /* data[off, len) is not taken yet */
	uint8_t data[];
};

/* Small messages (header answers, health) share blocks of this size. */
#define OUTQ_BLOCK 4096

int grpc_outq_pushv(struct grpc_outq *q, const struct ig_str *parts, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (parts[i].len > UINT32_MAX - len)
			return -1;
		len += parts[i].len;
	}
	size_t need = GRPC_FRAME_HEADER + len;
	if (q->max && (q->len > q->max || need > q->max - q->len))
		return -1;
	struct grpc_outq_block *b = q->tail;
	if (!b || b->cap - b->len < need) {
		size_t cap = need > OUTQ_BLOCK ? need : OUTQ_BLOCK;
		b = malloc(sizeof *b + cap);
		if (!b)
			return -1;
		b->next = NULL;
		b->off = b->len = 0;
		b->cap = cap;
		if (q->tail)
			q->tail->next = b;
		else
			q->head = b;
		q->tail = b;
	}
	uint8_t *p = b->data + b->len;
	*p++ = 0;
	*p++ = (uint8_t)(len >> 24);
	*p++ = (uint8_t)(len >> 16);
	*p++ = (uint8_t)(len >> 8);
	*p++ = (uint8_t)len;
	for (size_t i = 0; i < n; i++) {
		if (parts[i].len) /* an empty part may have no pointer */
			memcpy(p, parts[i].ptr, parts[i].len);
		p += parts[i].len;
	}
	b->len += need;
	q->len += need;
	return 0;
}

size_t grpc_outq_len(const struct grpc_outq *q)
{
	return q->len;
}

size_t grpc_outq_take(struct grpc_outq *q, uint8_t *dst, size_t len)
{
	size_t done = 0;
	while (done < len && q->head) {
		struct grpc_outq_block *b = q->head;
		size_t n = b->len - b->off;
		if (n > len - done)
			n = len - done;
		memcpy(dst + done, b->data + b->off, n);
		b->off += n;
		done += n;
		if (b->off < b->len)
			break;
		/* All of it sent: the block goes, unless more messages may
		 * still be appended to it (the tail), where it starts over. */
		if (b == q->tail) {
			b->off = b->len = 0;
			break;
		}
		q->head = b->next;
		free(b);
	}
	q->len -= done;
	return done;
}

void grpc_outq_free(struct grpc_outq *q)
{
	while (q->head) {
		struct grpc_outq_block *b = q->head;
		q->head = b->next;
		free(b);
	}
	q->tail = NULL;
	q->len = 0;
}

/* PROTOCOL-HTTP2: grpc-message is percent-encoded UTF-8; unreserved are
 * the printable ASCII characters except '%'. */
void ig_grpc_percent_encode(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		bool plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
		size_t need = plain ? 1 : 3;
		if (o + need >= cap)
			break;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (cap)
		out[o] = '\0';
}

void grpc_percent_decode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		int hi, lo;
		if (in[i] == '%' && i + 2 < len && (hi = ig_hex_value(in[i + 1])) >= 0 &&
		    (lo = ig_hex_value(in[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = (char)in[i];
		}
	}
	if (cap)
		out[o] = '\0';
}

/* At most 8 digits; the finest unit that fits keeps the most precision. */
void grpc_timeout_format(uint64_t ms, char *out, size_t cap)
{
	if (ms < 100000000u)
		snprintf(out, cap, "%llum", (unsigned long long)ms);
	else if (ms / 1000 < 100000000u)
		snprintf(out, cap, "%lluS", (unsigned long long)(ms / 1000));
	else
		snprintf(
		    out, cap, "%lluH",
		    (unsigned long long)(ms / 3600000u > 99999999u ? 99999999u : ms / 3600000u));
}

uint64_t grpc_timeout_parse(struct ig_str v)
{
	if (v.len < 2 || v.len > 9)
		return 0;
	uint64_t n = 0;
	for (size_t i = 0; i + 1 < v.len; i++) {
		if (v.ptr[i] < '0' || v.ptr[i] > '9')
			return 0;
		n = n * 10 + (uint64_t)(v.ptr[i] - '0');
	}
	uint64_t unit;
	switch (v.ptr[v.len - 1]) {
	case 'H':
		unit = 3600000000000ull;
		break;
	case 'M':
		unit = 60000000000ull;
		break;
	case 'S':
		unit = 1000000000ull;
		break;
	case 'm':
		unit = 1000000ull;
		break;
	case 'u':
		unit = 1000ull;
		break;
	case 'n':
		unit = 1;
		break;
	default:
		return 0;
	}
	/* 99999999H is over 11,000 years: a deadline never reached. */
	if (n > UINT64_MAX / 4 / unit)
		return UINT64_MAX / 4;
	return n ? n * unit : 1;
}

/* As grpc's http-grpc-status-mapping.md. */
int grpc_status_from_http(int http_status)
{
	switch (http_status) {
	case 400:
		return IG_GRPC_INTERNAL;
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return IG_GRPC_PERMISSION_DENIED;
	case 404:
		return IG_GRPC_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return IG_GRPC_UNAVAILABLE;
	default:
		return IG_GRPC_UNKNOWN;
	}
}
