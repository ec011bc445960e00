# The two commands README promises, plus the benchmarks. Everything installs into .venv from scratch.
VENV ?= .venv
PY := $(VENV)/bin/python
DATASET ?= .codedouble/dataset
DOUBLE ?= .codedouble/double
MINUTES ?= 3

.PHONY: demo test lint format bench base

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[test,bench]'
	touch $@

# The main job on the embedded default: mine this repository's own history, train a double of it, and
# score it against the baselines on the newest commits, which training never saw.
demo: $(VENV)/.installed
	$(VENV)/bin/codedouble mine . --out $(DATASET) --all-authors
	$(VENV)/bin/codedouble train $(DATASET) --out $(DOUBLE) --minutes $(MINUTES)
	$(VENV)/bin/codedouble eval $(DOUBLE)

# The VS Code extension's node modules, exactly as package-lock.json pins them (tests/test_vscode.py needs them).
editors/vscode/node_modules/.installed: editors/vscode/package.json editors/vscode/package-lock.json
	cd editors/vscode && npm ci --no-audit --no-fund
	touch $@

# The formatter and the linter first: the tree is clean under both, or the tests do not run.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint editors/vscode/node_modules/.installed
	$(VENV)/bin/pytest -q -n auto

bench: $(VENV)/.installed
	$(PY) benchmarks/mine_bench.py .
	$(PY) benchmarks/train_bench.py

# Rebuild the shipped base (trainer/base/weights/): the corpus from this venv's permissively licensed code
# (plus Debian's Go and Rust sources: apt-get install golang-src rust-src), then pretraining. Hours on CPU;
# README's "The pretrained base" gives the exact run behind the shipped weights.
BASE_CORPUS ?= .codedouble/base-corpus
BASE_SIZE ?= tiny
BASE_MINUTES ?= 85
base: $(VENV)/.installed
	$(VENV)/bin/codedouble base corpus --out $(BASE_CORPUS) --exclude rich --debian golang-1.19-src --debian rust-src \
		--node-modules editors/vscode/node_modules
	$(VENV)/bin/codedouble base train $(BASE_CORPUS) --out trainer/base/weights --size $(BASE_SIZE) --minutes $(BASE_MINUTES)
