r"""Collision model of any robot as spheres fixed in its link frames, and batched collision checks (torch).

Where the spheres come from (:class:`CollisionModel`, ``spheres=``):

* a robot loaded from a URDF with ``<collision>`` geometry (meshes STL/OBJ/DAE, boxes, cylinders, spheres,
  capsules) or from an MJCF file with colliding geoms (:mod:`posegen.robots.mjcfgeometry`: meshes, boxes,
  cylinders, capsules, spheres, ellipsoids as MuJoCo compiles them): spheres *fitted* to it (:func:`posegen.robots.autofit.fit_sphere_table`, cached by content hash;
  method and error bound in :mod:`posegen.robots.spherefit`);
* the built-in robots: their shipped tables (``posegen/robots/descriptions/<name>_spheres.yaml``; each
  file's header says where its numbers come from);
* any table given as ``spheres=``: a YAML file, a :class:`SphereTable` or a list of :class:`Capsule` (a
  capsule, a segment ``a -> b`` inflated by a radius, is covered by spheres at most ``spacing * radius``
  apart, :func:`capsule_spheres`).

Checks
------
* **Obstacles** (:class:`CollisionChecker`): a :class:`~posegen.robots.scene.Scene` (boxes, oriented boxes,
  balls, half-spaces, meshes, point clouds; :mod:`posegen.robots.scene`) in the base frame; a configuration
  collides when a robot sphere comes closer to an obstacle than its radius plus ``margin`` (exact
  sphere-obstacle distances). Spheres of links that no joint moves (the base) are checked once, when the
  checker is built, and never against half-spaces (a floor the base stands on).
* **Self-collision**: sphere pairs of link pairs that MoveIt's setup assistant would check
  (:mod:`posegen.robots.selfcollision`: adjacent links, pairs touching at the default configuration, pairs
  always / never touching in random configurations, an SRDF's ``disable_collisions``).
* ``conservative=True``: every sphere grows by its link's measured surface error (fitted tables) and
  capsule covers grow to cover their capsules, so that the spheres cover the collision surface.

Accuracy
--------
Reference: exact mesh collision (``benchmarks/collision_accuracy.py``, results in
``benchmarks/results/collision_accuracy*.json``, this project's shared 2-core CPU): per arm 1000 uniform
configurations, each with a ball and a cube (radius or half-width 1-10 cm) placed -2 to +4 cm from touching a
random surface point of a moving link; a ball touches when its centre's exact signed distance to a link mesh
(point-triangle distance, inside by winding number) is below its radius, a cube when FCL finds an
intersection (or its centre is inside); self-collision by FCL mesh-mesh tests on 1000 more configurations.
Arms not fitted by hand, spheres fitted at the default 5 mm tolerance (surface errors up to 7.5 mm); misses /
false alarms in % of the reference contacts:

=================  =======  ============================  ============================  =================
arm (meshes)       spheres  balls: default / conservative  cubes: default / conservative  self: default
=================  =======  ============================  ============================  =================
kuka_iiwa (STL)    2717     0.78/1.24 %, 0/11.2 %         0.24/0.71 %, 0/5.33 %         no contact (*)
kuka_iiwa (MJCF)   2717     0.78/1.24 %, 0/11.2 %         0.24/0.71 %, 0/5.3 %          (MuJoCo's translation)
xarm6 (VHACD OBJ)  1607     0/0.73 %, 0/6.74 %            0.71/0.59 %, 0/4.14 %         0 / 0 of 103
Panda (OBJ)        1445     0.47/1.10 %, 0/8.46 %         0.24/0.36 %, 0/4.73 %         1 / 4 of 136
UR5e (OBJ)         1296     0.79/2.05 %, 0/10.6 %         0.60/0.36 %, 0/4.58 %         1 / 9 of 343
=================  =======  ============================  ============================  =================

(*) the iiwa's two checked link pairs never touched in the 1000 configurations.

So the default model (fitted spheres grown by a quarter of their link's surface error) misses at most 0.8 %
of the contacts, none deeper than 1.6 mm, with at most 2.1 % false alarms (balls at most 1.6 mm from
contact); ``conservative=True`` missed none (false alarms up to 11 %, balls at most 6.8 mm from contact). The spheres themselves (``inflation=0``)
miss 2.2-2.8 % of ball contacts, up to 4.1 mm deep, and raise no false alarm. The pairs that MoveIt's
``never`` rule disabled (2000 samples) touched in none of the 1000 reference configurations.
The built-in robots now ship such fitted tables (same meshes, link frames checked equal); the hand-measured
capsules they replaced missed 13.6 % of the Panda's ball contacts (up to 59 mm deep) and flagged 27.6 % (UR5e)
and 20.5 % (iiwa14) false alarms. Checking 1000 configurations for
self-collision (:meth:`CollisionChecker.collision_free` without obstacles, batches of 100, one thread): 0.14-1.4 s
(the hand capsules: 0.035 s).
Self-collision link pairs are compared sphere by sphere only where their bounding spheres come within 5 cm.

Motions are checked at discrete configurations (:meth:`CollisionChecker.check_motion`), so a thin obstacle
can be tunnelled through between two checked configurations.

Example::

    checker = CollisionChecker("robot.urdf", Scene([floor(), Box((0.5, 0, 0.2), (0.1, 0.3, 0.2))]))
    ok = checker.is_valid(q)           # q (B, dof) -> (B,) bool: inside the limits, no collision
    d = checker.clearance(q)           # (B,) metres to the nearest obstacle (negative: penetration)
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Optional, Tuple

import torch

from .autofit import fit_sphere_table
from .descriptions import BUILTIN_ROBOTS
from .loader import as_robot
from .scene import Ball, Box, HalfSpace, MeshObstacle, Obstacle, PointCloud, Scene, floor
from .spheremodel import DEFAULT_INFLATION, SphereModel, ready_configuration
from .spheres import Capsule, SphereTable, capsule_spheres, load_sphere_table

__all__ = ["Box", "Ball", "HalfSpace", "MeshObstacle", "PointCloud", "Obstacle", "Scene", "floor", "Capsule",
           "SphereTable", "load_sphere_table", "capsule_spheres", "CollisionModel", "CollisionChecker",
           "ready_configuration", "robot_sphere_table", "SphereModel", "DEFAULT_INFLATION"]


def robot_sphere_table(robot, spheres=None, fit: Optional[dict] = None) -> SphereTable:
    """The sphere table of ``robot``: ``spheres`` when given (anything :func:`load_sphere_table` takes), a
    built-in's shipped table, else one fitted to its description's collision geometry
    (:func:`posegen.robots.autofit.fit_sphere_table` with the keyword arguments ``fit``)."""
    if spheres is not None:
        return load_sphere_table(spheres)
    if robot.spec["robot"] in BUILTIN_ROBOTS and not fit:
        return load_sphere_table(robot)
    return fit_sphere_table(robot, **(fit or {}))


def _deprecated_table(table, spheres, who: str):
    if table is None:
        return spheres
    warnings.warn(f"{who}(table=...) is deprecated: the sphere table is now spheres= (table= read like a "
                  f"physical table)", DeprecationWarning, stacklevel=3)
    if spheres is not None:
        raise TypeError(f"{who}: give spheres= only (table= is its deprecated name), got both")
    return table


class CollisionModel(SphereModel):
    """:class:`~posegen.robots.spheremodel.SphereModel` whose table is chosen for the robot: ``spheres`` when
    given, the built-in's, else one fitted to the robot's collision geometry (``fit``: keyword arguments of
    :func:`~posegen.robots.autofit.fit_sphere_table`, e.g. ``{"tolerance": 0.005}``, cached). ``table`` is the
    deprecated name of ``spheres``; the other arguments are :class:`SphereModel`'s."""

    def __init__(self, robot="panda", spheres=None, *, fit: Optional[dict] = None, table=None, **options):
        robot = as_robot(robot, "CollisionModel")
        super().__init__(robot, robot_sphere_table(robot, _deprecated_table(table, spheres, "CollisionModel"), fit),
                         **options)


