"""What every demo generator writes the same way: HDF5 settings, quaternion sign continuity, the train/valid
masks of a robomimic file."""

from __future__ import annotations

import re
from typing import Iterable, List, Sequence

import numpy as np

__all__ = ["H5", "continuous_quat", "write_masks", "demo_index", "sorted_demo_names"]

_DEMO_RE = re.compile(r"^demo_(\d+)$")

#: contiguous, uncompressed (gzip chunks make these small arrays larger); no timestamps, so reruns with the
#: same seed give byte-identical files
H5 = {"track_times": False}


def demo_index(name: str) -> int:
    """``"demo_12" -> 12`` (the numeric order of robomimic demo names)."""
    return int(name[5:])


def sorted_demo_names(names: Iterable[str]) -> List[str]:
    """Demo group names ``demo_<i>`` sorted by the integer ``i`` (``demo_10`` after ``demo_9``).

    Args:
        names: group names, e.g. ``f["data"].keys()``; names that are not ``demo_<int>`` are refused.
    """
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    bad = [n for n in names if not _DEMO_RE.match(n)]
    if bad:
        raise ValueError(f"expected demo group names like 'demo_0', 'demo_1', ...; got {bad[:5]}")
    return sorted(names, key=lambda n: int(_DEMO_RE.match(n).group(1)))


def continuous_quat(quat: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so consecutive quaternions have a non-negative dot product."""
    out = quat.copy()
    for t in range(1, len(out)):
        if np.dot(out[t], out[t - 1]) < 0:
            out[t] = -out[t]
    return out


def write_masks(f, names: Sequence[str], seed: int, valid_share: float = 0.1) -> None:
    """``mask/train`` and ``mask/valid`` of the open HDF5 file ``f``: a seeded split of the demo ``names``
    (``valid_share`` of them, none with fewer than 2 demos), each list in numeric demo order."""
    split = np.random.default_rng([int(seed), 1]).permutation(len(names))
    n_valid = int(round(valid_share * len(names))) if len(names) >= 2 else 0
    valid = sorted((names[k] for k in split[:n_valid]), key=demo_index)
    train = sorted((names[k] for k in split[n_valid:]), key=demo_index)
    mask = f.create_group("mask")
    mask.create_dataset("train", data=np.array(train, dtype="S"))
    mask.create_dataset("valid", data=np.array(valid, dtype="S"))
