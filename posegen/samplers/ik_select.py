"""Selection of IK rows: validity tiers (success, then collision-free), rankings within a tier, and taking
the best rows of each target.

Every function works on a dict of per-target rows: ``(T, m)`` entries (errors, flags) and ``(T, m, dof)``
entries (joints).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

__all__ = ["RANKINGS", "take_rows", "valid_rows", "order_rows", "collision_free", "row_scores"]

Rows = Dict[str, torch.Tensor]

#: what ``IKSampler.sample(rank=...)`` orders the rows of a target by, after validity
RANKINGS = ("clearance", "density", "near")


def take_rows(out: Rows, idx: torch.Tensor) -> Rows:
    """The rows ``idx (T, k)`` of every ``(T, m)`` or ``(T, m, dof)`` entry of ``out``."""
    return {k: v.gather(1, idx if v.dim() == 2 else idx[..., None].expand(-1, -1, v.shape[-1]))
            for k, v in out.items()}


def valid_rows(out: Rows) -> torch.Tensor:
    """``(T, m)``: refined rows that succeeded, and are collision-free when a checker scored them."""
    return out["success"] & out["collision_free"] if "collision_free" in out else out["success"]


def order_rows(out: Rows, score: torch.Tensor) -> torch.Tensor:
    """``(T, m)`` row order: successes (when refined) before failures, then collision-free rows (with a checker)
    before colliding ones, and within each of those tiers ascending ``score (T, m)``; ties keep the draw order.
    Two stable sorts rather than one key of big offsets: a score (a log-density, say) may have any scale."""
    tier = torch.zeros(score.shape, dtype=torch.int8, device=score.device)
    if "success" in out:
        tier += 2 * (~out["success"]).to(torch.int8)
    if "collision_free" in out:
        tier += (~out["collision_free"]).to(torch.int8)
    by_score = torch.sort(score, dim=1, stable=True).indices
    return by_score.gather(1, torch.sort(tier.gather(1, by_score), dim=1, stable=True).indices)


def collision_free(checker, joints: torch.Tensor) -> torch.Tensor:
    """``(T, m)`` bool on the joints' device: :meth:`CollisionChecker.collision_free` of ``joints (T, m, dof)``,
    computed where the checker lives."""
    return checker.collision_free(joints.to(checker.device, checker.dtype)).to(joints.device)


def row_scores(out: Rows, rank: Optional[str], *, near: Optional[torch.Tensor] = None,
               log_prob: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, checker=None) -> torch.Tensor:
    """``(T, m)`` float64, lower first within a validity tier: distance to ``near (T, dof)``, minus the model's
    log-density (``log_prob(joints) -> (T, m)``), minus the clearance from the checker's obstacles; without a
    ranking, the position error of refined rows (the closest failures first) and the draw order of raw ones."""
    j = out["joints"]
    if rank == "near":
        return (j.double() - near[:, None]).norm(dim=-1)
    if rank == "density":
        return -log_prob(j).double()
    if rank == "clearance":
        d = checker.clearance(j.reshape(-1, j.shape[-1]).to(checker.device, checker.dtype))
        return -d.reshape(j.shape[:-1]).to(j.device, torch.float64)
    if "position_error" in out:
        return out["position_error"].double()
    return j.new_zeros(j.shape[:2], dtype=torch.float64)
