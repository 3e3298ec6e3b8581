"""posegen.planning.experience: densified paths, random shortcuts, and experience from solved queries.

References: segment geometry in closed form (points on segments, the distance from a disk's centre to a
segment) in float64; the collision checker itself for the configurations of planned paths (OMPL tests skip
without ompl)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from posegen.planning.experience import collect_experience, densify_path, shortcut_path
from posegen.planning.scene import Ball, CollisionChecker
from posegen.robots import load
from posegen.robots.collision import ready_configuration


# ---------------------------------------------------------------------- densify_path
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_densify_path_steps_waypoints_and_segments(seed):
    g = torch.Generator().manual_seed(seed)
    path = torch.rand(5, 3, dtype=torch.float64, generator=g) * 4 - 2
    res = 0.1
    q = densify_path(path, res)
    steps = [max(math.ceil(float((b - a).abs().max()) / res), 1) for a, b in itertools.pairwise(path)]
    assert q.dtype == torch.float64 and q.shape == (1 + sum(steps), 3)
    ends = np.cumsum([0] + steps)
    torch.testing.assert_close(q[ends], path, rtol=0, atol=1e-12)       # every waypoint kept, in order
    assert float((q[1:] - q[:-1]).abs().amax()) <= res + 1e-12
    for k, (a, b) in enumerate(itertools.pairwise(path)):                 # the points lie on their segment
        seg = q[ends[k]:ends[k + 1] + 1]
        t = ((seg - a) @ (b - a)) / float((b - a) @ (b - a))
        torch.testing.assert_close(seg, a + t.unsqueeze(-1) * (b - a), rtol=0, atol=1e-12)
        assert bool((t[1:] > t[:-1]).all()) and abs(float(t[0])) < 1e-12 and abs(float(t[-1]) - 1) < 1e-12


def test_densify_path_single_and_repeated_waypoints():
    one = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
    torch.testing.assert_close(densify_path(one, 0.05), one)
    rep = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.3, 0.0]], dtype=torch.float64)
    q = densify_path(rep, 0.1)
    assert q.shape == (1 + 1 + 3, 2)                  # the repeated waypoint is one step of length 0
    torch.testing.assert_close(q[:, 0], torch.tensor([0.0, 0.0, 0.1, 0.2, 0.3], dtype=torch.float64))


@pytest.mark.parametrize("path, resolution, match", [
    (np.zeros(3), 0.1, "shape"),
    (np.zeros((0, 2)), 0.1, "shape"),
    (np.array([[0.0, np.nan]]), 0.1, "NaN"),
    (np.zeros((2, 2)), 0.0, "resolution"),
    (np.zeros((2, 2)), -1.0, "resolution"),
    (np.zeros((2, 2)), float("nan"), "resolution"),
    (np.zeros((2, 2)), True, "resolution"),
])
def test_densify_path_refuses_bad_input(path, resolution, match):
    with pytest.raises(ValueError, match=match):
        densify_path(path, resolution)


# ---------------------------------------------------------------------- shortcut_path
class DiskChecker:
    """A point robot in the plane among one disk: a motion is valid when the segment misses the disk
    (exact segment-to-centre distance), the duck type shortcut_path needs."""

    def __init__(self, center=(0.0, 0.0), radius=1.0):
        self.robot = SimpleNamespace(dof=2)
        self.c, self.r = np.asarray(center, dtype=float), float(radius)
        self.calls = 0

    def distance(self, a, b) -> float:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        d = b - a
        t = 0.0 if not d.any() else float(np.clip((self.c - a) @ d / (d @ d), 0.0, 1.0))
        return float(np.linalg.norm(a + t * d - self.c))

    def check_motion(self, a, b, resolution=0.05) -> bool:
        self.calls += 1
        return self.distance(a, b) > self.r


def _length(p) -> float:
    return float((p[1:] - p[:-1]).norm(dim=-1).sum())


def test_shortcut_path_stays_valid_and_gets_shorter():
    ck = DiskChecker()
    ang = torch.linspace(math.pi, 0.0, 40, dtype=torch.float64)          # half circle of radius 1.5 over the disk
    path = 1.5 * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    assert all(ck.check_motion(a, b) for a, b in itertools.pairwise(path))
    for seed in range(3):
        out = shortcut_path(ck, path, attempts=50, seed=seed)
        torch.testing.assert_close(out[[0, -1]], path[[0, -1]])
        assert all(ck.distance(a, b) > ck.r for a, b in itertools.pairwise(out))
        assert _length(out) < _length(path) and out.shape[0] < path.shape[0]
        torch.testing.assert_close(shortcut_path(ck, path, attempts=50, seed=seed), out)     # seeded
    ck.calls = 0
    torch.testing.assert_close(shortcut_path(ck, path, attempts=0), path)
    assert ck.calls == 0


def test_shortcut_path_without_obstacle_reaches_the_straight_line():
    ck = DiskChecker(center=(10.0, 10.0), radius=0.1)
    path = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, -1.0], [3.0, 0.5], [4.0, 0.0]], dtype=torch.float64)
    out = shortcut_path(ck, path, attempts=200, seed=0)
    torch.testing.assert_close(out, path[[0, -1]])


@pytest.mark.parametrize("kw, match", [
    ({"path": np.zeros((3, 3))}, r"shape \(k, 2\)"),
    ({"attempts": -1}, "attempts"),
    ({"attempts": 1.5}, "attempts"),
    ({"resolution": 0.0}, "resolution"),
])
def test_shortcut_path_refuses_bad_input(kw, match):
    args = {"path": np.zeros((3, 2)), "attempts": 5, "resolution": 0.05} | kw
    with pytest.raises(ValueError, match=match):
        shortcut_path(DiskChecker(), args.pop("path"), **args)


# ---------------------------------------------------------------------- collect_experience (OMPL)
def test_collect_experience_keeps_valid_densified_solutions_only():
    pytest.importorskip("ompl")
    q0 = ready_configuration(load("panda"))
    q1 = q0 + torch.tensor([0.8, -0.3, 0.4, 0.3, 0.0, 0.4, -0.5], dtype=torch.float64)
    checker = CollisionChecker("panda", [Ball((0.3, 0.6, 1.2), 0.05)])
    hit = checker.sphere_centers(q1)[-1]                                # a ball on the hand at q1: goal invalid
    blocked = CollisionChecker("panda", [Ball(hit.tolist(), 0.1)])
    assert bool(checker.is_valid(torch.stack([q0, q1])).all()) and not bool(blocked.is_valid(q1))
    exp = collect_experience(blocked, [(q0, q0 + 0.1), (q0, q1)], time_limit=1.0, seed=3, resolution=0.05)
    assert exp.solved.tolist() == [True, False] and exp.paths[1] is None
    assert bool((exp.query == 0).all()) and exp.configs.shape[1] == 7 and len(exp.time_s) == 2
    torch.testing.assert_close(exp.configs[[0, -1]], torch.stack([q0, q0 + 0.1]))
    assert float((exp.configs[1:] - exp.configs[:-1]).abs().amax()) <= 0.05 + 1e-12
    assert bool(blocked.is_valid(exp.configs).all())


def test_collect_experience_plans_waypoint_legs_in_order():
    pytest.importorskip("ompl")
    q0 = ready_configuration(load("panda"))
    mid, end = q0 + 0.2, q0 + torch.tensor([0.3, 0.0, -0.2, 0.2, 0.0, 0.0, 0.0], dtype=torch.float64)
    checker = CollisionChecker("panda", [Ball((0.3, 0.6, 1.2), 0.05)])
    exp = collect_experience(checker, [(q0, mid, end)], time_limit=1.0, seed=0, shortcuts=0)
    assert exp.solved.tolist() == [True]
    path = torch.from_numpy(exp.paths[0])
    assert bool((path == mid).all(-1).any())                   # the joined legs pass through the waypoint
    torch.testing.assert_close(path[[0, -1]], torch.stack([q0, end]))
    torch.testing.assert_close(exp.configs, densify_path(path, 0.05))
    bad = q0.clone()
    bad[3] = 0.5                                              # outside the Panda's q4 range: the first leg fails
    exp = collect_experience(checker, [(q0, bad, end)], time_limit=0.5, seed=0)
    assert exp.solved.tolist() == [False] and exp.configs.shape == (0, 7) and exp.paths == [None]


@pytest.mark.parametrize("queries, match", [
    ([], "empty"),
    ([(np.zeros(7),)], "at least 2"),
    ([(np.zeros(6), np.zeros(7))], r"waypoints of shape \(7,\)"),
    ([(np.zeros(7), np.zeros((2, 7)), np.zeros(7))], r"waypoints of shape \(7,\)"),
    ([(np.zeros(7), np.zeros((2, 6)))], r"\(m, 7\)"),
])
def test_collect_experience_refuses_bad_queries(queries, match):
    with pytest.raises(ValueError, match=match):
        collect_experience(CollisionChecker("panda", []), queries)
