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

.PHONY: install demo test test-all bench-quick grasp-plan clean

# The extras: test tools, plots, robots (pytorch-kinematics, MuJoCo, trimesh), planning (OMPL's wheel, a few
# seconds) and grasps (CoACD, manifold3d, rtree), so that `make test` runs the planning and grasp tests too.
EXTRAS ?= test,plot,robots,planning,grasps

$(STAMP): pyproject.toml
	@echo "posegen: creating $(VENV) and installing torch ($(TORCH)), then posegen[$(EXTRAS)]: about a minute on first use"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "posegen: installing $(TORCH) ..."
	$(BIN)/python -m pip install -q "$(TORCH)"
	@echo "posegen: installing posegen[$(EXTRAS)] (editable) ..."
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@echo "posegen: installed into $(VENV)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/posegen train configs/default.yaml --out $(OUT)
	$(BIN)/posegen sample $(OUT)/model.pt -n 2000 --seed 0 -o $(OUT)/samples.h5
	$(BIN)/posegen eval $(OUT)/model.pt --data data/panda_reach_grasp.hdf5 --config $(OUT)/config.yaml --split valid
	$(BIN)/posegen plot $(OUT)/samples.h5 --data data/panda_reach_grasp.hdf5 --config $(OUT)/config.yaml --out $(OUT)/plots
	@echo "done: model, samples and plots are in $(OUT)/"

# Fast suite (slow and GPU tests are skipped, each skip's reason summarised at the end: pytest -ra); what CI runs.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -ra $(PYTEST_ARGS)

# Everything, slow tests included.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --runslow $(PYTEST_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

# Grasp -> reach -> plan (examples/grasp_and_plan.py): ROBOT=panda|iiwa14|ur5e, OBJECT=mesh file (default a mug).
ROBOT  ?= panda
grasp-plan: $(STAMP)
	$(BIN)/python examples/grasp_and_plan.py --robot $(ROBOT) $(if $(OBJECT),--object $(OBJECT))

clean:
	rm -rf $(VENV) runs .pytest_cache
