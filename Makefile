# fetchpool — the front door. `make help` lists the targets.
CARGO ?= cargo

.PHONY: all build release test check fmt lint doc manpages deps-check demo interop fuzz soak help clean

all: build

help:
	@echo "make build       debug build"
	@echo "make release     optimized binary at target/release/fetchpool"
	@echo "make test        the whole test suite (what CI runs)"
	@echo "make check       fmt, clippy -D warnings, docs, no async runtime, tests"
	@echo "make doc         the library's API documentation (cargo doc, warnings are errors)"
	@echo "make manpages    shell completions and man page in target/manpages (clap_complete, clap_mangen)"
	@echo "make demo        serve data/demo on 127.0.0.1 and download it with checksums and a report"
	@echo "make interop     real tinyproxy and Squid; resume, 304 and change checks on nginx, Apache, lighttpd, Caddy, moto;"
	@echo "                 sharded runs under GNU parallel and a one-node Slurm cluster (scancel, requeue)"
	@echo "make bench       fetchpool against curl, aria2c and wget2 on a local nginx"
	@echo "make fuzz        each fuzz target (list, url, headers) for FUZZ_SECONDS s (default 60; nightly, cargo-fuzz)"
	@echo "make soak        200,000 jobs through nginx with resets, 503s, stalls, drips and a restart (~2 min)"

build:
	$(CARGO) build

release:
	$(CARGO) build --release

test:
	$(CARGO) build --examples
	$(CARGO) test --all-targets
	$(CARGO) test --doc

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

# The library's API documentation, in target/doc.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

# Completions and man pages come from the binary's own src/cli/args.rs, through an example, so
# the binary links neither generator.
manpages:
	$(CARGO) run --quiet --example gen_docs -- target/manpages

# The design card forbids an async runtime anywhere in the dependency tree.
deps-check:
	@if $(CARGO) tree -e normal,build --prefix none | grep -E '^(tokio|async-std|smol|futures-executor|async-executor) ' ; then \
		echo "an async runtime is in the dependency tree (above)"; exit 1; \
	else echo "no async runtime in cargo tree"; fi

check: fmt lint doc deps-check test

demo: release
	@bash data/demo.sh

# Real nginx, tinyproxy, Squid, Apache, lighttpd, Caddy and moto's S3 server on loopback
# (root; apt-get install nginx tinyproxy squid apache2 lighttpd lighttpd-mod-deflate caddy
# openssl curl python3 python3-venv parallel slurm-wlm munge; moto comes from PyPI into a
# venv under ~/.cache). Last, GNU parallel and a one-node Slurm cluster run the README's
# sharding recipes (interop/scale.sh).
# See interop/run.sh for what runs and which config lines change.
interop: build
	@bash interop/run.sh

# 200,000 jobs through a real nginx (own config and pid file under a temp dir) with
# resets, 503s, stalls, slow drips and a restart injected; SOAK_JOBS and the other SOAK_*
# variables in interop/soak.sh change the mix. About 2 minutes.
soak: release
	@bash interop/soak.sh

# Fuzz targets live in tests/fuzz, their own workspace outside the default build; seeds in
# data/fuzz/TARGET. Needs the nightly toolchain and cargo-fuzz (see tests/fuzz/run.sh).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= list url headers
fuzz:
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	$(CARGO) clean

# Benchmarks against curl, aria2c and wget2 on a local nginx (see bench/README.md).
include bench/bench.mk
