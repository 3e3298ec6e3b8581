"""A training object set regenerated from a seed: random primitives and procedural non-convex shapes.

``make_objects(n, seed)`` draws ``n`` watertight meshes (metres, each in its own frame with its base on
``z = 0`` and centred in ``x, y``), cycling through :data:`KINDS`:

==========  ===================================================================================
box         sides: one in [1.5, 7] cm (graspable), one in [1.5, 12] cm, one in [2, 20] cm
cylinder    radius [1, 3.5] cm, height [2, 20] cm
sphere      radius [1.5, 3.8] cm (diameter below the 8 cm stroke)
capsule     radius [1, 3.5] cm, straight part [1, 15] cm
mug         revolved cup (radius [3, 4.5] cm, wall [4, 8] mm, height [6, 12] cm) united with a torus handle
bowl        revolved bowl (radius [4, 8] cm, wall [3, 6] mm, height [3, 6] cm)
bottle      revolved body (radius [2.5, 4] cm) with shoulder and neck (radius [1, 1.6] cm)
l_shape     union of two boxes meeting at a corner (bars [1.5, 4] cm thick, [5, 15] cm long)
dumbbell    two spheres (radius [2, 3.5] cm) joined by a cylinder bar (radius [0.8, 1.5] cm)
==========  ===================================================================================

Unions use trimesh's ``manifold`` boolean engine (PyPI ``manifold3d``, in the ``grasps`` extra). Nothing is
downloaded and nothing large is committed: the same ``seed`` gives the same meshes on any machine with the
same trimesh/manifold3d (``write_objects`` stores them as OBJ files plus a ``objects.json`` manifest with
every parameter). :func:`pybullet_objects` lists the 1000 procedurally generated objects of
``pybullet_data/random_urdfs`` (zlib licence, shipped with PyPI ``pybullet``) when that is installed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..atomic import atomic_open, atomic_path
from .objects import GraspObject, _trimesh

__all__ = ["KINDS", "make_object", "make_objects", "write_objects", "pybullet_objects"]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _revolve(profile: List[Tuple[float, float]], sections: int = 48):
    """A solid of revolution about ``z`` from an ``(r, z)`` profile polygon (counter-clockwise, closed on r=0)."""
    return _trimesh().creation.revolve(np.asarray(profile, dtype=np.float64), sections=sections)


def _union(meshes):
    return _trimesh().boolean.union(meshes, engine="manifold")


def _box(rng):
    sides = [_u(rng, 0.015, 0.07), _u(rng, 0.015, 0.12), _u(rng, 0.02, 0.20)]
    rng.shuffle(sides)
    return _trimesh().creation.box(sides), {"extents": sides}


def _cylinder(rng):
    r, h = _u(rng, 0.01, 0.035), _u(rng, 0.02, 0.20)
    return _trimesh().creation.cylinder(r, h, sections=48), {"radius": r, "height": h}


def _sphere(rng):
    r = _u(rng, 0.015, 0.038)
    return _trimesh().creation.icosphere(3, r), {"radius": r}


def _capsule(rng):
    r, h = _u(rng, 0.01, 0.035), _u(rng, 0.01, 0.15)
    return _trimesh().creation.capsule(height=h, radius=r, count=[24, 24]), {"radius": r, "height": h}


def _mug(rng):
    tm = _trimesh()
    r, wall, h = _u(rng, 0.03, 0.045), _u(rng, 0.004, 0.008), _u(rng, 0.06, 0.12)
    cup = _revolve([(0.0, 0.0), (r, 0.0), (r, h), (r - wall, h), (r - wall, wall), (0.0, wall)])
    major, minor = _u(rng, 0.4, 0.6) * h / 2, _u(rng, 0.004, 0.008)
    handle = tm.creation.torus(major, minor, major_sections=32, minor_sections=12)
    handle.apply_transform(tm.transformations.rotation_matrix(math.pi / 2, [1, 0, 0]))
    handle.apply_translation([r + major - 2 * minor, 0.0, h / 2])
    return _union([cup, handle]), {"radius": r, "wall": wall, "height": h, "handle_radius": major,
                                   "handle_thickness": minor}


def _bowl(rng):
    r, wall, h = _u(rng, 0.04, 0.08), _u(rng, 0.003, 0.006), _u(rng, 0.03, 0.06)
    foot = 0.4 * r
    return _revolve([(0.0, 0.0), (foot, 0.0), (r, h), (r - wall, h), (foot - wall, wall), (0.0, wall)]), \
        {"radius": r, "wall": wall, "height": h}


def _bottle(rng):
    r, neck, h = _u(rng, 0.025, 0.04), _u(rng, 0.01, 0.016), _u(rng, 0.12, 0.25)
    body, shoulder = 0.6 * h, 0.75 * h
    return _revolve([(0.0, 0.0), (r, 0.0), (r, body), (neck, shoulder), (neck, h), (0.0, h)]), \
        {"radius": r, "neck_radius": neck, "height": h}


def _l_shape(rng):
    tm = _trimesh()
    t1, t2, l1, l2 = _u(rng, 0.015, 0.04), _u(rng, 0.015, 0.04), _u(rng, 0.05, 0.15), _u(rng, 0.05, 0.15)
    a = tm.creation.box([l1, t1, t1])
    a.apply_translation([l1 / 2, 0.0, t1 / 2])
    b = tm.creation.box([t2, l2, t1])
    b.apply_translation([t2 / 2, l2 / 2, t1 / 2])
    return _union([a, b]), {"thickness": [t1, t2], "lengths": [l1, l2]}


def _dumbbell(rng):
    tm = _trimesh()
    r, bar, length = _u(rng, 0.02, 0.035), _u(rng, 0.008, 0.015), _u(rng, 0.06, 0.15)
    ends = [tm.creation.icosphere(3, r).apply_translation([0.0, 0.0, z]) for z in (-length / 2, length / 2)]
    rod = tm.creation.cylinder(bar, length, sections=32)
    return _union(ends + [rod]), {"radius": r, "bar_radius": bar, "length": length}


KINDS: Dict[str, Callable] = {"box": _box, "cylinder": _cylinder, "sphere": _sphere, "capsule": _capsule,
                              "mug": _mug, "bowl": _bowl, "bottle": _bottle, "l_shape": _l_shape,
                              "dumbbell": _dumbbell}


def make_object(kind: str, rng: np.random.Generator, name: Optional[str] = None) -> Tuple[GraspObject, dict]:
    """One random object of ``kind`` (:data:`KINDS`) and its parameters, base on ``z = 0``, centred in x, y."""
    if kind not in KINDS:
        raise ValueError(f'Invalid kind "{kind}". Must be one of {sorted(KINDS)}')
    mesh, params = KINDS[kind](rng)
    lo, hi = mesh.bounds
    mesh.apply_translation([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    if not mesh.is_watertight:
        raise RuntimeError(f"generated {kind} is not watertight (trimesh / manifold3d versions?)")
    return GraspObject.from_trimesh(mesh, name=name or kind), {"kind": kind, **params}


def make_objects(n: int = 300, seed: int = 0, kinds: Optional[List[str]] = None) -> List[Tuple[GraspObject, dict]]:
    """``n`` objects cycling through ``kinds`` (default all of :data:`KINDS`), named ``<kind>_<index:04d>``;
    object ``i`` uses ``numpy.random.default_rng([seed, i])``, so any subset regenerates alone."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    kinds = list(KINDS) if kinds is None else list(kinds)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f'Invalid kind "{k}". Must be one of {sorted(KINDS)}')
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        out.append(make_object(kind, np.random.default_rng([seed, i]), name=f"{kind}_{i:04d}"))
    return out


