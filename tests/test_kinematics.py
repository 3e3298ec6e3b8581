"""posegen.robots.kinematics: the compact FK/Jacobian program against pytorch_kinematics, its reference.

Every robot is evaluated twice on the same random joint vectors, with ``robot.kinematics = "program"`` and
``"pytorch_kinematics"``: the built-ins, the hand-written URDFs of tests/test_robots.py and
tests/test_robot_loading.py (a prismatic joint and a fixed tail; a chain through a mimic joint on another
branch), one written here with tilted, unnormalised axes, rpy origins and mimics with multipliers and
offsets, and the arms and mimic chains of pybullet_data that tests/test_robot_loading.py checks against
Pinocchio. float64 agreement to 1e-12 (measured worst about 1e-15); float32 to 2e-5 of the float64 values.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytorch_kinematics")

from test_robot_loading import ARM, ARMS, MIMIC_CHAINS, PACKAGED, uniform_q, write  # noqa: E402
from test_robots import BUILTINS, USER_URDF  # noqa: E402

from posegen import robots  # noqa: E402
from posegen.robots.kinematics import SerialProgram  # noqa: E402

F64 = torch.float64

TILTED = """<robot name="tilted">
  <link name="a"/><link name="b"/><link name="c"/><link name="d"/>
  <link name="e"/><link name="f"/><link name="tip"/>
  <joint name="j1" type="revolute"><parent link="a"/><child link="b"/>
    <origin xyz="0.1 -0.2 0.3" rpy="0.3 -0.7 1.1"/><axis xyz="0 3 4"/>
    <limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <joint name="fixed_mid" type="fixed"><parent link="b"/><child link="c"/>
    <origin xyz="0 0.05 0.2" rpy="1.2 0 -0.4"/></joint>
  <joint name="s1" type="prismatic"><parent link="c"/><child link="d"/>
    <origin xyz="0.2 0 0" rpy="0 0.5 0"/><axis xyz="1 1 0"/>
    <limit lower="-0.1" upper="0.3" effort="1" velocity="1"/></joint>
  <joint name="m1" type="revolute"><parent link="d"/><child link="e"/>
    <origin xyz="0 0 0.15" rpy="-0.2 0.1 0.3"/><axis xyz="-1 0 0"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/><mimic joint="j1" multiplier="-1.5" offset="0.2"/></joint>
  <joint name="j2" type="continuous"><parent link="e"/><child link="f"/>
    <origin xyz="0.05 0.1 0" rpy="0 0 0"/><axis xyz="0.2 -0.3 0.9"/></joint>
  <joint name="tool" type="fixed"><parent link="f"/><child link="tip"/>
    <origin xyz="0 0 0.12" rpy="0.1 0.2 0.3"/></joint>
</robot>
"""


def _cases(tmp_path):
    """``{label: robot}``: the built-ins, the hand-written URDFs and (when installed) pybullet_data's arms."""
    cases = {name: robots.load(name) for name in BUILTINS}
    cases["spinner"] = robots.load(write(tmp_path, USER_URDF, "spinner.urdf"))
    cases["arm_mimic_finger"] = robots.load(write(tmp_path, ARM, "arm.urdf"), ee_link="finger_r")
    cases["tilted"] = robots.load(write(tmp_path, TILTED, "tilted.urdf"), ee_link="tip")
    for key in sorted(ARMS):
        if key in PACKAGED and key.startswith("pybullet_data/"):
            cases[key] = robots.load(PACKAGED[key])
    for key, ee in sorted(MIMIC_CHAINS.items()):
        if key in PACKAGED:
            cases[key + ":" + ee] = robots.load(PACKAGED[key], ee_link=ee)
    return cases


def both(robot, fn, q):
    """``fn(robot, q)`` with the program and with pytorch_kinematics (the backend is restored after)."""
    out = []
    for backend in ("program", "pytorch_kinematics"):
        robot.kinematics = backend
        out.append(fn(robot, q))
    robot.kinematics = "program"
    return out


def test_program_matches_pytorch_kinematics_on_every_robot(tmp_path):
    cases = _cases(tmp_path)
    assert {"tilted", "arm_mimic_finger", "spinner"} <= set(cases)
    worst = 0.0
    for label, robot in cases.items():
        q = uniform_q(robot, 64, seed=3)
        (T, J), (T_ref, J_ref) = both(robot, lambda r, x: r.fk_and_jacobian(x), q)
        for got, ref, what in ((T, T_ref, "fk"), (J, J_ref, "jacobian")):
            torch.testing.assert_close(got, ref, atol=1e-12, rtol=0, msg=lambda m: f"{label} {what}: {m}")
            worst = max(worst, float((got - ref).abs().max()))
        # fk and jacobian alone give the very same numbers as the one-pass call
        assert torch.equal(robot.fk(q), T) and torch.equal(robot.jacobian(q), J), label
    assert worst < 1e-13  # float64 rounding, not a loose agreement


