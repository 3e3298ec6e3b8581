"""Parallel-jaw grippers as boxes in the grasp frame; the built-in one is the Franka (Panda) Hand.

The grasp frame (ACRONYM's Franka gripper convention)
-----------------------------------------------------
A grasp is a ``(4, 4)`` homogeneous transform ``T`` of the **gripper's base frame in the object's mesh
frame** (``p_object = T @ p_gripper``), exactly as in ACRONYM's ``grasps/transforms``, Contact-GraspNet and
SE(3)-DiffusionFields. The base frame is the one of ACRONYM's ``data/franka_gripper_collision_mesh.stl``
(NVlabs/acronym, checked with trimesh: its two fingers are the bodies at ``x in +-[0.0399, 0.0664]`` m,
``z in [0.0585, 0.1122]`` m, its hand body spans ``x in [-0.100, 0.104]``, ``y in +-0.0316``, ``z <= 0.066``):

* origin: the hand's flange side, the origin of the ``panda_hand`` link of ``posegen/robots/descriptions/
  panda.urdf`` (the fingers' prismatic joints sit at ``z = 0.0584`` m above it);
* ``z``: the approach direction, from the palm toward the fingertips;
* ``x``: the closing direction; finger 1 at ``+x * opening / 2``, finger 2 at ``-x * opening / 2``;
* ``y = z cross x``, along the finger pads' width.

This is the ``panda_hand`` frame turned by +90 degrees about ``z``: ``T_hand_grasp = Rz(+90 deg)``
(:data:`HAND_FROM_GRASP`), because the Franka Hand's fingers move along ``panda_hand``'s ``y``.

**TCP offset.** The tool centre point, midway between the finger pads, is at ``z = 0.1034`` m in this frame
(:attr:`ParallelJawGripper.tcp_offset`; franka_ros's ``panda_hand_tcp``, the middle of the rubber pads,
``0.0584 + 0.04525``). A grasp's contact points lie near ``T @ [0, 0, 0.1034, 1]``.

**Jaw symmetry.** The two fingers are identical and mirror each other, so ``T`` and ``T @ Rz(180 deg)`` (``x``
and ``y`` negated) are the same physical grasp. Files and models see both; compare grasps modulo this flip
(:func:`symmetric_grasp`).

Geometry of the built-in Panda hand
-----------------------------------
The shipped ``panda.urdf`` has no collision geometry for the hand (see ``data/SOURCES.md``), so the hand is
modelled here with boxes:

* fingers: the collision boxes of franka_ros ``franka_description/robots/common/franka_hand.xacro``
  (commit 4e8558dd, Apache-2.0: the same source as ``panda.urdf``): carriage sledge, screw mount, diagonal
  finger and rubber tip of each finger, in finger-link frames at ``z = 0.0584`` m, moving +-``opening / 2``.
  Its extra "end fingertip" box (reaching ``z = 0.126`` m) is left out: the finger of ACRONYM's mesh and
  the rubber tip both end at ``z = 0.112-0.113`` m;
* hand body (palm): two boxes fitted to sections of ACRONYM's collision mesh body (the bounds quoted
  above; 0.20 m long along ``x``, 63 mm thick at the flange, 41 mm at ``z = 0.05`` m, top at 0.066 m).
  The mesh's small connector below ``z = 0`` is left out.

Stroke: 0 to 8 cm (each finger 0 to 4 cm, ``panda_finger_joint1`` limits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

__all__ = ["Box", "ParallelJawGripper", "PANDA", "GRIPPERS", "get_gripper", "HAND_FROM_GRASP",
           "symmetric_grasp"]


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


HAND_FROM_GRASP = np.eye(4)
HAND_FROM_GRASP[:3, :3] = _rot_z(math.pi / 2)
"""``T_hand_grasp``: the grasp (ACRONYM) frame in the ``panda_hand`` link frame, (4, 4) float64."""


@dataclass(frozen=True)
class Box:
    """A box: ``center (3,)`` and rotation ``R (3, 3)`` (columns = box axes) in its parent frame, ``half (3,)``
    half extents (m)."""

    center: np.ndarray
    R: np.ndarray
    half: np.ndarray

    def corners(self) -> np.ndarray:
        """The 8 corners in the parent frame, ``(8, 3)``."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
        return self.center + (signs * self.half) @ self.R.T

    def moved(self, T: np.ndarray) -> "Box":
        """This box with its parent frame moved by the homogeneous ``T (4, 4)``."""
        return Box(T[:3, :3] @ self.center + T[:3, 3], T[:3, :3] @ self.R, self.half)


