"""posegen.robots.collision: capsule tables, sphere covers, obstacle and self-collision checks.

Accuracy is measured against a dense cover of the same capsules (spheres about 1 mm apart, within 2 micrometres
of the exact capsules): the default cover (spheres inside the capsules, ``spacing=0.5``) may only miss contacts,
by at most ``0.032 r`` of penetration; the conservative one may only add them, by at most ``0.031 r``.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from posegen.robots import load
from posegen.robots.collision import (Ball, Box, Capsule, CollisionChecker, CollisionModel, capsule_spheres,
                                      load_sphere_table, ready_configuration)
from posegen.robots.spheres import parse_sphere_table

ROBOTS = ("panda", "ur5e", "iiwa14")
DENSE = 0.02           # obstacles: spheres ~1 mm apart
DENSE_SELF = 0.1       # self-collision: ~6 mm apart (within 0.13 % of r of the capsules), fast enough
TOL = 1e-5             # the dense cover's own error at contact (s^2 / 8 (r + rho), below 1e-5 m here)
INFLATE = math.sqrt(1 + 0.5 ** 2 / 4) - 1

# The hand-measured capsule tables the built-in robots shipped before fitted spheres (their headers, in git
# history, say how they were measured): the reference cases of the capsule covers tested here.
HAND_TABLES = {
    "panda": """\
robot: panda
capsules:
  - {link: panda_link0, a: [-0.04, 0.0, 0.06], radius: 0.10}
  - {link: panda_link1, a: [0.0, 0.0, -0.19], b: [0.0, 0.0, 0.0], radius: 0.075}
  - {link: panda_link2, a: [0.0, -0.08, 0.0], b: [0.0, -0.24, 0.0], radius: 0.065}
  - {link: panda_link3, a: [0.0, 0.0, 0.0], b: [0.0825, 0.0, 0.0], radius: 0.065}
  - {link: panda_link4, a: [0.0, 0.0, 0.0], b: [-0.0825, 0.384, 0.0], radius: 0.06}
  - {link: panda_link5, a: [0.0, 0.0, 0.0], radius: 0.06}
  - {link: panda_link6, a: [0.0, 0.0, 0.0], b: [0.088, 0.0, 0.0], radius: 0.055}
  - {link: panda_link7, a: [0.0, 0.0, 0.0], b: [0.0, 0.0, 0.055], radius: 0.05}
  - {link: panda_hand, a: [0.0, 0.0, 0.03], radius: 0.04}
  - {link: panda_hand, a: [0.0, -0.06, 0.03], b: [0.0, 0.06, 0.03], radius: 0.035}
  - {link: panda_hand, a: [0.0, -0.04, 0.075], radius: 0.015}
  - {link: panda_hand, a: [0.0, 0.04, 0.075], radius: 0.015}
  - {link: panda_hand, a: [0.0, -0.04, 0.097], radius: 0.01}
  - {link: panda_hand, a: [0.0, 0.04, 0.097], radius: 0.01}
""",
    "ur5e": """\
robot: ur5e
capsules:
  - {link: base_link_inertia, a: [0.0, 0.0, 0.02], b: [0.0, 0.0, 0.08], radius: 0.08}
  - {link: shoulder_link, a: [0.0, 0.0, -0.02], b: [0.0, 0.0, 0.02], radius: 0.08}
  - {link: upper_arm_link, a: [-0.06, 0.0, 0.136], b: [-0.365, 0.0, 0.136], radius: 0.095}
  - {link: upper_arm_link, a: [0.0, 0.0, 0.08], b: [0.0, 0.0, 0.19], radius: 0.065}
  - {link: upper_arm_link, a: [-0.425, 0.0, 0.08], b: [-0.425, 0.0, 0.19], radius: 0.065}
  - {link: forearm_link, a: [-0.06, 0.0, 0.006], b: [-0.392, 0.0, 0.006], radius: 0.07}
  - {link: forearm_link, a: [0.0, 0.0, -0.03], b: [0.0, 0.0, 0.04], radius: 0.065}
  - {link: wrist_1_link, a: [0.0, 0.0, -0.035], b: [0.0, 0.0, 0.0], radius: 0.055}
  - {link: wrist_2_link, a: [0.0, 0.0, -0.005], b: [0.0, 0.0, 0.0], radius: 0.06}
  - {link: wrist_3_link, a: [0.0, 0.0, -0.03], b: [0.0, 0.0, -0.01], radius: 0.045}
