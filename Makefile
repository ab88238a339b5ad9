# Crucible: every target creates the virtual environment it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CRUCIBLE := $(VENV)/bin/crucible
PYTEST := $(PY) -m pytest
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv test test-unit test-integration lint bench synth-browse swe-curate stats report clean help

help:
	@echo "make synth-browse   research questions + search-agent trajectories on the embedded defaults"
	@echo "make swe-curate     SWE task instances + coding-agent trajectories on the embedded defaults"
	@echo "make test           the full suite (unit + integration: Docker, embedded model, Beam, DuckDB)"
	@echo "make test-unit      the fast suite (no Docker, no model)"
	@echo "make lint | bench | stats | report | clean"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip setuptools wheel
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

test-unit: venv
	$(PYTEST) -q -m "not integration" tests

test-integration: venv
	$(PYTEST) -q -m integration tests

test: venv
	$(PYTEST) -q tests

lint: venv
	$(PY) -m ruff check pipelines sandbox tests benchmarks

bench: venv
	$(PY) -m benchmarks

stats: venv
	$(CRUCIBLE) stats

report: venv
	$(CRUCIBLE) report

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
