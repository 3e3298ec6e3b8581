"""The ``posegen`` command line, end to end on a tiny robomimic file made here, plus its error handling
and the shipped configs. Commands run in-process through ``main([...])``; one run goes through
``python -m posegen`` as a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

import posegen as pg
from posegen.cli.main import main
from posegen.config import ConfigError, known_keys, load_config, resolve, resolve_key
from posegen.data import load_points

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEMOS, FRAMES, N_VALID = 6, 12, 2
KEYS = {"robot0_eef_pos": "R3", "robot0_joint_pos": "T7", "robot0_eef_quat": "SO3"}


def make_robomimic(path, demos=DEMOS, frames=FRAMES, seed=0, masks=True):
    """A tiny file in robomimic's layout, like the shipped Panda data: raw joint angles, xyzw quaternions."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i in range(demos):
            g = data.create_group(f"demo_{i}")
            obs = g.create_group("obs")
            obs["robot0_joint_pos"] = rng.uniform(-2.8, 2.8, (1, 7)) + np.cumsum(rng.normal(0, 0.05, (frames, 7)), 0)
            obs["robot0_eef_pos"] = rng.normal([0.5, 0.0, 0.3], 0.1, (frames, 3))
            q = rng.normal(size=(frames, 4))
            obs["robot0_eef_quat"] = q / np.linalg.norm(q, axis=1, keepdims=True)
            obs["robot0_gripper_qpos"] = np.tile([0.04, -0.04], (frames, 1))
            obs["object_pos"] = np.tile(rng.normal([0.5, 0.0, 0.02], 0.05, 3), (frames, 1))
            obs["object_quat"] = np.tile([0.0, 0.0, 0.0, 1.0], (frames, 1))
            g["actions"] = rng.normal(size=(frames, 7))
            g.attrs["num_samples"] = frames
        data.attrs["total"] = demos * frames
        data.attrs["env_args"] = json.dumps({"env_name": "Tiny"})
        if masks:
            m = f.create_group("mask")
            m["train"] = np.array([f"demo_{i}" for i in range(demos - N_VALID)], dtype="S")
            m["valid"] = np.array([f"demo_{i}" for i in range(demos - N_VALID, demos)], dtype="S")
    return path


