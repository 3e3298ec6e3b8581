"""posegen.robots: robots from URDF with kinematics through pytorch_kinematics.

Oracles are independent hand-written formulas: the Panda's manufacturer DH chain (posegen.data.panda), the
UR5e's published DH table (written out below), the iiwa14's link lengths, a two-joint URDF written here,
and finite differences of fk for every Jacobian. Tolerances are float64 ones: the URDF numbers are used in
float64 end to end, so the only gaps are the sources' own roundings (noted where they matter).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("pytorch_kinematics")

import roma  # noqa: E402

from posegen import robots  # noqa: E402
from posegen.data import panda as panda_dh  # noqa: E402

BUILTINS = ("iiwa14", "panda", "ur5e")
F64 = torch.float64


@pytest.fixture(scope="module")
def loaded():
    return {name: robots.load(name) for name in BUILTINS}


def random_q(robot, n, seed=0, dtype=F64, margin=0.0):
    """``(n, dof)`` uniform inside the joint limits (shrunk by ``margin`` rad/m at each end)."""
    g = torch.Generator().manual_seed(seed)
    lim = robot.joint_limits
    u = torch.rand(n, robot.dof, generator=g, dtype=F64)
    return (lim[:, 0] + margin + (lim[:, 1] - lim[:, 0] - 2 * margin) * u).to(dtype)


def pose_errors(T, T_ref):
    """Max position error (m) and max rotation angle between the frames (rad)."""
    dp = (T[..., :3, 3] - T_ref[..., :3, 3]).norm(dim=-1).max().item()
    R = T[..., :3, :3].transpose(-1, -2) @ T_ref[..., :3, :3]
    dr = roma.rotmat_to_rotvec(R).norm(dim=-1).max().item()
    return dp, dr


# ----------------------------------------------------------------------------------------- oracles
def test_panda_tcp_matches_dh_chain(loaded):
    robot = loaded["panda"]
    assert robot.ee_link == "panda_hand_tcp" and robot.base_link == "panda_link0"
    q = random_q(robot, 2000, seed=1)
    assert bool(panda_dh.within_limits(q).all())
    dp, dr = pose_errors(robot.fk(q), panda_dh.fk_matrices(q, frame="tcp"))
    assert dp <= 1e-9 and dr <= 1e-9, (dp, dr)  # float64 throughout: both chains agree to ~1e-15


def test_panda_every_frame_and_jacobian_match_dh_chain(loaded):
    robot = loaded["panda"]
    q = random_q(robot, 200, seed=2)
    frames = robot.frames(q)
    ref = panda_dh.all_link_frames(q)
    assert set(panda_dh.LINK_NAMES) <= set(frames)
    for i, name in enumerate(panda_dh.LINK_NAMES):
        dp, dr = pose_errors(frames[name], ref[..., i, :, :])
        assert dp <= 1e-9 and dr <= 1e-9, (name, dp, dr)
    J_ref, _ = panda_dh.jacobian(q, frame="tcp")
    assert torch.allclose(robot.jacobian(q), J_ref, atol=1e-9, rtol=0)
    assert torch.allclose(robot.with_ee_link("panda_link8").fk(q), panda_dh.fk_matrices(q, "flange"), atol=1e-9)


def ur5e_dh_fk(q):
    """UR5e tool flange by UR's published standard DH table: ``q (..., 6) -> (..., 4, 4)``.

    Standard DH: ``T_i = RotZ(q_i) TransZ(d_i) TransX(a_i) RotX(alpha_i)`` with d1 = 0.1625, a2 = -0.425,
    a3 = -0.3922, d4 = 0.1333, d5 = 0.0997, d6 = 0.0996, alpha = (pi/2, 0, 0, pi/2, -pi/2, 0).
    """
    d = (0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996)
    a = (0.0, -0.425, -0.3922, 0.0, 0.0, 0.0)
    alpha = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)
    T = torch.eye(4, dtype=q.dtype).expand(*q.shape[:-1], 4, 4)
    for i in range(6):
        ct, st = torch.cos(q[..., i]), torch.sin(q[..., i])
        ca, sa = math.cos(alpha[i]), math.sin(alpha[i])
        z, o = torch.zeros_like(ct), torch.ones_like(ct)
        A = torch.stack([
            torch.stack([ct, -st * ca, st * sa, a[i] * ct], -1),
            torch.stack([st, ct * ca, -ct * sa, a[i] * st], -1),
            torch.stack([z, z + sa, z + ca, z + d[i]], -1),
            torch.stack([z, z, z, o], -1)], -2)
        T = T @ A
    return T


def test_ur5e_tool0_matches_published_dh(loaded):
    """Frame offsets of the URDF (ur_macro.xacro): the DH base frame is ``base_link_inertia`` (= UR's
    controller ``base``), which is ``base_link`` turned by pi about z (base_link is REP-103: x forward);
    the DH flange frame 6 is ``tool0`` exactly (flange->tool0 undoes wrist_3->flange). So
    ``T_base_link_tool0 = RotZ(pi) @ DH(q)``. The YAML's rounded pi/2 (1.570796327) and its 2e-11 m
    calibration residues keep the gap near 1e-9, far inside 1e-6."""
    robot = loaded["ur5e"]
    assert robot.ee_link == "tool0" and robot.base_link == "base_link"
    q = random_q(robot, 2000, seed=3)
    rz_pi = torch.tensor([[-1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=F64)
    dp, dr = pose_errors(robot.fk(q), rz_pi @ ur5e_dh_fk(q))
    assert dp <= 1e-6 and dr <= 1e-6, (dp, dr)
    assert dp <= 1e-8 and dr <= 1e-8, (dp, dr)  # what the sources' roundings allow
    # base and base_link_inertia are the same frame
    fr = robot.frames(q[:5], ["base", "base_link_inertia"])
    assert torch.allclose(fr["base"], fr["base_link_inertia"], atol=1e-12)


def test_iiwa14_link_lengths(loaded):
    """iiwa14 R820: shoulder at 0.36 m, upper arm 0.42 m, forearm 0.40 m, flange 0.126 m beyond the wrist;
    straight up at q = 0, and the shoulder-wrist distance depends on q4 only (law of cosines)."""
    robot = loaded["iiwa14"]
    T0 = robot.fk(torch.zeros(7, dtype=F64))
    assert torch.allclose(T0[:3, 3], torch.tensor([0.0, 0.0, 0.36 + 0.42 + 0.40 + 0.126], dtype=F64), atol=1e-12)
    q = random_q(robot, 500, seed=4)
    fr = robot.frames(q, ["iiwa_link_2", "iiwa_link_6", "iiwa_link_ee_kuka"])
    assert torch.allclose(fr["iiwa_link_2"][..., :3, 3], torch.tensor([0, 0, 0.36], dtype=F64).expand(500, 3),
                          atol=1e-12)
    dist2 = (fr["iiwa_link_6"][..., :3, 3] - fr["iiwa_link_2"][..., :3, 3]).pow(2).sum(-1)
    expect = 0.42 ** 2 + 0.40 ** 2 + 2 * 0.42 * 0.40 * torch.cos(q[:, 3])
    assert torch.allclose(dist2, expect, atol=1e-12)
    # the KUKA flange frame and Drake's iiwa_link_ee share their origin
    assert torch.allclose(fr["iiwa_link_ee_kuka"][..., :3, 3], robot.fk(q)[..., :3, 3], atol=1e-12)


# ------------------------------------------------------------------------------ Jacobian, autograd
def fd_jacobian(robot, q, h=1e-6):
    """Central differences of fk: linear rows dp/dq, angular rows vee(dR/dq R^T)."""
    cols = []
    for i in range(robot.dof):
        e = torch.zeros(robot.dof, dtype=q.dtype)
        e[i] = h
        Tp, Tm = robot.fk(q + e), robot.fk(q - e)
        dp = (Tp[..., :3, 3] - Tm[..., :3, 3]) / (2 * h)
        W = (Tp[..., :3, :3] - Tm[..., :3, :3]) / (2 * h) @ robot.fk(q)[..., :3, :3].transpose(-1, -2)
        w = torch.stack([W[..., 2, 1], W[..., 0, 2], W[..., 1, 0]], -1)
        cols.append(torch.cat([dp, w], -1))
    return torch.stack(cols, -1)


@pytest.mark.parametrize("name", BUILTINS)
def test_fk_and_jacobian_in_one_pass_equal_the_two_calls(loaded, name):
    robot = loaded[name]
    q = robot.manifold.sample_base((4, 3), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    T, J = robot.fk_and_jacobian(q)
    assert T.shape == (4, 3, 4, 4) and J.shape == (4, 3, 6, robot.dof)
    torch.testing.assert_close(T, robot.fk(q), atol=0, rtol=0)
    torch.testing.assert_close(J, robot.jacobian(q), atol=0, rtol=0)


@pytest.mark.parametrize("name", BUILTINS)
def test_jacobian_matches_finite_differences_and_autograd(loaded, name):
    robot = loaded[name]
    q = random_q(robot, 16, seed=5, margin=1e-3)
    J = robot.jacobian(q)
    assert J.shape == (16, 6, robot.dof) and J.dtype == F64
    assert torch.allclose(J, fd_jacobian(robot, q), atol=1e-8, rtol=0)
    # linear rows = autograd of the position
    qs = q[:3].clone().requires_grad_(True)
    Jp = torch.autograd.functional.jacobian(lambda x: robot.fk(x)[..., :3, 3].sum(0), qs)  # (3, 3, dof)
    assert torch.allclose(Jp.permute(1, 0, 2), J[:3, :3, :], atol=1e-12)


@pytest.mark.parametrize("name", BUILTINS)
def test_float32_agrees_with_float64(loaded, name):
    robot = loaded[name]
    q = random_q(robot, 64, seed=6)
    T32, J32 = robot.fk(q.float()), robot.jacobian(q.float())
    assert T32.dtype == J32.dtype == torch.float32
    assert torch.allclose(T32.double(), robot.fk(q), atol=2e-5)
    assert torch.allclose(J32.double(), robot.jacobian(q), atol=2e-5)


def test_fk_gradients_first_and_second_order(loaded):
    robot = loaded["panda"]
    q = random_q(robot, 2, seed=7).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: robot.fk(x)[..., :3, :], (q,))
    assert torch.autograd.gradgradcheck(lambda x: robot.fk(x)[..., :3, 3], (q,))


@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_shapes_and_dtypes(loaded, shape, dtype):
    for robot in loaded.values():
        q = random_q(robot, max(1, math.prod(shape)), seed=8, dtype=dtype).reshape(*shape, robot.dof)
        T = robot.fk(q)
        assert T.shape == (*shape, 4, 4) and T.dtype == dtype
        assert robot.jacobian(q).shape == (*shape, 6, robot.dof)
        pos, quat = robot.pose(q)
        assert pos.shape == (*shape, 3) and quat.shape == (*shape, 4) and quat.dtype == dtype
        fr = robot.frames(q)
        assert set(fr) == set(robot.link_names) and fr[robot.ee_link].shape == (*shape, 4, 4)
        assert torch.equal(fr[robot.ee_link], T)
        assert robot.within_limits(q).shape == shape and bool(robot.within_limits(q).all())
        # the batch is only a view: rows equal unbatched calls
        flat = q.reshape(-1, robot.dof)
        assert torch.allclose(T.reshape(-1, 4, 4)[-1], robot.fk(flat[-1]), atol=1e-6)


def test_pose_quaternion_orders(loaded):
    robot = loaded["ur5e"]
    q = random_q(robot, 10, seed=9)
    pos, xyzw = robot.pose(q)
    _, wxyz = robot.pose(q, quat_order="wxyz")
    T = robot.fk(q)
    assert torch.equal(pos, T[..., :3, 3])
    assert torch.allclose(roma.unitquat_to_rotmat(xyzw), T[..., :3, :3], atol=1e-12)
    assert bool((xyzw[..., 3] >= 0).all())
    assert torch.equal(wxyz, xyzw[..., [3, 0, 1, 2]])
    with pytest.raises(ValueError, match="quaternion order"):
        robot.pose(q, quat_order="XYZW")


def test_builtin_metadata(loaded):
    p = loaded["panda"]
    assert p.name == "panda" and p.dof == 7
    assert p.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))
    assert p.joint_types == ("revolute",) * 7
    assert p.joint_limits.dtype == F64 and torch.equal(p.joint_limits, panda_dh.JOINT_LIMITS)
    assert p.link_names == panda_dh.LINK_NAMES
    u = loaded["ur5e"]
    assert u.joint_names == ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint",
                             "wrist_2_joint", "wrist_3_joint")
    two_pi = 2 * math.pi
    assert u.joint_limits.tolist() == [[-two_pi, two_pi]] * 2 + [[-math.pi, math.pi]] + [[-two_pi, two_pi]] * 3
    k = loaded["iiwa14"]
    assert k.joint_names == tuple(f"iiwa_joint_{i}" for i in range(1, 8))
    assert k.joint_limits[:, 1].tolist() == [2.96705972839, 2.09439510239, 2.96705972839, 2.09439510239,
                                             2.96705972839, 2.09439510239, 3.05432619099]
    assert robots.builtin_names() == BUILTINS


def test_with_ee_link_returns_new_robot(loaded):
    p = loaded["panda"]
    hand = p.with_ee_link("panda_hand")
    assert hand.ee_link == "panda_hand" and p.ee_link == "panda_hand_tcp"
    q = random_q(p, 20, seed=10)
    assert torch.allclose(hand.fk(q), panda_dh.fk_matrices(q, "hand"), atol=1e-9)
    short = p.with_ee_link("panda_link4")  # fewer joints on a shorter chain
    assert short.dof == 4 and short.joint_names == p.joint_names[:4]
    assert robots.load("panda", ee_link="panda_link8").ee_link == "panda_link8"


# ------------------------------------------------------------------------------------ user URDF
USER_URDF = """<?xml version="1.0"?>
<robot name="spinner">
  <link name="base"/>
  <link name="turntable"/>
  <link name="slider"/>
  <link name="tip"/>
  <joint name="spin" type="continuous">
    <parent link="base"/><child link="turntable"/>
    <origin xyz="0 0 0.5" rpy="0 0 0"/>
    <axis xyz="0 0 1"/>
  </joint>
  <joint name="slide" type="prismatic">
    <parent link="turntable"/><child link="slider"/>
    <origin xyz="0.2 0 0"/>
    <axis xyz="1 0 0"/>
    <limit lower="-0.1" upper="0.3" effort="10" velocity="1"/>
  </joint>
  <joint name="tool" type="fixed">
    <parent link="slider"/><child link="tip"/>
    <origin xyz="0 0 0.1"/>
  </joint>
