r"""Spheres fitted to a link's collision geometry, with a stated error bound (torch, float64).

Method (a greedy set cover of surface samples by inscribed spheres, in the spirit of cuRobo's sphere fits):

1. ``n`` points ``p_i`` are drawn uniformly on the surface (area-weighted triangles, seeded); points on faces
   that lie inside another part of the geometry (winding number above 3/4: the inner faces of overlapping
   convex pieces) are dropped: they are not on the boundary of the solid.
2. Candidate centres ``c = p -+ t n`` step inward from a subset of the samples along the face normal, at
   depths ``t = tolerance / 2, tolerance, 2 tolerance, ...`` up to half the geometry's size; a candidate is
   kept when it is inside (winding number above 1/2), with radius ``r = dist(c, surface)`` (exact
   point-triangle distance): every candidate sphere lies inside the solid.
3. Candidate ``k`` *covers* sample ``i`` when ``|p_i - c_k| - r_k <= tolerance``. Spheres are picked greedily
   (the one covering the most uncovered samples) until every sample is covered; samples no candidate covers
   get candidates of their own at depth ``tolerance / 2`` (which cover them: ``t - r <= t``), so the cover
   always completes.

Guarantees, for a closed (watertight) surface: the union of the spheres lies inside the solid (a fitted
model raises no false alarm of its own), and every surface sample lies within ``tolerance`` of the union.
A surface point at most ``h`` from its nearest sample is within ``tolerance + h`` of the union (the distance
to the union is 1-Lipschitz); :func:`fit_link_spheres` reports the largest distance measured on an
independent surface sample (``LinkFit.surface_error``), the figure that the conservative model inflates by.
Open meshes (holes, inconsistent normals) keep the cover property on their samples; their inside is the
winding number's, which tolerates small holes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch

from .geometry import triangle_distance, winding_number

__all__ = ["LinkFit", "fit_link_spheres", "sample_surface", "sphere_union_distance"]

INNER_FACE_WINDING = 0.75        # a surface sample with a larger winding number is inside another part


@dataclass(frozen=True)
class LinkFit:
    """Spheres fitted to one link: ``centers (K, 3)``, ``radii (K,)`` float64 in the link frame;
    ``tolerance`` (m) the cover tolerance on the samples, ``sample_error`` the largest distance from a fitting
    sample to the union (<= tolerance), ``surface_error`` the largest distance from a surface point to the
    union measured on an independent sample of the same size (the fit's error on its surface, m; at least
    ``sample_error``), ``samples (N, 3)`` the surface samples covered."""

    centers: torch.Tensor
    radii: torch.Tensor
    tolerance: float
    sample_error: float
    surface_error: float
    samples: torch.Tensor = field(repr=False)

    @property
    def n_samples(self) -> int:
        return len(self.samples)


def sample_surface(triangles: torch.Tensor, n: int, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniform surface points ``(n, 3)`` of ``triangles (T, 3, 3)`` and the unit normals ``(n, 3)`` of
    their triangles (orientation as stored)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    cross = torch.linalg.cross(b - a, c - a)
    area = cross.norm(dim=-1)
    if not float(area.sum()) > 0:
        raise ValueError(f"geometry of {len(triangles)} triangles has zero area")
    idx = torch.multinomial(area / area.sum(), n, replacement=True, generator=generator)
    u, v = torch.rand(n, generator=generator, dtype=torch.float64), torch.rand(n, generator=generator,
                                                                                dtype=torch.float64)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    p = a[idx] + u[:, None] * (b - a)[idx] + v[:, None] * (c - a)[idx]
    return p, cross[idx] / area[idx, None].clamp_min(1e-300)


def sphere_union_distance(points: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor,
                          chunk: int = 4096) -> torch.Tensor:
    """``(N,)`` signed distance from ``points (N, 3)`` to the union of spheres ``centers (K, 3)``, ``radii
    (K,)``: ``min_k |p - c_k| - r_k`` (exact outside the union, negative inside)."""
    return torch.cat([(torch.cdist(points[i:i + chunk], centers) - radii).amin(-1)
                      for i in range(0, len(points), chunk)])


def _inward_candidates(p, nrm, depths, triangles):
    """Centres ``p - t n`` inside the solid (the normal's side is chosen per sample, by the winding number
    at the first depth: stored normals may point either way) and their inscribed radii ``dist(c, surface)``:
    ``(centers (M, 3), radii (M,))``."""
    first = torch.cat([p - depths[0] * nrm, p + depths[0] * nrm])
    w = winding_number(first, triangles).reshape(2, -1)
    sign = torch.where(w[0] >= w[1], -1.0, 1.0).to(p.dtype)
    c = (p[None] + sign[None, :, None] * depths[:, None, None] * nrm[None]).reshape(-1, 3)
    inside = torch.cat([w.amax(0) > 0.5, winding_number(c[len(p):], triangles) > 0.5])
    c = c[inside]
    r = triangle_distance(c, triangles)
    keep = r > 0
    return c[keep], r[keep]


def _cover(p, centers, radii, tolerance, chunk: int = 2048) -> torch.Tensor:
    """``(N, K)`` bool: sample i within ``tolerance`` of sphere k."""
    return torch.cat([(torch.cdist(p[i:i + chunk], centers) - radii) <= tolerance
                      for i in range(0, len(p), chunk)])


def _greedy_cover(cov: torch.Tensor, covered: torch.Tensor):
    """Greedy set cover: picked column indices, and the updated ``covered (N,)`` mask."""
    counts = cov[~covered].sum(0)
    picked = []
    while True:
        k = int(counts.argmax())
        if int(counts[k]) == 0:
            return picked, covered
        new = cov[:, k] & ~covered
        counts -= cov[new].sum(0)
        covered = covered | new
        picked.append(k)


def fit_link_spheres(triangles: torch.Tensor, tolerance: float = 0.005, *, seed: int = 0,
                     n_samples: Optional[int] = None, n_seeds: int = 400) -> LinkFit:
    """Spheres inside the solid bounded by ``triangles (T, 3, 3)`` (m) whose union comes within ``tolerance``
    (m) of every surface sample (see the module docstring for the method and its bound).

    Args:
        triangles: the link's collision surface in its frame (:func:`posegen.robots.geometry.link_triangles`).
        tolerance: cover tolerance on the samples (m).
        seed: seeds the surface samples and the candidate subset (same inputs and seed -> same spheres).
        n_samples: surface samples; default ``2 area / tolerance^2`` within ``[512, 12000]``.
        n_seeds: surface samples that seed inward candidates.
    """
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a finite number > 0 (metres), got {tolerance!r}")
    tri = triangles.to(torch.float64)
    if tri.dim() != 3 or tri.shape[1:] != (3, 3) or len(tri) == 0:
        raise ValueError(f"triangles must have shape (T, 3, 3) with T > 0, got {tuple(tri.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    area = float(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1).sum()) / 2
    n = n_samples or int(min(max(2 * area / tolerance ** 2, 512), 12000))
    p, nrm = sample_surface(tri, n, g)
    outer = winding_number(p, tri) < INNER_FACE_WINDING
    p, nrm = p[outer], nrm[outer]
    size = float((tri.reshape(-1, 3).amax(0) - tri.reshape(-1, 3).amin(0)).max())
    depths = [tolerance / 2]
    while depths[-1] * 2 < size / 2:
        depths.append(depths[-1] * 2)
    depths_t = torch.tensor(depths, dtype=torch.float64)
    sub = torch.randperm(len(p), generator=g)[:n_seeds]
    centers, radii = _inward_candidates(p[sub], nrm[sub], depths_t, tri)
    covered = torch.zeros(len(p), dtype=torch.bool)
    chosen_c, chosen_r = [], []
    for _ in range(8):
        if len(centers):
            picked, covered = _greedy_cover(_cover(p, centers, radii, tolerance), covered)
            chosen_c.append(centers[picked])
            chosen_r.append(radii[picked])
        if bool(covered.all()):
            break
        rest = (~covered).nonzero().flatten()
        centers, radii = _inward_candidates(p[rest], nrm[rest], depths_t[:1], tri)
        if not len(centers):         # open geometry with no inside here: spheres centred on the samples
            centers, radii = p[rest], torch.full((len(rest),), tolerance / 2, dtype=torch.float64)
    c, r = torch.cat(chosen_c), torch.cat(chosen_r)
    err = float(sphere_union_distance(p, c, r).max())
    check, _ = sample_surface(tri, n, g)
    check = check[winding_number(check, tri) < INNER_FACE_WINDING]
    check_err = float(sphere_union_distance(check, c, r).max()) if len(check) else err
    return LinkFit(c, r, float(tolerance), err, max(check_err, err), p)
