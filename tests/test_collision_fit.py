"""Collision geometry from URDF, exact mesh queries and sphere fits, against analytic primitives (float64).

References: the exact signed distance of a box (``|max(|x| - h, 0)| + min(max(|x| - h), 0)``) and of a
cylinder; python-fcl's mesh distance where installed.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

trimesh = pytest.importorskip("trimesh")

from posegen import robots  # noqa: E402
from posegen.robots.autofit import fit_sphere_table  # noqa: E402
from posegen.robots.collision import Ball, CollisionChecker, CollisionModel  # noqa: E402
from posegen.robots.geometry import (link_triangles, read_collision_geometry, rpy_matrix,  # noqa: E402
                                     signed_distance, triangle_distance, winding_number)
from posegen.robots.spherefit import fit_link_spheres, sphere_union_distance  # noqa: E402
from posegen.robots.spheres import parse_sphere_table, sphere_table_yaml  # noqa: E402

HALF = torch.tensor([0.05, 0.03, 0.12], dtype=torch.float64)


def box_sdf(p, h):
    d = p.abs() - h
    return d.clamp_min(0).norm(dim=-1) + d.amax(-1).clamp_max(0)


def cylinder_sdf(p, r, half_len):
    d = torch.stack([p[..., :2].norm(dim=-1) - r, p[..., 2].abs() - half_len], -1)
    return d.clamp_min(0).norm(dim=-1) + d.amax(-1).clamp_max(0)


def box_triangles(h=HALF):
    return torch.tensor(trimesh.creation.box(extents=(2 * h).tolist()).triangles, dtype=torch.float64)


def box_surface(h, n, g):
    """Uniform points on the exact box surface (independent of the mesh sampler)."""
    areas = torch.stack([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat(2)
    face = torch.multinomial(areas, n, replacement=True, generator=g)
    p = (2 * torch.rand(n, 3, generator=g, dtype=torch.float64) - 1) * h
    axis, sign = face % 3, torch.where(face < 3, 1.0, -1.0).to(torch.float64)
    p[torch.arange(n), axis] = sign * h[axis]
    return p


def test_exact_distances_match_the_box_sdf():
    g = torch.Generator().manual_seed(0)
    p = (torch.rand(2000, 3, generator=g, dtype=torch.float64) - 0.5) * 0.5
    ref = box_sdf(p, HALF)
    tri = box_triangles()
    torch.testing.assert_close(signed_distance(p, tri), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(triangle_distance(p, tri), ref.abs(), rtol=0, atol=1e-12)
    w = winding_number(p, tri)
    far = ref.abs() > 1e-6
    torch.testing.assert_close(w[far], (ref[far] < 0).double(), rtol=0, atol=1e-9)


def test_exact_distance_agrees_with_fcl():
    fcl = pytest.importorskip("fcl")
    import numpy as np
    mesh = trimesh.creation.annulus(r_min=0.03, r_max=0.06, height=0.1)       # non-convex
    tri = torch.tensor(mesh.triangles, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    p = (torch.rand(200, 3, generator=g, dtype=torch.float64) - 0.5) * 0.4
    d = triangle_distance(p, tri)
    m = fcl.BVHModel()
    m.beginModel(len(mesh.vertices), len(mesh.faces))
    m.addSubModel(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    m.endModel()
    obj = fcl.CollisionObject(m, fcl.Transform())
    ref = []
    for x in p.numpy():
        res = fcl.DistanceResult()
        fcl.distance(obj, fcl.CollisionObject(fcl.Sphere(1e-9), fcl.Transform(x)), fcl.DistanceRequest(), res)
        ref.append(res.min_distance + 1e-9)
    outside = winding_number(p, tri) < 0.5
    torch.testing.assert_close(d[outside], torch.tensor(ref, dtype=torch.float64)[outside], rtol=0, atol=1e-6)


@pytest.mark.parametrize("tolerance", [0.01, 0.005])
def test_box_fit_is_inside_and_covers_the_surface(tolerance):
    fit = fit_link_spheres(box_triangles(), tolerance, seed=3)
    # every sphere inside the exact box
    assert (box_sdf(fit.centers, HALF) + fit.radii <= 1e-12).all()
    # the fitting samples are covered within the tolerance, as stated
    assert fit.sample_error <= tolerance + 1e-12
    # any surface point: within tolerance + h of the union, h = distance to the nearest fitting sample
    q = box_surface(HALF, 4000, torch.Generator().manual_seed(4))
    gap = sphere_union_distance(q, fit.centers, fit.radii)
    h = torch.cdist(q, fit.samples).amin(-1)
    assert (gap <= tolerance + h + 1e-12).all()
    assert float(gap.max()) <= 1.5 * fit.surface_error             # the reported error describes fresh samples
    assert fit.surface_error < 3 * tolerance
    print(f"box fit, tolerance {tolerance}: {len(fit.radii)} spheres, surface error {fit.surface_error:.4f}, "
          f"fresh max {float(gap.max()):.4f}")


def test_fit_is_reproducible_and_seeded():
    tri = box_triangles()
    a, b = fit_link_spheres(tri, 0.01, seed=5), fit_link_spheres(tri, 0.01, seed=5)
    c = fit_link_spheres(tri, 0.01, seed=6)
    assert torch.equal(a.centers, b.centers) and torch.equal(a.radii, b.radii)
    assert a.centers.shape != c.centers.shape or not torch.equal(a.centers, c.centers)


def test_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="tolerance"):
        fit_link_spheres(box_triangles(), -1.0)
    with pytest.raises(ValueError, match=r"shape \(T, 3, 3\)"):
        fit_link_spheres(torch.zeros(4, 3), 0.01)


TWO_LINK = """<robot name="twolink">
  <link name="base"><collision><origin xyz="0 0 0.05"/><geometry><box size="0.2 0.2 0.1"/></geometry></collision></link>
  <link name="arm">
    <collision><origin xyz="0 0 0.15" rpy="0 0 0"/><geometry><cylinder radius="0.03" length="0.3"/></geometry></collision>
  </link>
  <link name="tip"><collision><origin xyz="0 0 0"/><geometry><mesh filename="package://parts/tip.stl" scale="1 1 2"/></geometry></collision></link>
  <joint name="j1" type="revolute"><parent link="base"/><child link="arm"/><origin xyz="0 0 0.1"/><axis xyz="0 1 0"/>
    <limit lower="-1.5" upper="1.5"/></joint>
  <joint name="j2" type="revolute"><parent link="arm"/><child link="tip"/><origin xyz="0 0 0.3" rpy="0 1.5707963267948966 0"/>
    <axis xyz="0 1 0"/><limit lower="-2" upper="2"/></joint>
