"""Encoders of structured conditions: a raw condition (an object's point cloud, say) mapped to the feature
vector the velocity network is conditioned on, trained with the flow.

An encoder is built from plain data (``{"kind": "pointnet", ...}``, saved with the model) by
:func:`make_encoder`; it takes ``(B, *input_shape)`` and returns ``(B, out_dim)``.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn

__all__ = ["PointCloudEncoder", "ENCODERS", "make_encoder"]


class PointCloudEncoder(nn.Module):
    """PointNet (Qi et al., CVPR 2017) without its transform nets: a shared MLP on every point, max- and
    mean-pooled over the points, then an MLP to ``out_dim`` features.

    ``(B, P, 3)`` points (any ``P``; in the frame the conditioned variable is expressed in, e.g. an object's mesh
    frame for grasp poses, so that the features see where the surface is) -> ``(B, out_dim)``. Invariant to the
    order of the points by construction (symmetric pooling); a max-pooled PointNet is what grasp generators
    (Contact-GraspNet's PointNet++, GraspLDM) start from, and it trains in seconds per epoch on a CPU.
    """

    kind = "pointnet"

    def __init__(self, out_dim: int = 64, hidden: int = 128, point_dim: int = 3, length_scale: float = 1.0):
        super().__init__()
        if int(out_dim) < 1 or int(hidden) < 1 or int(point_dim) < 1:
            raise ValueError(f"PointCloudEncoder: out_dim, hidden and point_dim must be >= 1, got {out_dim}, "
                             f"{hidden}, {point_dim}")
        if not float(length_scale) > 0:
            raise ValueError(f"PointCloudEncoder: length_scale must be > 0, got {length_scale!r}")
        self.out_dim, self.hidden, self.point_dim = int(out_dim), int(hidden), int(point_dim)
        # points are divided by it before the first layer: coordinates of order 1 for the initialisation to see
        # differences between clouds (a 5 cm and a 20 cm object differ by 0.1 in metres)
        self.length_scale = float(length_scale)
        self.point_mlp = nn.Sequential(nn.Linear(self.point_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                       nn.SiLU(), nn.Linear(hidden, hidden))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, self.out_dim))

    @property
    def config(self) -> Dict[str, Any]:
        return {"kind": self.kind, "out_dim": self.out_dim, "hidden": self.hidden, "point_dim": self.point_dim,
                "length_scale": self.length_scale}

    def check(self, c: torch.Tensor) -> torch.Tensor:
        """``c`` as ``(B, P, point_dim)``: one cloud ``(P, point_dim)`` becomes ``B = 1``; ValueError otherwise."""
        if c.dim() == 2:
            c = c.unsqueeze(0)
        if c.dim() != 3 or c.shape[-1] != self.point_dim or c.shape[1] < 1:
            raise ValueError(f"a point-cloud condition must have shape (P, {self.point_dim}) or (B, P, "
                             f"{self.point_dim}) with P >= 1, got {tuple(c.shape)}")
        return c

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        h = self.point_mlp(c / self.length_scale)                   # (B, P, hidden)
        pooled = torch.cat([h.amax(dim=1), h.mean(dim=1)], -1)      # (B, 2 hidden): order-free
        return self.head(pooled)


ENCODERS = {"pointnet": PointCloudEncoder}


def make_encoder(config: Dict[str, Any]) -> nn.Module:
    """The encoder described by ``config`` (``{"kind": name, **options}``); ValueError for an unknown kind."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"an encoder is described by a dict with a 'kind' ({sorted(ENCODERS)}), got {config!r}")
    options = {k: v for k, v in config.items() if k != "kind"}
    if config["kind"] not in ENCODERS:
        raise ValueError(f'Invalid encoder kind "{config["kind"]}". Must be one of {sorted(ENCODERS)}')
    return ENCODERS[config["kind"]](**options)
