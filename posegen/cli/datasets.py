"""Datasets from a config's ``data`` section: train / valid / test splits of a :class:`PoseDataset`.

Sources:
    robomimic  ``load_robomimic`` per mask (``train_mask``, ``val_mask``, ``test_mask``); without masks the
               demos are split whole (``split`` fractions, ``seed``), so no demo leaks across splits.
    lerobot    ``load_lerobot`` of the folder ``path`` with ``keys`` (``feature[selection]: token``), split by
               whole episodes (``split``, ``seed``).
    points     posegen's HDF5 layout (``load_points``), split at random by ``split`` and ``seed``.
    earth      ``earth_splits(name, seed)``: the literature's 80/10/10 protocol.
    table      CSV/TSV/NPY (``load_table``, or ``load_latlon`` with ``latlon: true``), split at random.

``data.robot`` (robomimic and lerobot): a built-in robot name or a URDF/MJCF path (absolute, or relative to
the current folder or the config's folder or its parent). The bare ``I<d>`` tokens of ``keys`` get the robot's
joint limits; a key ``I<dof>`` becomes the robot's joint space ``robot.manifold`` (see
:func:`posegen.data.robomimic.joint_keys`). :func:`config_keys` gives the keys with those tokens filled in.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, List, Optional

import h5py

from ..config import ConfigError, check_manifold_spec, resolve_data_path
from ..data import earth_splits, load_latlon, load_lerobot, load_points, load_robomimic, load_table
from ..data.earth import EARTH_FILES
from ..data.robomimic import joint_keys
from ..manifolds import Product, parse
from ..manifolds.gate import one_warning_per_load
from ..robots import builtin_names, load
from .common import sniff


def data_path(d: Dict[str, Any], config_path: Optional[str]) -> Path:
    """The data file of section ``d``, resolved (see :func:`posegen.config.resolve_data_path`)."""
    p = resolve_data_path(d["path"], config_path)
    if not p.exists():
        raise FileNotFoundError(f"data file '{d['path']}' (data.path) does not exist")
    return p


@functools.lru_cache(maxsize=8)
def _load_robot(spec: str, ee_link: Optional[str]):
    return load(spec, ee_link=ee_link)


def config_robot(cfg: Dict[str, Any]):
    """The :class:`posegen.robots.Robot` that ``data.robot`` names, with ``data.ee_link`` (None when unset);
    loaded once per name.

    A built-in name loads as such; anything else is a description path, resolved like ``data.path``."""
    name = cfg["data"].get("robot")
    if name is None:
        return None

    if name not in builtin_names():
        p = resolve_data_path(name, cfg.get("_config_path"))
        name = str(p) if p.exists() else name   # else load() says what is wrong (unknown name, no file)
    try:
        return _load_robot(name, cfg["data"].get("ee_link"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"config key 'data.robot': {e}") from None
    except ValueError as e:
        raise ConfigError(f"config key 'data.robot': {e}") from None


def config_keys(cfg: Dict[str, Any]) -> Optional[Dict[str, str]]:
    """``data.keys`` with the bare ``I<d>`` tokens given ``data.robot``'s limits (a new dict; None without keys)."""
    keys = cfg["data"].get("keys")
    if not keys:
        return None
    robot = config_robot(cfg)
    if robot is None:
        return dict(keys)

    try:
        return joint_keys(keys, robot=robot)
    except ValueError as e:
        raise ConfigError(f"config keys 'data.keys' and 'data.robot': {e}") from None


def _fractions(d: Dict[str, Any]) -> List[float]:
    sp = [float(x) for x in d["split"]]
    return sp if len(sp) == 3 else sp + [0.0]


def _cap(ds, d: Dict[str, Any]):
    """Training points capped at ``max_points`` (seeded subsample, original order kept)."""
    m = d.get("max_points")
    if m is not None and len(ds) > m:
        return ds.subsample(n=int(m), seed=int(d["seed"]))
    return ds


def _robomimic(d: Dict[str, Any], path: Path, splits, keys) -> Dict[str, Any]:
    kw = dict(keys=keys, quat_order=d["quat_order"], condition_keys=d["condition_keys"] or None,
              frames=d["frames"], nonfinite=d["nonfinite"])
    masks = {"train": d["train_mask"], "valid": d["val_mask"], "test": d["test_mask"]}
    out: Dict[str, Any] = {}
    if masks["train"] is not None and not _has_masks(path):
        raise ConfigError(f"data file '{path}' has no 'mask' group, so data.train_mask={masks['train']!r} cannot be "
                          f"used; set data.train_mask: null to split the demos by data.split")
    if masks["train"] is not None:
        for split in splits:
            if masks[split] is not None:
                out[split] = load_robomimic(path, mask=masks[split], **kw)
        return out
    return _by_group(load_robomimic(path, **kw), d, splits)


