r"""Planning experience: the configurations along solved paths of earlier queries, to train a sampler on.

A robot loaded from a third-party file has no demonstrations. What a learned sampler should draw for a new
query of a task is then what a planner needed on earlier queries of the same task: the configurations along
their solution paths (learned sampling distributions in the sense of Ichter, Harrison and Pavone, *Learning
Sampling Distributions for Robot Motion Planning*, ICRA 2018, there from demonstrations and earlier plans).

* :func:`densify_path` -- the straight joint-space segments of a path, as configurations at most
  ``resolution`` apart (OMPL's ``RealVectorStateSpace`` interpolates joints linearly, so these are the
  configurations a motion validator checks at that resolution).
* :func:`shortcut_path` -- random shortcuts (Geraerts and Overmars, *Creating high-quality paths for motion
  planning*, IJRR 2007) with a fixed number of attempts, so that its cost is bounded (OMPL's simplifier,
  ``plan(simplify=True)``, shortcuts and smooths until it stops improving).
* :func:`collect_experience` -- plans each ``(start, goal)`` query, or ``(start, waypoints..., goal)`` leg by
  leg (RRT-Connect by default), shortcuts the solution and returns every solved path, densified, as one
  ``(N, dof)`` tensor with the per-query outcome.

Needs the OMPL bindings only for :func:`collect_experience` (``pip install posegen[planning]``).

Example::

    exp = collect_experience(checker, train_queries, time_limit=10.0, seed=0)
    flow = train(PoseFlow(robot.manifold, robot=robot), exp.configs.float(), steps=800).flow  # joints in limits
    alloc = PosegenSamplerAllocator(PoseSampler(flow, robot=robot), uniform_fraction=0.2, checker=checker)
    plan(checker, start, goal, planner="PRM", sampler=alloc)                            # a held-out query
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np
import torch

from ..robots.collision import CollisionChecker, segment_points
from .ompl import plan

__all__ = ["densify_path", "shortcut_path", "Experience", "collect_experience"]


def densify_path(path, resolution: float = 0.05) -> torch.Tensor:
    """Configurations along the straight segments of ``path``, consecutive ones at most ``resolution`` apart.

    Args:
        path: ``(k, dof)`` waypoints (k >= 1), joint values (rad or m), tensor or array.
        resolution: largest change of any joint between consecutive configurations (rad or m), > 0.

    Returns:
        ``(m, dof)`` float64: the first waypoint, then for each segment ``a -> b`` the points
        ``a + (i / s) (b - a)``, ``i = 1 .. s``, with ``s = max(ceil(max|b - a| / resolution), 1)``: every
        waypoint is kept (a repeated waypoint too), ``m = 1 + sum of s``.
    """
    p = torch.as_tensor(np.asarray(path), dtype=torch.float64)
    if p.dim() != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"densify_path: path must have shape (k, dof) with k >= 1, got {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError("densify_path: path has NaN or infinite values")
    _check_resolution(resolution, "densify_path")
    return torch.cat([p[:1], segment_points(p[:-1], p[1:], resolution)[0]])


def _check_resolution(resolution, who: str) -> None:
    if isinstance(resolution, bool) or not (isinstance(resolution, (int, float)) and math.isfinite(resolution)
                                            and resolution > 0):
        raise ValueError(f"{who}: resolution must be a finite number > 0, got {resolution!r}")


def shortcut_path(checker: CollisionChecker, path, *, attempts: int = 30, resolution: float = 0.05,
                  seed: int = 0) -> torch.Tensor:
    """``path`` shortened by random shortcuts: ``attempts`` times, two waypoints ``i < j - 1`` are drawn
    uniformly, and when the straight motion between them is valid (``checker.check_motion`` at
    ``resolution``) the waypoints between them are removed.

    Args:
        checker: the collision checker whose motions count as valid.
        path: ``(k, dof)`` waypoints, each segment valid (e.g. a planner's solution).
        attempts: shortcut tries (each one batched motion check), >= 0.
        resolution: largest joint change (rad) between checked configurations.
        seed: seeds the draws of ``i`` and ``j`` (same path and seed: same result).

    Returns:
        ``(k', dof)`` float64, ``k' <= k``: the same first and last waypoints, every segment valid (checked
        here or in the input), a joint-space length no longer than the input's.
    """
    p = torch.as_tensor(np.asarray(path), dtype=torch.float64)
    if p.dim() != 2 or p.shape[0] < 1 or p.shape[1] != checker.robot.dof:
        raise ValueError(f"shortcut_path: path must have shape (k, {checker.robot.dof}), got {tuple(p.shape)}")
    if isinstance(attempts, bool) or int(attempts) != attempts or attempts < 0:
        raise ValueError(f"shortcut_path: attempts must be an integer >= 0, got {attempts!r}")
    _check_resolution(resolution, "shortcut_path")
    rng = np.random.default_rng(seed)
    keep = list(range(p.shape[0]))
    for _ in range(int(attempts)):
        if len(keep) < 3:
            break
        i, j = sorted(rng.choice(len(keep), size=2, replace=False).tolist())
        if j - i > 1 and checker.check_motion(p[keep[i]], p[keep[j]], resolution):
            keep = keep[:i + 1] + keep[j:]
    return p[keep]


@dataclass
class Experience:
    """Outcome of :func:`collect_experience`.

    ``configs (N, dof)`` float64: the solved paths densified and stacked (query order); ``query (N,)``
    int64: the query each configuration comes from; ``solved (Q,)`` bool; ``time_s`` and ``checks`` (per
    query, summed over its planned legs as :class:`~posegen.planning.ompl.PlanResult` reports them: the
    solves alone, shortcuts excluded); ``wall_s``: the whole collection (shortcuts included); ``paths``: the
    planner's solution waypoints ``(k, dof)`` of each query, legs joined (None when unsolved).
    """

    configs: torch.Tensor
    query: torch.Tensor
    solved: torch.Tensor
    time_s: List[float] = field(default_factory=list)
    checks: List[int] = field(default_factory=list)
    wall_s: float = 0.0
    paths: list = field(default_factory=list)


def _check_queries(queries, dof: int) -> List[List[torch.Tensor]]:
    out = []
    for i, query in enumerate(queries):
        if len(query) < 2:
            raise ValueError(f"collect_experience: queries[{i}] must be a (start, ..., goal) sequence of at least 2 "
                             f"configurations, got {len(query)}")
        qs = [torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in query]
        b = qs[-1]
        goal_ok = b.shape == (dof,) or (b.dim() == 2 and b.shape[0] >= 1 and b.shape[1] == dof)
        if any(q.shape != (dof,) for q in qs[:-1]) or not goal_ok:
            raise ValueError(f"collect_experience: queries[{i}] must be a start and waypoints of shape ({dof},) "
                             f"and a goal ({dof},) or (m, {dof}), got {[tuple(q.shape) for q in qs]}")
        out.append(qs)
    if not out:
        raise ValueError("collect_experience: queries is empty; give at least one (start, goal) pair")
    return out


def collect_experience(checker: CollisionChecker, queries: Sequence, *, planner: str = "RRTConnect",
                       time_limit: float = 10.0, seed: int = 0, shortcuts: int = 30,
                       resolution: float = 0.05) -> Experience:
    """Plan every query and keep the configurations along the solved paths (module docstring).

    Args:
        checker: the scene's collision checker (its robot).
        queries: ``(start, goal)`` pairs, ``start (dof,)``, ``goal (dof,)`` or ``(m, dof)`` alternatives; or
            ``(start, waypoint, ..., goal)`` sequences, planned leg by leg (each waypoint ``(dof,)``), e.g.
            through a pre-grasp above a bin: the way an operator solves hard queries offline.
        planner: an OMPL planner name (:data:`~posegen.planning.ompl.PLANNERS`); RRT-Connect, a fast
            single-query planner, by default.
        time_limit: seconds per leg.
        seed: leg ``l`` of query ``i`` is planned with OMPL seed ``seed + l * len(queries) + i``.
        shortcuts: random shortcut attempts per solution (:func:`shortcut_path` on the joined legs, seeded
            ``seed + i``) before it is densified, so the configurations lie nearer the short ways through
            the task's passages than the planner's random detours do; 0 keeps the solutions as planned.
        resolution: densification step (largest joint change, rad) and the motion-check resolution.

    A query is solved when all its legs are (planning stops at its first failed leg); unsolved queries add
    no configuration. ``Experience.solved`` says which; ``time_s`` and ``checks`` sum the planned legs.
    """
    dof = checker.robot.dof
    seqs = _check_queries(queries, dof)
    _check_resolution(resolution, "collect_experience")
    t0 = time.perf_counter()
    configs, index, solved, times, checks, paths = [], [], [], [], [], []
    for i, seq in enumerate(seqs):
        legs, t, n = [], 0.0, 0
        for leg, goal in enumerate(seq[1:]):
            start = seq[0] if leg == 0 else torch.from_numpy(legs[-1][-1])
            r = plan(checker, start, goal, planner=planner, time_limit=time_limit,
                     seed=int(seed) + leg * len(seqs) + i, resolution=resolution)
            t, n = t + r.time_s, n + r.checks
            if not r.solved:
                break
            legs.append(r.path if leg == 0 else r.path[1:])
        ok = len(legs) == len(seq) - 1
        solved.append(ok)
        times.append(t)
        checks.append(n)
        paths.append(np.concatenate(legs) if ok else None)
        if ok:
            q = densify_path(shortcut_path(checker, paths[-1], attempts=shortcuts, resolution=resolution,
                                           seed=int(seed) + i), resolution)
            configs.append(q)
            index.append(torch.full((q.shape[0],), i, dtype=torch.int64))
    cat = torch.cat(configs) if configs else torch.zeros(0, dof, dtype=torch.float64)
    idx = torch.cat(index) if index else torch.zeros(0, dtype=torch.int64)
    return Experience(cat, idx, torch.tensor(solved, dtype=torch.bool), times, checks,
                      time.perf_counter() - t0, paths)
