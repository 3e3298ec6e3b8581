"""Franka Panda kinematics (posegen.data.panda) and the reach-and-grasp generator (posegen.data.generate).

FK is cross-checked against an independent chain built the URDF way (joint origin xyz + rpy, then a
rotation about the joint's z axis), with the joint origins of franka_description's
``robots/panda_arm.xacro`` (frankaemika/franka_ros), the hand's ``rpy="0 0 -pi/4"`` from
``robots/common/franka_robot.xacro`` and the TCP's ``xyz="0 0 0.1034"`` from ``robots/common/franka_hand.xacro``.
"""

import json
import math
import os

import h5py
import numpy as np
import pytest
import roma
import torch

from posegen.data import generate as gen
from posegen.data import panda
from posegen.manifolds import wrap_angle

DTYPES = [torch.float32, torch.float64]
# FK agreement with the independent chain; float32 carries ~1e-7 relative rounding through 10 products
FK_ATOL = {torch.float32: 5e-6, torch.float64: 1e-12}

# --- independent URDF-style chain (franka_description panda_arm.xacro) ---------------------------------
# (xyz, rpy) of the joint origins panda_joint1 ... panda_joint7, then the fixed panda_joint8 (flange),
# panda_hand_joint and panda_hand_tcp_joint.
URDF_JOINTS = [
    ((0, 0, 0.333), (0, 0, 0)),
    ((0, 0, 0), (-math.pi / 2, 0, 0)),
    ((0, -0.316, 0), (math.pi / 2, 0, 0)),
    ((0.0825, 0, 0), (math.pi / 2, 0, 0)),
    ((-0.0825, 0.384, 0), (-math.pi / 2, 0, 0)),
    ((0, 0, 0), (math.pi / 2, 0, 0)),
    ((0.088, 0, 0), (math.pi / 2, 0, 0)),
]
URDF_FIXED = [((0, 0, 0.107), (0, 0, 0)), ((0, 0, 0), (0, 0, -math.pi / 4)), ((0, 0, 0.1034), (0, 0, 0))]


