"""Scenes: obstacle distances against exact analytic ones (float64), YAML files, and the checker's use of them."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from posegen.robots import load
from posegen.robots.collision import CollisionChecker, ready_configuration
from posegen.robots.scene import (Ball, Box, HalfSpace, MeshObstacle, PointCloud, Scene, floor,
                                  quat_xyzw_to_matrix)


def points(n, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * (2 * torch.rand(n, 3, generator=g, dtype=torch.float64) - 1)


def test_oriented_box_distance_is_the_exact_sdf_in_the_box_frame():
    quat = torch.tensor([0.2, -0.4, 0.3, 0.8], dtype=torch.float64)
    quat = quat / quat.norm()
    box = Box((0.3, -0.1, 0.4), (0.1, 0.2, 0.05), quat=tuple(quat.tolist()))
    p = points(3000, 0, 0.6)
    R = quat_xyzw_to_matrix(box.quat)
    # reference: rotate the points by R^T about the centre, then the axis-aligned box SDF
    local = (p - torch.tensor(box.center, dtype=torch.float64)) @ R
    e = local.abs() - torch.tensor(box.half_extents, dtype=torch.float64)
    ref = e.clamp_min(0).norm(dim=-1) + e.amax(-1).clamp_max(0)
    torch.testing.assert_close(Scene([box]).tensors().distance(p), ref, rtol=0, atol=1e-12)
    # R is a rotation, and a quarter turn about z swaps the x and y extents
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-12)
    s = math.sqrt(0.5)
    quarter = Box((0, 0, 0), (0.1, 0.3, 0.2), quat=(0, 0, s, s))
    torch.testing.assert_close(Scene([quarter]).tensors().distance(torch.tensor([[0.5, 0.0, 0.0]],
                                                                                dtype=torch.float64)),
                               torch.tensor([0.2], dtype=torch.float64))


def test_half_space_ball_and_nearest_obstacle():
    hs = HalfSpace((0.0, 0.0, 0.1), (0.0, 0.0, 2.0))            # normal normalised
    ball = Ball((0.5, 0.0, 0.5), 0.1)
    p = points(500, 1)
    d_hs = p[:, 2] - 0.1
    d_ball = (p - torch.tensor(ball.center, dtype=torch.float64)).norm(dim=-1) - 0.1
    t = Scene([hs, ball]).tensors()
    torch.testing.assert_close(t.distance(p), torch.minimum(d_hs, d_ball), rtol=0, atol=1e-12)
    torch.testing.assert_close(t.distance(p, planes=False), d_ball, rtol=0, atol=1e-12)
    tilted = HalfSpace((0, 0, 0), (1.0, 1.0, 0.0))
    torch.testing.assert_close(Scene([tilted]).tensors().distance(p), (p[:, 0] + p[:, 1]) / math.sqrt(2),
                               rtol=0, atol=1e-12)


def test_point_cloud_voxels_cover_every_point():
    p = points(2000, 2, 0.3)
    cloud = PointCloud(p, voxel=0.05)
    assert len(cloud.centers) < len(p)
    # every point is inside the ball of its voxel: distance <= 0 to the cloud's balls
    assert (Scene([cloud]).tensors().distance(p) <= 1e-12).all()
    raw = PointCloud(p[:10], radius=0.01)
    torch.testing.assert_close(Scene([raw]).tensors().distance(p[:10]), torch.full((10,), -0.01,
                                                                                    dtype=torch.float64))
    with pytest.raises(ValueError, match="finite"):
        PointCloud(torch.tensor([[0.0, math.nan, 0.0]]), radius=0.01)
    with pytest.raises(ValueError, match="radius > 0 or voxel > 0"):
        PointCloud(p)


def test_mesh_obstacle_spheres_cover_its_surface():
    trimesh = pytest.importorskip("trimesh")
    h = torch.tensor([0.05, 0.08, 0.03], dtype=torch.float64)
    tri = torch.tensor(trimesh.creation.box(extents=(2 * h).tolist()).triangles, dtype=torch.float64)
    s = math.sqrt(0.5)
    mesh = MeshObstacle(tri, position=(0.4, 0.1, 0.2), quat=(0, 0, s, s), tolerance=0.01)
    # the exact box, placed: surface points must be covered by the (inflated) spheres up to the
    # measured surface error of the fit (fresh samples: within that error, up to the sampling gap)
    g = torch.Generator().manual_seed(3)
    u = 2 * torch.rand(3000, 3, generator=g, dtype=torch.float64) - 1
    axis = torch.randint(0, 3, (3000,), generator=g)
    u[torch.arange(3000), axis] = u[torch.arange(3000), axis].sign()
    surf = (u * h) @ quat_xyzw_to_matrix(mesh.quat).T + torch.tensor(mesh.position, dtype=torch.float64)
    d = Scene([mesh]).tensors().distance(surf)
    assert float(d.max()) <= 0.5 * mesh.surface_error
    assert float((d <= 1e-12).double().mean()) > 0.95
    # and the spheres stay within the box grown by the surface error (no far-away false obstacle)
    local = (mesh.centers - torch.tensor(mesh.position, dtype=torch.float64)) @ quat_xyzw_to_matrix(mesh.quat)
    e = local.abs() - h
    sdf = e.clamp_min(0).norm(dim=-1) + e.amax(-1).clamp_max(0)
    assert (sdf + mesh.radii <= mesh.surface_error + 1e-12).all()


def test_scene_yaml_round_and_bad_files(tmp_path):
    import numpy as np
    np.save(tmp_path / "cloud.npy", points(50, 4, 0.1).numpy() + np.array([0.6, 0.0, 0.5]))
    good = tmp_path / "scene.yaml"
    good.write_text("""obstacles:
  - {type: halfspace, point: [0, 0, 0], normal: [0, 0, 1], name: floor}
  - {type: box, center: [0.6, 0, 0.2], half_extents: [0.1, 0.3, 0.2], quat: [0, 0, 0.3826834, 0.9238795]}
  - {type: ball, center: [0.3, 0.3, 0.6], radius: 0.1}
  - {type: pointcloud, file: cloud.npy, voxel: 0.05}
  - {type: mesh, file: parts/block.stl, position: [0.5, -0.3, 0.1], tolerance: 0.02}
