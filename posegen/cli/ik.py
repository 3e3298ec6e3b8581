"""``posegen ik train`` / ``posegen ik sample``: learned IK distributions (:class:`posegen.samplers.IKSampler`).

    posegen ik train --robot panda --out runs/ik_panda --max-minutes 10
    posegen ik sample runs/ik_panda/ik.pt --pose 0.4,0,0.5,1,0,0,0 -n 5 --refine
    posegen ik sample runs/ik_panda/ik.pt --targets grasps.csv -n 20 --refine --near 0,0,0,-1.5,0,1.5,0.8

``train`` writes ``DIR/ik.pt``; ``sample`` prints one CSV row per solution (target index, the joints and, with
``--refine``, the errors and success) or writes them with ``--out`` (``.csv`` or ``.npy``). Targets come from
``--pose`` (repeatable) or ``--targets`` (a ``.csv``/``.npy`` table of 7 columns, a header optional).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_open, atomic_path
from ..data.tabular import read_table
from ..robots import load
from ..rotations import check_quat_order
from ..samplers import IKSampler
from .common import UsageError, check_device, say
from .options import Parser, debug_flag, device_flag

CHECKPOINT_NAME = "ik.pt"


def add_parser(subparsers) -> None:
    """Register ``ik`` and its actions on the ``posegen`` subparsers."""
    p = subparsers.add_parser("ik", help="learned inverse-kinematics distributions: train, sample",
                       description="Train p(joints | end-effector pose) on forward-kinematics samples and draw IK "
                       "solutions from it, optionally refined by damped least squares.")
    isub = p.add_subparsers(dest="ik_command", metavar="ACTION", parser_class=Parser)
    isub.required = True

    q = isub.add_parser("train", help="train an IK sampler for a robot",
                        description="Train an IK sampler on FK samples of uniform joints; writes DIR/ik.pt.")
    q.add_argument("--robot", required=True, help="panda, ur5e, iiwa14 or a .urdf/.xml path")
    q.add_argument("--ee-link", default=None, help="end-effector link (default: the robot's)")
    q.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    q.add_argument("--steps", type=int, default=None, help="optimiser steps (at most)")
    q.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget in minutes (default 10 when --steps is not given)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--batch-size", type=int, default=512, help="training batch (default 512)")
    q.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    q.add_argument("--hidden", type=int, default=256, help="network width (default 256)")
    q.add_argument("--depth", type=int, default=4, help="hidden layers (default 4)")
    q.add_argument("--conditioning", choices=("concat", "film"), default="concat", help="how the pose enters")
    q.add_argument("--verbose", action="store_true", help="print the loss every 100 steps")
    device_flag(q)
    debug_flag(q)

    q = isub.add_parser("sample", help="draw IK solutions for end-effector poses",
                        description="Draw joint configurations reaching the given poses (base frame).")
    q.add_argument("checkpoint", metavar="CHECKPOINT", nargs="?", default=None,
                   help="ik.pt written by posegen ik train (or --robot for the shipped weights)")
    q.add_argument("--robot", default=None, help="a built-in robot with shipped weights (IKSampler.pretrained): "
                   "panda, ur5e, iiwa14; no training step")
    q.add_argument("--pose", action="append", default=[], metavar="X,Y,Z,QX,QY,QZ,QW",
                   help="target position (m) and unit quaternion in --quat-order; repeatable")
    q.add_argument("--targets", metavar="FILE",
                   help="targets from a .csv/.npy table instead: one pose per row, 7 columns as --pose")
    q.add_argument("-n", type=int, default=1, help="solutions per pose (default 1)")
    q.add_argument("--refine", action="store_true", help="polish with damped least squares (1 mm, 0.01 rad)")
    q.add_argument("--quat-order", default="xyzw", help="xyzw (default) or wxyz")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--temperature", type=float, default=None,
                   help="widen the draws towards the joint limits (default 1, or 1.6 with --refine)")
    q.add_argument("--near", metavar="Q1,...,QD", default=None,
                   help="a seed configuration (rad / m, the robot's joint order): keep the n of 4 n draws "
                        "closest to it")
    q.add_argument("--rank", choices=("density", "near"), default=None,
                   help="order each target's solutions (valid first) by model density or by distance to --near "
                        "(the default with --near)")
    q.add_argument("--out", metavar="FILE", help="write .csv or .npy instead of printing")
    device_flag(q)
    debug_flag(q)
    p.set_defaults(run=run)


def _numbers(flag: str, text: str, what: str):
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected {what}") from None


def _parse_pose(text: str):
    vals = _numbers("--pose", text, "7 comma-separated numbers x,y,z,qx,qy,qz,qw")
    if len(vals) != 7:
        raise UsageError(f"--pose {text!r}: expected 7 numbers (position and quaternion), got {len(vals)}")
    return vals


def _targets(args):
    """``(T, 7)`` float64 from ``--pose`` or ``--targets`` (exactly one of them)."""
    if bool(args.pose) == bool(args.targets):
        raise UsageError("give the targets with --pose (repeatable) or --targets FILE, one of the two")
    if args.pose:
        return torch.tensor([_parse_pose(p) for p in args.pose], dtype=torch.float64)
    try:
        _, values = read_table(args.targets)
    except (OSError, ValueError) as e:
        raise UsageError(f"--targets: {e}") from None
    if values.shape[1] != 7:
        raise UsageError(f"--targets {args.targets!r}: expected 7 columns x,y,z and a quaternion in --quat-order, "
                         f"got {values.shape[1]}")
    return torch.from_numpy(values.copy())


def run_train(args) -> int:
    device = check_device(args.device)
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UsageError(f"--max-minutes must be > 0, got {args.max_minutes}")
    minutes = args.max_minutes if (args.max_minutes is not None or args.steps is not None) else 10.0
    robot = load(args.robot, ee_link=args.ee_link)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ik = IKSampler(robot, hidden=args.hidden, depth=args.depth, conditioning=args.conditioning)
    say(f"training an IK sampler for {robot.name} ({robot.dof} joints) "
        f"{'for ' + str(args.steps) + ' steps' if args.steps else ''}"
        f"{' within ' + format(minutes, 'g') + ' min' if minutes else ''}")
    ik.fit(steps=args.steps, max_minutes=minutes, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
           device=device, verbose=args.verbose)
    path = ik.save(out / CHECKPOINT_NAME)
    tr = ik.training
    say(f"{tr['steps']} steps in {tr['seconds']:.0f} s ({tr['samples_seen']} FK samples), final loss "
        f"{tr['final_loss']:.4g}; wrote {path}")
    return 0


def run_sample(args) -> int:
    try:
        check_quat_order(args.quat_order)
    except ValueError as e:
        raise UsageError(f"--quat-order: {e}") from None
    if args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    if args.temperature is not None and not (args.temperature > 0 and math.isfinite(args.temperature)):
        raise UsageError(f"--temperature must be a positive finite number, got {args.temperature}")
    if args.out and Path(args.out).suffix not in (".csv", ".npy"):
        raise UsageError(f"--out {args.out!r}: use a .csv or .npy file")
    if (args.checkpoint is None) == (args.robot is None):
        raise UsageError("give a CHECKPOINT (posegen ik train) or --robot NAME (shipped weights), not both")
    targets = _targets(args)
    device = check_device(args.device)
    ik = (IKSampler.pretrained(args.robot, map_location=device) if args.robot is not None
          else IKSampler.load(args.checkpoint, map_location=device))
    try:
        ik.conditions(targets, args.quat_order)  # bad quaternions are a usage error, before any work
    except ValueError as e:
        raise UsageError(f"{'--pose' if args.pose else '--targets'}: {e}") from None
    near = None
    if args.near is not None:
        near = _numbers("--near", args.near, f"{ik.robot.dof} comma-separated joint values")
        try:
            near = ik.robot.check_joints(torch.tensor(near, dtype=torch.float64), require_limits=False)
        except ValueError as e:
            raise UsageError(f"--near: {e}") from None
    if args.rank == "near" and near is None:
        raise UsageError("--rank near needs a seed configuration: --near Q1,...,QD")
    out = ik.sample(targets, args.n, seed=args.seed, refine=args.refine, quat_order=args.quat_order,
                    temperature=args.temperature, near=near, rank=args.rank)
    q = out["joints"].double().cpu()
    T, n, dof = q.shape
    cols = ["target"] + list(ik.robot.joint_names)
    rows = torch.cat([torch.arange(T, dtype=torch.float64).repeat_interleave(n)[:, None], q.reshape(-1, dof)], 1)
    if args.refine:
        cols += ["position_error_m", "rotation_error_rad", "success"]
        extra = torch.stack([out["position_error"].double().cpu().reshape(-1),
                             out["rotation_error"].double().cpu().reshape(-1),
                             out["success"].double().cpu().reshape(-1)], 1)
        rows = torch.cat([rows, extra], 1)
    arr = rows.numpy()
    if args.out:
        path = Path(args.out)
        if path.suffix == ".npy":
            with atomic_path(path) as tmp:
                np.save(tmp, arr)
        else:
            with atomic_open(path, "w") as fh:
                fh.write(_csv(cols, arr))
        say(f"wrote {T * n} solutions to {path}")
    else:
        print(_csv(cols, arr), end="", flush=True)
    if args.refine:
        ok = out["success"]
        say(f"# {int(ok.sum())} of {ok.numel()} solutions within 1 mm and 0.01 rad")
    return 0


def _csv(cols, arr) -> str:
    buf = io.StringIO()
    buf.write(",".join(cols) + "\n")
    for r in arr:
        buf.write(",".join([str(int(r[0]))] + [f"{v:.9g}" for v in r[1:]]) + "\n")
    return buf.getvalue()


def run(args) -> int:
    return run_train(args) if args.ik_command == "train" else run_sample(args)
