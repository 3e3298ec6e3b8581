"""posegen.data: robomimic, posegen HDF5, tables, earth data; validation and dataset splits."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil

import h5py
import numpy as np
import pytest
import torch

from posegen.data import (EARTH_DATASETS, DataWarning, PoseDataset, earth_splits, latlon_to_sphere, load_earth,
                          load_latlon, load_points, load_robomimic, load_table, save_points, sphere_to_latlon,
                          validate_points)
from posegen.data import earth as earth_mod
from posegen.data.tabular import read_cells, read_table, table_numbers
from posegen.manifolds import parse

TWO_PI = 2 * math.pi


# ---------------------------------------------------------------------- robomimic fixtures
def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def make_robomimic(path, demos=range(1, 12), quat_order="xyzw", seed=0, unwrapped=True, edit=None):
    """A robomimic-layout file: demo_<i> of length 4 + i % 5 with eef pos/quat, 7 joints, an object
    vector and actions; masks train (all but the last two) and valid. Returns the xyzw/wrapped truth
    ``{demo: (pos, quat_xyzw, joints_wrapped, object, actions)}``. ``edit(f)`` may damage the file."""
    rng = np.random.default_rng(seed)
    truth = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for i in demos:
            t = 4 + i % 5
            name = f"demo_{i}"
            pos = rng.normal(size=(t, 3))
            q = _unit(rng.normal(size=(t, 4)))
            joints = rng.uniform(-math.pi, math.pi, size=(t, 7))
            stored_joints = joints + (TWO_PI * rng.integers(-2, 3, size=(t, 7)) if unwrapped else 0)
            obj = rng.normal(size=(t, 10))
            actions = rng.normal(size=(t, 7))
            g = data.create_group(name)
            obs = g.create_group("obs")
            obs["robot0_eef_pos"] = pos
            obs["robot0_eef_quat"] = q if quat_order == "xyzw" else q[:, [3, 0, 1, 2]]
            obs["robot0_joint_pos"] = stored_joints
            obs["object"] = obj
            g["actions"] = actions
            g.attrs["num_samples"] = t
            total += t
            truth[name] = (pos, q, joints, obj, actions)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1})
        names = [f"demo_{i}".encode() for i in demos]
        mask = f.create_group("mask")
        mask["train"] = np.array(names[:-2])
        mask["valid"] = np.array(names[-2:])
        if edit is not None:
            edit(f)
    return truth


@pytest.fixture
def rm_file(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    return path, make_robomimic(path)


def _numeric_names(demos):
    return [f"demo_{i}" for i in sorted(demos)]


# ---------------------------------------------------------------------- robomimic: loading
def test_robomimic_points_manifold_and_numeric_demo_order(rm_file):
    path, truth = rm_file
    ds = load_robomimic(path, dtype=torch.float64)
    assert ds.manifold == parse("R3 x SO3 x T7") and ds.points.shape[1] == 14
    names = _numeric_names(range(1, 12))
    assert ds.group_names == names  # demo_10 and demo_11 after demo_9, numbering from 1
    assert ds.columns[:4] == ["robot0_eef_pos.x", "robot0_eef_pos.y", "robot0_eef_pos.z", "robot0_eef_quat.qx"]
    start = 0
    for g, name in enumerate(names):
        pos, q, joints, _, _ = truth[name]
        t = len(pos)
        rows = slice(start, start + t)
        assert torch.all(ds.groups[rows] == g)
        assert torch.equal(ds.points[rows, :3], torch.from_numpy(pos))
        assert torch.equal(ds.points[rows, 3:7], torch.from_numpy(q))
        # unwrapped joint angles come back wrapped to [-pi, pi), the same configuration
        assert torch.allclose(ds.points[rows, 7:], torch.from_numpy(joints), atol=1e-12)
        start += t
    assert start == len(ds)
    assert ds.points[:, 7:].min() >= -math.pi and ds.points[:, 7:].max() < math.pi
    ds.manifold.check_point(ds.points)
    assert ds.meta["source"] == str(path.resolve()) and ds.meta["keys"]["robot0_eef_quat"] == "SO3"
    assert ds.meta["env_args"] == {"env_name": "Lift", "type": 1} and ds.meta["demos"] == 11
    assert ds.meta["mask"] is None and ds.meta["frames"] is None


def test_robomimic_in_range_joint_angles_are_untouched(tmp_path):
    path = tmp_path / "wrapped.hdf5"
    truth = make_robomimic(path, unwrapped=False)
    ds = load_robomimic(path, dtype=torch.float64)
    expect = np.concatenate([truth[n][2] for n in _numeric_names(range(1, 12))])
    assert torch.equal(ds.points[:, 7:], torch.from_numpy(expect))  # bit for bit


def test_robomimic_demo_numbering_from_zero(tmp_path):
    path = tmp_path / "zero.hdf5"
    make_robomimic(path, demos=range(0, 12))
    ds = load_robomimic(path)
    assert ds.group_names == _numeric_names(range(0, 12))


def test_robomimic_quat_order_wxyz_matches_xyzw(tmp_path):
    a, b = tmp_path / "xyzw.hdf5", tmp_path / "wxyz.hdf5"
    make_robomimic(a, seed=3)
    make_robomimic(b, seed=3, quat_order="wxyz")
    ref = load_robomimic(a)
    assert torch.equal(load_robomimic(b, quat_order="wxyz").points, ref.points)
    assert torch.equal(load_robomimic(b, quat_order={"robot0_eef_quat": "wxyz"}).points, ref.points)
    assert not torch.equal(load_robomimic(b).points, ref.points)  # read as xyzw: a different rotation
    assert load_robomimic(b, quat_order="wxyz").meta["quat_order"] == {"robot0_eef_quat": "wxyz"}


def test_robomimic_keys_conditions_frames_and_masks(rm_file):
    path, truth = rm_file
    names = _numeric_names(range(1, 12))
    lengths = [len(truth[n][0]) for n in names]

    ds = load_robomimic(path, keys={"robot0_joint_pos": "T7", "robot0_eef_pos": "R3"})
    assert ds.manifold == parse("T7 x R3")  # key order sets the product order
    ds = load_robomimic(path, condition_keys=["object", "actions"], dtype=torch.float64)
    assert ds.conditions.shape == (sum(lengths), 17)
    assert ds.condition_columns[0] == "object[0]" and ds.condition_columns[-1] == "actions[6]"
    first = truth[names[0]]
    assert torch.equal(ds.conditions[: lengths[0]], torch.from_numpy(np.hstack([first[3], first[4]])))

    last = load_robomimic(path, frames="last", dtype=torch.float64)
    assert len(last) == 11 and torch.equal(last.groups, torch.arange(11))
    assert torch.equal(last.points[:, :3], torch.from_numpy(np.stack([truth[n][0][-1] for n in names])))
    first_frames = load_robomimic(path, frames="first", dtype=torch.float64)
    assert torch.equal(first_frames.points[:, :3], torch.from_numpy(np.stack([truth[n][0][0] for n in names])))
    strided = load_robomimic(path, frames=3, dtype=torch.float64)
    assert len(strided) == sum(len(range(0, t, 3)) for t in lengths)
    assert torch.equal(strided.points[:2, :3], torch.from_numpy(truth[names[0]][0][[0, 3]]))

    valid = load_robomimic(path, mask="valid")
    assert valid.group_names == ["demo_10", "demo_11"] and valid.meta["mask"] == "valid"
    train = load_robomimic(path, mask="train")
    assert train.group_names == names[:-2] and len(train) + len(valid) == sum(lengths)


def test_robomimic_nonfinite_drop_counts_and_keeps_groups(tmp_path):
    def poison(f):
        f["data/demo_3/obs/robot0_eef_pos"][1, 0] = np.nan
        f["data/demo_10/obs/robot0_joint_pos"][0, 2] = np.inf
        f["data/demo_10/actions"][2, 0] = np.nan  # a condition: its row goes too when conditions are loaded

    path = tmp_path / "nan.hdf5"
    make_robomimic(path, edit=poison)
    with pytest.raises(ValueError, match=r"2 of \d+ rows contain NaN or inf \(rows \['demo_3\[1\]', 'demo_10\[0\]'\]\)"):
        load_robomimic(path)
    full = sum(4 + i % 5 for i in range(1, 12))
    with pytest.warns(DataWarning, match=r"dropped 2 of \d+ rows"):
        ds = load_robomimic(path, nonfinite="drop")
    assert len(ds) == full - 2 and ds.meta["dropped_rows"] == 2
    assert int((ds.groups == 2).sum()) == 4 + 3 % 5 - 1
    with pytest.warns(DataWarning, match=r"dropped 3 of \d+ rows"):
        ds = load_robomimic(path, nonfinite="drop", condition_keys=["actions"])
    assert len(ds) == full - 3 and ds.conditions.shape == (full - 3, 7)


def test_robomimic_near_unit_quaternions_renormalised(tmp_path):
    def scale(f):
        f["data/demo_2/obs/robot0_eef_quat"][0] = f["data/demo_2/obs/robot0_eef_quat"][0] * 1.01

    path = tmp_path / "near.hdf5"
    make_robomimic(path, edit=scale)
    with pytest.warns(DataWarning, match=r"renormalised 1 of \d+ rows of factor 1 \(SO3, columns 3:7 = robot0_eef_quat\)"):
        ds = load_robomimic(path)
    assert torch.allclose(ds.points[:, 3:7].norm(dim=1), torch.ones(len(ds)), atol=1e-6)


# ---------------------------------------------------------------------- robomimic: every bad input
def _not_hdf5(path):
    path.write_text("demo_1,1,2,3\n")


def _truncated(path):
    make_robomimic(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit(fn):
    return lambda path: make_robomimic(path, edit=fn)


def _rename_data(f):
    f.move("data", "episodes")


def _drop_key(f):
    del f["data/demo_5/obs/robot0_joint_pos"]


def _wide_quat(f):
    del f["data/demo_1/obs/robot0_eef_quat"]
    f["data/demo_1/obs/robot0_eef_quat"] = np.zeros((5, 3))


def _ragged(f):
    a = f["data/demo_4/obs/robot0_eef_pos"][()]
    del f["data/demo_4/obs/robot0_eef_pos"]
    f["data/demo_4/obs/robot0_eef_pos"] = a[:-1]


def _far_quat(f):
    f["data/demo_7/obs/robot0_eef_quat"][2] = [0.0, 0.0, 0.0, 2.0]


def _zero_quat(f):
    f["data/demo_7/obs/robot0_eef_quat"][2] = [0.0, 0.0, 0.0, 0.0]


def _nan(f):
    f["data/demo_6/obs/robot0_eef_pos"][0, 1] = np.nan


BAD_FILES = {
    "not_hdf5": (_not_hdf5, {}, ValueError, "not a readable HDF5 file"),
    "truncated": (_truncated, {}, ValueError, "not a readable HDF5 file"),
    "no_data_group": (_edit(_rename_data), {}, ValueError, r"no 'data' group.*\['episodes', 'mask'\]"),
    "missing_key": (_edit(_drop_key), {}, ValueError,
                    r"demo_5 has no obs key 'robot0_joint_pos'; available obs keys: "
                    r"\['object', 'robot0_eef_pos', 'robot0_eef_quat'\]"),
    "width": (_edit(_wide_quat), {}, ValueError, r"demo_1/obs/robot0_eef_quat has shape \(5, 3\).*'SO3' needs \(T, 4\)"),
    "ragged": (_edit(_ragged), {}, ValueError, r"demo_4 has keys of different lengths \(ragged\)"),
    "nan": (_edit(_nan), {}, ValueError, r"1 of \d+ rows contain NaN or inf \(rows \['demo_6\[0\]'\]\)"),
    "far_quat": (_edit(_far_quat), {}, ValueError,
                 r"factor 1 \(SO3, columns 3:7 = robot0_eef_quat\) must hold unit vectors.*demo_7\[2\]"),
    "zero_quat": (_edit(_zero_quat), {}, ValueError, r"must hold unit vectors.*norms \[0\]"),
    "quat_order": (make_robomimic, {"quat_order": "wzyx"}, ValueError, r"quat_order: quaternion order must be one of"),
    "quat_order_key": (make_robomimic, {"quat_order": {"robot0_eef_pos": "wxyz"}}, ValueError,
                       r"not SO3 keys; SO3 keys: \['robot0_eef_quat'\]"),
    "mask": (make_robomimic, {"mask": "test"}, ValueError, r"unknown mask 'test'; available masks: \['train', 'valid'\]"),
    "frames": (make_robomimic, {"frames": 0}, ValueError, r"Invalid frames=0"),
    "token": (make_robomimic, {"keys": {"robot0_eef_pos": "Q3"}}, ValueError, r"keys\['robot0_eef_pos'\] = 'Q3'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_robomimic_bad_input_refused_and_file_unchanged(tmp_path, case):
    build, kwargs, error, pattern = BAD_FILES[case]
    path = tmp_path / "bad.hdf5"
    build(path)
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, path.stat().st_size)
    with pytest.raises(error, match=pattern):
        load_robomimic(path, **kwargs)
    after = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, path.stat().st_size)
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["bad.hdf5"]


def test_robomimic_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_robomimic(tmp_path / "nope.hdf5")


def test_robomimic_near_quat_drop_mode_does_not_hide_far_ones(tmp_path):
    path = tmp_path / "far.hdf5"
    make_robomimic(path, edit=_far_quat)
    with pytest.raises(ValueError, match="must hold unit vectors"):
        load_robomimic(path, nonfinite="drop")


# ---------------------------------------------------------------------- posegen HDF5 layout
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("quat_order", ["xyzw", "wxyz"])
def test_h5io_round_trip_exact(tmp_path, dtype, quat_order):
    m = parse("R3 x SO3 x T2 x S2")
    g = torch.Generator().manual_seed(1)
    x = m.sample_base(200, generator=g, dtype=dtype)
    c = torch.randn(200, 3, generator=g, dtype=dtype)
    groups = torch.arange(200) % 7
    path = tmp_path / "pts.h5"
    save_points(path, x, m, conditions=c, condition_columns=["a", "b", "c"], groups=groups,
                group_names=[f"demo_{i}" for i in range(7)], quat_order=quat_order, provenance={"source": "unit test"})
    ds = load_points(path)
    assert ds.points.dtype == dtype and torch.equal(ds.points, x)
    assert ds.conditions.dtype == dtype and torch.equal(ds.conditions, c)
    assert torch.equal(ds.groups, groups) and ds.group_names[3] == "demo_3"
    assert ds.manifold == m and ds.columns == m.coord_names() and ds.condition_columns == ["a", "b", "c"]
    assert ds.meta["provenance"] == {"source": "unit test"} and ds.meta["stored_quat_order"] == quat_order
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "posegen-points" and int(f.attrs["format_version"]) == 1
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", f.attrs["created"])
        assert f["points"].attrs["manifold"] == "R3 x SO3 x T2 x S2" and f["points"].attrs["quat_order"] == quat_order
        stored = torch.from_numpy(f["points"][()])
    expect = x[:, 3:7] if quat_order == "xyzw" else x[:, [6, 3, 4, 5]]
    assert torch.equal(stored[:, 3:7], expect)


def test_h5io_dataset_round_trip_and_overwrite(tmp_path, rm_file):
    ds = load_robomimic(rm_file[0], condition_keys=["actions"])
    path = tmp_path / "copy.h5"
    save_points(path, ds)
    back = load_points(path)
    assert torch.equal(back.points, ds.points) and torch.equal(back.conditions, ds.conditions)
    assert back.group_names == ds.group_names and back.columns == ds.columns
    assert back.meta["provenance"]["keys"] == ds.meta["keys"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_points(path, ds)
    save_points(path, ds.subsample(2), overwrite=True)
    assert len(load_points(path)) == len(ds.subsample(2))


def test_h5io_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    m = parse("R3 x SO3")
    x = m.sample_base(10, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "a.h5"
    save_points(path, x, m)
    assert os.listdir(tmp_path) == ["a.h5"]
    before = path.read_bytes()

    import posegen.data.h5io as h5io

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(h5io, "convert_quats", crash)  # called inside the open temporary file
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_points(path, x * 0 + x, m, overwrite=True)
    assert os.listdir(tmp_path) == ["a.h5"] and path.read_bytes() == before


def test_h5io_refuses_foreign_and_broken_files(tmp_path, rm_file):
    with pytest.raises(ValueError, match="not a posegen points file.*robomimic file\\? use load_robomimic"):
        load_points(rm_file[0])
    text = tmp_path / "t.h5"
    text.write_text("x")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_points(text)
    with pytest.raises(FileNotFoundError):
        load_points(tmp_path / "missing.h5")

    m = parse("R3 x SO3")
    x = m.sample_base(5, generator=torch.Generator().manual_seed(0))

    def variant(name, edit):
        p = tmp_path / name
        save_points(p, x, m)
        with h5py.File(p, "r+") as f:
            edit(f)
        return p

    p = variant("v2.h5", lambda f: f.attrs.__setitem__("format_version", 2))
    with pytest.raises(ValueError, match="format_version 2.*reads version 1 only"):
        load_points(p)
    p = variant("spec.h5", lambda f: f["points"].attrs.__setitem__("manifold", "R3 x Q4"))
    with pytest.raises(ValueError, match="manifold='R3 x Q4' does not parse"):
        load_points(p)
    p = variant("width.h5", lambda f: f["points"].attrs.__setitem__("manifold", "R3 x S2"))
    with pytest.raises(ValueError, match=r"must have shape \(N, 6\)"):
        load_points(p)

    def off(f):
        f["points"][0, 3:7] = [0, 0, 0, 3.0]

    p = variant("off.h5", off)
    with pytest.raises(ValueError, match="must hold unit vectors"):
        load_points(p)


def test_h5io_refuses_points_off_the_manifold_at_save(tmp_path):
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]])
    with pytest.raises(ValueError, match="not on R3 x SO3"):
        save_points(tmp_path / "x.h5", x, "R3 x SO3")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- validation and datasets
def test_validate_points_rules():
    m = parse("R3 x SO3 x T2")
    x = torch.cat([torch.zeros(4, 3), torch.tensor([[0.0, 0, 0, 1]]).repeat(4, 1), torch.zeros(4, 2)], 1)
    out, keep = validate_points(m, x)
    assert out is x and keep.all()
    with pytest.raises(ValueError, match=r"shape \(N, 9\) for R3 x SO3 x T2 with columns R3 \[0:3\] \+ SO3 \[3:7\]"):
        validate_points(m, x[:, :8])
    y = x.clone()
    y[1, 7] = 200.0
    with pytest.raises(ValueError, match="outside \\[-pi, pi\\].*degrees.*Unwrapped joint angles.*wrap=True"):
        validate_points(m, y)
    out, _ = validate_points(m, y, wrap=True)
    assert out[1, 7] == pytest.approx(200.0 - 64 * math.pi, abs=1e-4) and torch.equal(out[0], x[0])
    y = x.clone()
    y[2, 3:7] = torch.tensor([0.0, 0, 0, 1.0 + 5e-5])  # within float32's unit tolerance: passes untouched
    out, _ = validate_points(m, y)
    assert out is y
    y[2, 6] = 1.02
    with pytest.warns(DataWarning, match="renormalised 1 of 4 rows"):
        out, _ = validate_points(m, y)
    assert out[2, 6] == 1.0 and y[2, 6] == pytest.approx(1.02)  # the input is not modified
    with pytest.raises(ValueError, match="nonfinite"):
        validate_points(m, x, nonfinite="ignore")


def test_pose_dataset_splits_subsample_and_to(rm_file):
    ds = load_robomimic(rm_file[0])
    train, val, test = ds.random_split((0.8, 0.1, 0.1), seed=4)
    n = len(ds)
    assert (len(val), len(test)) == (n // 10, n // 10) and len(train) + len(val) + len(test) == n
    again = ds.random_split((0.8, 0.1, 0.1), seed=4)
    assert all(torch.equal(a.points, b.points) for a, b in zip((train, val, test), again))
    ref = torch.utils.data.random_split(range(n), [len(train), len(val), len(test)],
                                        generator=torch.Generator().manual_seed(4))
    assert torch.equal(val.points, ds.points[list(ref[1].indices)])

    a, b = ds.split_by_group((0.7, 0.3), seed=1)
    ga, gb = set(a.groups.tolist()), set(b.groups.tolist())
    assert not ga & gb and ga | gb == set(range(11)) and len(a) + len(b) == len(ds)
    assert len(gb) == 3  # floor(0.3 * 11)
    parts = ds.split_by_group({"train": ["demo_1", "demo_10"], "valid": ["demo_2"]})
    assert set(parts["train"].groups.tolist()) == {0, 9} and parts["valid"].meta["split"]["groups"] == ["demo_2"]
    with pytest.raises(ValueError, match="unknown group names \\['demo_99'\\]"):
        ds.split_by_group([["demo_99"]])
    with pytest.raises(ValueError, match="parts must be disjoint"):
        ds.split_by_group([["demo_1"], ["demo_1"]])

    assert torch.equal(ds.subsample(3).points, ds.points[::3])
    sub = ds.subsample(n=10, seed=2)
    assert len(sub) == 10 and torch.equal(sub.points, ds.subsample(n=10, seed=2).points)
    d64 = ds.to(dtype=torch.float64)
    assert d64.points.dtype == torch.float64 and d64.groups.dtype == torch.int64 and ds.points.dtype == torch.float32
    item = ds[0]
    assert set(item) == {"x", "group"} and item["x"].shape == (14,)
    batch = ds[torch.tensor([0, 5])]
    assert batch["x"].shape == (2, 14)
    with pytest.raises(ValueError, match="needs groups.*has none"):
        PoseDataset(ds.points, ds.manifold).split_by_group((0.5, 0.5))


# ---------------------------------------------------------------------- tables
def test_latlon_conversion_and_loader(tmp_path):
    lat = torch.tensor([0.0, 90.0, -45.0, 10.0], dtype=torch.float64)
    lon = torch.tensor([0.0, 0.0, 180.0, -100.0], dtype=torch.float64)
    x = latlon_to_sphere(lat, lon)
    assert torch.allclose(x[0], torch.tensor([1.0, 0, 0], dtype=torch.float64))
    assert torch.allclose(x[1], torch.tensor([0.0, 0, 1], dtype=torch.float64), atol=1e-15)
    lat2, lon2 = sphere_to_latlon(x)
    assert torch.allclose(lat2, lat) and torch.allclose(lon2[[0, 2, 3]], lon[[0, 2, 3]])

    deg = tmp_path / "events.csv"
    deg.write_text("# source: a test\n# second comment\nLon, Lat\n0,0\r\n180,-45\n\n-100,10\n")
    rad = tmp_path / "events_rad.tsv"
    rows = np.deg2rad(np.array([[0, 0], [-45, 180], [10, -100]]))
    rad.write_text("".join(f"{float(a)!r}\t{float(b)!r}\n" for a, b in rows))  # no header: lat, lon by position
    a = load_latlon(deg, dtype=torch.float64)
    b = load_latlon(rad, degrees=False, dtype=torch.float64)
    assert torch.allclose(a.points, b.points, atol=1e-12) and a.manifold == parse("S2")
    assert a.meta["lat_col"] == "Lat" and b.meta["lat_col"] == 0
    with pytest.raises(ValueError, match="outside the range for radians.*pass degrees=True"):
        load_latlon(deg, degrees=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("place,lat\n1,2\n")
    with pytest.raises(ValueError, match=r"cannot tell the latitude and longitude columns.*\['place', 'lat'\]"):
        load_latlon(bad)


def test_load_table_csv_tsv_npy_and_angle_units(tmp_path):
    rng = np.random.default_rng(0)
    q = _unit(rng.normal(size=(6, 4)))
    ang = rng.uniform(-math.pi, math.pi, size=(6, 2))
    pos = rng.normal(size=(6, 3))
    table = np.hstack([pos, q[:, [3, 0, 1, 2]], ang, np.arange(6)[:, None]])  # quaternions stored wxyz
    header = "x,y,z,qw,qx,qy,qz,a1,a2,step"
    csv = tmp_path / "t.csv"
    csv.write_text(header + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in table) + "\n")
    tsv = tmp_path / "t.tsv"
    deg_table = table.copy()
    deg_table[:, 7:9] = np.rad2deg(ang)
    tsv.write_text("\n".join("\t".join(repr(float(v)) for v in r) for r in deg_table) + "\n")
    npy = tmp_path / "t.npy"
    np.save(npy, table)

    m = "R3 x SO3 x T2"
    a = load_table(csv, m, angle_unit="rad", quat_order="wxyz", condition_columns=["step"], dtype=torch.float64)
    assert torch.equal(a.points[:, 3:7], torch.from_numpy(q)) and torch.equal(a.points[:, 7:], torch.from_numpy(ang))
    assert a.columns[:4] == ["x", "y", "z", "qx"] and a.condition_columns == ["step"]
    assert torch.equal(a.conditions[:, 0], torch.arange(6, dtype=torch.float64))
    b = load_table(tsv, m, columns=list(range(9)), angle_unit="deg", quat_order="wxyz", dtype=torch.float64)
    assert torch.allclose(b.points, a.points, atol=1e-12)
    c = load_table(npy, m, angle_unit="rad", quat_order="wxyz", condition_columns=[9], dtype=torch.float64)
    assert torch.equal(c.points, a.points)
    sub = load_table(csv, "T2", columns=["a2", "a1"], angle_unit="rad", dtype=torch.float64)
    assert torch.equal(sub.points, torch.from_numpy(ang[:, ::-1].copy()))

    with pytest.raises(ValueError, match="angle_unit must be given explicitly"):
        load_table(csv, m, quat_order="wxyz", condition_columns=["step"])
    with pytest.raises(ValueError, match="outside \\[-pi, pi\\].*angle_unit='deg'"):  # degrees read as radians
        load_table(tsv, m, columns=list(range(9)), angle_unit="rad", quat_order="wxyz")
    with pytest.raises(ValueError, match="10 point columns.*needs 9"):
        load_table(csv, m, angle_unit="rad")
    with pytest.raises(ValueError, match="no column 'q0'"):
        load_table(csv, "R1", columns=["q0"])


TORSIONS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "chi")


def rna_torsion_table(path, rows=12, header=True, seed=0):
    """A made-up table in the layout of public RNA torsion tables: PDB id, chain, residue number, base letter
    and seven backbone/glycosidic torsions in degrees (tab-separated). Returns the angles ``(rows, 7)``."""
    rng = np.random.default_rng(seed)
    ang = rng.uniform(-180, 180, (rows, 7)).round(1)
    lines = ["# made-up rows for a test; columns as in RNA torsion tables"]
    if header:
        lines.append("\t".join(("pdb", "chain", "res", "base") + TORSIONS))
    for r in range(rows):
        ids = ("1EHZ" if r < rows // 2 else "4TNA", "A", str(r + 1), "ACGU"[r % 4])
        lines.append("\t".join(ids + tuple(repr(float(v)) for v in ang[r])))
    path.write_text("\n".join(lines) + "\n")
    return ang


def test_table_with_id_and_letter_columns_loads_its_numeric_columns(tmp_path):
    ang = rna_torsion_table(tmp_path / "rna.tsv")
    ds = load_table(tmp_path / "rna.tsv", "T7", columns=list(TORSIONS), angle_unit="deg", dtype=torch.float64)
    assert torch.allclose(ds.points, torch.from_numpy(np.deg2rad(ang)), atol=1e-12, rtol=0)
    assert ds.columns == list(TORSIONS) and ds.meta["rows"] == 12
    # without a header: the same columns by index; the first line is data (numbers beside its text)
    bare = rna_torsion_table(tmp_path / "bare.tsv", header=False)
    nd = load_table(tmp_path / "bare.tsv", "T7", columns=list(range(4, 11)), angle_unit="deg", dtype=torch.float64)
    assert len(nd) == 12 and torch.allclose(nd.points, torch.from_numpy(np.deg2rad(bare)), atol=1e-12, rtol=0)
    # a residue number is a number: it may be a condition column
    cd = load_table(tmp_path / "rna.tsv", "T7", columns=list(TORSIONS), condition_columns=["res"], angle_unit="deg")
    assert cd.conditions[:, 0].tolist() == list(range(1, 13))


def test_table_text_column_chosen_is_refused_naming_it_and_a_value(tmp_path):
    rna_torsion_table(tmp_path / "rna.tsv")
    cols = ["base"] + list(TORSIONS[:6])
    with pytest.raises(ValueError, match=r"column 'base' holds text \('A' in data row 0\), not numbers; choose the "
                                         r"point columns with columns="):
        load_table(tmp_path / "rna.tsv", "T7", columns=cols, angle_unit="deg")
    with pytest.raises(ValueError, match=r"column 'pdb' holds text \('1EHZ' in data row 0\)"):
        load_table(tmp_path / "rna.tsv", "R11")  # by default every column is a point column
    with pytest.raises(ValueError, match=r"column 'chain' holds text \('A' in data row 0\).*condition_columns="):
        load_table(tmp_path / "rna.tsv", "T7", columns=list(TORSIONS), condition_columns=["chain"], angle_unit="deg")
    with pytest.raises(ValueError, match=r"column 'pdb' holds text"):
        read_table(tmp_path / "rna.tsv")


def test_table_source_in_a_config_reads_the_named_columns(tmp_path):
    from posegen.cli.datasets import load_splits
    from posegen.config import resolve

    rna_torsion_table(tmp_path / "rna.tsv", rows=20)
    data = {"source": "table", "path": str(tmp_path / "rna.tsv"), "columns": list(TORSIONS), "angle_unit": "deg",
            "split": [0.75, 0.25]}
    splits = load_splits(resolve({"data": data, "manifold": "T7"}), ("train", "valid"))
    assert len(splits["train"]) + len(splits["valid"]) == 20
    bad = resolve({"data": dict(data, columns=["base"] + list(TORSIONS[1:])), "manifold": "T7"})
    with pytest.raises(ValueError, match=r"column 'base' holds text"):
        load_splits(bad, ("train",))


def test_table_cells_empty_is_missing_and_ragged_rows_are_refused(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("id,a,b\nx1,1.5,\nx2,,2\n")
    header, cells = read_cells(t)
    assert header == ["id", "a", "b"] and cells.shape == (2, 3)
    v = table_numbers(cells, [1, 2], header, t, "")
    assert v[0, 0] == 1.5 and math.isnan(v[0, 1]) and math.isnan(v[1, 0]) and v[1, 1] == 2.0
    t.write_text("id,a,b\nx1,1.5,2\nx2,3\n")
    with pytest.raises(ValueError, match="data row 1 has 2 fields but the header has 3"):
        read_cells(t)


# ---------------------------------------------------------------------- earth data
SHIPPED = {"volcano": ("volerup.csv", 827), "earthquake": ("quakes_all.csv", 6120),
           "flood": ("flood.csv", 4875), "fire": ("fire.csv", 12809)}


def _sources_sha256():
    text = (earth_mod.data_root() / "SOURCES.md").read_text()
    return dict((name, digest) for digest, name in re.findall(r"([0-9a-f]{64})\s+earth/(\S+\.csv)", text))


@pytest.mark.parametrize("name", EARTH_DATASETS)
def test_earth_files_rows_and_points(name):
    fname, rows = SHIPPED[name]
    path = earth_mod.data_root() / "earth" / fname
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == _sources_sha256()[fname] == earth_mod.EARTH_SHA256[name]
    ds = load_earth(name)
    assert len(ds) == rows and ds.manifold == parse("S2") and ds.meta["sha256"] == digest
    ds.manifold.check_point(ds.points)
    lat, _ = sphere_to_latlon(ds.points.double())
    assert -75 < float(lat.min()) and float(lat.max()) < 75


@pytest.mark.parametrize("name", ["volcano", "flood"])
def test_earth_splits_protocol(name):
    full = load_earth(name)
    n = len(full)
    train, val, test = earth_splits(name, seed=0)
    assert (len(train), len(val), len(test)) == (n - 2 * (n // 10), n // 10, n // 10)
    again = earth_splits(name, seed=0)
    assert all(torch.equal(a.points, b.points) for a, b in zip((train, val, test), again))
    other = earth_splits(name, seed=1)
    assert not torch.equal(other[0].points, train.points)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    assert torch.equal(train.points, full.points[perm[: len(train)]])
    # disjoint and covering: split a copy that carries row numbers as conditions
    tagged = PoseDataset(full.points, full.manifold, conditions=torch.arange(n, dtype=torch.float64))
    parts = [set(p.conditions[:, 0].long().tolist()) for p in tagged.random_split((0.8, 0.1, 0.1), seed=0)]
    assert sum(map(len, parts)) == n and set().union(*parts) == set(range(n))
    assert [len(p) for p in parts] == [len(train), len(val), len(test)]
    assert all(torch.equal(tp.points, p.points)
               for tp, p in zip(tagged.random_split((0.8, 0.1, 0.1), seed=0), (train, val, test)))


def test_earth_names_and_data_root(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"Invalid earth data set 'tsunami'. Must be one of \('volcano', "):
        load_earth("tsunami")
    (tmp_path / "earth").mkdir()
    shutil.copy(earth_mod.data_root() / "earth" / "volerup.csv", tmp_path / "earth" / "volerup.csv")
    monkeypatch.setenv("POSEGEN_DATA", str(tmp_path))
    assert len(load_earth("volcano")) == 827
    with pytest.raises(FileNotFoundError, match="POSEGEN_DATA"):
        load_earth("fire")
    with open(tmp_path / "earth" / "volerup.csv", "a") as fh:
        fh.write("\n1.0,2.0\n")
    with pytest.warns(DataWarning, match="differs from the published volerup.csv"):
        assert len(load_earth("volcano")) == 828
