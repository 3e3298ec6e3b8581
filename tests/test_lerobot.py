"""posegen.data.load_lerobot: LeRobot dataset folders (v2.1 and v3.0 layouts) written here with pyarrow."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import posegen as pg  # noqa: E402
from posegen.data import PoseDataset, load_lerobot  # noqa: E402

LENGTHS = (5, 7, 4, 6, 8, 3)          # frames of episodes 0..5
STATE_NAMES = [f"joint{i}.pos" for i in range(7)] + ["gripper.pos"]
EEF_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw"]


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _truth(seed=0):
    """Per episode: state (T, 8) [7 joints in [-pi, pi) + gripper], eef (T, 7) [pos + quat xyzw], action (T, 7)."""
    rng = np.random.default_rng(seed)
    out = {}
    for e, t in enumerate(LENGTHS):
        state = np.concatenate([rng.uniform(-math.pi, math.pi, (t, 7)), rng.uniform(0, 0.04, (t, 1))], 1)
        eef = np.concatenate([rng.normal(size=(t, 3)), _unit(rng.normal(size=(t, 4)))], 1)
        out[e] = {"observation.state": state, "observation.eef": eef, "action": rng.normal(size=(t, 7))}
    return out


def _features():
    f = {"observation.state": {"dtype": "float32", "shape": [8], "names": STATE_NAMES},
         "observation.eef": {"dtype": "float32", "shape": [7], "names": {"axes": EEF_NAMES}},
         "action": {"dtype": "float32", "shape": [7], "names": None},
         "observation.images.top": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channel"]}}
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        f[k] = {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
    return f


def _table(truth, eps, fixed=False, reverse=()):
    """One parquet table holding episodes ``eps`` (episodes in ``reverse`` written last frame first)."""
    cols = {k: [] for k in ("observation.state", "observation.eef", "action", "timestamp", "frame_index",
                            "episode_index", "index", "task_index")}
    start = {e: sum(LENGTHS[:e]) for e in truth}
    for e in eps:
        t = LENGTHS[e]
        order = range(t - 1, -1, -1) if e in reverse else range(t)
        for i in order:
            for k in ("observation.state", "observation.eef", "action"):
                cols[k].append(truth[e][k][i].astype(np.float32).tolist())
            cols["timestamp"].append(i / 10)
            cols["frame_index"].append(i)
            cols["episode_index"].append(e)
            cols["index"].append(start[e] + i)
            cols["task_index"].append(0)
    arrays = {}
    for k, v in cols.items():
        if k.startswith(("observation", "action")):
            typ = pa.list_(pa.float32(), len(v[0])) if fixed else pa.list_(pa.float32())
            arrays[k] = pa.array(v, type=typ)
        else:
            arrays[k] = pa.array(v, type=pa.float32() if k == "timestamp" else pa.int64())
    return pa.table(arrays)


def make_lerobot(root: Path, version="v3.0", truth=None, episodes_meta=True, fixed=False):
    """A LeRobot folder: v2.1 (one parquet per episode, meta/episodes.jsonl) or v3.0 (episodes 0-2 in
    file-000, 3-5 in file-001; episode 1 stored in reverse frame order; meta/episodes/ parquet)."""
    truth = _truth() if truth is None else truth
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": version, "robot_type": "panda", "fps": 10, "total_episodes": len(LENGTHS),
            "total_frames": sum(LENGTHS), "total_tasks": 1, "chunks_size": 1000, "splits": {"train": "0:6"},
            "features": _features()}
    if version.startswith("v2"):
        info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        (root / "data" / "chunk-000").mkdir(parents=True)
        for e in truth:
            pq.write_table(_table(truth, [e], fixed), root / info["data_path"].format(episode_chunk=0, episode_index=e))
        (root / "meta" / "episodes.jsonl").write_text(
            "".join(json.dumps({"episode_index": e, "tasks": ["reach"], "length": LENGTHS[e]}) + "\n" for e in truth))
    else:
        info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        (root / "data" / "chunk-000").mkdir(parents=True)
        files = {0: [0, 1, 2], 1: [3, 4, 5]}
        rows = {"episode_index": [], "data/chunk_index": [], "data/file_index": [], "dataset_from_index": [],
                "dataset_to_index": [], "length": []}
        for fi, eps in files.items():
            pq.write_table(_table(truth, eps, fixed, reverse=(1,)), root / info["data_path"].format(chunk_index=0,
                                                                                                 file_index=fi))
            for e in eps:
                rows["episode_index"].append(e)
                rows["data/chunk_index"].append(0)
                rows["data/file_index"].append(fi)
                rows["dataset_from_index"].append(sum(LENGTHS[:e]))
                rows["dataset_to_index"].append(sum(LENGTHS[:e + 1]))
                rows["length"].append(LENGTHS[e])
        if episodes_meta:
            (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
            pq.write_table(pa.table(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return truth


def _rows(truth, key, cols, eps=None):
    eps = range(len(LENGTHS)) if eps is None else eps
    return np.concatenate([truth[e][key][:, cols] for e in eps]).astype(np.float32)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(params=["v2.1", "v3.0"])
def folder(request, tmp_path):
    root = tmp_path / f"ds_{request.param}"
    return root, make_lerobot(root, request.param)


# ---------------------------------------------------------------------- loading
def test_points_groups_and_meta_match_what_was_written(folder):
    root, truth = folder
    ds = load_lerobot(root, keys={"observation.state[0:7]": "T7"})
    assert isinstance(ds, PoseDataset) and ds.manifold == pg.parse("T7")
    assert ds.points.shape == (sum(LENGTHS), 7)
    torch.testing.assert_close(ds.points, torch.from_numpy(_rows(truth, "observation.state", slice(0, 7))))
    assert ds.group_names == [f"episode_{e}" for e in range(len(LENGTHS))]
    assert ds.groups.tolist() == [e for e, t in enumerate(LENGTHS) for _ in range(t)]
    assert ds.columns == [f"observation.state[0:7].theta{j}" for j in range(7)]
    assert ds.meta["format"] == "lerobot" and ds.meta["fps"] == 10 and ds.meta["robot_type"] == "panda"
    assert ds.meta["episodes"] == list(range(len(LENGTHS)))
    assert ds.meta["selected"]["observation.state[0:7]"] == ["observation.state", list(range(7))]


def test_v2_and_v3_of_the_same_data_load_the_same(tmp_path):
    truth = _truth(3)
    make_lerobot(tmp_path / "a", "v2.1", truth)
    make_lerobot(tmp_path / "b", "v3.0", truth, fixed=True)           # fixed-size list columns too
    make_lerobot(tmp_path / "c", "v3.0", truth, episodes_meta=False)  # episodes found from the data files
    keys = {"observation.eef[0:3]": "R3", "observation.eef[3:7]": "SO3", "observation.state[:7]": "T7"}
    a, b, c = (load_lerobot(tmp_path / n, keys=keys, condition_keys=["action"]) for n in "abc")
    for other in (b, c):
        assert torch.equal(a.points, other.points) and torch.equal(a.conditions, other.conditions)
        assert torch.equal(a.groups, other.groups) and a.group_names == other.group_names
    assert a.manifold == pg.parse("R3 x SO3 x T7")
    torch.testing.assert_close(a.points[:, 3:7], torch.from_numpy(_rows(truth, "observation.eef", slice(3, 7))))
    torch.testing.assert_close(a.conditions, torch.from_numpy(_rows(truth, "action", slice(None))))
    assert a.condition_columns == [f"action[{j}]" for j in range(7)]


def test_v3_frames_are_put_in_frame_order(tmp_path):
    truth = make_lerobot(tmp_path / "d", "v3.0")            # episode 1 is written last frame first
    ds = load_lerobot(tmp_path / "d", keys={"observation.state[0:7]": "T7"}, episodes=[1])
    torch.testing.assert_close(ds.points, torch.from_numpy(_rows(truth, "observation.state", slice(0, 7), [1])))


def test_episodes_select_and_group(folder):
    root, truth = folder
    ds = load_lerobot(root, keys={"observation.state[0:7]": "T7"}, episodes=[4, 1])
    assert ds.group_names == ["episode_1", "episode_4"] and ds.meta["episodes"] == [1, 4]
    assert len(ds) == LENGTHS[1] + LENGTHS[4]
    torch.testing.assert_close(ds.points, torch.from_numpy(_rows(truth, "observation.state", slice(0, 7), [1, 4])))
    one = load_lerobot(root, keys={"observation.state[0:7]": "T7"}, episodes=2)
    assert len(one) == LENGTHS[2] and one.group_names == ["episode_2"]


def test_key_syntax_indices_names_and_steps(folder):
    root, truth = folder
    ds = load_lerobot(root, keys={"observation.state[joint3.pos, joint0.pos]": "T2",
                                  "observation.state[-1]": "R1", "observation.state[0:7:3]": "T3",
                                  "observation.eef[x,y,z]": "R3"})
    expect = np.concatenate([_rows(truth, "observation.state", [3, 0]), _rows(truth, "observation.state", [7]),
                             _rows(truth, "observation.state", [0, 3, 6]),
                             _rows(truth, "observation.eef", [0, 1, 2])], 1)
    torch.testing.assert_close(ds.points, torch.from_numpy(expect))


def test_quat_order_wxyz_is_converted(tmp_path):
    truth = _truth(1)
    for e in truth:                                          # store w first
        truth[e]["observation.eef"] = truth[e]["observation.eef"][:, [0, 1, 2, 6, 3, 4, 5]]
    make_lerobot(tmp_path / "w", "v3.0", truth)
    ds = load_lerobot(tmp_path / "w", keys={"observation.eef[3:7]": "SO3"}, quat_order="wxyz")
    torch.testing.assert_close(ds.points, torch.from_numpy(_rows(truth, "observation.eef", [4, 5, 6, 3])))


def test_frames_stride_and_last(folder):
    root, _ = folder
    ds = load_lerobot(root, keys={"observation.state[0:7]": "T7"}, frames="last")
    assert len(ds) == len(LENGTHS) and ds.groups.tolist() == list(range(len(LENGTHS)))
    ds2 = load_lerobot(root, keys={"observation.state[0:7]": "T7"}, frames=2)
    assert len(ds2) == sum((t + 1) // 2 for t in LENGTHS)


def test_unwrapped_joint_angles_are_wrapped(tmp_path):
    truth = _truth(2)
    for e in truth:
        truth[e]["observation.state"][:, 0] += 2 * math.pi
    make_lerobot(tmp_path / "u", "v2.1", truth)
    ds = load_lerobot(tmp_path / "u", keys={"observation.state[0:7]": "T7"})
    assert float(ds.points.abs().max()) <= math.pi


# ---------------------------------------------------------------------- robot= name mapping
def test_robot_maps_joint_columns_by_name_in_robot_order(folder):
    root, truth = folder
    order = [6, 2, 0, 5, 1, 3, 4]
    robot = SimpleNamespace(joint_names=tuple(f"joint{i}" for i in order), dof=7)
    ds = load_lerobot(root, robot=robot)                        # default keys -> observation.state: T7
    torch.testing.assert_close(ds.points, torch.from_numpy(_rows(truth, "observation.state", order)))
    assert ds.meta["selected"]["observation.state"] == ["observation.state", order]
    assert ds.meta["robot"] == [f"joint{i}" for i in order]
    exact = SimpleNamespace(joint_names=("joint1.pos", "gripper.pos"), dof=2)   # exact names also match
    ds2 = load_lerobot(root, keys={"observation.state": "T2"}, robot=exact)
    torch.testing.assert_close(ds2.points[:, 0], torch.from_numpy(_rows(truth, "observation.state", [1])[:, 0]))


def test_robot_errors(folder):
    root, _ = folder
    with pytest.raises(ValueError, match=r"do not map onto feature 'observation.state'.*"
                                         r"no value for joints \['elbow'\]"):
        load_lerobot(root, robot=SimpleNamespace(joint_names=("joint0", "elbow"), dof=2))
    with pytest.raises(ValueError, match=r"meta/info.json gives no names for feature 'action'"):
        load_lerobot(root, keys={"action": "T7"}, robot=SimpleNamespace(joint_names=tuple("abcdefg"), dof=7))
    with pytest.raises(ValueError, match=r"robot= \(3 joints\) maps no key"):
        load_lerobot(root, keys={"observation.state[0:7]": "T7"},
                     robot=SimpleNamespace(joint_names=tuple("abc"), dof=3))
    with pytest.raises(ValueError, match=r"robot must have \.joint_names"):
        load_lerobot(root, robot=SimpleNamespace(joint_names=("a", "b"), dof=3))


# ---------------------------------------------------------------------- splits and training
def test_split_by_episode_keeps_episodes_whole(folder):
    root, _ = folder
    ds = load_lerobot(root, keys={"observation.state[0:7]": "T7"})
    train, val = ds.split_by_group((0.5, 0.5), seed=0)
    tg, vg = set(train.meta["split"]["groups"]), set(val.meta["split"]["groups"])
    assert tg and vg and not tg & vg and tg | vg == set(ds.group_names)
    assert len(train) + len(val) == len(ds)
    assert len(train) == sum(LENGTHS[int(n.split("_")[1])] for n in tg)
    named = ds.split_by_group({"train": ["episode_0", "episode_3"], "valid": ["episode_5"]})
    assert len(named["train"]) == LENGTHS[0] + LENGTHS[3] and len(named["valid"]) == LENGTHS[5]


def test_tiny_training_run_on_lerobot_data(tmp_path):
    make_lerobot(tmp_path / "t", "v3.0")
    ds = load_lerobot(tmp_path / "t", keys={"observation.eef[0:3]": "R3", "observation.state[0:7]": "T7"},
                      condition_keys="action")
    train, val = ds.split_by_group((0.67, 0.33), seed=0)
    flow = pg.PoseFlow(ds.manifold, cond_dim=7, hidden=16, depth=2)
    res = pg.train(flow, train, "rfm", steps=5, batch_size=16, lr=1e-2, warmup=1, progress=False, device="cpu")
    assert res.steps_done == 5
    x = res.flow.sample(4, condition=val.conditions[0], seed=0, steps=2)
    assert x.shape == (4, 10) and torch.isfinite(x).all()


# ---------------------------------------------------------------------- malformed folders
def test_missing_info_json(tmp_path):
    make_lerobot(tmp_path / "m", "v2.1")
    (tmp_path / "m" / "meta" / "info.json").unlink()
    with pytest.raises(ValueError, match=r"not a LeRobot dataset folder: expected .*meta/info.json"):
        load_lerobot(tmp_path / "m")
    with pytest.raises(ValueError, match=r"folder does not exist"):
        load_lerobot(tmp_path / "nowhere")


def test_unknown_codebase_version(tmp_path):
    make_lerobot(tmp_path / "v", "v1.6")
    with pytest.raises(ValueError, match=r"info.json: unknown codebase_version 'v1.6'; supported: 'v2.x'"):
        load_lerobot(tmp_path / "v")


def test_missing_column_lists_available_sorted(folder):
    root, _ = folder
    with pytest.raises(ValueError, match=r"\.parquet: no column 'observation.joints'; available columns: \['action', "
                                         r"'episode_index', 'frame_index', 'index', 'observation.eef', "
                                         r"'observation.state', 'task_index', 'timestamp'\]"):
        load_lerobot(root, keys={"observation.joints": "T7"})


def test_bad_selections_and_widths(folder):
    root, _ = folder
    with pytest.raises(ValueError, match=r"feature 'observation.state' gives 8 values per row but token 'T7' needs 7; "
                                         r"select 7 of them, e.g. 'observation.state\[0:7\]' or pass robot="):
        load_lerobot(root)
    with pytest.raises(ValueError, match=r"index 8 is out of range for feature 'observation.state', which has 8"):
        load_lerobot(root, keys={"observation.state[8]": "R1"})
    with pytest.raises(ValueError, match=r"has no value named 'wrist'; its names: \['joint0.pos'"):
        load_lerobot(root, keys={"observation.state[wrist]": "R1"})
    with pytest.raises(ValueError, match=r"'observation.images.top' is a video feature"):
        load_lerobot(root, keys={"observation.images.top": "R3"})
    with pytest.raises(ValueError, match=r"selects 'a' by name, but meta/info.json gives no names for "
                                         r"feature 'action'"):
        load_lerobot(root, keys={"action[a]": "R1"})


def test_ragged_column(tmp_path):
    make_lerobot(tmp_path / "r", "v2.1")
    path = tmp_path / "r" / "data" / "chunk-000" / "episode_000002.parquet"
    t = pq.read_table(path)
    rows = t.column("observation.state").to_pylist()
    rows[1] = rows[1][:5]
    t = t.set_column(t.schema.get_field_index("observation.state"), "observation.state",
                     pa.array(rows, type=pa.list_(pa.float32())))
    pq.write_table(t, path)
    with pytest.raises(ValueError, match=r"episode_000002.parquet: column 'observation.state' is ragged: rows hold "
                                         r"lists of lengths \[5, 8\]"):
        load_lerobot(tmp_path / "r", keys={"observation.state[0:5]": "T5"})
    # the other episodes load (the damaged file is not read)
    assert len(load_lerobot(tmp_path / "r", keys={"observation.state[0:5]": "T5"}, episodes=[0, 1])) == 12


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_values_are_refused_or_dropped(tmp_path, bad):
    truth = _truth(4)
    truth[3]["observation.state"][2, 4] = bad
    make_lerobot(tmp_path / "n", "v3.0", truth)
    with pytest.raises(ValueError, match=r"file-001.parquet: column 'observation.state' "
                                         r"\(key 'observation.state\[0:7\]'\) "
                                         r"holds NaN or inf in 1 rows of episode 3 \(first at frame_index 2\)"):
        load_lerobot(tmp_path / "n", keys={"observation.state[0:7]": "T7"})
    with pytest.warns(pg.data.DataWarning, match="dropped 1 of"):
        ds = load_lerobot(tmp_path / "n", keys={"observation.state[0:7]": "T7"}, nonfinite="drop")
    assert len(ds) == sum(LENGTHS) - 1 and ds.meta["dropped_rows"] == 1


def test_episodes_that_do_not_exist(folder):
    root, _ = folder
    with pytest.raises(ValueError, match=r"episodes \[6, 9\] do not exist; available episode indices: "
                                         r"0\.\.5 \(6 episodes\)"):
        load_lerobot(root, keys={"observation.state[0:7]": "T7"}, episodes=[1, 6, 9])
    with pytest.raises(ValueError, match=r"episodes must be None, an episode index or a sequence"):
        load_lerobot(root, keys={"observation.state[0:7]": "T7"}, episodes=["0"])


def test_missing_data_file(tmp_path):
    make_lerobot(tmp_path / "f", "v3.0")
    (tmp_path / "f" / "data" / "chunk-000" / "file-001.parquet").unlink()
    with pytest.raises(ValueError, match=r"file-001.parquet: data file of episodes \[3, 4, 5\] does not exist"):
        load_lerobot(tmp_path / "f", keys={"observation.state[0:7]": "T7"})


def test_loader_writes_nothing(folder):
    root, _ = folder
    before = _tree_digest(root)
    load_lerobot(root, keys={"observation.state[0:7]": "T7"}, condition_keys=["action"])
    with pytest.raises(ValueError):
        load_lerobot(root, keys={"nope": "T7"})
    assert _tree_digest(root) == before


def test_missing_pyarrow_names_the_extra(folder, monkeypatch):
    root, _ = folder
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"posegen\[lerobot\]"):
        load_lerobot(root, keys={"observation.state[0:7]": "T7"})


# ---------------------------------------------------------------------- the config source
def test_config_source_lerobot_with_robot_limits(tmp_path):
    """``data.source: lerobot`` reads the folder with ``data.keys``; ``data.robot`` gives a bare ``I6`` the robot's
    joint space; the splits keep episodes whole."""
    pytest.importorskip("pytorch_kinematics")
    from posegen.cli.datasets import data_manifold, load_splits
    from posegen.config import resolve
    from posegen.robots import load

    truth = make_lerobot(tmp_path / "r", "v2.1")
    cfg = resolve({"data": {"source": "lerobot", "path": str(tmp_path / "r"), "robot": "ur5e", "split": [0.5, 0.5],
                            "keys": {"observation.state[0:6]": "I6", "observation.eef[0:3]": "R3"}}})
    sp = load_splits(cfg, ("train", "valid"))
    robot = load("ur5e")
    want = pg.parse(repr(robot.manifold) + " x R3")
    assert sp["train"].manifold == want == data_manifold(cfg)
    groups = [{p.group_names[int(g)] for g in p.groups} for p in (sp["train"], sp["valid"])]
    assert groups[0] and groups[1] and not groups[0] & groups[1]
    got = torch.cat([sp["train"].points, sp["valid"].points])[:, :6]
    want_rows = torch.from_numpy(_rows(truth, "observation.state", list(range(6))))
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, want_rows.tolist()))   # as stored, not wrapped


def test_robot_with_limits_maps_names_and_gives_a_bare_interval_token_its_limits(folder):
    """A robot with joint limits (posegen.robots.Robot or alike): keys {"observation.state": "I7"} becomes
    the robot's joint space, columns picked by joint name."""
    root, truth = folder
    order = [6, 2, 0, 5, 1, 3, 4]
    lim = torch.tensor([[-math.pi, math.pi]] * 7, dtype=torch.float64)
    robot = SimpleNamespace(joint_names=tuple(f"joint{i}" for i in order), dof=7, joint_limits=lim,
                            manifold=pg.manifolds.parse("I7", limits=lim), name="toy")
    ds = load_lerobot(root, keys={"observation.state": "I7"}, robot=robot)
    assert ds.manifold == robot.manifold
    torch.testing.assert_close(ds.points, torch.from_numpy(_rows(truth, "observation.state", order)), atol=1e-3,
                               rtol=0)  # values within 1e-4 of the range of a limit are moved inside
    with pytest.raises(ValueError, match="needs joint limits"):
        load_lerobot(root, keys={"observation.state[0:7]": "I7"})
