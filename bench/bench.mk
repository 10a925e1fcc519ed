# Benchmark harness (issue 7). Included by the top-level Makefile; also usable alone:
#   make -f bench/bench.mk bench
# Paths are relative to the repository root (run make from there). See bench/README.md.

_bench_saved_default_goal := $(.DEFAULT_GOAL)

BENCH_WORK          ?= bench/work
BENCH_OUT           ?= $(BENCH_WORK)/out
BENCH_RUNS          ?= 3
BENCH_J             ?= 20
BENCH_PORT          ?= 18080
BENCH_NGINX_WORKERS ?= 2
BENCH_TOOLS         ?= fetchpool curl-xargs curl-parallel aria2c wget2 curl-single
BENCH_CORPORA       ?= files api big big-capped files-capped https-files https-api
BENCH_CAP           ?= 25m
BENCH_TMPFS         ?= /dev/shm/fetchpool-bench
FETCHPOOL           ?= target/release/fetchpool
FETCHPOOL_BASE      ?= target/base/fetchpool
SCALE_MAX           ?= 100000
SCALE_OUT           ?= /dev/shm/fetchpool-scale
SCALE_TOOLS         ?= fetchpool
BENCH_PY            ?= python3

# Debian/Ubuntu packages; `time` is GNU time (/usr/bin/time -f %M for peak RSS).
BENCH_APT_PACKAGES  ?= nginx aria2 wget2 curl gnuplot-nox time coreutils findutils
BENCH_SUDO          := $(if $(filter 0,$(shell id -u)),,sudo)

BENCH_ENV = BENCH_WORK='$(BENCH_WORK)' BENCH_OUT='$(BENCH_OUT)' BENCH_RUNS='$(BENCH_RUNS)' \
  BENCH_J='$(BENCH_J)' BENCH_PORT='$(BENCH_PORT)' BENCH_NGINX_WORKERS='$(BENCH_NGINX_WORKERS)' \
  BENCH_CORPORA='$(BENCH_CORPORA)' FETCHPOOL='$(FETCHPOOL)' FETCHPOOL_BASE='$(FETCHPOOL_BASE)' SCALE_MAX='$(SCALE_MAX)' \
  SCALE_OUT='$(SCALE_OUT)' SCALE_TOOLS='$(SCALE_TOOLS)' BENCH_CAP='$(BENCH_CAP)'

# cargo build only when fetchpool is among the tools and FETCHPOOL is the default binary.
bench_build_if = $(if $(and $(filter fetchpool,$(1)),$(filter target/release/fetchpool,$(FETCHPOOL))),bench-build)

.PHONY: bench-deps bench-check bench-corpus bench-serve bench-stop bench-status bench-build \
        bench-peers bench bench-tmpfs bench-scale bench-chart bench-clean \
        bench-big bench-files-capped bench-https

bench-deps:
	$(BENCH_SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(BENCH_SUDO) apt-get install -y -qq $(BENCH_APT_PACKAGES)
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) bench-check

# Fails loudly, naming every missing tool.
bench-check:
	@missing=; \
	for t in curl aria2c wget2 gnuplot sha256sum xargs $(BENCH_PY); do \
	  command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	test -x /usr/bin/time || missing="$$missing /usr/bin/time(GNU time)"; \
	if [ -z "$$missing" ]; then \
	  ngx=$$(command -v nginx || echo /usr/sbin/nginx); \
	  $$ngx -V 2>&1 | grep -q http_stub_status_module || missing="$$missing nginx-stub_status-module"; fi; \
	if [ -n "$$missing" ]; then echo "*** bench-deps: MISSING:$$missing" >&2; exit 1; fi; \
	echo "bench tools present: nginx curl aria2c wget2 gnuplot /usr/bin/time sha256sum xargs $(BENCH_PY)"

# The corpora the chosen conditions need (api always: bench-scale uses it).
bench-corpus:
	$(BENCH_PY) bench/gen_corpus.py --work '$(BENCH_WORK)' --port $(BENCH_PORT) \
	  $$($(BENCH_ENV) $(BENCH_PY) bench/run.py corpora) api

bench-serve: bench-corpus
	@$(BENCH_ENV) bench/serve.sh start

bench-stop:
	@$(BENCH_ENV) bench/serve.sh stop

bench-status:
	@$(BENCH_ENV) bench/serve.sh status

bench-build:
	cargo build --release --bin fetchpool

# The peers alone (everything in BENCH_TOOLS except fetchpool): tests the harness
# without the fetchpool binary.
bench-peers: bench-serve
	$(BENCH_ENV) BENCH_TOOLS='$(filter-out fetchpool,$(BENCH_TOOLS))' $(BENCH_PY) bench/run.py bench

bench: $(call bench_build_if,$(BENCH_TOOLS)) bench-serve
	$(BENCH_ENV) BENCH_TOOLS='$(BENCH_TOOLS)' $(BENCH_PY) bench/run.py bench
	@echo "nginx left running for re-runs; 'make bench-stop' stops it. 'make bench-chart' draws the chart."

# One condition at a time, each a few minutes (output on tmpfs, as the issue measured):
# one large file from the per-connection-capped server; the mixed list from it; the files
# and api corpora over TLS.
bench-big:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) bench BENCH_OUT='$(BENCH_TMPFS)' BENCH_CORPORA=big-capped

bench-files-capped:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) bench BENCH_OUT='$(BENCH_TMPFS)' BENCH_CORPORA=files-capped

bench-https:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) bench BENCH_OUT='$(BENCH_TMPFS)' BENCH_CORPORA='https-files https-api'

# Same as bench with the output on tmpfs.
bench-tmpfs:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) bench BENCH_OUT='$(BENCH_TMPFS)'

bench-scale: $(call bench_build_if,$(SCALE_TOOLS)) bench-serve
	$(BENCH_ENV) $(BENCH_PY) bench/run.py scale

bench-chart:
	$(BENCH_ENV) $(BENCH_PY) bench/run.py chart
	mkdir -p docs
	cp bench/results/bench.png docs/bench.png

# Outputs only; the corpus (slow to regenerate) and results stay.
bench-clean: bench-stop
	rm -rf --one-file-system '$(BENCH_WORK)/out' '$(BENCH_TMPFS)' '$(SCALE_OUT)'

.DEFAULT_GOAL := $(_bench_saved_default_goal)