""",
    "iiwa14": """\
robot: iiwa14
capsules:
  - {link: iiwa_link_0, a: [-0.015, 0.0, 0.07], radius: 0.139}
  - {link: iiwa_link_1, a: [0.0, -0.014, 0.096], b: [0.0, -0.014, 0.184], radius: 0.101}
  - {link: iiwa_link_2, a: [0.0, 0.012, 0.035], b: [0.0, 0.100, 0.035], radius: 0.101}
  - {link: iiwa_link_3, a: [0.0, 0.025, 0.084], b: [0.0, 0.025, 0.190], radius: 0.092}
  - {link: iiwa_link_4, a: [0.0, 0.023, 0.025], b: [0.0, 0.089, 0.025], radius: 0.092}
  - {link: iiwa_link_5, a: [0.0, 0.00784, 0.05835], b: [0.0, 0.05216, 0.20165], radius: 0.07}
  - {link: iiwa_link_6, a: [0.0, -0.0162, 0.0075], radius: 0.0634}
  - {link: iiwa_link_7, a: [0.0, -0.0013, -0.0016], radius: 0.0529}
""",
}


def hand_table(name):
    return parse_sphere_table(yaml.safe_load(HAND_TABLES[name]), f"<hand {name}>")


def uniform(robot, n, seed):
    lim = robot.joint_limits
    g = torch.Generator().manual_seed(seed)
    return lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(n, robot.dof, generator=g, dtype=torch.float64)


def waist(spacing):
    """Deepest miss of a chain of radius-r spheres spaced spacing * r apart, as a fraction of r."""
    return 1 - math.sqrt(1 - spacing ** 2 / 4)


def test_capsule_cover_geometry():
    cap = Capsule("l", (0.0, 0.0, 0.0), 0.05, (0.3, 0.0, 0.0))
    c, r, own = capsule_spheres([cap], spacing=0.5)
    assert c.shape == (13, 3) and (r == 0.05).all() and (own == 0).all()       # ceil(0.3 / 0.025) + 1
    torch.testing.assert_close(c[[0, -1]], torch.tensor([[0.0, 0, 0], [0.3, 0, 0]], dtype=torch.float64))
    assert float((c[1:] - c[:-1]).norm(dim=-1).max()) <= 0.5 * 0.05 + 1e-15
    # conservative spheres reach the capsule's surface half way between two centres
    _, rc, _ = capsule_spheres([cap], spacing=0.5, conservative=True)
    s = 0.3 / 12
    torch.testing.assert_close(rc, torch.full((13,), math.sqrt(0.05 ** 2 + s ** 2 / 4), dtype=torch.float64))
    c1, r1, _ = capsule_spheres([Capsule("l", (1.0, 2.0, 3.0), 0.1)])
    assert c1.tolist() == [[1.0, 2.0, 3.0]] and r1.tolist() == [0.1]


@pytest.mark.parametrize("name", ROBOTS)
def test_tables_load_and_fit_their_robot(name):
    robot = load(name)
    table = load_sphere_table(name)
    assert table.robot == name and len(table.capsules) >= 7
    assert {c.link for c in table.capsules} <= set(robot.link_names)
    m = CollisionModel(robot)
    assert m.fixed.any() and not m.fixed.all()                                 # a fixed base and moving links
    # the ready configuration is free of self-collision, with some clearance
    assert float(m.self_clearance(ready_configuration(robot))) > 0.01
    # every self-collision pair joins links of a pair that is neither adjacent nor disabled otherwise
    for i, j in m.pairs.tolist():
        a, b = m.links[int(m.link_index[i])], m.links[int(m.link_index[j])]
        assert a != b and frozenset((a, b)) not in m.disabled


@pytest.mark.parametrize("name", ROBOTS)
def test_obstacle_clearance_against_a_dense_cover(name):
    """Balls and boxes around seeded uniform configurations: coarse vs dense clearance."""
    robot = load(name)
    table = hand_table(name)
    coarse = CollisionModel(robot, table)
    dense = CollisionModel(robot, table, spacing=DENSE)
    cons = CollisionModel(robot, table, conservative=True)
    q = uniform(robot, 300, seed=1)
    g = torch.Generator().manual_seed(2)
    # obstacles near the arm: one per configuration, centred 0-15 cm from a random point of the robot
    cd = dense.sphere_centers(q)
    pick = torch.randint(0, cd.shape[1], (q.shape[0],), generator=g)
    anchor = cd[torch.arange(q.shape[0]), pick]
    offset = torch.randn(q.shape[0], 3, generator=g, dtype=torch.float64)
    centre = anchor + 0.15 * torch.rand(q.shape[0], 1, generator=g, dtype=torch.float64) * offset / offset.norm(
        dim=-1, keepdim=True)
    size = 0.01 + 0.09 * torch.rand(q.shape[0], generator=g, dtype=torch.float64)
    r_max = max(c.radius for c in coarse.table.capsules)
    stats = {}
    for kind in ("ball", "box"):
        d = {label: _clearance_rows(m, q, centre, size, kind)
             for label, m in (("coarse", coarse), ("dense", dense), ("cons", cons))}
        hit = d["dense"] < 0
        fn, fp = hit & (d["coarse"] >= 0), (d["coarse"] < 0) & ~hit
        fn_c, fp_c = hit & (d["cons"] >= 0), (d["cons"] < 0) & ~hit
        assert int(hit.sum()) > 50, kind                                    # the placement makes contacts
        # default cover (inside the capsules): no false alarm; its misses are grazing contacts
        assert int(fp.sum()) == 0 and (d["dense"][fn] > -waist(0.5) * r_max - TOL).all(), kind
        # conservative cover (around the capsules): no miss; its false alarms are within the inflation
        assert int(fn_c.sum()) == 0 and (d["dense"][fp_c] < INFLATE * r_max + TOL).all(), kind
        # near contact (|dense clearance| < 5 mm) the clearances differ by at most the waist / the inflation
        near = d["dense"].abs() < 5e-3
        diff, diff_c = (d["coarse"] - d["dense"])[near], (d["cons"] - d["dense"])[near]
        assert float(diff.min()) > -TOL and float(diff.max()) <= waist(0.5) * r_max + TOL, kind
        assert float(diff_c.max()) < TOL and float(diff_c.min()) >= -INFLATE * r_max - TOL, kind
        stats[kind] = (int(hit.sum()), int(fn.sum()), int(fp_c.sum()))
        # measured (seeded): a few per cent of the contacts at most
        assert fn.sum() <= 0.1 * hit.sum() and fp_c.sum() <= 0.1 * hit.sum(), (kind, stats[kind])
    print(f"{name}: (contacts, missed by the default cover, added by the conservative one) {stats}")


def _clearance_rows(model, q, centre, size, kind):
    """``(N,)`` signed clearance of configuration ``q[i]`` (all spheres, the base included) to obstacle ``i``: a
    ball of radius ``size[i]`` or a cube of half-width ``size[i]`` centred at ``centre[i]``."""
    c = model.sphere_centers(q) - centre[:, None]                                   # (N, S, 3)
    if kind == "ball":
        d = c.norm(dim=-1) - size[:, None]
    else:
        e = c.abs() - size[:, None, None]
        d = e.clamp_min(0).norm(dim=-1) + e.amax(-1).clamp_max(0)
    return (d - model.radii).amin(-1)


@pytest.mark.parametrize("name", ROBOTS)
def test_self_collision_against_a_dense_cover(name):
    robot = load(name)
    table = hand_table(name)
    coarse, dense = CollisionModel(robot, table), CollisionModel(robot, table, spacing=DENSE_SELF)
    cons = CollisionModel(robot, table, conservative=True)
    # the coarse and the dense model leave out the same link pairs
    assert coarse.disabled == dense.disabled
    q = uniform(robot, 400, seed=3)
    sc, sd, sk = coarse.self_clearance(q), dense.self_clearance(q), cons.self_clearance(q)
    r_max = max(c.radius for c in coarse.table.capsules)
    tol = 2 * waist(DENSE_SELF) * r_max + TOL
    hit = sd < 0
    fn, fp = hit & (sc >= 0), (sc < 0) & ~hit
    fn_c, fp_c = hit & (sk >= 0), (sk < 0) & ~hit
    assert int(hit.sum()) > 0
    assert (sd[fp] > -tol).all() and (sd[fn] > -2 * waist(0.5) * r_max - tol).all()
    assert (sd[fn_c] > -tol).all() and (sd[fp_c] < 2 * INFLATE * r_max + tol).all()
    assert fn.sum() <= 0.1 * hit.sum() + 1 and fp_c.sum() <= 0.1 * hit.sum() + 1
    print(f"{name}: self-colliding {float(hit.double().mean()):.1%} of uniform configurations; missed by the "
          f"default cover {int(fn.sum())}, added by the conservative one {int(fp_c.sum())} of {int(hit.sum())}")


def test_checker_batches_dtypes_and_errors():
    robot = load("panda")
    q = uniform(robot, 64, seed=4)
    scene = [Box((0.6, 0.0, 0.3), (0.1, 0.3, 0.3)), Ball((0.3, 0.3, 0.6), 0.1)]
    c64 = CollisionChecker(robot, scene)
    c32 = CollisionChecker(robot, scene, dtype=torch.float32)
    torch.testing.assert_close(c32.clearance(q).double(), c64.clearance(q), rtol=0, atol=1e-5)
    v = c64.is_valid(q.reshape(8, 8, 7))
    assert v.shape == (8, 8) and torch.equal(v.reshape(-1), c64.is_valid(q))
    assert torch.equal(c64.is_valid(q), c64.within_limits(q) & (c64.clearance(q) >= 0)
                       & (c64.self_clearance(q) >= 0))
    assert c64.n_checked == 3 * 64
    with pytest.raises(ValueError, match="fixed base"):
        CollisionChecker("ur5e", [Ball((0.0, 0.0, 0.05), 0.05)])
    with pytest.raises(ValueError, match="not links of"):
        CollisionModel("ur5e", spheres=[Capsule("panda_link1", (0, 0, 0), 0.1)])
    with pytest.raises(ValueError, match="sphere table must be"):
        load_sphere_table("nope.txt")
    with pytest.raises(ValueError, match="radius"):
        Capsule("l", (0, 0, 0), 0.0)
    with pytest.raises(TypeError, match="must be a posegen.robots.Robot"):
        CollisionModel(3.5)
    # the forms every robot-taking function accepts: a Robot.spec dict too (what checkpoints store)
    ur5e = CollisionModel("ur5e")
    assert CollisionModel(ur5e.robot.spec).robot.joint_names == ur5e.robot.joint_names


def test_yaml_table_from_a_file(tmp_path):
    f = tmp_path / "arm.yaml"
    f.write_text("robot: panda\ncapsules:\n  - {link: panda_hand_tcp, a: [0, 0, 0], radius: 0.02}\n")
    ch = CollisionChecker("panda", [Ball((0.0, 0.0, 2.0), 0.1)], spheres=str(f))
    assert len(ch.model.radii) == 1 and len(ch.model.pairs) == 0
    tcp = load("panda").fk(ready_configuration(load("panda")))[:3, 3]
    torch.testing.assert_close(ch.clearance(ready_configuration(ch.robot)),
                               (tcp - torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)).norm() - 0.12,
                               rtol=0, atol=1e-12)
    f.write_text("robot: x\ncapsules:\n  - {link: a, centre: [0, 0, 0], radius: 0.02}\n")
    with pytest.raises(ValueError, match="keys link, a, radius"):
        load_sphere_table(str(f))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    robot = load("ur5e")
    q = uniform(robot, 512, seed=5)
    scene = [Box((0.5, 0.0, -0.025), (0.35, 0.8, 0.025)), Ball((0.4, 0.2, 0.4), 0.1)]
    cpu = CollisionChecker(robot, scene)
    gpu = CollisionChecker(robot, scene, device="cuda")
    assert gpu.clearance(q).device.type == "cuda"
    torch.testing.assert_close(gpu.clearance(q).cpu(), cpu.clearance(q), rtol=0, atol=1e-9)
    torch.testing.assert_close(gpu.self_clearance(q).cpu(), cpu.self_clearance(q), rtol=0, atol=1e-9)
    assert torch.equal(gpu.is_valid(q).cpu(), cpu.is_valid(q))
