/* The access log: one line per request, JSON or logfmt text, written off
 * the request path. Each worker formats its line into a ring of its own
 * (single producer, single consumer: the worker writes, the control thread
 * reads; no lock); the control loop drains the rings every 100 ms into a
 * bounded buffer and writes it with non-blocking writes. A full ring, a
 * full disk or a reader that takes nothing drops lines, counted in
 * infergate_access_log_dropped_total; a request never waits for the log.
 * SIGUSR1 reopens the file (rotation). */
#ifndef IG_GATEWAY_ACCESSLOG_H
#define IG_GATEWAY_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

struct ig_access_log;
struct ig_alog_ring;
struct ig_series;

enum ig_alog_format { IG_ALOG_JSON, IG_ALOG_TEXT };

#define IG_ALOG_RING_BYTES (1u << 20) /* per worker */

/* Opens `path` ("-": standard output) for appending, with one ring per
 * worker. `dropped` (may be NULL) counts the lines lost. NULL when the
 * file cannot be opened (said on stderr) or out of memory. */
struct ig_access_log *ig_access_log_open(const char *path, enum ig_alog_format fmt, size_t nrings,
					 struct ig_series *dropped);
struct ig_alog_ring *ig_access_log_ring(struct ig_access_log *l, size_t i);
/* Control thread: moves the rings' lines out and writes what the file
 * takes now. */
void ig_access_log_flush(struct ig_access_log *l);
/* Control thread: flushes, then opens the path again (after a rename by
 * logrotate). The old file stays in use if the new one cannot be opened. */
void ig_access_log_reopen(struct ig_access_log *l);
/* A last flush, then closes and frees (workers stopped). NULL is fine. */
void ig_access_log_close(struct ig_access_log *l);

/* One finished request. Durations in nanoseconds; ttft_ns (see
 * ig_req_ttft_ns) 0: no response byte came from a model server. */
struct ig_alog_entry {
	struct ig_str request_id, client, method, path, protocol, model, target, pool, endpoint,
	    reason;
	int status;
	int attempts;
	uint64_t queue_ns, ttft_ns, duration_ns;
	long prompt_tokens, completion_tokens;
	uint64_t bytes_in, bytes_out;
	/* A gRPC call's status (grpc-status of the answer, the pod's or the
	 * gateway's own), logged as grpc_status when there is one. */
	bool has_grpc_status;
	int grpc_status;
};

/* Worker thread: formats the line into the worker's ring, or drops and
 * counts it when the ring is full. */
void ig_alog_write(struct ig_alog_ring *r, const struct ig_alog_entry *e);

#endif
