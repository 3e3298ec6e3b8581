"""Does a gripper at grasp ``T`` overlap the object or cross a support plane? Batched over grasps.

The gripper is a set of boxes (:mod:`posegen.grasps.gripper`); the object a dense point set on its surface
(area-uniform samples with their outward normals, plus its vertices: the corners and edges that samples
miss). A grasp collides when

* an object point lies inside a box grown by ``margin`` (the object's surface crosses the gripper), or
* a box centre lies inside the object (a box buried in a thick object, which no surface point reveals):
  the centre is behind the nearest surface sample's tangent plane (``(c - p) . n < 0``), or
* a box corner lies below the support plane.

The surface points are carried into all grasp frames with one matrix product per chunk of grasps
(``(P, 3) @ (3, 3n)``), a broad phase keeps those inside the gripper's bounding box, and only those are
tested against each box: ``O(N * P)`` work with no Python loop over grasps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from ..optional import require
from .gripper import ParallelJawGripper

__all__ = ["ObjectCollider", "gripper_collides", "check_support"]


@dataclass
class ObjectCollider:
    """An object's collision points: ``points (P, 3)`` float64 (surface samples, then vertices), the normals
    ``normals (S, 3)`` of the first ``S`` (the samples), a KD-tree over those samples, and whether the object
    is ``solid`` (watertight: it has an inside, and buried boxes are tested)."""

    points: np.ndarray
    normals: np.ndarray
    tree: object  # scipy.spatial.cKDTree
    solid: bool

    @classmethod
    def from_object(cls, obj, n: int = 4000, seed: int = 0, max_vertices: int = 4000) -> "ObjectCollider":
        """``n`` surface samples of ``obj`` (and up to ``max_vertices`` of its vertices)."""
        cKDTree = require("scipy.spatial", extra="grasps", purpose="posegen.grasps collision tests").cKDTree
        pts, nrm = obj.surface_points(n, seed=seed, normals=True, dtype=torch.float64)
        pts, nrm = pts.numpy(), nrm.numpy()
        verts = np.asarray(obj.mesh.vertices, dtype=np.float64)
        if len(verts) > max_vertices:
            verts = verts[np.random.default_rng(seed).choice(len(verts), max_vertices, replace=False)]
        return cls(np.concatenate([pts, verts], axis=0), nrm, cKDTree(pts), obj.is_watertight)

    def inside(self, q: np.ndarray) -> np.ndarray:
        """``(M,)`` bool: whether points ``q (M, 3)`` are behind the tangent plane of their nearest sample
        (inside the object, for points farther from the surface than the sample spacing)."""
        _, i = self.tree.query(q)
        return np.einsum("ij,ij->i", q - self.tree.data[i], self.normals[i]) < 0.0


def check_support(support) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(point (3,), unit normal (3,))`` of a support plane given as ``(point, normal)``; None passes through.

    The free side is where ``normal . (x - point) >= 0`` (the object's side).
    """
    if support is None:
        return None
    try:
        point, normal = (np.asarray(v, dtype=np.float64) for v in support)
    except (TypeError, ValueError):
        raise ValueError(f"support must be (point (3,), normal (3,)), got {support!r}") from None
    norm = np.linalg.norm(normal) if normal.shape == (3,) else 0.0
    if point.shape != (3,) or normal.shape != (3,) or not np.isfinite(point).all() or not norm > 0:
        raise ValueError(f"support must be (point (3,), normal (3,)) with finite values and a non-zero normal, "
                         f"got point {point.tolist()}, normal {normal.tolist()}")
    return point, normal / norm


def _surface_hits(T: np.ndarray, gripper: ParallelJawGripper, points: np.ndarray, opening, margin: float,
                  chunk: int) -> np.ndarray:
    """``(N,)`` bool: some object point lies in some (grown) box of the gripper at ``T (N, 4, 4)``."""
    parts = []  # broad phase per part (palm, finger 1, finger 2): its bounding box in the grasp frame
    for boxes in gripper.parts(opening):
        corners = np.concatenate([b.corners() for b in boxes])
        lo, hi = corners.min(axis=0) - margin, corners.max(axis=0) + margin
        tests = [(b.center.astype(np.float32), b.R.astype(np.float32), (b.half + margin).astype(np.float32))
                 for b in boxes]
        parts.append((lo.astype(np.float32), hi.astype(np.float32), tests))
    out = np.zeros(T.shape[0], dtype=bool)
    pts = points.astype(np.float32)
    step = max(1, chunk // max(len(points), 1))
    for s in range(0, T.shape[0], step):
        R, t = T[s:s + step, :3, :3].astype(np.float32), T[s:s + step, :3, 3].astype(np.float32)
        n = R.shape[0]
        # local[n, :, p] = R_n^T (p - t_n): one (3n, 3) @ (3, P) product, coordinates contiguous over points
        local = (R.transpose(0, 2, 1).reshape(3 * n, 3) @ pts.T).reshape(n, 3, -1)
        local -= np.einsum("nji,nj->ni", R, t)[:, :, None]
        x, y, z = local[:, 0], local[:, 1], local[:, 2]
        hits = np.zeros(n, dtype=bool)
        for lo, hi, tests in parts:
            near = (z >= lo[2]) & (z <= hi[2]) & (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
            g, p = np.nonzero(near)
            q = local[g, :, p]
            hit = np.zeros(len(g), dtype=bool)
            for c, Rb, h in tests:
                d = np.abs((q - c) @ Rb)
                hit |= (d[:, 0] <= h[0]) & (d[:, 1] <= h[1]) & (d[:, 2] <= h[2])
            hits[g[hit]] = True
        out[s:s + step] = hits
    return out


def gripper_collides(T: np.ndarray, gripper: ParallelJawGripper, collider: ObjectCollider, *,
                     opening: Optional[float] = None, margin: float = 0.0, support=None,
                     chunk: int = 4_000_000) -> np.ndarray:
    """``(N,)`` bool: whether the gripper at each grasp ``T (N, 4, 4)`` (mesh frame) collides.

    Args:
        T: grasp transforms, ``(N, 4, 4)`` float64.
        gripper: the gripper; its boxes at ``opening`` (default fully open).
        collider: the object's :class:`ObjectCollider`.
        margin: grow every box by this much (m).
        support: ``(point, normal)`` of a support plane in the mesh frame, or None.
        chunk: grasp-point pairs per matrix product (memory: 12 bytes each).
    """
    out = _surface_hits(T, gripper, collider.points, opening, margin, chunk)
    boxes = gripper.boxes(opening)
    free = np.nonzero(~out)[0]
    if len(free) and collider.solid:
        centers = np.stack([b.center for b in boxes])
        world = np.einsum("nij,bj->nbi", T[free, :3, :3], centers) + T[free, None, :3, 3]
        out[free] = collider.inside(world.reshape(-1, 3)).reshape(len(free), -1).any(axis=1)
    plane = check_support(support)
    if plane is not None:
        corners = np.concatenate([b.corners() for b in boxes])  # (8B, 3) grasp frame
        world = np.einsum("nij,kj->nki", T[:, :3, :3], corners) + T[:, None, :3, 3]
        out |= ((world - plane[0]) @ plane[1] < 0.0).any(axis=1)
    return out
