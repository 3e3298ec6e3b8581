"""Grasp files in ACRONYM's HDF5 layout (Eppner et al., ICRA 2021; NVlabs/acronym), read and written.

The layout of the dataset's files (``data/examples/grasps/*.h5`` of NVlabs/acronym), all of which
:func:`load_acronym` reads and :func:`save_acronym` writes::

    grasps/transforms                      (N, 4, 4) float64   gripper base frame in the object's mesh frame
    grasps/qualities/<sim>/object_in_gripper   (N,) int64      1 = the object stayed in the gripper
    grasps/qualities/posegen/log_prob      (N,) float64        a grasp model's log-density (posegen grasps sample)
    grasps/qualities/<sim>/object_motion_during_{closing,shaking}_{linear,angular}   (N,) float64
    object/file                            str (variable-length UTF-8 scalar)   mesh path, relative to a mesh root
    object/scale                           float64 scalar      mesh units -> metres
    object/{com (3,), inertia (3, 3), mass, volume, density, friction}   float64
    gripper/type                           str ("panda")
    gripper/configuration                  (1,) float64        opening of each finger (m), 0.04 = fully open

ACRONYM's own simulator is ``flex``; posegen's physics test writes ``mujoco``. posegen adds a group
``posegen`` whose attribute ``provenance`` is a JSON object (generator, version, seeds, settings), which
ACRONYM's tools ignore. The grasp frame is ACRONYM's Franka gripper frame (:mod:`posegen.grasps.gripper`).
Writes are atomic (:mod:`posegen.atomic`): a failed save leaves no file and any previous file untouched.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional

import h5py
import numpy as np
import torch

from ..atomic import atomic_path
from .checks import check_labels, check_transforms

__all__ = ["AcronymGrasps", "load_acronym", "save_acronym", "object_properties", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("grasps/transforms", "grasps/qualities", "object/file", "object/scale")
OBJECT_KEYS = ("com", "inertia", "mass", "volume", "density", "friction")


@dataclass
class AcronymGrasps:
    """The contents of one ACRONYM grasp file, arrays exactly as stored (dtypes kept).

    Attributes:
        transforms: ``(N, 4, 4)`` float64 tensor, gripper base frame in the mesh frame.
        success: ``(N,)`` bool tensor, ``object_in_gripper`` of ``sim``; None for a file without physics labels
            (grasps sampled by a model, scored by ``qualities["posegen"]["log_prob"]``).
        sim: the simulator whose labels ``success`` holds (``"flex"`` for ACRONYM's own files); None without labels.
        qualities: ``{sim: {name: (N,) tensor}}``, every per-grasp array under ``grasps/qualities``.
        object_file: the mesh path as stored (relative to the data set's mesh root).
        object_scale: mesh units -> metres.
        object: the other ``object/*`` entries (``mass``, ``com``, ``inertia``, ...) as numpy values.
        gripper_type: ``gripper/type`` (None if absent).
        gripper_configuration: ``gripper/configuration`` (None if absent).
        provenance: posegen's provenance dict (None for files posegen did not write).
        path: the file it was read from.
    """

    transforms: torch.Tensor
    success: Optional[torch.Tensor]
    sim: Optional[str]
    qualities: Dict[str, Dict[str, torch.Tensor]]
    object_file: str
    object_scale: float
    object: Dict[str, np.ndarray] = field(default_factory=dict)
    gripper_type: Optional[str] = None
    gripper_configuration: Optional[np.ndarray] = None
    provenance: Optional[dict] = None
    path: Optional[str] = None

    def __len__(self) -> int:
        return int(self.transforms.shape[0])

    def load_object(self, mesh_root=None, **kwargs):
        """The grasped object: ``mesh_root / object_file`` at ``object_scale`` (:func:`posegen.grasps.load_object`;
        ``mesh_root`` defaults to this file's folder, where ``posegen grasps generate`` makes it relative to)."""
        from .objects import load_object

        root = Path(self.path).parent if mesh_root is None and self.path else Path(mesh_root or ".")
        return load_object(root / self.object_file, self.object_scale, **kwargs)


def _str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _not_acronym(path, why: str) -> ValueError:
    return ValueError(f"'{path}' is not an ACRONYM grasp file: {why} (expected {', '.join(REQUIRED_KEYS)})")


def load_acronym(path, sim: Optional[str] = None) -> AcronymGrasps:
    """Read an ACRONYM grasp file (or one :func:`save_acronym` wrote).

    Args:
        path: the ``.h5`` file.
        sim: whose ``object_in_gripper`` labels become ``success``; default ``"flex"`` when present, else the
            only simulator in the file.

    Raises:
        FileNotFoundError: no such file. ValueError: not an HDF5 file with ACRONYM's layout (one message
        naming what is missing or misshapen), or ``sim`` not in the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"grasp file '{p}' does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise _not_acronym(p, "it is not an HDF5 file") from None
    with f:
        missing = [k for k in REQUIRED_KEYS if k not in f]
        if missing:
            raise _not_acronym(p, f"missing {missing}")
        T = f["grasps/transforms"][()]
        if T.ndim != 3 or T.shape[1:] != (4, 4):
            raise _not_acronym(p, f"grasps/transforms has shape {T.shape}, expected (N, 4, 4)")
        qualities = _read_qualities(f, p, len(T))
        sim = _pick_sim(qualities, sim, p)
        obj = {k: f[f"object/{k}"][()] for k in OBJECT_KEYS if f"object/{k}" in f}
        prov = None
        if "posegen" in f and "provenance" in f["posegen"].attrs:
            prov = json.loads(_str(f["posegen"].attrs["provenance"]))
        return AcronymGrasps(
            transforms=torch.from_numpy(T), sim=sim,
            success=None if sim is None else qualities[sim]["object_in_gripper"].to(torch.bool),
            qualities=qualities, object_file=_str(f["object/file"][()]), object_scale=float(f["object/scale"][()]),
            object=obj, gripper_type=_str(f["gripper/type"][()]) if "gripper/type" in f else None,
            gripper_configuration=f["gripper/configuration"][()] if "gripper/configuration" in f else None,
            provenance=prov, path=str(p))


def _read_qualities(f, p: Path, n: int) -> Dict[str, Dict[str, torch.Tensor]]:
    group = f["grasps/qualities"]
    if not isinstance(group, h5py.Group) or len(group) == 0:
        raise _not_acronym(p, "grasps/qualities holds no simulator group")
    out = {}
    for sim, g in group.items():
        if not isinstance(g, h5py.Group):
            raise _not_acronym(p, f"grasps/qualities/{sim} is not a group")
        arrays = {}
        for name, d in g.items():
            a = d[()]
            if a.shape != (n,):
                raise _not_acronym(p, f"grasps/qualities/{sim}/{name} has shape {a.shape}, expected ({n},)")
            arrays[name] = torch.from_numpy(a)
        out[sim] = arrays
    return out


def _pick_sim(qualities, sim: Optional[str], p: Path) -> Optional[str]:
    """The group whose ``object_in_gripper`` becomes ``success``; None when no group has labels (scores only,
    e.g. the ``posegen/log_prob`` of ``posegen grasps sample``)."""
    labelled = sorted(k for k, g in qualities.items() if "object_in_gripper" in g)
    if sim is not None:
        if sim not in labelled:
            raise ValueError(f"grasp file '{p}' has no labels of sim {sim!r}; it has labels of {labelled}")
        return sim
    if "flex" in labelled:
        return "flex"
    if len(labelled) <= 1:
        return labelled[0] if labelled else None
    raise ValueError(f"grasp file '{p}' has labels of several simulators {labelled}; pass sim=")


def object_properties(obj, density: float = 150.0, friction: float = 1.0) -> Dict[str, np.ndarray]:
    """ACRONYM's ``object/*`` physical entries of a :class:`~posegen.grasps.GraspObject` at ``density``
    (kg/m^3; ACRONYM's 150) and ``friction``: mass, com (3,), inertia (3, 3) about the com, volume, in SI.

    A mesh that is not watertight has no volume: mass, com, inertia and volume are left out.
    """
    props = {"density": np.float64(density), "friction": np.float64(friction)}
    if obj.is_watertight and obj.mesh.volume > 0:
        m = obj.mesh
        props.update(volume=np.float64(m.volume), mass=np.float64(m.volume * density),
                     com=np.asarray(m.center_mass, np.float64),
                     inertia=np.asarray(m.moment_inertia, np.float64) * density)
    return props


def _check_arrays(values, n: int, what: str) -> Dict[str, np.ndarray]:
    arrays = {}
    for name, v in (values or {}).items():
        a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{what}: names must be non-empty strings without '/', got {name!r}")
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{what}[{name!r}] must be a numeric array of shape ({n},), got {a.dtype} {a.shape}")
        arrays[name] = a
    return arrays


def _check_save(transforms, success, object_file, object_scale, qualities, sim, scores):
    T = check_transforms(transforms, "transforms")
    ok = None if success is None else check_labels(success, len(T), "success")
    if ok is None and qualities:
        raise ValueError("qualities are the physics test's arrays beside its labels: pass success too")
    if not isinstance(object_file, (str, Path)) or not str(object_file):
        raise ValueError(f"object_file must be a non-empty path string, got {object_file!r}")
    try:
        scale = float(object_scale)
    except (TypeError, ValueError):
        scale = math.nan
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"object_scale must be a finite number > 0, got {object_scale!r}")
    if not isinstance(sim, str) or not sim or "/" in sim:
        raise ValueError(f"sim must be a non-empty name without '/', got {sim!r}")
    if "object_in_gripper" in (qualities or {}):
        raise ValueError("qualities must not hold object_in_gripper: pass it as success")
    arrays = _check_arrays(qualities, len(T), "qualities")
    groups = {}
    for group, values in (scores or {}).items():
        if not isinstance(group, str) or not group or "/" in group or (ok is not None and group == sim):
            raise ValueError(f"scores: a group name must be a non-empty string without '/', other than sim "
                             f"{sim!r}, got {group!r}")
        if "object_in_gripper" in values:
            raise ValueError(f"scores[{group!r}] must not hold object_in_gripper (labels go in success)")
        groups[group] = _check_arrays(values, len(T), f"scores[{group!r}]")
    return T, ok, scale, arrays, groups


def save_acronym(path, transforms, success, *, object_file, object_scale: float = 1.0,
                 qualities: Optional[Mapping[str, object]] = None, sim: str = "mujoco", gripper: str = "panda",
                 gripper_configuration: float = 0.04, object_props: Optional[Mapping[str, object]] = None,
                 provenance: Optional[dict] = None,
                 scores: Optional[Mapping[str, Mapping[str, object]]] = None) -> Path:
    """Write grasps in ACRONYM's layout (module docstring), atomically; returns the path.

    Args:
        path: the ``.h5`` file (replaced if it exists; its folder must exist).
        transforms: ``(N, 4, 4)`` rigid transforms, gripper base frame in the mesh frame.
        success: ``(N,)`` bools or 0/1: stored as ``grasps/qualities/<sim>/object_in_gripper`` (int64); None for
            grasps without physics labels (sampled by a model: their scores go in ``scores``).
        object_file: the mesh path to store (relative to the mesh root readers will use).
        object_scale: mesh units -> metres.
        qualities: further ``(N,)`` per-grasp arrays for ``grasps/qualities/<sim>/`` (e.g. the motions of
            :func:`posegen.grasps.simulate`).
        sim: the simulator's name in ``grasps/qualities/<sim>``.
        gripper, gripper_configuration: ``gripper/type`` and the opening per finger (m) the grasps start at.
        object_props: ``object/*`` entries (:func:`object_properties`).
        provenance: JSON-serialisable dict stored as ``posegen/@provenance``.
        scores: further quality groups without labels, ``{group: {name: (N,) array}}`` stored as
            ``grasps/qualities/<group>/<name>`` (``posegen grasps sample`` writes ``{"posegen": {"log_prob": lp}}``).

    Everything is checked before the file is touched: a bad argument raises ValueError and writes nothing.
    """
    T, ok, scale, arrays, groups = _check_save(transforms, success, object_file, object_scale, qualities, sim, scores)
    try:
        prov = json.dumps(provenance or {}, default=str)
    except (TypeError, ValueError) as e:
        raise ValueError(f"provenance must be JSON-serialisable: {e}") from None
    props = {k: np.asarray(v, dtype=np.float64) for k, v in (object_props or {}).items()}
    unknown = sorted(set(props) - set(OBJECT_KEYS))
    if unknown:
        raise ValueError(f"object_props has unknown keys {unknown}; expected some of {list(OBJECT_KEYS)}")
    text = h5py.string_dtype("utf-8")
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            n = max(len(T), 1)
            f.create_dataset("grasps/transforms", data=T, compression="gzip", chunks=(min(n, 500), 4, 4))
            if ok is not None:
                groups = {sim: {"object_in_gripper": ok.astype(np.int64), **arrays}, **groups}
            for group, values in groups.items():
                q = f.create_group(f"grasps/qualities/{group}")
                for name, a in values.items():
                    q.create_dataset(name, data=a, compression="gzip", chunks=(min(n, 1000),))
            f.create_dataset("object/file", data=str(object_file), dtype=text)
            f.create_dataset("object/scale", data=np.float64(scale))
            for k, v in props.items():
                f.create_dataset(f"object/{k}", data=v)
            f.create_dataset("gripper/type", data=str(gripper), dtype=text)
            f.create_dataset("gripper/configuration", data=np.array([gripper_configuration], np.float64))
            f.create_group("posegen").attrs["provenance"] = prov
    return path
