"""The default end effector of a description: the tip of its longest chain of movable non-finger joints.

A description file names no end effector, so :func:`posegen.robots.load` picks one: the chain from the
root with the most movable joints, not counting a gripper's or a hand's joints, ends at the link its last
movable joint moves; the end effector is the deepest link hanging from there on fixed joints only (a tool
or TCP frame such as Panda's ``panda_hand_tcp``, Baxter's ``right_gripper``), the first in file order on
ties, a link whose name says tcp, tool, grasp, effector, endpoint, eef or ee first. Finger joints are the
movable joints that mimic another joint or are mimicked, whose name or child link's name says finger,
thumb, knuckle, claw or jaw, or whose name says gripper or has the word hand; the search stops above
them (and does not follow fixed joints into fingers), and above joints without usable limits (a
minitaur's knees, ``lower = upper = 0``): those matter only on the chain. A description whose movable
joints are all finger joints (a gripper or a finger on its own) is searched with every movable joint.

:func:`choose_ee_link` says what it chose and why (:class:`EndEffectorChoice`); ``load`` logs that reason
on the ``posegen.robots`` logger, and ``load(path, ee_link=...)`` picks any other link.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Tuple

from .description import Description, JointSpec, limit_problem

__all__ = ["EndEffectorChoice", "choose_ee_link", "is_finger_joint"]

_FINGER_PARTS = ("finger", "thumb", "knuckle", "claw", "jaw")  # in a joint's or its child link's name
_GRIPPER_PARTS = ("gripper",)   # in a joint's name (a wrist joint's child link is often "gripper")
_GRIPPER_WORDS = ("hand",)      # a word of a joint's name ("LHand", "hand_index_abd_joint")
_TOOL_PARTS = ("tcp", "tool", "grasp", "effector", "endpoint", "eef")  # a tool frame's link name
_TOOL_WORDS = ("ee",)


def _words(name: str) -> List[str]:
    """``"LHand_joint"`` -> ``["l", "hand", "joint"]``: split at non-letters and at camelCase humps."""
    spaced = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3 \2\4", name)
    return [w.lower() for w in re.split(r"[^A-Za-z]+", spaced) if w]


def _says(name: str, parts: Tuple[str, ...], words: Tuple[str, ...] = ()) -> bool:
    low = name.lower()
    return any(p in low for p in parts) or any(w in words for w in _words(name))


def is_finger_joint(j: JointSpec, mimicked: frozenset = frozenset()) -> bool:
    """Whether joint ``j`` belongs to a gripper or hand: it mimics a joint, is in ``mimicked`` (names of
    joints that others mimic), its name or its child link's name says finger, thumb, knuckle, claw or jaw,
    or its own name says gripper or has the word hand."""
    if j.mimic is not None or j.name in mimicked:
        return True
    return (_says(j.name, _FINGER_PARTS + _GRIPPER_PARTS, _GRIPPER_WORDS) or _says(j.child, _FINGER_PARTS))


@dataclass(frozen=True)
class EndEffectorChoice:
    """The default end effector: ``link``, the ``joints`` of its chain, and ``reason`` (one sentence).
    ``cut_short`` is True when joints without usable limits made the chain shorter than it would be."""

    link: str
    joints: Tuple[str, ...]
    reason: str
    cut_short: bool = False


def _fixed_tip(desc: Description, link: str, children: Dict[str, List[JointSpec]], fingers: bool) -> str:
    """The tool frame below ``link`` on fixed joints only: among the links reached that way (``link``
    itself included; with ``fingers``, a finger's fixed joints not followed), one whose name says tcp,
    tool, grasp, effector, endpoint, eef or ee if any, then the deepest, then the first in file order."""
    depth = {link: 0}
    stack = [link]
    while stack:
        here = stack.pop()
        for j in children[here]:
            if j.movable or (fingers and (_says(j.name, _FINGER_PARTS) or _says(j.child, _FINGER_PARTS))):
                continue
            depth[j.child] = depth[here] + 1
            stack.append(j.child)
    order = {lk: i for i, lk in enumerate(desc.links)}
    return min(depth, key=lambda lk: (not _says(lk, _TOOL_PARTS, _TOOL_WORDS), -depth[lk], order[lk]))


def _longest_chain(desc: Description, children, stop) -> Tuple[str, int, List[JointSpec]]:
    """``(link, n, stopped)``: the child link of the deepest movable non-stop joint (most movable joints
    above it; file order on ties), that count, and the stop joints met."""
    count = {desc.root: 0}
    stack, stopped, ends = [desc.root], [], []
    while stack:
        here = stack.pop()
        for j in children[here]:
            if j.movable and stop(j):
                stopped.append(j)
                continue
            count[j.child] = count[here] + int(j.movable)
            if j.movable:
                ends.append(j.child)
            stack.append(j.child)
    if not ends:
        return desc.root, 0, stopped
    order = {lk: i for i, lk in enumerate(desc.links)}
    best = min(ends, key=lambda lk: (-count[lk], order[lk]))
    return best, count[best], stopped


def choose_ee_link(desc: Description) -> EndEffectorChoice:
    """The default end effector of ``desc`` (see the module docstring for the rule).

    Raises ValueError (naming the source) when the description has no movable joint at all.
    """
    if not any(j.movable for j in desc.joints):
        raise ValueError(f"{desc.source}: the description has no movable joint ({len(desc.links)} link(s), "
                         f"{len(desc.joints)} fixed joint(s)): there is no robot to load; a robot needs a "
                         f"revolute, continuous or prismatic joint")
    children: Dict[str, List[JointSpec]] = defaultdict(list)
    for j in desc.joints:
        children[j.parent].append(j)
    mimicked = frozenset(j.mimic for j in desc.joints if j.mimic is not None)

    def unusable(j: JointSpec) -> bool:
        return limit_problem(j) is not None

    def finger(j: JointSpec) -> bool:
        return is_finger_joint(j, mimicked)

    # the strictest search that finds a chain: no fingers and no joints without limits, then without
    # fingers only, then every movable joint (Robot then names the joint whose limits are missing)
    for fingers, stop in ((True, lambda j: finger(j) or unusable(j)), (False, unusable), (False, lambda j: False)):
        end, n, stopped = _longest_chain(desc, children, stop)
        if n > 0:
            break
    link = _fixed_tip(desc, end, children, fingers)
    joints = tuple(j.name for j in desc.path_joints(link) if j.movable)
    reason = (f"{desc.source}: end effector {link!r}, the tip of the longest chain of movable "
              f"{'non-finger ' if fingers else ''}joints ({n}: {', '.join(joints[:3])}"
              f"{', ...' if n > 3 else ''})")
    for what, names in (("finger/gripper joints", sorted({j.name for j in stopped if finger(j)})),
                        ("joints without usable limits", sorted({j.name for j in stopped if unusable(j)}))):
        if names:
            reason += (f"; {what} not included: {', '.join(names[:4])}"
                       f"{f', ... ({len(names)} in all)' if len(names) > 4 else ''}")
    reason += "; pass ee_link= to choose another link"
    cut_short = fingers and _longest_chain(desc, children, finger)[1] > n
    return EndEffectorChoice(link, joints, reason, cut_short)
