# Flotilla — the two commands of the quick start:
#   make run    set up (venv, packages, database, first admin) and run web + worker on http://127.0.0.1:8000
#   make test   install what the tests need (Python and Debian packages) and run the whole suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the real-process tests drive (browser tests: Chromium; servers tests: the three daemons;
# nginx: the reference for HTTP Range; prometheus: promtool checks docs/prometheus/; ffmpeg: audiobooks). nginx
# is checked by full path: /usr/sbin is not on a user's PATH.
TEST_DEBS := chromium transmission-daemon rtorrent qbittorrent-nox nginx prometheus ffmpeg unzip curl
TEST_BINS := chromium transmission-daemon rtorrent qbittorrent-nox /usr/sbin/nginx promtool ffmpeg ffprobe unzip curl

.PHONY: run test test-fast lint venv venv-test debs-test bench fuzz screenshots clean

run: venv
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py runall

# Each run gets its own Redis namespace, so two runs can share one Redis (see README: Development).
test: venv-test debs-test
	REDIS_KEY_PREFIX=$${REDIS_KEY_PREFIX:-flotilla-test-$$$$} $(BIN)/pytest $(PYTEST_ARGS)

test-fast: venv-test
	REDIS_KEY_PREFIX=$${REDIS_KEY_PREFIX:-flotilla-test-$$$$} $(BIN)/pytest -m "not e2e and not browser" $(PYTEST_ARGS)

lint: venv-test
	$(BIN)/ruff check .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock

venv-test: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.lock

debs-test:
	@missing=""; for b in $(TEST_BINS); do command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages for the tests: $(TEST_DEBS)"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(TEST_DEBS); \
	fi; \
	for b in $(TEST_BINS); do command -v $$b >/dev/null || { echo "missing binary after install: $$b"; exit 1; }; done

bench: venv-test
	$(BIN)/python bench/event_latency.py
	$(BIN)/python bench/jobs_list.py
	$(BIN)/python bench/zip_memory.py
	$(BIN)/python bench/swarm_throughput.py
	$(BIN)/python bench/engine_throughput.py
	$(BIN)/python bench/servers_poll.py
	$(BIN)/python bench/seedr_transfer.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/stream_ttfb.py
	$(BIN)/python bench/stream_throughput.py
	$(BIN)/python bench/stream_concurrency.py

# The suite's schema-driven API fuzz (tests/config/test_api_fuzz.py), longer: FUZZ_EXAMPLES per operation and
# mode (40: 8,615 requests, 0 x 500, 253 x 502 from servers the fuzz invented; 13 min on the loaded 2-core box);
# FUZZ_SEED to explore elsewhere, FUZZ_ONLY="/seedr/" to narrow it.
FUZZ_EXAMPLES ?= 40
fuzz: venv-test
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_COVERAGE_CAP=1000 $(BIN)/pytest tests/config/test_api_fuzz.py -p no:cacheprovider -s -q --timeout 3600 $(PYTEST_ARGS)

# Screenshots of the main pages (desktop and phone, dark; the dashboard in light too) into docs/screenshots/,
# taken by the accessibility walk of the browser tests (real daphne + Chromium, demo data made by the test).
screenshots: venv-test debs-test
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots REDIS_KEY_PREFIX=flotilla-shots-$$$$ $(BIN)/pytest -q -p no:cacheprovider tests/browser/test_accessibility.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
