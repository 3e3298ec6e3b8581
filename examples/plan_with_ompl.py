"""Plan Panda motions with OMPL, sampling from posegen's learned joint distribution vs uniformly.

The scene (posegen.planning.scene.tabletop_scene): a table, two open bins and an overhead shelf. Each query
moves the hand from a top grasp inside the left bin to a top grasp inside the right bin, so the planner has
to find the narrow, near-vertical passages out of one bin and into the other. The learned sampler is a flow
on the torus T^7 trained (briefly, here) on the joint angles of posegen's reach-and-grasp demos; those demos
reach objects on the table from above, so their configurations concentrate where such passages are.

Compared on the same queries and OMPL seeds, with PRM (the planner family whose samples Python can replace
in ompl 2.0.1, see posegen.planning.ompl):

* ``OMPL uniform``      -- OMPL's own UniformValidStateSampler (one validity check per drawn state),
* ``uniform (batched)`` -- uniform within the joint limits, drawn and collision-checked in batches of 128
                           (the same machinery as the learned sampler: isolates the distribution's effect),
* ``posegen``           -- learned samples mixed with a uniform share (20 % and 50 % by default; the
                           uniform share keeps probabilistic completeness),

plus RRT-Connect with OMPL's uniform sampler as a reference (a strong single-query planner; its tree
samples cannot be replaced through ompl's Python bindings).

Run (from the repository root)::

    python examples/plan_with_ompl.py             # a few minutes on a 2-core CPU
    python examples/plan_with_ompl.py --quick     # seconds: fewer training steps, queries and seeds
    python examples/plan_with_ompl.py --checkpoint joints.pt    # reuse a trained model (--save writes one)

Needs ``pip install posegen[planning]`` (the ``ompl`` wheel). Times include every Python callback (the
collision checker runs in torch) and, for posegen, the model's batched draws. PRM checks for a solution in
a second thread, so its times vary between runs even with the same seeds; compare the rows of one run, and
look at the collision checks too (a machine-independent cost).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from posegen import PoseFlow
from posegen.data import load_robomimic, panda
from posegen.planning import BINS, PandaCollisionChecker, PosegenSamplerAllocator, plan, require_ompl, tabletop_scene
from posegen.rotations import rotmat_to_quat
from posegen.sampler import PoseSampler
from posegen.training import train

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "panda_reach_grasp.hdf5"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="robomimic HDF5 with obs/robot0_joint_pos")
    ap.add_argument("--checkpoint", help="trained T7 joint model (PoseFlow.save); trains one when absent")
    ap.add_argument("--save", help="where to save the model trained here")
    ap.add_argument("--steps", type=int, default=800, help="training steps (default 800)")
    ap.add_argument("--queries", type=int, default=6, help="start/goal queries (default 6)")
    ap.add_argument("--seeds", type=int, default=2, help="OMPL seeds per query (default 2)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per query (default 10)")
    ap.add_argument("--uniform-fraction", type=float, nargs="+", default=[0.2, 0.5],
                    help="uniform share(s) of the posegen sampler, one row each (default 0.2 0.5)")
    ap.add_argument("--batch-size", type=int, default=128, help="posegen draws per model call (default 128)")
    ap.add_argument("--planner", default="PRM", choices=["PRM", "PRMstar"], help="roadmap planner (default PRM)")
    ap.add_argument("--no-rrtconnect", action="store_true", help="skip the RRT-Connect reference rows")
    ap.add_argument("--quick", action="store_true", help="150 training steps, 2 queries, 1 seed, 3 s limit")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.queries, args.seeds, args.time_limit = 150, 2, 1, 3.0
    return args


def joint_sampler(args) -> PoseSampler:
    solver = {"method": "rk4", "steps": 8}      # a planner needs many cheap draws, not exact ones
    if args.checkpoint and Path(args.checkpoint).exists():
        print(f"loading {args.checkpoint}")
        return PoseSampler.from_checkpoint(args.checkpoint, device="cpu", joint_limits="panda", solver=solver)
    path = Path(args.data)
    if not path.exists():
        sys.exit(f"no data at {path}; generate it with\n"
                 f"  python -m posegen.data.generate --out {path} --demos 300 --seed 0\n"
                 f"or pass --data / --checkpoint")
    keys = {"robot0_joint_pos": "T7"}                  # raw angles; load_robomimic wraps them to [-pi, pi)
    tr = load_robomimic(path, keys=keys, frames=2, mask="train")
    va = load_robomimic(path, keys=keys, frames=5, mask="valid")
    print(f"training a T7 joint model on {len(tr)} configurations ({args.steps} steps, RFM) ...", flush=True)
    t0 = time.perf_counter()
    flow = PoseFlow("T7", hidden=128, depth=3)
    res = train(flow, tr, objective="rfm", steps=args.steps, batch_size=256, val_data=va, progress=False,
                val_every=max(args.steps // 2, 1), log_every=max(args.steps // 4, 1), warmup=min(100, args.steps // 5))
    print(f"  done in {time.perf_counter() - t0:.0f} s, validation NLL {res.best_val_nll:.2f} nats "
          f"(uniform on T7: {7 * math.log(2 * math.pi):.2f})")
    if args.save:
        res.flow.save(args.save)
        print(f"  saved {args.save}")
    res.flow.requires_grad_(False)
    return PoseSampler(res.flow, joint_limits="panda", solver=solver)


def bin_grasps(checker, center, n, rng) -> torch.Tensor:
    """Valid top-grasp configurations for objects at random spots and yaws inside the bin at ``center``."""
    xy = np.asarray(center) + rng.uniform(-0.03, 0.03, (n, 2))
    yaw = rng.uniform(-math.pi / 2, math.pi / 2, n)
    z = rng.uniform(0.03, 0.08, n)
    c, s, o, i = np.cos(yaw), np.sin(yaw), np.zeros(n), np.ones(n)
    Rz = torch.tensor(np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2))
    R = Rz @ torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))    # TCP z axis down
    q, ok, _, _ = panda.ik(torch.tensor(np.c_[xy, z]), rotmat_to_quat(R), panda.Q_READY.expand(n, 7),
                           iters=300, damping=0.02)
    return q[ok & checker.is_valid(q)]


def run(args):
    # small batches everywhere (the planners check one configuration or one motion at a time, training
    # batches are 256 x 7): one thread avoids threading overhead and is faster on a shared 2-core machine
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sampler = joint_sampler(args)
    checker = PandaCollisionChecker(tabletop_scene())
    rng = np.random.default_rng(0)
    starts = bin_grasps(checker, BINS[0], 4 * args.queries, rng)[: args.queries]
    goals = bin_grasps(checker, BINS[1], 4 * args.queries, rng)[: args.queries]
    queries = list(zip(starts, goals))
    print(f"{len(queries)} queries (left bin -> right bin) x {args.seeds} seeds, {args.time_limit:g} s limit, "
          f"planner {args.planner}")

    draw = sampler.sample(2000, seed=0)
    u = panda.JOINT_LIMITS[:, 0] + (panda.JOINT_LIMITS[:, 1] - panda.JOINT_LIMITS[:, 0]) * torch.rand(
        2000, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    print(f"posegen: {draw['acceptance_rate']:.0%} of raw samples inside the joint limits; collision-free in "
          f"this scene: posegen {checker.is_valid(draw['joints']).double().mean():.0%}, "
          f"uniform {checker.is_valid(u).double().mean():.0%}")

    methods = [
        ("OMPL uniform", args.planner, lambda seed: None),
        ("uniform (batched)", args.planner,
         lambda seed: PosegenSamplerAllocator(source="uniform", uniform_fraction=0.0, checker=checker, seed=seed,
                                              batch_size=args.batch_size)),
    ]
    for uf in args.uniform_fraction:
        methods.append((f"posegen ({1 - uf:.0%} learned)", args.planner,
                        lambda seed, uf=uf: PosegenSamplerAllocator(sampler, uniform_fraction=uf, checker=checker,
                                                                    seed=seed, batch_size=args.batch_size)))
    if not args.no_rrtconnect:
        methods.append(("OMPL uniform (reference)", "RRTConnect", lambda seed: None))
    rows = []
    for name, planner, make in methods:
        times, ok, checks = [], [], []
        for qi, (a, b) in enumerate(queries):
            for seed in range(args.seeds):
                r = plan(checker, a, b, planner=planner, sampler=make(1000 * qi + seed), time_limit=args.time_limit,
                         seed=1000 * qi + seed)
                ok.append(r.solved)
                times.append(r.time_s if r.solved else args.time_limit)    # failures count as the limit
                checks.append(r.checks)
        rows.append((planner, name, np.mean(ok), np.median(times), np.mean(times), np.median(checks)))
        print(f"  {planner:10s} {name:24s} done", flush=True)
    print()
    head = f"{'planner':10s} {'sampler':26s} {'success':>8s} {'median s':>9s} {'mean s':>8s} {'median checks':>14s}"
    print(head)
    print("-" * len(head))
    for planner, name, succ, med, mean, chk in rows:
        print(f"{planner:10s} {name:26s} {succ:8.0%} {med:9.2f} {mean:8.2f} {chk:14.0f}")
    print("(time: wall seconds per query, unsolved queries counted at the limit; checks: configurations "
          "collision-checked)")


def main(argv=None):
    args = parse_args(argv)
    try:
        require_ompl()
    except ImportError as e:
        sys.exit(str(e))
    from ompl import util as ou

    ou.setLogLevel(ou.LogLevel.LOG_WARN)
    run(args)
    gc.collect()     # free OMPL objects before interpreter shutdown (nanobind otherwise reports them)


if __name__ == "__main__":
    main()
