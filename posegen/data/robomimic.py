"""Load robot poses from a robomimic HDF5 file into a :class:`PoseDataset`.

robomimic layout::

    data/                     attrs: total (frames in all), env_args (JSON string)
    data/demo_<n>/            attrs: num_samples; demo numbering may start at 0 or 1
    data/demo_<n>/obs/<key>   (T, width) per observation key
    data/demo_<n>/actions     (T, action_dim)
    mask/<filter>             1-D array of demo names (bytes), e.g. mask/train, mask/valid
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import h5py
import numpy as np
import torch

from ..manifolds import Product, parse
from ..robots import as_robot
from ..rotations import check_quat_order
from .dataset import PoseDataset
from .h5io import attr_str, open_h5
from .validate import check_nonfinite_mode, convert_quats, validate_with_conditions

DEFAULT_KEYS = {"robot0_eef_pos": "R3", "robot0_eef_quat": "SO3", "robot0_joint_pos": "T7"}

_DEMO = re.compile(r"^demo_(\d+)$")
# a factor token ``I<d>`` or ``I<d>^k`` without ``[lo:hi,...]``: its limits come from limits= or robot=
_BARE_INTERVAL = re.compile(r"^I(\d+)(?:\^(\d+))?$")
_FACTOR_SEP = re.compile(r"\s+[x×*]\s+|\s*[×*]\s*")


def bare_interval_dims(token) -> int:
    """Coordinates of ``token`` (a key's manifold token) in bare ``I<d>`` factors, whose limits are not written
    in the token: ``"I6"`` -> 6, ``"R3 x I2^2"`` -> 4, ``"I2[0:1,0:1]"`` or ``"T7"`` -> 0."""
    if not isinstance(token, str):
        return 0
    n = 0
    for t in _FACTOR_SEP.split(token.strip()):
        m = _BARE_INTERVAL.match(t.strip())
        if m:
            n += int(m.group(1)) * int(m.group(2) or 1)
    return n


def checked_robot(robot):
    robot = as_robot(robot)
    if not hasattr(robot, "joint_limits") or not hasattr(robot, "manifold"):
        raise ValueError(f"robot must be a posegen.robots.Robot (or a built-in name or description path), got "
                         f"{type(robot).__name__}")
    return robot


def joint_keys(keys: Mapping[str, str], robot=None, limits=None) -> Dict[str, str]:
    """``keys`` with every bare ``I<d>`` token given its joint limits (the others unchanged), as a new dict.

    ``limits``: a ``(k, 2)`` array of ``[lo, hi]`` rows, used in key order by the bare ``I<d>`` coordinates
    (as in ``parse(spec, limits=)``); they must use every row. ``robot``: a :class:`posegen.robots.Robot`,
    a built-in name or a description path; a single key whose token is ``I<robot.dof>`` becomes
    ``repr(robot.manifold)`` (its joint space: intervals for limited joints, a torus for continuous ones),
    otherwise the bare tokens take the rows of ``robot.joint_limits`` in joint order and must cover every
    joint. Tokens become explicit specs such as ``"I2[-1.5:1.5,0.0:3.75]"``, which parse alone. Raises
    :class:`ValueError` when the counts do not match, when both or neither of robot/limits are given while a
    bare token needs limits, and for a robot that no key uses.
    """
    keys = dict(keys)
    need = {k: bare_interval_dims(tok) for k, tok in keys.items()}
    total = sum(need.values())
    if robot is not None and limits is not None:
        raise ValueError("pass robot= or limits=, not both (the robot's limits are robot.joint_limits)")
    if robot is None and limits is None:
        return keys
    if robot is not None:
        robot = checked_robot(robot)
        dof = int(robot.joint_limits.shape[0])
        if total == 0:
            raise ValueError(f"robot= ({robot_name(robot)}, {dof} joints) maps no key: it gives the limits of bare "
                             f"'I<d>' tokens, e.g. keys={{'robot0_joint_pos': 'I{dof}'}}; got keys {keys}")
        if total != dof:
            raise ValueError(f"robot= ({robot_name(robot)}) has {dof} joints but the bare 'I<d>' tokens of keys "
                             f"{keys} have {total} coordinates; they must cover every joint, in joint order")
        users = [k for k, n in need.items() if n]
        if len(users) == 1 and keys[users[0]].strip() == f"I{dof}":
            keys[users[0]] = repr(robot.manifold)
            return keys
        limits = robot.joint_limits
    import torch as _torch

    rows = _torch.as_tensor(limits, dtype=_torch.float64)
    if rows.dim() != 2 or rows.shape[1] != 2:
        raise ValueError(f"limits must have shape (k, 2), one [lo, hi] row per interval coordinate, got "
                         f"{tuple(rows.shape)}")
    if rows.shape[0] != total:
        raise ValueError(f"limits has {rows.shape[0]} rows but the bare 'I<d>' tokens of keys {keys} have {total} "
                         f"coordinates")
    at = 0
    for k, n in need.items():
        if n:
            try:
                keys[k] = repr(parse(keys[k], limits=rows[at: at + n]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"keys[{k!r}] = {keys[k]!r}: {e}") from None
            at += n
    return keys


def robot_name(robot) -> str:
    return str(getattr(robot, "name", type(robot).__name__))


def keys_manifold(keys: Mapping[str, str]):
    """``(manifold, labels, columns)`` of ordered ``{key: manifold token}``: the product of the keys' factors,
    each factor's key (for messages), and one column name per coordinate (``"<key>.<coordinate>"``)."""
    factors, labels, columns = [], [], []
    for key, tok in keys.items():
        try:
            m = parse(tok)
        except (TypeError, ValueError) as e:
            raise ValueError(f"keys[{key!r}] = {tok!r}: {e}") from None
        factors += list(m.factors)
        labels += [key] * len(m.factors)
        columns += [f"{key}.{c}" for c in m.coord_names()]
    return Product(*factors), labels, columns


def read_options(keys, quat_order, frames, nonfinite, condition_keys, dtype):
    """The checks every keyed loader (robomimic, LeRobot) makes before reading anything:
    ``(manifold, labels, columns, quat orders per key, frames, condition_keys as a list)``."""
    manifold, labels, columns = keys_manifold(keys)
    orders = _quat_orders(quat_order, keys)
    frames = _check_frames(frames)
    check_nonfinite_mode(nonfinite)
    condition_keys = [condition_keys] if isinstance(condition_keys, str) else list(condition_keys or [])
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    return manifold, labels, columns, orders, frames, condition_keys


def demo_sort_key(name: str):
    """Numeric order for ``demo_<n>`` names (demo_10 after demo_9); other names after them, by name."""
    m = _DEMO.match(name)
    return (0, int(m.group(1)), "") if m else (1, 0, name)


def _check_frames(frames):
    if frames is None or frames in ("first", "last"):
        return frames
    if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool) and frames >= 1:
        return int(frames)
    raise ValueError(f"Invalid frames={frames!r}. Must be None (all frames), an integer stride >= 1, "
                     f"'first' or 'last'")


