"""Built-in robot descriptions shipped as package data, and their registry.

Each entry maps a short name to a plain URDF file in this folder (kinematics only: links, joint origins,
axes and limits; see ``data/SOURCES.md``, section ``robots/``, for origins, licences and what was changed)
and to the link used as end effector when :func:`posegen.robots.load` is not told one.

Each built-in robot also has a collision table ``<name>_spheres.yaml`` here (spheres fitted to the link meshes, in link frames, read by
:mod:`posegen.robots.collision`; every file's header says where its numbers come from) and a ready
configuration (:attr:`BuiltinRobot.ready`), the start pose of examples and planning defaults.

The files are found with :mod:`importlib.resources`, so they load from a source tree, an editable install
and a wheel alike (``pyproject.toml`` lists ``*.urdf`` as package data of this package; the ``*.yaml``
collision tables need the same entry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Dict, Tuple

__all__ = ["BuiltinRobot", "BUILTIN_ROBOTS", "builtin_names", "builtin_robot", "builtin_text",
           "builtin_spheres_text"]


@dataclass(frozen=True)
class BuiltinRobot:
    name: str          # the name load() accepts
    filename: str      # file in this package
    ee_link: str       # default end-effector link
    summary: str
    spheres: str = ""  # collision table in this package (posegen.robots.collision), "" when none
    ready: Tuple[float, ...] = ()  # ready configuration (rad, joint order of the chain to ee_link)


BUILTIN_ROBOTS: Dict[str, BuiltinRobot] = {
    r.name: r for r in (
        BuiltinRobot("panda", "panda.urdf", "panda_hand_tcp",
                     "Franka Emika Panda with the Franka Hand's TCP frame (franka_ros franka_description)",
                     "panda_spheres.yaml",
                     # franka_ros / MoveIt "ready": the TCP pointing down in front of the robot
                     (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)),
        BuiltinRobot("ur5e", "ur5e.urdf", "tool0",
                     "Universal Robots UR5e (ros-industrial universal_robot ur_description)",
                     "ur5e_spheres.yaml",
                     # upper arm up, forearm forward, tool0 pointing down
                     (0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0)),
        BuiltinRobot("iiwa14", "iiwa14.urdf", "iiwa_link_ee",
                     "KUKA LBR iiwa 14 R820 (Drake iiwa_description)",
                     "iiwa14_spheres.yaml",
                     # elbow bent forward, flange pointing down and forward
                     (0.0, math.pi / 6, 0.0, -math.pi / 2, 0.0, math.pi / 3, 0.0)),
    )
}


def builtin_names() -> Tuple[str, ...]:
    """Names of the built-in robots, sorted."""
    return tuple(sorted(BUILTIN_ROBOTS))


def builtin_robot(name: str) -> BuiltinRobot:
    """Registry entry of a built-in robot; ValueError naming the built-in robots for an unknown name."""
    try:
        return BUILTIN_ROBOTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown built-in robot {name!r}: built-in robots are {', '.join(builtin_names())}; "
                         f"anything else must be a path to a .urdf or MJCF (.xml) file") from None


def builtin_text(name: str) -> str:
    """The description text of built-in robot ``name``."""
    entry = builtin_robot(name)
    return resources.files(__name__).joinpath(entry.filename).read_text(encoding="utf-8")


def builtin_spheres_text(name: str) -> str:
    """The collision table (YAML) of built-in robot ``name``; ValueError when it has none."""
    entry = builtin_robot(name)
    if not entry.spheres:
        raise ValueError(f"built-in robot {name!r} has no collision table")
    return resources.files(__name__).joinpath(entry.spheres).read_text(encoding="utf-8")