def _lerobot(d: Dict[str, Any], path: Path, splits, keys) -> Dict[str, Any]:
    if not path.is_dir():
        raise ConfigError(f"data path '{path}' is a file; data.source 'lerobot' reads a LeRobot dataset folder "
                          f"(the one holding meta/info.json)")
    full = load_lerobot(path, keys=keys, condition_keys=d["condition_keys"] or None, quat_order=d["quat_order"],
                        frames=d["frames"], nonfinite=d["nonfinite"])
    return _by_group(full, d, splits)


def _by_group(full, d: Dict[str, Any], splits) -> Dict[str, Any]:
    """Whole groups (demos, episodes) split by ``data.split`` and ``data.seed``."""
    fr = _fractions(d)
    parts = full.split_by_group(fr if fr[2] > 0 else fr[:2], seed=int(d["seed"]))
    return {name: part for name, part in zip(("train", "valid", "test"), parts) if name in splits and len(part)}


def _has_masks(path: Path) -> bool:
    with h5py.File(path, "r") as f:
        return "mask" in f and hasattr(f["mask"], "keys") and len(f["mask"]) > 0


def _random(full, d: Dict[str, Any], splits) -> Dict[str, Any]:
    fr = _fractions(d)
    parts = full.random_split(fr if fr[2] > 0 else fr[:2], seed=int(d["seed"]))
    return {name: part for name, part in zip(("train", "valid", "test"), parts) if name in splits and len(part)}


def load_splits(cfg: Dict[str, Any], splits=("train", "valid", "test"), path=None) -> Dict[str, Any]:
    """``{split: PoseDataset}`` for the requested ``splits`` that the data section defines.

    ``path`` replaces ``data.path`` (``posegen eval --data FILE``). A posegen points file given that way
    is read whole (split ``"all"``) when the section's source is not ``points``. ``max_points`` caps the
    training split only. When ``cfg["manifold"]`` is set, the data's points must lie on its geometry (see
    :func:`model_manifold`).
    """
    with one_warning_per_load():  # the splits of one file: one warning per change, counts summed
        return _load_splits(cfg, splits, path)


def _load_splits(cfg: Dict[str, Any], splits, path) -> Dict[str, Any]:
    d = dict(cfg["data"])
    config_path = cfg.get("_config_path")
    source = d["source"]
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"data file '{path}' does not exist")
        if source != "earth":
            d["path"] = str(path)
        kind = sniff(path) if path.is_file() else "table"
        if kind == "posegen-points" and source != "points":
            return {"all": load_points(path, nonfinite=d["nonfinite"])}
    if source == "robomimic":
        p = data_path(d, config_path)
        kind = sniff(p)
        if kind != "robomimic":
            raise ConfigError(f"data file '{p}' is a {kind} file, not a robomimic file (no 'data' group); "
                              f"set data.source to 'points' or 'table'")
        out = _robomimic(d, p, splits, config_keys(cfg))
    elif source == "lerobot":
        out = _lerobot(d, data_path(d, config_path), splits, config_keys(cfg))
    elif source == "points":
        out = _random(load_points(data_path(d, config_path), nonfinite=d["nonfinite"]), d, splits)
    elif source == "earth":
        out = _earth(d, path, splits)
    else:
        out = _random(_table(cfg, d, data_path(d, config_path)), d, splits)
    if "train" in out:
        out["train"] = _cap(out["train"], d)
    if out:
        model_manifold(cfg, next(iter(out.values())).manifold)
    return out


def model_manifold(cfg: Dict[str, Any], data_manifold):
    """The manifold the flow is built on, given the data's: the config's ``manifold`` when set, else the data's.

    ``manifold`` may add model options to the data's points (``S2[fourier=6]`` for earth data, which are
    points on S2: the network sees Fourier features of x); its geometry (:attr:`Manifold.geometry`) must be
    the data's, else :class:`ConfigError`.
    """
    if cfg.get("manifold") is None:
        return data_manifold
    want = check_manifold_spec(cfg["manifold"], "config key 'manifold'")
    if want.geometry != data_manifold.geometry:
        raise ConfigError(f"config key 'manifold' is {cfg['manifold']!r} but the data section gives points on "
                          f"{data_manifold.geometry!r}; fix the manifold or the data keys (the manifold may add "
                          f"model options to the data's, e.g. S2[fourier=6] for points on S2)")
    return want


