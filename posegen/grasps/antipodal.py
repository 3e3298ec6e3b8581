"""Antipodal grasp candidates on a mesh: contact pairs in each other's friction cones, approach and depth.

For a batch of surface points ``p1`` (area-uniform) with outward normals ``n1``:

1. a direction ``d`` is drawn uniformly in the friction cone around ``-n1`` (half-angle ``atan(friction)``);
2. a ray from just inside ``p1`` along ``d`` finds the opposite contact ``p2`` (its first exit) with normal
   ``n2``; the pair is kept when ``n2`` is also inside the cone around ``d`` (both contacts can push along
   the closing axis without slipping) and ``|p2 - p1| <= stroke - 2 * clearance``;
3. each pair gets ``approaches`` grasp frames: ``x = +-d`` (the jaw flip, a fair coin: files hold both
   of the symmetric twins), ``z`` at an angle drawn uniformly around the contact axis, and the pads' centre,
   the TCP, on the contacts' midpoint shifted along ``z`` by a depth drawn in ``+-pad_half_height``;
4. frames whose gripper (fully open) overlaps the object or crosses the support plane are dropped
   (:func:`posegen.grasps.collision.gripper_collides`).

All steps are batched numpy and trimesh ray queries; rounds repeat until ``n`` candidates are found.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .collision import ObjectCollider, check_support, gripper_collides
from .gripper import ParallelJawGripper, get_gripper
from .objects import GraspObject, _sample_surface

__all__ = ["GraspCandidates", "sample_antipodal", "grasp_frames", "cone_directions"]


@dataclass
class GraspCandidates:
    """Antipodal grasps of one object.

    Attributes:
        transforms: ``(N, 4, 4)`` float64, gripper base frame in the object's mesh frame (ACRONYM convention).
        contacts: ``(N, 2, 3)`` float64, the two contact points (mesh frame, m).
        width: ``(N,)`` float64, distance between the contacts (m).
    """

    transforms: torch.Tensor
    contacts: torch.Tensor
    width: torch.Tensor

    def __len__(self) -> int:
        return int(self.transforms.shape[0])


def cone_directions(axis: np.ndarray, half_angle: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors uniform (by solid angle) in the cones of ``half_angle`` around unit ``axis (N, 3)``."""
    N = axis.shape[0]
    cos_t = 1.0 - rng.random(N) * (1.0 - math.cos(half_angle))
    sin_t = np.sqrt(np.clip(1.0 - cos_t ** 2, 0.0, None))
    phi = rng.random(N) * 2.0 * math.pi
    u, v = _orthonormal(axis)
    return cos_t[:, None] * axis + sin_t[:, None] * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)


def _orthonormal(a: np.ndarray):
    """Two unit vectors ``u, v`` with ``(a, u, v)`` a right-handed orthonormal basis, ``a (N, 3)`` unit."""
    helper = np.eye(3)[np.argmin(np.abs(a), axis=1)]
    u = np.cross(a, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u, np.cross(a, u)


def grasp_frames(p1: np.ndarray, p2: np.ndarray, angle: np.ndarray, depth: np.ndarray, flip: np.ndarray,
                 tcp_offset: float) -> np.ndarray:
    """Grasp transforms ``(N, 4, 4)`` closing on contacts ``p1, p2 (N, 3)``.

    ``x = (p2 - p1) / |p2 - p1|`` (negated where ``flip``), ``z`` at ``angle`` (rad) around ``x`` from a fixed
    perpendicular, ``y = z cross x``; the TCP (``tcp_offset`` along ``z``) sits at the midpoint moved by
    ``depth`` along ``z`` (positive: the contacts lie deeper between the fingers).
    """
    a = p2 - p1
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    u, v = _orthonormal(a)
    z = np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * v
    x = np.where(flip[:, None], -a, a)
    y = np.cross(z, x)
    T = np.zeros((a.shape[0], 4, 4))
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2] = x, y, z
    T[:, :3, 3] = 0.5 * (p1 + p2) - (tcp_offset - depth)[:, None] * z
    T[:, 3, 3] = 1.0
    return T


def _contact_pairs(obj: GraspObject, m: int, half_angle: float, max_width: float, rng: np.random.Generator):
    """Up to ``m`` antipodal pairs ``(p1, p2)`` (each ``(k, 3)``) and the narrowest width seen."""
    p1, faces = _sample_surface(obj.mesh, m, rng)
    n1 = np.asarray(obj.mesh.face_normals, dtype=np.float64)[faces]
    d = cone_directions(-n1, half_angle, rng)
    eps = 1e-4 * max(float(np.max(obj.extents)), 1e-9)  # start just inside: not on p1's own face
    loc, idx, tri = obj.mesh.ray.intersects_location(p1 - eps * n1, d, multiple_hits=False)
    order = np.argsort(idx, kind="stable")  # ray results come back unordered: sort for reproducibility
    loc, idx, tri = loc[order], idx[order], tri[order]
    n2 = np.asarray(obj.mesh.face_normals, dtype=np.float64)[tri]
    width = np.linalg.norm(loc - p1[idx], axis=1)
    narrowest = float(width.min()) if len(width) else math.inf
    cos_cone = math.cos(half_angle)
    ok = (np.einsum("ij,ij->i", n2, d[idx]) >= cos_cone) & (width <= max_width) & (width > 2 * eps)
    return p1[idx[ok]], loc[ok], narrowest


