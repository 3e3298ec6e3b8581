"""ACRONYM HDF5 files: reading the dataset's layout exactly, writing it back, refusing anything else.

The reference layout is that of the two sample files of the public NVlabs/acronym repository
(``data/examples/grasps/Mug_10f6e...h5`` and ``Table_99cf...h5``, read with h5py); it is rebuilt here with
h5py directly (the files themselves are CC BY-NC and not shipped):

    grasps/transforms (2000, 4, 4) float64, gzip, chunks (500, 2, 2)
    grasps/qualities/flex/object_in_gripper (2000,) int64 and four object_motion_* (2000,) float64
    object/file: variable-length UTF-8 scalar, object/scale float64 scalar, object/com (3,),
    object/inertia (3, 3), object/{mass, volume, density, friction} float64 scalars
    gripper/type: variable-length UTF-8 scalar "panda", gripper/configuration (1,) float64 [0.04]

Set ``POSEGEN_ACRONYM_SAMPLE`` to a real ACRONYM file to also read that one.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from posegen.grasps import load_acronym, save_acronym

MOTIONS = ("object_motion_during_closing_angular", "object_motion_during_closing_linear",
           "object_motion_during_shaking_angular", "object_motion_during_shaking_linear")


def _random_rigid(n, rng):
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                  2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                  2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1).reshape(n, 3, 3)
    T = np.zeros((n, 4, 4))
    T[:, :3, :3], T[:, :3, 3], T[:, 3, 3] = R, rng.normal(scale=0.1, size=(n, 3)), 1.0
    return T


@pytest.fixture
def acronym_file(tmp_path):
    """A file in the sample files' exact layout, written with plain h5py."""
    rng = np.random.default_rng(0)
    n = 2000
    path = tmp_path / "Mug_abc_0.00026.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("grasps/transforms", data=_random_rigid(n, rng), compression="gzip", chunks=(500, 2, 2))
        q = f.create_group("grasps/qualities/flex")
        q.create_dataset("object_in_gripper", data=rng.integers(0, 2, n).astype(np.int64), compression="gzip")
        for name in MOTIONS:
            q.create_dataset(name, data=rng.random(n), compression="gzip")
        text = h5py.string_dtype("utf-8")
        f.create_dataset("object/file", data="meshes/Mug/abc.obj", dtype=text)
        f.create_dataset("object/scale", data=np.float64(0.0002682458))
        f.create_dataset("object/com", data=rng.random(3))
        f.create_dataset("object/inertia", data=np.eye(3) * 2e-5)
        for k, v in (("mass", 0.0130879738), ("volume", 8.72532e-05), ("density", 150.0), ("friction", 1.0)):
            f.create_dataset(f"object/{k}", data=np.float64(v))
        f.create_dataset("gripper/type", data="panda", dtype=text)
        f.create_dataset("gripper/configuration", data=np.array([0.04]))
    return path


def _layout(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, o: out.__setitem__(name, (o.shape, o.dtype.str if o.dtype.kind != "O" else
                                                            "str")) if isinstance(o, h5py.Dataset) else None)
    return out


def test_reads_the_acronym_layout_exactly(acronym_file):
    a = load_acronym(acronym_file)
    with h5py.File(acronym_file, "r") as f:
        assert np.array_equal(a.transforms.numpy(), f["grasps/transforms"][()])
        assert a.transforms.dtype == torch.float64 and a.qualities["flex"]["object_in_gripper"].dtype == torch.int64
        assert np.array_equal(a.success.numpy(), f["grasps/qualities/flex/object_in_gripper"][()] == 1)
        for name in MOTIONS:
            assert np.array_equal(a.qualities["flex"][name].numpy(), f[f"grasps/qualities/flex/{name}"][()])
        assert a.object["mass"] == f["object/mass"][()] and np.array_equal(a.object["com"], f["object/com"][()])
    assert a.sim == "flex" and len(a) == 2000 and a.success.dtype == torch.bool
    assert a.object_file == "meshes/Mug/abc.obj" and a.object_scale == 0.0002682458
    assert a.gripper_type == "panda" and a.gripper_configuration.tolist() == [0.04] and a.provenance is None


def test_round_trip_keeps_values_and_layout(acronym_file, tmp_path):
    a = load_acronym(acronym_file)
    out = tmp_path / "copy.h5"
    save_acronym(out, a.transforms, a.success, object_file=a.object_file, object_scale=a.object_scale, sim="flex",
                 qualities={k: a.qualities["flex"][k] for k in MOTIONS}, object_props=a.object,
                 provenance={"generator": "test"})
    b = load_acronym(out)
    assert torch.equal(a.transforms, b.transforms)
    for k, v in a.qualities["flex"].items():
        assert torch.equal(v, b.qualities["flex"][k]) and v.dtype == b.qualities["flex"][k].dtype
    assert (b.object_file, b.object_scale, b.gripper_type) == (a.object_file, a.object_scale, a.gripper_type)
    assert all(np.array_equal(a.object[k], b.object[k]) for k in a.object)
    assert b.provenance == {"generator": "test"}
    assert _layout(out) == _layout(acronym_file)  # the same datasets, shapes and dtypes