def _rpy(roll, pitch, yaw):
    """URDF convention: R = Rz(yaw) Ry(pitch) Rx(roll) (fixed axes x, y, z)."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _origin(xyz, rpy):
    T = np.eye(4)
    T[:3, :3] = _rpy(*rpy)
    T[:3, 3] = xyz
    return T


def _rot_z(angle):
    T = np.eye(4)
    T[:3, :3] = _rpy(0, 0, angle)
    return T


def urdf_frames(q):
    """Frames link1..link7, link8, hand, tcp for one configuration ``q (7,)`` (numpy float64)."""
    T = np.eye(4)
    out = []
    for (xyz, rpy), qi in zip(URDF_JOINTS, q):
        T = T @ _origin(xyz, rpy) @ _rot_z(qi)
        out.append(T)
    for xyz, rpy in URDF_FIXED:
        T = T @ _origin(xyz, rpy)
        out.append(T)
    return np.stack(out)


def random_q(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lim = panda.JOINT_LIMITS
    return (lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(n, 7, generator=g, dtype=torch.float64)).to(dtype)


def quat_angle(q1, q2):
    """Rotation angle between unit quaternions (either sign); atan2 form, accurate near zero."""
    q2 = torch.where((q1 * q2).sum(-1, keepdim=True) < 0, -q2, q2)
    return 4 * torch.atan2((q1 - q2).norm(dim=-1), (q1 + q2).norm(dim=-1))


# --- constants -------------------------------------------------------------------------------------------
def test_joint_limits_are_franka_descriptions():
    expected = [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698],
                [-2.8973, 2.8973], [-0.0175, 3.7525], [-2.8973, 2.8973]]
    assert panda.JOINT_LIMITS.shape == (7, 2)
    assert panda.JOINT_LIMITS.tolist() == expected
    assert panda.within_limits(panda.Q_READY)


# --- forward kinematics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_fk_matches_independent_urdf_chain(dtype):
    q = random_q(64, seed=1, dtype=dtype)
    frames = panda.all_link_frames(q)
    assert frames.shape == (64, 11, 4, 4) and frames.dtype == dtype
    ref = torch.from_numpy(np.stack([urdf_frames(qi) for qi in q.double().numpy()]))
    assert torch.allclose(frames[:, 0], torch.eye(4, dtype=dtype).expand(64, 4, 4))
    err = (frames[:, 1:].double() - ref).abs().amax()
    assert err < FK_ATOL[dtype], f"max |T - T_urdf| = {err:.3g}"
    # fk / fk_matrices agree with all_link_frames for every end frame
    for frame, k in (("flange", 8), ("hand", 9), ("tcp", 10)):
        T = panda.fk_matrices(q, frame)
        assert torch.allclose(T, frames[:, k], atol=FK_ATOL[dtype], rtol=0)
        pos, quat = panda.fk(q, frame)
        assert torch.allclose(pos, ref[:, k - 1, :3, 3].to(dtype), atol=FK_ATOL[dtype], rtol=0)
        R = roma.unitquat_to_rotmat(quat.double())
        assert (R - ref[:, k - 1, :3, :3]).abs().amax() < 10 * FK_ATOL[dtype]
        assert (quat[..., 3] >= 0).all()


def test_fk_reference_configurations():
    # ready configuration: panda_hand at (0.306890566, 0, 0.590282052), the value a MoveIt 2 test oracle
    # computes with kinpy from moveit_resources_panda_description's URDF; the hand points straight down
    # with its x axis along the base x axis, and the TCP is 0.1034 m below the hand.
    pos, quat = panda.fk(panda.Q_READY, "hand")
    assert torch.allclose(pos, torch.tensor([0.306890566, 0.0, 0.590282052], dtype=torch.float64), atol=1e-9)
    T = panda.fk_matrices(panda.Q_READY, "tcp")
    assert torch.allclose(T[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)),
                          atol=1e-12)
    assert torch.allclose(T[:3, 3], torch.tensor([0.306890566, 0.0, 0.590282052 - 0.1034],
                                                 dtype=torch.float64), atol=1e-9)
    # zero configuration (outside q4's limits, still a valid FK input), derived by hand from the DH table:
    # the arm stands upright, x = a4 + a5 + a7 = 0.0825 - 0.0825 + 0.088, z = d1 + d3 + d5 = 0.333 + 0.316
    # + 0.384, and the flange points down, d_F = 0.107 below joint 7.
    T0 = panda.fk_matrices(torch.zeros(7, dtype=torch.float64), "flange")
    assert torch.allclose(T0[:3, 3], torch.tensor([0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107],
                                                  dtype=torch.float64), atol=1e-12)
    assert torch.allclose(T0[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)),
                          atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fk_batch_shapes_and_dtypes(dtype):
    q = random_q(6, seed=2, dtype=dtype).reshape(2, 3, 7)
    pos, quat = panda.fk(q)
    assert pos.shape == (2, 3, 3) and quat.shape == (2, 3, 4)
    assert pos.dtype == quat.dtype == dtype
    assert torch.allclose(quat.norm(dim=-1), torch.ones(2, 3, dtype=dtype), atol=1e-6)
    assert panda.fk_matrices(q).shape == (2, 3, 4, 4)
    assert panda.all_link_frames(q).shape == (2, 3, 11, 4, 4)
    assert panda.within_limits(q).shape == (2, 3)


def test_fk_input_errors():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 7\)"):
        panda.fk(torch.zeros(3, 6))
    with pytest.raises(TypeError, match="floating-point"):
        panda.fk(torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match='Invalid frame "wrist"'):
        panda.fk(torch.zeros(7), frame="wrist")


def test_geometric_jacobian_matches_autodiff():
    q = random_q(5, seed=3)
    J, _ = panda.jacobian(q)
    for i in range(5):
        dT = torch.func.jacrev(lambda x: panda.fk_matrices(x))(q[i])          # (4, 4, 7)
        R = panda.fk_matrices(q[i])[:3, :3]
        jv = dT[:3, 3, :]
        # angular velocity: skew(omega) = dR/dq R^T
        W = torch.einsum("abk,cb->ack", dT[:3, :3, :], R)
        jw = torch.stack([W[2, 1], W[0, 2], W[1, 0]])
        assert torch.allclose(J[i, :3], jv, atol=1e-12)
        assert torch.allclose(J[i, 3:], jw, atol=1e-12)


# --- joint limits and wrapping --------------------------------------------------------------------------
def test_unwrap_round_trip_inside_limits():
    q = random_q(2000, seed=4)
    q[:10, 5] = torch.linspace(math.pi + 0.01, 3.7525, 10, dtype=torch.float64)  # q6 beyond pi: wraps to negative angles
    q[10] = panda.JOINT_LIMITS[:, 0]                            # exactly on the limits
    q[11] = panda.JOINT_LIMITS[:, 1]
    wrapped = wrap_angle(q)
    assert (wrapped[:10, 5] < 0).all()
    back, valid = panda.unwrap_to_limits(wrapped)
    assert valid.all()
    assert torch.allclose(back, q, atol=1e-12, rtol=0)
    assert panda.within_limits(back, atol=1e-9).all()


def test_unwrap_flags_angles_without_representative():
    q = panda.Q_READY.repeat(3, 1)
    q[0, 3] = 1.0        # q4 in [-3.0718, -0.0698]: neither 1.0 nor 1.0 - 2 pi is inside
    q[1, 5] = -1.0       # q6 in [-0.0175, 3.7525]: -1.0 + 2 pi = 5.28 is not inside either
    back, valid = panda.unwrap_to_limits(q)
    assert valid.tolist() == [False, False, True]
    # nothing clipped: every output equals its input modulo 2 pi
    k = (back - q) / (2 * math.pi)
    assert torch.allclose(k, k.round(), atol=1e-12)
    assert not panda.within_limits(back[:2]).any()


# --- inverse kinematics ---------------------------------------------------------------------------------
def test_ik_recovers_reachable_targets():
    q_true = random_q(256, seed=5)
    # keep off the limits a little so the perturbed starts are not all clamped onto them
    lim = panda.JOINT_LIMITS
    q_true = q_true.clamp(lim[:, 0] + 0.1, lim[:, 1] - 0.1)
    pos, quat = panda.fk(q_true)
    g = torch.Generator().manual_seed(6)
    q0 = q_true + 0.2 * torch.randn(q_true.shape, generator=g, dtype=torch.float64)
    q, ok, pos_err, rot_err = panda.ik(pos, quat, q0, iters=200, tol_pos=1e-4, tol_rot=1e-3)
    assert q.shape == (256, 7) and ok.shape == pos_err.shape == rot_err.shape == (256,)
    good = (pos_err < 1e-3) & (rot_err < math.radians(0.5))
    assert good.float().mean() > 0.9, f"only {good.float().mean():.2%} within 1 mm / 0.5 deg"
    # the reported errors are the errors of the returned q, and success means within tolerance
    p_chk, q_chk = panda.fk(q)
    assert torch.allclose(pos_err, (p_chk - pos).norm(dim=-1), atol=1e-12)
    assert torch.allclose(rot_err, quat_angle(q_chk, quat), atol=1e-6)
    assert ((pos_err <= 1e-4) & (rot_err <= 1e-3)).eq(ok).all()
    assert ok.float().mean() > 0.9
    assert panda.within_limits(q).all()


def test_ik_reports_failure_for_unreachable_targets():
    pos = torch.tensor([[2.0, 0.0, 0.3], [0.4, 0.0, 0.3]], dtype=torch.float64)
    quat = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2, dtype=torch.float64)      # pointing down
    q, ok, pos_err, _ = panda.ik(pos, quat, panda.Q_READY, iters=150)
    assert ok.tolist() == [False, True]
    assert pos_err[0] > 0.5
    assert panda.within_limits(q).all()


def test_ik_float32_and_nullspace_keep_limits():
    q_true = random_q(32, seed=7).clamp(panda.JOINT_LIMITS[:, 0] + 0.1, panda.JOINT_LIMITS[:, 1] - 0.1)
    pos, quat = panda.fk(q_true)
    q, ok, pos_err, rot_err = panda.ik(pos.float(), quat.float(), (q_true + 0.1).float(), iters=200,
                                       q_rest=panda.Q_READY.float(), nullspace_gain=0.05)
    assert q.dtype == torch.float32
    assert panda.within_limits(q).all()
    assert ((pos_err < 1e-3) & (rot_err < math.radians(0.5))).float().mean() > 0.9


# --- generator ------------------------------------------------------------------------------------------
OBS = {"robot0_joint_pos": 7, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2,
       "object_pos": 3, "object_quat": 4}


def _read(path):
    with h5py.File(path, "r") as f:
        names = gen.sorted_demo_names(f["data"].keys())
        arrays = {f"{n}/{k}": f[f"data/{n}/obs/{k}"][()] for n in names for k in OBS}
        arrays.update({f"{n}/actions": f[f"data/{n}/actions"][()] for n in names})
        return names, arrays


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "a.hdf5"
    stats = gen.generate_panda_dataset(path, n_demos=4, seed=3, frames=24)
    return path, stats


def test_sorted_demo_names_is_numeric():
    names = [f"demo_{i}" for i in (10, 2, 0, 1, 11, 9)]
    assert gen.sorted_demo_names(names) == ["demo_0", "demo_1", "demo_2", "demo_9", "demo_10", "demo_11"]
    assert sorted(names) != gen.sorted_demo_names(names)          # lexicographic order is wrong
    assert gen.sorted_demo_names([b"demo_3", b"demo_12"]) == ["demo_3", "demo_12"]
    with pytest.raises(ValueError, match="demo_0"):
        gen.sorted_demo_names(["demo_1", "mask"])


def test_generator_layout(tiny):
    path, stats = tiny
    assert stats["n_kept"] + sum(stats["n_discarded"].values()) == 4
    with h5py.File(path, "r") as f:
        data = f["data"]
        names = gen.sorted_demo_names(data.keys())
        assert names == [f"demo_{i}" for i in range(stats["n_kept"])]
        total = 0
        for n in names:
            g = data[n]
            T = int(g.attrs["num_samples"])
            assert 19 <= T <= 29                                   # frames=24 +- 24 // 5
            assert g.attrs["grasp_family"] in gen.GRASP_FAMILIES
            for k, d in OBS.items():
                assert g[f"obs/{k}"].shape == (T, d) and g[f"obs/{k}"].dtype == np.float64, k
            assert g["actions"].shape == (T, 7)
            total += T
        assert data.attrs["total"] == total == stats["total_frames"]
        env = json.loads(data.attrs["env_args"])
        assert env["seed"] == 3 and env["robot"]["name"] == "Panda"
        assert env["n_demos_kept"] == stats["n_kept"] and "posegen_version" in env
        train, valid = f["mask/train"][()], f["mask/valid"][()]
        assert train.dtype.kind == "S" and valid.dtype.kind == "S"
        split = [s.decode() for s in train] + [s.decode() for s in valid]
        assert sorted(split) == sorted(names) and len(set(split)) == len(split)
    assert not [p for p in os.listdir(path.parent) if ".tmp" in p]     # atomic write cleaned up


def test_generator_recorded_poses_are_fk_of_recorded_joints(tiny):
    path, _ = tiny
    names, a = _read(path)
    for n in names:
        q = torch.from_numpy(a[f"{n}/robot0_joint_pos"])
        assert panda.within_limits(q).all()
        assert (q[1:] - q[:-1]).abs().max() < 1.0                          # continuous, not wrapped
        pos, quat = panda.fk(q)
        assert np.abs(pos.numpy() - a[f"{n}/robot0_eef_pos"]).max() < 1e-12
        rec_quat = torch.from_numpy(a[f"{n}/robot0_eef_quat"])
        assert quat_angle(quat, rec_quat).max() < 1e-6
        assert ((rec_quat[1:] * rec_quat[:-1]).sum(-1) > 0).all()           # sign-continuous
        act = a[f"{n}/actions"]
        assert np.allclose(a[f"{n}/robot0_eef_pos"][:-1] + act[:-1, :3], a[f"{n}/robot0_eef_pos"][1:])
        assert set(np.unique(act[:, 6])) <= {-1.0, 1.0} and act[0, 6] == -1.0 and act[-1, 6] == 1.0
        grip = a[f"{n}/robot0_gripper_qpos"]
        assert np.allclose(grip[:, 0], -grip[:, 1]) and grip[0, 0] == pytest.approx(0.04)
        assert grip[-1, 0] < grip[0, 0]


def test_generator_grasp_families_end_where_planned(tiny):
    path, _ = tiny
    with h5py.File(path, "r") as f:
        for n in f["data"]:
            g = f["data"][n]
            R = panda.fk_matrices(torch.from_numpy(g["obs/robot0_joint_pos"][-1]))[:3, :3]
            z = R[:, 2]
            if g.attrs["grasp_family"] == "top":
                assert z[2] < -0.999                                     # pointing down
            else:
                assert abs(float(z[2])) < 0.02                           # horizontal approach
            assert np.linalg.norm(g["obs/robot0_eef_pos"][-1][:2] - g["obs/object_pos"][0][:2]) < 0.005


def test_generator_is_deterministic(tiny, tmp_path):
    path, _ = tiny
    again = tmp_path / "b.hdf5"
    gen.generate_panda_dataset(again, n_demos=4, seed=3, frames=24)
    names_a, a = _read(path)
    names_b, b = _read(again)
    assert names_a == names_b
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_generator_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="n_demos"):
        gen.generate_panda_dataset(tmp_path / "x.hdf5", n_demos=0)
    with pytest.raises(ValueError, match="families"):
        gen.generate_panda_dataset(tmp_path / "x.hdf5", n_demos=2, families=("diagonal",))
    assert not os.path.exists(tmp_path / "x.hdf5")


# --- the shipped dataset ----------------------------------------------------------------------------------
SHIPPED = os.path.join(os.path.dirname(__file__), "..", "data", "panda_reach_grasp.hdf5")


@pytest.mark.skipif(not os.path.exists(SHIPPED), reason="data/panda_reach_grasp.hdf5 not present")
def test_shipped_dataset_is_consistent():
    with h5py.File(SHIPPED, "r") as f:
        data = f["data"]
        names = gen.sorted_demo_names(data.keys())
        assert len(names) > 11 and names == [f"demo_{i}" for i in range(len(names))]
        # generation order is the numeric order, not the lexicographic one
        src = [int(data[n].attrs["source_index"]) for n in names]
        assert src == sorted(src)
        assert [int(data[n].attrs["source_index"]) for n in sorted(names)] != src
        assert sum(int(data[n].attrs["num_samples"]) for n in names) == data.attrs["total"]
        q = np.concatenate([data[n]["obs/robot0_joint_pos"][()] for n in names])
        pos = np.concatenate([data[n]["obs/robot0_eef_pos"][()] for n in names])
    q = torch.from_numpy(q)
    assert panda.within_limits(q).all()
    assert np.abs(panda.fk(q)[0].numpy() - pos).max() < 1e-12


# --- optional: pybullet's bundled franka_panda URDF -----------------------------------------------------
def test_fk_matches_pybullet_urdf():
    p = pytest.importorskip("pybullet")
    pybullet_data = pytest.importorskip("pybullet_data")
    client = p.connect(p.DIRECT)
    try:
        robot = p.loadURDF(os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf"),
                           useFixedBase=True, physicsClientId=client)
        q = random_q(16, seed=8)
        frames = panda.all_link_frames(q)
        for qi, Ti in zip(q.tolist(), frames):
            for j in range(7):
                p.resetJointState(robot, j, qi[j], physicsClientId=client)
            # pybullet link j is panda_link{j+1}; 7 is panda_link8 (flange), 8 is panda_hand
            for link, k in ((6, 7), (7, 8), (8, 9)):
                st = p.getLinkState(robot, link, computeForwardKinematics=True, physicsClientId=client)
                pos, quat = torch.tensor(st[4], dtype=torch.float64), torch.tensor(st[5], dtype=torch.float64)
                assert torch.allclose(pos, Ti[k, :3, 3], atol=1e-6)
                assert quat_angle(roma.rotmat_to_unitquat(Ti[k, :3, :3]), quat) < 1e-5
    finally:
        p.disconnect(client)
