"""Figures: densities and samples on each kind of factor, and training curves. PNG files, one per call.

matplotlib is optional (``pip install posegen[plot]``) and imported only when a figure is drawn. Figures are
built with :class:`matplotlib.figure.Figure` and its Agg canvas, never with ``pyplot``, so plotting
neither needs a display nor changes the caller's matplotlib backend or global state.

Conventions of the inputs: points ``(N, coord_dim)`` as posegen stores them (tensors or arrays):
positions in R^d as is; torus angles in radians in ``[-pi, pi)``; S2 unit vectors ``(N, 3)`` (latitude
``asin z``, longitude ``atan2(y, x)``); rotations as unit quaternions ``(N, 4)``, xyzw (q and -q the same).
Data are drawn in grey, model samples in orange. Every function returns the path it wrote.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .manifolds import parse
from .optional import require
from .rotations import quat_to_rotmat, quat_to_rotvec

DATA_COLOR = "0.35"
SAMPLE_COLOR = "tab:orange"
MAX_SCATTER = 4000  # points drawn per cloud: enough to show the shape, few enough to stay fast
DPI = 110


def _figure(figsize, layout: Optional[str] = "constrained"):
    """A new Agg-backed Figure, or an ImportError that says how to install matplotlib."""
    figure = require("matplotlib.figure", extra="plot", purpose="plots", alternative="pip install matplotlib")
    agg = require("matplotlib.backends.backend_agg", extra="plot", purpose="plots",
                  alternative="pip install matplotlib")
    fig = figure.Figure(figsize=figsize, dpi=DPI, layout=layout)
    agg.FigureCanvasAgg(fig)
    return fig


def _save(fig, out) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The constrained layout already fits labels in; bbox_inches="tight" would draw the figure twice.
    fig.savefig(out, format="png")
    return out


def _np(x, width: Optional[int] = None, name: str = "points") -> Optional[np.ndarray]:
    """``x`` as a float64 array ``(N, width)``, None stays None; thinned to :data:`MAX_SCATTER` rows with a
    fixed seed (plots of the same inputs are identical)."""
    if x is None:
        return None
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or (width is not None and a.shape[1] != width):
        raise ValueError(f"{name} must have shape (N, {width if width is not None else 'd'}), got {a.shape}")
    if a.shape[0] > MAX_SCATTER:
        idx = np.sort(np.random.default_rng(0).choice(a.shape[0], MAX_SCATTER, replace=False))
        a = a[idx]
    return a


def _clouds(samples, data, width, what: str):
    s, d = _np(samples, width, "samples"), _np(data, width, "data")
    if s is None and d is None:
        raise ValueError(f"{what}: give samples= or data= (or both)")
    return s, d


def _marker(pts: np.ndarray) -> float:
    """Marker area: small points for big clouds, visible ones for a few dozen."""
    return 2.0 if pts.shape[0] > 1000 else 5.0 if pts.shape[0] > 200 else 9.0


def _scatter(ax, pts, i, j, color, label):
    if pts is not None:
        ax.scatter(pts[:, i], pts[:, j], s=_marker(pts), c=color, alpha=0.45, linewidths=0, label=label,
                   rasterized=True)


# ---------------------------------------------------------------------- training curves
def read_metrics(path) -> List[Dict]:
    """Records of a ``metrics.jsonl`` file, one per step, in step order; a step logged twice (a resumed
    run repeats the steps after its last checkpoint) keeps its last record."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"metrics file '{path}' does not exist")
    by_step: Dict[int, Dict] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"'{path}' line {n} is not JSON: {line[:60]!r}") from None
        if isinstance(rec, dict) and "step" in rec:
            by_step[int(rec["step"])] = {**by_step.get(int(rec["step"]), {}), **rec}
    return [by_step[k] for k in sorted(by_step)]


