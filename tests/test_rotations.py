"""posegen.rotations against SciPy's Rotation, in float32 and float64, both quaternion orders."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from posegen import rotations as rot

DTYPES = [torch.float32, torch.float64]
ORDERS = ["xyzw", "wxyz"]
# Tait-Bryan and proper Euler, extrinsic (lowercase) and intrinsic (uppercase).
CONVENTIONS = ["xyz", "ZYX", "XYZ", "zyx", "zxz", "YXY", "xzy"]
N = 256


def atol(dtype):
    """Honest absolute tolerances for O(1) quantities after a few roma operations."""
    return 2e-6 if dtype == torch.float32 else 1e-12


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def sp(q: torch.Tensor, order: str) -> Rotation:
    """SciPy rotations of quaternions in ``order`` (SciPy computes in float64)."""
    return Rotation.from_quat(q.double().numpy(), scalar_first=(order == "wxyz"))


def sp_quat(r: Rotation, order: str) -> np.ndarray:
    return r.as_quat(canonical=True, scalar_first=(order == "wxyz"))


def close(actual: torch.Tensor, expected, tol: float):
    expected = torch.as_tensor(np.asarray(expected), dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, atol=tol, rtol=0)


def align(q, ref):
    """``q`` or ``-q``, whichever is nearer ``ref`` (same rotation), for comparisons up to sign."""
    return torch.where(((q * ref).sum(-1, keepdim=True) < 0), -q, q)


def ordered(q_xyzw: torch.Tensor, order: str) -> torch.Tensor:
    return q_xyzw if order == "xyzw" else q_xyzw[..., [3, 0, 1, 2]]


# ---------------------------------------------------------------------- orders
def test_order_conversion_values_and_involution():
    q = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rot.xyzw_to_wxyz(q).tolist() == [4.0, 1.0, 2.0, 3.0]
    assert rot.wxyz_to_xyzw(q).tolist() == [2.0, 3.0, 4.0, 1.0]
    x = torch.randn(3, 5, 4, generator=gen())
    torch.testing.assert_close(rot.wxyz_to_xyzw(rot.xyzw_to_wxyz(x)), x, atol=0, rtol=0)
    torch.testing.assert_close(rot.xyzw_to_wxyz(rot.wxyz_to_xyzw(x)), x, atol=0, rtol=0)
    for src in ORDERS:
        assert torch.equal(rot.convert_quat_order(x, src, src), x)
        for dst in ORDERS:
            assert torch.equal(rot.convert_quat_order(rot.convert_quat_order(x, src, dst), dst, src), x)


@pytest.mark.parametrize("bad", ["XYZW", "wxzy", "xyz", "", "scalar_first", None, 0])
def test_bad_order_raises_listing_accepted(bad):
    q = torch.tensor([0.0, 0.0, 0.0, 1.0])
    calls = [
        lambda: rot.check_quat_order(bad),
        lambda: rot.convert_quat_order(q, bad, "xyzw"),
        lambda: rot.convert_quat_order(q, "xyzw", bad),
        lambda: rot.canonical_quat(q, bad),
        lambda: rot.quat_to_rotmat(q, order=bad),
        lambda: rot.rotmat_to_quat(torch.eye(3), order=bad),
        lambda: rot.rotvec_to_quat(torch.zeros(3), order=bad),
        lambda: rot.quat_to_rotvec(q, order=bad),
        lambda: rot.euler_to_quat(torch.zeros(3), "xyz", order=bad),
        lambda: rot.quat_to_euler(q, "xyz", order=bad),
        lambda: rot.se3_from_pos_quat(torch.zeros(3), q, bad),
        lambda: rot.pos_quat_from_se3(torch.eye(4), bad),
        lambda: rot.rotation_angle(q, q, order=bad),
        lambda: rot.quat_multiply(q, q, order=bad),
        lambda: rot.quat_conjugate(q, order=bad),
        lambda: rot.quat_inverse(q, order=bad),
        lambda: rot.quat_apply(q, torch.ones(3), order=bad),
        lambda: rot.random_quat(2, order=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"'xyzw', 'wxyz'.*got"):
            call()


def test_check_quat_order_returns_order():
    assert [rot.check_quat_order(o) for o in ORDERS] == ORDERS


def test_shape_and_convention_errors():
    with pytest.raises(ValueError, match=r"quat_to_rotmat: expected q of shape \(\.\.\., 4\), got \(5, 3\)"):
        rot.quat_to_rotmat(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"expected R of shape \(\.\.\., 3, 3\)"):
        rot.rotmat_to_quat(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"expected angles of shape \(\.\.\., 3\)"):
        rot.euler_to_quat(torch.zeros(2), "xyz")
    for bad in ["xyZ", "xxy", "abc", "XYZX", 3]:
        with pytest.raises(ValueError, match="Euler convention must be .*'xyz'.*'XYZ'"):
            rot.quat_to_euler(torch.tensor([0.0, 0.0, 0.0, 1.0]), bad)
    with pytest.raises(TypeError, match="angles come first"):
        rot.euler_to_quat("xyz", torch.zeros(3))


# ---------------------------------------------------------------------- canonical
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_canonical_quat(order, dtype):
    q = rot.random_quat((8, 32), generator=gen(1), dtype=dtype, order=order)
    c = rot.canonical_quat(q, order)
    w = c[..., 3] if order == "xyzw" else c[..., 0]
    assert (w >= 0).all()
    assert torch.equal(rot.canonical_quat(c, order), c)  # idempotent
    assert torch.equal(rot.canonical_quat(-q, order), c)  # one representative per rotation
    assert ((c == q).all(-1) | (c == -q).all(-1)).all()  # only the sign changes
    close(rot.rotation_angle(q, c, order), torch.zeros(8, 32), atol(dtype))
    close(c, sp_quat(sp(q, order), order), atol(dtype))


@pytest.mark.parametrize("order", ORDERS)
def test_canonical_quat_ties_at_w_zero_match_scipy(order):
    xyzw = torch.tensor([[-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, 0], [0, -0.6, 0.8, 0],
                         [0, 0.6, -0.8, 0], [-0.6, 0, 0.8, 0], [0, 0, 0, -1.0], [0, 0, 0, 0]],
                        dtype=torch.float64)
    q = ordered(xyzw, order)
    c = rot.canonical_quat(q, order)
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0.6, -0.8, 0],
                             [0, 0.6, -0.8, 0], [0.6, 0, -0.8, 0], [0, 0, 0, 1.0], [0, 0, 0, 0]],
                            dtype=torch.float64)
    assert torch.equal(c, ordered(expected, order))
    close(c[:-1], sp_quat(sp(q[:-1], order), order), 0.0)
    assert torch.equal(rot.canonical_quat(c, order), c)


# ---------------------------------------------------------------------- conversions vs SciPy
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_quat_rotmat_vs_scipy(order, dtype):
    q = rot.random_quat((4, N // 4), generator=gen(2), dtype=dtype, order=order)
    r = sp(q.reshape(-1, 4), order)
    R = rot.quat_to_rotmat(q, order)
    assert R.shape == (4, N // 4, 3, 3) and R.dtype == dtype
    close(R.reshape(-1, 3, 3), r.as_matrix(), atol(dtype))
    q_back = rot.rotmat_to_quat(R, order)
    close(q_back.reshape(-1, 4), sp_quat(r, order), atol(dtype))
    close(q_back, rot.canonical_quat(q, order), atol(dtype))  # round trip
    # non-unit input quaternions are normalised first, like SciPy
    close(rot.quat_to_rotmat(3.0 * q, order), R, atol(dtype))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rotvec_vs_scipy(order, dtype):
    rv = torch.randn(N, 3, generator=gen(3), dtype=dtype)
    rv = rv / rv.norm(dim=-1, keepdim=True) * (math.pi * torch.rand(N, 1, generator=gen(4), dtype=dtype))
    r = Rotation.from_rotvec(rv.double().numpy())
    q = rot.rotvec_to_quat(rv, order)
    close(q, r.as_quat(scalar_first=(order == "wxyz")), atol(dtype))  # |r| < pi: w > 0, no sign freedom
    close(rot.quat_to_rotvec(q, order), rv, 10 * atol(dtype))
    close(rot.quat_to_rotvec(-q, order), rv, 10 * atol(dtype))  # q and -q give the same vector
    R = rot.rotvec_to_rotmat(rv)
    close(R, r.as_matrix(), atol(dtype))
    close(rot.rotmat_to_rotvec(R), rv, 10 * atol(dtype))
    # shortest arc: vectors longer than pi come back as the equivalent short one
    long = rv / rv.norm(dim=-1, keepdim=True) * 4.0
    back = rot.quat_to_rotvec(rot.rotvec_to_quat(long, order), order)
    close(back, Rotation.from_rotvec(long.double().numpy()).as_rotvec(), 10 * atol(dtype))
    assert (back.norm(dim=-1) <= math.pi + 1e-6).all()


def _away_from_gimbal_lock(angles: np.ndarray, convention: str, margin: float = 0.05) -> np.ndarray:
    mid = angles[:, 1]
    proper = convention[0].lower() == convention[2].lower()
    return np.abs(np.sin(mid) if proper else np.cos(mid)) > margin


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_euler_vs_scipy(convention, order, dtype):
    q = rot.random_quat(N, generator=gen(5), dtype=dtype, order=order)
    r = sp(q, order)
    expected = r.as_euler(convention)
    ok = _away_from_gimbal_lock(expected, convention)
    assert ok.sum() > N // 2
    angles = rot.quat_to_euler(q, convention, order=order)
    # angles on the +-pi seam may come out on either side: compare wrapped differences
    close(rot.angle_diff(angles, torch.as_tensor(expected, dtype=dtype))[ok], np.zeros((ok.sum(), 3)),
          5 * atol(dtype))
    R = rot.quat_to_rotmat(q, order)
    close(rot.angle_diff(rot.rotmat_to_euler(R, convention), torch.as_tensor(expected, dtype=dtype))[ok],
          np.zeros((ok.sum(), 3)), 5 * atol(dtype))
    # from Euler: every sample, including those near gimbal lock
    a = torch.as_tensor(expected, dtype=dtype)
    close(rot.euler_to_quat(a, convention, order=order), sp_quat(Rotation.from_euler(convention,
          expected), order), atol(dtype))
    close(rot.euler_to_rotmat(a, convention), Rotation.from_euler(convention, expected).as_matrix(),
          atol(dtype))
    # round trip through Euler angles is the same rotation even at gimbal lock
    close(rot.rotation_angle(rot.euler_to_quat(angles, convention, order=order), q, order),
          torch.zeros(N), 5 * atol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_euler_degrees_partial_axes_and_rotvec(dtype):
    deg = torch.tensor([[30.0, -45.0, 170.0], [0.0, 90.0, -10.0]], dtype=dtype)
    close(rot.euler_to_quat(deg, "ZYX", degrees=True), Rotation.from_euler("ZYX", deg.double().numpy(),
          degrees=True).as_quat(canonical=True), atol(dtype))
    r = Rotation.from_euler("ZYX", deg[:1].double().numpy(), degrees=True)
    close(rot.quat_to_euler(torch.as_tensor(r.as_quat(), dtype=dtype), "ZYX", degrees=True), deg[:1],
          1e3 * atol(dtype))
    # fewer than three axes
    two = torch.tensor([[0.3, -1.2]], dtype=dtype)
    close(rot.euler_to_rotmat(two, "xz"), Rotation.from_euler("xz", two.double().numpy()).as_matrix(),
          atol(dtype))
    # rotation vectors <-> Euler
    rv = torch.tensor([[0.1, -0.4, 0.9], [0.0, 0.0, 0.0]], dtype=dtype)
    e = rot.rotvec_to_euler(rv, "xyz")
    close(e, Rotation.from_rotvec(rv.double().numpy()).as_euler("xyz"), atol(dtype))
    close(rot.euler_to_rotvec(e, "xyz"), rv, 10 * atol(dtype))


# ---------------------------------------------------------------------- algebra
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_quat_algebra_vs_scipy(order, dtype):
    p = rot.random_quat(N, generator=gen(6), dtype=dtype, order=order)
    q = rot.random_quat(N, generator=gen(7), dtype=dtype, order=order)
    pq = rot.quat_multiply(p, q, order)
    close(rot.canonical_quat(pq, order), sp_quat(sp(p, order) * sp(q, order), order), atol(dtype))
    close(rot.quat_to_rotmat(pq, order), rot.quat_to_rotmat(p, order) @ rot.quat_to_rotmat(q, order),
          atol(dtype))
    inv = sp_quat(sp(q, order).inv(), order)
    close(rot.canonical_quat(rot.quat_conjugate(q, order), order), inv, atol(dtype))
    close(rot.canonical_quat(rot.quat_inverse(q, order), order), inv, atol(dtype))
    close(rot.quat_inverse(2.0 * q, order), 0.5 * rot.quat_conjugate(q, order), atol(dtype))
    identity = ordered(torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype), order)
    close(rot.quat_multiply(q, rot.quat_conjugate(q, order), order), identity.expand(N, 4), atol(dtype))
    v = torch.randn(N, 3, generator=gen(8), dtype=dtype)
    close(rot.quat_apply(q, v, order), sp(q, order).apply(v.double().numpy()), 5 * atol(dtype))
    close(rot.quat_apply(-2.0 * q, v, order), rot.quat_apply(q, v, order), 5 * atol(dtype))
    # broadcasting: one rotation, many vectors
    close(rot.quat_apply(q[0], v, order), sp(q[:1], order).apply(v.double().numpy()), 5 * atol(dtype))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_angle_vs_scipy(order, dtype):
    q1 = rot.random_quat(N, generator=gen(9), dtype=dtype, order=order)
    q2 = rot.random_quat(N, generator=gen(10), dtype=dtype, order=order)
    expected = (sp(q1, order).inv() * sp(q2, order)).magnitude()
    ang = rot.rotation_angle(q1, q2, order)
    close(ang, expected, 5 * atol(dtype))
    assert ((ang >= 0) & (ang <= math.pi)).all()
    close(rot.rotation_angle(q1, -q2, order), expected, 5 * atol(dtype))
    close(rot.rotation_angle(q2, q1, order), expected, 5 * atol(dtype))
    assert (rot.rotation_angle(q1, -q1, order) == 0).all()
    assert (rot.rotation_angle(q1, q1, order) == 0).all()
    # small and near-pi angles, where acos would lose half the digits
    axis = torch.nn.functional.normalize(torch.randn(N, 3, generator=gen(11), dtype=dtype), dim=-1)
    for theta in [1e-3, math.pi - 1e-3]:
        q3 = rot.quat_multiply(q1, rot.rotvec_to_quat(theta * axis, order), order)
        close(rot.rotation_angle(q1, q3, order), torch.full((N,), theta, dtype=dtype), 5 * atol(dtype))


def test_angle_diff_and_wrap():
    from posegen.manifolds import wrap_angle

    assert rot.wrap_angle is wrap_angle
    a = torch.tensor([3.1, -3.1, 0.5, 7.0], dtype=torch.float64)
    b = torch.tensor([-3.1, 3.1, 0.2, 0.0], dtype=torch.float64)
    d = rot.angle_diff(a, b)
    close(d, [6.2 - 2 * math.pi, 2 * math.pi - 6.2, 0.3, 7.0 - 2 * math.pi], 1e-12)
    assert ((d >= -math.pi) & (d < math.pi)).all()
    close(rot.wrap_angle(b + d - a), torch.zeros(4), 1e-12)
    close(rot.angle_diff(0.25, 0.0), torch.tensor(0.25), 1e-7)


# ---------------------------------------------------------------------- SE(3)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_se3(order, dtype):
    pos = torch.randn(5, 7, 3, generator=gen(12), dtype=dtype)
    q = rot.random_quat((5, 7), generator=gen(13), dtype=dtype, order=order)
    T = rot.se3_from_pos_quat(pos, q, order)
    assert T.shape == (5, 7, 4, 4) and T.dtype == dtype
    close(T[..., :3, :3].reshape(-1, 3, 3), sp(q.reshape(-1, 4), order).as_matrix(), atol(dtype))
    close(T[..., 3, :], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(5, 7, 4), 0.0)
    p2, q2 = rot.pos_quat_from_se3(T, order)
    close(p2, pos, 0.0)
    close(q2, rot.canonical_quat(q, order), atol(dtype))
    eye = torch.eye(4, dtype=dtype).expand(5, 7, 4, 4)
    Tinv = rot.se3_inverse(T)
    close(rot.se3_compose(Tinv, T), eye, 5 * atol(dtype))
    close(rot.se3_compose(T, Tinv), eye, 5 * atol(dtype))
    close(Tinv, torch.linalg.inv(T), 10 * atol(dtype))
    # composition acts on points as the two poses in turn; one pose broadcasts against many
    x = torch.randn(5, 7, 3, generator=gen(14), dtype=dtype)
    T12 = rot.se3_compose(T[0, 0], T)
    x_h = torch.cat([x, torch.ones_like(x[..., :1])], -1).unsqueeze(-1)
    close((T12 @ x_h)[..., :3, 0], rot.quat_apply(q[0, 0], rot.quat_apply(q, x, order) + pos, order)
          + pos[0, 0], 10 * atol(dtype))
    # one position, many rotations
    assert rot.se3_from_pos_quat(pos[0, 0], q, order).shape == (5, 7, 4, 4)


def test_se3_order_is_required():
    with pytest.raises(TypeError):
        rot.se3_from_pos_quat(torch.zeros(3), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    with pytest.raises(TypeError):
        rot.pos_quat_from_se3(torch.eye(4))


# ---------------------------------------------------------------------- random
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_quat(dtype):
    q = rot.random_quat((2, 3), generator=gen(15), dtype=dtype)
    assert q.shape == (2, 3, 4) and q.dtype == dtype
    close(q.norm(dim=-1), torch.ones(2, 3), atol(dtype))
    assert torch.equal(rot.random_quat(4, generator=gen(16), dtype=dtype),
                       rot.random_quat(4, generator=gen(16), dtype=dtype))
    assert torch.equal(rot.random_quat(4, generator=gen(16), dtype=dtype, order="wxyz"),
                       rot.xyzw_to_wxyz(rot.random_quat(4, generator=gen(16), dtype=dtype)))


def test_random_quat_is_uniform():
    # uniform on SO(3): the rotation angle has density (1 - cos t) / pi, mean pi/2 + 2/pi, and
    # rotated vectors are uniform on S^2 (mean 0)
    q = rot.random_quat(20000, generator=gen(17), dtype=torch.float64)
    ang = rot.rotation_angle(q, torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    assert abs(ang.mean().item() - (math.pi / 2 + 2 / math.pi)) < 0.02  # std of the mean ~0.005
    e = rot.quat_apply(q, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert e.mean(0).abs().max().item() < 0.025  # std of each mean ~0.004


# ---------------------------------------------------------------------- gradients and singular points
def test_gradcheck_rotvec_to_quat_at_zero_and_elsewhere():
    for order in ORDERS:
        for rv in [torch.zeros(3), torch.tensor([1e-9, -2e-9, 0.0]), torch.tensor([0.3, -1.1, 2.0])]:
            x = rv.double().requires_grad_()
            assert torch.autograd.gradcheck(lambda r: rot.rotvec_to_quat(r, order), (x,))
        x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(rot.rotvec_to_rotmat, (x,))
        q = ordered(torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), order).requires_grad_()
        assert torch.autograd.gradcheck(lambda q: rot.quat_to_rotvec(q, order), (q,))
        assert torch.autograd.gradcheck(lambda q: rot.quat_to_rotvec(-q, order), (q,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_finite_values_and_gradients_at_singular_points(dtype):
    rv = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    q = rot.rotvec_to_quat(rv)
    out = q.sum() + rot.rotvec_to_rotmat(rv).sum() + rot.quat_to_rotvec(q).sum()
    (g,) = torch.autograd.grad(out, rv)
    assert torch.isfinite(g).all()
    close(q.detach(), torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(4, 4), 0.0)

    q1 = rot.random_quat(6, generator=gen(18), dtype=dtype).requires_grad_()
    for q2 in [q1.detach().clone(), -q1.detach().clone(), q1.detach()[[1, 0, 3, 2, 5, 4]]]:
        q2.requires_grad_()
        ang = rot.rotation_angle(q1, q2)
        g1, g2 = torch.autograd.grad(ang.sum(), (q1, q2))
        assert torch.isfinite(ang).all() and torch.isfinite(g1).all() and torch.isfinite(g2).all()
    for fn in [rot.canonical_quat, rot.quat_to_rotmat, rot.quat_to_rotvec,
               lambda q: rot.quat_to_euler(q, "xyz")]:
        for sign in (1.0, -1.0):
            qq = (sign * q1.detach()).requires_grad_()
            (g,) = torch.autograd.grad(fn(qq).sum(), qq)
            assert torch.isfinite(g).all()


def test_rotation_angle_gradient_matches_finite_differences():
    q1 = rot.random_quat(3, generator=gen(19), dtype=torch.float64).requires_grad_()
    q2 = rot.random_quat(3, generator=gen(20), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(rot.rotation_angle, (q1, q2))


def test_array_like_inputs():
    R = rot.quat_to_rotmat(np.array([0.0, 0.0, 0.0, 1.0]))
    assert R.dtype == torch.float64
    torch.testing.assert_close(R, torch.eye(3, dtype=torch.float64))
    q = rot.rotvec_to_quat([0, 0, 0])
    assert q.dtype == torch.get_default_dtype() and q.tolist() == [0.0, 0.0, 0.0, 1.0]


def _rigid(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    T[:, :3, :3] = rot.quat_to_rotmat(rot.random_quat(n, generator=g, dtype=torch.float64))
    T[:, :3, 3] = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return T


def test_check_rigid_takes_rigid_transforms_of_any_float_type_and_refuses_the_rest():
    T = _rigid(5)
    assert torch.equal(rot.check_rigid(T.numpy()), T) and rot.check_rigid(T.float()).dtype == torch.float64
    assert rot.check_rigid(T[0], single=True).shape == (1, 4, 4) and rot.check_rigid(T[:0]).shape == (0, 4, 4)
    reflect = T.clone()
    reflect[2, :3, 0] *= -1                                  # orthonormal, det -1
    shear, row, nan = T.clone(), T.clone(), T.clone()
    shear[1, 0, 1] += 1e-3
    row[4, 3, 0] = 0.5
    nan[3, 1, 3] = float("nan")
    R = shear[1, :3, :3].numpy()
    orth = np.abs(R @ R.T - np.eye(3)).max()                 # numpy's figure for the message
    cases = [(T[0], r"must have shape \(N, 4, 4\), got \(4, 4\)"), (T[:, :3], r"shape \(N, 4, 4\), got \(5, 3, 4\)"),
             ([["a"]], "array of numbers"), (nan, "must be finite; transform 3 holds NaN"),
             (reflect, r"1 of 5 are not rigid .*first: transform 2, .*det -1\.0000"),
             (shear, f"first: transform 1, last-row error 0.00e\\+00, orthonormality error {orth:.2e}"),
             (row, "first: transform 4, last-row error 5.00e-01")]
    for bad, match in cases:
        with pytest.raises(ValueError, match="^grasps: |^grasps must"):
            rot.check_rigid(bad, "grasps")
        with pytest.raises(ValueError, match=match):
            rot.check_rigid(bad, "grasps")
    assert torch.equal(rot.check_rigid(shear, atol=2e-3), shear)   # within the tolerance asked for
