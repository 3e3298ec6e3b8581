"""How posegen's CNFM defaults (schedule sigma_min, residual weighting) were chosen.

Trains CNFM variants and RFM at one equal budget and prints one JSON line per run:
  earth volcano (S2, split seed 0): width 128, depth 3, batch 256, lr 2e-3, 1500 steps -> test NLL (rk4 32)
  Panda joints (T7, data/panda_reach_grasp.hdf5 every 4th frame, mask train/valid): width 128, depth 3,
  batch 128, lr 2e-3, 800 steps -> validation NLL (rk4 8, 512 points)
The lines in results/cnfm_defaults.jsonl came from this code (run by hand on the 2-core development
machine, one torch thread per process, while other jobs shared it), 2026-11-23.

    python benchmarks/cnfm_defaults.py volcano > benchmarks/results/cnfm_defaults.jsonl
    python benchmarks/cnfm_defaults.py t7 >> benchmarks/results/cnfm_defaults.jsonl
    python benchmarks/cnfm_defaults.py t7 cnfm_s05_w cnfm_default >> benchmarks/results/cnfm_defaults_endpoint.jsonl
"""

from __future__ import annotations

import json
import sys
import time

import torch

import posegen as pg
from posegen.data import earth_splits, load_robomimic

# The variants before the data-chosen end point pin time_sampling="uniform" (the default until then), so each
# name still means the run recorded under it; "cnfm_default" is whatever CNFM() does now (end point chosen
# from the data, late times) and "cnfm_s05_w" the former default.
_UNIFORM = {"time_sampling": "uniform"}
VARIANTS = {
    "rfm": ("rfm", {}),
    "cnfm_s01": ("cnfm", {"schedule": {"sigma_min": 0.01}, "weighting": "none", **_UNIFORM}),
    "cnfm_s01_cosine": ("cnfm", {"schedule": {"kind": "cosine", "sigma_min": 0.01}, "weighting": "none", **_UNIFORM}),
    "cnfm_s01_l1": ("cnfm", {"schedule": {"sigma_min": 0.01}, "weighting": "none", "l": 1, **_UNIFORM}),
    "cnfm_s05": ("cnfm", {"schedule": {"sigma_min": 0.05}, "weighting": "none", **_UNIFORM}),
    "cnfm_s01_w": ("cnfm", {"schedule": {"sigma_min": 0.01}, "weighting": "sigma", **_UNIFORM}),
    "cnfm_s05_w": ("cnfm", {"schedule": {"sigma_min": 0.05}, "weighting": "sigma", **_UNIFORM}),
    "cnfm_s1_w": ("cnfm", {"schedule": {"sigma_min": 0.1}, "weighting": "sigma", **_UNIFORM}),
    "cnfm_auto_uniform": ("cnfm", dict(_UNIFORM)),
    "cnfm_default": ("cnfm", {}),
}


def volcano(name, objective, options):
    tr, va, te = earth_splits("volcano", 0)
    torch.manual_seed(0)
    flow = pg.PoseFlow("S2", hidden=128, depth=3)
    t0 = time.time()
    res = pg.train(flow, tr, objective, steps=1500, batch_size=256, lr=2e-3, val_data=va, val_every=500,
                   progress=False, objective_options=options, val_solver={"method": "rk4", "steps": 16},
                   ema_decay=0.99)
    seconds = time.time() - t0
    test = float(-res.flow.log_prob(te.points, steps=32).mean())
    return {"task": "volcano", "name": name, "objective": objective, "options": options,
            "val_nll": res.best_val_nll, "test_nll": test, "train_s": seconds}


def t7(name, objective, options):
    keys = {"robot0_joint_pos": "T7"}
    tr = load_robomimic("data/panda_reach_grasp.hdf5", keys=keys, mask="train", frames=4)
    va = load_robomimic("data/panda_reach_grasp.hdf5", keys=keys, mask="valid", frames=4)
    torch.manual_seed(0)
    flow = pg.PoseFlow("T7", hidden=128, depth=3)
    t0 = time.time()
    res = pg.train(flow, tr, objective, steps=800, batch_size=128, lr=2e-3, val_data=va, val_every=400,
                   progress=False, objective_options=options, val_solver={"method": "rk4", "steps": 8},
                   val_points=512, ema_decay=0.99)
    return {"task": "t7", "name": name, "objective": objective, "options": options,
            "val_nll": res.best_val_nll, "train_s": time.time() - t0}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("volcano", "t7"):
        raise SystemExit("usage: cnfm_defaults.py volcano|t7 [variant ...]")
    task = {"volcano": volcano, "t7": t7}[argv[0]]
    torch.set_num_threads(1)
    for name in argv[1:] or list(VARIANTS):
        objective, options = VARIANTS[name]
        print(json.dumps(task(name, objective, options)), flush=True)


if __name__ == "__main__":
    main()