@dataclass(frozen=True)
class ParallelJawGripper:
    """A parallel-jaw gripper in the grasp frame of the module docstring.

    Attributes:
        name: registry name.
        palm: boxes fixed in the grasp frame.
        finger: boxes of finger 1 (the ``+x`` finger) in its finger frame, whose origin sits at
            ``(opening / 2, 0, finger_z)`` of the grasp frame; finger 2 is finger 1 turned 180 degrees about
            ``z`` (the jaw symmetry).
        finger_z: height of the finger frames' origin above the base frame (m).
        stroke: the largest opening between the pads (m); the smallest is 0.
        tcp_offset: height of the tool centre point, midway between the pads (m).
        pad_half_height: half the pads' extent along ``z`` (m): contacts farther than this from the TCP
            height miss the pads.
        closing_force: the force each finger closes with in the physics test (N).
        finger_mass: mass of each finger (kg), for the physics test.
    """

    name: str
    palm: Tuple[Box, ...]
    finger: Tuple[Box, ...]
    finger_z: float
    stroke: float
    tcp_offset: float
    pad_half_height: float
    closing_force: float = 70.0
    finger_mass: float = 0.1
    meta: Dict[str, str] = field(default_factory=dict)

    def finger_frames(self, opening: float) -> Tuple[np.ndarray, np.ndarray]:
        """The frames of finger 1 and finger 2 in the grasp frame at ``opening`` (m), two ``(4, 4)``."""
        if not (0.0 <= opening <= self.stroke + 1e-12):
            raise ValueError(f"opening must be in [0, {self.stroke}] m (the {self.name} stroke), got {opening}")
        f1 = np.eye(4)
        f1[:3, 3] = (opening / 2, 0.0, self.finger_z)
        f2 = np.eye(4)
        f2[:3, :3] = _rot_z(math.pi)
        f2[:3, 3] = (-opening / 2, 0.0, self.finger_z)
        return f1, f2

    def parts(self, opening: float | None = None) -> Tuple[Tuple[Box, ...], Tuple[Box, ...], Tuple[Box, ...]]:
        """The boxes of the palm, finger 1 and finger 2 in the grasp frame at ``opening`` (default: fully
        open, ``stroke``)."""
        opening = self.stroke if opening is None else float(opening)
        f1, f2 = self.finger_frames(opening)
        return self.palm, tuple(b.moved(f1) for b in self.finger), tuple(b.moved(f2) for b in self.finger)

    def boxes(self, opening: float | None = None) -> Tuple[Box, ...]:
        """Every box of the gripper in the grasp frame at ``opening`` (default: fully open), palm first."""
        palm, finger1, finger2 = self.parts(opening)
        return palm + finger1 + finger2

    def box_arrays(self, opening: float | None = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The boxes of :meth:`boxes` stacked: centres ``(B, 3)``, rotations ``(B, 3, 3)``, half extents ``(B, 3)``."""
        bs = self.boxes(opening)
        return (np.stack([b.center for b in bs]), np.stack([b.R for b in bs]), np.stack([b.half for b in bs]))

    @property
    def tcp(self) -> np.ndarray:
        """The tool centre point in the grasp frame, ``(3,)``."""
        return np.array([0.0, 0.0, self.tcp_offset])


def symmetric_grasp(T: np.ndarray) -> np.ndarray:
    """The same physical grasp with the jaws swapped: ``T @ Rz(180 deg)`` (``x``, ``y`` negated), ``(..., 4, 4)``."""
    T = np.array(T, dtype=float, copy=True)
    T[..., :3, 0:2] *= -1.0
    return T


def _finger_in_grasp_frame(center_hand, size_hand, rx: float = 0.0) -> Box:
    """A franka_ros left-finger box (centre, full size and a rotation about the hand's ``x``, all in the
    ``panda_leftfinger`` frame, whose axes are ``panda_hand``'s) as a :class:`Box` of finger 1's frame here."""
    C = HAND_FROM_GRASP[:3, :3].T  # hand axes -> grasp axes
    R_hand = _rot_x(rx)
    return Box(C @ np.asarray(center_hand, float), C @ R_hand, np.abs(np.asarray(size_hand, float)) / 2.0)


def _panda() -> ParallelJawGripper:
    # finger boxes of franka_hand.xacro (panda_leftfinger link, metres): sledge, screw mount, diagonal, rubber tip
    finger = (
        _finger_in_grasp_frame((0.0, 6.8e-3, 2.2e-3), (22e-3, 8.8e-3, 3.8e-3)),
        _finger_in_grasp_frame((0.0, 18.5e-3, 11e-3), (22e-3, 15e-3, 20e-3)),
        _finger_in_grasp_frame((0.0, 15.9e-3, 28.35e-3), (17.5e-3, 7e-3, 23.5e-3), rx=math.pi / 6),
        _finger_in_grasp_frame((0.0, 7.58e-3, 45.25e-3), (17.5e-3, 15.2e-3, 18.5e-3)),
    )
    # hand body fitted to ACRONYM's collision mesh: flange part (z 0..0.04) and the narrower top (0.04..0.066)
    palm = (
        Box(np.array([0.0, 0.0, 0.020]), np.eye(3), np.array([0.1020, 0.0316, 0.020])),
        Box(np.array([0.0, 0.0, 0.053]), np.eye(3), np.array([0.1010, 0.0220, 0.013])),
    )
    return ParallelJawGripper(
        name="panda", palm=palm, finger=finger, finger_z=0.0584, stroke=0.08, tcp_offset=0.1034,
        pad_half_height=18.5e-3 / 2, closing_force=70.0, finger_mass=0.1,
        meta={"fingers": "frankaemika/franka_ros franka_description/robots/common/franka_hand.xacro "
                         "(4e8558dd, Apache-2.0)",
              "palm": "boxes fitted to NVlabs/acronym data/franka_gripper_collision_mesh.stl sections",
              "frame": "ACRONYM Franka gripper: panda_hand turned +90 deg about z"})


PANDA = _panda()
GRIPPERS: Dict[str, ParallelJawGripper] = {"panda": PANDA}


def get_gripper(gripper) -> ParallelJawGripper:
    """A :class:`ParallelJawGripper` from itself or a registry name (``"panda"``)."""
    if isinstance(gripper, ParallelJawGripper):
        return gripper
    if isinstance(gripper, str) and gripper in GRIPPERS:
        return GRIPPERS[gripper]
    raise ValueError(f'Invalid gripper "{gripper}". Must be one of {sorted(GRIPPERS)} or a ParallelJawGripper')
