"""How many distinct IK solutions a target has: why a learned sampler pays on a redundant arm and barely on a
non-redundant one.

For each robot, ``--targets`` poses (forward kinematics of uniform joints, the held-out seed of
``ik_pretrained.py eval``) are solved from ``--starts`` uniform random starts each (``solve_ik``, ``--iters``
iterations), and the exact solutions (1 mm, 0.01 rad) are grouped: two solutions are the same when every joint
agrees to ``--eps`` rad modulo a full turn (a UR5e joint with limits of +-2 pi holds every solution twice). A
6-joint arm like the UR5e has finitely many solutions per pose (up to 8 for its geometry), so ``p(q | pose)``
is a sum of point masses that a continuous flow can only blur (its raw draws sit a bump's width off), while a
7-joint arm has a one-dimensional family of solutions per pose, which a flow can cover.

    python benchmarks/ik_branches.py --robots ur5e,panda,iiwa14
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import Result, csv_list, set_threads  # noqa: E402
from posegen.manifolds import wrap_angle  # noqa: E402
from posegen.robots import load  # noqa: E402
from posegen.robots.ik import solve_ik  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ik_branches.json"


def distinct_solutions(joints: torch.Tensor, eps: float) -> int:
    """Groups among ``joints (n, dof)``: greedy, a row joins the first representative whose every joint agrees
    with it to ``eps`` rad modulo ``2 pi``."""
    reps = []
    for row in joints:
        if not any(bool(wrap_angle(row - r).abs().max() < eps) for r in reps):
            reps.append(row)
    return len(reps)


def count(robot_name: str, targets: int, starts: int, iters: int, eps: float, seed: int) -> dict:
    robot = load(robot_name)
    gen = torch.Generator().manual_seed(seed)
    q = robot.manifold.sample_base(targets, generator=gen, dtype=torch.float64)
    poses = torch.cat(robot.pose(q, "xyzw"), -1)
    q0 = robot.manifold.sample_base((targets, starts), generator=gen, dtype=torch.float64)
    res = solve_ik(robot, poses, q0, max_iters=iters)
    per = [distinct_solutions(res.joints[t][res.success[t]], eps) for t in range(targets)]
    exact = res.success.sum(1).tolist()
    return {"robot": robot_name, "dof": robot.dof, "distinct_per_target": per, "exact_per_target": exact,
            "median_distinct": float(torch.tensor(per, dtype=torch.float64).median()),
            "share_of_exact_that_repeat_a_solution": 1 - sum(per) / max(sum(exact), 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robots", type=csv_list, default=["ur5e", "panda", "iiwa14"])
    p.add_argument("--targets", type=int, default=20)
    p.add_argument("--starts", type=int, default=200)
    p.add_argument("--iters", type=int, default=60)
    p.add_argument("--eps", type=float, default=0.05, help="rad: solutions closer than this (mod 2 pi) are one")
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    set_threads(args.threads)
    res = Result("ik_branches", vars(args))
    for name in args.robots:
        row = count(name, args.targets, args.starts, args.iters, args.eps, args.seed)
        res.add(row)
        print(f"{name} ({row['dof']} joints): distinct exact solutions per target, median {row['median_distinct']:g}:"
              f" {row['distinct_per_target']}", flush=True)
    print(f"wrote {res.write(args.out)}")


if __name__ == "__main__":
    main()
