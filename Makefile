# One entry point for people and CI. `make test` and `make run` install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BARTIZAN := $(VENV)/bin/bartizan

.PHONY: install test run bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

# The main job on the embedded default: scan a batch of example prompts with the built-in policy.
run: install
	$(BARTIZAN) scan --input examples/prompts.jsonl --output - --no-progress || [ $$? -ge 10 ]

bench: install
	$(PY) bench/bench_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist src/*.egg-info

lint: install
	$(PY) -m pip install -q ruff mypy
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy src
