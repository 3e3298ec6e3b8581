"""Helpers shared by the subcommands: configs beside checkpoints, devices, conditions, messages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import h5py
import torch

from ..config import ConfigError, load_config
from ..data import load_points, read_table
from ..flow import PoseFlow


class UsageError(ConfigError):
    """A command line that cannot be run (exit code 2); the message is one line."""


MASK_KEYS = {"train": "data.train_mask", "valid": "data.val_mask", "test": "data.test_mask"}


FILE_KINDS = ("posegen-points", "robomimic", "hdf5", "table")


def sniff(path) -> str:
    """What ``path`` holds: ``"posegen-points"``, ``"robomimic"`` (an HDF5 file with a ``data`` group),
    ``"hdf5"`` (any other HDF5 file) or ``"table"`` (anything else)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file '{path}' does not exist")
    if not h5py.is_hdf5(path):
        return "table"
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format", b"")
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if fmt == "posegen-points":
            return "posegen-points"
        return "robomimic" if "data" in f and hasattr(f["data"], "keys") else "hdf5"


def missing_split(split: str) -> UsageError:
    """The error for a split the data section does not define, saying which key defines it."""
    return UsageError(f"the data section defines no {split!r} split (robomimic data: {MASK_KEYS[split]} names a "
                      f"mask of the file; other sources: data.split with three fractions); choose another --split")


def say(msg: str = "") -> None:
    """Progress and results for people go to stdout; errors and warnings to stderr."""
    print(msg, flush=True)


def note(msg: str) -> None:
    print(f"posegen: {msg}", file=sys.stderr, flush=True)


def check_device(device: Optional[str]) -> Optional[str]:
    """``device`` if it can be used here; ``"cuda"`` without a GPU is a usage error."""
    if device is None:
        return None
    if device.split(":")[0] == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: torch.cuda.is_available() is False on this machine; use --device cpu")
    return device


def config_for(path, config: Optional[str], overrides=()) -> Optional[Dict[str, Any]]:
    """The config named by ``--config``, else ``config.yaml`` in the folder of ``path`` (a checkpoint or a
    samples file written by ``posegen train``/``sample``), else None."""
    if config is not None:
        return load_config(config, overrides)
    beside = Path(path).parent / "config.yaml"
    if beside.is_file():
        return load_config(beside, overrides)
    return None


def load_flow(path, device: Optional[str] = None):
    """The :class:`~posegen.PoseFlow` in checkpoint ``path`` (``model.pt`` or a trainer ``ckpt.pt``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    if path.is_dir():
        hint = " (it holds model.pt: pass that)" if (path / "model.pt").exists() else ""
        raise UsageError(f"checkpoint '{path}' is a folder, not a file{hint}")
    flow = PoseFlow.load(path, map_location=check_device(device))
    flow.eval()
    return flow


def parse_condition(text: str, cond_dim: int) -> torch.Tensor:
    """``"0.5,0.1,0.02"`` -> a ``(cond_dim,)`` tensor (commas or spaces between numbers)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"--condition {text!r}: expected {cond_dim} numbers separated by commas") from None
    if len(values) != cond_dim:
        raise UsageError(f"--condition {text!r}: the flow is conditional on {cond_dim} values, got {len(values)}")
    return torch.tensor(values)


def read_conditions(path, cond_dim: int) -> torch.Tensor:
    """Condition rows ``(K, cond_dim)`` from a table (CSV/TSV/NPY) or a posegen points file's conditions."""
    kind = sniff(path)
    if kind == "posegen-points":
        c = load_points(path).conditions
        if c is None:
            raise UsageError(f"--condition-file '{path}' is a posegen points file without conditions")
    elif kind == "table":
        _, values = read_table(path)
        c = torch.from_numpy(values)
    else:
        raise UsageError(f"--condition-file '{path}' is a {kind} file; give a CSV/TSV/NPY table or a posegen "
                         f"points file")
    if c.dim() != 2 or c.shape[1] != cond_dim:
        raise UsageError(f"--condition-file '{path}' has rows of {c.shape[-1]} values; the flow is conditional "
                         f"on {cond_dim}")
    return c


def condition_columns(cfg: Optional[Dict[str, Any]], cond_dim: int) -> Optional[List[str]]:
    """Names of the condition values from the config's ``condition_keys`` (``object_pos[0]``, ...)."""
    if not cfg or not cond_dim:
        return None
    keys = cfg["data"].get("condition_keys") or cfg["data"].get("condition_columns") or []
    if len(keys) == cond_dim:
        return [str(k) for k in keys]
    if len(keys) == 1:
        return [f"{keys[0]}[{j}]" for j in range(cond_dim)]
    return None


def solver_options(cfg_solver: Dict[str, Any], method: Optional[str], steps: Optional[int]) -> Dict[str, Any]:
    """Integrator keywords for ``sample``/``log_prob``: the config's, then the command line's."""
    out = dict(cfg_solver or {})
    if method is not None:
        out["method"] = method
    if steps is not None:
        out["steps"] = steps
    return out
