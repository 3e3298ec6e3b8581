"""Issue 23's noise: the joint-limit warning (once per load, short, not on samples inside the limits),
``data inspect`` suggesting ``I<d>`` for joints, and ``posegen plot``'s end-effector workspace figure."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
import torch

from posegen.cli import plot as plot_cli
from posegen.cli.datasets import load_splits
from posegen.cli.inspect import fits, range_limits
from posegen.cli.main import main
from posegen.config import resolve
from posegen.data import DataWarning, save_points
from posegen.manifolds import parse
from posegen.manifolds.gate import one_warning_per_load, validate_points

LIMITS = [[-1.0, 1.0], [0.0, 3.75]]


def data_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def on_limits(rows):
    """``(rows, 3)`` float64 points on ``R1 x I2``: row 0 has q0 on its lower limit, row 1 q1 on its upper."""
    x = torch.zeros(rows, 3, dtype=torch.float64)
    x[:, 2] = 1.0
    x[0, 1], x[1, 2] = -1.0, 3.75
    return x


# ---------------------------------------------------------------------- the warning: short, once per load
def test_near_limit_warning_is_short_and_names_the_factor_and_joints():
    M = parse("R1 x I2", limits=LIMITS)
    with pytest.warns(DataWarning) as record:
        validate_points(M, on_limits(4), name="demo.hdf5", labels=["base", "joints"])
    [msg] = data_warnings(record)
    assert msg.startswith("demo.hdf5: factor 1 (I2, columns 1:3 = joints): 2 of 4 rows had q0, q1 on a joint limit")
    assert "[" not in msg and len(msg) < 200, msg  # no spec with every limit in it


def test_one_warning_per_load_sums_the_checks_of_one_file():
    M = parse("R1 x I2", limits=LIMITS)
    train, valid = on_limits(5), on_limits(3)
    valid[1, 2] = 2.0  # valid: only q0 on a limit
    with warnings.catch_warnings(record=True) as apart:
        warnings.simplefilter("always")
        validate_points(M, train, name="f.h5")
        validate_points(M, valid, name="f.h5")
    assert len(data_warnings(apart)) == 2
    with warnings.catch_warnings(record=True) as merged:
        warnings.simplefilter("always")
        with one_warning_per_load():
            validate_points(M, train, name="f.h5")
            validate_points(M, valid, name="f.h5")
            assert not data_warnings(merged), "held until the load ends"
    [msg] = data_warnings(merged)
    assert "3 of 8 rows had q0, q1 on a joint limit" in msg
    # a refused load leaves no warning behind
    bad = on_limits(2)
    bad[0, 2] = 9.0
    with warnings.catch_warnings(record=True) as refused:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="inside the joint limits"):
            with one_warning_per_load():
                validate_points(M, on_limits(3), name="f.h5")
                validate_points(M, bad, name="f.h5")
    assert not data_warnings(refused)


def make_joint_file(path, env_args, demos=6, frames=10, limits=None, seed=0):
    """A robomimic file of joint positions only (key robot0_joint_pos, 7 joints) with train/valid masks;
    every demo's first frame sits on a limit of joint 1 (a hard stop)."""
    lim = np.asarray(limits if limits is not None else [[-2.0, 2.0]] * 7)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i in range(demos):
            q = rng.uniform(lim[:, 0] + 0.1 * (lim[:, 1] - lim[:, 0]), lim[:, 1] - 0.1 * (lim[:, 1] - lim[:, 0]),
                            (frames, 7))
            q[0, 1] = lim[1, 0]
            obs = data.create_group(f"demo_{i}/obs")
            obs["robot0_joint_pos"] = q
        data.attrs["total"] = demos * frames
        data.attrs["env_args"] = json.dumps(env_args)
        m = f.create_group("mask")
        m["train"] = np.array([f"demo_{i}" for i in range(demos - 2)], dtype="S")
        m["valid"] = np.array([f"demo_{i}" for i in range(demos - 2, demos)], dtype="S")
    return path


