"""Collision models of robots loaded from MJCF: geometry read through MuJoCo's compiled model, fitted spheres,
checkers, valid sampling and planning (float64).

Independent references: the analytic signed distances of the primitives as written in the MJCF (sizes from the
XML, not from MuJoCo's half-sizes), placed by MuJoCo's own forward kinematics (``mj_kinematics``: ``geom_xpos``,
``geom_xmat``), never by posegen's; a mesh written with trimesh, placed by the pose written in the XML; and the
same robot as URDF (pybullet_data's kuka_iiwa), fitted on its own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

mujoco = pytest.importorskip("mujoco")
trimesh = pytest.importorskip("trimesh")
pytest.importorskip("pytorch_kinematics")

import posegen as pg  # noqa: E402
from posegen import robots  # noqa: E402
from posegen.robots.collision import CollisionChecker, CollisionModel  # noqa: E402
from posegen.robots.geometry import link_triangles, robot_collision_geometry, triangle_distance  # noqa: E402
from posegen.robots.mjcfgeometry import mjcf_collision_geometry  # noqa: E402

# quaternions written as w x y z, as MJCF does
Q_BOX = (math.cos(0.3), 0.0, math.sin(0.3), 0.0)                          # 0.6 rad about y
Q_ELL = (math.cos(0.4), math.sin(0.4) / math.sqrt(2), 0.0, math.sin(0.4) / math.sqrt(2))

ARM = f"""<mujoco model="prim_arm">
  <compiler angle="radian"/>
  <default>
    <geom contype="1" conaffinity="1"/>
    <default class="visual"><geom contype="0" conaffinity="0" group="2"/></default>
  </default>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1"/>
    <body name="base">
      <geom name="pedestal" type="cylinder" size="0.06 0.05" pos="0 0 0.05"/>
      <body name="link1" pos="0 0 0.1">
        <joint name="j1" axis="0 0 1" range="-2.9 2.9"/>
        <geom name="upper" type="capsule" fromto="0 0 0 0 0 0.3" size="0.04"/>
        <geom class="visual" type="sphere" size="0.2"/>
        <body name="link2" pos="0 0 0.3">
          <joint name="j2" axis="0 1 0" range="-2 2"/>
          <geom name="slab" type="box" size="0.03 0.04 0.15" pos="0 0 0.15" quat="{' '.join(map(str, Q_BOX))}"/>
          <body name="link3" pos="0 0 0.3">
            <joint name="j3" axis="0 1 0" range="-2 2"/>
            <geom name="egg" type="ellipsoid" size="0.03 0.05 0.08" pos="0 0 0.08" quat="{' '.join(map(str, Q_ELL))}"/>
            <geom name="knob" type="sphere" size="0.03" pos="0 0 0.18"/>
            <site name="tool" pos="0 0 0.2"/>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
