"""Checkpoint files that are safe to open from strangers and written atomically.

A checkpoint is a ``torch.save`` of plain data only: a dict of tensors, numbers, strings, lists and dicts.
It is always read with ``torch.load(..., weights_only=True)``, which refuses pickled objects (code) before
running any of it. Every file carries ``format``, ``format_version``, ``posegen_version``; model files carry
the manifold spec and the model settings.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .atomic import atomic_path
from .version import __version__

FORMAT = "posegen-checkpoint"
FORMAT_VERSION = 1


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _unpickling_reason(e: Exception) -> str:
    """The informative line of torch's weights_only error (its first lines are generic advice)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or ln.startswith("Unsupported"):
            return ln
    return lines[0] if lines else type(e).__name__


def atomic_save(obj: Any, path) -> Path:
    """``torch.save(obj)`` through :func:`posegen.atomic.atomic_path` (temporary file, fsync,
    ``os.replace``, folder fsync): a crash or a full disk leaves either the old file or the new one, never a
    torn one. The folder is created when missing."""
    path = Path(path)
    with atomic_path(path, mkdir=True) as tmp:
        torch.save(obj, tmp)
    return path


def save_checkpoint(payload: Dict[str, Any], path, kind: str = "model") -> Path:
    """Write ``payload`` (plain data) with the format header added."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "posegen_version": __version__, "kind": kind}
    return atomic_save({**header, **payload}, path)


def load_checkpoint(path, map_location=None, kind: Optional[str] = None) -> Dict[str, Any]:
    """Read a posegen checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a posegen checkpoint (including any file that needs arbitrary unpickling, which is
            refused without running it), a newer format version, or a checkpoint of another ``kind``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic == _HDF5_MAGIC:
        raise ValueError(f"{str(path)!r} is not a posegen checkpoint: it is an HDF5 file (point files are "
                         f"read with posegen.data.load_points)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickling_reason(e)
        if "GLOBAL" in reason:
            raise ValueError(f"{str(path)!r} is not a posegen checkpoint: it holds pickled objects that are "
                             f"not plain data, and posegen refuses to unpickle them (weights_only=True): "
                             f"{reason}") from None
        raise ValueError(f"{str(path)!r} is not a readable posegen checkpoint (not a torch.save file of "
                         f"plain data: {reason})") from None
    except Exception as e:  # zip/tar errors, truncated files, random bytes
        raise ValueError(f"{str(path)!r} is not a readable posegen checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a posegen checkpoint (no '{FORMAT}' header)")
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has checkpoint format version {version!r}; this posegen reads "
                         f"versions up to {FORMAT_VERSION}: upgrade posegen")
    if kind is not None and obj.get("kind") != kind:
        raise ValueError(f"{str(path)!r} is a posegen '{obj.get('kind')}' checkpoint, expected '{kind}'")
    return obj
