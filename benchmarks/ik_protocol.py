"""IKFlow's evaluation protocol pieces shared by ``ik.py`` (accuracy) and ``ik_speed.py`` (speed): held-out
targets and the diversity of a target's solutions."""

from __future__ import annotations

import torch

__all__ = ["targets_for", "diversity"]


def targets_for(robot, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    q = robot.manifold.sample_base(n, generator=g, dtype=torch.float64)
    pos, quat = robot.pose(q)
    return torch.cat([pos, quat], -1)


def diversity(joints: torch.Tensor, success: torch.Tensor, eps: float):
    """Per target: mean pairwise L2 distance of successful solutions and connected components at ``eps``."""
    dists, clusters = [], []
    for q, ok in zip(joints, success):
        s = q[ok].double()
        if s.shape[0] < 2:
            clusters.append(int(s.shape[0]))
            continue
        d = torch.cdist(s, s)
        iu = torch.triu_indices(s.shape[0], s.shape[0], 1)
        dists.append(float(d[iu[0], iu[1]].mean()))
        adj = d < eps
        label = torch.arange(s.shape[0])
        for _ in range(s.shape[0]):  # label propagation to the smallest index in the component
            new = torch.where(adj, label[None, :], s.shape[0]).amin(1)
            new = torch.minimum(new, label)
            if torch.equal(new, label):
                break
            label = new
        clusters.append(int(label.unique().numel()))
    return {"mean_pairwise_rad": sum(dists) / len(dists) if dists else None,
            "clusters_mean": sum(clusters) / len(clusters), "targets": len(clusters)}
