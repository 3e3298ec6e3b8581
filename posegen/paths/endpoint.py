r"""Where the CNFM path ends: the end point chosen from the data, and the density it is.

At ``t = 1`` the kernel-mixture path is a kernel density estimate (KDE) of the training points, and a CNFM
flow that learns its path exactly has that density: the end point's bandwidth caps the likelihood the model
can reach. (Fire on S2: the KDE at the former default ``kappa = 400`` scores -0.34 on the test split, and a
CNFM model trained for 20 minutes -0.32.) So the end point is chosen from the data, per factor, where the KDE
of the training points best predicts held-out training points:

* :func:`select_endpoint` holds out contiguous blocks of the rows (data stored as sequences, such as robot
  trajectories, is then not scored against its own neighbours in time, which would favour bandwidths far
  below the spacing of independent samples), scans a geometric grid of end points ``sigma_min`` (one for
  every factor, then each factor in turn with the others fixed) for the largest held-out log-likelihood,
  and rescales the winner to the full data set by the KDE rate ``(N_centres / N)^(1 / (d + 4))``.
* :func:`endpoint_kde_nll` is the diagnostic: the KDE of some training points at a path's end point, scored
  on validation points. A model whose validation NLL sits at this figure is limited by its path, not by
  its network. It is not a hard floor: a network trained on a sharp target smooths it where the KDE
  overfits (the published CNFM earth figures lie below the best KDE of each set).

``sigma_min`` is the end point in the noise-to-signal units of :class:`~posegen.paths.schedules.Schedule`:
``sigma_1`` of the Gaussian kernels (standardised R^d, interval charts) and ``kappa_1 = 1 / sigma_min^2`` of
the von Mises and vMF kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from ..manifolds import Manifold, Product, parse
from .families import kernel_family
from .mixture import MixturePath
from .schedules import FactorSchedule, Schedule

#: the end points considered: sigma_min = 2^(-k/4), 0.5 down to 2^-11 (kappa_1 from 4 to 4.2e6); the joint
#: scan visits every other one, then the neighbours of its best
GRID = tuple(2.0 ** (-k / 4) for k in range(4, 45))
#: most entries of the (held-out x centres) statistics kept at once, over all factors (128 MB in float64)
MAX_ENTRIES = 1 << 24


@dataclass
class EndpointChoice:
    """What :func:`select_endpoint` found.

    ``sigma_min``: the chosen end point per factor (after the rate correction); ``holdout_nll``: the held-out
    NLL per point at the chosen grid point (before the correction, flow coordinates); ``n_holdout``,
    ``n_centres``: the split it was scored on; ``scan``: ``(common sigma_min, held-out NLL)`` of the first,
    joint scan; ``scale``: the factor applied to the KDE-optimal end points (``sigma_min`` includes it)."""

    sigma_min: List[float]
    holdout_nll: float
    n_holdout: int
    n_centres: int
    rate_factor: float
    scan: List[tuple] = field(default_factory=list)
    scale: float = 1.0

    def schedule(self, manifold: Manifold, kind: str = "linear") -> FactorSchedule:
        """The :class:`~posegen.paths.schedules.FactorSchedule` of shape ``kind`` ending here."""
        factors = _factors(manifold)
        return FactorSchedule(kind, self.sigma_min, dims=[f.dim for f in factors])


def _factors(manifold: Manifold) -> list:
    return list(manifold.factors) if isinstance(manifold, Product) else [manifold]


def _as_product(manifold) -> Product:
    m = parse(manifold) if isinstance(manifold, str) else manifold
    return m if isinstance(m, Product) else Product(m)


def _split_rows(n: int, blocks: int, held_blocks: int):
    """``(held-out rows, centre rows)``: ``held_blocks`` of ``blocks`` contiguous blocks, spread evenly."""
    edges = [round(i * n / blocks) for i in range(blocks + 1)]
    step = blocks / held_blocks
    held = {int(i * step + step / 2) for i in range(held_blocks)}
    ho = [torch.arange(edges[b], edges[b + 1]) for b in range(blocks) if b in held]
    ce = [torch.arange(edges[b], edges[b + 1]) for b in range(blocks) if b not in held]
    return torch.cat(ho), torch.cat(ce)


def _strided(rows: torch.Tensor, m: int) -> torch.Tensor:
    """At most ``m`` of ``rows``, evenly strided (deterministic)."""
    if rows.numel() <= m:
        return rows
    return rows[torch.linspace(0, rows.numel() - 1, m).round().long()]


class _Scorer:
    """Held-out mean log-likelihood of the KDE for per-factor end points, from per-factor statistics kept
    between calls (a grid point costs one elementwise log-kernel, a sum and a logsumexp)."""

    def __init__(self, M: Product, held: torch.Tensor, centres: torch.Tensor):
        self.M = M
        one = torch.ones(held.shape[0], 1, dtype=held.dtype)
        self.stats, self.logdet = [], held.new_zeros(held.shape[0])
        for f, xh, yc in zip(M.factors, M.split(held), M.split(centres)):
            xk, ld = f.kernel_coords(xh)
            self.stats.append(kernel_family(f).pairwise_statistic(xk, f.kernel_coords(yc)[0], one, Schedule()))
            self.logdet = self.logdet + ld
        self.log_n = math.log(centres.shape[0])

    def log_kernel(self, i: int, sigma_min: float) -> torch.Tensor:
        f = self.M.factors[i]
        t = torch.ones((), dtype=self.stats[i].dtype)
        return kernel_family(f).log_kernel(f, self.stats[i], t, Schedule(sigma_min=sigma_min))

    def nll(self, total: torch.Tensor) -> float:
        return float(-(torch.logsumexp(total, 1) - self.log_n + self.logdet).mean())


def select_endpoint(manifold, data: torch.Tensor, *, blocks: int = 10, held_blocks: int = 2,
                    max_holdout: int = 2048, sweeps: int = 2, grid: Sequence[float] = GRID,
                    scale: float = 1.0) -> EndpointChoice:
    """Choose the CNFM path's end point of every factor from ``data (N, coord_dim)`` (flow coordinates).

    Args:
        manifold: a factor, a :class:`~posegen.manifolds.Product` or a spec string.
        data: the training points, ``N >= 2``, in flow coordinates (Euclidean columns standardised).
        blocks, held_blocks: the rows are cut into ``blocks`` contiguous blocks, of which ``held_blocks``
            (spread evenly) are held out and the rest are the KDE's centres.
        max_holdout: held-out rows scored at most (evenly strided); the centres are as many as fit in
            :data:`MAX_ENTRIES` entries over all factors.
        sweeps: most passes over the factors after the joint scan (products only; each factor's end point moves
            along the grid while the held-out NLL falls).
        grid: the candidate end points ``sigma_min``, in ``(0, 1)``.
        scale: every chosen end point is multiplied by this (> 0; 1: the KDE-optimal bandwidths).

    Returns an :class:`EndpointChoice`; ``choice.schedule(manifold, kind)`` is the path's schedule.
    Deterministic (no random numbers); float64 inside. Cost on fire (S2, 10 250 points): 13 s of one CPU
    thread on this project's shared 2-core CPU under load (``benchmarks/cnfm_endpoint.py``).
    """
    M = _as_product(manifold)
    if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[1] != M.coord_dim or data.shape[0] < 2:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"select_endpoint: data must be a tensor of shape (N, {M.coord_dim}) with N >= 2 for "
                         f"{M!r}, got {got}")
    scale = check_scale(scale, "select_endpoint: scale")
    if not 1 <= held_blocks < blocks:
        raise ValueError(f"select_endpoint: need 1 <= held_blocks < blocks, got held_blocks={held_blocks}, "
                         f"blocks={blocks}")
    grid = sorted({float(s) for s in grid}, reverse=True)
    if not grid or not all(0 < s < 1 for s in grid):
        raise ValueError(f"select_endpoint: grid must hold end points in (0, 1), got {list(grid)}")
    n = data.shape[0]
    x = M.projx(data.detach().to("cpu", torch.float64))
    blocks = min(blocks, n)
    held_blocks = min(held_blocks, blocks - 1)
    held, centres = _split_rows(n, blocks, held_blocks)
    held = _strided(held, max_holdout)
    centres = _strided(centres, max(1, MAX_ENTRIES // (held.numel() * len(M.factors))))
    scorer = _Scorer(M, x[held], x[centres])
    k = len(M.factors)

    # one end point for every factor (every other grid point, then the two between which the best lies),
    # then each factor in turn with the others fixed
    joint = {}

    def score(j):
        if j not in joint:
            joint[j] = scorer.nll(sum(scorer.log_kernel(i, grid[j]) for i in range(k)))
        return joint[j]

    best = min(range(0, len(grid), 2), key=score)
    best = min([j for j in (best - 1, best, best + 1) if 0 <= j < len(grid)], key=score)
    scan = [(grid[j], joint[j]) for j in sorted(joint)]
    ends, value = [best] * k, joint[best]
    if k > 1:
        ends, value = _coordinate_search(scorer, grid, ends, value, sweeps)
    # the KDE's best bandwidth shrinks like N^(-1 / (d + 4)): from the centres scored to all N points
    rate = (centres.numel() / n) ** (1.0 / (M.dim + 4))
    return EndpointChoice([grid[j] * rate * scale for j in ends], value, int(held.numel()), int(centres.numel()),
                          rate, scan, scale)


def check_scale(scale, name: str = "scale") -> float:
    """A multiple of the chosen end point as a float: a finite number > 0 (bools and strings refused), else
    ValueError ``"<name> must be a finite number > 0, got ..."``."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < float(scale) < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {scale!r}")
    return float(scale)


