"""posegen.robots.load on description files: the default end effector, mimic joints, limits off the chain,
XML preambles and namespaces, SRDF end effectors, and the errors for directories and robots without
movable joints.

Oracles: closed-form planar kinematics of the hand-written URDFs below (every joint turns about z, so a
link's pose is a rotation by the sum of the angles above it and a sum of rotated offsets), finite
differences for Jacobians, and, for the URDFs that ship with pip packages (pybullet's ``pybullet_data``,
``example-robot-data``), Pinocchio's forward kinematics of every robot link. Those packages are large
(pybullet 290 MB, example-robot-data with Pinocchio 820 MB installed), so their tests skip without them.
"""

from __future__ import annotations

import glob
import importlib.metadata
import logging
import math
import os
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("pytorch_kinematics")

from posegen import robots  # noqa: E402
from posegen.robots.endeffector import choose_ee_link, is_finger_joint  # noqa: E402
from test_robots import fd_jacobian  # noqa: E402  (the finite-difference oracle of the robot tests)

F64 = torch.float64


def write(tmp_path, text, name="robot.urdf"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def planar(angles, offsets, z=0.0):
    """Pose ``(..., 4, 4)`` of a chain turning about z: joint i turns by ``angles[..., i]`` and then moves by
    ``offsets[i]`` (x, y) in its own frame."""
    T = torch.eye(4, dtype=F64).expand(*angles.shape[:-1], 4, 4).clone()
    theta = torch.zeros(angles.shape[:-1], dtype=F64)
    pos = torch.zeros(*angles.shape[:-1], 2, dtype=F64)
    for i, (dx, dy) in enumerate(offsets):
        theta = theta + angles[..., i]
        c, s = torch.cos(theta), torch.sin(theta)
        pos = pos + torch.stack([c * dx - s * dy, s * dx + c * dy], -1)
    c, s = torch.cos(theta), torch.sin(theta)
    T[..., 0, 0], T[..., 0, 1], T[..., 1, 0], T[..., 1, 1] = c, -s, s, c
    T[..., :2, 3] = pos
    T[..., 2, 3] = z
    return T




def uniform_q(robot, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    lim = robot.joint_limits
    return lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(n, robot.dof, generator=g, dtype=F64)


def joint(name, parent, child, jtype="revolute", xyz="0 0 0", axis="0 0 1", limit=(-2.5, 2.5), extra=""):
    lim = "" if limit is None else f'<limit lower="{limit[0]}" upper="{limit[1]}" effort="1" velocity="1"/>'
    body = "" if jtype == "fixed" else f'<axis xyz="{axis}"/>{lim}'
    return (f'<joint name="{name}" type="{jtype}"><parent link="{parent}"/><child link="{child}"/>'
            f'<origin xyz="{xyz}" rpy="0 0 0"/>{body}{extra}</joint>')


def urdf(name, links, joints, robot_attrs=""):
    return (f'<robot name="{name}"{robot_attrs}>' + "".join(f'<link name="{lk}"/>' for lk in links)
            + "".join(joints) + "</robot>\n")


# A planar 3-joint arm with a hand, a TCP, a camera, two fingers (the right one mimics the left one) and an
# antenna on the base whose revolute joint has no <limit>: only the arm's joints need limits.
ARM_LINKS = ["base", "l1", "l2", "l3", "hand", "camera", "tcp", "finger_l", "finger_r", "antenna"]
ARM_JOINTS = [
    joint("j1", "base", "l1", xyz="0 0 0.1"),
    joint("j2", "l1", "l2", xyz="0.3 0 0"),
    joint("j3", "l2", "l3", xyz="0.2 0 0"),
    joint("wrist", "l3", "hand", "fixed", xyz="0.1 0 0"),
    joint("cam", "hand", "camera", "fixed", xyz="0 0.02 0"),
    joint("tcp_joint", "hand", "tcp", "fixed", xyz="0.05 0 0"),
    joint("finger_joint_l", "hand", "finger_l", "prismatic", xyz="0.04 0.01 0", axis="0 1 0", limit=(0.0, 0.04)),
    joint("finger_joint_r", "hand", "finger_r", "prismatic", xyz="0.04 -0.01 0", axis="0 1 0", limit=(-0.04, 0.0),
          extra='<mimic joint="finger_joint_l" multiplier="-1" offset="0"/>'),
    joint("antenna_joint", "base", "antenna", limit=None),
]
ARM = urdf("arm", ARM_LINKS, ARM_JOINTS)
ARM_OFFSETS = [(0.3, 0.0), (0.2, 0.0), (0.15, 0.0)]  # j1 -> j2 -> j3 -> tcp (0.1 + 0.05)


# --------------------------------------------------------------------------------- default end effector
def test_default_ee_is_the_tool_frame_of_the_longest_non_finger_chain(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="posegen.robots"):
        robot = robots.load(write(tmp_path, ARM))
    assert robot.ee_link == "tcp" and robot.joint_names == ("j1", "j2", "j3")
    # said where a user reads it: the log and the robot, with the fingers left out and how to choose another
    (record,) = [r for r in caplog.records if r.name == "posegen.robots"]
    assert record.levelno == logging.INFO and record.getMessage() == robot.ee_link_reason
    for part in ("'tcp'", "3: j1, j2, j3", "finger_joint_l", "finger_joint_r", "ee_link="):
        assert part in robot.ee_link_reason
    q = uniform_q(robot, 50, seed=1)
    torch.testing.assert_close(robot.fk(q), planar(q, ARM_OFFSETS, z=0.1), atol=1e-15, rtol=0)
    # the antenna and the fingers are no robot links; the camera is
    assert set(robot.link_names) == {"base", "l1", "l2", "l3", "hand", "camera", "tcp"}


@pytest.mark.parametrize("name, joint_name, child, finger", [
    ("panda", "panda_finger_joint1", "panda_leftfinger", True),
    ("z1", "jointGripper", "gripperMover", True),
    ("romeo", "LHand", "LHandLink", True),
    ("tiago", "hand_index_abd_joint", "hand_index_abd_link", True),
    ("xarm", "drive_joint", "left_outer_knuckle", True),        # by its child link's name
    ("so100", "wrist_roll", "gripper", False),                   # a wrist joint that carries the gripper
    ("icub", "l_wrist_yaw", "l_hand", False),
    ("ur", "wrist_3_joint", "wrist_3_link", False),
])
def test_finger_joints_by_name(name, joint_name, child, finger):
    from posegen.robots.description import JointSpec

    j = JointSpec(joint_name, "revolute", "p", child, (0.0,) * 3, (0.0,) * 3, (0.0, 0.0, 1.0), -1.0, 1.0)
    assert is_finger_joint(j) is finger, name


def test_default_ee_of_the_builtin_files_matches_their_registry_where_the_rule_can_tell():
    from posegen.robots.description import parse_urdf
    from posegen.robots.descriptions import builtin_text

    assert choose_ee_link(parse_urdf(builtin_text("panda"))).link == "panda_hand_tcp"
    assert choose_ee_link(parse_urdf(builtin_text("ur5e"))).link == "tool0"
    # two tool frames at the same origin and depth: the first in file order
    assert choose_ee_link(parse_urdf(builtin_text("iiwa14"))).link == "iiwa_link_ee_kuka"
    assert robots.load("panda").ee_link_reason.endswith("the built-in robot's default")


def test_joints_without_limits_cut_the_default_chain_with_a_warning(tmp_path, caplog):
    """minitaur's knees have lower = upper = 0: the default chain stops above them, says so at WARNING, and
    asking for the chain through them names the joint."""
    text = ARM.replace('<limit lower="-2.5" upper="2.5" effort="1" velocity="1"/></joint><joint name="wrist"',
                       '<limit lower="0" upper="0" effort="1" velocity="1"/></joint><joint name="wrist"')
    path = write(tmp_path, text)
    with caplog.at_level(logging.INFO, logger="posegen.robots"):
        robot = robots.load(path)
    assert robot.joint_names == ("j1", "j2") and robot.ee_link == "l2"
    assert [r.levelno for r in caplog.records if r.name == "posegen.robots"] == [logging.WARNING]
    assert "joints without usable limits not included: antenna_joint, j3;" in robot.ee_link_reason
    with pytest.raises(ValueError, match=r"joint 'j3' on the chain to 'tcp': limit lower=0.0 must be below upper=0.0"):
        robots.load(path, ee_link="tcp")
    with pytest.raises(ValueError, match=r"joint 'antenna_joint' on the chain to 'antenna': a revolute joint "
                                         r"needs <limit"):
        robots.load(path, ee_link="antenna")


MJCF = """<mujoco model="arm">
  <worldbody>
    <body name="l1" pos="0 0 0.1">
      <joint name="j1" type="hinge" axis="0 0 1" range="-2 2"/>
      <geom type="sphere" size="0.05"/>
      <body name="l2" pos="0.3 0 0">
        <joint name="j2" type="hinge" axis="0 0 1" range="-2 2"/>
        <geom type="sphere" size="0.05"/>
        <site name="tool" pos="0.2 0 0"/>
      </body>
    </body>
    <body name="cart" pos="1 0 0">
      <joint name="rail" type="slide" axis="1 0 0"/>
      <geom type="box" size="0.1 0.1 0.1"/>
    </body>
  </worldbody>
</mujoco>
"""


def test_mjcf_slide_without_range_matters_only_on_the_chain(tmp_path):
    pytest.importorskip("mujoco")
    path = write(tmp_path, MJCF, "arm.xml")
    robot = robots.load(path)
    assert robot.ee_link == "tool" and robot.joint_names == ("j1", "j2")
    q = uniform_q(robot, 10)
    torch.testing.assert_close(robot.fk(q), planar(q, [(0.3, 0.0), (0.2, 0.0)], z=0.1), atol=1e-15, rtol=0)
    with pytest.raises(ValueError, match=r"joint 'rail' on the chain to 'cart': a prismatic joint needs <limit"):
        robots.load(path, ee_link="cart")


def test_a_gripper_on_its_own_uses_its_finger_joints(tmp_path):
    text = urdf("gripper", ["palm", "left", "right"], [
        joint("finger_joint_l", "palm", "left", "prismatic", axis="0 1 0", limit=(0.0, 0.04)),
        joint("finger_joint_r", "palm", "right", "prismatic", axis="0 1 0", limit=(-0.04, 0.0),
              extra='<mimic joint="finger_joint_l" multiplier="-1"/>')])
    robot = robots.load(write(tmp_path, text))
    assert robot.ee_link == "left" and robot.joint_names == ("finger_joint_l",)


# ------------------------------------------------------------------------------------------- mimic joints
def test_a_chain_through_mimic_joints_follows_their_driver(tmp_path):
    """The right finger mimics the left one (multiplier -1) from another branch: the left finger's joint is
    then the robot's 4th joint, and the right finger moves by minus its value."""
    robot = robots.load(write(tmp_path, ARM), ee_link="finger_r")
    assert robot.joint_names == ("j1", "j2", "j3", "finger_joint_l")
    assert robot.joint_limits[3].tolist() == [0.0, 0.04]  # the driver's limits
    q = uniform_q(robot, 40, seed=2)
    T = robot.fk(q)
    T_hand = planar(q[:, :3], ARM_OFFSETS[:2] + [(0.1, 0.0)], z=0.1)
    offset = torch.stack([torch.full_like(q[:, 3], 0.04), -0.01 - q[:, 3], torch.zeros_like(q[:, 3])], -1)
    torch.testing.assert_close(T[:, :3, 3], T_hand[:, :3, 3] + (T_hand[:, :3, :3] @ offset[..., None])[..., 0],
                               atol=1e-15, rtol=0)
    torch.testing.assert_close(T[:, :3, :3], T_hand[:, :3, :3], atol=1e-15, rtol=0)
    torch.testing.assert_close(robot.jacobian(q), fd_jacobian(robot, q), atol=1e-8, rtol=0)
    T2, J2 = robot.fk_and_jacobian(q)
    assert torch.equal(T2, T) and torch.equal(J2, robot.jacobian(q))
    # both fingers are robot links now: the right one is set by the left one's joint
    assert {"finger_l", "finger_r"} <= set(robot.link_names)
    fr = robot.frames(q, ["finger_l", "finger_r"])
    gap = (fr["finger_l"][:, :3, 3] - fr["finger_r"][:, :3, 3]).norm(dim=-1)
    torch.testing.assert_close(gap, 0.02 + 2 * q[:, 3], atol=1e-15, rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mimic_chain_on_cuda_matches_cpu(tmp_path, dtype):
    robot = robots.load(write(tmp_path, ARM), ee_link="finger_r")
    q = uniform_q(robot, 32, seed=3).to(dtype)
    tol = 1e-12 if dtype == F64 else 1e-5
    T, J = robot.fk_and_jacobian(q.cuda())
    assert T.is_cuda and J.is_cuda and T.dtype == J.dtype == dtype
    torch.testing.assert_close(T.cpu(), robot.fk(q), atol=tol, rtol=0)
    torch.testing.assert_close(J.cpu(), robot.jacobian(q), atol=tol, rtol=0)
    fr = robot.frames(q.cuda(), "finger_l")["finger_l"]
    torch.testing.assert_close(fr.cpu(), robot.frames(q, "finger_l")["finger_l"], atol=tol, rtol=0)


def test_mimics_of_mimics_compose(tmp_path):
    """m1 = 2 q + 0.1, m2 = 3 m1 - 0.2 = 6 q + 0.1: the tip turns by q + m1 + m2 = 9 q + 0.2."""
    text = urdf("m", ["a", "b", "c", "d"], [
        joint("j0", "a", "b"),
        joint("m1", "b", "c", limit=(-0.1, 0.1), extra='<mimic joint="j0" multiplier="2" offset="0.1"/>'),
        joint("m2", "c", "d", limit=None, extra='<mimic joint="m1" multiplier="3" offset="-0.2"/>')])
    robot = robots.load(write(tmp_path, text), ee_link="d")  # the mimics' own limits do not matter
    assert robot.joint_names == ("j0",)
    q = torch.linspace(-2.5, 2.5, 11, dtype=F64)[:, None]
    torch.testing.assert_close(robot.fk(q), planar(9 * q + 0.2, [(0.0, 0.0)]), atol=1e-14, rtol=0)
    torch.testing.assert_close(robot.jacobian(q)[:, 5, 0], torch.full((11,), 9.0, dtype=F64), atol=4e-15, rtol=0)


@pytest.mark.parametrize("mimic, match", [
    ('<mimic joint="nowhere"/>', "mimics 'nowhere', which is no joint of the file"),
    ('<mimic joint="j1"/>', r"mimic joints form a cycle: j0 -> j1 -> j0"),
])
def test_bad_mimics_on_the_chain(tmp_path, mimic, match):
    text = urdf("m", ["a", "b", "c"], [joint("j0", "a", "b", extra=mimic),
                                       joint("j1", "b", "c", extra='<mimic joint="j0"/>')])
    with pytest.raises(ValueError, match=match):
        robots.load(write(tmp_path, text), ee_link="c")


# ------------------------------------------------------------------------------------ what the file holds
@pytest.mark.parametrize("wrap", [
    lambda t: "\n\n\n" + '<?xml version="1.0"?>\n' + t,                              # pybullet's biped2d
    lambda t: "<!-- generated -->\n" + '<?xml version="1.0" encoding="utf-8"?>\n' + t,
    lambda t: "\ufeff" + '<?xml version="1.0"?>' + t,                                    # a byte-order mark
    lambda t: t.replace('<robot name="arm"', '<robot name="arm" xmlns="http://www.ros.org"'),
    lambda t: t.replace('<robot name="arm"', '<robot name="arm" xmlns:xacro="http://www.ros.org/wiki/xacro"'),
])
def test_preambles_and_namespaces_read_as_the_plain_file(tmp_path, wrap):
    plain = robots.load(write(tmp_path, ARM, "plain.urdf"))
    robot = robots.load(write(tmp_path, wrap(ARM)))
    assert (robot.name, robot.joint_names, robot.ee_link, robot.link_names) == \
        (plain.name, plain.joint_names, plain.ee_link, plain.link_names)
    q = uniform_q(robot, 5)
    assert torch.equal(robot.fk(q), plain.fk(q))


def test_a_directory_gets_its_own_message(tmp_path):
    (tmp_path / "urdf").mkdir()
    write(tmp_path / "urdf", ARM, "arm.urdf")
    with pytest.raises(ValueError, match=r"is a directory; pass the path of a URDF or MJCF file; description "
                                         r"files in it: arm\.urdf"):
        robots.load(tmp_path / "urdf")
    with pytest.raises(ValueError, match="is a directory.*holds no .urdf or .xml file"):
        robots.load(tmp_path / "urdf" / "..")  # tmp_path itself: no description file
    with pytest.raises(FileNotFoundError, match="no such description file"):
        robots.load(tmp_path / "urdf" / "none.urdf")


def test_no_movable_joint_is_refused(tmp_path):
    text = urdf("table", ["top", "leg"], [joint("fix", "top", "leg", "fixed", xyz="0 0 -0.5")])
    with pytest.raises(ValueError, match=r"has no movable joint \(2 link\(s\), 1 fixed joint\(s\)\): there is "
                                         r"no robot to load"):
        robots.load(write(tmp_path, text))
    with pytest.raises(ValueError, match=r"chain from the root link 'top' to ee_link 'leg' has no movable joint"):
        robots.load(write(tmp_path, text), ee_link="leg")
    with pytest.raises(ValueError, match="to ee_link 'panda_link0' has no movable joint"):
        robots.load("panda").with_ee_link("panda_link0")


# ------------------------------------------------------------------------------------------------- SRDF
SRDF = """<?xml version="1.0"?>
<robot name="arm">
  <group name="arm"><chain base_link="base" tip_link="l3"/></group>
  {ee}
</robot>
"""


def test_srdf_end_effector(tmp_path):
    path = write(tmp_path, ARM)
    with_ee = write(tmp_path, SRDF.format(ee='<end_effector name="hand" parent_link="hand" group="arm"/>'), "a.srdf")
    robot = robots.load(path, srdf=with_ee)
    assert robot.ee_link == "hand" and "a.srdf" in robot.ee_link_reason
    chain_only = write(tmp_path, SRDF.format(ee=""), "b.srdf")
    assert robots.load(path, srdf=chain_only).ee_link == "l3"
    assert robots.load(path, srdf=with_ee, ee_link="tcp").ee_link == "tcp"  # ee_link wins
    other = write(tmp_path, SRDF.format(ee="").replace('tip_link="l3"', 'tip_link="flange"'), "c.srdf")
    with pytest.raises(ValueError, match=r"names no end effector .* \(named: 'flange'\); pass ee_link="):
        robots.load(path, srdf=other)
    with pytest.raises(ValueError, match="srdf .*missing.srdf' does not exist"):
        robots.load(path, srdf=tmp_path / "missing.srdf")


# ------------------------------------------------------------------- URDFs that ship with pip packages
def pybullet_files():
    try:
        import pybullet_data
    except ImportError:
        return {}
    root = pybullet_data.getDataPath()
    return {"pybullet_data/" + os.path.relpath(p, root): p
            for p in sorted(glob.glob(os.path.join(root, "**", "*.urdf"), recursive=True))}


def erd_files():
    try:
        files = importlib.metadata.files("example-robot-data") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {"example-robot-data/" + str(f).split("/robots/", 1)[1]: str(f.locate())
            for f in files if str(f).endswith(".urdf")}


PACKAGED = {**pybullet_files(), **erd_files()}

# Every arm among them: (default end effector, robot joints). Checked against Pinocchio below.
ARMS = {
    "pybullet_data/franka_panda/panda.urdf": ("panda_grasptarget", 7),
    "pybullet_data/kuka_iiwa/model.urdf": ("lbr_iiwa_link_7", 7),
    "pybullet_data/kuka_iiwa/model_for_sdf.urdf": ("lbr_iiwa_link_7", 7),
    "pybullet_data/kuka_iiwa/model_free_base.urdf": ("lbr_iiwa_link_7", 7),
    "pybullet_data/kuka_iiwa/model_vr_limits.urdf": ("lbr_iiwa_link_7", 7),
    "pybullet_data/xarm/xarm6_robot.urdf": ("link6", 6),
    "pybullet_data/xarm/xarm6_robot_white.urdf": ("link6", 6),
    "pybullet_data/xarm/xarm6_with_gripper.urdf": ("xarm_gripper_base_link", 6),
    "example-robot-data/panda_description/urdf/panda.urdf": ("panda_hand_tcp", 7),
    "example-robot-data/panda_description/urdf/panda_collision.urdf": ("panda_hand_tcp", 7),
    "example-robot-data/ur_description/urdf/ur3_robot.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur3_joint_limited_robot.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur3_gripper.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur5_robot.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur5_joint_limited_robot.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur5_gripper.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur10_robot.urdf": ("ee_link", 6),
    "example-robot-data/ur_description/urdf/ur10_joint_limited_robot.urdf": ("ee_link", 6),
    "example-robot-data/xarm_description/urdf/xarm7.urdf": ("link_eef", 7),
    "example-robot-data/z1_description/urdf/z1.urdf": ("gripperStator", 6),
    "example-robot-data/b1_description/urdf/b1-z1.urdf": ("gripperStator", 6),
    "example-robot-data/kinova_description/robots/kinova.urdf": ("j2s6s200_end_effector", 6),
    "example-robot-data/anymal_b_simple_description/robots/anymal-kinova.urdf": ("j2s6s200_end_effector", 6),
    "example-robot-data/so_arm_description/urdf/so100.urdf": ("gripper", 5),
    "example-robot-data/so_arm_description/urdf/so101.urdf": ("gripper_frame_link", 5),
    "example-robot-data/baxter_description/urdf/baxter.urdf": ("right_gripper", 7),
    "example-robot-data/pr2_description/urdf/pr2.urdf": ("r_gripper_tool_frame", 8),
    "example-robot-data/talos_data/robots/talos_left_arm.urdf": ("wrist_left_ft_tool_link", 6),
    "example-robot-data/talos_data/robots/talos_full_v2.urdf": ("wrist_left_ft_tool_link", 9),
    "example-robot-data/tiago_description/robots/tiago.urdf": ("hand_grasping_frame", 8),
    "example-robot-data/tiago_description/robots/tiago_dual.urdf": ("hand_left_grasping_frame", 8),
    "example-robot-data/tiago_description/robots/tiago_no_hand.urdf": ("wrist_ft_tool_link", 8),
    "example-robot-data/tiago_pro_description/robots/tiago_pro.urdf": ("arm_left_tool_link", 8),
    "example-robot-data/romeo_description/urdf/romeo.urdf": ("l_gripper", 8),
    "example-robot-data/borinot_description/urdf/borinot_flying_arm_2.urdf": ("flying_arm_2__ee", 2),
    "example-robot-data/hextilt_description/urdf/hextilt_flying_arm_5.urdf": ("flying_arm_5__gripper", 5),
}

# Files refused on purpose, with the reason (none of them is a usable robot as written).
REFUSED = {
    "pybullet_data/bicycle/bike.urdf": "expected 3 numbers, got '0.07, 0, -0.69'",          # commas
    "pybullet_data/biped/biped2d_pybullet.urdf": "expected 1 numbers, got '-1.57.'",
    "pybullet_data/husky/husky.urdf": r"got '\$\(optenv",                                     # xacro left in
    "pybullet_data/humanoid/humanoid.urdf": "malformed XML",                                 # text after </robot>
    "pybullet_data/quadruped/microtaur/microtaur.urdf": "expected 3 numbers, got '-3.14159 1.57079 0 0'",
    "pybullet_data/spherical_joint_limit.urdf": "type 'spherical' is not supported",
    "pybullet_data/torus_deform.urdf": "has no <link>",                                      # a soft body
    "pybullet_data/cube_no_rotation.urdf": "limit lower=1.0 must be below upper=-1.0",       # every joint
    "example-robot-data/ur_description/urdf/ur3.urdf": "has no <link>",                      # an empty xacro output
    "example-robot-data/double_pendulum_description/urdf/double_pendulum.urdf": "lower=0.0 must be below upper=0.0",
    "example-robot-data/double_pendulum_description/urdf/double_pendulum_simple.urdf": "lower=0.0 must be below",
}

# Mimic joints on the chain, followed here and by Pinocchio (buildModelFromUrdf(..., mimic=True)).
MIMIC_CHAINS = {
    "pybullet_data/franka_panda/panda.urdf": "panda_rightfinger",
    "pybullet_data/xarm/xarm6_with_gripper.urdf": "right_finger",
    "example-robot-data/pr2_description/urdf/pr2.urdf": "r_gripper_r_finger_tip_link",
    "example-robot-data/tiago_pro_description/robots/tiago_pro.urdf": "gripper_left_fingertip_left_link",
}


def packaged(key):
    if key not in PACKAGED:
        pytest.skip(f"{key.split('/')[0]} is not installed")
    return PACKAGED[key]


def pinocchio_frames(path, robot, q):
    """Pinocchio's poses ``{link: (n, 4, 4)}`` of ``robot.link_names`` relative to the base link at ``q``
    (robot joints set by name; mimic joints followed by Pinocchio; other joints at their neutral value).

    Pinocchio 4.1 refuses some mimic joints whose driver comes later in the tree (Talos, Romeo); those
    files are read without mimics then, which is exact when no mimic joint moves a robot link."""
    pin = pytest.importorskip("pinocchio")
    try:
        model = pin.buildModelFromUrdf(path, mimic=True)
    except ValueError:
        desc = robot.description
        assert not any(desc.joint(n).mimic for lk in robot.link_names for n in
                       (j.name for j in desc.path_joints(lk) if j.movable)), path
        model = pin.buildModelFromUrdf(path, mimic=False)
    data = model.createData()
    frame = {lk: model.getFrameId(lk, pin.FrameType.BODY) for lk in robot.link_names}
    out = {lk: [] for lk in robot.link_names}
    for row in q.tolist():
        cfg = pin.neutral(model)
        for name, v in zip(robot.joint_names, row):
            jm = model.joints[model.getJointId(name)]
            cfg[jm.idx_q:jm.idx_q + jm.nq] = [math.cos(v), math.sin(v)] if jm.nq == 2 else [v]
        pin.framesForwardKinematics(model, data, cfg)
        base_inv = data.oMf[frame[robot.base_link]].inverse()
        for lk in robot.link_names:
            out[lk].append(torch.tensor((base_inv * data.oMf[frame[lk]]).homogeneous))
    return {lk: torch.stack(v) for lk, v in out.items()}


def assert_matches_pinocchio(path, robot, n=8, seed=0, tol=1e-13):
    """Every robot link's pose agrees with Pinocchio's to ``tol`` (measured worst: 9.2e-16 over all)."""
    q = uniform_q(robot, n, seed)
    ref = pinocchio_frames(path, robot, q)
    got = robot.frames(q)
    for lk in robot.link_names:
        torch.testing.assert_close(got[lk], ref[lk], atol=tol, rtol=0, msg=lambda m: f"{lk}: {m}")


@pytest.mark.parametrize("key", sorted(ARMS))
def test_packaged_arms_load_with_their_tool_frame_and_match_pinocchio(key):
    path = packaged(key)
    robot = robots.load(path)
    assert (robot.ee_link, robot.dof) == ARMS[key]
    assert not any(is_finger_joint(robot.description.joint(n)) for n in robot.joint_names)
    assert_matches_pinocchio(path, robot)


@pytest.mark.parametrize("key", sorted(MIMIC_CHAINS))
def test_packaged_mimic_chains_match_pinocchio(key):
    path = packaged(key)
    robot = robots.load(path, ee_link=MIMIC_CHAINS[key])
    chain = [j for j in robot.description.path_joints(robot.ee_link) if j.movable]
    assert any(j.mimic is not None for j in chain) and all(j.mimic is None for j in
                                                          map(robot.description.joint, robot.joint_names))
    assert_matches_pinocchio(path, robot)


def test_every_packaged_urdf_loads_and_matches_pinocchio_or_is_refused_for_its_reason():
    """All URDFs of pybullet_data and example-robot-data: a description without movable joints is refused
    with the one message, the ones in REFUSED with theirs, and every other loads with its default end
    effector and agrees with Pinocchio on every robot link."""
    if not PACKAGED:
        pytest.skip("neither pybullet nor example-robot-data is installed")
    pytest.importorskip("pinocchio")
    loaded = 0
    for key, path in PACKAGED.items():
        try:
            robot = robots.load(path)
        except ValueError as e:
            reason = REFUSED.get(key, "has no movable joint")
            assert reason == "has no movable joint" or key in REFUSED, (key, str(e))
            assert re.search(reason, str(e)), (key, str(e))
            continue
        assert key not in REFUSED, key
        assert_matches_pinocchio(path, robot, n=4)
        loaded += 1
    assert loaded >= 60, loaded


def test_packaged_srdf_end_effectors():
    path = packaged("example-robot-data/panda_description/urdf/panda.urdf")
    srdf = Path(path).parents[1] / "srdf" / "panda.srdf"
    assert robots.load(path, srdf=srdf).ee_link == "panda_hand_tcp"
    # the SRDF's end effector is the gripper's moving jaw: its joint is then the robot's 7th
    path = packaged("example-robot-data/z1_description/urdf/z1.urdf")
    robot = robots.load(path, srdf=Path(path).parents[1] / "srdf" / "z1.srdf")
    assert robot.ee_link == "gripperMover" and robot.dof == 7 and robot.joint_names[-1] == "jointGripper"
    assert_matches_pinocchio(path, robot)
