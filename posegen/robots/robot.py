"""``Robot``: joint metadata, limits, the joint manifold and batched kinematics of one end-effector chain.

Joint vectors ``q (..., dof)`` are radians (revolute, continuous) and metres (prismatic), in the order of
:attr:`Robot.joint_names` (root to end effector), with any leading batch shape, float32 or float64, on
any device; results have q's dtype and device and are differentiable in q (plain autograd, so
higher-order derivatives work too). Poses are ``(..., 4, 4)`` homogeneous transforms of a link in the base
(root link) frame.

Kinematics backends (:attr:`Robot.kinematics`): ``"program"`` (default) evaluates the end-effector chain's FK
and Jacobian with :class:`~posegen.robots.kinematics.SerialProgram`, a few batched ops per joint built from the
same parsed description (3-6x less time per configuration than pytorch_kinematics on one CPU thread for the
Panda, UR5e and iiwa14 at batches of 1 to 3000: benchmarks/results/fk_speed.json);
``"pytorch_kinematics"`` uses the library's chain, the reference the program is tested against
(tests/test_kinematics.py). :meth:`Robot.frames` (every link of the tree) always uses pytorch_kinematics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch

from .chain import ChainCache, build_chain
from .description import Description, JointSpec, limit_problem
from .kinematics import SerialProgram
from .mimic import chain_drive, driven_by

__all__ = ["Robot", "KINEMATICS"]

#: the kinematics backends of :attr:`Robot.kinematics`
KINEMATICS = ("program", "pytorch_kinematics")


def _few(names: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")


class Robot:
    """A robot loaded from its description, seen as the chain from its root link to ``ee_link``.

    The joints of the robot are the independent movable joints on that chain: a mimic joint on it is set
    by the joint it mimics (``<mimic joint= multiplier= offset=>``), which is then a robot joint even when
    it sits on another branch (a gripper's driving joint). Only these joints need limits. Links are every
    link whose pose the robot joints (with their mimics and fixed joints) determine. Build one with
    :func:`posegen.robots.load`. A chain without a movable joint is refused (ValueError).
    """

    def __init__(self, description: Description, ee_link: str, name: Optional[str] = None,
                 ee_link_reason: Optional[str] = None):
        desc = description
        if ee_link not in desc.links:
            raise ValueError(f"{desc.source}: unknown ee_link {ee_link!r}; links of {desc.name!r} include "
                             f"{_few(list(desc.links))}")
        path = tuple(j for j in desc.path_joints(ee_link) if j.movable)
        if not path:
            raise ValueError(f"{desc.source}: the chain from the root link {desc.root!r} to ee_link {ee_link!r} "
                             f"has no movable joint; pass an ee_link below a revolute, continuous or prismatic "
                             f"joint")
        drive = chain_drive(desc, path)
        for j in drive.dofs:
            problem = limit_problem(j)
            if problem is not None:
                raise ValueError(f"{desc.source}: joint {j.name!r} on the chain to {ee_link!r}: {problem}")
        self._desc = desc
        self._joints: Tuple[JointSpec, ...] = drive.dofs
        self._drive = drive
        self._ee_link = ee_link
        self._ee_reason = ee_link_reason or f"{desc.source}: end effector {ee_link!r}, given as ee_link="
        self._name = name or desc.name
        dof_index = {j.name: k for k, j in enumerate(drive.dofs)}
        driven = {j.name: driven_by(desc, j, dof_index) for j in desc.joints if j.movable}
        # a link belongs to this robot when every movable joint above it is a robot joint or mimics one
        self._links = tuple(lk for lk in desc.links
                            if all(not j.movable or driven[j.name] is not None for j in desc.path_joints(lk)))
        self._chains = ChainCache(build_chain(desc), ee_link, [j.name for j in path])
        # the full chain's joints set by q (the rest stay 0): (full index, dof index, multiplier, offset)
        self._full_drive = tuple((self._chains.full_names.index(n), *d) for n, d in driven.items() if d is not None)
        self._drive_tensors: Dict[Tuple[torch.dtype, torch.device], tuple] = {}
        self._program = SerialProgram.from_joints(desc.path_joints(ee_link))
        self._kinematics = "program"

    # ------------------------------------------------------------------------------------- metadata
    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> Description:
        return self._desc

    @property
    def ee_link(self) -> str:
        return self._ee_link

    @property
    def ee_link_reason(self) -> str:
        """Why :attr:`ee_link` is the end effector: given, the SRDF's, the built-in's, or the default rule of
        :func:`posegen.robots.load` (then with the finger joints it left out and how to choose another)."""
        return self._ee_reason

    @property
    def base_link(self) -> str:
        """The root link: every pose is expressed in its frame."""
        return self._desc.root

    @property
    def dof(self) -> int:
        return len(self._joints)

    @property
    def joint_names(self) -> Tuple[str, ...]:
        return tuple(j.name for j in self._joints)

    @property
    def joint_types(self) -> Tuple[str, ...]:
        """``"revolute"``, ``"continuous"`` or ``"prismatic"`` per joint."""
        return tuple(j.type for j in self._joints)

    @property
    def link_names(self) -> Tuple[str, ...]:
        """Links whose pose :meth:`frames` returns (file order; the root first when it comes first)."""
        return self._links

    @property
    def joint_limits(self) -> torch.Tensor:
        """``(dof, 2)`` float64 ``[lower, upper]``; continuous joints get ``[-pi, pi]`` (their angle range)."""
        rows = [[-math.pi, math.pi] if j.type == "continuous" else [j.lower, j.upper] for j in self._joints]
        return torch.tensor(rows, dtype=torch.float64).reshape(self.dof, 2)

    def with_ee_link(self, ee_link: str) -> "Robot":
        """The same robot with another end-effector link (a new Robot; this one is unchanged)."""
        return Robot(self._desc, ee_link, self._name)

    @property
    def manifold(self):
        """The joint space as a ``posegen.manifolds.Product``.

        Runs of consecutive limited joints (revolute with limits, prismatic) form one ``Interval(lo, hi)``
        factor; runs of continuous joints one ``Torus(n)`` (angles in ``[-pi, pi)``). Coordinates are in
        joint order, so a point of the manifold is a joint vector.
        """
        from ..manifolds import Product, Torus
        try:
            from ..manifolds import Interval
        except ImportError:  # pragma: no cover - depends on the manifolds package version
            from ..manifolds.interval import Interval
        if self.dof == 0:
            raise ValueError(f"{self.name}: the chain to {self.ee_link!r} has no movable joint, so no manifold")
        factors, run = [], []

        def flush():
            if not run:
                return
            if run[0].type == "continuous":
                factors.append(Torus(len(run)))
            else:
                factors.append(Interval([j.lower for j in run], [j.upper for j in run]))
            run.clear()

        for j in self._joints:
            if run and (run[0].type == "continuous") != (j.type == "continuous"):
                flush()
            run.append(j)
        flush()
        return Product(*factors)

    @property
    def spec(self) -> dict:
        """Plain data that :func:`posegen.robots.load` turns back into this robot, for checkpoints:
        ``{"robot": built-in name or absolute file path, "ee_link": name}``."""
        src = self._desc.source
        builtin = src.startswith("<built-in ")
        ref = src[len("<built-in "):-1] if builtin else str(Path(src).resolve())
        return {"robot": ref, "ee_link": self.ee_link}

    def __repr__(self) -> str:
        return (f"Robot(name={self.name!r}, dof={self.dof}, ee_link={self.ee_link!r}, "
                f"base_link={self.base_link!r}, source={self._desc.source!r})")

    # ---------------------------------------------------------------------------------- input checks
    def _as_q(self, q, fn: str) -> torch.Tensor:
        """``q`` as a floating tensor ``(..., dof)`` with finite entries, else one ValueError."""
        if not isinstance(q, torch.Tensor):
            try:
                q = torch.as_tensor(q)
            except (TypeError, ValueError, RuntimeError) as e:
                raise ValueError(f"{self.name}.{fn}: q must be a tensor of joint values (..., {self.dof}); "
                                 f"could not convert {type(q).__name__} ({e})") from None
        if not q.is_floating_point():
            q = q.to(torch.get_default_dtype())
        if q.ndim == 0 or q.shape[-1] != self.dof:
            raise ValueError(f"{self.name}.{fn}: q must have shape (..., {self.dof}) for the joints "
                             f"{_few(list(self.joint_names))}; got shape {tuple(q.shape)}")
        bad = ~torch.isfinite(q)
        if bool(bad.any()):
            raise ValueError(f"{self.name}.{fn}: q has NaN or infinite values: {self._describe(q, bad)}")
        return q

    def _describe(self, q: torch.Tensor, bad: torch.Tensor, limits: bool = False, n: int = 5) -> str:
        """``row r: joint=value [lo, hi]`` for the first ``n`` flagged entries (rows of the flattened batch)."""
        flat_q, flat_bad = q.detach().reshape(-1, self.dof).cpu(), bad.reshape(-1, self.dof).cpu()
        idx = flat_bad.nonzero().tolist()
        lim = self.joint_limits
        parts = []
        for r, c in idx[:n]:
            s = f"row {r}: {self.joint_names[c]}={flat_q[r, c].item():.6g}"
            if limits:
                s += f" outside [{lim[c, 0].item():.6g}, {lim[c, 1].item():.6g}]"
            parts.append(s)
        more = f"; {len(idx) - n} more" if len(idx) > n else ""
        return "; ".join(parts) + more

    def within_limits(self, q, atol: float = 0.0) -> torch.Tensor:
        """``(...,)`` bool: every limited joint of ``q (..., dof)`` lies in ``[lower - atol, upper + atol]``.

        Continuous joints have no limits and always pass.
        """
        q = self._as_q(q, "within_limits")
        return self._inside(q, atol).all(-1)

    def _inside(self, q: torch.Tensor, atol: float) -> torch.Tensor:
        lim = self.joint_limits.to(dtype=q.dtype, device=q.device)
        free = torch.tensor([t == "continuous" for t in self.joint_types], device=q.device)
        return free | ((q >= lim[:, 0] - atol) & (q <= lim[:, 1] + atol))

    def check_joints(self, q, require_limits: bool = True, atol: float = 0.0) -> torch.Tensor:
        """Validate joint vectors and return them as a tensor ``(..., dof)``.

        Raises one ValueError for a wrong last dimension, NaN/inf entries, or (``require_limits``) limited
        joints outside ``[lower - atol, upper + atol]``, naming the joints, the offending rows (of the
        batch flattened to ``(-1, dof)``) and their values.
        """
        q = self._as_q(q, "check_joints")
        if require_limits:
            outside = ~self._inside(q, atol)
            if bool(outside.any()):
                raise ValueError(f"{self.name}.check_joints: joint values outside the limits: "
                                 f"{self._describe(q, outside, limits=True)}")
        return q

    # ------------------------------------------------------------------------------------ kinematics
    @property
    def kinematics(self) -> str:
        """The backend of :meth:`fk`, :meth:`jacobian` and :meth:`fk_and_jacobian`: ``"program"`` (the default,
        :class:`~posegen.robots.kinematics.SerialProgram`) or ``"pytorch_kinematics"`` (the reference). Both
        agree to float64 rounding; set it to compare them or to fall back."""
        return self._kinematics

    @kinematics.setter
    def kinematics(self, value: str) -> None:
        if value not in KINEMATICS:
            raise ValueError(f"{self.name}.kinematics must be one of {list(KINEMATICS)}, got {value!r}")
        self._kinematics = value

    def _tensors(self, dtype: torch.dtype, device: torch.device) -> tuple:
        """The chain and full-chain drives as tensors on ``(dtype, device)``, made once per pair."""
        key = (dtype, torch.device(device))
        hit = self._drive_tensors.get(key)
        if hit is None:
            d = self._drive
            full_th, full_q, full_m, full_c = (zip(*self._full_drive) if self._full_drive else ((),) * 4)
            idx = dict(dtype=torch.long, device=key[1])
            val = dict(dtype=dtype, device=key[1])
            with torch.inference_mode(False):  # ordinary tensors even when first asked for inside inference mode
                hit = (torch.tensor(d.index, **idx), torch.tensor(d.multiplier, **val), torch.tensor(d.offset, **val),
                       torch.tensor(full_th, **idx), torch.tensor(full_q, **idx), torch.tensor(full_m, **val),
                       torch.tensor(full_c, **val))
            self._drive_tensors[key] = hit
        return hit

    def _chain_values(self, q: torch.Tensor) -> torch.Tensor:
        """Values of the movable joints on the chain ``(B, n_path)`` for ``q (B, dof)`` (mimics followed)."""
        if self._drive.identity:
            return q
        index, mult, offset = self._tensors(q.dtype, q.device)[:3]
        return q[:, index] * mult + offset

    def _jacobian_in_q(self, J_path: torch.Tensor) -> torch.Tensor:
        """``J (B, 6, n_path)`` in the chain's joint values -> ``(B, 6, dof)`` in q (chain rule, mimics)."""
        if self._drive.identity:
            return J_path
        index, mult = self._tensors(J_path.dtype, J_path.device)[:2]
        return J_path.new_zeros(*J_path.shape[:-1], self.dof).index_add(-1, index, J_path * mult)

    def _all_transforms(self, q: torch.Tensor, full: bool):
        """pytorch_kinematics transforms ``(num_frames, B, 4, 4)`` for ``q (B, dof)``."""
        full_chain, serial = self._chains.get(q.dtype, q.device)
        if not full:
            # analytical_grad=False: plain autograd, so create_graph / double backward work
            return serial, serial.forward_kinematics_tensor(self._chain_values(q), analytical_grad=False)
        full_th, full_q, full_m, full_c = self._tensors(q.dtype, q.device)[3:]
        th = q.new_zeros(q.shape[0], self._chains.n_full)
        th[:, full_th] = q[:, full_q] * full_m + full_c  # joints no robot joint drives stay 0: they move no link here
        return full_chain, full_chain.forward_kinematics_tensor(th, analytical_grad=False)

    def _fk_and_jacobian(self, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``q (B, dof) -> (ee pose (B, 4, 4), J (B, 6, dof))`` with the chosen backend."""
        if self._kinematics == "program":
            T, J_path = self._program.fk_and_jacobian(self._chain_values(q))
            return T, self._jacobian_in_q(J_path)
        serial, T = self._all_transforms(q, full=False)
        J = self._jacobian_in_q(serial.jacobian_tensor(self._chain_values(q), all_transforms=T))
        return T[self._chains.ee_index], J

    def fk(self, q) -> torch.Tensor:
        """End-effector pose: ``q (..., dof) -> (..., 4, 4)``, ``ee_link`` in the base frame."""
        q = self._as_q(q, "fk")
        batch = q.shape[:-1]
        q = q.reshape(-1, self.dof)
        if self._kinematics == "program":
            return self._program.fk(self._chain_values(q)).reshape(*batch, 4, 4)
        _, T = self._all_transforms(q, full=False)
        return T[self._chains.ee_index].reshape(*batch, 4, 4)

    def frames(self, q, links: Optional[Iterable[str]] = None) -> Dict[str, torch.Tensor]:
        """Poses of links in the base frame: ``{name: (..., 4, 4)}`` for ``links`` (default all
        :attr:`link_names`). The whole tree goes through pytorch_kinematics; ``ee_link``'s pose is the one
        :meth:`fk` returns (the same backend, bit for bit)."""
        names = list(self._links) if links is None else [links] if isinstance(links, str) else list(links)
        unknown = [n for n in names if n not in self._links]
        if unknown:
            raise ValueError(f"{self.name}.frames: unknown link(s) {unknown}; links of this robot include "
                             f"{_few(list(self._links))}")
        q = self._as_q(q, "frames")
        batch = q.shape[:-1]
        q = q.reshape(-1, self.dof)
        chain, T = self._all_transforms(q, full=True)
        idx = [int(i) for i in chain.get_frame_indices(*names)] if names else []
        out = {n: T[i].reshape(*batch, 4, 4) for n, i in zip(names, idx)}
        if self._kinematics == "program" and self._ee_link in out:
            out[self._ee_link] = self._program.fk(self._chain_values(q)).reshape(*batch, 4, 4)
        return out

    def jacobian(self, q) -> torch.Tensor:
        """Geometric Jacobian of ``ee_link``: ``q (..., dof) -> J (..., 6, dof)``.

        Rows 0-2: linear velocity of the ee_link origin, rows 3-5: angular velocity, both in the base
        frame: ``[v; w] = J dq/dt``. A revolute joint's column is ``[z x (p_ee - p); z]``, a prismatic
        one's ``[z; 0]`` (``z`` the joint axis, ``p`` a point on it, in the base frame).
        """
        q = self._as_q(q, "jacobian")
        batch = q.shape[:-1]
        _, J = self._fk_and_jacobian(q.reshape(-1, self.dof))
        return J.reshape(*batch, 6, self.dof)

    def fk_and_jacobian(self, q) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`fk` and :meth:`jacobian` from one pass over the chain: ``q (..., dof) -> ((..., 4, 4),
        (..., 6, dof))``. The Jacobian needs every link's transform, which is the cost of FK; iterative IK
        that wants both at each new point pays it once instead of twice."""
        q = self._as_q(q, "fk_and_jacobian")
        batch = q.shape[:-1]
        T, J = self._fk_and_jacobian(q.reshape(-1, self.dof))
        return T.reshape(*batch, 4, 4), J.reshape(*batch, 6, self.dof)

    def pose(self, q, quat_order: str = "xyzw") -> Tuple[torch.Tensor, torch.Tensor]:
        """End-effector position ``(..., 3)`` (m) and unit quaternion ``(..., 4)`` in ``quat_order``
        (``"xyzw"`` or ``"wxyz"``), canonical sign ``w >= 0``."""
        import roma

        from ..rotations import canonical_quat, check_quat_order, convert_quat_order

        check_quat_order(quat_order)
        T = self.fk(q)
        quat = canonical_quat(roma.rotmat_to_unitquat(T[..., :3, :3]), "xyzw")
        return T[..., :3, 3], convert_quat_order(quat, "xyzw", quat_order)
