"""``posegen plot CHECKPOINT|SAMPLES.h5 [--data FILE] [--config CONFIG] [--out DIR]``: PNG figures.

From a checkpoint the model is sampled (``plot.n`` points; one per data condition for conditional flows)
and, for a flow on S2, its density is drawn on a world map. From a samples file (``posegen sample``) the
stored samples are drawn. Either way the data, when there are any (``--data`` read with the config's data
section, or the config's own data), are drawn beside them, and the training curves are drawn when a
``metrics.jsonl`` lies in the same folder. A model of a robot's joints (the checkpoint's robot, the samples
file's, or the config's ``data.robot``) also gets ``workspace.png``: the end-effector positions of the sampled
and of the recorded joints by the robot's forward kinematics.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .. import plots
from ..config import default_config
from ..data import DataWarning, load_points
from ..data.h5io import load_extras
from ..robots import as_robot
from ..samplers.parts import JOINT_ROLES, manifold_parts
from .common import UsageError, config_for, load_flow, missing_split, say, sniff
from .datasets import check_same_points, config_robot, factor_labels, load_splits
from .options import debug_flag, device_flag


def _reference_data(args, cfg):
    """The data to draw beside the samples, or None."""
    split = args.split or (cfg or default_config())["plot"]["split"]
    if args.data is not None:
        path = Path(args.data)
        if not path.exists():
            raise FileNotFoundError(f"data file '{path}' does not exist")
        if cfg is None:
            if path.is_file() and sniff(path) == "posegen-points":
                return load_points(path)
            raise UsageError(f"no config to read '{path}' with: pass --config (the training config.yaml) or give a "
                             f"posegen points file")
        splits = load_splits(cfg, (split,), path=path)
    elif cfg is not None:
        splits = load_splits(cfg, (split,))
    else:
        return None
    if "all" in splits:
        return splits["all"]
    if split not in splits:
        raise missing_split(split)
    return splits[split]


def _quietly(load, *args):
    """``load(*args)`` without the data gate's notes: its changes (joints within 1e-4 of the range of a limit moved
    inside, quaternions renormalised) are nothing a figure shows, and for a ``posegen sample`` file, which the flow
    drew on its manifold, no news about the user's data either; ``posegen train`` and ``posegen eval`` say them
    for the training data. Refusals still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return load(*args)


def _robot(flow, samples_ds, cfg):
    """The robot whose joints the model draws: the checkpoint's, the samples file's, else ``data.robot``."""
    spec = flow.robot_spec if flow is not None else (samples_ds.meta.get("provenance") or {}).get("robot")
    if spec:
        return as_robot(spec, "posegen plot")
    return config_robot(cfg) if cfg else None


def _workspace(out: Path, robot, M, samples, data, fk_position=None):
    """``workspace.png``: FK positions of the sampled joints (``fk_position (N, 3)`` when the samples file
    stores them) against the data's; None when ``M`` holds no joints of ``robot``."""
    cols = [c for p in manifold_parts(M) if p.role in JOINT_ROLES for c in range(p.columns.start, p.columns.stop)]
    if not cols:
        return None
    if len(cols) != robot.dof:
        say(f"no workspace plot: the robot {robot.name!r} has {robot.dof} joints but {M!r} has {len(cols)} "
            f"joint coordinates")
        return None
    s_pos = fk_position if fk_position is not None else robot.pose(samples[:, cols].double())[0]
    d_pos = None if data is None else robot.pose(data[:, cols].double())[0]
    return plots.plot_workspace(out / "workspace.png", s_pos, d_pos, title=f"{robot.name} ({robot.ee_link})")


def run(args) -> int:
    src = Path(args.input)
    if not src.exists():
        raise FileNotFoundError(f"'{src}' does not exist (expected a checkpoint or a samples .h5 file)")
    cfg = config_for(src, args.config)
    out = Path(args.out) if args.out else src.parent / "plots"
    data = _quietly(_reference_data, args, cfg)
    plot_cfg = (cfg or default_config())["plot"]
    n = args.n if args.n is not None else plot_cfg["n"]
    solver = dict(plot_cfg["solver"])
    grid = plot_cfg["grid"]
    flow = samples_ds = fk_position = None
    if src.is_file() and sniff(src) == "posegen-points":
        samples_ds = _quietly(load_points, src)
        M, samples = samples_ds.manifold, samples_ds.points
        fk_position = load_extras(src).get("fk_position")
    else:
        flow = load_flow(src, args.device)
        M = flow.manifold
        cond = None
        if flow.cond_dim:
            if data is None or data.conditions is None:
                raise UsageError("the flow is conditional: pass --data (and --config) so that samples can be drawn "
                                 "for the data's conditions")
            data = data.subsample(n=n, seed=0) if len(data) > n else data
            n, cond = len(data), data.conditions
        samples = flow.sample(n, cond, seed=args.seed, **solver)
    if data is not None:
        check_same_points(M, data.manifold, what="the samples are points on")
    data_points = None if data is None else data.points.to(torch.float64)
    paths = plots.plot_samples_vs_data(out, M, samples, data_points, flow=flow, labels=factor_labels(cfg, M),
                                       grid=grid, solver=solver)
    try:
        robot = _robot(flow, samples_ds, cfg)
    except ImportError as e:  # the robots extra is not installed: the other figures still come
        robot = None
        say(f"no workspace plot: {e}")
    if robot is not None:
        paths.append(_workspace(out, robot, M, samples, data_points, fk_position))
    paths = [p for p in paths if p is not None]
    metrics = src.parent / "metrics.jsonl"
    if metrics.exists():
        paths.insert(0, plots.plot_training_curves(metrics, out / "training.png"))
    for p in paths:
        say(f"wrote {p}")
    return 0


def add_parser(subparsers) -> None:
    """Register this command on the ``posegen`` subparsers."""
    p = subparsers.add_parser("plot", help="PNG figures of samples against data (and training curves)",
                              description="Figures of a checkpoint (sampled) or a samples file against the data.")
    p.add_argument("input", metavar="CHECKPOINT|SAMPLES.h5")
    p.add_argument("--data", metavar="FILE", help="data to draw beside the samples (read with the config)")
    p.add_argument("--config", help="config (default: config.yaml beside the input)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: plots/ beside the input)")
    p.add_argument("--split", choices=("train", "valid", "test"), default=None,
                   help="data split to draw (default: the config's plot.split, train)")
    p.add_argument("-n", type=int, default=None, help="samples drawn from a checkpoint (default: plot.n)")
    p.add_argument("--seed", type=int, default=0, help="seed of those samples")
    device_flag(p)
    debug_flag(p)
    p.set_defaults(run=run)
