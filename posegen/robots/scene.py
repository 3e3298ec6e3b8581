r"""Obstacles in the robot's base frame and the :class:`Scene` that holds them (metres, torch float64).

Obstacle types (each with an exact signed distance from a point: negative inside):

* :class:`Box`: a box ``center (3,)``, ``half_extents (3,)``, optionally rotated by ``quat (4,)`` (xyzw; the
  box's axes in the base frame are the columns of its rotation matrix);
* :class:`Ball`: ``center (3,)``, ``radius``;
* :class:`HalfSpace`: everything on the far side of the plane through ``point`` with outward ``normal`` (a
  floor: ``HalfSpace((0, 0, 0), (0, 0, 1))``, :func:`floor`). A half-space is a *support*: the robot's fixed
  base may stand on it (its fixed links are never checked against it), which a box floor may not;
* :class:`MeshObstacle`: a triangle mesh (a file through trimesh, or triangles) placed by ``position`` and
  ``quat``, checked as spheres fitted inside it (:func:`posegen.robots.spherefit.fit_link_spheres`) inflated by
  their measured surface error, so that they cover its surface (conservative by that error);
* :class:`PointCloud`: points ``(N, 3)`` (a depth camera's output in the base frame) as balls of ``radius``, or
  with ``voxel`` as one ball per occupied voxel of that edge length, of radius ``voxel sqrt(3) / 2`` (covering
  the voxel).

A :class:`Scene` is built in code (``Scene([floor(), Box(...)])``) or read from YAML
(:meth:`Scene.from_yaml`)::

    obstacles:
      - {type: halfspace, point: [0, 0, 0], normal: [0, 0, 1], name: floor}
      - {type: box, center: [0.6, 0, 0.2], half_extents: [0.1, 0.3, 0.2], quat: [0, 0, 0.383, 0.924]}
      - {type: ball, center: [0.3, 0.3, 0.6], radius: 0.1}
      - {type: mesh, file: bowl.stl, position: [0.5, 0.2, 0], quat: [0, 0, 0, 1], scale: 1.0}
      - {type: pointcloud, file: cloud.npy, voxel: 0.02}      # or points: [[x, y, z], ...], radius: 0.01

Relative ``file`` paths are read from the YAML file's folder. Every problem (an unknown type or key, a NaN, a
negative size, a missing file) is one ValueError naming the file, the obstacle's index and the field, raised
before any obstacle is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import torch
import yaml

from .geometry import load_mesh_triangles
from .spherefit import fit_link_spheres

__all__ = ["Box", "Ball", "HalfSpace", "MeshObstacle", "PointCloud", "Obstacle", "Scene", "floor",
           "OBSTACLE_TYPES", "quat_xyzw_to_matrix"]


def _vec(v, n: int, what: str) -> Tuple[float, ...]:
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {n} numbers, got {v!r}") from None
    if len(out) != n or not all(math.isfinite(x) for x in out):
        raise ValueError(f"{what} must be {n} finite numbers, got {v!r}")
    return out


def _positive(v, what: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {v!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{what} must be finite and > 0, got {v!r}")
    return x


def _unit_quat(q, what: str) -> Tuple[float, float, float, float]:
    q = _vec(q, 4, f"{what} (xyzw)")
    n = math.sqrt(sum(x * x for x in q))
    if n < 1e-9:
        raise ValueError(f"{what} (xyzw) must be a non-zero quaternion, got {q}")
    return tuple(x / n for x in q)


def quat_xyzw_to_matrix(q: Sequence[float]) -> torch.Tensor:
    """``(3, 3)`` float64 rotation matrix of the unit quaternion ``q = (x, y, z, w)``."""
    x, y, z, w = (float(v) for v in q)
    return torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], dtype=torch.float64)


# ------------------------------------------------------------------------------------------- obstacles
@dataclass(frozen=True)
class Box:
    """Box obstacle: ``center (3,)``, ``half_extents (3,)`` (m), rotation ``quat`` (xyzw, default identity:
    axis-aligned), base frame."""

    center: Tuple[float, float, float]
    half_extents: Tuple[float, float, float]
    name: str = "box"
    quat: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self):
        c = _vec(self.center, 3, f"Box {self.name!r} center")
        h = _vec(self.half_extents, 3, f"Box {self.name!r} half_extents")
        if min(h) <= 0:
            raise ValueError(f"Box {self.name!r} half_extents must be > 0, got {h}")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "half_extents", h)
        object.__setattr__(self, "quat", _unit_quat(self.quat, f"Box {self.name!r} quat"))


@dataclass(frozen=True)
class Ball:
    """Ball obstacle: ``center (3,)`` and ``radius`` in metres, base frame."""

    center: Tuple[float, float, float]
    radius: float
    name: str = "ball"

    def __post_init__(self):
        object.__setattr__(self, "center", _vec(self.center, 3, f"Ball {self.name!r} center"))
        object.__setattr__(self, "radius", _positive(self.radius, f"Ball {self.name!r} radius"))


@dataclass(frozen=True)
class HalfSpace:
    """The solid ``{x : normal . (x - point) <= 0}``: everything behind the plane through ``point (3,)`` with
    outward unit ``normal (3,)`` (normalised here). A support: the fixed base may stand on it."""

    point: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    normal: Tuple[float, float, float] = (0.0, 0.0, 1.0)
    name: str = "halfspace"

    def __post_init__(self):
        p = _vec(self.point, 3, f"HalfSpace {self.name!r} point")
        n = _vec(self.normal, 3, f"HalfSpace {self.name!r} normal")
        norm = math.sqrt(sum(x * x for x in n))
        if norm < 1e-9:
            raise ValueError(f"HalfSpace {self.name!r} normal must be non-zero, got {n}")
        object.__setattr__(self, "point", p)
        object.__setattr__(self, "normal", tuple(x / norm for x in n))


def floor(z: float = 0.0) -> HalfSpace:
    """The floor (or a table top the robot stands on) at height ``z``: the half-space below it."""
    return HalfSpace((0.0, 0.0, float(z)), (0.0, 0.0, 1.0), name="floor")


@dataclass(frozen=True, eq=False)
class MeshObstacle:
    """A triangle mesh in the base frame, checked as fitted spheres (see the module docstring).

    Args:
        mesh: a mesh file (STL, OBJ, DAE, ... via trimesh) or triangles ``(T, 3, 3)`` (m, mesh frame).
        position (3,), quat (4, xyzw): the mesh frame in the base frame; scale: multiplies the vertices.
        tolerance: of the sphere fit (m, :func:`~posegen.robots.spherefit.fit_link_spheres`); seed: its seed.

    Attributes:
        centers (K, 3), radii (K,): the covering spheres in the base frame (float64); surface_error (m).
    """

    mesh: Union[str, Path, torch.Tensor]
    position: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale: float = 1.0
    tolerance: float = 0.005
    seed: int = 0
    name: str = "mesh"
    centers: torch.Tensor = field(init=False, repr=False)
    radii: torch.Tensor = field(init=False, repr=False)
    surface_error: float = field(init=False, repr=False)

    def __post_init__(self):
        pos = _vec(self.position, 3, f"MeshObstacle {self.name!r} position")
        quat = _unit_quat(self.quat, f"MeshObstacle {self.name!r} quat")
        scale = _positive(self.scale, f"MeshObstacle {self.name!r} scale")
        tol = _positive(self.tolerance, f"MeshObstacle {self.name!r} tolerance")
        if isinstance(self.mesh, torch.Tensor):
            tri = self.mesh.to(torch.float64) * scale
        else:
            if not Path(self.mesh).is_file():
                raise ValueError(f"MeshObstacle {self.name!r}: no such mesh file {str(self.mesh)!r}")
            tri = load_mesh_triangles(self.mesh, (scale,) * 3)
        fit = fit_link_spheres(tri, tol, seed=self.seed)
        R = quat_xyzw_to_matrix(quat)
        for k, v in (("position", pos), ("quat", quat), ("scale", scale), ("tolerance", tol),
                     ("centers", fit.centers @ R.T + torch.tensor(pos, dtype=torch.float64)),
                     ("radii", fit.radii + fit.surface_error), ("surface_error", fit.surface_error)):
            object.__setattr__(self, k, v)


@dataclass(frozen=True, eq=False)
class PointCloud:
    """Points ``(N, 3)`` (m, base frame) as balls of ``radius``, or with ``voxel`` (m) one ball per occupied
    voxel, centred on it, of radius ``voxel sqrt(3) / 2`` (plus ``radius`` when given).

    Attributes:
        centers (K, 3), radii (K,): the balls (float64).
    """

    points: torch.Tensor
    radius: float = 0.0
    voxel: Optional[float] = None
    name: str = "pointcloud"
    centers: torch.Tensor = field(init=False, repr=False)
    radii: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        p = torch.as_tensor(self.points, dtype=torch.float64)
        if p.dim() != 2 or p.shape[-1] != 3 or len(p) == 0:
            raise ValueError(f"PointCloud {self.name!r} points must have shape (N, 3), N > 0, got {tuple(p.shape)}")
        if not bool(torch.isfinite(p).all()):
            raise ValueError(f"PointCloud {self.name!r} points must be finite ({int((~torch.isfinite(p)).sum())} "
                             f"entries are not)")
        r = float(self.radius)
        if not (math.isfinite(r) and r >= 0):
            raise ValueError(f"PointCloud {self.name!r} radius must be finite and >= 0, got {self.radius!r}")
        if self.voxel is None:
            if r <= 0:
                raise ValueError(f"PointCloud {self.name!r} needs radius > 0 or voxel > 0")
            centers = p
        else:
            v = _positive(self.voxel, f"PointCloud {self.name!r} voxel")
            centers = (torch.unique(torch.floor(p / v), dim=0) + 0.5) * v
            r = r + v * math.sqrt(3) / 2
        object.__setattr__(self, "points", p)
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "radii", torch.full((len(centers),), r, dtype=torch.float64))


Obstacle = Union[Box, Ball, HalfSpace, MeshObstacle, PointCloud]
SPHERE_SETS = (Ball, MeshObstacle, PointCloud)
OBSTACLE_TYPES = {"box": Box, "ball": Ball, "sphere": Ball, "halfspace": HalfSpace, "plane": HalfSpace,
                  "mesh": MeshObstacle, "pointcloud": PointCloud}
_KEYS = {"box": {"center", "half_extents", "quat"}, "ball": {"center", "radius"}, "sphere": {"center", "radius"},
         "halfspace": {"point", "normal"}, "plane": {"point", "normal"},
         "mesh": {"file", "position", "quat", "scale", "tolerance", "seed"},
         "pointcloud": {"file", "points", "radius", "voxel"}}


# ------------------------------------------------------------------------------------------- the scene
class Scene:
    """The obstacles around a robot (base frame), shared by collision checkers, samplers and planners.

    ``Scene(obstacles)`` takes any iterable of obstacles (see the module docstring); :meth:`from_yaml` reads
    a file. Iterating a scene yields its obstacles; :meth:`tensors` packs them for batched distances.
    """

    def __init__(self, obstacles: Iterable[Obstacle] = ()):
        obstacles = list(obstacles)
        for i, o in enumerate(obstacles):
            if not isinstance(o, tuple(OBSTACLE_TYPES.values())):
                raise TypeError(f"Scene: obstacle {i} must be an obstacle (Box or Ball, HalfSpace, MeshObstacle, "
                                f"PointCloud); got {type(o).__name__}")
        self.obstacles: Tuple[Obstacle, ...] = tuple(obstacles)

    def __iter__(self):
        return iter(self.obstacles)

    def __len__(self) -> int:
        return len(self.obstacles)

    def __repr__(self) -> str:
        return f"Scene([{', '.join(f'{type(o).__name__}({o.name!r})' for o in self.obstacles)}])"

    def __add__(self, other) -> "Scene":
        return Scene(self.obstacles + tuple(other))

    @classmethod
    def from_yaml(cls, path) -> "Scene":
        """Read a scene file (module docstring); ValueError naming the file, obstacle and field when bad."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"Scene.from_yaml: no such file {str(path)!r}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from None
        return cls.from_dict(data, source=str(path), base_dir=path.parent)

    @classmethod
    def from_dict(cls, data, source: str = "<scene>", base_dir=None) -> "Scene":
        """A scene from parsed YAML ``data``: ``{"obstacles": [{"type": ..., ...}, ...]}``."""
        if not isinstance(data, dict) or set(data) != {"obstacles"} or not isinstance(data["obstacles"], list):
            raise ValueError(f"{source}: a scene is a mapping with one key 'obstacles' (a list), got "
                             f"{data if not isinstance(data, dict) else sorted(data)!r}")
        entries = [_check_entry(e, i, source, Path(base_dir or ".")) for i, e in enumerate(data["obstacles"])]
        out = []
        for i, (kind, kw) in enumerate(entries):
            try:
                out.append(OBSTACLE_TYPES[kind](**kw))
            except ValueError as e:
                raise ValueError(f"{source}: obstacle {i} ({kind}): {e}") from None
        return cls(out)

    def tensors(self, dtype=torch.float64, device=None) -> "SceneTensors":
        """The obstacles packed for batched distances (:class:`SceneTensors`)."""
        return SceneTensors(self, dtype, device)


