# One entry per workflow. `make test` is exactly what CI runs.
.PHONY: run run-dataplane test images bench fuzz simulate fmt lint

# Runs KoruDelta Cloud on its embedded defaults (control plane at http://127.0.0.1:8080, ./koru-cloud).
run:
	./scripts/run.sh

# Runs the data plane alone on its embedded defaults (./koru-data, http://127.0.0.1:7878).
run-dataplane:
	./scripts/run-dataplane.sh

# Runs every test: formatting, clippy, unit, property, HTTP and crash tests.
test:
	./scripts/test.sh

# Builds the container images (release binaries) as image archives, without a daemon (images/).
images:
	./scripts/images.sh build

# Runs the benchmarks and prints the figures (see dataplane/BENCHMARKS.md).
bench:
	./scripts/bench.sh

# Runs each fuzz target for FUZZ_SECONDS (default 60) with cargo-fuzz on nightly.
fuzz:
	./scripts/fuzz.sh

# Runs the power-loss simulation for SEEDS seeds per property (default 10000; make test runs a fixed few hundred),
# the Raft journal's power-loss property for SEEDS seeds (make test runs 300)
# and the simulated replicated cluster for RAFT_SEEDS per size (default SEEDS/50; make test runs 20).
simulate:
	./scripts/simulate.sh $(SEEDS)

fmt:
	cargo fmt --all

lint:
	cargo clippy --all-targets -- -D warnings
