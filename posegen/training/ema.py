"""Exponential moving average of parameters, the weights posegen evaluates and ships."""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn


class EMA:
    """``ema <- decay * ema + (1 - decay) * param`` after every step, with the usual warm-up
    ``decay_t = min(decay, (1 + t) / (10 + t))`` so early averages are not dominated by the initialisation.

    Buffers (standardisation) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: Dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        params = dict(model.named_parameters())
        for k, v in model.state_dict().items():
            if k in params and v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k] = v.to(self.shadow[k].device, self.shadow[k].dtype)
