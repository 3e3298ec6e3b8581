# Two commands on a fresh machine:  `make demo` (train, sample, plot on the shipped Panda data)  and
# `make test`. Both create .venv on first use. torch is installed first and pinned (TORCH=...) so that pip
# takes the local CPU build instead of resolving a multi-GB CUDA wheel; override it on a GPU machine,
# e.g. `make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
PY     ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.posegen-installed
OUT    ?= runs/default
PYTEST_ARGS ?=

.PHONY: install demo test test-all bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,plot,robots]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/posegen train configs/default.yaml --out $(OUT)
	$(BIN)/posegen sample $(OUT)/model.pt -n 2000 --seed 0 -o $(OUT)/samples.h5
	$(BIN)/posegen eval $(OUT)/model.pt --data data/panda_reach_grasp.hdf5 --config $(OUT)/config.yaml --split valid
	$(BIN)/posegen plot $(OUT)/samples.h5 --data data/panda_reach_grasp.hdf5 --config $(OUT)/config.yaml --out $(OUT)/plots
	@echo "done: model, samples and plots are in $(OUT)/"

# Fast suite (slow and GPU tests are skipped); what CI runs.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

# Everything, slow tests included.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --runslow $(PYTEST_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) runs .pytest_cache
