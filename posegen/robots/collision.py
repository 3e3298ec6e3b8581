r"""Collision model of a robot from its description: spheres along capsules fixed in the link frames (torch).

A robot's collision geometry is a *table* of capsules (:class:`Capsule`: a segment ``a -> b`` in a link frame
inflated by a radius; ``a == b`` is a sphere). The built-in robots ship one next to their URDF
(``posegen/robots/descriptions/<name>_spheres.yaml``, each file says where its numbers come from: the
collision meshes or primitives of the original descriptions); other robots pass a table or a YAML file.
:class:`CollisionModel` covers every capsule with spheres spaced at most ``spacing * radius`` apart (the
segment's end points included) and places them with the robot's forward kinematics
(:meth:`posegen.robots.Robot.frames`), batched over configurations, on any device and dtype.

Checks
------
* **Obstacles** (:class:`CollisionChecker`): axis-aligned boxes (:class:`Box`) and balls (:class:`Ball`) in
  the base frame; a configuration collides when a robot sphere comes closer than its radius plus ``margin``
  (exact sphere-box and sphere-ball distances). The spheres of links that no joint moves (the base) are
  checked once, when the checker is built.
* **Self-collision**: sphere pairs of *non-adjacent* bodies (a body is a link with the links welded to it;
  adjacent bodies are joined by one movable joint), minus the capsule pairs that already touch at the
  robot's ready configuration (MoveIt's "default" rule for its allowed-collision matrix: such pairs are the
  table's approximation, e.g. two housings around one wrist, not a real collision).

Accuracy (how it was measured)
------------------------------
Reference: the same capsules covered densely (``spacing=0.02``, spheres about 1 mm apart, for obstacles;
``0.1`` for self-collision), which differs from the exact capsules by micrometres at contact. With the
default ``spacing=0.5`` every sphere lies inside its capsule, so the model raises no false alarm and can only
*miss* contacts, in the waists between neighbouring spheres: by at most ``r (1 - sqrt(1 - spacing**2 / 4))
= 0.032 r`` of penetration (1.9 mm for a 6 cm link). ``conservative=True`` inflates the spheres to
``r sqrt(1 + spacing**2 / 4)`` (3 % larger) so that they cover the capsules: no miss, false alarms only
within 3 % of ``r`` of contact. ``tests/test_collision.py`` checks these bounds on seeded samples of the
three built-in robots: 300 uniform configurations each with a ball and with a cube (1-10 cm) centred up to
15 cm from a random point of the arm (270-290 contacts per robot and shape): the default cover missed 0 of
them, the conservative one added 0-4 (at most 1.4 %); self-collision on 400 uniform configurations (Panda
47 self-colliding, UR5e 292, iiwa14 2): the default cover missed 1 (Panda), the conservative one added
2 / 11 / 0 (UR5e: 3.8 %). The capsules' own error against the real link meshes is a separate, larger one
(centimetres; each table's header says how its radii were measured).

**What this is not.** The capsules approximate the link meshes (see each table's header for how well); the
Panda's fingers are always open; motions are checked at discrete configurations
(:meth:`CollisionChecker.check_motion`), so a thin obstacle can be tunnelled through between two checked
configurations. Use it for benchmarks, examples and sampling studies; use a mesh-based checker (MoveIt/FCL,
cuRobo, ...) for a real robot.

Example::

    checker = CollisionChecker("ur5e", [Box(center=(0.5, 0, -0.025), half_extents=(0.35, 0.8, 0.025))])
    ok = checker.is_valid(q)           # q (B, 6) -> (B,) bool: inside the limits, no collision
    d = checker.clearance(q)           # (B,) metres to the nearest obstacle (negative: penetration)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import torch

__all__ = ["Box", "Ball", "Obstacle", "Capsule", "SphereTable", "load_sphere_table", "capsule_spheres",
           "CollisionModel", "CollisionChecker", "ready_configuration"]


# ------------------------------------------------------------------------------------------- obstacles
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


# ------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Capsule:
    """The segment ``a -> b`` (m, in the frame of ``link``) inflated by ``radius``; ``b`` None: a sphere."""

    link: str
    a: Tuple[float, float, float]
    radius: float
    b: Optional[Tuple[float, float, float]] = None

    def __post_init__(self):
        a = tuple(float(v) for v in self.a)
        b = a if self.b is None else tuple(float(v) for v in self.b)
        if len(a) != 3 or len(b) != 3 or not all(math.isfinite(v) for v in a + b):
            raise ValueError(f"Capsule on {self.link!r}: a and b must be 3 finite numbers, got a={self.a}, b={self.b}")
        if not (math.isfinite(float(self.radius)) and float(self.radius) > 0):
            raise ValueError(f"Capsule on {self.link!r}: radius must be finite and > 0, got {self.radius!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "radius", float(self.radius))

    @property
    def length(self) -> float:
        return math.dist(self.a, self.b)


@dataclass(frozen=True)
class SphereTable:
    """A robot's collision capsules: ``robot`` (a name, for messages), ``capsules``, ``source`` (file)."""

    robot: str
    capsules: Tuple[Capsule, ...]
    source: str = "<table>"


