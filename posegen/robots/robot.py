"""``Robot``: joint metadata, limits, the joint manifold and batched kinematics of one end-effector chain.

Joint vectors ``q (..., dof)`` are radians (revolute, continuous) and metres (prismatic), in the order of
:attr:`Robot.joint_names` (root to end effector), with any leading batch shape, float32 or float64, on
any device; results have q's dtype and device and are differentiable in q (plain autograd through
pytorch_kinematics, so higher-order derivatives work too). Poses are ``(..., 4, 4)`` homogeneous
transforms of a link in the base (root link) frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from .chain import ChainCache, build_chain
from .description import Description, JointSpec

__all__ = ["Robot"]


def _few(names: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")


class Robot:
    """A robot loaded from its description, seen as the chain from its root link to ``ee_link``.

    The joints of the robot are the movable joints on that chain; links are every link whose pose they
    (and fixed joints) determine. Build one with :func:`posegen.robots.load`.
    """

    def __init__(self, description: Description, ee_link: str, name: Optional[str] = None):
        desc = description
        if ee_link not in desc.links:
            raise ValueError(f"{desc.source}: unknown ee_link {ee_link!r}; links of {desc.name!r} include "
                             f"{_few(list(desc.links))}")
        path = [j for j in desc.path_joints(ee_link) if j.movable]
        for j in path:
            if j.mimic is not None:
                raise ValueError(f"{desc.source}: joint {j.name!r} on the chain to {ee_link!r} mimics "
                                 f"{j.mimic!r}; mimic joints are not supported")
        self._desc = desc
        self._joints: Tuple[JointSpec, ...] = tuple(path)
        self._ee_link = ee_link
        self._name = name or desc.name
        names = {j.name for j in path}
        # a link belongs to this robot when no movable joint outside the chain moves it
        self._links = tuple(lk for lk in desc.links
                            if all(not j.movable or j.name in names for j in desc.path_joints(lk)))
        self._chains = ChainCache(build_chain(desc), ee_link, self.joint_names)

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
    def _all_transforms(self, q: torch.Tensor, full: bool):
        """pytorch_kinematics transforms ``(num_frames, B, 4, 4)`` for ``q (B, dof)``."""
        full_chain, serial = self._chains.get(q.dtype, q.device)
        if not full:
            # analytical_grad=False: plain autograd, so create_graph / double backward work
            return serial, serial.forward_kinematics_tensor(q, analytical_grad=False)
        th = q.new_zeros(q.shape[0], self._chains.n_full)
        th[:, self._chains.full_joint_index] = q  # joints off the chain stay 0; they move no returned link
        return full_chain, full_chain.forward_kinematics_tensor(th, analytical_grad=False)

    def fk(self, q) -> torch.Tensor:
        """End-effector pose: ``q (..., dof) -> (..., 4, 4)``, ``ee_link`` in the base frame."""
        q = self._as_q(q, "fk")
        batch = q.shape[:-1]
        _, T = self._all_transforms(q.reshape(-1, self.dof), full=False)
        return T[self._chains.ee_index].reshape(*batch, 4, 4)

    def frames(self, q, links: Optional[Iterable[str]] = None) -> Dict[str, torch.Tensor]:
        """Poses of links in the base frame: ``{name: (..., 4, 4)}`` for ``links`` (default all
        :attr:`link_names`)."""
        names = list(self._links) if links is None else [links] if isinstance(links, str) else list(links)
        unknown = [n for n in names if n not in self._links]
        if unknown:
            raise ValueError(f"{self.name}.frames: unknown link(s) {unknown}; links of this robot include "
                             f"{_few(list(self._links))}")
        q = self._as_q(q, "frames")
        batch = q.shape[:-1]
        chain, T = self._all_transforms(q.reshape(-1, self.dof), full=True)
        idx = [int(i) for i in chain.get_frame_indices(*names)] if names else []
        return {n: T[i].reshape(*batch, 4, 4) for n, i in zip(names, idx)}

    def jacobian(self, q) -> torch.Tensor:
        """Geometric Jacobian of ``ee_link``: ``q (..., dof) -> J (..., 6, dof)``.

        Rows 0-2: linear velocity of the ee_link origin, rows 3-5: angular velocity, both in the base
        frame: ``[v; w] = J dq/dt``. A revolute joint's column is ``[z x (p_ee - p); z]``, a prismatic
        one's ``[z; 0]`` (``z`` the joint axis, ``p`` a point on it, in the base frame).
        """
        q = self._as_q(q, "jacobian")
        batch = q.shape[:-1]
        th = q.reshape(-1, self.dof)
        serial, T = self._all_transforms(th, full=False)
        J = serial.jacobian_tensor(th, all_transforms=T)
        return J.reshape(*batch, 6, self.dof)

    def fk_and_jacobian(self, q) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`fk` and :meth:`jacobian` from one pass over the chain: ``q (..., dof) -> ((..., 4, 4),
        (..., 6, dof))``. The Jacobian needs every link's transform, which is the cost of FK; iterative IK
        that wants both at each new point pays it once instead of twice."""
        q = self._as_q(q, "fk_and_jacobian")
        batch = q.shape[:-1]
        th = q.reshape(-1, self.dof)
        serial, T = self._all_transforms(th, full=False)
        J = serial.jacobian_tensor(th, all_transforms=T)
        return T[self._chains.ee_index].reshape(*batch, 4, 4), J.reshape(*batch, 6, self.dof)

    def pose(self, q, quat_order: str = "xyzw") -> Tuple[torch.Tensor, torch.Tensor]:
        """End-effector position ``(..., 3)`` (m) and unit quaternion ``(..., 4)`` in ``quat_order``
        (``"xyzw"`` or ``"wxyz"``), canonical sign ``w >= 0``."""
        import roma

        from ..rotations import canonical_quat, check_quat_order, convert_quat_order

        check_quat_order(quat_order)
        T = self.fk(q)
        quat = canonical_quat(roma.rotmat_to_unitquat(T[..., :3, :3]), "xyzw")
        return T[..., :3, 3], convert_quat_order(quat, "xyzw", quat_order)
