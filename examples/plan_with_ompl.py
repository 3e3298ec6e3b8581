"""Plan robot motions with OMPL, sampling from posegen's learned joint distribution vs uniformly.

The robot is ``--robot`` (``panda``, the default, or ``ur5e``; built-in robots with demonstrations) or
``--urdf PATH`` (any robot file ``posegen.robots.load`` reads whose links have collision geometry: its
spheres are fitted to the meshes and cached, posegen.robots.autofit). The scene
(posegen.planning.scene.tabletop_scene): a table, two open bins and an overhead shelf. Each query moves the
end effector from a top grasp inside the left bin to a top grasp inside the right bin, so the planner has to
find the narrow, near-vertical passages out of one bin and into the other. Collisions (with the scene and
the robot's own links) come from posegen.robots.collision; goals from posegen.robots.ik.solve_ik.

The learned sampler is a flow on the robot's joint box (``PoseFlow(robot.manifold, robot=robot)``: joints
inside the limits by construction), trained (briefly, here) on

* the robot's demos (built-in robots): for the Panda posegen's reach-and-grasp demos
  (``data/panda_reach_grasp.hdf5``: objects on the table reached from above, so their configurations
  concentrate where such passages are), for the UR5e its reach demos (``data/ur5e_reach.hdf5``: random
  reachable goals around the home pose, a much less task-shaped density);
* planning experience (``--urdf``: a robot from a file has no demos): ``--train-queries`` earlier queries of
  the same task (other grasp spots and yaws) solved offline by RRT-Connect through a pre-grasp 0.35 m high
  above each bin (three legs, as an operator would split a hard query; ``--direct-experience``: start to
  goal), shortened by 30 random shortcuts and densified to configurations 0.05 rad apart
  (posegen.planning.experience); the table is measured on held-out queries, planned start to goal. The
  grasps are solved by IK from 8 starts (a home posture above the bins and random ones), keeping the valid
  solution nearest home; their heights are found for the robot (the lowest height, in 2.5 cm steps, at
  which at least half of 8 probe grasps at each bin centre have a valid solution; ``--grasp-z``
  overrides), since a file's robot may end in a bare flange.

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
    PB=$(python -c 'import pybullet_data as d; print(d.getDataPath())')      # pip install pybullet
    python examples/plan_with_ompl.py --urdf $PB/kuka_iiwa/model.urdf --grasp-z 0.15 0.2   # about 15 minutes
    python examples/plan_with_ompl.py --quick     # a minute or two: fewer training steps, queries and seeds
    python examples/plan_with_ompl.py --checkpoint joints.pt    # reuse a trained model (--save writes one)
    python examples/plan_with_ompl.py --json out.json           # also write the rows and every run
    python examples/plan_with_ompl.py --summarize out.json      # that file's table again

Needs ``pip install posegen[planning]`` (the ``ompl`` wheel; ``posegen[robots]`` for ``--urdf`` meshes).
Times include every Python callback (the collision checker runs in torch) and, for posegen, the model's
batched draws. PRM checks for a solution in a second thread, so its times vary between runs even with the
same seeds; compare the rows of one run, and look at the collision checks too (a machine-independent cost).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from posegen import PoseFlow
from posegen.atomic import atomic_open
from posegen.data import load_robomimic
from posegen.planning import BINS, CollisionChecker, PosegenSamplerAllocator, plan, require_ompl, tabletop_scene
from posegen.planning.experience import collect_experience
from posegen.robots import load
from posegen.robots.collision import ready_configuration
from posegen.robots.descriptions import BUILTIN_ROBOTS
from posegen.robots.ik import solve_ik
from posegen.rotations import rotmat_to_quat
from posegen.samplers import PoseSampler
from posegen.training import train

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DEFAULT_DATA = {"panda": DATA / "panda_reach_grasp.hdf5", "ur5e": DATA / "ur5e_reach.hdf5"}
GENERATE = {"panda": "python -m posegen.data.generate --out {path} --demos 300 --seed 0",
            "ur5e": "posegen data generate --robot ur5e --out {path}"}
# height of the end-effector frame above the bin floor for a top grasp: the Panda's TCP sits between the
# fingertips; the UR5e has no tool and a wrist 15 cm wide, so its flange stays above the bin walls (0.2 m)
GRASP_Z = {"panda": (0.03, 0.08), "ur5e": (0.18, 0.23)}
TOOL_DOWN = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))     # tool z axis pointing down
IK_STARTS = 8            # random IK starts per grasp of a robot from a file (no ready configuration known)
VALID_SHARE = 0.5        # grasp heights: lowest height where this share of the probe grasps is valid
QUERY_SEED, TRAIN_SEED = 0, 1
PREGRASP_Z = 0.35        # training queries of a file's robot are solved through pre-grasps at this height (m)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--robot", default="panda", choices=sorted(DEFAULT_DATA), help="robot (default panda)")
    ap.add_argument("--urdf", help="plan for the robot in this URDF/MJCF file instead (learned from experience)")
    ap.add_argument("--ee-link", help="with --urdf: the end-effector link (default: posegen.robots.load's choice)")
    ap.add_argument("--data", help="robomimic HDF5 with obs/robot0_joint_pos (default data/<robot>_*.hdf5)")
    ap.add_argument("--checkpoint", help="trained joint model (PoseFlow.save); trains one when absent")
    ap.add_argument("--save", help="where to save the model trained here")
    ap.add_argument("--steps", type=int, default=800, help="training steps (default 800)")
    ap.add_argument("--queries", type=int, default=6, help="start/goal queries (default 6)")
    ap.add_argument("--train-queries", type=int, default=24,
                    help="with --urdf: queries solved by RRT-Connect to learn from (default 24)")
    ap.add_argument("--experience-time-limit", type=float, default=10.0,
                    help="with --urdf: seconds per leg of a training query (default 10; solved offline)")
    ap.add_argument("--direct-experience", action="store_true",
                    help="with --urdf: plan training queries start to goal (default: through a pre-grasp "
                         f"{PREGRASP_Z} m high above each bin, three RRT-Connect legs)")
    ap.add_argument("--grasp-z", type=float, nargs=2, metavar=("LOW", "HIGH"),
                    help="height range (m) of the end-effector frame for top grasps (default: per robot)")
    ap.add_argument("--seeds", type=int, default=2, help="OMPL seeds per query (default 2)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per query (default 10)")
    ap.add_argument("--uniform-fraction", type=float, nargs="+", default=[0.2, 0.5],
                    help="uniform share(s) of the posegen sampler, one row each (default 0.2 0.5)")
    ap.add_argument("--batch-size", type=int, default=128, help="posegen draws per model call (default 128)")
    ap.add_argument("--planner", default="PRM", choices=["PRM", "PRMstar"], help="roadmap planner (default PRM)")
    ap.add_argument("--no-rrtconnect", action="store_true", help="skip the RRT-Connect reference rows")
    ap.add_argument("--json", help="write the setup, the table's rows and every run to this JSON file")
    ap.add_argument("--summarize", metavar="JSON", help="print the table of a --json file's runs and exit")
    ap.add_argument("--quick", action="store_true",
                    help="150 training steps, 2 queries, 1 seed, 3 s limit (--urdf: 4 training queries, 5 s)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.queries, args.seeds, args.time_limit = 150, 2, 1, 3.0
        args.train_queries, args.experience_time_limit = 4, 5.0
    for name in ("steps", "queries", "seeds", "train_queries", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("time_limit", "experience_time_limit"):
        if not (getattr(args, name) > 0):
            ap.error(f"--{name.replace('_', '-')} must be > 0 seconds, got {getattr(args, name)}")
    if args.grasp_z is not None and not (0 <= args.grasp_z[0] <= args.grasp_z[1]):
        ap.error(f"--grasp-z needs 0 <= LOW <= HIGH (m), got {args.grasp_z}")
    if any(not (0 <= f <= 1) for f in args.uniform_fraction):
        ap.error(f"--uniform-fraction values must be in [0, 1], got {args.uniform_fraction}")
    if args.urdf is not None and args.data is not None:
        ap.error("--data gives demos of a built-in robot; with --urdf the sampler learns from planning experience")
    if args.urdf is None and args.data is None:
        args.data = str(DEFAULT_DATA[args.robot])
    return args


def fit_joint_sampler(robot, train_data, val_data, steps: int, save=None) -> PoseSampler:
    """A PoseSampler of ``robot``'s joints: a flow on its joint box trained by RFM on ``train_data`` (a
    dataset or ``(N, dof)`` joint values), validated on ``val_data`` (None: not validated)."""
    lim = robot.joint_limits
    print(f"training a joint model of the {robot.name} (I{robot.dof}) on {len(train_data)} configurations "
          f"({steps} steps, RFM) ...", flush=True)
    t0 = time.perf_counter()
    flow = PoseFlow(robot.manifold, hidden=128, depth=3, robot=robot)
    res = train(flow, train_data, objective="rfm", steps=steps, batch_size=256, val_data=val_data, progress=False,
                val_every=max(steps // 2, 1), log_every=max(steps // 4, 1), warmup=min(100, steps // 5))
    nll = "not validated" if res.best_val_nll is None else f"validation NLL {res.best_val_nll:.2f} nats"
    print(f"  done in {time.perf_counter() - t0:.0f} s, {nll} "
          f"(uniform in the joint box: {float(torch.log(lim[:, 1] - lim[:, 0]).sum()):.2f})")
    if save:
        res.flow.save(save)
        print(f"  saved {save}")
    res.flow.requires_grad_(False)
    return PoseSampler(res.flow, robot=robot, solver={"method": "rk4", "steps": 8})


def demo_sampler(args, robot) -> PoseSampler:
    """A built-in robot's joint sampler: ``--checkpoint``, or trained on its demos (``--data``)."""
    path = Path(args.data)
    if not path.exists():
        sys.exit(f"no data at {path}; generate it with\n  {GENERATE[args.robot].format(path=path)}\n"
                 f"or pass --data / --checkpoint")
    keys = {"robot0_joint_pos": f"I{robot.dof}"}      # joints as recorded, inside the robot's limits
    tr = load_robomimic(path, keys=keys, frames=2, mask="train", robot=robot)
    va = load_robomimic(path, keys=keys, frames=5, mask="valid", robot=robot)
    return fit_joint_sampler(robot, tr, va, args.steps, args.save)


