"""posegen.planning: the Panda collision scene (torch only) and the OMPL integration (skipped without ompl)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from posegen import PoseFlow
from posegen.data import panda
from posegen.planning.scene import Ball, Box, PandaCollisionChecker, bin_walls, table, tabletop_scene
from posegen.sampler import PoseSampler

TCP = 10          # index of panda_hand_tcp in panda.LINK_NAMES
Q_READY = panda.Q_READY


def tcp_position(q):
    return panda.fk(q)[0]


# ---------------------------------------------------------------------- scene (no OMPL needed)
def test_clearance_exact_for_one_sphere_ball_and_box():
    p = tcp_position(Q_READY)
    one = [(TCP, (0.0, 0.0, 0.0), 0.01)]             # a single 1 cm sphere at the TCP
    ball = Ball(center=(p + torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)).tolist(), radius=0.05)
    ch = PandaCollisionChecker([ball], spheres=one)
    torch.testing.assert_close(ch.clearance(Q_READY), torch.tensor(0.04, dtype=torch.float64), rtol=0, atol=1e-12)
    # box whose nearest face is 0.07 m above the TCP, and one whose inside contains the TCP (depth 0.02)
    above = Box(center=(p + torch.tensor([0.0, 0.0, 0.17], dtype=torch.float64)).tolist(), half_extents=(0.1, 0.1, 0.1))
    inside = Box(center=p.tolist(), half_extents=(0.02, 0.3, 0.3))
    torch.testing.assert_close(PandaCollisionChecker([above], spheres=one).clearance(Q_READY),
                               torch.tensor(0.06, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(PandaCollisionChecker([inside], spheres=one).clearance(Q_READY),
                               torch.tensor(-0.03, dtype=torch.float64), rtol=0, atol=1e-12)


def test_checker_flags_a_hit_and_clears_a_miss():
    p = tcp_position(Q_READY)
    hit = PandaCollisionChecker([table(), Ball(center=p.tolist(), radius=0.05)])
    miss = PandaCollisionChecker([table(), Ball(center=(0.3, 0.6, 1.2), radius=0.05)])
    assert not bool(hit.is_valid(Q_READY))
    assert bool(miss.is_valid(Q_READY))
    q = torch.stack([Q_READY, Q_READY + 0.01])
    assert hit.is_valid(q).tolist() == [False, False] and miss.is_valid(q).all()
    # a margin larger than the clearance makes the miss a hit
    c = float(miss.clearance(Q_READY))
    assert not bool(PandaCollisionChecker(miss.obstacles, margin=c + 0.01).is_valid(Q_READY))


def test_checker_joint_limits_and_counter():
    ch = PandaCollisionChecker([table()])
    bad = Q_READY.clone()
    bad[3] = 0.5                                      # q4 must be negative
    assert ch.is_valid(torch.stack([Q_READY, bad])).tolist() == [True, False]
    assert ch.n_checked == 2
    ch.reset_counter()
    assert ch.n_checked == 0


def test_hand_into_table_collides():
    # IK for a TCP 1 cm below the table top, pointing down: the fingertips are inside the table
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    from posegen.rotations import rotmat_to_quat

    q, ok, _, _ = panda.ik(torch.tensor([0.5, 0.0, -0.01], dtype=torch.float64), rotmat_to_quat(R), Q_READY,
                           iters=300, damping=0.02)
    assert bool(ok)
    ch = PandaCollisionChecker([table()])
    assert not bool(ch.is_valid(q)) and float(ch.clearance(q)) < 0


def test_check_motion_catches_an_obstacle_between_valid_ends():
    q_a = Q_READY.clone()
    q_b = Q_READY.clone()
    q_a[0], q_b[0] = -0.8, 0.8                        # swing the arm from right to left around joint 1
    mid = tcp_position(Q_READY)                       # where the TCP passes half way
    ch = PandaCollisionChecker([Ball(center=mid.tolist(), radius=0.04)])
    assert ch.is_valid(torch.stack([q_a, q_b])).all()
    assert not ch.check_motion(q_a, q_b, resolution=0.02)
    assert PandaCollisionChecker([Ball(center=(0.0, 0.0, 1.6), radius=0.04)]).check_motion(q_a, q_b)
    with pytest.raises(ValueError, match="resolution"):
        ch.check_motion(q_a, q_b, resolution=0.0)


def test_scene_errors():
    with pytest.raises(ValueError, match="fixed base"):
        PandaCollisionChecker([Ball(center=(0.0, 0.0, 0.05), radius=0.1)])
    with pytest.raises(ValueError, match="half_extents"):
        Box(center=(0, 0, 0), half_extents=(0.1, 0.0, 0.1))
    with pytest.raises(ValueError, match="radius"):
        Ball(center=(0, 0, 1), radius=-1)
    with pytest.raises(TypeError, match="Box or Ball"):
        PandaCollisionChecker(["table"])
    with pytest.raises(ValueError, match=r"\(\.\.\., 7\)"):
        PandaCollisionChecker([table()]).is_valid(torch.zeros(3, 6))


def test_example_scene_keeps_ready_pose_valid():
    scene = tabletop_scene()
    assert len(bin_walls((0.5, 0.0))) == 4
    assert bool(PandaCollisionChecker(scene).is_valid(Q_READY))


def test_missing_ompl_gives_install_hint(monkeypatch):
    from posegen.planning import ompl as pompl

    monkeypatch.setitem(sys.modules, "ompl", None)   # makes `import ompl` raise ImportError
    with pytest.raises(ImportError, match=r"pip install posegen\[planning\]"):
        pompl.require_ompl()


# ---------------------------------------------------------------------- OMPL
def joint_sampler(seed=0):
    torch.manual_seed(seed)
    flow = PoseFlow("T7", hidden=16, depth=2)
    return PoseSampler(flow, joint_limits="panda", solver={"method": "euler", "steps": 2})


def test_sample_buffer_serves_valid_in_bounds_states():
    pytest.importorskip("ompl")
    from posegen.planning.ompl import SampleBuffer

    ch = PandaCollisionChecker(tabletop_scene())
    buf = SampleBuffer(joint_sampler(), checker=ch, batch_size=64, seed=0)
    qs = np.stack([buf.next() for _ in range(40)])
    q = torch.from_numpy(qs)
    assert panda.within_limits(q).all() and ch.is_valid(q).all()
    assert buf.stats["served"] == 40 and buf.stats["refills"] >= 1
    assert buf.stats["kept"] <= buf.stats["drawn"] == 64 * buf.stats["refills"]


def test_valid_state_sampler_yields_valid_in_bounds_states():
    pytest.importorskip("ompl")
    from posegen.planning.ompl import PosegenSamplerAllocator, panda_space, require_ompl

    ob, og, _ = require_ompl()
    ch = PandaCollisionChecker(tabletop_scene())
    space = panda_space()
    ss = og.SimpleSetup(space)
    ss.setStateValidityChecker(lambda s: bool(ch.is_valid(torch.tensor([s[i] for i in range(7)]))))
    si = ss.getSpaceInformation()
    alloc = PosegenSamplerAllocator(joint_sampler(), uniform_fraction=0.25, checker=ch, batch_size=64, seed=1)
    vss = alloc(si)
    st = space.allocState()
    got = []
    for _ in range(40):
        assert vss.sample(st)
        assert si.satisfiesBounds(st) and si.isValid(st)
        got.append([st[i] for i in range(7)])
    stats = alloc.stats
    assert stats["learned"] > 0 and stats["learned"] + stats["uniform"] >= 40
    assert ch.is_valid(torch.tensor(got, dtype=torch.float64)).all()
    assert alloc.name.startswith("posegen")


def tiny_query():
    start = Q_READY.clone()
    goal = Q_READY.clone()
    start[0], goal[0] = -0.8, 0.8
    mid = tcp_position(Q_READY)
    # blocks the straight joint-space line: the planner has to go around
    return PandaCollisionChecker([table(), Ball(center=mid.tolist(), radius=0.06)]), start, goal


@pytest.mark.parametrize("which", ["uniform", "posegen"])
def test_tiny_planning_query_succeeds(which):
    pytest.importorskip("ompl")
    from posegen.planning.ompl import PosegenSamplerAllocator, plan

    ch, start, goal = tiny_query()
    assert not ch.check_motion(start, goal)
    sampler = None if which == "uniform" else PosegenSamplerAllocator(joint_sampler(), checker=ch, batch_size=64,
                                                                     seed=0, uniform_fraction=0.0)
    res = plan(ch, start, goal, planner="PRM", sampler=sampler, time_limit=20.0, seed=0)
    assert res.solved, res.status
    path = torch.from_numpy(res.path)
    torch.testing.assert_close(path[0], start, rtol=0, atol=1e-12)
    torch.testing.assert_close(path[-1], goal, rtol=0, atol=1e-12)
    assert ch.is_valid(path).all()
    assert all(ch.check_motion(a, b) for a, b in zip(path[:-1], path[1:]))
    assert res.checks > 0 and res.time_s > 0
    if which == "posegen":
        assert res.sampler_stats["learned"] > 0


def test_plan_with_several_goals_and_refusals():
    pytest.importorskip("ompl")
    from posegen.planning.ompl import PosegenSamplerAllocator, plan

    ch, start, goal = tiny_query()
    other = goal.clone()
    other[0] = 0.6
    res = plan(ch, start, torch.stack([goal, other]), planner="RRTConnect", time_limit=20.0, seed=0)
    assert res.solved
    end = torch.from_numpy(res.path[-1])
    assert min(float((end - goal).abs().max()), float((end - other).abs().max())) < 1e-9
    with pytest.raises(ValueError, match="cannot replace"):
        plan(ch, start, goal, planner="RRTConnect", sampler=PosegenSamplerAllocator(source="uniform"))
    with pytest.raises(ValueError, match="Invalid planner"):
        plan(ch, start, goal, planner="Dijkstra")
    with pytest.raises(ValueError, match="uniform_fraction"):
        PosegenSamplerAllocator(source="uniform", uniform_fraction=1.5)
