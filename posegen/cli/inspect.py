"""``posegen data inspect FILE`` and ``posegen data generate-panda``.

``inspect`` describes a robomimic file (demos, frames, obs keys with shapes, dtypes, value ranges and the
manifold tokens each key fits, masks), a posegen points file (manifold, points, columns, provenance), a
table (header, size, each column's range or, for text columns, example values) or any other HDF5 file (its
datasets). Joint positions fit ``I<d>`` (joints inside their limits): the limits come from ``data.robot``
when the file names a built-in robot, else from the data's range, and inspect prints the keys to use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import h5py
import numpy as np

from ..data import load_points
from ..data.h5io import attr_str
from ..data.robomimic import demo_sort_key
from ..data.tabular import read_cells, table_numbers
from ..robots import builtin_names, load
from .common import say, sniff

ANGLE_WORDS = ("joint", "angle", "theta", "yaw", "pitch", "roll")
JOINT_WORDS = ("joint",)  # keys of joint positions: limited joints, I<d>
RANGE_PAD = 0.01  # limits from the data's range: widened by this share of it, so no value sits on a limit
SAMPLE_DEMOS = 20  # demos read to judge value ranges: enough to be representative, fast on big files
UNIT_TOL = 1e-3


def fits(name: str, values: np.ndarray) -> List[str]:
    """Manifold tokens an observation key of width ``w`` could be, most likely first.

    ``values (M, w)``: rows sampled from the file. Unit-norm rows: ``SO3``/``S3`` for w = 4 (unit
    quaternions), ``S<w-1>`` otherwise; values within [-2 pi, 2 pi]: ``I<w>`` (joints inside their limits),
    then ``T<w>`` and ``R<w>``, when the name says joint positions; ``T<w>`` (then ``R<w>``) when it says other
    angles (angle, theta, yaw, ...); anything else ``R<w>``.
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
    low = name.lower()
    if angle_like and any(word in low for word in JOINT_WORDS):
        out += [f"I{w}", f"T{w}", f"R{w}"]
    elif angle_like and any(word in low for word in ANGLE_WORDS):
        out += [f"T{w}", f"R{w}"]
    else:
        out += [f"R{w}"]
    return out


def _fits_text(toks: List[str], name: str) -> str:
    if not toks:
        return "(no finite values)"
    head = toks[0]
    why = {"SO3": "unit quaternions (rotations); give quat_order", "S3": "unit vectors in R^4"}
    extra = why.get(head, "joints inside limits, see below" if head.startswith("I") else
                    "angles (rad)" if head.startswith("T") else "unit vectors" if head.startswith("S") else "")
    alts = f"; or {', '.join(toks[1:])}" if len(toks) > 1 else ""
    return f"{head}" + (f" ({extra})" if extra else "") + alts


# ---------------------------------------------------------------------- joint limits for I<d> keys
def file_robot(env_args) -> Optional[str]:
    """The built-in robot (``posegen.robots.builtin_names``) that a robomimic file's ``env_args`` JSON names
    (robosuite's ``env_kwargs.robots``, posegen's generators' ``robot.name``), or None."""
    try:
        env = json.loads(attr_str(env_args)) if env_args is not None else {}
    except json.JSONDecodeError:
        return None
    if not isinstance(env, dict):
        return None
    kwargs, robot = env.get("env_kwargs"), env.get("robot")
    names = list(kwargs.get("robots") or []) if isinstance(kwargs, dict) else []
    names += [robot.get("name")] if isinstance(robot, dict) else [robot]
    known = builtin_names()
    return next((str(n).lower() for n in names if isinstance(n, str) and n.lower() in known), None)


