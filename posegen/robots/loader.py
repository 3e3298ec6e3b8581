"""``load``: a :class:`~posegen.robots.robot.Robot` from a built-in name or a description file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional, Union

from .description import Description, parse_urdf
from .descriptions import BUILTIN_ROBOTS, builtin_names, builtin_robot, builtin_text
from .endeffector import choose_ee_link
from .mjcf import is_mjcf, parse_mjcf
from .robot import Robot
from .srdf import read_srdf, srdf_ee_link

__all__ = ["load", "as_robot", "parse_description", "default_ee_link", "DescriptionFileNotFoundError"]

logger = logging.getLogger("posegen.robots")
_SUFFIXES = (".urdf", ".xml", ".mjcf")


class DescriptionFileNotFoundError(FileNotFoundError, ValueError):
    """A description path that does not exist (a FileNotFoundError and, like every bad input here, a
    ValueError)."""


def parse_description(text: str, source: str, path: Optional[Union[str, os.PathLike]] = None) -> Description:
    """Parse URDF (``<robot>``) or MJCF (``<mujoco>``) text; the root element decides, not the suffix
    (:func:`~posegen.robots.mjcf.is_mjcf`). ``path``: the file ``text`` was read from; MJCF is then compiled from
    it, so that its mesh and include files are found relative to its folder."""
    if is_mjcf(text):
        return parse_mjcf(text, source, path)
    return parse_urdf(text, source)


def default_ee_link(desc: Description) -> str:
    """The tip of the longest chain of movable non-finger joints of ``desc``
    (:func:`posegen.robots.endeffector.choose_ee_link` gives the rule and the reason)."""
    return choose_ee_link(desc).link


def _directory_error(path: Path) -> ValueError:
    found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _SUFFIXES)[:8]
    hint = f"; description files in it: {', '.join(found)}" if found else "; it holds no .urdf or .xml file"
    return ValueError(f"load: {str(path)!r} is a directory; pass the path of a URDF or MJCF file{hint}")


def _read_file(robot: Union[str, os.PathLike]) -> Description:
    path = Path(robot)
    if path.is_dir():
        raise _directory_error(path)
    if not path.is_file():
        if isinstance(robot, str) and path.suffix == "" and os.sep not in robot and "/" not in robot:
            builtin_robot(robot)  # raises: it reads as a name, so list the built-in names
        raise DescriptionFileNotFoundError(f"load: no such description file {str(path)!r} (built-in robots: "
                                           f"{', '.join(builtin_names())})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"load: cannot read {str(path)!r} ({e})") from None
    return parse_description(text, str(path), path)


def load(robot: Union[str, os.PathLike], ee_link: Optional[str] = None,
         srdf: Optional[Union[str, os.PathLike]] = None) -> Robot:
    """Load a robot: a built-in name (``"panda"``, ``"ur5e"``, ``"iiwa14"``) or a path to a URDF or MJCF file.

    The robot is the chain from the root link to the end effector; its joints are the movable joints on it
    (a mimic joint follows the joint it mimics, which becomes the robot joint). Which end effector:

    1. ``ee_link`` when given;
    2. else the SRDF's end effector when ``srdf`` is given (its first ``<end_effector parent_link=...>``,
       else its first ``<chain tip_link=...>``);
    3. else the built-in's (Panda ``panda_hand_tcp``, UR5e ``tool0``, iiwa14 ``iiwa_link_ee``);
    4. else, for a file, the tip of its longest chain of movable non-finger joints, followed down fixed
       joints to the deepest tool frame (:mod:`posegen.robots.endeffector`): pybullet's Panda gives
       ``panda_grasptarget`` (7 joints), Baxter ``left_gripper``.

    An MJCF file is compiled by MuJoCo from its path, so that mesh and include files named relative to it
    (``<compiler meshdir=...>``) are found; a missing one is named in the error.

    The default choice and its reason (with the finger joints it left out) are logged (logger
    ``posegen.robots``: INFO, or WARNING when joints without limits cut the chain short); every robot
    keeps its reason in :attr:`Robot.ee_link_reason`.
    ``robot.with_ee_link(name)`` or ``load(path, ee_link=name)`` picks another link.

    Args:
        robot: built-in name (see :func:`posegen.robots.builtin_names`) or file path.
        ee_link: end-effector link name.
        srdf: path of an SRDF file whose end effector to use (ignored when ``ee_link`` is given).
    Raises:
        ValueError: unknown built-in name (the message lists them), missing file
            (:class:`DescriptionFileNotFoundError`), a directory, malformed or unsupported description, a
            description without movable joints, unknown ee_link, a chain without movable joints, a robot
            joint without usable limits.
        ImportError: pytorch_kinematics is not installed (``pip install "posegen[robots]"``).
    """
    builtin = isinstance(robot, str) and robot in BUILTIN_ROBOTS
    if builtin:
        desc = parse_urdf(builtin_text(robot), f"<built-in {robot}>")
    elif isinstance(robot, (str, os.PathLike)):
        desc = _read_file(robot)
    else:
        raise ValueError(f"load: expected a built-in robot name ({', '.join(builtin_names())}) or a path, "
                         f"got {type(robot).__name__}")
    name = builtin_robot(robot).name if builtin else desc.name
    if ee_link is not None:
        reason = f"{desc.source}: end effector {ee_link!r}, given as ee_link="
    elif srdf is not None:
        text, source = read_srdf(srdf)
        ee_link = srdf_ee_link(text, source, desc)
        reason = f"{desc.source}: end effector {ee_link!r}, the end effector of {source}"
    elif builtin:
        ee_link = builtin_robot(robot).ee_link
        reason = f"{desc.source}: end effector {ee_link!r}, the built-in robot's default"
    else:
        choice = choose_ee_link(desc)
        ee_link, reason = choice.link, choice.reason
        # a chain cut short by joints without limits is worth a warning; the usual choice is not
        logger.log(logging.WARNING if choice.cut_short else logging.INFO, "%s", reason)
    return Robot(desc, ee_link, name=name, ee_link_reason=reason)


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
