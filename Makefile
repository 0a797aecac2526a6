# threadline: the documented entry points.
#   make run    run all four services on this machine (embedded SQLite, watches ~/.claude/projects)
#   make test   the test suite (installs what it needs first)
#   make bench  throughput, live latency and memory on a generated corpus
#   make chaos  kill -9 random services 20 times during an import; the database must not differ
#   make eval   accuracy figures on the real transcripts in ../shared/corpus
#   make lint   ruff
#   make proto  regenerate threadline/v1 from protos/
#   make browser  install Debian's chromium for the web page's browser tests (needs root or sudo)

SHELL := /bin/bash
# uv from PATH, or a private copy installed on first use (no system changes needed).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: run test bench chaos eval lint proto sync clean browser

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

sync: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode

run: sync
	$(RUN) threadline up $(ARGS)

test: sync
	$(RUN) pytest -q $(PYTEST_ARGS)

bench: sync
	$(RUN) python -m bench $(ARGS)

chaos: sync
	$(RUN) python -m bench.chaos $(ARGS)

eval: sync
	$(RUN) python -m evaluation $(ARGS)

lint: sync
	$(RUN) ruff check .

proto: sync
	$(RUN) python -m threadline.codegen

# The browser tests drive /usr/bin/chromium (Playwright's own browser download is not used);
# `make test` skips them, saying why, where it is missing.
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium"; \
	else SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi

clean:
	rm -rf .tools .venv .pytest_cache .ruff_cache
