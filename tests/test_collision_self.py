"""Self-collision link pairs by MoveIt's setup-assistant rules, on a planar arm whose answers are known."""

from __future__ import annotations

import pytest
import torch

from posegen import robots
from posegen.robots.collision import CollisionModel
from posegen.robots.selfcollision import adjacent_pairs, disabled_link_pairs, link_bodies, read_srdf_disabled
from posegen.robots.spheres import Capsule, SphereTable

# a base, three 0.3 m links turning about z in the plane, a flange welded to the last one, and a post on
# the base far away from the arm (0.5 m behind it, above the reach of nothing)
ARM = """<robot name="planar">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="flange"/><link name="post"/>
  <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/><origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3"/></joint>
  <joint name="j2" type="revolute"><parent link="l1"/><child link="l2"/><origin xyz="0.3 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2.8" upper="2.8"/></joint>
  <joint name="j3" type="revolute"><parent link="l2"/><child link="l3"/><origin xyz="0.3 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2.8" upper="2.8"/></joint>
  <joint name="weld" type="fixed"><parent link="l3"/><child link="flange"/><origin xyz="0.3 0 0"/></joint>
  <joint name="post_joint" type="fixed"><parent link="base"/><child link="post"/><origin xyz="0 0 3"/></joint>
</robot>"""


def capsule(link, length=0.3, r=0.04):
    return Capsule(link, (0.05, 0.0, 0.0), r, (length - 0.05, 0.0, 0.0))


TABLE = SphereTable("planar", (Capsule("base", (0.0, 0.0, 0.0), 0.05), capsule("l1"), capsule("l2"), capsule("l3"),
                               Capsule("flange", (0.0, 0.0, 0.0), 0.03), Capsule("post", (0.0, 0.0, 0.0), 0.05)))


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    f = tmp_path_factory.mktemp("planar") / "planar.urdf"
    f.write_text(ARM)
    return robots.load(f, ee_link="flange")


def test_bodies_and_adjacent_pairs(arm):
    links = TABLE.links
    assert link_bodies(arm.description, links) == {"base": "base", "l1": "l1", "l2": "l2", "l3": "l3",
                                                   "flange": "l3", "post": "base"}
    pairs = {tuple(sorted(p)) for p in adjacent_pairs(arm.description, links)}
    assert pairs == {("base", "post"), ("base", "l1"), ("l1", "post"), ("l1", "l2"), ("l2", "l3"),
                     ("flange", "l3"), ("flange", "l2")}


def test_moveit_rules_on_the_planar_arm(arm):
    m = CollisionModel(arm, TABLE, _pairs=False)
    rows = disabled_link_pairs(m, torch.zeros(3, dtype=torch.float64), n_samples=400, seed=0)
    why = {frozenset(r[:2]): r[2] for r in rows}
    # the post is 3 m up: it never meets a moving link
    for lk in ("l2", "l3", "flange"):
        assert why[frozenset(("post", lk))] == "never"
    # l1 and l3 can fold onto each other (|j2| up to 2.8 rad), so their pair stays checked
    assert frozenset(("l1", "l3")) not in why
    # exact reference for the kept pair: folding j2 to its limit brings l3 across l1 -> the model sees it
    full = CollisionModel(arm, SphereTable("planar", TABLE.capsules, disabled=rows))
    q_fold = torch.tensor([0.0, 2.8, 2.8], dtype=torch.float64)
    q_straight = torch.zeros(3, dtype=torch.float64)
    assert float(full.self_clearance(q_fold)) < 0 < float(full.self_clearance(q_straight))
    # the same rules through the model's own argument
    sampled = CollisionModel(arm, TABLE, self_samples=400)
    assert sampled.disabled[frozenset(("post", "l3"))] == "never" and frozenset(("l1", "l3")) not in sampled.disabled
    # every sphere pair that is checked joins links of a checked pair
    for i, j in full.pairs.tolist():
        a, b = full.links[int(full.link_index[i])], full.links[int(full.link_index[j])]
        assert a != b and frozenset((a, b)) not in full.disabled


def test_default_configuration_rule_and_srdf(arm, tmp_path):
    # a flange so big that it overlaps l2 and l1 at the default configuration: both pairs disabled as default
    big = SphereTable("planar", TABLE.capsules[:4] + (Capsule("flange", (-0.35, 0.0, 0.0), 0.36),))
    m = CollisionModel(arm, big)
    assert m.disabled[frozenset(("l1", "flange"))] == "default"
    srdf = tmp_path / "planar.srdf"
    srdf.write_text('<robot name="planar"><disable_collisions link1="l1" link2="l3" reason="Never"/></robot>')
    assert read_srdf_disabled(srdf) == (("l1", "l3", "srdf"),)
    m2 = CollisionModel(arm, TABLE, srdf=srdf)
    assert m2.disabled[frozenset(("l1", "l3"))] == "srdf"
    assert float(m2.self_clearance(torch.tensor([0.0, 2.8, 2.8], dtype=torch.float64))) >= 0    # fold ignored
    with pytest.raises(ValueError, match="link1 and link2"):
        read_srdf_disabled('<robot><disable_collisions link1="a"/></robot>')


def test_bounded_self_clearance_equals_the_brute_force_one_below_its_threshold():
    m = CollisionModel("ur5e")
    lim = m.robot.joint_limits
    g = torch.Generator().manual_seed(7)
    q = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(60, m.robot.dof, generator=g, dtype=torch.float64)
    c = m.sphere_centers(q)
    i, j = m.pairs[:, 0], m.pairs[:, 1]
    brute = ((c[:, i] - c[:, j]).norm(dim=-1) - m.radii[i] - m.radii[j]).amin(-1)
    torch.testing.assert_close(m.self_clearance(q, exact_below=float("inf")), brute, rtol=0, atol=1e-12)
    b = brute.sort().values                         # a threshold between two configurations' values, near the median
    t = float(b[len(b) // 2: len(b) // 2 + 2].mean())
    fast = m.self_clearance(q, exact_below=t)
    below = brute < t
    assert below.any() and (~below).any()
    torch.testing.assert_close(fast[below], brute[below], rtol=0, atol=1e-12)
    assert ((fast[~below] >= t) & (fast[~below] <= brute[~below] + 1e-12)).all()
