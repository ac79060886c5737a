# Entry points of the README. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARTIFACTS ?= artifacts
TORCH_PIN := torch==2.13.0

.PHONY: venv demo test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# CPU torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
venv: $(BIN)/activate
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[export,test,bench,rtx]'

demo: venv
	$(BIN)/python -m benchmarks.demo --out $(ARTIFACTS)

test: venv
	$(BIN)/python -m pytest -q tests

# The README's performance tables (CPU; minutes on 2 cores).
bench: venv
	$(BIN)/python -m benchmarks.throughput --device cpu --models stam_16,stam_64 --backends torch,onnxruntime \
		--precision fp32,bf16,int8 --batch 1 --iters 2 --warmup 1 --onnx-dir $(ARTIFACTS)/bench
	$(BIN)/python -m benchmarks.pipeline --model $(ARTIFACTS)/bench/stam_16.fp32.onnx --json benchmarks/results/pipeline_cpu.json

clean:
	rm -rf $(VENV) $(ARTIFACTS) .pytest_cache *.egg-info