def _as_scene(obstacles) -> Scene:
    if isinstance(obstacles, Scene):
        return obstacles
    if isinstance(obstacles, (str, os.PathLike)):
        return Scene.from_yaml(obstacles)
    return Scene(obstacles)


class CollisionChecker:
    """Batched validity of a robot's configurations among obstacles (approximate; see the module docstring).

    Args:
        robot: a :class:`~posegen.robots.Robot`, a built-in name or a description path (default the Panda).
        obstacles: a :class:`~posegen.robots.scene.Scene`, an iterable of obstacles or a scene YAML file.
        margin: extra clearance (m) required between every robot sphere and every obstacle.
        self_collision: also reject configurations whose checked link pairs touch (:class:`CollisionModel`).
        self_margin: extra clearance (m) required between the spheres of a self-collision pair.
        joint_limits: ``(dof, 2)`` ``[lower, upper]`` checked by :meth:`is_valid`; default the robot's.
        spheres, spacing, conservative, inflation, fit, srdf, self_samples: the robot's spheres, as for :class:`CollisionModel`; or
            ``model``, a ready :class:`CollisionModel` (then ``robot`` and those are taken from it).
        dtype, device: where the computation runs (float64 CPU by default, like OMPL's states).
        table: deprecated name of ``spheres`` (DeprecationWarning).

    Attributes:
        scene; n_checked: configurations checked so far (a planner-independent cost measure); reset with
        :meth:`reset_counter`.

    Raises:
        ValueError: when an obstacle other than a half-space overlaps the fixed base (every configuration would
            be invalid; a floor the base stands on is a :class:`HalfSpace`, :func:`floor`).
    """

    def __init__(self, robot="panda", obstacles=(), *, margin: float = 0.0, self_collision: bool = True,
                 self_margin: float = 0.0, joint_limits=None, spheres=None, spacing: float = 0.5,
                 conservative: bool = False, inflation: Optional[float] = None, fit: Optional[dict] = None,
                 srdf=None, self_samples: int = 0, model: Optional[CollisionModel] = None, dtype: torch.dtype = torch.float64, device=None,
                 table=None):
        if (isinstance(robot, Scene) or isinstance(robot, (list, tuple)) and (
                not robot or isinstance(robot[0], (Box, Ball, HalfSpace, MeshObstacle, PointCloud)))) and not obstacles:
            raise TypeError("CollisionChecker takes the robot first: CollisionChecker(robot, obstacles, ...) "
                            "(e.g. CollisionChecker('panda', [table()]))")
        spheres = _deprecated_table(table, spheres, "CollisionChecker")
        self.scene = _as_scene(obstacles)
        for name, v in (("margin", margin), ("self_margin", self_margin)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (metres), got {v!r}")
        self.margin, self.self_margin = float(margin), float(self_margin)
        self.self_collision = bool(self_collision)
        if model is None:
            model = CollisionModel(robot, spheres, spacing=spacing, conservative=conservative, inflation=inflation,
                                   fit=fit, srdf=srdf, self_samples=self_samples, dtype=dtype, device=device)
        self.model = model
        self.robot = model.robot
        self.dtype, self.device = model.dtype, model.device
        dof = self.robot.dof
        lim = self.robot.joint_limits if joint_limits is None else torch.as_tensor(joint_limits, dtype=torch.float64)
        if tuple(lim.shape) != (dof, 2):
            raise ValueError(f"joint_limits must have shape ({dof}, 2) for {self.robot.name}, got {tuple(lim.shape)}")
        self.joint_limits = lim.to(dtype=self.dtype, device=self.device)
        self._obs = self.scene.tensors(self.dtype, self.device)
        self._moving = (~model.fixed).nonzero().flatten()
        self.n_checked = 0
        if not self._obs.empty and bool(model.fixed.any()):
            # the fixed base never moves: checked once here (without margin, half-spaces left out: the base
            # stands on them), left out of the per-q checks
            c0 = model.sphere_centers(ready_configuration(self.robot).to(dtype=self.dtype, device=self.device))
            d = self._obs.distance(c0[model.fixed], planes=False) - model.radii[model.fixed]
            if bool((d < 0).any()):
                raise ValueError(f"an obstacle overlaps the fixed base of {self.robot.name} (every configuration "
                                 f"would collide; a floor the base stands on is a HalfSpace, see floor()); move it "
                                 f"away from the origin: {self.scene}")

    @property
    def obstacles(self) -> Tuple[Obstacle, ...]:
        return self.scene.obstacles

    @property
    def radii(self) -> torch.Tensor:
        """``(S',)`` radii of the moving spheres (those checked against obstacles per configuration)."""
        return self.model.radii[self._moving]

    def __repr__(self) -> str:
        return (f"CollisionChecker({self.robot.name!r}, {len(self.model.radii)} spheres, {self.scene!r}, "
                f"margin={self.margin}, self_collision={self.self_collision})")

    def reset_counter(self) -> None:
        self.n_checked = 0

    def sphere_centers(self, q) -> torch.Tensor:
        """World centres ``(..., S, 3)`` of all the robot's spheres (see :class:`CollisionModel`)."""
        return self.model.sphere_centers(q)

    def clearance(self, q, centers: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Smallest signed distance ``(...,)`` (m) between a moving robot sphere and an obstacle for
        ``q (..., dof)``; negative means penetration, ``inf`` without obstacles. Limits are not considered."""
        q = self.model.as_q(q)
        if self._obs.empty:
            return q.new_full(q.shape[:-1], math.inf)
        with torch.no_grad():
            c = self.model.sphere_centers(q) if centers is None else centers
            return (self._obs.distance(c[..., self._moving, :]) - self.radii).amin(-1)

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
        if self._obs.empty and not self.self_collision:
            return ok
        with torch.no_grad():
            c = self.model.sphere_centers(q)
            if not self._obs.empty:
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
        q_a, q_b = self.model.as_q(q_a).reshape(1, dof), self.model.as_q(q_b).reshape(1, dof)
        return bool(self.is_valid(segment_points(q_a, q_b, resolution)[0]).all())


def segment_points(q_a: torch.Tensor, q_b: torch.Tensor, resolution: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The configurations a motion validator checks on the straight joint-space segments ``q_a[i] -> q_b[i]``
    (``(k, dof)`` each): ``q_a[i] + (j / s_i) (q_b[i] - q_a[i])`` for ``j = 1 .. s_i``, with ``s_i =
    max(ceil(max|q_b[i] - q_a[i]| / resolution), 1)`` (largest joint change at most ``resolution``; the start
    excluded, the end included), as ``points (sum s_i, dof)`` and the segment of each, ``row (sum s_i,)``."""
    steps = ((q_b - q_a).abs().amax(-1) / resolution).ceil().clamp_min(1).long()          # (k,)
    row = torch.repeat_interleave(torch.arange(q_a.shape[0], device=q_a.device), steps)
    first = torch.repeat_interleave(steps.cumsum(0) - steps, steps)
    t = (torch.arange(row.shape[0], device=q_a.device) - first + 1).to(q_a.dtype) / steps[row].to(q_a.dtype)
    return q_a[row] + t.unsqueeze(-1) * (q_b - q_a)[row], row
