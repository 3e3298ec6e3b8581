"""``--set KEY=VALUE`` overrides: parsing a value as YAML, and applying overrides to a raw config."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, Tuple

import yaml

from .schema import ConfigError, resolve_key


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