</mujoco>
"""

# the shapes as written above: name -> (link, kind, parameters)
SHAPES = {"pedestal": ("base", "cylinder", (0.06, 0.05)), "upper": ("link1", "capsule", (0.04, 0.15)),
          "slab": ("link2", "box", (0.03, 0.04, 0.15)), "egg": ("link3", "ellipsoid", (0.03, 0.05, 0.08)),
          "knob": ("link3", "sphere", (0.03,))}


def quat_wxyz_matrix(q):
    w, x, y, z = (float(v) for v in q)
    return torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], dtype=torch.float64)


def ellipsoid_sdf(a, p, iterations=200):
    """Exact signed distance ``(...,)`` to the ellipsoid of semi-axes ``a`` (Eberly: the nearest point is
    ``a_i^2 p_i / (a_i^2 + t)`` for the root ``t > -min(a)^2`` of ``sum (a_i p_i / (a_i^2 + t))^2 = 1``,
    found by bisection in float64)."""
    a = torch.tensor(a, dtype=torch.float64)
    a2 = a * a
    lo = torch.full(p.shape[:-1], -float(a2.min()), dtype=torch.float64)
    hi = float(a.max()) * p.norm(dim=-1) + 1e-12
    for _ in range(iterations):
        t = (lo + hi) / 2
        f = ((a * p / (a2 + t[..., None])) ** 2).sum(-1) - 1
        lo, hi = torch.where(f > 0, t, lo), torch.where(f > 0, hi, t)
    x = a2 * p / (a2 + ((lo + hi) / 2)[..., None])
    return torch.where(ellipsoid_level(a.tolist(), p) >= 1, 1.0, -1.0) * (p - x).norm(dim=-1)


def shape_sdf(kind, par, p):
    """Exact signed distance (``(...,)``, m) of the shape ``kind`` with the parameters of :data:`SHAPES`, at
    points ``p (..., 3)`` in its own frame."""
    if kind == "ellipsoid":
        return ellipsoid_sdf(par, p)
    if kind == "sphere":
        return p.norm(dim=-1) - par[0]
    if kind == "box":
        d = p.abs() - torch.tensor(par, dtype=torch.float64)
        return d.clamp_min(0).norm(dim=-1) + d.amax(-1).clamp_max(0)
    if kind == "cylinder":
        d = torch.stack([p[..., :2].norm(dim=-1) - par[0], p[..., 2].abs() - par[1]], -1)
        return d.clamp_min(0).norm(dim=-1) + d.amax(-1).clamp_max(0)
    if kind == "capsule":
        z = p[..., 2].clamp(-par[1], par[1])
        return torch.stack([p[..., 0], p[..., 1], p[..., 2] - z], -1).norm(dim=-1) - par[0]
    raise ValueError(kind)


def ellipsoid_level(par, p):
    return (p / torch.tensor(par, dtype=torch.float64)).norm(dim=-1)


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    d = tmp_path_factory.mktemp("mjcf_arm")
    (d / "arm.xml").write_text(ARM)
    robot = robots.load(d / "arm.xml")
    model = CollisionModel(robot, fit={"cache_dir": d, "tolerance": 0.01, "self_samples": 0})
    return robot, model


def mujoco_geom_poses(xml, q, joint_names):
    """World poses of the named geoms, by MuJoCo's forward kinematics: ``{name: (R (B, 3, 3), p (B, 3))}``."""
    m = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(m)
    out = {n: ([], []) for n in SHAPES}
    for row in q.tolist():
        for name, v in zip(joint_names, row):
            data.qpos[m.joint(name).qposadr[0]] = v
        mujoco.mj_kinematics(m, data)
        for n in SHAPES:
            g = m.geom(n).id
            out[n][0].append(data.geom_xmat[g].reshape(3, 3).copy())
            out[n][1].append(data.geom_xpos[g].copy())
    return {n: (torch.tensor(np.array(R)), torch.tensor(np.array(p))) for n, (R, p) in out.items()}


def uniform(robot, n, seed):
    g = torch.Generator().manual_seed(seed)
    lim = robot.joint_limits
    return lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(n, robot.dof, generator=g, dtype=torch.float64)


# ---------------------------------------------------------------------------- geometry
def test_collision_geoms_by_mujocos_rule_with_sizes_as_written(arm):
    robot, _ = arm
    geoms = robot_collision_geometry(robot)
    kinds = {lk: sorted((g.kind, tuple(round(s, 12) for s in g.size)) for g in gs) for lk, gs in geoms.items()}
    # floor (a plane) and the visual sphere (contype = conaffinity = 0) are left out; MuJoCo's half-sizes doubled
    assert kinds == {"base": [("cylinder", (0.06, 0.1))], "link1": [("capsule", (0.04, 0.3))],
                     "link2": [("box", (0.06, 0.08, 0.3))],
                     "link3": [("ellipsoid", (0.03, 0.05, 0.08)), ("sphere", (0.03,))]}
    assert all(g.quat is not None and g.rpy == (0.0, 0.0, 0.0) for gs in geoms.values() for g in gs)


