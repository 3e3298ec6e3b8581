"""``benchmarks/ik.py speed`` end to end at a toy size: the shipped weights, rounds timed in turns, the results
file's rows. Says nothing about speed (benchmarks/results/ik_speed_*.json do)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("pytorch_kinematics")
pytest.importorskip("roma")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_speed_rounds_write_one_row_per_method(tmp_path):
    ik = importlib.import_module("ik")
    ik.main(["speed", "--robot", "panda", "--targets", "4", "--per-target", "3", "--chunk", "2", "--rounds", "2",
             "--dls-iters", "10", "--restarts", "10:0.5", "--no-rtb", "--out", str(tmp_path)])
    d = json.loads((tmp_path / "ik_speed_panda_chunk2.json").read_text())
    assert d["args"]["rounds"] == 2 and d["args"]["checkpoint"] is None
    rows = {r["method"]: r for r in d["results"]}
    assert set(rows) == {"posegen", "dls_10", "restarts_it10_spare0.5"}
    for r in rows.values():
        assert r["solutions"] == 2 * 4 * 3 and r["solutions_per_round"] == 4 * 3
        assert 0 <= r["exact"] <= r["solutions"] and r["success"] == r["exact"] / r["solutions"]
        assert len(r["cpu_ms_per_exact_by_round"]) == 2 and all(t > 0 for t in r["cpu_ms_per_exact_by_round"])
    assert rows["posegen"]["success"] == 1.0  # the shipped Panda weights, refined: every solution exact
    assert rows["restarts_it10_spare0.5"]["success"] == 1.0  # restarts carried to completion, like the sampler
    assert d["model"]["checkpoint"] == "pretrained:panda"


def test_verified_errors_use_the_reference_chain_and_restore_the_backend():
    from posegen.robots import load

    speed = importlib.import_module("ik_speed")
    robot = load("panda")
    q = robot.manifold.sample_base((2, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pos, quat = robot.pose(q[:, 0])
    before = robot.kinematics
    pe, re = speed.verified_errors(robot, q, torch.cat([pos, quat], -1))
    assert robot.kinematics == before
    assert pe.shape == (2, 3) and bool((pe[:, 0] < 1e-12).all()) and bool((re[:, 0] < 1e-6).all())
    assert bool((pe[:, 1:] > 1e-3).all())  # other joints, other poses


def test_random_restarts_never_call_the_flow_and_stay_inside_the_limits(monkeypatch):
    from posegen.robots import load
    from posegen.samplers import IKSampler

    speed = importlib.import_module("ik_speed")
    robot = load("ur5e")
    ik = IKSampler(robot, hidden=8, depth=1)

    def no_flow(*a, **k):
        raise AssertionError("the flow was called")

    monkeypatch.setattr(ik.flow, "sample", no_flow)
    restarts = speed.RandomRestarts(robot, _flow=ik.flow)
    q0 = robot.manifold.sample_base((2,), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pos, quat = robot.pose(q0)
    out = restarts.sample(torch.cat([pos, quat], -1), 4, seed=0, refine=True, max_iters=10, spare=0.5,
                          retry_starts="uniform")
    assert out["joints"].shape == (2, 4, 6) and bool(robot.within_limits(out["joints"]).all())
    assert bool(out["success"].all())
    # a seed fixes the starts: the same call twice gives the same joints
    again = restarts.sample(torch.cat([pos, quat], -1), 4, seed=0, refine=True, max_iters=10, spare=0.5,
                            retry_starts="uniform")
    assert torch.equal(out["joints"], again["joints"])