def write_objects(folder, n: int = 300, seed: int = 0, kinds: Optional[List[str]] = None) -> List[Path]:
    """Write :func:`make_objects` as ``folder/<name>.obj`` (metres) and ``folder/objects.json`` (seed,
    versions, every object's kind and parameters); returns the OBJ paths. The folder is created."""
    import trimesh

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    objects = make_objects(n, seed, kinds)
    paths = []
    for obj, _ in objects:
        path = folder / f"{obj.name}.obj"
        with atomic_path(path) as tmp:
            obj.mesh.export(tmp, file_type="obj")
        paths.append(path)
    manifest = {"generator": "posegen.grasps.objectset.make_objects", "n": n, "seed": seed,
                "kinds": kinds or list(KINDS), "trimesh": trimesh.__version__, "units": "m",
                "objects": [{"file": p.name, **params} for p, (_, params) in zip(paths, objects)]}
    with atomic_open(folder / "objects.json") as fh:
        json.dump(manifest, fh, indent=1)
    return paths


def pybullet_objects() -> List[Path]:
    """The URDFs of ``pybullet_data/random_urdfs`` (1000 procedurally generated objects, zlib licence), or
    an empty list when PyPI ``pybullet`` is not installed. Load them with :func:`posegen.grasps.load_object`."""
    try:
        import pybullet_data
    except ImportError:
        return []
    root = Path(pybullet_data.getDataPath()) / "random_urdfs"
    return sorted(root.glob("*/*.urdf"))
