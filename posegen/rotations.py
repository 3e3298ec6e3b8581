"""Rotations and angles for planners: quaternion orders, conversions, SE(3) poses, rotation distances.

Conventions
-----------
* Quaternions are ``(..., 4)`` tensors in the order named by an explicit ``order`` argument, one of
  ``"xyzw"`` (scalar last: roma, SciPy, ROS, and :class:`posegen.manifolds.SO3`) or ``"wxyz"`` (scalar
  first: MuJoCo, Eigen's constructor, Isaac). Anything else raises :class:`ValueError`.
* ``q`` and ``-q`` are the same rotation. Functions that return a quaternion from a representation without
  a sign (matrix, Euler angles, SE(3)) return the canonical one, see :func:`canonical_quat`.
* Quaternion inputs of conversions are normalised first (as SciPy does), so slightly non-unit quaternions
  from files are fine; the algebra (:func:`quat_multiply`, :func:`quat_conjugate`) is left unnormalised.
* Rotation matrices are ``(..., 3, 3)`` and act on column vectors, ``v' = R v``; rotation vectors are
  ``(..., 3)``, axis times angle in radians; SE(3) poses are ``(..., 4, 4)`` homogeneous matrices.
* Euler conventions follow roma and SciPy: lowercase axes (``"xyz"``) are extrinsic (fixed frame),
  uppercase (``"ZYX"``) intrinsic (moving frame); ``degrees=True`` switches angles to degrees.
* Any leading batch shape works; inputs may be array-likes (converted with :func:`torch.as_tensor`,
  integers to the default float dtype).

The conversions use roma underneath; values and gradients are finite at the zero rotation and for ``q``
vs ``-q``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import roma
import torch

from .manifolds import wrap_angle
from .manifolds.base import Shape, _safe_norm, as_shape

QUAT_ORDERS = ("xyzw", "wxyz")

__all__ = [
    "QUAT_ORDERS", "wrap_angle", "angle_diff",
    "check_quat_order", "convert_quat_order", "xyzw_to_wxyz", "wxyz_to_xyzw", "canonical_quat",
    "quat_to_rotmat", "rotmat_to_quat", "rotvec_to_quat", "quat_to_rotvec", "rotvec_to_rotmat",
    "rotmat_to_rotvec", "euler_to_quat", "quat_to_euler", "euler_to_rotmat", "rotmat_to_euler",
    "euler_to_rotvec", "rotvec_to_euler",
    "se3_from_pos_quat", "pos_quat_from_se3", "se3_inverse", "se3_compose", "check_rigid",
    "rotation_angle", "quat_multiply", "quat_conjugate", "quat_inverse", "quat_apply", "random_quat",
]


# ---------------------------------------------------------------------- input checks
def _tensor(x, name: str, fn: str, tail: Tuple[int, ...]) -> torch.Tensor:
    """``x`` as a floating-point tensor whose trailing dimensions are ``tail``, else ValueError."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    k = len(tail)
    if x.dim() < k or tuple(x.shape[x.dim() - k:]) != tail:
        want = ", ".join(["..."] + [str(s) for s in tail])
        raise ValueError(f"{fn}: expected {name} of shape ({want}), got {tuple(x.shape)}")
    return x


def _quat(q, fn: str, name: str = "q") -> torch.Tensor:
    return _tensor(q, name, fn, (4,))


def _unit(q: torch.Tensor) -> torch.Tensor:
    """``q / |q|``; the norm is clamped so a zero quaternion gives zeros, not NaN."""
    return q / _safe_norm(q, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny ** 0.5)


def check_quat_order(order) -> str:
    """Return ``order`` if it is one of :data:`QUAT_ORDERS` (``"xyzw"``, ``"wxyz"``), else raise ValueError.

    Matching is exact: ``"XYZW"`` or ``"xyz"`` are refused rather than guessed.
    """
    if isinstance(order, str) and order in QUAT_ORDERS:
        return order
    raise ValueError(f"quaternion order must be one of {QUAT_ORDERS} ('xyzw': scalar last, as roma and "
                     f"SciPy; 'wxyz': scalar first), got {order!r}")


def _to_xyzw(q: torch.Tensor, order: str) -> torch.Tensor:
    return q if check_quat_order(order) == "xyzw" else roma.quat_wxyz_to_xyzw(q)


def _from_xyzw(q: torch.Tensor, order: str) -> torch.Tensor:
    return q if check_quat_order(order) == "xyzw" else roma.quat_xyzw_to_wxyz(q)