def test_load_splits_warns_once_for_train_and_valid(tmp_path):
    path = make_joint_file(tmp_path / "j.hdf5", {"env_name": "Test"})
    token = "I7[" + ",".join(["-2:2"] * 7) + "]"
    cfg = resolve({"data": {"source": "robomimic", "path": str(path), "keys": {"robot0_joint_pos": token}}})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        splits = load_splits(cfg, ("train", "valid"))
    assert set(splits) == {"train", "valid"}
    [msg] = data_warnings(record)
    assert msg == ("j.hdf5: factor 0 (I7, columns 0:7 = robot0_joint_pos): 6 of 60 rows had q1 on a joint limit "
                   "(within 0.0001 of its range); moved that far inside, where the density is finite")


def test_plot_gives_no_limit_warning_for_samples_inside_the_limits(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    M = parse("I2", limits=LIMITS)
    x = M.sample_base(200, generator=torch.Generator().manual_seed(0))
    x[0, 0] = -1.0 + 2e-5   # inside, 1e-5 of the range from the lower limit: what a flow draws near a hard stop
    x[1, 1] = 3.75 - 1e-5
    M.check_point(x)  # inside the closed box (raises otherwise)
    samples = save_points(tmp_path / "samples.h5", x, M)
    assert main(["plot", str(samples), "--out", str(tmp_path / "plots")]) == 0
    err = capsys.readouterr().err
    assert "joint limit" not in err, err
    assert len(list((tmp_path / "plots").glob("samples_*.png"))) == 1


def test_plot_reads_reference_data_on_a_limit_quietly_and_eval_still_says_it(tmp_path, capsys):
    """The data gate moves joints on a limit 1e-4 of their range inside: nothing a figure shows, so ``plot`` says
    nothing of it (``make demo`` printed it three times); ``eval`` scores those rows and still says it."""
    pytest.importorskip("matplotlib")
    import yaml

    data = make_joint_file(tmp_path / "j.hdf5", {"env_name": "Test"})
    token = "I7[" + ",".join(["-2:2"] * 7) + "]"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": "robomimic", "path": str(data),
                                            "keys": {"robot0_joint_pos": token}}}))
    M = parse(token)
    samples = save_points(tmp_path / "samples.h5", M.sample_base(50, generator=torch.Generator().manual_seed(0)), M)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert main(["plot", str(samples), "--data", str(data), "--config", str(cfg), "--split", "train",
                     "--out", str(tmp_path / "plots")]) == 0
    err = capsys.readouterr().err
    assert "joint limit" not in err and not data_warnings(record), err
    assert len(list((tmp_path / "plots").glob("samples_*.png"))) == 1
    with pytest.warns(DataWarning, match="4 of 40 rows had q1 on a joint limit"):  # the loader eval uses
        load_splits(resolve(yaml.safe_load(cfg.read_text())), ("train",))


# ---------------------------------------------------------------------- data inspect: I<d> for joints
def test_fits_suggests_an_interval_for_joint_positions():
    q = np.random.default_rng(0).uniform(-2.5, 2.5, (50, 7))
    assert fits("robot0_joint_pos", q)[:2] == ["I7", "T7"]
    assert fits("wrist_angle", q[:, :1]) == ["T1", "R1"]   # other angles: a torus first, as before
    assert fits("object_pos", q[:, :3]) == ["R3"]
    lim = range_limits(q)
    assert (lim[:, 0] < q.min(0)).all() and (lim[:, 1] > q.max(0)).all()
    assert (lim[:, 1] - lim[:, 0] < (q.max(0) - q.min(0)) * 1.03 + 0.004).all()