def test_posegen_labels_are_found_without_flex(tmp_path):
    T = _random_rigid(5, np.random.default_rng(1))
    path = save_acronym(tmp_path / "g.h5", T, [1, 0, 1, 1, 0], object_file="m.obj", object_scale=1.0)
    a = load_acronym(path)
    assert a.sim == "mujoco" and a.success.tolist() == [True, False, True, True, False]
    with pytest.raises(ValueError, match="no labels of sim 'flex'"):
        load_acronym(path, sim="flex")


def test_scores_without_labels_round_trip(tmp_path):
    """A model's samples: a score group and no physics label; labels and scores side by side."""
    T = _random_rigid(4, np.random.default_rng(3))
    lp = np.array([1.5, -0.25, 3.0, 0.0])
    path = save_acronym(tmp_path / "s.h5", T, None, object_file="m.obj", scores={"posegen": {"log_prob": lp}})
    a = load_acronym(path)
    assert a.success is None and a.sim is None
    np.testing.assert_array_equal(a.qualities["posegen"]["log_prob"].numpy(), lp)
    np.testing.assert_array_equal(a.transforms.numpy(), T)
    both = save_acronym(tmp_path / "b.h5", T, [1, 0, 0, 1], object_file="m.obj", qualities={"m": np.arange(4.0)},
                        scores={"posegen": {"log_prob": lp}})
    b = load_acronym(both)
    assert b.sim == "mujoco" and b.success.tolist() == [True, False, False, True]
    assert sorted(b.qualities) == ["mujoco", "posegen"] and sorted(b.qualities["mujoco"]) == ["m", "object_in_gripper"]


def test_not_an_acronym_file(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not an ACRONYM grasp file: it is not an HDF5 file"):
        load_acronym(text)
    other = tmp_path / "points.h5"
    with h5py.File(other, "w") as f:
        f["points"] = np.zeros((3, 7))
    with pytest.raises(ValueError, match=r"not an ACRONYM grasp file: missing \['grasps/transforms'"):
        load_acronym(other)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["grasps/transforms"] = np.zeros((3, 3, 3))
        f["grasps/qualities/flex/object_in_gripper"] = np.zeros(3, np.int64)
        f["object/file"], f["object/scale"] = "m.obj", 1.0
    with pytest.raises(ValueError, match=r"grasps/transforms has shape \(3, 3, 3\)"):
        load_acronym(bad)
    with pytest.raises(FileNotFoundError):
        load_acronym(tmp_path / "missing.h5")


@pytest.mark.parametrize("kw, match", [
    ({"transforms": np.full((2, 4, 4), np.nan)}, "finite"),
    ({"transforms": np.zeros((2, 3, 4))}, r"shape \(N, 4, 4\)"),
    ({"success": [1, 0, 1]}, r"success must have shape \(2,\)"),
    ({"success": [0.5, 1]}, "booleans or 0/1"),
    ({"object_scale": 0.0}, "object_scale must be"),
    ({"object_scale": float("nan")}, "object_scale must be"),
    ({"object_file": ""}, "object_file must be"),
    ({"qualities": {"m": np.zeros(3)}}, r"qualities\['m'\] must be"),
    ({"success": None, "qualities": {"m": np.zeros(2)}}, "pass success too"),
    ({"scores": {"mujoco": {"log_prob": np.zeros(2)}}}, "other than sim"),
    ({"scores": {"posegen": {"log_prob": np.zeros(3)}}}, r"scores\['posegen'\]\['log_prob'\] must be"),
    ({"scores": {"posegen": {"object_in_gripper": np.zeros(2)}}}, "must not hold object_in_gripper"),
    ({"provenance": {"x": {1, 2}}}, None),  # a set is turned into a string by default=str: accepted
])
def test_bad_input_writes_nothing(tmp_path, kw, match):
    good = {"transforms": _random_rigid(2, np.random.default_rng(2)), "success": [True, False],
            "object_file": "m.obj", "object_scale": 1.0}
    args = {**good, **kw}
    path = tmp_path / "out.h5"
    path.write_bytes(b"previous")
    if match is None:
        save_acronym(path, args.pop("transforms"), args.pop("success"), **args)
        return
    with pytest.raises(ValueError, match=match):
        save_acronym(path, args.pop("transforms"), args.pop("success"), **args)
    assert path.read_bytes() == b"previous"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # and no temporary file is left


@pytest.mark.skipif(not os.environ.get("POSEGEN_ACRONYM_SAMPLE"), reason="set POSEGEN_ACRONYM_SAMPLE to a real "
                    "ACRONYM .h5 file (NVlabs/acronym data/examples/grasps/) to read it")
def test_real_acronym_sample():
    path = os.environ["POSEGEN_ACRONYM_SAMPLE"]
    a = load_acronym(path)
    with h5py.File(path, "r") as f:
        assert np.array_equal(a.transforms.numpy(), f["grasps/transforms"][()])
        assert np.array_equal(a.success.numpy(), f["grasps/qualities/flex/object_in_gripper"][()] == 1)
        assert a.object_file == f["object/file"][()].decode()
    assert len(a) == 2000 and a.gripper_type == "panda"