_AXES_HELP = ("a string of axes from 'xyz' (extrinsic, fixed frame) or 'XYZ' (intrinsic, moving frame), "
              "not mixed, no axis twice in a row, e.g. 'xyz', 'ZYX', 'zxz'")


def _check_convention(convention, fn: str, lengths=(3,)) -> str:
    ok = (isinstance(convention, str) and len(convention) in lengths
          and (set(convention) <= set("xyz") or set(convention) <= set("XYZ"))
          and all(a != b for a, b in zip(convention, convention[1:])))
    if not ok:
        n = " or ".join(str(k) for k in lengths)
        raise ValueError(f"{fn}: Euler convention must be {n} axes, {_AXES_HELP}; got {convention!r}")
    return convention


# ---------------------------------------------------------------------- angles
def angle_diff(a, b) -> torch.Tensor:
    """Wrapped difference ``a - b`` of angles in radians, in ``[-pi, pi)``, so ``b + angle_diff(a, b)``
    is ``a`` modulo 2 pi. ``a, b`` broadcast; the gradient is ``(1, -1)`` everywhere."""
    a = a if isinstance(a, torch.Tensor) else torch.as_tensor(a, dtype=torch.get_default_dtype())
    return wrap_angle(a - b)


# ---------------------------------------------------------------------- quaternion orders and signs
def convert_quat_order(q, src: str, dst: str) -> torch.Tensor:
    """Reorder quaternions ``q (..., 4)`` from order ``src`` to order ``dst`` (each ``"xyzw"`` or
    ``"wxyz"``). The identity when ``src == dst``; ``convert_quat_order(., dst, src)`` undoes it."""
    q = _quat(q, "convert_quat_order")
    return _from_xyzw(_to_xyzw(q, src), dst)


def xyzw_to_wxyz(q) -> torch.Tensor:
    """``q (..., 4, XYZW) -> (..., 4, WXYZ)``."""
    return convert_quat_order(q, "xyzw", "wxyz")


def wxyz_to_xyzw(q) -> torch.Tensor:
    """``q (..., 4, WXYZ) -> (..., 4, XYZW)``."""
    return convert_quat_order(q, "wxyz", "xyzw")


def _canonical_xyzw(q: torch.Tensor) -> torch.Tensor:
    # Sign of w; where w == 0 exactly, the sign of the first nonzero of x, y, z (SciPy's rule).
    s = torch.zeros_like(q[..., 3])
    for i in (3, 0, 1, 2):
        s = torch.where(s == 0, torch.sign(q[..., i]), s)
    return torch.where((s < 0).unsqueeze(-1), -q, q)


def canonical_quat(q, order: str = "xyzw") -> torch.Tensor:
    """The representative of ``{q, -q}`` with ``w >= 0``: ``q (..., 4) -> (..., 4)`` in ``order``.

    Ties at ``w == 0`` (exactly; half-turns) are broken like SciPy's ``as_quat(canonical=True)``: the first
    nonzero of ``x, y, z`` is made positive. Only the sign changes (no normalisation), so the result is
    the same rotation, ``canonical_quat`` is idempotent, and its gradient is ``+-1`` times the identity.
    """
    q = _quat(q, "canonical_quat")
    return _from_xyzw(_canonical_xyzw(_to_xyzw(q, order)), order)


# ---------------------------------------------------------------------- conversions
def quat_to_rotmat(q, order: str = "xyzw") -> torch.Tensor:
    """Rotation matrices of quaternions: ``q (..., 4, order) -> R (..., 3, 3)``; ``q`` is normalised first."""
    q = _quat(q, "quat_to_rotmat")
    return roma.unitquat_to_rotmat(_unit(_to_xyzw(q, order)))


def rotmat_to_quat(R, order: str = "xyzw") -> torch.Tensor:
    """Canonical unit quaternions of rotation matrices: ``R (..., 3, 3) -> q (..., 4, order)``, ``w >= 0``.

    Markley's method (roma): a slightly non-orthonormal ``R`` still gives a unit quaternion.
    """
    R = _tensor(R, "R", "rotmat_to_quat", (3, 3))
    return _from_xyzw(_canonical_xyzw(roma.rotmat_to_unitquat(R)), order)