""")
    trimesh = pytest.importorskip("trimesh")
    (tmp_path / "parts").mkdir()
    trimesh.creation.box(extents=(0.1, 0.1, 0.1)).export(tmp_path / "parts" / "block.stl")
    scene = Scene.from_yaml(good)
    assert [type(o).__name__ for o in scene] == ["HalfSpace", "Box", "Ball", "PointCloud", "MeshObstacle"]
    # the block's spheres are where the file puts it: its centre is inside them, 0.1 m away is outside
    t = scene.tensors()
    inside, outside = torch.tensor([[0.5, -0.3, 0.1]]), torch.tensor([[0.5, -0.3, 0.25]])
    assert float(Scene([scene.obstacles[-1]]).tensors().distance(inside.double())) < 0
    assert float(Scene([scene.obstacles[-1]]).tensors().distance(outside.double())) > 0.05
    assert float(t.distance(torch.tensor([[0.0, 0.0, -0.2]], dtype=torch.float64))) == pytest.approx(-0.2)
    assert scene.obstacles[0].name == "floor"
    cases = {"unknown obstacle type \"cone\"": "  - {type: cone, center: [0, 0, 0]}",
             "center must be finite": "  - {type: ball, center: [0, .nan, 0], radius: 0.1}",
             "radius must be > 0": "  - {type: ball, center: [0, 0, 0], radius: -0.1}",
             "half_extents must be > 0": "  - {type: box, center: [0, 0, 0], half_extents: [0.1, -1, 0.1]}",
             r"unknown key\(s\) \['size'\]": "  - {type: box, center: [0, 0, 0], size: [1, 1, 1]}",
             "no such file": "  - {type: mesh, file: nope.stl}",
             "must be 3 finite numbers": "  - {type: halfspace, point: [0, 0], normal: [0, 0, 1]}"}
    for message, line in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text("obstacles:\n  - {type: ball, center: [1, 1, 1], radius: 0.1}\n" + line + "\n")
        with pytest.raises(ValueError, match=f"bad.yaml: obstacle 1.*{message}"):
            Scene.from_yaml(bad)
    (tmp_path / "top.yaml").write_text("boxes: []\n")
    with pytest.raises(ValueError, match="one key 'obstacles'"):
        Scene.from_yaml(tmp_path / "top.yaml")


def test_floor_is_a_support_and_a_box_floor_is_refused():
    robot = load("panda")
    ch = CollisionChecker(robot, Scene([floor()]))          # the base stands on the floor: accepted
    assert bool(ch.is_valid(ready_configuration(robot)))
    with pytest.raises(ValueError, match="overlaps the fixed base.*HalfSpace"):
        CollisionChecker(robot, [Box((0.0, 0.0, -0.05), (1.0, 1.0, 0.06))])
    # a configuration that puts the hand below the floor: invalid with the floor, valid without it
    q = torch.tensor([0.0, 1.7, 0.0, -0.3, 0.0, 1.0, 0.0], dtype=torch.float64)
    assert float(robot.fk(q)[2, 3]) < 0
    assert not bool(ch.is_valid(q)) and bool(CollisionChecker(robot, []).is_valid(q))
    # the clearance to the floor is the lowest moving sphere's height minus its radius
    c = ch.sphere_centers(q)[ch._moving]
    torch.testing.assert_close(ch.clearance(q), (c[:, 2] - ch.radii).min())


def test_checker_accepts_scene_files_and_the_deprecated_table_argument(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("obstacles:\n  - {type: ball, center: [0.5, 0, 0.5], radius: 0.1}\n")
    a = CollisionChecker("panda", f)
    b = CollisionChecker("panda", [Ball((0.5, 0, 0.5), 0.1)])
    q = ready_configuration(load("panda"))
    torch.testing.assert_close(a.clearance(q), b.clearance(q))
    with pytest.warns(DeprecationWarning, match="spheres="):
        c = CollisionChecker("panda", [Ball((0.5, 0, 0.5), 0.1)], table="panda")
    torch.testing.assert_close(c.clearance(q), b.clearance(q))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CollisionChecker("panda", [Ball((0.5, 0, 0.5), 0.1)], spheres="panda")
    with pytest.raises(TypeError, match="robot first"):
        CollisionChecker(Scene([floor()]))
    with pytest.raises(TypeError, match="obstacle 0 must be an obstacle"):
        Scene(["not an obstacle"])
