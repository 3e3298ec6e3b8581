r"""Scenes for planning examples and benchmarks: tables, open bins and a shelf (axis-aligned boxes).

Obstacles and the :class:`Scene` that holds them live in :mod:`posegen.robots.scene` (boxes, oriented boxes,
balls, half-spaces such as :func:`floor`, meshes, point clouds; base frame, metres; re-exported here); any
robot's collision checker comes from :mod:`posegen.robots.collision` (:class:`CollisionChecker`, re-exported
here). The scene builders place everything in front of a robot standing at the origin on the plane ``z = 0``.

Example::

    scene = tabletop_scene()                       # a table, two open bins, a shelf
    checker = CollisionChecker("ur5e", scene)      # or "panda" (the default), "iiwa14", a Robot
    ok = checker.is_valid(q)                       # q (B, dof) -> (B,) bool
    d = checker.clearance(q)                       # (B,) metres (negative: penetration)

``PandaCollisionChecker(obstacles, **kw)`` is ``CollisionChecker("panda", obstacles, **kw)``, the name this
module had when it knew only the Panda.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from ..robots.collision import CollisionChecker
from ..robots.scene import Ball, Box, HalfSpace, MeshObstacle, Obstacle, PointCloud, Scene, floor

__all__ = ["Box", "Ball", "HalfSpace", "MeshObstacle", "PointCloud", "Scene", "floor", "CollisionChecker",
           "PandaCollisionChecker", "table", "bin_walls", "BINS", "tabletop_scene"]


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


class PandaCollisionChecker(CollisionChecker):
    """:class:`~posegen.robots.collision.CollisionChecker` of the Panda: ``PandaCollisionChecker(obstacles,
    **kw)`` (the robot is fixed; ``kw`` as for CollisionChecker)."""

    def __init__(self, obstacles=(), **kw):
        if "robot" in kw:
            raise TypeError("PandaCollisionChecker is the Panda's checker; use CollisionChecker(robot, ...) for "
                            f"another robot (got robot={kw['robot']!r})")
        super().__init__("panda", obstacles, **kw)
