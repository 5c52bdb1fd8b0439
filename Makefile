# deepsnow: `make demo` runs the offline demo workflow, `make test` the test suite.
# Both create .venv if missing and install everything first.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: install system-deps demo test lint format clean-results help

help:
	@echo "make demo   - install into $(VENV), run the workflow on config.yaml (offline simulator), write results/report.zip"
	@echo "make test   - install, lint the workflow, and run the whole test suite"
	@echo "make lint   - snakemake --lint and snakefmt --check only"
	@echo "make format - reformat the Snakemake files with snakefmt"

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	snakemake --profile profiles/local
	snakemake --profile profiles/local --report results/report.zip

lint: install
	snakemake --lint
	snakefmt --check Snakefile workflow/rules

format: install
	snakefmt Snakefile workflow/rules

# The SLURM tests run a real single-node SLURM: Debian's slurm-wlm and munge (root only;
# tests/test_slurm.py installs them itself too, and skips when not root).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v slurmctld >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge; \
	fi

test: install system-deps lint
	python -m pytest

clean-results:
	rm -rf results/demo results/test .snakemake
