"""pytorch_kinematics chains built from a :class:`~posegen.robots.description.Description`.

The chains are assembled from pytorch_kinematics' own ``Frame``/``Joint``/``Link`` objects with float64
origins (its URDF reader would round them to float32), then copied to each ``(dtype, device)`` that a
caller's joint tensors use, once per pair.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Dict, Sequence, Tuple

import torch

from ._backend import pytorch_kinematics
from .description import Description, JointSpec

__all__ = ["build_chain", "ChainCache", "origin_matrix"]

# pytorch_kinematics knows revolute, prismatic and fixed; a continuous joint is a revolute one without limits
_PK_TYPE = {"revolute": "revolute", "continuous": "revolute", "prismatic": "prismatic", "fixed": "fixed"}


def _origin(pk, j: JointSpec):
    if j.quat is not None:
        rot = torch.tensor(j.quat, dtype=torch.float64)
    else:
        # URDF rpy: R = Rz(yaw) Ry(pitch) Rx(roll), pytorch_kinematics' "sxyz"; a fresh tensor each time
        # because pk.quaternion_from_euler halves its input in place
        rot = pk.quaternion_from_euler(torch.tensor(j.rpy, dtype=torch.float64), "sxyz")
    return pk.Transform3d(rot=rot, pos=list(j.xyz), dtype=torch.float64)


def origin_matrix(j: JointSpec) -> torch.Tensor:
    """``(4, 4)`` float64: the joint's origin (parent link frame -> joint frame), converted as in the chain."""
    return _origin(pytorch_kinematics(), j).get_matrix()[0]


def build_chain(desc: Description):
    """The whole tree of ``desc`` as a float64 CPU ``pytorch_kinematics.Chain`` (frame names = link names)."""
    pk = pytorch_kinematics()
    f64 = torch.float64
    children: Dict[str, list] = defaultdict(list)
    for j in desc.joints:
        children[j.parent].append(j)

    def frame(link: str, j):
        if j is None:
            joint = pk.frame.Joint(dtype=f64)
        else:
            limits = None if j.lower is None else (j.lower, j.upper)
            joint = pk.frame.Joint(j.name, offset=_origin(pk, j), joint_type=_PK_TYPE[j.type], axis=j.axis,
                                   dtype=f64, limits=limits)
        f = pk.frame.Frame(link, link=pk.frame.Link(link), joint=joint)
        # assigned afterwards: pytorch_kinematics 0.10's Frame ignores a non-None ``children`` argument
        f.children = [frame(c.child, c) for c in children[link]]
        return f

    return pk.chain.Chain(frame(desc.root, None), dtype=f64)


class ChainCache:
    """One float64 CPU chain and the serial sub-chain to the end effector, copied per ``(dtype, device)``.

    ``get(dtype, device)`` returns ``(full_chain, serial_chain)``; the copies are made on first use.
    ``joint_names`` are the movable joints from the root to ``ee_link`` (mimic joints included), the order
    of the serial chain's joint vector; ``full_names`` is the order of the full chain's.
    """

    def __init__(self, full_chain, ee_link: str, joint_names: Sequence[str]):
        pk = pytorch_kinematics()
        f64 = torch.float64
        serial = pk.chain.SerialChain(full_chain, ee_link, dtype=f64)
        got = tuple(serial.get_joint_parameter_names())
        if got != tuple(joint_names):  # the order every q vector uses; guard against a library change
            raise RuntimeError(f"pytorch_kinematics ordered the joints to {ee_link!r} as {got}, "
                               f"expected {tuple(joint_names)}")
        self.ee_index = int(serial.get_frame_indices(ee_link)[0])
        self.full_names: Tuple[str, ...] = tuple(full_chain.get_joint_parameter_names())
        self.n_full = len(self.full_names)
        self._chains: Dict[Tuple[torch.dtype, torch.device], tuple] = {
            (f64, torch.device("cpu")): (full_chain, serial)}

    def get(self, dtype: torch.dtype, device: torch.device):
        key = (dtype, torch.device(device))
        hit = self._chains.get(key)
        if hit is None:
            base = self._chains[(torch.float64, torch.device("cpu"))]
            with torch.inference_mode(False):  # ordinary tensors even when first asked for inside inference mode
                hit = tuple(copy.deepcopy(c).to(dtype=dtype, device=key[1]) for c in base)
            self._chains[key] = hit
        return hit
