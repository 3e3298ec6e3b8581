r"""``GraspSampler``: grasp poses conditioned on an object's geometry, ``p(T | object)``.

>>> gs = GraspSampler()
>>> gs.fit(objects, grasps, max_minutes=30)       # objects: point clouds (P, 3) or meshes; grasps: (n_k, 4, 4)
>>> T = gs.sample(obj, 64, seed=0)               # (64, 4, 4) gripper poses in the object's frame
>>> lp = gs.log_prob(obj, T)                     # (64,) exact log-density, jaw symmetry included
>>> gs.save("grasps.pt"); gs = GraspSampler.load("grasps.pt")

The model is a conditional :class:`~posegen.PoseFlow` on ``R3 x SO3`` (the grasp frame's position and
rotation in the object frame; ACRONYM's convention for the Panda hand: :mod:`posegen.grasps.gripper`)
whose condition is the object's surface point cloud, encoded by a PointNet trained with the flow
(:class:`posegen.models.PointCloudEncoder`). Why PointNet: it takes any number of points in any order, sees
absolute coordinates (the grasp poses are in the same frame, so it must), trains in milliseconds per batch on
a CPU, and is the encoder the point-cloud grasp generators started from (Contact-GraspNet uses its
successor PointNet++).

**Jaw symmetry.** A parallel-jaw grasp ``T`` and ``T Rz(pi)`` are one grasp (the fingers swap). Training
draws either with probability 1/2, and :meth:`log_prob` returns the symmetrised density
``log((p(T) + p(T Rz(pi))) / 2)``, invariant by construction; it is a density w.r.t. the volume of
``R^3 x SO3`` and integrates to 1.

**Scale.** The condition is the cloud in metres, as the object is: a scaled object is a different object,
and the model sees its size directly.

Training is posegen's one loop (:class:`posegen.training.Trainer`) on a stream of (grasp, cloud) pairs: each
step draws objects, a fresh surface cloud of each (a new random subset of its points), one of its grasps and
a jaw flip.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..flow import PoseFlow
from ..rotations import check_rigid, pos_quat_from_se3, se3_from_pos_quat
from ..training import StreamSource, Trainer, make_config
from .shipped import shipped_weights

__all__ = ["GraspSampler", "jaw_flip", "DEFAULT_POINTS"]

#: points in an object's condition cloud
DEFAULT_POINTS = 512
_ROLL = torch.tensor([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # Rz(pi)


def jaw_flip(T: torch.Tensor) -> torch.Tensor:
    """The same grasp with the jaws swapped, ``T Rz(pi)``: ``(..., 4, 4) -> (..., 4, 4)``."""
    out = T.clone()
    out[..., :3, :3] = T[..., :3, :3] @ _ROLL.to(T)
    return out


def _pose_points(T: torch.Tensor) -> torch.Tensor:
    """``(n, 4, 4)`` -> ``(n, 7)`` points of ``R3 x SO3`` (position, quaternion xyzw)."""
    return torch.cat(pos_quat_from_se3(T, "xyzw"), -1)


class GraspSampler:
    """Grasp poses of a parallel-jaw gripper conditioned on the object's surface point cloud.

    Args:
        points: points per condition cloud (default :data:`DEFAULT_POINTS`).
        hidden, depth: the velocity network (:class:`~posegen.PoseFlow`).
        encoder_dim, encoder_hidden: the PointNet's feature width and hidden width.
        length_scale: the encoder's unit of length (m): household objects are centimetres apart in size, and the
            network needs coordinates of order 1 to tell them apart from the start.
        gripper: the gripper the grasps are for (a name stored with the model: ``"panda"``).
    """

    def __init__(self, *, points: int = DEFAULT_POINTS, hidden: int = 256, depth: int = 4, encoder_dim: int = 64,
                 encoder_hidden: int = 128, length_scale: float = 0.05, gripper: str = "panda",
                 _flow: Optional[PoseFlow] = None):
        if int(points) != points or points < 8:
            raise ValueError(f"points must be an integer >= 8, got {points!r}")
        self.points, self.gripper = int(points), str(gripper)
        self.flow = _flow if _flow is not None else PoseFlow(
            "R3 x SO3", hidden=hidden, depth=depth,
            encoder={"kind": "pointnet", "out_dim": int(encoder_dim), "hidden": int(encoder_hidden),
                     "length_scale": float(length_scale)})
        if self.flow.encoder is None or repr(self.flow.manifold) != "R3 x SO3":
            raise ValueError(f"GraspSampler needs a flow on R3 x SO3 with an encoder, got {self.flow.manifold!r}")
        self.training: Dict[str, Any] = {}

    def __repr__(self) -> str:
        c = self.flow.config
        return (f"GraspSampler(gripper={self.gripper!r}, points={self.points}, hidden={c['hidden']}, "
                f"depth={c['depth']}, trained_steps={self.training.get('steps', 0)})")

    # ------------------------------------------------------------------ objects as conditions
    def cloud(self, obj, seed: Optional[int] = 0) -> torch.Tensor:
        """The condition of ``obj``: ``(points, 3)`` surface points in its frame (m). ``obj`` is an object with
        ``surface_points(n, seed=)`` (:func:`posegen.grasps.load_object`) or a point cloud ``(P, 3)``
        (resampled to ``points`` rows, with replacement when ``P`` is smaller)."""
        if hasattr(obj, "surface_points"):
            return torch.as_tensor(obj.surface_points(self.points, seed=seed), dtype=self.flow.dtype)
        pts = torch.as_tensor(np.asarray(obj) if not isinstance(obj, torch.Tensor) else obj, dtype=self.flow.dtype)
        if pts.dim() != 2 or pts.shape[-1] != 3 or pts.shape[0] < 1:
            raise ValueError(f"an object is a mesh object (posegen.grasps.load_object) or a (P, 3) point cloud, got "
                             f"shape {tuple(pts.shape)}")
        if not torch.isfinite(pts).all():
            raise ValueError("the object's point cloud contains NaN or inf")
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        idx = (torch.randperm(pts.shape[0], generator=gen)[: self.points] if pts.shape[0] >= self.points
               else torch.randint(pts.shape[0], (self.points,), generator=gen))
        return pts[idx]

    # ------------------------------------------------------------------ training
    def _stream(self, objects: Sequence, grasps: Sequence, clouds_per_object: int, grasps_per_cloud: int):
        """The draw of :meth:`fit`: rows in groups of ``grasps_per_cloud`` that share an object and one of its
        pre-drawn clouds; the object in proportion to its grasps, then its grasps uniformly, so each row's grasp is
        uniform over all grasps as with independent rows; a jaw flip with probability 1/2 per row. The flow encodes
        each distinct cloud once, so a group costs the encoder one cloud."""
        poses = [check_rigid(g, f"grasps[{k}]", single=True) for k, g in enumerate(grasps)]   # refused before any work
        # (K, C, points, 3): every object's clouds in one tensor, so a batch is one gather, not a loop over rows
        bank = torch.stack([torch.stack([self.cloud(o, seed=s) for s in range(clouds_per_object)]) for o in objects])
        counts = torch.tensor([p.shape[0] for p in poses])
        owner = torch.repeat_interleave(torch.arange(len(poses)), counts)
        start = torch.cumsum(counts, 0) - counts
        all_T = torch.cat(poses)
        G = int(grasps_per_cloud)

        def draw(n: int, gen: torch.Generator):
            groups = -(-n // G)
            on = dict(generator=gen, device=gen.device)
            k = owner[torch.randint(all_T.shape[0], (groups,), **on).cpu()]        # objects, in proportion to grasps
            c = torch.randint(clouds_per_object, (groups,), **on).cpu()
            u = torch.rand(groups, G, **on).cpu()
            i = (start[k, None] + (u * counts[k, None]).long().clamp_max(counts[k, None] - 1)).reshape(-1)[:n]
            T = all_T[i]
            flip = torch.rand(n, **on).cpu() < 0.5
            T = torch.where(flip[:, None, None], jaw_flip(T), T)
            clouds = bank[k, c].repeat_interleave(G, 0)[:n]
            return _pose_points(T).to(self.flow.dtype), clouds
        return draw

    def fit(self, objects: Sequence, grasps: Sequence, *, steps: Optional[int] = None,
            max_minutes: Optional[float] = None, batch_size: int = 256, lr: float = 2e-3, warmup: int = 200,
            ema_decay: float = 0.999, seed: int = 0, objective: str = "rfm", clouds_per_object: int = 8,
            grasps_per_cloud: int = 8,
            out_dir=None, resume: bool = False, checkpoint_every: int = 2000, log_every: int = 100,
            verbose: bool = False) -> "GraspSampler":
        """Learn ``p(T | object)`` from successful grasps ``grasps[k] (n_k, 4, 4)`` of ``objects[k]`` (object
        frame), by posegen's one training loop with any of its objectives (RFM by default).

        ``clouds_per_object`` surface clouds are drawn once per object; a batch is made of groups of
        ``grasps_per_cloud`` rows that share an object and one cloud (the encoder runs once per group: 8 rows per
        cloud made a step several times cheaper at 512 points), each row's grasp still uniform over all grasps.

        Raises:
            ValueError: no objects, a count mismatch, an object without grasps, transforms that are not rigid.
        """
        if len(objects) == 0 or len(objects) != len(grasps):
            raise ValueError(f"fit needs one grasp array per object: {len(objects)} objects, {len(grasps)} arrays")
        for name, v in (("clouds_per_object", clouds_per_object), ("grasps_per_cloud", grasps_per_cloud)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        empty = [k for k, g in enumerate(grasps) if len(g) == 0]
        if empty:
            raise ValueError(f"objects {empty[:5]} have no grasps; drop them (a model learns from successful grasps)")
        draw = self._stream(objects, grasps, int(clouds_per_object), int(grasps_per_cloud))
        cfg = make_config(objective=objective, steps=steps, max_minutes=max_minutes, batch_size=batch_size, lr=lr,
                          warmup=warmup, ema_decay=ema_decay, seed=seed, log_every=log_every, val_every=0,
                          checkpoint_every=checkpoint_every, device="cpu", progress=verbose,
                          fit_standardization=not self.training.get("steps"))
        self.flow.train()
        res = Trainer(self.flow, StreamSource(draw, reference_size=4096, seed=seed), config=cfg, out_dir=out_dir,
                      resume=resume).fit()
        self.flow.eval()
        self.training = {"steps": self.training.get("steps", 0) + res.steps_done,
                         "seconds": self.training.get("seconds", 0.0) + res.seconds, "objects": len(objects),
                         "grasps": int(sum(len(g) for g in grasps)), "objective": objective, "seed": int(seed),
                         "batch_size": int(batch_size), "lr": float(lr)}
        return self

    # ------------------------------------------------------------------ sampling and scoring
    @torch.no_grad()
    def sample(self, obj, n: int, seed: Optional[int] = None, *, rank: bool = False, best_of: int = 1,
               method: Optional[str] = None, steps: Optional[int] = None) -> torch.Tensor:
        """``n`` grasp poses ``(n, 4, 4)`` (float64) of the gripper in ``obj``'s frame.

        ``rank=True`` orders them by :meth:`log_prob`, most probable first. ``best_of=k`` draws ``k n`` and keeps
        the ``n`` most probable, ranked (no longer i.i.d. draws of the density: its high-density part). On the
        objects the shipped Panda model never saw, 73 % of plain draws hold in the shake test and 88 % of the more
        probable half (``benchmarks/grasps.py unseen``), so ``best_of=2`` is the setting for grasp candidates.
        """
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if isinstance(best_of, bool) or int(best_of) != best_of or best_of < 1:
            raise ValueError(f"best_of must be a positive integer, got {best_of!r}")
        cloud = self.cloud(obj, seed=0 if seed is None else seed)
        x = self.flow.sample(int(n) * int(best_of), condition=cloud, seed=seed, method=method, steps=steps)
        T = se3_from_pos_quat(x[:, :3].double(), x[:, 3:].double(), "xyzw")
        if rank or best_of > 1:
            T = T[torch.argsort(self.log_prob(obj, T, method=method, steps=steps), descending=True)[: int(n)]]
        return T

    def log_prob(self, obj, transforms, *, method: Optional[str] = None, steps: Optional[int] = None) -> torch.Tensor:
        """``(n,)`` log-density of grasp poses ``transforms (n, 4, 4)`` (object frame) w.r.t. the volume of
        ``R^3 x SO3``, symmetrised over the jaw flip (the same value for ``T`` and ``T Rz(pi)``)."""
        T = check_rigid(transforms, single=True)
        cloud = self.cloud(obj, seed=0)
        both = torch.cat([T, jaw_flip(T)])
        lp = self.flow.log_prob(_pose_points(both).to(self.flow.dtype), condition=cloud, method=method, steps=steps)
        lp = lp.double().view(2, -1)
        return torch.logsumexp(lp, 0) - math.log(2.0)

    # ------------------------------------------------------------------ files
    def save(self, path) -> Path:
        """An atomic, plain-data checkpoint (flow with its encoder, settings, training record)."""
        return save_checkpoint({"flow": self.flow.state(), "points": self.points, "gripper": self.gripper,
                                "training": self.training}, path, kind="grasp_sampler")

    @classmethod
    def pretrained(cls, gripper: str = "panda", map_location=None) -> "GraspSampler":
        """The grasp model shipped with posegen for ``gripper`` (trained by ``benchmarks/grasp_pretrained.py`` with
        ``configs/pretrained/grasps.yaml`` on a procedural object set with MuJoCo-labelled grasps);
        ``sampler.training`` says how far it was trained.

        Raises:
            ValueError: no shipped weights for ``gripper`` (the message lists those that exist).
        """
        path = shipped_weights("grasp", gripper, "grasp model", "train one with GraspSampler().fit(objects, "
                               "grasps) or benchmarks/grasp_pretrained.py")
        return cls.load(path, map_location=map_location)

    @classmethod
    def load(cls, path, map_location=None) -> "GraspSampler":
        """Load a sampler written by :meth:`save`; ValueError for another kind of checkpoint."""
        ck = load_checkpoint(path, map_location="cpu", kind="grasp_sampler")
        flow = PoseFlow.from_state(ck["flow"], source=str(path))
        gs = cls(points=int(ck["points"]), gripper=str(ck["gripper"]), _flow=flow)
        gs.training = dict(ck.get("training") or {})
        if map_location is not None:
            flow.to(map_location)
        flow.eval()
        return gs