def frame_slice(n: int, frames) -> slice:
    """The frames of a demo of length ``n`` to load (h5py reads a slice without copying the rest)."""
    if frames is None:
        return slice(0, n)
    if frames == "first":
        return slice(0, min(n, 1))
    if frames == "last":
        return slice(max(n - 1, 0), n)
    return slice(0, n, frames)


def _quat_orders(quat_order, keys: Mapping[str, str]) -> Dict[str, str]:
    """Per-key quaternion order for the SO3 keys; ``quat_order`` is one order or a dict per key."""
    so3 = [k for k, tok in keys.items() if any(f.spec == "SO3" for f in parse(tok).factors)]
    if isinstance(quat_order, Mapping):
        extra = [k for k in quat_order if k not in so3]
        if extra:
            raise ValueError(f"quat_order names keys {extra} that are not SO3 keys; SO3 keys: {so3}")
        out = {}
        for k in so3:
            try:
                out[k] = check_quat_order(quat_order.get(k, "xyzw"))
            except ValueError as e:
                raise ValueError(f"quat_order[{k!r}]: {e}") from None
        return out
    try:
        order = check_quat_order(quat_order)
    except ValueError as e:
        raise ValueError(f"quat_order: {e}") from None
    return {k: order for k in so3}


def _dataset(demo, key: str, name: str, path: str):
    """``demo/obs/<key>``, or ``demo/<key>`` for demo-level arrays such as ``actions`` (conditions only)."""
    obs = demo.get("obs")
    if obs is not None and key in obs:
        return obs[key]
    if key in demo and not hasattr(demo[key], "keys"):
        return demo[key]
    available = sorted(obs.keys()) if obs is not None else []
    raise ValueError(f"{path}: {name} has no obs key {key!r}; available obs keys: {available}"
                     + ("" if obs is not None else f" (no 'obs' group; demo members: {sorted(demo.keys())})"))


