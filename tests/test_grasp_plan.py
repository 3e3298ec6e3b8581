"""Grasp -> reach -> plan (posegen.planning.grasp, posegen.planning.grasp_reach, examples/grasp_and_plan.py).

References are independent of the code under test: the URDFs' own fixed-joint numbers and link frames
(``panda_hand_tcp`` 0.1034 m along ``panda_hand``; the iiwa flange 0.045 m along ``iiwa_link_7``), the grasp
convention of posegen.grasps.gripper (closing direction ``x`` = ``panda_hand``'s ``y``), brute-force sphere
distances, and the exact box-against-surface gripper test.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("trimesh")
pytest.importorskip("scipy")

from posegen import grasps, robots  # noqa: E402
from posegen.planning.grasp import (  # noqa: E402
    GRIPPER_TOLERANCE, GraspChecker, GripperMount, approach_offset, ee_from_grasp, ee_targets, grasp_world,
    grasps_in_base, gripper_links, gripper_spheres, mounted_sphere_table, place_on_table,
)
from posegen.planning.grasp_reach import approach_clear, plan_grasp, reach_grasps  # noqa: E402
from posegen.robots.ik import solve_ik  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POS_TOL, ROT_TOL = 1e-3, 1e-2   # the brief's 1 mm / 0.01 rad


def _rot_z(a: float) -> np.ndarray:
    T = np.eye(4)
    T[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return T


def _trans_z(d: float) -> np.ndarray:
    T = np.eye(4)
    T[2, 3] = d
    return T


def _rot_angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Angle (rad) of ``Ra^T Rb`` for ``(n, 3, 3)`` stacks, via atan2 (stable near 0)."""
    D = np.einsum("nji,njk->nik", Ra, Rb)
    skew = np.stack([D[:, 2, 1] - D[:, 1, 2], D[:, 0, 2] - D[:, 2, 0], D[:, 1, 0] - D[:, 0, 1]], -1)
    return np.arctan2(np.linalg.norm(skew, axis=-1) / 2, (np.trace(D, axis1=1, axis2=2) - 1) / 2)


@pytest.fixture(scope="module")
def mug():
    return grasps.make_objects(1, seed=0, kinds=["mug"])[0][0]


@pytest.fixture(scope="module")
def worlds(mug):
    return {}


def _world(worlds, mug, name):
    if name not in worlds:
        w = grasp_world(name, mug, place_on_table(mug, (0.5, 0.1), yaw=0.7))
        cand = grasps.sample_antipodal(mug, 24, support=w.support, seed=1)
        lp = torch.linspace(-3.0, 3.0, 24, dtype=torch.float64)[torch.randperm(24, generator=torch.Generator()
                                                                                .manual_seed(0))]
        worlds[name] = (w, cand.transforms, lp, reach_grasps(w, cand.transforms, lp, n_ik=4, seed=0))
    return worlds[name]


# ------------------------------------------------------------------------------------------- frames
def test_panda_ee_from_grasp_matches_the_urdf_tcp_and_the_acronym_frame():
    robot = robots.load("panda")
    got = ee_from_grasp(robot, GripperMount("panda_hand", _rot_z(math.pi / 2))).numpy()
    # panda_hand_tcp = panda_hand + 0.1034 m along z (panda.urdf), the grasp frame = panda_hand turned +90 deg
    np.testing.assert_allclose(got, _trans_z(-0.1034) @ _rot_z(math.pi / 2), atol=1e-12)


