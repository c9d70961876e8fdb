# Everything the project needs on a fresh Debian machine is installed from here.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
APT    := DEBIAN_FRONTEND=noninteractive apt-get
# Debian packages: iproute2 gives `ss` (the tool needs it); tshark and tcpdump are the
# independent witnesses the tests compare our capture and replay against; tmux drives
# the workshop stepper in a real terminal.
TOOL_DEBS := iproute2
# nftables: `close --mode vanish*` drops a "powered-off" host's traffic with nft rules.
NFT_DEBS := nftables
TEST_DEBS := tshark tcpdump tmux
# The HTML and SVG exports' tests: chromium and its driver load the pages as a user
# would (Selenium drives them), rsvg-convert renders an SVG ladder to PNG.
PAGE_DEBS := chromium chromium-driver librsvg2-bin fonts-dejavu-core

.PHONY: setup test-deps run test bench fuzz clean

setup: $(STAMP)
	@command -v ss >/dev/null || { $(APT) update -qq && $(APT) install -y -qq $(TOOL_DEBS); }
	@command -v nft >/dev/null || { $(APT) update -qq && $(APT) install -y -qq $(NFT_DEBS); }

# The engine (engine/, Rust) is built into the package by maturin, in release mode, as
# tcptrace._engine: editing a .rs file rebuilds it on the next make.
ENGINE := engine/Cargo.toml $(wildcard engine/src/*.rs)
ENGINE += $(wildcard engine/src/*/*.rs)
CARGO  := cargo --quiet

$(STAMP): pyproject.toml $(ENGINE)
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test-deps: setup
	@missing=""; for c in tshark tcpdump tmux nft; do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then $(APT) update -qq && $(APT) install -y -qq $(TEST_DEBS) >/dev/null; fi
	@missing=""; for c in chromium chromedriver rsvg-convert; do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then $(APT) update -qq && $(APT) install -y -qq $(PAGE_DEBS) >/dev/null; fi

run: setup
	$(VENV)/bin/tcptrace close --mode end

# Lints first (ruff, mypy; cargo fmt and clippy), then the Rust tests, then every Python
# test.
test: test-deps
	$(VENV)/bin/ruff check tcptrace tests
	$(VENV)/bin/mypy
	cd engine && $(CARGO) fmt --check
	cd engine && $(CARGO) clippy --all-targets --all-features -- -D warnings
	cd engine && $(CARGO) test
	$(PY) -m pytest -q

# The peers the benchmark compares against: tshark (test-deps) and the classic tcptrace,
# which installs a binary of the same name as ours into /usr/bin.
bench: test-deps
	@[ -x /usr/bin/tcptrace ] || { $(APT) update -qq && $(APT) install -y -qq tcptrace >/dev/null; }
	$(PY) -m tcptrace.bench

# Coverage-guided fuzzing of the engine (engine/fuzz: cargo-fuzz, libFuzzer), one target
# after another, FUZZ_SECONDS each; a crash is written to engine/fuzz/artifacts/ (see
# engine/fuzz/README.md). RUSTC_BOOTSTRAP lets cargo-fuzz use its nightly flags on the
# stable toolchain; the address sanitizer is off: the crate forbids unsafe code.
FUZZ_SECONDS ?= 120
FUZZ := cd engine/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	cd engine/fuzz && python3 seed.py
	$(FUZZ) capture  corpus/capture  -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10
	$(FUZZ) segments corpus/segments -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10
	$(FUZZ) decode   corpus/decode   -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10

clean:
	rm -rf $(VENV) .pytest_cache engine/target tcptrace/_engine*.so