def test_link_triangles_lie_on_the_shapes_placed_by_mujocos_kinematics(arm):
    robot, _ = arm
    q = uniform(robot, 4, 0)
    poses = mujoco_geom_poses(ARM, q, robot.joint_names)
    tri = {lk: link_triangles(g) for lk, g in robot_collision_geometry(robot).items()}
    F = robot.frames(q, list(tri))
    for b in range(len(q)):
        for lk, t in tri.items():
            T = F[lk][b]
            v = t.reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]                      # world frame, posegen's FK
            on = torch.zeros(len(v), dtype=torch.bool)
            for name, (link, kind, par) in SHAPES.items():
                if link != lk:
                    continue
                local = (v - poses[name][1][b]) @ poses[name][0][b]            # MuJoCo's geom frame
                on |= shape_sdf(kind, par, local).abs() < 1e-9
            assert bool(on.all()), f"{lk}: {int((~on).sum())} of {len(v)} vertices off their shapes"


def test_height_fields_are_skipped_like_planes():
    hfield = ARM.replace('<geom name="floor" type="plane" size="2 2 0.1"/>',
                         '<geom name="floor" type="hfield" hfield="terrain"/>').replace(
        "<worldbody>", '<asset><hfield name="terrain" nrow="3" ncol="3" size="1 1 0.1 0.1"/></asset><worldbody>')
    m = mujoco.MjModel.from_xml_string(hfield)
    assert "world" not in mjcf_collision_geometry(m)                      # terrain: skipped like a plane


def test_collision_geometry_refuses_inconsistent_fields():
    from posegen.robots.collisiongeometry import CollisionGeometry
    with pytest.raises(ValueError, match="as rpy or as quat, got both"):
        CollisionGeometry("l", "sphere", (0.0, 0.0, 0.0), (0.1, 0.0, 0.0), (0.1,), quat=(0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="unit quaternion"):
        CollisionGeometry("l", "sphere", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.1,), quat=(0.0, 0.0, 0.0, 2.0))
    with pytest.raises(ValueError, match="kind 'ellipsoid' needs 3 positive sizes"):
        CollisionGeometry("l", "ellipsoid", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.1, 0.2))
    with pytest.raises(ValueError, match=r"needs a file \(mesh=\) or its triangles"):
        CollisionGeometry("l", "mesh", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"\(T, 3, 3\) float64"):
        CollisionGeometry("l", "mesh", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                          triangles=torch.zeros(4, 3, 3, dtype=torch.float32))


# ---------------------------------------------------------------------------- fitted spheres
CHORD = 0.005 * 0.08     # the tessellations' largest gap to the exact surfaces: 0.5 % of the largest radius


def exact_clearances(poses, points, links=None):
    """``(B, N)`` exact signed distance from ``points (B, N, 3)`` (world) to the shapes (of ``links`` only,
    when given: ``(N,)`` link names, one per point)."""
    out = torch.full(points.shape[:2], math.inf, dtype=torch.float64)
    for name, (link, kind, par) in SHAPES.items():
        R, p = poses[name]
        d = shape_sdf(kind, par, (points - p[:, None]) @ R)
        mine = torch.ones(points.shape[1], dtype=torch.bool) if links is None else torch.tensor(
            [lk == link for lk in links])
        out = torch.where(mine, torch.minimum(out, d), out)
    return out


def test_ellipsoid_reference_against_points_placed_at_known_distances():
    a = (0.03, 0.05, 0.08)
    g = torch.Generator().manual_seed(5)
    u = torch.randn(500, 3, generator=g, dtype=torch.float64)
    x = torch.tensor(a, dtype=torch.float64) * u / u.norm(dim=-1, keepdim=True)        # on the surface
    n = x / torch.tensor(a, dtype=torch.float64) ** 2
    n = n / n.norm(dim=-1, keepdim=True)                                                 # outward normals
    s = 0.02 * torch.rand(500, generator=g, dtype=torch.float64) - 0.01                  # < the smallest radius
    torch.testing.assert_close(ellipsoid_sdf(a, x + s[:, None] * n), s, rtol=0, atol=1e-12)


