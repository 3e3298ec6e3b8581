"""Validation of a merged config: names, values and specs, section by section, before any work."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Dict, Sequence

from ..data.earth import EARTH_DATASETS
from ..data.robomimic import bare_interval_dims
from ..manifolds import parse
from ..models.velocity import ACTIVATIONS, CONDITIONING
from ..objectives import OBJECTIVES
from ..rotations import check_quat_order
from ..solvers.divergence import METHODS as DIV_METHODS
from ..solvers.ode import METHODS, STEPS
from ..training import TrainConfig
from .schema import KEYED_SOURCES, SOLVER_DICTS, SOURCES, SPLITS, ConfigError


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
    _check_data(cfg, source)
    _check_objective(cfg["objective"])
    _check_model(cfg["model"])
    _check_solvers(cfg)
    _check_train(cfg["train"], cfg["objective"])
    return cfg


def _check_data_source(cfg: Dict[str, Any], source: str) -> None:
    """``data.source`` and what it needs: a path, keys (with ``robot`` / ``ee_link``), quaternion orders."""
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


def _check_data(cfg: Dict[str, Any], source: str) -> None:
    """The ``data`` section and the ``manifold`` key."""
    _check_data_source(cfg, source)
    d = cfg["data"]
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


def _check_objective(o: Dict[str, Any]) -> None:
    """``objective.name`` is known and ``objective.options`` are its constructor's arguments."""
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


def _check_model(m: Dict[str, Any]) -> None:
    _check_choice("model.activation", m["activation"], list(ACTIVATIONS))
    _check_choice("model.conditioning", m["conditioning"], list(CONDITIONING))
    for k in ("hidden", "depth", "time_freqs"):
        if m[k] < 1:
            raise ConfigError(f"config key 'model.{k}' must be >= 1, got {m[k]!r}")
    if m["moser_eps"] is not None and not m["moser_eps"] > 0:
        raise ConfigError(f"config key 'model.moser_eps' must be > 0, got {m['moser_eps']!r}")


def _check_solvers(cfg: Dict[str, Any]) -> None:
    """The integrator settings of every section, and the sample / eval / plot sizes and splits."""
    for path in SOLVER_DICTS:
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


def _check_train(t: Dict[str, Any], o: Dict[str, Any]) -> None:
    """The ``train`` section, through :class:`~posegen.training.TrainConfig`'s own checks."""
    if t["device"] is not None:
        _check_choice("train.device", t["device"].split(":")[0], ("cpu", "cuda"))
    try:
        TrainConfig(**t, objective=o["name"], objective_options=o["options"])
    except (TypeError, ValueError) as e:
        msg = str(e)
        key = next((f for f in t if msg.startswith(f)), None)
        raise ConfigError(f"config key 'train.{key}': {msg}" if key else f"config section 'train': {msg}") from None
