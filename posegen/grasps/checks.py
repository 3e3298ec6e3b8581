"""Input checks shared by the grasp modules: grasp transforms and labels, refused before any work."""

from __future__ import annotations

import numpy as np
import torch

from ..rotations import check_rigid

__all__ = ["check_transforms", "check_labels"]


def check_transforms(T, name: str = "transforms", *, atol: float = 1e-5) -> np.ndarray:
    """``T`` as an ``(N, 4, 4)`` float64 array of rigid transforms (:func:`posegen.rotations.check_rigid`, to
    ``atol``: grasp files store float64), else ValueError naming ``name``."""
    return check_rigid(T, name, atol=atol).numpy()


def check_labels(labels, n: int, name: str = "success") -> np.ndarray:
    """``labels`` as an ``(n,)`` bool array (bools or 0/1 integers), else ValueError naming ``name``."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    a = np.asarray(labels)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per transform), got {tuple(a.shape)}")
    if a.dtype != bool:
        if not np.issubdtype(a.dtype, np.number) or not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans or 0/1, got dtype {a.dtype} with other values")
        a = a.astype(bool)
    return a
