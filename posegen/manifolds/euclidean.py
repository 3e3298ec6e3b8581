"""Flat Euclidean space R^d, base distribution N(0, I)."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .base import Manifold, Shape, _safe_norm, as_shape


class Euclidean(Manifold):
    """R^d with the standard metric. Points and tangent vectors are ``(..., d)``."""

    compact = False
    kernel = "gaussian"
    plot_kind = "positions"
    standardize = True  # positions come in metres or millimetres; the network sees standardised values
    vector_space = True

    def __init__(self, d: int):
        if int(d) != d or d < 1:
            raise ValueError(f"Euclidean dimension must be a positive integer, got {d!r}")
        self.dim = self.coord_dim = int(d)

    @property
    def spec(self) -> str:
        return f"R{self.dim}"

    @property
    def role(self) -> str:
        return "position" if self.dim == 3 else "coordinates"

    @property
    def part_name(self) -> str:
        return "position" if self.dim == 3 else "euclidean"

    def projx(self, x):
        return x

    def proju(self, x, u):
        return u

    def expmap(self, x, u):
        return x + u

    def logmap(self, x, y):
        return y - x

    def dist(self, x, y):
        return _safe_norm(y - x)

    def sample_base(self, n: Shape, generator: Optional[torch.Generator] = None,
                    dtype=torch.float32, device=None):
        return torch.randn(*as_shape(n), self.dim, generator=generator, dtype=dtype, device=device)

    def temper(self, x, temperature):
        return x * temperature

    def base_log_prob(self, x):
        return -0.5 * (x * x).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def coord_names(self, prefix: str = "") -> list:
        if self.dim == 3:
            return [f"{prefix}{c}" for c in "xyz"]
        return super().coord_names(prefix)

    _coord_stem = "r"
