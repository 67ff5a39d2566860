# MentatLab developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install MentatLab with its dev tools

demo: $(STAMP) ## Start the server on the embedded store and drive realistic agent traffic through it
	$(BIN)/mentatctl demo

format: $(STAMP) ## Format the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

lint: $(STAMP) ## Ruff
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP) ## mypy --strict on src/
	$(BIN)/mypy

test: $(STAMP) lint typecheck ## Install, lint, type-check and run every test
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP) ## Run the benchmarks (by hand; results go in bench/RESULTS.md)
	$(BIN)/python bench/run_all.py

.PHONY: help install demo format lint typecheck test bench
