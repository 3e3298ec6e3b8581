"""posegen's own HDF5 layout for data sets and samples (``format = "posegen-points"``, version 1).

Layout::

    /                  attrs: format="posegen-points", format_version=1, posegen_version, created (UTC ISO),
                              provenance (JSON: source file, keys, ...)
    /points            (N, coord_dim) float32 or float64; attrs: manifold (spec string, e.g. "R3 x SO3"),
                              quat_order ("xyzw" or "wxyz": how the SO3 columns are stored), columns (JSON)
    /conditions        optional (N, c); attrs: condition_columns (JSON)
    /groups            optional (N,) int64; attrs: group_names (JSON)

Files are written atomically (:func:`posegen.atomic.atomic_path`: a temporary file in the same folder,
fsync, then ``os.replace``), so a crash while writing leaves any earlier file intact and no partial file
under the final name. Values round-trip exactly, in their dtype.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import h5py
import numpy as np
import torch

from ..atomic import atomic_path
from ..manifolds import parse
from ..rotations import check_quat_order
from ..version import __version__
from .dataset import PoseDataset
from .validate import as_float_tensor, convert_quats, validate_points

FORMAT = "posegen-points"
FORMAT_VERSION = 1


def _posegen_version() -> str:
    return __version__


@contextlib.contextmanager
def open_h5(path, kind: str = "HDF5"):
    """Open ``path`` read-only (nothing on disk changes). A missing file raises :class:`FileNotFoundError`;
    a file that is not HDF5, or truncated, raises :class:`ValueError` -- also when a read inside the
    ``with`` block fails on a damaged file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{kind} file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory, not a {kind} file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{str(path)!r} is not a readable HDF5 file (not HDF5, or truncated/corrupt): {e}") from None
    try:
        with f:
            yield f
    except (OSError, RuntimeError) as e:  # h5py reports damaged chunks/heaps as OSError or RuntimeError
        raise ValueError(f"{str(path)!r} is not a readable HDF5 file (reading failed, truncated/corrupt?): "
                         f"{e}") from None


def attr_str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def save_points(path, points, manifold=None, *, columns: Optional[Sequence[str]] = None, conditions=None,
                condition_columns: Optional[Sequence[str]] = None, groups=None,
                group_names: Optional[Sequence[str]] = None, quat_order: str = "xyzw",
                provenance: Optional[dict] = None, overwrite: bool = False,
                compression: Optional[str] = None, extras: Optional[Mapping[str, Any]] = None) -> Path:
    """Write points ``(N, coord_dim)`` on ``manifold`` (and optional conditions/groups) to ``path``.

    ``points`` may be a :class:`PoseDataset`; its manifold, columns, conditions, groups and meta (as
    provenance) are used unless given here. Points are checked against the manifold first (strictly:
    nothing is renormalised, so what is written is what was passed). ``quat_order="wxyz"`` stores the
    SO3 columns as w, x, y, z and records it; :func:`load_points` converts back. An existing file is
    refused unless ``overwrite=True``. ``compression`` (e.g. ``"gzip"``) is passed to h5py (lossless).
    ``extras`` maps names to arrays ``(N, ...)`` stored row by row beside the points under ``extras/<name>``
    (e.g. the forward-kinematics pose of sampled joints); :func:`load_extras` reads them back.
    Returns the path written.
    """
    if isinstance(points, PoseDataset):
        ds = points
        manifold = ds.manifold if manifold is None else manifold
        points = ds.points
        columns = ds.columns if columns is None else columns
        if conditions is None and ds.conditions is not None:
            conditions = ds.conditions
            condition_columns = ds.condition_columns if condition_columns is None else condition_columns
        if groups is None and ds.groups is not None:
            groups, group_names = ds.groups, ds.group_names if group_names is None else group_names
        provenance = ds.meta if provenance is None else provenance
    if manifold is None:
        raise ValueError("save_points needs manifold= (a Product or spec string) unless points is a PoseDataset")
    manifold = parse(manifold)
    quat_order = check_quat_order(quat_order)
    x = as_float_tensor(points, "points").detach()
    manifold.check_point(x)
    # A PoseDataset checks the shapes and column counts of everything; its constructor is the one check.
    ds = PoseDataset(x, manifold, conditions=None if conditions is None else torch.as_tensor(conditions).detach(),
                     groups=None if groups is None else torch.as_tensor(groups).detach(), group_names=group_names,
                     columns=columns, condition_columns=condition_columns, check=False)
    try:
        prov = json.dumps(provenance or {}, default=str)
    except (TypeError, ValueError) as e:
        raise ValueError(f"provenance must be JSON-serialisable: {e}") from None

    extras = {str(k): np.asarray(torch.as_tensor(v).detach().cpu()) for k, v in (extras or {}).items()}
    bad = [k for k, v in extras.items() if v.ndim < 1 or v.shape[0] != x.shape[0] or not k.isidentifier()]
    if bad:
        raise ValueError(f"extras {bad} must be arrays with one row per point ({x.shape[0]}) and names that "
                         f"are identifiers")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    if not path.parent.exists():
        raise FileNotFoundError(f"folder {str(path.parent)!r} does not exist")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["posegen_version"] = _posegen_version()
        f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        f.attrs["provenance"] = prov
        stored = convert_quats(manifold, x, quat_order, to_xyzw=False)
        d = f.create_dataset("points", data=stored.cpu().numpy(), compression=compression)
        d.attrs["manifold"] = manifold.spec
        d.attrs["quat_order"] = quat_order
        d.attrs["columns"] = json.dumps(ds.columns)
        if ds.conditions is not None:
            c = f.create_dataset("conditions", data=ds.conditions.cpu().numpy(), compression=compression)
            c.attrs["condition_columns"] = json.dumps(ds.condition_columns)
        if ds.groups is not None:
            g = f.create_dataset("groups", data=ds.groups.cpu().numpy(), compression=compression)
            g.attrs["group_names"] = json.dumps(ds.group_names)
        for name, value in (extras or {}).items():
            f.create_dataset(f"extras/{name}", data=value, compression=compression)
    return path