def range_limits(values: np.ndarray) -> np.ndarray:
    """``(w, 2)`` limits around the data ``values (M, w)``: their range widened by :data:`RANGE_PAD` of it
    (at least 1e-3) on each side and rounded outwards to 1e-3, so that every value is strictly inside."""
    lo, hi = np.nanmin(values, 0), np.nanmax(values, 0)
    pad = np.maximum(RANGE_PAD * (hi - lo), 1e-3)
    return np.stack([np.floor((lo - pad) * 1000) / 1000, np.ceil((hi + pad) * 1000) / 1000], 1)


def interval_token(limits: np.ndarray) -> str:
    """``"I2[-1.5:1.5,0:3.75]"`` for ``limits (w, 2)``, a key token that parses alone."""
    return f"I{len(limits)}[" + ",".join(f"{lo:g}:{hi:g}" for lo, hi in limits) + "]"


def joint_limits_hint(key: str, values: np.ndarray, robot_name: Optional[str]) -> str:
    """Where the limits of the ``I<w>`` key ``key`` can come from, given all its ``values (M, w)``: the named
    robot (``data.robot``) when it has ``w`` joints and every value lies inside its limits, else the data's
    range (:func:`range_limits`) as an explicit token."""
    w = values.shape[1]
    why = "no built-in robot is named in the file's env_args"
    if robot_name is not None:
        try:
            limits = load(robot_name).joint_limits.numpy()
        except (ImportError, ValueError, FileNotFoundError) as e:
            limits, why = None, f"the file names the robot {robot_name!r}, which does not load here ({e})"
        if limits is not None and len(limits) != w:
            why = f"the file names the robot {robot_name!r}, which has {len(limits)} joints, not {w}"
        elif limits is not None:
            out = int(((values < limits[:, 0]) | (values > limits[:, 1])).any(1).sum())
            if out == 0:
                return (f"{key}: I{w} with data.robot: {robot_name} (the robot the file names; its limits hold "
                        f"all {len(values)} frames)")
            why = f"{out} of {len(values)} frames lie outside the limits of {robot_name!r}, the robot the file names"
    return (f"{key}: {why}; set data.robot (a built-in name or a URDF/MJCF path) for I{w}, or give the data's "
            f"range widened by {RANGE_PAD:.0%}: {key}: \"{interval_token(range_limits(values))}\"")


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
            joints = []
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
                if toks and toks[0].startswith("I"):
                    joints.append(key)
            _table(rows)
            robot = file_robot(data.attrs.get("env_args"))
            for key in joints:  # limits must hold every frame: read the key from all demos
                say("joint limits  " + joint_limits_hint(key, _all_values(data, names, key), robot))
        other = [k for k in first.keys() if k != "obs" and not hasattr(first[k], "keys")]
        if other:
            say("demo datasets (usable as condition_keys): " + ", ".join(
                f"{k} {('T',) + tuple(first[k].shape[1:])}".replace("'", "") for k in other))


def _all_values(data, names: List[str], key: str) -> np.ndarray:
    """``(frames, w)`` float64: the observation ``key`` of every demo that has it."""
    parts = [np.asarray(data[n]["obs"][key][()], dtype=np.float64) for n in names if key in data[n].get("obs", {})]
    return np.concatenate([p.reshape(p.shape[0], -1) for p in parts])


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
    header, cells = read_cells(path)
    say(f"file     {path} (table, {_size(path)})")
    say(f"rows     {cells.shape[0]}, columns {cells.shape[1]}")
    rows = [["column", "min", "max"]]
    for i in range(cells.shape[1]):
        name = header[i] if header else str(i)
        try:
            v = table_numbers(cells, [i], header, path, "")[:, 0]
        except ValueError:  # a text column (ids, letters): show what it holds
            seen = list(dict.fromkeys(cells[:, i].tolist()))
            rows.append([name, "text", f"{len(seen)} distinct: " + ", ".join(seen[:3]) + (", ..." if len(seen) > 3
                                                                                       else "")])
            continue
        rows.append([name, f"{np.nanmin(v):.4g}", f"{np.nanmax(v):.4g}"])
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
