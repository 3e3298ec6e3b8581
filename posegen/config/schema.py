"""The config schema: sections, defaults, which keys exist and how a key written short is resolved."""

from __future__ import annotations

import copy
import difflib
from dataclasses import fields
from typing import Any, Dict, List, Optional, Sequence

from ..solvers.defaults import LOG_PROB_CHUNK_SIZE, SAMPLE_CHUNK_SIZE, SOLVER_KEYS, default_solver, preview_solver
from ..training import TrainConfig

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
