"""The seeded procedural object set: reproducible, watertight, within the documented sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("trimesh")
pytest.importorskip("manifold3d")
pytest.importorskip("scipy")

from posegen.grasps import KINDS, load_object, make_objects, write_objects  # noqa: E402


def test_every_kind_is_watertight_seeded_and_sized():
    objs = make_objects(2 * len(KINDS), seed=5)
    again = make_objects(2 * len(KINDS), seed=5)
    other = make_objects(2 * len(KINDS), seed=6)
    assert [o.name for o, _ in objs][:3] == ["box_0000", "cylinder_0001", "sphere_0002"]
    for (a, pa), (b, _), (c, _) in zip(objs, again, other):
        assert a.is_watertight and a.mesh.volume > 0
        assert np.array_equal(a.mesh.vertices, b.mesh.vertices)  # same seed, same mesh
        assert not np.array_equal(a.bounds, c.bounds)            # another seed, another one
        assert abs(a.bounds[0, 2]) < 1e-12 and np.allclose(a.bounds[0, :2], -a.bounds[1, :2])  # base on z = 0
        assert a.extents.max() < 0.26 and a.extents.min() > 0.01
    # documented ranges, checked on the meshes: spheres fit the stroke, mugs have a handle beyond the cup
    for o, p in objs:
        if p["kind"] == "sphere":
            assert o.extents == pytest.approx([2 * p["radius"]] * 3, rel=0.01) and 2 * p["radius"] < 0.08
        if p["kind"] == "mug":
            assert o.extents[0] > 2 * p["radius"] + 0.005 and o.mesh.volume < np.pi * p["radius"] ** 2 * p["height"]


def test_any_object_regenerates_alone():
    full = make_objects(12, seed=3)
    assert np.array_equal(full[11][0].mesh.vertices, make_objects(12, seed=3)[11][0].mesh.vertices)
    with pytest.raises(ValueError, match='Invalid kind "teapot"'):
        make_objects(3, kinds=["teapot"])


def test_write_objects_round_trip(tmp_path):
    paths = write_objects(tmp_path / "set", n=4, seed=0)
    manifest = json.loads((tmp_path / "set" / "objects.json").read_text())
    assert [m["file"] for m in manifest["objects"]] == [p.name for p in paths] and manifest["seed"] == 0
    made = make_objects(4, seed=0)
    for p, (o, _) in zip(paths, made):
        np.testing.assert_allclose(load_object(p).bounds, o.bounds, atol=1e-7)  # OBJ text keeps ~1e-8 m
