"""Run configurations: the YAML schema of ``posegen train``, loading, ``--set`` overrides and validation.

A config is a YAML mapping with these sections (every key optional; defaults below)::

    data:       where the points come from and how they are read (source robomimic | lerobot | points | earth |
                table); ``robot`` (a built-in name or a URDF/MJCF path) gives the bare ``I<d>`` joint tokens of
                ``keys`` the robot's joint space ``robot.manifold`` (its limits)
    manifold:   optional spec string ("R3 x T7 x SO3"), the flow's manifold (default: the data's); its points
                must be the data's (the same geometry), and it may add model options to them, e.g.
                ``S2[fourier=6]`` for earth data (points on S2; the network also sees Fourier features of x)
    objective:  name (cnfm | rfm | interpolant | moser) and options (the objective's constructor arguments)
    model:      velocity network (hidden, depth, conditioning, activation, time_freqs, moser_eps)
    train:      the fields of :class:`posegen.training.TrainConfig` (steps, batch_size, lr, ema_decay, ...)
    sample:     sampling defaults (n, seed, chunk_size, solver: {method, steps, step, atol, rtol}); the
                solver is stored in the model as its default integrator
    eval:       likelihood evaluation (split, divergence, chunk_size, max_points, solver)
    plot:       figures written after training and by ``posegen plot`` (enabled, n, grid, split, solver)

``load_config(path, overrides)`` reads the file with ``yaml.safe_load``, applies ``--set`` overrides
(``train.steps=100``, or the short form ``steps=100`` when one key of that name is the shallowest match),
fills the defaults and validates: unknown keys are refused with the nearest valid one, values are checked
for type, manifold specs parse, names (objective, activation, solver) are known. Problems raise
:class:`ConfigError` (a ``ValueError``) whose message is one line.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from .atomic import atomic_open
from .solvers.defaults import LOG_PROB_CHUNK_SIZE, SAMPLE_CHUNK_SIZE, SOLVER_KEYS, default_solver, preview_solver
from .data.earth import EARTH_DATASETS
from .data.robomimic import bare_interval_dims
from .manifolds import parse
from .models.velocity import ACTIVATIONS, CONDITIONING
from .objectives import OBJECTIVES
from .rotations import check_quat_order
from .solvers.divergence import METHODS as DIV_METHODS
from .solvers.ode import METHODS, STEPS
from .training import TrainConfig

SOURCES = ("robomimic", "lerobot", "points", "earth", "table")
# sources whose points come from data.keys (ordered {key: manifold token}); data.robot applies to them
KEYED_SOURCES = ("robomimic", "lerobot")
SPLITS = ("train", "valid", "test")
# The training loop's validation passes val_solver to PoseFlow.log_prob, which also takes these.
VAL_SOLVER_KEYS = SOLVER_KEYS + ("divergence", "chunk_size")
# Keys that were renamed: old path -> new path (read with a DeprecationWarning).
RENAMED = {"train.val_solver.batch_size": "train.val_solver.chunk_size"}

# Trainer fields that the config sets elsewhere (objective section) or that the CLI owns (--device).
_TRAIN_EXCLUDED = ("objective", "objective_options")


def _train_defaults() -> Dict[str, Any]:
    return {f.name: copy.deepcopy(getattr(TrainConfig(), f.name)) for f in fields(TrainConfig)
            if f.name not in _TRAIN_EXCLUDED}


def default_config() -> Dict[str, Any]:
    """The full default config (a fresh deep copy): every known key with its default value."""
    return {
        "data": {
            "source": "robomimic",
            "path": None,
            "keys": None,               # robomimic / lerobot: ordered {key: manifold token}
            "robot": None,              # built-in name or URDF path: limits of the bare I<d> tokens in keys
            "ee_link": None,            # end-effector link of that robot (default: the robot's own)
            "quat_order": "xyzw",       # how the file stores SO3 quaternions (converted to xyzw)
            "condition_keys": [],       # robomimic / lerobot: keys concatenated as the condition vector
            "frames": None,             # robomimic: null (all), stride k, "first" or "last"
            "train_mask": "train",      # robomimic masks; null: split the demos by `split`
            "val_mask": "valid",
            "test_mask": None,
            "name": None,               # earth: volcano | earthquake | flood | fire
            "split": [0.8, 0.1, 0.1],   # random split (train, valid, test) when the file has none
            "seed": 0,                  # seed of that split
            "max_points": None,         # cap on training points (seeded subsample)
            "columns": None,            # table: point columns (names or indices)
            "condition_columns": None,  # table: condition columns
            "angle_unit": None,         # table: "rad" or "deg" (needed for torus factors)
            "latlon": False,            # table: lat/lon columns in degrees -> S2
            "delimiter": None,          # table: None sniffs it
            "wrap": False,              # table: wrap angles outside [-pi, pi)
            "nonfinite": "raise",       # "raise" or "drop" rows with NaN/inf
        },
        "manifold": None,
        "objective": {"name": "rfm", "options": {}},   # the default the benchmarks favour (see training.trainer)
        "model": {"hidden": 256, "depth": 4, "conditioning": "concat", "activation": "silu", "time_freqs": 4,
                  "moser_eps": None},          # None: 1.58e-4 / Vol(M) (PoseFlow's default)
        "train": _train_defaults(),
        # chunk_size: points integrated at once (a memory bound; results do not depend on it)
        "sample": {"n": 1000, "seed": 0, "chunk_size": SAMPLE_CHUNK_SIZE, "solver": default_solver()},
        "eval": {"split": None, "divergence": "exact", "chunk_size": LOG_PROB_CHUNK_SIZE, "max_points": None,
                 "solver": {}},
        "plot": {"enabled": True, "n": 1000, "grid": 72, "split": "train", "solver": preview_solver()},
    }


# Mappings whose keys are the user's (replaced as a whole, not merged with defaults).
FREE = ("data.keys", "objective.options")
# Solver-like mappings: merged over the defaults, keys from a fixed list.
SOLVER_DICTS = {"sample.solver": SOLVER_KEYS, "eval.solver": SOLVER_KEYS, "plot.solver": SOLVER_KEYS,
                "train.val_solver": VAL_SOLVER_KEYS}
# Keys whose default is None but whose value has a known type.
NULLABLE_TYPES = {
    "data.path": (str,), "data.keys": (dict,), "data.frames": (int, str), "data.train_mask": (str,),
    "data.val_mask": (str,), "data.test_mask": (str,), "data.name": (str,), "data.max_points": (int,),
    "data.columns": (list,), "data.condition_columns": (list,), "data.angle_unit": (str,),
    "data.delimiter": (str,), "data.robot": (str,), "data.ee_link": (str,), "manifold": (str,),
    "eval.split": (str,), "eval.max_points": (int,),
    "train.device": (str,), "train.max_minutes": (float, int),
}


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message is one line naming the key."""


