"""Convex pieces of a mesh for MuJoCo (which collides meshes as their convex hulls): CoACD when needed."""

from __future__ import annotations

import warnings
from typing import List, Tuple

import numpy as np

__all__ = ["convex_decomposition", "is_convex"]


def is_convex(mesh, rtol: float = 1e-3) -> bool:
    """Whether ``mesh`` is (numerically) convex: watertight with the volume of its convex hull within ``rtol``."""
    if not mesh.is_watertight:
        return False
    hull = mesh.convex_hull.volume
    return bool(hull > 0 and abs(hull - mesh.volume) <= rtol * hull)


def convex_decomposition(mesh, *, threshold: float = 0.05, max_parts: int = 24,
                         seed: int = 0) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``[(vertices (V, 3) float64, faces (F, 3) int64), ...]`` convex pieces covering ``mesh`` (mesh frame).

    A convex mesh gives one piece (itself). Otherwise CoACD (Wei et al., SIGGRAPH 2022; PyPI ``coacd``)
    with concavity ``threshold``, at most ``max_parts`` pieces and ``seed``, and a smaller search than
    CoACD's defaults, for speed (MCTS 30 iterations, 8 nodes, depth 2, 300 samples); the pieces and seconds
    these settings give are measured per object by ``benchmarks/grasps.py``. Without CoACD: the convex
    hull, with a warning.
    """
    if is_convex(mesh):
        return [(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64))]
    try:
        import coacd
    except ImportError:
        warnings.warn("coacd is not installed (pip install 'posegen[grasps]'): a non-convex object is simulated "
                      "as its convex hull", RuntimeWarning, stacklevel=3)
        hull = mesh.convex_hull
        return [(np.asarray(hull.vertices, np.float64), np.asarray(hull.faces, np.int64))]
    coacd.set_log_level("error")
    parts = coacd.run_coacd(coacd.Mesh(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)),
                            threshold=threshold, max_convex_hull=max_parts, seed=seed, preprocess_mode="auto",
                            mcts_iterations=30, mcts_nodes=8, mcts_max_depth=2, resolution=300)
    return [(np.asarray(v, np.float64), np.asarray(f, np.int64)) for v, f in parts]
