"""``benchmarks/ik_time_sampling.py``: eval's held-out targets are the poses of their joints, and a toy run
continues the shipped weights (the data's standardisation kept), writes one row per evaluation and resumes from
its checkpoint."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

pytest.importorskip("pytorch_kinematics")


def test_held_out_targets_are_the_poses_of_their_joints():
    pretrained = importlib.import_module("ik_pretrained")
    from posegen.robots import load
    robot = load("ur5e")
    q, t = pretrained.held_out(robot, n=4)
    assert torch.equal(q, robot.manifold.sample_base(4, generator=torch.Generator().manual_seed(10_000),
                                                     dtype=torch.float64))
    pos, quat = robot.pose(q)
    assert torch.allclose(t[:, :3], pos, atol=0, rtol=0)
    # the same rotation (a quaternion and its negative are one)
    assert torch.allclose((t[:, 3:] * quat).sum(-1).abs(), torch.ones(4, dtype=torch.float64), atol=1e-12)


def test_toy_run_writes_rows_and_resumes(tmp_path):
    probe = importlib.import_module("ik_time_sampling")
    from posegen.samplers import IKSampler
    shipped = IKSampler.pretrained("ur5e")
    args = ["--robot", "ur5e", "--time-sampling", "late", "--run", str(tmp_path / "run"), "--steps", "4",
            "--eval-every", "2", "--per-target", "1", "--warmup", "1"]
    probe.main(args)
    rows = [json.loads(line) for line in (tmp_path / "run" / "evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, "final"]
    assert all(r["time_sampling"] == "late" and len(r["T1"]) == 3 and len(r["T0.75"]) == 3 for r in rows)
    assert all(0 < r["T1"][1] <= 1e4 for r in rows)     # mm: finite, of a trained model (not of a fresh one)
    ck = torch.load(tmp_path / "run" / "ckpt.pt", map_location="cpu", weights_only=False)
    assert int(ck["step"]) == 4
    # resumed at its end: no more steps, one more final row
    probe.main(args)
    rows = (tmp_path / "run" / "evals.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == "final" and len(rows) == 4
    assert shipped.training["steps"] > 0
