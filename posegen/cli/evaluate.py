"""``posegen eval CHECKPOINT --data FILE``: exact negative log-likelihood of held-out points.

Prints a small table for people and one JSON line for scripts::

    {"nll": 1.234, "nll_se": 0.05, "bpd": 0.089, "n": 412, "split": "valid", "dim": 13, ...}

``nll`` is the mean of ``-log p(x)`` in nats, densities w.r.t. the manifold's Riemannian volume (see
:class:`posegen.PoseFlow`); ``bpd = nll / (dim ln 2)`` with ``dim`` the manifold's intrinsic dimension.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import torch

from ..config import default_config
from ..data import load_points
from ..objectives import Objective, make_objective
from ..robots import CollisionChecker
from ..rotations import rotation_angle
from ..samplers import PoseSampler
from .common import UsageError, config_for, load_flow, missing_split, say, sniff, solver_options
from .datasets import check_same_points, load_splits
from .options import debug_flag, device_flag, solver_flags


def eval_dataset(args, cfg):
    """``(PoseDataset, split name)`` to score, from ``--data`` read with the config's data section (or a
    posegen points file read whole)."""
    path = Path(args.data)
    if not path.exists():
        raise FileNotFoundError(f"data file '{path}' does not exist")
    if cfg is None:
        if path.is_file() and sniff(path) == "posegen-points":
            return load_points(path), "all"
        raise UsageError(f"no config to read '{path}' with: pass --config (the training config.yaml), keep "
                         f"config.yaml beside the checkpoint, or give a posegen points file")
    split = args.split or cfg["eval"]["split"]
    splits = load_splits(cfg, (split,) if split else ("train", "valid", "test"), path=path)
    if "all" in splits:
        return splits["all"], "all"
    if split is None:
        split = "test" if "test" in splits else "valid" if "valid" in splits else None
        if split is None:
            raise UsageError("the data section defines no test or valid split; pass --split train")
    if split not in splits:
        raise missing_split(split)
    return splits[split], split


def path_bound(flow, cfg, args, ds) -> Optional[float]:
    """What the trained objective's target allows on ``ds`` (CNFM: the NLL of the training data's kernel
    density estimate at its path's end point), or None for objectives without such a figure or without the
    training split."""
    if cfg is None or flow.cond_dim:
        return None
    objective = make_objective(cfg["objective"]["name"], **cfg["objective"]["options"])
    if type(objective).diagnostics is Objective.diagnostics:   # the objective reports nothing
        return None
    train = load_splits(cfg, ("train",), path=Path(args.data)).get("train")
    if train is None or len(train) == 0:
        return None
    z_train = flow.to_internal(train.points.to(flow.dtype))
    with torch.no_grad():
        objective.setup(flow, z_train)
        diag = objective.diagnostics(z_train, flow.to_internal(ds.points.to(flow.dtype)))
    return float(diag["endpoint_kde_nll"]) if "endpoint_kde_nll" in diag else None


def robot_check(flow, solver, n: int = 2000, cond=None):
    """Sample ``n`` configurations of a robot's joint model and check them as robot states: the share
    inside the joint limits, and how far the pose the sampler reports (FK in the model's dtype) is from
    float64 FK of the same joints (round-off: the pose is computed, not sampled)."""
    sampler = PoseSampler(flow, solver={k: v for k, v in solver.items() if k in ("method", "steps")})
    out = sampler.sample(n, condition=cond, seed=0)
    q = out["joints"] if "joints" in out else out["points"][:, sampler.joint_columns]
    pos_key, quat_key = sampler.fk_keys
    pos64, quat64 = sampler.robot.pose(q.double())
    angle = rotation_angle(out[quat_key].double(), quat64)
    return {"robot": sampler.robot.name, "robot_check_n": n, "fk_dtype": str(q.dtype).replace("torch.", ""),
            "inside_limits": float(sampler.robot.within_limits(q.double()).float().mean()),
            "fk_position_error_m": float((out[pos_key].double() - pos64).norm(dim=-1).max()),
            "fk_rotation_error_deg": float(torch.rad2deg(angle).max()),
            "self_collision": self_collision_share(sampler.robot, q)}


def self_collision_share(robot, q) -> Optional[float]:
    """Share of configurations ``q (n, dof)`` whose links collide with each other under the robot's collision
    model (:class:`~posegen.robots.CollisionChecker` with no obstacles), or None when it has none."""
    try:
        checker = CollisionChecker(robot, [])
    except ValueError:   # no collision geometry for this robot
        return None
    return float((~checker.collision_free(q.to(checker.dtype))).float().mean())


def run(args) -> int:
    flow = load_flow(args.checkpoint, args.device)
    cfg = config_for(args.checkpoint, args.config)
    ds, split = eval_dataset(args, cfg)
    check_same_points(flow.manifold, ds.manifold)
    ev = cfg["eval"] if cfg else default_config()["eval"]
    cap = args.max_points if args.max_points is not None else ev["max_points"]
    if cap is not None and len(ds) > cap:
        ds = ds.subsample(n=int(cap), seed=0)
    if len(ds) == 0:
        raise ValueError(f"no points to evaluate in split {split!r}")
    cond = None
    if flow.cond_dim:
        if ds.conditions is None:
            raise ValueError(f"the flow is conditional on {flow.cond_dim} values but the data have no conditions")
        cond = ds.conditions
    solver = solver_options(ev["solver"], args.method, args.solver_steps)
    divergence = args.divergence or ev["divergence"]
    lp = flow.log_prob(ds.points.to(flow.dtype), cond, divergence=divergence, seed=0 if divergence != "exact" else None,
                       chunk_size=ev["chunk_size"], **solver)
    lp = lp.double()
    n = lp.shape[0]
    nll = float(-lp.mean())
    se = float(lp.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    dim = flow.manifold.dim
    bpd = nll / (dim * math.log(2))
    used = {**flow.solver, **solver}
    rec = {"nll": nll, "nll_se": se, "bpd": bpd, "n": n, "split": split, "dim": dim,
           "manifold": repr(flow.manifold), "checkpoint": str(args.checkpoint), "data": str(args.data),
           "method": used["method"], "steps": used["steps"], "divergence": divergence}
    bound = path_bound(flow, cfg, args, ds)
    if bound is not None:
        rec["endpoint_kde_nll"] = bound
    rows = [("checkpoint", str(args.checkpoint)), ("data", f"{args.data} (split {split}, {n} points)"),
            ("manifold", f"{flow.manifold!r} (dim {dim})"), ("solver", f"{used['method']}, {used['steps']} steps, "
                                                                       f"{divergence} divergence"),
            ("NLL", f"{nll:.4f} +- {se:.4f} nats"), ("bits/dim", f"{bpd:.4f}")]
    if bound is not None:
        rows.append(("path bound", f"{bound:.4f} nats: the training data's kernel density estimate at the CNFM "
                                   f"path's end point, on the same points (a model near it is limited by its "
                                   f"target path, not its network)"))
    if flow.robot_spec is not None:
        rec.update(robot_check(flow, ev["solver"], cond=None if cond is None else cond[:1]))
        rows += [("robot", f"{rec['robot']} ({rec['robot_check_n']} samples, seed 0)"),
                 ("inside limits", f"{100 * rec['inside_limits']:.2f} % of the sampled joints (no rejection)"),
                 ("FK check", f"max {rec['fk_position_error_m']:.2e} m, {rec['fk_rotation_error_deg']:.2e} deg "
                              f"({rec['fk_dtype']} pose vs float64 FK of the same joints)"),
                 ("self-collision", "no collision model for this robot" if rec["self_collision"] is None else
                  f"{100 * rec['self_collision']:.2f} % of the sampled configurations (the robot's collision "
                  f"model)")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        say(f"{k:<{width}}  {v}")
    say(json.dumps(rec))
    return 0


def add_parser(subparsers) -> None:
    """Register this command on the ``posegen`` subparsers."""
    p = subparsers.add_parser("eval", help="negative log-likelihood (nats, bits/dim) of held-out data",
                              description="Exact NLL of data under a trained flow: a table, then one JSON line.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", required=True, metavar="FILE", help="data file, read with the config's data section")
    p.add_argument("--config", help="config whose data section reads FILE (default: config.yaml beside the "
                   "checkpoint; a posegen points file needs none)")
    p.add_argument("--split", choices=("test", "valid", "train"), default=None,
                   help="which split (default: the config's eval.split, else test if defined, else valid)")
    solver_flags(p)
    p.add_argument("--divergence", choices=("exact", "hutchinson"), default=None, help="divergence estimator")
    p.add_argument("--max-points", type=int, default=None, help="score at most this many points (seeded subset)")
    device_flag(p)
    debug_flag(p)
    p.set_defaults(run=run)