def rotvec_to_quat(rotvec, order: str = "xyzw") -> torch.Tensor:
    """Unit quaternions of rotation vectors: ``rotvec (..., 3) -> q (..., 4, order)``.

    ``q = (sin(|r|/2) r/|r|, cos(|r|/2))`` with a Taylor branch at ``r = 0`` (finite values and gradients
    there). No sign flip is applied, so the map is smooth everywhere; ``w >= 0`` whenever ``|r| <= pi``.
    """
    rotvec = _tensor(rotvec, "rotvec", "rotvec_to_quat", (3,))
    return _from_xyzw(roma.rotvec_to_unitquat(rotvec), order)


def quat_to_rotvec(q, order: str = "xyzw") -> torch.Tensor:
    """Shortest rotation vectors (``|r| <= pi``) of quaternions: ``q (..., 4, order) -> (..., 3)``.

    ``q`` and ``-q`` give the same vector; ``q`` is normalised first.
    """
    q = _quat(q, "quat_to_rotvec")
    return roma.unitquat_to_rotvec(_unit(_to_xyzw(q, order)), shortest_arc=True)


def rotvec_to_rotmat(rotvec) -> torch.Tensor:
    """Rotation matrices of rotation vectors: ``rotvec (..., 3) -> R (..., 3, 3)`` (exact at ``r = 0``)."""
    rotvec = _tensor(rotvec, "rotvec", "rotvec_to_rotmat", (3,))
    return roma.unitquat_to_rotmat(roma.rotvec_to_unitquat(rotvec))


def rotmat_to_rotvec(R) -> torch.Tensor:
    """Shortest rotation vectors (``|r| <= pi``) of rotation matrices: ``R (..., 3, 3) -> (..., 3)``."""
    R = _tensor(R, "R", "rotmat_to_rotvec", (3, 3))
    return roma.unitquat_to_rotvec(roma.rotmat_to_unitquat(R), shortest_arc=True)


def _euler_xyzw(angles, convention: str, degrees: bool, fn: str) -> torch.Tensor:
    if isinstance(angles, str):
        raise TypeError(f"{fn}: angles come first and the convention second, e.g. {fn}(angles, 'xyz'); "
                        f"got the string {angles!r} as angles")
    convention = _check_convention(convention, fn, lengths=(1, 2, 3))
    angles = _tensor(angles, "angles", fn, (len(convention),))
    return roma.euler_to_unitquat(convention, angles, degrees=degrees)


def _xyzw_euler(q: torch.Tensor, convention: str, degrees: bool, fn: str) -> torch.Tensor:
    convention = _check_convention(convention, fn)
    return roma.unitquat_to_euler(convention, q, degrees=degrees)


def euler_to_quat(angles, convention: str, degrees: bool = False, order: str = "xyzw") -> torch.Tensor:
    """Canonical unit quaternions (``w >= 0``) of Euler angles: ``angles (..., D) -> q (..., 4, order)``.

    ``convention`` has ``D`` (1 to 3) axes: lowercase extrinsic (``"xyz"``), uppercase intrinsic
    (``"ZYX"``), as in SciPy's ``Rotation.from_euler``.
    """
    q = _euler_xyzw(angles, convention, degrees, "euler_to_quat")
    return _from_xyzw(_canonical_xyzw(q), order)


def quat_to_euler(q, convention: str, degrees: bool = False, order: str = "xyzw") -> torch.Tensor:
    """Euler angles of quaternions: ``q (..., 4, order) -> angles (..., 3)`` in the 3-axis ``convention``.

    Ranges as SciPy's ``as_euler``: first and last angle in ``[-pi, pi]``; the middle one in
    ``[-pi/2, pi/2]`` (Tait-Bryan, e.g. ``"xyz"``) or ``[0, pi]`` (proper Euler, e.g. ``"zxz"``). At gimbal
    lock the third angle is set to 0. ``q`` is normalised first.
    """
    q = _quat(q, "quat_to_euler")
    return _xyzw_euler(_unit(_to_xyzw(q, order)), convention, degrees, "quat_to_euler")


def euler_to_rotmat(angles, convention: str, degrees: bool = False) -> torch.Tensor:
    """Rotation matrices of Euler angles: ``angles (..., D) -> R (..., 3, 3)``; see :func:`euler_to_quat`."""
    return roma.unitquat_to_rotmat(_euler_xyzw(angles, convention, degrees, "euler_to_rotmat"))


def rotmat_to_euler(R, convention: str, degrees: bool = False) -> torch.Tensor:
    """Euler angles of rotation matrices: ``R (..., 3, 3) -> angles (..., 3)``; see :func:`quat_to_euler`."""
    R = _tensor(R, "R", "rotmat_to_euler", (3, 3))
    return _xyzw_euler(roma.rotmat_to_unitquat(R), convention, degrees, "rotmat_to_euler")


