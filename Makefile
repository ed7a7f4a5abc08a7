# `make demo` and `make test` work on a fresh machine: each creates .venv/ if it is missing.
PY := .venv/bin/python
PYTEST_FLAGS ?= -q

.PHONY: setup demo test test-slow test-all bench tokenizer

setup:
	bash scripts/setup_env.sh

demo: setup
	.venv/bin/reasonrl demo

test: setup
	$(PY) -m pytest $(PYTEST_FLAGS) -m "not slow"

test-slow: setup
	$(PY) -m pytest $(PYTEST_FLAGS) -m slow

test-all: setup
	$(PY) -m pytest $(PYTEST_FLAGS)

bench: setup
	$(PY) experiments/bench_model.py

tokenizer: setup
	$(PY) -m model.build_tokenizer
