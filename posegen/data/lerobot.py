"""Load robot poses from a LeRobot dataset folder (layouts v2.x and v3.0) into a :class:`PoseDataset`.

LeRobot layouts (only ``meta/`` and the parquet data are read; videos and images are ignored)::

    meta/info.json        codebase_version ("v2.0", "v2.1", "v3.0"), features {name: {dtype, shape, names}},
                          data_path (a template), chunks_size, fps, total_episodes, robot_type, ...
    v2.x  data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet   one file per episode
          meta/episodes.jsonl                       {"episode_index": i, "length": T, ...} per line (optional)
    v3.0  data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet           many episodes per file, rows
                                                    tagged by an ``episode_index`` column
          meta/episodes/chunk-*/file-*.parquet      one row per episode: episode_index, data/chunk_index,
                                                    data/file_index, length, ... (optional here)

Every parquet row is one frame; a 1-D feature (``observation.state``, ``action``) is a list column of equal
length per row (``shape [n]``), a scalar feature a plain numeric column.

Key syntax (``keys`` and ``condition_keys``): ``"<feature>"`` takes the whole feature; ``"<feature>[sel]"``
takes some of its values, in the order given, where ``sel`` is comma-separated items, each an index
(``3``, ``-1``), a slice of indices (``0:7``, ``7:``, ``::2``) or a name from the feature's ``names`` in
``meta/info.json`` (``shoulder_pan.pos``; names holding ``,``, ``[`` or ``]`` cannot be selected by name).
E.g. ``{"observation.state[0:3]": "R3", "observation.state[3:7]": "SO3", "observation.state[7:14]": "T7"}``.
A column whose full name contains brackets is taken as it is when it exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..manifolds import parse
from ..optional import require
from .dataset import PoseDataset
from .robomimic import checked_robot, frame_slice, bare_interval_dims, joint_keys, read_options
from .validate import convert_quats, validate_with_conditions

DEFAULT_KEYS = {"observation.state": "T7"}
DATA_PATHS = {"v2": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
              "v3": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}
# Suffixes LeRobot robots put after a joint name in a feature's names ("shoulder_pan.pos").
_NAME_SUFFIXES = (".pos", "_pos", ".position", "_position", ".angle", "_angle")
_KEY = re.compile(r"^(?P<feature>[^\[\]]+)\[(?P<sel>[^\[\]]*)\]$")
_INT = re.compile(r"^-?\d+$")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)(?::(-?\d*))?$")


def _pyarrow():
    """``(pyarrow, pyarrow.parquet)``, imported on first use: pyarrow is the optional extra ``lerobot``."""
    pq = require("pyarrow.parquet", extra="lerobot", purpose="load_lerobot", alternative="pip install 'pyarrow>=14'")
    return require("pyarrow", extra="lerobot", purpose="load_lerobot"), pq


# ---------------------------------------------------------------------- meta/info.json
def _read_info(folder: Path) -> Tuple[dict, str]:
    """``(info, layout)`` with layout ``"v2"`` or ``"v3"``, from ``folder/meta/info.json``."""
    path = folder / "meta" / "info.json"
    if not path.is_file():
        why = "the folder does not exist" if not folder.exists() else (
            "it is not a folder" if not folder.is_dir() else f"it holds {sorted(p.name for p in folder.iterdir())}")
        raise ValueError(f"{folder}: not a LeRobot dataset folder: expected {path} ({why})")
    try:
        info = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'features' object, got "
                         f"{sorted(info) if isinstance(info, dict) else type(info).__name__}")
    version = info.get("codebase_version")
    if isinstance(version, str) and re.fullmatch(r"v2\.\d+", version):
        return info, "v2"
    if version == "v3.0":
        return info, "v3"
    raise ValueError(f"{path}: unknown codebase_version {version!r}; supported: 'v2.x' (v2.0, v2.1) and 'v3.0'")


def _feature_names(info: dict, feature: str) -> Optional[List[str]]:
    """The ``names`` of a 1-D feature as a flat list of str (a list, or a dict of one list such as
    ``{"motors": [...]}``), else None."""
    names = (info["features"].get(feature) or {}).get("names")
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    return None


# ---------------------------------------------------------------------- keys
def _parse_key(key: str, available: Sequence[str]) -> Tuple[str, Optional[List]]:
    """``"feature[sel]"`` -> ``(feature, items)``; items are int, slice or str (a name); None for all."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"keys must be feature names (str), got {key!r}")
    m = _KEY.match(key)
    if key in available or m is None:
        return key, None
    items = []
    for part in m.group("sel").split(","):
        part = part.strip()
        s = _SLICE.match(part)
        if _INT.match(part):
            items.append(int(part))
        elif s:
            items.append(slice(*(int(v) if v else None for v in s.groups())))
        elif part:
            items.append(part)
        else:
            raise ValueError(f"key {key!r}: empty item in the selection [{m.group('sel')}]; expected indices, "
                             f"slices (0:7) or names, separated by commas")
    return m.group("feature"), items