</robot>
"""


@pytest.fixture
def user_urdf(tmp_path):
    path = tmp_path / "spinner.urdf"
    path.write_text(USER_URDF)
    return path


def test_user_urdf_loads_through_the_same_api(user_urdf):
    robot = robots.load(str(user_urdf))
    assert robot.name == "spinner" and robot.ee_link == "tip" and robot.base_link == "base"
    assert robot.joint_names == ("spin", "slide") and robot.joint_types == ("continuous", "prismatic")
    assert robot.joint_limits.tolist() == [[-math.pi, math.pi], [-0.1, 0.3]]
    assert robot.link_names == ("base", "turntable", "slider", "tip")
    q = torch.tensor([[0.3, 0.25], [-2.0, -0.1], [4.0, 0.0]], dtype=F64)  # a continuous joint may exceed pi
    T = robot.fk(q)
    r = 0.2 + q[:, 1]
    expect = torch.stack([torch.cos(q[:, 0]) * r, torch.sin(q[:, 0]) * r, torch.full_like(r, 0.6)], -1)
    assert torch.allclose(T[:, :3, 3], expect, atol=1e-15)
    assert torch.allclose(T[:, :3, :3], roma.rotvec_to_rotmat(torch.nn.functional.pad(q[:, :1], (2, 0))),
                          atol=1e-15)
    assert robot.within_limits(q).tolist() == [True, True, True]
    assert torch.allclose(robot.jacobian(q), fd_jacobian(robot, q), atol=1e-8)
    # the prismatic column: base-frame slide direction, no rotation
    J = robot.jacobian(q)
    assert torch.allclose(J[:, :3, 1], T[:, :3, 0], atol=1e-15) and torch.equal(J[:, 3:, 1], torch.zeros(3, 3, dtype=F64))
    assert robots.load(user_urdf, ee_link="slider").ee_link == "slider"  # a pathlib.Path works too


USER_MJCF = """<mujoco model="spinner">
  <compiler angle="radian"/>
  <worldbody>
    <body name="turntable" pos="0 0 0.5">
      <joint name="spin" type="hinge" axis="0 0 1"/>
      <geom type="sphere" size="0.05"/>
      <body name="slider" pos="0.2 0 0">
        <joint name="slide" type="slide" axis="1 0 0" range="-0.1 0.3"/>
        <geom type="sphere" size="0.05"/>
        <site name="tip" pos="0 0 0.1"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def test_user_mjcf_matches_the_same_urdf(tmp_path, user_urdf):
    pytest.importorskip("mujoco")
    path = tmp_path / "spinner.xml"
    path.write_text(USER_MJCF)
    robot = robots.load(path)
    assert robot.name == "spinner" and robot.ee_link == "tip" and robot.base_link == "world"
    assert robot.joint_names == ("spin", "slide") and robot.joint_types == ("continuous", "prismatic")
    assert torch.allclose(robot.joint_limits, robots.load(user_urdf).joint_limits)
    q = random_q(robot, 20, seed=13)
    assert torch.allclose(robot.fk(q), robots.load(user_urdf).fk(q), atol=1e-15)
    assert torch.allclose(robot.jacobian(q), fd_jacobian(robot, q), atol=1e-8)
    bad = tmp_path / "ball.xml"
    bad.write_text(USER_MJCF.replace('type="hinge"', 'type="ball"'))
    with pytest.raises(ValueError, match="only hinge and slide joints"):
        robots.load(bad)
    bad.write_text(USER_MJCF.replace("<worldbody>", "<worldbody><body>"))
    with pytest.raises(ValueError, match="malformed XML|could not compile"):
        robots.load(bad)


