"""``posegen train CONFIG``: read the config, load the data, build the flow, train, write the run folder.

Run folder (``--out``, default ``runs/<config name>``)::

    config.yaml     the resolved config (defaults filled, overrides applied, data path absolute)
    model.pt        the trained flow (EMA weights; the best validated ones when there is validation data)
    ckpt.pt         full training state (``--resume`` continues from it; Ctrl-C writes it)
    metrics.jsonl   one JSON record per logged step (loss, lr, it/s, val_nll)
    plots/          training curves and samples against data
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict

import torch

from .. import plots
from ..config import dump_config, load_config, objective_parametrization
from ..flow import PoseFlow
from ..robots import load
from ..training import train
from .common import check_device, note, say
from .datasets import data_path, factor_labels, load_splits, model_manifold
from .options import debug_flag, device_flag

RUN_FILES = ("model.pt", "ckpt.pt", "metrics.jsonl")


def build_flow(cfg: Dict[str, Any], manifold, cond_dim: int):
    """The untrained :class:`~posegen.PoseFlow` a config asks for (``moser`` objective: Moser
    parametrization; ``sample.solver`` becomes the flow's default integrator)."""
    m = cfg["model"]
    # The trainer seeds every step's draws; the initial weights are seeded here, so that one config and
    # seed give one run (and a resumed run equals an uninterrupted one). The caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg["train"]["seed"]))
        return PoseFlow(manifold, hidden=m["hidden"], depth=m["depth"], cond_dim=cond_dim,
                        conditioning=m["conditioning"], activation=m["activation"], time_freqs=m["time_freqs"],
                        parametrization=objective_parametrization(cfg["objective"]["name"]),
                        moser_eps=m["moser_eps"], solver=cfg["sample"]["solver"], robot=_robot_spec(cfg))


def _robot_spec(cfg: Dict[str, Any]):
    """``data.robot`` as the plain data saved with the model (None without a robot)."""
    name = cfg["data"].get("robot")
    if not name:
        return None

    return load(name, ee_link=cfg["data"].get("ee_link")).spec


def _prepare_out(out: Path, resume: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    old = [f for f in RUN_FILES if (out / f).exists()]
    if resume:
        if not (out / "ckpt.pt").exists():
            note(f"--resume: no {out / 'ckpt.pt'} to continue from; starting a new run")
            for f in old:
                (out / f).unlink()
        return
    if old:
        # A new run must not append to an old run's metrics or ship its model; --resume keeps them.
        note(f"replacing the previous run in {out} ({', '.join(old)}); use --resume to continue it instead")
        for f in old:
            (out / f).unlink()


def run(args) -> int:
    cfg = load_config(args.config, args.set)
    if args.device is not None:
        cfg["train"]["device"] = check_device(args.device)
    else:
        check_device(cfg["train"]["device"])
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem

    splits = load_splits(cfg, ("train", "valid"))
    if "train" not in splits:
        raise ValueError("the data section gives no training points (empty train split)")
    train_ds, val_ds = splits["train"], splits.get("valid")
    M = model_manifold(cfg, train_ds.manifold)   # the data's, or the config's with model options (S2[fourier=6])
    cfg["manifold"] = repr(M)
    if cfg["data"]["path"] and cfg["data"]["source"] != "earth":
        cfg["data"]["path"] = str(data_path(cfg["data"], cfg.get("_config_path")))
    cond_dim = 0 if train_ds.conditions is None else int(train_ds.conditions.shape[1])
    flow = build_flow(cfg, M, cond_dim)

    _prepare_out(out, args.resume)
    dump_config(cfg, out / "config.yaml")
    t = cfg["train"]
    cond = f", conditioned on {cond_dim} values" if cond_dim else ""
    say(f"posegen train: {M!r} (dim {M.dim}{cond}); {len(train_ds)} training points"
        + (f", {len(val_ds)} validation points" if val_ds is not None else ", no validation data")
        + f"; objective {cfg['objective']['name']}, {t['steps']} steps, batch {t['batch_size']}")
    say(f"run folder: {out}")

    try:
        result = train(flow, train_ds, cfg["objective"]["name"], val_data=val_ds, out_dir=out,
                       resume=args.resume, objective_options=cfg["objective"]["options"], **t)
    except KeyboardInterrupt:
        ckpt = out / "ckpt.pt"
        where = f"training state saved to {ckpt}" if ckpt.exists() else "no checkpoint was written yet"
        print(f"posegen train: interrupted; {where}. Continue with: posegen train {args.config} --out {out} "
              f"--resume", file=sys.stderr, flush=True)
        return 130

    best = (f"; best validation NLL {result.best_val_nll:.4f} nats at step {result.best_step}"
            if result.best_val_nll is not None else "")
    stop = " (stopped early: no validation improvement)" if result.stopped_early else ""
    say(f"trained {result.steps_done} steps{stop}{best}")
    say(f"model:   {out / 'model.pt'}")
    say(f"config:  {out / 'config.yaml'}")
    say(f"metrics: {out / 'metrics.jsonl'}")
    if cfg["plot"]["enabled"]:
        shown = {"train": train_ds, "valid": val_ds}.get(cfg["plot"]["split"]) or train_ds
        write_run_plots(out, cfg, result.flow, shown)
    return 0


def write_run_plots(out: Path, cfg: Dict[str, Any], flow, data) -> None:
    """Training curves and samples against ``data`` into ``out/plots``; skipped with a note when
    matplotlib is missing (training results do not depend on it)."""
    try:
        paths = []
        if (out / "metrics.jsonl").exists():
            paths.append(plots.plot_training_curves(out / "metrics.jsonl", out / "plots" / "training.png"))
        paths += samples_vs_data(out / "plots", cfg, flow, data)
    except ImportError as e:
        note(f"plots skipped: {e}")
        return
    say(f"plots:   {', '.join(str(p) for p in paths)}")


def samples_vs_data(out_dir: Path, cfg: Dict[str, Any], flow, data):
    """Draw ``plot.n`` samples (one per data condition for conditional flows) and plot them against
    ``data`` (a PoseDataset); returns the figure paths."""
    p = cfg["plot"]
    n = min(p["n"], len(data)) if flow.cond_dim else p["n"]
    ref = data.subsample(n=n, seed=0) if len(data) > n else data
    cond = ref.conditions if flow.cond_dim else None
    solver = dict(p["solver"])
    flow.eval()
    x = flow.sample(n, cond, seed=cfg["sample"]["seed"], device="cpu", **solver)
    return plots.plot_samples_vs_data(out_dir, flow.manifold, x, ref.points.to(torch.float64),
                                      flow=flow, labels=factor_labels(cfg, flow.manifold),
                                      grid=p["grid"], solver=solver)


def add_parser(subparsers) -> None:
    """Register this command on the ``posegen`` subparsers."""
    p = subparsers.add_parser("train", help="train a flow from a YAML config",
                              description="Train a flow from a YAML config; writes model.pt, config.yaml, "
                              "metrics.jsonl and plots/ to the run folder.")
    p.add_argument("config", metavar="CONFIG", help="YAML config (see configs/)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key (train.steps=100, or the short form steps=100); repeatable")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<config name>)")
    device_flag(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its ckpt.pt")
    debug_flag(p)
    p.set_defaults(run=run)
