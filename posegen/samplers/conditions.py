"""Conditions of a conditional flow as ready tensors, with a small cache for planners that repeat them."""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch

__all__ = ["ConditionCache"]


class ConditionCache:
    """Checks and converts conditions to ``(cond_dim,)`` or ``(m, cond_dim)`` tensors on the flow's device and
    dtype. Single conditions (one row) are cached by value (``size`` most recent), so passing the same
    object position again costs no conversion."""

    def __init__(self, cond_dim: int, dtype: torch.dtype, device, size: int = 8):
        self.cond_dim, self.dtype, self.device, self.size = int(cond_dim), dtype, device, int(size)
        self._cache: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()

    def __call__(self, condition) -> Optional[torch.Tensor]:
        cd = self.cond_dim
        if condition is None:
            if cd:
                raise ValueError(f"this sampler's flow is conditional (cond_dim={cd}): pass condition= with shape "
                                 f"({cd},) or (n, {cd})")
            return None
        if not cd:
            raise ValueError("this sampler's flow is unconditional (cond_dim=0) but condition= was given")
        single = (isinstance(condition, (list, tuple)) and len(condition) == cd
                  and all(isinstance(v, (int, float)) for v in condition))
        if isinstance(condition, torch.Tensor) and condition.numel() == cd and condition.dim() <= 2:
            single = True
        key = None
        if single and self.size > 0:
            key = tuple(float(v) for v in torch.as_tensor(condition).reshape(-1).tolist())
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        c = torch.as_tensor(condition, dtype=self.dtype, device=self.device)
        if c.dim() == 2 and c.shape[0] == 1:
            c = c[0]
        if c.dim() not in (1, 2) or c.shape[-1] != cd:
            raise ValueError(f"condition must have shape ({cd},) or (n, {cd}), got {tuple(c.shape)}")
        if not torch.isfinite(c).all():
            raise ValueError("condition contains NaN or inf")
        if key is not None:
            self._cache[key] = c
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return c
