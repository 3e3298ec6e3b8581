r"""Link collision geometry of an MJCF robot, read from MuJoCo's compiled model (float64).

Every geom belongs to the link of its body (:mod:`posegen.robots.mjcf`: bodies are links), the world body's to
the root link ``world`` (static scenery there, a table, is then part of the robot: give it ``contype="0"
conaffinity="0"`` and put it in the :class:`~posegen.robots.scene.Scene` instead). Which geoms:

* **Collision vs visual: MuJoCo's rule.** A geom with ``contype == 0`` and ``conaffinity == 0`` never collides
  in MuJoCo (the usual ``class="visual"`` geoms): it is left out; every other geom is collision geometry,
  whatever its ``group``.
* **Kinds**: ``sphere``, ``capsule``, ``cylinder``, ``box``, ``ellipsoid`` and ``mesh`` become
  :class:`~posegen.robots.collisiongeometry.CollisionGeometry`; ``plane`` and ``hfield`` geoms are floors and
  terrain, not robot parts: they are skipped wherever they are; an ``sdf`` geom (a plugin's implicit surface)
  is refused.
* **Frames**: MuJoCo's compiler resolves defaults, ``fromto``, ``euler`` / ``axisangle`` and angle units into
  ``geom_pos`` and ``geom_quat`` (w, x, y, z; stored here as x, y, z, w). It also moves each mesh to its centre
  of mass and principal axes and compensates in the geom's pose, so the compiled vertices (``mesh_vert``, float32,
  scaled) are used with the compiled geom pose: together they give the mesh where the file put it (to float32
  precision, about 1e-7 of its size).
* **Sizes** (MuJoCo gives half-sizes): a box's edge lengths ``2 size``, a cylinder's and a capsule's length
  ``2 size[1]`` (a capsule's: its cylinder part), an ellipsoid's semi-axes ``size``.

A mesh is its triangles as given (``mesh_face``), not the convex hull MuJoCo's own contacts use: the same
geometry a URDF ``<collision>`` mesh gives.

Measured (``benchmarks/collision_accuracy.py --robots kuka_iiwa_mjcf``, ``benchmarks/results/
collision_accuracy_mjcf.json``, this project's shared 2-core CPU): pybullet's kuka_iiwa translated to MJCF by
MuJoCo fits to the URDF's spheres (surface errors equal to 1e-8 m) and, against its exact compiled meshes over 1000
configurations, the default model misses 0.78 % of ball contacts (none deeper than 1.6 mm) with 1.24 % false
alarms, 0.24 / 0.71 % for cubes; ``conservative=True`` misses none (11.2 / 5.3 % false alarms, within 6.1 mm).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple, Union

import torch

from .collisiongeometry import CollisionGeometry
from .mjcf import compile_mjcf, mjcf_body_names

__all__ = ["mjcf_collision_geometry", "read_mjcf_collision_geometry", "SKIPPED_KINDS"]

# mjtGeom values (stable since MuJoCo 2.1): plane 0, hfield 1, sphere 2, capsule 3, ellipsoid 4, cylinder 5,
# box 6, mesh 7, sdf 8
_KIND = {2: "sphere", 3: "capsule", 4: "ellipsoid", 5: "cylinder", 6: "box", 7: "mesh"}
SKIPPED_KINDS = {0: "plane", 1: "hfield"}


def _size(kind: str, s) -> Tuple[float, ...]:
    if kind == "sphere":
        return (float(s[0]),)
    if kind in ("capsule", "cylinder"):
        return (float(s[0]), 2.0 * float(s[1]))
    if kind == "box":
        return tuple(2.0 * float(v) for v in s)
    if kind == "ellipsoid":
        return tuple(float(v) for v in s)
    return (1.0, 1.0, 1.0)                       # a mesh: its compiled vertices are already scaled


def _mesh_triangles(m, mesh_id: int) -> torch.Tensor:
    """``(T, 3, 3)`` float64 triangles of compiled mesh ``mesh_id``, in its (recentred) mesh frame."""
    v0, nv = int(m.mesh_vertadr[mesh_id]), int(m.mesh_vertnum[mesh_id])
    f0, nf = int(m.mesh_faceadr[mesh_id]), int(m.mesh_facenum[mesh_id])
    verts = torch.as_tensor(m.mesh_vert[v0:v0 + nv], dtype=torch.float64)
    faces = torch.as_tensor(m.mesh_face[f0:f0 + nf], dtype=torch.long)
    return verts[faces]


def mjcf_collision_geometry(m, source: str = "<mjcf>") -> Dict[str, Tuple[CollisionGeometry, ...]]:
    """Every link's collision geometry ``{body link name: (CollisionGeometry, ...)}`` (bodies without any are
    left out) of the compiled ``mujoco.MjModel`` ``m``, by the rules of the module docstring.

    Raises:
        ValueError: an ``sdf`` geom (or a geom type this MuJoCo adds), naming ``source``, the geom and its body.
    """
    bodies = mjcf_body_names(m)
    out: Dict[str, List[CollisionGeometry]] = {}
    for g in range(m.ngeom):
        if int(m.geom_contype[g]) == 0 and int(m.geom_conaffinity[g]) == 0:
            continue                                                       # visual: never collides
        gtype, link = int(m.geom_type[g]), bodies[int(m.geom_bodyid[g])]
        if gtype in SKIPPED_KINDS:
            continue                                                       # floors and terrain
        if gtype not in _KIND:
            name = m.geom(g).name or f"geom{g}"
            raise ValueError(f"{source}: geom {name!r} of body {link!r} has MuJoCo type {gtype}; collision "
                             f"geometry must be one of {', '.join(_KIND.values())} (or plane / hfield, skipped); "
                             f"give it contype=\"0\" conaffinity=\"0\" or pass spheres=")
        kind = _KIND[gtype]
        w, x, y, z = (float(v) for v in m.geom_quat[g])
        triangles = _mesh_triangles(m, int(m.geom_dataid[g])) if kind == "mesh" else None
        geom = CollisionGeometry(link, kind, tuple(float(v) for v in m.geom_pos[g]), (0.0, 0.0, 0.0),
                                 _size(kind, m.geom_size[g]), quat=(x, y, z, w), triangles=triangles)
        out.setdefault(link, []).append(geom)
    return {k: tuple(v) for k, v in out.items()}


def read_mjcf_collision_geometry(path: Union[str, os.PathLike]) -> Dict[str, Tuple[CollisionGeometry, ...]]:
    """:func:`mjcf_collision_geometry` of the MJCF file ``path``, compiled from its folder
    (:func:`posegen.robots.mjcf.compile_mjcf`: a missing mesh file is named).

    Raises:
        ValueError: MuJoCo cannot compile the file, or an unsupported collision geom.
        ImportError: mujoco is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"read_mjcf_collision_geometry: no such MJCF file {str(path)!r}")
    return mjcf_collision_geometry(compile_mjcf(None, str(path), path), str(path))