def sample_antipodal(obj: GraspObject, n: int, gripper="panda", *, friction: float = 0.5, approaches: int = 4,
                     clearance: float = 0.002, support=None, margin: float = 0.0, seed: Optional[int] = None,
                     max_rounds: int = 8, collision_points: int = 4000) -> GraspCandidates:
    """``n`` collision-free antipodal grasp candidates of ``obj`` (fewer, with a warning, if the rounds run out).

    Args:
        obj: the object (mesh frame, metres).
        n: how many candidates, >= 1.
        gripper: ``"panda"`` or a :class:`~posegen.grasps.ParallelJawGripper`.
        friction: Coulomb coefficient of the friction-cone test (``half-angle = atan(friction)``), > 0.
        approaches: grasp frames tried per contact pair (angles around the contact axis), >= 1.
        clearance: free space kept between each open pad and its contact (m), so widths <= stroke - 2 clearance.
        support: ``(point, normal)`` of a support plane (mesh frame) the gripper must stay above, or None.
        margin: grow the gripper's boxes by this much in the collision test (m).
        seed: random seed (numpy ``default_rng``); the same seed gives the same candidates.
        max_rounds: sampling rounds before giving up.
        collision_points: surface samples of the object for the collision test.

    Raises:
        ValueError: bad arguments, or no antipodal pair of the object fits the gripper's stroke.
    """
    g = get_gripper(gripper)
    _check_args(n, friction, approaches, clearance, max_rounds)
    check_support(support)
    rng = np.random.default_rng(seed)
    collider = ObjectCollider.from_object(obj, collision_points, seed=int(rng.integers(2 ** 31)))
    half_angle, max_width = math.atan(friction), g.stroke - 2.0 * clearance
    kept, narrowest, pairs_found, tried = [], math.inf, 0, 0
    for _ in range(max_rounds):
        have = sum(len(k[0]) for k in kept)
        if have >= n:
            break
        # surface samples for the missing candidates at the yield seen so far (kept per sample), 1.5x spare
        rate = have / tried if have else 1.0  # kept per surface sample; a first guess, then measured
        m = int(min(max(64, math.ceil(1.5 * (n - have) / rate)), 4 * n + 4096))
        p1, p2, w = _contact_pairs(obj, m, half_angle, max_width, rng)
        tried += m
        narrowest, pairs_found = min(narrowest, w), pairs_found + len(p1)
        if len(p1) == 0:
            continue
        p1, p2 = np.repeat(p1, approaches, axis=0), np.repeat(p2, approaches, axis=0)
        k = len(p1)
        T = grasp_frames(p1, p2, rng.random(k) * 2 * math.pi, (2 * rng.random(k) - 1) * g.pad_half_height,
                         rng.random(k) < 0.5, g.tcp_offset)
        free = ~gripper_collides(T, g, collider, margin=margin, support=support)
        kept.append((T[free], np.stack([p1[free], p2[free]], axis=1)))
    return _select(obj, g, kept, n, rng, narrowest, pairs_found, max_width)


def _check_args(n, friction, approaches, clearance, max_rounds) -> None:
    for name, value in (("n", n), ("approaches", approaches), ("max_rounds", max_rounds)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(friction, (int, float)) and math.isfinite(friction) and friction > 0):
        raise ValueError(f"friction must be a finite number > 0, got {friction!r}")
    if not (isinstance(clearance, (int, float)) and math.isfinite(clearance) and clearance >= 0):
        raise ValueError(f"clearance must be a finite number >= 0 (m), got {clearance!r}")


def _select(obj, g: ParallelJawGripper, kept, n: int, rng, narrowest: float, pairs_found: int,
            max_width: float) -> GraspCandidates:
    T = np.concatenate([k[0] for k in kept]) if kept else np.zeros((0, 4, 4))
    C = np.concatenate([k[1] for k in kept]) if kept else np.zeros((0, 2, 3))
    if len(T) == 0:
        why = (f"no antipodal contact pair is narrower than {max_width:.4f} m (the {g.name} stroke less "
               f"clearance; the narrowest pair found is {narrowest:.4f} m)" if pairs_found == 0 else
               f"all {pairs_found} antipodal pairs put the {g.name} gripper in collision")
        raise ValueError(f"object {obj.name!r}: no grasp candidate: {why}")
    if len(T) > n:
        pick = np.sort(rng.choice(len(T), n, replace=False))
        T, C = T[pick], C[pick]
    elif len(T) < n:
        warnings.warn(f"object {obj.name!r}: found {len(T)} of {n} grasp candidates", RuntimeWarning, stacklevel=3)
    width = np.linalg.norm(C[:, 1] - C[:, 0], axis=1)
    return GraspCandidates(torch.from_numpy(T), torch.from_numpy(C), torch.from_numpy(width))
