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

from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import yaml

from ..atomic import atomic_open
from .checks import check_manifold_spec, check_manifold_spec_limits, objective_parametrization, validate
from .merge import merge_defaults
from .overrides import apply_overrides, parse_override, parse_value
from .schema import (
    FREE,
    KEYED_SOURCES,
    SECTION_ORDER,
    SOLVER_DICTS,
    SOURCES,
    SPLITS,
    ConfigError,
    default_config,
    known_keys,
    resolve_key,
)

__all__ = ["ConfigError", "default_config", "known_keys", "resolve_key", "parse_value", "parse_override",
           "apply_overrides", "check_manifold_spec", "check_manifold_spec_limits", "objective_parametrization",
           "validate", "read_yaml", "resolve", "load_config", "resolve_data_path", "dump_config", "SOURCES",
           "KEYED_SOURCES", "SPLITS", "FREE", "SECTION_ORDER", "SOLVER_DICTS"]


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
    return validate(merge_defaults(default_config(), raw, "", source), source)


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