def _check_entry(e, i: int, source: str, base_dir: Path):
    """``(type, keyword arguments)`` of one YAML obstacle, every field checked (finite, sizes > 0)."""
    where = f"{source}: obstacle {i}"
    if not isinstance(e, dict) or "type" not in e:
        raise ValueError(f"{where}: must be a mapping with a 'type' ({', '.join(OBSTACLE_TYPES)}), got {e!r}")
    kind = str(e["type"]).lower()
    if kind not in OBSTACLE_TYPES:
        raise ValueError(f'{where}: unknown obstacle type "{e["type"]}". Must be one of {sorted(OBSTACLE_TYPES)}')
    kw = {k: v for k, v in e.items() if k != "type"}
    extra = set(kw) - _KEYS[kind] - {"name"}
    if extra:
        raise ValueError(f"{where} ({kind}): unknown key(s) {sorted(extra)}; allowed: {sorted(_KEYS[kind] | {'name'})}")
    try:
        for k, v in kw.items():                  # NaN / inf anywhere in the entry
            vals = v if isinstance(v, list) else [v]
            flat = [x for row in vals for x in (row if isinstance(row, list) else [row])]
            if any(isinstance(x, float) and not math.isfinite(x) for x in flat):
                raise ValueError(f"{k} must be finite, got {v!r}")
        if kind == "box" and any(float(h) <= 0 for h in kw.get("half_extents", [1])):
            raise ValueError(f"half_extents must be > 0, got {kw['half_extents']!r}")
        for k in ("radius", "scale", "tolerance", "voxel"):
            if k in kw and not float(kw[k]) >= (0 if (kind, k) == ("pointcloud", "radius") else 1e-300):
                raise ValueError(f"{k} must be > 0, got {kw[k]!r}")
        if "file" in kw:
            f = Path(kw.pop("file"))
            f = f if f.is_absolute() else base_dir / f
            if not f.is_file():
                raise ValueError(f"no such file {str(f)!r}")
            if kind == "mesh":
                kw["mesh"] = str(f)
            else:
                kw["points"] = _read_points(f)
        if kind == "mesh" and "mesh" not in kw:
            raise ValueError("needs file: a mesh file")
        if kind == "pointcloud" and "points" not in kw:
            raise ValueError("needs points: [[x, y, z], ...] or file: a .npy / .txt of (N, 3)")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} ({kind}): {err}") from None
    return kind, kw


