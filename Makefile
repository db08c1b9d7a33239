# ctiswitch — see README.md. `make run` serves with the defaults; `make test` runs everything.
CARGO ?= cargo

.PHONY: run test bench lint fmt deps fuzz build migrate

run:
	$(CARGO) run --release -- serve $(if $(CONFIG),--config $(CONFIG),)

build:
	$(CARGO) build --release

migrate:
	$(CARGO) run --release -- migrate $(if $(CONFIG),--config $(CONFIG),)

test:
	bash scripts/test.sh

deps:
	bash scripts/deps.sh

bench: deps
	bash scripts/bench.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	cd fuzz && $(CARGO) +nightly fuzz run sip_parse -- -max_total_time=$${FUZZ_SECONDS:-300}
