"""Robotics Toolbox's C++ Levenberg-Marquardt IK (``ETS.ik_LM``) on a posegen robot, for benchmarks/ik.py.

``pip install roboticstoolbox-python`` (benchmark-only; imported lazily). The robot's chain is rebuilt as an
rtb ``ETS`` from the same parsed description posegen uses (each joint's origin as a constant ``SE3``, then
the joint about or along its axis, its limits as ``qlim``), and checked against posegen's FK before use, so
both solve the same problem.
"""

from __future__ import annotations

import numpy as np
import torch

from posegen.robots.chain import origin_matrix

_AXES = {(1, 0, 0): "x", (0, 1, 0): "y", (0, 0, 1): "z"}


def _rtb():
    try:
        import roboticstoolbox
    except ImportError as e:
        raise ImportError("the ik_LM baseline needs Robotics Toolbox for Python: pip install roboticstoolbox-python "
                          f"({e})") from e
    return roboticstoolbox


def _joint_ets(rtb, j, lim):
    """ETs of one movable joint: a coordinate axis (or its negative) directly, any other axis as
    ``SE3(R) J_z SE3(R^T)`` with ``R`` taking z to the axis."""
    ET = rtb.ET
    a = np.asarray(j.axis, dtype=float)
    a = a / np.linalg.norm(a)
    kind = "t" if j.type == "prismatic" else "R"
    for sign in (1, -1):
        key = tuple(int(v) for v in np.round(sign * a, 12)) if np.allclose(np.abs(a).max(), 1) else None
        if key in _AXES:
            return [getattr(ET, f"{kind}{_AXES[key]}")(qlim=lim, flip=sign < 0)]
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(z, a), float(z @ a)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    R = np.eye(3) + K + K @ K / (1 + c)  # z -> a (c = -1 is the z case above)
    M = np.eye(4)
    M[:3, :3] = R
    return [ET.SE3(M), getattr(ET, f"{kind}z")(qlim=lim), ET.SE3(M.T)]


class RtbLM:
    """``ik_LM`` from random starts for ``robot`` (a :class:`posegen.robots.Robot` without mimic joints).

    Args:
        tol: rtb's residual bound on ``E = 0.5 e^T e`` (``e``: position error in m and rotation vector in rad);
            the default ``5e-7`` (``|e| < 1e-3``) makes every rtb success also exact at 1 mm / 0.01 rad.
        ilimit, slimit: iterations per search, searches (random restarts inside rtb) per solution.
    """

    def __init__(self, robot, tol: float = 5e-7, ilimit: int = 30, slimit: int = 100):
        rtb = _rtb()
        desc = robot.description
        path = desc.path_joints(robot.ee_link)
        if any(j.mimic for j in path):
            raise ValueError(f"{robot.name}: the rtb baseline does not model mimic joints")
        lims = dict(zip(robot.joint_names, robot.joint_limits.tolist()))
        ets = []
        for j in path:
            ets.append(rtb.ET.SE3(origin_matrix(j).numpy()))
            if j.movable:
                ets += _joint_ets(rtb, j, lims[j.name])
        self.ets = rtb.ETS(ets)
        self.robot, self.tol, self.ilimit, self.slimit = robot, tol, ilimit, slimit
        self.lim = robot.joint_limits.numpy()
        self._check()

    def _check(self, n: int = 20):
        q = self.robot.manifold.sample_base(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        T = self.robot.fk(q).numpy()
        worst = max(float(np.abs(self.ets.eval(row) - t).max()) for row, t in zip(q.numpy(), T))
        if worst > 1e-9:
            raise RuntimeError(f"{self.robot.name}: rtb's ETS and posegen's FK differ by {worst:.3g}")

    def solve(self, targets: torch.Tensor, per: int, seed: int) -> torch.Tensor:
        """``per`` solutions of each target pose ``(T, 7)`` (xyzw), each from a uniform random start inside the
        limits (rtb restarts from its own random draws when a search fails): joints ``(T, per, dof)``. rtb's
        success flag is not used; callers verify with posegen's FK."""
        import roma
        tg = targets.double()
        Tep = np.tile(np.eye(4), (tg.shape[0], 1, 1))
        Tep[:, :3, :3] = roma.unitquat_to_rotmat(tg[:, 3:]).numpy()
        Tep[:, :3, 3] = tg[:, :3].numpy()
        rng = np.random.default_rng(seed)
        np.random.seed(seed)  # rtb's own restarts draw from numpy's global generator
        q0 = self.lim[:, 0] + (self.lim[:, 1] - self.lim[:, 0]) * rng.random((tg.shape[0], per, self.lim.shape[0]))
        out = np.empty_like(q0)
        for t in range(tg.shape[0]):
            for i in range(per):
                out[t, i] = self.ets.ik_LM(Tep[t], q0=q0[t, i], ilimit=self.ilimit, slimit=self.slimit,
                                           tol=self.tol)[0]
        return torch.from_numpy(out)
