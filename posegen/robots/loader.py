"""``load``: a :class:`~posegen.robots.robot.Robot` from a built-in name or a description file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Union

from .description import Description, parse_urdf
from .descriptions import BUILTIN_ROBOTS, builtin_names, builtin_robot, builtin_text
from .robot import Robot

__all__ = ["load", "as_robot", "parse_description", "default_ee_link", "DescriptionFileNotFoundError"]


class DescriptionFileNotFoundError(FileNotFoundError, ValueError):
    """A description path that does not exist (a FileNotFoundError and, like every bad input here, a
    ValueError)."""


def parse_description(text: str, source: str) -> Description:
    """Parse URDF (``<robot>``) or MJCF (``<mujoco>``) text; the root element decides, not the suffix."""
    head = text.lstrip()[:4096]
    if "<mujoco" in head and "<robot" not in head:
        from .mjcf import parse_mjcf
        return parse_mjcf(text, source)
    return parse_urdf(text, source)


def default_ee_link(desc: Description) -> str:
    """The leaf link with the most movable joints above it (the first in file order on ties)."""
    parents = {j.parent for j in desc.joints}
    leaves = [lk for lk in desc.links if lk not in parents]
    return max(leaves, key=lambda lk: sum(j.movable for j in desc.path_joints(lk)))


def load(robot: Union[str, os.PathLike], ee_link: Optional[str] = None) -> Robot:
    """Load a robot: a built-in name (``"panda"``, ``"ur5e"``, ``"iiwa14"``) or a path to a URDF or MJCF file.

    Args:
        robot: built-in name (see :func:`posegen.robots.builtin_names`) or file path.
        ee_link: end-effector link; defaults to the built-in's (Panda ``panda_hand_tcp``, UR5e ``tool0``,
            iiwa14 ``iiwa_link_ee``) or, for a file, the leaf link with the most movable joints above it.
    Raises:
        ValueError: unknown built-in name (the message lists them), missing file
            (:class:`DescriptionFileNotFoundError`), malformed or unsupported description, unknown ee_link.
        ImportError: pytorch_kinematics is not installed (``pip install "posegen[robots]"``).
    """
    if isinstance(robot, str) and robot in BUILTIN_ROBOTS:
        entry = builtin_robot(robot)
        desc = parse_urdf(builtin_text(robot), f"<built-in {robot}>")
        return Robot(desc, ee_link or entry.ee_link, name=entry.name)
    if not isinstance(robot, (str, os.PathLike)):
        raise ValueError(f"load: expected a built-in robot name ({', '.join(builtin_names())}) or a path, "
                         f"got {type(robot).__name__}")
    path = Path(robot)
    if not path.is_file():
        if isinstance(robot, str) and path.suffix == "" and os.sep not in robot and "/" not in robot:
            builtin_robot(robot)  # raises: it reads as a name, so list the built-in names
        raise DescriptionFileNotFoundError(f"load: no such description file {str(path)!r} (built-in robots: "
                                           f"{', '.join(builtin_names())})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"load: cannot read {str(path)!r} ({e})") from None
    desc = parse_description(text, str(path))
    if not desc.joints and ee_link is None:
        ee_link = desc.root
    return Robot(desc, ee_link or default_ee_link(desc), name=desc.name)


def as_robot(robot, who: Optional[str] = None):
    """``robot`` as a robot object, for functions that take a robot in any of its forms: a built-in name
    or a description path is loaded (:func:`load`), a :attr:`Robot.spec` dict (what checkpoints store) is
    loaded with its ``ee_link``; anything else is returned as it is, for the caller to check, unless ``who``
    (the caller's name, for the message) is given: then anything but a :class:`Robot` is a TypeError."""
    if isinstance(robot, (str, bytes)) or hasattr(robot, "__fspath__"):
        return load(robot)
    if isinstance(robot, Mapping) and "robot" in robot:
        return load(robot["robot"], ee_link=robot.get("ee_link"))
    if who is not None and not isinstance(robot, Robot):
        raise TypeError(f"{who}: robot must be a posegen.robots.Robot, a built-in name, a description path or a "
                        f"Robot.spec dict, got {type(robot).__name__}")
    return robot
