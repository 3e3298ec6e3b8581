"""Grasp-set metrics: jaw-symmetric distances against SciPy's rotation angles, coverage at its tolerances."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("trimesh")
from scipy.spatial.transform import Rotation  # noqa: E402

from posegen.grasps import PANDA, symmetric_grasp  # noqa: E402
from posegen.grasps.metrics import coverage, diversity, grasp_distances  # noqa: E402


def _grasps(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    T[:, :3, 3] = rng.normal(scale=0.1, size=(n, 3))
    return T


def _turn(T: np.ndarray, axis: str, degrees: float) -> np.ndarray:
    """``T`` turned about its own ``axis`` through the TCP (so the TCP stays where it is)."""
    tcp = np.eye(4)
    tcp[2, 3] = PANDA.tcp_offset
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_euler(axis, degrees, degrees=True).as_matrix()
    return T @ tcp @ turn @ np.linalg.inv(tcp)


def test_distances_match_scipy_and_ignore_the_jaw_flip():
    A, B = _grasps(7, 0), _grasps(5, 1)
    position, angle = grasp_distances(A, B)
    tcp = np.array([0.0, 0.0, PANDA.tcp_offset, 1.0])
    for i in range(len(A)):
        for j in range(len(B)):
            assert position[i, j] == pytest.approx(np.linalg.norm((A[i] @ tcp - B[j] @ tcp)[:3]), abs=1e-12)
            rel = [Rotation.from_matrix(A[i, :3, :3].T @ C[:3, :3]).magnitude() for C in (B[j], symmetric_grasp(B[j]))]
            assert angle[i, j] == pytest.approx(min(rel), abs=1e-7)
    p2, a2 = grasp_distances(A, symmetric_grasp(B))
    np.testing.assert_allclose(p2, position, atol=1e-12)
    np.testing.assert_allclose(a2, angle, atol=1e-7)
    assert np.allclose(np.diagonal(grasp_distances(A, symmetric_grasp(A))[1]), 0.0, atol=1e-6)


def test_coverage_counts_references_within_both_tolerances():
    g = _grasps(1, 3)[0]
    shifted = [g.copy() for _ in range(2)]
    shifted[0][:3, 3] += 0.019 * g[:3, 0]          # 1.9 cm sideways: in
    shifted[1][:3, 3] += 0.021 * g[:3, 0]          # 2.1 cm: out
    refs = np.stack(shifted + [_turn(g, "x", 19.0), _turn(g, "x", 21.0), _turn(g, "z", 180.0), _turn(g, "z", 170.0)])
    # in: 1.9 cm, 19 deg, the jaw flip, 170 deg about z (10 deg from the flip); out: 2.1 cm, 21 deg
    assert coverage(g[None], refs) == pytest.approx(4 / 6)
    assert coverage(g[None], refs[[0, 2, 4, 5]]) == 1.0 and coverage(g[None], refs[[1, 3]]) == 0.0
    # brute force on random sets
    S, R = _grasps(40, 4), _grasps(30, 5)
    R[:10] = S[:10] @ np.diag([-1.0, -1.0, 1.0, 1.0])     # ten references are flipped copies of samples
    position, angle = grasp_distances(S, R)
    expected = np.mean([any(position[i, j] <= 0.05 and angle[i, j] <= 0.5 for i in range(40)) for j in range(30)])
    assert coverage(S, R, position_tol=0.05, angle_tol=0.5) == pytest.approx(expected)
    assert coverage(S, R) >= 10 / 30
    assert coverage(S[:0], R) == 0.0 and math.isnan(coverage(S, R[:0]))


def test_diversity_of_two_grasps_is_their_distance_and_bad_inputs_are_refused():
    T = _grasps(2, 6)
    p, a = grasp_distances(T[:1], T[1:])
    d = diversity(T)
    assert d["position"] == pytest.approx(p[0, 0]) and d["angle"] == pytest.approx(a[0, 0])
    assert math.isnan(diversity(T[:1])["position"])
    with pytest.raises(ValueError, match="position_tol"):
        coverage(T, T, position_tol=0.0)
    with pytest.raises(ValueError):
        grasp_distances(np.zeros((2, 3, 3)), T)
    bad = T.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        diversity(bad)