def load_robomimic(path, keys: Mapping[str, str] = DEFAULT_KEYS, *,
                   quat_order: Union[str, Mapping[str, str]] = "xyzw",
                   condition_keys: Optional[Sequence[str]] = None, frames=None, mask: Optional[str] = None,
                   nonfinite: str = "raise", renormalize_tol: float = 0.05,
                   dtype: torch.dtype = torch.float32, robot=None, limits=None) -> PoseDataset:
    """Points on ``parse(" x ".join(keys.values()))`` from the observations of a robomimic file.

    Parameters
    ----------
    path : the ``.hdf5`` file; opened read-only, nothing on disk changes (also when loading fails).
    keys : ordered ``{obs key: manifold token}``, tokens ``R<d>``, ``T<n>``, ``S<d>``, ``SO3``, ``I<d>`` (or any
        spec :func:`posegen.parse` reads); the product is the tokens in key order and each key's width must be
        that token's ``coord_dim``. Default: end-effector position (R3), orientation (SO3), joints (T7;
        ``I<dof>`` with the robot's limits when ``robot`` is given). A bare ``I<d>`` token (joints with
        limits, stored as they are, not wrapped) takes its limits from ``robot`` or ``limits``, or writes
        them, ``I2[-1.5:1.5,0:3.75]``.
    quat_order : how the file stores the quaternions of SO3 keys: ``"xyzw"`` (robosuite/robomimic) or
        ``"wxyz"``; one order, or a dict per key (keys left out are xyzw). Converted to xyzw on entry.
    condition_keys : keys concatenated, in order, as ``conditions (N, c)``: obs keys, or demo-level arrays
        such as ``"actions"``.
    frames : None (every frame), an integer stride (every k-th frame of each demo, from its first),
        ``"first"`` or ``"last"`` (one frame per demo).
    mask : a filter of the file's ``mask`` group (``"train"``, ``"valid"``, ...), or None for every demo.
    nonfinite, renormalize_tol : as in :func:`~posegen.data.validate.validate_points` (``"drop"`` drops
        rows whose points or conditions hold NaN/inf, with a warning giving the count).
    dtype : floating dtype of points and conditions.
    robot : a :class:`posegen.robots.Robot`, a built-in name (``"ur5e"``) or a description path: the bare
        ``I<d>`` tokens get its joint limits (a key ``I<dof>`` becomes ``robot.manifold``); see
        :func:`joint_keys`.
    limits : ``(k, 2)`` ``[lo, hi]`` rows for the bare ``I<d>`` coordinates, in key order (instead of robot).

    Joint angles (T factors) are wrapped to ``[-pi, pi)`` on entry: robots record unwrapped, continuous
    angles (e.g. 7.1 rad after a full turn), which are the same configuration as their wrapped values.
    Quaternions off the unit sphere by at most ``renormalize_tol`` are normalised (warning), farther ones
    refused.

    Returns a :class:`PoseDataset` whose ``groups`` hold each point's demo index into ``group_names`` (the
    demo names in numeric order: demo_9 before demo_10), and whose ``meta`` records the source file, keys,
    quaternion orders, mask, frames and the file's ``env_args``.

    Errors (nothing is loaded): missing file (:class:`FileNotFoundError`); not HDF5 or truncated, no
    ``data`` group, unknown mask (lists the available ones), missing key (lists the demo's obs keys), a
    key width that does not match its token, keys of different lengths within a demo, NaN/inf rows
    (unless dropped), quaternions far from unit norm, unknown quaternion order (all :class:`ValueError`).
    """
    # ---- arguments first: nothing is opened for a call that cannot succeed
    if not isinstance(keys, Mapping) or not keys:
        raise ValueError(f"keys must be a non-empty mapping {{obs key: manifold token}}, got {keys!r}")
    if robot is not None:
        robot = checked_robot(robot)
    if robot is not None and keys is DEFAULT_KEYS:
        keys = {**DEFAULT_KEYS, "robot0_joint_pos": f"I{int(robot.joint_limits.shape[0])}"}
    keys = joint_keys(keys, robot=robot, limits=limits)
    if any(bare_interval_dims(tok) for tok in keys.values()):
        bare = {k: tok for k, tok in keys.items() if bare_interval_dims(tok)}
        raise ValueError(f"keys {bare}: a bare 'I<d>' token needs joint limits: pass robot= (a Robot, a built-in "
                         f"name or a description path) or limits=, or write them, I<d>[lo:hi,...]")
    manifold, labels, columns, orders, frames, condition_keys = read_options(
        keys, quat_order, frames, nonfinite, condition_keys, dtype)
    path_s = str(path)

    with open_h5(path, "robomimic") as f:
        if "data" not in f or not hasattr(f["data"], "keys"):
            raise ValueError(f"{path_s}: no 'data' group, so not a robomimic file (top-level members: "
                             f"{sorted(f.keys())})")
        data = f["data"]
        names = _demo_names(f, mask, path_s)

        chunks, cond_chunks, group_idx, frame_idx = [], [], [], []
        cond_columns: List[str] = []
        for g, name in enumerate(names):
            arrays, n = _demo_arrays(data[name], name, keys, condition_keys, path_s)
            sel = frame_slice(n, frames)
            idx = np.arange(n)[sel]
            parts = []
            for key in keys:
                a = torch.from_numpy(np.asarray(arrays[key][0][sel], dtype=np.float64)).reshape(len(idx), -1)
                if key in orders:
                    a = convert_quats(keys[key], a, orders[key])
                parts.append(a)
            chunks.append(torch.cat(parts, 1))
            if condition_keys:
                cparts = [torch.from_numpy(np.asarray(arrays["cond:" + k][0][sel], dtype=np.float64))
                          .reshape(len(idx), -1) for k in condition_keys]
                cols = [c for k, p in zip(condition_keys, cparts)
                        for c in ([k] if p.shape[1] == 1 else [f"{k}[{j}]" for j in range(p.shape[1])])]
                if g and cols != cond_columns:
                    raise ValueError(f"{path_s}: condition keys {condition_keys} have widths that change between "
                                     f"demos ({names[0]}: {len(cond_columns)} columns, {name}: {len(cols)})")
                cond_columns = cols
                cond_chunks.append(torch.cat(cparts, 1))
            group_idx.append(torch.full((len(idx),), g, dtype=torch.int64))
            frame_idx.append(torch.from_numpy(idx))
        env_args = data.attrs.get("env_args")
        total = data.attrs.get("total")
        meta = {"format": "robomimic", "source": str(Path(path).resolve()), "keys": keys,
                "quat_order": orders, "condition_keys": condition_keys, "mask": mask, "frames": frames,
                "demos": len(names), "total": None if total is None else int(total),
                "robot": None if robot is None else robot_name(robot),
                "env_args": _json_or_str(env_args)}

    x = torch.cat(chunks).to(dtype)
    groups = torch.cat(group_idx)
    frame_of = torch.cat(frame_idx)
    c = torch.cat(cond_chunks).to(dtype) if condition_keys else None
    x, c, keep = validate_with_conditions(
        manifold, x, c, name=Path(path_s).name, nonfinite=nonfinite, renormalize_tol=renormalize_tol, wrap=True,
        labels=labels, row_label=lambda i: f"{names[int(groups[i])]}[{int(frame_of[i])}]")
    meta["dropped_rows"] = int((~keep).sum())
    return PoseDataset(x, manifold, conditions=c, groups=groups[keep], group_names=names, columns=columns,
                       condition_columns=cond_columns if c is not None else None, meta=meta)


