"""Full-turn joints (posegen.robots.turns): angles in the model, lifted to copies inside the limits.

Checked in float64: the model manifold, that lifting lands inside the limits on a copy of the same angle with
FK unchanged, that a uniform angle lifted is uniform on the joint's range (the law the IK sampler trains on),
and that the density correction makes ``p(theta) / copies(theta)`` integrate to 1 over the range.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("pytorch_kinematics")

from posegen import robots  # noqa: E402
from posegen.manifolds import Interval, Torus  # noqa: E402
from posegen.samplers import IKSampler  # noqa: E402
from posegen.robots.turns import FullTurns, full_turn_mask  # noqa: E402

# one joint that spans 1.6 turns (copies: 1 or 2 depending on the angle), one limited joint, one continuous
URDF = """<?xml version="1.0"?>
<robot name="turner">
  <link name="base"/><link name="a"/><link name="b"/><link name="c"/><link name="tip"/>
  <joint name="wide" type="revolute">
    <parent link="base"/><child link="a"/><origin xyz="0 0 0.3"/><axis xyz="0 0 1"/>
    <limit lower="-5.0" upper="5.0" effort="1" velocity="1"/>
  </joint>
  <joint name="narrow" type="revolute">
    <parent link="a"/><child link="b"/><origin xyz="0 0 0.2"/><axis xyz="0 1 0"/>
    <limit lower="-1.5" upper="1.5" effort="1" velocity="1"/>
  </joint>
  <joint name="free" type="continuous">
    <parent link="b"/><child link="c"/><origin xyz="0.2 0 0"/><axis xyz="1 0 0"/>
  </joint>
  <joint name="tool" type="fixed"><parent link="c"/><child link="tip"/><origin xyz="0 0.1 0"/></joint>
</robot>
"""


@pytest.fixture(scope="module")
def turner(tmp_path_factory):
    path = tmp_path_factory.mktemp("turns") / "turner.urdf"
    path.write_text(URDF)
    return robots.load(str(path))


def test_mask_and_manifold(turner):
    ft = FullTurns(turner)
    assert ft.mask.tolist() == [True, False, False]
    f = ft.manifold.factors
    assert isinstance(f[0], Torus) and f[0].dim == 1 and isinstance(f[1], Interval) and isinstance(f[2], Torus)
    ur5e = robots.load("ur5e")
    # the elbow's [-pi, pi] is a full turn too (one copy of every angle): the whole UR5e is a torus
    assert full_turn_mask(ur5e).tolist() == [True] * 6
    assert FullTurns(ur5e).manifold.spec == "T6"
    for name in ("panda", "iiwa14"):  # no joint spans a turn: the model is the robot's manifold
        r = robots.load(name)
        assert not FullTurns(r).active and FullTurns(r).manifold == r.manifold
    assert not FullTurns(ur5e, enabled=False).active


@pytest.mark.parametrize("name", ["ur5e", "turner"])
def test_lift_is_inside_a_copy_of_the_same_angle_with_the_same_fk(name, turner):
    robot = turner if name == "turner" else robots.load(name)
    ft = FullTurns(robot)
    g = torch.Generator().manual_seed(0)
    q = robot.manifold.sample_base(4000, generator=g, dtype=torch.float64)
    theta = ft.to_model(q)
    lifted = ft.lift(theta, torch.Generator().manual_seed(1))
    assert bool(robot.within_limits(lifted).all())
    turns = (lifted - q) / (2 * math.pi)
    torch.testing.assert_close(turns, turns.round(), atol=1e-9, rtol=0)
    torch.testing.assert_close(robot.fk(lifted), robot.fk(q), atol=1e-9, rtol=0)
    assert bool((lifted[:, ~ft.mask] == q[:, ~ft.mask]).all())
    # seeded: the same generator gives the same copies
    torch.testing.assert_close(ft.lift(theta, torch.Generator().manual_seed(1)), lifted)


def test_lift_of_the_wrapped_uniform_law_is_uniform(turner):
    """Uniform q -> wrap -> lift is uniform on [-5, 5] again: 20 bins, chi-square against 5 sigma."""
    ft = FullTurns(turner)
    n = 200_000
    q = turner.manifold.sample_base(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lifted = ft.lift(ft.to_model(q), torch.Generator().manual_seed(4))[:, 0]
    counts = torch.histc(lifted, bins=20, min=-5.0, max=5.0)
    expected = n / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 19 + 5 * math.sqrt(2 * 19), chi2


def test_density_correction_integrates_to_one(turner):
    """A uniform density on the angle, divided among its copies, integrates to 1 over the joint's range
    only when the copies are counted right (1 or 2 of them on [-5, 5])."""
    ft = FullTurns(turner)
    n = 200_001
    q0 = torch.linspace(-5.0, 5.0, n, dtype=torch.float64)
    q = torch.stack([q0, torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)], -1)
    theta = ft.to_model(q)
    density = torch.exp(-ft.log_copies(theta)) / (2 * math.pi)  # p(theta) uniform on the circle
    integral = float(torch.trapezoid(density, q0))
    assert abs(integral - 1.0) < 1e-3, integral
    assert set(ft.log_copies(theta).exp().round().unique().tolist()) == {1.0, 2.0}


def test_ik_sampler_on_full_turns(tmp_path):
    ik = IKSampler("ur5e", hidden=32, depth=2, full_turns=True)
    assert ik.turns.active and ik.flow.manifold == ik.turns.manifold
    ik.fit(steps=5, batch_size=64, seed=0, device="cpu")
    q_true = ik.robot.manifold.sample_base(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    pos, quat = ik.robot.pose(q_true)
    targets = torch.cat([pos, quat], -1)
    out = ik.sample(targets, 64, seed=2)["joints"]
    assert out.shape == (3, 64, 6) and bool(ik.robot.within_limits(out.double()).all())
    # both copies of the wide joints are used
    assert bool((out[..., 0] > math.pi).any()) and bool((out[..., 0] < -math.pi).any())
    torch.testing.assert_close(ik.sample(targets, 64, seed=2)["joints"], out)
    # q and its other copy in the limits score the same: the density is shared by the copies
    lp = ik.log_prob(q_true, targets)
    other = q_true.clone()
    other[:, 0] = torch.where(other[:, 0] > 0, other[:, 0] - 2 * math.pi, other[:, 0] + 2 * math.pi)
    torch.testing.assert_close(ik.log_prob(other, targets), lp, atol=1e-4, rtol=0)
    again = IKSampler.load(ik.save(tmp_path / "ur5e.pt"))
    assert again.turns.active
    torch.testing.assert_close(again.sample(targets, 8, seed=4)["joints"], ik.sample(targets, 8, seed=4)["joints"])
    old = IKSampler("ur5e", hidden=16, depth=1)  # the default: the whole interval
    assert not old.turns.active and old.flow.manifold == old.robot.manifold
    assert not IKSampler.load(old.save(tmp_path / "old.pt")).turns.active
