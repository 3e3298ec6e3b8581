"""``benchmarks/ik_branches.py``: solutions that differ by whole turns are one, others are not; and at a toy size
the script writes one row per robot."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def test_distinct_solutions_counts_modulo_full_turns():
    branches = importlib.import_module("ik_branches")
    a = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    b = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    rows = torch.stack([a, a + torch.tensor([2 * math.pi, 0, -2 * math.pi], dtype=torch.float64), a + 0.01, b,
                        b + torch.tensor([0, 0, 4 * math.pi], dtype=torch.float64)])
    assert branches.distinct_solutions(rows, 0.05) == 2
    assert branches.distinct_solutions(rows, 0.005) == 3        # a + 0.01 is its own at a finer tolerance
    # near the wrap: pi - 0.01 and -pi + 0.01 are 0.02 apart on the circle
    c = torch.tensor([[math.pi - 0.01], [-math.pi + 0.01]], dtype=torch.float64)
    assert branches.distinct_solutions(c, 0.05) == 1


def test_script_writes_a_row_per_robot(tmp_path):
    pytest.importorskip("pytorch_kinematics")
    branches = importlib.import_module("ik_branches")
    out = tmp_path / "b.json"
    branches.main(["--robots", "ur5e", "--targets", "2", "--starts", "6", "--iters", "30", "--out", str(out)])
    [row] = json.loads(out.read_text())["results"]
    assert row["robot"] == "ur5e" and row["dof"] == 6 and len(row["distinct_per_target"]) == 2
    assert all(0 <= d <= e for d, e in zip(row["distinct_per_target"], row["exact_per_target"]))
