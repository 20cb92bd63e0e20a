# One command to set up and run the main job, one to set up and pass the tests (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# pytest-xdist workers for `make test` (0: one process); --dist load measured faster than loadgroup on 1,001 tests
# here (4 min 54 s against 5 min 29 s): spreading the heavy golden modules beats keeping their fixtures on one worker
TEST_JOBS ?= 2

.PHONY: demo test lint typecheck bench validate calibrate-system cpu-check timm-coverage timm-sweep clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.14.1 + torchvision 0.29.1 install from this machine's local wheels (see README)
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	# the core plus every extra (hf, timm, keras, onnx, diffusers, report, notebook): the tests cover them all
	$(BIN)/pip install -q -e ".[dev,all]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/afford assess torchvision:resnet50 --train-samples 100000 --epochs 10 --infer-samples 10000 \
		--batch-size 64 --hardware t4 --budget-usd 20 --deadline 24h --report afford-demo.html --force

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	sh scripts/install-test-deps.sh
	$(BIN)/pytest -n $(TEST_JOBS) --dist load

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# the peers timed by bench/peer_bench.py (pyproject extra `bench`); make test never installs them
$(BENCH_STAMP): $(STAMP) pyproject.toml
	DS_BUILD_OPS=0 $(BIN)/pip install -q -e ".[dev,all,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/trace_bench.py
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/checkpoint_bench.py
	$(BIN)/python bench/reprice_bench.py
	$(BIN)/python bench/diskcache_bench.py
	$(BIN)/python bench/peer_bench.py
	$(BIN)/python bench/timm_sweep_bench.py

validate: $(STAMP)
	$(BIN)/python bench/validate_runs.py
	$(BIN)/python bench/validate_runtime.py
	$(BIN)/python bench/validate_dle_vision.py
	$(BIN)/python bench/validate_dle_train.py

cpu-check: $(STAMP)
	$(BIN)/python bench/cpu_check.py

# Trace every timm.list_models() name (resumable: bench/results/timm_all.jsonl) and write docs/timm_coverage.md;
# hours on 2 cores, so never part of `make test`. TIMM_ARGS passes options (--limit N, --jobs N, --retry-failed).
timm-coverage: $(STAMP)
	$(BIN)/python bench/timm_all.py $(TIMM_ARGS)

timm-sweep: $(STAMP)
	$(BIN)/python bench/timm_sweep_bench.py

calibrate-system: $(STAMP)
	$(BIN)/python bench/calibrate_system.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
