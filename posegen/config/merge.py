"""Merging a user config onto the defaults, with types coerced and unknown keys refused."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Dict, Tuple

from .overrides import _yaml_float
from .schema import FREE, NULLABLE_TYPES, RENAMED, SOLVER_DICTS, ConfigError, _did_you_mean, known_keys


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


def merge_defaults(defaults: Dict[str, Any], user: Any, prefix: str, source: str) -> Dict[str, Any]:
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
            out[k] = merge_defaults({s: out[k].get(s) for s in SOLVER_DICTS[p]}, v or {}, p + ".", source)
            out[k] = {s: x for s, x in out[k].items() if x is not None}
        elif isinstance(defaults[k], dict):
            out[k] = merge_defaults(defaults[k], v if v is not None else {}, p + ".", source)
        else:
            out[k] = _coerce(p, v, defaults[k])
    return out
