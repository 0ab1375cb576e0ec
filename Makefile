# The two commands a fresh machine needs: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins dependencies that clash with Ray's, so it gets its own venv (tests/servestack/render).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
CHECKOV_VERSION := 3.3.30
export KUBERAY_CRDS_DIR ?= $(abspath ../shared/kuberay/crds)
export GATEWAY_API_CRDS_DIR ?= $(abspath ../shared/gateway-api/crds)
export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE := token

.PHONY: serve test lint typecheck pytest model install tools stop status clean bench

# examples/team-app: an app in its own package, registered by entry point (docs/apps.md).
$(STAMP): pyproject.toml examples/team-app/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,backends]'
	$(BIN)/pip install --quiet -e examples/team-app
	touch $(STAMP)

install: $(STAMP)

$(TOOLS_STAMP):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

model: $(STAMP)
	$(BIN)/servestack model build

## Run the local stack on an embedded Ray and print its endpoints.
serve: model
	$(BIN)/servestack serve --stack local

status: $(STAMP)
	$(BIN)/servestack status

stop: $(STAMP)
	$(BIN)/servestack stop

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two pytest runs side by side: the `serial` tests (Ray, servers, timings; tests/conftest.py)
# at normal priority with their output live, the rest at nice 15 into $(REST_LOG), shown
# when both are done. Exit code 5 ("no tests collected") fails either run.
REST_LOG := .pytest-rest.log
pytest: $(STAMP) $(TOOLS_STAMP)
	@nice -n 15 $(BIN)/python -m pytest -m "not serial" > $(REST_LOG) 2>&1 & rest=$$!; \
	$(BIN)/python -m pytest -m serial; serial=$$?; \
	wait $$rest; other=$$?; \
	echo "--- the other tests (nice 15, beside the serial ones):"; cat $(REST_LOG); \
	for rc in $$serial $$other; do \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

## Lint, type-check and run the whole test suite (what CI runs).
test: lint typecheck pytest

## Benchmarks, never part of `make test`: issue 12's goals, then (full mode) every sweep;
## `make bench BENCH_ARGS=--quick` runs the goals only (4.5 min on 2 cores).
bench: model
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache $(REST_LOG)
