"""CNFM's path diagnostic as users see it: the likelihood its target path's end point allows, in the training
log beside each validation NLL and in ``posegen eval``; objectives without such a figure report nothing."""

from __future__ import annotations

import json

import pytest
import torch

import posegen as pg
from test_cli import tiny_config, tiny_h5, write_yaml  # noqa: F401  (tiny_h5 is a fixture)


def _s2_points(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.1 + torch.tensor([0.0, 0.0, 1.0],
                                                                                   dtype=torch.float64)
    return (x / x.norm(dim=-1, keepdim=True)).float()


def test_training_logs_the_path_bound_beside_the_validation_nll():
    torch.manual_seed(0)
    train, val = _s2_points(300, 0), _s2_points(100, 1)
    res = pg.train(pg.PoseFlow("S2", hidden=16, depth=1), train, "cnfm", steps=10, val_data=val, val_every=5,
                   log_every=5, progress=False)
    bounds = [r["endpoint_kde_nll"] for r in res.history if "val_nll" in r]
    assert len(bounds) == 2 and bounds[0] == bounds[1]
    # the bound is the KDE of the training points at the path's end point, scored on the validation points
    objective = pg.objectives.make_objective("cnfm")
    flow = res.flow
    objective.setup(flow, flow.to_internal(train))
    direct = objective.diagnostics(flow.to_internal(train), flow.to_internal(val))["endpoint_kde_nll"]
    assert bounds[0] == pytest.approx(direct, rel=1e-5)
    # a concentrated cap: the bound is far below the uniform density's NLL, log(4 pi) = 2.53
    assert bounds[0] < 0.0
    rfm = pg.train(pg.PoseFlow("S2", hidden=16, depth=1), train, "rfm", steps=5, val_data=val, val_every=5,
                   progress=False)
    assert all("endpoint_kde_nll" not in r for r in rfm.history)


def test_posegen_eval_reports_the_path_bound_for_cnfm(tiny_h5, tmp_path, capsys):  # noqa: F811
    from posegen.cli.main import main

    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(tiny_h5, objective={"name": "cnfm"},
                                                        train={"steps": 4, "val_every": 2}))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("endpoint_kde_nll" in r for r in rows if "val_nll" in r)
    capsys.readouterr()
    assert main(["eval", str(run / "model.pt"), "--data", str(tiny_h5), "--split", "valid"]) == 0
    out = capsys.readouterr().out
    rec = json.loads(out.strip().splitlines()[-1])
    assert "path bound" in out and isinstance(rec["endpoint_kde_nll"], float)
