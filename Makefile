# One-command entry points. Everything installs into .venv; nothing is needed beforehand but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; see README "GPU install" for a CUDA build.
TORCH_PIN ?= torch==2.13.0
DEMO_DIR ?= work_dirs/demo
DEMO_EPOCHS ?= 6

.PHONY: install test test-fast demo lint bench bench-gpu clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e ".[dev,extract]" "$(TORCH_PIN)"
	touch $(STAMP)

test: install
	$(PY) -m pytest

# The unit lane: everything but the tests marked slow (trainings, tools run as subprocesses).
test-fast: install
	$(PY) -m pytest -m "not slow"

demo: install
	$(PY) tools/train_grounding.py --config configs/synthetic.yaml --work-dir $(DEMO_DIR) --overwrite \
		train.epochs=$(DEMO_EPOCHS) train.device=cpu

lint: install
	$(PY) -m ruff check grounding tools tests

bench: install
	$(PY) tools/benchmark.py --device cpu --quick --shapes charades_sta qvhighlights --out work_dirs/bench_cpu.json

# Every model at every benchmark shape on one GPU: training eager and compiled (batch 256), inference
# (batch 1,024) and one-query latency; JSON + a Markdown table (docs/performance.md). Meant to finish in
# under 8 minutes; BENCH_DEVICE=cpu BENCH_ARGS="--tiny --quick --repeats 1 --batch 4" checks it end to end
# on a CPU.
BENCH_DEVICE ?= cuda
BENCH_ARGS ?=
bench-gpu: install
	$(PY) tools/benchmark.py --device $(BENCH_DEVICE) --sections train infer --train-modes eager compiled \
		--out work_dirs/bench_gpu.json --markdown work_dirs/bench_gpu.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
