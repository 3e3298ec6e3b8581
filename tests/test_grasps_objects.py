"""posegen.grasps objects: loading (meshes, URDFs, folders), clear errors before any work, surface samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("scipy")

from posegen.grasps import GraspObject, find_objects, load_object, narrowest_width  # noqa: E402


@pytest.fixture
def box_file(tmp_path):
    path = tmp_path / "box.stl"
    trimesh.creation.box((0.04, 0.06, 0.10)).export(path)
    return path


def test_load_box_scale_bounds_watertight(box_file):
    obj = load_object(box_file, scale=2.0)
    np.testing.assert_allclose(obj.bounds, [[-0.04, -0.06, -0.10], [0.04, 0.06, 0.10]], atol=1e-12)
    np.testing.assert_allclose(obj.extents, [0.08, 0.12, 0.20], atol=1e-12)
    assert obj.is_watertight and obj.scale == 2.0 and obj.name == "box" and obj.file == str(box_file)


def test_surface_points_lie_on_the_box_and_are_seeded(box_file):
    obj = load_object(box_file)
    pts, normals = obj.surface_points(2000, seed=3, normals=True)
    assert pts.shape == (2000, 3) and normals.shape == (2000, 3)
    p = pts.double().numpy()
    half = np.array([0.02, 0.03, 0.05])
    # on the surface of the box: inside it (float32 round-off) and on one of its faces
    assert (np.abs(p) <= half + 1e-7).all()
    assert (np.abs(np.abs(p) - half).min(axis=1) < 1e-7).all()
    # area-uniform: the share on the two x faces is their share of the area
    area_x = 2 * 0.06 * 0.10 / (2 * (0.06 * 0.10 + 0.04 * 0.10 + 0.04 * 0.06))
    on_x = (np.abs(np.abs(p[:, 0]) - 0.02) < 1e-7).mean()
    assert abs(on_x - area_x) < 4 * math.sqrt(area_x * (1 - area_x) / 2000)
    assert (obj.surface_points(100, seed=3) == obj.surface_points(100, seed=3)).all()
    assert not (obj.surface_points(100, seed=3) == obj.surface_points(100, seed=4)).all()


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf, "big"])
def test_bad_scale_is_refused(box_file, scale):
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        load_object(box_file, scale=scale)


def test_missing_folder_unknown_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_object(tmp_path / "nope.obj")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_object(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown suffix"):
        load_object(tmp_path / "notes.txt")
    (tmp_path / "empty.obj").write_text("# no vertices, no faces\n")
    with pytest.raises(ValueError, match="empty"):
        load_object(tmp_path / "empty.obj")
    with pytest.raises(ValueError, match="empty"):
        GraspObject.from_trimesh(trimesh.Trimesh(), name="nothing")


def test_object_no_opening_can_hold(tmp_path):
    path = tmp_path / "ball.obj"
    trimesh.creation.icosphere(3, 0.06).export(path)  # 12 cm across, the Panda opens 8 cm
    with pytest.raises(ValueError, match="no panda opening can hold it"):
        load_object(path, gripper="panda")
    load_object(path)  # without a gripper it is just a mesh
    assert narrowest_width(load_object(path, scale=0.5)) == pytest.approx(0.06, abs=1e-3)


def test_urdf_single_object(tmp_path):
    trimesh.creation.box((1.0, 2.0, 3.0)).export(tmp_path / "part.obj")
    (tmp_path / "part.urdf").write_text(
        '<robot name="p"><link name="l"><collision><origin xyz="0.1 0 0" rpy="0 0 1.5707963267948966"/>'
        '<geometry><mesh filename="part.obj" scale="0.01 0.01 0.01"/></geometry></collision></link></robot>')
    obj = load_object(tmp_path / "part.urdf")
    # 1 x 2 x 3 cm turned 90 deg about z (x <-> y), then moved 0.1 m along x
    np.testing.assert_allclose(obj.bounds, [[0.09, -0.005, -0.015], [0.11, 0.005, 0.015]], atol=1e-9)
    (tmp_path / "two.urdf").write_text('<robot name="p"><link name="a"><collision><geometry><box size="1 1 1"/>'
                                       '</geometry></collision><collision><geometry><box size="1 1 1"/></geometry>'
                                       '</collision></link></robot>')
    with pytest.raises(ValueError, match="exactly one collision geometry"):
        load_object(tmp_path / "two.urdf")


def test_find_objects(tmp_path, box_file):
    assert find_objects([box_file]) == [box_file]
    sub = tmp_path / "set"
    sub.mkdir()
    with pytest.raises(ValueError, match="holds no object files"):
        find_objects(sub)
    for name in ("b.obj", "a.obj"):
        trimesh.creation.box((0.01, 0.01, 0.01)).export(sub / name)
    assert [p.name for p in find_objects(sub)] == ["a.obj", "b.obj"]
    (sub / "a.urdf").write_text("<robot/>")
    assert [p.name for p in find_objects(sub)] == ["a.urdf"]  # URDFs win over the meshes they use
