r"""OMPL integration: posegen samplers inside OMPL's joint-space planners, for any robot (default the Panda).

Needs the Open Motion Planning Library's Python bindings (``pip install posegen[planning]``, i.e. the
``ompl`` wheel, tested with 2.0.1); they are imported on first use, so ``import posegen.planning`` works
without them.

What is here
------------
* :func:`joint_space` -- a robot's ``RealVectorStateSpace`` (its dof, its joint limits as bounds);
  :func:`panda_space` is ``joint_space("panda")``.
* :class:`SampleBuffer` -- draws joint configurations from a :class:`~posegen.samplers.PoseSampler` in
  batches (one ODE solve per batch, optionally pre-filtered by the collision checker in one batched call)
  and serves them one at a time: no model call per state.
* :class:`PosegenSamplerAllocator` -- an allocator for ``SpaceInformation.setValidStateSamplerAllocator``
  whose valid state samplers draw from the learned distribution with probability ``1 - uniform_fraction``
  and uniformly within the joint limits otherwise. The uniform share keeps the planner probabilistically
  complete (every region keeps a positive sampling density); the learned share biases the roadmap toward
  configurations the robot actually uses. ``source="uniform"`` gives the same batched machinery with a
  uniform source, to separate the effect of the distribution from the effect of batching.
* :func:`goal_states` -- goal configurations (e.g. from :func:`posegen.planning.goals.grasp_goal_configs`)
  as an OMPL ``GoalStates``.
* :func:`plan` -- one query (start, goal configuration(s)) with a named planner and either OMPL's default
  sampler or a posegen allocator; returns a :class:`PlanResult`.

Which planners use the learned sampler
--------------------------------------
OMPL planners draw states from one of two sampler kinds. The roadmap planners ``PRM`` and ``PRMstar`` (and
``BKPIECE1``, for its ``sampleNear`` calls) use the *valid state sampler*, which Python can replace through
``setValidStateSamplerAllocator``. The tree planners ``RRT``, ``RRTConnect``, ``RRTstar`` ... use the
state space's *state sampler*, and the ompl 2.0.1 bindings expose no ``StateSpace::setStateSamplerAllocator``
(and a Python override of ``allocDefaultStateSampler`` is not called from C++). So with ompl 2.0.1 the
learned sampler biases PRM-family planners; RRT-Connect can still use posegen for its *goals*
(:func:`posegen.planning.goals.grasp_goal_configs`). :func:`plan` refuses a posegen sampler with a tree planner instead of
silently ignoring it.

The robot is the collision checker's (:class:`~posegen.robots.collision.CollisionChecker`: spheres fitted to the
robot's collision meshes, accuracy against an exact mesh reference in that module's docstring): the state space has its dof and joint limits, and states are checked one by one
(``StateValidityChecker``) and motions in one batch per motion (a Python ``MotionValidator`` that checks all
interpolated configurations at once).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..optional import install_hint
from ..robots import as_robot
from ..robots.collision import CollisionChecker
from ..samplers import PoseSampler, unwrap_to_limits
from ..samplers.parts import JOINT_ROLES

__all__ = ["require_ompl", "joint_space", "panda_space", "SampleBuffer", "PosegenSamplerAllocator", "goal_states",
           "PlanResult", "plan", "PLANNERS", "VALID_SAMPLER_PLANNERS"]

PLANNERS = ("PRM", "PRMstar", "BKPIECE1", "RRTConnect", "RRT", "RRTstar", "KPIECE1", "BITstar")
VALID_SAMPLER_PLANNERS = ("PRM", "PRMstar", "BKPIECE1")
"""Planners that draw from the valid state sampler, so a posegen allocator changes their samples."""

_INSTALL_HINT = install_hint("planning", "pip install ompl")


def require_ompl():
    """Import OMPL's ``base``, ``geometric`` and ``util`` modules, or raise an ImportError saying how to
    install them."""
    try:
        from ompl import base as ob
        from ompl import geometric as og
        from ompl import util as ou
    except ImportError as e:
        raise ImportError(f"posegen.planning.ompl needs the OMPL Python bindings, which are not installed "
                          f"({e}). Install them with: {_INSTALL_HINT}") from e
    return ob, og, ou


def _quiet_set_seed(ou, seed: int) -> None:
    """``RNG.setSeed`` without the error OMPL logs when RNGs already exist (seeding then still applies to
    every RNG created afterwards: planners and samplers of the next query)."""
    level = ou.getLogLevel()
    ou.setLogLevel(ou.LogLevel.LOG_NONE)
    try:
        ou.RNG.setSeed(int(seed) % (2 ** 31 - 1) + 1)
    finally:
        ou.setLogLevel(level)


def _robot(robot):
    """A :class:`~posegen.robots.Robot` from a Robot, a built-in name or a description path (None: the Panda)."""
    return as_robot("panda" if robot is None else robot, "posegen.planning")


def _limits(joint_limits, robot=None) -> torch.Tensor:
    """``joint_limits`` as an ``(n, 2)`` float64 tensor; None: the limits of ``robot`` (default the Panda)."""
    if joint_limits is None:
        lim = _robot(robot).joint_limits
    elif hasattr(joint_limits, "joint_limits"):
        lim = joint_limits.joint_limits
    else:
        lim = torch.as_tensor(joint_limits, dtype=torch.float64)
    if lim.dim() != 2 or lim.shape[1] != 2 or not (lim[:, 0] < lim[:, 1]).all():
        raise ValueError(f"joint_limits must be (n, 2) with lower < upper, got {lim.tolist()}")
    return lim.to(torch.float64)


def joint_space(robot="panda"):
    """OMPL ``RealVectorStateSpace`` of a robot's joints: ``robot`` a :class:`~posegen.robots.Robot` or a
    name/path (dimension its dof, bounds its joint limits), or an ``(n, 2)`` array of bounds."""
    ob, _, _ = require_ompl()
    if isinstance(robot, str) or hasattr(robot, "joint_limits"):
        lim = _limits(None, robot)
    else:
        lim = _limits(robot)
    space = ob.RealVectorStateSpace(int(lim.shape[0]))
    bounds = ob.RealVectorBounds(int(lim.shape[0]))
    for i, (lo, hi) in enumerate(lim.tolist()):
        bounds.setLow(i, lo)
        bounds.setHigh(i, hi)
    space.setBounds(bounds)
    return space


def panda_space(joint_limits=None):
    """``joint_space("panda")``, or a space with bounds ``joint_limits (n, 2)`` (kept for older callers)."""
    return joint_space("panda" if joint_limits is None else joint_limits)


def _read(state, n: int) -> np.ndarray:
    return np.fromiter((state[i] for i in range(n)), dtype=np.float64, count=n)


def _write(state, q) -> None:
    for i, v in enumerate(q):
        state[i] = float(v)


# ---------------------------------------------------------------------------------------------------------
# Batched sample source
# ---------------------------------------------------------------------------------------------------------
class SampleBuffer:
    """Joint configurations drawn in batches, served one at a time.

    Args:
        sampler: a :class:`~posegen.samplers.PoseSampler` of a robot's joints (``PoseFlow(robot.manifold,
            robot=robot)``: Interval and Torus factors, or an older model with one torus factor); or None with
            ``source="uniform"``.
        source: ``"posegen"`` (draw from ``sampler``) or ``"uniform"`` (uniform within ``joint_limits``;
            the same batching, for fair comparisons).
        joint_limits: ``(n, 2)`` bounds of the planning space; default the checker's, else those of
            ``robot``, else of the sampler's robot, else the Panda's. Angles of a model whose joints are all
            on tori are mapped into them (:func:`~posegen.samplers.unwrap_to_limits`); samples outside them
            are dropped.
        robot: the robot whose limits are the default (a Robot or a name).
        checker: if given, each batch is filtered with ``checker.is_valid`` in one call, so served states
            are valid (the valid state sampler then skips its per-state check).
        batch_size: states per refill (one ODE solve of this many samples).
        condition: condition for conditional samplers (e.g. a task parameter), fixed for the buffer.
        seed: seeds the refills (refill ``i`` uses ``seed + i``) and the uniform draws.

    Attributes:
        stats: ``refills``, ``drawn`` (states drawn), ``kept`` (in limits and valid), ``served``,
        ``seconds`` (time spent refilling, model and batched checks included).
    """

    def __init__(self, sampler: Optional[PoseSampler] = None, *, source: str = "posegen", joint_limits=None,
                 checker: Optional[CollisionChecker] = None, batch_size: int = 256, condition=None,
                 seed: Optional[int] = None, robot=None):
        if source not in ("posegen", "uniform"):
            raise ValueError(f'Invalid source "{source}". Must be one of {{"posegen", "uniform"}}')
        if source == "posegen":
            if not isinstance(sampler, PoseSampler):
                raise TypeError(f"source='posegen' needs a posegen.samplers.PoseSampler, got {type(sampler).__name__}")
            joints = [p for p in sampler.parts if p.role in JOINT_ROLES]
            if not joints:
                raise ValueError(f"the sampler's manifold {sampler.manifold!r} has no joint factor (Interval or "
                                 f"Torus); SampleBuffer draws joint configurations")
            self._parts = [p.name for p in joints]
            # all-torus models (older ones) give angles modulo 2 pi: unwrap them into the limits
            self._periodic = all(p.factor.periodic for p in joints)
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.sampler, self.source, self.checker, self.condition = sampler, source, checker, condition
        if joint_limits is None and checker is not None:
            joint_limits = checker.joint_limits.cpu()
        if joint_limits is None and robot is None and sampler is not None and sampler.robot is not None:
            robot = sampler.robot
        self.limits = _limits(joint_limits, robot)
        self.batch_size = int(batch_size)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._queue = np.zeros((0, self.limits.shape[0]))
        self._pos = 0
        self.stats = {"refills": 0, "drawn": 0, "kept": 0, "served": 0, "seconds": 0.0}

    @property
    def dim(self) -> int:
        return int(self.limits.shape[0])

    def _refill(self) -> None:
        t0 = time.perf_counter()
        if self.source == "uniform":
            lo, hi = self.limits[:, 0].numpy(), self.limits[:, 1].numpy()
            q = torch.from_numpy(lo + (hi - lo) * self._rng.random((self.batch_size, self.dim)))
        else:
            seed = None if self.seed is None else int(self.seed) + self.stats["refills"]
            res = self.sampler.sample(self.batch_size, self.condition, seed=seed, allow_fewer=True, log_prob=False)
            q = torch.cat([res[n] for n in self._parts], -1).detach().to("cpu", torch.float64)
            if q.shape[-1] != self.dim:
                raise ValueError(f"the sampler gives {q.shape[-1]} joint values but the space has {self.dim}")
            if self._periodic:
                q, ok = unwrap_to_limits(q, self.limits)
            else:   # robot models are inside their limits by construction; other bounds may be tighter
                ok = ((q >= self.limits[:, 0]) & (q <= self.limits[:, 1])).all(-1)
            q = q[ok]
        n_drawn = self.batch_size
        if self.checker is not None and q.shape[0]:
            q = q[self.checker.is_valid(q).cpu()]
        self._queue = q.numpy()
        self._pos = 0
        self.stats["refills"] += 1
        self.stats["drawn"] += n_drawn
        self.stats["kept"] += int(q.shape[0])
        self.stats["seconds"] += time.perf_counter() - t0

    def next(self, max_refills: int = 8) -> Optional[np.ndarray]:
        """The next configuration ``(n,)`` (float64 numpy), or None if ``max_refills`` refills in a row gave
        nothing usable (e.g. a model whose samples all collide)."""
        for _ in range(max_refills + 1):
            if self._pos < self._queue.shape[0]:
                q = self._queue[self._pos]
                self._pos += 1
                self.stats["served"] += 1
                return q
            self._refill()
        return None


# ---------------------------------------------------------------------------------------------------------
# Valid state sampler
# ---------------------------------------------------------------------------------------------------------
_VSS_CLASS = None


def _valid_state_sampler_class():
    """The ValidStateSampler subclass, defined on first use (OMPL is imported lazily)."""
    global _VSS_CLASS
    if _VSS_CLASS is not None:
        return _VSS_CLASS
    ob, _, _ = require_ompl()

    class PosegenValidStateSampler(ob.ValidStateSampler):
        """Learned samples (from a :class:`SampleBuffer`) mixed with uniform ones; see
        :class:`PosegenSamplerAllocator`."""

        def __init__(self, si, allocator: "PosegenSamplerAllocator"):
            super().__init__(si)
            self.setName("posegen")
            self._si = si
            self._alloc = allocator
            self._lo = allocator.buffer.limits[:, 0].numpy()
            self._hi = allocator.buffer.limits[:, 1].numpy()

        def _uniform(self, state, lo, hi) -> bool:
            rng, stats = self._alloc.rng, self._alloc._stats
            for _ in range(max(self.getNrAttempts(), 1)):
                _write(state, lo + (hi - lo) * rng.random(lo.shape[0]))
                stats["uniform"] += 1
                if self._si.isValid(state):
                    return True
            stats["failed"] += 1
            return False

        def sample(self, state) -> bool:
            a = self._alloc
            if a.uniform_fraction >= 1.0 or (a.uniform_fraction > 0 and a.rng.random() < a.uniform_fraction):
                return self._uniform(state, self._lo, self._hi)
            q = a.buffer.next()
            if q is None:                         # the source gave nothing usable: stay complete
                return self._uniform(state, self._lo, self._hi)
            _write(state, q)
            a._stats["learned"] += 1
            if a.buffer.checker is not None and a.prevalidated:
                return True
            return bool(self._si.isValid(state))

        def sampleNear(self, state, near, distance) -> bool:
            c = _read(near, self._lo.shape[0])
            return self._uniform(state, np.maximum(c - distance, self._lo), np.minimum(c + distance, self._hi))

    _VSS_CLASS = PosegenValidStateSampler
    return _VSS_CLASS


class PosegenSamplerAllocator:
    """Valid state sampler allocator for ``si.setValidStateSamplerAllocator`` (or :func:`plan`'s
    ``sampler=``).

    Args:
        sampler: a joint-space :class:`~posegen.samplers.PoseSampler` (e.g. trained on ``robot0_joint_pos``),
            or None with ``source="uniform"``.
        uniform_fraction: probability that a sample is uniform within the joint limits instead of learned
            (0 < fraction keeps probabilistic completeness; 1 is plain uniform sampling). The default 0.5
            solved every query of ``examples/plan_with_ompl.py``, while 0.2 was faster on typical queries
            but failed one that lay outside the training data.
        checker: collision checker; batches are pre-filtered with it (set ``prevalidated=False`` to have
            every learned state re-checked through OMPL's validity checker instead).
        batch_size, condition, seed, joint_limits, source, robot: as for :class:`SampleBuffer`.

    The buffer (and its statistics) is shared by every sampler this allocator creates, so successive
    queries reuse remaining samples. ``stats``: ``learned`` (states served from the buffer), ``uniform``
    (uniform draws, attempts included), ``failed`` (uniform sampling gave up after its attempts), plus the
    buffer's ``refills``, ``drawn``, ``kept``, ``seconds``.
    """

    def __init__(self, sampler: Optional[PoseSampler] = None, *, uniform_fraction: float = 0.5,
                 checker: Optional[CollisionChecker] = None, batch_size: int = 256, condition=None,
                 seed: Optional[int] = None, joint_limits=None, source: str = "posegen", prevalidated: bool = True,
                 robot=None):
        if not (0.0 <= float(uniform_fraction) <= 1.0):
            raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction!r}")
        self.uniform_fraction = float(uniform_fraction)
        self.buffer = SampleBuffer(sampler, source=source, joint_limits=joint_limits, checker=checker,
                                   batch_size=batch_size, condition=condition, seed=seed, robot=robot)
        self.prevalidated = bool(prevalidated)
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 7])
        self._stats = {"learned": 0, "uniform": 0, "failed": 0}

    @property
    def stats(self) -> Dict[str, Any]:
        return {**self._stats, **self.buffer.stats}

    @property
    def name(self) -> str:
        if self.buffer.source == "uniform":
            return "uniform (batched)"
        return f"posegen ({1 - self.uniform_fraction:.0%} learned)"

    def __call__(self, si):
        require_ompl()
        return _valid_state_sampler_class()(si, self)


# ---------------------------------------------------------------------------------------------------------
# Motion validation (batched)
# ---------------------------------------------------------------------------------------------------------
_MV_CLASS = None


def _motion_validator_class():
    global _MV_CLASS
    if _MV_CLASS is not None:
        return _MV_CLASS
    ob, _, _ = require_ompl()

    class BatchedMotionValidator(ob.MotionValidator):
        """Checks every interpolated configuration of a motion in one batched call."""

        def __init__(self, si, checker: CollisionChecker, resolution: float, dim: int):
            super().__init__(si)
            self._checker, self._resolution, self._dim = checker, resolution, dim

        def checkMotion(self, s1, s2, *rest) -> bool:
            return self._checker.check_motion(_read(s1, self._dim), _read(s2, self._dim), self._resolution)

    _MV_CLASS = BatchedMotionValidator
    return _MV_CLASS


def goal_states(si, configs):
    """An OMPL ``GoalStates`` holding the configurations ``configs (m, n)`` (any one of them is a goal)."""
    ob, _, _ = require_ompl()
    q = np.asarray(torch.as_tensor(configs, dtype=torch.float64).reshape(-1, si.getStateDimension()))
    if q.shape[0] == 0:
        raise ValueError("goal_states needs at least one goal configuration, got none")
    goal = ob.GoalStates(si)
    space = si.getStateSpace()
    for row in q:
        st = space.allocState()
        _write(st, row)
        goal.addState(st)
    return goal


# ---------------------------------------------------------------------------------------------------------
# One query
# ---------------------------------------------------------------------------------------------------------
@dataclass
class PlanResult:
    """Outcome of :func:`plan`.

    ``solved`` (exact solution found), ``status`` (OMPL's status text), ``path (m, n)`` joint waypoints
    (None unless solved), ``time_s`` (wall time of the solve, Python callbacks and model draws included),
    ``checks`` (configurations the collision checker evaluated), ``planner``, ``sampler`` (a label) and
    ``sampler_stats`` (the allocator's statistics after the query, when one was used).
    """

    solved: bool
    status: str
    path: Optional[np.ndarray]
    time_s: float
    checks: int
    planner: str
    sampler: str
    sampler_stats: Dict[str, Any] = field(default_factory=dict)


#: the default time cap of ``plan(simplify=True)`` (seconds)
SIMPLIFY_SECONDS = 1.0


def plan(checker: CollisionChecker, start, goal, *, planner: str = "PRM",
         sampler: Optional[PosegenSamplerAllocator] = None, time_limit: float = 5.0, seed: Optional[int] = None,
         resolution: float = 0.05, simplify=False, joint_limits=None) -> PlanResult:
    """Plan a collision-free joint-space path for the checker's robot with OMPL.

    Args:
        checker: the scene's collision checker (its robot, validity of states and of motions).
        start: ``(dof,)`` start configuration (inside the limits, valid).
        goal: ``(dof,)`` goal configuration, ``(m, dof)`` alternatives (any one reached solves the query; e.g.
            :func:`grasp_goal_configs`), or an OMPL ``Goal``.
        planner: one of :data:`PLANNERS`.
        sampler: a :class:`PosegenSamplerAllocator`, or None for OMPL's default (uniform) valid state
            sampler. Only planners in :data:`VALID_SAMPLER_PLANNERS` use it (ValueError otherwise).
        time_limit: seconds before the planner gives up.
        seed: seeds OMPL's random number generators for this query (and nothing else). The samples are then
            fixed, but PRM looks for a solution in a second thread, so when it stops (and its time and
            roadmap size) still varies from run to run.
        resolution: largest joint change (rad) between checked configurations of a motion.
        simplify: shortcut and smooth the path (OMPL's simplifier) after solving: ``True`` for at most
            :data:`SIMPLIFY_SECONDS`, or a number of seconds (every check is a Python call, so an uncapped
            simplification of one Panda path took 9 s).
        joint_limits: ``(dof, 2)`` bounds of the space (default the checker's joint limits).
    """
    ob, og, ou = require_ompl()
    if planner not in PLANNERS:
        raise ValueError(f'Invalid planner "{planner}". Must be one of {sorted(PLANNERS)}')
    if sampler is not None and planner not in VALID_SAMPLER_PLANNERS:
        raise ValueError(f"planner {planner!r} draws from the state space's StateSampler, which the ompl Python "
                         f"bindings cannot replace; a posegen sampler changes only {VALID_SAMPLER_PLANNERS}. "
                         f"Use one of those, or sampler=None")
    if sampler is not None and not isinstance(sampler, PosegenSamplerAllocator):
        raise TypeError(f"sampler must be a PosegenSamplerAllocator or None, got {type(sampler).__name__}")
    if not (time_limit > 0):
        raise ValueError(f"time_limit must be > 0 seconds, got {time_limit!r}")
    if not (simplify is None or isinstance(simplify, bool)
            or (isinstance(simplify, (int, float)) and math.isfinite(simplify) and simplify > 0)):
        raise ValueError(f"simplify must be True, False or a number of seconds > 0, got {simplify!r}")
    if seed is not None:
        _quiet_set_seed(ou, seed)
    lim = _limits(checker.joint_limits.cpu() if joint_limits is None else joint_limits)
    n = int(lim.shape[0])
    if n != checker.robot.dof:
        raise ValueError(f"joint_limits have {n} rows but the checker's robot {checker.robot.name!r} has "
                         f"{checker.robot.dof} joints")
    start = np.asarray(torch.as_tensor(start, dtype=torch.float64).reshape(-1))
    if start.shape != (n,):
        raise ValueError(f"start must have shape ({n},), got {start.shape}")

    space = joint_space(lim)
    ss = og.SimpleSetup(space)
    si = ss.getSpaceInformation()
    ss.setStateValidityChecker(lambda s: bool(checker.is_valid(torch.from_numpy(_read(s, n)))))
    si.setMotionValidator(_motion_validator_class()(si, checker, float(resolution), n))
    if sampler is not None:
        si.setValidStateSamplerAllocator(sampler)
    st = space.allocState()
    _write(st, start)
    ss.setStartState(st)
    if isinstance(goal, ob.Goal):
        ss.setGoal(goal)
    else:
        g = np.asarray(torch.as_tensor(goal, dtype=torch.float64))
        if g.shape == (n,):
            gs = space.allocState()
            _write(gs, g)
            ss.setGoalState(gs)
        elif g.ndim == 2 and g.shape[1] == n:
            ss.setGoal(goal_states(si, g))
        else:
            raise ValueError(f"goal must be ({n},), (m, {n}) or an OMPL Goal, got shape {g.shape}")
    ss.setPlanner(getattr(og, planner)(si))
    checks0 = checker.n_checked
    t0 = time.perf_counter()
    status = ss.solve(float(time_limit))
    elapsed = time.perf_counter() - t0
    solved = bool(ss.haveExactSolutionPath())
    path = None
    if solved:
        if simplify is not False and simplify is not None:
            ss.simplifySolution(SIMPLIFY_SECONDS if simplify is True else float(simplify))
        p = ss.getSolutionPath()
        path = np.stack([_read(s, n) for s in p.getStates()])
    label = "OMPL uniform" if sampler is None else sampler.name
    return PlanResult(solved=solved, status=str(status), path=path, time_s=elapsed,
                      checks=checker.n_checked - checks0, planner=planner, sampler=label,
                      sampler_stats=dict(sampler.stats) if sampler is not None else {})
