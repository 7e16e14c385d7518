# infergate build. Sources are found by wildcard so that adding a module
# needs no edit here: every src/<idea>/*.c goes into one static library,
# src/main.c links it into build/infergate, every tests/unit/test_*.c is a
# cmocka binary and every fuzz/fuzz_*.c a libFuzzer target.

CC       ?= cc
CLANG    ?= clang
PYTHON   ?= /usr/bin/python3
CSTD     := -std=c17
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS := -Isrc -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
# libcurl and jansson: the Kubernetes API client (src/kube/).
KUBE_LIBS := $(shell pkg-config --libs libcurl jansson 2>/dev/null || echo -lcurl -ljansson)
# nghttp2: HTTP/2 under gRPC (src/grpc/).
H2_LIBS  := $(shell pkg-config --libs libnghttp2 2>/dev/null || echo -lnghttp2)
LDLIBS   := -lyaml -lxxhash -lssl -lcrypto $(KUBE_LIBS) $(H2_LIBS) -lpthread -lm

LIB_SRCS  := $(sort $(wildcard src/*/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Two build trees: the normal one and the sanitized one (ASan + UBSan).
B  := build
BA := build-asan
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# A third tree for ThreadSanitizer, which cannot share a binary with ASan.
# -fno-builtin: gcc expands a memcpy of known size inline (rep movsq),
# which TSan does not see; as a call it goes through TSan's interceptor.
BT := build-tsan
TSAN := -fsanitize=thread
TSAN_CFLAGS := -O1 -g $(TSAN) -fno-builtin

.PHONY: all asan tsan tsan-build test unit integration test-asan deps demo demo-v1 fuzz fuzz-build clean format help

all: $(B)/infergate

help:
	@echo "make            build build/infergate"
	@echo "make demo       run the seed scenario on this machine"
	@echo "make test       unit + integration tests, then again under ASan+UBSan"
	@echo "make asan       build the sanitized variant in build-asan/"
	@echo "make tsan       build build-tsan/ (ThreadSanitizer), run the threaded tests on it"
	@echo "make demo-v1    the demo on GIE v1 manifests (examples/gie-v1), over HTTP and HTTPS"
	@echo "make fuzz       run every libFuzzer target briefly (FUZZ_SECONDS=10)"
	@echo "make deps       install the Debian packages the build needs"
	@echo "make bench-proxy infergate, nginx and HAProxy side by side (~8 min)"
	@echo "make bench-stream      the CPU each proxy spends per streamed token (~3 min)"
	@echo "make bench-longprompt  agentic ~100K-token prompts through one gateway core (~9 min)"
	@echo "make bench-extproc infergate epp over ext_proc: decisions/s, latency added to the gateway (~5 min)"
	@echo "make bench-picker ns per schedule+commit; make bench-scrape the scraper's CPU"
	@echo "make bench-instructions the gateway's instructions per request (callgrind, ~1 min)"

# ---- objects ---------------------------------------------------------------

define objs
$(patsubst %.c,$(1)/obj/%.o,$(2))
endef

# Objects of test binaries are kept (not treated as intermediate).
.SECONDARY:

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CSTD) $(WARN) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BA)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC (asan) $<"
	@$(CC) $(CSTD) $(WARN) $(CPPFLAGS) -O1 -g $(SAN) -MMD -MP -c $< -o $@

$(BT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC (tsan) $<"
	@$(CC) $(CSTD) $(WARN) $(CPPFLAGS) $(TSAN_CFLAGS) -MMD -MP -c $< -o $@

$(B)/libinfergate.a: $(call objs,$(B),$(LIB_SRCS))
	@rm -f $@; ar rcs $@ $^

$(BA)/libinfergate.a: $(call objs,$(BA),$(LIB_SRCS))
	@rm -f $@; ar rcs $@ $^

$(BT)/libinfergate.a: $(call objs,$(BT),$(LIB_SRCS))
	@rm -f $@; ar rcs $@ $^

$(B)/infergate: $(B)/obj/src/main.o $(B)/libinfergate.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BA)/infergate: $(BA)/obj/src/main.o $(BA)/libinfergate.a
	$(CC) -g $(SAN) -o $@ $^ $(LDLIBS)

$(BT)/infergate: $(BT)/obj/src/main.o $(BT)/libinfergate.a
	$(CC) -g $(TSAN) -o $@ $^ $(LDLIBS)

# ---- unit tests --------------------------------------------------------------

UNIT_BINS   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
UNIT_BINS_A := $(patsubst tests/unit/%.c,$(BA)/tests/%,$(UNIT_SRCS))

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(B)/libinfergate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BA)/tests/%: $(BA)/obj/tests/unit/%.o $(BA)/libinfergate.a
	@mkdir -p $(dir $@)
	$(CC) -g $(SAN) -o $@ $^ -lcmocka $(LDLIBS)

$(BT)/tests/%: $(BT)/obj/tests/unit/%.o $(BT)/libinfergate.a
	@mkdir -p $(dir $@)
	$(CC) -g $(TSAN) -o $@ $^ -lcmocka $(LDLIBS)

asan: $(BA)/infergate $(UNIT_BINS_A)

# `make tsan`: the unit tests that start threads and the integration tests
# that run the gateway with several workers, on the ThreadSanitizer build;
# any race report fails it (scripts/tsan-tests.sh). TSAN_HALT=0 runs on past
# the first report of each process to collect them all.
TSAN_UNIT  := $(BT)/tests/test_registry $(BT)/tests/test_prefix $(BT)/tests/test_endpoint \
	$(BT)/tests/test_route $(BT)/tests/test_accesslog $(BT)/tests/test_activity \
	$(BT)/tests/test_spsc $(BT)/tests/test_candidates $(BT)/tests/test_picker_llmd
# test_backend_tls.py: TLS contexts shared by the workers. test_demo.py is
# there for its demo runs (they start the gateway with
# --workers 2). test_idle_tunnels_hold_no_buffers,
# test_client_that_reads_nothing_holds_a_connection_budget and
# test_idle_connections_hold_little measure RSS, which TSan's shadow memory
# swamps. test_drain_flushes_slow_readers is left out: it needs the
# simulator to write 5 M tokens in its 1.5 s + 10 s, which the TSan build
# takes ~30 s for.
TSAN_TESTS ?= tests/integration/test_gateway.py tests/integration/test_picker_gateway.py \
	tests/integration/test_demo.py tests/integration/test_upstream_faults.py \
	tests/integration/test_epp.py tests/integration/test_gateway_epp.py \
	tests/integration/test_tracing.py tests/integration/test_admin_page.py \
	tests/integration/test_websocket.py tests/integration/test_backend_tls.py \
	tests/integration/test_http2.py \
	--deselect tests/integration/test_gateway.py::test_drain_flushes_slow_readers \
	--deselect tests/integration/test_websocket.py::test_idle_tunnels_hold_no_buffers \
	--deselect tests/integration/test_http2.py::test_client_that_reads_nothing_holds_a_connection_budget \
	--deselect tests/integration/test_http2.py::test_idle_connections_hold_little
TSAN_HALT  ?= 1

tsan-build: $(BT)/infergate $(TSAN_UNIT)

tsan: deps
	@$(MAKE) --no-print-directory -j$(JOBS) tsan-build
	@TSAN_HALT=$(TSAN_HALT) PYTHON=$(PYTHON) scripts/tsan-tests.sh $(BT) "$(TSAN_UNIT)" $(TSAN_TESTS)

# ---- test entry points ---------------------------------------------------------

# `make test` is what CI runs: the normal build, then ASan+UBSan, then the
# threaded tests under ThreadSanitizer; the last line sums all three.
test: deps
	@rm -f $(B)/test-counts
	@$(MAKE) --no-print-directory -j$(JOBS) all $(UNIT_BINS)
	@$(MAKE) --no-print-directory -j$(JOBS) asan
	@scripts/run-tests.sh $(B) "$(UNIT_BINS)"
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  scripts/run-tests.sh $(BA) "$(UNIT_BINS_A)"
	@$(MAKE) --no-print-directory -j$(JOBS) tsan-build
	@TEST_COUNTS=$(B)/test-counts TSAN_HALT=1 PYTHON=$(PYTHON) \
	  scripts/tsan-tests.sh $(BT) "$(TSAN_UNIT)" $(TSAN_TESTS) || true
	@scripts/summary.sh

unit: all $(UNIT_BINS)
	@for t in $(UNIT_BINS); do $$t || exit 1; done

integration: all
	IG_BIN=$(abspath $(B)/infergate) $(PYTHON) -m pytest -q tests/integration

deps:
	@scripts/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	$(B)/infergate demo -f examples/kgateway

# The same on GIE v1 manifests: two pools, body-based routing, a rewrite,
# an objective and an HTTPS listener (its certificate made at start).
demo-v1: deps
	@$(MAKE) --no-print-directory all
	$(B)/infergate demo -f examples/gie-v1

# ---- fuzzing -------------------------------------------------------------------

# The library is compiled once with the fuzzers' instrumentation
# (fuzzer-no-link) into build-fuzz/, and each target only links against it.
FUZZ_SECONDS ?= 10
BFZ := build-fuzz

# The admin page is put into admin_page.o by the assembler (.incbin), which
# -MMD does not see: the dependency is written here, for every tree.
ADMIN_PAGE_OBJS = $(foreach t,$(B) $(BA) $(BT) $(BFZ),$(t)/obj/src/gateway/admin_page.o)
$(ADMIN_PAGE_OBJS): src/gateway/admin_page.html

FUZZ_CFLAGS := $(CSTD) $(CPPFLAGS) -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_BINS := $(patsubst fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRCS))

$(BFZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC (fuzz) $<"
	@$(CLANG) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(BFZ)/libinfergate.a: $(call objs,$(BFZ),$(LIB_SRCS))
	@rm -f $@; ar rcs $@ $^

$(B)/fuzz/%: $(BFZ)/obj/fuzz/%.o $(BFZ)/libinfergate.a
	@mkdir -p $(dir $@)
	$(CLANG) -g -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# ---- protobuf ------------------------------------------------------------------

# The ext_proc and health messages (proto/, our own minimal .proto files) are
# compiled to C by protoc-c into each tree's gen/ folder, together with the
# well-known google/protobuf types they import (from libprotobuf-dev: protoc-c
# ships none). Nothing is committed. Only src/extproc/ includes the generated
# headers; its objects wait for them and see <tree>/gen.
PB_SYS    := /usr/include
PB_PROTOS := $(sort $(shell find proto -name '*.proto' 2>/dev/null))
PB_WKT    := google/protobuf/struct.proto google/protobuf/duration.proto \
	google/protobuf/wrappers.proto google/protobuf/any.proto
PB_NAMES  := $(patsubst proto/%.proto,%,$(PB_PROTOS)) $(patsubst %.proto,%,$(PB_WKT))
PB_USERS  := $(wildcard src/extproc/*.c)
PB_LIBS   := $(shell pkg-config --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)
LDLIBS    += $(PB_LIBS)

# $(1): the tree, $(2): its C compiler command line. The stamp is dated
# before protoc-c writes, so the generated files are always newer than it.
define pb_tree
$(1)/gen/.stamp: $(PB_PROTOS) $(addprefix $(PB_SYS)/,$(PB_WKT))
	@mkdir -p $(1)/gen
	@echo "PROTOC-C $(1)/gen"
	@touch $(1)/gen/.stamp.new
	@protoc-c --c_out=$(1)/gen -Iproto -I$(PB_SYS) $(PB_PROTOS) $(PB_WKT)
	@mv $(1)/gen/.stamp.new $$@

$(foreach n,$(PB_NAMES),$(1)/gen/$(n).pb-c.c $(1)/gen/$(n).pb-c.h): $(1)/gen/.stamp ;

# Generated code is compiled without -Werror: its style is protoc-c's.
$(1)/obj/gen/%.o: $(1)/gen/%.c | $(1)/gen/.stamp
	@mkdir -p $$(dir $$@)
	@echo "CC $$<"
	@$(2) -I$(1)/gen -c $$< -o $$@

$(1)/libinfergate.a: $(foreach n,$(PB_NAMES),$(1)/obj/gen/$(n).pb-c.o)
$(call objs,$(1),$(PB_USERS)): | $(1)/gen/.stamp
$(call objs,$(1),$(PB_USERS)): CPPFLAGS += -I$(1)/gen
endef

$(eval $(call pb_tree,$(B),$(CC) $(CSTD) $(CFLAGS)))
$(eval $(call pb_tree,$(BA),$(CC) $(CSTD) -O1 -g $(SAN)))
$(eval $(call pb_tree,$(BT),$(CC) $(CSTD) $(TSAN_CFLAGS)))
$(eval $(call pb_tree,$(BFZ),$(CLANG) $(FUZZ_CFLAGS)))
# FUZZ_CFLAGS was expanded with CPPFLAGS already in it.
$(call objs,$(BFZ),$(PB_USERS)): FUZZ_CFLAGS += -I$(BFZ)/gen

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B) $(BA) $(BT) $(BFZ)

-include $(shell find $(B) $(BA) $(BT) $(BFZ) -name '*.d' 2>/dev/null)

# ---- benchmarks ------------------------------------------------------------------

.PHONY: bench-picker
bench-picker: $(B)/bench/picker_bench
	$(B)/bench/picker_bench

# What scraping costs: parsing vLLM-like /metrics pages, and the scraper
# against 1024 endpoints on loopback every 50 ms (bench/scrape_bench.c).
.PHONY: bench-scrape
bench-scrape: $(B)/bench/scrape_bench
	$(B)/bench/scrape_bench

# Request-body JSON reading: parse + get against the one-pass member scan,
# and the usage finder on a response tail.
.PHONY: bench-json
bench-json: $(B)/bench/json_bench
	$(B)/bench/json_bench

$(B)/bench/%: bench/%.c $(B)/libinfergate.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(B)/libinfergate.a $(LDLIBS)

# `make bench`: proxy cost, large prompts and routing quality against nginx
# on this machine (scripts/bench/, docs/BENCHMARKS.md). About 40 minutes (routing: nginx once, the three pickers with three seeds).
BENCH_OUT ?= $(B)/bench-results
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: bench bench-deps
bench-deps:
	@command -v wrk >/dev/null && command -v nginx >/dev/null && command -v taskset >/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk nginx util-linux python3; }

bench: bench-deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	IG_BIN=$(abspath $(B)/infergate) scripts/bench/run-all.sh $(BENCH_OUT)

# `make bench-longprompt`: agentic sessions with ~100K-token prompts (500 KB)
# through the gateway on one pinned worker: requests/s, gateway CPU per
# request (user/sys), TTFT, against simulators and against light nginx fake
# pods, closed loop and at a fixed rate (scripts/bench/longprompt.sh). About
# 9 minutes. BENCH_RUNS (3) runs per cell, BENCH_SECS (10) seconds per run,
# RATE (1000) requests/s of the fixed-rate runs, PERF=1 profiles the gateway.
BENCH_LONGPROMPT_OUT ?= $(B)/bench-longprompt

.PHONY: bench-longprompt
bench-longprompt: bench-deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	IG_BIN=$(abspath $(B)/infergate) scripts/bench/longprompt.sh $(BENCH_LONGPROMPT_OUT)

# `make bench-extproc`: the picker over Envoy's ext_proc (issue 11, point 5):
# `infergate epp` decisions/s and latency for 4 KB and 400 KB bodies at 1, 8
# and 32 streams (bench/extproc_bench.c), and the latency a gateway following
# it adds against the built-in picker (scripts/bench/extproc.sh). About 5
# minutes. BENCH_RUNS (3) runs per cell, BENCH_SECS (4) seconds per run.
BENCH_EXTPROC_OUT ?= $(B)/bench-extproc

.PHONY: bench-extproc
bench-extproc:
	@$(MAKE) --no-print-directory -j$(JOBS) all $(B)/bench/extproc_bench
	IG_BIN=$(abspath $(B)/infergate) XP_BENCH=$(abspath $(B)/bench/extproc_bench) \
	  scripts/bench/extproc.sh $(BENCH_EXTPROC_OUT)

# `make bench-proxy`: infergate, nginx and HAProxy in front of the same 4
# nginx fake pods, as the 16-core kit (shared/tools/multicore-bench) runs
# them: pinned with 1 worker, shared with 2; req/s, p50, p99, added latency
# at 1 connection and for a 1 MB prompt, and HTTP/2 clients' req/s
# (h2load; scripts/bench/proxy.sh). About 8 minutes. BENCH_RUNS (3) runs per cell, BENCH_SECS (5) seconds per run.
BENCH_PROXY_OUT ?= $(B)/bench-proxy

.PHONY: bench-proxy bench-proxy-deps
bench-proxy-deps:
	@command -v wrk >/dev/null && command -v nginx >/dev/null && command -v haproxy >/dev/null && \
	  command -v taskset >/dev/null && command -v ss >/dev/null && command -v curl >/dev/null && \
	  command -v h2load >/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk nginx haproxy util-linux iproute2 curl python3 nghttp2-client; }

bench-proxy: bench-proxy-deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	IG_BIN=$(abspath $(B)/infergate) scripts/bench/proxy.sh $(BENCH_PROXY_OUT)

# `make bench-stream`: the CPU each proxy (infergate, nginx, HAProxy; one
# worker on one CPU) spends relaying token streams: 64 streams at a time of
# 200 SSE events from 4 simulators (scripts/bench/stream.sh). About 3
# minutes. BENCH_RUNS (3) runs per target, BENCH_SECS (10) seconds per run.
BENCH_STREAM_OUT ?= $(B)/bench-stream

.PHONY: bench-stream
bench-stream: bench-proxy-deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	IG_BIN=$(abspath $(B)/infergate) scripts/bench/stream.sh $(BENCH_STREAM_OUT)

# `make bench-instructions`: the gateway's user-space instructions per
# proxied request (the seed's small completion, 1 worker, 4 nginx fake
# pods), counted by valgrind's callgrind: exact where timings wander
# (scripts/bench/instructions.sh; BENCH_SECS of wrk, 10 by default).
.PHONY: bench-instructions
bench-instructions:
	@command -v valgrind >/dev/null && command -v wrk >/dev/null && command -v nginx >/dev/null && \
	  command -v curl >/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y valgrind wrk nginx curl; }
	@$(MAKE) --no-print-directory -j$(JOBS) all
	IG_BIN=$(abspath $(B)/infergate) scripts/bench/instructions.sh $(or $(BENCH_SECS),10)
