"""Plan robot motions with OMPL, sampling from posegen's learned joint distribution vs uniformly.

The robot is ``--robot`` (``panda``, the default, or ``ur5e``; any built-in robot with a collision table). The
scene (posegen.planning.scene.tabletop_scene): a table, two open bins and an overhead shelf. Each query
moves the end effector from a top grasp inside the left bin to a top grasp inside the right bin, so the
planner has to find the narrow, near-vertical passages out of one bin and into the other. Collisions (with the
scene and the robot's own links) come from posegen.robots.collision; goals from posegen.robots.ik.solve_ik.
The learned sampler is a flow on the robot's joint box (``PoseFlow(robot.manifold, robot=robot)``: joints
inside the limits by construction) trained (briefly, here) on the robot's demos: for the Panda posegen's
reach-and-grasp demos (``data/panda_reach_grasp.hdf5``: objects on the table reached from above, so their
configurations concentrate where such passages are), for the UR5e its reach demos
(``data/ur5e_reach.hdf5``: random reachable goals around the home pose, a much less task-shaped density).

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
    python examples/plan_with_ompl.py --robot ur5e
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
from posegen.data import load_robomimic
from posegen.planning import BINS, CollisionChecker, PosegenSamplerAllocator, plan, require_ompl, tabletop_scene
from posegen.robots import load
from posegen.robots.collision import ready_configuration
from posegen.robots.ik import solve_ik
from posegen.rotations import rotmat_to_quat
from posegen.samplers import PoseSampler
from posegen.training import train

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_DATA = {"panda": DATA / "panda_reach_grasp.hdf5", "ur5e": DATA / "ur5e_reach.hdf5"}
GENERATE = {"panda": "python -m posegen.data.generate --out {path} --demos 300 --seed 0",
            "ur5e": "posegen data generate --robot ur5e --out {path}"}
# height of the end-effector frame above the bin floor for a top grasp: the Panda's TCP sits between the
# fingertips; the UR5e has no tool and a wrist 15 cm wide, so its flange stays above the bin walls (0.2 m)
GRASP_Z = {"panda": (0.03, 0.08), "ur5e": (0.18, 0.23)}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--robot", default="panda", choices=sorted(DEFAULT_DATA), help="robot (default panda)")
    ap.add_argument("--data", help="robomimic HDF5 with obs/robot0_joint_pos (default data/<robot>_*.hdf5)")
    ap.add_argument("--checkpoint", help="trained joint model (PoseFlow.save); trains one when absent")
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
    if args.data is None:
        args.data = str(DEFAULT_DATA[args.robot])
    return args


def joint_sampler(args, robot) -> PoseSampler:
    solver = {"method": "rk4", "steps": 8}      # a planner needs many cheap draws, not exact ones
    if args.checkpoint and Path(args.checkpoint).exists():
        print(f"loading {args.checkpoint}")
        return PoseSampler.from_checkpoint(args.checkpoint, device="cpu", robot=robot, solver=solver)
    path = Path(args.data)
    if not path.exists():
        sys.exit(f"no data at {path}; generate it with\n  {GENERATE[args.robot].format(path=path)}\n"
                 f"or pass --data / --checkpoint")
    keys = {"robot0_joint_pos": f"I{robot.dof}"}      # joints as recorded, inside the robot's limits
    tr = load_robomimic(path, keys=keys, frames=2, mask="train", robot=robot)
    va = load_robomimic(path, keys=keys, frames=5, mask="valid", robot=robot)
    lim = robot.joint_limits
    print(f"training a joint model of the {robot.name} (I{robot.dof}) on {len(tr)} configurations "
          f"({args.steps} steps, RFM) ...", flush=True)
    t0 = time.perf_counter()
    flow = PoseFlow(robot.manifold, hidden=128, depth=3, robot=robot)
    res = train(flow, tr, objective="rfm", steps=args.steps, batch_size=256, val_data=va, progress=False,
                val_every=max(args.steps // 2, 1), log_every=max(args.steps // 4, 1), warmup=min(100, args.steps // 5))
    print(f"  done in {time.perf_counter() - t0:.0f} s, validation NLL {res.best_val_nll:.2f} nats "
          f"(uniform in the joint box: {float(torch.log(lim[:, 1] - lim[:, 0]).sum()):.2f})")
    if args.save:
        res.flow.save(args.save)
        print(f"  saved {args.save}")
    res.flow.requires_grad_(False)
    return PoseSampler(res.flow, robot=robot, solver=solver)


def bin_grasps(checker, center, n, rng, z_range) -> torch.Tensor:
    """Valid top-grasp configurations for objects at random spots and yaws inside the bin at ``center``."""
    robot = checker.robot
    xy = np.asarray(center) + rng.uniform(-0.03, 0.03, (n, 2))
    yaw = rng.uniform(-math.pi / 2, math.pi / 2, n)
    z = rng.uniform(*z_range, n)
    c, s, o, i = np.cos(yaw), np.sin(yaw), np.zeros(n), np.ones(n)
    Rz = torch.tensor(np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2))
    R = Rz @ torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))    # tool z axis down
    targets = torch.cat([torch.tensor(np.c_[xy, z]), rotmat_to_quat(R, "xyzw")], -1)
    res = solve_ik(robot, targets, ready_configuration(robot).expand(n, robot.dof), max_iters=300, pos_tol=1e-4,
                   rot_tol=1e-3)
    q = res.joints
    return q[res.success & checker.is_valid(q)]


def run(args):
    # small batches everywhere (the planners check one configuration or one motion at a time, training
    # batches are 256 x 7): one thread avoids threading overhead and is faster on a shared 2-core machine
    torch.set_num_threads(1)
    torch.manual_seed(0)
    robot = load(args.robot)
    sampler = joint_sampler(args, robot)
    checker = CollisionChecker(robot, tabletop_scene())
    rng = np.random.default_rng(0)
    starts = bin_grasps(checker, BINS[0], 4 * args.queries, rng, GRASP_Z[args.robot])[: args.queries]
    goals = bin_grasps(checker, BINS[1], 4 * args.queries, rng, GRASP_Z[args.robot])[: args.queries]
    queries = list(zip(starts, goals))
    if not queries:
        sys.exit(f"no valid top grasp of the {robot.name} in the bins (IK or collisions); nothing to plan")
    print(f"{robot.name}: {len(queries)} queries (left bin -> right bin) x {args.seeds} seeds, "
          f"{args.time_limit:g} s limit, planner {args.planner}")

    draw = sampler.sample(2000, seed=0)
    lim = robot.joint_limits
    u = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(2000, robot.dof, dtype=torch.float64,
                                                         generator=torch.Generator().manual_seed(0))
    print(f"collision-free in this scene (obstacles and self-collision): posegen "
          f"{checker.is_valid(draw['joints']).double().mean():.0%}, uniform {checker.is_valid(u).double().mean():.0%}")

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