def test_iiwa_ee_from_grasp_matches_the_flange_of_the_urdf():
    robot = robots.load("iiwa14")
    got = ee_from_grasp(robot, GripperMount("iiwa_link_ee_kuka", _rot_z(math.pi / 2))).numpy()
    # iiwa_link_ee (the IK link) = iiwa_link_7 + 0.045 m along z, turned -90 deg about y; the flange
    # iiwa_link_ee_kuka = iiwa_link_7 + 0.045 m along z, same axes (rpy pi, pi, pi is the identity)
    Ry = np.eye(4)
    Ry[:3, :3] = [[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    np.testing.assert_allclose(got, np.linalg.inv(Ry) @ _rot_z(math.pi / 2), atol=1e-12)


def test_place_on_table_puts_the_lowest_point_on_the_table(mug):
    T = place_on_table(mug, (0.4, -0.2), yaw=1.1, table_z=0.3).numpy()
    v = np.asarray(mug.mesh.vertices) @ T[:3, :3].T + T[:3, 3]
    assert v[:, 2].min() == pytest.approx(0.3, abs=1e-12)
    np.testing.assert_allclose(T[:2, 3], (0.4, -0.2))


def test_ee_targets_compose_object_pose_grasp_and_mount():
    robot = robots.load("panda")
    mount = GripperMount("panda_hand", _rot_z(math.pi / 2))
    g = torch.Generator().manual_seed(0)
    q = robot.manifold.sample_base(5, generator=g, dtype=torch.float64)
    T_b_g = robot.frames(q, ["panda_hand"])["panda_hand"].double() @ torch.as_tensor(_rot_z(math.pi / 2))
    T_b_o = torch.as_tensor(_rot_z(0.3) @ _trans_z(0.2))
    T_o_g = torch.linalg.inv(T_b_o) @ T_b_g
    x = ee_targets(grasps_in_base(T_o_g, T_b_o), robot, mount)
    pos, quat = robot.pose(q, "xyzw")
    np.testing.assert_allclose(x[:, :3].numpy(), pos.double().numpy(), atol=1e-9)
    dots = (x[:, 3:] * quat.double()).sum(-1).abs()       # q and -q are one rotation
    np.testing.assert_allclose(dots.numpy(), 1.0, atol=1e-9)


# ------------------------------------------------------------------------------------------- goals
@pytest.mark.parametrize("name", ["panda", "iiwa14"])
def test_goals_put_the_gripper_at_the_grasp(worlds, mug, name):
    w, T_o_g, _, reach = _world(worlds, mug, name)
    assert len(reach) >= 3, reach.counts
    q = reach.q_grasp
    # independent: the URDF's link frames and the grasp convention, not ee_targets / ee_from_grasp
    if name == "panda":
        F = robots.load("panda").frames(q, ["panda_hand"])["panda_hand"].double().numpy()
        fk = F @ _rot_z(math.pi / 2)
    else:
        F = robots.load("iiwa14").frames(q, ["iiwa_link_7"])["iiwa_link_7"].double().numpy()
        fk = F @ _trans_z(0.045) @ _rot_z(math.pi / 2)
    want = w.object_pose.numpy() @ T_o_g[reach.index].numpy()
    assert np.linalg.norm(fk[:, :3, 3] - want[:, :3, 3], axis=-1).max() < POS_TOL
    assert _rot_angle(fk[:, :3, :3], want[:, :3, :3]).max() < ROT_TOL
    np.testing.assert_allclose(reach.grasps.numpy(), want, atol=1e-12)
    if name == "panda":  # the TCP of the URDF sits between the pads: 0.1034 m along the grasp's z
        tcp = robots.load("panda").fk(q).double().numpy()
        assert np.linalg.norm(tcp[:, :3, 3] - (want @ [0, 0, 0.1034, 1])[:, :3], axis=-1).max() < POS_TOL
        # the closing direction (grasp x) is panda_hand's y, along which the fingers move
        assert np.abs(np.einsum("ni,ni->n", F[:, :3, 1], want[:, :3, 0]) - 1).max() < ROT_TOL


@pytest.mark.parametrize("name", ["panda", "iiwa14"])
def test_goals_are_valid_and_ranked(worlds, mug, name):
    w, _, lp, reach = _world(worlds, mug, name)
    assert bool(w.grasp_checker.is_valid(reach.q_grasp).all())
    assert bool(w.checker.is_valid(reach.q_pregrasp).all())
    assert bool(w.robot.within_limits(reach.q_grasp).all())
    # the open gripper at the goal, exactly: clear of the object and above the table
    F = w.robot.frames(reach.q_grasp, [w.mount.link])[w.mount.link].double() @ torch.as_tensor(
        w.mount.link_from_grasp)
    T = (torch.linalg.inv(w.object_pose) @ F).numpy()
    assert not grasps.gripper_collides(T, grasps.PANDA, w.collider, support=w.support).any()
    np.testing.assert_array_equal(reach.log_prob.numpy(), lp[reach.index].numpy())
    assert bool((reach.log_prob[:-1] >= reach.log_prob[1:]).all())
    c = reach.counts
    assert c["candidates"] == 24 and c["candidates"] >= c["gripper"] >= c["reachable"] >= c["collision_free"] \
        >= c["approach"] == len(reach)


@pytest.mark.parametrize("name", ["panda", "iiwa14"])
def test_object_check_agrees_with_all_pairs(worlds, mug, name):
    """The broad phase of GraspChecker.object_free against brute-force sphere distances, near the goals."""
    w, _, _, reach = _world(worlds, mug, name)
    g = torch.Generator().manual_seed(3)
    goals = reach.q_grasp[:6]
    scale = torch.tensor([0.05, 0.15, 0.3, 0.5], dtype=torch.float64).repeat_interleave(6 * len(goals))[:, None]
    q = goals.repeat(24, 1) + scale * torch.randn(24 * len(goals), w.robot.dof, generator=g, dtype=torch.float64)
    m = w.checker.model
    arm = torch.tensor([lk not in w.grasp_checker.exclude for lk in m.links])[m.link_index]
    d = torch.stack([(torch.cdist(c, w.target.centers) - w.target.radii - m.radii[:, None]).amin(-1)
                     for c in m.sphere_centers(q)])                                     # (B, S): every pair
    want_all, want_arm = (d.amin(-1) >= 0), (d[:, arm].amin(-1) >= 0)
    n_arm, n_all = int((~want_arm).sum()), int((~want_all).sum())
    assert 0 < n_arm < n_all < len(q), (n_arm, n_all)             # arm hits, gripper-only hits and misses occur
    assert torch.equal(w.checker.object_free(q), want_all)
    assert torch.equal(w.grasp_checker.object_free(q), want_arm)


def test_approach_check_agrees_with_a_loop_and_catches_a_push_through_the_object(worlds, mug):
    w, _, _, reach = _world(worlds, mug, "panda")
    q_goal = reach.q_grasp[:4]
    deep = approach_offset(reach.grasps[:4], -0.06)          # 6 cm further along the approach: into the mug
    sol = solve_ik(w.robot, ee_targets(deep, w.robot, w.mount), q_goal, max_iters=100, pos_tol=1e-4, rot_tol=1e-3)
    assert bool(sol.success.all())
    q_from = torch.cat([reach.q_pregrasp[:4], q_goal])
    q_to = torch.cat([q_goal, sol.joints.double()])
    want = []
    for a, b in zip(q_from, q_to):          # reference: one segment at a time, every 0.025 rad
        n = int(torch.ceil((b - a).abs().max() / 0.025))
        qs = torch.stack([a + (i / n) * (b - a) for i in range(1, n + 1)])
        F = w.robot.frames(qs, ["panda_hand"])["panda_hand"].double() @ torch.as_tensor(_rot_z(math.pi / 2))
        T = (torch.linalg.inv(w.object_pose) @ F).numpy()
        want.append(bool(w.grasp_checker.is_valid(qs).all())
                    and not grasps.gripper_collides(T, grasps.PANDA, w.collider, support=w.support).any())
    assert want == [True] * 4 + [False] * 4
    assert approach_clear(w, q_from, q_to, 0.025, tolerance=1.0).tolist() == want
    # straightness: the TCP (panda_hand_tcp of the URDF) against the line between its ends, per segment
    dev = []
    for a, b in zip(reach.q_pregrasp[:4], q_goal):
        n = int(torch.ceil((b - a).abs().max() / 0.025))
        qs = torch.stack([a + (i / n) * (b - a) for i in range(n + 1)])
        p = w.robot.fk(qs).double()[:, :3, 3].numpy()
        u = (p[-1] - p[0]) / np.linalg.norm(p[-1] - p[0])
        d = p - p[0]
        dev.append(np.linalg.norm(d - np.outer(d @ u, u), axis=-1).max())
    dev = np.array(dev)
    assert 0 < dev.max() < 0.01, dev
    tol = float(np.median(dev))
    got = approach_clear(w, reach.q_pregrasp[:4], q_goal, 0.025, tolerance=tol)
    assert got.tolist() == (dev <= tol).tolist()


def test_mounted_gripper_spheres_lie_in_the_gripper_boxes():
    centers, radii, err = gripper_spheres("panda", 0.005)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(64, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    pts = (centers.numpy()[:, None] + radii.numpy()[:, None, None] * u).reshape(-1, 3)   # on every sphere
    inside = np.zeros(len(pts), dtype=bool)
    for b in grasps.PANDA.boxes():   # the union of the open gripper's boxes, grown by 0.5 mm of round-off room
        inside |= (np.abs((pts - b.center) @ b.R) <= b.half + 5e-4).all(-1)
    assert inside.all() and 0 < err < 0.01
    # the numbers the module docstring states
    assert (len(radii), round(err, 4)) == (348, 0.0075)
    _, coarse, err_coarse = gripper_spheres("panda", GRIPPER_TOLERANCE)
    assert (GRIPPER_TOLERANCE, len(coarse), round(err_coarse, 4)) == (0.01, 70, 0.0133)
    robot = robots.load("iiwa14")
    mount = GripperMount("iiwa_link_ee_kuka", _rot_z(math.pi / 2))
    table = mounted_sphere_table(robot, mount)
    assert gripper_links(robot, mount, table) == ("iiwa_link_ee_kuka",)
    checker = robots.CollisionChecker(robot, [], spheres=table)
    assert bool(checker.is_valid(robots.ready_configuration(robot)))   # the hand does not touch the wrist there


def test_no_surviving_grasp_is_an_empty_result_not_an_error(worlds, mug):
    w, _, _, _ = _world(worlds, mug, "panda")
    inside = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    inside[:, 2, 3] = -0.1034 + 0.03        # the TCP in the middle of the mug: the palm and fingers cut it
    reach = reach_grasps(w, inside, torch.zeros(3), n_ik=2)
    assert len(reach) == 0 and reach.counts == {"candidates": 3, "gripper": 0, "reachable": 0, "collision_free": 0,
                                                "approach": 0}
    planned = plan_grasp(w, reach)
    assert not planned.solved and planned.rank is None and planned.results == []


def test_bad_inputs_are_refused(worlds, mug):
    w, T_o_g, lp, _ = _world(worlds, mug, "panda")
    with pytest.raises(ValueError, match="rigid"):
        GripperMount("panda_hand", np.diag([1.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="movable joint"):
        ee_from_grasp(w.robot, GripperMount("panda_link3", np.eye(4)))
    with pytest.raises(ValueError, match=r"\(N, 4, 4\)"):
        reach_grasps(w, T_o_g[:, :3])
    bad = T_o_g.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        reach_grasps(w, bad)
    skew = T_o_g.clone()
    skew[3, :3, 0] *= 1.5
    with pytest.raises(ValueError, match=r"grasps: 1 of 24 are not rigid transforms .*; first: transform 3,"):
        reach_grasps(w, skew)
    with pytest.raises(ValueError, match="object_pose"):
        grasps_in_base(T_o_g, torch.eye(4)[None].repeat(2, 1, 1))
    with pytest.raises(ValueError, match="log_prob"):
        reach_grasps(w, T_o_g, lp[:3])
    with pytest.raises(ValueError, match="n_ik"):
        reach_grasps(w, T_o_g, n_ik=1)
    with pytest.raises(ValueError, match="resolution"):
        reach_grasps(w, T_o_g, resolution=0.0)
    with pytest.raises(ValueError, match="approach_tolerance"):
        reach_grasps(w, T_o_g, approach_tolerance=float("nan"))
    with pytest.raises(ValueError, match="tries"):
        plan_grasp(w, worlds["panda"][3], tries=0)
    reach = worlds["panda"][3]
    with pytest.raises(ValueError, match="keep must be"):
        reach.select(torch.ones(len(reach) + 1, dtype=torch.bool), "physics")
    kept = reach.select(torch.arange(len(reach)) % 2 == 0, "physics", 1.5)
    assert kept.counts["physics"] == len(kept) == (len(reach) + 1) // 2
    torch.testing.assert_close(kept.q_grasp, reach.q_grasp[::2])
    with pytest.raises(ValueError, match="exclude"):
        GraspChecker(w.robot, w.scene, w.target, model=w.checker.model, exclude=("no_such_link",))


# ------------------------------------------------------------------------------------------- the example
def _example():
    spec = importlib.util.spec_from_file_location("grasp_and_plan", ROOT / "examples" / "grasp_and_plan.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("robot, extra", [("panda", ["--physics"]), ("iiwa14", [])])
def test_example_runs_end_to_end(robot, extra, capsys):
    pytest.importorskip("ompl")
    out = _example().main(["--robot", robot, "--grasps", "24", "--n-ik", "4", "--time-limit", "20", *extra])
    text = capsys.readouterr().out
    assert out["solved"], text
    if extra:   # the physics stage ran on the goals and is reported
        c = out["counts"]
        assert "physics" in text and 0 < out["reach"].counts["physics"] <= c["approach"], text
    path, w = torch.as_tensor(out["path"]), out["world"]
    assert bool(w.checker.is_valid(torch.as_tensor(out["path"][:-1])).all())       # the planned part
    torch.testing.assert_close(path[-1], out["reach"].q_grasp[out["rank"]])
    assert "approach" in text and "RRT-Connect" in text


@pytest.mark.slow
def test_example_ranks_a_grasp_model_by_density(tmp_path, mug, capsys):
    pytest.importorskip("ompl")
    from posegen.samplers import GraspSampler

    cand = grasps.sample_antipodal(mug, 256, seed=0)
    model = GraspSampler(points=64, hidden=32, depth=2, encoder_dim=16, encoder_hidden=32)
    model.fit([mug], [cand.transforms], steps=30, batch_size=64, warmup=5)
    path = model.save(tmp_path / "grasps.pt")
    out = _example().main(["--grasp-model", str(path), "--grasps", "16", "--n-ik", "4"])
    assert "GraspSampler from" in capsys.readouterr().out
    T, lp, reach = out["grasps"], out["log_prob"], out["reach"]
    assert T.shape == (16, 4, 4) and reach.counts["candidates"] == 16
    torch.testing.assert_close(lp, GraspSampler.load(path).log_prob(mug, T))      # the model's own density
    torch.testing.assert_close(reach.log_prob, lp[reach.index])
    assert bool((reach.log_prob[:-1] >= reach.log_prob[1:]).all())