def experience_sampler(args, checker, train_queries, record: dict) -> PoseSampler:
    """A joint sampler trained on the RRT-Connect solutions of ``train_queries`` (densified); the solved
    queries' last sixth (at least one, when two or more were solved) validates. Fills
    ``record["experience"]``."""
    seqs = train_queries if args.direct_experience else with_pregrasps(checker, train_queries)
    via = "start to goal" if args.direct_experience else f"through pre-grasps {PREGRASP_Z} m high"
    print(f"experience: {len(train_queries)} training queries solved by RRT-Connect {via} "
          f"({args.experience_time_limit:g} s limit per leg, 30 shortcuts, densified at 0.05 rad) ...", flush=True)
    exp = collect_experience(checker, seqs, time_limit=args.experience_time_limit, seed=10_000)
    solved = exp.solved.nonzero().flatten().tolist()
    record["experience"] = {"queries": len(train_queries), "via": via, "legs": [len(q) - 1 for q in seqs],
                            "solved": len(solved), "configurations": len(exp.configs),
                            "wall_s": exp.wall_s, "median_solve_s": float(np.median(exp.time_s)),
                            "median_checks": float(np.median(exp.checks))}
    print(f"  {len(solved)}/{len(train_queries)} solved, {len(exp.configs)} configurations, {exp.wall_s:.0f} s")
    if not solved:
        sys.exit("no training query was solved: nothing to learn from (raise --experience-time-limit or "
                 "--train-queries)")
    if len(solved) == 1:
        print("  one solved query: trained on it without validation")
        tr, va = exp.configs.float(), None
    else:
        held = exp.query >= solved[-max(len(solved) // 6, 1)]
        tr, va = exp.configs[~held].float(), exp.configs[held].float()
    return fit_joint_sampler(checker.robot, tr, va, args.steps, args.save)


def with_pregrasps(checker, queries):
    """``(start, pre_start, pre_goal, goal)`` for each ``(start, goal)``: the end effector straight above its
    grasp at height :data:`PREGRASP_Z`, same orientation, by IK from the grasp (a query keeps its direct leg
    where that IK fails or its solution is invalid)."""
    robot = checker.robot
    q = torch.stack([x for pair in queries for x in pair])                  # (2Q, dof): start, goal, start, ...
    T = robot.fk(q)
    pos = T[:, :3, 3].clone()
    pos[:, 2] = PREGRASP_Z
    res = solve_ik(robot, torch.cat([pos, rotmat_to_quat(T[:, :3, :3], "xyzw")], -1), q, max_iters=300,
                   pos_tol=1e-4, rot_tol=1e-3)
    ok = (res.success & checker.is_valid(res.joints)).reshape(-1, 2).all(-1)
    pre = res.joints.reshape(-1, 2, robot.dof)
    return [(a, pre[i, 0], pre[i, 1], b) if ok[i] else (a, b) for i, (a, b) in enumerate(queries)]


def top_grasp_targets(center, n, rng, z_range) -> torch.Tensor:
    """``(n, 7)`` poses (x y z qx qy qz qw) of top grasps at random spots (+-3 cm) and yaws (+-90 deg) in the
    bin at ``center``, the end-effector frame at a height in ``z_range``, its z axis pointing down."""
    xy = np.asarray(center) + rng.uniform(-0.03, 0.03, (n, 2))
    yaw = rng.uniform(-math.pi / 2, math.pi / 2, n)
    z = rng.uniform(*z_range, n)
    c, s, o, i = np.cos(yaw), np.sin(yaw), np.zeros(n), np.ones(n)
    Rz = torch.tensor(np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2))
    return torch.cat([torch.tensor(np.c_[xy, z]), rotmat_to_quat(Rz @ TOOL_DOWN, "xyzw")], -1)


def home_configuration(robot) -> torch.Tensor:
    """``(dof,)``: a built-in robot's ready configuration; for a file's robot, IK (from the middle of its
    limits) of a top grasp 0.45 m above the table between the bins, so that grasps in both bins are solved
    near one arm posture (the middle of the limits when that IK fails)."""
    ready = ready_configuration(robot)
    if robot.spec["robot"] in BUILTIN_ROBOTS:
        return ready
    pose = torch.cat([torch.tensor([[BINS[0][0], 0.0, 0.45]], dtype=torch.float64),
                      rotmat_to_quat(TOOL_DOWN, "xyzw").unsqueeze(0)], -1)
    res = solve_ik(robot, pose, ready.unsqueeze(0), max_iters=300, pos_tol=1e-4, rot_tol=1e-3)
    return res.joints[0] if bool(res.success[0]) else ready


def grasp_configs(checker, center, n, rng, z_range, starts: int = 1) -> torch.Tensor:
    """Valid top-grasp configurations (:func:`top_grasp_targets`) in the bin at ``center``: ``(m, dof)``,
    ``m <= n`` (grasps without a valid IK solution are dropped).

    ``starts == 1``: IK from the robot's ready configuration; else from its home configuration
    (:func:`home_configuration`) and ``starts - 1`` random ones per grasp, keeping the valid solution
    nearest home (Euclidean in joint space)."""
    robot = checker.robot
    targets = top_grasp_targets(center, n, rng, z_range)
    home = home_configuration(robot)
    if starts == 1:
        q_init = home.expand(n, robot.dof)
    else:
        lim = robot.joint_limits
        q_init = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.from_numpy(rng.random((n, starts, robot.dof)))
        q_init[:, 0] = home
    res = solve_ik(robot, targets, q_init, max_iters=300, pos_tol=1e-4, rot_tol=1e-3)
    q, ok = res.joints, res.success & checker.is_valid(res.joints)
    if starts == 1:
        return q[ok]
    dist = torch.where(ok, (q - home).norm(dim=-1), torch.inf)
    return q[torch.arange(n), dist.argmin(-1)][ok.any(-1)]


def grasp_heights(checker, rng, step: float = 0.025, top: float = 0.5, probes: int = 8):
    """The lowest height range ``(z, z + 0.05)`` of the end-effector frame at which at least half of
    ``probes`` top grasps at each bin centre have a valid IK solution (:func:`grasp_configs`, 8 starts)."""
    for z in np.arange(0.0, top + 1e-9, step):
        ok = [len(grasp_configs(checker, b, probes, rng, (z, z), starts=IK_STARTS)) >= VALID_SHARE * probes
              for b in BINS]
        if all(ok):
            return float(z), float(z) + 0.05
    sys.exit(f"no height up to {top} m gives valid top grasps of the {checker.robot.name} in both bins "
             f"(bins at {BINS}); is the robot's reach below 0.6 m? Pass --grasp-z to force a range")


def bin_queries(checker, n, rng, z_range, starts: int = 1):
    """Up to ``n`` (start in the left bin, goal in the right bin) pairs of valid top grasps."""
    a = grasp_configs(checker, BINS[0], 4 * n, rng, z_range, starts)[:n]
    b = grasp_configs(checker, BINS[1], 4 * n, rng, z_range, starts)[:n]
    return list(zip(a, b))


def setup(args, record: dict):
    """The robot's checker, held-out queries and joint sampler (module docstring); fills ``record``."""
    robot = load(args.urdf, ee_link=args.ee_link) if args.urdf else load(args.robot)
    t0 = time.perf_counter()
    checker = CollisionChecker(robot, tabletop_scene())
    record["robot"] = {"name": robot.name, "source": args.urdf or args.robot, "dof": robot.dof,
                       "ee_link": robot.ee_link, "spheres": len(checker.model.radii),
                       "checker_build_s": time.perf_counter() - t0}
    starts = IK_STARTS if args.urdf else 1
    if args.grasp_z is not None:
        z_range = tuple(args.grasp_z)
    elif args.urdf:
        z_range = grasp_heights(checker, np.random.default_rng(2))
    else:
        z_range = GRASP_Z[args.robot]
    record["grasp_z"] = list(z_range)
    queries = bin_queries(checker, args.queries, np.random.default_rng(QUERY_SEED), z_range, starts)
    record["queries"] = [{"start": a.tolist(), "goal": b.tolist()} for a, b in queries]
    if not queries:
        sys.exit(f"no valid top grasp of the {robot.name} in the bins (IK or collisions); nothing to plan")
    print(f"{robot.name} ({record['robot']['spheres']} spheres): {len(queries)} queries (left bin -> right bin) x "
          f"{args.seeds} seeds, grasps at z {z_range[0]:.3f}-{z_range[1]:.3f} m, {args.time_limit:g} s limit, "
          f"planner {args.planner}", flush=True)
    if args.checkpoint and Path(args.checkpoint).exists():
        print(f"loading {args.checkpoint}")
        sampler = PoseSampler.from_checkpoint(args.checkpoint, device="cpu", robot=robot,
                                              solver={"method": "rk4", "steps": 8})
    elif args.urdf:
        train_queries = bin_queries(checker, args.train_queries, np.random.default_rng(TRAIN_SEED), z_range, starts)
        sampler = experience_sampler(args, checker, train_queries, record)
    else:
        sampler = demo_sampler(args, robot)
    return checker, queries, sampler


def methods(args, checker, sampler):
    """``(label, planner, make_allocator(seed))`` of every compared row."""
    rows = [("OMPL uniform", args.planner, lambda seed: None),
            ("uniform (batched)", args.planner,
             lambda seed: PosegenSamplerAllocator(source="uniform", uniform_fraction=0.0, checker=checker, seed=seed,
                                                  batch_size=args.batch_size))]
    for uf in args.uniform_fraction:
        rows.append((f"posegen ({1 - uf:.0%} learned)", args.planner,
                     lambda seed, uf=uf: PosegenSamplerAllocator(sampler, uniform_fraction=uf, checker=checker,
                                                                 seed=seed, batch_size=args.batch_size)))
    if not args.no_rrtconnect:
        rows.append(("OMPL uniform (reference)", "RRTConnect", lambda seed: None))
    return rows


def compare(args, checker, sampler, queries, record: dict):
    """Every method on every query and seed (``record["runs"]``), summarised in ``record["rows"]``."""
    record["runs"] = []
    for name, planner, make in methods(args, checker, sampler):
        for qi, (a, b) in enumerate(queries):
            for seed in range(args.seeds):
                r = plan(checker, a, b, planner=planner, sampler=make(1000 * qi + seed), time_limit=args.time_limit,
                         seed=1000 * qi + seed)
                record["runs"].append({"planner": planner, "sampler": name, "query": qi, "seed": seed,
                                       "solved": r.solved, "time_s": r.time_s, "checks": r.checks})
        print(f"  {planner:10s} {name:24s} done", flush=True)
    record["rows"] = summarize(record["runs"], args.time_limit)


def summarize(runs, time_limit: float) -> list:
    """One row per (planner, sampler) of ``runs``, in their order: ``success`` (solved), ``in_limit`` (solved
    within ``time_limit``: PRM may stop late, its Python callbacks and its solution-checking thread sharing
    the interpreter), median and mean wall time (unsolved runs counted at the limit), median checks."""
    rows = []
    for key in dict.fromkeys((r["planner"], r["sampler"]) for r in runs):
        sel = [r for r in runs if (r["planner"], r["sampler"]) == key]
        times = [r["time_s"] if r["solved"] else time_limit for r in sel]     # failures count as the limit
        rows.append({"planner": key[0], "sampler": key[1], "runs": len(sel),
                     "success": float(np.mean([r["solved"] for r in sel])),
                     "in_limit": float(np.mean([r["solved"] and r["time_s"] <= time_limit for r in sel])),
                     "median_time_s": float(np.median(times)), "mean_time_s": float(np.mean(times)),
                     "median_checks": float(np.median([r["checks"] for r in sel]))})
    return rows


def print_table(rows) -> None:
    head = (f"{'planner':10s} {'sampler':26s} {'success':>8s} {'in limit':>9s} {'median s':>9s} {'mean s':>8s} "
            f"{'median checks':>14s}")
    print(f"\n{head}\n{'-' * len(head)}")
    for r in rows:
        print(f"{r['planner']:10s} {r['sampler']:26s} {r['success']:8.0%} {r['in_limit']:9.0%} "
              f"{r['median_time_s']:9.2f} {r['mean_time_s']:8.2f} {r['median_checks']:14.0f}")
    print("(success: solved, in limit: solved within the time limit; time: wall seconds per query, unsolved "
          "queries counted at the limit; checks: configurations collision-checked)")


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("model name")]
    return names[0] if names else (platform.processor() or "unknown")