def plot_training_curves(metrics, out, title: Optional[str] = None) -> Path:
    """Training loss and validation NLL (nats) against the step, from a ``metrics.jsonl`` path or its
    records (dicts with ``step`` and ``loss`` and/or ``val_nll``)."""
    recs = read_metrics(metrics) if isinstance(metrics, (str, Path)) else list(metrics)
    loss = [(r["step"], r["loss"]) for r in recs if r.get("loss") is not None]
    val = [(r["step"], r["val_nll"]) for r in recs if r.get("val_nll") is not None]
    if not loss and not val:
        raise ValueError("no training records with 'loss' or 'val_nll' to plot")
    fig = _figure((10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    if loss:
        ax1.plot(*zip(*loss), color="tab:blue", lw=1.2)
        # Objectives whose loss can go negative (Moser's NLL) need a linear axis; others read better in log.
        if min(v for _, v in loss) > 0 and max(v for _, v in loss) / min(v for _, v in loss) > 20:
            ax1.set_yscale("log")
    else:
        ax1.text(0.5, 0.5, "no loss records", ha="center", va="center", transform=ax1.transAxes)
    ax1.set(xlabel="step", ylabel="training loss", title="training loss")
    if val:
        ax2.plot(*zip(*val), "o-", color="tab:red", lw=1.2, ms=3)
        best = min(val, key=lambda sv: sv[1])
        ax2.axhline(best[1], color="0.6", lw=0.8, ls="--")
        ax2.set_title(f"validation NLL (best {best[1]:.4g} at step {best[0]})")
    else:
        ax2.text(0.5, 0.5, "no validation records", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_title("validation NLL")
    ax2.set(xlabel="step", ylabel="NLL (nats)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


# ---------------------------------------------------------------------- S2: world map
def _latlon(x: np.ndarray):
    lat = np.arctan2(x[:, 2], np.hypot(x[:, 0], x[:, 1]))
    lon = np.arctan2(x[:, 1], x[:, 0])
    return lat, lon


def sphere_density_grid(flow, grid: int = 72, condition=None, solver: Optional[dict] = None):
    """``(lon_edges, lat_edges, density)`` of a flow on S2 over a ``grid x 2 grid`` lat/lon grid
    (radians; density ``(grid, 2 grid)`` w.r.t. surface measure, from ``flow.log_prob`` at cell centres)."""
    lat_e = np.linspace(-math.pi / 2, math.pi / 2, grid + 1)
    lon_e = np.linspace(-math.pi, math.pi, 2 * grid + 1)
    lat_c, lon_c = (lat_e[1:] + lat_e[:-1]) / 2, (lon_e[1:] + lon_e[:-1]) / 2
    LON, LAT = np.meshgrid(lon_c, lat_c)
    pts = np.stack([np.cos(LAT) * np.cos(LON), np.cos(LAT) * np.sin(LON), np.sin(LAT)], -1).reshape(-1, 3)
    x = torch.as_tensor(pts, dtype=flow.dtype)
    lp = flow.log_prob(x, condition, **(solver or {}))
    return lon_e, lat_e, lp.exp().reshape(grid, 2 * grid).cpu().double().numpy()


def plot_sphere(out, samples=None, data=None, flow=None, *, grid: int = 72, condition=None,
                solver: Optional[dict] = None, title: Optional[str] = None) -> Path:
    """Points on S2 ``(N, 3)`` on Mollweide world maps: the model density (colour map of
    ``flow.log_prob`` on a lat/lon grid) when ``flow`` (a PoseFlow on S2) is given, the data and the
    samples, one map each."""
    counts = {"samples": None if samples is None else len(samples), "data": None if data is None else len(data)}
    s, d = _np(samples, 3, "samples"), _np(data, 3, "data")
    if s is None and d is None and flow is None:
        raise ValueError("plot_sphere: give samples=, data= or flow=")
    panels = []
    if flow is not None:
        if repr(flow.manifold.geometry) != "S2":   # S2 with model options (S2[fourier=6]) too
            raise ValueError(f"plot_sphere draws densities of flows on S2, got a flow on {flow.manifold!r}")
        panels.append("density")
    panels += [p for p, v in (("data", d), ("samples", s)) if v is not None]
    fig = _figure((6.2 * len(panels), 3.6))
    axes = [fig.add_subplot(1, len(panels), k + 1, projection="mollweide") for k in range(len(panels))]
    for ax, panel in zip(axes, panels):
        if panel == "density":
            from matplotlib.colors import LogNorm

            lon_e, lat_e, dens = sphere_density_grid(flow, grid, condition, solver)
            # Learned densities are peaked (volcano chains, fault lines): a log colour scale over three
            # decades shows the tails that a linear one paints flat.
            top = float(dens.max())
            norm = LogNorm(vmin=max(top * 1e-3, float(dens.min()), 1e-12), vmax=max(top, 1e-12), clip=True)
            mesh = ax.pcolormesh(lon_e, lat_e, dens, cmap="viridis", norm=norm, shading="flat", rasterized=True)
            fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.05, pad=0.06,
                         label="density per steradian (log scale)")
            if d is not None:
                lat, lon = _latlon(d)
                ax.scatter(lon, lat, s=1, c="white", alpha=0.35, linewidths=0, rasterized=True)
            ax.set_title("model density" + (" (white: data)" if d is not None else ""))
        else:
            pts, color = (d, DATA_COLOR) if panel == "data" else (s, SAMPLE_COLOR)
            lat, lon = _latlon(pts)
            ax.scatter(lon, lat, s=2, c=color, alpha=0.6, linewidths=0, rasterized=True)
            shown = f"{pts.shape[0]} of {counts[panel]} shown" if pts.shape[0] < counts[panel] else \
                f"n={pts.shape[0]}"
            ax.set_title(f"{panel} ({shown})")
        ax.grid(alpha=0.3)
        ax.set_xticklabels([])
    if title:
        fig.suptitle(title)
    return _save(fig, out)


# ---------------------------------------------------------------------- tori and joints: corner grid of pairs
def _wrap_title(text: str, fig_width: float, fontsize: float) -> str:
    """``text`` broken into lines that fit a figure ``fig_width`` inches wide (an average glyph is about
    0.55 em), so that a long title is never cut off at the figure's edges."""
    per_line = max(20, int(fig_width * 72 / (0.55 * fontsize)))
    return textwrap.fill(text, per_line, break_on_hyphens=False)


def _range_ticks(ax, axis: str, lim, angles: bool) -> None:
    """Ticks at both ends of ``lim`` (and 0 between -pi and pi for angles), the end labels aligned inwards:
    each label stays over its own panel, so the labels of neighbouring panels never overlap."""
    ticks, labels = (([-math.pi, 0.0, math.pi], ["-π", "0", "π"]) if angles else
                     (list(lim), [f"{v:.2f}" for v in lim]))
    which = ax.xaxis if axis == "x" else ax.yaxis
    which.set_ticks(ticks, labels, fontsize=7)
    first, last = which.get_major_ticks()[0].label1, which.get_major_ticks()[-1].label1
    if axis == "x":
        first.set_horizontalalignment("left")
        last.set_horizontalalignment("right")
    else:
        first.set_verticalalignment("bottom")
        last.set_verticalalignment("top")


def _pair_panel(ax, i: int, j: int, s, d, lims) -> None:
    """Panel ``(i, j)`` of the corner grid. The pair of coordinates ``a < b`` is drawn twice with the same
    axes, x = coordinate ``a`` and y = coordinate ``b``: data at ``(b, a)`` below the diagonal, samples at
    ``(a, b)`` above it, so that mirrored panels compare like with like."""
    a, b = min(i, j), max(i, j)
    pts, color = (d, DATA_COLOR) if i > j else (s, SAMPLE_COLOR)
    if pts is not None:
        ax.scatter(pts[:, a], pts[:, b], s=_marker(pts), c=color, alpha=0.5, linewidths=0, rasterized=True)
    ax.set_xlim(lims[a])
    ax.set_ylim(lims[b])


def plot_torus_pairs(out, samples=None, data=None, *, names: Optional[Sequence[str]] = None,
                     max_angles: int = 8, title: Optional[str] = None, bounds=None) -> Path:
    """Angles or joints ``(N, n)`` as a corner grid: histograms of each coordinate on the diagonal (data and
    samples), data below the diagonal and samples above it, one panel per pair (a T7 or I7 gives 7 x 7).

    The pair ``a < b`` is drawn with x = coordinate ``a`` and y = coordinate ``b`` in both of its panels (data
    at row ``b``, column ``a``; samples at the mirror position, row ``a``, column ``b``), so the samples
    triangle reads like the data triangle; tick labels are on the outer row and column (the data panels).
    Only the first ``max_angles`` coordinates are drawn. ``bounds (n, 2)`` sets each axis range (joint
    limits); the default is ``[-pi, pi]`` for every angle."""
    s, d = _np(samples, None, "samples"), _np(data, None, "data")
    if s is None and d is None:
        raise ValueError("plot_torus_pairs: give samples= or data= (or both)")
    n = (s if s is not None else d).shape[1]
    if s is not None and d is not None and s.shape[1] != d.shape[1]:
        raise ValueError(f"samples have {s.shape[1]} angles but data have {d.shape[1]}")
    k = min(n, max_angles)
    names = list(names) if names is not None else [f"angle {i}" for i in range(n)]
    box = None if bounds is None else np.asarray(torch.as_tensor(bounds, dtype=torch.float64))
    lims = [(-math.pi, math.pi) if box is None else (float(box[i, 0]), float(box[i, 1])) for i in range(k)]
    what = ("data below the diagonal, samples above it (each pair on the same axes as its data panel)"
            if s is not None and d is not None else "data" if d is not None else "samples")
    kind = "angle pairs (rad)" if box is None else "joint pairs"
    size = 1.8 if k > 2 else 3.0
    width = size * k + 0.8
    text = _wrap_title((title + ": " if title else "") + f"{kind}; {what}", width, 10)
    top_in = 0.2 + (text.count("\n") + 1) * 10 * 1.35 / 72   # the title's lines, in inches
    # Many small axes: no layout engine, margins in inches, ticks on the outer row and column only (each tick
    # and layout pass costs time per axes, and a 7-joint grid has 49 of them).
    fig = _figure((width, size * k + 0.45 + top_in), layout=None)
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=0.6 / w, right=1 - 0.15 / w, bottom=0.45 / h, top=1 - top_in / h,
                        wspace=0.06, hspace=0.06)
    axes = np.atleast_2d(fig.subplots(k, k, squeeze=False))
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                bins = np.linspace(lims[i][0], lims[i][1], 37)
                if d is not None:
                    ax.hist(d[:, i], bins=bins, density=True, color=DATA_COLOR, alpha=0.5, label="data")
                if s is not None:
                    ax.hist(s[:, i], bins=bins, density=True, histtype="step", color=SAMPLE_COLOR, lw=1.5,
                            label="samples")
                ax.set_xlim(lims[i])
            else:
                _pair_panel(ax, i, j, s, d, lims)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == k - 1:
                _range_ticks(ax, "x", lims[j], box is None)
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0 and i != j:
                _range_ticks(ax, "y", lims[i], box is None)
                ax.set_ylabel(names[i], fontsize=8)
    if k == 1:
        axes[0, 0].legend(fontsize=7)
    fig.suptitle(text, fontsize=10, y=1 - 0.1 / h, va="top")
    return _save(fig, out)


# ---------------------------------------------------------------------- rotations: axis-angle
def quat_to_rotvec_np(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(N, 4)``, xyzw, to rotation vectors ``(N, 3)`` of norm in [0, pi] (the shortest
    arc: q and -q give the same vector)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return quat_to_rotvec(torch.as_tensor(q), order="xyzw").numpy()


def quat_to_axes_np(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(N, 4)``, xyzw, to the rotated body axes ``(N, 3, 3)``: ``[:, :, k]`` is
    ``R e_k`` (the columns of the rotation matrix), the same for q and -q."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return quat_to_rotmat(torch.as_tensor(q), order="xyzw").numpy()


def plot_rotations(out, samples=None, data=None, *, title: Optional[str] = None) -> Path:
    """Rotations (unit quaternions ``(N, 4)``, xyzw), data against samples, two ways.

    Top row: axis-angle vectors ``theta * axis`` in the ball of radius pi (three 2-D projections) and a
    histogram of the rotation angle. Axis-angle coordinates jump across the ball near ``theta = pi``
    (antipodal boundary points are one rotation), so the bottom row also shows the rotated frame: where each
    body axis ``R e_x, R e_y, R e_z`` points, as azimuth and elevation in degrees (for a gripper, ``R e_z``
    is the approach direction).
    """
    s, d = _clouds(samples, data, 4, "plot_rotations")
    rs = None if s is None else quat_to_rotvec_np(s)
    rd = None if d is None else quat_to_rotvec_np(d)
    fig = _figure((15, 7.2))
    axes = fig.subplots(2, 4)
    lab = ("rx", "ry", "rz")
    t = np.linspace(0, 2 * math.pi, 200)
    for ax, (i, j) in zip(axes[0, :3], ((0, 1), (0, 2), (1, 2))):
        ax.plot(math.pi * np.cos(t), math.pi * np.sin(t), color="0.8", lw=0.8)
        _scatter(ax, rd, i, j, DATA_COLOR, "data")
        _scatter(ax, rs, i, j, SAMPLE_COLOR, "samples")
        ax.set(xlabel=f"{lab[i]} (rad)", ylabel=f"{lab[j]} (rad)", xlim=(-3.3, 3.3), ylim=(-3.3, 3.3))
        ax.set_aspect("equal")
    axes[0, 0].legend(fontsize=7, markerscale=3, loc="upper right")
    bins = np.linspace(0, math.pi, 37)
    for r, color, label, kw in ((rd, DATA_COLOR, "data", {"alpha": 0.5}),
                                (rs, SAMPLE_COLOR, "samples", {"histtype": "step", "lw": 1.5})):
        if r is not None:
            axes[0, 3].hist(np.linalg.norm(r, axis=1), bins=bins, density=True, color=color, label=label, **kw)
    axes[0, 3].set(xlabel="rotation angle (rad)", ylabel="density", title="rotation angle")
    frames = [None if q is None else quat_to_axes_np(q) for q in (d, s)]
    for k, ax in enumerate(axes[1, :3]):
        for f, color, label in zip(frames, (DATA_COLOR, SAMPLE_COLOR), ("data", "samples")):
            if f is not None:
                v = f[:, :, k]
                az = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
                el = np.degrees(np.arcsin(np.clip(v[:, 2], -1.0, 1.0)))
                ax.scatter(az, el, s=_marker(v), c=color, alpha=0.45, linewidths=0, label=label, rasterized=True)
        ax.set(xlabel="azimuth (deg)", ylabel="elevation (deg)", xlim=(-180, 180), ylim=(-90, 90),
               title=f"body {'xyz'[k]} axis R e_{'xyz'[k]}")
        ax.set_xticks([-180, -90, 0, 90, 180])
        ax.set_yticks([-90, -45, 0, 45, 90])
        ax.grid(alpha=0.3)
    axes[1, 3].axis("off")
    fig.suptitle((title + ": " if title else "") + "rotations: axis-angle vectors (top), rotated frames (bottom)",
                 fontsize=10)
    return _save(fig, out)


# ---------------------------------------------------------------------- positions: 2-D projections
def plot_positions(out, samples=None, data=None, *, names: Optional[Sequence[str]] = None,
                   title: Optional[str] = None) -> Path:
    """Points in R^d ``(N, d)``: a histogram for d = 1, one scatter for d = 2, and the projections on the
    coordinate planes (0,1), (0,2), (1,2) for d >= 3 (the first three coordinates), data against samples."""
    s, d = _np(samples, None, "samples"), _np(data, None, "data")
    if s is None and d is None:
        raise ValueError("plot_positions: give samples= or data= (or both)")
    dim = (s if s is not None else d).shape[1]
    if s is not None and d is not None and s.shape[1] != d.shape[1]:
        raise ValueError(f"samples have {s.shape[1]} coordinates but data have {d.shape[1]}")
    names = list(names) if names is not None else [f"x{i}" for i in range(dim)]
    if dim == 1:
        fig = _figure((5, 3.8))
        ax = fig.subplots()
        for pts, color, label, kw in ((d, DATA_COLOR, "data", {"alpha": 0.5}),
                                      (s, SAMPLE_COLOR, "samples", {"histtype": "step", "lw": 1.5})):
            if pts is not None:
                ax.hist(pts[:, 0], bins=50, density=True, color=color, label=label, **kw)
        ax.set(xlabel=names[0], ylabel="density")
        ax.legend(fontsize=7)
    else:
        pairs = [(0, 1)] if dim == 2 else [(0, 1), (0, 2), (1, 2)]
        fig = _figure((4.6 * len(pairs), 4.2))
        axes = np.atleast_1d(fig.subplots(1, len(pairs)))
        for ax, (i, j) in zip(axes, pairs):
            _scatter(ax, d, i, j, DATA_COLOR, "data")
            _scatter(ax, s, i, j, SAMPLE_COLOR, "samples")
            ax.set(xlabel=names[i], ylabel=names[j])
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, markerscale=4)
    fig.suptitle((title + ": " if title else "") + "positions", fontsize=10)
    return _save(fig, out)


# ---------------------------------------------------------------------- end-effector workspace
def plot_workspace(out, samples=None, data=None, *, title: Optional[str] = None) -> Path:
    """End-effector positions ``(N, 3)`` in metres (the robot's forward kinematics of sampled and of recorded
    joints, in its base frame) on the x-y (top view), x-z and y-z planes, data against samples. The three
    panels share one scale (equal axes, the same span), so distances read the same in every view."""
    s, d = _clouds(samples, data, 3, "plot_workspace")
    both = np.concatenate([p for p in (s, d) if p is not None])
    lo, hi = both.min(0), both.max(0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3) * 1.05
    fig = _figure((13.5, 4.6))
    axes = fig.subplots(1, 3)
    for ax, (i, j) in zip(axes, ((0, 1), (0, 2), (1, 2))):
        _scatter(ax, d, i, j, DATA_COLOR, "data")
        _scatter(ax, s, i, j, SAMPLE_COLOR, "samples")
        ax.set(xlabel=f"{'xyz'[i]} (m)", ylabel=f"{'xyz'[j]} (m)", xlim=(centre[i] - half, centre[i] + half),
               ylim=(centre[j] - half, centre[j] + half))
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, markerscale=4, loc="upper right")
    head = (title + ": " if title else "") + "end-effector positions (forward kinematics), x-y, x-z, y-z"
    fig.suptitle(_wrap_title(head, 13.5, 10), fontsize=10)
    return _save(fig, out)


# ---------------------------------------------------------------------- one figure per factor
def _safe_name(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def plot_samples_vs_data(out_dir, manifold, samples=None, data=None, flow=None, *,
                         labels: Optional[Sequence[str]] = None, prefix: str = "samples", grid: int = 72,
                         solver: Optional[dict] = None) -> List[Path]:
    """One figure per factor of ``manifold`` comparing model samples with data (both ``(N, coord_dim)``):
    R^d -> :func:`plot_positions`, T^n -> :func:`plot_torus_pairs`, SO3 and S3 (as quaternions xyzw) ->
    :func:`plot_rotations`,
    S2 -> :func:`plot_sphere` (with the model density when ``flow`` is an unconditional flow on S2 alone),
    other spheres -> projections of their coordinates. Files are ``<prefix>_<label>.png`` in ``out_dir``;
    ``labels`` name the factors (default ``<index>_<spec>``). Returns the paths written."""
    M = parse(manifold)
    labels = list(labels) if labels is not None else [f"{i}_{f.spec}" for i, f in enumerate(M.factors)]
    if len(labels) != len(M.factors):
        raise ValueError(f"labels has {len(labels)} names but {M!r} has {len(M.factors)} factors")
    s = None if samples is None else torch.as_tensor(samples)
    d = None if data is None else torch.as_tensor(data)
    for name, x in (("samples", s), ("data", d)):
        if x is not None and (x.dim() != 2 or x.shape[1] != M.coord_dim):
            raise ValueError(f"{name} must have shape (N, {M.coord_dim}) for {M!r}, got {tuple(x.shape)}")
    s_parts = M.split(s) if s is not None else [None] * len(M.factors)
    d_parts = M.split(d) if d is not None else [None] * len(M.factors)
    out_dir = Path(out_dir)
    paths = []
    for i, (f, label, sp, dp) in enumerate(zip(M.factors, labels, s_parts, d_parts)):
        out = out_dir / f"{prefix}_{_safe_name(label)}.png"
        short = f.spec.split("[", 1)[0]  # "I7", not the 150 characters of its limits
        title = label if label in (f.spec, f"{i}_{f.spec}") else f"{label} ({short})"
        kind = f.plot_kind  # each factor says how it is drawn
        if kind == "positions" and f.coord_dim == 3:
            names = [f"{label}.{c}" for c in "xyz"]
            paths.append(plot_positions(out, sp, dp, names=names, title=title))
        elif kind == "angles":
            names = [f"q{i}" for i in range(f.coord_dim)]
            paths.append(plot_torus_pairs(out, sp, dp, names=names, title=title, bounds=f.bounds))
        elif kind == "rotations":
            paths.append(plot_rotations(out, sp, dp, title=title))
        elif kind == "sphere":
            use_flow = flow if (flow is not None and len(M.factors) == 1 and not flow.cond_dim) else None
            paths.append(plot_sphere(out, sp, dp, use_flow, grid=grid, solver=solver, title=title))
        else:
            paths.append(plot_positions(out, sp, dp, title=title))
    return paths
