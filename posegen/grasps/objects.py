"""Objects to grasp: a triangle mesh in metres, its surface point cloud, its convex parts for physics.

``load_object(path, scale)`` reads OBJ, STL, PLY, OFF, GLB/GLTF (through trimesh) or the URDF of a single
object (one link whose collision geometry is one mesh, box, cylinder or sphere, as pybullet_data's
``random_urdfs``). The mesh is multiplied by ``scale`` (ACRONYM's ``object/scale``: mesh units -> metres) and
kept in its own frame (the *mesh frame*: grasps are transforms in it; nothing is recentred).

Bad input is refused before any work with one exception naming the argument: a missing file
(:class:`FileNotFoundError`), a folder (:class:`IsADirectoryError`), an unknown suffix, an empty mesh, a scale
that is not a finite number > 0 (:class:`ValueError`), and, when a ``gripper`` is given, an object that no
opening of that gripper can hold (:class:`ValueError`, see :func:`narrowest_width`).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..optional import require
from .decompose import convex_decomposition
from .gripper import get_gripper

__all__ = ["GraspObject", "load_object", "find_objects", "narrowest_width", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".obj", ".stl", ".ply", ".off", ".glb", ".gltf", ".urdf")


def _trimesh():
    return require("trimesh", extra="grasps", purpose="posegen.grasps")


@dataclass(eq=False)
class GraspObject:
    """A rigid object: a triangle mesh in metres in its mesh frame.

    Attributes:
        mesh: the ``trimesh.Trimesh`` (already scaled).
        name: a short name (the file stem by default).
        file: the mesh file it was read from (None for generated meshes).
        scale: the factor applied to the file's coordinates.
    """

    mesh: object
    name: str
    file: Optional[str] = None
    scale: float = 1.0
    _parts: Optional[List[Tuple[np.ndarray, np.ndarray]]] = field(default=None, repr=False)

    @classmethod
    def from_trimesh(cls, mesh, name: str = "object", file: Optional[str] = None, scale: float = 1.0):
        """Wrap a ``trimesh.Trimesh`` (metres, taken as is); refuses an empty mesh."""
        trimesh = _trimesh()
        if not isinstance(mesh, trimesh.Trimesh):
            raise TypeError(f"mesh must be a trimesh.Trimesh, got {type(mesh).__name__}")
        if len(mesh.faces) == 0 or len(mesh.vertices) == 0:
            raise ValueError(f"object {name!r}: the mesh is empty (0 triangles)")
        if not np.isfinite(mesh.vertices).all():
            raise ValueError(f"object {name!r}: the mesh has non-finite vertex coordinates")
        return cls(mesh=mesh, name=name, file=file, scale=float(scale))

    @property
    def is_watertight(self) -> bool:
        """Whether the mesh is closed and consistently wound (then it has a volume and an inside)."""
        return bool(self.mesh.is_watertight)

    @property
    def bounds(self) -> np.ndarray:
        """Axis-aligned bounds in the mesh frame, ``(2, 3)``: min and max corner (m)."""
        return np.asarray(self.mesh.bounds, dtype=np.float64)

    @property
    def extents(self) -> np.ndarray:
        """Side lengths of the axis-aligned bounds, ``(3,)`` (m)."""
        return self.bounds[1] - self.bounds[0]

    def surface_points(self, n: int, seed: Optional[int] = None, *, normals: bool = False,
                       dtype: torch.dtype = torch.float32):
        """``n`` points drawn uniformly (by area) on the surface, a ``(n, 3)`` tensor in the mesh frame (m).

        With ``normals=True`` also the outward unit normals of their triangles, ``(n, 3)``. The same
        ``seed`` gives the same points.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        points, faces = _sample_surface(self.mesh, int(n), np.random.default_rng(seed))
        pts = torch.as_tensor(points, dtype=dtype)
        if not normals:
            return pts
        return pts, torch.as_tensor(self.mesh.face_normals[faces], dtype=dtype)

    def convex_parts(self, *, threshold: float = 0.05, max_parts: int = 24,
                     seed: int = 0) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Convex pieces for physics: ``[(vertices (V, 3), faces (F, 3)), ...]`` in the mesh frame, cached.

        A convex mesh is its own single piece; otherwise CoACD (``pip install coacd``, the ``grasps``
        extra) decomposes it with concavity ``threshold`` into at most ``max_parts`` pieces. Without CoACD
        the convex hull stands in, with a warning (grasps inside concavities are then mislabelled). The
        first call's pieces are kept for the object's lifetime (later settings are ignored).
        """
        if self._parts is None:
            self._parts = convex_decomposition(self.mesh, threshold=threshold, max_parts=max_parts, seed=seed)
        return self._parts


def _sample_surface(mesh, n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform by area on ``mesh`` and their triangle indices (numpy, float64)."""
    area = np.asarray(mesh.area_faces, dtype=np.float64)
    cdf = np.cumsum(area)
    faces = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right").clip(0, len(area) - 1)
    tri = np.asarray(mesh.triangles, dtype=np.float64)[faces]
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])
    return points, faces