def _select(key: str, items: Optional[List], width: int, names: Optional[List[str]], where: str) -> List[int]:
    """Column indices (into a feature of ``width`` values) that ``items`` select, in order."""
    if items is None:
        return list(range(width))
    out: List[int] = []
    for it in items:
        if isinstance(it, slice):
            if it.step == 0:
                raise ValueError(f"key {key!r}: slice step must not be zero")
            out += list(range(width))[it]
        elif isinstance(it, int):
            if not -width <= it < width:
                raise ValueError(f"key {key!r}: index {it} is out of range for {where}, which has {width} values")
            out.append(it % width)
        elif names is None:
            raise ValueError(f"key {key!r}: selects {it!r} by name, but meta/info.json gives no names for {where}; "
                             f"select by index instead (e.g. [0:{width}])")
        elif it not in names:
            raise ValueError(f"key {key!r}: {where} has no value named {it!r}; its names: {names}")
        else:
            out.append(names.index(it))
    if not out:
        raise ValueError(f"key {key!r}: the selection picks no values of {where} ({width} values)")
    return out


def _match_joint(joint: str, names: List[str]) -> List[int]:
    exact = [i for i, n in enumerate(names) if n == joint]
    if exact:
        return exact
    return [i for i, n in enumerate(names) if any(n == joint + s for s in _NAME_SUFFIXES)]


def _joint_key(robot, items, token: str) -> bool:
    """Whether ``robot`` maps a key: a whole feature (no selection) holding the robot's joints, as a torus
    ``T<robot.dof>`` or as the robot's joint space (``I<dof>`` with the robot's limits)."""
    if robot is None or items is not None:
        return False
    m = parse(token)
    return (m.coord_dim == int(robot.dof) and all(f.part_name == "joints" for f in m.factors))


def _robot_indices(robot, names: Optional[List[str]], key: str, where: str) -> List[int]:
    """Indices of ``robot.joint_names`` in the feature's ``names`` (exact, else ``<joint>.pos`` and alike)."""
    joints = tuple(robot.joint_names)
    if names is None:
        raise ValueError(f"robot= maps columns to joints by name, but meta/info.json gives no names for {where} "
                         f"(keys[{key!r}]); select the joint columns by index instead, e.g. '{key}[0:{len(joints)}]'")
    out, missing, ambiguous = [], [], []
    for j in joints:
        hits = _match_joint(j, names)
        if len(hits) == 1:
            out.append(hits[0])
        else:
            (ambiguous if hits else missing).append(j)
    if missing or ambiguous:
        what = (f"has no value for joints {missing}" if missing else "") + (" and " if missing and ambiguous else "") \
            + (f"has several values for joints {ambiguous}" if ambiguous else "")
        raise ValueError(f"robot= joint names {list(joints)} do not map onto {where}: it {what}; its names: {names}")
    return out


