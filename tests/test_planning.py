"""posegen.planning: scenes and collision checkers (torch only) and the OMPL integration (skipped without ompl).

posegen.data.panda (the hand-written DH chain) is used here only as an independent oracle for TCP positions."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from posegen import PoseFlow
from posegen.data import panda
from posegen.planning.scene import Ball, Box, CollisionChecker, PandaCollisionChecker, bin_walls, table, tabletop_scene
from posegen.robots import load
from posegen.robots.collision import Capsule, ready_configuration
from posegen.samplers import PoseSampler

Q_READY = panda.Q_READY
ONE = [Capsule("panda_hand_tcp", (0.0, 0.0, 0.0), 0.01)]      # a single 1 cm sphere at the TCP


def tcp_position(q):
    return panda.fk(q)[0]


# ---------------------------------------------------------------------- scene (no OMPL needed)
def test_clearance_exact_for_one_sphere_ball_and_box():
    p = tcp_position(Q_READY)
    one = ONE
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
    for name in ("panda", "ur5e", "iiwa14"):
        robot = load(name)
        ch = CollisionChecker(robot, scene)
        assert bool(ch.is_valid(ready_configuration(robot))), name
        assert ch.joint_limits.shape == (robot.dof, 2)


def test_checker_takes_the_robot_first_and_names_the_shape():
    with pytest.raises(TypeError, match="robot first"):
        CollisionChecker([table()])
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        CollisionChecker("ur5e", [table()]).is_valid(torch.zeros(2, 7))
    with pytest.raises(TypeError, match="another robot"):
        PandaCollisionChecker([table()], robot="ur5e")


def test_planning_does_not_import_the_hand_written_panda_chain():
    import ast
    import pathlib

    import posegen.planning

    root = pathlib.Path(posegen.planning.__file__).parent
    for f in list(root.glob("*.py")) + [root.parent / "robots" / "collision.py", root.parent / "data" / "generate.py"]:
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
                assert not (node.module or "").endswith("panda") and "panda" not in names, f"{f}: {ast.dump(node)}"


def test_missing_ompl_gives_install_hint(monkeypatch):
    from posegen.planning import ompl as pompl

    monkeypatch.setitem(sys.modules, "ompl", None)   # makes `import ompl` raise ImportError
    with pytest.raises(ImportError, match=r"pip install \"posegen\[planning\]\""):
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


def ur5e_sampler(seed=0):
    torch.manual_seed(seed)
    robot = load("ur5e")
    flow = PoseFlow(robot.manifold, hidden=16, depth=2, robot=robot)
    return PoseSampler(flow, robot=robot, solver={"method": "euler", "steps": 2})


def test_sample_buffer_of_an_interval_joint_model_keeps_values_as_they_are():
    pytest.importorskip("ompl")
    from posegen.planning.ompl import SampleBuffer

    ch = CollisionChecker("ur5e", tabletop_scene())
    buf = SampleBuffer(ur5e_sampler(), checker=ch, batch_size=64, seed=0)
    assert buf.dim == 6 and torch.equal(buf.limits, ch.joint_limits)
    q = torch.from_numpy(np.stack([buf.next() for _ in range(10)]))
    assert ch.is_valid(q).all() and ch.robot.within_limits(q).all()
    # UR5e joints span [-2 pi, 2 pi]: values must not be moved by a 2 pi unwrap (which would pile them at the
    # lower limits); some drawn values lie above pi
    assert (q[:, [0, 1, 3, 4, 5]] > 0).any()


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
    for bad in (-1.0, float("nan"), "yes"):
        with pytest.raises(ValueError, match="simplify must be"):
            plan(ch, start, goal, planner="RRTConnect", simplify=bad)
    short = plan(ch, start, goal, planner="RRTConnect", time_limit=20.0, seed=0, simplify=0.2)
    assert short.solved and np.abs(short.path[-1] - goal.numpy()).max() < 1e-9
    assert np.abs(short.path[0] - np.asarray(start)).max() < 1e-9


def test_ur5e_query_through_the_same_api():
    pytest.importorskip("ompl")
    from posegen.planning.ompl import PosegenSamplerAllocator, joint_space, plan

    robot = load("ur5e")
    start = ready_configuration(robot)
    goal = start.clone()
    start[0], goal[0] = -0.8, 0.8
    mid = robot.fk(ready_configuration(robot))[:3, 3]
    ch = CollisionChecker(robot, [table(), Ball(center=mid.tolist(), radius=0.06)])
    assert ch.is_valid(torch.stack([start, goal])).all() and not ch.check_motion(start, goal)
    assert joint_space(robot).getDimension() == 6
    alloc = PosegenSamplerAllocator(ur5e_sampler(), checker=ch, batch_size=64, seed=0, uniform_fraction=0.5)
    res = plan(ch, start, goal, planner="PRM", sampler=alloc, time_limit=20.0, seed=0)
    assert res.solved, res.status
    path = torch.from_numpy(res.path)
    torch.testing.assert_close(path[-1], goal, rtol=0, atol=1e-12)
    assert ch.is_valid(path).all() and all(ch.check_motion(a, b) for a, b in zip(path[:-1], path[1:]))


@pytest.mark.parametrize("with_sampler", [False, True])
def test_grasp_goal_configs_solve_ik_for_the_checker_robot(with_sampler):
    from posegen.planning.goals import grasp_goal_configs

    class TopGrasps:
        """A stand-in grasp model: top grasps above the object, already ranked."""
        quat_order = "xyzw"

        def top_k(self, n, k, condition=None, seed=None):
            c = torch.as_tensor(condition, dtype=torch.float64)
            pos = c + torch.tensor([[0.0, 0.0, 0.05], [0.0, 0.0, 0.08], [5.0, 0.0, 0.0]], dtype=torch.float64)
            quat = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 3, dtype=torch.float64)     # z axis down
            return {"position": pos, "quat": quat, "log_prob": torch.tensor([0.0, -1.0, -2.0])}

        def se3_parts(self, *_):
            class P:
                def __init__(self, name):
                    self.name = name
            return P("position"), P("quat")

    for name in ("panda", "ur5e"):
        ch = CollisionChecker(name, [table()])
        ik = None
        if with_sampler:  # starts from a (barely trained) learned IK distribution instead of the ready pose
            from posegen.samplers import IKSampler

            ik = IKSampler(ch.robot, hidden=16, depth=1).fit(steps=3, batch_size=32, seed=0, device="cpu")
        goals = grasp_goal_configs(TopGrasps(), (0.5, 0.1, 0.05), n_candidates=3, k=3, checker=ch, seed=0,
                                   ik_sampler=ik)
        assert goals.n_candidates == 3 and goals.n_ik_success == 2 and goals.n_valid == 2, name   # 5 m: out of reach
        assert goals.q.shape == (2, ch.robot.dof) and ch.is_valid(goals.q).all()
        T = ch.robot.fk(goals.q)
        torch.testing.assert_close(T[:, :3, 3], goals.T[:, :3, 3], rtol=0, atol=2e-4)


def test_planning_takes_a_robot_in_every_form():
    from posegen.planning.ompl import _robot

    assert _robot(None).name == "panda" and _robot("ur5e").name == "ur5e"
    ur5e = _robot("ur5e")
    assert _robot(ur5e) is ur5e and _robot(ur5e.spec).joint_names == ur5e.joint_names
    with pytest.raises(TypeError, match="posegen.planning: robot must be a posegen.robots.Robot"):
        _robot(3.5)
