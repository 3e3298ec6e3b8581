"""Configuration models of robots: are their samples robot states?

For each robot config (``configs/default.yaml``: the Panda's joints, ``configs/ur5e_joints.yaml``: the
UR5e's), train with the config as ``posegen train`` does, then on ``--samples`` samples of the trained model
measure what makes a sample a robot state:

* the share of sampled joints inside the limits, with no rejection (the sampler reports its acceptance);
* FK consistency: the end-effector pose the sampler returns (FK in the model's float32) against float64 FK
  of the same joints (position in m, rotation in degrees, atan2 form), max and median;
* the joint NLL on the config's validation split (exact divergence, rk4 16 steps), beside the uniform
  density on the joint box.

Usage::

    python benchmarks/robot_states.py --out benchmarks/results/full/robot_states.json   # about 3 min, 2 cores
    python benchmarks/robot_states.py --quick --out /tmp/rs.json                          # seconds (pipeline)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Result, set_threads  # noqa: E402

CONFIGS = {"panda": "configs/default.yaml", "ur5e": "configs/ur5e_joints.yaml"}


def run_one(name: str, config: str, steps, n_samples: int, seed: int):
    import posegen as pg
    from posegen.rotations import rotation_angle
    from posegen.cli.datasets import load_splits
    from posegen.cli.train import build_flow
    from posegen.config import load_config

    cfg = load_config(str(REPO / config), [f"train.seed={seed}"] + ([f"train.steps={steps}"] if steps else []))
    splits = load_splits(cfg, ("train", "valid"))
    train_ds, val_ds = splits["train"], splits["valid"]
    flow = build_flow(cfg, train_ds.manifold, 0)
    t = dict(cfg["train"], progress=False)
    t0 = time.perf_counter()  # the same call as posegen train (validation and EMA included)
    res = pg.train(flow, train_ds, cfg["objective"]["name"], val_data=val_ds,
                   objective_options=cfg["objective"]["options"], **t)
    train_s = time.perf_counter() - t0
    flow = res.flow.eval()
    sampler = pg.PoseSampler(flow)
    robot = sampler.robot
    t0 = time.perf_counter()
    out = sampler.sample(n_samples, seed=0)
    sample_s = time.perf_counter() - t0
    q = out["joints"]
    pos64, quat64 = robot.pose(q.double())
    dpos = (out["position"].double() - pos64).norm(dim=-1)
    drot = torch.rad2deg(rotation_angle(out["quat"].double(), quat64))
    with torch.enable_grad():
        lp = flow.log_prob(val_ds.points.to(flow.dtype), method="rk4", steps=16).double()
    M = flow.manifold
    return {"robot": name, "config": config, "manifold": repr(M), "dof": robot.dof, "steps": t["steps"],
            "train_points": len(train_ds), "valid_points": len(val_ds), "train_s": train_s,
            "samples": n_samples, "sample_s": sample_s, "dtype": str(q.dtype).replace("torch.", ""),
            "acceptance_rate": out["acceptance_rate"],
            "inside_limits": float(robot.within_limits(q.double()).float().mean()),
            "fk_position_max_m": float(dpos.max()), "fk_position_median_m": float(dpos.median()),
            "fk_rotation_max_deg": float(drot.max()), "fk_rotation_median_deg": float(drot.median()),
            "valid_nll": float(-lp.mean()), "valid_nll_se": float(lp.std() / math.sqrt(lp.numel())),
            "uniform_nll": float(M.log_volume)}


def markdown_section(d, path: str) -> str:
    """The RESULTS.md table of a results file of this script (called by make_results.py)."""
    m = d.get("machine", {})
    lines = ["## Robot configuration models: are the samples robot states?", "",
             f"`{path}`, from `benchmarks/robot_states.py` (settings of `configs/default.yaml` and "
             f"`configs/ur5e_joints.yaml`, train seed {d['args'].get('seed')}); {m.get('cpu', '?')}, "
             f"{d['args'].get('threads')} thread(s), commit {str(m.get('commit'))[:10]}"
             f"{' (uncommitted changes)' if m.get('dirty') else ''}, {d.get('duration_s', 0) / 60:.1f} min in all.",
             "Joints are sampled inside the limits by construction (no rejection, no clamping); the pose is the "
             "robot's FK of the sampled joints in the model's dtype, compared with float64 FK of the same joints.",
             "",
             "| robot | model | train points | steps | train time | validation NLL (nats) | uniform on the box "
             "| inside limits (acceptance) | FK position max / median | FK rotation max / median |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["results"]:
        lines.append(
            f"| {r['robot']} | I{r['dof']} ({r['dtype']}) | {r['train_points']} | {r['steps']} | {r['train_s']:.0f} s "
            f"| {r['valid_nll']:.2f} +- {r['valid_nll_se']:.2f} | {r['uniform_nll']:.2f} "
            f"| {100 * r['inside_limits']:.1f} % of {r['samples']} ({r['acceptance_rate']:.2f}) "
            f"| {r['fk_position_max_m']:.1e} / {r['fk_position_median_m']:.1e} m "
            f"| {r['fk_rotation_max_deg']:.1e} / {r['fk_rotation_median_deg']:.1e} deg |")
    lines += ["", "For comparison, the previous default modelled the Panda as `R3 x T7 x SO3` (position, wrapped "
              "joint angles and rotation side by side): the FK of its sampled joints was a median 20.9 cm from its "
              "sampled position (robot table above), and its joints needed rejection on the torus."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="50 steps and 200 samples: checks the pipeline only")
    p.add_argument("--robots", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    set_threads(a.threads)
    result = Result("robot_states", vars(a))
    for name in a.robots.split(","):
        if name not in CONFIGS:
            p.error(f"unknown robot {name!r}; choose from {', '.join(CONFIGS)}")
        row = run_one(name, CONFIGS[name], 50 if a.quick else None, 200 if a.quick else 2000, a.seed)
        result.add(row)
        print(f"{name}: NLL {row['valid_nll']:.3f} +- {row['valid_nll_se']:.3f} (uniform {row['uniform_nll']:.2f}); "
              f"inside {100 * row['inside_limits']:.1f} %; FK max {row['fk_position_max_m']:.2e} m "
              f"{row['fk_rotation_max_deg']:.2e} deg; train {row['train_s']:.0f} s", flush=True)
    print(f"wrote {result.write(a.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