def test_large_batches_match_and_rows_do_not_depend_on_the_batch(tmp_path):
    """A large batch (the batch is the contiguous axis of every intermediate) matches the reference, and a row's
    numbers do not depend on the rows beside it (to the last bits a matrix kernel may change with the size)."""
    robot = robots.load(write(tmp_path, TILTED, "tilted.urdf"), ee_link="tip")
    q = uniform_q(robot, 3000, seed=6)
    (T, J), (T_ref, J_ref) = both(robot, lambda r, x: r.fk_and_jacobian(x), q)
    torch.testing.assert_close(T, T_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(J, J_ref, atol=1e-12, rtol=0)
    for rows in (slice(0, 1), slice(5, 12), slice(100, 1124)):
        T_part, J_part = robot.fk_and_jacobian(q[rows])
        torch.testing.assert_close(T[rows], T_part, atol=1e-15, rtol=0)
        torch.testing.assert_close(J[rows], J_part, atol=1e-15, rtol=0)


def test_program_in_float32(tmp_path):
    for label, robot in _cases(tmp_path).items():
        q = uniform_q(robot, 64, seed=4)
        T_ref, J_ref = robot.fk_and_jacobian(q)
        T, J = robot.fk_and_jacobian(q.float())
        assert T.dtype == J.dtype == torch.float32
        torch.testing.assert_close(T.double(), T_ref, atol=2e-5, rtol=0, msg=lambda m: f"{label} fk: {m}")
        torch.testing.assert_close(J.double(), J_ref, atol=2e-5, rtol=0, msg=lambda m: f"{label} jacobian: {m}")


def test_program_gradients_match_the_reference(tmp_path):
    """First derivatives through the program equal pytorch_kinematics' ones, and second derivatives exist
    (gradgradcheck in float64)."""
    robot = robots.load(write(tmp_path, TILTED, "tilted.urdf"), ee_link="tip")
    q = uniform_q(robot, 5, seed=5)

    def grad(r, x):
        x = x.clone().requires_grad_(True)
        T, J = r.fk_and_jacobian(x)
        (T[..., :3, :].sin().sum() + J.square().sum()).backward()
        return x.grad

    g, g_ref = both(robot, grad, q)
    torch.testing.assert_close(g, g_ref, atol=1e-12, rtol=0)
    torch.autograd.gradgradcheck(lambda x: robot.fk(x)[..., :3, :], (q[:2].clone().requires_grad_(True),))


def test_program_fold_of_fixed_joints():
    """A chain of fixed joints only is refused; the tail is the product of the fixed joints after the last
    movable one (here an identity chain with one joint about z and a tool 0.1 m along x)."""
    text_joints = robots.load("panda").description.path_joints("panda_link0")
    with pytest.raises(ValueError, match="no movable joint"):
        SerialProgram.from_joints(text_joints)
    origins = torch.eye(4, dtype=F64)[None]
    tail = torch.eye(4, dtype=F64)
    tail[0, 3] = 0.1
    prog = SerialProgram(origins, torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([True]), tail)
    theta = torch.tensor([[0.5]], dtype=F64)
    T, J = prog.fk_and_jacobian(theta)
    c, s = torch.cos(theta[0, 0]), torch.sin(theta[0, 0])
    torch.testing.assert_close(T[0, :3, 3], torch.stack([0.1 * c, 0.1 * s, torch.tensor(0.0, dtype=F64)]))
    torch.testing.assert_close(J[0, :, 0], torch.tensor([-0.1 * s, 0.1 * c, 0, 0, 0, 1], dtype=F64))


def test_kinematics_backend_is_checked():
    robot = robots.load("panda")
    assert robot.kinematics == "program"
    with pytest.raises(ValueError, match=r"kinematics must be one of \['program', 'pytorch_kinematics'\], got 'fast'"):
        robot.kinematics = "fast"
    assert robot.kinematics == "program"


@pytest.mark.parametrize("backend", ["program", "pytorch_kinematics"])
def test_caches_made_inside_inference_mode_still_differentiate(tmp_path, backend):
    """solve_ik runs in inference mode; constants it caches first (a new dtype, mimic drive tensors) must be
    ordinary tensors, so autograd through fk afterwards works."""
    robot = robots.load(write(tmp_path, TILTED, "tilted.urdf"), ee_link="tip")
    robot.kinematics = backend
    q = uniform_q(robot, 4, seed=7).float()
    pos, quat = robot.pose(q.double())
    robots.solve_ik(robot, torch.cat([pos, quat], -1).float(), q, max_iters=2)
    x = q.clone().requires_grad_(True)
    T, J = robot.fk_and_jacobian(x)
    (T.sum() + J.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()

