# ArtStore: the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PACKAGES := -e common -e admin-module -e storage-element -e ingester-module -e query-module -e client
PYPROJECTS := common/pyproject.toml admin-module/pyproject.toml storage-element/pyproject.toml \
	ingester-module/pyproject.toml query-module/pyproject.toml client/pyproject.toml
TYPED := common/src admin-module/src storage-element/src ingester-module/src query-module/src client/src \
	tools deploy/compose_init.py

.DEFAULT_GOAL := help
.PHONY: help install dev run test lint format bench docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python constraints.txt $(PYPROJECTS)
	$(BIN)/pip install -q "pip==$$(grep '^pip==' constraints.txt | cut -d= -f3)"
	$(BIN)/pip install -q $(PACKAGES)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## create the virtualenv and install ArtStore

run: $(VENV)/.installed ## start the local cluster (embedded PostgreSQL and Redis unless ARTSTORE_DATABASE_URL / ARTSTORE_REDIS_URL are set)
	$(BIN)/artstore dev up

test: $(VENV)/.installed-dev ## lint, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(TYPED)
	$(BIN)/pytest

lint: $(VENV)/.installed-dev ## ruff and mypy only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(TYPED)

format: $(VENV)/.installed-dev ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev ## run the benchmarks; JSON results go to bench/results/
	$(BIN)/python -m bench

docs: $(VENV)/.installed ## regenerate docs/configuration.md from the settings classes
	$(BIN)/python -m tools.config_reference --write

clean: ## remove the virtualenv and caches (not your data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