# ---------------------------------------------------------------------- episodes and files
def _episodes_v2(folder: Path, info: dict) -> Dict[int, List[Path]]:
    """``{episode_index: [parquet file]}`` from meta/episodes.jsonl, else ``range(total_episodes)``."""
    jsonl = folder / "meta" / "episodes.jsonl"
    if jsonl.is_file():
        eps = []
        for n, line in enumerate(jsonl.read_text().splitlines(), 1):
            if line.strip():
                try:
                    eps.append(int(json.loads(line)["episode_index"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise ValueError(f"{jsonl}: line {n} is not a JSON object with an integer "
                                     f"'episode_index'") from None
    else:
        total = info.get("total_episodes")
        if not isinstance(total, int) or total < 0:
            raise ValueError(f"{folder / 'meta' / 'info.json'}: needs an integer 'total_episodes' (there is no "
                             f"meta/episodes.jsonl), got {total!r}")
        eps = list(range(total))
    template = info.get("data_path") or DATA_PATHS["v2"]
    chunks = int(info.get("chunks_size") or 1000)
    return {e: [folder / _format(template, folder, episode_chunk=e // chunks, episode_index=e)] for e in eps}


def _episodes_v3(folder: Path, info: dict, pq) -> Dict[int, List[Path]]:
    """``{episode_index: [parquet file]}`` from meta/episodes/, else from the data files' episode_index."""
    template = info.get("data_path") or DATA_PATHS["v3"]
    meta_files = sorted((folder / "meta" / "episodes").glob("*/*.parquet"))
    refs = ("episode_index", "data/chunk_index", "data/file_index")
    if meta_files and all(all(c in pq.read_schema(p).names for c in refs) for p in meta_files):
        out: Dict[int, List[Path]] = {}
        for p in meta_files:
            t = pq.read_table(p, columns=list(refs)).to_pydict()
            for e, c, f in zip(*(t[r] for r in refs)):
                out[int(e)] = [folder / _format(template, folder, chunk_index=int(c), file_index=int(f))]
        return out
    files = sorted(folder.glob(re.sub(r"\{[^}]*\}", "*", template)))
    if not files:
        raise ValueError(f"{folder}: no data files match data_path {template!r} (and meta/episodes/ does not say "
                         f"where the episodes are)")
    out = {}
    for p in files:
        if "episode_index" not in pq.read_schema(p).names:
            raise ValueError(f"{p}: a v3.0 data file needs an 'episode_index' column; columns: "
                             f"{sorted(pq.read_schema(p).names)}")
        for e in np.unique(pq.read_table(p, columns=["episode_index"]).column(0).to_numpy()):
            out.setdefault(int(e), []).append(p)
    return out


def _format(template: str, folder: Path, **fields) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{folder / 'meta' / 'info.json'}: data_path {template!r} has a field this loader does "
                         f"not know ({e}); known fields: {sorted(fields)}") from None


def _pick_episodes(episodes, available: Sequence[int], folder: Path) -> List[int]:
    avail = sorted(available)
    if episodes is None:
        return avail
    wanted = [episodes] if isinstance(episodes, (int, np.integer)) else list(episodes)
    if any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) for e in wanted):
        raise ValueError(f"episodes must be None, an episode index or a sequence of them, got {episodes!r}")
    unknown = sorted({int(e) for e in wanted} - set(avail))
    if unknown:
        shown = f"{avail[0]}..{avail[-1]} ({len(avail)} episodes)" if avail else "none"
        raise ValueError(f"{folder}: episodes {unknown[:10]} do not exist; available episode indices: {shown}")
    if not wanted:
        raise ValueError("episodes is empty; pass None for every episode")
    return sorted({int(e) for e in wanted})


# ---------------------------------------------------------------------- parquet columns
def _column(table, col: str, path: Path, pa) -> np.ndarray:
    """Column ``col`` of a parquet table as float64 ``(T, width)``: list columns of one length per row, or a
    numeric scalar column (width 1). Nulls become NaN."""
    arr = table.column(col).combine_chunks()
    t = arr.type
    n = len(arr)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if arr.null_count:
            raise ValueError(f"{path}: column {col!r} has {arr.null_count} null rows (expected a list of numbers "
                             f"in every row)")
        lengths = np.diff(np.asarray(arr.offsets)) if not pa.types.is_fixed_size_list(t) else \
            np.full(n, t.list_size)
        if n and (lengths != lengths[0]).any():
            r = int(np.argmax(lengths != lengths[0]))
            raise ValueError(f"{path}: column {col!r} is ragged: rows hold lists of lengths "
                             f"{sorted(set(lengths.tolist()))} (row 0 has {lengths[0]}, row {r} has {lengths[r]}); "
                             f"every row of a column must have the same length")
        values = arr.flatten()
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            raise ValueError(f"{path}: column {col!r} holds lists of {values.type}; expected numbers")
        width = int(lengths[0]) if n else 0
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(n, width)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(n, 1)
    raise ValueError(f"{path}: column {col!r} has type {t}; expected numbers or lists of numbers")


def _read(by_file: Dict[Path, List[int]], features: List[str], layout: str, pa, pq):
    """Per episode: ``({feature: (T, w) float64}, frame_index (T,), file)``, rows in frame order."""
    parts: Dict[int, list] = {}
    widths: Dict[str, Tuple[int, Path]] = {}
    for path, eps in by_file.items():
        if not path.is_file():
            raise ValueError(f"{path}: data file of episodes {eps[:10]} does not exist")
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowInvalid) as e:
            raise ValueError(f"{path}: not a readable parquet file ({e})") from None
        missing = [f for f in features if f not in names]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r}; available columns: {sorted(names)}")
        extra = [c for c in ("episode_index", "frame_index") if c in names]
        table = pq.read_table(path, columns=list(dict.fromkeys(features + extra)))
        arrays = {f: _column(table, f, path, pa) for f in features}
        for f, a in arrays.items():
            w0, p0 = widths.setdefault(f, (a.shape[1], path))
            if a.shape[1] != w0 and len(a):
                raise ValueError(f"{path}: column {f!r} is ragged across files: rows hold {a.shape[1]} values here "
                                 f"but {w0} in {p0}")
        n = table.num_rows
        frame = table.column("frame_index").to_numpy() if "frame_index" in names else np.arange(n)
        if "episode_index" in names:
            ep_col = table.column("episode_index").to_numpy()
        elif layout == "v2":
            ep_col = np.full(n, eps[0])
        else:
            raise ValueError(f"{path}: a v3.0 data file needs an 'episode_index' column; columns: {sorted(names)}")
        for e in eps:
            rows = np.flatnonzero(ep_col == e)
            if layout == "v2" and len(rows) != n:
                raise ValueError(f"{path}: the file of episode {e} holds rows of episodes "
                                 f"{sorted(set(ep_col.tolist()))}")
            parts.setdefault(e, []).append(({f: a[rows] for f, a in arrays.items()}, frame[rows], path))
    out = {}
    for e, ps in parts.items():
        frame = np.concatenate([p[1] for p in ps])
        order = np.argsort(frame, kind="stable")
        out[e] = ({f: np.concatenate([p[0][f] for p in ps])[order] for f in features}, frame[order], ps[0][2])
    return out


# ---------------------------------------------------------------------- the loader
def load_lerobot(folder, keys: Mapping[str, str] = DEFAULT_KEYS, episodes=None, robot=None, *,
                 condition_keys: Optional[Sequence[str]] = None, quat_order: Union[str, Mapping[str, str]] = "xyzw",
                 frames=None, nonfinite: str = "raise", renormalize_tol: float = 0.05,
                 dtype: torch.dtype = torch.float32) -> PoseDataset:
    """Points on ``parse(" x ".join(keys.values()))`` from the frames of a LeRobot dataset folder.

    Parameters
    ----------
    folder : the dataset root (holding ``meta/info.json``), layout v2.x or v3.0; read only.
    keys : ordered ``{feature or feature[selection]: manifold token}`` (see the module docstring for the
        selection syntax); each key's selected width must be its token's ``coord_dim``. Default
        ``{"observation.state": "T7"}`` (``T<robot.dof>`` when ``robot`` is given).
    episodes : None (all), an episode index, or a sequence of them (``episode_index`` values).
    robot : an object with ``.joint_names`` (tuple of str) and ``.dof``. Each key that is a bare feature
        with token ``T<dof>`` then takes the feature's values named by the joints, in the robot's joint
        order (a value named ``<joint>``, or ``<joint>.pos``/``_pos``/``.position``/...).
    condition_keys : keys (same syntax) concatenated, in order, as ``conditions (N, c)``, e.g. ``"action"``.
    quat_order, frames, nonfinite, renormalize_tol, dtype : as in
        :func:`~posegen.data.robomimic.load_robomimic` (``frames`` strides within each episode).

    Joint angles (T factors) are wrapped to ``[-pi, pi)``. Returns a :class:`PoseDataset` with ``points
    (N, coord_dim)``, ``groups (N,)`` indexing ``group_names`` = ``["episode_<i>", ...]`` for the loaded
    episodes in index order (so ``split_by_group`` splits by episode), columns ``<key>.<coord>``, and
    ``meta`` with the folder, codebase version, fps, robot_type, episode indices and the column indices
    each key selected.

    Errors (:class:`ValueError`, nothing loaded): no ``meta/info.json``, unknown codebase version, episodes
    that do not exist, a missing column (lists the file's columns), ragged list columns, widths that do not
    match the tokens, NaN/inf values (unless ``nonfinite="drop"``), quaternions far from unit norm.
    """
    keys, robot = _resolve_keys(keys, robot)
    manifold, labels, columns, orders, frames, condition_keys = read_options(
        keys, quat_order, frames, nonfinite, condition_keys, dtype)

    pa, pq = _pyarrow()
    folder = Path(folder)
    info, layout = _read_info(folder)
    files = _episodes_v2(folder, info) if layout == "v2" else _episodes_v3(folder, info, pq)
    eps = _pick_episodes(episodes, files, folder)
    feature_names = list(info["features"])
    parsed = {k: _parse_key(k, feature_names) for k in list(keys) + condition_keys}
    features = list(dict.fromkeys(f for f, _ in parsed.values()))
    _check_features(info, features, folder, robot, parsed, keys)
    by_file: Dict[Path, List[int]] = {}
    for e in eps:
        for p in files[e]:
            by_file.setdefault(p, []).append(e)
    data = _read(by_file, features, layout, pa, pq)
    selected = _selections(info, data, eps, parsed, keys, robot)
    x, c, groups, frame_of, cond_columns = _assemble(data, eps, parsed, selected, keys, condition_keys, orders,
                                                     frames, nonfinite)
    group_names = [f"episode_{e}" for e in eps]
    x, c, keep = validate_with_conditions(
        manifold, x.to(dtype), None if c is None else c.to(dtype), name=str(folder), nonfinite=nonfinite,
        renormalize_tol=renormalize_tol, wrap=True, labels=labels,
        row_label=lambda i: f"{group_names[int(groups[i])]}[{int(frame_of[i])}]")
    meta = {"format": "lerobot", "source": str(folder.resolve()), "codebase_version": info.get("codebase_version"),
            "fps": info.get("fps"), "robot_type": info.get("robot_type"), "keys": keys,
            "condition_keys": condition_keys, "selected": {k: [parsed[k][0], selected[k]] for k in selected},
            "quat_order": orders, "frames": frames, "episodes": eps, "total_episodes": info.get("total_episodes"),
            "robot": None if robot is None else list(robot.joint_names), "dropped_rows": int((~keep).sum())}
    return PoseDataset(x, manifold, conditions=c, groups=groups[keep], group_names=group_names, columns=columns,
                       condition_columns=cond_columns if c is not None else None, meta=meta)


def _resolve_keys(keys, robot):
    """Checked ``keys`` (bare ``I<d>`` tokens given the robot's limits; the default key sized to the robot) and
    the robot (a built-in name or a description path is loaded)."""
    if not isinstance(keys, Mapping) or not keys:
        raise ValueError(f"keys must be a non-empty mapping {{feature: manifold token}}, got {keys!r}")
    if isinstance(robot, (str, bytes)) or hasattr(robot, "__fspath__"):
        robot = checked_robot(robot)  # a built-in name or a description path
    if robot is not None:
        joints = getattr(robot, "joint_names", None)
        if joints is None or not hasattr(robot, "dof") or len(tuple(joints)) != int(robot.dof):
            raise ValueError(f"robot must have .joint_names (a tuple of str) and .dof equal to their number, got "
                             f"{type(robot).__name__} with joint_names={joints!r}, dof={getattr(robot, 'dof', None)!r}")
        if keys is DEFAULT_KEYS:
            keys = {"observation.state": f"T{int(robot.dof)}"}
    keys = dict(keys)
    if any(bare_interval_dims(tok) for tok in keys.values()):
        # bare I<d> joint tokens take the robot's limits (a posegen Robot, a built-in name or a path)
        if robot is None:
            raise ValueError(f"keys {keys}: a bare 'I<d>' token needs joint limits: pass robot= or write them, "
                             f"I<d>[lo:hi,...]")
        keys = joint_keys(keys, robot=robot if hasattr(robot, "joint_limits") else None)
    return keys, robot


def _check_features(info, features, folder, robot, parsed, keys) -> None:
    """Every feature read is a numeric parquet column, and ``robot`` maps at least one key."""
    for f in features:
        kind = (info["features"].get(f) or {}).get("dtype")
        if kind in ("video", "image"):
            raise ValueError(f"{folder / 'meta' / 'info.json'}: feature {f!r} is a {kind} feature (stored outside the "
                             f"parquet data); only numeric parquet columns can be loaded")
    if robot is not None and not any(_joint_key(robot, parsed[k][1], keys[k]) for k in keys):
        raise ValueError(f"robot= ({int(robot.dof)} joints) maps no key: it applies to keys that name a whole "
                         f"feature with token 'T{int(robot.dof)}', got keys {keys}")


def _selections(info, data, eps, parsed, keys, robot) -> Dict[str, List[int]]:
    """``{key: column indices}`` within its feature, once the widths are known from the first episode."""
    first = data[eps[0]][0]
    selected: Dict[str, List[int]] = {}
    for k, (f, items) in parsed.items():
        width = first[f].shape[1]
        shape = (info["features"].get(f) or {}).get("shape")
        if isinstance(shape, (list, tuple)) and len(shape) == 1 and shape[0] != width:
            raise ValueError(f"{data[eps[0]][2]}: column {f!r} holds {width} values per row but meta/info.json "
                             f"gives shape {list(shape)}")
        where = f"feature {f!r}"
        names = _feature_names(info, f)
        if names is not None and len(names) != width:
            names = None
        if k in keys and _joint_key(robot, items, keys[k]):
            idx = _robot_indices(robot, _feature_names(info, f), k, where)
        else:
            idx = _select(k, items, width, names, where)
        if k in keys and len(idx) != parse(keys[k]).coord_dim:
            hint = f"; select {parse(keys[k]).coord_dim} of them, e.g. '{f}[0:{parse(keys[k]).coord_dim}]'" \
                + (" or pass robot=" if items is None else "")
            raise ValueError(f"keys[{k!r}]: {where} gives {len(idx)} values per row but token {keys[k]!r} needs "
                             f"{parse(keys[k]).coord_dim}{hint}")
        selected[k] = idx
    return selected


def _assemble(data, eps, parsed, selected, keys, condition_keys, orders, frames, nonfinite):
    """Points, conditions, episode and frame index per row, and condition column names, over the episodes; NaN/inf
    are named by file, column and frame (``nonfinite="raise"``)."""
    chunks, cond_chunks, group_idx, frame_idx, cond_columns = [], [], [], [], []
    for g, e in enumerate(eps):
        arrays, frame, path = data[e]
        rows = np.arange(len(frame))[frame_slice(len(frame), frames)]
        picked = {k: arrays[parsed[k][0]][rows][:, selected[k]] for k in selected}
        if nonfinite == "raise":
            for k, a in picked.items():
                bad = ~np.isfinite(a).all(1)
                if bad.any():
                    raise ValueError(f"{path}: column {parsed[k][0]!r} (key {k!r}) holds NaN or inf in "
                                     f"{int(bad.sum())} rows of episode {e} (first at frame_index "
                                     f"{int(frame[rows][bad][0])}); clean them, or pass nonfinite='drop' to drop "
                                     f"those rows")
        parts = []
        for k in keys:
            a = torch.from_numpy(picked[k])
            if k in orders:
                a = convert_quats(keys[k], a, orders[k])
            parts.append(a)
        chunks.append(torch.cat(parts, 1))
        if condition_keys:
            cond_chunks.append(torch.from_numpy(np.concatenate([picked[k] for k in condition_keys], 1)))
        group_idx.append(torch.full((len(rows),), g, dtype=torch.int64))
        frame_idx.append(torch.from_numpy(np.asarray(frame[rows], dtype=np.int64)))
    for k in condition_keys:
        cond_columns += [k] if len(selected[k]) == 1 else [f"{k}[{j}]" for j in range(len(selected[k]))]
    c = torch.cat(cond_chunks) if condition_keys else None
    return torch.cat(chunks), c, torch.cat(group_idx), torch.cat(frame_idx), cond_columns
