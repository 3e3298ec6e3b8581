r"""PoseFlow: the object users train, save, sample and score.

A continuous normalizing flow on a product manifold ``M``: a velocity field ``v(t, x)`` carries the base
distribution ``p_0`` (standard normal on R^d factors, uniform on compact ones) at ``t = 0`` to the model
density ``p_1`` at ``t = 1``. Its exact log-likelihood is

.. math::  \log p_1(x) = \log p_0(x_0) - \int_0^1 \operatorname{div}_M v(t, x_t)\, dt,

integrated backwards from ``x_1 = x``. Densities are w.r.t. the Riemannian volume of ``M`` as stored
(Lebesgue on R^d, arc length on each angle, surface measure on spheres, pi^2 total on SO3).

Euclidean coordinates are standardised with the training data's mean and std (``fit_standardization``):
the flow runs on ``z = (x - loc) / scale`` so the N(0, I) base covers the data, and ``log_prob`` adds the
change of variables ``-sum(log scale)``.

A flow trained with Moser Flow (``parametrization="moser"``) has the density in closed form,
``mu = nu - div u`` with ``u`` the (time-independent) network, and samples with the ODE
``v_t = u / ((1 - t) nu + t mu)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, Optional

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .manifolds import Product, parse, tol
from .models import VelocityMLP, make_encoder
from .solvers import divergence as _divergence
from .solvers.divergence import check_method as _check_div_method
from .solvers.divergence import rademacher as _rademacher
from .solvers.divergence import tangent_directions as _tangent_directions
from .solvers.defaults import DEFAULT_SOLVER, LOG_PROB_CHUNK_SIZE, SAMPLE_CHUNK_SIZE, SOLVER_KEYS
from .solvers.ode import check_method, integrate

PARAMETRIZATIONS = ("cnf", "moser")
# Moser floor relative to the uniform density 1 / Vol(M): 1.26e-5 on S^2, near Moser Flow's eps = 1e-5 there.
MOSER_EPS_REL = 1.58e-4
_UNSET: Any = object()  # "not given" for the deprecated batch_size= of sample/log_prob (None means one chunk)


def _chunk_size(chunk_size, batch_size, default, where: str):
    """``chunk_size``, or the deprecated ``batch_size`` alias (with a :class:`DeprecationWarning`)."""
    if batch_size is _UNSET:
        return chunk_size
    warnings.warn(f"PoseFlow.{where}(batch_size=...) is deprecated: use chunk_size= (points integrated at once; "
                  f"batch_size is the training batch elsewhere in posegen)", DeprecationWarning, stacklevel=3)
    if chunk_size != default:
        raise TypeError(f"PoseFlow.{where}() got both chunk_size= and its deprecated alias batch_size=")
    return batch_size


def _make_generator(generator, seed):
    if generator is not None and seed is not None:
        raise ValueError("pass either generator= or seed=, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    return generator


class PoseFlow(nn.Module):
    """A density on a product manifold, learned as a continuous normalizing flow.

    Args:
        manifold: a spec string (``"R3 x T7 x S3"``) or a :class:`~posegen.manifolds.Product`.
        hidden, depth, activation, time_freqs: velocity MLP settings (:class:`~posegen.models.VelocityMLP`).
        cond_dim: size of the conditioning vector for conditional densities ``p(x | c)`` (0: none).
        conditioning: ``"concat"`` or ``"film"``.
        parametrization: ``"cnf"`` (ODE flow; CNFM, RFM and interpolant objectives) or ``"moser"``
            (density ``nu - div u``; compact manifolds only).
        moser_eps: floor of the Moser density in ``log_prob`` and in the sampling ODE. Default (None):
            ``MOSER_EPS_REL`` times the uniform density ``1 / Vol(M)``, i.e. 1.26e-5 on S^2 where Moser Flow's
            paper used 1e-5; a fixed 1e-5 would exceed the uniform density of T^7 (2.6e-6) and clamp the
            whole likelihood term from the first step.
        solver: default integrator settings for ``sample``/``log_prob`` (method, steps, step, atol, rtol).
        robot: the :class:`posegen.robots.Robot` whose joints the manifold holds (or its ``.spec``), saved
            with the model so that :class:`~posegen.PoseSampler` adds the forward-kinematics pose of every
            sampled configuration; None for models that are not a robot's joints.
        encoder: plain-data description of an encoder of structured conditions, trained with the flow
            (:func:`posegen.models.make_encoder`, e.g. ``{"kind": "pointnet", "out_dim": 64}``): conditions
            are then raw (an object's point cloud ``(P, 3)`` or ``(n, P, 3)``), encoded once per call to
            ``(n, out_dim)`` features, not standardised; ``cond_dim`` is the encoder's ``out_dim``.

    Example::

        M = pg.manifolds.parse("R3 x T7 x S3")
        flow = pg.PoseFlow(M)
        x = flow.sample(1000, seed=0)     # (1000, 14)
        lp = flow.log_prob(x)             # (1000,)
    """

    def __init__(self, manifold, *, hidden: int = 256, depth: int = 4, cond_dim: int = 0,
                 conditioning: str = "concat", activation: str = "silu", time_freqs: int = 4,
                 parametrization: str = "cnf", moser_eps: Optional[float] = None,
                 solver: Optional[Dict[str, Any]] = None, robot=None, encoder: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.encoder = None if encoder is None else make_encoder(dict(encoder))
        if self.encoder is not None:
            if cond_dim not in (0, self.encoder.out_dim):
                raise ValueError(f"cond_dim={cond_dim} but the encoder gives {self.encoder.out_dim} features; leave "
                                 f"cond_dim out (it is the encoder's out_dim)")
            cond_dim = self.encoder.out_dim
        self.manifold: Product = parse(manifold)
        # which robot the joints belong to, as plain data saved with the model (the flow never uses it;
        # PoseSampler does, to compute the end-effector pose of sampled joints by forward kinematics)
        if robot is not None and not isinstance(robot, dict):
            robot = getattr(robot, "spec", None)
            if not isinstance(robot, dict):
                raise TypeError("robot must be a posegen.robots.Robot, its .spec dict, or None")
        self.robot_spec: Optional[Dict[str, Any]] = None if robot is None else dict(robot)
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f'Invalid parametrization "{parametrization}". Must be one of {sorted(PARAMETRIZATIONS)}')
        if parametrization == "moser" and not self.manifold.compact:
            raise ValueError(f"Moser Flow needs a compact manifold (its density nu - div u is normalised by the "
                             f"divergence theorem on a closed manifold); {self.manifold!r} has Euclidean "
                             f"factors. Use objective 'cnfm', 'rfm' or 'interpolant' instead")
        unknown = set(solver or {}) - set(SOLVER_KEYS)
        if unknown:  # a typo such as "step" for "steps" would otherwise be ignored silently
            raise ValueError(f"unknown solver settings {sorted(unknown)}; valid: {list(SOLVER_KEYS)}")
        if moser_eps is None:
            moser_eps = MOSER_EPS_REL * math.exp(-self.manifold.log_volume) if self.manifold.compact else 1e-5
        if not moser_eps > 0:
            raise ValueError(f"moser_eps must be > 0, got {moser_eps!r}")
        self.solver = dict(DEFAULT_SOLVER, **(solver or {}))
        check_method(self.solver["method"], self.solver["step"])
        self.config = dict(manifold=repr(self.manifold), hidden=int(hidden), depth=int(depth),
                           cond_dim=int(cond_dim), conditioning=conditioning, activation=activation,
                           time_freqs=int(time_freqs), parametrization=parametrization,
                           moser_eps=float(moser_eps), solver=dict(self.solver))
        if self.robot_spec is not None:
            self.config["robot"] = dict(self.robot_spec)
        if self.encoder is not None:
            self.config["encoder"] = dict(self.encoder.config)
        self.net = VelocityMLP(self.manifold, hidden=hidden, depth=depth, cond_dim=cond_dim,
                               conditioning=conditioning, activation=activation, time_freqs=time_freqs)
        D = self.manifold.coord_dim
        self.register_buffer("loc", torch.zeros(D))
        self.register_buffer("scale", torch.ones(D))
        self.register_buffer("cond_loc", torch.zeros(max(int(cond_dim), 0)))
        self.register_buffer("cond_scale", torch.ones(max(int(cond_dim), 0)))

    # ------------------------------------------------------------------ properties
    @property
    def cond_dim(self) -> int:
        return self.config["cond_dim"]

    @property
    def parametrization(self) -> str:
        return self.config["parametrization"]

    @property
    def device(self) -> torch.device:
        return self.loc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.loc.dtype

    def extra_repr(self) -> str:
        return f"manifold={self.manifold!r}, parametrization={self.parametrization}, cond_dim={self.cond_dim}"

    # ------------------------------------------------------------------ standardisation
    @torch.no_grad()
    def fit_standardization(self, points: torch.Tensor, conditions: Optional[torch.Tensor] = None) -> "PoseFlow":
        """Set ``loc``/``scale`` of the Euclidean coordinates (and of the conditions) from data.

        ``points (N, coord_dim)`` in user coordinates; ``conditions (N, cond_dim)``. Non-Euclidean
        coordinates keep loc 0 and scale 1 (the map is the identity on them).
        """
        mask = self.manifold.standardize_mask.to(points.device)
        pts = points.to(self.loc)
        loc = torch.zeros_like(self.loc)
        scale = torch.ones_like(self.scale)
        if mask.any():
            e = pts[:, mask]
            loc[mask] = e.mean(0)
            scale[mask] = e.std(0, unbiased=False).clamp_min(1e-6) if e.shape[0] > 1 else 1.0
        self.loc.copy_(loc)
        self.scale.copy_(scale)
        if conditions is not None and self.cond_dim and self.encoder is None:
            c = self._check_condition(conditions, conditions.shape[0], standardize=False)
            self.cond_loc.copy_(c.mean(0))
            self.cond_scale.copy_(c.std(0, unbiased=False).clamp_min(1e-6) if c.shape[0] > 1 else 1.0)
        return self

    def to_internal(self, x: torch.Tensor) -> torch.Tensor:
        """User coordinates -> flow coordinates ``z = (x - loc) / scale`` (identity off R^d factors)."""
        return (x - self.loc.to(x)) / self.scale.to(x)

    def from_internal(self, z: torch.Tensor) -> torch.Tensor:
        """Flow coordinates -> user coordinates."""
        return z * self.scale.to(z) + self.loc.to(z)

    @property
    def log_abs_det(self) -> torch.Tensor:
        """``log |det d z / d x|^{-1} = sum(log scale)``: subtract from internal log-densities."""
        return self.scale.log().sum()

    def _check_condition(self, condition, n: int, standardize: bool = True) -> Optional[torch.Tensor]:
        """``condition`` as network features ``(n, cond_dim)``: checked, broadcast from one row, standardised
        (``standardize``), or encoded when the flow has an encoder (raw conditions, one or ``n`` of them)."""
        if not self.cond_dim:
            if condition is not None:
                raise ValueError("this flow is unconditional (cond_dim=0) but condition= was given")
            return None
        if condition is None:
            want = "a raw condition for its encoder" if self.encoder is not None else (
                f"shape ({n}, {self.cond_dim}) or ({self.cond_dim},)")
            raise ValueError(f"this flow is conditional (cond_dim={self.cond_dim}): pass condition= with {want}")
        c = torch.as_tensor(condition, dtype=self.dtype, device=self.device)
        if self.encoder is not None:
            c = self.encoder.check(c)
            if c.shape[0] not in (1, n):
                raise ValueError(f"condition must hold 1 or {n} raw conditions, got {c.shape[0]}")
        else:
            if c.dim() == 1:
                c = c.unsqueeze(0)
            if c.dim() != 2 or c.shape[-1] != self.cond_dim or c.shape[0] not in (1, n):
                raise ValueError(f"condition must have shape ({n}, {self.cond_dim}) or ({self.cond_dim},), "
                                 f"got {tuple(torch.as_tensor(condition).shape)}")
        if c.device.type == "cpu":
            if not torch.isfinite(c).all():
                raise ValueError("condition contains NaN or inf")
        else:  # checked on the device, without a host sync in velocity() (raised at the next sync)
            torch._assert_async(torch.isfinite(c).all(), "condition contains NaN or inf")
        if self.encoder is not None:
            return self._encode(c).expand(n, self.cond_dim)
        c = c.expand(n, self.cond_dim)
        return (c - self.cond_loc) / self.cond_scale if standardize else c

    def _encode(self, c: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, cond_dim)`` of raw conditions ``(B, ...)``, each distinct condition encoded once:
        a batch that repeats conditions (grasps of one object share its cloud) costs the encoder only its distinct
        rows, which for a PointNet on hundreds of points per row is most of a training step."""
        if c.shape[0] > 1:
            distinct, inverse = torch.unique(c.reshape(c.shape[0], -1), dim=0, return_inverse=True)
            if distinct.shape[0] < c.shape[0]:
                return self.encoder(distinct.reshape(-1, *c.shape[1:]))[inverse]
        return self.encoder(c)

    # ------------------------------------------------------------------ the field
    def velocity(self, t: torch.Tensor, z: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Velocity in flow coordinates: ``t (B,)``, ``z (B, D)``, ``condition (B, C)`` (user units; raw for an
        encoder) -> ``(B, D)``."""
        return self.net(t, z, self._check_condition(condition, z.shape[0]))

    def velocity_and_div(self, t: torch.Tensor, z: torch.Tensor, condition: Optional[torch.Tensor] = None,
                         method: str = "exact", generator: Optional[torch.Generator] = None):
        """``(v (B, D), div_M v (B,))`` at flow coordinates ``z``; differentiable w.r.t. the parameters."""
        return self._velocity_and_div(t, z, self._check_condition(condition, z.shape[0]), method, generator)

    def _velocity_and_div(self, t, z, c, method="exact", generator=None):
        """:meth:`velocity_and_div` given network features ``c (B, cond_dim)`` (already checked / encoded)."""
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        if isinstance(self.net, VelocityMLP) and z.dim() == 2:
            # forward mode by hand through the MLP, over a tangent frame (2 directions on S2, not 3): the
            # same values as the generic torch.func path below, 3-4x cheaper (benchmarks/cnfm_cost.py)
            _check_div_method(method)
            if method == "exact":
                directions = _tangent_directions(self.manifold, z)
            else:
                directions = _rademacher(z, generator).unsqueeze(0)
            return self.net.forward_and_div(t, z, c, directions)
        if c is None:
            return _divergence(lambda x, s: self.net(s, x), z, t, method=method, generator=generator)
        return _divergence(lambda x, s, ci: self.net(s, x, ci), z, t, c, method=method, generator=generator)

    def moser_density(self, z: torch.Tensor, condition: Optional[torch.Tensor] = None,
                      method: str = "exact", generator: Optional[torch.Generator] = None):
        """Moser Flow's ``(mu (B,), u (B, D))`` with ``mu = nu - div u`` (may be negative before training)."""
        return self._moser_density(z, self._check_condition(condition, z.shape[0]), method, generator)

    def _moser_density(self, z, c, method="exact", generator=None):
        u, div = self._velocity_and_div(torch.zeros((), dtype=z.dtype, device=z.device), z, c, method, generator)
        return self.manifold.base_log_prob(z).exp() - div, u

    # ------------------------------------------------------------------ sampling
    def resolve_solver(self, method=None, steps=None, step=None, atol=None, rtol=None) -> dict:
        """The integrator settings of a call: the flow's defaults (:attr:`solver`) with the given ones on top;
        ValueError for an unknown method or a step rule it does not take."""
        s = dict(self.solver)
        for k, v in dict(method=method, steps=steps, step=step, atol=atol, rtol=rtol).items():
            if v is not None:
                s[k] = v
        check_method(s["method"], s["step"])
        return s

    def _chunks(self, n: int, chunk_size: Optional[int]):
        if chunk_size is None:  # one chunk (none at all for n = 0, which is not an error)
            return [(0, n)] if n else []
        cs = int(chunk_size)
        if cs < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return [(i, min(i + cs, n)) for i in range(0, n, cs)]

    @torch.no_grad()
    def sample(self, n: int, condition=None, *, method: Optional[str] = None, steps: Optional[int] = None,
               step: Optional[str] = None, atol: Optional[float] = None, rtol: Optional[float] = None,
               generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
               chunk_size: Optional[int] = SAMPLE_CHUNK_SIZE, device=None, canonical: bool = True,
               temperature: float = 1.0, batch_size: Optional[int] = _UNSET) -> torch.Tensor:
        """Draw ``n`` samples ``(n, coord_dim)`` in user coordinates, on the manifold.

        Args:
            n: number of samples.
            condition: ``(n, cond_dim)`` or one row ``(cond_dim,)`` broadcast to all samples (conditional flows).
            method, steps, step, atol, rtol: integrator settings (defaults: ``self.solver``).
            generator / seed: reproducibility; base noise is drawn on the CPU from this generator, so the
                same seed gives the same samples on any device (up to floating-point differences).
            chunk_size: points integrated at once (a memory bound; results do not depend on it); None: all.
            device: where to integrate (defaults to the model's device; the model is moved there).
            canonical: return SO3 quaternions in the w >= 0 hemisphere.
            temperature: widen (``> 1``) or narrow the base draws of the factors with a Gaussian base (R^d; the
                chart of joint limits) before the flow moves them (:meth:`~posegen.manifolds.Manifold.temper`);
                factors with a uniform base are unchanged. 1 samples the model's own density.
            batch_size: deprecated alias of ``chunk_size``.
        """
        chunk_size = _chunk_size(chunk_size, batch_size, SAMPLE_CHUNK_SIZE, "sample")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        if device is not None:
            self.to(device)
        s = self.resolve_solver(method, steps, step, atol, rtol)
        generator = _make_generator(generator, seed)
        M = self.manifold
        c_all = self._check_condition(condition, n)   # network features, encoded once for the whole call
        # drawn where the generator lives (seed=: a CPU generator, the same samples on any device), or on the
        # model's device from its global RNG when there is no generator: no host draw copied over
        draw_on = generator.device if generator is not None else self.device
        z0 = M.sample_base(n, generator=generator, dtype=self.dtype, device=draw_on).to(self.device)
        if temperature != 1:
            z0 = M.temper(z0, float(temperature))
        out = []
        for a, b in self._chunks(n, chunk_size):
            c = None if c_all is None else c_all[a:b]
            if self.parametrization == "moser":
                field = self._moser_field(c)
            else:
                field = lambda t, z, c=c: (self.net(t, z, c), None)  # noqa: E731
            out.append(integrate(field, z0[a:b], M, 0.0, 1.0, method=s["method"], steps=s["steps"],
                                 step=s["step"], atol=s["atol"], rtol=s["rtol"]))
        x = self.from_internal(torch.cat(out) if out else z0)
        x = M.projx(x)
        if canonical:
            x = M.canonical(x)
        return x

    def _moser_field(self, c):
        eps = self.config["moser_eps"]

        def field(t, z):
            with torch.enable_grad():
                mu, u = self._moser_density(z, c)
            nu = self.manifold.base_log_prob(z).exp()
            p_t = (1 - t) * nu + t * mu.clamp_min(eps)
            return (u / p_t.unsqueeze(-1)).detach(), None

        return field

    # ------------------------------------------------------------------ likelihood
    def log_prob(self, x: torch.Tensor, condition=None, *, method: Optional[str] = None,
                 steps: Optional[int] = None, step: Optional[str] = None, atol: Optional[float] = None,
                 rtol: Optional[float] = None, divergence: str = "exact",
                 generator: Optional[torch.Generator] = None, seed: Optional[int] = None,
                 chunk_size: Optional[int] = LOG_PROB_CHUNK_SIZE, device=None,
                 batch_size: Optional[int] = _UNSET) -> torch.Tensor:
        """Natural log-density ``(N,)`` of points ``x (N, coord_dim)`` w.r.t. the Riemannian volume.

        Args:
            x: points in user coordinates; checked against the manifold (clear error if off it).
            condition: ``(N, cond_dim)`` or ``(cond_dim,)`` for conditional flows.
            method, steps, step, atol, rtol: integrator settings (defaults: ``self.solver``).
            divergence: ``"exact"`` (trace of the Jacobian, torch.func) or ``"hutchinson"`` (unbiased
                stochastic estimate; pass a generator/seed to make it reproducible).
            chunk_size: points integrated at once (a memory bound); None: all.
            batch_size: deprecated alias of ``chunk_size``.
        """
        chunk_size = _chunk_size(chunk_size, batch_size, LOG_PROB_CHUNK_SIZE, "log_prob")
        if device is not None:
            self.to(device)
        x = torch.as_tensor(x)
        if not x.is_floating_point():
            x = x.to(self.dtype)
        # The flow computes in self.dtype: points as precise as that are on the manifold for it (a float32
        # flow's own samples cast to float64 must not be refused for a 6e-8 norm error).
        self.manifold.check_point(x, atol=max(tol(x.dtype, "unit"), tol(self.dtype, "unit")))
        lead = x.shape[:-1]
        x = x.reshape(-1, self.manifold.coord_dim).to(self.device, self.dtype)
        n = x.shape[0]
        s = self.resolve_solver(method, steps, step, atol, rtol)
        generator = _make_generator(generator, seed)
        with torch.no_grad():  # the likelihood is not differentiated (its chunks run without grad too)
            c_all = self._check_condition(condition, n)   # network features, encoded once for the whole call
        z_all = self.to_internal(x)
        out = []
        for a, b in self._chunks(n, chunk_size):
            z = z_all[a:b]
            c = None if c_all is None else c_all[a:b]
            with torch.no_grad():
                if self.parametrization == "moser":
                    mu, _ = self._moser_density(z, c, divergence, generator)
                    lp = mu.clamp_min(self.config["moser_eps"]).log()
                else:
                    def field(t, zz, c=c):
                        v, div = self._velocity_and_div(t, zz, c, divergence, generator)
                        return v, div.unsqueeze(-1)

                    z0, e0 = integrate(field, z, self.manifold, 1.0, 0.0, extra=z.new_zeros(b - a, 1),
                                       method=s["method"], steps=s["steps"], step=s["step"],
                                       atol=s["atol"], rtol=s["rtol"])
                    lp = self.manifold.base_log_prob(z0) + e0.squeeze(-1)
            out.append(lp)
        lp = torch.cat(out) if out else z_all.new_zeros(0)
        return (lp - self.log_abs_det).reshape(lead)

    # ------------------------------------------------------------------ files
    def save(self, path, extra: Optional[Dict[str, Any]] = None):
        """Write a safe, atomic checkpoint (plain data: tensors, numbers, strings; no pickled objects).

        It carries the format version, the manifold spec, the model settings and the posegen version;
        ``extra`` (plain data, e.g. training metadata) is stored alongside.
        """
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return save_checkpoint({"manifold": repr(self.manifold), "config": self.config, "state_dict": state,
                                "extra": extra or {}}, path, kind="model")

    @classmethod
    def load(cls, path, map_location=None, manifold=None) -> "PoseFlow":
        """Load a flow saved by :meth:`save` (or a trainer checkpoint's model).

        Args:
            path: the checkpoint file.
            map_location: device to put the tensors on (like ``torch.load``).
            manifold: if given, the checkpoint must be for this manifold (clear error otherwise).
        """
        ck = load_checkpoint(path, map_location="cpu", kind=None)
        if ck.get("kind") not in ("model", "training"):
            raise ValueError(f"{str(path)!r} is a posegen '{ck.get('kind')}' checkpoint, not a model")
        flow = cls.from_state(ck["model"] if ck.get("kind") == "training" else ck, source=str(path))
        if manifold is not None and parse(manifold) != flow.manifold:
            raise ValueError(f"{str(path)!r} holds a flow on {flow.manifold!r}, not on {parse(manifold)!r}")
        if map_location is not None:
            flow.to(map_location)
        return flow

    @classmethod
    def from_state(cls, ck: Dict[str, Any], source: str = "checkpoint") -> "PoseFlow":
        """Rebuild from the plain-data dict of :meth:`state` (``config`` + ``state_dict``)."""
        try:
            config = dict(ck["config"])
            state = ck["state_dict"]
        except (KeyError, TypeError):
            raise ValueError(f"{source} has no model config/state_dict") from None
        spec = config.pop("manifold")
        try:
            flow = cls(spec, **config)
        except TypeError as e:
            raise ValueError(f"{source} has model settings this posegen does not know: {e}") from None
        # load_state_dict copies into the new (float32) tensors; keep the saved precision instead, so a
        # float64 flow loads as float64 and reproduces its samples and likelihoods exactly.
        if not isinstance(state, dict):
            raise ValueError(f"{source} has a state_dict of type {type(state).__name__}, expected a dict")
        loc = state.get("loc")
        if isinstance(loc, torch.Tensor) and loc.is_floating_point():
            flow.to(loc.dtype)
        try:
            missing, unexpected = flow.load_state_dict(state, strict=False)
        except RuntimeError as e:  # strict=False still raises on shape mismatches
            raise ValueError(f"{source} does not match a {spec!r} flow with these settings: "
                             f"{str(e).splitlines()[-1].strip()}") from None
        if missing or unexpected:
            raise ValueError(f"{source} does not match a {spec!r} flow with these settings "
                             f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})")
        return flow

    def state(self) -> Dict[str, Any]:
        """Plain-data description of this flow (config and tensors) for embedding in other checkpoints."""
        return {"manifold": repr(self.manifold), "config": self.config,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}