def _interval():
    try:
        from posegen.manifolds import Interval
    except ImportError:
        try:
            from posegen.manifolds.interval import Interval
        except ImportError:
            pytest.skip("posegen.manifolds.Interval is not there yet")
    return Interval


def test_manifold_groups_joints(loaded, user_urdf):
    Interval = _interval()
    from posegen.manifolds import Product, Torus

    m = loaded["panda"].manifold
    assert isinstance(m, Product) and len(m.factors) == 1 and m.dim == 7 and m.spec.startswith("I7")
    (box,) = m.factors
    assert isinstance(box, Interval)
    assert torch.equal(torch.stack([box.lo, box.hi], -1).double(), panda_dh.JOINT_LIMITS)
    user = robots.load(user_urdf).manifold
    assert [type(f) for f in user.factors] == [Torus, Interval]
    assert user.factors[0].dim == 1 and user.factors[1].dim == 1
    assert user.factors[1].lo.tolist() == [-0.1] and user.factors[1].hi.tolist() == [0.3]
    # a point of the manifold is a joint vector
    x = user.sample_base(5, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert bool(robots.load(user_urdf).within_limits(x).all())


# ------------------------------------------------------------------------------------ bad inputs
def test_unknown_builtin_lists_names_sorted():
    with pytest.raises(ValueError, match=r"unknown built-in robot 'fr3'.*iiwa14, panda, ur5e"):
        robots.load("fr3")


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such description file"):
        robots.load(tmp_path / "nope.urdf")
    with pytest.raises(FileNotFoundError):
        robots.load(str(tmp_path / "nope.urdf"))


@pytest.mark.parametrize("text, match", [
    ("<robot name='x'><link name='a'></robot>", "malformed XML"),
    ("<sdf version='1.6'/>", "expected a URDF <robot>"),
    (USER_URDF.replace('<limit lower="-0.1" upper="0.3" effort="10" velocity="1"/>', ""), "needs <limit"),
    (USER_URDF.replace('lower="-0.1"', 'lower="0.5"'), "must be below upper"),
    (USER_URDF.replace('type="continuous"', 'type="floating"'), "'floating' is not supported"),
    (USER_URDF.replace('<link name="tip"/>', '<link name="tip"/><link name="stray"/>'), "exactly one root"),
    (USER_URDF.replace('<child link="slider"/>', '<child link="nowhere"/>'), "'nowhere' is not a <link>"),
    (USER_URDF.replace('xyz="0.2 0 0"', 'xyz="0.2 0"'), "expected 3 numbers"),
    (USER_URDF.replace('xyz="0.2 0 0"', 'xyz="0.2 nan 0"'), "must be finite"),
    (USER_URDF.replace('<axis xyz="1 0 0"/>', '<axis xyz="0 0 0"/>'), "axis must be nonzero"),
    (USER_URDF.replace('<link name="tip"/>', '<link name="tip"/><link name="tip"/>'), "defined twice"),
])
def test_malformed_descriptions(tmp_path, text, match):
    path = tmp_path / "bad.urdf"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        robots.load(path, ee_link="tip")  # limits are checked on the chain (tests/test_robot_loading.py)


def test_mimic_joint_on_the_chain_follows_its_driver(tmp_path, user_urdf):
    """slide = 0.1 * spin + 0.05: one robot joint, the pose of the two-joint robot at (q, 0.1 q + 0.05), and
    the Jacobian column the sum of both columns with the slide's scaled by 0.1."""
    path = tmp_path / "mimic.urdf"
    path.write_text(USER_URDF.replace('<axis xyz="1 0 0"/>',
                                      '<axis xyz="1 0 0"/><mimic joint="spin" multiplier="0.1" offset="0.05"/>'))
    robot, free = robots.load(path, ee_link="tip"), robots.load(user_urdf, ee_link="tip")
    assert robot.joint_names == ("spin",) and robot.dof == 1
    q = torch.linspace(-3.0, 3.0, 7, dtype=F64)[:, None]
    q2 = torch.cat([q, 0.1 * q + 0.05], -1)
    torch.testing.assert_close(robot.fk(q), free.fk(q2), atol=1e-15, rtol=0)
    torch.testing.assert_close(robot.jacobian(q)[..., 0], free.jacobian(q2) @ torch.tensor([1.0, 0.1], dtype=F64),
                               atol=1e-15, rtol=0)
    assert torch.allclose(robot.jacobian(q), fd_jacobian(robot, q), atol=1e-8)


def test_unknown_ee_link(loaded, user_urdf):
    with pytest.raises(ValueError, match=r"unknown ee_link 'gripper'.*panda_link0"):
        robots.load("panda", ee_link="gripper")
    p = loaded["panda"]
    with pytest.raises(ValueError, match="unknown ee_link 'tool0'"):
        p.with_ee_link("tool0")
    assert p.ee_link == "panda_hand_tcp"  # unchanged
    with pytest.raises(ValueError, match="unknown ee_link 'hand'"):
        robots.load(user_urdf, ee_link="hand")


def test_bad_joint_vectors(loaded):
    p = loaded["panda"]
    for fn in (p.fk, p.jacobian, p.pose, p.frames, p.within_limits, p.check_joints):
        with pytest.raises(ValueError, match=r"shape \(\.\.\., 7\).*got shape \(2, 6\)"):
            fn(torch.zeros(2, 6))
        with pytest.raises(ValueError, match=r"NaN or infinite.*row 1: panda_joint3=nan"):
            fn(torch.tensor([[0.0] * 7, [0, 0, math.nan, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 7\).*got shape \(\)"):
        p.fk(torch.tensor(0.0))
    with pytest.raises(ValueError, match="unknown link"):
        p.frames(torch.zeros(7), ["panda_link0", "gripper"])


def test_check_joints_limits(loaded):
    p = loaded["panda"]
    q = random_q(p, 4, seed=11)
    assert torch.equal(p.check_joints(q), q)
    q_bad = q.clone()
    q_bad[2, 3] = 0.5   # panda_joint4 must be in [-3.0718, -0.0698]
    with pytest.raises(ValueError, match=r"outside the limits: row 2: panda_joint4=0\.5 outside \[-3\.0718, -0\.0698\]"):
        p.check_joints(q_bad)
    assert p.check_joints(q_bad, require_limits=False) is not None
    assert p.within_limits(q_bad).tolist() == [True, True, False, True]
    assert bool(p.within_limits(q_bad, atol=1.0).all())
    # lists work; integer input becomes the default float dtype
    assert p.check_joints([0, 0, 0, -1, 0, 1, 0]).dtype == torch.get_default_dtype()


# ---------------------------------------------------------------------- packaging and import
def test_builtins_are_package_data():
    from importlib import resources

    files = {f.name for f in resources.files("posegen.robots.descriptions").iterdir()}
    assert {"panda.urdf", "ur5e.urdf", "iiwa14.urdf"} <= files


def test_import_without_pytorch_kinematics():
    code = ("import sys; sys.modules['pytorch_kinematics'] = None\n"
            "import posegen, posegen.robots\n"
            "try:\n    posegen.robots.load('panda')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'pip install "posegen[robots]"' in out.stdout


# ---------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(loaded, name, dtype):
    robot = loaded[name]
    q = random_q(robot, 32, seed=12, dtype=dtype).reshape(4, 8, robot.dof)
    qc = q.cuda()
    T, J = robot.fk(qc), robot.jacobian(qc)
    assert T.device.type == J.device.type == "cuda" and T.dtype == J.dtype == dtype
    tol = 1e-10 if dtype == F64 else 1e-5
    assert torch.allclose(T.cpu(), robot.fk(q), atol=tol)
    assert torch.allclose(J.cpu(), robot.jacobian(q), atol=tol)
    pos, quat = robot.pose(qc)
    assert pos.is_cuda and quat.is_cuda
    qg = qc.clone().requires_grad_(True)
    robot.fk(qg)[..., :3, 3].sum().backward()
    assert qg.grad is not None and qg.grad.is_cuda
