"""Models of a robot's configuration: joints inside the limits by construction, the end-effector pose by
forward kinematics, for every built-in robot (PoseFlow(robot.manifold, robot=robot) + PoseSampler)."""

from __future__ import annotations


import pytest
import torch
from torch import nn

import posegen as pg
from posegen.rotations import rotation_angle

robots = pytest.importorskip("posegen.robots")
pytest.importorskip("pytorch_kinematics")

ROBOTS = ["panda", "ur5e", "iiwa14"]


def joint_model(robot, std=1.0, seed=0, dtype=torch.float32):
    """A joint model with a random (far from uniform) field, as a trained one would be."""
    torch.manual_seed(seed)
    flow = pg.PoseFlow(robot.manifold, hidden=32, depth=2, robot=robot, solver={"method": "rk4", "steps": 8})
    nn.init.normal_(flow.net.out.weight, std=std)
    return flow.to(dtype)


@pytest.mark.parametrize("name", ROBOTS)
def test_samples_are_robot_states_inside_the_limits_and_fk_consistent(name, tmp_path):
    robot = robots.load(name)
    flow = joint_model(robot, std=3.0)
    flow.save(tmp_path / "model.pt")
    sampler = pg.PoseSampler.from_checkpoint(tmp_path / "model.pt", device="cpu")
    assert sampler.robot is not None and sampler.joint_names == robot.joint_names
    out = sampler.sample(2000, seed=0)
    q = out["joints"]
    assert q.shape == (2000, robot.dof) and q.dtype == torch.float32
    assert out["position"].shape == (2000, 3) and out["quat"].shape == (2000, 4)
    # inside the limits without rejection or clamping
    assert out["acceptance_rate"] == 1.0 and out["n_drawn"] == 2000
    assert robot.within_limits(q.double()).all()
    # the pose is the forward kinematics of the joints, to float32 round-off
    pos64, quat64 = robot.pose(q.double())
    assert (out["position"].double() - pos64).norm(dim=-1).max() <= 1e-5
    assert torch.rad2deg(rotation_angle(out["quat"].double(), quat64)).max() <= 1e-3
    # a random field is far from uniform: the joints are not just the base distribution
    lim = robot.joint_limits
    u = (q.double() - lim[:, 0]) / (lim[:, 1] - lim[:, 0])
    assert (u.mean(0) - 0.5).abs().max() > 0.03


def test_quaternion_order_seed_and_se3():
    robot = robots.load("panda")
    sampler = pg.PoseSampler(joint_model(robot), quat_order="wxyz")
    a, b = sampler.sample(16, seed=3), sampler.sample(16, seed=3)
    assert torch.equal(a["joints"], b["joints"])
    _, quat = robot.pose(a["joints"], quat_order="wxyz")
    torch.testing.assert_close(a["quat"], quat)
    T = sampler.sample_se3(4, seed=1)
    torch.testing.assert_close(T, robot.fk(sampler.sample(4, seed=1)["joints"]))


def test_score_takes_what_sample_returns():
    robot = robots.load("ur5e")
    sampler = pg.PoseSampler(joint_model(robot, dtype=torch.float64))
    out = sampler.sample(8, seed=0)
    lp = sampler.score(out)
    torch.testing.assert_close(lp, sampler.flow.log_prob(out["joints"]))


def test_older_torus_models_get_the_robots_limits_and_fk_under_other_names():
    robot = robots.load("panda")
    torch.manual_seed(0)
    flow = pg.PoseFlow("R3 x T7 x SO3", hidden=16, depth=2, robot=robot)
    sampler = pg.PoseSampler(flow)
    torch.testing.assert_close(sampler.joint_limits, robot.joint_limits.float())
    out = sampler.sample(64, seed=0)
    assert robot.within_limits(out["joints"].double(), atol=1e-5).all()
    assert {"position", "quat", "fk_position", "fk_quat"} <= set(out)
    torch.testing.assert_close(out["fk_position"], robot.pose(out["joints"])[0])


def test_joint_limits_by_robot_name_is_kept_as_an_alias():
    flow = pg.PoseFlow("T7", hidden=8, depth=1)
    lim = pg.PoseSampler(flow, joint_limits="panda").joint_limits
    torch.testing.assert_close(lim.double(), robots.load("panda").joint_limits)
    with pytest.raises(ValueError, match="joint_limits must be None, a robot"):
        pg.PoseSampler(flow, joint_limits="nao")


def test_a_robot_that_does_not_match_the_manifold_is_refused():
    flow = pg.PoseFlow(robots.load("ur5e").manifold, hidden=8, depth=1)
    with pytest.raises(ValueError, match="'panda' has 7 joints but .* has 6 joint coordinates"):
        pg.PoseSampler(flow, robot="panda")
    with pytest.raises(TypeError, match="robot must be"):
        pg.PoseFlow("T2", robot=42)


def test_reachability_of_sampled_grasp_poses():
    """A pose model (R3 x SO3) with a robot: reachable poses come from FK of joints inside the limits; a pose
    2 m away is not reachable; the answer is per pose, never an exception."""
    robot = robots.load("panda")
    sampler = pg.PoseSampler(pg.PoseFlow("R3 x SO3", hidden=8, depth=1), robot="panda")
    g = torch.Generator().manual_seed(0)
    lim = robot.joint_limits
    q = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(6, 7, generator=g, dtype=torch.float64)
    pos, quat = robot.pose(q)
    pos[-1] = torch.tensor([2.0, 0.0, 0.5], dtype=torch.float64)
    res = sampler.reachable(pos, quat, n_starts=16)
    assert res["reachable"][:-1].sum() >= 4 and not res["reachable"][-1]
    ok = res["reachable"]
    assert robot.within_limits(res["joints"]).all()
    fk_pos, _ = robot.pose(res["joints"][ok])
    assert (fk_pos - pos[ok]).norm(dim=-1).max() <= 1e-3
    with pytest.raises(ValueError, match="needs a robot"):
        pg.PoseSampler(pg.PoseFlow("R3 x SO3", hidden=8, depth=1)).reachable(pos, quat)
