"""The one training loop, for every objective and every model: batch source, schedule, time and step
budgets, EMA, validation NLL, atomic checkpoints, resume, data-parallel ranks.

Models that learn (pose flows, :class:`~posegen.samplers.IKSampler`, grasp samplers) call it with a batch
source (:mod:`.sources`): a dataset, or a stream of fresh samples. No other module steps an optimiser.

Reproducibility: all randomness of a step (batch indices or fresh samples, SO3 sign flips, the objective's
times, noise, kernel samples and Hutchinson probes) comes from one generator re-seeded from
``(seed, step, rank)`` at the start of the step. A resumed run therefore draws exactly what the
uninterrupted run would have drawn, with no generator state to save, and each data-parallel rank draws its
own batch.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from tqdm.auto import tqdm

from ..atomic import atomic_open
from ..checkpoint import load_checkpoint, save_checkpoint
from ..objectives import make_objective
from . import distributed as ddp
from .config import DEFAULT_OBJECTIVE, TrainConfig, TrainingDiverged, TrainResult, make_config
from .ema import EMA
from .schedule import lr_factor
from .sources import BatchSource, as_source

__all__ = ["Trainer", "train"]

#: ``callback(record, trainer)`` after every logged record; ``trainer.ema_flow()`` gives the EMA model
Callback = Callable[[Dict[str, Any], "Trainer"], None]


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 0x9E3779B1 + step * 0x85EBCA77 + rank * 0xC2B2AE3D + 0x27D4EB2F) % (2 ** 63 - 1)


class Trainer:
    """Trains a :class:`~posegen.PoseFlow` with one of posegen's objectives. See :func:`train`.

    Args beyond :func:`train`'s: ``data`` may be a :class:`~posegen.training.sources.BatchSource` (a stream);
    ``callback(record, trainer)`` runs after every logged record (``trainer.ema_flow()`` is a copy of the
    flow with the current EMA weights).
    """

    def __init__(self, flow, data, val_data=None, config: Optional[TrainConfig] = None, out_dir=None,
                 resume: bool = False, metrics_path=None, callback: Optional[Callback] = None):
        self.config = config or TrainConfig()
        self.flow = flow
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume = resume
        self.callback = callback
        self.metrics_path = Path(metrics_path) if metrics_path else (
            self.out_dir / "metrics.jsonl" if self.out_dir else None)
        self.device, self.dist = self._device(self.config.device)
        self.source: BatchSource = as_source(flow, data, "training data")
        if self.source is None:
            raise ValueError("training data is required")
        self.val = as_source(flow, val_data, "validation data")
        if self.val is not None and not hasattr(self.val, "points"):
            raise TypeError("val_data must be a fixed set (points, a (points, conditions) pair or a dataset), "
                            f"not a {type(self.val).__name__}")

    @staticmethod
    def _device(name):
        device = torch.device(name) if name is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        dist = ddp.setup(device)
        if device.type == "cuda" and dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA device is available")
        return device, dist

    # ------------------------------------------------------------------ time and schedule
    def _now(self) -> float:
        """The budget's clock (``config.clock``): elapsed seconds, or this process's CPU seconds."""
        return time.process_time() if self.config.clock == "cpu" else time.perf_counter()

    def _elapsed(self) -> float:
        """Seconds of training so far on the budget's clock (this session's loop, validation excluded, plus
        what a resumed checkpoint had spent)."""
        t0 = getattr(self, "_t0", None)
        spent = self._now() - t0 - self._off_clock if t0 is not None else 0.0
        return getattr(self, "_elapsed_before", 0.0) + spent

    def _progress(self, step: int) -> float:
        """Share of the budget spent: the larger of the step and ``max_minutes`` fractions."""
        cfg = self.config
        steps = step / max(1, cfg.steps) if cfg.steps is not None else 0.0
        minutes = self._elapsed() / (60.0 * cfg.max_minutes) if cfg.max_minutes is not None else 0.0
        return max(steps, minutes)

    def _lr_lambda(self, step: int) -> float:
        cfg = self.config
        return lr_factor(step, self._progress(step), warmup=cfg.warmup, kind=cfg.lr_schedule)

    # ------------------------------------------------------------------ files
    def _ckpt_path(self) -> Optional[Path]:
        return self.out_dir / "ckpt.pt" if self.out_dir else None

    def _save_state(self, step) -> None:
        if not self.out_dir or not self.dist.is_main:
            return
        save_checkpoint({
            "model": self.flow.state(), "ema": self.ema.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "step": int(step), "best": dict(self.best),
            "train_config": asdict(self.config), "elapsed_s": float(self._elapsed()),
        }, self._ckpt_path(), kind="training")
        self.last_good = step

    def _save_model(self, state, step, val) -> None:
        if not self.out_dir or not self.dist.is_main:
            return
        flow = self._copy_flow()
        flow.load_state_dict(state)
        flow.save(self.out_dir / "model.pt", extra={"step": int(step), "val_nll": val,
                                                     "objective": self.config.objective,
                                                     "train_config": asdict(self.config)})

    def _truncate_log(self, step: int) -> None:
        """Keep only the metrics rows of steps ``<= step``, where this run starts: a run resumed from a
        checkpoint replays the steps after it (e.g. after ``kill -9``), so their old rows go, and the log stays
        the log of one run (a fresh run, step 0, starts an empty log). Lines torn by a crash are dropped. The
        file is rewritten atomically."""
        path = self.metrics_path
        if path is None or not self.dist.is_main or not path.exists():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= step:
                keep.append(line)
        if keep != lines:
            with atomic_open(path, "w") as fh:
                fh.writelines(line + "\n" for line in keep)

    def _log(self, record: Dict[str, Any]) -> None:
        if self.metrics_path is None or not self.dist.is_main:
            return
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ models
    def _copy_flow(self):
        """A deep copy of the flow with the plain forward (a compile=True run patches the training net's)."""
        flow = copy.deepcopy(self.flow)
        flow.net.__dict__.pop("forward", None)
        return flow

    def ema_flow(self):
        """A copy of the flow with the current EMA weights, in eval mode (for callbacks and validation)."""
        flow = self._copy_flow()
        self.ema.copy_to(flow)
        return flow.eval()

    @torch.no_grad()
    def _validate(self) -> float:
        flow = self.ema_flow()
        points, conditions = self.val.reference()
        n = min(self.config.val_points, points.shape[0])
        x = points[:n].to(self.device, flow.dtype)
        c = None if conditions is None else conditions[:n].to(self.device, flow.dtype)
        return float(-flow.log_prob(x, c, **self.config.val_solver).mean())

    # ------------------------------------------------------------------ setup
    def _restore(self):
        """The checkpoint to resume from (checked against this run), or None for a fresh start."""
        cfg, path = self.config, self._ckpt_path()
        if not (self.resume and path and path.exists()):
            return None
        ckpt = load_checkpoint(path, map_location="cpu", kind="training")
        saved = ckpt["train_config"]
        for key in ("objective", "objective_options", "batch_size", "seed"):
            if saved.get(key) != getattr(cfg, key):
                raise ValueError(f"cannot resume {path}: it was trained with {key}={saved.get(key)!r}, this run "
                                 f"asks for {getattr(cfg, key)!r}")
        if ckpt["model"]["manifold"] != repr(self.flow.manifold):
            raise ValueError(f"cannot resume {path}: it holds a flow on {ckpt['model']['manifold']!r}, not "
                             f"{self.flow.manifold!r}")
        return ckpt

    def _setup(self):
        """Model, objective, optimiser, schedule and EMA for step ``start``; returns ``(start, objective)``."""
        cfg, flow, dev = self.config, self.flow, self.device
        flow.to(dev)
        ckpt = self._restore()
        start = 0
        if ckpt is not None:
            flow.load_state_dict(ckpt["model"]["state_dict"])
            start = int(ckpt["step"])
            self._elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        elif cfg.fit_standardization:
            flow.fit_standardization(*self.source.reference())
        self._truncate_log(start)
        flow.to(dev)
        ddp.broadcast_parameters(flow, self.dist)
        self.source.bind(flow, dev)
        objective = make_objective(cfg.objective, **cfg.objective_options)
        objective.check(flow)
        objective.setup(flow, *self.source.internal())
        self.objective = objective          # what it chose in setup (e.g. CNFM's end point), for reports
        self.diagnostics = self._diagnostics(objective)

        self.opt = torch.optim.AdamW(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_lambda)
        self.ema = EMA(flow, cfg.ema_decay)
        self.best = {"val_nll": None, "step": None, "bad": 0}
        self.best_state = None  # on resume, the best model so far stays on disk until a better one replaces it
        self.last_good = None
        if ckpt is not None:
            self.opt.load_state_dict(ckpt["optimizer"])
            self.sched.load_state_dict(ckpt["scheduler"])
            self.ema.load_state_dict(ckpt["ema"])
            self.best = dict(ckpt["best"])
            self.last_good = start
        return start, objective

    def _diagnostics(self, objective) -> Dict[str, float]:
        """The objective's figures about its own target (CNFM: the likelihood its path's end point allows,
        ``endpoint_kde_nll``), on the validation points it is validated on; logged beside every validation NLL
        so that a run shows when the path, not the network, is the limit. ``{}`` without validation data."""
        if self.val is None or not self.dist.is_main:
            return {}
        points, _ = self.val.reference()
        flow = self.flow
        z_val = flow.to_internal(points[: self.config.val_points].to(self.device, flow.dtype))
        with torch.no_grad():
            return {k: float(v) for k, v in objective.diagnostics(self.source.internal()[0], z_val).items()}

    # ------------------------------------------------------------------ the loop
    def _step(self, objective, step: int, gen: torch.Generator, autocast) -> torch.Tensor:
        """One optimiser step; returns the loss (on the device, not synchronised)."""
        cfg, flow = self.config, self.flow
        gen.manual_seed(_step_seed(cfg.seed, step, self.dist.rank))
        b = self.source.batch(cfg.batch_size, gen, cfg.augment_so3)
        with autocast:
            loss = objective.loss(flow, b.x, b.c, generator=gen, index=b.index)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        ddp.average_gradients(flow.parameters(), self.dist)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(flow.parameters(), cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.ema.update(flow)
        return loss.detach().float()

    def _check_window(self, window: List[torch.Tensor], step: int) -> None:
        """Raise :class:`TrainingDiverged` if a loss of the window is not finite. The losses stay on the device
        until here (no host sync per step); runs before every checkpoint, so a saved state never follows a
        bad step."""
        if not window:
            return
        losses = torch.stack(window)
        finite = torch.isfinite(losses)
        bad = not bool(finite.all())
        if ddp.any_flag(bad, self.dist, self.device):
            first = int((~finite).nonzero()[0, 0]) if bad else len(window) - 1
            where = (f"the last good checkpoint {self._ckpt_path()} (step {self.last_good}) is kept"
                     if self.last_good is not None else "no checkpoint was written yet")
            raise TrainingDiverged(
                f"loss became {float(losses[first]):.4g} at step {step - len(window) + first} (objective "
                f"{self.config.objective!r}); {where}. Try a lower lr (now {self.config.lr:g}), grad_clip, or "
                f"check the data")

    def _validation(self, step: int, record: Dict[str, Any]) -> bool:
        """Validate, keep the best EMA weights, and say whether patience ran out."""
        val = self._validate() if self.dist.is_main else 0.0
        record["val_nll"] = val
        record.update(self.diagnostics)
        best = self.best
        if best["val_nll"] is None or val < best["val_nll"]:
            best.update(val_nll=val, step=step, bad=0)
            self.best_state = {k: v.detach().clone() for k, v in self.ema.shadow.items()}
            self._save_model(self.best_state, step, val)
        else:
            best["bad"] += 1
        stop = bool(self.config.patience) and best["bad"] >= self.config.patience
        return ddp.broadcast_flag(stop, self.dist, self.device)

    def _due(self, every: int, step: int) -> bool:
        return bool(every) and step % every == 0

    def fit(self) -> TrainResult:
        """Run the loop until the step or time budget is spent (or patience runs out); see :func:`train`."""
        cfg, flow, dev = self.config, self.flow, self.device
        start, objective = self._setup()
        # Draws on the training device: a CUDA generator for CUDA data (no host draws copied each step);
        # the CPU stream is unchanged. Seeds reproduce a run on the same kind of device, not across kinds.
        gen = torch.Generator(device=dev) if dev.type == "cuda" else torch.Generator()
        history: List[Dict[str, Any]] = []
        progress = _Progress(cfg, start, self.dist.is_main)
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)
        model_fn = None
        if cfg.compile:
            model_fn = torch.compile(flow.net.forward)
            flow.net.forward = model_fn
        step, stopped_early, window, t_window = start, False, [], time.perf_counter()
        self._t0, self._off_clock = self._now(), 0.0
        try:
            while cfg.steps is None or step < cfg.steps:
                window.append(self._step(objective, step, gen, autocast))
                step += 1
                progress.update()
                out_of_time = cfg.max_minutes is not None and self._elapsed() >= 60.0 * cfg.max_minutes
                final = step == cfg.steps or out_of_time
                validate = self.val is not None and (self._due(cfg.val_every, step) or final)
                log = self._due(cfg.log_every, step) or final
                if log or validate or self._due(cfg.checkpoint_every, step):
                    self._check_window(window, step)
                record = None
                if log:
                    now = time.perf_counter()
                    record = {"step": step, "loss": float(torch.stack(window).mean()),
                              "lr": self.sched.get_last_lr()[0], "it_per_s": len(window) / max(now - t_window, 1e-9),
                              "elapsed_s": self._elapsed()}
                    window, t_window = [], now
                if validate:
                    record = record or {"step": step}
                    v0 = self._now()
                    stopped_early = self._validation(step, record)
                    self._off_clock += self._now() - v0   # the budget is training, not scoring
                stopped_early = stopped_early or out_of_time
                if record is not None:
                    if out_of_time:
                        record["stopped"] = f"max_minutes={cfg.max_minutes:g}"
                    history.append(record)
                    self._log(record)
                    progress.show(record)
                    if self.callback is not None:
                        self.callback(record, self)
                if self._due(cfg.checkpoint_every, step) or final or stopped_early:
                    self._save_state(step)
                if stopped_early:
                    break
        except KeyboardInterrupt:
            self._save_state(step)  # Ctrl-C: keep what was learned; resume=True continues from here
            raise
        finally:
            progress.close()
            if model_fn is not None:
                del flow.net.forward  # back to the plain method: saved and copied models carry no compiled code
        seconds = self._elapsed()
        self._ship(step)
        ddp.teardown(self.dist)
        return TrainResult(flow=flow, history=history, best_val_nll=self.best["val_nll"],
                           best_step=self.best["step"], steps_done=step, stopped_early=stopped_early,
                           out_dir=self.out_dir, seconds=seconds, validation_seconds=self._off_clock)

    def _ship(self, step: int) -> None:
        """Load the weights the run ships: the best validated EMA ones if there was validation, else the
        final EMA ones (written to ``model.pt`` then)."""
        flow = self.flow
        if self.best_state is not None:
            flow.load_state_dict(self.best_state)
        elif self.best["val_nll"] is not None and self.out_dir and (self.out_dir / "model.pt").exists():
            flow.load_state_dict(load_checkpoint(self.out_dir / "model.pt", map_location="cpu")["state_dict"])
        else:
            self.ema.copy_to(flow)
            self._save_model(self.ema.shadow, step, None)
        flow.to(self.device)


class _Progress:
    """The progress bar (main rank, ``config.progress``): steps done, last loss and validation NLL."""

    def __init__(self, cfg: TrainConfig, start: int, is_main: bool):
        self.bar = None
        if cfg.progress and is_main:
            self.bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.objective}", dynamic_ncols=True)
        self.post: Dict[str, str] = {}

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def show(self, record: Dict[str, Any]) -> None:
        if self.bar is None:
            return
        if record.get("loss") is not None:
            self.post["loss"] = f"{record['loss']:.4g}"
        if "val_nll" in record:
            self.post["val_nll"] = f"{record['val_nll']:.4g}"
        if "endpoint_kde_nll" in record:   # CNFM: the bound its target path puts on the validation NLL
            self.post["path_bound"] = f"{record['endpoint_kde_nll']:.4g}"
        self.bar.set_postfix(self.post)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(flow, data, objective: str = DEFAULT_OBJECTIVE, *, val_data=None, out_dir=None, resume: bool = False,
          metrics_path=None, config: Optional[TrainConfig] = None, callback: Optional[Callback] = None,
          **options) -> TrainResult:
    """Train ``flow`` on ``data`` with one of posegen's objectives.

    Args:
        flow: a :class:`~posegen.PoseFlow` (use ``parametrization="moser"`` for ``objective="moser"``).
        data: points ``(N, coord_dim)`` in user coordinates (tensor or array), a ``(points, conditions)``
            pair, a dataset with ``.points`` and ``.conditions`` (:class:`posegen.data.PoseDataset`), or a
            :class:`~posegen.training.sources.StreamSource` of fresh samples. Fixed data are checked before any
            work starts: wrong width, NaN/inf and points off the manifold are refused; quaternions slightly off
            unit norm are normalised with a warning.
        objective: ``"rfm"`` (default), ``"cnfm"`` (probability path divergence), ``"interpolant"`` or
            ``"moser"``. See :data:`~posegen.training.config.DEFAULT_OBJECTIVE` for why RFM is the default.
        val_data: held-out data for the validation NLL (EMA weights), early stopping and best-model choice.
        out_dir: where ``ckpt.pt`` (full training state), ``model.pt`` (the shipped EMA model) and
            ``metrics.jsonl`` go. Checkpoints are written atomically (:mod:`posegen.atomic`); metrics rows are
            appended. None: nothing is written.
        resume: continue from ``out_dir/ckpt.pt`` if it exists; the result equals an uninterrupted run, and
            the metrics file keeps the rows up to the checkpoint's step (the steps after it are run again).
        metrics_path: JSON-lines metrics file (default ``out_dir/metrics.jsonl``); a run starting at step 0
            empties it.
        config: a :class:`~posegen.training.TrainConfig`; keyword ``options`` override its fields (``steps``,
            ``max_minutes``, ``batch_size``, ``lr``, ``device``, ``objective_options``, ``patience``, ...).
        callback: ``callback(record, trainer)`` after every logged record.

    Returns:
        :class:`~posegen.training.TrainResult` with the trained flow (EMA weights, the best validated ones
        when ``val_data`` is given), the metrics history and the best validation NLL.
    """
    cfg = make_config(config, **options, objective=objective)
    if cfg.bf16 and (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cpu"):
        warnings.warn("bf16 autocast on CPU is slow and only useful for testing; it is meant for GPUs")
    return Trainer(flow, data, val_data=val_data, config=cfg, out_dir=out_dir, resume=resume,
                   metrics_path=metrics_path, callback=callback).fit()
