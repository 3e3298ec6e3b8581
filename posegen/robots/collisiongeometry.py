r"""One collision shape of a link (:class:`CollisionGeometry`), whichever description it comes from, and a link's
triangles (:func:`link_triangles`, float64).

The readers fill the same type: :func:`posegen.robots.geometry.read_collision_geometry` (URDF ``<collision>``:
origin as ``rpy``, meshes as file paths) and :func:`posegen.robots.mjcfgeometry.mjcf_collision_geometry`
(MuJoCo's compiled geoms: orientation as a quaternion, meshes as their compiled triangles). The sphere fits of
:mod:`posegen.robots.autofit` only see :func:`link_triangles`.

Primitives are tessellated with trimesh: boxes exactly, cylinders and capsules with chord error
``r (1 - cos(pi / sections))``, 0.12 % of r at the default 64 sections, spheres as icospheres of 1280 faces,
whose face centres lie within 0.5 % of r of the sphere (ellipsoids: that icosphere scaled by the semi-axes,
so within 0.5 % of the largest one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import torch

from ..optional import require
from ..rotations import quat_to_rotmat

__all__ = ["CollisionGeometry", "KINDS", "link_triangles", "load_mesh_triangles", "rpy_matrix"]

Vec3 = Tuple[float, float, float]
KINDS = ("mesh", "box", "cylinder", "sphere", "capsule", "ellipsoid")
_SIZES = {"box": 3, "cylinder": 2, "capsule": 2, "sphere": 1, "ellipsoid": 3, "mesh": 3}


@dataclass(frozen=True)
class CollisionGeometry:
    """One collision shape of a link, placed in the link frame.

    ``kind`` is one of ``mesh, box, cylinder, sphere, capsule, ellipsoid``; ``xyz`` (m) places it in the
    link frame and its orientation is ``rpy`` (rad, URDF order ``R = Rz(yaw) Ry(pitch) Rx(roll)``) or, when
    given, ``quat`` ``(x, y, z, w)`` (then ``rpy`` stays ``(0, 0, 0)``); ``size`` is ``(x, y, z)`` full edge
    lengths for a box, ``(radius, length)`` for a cylinder or capsule (axis z; a capsule's length is that of
    its cylinder part), ``(radius,)`` for a sphere, ``(a, b, c)`` semi-axes for an ellipsoid, the mesh
    ``scale`` for a mesh. A mesh is either ``mesh``, a resolved file path (scaled by ``size``), or
    ``triangles``, ``(T, 3, 3)`` float64 in the shape's own frame (already scaled; MJCF's compiled meshes).

    Raises:
        ValueError: an unknown kind, a size of the wrong length or not positive (a mesh scale: zero), both
            ``rpy`` and ``quat``, a quaternion that is not unit, a mesh without file or triangles, or triangles
            not ``(T, 3, 3)``.
    """

    link: str
    kind: str
    xyz: Vec3
    rpy: Vec3
    size: Tuple[float, ...]
    mesh: Optional[str] = None
    quat: Optional[Tuple[float, float, float, float]] = None
    triangles: Optional[torch.Tensor] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        where = f"CollisionGeometry of link {self.link!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        ok = (lambda s: math.isfinite(s) and s != 0) if self.kind == "mesh" else (lambda s: math.isfinite(s) and s > 0)
        if len(self.size) != _SIZES[self.kind] or not all(ok(s) for s in self.size):
            what = "non-zero scales" if self.kind == "mesh" else "positive sizes"
            raise ValueError(f"{where}: kind {self.kind!r} needs {_SIZES[self.kind]} {what}, got {self.size}")
        if self.quat is not None:
            if any(self.rpy):
                raise ValueError(f"{where}: give its orientation as rpy or as quat, got both ({self.rpy}, "
                                 f"{self.quat})")
            if len(self.quat) != 4 or abs(math.sqrt(sum(v * v for v in self.quat)) - 1) > 1e-6:
                raise ValueError(f"{where}: quat must be a unit quaternion (x, y, z, w), got {self.quat}")
        if self.kind == "mesh" and self.mesh is None and self.triangles is None:
            raise ValueError(f"{where}: a mesh needs a file (mesh=) or its triangles (triangles=)")
        t = self.triangles
        if t is not None and (t.dim() != 3 or t.shape[1:] != (3, 3) or len(t) == 0 or t.dtype != torch.float64):
            raise ValueError(f"{where}: triangles must be a non-empty (T, 3, 3) float64 tensor, got "
                             f"{tuple(t.shape)} {t.dtype}")

    def rotation(self) -> torch.Tensor:
        """``(3, 3)`` float64 rotation of the shape's frame in the link frame (from ``quat`` when given)."""
        if self.quat is None:
            return rpy_matrix(self.rpy)
        return quat_to_rotmat(torch.tensor(self.quat, dtype=torch.float64), order="xyzw")

    def local_triangles(self, sections: int = 64) -> torch.Tensor:
        """``(T, 3, 3)`` float64 triangles of the shape in its own frame (module docstring: tessellation)."""
        if self.triangles is not None:
            return self.triangles
        if self.kind == "mesh":
            return load_mesh_triangles(self.mesh, self.size)
        return torch.tensor(_primitive_mesh(self, sections).triangles, dtype=torch.float64)


def rpy_matrix(rpy: Sequence[float]) -> torch.Tensor:
    """``(3, 3)`` float64 ``Rz(yaw) Ry(pitch) Rx(roll)`` for URDF ``rpy = (roll, pitch, yaw)``."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return torch.tensor([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                         [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                         [-sp, cp * sr, cp * cr]], dtype=torch.float64)


def _trimesh():
    return require("trimesh", extra="robots", purpose="meshes")


def load_mesh_triangles(path, scale: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """``(T, 3, 3)`` float64 triangles of the mesh file ``path`` (STL, OBJ, DAE, ...; every part of a scene
    concatenated in its own frame), each vertex multiplied by ``scale``."""
    trimesh = _trimesh()
    mesh = trimesh.load(str(path), force="mesh")
    if not hasattr(mesh, "triangles") or len(mesh.faces) == 0:
        raise ValueError(f"mesh {str(path)!r} has no triangles")
    tri = torch.tensor(mesh.triangles, dtype=torch.float64)
    return tri * torch.tensor(scale, dtype=torch.float64)


def _primitive_mesh(g: CollisionGeometry, sections: int):
    trimesh = _trimesh()
    if g.kind == "box":
        return trimesh.creation.box(extents=g.size)
    if g.kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=g.size[0])
    if g.kind == "ellipsoid":
        ball = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        return trimesh.Trimesh(ball.vertices * g.size, ball.faces, process=False)
    if g.kind == "cylinder":
        return trimesh.creation.cylinder(radius=g.size[0], height=g.size[1], sections=sections)
    return trimesh.creation.capsule(radius=g.size[0], height=g.size[1], count=[sections, sections])


def link_triangles(geoms: Sequence[CollisionGeometry], sections: int = 64) -> torch.Tensor:
    """``(T, 3, 3)`` float64: the triangles of all of a link's collision geometries, in the link frame."""
    parts = []
    for g in geoms:
        tri = g.local_triangles(sections)
        R = g.rotation()
        parts.append(tri @ R.T + torch.tensor(g.xyz, dtype=torch.float64))
    return torch.cat(parts)
