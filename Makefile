# Entry points of the README and the docs. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARTIFACTS ?= artifacts
SITE ?= site
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
TORCH_PIN := torch==2.13.0
# PyTorch's own CPU wheel index, for machines whose package index serves only the CUDA build:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# pytest-xdist workers for `make test` (the CI machine has 2 cores); 0 runs the suite in one process.
TEST_JOBS ?= 2

.PHONY: venv demo test test-fast lint soak docs bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# CPU torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
venv: $(BIN)/activate
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[export,test,bench,rtx,openvino,ray,serve,docs,lint]'

demo: venv
	$(BIN)/python -m benchmarks.demo --out $(ARTIFACTS)

# A file's tests stay on one worker; the shared test artifacts are built once (tests/conftest.py).
# Then the docs site, strictly, from the tables the results files render (the README is not touched).
test: venv lint
	$(BIN)/python -m pytest -q tests -m "not soak" -n $(TEST_JOBS) --dist loadfile
	$(BIN)/python -m pytest -q tests -m soak
	$(BIN)/python -m benchmarks.docs_tables --no-readme
	$(MKDOCS) build --strict --quiet -d $(SITE)

# One minute of stam-serve under a hostile mix (benchmarks.serve --soak), checked: every request
# answered as its kind must be, no descriptor, thread or memory growth. Part of `test`, where it runs
# after the other tests and alone: a server starved of CPU is not what it measures (docs/limits.md).
soak: venv
	$(BIN)/python -m pytest -q tests/serve/test_soak.py -m soak

# ruff (lint and format) and mypy (strict on runtime/), configured in pyproject.toml.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The docs' tables (docs/generated/) and the README's headline numbers from benchmarks/results/*.json,
# then the site into site/. --strict: a broken link, a missing page or a bad API reference is an error.
docs: venv
	$(BIN)/python -m benchmarks.docs_tables
	$(MKDOCS) build --strict --quiet -d $(SITE)
	@echo "docs: $(SITE)/index.html"

# The edit loop: everything but the tests marked slow (full-size models, end-to-end accuracy runs) and extras
# (pip installs of pairs of extras into fresh venvs).
test-fast: venv
	$(BIN)/python -m pytest -q tests -m "not slow and not extras" -n $(TEST_JOBS) --dist loadfile

# The performance page's CPU tables (many minutes on 2 cores), published into benchmarks/results/.
bench: venv
	$(BIN)/python -m benchmarks.throughput --device cpu --models stam_16 \
		--pairs torch:fp32,onnxruntime:fp32,openvino:fp32,onnxruntime:int8,openvino:int8,openvino:bf16 \
		--batch 1 --iters 3 --warmup 1 --interleave --onnx-dir $(ARTIFACTS)/bench --out benchmarks/results
	$(BIN)/python -m benchmarks.pipeline --model $(ARTIFACTS)/bench/stam_16.fp32.onnx --backend openvino \
		--clips 340p --methods ours-slice reference --repeats 3 --workers 1,2 --videos 4 \
		--clip-dir $(ARTIFACTS)/bench/clips --json benchmarks/results/pipeline_cpu_openvino.json

clean:
	rm -rf $(VENV) $(ARTIFACTS) $(SITE) docs/generated .pytest_cache *.egg-info
