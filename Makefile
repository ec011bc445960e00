# The two commands README promises, plus the benchmarks. Everything installs into .venv from scratch.
VENV ?= .venv
PY := $(VENV)/bin/python
DATASET ?= .codedouble/dataset
DOUBLE ?= .codedouble/double
MINUTES ?= 3

.PHONY: demo test lint format llama-cpp bench fuzz-bench base rehearsal-pack base-gpu-prepare base-gpu-rehearsal base-gpu-unpack

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

# llama.cpp's own server and GGUF converters, for the end-to-end test against a real engine
# (tests/test_llama_cpp.py): built once into .codedouble/llama.cpp from the source pinned in scripts/llama_cpp.txt,
# about 4 minutes on 2 cores. Without cmake or a C++ compiler it says so and the test skips (under CI it fails).
llama-cpp: $(VENV)/.installed
	PY=$(PY) scripts/llama_cpp.sh .codedouble/llama.cpp

test: lint editors/vscode/node_modules/.installed llama-cpp
	$(VENV)/bin/pytest -q -n auto

bench: $(VENV)/.installed
	$(PY) benchmarks/mine_bench.py .
	$(PY) benchmarks/train_bench.py

# The server fuzzed (benchmarks/fuzz_server.py): SEQUENCES seeded sequences against the tests' tiny double, one
# JSON line each in FUZZ_LOG; run it again to continue where it stopped.
SEQUENCES ?= 10000
FUZZ_LOG ?= .codedouble/fuzz.jsonl
fuzz-bench: $(VENV)/.installed
	mkdir -p $(dir $(FUZZ_LOG))
	nice -n 10 $(PY) benchmarks/fuzz_server.py --sequences $(SEQUENCES) --log $(FUZZ_LOG) --resume

# A base pretrained on this machine's CPU: the corpus from this venv's permissively licensed code (plus Debian's
# Go and Rust sources: apt-get install golang-1.19-src rust-src), then pretraining. Hours on CPU, and far too
# few tokens for a Llama size, so it goes to BASE_OUT, not over the shipped base (trainer/base/weights/, from
# the GPU run below; README's "The pretrained base" gives its exact run). Try it with `codedouble train --base`.
BASE_CORPUS ?= .codedouble/base-corpus
BASE_OUT ?= .codedouble/base-cpu
BASE_SIZE ?= llama-16m
BASE_MINUTES ?= 85
base: $(VENV)/.installed
	$(VENV)/bin/codedouble base corpus --out $(BASE_CORPUS) --exclude rich --debian golang-1.19-src --debian rust-src \
		--node-modules editors/vscode/node_modules
	$(VENV)/bin/codedouble base train $(BASE_CORPUS) --out $(BASE_OUT) --size $(BASE_SIZE) --minutes $(BASE_MINUTES)

# The rehearsal pack that ships with the base (trainer/base/rehearsal/, README "Rehearsal in the base's other
# languages"): a seeded 0.5 MB of each of its corpus's Go, Rust, JavaScript and TypeScript, never a file the base
# held out, with each source's licence files. Needs the same Debian packages and the VS Code client's node_modules.
rehearsal-pack: $(VENV)/.installed editors/vscode/node_modules/.installed
	$(VENV)/bin/codedouble base rehearsal-pack --out trainer/base/rehearsal --debian golang-1.19-src \
		--debian rust-src --node-modules editors/vscode/node_modules

# The base's pretraining on a lent GPU machine (README "Pretraining on a lent GPU"), in three steps:
# 1. here: the wheels the machine lacks (.whl/) and the Go/Rust/JS corpus packed (.gpu/); prints the command.
base-gpu-prepare: $(VENV)/.installed editors/vscode/node_modules/.installed
	$(PY) scripts/base_gpu_prepare.py
# 2. there: the device tool runs `python3 scripts/base_gpu.py --out $$OUT` with carry [".whl", ".gpu"].
#    Rehearse the same script here first, at toy scale on the CPU (minutes):
REHEARSAL ?= .codedouble/base-gpu-rehearsal
base-gpu-rehearsal: $(VENV)/.installed
	rm -rf $(REHEARSAL)/out $(REHEARSAL)/work
	$(PY) scripts/base_gpu_prepare.py --local-wheels $(REHEARSAL)/whl
	$(PY) scripts/base_gpu.py --out $(REHEARSAL)/out --work $(REHEARSAL)/work --device cpu --size llama-toy \
		--wheels $(REHEARSAL)/whl \
		--steps 20 --corpus-args "--no-stdlib --exclude rich --max-source-mb 0.2" \
		--train-args "--batch-size 8 --block-size 128 --vocab-size 1024 --eval-every 10 --eval-batches 2 --warmup-steps 5"
# 3. here: join the pieces that came back (FROM: the run's files_at folder) into .codedouble/base-gpu/base.
base-gpu-unpack: $(VENV)/.installed
	$(PY) scripts/base_gpu_unpack.py $(FROM) --to .codedouble/base-gpu
