"""The training loop shared by every objective: data gate, EMA, validation NLL, atomic checkpoints, resume.

Reproducibility: all randomness of a step (batch indices, SO3 sign flips, the objective's times, noise,
kernel samples and Hutchinson probes) comes from one generator re-seeded from ``(seed, step, rank)`` at the
start of the step. A resumed run therefore draws exactly what the uninterrupted run would have drawn, with
no generator state to save, and each data-parallel rank draws its own batch.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..atomic import atomic_open
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.validate import validate_points
from ..objectives import make_objective
from ..solvers.defaults import preview_solver
from . import distributed as ddp
from .ema import EMA

LR_SCHEDULES = ("cosine", "constant")
# The default objective is the one benchmarks/RESULTS.md favours on posegen's main use, robot manifolds:
# at equal steps (1500, width 64, 2-core CPU) RFM reached test NLL 0.78 on Panda joints (T7), -4.6 on the
# end-effector pose (R3 x SO3) and -4.0 on the full configuration (R3 x T7 x S3), where CNFM reached 5.1,
# -0.4 and 17.7, and RFM steps are 4-20x cheaper. CNFM leads on the earth sets (S2) at equal steps (e.g.
# fire 0.74 vs 1.06), so the earth configs use it.
DEFAULT_OBJECTIVE = "rfm"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class TrainConfig:
    """Settings of :func:`train` (all plain data, stored in checkpoints)."""

    objective: str = DEFAULT_OBJECTIVE
    objective_options: Dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    warmup: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    val_every: int = 500
    val_points: int = 2048
    val_solver: Dict[str, Any] = field(default_factory=preview_solver)
    patience: int = 0
    checkpoint_every: int = 500
    augment_so3: bool = True
    bf16: bool = False
    fit_standardization: bool = True
    device: Optional[str] = None
    progress: bool = True
    max_minutes: Optional[float] = None
    compile: bool = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "val_every", "checkpoint_every", "val_points"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f'Invalid lr_schedule "{self.lr_schedule}". Must be one of {sorted(LR_SCHEDULES)}')
        if self.patience < 0 or self.warmup < 0:
            raise ValueError("patience and warmup must be >= 0")
        if self.max_minutes is not None and not (float(self.max_minutes) > 0 and math.isfinite(self.max_minutes)):
            raise ValueError(f"max_minutes must be a positive number or None, got {self.max_minutes!r}")


@dataclass
class TrainResult:
    flow: Any
    history: List[Dict[str, Any]]
    best_val_nll: Optional[float]
    best_step: Optional[int]
    steps_done: int
    stopped_early: bool
    out_dir: Optional[Path]


def _split_data(data):
    """``(points, conditions)`` from a tensor/array or a dataset with ``.points`` (and ``.conditions``)."""
    if data is None:
        return None, None
    if hasattr(data, "points"):
        return data.points, getattr(data, "conditions", None)
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        return data[0], data[1]
    return data, None


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 0x9E3779B1 + step * 0x85EBCA77 + rank * 0xC2B2AE3D + 0x27D4EB2F) % (2 ** 63 - 1)


class Trainer:
    """Trains a :class:`~posegen.PoseFlow` with one of posegen's objectives. See :func:`train`."""

    def __init__(self, flow, data, val_data=None, config: Optional[TrainConfig] = None, out_dir=None,
                 resume: bool = False, metrics_path=None):
        self.config = config or TrainConfig()
        self.flow = flow
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume = resume
        self.metrics_path = Path(metrics_path) if metrics_path else (
            self.out_dir / "metrics.jsonl" if self.out_dir else None)
        cfg = self.config
        if cfg.device is not None:
            device = torch.device(cfg.device)
        else:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dist = ddp.setup(device)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA device is available")
        self.device = device
        self.points, self.conditions = self._gate(data, "training data")
        self.val_points, self.val_conditions = self._gate(val_data, "validation data")

    # ------------------------------------------------------------------ data gate
    def _gate(self, data, name):
        points, conditions = _split_data(data)
        if points is None:
            return None, None
        flow = self.flow
        points, keep = validate_points(flow.manifold, points, name=name)
        points = points.to(torch.get_default_dtype() if not points.is_floating_point() else points.dtype)
        if points.shape[0] == 0:
            raise ValueError(f"{name} is empty")
        if flow.cond_dim:
            if conditions is None:
                raise ValueError(f"the flow is conditional (cond_dim={flow.cond_dim}) but {name} has no "
                                 f"conditions")
            conditions = torch.as_tensor(conditions)
            if conditions.dim() != 2 or conditions.shape[1] != flow.cond_dim:
                raise ValueError(f"{name} conditions must have shape (N, {flow.cond_dim}), got "
                                 f"{tuple(conditions.shape)}")
            conditions = conditions[keep.to(conditions.device)] if keep is not None else conditions
            if conditions.shape[0] != points.shape[0]:
                raise ValueError(f"{name}: {points.shape[0]} points but {conditions.shape[0]} condition rows")
            if not torch.isfinite(conditions).all():
                raise ValueError(f"{name} conditions contain NaN or inf")
        elif conditions is not None:
            raise ValueError(f"{name} has conditions but the flow is unconditional (cond_dim=0); "
                             f"build it with PoseFlow(..., cond_dim={torch.as_tensor(conditions).shape[-1]})")
        return points, conditions

    # ------------------------------------------------------------------ pieces
    def _lr_lambda(self, step: int) -> float:
        cfg = self.config
        warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
        if cfg.lr_schedule == "constant":
            return warm
        progress = min(1.0, max(step / max(1, cfg.steps), self._time_progress()))
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def _elapsed(self) -> float:
        """Seconds of training so far (this session's loop plus what a resumed checkpoint had spent)."""
        t0 = getattr(self, "_t0", None)
        return getattr(self, "_elapsed_before", 0.0) + (time.perf_counter() - t0 if t0 is not None else 0.0)

    def _time_progress(self) -> float:
        """Fraction of ``max_minutes`` spent (0 without a budget): the cosine schedule follows whichever of
        steps and time runs out first, so a budgeted run still ends at the low learning rate."""
        if self.config.max_minutes is None:
            return 0.0
        return self._elapsed() / (60.0 * self.config.max_minutes)

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # other coordinates of the same points (SO3: q or -q); a no-op for factors without such symmetry
        if not self.config.augment_so3:
            return x
        return self.flow.manifold.augment(x, gen)

    def _ckpt_path(self) -> Optional[Path]:
        return self.out_dir / "ckpt.pt" if self.out_dir else None

    def _save_state(self, step, opt, sched, ema, best) -> None:
        if not self.out_dir or not self.dist.is_main:
            return
        save_checkpoint({
            "model": self.flow.state(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "step": int(step), "best": dict(best),
            "train_config": asdict(self.config), "elapsed_s": float(self._elapsed()),
        }, self._ckpt_path(), kind="training")

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

    def _copy_flow(self):
        """A deep copy of the flow with the plain forward (a compile=True run patches the training net's)."""
        flow = copy.deepcopy(self.flow)
        flow.net.__dict__.pop("forward", None)
        return flow

    @torch.no_grad()
    def _validate(self, ema: EMA) -> float:
        flow = self._copy_flow()
        ema.copy_to(flow)
        flow.eval()
        n = min(self.config.val_points, self.val_points.shape[0])
        x = self.val_points[:n].to(self.device, flow.dtype)
        c = None if self.val_conditions is None else self.val_conditions[:n].to(self.device, flow.dtype)
        lp = flow.log_prob(x, c, **self.config.val_solver)
        return float(-lp.mean())

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        cfg, flow, dev = self.config, self.flow, self.device
        flow.to(dev)
        start, ckpt = 0, None
        if self.resume and self._ckpt_path() and self._ckpt_path().exists():
            ckpt = load_checkpoint(self._ckpt_path(), map_location="cpu", kind="training")
            saved = ckpt["train_config"]
            for key in ("objective", "objective_options", "batch_size", "seed"):
                if saved.get(key) != getattr(cfg, key):
                    raise ValueError(f"cannot resume {self._ckpt_path()}: it was trained with {key}="
                                     f"{saved.get(key)!r}, this run asks for {getattr(cfg, key)!r}")
            if ckpt["model"]["manifold"] != repr(flow.manifold):
                raise ValueError(f"cannot resume {self._ckpt_path()}: it holds a flow on "
                                 f"{ckpt['model']['manifold']!r}, not {flow.manifold!r}")
            flow.load_state_dict(ckpt["model"]["state_dict"])
            start = int(ckpt["step"])
            self._elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        elif cfg.fit_standardization:
            flow.fit_standardization(self.points, self.conditions)
        self._truncate_log(start)
        flow.to(dev)
        ddp.broadcast_parameters(flow, self.dist)

        z = flow.to_internal(self.points.to(dev, flow.dtype))
        cond = None if self.conditions is None else self.conditions.to(dev, flow.dtype)
        objective = make_objective(cfg.objective, **cfg.objective_options)
        objective.check(flow)
        objective.setup(flow, z, cond)

        opt = torch.optim.AdamW(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_lambda)
        ema = EMA(flow, cfg.ema_decay)
        best = {"val_nll": None, "step": None, "bad": 0}
        if ckpt is not None:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            ema.load_state_dict(ckpt["ema"])
            best = dict(ckpt["best"])
        best_state = None  # on resume, the best model so far stays on disk until a better one replaces it

        # Draws on the training device: a CUDA generator for CUDA data (no host draws copied each step);
        # the CPU stream is unchanged. Seeds reproduce a run on the same kind of device, not across kinds.
        gen = torch.Generator(device=dev) if dev.type == "cuda" else torch.Generator()
        N = z.shape[0]
        history: List[Dict[str, Any]] = []
        stopped_early = False
        last_good = start if ckpt is not None else None
        pbar = None
        if cfg.progress and self.dist.is_main:
            from tqdm.auto import tqdm

            pbar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.objective}", dynamic_ncols=True)
        window, t_window = [], time.perf_counter()
        last_loss = last_val = None  # what the progress bar shows between records
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)
        model_fn = None
        if cfg.compile:
            model_fn = torch.compile(flow.net.forward)
            flow.net.forward = model_fn
        step = start
        self._t0 = time.perf_counter()

        def check_window():
            # The losses of the window stay on the device until here (no host sync per step); a non-finite
            # one names its step. Runs before every checkpoint, so a saved state never follows a bad step.
            if not window:
                return
            losses = torch.stack(window)
            finite = torch.isfinite(losses)
            bad = not bool(finite.all())
            if ddp.any_flag(bad, self.dist, dev):
                first = int((~finite).nonzero()[0, 0]) if bad else len(window) - 1
                where = (f"the last good checkpoint {self._ckpt_path()} (step {last_good}) is kept"
                         if last_good is not None else "no checkpoint was written yet")
                raise TrainingDiverged(
                    f"loss became {float(losses[first]):.4g} at step {step - len(window) + first} (objective "
                    f"{cfg.objective!r}); {where}. Try a lower lr (now {cfg.lr:g}), grad_clip, or check the data")

        try:
            while step < cfg.steps:
                gen.manual_seed(_step_seed(cfg.seed, step, self.dist.rank))
                idx = torch.randint(N, (cfg.batch_size,), generator=gen, device=gen.device).to(dev)
                x1 = self._augment(z[idx], gen)
                c1 = None if cond is None else cond[idx]
                with autocast:
                    loss = objective.loss(flow, x1, c1, generator=gen, index=idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                ddp.average_gradients(flow.parameters(), self.dist)
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(flow.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                ema.update(flow)
                step += 1
                window.append(loss.detach().float())
                if pbar is not None:
                    pbar.update(1)
                out_of_time = cfg.max_minutes is not None and self._time_progress() >= 1.0
                final = step == cfg.steps or out_of_time

                record = None
                validate = self.val_points is not None and (step % cfg.val_every == 0 or final)
                if step % cfg.log_every == 0 or final or validate or step % cfg.checkpoint_every == 0:
                    check_window()
                if step % cfg.log_every == 0 or final:
                    now = time.perf_counter()
                    record = {"step": step, "loss": float(torch.stack(window).mean()) if window else None,
                              "lr": sched.get_last_lr()[0], "it_per_s": len(window) / max(now - t_window, 1e-9)}
                    window, t_window = [], now
                if validate:
                    record = record or {"step": step}
                    val = self._validate(ema) if self.dist.is_main else 0.0
                    record["val_nll"] = val
                    if best["val_nll"] is None or val < best["val_nll"]:
                        best.update(val_nll=val, step=step, bad=0)
                        best_state = {k: v.detach().clone() for k, v in ema.shadow.items()}
                        self._save_model(best_state, step, val)
                    else:
                        best["bad"] += 1
                    stop = bool(cfg.patience) and best["bad"] >= cfg.patience
                    if ddp.broadcast_flag(stop, self.dist, dev):
                        stopped_early = True
                if out_of_time:
                    stopped_early = True
                if record is not None:
                    if out_of_time:
                        record["stopped"] = f"max_minutes={cfg.max_minutes:g}"
                    history.append(record)
                    self._log(record)
                    if pbar is not None:
                        if record.get("loss") is not None:
                            last_loss = record["loss"]
                        post = {} if last_loss is None else {"loss": f"{last_loss:.4g}"}
                        if "val_nll" in record:
                            last_val = record["val_nll"]
                        if last_val is not None:
                            post["val_nll"] = f"{last_val:.4g}"
                        pbar.set_postfix(post)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped_early:
                    self._save_state(step, opt, sched, ema, best)
                    last_good = step
                if stopped_early:
                    break
        except KeyboardInterrupt:
            # Ctrl-C: keep what was learned; resume=True continues from here.
            self._save_state(step, opt, sched, ema, best)
            raise
        finally:
            if pbar is not None:
                pbar.close()
            if model_fn is not None:
                del flow.net.forward  # back to the plain method: saved and copied models carry no compiled code

        # Ship the EMA weights: the best validated ones if there was validation, else the final ones.
        if best_state is not None:
            flow.load_state_dict(best_state)
        elif best["val_nll"] is not None and self.out_dir and (self.out_dir / "model.pt").exists():
            flow.load_state_dict(load_checkpoint(self.out_dir / "model.pt", map_location="cpu")["state_dict"])
        else:
            ema.copy_to(flow)
            self._save_model(ema.shadow, step, None)
        flow.to(dev)
        ddp.teardown(self.dist)
        return TrainResult(flow=flow, history=history, best_val_nll=best["val_nll"], best_step=best["step"],
                           steps_done=step, stopped_early=stopped_early, out_dir=self.out_dir)

    def _save_model(self, state, step, val) -> None:
        if not self.out_dir or not self.dist.is_main:
            return
        flow = self._copy_flow()
        flow.load_state_dict(state)
        flow.save(self.out_dir / "model.pt", extra={"step": int(step), "val_nll": val,
                                                     "objective": self.config.objective,
                                                     "train_config": asdict(self.config)})


def train(flow, data, objective: str = DEFAULT_OBJECTIVE, *, val_data=None, out_dir=None, resume: bool = False,
          metrics_path=None, config: Optional[TrainConfig] = None, **options) -> TrainResult:
    """Train ``flow`` on ``data`` with one of posegen's objectives.

    Args:
        flow: a :class:`~posegen.PoseFlow` (use ``parametrization="moser"`` for ``objective="moser"``).
        data: points ``(N, coord_dim)`` in user coordinates (tensor or array), a ``(points, conditions)``
            pair, or a dataset with ``.points`` and ``.conditions`` (:class:`posegen.data.PoseDataset`).
            Checked before any work starts: wrong width, NaN/inf and points off the manifold are refused;
            quaternions slightly off unit norm are normalised with a warning.
        objective: ``"rfm"`` (default), ``"cnfm"`` (probability path divergence), ``"interpolant"`` or
            ``"moser"``. See :data:`DEFAULT_OBJECTIVE` for why RFM is the default.
        val_data: held-out data for the validation NLL (EMA weights), early stopping and best-model choice.
        out_dir: where ``ckpt.pt`` (full training state), ``model.pt`` (the shipped EMA model) and
            ``metrics.jsonl`` go. Checkpoints are written atomically (:mod:`posegen.atomic`); metrics rows are
            appended. None: nothing is written.
        resume: continue from ``out_dir/ckpt.pt`` if it exists; the result equals an uninterrupted run, and
            the metrics file keeps the rows up to the checkpoint's step (the steps after it are run again).
        metrics_path: JSON-lines metrics file (default ``out_dir/metrics.jsonl``); a run starting at step 0
            empties it.
        config: a :class:`TrainConfig`; keyword ``options`` override its fields (``steps``,
            ``batch_size``, ``lr``, ``device``, ``objective_options``, ``patience``, ``bf16``, ...).

    Returns:
        :class:`TrainResult` with the trained flow (EMA weights, the best validated ones when
        ``val_data`` is given), the metrics history and the best validation NLL.
    """
    base = asdict(config) if config is not None else {}
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - known
    if unknown:
        import difflib

        hints = [f"{u!r} (did you mean {difflib.get_close_matches(u, known, 1)[0]!r}?)"
                 if difflib.get_close_matches(u, known, 1) else repr(u) for u in sorted(unknown)]
        raise TypeError(f"unknown training option(s) {', '.join(hints)}; valid: {sorted(known)}")
    cfg = TrainConfig(**{**base, **options, "objective": objective})
    if cfg.bf16 and (cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cpu"):
        warnings.warn("bf16 autocast on CPU is slow and only useful for testing; it is meant for GPUs")
    return Trainer(flow, data, val_data=val_data, config=cfg, out_dir=out_dir, resume=resume,
                   metrics_path=metrics_path).fit()