# ---------------------------------------------------------------------- key paths
def _paths(tree: Dict[str, Any], prefix: str = "") -> List[str]:
    """Every known key path of the schema (sections, their keys, solver sub-keys)."""
    out = []
    for k, v in tree.items():
        p = f"{prefix}{k}"
        out.append(p)
        if p in SOLVER_DICTS:
            out += [f"{p}.{s}" for s in SOLVER_DICTS[p]]
        elif isinstance(v, dict) and p not in FREE:
            out += _paths(v, p + ".")
    return out


def known_keys() -> List[str]:
    """All key paths a config may set, e.g. ``["data", "data.source", ..., "train.steps", ...]``."""
    return _paths(default_config())


SECTION_ORDER = ("train", "data", "model", "objective", "manifold", "sample", "eval", "plot")


def _nearest(key: str, candidates: Sequence[str]) -> Optional[str]:
    """The nearest valid key path to ``key``: a dotted key is compared in full, a short one by its last
    component (ties: the shallowest path, then the section most often set: train, data, model, ...)."""
    if "." in key:
        full = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
        if full:
            return full[0]
    leaf = key.rsplit(".", 1)[-1]
    leaves: Dict[str, List[str]] = {}
    for c in candidates:
        leaves.setdefault(c.rsplit(".", 1)[-1], []).append(c)
    close = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
    if close:
        rank = {s: i for i, s in enumerate(SECTION_ORDER)}
        return min(leaves[close[0]], key=lambda c: (c.count("."), rank.get(c.split(".")[0], len(rank))))
    return None


