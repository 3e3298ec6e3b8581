r"""A cheap, approximate collision checker for the Franka Panda among boxes and balls (batched torch).

The robot is approximated by spheres fixed in its link frames (:data:`PANDA_SPHERES`, frames of
:data:`posegen.data.panda.LINK_NAMES`); obstacles are axis-aligned boxes (:class:`Box`) and balls
(:class:`Ball`). A configuration collides when some robot sphere comes closer than its radius plus
``margin`` to an obstacle (exact sphere-box and sphere-ball distances), and it is valid when it is inside
the joint limits and collides with nothing.

**What this is not.** The spheres are hand-placed along the kinematic skeleton of
:mod:`posegen.data.panda` (the segments between consecutive joint origins, with radii of the housings, about
6-7.5 cm, and a few spheres for the hand and the open fingers). They cover the real link meshes only
roughly: they miss some thin parts and pad others by a few centimetres. There is no self-collision check
(joint limits exclude the worst cases, not all of them), the fingers are always open, and motions are
checked at discrete configurations (:meth:`PandaCollisionChecker.check_motion`), so a thin obstacle can be
tunnelled through between two checked configurations. Use it for benchmarks, examples and sampling
studies; use a mesh-based checker (MoveIt/FCL, cuRobo, ...) for a real robot.

Example::

    scene = [table(), Box(center=(0.5, 0.0, 0.15), half_extents=(0.15, 0.02, 0.15))]   # or tabletop_scene()
    checker = PandaCollisionChecker(scene)
    ok = checker.is_valid(q)                # q (B, 7) -> (B,) bool
    d = checker.clearance(q)                # (B,) metres (negative: penetration)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ..data import panda

__all__ = ["Box", "Ball", "PANDA_SPHERES", "PandaCollisionChecker", "table", "bin_walls", "BINS",
           "tabletop_scene"]


@dataclass(frozen=True)
class Box:
    """Axis-aligned box obstacle: ``center (3,)`` and ``half_extents (3,)`` in metres, base frame."""

    center: Tuple[float, float, float]
    half_extents: Tuple[float, float, float]
    name: str = "box"

    def __post_init__(self):
        c, h = tuple(float(v) for v in self.center), tuple(float(v) for v in self.half_extents)
        if len(c) != 3 or len(h) != 3:
            raise ValueError(f"Box needs center and half_extents of length 3, got {self.center}, {self.half_extents}")
        if not all(math.isfinite(v) for v in c + h) or min(h) <= 0:
            raise ValueError(f"Box half_extents must be finite and > 0 (and center finite), got center={c}, "
                             f"half_extents={h}")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "half_extents", h)


@dataclass(frozen=True)
class Ball:
    """Ball obstacle: ``center (3,)`` and ``radius`` in metres, base frame."""

    center: Tuple[float, float, float]
    radius: float
    name: str = "ball"

    def __post_init__(self):
        c = tuple(float(v) for v in self.center)
        if len(c) != 3 or not all(math.isfinite(v) for v in c):
            raise ValueError(f"Ball needs a finite center of length 3, got {self.center}")
        if not (math.isfinite(float(self.radius)) and float(self.radius) > 0):
            raise ValueError(f"Ball radius must be finite and > 0, got {self.radius}")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "radius", float(self.radius))


Obstacle = Union[Box, Ball]

# (frame index into panda.LINK_NAMES, (x, y, z) in that frame, radius), metres. Skeleton segments between
# consecutive joint origins (their offsets are constant in the parent frame: link2->link3 (0, -0.316, 0),
# link3->link4 (0.0825, 0, 0), link4->link5 (-0.0825, 0.384, 0), link6->link7 (0.088, 0, 0),
# link7->flange (0, 0, 0.107)) plus the hand (about 0.2 m across the finger axis y) and open fingers.
PANDA_SPHERES: Tuple[Tuple[int, Tuple[float, float, float], float], ...] = (
    (0, (-0.04, 0.0, 0.06), 0.10),                                       # base (fixed)
    (1, (0.0, 0.0, -0.19), 0.075), (1, (0.0, 0.0, -0.10), 0.075), (1, (0.0, 0.0, 0.0), 0.075),  # shoulder
    (2, (0.0, -0.08, 0.0), 0.065), (2, (0.0, -0.16, 0.0), 0.065), (2, (0.0, -0.24, 0.0), 0.065),  # upper arm
    (3, (0.0, 0.0, 0.0), 0.065), (4, (0.0, 0.0, 0.0), 0.065),                                    # elbow
    (4, (-0.021, 0.096, 0.0), 0.06), (4, (-0.041, 0.192, 0.0), 0.06), (4, (-0.062, 0.288, 0.0), 0.06),  # forearm
    (5, (0.0, 0.0, 0.0), 0.06),                                                                  # wrist
    (6, (0.044, 0.0, 0.0), 0.055), (7, (0.0, 0.0, 0.0), 0.05), (7, (0.0, 0.0, 0.055), 0.05),      # link 6, 7
    (9, (0.0, 0.0, 0.03), 0.04), (9, (0.0, -0.06, 0.03), 0.035), (9, (0.0, 0.06, 0.03), 0.035),    # hand
    (9, (0.0, -0.04, 0.075), 0.015), (9, (0.0, 0.04, 0.075), 0.015),                             # fingers
    (9, (0.0, -0.04, 0.097), 0.01), (9, (0.0, 0.04, 0.097), 0.01),                               # fingertips
)
"""Sphere approximation of the Panda (with the hand, fingers open): ``(frame, local centre, radius)``."""


def table(top: float = 0.0, x=(0.15, 1.0), y=(-0.8, 0.8), thickness: float = 0.05) -> Box:
    """A table in front of the robot: the box ``x`` by ``y`` (m) whose top face is at ``z = top``.

    It starts in front of the base (``x[0] = 0.15``) because the robot stands on the plane ``z = 0``.
    """
    return Box(center=((x[0] + x[1]) / 2, (y[0] + y[1]) / 2, top - thickness / 2),
               half_extents=((x[1] - x[0]) / 2, (y[1] - y[0]) / 2, thickness / 2), name="table")


def bin_walls(center, inner_half: float = 0.12, height: float = 0.2, thickness: float = 0.02,
              name: str = "bin") -> List[Box]:
    """Four walls of an open bin standing on the table: a square of inner half-width ``inner_half`` (m)
    around ``center = (x, y)``, ``height`` tall. Reaching into it needs a near-vertical approach."""
    x, y = float(center[0]), float(center[1])
    a, t, h = float(inner_half), float(thickness), float(height)
    return [Box((x + a + t / 2, y, h / 2), (t / 2, a + t, h / 2), f"{name}_front"),
            Box((x - a - t / 2, y, h / 2), (t / 2, a + t, h / 2), f"{name}_back"),
            Box((x, y + a + t / 2, h / 2), (a, t / 2, h / 2), f"{name}_left"),
            Box((x, y - a - t / 2, h / 2), (a, t / 2, h / 2), f"{name}_right")]


BINS = ((0.5, 0.25), (0.5, -0.25))
"""Centres ``(x, y)`` of the two bins of :func:`tabletop_scene` (left, right)."""


def tabletop_scene(bins: Sequence[Tuple[float, float]] = BINS, shelf: bool = True) -> List[Obstacle]:
    """The example scene: a table, open bins (:func:`bin_walls`, 0.24 m inside, 0.2 m high) at ``bins``
    and a shelf board overhead (``z = 0.95``) on two posts at the back. Picking from one bin and placing in
    the other means lifting the hand out of a narrow, near-vertical passage and lowering it into another.
    posegen's reach-and-grasp data has objects on the table at ``x in [0.35, 0.7]``, ``y in [-0.3, 0.3]``,
    grasped from above."""
    obs: List[Obstacle] = [table()]
    for i, c in enumerate(bins):
        obs += bin_walls(c, name=f"bin{i}")
    if shelf:
        obs.append(Box(center=(0.55, 0.0, 0.95), half_extents=(0.2, 0.45, 0.015), name="shelf"))
        obs.append(Box(center=(0.75, 0.43, 0.475), half_extents=(0.02, 0.02, 0.475), name="post_left"))
        obs.append(Box(center=(0.75, -0.43, 0.475), half_extents=(0.02, 0.02, 0.475), name="post_right"))
    return obs


class PandaCollisionChecker:
    """Batched validity of Panda configurations among obstacles (approximate; see the module docstring).

    Args:
        obstacles: :class:`Box` and :class:`Ball` obstacles (base frame, metres).
        margin: extra clearance (m) required between every robot sphere and every obstacle.
        joint_limits: ``(7, 2)`` ``[lower, upper]`` (rad) checked by :meth:`is_valid`; default the Panda's.
        spheres: the robot's sphere model, default :data:`PANDA_SPHERES`.
        dtype, device: where the computation runs (float64 CPU by default, like OMPL's states).

    Attributes:
        n_checked: configurations checked so far (a planner-independent cost measure); reset with
            :meth:`reset_counter`.

    The fixed base (spheres on frame 0) is checked once, here, without ``margin``, and left out of the
    per-configuration checks.

    Raises:
        ValueError: when an obstacle overlaps the fixed base (every configuration would be invalid).
    """

    def __init__(self, obstacles: Iterable[Obstacle] = (), *, margin: float = 0.0,
                 joint_limits: Optional[torch.Tensor] = None,
                 spheres: Sequence[Tuple[int, Tuple[float, float, float], float]] = PANDA_SPHERES,
                 dtype: torch.dtype = torch.float64, device=None):
        self.obstacles = list(obstacles)
        for o in self.obstacles:
            if not isinstance(o, (Box, Ball)):
                raise TypeError(f"obstacles must be Box or Ball instances, got {type(o).__name__}")
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"margin must be a finite number >= 0 (metres), got {margin!r}")
        self.margin = float(margin)
        self.dtype, self.device = dtype, torch.device(device or "cpu")
        lim = panda.JOINT_LIMITS if joint_limits is None else torch.as_tensor(joint_limits, dtype=torch.float64)
        if lim.shape != (7, 2):
            raise ValueError(f"joint_limits must have shape (7, 2), got {tuple(lim.shape)}")
        self.joint_limits = lim.to(dtype=dtype, device=self.device)
        frames = sorted({int(s[0]) for s in spheres})
        if any(f < 0 or f >= len(panda.LINK_NAMES) for f in frames):
            raise ValueError(f"sphere frame indices must be in [0, {len(panda.LINK_NAMES)}), got {frames}")
        # The fixed base's spheres never move: checked once here, left out of the per-configuration checks.
        moving = [sp for sp in spheres if int(sp[0]) != 0]
        fixed = [sp for sp in spheres if int(sp[0]) == 0]
        self._frame_idx = torch.tensor([int(sp[0]) for sp in moving], dtype=torch.long, device=self.device)
        self._local = torch.tensor([list(sp[1]) + [1.0] for sp in moving], dtype=dtype,
                                   device=self.device).reshape(-1, 4)
        self.radii = torch.tensor([float(sp[2]) for sp in moving], dtype=dtype, device=self.device)
        boxes = [o for o in self.obstacles if isinstance(o, Box)]
        balls = [o for o in self.obstacles if isinstance(o, Ball)]
        self._box_c = torch.tensor([b.center for b in boxes], dtype=dtype, device=self.device).reshape(-1, 3)
        self._box_h = torch.tensor([b.half_extents for b in boxes], dtype=dtype, device=self.device).reshape(-1, 3)
        self._ball_c = torch.tensor([b.center for b in balls], dtype=dtype, device=self.device).reshape(-1, 3)
        self._ball_r = torch.tensor([b.radius for b in balls], dtype=dtype, device=self.device)
        self.n_checked = 0
        if fixed and self.obstacles:
            c = torch.tensor([list(sp[1]) for sp in fixed], dtype=dtype, device=self.device)
            r = torch.tensor([float(sp[2]) for sp in fixed], dtype=dtype, device=self.device)
            if bool((self._distances(c) - r.unsqueeze(-1) < 0).any()):
                raise ValueError("an obstacle overlaps the robot's fixed base (every configuration would collide); "
                                 f"move it away from the origin: {self.obstacles}")

    def __repr__(self) -> str:
        names = [o.name for o in self.obstacles]
        return f"PandaCollisionChecker({len(self.radii)} spheres, obstacles={names}, margin={self.margin})"

    def reset_counter(self) -> None:
        self.n_checked = 0

    def _q(self, q) -> torch.Tensor:
        q = torch.as_tensor(q, dtype=self.dtype, device=self.device)
        if q.dim() == 0 or q.shape[-1] != 7:
            raise ValueError(f"q must have shape (..., 7) (Panda joint angles, rad), got {tuple(q.shape)}")
        return q

    def sphere_centers(self, q) -> torch.Tensor:
        """World centres ``(..., S, 3)`` of the robot spheres for joint angles ``q (..., 7)``."""
        q = self._q(q)
        F = panda.all_link_frames(q)                                    # (..., 11, 4, 4)
        Fs = F[..., self._frame_idx, :3, :]                             # (..., S, 3, 4)
        return (Fs @ self._local.unsqueeze(-1)).squeeze(-1)

    def _distances(self, p: torch.Tensor) -> torch.Tensor:
        """Distances ``(..., S, K)`` from points ``p (..., S, 3)`` to the K obstacles (0 inside boxes is
        replaced by the negative depth, so penetration is negative)."""
        out = []
        if self._box_c.shape[0]:
            d = (p.unsqueeze(-2) - self._box_c).abs() - self._box_h            # (..., S, Kb, 3)
            outside = d.clamp_min(0).norm(dim=-1)
            inside = d.amax(-1).clamp_max(0)
            out.append(outside + inside)
        if self._ball_c.shape[0]:
            out.append((p.unsqueeze(-2) - self._ball_c).norm(dim=-1) - self._ball_r)
        if not out:
            return p.new_full((*p.shape[:-1], 0), math.inf)
        return torch.cat(out, -1)

    def clearance(self, q) -> torch.Tensor:
        """Smallest signed distance ``(...,)`` (m) between a robot sphere and an obstacle for ``q (..., 7)``;
        negative means penetration, ``inf`` without obstacles. Joint limits are not considered."""
        q = self._q(q)
        if not self.obstacles:
            return q.new_full(q.shape[:-1], math.inf)
        with torch.no_grad():
            c = self.sphere_centers(q)
            d = self._distances(c) - self.radii.unsqueeze(-1)
            return d.flatten(-2).amin(-1)

    def within_limits(self, q) -> torch.Tensor:
        """``(...,)`` bool: every joint of ``q (..., 7)`` inside the checker's joint limits."""
        q = self._q(q)
        return ((q >= self.joint_limits[:, 0]) & (q <= self.joint_limits[:, 1])).all(-1)

    def is_valid(self, q) -> torch.Tensor:
        """``(...,)`` bool: inside the joint limits and at least ``margin`` away from every obstacle."""
        q = self._q(q)
        self.n_checked += int(q.numel() // 7)
        ok = self.within_limits(q)
        if self.obstacles:
            ok = ok & (self.clearance(q) >= self.margin)
        return ok

    def check_motion(self, q_a, q_b, resolution: float = 0.05) -> bool:
        """True when the straight joint-space segment from ``q_a (7,)`` to ``q_b (7,)`` is valid at every
        configuration spaced at most ``resolution`` rad apart (largest joint change); ``q_a`` itself is
        assumed valid (as OMPL's motion validators do) and ``q_b`` is checked. All configurations are
        checked in one batch."""
        if not (resolution > 0):
            raise ValueError(f"resolution must be > 0 (rad), got {resolution!r}")
        q_a, q_b = self._q(q_a).reshape(7), self._q(q_b).reshape(7)
        steps = max(int(math.ceil(float((q_b - q_a).abs().max()) / resolution)), 1)
        t = torch.arange(1, steps + 1, dtype=self.dtype, device=self.device) / steps
        return bool(self.is_valid(q_a + t.unsqueeze(-1) * (q_b - q_a)).all())