def check_same_points(model, data, what: str = "the checkpoint models points on") -> None:
    """Refuse data that do not lie on the model's points: ``model.geometry`` must equal ``data.geometry``
    (a flow on S2[fourier=6] scores and is drawn with points on S2). ``ValueError`` naming both otherwise."""
    if model.geometry != data.geometry:
        flow = f" (a flow on {model!r})" if model.geometry != model else ""
        raise ValueError(f"{what} {model.geometry!r}{flow} but the data are points on {data.geometry!r}")


def _earth(d: Dict[str, Any], path, splits) -> Dict[str, Any]:
    name = d["name"]
    fr = tuple(_fractions(d))
    if path is not None and Path(path).is_file() and Path(path).name != EARTH_FILES[name]:
        parts = load_latlon(path).random_split(fr, seed=int(d["seed"]))
    else:
        root = None
        if path is not None:
            root = Path(path).parent if Path(path).is_file() else Path(path)
        elif d.get("path"):
            root = resolve_data_path(d["path"], None)
            root = root.parent if root.is_file() else root
        parts = earth_splits(name, int(d["seed"]), fr, root=root)
    return {n: p for n, p in zip(("train", "valid", "test"), parts) if n in splits and len(p)}


def _table(cfg: Dict[str, Any], d: Dict[str, Any], path: Path):
    if d["latlon"]:
        cols = d["columns"] or [None, None]
        if len(cols) != 2:
            raise ConfigError(f"config key 'data.columns' must name the latitude and longitude columns "
                              f"for data.latlon: true, got {cols!r}")
        return load_latlon(path, degrees=(d["angle_unit"] or "deg") == "deg", lat_col=cols[0], lon_col=cols[1],
                           delimiter=d["delimiter"], nonfinite=d["nonfinite"])
    # the table's points lie on the manifold's geometry; model options (S2[fourier=K]) are the flow's
    points_on = check_manifold_spec(cfg["manifold"], "config key 'manifold'").geometry
    return load_table(path, points_on, d["columns"], angle_unit=d["angle_unit"], delimiter=d["delimiter"],
                      quat_order=d["quat_order"], condition_columns=d["condition_columns"],
                      nonfinite=d["nonfinite"], wrap=d["wrap"])


def data_manifold(cfg: Dict[str, Any]):
    """The manifold the data section describes, without reading data where the config says it
    (robomimic keys, earth, a table's ``manifold``); None when only the file knows (points)."""
    d = cfg["data"]
    if d["source"] in ("robomimic", "lerobot"):
        return Product(*[f for tok in config_keys(cfg).values() for f in parse(tok).factors])
    if d["source"] == "earth" or (d["source"] == "table" and d["latlon"]):
        return parse("S2")
    if d["source"] == "table":
        return parse(cfg["manifold"]).geometry
    return None


def columns_from_config(cfg: Optional[Dict[str, Any]], manifold) -> Optional[List[str]]:
    """Column names ``key.coord`` from robomimic / lerobot keys when they describe ``manifold``, else None."""
    if not cfg or cfg["data"]["source"] not in ("robomimic", "lerobot") or not cfg["data"].get("keys"):
        return None

    cols = [f"{k}.{c}" for k, tok in config_keys(cfg).items() for c in parse(tok).coord_names()]
    return cols if len(cols) == manifold.coord_dim else None


def factor_labels(cfg: Optional[Dict[str, Any]], manifold) -> List[str]:
    """One label per factor of ``manifold``: the robomimic key it came from, else ``<index>_<spec>``."""
    default = [f"{i}_{f.spec}" for i, f in enumerate(manifold.factors)]
    if not cfg or cfg["data"]["source"] not in ("robomimic", "lerobot") or not cfg["data"].get("keys"):
        return ["S2" if f.geometry.spec == "S2" and len(manifold.factors) == 1 else lab
                for f, lab in zip(manifold.factors, default)]

    labels = [k for k, tok in config_keys(cfg).items() for _ in parse(tok).factors]
    return labels if len(labels) == len(manifold.factors) else default