def _did_you_mean(key: str, candidates: Sequence[str]) -> str:
    near = _nearest(key, candidates)
    return f"; did you mean '{near}'?" if near else ""


def resolve_key(key: str, where: str = "--set") -> str:
    """Full path of an override key: ``train.steps`` as is, ``steps`` -> ``train.steps``.

    The short form matches the known paths ending in the given components; the shallowest match wins
    when it is the only one at its depth, otherwise the key is ambiguous (the message lists the full
    forms). Keys under ``data.keys`` and ``objective.options`` are the user's and always accepted.
    """
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"{where}: empty key in {key!r}; write key=value, e.g. train.steps=100")
    paths = known_keys()
    if key in paths or any(key.startswith(f + ".") for f in FREE):
        return key
    parts = key.split(".")
    matches = [p for p in paths if p.split(".")[-len(parts):] == parts]
    if not matches:
        # a short form under a free mapping, e.g. options.sigma -> objective.options.sigma
        for f in FREE:
            tail = f.rsplit(".", 1)[-1]
            if parts[0] == tail and len(parts) > 1:
                return f + "." + ".".join(parts[1:])
        raise ConfigError(f"unknown config key '{key}' in {where}{_did_you_mean(key, paths)}")
    depth = min(m.count(".") for m in matches)
    best = [m for m in matches if m.count(".") == depth]
    if len(best) > 1:
        raise ConfigError(f"ambiguous config key '{key}' in {where}: it could be {', '.join(best)}; "
                          f"write the full key")
    return best[0]


