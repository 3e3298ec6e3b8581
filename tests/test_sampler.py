"""PoseSampler: named parts, quaternion orders, joint limits, scoring, ranking, SE(3), checkpoints, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from posegen import PoseFlow
from posegen.data import panda
from posegen.samplers import PoseSampler, SamplingShortfall, manifold_parts, resolve_joint_limits, unwrap_to_limits

SOLVER = {"method": "euler", "steps": 3}    # cheap: the tests check plumbing, not accuracy


def make_flow(spec="R3 x T7 x SO3", cond_dim=0, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    flow = PoseFlow(spec, hidden=16, depth=2, cond_dim=cond_dim).to(dtype)
    # a non-trivial standardisation, so the Euclidean change of variables is exercised
    with torch.no_grad():
        for p, f in zip(flow.manifold.slices, flow.manifold.factors):
            if f.spec.startswith("R"):
                flow.loc[p] = torch.linspace(0.1, 0.3, p.stop - p.start, dtype=dtype)
                flow.scale[p] = 0.5
    return flow


# ---------------------------------------------------------------------- parts
@pytest.mark.parametrize("spec, names", [
    ("R3 x T7 x SO3", ["position", "joints", "quat"]),
    ("R3 x SO3", ["position", "quat"]),
    ("R3 x SO3^2", ["position", "quat_0", "quat_1"]),
    ("R2 x S2 x S3", ["euclidean", "sphere", "quat"]),
    ("T2 x T3", ["joints_0", "joints_1"]),
])
def test_manifold_parts_names(spec, names):
    parts = manifold_parts(spec)
    assert [p.name for p in parts] == names
    assert sum(p.columns.stop - p.columns.start for p in parts) == PoseFlow(spec, hidden=8, depth=1).manifold.coord_dim


@pytest.mark.parametrize("names, match", [
    (["a", "b"], "one name per factor"),
    (["a", "a", "b"], "unique"),
    (["points", "j", "q"], "reserved"),
])
def test_manifold_parts_bad_names(names, match):
    with pytest.raises(ValueError, match=match):
        manifold_parts("R3 x T7 x SO3", names)


def test_custom_names_are_used():
    s = PoseSampler(make_flow(), names=["p", "q", "r"], solver=SOLVER)
    out = s.sample(4, seed=0)
    assert {"p", "q", "r", "points", "acceptance_rate", "n_drawn"} == set(out)


# ---------------------------------------------------------------------- sample
@pytest.mark.parametrize("spec", ["R3 x T7 x SO3", "R3 x SO3", "T7"])
def test_sample_shapes_and_keys(spec):
    flow = make_flow(spec)
    s = PoseSampler(flow, solver=SOLVER)
    out = s.sample(5, seed=1)
    parts = manifold_parts(spec)
    for p in parts:
        assert out[p.name].shape == (5, p.columns.stop - p.columns.start)
    assert out["points"].shape == (5, flow.manifold.coord_dim)
    assert out["acceptance_rate"] == 1.0 and s.last_acceptance_rate == 1.0
    assert out["n_drawn"] == 5
    assert "log_prob" not in out                      # a CNF's likelihood is not cheap: off by default
    assert flow.manifold.check_point(s._from_caller(out["points"]), explain=True)[0]


def test_sample_zero():
    out = PoseSampler(make_flow(), joint_limits="panda", solver=SOLVER).sample(0, seed=0)
    assert out["joints"].shape == (0, 7) and out["points"].shape == (0, 14)


def test_conditional_sample_and_condition_errors():
    s = PoseSampler(make_flow("R3 x SO3", cond_dim=3), solver=SOLVER)
    assert s.sample(4, condition=[0.5, 0.0, 0.1], seed=0)["position"].shape == (4, 3)
    assert s.sample(4, condition=torch.randn(4, 3, dtype=torch.float64), seed=0)["quat"].shape == (4, 4)
    with pytest.raises(ValueError, match="conditional"):
        s.sample(4)
    with pytest.raises(ValueError, match="rows but n=4"):
        s.sample(4, condition=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="shape"):
        s.sample(4, condition=[1.0, 2.0])
    with pytest.raises(ValueError, match="unconditional"):
        PoseSampler(make_flow("R3 x SO3"), solver=SOLVER).sample(2, condition=[0.0, 0.0, 0.0])


def test_condition_cache_reuses_prepared_tensor():
    s = PoseSampler(make_flow("R3 x SO3", cond_dim=3), solver=SOLVER)
    c1 = s._condition([0.5, 0.0, 0.1])
    c2 = s._condition(torch.tensor([0.5, 0.0, 0.1]))
    assert c1 is c2 and c1.dtype == s.dtype and c1.shape == (3,)
    assert s._condition([0.5, 0.0, 0.2]) is not c1


def test_seed_reproducibility():
    s = PoseSampler(make_flow(), joint_limits="panda", solver=SOLVER)
    a, b, c = s.sample(20, seed=3), s.sample(20, seed=3), s.sample(20, seed=4)
    for k in ("points", "joints", "quat", "position"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert not torch.allclose(a["points"], c["points"])


# ---------------------------------------------------------------------- quaternion order
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_quat_order_output_and_score(dtype, tol):
    flow = make_flow("R3 x T2 x SO3", dtype=dtype)
    sx = PoseSampler(flow, quat_order="xyzw", solver=SOLVER)
    sw = PoseSampler(flow, quat_order="wxyz", solver=SOLVER)
    ox, ow = sx.sample(8, seed=5), sw.sample(8, seed=5)
    torch.testing.assert_close(ow["quat"], torch.roll(ox["quat"], 1, -1), rtol=0, atol=0)
    torch.testing.assert_close(ow["position"], ox["position"], rtol=0, atol=0)
    assert (ow["quat"][:, 0] >= 0).all()             # canonical hemisphere w >= 0 in either order
    lx, lw = sx.score(ox["points"]), sw.score(ow["points"])
    torch.testing.assert_close(lx, lw, rtol=tol, atol=tol)
    torch.testing.assert_close(sw.score(ow), lw, rtol=tol, atol=tol)          # dict == flat
    # equals the flow's own log_prob on the xyzw points
    ref = flow.log_prob(ox["points"], **SOLVER)
    torch.testing.assert_close(lx, ref, rtol=tol, atol=tol)


def test_score_accepts_unwrapped_joints_and_single_rows():
    flow = make_flow()
    s = PoseSampler(flow, joint_limits="panda", solver=SOLVER)
    out = s.sample(4, seed=0)
    lp_points = s.score(out["points"])               # wrapped joints
    lp_dict = s.score(out)                           # joints inside the limits (may differ by 2 pi)
    torch.testing.assert_close(lp_points, lp_dict, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s.score(out["points"][0]), lp_points[:1], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="lacks part"):
        s.score({"position": out["position"]})
    with pytest.raises(ValueError, match=r"shape \(N, 14\)"):
        s.score(torch.zeros(3, 13))


def test_log_prob_option():
    flow = make_flow("R3 x SO3")
    s = PoseSampler(flow, solver=SOLVER, log_prob=True)
    out = s.sample(5, seed=0)
    torch.testing.assert_close(out["log_prob"], s.score(out), rtol=1e-10, atol=1e-10)
    assert "log_prob" not in s.sample(5, seed=0, log_prob=False)
    with pytest.raises(ValueError, match="log_prob"):
        PoseSampler(flow, log_prob="yes")


# ---------------------------------------------------------------------- top_k
def test_top_k_sorted_and_consistent_with_score():
    s = PoseSampler(make_flow("R3 x SO3", cond_dim=3), solver=SOLVER, quat_order="wxyz")
    cond = [0.4, -0.1, 0.05]
    best = s.top_k(12, 6, condition=cond, seed=2)
    lp = best["log_prob"]
    assert lp.shape == (6,) and best["quat"].shape == (6, 4)
    assert (lp[:-1] >= lp[1:]).all()
    torch.testing.assert_close(s.score(best, condition=cond), lp, rtol=1e-9, atol=1e-9)
    # the best of all 12 candidates: none of the drawn ones scores higher
    allc = s.sample(12, condition=cond, seed=2)
    assert float(s.score(allc, condition=cond).max()) <= float(lp[0]) + 1e-9
    with pytest.raises(ValueError, match="n_candidates"):
        s.top_k(3, 6, condition=cond)
    with pytest.raises(ValueError, match="one condition"):
        s.top_k(8, 2, condition=torch.zeros(8, 3))


# ---------------------------------------------------------------------- joint limits
def test_unwrap_to_limits_matches_panda():
    g = torch.Generator().manual_seed(0)
    q = (torch.rand(500, 7, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    a, va = unwrap_to_limits(q, panda.JOINT_LIMITS)
    b, vb = panda.unwrap_to_limits(q)
    assert torch.equal(va, vb)
    torch.testing.assert_close(a[va], b[vb], rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.remainder(a - q + math.pi, 2 * math.pi) - math.pi,
                               torch.zeros_like(q), rtol=0, atol=1e-12)


def test_joint_limits_all_inside_and_rate_reported():
    s = PoseSampler(make_flow(), joint_limits="panda", solver=SOLVER)
    out = s.sample(50, seed=0)
    q = out["joints"]
    assert q.shape == (50, 7)
    assert panda.within_limits(q, atol=1e-6).all()
    # same configurations as the wrapped points (mod 2 pi)
    d = torch.remainder(q - out["points"][:, 3:10] + math.pi, 2 * math.pi) - math.pi
    torch.testing.assert_close(d, torch.zeros_like(d), rtol=0, atol=1e-9)
    rate = out["acceptance_rate"]
    assert 0 < rate < 1 and rate == s.last_acceptance_rate
    assert out["n_drawn"] >= 50 and abs(rate * out["n_drawn"] - round(rate * out["n_drawn"])) < 1e-6


def test_acceptance_rate_is_the_mass_inside_the_limits():
    flow = make_flow("T1", seed=1)
    ref = flow.sample(4000, seed=9, **SOLVER)[:, 0]
    expected = float(((ref >= 0) & (ref <= 2.0)).double().mean())
    s = PoseSampler(flow, joint_limits=[[0.0, 2.0]], solver=SOLVER)
    out = s.sample(1500, seed=11)
    assert ((out["joints"] >= 0) & (out["joints"] <= 2.0 + 1e-6)).all()
    assert abs(out["acceptance_rate"] - expected) < 0.04


def test_per_row_conditions_with_limits():
    s = PoseSampler(make_flow(cond_dim=2), joint_limits="panda", solver=SOLVER)
    cond = torch.randn(12, 2, dtype=torch.float64)
    out = s.sample(12, condition=cond, seed=0)
    assert out["joints"].shape == (12, 7) and panda.within_limits(out["joints"], atol=1e-6).all()
    assert 0 < out["acceptance_rate"] <= 1


def test_shortfall_raises_or_returns_fewer():
    narrow = panda.JOINT_LIMITS.clone()
    narrow[:, 1] = narrow[:, 0] + 1e-3                 # practically no mass inside
    s = PoseSampler(make_flow(), joint_limits=narrow, solver=SOLVER, max_rounds=2)
    with pytest.raises(SamplingShortfall, match="inside joint_limits after 2 rounds"):
        s.sample(10, seed=0)
    out = s.sample(10, seed=0, allow_fewer=True)
    m = out["joints"].shape[0]
    assert m < 10 and out["points"].shape == (m, 14) and out["quat"].shape == (m, 4)
    assert s.last_acceptance_rate == out["acceptance_rate"] < 0.01


@pytest.mark.parametrize("spec, limits, match", [
    ("R3 x SO3", "panda", "only for joints modelled as angles on a torus"),
    ("T3", "panda", r"shape \(3, 2\)"),
    ("T2", [[1.0, 0.0], [0.0, 1.0]], "lower < upper"),
    ("T2", "ur5", "panda"),
])
def test_bad_joint_limits(spec, limits, match):
    with pytest.raises(ValueError, match=match):
        PoseSampler(make_flow(spec), joint_limits=limits)


def test_resolve_joint_limits_panda():
    lim = resolve_joint_limits("panda", 7, torch.float32)
    assert lim.dtype == torch.float32 and torch.allclose(lim.double(), panda.JOINT_LIMITS, atol=1e-6)


# ---------------------------------------------------------------------- SE(3)
@pytest.mark.parametrize("order", ["xyzw", "wxyz"])
def test_sample_se3_rigid(order):
    s = PoseSampler(make_flow("R3 x SO3", cond_dim=3), quat_order=order, solver=SOLVER)
    cond = [0.5, 0.1, 0.0]
    T = s.sample_se3(10, condition=cond, seed=4)
    assert T.shape == (10, 4, 4)
    R = T[:, :3, :3]
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=R.dtype).expand(10, 3, 3),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(10, dtype=R.dtype), rtol=0, atol=1e-10)
    torch.testing.assert_close(T[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=R.dtype).expand(10, 4))
    torch.testing.assert_close(T[:, :3, 3], s.sample(10, condition=cond, seed=4)["position"])


@pytest.mark.parametrize("spec", ["T7", "SO3", "R3 x SO3^2"])
def test_sample_se3_needs_r3_and_rotation(spec):
    with pytest.raises(ValueError, match="sample_se3 needs"):
        PoseSampler(make_flow(spec), solver=SOLVER).sample_se3(2)


def test_sample_se3_named_parts():
    s = PoseSampler(make_flow("R3 x SO3^2"), solver=SOLVER)
    T = s.sample_se3(3, seed=0, rotation="quat_1")
    assert T.shape == (3, 4, 4)


# ---------------------------------------------------------------------- checkpoints and errors
def test_from_checkpoint_round_trip(tmp_path):
    flow = make_flow(dtype=torch.float32)
    path = flow.save(tmp_path / "m.pt")
    s0 = PoseSampler(flow, quat_order="wxyz", joint_limits="panda", solver=SOLVER)
    s1 = PoseSampler.from_checkpoint(path, device="cpu", quat_order="wxyz", joint_limits="panda", solver=SOLVER)
    a, b = s0.sample(8, seed=0), s1.sample(8, seed=0)
    for k in ("points", "joints", "quat"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert not any(p.requires_grad for p in s1.flow.parameters())
    assert not s1.flow.training and s1.device.type == "cpu"
    assert "R3 x T7 x SO3" in repr(s1)


def test_constructor_errors():
    with pytest.raises(ValueError, match="quaternion order"):
        PoseSampler(make_flow(), quat_order="XYZW")
    with pytest.raises(TypeError, match="PoseFlow"):
        PoseSampler("R3 x SO3")
    with pytest.raises(ValueError, match="unknown solver"):
        PoseSampler(make_flow(), solver={"stepz": 3})
    with pytest.raises(ValueError, match="max_rounds"):
        PoseSampler(make_flow(), max_rounds=0)
    with pytest.raises(FileNotFoundError):
        PoseSampler.from_checkpoint("/nonexistent/model.pt", device="cpu")
