"""Input checks shared by the grasp modules: grasp transforms and labels, refused before any work."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_transforms", "check_labels"]


def check_transforms(T, name: str = "transforms", *, atol: float = 1e-5) -> np.ndarray:
    """``T`` as an ``(N, 4, 4)`` float64 array of rigid transforms, else ValueError naming ``name``.

    Refused: another shape, N = 0 is allowed; non-finite values; a last row other than ``[0, 0, 0, 1]``; a
    rotation block that is not orthonormal with determinant +1 (to ``atol``).
    """
    if isinstance(T, torch.Tensor):
        T = T.detach().cpu().numpy()
    try:
        T = np.asarray(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an (N, 4, 4) array of numbers, got {type(T).__name__}") from None
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"{name} must have shape (N, 4, 4), got {tuple(T.shape)}")
    if not np.isfinite(T).all():
        bad = int(np.nonzero(~np.isfinite(T).reshape(len(T), -1).all(axis=1))[0][0])
        raise ValueError(f"{name} must be finite; transform {bad} holds NaN or inf")
    if len(T) == 0:
        return T
    row_err = np.abs(T[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    R = T[:, :3, :3]
    orth_err = np.abs(R @ R.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    bad = np.nonzero((row_err > atol) | (orth_err > atol) | (det <= 0))[0]
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{name} must be rigid transforms (last row [0, 0, 0, 1], rotation orthonormal with "
                         f"det +1, to {atol}); transform {i} has last-row error {row_err[i]:.2e}, "
                         f"orthonormality error {orth_err[i]:.2e}, det {det[i]:.4f}")
    return T


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