def load_extras(path) -> Dict[str, torch.Tensor]:
    """The ``extras`` arrays of a points file written by :func:`save_points` (empty if it has none)."""
    with open_h5(path, "posegen points") as f:
        if "extras" not in f:
            return {}
        return {k: torch.from_numpy(np.asarray(v[()])) for k, v in f["extras"].items()}


def load_points(path, *, nonfinite: str = "raise") -> PoseDataset:
    """Read a file written by :func:`save_points` into a :class:`PoseDataset` (dtype as stored, quaternions
    xyzw whatever the stored order).

    Refuses, with a :class:`ValueError`: a file that is not HDF5, not a posegen points file (``format``
    attribute), a ``format_version`` this posegen cannot read, a manifold spec that does not parse, and
    points that are not on the manifold (checked with :func:`validate_points`; ``nonfinite`` as there).
    """
    with open_h5(path, "posegen points") as f:
        fmt = attr_str(f.attrs.get("format", ""))
        if fmt != FORMAT:
            hint = " (it has a 'data' group: a robomimic file? use load_robomimic)" if "data" in f else ""
            raise ValueError(f"{str(path)!r} is not a posegen points file: root attribute format is "
                             f"{fmt or 'missing'!r}, expected {FORMAT!r}{hint}")
        version = f.attrs.get("format_version")
        version = version.item() if hasattr(version, "item") else version
        if version != FORMAT_VERSION:
            raise ValueError(f"{str(path)!r} has format_version {version!r}; this posegen "
                             f"({_posegen_version()}) reads version {FORMAT_VERSION} only")
        if "points" not in f:
            raise ValueError(f"{str(path)!r} has no 'points' dataset (found {sorted(f.keys())})")
        d = f["points"]
        spec = attr_str(d.attrs.get("manifold", ""))
        try:
            manifold = parse(spec)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{str(path)!r}: points attribute manifold={spec!r} does not parse: {e}") from None
        try:
            quat_order = check_quat_order(attr_str(d.attrs.get("quat_order", "xyzw")))
        except ValueError as e:
            raise ValueError(f"{str(path)!r}: points attribute quat_order: {e}") from None
        x = torch.from_numpy(np.asarray(d[()]))
        columns = json.loads(attr_str(d.attrs["columns"])) if "columns" in d.attrs else None
        conditions = condition_columns = groups = group_names = None
        if "conditions" in f:
            conditions = torch.from_numpy(np.asarray(f["conditions"][()]))
            cc = f["conditions"].attrs.get("condition_columns")
            condition_columns = json.loads(attr_str(cc)) if cc is not None else None
        if "groups" in f:
            groups = torch.from_numpy(np.asarray(f["groups"][()]))
            gn = f["groups"].attrs.get("group_names")
            group_names = json.loads(attr_str(gn)) if gn is not None else None
        try:
            provenance = json.loads(attr_str(f.attrs.get("provenance", "{}")))
        except json.JSONDecodeError:
            provenance = {"raw": attr_str(f.attrs.get("provenance"))}
        meta = {"source": str(Path(path).resolve()), "format": FORMAT,
                "posegen_version": attr_str(f.attrs.get("posegen_version", "?")),
                "created": attr_str(f.attrs.get("created", "?")), "stored_quat_order": quat_order,
                "provenance": provenance}
    # Validation does not depend on the quaternion order (norms), so it can come first and check the shape.
    x, keep = validate_points(manifold, x, name=f"{Path(path).name}:points", nonfinite=nonfinite)
    x = convert_quats(manifold, x, quat_order, to_xyzw=True)
    if not bool(keep.all()):
        conditions = None if conditions is None else conditions[keep]
        groups = None if groups is None else groups[keep]
    return PoseDataset(x, manifold, conditions=conditions, groups=groups, group_names=group_names,
                       columns=columns, condition_columns=condition_columns, meta=meta)
