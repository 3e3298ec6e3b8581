"""The learning-rate schedule of the one training loop, seen from every model that learns: each record's lr is
the warm-up-then-cosine factor of the next step, so replacing the schedule with a constant (in the loop or in a
model's fit) fails here."""

from __future__ import annotations

import math

import pytest
import torch

import posegen as pg
from posegen.training import lr_factor


def _expected(step: int, steps: int, lr: float, warmup: int) -> float:
    # the record of step k holds the lr of the next step (k, 0-based), after the scheduler stepped
    return lr * lr_factor(step, step / steps, warmup=warmup)


def test_lr_factor_is_a_warm_up_then_a_cosine_to_five_percent():
    assert lr_factor(0, 0.0, warmup=4) == pytest.approx(0.25)
    assert lr_factor(3, 0.0, warmup=4) == pytest.approx(1.0)
    assert lr_factor(10, 0.5, warmup=0) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(10, 1.0, warmup=0) == pytest.approx(0.05)
    assert lr_factor(10, 2.0, warmup=0) == pytest.approx(0.05)  # spent budget: stays at the floor
    assert lr_factor(10, 0.5, warmup=0, kind="constant") == 1.0


def test_a_flow_trained_on_data_follows_the_schedule():
    torch.manual_seed(0)
    M = pg.manifolds.parse("S2")
    x = M.sample_base(64, generator=torch.Generator().manual_seed(0))
    flow = pg.PoseFlow(M, hidden=8, depth=1)
    res = pg.train(flow, x, "rfm", steps=40, batch_size=16, lr=1e-2, warmup=5, log_every=5, progress=False)
    got = [r["lr"] for r in res.history]
    want = [_expected(r["step"], 40, 1e-2, 5) for r in res.history]
    assert got == pytest.approx(want, rel=1e-12)
    assert got[-1] < 0.1 * max(got)  # it anneals


def test_the_ik_sampler_follows_the_same_schedule():
    pytest.importorskip("pytorch_kinematics")
    torch.manual_seed(0)
    ik = pg.IKSampler("panda", hidden=8, depth=1)
    ik.fit(steps=30, batch_size=16, lr=5e-3, warmup=3, log_every=5, seed=0, device="cpu")
    hist = ik.training["history"]
    assert [r["lr"] for r in hist] == pytest.approx([_expected(r["step"], 30, 5e-3, 3) for r in hist], rel=1e-12)


def test_a_time_budget_anneals_too():
    M = pg.manifolds.parse("T1")
    x = M.sample_base(64, generator=torch.Generator().manual_seed(0))
    flow = pg.PoseFlow(M, hidden=8, depth=1)
    res = pg.train(flow, x, "rfm", steps=None, max_minutes=0.02, batch_size=16, lr=1e-2, warmup=0, log_every=1,
                   progress=False)
    assert res.history[-1].get("stopped") == "max_minutes=0.02"
    assert res.history[-1]["lr"] < 0.5e-2 and math.isfinite(res.history[-1]["loss"])