def test_fitted_spheres_lie_inside_the_exact_shapes_and_the_conservative_ones_cover_them(arm):
    robot, model = arm
    q = uniform(robot, 32, 1)
    poses = mujoco_geom_poses(ARM, q, robot.joint_names)
    bare = CollisionModel(robot, model.table, inflation=0.0)
    links = [bare.links[int(i)] for i in bare.link_index]
    inside = exact_clearances(poses, bare.sphere_centers(q), links) + bare.radii
    assert float(inside.max()) <= 1e-9                                 # every sphere inside its link's shapes
    # balls of radius 1-5 cm, their surface about -1 to +2 cm from the exact shapes: the bare spheres are never
    # closer than the exact clearance; the conservative ones (grown by the measured surface error) detect every
    # contact and are never farther than the exact clearance, up to CHORD
    g = torch.Generator().manual_seed(2)
    n = 64
    pick = torch.randint(0, len(SHAPES), (len(q), n), generator=g)
    u = torch.randn(len(q), n, 3, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    size = 0.01 + 0.04 * torch.rand(len(q), n, generator=g, dtype=torch.float64)
    shift = 0.03 * torch.rand(len(q), n, generator=g, dtype=torch.float64) - 0.01
    centres = torch.empty(len(q), n, 3, dtype=torch.float64)
    for k, (name, (link, kind, par)) in enumerate(SHAPES.items()):
        R, p = poses[name]
        centres[pick == k] = (p[:, None] + 0.2 * u @ R.transpose(-1, -2))[pick == k]   # outside, 20 cm off
    for _ in range(3):        # walk each centre towards its shape to ``size + shift`` from it
        d = exact_clearances(poses, centres)
        centres = centres - (d - size - shift)[..., None] * u
    exact = exact_clearances(poses, centres) - size
    def clearance(m):
        c = m.sphere_centers(q)                                        # (B, S, 3)
        return ((centres[:, :, None] - c[:, None]).norm(dim=-1) - m.radii - size[..., None]).amin(-1)

    assert float((clearance(bare) - exact).min()) >= -1e-9
    cons = clearance(CollisionModel(robot, model.table, conservative=True))
    assert float(cons[exact < 0].max()) < CHORD                         # no contact missed
    assert float((cons - exact)[exact >= 0].max()) <= CHORD
    assert 0.05 < float((exact < 0).double().mean()) < 0.95            # contacts and free balls both tested


# ---------------------------------------------------------------------------- meshes in files
def write_mesh_arm(root, scale=(1.0, 1.0, 1.5)):
    """An MJCF file whose link2 is a mesh in ``assets/part.stl`` (an off-centre box, so that MuJoCo moves it to
    its centre of mass and compensates in the geom pose); the mesh's vertices in link2's frame as written."""
    (root / "assets").mkdir(parents=True, exist_ok=True)
    part = trimesh.creation.box(extents=(0.04, 0.06, 0.2))
    part.apply_translation((0.02, -0.01, 0.1))
    part.export(root / "assets" / "part.stl")
    q = (math.cos(0.25), 0.0, 0.0, math.sin(0.25))                    # 0.5 rad about z
    xml = ARM.replace("<compiler angle=\"radian\"/>", "<compiler angle=\"radian\" meshdir=\"assets\"/>").replace(
        "<worldbody>", f'<asset><mesh name="part" file="part.stl" scale="{" ".join(map(str, scale))}"/></asset>'
                       "<worldbody>").replace(
        f'<geom name="slab" type="box" size="0.03 0.04 0.15" pos="0 0 0.15" quat="{" ".join(map(str, Q_BOX))}"/>',
        f'<geom name="slab" type="mesh" mesh="part" pos="0.01 0 0.05" quat="{" ".join(map(str, q))}"/>')
    (root / "arm.xml").write_text(xml)
    tri = torch.tensor(part.triangles, dtype=torch.float64) * torch.tensor(scale, dtype=torch.float64)
    return root / "arm.xml", tri @ quat_wxyz_matrix(q).T + torch.tensor([0.01, 0.0, 0.05], dtype=torch.float64)


def test_a_mesh_file_loads_from_the_mjcf_folder_in_its_written_pose(tmp_path, monkeypatch):
    path, expected = write_mesh_arm(tmp_path / "robot")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")                          # relative to the file, not the cwd
    robot = robots.load(path)
    assert robot.joint_names == ("j1", "j2", "j3")
    geoms = robot_collision_geometry(robot)
    (mesh,) = geoms["link2"]
    assert mesh.kind == "mesh" and mesh.triangles is not None
    got = link_triangles(geoms["link2"])
    assert got.shape == expected.shape
    # the same surface, to MuJoCo's float32 vertices (about 1e-7 m here)
    assert float(triangle_distance(got.reshape(-1, 3), expected).max()) < 1e-6
    assert float(triangle_distance(expected.reshape(-1, 3), got).max()) < 1e-6


def test_a_missing_mesh_file_is_named(tmp_path):
    path, _ = write_mesh_arm(tmp_path)
    (tmp_path / "assets" / "part.stl").unlink()
    with pytest.raises(ValueError, match=r"could not open the file .*part\.stl.*meshdir"):
        robots.load(path)


def test_mjcf_text_without_a_file_has_no_collision_geometry_to_read():
    from posegen.robots.loader import parse_description
    from posegen.robots.robot import Robot
    robot = Robot(parse_description(ARM, "<mjcf>"), "tool")
    with pytest.raises(ValueError, match="has no description file"):
        robot_collision_geometry(robot)


# ---------------------------------------------------------------------------- checkers, sampling, planning
def test_valid_sampling_and_a_plan_on_an_mjcf_arm(arm):
    robot, model = arm
    checker = CollisionChecker(model=model, obstacles=[robots.floor(), robots.Box(center=(0.35, 0.0, 0.45),
                                                                                  half_extents=(0.1, 0.3, 0.1))])
    torch.manual_seed(0)
    flow = pg.PoseFlow(robot.manifold, hidden=16, depth=1, robot=robot)  # untrained: near-uniform joints
    sampler = pg.PoseSampler(flow, solver={"method": "euler", "steps": 2})
    out = sampler.sample(100, seed=0, checker=checker)
    assert bool(checker.is_valid(out["joints"]).all())
    share = float(checker.is_valid(sampler.sample(500, seed=1)["joints"]).float().mean())
    assert 0.05 < share < 0.95                                          # the scene rejects a real share
    pytest.importorskip("ompl")
    from posegen.planning import plan
    # link2 leans into the box's height at j2 = 1.2: swinging j1 straight across goes through it
    start = torch.tensor([-1.5, 1.2, 0.0], dtype=torch.float64)
    goal = torch.tensor([1.5, 1.2, 0.0], dtype=torch.float64)
    assert bool(checker.is_valid(torch.stack([start, goal])).all()) and not checker.check_motion(start, goal)
    res = plan(checker, start, goal, planner="RRTConnect", time_limit=20.0, seed=0)
    assert res.solved
    path = torch.as_tensor(res.path)
    torch.testing.assert_close(path[[0, -1]], torch.stack([start, goal]), rtol=0, atol=1e-9)
    assert all(checker.check_motion(a, b) for a, b in zip(path[:-1], path[1:]))


# ---------------------------------------------------------------------------- the same robot as URDF and MJCF
@pytest.mark.slow
def test_kuka_iiwa_as_urdf_and_as_mjcf_gives_the_same_frames_geometry_and_collisions(tmp_path):
    pybullet_data = pytest.importorskip("pybullet_data")
    from pathlib import Path

    from posegen.robots.geometry import signed_distance
    from posegen.robots.mjcf import mjcf_from_urdf
    from posegen.robots.spherefit import sample_surface

    urdf = Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "model.urdf"
    u, m = robots.load(urdf), robots.load(mjcf_from_urdf(urdf, tmp_path / "kuka.xml"))
    assert u.joint_names == m.joint_names and u.ee_link == m.ee_link
    # MuJoCo saves 6 significant digits: the joint ranges move by at most 5e-6 rad
    torch.testing.assert_close(m.joint_limits, u.joint_limits, rtol=0, atol=5e-6)
    q = uniform(u, 400, 3)
    links = list(u.link_names)
    fu, fm = u.frames(q, links), m.frames(q, links)
    assert max(float((fu[k] - fm[k]).abs().max()) for k in links) < 1e-9
    tri_u = {lk: link_triangles(g) for lk, g in robot_collision_geometry(u).items()}
    tri_m = {lk: link_triangles(g) for lk, g in robot_collision_geometry(m).items()}
    assert sorted(tri_u) == sorted(tri_m) == sorted(links)
    for lk in links:                                 # the same surfaces, to MuJoCo's float32 vertices
        assert tri_u[lk].shape == tri_m[lk].shape
        assert float(triangle_distance(tri_m[lk].reshape(-1, 3), tri_u[lk]).max()) < 1e-6
    # spheres fitted to each on its own (coarse, 2 cm, to keep the test minutes long)
    fit = {"cache_dir": tmp_path, "tolerance": 0.02, "self_samples": 0}
    mu, mm = CollisionModel(u, fit=fit), CollisionModel(m, fit=fit)
    bound = max(max(mu.table.surface_error.values()), max(mm.table.surface_error.values()))
    # one ball per configuration, 1-10 cm, its surface -2 to +4 cm from a surface point of a moving link
    g = torch.Generator().manual_seed(4)
    moving = links[1:]
    pick = torch.randint(0, len(moving), (len(q),), generator=g)
    size = 0.01 + 0.09 * torch.rand(len(q), generator=g, dtype=torch.float64)
    shift = 0.06 * torch.rand(len(q), generator=g, dtype=torch.float64) - 0.02
    centres = torch.empty(len(q), 3, dtype=torch.float64)
    for i in range(len(q)):
        lk = moving[int(pick[i])]
        p, nrm = sample_surface(tri_u[lk], 1, g)
        T = fu[lk][i]
        centres[i] = T[:3, :3] @ (p[0] + (size[i] + shift[i]) * nrm[0]) + T[:3, 3]
    exact = torch.full((len(q),), math.inf, dtype=torch.float64)       # the URDF meshes' signed clearance
    for lk, t in tri_u.items():
        T = fu[lk]
        local = ((centres - T[:, :3, 3]).unsqueeze(-2) @ T[:, :3, :3]).squeeze(-2)
        exact = torch.minimum(exact, signed_distance(local, t) - size)

    def hits(model):
        c = model.sphere_centers(q)
        return ((centres[:, None] - c).norm(dim=-1) - model.radii - size[:, None]).amin(-1) < 0

    hu, hm = hits(mu), hits(mm)
    assert 0.2 < float((exact < 0).double().mean()) < 0.8
    assert float((hu == hm).double().mean()) >= 0.99
    assert float(exact[hu != hm].abs().amax(0) if bool((hu != hm).any()) else 0.0) <= bound   # within the fits' error
    su, sm = mu.self_clearance(q) < 0, mm.self_clearance(q) < 0
    assert float((su == sm).double().mean()) >= 0.99


URDF = """<robot name="two">
  <link name="base"><collision><origin xyz="0 0 0.05"/><geometry><cylinder radius="0.06" length="0.1"/></geometry>
    </collision></link>
  <joint name="j1" type="revolute"><parent link="base"/><child link="arm"/><origin xyz="0 0 0.1" rpy="0 0 0.3"/>
    <axis xyz="0 0 1"/><limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
  <link name="arm">
    <collision><origin xyz="0.1 0 0.05" rpy="0.2 -0.4 0.7"/><geometry><box size="0.2 0.05 0.04"/></geometry></collision>
    <collision><origin xyz="0.2 0.03 0" rpy="0 0.5 0"/><geometry><mesh filename="part.stl" scale="1 2 1"/></geometry>
    </collision>
  </link>
  <joint name="j2" type="revolute"><parent link="arm"/><child link="tip"/><origin xyz="0.25 0 0" rpy="1.2 0 0"/>
    <axis xyz="0 1 0"/><limit lower="-1.5" upper="1.5" effort="1" velocity="1"/></joint>
  <link name="tip"><collision><origin xyz="0.03 0 0"/><geometry><sphere radius="0.03"/></geometry></collision></link>
</robot>
"""


def test_mujocos_translation_of_a_urdf_gives_the_same_frames_and_surfaces(tmp_path):
    from posegen.robots.mjcf import mjcf_from_urdf
    part = trimesh.creation.annulus(r_min=0.01, r_max=0.03, height=0.05)    # non-convex, off its centre of mass
    part.apply_translation((0.01, 0.0, 0.02))
    part.export(tmp_path / "part.stl")
    (tmp_path / "two.urdf").write_text(URDF)
    u = robots.load(tmp_path / "two.urdf")
    m = robots.load(mjcf_from_urdf(tmp_path / "two.urdf", tmp_path / "two.xml"))
    q = uniform(u, 8, 6)
    fu, fm = u.frames(q, ["base", "arm", "tip"]), m.frames(q, ["base", "arm", "tip"])
    # MuJoCo saves 6 significant digits: quaternion components move by up to 5e-7, rotations by about 2e-6
    # per joint, so frames and vertices (within 0.3 m of the base) by a few 1e-6
    assert max(float((fu[k] - fm[k]).abs().max()) for k in fu) < 5e-6
    gu, gm = robot_collision_geometry(u), robot_collision_geometry(m)
    assert {k: sorted(g.kind for g in v) for k, v in gm.items()} == {"base": ["cylinder"], "arm": ["box", "mesh"],
                                                                      "tip": ["sphere"]}
    for lk in gu:
        a, b = link_triangles(gu[lk]), link_triangles(gm[lk])
        assert a.shape == b.shape
        assert float(triangle_distance(b.reshape(-1, 3), a).max()) < 5e-6
        assert float(triangle_distance(a.reshape(-1, 3), b).max()) < 5e-6


def test_the_fit_cache_key_follows_included_files_and_meshes(tmp_path):
    from posegen.robots.autofit import fit_key
    path, _ = write_mesh_arm(tmp_path)
    xml = path.read_text()
    body = xml[xml.index("<worldbody>"):xml.index("</worldbody>") + len("</worldbody>")]
    (tmp_path / "kinematics.xml").write_text(f"<mujoco>{body}</mujoco>")
    path.write_text(xml.replace(body, '<include file="kinematics.xml"/>'))

    def key():
        robot = robots.load(path)
        return fit_key(robot, robot_collision_geometry(robot), {"tolerance": 0.01})

    k0 = key()
    assert key() == k0                                                  # deterministic
    moved = body.replace('<body name="link3" pos="0 0 0.3">', '<body name="link3" pos="0 0 0.31">')
    assert moved != body
    (tmp_path / "kinematics.xml").write_text(f"<mujoco>{moved}</mujoco>")
    k1 = key()                                                          # a body moved in the included file
    assert k1 != k0
    trimesh.creation.box(extents=(0.04, 0.06, 0.21)).export(tmp_path / "assets" / "part.stl")
    assert key() not in (k0, k1)                                        # the mesh file changed
