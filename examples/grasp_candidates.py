"""Grasp candidates for a new object position from a conditional posegen grasp model.

A flow on R^3 x SO(3) (TCP position and orientation) conditioned on the object's position is trained
briefly on the last frame of each demo of posegen's reach-and-grasp data (the grasp pose), unless a
checkpoint is given. For an object position not in the data, candidates are drawn, ranked by the model's
log-density (PoseSampler.top_k), converted to SE(3) matrices and printed; then (with ompl-free torch code)
the Panda's IK is solved for them to show which are reachable and collision-free on the table.

Run (from the repository root)::

    python examples/grasp_candidates.py                       # trains ~1-2 min on a 2-core CPU
    python examples/grasp_candidates.py --quick               # seconds
    python examples/grasp_candidates.py --object 0.6 -0.15 0.05 --quat-order wxyz
    python examples/grasp_candidates.py --checkpoint grasp.pt  # reuse a model (--save writes one)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from posegen import PoseFlow
from posegen.data import load_robomimic
from posegen.planning.goals import grasp_goal_configs
from posegen.planning.scene import PandaCollisionChecker, table
from posegen.rotations import se3_from_pos_quat
from posegen.samplers import PoseSampler
from posegen.training import train

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "panda_reach_grasp.hdf5"
KEYS = {"robot0_eef_pos": "R3", "robot0_eef_quat": "SO3"}       # robomimic stores xyzw


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="robomimic HDF5 (robot0_eef_pos/quat, object_pos)")
    ap.add_argument("--checkpoint", help="trained conditional grasp model; trains one when absent")
    ap.add_argument("--save", help="where to save the model trained here")
    ap.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    ap.add_argument("--object", type=float, nargs=3, default=(0.55, 0.12, 0.05), metavar=("X", "Y", "Z"),
                    help="object centre in the robot base frame, metres (default 0.55 0.12 0.05)")
    ap.add_argument("--candidates", type=int, default=256, help="grasps drawn (default 256)")
    ap.add_argument("--k", type=int, default=8, help="grasps kept, most likely first (default 8)")
    ap.add_argument("--quat-order", default="xyzw", choices=["xyzw", "wxyz"], help="order of printed quaternions")
    ap.add_argument("--quick", action="store_true", help="300 training steps, 64 candidates")
    ap.add_argument("--ik", metavar="CHECKPOINT",
                    help="an IKSampler of the Panda (posegen ik train --robot panda): IK starts drawn from it "
                         "instead of around the ready pose")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.candidates = 300, 64
    return args


def grasp_sampler(args) -> PoseSampler:
    solver = {"method": "rk4", "steps": 16}
    if args.checkpoint and Path(args.checkpoint).exists():
        print(f"loading {args.checkpoint}")
        return PoseSampler.from_checkpoint(args.checkpoint, device="cpu", quat_order=args.quat_order, solver=solver)
    path = Path(args.data)
    if not path.exists():
        sys.exit(f"no data at {path}; generate it with\n"
                 f"  python -m posegen.data.generate --out {path} --demos 300 --seed 0\n"
                 f"or pass --data / --checkpoint")
    tr = load_robomimic(path, keys=KEYS, quat_order="xyzw", condition_keys=["object_pos"], frames="last", mask="train")
    va = load_robomimic(path, keys=KEYS, quat_order="xyzw", condition_keys=["object_pos"], frames="last", mask="valid")
    print(f"training a grasp model p(TCP pose | object position) on {len(tr)} grasps ({args.steps} steps, RFM) ...",
          flush=True)
    t0 = time.perf_counter()
    flow = PoseFlow("R3 x SO3", hidden=128, depth=3, cond_dim=3)
    res = train(flow, tr, objective="rfm", steps=args.steps, batch_size=128, val_data=va, progress=False,
                val_every=max(args.steps // 2, 1), log_every=max(args.steps // 4, 1), warmup=min(100, args.steps // 5))
    print(f"  done in {time.perf_counter() - t0:.0f} s, validation NLL {res.best_val_nll:.2f} nats")
    if args.save:
        res.flow.save(args.save)
        print(f"  saved {args.save}")
    res.flow.requires_grad_(False)
    return PoseSampler(res.flow, quat_order=args.quat_order, solver=solver)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)     # small batches: one thread avoids threading overhead on a shared CPU
    torch.manual_seed(0)
    sampler = grasp_sampler(args)
    obj = torch.tensor(args.object, dtype=torch.float64)
    t0 = time.perf_counter()
    best = sampler.top_k(args.candidates, args.k, condition=obj, seed=0)
    # the ranked candidates as SE(3) matrices (PoseSampler.sample_se3 gives unranked ones directly)
    poses = se3_from_pos_quat(best["position"], best["quat"], sampler.quat_order)
    print(f"\n{args.k} most likely of {args.candidates} grasps for an object at {tuple(args.object)} "
          f"({time.perf_counter() - t0:.1f} s; quaternions {sampler.quat_order}):")
    print(f"{'rank':>4s} {'log p':>8s} {'position (m)':>24s} {'quaternion':>32s} {'tilt':>6s} {'offset':>7s}")
    for i in range(args.k):
        p, q, R = best["position"][i], best["quat"][i], poses[i, :3, :3]
        tilt = math.degrees(math.acos(max(-1.0, min(1.0, -float(R[2, 2])))))   # TCP z axis vs straight down
        off = float((p.double()[:2] - obj[:2]).norm())
        print(f"{i + 1:4d} {float(best['log_prob'][i]):8.2f} {str([round(float(v), 3) for v in p]):>24s} "
              f"{str([round(float(v), 3) for v in q]):>32s} {tilt:5.1f}d {off * 100:5.1f}cm")
    print("(tilt: angle between the TCP approach axis and straight down; offset: horizontal distance from the "
          "object centre)")
    print(f"\nSE(3) matrix of the best grasp (TCP in the base frame):\n{poses[0].double().numpy().round(4)}")

    checker = PandaCollisionChecker([table()])
    ik = None
    if args.ik:
        from posegen.samplers import IKSampler

        ik = IKSampler.load(args.ik)
    goals = grasp_goal_configs(sampler, obj, n_candidates=args.candidates, k=args.k, checker=checker, seed=0,
                               ik_sampler=ik)
    how = "learned IK starts (IKSampler)" if ik is not None else "posegen.robots.ik.solve_ik"
    print(f"\nIK ({how}): {goals.n_ik_success}/{args.k} of these grasps reachable, "
          f"{goals.n_valid} collision-free on the table; goal configurations for a planner (rad):")
    for q in goals.q[:3]:
        print("  ", [round(float(v), 3) for v in q])


if __name__ == "__main__":
    main()
