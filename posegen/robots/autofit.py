r"""A robot's sphere table fitted to the collision geometry of its URDF or MJCF file, cached by content hash.

:func:`fit_sphere_table` reads every link's collision geometry (:mod:`posegen.robots.geometry`: URDF
``<collision>`` elements; MJCF geoms that can collide, :mod:`posegen.robots.mjcfgeometry`), fits
spheres to it (:func:`posegen.robots.spherefit.fit_link_spheres`: inside the geometry, every surface sample
within ``tolerance`` of their union, the measured surface error stored per link), finds the self-collision
pairs to leave out with MoveIt's rules (:mod:`posegen.robots.selfcollision`), and writes the table as YAML
(the format of the built-in ``*_spheres.yaml``, :func:`posegen.robots.spheres.save_sphere_table`).

The cache: ``<cache_dir>/<robot>-<key>.yaml``, where ``key`` is a SHA-256 of the fit's version and options,
the description file's text and the bytes of every mesh it uses (MJCF: the compiled kinematics and meshes
too); ``cache_dir`` defaults to ``$POSEGEN_CACHE_DIR`` or ``~/.cache/posegen/spheres``. The same inputs and
seed give the same spheres, so a cached file is what a new fit would write. Pass ``cache_dir`` = the
description's folder to keep the table next to the robot's files.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from .geometry import link_triangles, robot_collision_geometry
from .loader import as_robot
from .mjcf import is_mjcf
from .selfcollision import disabled_link_pairs
from .spherefit import fit_link_spheres
from .spheremodel import SphereModel, ready_configuration
from .spheres import Capsule, SphereTable, parse_sphere_table, read_yaml, save_sphere_table

__all__ = ["fit_sphere_table", "fit_table", "default_cache_dir", "fit_key", "FIT_VERSION"]

FIT_VERSION = 1


def default_cache_dir() -> Path:
    """``$POSEGEN_CACHE_DIR`` or ``~/.cache/posegen/spheres``."""
    env = os.environ.get("POSEGEN_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "posegen" / "spheres"


def fit_key(robot, geoms, options: dict, srdf_text: str = "") -> str:
    """Hex SHA-256 of what determines a fit: version, ``options``, the robot's links, its description file
    and its geometry (mesh files; for MJCF also the compiled kinematics, which ``<include>`` files may hold, and
    every geom's quaternion and compiled triangles)."""
    h = hashlib.sha256()
    h.update(repr((FIT_VERSION, sorted(options.items()), robot.link_names, robot.joint_names)).encode())
    text = Path(robot.description.source).read_bytes()
    h.update(text)
    if is_mjcf(text.decode("utf-8", errors="replace")):
        h.update(repr(robot.description.joints).encode())
    h.update(srdf_text.encode())
    for link in sorted(geoms):
        for g in geoms[link]:
            h.update(repr((g.link, g.kind, g.xyz, g.rpy, g.size)).encode())
            if g.mesh:
                h.update(Path(g.mesh).read_bytes())
            if g.quat is not None:
                h.update(repr(g.quat).encode())
            if g.triangles is not None:
                h.update(g.triangles.numpy().tobytes())
    return h.hexdigest()


def fit_table(robot, triangles: Dict[str, torch.Tensor], tolerance: float = 0.005, *, seed: int = 0,
              self_samples: int = 2000, srdf=None, origin: str = "") -> SphereTable:
    """A sphere table of ``robot`` fitted to ``triangles``: ``{link: (T, 3, 3) float64 in the link frame}``
    (:func:`~posegen.robots.spherefit.fit_link_spheres` per link, then MoveIt's disabled pairs); no cache.
    ``origin`` names where the triangles come from, for the table's header."""

    unknown = sorted(set(triangles) - set(robot.link_names))
    if unknown:
        raise ValueError(f"fit_table: {unknown} are not links of {robot.name!r} ({', '.join(robot.link_names)})")
    caps, errors = [], {}
    for link in [lk for lk in robot.link_names if lk in triangles]:
        fit = fit_link_spheres(triangles[link], tolerance, seed=seed)
        caps += [Capsule(link, tuple(c), float(r)) for c, r in zip(fit.centers.tolist(), fit.radii.tolist())]
        errors[link] = fit.surface_error
    table = SphereTable(robot.name, tuple(caps), f"<fitted {robot.name}>", (), errors)
    model = SphereModel(robot, spheres=table, _pairs=False)
    disabled = disabled_link_pairs(model, ready_configuration(robot), n_samples=int(self_samples), seed=seed,
                                   srdf=srdf)
    header = (f"Spheres fitted by posegen.robots.autofit (version {FIT_VERSION}) to the collision geometry of",
              f"{origin or robot.name}: tolerance {tolerance} m, seed {seed}; every sphere lies inside the",
              "link's geometry; surface_error is the largest distance from the link's surface to its spheres",
              "measured on an independent surface sample (m). disable_collisions: MoveIt's setup-assistant rules",
              f"(adjacent, default, always / never in {self_samples} uniform configurations, srdf).")
    return SphereTable(robot.name, tuple(caps), table.source, disabled, errors, header)


def fit_sphere_table(robot, tolerance: float = 0.005, *, seed: int = 0, self_samples: int = 2000,
                     srdf=None, package_dirs: Sequence = (), cache: bool = True,
                     cache_dir: Optional[os.PathLike] = None) -> SphereTable:
    """The sphere table of ``robot`` fitted to its description's collision geometry (module docstring).

    Args:
        robot: a :class:`~posegen.robots.Robot` loaded from a URDF or MJCF file, or its path.
        tolerance: the fit's cover tolerance (m): every surface sample within it of the link's spheres.
        seed: seeds the fit and the self-collision sampling.
        self_samples: uniform configurations for MoveIt's ``always`` / ``never`` rules (0: skip them).
        srdf: an SRDF (path or text) whose ``disable_collisions`` are added.
        package_dirs: folders to resolve a URDF's ``package://`` mesh names in.
        cache, cache_dir: read / write the fitted table in ``cache_dir`` (default :func:`default_cache_dir`).

    Raises:
        ValueError: the robot has no description file or no collision geometry on its links.
        ImportError: trimesh is missing (``pip install "posegen[robots]"``).
    """
    robot = as_robot(robot, "fit_sphere_table")
    geoms = robot_collision_geometry(robot, package_dirs)
    if not geoms:
        raise ValueError(f"robot {robot.name!r} ({robot.description.source}): none of its links "
                         f"({', '.join(robot.link_names)}) has <collision> geometry (MJCF: a geom with contype or "
                         f"conaffinity, not a plane or hfield); pass spheres= instead")
    srdf_text = "" if srdf is None else (Path(srdf).read_text(encoding="utf-8")
                                         if not str(srdf).lstrip().startswith("<") else str(srdf))
    options = dict(tolerance=float(tolerance), seed=int(seed), self_samples=int(self_samples))
    key = fit_key(robot, geoms, options, srdf_text)
    path = Path(cache_dir or default_cache_dir()) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', robot.name)}-{key[:16]}.yaml"
    if cache and path.is_file():
        return parse_sphere_table(read_yaml(path.read_text(encoding="utf-8")), str(path))
    triangles = {lk: link_triangles(geoms[lk]) for lk in robot.link_names if lk in geoms}
    table = fit_table(robot, triangles, tolerance, seed=seed, self_samples=self_samples, srdf=srdf_text or None,
                      origin=robot.description.source)
    table = replace(table, source=str(path) if cache else table.source, header=table.header + (f"key: {key}",))
    if cache:
        save_sphere_table(table, path)
    return table
