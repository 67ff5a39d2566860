# MentatLab developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
MATRIX_STAMP := .matrix/.ready
MATRIX_INPUTS := scripts/matrix-envs.sh $(wildcard tests/matrix/requirements/*.txt) \
	tests/matrix/js/package.json tests/matrix/js/package-lock.json

OIDC_DIR := tests/oidc/provider
OIDC_STAMP := $(OIDC_DIR)/node_modules/.oidc-stamp

.DEFAULT_GOAL := help

help: ## List the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py src/mentatlab/_columnar.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# bytecode now, as a wheel install does: an editable install compiles on first import,
	# and with PYTHONDONTWRITEBYTECODE set never keeps it (~0.3 s of every server start)
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install MentatLab with its dev tools

$(MATRIX_STAMP): $(STAMP) $(MATRIX_INPUTS)
	scripts/matrix-envs.sh $(BIN)/python
	touch $(MATRIX_STAMP)

matrix-envs: $(MATRIX_STAMP) ## Build the real-client matrix venvs and node_modules (tests/matrix)

$(OIDC_STAMP): $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error
	cat $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json | sha256sum | cut -d' ' -f1 > $@

oidc-provider: $(OIDC_STAMP) ## Install the OIDC provider the sign-in tests run (tests/oidc, npm ci)

demo: $(STAMP) ## Start the server on the embedded store, drive realistic agent traffic through it, keep it running until Ctrl-C (CI=true: exit)
	$(BIN)/mentatctl demo

format: $(STAMP) ## Format the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

lint: $(STAMP) ## Ruff
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP) ## mypy --strict on src/
	$(BIN)/mypy

# Debian's headless Chromium for the browser tests: installed once with apt-get (as root,
# as in CI); Playwright drives it, so nothing downloads a browser.
browser: ## Install Debian's chromium for the browser tests (apt-get, needs root)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then echo "Install it as root: apt-get install chromium" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends chromium || \
	  { apt-get update && apt-get install -y --no-install-recommends chromium; }; }

test: $(STAMP) $(MATRIX_STAMP) $(OIDC_STAMP) browser lint typecheck ## Install, lint, type-check and run every test
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP) ## Run the benchmarks (by hand; results go in bench/RESULTS.md)
	$(BIN)/python bench/run_all.py

.PHONY: help install matrix-envs oidc-provider browser demo format lint typecheck test bench