def _coordinate_search(scorer: _Scorer, grid: list, ends: list, value: float, sweeps: int):
    """Per-factor grid indices ``ends`` improved one factor at a time, each moved by up to two grid steps
    while the held-out NLL falls, for at most ``sweeps`` passes; ``(ends, value)``."""
    k = len(ends)
    parts = [scorer.log_kernel(i, grid[ends[i]]) for i in range(k)]
    for _ in range(sweeps):
        moved = False
        for i in range(k):
            rest = sum(parts[j] for j in range(k) if j != i)
            while True:
                trials = [j for j in (ends[i] - 2, ends[i] - 1, ends[i] + 1, ends[i] + 2) if 0 <= j < len(grid)]
                scored = [(scorer.nll(rest + scorer.log_kernel(i, grid[j])), j) for j in trials]
                v, j = min(scored)
                if v >= value:
                    break
                value, ends[i], moved = v, j, True
            parts[i] = scorer.log_kernel(i, grid[ends[i]])
        if not moved:
            break
    return ends, value


def endpoint_kde_nll(path_or_objective, train_x: torch.Tensor, val_x: torch.Tensor,
                     chunk_size: Optional[int] = None) -> float:
    """The KDE of ``train_x`` at a path's end point (``t = 1``), scored on ``val_x``: mean NLL per point.

    Args:
        path_or_objective: a :class:`~posegen.paths.MixturePath`, or an objective holding one in ``.path``
            (CNFM after ``setup``).
        train_x: ``(N, coord_dim)`` centres; val_x: ``(M, coord_dim)`` points scored; both in the path's
            (flow) coordinates, Euclidean columns standardised.
        chunk_size: centres processed at once (default: the path's).

    Returns the NLL in nats per point w.r.t. the volume of the flow coordinates (add ``flow.log_abs_det``
    to compare with ``flow.log_prob`` of user-unit points; :meth:`posegen.objectives.CNFM.diagnostics` does).
    Computed in float64 with every centre (no subsets); conditions are ignored (the marginal KDE).
    """
    path = getattr(path_or_objective, "path", path_or_objective)
    if path is None:
        raise ValueError("endpoint_kde_nll: the objective has no path yet: call objective.setup(flow, data) first")
    if not isinstance(path, MixturePath):
        raise TypeError(f"endpoint_kde_nll: expected a MixturePath or an objective with one in .path, got "
                        f"{type(path_or_objective).__name__}")
    M = path.manifold
    for name, a in (("train_x", train_x), ("val_x", val_x)):
        if not isinstance(a, torch.Tensor) or a.dim() != 2 or a.shape[1] != M.coord_dim or a.shape[0] < 1:
            got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise ValueError(f"endpoint_kde_nll: {name} must be a tensor of shape (N, {M.coord_dim}) with N >= 1 "
                             f"for {M!r}, got {got}")
    y = M.projx(train_x.detach().to(path.data.device, torch.float64))
    x = M.projx(val_x.detach().to(path.data.device, torch.float64))
    kde = MixturePath(M, y, schedule=path.schedule, chunk_size=chunk_size or path.chunk_size)
    with torch.no_grad():
        return float(-kde.log_prob(x, 1.0).mean())
