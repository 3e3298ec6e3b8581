"""benchmarks/ik_pretrained.py: the shipped IK weights' script trains in stages (warm restarts that start from the
EMA weights of the finished stage before), resumes, refuses a stage whose predecessor is unfinished, and exports
the last stage with the steps and time of all of them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ik_pretrained  # noqa: E402
from posegen.checkpoint import load_checkpoint  # noqa: E402
from posegen.samplers import IKSampler  # noqa: E402


def _config(tmp_path, lr_restart):
    cfg = {"defaults": {"hidden": 16, "depth": 1, "batch_size": 8, "lr": 1e-2, "warmup": 1, "ema_decay": 0.5,
                        "seed": 0, "checkpoint_every": 1},
           "robots": {"panda": {"steps": 3, "restarts": [{"steps": 2, "lr": lr_restart, "seed": 1}]}}}
    path = tmp_path / "ik.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_a_restart_starts_from_the_finished_stage_and_export_counts_every_stage(tmp_path):
    config = _config(tmp_path, 1e-12)        # a restart that cannot move the weights
    run = str(tmp_path / "ik_panda")
    common = ["--robot", "panda", "--config", config, "--run", run]
    with pytest.raises(SystemExit, match="stage 0 of 'panda' has no checkpoint"):
        ik_pretrained.main(["train", *common, "--stage", "1", "--log-every", "1"])
    ik_pretrained.main(["train", *common, "--log-every", "1"])
    with pytest.raises(SystemExit, match="has stages 0-1"):
        ik_pretrained.main(["train", *common, "--stage", "2"])
    ik_pretrained.main(["train", *common, "--stage", "1", "--log-every", "1"])
    assert (tmp_path / "ik_panda_restart1" / "ckpt.pt").exists()
    out = tmp_path / "w.pt"
    ik_pretrained.main(["export", *common, "--out", str(out)])
    ik = IKSampler.load(out)
    assert (ik.training["steps"], ik.training["of_steps"], ik.training["stage"]) == (5, 5, 1)
    first = load_checkpoint(Path(run) / "ckpt.pt", map_location="cpu", kind="training")["ema"]["shadow"]
    for k, v in ik.flow.state_dict().items():   # lr ~ 0: the restart kept stage 0's EMA weights
        torch.testing.assert_close(v, first[k], rtol=0, atol=1e-8)


def test_an_unfinished_stage_is_not_restarted_from(tmp_path):
    config = _config(tmp_path, 1e-3)
    run = tmp_path / "ik_panda"
    common = ["--robot", "panda", "--config", config, "--run", str(run)]
    ik_pretrained.main(["train", *common])
    ck = load_checkpoint(run / "ckpt.pt", map_location="cpu", kind="training")
    ck["step"] = 2                           # as if the run had been stopped at step 2 of 3
    torch.save(ck, run / "ckpt.pt")
    with pytest.raises(SystemExit, match="is at step 2 of 3"):
        ik_pretrained.main(["train", *common, "--stage", "1"])
