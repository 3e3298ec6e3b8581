"""IK: the projected DLS solver (posegen.robots.ik), the learned sampler (IKSampler) and ``posegen ik``.

Targets come from FK of seeded joints inside the limits, so they are reachable; solver tests run in float64.
The sampler is trained for a few steps only (its accuracy is measured by benchmarks/ik.py, not here): the
tests check shapes, limits, seeding, errors, refinement and files.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("pytorch_kinematics")
pytest.importorskip("roma")

from posegen import robots  # noqa: E402
from posegen.robots import solve_ik  # noqa: E402
from posegen.samplers import IKSampler  # noqa: E402
from posegen.robots.ik import parse_targets, pose_errors, rotation_angle_atan2  # noqa: E402
from posegen.samplers.ik import pose_features  # noqa: E402
from posegen.rotations import pos_quat_from_se3  # noqa: E402
from posegen.rotations import convert_quat_order  # noqa: E402

ROBOTS = ("panda", "ur5e", "iiwa14")


@pytest.fixture(scope="module")
def loaded():
    return {name: robots.load(name) for name in ROBOTS}


def _targets(robot, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = robot.manifold.sample_base(n, generator=g, dtype=dtype)
    pos, quat = robot.pose(q)
    return q, torch.cat([pos, quat], -1)


@pytest.fixture(scope="module")
def tiny_sampler(loaded):
    ik = IKSampler(loaded["panda"], hidden=32, depth=2)
    return ik.fit(steps=20, batch_size=64, seed=0, device="cpu")


# ------------------------------------------------------------------------------------------- solver
@pytest.mark.parametrize("name", ROBOTS)
def test_solve_ik_converges_from_nearby_starts_inside_limits(loaded, name):
    robot = loaded[name]
    q_true, targets = _targets(robot, 32, seed=1)
    g = torch.Generator().manual_seed(2)
    lim = robot.joint_limits
    start = (q_true + 0.1 * torch.randn(q_true.shape, generator=g, dtype=torch.float64)).clamp(lim[:, 0], lim[:, 1])
    res = solve_ik(robot, targets, start, pos_tol=1e-4, rot_tol=1e-3)
    assert res.joints.shape == q_true.shape and res.success.shape == (32,)
    assert bool(robot.within_limits(res.joints).all())
    assert res.success.double().mean() >= 0.95
    # the reported errors are those of the returned joints
    pos, R = parse_targets(targets)
    _, pe, re = pose_errors(robot.fk(res.joints), pos, R)
    torch.testing.assert_close(pe, res.position_error, rtol=0, atol=1e-12)
    torch.testing.assert_close(re, res.rotation_error, rtol=0, atol=1e-12)
    assert bool((pe[res.success] < 1e-4).all()) and bool((re[res.success] < 1e-3).all())


@pytest.mark.parametrize("name", ROBOTS)
def test_solve_ik_from_random_starts_finds_many_and_stays_inside(loaded, name):
    robot = loaded[name]
    _, targets = _targets(robot, 20, seed=3)
    g = torch.Generator().manual_seed(4)
    starts = robot.manifold.sample_base((20, 8), generator=g, dtype=torch.float64)
    res = solve_ik(robot, targets, starts)
    assert res.joints.shape == (20, 8, robot.dof) and res.success.shape == (20, 8)
    assert bool(robot.within_limits(res.joints).all())
    # random starts succeed ~50-70 % of the time per robot at 60 iterations; at least one per target nearly always
    assert res.success.double().mean() > 0.3
    assert res.success.any(1).double().mean() >= 0.9


def test_solve_ik_joint_at_limit_stays_inside(loaded):
    # targets whose solution has joints exactly at their limits: the projection keeps every iterate inside
    robot = loaded["panda"]
    lim = robot.joint_limits
    q_true, _ = _targets(robot, 8, seed=5)
    q_true[:, 3] = lim[3, 1]
    q_true[:, 5] = lim[5, 0]
    pos, quat = robot.pose(q_true)
    start = (q_true + 0.05).clamp(lim[:, 0], lim[:, 1])
    res = solve_ik(robot, torch.cat([pos, quat], -1), start)
    assert bool(robot.within_limits(res.joints).all())
    assert res.success.double().mean() >= 0.75


def test_full_turn_joints_are_shifted_by_whole_turns_not_clamped(loaded):
    # the UR5e's joints span a full turn (the elbow [-pi, pi], the others [-2 pi, 2 pi]): a value outside its
    # limits moves by the fewest whole turns that bring it inside, so the pose is kept; values inside are untouched
    from posegen.robots.ik import _Box
    robot = loaded["ur5e"]
    lim = robot.joint_limits
    g = torch.Generator().manual_seed(30)
    q = (torch.rand(200, robot.dof, generator=g, dtype=torch.float64) - 0.5) * 8 * lim[:, 1]  # up to 4x the limits
    out = _Box(robot, q).project(q)
    assert bool(robot.within_limits(out).all())
    turns = (out - q) / (2 * math.pi)
    torch.testing.assert_close(turns, turns.round(), rtol=0, atol=1e-12)
    inside = (q >= lim[:, 0]) & (q <= lim[:, 1])
    assert bool((out[inside] == q[inside]).all())
    # fewest turns: one turn fewer would leave the limits (a 2 pi range admits one copy, a 4 pi range two)
    back = out - torch.sign(turns) * 2 * math.pi
    moved = turns != 0
    assert bool(((back < lim[:, 0]) | (back > lim[:, 1]))[moved].all())
    torch.testing.assert_close(robot.fk(out), robot.fk(q), rtol=0, atol=1e-9)
    # the Panda's limits span less than a turn: clamped as before
    panda = loaded["panda"]
    qp = panda.joint_limits[:, 1] + 0.3
    torch.testing.assert_close(_Box(panda, qp).project(qp[None])[0], panda.joint_limits[:, 1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["panda", "ur5e"])
def test_taking_every_step_returns_each_rows_best_iterate(loaded, name):
    # accept="always" may raise a row's cost on the way; a row that does not succeed returns its best iterate:
    # never worse than its start, and its errors are those of the returned joints
    robot = loaded[name]
    _, targets = _targets(robot, 10, seed=31)
    starts = robot.manifold.sample_base((10, 6), generator=torch.Generator().manual_seed(32), dtype=torch.float64)
    pos, R = parse_targets(targets)
    e0, _, _ = pose_errors(robot.fk(starts), pos[:, None], R[:, None])
    for accept in ("always", "decrease"):
        res = solve_ik(robot, targets, starts, max_iters=6, accept=accept, kick=0.0)
        e, pe, re = pose_errors(robot.fk(res.joints), pos[:, None], R[:, None])
        torch.testing.assert_close(pe, res.position_error, rtol=0, atol=1e-12)
        torch.testing.assert_close(re, res.rotation_error, rtol=0, atol=1e-12)
        assert bool((e.square().sum(-1) <= e0.square().sum(-1) + 1e-12).all()), accept
        assert bool(robot.within_limits(res.joints).all())


@pytest.mark.parametrize("name", ["panda", "ur5e"])
def test_chan_damping_solves_more_random_starts_than_the_refusing_rule(loaded, name):
    # the default (every step taken, damping lambda + k E) against the rule it replaced (steps refused unless
    # the cost falls by 1 %, no error damping, steps of 0.5 rad at most), same starts, 10 iterations;
    # measured (benchmarks/ik.py convergence) the gap is 10-30 points at 10 iterations, here a margin of 5
    robot = loaded[name]
    _, targets = _targets(robot, 40, seed=33)
    starts = robot.manifold.sample_base((40, 10), generator=torch.Generator().manual_seed(34), dtype=torch.float64)
    new = solve_ik(robot, targets, starts, max_iters=10).success.double().mean()
    old = solve_ik(robot, targets, starts, max_iters=10, accept="decrease", error_damping=0.0, max_step=0.5,
                   damping=1e-3).success.double().mean()
    assert new >= old + 0.05, (float(new), float(old))


def test_step_rule_options_are_checked(loaded):
    robot = loaded["panda"]
    q, targets = _targets(robot, 2, seed=35)
    with pytest.raises(ValueError, match=r"accept must be one of \['always', 'decrease'\], got 'sometimes'"):
        solve_ik(robot, targets, q, accept="sometimes")
    with pytest.raises(ValueError, match="error_damping must be >= 0, got -0.1"):
        solve_ik(robot, targets, q, error_damping=-0.1)


def test_kicks_are_seeded_and_return_the_best_iterate(loaded):
    robot = loaded["panda"]
    _, targets = _targets(robot, 10, seed=14)
    starts = robot.manifold.sample_base((10, 6), generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    a = solve_ik(robot, targets, starts, seed=3)
    b = solve_ik(robot, targets, starts, seed=3)
    torch.testing.assert_close(a.joints, b.joints, rtol=0, atol=0)
    off = solve_ik(robot, targets, starts, kick=0.0)
    assert bool(robot.within_limits(a.joints).all())
    # errors are those of the returned joints (the best iterate, not the last kick)
    pos, R = parse_targets(targets)
    _, pe, re = pose_errors(robot.fk(a.joints), pos[:, None], R[:, None])
    torch.testing.assert_close(pe, a.position_error, rtol=0, atol=1e-12)
    assert a.success.sum() >= off.success.sum() - 2
    with pytest.raises(ValueError, match="kick must be in"):
        solve_ik(robot, targets, starts, kick=2.0)


@pytest.mark.parametrize("name", ["panda", "ur5e"])
def test_need_stops_a_target_once_it_has_its_solutions_and_changes_no_row_before(loaded, name):
    # without kicks every row's iterates depend on that row alone, so a run with need= must follow the full run
    # row by row until its target has need successes: the same successes (to rounding: batched kernels of other
    # sizes differ in the last bit), at least need of them
    # where the full run found that many, and no more iterations
    robot = loaded[name]
    _, targets = _targets(robot, 12, seed=16)
    starts = robot.manifold.sample_base((12, 10), generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    full = solve_ik(robot, targets, starts, kick=0.0, max_iters=40)
    part = solve_ik(robot, targets, starts, kick=0.0, max_iters=40, need=3)
    assert bool((part.success <= full.success).all())
    torch.testing.assert_close(part.joints[part.success], full.joints[part.success], rtol=0, atol=1e-12)
    enough = full.success.sum(1) >= 3
    assert bool((part.success.sum(1)[enough] >= 3).all())
    assert bool((part.success.sum(1)[~enough] == full.success.sum(1)[~enough]).all())
    assert bool((part.iterations <= full.iterations).all()) and part.iterations.sum() < full.iterations.sum()
    # every returned row is inside the limits and carries the errors of its joints
    assert bool(robot.within_limits(part.joints).all())
    pos, R = parse_targets(targets)
    _, pe, _ = pose_errors(robot.fk(part.joints), pos[:, None], R[:, None])
    torch.testing.assert_close(pe, part.position_error, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="need must be a positive integer"):
        solve_ik(robot, targets, starts, need=0)


def test_unreachable_target_is_reported_not_raised(loaded):
    robot = loaded["panda"]
    _, targets = _targets(robot, 3, seed=6)
    targets[1, :3] = torch.tensor([5.0, 0.0, 0.0])  # 5 m away: far outside the workspace
    starts = robot.manifold.sample_base((3, 4), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    res = solve_ik(robot, targets, starts, max_iters=30)
    assert not bool(res.success[1].any())
    assert bool(res.success[0].any()) or bool(res.success[2].any())
    assert res.joints.shape == (3, 4, 7) and bool(torch.isfinite(res.joints).all())
    assert bool(robot.within_limits(res.joints).all())
    assert bool((res.position_error[1] > 3.0).all())


def test_wxyz_order_gives_the_same_solution(loaded):
    robot = loaded["ur5e"]
    q_true, targets = _targets(robot, 4, seed=8)
    wxyz = torch.cat([targets[:, :3], convert_quat_order(targets[:, 3:], "xyzw", "wxyz")], -1)
    a = solve_ik(robot, targets, q_true.clamp(-6, 6) * 0.99)
    b = solve_ik(robot, wxyz, q_true.clamp(-6, 6) * 0.99, quat_order="wxyz")
    torch.testing.assert_close(a.joints, b.joints)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 6), r"shape \(T, 7\)"),
    (torch.tensor([[0.4, 0.0, 0.5, 0.0, 0.0, 0.0, 2.0]]), "unit quaternions"),
    (torch.tensor([[0.4, 0.0, 0.5, 0.0, 0.0, 0.0, float("nan")]]), "NaN"),
])
def test_bad_targets_raise_one_clear_value_error(loaded, bad, match):
    with pytest.raises(ValueError, match=match):
        robot = loaded["panda"]
        solve_ik(robot, bad, robot.joint_limits.mean(1).expand(bad.shape[0], 7))


def test_bad_quat_order_and_q_init(loaded):
    robot = loaded["panda"]
    q_true, targets = _targets(robot, 2, seed=9)
    with pytest.raises(ValueError, match="quaternion order"):
        solve_ik(robot, targets, q_true, quat_order="XYZW")
    with pytest.raises(ValueError, match="outside the limits"):
        solve_ik(robot, targets, q_true + 10.0)
    with pytest.raises(ValueError, match="2 targets but q_init has 3"):
        solve_ik(robot, targets, torch.cat([q_true, q_true[:1]]))


def test_rotation_angle_atan2_is_accurate_near_zero_and_pi():
    import roma

    for angle in (1e-7, 0.3, math.pi - 1e-6):
        R = roma.rotvec_to_rotmat(torch.tensor([0.0, angle, 0.0], dtype=torch.float64))
        assert abs(rotation_angle_atan2(R).item() - angle) < 1e-9


def test_pose_errors_rotation_vector_at_every_angle():
    """The residual's rotation vector equals roma's (quaternion route) at angles from 1e-9 rad to pi - 1e-9,
    across the near-pi branch's threshold, and the errors are the position distance and the atan2 angle."""
    import roma

    g = torch.Generator().manual_seed(0)
    n = 3000
    angle = torch.cat([10 ** (-9 + 9 * torch.rand(n, generator=g, dtype=torch.float64)),   # 1e-9 .. 1
                       math.pi * torch.rand(n, generator=g, dtype=torch.float64),
                       math.pi - 10 ** (-9 + 8.5 * torch.rand(n, generator=g, dtype=torch.float64)),
                       torch.tensor([0.0, math.pi - 0.1, math.pi], dtype=torch.float64)])
    axis = torch.nn.functional.normalize(torch.randn(angle.shape[0], 3, generator=g, dtype=torch.float64), dim=-1)
    R_err = roma.rotvec_to_rotmat(axis * angle[:, None])
    R = roma.random_rotmat(angle.shape[0], dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64).repeat(angle.shape[0], 1, 1)
    T[:, :3, :3] = R_err.transpose(-1, -2) @ R            # so that R T_R^T = R_err
    T[:, :3, 3] = torch.randn(angle.shape[0], 3, generator=g, dtype=torch.float64)
    pos = torch.randn(angle.shape[0], 3, generator=g, dtype=torch.float64)
    e, pe, re = pose_errors(T, pos, R)
    R_in = R @ T[:, :3, :3].transpose(-1, -2)
    ref = roma.rotmat_to_rotvec(R_in)
    # at pi, v and -v are the same rotation: compare as rotations there, as vectors elsewhere
    far = angle < math.pi - 1e-6
    torch.testing.assert_close(e[far, 3:], ref[far], atol=1e-12, rtol=0)
    torch.testing.assert_close(roma.rotvec_to_rotmat(e[:, 3:]), R_in, atol=1e-12, rtol=0)
    torch.testing.assert_close(e[:, :3], pos - T[:, :3, 3], atol=0, rtol=0)
    torch.testing.assert_close(pe, (pos - T[:, :3, 3]).norm(dim=-1), atol=0, rtol=0)
    torch.testing.assert_close(re, rotation_angle_atan2(R_in), atol=0, rtol=0)
    torch.testing.assert_close(e[:, 3:].norm(dim=-1), re, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------- sampler
def test_pose_features_do_not_depend_on_the_quaternion_sign():
    pos = torch.tensor([[0.3, 0.1, 0.5]], dtype=torch.float64)
    quat = torch.nn.functional.normalize(torch.tensor([[0.1, -0.4, 0.2, 0.8]], dtype=torch.float64), dim=-1)
    a = pose_features(*parse_targets(torch.cat([pos, quat], -1)))
    b = pose_features(*parse_targets(torch.cat([pos, -quat], -1)))
    torch.testing.assert_close(a, b)
    assert a.shape == (1, 12)


def test_sampler_shapes_limits_seeding(loaded, tiny_sampler):
    robot = loaded["panda"]
    _, targets = _targets(robot, 3, seed=10)
    out = tiny_sampler.sample(targets, 5, seed=0)
    assert set(out) == {"joints"} and out["joints"].shape == (3, 5, 7)
    assert bool(robot.within_limits(out["joints"]).all())
    torch.testing.assert_close(out["joints"], tiny_sampler.sample(targets, 5, seed=0)["joints"])
    assert not torch.equal(out["joints"], tiny_sampler.sample(targets, 5, seed=1)["joints"])
    assert tiny_sampler.sample(targets[0], 2, seed=0)["joints"].shape == (1, 2, 7)


def test_sampler_refine_reports_errors_and_success(loaded, tiny_sampler):
    robot = loaded["panda"]
    _, targets = _targets(robot, 4, seed=11)
    targets[2, :3] = torch.tensor([0.0, 0.0, 3.0])  # unreachable: reported, not raised
    out = tiny_sampler.sample(targets, 6, seed=0, refine=True, max_iters=60)
    for key in ("joints", "position_error", "rotation_error", "success"):
        assert key in out
    assert out["joints"].shape == (4, 6, 7) and out["success"].shape == (4, 6)
    assert bool(robot.within_limits(out["joints"]).all())
    assert not bool(out["success"][2].any())
    ok = out["success"]
    assert ok.any()  # an untrained sampler's draws are random starts: DLS still solves some
    assert bool((out["position_error"][ok] < 1e-3).all()) and bool((out["rotation_error"][ok] < 1e-2).all())


def test_bf16_draws_are_refined_to_exact_solutions_and_raw_draws_stay_float32(loaded, tiny_sampler):
    robot = loaded["panda"]
    _, targets = _targets(robot, 4, seed=36)
    for bf16 in (True, False):
        out = tiny_sampler.sample(targets, 4, seed=5, refine=True, bf16_draws=bf16)
        assert bool(robot.within_limits(out["joints"]).all())
        ok = out["success"]
        assert ok.double().mean() >= 0.9
        assert bool((out["position_error"][ok] < 1e-3).all()) and bool((out["rotation_error"][ok] < 1e-2).all())
    # raw samples keep the model's float32 network whatever the CPU: the same numbers as an explicit fp32 draw
    cond = tiny_sampler.conditions(targets).repeat_interleave(3, 0)
    raw = tiny_sampler.sample(targets, 3, seed=6)["joints"]
    with torch.no_grad():
        ref = tiny_sampler.draw_joints(cond, 6, bf16=False).reshape(4, 3, 7)
    torch.testing.assert_close(raw, ref, rtol=0, atol=0)


def test_failed_refinements_are_redrawn_and_errors_stay_those_of_the_returned_joints(loaded, tiny_sampler):
    robot = loaded["panda"]
    _, targets = _targets(robot, 6, seed=12)
    once = tiny_sampler.sample(targets, 8, seed=3, refine=True, max_iters=20, retries=0)
    more = tiny_sampler.sample(targets, 8, seed=3, refine=True, max_iters=20, retries=3)
    ok = once["success"]
    # a retried row keeps the raw draw of its first try; fixed rows move up past those still failing, so the
    # raw rows of each target are the same, in another order where a retry succeeded
    assert torch.equal(once["raw_joints"][ok], more["raw_joints"][ok])
    assert torch.equal(once["raw_joints"].sort(1).values, more["raw_joints"].sort(1).values)
    assert int(more["success"].sum()) >= int(once["success"].sum())
    # rows that succeeded the first time are kept as they were
    torch.testing.assert_close(more["joints"][once["success"]], once["joints"][once["success"]])
    pe, re = tiny_sampler.errors(more["joints"], targets)
    torch.testing.assert_close(pe, more["position_error"])
    assert bool(robot.within_limits(more["joints"]).all())
    with pytest.raises(ValueError, match="retries must be"):
        tiny_sampler.sample(targets, 2, refine=True, retries=-1)


def test_the_last_retry_round_starts_from_uniform_joints(loaded, tiny_sampler, monkeypatch):
    # draws that all sit near one corner of the joint box: one round of retries (the last, so from uniform starts
    # with 4x the iterations) must beat refining those draws for as many iterations as the row gets in all
    # (10 + 40), and every returned success is exact by an independent FK
    robot = loaded["panda"]
    _, targets = _targets(robot, 6, seed=18)
    lim = robot.joint_limits
    corner = (lim[:, 0] + 0.01 * (lim[:, 1] - lim[:, 0])).float()  # inside the limits in float32 too
    monkeypatch.setattr(tiny_sampler, "draw_joints", lambda cond, *a, **k: corner.expand(cond.shape[0], -1).clone())
    opts = dict(seed=0, refine=True, spare=0.0)
    long = tiny_sampler.sample(targets, 4, retries=0, max_iters=50, **opts)
    retried = tiny_sampler.sample(targets, 4, retries=1, retry_draws=2, max_iters=10, **opts)
    assert retried["success"].double().mean() >= 0.9 > long["success"].double().mean()
    pe, re = tiny_sampler.errors(retried["joints"], targets)
    ok = retried["success"]
    assert bool((pe[ok] < 1e-3).all()) and bool((re[ok] < 1e-2).all())
    assert bool(robot.within_limits(retried["joints"]).all())


def test_uniform_retry_starts_call_the_flow_once(loaded, tiny_sampler, monkeypatch):
    # retry_starts="uniform": every retry round starts from uniform joints, so the flow is called for the first
    # draw only; rows are still retried (corner draws fail), and the successes are exact by an independent FK
    robot = loaded["panda"]
    _, targets = _targets(robot, 6, seed=19)
    lim = robot.joint_limits
    corner = (lim[:, 0] + 0.01 * (lim[:, 1] - lim[:, 0])).float()
    calls = []

    def draw(cond, *a, **k):
        calls.append(cond.shape[0])
        return corner.expand(cond.shape[0], -1).clone()

    monkeypatch.setattr(tiny_sampler, "draw_joints", draw)
    out = tiny_sampler.sample(targets, 4, seed=0, refine=True, spare=0.0, retries=3, retry_starts="uniform")
    assert calls == [24]
    assert out["success"].double().mean() >= 0.9
    pe, re = tiny_sampler.errors(out["joints"], targets)
    ok = out["success"]
    assert bool((pe[ok] < 1e-3).all()) and bool((re[ok] < 1e-2).all())
    calls.clear()
    tiny_sampler.sample(targets, 4, seed=0, refine=True, spare=0.0, retries=3)
    assert len(calls) > 1  # the default draws fresh starts from the flow in the rounds before the last
    with pytest.raises(ValueError, match=r"retry_starts must be one of \['draws', 'uniform'\], got 'grid'"):
        tiny_sampler.sample(targets, 4, refine=True, retry_starts="grid")


def test_sampler_near_a_seed_keeps_the_closest(loaded, tiny_sampler):
    robot = loaded["panda"]
    q_true, targets = _targets(robot, 2, seed=13)
    wide = tiny_sampler.sample(targets, 12, seed=4)["joints"].double()
    near = tiny_sampler.sample(targets, 3, seed=4, near=q_true, oversample=4)["joints"].double()
    assert near.shape == (2, 3, 7)
    d_wide = (wide - q_true[:, None]).norm(dim=-1).sort(1).values[:, :3]
    torch.testing.assert_close((near - q_true[:, None]).norm(dim=-1), d_wide)  # the same 12 draws, 3 closest
    out = tiny_sampler.sample(targets, 2, seed=4, near=q_true[0], refine=True, max_iters=40)
    assert out["success"].shape == (2, 2) and out["raw_joints"].shape == (2, 2, 7)
    with pytest.raises(ValueError, match="near must have shape"):
        tiny_sampler.sample(targets, 2, near=torch.zeros(3, 7))


def test_sampler_with_a_collision_checker_ranks_collision_free_rows_first(loaded, tiny_sampler):
    from posegen.robots import Ball, CollisionChecker

    robot = loaded["panda"]
    # a ball in the middle of the workspace: some of the untrained sampler's draws hit it, some do not
    checker = CollisionChecker(robot, [Ball(center=(0.3, 0.0, 0.5), radius=0.25)], self_collision=False)
    _, targets = _targets(robot, 4, seed=21)
    plain = tiny_sampler.sample(targets, 16, seed=5, spare=1.0)["joints"]
    plain_free = checker.collision_free(plain.double())
    assert 0 < float(plain_free.double().mean()) < 1  # the scene matters for these draws
    out = tiny_sampler.sample(targets, 16, seed=5, checker=checker, spare=1.0)
    free = out["collision_free"]
    torch.testing.assert_close(free, checker.collision_free(out["joints"].double()))
    # per target: collision-free rows first, and at least as many as among 16 plain draws
    assert bool((free.int().diff(dim=1) <= 0).all())
    assert bool((free.sum(1) >= plain_free.sum(1)).all())
    ref = tiny_sampler.sample(targets, 4, seed=5, checker=checker, refine=True, max_iters=10)
    valid = ref["success"] & ref["collision_free"]
    torch.testing.assert_close(ref["collision_free"], checker.collision_free(ref["joints"].double()))
    assert bool((valid.int().diff(dim=1) <= 0).all())
    with pytest.raises(ValueError, match="checker is for ur5e"):
        tiny_sampler.sample(targets, 2, checker=CollisionChecker(loaded["ur5e"]))


@pytest.mark.parametrize("refine", [False, True])
def test_sampler_ranks_by_density_and_clearance(loaded, tiny_sampler, refine):
    from posegen.robots import Ball, CollisionChecker

    robot = loaded["panda"]
    _, targets = _targets(robot, 3, seed=31)
    opts = dict(refine=True, max_iters=10, retries=1) if refine else {}
    # density: the rows of each validity tier in falling model density; with spares, the most probable kept
    out = tiny_sampler.sample(targets, 6, seed=2, rank="density", spare=1.0, **opts)
    lp = tiny_sampler.log_prob(out["joints"].float(), targets).double()
    tier = 2 * (~out["success"]).int() if refine else torch.zeros_like(lp, dtype=torch.int32)
    key = tier * 1e9 - lp  # tiers first, then density
    assert bool((key.diff(dim=1) >= -1e-6 * lp.abs().max()).all())
    if not refine:  # the same 12 draws as without a ranking (spare=1): the 6 most probable of them, best first
        every = tiny_sampler.sample(targets, 12, seed=2, spare=0.0)["joints"]
        lp_all = tiny_sampler.log_prob(every, targets).double()
        assert float(lp_all.std(1).min()) > 1e-4  # apart beyond float32 rounding (~1e-5 here), even untrained
        top = lp_all.argsort(1, descending=True)[:, :6]
        torch.testing.assert_close(out["joints"], every.gather(1, top[..., None].expand(-1, -1, 7)), rtol=0, atol=0)
    # clearance: collision-free first, then farthest from the obstacles first
    checker = CollisionChecker(robot, [Ball(center=(0.3, 0.0, 0.5), radius=0.25)], self_collision=False)
    out = tiny_sampler.sample(targets, 8, seed=5, rank="clearance", checker=checker, spare=0.5, **opts)
    d = checker.clearance(out["joints"].reshape(-1, 7).double()).reshape(3, 8)
    valid = out["collision_free"] & out["success"] if refine else out["collision_free"]
    for t in range(3):
        torch.testing.assert_close(valid[t], valid[t].sort(descending=True).values)
        for rows in (valid[t], ~valid[t]):
            if refine:  # within a tier of the same success (valid rows are all successes)
                rows = rows & out["success"][t]
            assert bool((d[t][rows].diff() <= 1e-9).all())


def test_sampler_rank_needs_what_it_ranks_by(tiny_sampler, loaded):
    _, targets = _targets(loaded["panda"], 1, seed=1)
    with pytest.raises(ValueError, match=r"rank must be one of \['clearance', 'density', 'near'\]"):
        tiny_sampler.sample(targets, 2, rank="distance")
    with pytest.raises(ValueError, match="near="):
        tiny_sampler.sample(targets, 2, rank="near")
    with pytest.raises(ValueError, match="checker="):
        tiny_sampler.sample(targets, 2, rank="clearance")


def test_sampler_bad_input(tiny_sampler):
    with pytest.raises(ValueError, match=r"shape \(T, 7\)"):
        tiny_sampler.sample(torch.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="unit quaternions"):
        tiny_sampler.sample(torch.tensor([[0.3, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5]]), 2)
    with pytest.raises(ValueError, match="quaternion order"):
        tiny_sampler.sample(torch.tensor([[0.3, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]]), 2, quat_order="zyxw")
    with pytest.raises(ValueError, match="n_per_target"):
        tiny_sampler.sample(torch.tensor([[0.3, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]]), 0)


def test_sampler_log_prob_and_save_load(loaded, tiny_sampler, tmp_path):
    robot = loaded["panda"]
    q_true, targets = _targets(robot, 3, seed=12)
    lp = tiny_sampler.log_prob(q_true, targets)
    assert lp.shape == (3,) and bool(torch.isfinite(lp).all())
    assert tiny_sampler.log_prob(q_true[:, None].expand(3, 2, 7), targets).shape == (3, 2)
    path = tiny_sampler.save(tmp_path / "ik.pt")
    again = IKSampler.load(path)
    assert again.robot.name == "panda" and again.training["steps"] == 20
    torch.testing.assert_close(again.sample(targets, 4, seed=3)["joints"],
                               tiny_sampler.sample(targets, 4, seed=3)["joints"])
    torch.testing.assert_close(again.log_prob(q_true, targets), lp)


def test_log_prob_scores_joints_on_a_limit_at_the_margin(loaded, tiny_sampler):
    from posegen.manifolds.interval import LIMIT_MARGIN

    robot = loaded["panda"]
    q_true, targets = _targets(robot, 3, seed=13)
    lim = robot.joint_limits
    on = q_true.clone()
    on[:, 3] = lim[3, 0]  # a refined solution often ends on a limit
    on[1, 5] = lim[5, 1]
    inside = on.clone()
    inside[:, 3] = lim[3, 0] + LIMIT_MARGIN * (lim[3, 1] - lim[3, 0])
    inside[1, 5] = lim[5, 1] - LIMIT_MARGIN * (lim[5, 1] - lim[5, 0])
    torch.testing.assert_close(tiny_sampler.log_prob(on, targets), tiny_sampler.log_prob(inside, targets))
    # rows off every limit are scored where they are: the flow's own log-density
    flow_lp = tiny_sampler.flow.log_prob(q_true.float(), condition=tiny_sampler.conditions(targets))
    torch.testing.assert_close(tiny_sampler.log_prob(q_true, targets), flow_lp)


def test_fit_takes_a_robot_name_and_a_time_budget():
    ik = IKSampler("iiwa14", hidden=16, depth=1)
    ik.fit(max_minutes=0.02, batch_size=32, seed=1, n_samples=256, log_every=1)
    assert ik.training["steps"] >= 1 and ik.training["seconds"] < 30
    with pytest.raises(ValueError, match="steps= or max_minutes="):
        ik.fit()


def test_fit_again_continues_with_the_same_standardisation(loaded):
    ik = IKSampler(loaded["panda"], hidden=16, depth=1)
    ik.fit(steps=3, batch_size=32, seed=0, n_samples=512)
    loc = ik.flow.cond_loc.clone()
    ik.fit(steps=2, batch_size=32, seed=5, n_samples=512)
    torch.testing.assert_close(ik.flow.cond_loc, loc, rtol=0, atol=0)
    assert ik.training["steps"] == 5 and ik.training["samples_seen"] == 5 * 32


def test_fit_learns_something(loaded):
    # 150 steps of a small net: the loss falls below the untrained level (2 x dof: |z1 - z0|^2 for z ~ N(0, I))
    ik = IKSampler(loaded["panda"], hidden=64, depth=2)
    ik.fit(steps=150, batch_size=256, lr=3e-3, seed=0, log_every=50)
    hist = ik.training["history"]
    assert hist[-1]["loss"] < hist[0]["loss"] and hist[-1]["loss"] < 2 * 7


# ------------------------------------------------------------------------------------------- CLI
def test_cli_train_and_sample(tmp_path, capsys):
    from posegen.cli.main import main

    out = tmp_path / "run"
    assert main(["ik", "train", "--robot", "panda", "--out", str(out), "--steps", "5", "--hidden", "16",
                 "--depth", "1", "--batch-size", "32"]) == 0
    ck = out / "ik.pt"
    assert ck.is_file()
    capsys.readouterr()
    assert main(["ik", "sample", str(ck), "--pose", "0.4,0,0.5,1,0,0,0", "-n", "3", "--refine"]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines[0].startswith("target,panda_joint1") and lines[0].endswith("success")
    assert len(lines) == 4
    # wxyz and a file
    assert main(["ik", "sample", str(ck), "--pose", "0.4,0,0.5,0,1,0,0", "--quat-order", "wxyz", "-n", "2",
                 "--out", str(tmp_path / "q.npy")]) == 0
    import numpy as np

    assert np.load(tmp_path / "q.npy").shape == (2, 8)
    # targets from a table (header optional) and a seed configuration: the rows kept are the draws closest to it
    (tmp_path / "t.csv").write_text("x,y,z,qx,qy,qz,qw\n0.4,0,0.5,1,0,0,0\n0.3,0.1,0.6,0,1,0,0\n")
    seed_q = "0,0,0,-1.5,0,1.5,0.8"
    assert main(["ik", "sample", str(ck), "--targets", str(tmp_path / "t.csv"), "-n", "2", "--near", seed_q,
                 "--out", str(tmp_path / "near.npy")]) == 0
    near = np.load(tmp_path / "near.npy")
    assert near.shape == (4, 8) and list(near[:, 0]) == [0, 0, 1, 1]
    assert main(["ik", "sample", str(ck), "--targets", str(tmp_path / "t.csv"), "-n", "8",
                 "--out", str(tmp_path / "all.npy")]) == 0
    seed_t = torch.tensor([float(v) for v in seed_q.split(",")], dtype=torch.float64)
    d_near = (torch.from_numpy(near[:, 1:]) - seed_t).norm(dim=-1)
    d_all = (torch.from_numpy(np.load(tmp_path / "all.npy")[:, 1:]) - seed_t).norm(dim=-1)
    assert d_near.mean() < d_all.mean()
    assert main(["ik", "sample", str(ck), "--targets", str(tmp_path / "t.csv"), "-n", "3", "--rank", "density",
                 "--out", str(tmp_path / "dens.csv")]) == 0
    assert len((tmp_path / "dens.csv").read_text().splitlines()) == 1 + 6
    # bad input: one line, usage exit code
    assert main(["ik", "sample", str(ck), "--pose", "0.4,0,0.5,1,0,0"]) == 2
    assert main(["ik", "sample", str(ck), "--pose", "a,b,c,1,0,0,0"]) == 2
    assert main(["ik", "train", "--robot", "panda", "--out", str(out), "--steps", "0"]) == 2
    assert main(["ik", "sample", str(ck), "--pose", "0.4,0,0.5,2,0,0,0"]) == 2
    assert main(["ik", "sample", str(ck), "--pose", "0.4,0,0.5,1,0,0,0", "--quat-order", "abcd"]) == 2
    assert main(["ik", "sample", str(ck), "--pose", "0.4,0,0.5,1,0,0,0", "--temperature", "0"]) == 2
    err = capsys.readouterr().err
    assert "unit quaternions" in err and "7 numbers" in err and "quaternion order" in err
    assert "--temperature must be a positive" in err
    (tmp_path / "six.csv").write_text("0.4,0,0.5,1,0,0\n")
    for bad, msg in ((["--pose", "0.4,0,0.5,1,0,0,0", "--targets", str(tmp_path / "t.csv")], "one of the two"),
                     ([], "one of the two"),
                     (["--targets", str(tmp_path / "missing.csv")], "does not exist"),
                     (["--targets", str(tmp_path / "six.csv")], "expected 7 columns"),
                     (["--pose", "0.4,0,0.5,1,0,0,0", "--near", "0,0,0"], "must have shape (..., 7)"),
                     (["--pose", "0.4,0,0.5,1,0,0,0", "--near", "a,b"], "--near"),
                     (["--pose", "0.4,0,0.5,1,0,0,0", "--rank", "near"], "needs a seed configuration"),
                     (["--pose", "0.4,0,0.5,1,0,0,0", "--out", str(tmp_path / "q.txt")], ".csv or .npy")):
        assert main(["ik", "sample", str(ck), *bad]) == 2, bad
        assert msg in capsys.readouterr().err, bad
    assert not (tmp_path / "q.txt").exists()


@pytest.mark.parametrize("name", ROBOTS)
def test_pretrained_weights_load_with_no_training_and_missing_ones_are_named(name):
    """Every built-in robot ships fully trained weights whose refined draws reach FK targets (checked by FK)."""
    ik = IKSampler.pretrained(name)
    assert ik.robot.name == name and ik.training["steps"] == ik.training["of_steps"] > 0
    q = ik.robot.manifold.sample_base(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    T = ik.robot.fk(q)
    targets = torch.cat(pos_quat_from_se3(T, "xyzw"), -1)
    out = ik.sample(targets, 4, seed=0, refine=True)
    pos, rot = ik.errors(out["joints"], targets)                     # (3, 4) each
    assert bool(out["success"].all()) and float(pos.max()) < 1e-3 and float(rot.max()) < 1e-2
    with pytest.raises(ValueError, match=r"no pretrained IK weights for 'nobot'; shipped: \[.*'panda'.*\]"):
        IKSampler.pretrained("nobot")


def test_refine_options_fill_unset_arguments_and_travel_with_the_weights(loaded, tmp_path, monkeypatch):
    from posegen.samplers.ik import PRETRAINED_REFINE_OPTIONS, REFINE_DEFAULTS
    ur5e, panda = IKSampler.pretrained("ur5e"), IKSampler.pretrained("panda")
    assert ur5e.refine_options == PRETRAINED_REFINE_OPTIONS["ur5e"] and panda.refine_options == {}
    seen = []
    real = IKSampler._retry

    def spy(self, out, cond, tgt, seed, draw, refine_opts, checker, retries, k, score, uniform=False):
        seen.append((out["joints"].shape, k, uniform))
        return real(self, out, cond, tgt, seed, draw, refine_opts, checker, retries, k, score, uniform=uniform)

    monkeypatch.setattr(IKSampler, "_retry", spy)
    q, targets = _targets(ur5e.robot, 2, seed=37)
    ur5e.sample(targets, 4, seed=0, refine=True)
    ur5e.sample(targets, 4, seed=0, refine=True, spare=0.5, retry_draws=2, retry_starts="draws")
    panda.sample(_targets(panda.robot, 2, seed=38)[1], 4, seed=0, refine=True)
    assert [s[1:] for s in seen] == [(8, True), (2, False), (REFINE_DEFAULTS["retry_draws"], False)]
    # saved and loaded with the weights
    path = ur5e.save(tmp_path / "ur5e.pt")
    assert IKSampler.load(path).refine_options == ur5e.refine_options
    # a bad value is refused when it is used, naming the argument
    ur5e.refine_options = {"retry_starts": "grid"}
    with pytest.raises(ValueError, match="retry_starts must be one of"):
        ur5e.sample(targets, 4, refine=True)


def test_cli_samples_the_shipped_weights_without_training(capsys):
    """``posegen ik sample --robot panda``: no checkpoint, no training step; refined rows reach the pose."""
    from posegen.cli.main import main

    assert main(["ik", "sample", "--robot", "panda", "--pose", "0.4,0,0.5,1,0,0,0", "-n", "4", "--refine",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 solutions within 1 mm and 0.01 rad" in out
    assert main(["ik", "sample", "--pose", "0.4,0,0.5,1,0,0,0"]) == 2
    assert "give a CHECKPOINT" in capsys.readouterr().err