def check_scale(scale) -> float:
    """``scale`` (a mesh's or a cloud's units to metres) as a float: a real number, finite and > 0 (strings and
    bools are refused rather than converted), else ValueError."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(scale)) or float(scale) <= 0.0:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    return float(scale)


def _check_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"object file '{p}' does not exist")
    if p.is_dir():
        raise IsADirectoryError(f"object file '{p}' is a folder; pass a mesh file ({', '.join(MESH_SUFFIXES)}) "
                                "or list the folder with posegen.grasps.find_objects")
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"object file '{p}': unknown suffix {p.suffix!r}; expected one of {list(MESH_SUFFIXES)}")
    return p


def _urdf_mesh(path: Path):
    """The collision geometry of a single-object URDF as a Trimesh in the link frame (file units times the
    URDF's mesh scale, placed by the collision ``<origin>``)."""
    trimesh = _trimesh()
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"object file '{path}': not readable XML ({e})") from None
    collisions = [c for link in root.findall("link") for c in link.findall("collision")]
    if len(collisions) != 1 or collisions[0].find("geometry") is None or len(collisions[0].find("geometry")) == 0:
        raise ValueError(f"object file '{path}': a single-object URDF needs exactly one collision geometry, "
                         f"found {len(collisions)} <collision> elements")
    geom = list(collisions[0].find("geometry"))[0]
    if geom.tag == "mesh":
        scale = np.array([float(s) for s in geom.get("scale", "1 1 1").split()])
        mesh_path = path.parent / geom.get("filename", "").replace("package://", "")
        if not mesh_path.is_file():
            raise FileNotFoundError(f"object file '{path}': its mesh '{mesh_path}' does not exist")
        mesh = trimesh.load(mesh_path, force="mesh", process=True)
        mesh.apply_transform(np.diag(np.append(scale, 1.0)))
    elif geom.tag == "box":
        mesh = trimesh.creation.box([float(s) for s in geom.get("size").split()])
    elif geom.tag == "cylinder":
        mesh = trimesh.creation.cylinder(float(geom.get("radius")), float(geom.get("length")), sections=48)
    elif geom.tag == "sphere":
        mesh = trimesh.creation.icosphere(3, float(geom.get("radius")))
    else:
        raise ValueError(f"object file '{path}': unsupported collision geometry <{geom.tag}>")
    origin = collisions[0].find("origin")
    if origin is not None:
        xyz = [float(v) for v in origin.get("xyz", "0 0 0").split()]
        rpy = [float(v) for v in origin.get("rpy", "0 0 0").split()]
        T = trimesh.transformations.euler_matrix(*rpy, axes="sxyz")  # URDF: fixed-axis roll, pitch, yaw
        T[:3, 3] = xyz
        mesh.apply_transform(T)
    return mesh


def load_object(path, scale: float = 1.0, *, gripper=None, name: Optional[str] = None) -> GraspObject:
    """Read a mesh file (or single-object URDF) as a :class:`GraspObject` in metres.

    Args:
        path: OBJ, STL, PLY, OFF, GLB/GLTF or URDF file.
        scale: factor from file units to metres (ACRONYM's ``object/scale``), a finite number > 0.
        gripper: a gripper (``"panda"`` or a :class:`~posegen.grasps.ParallelJawGripper`) the object must fit:
            refused when no antipodal contact pair is narrower than its stroke (:func:`narrowest_width`).
            None (default) skips the check.
        name: the object's name (default: the file stem).
    """
    scale = check_scale(scale)
    p = _check_path(path)
    trimesh = _trimesh()
    if p.suffix.lower() == ".urdf":
        mesh = _urdf_mesh(p)
    else:
        try:
            mesh = trimesh.load(p, force="mesh", process=True)
        except Exception as e:  # noqa: BLE001 - trimesh raises many kinds; one clear message
            raise ValueError(f"object file '{p}': trimesh could not read it ({type(e).__name__}: {e})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"object file '{p}': the mesh is empty (0 triangles)")
    mesh.apply_scale(scale)
    obj = GraspObject.from_trimesh(mesh, name=name or p.stem, file=str(p), scale=scale)
    if gripper is not None:
        g = get_gripper(gripper)
        width = narrowest_width(obj)
        if not width <= g.stroke:
            raise ValueError(f"object file '{p}' (scale {scale}): no {g.name} opening can hold it: its narrowest "
                             f"antipodal width is {width:.4f} m, the stroke is {g.stroke} m")
    return obj


def narrowest_width(obj: GraspObject, n: int = 2048, seed: int = 0) -> float:
    """The smallest distance (m) from ``n`` surface points, inward along their normals, to the surface.

    An upper bound (by sampling) on the object's thinnest wall: a parallel-jaw gripper whose stroke is below
    it finds no pair of opposite contacts. ``inf`` when no inward ray hits the surface (an open sheet).
    """
    points, faces = _sample_surface(obj.mesh, n, np.random.default_rng(seed))
    normals = np.asarray(obj.mesh.face_normals, dtype=np.float64)[faces]
    eps = 1e-4 * max(float(np.max(obj.extents)), 1e-9)  # start just inside: not on p1's own face
    loc, idx, _ = obj.mesh.ray.intersects_location(points - eps * normals, -normals, multiple_hits=False)
    if len(idx) == 0:
        return math.inf
    return float(np.min(np.linalg.norm(loc - points[idx], axis=1)))


def find_objects(paths) -> List[Path]:
    """Object files from files and folders, in order: a file is taken as is (checked like
    :func:`load_object`); a folder contributes its URDFs if it holds any (anywhere below it), else its mesh
    files (OBJ, STL, PLY, OFF, GLB, GLTF), sorted. A folder with none of them is refused."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: List[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in MESH_SUFFIXES)
            urdfs = [q for q in files if q.suffix.lower() == ".urdf"]
            found = urdfs or files
            if not found:
                raise ValueError(f"folder '{p}' holds no object files ({', '.join(MESH_SUFFIXES)})")
            out.extend(found)
        else:
            out.append(_check_path(p))
    if not out:
        raise ValueError("no object files given")
    return out
