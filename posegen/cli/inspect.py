"""``posegen data inspect FILE`` and ``posegen data generate-panda``.

``inspect`` describes a robomimic file (demos, frames, obs keys with shapes, dtypes, value ranges and the
manifold tokens each key fits, masks), a posegen points file (manifold, points, columns, provenance), a
table (header and size) or any other HDF5 file (its datasets).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List

import h5py
import numpy as np

from ..data import load_points, read_table
from ..data.h5io import attr_str
from ..data.robomimic import demo_sort_key
from .common import say, sniff

ANGLE_WORDS = ("joint", "angle", "theta", "yaw", "pitch", "roll")
SAMPLE_DEMOS = 20  # demos read to judge value ranges: enough to be representative, fast on big files
UNIT_TOL = 1e-3


def fits(name: str, values: np.ndarray) -> List[str]:
    """Manifold tokens an observation key of width ``w`` could be, most likely first.

    ``values (M, w)``: rows sampled from the file. Unit-norm rows: ``SO3``/``S3`` for w = 4 (unit
    quaternions), ``S<w-1>`` otherwise; values within [-2 pi, 2 pi]: ``T<w>`` (then ``R<w>``) when the name says
    angles (joint, angle, theta, ...); anything else ``R<w>``.
    """
    w = values.shape[1]
    finite = values[np.isfinite(values).all(1)]
    if finite.shape[0] == 0:
        return []
    out = []
    norms = np.linalg.norm(finite, axis=1)
    if w >= 2 and np.all(np.abs(norms - 1) < UNIT_TOL):
        out += ["SO3", "S3"] if w == 4 else [f"S{w - 1}"]
    angle_like = np.all(np.abs(finite) <= 2 * math.pi + 1e-6)
    named = any(word in name.lower() for word in ANGLE_WORDS)
    if angle_like and named:
        out += [f"T{w}", f"R{w}"]
    else:
        out += [f"R{w}"]
    return out


def _fits_text(toks: List[str], name: str) -> str:
    if not toks:
        return "(no finite values)"
    head = toks[0]
    why = {"SO3": "unit quaternions (rotations); give quat_order", "S3": "unit vectors in R^4"}
    extra = why.get(head, "angles (rad)" if head.startswith("T") else "unit vectors" if head.startswith("S")
                    else "")
    alts = f"; or {', '.join(toks[1:])}" if len(toks) > 1 else ""
    return f"{head}" + (f" ({extra})" if extra else "") + alts


def _table(rows: List[List[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        say("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _size(path: Path) -> str:
    b = path.stat().st_size
    return f"{b / 1e6:.2f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def inspect_robomimic(path: Path) -> None:
    with h5py.File(path, "r") as f:
        data = f["data"]
        names = sorted(data.keys(), key=demo_sort_key)
        say(f"file     {path} (robomimic layout, {_size(path)})")
        if not names:
            say("demos    0 (data/ is empty)")
            return
        lengths = []
        for n in names:
            g = data[n]
            obs = g.get("obs")
            k = next(iter(obs.keys()), None) if obs is not None else None
            lengths.append(int(obs[k].shape[0]) if k is not None else int(g.attrs.get("num_samples", 0)))
        L = np.array(lengths)
        say(f"demos    {len(names)} ({names[0]} .. {names[-1]}); frames {int(L.sum())} "
            f"(per demo: min {L.min()}, mean {L.mean():.1f}, max {L.max()})")
        env = data.attrs.get("env_args")
        if env is not None:
            try:
                env_name = json.loads(attr_str(env)).get("env_name", "?")
            except (json.JSONDecodeError, AttributeError):
                env_name = attr_str(env)[:60]
            say(f"env      {env_name}")
        if "mask" in f and hasattr(f["mask"], "keys"):
            masks = ", ".join(f"{m}: {len(np.asarray(f['mask'][m][()]).ravel())} demos" for m in f["mask"])
            say(f"masks    {masks or 'none'}")
        else:
            say("masks    none (split the demos with data.train_mask: null and data.split)")
        first = data[names[0]]
        obs = first.get("obs")
        picked = [names[int(i)] for i in np.linspace(0, len(names) - 1, min(SAMPLE_DEMOS, len(names)))]
        if obs is not None:
            say(f"obs keys (shapes from {names[0]}; values from {len(picked)} demos):")
            rows = [["key", "shape", "dtype", "min", "max", "fits"]]
            for key in obs.keys():
                d = obs[key]
                shape = ("T",) + tuple(d.shape[1:])
                if d.ndim > 2 or d.dtype.kind not in "iuf":
                    rows.append([key, str(shape), str(d.dtype), "", "", "(not a point key)"])
                    continue
                vals = np.concatenate([np.asarray(data[n]["obs"][key][()], dtype=np.float64).reshape(
                    -1, d.shape[1] if d.ndim == 2 else 1) for n in picked if key in data[n].get("obs", {})])
                toks = fits(key, vals)
                rows.append([key, str(shape).replace("'", ""), str(d.dtype), f"{np.nanmin(vals):.3g}",
                             f"{np.nanmax(vals):.3g}", _fits_text(toks, key)])
            _table(rows)
        other = [k for k in first.keys() if k != "obs" and not hasattr(first[k], "keys")]
        if other:
            say("demo datasets (usable as condition_keys): " + ", ".join(
                f"{k} {('T',) + tuple(first[k].shape[1:])}".replace("'", "") for k in other))


def inspect_points(path: Path) -> None:
    ds = load_points(path)
    say(f"file        {path} (posegen points, {_size(path)})")
    say(f"manifold    {ds.manifold!r} (dim {ds.manifold.dim}, {ds.manifold.coord_dim} coordinates)")
    quat = (f"; quaternions stored {ds.meta.get('stored_quat_order', 'xyzw')}"
            if any(f.spec == "SO3" for f in ds.manifold.factors) else "")
    say(f"points      {len(ds)} x {ds.manifold.coord_dim}, {str(ds.points.dtype).replace('torch.', '')}{quat}")
    say(f"columns     {', '.join(ds.columns)}")
    if ds.conditions is not None:
        say(f"conditions  {ds.conditions.shape[1]}: {', '.join(ds.condition_columns)}")
    if ds.groups is not None:
        say(f"groups      {len(ds.group_names)}")
    say(f"created     {ds.meta.get('created', '?')} by posegen {ds.meta.get('posegen_version', '?')}")
    prov = ds.meta.get("provenance") or {}
    if prov:
        say(f"provenance  {json.dumps(prov, default=str)[:300]}")


def inspect_table(path: Path) -> None:
    header, values = read_table(path)
    say(f"file     {path} (table, {_size(path)})")
    say(f"rows     {values.shape[0]}, columns {values.shape[1]}")
    rows = [["column", "min", "max"]]
    for i in range(values.shape[1]):
        name = header[i] if header else str(i)
        rows.append([name, f"{np.nanmin(values[:, i]):.4g}", f"{np.nanmax(values[:, i]):.4g}"])
    _table(rows)


def inspect_hdf5(path: Path) -> None:
    say(f"file     {path} (HDF5, not robomimic or posegen points: no 'data' group or format attribute)")
    found: List[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and len(found) < 50:
            found.append(f"  {name}  {obj.shape}  {obj.dtype}")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    for line in found:
        say(line)


def inspect_file(path) -> None:
    """Print what ``path`` holds (keys, shapes, dtypes, demos, masks) and the manifold tokens that fit its data."""
    path = Path(path)
    {"robomimic": inspect_robomimic, "posegen-points": inspect_points, "table": inspect_table,
     "hdf5": inspect_hdf5}[sniff(path)](path)
