"""PoseSampler.sample(checker=, limit_margin=): only valid robot states come back, the acceptance rate is
reported, and a shortfall is never silent."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytorch_kinematics")

import posegen as pg  # noqa: E402
from posegen import robots  # noqa: E402
from posegen.samplers import SamplingShortfall  # noqa: E402


@pytest.fixture(scope="module")
def panda_sampler():
    panda = robots.load("panda")
    torch.manual_seed(0)
    flow = pg.PoseFlow(panda.manifold, hidden=16, depth=1, robot=panda)  # untrained: near-uniform joints
    return pg.PoseSampler(flow, solver={"method": "euler", "steps": 2})


def test_a_checker_returns_only_valid_states_and_reports_the_rate(panda_sampler):
    panda = panda_sampler.robot
    # a slab in front of the robot at arm height: many configurations pass through it
    checker = robots.CollisionChecker(panda, [robots.Box(center=(0.45, 0.0, 0.45), half_extents=(0.15, 0.6, 0.15))])
    out = panda_sampler.sample(300, seed=0, checker=checker)
    assert out["joints"].shape == (300, 7)
    assert bool(checker.is_valid(out["joints"]).all())
    plain = panda_sampler.sample(2000, seed=1)
    share = float(checker.is_valid(plain["joints"]).float().mean())
    assert 0.05 < share < 0.95  # the scene rejects a real share, so the test can fail
    assert out["acceptance_rate"] == pytest.approx(share, abs=0.08)
    assert out["n_drawn"] > 300


def test_a_margin_keeps_every_joint_inside_its_limits_by_that_much(panda_sampler):
    lim = panda_sampler.robot.joint_limits
    out = panda_sampler.sample(500, seed=2, limit_margin=0.1)
    q = out["joints"].double()
    assert bool(((q >= lim[:, 0] + 0.1) & (q <= lim[:, 1] - 0.1)).all())
    plain = panda_sampler.sample(500, seed=2)["joints"].double()
    assert not bool(((plain >= lim[:, 0] + 0.1) & (plain <= lim[:, 1] - 0.1)).all())  # the margin did something


def test_an_impossible_request_is_a_shortfall_not_a_silent_one(panda_sampler):
    # joint 4 of the Panda spans 3.0 rad: no configuration is 1.45 rad inside both of its limits, few are for 1.4
    with pytest.raises(SamplingShortfall, match="1.45 inside the limits"):
        panda_sampler.sample(50, seed=0, limit_margin=1.45)
    few = panda_sampler.sample(50, seed=0, limit_margin=1.4, allow_fewer=True, )
    assert few["joints"].shape[0] < 50 and few["acceptance_rate"] < 0.05


def test_bad_arguments_are_refused_before_any_draw(panda_sampler):
    with pytest.raises(ValueError, match="limit_margin must be"):
        panda_sampler.sample(5, limit_margin=-0.1)
    with pytest.raises(TypeError, match="checker must be"):
        panda_sampler.sample(5, checker="scene")
    ur5e = robots.CollisionChecker("ur5e", [])
    with pytest.raises(ValueError, match="checker is for ur5e"):
        panda_sampler.sample(5, checker=ur5e)
    pose = pg.PoseSampler(pg.PoseFlow(pg.manifolds.parse("R3 x SO3"), hidden=8, depth=1))
    with pytest.raises(ValueError, match="need a model of a robot's joints"):
        pose.sample(5, limit_margin=0.1)


def test_eval_reports_the_share_of_self_colliding_samples(panda_sampler):
    from posegen.cli.evaluate import robot_check

    rec = robot_check(panda_sampler.flow, {"method": "euler", "steps": 2}, n=400)
    checker = robots.CollisionChecker("panda", [])
    again = pg.PoseSampler(panda_sampler.flow, solver={"method": "euler", "steps": 2}).sample(400, seed=0)
    want = float((~checker.collision_free(again["joints"].double())).float().mean())
    assert rec["self_collision"] == pytest.approx(want) and 0.0 < rec["self_collision"] < 1.0


def test_posegen_sample_with_a_scene_writes_only_valid_states(panda_sampler, tmp_path, capsys):
    from posegen.cli import main
    from posegen.data import load_points

    model = tmp_path / "model.pt"
    panda_sampler.flow.save(model)
    scene = tmp_path / "scene.yaml"
    scene.write_text("obstacles:\n  - {type: halfspace, point: [0, 0, 0], normal: [0, 0, 1]}\n"
                     "  - {type: box, center: [0.45, 0.0, 0.45], half_extents: [0.15, 0.6, 0.15]}\n")
    out = tmp_path / "s.h5"
    assert main(["sample", str(model), "-n", "60", "-o", str(out), "--seed", "0", "--method", "euler",
                 "--solver-steps", "2", "--scene", str(scene), "--limit-margin", "0.05"]) == 0
    said = capsys.readouterr()
    assert "acceptance rate" in said.out + said.err
    q = load_points(out).points.double()
    assert q.shape == (60, 7)
    checker = robots.CollisionChecker("panda", robots.Scene.from_yaml(scene))
    lim = checker.robot.joint_limits
    assert bool(checker.is_valid(q).all()) and bool(((q >= lim[:, 0] + 0.05) & (q <= lim[:, 1] - 0.05)).all())
    bad = tmp_path / "bad.yaml"
    bad.write_text("obstacles:\n  - {type: cone, center: [0, 0, 1]}\n")
    assert main(["sample", str(model), "-n", "5", "-o", str(tmp_path / "b.h5"), "--scene", str(bad)]) == 2
    assert "cone" in capsys.readouterr().err and not (tmp_path / "b.h5").exists()