def test_inspect_gives_the_limits_from_the_robot_or_the_data(tmp_path, capsys):
    panda = [[-2.8973, 2.8973], [-1.7628, 1.7628], [-2.8973, 2.8973], [-3.0718, -0.0698], [-2.8973, 2.8973],
             [-0.0175, 3.7525], [-2.8973, 2.8973]]
    named = make_joint_file(tmp_path / "panda.hdf5", {"env_kwargs": {"robots": ["Panda"]}}, limits=panda)
    assert main(["data", "inspect", str(named)]) == 0
    out = capsys.readouterr().out
    assert "I7 (joints inside limits, see below); or T7, R7" in out
    assert "robot0_joint_pos: I7 with data.robot: panda" in out

    unnamed = make_joint_file(tmp_path / "plain.hdf5", {"env_name": "Plain"})
    assert main(["data", "inspect", str(unnamed)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("joint limits"))
    assert "no built-in robot is named" in line
    token = line.split('robot0_joint_pos: "')[1].rstrip('"')
    with h5py.File(unnamed) as f:  # the suggested token holds every frame strictly inside its limits
        q = np.concatenate([f[f"data/demo_{i}/obs/robot0_joint_pos"][()] for i in range(6)])
    [box] = parse(token).factors
    assert box.coord_dim == 7
    assert ((q > box.lo.numpy()) & (q < box.hi.numpy())).all()


# ---------------------------------------------------------------------- plot: the end-effector workspace
def test_plot_draws_the_workspace_of_sampled_and_recorded_joints(tmp_path, monkeypatch):
    """``posegen plot`` of a Panda joint model: the workspace figure gets the FK positions of the samples and
    of the data's joints; the data's are checked against the end-effector positions the file records (the
    generator's own kinematics, independent of posegen.robots)."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("pytorch_kinematics")
    from posegen.robots import load

    robot = load("panda")
    M = parse(repr(robot.manifold))
    q = M.sample_base(300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = save_points(tmp_path / "samples.h5", q, M, provenance={"robot": robot.spec})
    seen = {}

    def record(out, samples=None, data=None, **kw):
        seen.update(samples=torch.as_tensor(samples), data=torch.as_tensor(data))
        return out

    monkeypatch.setattr(plot_cli.plots, "plot_workspace", record)
    repo = plot_cli.Path(__file__).resolve().parents[1]
    cfg = repo / "configs" / "default.yaml"
    assert main(["plot", str(samples), "--config", str(cfg), "--out", str(tmp_path / "plots")]) == 0
    ref, _ = robot.pose(q)
    err = (seen["samples"].double() - ref).norm(dim=1)
    # the samples are read through the data gate, which moves joints within 1e-4 of the range of a limit
    assert err.median() < 1e-12 and err.max() < 3e-3, (err.median(), err.max())
    # the data: the train split's joints; the file records their end-effector positions (key robot0_eef_pos)
    raw = resolve({"data": {"source": "robomimic", "path": str(repo / "data" / "panda_reach_grasp.hdf5"),
                            "keys": {"robot0_eef_pos": "R3"}, "frames": 4, "train_mask": "train"}})
    recorded = load_splits(raw, ("train",))["train"].points.double()
    err = (seen["data"].double() - recorded).norm(dim=1)
    # joints moved off a limit by 1e-4 of their range move the hand by at most ~2 mm; all others agree to 1e-6
    assert err.median() < 1e-6 and err.max() < 3e-3, (err.median(), err.max())


def test_inspect_table_shows_text_columns_beside_the_numbers(tmp_path, capsys):
    t = tmp_path / "rna.tsv"
    # a made-up table: PDB id, base letter, two torsions (deg); the last alpha is missing (an empty cell)
    t.write_text("pdb\tbase\talpha\tchi\n1EHZ\tG\t-68.2\t-160.1\n1EHZ\tC\t-70.5\t-155.0\n4TNA\tA\t\t-150.3\n")
    assert main(["data", "inspect", str(t)]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith("  ")}
    assert rows["pdb"] == ["text", "2", "distinct:", "1EHZ,", "4TNA"]
    assert rows["base"][:2] == ["text", "3"]
    assert rows["alpha"] == ["-70.5", "-68.2"] and rows["chi"] == ["-160.1", "-150.3"]