def machine() -> dict:
    """What the numbers ran on (CPU, cores, load, threads, versions, commit)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10, check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_avg_1_5_15": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "commit": commit}


def run(args) -> dict:
    """Set up, compare and print; returns the record written by ``--json``."""
    # small batches everywhere (the planners check one configuration or one motion at a time, training
    # batches are 256 x dof): one thread avoids threading overhead and is faster on a shared 2-core machine
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    record = {"benchmark": "plan_with_ompl", "args": vars(args), "machine": machine(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    checker, queries, sampler = setup(args, record)
    lim = checker.joint_limits.cpu()
    u = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(2000, lim.shape[0], dtype=torch.float64,
                                                         generator=torch.Generator().manual_seed(0))
    valid = {"posegen": float(checker.is_valid(sampler.sample(2000, seed=0)["joints"]).double().mean()),
             "uniform": float(checker.is_valid(u).double().mean())}
    record["valid_share"] = valid
    print(f"collision-free in this scene (obstacles and self-collision): posegen {valid['posegen']:.0%}, "
          f"uniform {valid['uniform']:.0%}")
    compare(args, checker, sampler, queries, record)
    print_table(record["rows"])
    record["duration_s"], record["cpu_s"] = time.perf_counter() - t0, time.process_time()
    if args.json:
        with atomic_open(Path(args.json), "w", mkdir=True) as fh:
            fh.write(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")
    return record


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summarize:
        record = json.loads(Path(args.summarize).read_text(encoding="utf-8"))
        print_table(summarize(record["runs"], record["args"]["time_limit"]))
        return record
    try:
        require_ompl()
    except ImportError as e:
        sys.exit(str(e))
    from ompl import util as ou

    ou.setLogLevel(ou.LogLevel.LOG_WARN)
    record = run(args)
    gc.collect()     # free OMPL objects before interpreter shutdown (nanobind otherwise reports them)
    return record


if __name__ == "__main__":
    main()
