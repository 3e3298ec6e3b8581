r"""Planner-facing sampling of a learned pose or joint model: named parts, quaternion order, robot states,
joint limits, SE(3), ranking.

The jobs live in their own modules: naming and conventions (:mod:`.parts`), conditions (:mod:`.conditions`),
robot-state extras (:mod:`.robot_state`), the joint filter of torus models (:mod:`.joint_filter`); this module
puts them together.

:class:`PoseSampler` wraps a trained :class:`~posegen.PoseFlow` for code that consumes samples (motion
planners, grasp pipelines). Everything that enters or leaves it is in the caller's conventions:

* **Named parts.** Each manifold factor becomes one entry of the result dict, named by what it is:
  ``R3 -> "position"``, ``R<d> (d != 3) -> "euclidean"``, ``T<n> -> "joints"``, ``SO3`` / ``S3 ->
  "quat"``, ``S<d> (d != 3) -> "sphere"``. A name used by several factors gets suffixes in factor order
  (``"quat_0", "quat_1"``). ``names=`` overrides them.
* **Quaternion order.** ``quat_order`` (``"xyzw"`` or ``"wxyz"``) applies to every 4-vector quaternion part
  (SO3 and S3 factors), on output and on input to :meth:`PoseSampler.score`. posegen stores xyzw inside.
* **Robots.** A model of a robot's joints (``PoseFlow(robot.manifold, robot=robot)``, what ``make demo``
  trains) samples joints inside the limits by construction (interval factors), and the sampler adds the
  end-effector pose computed by the robot's forward kinematics, ``"position" (n, 3)`` and ``"quat" (n, 4)``
  in ``quat_order`` (``"fk_position"``/``"fk_quat"`` when the manifold has position/quaternion parts of its
  own): every sample is a robot state, consistent to round-off. The robot comes from the checkpoint or
  ``robot=``; :attr:`PoseSampler.joint_names` names the joint columns.
* **Joint limits on tori (older models).** Angles on a torus live in ``[-pi, pi)``; a robot's joint ranges
  need not (the Panda's q6 is ``[-0.0175, 3.7525]``). With ``joint_limits`` each sampled angle is mapped to its
  representative ``q + 2 pi k`` inside the limits (:func:`~.joint_filter.unwrap_to_limits`); samples with a joint that has no such
  representative are rejected and redrawn, in rounds, until ``n`` are valid. The acceptance rate is
  reported (``result["acceptance_rate"]`` and :attr:`PoseSampler.last_acceptance_rate`); a shortfall after
  ``max_rounds`` raises :class:`SamplingShortfall` (or returns fewer rows with ``allow_fewer=True``), never
  silently. The joint-limited samples follow the flow's density restricted to the limits, so their
  density is ``exp(score) / acceptance`` inside the limits (in expectation; ``score`` itself is the
  flow's density).

Repeated small calls (the fast path)
------------------------------------
A planner asks for a few samples many times. Construct the sampler once (``from_checkpoint`` loads the file
once) and keep it: the flow stays on its device in eval mode with gradients off, its standardisation
(``loc``/``scale``, condition ``loc``/``scale``) is already in buffers on that device, the integrator settings
are resolved once, joint limits are converted to the flow's dtype and device once, and recent conditions are
kept as ready tensors (a small cache keyed by the condition's values, so passing the same object position
again costs no conversion). No call reloads or re-prepares anything. Cost per call is then the ODE
integration itself (``solver["steps"]`` network evaluations of the batch), so draw in batches: one call for
256 samples costs about as much as one call for 1 (see :class:`posegen.planning.ompl.SampleBuffer`, which
serves batched draws one state at a time). Fewer solver steps (``solver={"steps": 8}``) trade accuracy for
speed.

Example::

    sampler = PoseSampler.from_checkpoint("grasp.pt", quat_order="wxyz")
    out = sampler.sample(64, condition=object_pos, seed=0)    # {"position": (64, 3), "quat": (64, 4), ...}
    T = sampler.sample_se3(64, condition=object_pos)           # (64, 4, 4)
    best = sampler.top_k(256, 8, condition=object_pos)         # sorted by log-density, highest first

    robot = PoseSampler.from_checkpoint("runs/default/model.pt")   # a joint model of the Panda (make demo)
    out = robot.sample(100)          # {"joints": (100, 7) inside the limits, "position": (100, 3), "quat": ...}
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..flow import PoseFlow
from ..robots import as_robot
from ..rotations import check_quat_order, se3_from_pos_quat
from .conditions import ConditionCache
from .joint_filter import JointFilter, SamplingShortfall, resolve_joint_limits, unwrap_to_limits
from .parts import JOINT_ROLES, Part, from_caller, manifold_parts, split_parts, to_caller
from .robot_state import end_effector_pose, reachable

__all__ = ["PoseSampler"]

_SOLVER_KEYS = ("method", "steps", "step", "atol", "rtol")


class PoseSampler:
    """Sample, score and rank poses from a :class:`~posegen.PoseFlow`, in the caller's conventions.

    Args:
        flow: a trained flow. It is put in eval mode and moved to ``device`` (the caller's object is used
            as is, not copied).
        quat_order: ``"xyzw"`` or ``"wxyz"``, for every quaternion part (SO3/S3 factors), out and in.
        robot: the robot whose joints the flow models (a :class:`posegen.robots.Robot`, a built-in name or
            a description path); default the one saved with the flow, if any. Adds the end-effector pose
            of every sample by forward kinematics (see the module docstring).
        joint_limits: for models whose joints are angles on a torus (older models): ``None``, a robot (e.g.
            ``"panda"``) or ``(n_joints, 2)`` ``[lower, upper]`` in radians, for all torus angles of the
            manifold in factor order. Enables rejection of samples outside the limits (see the module
            docstring). Default: the robot's limits when a robot is known. Interval joints need none.
        names: one name per manifold factor, overriding the defaults of :func:`manifold_parts`.
        device: where the flow runs; None keeps its current device.
        solver: integrator settings for sampling and scoring (``method``, ``steps``, ``step``, ``atol``,
            ``rtol``); defaults are the flow's.
        max_rounds: rejection rounds before a shortfall (joint limits of torus models, ``checker``, ``limit_margin``).
        log_prob: whether :meth:`sample` adds ``"log_prob"``: None (default) only when it is cheap (Moser
            Flow, closed-form density); True always (a likelihood ODE solve per call); False never.
        limits_atol: slack at the joint limits (rad).
        condition_cache: how many recent conditions to keep as ready tensors (0 disables the cache).

    Attributes:
        parts: the :class:`Part` list; ``last_acceptance_rate``: acceptance of the latest :meth:`sample`
            (1.0 without limits); ``joint_limits``: the limits tensor or None.
    """

    def __init__(self, flow: PoseFlow, *, quat_order: str = "xyzw", joint_limits=None, robot=None,
                 names: Optional[Sequence[str]] = None, device=None, solver: Optional[Mapping[str, Any]] = None,
                 max_rounds: int = 10, log_prob: Optional[bool] = None, limits_atol: float = 1e-6,
                 condition_cache: int = 8):
        if not isinstance(flow, PoseFlow):
            raise TypeError(f"flow must be a posegen.PoseFlow, got {type(flow).__name__}")
        self.quat_order = check_quat_order(quat_order)
        if device is not None:
            flow.to(device)
        self.flow = flow.eval()
        self.manifold = flow.manifold
        self.parts = manifold_parts(self.manifold, names)
        self._part = {p.name: p for p in self.parts}
        # angle columns (tori) for the joint filter of older models; all joint columns for kinematics
        self._angle_cols = [c for p in self.parts if p.role == "angle" for c in range(p.columns.start, p.columns.stop)]
        self._robot_cols = [c for p in self.parts if p.role in JOINT_ROLES
                            for c in range(p.columns.start, p.columns.stop)]
        spec = robot if robot is not None else flow.robot_spec
        self.robot = None if spec is None else as_robot(spec, "PoseSampler")
        self._fk_names = None
        if self.robot is not None and self._robot_cols:  # a model of the robot's joints (else: poses only)
            if len(self._robot_cols) != self.robot.dof:
                raise ValueError(f"the robot {self.robot.name!r} has {self.robot.dof} joints but {self.manifold!r} "
                                 f"has {len(self._robot_cols)} joint coordinates")
            roles = {p.role for p in self.parts}
            self._fk_names = (("fk_position", "fk_quat") if roles & {"position", "quaternion"}
                              else ("position", "quat"))
            if joint_limits is None and self._angle_cols:
                joint_limits = self.robot.joint_limits[[self._robot_cols.index(c) for c in self._angle_cols]]
        self.joint_limits = resolve_joint_limits(joint_limits, len(self._angle_cols), flow.dtype, flow.device)
        solver = dict(solver or {})
        unknown = set(solver) - set(_SOLVER_KEYS)
        if unknown:
            raise ValueError(f"unknown solver setting(s) {sorted(unknown)}; valid: {list(_SOLVER_KEYS)}")
        self.solver = {k: solver.get(k) for k in _SOLVER_KEYS}
        flow.resolve_solver(**self.solver)               # validate the method/step combination now
        if int(max_rounds) != max_rounds or max_rounds < 1:
            raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
        self.max_rounds = int(max_rounds)
        if log_prob not in (None, True, False):
            raise ValueError(f"log_prob must be None (only when cheap), True or False, got {log_prob!r}")
        self.log_prob_mode = log_prob
        self.limits_atol = float(limits_atol)
        self.last_acceptance_rate: Optional[float] = None
        self._condition = ConditionCache(flow.cond_dim, flow.dtype, flow.device, condition_cache)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path, device=None, quat_order: str = "xyzw", joint_limits=None,
                        **kwargs) -> "PoseSampler":
        """Load a flow saved by :meth:`PoseFlow.save` (or a trainer's ``model.pt`` / ``ckpt.pt``) once.

        Args:
            path: the checkpoint file.
            device: where to run; None picks ``"cuda"`` when available, else ``"cpu"``.
            quat_order, joint_limits, **kwargs: as for :class:`PoseSampler`.
        The loaded flow's parameters get ``requires_grad=False`` (this sampler owns it).
        """
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        flow = PoseFlow.load(path, map_location=device)
        flow.requires_grad_(False)
        return cls(flow, quat_order=quat_order, joint_limits=joint_limits, device=device, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.flow.device

    @property
    def dtype(self) -> torch.dtype:
        return self.flow.dtype

    @property
    def cond_dim(self) -> int:
        return self.flow.cond_dim

    @property
    def part_names(self) -> List[str]:
        return [p.name for p in self.parts]

    @property
    def fk_keys(self) -> Optional[Tuple[str, str]]:
        """Result keys of the forward-kinematics pose (``("position", "quat")`` for a joint model), or None."""
        return self._fk_names

    @property
    def joint_columns(self) -> List[int]:
        """Columns of the flat points that hold the robot's joints, in the robot's order."""
        return list(self._robot_cols)

    @property
    def joint_names(self) -> Optional[Tuple[str, ...]]:
        """Names of the joint columns (the robot's joint names), or None without a robot."""
        return None if self.robot is None else self.robot.joint_names

    def reachable(self, position, quat, *, n_starts: int = 8, seed: int = 0, pos_tol: float = 1e-3,
                  rot_tol: float = 1e-2) -> Dict[str, torch.Tensor]:
        """Whether the robot can put its end effector at each pose: inverse kinematics (projected damped
        least squares, :func:`posegen.robots.ik.solve_ik`) from ``n_starts`` uniform configurations inside the
        limits converges within ``pos_tol`` (m) and ``rot_tol`` (rad) for at least one of them.

        For grasp and end-effector pose models (``R3 x SO3``), whose poses are not redundant with joints.
        Args:
            position ``(T, 3)`` and quat ``(T, 4)`` in ``quat_order``: poses in the robot's base frame (e.g.
            ``sample()["position"], sample()["quat"]``).
        Returns:
            ``{"reachable": (T,) bool, "joints": (T, dof) a solution inside the limits (the best start where
            none succeeded), "position_error": (T,), "rotation_error": (T,)}`` (float64).
        A pose that fails is reported as unreachable, never an exception; a finite number of starts can
        miss a reachable pose near the workspace boundary (more starts, fewer misses).
        """
        if self.robot is None:
            raise ValueError("reachable needs a robot: pass robot= (e.g. 'panda') to PoseSampler")
        return reachable(self.robot, position, quat, quat_order=self.quat_order, n_starts=n_starts, seed=seed,
                         pos_tol=pos_tol, rot_tol=rot_tol)

    def forward_kinematics(self, joints: torch.Tensor) -> Dict[str, torch.Tensor]:
        """End-effector pose of joint configurations ``(..., dof)``: ``{"position": (..., 3), "quat": (..., 4)}``
        (quaternion in ``quat_order``), by the robot's forward kinematics (needs a robot)."""
        if self.robot is None:
            raise ValueError("forward_kinematics needs a robot: pass robot= or load a model saved with one")
        return end_effector_pose(self.robot, joints, self.quat_order)

    def __repr__(self) -> str:
        lim = "none" if self.joint_limits is None else f"{tuple(self.joint_limits.shape)}"
        rob = "" if self.robot is None else f", robot={self.robot.name!r}"
        return (f"PoseSampler({self.manifold!r}, parts={self.part_names}, quat_order={self.quat_order!r}, "
                f"cond_dim={self.cond_dim}, joint_limits={lim}{rob}, device={self.device})")

    # ------------------------------------------------------------------ conversions
    def _to_caller(self, x: torch.Tensor) -> torch.Tensor:
        return to_caller(self.parts, x, self.quat_order)

    def _from_caller(self, x: torch.Tensor) -> torch.Tensor:
        return from_caller(self.parts, x, self.quat_order)

    # ------------------------------------------------------------------ drawing
    def _draw(self, m: int, cond: Optional[torch.Tensor], generator) -> torch.Tensor:
        return self.flow.sample(m, condition=cond, generator=generator, **self.solver)

    def _cheap_log_prob(self, want: Optional[bool]) -> bool:
        want = self.log_prob_mode if want is None else want
        if want is None:
            return self.flow.parametrization == "moser"
        return bool(want)

    def _log_prob_internal(self, x: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        if cond is not None and cond.dim() == 2 and cond.shape[0] != x.shape[0]:
            raise ValueError(f"condition has {cond.shape[0]} rows but there are {x.shape[0]} points")
        with torch.enable_grad():
            return self.flow.log_prob(x, condition=cond, **self.solver)

    # ------------------------------------------------------------------ public API
    def _check(self, checker, limit_margin: float):
        """The validity test of :meth:`sample`, or None when every draw is valid: ``x (m, D) -> (angles in their
        limits (m, J) or None, valid (m,))``."""
        if self.joint_limits is None and checker is None and not limit_margin:
            return None

        def check(x: torch.Tensor):
            q, ok = None, torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            if self.joint_limits is not None:
                q, ok = unwrap_to_limits(x[:, self._angle_cols], self.joint_limits, self.limits_atol)
            if checker is None and not limit_margin:
                return q, ok
            joints = x[:, self._robot_cols].clone()
            for k, c in enumerate(self._angle_cols):
                joints[:, self._robot_cols.index(c)] = q[:, k]
            if limit_margin:
                lim = self.robot.joint_limits.to(joints)
                ok &= ((joints >= lim[:, 0] + limit_margin) & (joints <= lim[:, 1] - limit_margin)).all(-1)
            if checker is not None:
                ok &= checker.is_valid(joints.to(checker.device, checker.dtype)).to(ok.device)
            return q, ok

        return check

    def _check_validity_args(self, checker, limit_margin):
        if (checker is not None or limit_margin) and self._fk_names is None:
            raise ValueError("checker= and limit_margin= need a model of a robot's joints (a PoseSampler with a robot "
                             "whose joints are parts of the manifold)")
        if checker is not None:
            if not hasattr(checker, "is_valid") or not hasattr(checker, "robot"):
                raise TypeError(f"checker must be a posegen.robots.CollisionChecker, got {type(checker).__name__}")
            if list(checker.robot.joint_names) != list(self.robot.joint_names):
                raise ValueError(f"checker is for {checker.robot.name} (joints {list(checker.robot.joint_names)}), "
                                 f"not for this sampler's {self.robot.name}")
        if not (isinstance(limit_margin, (int, float)) and 0 <= limit_margin < float("inf")):
            raise ValueError(f"limit_margin must be a number >= 0 (rad, or m for prismatic joints), got "
                             f"{limit_margin!r}")

    def sample(self, n: int, condition=None, seed: Optional[int] = None, *, allow_fewer: bool = False,
               log_prob: Optional[bool] = None, checker=None, limit_margin: float = 0.0) -> Dict[str, Any]:
        """Draw ``n`` poses.

        Args:
            n: number of samples.
            condition: ``(cond_dim,)`` for all samples or ``(n, cond_dim)`` per sample (conditional flows).
            seed: reproducibility (same seed, same samples on the same device and settings); None uses
                torch's global generator.
            allow_fewer: when draws are rejected (joint limits of torus models, ``checker``, ``limit_margin``),
                return fewer than ``n`` rows instead of raising :class:`SamplingShortfall` when the rounds run
                out.
            log_prob: override the sampler's ``log_prob`` setting for this call.
            checker: a :class:`~posegen.robots.CollisionChecker` of the model's robot and a scene: only
                configurations it finds valid (inside the limits, no self-collision, clear of its obstacles)
                are returned, drawn in rounds; ``"acceptance_rate"`` says which share passed.
            limit_margin: keep every joint at least this far inside its limits (rad, or m for prismatic
                joints), by rejection like ``checker``.
        Returns:
            dict with one entry per part (e.g. ``"position" (n, 3)``, ``"joints" (n, J)``, ``"quat" (n, 4)``
            in ``quat_order``; joints inside the limits when limits are set, else wrapped to ``[-pi, pi)``),
            ``"points" (n, coord_dim)`` (the flat manifold coordinates as :meth:`score` takes them:
            quaternions in ``quat_order``, angles wrapped), ``"log_prob" (n,)`` when enabled,
            ``"acceptance_rate"`` (float, 1.0 when nothing is rejected) and ``"n_drawn"`` (int, samples
            integrated).
        """
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        cond = self._condition(condition)
        if cond is not None and cond.dim() == 2 and cond.shape[0] != n:
            raise ValueError(f"condition has {cond.shape[0]} rows but n={n}; pass ({self.cond_dim},) to use "
                             f"one condition for all samples")
        self._check_validity_args(checker, limit_margin)
        check = self._check(checker, limit_margin)
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        with torch.no_grad():
            if check is None or n == 0:
                x = self._draw(n, cond, generator)
                q, drawn, accepted = None, n, n
            else:
                rejection = JointFilter(check, max_rounds=self.max_rounds, last_rate=self.last_acceptance_rate)
                x, q, drawn, accepted = rejection.draw(self._draw, n, cond, generator,
                                                       coord_dim=self.manifold.coord_dim, dtype=self.dtype,
                                                       device=self.device)
        rate = accepted / drawn if drawn else 1.0
        self.last_acceptance_rate = rate
        if x.shape[0] < n:
            what = " and ".join(w for w, on in (("inside joint_limits", self.joint_limits is not None),
                                                (f"{limit_margin:g} inside the limits", bool(limit_margin)),
                                                ("valid for the checker", checker is not None)) if on)
            msg = (f"only {x.shape[0]} of {n} samples are {what} after {self.max_rounds} rounds ({drawn} drawn, "
                   f"acceptance rate {rate:.3g}); raise max_rounds, pass allow_fewer=True, or check that the "
                   f"limits and the scene fit the model's robot")
            if not allow_fewer:
                raise SamplingShortfall(msg)
            if cond is not None and cond.dim() == 2:
                raise SamplingShortfall(msg + " (allow_fewer cannot drop rows of a per-sample condition)")
        out: Dict[str, Any] = split_parts(self.parts, self._to_caller(x), q)
        out["points"] = self._to_caller(x)
        if self._fk_names is not None:
            # the end-effector pose of each sampled configuration: a robot state, consistent by construction
            joints = torch.cat([out[p.name] for p in self.parts if p.role in JOINT_ROLES], -1)
            fk = self.forward_kinematics(joints)
            out[self._fk_names[0]], out[self._fk_names[1]] = fk["position"], fk["quat"]
        if self._cheap_log_prob(log_prob):
            out["log_prob"] = self._log_prob_internal(x, cond)
        out["acceptance_rate"] = rate
        out["n_drawn"] = drawn
        return out

    def _points_from(self, x) -> torch.Tensor:
        """Caller's flat points or part dict -> internal points ``(N, coord_dim)`` on the flow's device."""
        if isinstance(x, Mapping):
            missing = [p.name for p in self.parts if p.name not in x]
            if missing:
                raise ValueError(f"score: the dict lacks part(s) {missing}; expected keys {self.part_names}")
            cols = []
            for p in self.parts:
                a = torch.as_tensor(x[p.name], dtype=self.dtype, device=self.device)
                w = p.columns.stop - p.columns.start
                if a.dim() == 1 and a.shape[0] == w:
                    a = a.unsqueeze(0)
                if a.dim() != 2 or a.shape[-1] != w:
                    raise ValueError(f"score: part {p.name!r} must have shape (N, {w}), got {tuple(a.shape)}")
                cols.append(a)
            if len({a.shape[0] for a in cols}) > 1:
                raise ValueError(f"score: parts have different numbers of rows: "
                                 f"{ {p.name: a.shape[0] for p, a in zip(self.parts, cols)} }")
            flat = torch.cat(cols, -1)
        else:
            flat = torch.as_tensor(x, dtype=self.dtype, device=self.device)
            if flat.dim() == 1:
                flat = flat.unsqueeze(0)
            if flat.dim() != 2 or flat.shape[-1] != self.manifold.coord_dim:
                raise ValueError(f"score: x must have shape (N, {self.manifold.coord_dim}) for {self.manifold!r} "
                                 f"(parts {self.part_names}), got {tuple(flat.shape)}")
        return self._from_caller(flat)

    def score(self, x, condition=None) -> torch.Tensor:
        """Log-density ``(N,)`` of the flow at poses given in the caller's conventions.

        Args:
            x: flat points ``(N, coord_dim)`` (like ``sample()["points"]``) or a dict of parts (like
                ``sample()`` returns; extra keys are ignored). Quaternions in ``quat_order``; joint angles
                with any 2 pi offset (e.g. inside the robot's limits).
            condition: ``(cond_dim,)`` or ``(N, cond_dim)``.
        The density is w.r.t. the Riemannian volume (see :meth:`PoseFlow.log_prob`); with joint limits it is
        the unrestricted flow's, not renormalised by the acceptance rate.
        """
        xi = self._points_from(x)
        return self._log_prob_internal(xi, self._condition(condition))

    def top_k(self, n_candidates: int, k: int, condition=None, seed: Optional[int] = None, *,
              allow_fewer: bool = False) -> Dict[str, Any]:
        """Draw ``n_candidates`` poses for one condition and keep the ``k`` most likely under the flow.

        Returns the :meth:`sample` dict restricted to those ``k`` rows, sorted by ``"log_prob"``
        (highest first), plus ``"acceptance_rate"`` and ``"n_drawn"`` of the draw.
        """
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if int(n_candidates) != n_candidates or n_candidates < k:
            raise ValueError(f"n_candidates must be an integer >= k={k}, got {n_candidates!r}")
        cond = self._condition(condition)
        if cond is not None and cond.dim() == 2:
            raise ValueError(f"top_k ranks candidates for one condition: pass condition with shape "
                             f"({self.cond_dim},), got {tuple(cond.shape)}")
        res = self.sample(int(n_candidates), cond, seed, allow_fewer=allow_fewer, log_prob=False)
        x = self._from_caller(res["points"])
        lp = self._log_prob_internal(x, cond)
        order = torch.argsort(lp, descending=True)[: int(k)]
        out = {key: (v[order] if isinstance(v, torch.Tensor) else v) for key, v in res.items()}
        out["log_prob"] = lp[order]
        return out

    def se3_parts(self, position: Optional[str] = None, rotation: Optional[str] = None) -> Tuple[Part, Part]:
        """The position (R3) and rotation (quaternion) parts that make a pose: the only one of each role, or
        the ones named by ``position=`` / ``rotation=``. ValueError when there is none or a choice is needed."""
        def pick(name, role, label):
            if name is not None:
                if name not in self._part or self._part[name].role != role:
                    raise ValueError(f"sample_se3: {label}={name!r} is not a {role} part; parts: "
                                     f"{[(p.name, p.role) for p in self.parts]}")
                return self._part[name]
            cands = [p for p in self.parts if p.role == role]
            if len(cands) != 1:
                what = "an R3 factor" if role == "position" else "an SO3 (or S3) factor"
                raise ValueError(f"sample_se3 needs {what} in the manifold; {self.manifold!r} has "
                                 f"{len(cands)} (parts {self.part_names})"
                                 + (f"; name one with {label}=" if cands else ""))
            return cands[0]

        return pick(position, "position", "position"), pick(rotation, "quaternion", "rotation")

    def sample_se3(self, n: int, condition=None, seed: Optional[int] = None, *, position: Optional[str] = None,
                   rotation: Optional[str] = None, allow_fewer: bool = False) -> torch.Tensor:
        """Draw ``n`` poses as homogeneous matrices ``(n, 4, 4)``: rotation from the quaternion part,
        translation from the R3 part (for a robot's joint model: the forward kinematics of the joints). Needs one
        R3 and one SO3/S3 factor (or name them with
        ``position=``/``rotation=``); other parts (e.g. joints) are drawn and dropped."""
        if self._fk_names == ("position", "quat") and position is None and rotation is None:
            # a robot's joint model: the end-effector pose by forward kinematics
            res = self.sample(n, condition, seed, allow_fewer=allow_fewer, log_prob=False)
            joints = torch.cat([res[p.name] for p in self.parts if p.role in JOINT_ROLES], -1)
            return self.robot.fk(joints)
        p_pos, p_rot = self.se3_parts(position, rotation)
        res = self.sample(n, condition, seed, allow_fewer=allow_fewer, log_prob=False)
        return se3_from_pos_quat(res[p_pos.name], res[p_rot.name], self.quat_order)