def _read_points(path: Path) -> torch.Tensor:
    import numpy as np

    arr = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    return torch.as_tensor(np.asarray(arr, dtype=np.float64))


class SceneTensors:
    """A scene's obstacles as tensors, and batched signed distances from points to them.

    Attributes: ``box_c (Kb, 3)``, ``box_h (Kb, 3)``, ``box_R (Kb, 3, 3)``; ``ball_c (Ks, 3)``, ``ball_r
    (Ks,)`` (balls, mesh and point-cloud spheres together); ``plane_n (Kp, 3)``, ``plane_d (Kp,)`` (the solid
    is ``n . x <= d``).
    """

    def __init__(self, scene: Scene, dtype=torch.float64, device=None):
        kw = dict(dtype=dtype, device=device)
        obs = list(scene)
        boxes = [o for o in obs if isinstance(o, Box)]
        spheres = [o for o in obs if isinstance(o, SPHERE_SETS)]
        planes = [o for o in obs if isinstance(o, HalfSpace)]
        self.box_c = torch.tensor([b.center for b in boxes], **kw).reshape(-1, 3)
        self.box_h = torch.tensor([b.half_extents for b in boxes], **kw).reshape(-1, 3)
        self.box_R = (torch.stack([quat_xyzw_to_matrix(b.quat) for b in boxes]) if boxes
                      else torch.zeros(0, 3, 3, dtype=torch.float64)).to(**kw)
        cs = [torch.tensor([o.center], dtype=torch.float64) if isinstance(o, Ball) else o.centers for o in spheres]
        rs = [torch.tensor([o.radius], dtype=torch.float64) if isinstance(o, Ball) else o.radii for o in spheres]
        self.ball_c = (torch.cat(cs) if cs else torch.zeros(0, 3, dtype=torch.float64)).to(**kw)
        self.ball_r = (torch.cat(rs) if rs else torch.zeros(0, dtype=torch.float64)).to(**kw)
        self.plane_n = torch.tensor([p.normal for p in planes], **kw).reshape(-1, 3)
        self.plane_d = torch.tensor([sum(a * b for a, b in zip(p.normal, p.point)) for p in planes], **kw)

    @property
    def empty(self) -> bool:
        return not (len(self.box_c) or len(self.ball_c) or len(self.plane_n))

    def distance(self, p: torch.Tensor, planes: bool = True) -> torch.Tensor:
        """Signed distance ``(...,)`` (m) from points ``p (..., 3)`` to the nearest obstacle (``inf`` when
        none); exact for every obstacle type (the spheres of meshes and point clouds as balls). ``planes``
        False leaves half-spaces out (the fixed base stands on them)."""
        out = p.new_full(p.shape[:-1], math.inf)
        if len(self.box_c):
            loc = torch.einsum("kji,...kj->...ki", self.box_R, p.unsqueeze(-2) - self.box_c)   # (..., Kb, 3)
            d = loc.abs() - self.box_h
            out = torch.minimum(out, (d.clamp_min(0).norm(dim=-1) + d.amax(-1).clamp_max(0)).amin(-1))
        if planes and len(self.plane_n):
            out = torch.minimum(out, (p @ self.plane_n.T - self.plane_d).amin(-1))
        chunk = max(1, (1 << 22) // max(p[..., 0].numel(), 1))       # point-ball pairs per step: 4M
        for k in range(0, len(self.ball_c), chunk):
            c, r = self.ball_c[k:k + chunk], self.ball_r[k:k + chunk]
            d = (p.unsqueeze(-2) - c).norm(dim=-1) - r
            out = torch.minimum(out, d.amin(-1))
        return out