def tiny_config(data_path, **sections):
    """A config that trains in about a second: small net, few steps, cheap validation and plots. RFM
    (no divergence in its loss) keeps the steps cheap; the default objective, CNFM, runs in one test."""
    cfg = {
        "data": {"source": "robomimic", "path": str(data_path), "keys": dict(KEYS)},
        "objective": {"name": "rfm"},
        "model": {"hidden": 16, "depth": 2},
        "train": {"steps": 20, "batch_size": 32, "lr_schedule": "constant", "warmup": 0, "val_every": 10,
                  "log_every": 5, "checkpoint_every": 10, "val_points": 12,
                  "val_solver": {"method": "euler", "steps": 1}, "progress": False},
        "sample": {"n": 40, "solver": {"method": "euler", "steps": 3}},
        "eval": {"solver": {"method": "euler", "steps": 1}},
        "plot": {"enabled": False, "n": 40, "grid": 6, "solver": {"method": "euler", "steps": 2}},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def write_yaml(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1024, path


def one_error_line(err: str, code_name: str = "") -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert code_name in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    return make_robomimic(tmp_path_factory.mktemp("data") / "tiny.hdf5")


@pytest.fixture(scope="module")
def run(tiny_h5, tmp_path_factory):
    """One trained run folder shared by the sample / eval / plot tests (plots on)."""
    root = tmp_path_factory.mktemp("run")
    cfg = write_yaml(root / "tiny.yaml", tiny_config(tiny_h5, plot={"enabled": True}))
    out = root / "out"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------------- train
def test_train_writes_the_run_folder(run, tiny_h5):
    for name in ("model.pt", "ckpt.pt", "config.yaml", "metrics.jsonl"):
        assert (run / name).is_file(), name
    flow = pg.PoseFlow.load(run / "model.pt")
    assert repr(flow.manifold) == "R3 x T7 x SO3" and flow.cond_dim == 0
    assert flow.config["hidden"] == 16 and flow.solver["method"] == "euler" and flow.solver["steps"] == 3
    cfg = load_config(run / "config.yaml")  # the resolved config is itself a valid config
    assert cfg["manifold"] == "R3 x T7 x SO3"
    assert Path(cfg["data"]["path"]) == tiny_h5.resolve() and cfg["train"]["steps"] == 20
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["step"] == 20 and [r["step"] for r in recs if "val_nll" in r] == [10, 20]
    names = sorted(p.name for p in (run / "plots").iterdir())
    assert names == ["samples_robot0_eef_pos.png", "samples_robot0_eef_quat.png", "samples_robot0_joint_pos.png",
                     "training.png"]
    for p in (run / "plots").iterdir():
        assert_png(p)


def test_train_prints_where_things_went(tiny_h5, tmp_path, capsys):
    cfg = tiny_config(tiny_h5)
    cfg["objective"] = {"name": "cnfm"}  # CNFM through the CLI (the tiny configs elsewhere use RFM)
    cfg = write_yaml(tmp_path / "c.yaml", cfg)
    out = tmp_path / "o"
    assert main(["train", str(cfg), "--out", str(out), "--set", "steps=3", "--set", "train.val_every=3",
                 "--set", "batch_size=8", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "R3 x T7 x SO3 (dim 13)" in text and f"{(DEMOS - N_VALID) * FRAMES} training points" in text
    assert "objective cnfm" in text
    assert f"model:   {out / 'model.pt'}" in text and "best validation NLL" in text
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    # a second run into the same folder replaces the first instead of appending to its metrics
    assert main(["train", str(cfg), "--out", str(out), "--set", "steps=1", "--set", "batch_size=8",
                 "--set", "plot.enabled=false"]) == 0
    assert "replacing the previous run" in capsys.readouterr().err
    assert [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def test_resume_continues_to_the_same_model(run, tiny_h5, tmp_path):
    """10 steps, then --resume to 20, gives exactly the 20-step run of the shared fixture."""
    cfg = write_yaml(tmp_path / "tiny.yaml", tiny_config(tiny_h5))
    out = tmp_path / "out"
    assert main(["train", str(cfg), "--out", str(out), "--set", "steps=10"]) == 0
    ck = torch.load(out / "ckpt.pt", weights_only=True)
    assert ck["step"] == 10
    assert main(["train", str(cfg), "--out", str(out), "--resume"]) == 0
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == 20
    a = pg.PoseFlow.load(out / "model.pt").state_dict()
    b = pg.PoseFlow.load(run / "model.pt").state_dict()
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_ctrl_c_keeps_a_checkpoint_and_says_how_to_resume(tiny_h5, tmp_path, monkeypatch, capsys):
    import posegen.cli.train as train_command

    def interrupted(flow, data, objective, **kw):
        (kw["out_dir"] / "ckpt.pt").write_bytes(b"stand-in")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "train", interrupted)
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(tiny_h5))
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and str(tmp_path / "o" / "ckpt.pt") in err


def test_moser_objective_builds_a_moser_flow(tmp_path):
    # Moser Flow needs PoseFlow(parametrization="moser") and a compact manifold: T7 alone here.
    h5 = make_robomimic(tmp_path / "d.hdf5", demos=3, frames=6)
    cfg = write_yaml(tmp_path / "m.yaml", tiny_config(h5, data={"keys": {"robot0_joint_pos": "T7"}},
                                                      objective={"name": "moser"},
                                                      train={"steps": 2, "val_every": 2}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 0
    assert pg.PoseFlow.load(tmp_path / "o" / "model.pt").parametrization == "moser"


# ---------------------------------------------------------------------- sample
def test_sample_writes_points_reproducibly(run, tmp_path, capsys):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    assert main(["sample", str(run / "model.pt"), "-n", "25", "-o", str(a), "--seed", "3"]) == 0
    assert "wrote 25 samples on R3 x T7 x SO3" in capsys.readouterr().out
    assert main(["sample", str(run / "model.pt"), "-n", "25", "-o", str(b), "--seed", "3"]) == 0
    assert main(["sample", str(run / "model.pt"), "-n", "25", "-o", str(c), "--seed", "4", "--solver-steps", "2",
                 "--method", "midpoint"]) == 0
    da, db, dc = load_points(a), load_points(b), load_points(c)
    assert da.points.shape == (25, 14) and repr(da.manifold) == "R3 x T7 x SO3"
    torch.testing.assert_close(da.points, db.points, rtol=0, atol=0)
    assert not torch.allclose(da.points, dc.points)
    assert da.columns[:3] == ["robot0_eef_pos.x", "robot0_eef_pos.y", "robot0_eef_pos.z"]
    prov = da.meta["provenance"]
    assert prov["seed"] == 3 and prov["checkpoint"] == str((run / "model.pt").resolve())
    assert prov["solver"]["method"] == "euler" and prov["solver"]["steps"] == 3
    assert dc.meta["provenance"]["solver"]["method"] == "midpoint"


def test_sample_quat_order_wxyz_is_recorded_and_read_back(run, tmp_path):
    a, w = tmp_path / "a.h5", tmp_path / "w.h5"
    assert main(["sample", str(run / "model.pt"), "-n", "10", "-o", str(a), "--seed", "1"]) == 0
    assert main(["sample", str(run / "model.pt"), "-n", "10", "-o", str(w), "--seed", "1",
                 "--quat-order", "wxyz"]) == 0
    with h5py.File(a) as fa, h5py.File(w) as fw:
        stored_a, stored_w = fa["points"][()], fw["points"][()]
        assert fw["points"].attrs["quat_order"] == "wxyz"
    np.testing.assert_array_equal(stored_w[:, 10:], stored_a[:, [13, 10, 11, 12]])
    torch.testing.assert_close(load_points(w).points, load_points(a).points, rtol=0, atol=0)


@pytest.fixture(scope="module")
def grasp_run(tiny_h5, tmp_path_factory):
    """A conditional run like configs/panda_grasp.yaml: last-frame grasp poses given the object position."""
    root = tmp_path_factory.mktemp("grasp")
    cfg = tiny_config(tiny_h5, data={"keys": {"robot0_eef_pos": "R3", "robot0_eef_quat": "SO3"},
                                     "condition_keys": ["object_pos"], "frames": 2},
                      train={"steps": 4, "val_every": 4})
    out = root / "out"
    assert main(["train", str(write_yaml(root / "g.yaml", cfg)), "--out", str(out)]) == 0
    return out


def test_sample_conditional(grasp_run, tmp_path, capsys):
    model = str(grasp_run / "model.pt")
    assert main(["sample", model, "-n", "7", "-o", str(tmp_path / "a.h5"), "--condition", "0.5, 0.1,0.02"]) == 0
    ds = load_points(tmp_path / "a.h5")
    assert ds.points.shape == (7, 7) and ds.conditions.shape == (7, 3)
    torch.testing.assert_close(ds.conditions, torch.tensor([[0.5, 0.1, 0.02]]).expand(7, 3).to(ds.conditions))
    assert ds.condition_columns == ["object_pos[0]", "object_pos[1]", "object_pos[2]"]
    rows = tmp_path / "c.csv"
    rows.write_text("x,y,z\n0.5,0,0.02\n0.4,0.1,0.02\n0.6,-0.1,0.02\n")
    assert main(["sample", model, "-o", str(tmp_path / "b.h5"), "--condition-file", str(rows)]) == 0
    assert load_points(tmp_path / "b.h5").conditions.shape == (3, 3)
    capsys.readouterr()
    assert main(["sample", model, "-n", "5", "-o", str(tmp_path / "c.h5")]) == 2
    line = one_error_line(capsys.readouterr().err, "posegen sample: error:")
    assert "conditional on 3 values (object_pos[0], object_pos[1], object_pos[2])" in line
    assert main(["sample", model, "-n", "5", "-o", str(tmp_path / "c.h5"), "--condition", "1,2"]) == 2
    assert "conditional on 3 values, got 2" in one_error_line(capsys.readouterr().err)


def test_eval_conditional_uses_the_data_conditions(grasp_run, tiny_h5, capsys):
    assert main(["eval", str(grasp_run / "model.pt"), "--data", str(tiny_h5)]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["split"] == "valid" and rec["n"] == N_VALID * FRAMES // 2 and rec["dim"] == 6
    assert math.isfinite(rec["nll"])


# ---------------------------------------------------------------------- eval
def test_eval_prints_a_table_and_a_json_line(run, tiny_h5, capsys):
    assert main(["eval", str(run / "model.pt"), "--data", str(tiny_h5), "--split", "valid"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rec = json.loads(out[-1])
    assert rec["split"] == "valid" and rec["n"] == N_VALID * FRAMES and rec["dim"] == 13
    assert math.isfinite(rec["nll"]) and rec["bpd"] == pytest.approx(rec["nll"] / (13 * math.log(2)), rel=1e-12)
    assert any(ln.startswith("NLL") and "nats" in ln for ln in out) and any("bits/dim" in ln for ln in out)
    # the default split is test when the data define one, else valid; --config gives the data section
    assert main(["eval", str(run / "model.pt"), "--data", str(tiny_h5), "--config", str(run / "config.yaml"),
                 "--max-points", "5"]) == 0
    rec2 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec2["split"] == "valid" and rec2["n"] == 5 and rec2["method"] == "euler" and rec2["steps"] == 1
    assert main(["eval", str(run / "model.pt"), "--data", str(tiny_h5), "--split", "test"]) == 2
    assert "defines no 'test' split (robomimic data: data.test_mask" in one_error_line(capsys.readouterr().err)


def test_eval_of_a_points_file_needs_no_config(run, tmp_path, capsys):
    samples = tmp_path / "s.h5"
    assert main(["sample", str(run / "model.pt"), "-n", "8", "-o", str(samples)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run / "model.pt"), "--data", str(samples), "--solver-steps", "1", "--method", "euler"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["split"] == "all" and rec["n"] == 8 and rec["steps"] == 1


# ---------------------------------------------------------------------- plot
def test_plot_from_a_checkpoint_and_from_samples(run, tiny_h5, tmp_path, capsys):
    out1 = tmp_path / "p1"
    assert main(["plot", str(run / "model.pt"), "--out", str(out1), "-n", "30"]) == 0
    written = [Path(ln.split("wrote ", 1)[1]) for ln in capsys.readouterr().out.splitlines() if ln.startswith("wrote")]
    assert {p.name for p in written} == {"training.png", "samples_robot0_eef_pos.png",
                                         "samples_robot0_joint_pos.png", "samples_robot0_eef_quat.png"}
    for p in written:
        assert_png(p)
    samples = tmp_path / "s.h5"
    assert main(["sample", str(run / "model.pt"), "-n", "20", "-o", str(samples)]) == 0
    out2 = tmp_path / "p2"
    assert main(["plot", str(samples), "--data", str(tiny_h5), "--config", str(run / "config.yaml"),
                 "--out", str(out2), "--split", "valid"]) == 0
    pngs = sorted(out2.glob("*.png"))
    assert len(pngs) == 3
    for p in pngs:
        assert_png(p)


# ---------------------------------------------------------------------- data
def test_data_inspect(tiny_h5, capsys):
    assert main(["data", "inspect", str(tiny_h5)]) == 0
    out = capsys.readouterr().out
    assert f"demos    {DEMOS} (demo_0 .. demo_{DEMOS - 1}); frames {DEMOS * FRAMES}" in out
    assert f"train: {DEMOS - N_VALID} demos, valid: {N_VALID} demos" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    # joint positions: joints inside limits first; no robot named in the file, so limits around the data
    assert "(T, 7)" in lines["robot0_joint_pos"] and " I7 (joints inside limits, see below); or T7, R7" in \
        lines["robot0_joint_pos"]
    assert 'set data.robot (a built-in name or a URDF/MJCF path) for I7, or give the data\'s range widened by 1%: ' \
        'robot0_joint_pos: "I7[' in out
    assert " SO3 (unit quaternions" in lines["robot0_eef_quat"] and "or S3" in lines["robot0_eef_quat"]
    assert lines["robot0_eef_pos"].rstrip().endswith("R3")
    assert "actions (T, 7)" in out


def test_data_inspect_points_file(run, tmp_path, capsys):
    samples = tmp_path / "s.h5"
    assert main(["sample", str(run / "model.pt"), "-n", "4", "-o", str(samples), "--seed", "9"]) == 0
    capsys.readouterr()
    assert main(["data", "inspect", str(samples)]) == 0
    out = capsys.readouterr().out
    assert "manifold    R3 x T7 x SO3 (dim 13, 14 coordinates)" in out and '"seed": 9' in out


def test_data_generate_panda_calls_the_generator(tmp_path, monkeypatch):
    import posegen.cli.data as data_command

    calls = []
    monkeypatch.setattr(data_command, "generate_panda_dataset", lambda path, **kw: calls.append((path, kw)) or {})
    out = tmp_path / "p.hdf5"
    assert main(["data", "generate-panda", "--out", str(out), "--demos", "7", "--seed", "3"]) == 0
    assert calls == [(out, {"n_demos": 7, "seed": 3, "verbose": True})]


# ---------------------------------------------------------------------- errors
def _train_error(tmp_path, capsys, cfg, *extra):
    path = write_yaml(tmp_path / "bad.yaml", cfg)
    code = main(["train", str(path), "--out", str(tmp_path / "o"), *extra])
    return code, one_error_line(capsys.readouterr().err, "posegen train: error:")


@pytest.mark.parametrize("mutate, extra, code, message", [
    (lambda c: c["train"].update(stpes=3), (), 2,
     "unknown config key 'train.stpes' in '.*'; did you mean 'train.steps'"),
    (lambda c: c.update(trian={}), (), 2, "unknown config key 'trian'.*did you mean 'train'"),
    (lambda c: None, ("--set", "batchsize=3"), 2, "unknown config key 'batchsize'.*did you mean 'train.batch_size'"),
    (lambda c: None, ("--set", "seed=3"), 2, "ambiguous config key 'seed'.*data.seed, train.seed, sample.seed"),
    (lambda c: c["data"]["keys"].update(robot0_eef_pos="Q3"), (), 2,
     "config key 'data.keys.robot0_eef_pos': bad manifold spec 'Q3'"),
    (lambda c: None, ("--set", "manifold=R3 x S2"), 2, "config key 'manifold' is 'R3 x S2' but the data"),
    (lambda c: c["data"]["keys"].update(robot0_nope="R3"), (), 1, "has no obs key 'robot0_nope'; available obs keys"),
    (lambda c: c["data"].update(path="/nonexistent/x.hdf5"), (), 2, "data file '/nonexistent/x.hdf5'.*does not exist"),
    (lambda c: c["train"].update(lr=-1), (), 2, "config key 'train.lr': lr must be > 0"),
    (lambda c: c["model"].update(activation="relu6"), (), 2, "config key 'model.activation' is 'relu6'"),
    (lambda c: c["objective"].update(name="cnfn"), (), 2, "config key 'objective.name' is 'cnfn'.*did you mean 'cnfm'"),
    (lambda c: c["objective"].update(options={"t_esp": 0.1}), (), 2,
     "unknown config key 'objective.options.t_esp' for objective 'rfm'.*did you mean 'objective.options.t_eps'"),
    (lambda c: c.update(objective={"name": "moser"}), (), 1, "Moser Flow needs a compact manifold"),
])
def test_train_errors_are_one_line(tiny_h5, tmp_path, capsys, mutate, extra, code, message):
    cfg = tiny_config(tiny_h5)
    mutate(cfg)
    got, line = _train_error(tmp_path, capsys, cfg, *extra)
    assert got == code, line
    assert __import__("re").search(message, line), line


def test_missing_files_exit_2(run, tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "config file" in one_error_line(capsys.readouterr().err)
    assert main(["sample", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "s.h5")]) == 2
    assert "checkpoint" in one_error_line(capsys.readouterr().err, "posegen sample: error:")
    assert main(["eval", str(run / "model.pt"), "--data", str(tmp_path / "nope.h5")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err, "posegen eval: error:")
    assert main(["data", "inspect", str(tmp_path / "nope.h5")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err, "posegen data inspect: error:")


def test_usage_errors_are_one_line(capsys):
    assert main(["train"]) == 2
    line = one_error_line(capsys.readouterr().err, "posegen train: error:")
    assert "CONFIG" in line and "--help" in line
    assert main(["sample", "m.pt", "-o", "x.h5", "--quat-order", "zyxw"]) == 2
    assert "invalid choice: 'zyxw'" in one_error_line(capsys.readouterr().err)


def test_debug_shows_the_traceback(tiny_h5, tmp_path, capsys):
    cfg = tiny_config(tiny_h5)
    cfg["train"]["stpes"] = 3
    path = write_yaml(tmp_path / "bad.yaml", cfg)
    assert main(["train", str(path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ConfigError" in err
    assert err.strip().splitlines()[-1].startswith("posegen train: error: unknown config key 'train.stpes'")
    assert main(["--debug", "train", str(path)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: [1, 2\n")
    assert main(["train", str(bad)]) == 2
    assert "is not valid YAML at line" in one_error_line(capsys.readouterr().err)


def test_python_m_posegen_help():
    r = subprocess.run([sys.executable, "-m", "posegen", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for cmd in ("train", "sample", "eval", "plot", "data"):
        assert cmd in r.stdout


# ---------------------------------------------------------------------- config keys and overrides
@pytest.mark.parametrize("key, full", [("steps", "train.steps"), ("train.steps", "train.steps"),
                                       ("lr", "train.lr"), ("val_solver.steps", "train.val_solver.steps"),
                                       ("keys.object_pos", "data.keys.object_pos"),
                                       ("options.sigma", "objective.options.sigma"), ("manifold", "manifold")])
def test_resolve_key_short_forms(key, full):
    assert resolve_key(key) == full


def test_override_values_are_yaml():
    cfg = resolve({"data": {"source": "earth", "name": "volcano"}},
                  ["steps=7", "lr=1e-3", "train.device=null", "data.split=[0.5, 0.5]", "ema_decay=1",
                   "sample.solver.method=midpoint"])
    assert cfg["train"]["steps"] == 7 and cfg["train"]["lr"] == 1e-3 and cfg["train"]["device"] is None
    assert cfg["data"]["split"] == [0.5, 0.5] and cfg["train"]["ema_decay"] == 1.0
    assert cfg["sample"]["solver"] == {"method": "midpoint", "steps": 32, "step": "project", "atol": 1e-5,
                                       "rtol": 1e-5}
    with pytest.raises(ConfigError, match="'train.steps' must be an integer, got 'many'"):
        resolve({"data": {"source": "earth", "name": "volcano"}}, ["steps=many"])
    with pytest.raises(ConfigError, match="expected key=value"):
        resolve({}, ["steps"])


def test_solver_and_chunk_defaults_come_from_one_place():
    from posegen.solvers import defaults

    earth = {"data": {"source": "earth", "name": "volcano"}}
    cfg = resolve(earth)
    assert cfg["sample"]["solver"] == defaults.DEFAULT_SOLVER == pg.PoseFlow("S2").solver
    assert cfg["sample"]["chunk_size"] == defaults.SAMPLE_CHUNK_SIZE
    assert cfg["eval"]["chunk_size"] == defaults.LOG_PROB_CHUNK_SIZE
    assert cfg["plot"]["solver"] == cfg["train"]["val_solver"] == defaults.PREVIEW_SOLVER
    # the validation log_prob's chunk is chunk_size, like everywhere else; an old config's key is read with a
    # warning (and --set names the new one)
    assert resolve(earth, ["train.val_solver.chunk_size=64"])["train"]["val_solver"]["chunk_size"] == 64
    with pytest.warns(DeprecationWarning, match="'train.val_solver.batch_size'.*now 'train.val_solver.chunk_size'"):
        old = resolve({**earth, "train": {"val_solver": {"batch_size": 64}}})
    assert old["train"]["val_solver"] == {**defaults.PREVIEW_SOLVER, "chunk_size": 64}


# ---------------------------------------------------------------------- the shipped configs
# the default config learns the Panda's joints inside their limits (I7 with the URDF's limits)
PANDA_I7 = ("I7[-2.8973:2.8973,-1.7628:1.7628,-2.8973:2.8973,-3.0718:-0.0698,-2.8973:2.8973,-0.0175:3.7525,"
            "-2.8973:2.8973]")
EXPECTED_MANIFOLD = {"default": PANDA_I7, "panda_joints": "T7", "panda_eef": "R3 x SO3",
                     "panda_grasp": "R3 x SO3", "panda_full": "R3 x T7 x S3", "earth_volcano": "S2",
                     "earth_earthquake": "S2", "earth_flood": "S2", "earth_fire": "S2"}


def test_every_expected_config_ships():
    assert {p.stem for p in CONFIGS} >= set(EXPECTED_MANIFOLD)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load_and_validate(path):
    from posegen.cli.datasets import data_manifold

    text = path.read_text()
    assert text.startswith("#"), "each config starts with a comment saying what it learns and how long it takes"
    assert "2-core CPU" in text.split("\n\n")[0]
    raw = yaml.safe_load(text)
    known = set(known_keys())

    def walk(d, prefix=""):
        for k, v in d.items():
            p = prefix + k
            if p.startswith(("data.keys.", "objective.options.")):
                continue
            assert p in known, p
            if isinstance(v, dict):
                walk(v, p + ".")

    walk(raw)
    cfg = load_config(path)
    M = data_manifold(cfg)
    if path.stem in EXPECTED_MANIFOLD:
        assert repr(M) == EXPECTED_MANIFOLD[path.stem]
    if cfg["manifold"] is not None:   # the flow's manifold: the data's points, perhaps with model options
        assert pg.parse(cfg["manifold"]).geometry == M
    if cfg["data"]["source"] == "earth":
        assert cfg["data"]["split"] == [0.8, 0.1, 0.1] and cfg["data"]["seed"] == 0