def _parse_table(data, source: str) -> SphereTable:
    if not isinstance(data, dict) or not isinstance(data.get("capsules"), list) or not data["capsules"]:
        raise ValueError(f"{source}: a collision table needs a non-empty list 'capsules' of "
                         f"{{link, a, radius[, b]}} entries, got {type(data).__name__}")
    caps = []
    for i, c in enumerate(data["capsules"]):
        if not isinstance(c, dict) or not {"link", "a", "radius"} <= set(c) or set(c) - {"link", "a", "b", "radius"}:
            raise ValueError(f"{source}: capsule {i} must have keys link, a, radius and optionally b; got {c!r}")
        caps.append(Capsule(str(c["link"]), tuple(c["a"]), c["radius"], None if c.get("b") is None else tuple(c["b"])))
    return SphereTable(str(data.get("robot", "")), tuple(caps), source)


def load_sphere_table(robot) -> SphereTable:
    """The collision table of ``robot``: a built-in name, a :class:`~posegen.robots.Robot` loaded from a
    built-in, a YAML file path, or a :class:`SphereTable` / sequence of :class:`Capsule` (returned as a table).

    Raises:
        ValueError: a robot without a shipped table (pass ``table=`` instead), or a malformed file.
    """
    import yaml

    from .descriptions import BUILTIN_ROBOTS, builtin_spheres_text

    if isinstance(robot, SphereTable):
        return robot
    if isinstance(robot, (list, tuple)) and all(isinstance(c, Capsule) for c in robot):
        return SphereTable("", tuple(robot))
    if hasattr(robot, "spec"):
        ref = robot.spec["robot"]
        if ref not in BUILTIN_ROBOTS:
            raise ValueError(f"robot {robot.name!r} ({ref}) has no built-in collision table: pass table= (a YAML "
                             f"file or Capsule list, see posegen/robots/descriptions/panda_spheres.yaml)")
        robot = ref
    if isinstance(robot, str) and robot in BUILTIN_ROBOTS:
        return _parse_table(yaml.safe_load(builtin_spheres_text(robot)), f"<built-in {robot} spheres>")
    path = Path(robot)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        raise ValueError(f"collision table must be a built-in robot name ({', '.join(sorted(BUILTIN_ROBOTS))}), a "
                         f"YAML file, a SphereTable or a list of Capsule; got {robot!r}")
    return _parse_table(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def ready_configuration(robot) -> torch.Tensor:
    """``(dof,)`` float64: the registry's ready configuration of a built-in robot (with its default end
    effector's chain), else the middle of the joint limits."""
    from .descriptions import BUILTIN_ROBOTS

    ref = robot.spec["robot"]
    ready = BUILTIN_ROBOTS[ref].ready if ref in BUILTIN_ROBOTS else ()
    if len(ready) == robot.dof:
        return torch.tensor(ready, dtype=torch.float64)
    return robot.joint_limits.mean(-1)


def capsule_spheres(capsules: Sequence[Capsule], spacing: float = 0.5, conservative: bool = False):
    """Spheres covering ``capsules``: ``(centers (S, 3), radii (S,), owner (S,))`` float64 / long.

    Each capsule of radius ``r`` and length ``L`` gets ``ceil(L / (spacing r)) + 1`` spheres evenly from ``a``
    to ``b`` (one for a sphere), of radius ``r`` (inside the capsule; the waists between neighbours miss at
    most ``r - sqrt(r^2 - s^2 / 4)`` for the actual spacing ``s``) or, ``conservative``, ``sqrt(r^2 + s^2 / 4)``
    (covering the capsule). ``owner`` is the capsule index of each sphere.
    """
    if not (math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be > 0 (a fraction of each capsule's radius), got {spacing!r}")
    centers, radii, owner = [], [], []
    for i, c in enumerate(capsules):
        n = int(math.ceil(c.length / (spacing * c.radius) - 1e-9)) + 1 if c.length > 0 else 1
        t = torch.linspace(0.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
        a, b = torch.tensor(c.a, dtype=torch.float64), torch.tensor(c.b, dtype=torch.float64)
        centers.append(a + t[:, None] * (b - a))
        s = c.length / (n - 1) if n > 1 else 0.0
        r = math.sqrt(c.radius ** 2 + s ** 2 / 4) if conservative else c.radius
        radii.append(torch.full((n,), r, dtype=torch.float64))
        owner.append(torch.full((n,), i, dtype=torch.long))
    return torch.cat(centers), torch.cat(radii), torch.cat(owner)


def box_ball_distances(p: torch.Tensor, box_c, box_h, ball_c, ball_r) -> torch.Tensor:
    """Signed distances ``(..., S, K)`` from points ``p (..., S, 3)`` to K obstacles (boxes first): outside a
    box the Euclidean distance, inside it minus the depth; for balls centre distance minus radius."""
    out = []
    if box_c.shape[0]:
        d = (p.unsqueeze(-2) - box_c).abs() - box_h                          # (..., S, Kb, 3)
        out.append(d.clamp_min(0).norm(dim=-1) + d.amax(-1).clamp_max(0))
    if ball_c.shape[0]:
        out.append((p.unsqueeze(-2) - ball_c).norm(dim=-1) - ball_r)
    if not out:
        return p.new_full((*p.shape[:-1], 0), math.inf)
    return torch.cat(out, -1)


# ------------------------------------------------------------------------------------------- the model
class CollisionModel:
    """Spheres of one robot placed by its forward kinematics, and its self-collision pairs.

    Args:
        robot: a :class:`~posegen.robots.Robot` or anything :func:`posegen.robots.load` takes (default the
            Panda).
        table: the collision capsules (anything :func:`load_sphere_table` takes); default the robot's shipped
            table.
        spacing: sphere spacing along a capsule, as a fraction of its radius (see :func:`capsule_spheres`).
        conservative: spheres that cover their capsule instead of lying inside it.
        dtype, device: of the sphere tensors and the computations (q is converted).

    Attributes:
        robot, table; ``links`` (names, in the order of ``link_index``), ``link_index (S,)``, ``local (S, 3)``
        centres in their link frames, ``radii (S,)``, ``owner (S,)`` capsule of each sphere, ``fixed (S,)``
        spheres on links no joint moves, ``pairs (P, 2)`` self-collision sphere pairs, ``allowed`` capsule
        pairs left out because they touch at the ready configuration.
    """

    def __init__(self, robot="panda", table=None, *, spacing: float = 0.5, conservative: bool = False,
                 dtype: torch.dtype = torch.float64, device=None):
        from .loader import as_robot

        self.robot = robot = as_robot(robot, "CollisionModel")
        self.table = load_sphere_table(robot if table is None else table)
        self.spacing, self.conservative = float(spacing), bool(conservative)
        self.dtype, self.device = dtype, torch.device(device or "cpu")
        caps = self.table.capsules
        unknown = sorted({c.link for c in caps} - set(robot.link_names))
        if unknown:
            raise ValueError(f"{self.table.source}: capsule link(s) {unknown} are not links of {robot.name!r} "
                             f"(its links: {', '.join(robot.link_names)})")
        self.links: Tuple[str, ...] = tuple(dict.fromkeys(c.link for c in caps))
        # body of a link = the number of movable joints between it and the root (a serial chain)
        desc = robot.description
        depth = {lk: sum(1 for j in desc.path_joints(lk) if j.movable) for lk in self.links}
        cap_body = torch.tensor([depth[c.link] for c in caps], dtype=torch.long)
        centers, radii, owner = capsule_spheres(caps, spacing, conservative)
        link_of_cap = torch.tensor([self.links.index(c.link) for c in caps], dtype=torch.long)
        self.owner = owner.to(self.device)
        self.link_index = link_of_cap[owner].to(self.device)
        self.local = centers.to(dtype=dtype, device=self.device)
        self.radii = radii.to(dtype=dtype, device=self.device)
        self.body = cap_body[owner].to(self.device)
        self.fixed = self.body == 0
        self.allowed = self._allowed_capsule_pairs(caps, cap_body)
        i, j = torch.triu_indices(len(owner), len(owner), 1)
        far = (cap_body[owner[i]] - cap_body[owner[j]]).abs() >= 2
        ok = far & ~self.allowed[owner[i], owner[j]]
        self.pairs = torch.stack([i[ok], j[ok]], -1).to(self.device)

    def _allowed_capsule_pairs(self, caps, cap_body) -> torch.Tensor:
        """``(C, C)`` bool: capsule pairs on non-adjacent bodies that overlap at the ready configuration,
        measured on a dense cover (about 1 mm apart), so that the coarse and the dense model leave out the
        same pairs. (Not the zero configuration too, as MoveIt does: the Panda's folds its hand onto its
        forearm, and the forearm-hand pairs are the Panda's most frequent real self-collisions.)"""
        c, r, own = capsule_spheres(caps, 0.02)
        q = ready_configuration(self.robot).unsqueeze(0)
        F = self.robot.frames(q, self.links)
        link_idx = torch.tensor([self.links.index(caps[k].link) for k in own.tolist()])
        T = torch.stack([F[n] for n in self.links], 1)[:, link_idx]               # (2, S, 4, 4)
        p = (T[..., :3, :3] @ c.unsqueeze(-1)).squeeze(-1) + T[..., :3, 3]
        d = torch.cdist(p, p) - r[:, None] - r[None, :]
        C = len(caps)
        touch = torch.zeros(C, C, dtype=torch.bool)
        hit = (d < 0).any(0).nonzero()
        touch[own[hit[:, 0]], own[hit[:, 1]]] = True
        far = (cap_body[:, None] - cap_body[None, :]).abs() >= 2
        return touch & far

    def __repr__(self) -> str:
        return (f"CollisionModel({self.robot.name!r}, {len(self.radii)} spheres on {len(self.links)} links, "
                f"{len(self.pairs)} self-collision pairs, spacing={self.spacing}, conservative={self.conservative})")

    def as_q(self, q) -> torch.Tensor:
        q = torch.as_tensor(q, dtype=self.dtype, device=self.device)
        if q.dim() == 0 or q.shape[-1] != self.robot.dof:
            raise ValueError(f"q must have shape (..., {self.robot.dof}) ({self.robot.name} joint values), got "
                             f"{tuple(q.shape)}")
        return q

    def sphere_centers(self, q) -> torch.Tensor:
        """World centres ``(..., S, 3)`` of the spheres for joint values ``q (..., dof)``."""
        q = self.as_q(q)
        F = self.robot.frames(q, self.links)
        T = torch.stack([F[n] for n in self.links], -3)[..., self.link_index, :3, :]     # (..., S, 3, 4)
        return (T[..., :3] @ self.local.unsqueeze(-1)).squeeze(-1) + T[..., 3]

    def self_clearance(self, q=None, centers: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Smallest signed distance ``(...,)`` (m) between the spheres of a self-collision pair (``inf`` when
        the robot has none); negative is penetration. Give ``q (..., dof)`` or precomputed ``centers``."""
        c = self.sphere_centers(q) if centers is None else centers
        if not len(self.pairs):
            return c.new_full(c.shape[:-2], math.inf)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        d = (c[..., i, :] - c[..., j, :]).norm(dim=-1) - self.radii[i] - self.radii[j]
        return d.amin(-1)


# ------------------------------------------------------------------------------------------- the checker
class CollisionChecker:
    """Batched validity of a robot's configurations among obstacles (approximate; see the module docstring).

    Args:
        robot: a :class:`~posegen.robots.Robot`, a built-in name or a description path (default the Panda).
        obstacles: :class:`Box` and :class:`Ball` obstacles (base frame, metres).
        margin: extra clearance (m) required between every robot sphere and every obstacle.
        self_collision: also reject configurations whose non-adjacent bodies touch (see
            :class:`CollisionModel`).
        self_margin: extra clearance (m) required between the spheres of a self-collision pair.
        joint_limits: ``(dof, 2)`` ``[lower, upper]`` checked by :meth:`is_valid`; default the robot's.
        table, spacing, conservative: the robot's spheres, as for :class:`CollisionModel`; or ``model``, a
            ready :class:`CollisionModel` (then ``robot`` and those are taken from it).
        dtype, device: where the computation runs (float64 CPU by default, like OMPL's states).

    Attributes:
        n_checked: configurations checked so far (a planner-independent cost measure); reset with
            :meth:`reset_counter`.

    Raises:
        ValueError: when an obstacle overlaps the fixed base (every configuration would be invalid).
    """

    def __init__(self, robot="panda", obstacles: Iterable[Obstacle] = (), *, margin: float = 0.0,
                 self_collision: bool = True, self_margin: float = 0.0, joint_limits=None, table=None,
                 spacing: float = 0.5, conservative: bool = False, model: Optional[CollisionModel] = None,
                 dtype: torch.dtype = torch.float64, device=None):
        if isinstance(robot, (list, tuple)) and (not robot or isinstance(robot[0], (Box, Ball))) and not obstacles:
            raise TypeError("CollisionChecker takes the robot first: CollisionChecker(robot, obstacles, ...) "
                            "(e.g. CollisionChecker('panda', [table()]))")
        self.obstacles = list(obstacles)
        for o in self.obstacles:
            if not isinstance(o, (Box, Ball)):
                raise TypeError(f"obstacles must be Box or Ball instances, got {type(o).__name__}")
        for name, v in (("margin", margin), ("self_margin", self_margin)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (metres), got {v!r}")
        self.margin, self.self_margin = float(margin), float(self_margin)
        self.self_collision = bool(self_collision)
        if model is None:
            model = CollisionModel(robot, table, spacing=spacing, conservative=conservative, dtype=dtype,
                                   device=device)
        self.model = model
        self.robot = model.robot
        self.dtype, self.device = model.dtype, model.device
        dof = self.robot.dof
        lim = self.robot.joint_limits if joint_limits is None else torch.as_tensor(joint_limits, dtype=torch.float64)
        if tuple(lim.shape) != (dof, 2):
            raise ValueError(f"joint_limits must have shape ({dof}, 2) for {self.robot.name}, got {tuple(lim.shape)}")
        self.joint_limits = lim.to(dtype=self.dtype, device=self.device)
        boxes = [o for o in self.obstacles if isinstance(o, Box)]
        balls = [o for o in self.obstacles if isinstance(o, Ball)]
        kw = dict(dtype=self.dtype, device=self.device)
        self._box_c = torch.tensor([b.center for b in boxes], **kw).reshape(-1, 3)
        self._box_h = torch.tensor([b.half_extents for b in boxes], **kw).reshape(-1, 3)
        self._ball_c = torch.tensor([b.center for b in balls], **kw).reshape(-1, 3)
        self._ball_r = torch.tensor([b.radius for b in balls], **kw)
        self._moving = (~model.fixed).nonzero().flatten()
        self.n_checked = 0
        if self.obstacles and bool(model.fixed.any()):
            # the fixed base never moves: checked once here (without margin), left out of the per-q checks
            c0 = model.sphere_centers(ready_configuration(self.robot).to(**kw))[model.fixed]
            d = self._distances(c0) - model.radii[model.fixed].unsqueeze(-1)
            if bool((d < 0).any()):
                raise ValueError(f"an obstacle overlaps the fixed base of {self.robot.name} (every configuration "
                                 f"would collide); move it away from the origin: {self.obstacles}")

    @property
    def radii(self) -> torch.Tensor:
        """``(S',)`` radii of the moving spheres (those checked against obstacles per configuration)."""
        return self.model.radii[self._moving]

    def __repr__(self) -> str:
        names = [o.name for o in self.obstacles]
        return (f"CollisionChecker({self.robot.name!r}, {len(self.model.radii)} spheres, obstacles={names}, "
                f"margin={self.margin}, self_collision={self.self_collision})")

    def reset_counter(self) -> None:
        self.n_checked = 0

    def _distances(self, p: torch.Tensor) -> torch.Tensor:
        return box_ball_distances(p, self._box_c, self._box_h, self._ball_c, self._ball_r)

    def sphere_centers(self, q) -> torch.Tensor:
        """World centres ``(..., S, 3)`` of all the robot's spheres (see :class:`CollisionModel`)."""
        return self.model.sphere_centers(q)

    def clearance(self, q, centers: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Smallest signed distance ``(...,)`` (m) between a moving robot sphere and an obstacle for
        ``q (..., dof)``; negative means penetration, ``inf`` without obstacles. Limits are not considered."""
        q = self.model.as_q(q)
        if not self.obstacles:
            return q.new_full(q.shape[:-1], math.inf)
        with torch.no_grad():
            c = self.model.sphere_centers(q) if centers is None else centers
            c = c[..., self._moving, :]
            return (self._distances(c) - self.radii.unsqueeze(-1)).flatten(-2).amin(-1)

    def self_clearance(self, q) -> torch.Tensor:
        """Smallest signed distance ``(...,)`` (m) between two spheres of a self-collision pair."""
        with torch.no_grad():
            return self.model.self_clearance(q)

    def within_limits(self, q) -> torch.Tensor:
        """``(...,)`` bool: every joint of ``q (..., dof)`` inside the checker's joint limits."""
        q = self.model.as_q(q)
        return ((q >= self.joint_limits[:, 0]) & (q <= self.joint_limits[:, 1])).all(-1)

    def collision_free(self, q) -> torch.Tensor:
        """``(...,)`` bool: no obstacle within ``margin`` and (``self_collision``) no self-contact within
        ``self_margin``; joint limits not considered."""
        q = self.model.as_q(q)
        ok = torch.ones(q.shape[:-1], dtype=torch.bool, device=q.device)
        if not self.obstacles and not self.self_collision:
            return ok
        with torch.no_grad():
            c = self.model.sphere_centers(q)
            if self.obstacles:
                ok &= self.clearance(q, centers=c) >= self.margin
            if self.self_collision:
                ok &= self.model.self_clearance(centers=c) >= self.self_margin
        return ok

    def is_valid(self, q) -> torch.Tensor:
        """``(...,)`` bool: inside the joint limits and collision-free (:meth:`collision_free`)."""
        q = self.model.as_q(q)
        self.n_checked += int(q.numel() // self.robot.dof)
        return self.within_limits(q) & self.collision_free(q)

    def check_motion(self, q_a, q_b, resolution: float = 0.05) -> bool:
        """True when the straight joint-space segment from ``q_a (dof,)`` to ``q_b (dof,)`` is valid at every
        configuration spaced at most ``resolution`` apart (largest joint change, rad); ``q_a`` itself is
        assumed valid (as OMPL's motion validators do) and ``q_b`` is checked. All in one batch."""
        if not (resolution > 0):
            raise ValueError(f"resolution must be > 0 (rad), got {resolution!r}")
        dof = self.robot.dof
        q_a, q_b = self.model.as_q(q_a).reshape(dof), self.model.as_q(q_b).reshape(dof)
        steps = max(int(math.ceil(float((q_b - q_a).abs().max()) / resolution)), 1)
        t = torch.arange(1, steps + 1, dtype=self.dtype, device=self.device) / steps
        return bool(self.is_valid(q_a + t.unsqueeze(-1) * (q_b - q_a)).all())