</robot>
"""


@pytest.fixture
def two_link(tmp_path):
    (tmp_path / "parts").mkdir()
    trimesh.creation.box(extents=(0.04, 0.04, 0.04)).export(tmp_path / "parts" / "tip.stl")
    f = tmp_path / "twolink.urdf"
    f.write_text(TWO_LINK)
    return f


def test_read_collision_geometry_resolves_meshes_and_origins(two_link):
    geoms = read_collision_geometry(two_link.read_text(), str(two_link))
    assert [g.kind for lk in ("base", "arm", "tip") for g in geoms[lk]] == ["box", "cylinder", "mesh"]
    tip = geoms["tip"][0]
    assert tip.mesh == str((two_link.parent / "parts" / "tip.stl").resolve()) and tip.size == (1.0, 1.0, 2.0)
    # scale applied: the tip mesh is 4 x 4 x 8 cm
    tri = link_triangles(geoms["tip"]).reshape(-1, 3)
    torch.testing.assert_close(tri.amax(0) - tri.amin(0), torch.tensor([0.04, 0.04, 0.08], dtype=torch.float64))
    # origin applied: the cylinder spans z in [0, 0.3] of the arm frame
    tri = link_triangles(geoms["arm"]).reshape(-1, 3)
    torch.testing.assert_close(tri[:, 2].aminmax(), (torch.tensor(0.0, dtype=torch.float64),
                                                     torch.tensor(0.3, dtype=torch.float64)))
    with pytest.raises(ValueError, match="mesh 'package://parts/nope.stl' not found"):
        read_collision_geometry(TWO_LINK.replace("tip.stl", "nope.stl"), str(two_link))
    R = rpy_matrix((0.1, -0.4, 2.0))
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64))


def test_fitted_robot_table_cache_and_checker(two_link, tmp_path):
    robot = robots.load(two_link)
    cache = tmp_path / "cache"
    table = fit_sphere_table(robot, 0.02, cache_dir=cache, self_samples=200)
    files = list(cache.glob("twolink-*.yaml"))
    assert len(files) == 1 and table.source == str(files[0])
    assert set(table.links) == {"base", "arm", "tip"}
    assert ("base", "arm", "adjacent") in table.disabled and ("arm", "tip", "adjacent") in table.disabled
    again = fit_sphere_table(robot, 0.02, cache_dir=cache, self_samples=200)    # read from the cache
    assert again.capsules == parse_sphere_table(yaml.safe_load(files[0].read_text())).capsules
    assert len(again.capsules) == len(table.capsules)
    for a, b in zip(again.capsules, table.capsules):
        assert math.dist(a.a, b.a) < 1e-6 and abs(a.radius - b.radius) < 1e-6
    # the YAML export round-trips
    assert parse_sphere_table(yaml.safe_load(sphere_table_yaml(table))).disabled == table.disabled
    # a changed description is a new key
    two_link.write_text(TWO_LINK.replace('radius="0.03"', 'radius="0.035"'))
    fit_sphere_table(robots.load(two_link), 0.02, cache_dir=cache, self_samples=200)
    assert len(list(cache.glob("twolink-*.yaml"))) == 2
    two_link.write_text(TWO_LINK)
    # the checker works for this robot (fit= passes the cache folder), against the exact cylinder distance
    q = torch.zeros(1, 2, dtype=torch.float64)
    ball = Ball((0.2, 0.0, 0.25), 0.05)
    fit = {"cache_dir": cache, "self_samples": 200, "tolerance": 0.02}
    ch = CollisionChecker(robot, [ball], fit=fit, inflation=0.0)
    exact = float(cylinder_sdf(torch.tensor([0.2, 0.0, 0.25 - 0.1 - 0.15], dtype=torch.float64), 0.03, 0.15)) - 0.05
    d = float(ch.clearance(q))
    err = ch.model.table.surface_error["arm"]
    assert exact - 1e-9 <= d <= exact + err + 1e-9      # spheres inside: never closer than the exact distance
    cons = CollisionChecker(robot, [ball], fit=fit, conservative=True)
    assert float(cons.clearance(q)) <= exact + 1e-9      # grown by the surface error: never farther


def test_robot_without_collision_geometry_is_refused(tmp_path):
    f = tmp_path / "bare.urdf"
    f.write_text(TWO_LINK.replace("<collision>", "<visual>").replace("</collision>", "</visual>"))
    with pytest.raises(ValueError, match="has <collision> geometry"):
        CollisionModel(robots.load(f), fit={"cache_dir": tmp_path, "tolerance": 0.01})


def test_fit_to_a_real_collision_mesh_against_its_exact_distance():
    """A convex-decomposition link of the xArm6 (pybullet_data): every sphere inside the mesh by its exact
    signed distance, fresh surface samples within tolerance + the sampling gap of the union."""
    pybullet_data = pytest.importorskip("pybullet_data")
    from pathlib import Path
    from posegen.robots.geometry import load_mesh_triangles
    from posegen.robots.spherefit import sample_surface
    f = Path(pybullet_data.getDataPath()) / "xarm/xarm_description/meshes/xarm6/collision/link5_vhacd.obj"
    if not f.is_file():
        pytest.skip("pybullet_data without the xArm meshes")
    tri = load_mesh_triangles(f)
    fit = fit_link_spheres(tri, 0.01, seed=0)
    assert (signed_distance(fit.centers, tri) + fit.radii <= 1e-9).all()
    q, _ = sample_surface(tri, 3000, torch.Generator().manual_seed(11))
    q = q[winding_number(q, tri) < 0.75]                               # outer surface only, as the fit
    gap = sphere_union_distance(q, fit.centers, fit.radii)
    assert (gap <= 0.01 + torch.cdist(q, fit.samples).amin(-1) + 1e-12).all()
