"""Reach demos of any robot (posegen.data.generate_robot, ``posegen data generate --robot``), bare ``I<d>``
tokens with a robot's limits in load_robomimic, and the config's ``data.robot`` and ``data.source: lerobot``."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("pytorch_kinematics")

import posegen as pg  # noqa: E402
from posegen.cli.main import main  # noqa: E402
from posegen.config import ConfigError, resolve  # noqa: E402
from posegen.data import load_robomimic  # noqa: E402
from posegen.data.generate_robot import generate_robot_dataset  # noqa: E402
from posegen.data.robomimic import joint_keys  # noqa: E402
from posegen.manifolds import Euclidean, Interval, Product  # noqa: E402
from posegen.robots import load  # noqa: E402

ROBOTS = ("panda", "ur5e", "iiwa14")
DEMOS, FRAMES = 6, 12
POSE_KEYS = {"robot0_eef_pos": "R3", "robot0_eef_quat": "SO3"}


@pytest.fixture(scope="module")
def robots():
    return {name: load(name) for name in ROBOTS}


@pytest.fixture(scope="module")
def files(tmp_path_factory, robots):
    root = tmp_path_factory.mktemp("gen")
    return {name: generate_robot_dataset(root / f"{name}.hdf5", robots[name], n_demos=DEMOS, seed=3,
                                         frames=FRAMES)["path"] for name in ROBOTS}


def _arrays(path, key):
    with h5py.File(path, "r") as f:
        names = sorted(f["data"], key=lambda n: int(n[5:]))
        return np.concatenate([f["data"][n]["obs"][key][()] for n in names])


# ---------------------------------------------------------------------- the generated files
@pytest.mark.parametrize("name", ROBOTS)
def test_file_loads_joints_inside_limits_and_pose_is_the_robot_fk(name, files, robots):
    robot, path = robots[name], files[name]
    dof = robot.dof
    ds = load_robomimic(path, keys={"robot0_joint_pos": f"I{dof}", **POSE_KEYS}, robot=robot, dtype=torch.float64)
    assert ds.manifold == Product(*robot.manifold.factors, *pg.parse("R3 x SO3").factors)
    assert len(ds.group_names) == DEMOS and ds.meta["robot"] == name
    q = torch.from_numpy(_arrays(path, "robot0_joint_pos"))
    assert q.shape[1] == dof and bool(robot.within_limits(q).all())
    torch.testing.assert_close(ds.points[:, :dof], q, rtol=0, atol=0)      # stored as they are: not wrapped
    T = robot.fk(q)
    pos = torch.from_numpy(_arrays(path, "robot0_eef_pos"))
    quat = torch.from_numpy(_arrays(path, "robot0_eef_quat"))
    assert (pos - T[:, :3, 3]).abs().max() < 1e-6
    import roma

    R = roma.unitquat_to_rotmat(quat)                                          # xyzw, as the attrs say
    assert (R - T[:, :3, :3]).abs().max() < 1e-6
    with h5py.File(path, "r") as f:
        assert f.attrs["quat_order"] == "xyzw" and f.attrs["robot"] == name
        env = json.loads(f["data"].attrs["env_args"])
        assert env["conventions"]["quat"] == "xyzw" and env["robot"]["joint_names"] == list(robot.joint_names)
        train = {n.decode() for n in f["mask/train"][()]}
        valid = {n.decode() for n in f["mask/valid"][()]}
        assert train and valid and not train & valid and train | valid == set(f["data"])
        # the quaternion is sign-continuous along each episode; trajectories are smooth and end at rest
        for demo in f["data"].values():
            qu = demo["obs/robot0_eef_quat"][()]
            assert (np.sum(qu[1:] * qu[:-1], 1) >= 0).all()
            j = demo["obs/robot0_joint_pos"][()]
            assert np.allclose(demo["actions"][()][:-1], j[1:] - j[:-1])
            assert np.abs(np.diff(j, axis=0)).max() < 1.0 and np.allclose(j[-1], j[-2])


def test_same_seed_same_arrays_other_seed_other_arrays(tmp_path, robots, files):
    again = generate_robot_dataset(tmp_path / "a.hdf5", "ur5e", n_demos=DEMOS, seed=3, frames=FRAMES)["path"]
    other = generate_robot_dataset(tmp_path / "b.hdf5", robots["ur5e"], n_demos=DEMOS, seed=4, frames=FRAMES)["path"]
    for key in ("robot0_joint_pos", "robot0_eef_pos", "robot0_eef_quat"):
        assert np.array_equal(_arrays(again, key), _arrays(files["ur5e"], key))
    assert not np.array_equal(_arrays(other, "robot0_joint_pos")[:5], _arrays(files["ur5e"], "robot0_joint_pos")[:5])


def test_urdf_path_and_bad_inputs(tmp_path):
    from posegen.robots.descriptions import builtin_text

    urdf = tmp_path / "arm.urdf"
    urdf.write_text(builtin_text("ur5e"))
    stats = generate_robot_dataset(tmp_path / "u.hdf5", urdf, n_demos=2, seed=0, frames=10)
    assert stats["dof"] == 6 and Path(stats["path"]).exists()
    with pytest.raises(ValueError, match="built-in"):
        generate_robot_dataset(tmp_path / "x.hdf5", "ur6", n_demos=2)
    with pytest.raises(ValueError, match="n_demos"):
        generate_robot_dataset(tmp_path / "x.hdf5", "ur5e", n_demos=0)
    with pytest.raises(ValueError, match="frames"):
        generate_robot_dataset(tmp_path / "x.hdf5", "ur5e", n_demos=2, frames=3)
    assert not (tmp_path / "x.hdf5").exists()


def test_panda_reach_grasp_generator_is_unchanged(tmp_path):
    """The hand-written Panda generator still runs (its module is untouched by the robot generator)."""
    from posegen.data.generate import generate_panda_dataset

    stats = generate_panda_dataset(tmp_path / "p.hdf5", n_demos=2, seed=0, frames=20)
    assert stats["n_kept"] >= 1
    with h5py.File(tmp_path / "p.hdf5", "r") as f:
        assert "robot0_gripper_qpos" in f["data/demo_0/obs"]


# ---------------------------------------------------------------------- load_robomimic with I<d> tokens
def test_bare_interval_tokens_take_limits_from_robot_or_limits(files, robots):
    robot, path = robots["ur5e"], files["ur5e"]
    lim = robot.joint_limits
    by_name = load_robomimic(path, keys={"robot0_joint_pos": "I6"}, robot="ur5e")
    by_limits = load_robomimic(path, keys={"robot0_joint_pos": "I6"}, limits=lim)
    assert by_name.manifold == robot.manifold == by_limits.manifold
    torch.testing.assert_close(by_name.points, by_limits.points)
    split = load_robomimic(path, keys={"robot0_joint_pos": "I6"}, limits=lim)
    assert repr(split.manifold).startswith("I6[")
    default = load_robomimic(path, robot=robot)                 # default keys: I<dof> for the joints
    assert default.manifold == Product(*pg.parse("R3 x SO3").factors, *robot.manifold.factors)
    keys = joint_keys({"a": "R3 x I2", "b": "I4"}, robot=robot)
    assert pg.parse(keys["a"]).factors[1] == Interval(lim[:2, 0], lim[:2, 1])
    assert pg.parse(keys["b"]) == Product(Interval(lim[2:, 0], lim[2:, 1]))
    with pytest.raises(ValueError, match="needs joint limits"):
        load_robomimic(path, keys={"robot0_joint_pos": "I6"})
    with pytest.raises(ValueError, match="has 6 joints but"):
        load_robomimic(path, keys={"robot0_joint_pos": "I5"}, robot=robot)
    with pytest.raises(ValueError, match="maps no key"):
        load_robomimic(path, keys={"robot0_joint_pos": "T6"}, robot=robot)
    with pytest.raises(ValueError, match="not both"):
        load_robomimic(path, keys={"robot0_joint_pos": "I6"}, robot=robot, limits=lim)
    with pytest.raises(ValueError, match="limits has 5 rows"):
        load_robomimic(path, keys={"robot0_joint_pos": "I6"}, limits=lim[:5])
    with pytest.raises(ValueError, match="joint limits"):  # values outside the limits are refused, not clamped
        load_robomimic(path, keys={"robot0_joint_pos": "I6"}, limits=lim * 0.01)


# ---------------------------------------------------------------------- the CLI
def test_cli_data_generate(tmp_path, capsys, robots):
    out = tmp_path / "sub" / "ur5e.hdf5"
    assert main(["data", "generate", "--robot", "ur5e", "--out", str(out), "--demos", "3", "--frames", "10",
                 "--seed", "1"]) == 0
    assert "3 reach episodes of ur5e" in capsys.readouterr().out
    ds = load_robomimic(out, keys={"robot0_joint_pos": "I6"}, robot=robots["ur5e"])
    assert len(ds.group_names) == 3
    assert main(["data", "generate", "--robot", "nope", "--out", str(tmp_path / "n.hdf5")]) == 2
    err = capsys.readouterr().err
    assert "'nope' is neither a built-in robot" in err and "ur5e" in err and not (tmp_path / "n.hdf5").exists()


# ---------------------------------------------------------------------- configs: data.robot and lerobot
def _tiny(data, **extra):
    cfg = {"data": data, "objective": {"name": "rfm"}, "model": {"hidden": 16, "depth": 2},
           "train": {"steps": 6, "batch_size": 16, "lr_schedule": "constant", "warmup": 0, "val_every": 3,
                     "log_every": 3, "checkpoint_every": 6, "val_points": 8,
                     "val_solver": {"method": "euler", "steps": 1}, "progress": False},
           "sample": {"n": 8, "solver": {"method": "euler", "steps": 2}},
           "eval": {"solver": {"method": "euler", "steps": 1}}, "plot": {"enabled": False}}
    cfg.update(extra)
    return cfg


def _write(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_config_data_robot_trains_on_the_robot_joint_space(files, robots, tmp_path):
    data = {"source": "robomimic", "path": files["ur5e"], "robot": "ur5e",
            "keys": {"robot0_joint_pos": "I6", "robot0_eef_pos": "R3"}}
    cfg = _write(tmp_path / "r.yaml", _tiny(data))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    want = Product(*robots["ur5e"].manifold.factors, Euclidean(3))
    assert pg.parse(saved["manifold"]) == want and saved["data"]["robot"] == "ur5e"
    assert pg.PoseFlow.load(out / "model.pt").manifold == want
    from posegen.cli.datasets import columns_from_config, data_manifold, factor_labels, load_splits

    c = resolve(_tiny(data))
    assert data_manifold(c) == want
    assert factor_labels(c, want) == ["robot0_joint_pos", "robot0_eef_pos"]
    assert columns_from_config(c, want)[0] == "robot0_joint_pos.q0"
    sp = load_splits(c, ("train", "valid"))
    assert bool(robots["ur5e"].within_limits(sp["train"].points[:, :6].double()).all())


def test_config_data_robot_errors(files, tmp_path):
    base = {"source": "robomimic", "path": files["ur5e"], "keys": {"robot0_joint_pos": "I6"}}
    with pytest.raises(ConfigError, match="set data.robot"):
        resolve(_tiny(dict(base)))
    with pytest.raises(ConfigError, match="no.*there is none|there is none"):
        resolve(_tiny({**base, "robot": "ur5e", "keys": {"robot0_joint_pos": "T6"}}))
    with pytest.raises(ConfigError, match="data.robot"):
        resolve(_tiny({"source": "earth", "name": "volcano", "robot": "ur5e"}))
    with pytest.raises(ConfigError, match="data.ee_link"):
        resolve(_tiny({**base, "ee_link": "tool0"}))
    cfg = _write(tmp_path / "bad.yaml", _tiny({**base, "robot": "ur6"}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    cfg = _write(tmp_path / "bad5.yaml", _tiny({**base, "robot": "ur5e", "keys": {"robot0_joint_pos": "I5"}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2


def test_config_source_lerobot_splits_by_episode(tmp_path):
    pytest.importorskip("pyarrow")
    from test_lerobot import LENGTHS, make_lerobot

    from posegen.cli.datasets import load_splits

    root = tmp_path / "lr"
    make_lerobot(root, "v3.0")
    data = {"source": "lerobot", "path": str(root), "split": [0.5, 0.5], "seed": 0,
            "keys": {"observation.eef[0:3]": "R3", "observation.state[0:7]": "T7"}, "condition_keys": ["action"]}
    sp = load_splits(resolve(_tiny(data)), ("train", "valid"))
    tg = {sp["train"].group_names[int(g)] for g in sp["train"].groups}
    vg = {sp["valid"].group_names[int(g)] for g in sp["valid"].groups}
    assert tg and vg and not tg & vg
    assert len(sp["train"]) + len(sp["valid"]) == sum(LENGTHS)
    assert sp["train"].conditions.shape[1] == 7
    cfg = _write(tmp_path / "l.yaml", _tiny(data))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "model.pt").exists()
    with pytest.raises(ConfigError, match="data.keys"):
        resolve(_tiny({"source": "lerobot", "path": str(root)}))
