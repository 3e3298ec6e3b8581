"""The earth-science benchmark on S^2: volcano, earthquake, flood and fire event locations.

Files ship in the repository's ``data/earth`` (see ``data/SOURCES.md`` for origin and sha256). The data
folder is found relative to the package (``<repo>/data``) or, when ``POSEGEN_DATA`` is set, at
``$POSEGEN_DATA`` (reading ``$POSEGEN_DATA/earth/``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Sequence, Tuple

import torch

from .dataset import PoseDataset
from .tabular import load_latlon
from .validate import DataWarning

EARTH_DATASETS = ("volcano", "earthquake", "flood", "fire")
EARTH_FILES = {"volcano": "volerup.csv", "earthquake": "quakes_all.csv", "flood": "flood.csv", "fire": "fire.csv"}
EARTH_ROWS = {"volcano": 827, "earthquake": 6120, "flood": 4875, "fire": 12809}
EARTH_SHA256 = {
    "volcano": "f7bbaf32a412f5fe82350f48e0c55100be260803969c16557343f687fd0593fc",
    "earthquake": "3e5e1a10fb2faf1899106264289334037d039f00f5265d13dad388a93d8ff2f7",
    "flood": "ffb1e3182c3053afcdeceec4727c262a29da10255d20747c08144da5b0963486",
    "fire": "c1fb69d204ab2d743ed0234bb11c1d0692a994ef51788002ad795d1d632516c0",
}
DATA_ENV = "POSEGEN_DATA"


def data_root() -> Path:
    """``$POSEGEN_DATA`` when set, else the repository's ``data`` folder (next to the ``posegen`` package)."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "data"


def earth_path(name: str, root=None) -> Path:
    """The CSV file of earth data set ``name`` under ``root`` (default ``data_root() / "earth"``)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in EARTH_FILES:
        raise ValueError(f"Invalid earth data set {name!r}. Must be one of {EARTH_DATASETS}")
    folder = Path(root) if root is not None else data_root() / "earth"
    path = folder / EARTH_FILES[key]
    if not path.exists():
        raise FileNotFoundError(f"earth data file {str(path)!r} not found; set {DATA_ENV}=/path/to/posegen/data "
                                f"(the folder holding earth/) or pass root= (the folder holding {EARTH_FILES[key]})")
    return path


def load_earth(name: str, root=None, dtype: torch.dtype = torch.float32) -> PoseDataset:
    """Earth data set ``name`` (one of :data:`EARTH_DATASETS`) as a :class:`PoseDataset` on S2.

    ``meta`` records the file, its sha256 and the provider; a file whose sha256 differs from the published
    one loads with a :class:`DataWarning` (results would not be comparable to the literature).
    """
    path = earth_path(name, root)
    key = name.lower()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != EARTH_SHA256[key]:
        warnings.warn(f"{str(path)!r} differs from the published {EARTH_FILES[key]} (sha256 {digest[:12]}... "
                      f"instead of {EARTH_SHA256[key][:12]}...); results will not be comparable to the literature",
                      DataWarning, stacklevel=2)
    ds = load_latlon(path, degrees=True, dtype=dtype)
    ds.meta.update({"dataset": key, "sha256": digest})
    return ds


def earth_splits(name: str, seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), root=None,
                 dtype: torch.dtype = torch.float32) -> Tuple[PoseDataset, ...]:
    """``(train, val, test)`` of earth data set ``name``: the literature's protocol (RFM, RSGM), a random
    80/10/10 split seeded by the run seed (0-4 in the papers). Reproducible, disjoint and covering; see
    :meth:`PoseDataset.random_split` (``N_val = N_test = N // 10``, the same permutation as
    ``torch.utils.data.random_split`` with ``torch.Generator().manual_seed(seed)``)."""
    return load_earth(name, root, dtype).random_split(fractions, seed)