# ---------------------------------------------------------------------- overrides
def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML (``100`` int, ``1e-3`` float, ``true``, ``null``, ``[0.8, 0.2]``,
    ``{a: R3}``, anything else a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return _yaml_float(value)


def _yaml_float(value: Any) -> Any:
    # PyYAML reads 1e-3 (no dot) as a string (YAML 1.1); configs mean a number.
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        if any(ch.isdigit() for ch in value) and value.strip().lower() not in ("nan", "inf", "-inf", "+inf"):
            return f
    return value


def parse_override(item: str) -> Tuple[str, Any]:
    """``"train.steps=100"`` -> ``("train.steps", 100)`` (key resolved, value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.steps=100")
    key, text = item.split("=", 1)
    return resolve_key(key, where=f"--set {item}"), parse_value(text)


def apply_overrides(raw: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """A copy of the user's ``raw`` config with ``--set key=value`` overrides applied (before defaults)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, value = parse_override(item)
        parts = key.split(".")
        node = raw
        for i, p in enumerate(parts[:-1]):
            sub = node.get(p)
            if sub is None:
                sub = node[p] = {}
            if not isinstance(sub, dict):
                raise ConfigError(f"--set {item}: '{'.'.join(parts[:i + 1])}' is not a mapping in the config")
            node = sub
        node[parts[-1]] = value
    return raw


# ---------------------------------------------------------------------- merging and checks
def _type_name(types: Tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _coerce(path: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (or :data:`NULLABLE_TYPES`), converted where
    lossless (an int for a float key; a float with an integer value for an int key)."""
    if value is None:
        return None
    if default is None:
        types = NULLABLE_TYPES.get(path)
        if types is None:
            return value
    elif isinstance(default, bool):
        types = (bool,)
    elif isinstance(default, int):
        types = (int,)
    elif isinstance(default, float):
        types = (float,)
    elif isinstance(default, (list, tuple)):
        types = (list,)
    else:
        types = (type(default),)
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"config key '{path}' must be {_type_name(types)}, got {value!r}")
    if float in types and isinstance(value, int):
        return float(value)
    if int in types and isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if isinstance(value, tuple) and list in types:
        return list(value)
    if not isinstance(value, types):
        raise ConfigError(f"config key '{path}' must be {_type_name(types)}, got {value!r} "
                          f"({type(value).__name__})")
    return value


def _merge(defaults: Dict[str, Any], user: Any, prefix: str, source: str) -> Dict[str, Any]:
    """Defaults overlaid with ``user``; unknown keys refused with the nearest known one."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(user, dict):
        raise ConfigError(f"config section '{where}' in {source} must be a mapping, got {user!r}")
    out = copy.deepcopy(defaults)
    for k, v in user.items():
        if not isinstance(k, str):
            raise ConfigError(f"config key {k!r} under '{where}' in {source} must be a string")
        p = f"{prefix}{k}"
        v = _yaml_float(v)
        if p in RENAMED and RENAMED[p].startswith(prefix) and RENAMED[p][len(prefix):] not in user:
            warnings.warn(f"config key '{p}' in {source} is deprecated; it is now '{RENAMED[p]}'",
                          DeprecationWarning, stacklevel=2)
            p, k = RENAMED[p], RENAMED[p][len(prefix):]
        if k not in defaults:
            if prefix.rstrip(".") in SOLVER_DICTS:
                allowed = SOLVER_DICTS[prefix.rstrip(".")]
                raise ConfigError(f"unknown config key '{p}' in {source}; allowed under '{where}': "
                                  f"{', '.join(allowed)}{_did_you_mean(p, [prefix + a for a in allowed])}")
            raise ConfigError(f"unknown config key '{p}' in {source}{_did_you_mean(p, known_keys())}")
        if p in FREE:
            if v is not None and not isinstance(v, dict):
                raise ConfigError(f"config key '{p}' in {source} must be a mapping, got {v!r}")
            out[k] = dict(v) if v is not None else (None if p == "data.keys" else {})
        elif p in SOLVER_DICTS:
            out[k] = _merge({s: out[k].get(s) for s in SOLVER_DICTS[p]}, v or {}, p + ".", source)
            out[k] = {s: x for s, x in out[k].items() if x is not None}
        elif isinstance(defaults[k], dict):
            out[k] = _merge(defaults[k], v if v is not None else {}, p + ".", source)
        else:
            out[k] = _coerce(p, v, defaults[k])
    return out


def _solver_types(path: str, solver: Dict[str, Any]) -> None:
    ints, floats = ("steps", "chunk_size"), ("atol", "rtol")
    for k, v in solver.items():
        if k in ints:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
                raise ConfigError(f"config key '{path}.{k}' must be a positive integer, got {v!r}")
            solver[k] = int(v)
        elif k in floats:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"config key '{path}.{k}' must be a positive number, got {v!r}")
            solver[k] = float(v)
        elif not isinstance(v, str):
            raise ConfigError(f"config key '{path}.{k}' must be a string, got {v!r}")


def _check_choice(path: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        near = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(f"config key '{path}' is {value!r}; must be one of {', '.join(map(str, choices))}{hint}")


def _check_keys(d: Dict[str, Any]) -> None:
    """The tokens of ``data.keys`` parse; bare ``I<d>`` tokens (joints whose limits are not written) need
    ``data.robot``, which needs at least one of them (checked without loading the robot)."""
    bare = {}
    for k, tok in d["keys"].items():
        n = bare_interval_dims(tok)
        if n:
            bare[k] = tok
            if d["robot"] is None:
                raise ConfigError(f"config key 'data.keys.{k}' is {tok!r}, joints with limits, but nothing gives the "
                                  f"limits: set data.robot (a built-in robot name such as 'ur5e', or a URDF path), "
                                  f"or write them in the token, I<d>[lo:hi,...]")
            check_manifold_spec_limits(tok, n, f"config key 'data.keys.{k}'")
        else:
            check_manifold_spec(tok, f"config key 'data.keys.{k}'")
    if d["robot"] is not None and not bare:
        raise ConfigError(f"config key 'data.robot' ({d['robot']!r}) gives the limits of bare 'I<d>' joint tokens in "
                          f"data.keys, but there is none: map the joint key to I<dof>, e.g. robot0_joint_pos: I6")


def check_manifold_spec_limits(spec: str, rows: int, what: str):
    """:func:`check_manifold_spec` for a spec whose bare ``I<d>`` tokens take ``rows`` limits from elsewhere."""
    try:
        return parse(spec, limits=[[0.0, 1.0]] * rows)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: bad manifold spec {spec!r}: {e}") from None


def check_manifold_spec(spec: Any, what: str):
    """``parse(spec)`` with a one-line :class:`ConfigError` naming ``what`` when it does not parse."""
    try:
        return parse(spec)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: bad manifold spec {spec!r}: {e}") from None


def objective_parametrization(name: str) -> str:
    """``"cnf"`` or ``"moser"``: the PoseFlow parametrization objective ``name`` trains."""
    return OBJECTIVES[name].parametrization


def validate(cfg: Dict[str, Any], source: str = "config") -> Dict[str, Any]:
    """Check a merged config (values, names, specs) without loading data or training; returns it."""
    d = cfg["data"]
    _check_choice("data.source", d["source"], SOURCES)
    if d["source"] in ("robomimic", "lerobot", "points", "table") and not d["path"]:
        raise ConfigError(f"config key 'data.path' is needed for data.source={d['source']!r} ({source})")
    if d["robot"] is not None and (not d["robot"].strip() or d["source"] not in KEYED_SOURCES):
        raise ConfigError(f"config key 'data.robot' ({d['robot']!r}) must be a built-in robot name or a URDF/MJCF "
                          f"path and applies to data.source {' or '.join(map(repr, KEYED_SOURCES))}, whose keys "
                          f"it gives joint limits; got data.source={d['source']!r}")
    if d["ee_link"] is not None and d["robot"] is None:
        raise ConfigError(f"config key 'data.ee_link' ({d['ee_link']!r}) names a link of data.robot, which is not set")
    if d["source"] in KEYED_SOURCES:
        example = ("{robot0_eef_pos: R3, robot0_eef_quat: SO3}" if d["source"] == "robomimic"
                   else "{'observation.state[0:7]': T7}")
        if not d["keys"]:
            raise ConfigError(f"config key 'data.keys' is needed for data.source={d['source']!r}: a mapping "
                              f"{{key: manifold token}}, e.g. {example}")
        _check_keys(d)
        if isinstance(d["quat_order"], dict):
            for k, order in d["quat_order"].items():
                try:
                    check_quat_order(order)
                except ValueError as e:
                    raise ConfigError(f"config key 'data.quat_order.{k}': {e}") from None
    if not isinstance(d["quat_order"], dict):
        try:
            check_quat_order(d["quat_order"])
        except ValueError as e:
            raise ConfigError(f"config key 'data.quat_order': {e}") from None
    if d["source"] == "earth":
        _check_choice("data.name", d["name"], EARTH_DATASETS)
    if d["source"] == "table" and not d["latlon"] and cfg["manifold"] is None:
        raise ConfigError("config key 'manifold' is needed for data.source='table' (e.g. manifold: R3 x SO3), "
                          "or set data.latlon: true for latitude/longitude columns")
    f = d["frames"]
    if not (f is None or f in ("first", "last") or (isinstance(f, int) and not isinstance(f, bool) and f >= 1)):
        raise ConfigError(f"config key 'data.frames' must be null (all frames), an integer stride >= 1, "
                          f"'first' or 'last', got {f!r}")
    ck = d["condition_keys"]
    if not isinstance(ck, list) or not all(isinstance(c, str) for c in ck):
        raise ConfigError(f"config key 'data.condition_keys' must be a list of key names, got {ck!r}")
    _check_choice("data.nonfinite", d["nonfinite"], ("raise", "drop"))
    if d["angle_unit"] is not None:
        _check_choice("data.angle_unit", d["angle_unit"], ("rad", "deg"))
    if d["max_points"] is not None and d["max_points"] < 1:
        raise ConfigError(f"config key 'data.max_points' must be >= 1 or null, got {d['max_points']!r}")
    sp = d["split"]
    if (not isinstance(sp, list) or len(sp) not in (2, 3) or not all(isinstance(x, (int, float)) and
                                                                      not isinstance(x, bool) and x >= 0 for x in sp)
            or abs(sum(sp) - 1) > 1e-6):
        raise ConfigError(f"config key 'data.split' must be 2 or 3 non-negative fractions (train, valid[, test]) "
                          f"summing to 1, got {sp!r}")
    if cfg["manifold"] is not None:
        check_manifold_spec(cfg["manifold"], "config key 'manifold'")

    o = cfg["objective"]
    _check_choice("objective.name", o["name"], list(OBJECTIVES))
    cls = OBJECTIVES[o["name"]]
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [n for n in params if n != "self"]
        for k in o["options"]:
            if k not in valid:
                near = difflib.get_close_matches(k, valid, n=1)
                hint = f"; did you mean 'objective.options.{near[0]}'?" if near else ""
                raise ConfigError(f"unknown config key 'objective.options.{k}' for objective "
                                  f"{o['name']!r} (options: {', '.join(valid) or 'none'}){hint}")
    try:
        cls(**o["options"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key 'objective.options': {e}") from None

    m = cfg["model"]
    _check_choice("model.activation", m["activation"], list(ACTIVATIONS))
    _check_choice("model.conditioning", m["conditioning"], list(CONDITIONING))
    for k in ("hidden", "depth", "time_freqs"):
        if m[k] < 1:
            raise ConfigError(f"config key 'model.{k}' must be >= 1, got {m[k]!r}")
    if m["moser_eps"] is not None and not m["moser_eps"] > 0:
        raise ConfigError(f"config key 'model.moser_eps' must be > 0, got {m['moser_eps']!r}")

    for path, keys in SOLVER_DICTS.items():
        sec, sub = path.split(".")
        solver = cfg[sec][sub]
        _solver_types(path, solver)
        if "method" in solver:
            _check_choice(f"{path}.method", solver["method"], METHODS)
        if "step" in solver:
            _check_choice(f"{path}.step", solver["step"], STEPS)
        if "divergence" in solver:
            _check_choice(f"{path}.divergence", solver["divergence"], DIV_METHODS)
    _check_choice("eval.divergence", cfg["eval"]["divergence"], DIV_METHODS)
    if cfg["eval"]["split"] is not None:
        _check_choice("eval.split", cfg["eval"]["split"], SPLITS)
    _check_choice("plot.split", cfg["plot"]["split"], SPLITS)
    for path in ("sample.n", "sample.chunk_size", "eval.chunk_size", "plot.n", "plot.grid"):
        sec, k = path.split(".")
        if cfg[sec][k] < 1:
            raise ConfigError(f"config key '{path}' must be >= 1, got {cfg[sec][k]!r}")

    t = cfg["train"]
    if t["device"] is not None:
        _check_choice("train.device", t["device"].split(":")[0], ("cpu", "cuda"))
    try:
        TrainConfig(**t, objective=o["name"], objective_options=o["options"])
    except (TypeError, ValueError) as e:
        msg = str(e)
        key = next((f for f in t if msg.startswith(f)), None)
        raise ConfigError(f"config key 'train.{key}': {msg}" if key else f"config section 'train': {msg}") from None
    return cfg


# ---------------------------------------------------------------------- entry points
def read_yaml(path) -> Dict[str, Any]:
    """The user's raw config from ``path`` (``yaml.safe_load``); an empty file is ``{}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file '{path}' does not exist")
    if path.is_dir():
        raise ConfigError(f"config path '{path}' is a folder, not a YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections (data:, model:, train:, ...), "
                          f"got {type(raw).__name__}")
    return raw


def resolve(raw: Dict[str, Any], overrides: Iterable[str] = (), source: str = "config") -> Dict[str, Any]:
    """Defaults + ``raw`` + ``overrides``, validated (see the module docstring)."""
    raw = apply_overrides(raw, overrides)
    return validate(_merge(default_config(), raw, "", source), source)


def load_config(path, overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """Read, override, fill and validate the config at ``path``; relative data paths stay as written
    (see :func:`resolve_data_path`). Raises :class:`ConfigError` or :class:`FileNotFoundError`."""
    cfg = resolve(read_yaml(path), overrides, source=f"'{path}'")
    cfg["_config_path"] = str(Path(path).resolve())
    return cfg


def resolve_data_path(path, config_path: Optional[str] = None) -> Path:
    """A data path as the user meant it: absolute, else relative to the current folder, else to the
    config file's folder or its parent (so ``data/x.hdf5`` in ``configs/y.yaml`` works from anywhere
    inside the repository). Returns the first that exists, or the current-folder reading."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or config_path is None:
        return p.resolve() if p.exists() else p
    base = Path(config_path).resolve().parent
    for root in (base, base.parent):
        if (root / p).exists():
            return (root / p).resolve()
    return p


def dump_config(cfg: Dict[str, Any], path) -> Path:
    """Write the resolved config (private ``_`` keys left out) as YAML, sections in schema order
    (atomically: :func:`posegen.atomic.atomic_open`)."""
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    with atomic_open(path, "w") as fh:
        yaml.safe_dump(clean, fh, sort_keys=False, default_flow_style=None)
    return Path(path)
