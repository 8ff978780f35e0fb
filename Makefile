# One entry per workflow. `make test` is exactly what CI runs.
.PHONY: run test bench fuzz fmt lint

# Runs the data plane on its embedded defaults (./koru-data, http://127.0.0.1:7878).
run:
	./scripts/run.sh

# Runs every test: formatting, clippy, unit, property, HTTP and crash tests.
test:
	./scripts/test.sh

# Runs the benchmarks and prints the figures (see dataplane/BENCHMARKS.md).
bench:
	./scripts/bench.sh

# Runs each fuzz target for FUZZ_SECONDS (default 60) with cargo-fuzz on nightly.
fuzz:
	./scripts/fuzz.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --all-targets -- -D warnings