def euler_to_rotvec(angles, convention: str, degrees: bool = False) -> torch.Tensor:
    """Shortest rotation vectors of Euler angles: ``angles (..., D) -> (..., 3)``; see
    :func:`euler_to_quat`."""
    q = _euler_xyzw(angles, convention, degrees, "euler_to_rotvec")
    return roma.unitquat_to_rotvec(q, shortest_arc=True)


def rotvec_to_euler(rotvec, convention: str, degrees: bool = False) -> torch.Tensor:
    """Euler angles of rotation vectors: ``rotvec (..., 3) -> angles (..., 3)``; see :func:`quat_to_euler`."""
    rotvec = _tensor(rotvec, "rotvec", "rotvec_to_euler", (3,))
    return _xyzw_euler(roma.rotvec_to_unitquat(rotvec), convention, degrees, "rotvec_to_euler")


# ---------------------------------------------------------------------- SE(3)
def _se3(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat([R.expand(*batch, 3, 3), t.expand(*batch, 3).unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def se3_from_pos_quat(pos, quat, order: str) -> torch.Tensor:
    """Homogeneous poses from positions and quaternions: ``pos (..., 3)``, ``quat (..., 4, order)`` ->
    ``T (..., 4, 4)`` with ``T[..., :3, :3] = R(quat)`` and ``T[..., :3, 3] = pos``; batch shapes broadcast.

    ``order`` has no default: say which order the data is in. ``quat`` is normalised first.
    """
    pos = _tensor(pos, "pos", "se3_from_pos_quat", (3,))
    quat = _quat(quat, "se3_from_pos_quat", "quat")
    return _se3(quat_to_rotmat(quat, order), pos)


def pos_quat_from_se3(T, order: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Positions and canonical unit quaternions of poses: ``T (..., 4, 4)`` -> ``(pos (..., 3),
    quat (..., 4, order))`` with ``w >= 0``. The bottom row of ``T`` is not read."""
    T = _tensor(T, "T", "pos_quat_from_se3", (4, 4))
    return T[..., :3, 3], rotmat_to_quat(T[..., :3, :3], order)


def se3_inverse(T) -> torch.Tensor:
    """Inverse of rigid poses, ``T (..., 4, 4) -> (..., 4, 4)``: ``[R^T, -R^T t; 0, 1]`` (no matrix solve)."""
    T = _tensor(T, "T", "se3_inverse", (4, 4))
    Rt = T[..., :3, :3].transpose(-1, -2)
    return _se3(Rt, -(Rt @ T[..., :3, 3:4]).squeeze(-1))


def se3_compose(T1, T2) -> torch.Tensor:
    """Composition ``T1 @ T2`` of poses ``(..., 4, 4)`` (apply ``T2`` first); batch shapes broadcast."""
    T1 = _tensor(T1, "T1", "se3_compose", (4, 4))
    T2 = _tensor(T2, "T2", "se3_compose", (4, 4))
    return T1 @ T2


# ---------------------------------------------------------------------- distances and algebra
def rotation_angle(q1, q2, order: str = "xyzw") -> torch.Tensor:
    """Geodesic angle in radians, in ``[0, pi]``, of the rotation taking ``q1`` to ``q2``: ``(...)``.

    ``q1, q2 (..., 4, order)`` broadcast and are normalised first. With ``s`` the sign of ``<q1, q2>``
    (``+1`` at 0), the angle is ``4 atan2(|q1 - s q2|, |q1 + s q2|)``: twice the angle between the
    quaternions on S^3 (which is what :meth:`posegen.manifolds.SO3.dist` returns), accurate near 0 and
    pi (unlike ``2 acos|<q1, q2>|``), 0 for ``q`` vs ``-q``, with finite gradients there (0 at ``q1 = +-q2``).
    The formula does not depend on the order, but ``order`` is still checked.
    """
    check_quat_order(order)
    q1 = _unit(_quat(q1, "rotation_angle", "q1"))
    q2 = _unit(_quat(q2, "rotation_angle", "q2"))
    s = torch.where((q1 * q2).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(q2.dtype)
    q2 = s * q2
    return 4 * torch.atan2(_safe_norm(q1 - q2), _safe_norm(q1 + q2))


def quat_multiply(p, q, order: str = "xyzw") -> torch.Tensor:
    """Hamilton product ``p q`` of quaternions ``(..., 4, order)`` (batch shapes broadcast).

    As rotations, ``p q`` applies ``q`` first: ``R(p q) = R(p) R(q)``. Not normalised.
    """
    p = _quat(p, "quat_multiply", "p")
    q = _quat(q, "quat_multiply")
    return _from_xyzw(roma.quat_product(_to_xyzw(p, order), _to_xyzw(q, order)), order)


def quat_conjugate(q, order: str = "xyzw") -> torch.Tensor:
    """Conjugate ``(-x, -y, -z, w)`` of ``q (..., 4, order)``; the inverse rotation for unit ``q``."""
    q = _quat(q, "quat_conjugate")
    return _from_xyzw(roma.quat_conjugation(_to_xyzw(q, order)), order)


def quat_inverse(q, order: str = "xyzw") -> torch.Tensor:
    """Multiplicative inverse ``conj(q) / |q|^2`` of ``q (..., 4, order)`` (undefined for ``q = 0``)."""
    q = _quat(q, "quat_inverse")
    return _from_xyzw(roma.quat_inverse(_to_xyzw(q, order)), order)


def quat_apply(q, v, order: str = "xyzw") -> torch.Tensor:
    """Rotate vectors: ``q (..., 4, order)``, ``v (..., 3)`` -> ``R(q) v (..., 3)``; batch shapes broadcast.

    Computed as ``q v q^-1``, so a non-unit ``q`` rotates by ``q / |q|`` without scaling.
    """
    q = _quat(q, "quat_apply")
    v = _tensor(v, "v", "quat_apply", (3,))
    return roma.quat_action(_to_xyzw(q, order), v, is_normalized=False)


def random_quat(n: Shape, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32,
                device=None, order: str = "xyzw") -> torch.Tensor:
    """Uniform random rotations as unit quaternions ``(*n, 4)`` in ``order`` (Shoemake's method via roma).

    Uniform on S^3, hence on SO(3); signs are not canonicalised (use :func:`canonical_quat`). ``n`` is an
    int or a shape; the same ``generator`` state gives the same rotations in either order.
    """
    check_quat_order(order)
    q = roma.random_unitquat(as_shape(n), dtype=dtype, device=device, generator=generator)
    return _from_xyzw(q, order)


def check_rigid(T, name: str = "transforms", *, atol: float = 1e-4, single: bool = False) -> torch.Tensor:
    """``T`` as a float64 ``(N, 4, 4)`` tensor of rigid transforms (SE(3) poses), else one ValueError naming ``name``.

    Refused: another shape (``single=True`` also takes one ``(4, 4)``, returned as ``(1, 4, 4)``; N = 0 is
    allowed), NaN or inf, a last row other than ``[0, 0, 0, 1]``, a rotation block that is not orthonormal with
    determinant +1 (each to ``atol``). The error names the number of bad transforms and the errors of the first.
    Array-likes and tensors of any float dtype are taken (grasp files, model samples, numpy arrays).
    """
    try:
        T = torch.as_tensor(T.detach().cpu() if isinstance(T, torch.Tensor) else T, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be an (N, 4, 4) array of numbers, got {type(T).__name__}") from None
    if single and T.shape == (4, 4):
        T = T[None]
    if T.dim() != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"{name} must have shape (N, 4, 4), got {tuple(T.shape)}")
    finite = torch.isfinite(T).flatten(1).all(1)
    if not bool(finite.all()):
        raise ValueError(f"{name} must be finite; transform {int((~finite).nonzero()[0])} holds NaN or inf")
    if T.shape[0] == 0:
        return T
    R = T[:, :3, :3]
    row_err = (T[:, 3] - T.new_tensor([0.0, 0.0, 0.0, 1.0])).abs().amax(-1)
    orth_err = (R @ R.transpose(-1, -2) - torch.eye(3, dtype=T.dtype)).abs().amax((-1, -2))
    det = torch.linalg.det(R)
    bad = ((row_err > atol) | (orth_err > atol) | (det <= 0)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{name}: {len(bad)} of {T.shape[0]} are not rigid transforms (last row [0, 0, 0, 1], "
                         f"rotation orthonormal with det +1, to {atol}); first: transform {i}, last-row error "
                         f"{float(row_err[i]):.2e}, orthonormality error {float(orth_err[i]):.2e}, det "
                         f"{float(det[i]):.4f}")
    return T
