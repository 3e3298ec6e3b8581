"""``posegen sample CHECKPOINT -n N -o OUT.h5``: draw samples and write them in posegen's HDF5 layout."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import default_config
from ..data import save_points
from ..robots import CollisionChecker, Scene
from ..samplers import PoseSampler
from .common import (
    UsageError,
    condition_columns,
    config_for,
    load_flow,
    parse_condition,
    read_conditions,
    say,
    solver_options,
)
from .datasets import columns_from_config
from .options import debug_flag, device_flag, solver_flags


def run(args) -> int:
    flow = load_flow(args.checkpoint, args.device)
    cfg = config_for(args.checkpoint, args.config)
    sample_cfg = cfg["sample"] if cfg else default_config()["sample"]  # its solver is used with --config only
    n = args.n if args.n is not None else sample_cfg["n"]
    if n < 1:
        raise UsageError(f"-n must be >= 1, got {n}")
    seed = args.seed if args.seed is not None else sample_cfg["seed"]
    out = Path(args.out)
    if not out.parent.exists():
        raise FileNotFoundError(f"output folder '{out.parent}' does not exist")

    cond = None
    if args.condition is not None and args.condition_file is not None:
        raise UsageError("give --condition or --condition-file, not both")
    if flow.cond_dim:
        if args.condition is not None:
            cond = parse_condition(args.condition, flow.cond_dim).expand(n, -1)
        elif args.condition_file is not None:
            rows = read_conditions(args.condition_file, flow.cond_dim)
            if rows.shape[0] == 1:
                cond = rows.expand(n, -1)
            elif rows.shape[0] == n or args.n is None:
                cond, n = rows, rows.shape[0]
            else:
                raise UsageError(f"--condition-file '{args.condition_file}' has {rows.shape[0]} rows; give one row "
                                 f"(used for all {n} samples) or one row per sample (-n {rows.shape[0]})")
        else:
            names = condition_columns(cfg, flow.cond_dim)
            what = f" ({', '.join(names)})" if names else ""
            raise UsageError(f"the flow is conditional on {flow.cond_dim} values{what}: pass --condition "
                             f"\"{','.join(['v'] * flow.cond_dim)}\" or --condition-file FILE")
    elif args.condition is not None or args.condition_file is not None:
        raise UsageError("the flow is unconditional (trained without condition keys); drop --condition")

    # The flow's own default integrator is the training config's sample.solver; an explicit --config wins.
    solver = solver_options(sample_cfg["solver"] if args.config else {}, args.method, args.solver_steps)
    valid_note = ""
    if args.scene is not None or args.limit_margin:
        x, valid_note = _valid_samples(flow, n, cond, seed, solver, args)
    else:
        x = flow.sample(n, cond, seed=seed, chunk_size=args.chunk_size or sample_cfg["chunk_size"], **solver)
    used = {**flow.solver, **solver}
    c = None if cond is None else cond.to(x.dtype).cpu()
    provenance = {"kind": "samples", "checkpoint": str(Path(args.checkpoint).resolve()), "seed": int(seed),
                  "n": int(n), "solver": {k: used[k] for k in ("method", "steps", "step", "atol", "rtol")},
                  "conditional": bool(flow.cond_dim)}
    extras, columns, fk_note = None, columns_from_config(cfg, flow.manifold), ""
    if flow.robot_spec is not None:
        # a robot's joint model: store the end-effector pose of every sample (forward kinematics) beside it

        sampler = PoseSampler(flow, quat_order=args.quat_order)
        fk = sampler.forward_kinematics(x[:, sampler.joint_columns])
        extras = {"fk_position": fk["position"], "fk_quat": fk["quat"]}
        provenance["robot"] = dict(flow.robot_spec, joint_names=list(sampler.joint_names))
        provenance["fk_quat_order"] = args.quat_order
        inside = float(sampler.robot.within_limits(x[:, sampler.joint_columns].double()).float().mean())
        fk_note = (f"; with the {sampler.robot.name} end-effector pose (extras/fk_position, extras/fk_quat, "
                   f"{args.quat_order}); {100 * inside:.1f} % of the joints inside the limits")
    # the samples are points: stored on the flow's geometry (a flow on S2[fourier=6] draws points on S2)
    points_on = flow.manifold.geometry
    save_points(out, x.cpu(), points_on, columns=columns, conditions=c,
                condition_columns=condition_columns(cfg, flow.cond_dim) if c is not None else None,
                quat_order=args.quat_order, provenance=provenance, overwrite=True, extras=extras)
    quat = f", quaternions stored {args.quat_order}" if any(f.spec == "SO3" for f in flow.manifold.factors) else ""
    say(f"wrote {n} samples on {points_on!r} to {out} (seed {seed}, {used['method']} {used['steps']} steps"
        f"{quat}){fk_note}{valid_note}")
    return 0


def _valid_samples(flow, n, cond, seed, solver, args):
    """``--scene`` / ``--limit-margin``: only valid robot states, by rejection; ``(x (n, D), note)``."""
    if flow.robot_spec is None:
        raise UsageError("--scene and --limit-margin need a model of a robot's joints (trained with data.robot)")
    if args.limit_margin < 0:
        raise UsageError(f"--limit-margin must be >= 0, got {args.limit_margin}")
    sampler = PoseSampler(flow, solver={k: solver[k] for k in ("method", "steps") if k in solver})
    checker = None
    if args.scene is not None:
        try:
            scene = Scene.from_yaml(args.scene)
        except ValueError as e:
            raise UsageError(f"--scene: {e}") from None
        checker = CollisionChecker(sampler.robot, scene)
    out = sampler.sample(n, condition=None if cond is None else cond[:1], seed=seed, checker=checker,
                         limit_margin=args.limit_margin)
    what = " and ".join(w for w, on in (("collision-free in the scene and with itself", checker is not None),
                                        (f"{args.limit_margin:g} inside the limits", bool(args.limit_margin))) if on)
    note = f"; every sample {what} (acceptance rate {100 * out['acceptance_rate']:.1f} %, {out['n_drawn']} drawn)"
    return flow.manifold.projx(torch.as_tensor(out["points"])), note


def add_parser(subparsers) -> None:
    """Register this command on the ``posegen`` subparsers."""
    p = subparsers.add_parser("sample", help="draw samples from a trained flow into an HDF5 file",
                              description="Draw samples from a trained flow and write them in posegen's HDF5 layout.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="model.pt (or ckpt.pt) written by posegen train")
    p.add_argument("-n", type=int, default=None, help="number of samples (default: the config's sample.n)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.h5", help="output file (replaced if it exists)")
    p.add_argument("--condition", metavar="X,Y,Z", help="one condition vector for all samples (conditional flows)")
    p.add_argument("--condition-file", metavar="F", help="condition rows (CSV/TSV/NPY or posegen .h5): one row for "
                   "all samples, or one per sample")
    solver_flags(p)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's sample.seed, 0)")
    p.add_argument("--chunk-size", type=int, default=None, help="samples integrated at once (memory bound)")
    p.add_argument("--quat-order", choices=("xyzw", "wxyz"), default="xyzw",
                   help="how to store quaternions (default xyzw; wxyz for MuJoCo/PyTorch3D)")
    p.add_argument("--config", help="config to read defaults from (default: config.yaml beside the checkpoint)")
    p.add_argument("--scene", metavar="SCENE.yaml", help="only configurations that are collision-free in this scene "
                   "(and with the robot itself), drawn by rejection; the acceptance rate is reported")
    p.add_argument("--limit-margin", type=float, default=0.0, metavar="M",
                   help="only configurations whose joints are at least M (rad, or m) inside their limits")
    device_flag(p)
    debug_flag(p)
    p.set_defaults(run=run)