def _json_or_str(v):
    if v is None:
        return None
    s = attr_str(v)
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return s


def _demo_names(f, mask: Optional[str], path_s: str) -> List[str]:
    """The demos of ``data/`` to load, in numeric order: all of them, or those ``mask/<mask>`` lists."""
    data = f["data"]
    names = sorted((k for k in data.keys() if isinstance(data[k], h5py.Group)), key=demo_sort_key)
    if mask is not None:
        available = sorted(f["mask"].keys()) if "mask" in f else []
        if mask not in available:
            raise ValueError(f"{path_s}: unknown mask {mask!r}; available masks: {available}")
        wanted = [attr_str(v) for v in np.asarray(f["mask"][mask][()]).ravel()]
        missing = [n for n in wanted if n not in data]
        if missing:
            raise ValueError(f"{path_s}: mask {mask!r} lists demos that are not in data/: {missing[:5]}")
        names = sorted(set(wanted), key=demo_sort_key)
    if not names:
        raise ValueError(f"{path_s}: no demos to load (data/ is empty"
                         + (f" or mask {mask!r} lists none)" if mask else ")"))
    return names


def _demo_arrays(demo, name: str, keys, condition_keys, path_s: str):
    """``({key or "cond:" + key: (dataset, width or None)}, frames)`` of one demo, with widths and lengths
    checked against the tokens (conditions: ``(T,)`` or ``(T, c)``)."""
    arrays = {}
    for key, tok in keys.items():
        arrays[key] = (_dataset(demo, key, name, path_s), parse(tok).coord_dim)
    for key in condition_keys:
        arrays["cond:" + key] = (_dataset(demo, key, name, path_s), None)
    lengths = {}
    for k, (d, width) in arrays.items():
        shape = d.shape
        got = 1 if len(shape) == 1 else (shape[1] if len(shape) == 2 else None)
        label = k[5:] if k.startswith("cond:") else k
        if width is not None and got != width:
            raise ValueError(f"{path_s}: {name}/obs/{label} has shape {shape}, but its token "
                             f"{keys[label]!r} needs (T, {width})")
        if got is None:
            raise ValueError(f"{path_s}: {name}/{label} has shape {shape}; conditions need (T,) or (T, c)")
        lengths[label] = shape[0]
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{path_s}: {name} has keys of different lengths (ragged): {lengths}")
    return arrays, next(iter(lengths.values()))
